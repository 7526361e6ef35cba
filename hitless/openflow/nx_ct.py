"""Connection tracking in OpenFlow, as stock ``ovs-ofctl -O OpenFlow13`` encodes it:
the Nicira actions ``ct`` (NXAST_CT, subtype 35), ``nat`` (NXAST_NAT, 36, only inside
``ct``) and ``ct_clear`` (NXAST_CT_CLEAR, 43), and the NXM fields ``ct_state``,
``ct_zone``, ``ct_mark``, ``ct_label``, ``ct_nw_proto``, ``ct_nw_src``, ``ct_nw_dst``,
``ct_ipv6_src``, ``ct_ipv6_dst``, ``ct_tp_src``, ``ct_tp_dst`` (class NXM_1, fields
105-108 and 119-125).

Plugged into the Nicira registries of ``nx_actions`` (``@nx_action``) and ``nxm``
(``register``); importing this module is what registers them. Each body is described
once: NXAST_CT is ``!HIHB3xH`` (flags, zone source header or 0, zone value or
ofs_nbits, recirculation table, ALG port) then nested actions; NXAST_NAT is ``!2xHH``
(flags, which range parts follow) then the present parts in a fixed order, padded.

Wire facts (ovs-actions(7), checked by decoding our bytes with ``ovs-ofctl ofp-print``):
``ct`` flags COMMIT 1, FORCE 2; recirculation table 255 means none; the zone is an
immediate 16-bit value when the source header is 0, else ``zone=FIELD[ofs..]``.
``nat`` flags SRC 1, DST 2, PERSISTENT 4, PROTO_HASH 8, PROTO_RANDOM 16; range parts
IPV4_MIN 1, IPV4_MAX 2, IPV6_MIN 4, IPV6_MAX 8, PROTO_MIN 16, PROTO_MAX 32. ct_mark and
ct_label are set inside ``ct(exec(...))`` with set_field: OFPAT_SET_FIELD whole,
NXAST_REG_LOAD for a masked write of one bit range, NXAST_REG_LOAD2 for other masks.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from hitless.openflow._wire import Reader
from hitless.openflow.actions import Action, SetField, encode_actions, parse_actions
from hitless.openflow.constants import BadActionCode, ErrorType, OxmClass
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.nx_actions import NxAction, RegLoad, RegLoad2, RegMove, nx_action
from hitless.openflow.nxm import FieldRef, FieldSpec, Subfield, register, spec_of

__all__ = [
    "CT_FIELDS",
    "CtAction",
    "CtClear",
    "FieldReader",
    "NatAction",
    "NX_CT_F_COMMIT",
    "NX_CT_F_FORCE",
    "RECIRC_NONE",
]

NX_CT_F_COMMIT = 0x01
NX_CT_F_FORCE = 0x02
RECIRC_NONE = 0xFF

NAT_F_SRC, NAT_F_DST, NAT_F_PERSISTENT, NAT_F_HASH, NAT_F_RANDOM = 1, 2, 4, 8, 16
_R_V4MIN, _R_V4MAX, _R_V6MIN, _R_V6MAX, _R_PMIN, _R_PMAX = 1, 2, 4, 8, 16, 32
# The range parts in wire order: (bit, size).
_RANGE_PARTS = (
    (_R_V4MIN, 4),
    (_R_V4MAX, 4),
    (_R_V6MIN, 16),
    (_R_V6MAX, 16),
    (_R_PMIN, 2),
    (_R_PMAX, 2),
)

_NX1 = OxmClass.NXM_1
# name, NXM field number, bytes, maskable
CT_FIELDS: tuple[tuple[str, int, int, bool], ...] = (
    ("ct_state", 105, 4, True),
    ("ct_zone", 106, 2, False),
    ("ct_mark", 107, 4, True),
    ("ct_label", 108, 16, True),
    ("ct_nw_proto", 119, 1, False),
    ("ct_nw_src", 120, 4, True),
    ("ct_nw_dst", 121, 4, True),
    ("ct_ipv6_src", 122, 16, True),
    ("ct_ipv6_dst", 123, 16, True),
    ("ct_tp_src", 124, 2, True),
    ("ct_tp_dst", 125, 2, True),
)
for _name, _num, _size, _maskable in CT_FIELDS:
    register(FieldSpec(_name, _size, _maskable, ((_NX1, _num, None),)))

_CT = struct.Struct("!HIHB3xH")
_NAT = struct.Struct("!2xHH")


# (field name, bit offset, number of bits) -> those bits of the packet being translated
FieldReader = Callable[[str, int, int], int]


def _bad(msg: str, code: BadActionCode = BadActionCode.BAD_ARGUMENT) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_ACTION, code)


@nx_action(36)
@dataclass(frozen=True, slots=True)
class NatAction(NxAction):
    """``nat``, ``nat(src=A[-B][:P[-Q]][,persistent][,hash|random])``, ``nat(dst=...)``.
    Addresses are 4 or 16 bytes (empty: not given); ports 0: not given."""

    flags: int = 0
    addr_min: bytes = b""
    addr_max: bytes = b""
    port_min: int = 0
    port_max: int = 0

    subtype: ClassVar[int] = 36

    def _nx_body(self) -> bytes:
        present = 0
        parts = b""
        v6 = len(self.addr_min) == 16
        if self.addr_min:
            present |= _R_V6MIN if v6 else _R_V4MIN
            parts += self.addr_min
        if self.addr_max:
            present |= _R_V6MAX if v6 else _R_V4MAX
            parts += self.addr_max
        if self.port_min:
            present |= _R_PMIN
            parts += self.port_min.to_bytes(2, "big")
        if self.port_max:
            present |= _R_PMAX
            parts += self.port_max.to_bytes(2, "big")
        return _NAT.pack(self.flags, present) + parts

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        flags, present = r.unpack(_NAT, "nat")
        if present & ~0x3F:
            raise _bad(f"nat: unknown range bits {present:#x}")
        if flags & NAT_F_SRC and flags & NAT_F_DST:
            raise _bad("nat: both src and dst")
        got: dict[int, bytes] = {}
        for bit, size in _RANGE_PARTS:
            if present & bit:
                got[bit] = r.take(size, "nat range")
        if any(r.rest()):
            raise _bad("nat: non-zero padding", BadActionCode.BAD_LEN)
        amin = got.get(_R_V4MIN) or got.get(_R_V6MIN) or b""
        amax = got.get(_R_V4MAX) or got.get(_R_V6MAX) or b""
        if amax and not amin:
            raise _bad("nat: an address maximum without a minimum")
        pmin = int.from_bytes(got.get(_R_PMIN, b"\0\0"), "big")
        pmax = int.from_bytes(got.get(_R_PMAX, b"\0\0"), "big")
        if (amin or pmin) and not flags & (NAT_F_SRC | NAT_F_DST):
            raise _bad("nat: a range needs src or dst")
        return cls(flags, amin, amax, pmin, pmax)

    @property
    def kind(self) -> str | None:
        if self.flags & NAT_F_SRC:
            return "src"
        if self.flags & NAT_F_DST:
            return "dst"
        return None

    def __str__(self) -> str:
        kind = self.kind
        if kind is None:
            return "nat"
        addr = ""
        if self.addr_min:
            addr = str(ipaddress.ip_address(self.addr_min))
            if self.addr_max and self.addr_max != self.addr_min:
                addr += f"-{ipaddress.ip_address(self.addr_max)}"
            if len(self.addr_min) == 16 and self.port_min:
                addr = f"[{addr}]"
        if self.port_min:
            addr += f":{self.port_min}"
            if self.port_max and self.port_max != self.port_min:
                addr += f"-{self.port_max}"
        flags = [
            n
            for bit, n in (
                (NAT_F_PERSISTENT, "persistent"),
                (NAT_F_HASH, "hash"),
                (NAT_F_RANDOM, "random"),
            )
            if self.flags & bit
        ]
        body = ",".join([f"{kind}={addr}" if addr else kind, *flags])
        return f"nat({body})"


@nx_action(35)
@dataclass(frozen=True, slots=True)
class CtAction(NxAction):
    """``ct(commit,force,zone=N|zone=FIELD[..],table=T,alg=P,nat(...),exec(...))``.
    ``zone_field`` None: the zone is ``zone``; else read from that subfield."""

    flags: int = 0
    zone: int = 0
    zone_field: Subfield | None = None
    table: int = RECIRC_NONE
    alg: int = 0
    actions: tuple[Action, ...] = ()

    subtype: ClassVar[int] = 35

    def _nx_body(self) -> bytes:
        if self.zone_field is None:
            src, val = 0, self.zone
        else:
            (src,) = struct.unpack("!I", self.zone_field.ref.encode()[:4])
            val = self.zone_field.ofs_nbits
        return _CT.pack(self.flags, src, val, self.table, self.alg) + encode_actions(self.actions)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        flags, src, val, table, alg = r.unpack(_CT, "ct")
        if flags & ~(NX_CT_F_COMMIT | NX_CT_F_FORCE):
            raise _bad(f"ct: unknown flags {flags:#x}")
        zone_field = None
        if src:
            ref = FieldRef.parse(Reader(struct.pack("!I", src)))
            zone_field = Subfield.from_ofs_nbits(ref, val)
            zone_field.check()  # any width: translation keeps the low 16 bits
            val = 0
        return cls(flags, val, zone_field, table, alg, parse_actions(r))

    def map_nested(self, f: Callable[[tuple[Action, ...]], tuple[Action, ...]]) -> NxAction:
        return replace(self, actions=f(self.actions))

    @property
    def commit(self) -> bool:
        return bool(self.flags & (NX_CT_F_COMMIT | NX_CT_F_FORCE))

    @property
    def force(self) -> bool:
        return bool(self.flags & NX_CT_F_FORCE)

    def nat(self) -> NatAction | None:
        for a in self.actions:
            if isinstance(a, NatAction):
                return a
        return None

    def writes(self, read: FieldReader | None = None) -> list[tuple[str, int, int]]:
        """(field, value, mask) of the exec(set_field/load/move...) actions (ct_mark,
        ct_label). A ``move`` copies bits of another field: ``read(name, ofs, nbits)``
        gives them (translation reads the packet's registers); without it, moves are
        left out."""
        out = []
        for a in self.actions:
            if isinstance(a, RegMove):
                if read is not None:
                    s, d = a.src, a.dst
                    v = read(s.ref.name, s.ofs, s.nbits)
                    out.append((d.ref.name, v << d.ofs, ((1 << d.nbits) - 1) << d.ofs))
                continue
            if isinstance(a, RegLoad):  # a masked write of a bit range: load:v->f[a..b]
                d = a.dst
                out.append((d.ref.name, a.value << d.ofs, ((1 << d.nbits) - 1) << d.ofs))
                continue
            oxm = a.field if isinstance(a, (SetField, RegLoad2)) else None
            if oxm is None:
                continue
            spec = spec_of(oxm)
            name = spec.name if spec is not None else oxm.name
            full = (1 << (spec.bits if spec is not None else 32)) - 1
            out.append((name, oxm.value, full if oxm.mask is None else oxm.mask))
        return out

    def validate(self) -> None:
        """What Open vSwitch checks: nested actions are nat (once) and set_field, load
        or move into ct_mark/ct_label only, and setting them needs commit."""
        n_nat = 0
        for a in self.actions:
            if isinstance(a, NatAction):
                n_nat += 1
                continue
            if isinstance(a, (RegLoad, RegMove)):
                spec = a.dst.ref.spec
            elif isinstance(a, (SetField, RegLoad2)):
                spec = spec_of(a.field)
            else:
                raise _bad(f"ct: {type(a).__name__} inside ct is not allowed")
            if spec is None or spec.name not in ("ct_mark", "ct_label"):
                raise _bad("ct: only ct_mark and ct_label may be set inside ct")
            if not self.commit:
                raise _bad("ct: setting ct_mark or ct_label needs commit")
        if n_nat > 1:
            raise _bad("ct: more than one nat")
        if self.alg:
            raise _bad(f"ct: ALG {self.alg} is not supported", BadActionCode.BAD_EXP_TYPE)

    def __str__(self) -> str:
        parts = []
        if self.flags & NX_CT_F_FORCE:
            parts.append("force")
        if self.flags & NX_CT_F_COMMIT:
            parts.append("commit")
        if self.table != RECIRC_NONE:
            parts.append(f"table={self.table}")
        if self.zone_field is not None:
            parts.append(f"zone={self.zone_field}")
        elif self.zone:
            parts.append(f"zone={self.zone}")
        nat = self.nat()
        if nat is not None:
            parts.append(str(nat))
        return f"ct({','.join(parts)})" if parts else "ct"


@nx_action(43)
@dataclass(frozen=True, slots=True)
class CtClear(NxAction):
    """``ct_clear``: forget the packet's connection-tracking state."""

    subtype: ClassVar[int] = 43

    def _nx_body(self) -> bytes:
        return b"\0" * 6

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        r.rest()
        return cls()

    def __str__(self) -> str:
        return "ct_clear"
