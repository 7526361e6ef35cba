"""Open vSwitch's extension fields and actions in the pipeline (dummy datapath):
registers and metadata resolved in translation, resubmit, load/move/set_field into
registers, output:FIELD, push/pop, clone, exit; megaflow masks cover only the packet
fields some visited rule or action read."""

from __future__ import annotations

import pytest

from hitless.datapath.actions import Output as DpOutput
from hitless.datapath.actions import SetField as DpSetField
from hitless.ofproto.fields import KEY_BITS, LOCS
from hitless.ofproto.oftable import compile_match
from hitless.openflow import ApplyActions, FlowMod, GotoTable, Match, Output, SetField
from hitless.openflow.constants import BadActionCode, BadMatchCode, ErrorType, FlowModCommand
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import field as oxm
from hitless.openflow.nx_actions import (
    Clone,
    Conjunction,
    Exit,
    Note,
    OutputReg,
    RegLoad,
    RegLoad2,
    RegMove,
    Resubmit,
    StackPop,
    StackPush,
)
from hitless.openflow.nxm import Subfield
from hitless.packet.flow import KEY_LEN, field
from tests.ofproto.helpers import P, Rig, mac, tcp

IP = 0x0800


def rig() -> Rig:
    return Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})


def add(r: Rig, table: int, priority: int, match: Match, *actions: object, **kw: object) -> None:
    insts = (ApplyActions(tuple(actions)),)  # type: ignore[arg-type]
    extra = kw.pop("goto", None)
    if extra is not None:
        insts = (*insts, GotoTable(int(extra)))  # type: ignore[call-overload]
    fm = FlowMod(
        command=FlowModCommand.ADD,
        table_id=table,
        priority=priority,
        match=match,
        instructions=insts,
        **kw,  # type: ignore[arg-type]
    )
    r.bridge.flow_mod(fm, r.clock.t)
    r.bridge.commit_openflow()


def clear(r: Rig) -> None:
    r.bridge.flow_mod(
        FlowMod(command=FlowModCommand.DELETE, table_id=0xFF, match=Match()), r.clock.t
    )
    r.bridge.commit_openflow()


def sf(name: str, ofs: int = 0, nbits: int | None = None) -> Subfield:
    w = Subfield.whole(name)
    return Subfield(w.ref, ofs, w.nbits - ofs if nbits is None else nbits)


def m(**fields: int | tuple[int, int]) -> Match:
    return Match(
        tuple(oxm(k, *v) if isinstance(v, tuple) else oxm(k, v) for k, v in fields.items())
    )


def test_registers_compile_above_the_datapath_key() -> None:
    key, mask, _, _ = compile_match(m(reg0=5, reg1=(0x10, 0xF0), metadata=7))
    assert mask >> KEY_BITS and not mask & ((1 << KEY_BITS) - 1)
    assert LOCS["reg0"].get(key) == 5 and LOCS["reg1"].get(mask) == 0xF0
    # xreg0 is reg0 (high half) and reg1; xxreg0 is reg0..reg3
    assert LOCS["xreg0"].get(key) >> 32 == 5
    assert LOCS["xxreg0"].get(key) >> 96 == 5


def test_resubmit_with_registers_never_reaches_the_megaflow() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    # table 0: tag the packet in reg0 by its IP destination, continue in table 1
    add(
        r,
        0,
        10,
        m(eth_type=IP, ipv4_dst=0x0A000002),
        RegLoad(sf("reg0", 0, 16), 2),
        Resubmit(table=1),
    )
    add(r, 0, 5, m(), RegLoad2(oxm("reg0", 3)), Resubmit(table=1))
    add(r, 1, 10, m(reg0=2), Output(p2))
    add(r, 1, 10, m(reg0=3), Output(p3))
    assert list(r.send("p1", tcp(mac(2), mac(1), dip="10.0.0.2"))) == ["p2"]
    assert list(r.send("p1", tcp(mac(2), mac(1), dip="10.0.0.9"))) == ["p3"]
    flows = list(r.dp.flow_dump())
    assert len(flows) == 2
    # Table 0 read ipv4_dst: the hit whole, the miss down to where 10.0.0.9 leaves
    # 10.0.0.2 (10.0.0.8/29: ip_dst prefix tracking, Open vSwitch's default; the same
    # megaflows side by side in tests/daemon/test_flow_table.py).
    dst_masks = {field(f.match.key, "ipv4_dst"): field(f.match.mask, "ipv4_dst") for f in flows}
    assert dst_masks == {0x0A000002: 0xFFFFFFFF, 0x0A000008: 0xFFFFFFF8}
    for f in flows:
        assert len(f.match.mask) == KEY_LEN
        assert field(f.match.mask, "tp_dst") == 0  # nobody read it
    r.bridge.settle_counters()
    counts = {(x.table_id, LOCS["reg0"].get(x.key)): x.packets for x in r.bridge.of.rules()}
    assert counts[(1, 2)] == 1 and counts[(1, 3)] == 1


