"""MPLS in the pipeline (dummy datapath): the flow key's label stack (three entries, as
Open vSwitch keeps), the mpls_label/tc/bos/ttl matches, push_mpls, pop_mpls (with the
recirculation a lookup after it needs), set_mpls_*, dec_mpls_ttl, and the undo of label
changes in a group bucket. Frames and megaflows checked byte by byte; the same table
against Open vSwitch 3.1 is tests/daemon/test_mpls_differential.py."""

from __future__ import annotations

import struct

import pytest

from hitless.datapath.actions import Output as DpOutput
from hitless.datapath.actions import PopMpls as DpPopMpls
from hitless.datapath.actions import PushMpls as DpPushMpls
from hitless.datapath.actions import Recirc
from hitless.datapath.actions import SetField as DpSetField
from hitless.ofproto.oftable import compile_match
from hitless.openflow import (
    ApplyActions,
    Bucket,
    FlowMod,
    GotoTable,
    GroupAction,
    GroupMod,
    Output,
    SetField,
    WriteActions,
)
from hitless.openflow.actions import DecMplsTtl, DecNwTtl, PopMpls, PushMpls, SetMplsTtl
from hitless.openflow.constants import FlowModCommand, GroupModCommand, GroupType
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import field as oxm
from hitless.openflow.nx_actions import (
    Clone,
    NxPushMpls,
    NxSetMplsLabel,
    NxSetMplsTc,
    OutputReg,
    RegLoad,
    Resubmit,
    StackPop,
    StackPush,
)
from hitless.packet.flow import extract_key, field, format_match
from hitless.packet.ops import pop_mpls, push_mpls
from tests.ofproto.helpers import mac, tcp
from tests.ofproto.test_nx_pipeline import add, clear, m, rig, sf

MPLS = 0x8847


def lse(label: int, tc: int = 0, bos: int = 1, ttl: int = 64) -> int:
    return label << 12 | tc << 9 | bos << 8 | ttl


def mpls_frame(*entries: int, inner: bytes | None = None) -> bytes:
    """A unicast MPLS frame carrying ``entries`` (top first) over an IPv4/TCP packet."""
    ip = tcp(mac(2), mac(1))[14:] if inner is None else inner
    return tcp(mac(2), mac(1))[:12] + struct.pack("!H", MPLS) + b"".join(
        struct.pack("!I", e) for e in entries
    ) + ip


def test_the_key_keeps_three_label_stack_entries_up_to_bottom_of_stack() -> None:
    k = extract_key(mpls_frame(lse(100, 3, 0, 9), lse(200, 0, 1, 8)), 1)
    assert field(k, "eth_type") == MPLS
    assert field(k, "mpls_lse0") == lse(100, 3, 0, 9)
    assert field(k, "mpls_lse1") == lse(200, 0, 1, 8)
    assert field(k, "mpls_lse2") == 0  # the stack ended at the second (bottom of stack)
    assert field(k, "ipv4_dst") == 0 and field(k, "tp_dst") == 0  # no L3 parsed
    deep = extract_key(mpls_frame(*(lse(i, bos=0) for i in range(1, 5))), 1)
    assert [field(deep, f"mpls_lse{i}") >> 12 for i in range(3)] == [1, 2, 3]
    # behind a VLAN tag too
    tagged = tcp(mac(2), mac(1), vid=7)
    f = tagged[:16] + struct.pack("!HI", MPLS, lse(5)) + tagged[18:]
    kv = extract_key(f, 1)
    assert field(kv, "vlan_tci") & 0xFFF == 7 and field(kv, "mpls_lse0") == lse(5)


def test_push_and_pop_are_inverse_on_the_wire() -> None:
    pkt = tcp(mac(2), mac(1), vid=9)
    pushed = push_mpls(pkt, lse(77), MPLS)
    assert pushed[16:18] == b"\x88\x47" and pushed[18:22] == struct.pack("!I", lse(77))
    assert pop_mpls(pushed, 0x0800) == pkt
    assert pop_mpls(pkt, 0x0800) == pkt  # not MPLS: unchanged


