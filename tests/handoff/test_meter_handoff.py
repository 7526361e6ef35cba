"""Metered megaflows across a handoff (state format 3), old and new side in one process on
the dummy datapath and one fake clock: at version 3 (delta or whole) the megaflows keep
their meter action and the meters' token buckets carry on where they were, so an
upgrade lets no extra burst through; at version 2 (a build that knows no datapath
meters) the snapshot has neither, the new side's revalidator puts the meter actions
back (its first sweep adopts them), and both sides agree on the version 2 digest."""

from __future__ import annotations

import msgspec
import pytest

from hitless.datapath.actions import Meter
from hitless.datapath.actions import Output as DpOutput
from hitless.datapath.dummy import DummyDatapath
from hitless.handoff import engine
from hitless.ofproto.bridge import Bridge
from hitless.openflow import ApplyActions, FlowMod, Match, MeterBand, MeterInstruction, MeterMod
from hitless.openflow import Output as OfOutput
from hitless.openflow.constants import FlowModCommand, MeterFlags, MeterModCommand
from hitless.state import ledger, records, snapshot
from tests.handoff.pair import CFG, Clock, Side, frame, handoff, old_switch, one_clock

RATE, BURST = 10, 20  # packets/s, packets
SRC, DST = 0x020000000001, 0x020000000002


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One fake clock for both sides: the new side's dummy datapaths run on it too (as
    CLOCK_MONOTONIC is one clock for both processes)."""
    return one_clock(monkeypatch)


def metered(clock: Clock) -> tuple[Side, DummyDatapath, Bridge]:
    """A bridge whose rule sends port 1's traffic through meter 1 to port 2."""
    sw, dp, bridge = old_switch(clock)
    band = MeterBand(rate=RATE, burst_size=BURST)
    bridge.meter_mod(
        MeterMod(
            command=MeterModCommand.ADD,
            flags=MeterFlags.PKTPS | MeterFlags.BURST,
            meter_id=1,
            bands=(band,),
        ),
        clock(),
    )
    bridge.flow_mod(
        FlowMod(
            command=FlowModCommand.ADD,
            priority=10,
            match=Match.of(in_port=1),
            instructions=(MeterInstruction(1), ApplyActions((OfOutput(2),))),
        ),
        clock(),
    )
    bridge.commit_openflow()
    return sw, dp, bridge


def send(dp: DummyDatapath, bridge: Bridge, clock: Clock, n: int) -> int:
    """n frames into port 1 at the current time; how many came out of port 2."""
    got = 0
    for _ in range(n):
        dp.receive(1, frame(SRC, DST))
        bridge.run(clock())
        got += len(dp.pop_sent().get(2, []))
    return got


def drained(clock: Clock) -> tuple[Side, DummyDatapath, Bridge]:
    """The metered bridge after a burst emptied the bucket and 0.5 s refilled 5 tokens."""
    sw, dp, bridge = metered(clock)
    assert send(dp, bridge, clock, BURST + 5) == BURST
    clock.t += 0.5
    assert dp.meters.levels(1, clock()) == (5.0,)
    flows = list(dp.flow_dump())
    assert len(flows) == 1 and Meter(1) in flows[0].actions
    return sw, dp, bridge


def new_side(imp: engine.ImportEngine, clock: Clock) -> tuple[Bridge, DummyDatapath]:
    bridge, dp = imp.restored["br0"]
    bridge.reconfigure(CFG, clock())  # what commit does with the database's configuration
    assert isinstance(dp, DummyDatapath)
    return bridge, dp


def test_delta_handoff_carries_the_token_buckets_and_the_meter_actions(clock: Clock) -> None:
    sw, dp, bridge = drained(clock)
    h = handoff(sw, clock)  # digests and counts agree
    assert isinstance(h.frozen.state, records.Delta)
    new_bridge, new_dp = new_side(h.imp, clock)
    assert [f.actions for f in new_dp.flow_dump()] == [f.actions for f in dp.flow_dump()]
    assert new_dp.meters.levels(1, clock()) == (5.0,)
    assert send(new_dp, new_bridge, clock, 10) == 5  # not the 10 a full bucket lets through


def test_whole_state_handoff_at_version_3_carries_the_token_buckets(clock: Clock) -> None:
    sw, dp, bridge = drained(clock)
    h = handoff(sw, clock, features=())  # digests and counts agree
    assert isinstance(h.frozen.state, records.State)
    (br,) = h.frozen.state.bridges
    meters = br.datapath.handles.meters  # typed records (state version 7)
    assert [m.tokens for m in meters] == [[0.0]]
    new_bridge, new_dp = new_side(h.imp, clock)
    assert new_dp.meters.levels(1, clock()) == (5.0,)
    clock.t += 0.5  # refilling goes on from the old side's time
    assert send(new_dp, new_bridge, clock, 15) == 10


def test_handoff_at_version_2_drops_meter_actions_and_buckets_and_digests_agree(
    clock: Clock,
) -> None:
    """What a build that reads version 2 at most gets: megaflows without the meter
    action it cannot parse, no buckets. The v2 digest is the same on both sides."""
    sw, dp, bridge = drained(clock)
    ex = sw.exporter(())
    ex.precopy(clock(), False)
    frozen = ex.freeze(False)
    assert isinstance(frozen.state, records.State)
    data = snapshot.encode(frozen.state, software="t", taken=clock(), version=2)
    env = snapshot.read_envelope(data)
    v2 = msgspec.msgpack.decode(env.payload, type=records.StateV2)  # as a v2 build reads it
    (br,) = v2.bridges
    assert env.version == 2 and "meters" not in br.datapath.handles
    assert [f.actions for f in br.datapath.flows] == [[["output", 2]]]
    old_digest = ledger.state_digest(snapshot.as_version(frozen.state, 2))  # handoff_old
    assert ledger.state_digest(v2) == old_digest

    _, state = snapshot.decode(data)
    imp = engine.ImportEngine(clock, Bridge)
    digest, counts = imp.restore(state, [], 2)
    assert digest == old_digest
    assert counts == snapshot.summary(snapshot.as_version(frozen.state, 2))
    new_bridge, new_dp = new_side(imp, clock)
    assert [f.actions for f in new_dp.flow_dump()] == [(DpOutput(2),)]
    new_bridge.run(clock())  # the first sweep adopts the handed-over flows, re-translated:
    assert [f.actions for f in new_dp.flow_dump()] == [f.actions for f in dp.flow_dump()]
    assert new_dp.meters.levels(1, clock()) == (float(BURST),)
    assert send(new_dp, new_bridge, clock, BURST + 5) == BURST
