"""Flow monitoring on the wire: a controller asks to hear about rule changes.

Three forms of the same thing, as Open vSwitch 3.1 speaks them (lib/ofp-monitor.c):

* OpenFlow 1.0-1.2: Nicira's NXST_FLOW_MONITOR statistics (vendor subtype 2), NXM
  matches, the version's own action lists, NXT_FLOW_MONITOR_CANCEL (21), _PAUSED (22)
  and _RESUMED (23);
* OpenFlow 1.3: ONF's extension, ONFST_FLOW_MONITOR (experimenter statistics 1870) with
  an OXM match and instructions in Nicira's update layout, ONFT 1870/1871/1872 for
  cancel/paused/resumed;
* OpenFlow 1.4+: OFPMP_FLOW_MONITOR (§7.3.5.19), whose requests also modify and delete
  monitors and whose replies also say paused/resumed.

``FlowMonitorRequest`` holds the monitors one request asks for (``MonitorRequest``,
with flags in 1.4's ``MonitorFlags`` numbering whatever the version, as Open vSwitch
keeps them), ``FlowMonitorReply`` the ``FlowUpdate`` entries of an initial reply or of an
asynchronous update (xid 0). Pure values and codecs; what a monitor sees is decided by
the pipeline (hitless.ofproto.ofhandler).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import ClassVar, Self

from hitless.openflow._wire import Reader
from hitless.openflow.actions import ApplyActions, Instruction
from hitless.openflow.constants import (
    NX_EXPERIMENTER_ID,
    OFP10_VERSION,
    OFP11_VERSION,
    OFP13_VERSION,
    OFP14_VERSION,
    ONF_EXPERIMENTER_ID,
    ErrorType,
    MsgType,
    MultipartType,
    Port,
)
from hitless.openflow.constants import Group as GroupNo
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Match
from hitless.openflow.messages import (
    EXPERIMENTER_PARSERS,
    HEADER,
    encode_acts,
    encode_insts,
    parse_insts,
)
from hitless.openflow.multipart import (
    EXPERIMENTER_MP_PARSERS,
    EXPERIMENTER_MP_REPLY_PARSERS,
    MultipartReply,
    MultipartRequest,
    _reply,
    _request,
)
from hitless.openflow.nx import (
    NxStatsType,
    NxType,
    encode_nxm,
    nx_header,
    padded,
    parse_nxm,
    port_from16,
    port_to16,
)
from hitless.openflow.nxmsg import NxMessage
from hitless.openflow.ofp10 import NX_STATS_ENCODERS, NX_STATS_PARSERS, actions_from_instructions

__all__ = [
    "FlowMonitorCancel",
    "FlowMonitorPaused",
    "FlowMonitorReply",
    "FlowMonitorRequest",
    "FlowUpdate",
    "MonitorCommand",
    "MonitorFlags",
    "MonitorRequest",
    "UpdateEvent",
    "monitor_error",
]

ONFST_FLOW_MONITOR = 1870  # ONF experimenter statistics (and ONFT cancel) in 1.3
ONFT_FLOW_MONITOR_PAUSED = 1871
ONFT_FLOW_MONITOR_RESUMED = 1872
NXT_FLOW_MONITOR_CANCEL = NxType.FLOW_MONITOR_CANCEL
NXT_FLOW_MONITOR_PAUSED = NxType.FLOW_MONITOR_PAUSED
NXT_FLOW_MONITOR_RESUMED = NxType.FLOW_MONITOR_RESUMED


class MonitorFlags(IntFlag):
    """ofp_flow_monitor_flags (1.4.1 §7.3.5.19); Open vSwitch reads ONLY_OWN as Nicira's
    NXFMF_OWN: "send my own changes in full" (ovs-ofctl sets it by default)."""

    INITIAL = 1 << 0
    ADD = 1 << 1
    REMOVED = 1 << 2
    MODIFY = 1 << 3
    INSTRUCTIONS = 1 << 4
    NO_ABBREV = 1 << 5
    ONLY_OWN = 1 << 6


# Nicira's (and ONF 1.3's) flag bits -> 1.4's: INITIAL..ACTIONS are the same bits, OWN
# (1 << 5) is 1.4's ONLY_OWN.
_NX_FLAGS = 0x3F
_NX_OWN = 1 << 5


def _flags_from_nx(nx: int) -> int:
    return (nx & 0x1F) | (MonitorFlags.ONLY_OWN if nx & _NX_OWN else 0)


def _flags_to_nx(flags: int) -> int:
    return (flags & 0x1F) | (_NX_OWN if flags & MonitorFlags.ONLY_OWN else 0)


class MonitorCommand(IntEnum):
    """ofp_flow_monitor_command (1.4+; the Nicira and ONF forms only add)."""

    ADD = 0
    MODIFY = 1
    DELETE = 2


class UpdateEvent(IntEnum):
    """ofp_flow_update_event (1.4+). Nicira's numbering differs (``_NX_EVENT``)."""

    INITIAL = 0
    ADDED = 1
    REMOVED = 2
    MODIFIED = 3
    ABBREV = 4
    PAUSED = 5
    RESUMED = 6


