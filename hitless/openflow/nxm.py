"""The field table: every match/set field the switch knows, by OXM/NXM header and by name.

OpenFlow 1.2+ carries a field as an OXM TLV whose 32-bit header names a class and a field
number; Open vSwitch's own fields (registers, metadata-like fields, tunnel values) use the
Nicira classes NXM_0 (0x0000) and NXM_1 (0x0001), the packet-register class 0x8001
(``xreg``) or the experimenter class 0xffff with an experimenter id (ONF's 0x4f4e4600,
Nicira's 0x00002320). One field may have several headers (``tcp_src`` is NXM_OF_TCP_SRC and
OXM_OF_TCP_SRC); ``FieldSpec.headers`` lists them, the first is the one we encode with.
Names are Open vSwitch's (``ovs-fields(7)``): ``reg0``, ``xxreg1``, ``tun_id``, ``nw_tos``.

Actions that name a field without a value (``move``, ``load``, ``output:FIELD``, ``push``,
``learn``) carry a bare header: ``FieldRef``, and a bit range of it, ``Subfield``.

This module says what a field is on the wire; where it lives in a packet or in the
pipeline is ``hitless.ofproto.fields``. Must not import other hitless layers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hitless.openflow._wire import Reader
from hitless.openflow.constants import BadActionCode, ErrorType, OxmClass
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from hitless.openflow.match import Oxm

__all__ = [
    "ERICOXM",
    "NSH_VENDOR",
    "NX_VENDOR",
    "ONF_VENDOR",
    "PKT_REGS",
    "TUN_METADATA_BYTES",
    "TUN_METADATA_FIELD",
    "FieldRef",
    "FieldSpec",
    "Subfield",
    "register",
    "spec_by_header",
    "spec_by_name",
    "spec_of",
    "tun_metadata_index",
]

NX_VENDOR = 0x00002320
ONF_VENDOR = 0x4F4E4600
NSH_VENDOR = 0x005AD650  # Open vSwitch's NXOXM_NSH experimenter id (its NSH fields)
ERICOXM = 0x1000  # Ericsson's OXM class (Open vSwitch's ERICOXM_OF_* fields)
PKT_REGS = 0x8001  # OFPXMC_PACKET_REGS: xreg0-7 (OpenFlow 1.3 extension, OF1.5 §7.2.3.10)
_NX0, _NX1, _OF, _EXP = OxmClass.NXM_0, OxmClass.NXM_1, OxmClass.OPENFLOW_BASIC, 0xFFFF

Header = tuple[int, int, int | None]  # (oxm_class, field, experimenter id or None)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field: Open vSwitch's name, value width in bytes, whether a mask is allowed,
    and its headers (the first is the one we encode)."""

    name: str
    nbytes: int
    maskable: bool
    headers: tuple[Header, ...]
    variable: bool = False  # any width up to nbytes, even 0 (tun_metadata: its option's)

    def fits(self, width: int) -> bool:
        """Whether a value ``width`` bytes wide is one of this field's."""
        return 0 <= width <= self.nbytes if self.variable else width == self.nbytes

    @property
    def bits(self) -> int:
        return self.nbytes * 8


_BY_HEADER: dict[Header, FieldSpec] = {}
_BY_NAME: dict[str, FieldSpec] = {}


def register(spec: FieldSpec, *aliases: str) -> FieldSpec:
    """Add a field (other layers may add theirs, e.g. connection tracking's)."""
    for h in spec.headers:
        if h in _BY_HEADER and _BY_HEADER[h] != spec:
            raise LocalProtocolError(f"field header {h} registered twice")
        _BY_HEADER[h] = spec
    for n in (spec.name, *aliases):
        _BY_NAME[n] = spec
    return spec


def _f(
    name: str, nbytes: int, maskable: bool, *headers: Header, aliases: tuple[str, ...] = ()
) -> None:
    register(FieldSpec(name, nbytes, maskable, headers), *aliases)


