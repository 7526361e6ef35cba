"""Multipart (statistics and description) requests and replies (§7.3.5).

One class per multipart type and direction, e.g. ``FlowStatsRequest`` and
``FlowStatsReply``, each a message of type OFPT_MULTIPART_REQUEST/REPLY with ``flags``
(OFPMPF_REQ_MORE / OFPMPF_REPLY_MORE). Replies that list entries hold a tuple of small
values (``FlowStats``, ``PortStats``, ...). Where 1.4 changed an entry's layout (flow
importance, port stats and queue stats with properties, ports) both are read and written.
An unknown multipart type is the peer's fault: OFPBRC_BAD_MULTIPART.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self, TypeVar

from hitless.openflow._wire import Reader, fixed_str, pad8, parse_str
from hitless.openflow.actions import Instruction
from hitless.openflow.constants import (
    DESC_STR_LEN,
    MAX_TABLE_NAME_LEN,
    OFP11_VERSION,
    OFP12_VERSION,
    OFP13_VERSION,
    OFP15_VERSION,
    SERIAL_NUM_LEN,
    BadRequestCode,
    ErrorType,
    MsgType,
    MultipartType,
    Port,
    PortStatsPropType,
    Table,
    TableFeaturePropType,
    TableFeaturesFailedCode,
)
from hitless.openflow.constants import Group as GroupNo
from hitless.openflow.constants import Meter as MeterNo
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.match import Match
from hitless.openflow.messages import (
    OXS_BYTE_COUNT,
    OXS_DURATION,
    OXS_FLOW_COUNT,
    OXS_IDLE_TIME,
    OXS_PACKET_COUNT,
    Bucket,
    Message,
    MeterBand,
    PortDesc,
    SelectionMethod,
    _properties,
    encode_buckets,
    encode_insts,
    encode_match,
    encode_oxs,
    group_layout15,
    parse_bands,
    parse_buckets,
    parse_group_properties,
    parse_insts,
    parse_match,
    parse_oxs,
    register,
)
from hitless.openflow.ofp11 import actions11, actions12, fields_of11, wildcards11

_MP = struct.Struct("!HH4x")
_REQUESTS: dict[int, type[MultipartRequest]] = {}
EXPERIMENTER_MP_REPLY_PARSERS: dict[
    tuple[int, int], Callable[[Reader, int, int, int], MultipartReply]
] = {}
_REPLIES: dict[int, type[MultipartReply]] = {}
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Multipart(Message):
    mp_type: ClassVar[MultipartType]
    flags: int = 0

    def _body(self, version: int) -> bytes:
        return _MP.pack(self.mp_type, self.flags) + self._mp_body(version)

    def _mp_body(self, version: int) -> bytes:
        return b""

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        r.expect_end(cls.__name__)
        return cls(xid=xid, flags=flags)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartRequest(_Multipart):
    """Base of every OFPT_MULTIPART_REQUEST; decoding dispatches on the multipart type."""

    type: ClassVar[MsgType] = MsgType.MULTIPART_REQUEST

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        mp_type, flags = r.unpack(_MP, "multipart header")
        sub = _REQUESTS.get(mp_type)
        if sub is None or version < sub.min_version:
            raise RemoteProtocolError(
                f"unknown multipart type {mp_type}",
                ErrorType.BAD_REQUEST,
                BadRequestCode.BAD_MULTIPART,
            )
        return sub._mp_parse(r, version, xid, flags)  # type: ignore[return-value]


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartReply(_Multipart):
    """Base of every OFPT_MULTIPART_REPLY."""

    type: ClassVar[MsgType] = MsgType.MULTIPART_REPLY

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        mp_type, flags = r.unpack(_MP, "multipart header")
        sub = _REPLIES.get(mp_type)
        if sub is None or version < sub.min_version:
            raise RemoteProtocolError(
                f"unknown multipart type {mp_type}",
                ErrorType.BAD_REQUEST,
                BadRequestCode.BAD_MULTIPART,
            )
        return sub._mp_parse(r, version, xid, flags)  # type: ignore[return-value]


def _request(cls: type[MultipartRequest]) -> type[MultipartRequest]:
    _REQUESTS[cls.mp_type] = cls
    return cls


def _reply(cls: type[MultipartReply]) -> type[MultipartReply]:
    _REPLIES[cls.mp_type] = cls
    return cls


def _entries(r: Reader, parse: Callable[[Reader], T], what: str) -> tuple[T, ...]:
    """Entries that each start with a 16-bit length covering the whole entry."""
    out = []
    while r.remaining():
        head = r.peek(struct.Struct("!H"))
        if head is None or head[0] < 4:
            raise r.fail(f"bad {what} length")
        out.append(parse(r.sub(head[0], what)))
    return tuple(out)


def _fixed(r: Reader, st: struct.Struct, what: str) -> list[tuple[int, ...]]:
    if r.remaining() % st.size:
        raise r.fail(f"{what} list of {r.remaining()} bytes is not a multiple of {st.size}")
    return [r.unpack(st, what) for _ in range(r.remaining() // st.size)]


# -- Description (§7.3.5.1) --------------------------------------------------------------


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class DescRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.DESC


_DESC = struct.Struct(
    f"!{DESC_STR_LEN}s{DESC_STR_LEN}s{DESC_STR_LEN}s{SERIAL_NUM_LEN}s{DESC_STR_LEN}s"
)


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class DescReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.DESC
    mfr_desc: str = ""
    hw_desc: str = ""
    sw_desc: str = ""
    serial_num: str = ""
    dp_desc: str = ""

    def _mp_body(self, version: int) -> bytes:
        return b"".join(
            fixed_str(v, n, "description")
            for v, n in (
                (self.mfr_desc, DESC_STR_LEN),
                (self.hw_desc, DESC_STR_LEN),
                (self.sw_desc, DESC_STR_LEN),
                (self.serial_num, SERIAL_NUM_LEN),
                (self.dp_desc, DESC_STR_LEN),
            )
        )

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        m, h, s, n, d = (parse_str(x) for x in r.unpack(_DESC, "desc reply"))
        r.expect_end("desc reply")
        return cls(xid=xid, flags=flags, mfr_desc=m, hw_desc=h, sw_desc=s, serial_num=n, dp_desc=d)


# -- Flows (§7.3.5.2, §7.3.5.3) ---------------------------------------------------------

_FLOW_REQ = struct.Struct("!B3xII4xQQ")


@dataclass(frozen=True, slots=True, kw_only=True)
class _FlowSelect(MultipartRequest):
    table_id: int = Table.ALL
    out_port: int = Port.ANY
    out_group: int = GroupNo.ANY
    cookie: int = 0
    cookie_mask: int = 0
    match: Match = Match()

    def _mp_body(self, version: int) -> bytes:
        return (
            _FLOW_REQ.pack(
                self.table_id, self.out_port, self.out_group, self.cookie, self.cookie_mask
            )
            + encode_match(self.match, version)
        )

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        t, op, og, c, cm = r.unpack(_FLOW_REQ, "flow stats request")
        match = parse_match(r, version)
        r.expect_end("flow stats request")
        return cls(
            xid=xid, flags=flags, table_id=t, out_port=op, out_group=og, cookie=c,
            cookie_mask=cm, match=match,
        )  # fmt: skip


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowStatsRequest(_FlowSelect):
    mp_type: ClassVar[MultipartType] = MultipartType.FLOW


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateStatsRequest(_FlowSelect):
    mp_type: ClassVar[MultipartType] = MultipartType.AGGREGATE


_FLOW_STATS13 = struct.Struct("!HBxIIHHHH4xQQQ")
_FLOW_DESC15 = struct.Struct("!H2xBxHHHHHQ")
_FLOW_STATS14 = struct.Struct("!HBxIIHHHHH2xQQQ")


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowStats:
    """``ofp_flow_stats`` (§7.3.5.2)."""

    table_id: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    priority: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    flags: int = 0
    importance: int = 0  # 1.4 only
    cookie: int = 0
    packet_count: int = 0
    byte_count: int = 0
    match: Match = Match()
    instructions: tuple[Instruction, ...] = ()
    idle_age: int | None = None  # seconds since last hit; NXST_FLOW only
    hard_age: int | None = None  # seconds since last modified (flow_mod, learn); NXST_FLOW only

    def encode(self, version: int) -> bytes:
        if version >= OFP15_VERSION:  # 1.5.1 §7.3.5.2: ofp_flow_desc, counters as OXS
            stats = [(OXS_DURATION, self.duration_sec << 32 | self.duration_nsec)]
            if self.idle_age is not None:
                stats.append((OXS_IDLE_TIME, self.idle_age << 32))
            stats += [(OXS_PACKET_COUNT, self.packet_count), (OXS_BYTE_COUNT, self.byte_count)]
            tail = self.match.encode() + encode_oxs(stats) + encode_insts(self.instructions, version)
            return _FLOW_DESC15.pack(
                _FLOW_DESC15.size + len(tail), self.table_id, self.priority, self.idle_timeout,
                self.hard_timeout, self.flags, self.importance, self.cookie,
            ) + tail  # fmt: skip
        # 1.1 too gets an OXM match here: what Open vSwitch sends (a flow without a VLAN
        # reads back as vlan_tci=0x0000/0x1fff), and 1.1 parsers accept both.
        tail = self.match.encode() + encode_insts(self.instructions, version)
        length = _FLOW_STATS13.size + len(tail)
        flags = self.flags if version >= OFP13_VERSION else 0  # 1.1/1.2: padding
        common = (self.duration_sec, self.duration_nsec, self.priority, self.idle_timeout,
                  self.hard_timeout, flags)  # fmt: skip
        counts = (self.cookie, self.packet_count, self.byte_count)
        if version <= OFP13_VERSION:
            if self.importance:
                raise LocalProtocolError("flow importance needs OpenFlow 1.4")
            head = _FLOW_STATS13.pack(length, self.table_id, *common, *counts)
        else:
            head = _FLOW_STATS14.pack(length, self.table_id, *common, self.importance, *counts)
        return head + tail

    @classmethod
    def parse(cls, r: Reader, version: int) -> FlowStats:
        if version >= OFP15_VERSION:
            _, t, p, it, ht, fl, imp, c = r.unpack(_FLOW_DESC15, "flow desc")
            match = Match.parse(r)
            st = parse_oxs(r)
            d = st.get(OXS_DURATION, 0)
            idle = st.get(OXS_IDLE_TIME)
            return cls(
                table_id=t, duration_sec=d >> 32, duration_nsec=d & 0xFFFFFFFF, priority=p,
                idle_timeout=it, hard_timeout=ht, flags=fl, importance=imp, cookie=c,
                packet_count=st.get(OXS_PACKET_COUNT, 0), byte_count=st.get(OXS_BYTE_COUNT, 0),
                match=match, instructions=parse_insts(r, version, match),
                idle_age=None if idle is None else idle >> 32,
            )  # fmt: skip
        if version <= OFP13_VERSION:
            _, t, ds, dn, p, it, ht, fl, c, pc, bc = r.unpack(_FLOW_STATS13, "flow stats")
            imp = 0
            fl = fl if version >= OFP13_VERSION else 0
        else:
            _, t, ds, dn, p, it, ht, fl, imp, c, pc, bc = r.unpack(_FLOW_STATS14, "flow stats")
        match = parse_match(r, version)
        return cls(
            table_id=t, duration_sec=ds, duration_nsec=dn, priority=p, idle_timeout=it,
            hard_timeout=ht, flags=fl, importance=imp, cookie=c, packet_count=pc, byte_count=bc,
            match=match, instructions=parse_insts(r, version, match),
        )  # fmt: skip


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.FLOW
    stats: tuple[FlowStats, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(s.encode(version) for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        stats = _entries(r, lambda e: FlowStats.parse(e, version), "flow stats")
        return cls(xid=xid, flags=flags, stats=stats)


_AGGREGATE = struct.Struct("!QQI4x")


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.AGGREGATE
    packet_count: int = 0
    byte_count: int = 0
    flow_count: int = 0

    def _mp_body(self, version: int) -> bytes:
        if version >= OFP15_VERSION:
            return encode_oxs([(OXS_PACKET_COUNT, self.packet_count),
                               (OXS_BYTE_COUNT, self.byte_count),
                               (OXS_FLOW_COUNT, self.flow_count)])  # fmt: skip
        return _AGGREGATE.pack(self.packet_count, self.byte_count, self.flow_count)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        if version >= OFP15_VERSION:
            st = parse_oxs(r)
            return cls(
                xid=xid, flags=flags, packet_count=st.get(OXS_PACKET_COUNT, 0),
                byte_count=st.get(OXS_BYTE_COUNT, 0), flow_count=st.get(OXS_FLOW_COUNT, 0),
            )  # fmt: skip
        pc, bc, fc = r.unpack(_AGGREGATE, "aggregate reply")
        r.expect_end("aggregate reply")
        return cls(xid=xid, flags=flags, packet_count=pc, byte_count=bc, flow_count=fc)


# -- Tables (§7.3.5.4, §7.3.5.5) --------------------------------------------------------


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class TableStatsRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.TABLE


_TABLE_STATS = struct.Struct("!B3xIQQ")
_TABLE_STATS12 = struct.Struct(f"!B7x{MAX_TABLE_NAME_LEN}sQQIIQQQQIIIIQQ")  # 1.2 §A.3.5.4
_TABLE_STATS11 = struct.Struct(f"!B7x{MAX_TABLE_NAME_LEN}sIIIIIIIIQQ")  # 1.1.0 §A.3.5.4


def _bits(numbers: frozenset[int]) -> int:
    return sum(1 << n for n in numbers)


def _numbers(bits: int) -> frozenset[int]:
    return frozenset(n for n in range(bits.bit_length()) if bits >> n & 1)


@dataclass(frozen=True, slots=True)
class TableCaps:
    """What a table can do, as OpenFlow 1.1/1.2 table statistics carry it (1.3 moved it
    to table features): OXM basic field numbers, 1.2 action types, instruction types."""

    match: frozenset[int] = frozenset()
    wildcards: frozenset[int] = frozenset()
    actions: frozenset[int] = frozenset()  # for write-actions and apply-actions alike
    setfields: frozenset[int] = frozenset()
    instructions: frozenset[int] = frozenset()
    metadata_match: int = 2**64 - 1
    metadata_write: int = 2**64 - 1
    config: int = 0
    max_entries: int = 0


@dataclass(frozen=True, slots=True)
class TableStats:
    table_id: int
    active_count: int = 0
    lookup_count: int = 0
    matched_count: int = 0
    name: str = ""  # 1.1/1.2 only, with caps
    caps: TableCaps = TableCaps()  # 1.1/1.2 only

    def encode(self, version: int) -> bytes:
        counts = (self.active_count, self.lookup_count, self.matched_count)
        if version >= OFP13_VERSION:
            return _TABLE_STATS.pack(self.table_id, *counts)
        c, name = self.caps, fixed_str(self.name, MAX_TABLE_NAME_LEN, "table name")
        if version == OFP12_VERSION:
            acts = _bits(c.actions)
            return _TABLE_STATS12.pack(
                self.table_id, name, _bits(c.match), _bits(c.wildcards), acts, acts,
                _bits(c.setfields), _bits(c.setfields), c.metadata_match, c.metadata_write,
                _bits(c.instructions), c.config, c.max_entries, *counts,
            )  # fmt: skip
        acts = _bits(actions11(c.actions, c.setfields))
        return _TABLE_STATS11.pack(
            self.table_id, name, _bits(wildcards11(c.wildcards)), _bits(wildcards11(c.match)),
            _bits(c.instructions), acts, acts, c.config, c.max_entries, *counts,
        )  # fmt: skip

    @classmethod
    def parse(cls, r: Reader, version: int) -> TableStats:
        if version >= OFP13_VERSION:
            return cls(*r.unpack(_TABLE_STATS, "table stats"))
        if version == OFP12_VERSION:
            (t, name, m, w, wa, _, ws, _, mm, mw, i, cfg, mx, *counts) = r.unpack(
                _TABLE_STATS12, "table stats"
            )
            caps = TableCaps(
                match=_numbers(m), wildcards=_numbers(w), actions=_numbers(wa),
                setfields=_numbers(ws), instructions=_numbers(i), metadata_match=mm,
                metadata_write=mw, config=cfg, max_entries=mx,
            )  # fmt: skip
        else:
            (t, name, w, m, i, wa, _, cfg, mx, *counts) = r.unpack(_TABLE_STATS11, "table stats")
            acts, sets = actions12(_numbers(wa))
            caps = TableCaps(
                match=fields_of11(_numbers(m)), wildcards=fields_of11(_numbers(w)),
                actions=acts, setfields=sets, instructions=_numbers(i), config=cfg,
                max_entries=mx,
            )  # fmt: skip
        active, lookups, matched = counts
        return cls(t, active, lookups, matched, parse_str(name), caps)


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class TableStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.TABLE
    stats: tuple[TableStats, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(s.encode(version) for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        size = {OFP11_VERSION: _TABLE_STATS11, OFP12_VERSION: _TABLE_STATS12}.get(
            version, _TABLE_STATS
        ).size
        if r.remaining() % size:
            raise r.fail(f"table stats of {r.remaining()} bytes is not a multiple of {size}")
        stats = tuple(TableStats.parse(r, version) for _ in range(r.remaining() // size))
        return cls(xid=xid, flags=flags, stats=stats)


_ID_PROPS = {
    TableFeaturePropType.INSTRUCTIONS,
    TableFeaturePropType.INSTRUCTIONS_MISS,
    TableFeaturePropType.WRITE_ACTIONS,
    TableFeaturePropType.WRITE_ACTIONS_MISS,
    TableFeaturePropType.APPLY_ACTIONS,
    TableFeaturePropType.APPLY_ACTIONS_MISS,
}
_TABLE_PROPS = {TableFeaturePropType.NEXT_TABLES, TableFeaturePropType.NEXT_TABLES_MISS}
_OXM_PROPS = {
    TableFeaturePropType.MATCH,
    TableFeaturePropType.WILDCARDS,
    TableFeaturePropType.WRITE_SETFIELD,
    TableFeaturePropType.WRITE_SETFIELD_MISS,
    TableFeaturePropType.APPLY_SETFIELD,
    TableFeaturePropType.APPLY_SETFIELD_MISS,
}


@dataclass(frozen=True, slots=True)
class TableFeatureProp:
    """``ofp_table_feature_prop_*`` (§7.3.5.5.2). ``ids`` are instruction or action types,
    table ids, or OXM headers (an experimenter's 8 bytes as one 64-bit integer), by ``type``; other properties (experimenter ones, or
    lists with experimenter entries) keep their body in ``data`` instead."""

    type: int
    ids: tuple[int, ...] = ()
    data: bytes = b""

    def encode(self) -> bytes:
        if self.data and self.ids:
            raise LocalProtocolError("a table feature property has ids or raw data, not both")
        if self.data:
            body = self.data
        elif self.type in _ID_PROPS:
            body = b"".join(struct.pack("!HH", i, 4) for i in self.ids)
        elif self.type in _TABLE_PROPS:
            body = bytes(self.ids)
        elif self.type in _OXM_PROPS:  # an experimenter's: (header << 32 | experimenter id)
            body = b"".join(struct.pack("!Q" if i >> 32 else "!I", i) for i in self.ids)
        else:
            body = b""
        length = 4 + len(body)
        return struct.pack("!HH", self.type, length) + body + b"\0" * pad8(length)

    @classmethod
    def parse(cls, ptype: int, body: Reader) -> TableFeatureProp:
        raw = body.rest()
        if ptype in _ID_PROPS and len(raw) % 4 == 0:
            pairs = [struct.unpack_from("!HH", raw, i) for i in range(0, len(raw), 4)]
            if all(length == 4 for _, length in pairs):
                return cls(ptype, tuple(t for t, _ in pairs))
        elif ptype in _TABLE_PROPS:
            return cls(ptype, tuple(raw))
        elif ptype in _OXM_PROPS and len(raw) % 4 == 0:
            ids, i = [], 0
            while i + 4 <= len(raw):
                (h,) = struct.unpack_from("!I", raw, i)
                if h >> 16 == 0xFFFF and i + 8 <= len(raw):  # experimenter: 8-byte header
                    ids.append(h << 32 | struct.unpack_from("!I", raw, i + 4)[0])
                    i += 8
                else:
                    ids.append(h)
                    i += 4
            return cls(ptype, tuple(ids))
        return cls(ptype, (), raw)


_TABLE_FEATURES = struct.Struct(f"!HB5x{MAX_TABLE_NAME_LEN}sQQII")
_TF_ERROR = (ErrorType.TABLE_FEATURES_FAILED, TableFeaturesFailedCode.BAD_LEN)


@dataclass(frozen=True, slots=True, kw_only=True)
class TableFeatures:
    """``ofp_table_features`` (§7.3.5.5.1)."""

    table_id: int
    name: str = ""
    metadata_match: int = 0
    metadata_write: int = 0
    config: int = 0
    max_entries: int = 0
    properties: tuple[TableFeatureProp, ...] = ()

    def encode(self) -> bytes:
        props = b"".join(p.encode() for p in self.properties)
        return (
            _TABLE_FEATURES.pack(
                _TABLE_FEATURES.size + len(props),
                self.table_id,
                fixed_str(self.name, MAX_TABLE_NAME_LEN, "table name"),
                self.metadata_match,
                self.metadata_write,
                self.config,
                self.max_entries,
            )  # fmt: skip
            + props
        )

    @classmethod
    def parse(cls, r: Reader) -> TableFeatures:
        r.error = _TF_ERROR
        _, tid, name, mm, mw, config, max_entries = r.unpack(_TABLE_FEATURES, "table features")
        props = []
        while r.remaining():
            ptype, length = r.unpack(struct.Struct("!HH"), "table feature property")
            if length < 4:
                raise r.fail(f"table feature property length {length}")
            body = r.sub(length - 4, "table feature property")
            r.take(min(pad8(length), r.remaining()), "property padding")
            props.append(TableFeatureProp.parse(ptype, body))
        return cls(
            table_id=tid, name=parse_str(name), metadata_match=mm, metadata_write=mw,
            config=config, max_entries=max_entries, properties=tuple(props),
        )  # fmt: skip


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class TableFeaturesRequest(MultipartRequest):
    """Empty ``tables``: query only; otherwise the controller sets the tables' features."""

    mp_type: ClassVar[MultipartType] = MultipartType.TABLE_FEATURES
    min_version: ClassVar[int] = OFP13_VERSION
    tables: tuple[TableFeatures, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(t.encode() for t in self.tables)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        return cls(xid=xid, flags=flags, tables=_entries(r, TableFeatures.parse, "table features"))


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class TableFeaturesReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.TABLE_FEATURES
    min_version: ClassVar[int] = OFP13_VERSION
    tables: tuple[TableFeatures, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(t.encode() for t in self.tables)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        return cls(xid=xid, flags=flags, tables=_entries(r, TableFeatures.parse, "table features"))


# -- Ports (§7.3.5.6, §7.3.5.7) and queues (§7.3.5.8) ------------------------------------

_PORT_REQ = struct.Struct("!I4x")


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class PortStatsRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.PORT_STATS
    port_no: int = Port.ANY

    def _mp_body(self, version: int) -> bytes:
        return _PORT_REQ.pack(self.port_no)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        (port_no,) = r.unpack(_PORT_REQ, "port stats request")
        r.expect_end("port stats request")
        return cls(xid=xid, flags=flags, port_no=port_no)


_PORT_STATS11 = struct.Struct("!I4x12Q")
_PORT_STATS13 = struct.Struct("!I4x12QII")
_PORT_STATS14 = struct.Struct("!H2xIII8Q")
_PORT_STATS14_ETH = struct.Struct("!HH4x4Q")


@dataclass(frozen=True, slots=True, kw_only=True)
class PortStats:
    """``ofp_port_stats`` (§7.3.5.6; 1.4 moves the Ethernet counters into a property)."""

    port_no: int
    rx_packets: int = 0
    tx_packets: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    rx_errors: int = 0
    tx_errors: int = 0
    rx_frame_err: int = 0
    rx_over_err: int = 0
    rx_crc_err: int = 0
    collisions: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0

    def _counters(self) -> tuple[int, ...]:
        return (
            self.rx_packets, self.tx_packets, self.rx_bytes, self.tx_bytes, self.rx_dropped,
            self.tx_dropped, self.rx_errors, self.tx_errors,
        )  # fmt: skip

    def _eth(self) -> tuple[int, ...]:
        return (self.rx_frame_err, self.rx_over_err, self.rx_crc_err, self.collisions)

    def encode(self, version: int) -> bytes:
        if version < OFP13_VERSION:  # 1.1/1.2: no duration
            return _PORT_STATS11.pack(self.port_no, *self._counters(), *self._eth())
        if version == OFP13_VERSION:
            return _PORT_STATS13.pack(
                self.port_no, *self._counters(), *self._eth(), self.duration_sec, self.duration_nsec
            )
        eth = _PORT_STATS14_ETH.pack(
            PortStatsPropType.ETHERNET, _PORT_STATS14_ETH.size, *self._eth()
        )
        return (
            _PORT_STATS14.pack(
                _PORT_STATS14.size + len(eth),
                self.port_no,
                self.duration_sec,
                self.duration_nsec,
                *self._counters(),
            )  # fmt: skip
            + eth
        )

    @classmethod
    def parse13(cls, v: tuple[int, ...]) -> PortStats:
        return cls(
            port_no=v[0], rx_packets=v[1], tx_packets=v[2], rx_bytes=v[3], tx_bytes=v[4],
            rx_dropped=v[5], tx_dropped=v[6], rx_errors=v[7], tx_errors=v[8],
            rx_frame_err=v[9], rx_over_err=v[10], rx_crc_err=v[11], collisions=v[12],
            duration_sec=v[13], duration_nsec=v[14],
        )  # fmt: skip

    @classmethod
    def parse14(cls, r: Reader) -> PortStats:
        _, no, ds, dn, *c = r.unpack(_PORT_STATS14, "port stats")
        eth = (0, 0, 0, 0)
        for ptype, prop in _properties(r):
            if ptype == PortStatsPropType.ETHERNET:
                eth = prop.unpack(struct.Struct("!4x4Q"), "ethernet property")
        return cls.parse13((no, *c, *eth, ds, dn))


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class PortStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.PORT_STATS
    stats: tuple[PortStats, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(s.encode(version) for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        if version < OFP13_VERSION:
            rows = _fixed(r, _PORT_STATS11, "port stats")
            stats = tuple(PortStats.parse13((*v, 0, 0)) for v in rows)
        elif version == OFP13_VERSION:
            stats = tuple(PortStats.parse13(v) for v in _fixed(r, _PORT_STATS13, "port stats"))
        else:
            stats = _entries(r, PortStats.parse14, "port stats")
        return cls(xid=xid, flags=flags, stats=stats)


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class PortDescRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.PORT_DESC
    port_no: int = Port.ANY  # 1.5 only (earlier versions ask for every port)

    def _mp_body(self, version: int) -> bytes:
        return struct.pack("!I4x", self.port_no) if version >= OFP15_VERSION else b""

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        port = Port.ANY
        if version >= OFP15_VERSION:
            (port,) = r.unpack(struct.Struct("!I4x"), "port desc request")
        r.expect_end("port desc request")
        return cls(xid=xid, flags=flags, port_no=port)


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class PortDescReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.PORT_DESC
    ports: tuple[PortDesc, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(p.encode(version) for p in self.ports)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        ports = []
        while r.remaining():
            ports.append(PortDesc.parse(r, version))
        return cls(xid=xid, flags=flags, ports=tuple(ports))


_QUEUE_REQ = struct.Struct("!II")


@dataclass(frozen=True, slots=True, kw_only=True)
class _QueueSelect(MultipartRequest):
    """A request naming a port and a queue (either may be "all")."""

    port_no: int = Port.ANY
    queue_id: int = 0xFFFFFFFF  # OFPQ_ALL

    def _mp_body(self, version: int) -> bytes:
        return _QUEUE_REQ.pack(self.port_no, self.queue_id)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        port_no, queue_id = r.unpack(_QUEUE_REQ, cls.__name__)
        r.expect_end(cls.__name__)
        return cls(xid=xid, flags=flags, port_no=port_no, queue_id=queue_id)


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatsRequest(_QueueSelect):
    mp_type: ClassVar[MultipartType] = MultipartType.QUEUE


_QUEUE_STATS11 = struct.Struct("!IIQQQ")
_QUEUE_STATS13 = struct.Struct("!IIQQQII")
_QUEUE_STATS14 = struct.Struct("!H6xIIQQQII")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    port_no: int
    queue_id: int
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0

    def _values(self) -> tuple[int, ...]:
        return (
            self.port_no, self.queue_id, self.tx_bytes, self.tx_packets, self.tx_errors,
            self.duration_sec, self.duration_nsec,
        )  # fmt: skip


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.QUEUE
    stats: tuple[QueueStats, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        if version < OFP13_VERSION:  # 1.1/1.2: no duration
            return b"".join(_QUEUE_STATS11.pack(*s._values()[:5]) for s in self.stats)
        if version == OFP13_VERSION:
            return b"".join(_QUEUE_STATS13.pack(*s._values()) for s in self.stats)
        return b"".join(_QUEUE_STATS14.pack(_QUEUE_STATS14.size, *s._values()) for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        names = ("port_no", "queue_id", "tx_bytes", "tx_packets", "tx_errors",
                 "duration_sec", "duration_nsec")  # fmt: skip
        if version < OFP13_VERSION:
            rows = [(*v, 0, 0) for v in _fixed(r, _QUEUE_STATS11, "queue stats")]
        elif version == OFP13_VERSION:
            rows = _fixed(r, _QUEUE_STATS13, "queue stats")
        else:
            rows = list(
                _entries(r, lambda e: e.unpack(_QUEUE_STATS14, "queue stats")[1:], "queue stats")
            )
        stats = tuple(QueueStats(**dict(zip(names, row, strict=True))) for row in rows)
        return cls(xid=xid, flags=flags, stats=stats)


# -- Groups (§7.3.5.9 - §7.3.5.11) -------------------------------------------------------

_ID_REQ = struct.Struct("!I4x")


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStatsRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.GROUP
    group_id: int = GroupNo.ALL

    def _mp_body(self, version: int) -> bytes:
        return _ID_REQ.pack(self.group_id)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        (gid,) = r.unpack(_ID_REQ, "group stats request")
        r.expect_end("group stats request")
        return cls(xid=xid, flags=flags, group_id=gid)


_GROUP_STATS = struct.Struct("!H2xII4xQQII")
_GROUP_STATS11 = struct.Struct("!H2xII4xQQ")
_COUNTER_PAIR = struct.Struct("!QQ")


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStats:
    group_id: int
    ref_count: int = 0
    packet_count: int = 0
    byte_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    bucket_stats: tuple[tuple[int, int], ...] = ()  # (packet_count, byte_count) per bucket

    def encode(self, version: int = OFP13_VERSION) -> bytes:
        buckets = b"".join(_COUNTER_PAIR.pack(p, b) for p, b in self.bucket_stats)
        if version < OFP13_VERSION:  # 1.1/1.2: no duration
            return _GROUP_STATS11.pack(
                _GROUP_STATS11.size + len(buckets), self.group_id, self.ref_count,
                self.packet_count, self.byte_count,
            ) + buckets  # fmt: skip
        return (
            _GROUP_STATS.pack(
                _GROUP_STATS.size + len(buckets),
                self.group_id,
                self.ref_count,
                self.packet_count,
                self.byte_count,
                self.duration_sec,
                self.duration_nsec,
            )  # fmt: skip
            + buckets
        )

    @classmethod
    def parse(cls, r: Reader, version: int = OFP13_VERSION) -> GroupStats:
        if version < OFP13_VERSION:
            _, gid, refs, pc, bc = r.unpack(_GROUP_STATS11, "group stats")
            ds = dn = 0
        else:
            _, gid, refs, pc, bc, ds, dn = r.unpack(_GROUP_STATS, "group stats")
        buckets = tuple((p, b) for p, b in _fixed(r, _COUNTER_PAIR, "bucket stats"))
        return cls(
            group_id=gid, ref_count=refs, packet_count=pc, byte_count=bc, duration_sec=ds,
            duration_nsec=dn, bucket_stats=buckets,
        )  # fmt: skip


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.GROUP
    stats: tuple[GroupStats, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(s.encode(version) for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        stats = _entries(r, lambda e: GroupStats.parse(e, version), "group stats")
        return cls(xid=xid, flags=flags, stats=stats)


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDescRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.GROUP_DESC
    group_id: int = GroupNo.ALL  # 1.5 only (earlier versions ask for every group)

    def _mp_body(self, version: int) -> bytes:
        return struct.pack("!I4x", self.group_id) if group_layout15(version) else b""

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        gid = GroupNo.ALL
        if group_layout15(version):
            (gid,) = r.unpack(struct.Struct("!I4x"), "group desc request")
        r.expect_end("group desc request")
        return cls(xid=xid, flags=flags, group_id=gid)


_GROUP_DESC = struct.Struct("!HBxI")
_GROUP_DESC15 = struct.Struct("!HBxIH6x")


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDesc:
    group_type: int
    group_id: int
    buckets: tuple[Bucket, ...] = ()
    selection: SelectionMethod | None = None  # 1.5 layout only

    def encode(self, version: int = OFP13_VERSION) -> bytes:
        buckets = encode_buckets(self.buckets, version)
        if group_layout15(version):
            props = self.selection.encode() if self.selection is not None else b""
            return (
                _GROUP_DESC15.pack(
                    16 + len(buckets) + len(props), self.group_type, self.group_id, len(buckets)
                )
                + buckets
                + props
            )
        return _GROUP_DESC.pack(8 + len(buckets), self.group_type, self.group_id) + buckets

    @classmethod
    def parse(cls, r: Reader, version: int = OFP13_VERSION) -> GroupDesc:
        if group_layout15(version):
            _, gtype, gid, blen = r.unpack(_GROUP_DESC15, "group desc")
            buckets = parse_buckets(r.sub(blen, "group desc buckets"), version)
            sel = parse_group_properties(r)
            return cls(group_type=gtype, group_id=gid, buckets=buckets, selection=sel)
        _, gtype, gid = r.unpack(_GROUP_DESC, "group desc")
        return cls(group_type=gtype, group_id=gid, buckets=parse_buckets(r, version))


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDescReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.GROUP_DESC
    stats: tuple[GroupDesc, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(s.encode(version) for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        stats = _entries(r, lambda e: GroupDesc.parse(e, version), "group desc")
        return cls(xid=xid, flags=flags, stats=stats)


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupFeaturesRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.GROUP_FEATURES
    min_version: ClassVar[int] = OFP12_VERSION


_GROUP_FEATURES = struct.Struct("!II4I4I")


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class GroupFeaturesReply(MultipartReply):
    """``max_groups`` and ``actions`` are indexed by group type (all, select, indirect, ff)."""

    mp_type: ClassVar[MultipartType] = MultipartType.GROUP_FEATURES
    min_version: ClassVar[int] = OFP12_VERSION
    types: int = 0
    capabilities: int = 0
    max_groups: tuple[int, int, int, int] = (0, 0, 0, 0)
    actions: tuple[int, int, int, int] = (0, 0, 0, 0)

    def _mp_body(self, version: int) -> bytes:
        return _GROUP_FEATURES.pack(self.types, self.capabilities, *self.max_groups, *self.actions)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        t, c, *rest = r.unpack(_GROUP_FEATURES, "group features")
        r.expect_end("group features")
        mg = (rest[0], rest[1], rest[2], rest[3])
        ac = (rest[4], rest[5], rest[6], rest[7])
        return cls(xid=xid, flags=flags, types=t, capabilities=c, max_groups=mg, actions=ac)


# -- Meters (§7.3.5.12 - §7.3.5.14) ------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _MeterSelect(MultipartRequest):
    meter_id: int = MeterNo.ALL

    def _mp_body(self, version: int) -> bytes:
        return _ID_REQ.pack(self.meter_id)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        (mid,) = r.unpack(_ID_REQ, "meter request")
        r.expect_end("meter request")
        return cls(xid=xid, flags=flags, meter_id=mid)


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterStatsRequest(_MeterSelect):
    mp_type: ClassVar[MultipartType] = MultipartType.METER
    min_version: ClassVar[int] = OFP13_VERSION


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterConfigRequest(_MeterSelect):
    mp_type: ClassVar[MultipartType] = MultipartType.METER_CONFIG
    min_version: ClassVar[int] = OFP13_VERSION


_METER_STATS = struct.Struct("!IH6xIQQII")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterStats:
    meter_id: int
    flow_count: int = 0
    packet_in_count: int = 0
    byte_in_count: int = 0
    duration_sec: int = 0
    duration_nsec: int = 0
    band_stats: tuple[tuple[int, int], ...] = ()  # (packet_band_count, byte_band_count)

    def encode(self) -> bytes:
        bands = b"".join(_COUNTER_PAIR.pack(p, b) for p, b in self.band_stats)
        return (
            _METER_STATS.pack(
                self.meter_id,
                _METER_STATS.size + len(bands),
                self.flow_count,
                self.packet_in_count,
                self.byte_in_count,
                self.duration_sec,
                self.duration_nsec,
            )  # fmt: skip
            + bands
        )


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.METER
    min_version: ClassVar[int] = OFP13_VERSION
    stats: tuple[MeterStats, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(s.encode() for s in self.stats)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        stats = []
        while r.remaining():
            head = r.peek(struct.Struct("!IH"))
            if head is None or head[1] < _METER_STATS.size:
                raise r.fail("bad meter stats length")
            e = r.sub(head[1], "meter stats")
            mid, _, fc, pc, bc, ds, dn = e.unpack(_METER_STATS)
            bands = tuple((p, b) for p, b in _fixed(e, _COUNTER_PAIR, "band stats"))
            stats.append(
                MeterStats(
                    meter_id=mid,
                    flow_count=fc,
                    packet_in_count=pc,
                    byte_in_count=bc,
                    duration_sec=ds,
                    duration_nsec=dn,
                    band_stats=bands,
                )  # fmt: skip
            )
        return cls(xid=xid, flags=flags, stats=tuple(stats))


_METER_CONFIG = struct.Struct("!HHI")


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterConfig:
    meter_id: int
    flags: int = 0
    bands: tuple[MeterBand, ...] = ()

    def encode(self) -> bytes:
        bands = b"".join(b.encode() for b in self.bands)
        return _METER_CONFIG.pack(8 + len(bands), self.flags, self.meter_id) + bands

    @classmethod
    def parse(cls, r: Reader) -> MeterConfig:
        _, flags, mid = r.unpack(_METER_CONFIG, "meter config")
        return cls(meter_id=mid, flags=flags, bands=parse_bands(r))


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterConfigReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.METER_CONFIG
    min_version: ClassVar[int] = OFP13_VERSION
    entries: tuple[MeterConfig, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(e.encode() for e in self.entries)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        return cls(xid=xid, flags=flags, entries=_entries(r, MeterConfig.parse, "meter config"))


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterFeaturesRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.METER_FEATURES
    min_version: ClassVar[int] = OFP13_VERSION


_METER_FEATURES = struct.Struct("!IIIBB2x")


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class MeterFeaturesReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.METER_FEATURES
    min_version: ClassVar[int] = OFP13_VERSION
    max_meter: int = 0
    band_types: int = 0
    capabilities: int = 0
    max_bands: int = 0
    max_color: int = 0

    def _mp_body(self, version: int) -> bytes:
        return _METER_FEATURES.pack(
            self.max_meter, self.band_types, self.capabilities, self.max_bands, self.max_color
        )

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        mm, bt, caps, mb, mc = r.unpack(_METER_FEATURES, "meter features")
        r.expect_end("meter features")
        return cls(
            xid=xid, flags=flags, max_meter=mm, band_types=bt, capabilities=caps,
            max_bands=mb, max_color=mc,
        )  # fmt: skip


# -- Experimenter (§7.3.5.15) ------------------------------------------------------------

_EXP_MP = struct.Struct("!II")
# (experimenter, exp_type) -> parser of an experimenter multipart request that has a value
# of its own (Nicira's and ONF's flow monitor: hitless.openflow.flowmon)
EXPERIMENTER_MP_PARSERS: dict[
    tuple[int, int], Callable[[Reader, int, int, int], MultipartRequest]
] = {}


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimenterStatsRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.EXPERIMENTER
    experimenter: int
    exp_type: int
    data: bytes = b""

    def _mp_body(self, version: int) -> bytes:
        return _EXP_MP.pack(self.experimenter, self.exp_type) + self.data

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        e, t = r.unpack(_EXP_MP, "experimenter multipart")
        parser = EXPERIMENTER_MP_PARSERS.get((e, t))
        if parser is not None:
            return parser(r, version, xid, flags)  # type: ignore[return-value]
        return cls(xid=xid, flags=flags, experimenter=e, exp_type=t, data=r.rest())


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class ExperimenterStatsReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.EXPERIMENTER
    experimenter: int
    exp_type: int
    data: bytes = b""

    def _mp_body(self, version: int) -> bytes:
        return _EXP_MP.pack(self.experimenter, self.exp_type) + self.data

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        e, t = r.unpack(_EXP_MP, "experimenter multipart")
        parser = EXPERIMENTER_MP_REPLY_PARSERS.get((e, t))
        if parser is not None:
            return parser(r, version, xid, flags)  # type: ignore[return-value]
        return cls(xid=xid, flags=flags, experimenter=e, exp_type=t, data=r.rest())


# -- Table and queue descriptions (1.4.1 §7.3.5.6, §7.3.5.9) ------------------------------


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class TableDescRequest(MultipartRequest):
    mp_type: ClassVar[MultipartType] = MultipartType.TABLE_DESC


_TABLE_DESC = struct.Struct("!HBxI")


@dataclass(frozen=True, slots=True, kw_only=True)
class TableDesc:
    """``ofp_table_desc``: a table's config and its properties (raw TLVs)."""

    table_id: int
    config: int = 0
    properties: bytes = b""

    def encode(self) -> bytes:
        return _TABLE_DESC.pack(8 + len(self.properties), self.table_id, self.config) + (
            self.properties
        )

    @classmethod
    def parse(cls, r: Reader) -> TableDesc:
        _, t, config = r.unpack(_TABLE_DESC, "table desc")
        return cls(table_id=t, config=config, properties=r.rest())


class TableReason(IntEnum):
    """ofp_table_reason (1.4.1 §7.4.5)."""

    VACANCY_DOWN = 3  # the table's free space fell below vacancy_down
    VACANCY_UP = 4  # it rose above vacancy_up


_TABLE_STATUS = struct.Struct("!B7x")


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class TableStatus(Message):
    """OFPT_TABLE_STATUS (1.4.1 §7.4.5): a table's vacancy crossed a threshold; the
    table's description (with its vacancy property) follows the reason."""

    type: ClassVar[MsgType] = MsgType.TABLE_STATUS
    reason: int
    table: TableDesc

    def _body(self, version: int) -> bytes:
        return _TABLE_STATUS.pack(self.reason) + self.table.encode()

    @classmethod
    def _parse(cls, r: Reader, version: int, xid: int) -> Self:
        (reason,) = r.unpack(_TABLE_STATUS, "table status")
        return cls(xid=xid, reason=reason, table=TableDesc.parse(r))


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class TableDescReply(MultipartReply):
    mp_type: ClassVar[MultipartType] = MultipartType.TABLE_DESC
    tables: tuple[TableDesc, ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(t.encode() for t in self.tables)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        return cls(xid=xid, flags=flags, tables=_entries(r, TableDesc.parse, "table desc"))


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueDescRequest(_QueueSelect):
    mp_type: ClassVar[MultipartType] = MultipartType.QUEUE_DESC


_QUEUE_DESC = struct.Struct("!IIH6x")


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueDescReply(MultipartReply):
    """``(port_no, queue_id)`` of each queue (no rate properties: none are configured)."""

    mp_type: ClassVar[MultipartType] = MultipartType.QUEUE_DESC
    queues: tuple[tuple[int, int], ...] = ()

    def _mp_body(self, version: int) -> bytes:
        return b"".join(_QUEUE_DESC.pack(p, q, _QUEUE_DESC.size) for p, q in self.queues)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        out = []
        while r.remaining():
            p, q, length = r.unpack(_QUEUE_DESC, "queue desc")
            r.take(length - _QUEUE_DESC.size, "queue desc properties")
            out.append((p, q))
        return cls(xid=xid, flags=flags, queues=tuple(out))


__all__ = [
    "TableReason",
    "TableStatus",
    "QueueDescReply",
    "QueueDescRequest",
    "TableDesc",
    "TableDescReply",
    "TableDescRequest",
    "AggregateStatsReply",
    "AggregateStatsRequest",
    "DescReply",
    "DescRequest",
    "ExperimenterStatsReply",
    "ExperimenterStatsRequest",
    "FlowStats",
    "FlowStatsReply",
    "FlowStatsRequest",
    "GroupDesc",
    "GroupDescReply",
    "GroupDescRequest",
    "GroupFeaturesReply",
    "GroupFeaturesRequest",
    "GroupStats",
    "GroupStatsReply",
    "GroupStatsRequest",
    "MeterConfig",
    "MeterConfigReply",
    "MeterConfigRequest",
    "MeterFeaturesReply",
    "MeterFeaturesRequest",
    "MeterStats",
    "MeterStatsReply",
    "MeterStatsRequest",
    "MultipartReply",
    "MultipartRequest",
    "PortDescReply",
    "PortDescRequest",
    "PortStats",
    "PortStatsReply",
    "PortStatsRequest",
    "QueueStats",
    "QueueStatsReply",
    "QueueStatsRequest",
    "TableFeatureProp",
    "TableFeatures",
    "TableFeaturesReply",
    "TableFeaturesRequest",
    "TableStats",
    "TableStatsReply",
    "TableStatsRequest",
]
