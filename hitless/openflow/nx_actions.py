"""Nicira extension actions (experimenter 0x00002320): what stock ``ovs-ofctl`` sends for
``resubmit``, ``load``, ``move``, ``output:FIELD``, ``conjunction``, ``note``, ``push``/``pop``,
``clone``, ``controller(...)``, ``dec_ttl(ids)``, ``exit``, ``learn``, ``multipath``...

Every action is a frozen value. Its wire form is ``ofp_action_experimenter_header`` (type
0xffff, length, vendor 0x2320) followed by a 16-bit subtype and the body, padded with
zeros to a multiple of 8 bytes. A fixed body is described once by a ``struct`` format and
the dataclass fields in the same order (``_Fixed``): both directions derive from it.

``@nx_action(subtype)`` registers a class (another layer adds its own, e.g. ``ct``);
``parse_nx`` is what ``actions.parse_action`` calls for vendor 0x2320. A subtype nobody
registered becomes ``NxUnknown`` (kept byte for byte; the pipeline refuses it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any, ClassVar, TypeVar

from hitless.openflow._wire import Reader, pad8
from hitless.openflow.actions import (
    EXPERIMENTER_ACTIONS,
    LATER_ACTIONS,
    Action,
    encode_actions,
    parse_actions,
)
from hitless.openflow.constants import ActionType, BadActionCode, ErrorType
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.match import Oxm, parse_oxm
from hitless.openflow.nxm import NX_VENDOR, ONF_VENDOR, FieldRef, Subfield

__all__ = [
    "NX_ACTIONS",
    "BundleAction",
    "CheckPktLarger",
    "Clone",
    "Conjunction",
    "Controller",
    "Controller2",
    "DecTtlIds",
    "Exit",
    "FinTimeout",
    "LEARN_DELETE_LEARNED",
    "LEARN_SEND_FLOW_REM",
    "LEARN_WRITE_RESULT",
    "MOVE_NX",
    "MOVE_OF15",
    "MOVE_ONF",
    "Learn",
    "LearnSpec",
    "Multipath",
    "NxAction",
    "NxDecMplsTtl",
    "NxDecNshTtl",
    "NxDecTtl",
    "NxPopMpls",
    "NxPushMpls",
    "NxSetMplsLabel",
    "NxSetMplsTc",
    "NxSetMplsTtl",
    "NxUnknown",
    "Note",
    "OutputReg",
    "PopQueue",
    "RegLoad",
    "RegLoad2",
    "RegMove",
    "Resubmit",
    "Sample",
    "SetTunnel",
    "StackPop",
    "StackPush",
    "WriteMetadataAction",
    "nx_action",
    "parse_nx",
]

_HDR = struct.Struct("!HHIH")  # type, length, vendor, subtype
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def _bad(msg: str, code: BadActionCode = BadActionCode.BAD_EXP_TYPE) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_ACTION, code)


class NxAction(Action):
    """Base of the Nicira actions: ``subtype`` and ``_nx_body()`` (after the subtype)."""

    __slots__ = ()
    type: ClassVar[ActionType] = ActionType.EXPERIMENTER
    subtype: ClassVar[int]

    def _nx_body(self) -> bytes:
        return b""

    def nx_subtype(self) -> int:
        return self.subtype

    def map_nested(self, f: Callable[[tuple[Action, ...]], tuple[Action, ...]]) -> NxAction:
        """This action with ``f`` applied to the action list it nests (clone, ct's
        exec); an action that nests none is returned as is."""
        return self

    def encode(self) -> bytes:
        body = self._nx_body()
        length = _HDR.size + len(body)
        length += pad8(length)
        if length < 16:
            length = 16
        out = _HDR.pack(ActionType.EXPERIMENTER, length, NX_VENDOR, self.nx_subtype()) + body
        return out + b"\0" * (length - len(out))

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        raise NotImplementedError


NX_ACTIONS: dict[int, type[NxAction]] = {}
_A = TypeVar("_A", bound=type[NxAction])


def nx_action(*subtypes: int) -> Callable[[_A], _A]:
    """Register a class for these subtypes (its ``parse(subtype, body)`` reads them)."""

    def deco(cls: _A) -> _A:
        for s in subtypes:
            if s in NX_ACTIONS:
                raise LocalProtocolError(f"NX action subtype {s} registered twice")
            NX_ACTIONS[s] = cls
        return cls

    return deco


def parse_nx(r: Reader) -> Action:
    """One Nicira action's body after the vendor id (``actions.EXPERIMENTER_ACTIONS``)."""
    (subtype,) = r.unpack(_U16, "NX action subtype")
    cls = NX_ACTIONS.get(subtype)
    if cls is None:
        return NxUnknown(subtype, r.rest())
    return cls.parse(subtype, r)