def test_resubmit_in_port_and_hairpin_by_clearing_in_port() -> None:
    r = rig()
    clear(r)
    p1, p2 = r.no("p1"), r.no("p2")
    # resubmit(p2,1): table 1 sees in_port=p2, so output:IN_PORT there goes to p2
    add(
        r,
        0,
        10,
        m(in_port_oxm=p1),
        Resubmit(in_port=p2, table=1),
        RegLoad(sf("in_port"), 0),
        Output(p1),
    )
    add(r, 1, 10, m(in_port_oxm=p2), Output(0xFFFFFFF8))  # OFPP_IN_PORT
    pkt = tcp(mac(2), mac(1))
    out = r.send("p1", pkt)
    # Table 1's rule matched in_port=p2, but its actions see the packet's own in_port
    # (Open vSwitch restores it right after the lookup): output:IN_PORT sends to p1;
    # then in_port cleared, so output:p1 hairpins too (tests/daemon/test_fields_vs_ovs.py)
    assert out == {"p1": [pkt, pkt]}


def test_move_from_packet_field_unwildcards_exactly_the_bits_moved() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    add(
        r,
        0,
        10,
        m(eth_type=IP),
        RegMove(sf("ip_dst", 0, 8), sf("reg5", 8, 8)),
        Resubmit(table=1),
    )
    add(r, 1, 10, m(reg5=(0x0200, 0xFF00)), Output(p2))
    add(r, 1, 5, m(), Output(p3))
    assert list(r.send("p1", tcp(mac(2), mac(1), dip="10.0.0.2"))) == ["p2"]
    assert list(r.send("p1", tcp(mac(2), mac(1), dip="10.9.9.3"))) == ["p3"]
    for f in r.dp.flow_dump():
        assert field(f.match.mask, "ipv4_dst") == 0x000000FF


def test_output_to_a_port_held_in_a_register() -> None:
    r = rig()
    clear(r)
    p3 = r.no("p3")
    add(r, 0, 10, m(), RegLoad(sf("reg3", 16, 16), p3), OutputReg(sf("reg3", 16, 16)))
    assert list(r.send("p1", tcp(mac(2), mac(1)))) == ["p3"]


def test_push_pop_clone_and_exit() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    add(
        r,
        0,
        10,
        m(),
        RegLoad(sf("reg1"), p2),
        StackPush(sf("reg1")),
        RegLoad(sf("reg1"), 99),
        Clone((SetField(oxm("eth_dst", 0x505400000099)), OutputReg(sf("reg1", 0, 16)))),
        StackPop(sf("reg2")),
        OutputReg(sf("reg2", 0, 16)),
        Exit(),
        Output(p3),
    )
    out = r.send("p1", tcp(mac(2), mac(1)))
    assert list(out) == ["p2"]  # reg1=99 is no port; the clone's rewrite is undone
    (pkt,) = out["p2"]
    assert pkt[:6] == bytes.fromhex("505400000002")
    (f,) = list(r.dp.flow_dump())
    # the clone's rewrite is undone before the output that follows it
    assert f.actions[-1] == DpOutput(p2)
    assert [a for a in f.actions if isinstance(a, DpSetField)][-1].value == bytes.fromhex(
        "505400000002"
    )


