"""The digest ledger (hitless.state.ledger): a pre-copy's ledger moved by a delta holds
exactly what a ledger of the final state holds, whatever changed in between; a delta
that does not fit its pre-copy is refused; and the full-state digest is unchanged by
the move of the snapshot code to hitless.state (the golden files pin it too)."""

from __future__ import annotations

import pytest

from hitless.state.ledger import Ledger, LedgerError, multiset_digest, state_digest
from hitless.state.records import (
    BridgeDelta,
    BridgeState,
    DatapathV1,
    DatapathV7,
    Delta,
    FlowV1,
    MacEntryV1,
    OfGroupV2,
    OfMeterV2,
    OfRuleCountersV2,
    OfRuleV2,
    OpenFlowDeltaV2,
    OpenFlowV2,
    PortV1,
    State,
)


def rule(i: int, priority: int = 10) -> OfRuleV2:
    return OfRuleV2(0, priority, i.to_bytes(8, "big"), b"\x00\x04", 0, 0, 0, 0, 0, 1.0, 1.0, 5, 50)


def flow(i: int, out: int = 1) -> FlowV1:
    return FlowV1(i.to_bytes(4, "big"), b"\xff" * 4, [["output", out]], 3, 300, 0.5)


def mac(i: int, port: int = 1) -> MacEntryV1:
    return MacEntryV1(1, i.to_bytes(6, "big"), port, 2.0)


def bridge(name: str, *, ports: int = 2, flows: int = 3, macs: int = 3, rules: int = 4,
           group: int = 0) -> BridgeState:  # fmt: skip
    groups = [OfGroupV2(group, 0, b"b", 1.0, 0, 0)] if group else []
    return BridgeState(
        name,
        DatapathV1("dummy", {}, [flow(i) for i in range(flows)]),
        [PortV1(f"{name}p{i}", i + 1) for i in range(ports)],
        {},
        [mac(i) for i in range(macs)],
        {},
        OpenFlowV2([rule(i) for i in range(rules)], groups, [OfMeterV2(1, 0, b"m", 1.0, 0, 0)]),
    )


def moved(pre: State, delta: Delta) -> Ledger:
    book = Ledger.of_state(pre)
    book.apply_delta(delta)
    return book


def test_an_empty_delta_keeps_the_pre_copy_and_a_ledger_equals_the_whole_digest() -> None:
    pre = State([bridge("a"), bridge("b", group=7)])
    book = Ledger.of_state(pre)
    assert book.value == multiset_digest(pre) != 0
    same = Delta([BridgeDelta(BridgeState(b.name, b.datapath, b.ports, {}, [], {}, b.openflow))
                  for b in pre.bridges])  # fmt: skip
    assert moved(pre, same).value == book.value
    # A bridge missing from the delta was destroyed: the digest drops it.
    assert moved(pre, Delta(same.bridges[:1])).value == multiset_digest(State(pre.bridges[:1]))


def test_a_delta_moves_the_ledger_to_the_final_state_item_by_item() -> None:
    a = bridge("a")
    pre = State([a, bridge("gone")])
    # Final state of bridge a: flow 0 removed, flow 1 re-pointed, flow 9 new; MAC 0
    # removed, MAC 1 moved to port 2, MAC 8 new; a port added; rule 1 removed, rule 2
    # replaced by a lower-priority one, rule 9 added; the group appears.
    final_a = BridgeState(
        "a",
        DatapathV1("dummy", {}, [flow(1, out=2), flow(2), flow(9)]),
        [*a.ports, PortV1("ap9", 9)],
        {},
        [mac(1, port=2), mac(2), mac(8)],
        {},
        OpenFlowV2([rule(0), rule(3), rule(2, priority=5), rule(9)],
                   [OfGroupV2(3, 0, b"b", 1.0, 0, 0)], a.openflow.meters),  # fmt: skip
    )
    new_c = bridge("c", rules=1)
    delta = Delta([
        BridgeDelta(
            BridgeState("a", DatapathV1("dummy", {}, [flow(1, out=2), flow(2), flow(9)]),
                        final_a.ports, {}, [mac(1, port=2), mac(8)], {}, None),
            removed_flows=[(flow(0).key, flow(0).mask)],
            removed_macs=[(1, mac(0).mac)],
            openflow_delta=OpenFlowDeltaV2(
                removed=[1, 2], added=[rule(2, priority=5), rule(9)],
                counters=[OfRuleCountersV2(0, 0.1, 9, 90)],
                groups=final_a.openflow.groups, meters=final_a.openflow.meters,
            ),
        ),
        BridgeDelta(new_c, new=True),
    ])  # fmt: skip
    want = multiset_digest(State([final_a, new_c]))
    assert moved(pre, delta).value == want
    # The same without the rule-by-rule delta: the whole OpenFlow state replaces it.
    whole = delta.bridges[0]
    whole = BridgeDelta(
        BridgeState("a", whole.changed.datapath, whole.changed.ports, {},
                    whole.changed.mac_entries, {}, final_a.openflow),
        whole.removed_flows, whole.removed_macs,
    )  # fmt: skip
    assert moved(pre, Delta([whole, delta.bridges[1]])).value == want
    # Any item left out shows: a MAC change the delta forgot.
    short = BridgeDelta(
        BridgeState("a", whole.changed.datapath, whole.changed.ports, {}, [mac(8)], {},
                    final_a.openflow),
        whole.removed_flows, whole.removed_macs,
    )  # fmt: skip
    assert moved(pre, Delta([short, delta.bridges[1]])).value != want