def test_mpls_matches_need_an_mpls_eth_type() -> None:
    with pytest.raises(RemoteProtocolError, match="prerequisite|BAD_PREREQ|needs"):
        compile_match(m(mpls_label=5))
    compile_match(m(eth_type=MPLS, mpls_label=5, mpls_tc=1, mpls_bos=1))
    compile_match(m(eth_type=0x8848, mpls_label=5))


def test_label_tc_bos_and_ttl_matches_and_the_megaflow_they_leave() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    add(r, 0, 20, m(eth_type=MPLS, mpls_label=100, mpls_tc=3, mpls_bos=0), Output(p2))
    add(r, 0, 10, m(eth_type=MPLS, mpls_label=100), Output(p3))
    assert list(r.send("p1", mpls_frame(lse(100, 3, 0), lse(1)))) == ["p2"]
    assert list(r.send("p1", mpls_frame(lse(100, 3, 1)))) == ["p3"]  # bottom of stack
    assert list(r.send("p1", mpls_frame(lse(101, 3, 0), lse(1)))) == []
    shown = sorted(format_match(f.match.key, f.match.mask) for f in r.dp.flow_dump())
    assert any("eth_type(0x8847),mpls(label=100,tc=3,bos=0)" in s for s in shown), shown
    for f in r.dp.flow_dump():
        assert field(f.match.mask, "mpls_lse0") & 0xFF == 0  # nobody read the TTL
        assert field(f.match.mask, "mpls_lse1") == 0


def test_push_mpls_on_ip_takes_tc_and_ttl_from_the_ip_header_then_set_and_match() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    pkt = bytearray(tcp(mac(2), mac(1)))
    pkt[15] = 0x2E << 2  # DSCP 46: TC 6 (its low three bits)
    pkt[22] = 33  # TTL
    add(r, 0, 10, m(eth_type=0x0800), PushMpls(MPLS), NxSetMplsLabel(500), Resubmit(table=1))
    add(r, 1, 10, m(eth_type=MPLS, mpls_label=500, mpls_tc=6), NxSetMplsTc(2), Output(p2))
    (out,) = r.send("p1", bytes(pkt))["p2"]
    assert out[12:14] == b"\x88\x47"
    assert struct.unpack("!I", out[14:18])[0] == lse(500, 2, 1, 33)
    assert out[18:] == bytes(pkt[14:])  # the IP packet behind, untouched
    (f,) = r.dp.flow_dump()
    assert f.actions[0] == DpPushMpls(lse(0, 6, 1, 33), MPLS)
    assert field(f.match.mask, "ip_ttl") == 0xFF  # read by push_mpls


def test_push_on_ipv6_is_label_2_and_on_arp_ttl_64() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    add(r, 0, 10, m(), NxPushMpls(MPLS), Output(p2))
    arp = tcp(mac(2), mac(1))[:12] + b"\x08\x06" + bytes(46)
    (out,) = r.send("p1", arp)["p2"]
    assert struct.unpack("!I", out[14:18])[0] == lse(0, 0, 1, 64)
    v6 = tcp(mac(2), mac(1))[:12] + b"\x86\xdd" + bytes([0x60, 0, 0, 0, 0, 8, 17, 5]) + bytes(40)
    (out,) = r.send("p1", v6)["p2"]
    assert struct.unpack("!I", out[14:18])[0] == lse(2, 0, 1, 5)


def test_push_on_mpls_copies_the_top_entry_and_a_fourth_is_dropped() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    add(r, 0, 10, m(eth_type=MPLS), PushMpls(0x8848), Output(p2))
    (out,) = r.send("p1", mpls_frame(lse(9, 1, 1, 7)))["p2"]
    assert struct.unpack("!II", out[14:22]) == (lse(9, 1, 0, 7), lse(9, 1, 1, 7))
    assert out[12:14] == b"\x88\x47"  # the EtherType stays (as Open vSwitch 3.1)
    assert r.send("p1", mpls_frame(lse(1, bos=0), lse(2, bos=0), lse(3))) == {}