# Packet fields: NXM_OF_* (class 0), NXM_NX_* (class 1) and OXM_OF_* (basic) headers.
_f("in_port", 2, False, (_NX0, 0, None))
_f("in_port_oxm", 4, False, (_OF, 0, None))
_f("metadata", 8, True, (_OF, 2, None))
_f("eth_dst", 6, True, (_OF, 3, None), (_NX0, 1, None), aliases=("dl_dst",))
_f("eth_src", 6, True, (_OF, 4, None), (_NX0, 2, None), aliases=("dl_src",))
_f("eth_type", 2, False, (_OF, 5, None), (_NX0, 3, None), aliases=("dl_type",))
_f("vlan_tci", 2, True, (_NX0, 4, None))
_f("vlan_vid", 2, True, (_OF, 6, None))
_f("vlan_pcp", 1, False, (_OF, 7, None))
_f("nw_tos", 1, False, (_NX0, 5, None))
_f("ip_dscp", 1, False, (_OF, 8, None))
_f("nw_ecn", 1, False, (_OF, 9, None), (_NX1, 28, None), aliases=("ip_ecn",))
_f("nw_ttl", 1, False, (_NX1, 29, None), aliases=("ip_ttl",))
_f("nw_proto", 1, False, (_OF, 10, None), (_NX0, 6, None), aliases=("ip_proto",))
_f("ip_src", 4, True, (_OF, 11, None), (_NX0, 7, None), aliases=("nw_src", "ipv4_src"))
_f("ip_dst", 4, True, (_OF, 12, None), (_NX0, 8, None), aliases=("nw_dst", "ipv4_dst"))
_f("tcp_src", 2, True, (_OF, 13, None), (_NX0, 9, None))
_f("tcp_dst", 2, True, (_OF, 14, None), (_NX0, 10, None))
_f("udp_src", 2, True, (_OF, 15, None), (_NX0, 11, None))
_f("udp_dst", 2, True, (_OF, 16, None), (_NX0, 12, None))
_f("sctp_src", 2, True, (_OF, 17, None))
_f("sctp_dst", 2, True, (_OF, 18, None))
_f("icmp_type", 1, False, (_OF, 19, None), (_NX0, 13, None), aliases=("icmpv4_type",))
_f("icmp_code", 1, False, (_OF, 20, None), (_NX0, 14, None), aliases=("icmpv4_code",))
_f("arp_op", 2, False, (_OF, 21, None), (_NX0, 15, None))
_f("arp_spa", 4, True, (_OF, 22, None), (_NX0, 16, None))
_f("arp_tpa", 4, True, (_OF, 23, None), (_NX0, 17, None))
_f("arp_sha", 6, True, (_OF, 24, None), (_NX1, 17, None))
_f("arp_tha", 6, True, (_OF, 25, None), (_NX1, 18, None))
_f("ipv6_src", 16, True, (_OF, 26, None), (_NX1, 19, None))
_f("ipv6_dst", 16, True, (_OF, 27, None), (_NX1, 20, None))
_f("ipv6_label", 4, True, (_OF, 28, None), (_NX1, 27, None), aliases=("ipv6_flabel",))
_f("icmpv6_type", 1, False, (_OF, 29, None), (_NX1, 21, None))
_f("icmpv6_code", 1, False, (_OF, 30, None), (_NX1, 22, None))
_f("nd_target", 16, True, (_OF, 31, None), (_NX1, 23, None), aliases=("ipv6_nd_target",))
_f("nd_sll", 6, True, (_OF, 32, None), (_NX1, 24, None), aliases=("ipv6_nd_sll",))
_f("nd_tll", 6, True, (_OF, 33, None), (_NX1, 25, None), aliases=("ipv6_nd_tll",))
# Open vSwitch's ICMPv6 neighbour discovery extensions, in Ericsson's OXM class (its only
# header, also inside an NXM match): the flags/reserved word and the first option's type
_f("nd_reserved", 4, False, (ERICOXM, 1, None))
_f("nd_options_type", 1, False, (ERICOXM, 2, None))
# NSH (RFC 8300), Open vSwitch's NXOXM_NSH experimenter fields (their only header, in
# NXM matches too): base header, service path (SPI: the low 24 bits), MD type 1 contexts
_f("nsh_flags", 1, True, (_EXP, 1, NSH_VENDOR))
_f("nsh_ttl", 1, False, (_EXP, 10, NSH_VENDOR))
_f("nsh_mdtype", 1, False, (_EXP, 2, NSH_VENDOR))
_f("nsh_np", 1, False, (_EXP, 3, NSH_VENDOR))
_f("nsh_spi", 4, False, (_EXP, 4, NSH_VENDOR), aliases=("nsp",))
_f("nsh_si", 1, False, (_EXP, 5, NSH_VENDOR), aliases=("nsi",))
for _i in range(1, 5):
    _f(f"nsh_c{_i}", 4, True, (_EXP, 5 + _i, NSH_VENDOR), aliases=(f"nshc{_i}",))