EXPERIMENTER_ACTIONS[NX_VENDOR] = parse_nx


class _Fixed(NxAction):
    """A body described by ``_fmt`` over the dataclass fields, in order (then zeros)."""

    __slots__ = ()
    _fmt: ClassVar[struct.Struct]

    def _nx_body(self) -> bytes:
        return self._fmt.pack(*astuple(self))  # type: ignore[call-overload]

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        return _parse_fixed(cls, subtype, r)


def _parse_fixed(cls: type[_Fixed], subtype: int, r: Reader) -> NxAction:
    values = r.unpack(cls._fmt, f"NX action {subtype}")
    if any(r.rest()):
        raise _bad(f"NX action {subtype}: non-zero padding", BadActionCode.BAD_LEN)
    return cls(*values)


@nx_action()
@dataclass(frozen=True, slots=True)
class NxUnknown(NxAction):
    """A subtype we do not implement, kept as it came."""

    subtype_: int
    data: bytes = b""

    subtype: ClassVar[int] = -1

    def nx_subtype(self) -> int:
        return self.subtype_

    def _nx_body(self) -> bytes:
        return self.data


@nx_action(1, 14, 44)
@dataclass(frozen=True, slots=True)
class Resubmit(NxAction):
    """``resubmit(port,table)``: look the packet up again in ``table`` (0xff: this
    table) as if it came from ``in_port`` (0xfff8, OFPP_IN_PORT: its own). ``ct`` is
    ``resubmit(...,ct)`` (subtype 44)."""

    in_port: int = 0xFFF8
    table: int = 0xFF
    ct: bool = False
    form: int = 14  # 1: NXAST_RESUBMIT (no table), 14: RESUBMIT_TABLE, 44: ..._CT

    subtype: ClassVar[int] = 14

    def nx_subtype(self) -> int:
        return self.form

    def _nx_body(self) -> bytes:
        if self.form == 1:
            return _U16.pack(self.in_port)
        return struct.pack("!HB3x", self.in_port, self.table)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        if subtype == 1:
            (in_port,) = r.unpack(_U16, "resubmit")
            return cls(in_port, 0xFF, False, 1)
        in_port, table = r.unpack(struct.Struct("!HB3x"), "resubmit")
        return cls(in_port, table, subtype == 44, subtype)


@nx_action(7)
@dataclass(frozen=True, slots=True)
class RegLoad(NxAction):
    """``load:value->dst[ofs..]`` (NXAST_REG_LOAD)."""

    dst: Subfield
    value: int

    subtype: ClassVar[int] = 7

    def _nx_body(self) -> bytes:
        return _U16.pack(self.dst.ofs_nbits) + self.dst.ref.encode() + struct.pack("!Q", self.value)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        (ofs_nbits,) = r.unpack(_U16, "load")
        ref = FieldRef.parse(r)
        (value,) = r.unpack(struct.Struct("!Q"), "load value")
        dst = Subfield.from_ofs_nbits(ref, ofs_nbits)
        dst.check()
        if value >> dst.nbits:
            raise _bad(f"load value {value:#x} wider than {dst}", BadActionCode.BAD_ARGUMENT)
        return cls(dst, value)


@nx_action(33)
@dataclass(frozen=True, slots=True)
class RegLoad2(NxAction):
    """``set_field:value/mask->field`` as NXAST_REG_LOAD2: one OXM TLV, mask allowed."""

    field: Oxm

    subtype: ClassVar[int] = 33

    def _nx_body(self) -> bytes:
        return self.field.encode()

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        try:
            oxm = parse_oxm(r)
        except RemoteProtocolError as e:
            raise _bad(e.message, BadActionCode.BAD_SET_ARGUMENT) from None
        if any(r.rest()):
            raise _bad("load2: bytes after the field", BadActionCode.BAD_LEN)
        return cls(oxm)


