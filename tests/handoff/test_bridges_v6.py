"""State version 6's bridge records, two engines in one process: a select group's
selection method and a rule's modified time (apart from its creation) cross a handoff
in every way it can go (pre-copy, delta, whole state); towards a version 5 build a
rule's modified age goes as its one age and a selection method that would change how
the buckets are picked is refused before anything is frozen."""

from __future__ import annotations

import pytest

from hitless.handoff.engine import HandoffRefused
from hitless.ofproto.bridge import Bridge
from hitless.openflow import Bucket, GroupMod, Output
from hitless.openflow.constants import GroupModCommand, GroupType
from hitless.openflow.match import field as oxm
from hitless.openflow.messages import SelectionMethod
from hitless.state import snapshot
from hitless.state.snapshot import SnapshotError
from tests.handoff.pair import Clock, handoff, old_switch, rule, tables

HASH = SelectionMethod("hash", 7, (oxm("ipv4_src", 0xFFFFFFFF), oxm("tcp_src", 0xFFFF)))
DP_HASH = SelectionMethod("dp_hash", 0, ())


def select_group(bridge: Bridge, now: float, gid: int, sel: SelectionMethod | None,
                 command: int = GroupModCommand.ADD) -> None:  # fmt: skip
    bridge.group_mod(
        GroupMod(
            command=command, group_type=GroupType.SELECT, group_id=gid,
            buckets=(Bucket(actions=(Output(2),)), Bucket(actions=(Output(3),))),
            selection=sel,
        ),
        now,
    )  # fmt: skip


@pytest.mark.parametrize(
    "features", [("delta", "openflow-delta"), ("delta",), ()], ids=["of-delta", "delta", "whole"]
)
def test_selection_methods_cross_a_handoff_however_it_goes(features: tuple[str, ...]) -> None:
    """One group set before the pre-copy, one added and one changed between the
    pre-copy and the freeze: the new side holds each with its method, basis and fields."""
    clock = Clock()
    sw, _, bridge = old_switch(clock)
    select_group(bridge, clock(), 1, HASH)
    select_group(bridge, clock(), 2, None)

    def between() -> None:
        clock.t += 1
        select_group(bridge, clock(), 3, DP_HASH)
        select_group(bridge, clock(), 2, HASH, GroupModCommand.MODIFY)

    h = handoff(sw, clock, between, features=features)
    new = h.new.bridges["br0"].bridge
    assert {g: new.of.groups[g].selection for g in (1, 2, 3)} == {1: HASH, 2: HASH, 3: DP_HASH}
    assert tables(new, clock()) == tables(bridge, clock())


@pytest.mark.parametrize("features", [("delta", "openflow-delta"), ()], ids=["delta", "whole"])
def test_a_rules_modified_time_crosses_apart_from_its_creation(features: tuple[str, ...]) -> None:
    """A rule added at 1000 and refreshed at 1030 (as a learn action refreshes it): after
    the handoff its duration still counts from 1000 and its modified time is 1030. A
    rule refreshed between the pre-copy and the freeze comes again with the delta."""
    clock = Clock()
    sw, _, bridge = old_switch(clock)
    bridge.flow_mod(rule(1, hard_timeout=100), clock())
    bridge.flow_mod(rule(2, hard_timeout=100), clock())
    clock.t += 30
    r1 = next(r for r in bridge.of.rules() if r.match == rule(1).match)
    r1.modified = clock()

    def between() -> None:
        clock.t += 5
        r2 = next(r for r in bridge.of.rules() if r.match == rule(2).match)
        r2.modified = clock()
        journal = bridge.of.tables[0].journal  # as a learn action's refresh journals it
        if journal is not None:
            journal.add((0, r2.ident))

    h = handoff(sw, clock, between, features=features)
    new = h.new.bridges["br0"].bridge
    got = {bytes(r.match.encode()): (r.created, r.modified) for r in new.of.rules()}
    assert got[rule(1).match.encode()] == pytest.approx((1000.0, 1030.0))
    assert got[rule(2).match.encode()] == pytest.approx((1000.0, 1035.0))