def test_resubmit_loop_is_dropped_at_the_depth_limit() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    add(r, 0, 10, m(), Output(p2), Resubmit(table=0))
    assert r.send("p1", tcp(mac(2), mac(1))) == {}
    (f,) = list(r.dp.flow_dump())
    assert f.actions == ()


def test_forward_resubmit_chain_does_not_count_as_depth() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    for t in range(100):
        add(r, t, 10, m(), Resubmit(table=t + 1))
    add(r, 100, 10, m(), Output(p2))
    assert list(r.send("p1", tcp(mac(2), mac(1)))) == ["p2"]


def test_metadata_persists_across_resubmit_and_goto() -> None:
    r = rig()
    clear(r)
    p2 = r.no("p2")
    add(r, 0, 10, m(), RegLoad2(oxm("metadata", 0x42)), goto=1)
    add(r, 1, 10, m(metadata=0x42), Resubmit(table=2))
    add(r, 2, 10, m(metadata=(0x40, 0xF0)), Output(p2))
    assert list(r.send("p1", tcp(mac(2), mac(1)))) == ["p2"]


def test_bad_fields_and_actions_are_refused() -> None:
    r = rig()

    def refused(match: Match, *actions: object) -> tuple[int, int]:
        with pytest.raises(RemoteProtocolError) as e:
            add(r, 0, 10, match, *actions)
        return e.value.type, e.value.code

    assert refused(m(ipv4_dst=1), Output(1)) == (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ)
    assert refused(m(ip_frag=1), Output(1)) == (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ)
    # conj_id cannot be written
    assert refused(m(), RegLoad(sf("conj_id"), 1))[0] == ErrorType.BAD_ACTION
    assert refused(m(), Resubmit(table=1, ct=True, form=44)) == (
        ErrorType.BAD_ACTION,
        BadActionCode.BAD_EXP_TYPE,
    )
    add(r, 0, 10, m(reg0=1), Note(b"\x01\x02\x03\x00\x00\x00"), Output(1))
    assert Conjunction(0, 2, 5).encode()[8:10] == b"\x00\x22"


def test_conjunctive_match_as_open_vswitch_classifier() -> None:
    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    ip = {"eth_type": IP}
    tcp_ = {"eth_type": IP, "ip_proto": 6}
    add(r, 0, 10, m(**ip, ipv4_src=0x0A000001), Conjunction(0, 2, 1))
    add(r, 0, 10, m(**ip, ipv4_src=0x0A000003), Conjunction(0, 2, 1))
    add(r, 0, 10, m(**tcp_, tcp_dst=80), Conjunction(1, 2, 1))
    add(r, 0, 10, m(**tcp_, tcp_dst=22), Conjunction(1, 2, 1), Conjunction(1, 2, 2))
    add(r, 0, 10, m(**ip, ipv4_dst=0x0A000009), Conjunction(0, 2, 2))
    add(r, 0, 10, m(conj_id=1, **ip), Output(p2))
    add(r, 0, 10, m(conj_id=2, **ip), Output(p3))
    # a lower-priority ordinary rule with the same match as a clause: used when the
    # conjunction is incomplete
    add(r, 0, 5, m(**tcp_, tcp_dst=80), Output(p3))

    def out(sip: str, dip: str, dport: int) -> list[str]:
        return sorted(r.send("p1", tcp(mac(2), mac(1), sip=sip, dip=dip, dport=dport)))

    assert out("10.0.0.1", "10.0.0.2", 80) == ["p2"]  # conj 1: src x port
    assert out("10.0.0.3", "10.0.0.2", 22) == ["p2"]
    assert out("10.0.0.5", "10.0.0.9", 22) == ["p3"]  # conj 2: dst x port 22
    assert out("10.0.0.5", "10.0.0.2", 80) == ["p3"]  # incomplete: the priority-5 rule
    assert out("10.0.0.5", "10.0.0.2", 443) == []  # nothing
    r.bridge.settle_counters()
    hits = {(x.priority, x.conj is None): x.packets for x in r.bridge.of.rules() if x.packets}
    # only the conj_id rules and the ordinary rule count packets, as in Open vSwitch 3.1
    assert all(ordinary for (_, ordinary) in hits)
    for f in r.dp.flow_dump():
        # ipv4_src whole where a clause matched it, else down to where it leaves both
        # clauses (10.0.0.5: 10.0.0.4/30, as Open vSwitch's ip_src prefix tracking).
        src = field(f.match.key, "ipv4_src")
        want = 0xFFFFFFFF if src in (0x0A000001, 0x0A000003) else 0xFFFFFFFC
        assert field(f.match.mask, "ipv4_src") == want, hex(src)
        # Each megaflow tells its port from the clauses' 80 and 22: exactly (a clause
        # matched), or by bits where it differs from both (443: bit 8 suffices).
        tp, dport = field(f.match.mask, "tp_dst"), field(f.match.key, "tp_dst")
        assert tp == 0xFFFF or all((dport ^ v) & tp for v in (80, 22)), hex(tp)