# How ``move`` travels: Nicira's NXAST_REG_MOVE (what ovs-ofctl sends before 1.5), the
# standard OFPAT_COPY_FIELD of OpenFlow 1.5 (§7.2.6.8; what ovs-ofctl and ovn-controller
# send in 1.5) or ONF's OpenFlow 1.3 extension 3200. The three carry the same value.
MOVE_NX, MOVE_OF15, MOVE_ONF = "nx", "of15", "onf"  # RegMove.form
_COPY = struct.Struct("!HHH2x")  # n_bits, src_offset, dst_offset (copy-field forms)
_ONF_COPY_FIELD = 3200


@nx_action(6)
@dataclass(frozen=True, slots=True)
class RegMove(NxAction):
    """``move:src[..]->dst[..]`` (NXAST_REG_MOVE, OFPAT_COPY_FIELD or ONF copy-field;
    ``form`` says which, so a rule is dumped back the way it came)."""

    src: Subfield
    dst: Subfield
    form: str = MOVE_NX

    subtype: ClassVar[int] = 6

    def _nx_body(self) -> bytes:
        return (
            struct.pack("!HHH", self.src.nbits, self.src.ofs, self.dst.ofs)
            + self.src.ref.encode()
            + self.dst.ref.encode()
        )

    def encode(self) -> bytes:
        if self.form == MOVE_NX:
            return NxAction.encode(self)
        refs = self.src.ref.encode() + self.dst.ref.encode()
        copy = _COPY.pack(self.src.nbits, self.src.ofs, self.dst.ofs) + refs
        if self.form == MOVE_OF15:
            head, typ = b"", ActionType.COPY_FIELD
        else:
            head, typ = struct.pack("!IH2x", ONF_VENDOR, _ONF_COPY_FIELD), ActionType.EXPERIMENTER
        length = 4 + len(head) + len(copy)
        length += pad8(length)
        out = struct.pack("!HH", typ, length) + head + copy
        return out + b"\0" * (length - len(out))

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        n_bits, src_ofs, dst_ofs = r.unpack(struct.Struct("!HHH"), "move")
        return cls._checked(n_bits, src_ofs, dst_ofs, r, MOVE_NX)

    @classmethod
    def _checked(cls, n_bits: int, src_ofs: int, dst_ofs: int, r: Reader, form: str) -> RegMove:
        src, dst = FieldRef.parse(r), FieldRef.parse(r)
        if any(r.rest()):
            raise _bad("copy-field padding is not zero", BadActionCode.BAD_LEN)
        a = cls(Subfield(src, src_ofs, n_bits), Subfield(dst, dst_ofs, n_bits), form)
        a.src.check()
        a.dst.check()
        return a


def _parse_copy_field(r: Reader) -> Action:
    """OFPAT_COPY_FIELD's body after its type and length (OpenFlow 1.5)."""
    n_bits, src_ofs, dst_ofs = r.unpack(_COPY, "copy_field")
    return RegMove._checked(n_bits, src_ofs, dst_ofs, r, MOVE_OF15)


def _parse_onf(r: Reader) -> Action:
    """An ONF experimenter action after its experimenter id: only copy-field (3200)."""
    (exp_type,) = r.unpack(struct.Struct("!H2x"), "ONF action type")
    if exp_type != _ONF_COPY_FIELD:
        raise _bad(f"unknown ONF experimenter action {exp_type}")
    n_bits, src_ofs, dst_ofs = r.unpack(_COPY, "copy_field")
    return RegMove._checked(n_bits, src_ofs, dst_ofs, r, MOVE_ONF)


LATER_ACTIONS[ActionType.COPY_FIELD] = _parse_copy_field


EXPERIMENTER_ACTIONS[ONF_VENDOR] = _parse_onf


