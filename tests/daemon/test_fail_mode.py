"""fail_mode changed at run time, as Open vSwitch 3.1 applies it (seen side by side with
its netdev datapath, ``bridge/dump-flows``): standalone without a controller has
``priority=0 actions=NORMAL``; set-fail-mode with no primary controller flushes every
rule (user rules too) and standalone gets NORMAL back; adding the first primary
controller (or removing the last) flushes every rule; in standalone, once no primary
controller has been reachable for 15 s, the switch fails open (a hidden NORMAL flow that
ovs-ofctl does not show) until one connects or fail_mode becomes secure."""

from __future__ import annotations

import pytest

from tests.daemon.test_openflow import ofctl
from tests.netns import Topology
from tests.switch import Sw
from tests.wait import eventually as wait_for

pytestmark = pytest.mark.netns


def rules(sw: Sw, br: str) -> list[str]:
    out = ofctl(sw, br, "dump-flows", "--no-stats")
    return [ln.strip() for ln in out.splitlines() if "actions=" in ln]


def test_fail_mode_and_controllers_change_the_table_as_open_vswitch(
    started: Sw, topology: Topology
) -> None:
    sw = started
    a = topology.add_host("a", "10.96.0.1/24")
    b = topology.add_host("b", "10.96.0.2/24")
    br = topology.name("hf")
    sw.vsctl("add-br", br, "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    assert rules(sw, br) == ["priority=0 actions=NORMAL"]
    assert a.ping(b.addr, count=2)
    ofctl(sw, br, "add-flow", "priority=10,udp,actions=drop")

    sw.vsctl("set-fail-mode", br, "secure")  # no controller: everything is flushed
    assert rules(sw, br) == []
    assert not a.ping(b.addr, count=1, timeout=1)
    assert "fail_mode standalone -> secure: flushed 2 OpenFlow rules" in sw.log()

    ofctl(sw, br, "add-flow", "priority=10,udp,actions=drop")
    sw.vsctl("set-fail-mode", br, "standalone")  # flushed, and NORMAL again
    assert rules(sw, br) == ["priority=0 actions=NORMAL"]
    assert a.ping(b.addr, count=2)

    # A primary controller nobody answers: flushed; after 15 s, fail-open (hidden).
    sw.vsctl("set-controller", br, "tcp:127.0.0.1:1")
    assert rules(sw, br) == []
    assert not a.ping(b.addr, count=1, timeout=1)
    assert wait_for(lambda: "failing open" in sw.log(), 40)
    assert a.ping(b.addr, count=2)
    assert rules(sw, br) == []  # the fail-open flow is not an OpenFlow rule

    sw.vsctl("set-fail-mode", br, "secure")  # with a controller: no flush, fail-open ends
    assert wait_for(lambda: "no longer in fail-open mode" in sw.log(), 10)
    assert not a.ping(b.addr, count=1, timeout=1)
    sw.vsctl("set-fail-mode", br, "standalone")  # unreachable for > 15 s already
    assert wait_for(lambda: a.ping(b.addr, count=1, timeout=1), 10)

    sw.vsctl("del-controller", br)  # the last primary controller goes: flushed, NORMAL
    assert rules(sw, br) == ["priority=0 actions=NORMAL"]
    assert a.ping(b.addr, count=2)
