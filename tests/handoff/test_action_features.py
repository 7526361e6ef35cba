"""Megaflow actions an older build cannot read ("action:NAME" handoff features): a
switch whose datapath flows hold one refuses, before anything is frozen, a peer that
does not say it reads it, naming the bridge, the action and what to clear; a peer that
says it does takes them (in memory: two engines, the dummy datapath)."""

from __future__ import annotations

import pytest

from hitless.datapath.actions import (
    CheckPktLen,
    Clone,
    Ct,
    Output,
    Recirc,
    SetField,
    SetPriority,
    actions_from_json,
    actions_to_json,
)
from hitless.datapath.execute import apply_actions
from hitless.handoff.engine import _GATED_ACTIONS, _GATED_HINT, HandoffRefused
from hitless.handoff.protocol import FEATURES
from hitless.openflow import ApplyActions, FlowMod, Match
from hitless.openflow import Output as OfOutput
from hitless.openflow import SetField as OfSetField
from hitless.openflow.actions import SetQueue
from hitless.openflow.constants import FlowModCommand, OxmField
from hitless.openflow.match import Oxm
from hitless.openflow.nx_actions import NxDecNshTtl
from hitless.openflow.nxm import ERICOXM, NSH_VENDOR
from tests.handoff.pair import ALL_FEATURES, SRC, Clock, old_switch, traffic


def test_a_peer_without_set_priority_is_refused_before_the_freeze() -> None:
    clock = Clock()
    side, dp, bridge = old_switch(clock)
    fm = FlowMod(
        command=FlowModCommand.ADD,
        priority=100,
        match=Match.of(eth_src=SRC),
        instructions=(ApplyActions((SetQueue(2), OfOutput(2))),),
    )
    bridge.flow_mod(fm, clock())
    traffic(dp, bridge, clock, 0)
    (flow,) = [f for f in dp.flow_dump() if SetPriority(0x10003) in f.actions]
    assert actions_from_json(actions_to_json(flow.actions)) == flow.actions

    old_peer = side.exporter(ALL_FEATURES)  # says nothing about set_priority
    with pytest.raises(HandoffRefused) as refused:
        old_peer.precopy(clock(), True)
    msg = str(refused.value)
    assert "bridge br0" in msg and "set_priority" in msg and "set_queue" in msg, msg

    assert "action:set_priority" in FEATURES and "action:sample" in FEATURES
    new_peer = side.exporter(ALL_FEATURES + ("action:set_priority", "action:sample"))
    (bs,) = new_peer.precopy(clock(), True).bridges
    assert bs.name == "br0"


def test_priorities_follow_outputs_into_check_pkt_len_branches() -> None:
    acts = (
        SetPriority(0x10002),
        Output(1),
        CheckPktLen(100, (SetPriority(0x10003), Output(2)), (Output(3),)),
        Output(4),
    )
    for size, want in ((60, [(1, 0x10002), (3, 0x10002), (4, 0x10002)]),
                       (200, [(1, 0x10002), (2, 0x10003), (4, 0x10002)])):  # fmt: skip
        prios: list[int] = []
        out, _ = apply_actions(bytes(size), acts, priorities=prios)
        assert [(p, pr) for (p, _), pr in zip(out, prios, strict=True)] == want
    assert CheckPktLen in _GATED_ACTIONS
    assert all(f"action:{n}" in FEATURES for n in _GATED_HINT)


def test_a_clone_runs_on_a_copy_and_a_peer_without_it_is_refused() -> None:
    """The datapath's clone: its actions rewrite, track (ct fields in the key) and
    prioritise a copy; the actions after it see the packet as it was. A switch holding
    such a megaflow refuses a peer that does not say "action:clone"."""
    from hitless.datapath.conntrack import CtResult
    from hitless.packet.flow import CT_OFF, extract_key

    frame = bytes.fromhex("0000000000020000000000010800") + bytes(46)

    def ct(packet: bytes, a: Ct, natted: bool) -> CtResult:
        return CtResult(0x21, a.zone, packet=packet[:6] + b"\x02" * 6 + packet[12:])

    acts = (
        SetPriority(0x10002),
        Clone((SetField("eth_dst", b"\x04" * 6, None), SetPriority(0x10003), Ct(9), Output(2))),
        Output(3),
    )
    prios: list[int] = []
    recirc: list[tuple[bytes, bytes]] = []
    key = extract_key(frame, 1)
    out, _ = apply_actions(frame, acts, key=key, ct=ct, priorities=prios, recirc=recirc)
    assert [p for p, _ in out] == [2, 3] and prios == [0x10003, 0x10002]
    assert out[0][1][:12] == b"\x04" * 6 + b"\x02" * 6  # the copy: rewritten and natted
    assert out[1][1] == frame  # after the clone: as it came
    # a recirculation after the clone carries the key as it was (ct fields untouched)
    out, _ = apply_actions(frame, (*acts, Recirc(5)), key=key, ct=ct, recirc=recirc)
    assert recirc[-1][0] == frame and recirc[-1][1][CT_OFF + 4 :] == key[CT_OFF + 4 :]

    clock = Clock()
    side, dp, bridge = old_switch(clock)
    traffic(dp, bridge, clock, 0)
    (flow, *_) = dp.flow_dump()
    dp.flow_put(flow.match, (Clone((Ct(9), Output(2))), Output(3)))
    bridge.revalidator.settle_flows = lambda flows, now: None
    with pytest.raises(HandoffRefused) as refused:
        side.exporter(ALL_FEATURES).precopy(clock(), True)
    msg = str(refused.value)
    assert "bridge br0" in msg and "clone" in msg and "ct actions" in msg, msg
    assert "action:clone" in FEATURES and Clone in _GATED_ACTIONS
    (bs,) = side.exporter(ALL_FEATURES + ("action:clone",)).precopy(clock(), True).bridges
    assert bs.name == "br0"