def test_recorder_hears_every_step_in_walk_order() -> None:
    from hitless.ofproto.ofxlate import xlate_openflow
    from hitless.packet.flow import extract_key

    r = rig()
    clear(r)
    p2 = r.no("p2")
    add(r, 0, 10, m(), RegLoad(sf("reg0"), 1), Resubmit(table=3))
    add(r, 3, 10, m(reg0=1), Output(p2))

    class Rec:
        def __init__(self) -> None:
            self.events: list[tuple[str, object]] = []

        def event(self, kind: str, **kw: object) -> None:
            self.events.append((kind, kw.get("table_id", kw.get("action"))))

    rec = Rec()
    key = extract_key(tcp(mac(2), mac(1)), r.no("p1"))
    x = xlate_openflow(r.bridge.of, r.bridge.state, key, recorder=rec)
    assert x.actions == (DpOutput(p2),)
    assert [k for k, _ in rec.events] == [
        "table", "action", "action", "resubmit", "table", "action", "resubmit_end", "end"
    ]  # fmt: skip
    assert rec.events[3] == ("resubmit", 3)


def _mac_learning(r: Rig, **learn_kw: object) -> None:
    """Table 0 learns eth_src -> in_port into table 10, looks the destination up there
    (reg1 = its port), table 20 floods when reg1 is still 0."""
    from hitless.openflow.nx_actions import Learn, LearnSpec

    clear(r)
    learn = Learn(
        10,
        (
            LearnSpec(0, 48, src=sf("eth_src"), dst=sf("eth_dst")),
            LearnSpec(1, 16, src=sf("in_port"), dst=sf("reg1", 0, 16)),
        ),
        priority=5,
        cookie=0x77,
        **learn_kw,  # type: ignore[arg-type]
    )
    add(r, 0, 10, m(), learn, Resubmit(table=10), Resubmit(table=20))
    add(r, 20, 10, m(reg1=0), Output(0xFFFFFFFB))  # FLOOD
    add(r, 20, 5, m(), OutputReg(sf("reg1", 0, 16)))


def test_learn_builds_rules_and_revalidates_the_megaflows_they_change() -> None:
    r = rig()
    _mac_learning(r, idle_timeout=10, hard_timeout=60)
    p1, p2 = r.no("p1"), r.no("p2")
    assert sorted(r.send("p1", tcp(mac(2), mac(1)))) == ["br0", "p2", "p3"]  # flood
    learned = [x for x in r.bridge.of.rules(10)]
    assert len(learned) == 1 and learned[0].cookie == 0x77 and learned[0].idle_timeout == 10
    assert list(r.send("p2", tcp(mac(1), mac(2)))) == ["p1"]  # learned: unicast
    # the first megaflow (p1 -> mac 2) read the then-empty table 10 and flooded; mac 2
    # is learned now: revalidation removed it (its mask no longer covers eth_dst)
    flows = {int.from_bytes(f.match.key[:4], "big"): f for f in r.dp.flow_dump()}
    assert p1 not in flows and flows[p2].actions == (DpOutput(p1),)
    assert list(r.send("p1", tcp(mac(2), mac(1)))) == ["p2"]
    # idle timeout: traffic through the megaflow keeps the learned rules alive...
    for _ in range(3):
        r.advance(6)
        r.send("p1", tcp(mac(2), mac(1)))
        r.send("p2", tcp(mac(1), mac(2)))
    assert len(list(r.bridge.of.rules(10))) == 2
    # ...and without traffic they expire, and forwarding floods again
    r.advance(11)
    assert list(r.bridge.of.rules(10)) == []
    assert sorted(r.send("p1", tcp(mac(2), mac(1)))) == ["br0", "p2", "p3"]


