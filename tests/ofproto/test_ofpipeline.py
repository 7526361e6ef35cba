"""OpenFlow translation on the dummy datapath: rules become megaflows whose masks cover
every field a rule looked at; NORMAL keeps working; counters follow the traffic; flow-mods
re-translate installed megaflows."""

from __future__ import annotations

from hitless.datapath.actions import Output as DpOutput
from hitless.ofproto.oftable import compile_match
from hitless.openflow import (
    ApplyActions,
    Bucket,
    FlowMod,
    GotoTable,
    GroupAction,
    GroupMod,
    Match,
    Output,
    PacketOut,
    PopVlan,
    PushVlan,
    SetField,
    WriteActions,
    WriteMetadata,
)
from hitless.openflow.constants import FlowModCommand, GroupModCommand, GroupType, Port
from hitless.openflow.match import field as oxm
from hitless.openflow.messages import SelectionMethod
from hitless.packet.flow import field
from tests.ofproto.helpers import P, Rig, frame, mac, tcp, vid_of

IP = 0x0800


def rig() -> Rig:
    return Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})


def flow_mod(r: Rig, **kw: object) -> None:
    kw.setdefault("command", FlowModCommand.ADD)
    r.bridge.flow_mod(FlowMod(**kw), r.clock.t)  # type: ignore[arg-type]
    r.bridge.commit_openflow()  # as the daemon does after each batch, and at a barrier


def apply(*actions: object) -> tuple[ApplyActions, ...]:
    return (ApplyActions(tuple(actions)),)  # type: ignore[arg-type]


def counters(r: Rig) -> dict[int, tuple[int, int]]:
    r.bridge.settle_counters()
    return {x.priority: (x.packets, x.bytes) for x in r.bridge.of.rules()}


def test_fresh_bridge_has_normal_rule_and_switches_as_before() -> None:
    r = rig()
    (rule,) = r.bridge.of.rules()
    assert rule.priority == 0 and not rule.mask
    assert sorted(r.send("p1", frame(mac(2), mac(1)))) == ["br0", "p2", "p3"]
    assert list(r.send("p2", frame(mac(1), mac(2)))) == ["p1"]
    assert counters(r)[0] == (2, 120)


def test_rule_on_nw_dst_makes_megaflow_match_nw_dst() -> None:
    r = rig()
    p2 = r.no("p2")
    flow_mod(
        r,
        priority=10,
        match=Match.of(eth_type=IP, ipv4_dst=0x0A000002),
        instructions=apply(Output(p2)),
    )
    assert list(r.send("p1", tcp(mac(2), mac(1), dip="10.0.0.2"))) == ["p2"]
    (f,) = [f for f in r.dp.flow_dump() if f.actions == (DpOutput(p2),)]
    assert field(f.match.mask, "ipv4_dst") == 0xFFFFFFFF
    assert field(f.match.mask, "eth_type") == 0xFFFF
    # Another destination falls to NORMAL: its megaflow must pin enough of ipv4_dst not
    # to swallow 10.0.0.2 traffic, and no more: 10.0.0.8/29 (ip_dst prefix tracking,
    # Open vSwitch's default; side by side in tests/daemon/test_flow_table.py).
    out = r.send("p1", tcp(mac(2), mac(1), dip="10.0.0.9"))
    assert sorted(out) == ["br0", "p2", "p3"]
    (f,) = [f for f in r.dp.flow_dump() if f.actions != (DpOutput(p2),)]
    assert field(f.match.mask, "ipv4_dst") == 0xFFFFFFF8
    assert list(r.send("p1", tcp(mac(2), mac(1), dip="10.0.0.2"))) == ["p2"]
    assert r.dp.n_hit == 1  # the third packet hit the first megaflow
    assert counters(r)[10] == (2, 120)


def test_drop_rule_and_delete_revalidates_installed_flow() -> None:
    r = rig()
    flow_mod(r, priority=50, match=Match.of(in_port=r.no("p1")), instructions=())
    assert r.send("p1", frame(mac(2), mac(1))) == {}
    assert r.send("p1", frame(mac(2), mac(1))) == {}
    assert counters(r)[50] == (2, 120)
    n_flows = r.dp.flow_count()
    r.bridge.flow_mod(
        FlowMod(command=FlowModCommand.DELETE_STRICT, priority=50, match=Match.of(in_port=1)),
        r.clock.t,
    )
    assert r.bridge.commit_openflow() == n_flows  # only flows that read table 0
    assert r.dp.flow_count() <= n_flows  # re-translated, never flushed wholesale
    assert sorted(r.send("p1", frame(mac(2), mac(1)))) == ["br0", "p2", "p3"]


