"""``kill -9`` of the daemon under traffic on a netdev bridge (hitless.daemon.standby).

Sequenced UDP from a to b (about 1,000 datagrams/s) while the daemon is killed with
SIGKILL. With the crash standby (the default) the standby takes over: the ports' sockets
it held kept their rings filling, so nothing may be lost beyond ``LOST_BOUND`` (a quarter
of what Open vSwitch's plain restart loses at this rate, ~190: docs/hardening.md); the
OpenFlow rule added before the crash and the MAC entry of a host that has been silent
since (c) must still be there. The same run with ``--no-standby`` (kill -9, then
``hitless start``, the behaviour before the standby) must be caught by these checks.
"""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from hitless.daemon.rundir import read_pid, wait_exit
from hitless.daemon.standby import standby_pidfile
from tests.netns import Host, Topology, UdpSink, udp_send
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns

COUNT = 5000  # datagrams, 10 every 10 ms
LOST_BOUND = 40
RULE = "priority=50,udp,tp_dst=9,actions=drop"  # matches nothing the test sends


def standby_show(sw: Sw) -> dict[str, object]:
    return json.loads(sw.appctl("standby/show").stdout)  # type: ignore[no-any-return]


def received(host: Host) -> int:
    return host.counter("rx_packets")


@pytest.mark.parametrize("standby", [True, False], ids=["standby", "no-standby"])
def test_kill_9_under_traffic(sw: Sw, topology: Topology, standby: bool) -> None:
    sw.hitless("start", *([] if standby else ["--no-standby"]))
    a = topology.add_host("a", "10.97.0.1/24")
    b = topology.add_host("b", "10.97.0.2/24")
    c = topology.add_host("c", "10.97.0.3/24")
    br = topology.name("cr")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
             "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
             "--", "add-port", br, c.switch_port)  # fmt: skip
    wait_for(lambda: sw.ofport(c.switch_port) > 0, "the ports")
    wait_for(lambda: a.ping(b.addr), "a reaches b")
    assert c.ping(b.addr)  # c is learned, then says nothing more
    sw.ofctl(br, "add-flow", RULE)
    if standby:
        pid = wait_for(lambda: standby_show(sw)["standby_pid"], "the crash standby")
        after_rule = int(standby_show(sw)["mirrors"])  # type: ignore[call-overload]
        # two more mirrors: one surely started after the rule and c's entry were there
        wait_for(lambda: int(standby_show(sw)["mirrors"]) >= after_rule + 2, "two mirrors")  # type: ignore[call-overload]
        assert read_pid(standby_pidfile(sw.rundir)) == pid
    else:
        assert standby_show(sw)["standby_pid"] is None
    fdb = sw.appctl("fdb/show", br).stdout
    assert c.mac in fdb, fdb

    sink = UdpSink(b, 7000, idle=4.0)
    base = received(b)
    sender = threading.Thread(
        target=udp_send, args=(a, b.addr, 7000, COUNT), kwargs={"batch": 10, "pause": 0.01}
    )
    sender.start()
    wait_for(lambda: received(b) - base >= 1000, "the first thousand datagrams")
    dp = sw.daemon_pid
    assert dp is not None
    os.kill(dp, signal.SIGKILL)
    assert wait_exit(dp, 10)
    if standby:
        wait_for(lambda: sw.daemon_pid not in (None, dp), "the standby to take over")
    else:
        sw.start()
    sender.join(timeout=120)
    seqs = sink.seqs()
    lost = COUNT - len(set(seqs))

    problems = []
    if lost > LOST_BOUND:
        problems.append(f"lost {lost} of {COUNT} datagrams (bound {LOST_BOUND})")
    flows = wait_for(lambda: sw.ofctl(br, "dump-flows", check=False), "the bridge's OpenFlow")
    if "tp_dst=9 " not in flows:
        problems.append(f"rule lost: {flows}")
    fdb = sw.appctl("fdb/show", br).stdout
    if c.mac not in fdb:
        problems.append(f"fdb: silent host c's entry lost: {fdb}")
    print(f"standby={standby}: lost {lost} of {COUNT}; problems {problems}")
    if standby:
        assert not problems, problems
        assert standby_show(sw)["crash_takeover_ms"] is not None
        # and it keeps a new standby of its own
        wait_for(lambda: standby_show(sw)["standby_pid"], "a new standby")
    else:
        assert any("lost" in p for p in problems), problems


def test_upgrade_and_stop_do_not_wake_the_standby(sw: Sw, topology: Topology) -> None:
    """Only a death wakes the standby: the old process of a handoff and a stopped
    daemon say bye first, the standby exits; the new process keeps a standby of its own;
    ``hitless stop`` leaves none behind."""
    sw.start()
    a = topology.add_host("a", "10.97.1.1/24")
    br = topology.name("cs")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
             "--", "add-port", br, a.switch_port)  # fmt: skip
    first = wait_for(lambda: standby_show(sw)["standby_pid"], "the crash standby")
    old = sw.daemon_pid
    sw.hitless("upgrade")
    assert sw.daemon_pid not in (None, old, first)
    assert wait_exit(int(first), 30), "the old standby outlived its daemon's handoff"  # type: ignore[call-overload]
    second = wait_for(lambda: standby_show(sw)["standby_pid"], "the new process's standby", 60)
    assert second != first
    sw.hitless("stop")
    assert wait_exit(int(second), 10)  # type: ignore[call-overload]
    log = sw.log()
    assert "takes over" not in log, log
    assert "said bye" in log
