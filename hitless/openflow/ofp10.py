"""OpenFlow 1.0 on the wire, translated to and from the message values of later versions.

``decode(data, nx)`` turns one OpenFlow 1.0 message (or a Nicira extension message of a
1.0 session: NXT_FLOW_MOD, NXST_FLOW, NXST_AGGREGATE) into the same value a 1.3 peer's
message becomes: a 1.0 flow_mod is a ``FlowMod`` whose actions sit in one
``ApplyActions``, an ``ofp10_match`` or an NXM match is a ``Match`` of OXM fields, 16-bit
port numbers become 32-bit ones. ``encode(msg, nx)`` goes the other way, choosing the
Nicira form where the session asked for it (NXM flow format, NXST replies to NXST
requests, NXT_PACKET_IN/NXT_PACKET_IN2). ``nx`` is the session's ``NxSession``.

What 1.0 cannot say is translated as Open vSwitch does where that is cheap (goto_table
as ``resubmit(,T)``, write_metadata, dec_ttl, set_queue and group as Nicira actions) and
otherwise left out of the reply; docs/openflow.md lists the differences.
Layouts: OpenFlow Switch Specification 1.0.0 §5 (read, not copied).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hitless.openflow._wire import Reader, fixed_str, pad8, parse_str
from hitless.openflow.actions import (
    Action,
    ApplyActions,
    DecMplsTtl,
    DecNwTtl,
    GotoTable,
    GroupAction,
    Instruction,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    SetField,
    SetMplsTtl,
    SetQueue,
    WriteMetadata,
    parse_action,
)
from hitless.openflow.constants import (
    MAX_PORT_NAME_LEN,
    NX_EXPERIMENTER_ID,
    OFP10_VERSION,
    OFP12_VERSION,
    OFP13_VERSION,
    ActionType,
    BadActionCode,
    BadRequestCode,
    ErrorType,
    FlowModCommand,
    FlowModFailedCode,
    OxmClass,
    OxmField,
)
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.match import Match, Oxm
from hitless.openflow.messages import (
    ACTION_CODECS,
    HEADER,
    VERSION_CODECS,
    BarrierReply,
    BarrierRequest,
    EchoReply,
    EchoRequest,
    ErrorMsg,
    Experimenter,
    FeaturesReply,
    FeaturesRequest,
    FlowMod,
    FlowRemoved,
    GetConfigReply,
    GetConfigRequest,
    GroupMod,
    Hello,
    Message,
    PacketIn,
    PacketOut,
    PortDesc,
    PortMod,
    PortStatus,
    QueueGetConfigReply,
    QueueGetConfigRequest,
    SetConfig,
    reason_before14,
)
from hitless.openflow.multipart import (
    AggregateStatsReply,
    AggregateStatsRequest,
    DescReply,
    DescRequest,
    ExperimenterStatsReply,
    ExperimenterStatsRequest,
    FlowStats,
    FlowStatsReply,
    FlowStatsRequest,
    GroupDescReply,
    GroupDescRequest,
    GroupFeaturesReply,
    GroupFeaturesRequest,
    GroupStatsReply,
    GroupStatsRequest,
    MultipartReply,
    MultipartRequest,
    PortDescReply,
    PortDescRequest,
    PortStats,
    PortStatsReply,
    PortStatsRequest,
    QueueStats,
    QueueStatsReply,
    QueueStatsRequest,
    TableStats,
    TableStatsReply,
    TableStatsRequest,
)
from hitless.openflow.nx import (
    NxFlowFormat,
    NxPacketInFormat,
    NxSession,
    NxStatsType,
    NxType,
    encode_nxm,
    nx_header,
    padded,
    parse_nxm,
    port_from16,
    port_to16,
)
from hitless.openflow.nx_actions import NxDecTtl, PopQueue, Resubmit, WriteMetadataAction
from hitless.openflow.nxmsg import (
    NxMessage,
    encode_nx_flow_removed,
    encode_nx_packet_in,
)
from hitless.openflow.ofp11 import load_actions

__all__ = [
    "OFP10_VERSION",
    "carries_set_field10",
    "decode",
    "encode",
    "encode_error",
    "match_from10",
    "match_to10",
]


class T10:
    """ofp_type in OpenFlow 1.0 (§5.1)."""

    HELLO = 0
    ERROR = 1
    ECHO_REQUEST = 2
    ECHO_REPLY = 3
    VENDOR = 4
    FEATURES_REQUEST = 5
    FEATURES_REPLY = 6
    GET_CONFIG_REQUEST = 7
    GET_CONFIG_REPLY = 8
    SET_CONFIG = 9
    PACKET_IN = 10
    FLOW_REMOVED = 11
    PORT_STATUS = 12
    PACKET_OUT = 13
    FLOW_MOD = 14
    PORT_MOD = 15
    STATS_REQUEST = 16
    STATS_REPLY = 17
    BARRIER_REQUEST = 18
    BARRIER_REPLY = 19
    QUEUE_GET_CONFIG_REQUEST = 20
    QUEUE_GET_CONFIG_REPLY = 21


class ST10:
    """ofp_stats_types in OpenFlow 1.0 (§5.3.5), plus Open vSwitch's port-desc (13)."""

    DESC = 0
    FLOW = 1
    AGGREGATE = 2
    TABLE = 3
    PORT = 4
    QUEUE = 5
    PORT_DESC = 13
    VENDOR = 0xFFFF


# -- the 40-byte ofp_match (§5.2.3) ----------------------------------------------------

_MATCH = struct.Struct("!IH6s6sHBxHBB2xIIHH")
FW_IN_PORT, FW_DL_VLAN, FW_DL_SRC, FW_DL_DST = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FW_DL_TYPE, FW_NW_PROTO, FW_TP_SRC, FW_TP_DST = 1 << 4, 1 << 5, 1 << 6, 1 << 7
FW_NW_SRC_SHIFT, FW_NW_DST_SHIFT = 8, 14
FW_DL_VLAN_PCP, FW_NW_TOS = 1 << 20, 1 << 21
FW_ALL = (1 << 22) - 1
_F = OxmField
_L4 = {  # nw_proto -> (tp_src field, tp_dst field)
    6: (_F.TCP_SRC, _F.TCP_DST),
    17: (_F.UDP_SRC, _F.UDP_DST),
    132: (_F.SCTP_SRC, _F.SCTP_DST),
}