def test_towards_version_5_a_rules_age_is_its_modified_age_and_both_sides_agree() -> None:
    """A version 5 build has one age per rule and counts a hard timeout from it: the rule
    refreshed at 1030 arrives created at 1030 (its hard timeout then ends when it would
    have here); the digests of both sides agree (``handoff`` checks them)."""
    clock = Clock()
    sw, _, bridge = old_switch(clock)
    bridge.flow_mod(rule(1, hard_timeout=100), clock())
    clock.t += 30
    (r1,) = [r for r in bridge.of.rules() if r.match == rule(1).match]
    r1.modified = clock()
    clock.t += 5
    h = handoff(sw, clock, version=5)
    (got,) = [r for r in h.new.bridges["br0"].bridge.of.rules() if r.match == rule(1).match]
    assert (got.created, got.modified) == pytest.approx((1030.0, 1030.0))
    assert got.expiry() == pytest.approx(r1.modified + 100)


def test_towards_version_5_a_hash_over_fields_is_refused_before_anything_is_frozen() -> None:
    """The refusal comes from the pre-copy's first step (the old side serves on,
    nothing frozen); dp_hash goes down as the default method (the buckets are picked
    the same there)."""
    clock = Clock()
    sw, _, bridge = old_switch(clock)
    select_group(bridge, clock(), 3, DP_HASH)
    select_group(bridge, clock(), 4, HASH)
    ex = sw.exporter()
    job = ex.precopy_job(clock(), True, 5)
    with pytest.raises(HandoffRefused, match=r"group 4 has selection_method=hash with fields"):
        job.step(float("inf"))
    assert ex.baseline is None
    ex.finish(False)
    select_group(bridge, clock(), 4, None, GroupModCommand.MODIFY)  # what the message says
    h = handoff(sw, clock, version=5)
    new = h.new.bridges["br0"].bridge
    assert {g: new.of.groups[g].selection for g in (3, 4)} == {3: None, 4: None}


def test_a_hash_set_between_the_precopy_and_a_version_5_freeze_fails_the_handoff() -> None:
    """Set after the pre-copy's check: the freeze's delta cannot be encoded for version 5
    (the old process rolls back: the handoff fails, nothing is lost)."""
    clock = Clock()
    sw, _, bridge = old_switch(clock)
    select_group(bridge, clock(), 4, None)
    with pytest.raises(SnapshotError, match="group 4 has selection_method=hash"):
        handoff(sw, clock, lambda: select_group(bridge, clock(), 4, HASH, GroupModCommand.MODIFY),
                version=5)  # fmt: skip
    assert bridge.of.groups[4].selection == HASH


def test_version_6_golden_refuses_to_go_down_and_goes_without_its_hash() -> None:
    from pathlib import Path

    import msgspec

    path = Path(__file__).parents[1] / "golden" / "state-v6.snap"
    _, state = snapshot.decode(path.read_bytes())
    with pytest.raises(SnapshotError, match="group 7 has selection_method=hash with fields"):
        snapshot.as_version(state, 5)
    (br,) = state.bridges
    assert br.openflow is not None
    plain = msgspec.structs.replace(
        br, openflow=msgspec.structs.replace(
            br.openflow, groups=[msgspec.structs.replace(g, selection=None)
                                 for g in br.openflow.groups]),
    )  # fmt: skip
    down = snapshot.as_version(msgspec.structs.replace(state, bridges=[plain]), 5)
    (of5,) = [b.openflow for b in down.bridges]  # type: ignore[attr-defined]
    # the refreshed rule: its age as a version 5 build has it is its modified age
    assert [r.age for r in of5.rules] == [r.modified for r in br.openflow.rules]
    assert [r.age for r in br.openflow.rules] != [r.modified for r in br.openflow.rules]
    # and back up, the builtin migration and the typed conversion agree
    builtin = snapshot.convert(msgspec.to_builtins(down, builtin_types=(bytes,)), 5, 7)
    assert msgspec.convert(builtin, snapshot.STATE_TYPES[7]) == snapshot.decode(
        snapshot.encode(down, software="t", taken=0.0, version=5)
    )[1]
