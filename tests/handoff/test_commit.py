"""The new side's commit (``ImportEngine.commit``), once the daemon configured the
rebuilt bridges: the old datapath's meter buckets go to every meter pushed by then,
configuration-made ones (policers) included, and the handed-over datapath flows follow
this process's state before the first packet goes through them. Two engines and
in-memory bridges (tests/handoff/pair.py), one fake clock for both sides."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from hitless.config.model import InterfaceConfig, PortConfig
from hitless.datapath.dummy import DummyDatapath
from hitless.handoff import engine
from hitless.ofproto import bridge as bridge_mod
from hitless.ofproto.bridge import POLICER_BASE
from hitless.state.records import MacEntryV1
from tests.handoff.pair import CFG, Clock, Side, frame, handoff, one_clock, send

A, B2 = 0x020000000001, 0x020000000002


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The new side's datapaths run on the test clock too (one CLOCK_MONOTONIC)."""
    return one_clock(monkeypatch)


@pytest.fixture
def no_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """No bridge extra travels (as from a build that carries none)."""
    monkeypatch.setattr(engine, "_BRIDGE_EXTRAS", {})


def policed() -> Any:
    """br0 with an ingress policer on p1: 1000 kbit/s, a 100 kbit bucket."""
    ports = dict(CFG.ports)
    ports["p1"] = PortConfig(
        "p1", (InterfaceConfig("p1", ingress_policing_rate=1000, ingress_policing_burst=100),)
    )
    return dataclasses.replace(CFG, ports=ports)


@pytest.mark.parametrize("delta", [True, False])
def test_policer_buckets_carry_on_into_the_policers_the_configuration_makes(
    clock: Clock, no_extras: None, delta: bool
) -> None:
    """The policer is a datapath meter that only the configuration makes, after the
    rebuilt bridge took the handed-over state: its bucket still carries on (not a
    second full burst), with no bridge extra to help."""
    cfg = policed()
    old = Side(clock)
    dp, bridge = old.add(cfg)
    p1 = 1  # datapath port numbers: p1-p3 are 1-3
    meter = POLICER_BASE + p1
    for i in range(60):  # ~60 frames of 60 bytes: most of the 100 kbit bucket
        send(dp, bridge, clock, p1, A + i % 2, 0xFFFFFFFFFFFF)
    before = dp.meters.levels(meter, clock())
    assert before is not None and before[0] < 100_000 * 0.8
    h = handoff(old, clock, features=("delta",) if delta else (), configure=cfg)
    new_dp = h.new.bridges["br0"].datapath
    assert isinstance(new_dp, DummyDatapath)
    assert new_dp.meters.levels(meter, clock()) == before


@pytest.mark.parametrize("delta", [True, False])
def test_handed_over_flows_follow_the_new_state_before_the_first_packet(
    clock: Clock, no_extras: None, delta: bool
) -> None:
    """A spanning tree the old process had forwarding, and a new process that did not
    get its state (no extras): the new tree starts listening, so the handed-over
    flows must stop forwarding at commit, not at the new bridge's first run."""
    cfg = dataclasses.replace(CFG, stp_enable=True)
    old = Side(clock)
    dp, bridge = old.add(cfg)
    for _ in range(40):  # past listening and learning (2 x 15 s)
        clock.t += 1
        bridge.run(clock())
    assert bridge.stp is not None and {bridge.stp.state(p) for p in bridge.stp.ports} == {
        "forwarding"
    }
    p1, p2 = 1, 2
    send(dp, bridge, clock, p2, B2, A)
    send(dp, bridge, clock, p1, A, B2)
    send(dp, bridge, clock, p2, B2, A)
    assert dp.flow_count() >= 2
    h = handoff(old, clock, features=("delta",) if delta else (), configure=cfg)
    held = h.new.bridges["br0"]
    new_dp = held.datapath
    assert isinstance(new_dp, DummyDatapath)
    assert held.bridge.stp is not None
    assert {held.bridge.stp.state(p) for p in held.bridge.stp.ports} == {"listening"}
    new_dp.pop_sent()  # the new tree's first BPDUs
    assert len(held.bridge.revalidator) == new_dp.flow_count() > 0  # all adopted
    new_dp.receive(p1, frame(A, B2))  # no run(): the handed-over flow alone decides
    new_dp.receive(p2, frame(B2, A))
    assert new_dp.pop_sent() == {}


def test_the_commit_sweeps_a_bounded_part_and_the_runs_go_on(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit's sweep delays every packet queued during the freeze, so it takes at
    most COMMIT_SWEEP flows; the next run goes on with the rest."""
    monkeypatch.setattr(bridge_mod, "COMMIT_SWEEP", 2)
    old = Side(clock)
    dp, bridge = old.add()
    for i in range(6):
        send(dp, bridge, clock, 1 + i % 3, A + i, 0xFFFFFFFFFFFF)
    assert dp.flow_count() == 6
    h = handoff(old, clock)
    new = h.new.bridges["br0"].bridge
    assert len(new.revalidator) == 2 and new.revalidator.sweeping
    new.run(clock())
    assert len(new.revalidator) == 6 and not new.revalidator.sweeping



def test_macs_adopted_on_a_port_the_bridge_does_not_have_are_forgotten(clock: Clock) -> None:
    """Handed-over MAC entries on a port number no interface of the configuration has
    (9: gone before the handoff) go at the next configuration; the others stay."""
    side = Side(clock)
    _, bridge = side.add()
    macs = [MacEntryV1(0, (A + i).to_bytes(6, "big"), port, 1.0)
            for i, port in enumerate((1, 2, 9, 9))]  # fmt: skip
    bridge.adopt_learned(macs, bridge.ofport_numbers(), clock())
    assert sorted(bridge.mac.port_counts().items()) == [(1, 1), (2, 1), (9, 2)]
    bridge.reconfigure(CFG, clock())
    assert sorted(bridge.mac.port_counts().items()) == [(1, 1), (2, 1)]