@nx_action(15, 32)
@dataclass(frozen=True, slots=True)
class OutputReg(NxAction):
    """``output:src[..]``: output to the port number held in a field."""

    src: Subfield
    max_len: int = 0
    form: int = 32

    subtype: ClassVar[int] = 32

    def nx_subtype(self) -> int:
        return self.form

    def _nx_body(self) -> bytes:
        if self.form == 15:
            return (
                _U16.pack(self.src.ofs_nbits)
                + self.src.ref.encode()
                + struct.pack("!H6x", self.max_len)
            )
        return struct.pack("!HH", self.src.ofs_nbits, self.max_len) + self.src.ref.encode()

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        if subtype == 15:
            (ofs_nbits,) = r.unpack(_U16, "output_reg")
            ref = FieldRef.parse(r)
            (max_len,) = r.unpack(struct.Struct("!H6x"), "output_reg")
        else:
            ofs_nbits, max_len = r.unpack(struct.Struct("!HH"), "output_reg2")
            ref = FieldRef.parse(r)
        src = Subfield.from_ofs_nbits(ref, ofs_nbits)
        src.check()
        return cls(src, max_len, subtype)


@nx_action(8)
@dataclass(frozen=True, slots=True)
class Note(NxAction):
    """``note:bytes``: does nothing (controllers hide their own annotations here)."""

    data: bytes = b""

    subtype: ClassVar[int] = 8

    def _nx_body(self) -> bytes:
        return self.data

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        return cls(r.rest())


@nx_action(17)
@dataclass(frozen=True, slots=True)
class Exit(NxAction):
    """``exit``: stop executing actions (the action set still runs)."""

    subtype: ClassVar[int] = 17

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        return cls()


@nx_action(18)
@dataclass(frozen=True, slots=True)
class NxDecTtl(NxAction):
    """``dec_ttl`` in its Nicira form."""

    subtype: ClassVar[int] = 18

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        return cls()


@nx_action(23)
@dataclass(frozen=True, slots=True)
class NxPushMpls(_Fixed):
    """``push_mpls:ethertype`` in its Nicira form (OpenFlow 1.0)."""

    ethertype: int

    subtype: ClassVar[int] = 23
    _fmt: ClassVar[struct.Struct] = struct.Struct("!H")


@nx_action(24)
@dataclass(frozen=True, slots=True)
class NxPopMpls(_Fixed):
    """``pop_mpls:ethertype`` in its Nicira form (OpenFlow 1.0)."""

    ethertype: int

    subtype: ClassVar[int] = 24
    _fmt: ClassVar[struct.Struct] = struct.Struct("!H")


@nx_action(25)
@dataclass(frozen=True, slots=True)
class NxSetMplsTtl(_Fixed):
    """``set_mpls_ttl(ttl)`` in its Nicira form."""

    ttl: int

    subtype: ClassVar[int] = 25
    _fmt: ClassVar[struct.Struct] = struct.Struct("!B")


@nx_action(26)
@dataclass(frozen=True, slots=True)
class NxDecMplsTtl(NxAction):
    """``dec_mpls_ttl`` in its Nicira form."""

    subtype: ClassVar[int] = 26

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        if any(r.rest()):
            raise _bad("dec_mpls_ttl: non-zero padding", BadActionCode.BAD_LEN)
        return cls()


@nx_action(48)
@dataclass(frozen=True, slots=True)
class NxDecNshTtl(NxAction):
    """``dec_nsh_ttl``: an NSH frame's TTL less one; at 1 or 0 this rule's actions end
    (Open vSwitch 3.1 sends it in every version, its 1.0 decoder refuses it)."""

    subtype: ClassVar[int] = 48

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        return cls()


@nx_action(30)
@dataclass(frozen=True, slots=True)
class NxSetMplsLabel(_Fixed):
    """``set_mpls_label(label)`` in its Nicira form (OpenFlow 1.0)."""

    label: int

    subtype: ClassVar[int] = 30
    _fmt: ClassVar[struct.Struct] = struct.Struct("!2xI")


@nx_action(31)
@dataclass(frozen=True, slots=True)
class NxSetMplsTc(_Fixed):
    """``set_mpls_tc(tc)`` in its Nicira form (OpenFlow 1.0)."""

    tc: int

    subtype: ClassVar[int] = 31
    _fmt: ClassVar[struct.Struct] = struct.Struct("!B")


