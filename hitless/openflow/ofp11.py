"""OpenFlow 1.1's own match and actions, translated to and from the values of 1.2+.

OpenFlow 1.1 shares 1.2's message layouts (messages.py and multipart.py read and write
the few that differ) except for two structures, which live here:

- the match: ``ofp11_match`` of type OFPMT_STANDARD (88 bytes: wildcard bits, masked
  Ethernet and IPv4 addresses where a 1 bit in a mask means "any", one transport
  port pair that means ICMP type/code for ICMP, metadata). It becomes a ``Match`` of
  OXM fields; an OXM match (type OFPMT_OXM) is accepted too, as Open vSwitch does.
- the actions: 1.1 numbers its set actions one per field (set_vlan_vid, set_dl_src,
  set_nw_tos, set_tp_src...) where 1.2 has one OFPAT_SET_FIELD; they become
  ``SetField`` values and back. The other 1.1 action types have 1.2's numbers and
  layouts.

Layouts: OpenFlow Switch Specification 1.1.0 §A.2.3 and §A.2.5 (read, not copied).
Open vSwitch's reading of them (a masked address's bits inverted, dl_vlan 0xffff for
"no VLAN" and 0xfffe for "any VLAN", transport fields ignored without a known IP
protocol) is followed. This module imports no message layer: messages.py uses it.
"""

from __future__ import annotations

import struct

from hitless.openflow._wire import Reader
from hitless.openflow.actions import (
    Action,
    ApplyActions,
    Instruction,
    SetField,
    WriteActions,
    encode_instructions,
    parse_action,
    parse_instruction,
)
from hitless.openflow.constants import (
    ActionType,
    BadActionCode,
    BadInstructionCode,
    BadMatchCode,
    ErrorType,
    MatchType,
    OxmClass,
    OxmField,
)
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Match, Oxm
from hitless.openflow.nx_actions import RegLoad
from hitless.openflow.nxm import FieldRef, Subfield, spec_of

_F = OxmField
_TL = struct.Struct("!HH")
MATCH11 = struct.Struct("!HHII6s6s6s6sHBxHBBIIIIHHIB3xQQ")  # ofp11_match, 88 bytes
OFPMT_STANDARD = 0
ALL_WILDCARDS11 = (1 << 10) - 1

# OFPFW11_* wildcard bits; the table-stats match bitmap (OFPFMF11_*) adds bits 10-15
# (10 is the match type, which no field maps to).
W_IN_PORT, W_DL_VLAN, W_DL_VLAN_PCP, W_DL_TYPE, W_NW_TOS, W_NW_PROTO = 0, 1, 2, 3, 4, 5
W_TP_SRC, W_TP_DST, W_MPLS_LABEL, W_MPLS_TC = 6, 7, 8, 9
M_DL_SRC, M_DL_DST, M_NW_SRC, M_NW_DST, M_METADATA = 11, 12, 13, 14, 15

OFPVID11_ANY = 0xFFFE  # any VLAN tag
OFPVID11_NONE = 0xFFFF  # no VLAN tag
VLAN_PRESENT = 0x1000  # OFPVID_PRESENT in an OXM vlan_vid

L4_FIELDS = {  # IP protocol -> (tp_src field, tp_dst field)
    6: (_F.TCP_SRC, _F.TCP_DST),
    17: (_F.UDP_SRC, _F.UDP_DST),
    132: (_F.SCTP_SRC, _F.SCTP_DST),
    1: (_F.ICMPV4_TYPE, _F.ICMPV4_CODE),
}