def test_live_ports_that_differ_from_the_sent_ones_change_the_digest() -> None:
    pre = State([bridge("a")])
    book = Ledger.of_state(pre)
    before = book.value
    book.set_ports("a", pre.bridges[0].ports[:1])  # one port failed to be adopted
    assert book.value != before
    book.set_ports("a", pre.bridges[0].ports)
    assert book.value == before


@pytest.mark.parametrize(
    ("removed", "counters"),
    [([4], []), ([-1], []), ([], [9]), ([1, 1], [])],
    ids=["past-the-end", "negative", "counters-past-the-end", "removed-twice"],
)
def test_an_openflow_delta_that_does_not_fit_the_pre_copy_is_refused(
    removed: list[int], counters: list[int]
) -> None:
    pre = State([bridge("a")])
    book = Ledger.of_state(pre)
    ofd = OpenFlowDeltaV2(removed=removed, counters=[OfRuleCountersV2(i, 0, 0, 0) for i in counters])
    b = pre.bridges[0]
    d = BridgeDelta(BridgeState("a", b.datapath, b.ports, {}, [], {}, None), openflow_delta=ofd)
    with pytest.raises(LedgerError, match="rule"):
        book.apply_delta(Delta([d]))


def test_an_openflow_delta_for_tables_the_pre_copy_did_not_carry_is_refused() -> None:
    b = bridge("a")
    pre = State([BridgeState("a", b.datapath, b.ports, {}, [], {}, None)])
    d = BridgeDelta(pre.bridges[0], openflow_delta=OpenFlowDeltaV2())
    with pytest.raises(LedgerError, match="did not carry"):
        Ledger.of_state(pre).apply_delta(Delta([d]))


def test_the_full_state_digest_ignores_order_ages_and_counters() -> None:
    a = bridge("a")
    shuffled = BridgeState(
        "a",
        DatapathV1("dummy", {"x": 1}, [FlowV1(f.key, f.mask, f.actions, 0, 0, 9.0)
                                       for f in reversed(a.datapath.flows)]),
        list(reversed(a.ports)), {}, [MacEntryV1(m.vlan, m.mac, m.port, 99.0)
                                      for m in reversed(a.mac_entries)], {}, a.openflow,
    )  # fmt: skip
    assert state_digest(State([a])) == state_digest(State([shuffled]))
    assert multiset_digest(State([a])) == multiset_digest(State([shuffled]))
    assert state_digest(State([a])) != state_digest(State([bridge("a", macs=2)]))


def test_a_flow_digests_the_same_as_version_7_records_and_as_version_6_json() -> None:
    """Builds of versions 6 and 7 verify one handoff together: a megaflow's typed actions
    count in the digests as their version 1 JSON form does (a ct label, NAT addresses and
    a check_pkt_len's branches included)."""
    from hitless.datapath.actions import (
        CheckPktLen,
        Ct,
        Output,
        SetField,
        actions_to_json,
        actions_to_records,
    )
    from hitless.datapath.conntrack import NatSpec
    from hitless.state import ledger as lg
    from hitless.state.records import FlowV7

    acts = (
        Ct(3, True, False, NatSpec("src", b"\x0a\0\0\x01", b"\x0a\0\0\x02", 1, 9), (1, 255),
           (1 << 127, (1 << 128) - 1)),
        SetField("eth_src", b"\x02" * 6, None),
        CheckPktLen(100, (Output(1),), (Output(2),)),
    )  # fmt: skip
    j, r = actions_to_json(acts), actions_to_records(acts)
    assert lg.flow_item("b", b"k", b"m", r) == lg.flow_item("b", b"k", b"m", j)
    assert lg.flow_item("b", b"k", b"m", r[:2]) != lg.flow_item("b", b"k", b"m", j)
    v7 = FlowV7(b"k", b"m", r, 1, 2, 0.5)
    v6 = FlowV1(b"k", b"m", j, 1, 2, 0.5)
    s7 = State([BridgeState("a", DatapathV7("dummy", None, [v7]))])
    s6 = State([BridgeState("a", DatapathV1("dummy", {}, [v6]))])
    assert lg.state_digest(s7) == lg.state_digest(s6)
