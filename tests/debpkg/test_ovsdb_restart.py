"""ovsdb-server restarts under traffic (what an Open vSwitch package upgrade does to
it) while hitless-vswitchd runs: nothing lost, the controller session kept, a change
made just before kept and a change made after applied (the ``ovsdb-restart`` operation
of the impact harness checks both changes and raises otherwise)."""

from __future__ import annotations

import pytest

from hitless.impact.run import controller_port, pick_port
from hitless.impact.switches import HitlessSwitch
from hitless.impact.topology import Topology
from tests.debpkg.measuring import measure_switch
from tests.traffic import Bound, assert_handoff_traffic

pytestmark = pytest.mark.netns

# Not a handoff: when the database comes back the daemon re-reads all of it in one loop
# turn (the IDL's full monitor reply, then reconciliation), and the netdev datapath is
# served by that loop. Measured: one stall of 70-120 ms (the longest unanswered
# ovs-appctl version equals the UDP gap) at load average 8; nothing lost.
DB_RESTART = Bound(0.25, 0.25, "ovsdb-restart: one loop turn re-reads the database")


def test_ovsdb_restart_under_traffic_loses_nothing() -> None:
    port = pick_port()
    with Topology(2) as topo:
        sw = HitlessSwitch(netns=topo.switch_ns)
        try:
            sw.start()
            sw.add_bridge(topo.ports)
            sw.vsctl("set-controller", "br0", f"ptcp:{controller_port(port)}:127.0.0.1")
            assert topo.wait_connected()
            daemon = sw.daemon_pid()
            db_before = (sw.rundir / "ovsdb-server.pid").read_text()
            res = measure_switch(
                sw.rundir,
                sw.operation("ovsdb-restart"),
                hosts=topo.hosts,
                name="ovsdb-restart",
                duration=8,
                at=2,
                classes=("udp", "controller", "tcp-stream"),
                port=port,
                controller_ns=topo.switch_ns,
                ctl=str(sw.ctl),
            )
            assert_handoff_traffic(res, DB_RESTART)
            # the same daemon, a new database server, the bridge still configured
            assert sw.daemon_pid() == daemon
            assert (sw.rundir / "ovsdb-server.pid").read_text() != db_before
            assert "br0" in sw.vsctl("list-br").split()
        finally:
            sw.close()
