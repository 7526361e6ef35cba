"""Open vSwitch's fields beyond the packet headers, through the OpenFlow pipeline on the
dummy datapath: ``vlan_tci`` written whole (a tag pushed, rewritten or popped by its CFI
bit), ``actset_output`` (the action set's output port, OFPP_UNSET without one),
``packet_type`` (every packet standard Ethernet, (0,0)), the tunnel values without a
tunnel port (GBP, ERSPAN, IPv6 outer addresses: zero from a port, written and read back),
and the table features that list them (encoded with 8-byte experimenter headers)."""

from __future__ import annotations

import struct

import pytest

from hitless.ofproto.fields import LOCS
from hitless.ofproto.ofhandler import _field_headers, _table_caps
from hitless.openflow import (
    ApplyActions,
    ClearActions,
    FlowMod,
    GotoTable,
    Match,
    Output,
    SetField,
    WriteActions,
)
from hitless.openflow._wire import Reader
from hitless.openflow.constants import FlowModCommand, OxmClass, TableFeaturePropType
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Oxm, parse_oxm
from hitless.openflow.match import field as oxm
from hitless.openflow.multipart import TableFeatureProp
from hitless.openflow.nx import encode_nxm
from hitless.openflow.nxm import NX_VENDOR, spec_by_name
from tests.ofproto.helpers import P, Rig, frame, vid_of

A, B = "50:54:00:00:00:01", "50:54:00:00:00:02"


def rig(*rules: tuple[int, int, Match, tuple[object, ...]]) -> Rig:
    """(table, priority, match, instructions) rules and nothing else."""
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    r.bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF), r.clock.t)
    for table, prio, match, insts in rules:
        r.bridge.flow_mod(
            FlowMod(command=FlowModCommand.ADD, table_id=table, priority=prio, match=match,
                    instructions=insts),  # type: ignore[arg-type]
            r.clock.t,
        )  # fmt: skip
    r.bridge.commit_openflow()
    return r


def _apply(*actions: object) -> tuple[object, ...]:
    return (ApplyActions(actions),)  # type: ignore[arg-type]


def test_a_vlan_tci_write_pushes_rewrites_or_pops_the_tag() -> None:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P()})
    p1, p2 = r.no("p1"), r.no("p2")
    r = rig(
        (0, 10, Match.of(in_port=p1, vlan_vid=0), _apply(SetField(oxm("vlan_tci", 0x1005)),
                                                         Output(p2))),
        (0, 10, Match.of(in_port=p1, vlan_vid=0x1007), _apply(SetField(oxm("vlan_tci", 0)),
                                                              Output(p2))),
        (0, 10, Match.of(in_port=p1, vlan_vid=0x1008), _apply(
            SetField(oxm("vlan_tci", 0x3009)), Output(p2))),
    )  # fmt: skip
    untagged = r.send("p1", frame(B, A)).get("p2", [])
    assert [vid_of(p) for p in untagged] == [5]
    assert [vid_of(p) for p in r.send("p1", frame(B, A, vid=7)).get("p2", [])] == [None]
    out = r.send("p1", frame(B, A, vid=8)).get("p2", [])
    assert [vid_of(p) for p in out] == [9] and out[0][14] >> 5 == 1  # PCP 1


def test_actset_output_is_the_action_sets_port() -> None:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    p1, p2, p3 = r.no("p1"), r.no("p2"), r.no("p3")
    unset = 0xFFFFFFF7
    r = rig(
        # in_port p1: the set says output:p2; in_port p2: the set is empty
        (0, 10, Match.of(in_port=p1), (WriteActions((Output(p2),)), GotoTable(1))),
        (0, 10, Match.of(in_port=p2), (GotoTable(1),)),
        # actset_output=p2: the set's output is replaced by p3
        (1, 10, Match((oxm("actset_output", p2),)), (ClearActions(), *_apply(Output(p3)))),
        (1, 10, Match((oxm("actset_output", unset),)), _apply(Output(p1))),
    )  # fmt: skip
    assert set(r.send("p1", frame(B, A))) == {"p3"}
    assert set(r.send("p2", frame(B, A))) == {"p1"}