@nx_action(5)
@dataclass(frozen=True, slots=True)
class PopQueue(NxAction):
    """``pop_queue``: back to the queue the packet came with."""

    subtype: ClassVar[int] = 5

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        return cls()


@nx_action(21)
@dataclass(frozen=True, slots=True)
class DecTtlIds(NxAction):
    """``dec_ttl(id,...)``: the packet-in for an expired TTL goes to these controllers."""

    ids: tuple[int, ...]

    subtype: ClassVar[int] = 21

    def _nx_body(self) -> bytes:
        return struct.pack("!H4x", len(self.ids)) + b"".join(_U16.pack(i) for i in self.ids)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        (n,) = r.unpack(struct.Struct("!H4x"), "dec_ttl ids")
        ids = tuple(r.unpack(_U16, "dec_ttl id")[0] for _ in range(n))
        if any(r.rest()):
            raise _bad("dec_ttl: non-zero padding", BadActionCode.BAD_LEN)
        return cls(ids)


@nx_action(34)
@dataclass(frozen=True, slots=True)
class Conjunction(_Fixed):
    """``conjunction(id,k/n)``: this rule is clause ``k`` (1-based) of ``n`` of
    conjunctive match ``id``. On the wire the clause is 0-based."""

    clause: int  # 0-based
    n_clauses: int
    id: int

    subtype: ClassVar[int] = 34
    _fmt: ClassVar[struct.Struct] = struct.Struct("!BBI")

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        a = _parse_fixed(cls, subtype, r)
        assert isinstance(a, Conjunction)
        if not 2 <= a.n_clauses <= 64 or a.clause >= a.n_clauses:
            raise _bad(
                f"conjunction clause {a.clause + 1}/{a.n_clauses}", BadActionCode.BAD_ARGUMENT
            )
        return a


@nx_action(27, 28)
@dataclass(frozen=True, slots=True)
class StackPush(NxAction):
    """``push:field[..]`` onto the translation's stack (``StackPop`` for ``pop``)."""

    field: Subfield

    subtype: ClassVar[int] = 27

    def _nx_body(self) -> bytes:
        return _U16.pack(self.field.ofs) + self.field.ref.encode() + _U16.pack(self.field.nbits)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        (ofs,) = r.unpack(_U16, "stack")
        ref = FieldRef.parse(r)
        (nbits,) = r.unpack(_U16, "stack")
        sf = Subfield(ref, ofs, nbits)
        sf.check()
        return (StackPop if subtype == 28 else StackPush)(sf)


@dataclass(frozen=True, slots=True)
class StackPop(StackPush):
    subtype: ClassVar[int] = 28


@nx_action(20)
@dataclass(frozen=True, slots=True)
class Controller(_Fixed):
    """``controller(reason=..,max_len=..,id=..)`` (NXAST_CONTROLLER)."""

    max_len: int = 0xFFFF
    controller_id: int = 0
    reason: int = 1  # OFPR_ACTION
    zero: int = 0

    subtype: ClassVar[int] = 20
    _fmt: ClassVar[struct.Struct] = struct.Struct("!HHBB")


# NXAC2PT_* property types of NXAST_CONTROLLER2
_C2_MAX_LEN, _C2_ID, _C2_REASON, _C2_USERDATA, _C2_PAUSE, _C2_METER = 0, 1, 2, 3, 4, 5