def test_pop_to_ip_then_output_and_pop_then_lookup_recirculates() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    inner = tcp(mac(2), mac(1), dip="10.0.0.7")
    add(r, 0, 10, m(eth_type=MPLS, mpls_label=1), PopMpls(0x0800), Output(p2))
    add(r, 0, 10, m(eth_type=MPLS, mpls_label=2), PopMpls(0x0800), Resubmit(table=3))
    add(r, 3, 10, m(eth_type=0x0800, ipv4_dst=0x0A000007), Output(p3))
    (out,) = r.send("p1", mpls_frame(lse(1), inner=inner[14:]))["p2"]
    assert out == inner
    got = r.send("p1", mpls_frame(lse(2), inner=inner[14:]))
    assert got == {"p3": [inner]}  # table 3 saw the inner IPv4 destination
    acts = {tuple(type(a) for a in f.actions) for f in r.dp.flow_dump()}
    assert (DpPopMpls, Recirc) in acts


def test_pop_of_one_of_two_labels_keeps_mpls_and_matches_the_next() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    add(r, 0, 10, m(eth_type=MPLS, mpls_bos=0), PopMpls(MPLS), Resubmit(table=1))
    add(r, 1, 10, m(eth_type=MPLS, mpls_label=22, mpls_bos=1), Output(p2))
    (out,) = r.send("p1", mpls_frame(lse(11, bos=0), lse(22)))["p2"]
    assert struct.unpack("!I", out[14:18])[0] == lse(22)


def test_set_and_dec_mpls_ttl_and_the_invalid_ttl_ends_the_rule() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    add(r, 0, 10, m(eth_type=MPLS), Output(p3), DecMplsTtl(), Output(p2))
    add(r, 0, 20, m(eth_type=MPLS, mpls_label=8), SetMplsTtl(40), Output(p2))
    got = r.send("p1", mpls_frame(lse(5, ttl=9)))
    assert struct.unpack("!I", got["p2"][0][14:18])[0] == lse(5, ttl=8)
    assert struct.unpack("!I", got["p3"][0][14:18])[0] == lse(5, ttl=9)
    got = r.send("p1", mpls_frame(lse(5, ttl=1)))
    assert list(got) == ["p3"]  # the decrement failed: the rule's later output is skipped
    got = r.send("p1", mpls_frame(lse(8, ttl=1)))
    assert struct.unpack("!I", got["p2"][0][14:18])[0] == lse(8, ttl=40)


def test_a_bucket_that_pushes_leaves_the_next_bucket_the_plain_packet() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    gm = GroupMod(
        command=GroupModCommand.ADD,
        group_type=GroupType.ALL,
        group_id=1,
        buckets=(
            Bucket(actions=(PushMpls(MPLS), SetField(oxm("mpls_label", 30)), Output(p2))),
            Bucket(actions=(Output(p3),)),
        ),
    )
    r.bridge.group_mod(gm, r.clock.t)
    r.bridge.commit_openflow()
    add(r, 0, 10, m(eth_type=0x0800), GroupAction(1))
    pkt = tcp(mac(2), mac(1))
    got = r.send("p1", pkt)
    assert got["p3"] == [pkt]
    assert struct.unpack("!I", got["p2"][0][14:18])[0] >> 12 == 30
    # and a bucket that pops: the next one gets the label back
    clear(r)
    gm2 = GroupMod(
        command=GroupModCommand.ADD,
        group_type=GroupType.ALL,
        group_id=2,
        buckets=(Bucket(actions=(PopMpls(0x0800), Output(p2))), Bucket(actions=(Output(p3),))),
    )
    r.bridge.group_mod(gm2, r.clock.t)
    r.bridge.commit_openflow()
    add(r, 0, 10, m(eth_type=MPLS), GroupAction(2))
    frame = mpls_frame(lse(4, ttl=3))
    got = r.send("p1", frame)
    assert got["p3"] == [frame] and got["p2"] == [pkt]


def test_apply_actions_of_an_mpls_rule_in_the_action_set_order() -> None:
    """write_actions: pop_mpls runs before push_vlan and output, whatever the order
    they were written in (OpenFlow 1.3.5 §5.10)."""
    r = rig()
    clear(r)
    p2 = r.no("p2")
    fm = FlowMod(
        command=FlowModCommand.ADD,
        table_id=0,
        priority=10,
        match=m(eth_type=MPLS),
        instructions=(WriteActions((Output(p2), PopMpls(0x0800))), ApplyActions(())),
    )
    r.bridge.flow_mod(fm, r.clock.t)
    r.bridge.commit_openflow()
    inner = tcp(mac(2), mac(1))
    assert r.send("p1", mpls_frame(lse(3), inner=inner[14:])) == {"p2": [inner]}


