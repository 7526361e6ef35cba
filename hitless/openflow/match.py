"""OXM match fields and the ``ofp_match`` structure (§7.2.3).

A field is an ``Oxm`` value: its class and field number, an integer value, an optional
integer mask. Values are big-endian integers of the field's width (``eth_dst`` is a 48-bit
integer, ``ipv6_src`` a 128-bit one), so masking is integer arithmetic. Basic fields take
their width from ``FIELD_WIDTHS``; fields of other classes (Nicira NXM, experimenter) are
kept as they came, with their width, so a switch can refuse them with OFPBMC_BAD_FIELD.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from hitless.openflow._wire import Reader, pad8
from hitless.openflow.constants import BadMatchCode, ErrorType, MatchType, OxmClass, OxmField
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.nxm import spec_by_header, spec_by_name

# §7.2.3.7, table 12: value width in bytes of every basic field, and whether a mask is
# allowed. (Open vSwitch also sends masks on some fields the table calls unmaskable, such
# as transport ports; the codec carries them and leaves the policy to the pipeline.)
FIELD_WIDTHS: dict[OxmField, tuple[int, bool]] = {
    OxmField.IN_PORT: (4, False),
    OxmField.IN_PHY_PORT: (4, False),
    OxmField.METADATA: (8, True),
    OxmField.ETH_DST: (6, True),
    OxmField.ETH_SRC: (6, True),
    OxmField.ETH_TYPE: (2, False),
    OxmField.VLAN_VID: (2, True),
    OxmField.VLAN_PCP: (1, False),
    OxmField.IP_DSCP: (1, False),
    OxmField.IP_ECN: (1, False),
    OxmField.IP_PROTO: (1, False),
    OxmField.IPV4_SRC: (4, True),
    OxmField.IPV4_DST: (4, True),
    OxmField.TCP_SRC: (2, False),
    OxmField.TCP_DST: (2, False),
    OxmField.UDP_SRC: (2, False),
    OxmField.UDP_DST: (2, False),
    OxmField.SCTP_SRC: (2, False),
    OxmField.SCTP_DST: (2, False),
    OxmField.ICMPV4_TYPE: (1, False),
    OxmField.ICMPV4_CODE: (1, False),
    OxmField.ARP_OP: (2, False),
    OxmField.ARP_SPA: (4, True),
    OxmField.ARP_TPA: (4, True),
    OxmField.ARP_SHA: (6, True),
    OxmField.ARP_THA: (6, True),
    OxmField.IPV6_SRC: (16, True),
    OxmField.IPV6_DST: (16, True),
    OxmField.IPV6_FLABEL: (4, True),
    OxmField.ICMPV6_TYPE: (1, False),
    OxmField.ICMPV6_CODE: (1, False),
    OxmField.IPV6_ND_TARGET: (16, False),
    OxmField.IPV6_ND_SLL: (6, False),
    OxmField.IPV6_ND_TLL: (6, False),
    OxmField.MPLS_LABEL: (4, False),
    OxmField.MPLS_TC: (1, False),
    OxmField.MPLS_BOS: (1, False),
    OxmField.PBB_ISID: (3, True),
    OxmField.TUNNEL_ID: (8, True),
    OxmField.IPV6_EXTHDR: (2, True),
    OxmField.PBB_UCA: (1, False),
    OxmField.TCP_FLAGS: (2, True),
}
_BY_NAME = {f.name.lower(): f for f in FIELD_WIDTHS}
_HDR = struct.Struct("!I")
_MATCH_HDR = struct.Struct("!HH")
BAD_MATCH_LEN = (ErrorType.BAD_MATCH, BadMatchCode.BAD_LEN)


@dataclass(frozen=True, slots=True)
class Oxm:
    """One OXM TLV (§7.2.3.2). ``width`` is 0 for basic fields (taken from the table)."""

    field: int
    value: int
    mask: int | None = None
    oxm_class: int = OxmClass.OPENFLOW_BASIC
    width: int = 0  # value width in bytes, for non-basic classes only
    experimenter: int | None = None  # OFPXMC_EXPERIMENTER only: the experimenter id

    @property
    def name(self) -> str:
        if self.oxm_class == OxmClass.OPENFLOW_BASIC and self.field in _FIELD_VALUES:
            return OxmField(self.field).name.lower()
        spec = spec_by_header(self.oxm_class, self.field, self.experimenter)
        if spec is not None:
            return spec.name
        return f"oxm_{self.oxm_class:#06x}_{self.field}"

    def value_width(self) -> int:
        if self.oxm_class == OxmClass.OPENFLOW_BASIC and not (
            self.width and self.field not in _FIELD_VALUES
        ):
            try:
                width = FIELD_WIDTHS[OxmField(self.field)][0]
            except ValueError:
                raise LocalProtocolError(f"unknown OXM basic field {self.field}") from None
            if self.width not in (0, width):
                raise LocalProtocolError(f"{self.name} is {width} bytes, not {self.width}")
            return width
        if self.width <= 0:
            spec = spec_by_header(self.oxm_class, self.field, self.experimenter)
            if self.width == 0 and spec is not None and spec.variable:
                return 0  # a variable-length field's empty value (tun_metadata0=0)
            raise LocalProtocolError(f"non-basic OXM field {self.name} needs a width")
        return self.width

    def header(self, *, with_mask: bool | None = None) -> int:
        """The 32-bit OXM header (class, field, hasmask, length)."""
        hasmask = self.mask is not None if with_mask is None else with_mask
        length = self.value_width() * (2 if hasmask else 1)
        if self.experimenter is not None:
            length += 4
        if not 0 <= self.field < 128:
            raise LocalProtocolError(f"OXM field number {self.field} out of range")
        return (self.oxm_class << 16) | (self.field << 9) | (int(hasmask) << 8) | length

    def encode(self) -> bytes:
        width = self.value_width()
        out = [_HDR.pack(self.header())]
        if self.experimenter is not None:
            out.append(struct.pack("!I", self.experimenter))
        for v, what in ((self.value, "value"), (self.mask, "mask")):
            if v is None:
                continue
            if not 0 <= v < (1 << (8 * width)):
                raise LocalProtocolError(f"{self.name} {what} {v:#x} exceeds {width} bytes")
            out.append(v.to_bytes(width, "big"))
        return b"".join(out)


_FIELD_VALUES = frozenset(int(f) for f in FIELD_WIDTHS)


def field(name: str, value: int, mask: int | None = None) -> Oxm:
    """A field by name: a basic one by its lower-case OXM name (``field("ipv4_dst",
    0x0A000001, 0xFFFFFF00)``), else an Open vSwitch field by its name (``field("reg0", 5)``,
    encoded with its preferred header, ``hitless.openflow.nxm``)."""
    basic = _BY_NAME.get(name)
    if basic is not None:
        return Oxm(basic, value, mask)
    spec = spec_by_name(name)
    if spec is None:
        raise LocalProtocolError(f"unknown OXM field {name!r}")
    oxm_class, fld, exp = spec.headers[0]
    if oxm_class == OxmClass.OPENFLOW_BASIC and fld in _FIELD_VALUES:
        return Oxm(OxmField(fld), value, mask)
    return Oxm(fld, value, mask, oxm_class, spec.nbytes, exp)


# Headers already parsed once and found valid (never an experimenter's, whose meaning
# depends on the id after the header): what the checks below would conclude again.
# (field, class, width field, value width, has mask). A handoff importing 100k rules
# parses a few dozen distinct headers.
_KNOWN_HEADERS: dict[int, tuple[int, int, int, int, bool]] = {}


def parse_oxm(r: Reader) -> Oxm:
    """One OXM TLV from ``r``; a bad length or unknown basic field is the peer's fault."""
    pos, buf = r.pos, r.buf
    if pos + 4 > r.end:
        return _parse_oxm_checked(r)  # raises: truncated
    header = int.from_bytes(buf[pos : pos + 4], "big")
    known = _KNOWN_HEADERS.get(header)
    stop = pos + 4 + (header & 0xFF)
    if known is not None and stop <= r.end:
        fld_value, oxm_class, width_field, width, hasmask = known
        r.pos = stop
        start = pos + 4
        return Oxm(
            fld_value,
            int.from_bytes(buf[start : start + width], "big"),
            int.from_bytes(buf[start + width : stop], "big") if hasmask else None,
            oxm_class,
            width_field,
            None,
        )
    oxm = _parse_oxm_checked(r)
    if oxm.experimenter is None:
        _KNOWN_HEADERS[header] = (
            oxm.field,
            oxm.oxm_class,
            oxm.width,
            (header & 0xFF) // 2 if header & 0x100 else header & 0xFF,
            bool(header & 0x100),
        )
    return oxm