@nx_action(37)
@dataclass(frozen=True, slots=True)
class Controller2(NxAction):
    """``controller(...,userdata=..,pause)`` (NXAST_CONTROLLER2, properties)."""

    max_len: int = 0xFFFF
    controller_id: int = 0
    reason: int = 1
    userdata: bytes = b""
    pause: bool = False
    meter_id: int | None = None

    subtype: ClassVar[int] = 37

    def _nx_body(self) -> bytes:
        out = [b"\0" * 6]

        def prop(t: int, v: bytes) -> None:
            length = 4 + len(v)
            out.append(struct.pack("!HH", t, length) + v + b"\0" * pad8(length))

        # 16-bit properties carry two bytes of padding inside their length, as OVS writes
        if self.max_len != 0xFFFF:
            prop(_C2_MAX_LEN, _U16.pack(self.max_len) + b"\0\0")
        if self.controller_id:
            prop(_C2_ID, _U16.pack(self.controller_id) + b"\0\0")
        if self.reason != 1:
            prop(_C2_REASON, bytes((self.reason,)))
        if self.userdata:
            prop(_C2_USERDATA, self.userdata)
        if self.pause:
            prop(_C2_PAUSE, b"")
        if self.meter_id is not None:
            prop(_C2_METER, _U32.pack(self.meter_id))
        return b"".join(out)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        r.take(6, "controller2 padding")
        kw: dict[str, Any] = {}
        while r.remaining():
            t, length = r.unpack(struct.Struct("!HH"), "controller2 property")
            if length < 4:
                raise _bad("controller2 property length", BadActionCode.BAD_LEN)
            v = r.take(length - 4, "controller2 property")
            r.take(min(pad8(length), r.remaining()), "controller2 property padding")
            if t == _C2_MAX_LEN and len(v) in (2, 4):
                kw["max_len"] = _U16.unpack(v[:2])[0]
            elif t == _C2_ID and len(v) in (2, 4):
                kw["controller_id"] = _U16.unpack(v[:2])[0]
            elif t == _C2_REASON and len(v) == 1:
                kw["reason"] = v[0]
            elif t == _C2_USERDATA:
                kw["userdata"] = v
            elif t == _C2_PAUSE:
                kw["pause"] = True
            elif t == _C2_METER and len(v) == 4:
                kw["meter_id"] = _U32.unpack(v)[0]
            else:
                raise _bad(f"controller2 property {t}", BadActionCode.BAD_ARGUMENT)
        return cls(**kw)


@nx_action(42)
@dataclass(frozen=True, slots=True)
class Clone(NxAction):
    """``clone(actions)``: run ``actions`` on a copy; the packet continues unchanged."""

    actions: tuple[Action, ...] = ()

    subtype: ClassVar[int] = 42

    def _nx_body(self) -> bytes:
        return b"\0" * 6 + encode_actions(self.actions)

    def map_nested(self, f: Callable[[tuple[Action, ...]], tuple[Action, ...]]) -> NxAction:
        return Clone(f(self.actions))

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        r.take(6, "clone padding")
        return cls(parse_actions(r))


@nx_action(22)
@dataclass(frozen=True, slots=True)
class WriteMetadataAction(_Fixed):
    """``write_metadata:value/mask`` as an action."""

    metadata: int
    mask: int = (1 << 64) - 1

    subtype: ClassVar[int] = 22
    _fmt: ClassVar[struct.Struct] = struct.Struct("!6xQQ")


@nx_action(2, 9)
@dataclass(frozen=True, slots=True)
class SetTunnel(NxAction):
    """``set_tunnel:id`` (32-bit form 2, 64-bit form 9)."""

    tun_id: int
    form: int = 9

    subtype: ClassVar[int] = 9

    def nx_subtype(self) -> int:
        return self.form

    def _nx_body(self) -> bytes:
        if self.form == 2:
            return struct.pack("!2xI", self.tun_id)
        return struct.pack("!6xQ", self.tun_id)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        fmt = struct.Struct("!2xI" if subtype == 2 else "!6xQ")
        return cls(r.unpack(fmt, "set_tunnel")[0], subtype)


@nx_action(19)
@dataclass(frozen=True, slots=True)
class FinTimeout(_Fixed):
    """``fin_timeout(idle_timeout=..,hard_timeout=..)``."""

    fin_idle_timeout: int = 0
    fin_hard_timeout: int = 0

    subtype: ClassVar[int] = 19
    _fmt: ClassVar[struct.Struct] = struct.Struct("!HH2x")


@nx_action(49)
@dataclass(frozen=True, slots=True)
class CheckPktLarger(NxAction):
    """``check_pkt_larger(len)->dst``: 1 into a bit if the packet is longer than ``len``."""

    pkt_len: int
    dst: Subfield

    subtype: ClassVar[int] = 49

    def _nx_body(self) -> bytes:
        return struct.pack("!HH", self.pkt_len, self.dst.ofs) + self.dst.ref.encode()

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        pkt_len, ofs = r.unpack(struct.Struct("!HH"), "check_pkt_larger")
        dst = Subfield(FieldRef.parse(r), ofs, 1)
        dst.check()
        return cls(pkt_len, dst)