def test_learn_limit_and_delete_learned() -> None:
    from hitless.openflow.nx_actions import LEARN_DELETE_LEARNED

    r = rig()
    _mac_learning(r, limit=2, flags=LEARN_DELETE_LEARNED, form=45)
    for n in (1, 2, 3):
        r.send("p1", tcp(mac(9), mac(n)))
    assert len(list(r.bridge.of.rules(10))) == 2  # the third would pass the limit
    r.bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0, match=Match()), r.clock.t)
    r.bridge.commit_openflow()
    assert list(r.bridge.of.rules(10)) == []  # deleted with their learner


def test_multipath_and_bundle_choose_links_by_the_flow_hash_and_liveness() -> None:
    from hitless.openflow.nx_actions import BundleAction, Multipath

    r = rig()
    clear(r)
    p2, p3 = r.no("p2"), r.no("p3")
    # multipath: link 0/1 into reg0, then reg0 picks the port
    add(r, 0, 10, m(eth_type=IP), Multipath(2, 0, 0, 1, 0, sf("reg0", 0, 1)), Resubmit(table=1))
    add(r, 1, 10, m(reg0=0), Output(p2))
    add(r, 1, 10, m(reg0=1), Output(p3))
    seen = set()
    for port in range(40000, 40040):
        out = r.send("p1", tcp(mac(2), mac(1), sport=port))
        assert len(out) == 1
        seen |= set(out)
        assert r.send("p1", tcp(mac(2), mac(1), sport=port)) == out  # the same flow, same link
    assert seen == {"p2", "p3"}
    for f in r.dp.flow_dump():  # the hashed fields are in every megaflow
        assert field(f.match.mask, "tp_src") == 0xFFFF
    # bundle active_backup: the first live member; hrw: spread over the live ones
    clear(r)
    add(r, 0, 10, m(), BundleAction(0, 0, 0, (p3, p2)))
    assert list(r.send("p1", tcp(mac(2), mac(1)))) == ["p3"]
    clear(r)
    add(r, 0, 10, m(eth_type=IP), BundleAction(1, 2, 0, (p2, p3), sf("reg2", 0, 16)),
        OutputReg(sf("reg2", 0, 16)))  # fmt: skip
    seen = set()
    for port in range(40000, 40040):
        seen |= set(r.send("p1", tcp(mac(2), mac(1), sport=port)))
    assert seen == {"p2", "p3"}


