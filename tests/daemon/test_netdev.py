"""The daemon with the netdev datapath: real veth ports, real packets between namespace
hosts, status write-back and management commands through stock tools."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.netns import Topology, unique_suffix
from tests.switch import BIN, Sw
from tests.wait import eventually

pytestmark = pytest.mark.netns


def test_netdev_bridge_forwards_learns_and_reports(started: Sw, topology: Topology) -> None:
    sw = started
    a = topology.add_host("a", "10.91.0.1/24")
    b = topology.add_host("b", "10.91.0.2/24")
    br = topology.name("hb")  # also the name of the bridge's tap device: unique
    missing = f"nx{unique_suffix(8)}"
    sw.vsctl("add-br", br)  # datapath_type "" means netdev here
    sw.vsctl("add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    r = sw.vsctl("add-port", br, missing)
    assert "No such device" in r.stderr  # ovs-vsctl relays Interface.error
    assert sw.ofport(missing) == -1
    assert "No such device" in sw.get("Interface", missing, "error")
    assert f"interface {missing}: " in sw.log()
    pa, pb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    assert pa > 0 and pb > 0 and pa != pb
    assert sw.get("Interface", a.switch_port, "link_state") == "up"

    assert a.ping(b.addr, count=3)
    fdb = sw.appctl("fdb/show", br).stdout
    assert re.search(rf"^\s*{pa}\s+0\s+{a.mac}\s", fdb, re.M), fdb
    assert re.search(rf"^\s*{pb}\s+0\s+{b.mac}\s", fdb, re.M), fdb
    flows = sw.appctl("dpctl/dump-flows", br).stdout
    assert re.search(rf"in_port\({pa}\).*src={a.mac},dst={b.mac}.*actions:{pb}\b", flows), flows
    assert sw.appctl("fdb/flush", br).stdout.strip() == "table successfully flushed"

    # Removing a port detaches it; the other port keeps its number.
    sw.vsctl("del-port", b.switch_port)
    assert not a.ping(b.addr, count=1, timeout=1)
    assert sw.ofport(a.switch_port) == pa
    sw.vsctl("add-port", br, b.switch_port)
    assert sw.ofport(b.switch_port) == pb  # remembered
    assert a.ping(b.addr, count=2)

    # Link state is refreshed without any configuration change.
    a.run(["ip", "link", "set", "eth0", "down"])
    assert eventually(lambda: sw.get("Interface", a.switch_port, "link_state") == "down")
    a.run(["ip", "link", "set", "eth0", "up"])
    assert eventually(lambda: sw.get("Interface", a.switch_port, "link_state") == "up")


def test_switch_inside_a_network_namespace(sw: Sw, topology: Topology) -> None:
    """`ip netns exec NS hitless start` with the switch's ports inside NS."""
    a = topology.add_host("a", "10.92.0.1/24")
    b = topology.add_host("b", "10.92.0.2/24")
    ns = f"hl-sw-{unique_suffix()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for h in (a, b):
            subprocess.run(["ip", "link", "set", h.switch_port, "netns", ns], check=True)
            subprocess.run(
                ["ip", "netns", "exec", ns, "ip", "link", "set", h.switch_port, "up"], check=True
            )
        start = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                ns,
                str(BIN / "hitless"),
                "start",
                "--rundir",
                str(sw.rundir.path),
            ],
            capture_output=True,
            text=True,
        )
        assert start.returncode == 0, start.stderr
        br = topology.name("br")  # its TAP lives in ns, but names stay private anyway
        sw.vsctl("add-br", br)
        sw.vsctl("add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
        assert a.ping(b.addr, count=2)
        assert sw.hitless("status").returncode == 0
        sw.hitless("stop")  # by PID, from outside the namespace
        assert sw.daemon_pid is None and sw.db_pid is None
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
