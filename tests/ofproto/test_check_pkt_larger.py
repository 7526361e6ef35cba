"""``check_pkt_larger(len)->dst`` on the dummy datapath: translation forks into the
datapath's ``check_pkt_len(size, gt(...), le(...))`` (one megaflow for every packet
length), the rest of the pipeline is translated once per branch, both branches' rules
count every packet (as Open vSwitch 3.1 counts them), actions after the resubmit that
held the check run in both branches, and the action survives a handoff's JSON form."""

from __future__ import annotations

from hitless.datapath.actions import CheckPktLen, Output, actions_from_json, actions_to_json
from hitless.datapath.execute import apply_actions
from hitless.openflow.actions import Output as OfOutput
from hitless.openflow.nx_actions import CheckPktLarger, Clone, RegLoad, Resubmit, Sample
from tests.ofproto.helpers import mac, tcp
from tests.ofproto.test_nx_pipeline import IP, add, clear, m, rig, sf


def _big(n: int) -> bytes:
    small = tcp(mac(2), mac(1))
    return small + bytes(n - len(small))


def test_check_pkt_larger_forks_in_the_datapath_and_counts_both_branches() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    # OVS's own shape: table 0 resubmits, table 1 checks then resubmits to table 2,
    # whose rules pick by the bit; output:p3 after the resubmit runs for every packet.
    add(r, 0, 10, m(eth_type=IP), Resubmit(table=1), OfOutput(p3))
    add(r, 1, 10, m(), CheckPktLarger(200, sf("reg0", 0, 1)), Resubmit(table=2))
    add(r, 2, 10, m(reg0=(1, 1)), OfOutput(p2))
    add(r, 2, 10, m(reg0=(0, 1)), RegLoad(sf("reg1"), 5), Resubmit(table=3))
    add(r, 3, 10, m(reg1=5), OfOutput(p2), OfOutput(p2 + 100))  # the second: no such port
    small, big = tcp(mac(2), mac(1)), _big(300)
    assert len(small) <= 200 < len(big)
    assert {k: len(v) for k, v in r.send("p1", small).items()} == {"p2": 1, "p3": 1}
    assert {k: len(v) for k, v in r.send("p1", big).items()} == {"p2": 1, "p3": 1}
    assert {k: len(v) for k, v in r.send("p1", big).items()} == {"p2": 1, "p3": 1}
    flows = list(r.dp.flow_dump())
    assert len(flows) == 1  # one megaflow whatever the length
    (acts,) = [f.actions for f in flows]
    assert isinstance(acts[-1], CheckPktLen) and acts[-1].size == 200
    assert acts[-1].gt == (Output(p2), Output(p3))
    assert acts[-1].le == (Output(p2), Output(p3))
    assert str(acts[-1]).startswith("check_pkt_len(size=200,gt(")
    r.bridge.settle_counters()
    counts = {(x.table_id, x.priority, str(x.match)): x.packets for x in r.bridge.of.rules()}
    by_table: dict[int, list[int]] = {}
    for (t, _, _), n in counts.items():
        by_table.setdefault(t, []).append(n)
    # every rule counted all three packets: both branches are credited (OVS 3.1 does)
    assert by_table[1] == [3] and sorted(by_table[2]) == [3, 3] and by_table[3] == [3]


def test_the_branch_a_packet_takes_is_the_datapaths_choice() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    add(r, 0, 10, m(eth_type=IP), CheckPktLarger(100, sf("reg3", 7, 1)), Resubmit(table=1))
    add(r, 1, 10, m(reg3=(0x80, 0x80)), OfOutput(p2))
    add(r, 1, 5, m(), Clone((OfOutput(p3),)), Sample(1))
    small, big = tcp(mac(2), mac(1)), _big(101)
    assert list(r.send("p1", big)) == ["p2"]
    assert list(r.send("p1", small)) == ["p3"]
    assert list(r.send("p1", _big(100))) == ["p3"]  # not larger: equal
    assert list(r.send("p1", big)) == ["p2"]
    assert len(list(r.dp.flow_dump())) == 1


def test_a_check_last_in_its_list_does_nothing_and_nested_checks_fork_twice() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    # last in its list: skipped (Open vSwitch does not even write the bit)
    add(r, 0, 10, m(eth_type=IP), RegLoad(sf("reg0"), 1), CheckPktLarger(10, sf("reg0", 0, 1)))
    assert r.send("p1", tcp(mac(2), mac(1))) == {}
    clear(r)
    add(r, 0, 10, m(eth_type=IP), CheckPktLarger(100, sf("reg0", 0, 1)),
        CheckPktLarger(200, sf("reg0", 1, 1)), Resubmit(table=1))  # fmt: skip
    add(r, 1, 10, m(reg0=(1, 3)), OfOutput(p2))  # 100 < len <= 200
    add(r, 1, 10, m(reg0=(3, 3)), OfOutput(p3))  # len > 200
    assert r.send("p1", tcp(mac(2), mac(1))) == {}
    assert list(r.send("p1", _big(150))) == ["p2"]
    assert list(r.send("p1", _big(250))) == ["p3"]
    (f,) = r.dp.flow_dump()
    outer = f.actions[-1]
    assert isinstance(outer, CheckPktLen) and outer.size == 100
    assert outer.le == () and outer.gt[0] == CheckPktLen(200, (Output(p3),), (Output(p2),))


def test_check_pkt_len_json_round_trip_and_execution() -> None:
    acts = (Output(1), CheckPktLen(60, (Output(2), CheckPktLen(80, (Output(4),), ())), (Output(3),)))
    assert actions_from_json(actions_to_json(acts)) == acts
    for n, want in ((60, [1, 3]), (70, [1, 2]), (90, [1, 2, 4])):
        out, _ = apply_actions(bytes(n), acts)
        assert [p for p, _ in out] == want
