"""ofproto/trace in memory: the real translation with a recorder, Open vSwitch's layout
(the same rules are compared against a live Open vSwitch in
tests/daemon/test_appctl_vs_ovs.py), and a trace changes nothing."""

from __future__ import annotations

from hitless.ofproto.trace import trace
from hitless.openflow import (
    ApplyActions,
    FlowMod,
    GotoTable,
    GroupAction,
    GroupMod,
    Match,
    Output,
    PushVlan,
    SetField,
    WriteActions,
)
from hitless.openflow.constants import FlowModCommand, GroupModCommand, GroupType
from hitless.openflow.match import field as oxm
from hitless.openflow.messages import Bucket
from hitless.packet.flow import extract_key
from hitless.packet.flowstr import build_packet, parse_flow
from tests.ofproto.helpers import P, Rig


def rig() -> Rig:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    add = FlowModCommand.ADD
    bucket = Bucket(actions=(SetField(oxm("vlan_vid", 0x1064)), Output(r.no("p2"))))
    r.bridge.group_mod(
        GroupMod(command=GroupModCommand.ADD, group_type=GroupType.ALL, group_id=1,
                 buckets=(bucket,)),
        r.clock.t,
    )  # fmt: skip
    for fm in (
        FlowMod(command=add, priority=10, match=Match.of(in_port=r.no("p1")),
                instructions=(ApplyActions((PushVlan(), SetField(oxm("vlan_vid", 0x100A)))),
                              GotoTable(1))),
        FlowMod(command=add, table_id=1, priority=20, cookie=5,
                match=Match.of(vlan_vid=0x100A), instructions=(ApplyActions((GroupAction(1),)),)),
        FlowMod(command=add, priority=3, match=Match.of(in_port=r.no("p2")),
                instructions=(WriteActions((Output(r.no("p1")),)), GotoTable(3))),
        FlowMod(command=add, table_id=3, priority=3, match=Match(),
                instructions=(ApplyActions((SetField(oxm("eth_dst", 5)),)),)),
    ):  # fmt: skip
        r.bridge.flow_mod(fm, r.clock.t)
    r.bridge.commit_openflow()
    return r


def key(flow: str) -> bytes:
    spec = parse_flow(flow)
    assert spec.in_port is not None
    return extract_key(build_packet(spec), spec.in_port)


def test_trace_of_tables_group_and_vlan_rewrite() -> None:
    r = rig()
    text, x = trace("br0", r.bridge.of, r.bridge.state, key("in_port=1,dl_dst=00:00:00:00:00:02"))
    lines = text.splitlines()
    assert lines[2:13] == [
        'bridge("br0")',
        "-------------",
        " 0. in_port=1, priority 10",
        "    push_vlan:0x8100",
        "    set_field:4106->vlan_vid",
        "    goto_table:1",
        " 1. dl_vlan=10, priority 20, cookie 0x5",
        "    group:1",
        "    bucket 0",
        "            set_field:4196->vlan_vid",
        "            output:2",
    ]
    assert lines[14].startswith("Final flow: in_port=1,dl_vlan=10,dl_vlan_pcp=0,")
    assert lines[-1] == "Datapath actions: " + ",".join(
        ["push_vlan(vid=0,pcp=0)", "set(vlan_tci=000a/0fff)", "set(vlan_tci=0064/0fff)", "2"]
    )
    assert x.actions  # the Xlate the datapath would get


def test_action_set_nests_the_next_table_and_nothing_changes() -> None:
    r = rig()
    before = [(ru.packets, ru.bytes) for ru in r.bridge.of.rules()], len(r.bridge.mac)
    text, _ = trace("br0", r.bridge.of, r.bridge.state, key("in_port=2"))
    assert text.split("\n\n")[1].splitlines()[2:] == [
        " 0. in_port=2, priority 3",
        "    write_actions(output:1)",
        "     -> action set is: output:1",
        "    goto_table:3",
        "     3. priority 3",
        "            set_field:00:00:00:00:00:05->eth_dst",
        "--. Executing action set:",
        "    output:1",
    ]
    assert ([(ru.packets, ru.bytes) for ru in r.bridge.of.rules()], len(r.bridge.mac)) == before
    assert r.dp.flow_count() == 0  # nothing installed


def test_normal_says_what_it_decided_and_a_miss_drops() -> None:
    r = rig()
    text, _ = trace("br0", r.bridge.of, r.bridge.state, key("in_port=3"))
    assert " 0. priority 0\n    NORMAL\n     -> no learned MAC for destination, flooding\n" in text
    r.bridge.flow_mod(
        FlowMod(command=FlowModCommand.DELETE, table_id=0xFF, match=Match()), r.clock.t
    )
    r.bridge.commit_openflow()
    text, _ = trace("br0", r.bridge.of, r.bridge.state, key("in_port=3"))
    assert " 0. No match.\n    drop\n" in text and text.endswith("Datapath actions: drop\n")
