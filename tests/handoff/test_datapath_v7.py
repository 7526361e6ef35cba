"""State version 7's datapath records: megaflows whose actions are typed records and
handles that are the datapath type's record (a netdev datapath's queued misses typed).

Two engines in one process (``tests/handoff/pair.py``) hand over megaflows holding every
kind of datapath action, at version 7 and towards builds of versions 6 and 5 (which get
the JSON form): the new datapath holds the same actions and both sides' digests agree.
A netdev datapath's queued misses go out as records and come back as the same upcalls,
at version 7 and through version 6's hex wire form."""

from __future__ import annotations

import msgspec
import pytest

from hitless.datapath.actions import (
    Action,
    CheckPktLen,
    Clone,
    Ct,
    CtClear,
    Meter,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    Recirc,
    Sample,
    SetField,
    SetPriority,
    Userspace,
    actions_from_records,
    actions_to_json,
    actions_to_records,
)
from hitless.datapath.base import Upcall
from hitless.datapath.conntrack import NatSpec
from hitless.datapath.netdev import NetdevDatapath
from hitless.handoff import engine
from hitless.packet.flow import Match, extract_key, full_mask, make_key
from hitless.state import handles as dp_handles
from hitless.state import records, snapshot
from tests.handoff.pair import ALL_FEATURES, Clock, handoff, old_switch

NAT = NatSpec("src", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 7]), 1024, 2047, True, True)
ACTIONS: list[tuple[Action, ...]] = [
    (Output(2),),
    (),  # drop
    (PushVlan(0x2064, 0x88A8), PopVlan(), Output(3)),
    (PushMpls(0x12345140, 0x8847), Output(2)),
    (PopMpls(0x0800), SetField("ipv4_dst", bytes([10, 9, 9, 9]), None), Output(1)),
    (SetField("eth_src", b"\x02" * 6, b"\xff" * 5 + b"\x00"), Output(2)),
    (Userspace(b"\x01\x02"), Sample(0x80000000, b"\x00\x00\x00\x05"), Output(2)),
    (Meter(3, 1), Output(2), Output(3)),
    (SetPriority(0x10002), Output(2)),
    (Ct(7, True, True, NAT, (0x2A, 0xFFFF), (1 << 127 | 5, (1 << 128) - 1)), Recirc(0x30)),
    (Ct(), CtClear(), Output(1)),
    (CheckPktLen(1000, (Output(1), CheckPktLen(64, (), (Output(3),))), (Output(2),)),),
    (Clone((Ct(5, True, False, NAT), Recirc(0x31), Output(2))), Clone(()), Output(3)),
]
GATED = tuple(f"action:{n}" for n in engine._GATED_HINT)


def test_every_action_kind_has_a_record_and_comes_back_the_same() -> None:
    """The two conversion tables cover every datapath action type; the JSON form a
    version 6 build reads is what it always was (the migration's two directions
    included)."""
    from typing import get_args

    from hitless.datapath import actions as mod

    kinds = set(get_args(mod.Action))
    assert set(mod._TO_RECORD) == kinds
    assert set(mod._FROM_RECORD) == set(get_args(records.ActionV7))
    seen = {type(a) for acts in ACTIONS for a in engine._nested(acts)}
    assert seen == kinds, kinds - seen
    for acts in ACTIONS:
        recs = actions_to_records(acts)
        assert actions_from_records(recs) == acts
        wire = msgspec.msgpack.encode(recs)
        assert msgspec.msgpack.decode(wire, type=tuple[records.ActionV7, ...]) == recs
        assert snapshot.actions_down(recs) == actions_to_json(acts)
        assert snapshot.actions_up(actions_to_json(acts)) == recs


def _megaflows(dp: object, bridge: object) -> dict[Match, tuple[Action, ...]]:
    """Put one megaflow per action list; the bridge's revalidator is told not to adopt
    them (its translation of these keys would replace their actions)."""
    mask = full_mask("in_port", "eth_src", "eth_dst")
    out = {}
    for i, acts in enumerate(ACTIONS):
        m = Match.of(make_key(in_port=1, eth_src=0x020000000100 + i, eth_dst=0x0400000000FF), mask)
        dp.flow_put(m, acts)  # type: ignore[attr-defined]
        out[m] = acts
    bridge.revalidator.settle_flows = lambda flows, now: None  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("version", [7, 6, 5])
@pytest.mark.parametrize("features", [ALL_FEATURES, ()], ids=["delta", "whole"])
def test_megaflows_with_every_action_cross_at_version_7_and_towards_older_builds(
    version: int, features: tuple[str, ...]
) -> None:
    """The new datapath holds each megaflow with the very actions the old one had, and
    both sides' digests and counts agree (``handoff`` checks them), whether the peer
    reads records (7) or the JSON form (6, 5); a megaflow changed between the pre-copy
    and the freeze comes with the delta."""
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    flows = _megaflows(dp, bridge)
    changed = next(iter(flows))

    def between() -> None:
        dp.flow_put(changed, ACTIONS[9])
        flows[changed] = ACTIONS[9]

    h = handoff(sw, clock, between, features=(*features, *GATED), version=version, adopt=False)
    new_dp = h.new.bridges["br0"].datapath
    assert {f.match.key: f.actions for f in new_dp.flow_dump()} == {
        m.key: acts for m, acts in flows.items()
    }


def _upcalls() -> list[Upcall]:
    """Two misses whose key is the packet's (the adopter extracts it again) and one
    recirculated whose key carries its ct state."""
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)
    sampled = b"\x05" * 60
    ct_key = make_key(in_port=2, recirc_id=0x30, ct_state=0x21, ct_zone=7)
    return [
        Upcall(1, arp, extract_key(arp, 1), "miss"),
        Upcall(2, b"\x04" * 6 + b"\x02" * 6 + b"\x08\x00" + bytes(40), ct_key, "miss"),
        Upcall(1, sampled, extract_key(sampled, 1), "action", b"\x00\x00\x00\x05"),
    ]


@pytest.mark.parametrize("version", [7, 6])
def test_a_netdev_datapaths_queued_misses_cross_as_records(version: int) -> None:
    """Misses queued at the freeze leave as ``UpcallV1`` records (a recirculated one
    with its key: its ct state is not in the packet) and come back as the same upcalls
    in the adopting datapath, through version 7's records or version 6's hex."""
    old = NetdevDatapath("nd0", max_upcalls=64)
    queued = _upcalls()
    for u in queued:
        assert old._upcalls.push(u)
    rec, fds = old.export_handles()
    assert fds == [] and [u.key is not None for u in rec.upcalls] == [False, True, False]
    dp = records.DatapathV7("netdev", rec)
    if version == 7:
        got = msgspec.msgpack.decode(msgspec.msgpack.encode(dp), type=records.DatapathV7)
    else:
        v6 = snapshot.datapath_down_7(dp)
        assert all(isinstance(u[1], str) for u in v6.handles["upcalls"])  # hex, as before
        v6 = msgspec.msgpack.decode(msgspec.msgpack.encode(v6), type=records.DatapathV1)
        got = snapshot.datapath_up_6(v6)
    assert got.handles == rec
    assert isinstance(got.handles, dp_handles.NetdevHandlesV1)
    new = NetdevDatapath.adopt("nd0", got.handles, [])
    back = new.recv_upcalls(10)
    assert len(back) == len(queued)
    assert sorted((u.in_port, u.packet, u.key, u.reason, u.userdata) for u in back) == sorted(
        (u.in_port, u.packet, u.key, u.reason, u.userdata) for u in queued
    )