_f("mpls_label", 4, False, (_OF, 34, None))
_f("mpls_tc", 1, False, (_OF, 35, None))
_f("mpls_bos", 1, False, (_OF, 36, None))
_f("mpls_ttl", 1, False, (_NX1, 30, None))
_f("ip_frag", 1, True, (_NX1, 26, None), aliases=("nw_frag",))
_f(
    "tcp_flags",
    2,
    True,
    (_NX1, 34, None),
    (_EXP, 42, ONF_VENDOR),
    (_OF, 42, None),
)
# Pipeline fields: never in a packet, they live in the translation (hitless.ofproto.fields).
for _i in range(16):
    _f(f"reg{_i}", 4, True, (_NX1, _i, None))
for _i in range(8):
    _f(f"xreg{_i}", 8, True, (PKT_REGS, _i, None))
for _i in range(4):
    _f(f"xxreg{_i}", 16, True, (_NX1, 111 + _i, None))
_f("tun_id", 8, True, (_OF, 38, None), (_NX1, 16, None), aliases=("tunnel_id",))
_f("tun_src", 4, True, (_NX1, 31, None))
_f("tun_dst", 4, True, (_NX1, 32, None))
_f("tun_flags", 2, True, (_NX1, 104, None))
_f("pkt_mark", 4, True, (_NX1, 33, None))
_f("dp_hash", 4, True, (_NX1, 35, None), (_EXP, 0, NX_VENDOR))
_f("recirc_id", 4, False, (_NX1, 36, None))
_f("conj_id", 4, False, (_NX1, 37, None))
_f("actset_output", 4, False, (_EXP, 43, ONF_VENDOR), (_OF, 43, None))
# Open vSwitch 1.5 fields it also says in 1.3/1.4: the packet's type, (namespace, type);
# every packet here is standard Ethernet, (0, 0).
_f("packet_type", 4, False, (_OF, 44, None))
# Tunnel values without a tunnel port to fill them (like tun_src): pipeline-only fields,
# zero on a packet from a port, written and read back by the pipeline. Values are the
# low bits of their bytes where Open vSwitch says so (hitless.ofproto.fields).
_f("tun_ipv6_src", 16, True, (_NX1, 109, None))
_f("tun_ipv6_dst", 16, True, (_NX1, 110, None))
_f("tun_gbp_id", 2, True, (_NX1, 38, None))
_f("tun_gbp_flags", 1, True, (_NX1, 39, None))
_f("tun_erspan_idx", 4, True, (_EXP, 11, NX_VENDOR))
_f("tun_erspan_ver", 1, True, (_EXP, 12, NX_VENDOR))
_f("tun_erspan_dir", 1, True, (_EXP, 13, NX_VENDOR))
_f("tun_erspan_hwid", 1, True, (_EXP, 14, NX_VENDOR))
_f("tun_gtpu_flags", 1, True, (_EXP, 15, NX_VENDOR))
_f("tun_gtpu_msgtype", 1, True, (_EXP, 16, NX_VENDOR))
# Geneve options as fields (Open vSwitch's variable-length NXM_NX_TUN_METADATA0-63): up to
# 124 bytes each, as wide as the option the switch's TLV map says (NXT_TLV_TABLE_MOD); a
# match or action carries any width up to that, the pipeline fits it to the mapping.
TUN_METADATA_FIELD = 40  # NXM_1 field number of tun_metadata0
TUN_METADATA_BYTES = 124
for _i in range(64):
    register(
        FieldSpec(
            f"tun_metadata{_i}", TUN_METADATA_BYTES, True,
            ((_NX1, TUN_METADATA_FIELD + _i, None),), variable=True,
        )  # fmt: skip
    )