# OXM field -> the 1.1 match bit that covers it (table statistics bitmaps)
_BIT11: dict[int, int] = {
    _F.IN_PORT: W_IN_PORT, _F.VLAN_VID: W_DL_VLAN, _F.VLAN_PCP: W_DL_VLAN_PCP,
    _F.ETH_TYPE: W_DL_TYPE, _F.IP_DSCP: W_NW_TOS, _F.IP_PROTO: W_NW_PROTO,
    _F.ARP_OP: W_NW_PROTO, _F.MPLS_LABEL: W_MPLS_LABEL, _F.MPLS_TC: W_MPLS_TC,
    _F.ETH_SRC: M_DL_SRC, _F.ETH_DST: M_DL_DST, _F.IPV4_SRC: M_NW_SRC, _F.ARP_SPA: M_NW_SRC,
    _F.IPV4_DST: M_NW_DST, _F.ARP_TPA: M_NW_DST, _F.METADATA: M_METADATA,
}  # fmt: skip
for _src, _dst in L4_FIELDS.values():
    _BIT11[_src], _BIT11[_dst] = W_TP_SRC, W_TP_DST


class AT11:
    """ofp_action_type of OpenFlow 1.1 (§A.2.5) where it differs from 1.2's."""

    SET_VLAN_VID = 1
    SET_VLAN_PCP = 2
    SET_DL_SRC = 3
    SET_DL_DST = 4
    SET_NW_SRC = 5
    SET_NW_DST = 6
    SET_NW_TOS = 7
    SET_NW_ECN = 8
    SET_TP_SRC = 9
    SET_TP_DST = 10
    SET_MPLS_LABEL = 13
    SET_MPLS_TC = 14


# 1.1 set action -> (OXM field, or None for a transport port; body layout; value -> OXM)
_SET_ACTIONS: dict[int, tuple[OxmField | None, struct.Struct]] = {
    AT11.SET_VLAN_VID: (_F.VLAN_VID, struct.Struct("!H2x")),
    AT11.SET_VLAN_PCP: (_F.VLAN_PCP, struct.Struct("!B3x")),
    AT11.SET_DL_SRC: (_F.ETH_SRC, struct.Struct("!6s6x")),
    AT11.SET_DL_DST: (_F.ETH_DST, struct.Struct("!6s6x")),
    AT11.SET_NW_SRC: (_F.IPV4_SRC, struct.Struct("!I")),
    AT11.SET_NW_DST: (_F.IPV4_DST, struct.Struct("!I")),
    AT11.SET_NW_TOS: (_F.IP_DSCP, struct.Struct("!B3x")),
    AT11.SET_NW_ECN: (_F.IP_ECN, struct.Struct("!B3x")),
    AT11.SET_TP_SRC: (None, struct.Struct("!H2x")),
    AT11.SET_TP_DST: (None, struct.Struct("!H2x")),
    AT11.SET_MPLS_LABEL: (_F.MPLS_LABEL, struct.Struct("!I")),
    AT11.SET_MPLS_TC: (_F.MPLS_TC, struct.Struct("!B3x")),
}
# OXM field -> the 1.1 set action that sets it
_SET11: dict[int, int] = {int(f): t for t, (f, _) in _SET_ACTIONS.items() if f is not None}
_SET11 |= {int(f): AT11.SET_TP_SRC for f in (_F.TCP_SRC, _F.UDP_SRC, _F.SCTP_SRC)}
_SET11 |= {int(f): AT11.SET_TP_DST for f in (_F.TCP_DST, _F.UDP_DST, _F.SCTP_DST)}
# Action types 1.1 and 1.2 number alike (output, TTLs, push/pop, set_queue, group...).
SHARED_ACTIONS = frozenset(
    (ActionType.OUTPUT, ActionType.COPY_TTL_OUT, ActionType.COPY_TTL_IN,
     ActionType.SET_MPLS_TTL, ActionType.DEC_MPLS_TTL, ActionType.PUSH_VLAN,
     ActionType.POP_VLAN, ActionType.PUSH_MPLS, ActionType.POP_MPLS, ActionType.SET_QUEUE,
     ActionType.GROUP, ActionType.SET_NW_TTL, ActionType.DEC_NW_TTL)
)  # fmt: skip


def _bad_match(msg: str, code: BadMatchCode) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_MATCH, code)


def _bad_action(msg: str, code: BadActionCode = BadActionCode.BAD_TYPE) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_ACTION, code)


# -- the match --------------------------------------------------------------------------


