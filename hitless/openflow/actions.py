"""Actions (§7.2.5) and instructions (§7.2.4): small immutable values.

Each value has ``encode() -> bytes`` (header, body and padding to 8 bytes);
``parse_actions`` / ``parse_instructions`` read a list back and raise
``RemoteProtocolError`` with OFPBAC_* / OFPBIC_* codes for what the peer got wrong.
Experimenter actions are parsed by the codec registered for their experimenter id in
``EXPERIMENTER_ACTIONS`` (Nicira's: ``hitless.openflow.nx_actions``); others, and
experimenter instructions, are kept opaque so the pipeline can refuse them with
OFPBAC_BAD_EXPERIMENTER.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from hitless.openflow._wire import Reader, pad8
from hitless.openflow.constants import (
    ActionType,
    BadActionCode,
    BadInstructionCode,
    BadMatchCode,
    ErrorType,
    InstructionType,
)
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.match import Oxm, parse_oxm

_TL = struct.Struct("!HH")
_PAD4 = b"\0\0\0\0"
BAD_ACTION_LEN = (ErrorType.BAD_ACTION, BadActionCode.BAD_LEN)
BAD_INST_LEN = (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)


class Action:
    """Base of every action. ``type`` is the ofp_action_type."""

    __slots__ = ()
    type: ClassVar[ActionType]

    def _body(self) -> bytes:
        return _PAD4

    def encode(self) -> bytes:
        body = self._body()
        return _TL.pack(self.type, 4 + len(body)) + body


@dataclass(frozen=True, slots=True)
class Output(Action):
    """OFPAT_OUTPUT: send to ``port``; ``max_len`` bytes to the controller (§7.2.5)."""

    type: ClassVar[ActionType] = ActionType.OUTPUT
    port: int
    max_len: int = 0

    def _body(self) -> bytes:
        return struct.pack("!IH6x", self.port, self.max_len)


@dataclass(frozen=True, slots=True)
class CopyTtlOut(Action):
    type: ClassVar[ActionType] = ActionType.COPY_TTL_OUT


@dataclass(frozen=True, slots=True)
class CopyTtlIn(Action):
    type: ClassVar[ActionType] = ActionType.COPY_TTL_IN


@dataclass(frozen=True, slots=True)
class SetMplsTtl(Action):
    type: ClassVar[ActionType] = ActionType.SET_MPLS_TTL
    ttl: int

    def _body(self) -> bytes:
        return struct.pack("!B3x", self.ttl)


@dataclass(frozen=True, slots=True)
class DecMplsTtl(Action):
    type: ClassVar[ActionType] = ActionType.DEC_MPLS_TTL


@dataclass(frozen=True, slots=True)
class PushVlan(Action):
    type: ClassVar[ActionType] = ActionType.PUSH_VLAN
    ethertype: int = 0x8100

    def _body(self) -> bytes:
        return struct.pack("!H2x", self.ethertype)


@dataclass(frozen=True, slots=True)
class PopVlan(Action):
    type: ClassVar[ActionType] = ActionType.POP_VLAN


@dataclass(frozen=True, slots=True)
class PushMpls(Action):
    type: ClassVar[ActionType] = ActionType.PUSH_MPLS
    ethertype: int = 0x8847

    def _body(self) -> bytes:
        return struct.pack("!H2x", self.ethertype)


@dataclass(frozen=True, slots=True)
class PopMpls(Action):
    type: ClassVar[ActionType] = ActionType.POP_MPLS
    ethertype: int = 0x0800

    def _body(self) -> bytes:
        return struct.pack("!H2x", self.ethertype)


@dataclass(frozen=True, slots=True)
class SetQueue(Action):
    type: ClassVar[ActionType] = ActionType.SET_QUEUE
    queue_id: int

    def _body(self) -> bytes:
        return struct.pack("!I", self.queue_id)


@dataclass(frozen=True, slots=True)
class GroupAction(Action):
    """OFPAT_GROUP: process the packet through group ``group_id``."""

    type: ClassVar[ActionType] = ActionType.GROUP
    group_id: int

    def _body(self) -> bytes:
        return struct.pack("!I", self.group_id)


@dataclass(frozen=True, slots=True)
class SetNwTtl(Action):
    type: ClassVar[ActionType] = ActionType.SET_NW_TTL
    ttl: int

    def _body(self) -> bytes:
        return struct.pack("!B3x", self.ttl)


@dataclass(frozen=True, slots=True)
class DecNwTtl(Action):
    type: ClassVar[ActionType] = ActionType.DEC_NW_TTL


@dataclass(frozen=True, slots=True)
class SetField(Action):
    """OFPAT_SET_FIELD: one OXM TLV, padded so the action is a multiple of 8 bytes."""

    type: ClassVar[ActionType] = ActionType.SET_FIELD
    field: Oxm

    def _body(self) -> bytes:
        oxm = self.field.encode()
        return oxm + b"\0" * pad8(4 + len(oxm))


@dataclass(frozen=True, slots=True)
class PushPbb(Action):
    type: ClassVar[ActionType] = ActionType.PUSH_PBB
    ethertype: int = 0x88E7

    def _body(self) -> bytes:
        return struct.pack("!H2x", self.ethertype)


@dataclass(frozen=True, slots=True)
class PopPbb(Action):
    type: ClassVar[ActionType] = ActionType.POP_PBB


@dataclass(frozen=True, slots=True)
class ExperimenterAction(Action):
    """OFPAT_EXPERIMENTER: ``data`` is everything after the experimenter id."""

    type: ClassVar[ActionType] = ActionType.EXPERIMENTER
    experimenter: int
    data: bytes = b""

    def _body(self) -> bytes:
        if (8 + len(self.data)) % 8:
            raise LocalProtocolError("experimenter action length must be a multiple of 8")
        return struct.pack("!I", self.experimenter) + self.data


_EMPTY: dict[int, type[Action]] = {
    c.type: c for c in (CopyTtlOut, CopyTtlIn, DecMplsTtl, PopVlan, DecNwTtl, PopPbb)
}
_ETHERTYPE: dict[int, type[PushVlan] | type[PushMpls] | type[PopMpls] | type[PushPbb]] = {
    c.type: c for c in (PushVlan, PushMpls, PopMpls, PushPbb)
}


@dataclass(frozen=True, slots=True)
class MeterAction(Action):
    """OFPAT_METER (1.5 §7.2.6.9): 1.5's form of the meter instruction. Only the codec
    sees it: a 1.5 rule's leading meter action reads as a ``MeterInstruction``
    (``hitless.openflow.messages.parse_insts``) and is written back the same way."""

    type: ClassVar[ActionType] = ActionType.METER
    meter_id: int

    def _body(self) -> bytes:
        return struct.pack("!I", self.meter_id)


# experimenter id -> parser of the rest of the action (after the experimenter id)
EXPERIMENTER_ACTIONS: dict[int, Callable[[Reader], Action]] = {}
# standard action types whose value lives in another module (OpenFlow 1.5's COPY_FIELD is
# ``move``, registered by hitless.openflow.nx_actions) -> parser of the body after the header
LATER_ACTIONS: dict[int, Callable[[Reader], Action]] = {}


def _bad_action(msg: str, code: BadActionCode) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_ACTION, code)


def _parse_set_field(r: Reader) -> SetField:
    try:
        oxm = parse_oxm(r)
    except RemoteProtocolError as e:
        # §7.4.4: a bad field inside SET_FIELD is an action error, not a match error.
        if e.type == ErrorType.BAD_MATCH and e.code == BadMatchCode.BAD_FIELD:
            raise _bad_action(e.message, BadActionCode.BAD_SET_TYPE) from None
        raise _bad_action(e.message, BadActionCode.BAD_SET_LEN) from None
    if r.remaining() >= 8:
        raise _bad_action("SET_FIELD action longer than its field", BadActionCode.BAD_SET_LEN)
    return SetField(oxm)


def parse_action(r: Reader) -> Action:
    hdr = r.unpack(_TL, "action header")
    atype, length = hdr
    if length < 8 or length % 8:
        raise _bad_action(f"action length {length} is not a multiple of 8", BadActionCode.BAD_LEN)
    body = r.sub(length - 4, "action", BAD_ACTION_LEN)
    size = body.remaining()

    def fixed(n: int) -> None:
        if size != n:
            raise _bad_action(
                f"action type {atype} has length {length}, expected {n + 4}", BadActionCode.BAD_LEN
            )

    if atype == ActionType.OUTPUT:
        fixed(12)
        port, max_len = body.unpack(struct.Struct("!IH6x"))
        return Output(port, max_len)
    if atype in _EMPTY:
        fixed(4)
        return _EMPTY[atype]()
    if atype in _ETHERTYPE:
        fixed(4)
        (ethertype,) = body.unpack(struct.Struct("!H2x"))
        return _ETHERTYPE[atype](ethertype)
    if atype in (ActionType.SET_MPLS_TTL, ActionType.SET_NW_TTL):
        fixed(4)
        (ttl,) = body.unpack(struct.Struct("!B3x"))
        return SetMplsTtl(ttl) if atype == ActionType.SET_MPLS_TTL else SetNwTtl(ttl)
    if atype == ActionType.SET_QUEUE:
        fixed(4)
        return SetQueue(body.unpack(struct.Struct("!I"))[0])
    if atype == ActionType.GROUP:
        fixed(4)
        return GroupAction(body.unpack(struct.Struct("!I"))[0])
    if atype == ActionType.SET_FIELD:
        return _parse_set_field(body)
    if atype == ActionType.EXPERIMENTER:
        (experimenter,) = body.unpack(struct.Struct("!I"), "experimenter action")
        parser = EXPERIMENTER_ACTIONS.get(experimenter)
        if parser is not None:
            return parser(body)
        return ExperimenterAction(experimenter, body.rest())
    if atype == ActionType.METER:
        (meter_id,) = body.unpack(struct.Struct("!I"), "meter action")
        return MeterAction(meter_id)
    later = LATER_ACTIONS.get(atype)
    if later is not None:
        return later(body)
    raise _bad_action(f"unknown action type {atype}", BadActionCode.BAD_TYPE)


def parse_actions(r: Reader) -> tuple[Action, ...]:
    """Every action in ``r`` (an action list fills its container exactly)."""
    out = []
    while r.remaining():
        if r.remaining() < 4:
            raise _bad_action("trailing bytes in action list", BadActionCode.BAD_LEN)
        out.append(parse_action(r))
    return tuple(out)


def encode_actions(actions: tuple[Action, ...] | list[Action]) -> bytes:
    return b"".join(a.encode() for a in actions)


# -- Instructions (§7.2.4) -------------------------------------------------------------


class Instruction:
    """Base of every instruction. ``type`` is the ofp_instruction_type."""

    __slots__ = ()
    type: ClassVar[InstructionType]

    def _body(self) -> bytes:
        return _PAD4

    def encode(self) -> bytes:
        body = self._body()
        return _TL.pack(self.type, 4 + len(body)) + body


@dataclass(frozen=True, slots=True)
class GotoTable(Instruction):
    type: ClassVar[InstructionType] = InstructionType.GOTO_TABLE
    table_id: int

    def _body(self) -> bytes:
        return struct.pack("!B3x", self.table_id)


@dataclass(frozen=True, slots=True)
class WriteMetadata(Instruction):
    type: ClassVar[InstructionType] = InstructionType.WRITE_METADATA
    metadata: int
    mask: int = 0xFFFFFFFFFFFFFFFF

    def _body(self) -> bytes:
        return struct.pack("!4xQQ", self.metadata, self.mask)


@dataclass(frozen=True, slots=True)
class WriteActions(Instruction):
    type: ClassVar[InstructionType] = InstructionType.WRITE_ACTIONS
    actions: tuple[Action, ...] = ()

    def _body(self) -> bytes:
        return _PAD4 + encode_actions(self.actions)


@dataclass(frozen=True, slots=True)
class ApplyActions(Instruction):
    type: ClassVar[InstructionType] = InstructionType.APPLY_ACTIONS
    actions: tuple[Action, ...] = ()

    def _body(self) -> bytes:
        return _PAD4 + encode_actions(self.actions)


@dataclass(frozen=True, slots=True)
class ClearActions(Instruction):
    type: ClassVar[InstructionType] = InstructionType.CLEAR_ACTIONS


@dataclass(frozen=True, slots=True)
class MeterInstruction(Instruction):
    """OFPIT_METER: apply meter ``meter_id``."""

    type: ClassVar[InstructionType] = InstructionType.METER
    meter_id: int

    def _body(self) -> bytes:
        return struct.pack("!I", self.meter_id)


@dataclass(frozen=True, slots=True)
class ExperimenterInstruction(Instruction):
    type: ClassVar[InstructionType] = InstructionType.EXPERIMENTER
    experimenter: int
    data: bytes = b""

    def _body(self) -> bytes:
        if (8 + len(self.data)) % 8:
            raise LocalProtocolError("experimenter instruction length must be a multiple of 8")
        return struct.pack("!I", self.experimenter) + self.data


def _bad_inst(msg: str, code: BadInstructionCode) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_INSTRUCTION, code)


def _parse_with_actions(
    cls: type[WriteActions] | type[ApplyActions],
) -> Callable[[Reader], Instruction]:
    def parse(body: Reader) -> Instruction:
        body.take(4, "instruction padding")
        return cls(parse_actions(body))

    return parse


def parse_instruction(r: Reader) -> Instruction:
    itype, length = r.unpack(_TL, "instruction header")
    if length < 8 or length % 8:
        raise _bad_inst(
            f"instruction length {length} is not a multiple of 8", BadInstructionCode.BAD_LEN
        )
    body = r.sub(length - 4, "instruction", BAD_INST_LEN)
    size = body.remaining()

    def fixed(n: int) -> None:
        if size != n:
            raise _bad_inst(
                f"instruction type {itype} has length {length}", BadInstructionCode.BAD_LEN
            )

    if itype == InstructionType.GOTO_TABLE:
        fixed(4)
        return GotoTable(body.unpack(struct.Struct("!B3x"))[0])
    if itype == InstructionType.WRITE_METADATA:
        fixed(20)
        metadata, mask = body.unpack(struct.Struct("!4xQQ"))
        return WriteMetadata(metadata, mask)
    if itype == InstructionType.WRITE_ACTIONS:
        return _parse_with_actions(WriteActions)(body)
    if itype == InstructionType.APPLY_ACTIONS:
        return _parse_with_actions(ApplyActions)(body)
    if itype == InstructionType.CLEAR_ACTIONS:
        fixed(4)
        return ClearActions()
    if itype == InstructionType.METER:
        fixed(4)
        return MeterInstruction(body.unpack(struct.Struct("!I"))[0])
    if itype == InstructionType.EXPERIMENTER:
        (experimenter,) = body.unpack(struct.Struct("!I"), "experimenter instruction")
        return ExperimenterInstruction(experimenter, body.rest())
    raise _bad_inst(f"unknown instruction type {itype}", BadInstructionCode.UNKNOWN_INST)


def parse_instructions(r: Reader) -> tuple[Instruction, ...]:
    out = []
    while r.remaining():
        if r.remaining() < 4:
            raise _bad_inst("trailing bytes in instruction list", BadInstructionCode.BAD_LEN)
        out.append(parse_instruction(r))
    return tuple(out)


def encode_instructions(instructions: tuple[Instruction, ...] | list[Instruction]) -> bytes:
    return b"".join(i.encode() for i in instructions)


__all__ = [
    "EXPERIMENTER_ACTIONS",
    "INSTRUCTION_ORDER",
    "Action",
    "ApplyActions",
    "ClearActions",
    "CopyTtlIn",
    "CopyTtlOut",
    "DecMplsTtl",
    "DecNwTtl",
    "ExperimenterAction",
    "ExperimenterInstruction",
    "GotoTable",
    "GroupAction",
    "Instruction",
    "MeterAction",
    "MeterInstruction",
    "Output",
    "PopMpls",
    "PopPbb",
    "PopVlan",
    "PushMpls",
    "PushPbb",
    "PushVlan",
    "SetField",
    "SetMplsTtl",
    "SetNwTtl",
    "SetQueue",
    "WriteActions",
    "WriteMetadata",
    "encode_actions",
    "encode_instructions",
    "parse_actions",
    "parse_instructions",
]


# The order a rule's instructions run in (OpenFlow 1.3.5 §5.9), by instruction type.
INSTRUCTION_ORDER: dict[type[Instruction], int] = {
    MeterInstruction: 0,
    ApplyActions: 1,
    ClearActions: 2,
    WriteActions: 3,
    WriteMetadata: 4,
    GotoTable: 5,
}