def tun_metadata_index(oxm_class: int, field: int) -> int | None:
    """The index n of a tun_metadata<n> header, None for any other field."""
    if oxm_class == _NX1 and 0 <= field - TUN_METADATA_FIELD < 64:
        return field - TUN_METADATA_FIELD
    return None


def spec_by_name(name: str) -> FieldSpec | None:
    return _BY_NAME.get(name)


def spec_by_header(oxm_class: int, field: int, experimenter: int | None) -> FieldSpec | None:
    return _BY_HEADER.get((oxm_class, field, experimenter if oxm_class == _EXP else None))


def spec_of(oxm: Oxm) -> FieldSpec | None:
    """The field of an ``Oxm`` (match entry or set_field), if we know it."""
    return spec_by_header(int(oxm.oxm_class), int(oxm.field), oxm.experimenter)


_H32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A bare field header inside an action (no value): 4 bytes, or 8 with an
    experimenter id (class 0xffff)."""

    oxm_class: int
    field: int
    nbytes: int
    experimenter: int | None = None

    @classmethod
    def of(cls, name: str) -> FieldRef:
        spec = _BY_NAME.get(name)
        if spec is None:
            raise LocalProtocolError(f"unknown field {name!r}")
        c, f, e = spec.headers[0]
        return cls(c, f, spec.nbytes, e)

    @property
    def spec(self) -> FieldSpec | None:
        return spec_by_header(self.oxm_class, self.field, self.experimenter)

    @property
    def name(self) -> str:
        s = self.spec
        return s.name if s is not None else f"field_{self.oxm_class:#06x}_{self.field}"

    @property
    def size(self) -> int:
        """Encoded size in bytes."""
        return 8 if self.oxm_class == _EXP else 4

    def encode(self) -> bytes:
        length = self.nbytes + (4 if self.oxm_class == _EXP else 0)
        h = _H32.pack((self.oxm_class << 16) | (self.field << 9) | length)
        if self.oxm_class == _EXP:
            h += _H32.pack(self.experimenter or 0)
        return h

    @classmethod
    def parse(cls, r: Reader) -> FieldRef:
        (h,) = r.unpack(_H32, "field header")
        oxm_class, fld, hasmask, length = h >> 16, (h >> 9) & 0x7F, (h >> 8) & 1, h & 0xFF
        exp = None
        if oxm_class == _EXP:
            (exp,) = r.unpack(_H32, "field experimenter id")
            length -= 4
        if hasmask:
            length //= 2
        ref = cls(oxm_class, fld, length, exp)
        spec = ref.spec
        if spec is None or spec.nbytes != length:
            raise RemoteProtocolError(
                f"unknown field header {h:#010x} in an action",
                ErrorType.BAD_ACTION,
                BadActionCode.BAD_ARGUMENT,
            )
        return ref


@dataclass(frozen=True, slots=True)
class Subfield:
    """Bits ``[ofs, ofs + nbits)`` of a field (``NXM_NX_REG0[0..15]``)."""

    ref: FieldRef
    ofs: int
    nbits: int

    @classmethod
    def whole(cls, name: str) -> Subfield:
        ref = FieldRef.of(name)
        return cls(ref, 0, ref.nbytes * 8)

    def check(self) -> None:
        """Raise OFPBAC_BAD_SET_ARGUMENT if the range is outside the field."""
        if self.nbits <= 0 or self.ofs + self.nbits > self.ref.nbytes * 8:
            raise RemoteProtocolError(
                f"bits {self.ofs}..{self.ofs + self.nbits - 1} outside {self.ref.name}",
                ErrorType.BAD_ACTION,
                BadActionCode.BAD_SET_ARGUMENT,
            )

    @property
    def ofs_nbits(self) -> int:
        """The packed ``(ofs << 6) | (nbits - 1)`` of NXM actions."""
        return (self.ofs << 6) | (self.nbits - 1)

    @classmethod
    def from_ofs_nbits(cls, ref: FieldRef, ofs_nbits: int) -> Subfield:
        return cls(ref, ofs_nbits >> 6, (ofs_nbits & 0x3F) + 1)

    def __str__(self) -> str:
        if self.ofs == 0 and self.nbits == self.ref.nbytes * 8:
            return f"{self.ref.name}[]"
        return f"{self.ref.name}[{self.ofs}..{self.ofs + self.nbits - 1}]"