def test_rules_on_nd_extension_fields_are_refused_to_a_peer_without_them() -> None:
    """nd_reserved/nd_options_type (Ericsson's OXM class): a build before them could not
    restore such a rule (c0a5a15: "match field oxm_0x1000_1 is not supported"), so a
    switch holding one refuses a peer that does not say "field:nd_ext", before anything
    is frozen; once the rule is gone the same peer is taken."""
    clock = Clock()
    side, _dp, bridge = old_switch(clock)
    nd = Match(
        (Oxm(OxmField.ETH_TYPE, 0x86DD), Oxm(OxmField.IP_PROTO, 58),
         Oxm(OxmField.ICMPV6_TYPE, 135), Oxm(1, 5, oxm_class=ERICOXM, width=4))
    )  # fmt: skip
    fm = FlowMod(command=FlowModCommand.ADD, priority=100, match=nd,
                 instructions=(ApplyActions((OfOutput(2),)),))  # fmt: skip
    bridge.flow_mod(fm, clock())
    assert "field:nd_ext" in FEATURES
    with pytest.raises(HandoffRefused) as refused:
        side.exporter(ALL_FEATURES).precopy(clock(), True)
    msg = str(refused.value)
    assert "bridge br0" in msg and "nd_reserved" in msg and "del-flows" in msg, msg
    (bs,) = side.exporter((*ALL_FEATURES, "field:nd_ext")).precopy(clock(), True).bridges
    assert bs.openflow is not None and any(r.priority == 100 for r in bs.openflow.rules)

    # a set_field of nd_options_type in a rule is refused alike; deleting the rules lets
    # the older peer through
    setter = FlowMod(command=FlowModCommand.ADD, priority=90, match=Match.of(eth_src=SRC),
                     instructions=(ApplyActions((OfSetField(Oxm(2, 1, oxm_class=ERICOXM,
                                                                width=1)),)),))  # fmt: skip
    bridge.flow_mod(setter, clock())
    bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE_STRICT, priority=100, match=nd,
                            table_id=0), clock())  # fmt: skip
    with pytest.raises(HandoffRefused):
        side.exporter(ALL_FEATURES).precopy(clock(), True)
    bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF, match=Match()),
                    clock())  # fmt: skip
    (bs,) = side.exporter(ALL_FEATURES).precopy(clock(), True).bridges
    assert bs.name == "br0"


def test_rules_on_nsh_fields_are_refused_to_a_peer_without_them() -> None:
    """The NSH fields (Open vSwitch's NXOXM_NSH experimenter): a build before them could
    not restore a rule on one, so a switch holding one, in a match or in a set_field,
    refuses a peer that does not say "field:nsh", before anything is frozen; a peer that
    says it takes the rule; once the rules are gone the older peer is taken."""
    clock = Clock()
    side, _dp, bridge = old_switch(clock)
    spi = Oxm(4, 0x123, oxm_class=0xFFFF, width=4, experimenter=NSH_VENDOR)
    nsh = Match((Oxm(OxmField.ETH_TYPE, 0x894F), spi))
    fm = FlowMod(command=FlowModCommand.ADD, priority=100, match=nsh,
                 instructions=(ApplyActions((OfOutput(2),)),))  # fmt: skip
    bridge.flow_mod(fm, clock())
    assert "field:nsh" in FEATURES
    with pytest.raises(HandoffRefused) as refused:
        side.exporter((*ALL_FEATURES, "field:nd_ext")).precopy(clock(), True)
    msg = str(refused.value)
    assert "bridge br0" in msg and "nsh_" in msg and "del-flows" in msg, msg
    (bs,) = side.exporter((*ALL_FEATURES, "field:nsh")).precopy(clock(), True).bridges
    assert bs.openflow is not None and any(r.priority == 100 for r in bs.openflow.rules)

    si = Oxm(5, 7, oxm_class=0xFFFF, width=1, experimenter=NSH_VENDOR)
    setter = FlowMod(command=FlowModCommand.ADD, priority=90,
                     match=Match((Oxm(OxmField.ETH_TYPE, 0x894F),)),
                     instructions=(ApplyActions((OfSetField(si),)),))  # fmt: skip
    bridge.flow_mod(setter, clock())
    bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE_STRICT, priority=100, match=nsh,
                            table_id=0), clock())  # fmt: skip
    with pytest.raises(HandoffRefused):
        side.exporter(ALL_FEATURES).precopy(clock(), True)
    bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF, match=Match()),
                    clock())  # fmt: skip
    (bs,) = side.exporter(ALL_FEATURES).precopy(clock(), True).bridges
    assert bs.name == "br0"

    # dec_nsh_ttl (no NSH field named: the rule pins eth_type 0x894f only) alike
    dec = FlowMod(command=FlowModCommand.ADD, priority=80,
                  match=Match((Oxm(OxmField.ETH_TYPE, 0x894F),)),
                  instructions=(ApplyActions((NxDecNshTtl(), OfOutput(2))),))  # fmt: skip
    bridge.flow_mod(dec, clock())
    with pytest.raises(HandoffRefused) as refused:
        side.exporter(ALL_FEATURES).precopy(clock(), True)
    assert "dec_nsh_ttl" in str(refused.value), refused.value
    (bs,) = side.exporter((*ALL_FEATURES, "field:nsh")).precopy(clock(), True).bridges
    assert bs.name == "br0"