def _parse_oxm_checked(r: Reader) -> Oxm:
    (header,) = r.unpack(_HDR, "OXM header")
    oxm_class, fld, hasmask, length = (
        header >> 16,
        (header >> 9) & 0x7F,
        (header >> 8) & 1,
        header & 0xFF,
    )
    body = r.sub(length, "OXM field", BAD_MATCH_LEN)
    experimenter = None
    if oxm_class == OxmClass.EXPERIMENTER:
        (experimenter,) = body.unpack(_HDR, "OXM experimenter id")
    payload = body.rest()
    if hasmask and len(payload) % 2:
        raise RemoteProtocolError(
            f"masked OXM field with odd length {length}", ErrorType.BAD_MATCH, BadMatchCode.BAD_LEN
        )
    width = len(payload) // 2 if hasmask else len(payload)
    if oxm_class == OxmClass.OPENFLOW_BASIC and (
        fld in _FIELD_VALUES or spec_by_header(oxm_class, fld, None) is None
    ):  # a basic field of 1.3's table; 1.5's later ones (packet_type...) are in nxm's
        if fld not in _FIELD_VALUES:
            raise RemoteProtocolError(
                f"unknown OXM basic field {fld}", ErrorType.BAD_MATCH, BadMatchCode.BAD_FIELD
            )
        expected = FIELD_WIDTHS[OxmField(fld)][0]
        if width != expected:
            raise RemoteProtocolError(
                f"OXM {OxmField(fld).name} has {width} bytes, expected {expected}",
                ErrorType.BAD_MATCH,
                BadMatchCode.BAD_LEN,
            )
        fld_value: int = OxmField(fld)
        width_field = 0
    else:
        spec = spec_by_header(oxm_class, fld, experimenter)
        if width == 0 and (spec is None or not spec.variable):
            raise RemoteProtocolError("empty OXM field", ErrorType.BAD_MATCH, BadMatchCode.BAD_LEN)
        if spec is not None and not spec.fits(width):
            raise RemoteProtocolError(
                f"{spec.name} has {width} bytes, expected {spec.nbytes}",
                ErrorType.BAD_MATCH,
                BadMatchCode.BAD_LEN,
            )
        fld_value, width_field = fld, width
    value = int.from_bytes(payload[:width], "big")
    mask = int.from_bytes(payload[width:], "big") if hasmask else None
    return Oxm(fld_value, value, mask, oxm_class, width_field, experimenter)