# 1.4 event -> NXFME_* (an initial dump is "added" in Nicira's form)
_NX_EVENT = {
    UpdateEvent.INITIAL: 0,
    UpdateEvent.ADDED: 0,
    UpdateEvent.REMOVED: 1,
    UpdateEvent.MODIFIED: 2,
    UpdateEvent.ABBREV: 3,
}
_FROM_NX_EVENT = {0: UpdateEvent.ADDED, 1: UpdateEvent.REMOVED, 2: UpdateEvent.MODIFIED,
                  3: UpdateEvent.ABBREV}  # fmt: skip

FLOW_MONITOR_FAILED = 16  # OFPET_FLOW_MONITOR_FAILED (1.4)
# OFPMOFC_* -> (1.4 code, Open vSwitch's Nicira (1.0/1.1 code, 1.2/1.3 code))
_ERRORS: dict[str, tuple[int, tuple[int, int] | None]] = {
    "UNKNOWN": (0, None),
    "MONITOR_EXISTS": (1, (517, 6)),
    "INVALID_MONITOR": (2, None),
    "UNKNOWN_MONITOR": (3, (519, 8)),
    "BAD_COMMAND": (4, None),
    "BAD_FLAGS": (5, (518, 7)),
    "BAD_TABLE_ID": (6, None),
    "BAD_OUT": (7, None),
}


_NX_BAD_FLAGS = (518, 7)


def monitor_error(text: str, name: str, version: int) -> RemoteProtocolError:
    """OFPMOFC_<name> as Open vSwitch sends it in ``version``: the 1.4 error from 1.4 on,
    before that its Nicira error (or OFPBRC_BAD_REQUEST's EPERM where it has none)."""
    code, nx = _ERRORS[name]
    if version >= OFP14_VERSION:
        return RemoteProtocolError(text, FLOW_MONITOR_FAILED, code)
    if nx is None:
        return RemoteProtocolError(text, ErrorType.BAD_REQUEST, 5)
    return RemoteProtocolError.nicira(text, nx)


@dataclass(frozen=True, slots=True)
class MonitorRequest:
    """One monitor: which rules (table, match, out_port, out_group) and which changes."""

    monitor_id: int
    flags: int
    match: Match = Match(())
    table_id: int = 0xFF
    out_port: int = Port.ANY
    out_group: int = GroupNo.ANY
    command: int = MonitorCommand.ADD


_NX_REQ = struct.Struct("!IHHHB5x")  # id, flags, out_port, match_len, table_id
_ONF_REQ = struct.Struct("!IHHIB3x")  # id, flags, match_len, out_port, table_id
_OF14_REQ = struct.Struct("!IIIHBB")  # id, out_port, out_group, flags, table_id, command


def _check_flags(nx_flags: int, allowed: int, what: str) -> None:
    if not nx_flags & 0xE or nx_flags & ~allowed:
        raise RemoteProtocolError.nicira(f"{what} has bad flags {nx_flags:#x}", _NX_BAD_FLAGS)


def _parse_nx(r: Reader) -> MonitorRequest:
    mid, flags, out_port, mlen, table = r.unpack(_NX_REQ, "nx_flow_monitor_request")
    _check_flags(flags, _NX_FLAGS, "NXST_FLOW_MONITOR")
    return MonitorRequest(mid, _flags_from_nx(flags), parse_nxm(r, mlen), table,
                          port_from16(out_port))  # fmt: skip


def _parse_onf(r: Reader) -> MonitorRequest:
    mid, flags, _mlen, out_port, table = r.unpack(_ONF_REQ, "onf_flow_monitor_request")
    _check_flags(flags, _NX_FLAGS, "ONFST_FLOW_MONITOR")
    return MonitorRequest(mid, _flags_from_nx(flags), Match.parse(r), table, out_port)


