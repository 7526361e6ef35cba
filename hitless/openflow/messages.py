"""OpenFlow messages as small immutable values, and the message codec.

Every message is a frozen dataclass with ``encode(version) -> bytes``; ``decode(data)``
turns one complete message back into its value. Values do not carry the protocol version:
the same ``FlowMod`` encodes for OpenFlow 1.3 or 1.4 (fields 1.3 cannot carry, such as
``importance``, must then be zero). Where 1.4 changed a structure (ports, port stats,
port-mod, table-mod, async config, flow importance) both layouts are read and written.
Bundles, native in 1.4, travel in 1.3 as the ONF extension ``ovs-ofctl --bundle`` uses.

Multipart (statistics) messages are in ``multipart``; they register themselves here.
Decoding problems raise ``RemoteProtocolError`` already attached to the offending
message (xid and first bytes), ready for ``error.reply(version)``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar, Self

from hitless.openflow._wire import Reader, fixed_str, pad8, parse_str
from hitless.openflow.actions import (
    Action,
    ApplyActions,
    Instruction,
    MeterAction,
    MeterInstruction,
    encode_actions,
    encode_instructions,
    parse_actions,
    parse_instructions,
)
from hitless.openflow.constants import (
    MAX_PORT_NAME_LEN,
    NO_BUFFER,
    OFP10_VERSION,
    OFP11_VERSION,
    OFP12_VERSION,
    OFP13_VERSION,
    OFP14_VERSION,
    OFP15_VERSION,
    ONF_ET_BUNDLE_ADD_MESSAGE,
    ONF_ET_BUNDLE_CONTROL,
    ONF_EXPERIMENTER_ID,
    SUPPORTED_VERSIONS,
    AsyncConfigProp,
    BadActionCode,
    BadPropertyCode,
    BadRequestCode,
    BundleFailedCode,
    ErrorType,
    FlowModCommand,
    FlowModFlags,
    FlowRemovedReason,
    HelloElemType,
    MeterBandType,
    MeterModFailedCode,
    MsgType,
    OxmField,
    Port,
    PortDescPropType,
    PortModPropType,
    Table,
)
from hitless.openflow.constants import Group as GroupNo
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.match import Match, Oxm, parse_oxm_list
from hitless.openflow.ofp11 import (
    encode_actions11,
    encode_instructions11,
    encode_match11,
    parse_actions11,
    parse_instructions11,
    parse_match11,
    proto_of,
)

HEADER = struct.Struct("!BBHI")  # §7.1 ofp_header
MAX_LENGTH = 0xFFFF


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    type: int
    length: int
    xid: int


def decode_header(data: bytes) -> Header:
    """The 8-byte header at the start of ``data`` (which must hold at least 8 bytes)."""
    return Header(*HEADER.unpack_from(data))


def _bad_request(message: str, code: BadRequestCode) -> RemoteProtocolError:
    return RemoteProtocolError(message, ErrorType.BAD_REQUEST, code)


def _check_version(version: int) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise LocalProtocolError(f"cannot encode OpenFlow version {version:#x}")


# -- Matches, actions and instructions in the version's own form ------------------------
# (1.1 has its own match and set actions: hitless.openflow.ofp11; 1.2+ share OXM.)


def encode_match(match: Match, version: int) -> bytes:
    return encode_match11(match) if version == OFP11_VERSION else match.encode()


def parse_match(r: Reader, version: int) -> Match:
    return parse_match11(r) if version == OFP11_VERSION else Match.parse(r)


# 1.0's action codec, registered by ``ofp10`` (1.0's Nicira group messages carry 1.0
# actions in 1.5's bucket layout).
ACTION_CODECS: dict[
    int,
    tuple[
        Callable[[Reader, int | None], tuple[Action, ...]], Callable[[tuple[Action, ...]], bytes]
    ],
] = {OFP11_VERSION: (parse_actions11, encode_actions11)}


def encode_acts(actions: tuple[Action, ...], version: int) -> bytes:
    codec = ACTION_CODECS.get(version)
    return encode_actions(actions) if codec is None else codec[1](actions)


def parse_acts(r: Reader, version: int, proto: int | None = None) -> tuple[Action, ...]:
    codec = ACTION_CODECS.get(version)
    return parse_actions(r) if codec is None else codec[0](r, proto)


def group_layout15(version: int) -> bool:
    """Whether group mods, buckets and group descriptions have 1.5's layout: in 1.5, and
    in 1.0, whose Nicira group messages (NXT_GROUP_MOD, NXST_GROUP_DESC) use it."""
    return version >= OFP15_VERSION or version == OFP10_VERSION


def encode_insts(insts: tuple[Instruction, ...], version: int) -> bytes:
    if version == OFP11_VERSION:
        return encode_instructions11(insts)
    if version >= OFP15_VERSION:
        insts = _meter_as_action(insts)
    return encode_instructions(insts)


def parse_insts(r: Reader, version: int, match: Match) -> tuple[Instruction, ...]:
    if version == OFP11_VERSION:
        return parse_instructions11(r, proto_of(match))
    insts = parse_instructions(r)
    if version >= OFP15_VERSION:
        return _meter_from_action(insts)
    return insts


def _meter_as_action(insts: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
    """1.5's form (§7.2.6.9): the meter instruction as the first action of the apply
    actions, where Open vSwitch puts it (an apply actions of its own, in the meter
    instruction's place, where there is none)."""
    meter = next((i for i in insts if isinstance(i, MeterInstruction)), None)
    if meter is None:
        return insts
    act = MeterAction(meter.meter_id)
    if not any(isinstance(i, ApplyActions) for i in insts):  # in the instruction's place
        return tuple(ApplyActions((act,)) if i is meter else i for i in insts)
    rest = [i for i in insts if i is not meter]
    for n, i in enumerate(rest):
        if isinstance(i, ApplyActions):
            rest[n] = ApplyActions((act, *i.actions))
            break
    return tuple(rest)


def _meter_from_action(insts: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
    """A 1.5 rule's meter action as the meter instruction the pipeline knows. Open
    vSwitch takes it first in the apply actions; anywhere else it is refused."""
    out: list[Instruction] = []
    for i in insts:
        acts: tuple[Action, ...] = getattr(i, "actions", ())
        if not any(isinstance(a, MeterAction) for a in acts):
            out.append(i)
            continue
        first = acts[0]
        if not isinstance(i, ApplyActions) or not isinstance(first, MeterAction) or any(
            isinstance(a, MeterAction) for a in acts[1:]
        ):
            raise RemoteProtocolError(
                "a meter action must come first in the apply actions",
                ErrorType.BAD_ACTION,
                BadActionCode.UNSUPPORTED_ORDER,
            )
        out.append(MeterInstruction(first.meter_id))
        if len(acts) > 1:
            out.append(ApplyActions(acts[1:]))
    return tuple(out)


# -- Base ------------------------------------------------------------------------------

_MESSAGES: dict[int, type[Message]] = {}
# Versions whose layouts differ throughout (OpenFlow 1.0): version -> (decode, encode) of
# a module that translates them to these values (``ofp10`` registers itself).
VERSION_CODECS: dict[int, tuple[Callable[[bytes], Message], Callable[[Message], bytes]]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """Base of every message: ``xid`` and the class's ``type``."""

    type: ClassVar[MsgType]
    min_version: ClassVar[int] = OFP11_VERSION  # 1.0 has its own codec (ofp10)
    xid: int = 0

    def encode(self, version: int = OFP13_VERSION) -> bytes:
        _check_version(version)
        codec = VERSION_CODECS.get(version)
        if codec is not None:
            return codec[1](self)
        if version < self.min_version and self._wire_type(version) == self.type:
            raise LocalProtocolError(f"{type(self).__name__} needs version {self.min_version:#x}")
        body = self._body(version)
        length = HEADER.size + len(body)
        if length > MAX_LENGTH:
            raise LocalProtocolError(f"{type(self).__name__} of {length} bytes exceeds 65535")
        if not 0 <= self.xid <= 0xFFFFFFFF:
            raise LocalProtocolError(f"xid {self.xid} out of range")
        return HEADER.pack(version, self._wire_type(version), length, self.xid) + body

    def _wire_type(self, version: int) -> int:
        return self.type

    def _body(self, version: int) -> bytes:
        return b""

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        r.expect_end(cls.__name__)
        return cls(xid=xid)


def register(cls: type[Message]) -> type[Message]:
    _MESSAGES[cls.type] = cls
    return cls


def decode(data: bytes) -> Message:
    """One complete message (``data`` is exactly one message, header included)."""
    if len(data) < HEADER.size:
        error = _bad_request(
            f"message of {len(data)} bytes is shorter than a header", BadRequestCode.BAD_LEN
        )
        raise error.with_request(data, 0)
    hdr = decode_header(data)
    codec = VERSION_CODECS.get(hdr.version)
    if codec is not None:
        return codec[0](data)
    try:
        if hdr.length != len(data):
            raise _bad_request(
                f"header says {hdr.length} bytes, message has {len(data)}", BadRequestCode.BAD_LEN
            )
        if hdr.version not in SUPPORTED_VERSIONS and hdr.type != MsgType.HELLO:
            raise _bad_request(f"unsupported version {hdr.version:#x}", BadRequestCode.BAD_VERSION)
        cls = _MESSAGES.get(hdr.type)
        if cls is None or (hdr.version < cls.min_version and hdr.type != MsgType.HELLO):
            raise _bad_request(f"unknown message type {hdr.type}", BadRequestCode.BAD_TYPE)
        return cls._parse(Reader(data, HEADER.size), hdr.version, hdr.xid)
    except RemoteProtocolError as e:
        raise e.with_request(data, hdr.xid) from None


# -- OpenFlow 1.5 statistics as OXS fields (1.5.1 §7.2.4) -------------------------------

OXS_CLASS = 0x8002  # OFPXSC_OPENFLOW_BASIC
OXS_DURATION, OXS_IDLE_TIME, OXS_FLOW_COUNT, OXS_PACKET_COUNT, OXS_BYTE_COUNT = 0, 1, 3, 4, 5
_OXS_WIDTH = {OXS_DURATION: 8, OXS_IDLE_TIME: 8, OXS_FLOW_COUNT: 4, OXS_PACKET_COUNT: 8,
              OXS_BYTE_COUNT: 8}  # fmt: skip


def encode_oxs(fields: list[tuple[int, int]]) -> bytes:
    """An ``ofp_stats`` block: (field, value) pairs, padded to 8 bytes."""
    body = b"".join(
        struct.pack("!I", OXS_CLASS << 16 | f << 9 | _OXS_WIDTH[f])
        + v.to_bytes(_OXS_WIDTH[f], "big")
        for f, v in fields
    )
    length = 4 + len(body)
    return struct.pack("!HH", 0, length) + body + b"\0" * pad8(length)


def parse_oxs(r: Reader) -> dict[int, int]:
    """An ``ofp_stats`` block and its padding: {field: value} (unknown fields skipped)."""
    _, length = r.unpack(_ELEM, "ofp_stats")
    if length < 4:
        raise r.fail(f"ofp_stats length {length} < 4")
    body = r.sub(length - 4, "ofp_stats")
    r.take(min(pad8(length), r.remaining()), "ofp_stats padding")
    out = {}
    while body.remaining():
        (hdr,) = body.unpack(struct.Struct("!I"), "OXS header")
        value = body.take(hdr & 0xFF, "OXS value")
        if hdr >> 16 == OXS_CLASS:
            out[(hdr >> 9) & 0x7F] = int.from_bytes(value, "big")
    return out


# -- Symmetric messages (§7.5) ---------------------------------------------------------

_ELEM = struct.Struct("!HH")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Message):
    """OFPT_HELLO (§7.5.1). ``versions`` is the version bitmap (empty: no element)."""

    type: ClassVar[MsgType] = MsgType.HELLO
    versions: frozenset[int] = frozenset()

    def _body(self, version: int) -> bytes:
        if not self.versions:
            return b""
        top = max(self.versions)
        if min(self.versions) < 0 or top > 0xFFFF:
            raise LocalProtocolError(f"bad version bitmap {sorted(self.versions)}")
        words = [0] * (top // 32 + 1)
        for v in self.versions:
            words[v // 32] |= 1 << (v % 32)
        length = 4 + 4 * len(words)
        return (
            _ELEM.pack(HelloElemType.VERSIONBITMAP, length)
            + struct.pack(f"!{len(words)}I", *words)
            + b"\0" * pad8(length)
        )

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        versions: set[int] = set()
        # §7.5.1: elements the switch does not understand are ignored.
        while r.remaining() >= 4:
            etype, length = r.unpack(_ELEM, "hello element")
            if length < 4:
                raise r.fail(f"hello element length {length} < 4")
            body = r.sub(length - 4, "hello element")
            r.take(min(pad8(length), r.remaining()), "hello element padding")
            if etype == HelloElemType.VERSIONBITMAP:
                i = 0
                while body.remaining() >= 4:
                    (word,) = body.unpack(struct.Struct("!I"))
                    versions.update(i * 32 + b for b in range(32) if word >> b & 1)
                    i += 1
        return cls(xid=xid, versions=frozenset(versions))


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorMsg(Message):
    """OFPT_ERROR (§7.4.4). For type OFPET_EXPERIMENTER ``code`` is the exp_code."""

    type: ClassVar[MsgType] = MsgType.ERROR
    err_type: int
    code: int
    data: bytes = b""
    experimenter: int | None = None

    def _body(self, version: int) -> bytes:
        if (self.err_type == ErrorType.EXPERIMENTER) != (self.experimenter is not None):
            raise LocalProtocolError("experimenter id is given iff the type is OFPET_EXPERIMENTER")
        if self.experimenter is not None:
            return struct.pack("!HHI", self.err_type, self.code, self.experimenter) + self.data
        return struct.pack("!HH", self.err_type, self.code) + self.data

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        etype, code = r.unpack(struct.Struct("!HH"), "error")
        experimenter = None
        if etype == ErrorType.EXPERIMENTER:
            (experimenter,) = r.unpack(struct.Struct("!I"), "experimenter error")
        return cls(xid=xid, err_type=etype, code=code, data=r.rest(), experimenter=experimenter)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class EchoRequest(Message):
    """OFPT_ECHO_REQUEST (§7.5.2)."""

    type: ClassVar[MsgType] = MsgType.ECHO_REQUEST
    data: bytes = b""

    def _body(self, version: int) -> bytes:
        return self.data

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        return cls(xid=xid, data=r.rest())


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class EchoReply(Message):
    """OFPT_ECHO_REPLY (§7.5.3): carries the request's xid and data back."""

    type: ClassVar[MsgType] = MsgType.ECHO_REPLY
    data: bytes = b""

    def _body(self, version: int) -> bytes:
        return self.data

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        return cls(xid=xid, data=r.rest())


_EXP = struct.Struct("!II")
# (experimenter id, exp_type) -> parser of the body after the experimenter header, for
# experimenter messages with a value of their own (``nxmsg`` registers Nicira's).
EXPERIMENTER_PARSERS: dict[tuple[int, int], Callable[[Reader, int, int], Message]] = {}


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class Experimenter(Message):
    """OFPT_EXPERIMENTER (§7.5.4). A switch answers unknown ones with OFPBRC_BAD_EXPERIMENTER."""

    type: ClassVar[MsgType] = MsgType.EXPERIMENTER
    experimenter: int
    exp_type: int
    data: bytes = b""

    def _body(self, version: int) -> bytes:
        return _EXP.pack(self.experimenter, self.exp_type) + self.data

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        experimenter, exp_type = r.unpack(_EXP, "experimenter header")
        if version == OFP13_VERSION and experimenter == ONF_EXPERIMENTER_ID:
            if exp_type == ONF_ET_BUNDLE_CONTROL:
                return BundleControl._parse_body(r, version, xid)  # type: ignore[return-value]
            if exp_type == ONF_ET_BUNDLE_ADD_MESSAGE:
                return BundleAddMessage._parse_body(r, version, xid)  # type: ignore[return-value]
        parser = EXPERIMENTER_PARSERS.get((experimenter, exp_type))
        if parser is not None:
            return parser(r, version, xid)  # type: ignore[return-value]
        return cls(xid=xid, experimenter=experimenter, exp_type=exp_type, data=r.rest())

    def unsupported(self) -> RemoteProtocolError:
        """The error a switch that knows no experimenter extension answers with (§7.4.4)."""
        return RemoteProtocolError(
            f"unsupported experimenter {self.experimenter:#x}",
            ErrorType.BAD_REQUEST,
            BadRequestCode.BAD_EXPERIMENTER,
            xid=self.xid,
        )


# -- Handshake and configuration (§7.3.1, §7.3.2) ----------------------------------------


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class FeaturesRequest(Message):
    type: ClassVar[MsgType] = MsgType.FEATURES_REQUEST


_FEATURES = struct.Struct("!QIBB2xII")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class FeaturesReply(Message):
    """OFPT_FEATURES_REPLY (§7.3.1)."""

    type: ClassVar[MsgType] = MsgType.FEATURES_REPLY
    datapath_id: int
    n_buffers: int = 0
    n_tables: int = 254
    auxiliary_id: int = 0
    capabilities: int = 0
    reserved: int = 0
    ports: tuple[PortDesc, ...] = ()  # OpenFlow 1.0-1.2 only (later versions: PORT_DESC)

    def _body(self, version: int) -> bytes:
        if version >= OFP13_VERSION and self.ports:
            raise LocalProtocolError("a 1.3+ features reply lists no ports")
        if version < OFP13_VERSION and self.auxiliary_id:
            raise LocalProtocolError("auxiliary connections need OpenFlow 1.3")
        return _FEATURES.pack(
            self.datapath_id,
            self.n_buffers,
            self.n_tables,
            self.auxiliary_id,
            self.capabilities,
            self.reserved,
        ) + b"".join(p.encode(version) for p in self.ports)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        dpid, nb, nt, aux, caps, res = r.unpack(_FEATURES, "features reply")
        ports = []
        if version < OFP13_VERSION:  # 1.1/1.2: ofp_port list, no auxiliary id (pad)
            aux = 0
            while r.remaining():
                ports.append(PortDesc.parse(r, version))
        r.expect_end("features reply")
        return cls(
            xid=xid,
            datapath_id=dpid,
            n_buffers=nb,
            n_tables=nt,
            auxiliary_id=aux,
            capabilities=caps,
            reserved=res,
            ports=tuple(ports),
        )


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class GetConfigRequest(Message):
    type: ClassVar[MsgType] = MsgType.GET_CONFIG_REQUEST


_CONFIG = struct.Struct("!HH")


@dataclass(frozen=True, slots=True, kw_only=True)
class _SwitchConfig(Message):
    flags: int = 0
    miss_send_len: int = 128

    def _body(self, version: int) -> bytes:
        return _CONFIG.pack(self.flags, self.miss_send_len)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        flags, miss = r.unpack(_CONFIG, "switch config")
        r.expect_end("switch config")
        return cls(xid=xid, flags=flags, miss_send_len=miss)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class GetConfigReply(_SwitchConfig):
    """OFPT_GET_CONFIG_REPLY (§7.3.2)."""

    type: ClassVar[MsgType] = MsgType.GET_CONFIG_REPLY


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetConfig(_SwitchConfig):
    """OFPT_SET_CONFIG (§7.3.2)."""

    type: ClassVar[MsgType] = MsgType.SET_CONFIG


# -- Ports (§7.2.1; 1.4.1 §7.2.1 with properties) --------------------------------------

_PORT13 = struct.Struct("!I4x6s2x16sIIIIIIII")
_PORT14 = struct.Struct("!IH2x6s2x16sII")
_PORT14_ETH = struct.Struct("!HH4xIIIIII")


@dataclass(frozen=True, slots=True, kw_only=True)
class PortDesc:
    """``ofp_port`` (§7.2.1): a port's description, in PORT_STATUS and PORT_DESC replies."""

    port_no: int
    hw_addr: bytes = b"\0" * 6
    name: str = ""
    config: int = 0
    state: int = 0
    curr: int = 0
    advertised: int = 0
    supported: int = 0
    peer: int = 0
    curr_speed: int = 0
    max_speed: int = 0

    def encode(self, version: int) -> bytes:
        name = fixed_str(self.name, MAX_PORT_NAME_LEN, "port name")
        if len(self.hw_addr) != 6:
            raise LocalProtocolError("hw_addr must be 6 bytes")
        if version <= OFP13_VERSION:
            return _PORT13.pack(
                self.port_no, self.hw_addr, name, self.config, self.state, self.curr,
                self.advertised, self.supported, self.peer, self.curr_speed, self.max_speed,
            )  # fmt: skip
        eth = _PORT14_ETH.pack(
            PortDescPropType.ETHERNET, _PORT14_ETH.size, self.curr, self.advertised,
            self.supported, self.peer, self.curr_speed, self.max_speed,
        )  # fmt: skip
        length = _PORT14.size + len(eth)
        return _PORT14.pack(self.port_no, length, self.hw_addr, name, self.config, self.state) + eth

    @classmethod
    def parse(cls, r: Reader, version: int) -> PortDesc:
        if version <= OFP13_VERSION:
            (no, hw, name, config, state, curr, adv, sup, peer, cs, ms) = r.unpack(_PORT13, "port")
            return cls(
                port_no=no, hw_addr=hw, name=parse_str(name), config=config, state=state,
                curr=curr, advertised=adv, supported=sup, peer=peer, curr_speed=cs, max_speed=ms,
            )  # fmt: skip
        head = r.peek(struct.Struct("!IH"))
        if head is None or head[1] < _PORT14.size:
            raise r.fail("truncated port description")
        body = r.sub(head[1], "port description")
        no, _, hw, name, config, state = body.unpack(_PORT14)
        values = dict(curr=0, advertised=0, supported=0, peer=0, curr_speed=0, max_speed=0)
        for ptype, prop in _properties(body):
            if ptype == PortDescPropType.ETHERNET:
                c, a, s, p, cs, ms = prop.unpack(struct.Struct("!4xIIIIII"), "ethernet property")
                values = dict(
                    curr=c, advertised=a, supported=s, peer=p, curr_speed=cs, max_speed=ms
                )
        return cls(
            port_no=no, hw_addr=hw, name=parse_str(name), config=config, state=state, **values
        )


def _properties(r: Reader) -> list[tuple[int, Reader]]:
    """1.4 TLV properties (type, length incl. header, padded to 8) filling ``r``."""
    out = []
    while r.remaining():
        ptype, length = r.unpack(_ELEM, "property header")
        if length < 4:
            raise RemoteProtocolError(f"property length {length} < 4", ErrorType.BAD_PROPERTY, 1)
        body = r.sub(length - 4, "property", (ErrorType.BAD_PROPERTY, 1))
        r.take(min(pad8(length), r.remaining()), "property padding")
        out.append((ptype, body))
    return out


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class PortStatus(Message):
    """OFPT_PORT_STATUS (§7.4.3)."""

    type: ClassVar[MsgType] = MsgType.PORT_STATUS
    reason: int
    desc: PortDesc

    def _body(self, version: int) -> bytes:
        return struct.pack("!B7x", self.reason) + self.desc.encode(version)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        (reason,) = r.unpack(struct.Struct("!B7x"), "port status")
        desc = PortDesc.parse(r, version)
        r.expect_end("port status")
        return cls(xid=xid, reason=reason, desc=desc)


_PORT_MOD13 = struct.Struct("!I4x6s2xIII4x")
_PORT_MOD14 = struct.Struct("!I4x6s2xII")
_PORT_MOD14_ETH = struct.Struct("!HHI")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class PortMod(Message):
    """OFPT_PORT_MOD (§7.3.4.4; 1.4.1 moves ``advertise`` into an ethernet property)."""

    type: ClassVar[MsgType] = MsgType.PORT_MOD
    port_no: int
    hw_addr: bytes = b"\0" * 6
    config: int = 0
    mask: int = 0
    advertise: int = 0

    def _body(self, version: int) -> bytes:
        if version <= OFP13_VERSION:
            return _PORT_MOD13.pack(
                self.port_no, self.hw_addr, self.config, self.mask, self.advertise
            )
        return _PORT_MOD14.pack(
            self.port_no, self.hw_addr, self.config, self.mask
        ) + _PORT_MOD14_ETH.pack(PortModPropType.ETHERNET, 8, self.advertise)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        if version <= OFP13_VERSION:
            no, hw, config, mask, adv = r.unpack(_PORT_MOD13, "port mod")
        else:
            no, hw, config, mask = r.unpack(_PORT_MOD14, "port mod")
            adv = 0
            for ptype, prop in _properties(r):
                if ptype == PortModPropType.ETHERNET:
                    (adv,) = prop.unpack(struct.Struct("!I"), "ethernet property")
        r.expect_end("port mod")
        return cls(xid=xid, port_no=no, hw_addr=hw, config=config, mask=mask, advertise=adv)


# -- Packets (§7.4.1, §7.4.2, §7.3.7) --------------------------------------------------

_PACKET_IN = struct.Struct("!IHBBQ")
_PACKET_IN12 = struct.Struct("!IHBB")
_PACKET_IN11 = struct.Struct("!IIIHBB")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class PacketIn(Message):
    """OFPT_PACKET_IN (§7.4.1): the match carries in_port and pipeline fields."""

    type: ClassVar[MsgType] = MsgType.PACKET_IN
    buffer_id: int = NO_BUFFER
    total_len: int = 0
    reason: int = 0
    table_id: int = 0
    cookie: int = 0
    match: Match = Match()
    data: bytes = b""
    # controller(userdata=...): sent only in NXT_PACKET_IN2 (nxmsg), not in OFPT_PACKET_IN
    userdata: bytes = b""
    # controller(pause): the switch's private state to resume from (NXT_PACKET_IN2's
    # NXPINT_CONTINUATION, handed back unchanged in NXT_RESUME); opaque to controllers
    continuation: bytes = b""

    def _body(self, version: int) -> bytes:
        if version == OFP11_VERSION:  # 1.1.0 §A.4.1: ports instead of a match, no cookie
            port = self.match.get(OxmField.IN_PORT)
            in_port = 0 if port is None else port.value
            return (
                _PACKET_IN11.pack(self.buffer_id, in_port, in_port, self.total_len,
                                  self.reason, self.table_id)  # fmt: skip
                + self.data
            )
        if version == OFP12_VERSION:  # 1.2 §A.4.1: no cookie
            head = _PACKET_IN12.pack(self.buffer_id, self.total_len, self.reason, self.table_id)
        else:
            head = _PACKET_IN.pack(
                self.buffer_id, self.total_len, self.reason, self.table_id, self.cookie
            )
        return head + self.match.encode() + b"\0\0" + self.data

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        if version == OFP11_VERSION:
            buffer_id, in_port, _, total_len, reason, table_id = r.unpack(
                _PACKET_IN11, "packet-in"
            )
            return cls(
                xid=xid, buffer_id=buffer_id, total_len=total_len, reason=reason,
                table_id=table_id, match=Match((Oxm(OxmField.IN_PORT, in_port),)), data=r.rest(),
            )  # fmt: skip
        if version == OFP12_VERSION:
            buffer_id, total_len, reason, table_id = r.unpack(_PACKET_IN12, "packet-in")
            cookie = 0
        else:
            buffer_id, total_len, reason, table_id, cookie = r.unpack(_PACKET_IN, "packet-in")
        match = Match.parse(r)
        r.take(2, "packet-in padding")
        return cls(
            xid=xid, buffer_id=buffer_id, total_len=total_len, reason=reason,
            table_id=table_id, cookie=cookie, match=match, data=r.rest(),
        )  # fmt: skip


_FLOW_REMOVED = struct.Struct("!QHBBIIHHQQ")
_FLOW_REMOVED15 = struct.Struct("!BBHHHQ")


def reason_before14(reason: int) -> int:
    """A flow-removed reason as a version before 1.4 says it: a meter's deletion (a 1.4
    reason) is a delete, as Open vSwitch sends it; eviction stays (Open vSwitch's too)."""
    return FlowRemovedReason.DELETE if reason == FlowRemovedReason.METER_DELETE else reason


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRemoved(Message):
    """OFPT_FLOW_REMOVED (§7.4.2)."""

    type: ClassVar[MsgType] = MsgType.FLOW_REMOVED
    cookie: int = 0
    priority: int = 0
    reason: int = 0
    table_id: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    packet_count: int = 0
    byte_count: int = 0
    match: Match = Match()

    def _body(self, version: int) -> bytes:
        if version >= OFP15_VERSION:
            head = _FLOW_REMOVED15.pack(
                self.table_id, self.reason, self.priority, self.idle_timeout,
                self.hard_timeout, self.cookie,
            )  # fmt: skip
            stats = encode_oxs([
                (OXS_DURATION, self.duration_sec << 32 | self.duration_nsec),
                (OXS_PACKET_COUNT, self.packet_count), (OXS_BYTE_COUNT, self.byte_count),
            ])  # fmt: skip
            return head + self.match.encode() + stats
        return (
            _FLOW_REMOVED.pack(
                self.cookie,
                self.priority,
                self.reason if version >= OFP14_VERSION else reason_before14(self.reason),
                self.table_id,
                self.duration_sec,
                self.duration_nsec,
                self.idle_timeout,
                self.hard_timeout,
                self.packet_count,
                self.byte_count,
            )  # fmt: skip
            + encode_match(self.match, version)
        )

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        if version >= OFP15_VERSION:
            t, reason, p, it, ht, c = r.unpack(_FLOW_REMOVED15, "flow removed")
            match = Match.parse(r)
            st = parse_oxs(r)
            d = st.get(OXS_DURATION, 0)
            return cls(
                xid=xid, cookie=c, priority=p, reason=reason, table_id=t,
                duration_sec=d >> 32, duration_nsec=d & 0xFFFFFFFF, idle_timeout=it,
                hard_timeout=ht, packet_count=st.get(OXS_PACKET_COUNT, 0),
                byte_count=st.get(OXS_BYTE_COUNT, 0), match=match,
            )  # fmt: skip
        c, p, reason, t, ds, dn, it, ht, pc, bc = r.unpack(_FLOW_REMOVED, "flow removed")
        match = parse_match(r, version)
        r.expect_end("flow removed")
        return cls(
            xid=xid, cookie=c, priority=p, reason=reason, table_id=t, duration_sec=ds,
            duration_nsec=dn, idle_timeout=it, hard_timeout=ht, packet_count=pc,
            byte_count=bc, match=match,
        )  # fmt: skip


_PACKET_OUT = struct.Struct("!IIH6x")
_PACKET_OUT15 = struct.Struct("!IH2x")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class PacketOut(Message):
    """OFPT_PACKET_OUT (§7.3.7)."""

    type: ClassVar[MsgType] = MsgType.PACKET_OUT
    buffer_id: int = NO_BUFFER
    in_port: int = Port.CONTROLLER
    actions: tuple[Action, ...] = ()
    data: bytes = b""

    def _body(self, version: int) -> bytes:
        actions = encode_acts(self.actions, version)
        if version >= OFP15_VERSION:  # 1.5: the in_port is a field of a match
            match = Match((Oxm(OxmField.IN_PORT, self.in_port),)).encode()
            return _PACKET_OUT15.pack(self.buffer_id, len(actions)) + match + actions + self.data
        return _PACKET_OUT.pack(self.buffer_id, self.in_port, len(actions)) + actions + self.data

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        if version >= OFP15_VERSION:
            buffer_id, actions_len = r.unpack(_PACKET_OUT15, "packet-out")
            match = Match.parse(r)
            port = match.get(OxmField.IN_PORT)
            in_port = port.value if port is not None else Port.CONTROLLER
        else:
            buffer_id, in_port, actions_len = r.unpack(_PACKET_OUT, "packet-out")
        actions = parse_acts(r.sub(actions_len, "packet-out actions"), version)
        return cls(xid=xid, buffer_id=buffer_id, in_port=in_port, actions=actions, data=r.rest())


# -- Flow, group, table, meter modifications (§7.3.3, §7.3.4) ----------------------------

_FLOW_MOD = struct.Struct("!QQBBHHHIIIHH")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowMod(Message):
    """OFPT_FLOW_MOD (§7.3.4.2). ``importance`` is 1.4 only (a pad field in 1.3)."""

    type: ClassVar[MsgType] = MsgType.FLOW_MOD
    cookie: int = 0
    cookie_mask: int = 0
    table_id: int = 0
    command: int = FlowModCommand.ADD
    idle_timeout: int = 0
    hard_timeout: int = 0
    priority: int = 0x8000
    buffer_id: int = NO_BUFFER
    out_port: int = Port.ANY
    out_group: int = GroupNo.ANY
    flags: int = 0
    importance: int = 0
    match: Match = Match()
    instructions: tuple[Instruction, ...] = ()

    def _body(self, version: int) -> bytes:
        if version == OFP13_VERSION and self.importance:
            raise LocalProtocolError("flow importance needs OpenFlow 1.4")
        return (
            _FLOW_MOD.pack(
                self.cookie,
                self.cookie_mask,
                self.table_id,
                self.command,
                self.idle_timeout,
                self.hard_timeout,
                self.priority,
                self.buffer_id,
                self.out_port,
                self.out_group,
                self.flags,
                self.importance,
            )  # fmt: skip
            + encode_match(self.match, version)
            + encode_insts(self.instructions, version)
        )

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        (c, cm, t, cmd, it, ht, p, b, op, og, flags, imp) = r.unpack(_FLOW_MOD, "flow mod")
        if version == OFP11_VERSION and cmd == FlowModCommand.ADD:
            flags |= FlowModFlags.RESET_COUNTS  # 1.1 has no such flag: an add always resets
        match = parse_match(r, version)
        instructions = parse_insts(r, version, match)
        return cls(
            xid=xid, cookie=c, cookie_mask=cm, table_id=t, command=cmd, idle_timeout=it,
            hard_timeout=ht, priority=p, buffer_id=b, out_port=op, out_group=og, flags=flags,
            importance=imp if version >= OFP14_VERSION else 0, match=match,
            instructions=instructions,
        )  # fmt: skip


_BUCKET = struct.Struct("!HHII4x")
_BUCKET15 = struct.Struct("!HHI")  # length, action_array_len, bucket_id
_GROUP_MOD15 = struct.Struct("!HBxIH2xI")
BUCKET_ALL = 0xFFFFFFFF  # OFPG_BUCKET_ALL (1.5)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """``ofp_bucket`` (§7.3.4.3)."""

    weight: int = 0
    watch_port: int = Port.ANY
    watch_group: int = GroupNo.ANY
    actions: tuple[Action, ...] = ()
    bucket_id: int | None = None  # 1.5 (None: its position in the group)

    def encode(self, version: int = OFP13_VERSION, index: int = 0) -> bytes:
        actions = encode_acts(self.actions, version)
        if group_layout15(version):
            # 1.5.1 §7.3.4.3: ofp_bucket with weight/watch properties after the actions.
            props = b""
            if self.weight:
                props += struct.pack("!HHH2x", 0, 8, self.weight)  # OFPGBPT_WEIGHT (length 8)
            if self.watch_port != Port.ANY:
                props += struct.pack("!HHI", 1, 8, self.watch_port)  # OFPGBPT_WATCH_PORT
            if self.watch_group != GroupNo.ANY:
                props += struct.pack("!HHI", 2, 8, self.watch_group)  # OFPGBPT_WATCH_GROUP
            bid = index if self.bucket_id is None else self.bucket_id
            length = _BUCKET15.size + len(actions) + len(props)
            return _BUCKET15.pack(length, len(actions), bid) + actions + props
        return (
            _BUCKET.pack(
                _BUCKET.size + len(actions), self.weight, self.watch_port, self.watch_group
            )
            + actions
        )

    @classmethod
    def parse(cls, r: Reader, version: int = OFP13_VERSION) -> Bucket:
        if group_layout15(version):
            return cls._parse15(r, version)
        head = r.peek(struct.Struct("!H"))
        if head is None or head[0] < _BUCKET.size:
            raise RemoteProtocolError(
                "bad bucket length",
                ErrorType.GROUP_MOD_FAILED,
                12,  # OFPGMFC_BAD_BUCKET
            )
        body = r.sub(head[0], "bucket")
        _, weight, watch_port, watch_group = body.unpack(_BUCKET)
        return cls(
            weight=weight, watch_port=watch_port, watch_group=watch_group,
            actions=parse_acts(body, version),
        )  # fmt: skip

    @classmethod
    def _parse15(cls, r: Reader, version: int) -> Bucket:
        bad = (ErrorType.GROUP_MOD_FAILED, 12)  # OFPGMFC_BAD_BUCKET
        head = r.peek(_BUCKET15)
        if head is None or head[0] < _BUCKET15.size + head[1]:
            raise r.fail("bad bucket length", bad)
        body = r.sub(head[0], "bucket", bad)
        _, alen, bid = body.unpack(_BUCKET15)
        actions = parse_acts(body.sub(alen, "bucket actions"), version)
        values = {"weight": 0, "watch_port": int(Port.ANY), "watch_group": int(GroupNo.ANY)}
        for ptype, prop in _properties(body):
            if ptype == 0:
                (values["weight"],) = prop.unpack(struct.Struct("!H"), "weight")
            elif ptype == 1:
                (values["watch_port"],) = prop.unpack(struct.Struct("!I"), "watch port")
            elif ptype == 2:
                (values["watch_group"],) = prop.unpack(struct.Struct("!I"), "watch group")
        return cls(actions=actions, bucket_id=bid, **values)


def parse_buckets(r: Reader, version: int = OFP13_VERSION) -> tuple[Bucket, ...]:
    out: list[Bucket] = []
    while r.remaining():
        b = Bucket.parse(r, version)
        if b.bucket_id == len(out):  # the default: its position (what encode writes)
            b = replace(b, bucket_id=None)
        out.append(b)
    return tuple(out)


def encode_buckets(buckets: tuple[Bucket, ...], version: int) -> bytes:
    return b"".join(b.encode(version, i) for i, b in enumerate(buckets))


NTR_VENDOR_ID = 0x0000154D  # Netronome's experimenter id
NTRT_SELECTION_METHOD = 1
SELECTION_METHODS = ("hash", "dp_hash")  # what Open vSwitch accepts
_NTR_SELECTION = struct.Struct("!HHII4x16sQ")


@dataclass(frozen=True, slots=True)
class SelectionMethod:
    """How a select group picks its bucket: Open vSwitch's group property (Netronome's
    NTR_SELECTION_METHOD, an experimenter group property of 1.5's group layout, so also
    in the Nicira group messages of 1.0). ``hash`` hashes ``fields`` (each field's value
    is the mask of the bits hashed) with ``param`` as basis; ``dp_hash`` leaves it to the
    datapath's own hash."""

    method: str
    param: int = 0
    fields: tuple[Oxm, ...] = ()

    def encode(self) -> bytes:
        fields = b"".join(f.encode() for f in self.fields)
        length = _NTR_SELECTION.size + len(fields)
        head = _NTR_SELECTION.pack(0xFFFF, length, NTR_VENDOR_ID, NTRT_SELECTION_METHOD,
                                   self.method.encode(), self.param)  # fmt: skip
        return head + fields + b"\0" * pad8(length)


def parse_group_properties(r: Reader) -> SelectionMethod | None:
    """1.5 group properties (after a group's buckets): the selection method, the only
    one there is; anything else is refused as Open vSwitch refuses it."""
    bad = ErrorType.BAD_PROPERTY
    found: SelectionMethod | None = None
    while r.remaining():
        ptype, length = r.unpack(_ELEM, "group property header")
        if ptype != 0xFFFF:
            raise RemoteProtocolError(f"group property type {ptype}", bad, BadPropertyCode.BAD_TYPE)
        if length < _NTR_SELECTION.size:
            raise RemoteProtocolError(f"group property length {length}", bad, BadPropertyCode.BAD_LEN)
        body = r.sub(length - 4, "group property", (bad, BadPropertyCode.BAD_LEN))
        r.take(min(pad8(length), r.remaining()), "group property padding")
        exp, exp_type, name, param = body.unpack(struct.Struct("!II4x16sQ"), "selection method")
        if exp != NTR_VENDOR_ID:
            raise RemoteProtocolError(f"group property experimenter {exp:#x}", bad,
                                      BadPropertyCode.BAD_EXPERIMENTER)  # fmt: skip
        if exp_type != NTRT_SELECTION_METHOD:
            raise RemoteProtocolError(f"NTR group property {exp_type}", bad,
                                      BadPropertyCode.BAD_EXP_TYPE)  # fmt: skip
        method = name.split(b"\0", 1)[0].decode("ascii", "replace")
        if method not in SELECTION_METHODS:
            raise RemoteProtocolError(f"selection method {method!r}", bad, BadPropertyCode.BAD_VALUE)
        if found is not None:
            raise RemoteProtocolError("two selection methods", bad, BadPropertyCode.DUP_TYPE)
        found = SelectionMethod(method, param, parse_oxm_list(body))
    return found


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMod(Message):
    """OFPT_GROUP_MOD (§7.3.4.3)."""

    type: ClassVar[MsgType] = MsgType.GROUP_MOD
    command: int
    group_type: int = 0
    group_id: int
    buckets: tuple[Bucket, ...] = ()
    command_bucket_id: int = BUCKET_ALL  # 1.5: which bucket INSERT/REMOVE_BUCKET refers to
    selection: SelectionMethod | None = None  # 1.5 layout only (1.1-1.4 cannot carry it)

    def _body(self, version: int) -> bytes:
        buckets = encode_buckets(self.buckets, version)
        if group_layout15(version):
            return (
                _GROUP_MOD15.pack(
                    self.command,
                    self.group_type,
                    self.group_id,
                    len(buckets),
                    self.command_bucket_id,
                )
                + buckets
                + (self.selection.encode() if self.selection is not None else b"")
            )
        return struct.pack("!HBxI", self.command, self.group_type, self.group_id) + buckets

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        if group_layout15(version):
            command, gtype, gid, blen, cbid = r.unpack(_GROUP_MOD15, "group mod")
            buckets = parse_buckets(r.sub(blen, "group mod buckets"), version)
            return cls(
                xid=xid, command=command, group_type=gtype, group_id=gid, buckets=buckets,
                command_bucket_id=cbid, selection=parse_group_properties(r),
            )  # fmt: skip
        command, gtype, gid = r.unpack(struct.Struct("!HBxI"), "group mod")
        return cls(
            xid=xid, command=command, group_type=gtype, group_id=gid, buckets=parse_buckets(r, version)
        )


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TableMod(Message):
    """OFPT_TABLE_MOD (§7.3.3). ``properties`` (raw, 1.4 only) holds eviction/vacancy."""

    type: ClassVar[MsgType] = MsgType.TABLE_MOD
    table_id: int = Table.ALL
    config: int = 0
    properties: bytes = b""

    def _body(self, version: int) -> bytes:
        if version <= OFP13_VERSION and self.properties:
            raise LocalProtocolError("table-mod properties need OpenFlow 1.4")
        return struct.pack("!B3xI", self.table_id, self.config) + self.properties

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        table_id, config = r.unpack(struct.Struct("!B3xI"), "table mod")
        props = r.rest() if version >= OFP14_VERSION else b""
        r.expect_end("table mod")
        return cls(xid=xid, table_id=table_id, config=config, properties=props)


_BAND = struct.Struct("!HHII")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterBand:
    """``ofp_meter_band_*`` (§7.3.4.5): drop, DSCP remark or experimenter."""

    type: int = MeterBandType.DROP
    rate: int = 0
    burst_size: int = 0
    prec_level: int = 0  # DSCP_REMARK only
    experimenter: int = 0  # EXPERIMENTER only
    data: bytes = b""  # EXPERIMENTER only: bytes after the experimenter id

    def encode(self) -> bytes:
        if self.type == MeterBandType.DROP:
            tail = b"\0" * 4
        elif self.type == MeterBandType.DSCP_REMARK:
            tail = struct.pack("!B3x", self.prec_level)
        else:
            tail = struct.pack("!I", self.experimenter) + self.data
        if len(tail) % 8 != 4:
            raise LocalProtocolError("meter band length must be a multiple of 8")
        return _BAND.pack(self.type, _BAND.size + len(tail), self.rate, self.burst_size) + tail

    @classmethod
    def parse(cls, r: Reader) -> MeterBand:
        bad_band = (ErrorType.METER_MOD_FAILED, MeterModFailedCode.BAD_BAND)
        head = r.peek(struct.Struct("!HH"))
        if head is None or head[1] < 16 or head[1] % 8:
            raise r.fail("bad meter band length", bad_band)
        body = r.sub(head[1], "meter band", bad_band)
        btype, length, rate, burst = body.unpack(_BAND)
        if btype == MeterBandType.DROP and length == 16:
            return cls(type=btype, rate=rate, burst_size=burst)
        if btype == MeterBandType.DSCP_REMARK and length == 16:
            (prec,) = body.unpack(struct.Struct("!B3x"))
            return cls(type=btype, rate=rate, burst_size=burst, prec_level=prec)
        if btype == MeterBandType.EXPERIMENTER:
            (exp,) = body.unpack(struct.Struct("!I"))
            return cls(type=btype, rate=rate, burst_size=burst, experimenter=exp, data=body.rest())
        raise r.fail(f"bad meter band type {btype} or length {length}", bad_band)


def parse_bands(r: Reader) -> tuple[MeterBand, ...]:
    out = []
    while r.remaining():
        out.append(MeterBand.parse(r))
    return tuple(out)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterMod(Message):
    """OFPT_METER_MOD (§7.3.4.5)."""

    type: ClassVar[MsgType] = MsgType.METER_MOD
    min_version: ClassVar[int] = OFP13_VERSION
    command: int
    flags: int = 0
    meter_id: int
    bands: tuple[MeterBand, ...] = ()

    def _body(self, version: int) -> bytes:
        return struct.pack("!HHI", self.command, self.flags, self.meter_id) + b"".join(
            b.encode() for b in self.bands
        )

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        command, flags, meter_id = r.unpack(struct.Struct("!HHI"), "meter mod")
        return cls(xid=xid, command=command, flags=flags, meter_id=meter_id, bands=parse_bands(r))


# -- Barrier, queues, roles, async config (§7.3.6, §7.3.8-10) ---------------------------


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class BarrierRequest(Message):
    type: ClassVar[MsgType] = MsgType.BARRIER_REQUEST


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class BarrierReply(Message):
    type: ClassVar[MsgType] = MsgType.BARRIER_REPLY


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueGetConfigRequest(Message):
    """OFPT_QUEUE_GET_CONFIG_REQUEST (§7.3.6)."""

    type: ClassVar[MsgType] = MsgType.QUEUE_GET_CONFIG_REQUEST
    port: int = Port.ANY

    def _body(self, version: int) -> bytes:
        return struct.pack("!I4x", self.port)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        (port,) = r.unpack(struct.Struct("!I4x"), "queue get config")
        r.expect_end("queue get config")
        return cls(xid=xid, port=port)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueGetConfigReply(Message):
    """OFPT_QUEUE_GET_CONFIG_REPLY (§7.3.6); ``queues`` is the raw ofp_packet_queue list."""

    type: ClassVar[MsgType] = MsgType.QUEUE_GET_CONFIG_REPLY
    port: int = Port.ANY
    queues: bytes = b""

    def _body(self, version: int) -> bytes:
        return struct.pack("!I4x", self.port) + self.queues

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        (port,) = r.unpack(struct.Struct("!I4x"), "queue get config reply")
        return cls(xid=xid, port=port, queues=r.rest())


_ROLE = struct.Struct("!I4xQ")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Role(Message):
    role: int
    generation_id: int = 0

    def _body(self, version: int) -> bytes:
        return _ROLE.pack(self.role, self.generation_id)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        role, gen = r.unpack(_ROLE, "role")
        r.expect_end("role")
        return cls(xid=xid, role=role, generation_id=gen)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class RoleRequest(_Role):
    """OFPT_ROLE_REQUEST (§7.3.9)."""

    type: ClassVar[MsgType] = MsgType.ROLE_REQUEST
    min_version: ClassVar[int] = OFP12_VERSION


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class RoleReply(_Role):
    """OFPT_ROLE_REPLY (§7.3.9)."""

    type: ClassVar[MsgType] = MsgType.ROLE_REPLY
    min_version: ClassVar[int] = OFP12_VERSION


_ASYNC13 = (
    AsyncConfigProp.PACKET_IN_MASTER,
    AsyncConfigProp.PACKET_IN_SLAVE,
    AsyncConfigProp.PORT_STATUS_MASTER,
    AsyncConfigProp.PORT_STATUS_SLAVE,
    AsyncConfigProp.FLOW_REMOVED_MASTER,
    AsyncConfigProp.FLOW_REMOVED_SLAVE,
)

# The properties a 1.4+ GET_ASYNC reply lists (Open vSwitch 3.1: all but experimenter).
_ASYNC14 = tuple(p for p in AsyncConfigProp if p <= AsyncConfigProp.REQUESTFORWARD_MASTER)

# The reasons 1.3 defines for each of its six masks (packet-in: no match, action, invalid
# TTL; port status: add, delete, modify; flow removed: idle, hard, delete, group delete).
_REASONS13 = {
    AsyncConfigProp.PACKET_IN_MASTER: 0x7,
    AsyncConfigProp.PACKET_IN_SLAVE: 0x7,
    AsyncConfigProp.PORT_STATUS_MASTER: 0x7,
    AsyncConfigProp.PORT_STATUS_SLAVE: 0x7,
    AsyncConfigProp.FLOW_REMOVED_MASTER: 0xF,
    AsyncConfigProp.FLOW_REMOVED_SLAVE: 0xF,
}


@dataclass(frozen=True, slots=True)
class AsyncConfig:
    """Which asynchronous messages a connection wants (§7.3.10): ``(property, mask)`` pairs
    keyed by ``AsyncConfigProp``, sorted. 1.3 always carries the first six; a 1.4
    SET_ASYNC may carry any subset (the rest is left unchanged)."""

    masks: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, masks: dict[int, int]) -> AsyncConfig:
        return cls(tuple(sorted((int(k), v) for k, v in masks.items())))

    def get(self, prop: int, default: int = 0) -> int:
        for k, v in self.masks:
            if k == prop:
                return v
        return default

    def updated(self, other: AsyncConfig) -> AsyncConfig:
        """This configuration with ``other``'s masks laid over it."""
        merged = dict(self.masks)
        merged.update(other.masks)
        return AsyncConfig.of(merged)

    def for_version(self, version: int | None) -> AsyncConfig:
        """What a GET_ASYNC reply in ``version`` says of this configuration: 1.3 has only
        the first six masks, and only the reasons 1.3 defines in them (Open vSwitch keeps
        one configuration and encodes it per version); 1.4 and later list every property
        up to request forwarding, 0 where none was set."""
        if version != OFP13_VERSION:
            return AsyncConfig.of({**{p: 0 for p in _ASYNC14}, **dict(self.masks)})
        return AsyncConfig.of({p: self.get(p) & _REASONS13[p] for p in _ASYNC13})

    def encode(self, version: int) -> bytes:
        if version == OFP13_VERSION:
            have = dict(self.masks)
            missing = [p.name for p in _ASYNC13 if p not in have]
            if missing:
                raise LocalProtocolError(f"1.3 async config needs the six masks {missing}")
            return struct.pack("!6I", *(have[p] for p in _ASYNC13))
        return b"".join(struct.pack("!HHI", k, 8, v) for k, v in self.masks)

    @classmethod
    def parse(cls, r: Reader, version: int) -> AsyncConfig:
        if version == OFP13_VERSION:
            values = r.unpack(struct.Struct("!6I"), "async config")
            r.expect_end("async config")
            return cls.of(dict(zip(_ASYNC13, values, strict=True)))
        masks = {}
        for ptype, prop in _properties(r):
            if ptype in masks:
                raise RemoteProtocolError(
                    f"duplicate async property {ptype}", ErrorType.BAD_PROPERTY, 4
                )
            if ptype >= AsyncConfigProp.EXPERIMENTER_SLAVE:
                raise RemoteProtocolError(
                    "experimenter async property", ErrorType.BAD_PROPERTY, 5
                )  # OFPBPC_BAD_EXPERIMENTER
            (masks[ptype],) = prop.unpack(struct.Struct("!I"), "async property")
            prop.expect_end("async property")
        return cls.of(masks)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class GetAsyncRequest(Message):
    type: ClassVar[MsgType] = MsgType.GET_ASYNC_REQUEST
    min_version: ClassVar[int] = OFP13_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class _Async(Message):
    min_version: ClassVar[int] = OFP13_VERSION
    config: AsyncConfig = AsyncConfig()

    def _body(self, version: int) -> bytes:
        return self.config.encode(version)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        return cls(xid=xid, config=AsyncConfig.parse(r, version))


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class GetAsyncReply(_Async):
    """OFPT_GET_ASYNC_REPLY (§7.3.10)."""

    type: ClassVar[MsgType] = MsgType.GET_ASYNC_REPLY


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetAsync(_Async):
    """OFPT_SET_ASYNC (§7.3.10)."""

    type: ClassVar[MsgType] = MsgType.SET_ASYNC


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestForward(Message):
    """OFPT_REQUESTFORWARD (1.4.1 §7.4.6): a group or meter mod another controller made,
    sent on to the controllers that asked for it (its own xid 0; the inner message keeps
    the xid it came with)."""

    type: ClassVar[MsgType] = MsgType.REQUESTFORWARD
    min_version: ClassVar[int] = OFP14_VERSION
    message: Message = field(default_factory=lambda: BarrierRequest())

    def _body(self, version: int) -> bytes:
        return self.message.encode(version)

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        return cls(xid=xid, message=decode(r.rest()))


# -- Bundles (1.4.1 §7.3.9; the ONF EXT-230 experimenter form in 1.3) --------------------

_BUNDLE_CTRL = struct.Struct("!IHH")
_BUNDLE_ADD = struct.Struct("!I2xH")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Bundle(Message):
    onf_type: ClassVar[int]

    def _wire_type(self, version: int) -> int:
        return MsgType.EXPERIMENTER if version == OFP13_VERSION else self.type

    def _body(self, version: int) -> bytes:
        body = self._bundle_body(version)
        if version == OFP13_VERSION:
            return _EXP.pack(ONF_EXPERIMENTER_ID, self.onf_type) + body
        return body

    def _bundle_body(self, version: int) -> bytes:
        raise NotImplementedError

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        return cls._parse_body(r, version, xid)

    @classmethod
    def _parse_body(cls, r: Reader, version: int, xid: int) -> Self:
        raise NotImplementedError


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class BundleControl(_Bundle):
    """OFPT_BUNDLE_CONTROL: open, close, commit or discard bundle ``bundle_id``."""

    type: ClassVar[MsgType] = MsgType.BUNDLE_CONTROL
    min_version: ClassVar[int] = OFP14_VERSION
    onf_type: ClassVar[int] = ONF_ET_BUNDLE_CONTROL
    bundle_id: int
    ctrl_type: int
    flags: int = 0
    properties: bytes = b""

    def _bundle_body(self, version: int) -> bytes:
        return _BUNDLE_CTRL.pack(self.bundle_id, self.ctrl_type, self.flags) + self.properties

    @classmethod
    def _parse_body(cls, r: Reader, version: int, xid: int) -> Self:
        bid, ctype, flags = r.unpack(_BUNDLE_CTRL, "bundle control")
        return cls(xid=xid, bundle_id=bid, ctrl_type=ctype, flags=flags, properties=r.rest())


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class BundleAddMessage(_Bundle):
    """OFPT_BUNDLE_ADD_MESSAGE: ``message`` joins bundle ``bundle_id`` (same xid, §7.3.9.6)."""

    type: ClassVar[MsgType] = MsgType.BUNDLE_ADD_MESSAGE
    min_version: ClassVar[int] = OFP14_VERSION
    onf_type: ClassVar[int] = ONF_ET_BUNDLE_ADD_MESSAGE
    bundle_id: int
    flags: int = 0
    message: Message = field(default_factory=lambda: BarrierRequest())
    properties: bytes = b""
    # the bundled message's bytes as received (not part of the value: errors quote them)
    raw: bytes = field(default=b"", compare=False, repr=False)

    def _bundle_body(self, version: int) -> bytes:
        inner = self.message.encode(version)
        out = _BUNDLE_ADD.pack(self.bundle_id, self.flags) + inner
        if self.properties:
            out += b"\0" * pad8(len(inner)) + self.properties
        return out

    @classmethod
    def _parse_body(cls, r: Reader, version: int, xid: int) -> Self:
        bid, flags = r.unpack(_BUNDLE_ADD, "bundle add")
        head = r.peek(HEADER)
        if head is None or head[2] < HEADER.size or head[2] > r.remaining():
            raise RemoteProtocolError(
                "bad bundled message length", ErrorType.BUNDLE_FAILED, BundleFailedCode.MSG_BAD_LEN
            )
        inner_data = r.take(head[2])
        if head[0] != version:
            raise _bad_request("bundled message has another version", BadRequestCode.BAD_VERSION)
        if head[3] != xid:
            raise RemoteProtocolError(
                "bundled message xid differs", ErrorType.BUNDLE_FAILED, BundleFailedCode.MSG_BAD_XID
            )
        if head[1] in (MsgType.HELLO, MsgType.BUNDLE_CONTROL, MsgType.BUNDLE_ADD_MESSAGE) or (
            head[1] == MsgType.EXPERIMENTER and version == OFP13_VERSION
        ):
            raise RemoteProtocolError(
                f"message type {head[1]} cannot be bundled",
                ErrorType.BUNDLE_FAILED,
                BundleFailedCode.MSG_UNSUP,
            )
        try:
            inner = decode(inner_data)
        except RemoteProtocolError as e:
            raise RemoteProtocolError(e.message, e.type, e.code) from None
        props = b""
        if r.remaining():
            r.take(min(pad8(head[2]), r.remaining()), "bundled message padding")
            props = r.rest()
        return cls(xid=xid, bundle_id=bid, flags=flags, message=inner, properties=props,
                   raw=inner_data)  # fmt: skip


__all__ = [
    "EXPERIMENTER_PARSERS",
    "HEADER",
    "VERSION_CODECS",
    "AsyncConfig",
    "BarrierReply",
    "BarrierRequest",
    "Bucket",
    "BundleAddMessage",
    "BundleControl",
    "RequestForward",
    "EchoReply",
    "EchoRequest",
    "ErrorMsg",
    "Experimenter",
    "FeaturesReply",
    "FeaturesRequest",
    "FlowMod",
    "FlowRemoved",
    "GetAsyncReply",
    "GetAsyncRequest",
    "GetConfigReply",
    "GetConfigRequest",
    "GroupMod",
    "Header",
    "Hello",
    "Message",
    "MeterBand",
    "MeterMod",
    "PacketIn",
    "PacketOut",
    "PortDesc",
    "PortMod",
    "PortStatus",
    "QueueGetConfigReply",
    "QueueGetConfigRequest",
    "RoleReply",
    "RoleRequest",
    "SetAsync",
    "SetConfig",
    "TableMod",
    "decode",
    "decode_header",
    "encode_buckets",
    "encode_oxs",
    "parse_oxs",
    "register",
]