def test_controller_pause_resumes_after_the_action_with_the_controllers_registers() -> None:
    """``controller(pause)`` sends the packet up with a continuation and stops; NXT_RESUME
    (Bridge.resume) goes on with what was left at every resubmit level, with the
    registers the controller handed back (OVN's put_dhcp_opts: the answer's bit in reg0)
    and the packet as the controller rewrote it."""
    from hitless.openflow.nx_actions import Controller2

    r = rig()
    p1, p2, p3 = r.no("p1"), r.no("p2"), r.no("p3")
    add(r, 0, 10, m(in_port=p1), RegLoad(sf("reg1"), 7), Resubmit(table=1), Output(p3))
    add(r, 1, 10, m(), Controller2(userdata=b"\x01\x02", pause=True), Resubmit(table=2))
    add(r, 2, 10, m(reg0=1, reg1=7), Output(p2))
    add(r, 2, 5, m())  # drop
    pkt = tcp(mac(2), mac(1))
    assert r.send("p1", pkt) == {}  # paused: nothing out yet, not even p3
    (pin,) = r.bridge.take_packet_ins()
    assert pin.continuation and pin.userdata == b"\x01\x02" and ("reg1", 7) in pin.fields
    again = tcp(mac(2), mac(1), dport=81)  # the controller rewrote the packet
    # reg0 set by the controller (as Open vSwitch hands it back in OpenFlow 1.5: the
    # register pair xreg0, masked to reg0's half): table 2 sends to p2, then table 0's
    # output:p3 runs.
    r.bridge.resume(
        again,
        pin.continuation,
        [("reg1", 7, None), ("xreg0", 1 << 32, 0xFFFFFFFF << 32)],
        r.clock.t,
    )
    assert r.out() == {"p2": [again], "p3": [again]}
    # Handed back without it: table 2's other rule (drop), then output:p3.
    r.bridge.resume(pkt, pin.continuation, [("reg1", 7, None)], r.clock.t)
    assert r.out() == {"p3": [pkt]}
    # The second packet of the flow pauses the same way (the megaflow upcalls it).
    assert r.send("p1", pkt) == {}
    (pin2,) = r.bridge.take_packet_ins()
    assert pin2.continuation == pin.continuation
    with pytest.raises(ValueError):
        r.bridge.resume(pkt, b"\x09" + pin.continuation[1:], [], r.clock.t)
    # A continuation is the controller's bytes: actions it could not add are refused.
    from dataclasses import replace

    from hitless.ofproto.ofxlate import Continuation
    from hitless.openflow.actions import GroupAction

    forged = replace(Continuation.decode(pin.continuation), actions=(GroupAction(77),))
    with pytest.raises(RemoteProtocolError):
        r.bridge.resume(pkt, forged.encode(), [], r.clock.t)
    assert r.out() == {}


def test_controller_pause_inside_clone_pauses_that_copy_only_and_a_bucket_drops_it() -> None:
    """As Open vSwitch 3.1 (tests/daemon/test_pause_differential.py): the continuation
    holds what the clone had left, and nothing after the clone runs (its freeze ends the
    actions). A bucket's actions are an action set (tests/daemon/test_group_vs_ovs.py):
    its controller(pause) is not one, so it never runs; the bucket's output does."""
    from hitless.openflow import Bucket, GroupAction, GroupMod
    from hitless.openflow.constants import GroupModCommand, GroupType
    from hitless.openflow.nx_actions import Controller2

    r = rig()
    p1, p2, p3 = r.no("p1"), r.no("p2"), r.no("p3")
    mark = oxm("eth_dst", 0x505400000042)
    add(r, 0, 10, m(in_port=p1),
        Clone((SetField(mark), Controller2(userdata=b"\x07", pause=True), Output(p2))),
        Output(p3))  # fmt: skip
    pkt = tcp(mac(2), mac(1))
    assert r.send("p1", pkt) == {}  # output:p3 after the clone: never
    (pin,) = r.bridge.take_packet_ins()
    assert pin.continuation and pin.userdata == b"\x07"
    assert pin.packet[:6] == bytes.fromhex("505400000042")  # the clone's copy went up
    r.bridge.resume(pin.packet, pin.continuation, [], r.clock.t)
    assert r.out() == {"p2": [pin.packet]}  # the clone's rest, and nothing after it

    clear(r)
    gm = GroupMod(command=GroupModCommand.ADD, group_type=GroupType.ALL, group_id=9,
                  buckets=(Bucket(actions=(Controller2(pause=True), Output(p2))),
                           Bucket(actions=(Output(p3),))))  # fmt: skip
    r.bridge.group_mod(gm, r.clock.t)
    r.bridge.commit_openflow()
    add(r, 0, 10, m(in_port=p1), GroupAction(9), Output(p2))
    # bucket 1's output, bucket 2's, then output:p2; no pause
    assert r.send("p1", pkt) == {"p2": [pkt, pkt], "p3": [pkt]}
    assert r.bridge.take_packet_ins() == []


