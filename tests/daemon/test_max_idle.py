"""max-idle is read where Open vSwitch reads it: the Open_vSwitch row's other_config,
for every bridge. A bridge's own other_config:max-idle is not a setting there: it is
ignored and said so in the bridge's status (hitless once read it there, so a user who set
it would otherwise believe it applied). Switch time is moved with time/warp (dummy
bridge), so no real time is waited."""

from __future__ import annotations

import re

import pytest

from tests.daemon.test_testhooks import FLOW, dummy_bridge, ofctl
from tests.switch import Sw
from tests.traffic import must_catch, upgrade_with
from tests.wait import wait_for


def megaflows(sw: Sw) -> int:
    return len(sw.appctl("dpctl/dump-flows", "br0").stdout.split())


def learn_one(sw: Sw) -> None:
    sw.appctl("netdev-dummy/receive", "p1", FLOW)
    assert megaflows(sw) > 0


def test_max_idle_comes_from_the_open_vswitch_row(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, pcap=False)
    sw.appctl("time/stop")
    ofctl(sw, "add-flow", "priority=10,in_port=1,actions=output:2")
    # Default 10 s: an idle megaflow outlives 6 s and is gone after 12 s.
    learn_one(sw)
    sw.appctl("time/warp", "6000", "500")
    assert megaflows(sw) > 0
    sw.appctl("time/warp", "6000", "500")
    assert megaflows(sw) == 0

    # The Open_vSwitch row's max-idle applies to the bridge.
    sw.vsctl("set", "Open_vSwitch", ".", "other_config:max-idle=2000")
    learn_one(sw)
    sw.appctl("time/warp", "3000", "500")
    assert megaflows(sw) == 0

    # A bridge's max-idle changes nothing (as in Open vSwitch), and the status says why.
    sw.vsctl("remove", "Open_vSwitch", ".", "other_config", "max-idle",
             "--", "set", "Bridge", "br0", "other_config:max-idle=2000")  # fmt: skip
    wait_for(lambda: "max-idle is read from the Open_vSwitch row" in sw.get("Bridge", "br0", "status"),
             "the bridge's status to say where max-idle belongs")  # fmt: skip
    learn_one(sw)
    sw.appctl("time/warp", "6000", "500")
    assert megaflows(sw) > 0, "the bridge's max-idle=2000 was applied"
    assert sw.log().count("max-idle is read from the Open_vSwitch row") == 1


def test_an_unusable_max_idle_is_said_and_the_default_used(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, pcap=False)
    sw.appctl("time/stop")
    ofctl(sw, "add-flow", "priority=10,in_port=1,actions=output:2")
    sw.vsctl("set", "Open_vSwitch", ".", "other_config:max-idle=100")  # below the 500 floor
    wait_for(lambda: "max-idle='100' is not an integer from 500" in sw.log(), "the WARN line")
    learn_one(sw)
    sw.appctl("time/warp", "6000", "500")
    assert megaflows(sw) > 0  # 10 s, not 100 ms



def idle_for(sw: Sw) -> float:
    """Seconds since the bridge's one megaflow last matched (dpctl's used:)."""
    m = re.search(r"used:([0-9.]+)s", sw.appctl("dpctl/dump-flows", "br0").stdout)
    return float(m.group(1)) if m else -1.0


@pytest.mark.parametrize("fault", [None, "flush-after-adopt"])
def test_a_handoff_sweeps_handed_over_megaflows_with_the_configured_max_idle(
    started: Sw, fault: str | None
) -> None:
    """The new process sweeps the megaflows it adopted before its first packet: with the
    Open_vSwitch row's max-idle (600 s here), not the 10 s default, so a megaflow idle for
    more than 10 s survives the upgrade. Real time: the new process's clock takes over
    a warp only after that sweep, so time/warp cannot stand in here. A new process that
    flushes what it adopted (no traffic relearns it here) must fail that."""
    sw = started
    dummy_bridge(sw, pcap=False)
    sw.vsctl("set", "Open_vSwitch", ".", "other_config:max-idle=600000")
    ofctl(sw, "add-flow", "priority=10,in_port=1,actions=output:2")
    learn_one(sw)
    sw.appctl("netdev-dummy/receive", "p1", FLOW)  # a hit on the megaflow: used is set
    wait_for(lambda: idle_for(sw) > 10.5, "the megaflow to be idle for over 10 s", timeout=40)
    upgrade_with(sw, fault)
    with must_catch(fault):
        assert megaflows(sw) > 0, "the new process swept the megaflow with the default max-idle"