def _parse_of14(r: Reader) -> MonitorRequest:
    mid, out_port, out_group, flags, table, cmd = r.unpack(_OF14_REQ, "ofp_flow_monitor_request")
    match = Match.parse(r)
    if cmd == MonitorCommand.DELETE:
        return MonitorRequest(mid, 0, command=cmd)
    allowed = MonitorFlags(0x5F)  # every flag but NO_ABBREV, as Open vSwitch
    if not flags & 0xE or flags & ~allowed:
        raise monitor_error(
            f"OFPST_FLOW_MONITOR has bad flags {flags:#x}", "BAD_FLAGS", OFP14_VERSION
        )
    return MonitorRequest(mid, flags, match, table, out_port, out_group, cmd)


@_request
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowMonitorRequest(MultipartRequest):
    """Flow monitor requests in any version's form (``form``: "nx", "onf" or "of14")."""

    mp_type: ClassVar[MultipartType] = MultipartType.FLOW_MONITOR
    min_version: ClassVar[int] = OFP14_VERSION
    monitors: tuple[MonitorRequest, ...] = ()

    def encode(self, version: int = OFP14_VERSION) -> bytes:
        """The request in ``version``'s form (a controller's side, and tests): 1.1-1.3
        carry it as an experimenter multipart request (1.4's type does not exist there)."""
        if OFP11_VERSION <= version < OFP14_VERSION:
            body = self._body(version)
            return HEADER.pack(version, MsgType.MULTIPART_REQUEST, 8 + len(body), self.xid) + body
        return MultipartRequest.encode(self, version)

    def _body(self, version: int) -> bytes:
        if version >= OFP14_VERSION:
            body = b"".join(
                _OF14_REQ.pack(m.monitor_id, m.out_port, m.out_group, m.flags, m.table_id,
                               m.command) + m.match.encode()
                for m in self.monitors
            )  # fmt: skip
            return struct.pack("!HH4x", self.mp_type, self.flags) + body
        if version == OFP13_VERSION:
            head = struct.pack("!HH4xII", 0xFFFF, self.flags, ONF_EXPERIMENTER_ID,
                               ONFST_FLOW_MONITOR)  # fmt: skip
            return head + b"".join(
                _ONF_REQ.pack(m.monitor_id, _flags_to_nx(m.flags),
                              struct.unpack_from("!HH", m.match.encode())[1], m.out_port,
                              m.table_id) + m.match.encode()
                for m in self.monitors
            )  # fmt: skip
        head = struct.pack("!HH4xII", 0xFFFF, self.flags, NX_EXPERIMENTER_ID,
                           NxStatsType.FLOW_MONITOR)  # fmt: skip
        return head + self.nx_entries()

    def nx_entries(self) -> bytes:
        """The monitors in Nicira's layout (NXST_FLOW_MONITOR's body)."""
        out = []
        for m in self.monitors:
            nxm = encode_nxm(m.match)
            out.append(_NX_REQ.pack(m.monitor_id, _flags_to_nx(m.flags), port_to16(m.out_port),
                                    len(nxm), m.table_id) + padded(nxm))  # fmt: skip
        return b"".join(out)

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        return cls(xid=xid, flags=flags, monitors=_all(r, _parse_of14))


def _all(r: Reader, parse: object) -> tuple[MonitorRequest, ...]:
    out = []
    while r.remaining():
        out.append(parse(r))  # type: ignore[operator]
    return tuple(out)


def _nx_request(r: Reader, version: int, xid: int, flags: int) -> MultipartRequest:
    return FlowMonitorRequest(xid=xid, flags=flags, monitors=_all(r, _parse_nx))


def _onf_request(r: Reader, version: int, xid: int, flags: int) -> MultipartRequest:
    if version != OFP13_VERSION:
        raise RemoteProtocolError("ONFST_FLOW_MONITOR outside OpenFlow 1.3",
                                  ErrorType.BAD_REQUEST, 3)  # fmt: skip
    return FlowMonitorRequest(xid=xid, flags=flags, monitors=_all(r, _parse_onf))