def _masked(f: OxmField, value: int, wild: int, width: int) -> Oxm | None:
    """A field from a 1.1 value and mask whose 1 bits mean "any" (None: all wildcarded)."""
    full = (1 << width) - 1
    care = ~wild & full
    if not care:
        return None
    return Oxm(f, value & care, None if care == full else care)


def parse_match11(r: Reader) -> Match:
    """An ``ofp11_match`` (or an OXM match) from ``r`` as a ``Match`` of OXM fields."""
    head = r.peek(_TL)
    if head is not None and head[0] == MatchType.OXM:
        return Match.parse(r)
    if head is None or head[0] != OFPMT_STANDARD:
        raise _bad_match(f"match type {head and head[0]}", BadMatchCode.BAD_TYPE)
    if head[1] != MATCH11.size:
        raise _bad_match(f"standard match of length {head[1]}", BadMatchCode.BAD_LEN)
    (_, _, in_port, wc, dl_src, dl_src_m, dl_dst, dl_dst_m, dl_vlan, pcp, dl_type, tos, proto,
     nw_src, nw_src_m, nw_dst, nw_dst_m, tp_src, tp_dst, label, tc, meta,
     meta_m) = r.unpack(MATCH11, "ofp11_match")  # fmt: skip
    out: list[Oxm | None] = []

    def exact(bit: int) -> bool:
        return not wc >> bit & 1

    if exact(W_IN_PORT):
        out.append(Oxm(_F.IN_PORT, in_port))
    out.append(_masked(_F.ETH_SRC, _int(dl_src), _int(dl_src_m), 48))
    out.append(_masked(_F.ETH_DST, _int(dl_dst), _int(dl_dst_m), 48))
    if exact(W_DL_VLAN):
        if dl_vlan == OFPVID11_NONE:
            out.append(Oxm(_F.VLAN_VID, 0))
        else:
            if dl_vlan == OFPVID11_ANY:
                out.append(Oxm(_F.VLAN_VID, VLAN_PRESENT, VLAN_PRESENT))
            elif dl_vlan < 4096:
                out.append(Oxm(_F.VLAN_VID, dl_vlan | VLAN_PRESENT))
            else:
                raise _bad_match(f"dl_vlan {dl_vlan:#x}", BadMatchCode.BAD_VALUE)
            if exact(W_DL_VLAN_PCP):
                if pcp > 7:
                    raise _bad_match(f"dl_vlan_pcp {pcp}", BadMatchCode.BAD_VALUE)
                out.append(Oxm(_F.VLAN_PCP, pcp))
    if exact(W_DL_TYPE):
        out.append(Oxm(_F.ETH_TYPE, dl_type))
        if dl_type == 0x0800:
            if exact(W_NW_TOS):
                if tos & 0x03:
                    raise _bad_match(f"nw_tos {tos:#x} has ECN bits", BadMatchCode.BAD_VALUE)
                out.append(Oxm(_F.IP_DSCP, tos >> 2))
            if exact(W_NW_PROTO):
                out.append(Oxm(_F.IP_PROTO, proto))
            out.append(_masked(_F.IPV4_SRC, nw_src, nw_src_m, 32))
            out.append(_masked(_F.IPV4_DST, nw_dst, nw_dst_m, 32))
            fields = L4_FIELDS.get(proto) if exact(W_NW_PROTO) else None
            if fields is not None:  # 1.1 ignores transport ports of another protocol
                if exact(W_TP_SRC):
                    out.append(Oxm(fields[0], tp_src))
                if exact(W_TP_DST):
                    out.append(Oxm(fields[1], tp_dst))
        elif dl_type == 0x0806:
            if exact(W_NW_PROTO):
                out.append(Oxm(_F.ARP_OP, proto))
            out.append(_masked(_F.ARP_SPA, nw_src, nw_src_m, 32))
            out.append(_masked(_F.ARP_TPA, nw_dst, nw_dst_m, 32))
        elif dl_type in (0x8847, 0x8848):
            if exact(W_MPLS_LABEL):
                out.append(Oxm(_F.MPLS_LABEL, label))
            if exact(W_MPLS_TC):
                out.append(Oxm(_F.MPLS_TC, tc))
    out.append(_masked(_F.METADATA, meta, meta_m, 64))
    return Match(tuple(o for o in out if o is not None))