@nx_action(29, 38, 41)
@dataclass(frozen=True, slots=True)
class Sample(NxAction):
    """``sample(probability=..,collector_set_id=..,obs_domain_id=..,obs_point_id=..)``."""

    probability: int
    collector_set_id: int = 0
    obs_domain_id: int = 0
    obs_point_id: int = 0
    sampling_port: int = 0
    direction: int = 0
    form: int = 29

    subtype: ClassVar[int] = 29

    def nx_subtype(self) -> int:
        return self.form

    def _nx_body(self) -> bytes:
        base = struct.pack(
            "!HIII", self.probability, self.collector_set_id, self.obs_domain_id, self.obs_point_id
        )
        if self.form == 29:
            return base
        return base + struct.pack("!HB5x", self.sampling_port, self.direction)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        p, c, d, o = r.unpack(struct.Struct("!HIII"), "sample")
        port = direction = 0
        if subtype != 29:
            port, direction = r.unpack(struct.Struct("!HB5x"), "sample2")
        if p == 0:
            raise _bad("sample probability 0", BadActionCode.BAD_ARGUMENT)
        return cls(p, c, d, o, port, direction, subtype)


@nx_action(10)
@dataclass(frozen=True, slots=True)
class Multipath(NxAction):
    """``multipath(fields,basis,algorithm,n_links,arg,dst)``: a link number into ``dst``."""

    fields: int
    basis: int
    algorithm: int
    max_link: int
    arg: int
    dst: Subfield

    subtype: ClassVar[int] = 10

    def _nx_body(self) -> bytes:
        return (
            struct.pack(
                "!HH2xHHI2xH",
                self.fields,
                self.basis,
                self.algorithm,
                self.max_link,
                self.arg,
                self.dst.ofs_nbits,
            )
            + self.dst.ref.encode()
        )

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        f, b, alg, ml, arg, ofs_nbits = r.unpack(struct.Struct("!HH2xHHI2xH"), "multipath")
        dst = Subfield.from_ofs_nbits(FieldRef.parse(r), ofs_nbits)
        dst.check()
        return cls(f, b, alg, ml, arg, dst)


@nx_action(12, 13)
@dataclass(frozen=True, slots=True)
class BundleAction(NxAction):
    """``bundle(...)`` / ``bundle_load(...,dst,...)``: choose a live member port."""

    algorithm: int
    fields: int
    basis: int
    members: tuple[int, ...]
    dst: Subfield | None = None  # bundle_load only
    member_type: int = 0x00000002  # NXM_OF_IN_PORT header

    subtype: ClassVar[int] = 12

    def nx_subtype(self) -> int:
        return 12 if self.dst is None else 13

    def _nx_body(self) -> bytes:
        ofs_nbits = self.dst.ofs_nbits if self.dst is not None else 0
        dst = _U32.unpack(self.dst.ref.encode()[:4])[0] if self.dst is not None else 0
        head = struct.pack(
            "!HHHIHHI4x",
            self.algorithm,
            self.fields,
            self.basis,
            self.member_type,
            len(self.members),
            ofs_nbits,
            dst,
        )
        return head + b"".join(_U16.pack(m) for m in self.members)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        alg, f, b, mt, n, ofs_nbits, dst_h = r.unpack(struct.Struct("!HHHIHHI4x"), "bundle")
        members = tuple(r.unpack(_U16, "bundle member")[0] for _ in range(n))
        dst = None
        if subtype == 13:
            ref = FieldRef.parse(Reader(_U32.pack(dst_h)))
            dst = Subfield.from_ofs_nbits(ref, ofs_nbits)
            dst.check()
        return cls(alg, f, b, members, dst, mt)


