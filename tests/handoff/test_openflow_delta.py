"""The OpenFlow delta ("openflow-delta"): the freeze carries only the rules changed since
the pre-copy and the counters that moved. Whatever happens in between (rules added,
replaced, modified, deleted, expired; traffic; groups and meters changed; a bundle rolled
back), the new side ends up with exactly the old side's tables and counters, the digests
agree, and packets the new datapath forwards before its revalidator adopted the flows
still reach the rule counters."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.datapath.dummy import DummyDatapath
from hitless.ofproto.bridge import Bridge
from hitless.openflow import (
    ApplyActions,
    Bucket,
    FlowMod,
    GroupAction,
    GroupMod,
    Match,
    Output,
)
from hitless.openflow.constants import FlowModCommand, GroupModCommand, GroupType
from hitless.state import records
from tests.handoff.pair import (
    CFG,
    SRC,
    B,
    Clock,
    Side,
    frame,
    handoff,
    old_switch,
    rule,
    tables,
    traffic,
)


def loaded(clock: Clock, n: int = 6) -> tuple[Side, DummyDatapath, Bridge]:
    sw, dp, bridge = old_switch(clock)
    for i in range(n):
        bridge.flow_mod(rule(i, 2 + i % 2), clock())
        traffic(dp, bridge, clock, i, 2)
    return sw, dp, bridge


def test_only_what_changed_travels_and_the_tables_arrive_whole() -> None:
    clock = Clock()
    sw, dp, bridge = loaded(clock, 50)

    def between() -> None:
        clock.t += 1
        bridge.flow_mod(rule(100), clock())  # added
        bridge.flow_mod(rule(1, 3), clock())  # replaced (same priority and match)
        bridge.flow_mod(rule(2, 3, command=FlowModCommand.MODIFY_STRICT), clock())  # modified
        bridge.flow_mod(rule(3, command=FlowModCommand.DELETE_STRICT), clock())  # deleted
        traffic(dp, bridge, clock, 4, 5)  # counters move on an unchanged rule
        traffic(dp, bridge, clock, 100, 2)  # and on the new one

    h = handoff(sw, clock, between)
    assert isinstance(h.frozen.state, records.Delta)
    (bd,) = h.frozen.state.bridges
    ofd = bd.openflow_delta
    assert ofd is not None and bd.changed.openflow is None
    assert len(ofd.added) == 3 and len(ofd.removed) == 3  # 100; 1 and 2 re-sent; 1, 2, 3 gone
    # Unchanged rules travel as counters only: rule 4 (index 5: after the default NORMAL
    # rule), which the traffic in between hit, and every other rule that had traffic
    # (0 and 5-49) whose packets the datapath had counted but nobody had credited when
    # the pre-copy started: the pre-copy credits them after its journal started. (A
    # rule change re-translates, and so credits, only the megaflows it can match.)
    assert sorted(c.index for c in ofd.counters) == [1, *range(5, 51)]
    new_bridge = h.new.bridges["br0"].bridge
    assert tables(new_bridge, clock()) == tables(bridge, clock())


def test_packets_forwarded_after_the_freeze_count_in_the_new_process() -> None:
    """The new datapath forwards on the adopted flows before the new revalidator has
    adopted them: those packets still reach the rules (counters never skip)."""
    clock = Clock()
    sw, dp, bridge = loaded(clock, 4)
    h = handoff(sw, clock, lambda: traffic(dp, bridge, clock, 0, 3))
    new_bridge, new_dp = h.imp.restored["br0"]
    new_bridge.reconfigure(CFG, clock())
    old_counts = [r[5] for r in tables(bridge, clock())]
    assert [r[5] for r in tables(new_bridge, clock())] == old_counts
    for _ in range(7):
        new_dp.receive(1, frame(SRC + 1))  # a datapath hit: no upcall, no revalidator
    clock.t += 2
    new_bridge.run(clock())  # the sweep adopts the flow
    after = [r[5] for r in tables(new_bridge, clock())]
    assert sum(after) - sum(old_counts) == 7, (old_counts, after)


def test_replaced_tables_fall_back_to_the_whole_state() -> None:
    """A bundle rollback replaces the tables wholesale: the journal cannot describe it,
    so the freeze carries everything (and still arrives right)."""
    clock = Clock()
    sw, dp, bridge = loaded(clock, 5)

    def between() -> None:
        snap = bridge.of.snapshot()
        bridge.flow_mod(rule(9), clock())
        bridge.of.restore(snap)  # as a failed bundle commit does

    h = handoff(sw, clock, between)
    assert isinstance(h.frozen.state, records.Delta)
    (bd,) = h.frozen.state.bridges
    assert bd.openflow_delta is None and bd.changed.openflow is not None
    assert tables(h.imp.restored["br0"][0], clock()) == tables(bridge, clock())


def test_without_the_feature_the_whole_state_travels() -> None:
    clock = Clock()
    sw, dp, bridge = loaded(clock, 5)
    h = handoff(sw, clock, lambda: bridge.flow_mod(rule(7), clock()), features=("delta",))
    assert isinstance(h.frozen.state, records.Delta)
    (bd,) = h.frozen.state.bridges
    assert bd.openflow_delta is None
    assert bd.changed.openflow is not None and len(bd.changed.openflow.rules) == 7
    assert tables(h.imp.restored["br0"][0], clock()) == tables(bridge, clock())


OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "replace", "modify", "delete", "traffic", "expire", "group"]),
        st.integers(0, 9),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(OPS)
def test_random_openflow_changes_between_precopy_and_freeze(ops: list[tuple[str, int]]) -> None:
    clock = Clock()
    sw, dp, bridge = loaded(clock, 6)
    bridge.flow_mod(rule(8, idle_timeout=5), clock())

    def between() -> None:
        for op, i in ops:
            clock.t += 0.5
            if op == "add":
                bridge.flow_mod(rule(i, 2), clock())
            elif op == "replace":
                bridge.flow_mod(rule(i, 3, cookie=i), clock())
            elif op == "modify":
                bridge.flow_mod(rule(i, 1 + i % 3, command=FlowModCommand.MODIFY), clock())
            elif op == "delete":
                bridge.flow_mod(rule(i, command=FlowModCommand.DELETE), clock())
            elif op == "traffic":
                traffic(dp, bridge, clock, i, 1 + i % 3)
            elif op == "expire":
                clock.t += 6  # rule 8's idle timeout passes
                bridge.run(clock())
            elif op == "group":
                bridge.group_mod(
                    GroupMod(
                        command=GroupModCommand.ADD
                        if i not in bridge.of.groups
                        else GroupModCommand.MODIFY,
                        group_type=GroupType.ALL,
                        group_id=i,
                        buckets=(Bucket(actions=(Output(2 + i % 2),)),),
                    ),
                    clock(),
                )
                bridge.flow_mod(
                    FlowMod(
                        priority=200,
                        match=Match.of(eth_src=SRC + i, eth_dst=B),
                        instructions=(ApplyActions((GroupAction(group_id=i),)),),
                    ),
                    clock(),
                )
            bridge.commit_openflow()

    h = handoff(sw, clock, between)
    assert tables(h.imp.restored["br0"][0], clock()) == tables(bridge, clock())


def test_an_empty_table_takes_its_first_rules_as_a_delta() -> None:
    """A bridge whose tables are empty at the pre-copy (secure fail mode, a controller
    that has not spoken yet) still takes a rule-by-rule delta."""
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF), clock())
    assert not list(bridge.of.rules())
    h = handoff(sw, clock, lambda: bridge.flow_mod(rule(1), clock()))
    assert isinstance(h.frozen.state, records.Delta)
    (bd,) = h.frozen.state.bridges
    assert bd.openflow_delta is not None and len(bd.openflow_delta.added) == 1
    assert tables(h.imp.restored["br0"][0], clock()) == tables(bridge, clock())