def _mac(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _prefix_mask(wild_bits: int) -> int | None:
    """The IPv4 mask for ``wild_bits`` wildcarded low bits (None: exact)."""
    if wild_bits <= 0:
        return None
    if wild_bits >= 32:
        return 0
    return (0xFFFFFFFF << wild_bits) & 0xFFFFFFFF


def match_from10(r: Reader) -> tuple[Match, bool]:
    """An ofp10_match as a ``Match``; also whether it is exact (no wildcard at all),
    which in 1.0 gives the flow the highest priority."""
    (wc, in_port, dl_src, dl_dst, dl_vlan, pcp, dl_type, tos, proto, nw_src, nw_dst, tp_src,
     tp_dst) = r.unpack(_MATCH, "ofp10_match")  # fmt: skip
    out: list[Oxm] = []
    if not wc & FW_IN_PORT:
        out.append(Oxm(_F.IN_PORT, port_from16(in_port)))
    if not wc & FW_DL_DST:
        out.append(Oxm(_F.ETH_DST, _mac(dl_dst)))
    if not wc & FW_DL_SRC:
        out.append(Oxm(_F.ETH_SRC, _mac(dl_src)))
    if not wc & FW_DL_VLAN:
        if dl_vlan == 0xFFFF:  # OFP_VLAN_NONE: no 802.1Q header
            out.append(Oxm(_F.VLAN_VID, 0))
        else:
            out.append(Oxm(_F.VLAN_VID, (dl_vlan & 0xFFF) | 0x1000))
            if not wc & FW_DL_VLAN_PCP:
                out.append(Oxm(_F.VLAN_PCP, pcp & 7))
    elif not wc & FW_DL_VLAN_PCP:
        out += [Oxm(_F.VLAN_VID, 0x1000, 0x1000), Oxm(_F.VLAN_PCP, pcp & 7)]
    if not wc & FW_DL_TYPE:
        out.append(Oxm(_F.ETH_TYPE, dl_type))
        is_ip, is_ipv6, is_arp = dl_type == 0x0800, dl_type == 0x86DD, dl_type == 0x0806
        src_mask = _prefix_mask((wc >> FW_NW_SRC_SHIFT) & 0x3F)
        dst_mask = _prefix_mask((wc >> FW_NW_DST_SHIFT) & 0x3F)
        if is_ip or is_ipv6:
            if not wc & FW_NW_TOS:
                out.append(Oxm(_F.IP_DSCP, tos >> 2))
            if not wc & FW_NW_PROTO:
                out.append(Oxm(_F.IP_PROTO, proto))
                l4 = _L4.get(proto)
                if l4 is None and proto == (1 if is_ip else 58):
                    l4 = (
                        (_F.ICMPV4_TYPE, _F.ICMPV4_CODE)
                        if is_ip
                        else (_F.ICMPV6_TYPE, _F.ICMPV6_CODE)
                    )
                    tp_src, tp_dst = tp_src & 0xFF, tp_dst & 0xFF
                if l4 is not None:
                    if not wc & FW_TP_SRC:
                        out.append(Oxm(l4[0], tp_src))
                    if not wc & FW_TP_DST:
                        out.append(Oxm(l4[1], tp_dst))
            if is_ip:
                if src_mask != 0:
                    out.append(
                        Oxm(_F.IPV4_SRC, nw_src & (src_mask or 0xFFFFFFFF), src_mask)
                    )
                if dst_mask != 0:
                    out.append(
                        Oxm(_F.IPV4_DST, nw_dst & (dst_mask or 0xFFFFFFFF), dst_mask)
                    )
        elif is_arp:
            if not wc & FW_NW_PROTO:
                out.append(Oxm(_F.ARP_OP, proto))
            if src_mask != 0:
                out.append(Oxm(_F.ARP_SPA, nw_src & (src_mask or 0xFFFFFFFF), src_mask))
            if dst_mask != 0:
                out.append(Oxm(_F.ARP_TPA, nw_dst & (dst_mask or 0xFFFFFFFF), dst_mask))
    return Match(tuple(out)), (wc & FW_ALL) == 0


def _wild_bits(mask: int | None) -> int:
    if mask is None:
        return 0
    inv = ~mask & 0xFFFFFFFF
    return 32 if mask == 0 else inv.bit_length()


def match_to10(match: Match) -> bytes:
    """``match`` as an ofp10_match; fields 1.0 cannot carry are left out (wildcarded)."""
    wc = FW_ALL
    vals: dict[str, Any] = dict(
        in_port=0, dl_src=b"\0" * 6, dl_dst=b"\0" * 6, dl_vlan=0, pcp=0, dl_type=0, tos=0,
        proto=0, nw_src=0, nw_dst=0, tp_src=0, tp_dst=0,
    )  # fmt: skip
    wc |= 32 << FW_NW_SRC_SHIFT | 32 << FW_NW_DST_SHIFT
    wc &= ~(0x3F << FW_NW_SRC_SHIFT | 0x3F << FW_NW_DST_SHIFT)
    src_bits = dst_bits = 32
    for o in match.fields:
        if o.oxm_class != OxmClass.OPENFLOW_BASIC:
            continue
        f, v = o.field, o.value
        if f == _F.IN_PORT:
            vals["in_port"], wc = port_to16(v), wc & ~FW_IN_PORT
        elif f == _F.ETH_SRC and o.mask is None:
            vals["dl_src"], wc = v.to_bytes(6, "big"), wc & ~FW_DL_SRC
        elif f == _F.ETH_DST and o.mask is None:
            vals["dl_dst"], wc = v.to_bytes(6, "big"), wc & ~FW_DL_DST
        elif f == _F.VLAN_VID:
            if o.mask is None:
                vals["dl_vlan"] = 0xFFFF if v == 0 else v & 0xFFF
                wc &= ~FW_DL_VLAN
        elif f == _F.VLAN_PCP:
            vals["pcp"], wc = v, wc & ~FW_DL_VLAN_PCP
        elif f == _F.ETH_TYPE:
            vals["dl_type"], wc = v, wc & ~FW_DL_TYPE
        elif f == _F.IP_DSCP:
            vals["tos"], wc = v << 2, wc & ~FW_NW_TOS
        elif f in (_F.IP_PROTO, _F.ARP_OP):
            vals["proto"], wc = v & 0xFF, wc & ~FW_NW_PROTO
        elif f in (_F.IPV4_SRC, _F.ARP_SPA):
            vals["nw_src"], src_bits = v, _wild_bits(o.mask)
        elif f in (_F.IPV4_DST, _F.ARP_TPA):
            vals["nw_dst"], dst_bits = v, _wild_bits(o.mask)
        elif f in (_F.TCP_SRC, _F.UDP_SRC, _F.SCTP_SRC, _F.ICMPV4_TYPE, _F.ICMPV6_TYPE):
            vals["tp_src"], wc = v, wc & ~FW_TP_SRC
        elif f in (_F.TCP_DST, _F.UDP_DST, _F.SCTP_DST, _F.ICMPV4_CODE, _F.ICMPV6_CODE):
            vals["tp_dst"], wc = v, wc & ~FW_TP_DST
    wc = (wc & ~(0x3F << FW_NW_SRC_SHIFT | 0x3F << FW_NW_DST_SHIFT)) | (
        src_bits << FW_NW_SRC_SHIFT | dst_bits << FW_NW_DST_SHIFT
    )
    return _MATCH.pack(
        wc, vals["in_port"], vals["dl_src"], vals["dl_dst"], vals["dl_vlan"], vals["pcp"],
        vals["dl_type"], vals["tos"], vals["proto"], vals["nw_src"], vals["nw_dst"],
        vals["tp_src"], vals["tp_dst"],
    )  # fmt: skip


# -- actions (§5.2.4) ------------------------------------------------------------------


class AT10:
    OUTPUT = 0
    SET_VLAN_VID = 1
    SET_VLAN_PCP = 2
    STRIP_VLAN = 3
    SET_DL_SRC = 4
    SET_DL_DST = 5
    SET_NW_SRC = 6
    SET_NW_DST = 7
    SET_NW_TOS = 8
    SET_TP_SRC = 9
    SET_TP_DST = 10
    ENQUEUE = 11
    VENDOR = 0xFFFF


# Nicira action subtypes 1.0 needs for what 1.1+ says natively.
NXAST_SET_QUEUE = 4
NXAST_RESUBMIT_TABLE = 14
NXAST_DEC_TTL = 18
NXAST_WRITE_METADATA = 22
NXAST_PUSH_MPLS = 23
NXAST_POP_MPLS = 24
NXAST_SET_MPLS_TTL = 25
NXAST_DEC_MPLS_TTL = 26
NXAST_GROUP = 40

_NX_HEAD = struct.Struct("!IH")  # experimenter id, Nicira subtype
_NX10: dict[tuple[int, int], Callable[[int], Action]] = {
    (NX_EXPERIMENTER_ID, NXAST_SET_QUEUE): SetQueue,
    (NX_EXPERIMENTER_ID, NXAST_GROUP): GroupAction,
}
_TL = struct.Struct("!HH")
BAD_ACTION_LEN = (ErrorType.BAD_ACTION, BadActionCode.BAD_LEN)


def _bad_action(text: str, code: int = BadActionCode.BAD_TYPE) -> RemoteProtocolError:
    return RemoteProtocolError(text, ErrorType.BAD_ACTION, code)


def _tp_fields(proto: int | None) -> tuple[OxmField, OxmField]:
    return _L4.get(proto or 6, (_F.TCP_SRC, _F.TCP_DST))


_LEN10 = {t: 8 for t in range(11)} | {
    AT10.SET_DL_SRC: 16,
    AT10.SET_DL_DST: 16,
    AT10.ENQUEUE: 16,
}


def parse_actions10(r: Reader, proto: int | None = None) -> tuple[Action, ...]:
    """An OpenFlow 1.0 action list as action values. ``proto``: the flow's IP protocol,
    which says which transport port mod_tp_src/mod_tp_dst set."""
    out: list[Action] = []
    while r.remaining():
        start = r.pos
        atype, length = r.unpack(_TL, "action header")
        if length < 8 or length % 8:
            raise _bad_action(f"action length {length}", BadActionCode.BAD_LEN)
        b = r.sub(length - 4, "action", BAD_ACTION_LEN)
        if _LEN10.get(atype, length) != length:
            raise _bad_action(
                f"action {atype} of length {length}", BadActionCode.BAD_LEN
            )
        if atype == AT10.OUTPUT:
            port, max_len = b.unpack(struct.Struct("!HH"))
            out.append(Output(port_from16(port), max_len))
        elif atype == AT10.SET_VLAN_VID:
            (vid,) = b.unpack(struct.Struct("!H2x"))
            out.append(SetField(Oxm(_F.VLAN_VID, (vid & 0xFFF) | 0x1000)))
        elif atype == AT10.SET_VLAN_PCP:
            (pcp,) = b.unpack(struct.Struct("!B3x"))
            out.append(SetField(Oxm(_F.VLAN_PCP, pcp & 7)))
        elif atype == AT10.STRIP_VLAN:
            out.append(PopVlan())
        elif atype in (AT10.SET_DL_SRC, AT10.SET_DL_DST):
            (mac,) = b.unpack(struct.Struct("!6s6x"))
            f = _F.ETH_SRC if atype == AT10.SET_DL_SRC else _F.ETH_DST
            out.append(SetField(Oxm(f, _mac(mac))))
        elif atype in (AT10.SET_NW_SRC, AT10.SET_NW_DST):
            (addr,) = b.unpack(struct.Struct("!I"))
            f = _F.IPV4_SRC if atype == AT10.SET_NW_SRC else _F.IPV4_DST
            out.append(SetField(Oxm(f, addr)))
        elif atype == AT10.SET_NW_TOS:
            (tos,) = b.unpack(struct.Struct("!B3x"))
            out.append(SetField(Oxm(_F.IP_DSCP, tos >> 2)))
        elif atype in (AT10.SET_TP_SRC, AT10.SET_TP_DST):
            (tp,) = b.unpack(struct.Struct("!H2x"))
            src, dst = _tp_fields(proto)
            out.append(SetField(Oxm(src if atype == AT10.SET_TP_SRC else dst, tp)))
        elif atype == AT10.ENQUEUE:
            port, queue = b.unpack(struct.Struct("!H6xI"))
            # Open vSwitch's enqueue: set_queue, output, pop_queue (so a 1.3 dump says so)
            out += [SetQueue(queue), Output(port_from16(port)), PopQueue()]
        elif atype == AT10.VENDOR and b.peek(_NX_HEAD) in _NX10:
            # Nicira actions that say what 1.1+ has natively (set_queue, group).
            _, subtype = b.unpack(_NX_HEAD)
            (value,) = b.unpack(struct.Struct("!2xI"), "Nicira action")
            out.append(_NX10[(NX_EXPERIMENTER_ID, subtype)](value))
        elif atype == AT10.VENDOR:
            # Vendor actions have the same form in every version: the common codec's
            # (Nicira's become typed values there).
            a = parse_action(Reader(r.buf, start, start + length, r.error))
            # Nicira's dec_ttl is 1.0's way of saying 1.1+'s native one (kept native, so
            # a 1.1 or 1.2 dump says it in the form ovs-ofctl reads there, as OVS does)
            out.append(DecNwTtl() if isinstance(a, NxDecTtl) else a)
        else:
            raise _bad_action(f"unknown OpenFlow 1.0 action type {atype}")
    return tuple(out)


def _a10(atype: int, body: bytes) -> bytes:
    return _TL.pack(atype, 4 + len(body)) + body


def _nx_action(subtype: int, body: bytes) -> bytes:
    data = struct.pack("!IH", NX_EXPERIMENTER_ID, subtype) + body
    data += b"\0" * pad8(4 + len(data))
    return _TL.pack(AT10.VENDOR, 4 + len(data)) + data


_SET10: dict[int, Callable[[int], bytes]] = {
    _F.VLAN_VID: lambda v: _a10(AT10.SET_VLAN_VID, struct.pack("!H2x", v & 0xFFF)),
    _F.VLAN_PCP: lambda v: _a10(AT10.SET_VLAN_PCP, struct.pack("!B3x", v)),
    _F.ETH_SRC: lambda v: _a10(AT10.SET_DL_SRC, v.to_bytes(6, "big") + b"\0" * 6),
    _F.ETH_DST: lambda v: _a10(AT10.SET_DL_DST, v.to_bytes(6, "big") + b"\0" * 6),
    _F.IPV4_SRC: lambda v: _a10(AT10.SET_NW_SRC, struct.pack("!I", v)),
    _F.IPV4_DST: lambda v: _a10(AT10.SET_NW_DST, struct.pack("!I", v)),
    _F.IP_DSCP: lambda v: _a10(AT10.SET_NW_TOS, struct.pack("!B3x", v << 2)),
}
for _src, _dst in _L4.values():
    _SET10[_src] = lambda v: _a10(AT10.SET_TP_SRC, struct.pack("!H2x", v))
    _SET10[_dst] = lambda v: _a10(AT10.SET_TP_DST, struct.pack("!H2x", v))


def carries_set_field10(oxm: Oxm) -> bool:
    """Whether OpenFlow 1.0 has its own action for this set_field (mod_dl_src...);
    the others travel as Nicira loads (hitless.openflow.wire_forms)."""
    return oxm.oxm_class == OxmClass.OPENFLOW_BASIC and oxm.mask is None and oxm.field in _SET10


def encode_actions10(actions: tuple[Action, ...] | list[Action]) -> bytes:
    """Action values in OpenFlow 1.0 numbering (Nicira actions where 1.0 has none);
    what neither can carry is left out."""
    out = []
    acts = list(actions)
    i = 0
    while i < len(acts):
        a = acts[i]
        i += 1
        if isinstance(a, Output):
            out.append(
                _a10(AT10.OUTPUT, struct.pack("!HH", port_to16(a.port), a.max_len))
            )
        elif isinstance(a, SetQueue):
            nxt, last = acts[i : i + 1], acts[i + 1 : i + 2]
            if nxt and isinstance(nxt[0], Output) and last and isinstance(last[0], PopQueue):
                i += 2
                body = struct.pack("!H6xI", port_to16(nxt[0].port), a.queue_id)
                out.append(_a10(AT10.ENQUEUE, body))
            else:
                out.append(_nx_action(NXAST_SET_QUEUE, struct.pack("!2xI", a.queue_id)))
        elif isinstance(a, PopVlan):
            out.append(_a10(AT10.STRIP_VLAN, b"\0" * 4))
        elif isinstance(a, SetField):
            basic = a.field.oxm_class == OxmClass.OPENFLOW_BASIC
            enc = _SET10.get(a.field.field) if basic else None
            if enc is not None and a.field.mask is None:
                out.append(enc(a.field.value))
            else:  # Nicira load actions, as Open vSwitch says it in 1.0
                out.append(load_actions(a.field))
        elif isinstance(a, DecNwTtl):
            out.append(_nx_action(NXAST_DEC_TTL, b""))
        elif isinstance(a, PushMpls | PopMpls):  # Open vSwitch's Nicira forms
            sub = NXAST_PUSH_MPLS if isinstance(a, PushMpls) else NXAST_POP_MPLS
            out.append(_nx_action(sub, struct.pack("!H4x", a.ethertype)))
        elif isinstance(a, SetMplsTtl):
            out.append(_nx_action(NXAST_SET_MPLS_TTL, struct.pack("!B5x", a.ttl)))
        elif isinstance(a, DecMplsTtl):
            out.append(_nx_action(NXAST_DEC_MPLS_TTL, b""))
        elif isinstance(a, GroupAction):
            out.append(_nx_action(NXAST_GROUP, struct.pack("!2xI", a.group_id)))
        elif a.type == ActionType.EXPERIMENTER:  # Nicira's and others: the same in 1.0
            out.append(a.encode())
    return b"".join(out)


def actions_from_instructions(insts: tuple[Instruction, ...]) -> bytes:
    """A rule's instructions as a 1.0 action list, as Open vSwitch sends them."""
    out = []
    tail = []
    for inst in insts:
        if isinstance(inst, ApplyActions):
            out.append(encode_actions10(inst.actions))
        elif isinstance(inst, WriteMetadata):
            body = struct.pack("!6xQQ", inst.metadata, inst.mask)
            out.append(_nx_action(NXAST_WRITE_METADATA, body))
        elif isinstance(inst, GotoTable):
            body = struct.pack("!HB3x", 0xFFF8, inst.table_id)
            tail.append(_nx_action(NXAST_RESUBMIT_TABLE, body))
    return b"".join(out + tail)


def _instructions(
    actions: tuple[Action, ...], table_id: int = 0xFF
) -> tuple[Instruction, ...]:
    """A 1.0 action list as instructions. A final ``resubmit(,T)`` to a later table from
    the flow's own port is how Open vSwitch writes goto_table in 1.0: it becomes one.
    Open vSwitch reads the action list in instruction order (apply actions, then
    write_metadata): an action after write_metadata, a goto_table's resubmit too, is
    refused with OFPBAC_UNSUPPORTED_ORDER (sent in 1.0 as NXBRC_UNENCODABLE_ERROR)."""
    for n, a in enumerate(actions[:-1]):
        if isinstance(a, WriteMetadataAction):
            raise RemoteProtocolError(
                f"{type(actions[n + 1]).__name__} after write_metadata: invalid instruction "
                "ordering",
                ErrorType.BAD_ACTION,
                BadActionCode.UNSUPPORTED_ORDER,
            )
    out: list[Instruction] = []
    goto = _goto_of(actions[-1]) if actions else None
    if goto is not None and table_id < goto < 0xFF:
        actions = actions[:-1]
        out.append(GotoTable(goto))
    return ((ApplyActions(actions),) if actions else ()) + tuple(out)


def _goto_of(a: Action) -> int | None:
    if (
        isinstance(a, Resubmit)
        and a.form == NXAST_RESUBMIT_TABLE
        and a.in_port == 0xFFF8
    ):
        return a.table
    return None


def _proto_of(match: Match) -> int | None:
    o = match.get(_F.IP_PROTO)
    return o.value if o is not None else None


# -- ports (§5.2.1) --------------------------------------------------------------------

_PHY_PORT = struct.Struct("!H6s16sIIIIII")


def _features_to10(f: int) -> int:
    """1.3 port feature bits in 1.0 positions (1.0 has no 40G/100G/1T/other)."""
    return (f & 0x7F) | ((f >> 11) & 0x1F) << 7


def _features_from10(f: int) -> int:
    return (f & 0x7F) | ((f >> 7) & 0x1F) << 11


def port_to10(p: PortDesc) -> bytes:
    return _PHY_PORT.pack(
        port_to16(p.port_no), p.hw_addr, fixed_str(p.name, MAX_PORT_NAME_LEN, "port name"),
        p.config & 0x7F, p.state & 1, _features_to10(p.curr), _features_to10(p.advertised),
        _features_to10(p.supported), _features_to10(p.peer),
    )  # fmt: skip


def port_from10(r: Reader) -> PortDesc:
    no, hw, name, config, state, curr, adv, sup, peer = r.unpack(
        _PHY_PORT, "ofp_phy_port"
    )
    return PortDesc(
        port_no=port_from16(no), hw_addr=hw, name=parse_str(name), config=config,
        state=state & 1, curr=_features_from10(curr), advertised=_features_from10(adv),
        supported=_features_from10(sup), peer=_features_from10(peer),
    )  # fmt: skip


# -- decoding --------------------------------------------------------------------------

_FLOW_MOD = struct.Struct("!QHHHHIHH")
_NX_FLOW_MOD = struct.Struct("!QHHHHIHHH6x")
_FLOW_STATS_REQ = struct.Struct("!BxH")
_NX_FLOW_STATS_REQ = struct.Struct("!HHB3x")
_STATS = struct.Struct("!HH")
_NX_STATS = struct.Struct("!II4x")  # vendor, subtype, pad (after the stats header)
_PACKET_OUT = struct.Struct("!IHH")
_PORT_MOD = struct.Struct("!H6sIII4x")
_FEATURES = struct.Struct("!QIB3xII")
_PACKET_IN = struct.Struct("!IHHBx")
_FLOW_REMOVED = struct.Struct("!QHBxIIH2xQQ")


def _bad_request(text: str, code: int) -> RemoteProtocolError:
    return RemoteProtocolError(text, ErrorType.BAD_REQUEST, code)


def _command(raw: int, nx: NxSession) -> tuple[int, int]:
    """(command, table_id) of a 1.0 flow_mod's 16-bit command field."""
    cmd, table = raw & 0xFF, raw >> 8
    if not nx.flow_mod_table_id:
        if table:
            raise RemoteProtocolError(
                f"flow_mod command {raw:#x}", ErrorType.FLOW_MOD_FAILED,
                FlowModFailedCode.BAD_COMMAND,
            )  # fmt: skip
        table = 0 if cmd == FlowModCommand.ADD else 0xFF
    elif cmd == FlowModCommand.ADD and table == 0xFF:
        table = 0  # "any table" (ovs-ofctl add-flows without table=): Open vSwitch adds to 0
    if cmd > FlowModCommand.DELETE_STRICT:
        raise RemoteProtocolError(
            f"flow_mod command {cmd}",
            ErrorType.FLOW_MOD_FAILED,
            FlowModFailedCode.BAD_COMMAND,
        )
    return cmd, table


def _flags_from10(flags: int, command: int) -> int:
    if flags & 4:  # OFPFF_EMERG: Open vSwitch has no emergency flow cache either
        raise RemoteProtocolError(
            "emergency flows are not supported", ErrorType.FLOW_MOD_FAILED,
            FlowModFailedCode.BAD_FLAGS,
        )  # fmt: skip
    out = flags & 0x3  # send_flow_rem, check_overlap
    if command == FlowModCommand.ADD:
        out |= 0x4  # an added flow starts with fresh counters: 1.3's OFPFF_RESET_COUNTS
    return out


def _flow_mod(r: Reader, xid: int, nx: NxSession) -> FlowMod:
    match, exact = match_from10(r)
    cookie, raw_cmd, idle, hard, prio, buf, out_port, flags = r.unpack(
        _FLOW_MOD, "flow_mod"
    )
    cmd, table = _command(raw_cmd, nx)
    actions = parse_actions10(r, _proto_of(match))
    return FlowMod(
        xid=xid, cookie=cookie, cookie_mask=0, table_id=table, command=cmd,
        idle_timeout=idle, hard_timeout=hard, priority=0xFFFF if exact else prio,
        buffer_id=buf, out_port=port_from16(out_port), flags=_flags_from10(flags, cmd),
        match=match, instructions=_instructions(actions, table),
    )  # fmt: skip


def _nx_flow_mod(r: Reader, xid: int, nx: NxSession) -> FlowMod:
    (cookie, raw_cmd, idle, hard, prio, buf, out_port, flags, mlen) = r.unpack(
        _NX_FLOW_MOD, "nx_flow_mod"
    )
    cmd, table = _command(raw_cmd, nx)
    # NXT_FLOW_MOD's cookie is the new cookie; a cookie selection (MODIFY, DELETE) comes
    # as the NXM_NX_COOKIE match field.
    sel: list[int] = [0, 0]
    match = parse_nxm(r, mlen, sel)
    sel_cookie, sel_mask = sel
    actions = parse_actions10(r, _proto_of(match))
    if sel_mask and cmd != FlowModCommand.ADD:
        cookie = sel_cookie
    return FlowMod(
        xid=xid, cookie=cookie, cookie_mask=sel_mask if cmd != FlowModCommand.ADD else 0,
        table_id=table, command=cmd, idle_timeout=idle, hard_timeout=hard, priority=prio,
        buffer_id=buf, out_port=port_from16(out_port), flags=_flags_from10(flags, cmd),
        match=match, instructions=_instructions(actions, table),
    )  # fmt: skip


def _stats_request(r: Reader, xid: int, flags: int, st: int, nx: NxSession) -> Message:
    if st == ST10.DESC:
        return DescRequest(xid=xid, flags=flags)
    if st in (ST10.FLOW, ST10.AGGREGATE):
        match, _ = match_from10(r)
        table, out_port = r.unpack(_FLOW_STATS_REQ, "flow stats request")
        cls = FlowStatsRequest if st == ST10.FLOW else AggregateStatsRequest
        return cls(
            xid=xid,
            flags=flags,
            table_id=table,
            out_port=port_from16(out_port),
            match=match,
        )
    if st == ST10.TABLE:
        return TableStatsRequest(xid=xid, flags=flags)
    if st == ST10.PORT:
        (port,) = r.unpack(struct.Struct("!H6x"), "port stats request")
        return PortStatsRequest(xid=xid, flags=flags, port_no=port_from16(port))
    if st == ST10.QUEUE:
        port, queue = r.unpack(struct.Struct("!H2xI"), "queue stats request")
        return QueueStatsRequest(
            xid=xid, flags=flags, port_no=port_from16(port), queue_id=queue
        )
    if st == ST10.PORT_DESC:
        return PortDescRequest(xid=xid, flags=flags)
    if st == ST10.VENDOR:
        vendor, subtype = r.unpack(_NX_STATS, "vendor stats request")
        if vendor != NX_EXPERIMENTER_ID:
            raise _bad_request(f"vendor {vendor:#x}", BadRequestCode.BAD_EXPERIMENTER)
        if subtype in _NX_GROUP_STATS:
            return _NX_GROUP_STATS[subtype](r, xid, flags)
        if subtype in NX_STATS_PARSERS:
            return NX_STATS_PARSERS[subtype](r, xid, flags)
        if subtype in (NxStatsType.IPFIX_BRIDGE, NxStatsType.IPFIX_FLOW):
            r.expect_end("ipfix stats request")
            return ExperimenterStatsRequest(
                xid=xid, flags=flags, experimenter=vendor, exp_type=subtype
            )
        if subtype in (NxStatsType.FLOW, NxStatsType.AGGREGATE):
            out_port, mlen, table = r.unpack(
                _NX_FLOW_STATS_REQ, "nx flow stats request"
            )
            sel: list[int] = [0, 0]
            match = parse_nxm(r, mlen, sel)
            cookie, cmask = sel
            nx.nx_xids.add(xid)
            ncls = (
                FlowStatsRequest
                if subtype == NxStatsType.FLOW
                else AggregateStatsRequest
            )
            return ncls(
                xid=xid, flags=flags, table_id=table, out_port=port_from16(out_port),
                match=match, cookie=cookie, cookie_mask=cmask,
            )  # fmt: skip
        raise _bad_request(
            f"Nicira stats subtype {subtype}", BadRequestCode.BAD_EXP_TYPE
        )
    raise _bad_request(f"stats type {st}", BadRequestCode.BAD_MULTIPART)


def _group_id(r: Reader) -> int:
    (group_id,) = r.unpack(struct.Struct("!I4x"), "group stats request")
    r.expect_end("group stats request")
    return int(group_id)


# Nicira statistics whose values live in another module (flow monitoring: flowmon):
# subtype -> request from its body, and reply class -> (subtype, body encoder).
NX_STATS_PARSERS: dict[int, Callable[[Reader, int, int], MultipartRequest]] = {}
NX_STATS_ENCODERS: dict[type, tuple[int, Callable[[MultipartReply], bytes]]] = {}


# Open vSwitch's Nicira group statistics for 1.0: subtype -> request from its body.
_NX_GROUP_STATS: dict[int, Callable[[Reader, int, int], MultipartRequest]] = {
    NxStatsType.GROUP: lambda r, xid, flags: GroupStatsRequest(
        xid=xid, flags=flags, group_id=_group_id(r)
    ),
    NxStatsType.GROUP_DESC: lambda r, xid, flags: GroupDescRequest(
        xid=xid, flags=flags, group_id=_group_id(r)
    ),
    NxStatsType.GROUP_FEATURES: lambda r, xid, flags: GroupFeaturesRequest._mp_parse(
        r, OFP10_VERSION, xid, flags
    ),
}


def _flow_stats_from10(e: Reader) -> FlowStats:
    _, table = e.unpack(_FLOW_STATS10, "flow stats")
    match, _ = match_from10(e)
    ds, dn, prio, idle, hard, cookie, pc, bc = e.unpack(
        _FLOW_STATS10_TAIL, "flow stats"
    )
    actions = parse_actions10(e, _proto_of(match))
    return FlowStats(
        table_id=table, duration_sec=ds, duration_nsec=dn, priority=prio, idle_timeout=idle,
        hard_timeout=hard, cookie=cookie, packet_count=pc, byte_count=bc, match=match,
        instructions=_instructions(actions, table),
    )  # fmt: skip


def _nx_flow_stats_from(e: Reader) -> FlowStats:
    (_, table, ds, dn, prio, idle, hard, mlen, idle_age, hard_age, cookie, pc, bc) = e.unpack(
        _NX_FLOW_STATS, "nx flow stats"
    )
    match = parse_nxm(e, mlen)
    actions = parse_actions10(e, _proto_of(match))
    return FlowStats(
        table_id=table, duration_sec=ds, duration_nsec=dn, priority=prio, idle_timeout=idle,
        hard_timeout=hard, cookie=cookie, packet_count=pc, byte_count=bc, match=match,
        instructions=_instructions(actions, table), idle_age=idle_age - 1 if idle_age else None,
        hard_age=hard_age - 1 if hard_age else None,
    )  # fmt: skip


def _entries10(
    r: Reader, parse: Callable[[Reader], FlowStats]
) -> tuple[FlowStats, ...]:
    out = []
    while r.remaining():
        head = r.peek(struct.Struct("!H"))
        if head is None or head[0] < 4:
            raise r.fail("bad flow stats length")
        out.append(parse(r.sub(head[0], "flow stats")))
    return tuple(out)


def _stats_reply10(r: Reader, xid: int, flags: int, st: int) -> Message:
    """The replies a controller-side 1.0 session reads (flow and aggregate statistics, in
    the standard and the Nicira forms; descriptions)."""
    if st == ST10.FLOW:
        return FlowStatsReply(
            xid=xid, flags=flags, stats=_entries10(r, _flow_stats_from10)
        )
    if st == ST10.AGGREGATE or st == ST10.VENDOR:
        nx_sub = None
        if st == ST10.VENDOR:
            vendor, nx_sub = r.unpack(_NX_STATS, "vendor stats reply")
            if vendor != NX_EXPERIMENTER_ID:
                raise _bad_request(
                    f"vendor {vendor:#x}", BadRequestCode.BAD_EXPERIMENTER
                )
        if nx_sub == NxStatsType.FLOW:
            stats = _entries10(r, _nx_flow_stats_from)
            return FlowStatsReply(xid=xid, flags=flags, stats=stats)
        if nx_sub in (None, NxStatsType.AGGREGATE):
            pc, bc, fc = r.unpack(struct.Struct("!QQI4x"), "aggregate reply")
            return AggregateStatsReply(
                xid=xid, flags=flags, packet_count=pc, byte_count=bc, flow_count=fc
            )
        raise _bad_request(
            f"Nicira stats subtype {nx_sub}", BadRequestCode.BAD_EXP_TYPE
        )
    if st == ST10.DESC:
        return DescReply._mp_parse(r, OFP10_VERSION, xid, flags)
    raise _bad_request(f"stats reply type {st}", BadRequestCode.BAD_MULTIPART)


def decode(data: bytes, nx: NxSession | None = None) -> Message:
    """One complete OpenFlow 1.0 message as a value (see the module docstring)."""
    nx = nx if nx is not None else NxSession()
    if len(data) < HEADER.size:
        raise _bad_request("short message", BadRequestCode.BAD_LEN).with_request(
            data, 0
        )
    version, mtype, length, xid = HEADER.unpack_from(data)
    r = Reader(data, HEADER.size)
    try:
        if length != len(data):
            raise _bad_request(f"header says {length} bytes", BadRequestCode.BAD_LEN)
        return _decode(r, mtype, xid, nx)
    except RemoteProtocolError as e:
        raise e.with_request(data, xid) from None


def _decode(r: Reader, mtype: int, xid: int, nx: NxSession) -> Message:
    same: dict[int, type[Message]] = {
        T10.HELLO: Hello,
        T10.ECHO_REQUEST: EchoRequest,
        T10.ECHO_REPLY: EchoReply,
        T10.ERROR: ErrorMsg,
        T10.FEATURES_REQUEST: FeaturesRequest,
        T10.GET_CONFIG_REQUEST: GetConfigRequest,
        T10.GET_CONFIG_REPLY: GetConfigReply,
        T10.SET_CONFIG: SetConfig,
        T10.BARRIER_REQUEST: BarrierRequest,
        T10.BARRIER_REPLY: BarrierReply,
    }
    if mtype in same:
        return same[mtype]._parse(r, OFP10_VERSION, xid)
    if mtype == T10.VENDOR:
        vendor, subtype = r.peek(struct.Struct("!II")) or (None, None)
        if vendor == NX_EXPERIMENTER_ID and subtype == NxType.FLOW_MOD:
            r.take(8)
            return _nx_flow_mod(r, xid, nx)
        if vendor == NX_EXPERIMENTER_ID and subtype == NxType.GROUP_MOD:
            r.take(8)
            return GroupMod._parse(r, OFP10_VERSION, xid)
        return Experimenter._parse(r, OFP10_VERSION, xid)
    if mtype == T10.FLOW_MOD:
        return _flow_mod(r, xid, nx)
    if mtype == T10.PACKET_OUT:
        buf, in_port, alen = r.unpack(_PACKET_OUT, "packet_out")
        actions = parse_actions10(r.sub(alen, "packet_out actions"))
        return PacketOut(
            xid=xid,
            buffer_id=buf,
            in_port=port_from16(in_port),
            actions=actions,
            data=r.rest(),
        )
    if mtype == T10.PORT_MOD:
        port, hw, config, mask, adv = r.unpack(_PORT_MOD, "port_mod")
        r.expect_end("port_mod")
        return PortMod(
            xid=xid, port_no=port_from16(port), hw_addr=hw, config=config, mask=mask,
            advertise=_features_from10(adv),
        )  # fmt: skip
    if mtype == T10.STATS_REQUEST:
        st, flags = r.unpack(_STATS, "stats request")
        return _stats_request(r, xid, flags, st, nx)
    if mtype == T10.QUEUE_GET_CONFIG_REQUEST:
        (port,) = r.unpack(struct.Struct("!H2x"), "queue_get_config_request")
        return QueueGetConfigRequest(xid=xid, port=port_from16(port))
    if mtype == T10.STATS_REPLY:
        st, flags = r.unpack(_STATS, "stats reply")
        return _stats_reply10(r, xid, flags, st)
    if mtype == T10.FEATURES_REPLY:
        dpid, nb, nt, caps, _actions = r.unpack(_FEATURES, "features reply")
        ports = []
        while r.remaining():
            ports.append(port_from10(r))
        return FeaturesReply(
            xid=xid, datapath_id=dpid, n_buffers=nb, n_tables=nt, capabilities=caps,
            ports=tuple(ports),
        )  # fmt: skip
    if mtype == T10.PACKET_IN:
        buf, total, in_port, reason = r.unpack(_PACKET_IN, "packet_in")
        return PacketIn(
            xid=xid, buffer_id=buf, total_len=total, reason=reason,
            match=Match((Oxm(_F.IN_PORT, port_from16(in_port)),)), data=r.rest(),
        )  # fmt: skip
    if mtype == T10.PORT_STATUS:
        (reason,) = r.unpack(struct.Struct("!B7x"), "port_status")
        return PortStatus(xid=xid, reason=reason, desc=port_from10(r))
    if mtype == T10.FLOW_REMOVED:
        match, _ = match_from10(r)
        c, p, reason, ds, dn, it, pc, bc = r.unpack(_FLOW_REMOVED, "flow_removed")
        return FlowRemoved(
            xid=xid, cookie=c, priority=p, reason=reason, duration_sec=ds, duration_nsec=dn,
            idle_timeout=it, packet_count=pc, byte_count=bc, match=match,
        )  # fmt: skip
    raise _bad_request(f"OpenFlow 1.0 message type {mtype}", BadRequestCode.BAD_TYPE)


# -- encoding --------------------------------------------------------------------------

# Features a 1.0 peer sees: flow/table/port/queue stats, ARP_MATCH_IP; every 1.0 action.
CAPABILITIES10 = 0x01 | 0x02 | 0x04 | 0x40 | 0x80
ACTIONS10 = (1 << 12) - 1


def _frame(mtype: int, xid: int, body: bytes) -> bytes:
    length = HEADER.size + len(body)
    if length > 0xFFFF:
        raise LocalProtocolError(f"OpenFlow 1.0 message of {length} bytes")
    return HEADER.pack(OFP10_VERSION, mtype, length, xid) + body


def _stats_reply(xid: int, st: int, flags: int, body: bytes) -> bytes:
    return _frame(T10.STATS_REPLY, xid, _STATS.pack(st, flags) + body)


def _nx_stats_reply(xid: int, subtype: int, flags: int, body: bytes) -> bytes:
    head = _STATS.pack(ST10.VENDOR, flags) + _NX_STATS.pack(NX_EXPERIMENTER_ID, subtype)
    return _frame(T10.STATS_REPLY, xid, head + body)


_FLOW_STATS10 = struct.Struct("!HBx")
_FLOW_STATS10_TAIL = struct.Struct("!IIHHH6xQQQ")
_NX_FLOW_STATS = struct.Struct("!HBxIIHHHHHHQQQ")


def _flow_stats10(s: FlowStats) -> bytes:
    acts = actions_from_instructions(s.instructions)
    tail = _FLOW_STATS10_TAIL.pack(
        s.duration_sec, s.duration_nsec, s.priority, s.idle_timeout, s.hard_timeout,
        s.cookie, s.packet_count, s.byte_count,
    )  # fmt: skip
    body = match_to10(s.match) + tail + acts
    return _FLOW_STATS10.pack(4 + len(body), s.table_id) + body


def _nx_flow_stats(s: FlowStats) -> bytes:
    nxm = encode_nxm(s.match)
    acts = actions_from_instructions(s.instructions)
    length = _NX_FLOW_STATS.size + len(padded(nxm)) + len(acts)
    return (
        _NX_FLOW_STATS.pack(
            length,
            s.table_id,
            s.duration_sec,
            s.duration_nsec,
            s.priority,
            s.idle_timeout,
            s.hard_timeout,
            len(nxm),
            0 if s.idle_age is None else s.idle_age + 1,  # 0: unknown
            0 if s.hard_age is None else s.hard_age + 1,
            s.cookie,
            s.packet_count,
            s.byte_count,
        )  # fmt: skip
        + padded(nxm)
        + acts
    )


def _encode_stats(msg: MultipartReply, nx: NxSession) -> bytes:
    nx_form = msg.xid in nx.nx_xids
    out = _stats_form(msg, nx_form)
    if nx_form and not msg.flags & 1:  # the request's last reply went (not a failed try)
        nx.nx_xids.discard(msg.xid)
    return out


def _stats_form(msg: MultipartReply, nx_form: bool) -> bytes:
    xid, flags = msg.xid, msg.flags
    if isinstance(msg, FlowStatsReply):
        if nx_form:
            body = b"".join(_nx_flow_stats(s) for s in msg.stats)
            return _nx_stats_reply(xid, NxStatsType.FLOW, flags, body)
        return _stats_reply(
            xid, ST10.FLOW, flags, b"".join(_flow_stats10(s) for s in msg.stats)
        )
    if isinstance(msg, AggregateStatsReply):
        body = struct.pack("!QQI4x", msg.packet_count, msg.byte_count, msg.flow_count)
        if nx_form:
            return _nx_stats_reply(xid, NxStatsType.AGGREGATE, flags, body)
        return _stats_reply(xid, ST10.AGGREGATE, flags, body)
    if isinstance(msg, DescReply):
        return _stats_reply(xid, ST10.DESC, flags, msg._mp_body(OFP10_VERSION))
    if isinstance(msg, TableStatsReply):
        return _stats_reply(
            xid, ST10.TABLE, flags, b"".join(_table10(t) for t in msg.stats)
        )
    if isinstance(msg, PortStatsReply):
        return _stats_reply(
            xid, ST10.PORT, flags, b"".join(_port_stats10(p) for p in msg.stats)
        )
    if isinstance(msg, QueueStatsReply):
        body = b"".join(_queue_stats10(q) for q in msg.stats)
        return _stats_reply(xid, ST10.QUEUE, flags, body)
    if isinstance(msg, PortDescReply):
        return _stats_reply(
            xid, ST10.PORT_DESC, flags, b"".join(port_to10(p) for p in msg.ports)
        )
    # Groups: Open vSwitch's Nicira statistics, in the layouts it chose for them.
    if isinstance(msg, GroupStatsReply):
        body = msg._mp_body(OFP13_VERSION)
        return _nx_stats_reply(xid, NxStatsType.GROUP, flags, body)
    if isinstance(msg, GroupDescReply):
        body = msg._mp_body(OFP10_VERSION)
        return _nx_stats_reply(xid, NxStatsType.GROUP_DESC, flags, body)
    if isinstance(msg, GroupFeaturesReply):
        body = msg._mp_body(OFP12_VERSION)
        return _nx_stats_reply(xid, NxStatsType.GROUP_FEATURES, flags, body)
    enc = NX_STATS_ENCODERS.get(type(msg))
    if enc is not None:
        return _nx_stats_reply(xid, enc[0], flags, enc[1](msg))
    if isinstance(msg, ExperimenterStatsReply) and msg.experimenter == NX_EXPERIMENTER_ID:
        return _nx_stats_reply(xid, msg.exp_type, flags, msg.data)  # (IPFIX statistics)
    raise LocalProtocolError(f"{type(msg).__name__} has no OpenFlow 1.0 form")


_TABLE10 = struct.Struct("!B3x32sIIIQQ")
# The wildcards a 1.0 table supports: all of them (Open vSwitch says the same).
TABLE_WILDCARDS10 = FW_ALL


def _table10(t: TableStats) -> bytes:
    # A Flow_Table row's name and flow_limit, else none and 1,000,000 (as Open vSwitch).
    name = fixed_str(t.name, 32, "table name")
    max_entries = t.caps.max_entries or 1_000_000
    return _TABLE10.pack(
        t.table_id, name, TABLE_WILDCARDS10, max_entries, t.active_count, t.lookup_count,
        t.matched_count,
    )  # fmt: skip


def _port_stats10(p: PortStats) -> bytes:
    return struct.pack(
        "!H6x12Q", port_to16(p.port_no), p.rx_packets, p.tx_packets, p.rx_bytes, p.tx_bytes,
        p.rx_dropped, p.tx_dropped, p.rx_errors, p.tx_errors, p.rx_frame_err, p.rx_over_err,
        p.rx_crc_err, p.collisions,
    )  # fmt: skip


def _queue_stats10(q: QueueStats) -> bytes:
    return struct.pack(
        "!H2xIQQQ",
        port_to16(q.port_no),
        q.queue_id,
        q.tx_bytes,
        q.tx_packets,
        q.tx_errors,
    )


def _stats_request10(msg: MultipartRequest) -> bytes:
    """Requests (a controller's side, and tests): standard 1.0 forms."""
    xid, flags = msg.xid, msg.flags
    if isinstance(msg, (FlowStatsRequest, AggregateStatsRequest)):
        st = ST10.FLOW if isinstance(msg, FlowStatsRequest) else ST10.AGGREGATE
        body = match_to10(msg.match) + _FLOW_STATS_REQ.pack(
            msg.table_id, port_to16(msg.out_port)
        )
        return _frame(T10.STATS_REQUEST, xid, _STATS.pack(st, flags) + body)
    simple = {
        DescRequest: ST10.DESC,
        TableStatsRequest: ST10.TABLE,
        PortDescRequest: 13,
    }
    for cls, st in simple.items():
        if isinstance(msg, cls):
            return _frame(T10.STATS_REQUEST, xid, _STATS.pack(st, flags))
    if isinstance(msg, PortStatsRequest):
        body = struct.pack("!H6x", port_to16(msg.port_no))
        return _frame(T10.STATS_REQUEST, xid, _STATS.pack(ST10.PORT, flags) + body)
    raise LocalProtocolError(f"{type(msg).__name__} has no OpenFlow 1.0 form")


def encode(msg: Message, nx: NxSession | None = None) -> bytes:
    """``msg`` as an OpenFlow 1.0 message, in the forms session ``nx`` negotiated."""
    nx = nx if nx is not None else NxSession()
    xid = msg.xid
    if isinstance(msg, (Hello, EchoRequest, EchoReply, GetConfigRequest, GetConfigReply,
                        SetConfig, FeaturesRequest, Experimenter)):  # fmt: skip
        return _frame(_SAME_TYPES[type(msg).__name__], xid, msg._body(OFP10_VERSION))
    if isinstance(msg, NxMessage):
        return _frame(T10.VENDOR, xid, msg._body(OFP10_VERSION))
    if isinstance(msg, ErrorMsg):
        return _frame(T10.ERROR, xid, msg._body(OFP10_VERSION))
    if isinstance(msg, GroupMod):  # NXT_GROUP_MOD: 1.5's layout with 1.0 actions
        return _frame(T10.VENDOR, xid, nx_header(NxType.GROUP_MOD) + msg._body(OFP10_VERSION))
    if isinstance(msg, BarrierRequest):
        return _frame(T10.BARRIER_REQUEST, xid, b"")
    if isinstance(msg, BarrierReply):
        return _frame(T10.BARRIER_REPLY, xid, b"")
    if isinstance(msg, FeaturesReply):
        body = _FEATURES.pack(
            msg.datapath_id, msg.n_buffers, msg.n_tables, CAPABILITIES10, ACTIONS10
        ) + b"".join(port_to10(p) for p in msg.ports)
        return _frame(T10.FEATURES_REPLY, xid, body)
    if isinstance(msg, MultipartReply):
        return _encode_stats(msg, nx)
    if isinstance(msg, MultipartRequest):
        return _stats_request10(msg)
    if isinstance(msg, PortStatus):
        return _frame(
            T10.PORT_STATUS, xid, struct.pack("!B7x", msg.reason) + port_to10(msg.desc)
        )
    if isinstance(msg, PacketIn):
        if nx.packet_in_format != NxPacketInFormat.STANDARD:
            return encode_nx_packet_in(msg, nx.packet_in_format, OFP10_VERSION)
        in_port = msg.match.get(_F.IN_PORT)
        port = port_to16(in_port.value) if in_port is not None else 0xFFFF
        body = (
            _PACKET_IN.pack(msg.buffer_id, msg.total_len, port, msg.reason) + msg.data
        )
        return _frame(T10.PACKET_IN, xid, body)
    if isinstance(msg, FlowRemoved):
        if nx.flow_format == NxFlowFormat.NXM:
            return encode_nx_flow_removed(msg, OFP10_VERSION)
        body = match_to10(msg.match) + _FLOW_REMOVED.pack(
            msg.cookie, msg.priority, reason_before14(msg.reason), msg.duration_sec, msg.duration_nsec,
            msg.idle_timeout, msg.packet_count, msg.byte_count,
        )  # fmt: skip
        return _frame(T10.FLOW_REMOVED, xid, body)
    if isinstance(msg, QueueGetConfigReply):
        return _frame(
            T10.QUEUE_GET_CONFIG_REPLY,
            xid,
            struct.pack("!H6x", port_to16(msg.port)) + msg.queues,
        )
    if isinstance(msg, QueueGetConfigRequest):
        return _frame(
            T10.QUEUE_GET_CONFIG_REQUEST, xid, struct.pack("!H2x", port_to16(msg.port))
        )
    if isinstance(msg, FlowMod):
        acts = actions_from_instructions(msg.instructions)
        table = msg.table_id if nx.flow_mod_table_id else 0
        if nx.flow_format == NxFlowFormat.NXM:
            nxm = encode_nxm(msg.match)
            head = _NX_FLOW_MOD.pack(
                msg.cookie, table << 8 | msg.command, msg.idle_timeout, msg.hard_timeout,
                msg.priority, msg.buffer_id, port_to16(msg.out_port), msg.flags, len(nxm),
            )  # fmt: skip
            return _frame(
                T10.VENDOR, xid, nx_header(NxType.FLOW_MOD) + head + padded(nxm) + acts
            )
        head = _FLOW_MOD.pack(
            msg.cookie, table << 8 | msg.command, msg.idle_timeout, msg.hard_timeout,
            msg.priority, msg.buffer_id, port_to16(msg.out_port), msg.flags,
        )  # fmt: skip
        return _frame(T10.FLOW_MOD, xid, match_to10(msg.match) + head + acts)
    if isinstance(msg, PacketOut):
        acts = encode_actions10(msg.actions)
        body = _PACKET_OUT.pack(msg.buffer_id, port_to16(msg.in_port), len(acts)) + acts
        return _frame(T10.PACKET_OUT, xid, body + msg.data)
    if isinstance(msg, PortMod):
        body = _PORT_MOD.pack(
            port_to16(msg.port_no), msg.hw_addr, msg.config, msg.mask,
            _features_to10(msg.advertise),
        )  # fmt: skip
        return _frame(T10.PORT_MOD, xid, body)
    raise LocalProtocolError(f"{type(msg).__name__} has no OpenFlow 1.0 form")


_SAME_TYPES = {
    "Hello": T10.HELLO,
    "EchoRequest": T10.ECHO_REQUEST,
    "EchoReply": T10.ECHO_REPLY,
    "GetConfigRequest": T10.GET_CONFIG_REQUEST,
    "GetConfigReply": T10.GET_CONFIG_REPLY,
    "SetConfig": T10.SET_CONFIG,
    "FeaturesRequest": T10.FEATURES_REQUEST,
    "Experimenter": T10.VENDOR,
}


def encode_error(error: RemoteProtocolError) -> bytes:
    return error.reply(OFP10_VERSION)


VERSION_CODECS[OFP10_VERSION] = (decode, encode)
ACTION_CODECS[OFP10_VERSION] = (parse_actions10, encode_actions10)