EXPERIMENTER_MP_PARSERS[(NX_EXPERIMENTER_ID, NxStatsType.FLOW_MONITOR)] = _nx_request
EXPERIMENTER_MP_PARSERS[(ONF_EXPERIMENTER_ID, ONFST_FLOW_MONITOR)] = _onf_request
NX_STATS_PARSERS[NxStatsType.FLOW_MONITOR] = lambda r, xid, flags: _nx_request(
    r, OFP10_VERSION, xid, flags
)


@dataclass(frozen=True, slots=True)
class FlowUpdate:
    """One update: a rule (``event`` INITIAL/ADDED/REMOVED/MODIFIED; ``instructions``
    None when the monitor did not ask for them), or ABBREV (``xid`` of the request that
    made the change), PAUSED or RESUMED."""

    event: int
    table_id: int = 0
    reason: int = 0
    priority: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    cookie: int = 0
    match: Match = Match(())
    instructions: tuple[Instruction, ...] | None = None
    xid: int = 0

    def encode(self, version: int) -> bytes:
        """The entry in ``version``'s layout (Nicira's up to 1.3, 1.4's after)."""
        if version < OFP14_VERSION:
            event = _NX_EVENT[UpdateEvent(self.event)]
            if self.event == UpdateEvent.ABBREV:
                return struct.pack("!HHI", 8, event, self.xid)
            if version == OFP13_VERSION:
                m = self.match.encode()
                mlen = struct.unpack_from("!HH", m)[1]
                tail = m + encode_insts(self.instructions or (), version)
            else:
                nxm = encode_nxm(self.match)
                mlen = len(nxm)
                tail = padded(nxm) + self._actions(version)
            head = struct.pack("!HHHHHHHBxQ", 24 + len(tail), event, self.reason, self.priority,
                               self.idle_timeout, self.hard_timeout, mlen, self.table_id,
                               self.cookie)  # fmt: skip
            return head + tail
        if self.event == UpdateEvent.ABBREV:
            return struct.pack("!HHI", 8, self.event, self.xid)
        if self.event in (UpdateEvent.PAUSED, UpdateEvent.RESUMED):
            return struct.pack("!HH4x", 8, self.event)
        tail = self.match.encode() + encode_insts(self.instructions or (), version)
        head = struct.pack("!HHBBHHH4xQ", 24 + len(tail), self.event, self.table_id, self.reason,
                           self.idle_timeout, self.hard_timeout, self.priority,
                           self.cookie)  # fmt: skip
        return head + tail

    def _actions(self, version: int) -> bytes:
        insts = self.instructions or ()
        if version == OFP10_VERSION:
            return actions_from_instructions(insts)
        acts = tuple(a for i in insts if isinstance(i, ApplyActions) for a in i.actions)
        return encode_acts(acts, version)

    @classmethod
    def parse(cls, r: Reader, version: int) -> FlowUpdate:
        """One entry (tests and controllers; 1.0-1.2 updates' actions are not read)."""
        length, event = r.unpack(struct.Struct("!HH"), "flow update")
        body = r.sub(length - 4, "flow update")
        if version < OFP14_VERSION:
            ev = _FROM_NX_EVENT.get(event)
            if ev is None:
                raise body.fail(f"flow update event {event}")
            if ev == UpdateEvent.ABBREV:
                (xid,) = body.unpack(struct.Struct("!I"), "abbrev")
                return cls(ev, xid=xid)
            reason, prio, idle, hard, mlen, table, cookie = body.unpack(
                struct.Struct("!HHHHHBxQ"), "flow update")  # fmt: skip
            if version == OFP13_VERSION:
                match = Match.parse(body)
                insts = parse_insts(body, version, match) if body.remaining() else None
                return cls(ev, table, reason, prio, idle, hard, cookie, match, insts)
            return cls(ev, table, reason, prio, idle, hard, cookie, parse_nxm(body, mlen), None)
        if event in (UpdateEvent.ABBREV,):
            (xid,) = body.unpack(struct.Struct("!I"), "abbrev")
            return cls(event, xid=xid)
        if event in (UpdateEvent.PAUSED, UpdateEvent.RESUMED):
            return cls(event)
        table, reason, idle, hard, prio, cookie = body.unpack(
            struct.Struct("!BBHHH4xQ"), "flow update")  # fmt: skip
        match = Match.parse(body)
        insts = parse_insts(body, version, match) if body.remaining() else None
        return cls(event, table, reason, prio, idle, hard, cookie, match, insts)


