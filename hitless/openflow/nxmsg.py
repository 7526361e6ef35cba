"""Nicira extension messages that mean the same in every OpenFlow version.

Session controls a connection applies to its own ``NxSession`` (the pipeline never sees
them): NXT_SET_FLOW_FORMAT, NXT_SET_PACKET_IN_FORMAT, NXT_FLOW_MOD_TABLE_ID,
NXT_SET_CONTROLLER_ID. And the encoders of the asynchronous messages whose form a
session chose with them: NXT_PACKET_IN, NXT_PACKET_IN2 and NXT_FLOW_REMOVED.
Every Nicira message is an OFPT_VENDOR/OFPT_EXPERIMENTER (type 4 in every version)
with vendor 0x2320 and a 32-bit subtype.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from hitless.openflow._wire import Reader, pad8
from hitless.openflow.constants import (
    NX_EXPERIMENTER_ID,
    OFP13_VERSION,
    OFP14_VERSION,
    ONF_EXPERIMENTER_ID,
    MsgType,
)
from hitless.openflow.match import Match
from hitless.openflow.messages import (
    EXPERIMENTER_PARSERS,
    HEADER,
    AsyncConfig,
    FlowRemoved,
    Message,
    PacketIn,
    reason_before14,
)
from hitless.openflow.nx import NxSession, NxType, encode_nxm, nx_header, padded, parse_nxm

__all__ = [
    "NxControl",
    "NxCtFlushZone",
    "NxMessage",
    "NxResume",
    "NxTlvTableMod",
    "NxTlvTableReply",
    "NxTlvTableRequest",
    "TlvCommand",
    "TlvMap",
    "NxFlowModTableId",
    "NxSetControllerId",
    "NxSetFlowFormat",
    "NxSetPacketInFormat",
    "encode_nx_flow_removed",
    "encode_nx_packet_in",
]

_U32 = struct.Struct("!I")


@dataclass(frozen=True, slots=True, kw_only=True)
class NxMessage(Message):
    """A Nicira message with a value of its own (vendor 0x2320, a 32-bit subtype)."""

    type: ClassVar[MsgType] = MsgType.EXPERIMENTER
    min_version: ClassVar[int] = 0x01
    subtype: ClassVar[NxType]

    def _body(self, version: int) -> bytes:
        return nx_header(self.subtype) + self._nx_body()

    def _nx_body(self) -> bytes:
        return b""

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        r.expect_end(cls.__name__)
        return cls(xid=xid)


@dataclass(frozen=True, slots=True, kw_only=True)
class NxControl(NxMessage):
    """A Nicira message that configures the session it arrives on."""

    def apply(self, nx: NxSession) -> None:
        raise NotImplementedError


def _register(cls: type[NxMessage]) -> type[NxMessage]:
    EXPERIMENTER_PARSERS[(NX_EXPERIMENTER_ID, int(cls.subtype))] = cls._parse_nx
    return cls


# -- The Geneve option map (NXT_TLV_TABLE_*) and conntrack flushes ---------------------

_TLV_MAP = struct.Struct("!HBBH2x")


@dataclass(frozen=True, slots=True)
class TlvMap:
    """``nx_tlv_map``: tunnel option (class, type, length) read as tun_metadata<index>."""

    option_class: int
    option_type: int
    option_len: int
    index: int


def _maps(r: Reader) -> tuple[TlvMap, ...]:
    out = []
    while r.remaining():
        out.append(TlvMap(*r.unpack(_TLV_MAP, "nx_tlv_map")))
    return tuple(out)


def _encode_maps(maps: tuple[TlvMap, ...]) -> bytes:
    return b"".join(
        _TLV_MAP.pack(m.option_class, m.option_type, m.option_len, m.index) for m in maps
    )


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxTlvTableRequest(NxMessage):
    """NXT_TLV_TABLE_REQUEST: what the switch's Geneve option map holds."""

    subtype: ClassVar[NxType] = NxType.TLV_TABLE_REQUEST


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxTlvTableReply(NxMessage):
    """NXT_TLV_TABLE_REPLY: capacity and the current mappings."""

    subtype: ClassVar[NxType] = NxType.TLV_TABLE_REPLY
    max_option_space: int = 256
    max_fields: int = 64
    maps: tuple[TlvMap, ...] = ()

    def _nx_body(self) -> bytes:
        head = struct.pack("!IH10x", self.max_option_space, self.max_fields)
        return head + _encode_maps(self.maps)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        space, fields = r.unpack(struct.Struct("!IH10x"), "tlv table reply")
        return cls(xid=xid, max_option_space=space, max_fields=fields, maps=_maps(r))