@dataclass(frozen=True, slots=True)
class Match:
    """``ofp_match`` of type OFPMT_OXM (§7.2.3.1): an ordered tuple of fields."""

    fields: tuple[Oxm, ...] = ()

    @classmethod
    def of(cls, **fields: int | tuple[int, int]) -> Match:
        """``Match.of(in_port=1, eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFF000000))``."""
        out = []
        for name, v in fields.items():
            out.append(field(name, *v) if isinstance(v, tuple) else field(name, v))
        return cls(tuple(out))

    def get(self, f: OxmField | str) -> Oxm | None:
        """The basic field ``f`` if present."""
        want = _BY_NAME[f] if isinstance(f, str) else f
        for oxm in self.fields:
            if oxm.oxm_class == OxmClass.OPENFLOW_BASIC and oxm.field == want:
                return oxm
        return None

    def encode(self) -> bytes:
        """The match with its trailing padding to a multiple of 8 bytes."""
        body = b"".join(f.encode() for f in self.fields if not is_default_packet_type(f))
        length = 4 + len(body)
        return _MATCH_HDR.pack(MatchType.OXM, length) + body + b"\0" * pad8(length)

    @classmethod
    def parse(cls, r: Reader) -> Match:
        """A match and its padding from ``r``."""
        mtype, length = r.unpack(_MATCH_HDR, "match header")
        if mtype != MatchType.OXM:
            raise RemoteProtocolError(
                f"match type {mtype} is not OFPMT_OXM", ErrorType.BAD_MATCH, BadMatchCode.BAD_TYPE
            )
        if length < 4:
            raise RemoteProtocolError(
                f"match length {length} < 4", ErrorType.BAD_MATCH, BadMatchCode.BAD_LEN
            )
        body = r.sub(length - 4, "match", BAD_MATCH_LEN)
        r.take(pad8(length), "match padding")
        return cls(parse_oxm_list(body))


PACKET_TYPE = 44  # OXM_OF_PACKET_TYPE (OpenFlow 1.5 §7.2.3.11; Open vSwitch says it in 1.3+)
ACTSET_OUTPUT = 43  # OXM_OF_ACTSET_OUTPUT (1.5 §7.2.3.7; 1.3/1.4: ONF's experimenter field)


def is_default_packet_type(oxm: Oxm) -> bool:
    """``packet_type=(0,0)`` (standard Ethernet, what every packet here is): a rule keeps
    it, but no encoding says it, as Open vSwitch encodes a rule's match."""
    return (
        oxm.field == PACKET_TYPE
        and oxm.oxm_class == OxmClass.OPENFLOW_BASIC
        and oxm.value == 0
        and oxm.mask is None
    )


def parse_oxm_list(r: Reader) -> tuple[Oxm, ...]:
    fields: list[Oxm] = []
    seen: set[tuple[int, int, int | None]] = set()
    while r.remaining():
        oxm = parse_oxm(r)
        key = (oxm.oxm_class, oxm.field, oxm.experimenter)
        if key in seen:
            raise RemoteProtocolError(
                f"duplicate match field {oxm.name}", ErrorType.BAD_MATCH, BadMatchCode.DUP_FIELD
            )
        seen.add(key)
        fields.append(oxm)
    return tuple(fields)


def encode_headers(fields: Iterable[Oxm]) -> bytes:
    """OXM headers alone (for table-features properties, §7.3.5.5.2)."""
    return b"".join(_HDR.pack(f.header()) for f in fields)
