"""Configuration through stock ovs-vsctl: bridges and ports appear, OpenFlow port numbers
and errors are written back, cur_cfg follows next_cfg."""

from __future__ import annotations

import re

from tests.switch import Sw


def add_dummy_bridge(sw: Sw, name: str) -> None:
    sw.vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=dummy")


def test_ports_get_ofports_and_keep_them(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    assert sw.ofport("br0") == 65534
    sw.vsctl(
        "add-port",
        "br0",
        "p1",
        "--",
        "add-port",
        "br0",
        "p2",
        "--",
        "set",
        "Interface",
        "p2",
        "ofport_request=7",
    )
    p1 = sw.ofport("p1")
    assert sw.ofport("p2") == 7
    assert 0 < p1 < 0xFF00 and p1 != 7
    assert sw.get("Interface", "p1", "link_state") == "up"
    assert sw.get("Interface", "p1", "error") == "[]"
    assert re.fullmatch(
        r'"?([0-9a-f]{2}:){5}[0-9a-f]{2}"?', sw.get("Interface", "p1", "mac_in_use")
    )

    # Removing and adding other ports, or changing unrelated settings, moves nobody.
    sw.vsctl("add-port", "br0", "p3")
    sw.vsctl("del-port", "p1")
    sw.vsctl("set", "Bridge", "br0", "other_config:mac-aging-time=100")
    sw.vsctl("set", "Port", "p2", "tag=10")
    assert sw.ofport("p2") == 7
    assert sw.ofport("br0") == 65534
    p3 = sw.ofport("p3")
    assert p3 > 0 and p3 != 7

    # ofport_request moves a port when the number is free.
    sw.vsctl("set", "Interface", "p3", "ofport_request=20")
    assert sw.ofport("p3") == 20
    status = sw.hitless("status").stdout
    assert "bridge br0 (datapath dummy)" in status and "p3: ofport 20" in status
    assert "warm" in sw.log() and "cold" in sw.log()


def test_cur_cfg_follows_next_cfg(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")  # plain ovs-vsctl (no --no-wait) waits for cur_cfg
    for i in range(3):
        sw.vsctl("add-port", "br0", f"q{i}")
        assert sw.get("Open_vSwitch", ".", "cur_cfg") == sw.get("Open_vSwitch", ".", "next_cfg")
        assert sw.ofport(f"q{i}") > 0  # already written when ovs-vsctl returns


def test_unknown_datapath_type_is_reported_and_others_keep_working(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "good")
    r = sw.vsctl("add-br", "bad", "--", "set", "Bridge", "bad", "datapath_type=warp")
    assert "unknown datapath type 'warp'" in r.stderr  # ovs-vsctl shows Interface.error
    sw.vsctl("add-port", "bad", "b1", "--", "add-port", "good", "g1")
    for iface in ("bad", "b1"):
        assert sw.ofport(iface) == -1
        assert "unknown datapath type 'warp'" in sw.get("Interface", iface, "error")
    assert sw.ofport("g1") > 0 and sw.get("Interface", "g1", "error") == "[]"
    assert "bridge bad: unknown datapath type 'warp'" in sw.log()

    # Fixing the type brings the bridge up (cold) and clears the errors.
    sw.vsctl("set", "Bridge", "bad", "datapath_type=dummy")
    assert sw.ofport("b1") > 0 and sw.get("Interface", "b1", "error") == "[]"


def test_unsupported_interface_type_is_rejected(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    r = sw.vsctl(
        "add-port",
        "br0",
        "t1",
        "--",
        "set",
        "Interface",
        "t1",
        "type=vxlan",
        "options:remote_ip=192.0.2.1",
    )
    assert "unsupported interface type 'vxlan'" in r.stderr
    assert sw.ofport("t1") == -1
    sw.vsctl("add-port", "br0", "p1")
    assert sw.ofport("p1") > 0


def test_bridge_removal_and_datapath_type_change(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    add_dummy_bridge(sw, "br1")
    sw.vsctl("add-port", "br1", "p1")
    sw.vsctl("del-br", "br0")
    assert "bridge br0: closing (removed from the database)" in sw.log()
    r = sw.appctl("fdb/show", "br0", check=False)
    assert r.returncode != 0 and "no such bridge: br0" in r.stderr
    assert sw.ofport("p1") > 0
    sw.vsctl("set", "Bridge", "br1", "datapath_type=nonesuch")
    assert sw.ofport("p1") == -1
    assert "datapath type changes from dummy" in sw.log()