def _int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _wild(o: Oxm, width: int) -> int:
    """The 1.1 mask (1 bits: any) of a present field."""
    full = (1 << width) - 1
    return 0 if o.mask is None else ~o.mask & full


# Fields an ofp11_match holds with any mask (the rest only exactly).
_MASKABLE11 = frozenset((_F.ETH_SRC, _F.ETH_DST, _F.IPV4_SRC, _F.IPV4_DST, _F.ARP_SPA,
                         _F.ARP_TPA, _F.METADATA))  # fmt: skip


def fits11(match: Match) -> bool:
    """Whether an ``ofp11_match`` can say ``match`` exactly."""
    for o in match.fields:
        if o.oxm_class != OxmClass.OPENFLOW_BASIC or o.field not in _BIT11:
            return False
        if o.field == _F.VLAN_VID:
            if o.mask is not None and (o.mask, o.value) != (VLAN_PRESENT, VLAN_PRESENT):
                return False
        elif o.mask is not None and o.field not in _MASKABLE11:
            return False
    return True


def encode_match11(match: Match) -> bytes:
    """``match`` as an ``ofp11_match``, or as an OXM match when 1.1's cannot say it (as
    Open vSwitch answers a 1.1 peer about an IPv6 flow, say)."""
    if not fits11(match):
        return match.encode()
    wc = ALL_WILDCARDS11
    v: dict[str, int] = dict(in_port=0, dl_src=0, dl_src_m=2**48 - 1, dl_dst=0,
                             dl_dst_m=2**48 - 1, dl_vlan=0, pcp=0, dl_type=0, tos=0, proto=0,
                             nw_src=0, nw_src_m=2**32 - 1, nw_dst=0, nw_dst_m=2**32 - 1,
                             tp_src=0, tp_dst=0, label=0, tc=0, meta=0,
                             meta_m=2**64 - 1)  # fmt: skip
    for o in match.fields:
        if o.oxm_class != OxmClass.OPENFLOW_BASIC:
            continue
        f = o.field
        if f == _F.IN_PORT:
            wc &= ~(1 << W_IN_PORT)
            v["in_port"] = o.value
        elif f in (_F.ETH_SRC, _F.ETH_DST):
            key = "dl_src" if f == _F.ETH_SRC else "dl_dst"
            v[key], v[key + "_m"] = o.value, _wild(o, 48)
        elif f == _F.VLAN_VID:
            wc &= ~(1 << W_DL_VLAN)
            if o.value & VLAN_PRESENT == 0:
                v["dl_vlan"] = OFPVID11_NONE
            elif o.mask is not None and o.mask & 0xFFF == 0:
                v["dl_vlan"] = OFPVID11_ANY
            else:
                v["dl_vlan"] = o.value & 0xFFF
        elif f == _F.VLAN_PCP:
            wc &= ~(1 << W_DL_VLAN_PCP)
            v["pcp"] = o.value
        elif f == _F.ETH_TYPE:
            wc &= ~(1 << W_DL_TYPE)
            v["dl_type"] = o.value
        elif f == _F.IP_DSCP:
            wc &= ~(1 << W_NW_TOS)
            v["tos"] = o.value << 2
        elif f in (_F.IP_PROTO, _F.ARP_OP):
            wc &= ~(1 << W_NW_PROTO)
            v["proto"] = o.value
        elif f in (_F.IPV4_SRC, _F.ARP_SPA):
            v["nw_src"], v["nw_src_m"] = o.value, _wild(o, 32)
        elif f in (_F.IPV4_DST, _F.ARP_TPA):
            v["nw_dst"], v["nw_dst_m"] = o.value, _wild(o, 32)
        elif _BIT11.get(f) == W_TP_SRC:
            wc &= ~(1 << W_TP_SRC)
            v["tp_src"] = o.value
        elif _BIT11.get(f) == W_TP_DST:
            wc &= ~(1 << W_TP_DST)
            v["tp_dst"] = o.value
        elif f == _F.MPLS_LABEL:
            wc &= ~(1 << W_MPLS_LABEL)
            v["label"] = o.value
        elif f == _F.MPLS_TC:
            wc &= ~(1 << W_MPLS_TC)
            v["tc"] = o.value
        elif f == _F.METADATA:
            v["meta"], v["meta_m"] = o.value, _wild(o, 64)
    return MATCH11.pack(
        OFPMT_STANDARD, MATCH11.size, v["in_port"], wc, v["dl_src"].to_bytes(6, "big"),
        v["dl_src_m"].to_bytes(6, "big"), v["dl_dst"].to_bytes(6, "big"),
        v["dl_dst_m"].to_bytes(6, "big"), v["dl_vlan"], v["pcp"], v["dl_type"], v["tos"],
        v["proto"], v["nw_src"], v["nw_src_m"], v["nw_dst"], v["nw_dst_m"], v["tp_src"],
        v["tp_dst"], v["label"], v["tc"], v["meta"], v["meta_m"],
    )  # fmt: skip