def test_packet_type_is_standard_ethernet() -> None:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    p2, p3 = r.no("p2"), r.no("p3")
    r = rig(
        (0, 20, Match((oxm("packet_type", 1 << 16 | 0x800),)), _apply(Output(p3))),
        (0, 10, Match((oxm("packet_type", 0),)), _apply(Output(p2))),
    )
    assert set(r.send("p1", frame(B, A))) == {"p2"}


def test_tunnel_values_start_at_zero_and_read_back_what_was_written() -> None:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    p2, p3 = r.no("p2"), r.no("p3")
    gbp, erspan = oxm("tun_gbp_id", 5), oxm("tun_erspan_ver", 2)
    r = rig(
        (0, 30, Match((oxm("tun_ipv6_src", 1),)), _apply(Output(p3))),
        (0, 10, Match(), (*_apply(SetField(gbp), SetField(erspan)), GotoTable(1))),
        (1, 10, Match((gbp, erspan)), _apply(Output(p2))),
        (1, 5, Match(), _apply(Output(p3))),
    )
    assert set(r.send("p1", frame(B, A))) == {"p2"}


def test_read_only_fields_are_refused_as_set_field_targets() -> None:
    r = Rig({"br0": P(type="internal"), "p1": P()})
    for name, value in (("tun_gtpu_msgtype", 1), ("packet_type", 0), ("actset_output", 1)):
        with pytest.raises(RemoteProtocolError):
            r.bridge.flow_mod(
                FlowMod(command=FlowModCommand.ADD, instructions=_apply(SetField(oxm(name, value)))),  # type: ignore[arg-type]
                r.clock.t,
            )


def test_packet_type_of_ethernet_is_kept_by_the_rule_but_never_encoded() -> None:
    """As Open vSwitch: ``packet_type=(0,0)`` makes a rule of its own, and its dump says no
    packet_type; another type is said in OXM (1.3+) and inside NXM (1.0)."""
    eth, ip = oxm("packet_type", 0), oxm("packet_type", 1 << 16 | 0x800)
    assert Match((eth,)).encode() == Match().encode()
    assert encode_nxm(Match((eth, oxm("reg0", 1)))) == encode_nxm(Match((oxm("reg0", 1),)))
    assert encode_nxm(Match((oxm("reg0", 1), ip))).startswith(ip.encode())  # first
    raw = Match((ip,)).encode()
    back = parse_oxm(Reader(raw, 4, 12))
    assert back == Oxm(44, ip.value, None, OxmClass.OPENFLOW_BASIC, 4)


def test_table_features_list_the_fields_with_their_experimenter_headers() -> None:
    match, wild, sets = _field_headers()
    names = set(LOCS)
    for name in ("packet_type", "actset_output", "tun_ipv6_src", "tun_erspan_idx"):
        assert name in names
    erspan = spec_by_name("tun_erspan_idx")
    assert erspan is not None
    h = (0xFFFF << 16 | 11 << 9 | 1 << 8 | (4 * 2 + 4)) << 32 | NX_VENDOR  # maskable
    assert h in match and h >> 32 & ~0x1FF | 8 in {x >> 32 for x in wild}
    vlan_tci = 0 << 16 | 4 << 9 | 2
    ct_mark = 1 << 16 | 107 << 9 | 4
    gtpu = (0xFFFF << 16 | 16 << 9 | 5) << 32 | NX_VENDOR
    assert {vlan_tci, ct_mark} <= set(sets) and gtpu not in sets and gtpu in wild
    prop = TableFeatureProp(TableFeaturePropType.MATCH, match)
    raw = prop.encode()
    (length,) = struct.unpack_from("!H", raw, 2)
    n_exp = sum(1 for x in match if x >> 32)
    assert length == 4 + 4 * len(match) + 4 * n_exp
    body = Reader(raw, 4, length)
    assert TableFeatureProp.parse(TableFeaturePropType.MATCH, body).ids == match
    # 1.2 table statistics: no packet_type bit (an OXM of 1.3+)
    assert all(44 not in caps.match for caps in _table_caps())