def test_a_handoff_peer_that_cannot_read_mpls_flows_is_refused_before_the_freeze() -> None:
    """A build from before MPLS would misread these megaflows: refused, saying what to
    clear; a peer that says "action:mpls" takes them, and the actions survive JSON."""
    from hitless.datapath.actions import actions_from_json, actions_to_json
    from hitless.handoff.engine import HandoffRefused
    from hitless.handoff.protocol import FEATURES
    from tests.handoff.pair import ALL_FEATURES, SRC, Clock, old_switch, traffic

    clock = Clock()
    side, dp, bridge = old_switch(clock)
    fm = FlowMod(
        command=FlowModCommand.ADD,
        priority=100,
        match=m(eth_src=SRC),
        instructions=(ApplyActions((PushMpls(MPLS), SetMplsTtl(9), Output(2))),),
    )
    bridge.flow_mod(fm, clock())
    traffic(dp, bridge, clock, 0)
    (flow,) = [f for f in dp.flow_dump() if any(isinstance(a, DpPushMpls) for a in f.actions)]
    assert actions_from_json(actions_to_json(flow.actions)) == flow.actions
    with pytest.raises(HandoffRefused, match="mpls.*push_mpls"):
        side.exporter(ALL_FEATURES).precopy(clock(), True)
    assert "action:mpls" in FEATURES
    (bs,) = side.exporter(ALL_FEATURES + ("action:mpls",)).precopy(clock(), True).bridges
    assert bs.name == "br0"


# -- Frozen actions: what follows a pop to IPv4 runs after the recirculation ----------