class TlvCommand:
    ADD = 0  # NXTTMC_ADD
    DELETE = 1
    CLEAR = 2


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxTlvTableMod(NxMessage):
    """NXT_TLV_TABLE_MOD: add, delete (by index) or clear option mappings."""

    subtype: ClassVar[NxType] = NxType.TLV_TABLE_MOD
    command: int
    maps: tuple[TlvMap, ...] = ()

    def _nx_body(self) -> bytes:
        return struct.pack("!H6x", self.command) + _encode_maps(self.maps)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        (command,) = r.unpack(struct.Struct("!H6x"), "tlv table mod")
        return cls(xid=xid, command=command, maps=_maps(r))


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxCtFlushZone(NxMessage):
    """NXT_CT_FLUSH_ZONE: forget every tracked connection of ``zone_id``."""

    subtype: ClassVar[NxType] = NxType.CT_FLUSH_ZONE
    zone_id: int

    def _nx_body(self) -> bytes:
        return struct.pack("!6xH", self.zone_id)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        (zone,) = r.unpack(struct.Struct("!6xH"), "ct flush zone")
        r.expect_end("ct flush zone")
        return cls(xid=xid, zone_id=zone)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxSetFlowFormat(NxControl):
    """NXT_SET_FLOW_FORMAT: OpenFlow 1.0 flow matches as ofp10_match (0) or NXM (2)."""

    subtype: ClassVar[NxType] = NxType.SET_FLOW_FORMAT
    format: int

    def _nx_body(self) -> bytes:
        return _U32.pack(self.format)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        (fmt,) = r.unpack(_U32, "set flow format")
        r.expect_end("set flow format")
        return cls(xid=xid, format=fmt)

    def apply(self, nx: NxSession) -> None:
        nx.set_flow_format(self.format)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxSetPacketInFormat(NxControl):
    """NXT_SET_PACKET_IN_FORMAT: standard (0), NXT_PACKET_IN (1), NXT_PACKET_IN2 (2)."""

    subtype: ClassVar[NxType] = NxType.SET_PACKET_IN_FORMAT
    format: int

    def _nx_body(self) -> bytes:
        return _U32.pack(self.format)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        (fmt,) = r.unpack(_U32, "set packet-in format")
        r.expect_end("set packet-in format")
        return cls(xid=xid, format=fmt)

    def apply(self, nx: NxSession) -> None:
        nx.set_packet_in_format(self.format)


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxFlowModTableId(NxControl):
    """NXT_FLOW_MOD_TABLE_ID: an OpenFlow 1.0 flow_mod carries its table in the high
    byte of ``command``."""

    subtype: ClassVar[NxType] = NxType.FLOW_MOD_TABLE_ID
    enable: bool

    def _nx_body(self) -> bytes:
        return struct.pack("!B7x", int(self.enable))

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        (enable,) = r.unpack(struct.Struct("!B7x"), "flow mod table id")
        r.expect_end("flow mod table id")
        return cls(xid=xid, enable=bool(enable))

    def apply(self, nx: NxSession) -> None:
        nx.flow_mod_table_id = self.enable


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxSetControllerId(NxControl):
    """NXT_SET_CONTROLLER_ID: the id the controller gives itself (in controller actions)."""

    subtype: ClassVar[NxType] = NxType.SET_CONTROLLER_ID
    controller_id: int

    def _nx_body(self) -> bytes:
        return struct.pack("!6xH", self.controller_id)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        (cid,) = r.unpack(struct.Struct("!6xH"), "set controller id")
        r.expect_end("set controller id")
        return cls(xid=xid, controller_id=cid)

    def apply(self, nx: NxSession) -> None:
        nx.controller_id = self.controller_id


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxSetAsyncConfig2(NxMessage):
    """NXT_SET_ASYNC_CONFIG2: OFPT_SET_ASYNC's 1.4 properties in 1.0-1.3 (Open vSwitch's
    way for a session there to ask for request forwarding, among others)."""

    subtype: ClassVar[NxType] = NxType.SET_ASYNC_CONFIG2
    config: AsyncConfig = AsyncConfig()

    def _nx_body(self) -> bytes:
        return self.config.encode(OFP14_VERSION)

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        return cls(xid=xid, config=AsyncConfig.parse(r, OFP14_VERSION))


ONFT_REQUESTFORWARD = 2350  # ONF's experimenter type for it in 1.3


def encode_request_forward(inner: bytes, version: int) -> bytes:
    """Open vSwitch's OFPT_REQUESTFORWARD before 1.4 (xid 0): NXT_REQUESTFORWARD in
    1.0-1.2, ONF's experimenter message 2350 in 1.3; ``inner`` is the group or meter mod
    as the session's version writes it (in 1.0, Nicira's group mod)."""
    if version == OFP13_VERSION:
        body = struct.pack("!II", ONF_EXPERIMENTER_ID, ONFT_REQUESTFORWARD) + inner
        return HEADER.pack(version, MsgType.EXPERIMENTER, HEADER.size + len(body), 0) + body
    return _frame(version, 0, NxType.REQUESTFORWARD, inner)


# -- asynchronous messages in Nicira form ---------------------------------------------

_NX_PACKET_IN = struct.Struct("!IHBBQH6x")
_NX_FLOW_REMOVED = struct.Struct("!QHBBIIHHQQ")
_PROP = struct.Struct("!HH")