def test_vlan_push_set_and_pop() -> None:
    r = rig()
    p1, p2 = r.no("p1"), r.no("p2")
    flow_mod(r, command=FlowModCommand.DELETE, table_id=0xFF)  # no NORMAL fallback
    flow_mod(
        r,
        priority=10,
        match=Match.of(in_port=p1),
        instructions=apply(PushVlan(), SetField(oxm("vlan_vid", 0x1000 | 10)), Output(p2)),
    )
    flow_mod(
        r,
        priority=10,
        match=Match.of(in_port=p2, vlan_vid=0x1000 | 10),
        instructions=apply(PopVlan(), Output(p1)),
    )
    (pkt,) = r.send("p1", frame(mac(2), mac(1)))["p2"]
    assert vid_of(pkt) == 10
    (back,) = r.send("p2", frame(mac(1), mac(2), vid=10))["p1"]
    assert vid_of(back) is None
    assert r.send("p2", frame(mac(1), mac(2), vid=11)) == {}  # no rule: table miss drops


def test_goto_table_metadata_and_action_set() -> None:
    r = rig()
    p3 = r.no("p3")
    flow_mod(
        r,
        priority=1,
        match=Match(),
        instructions=(
            WriteMetadata(0x5, 0xFF),
            WriteActions((Output(r.no("p2")),)),
            GotoTable(1),
        ),
    )
    flow_mod(
        r,
        table_id=1,
        priority=1,
        match=Match.of(metadata=0x5),
        instructions=(WriteActions((Output(p3),)),),  # replaces the output in the set
    )
    assert list(r.send("p1", frame(mac(2), mac(1)))) == ["p3"]


def test_select_group_spreads_by_flow_hash_and_counts_buckets() -> None:
    r = rig()
    p2, p3 = r.no("p2"), r.no("p3")
    r.bridge.group_mod(
        GroupMod(
            command=GroupModCommand.ADD,
            group_type=GroupType.SELECT,
            group_id=1,
            buckets=(
                Bucket(weight=1, actions=(Output(p2),)),
                Bucket(weight=1, actions=(Output(p3),)),
            ),
        ),
        r.clock.t,
    )
    flow_mod(r, priority=5, match=Match.of(eth_type=IP), instructions=apply(GroupAction(1)))
    seen: dict[str, int] = {}
    for sport in range(40000, 40064):
        out = r.send("p1", tcp(mac(2), mac(1), sport=sport))
        (port,) = out
        seen[port] = seen.get(port, 0) + 1
        # The same flow always takes the same bucket.
        assert list(r.send("p1", tcp(mac(2), mac(1), sport=sport))) == [port]
    assert set(seen) == {"p2", "p3"}
    r.bridge.settle_counters()
    g = r.bridge.of.groups[1]
    assert g.packets == 128
    assert sorted(p for p, _ in g.bucket_stats) == sorted(v * 2 for v in seen.values())


def test_select_group_hashes_only_its_selection_fields() -> None:
    """``selection_method=hash,fields(ip_dst)``: every packet to one address takes the
    same bucket whatever its ports, another address may take the other, and the megaflow
    keeps the ports wildcarded (one datapath flow for 32 connections)."""
    r = rig()
    p2, p3 = r.no("p2"), r.no("p3")
    r.bridge.group_mod(
        GroupMod(
            command=GroupModCommand.ADD, group_type=GroupType.SELECT, group_id=1,
            buckets=(Bucket(actions=(Output(p2),)), Bucket(actions=(Output(p3),))),
            selection=SelectionMethod("hash", 5, (oxm("ipv4_dst", 0xFFFFFFFF),)),
        ),
        r.clock.t,
    )  # fmt: skip
    flow_mod(r, priority=5, match=Match.of(eth_type=IP), instructions=apply(GroupAction(1)))
    by_dst: dict[str, set[str]] = {}
    for i in range(1, 9):
        dip = f"10.0.1.{i}"
        for sport in range(40000, 40032 if i == 1 else 40004):
            by_dst.setdefault(dip, set()).update(r.send("p1", tcp(mac(2), mac(1), dip=dip, sport=sport)))
    assert all(len(ports) == 1 for ports in by_dst.values()), by_dst
    assert set().union(*by_dst.values()) == {"p2", "p3"}  # 8 addresses: both buckets used
    # One megaflow per destination address (ports, sources not hashed: wildcarded).
    assert len([f for f in r.flows().values() if f.actions]) == 8