def test_a_learn_refresh_keeps_the_duration_and_restarts_the_hard_timeout() -> None:
    """Open vSwitch 3.1 (ofproto_flow_mod_learn_refresh): a refreshed learned rule keeps
    ``created`` (its duration goes on) and its hard timeout counts from ``modified``."""
    r = rig()
    _mac_learning(r, hard_timeout=20)
    t0 = r.clock.t
    r.send("p1", tcp(mac(2), mac(1)))
    (rule,) = r.bridge.of.rules(10)
    r.advance(15)
    r.send("p1", tcp(mac(2), mac(1)))  # a miss again? the megaflow's credit refreshes it
    r.run()
    assert rule.created == t0 and rule.modified > t0 + 14
    r.advance(10)  # 25 s after it was learned, 10 s after the refresh: still there
    assert list(r.bridge.of.rules(10)) == [rule]
    assert r.bridge.of.rules(10) and rule.created == t0
    r.advance(11)  # 21 s after the refresh: gone
    assert list(r.bridge.of.rules(10)) == []


def test_a_flow_mod_modify_restarts_the_hard_timeout_and_keeps_the_duration() -> None:
    """As Open vSwitch 3.1 (seen: add-flow hard_timeout=4, mod-flows 2.5 s later, the
    rule is there at 5.1 s with hard_age=2)."""
    r = rig()
    clear(r)
    t0 = r.clock.t
    add(r, 0, 5, m(), hard_timeout=4)
    r.advance(2.5)
    r.bridge.flow_mod(FlowMod(command=FlowModCommand.MODIFY, table_id=0, match=Match(),
                              instructions=(ApplyActions((Output(r.no("p2")),)),)), r.clock.t)  # fmt: skip
    r.bridge.commit_openflow()
    r.advance(2.5)
    (rule,) = r.bridge.of.rules(0)
    assert rule.created == t0 and rule.modified == t0 + 2.5
    r.advance(2)
    assert list(r.bridge.of.rules(0)) == []


def test_controller_pause_keeps_the_action_set_and_the_rules_other_instructions() -> None:
    """As Open vSwitch's continuation (its action set and the actions it froze): the
    write_actions and goto_table of the rule whose apply-actions paused, and the action
    set, run after NXT_RESUME, in that order; a pause with neither keeps the first
    continuation format (the bytes older builds read)."""
    from hitless.ofproto.ofxlate import Continuation
    from hitless.openflow import WriteActions
    from hitless.openflow.nx_actions import Controller2

    r = rig()
    clear(r)
    p1, p2, p3 = r.no("p1"), r.no("p2"), r.no("p3")
    r.bridge.flow_mod(FlowMod(
        command=FlowModCommand.ADD, table_id=0, priority=10, match=m(in_port=p1),
        instructions=(ApplyActions((Controller2(pause=True),)), WriteActions((Output(p3),)),
                      GotoTable(2)),
    ), r.clock.t)  # fmt: skip
    add(r, 2, 10, m(), Output(p2))
    r.bridge.commit_openflow()
    pkt = tcp(mac(2), mac(1))
    assert r.send("p1", pkt) == {}
    (pin,) = r.bridge.take_packet_ins()
    assert pin.continuation[0] == 2  # the rule's instructions need format 2
    cont = Continuation.decode(pin.continuation)
    assert cont.encode() == pin.continuation
    r.bridge.resume(pin.packet, pin.continuation, [], r.clock.t)
    assert r.out() == {"p2": [pkt], "p3": [pkt]}  # goto's table 2, then the action set

    clear(r)
    r.bridge.flow_mod(FlowMod(
        command=FlowModCommand.ADD, table_id=0, priority=10, match=m(in_port=p1),
        instructions=(WriteActions((Output(p3),)), GotoTable(1)),
    ), r.clock.t)  # fmt: skip
    add(r, 1, 10, m(), Controller2(pause=True), Output(p2))
    r.bridge.commit_openflow()
    assert r.send("p1", pkt) == {}  # the action set does not run before the resume
    (pin,) = r.bridge.take_packet_ins()
    assert Continuation.decode(pin.continuation).action_set == (Output(p3),)
    r.bridge.resume(pin.packet, pin.continuation, [], r.clock.t)
    assert r.out() == {"p2": [pkt], "p3": [pkt]}

    clear(r)
    add(r, 0, 10, m(in_port=p1), Controller2(pause=True), Output(p2))
    assert r.send("p1", pkt) == {}
    (pin,) = r.bridge.take_packet_ins()
    assert pin.continuation[0] == 1
