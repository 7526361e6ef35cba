"""Open vSwitch's Nicira extensions, as framing: NXM matches and the Nicira messages
``ovs-ofctl`` uses next to OpenFlow 1.0 (and some later versions).

Owns: the NXM <-> ``Match`` translation (an NXM TLV has the OXM shape: 16-bit class,
7-bit field, hasmask bit, 8-bit length), the Nicira message layouts (NXT_SET_FLOW_FORMAT,
NXT_FLOW_MOD, NXT_FLOW_MOD_TABLE_ID, NXT_SET_PACKET_IN_FORMAT, NXT_SET_CONTROLLER_ID,
NXT_PACKET_IN, NXT_PACKET_IN2, NXT_FLOW_REMOVED, NXST_FLOW, NXST_AGGREGATE) and
``NxSession``, the per-connection state they negotiate.

The pipeline never sees NXM: NXM fields that have an OXM basic twin become that basic
field (``NXM_OF_ETH_DST`` is ``eth_dst``, ``NXM_OF_VLAN_TCI`` becomes ``vlan_vid`` and
``vlan_pcp``, ``NXM_OF_IP_TOS`` becomes ``ip_dscp``) and come back out as NXM; every
other NXM field (registers, conntrack, tunnel metadata, ...) stays an ``Oxm`` of its own
class and width, for the field table of the Nicira pipeline work (issue 17) to interpret.
OXM basic TLVs inside an NXM match are accepted as they are, as Open vSwitch does.
Layouts follow Open vSwitch's ``include/openflow/nicira-ext.h`` (read, not copied).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from hitless.openflow._wire import Reader, pad8
from hitless.openflow.constants import (
    NX_EXPERIMENTER_ID,
    BadMatchCode,
    BadRequestCode,
    ErrorType,
    OxmClass,
    OxmField,
)
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import PACKET_TYPE, Match, Oxm, is_default_packet_type, parse_oxm_list

__all__ = [
    "NXM_NX",
    "NXM_OF",
    "NxFlowFormat",
    "NxPacketInFormat",
    "NxSession",
    "NxStatsType",
    "NxType",
    "encode_nxm",
    "parse_nxm",
    "port_from16",
    "port_to16",
]

NXM_OF = 0x0000  # Nicira's OpenFlow 1.0 fields, as NXM class
NXM_NX = 0x0001  # Nicira's own fields


class NxType(IntEnum):
    """Nicira message subtypes (nicira-ext.h ``enum nicira_type``)."""

    ROLE_REQUEST = 10
    ROLE_REPLY = 11
    SET_FLOW_FORMAT = 12
    FLOW_MOD = 13
    FLOW_REMOVED = 14
    FLOW_MOD_TABLE_ID = 15
    SET_PACKET_IN_FORMAT = 16
    PACKET_IN = 17
    FLOW_AGE = 18
    SET_ASYNC_CONFIG = 19
    SET_CONTROLLER_ID = 20
    FLOW_MONITOR_CANCEL = 21
    FLOW_MONITOR_PAUSED = 22
    FLOW_MONITOR_RESUMED = 23
    TLV_TABLE_MOD = 24
    TLV_TABLE_REQUEST = 25
    TLV_TABLE_REPLY = 26
    SET_ASYNC_CONFIG2 = 27  # 1.4's SET_ASYNC properties, in 1.0-1.3
    RESUME = 28
    CT_FLUSH_ZONE = 29
    PACKET_IN2 = 30
    GROUP_MOD = 31  # Open vSwitch's group mod for 1.0 (1.5's layout, 1.0 actions)
    REQUESTFORWARD = 132  # OFPT_REQUESTFORWARD in 1.0-1.2


class NxStatsType(IntEnum):
    """Nicira statistics subtypes (inside OFPST_VENDOR / OFPMP_EXPERIMENTER)."""

    FLOW = 0
    AGGREGATE = 1
    FLOW_MONITOR = 2
    IPFIX_BRIDGE = 3
    IPFIX_FLOW = 4
    GROUP = 7  # Open vSwitch's group statistics for 1.0 (1.3's entries)
    GROUP_DESC = 8  # group descriptions for 1.0 (1.5's layout, 1.0 actions)
    GROUP_FEATURES = 9  # group features for 1.0 and 1.1 (1.2's layout)


class NxFlowFormat(IntEnum):
    """NXT_SET_FLOW_FORMAT values: how an OpenFlow 1.0 session encodes flow matches."""

    OPENFLOW10 = 0  # the 40-byte ofp10_match
    NXM = 2  # nx_match TLVs in NXT_FLOW_MOD / NXST_FLOW / NXT_FLOW_REMOVED


class NxPacketInFormat(IntEnum):
    """NXT_SET_PACKET_IN_FORMAT values."""

    STANDARD = 0  # the version's own OFPT_PACKET_IN
    NXT_PACKET_IN = 1
    NXT_PACKET_IN2 = 2


# Open vSwitch's error for a Nicira request it cannot do: OFPBRC_EPERM (1.0-1.5 alike).
def _eperm(text: str) -> RemoteProtocolError:
    return RemoteProtocolError(text, ErrorType.BAD_REQUEST, BadRequestCode.EPERM)


@dataclass
class NxSession:
    """What a session negotiated with Nicira messages (exported across a handoff).

    ``nx_xids`` remembers requests that came as NXST_FLOW / NXST_AGGREGATE, whose replies
    must take the same form (Open vSwitch answers in the request's own format)."""

    flow_format: int = NxFlowFormat.OPENFLOW10
    packet_in_format: int = NxPacketInFormat.STANDARD
    controller_id: int = 0
    flow_mod_table_id: bool = False
    nx_xids: set[int] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {
            "flow_format": int(self.flow_format),
            "packet_in_format": int(self.packet_in_format),
            "controller_id": self.controller_id,
            "flow_mod_table_id": self.flow_mod_table_id,
            "nx_xids": sorted(self.nx_xids),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> NxSession:
        d = d or {}
        return cls(
            flow_format=int(d.get("flow_format", NxFlowFormat.OPENFLOW10)),
            packet_in_format=int(d.get("packet_in_format", NxPacketInFormat.STANDARD)),
            controller_id=int(d.get("controller_id", 0)),
            flow_mod_table_id=bool(d.get("flow_mod_table_id", False)),
            nx_xids={int(x) for x in d.get("nx_xids", ())},
        )

    def set_flow_format(self, fmt: int) -> None:
        if fmt not in (NxFlowFormat.OPENFLOW10, NxFlowFormat.NXM):
            raise _eperm(f"flow format {fmt} is not supported")
        self.flow_format = fmt

    def set_packet_in_format(self, fmt: int) -> None:
        if fmt not in tuple(NxPacketInFormat):
            raise _eperm(f"packet-in format {fmt} is not supported")
        self.packet_in_format = fmt


# -- 16-bit ports (OpenFlow 1.0 and NXM_OF_IN_PORT) -----------------------------------


def port_from16(port: int) -> int:
    """An OpenFlow 1.0 port number as the 32-bit number later versions use."""
    return port + 0xFFFF0000 if port >= 0xFF00 else port


def port_to16(port: int) -> int:
    """A 32-bit port number in OpenFlow 1.0's 16 bits (reserved ports map across)."""
    if port >= 0xFFFFFF00:
        return port - 0xFFFF0000
    if port > 0xFEFF:
        return 0xFFFF  # OFPP_NONE: not representable
    return port


# -- NXM <-> OXM ----------------------------------------------------------------------

_F = OxmField
# NXM fields with an OXM basic twin of the same value and width.
_TWINS: dict[tuple[int, int], OxmField] = {
    (NXM_OF, 1): _F.ETH_DST,
    (NXM_OF, 2): _F.ETH_SRC,
    (NXM_OF, 3): _F.ETH_TYPE,
    (NXM_OF, 6): _F.IP_PROTO,
    (NXM_OF, 7): _F.IPV4_SRC,
    (NXM_OF, 8): _F.IPV4_DST,
    (NXM_OF, 9): _F.TCP_SRC,
    (NXM_OF, 10): _F.TCP_DST,
    (NXM_OF, 11): _F.UDP_SRC,
    (NXM_OF, 12): _F.UDP_DST,
    (NXM_OF, 13): _F.ICMPV4_TYPE,
    (NXM_OF, 14): _F.ICMPV4_CODE,
    (NXM_OF, 15): _F.ARP_OP,
    (NXM_OF, 16): _F.ARP_SPA,
    (NXM_OF, 17): _F.ARP_TPA,
    (NXM_NX, 16): _F.TUNNEL_ID,
    (NXM_NX, 17): _F.ARP_SHA,
    (NXM_NX, 18): _F.ARP_THA,
    (NXM_NX, 19): _F.IPV6_SRC,
    (NXM_NX, 20): _F.IPV6_DST,
    (NXM_NX, 21): _F.ICMPV6_TYPE,
    (NXM_NX, 22): _F.ICMPV6_CODE,
    (NXM_NX, 23): _F.IPV6_ND_TARGET,
    (NXM_NX, 24): _F.IPV6_ND_SLL,
    (NXM_NX, 25): _F.IPV6_ND_TLL,
    (NXM_NX, 27): _F.IPV6_FLABEL,
    (NXM_NX, 28): _F.IP_ECN,
}
_NXM_OF_IN_PORT = (NXM_OF, 0)
_NXM_OF_VLAN_TCI = (NXM_OF, 4)
_NXM_OF_IP_TOS = (NXM_OF, 5)
_BACK: dict[int, tuple[int, int]] = {int(f): k for k, f in _TWINS.items()}
_BACK_WIDTH = {(NXM_OF, 3): 2, (NXM_OF, 6): 1, (NXM_OF, 15): 2, (NXM_OF, 13): 1}
_VLAN_CFI = 0x1000

# NXM_NX fields (not basic) that need an Ethernet type / an IP protocol before them in
# a match (Open vSwitch checks prerequisites in order while it parses a match).
_NX_RANK = {26: 1, 29: 1, 30: 1, 34: 2}  # ip_frag, nw_ttl, mpls_ttl; tcp_flags


def _bad_match(text: str, code: BadMatchCode) -> RemoteProtocolError:
    return RemoteProtocolError(text, ErrorType.BAD_MATCH, code)


def _from_nxm(oxm: Oxm) -> list[Oxm]:
    """The pipeline's view of one NXM TLV (one or two basic fields, or itself)."""
    if oxm.oxm_class not in (NXM_OF, NXM_NX):
        return [oxm]
    key = (oxm.oxm_class, oxm.field)
    if key == _NXM_OF_IN_PORT:
        if oxm.mask is not None:
            raise _bad_match("NXM_OF_IN_PORT cannot be masked", BadMatchCode.BAD_MASK)
        return [Oxm(_F.IN_PORT, port_from16(oxm.value))]
    if key == _NXM_OF_VLAN_TCI:
        return _tci_to_oxm(oxm.value, 0xFFFF if oxm.mask is None else oxm.mask)
    if key == _NXM_OF_IP_TOS:
        if oxm.mask is not None and oxm.mask & 0xFC != 0xFC:
            raise _bad_match("NXM_OF_IP_TOS mask must cover the DSCP", BadMatchCode.BAD_MASK)
        return [Oxm(_F.IP_DSCP, (oxm.value & 0xFC) >> 2)]
    twin = _TWINS.get(key)
    if twin is None:
        return [oxm]
    mask = oxm.mask
    if mask is not None and mask == (1 << (8 * oxm.width)) - 1:
        mask = None
    return [Oxm(twin, oxm.value, mask)]


def _tci_to_oxm(tci: int, mask: int) -> list[Oxm]:
    """An 802.1Q TCI match (value/mask) as vlan_vid/vlan_pcp OXM fields."""
    out: list[Oxm] = []
    vid_mask, pcp_mask, cfi_mask = mask & 0x0FFF, mask >> 13, mask & _VLAN_CFI
    if mask == 0:
        return out
    if cfi_mask and not tci & _VLAN_CFI:
        if tci & ~_VLAN_CFI & mask:
            raise _bad_match("VLAN TCI without CFI but with a VID/PCP", BadMatchCode.BAD_VALUE)
        return [Oxm(_F.VLAN_VID, 0)]  # no 802.1Q header
    if vid_mask == 0x0FFF and cfi_mask:
        out.append(Oxm(_F.VLAN_VID, (tci & 0x0FFF) | _VLAN_CFI))
    elif vid_mask or cfi_mask:
        out.append(Oxm(_F.VLAN_VID, (tci & (vid_mask | cfi_mask)), vid_mask | cfi_mask))
    if pcp_mask == 0x7:
        if not out:
            out.append(Oxm(_F.VLAN_VID, _VLAN_CFI, _VLAN_CFI))
        out.append(Oxm(_F.VLAN_PCP, tci >> 13))
    elif pcp_mask:
        raise _bad_match("a partial VLAN PCP mask", BadMatchCode.BAD_MASK)
    return out


def _rank(oxm: Oxm) -> int:
    """Prerequisite depth of a field, so an encoded match lists prerequisites first."""
    if oxm.name == "tcp_flags":  # OXM (1.5) or ONF experimenter (1.3) form: after nw_proto
        return 2
    if oxm.oxm_class == OxmClass.OPENFLOW_BASIC and oxm.field == PACKET_TYPE:
        return -1  # first, as Open vSwitch puts it
    if oxm.name in ("nd_reserved", "nd_options_type"):  # after icmpv6_type
        return 3
    if oxm.name.startswith("nsh_"):  # after eth_type
        return 1
    if oxm.oxm_class == OxmClass.OPENFLOW_BASIC:
        f = oxm.field
        if f in (_F.IPV6_ND_TARGET, _F.IPV6_ND_SLL, _F.IPV6_ND_TLL):
            return 3
        if f in (
            _F.TCP_SRC, _F.TCP_DST, _F.UDP_SRC, _F.UDP_DST, _F.SCTP_SRC, _F.SCTP_DST,
            _F.ICMPV4_TYPE, _F.ICMPV4_CODE, _F.ICMPV6_TYPE, _F.ICMPV6_CODE,
        ):  # fmt: skip
            return 2
        if f in (
            _F.IN_PORT, _F.IN_PHY_PORT, _F.METADATA, _F.ETH_DST, _F.ETH_SRC, _F.ETH_TYPE,
            _F.VLAN_VID, _F.VLAN_PCP, _F.TUNNEL_ID,
        ):  # fmt: skip
            return 0
        return 1
    if oxm.oxm_class == NXM_NX:
        return _NX_RANK.get(oxm.field, 0)
    return 0


def _to_nxm(fields: tuple[Oxm, ...]) -> list[Oxm]:
    """Basic fields as the NXM TLVs Open vSwitch would send (in prerequisite order)."""
    out: list[Oxm] = []
    vid = pcp = None
    for oxm in sorted(fields, key=_rank):
        if oxm.oxm_class != OxmClass.OPENFLOW_BASIC:
            out.append(oxm)
            continue
        f = oxm.field
        if f == _F.VLAN_VID:
            vid = oxm
            continue
        if f == _F.VLAN_PCP:
            pcp = oxm
            continue
        if f == _F.IN_PORT:
            out.append(Oxm(0, port_to16(oxm.value), None, NXM_OF, 2))
            continue
        if f == _F.IP_DSCP:
            out.append(Oxm(5, (oxm.value << 2) & 0xFC, None, NXM_OF, 1))
            continue
        back = _BACK.get(f)
        if back is None:
            out.append(oxm)  # no NXM twin (metadata, MPLS, SCTP...): OXM inside NXM
            continue
        width = oxm.value_width()
        out.append(Oxm(back[1], oxm.value, oxm.mask, back[0], width))
    if vid is not None or pcp is not None:
        tci, mask = _oxm_to_tci(vid, pcp)
        tlv = Oxm(4, tci, None if mask == 0xFFFF else mask, NXM_OF, 2)
        at = next((i for i, o in enumerate(out) if _rank(o) > 0 or o.field == 3), len(out))
        out.insert(at, tlv)
    return out


def _oxm_to_tci(vid: Oxm | None, pcp: Oxm | None) -> tuple[int, int]:
    tci = mask = 0
    if vid is not None:
        vmask = 0x1FFF if vid.mask is None else vid.mask & 0x1FFF
        if vid.mask is None and vid.value == 0:
            return 0, 0xFFFF  # no 802.1Q header: the whole TCI is zero
        tci, mask = vid.value & vmask, vmask
    if pcp is not None:
        tci |= (pcp.value & 7) << 13 | _VLAN_CFI
        mask |= 0xE000 | _VLAN_CFI
    return tci, mask


NXM_NX_COOKIE = (NXM_NX, 30)  # only in NXT_FLOW_MOD / NXST_* matches: the cookie selection


def parse_nxm(r: Reader, match_len: int, cookie: list[int] | None = None) -> Match:
    """An nx_match of ``match_len`` bytes and its padding to 8 from ``r``. With
    ``cookie`` (a list to fill with value and mask), an NXM_NX_COOKIE TLV is the flow
    selection's cookie, as in NXT_FLOW_MOD and NXST_FLOW (elsewhere the same header is
    NXM_NX_MPLS_TTL, as in Open vSwitch)."""
    body = r.sub(match_len, "nx_match", (ErrorType.BAD_MATCH, BadMatchCode.BAD_LEN))
    r.take(min(pad8(match_len), r.remaining()), "nx_match padding")
    raw = body.rest()
    if cookie is not None:
        raw = _take_cookie(raw, cookie)
    out: list[Oxm] = []
    for oxm in parse_oxm_list(Reader(raw, 0, len(raw), body.error)):
        out.extend(_from_nxm(oxm))
    return Match(tuple(out))


def _take_cookie(raw: bytes, cookie: list[int]) -> bytes:
    """``raw`` TLVs without NXM_NX_COOKIE(_W), whose value and mask go to ``cookie``."""
    kept = []
    pos = 0
    while pos + 4 <= len(raw):
        (hdr,) = struct.unpack_from("!I", raw, pos)
        end = pos + 4 + (hdr & 0xFF)
        if (hdr >> 16, (hdr >> 9) & 0x7F) == NXM_NX_COOKIE and end <= len(raw):
            value = int.from_bytes(raw[pos + 4 : pos + 12], "big")
            mask = int.from_bytes(raw[pos + 12 : end], "big") if hdr & 0x100 else 2**64 - 1
            cookie[:] = [value & mask, mask]
        else:
            kept.append(raw[pos:end])
        pos = end
    return b"".join(kept) + raw[pos:]


def encode_nxm(match: Match) -> bytes:
    """The nx_match TLVs of ``match`` (no padding: the caller pads after its length)."""
    return b"".join(o.encode() for o in _to_nxm(match.fields) if not is_default_packet_type(o))


def padded(data: bytes) -> bytes:
    return data + b"\0" * pad8(len(data))


NX_HEADER = struct.Struct("!II")  # vendor, subtype (after the ofp_header)


def nx_header(subtype: int) -> bytes:
    return NX_HEADER.pack(NX_EXPERIMENTER_ID, subtype)