def _frame(version: int, xid: int, subtype: int, body: bytes) -> bytes:
    data = nx_header(subtype) + body
    return HEADER.pack(version, MsgType.EXPERIMENTER, HEADER.size + len(data), xid) + data


def _prop(ptype: int, value: bytes, align8: bool = False) -> bytes:
    """One property: type, length (without padding), value, padding to 8."""
    if align8:  # 64-bit values start 8 bytes into the property
        body = b"\0\0\0\0" + value
    else:
        body = value
    return padded(_PROP.pack(ptype, 4 + len(body)) + body)


def _pin_metadata(msg: PacketIn) -> Match:
    return msg.match


def encode_nx_packet_in(msg: PacketIn, fmt: int, version: int) -> bytes:
    """``msg`` as NXT_PACKET_IN (``fmt`` 1) or NXT_PACKET_IN2 (``fmt`` 2)."""
    nxm = encode_nxm(_pin_metadata(msg))
    if fmt == 1:
        body = (
            _NX_PACKET_IN.pack(
                msg.buffer_id, msg.total_len, msg.reason, msg.table_id, msg.cookie, len(nxm)
            )
            + nxm
            + b"\0" * pad8(len(nxm))
            + b"\0\0"
            + msg.data
        )
        return _frame(version, msg.xid, NxType.PACKET_IN, body)
    props = [
        _prop(0, msg.data),  # NXPINT_PACKET
        _prop(1, _U32.pack(msg.total_len)),  # NXPINT_FULL_LEN
    ]
    if msg.buffer_id != 0xFFFFFFFF:
        props.append(_prop(2, _U32.pack(msg.buffer_id)))  # NXPINT_BUFFER_ID
    props += [
        _prop(3, bytes([msg.table_id])),  # NXPINT_TABLE_ID
        _prop(4, struct.pack("!Q", msg.cookie), align8=True),  # NXPINT_COOKIE
        _prop(5, bytes([msg.reason])),  # NXPINT_REASON
        _prop(6, nxm),  # NXPINT_METADATA
    ]
    if msg.userdata:
        props.append(_prop(7, msg.userdata))  # NXPINT_USERDATA
    if msg.continuation:
        # NXPINT_CONTINUATION: a nested property, its content 8 bytes in (as Open
        # vSwitch's ofpprop_put_nested); what is inside is ours (controllers copy it back)
        props.append(_prop(8, msg.continuation, align8=True))
    return _frame(version, msg.xid, NxType.PACKET_IN2, b"".join(props))


@_register
@dataclass(frozen=True, slots=True, kw_only=True)
class NxResume(NxMessage):
    """NXT_RESUME: a controller hands back a packet that a ``controller(pause)`` action
    sent it (possibly rewritten, its pipeline fields in ``metadata`` possibly changed)
    with the continuation it came with; the switch goes on with the actions after the
    pause. The properties are NXT_PACKET_IN2's; only the packet, the metadata and the
    continuation are used."""

    subtype: ClassVar[NxType] = NxType.RESUME
    data: bytes = b""
    metadata: Match = Match()
    continuation: bytes = b""

    def _nx_body(self) -> bytes:
        return b"".join(
            (
                _prop(0, self.data),
                _prop(6, encode_nxm(self.metadata)),
                _prop(8, self.continuation, align8=True),
            )
        )

    @classmethod
    def _parse_nx(cls, r: Reader, version: int, xid: int) -> Self:
        data = cont = None
        metadata = Match()
        while r.remaining():
            ptype, plen = r.unpack(_PROP, "NXT_RESUME property")
            if plen < 4:
                raise r.fail(f"NXT_RESUME property {ptype} of length {plen}")
            body = r.sub(plen - 4, "NXT_RESUME property")
            r.take(min(pad8(plen), r.remaining()), "property padding")
            if ptype == 0:  # NXPINT_PACKET
                data = body.rest()
            elif ptype == 6:  # NXPINT_METADATA
                metadata = parse_nxm(body, body.remaining())
            elif ptype == 8:  # NXPINT_CONTINUATION: nested, content 8 bytes in
                body.take(min(4, body.remaining()), "continuation padding")
                cont = body.rest()
        if data is None or cont is None:
            raise r.fail("NXT_RESUME without a packet or a continuation")
        return cls(xid=xid, data=data, metadata=metadata, continuation=cont)


def encode_nx_flow_removed(msg: FlowRemoved, version: int) -> bytes:
    """``msg`` as NXT_FLOW_REMOVED (an OpenFlow 1.0 session in the NXM flow format)."""
    nxm = encode_nxm(msg.match)
    body = _NX_FLOW_REMOVED.pack(
        msg.cookie, msg.priority, reason_before14(msg.reason), msg.table_id, msg.duration_sec,
        msg.duration_nsec, msg.idle_timeout, len(nxm), msg.packet_count, msg.byte_count,
    ) + padded(nxm)  # fmt: skip
    return _frame(version, msg.xid, NxType.FLOW_REMOVED, body)