def test_fast_failover_follows_port_liveness() -> None:
    r = rig()
    p2, p3 = r.no("p2"), r.no("p3")
    r.bridge.group_mod(
        GroupMod(
            command=GroupModCommand.ADD,
            group_type=GroupType.FF,
            group_id=2,
            buckets=(
                Bucket(watch_port=p2, actions=(Output(p2),)),
                Bucket(watch_port=p3, actions=(Output(p3),)),
            ),
        ),
        r.clock.t,
    )
    flow_mod(r, priority=5, match=Match.of(in_port=r.no("p1")), instructions=apply(GroupAction(2)))
    assert list(r.send("p1", frame(mac(2), mac(1)))) == ["p2"]
    r.dp.set_link(p2, False)
    r.run()  # the bridge notices the link change and revalidates
    assert list(r.send("p1", frame(mac(2), mac(1)))) == ["p3"]
    assert r.dp.n_hit >= 1  # the installed flow was revalidated, not re-upcalled


def test_controller_action_queues_packet_in() -> None:
    r = rig()
    flow_mod(
        r,
        priority=5,
        cookie=0xABC,
        match=Match.of(in_port=r.no("p1")),
        instructions=apply(Output(Port.CONTROLLER, 0xFFFF)),
    )
    r.send("p1", frame(mac(2), mac(1)))
    r.run()
    (pin,) = r.bridge.take_packet_ins()
    assert (pin.in_port, pin.cookie, pin.table_id) == (r.no("p1"), 0xABC, 0)


def test_packet_out_goes_through_its_actions() -> None:
    r = rig()
    pkt = frame(mac(2), mac(1))
    r.bridge.packet_out(
        PacketOut(in_port=Port.CONTROLLER, actions=(Output(r.no("p3")),), data=pkt), r.clock.t
    )
    assert r.out() == {"p3": [pkt]}


def test_export_import_openflow_keeps_rules_and_counters() -> None:
    r = rig()
    flow_mod(r, priority=10, match=Match.of(eth_type=IP), instructions=apply(Output(r.no("p2"))))
    r.send("p1", tcp(mac(2), mac(1)))
    r.send("p1", tcp(mac(2), mac(1)))
    data = r.bridge.export_openflow(r.clock.t)
    r2 = rig()
    r2.bridge.import_openflow(data, r2.clock.t)
    assert counters(r2) == counters(r)
    assert list(r2.send("p1", tcp(mac(2), mac(1)))) == ["p2"]


def test_megaflow_mask_is_union_of_examined_subtables() -> None:
    r = rig()
    flow_mod(r, priority=10, match=Match.of(eth_type=IP, ip_proto=6), instructions=())
    r.send("p1", frame(mac(2), mac(1), eth_type=0x0806))
    want = compile_match(Match.of(eth_type=IP, ip_proto=6))[1]
    for f in r.dp.flow_dump():
        m = int.from_bytes(f.match.mask, "big")
        assert m & want == want


def test_flow_dropped_for_a_down_output_port_forwards_when_it_returns() -> None:
    """Found by test_invariants: a drop decided by an unusable output port must be
    indexed by that port, so the port coming back re-translates it."""
    r = rig()
    p1 = r.no("p1")
    r.dp.set_link(p1, False)
    r.run()
    r.dp.receive(r.no("p2"), frame(mac(1), mac(1)))
    r.dp.receive(p1, frame("ff:ff:ff:ff:ff:ff", mac(1)))  # mac(1) moves to p1 (down)
    r.run()
    r.dp.set_link(p1, True)
    r.run()
    r.out()  # what was flooded so far
    assert list(r.send("p2", frame(mac(1), mac(3)))) == ["p1"]
    m1 = bytes.fromhex("505400000001")
    p2 = r.no("p2").to_bytes(4, "big")
    flows = [f for f in r.dp.flow_dump() if f.match.key[:4] == p2 and f.match.key[4:10] == m1]
    assert flows and all(f.actions == (DpOutput(p1),) for f in flows)