# -- actions and instructions -----------------------------------------------------------


def parse_actions11(r: Reader, proto: int | None = None) -> tuple[Action, ...]:
    """A 1.1 action list as action values; ``proto`` (the flow's IP protocol) says
    which transport field set_tp_src/set_tp_dst set (TCP when unknown)."""
    out: list[Action] = []
    while r.remaining():
        head = r.peek(_TL)
        if head is None:
            raise _bad_action("trailing bytes in action list", BadActionCode.BAD_LEN)
        atype, length = head
        if atype in _SET_ACTIONS:
            if length < 8 or length % 8:
                raise _bad_action(f"action length {length}", BadActionCode.BAD_LEN)
            body = r.sub(length, "action", (ErrorType.BAD_ACTION, BadActionCode.BAD_LEN))
            body.take(4, "action header")
            f, layout = _SET_ACTIONS[atype]
            if body.remaining() != layout.size:
                raise _bad_action(f"action {atype} of length {length}", BadActionCode.BAD_LEN)
            (raw,) = body.unpack(layout)
            value = _int(raw) if isinstance(raw, bytes) else raw
            if f is None:
                src, dst = L4_FIELDS.get(proto or 6, L4_FIELDS[6])
                f = src if atype == AT11.SET_TP_SRC else dst
            elif f == _F.VLAN_VID:
                value = (value & 0xFFF) | VLAN_PRESENT
            elif f == _F.IP_DSCP:
                value >>= 2
            out.append(SetField(Oxm(f, value)))
        elif atype in SHARED_ACTIONS or atype == ActionType.EXPERIMENTER:
            out.append(parse_action(r))
        else:
            raise _bad_action(f"unknown OpenFlow 1.1 action type {atype}")
    return tuple(out)


def _set11(oxm: Oxm) -> bytes | None:
    atype = _SET11.get(oxm.field) if oxm.oxm_class == OxmClass.OPENFLOW_BASIC else None
    if atype is None or oxm.mask is not None:
        return None
    _, layout = _SET_ACTIONS[atype]
    value = oxm.value
    if oxm.field == _F.VLAN_VID:
        value &= 0xFFF
    elif oxm.field == _F.IP_DSCP:
        value <<= 2
    body = layout.pack(value.to_bytes(6, "big") if layout.format == "!6s6x" else value)
    return _TL.pack(atype, 4 + len(body)) + body