# -- learn -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LearnSpec:
    """One flow_mod_spec of ``learn``: ``dst_type`` 0 match, 1 load, 2 output; the source
    is a subfield or an immediate value (``src_value`` bytes)."""

    dst_type: int
    nbits: int
    src: Subfield | None = None
    src_value: bytes | None = None
    dst: Subfield | None = None

    def encode(self) -> bytes:
        header = (0 if self.src is not None else 1 << 13) | (self.dst_type << 11) | self.nbits
        out = _U16.pack(header)
        if self.src is not None:
            out += self.src.ref.encode() + _U16.pack(self.src.ofs)
        else:
            assert self.src_value is not None
            out += self.src_value
        if self.dst is not None:
            out += self.dst.ref.encode() + _U16.pack(self.dst.ofs)
        return out

    @classmethod
    def parse(cls, r: Reader) -> LearnSpec | None:
        if r.remaining() < 2:
            r.rest()
            return None
        (header,) = r.unpack(_U16, "learn spec")
        if header == 0:
            if any(r.rest()):
                raise _bad("learn: bytes after the end marker", BadActionCode.BAD_LEN)
            return None
        nbits = header & 0x7FF
        src_imm = bool(header & (1 << 13))
        dst_type = (header >> 11) & 3
        if header >> 14 or dst_type == 3 or nbits == 0:
            raise _bad(f"learn spec header {header:#06x}", BadActionCode.BAD_ARGUMENT)
        src = value = dst = None
        if src_imm:
            value = r.take(2 * ((nbits + 15) // 16), "learn immediate")
        else:
            ref = FieldRef.parse(r)
            src = Subfield(ref, r.unpack(_U16, "learn src ofs")[0], nbits)
            src.check()
        if dst_type in (0, 1):
            ref = FieldRef.parse(r)
            dst = Subfield(ref, r.unpack(_U16, "learn dst ofs")[0], nbits)
            dst.check()
        return cls(dst_type, nbits, src, value, dst)

    def immediate(self) -> int:
        assert self.src_value is not None
        return int.from_bytes(self.src_value, "big") & ((1 << self.nbits) - 1)


# NX_LEARN_F_*
LEARN_SEND_FLOW_REM, LEARN_DELETE_LEARNED, LEARN_WRITE_RESULT = 1, 2, 4
_LEARN = struct.Struct("!HHHQHBxHH")


@nx_action(16, 45)
@dataclass(frozen=True, slots=True)
class Learn(NxAction):
    """``learn(table=..,idle_timeout=..,...,specs)``: add or refresh a rule built from
    the packet. ``limit``/``result_dst`` need the learn2 form (subtype 45)."""

    table_id: int
    specs: tuple[LearnSpec, ...]
    idle_timeout: int = 0
    hard_timeout: int = 0
    priority: int = 0x8000
    cookie: int = 0
    flags: int = 0
    fin_idle_timeout: int = 0
    fin_hard_timeout: int = 0
    limit: int = 0
    result_dst: Subfield | None = None
    form: int = 16

    subtype: ClassVar[int] = 16

    def nx_subtype(self) -> int:
        return self.form

    def _nx_body(self) -> bytes:
        out = _LEARN.pack(
            self.idle_timeout,
            self.hard_timeout,
            self.priority,
            self.cookie,
            self.flags,
            self.table_id,
            self.fin_idle_timeout,
            self.fin_hard_timeout,
        )
        if self.form == 45:
            ofs = self.result_dst.ofs if self.result_dst is not None else 0
            out += struct.pack("!IH2x", self.limit, ofs)
            if self.result_dst is not None:
                out += self.result_dst.ref.encode()
        return out + b"".join(s.encode() for s in self.specs)

    @classmethod
    def parse(cls, subtype: int, r: Reader) -> NxAction:
        idle, hard, prio, cookie, flags, table, fin_idle, fin_hard = r.unpack(_LEARN, "learn")
        limit = 0
        result_dst = None
        if subtype == 45:
            limit, ofs = r.unpack(struct.Struct("!IH2x"), "learn2")
            if flags & LEARN_WRITE_RESULT:
                result_dst = Subfield(FieldRef.parse(r), ofs, 1)
                result_dst.check()
        if table == 0xFF:
            raise _bad("learn into table 255", BadActionCode.BAD_ARGUMENT)
        specs = []
        while True:
            s = LearnSpec.parse(r)
            if s is None:
                break
            specs.append(s)
        return cls(
            table,
            tuple(specs),
            idle,
            hard,
            prio,
            cookie,
            flags,
            fin_idle,
            fin_hard,
            limit,
            result_dst,
            subtype,
        )