def _ttl_dec(ip_frame: bytes, by: int = 1) -> bytes:
    """``ip_frame`` (Ethernet + IPv4) with its TTL lowered by ``by`` and the header
    checksum recomputed from scratch."""
    ip = bytearray(ip_frame[14:34])
    ip[8] -= by
    ip[10:12] = b"\0\0"
    s = sum(struct.unpack("!10H", bytes(ip)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    ip[10:12] = struct.pack("!H", ~s & 0xFFFF)
    return ip_frame[:14] + bytes(ip) + ip_frame[34:]


def _mpls_rule(r: object, *instructions: object) -> None:
    """Table 0, priority 10, every MPLS frame: ``instructions``."""
    fm = FlowMod(command=FlowModCommand.ADD, table_id=0, priority=10, match=m(eth_type=MPLS),
                 instructions=instructions)  # type: ignore[arg-type]  # fmt: skip
    r.bridge.flow_mod(fm, r.clock.t)  # type: ignore[attr-defined]


def test_dec_ttl_after_pop_to_ipv4_freezes_and_runs_after_the_recirculation() -> None:
    """``pop_mpls:0x0800,dec_ttl,output`` (Open vSwitch freezes dec_ttl and the output
    and recirculates): the inner packet comes out with its TTL lowered; the datapath
    holds the pop + recirc megaflow and the recirculated one, which does the rest."""
    r = rig()
    clear(r)
    p2 = r.no("p2")
    inner = tcp(mac(2), mac(1))
    add(r, 0, 10, m(eth_type=MPLS), PopMpls(0x0800), DecNwTtl(), Output(p2))
    got = r.send("p1", mpls_frame(lse(5), inner=inner[14:]))
    assert got == {"p2": [_ttl_dec(inner)]}
    flows = {tuple(type(a) for a in f.actions) for f in r.dp.flow_dump()}
    assert (DpPopMpls, Recirc) in flows and (DpSetField, DpOutput) in flows, flows
    ttl1 = inner[:22] + b"\x01" + inner[23:]
    assert r.send("p1", mpls_frame(lse(5), inner=ttl1[14:])) == {}  # invalid TTL: dropped


def test_the_actions_after_a_resubmit_that_recirculates_run_after_it_with_registers() -> None:
    """A lookup after the pop (a resubmit): the resubmitted table's actions, then the
    actions after the resubmit (the outer level), then the action set; registers and
    the register stack written before the pop are seen after the recirculation."""
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    inner = tcp(mac(2), mac(1), dip="10.0.0.7")
    _mpls_rule(r,
        ApplyActions((
            RegLoad(sf("reg1"), p3), StackPush(sf("reg1")), RegLoad(sf("reg1"), 0),
            PopMpls(0x0800), Resubmit(table=3), StackPop(sf("reg2")), OutputReg(sf("reg2")),
        )),
        WriteActions((Output(p2),)),
    )  # fmt: skip
    add(r, 3, 10, m(eth_type=0x0800, ipv4_dst=0x0A000007), DecNwTtl(), Output(p2))
    r.bridge.commit_openflow()
    got = r.send("p1", mpls_frame(lse(2), inner=inner[14:]))
    # table 3's output, the popped register's output, then the action set's
    assert got == {"p2": [_ttl_dec(inner), _ttl_dec(inner)], "p3": [_ttl_dec(inner)]}


def test_a_goto_after_a_pop_and_the_rules_action_set_run_after_the_recirculation() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    inner = tcp(mac(2), mac(1), dip="10.0.0.7")
    _mpls_rule(
        r,
        ApplyActions((PopMpls(0x0800), SetField(oxm("ipv4_src", 0x0A000063)))),
        WriteActions((Output(p3),)),
        GotoTable(4),
    )
    add(r, 4, 10, m(eth_type=0x0800, ipv4_src=0x0A000063), Output(p2))
    r.bridge.commit_openflow()
    got = r.send("p1", mpls_frame(lse(2), inner=inner[14:]))
    assert sorted(got) == ["p2", "p3"] and got["p2"] == got["p3"]
    assert got["p2"][0][26:30] == bytes((10, 0, 0, 99))  # the rewrite happened once


def test_a_freeze_in_a_clone_recirculates_the_copy_and_ends_the_actions() -> None:
    """As Open vSwitch 3.1 (its clone keeps the freeze's exit: seen with a pause in
    tests/daemon/test_pause_differential.py): the copy recirculates, nothing after the
    clone runs."""
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    inner = tcp(mac(2), mac(1))
    frame = mpls_frame(lse(5), inner=inner[14:])
    add(r, 0, 10, m(eth_type=MPLS), Clone((PopMpls(0x0800), DecNwTtl(), Output(p2))), Output(p3))
    got = r.send("p1", frame)
    assert got == {"p2": [_ttl_dec(inner)]}


def test_frozen_states_cross_a_handoff_under_their_own_key() -> None:
    """The datapath exports frozen states with actions apart from the table-only ones
    (a build without them ignores that key); the adopting datapath takes both, and the
    recirculated packet is translated from the adopted state."""
    from hitless.ofproto.frozen import FrozenState, is_frozen_actions

    r = rig()
    clear(r)
    p2 = r.no("p2")
    inner = tcp(mac(2), mac(1))
    add(r, 0, 10, m(eth_type=MPLS, mpls_label=5), PopMpls(0x0800), DecNwTtl(), Output(p2))
    add(r, 0, 10, m(eth_type=MPLS, mpls_label=6), PopMpls(0x0800), Resubmit(table=1))
    add(r, 1, 10, m(eth_type=0x0800), Output(p2))
    r.send("p1", mpls_frame(lse(5), inner=inner[14:]))
    r.send("p1", mpls_frame(lse(6), inner=inner[14:]))
    state = r.dp.export_conntrack()
    assert len(state["frozen"]) == 2 and not state["recirc"], state
    (rid, blob) = state["frozen"][0]
    fs = FrozenState.decode(bytes.fromhex(blob))
    assert is_frozen_actions(bytes.fromhex(blob)) and fs.encode() == bytes.fromhex(blob)
    r.dp.recirc.clear()
    r.dp.flow_flush()
    assert r.send("p1", mpls_frame(lse(5), inner=inner[14:])) == {"p2": [_ttl_dec(inner)]}
    r.dp.recirc.clear()
    r.dp.adopt_conntrack({"recirc": [], "frozen": state["frozen"][1:]})
    assert len(r.dp.recirc) == 1
    r.dp.adopt_conntrack(state)
    assert len(r.dp.recirc) == 2
    # an id nobody froze: dropped, never guessed
    with pytest.raises(ValueError):
        FrozenState.decode(b"\xff\x02" + bytes(8))