def load_actions(oxm: Oxm) -> bytes:
    """A set_field 1.1 has no action for, as Nicira ``load`` actions (NXAST_REG_LOAD, at
    most 64 bits each, low bits first), naming the field by its NXM header as Open
    vSwitch does; a mask that is not one run of bits cannot be said and is left out."""
    spec = spec_of(oxm)
    if spec is None:
        return b""
    cls, fld, exp = next((h for h in spec.headers if h[0] in (0, 1)), spec.headers[0])
    ref = FieldRef(cls, fld, spec.nbytes, exp)
    bits = spec.nbytes * 8
    if oxm.mask is not None:
        low = (oxm.mask & -oxm.mask).bit_length() - 1
        n = oxm.mask.bit_length() - low
        if low < 0 or oxm.mask != ((1 << n) - 1) << low or n > 64:
            return b""
        return RegLoad(Subfield(ref, low, n), (oxm.value >> low) & ((1 << n) - 1)).encode()
    out = []
    for ofs in range(0, bits, 64):
        n = min(64, bits - ofs)
        out.append(RegLoad(Subfield(ref, ofs, n), (oxm.value >> ofs) & ((1 << n) - 1)).encode())
    return b"".join(out)


def encode_actions11(actions: tuple[Action, ...] | list[Action]) -> bytes:
    """Action values in 1.1 numbering; a set_field 1.1 has no action for becomes
    Nicira ``load`` actions, as Open vSwitch sends it."""
    out = []
    for a in actions:
        if isinstance(a, SetField):
            out.append(_set11(a.field) or load_actions(a.field))
        elif a.type in SHARED_ACTIONS or a.type == ActionType.EXPERIMENTER:
            out.append(a.encode())
    return b"".join(out)


def parse_instructions11(r: Reader, proto: int | None = None) -> tuple[Instruction, ...]:
    """A 1.1 instruction list: 1.2's, with 1.1 action lists inside."""
    out: list[Instruction] = []
    while r.remaining():
        head = r.peek(_TL)
        if head is None or head[1] < 8:
            raise RemoteProtocolError(
                "bad instruction", ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_LEN
            )
        itype, length = head
        if itype in (WriteActions.type, ApplyActions.type):
            body = r.sub(
                length, "instruction", (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)
            )
            body.take(8, "instruction header")
            cls = WriteActions if itype == WriteActions.type else ApplyActions
            out.append(cls(parse_actions11(body, proto)))
        else:
            out.append(parse_instruction(r))
    return tuple(out)


def encode_instructions11(insts: tuple[Instruction, ...] | list[Instruction]) -> bytes:
    out = []
    for inst in insts:
        if isinstance(inst, (WriteActions, ApplyActions)):
            body = b"\0" * 4 + encode_actions11(inst.actions)
            out.append(_TL.pack(inst.type, 4 + len(body)) + body)
        else:
            out.append(encode_instructions((inst,)))
    return b"".join(out)


def proto_of(match: Match) -> int | None:
    o = match.get(_F.IP_PROTO)
    return None if o is None else o.value


# -- table statistics bitmaps -----------------------------------------------------------


def wildcards11(fields: frozenset[int]) -> frozenset[int]:
    """OXM field numbers as 1.1 match/wildcard bit numbers."""
    return frozenset(_BIT11[f] for f in fields if f in _BIT11)


def fields_of11(bits: frozenset[int]) -> frozenset[int]:
    """1.1 match bit numbers as the OXM fields they cover."""
    return frozenset(f for f, b in _BIT11.items() if b in bits)


def actions11(actions: frozenset[int], setfields: frozenset[int]) -> frozenset[int]:
    """1.2 action types and settable fields as 1.1 action types."""
    out = {a for a in actions if a in SHARED_ACTIONS}
    if ActionType.SET_FIELD in actions:
        out |= {_SET11[f] for f in setfields if f in _SET11}
    return frozenset(out)


def actions12(actions: frozenset[int]) -> tuple[frozenset[int], frozenset[int]]:
    """1.1 action types as (1.2 action types, settable fields)."""
    sets = frozenset(f for f, t in _SET11.items() if t in actions)
    shared = frozenset(a for a in actions if a in SHARED_ACTIONS)
    return shared | (frozenset((ActionType.SET_FIELD,)) if sets else frozenset()), sets


__all__ = [
    "L4_FIELDS",
    "actions11",
    "actions12",
    "encode_actions11",
    "encode_instructions11",
    "encode_match11",
    "fields_of11",
    "load_actions",
    "parse_actions11",
    "parse_instructions11",
    "parse_match11",
    "proto_of",
    "wildcards11",
]