@_reply
@dataclass(frozen=True, slots=True, kw_only=True)
class FlowMonitorReply(MultipartReply):
    """Flow updates: the initial reply to a request, or asynchronous ones (xid 0)."""

    mp_type: ClassVar[MultipartType] = MultipartType.FLOW_MONITOR
    min_version: ClassVar[int] = OFP11_VERSION
    updates: tuple[FlowUpdate, ...] = ()

    def _body(self, version: int) -> bytes:
        entries = b"".join(u.encode(version) for u in self.updates)
        if version >= OFP14_VERSION:
            return struct.pack("!HH4x", self.mp_type, self.flags) + entries
        exp, sub = ((ONF_EXPERIMENTER_ID, ONFST_FLOW_MONITOR) if version == OFP13_VERSION
                    else (NX_EXPERIMENTER_ID, NxStatsType.FLOW_MONITOR))  # fmt: skip
        return struct.pack("!HH4xII", 0xFFFF, self.flags, exp, sub) + entries

    @classmethod
    def _mp_parse(cls, r: Reader, version: int, xid: int, flags: int) -> Self:
        return cls(xid=xid, flags=flags, updates=_updates(r, version))

    @classmethod
    def parse_entries(cls, data: bytes, version: int, xid: int = 0, flags: int = 0) -> Self:
        return cls(xid=xid, flags=flags, updates=_updates(Reader(data, 0), version))


def _updates(r: Reader, version: int) -> tuple[FlowUpdate, ...]:
    out = []
    while r.remaining():
        out.append(FlowUpdate.parse(r, version))
    return tuple(out)


EXPERIMENTER_MP_REPLY_PARSERS[(ONF_EXPERIMENTER_ID, ONFST_FLOW_MONITOR)] = (
    lambda r, version, xid, flags: FlowMonitorReply(
        xid=xid, flags=flags, updates=_updates(r, version)
    )
)
NX_STATS_ENCODERS[FlowMonitorReply] = (
    NxStatsType.FLOW_MONITOR,
    lambda msg: b"".join(u.encode(OFP10_VERSION) for u in msg.updates),  # type: ignore[attr-defined]
)


# -- Cancel, paused, resumed (Nicira messages up to 1.2, ONF's in 1.3) --------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowMonitorCancel(NxMessage):
    """NXT_FLOW_MONITOR_CANCEL (1.0-1.2) / ONFT_FLOW_MONITOR_CANCEL (1.3)."""

    subtype: ClassVar[NxType] = NxType.FLOW_MONITOR_CANCEL
    monitor_id: int

    def _body(self, version: int) -> bytes:
        head = (struct.pack("!II", ONF_EXPERIMENTER_ID, ONFST_FLOW_MONITOR)
                if version == OFP13_VERSION else nx_header(NXT_FLOW_MONITOR_CANCEL))  # fmt: skip
        return head + struct.pack("!I", self.monitor_id)

    @classmethod
    def _parse_cancel(cls, r: Reader, version: int, xid: int) -> Self:
        (mid,) = r.unpack(struct.Struct("!I"), "flow monitor cancel")
        r.expect_end("flow monitor cancel")
        return cls(xid=xid, monitor_id=mid)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowMonitorPaused(NxMessage):
    """NXT/ONFT_FLOW_MONITOR_PAUSED (``resumed``: _RESUMED), for 1.0-1.3; 1.4+ says it
    with a PAUSED/RESUMED flow update instead (``FlowMonitorReply``)."""

    subtype: ClassVar[NxType] = NxType.FLOW_MONITOR_PAUSED
    resumed: bool = False

    def _body(self, version: int) -> bytes:
        if version == OFP13_VERSION:
            sub = ONFT_FLOW_MONITOR_RESUMED if self.resumed else ONFT_FLOW_MONITOR_PAUSED
            return struct.pack("!II", ONF_EXPERIMENTER_ID, sub)
        return nx_header(NXT_FLOW_MONITOR_RESUMED if self.resumed else NXT_FLOW_MONITOR_PAUSED)


EXPERIMENTER_PARSERS[(NX_EXPERIMENTER_ID, NXT_FLOW_MONITOR_CANCEL)] = (
    FlowMonitorCancel._parse_cancel
)
EXPERIMENTER_PARSERS[(ONF_EXPERIMENTER_ID, ONFST_FLOW_MONITOR)] = FlowMonitorCancel._parse_cancel
