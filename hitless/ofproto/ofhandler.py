"""What OpenFlow messages mean to a bridge: one decoded request in, replies out.

``OfHandler(bridge)`` serves every OpenFlow session of one bridge. ``handle(session,
msg, now)`` applies the request to the bridge (flow-mod, group-mod, meter-mod, packet-out,
port-mod, bundles) or answers it (features, config, statistics, descriptions, role,
async config, barrier) and returns the replies to send on that session. A request the
bridge refuses raises ``RemoteProtocolError`` (the OFPT_ERROR to answer with); the caller
attaches the offending message's xid and bytes. ``async_messages(now)`` turns what the
bridge queued (packet-ins, flow-removed) into messages for the sessions that want them.

Sessions are ``hitless.openflow.Connection`` objects plus an ``OfSession`` for what the
protocol layer does not track (open bundles, whether the peer asked for asynchronous
messages). Pure: no sockets, no clock.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from hitless.ofproto.oftable import (
    MAX_METER_BANDS,
    MAX_METERS,
    N_TABLES,
    Rule,
    RuleChange,
    compile_match,
)
from hitless.ofproto.ofxlate import MISS_NO_FLOW
from hitless.openflow import nx_actions as nx
from hitless.openflow._wire import Reader
from hitless.openflow.connection import Connection
from hitless.openflow.constants import (
    NX_EXPERIMENTER_ID,
    OFP10_VERSION,
    OFP11_VERSION,
    OFP12_VERSION,
    OFP13_VERSION,
    OFP14_VERSION,
    OFP15_VERSION,
    ActionType,
    BadActionCode,
    BadRequestCode,
    BundleCtrlType,
    BundleFailedCode,
    Capabilities,
    ControllerRole,
    ErrorType,
    FlowModCommand,
    FlowRemovedReason,
    GroupCapabilities,
    GroupModCommand,
    InstructionType,
    MeterFlags,
    MsgType,
    MultipartFlags,
    OxmClass,
    OxmField,
    PacketInReason,
    PortConfig,
    PortModFailedCode,
    PortReason,
    PortState,
    QueueOpFailedCode,
    RoleRequestFailedCode,
    TableFeaturePropType,
)
from hitless.openflow.constants import Port as OfPort
from hitless.openflow.errors import NxError, RemoteProtocolError
from hitless.openflow.flowmon import (
    FlowMonitorCancel,
    FlowMonitorPaused,
    FlowMonitorReply,
    FlowMonitorRequest,
    FlowUpdate,
    MonitorCommand,
    MonitorFlags,
    MonitorRequest,
    UpdateEvent,
    monitor_error,
)
from hitless.openflow.match import PACKET_TYPE
from hitless.openflow.match import Match as OfMatch
from hitless.openflow.match import field as oxm_field
from hitless.openflow.messages import (
    BarrierReply,
    BarrierRequest,
    BundleAddMessage,
    BundleControl,
    EchoReply,
    Experimenter,
    FeaturesReply,
    FeaturesRequest,
    FlowMod,
    FlowRemoved,
    GetAsyncReply,
    GetAsyncRequest,
    GetConfigReply,
    GetConfigRequest,
    GroupMod,
    Message,
    MeterMod,
    PacketIn,
    PacketOut,
    PortDesc,
    PortMod,
    PortStatus,
    QueueGetConfigReply,
    QueueGetConfigRequest,
    RoleReply,
    RoleRequest,
    SetAsync,
    SetConfig,
    TableMod,
)
from hitless.openflow.multipart import (
    AggregateStatsReply,
    AggregateStatsRequest,
    DescReply,
    DescRequest,
    ExperimenterStatsReply,
    ExperimenterStatsRequest,
    FlowStats,
    FlowStatsReply,
    FlowStatsRequest,
    GroupDesc,
    GroupDescReply,
    GroupDescRequest,
    GroupFeaturesReply,
    GroupFeaturesRequest,
    GroupStats,
    GroupStatsReply,
    GroupStatsRequest,
    MeterConfig,
    MeterConfigReply,
    MeterConfigRequest,
    MeterFeaturesReply,
    MeterFeaturesRequest,
    MeterStats,
    MeterStatsReply,
    MeterStatsRequest,
    MultipartRequest,
    PortDescReply,
    PortDescRequest,
    PortStats,
    PortStatsReply,
    PortStatsRequest,
    QueueDescReply,
    QueueDescRequest,
    QueueStats,
    QueueStatsReply,
    QueueStatsRequest,
    TableCaps,
    TableDesc,
    TableDescReply,
    TableDescRequest,
    TableFeatureProp,
    TableFeatures,
    TableFeaturesReply,
    TableFeaturesRequest,
    TableReason,
    TableStats,
    TableStatsReply,
    TableStatsRequest,
    TableStatus,
)
from hitless.openflow.nx import NxStatsType
from hitless.openflow.nxm import spec_by_name, spec_of
from hitless.openflow.nxmsg import (
    NxCtFlushZone,
    NxResume,
    NxSetAsyncConfig2,
    NxTlvTableMod,
    NxTlvTableReply,
    NxTlvTableRequest,
    TlvCommand,
    TlvMap,
)
from hitless.openflow.wire_forms import instructions_for


def _idx(m: TlvMap) -> int:
    return m.index


if TYPE_CHECKING:
    from hitless.ofproto.bridge import Bridge

__all__ = ["BundleMessageFailed", "OfHandler", "OfSession"]

T = TypeVar("T")

OFPP_LOCAL_DP = 0xFFFE
OFPC14_BUNDLES = 1 << 9  # 1.4 capability bit (openflow-1.4 ofp_capabilities)
OFPTC14_EVICTION = 1 << 2  # ofp_table_config (1.4)

OFPTC14_VACANCY_EVENTS = 1 << 3
TABLE_MAX_ENTRIES = 1_000_000  # what table features and statistics say
GROUP_ADD_OR_MOD = 0x8000  # OFPGC_ADD_OR_MOD, Open vSwitch's extension (1.1+)
UNKNOWN = 2**64 - 1  # a counter the switch does not keep (§7.3.5.6: all ones)
_MODIFY = (FlowModCommand.MODIFY, FlowModCommand.MODIFY_STRICT)
CHUNK = 40  # entries per multipart reply message (keeps each well under 64 kB)
_SW_DESC = "hitless"


@dataclass
class OfSession:
    """Per-session state the pipeline keeps: open bundles, async opt-in."""

    # A management connection: asynchronous messages only once it asks for them (a
    # SET_ASYNC, or a SET_CONFIG with a nonzero miss_send_len, as ovs-ofctl monitor does).
    service: bool = True
    miss_send_len: int | None = None  # SET_CONFIG's, per connection; None: the default
    bundles: dict[int, list[Message]] = field(default_factory=dict)
    bundle_flags: dict[int, int] = field(default_factory=dict)
    # each bundled message's bytes as received (an error about it quotes them), in step
    # with ``bundles`` (a session inherited from a handoff has none: re-encoded then)
    bundle_raw: dict[int, list[bytes]] = field(default_factory=dict)
    closed_bundles: set[int] = field(default_factory=set)  # CLOSE_REQUEST seen
    monitors: dict[int, MonitorRequest] = field(default_factory=dict)  # flow monitors by id
    # Flow monitoring paused (the peer did not keep up): the rules added and modified since
    # (by id), reported in one refresh when it resumes, as Open vSwitch does.
    monitor_paused: bool = False
    paused_added: dict[int, Rule] = field(default_factory=dict)
    paused_modified: dict[int, Rule] = field(default_factory=dict)


def of_port(dp_port: int) -> int:
    return OfPort.LOCAL if dp_port == OFPP_LOCAL_DP else dp_port


def _chunks(items: Sequence[T], n: int = CHUNK) -> list[Sequence[T]]:
    if not items:
        return [items]
    return [items[i : i + n] for i in range(0, len(items), n)]


def _replies(cls: Any, xid: int, name: str, items: Sequence[Any], n: int = CHUNK) -> list[Message]:
    """Multipart replies carrying ``items`` in ``name``, split with OFPMPF_REPLY_MORE."""
    chunks = _chunks(items, n)
    return [
        cls(xid=xid, flags=_more(i, len(chunks)), **{name: tuple(c)}) for i, c in enumerate(chunks)
    ]


def _update(
    event: int, r: Rule, insts: tuple[Any, ...], reason: int, flags: int, version: int
) -> FlowUpdate:
    return FlowUpdate(
        event, r.table_id, reason if event == UpdateEvent.REMOVED else 0, r.priority,
        r.idle_timeout, r.hard_timeout, r.cookie, r.match,
        instructions_for(insts, version) if flags & MonitorFlags.INSTRUCTIONS else None,
    )  # fmt: skip


def _outputs_to(insts: tuple[Any, ...], port: int) -> bool:
    return Rule(0, 0, OfMatch(()), insts).outputs_to(port)


def _refuse_13_only(insts: Iterable[Any]) -> None:
    """Open vSwitch 3.1 decodes ``dec_nsh_ttl`` in OpenFlow 1.3 and later only (it sends
    it in a 1.0 flow dump all the same): before 1.3 a rule with it is refused alike."""

    def walk(acts: Iterable[Any]) -> bool:
        return any(isinstance(a, nx.NxDecNshTtl) or walk(getattr(a, "actions", ()) or ())
                   for a in acts)  # fmt: skip

    if walk(a for i in insts for a in getattr(i, "actions", ()) or ()):
        raise RemoteProtocolError(
            "dec_nsh_ttl is not an OpenFlow action before 1.3",
            ErrorType.BAD_ACTION,
            BadActionCode.BAD_EXP_TYPE,
        )


def _more(i: int, total: int) -> int:
    return MultipartFlags.MORE if i < total - 1 else 0


def _split_time(seconds: float) -> tuple[int, int]:
    """(sec, nsec) of a duration, in whole milliseconds as Open vSwitch reports them."""
    ms = int(max(0.0, seconds) * 1000)
    return ms // 1000, ms % 1000 * 1_000_000


def _field_headers() -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(match, wildcards, set-field) OXM headers of the fields the pipeline has: every
    field with a place in the pipeline key (hitless.ofproto.fields.LOCS), maskable ones
    with the hasmask bit in the match list (ovs-ofctl: "arbitrary mask"), and every field
    a set_field may write (ct_mark and ct_label inside ``ct(exec(...))`` only, listed as
    Open vSwitch lists them). An experimenter-class field's entry is its 8-byte header
    (32-bit header, experimenter id) as one 64-bit integer."""
    from hitless.ofproto.fields import LOCS
    from hitless.ofproto.oftable import SETTABLE, WRITABLE

    match: list[int] = []
    wild: list[int] = []
    sets: list[int] = []
    seen: set[int] = set()
    settable = {*WRITABLE, "ct_mark", "ct_label"}
    names = [*LOCS, *settable, *(f.name.lower() for f in OxmField if f in SETTABLE)]

    def header(cls: int, field: int, length: int, exp: int | None, hasmask: int = 0) -> int:
        h = (cls << 16) | (field << 9) | hasmask << 8 | (length + (4 if exp is not None else 0))
        return h if exp is None else h << 32 | exp

    for name in names:
        spec = spec_by_name(name)
        if spec is None:
            continue
        cls, field, exp = spec.headers[0]
        plain = header(cls, field, spec.nbytes, exp)
        if name in LOCS and plain not in seen:
            seen.add(plain)
            wild.append(plain)
            match.append(header(cls, field, spec.nbytes * 2, exp, 1) if spec.maskable else plain)
        if (name in settable or (cls == OxmClass.OPENFLOW_BASIC and field in SETTABLE)) and (
            plain not in sets
        ):
            sets.append(plain)
    return tuple(match), tuple(wild), tuple(sets)


def _table_features(meter_instruction: bool = True) -> tuple[TableFeatures, ...]:
    """Every table's features; ``meter_instruction`` False for 1.5, where a meter is an
    action and Open vSwitch lists no meter instruction."""
    insts = tuple(
        int(i) for i in InstructionType
        if i != InstructionType.EXPERIMENTER and (meter_instruction or i != InstructionType.METER)
    )  # fmt: skip
    last_insts = tuple(i for i in insts if i != InstructionType.GOTO_TABLE)
    acts = (
        ActionType.OUTPUT,
        ActionType.PUSH_VLAN,
        ActionType.POP_VLAN,
        ActionType.GROUP,
        ActionType.SET_NW_TTL,
        ActionType.DEC_NW_TTL,
        ActionType.SET_QUEUE,
        ActionType.SET_FIELD,
        ActionType.SET_MPLS_TTL,
        ActionType.DEC_MPLS_TTL,
        ActionType.PUSH_MPLS,
        ActionType.POP_MPLS,
    )
    match, wild, sets = _field_headers()
    out = []
    from hitless.ofproto.oftable import N_TABLES

    for t in range(N_TABLES):
        props = (
            # the last table has nowhere to go: no goto_table (as Open vSwitch says it)
            TableFeatureProp(TableFeaturePropType.INSTRUCTIONS,
                             insts if t < N_TABLES - 1 else last_insts),  # fmt: skip
            TableFeatureProp(TableFeaturePropType.NEXT_TABLES, tuple(range(t + 1, N_TABLES))),
            TableFeatureProp(TableFeaturePropType.WRITE_ACTIONS, tuple(int(a) for a in acts)),
            TableFeatureProp(TableFeaturePropType.APPLY_ACTIONS, tuple(int(a) for a in acts)),
            TableFeatureProp(TableFeaturePropType.MATCH, match),
            TableFeatureProp(TableFeaturePropType.WILDCARDS, wild),
            TableFeatureProp(TableFeaturePropType.WRITE_SETFIELD, sets),
            TableFeatureProp(TableFeaturePropType.APPLY_SETFIELD, sets),
        )
        out.append(
            TableFeatures(
                table_id=t,
                name="",  # unnamed, as Open vSwitch without Flow_Table rows
                metadata_match=2**64 - 1,
                metadata_write=2**64 - 1,
                max_entries=TABLE_MAX_ENTRIES,
                properties=props,
            )
        )
    return tuple(out)


_TABLE_FEATURES: tuple[TableFeatures, ...] | None = None
_TABLE_FEATURES15: tuple[TableFeatures, ...] | None = None
_TABLE_CAPS: tuple[TableCaps, ...] | None = None
OFPC11_ARP_MATCH_IP = 1 << 7  # ofp_capabilities of OpenFlow 1.1 (1.2 dropped it)


def _table_caps() -> tuple[TableCaps, ...]:
    """What each table can do as 1.1/1.2 table statistics say it: the same fields,
    actions and instructions the 1.3 table features list."""
    global _TABLE_FEATURES, _TABLE_CAPS
    if _TABLE_CAPS is not None:
        return _TABLE_CAPS
    if _TABLE_FEATURES is None:
        _TABLE_FEATURES = _table_features()
    out = []
    for tf in _TABLE_FEATURES:
        ids = {p.type: frozenset(p.ids) for p in tf.properties}
        # 1.1/1.2 know no packet_type (an OXM of 1.3+ in Open vSwitch)
        fields = {t: frozenset((h >> 9) & 0x7F for h in v if h >> 16 == OxmClass.OPENFLOW_BASIC
                               and (h >> 9) & 0x7F != PACKET_TYPE)
                  for t, v in ids.items()}  # fmt: skip
        insts = ids[TableFeaturePropType.INSTRUCTIONS] - {InstructionType.METER}
        if not ids[TableFeaturePropType.NEXT_TABLES]:
            insts -= {InstructionType.GOTO_TABLE}
        out.append(
            TableCaps(
                match=fields[TableFeaturePropType.MATCH],
                wildcards=fields[TableFeaturePropType.WILDCARDS],
                actions=ids[TableFeaturePropType.APPLY_ACTIONS],
                setfields=fields[TableFeaturePropType.APPLY_SETFIELD],
                instructions=insts,
                metadata_match=tf.metadata_match,
                metadata_write=tf.metadata_write,
                max_entries=tf.max_entries,
            )
        )
    _TABLE_CAPS = tuple(out)
    return _TABLE_CAPS



def _group_actions(version: int | None) -> int:
    """The actions a bucket can run, as the version's action-type bitmap says them (the
    bits Open vSwitch uses)."""
    if version == OFP10_VERSION:
        return (1 << 12) - 1  # every 1.0 action: output .. enqueue
    a = ActionType
    common = (1 << a.OUTPUT | 1 << a.PUSH_VLAN | 1 << a.POP_VLAN | 1 << a.SET_QUEUE
              | 1 << a.GROUP | 1 << a.SET_NW_TTL | 1 << a.DEC_NW_TTL | 1 << a.SET_MPLS_TTL
              | 1 << a.DEC_MPLS_TTL | 1 << a.PUSH_MPLS | 1 << a.POP_MPLS)  # fmt: skip
    if version == OFP11_VERSION:
        # and 1.1's set actions (set_vlan_vid .. set_tp_dst, set_mpls_label, set_mpls_tc)
        return common | ((1 << 11) - 1) | 1 << 13 | 1 << 14
    return common | 1 << a.SET_FIELD

class OfHandler:
    def __init__(self, bridge: Bridge, datapath_id: int = 0) -> None:
        self.bridge = bridge
        self.datapath_id = datapath_id
        self.datapath_id_cfg: object = None  # the configuration it was computed from
        self.switch_flags = 0
        self.miss_send_len = 128
        self._now = 0.0
        self._ports_seen: dict[int, PortDesc] | None = None
        # rule changes not yet sent to flow monitors: (change, session that made it, xid)
        self._changes: list[tuple[RuleChange, Connection | None, int]] = []
        # OFPT_TABLE_MOD's, per table: 1.1/1.2 miss config (OFPTC11_TABLE_MISS_*), 1.4+
        # eviction on, vacancy events on with (vacancy_down, vacancy_up) percentages
        self.table_miss = bridge.of.table_miss  # translation reads it (ofxlate)
        self.table_evict = bridge.of_evict  # the bridge evicts from these when full
        self.table_vacancy: dict[int, tuple[int, int]] = {}
        self.vacancy_event: dict[int, int] = {}  # TableReason each such table waits for
        self._compiled: dict[MonitorRequest, tuple[int, int, int, int]] = {}
        # group and meter mods the last ``handle`` applied (one, or a committed bundle's),
        # in order, as received: what the session's peers may get as REQUESTFORWARD
        self.applied_mods: list[GroupMod | MeterMod] = []
        # the bridge's master election id (the newest generation id a master or slave
        # role request gave), as Open vSwitch keeps it for all of a bridge's sessions
        self.election_id: int | None = None

    def _take_changes(self, origin: Connection | None, xid: int) -> None:
        watch = self.bridge.of.watch
        if watch:
            self._changes += [(c, origin, xid) for c in watch]
            watch.clear()

    # -- requests --
    def handle(
        self,
        conn: Connection,
        session: OfSession,
        msg: Message,
        now: float,
        others: Iterable[Connection] = (),
    ) -> list[Message]:
        """The replies to ``msg``; rule changes it makes wait for ``flow_updates``, group
        and meter mods it applied are in ``applied_mods`` until the next call."""
        self.applied_mods = []
        if self.bridge.of.watch is None:
            return self._handle(conn, session, msg, now, others)
        self._take_changes(None, 0)  # what happened before it (learning, timeouts)
        try:
            return self._handle(conn, session, msg, now, others)
        finally:
            self._take_changes(conn, msg.xid)

    def _handle(
        self,
        conn: Connection,
        session: OfSession,
        msg: Message,
        now: float,
        others: Iterable[Connection] = (),
    ) -> list[Message]:
        br = self.bridge
        xid = msg.xid
        self._now = now
        if isinstance(msg, FlowMod):
            if conn.version is not None and conn.version < OFP13_VERSION:
                _refuse_13_only(msg.instructions)
            if conn.version in (OFP10_VERSION, OFP11_VERSION) and msg.command in _MODIFY:
                self._modify10(msg, now)
            else:
                br.flow_mod(msg, now)
            return []
        if isinstance(msg, GroupMod):
            gm = msg
            if msg.command == GROUP_ADD_OR_MOD:  # Open vSwitch's add-group --may-create
                known = msg.group_id in br.of.groups
                gm = replace(msg, command=GroupModCommand.MODIFY if known else GroupModCommand.ADD)
            br.group_mod(gm, now)
            self.applied_mods.append(msg)
            return []
        if isinstance(msg, MeterMod):
            br.meter_mod(msg, now)
            self.applied_mods.append(msg)
            return []
        if isinstance(msg, PacketOut):
            if msg.buffer_id != 0xFFFFFFFF:
                raise RemoteProtocolError(
                    "no packets are buffered", ErrorType.BAD_REQUEST, BadRequestCode.BUFFER_UNKNOWN
                )
            br.of.validate_actions(msg.actions)
            br.packet_out(msg, now)
            return []
        if isinstance(msg, PortMod):
            return self._port_mod(msg)
        if isinstance(msg, EchoReply):
            return []  # the answer to our keepalive probe (the connection noted it)
        if isinstance(msg, BarrierRequest):
            br.commit_openflow()  # everything before the barrier is in the datapath
            return [BarrierReply(xid=xid)]
        if isinstance(msg, FeaturesRequest):
            caps = (
                Capabilities.FLOW_STATS
                | Capabilities.TABLE_STATS
                | Capabilities.PORT_STATS
                | Capabilities.GROUP_STATS
                | Capabilities.QUEUE_STATS
            )
            if conn.version is not None and conn.version >= OFP14_VERSION:
                caps |= OFPC14_BUNDLES  # as Open vSwitch (which does not say FLOW_MONITORING)
            if conn.version == OFP11_VERSION:
                caps |= OFPC11_ARP_MATCH_IP  # as Open vSwitch says in 1.1
            old = conn.version is not None and conn.version < OFP13_VERSION
            ports = tuple(self.port_descs()) if old else ()  # 1.0-1.2 list them here
            return [
                FeaturesReply(
                    xid=xid,
                    datapath_id=self.datapath_id,
                    n_tables=254,
                    capabilities=caps,
                    ports=ports,
                )
            ]
        if isinstance(msg, GetConfigRequest):
            msl = session.miss_send_len
            if msl is None:
                msl = 0 if session.service else self.miss_send_len
            return [GetConfigReply(xid=xid, flags=self.switch_flags, miss_send_len=msl)]
        if isinstance(msg, SetConfig):
            # The fragment flags are the switch's; miss_send_len is the connection's.
            self.switch_flags = msg.flags
            session.miss_send_len = msg.miss_send_len
            if msg.miss_send_len:
                session.service = False
            return []
        if isinstance(msg, RoleRequest):
            return [self._role(conn, msg, others)]
        if isinstance(msg, GetAsyncRequest):
            return [GetAsyncReply(xid=xid, config=conn.async_config.for_version(conn.version))]
        if isinstance(msg, (SetAsync, NxSetAsyncConfig2)):
            # What the message leaves out stays as it was (1.4.1 §7.3.10, Open vSwitch).
            conn.async_config = conn.async_config.updated(msg.config)
            session.service = False
            return []
        if isinstance(msg, BundleControl):
            return self._bundle_control(conn, session, msg, now, others)
        if isinstance(msg, BundleAddMessage):
            return self._bundle_add(session, msg)
        if isinstance(msg, QueueGetConfigRequest):
            return [self._queue_config(conn, msg)]
        if isinstance(msg, (TableDescRequest, QueueDescRequest)) and (
            conn.version is None or conn.version < OFP14_VERSION
        ):
            raise RemoteProtocolError(
                f"{type(msg).__name__} needs OpenFlow 1.4",
                ErrorType.BAD_REQUEST,
                BadRequestCode.BAD_MULTIPART,
            )
        if isinstance(msg, TableMod):
            self._table_mod(msg, conn.version or OFP13_VERSION)
            return []
        if isinstance(msg, FlowMonitorRequest):
            return self._flow_monitor(conn, session, msg)
        if isinstance(msg, FlowMonitorCancel):
            if session.monitors.pop(msg.monitor_id, None) is None:
                raise monitor_error(f"no flow monitor {msg.monitor_id}", "UNKNOWN_MONITOR",
                                    conn.version or OFP13_VERSION)  # fmt: skip
            return []
        if isinstance(msg, MultipartRequest):
            return self._multipart(msg, now, conn.version or OFP13_VERSION)
        if isinstance(msg, NxTlvTableRequest):
            return [NxTlvTableReply(xid=xid, maps=tuple(sorted(self.tlv_maps.values(), key=_idx)))]
        if isinstance(msg, NxTlvTableMod):
            self._tlv_mod(msg)
            return []
        if isinstance(msg, NxCtFlushZone):
            br.datapath.ct_flush(msg.zone_id)
            return []
        if isinstance(msg, NxResume):
            fields = []
            for o in msg.metadata.fields:
                spec = spec_of(o)
                if spec is not None:
                    fields.append((spec.name, o.value, o.mask))
            try:
                br.resume(msg.data, msg.continuation, fields, now)
            except ValueError as e:
                raise RemoteProtocolError.nicira(f"NXT_RESUME: {e}", NxError.RESUME_STALE) from None
            return []
        if isinstance(msg, Experimenter):
            raise msg.unsupported()
        raise RemoteProtocolError(
            f"message type {int(msg.type)} is not supported here",
            ErrorType.BAD_REQUEST,
            BadRequestCode.BAD_TYPE,
        )

    def _table_mod(self, msg: TableMod, version: int) -> None:
        """Table configuration as Open vSwitch 3.1 takes it: in 1.1/1.2 the table-miss
        behaviour, in 1.4+ eviction and vacancy events (with the vacancy property's
        thresholds); 1.3's config bits are deprecated and ignored. Kept and reported
        (table statistics in 1.1/1.2, table descriptions in 1.4+)."""
        if msg.table_id != 0xFF and msg.table_id >= N_TABLES:
            raise RemoteProtocolError(
                f"table {msg.table_id}", ErrorType.BAD_REQUEST, BadRequestCode.BAD_TABLE_ID
            )
        tables = range(N_TABLES) if msg.table_id == 0xFF else (msg.table_id,)
        if version in (OFP11_VERSION, OFP12_VERSION):
            for t in tables:
                self.table_miss[t] = msg.config & 3
            self.bridge.of_config_changed(tables)
            return
        if version < OFP14_VERSION:
            return
        vacancy: tuple[int, int] | None = None
        r = Reader(msg.properties, 0)
        while r.remaining() >= 4:
            ptype, plen = r.unpack(struct.Struct("!HH"), "table mod property")
            body = r.sub(max(0, plen - 4), "table mod property")
            r.take(min(r.remaining(), (8 - plen % 8) % 8), "property padding")
            if ptype == 3:  # OFPTMPT_VACANCY: vacancy_down, vacancy_up, vacancy
                down, up = body.unpack(struct.Struct("!BB"), "vacancy property")
                if down > up or up > 100:
                    raise RemoteProtocolError(
                        f"vacancy_down {down}% > vacancy_up {up}%", ErrorType.BAD_PROPERTY, 4
                    )  # OFPBPC_BAD_VALUE, as Open vSwitch
                vacancy = (down, up)
        for t in tables:
            if msg.config & OFPTC14_EVICTION:
                self.table_evict.add(t)
            else:
                self.table_evict.discard(t)
            if msg.config & OFPTC14_VACANCY_EVENTS:
                self.table_vacancy[t] = vacancy or self.table_vacancy.get(t, (0, 0))
                self._vacancy_event(t)  # armed now, if it was not (Open vSwitch)
            else:
                self.table_vacancy.pop(t, None)
                self.vacancy_event.pop(t, None)

    def _vacancy(self, table_id: int) -> int:
        """A table's free space in percent, as Open vSwitch computes it: against the
        Flow_Table ``flow_limit`` (none: 2**32 - 1), rounded down."""
        cfg = getattr(self.bridge, "cfg", None)
        ft = cfg.flow_tables.get(table_id) if cfg is not None else None
        limit = ft.flow_limit if ft is not None and ft.flow_limit is not None else 0xFFFFFFFF
        n = len(self.bridge.of.tables[table_id])
        return 100 if not limit else 0 if n >= limit else int((limit - n) * 100.0 / limit)

    def _vacancy_event(self, table_id: int) -> int:
        """The event a table with vacancy events waits for next: up while its vacancy is
        below vacancy_up when they were turned on (or the table came with a handoff),
        else down; each event sent arms the other."""
        ev = self.vacancy_event.get(table_id)
        if ev is None:
            up = self.table_vacancy[table_id][1]
            ev = self.vacancy_event[table_id] = (
                TableReason.VACANCY_UP if self._vacancy(table_id) < up else TableReason.VACANCY_DOWN
            )
        return ev

    def table_status(self) -> list[TableStatus]:
        """OFPT_TABLE_STATUS for each table with vacancy events whose free space crossed
        the threshold it waits for (vacancy_down going down, vacancy_up going up)."""
        out = []
        for t, (down, up) in self.table_vacancy.items():
            vacancy = self._vacancy(t)
            if vacancy < down:
                event = TableReason.VACANCY_DOWN
            elif vacancy > up:
                event = TableReason.VACANCY_UP
            else:
                continue
            if event == self._vacancy_event(t):
                out.append(TableStatus(reason=event, table=self._table_desc(t)))
                self.vacancy_event[t] = (TableReason.VACANCY_UP if event == TableReason.VACANCY_DOWN
                                         else TableReason.VACANCY_DOWN)  # fmt: skip
        return out

    def _flow_tables(self) -> dict[int, tuple[str, int]]:
        """Table id -> (name, max_entries) of the tables a Flow_Table row configures:
        its ``name`` and its ``flow_limit`` (else the default), as Open vSwitch shows
        them in table features and in OpenFlow 1.0-1.2 table statistics."""
        cfg = getattr(self.bridge, "cfg", None)
        if cfg is None:
            return {}
        return {
            tid: (ft.name or "", ft.flow_limit if ft.flow_limit is not None else TABLE_MAX_ENTRIES)
            for tid, ft in cfg.flow_tables.items()
        }

    def _table_desc(self, table_id: int) -> TableDesc:
        config = (OFPTC14_EVICTION if table_id in self.table_evict else 0) | (
            OFPTC14_VACANCY_EVENTS if table_id in self.table_vacancy else 0
        )
        # Eviction criteria as Open vSwitch lists them: other | importance | lifetime.
        props = struct.pack("!HHI", 2, 8, 0x7)
        vac = self.table_vacancy.get(table_id)
        if vac is not None:
            props += struct.pack("!HHBBBx", 3, 8, vac[0], vac[1], self._vacancy(table_id))
        return TableDesc(table_id=table_id, config=config, properties=props)

    # -- flow monitors --
    def _flow_monitor(
        self, conn: Connection, session: OfSession, msg: FlowMonitorRequest
    ) -> list[Message]:
        """Add, replace or delete this session's monitors (all or none, in the order
        given, as Open vSwitch does) and answer with the rules the new ones see now."""
        version = conn.version or OFP13_VERSION
        mons = dict(session.monitors)
        fresh: list[MonitorRequest] = []
        for m in msg.monitors:
            if m.table_id != 0xFF and m.table_id >= N_TABLES:
                raise RemoteProtocolError(
                    f"table {m.table_id}", ErrorType.BAD_REQUEST, BadRequestCode.BAD_TABLE_ID
                )
            known = m.monitor_id in mons
            if m.command == MonitorCommand.ADD and known:
                raise monitor_error(
                    f"flow monitor {m.monitor_id} exists", "MONITOR_EXISTS", version
                )
            if m.command in (MonitorCommand.MODIFY, MonitorCommand.DELETE) and not known:
                raise monitor_error(f"no flow monitor {m.monitor_id}", "UNKNOWN_MONITOR", version)
            if m.command == MonitorCommand.DELETE:
                del mons[m.monitor_id]
                continue
            if m.command not in (MonitorCommand.ADD, MonitorCommand.MODIFY):
                raise monitor_error(f"monitor command {m.command}", "BAD_COMMAND", version)
            mons[m.monitor_id] = m
            fresh.append(m)
        session.monitors = mons
        if self.bridge.of.watch is None:
            self.bridge.of.watch = []
        wanted: dict[int, tuple[Rule, int]] = {}  # the initial rules, with their flags
        for m in fresh:
            if not m.flags & MonitorFlags.INITIAL:
                continue
            for r in self.bridge.of.select(m.table_id, m.match, out_port=m.out_port,
                                           out_group=m.out_group):  # fmt: skip
                _, flags = wanted.get(id(r), (r, 0))
                wanted[id(r)] = (r, flags | m.flags)
        rules = sorted(wanted.values(), key=lambda rf: (rf[0].table_id, -rf[0].priority))
        updates = [  # table by table, highest priority first, as Open vSwitch lists them
            _update(UpdateEvent.INITIAL, r, r.instructions, 0, flags, version)
            for r, flags in rules
        ]
        return _replies(FlowMonitorReply, msg.xid, "updates", updates)

    def flow_updates(self, sessions: Sequence[tuple[Connection, OfSession]]) -> list[list[Message]]:
        """Per session (in the order given), the flow updates its monitors want for the
        rule changes since the last call: in full, or one abbreviated update for the
        changes a session made itself unless its monitor asked for them in full (Open
        vSwitch's connmgr ofmonitor_report)."""
        of = self.bridge.of
        out: list[list[Message]] = [[] for _ in sessions]
        if of.watch is None:
            return out
        if not any(s.monitors for _, s in sessions):
            of.watch = None  # nobody listens: stop recording
            self._changes.clear()
            self._compiled.clear()
            return out
        self._take_changes(None, 0)
        if not self._changes:
            return out
        changes, self._changes = self._changes, []
        for i, (conn, session) in enumerate(sessions):
            if not session.monitors or conn.version is None:
                continue
            version = conn.version
            updates: list[FlowUpdate] = []
            abbreviated = False
            for ch, origin, xid in changes:
                if session.monitor_paused and not self._while_paused(session, ch):
                    continue
                flags = self._monitor_flags(session, ch)
                if not flags:
                    continue
                if flags & MonitorFlags.ONLY_OWN or origin is not conn or session.monitor_paused:
                    updates.append(_update(ch.event, ch.rule, ch.instructions, ch.reason,
                                           flags, version))  # fmt: skip
                elif not abbreviated:
                    updates.append(FlowUpdate(UpdateEvent.ABBREV, xid=xid))
                    abbreviated = True
            if updates:
                out[i] = list(_replies(FlowMonitorReply, 0, "updates", updates))
        return out

    @staticmethod
    def _while_paused(session: OfSession, ch: RuleChange) -> bool:
        """Whether a paused session still hears of ``ch`` now: only the removal of a rule
        it knew before the pause; the rest waits for the refresh at resume."""
        rid = id(ch.rule)
        if ch.event == UpdateEvent.REMOVED:
            session.paused_modified.pop(rid, None)
            return session.paused_added.pop(rid, None) is None
        if ch.event == UpdateEvent.ADDED:
            session.paused_added[rid] = ch.rule
        elif rid not in session.paused_added:
            session.paused_modified[rid] = ch.rule
        return False

    def pause_monitors(self, conn: Connection, session: OfSession) -> Message:
        """Pause ``session``'s flow monitoring (its peer has a backlog): the message that
        says so (Nicira's or ONF's before 1.4, a PAUSED update from 1.4 on)."""
        session.monitor_paused = True
        session.paused_added.clear()
        session.paused_modified.clear()
        if (conn.version or OFP13_VERSION) >= OFP14_VERSION:
            return FlowMonitorReply(updates=(FlowUpdate(UpdateEvent.PAUSED),))
        return FlowMonitorPaused(resumed=False)

    def resume_monitors(self, conn: Connection, session: OfSession) -> list[Message]:
        """Resume a paused session: the rules added or modified meanwhile that its
        monitors see (ADDED, MODIFIED), then RESUMED."""
        version = conn.version or OFP13_VERSION
        updates: list[FlowUpdate] = []
        for rules, event, want in (
            (session.paused_added, UpdateEvent.ADDED, MonitorFlags.ADD),
            (session.paused_modified, UpdateEvent.MODIFIED, MonitorFlags.MODIFY),
        ):
            for r in sorted(rules.values(), key=lambda r: (r.table_id, -r.priority)):
                ch = RuleChange(event, r, r.instructions)
                flags = self._monitor_flags(session, ch)
                if event == UpdateEvent.ADDED and not flags:  # an add a MODIFY monitor sees
                    flags = self._monitor_flags(session, RuleChange(UpdateEvent.MODIFIED, r, r.instructions))
                    event = UpdateEvent.MODIFIED if flags else event
                if flags & (want | MonitorFlags.MODIFY):
                    updates.append(_update(event, r, r.instructions, 0, flags, version))
        session.monitor_paused = False
        session.paused_added.clear()
        session.paused_modified.clear()
        out: list[Message] = list(_replies(FlowMonitorReply, 0, "updates", updates)) if updates else []
        if version >= OFP14_VERSION:
            out.append(FlowMonitorReply(updates=(FlowUpdate(UpdateEvent.RESUMED),)))
        else:
            out.append(FlowMonitorPaused(resumed=True))
        return out

    def _monitor_flags(self, session: OfSession, ch: RuleChange) -> int:
        """The union of the flags of ``session``'s monitors that see change ``ch``."""
        want = {UpdateEvent.ADDED: MonitorFlags.ADD, UpdateEvent.REMOVED: MonitorFlags.REMOVED,
                UpdateEvent.MODIFIED: MonitorFlags.MODIFY}[UpdateEvent(ch.event)]  # fmt: skip
        r = ch.rule
        flags = 0
        for m in session.monitors.values():
            if not m.flags & want or m.table_id not in (0xFF, r.table_id):
                continue
            if m.out_port != OfPort.ANY and not (
                _outputs_to(ch.instructions, m.out_port)
                or (ch.old is not None and _outputs_to(ch.old, m.out_port))
            ):
                continue
            if m.out_group != 0xFFFFFFFF and not r.uses_group(m.out_group):
                continue
            compiled = self._compiled.get(m)
            if compiled is None:
                compiled = self._compiled[m] = compile_match(m.match)
            if r.covered_by(*compiled):
                flags |= m.flags
        return flags

    @property
    def tlv_maps(self) -> dict[int, TlvMap]:
        """NXT_TLV_TABLE_MOD's, by tun_metadata index (the pipeline checks rules by it)."""
        return self.bridge.of.tlv_maps

    @tlv_maps.setter
    def tlv_maps(self, maps: dict[int, TlvMap]) -> None:
        self.bridge.of.tlv_maps = maps

    def _tlv_mod(self, msg: NxTlvTableMod) -> None:
        """The Geneve option map (tun_metadata<n> fields), all or nothing."""
        maps = dict(self.tlv_maps)
        if msg.command in (TlvCommand.CLEAR, TlvCommand.DELETE):
            gone = maps if msg.command == TlvCommand.CLEAR else [m.index for m in msg.maps]
            used = self.bridge.of.tlv_in_use(gone)
            if used is not None:
                raise RemoteProtocolError.nicira(
                    f"tun_metadata{used} is used by a flow", NxError.TLV_INVALID_DEL
                )
        if msg.command == TlvCommand.CLEAR:
            maps.clear()
        elif msg.command == TlvCommand.DELETE:
            for m in msg.maps:
                maps.pop(m.index, None)
        elif msg.command == TlvCommand.ADD:
            for m in msg.maps:  # Open vSwitch's checks and errors, in its order
                old = maps.get(m.index)
                if m.index >= 64:
                    raise RemoteProtocolError.nicira(
                        f"tun_metadata{m.index}: no such field", NxError.TLV_BAD_FIELD_IDX
                    )
                if m.option_len % 4 or m.option_len > 124:
                    raise RemoteProtocolError.nicira(
                        f"option length {m.option_len}", NxError.TLV_BAD_OPT_LEN
                    )
                if old is not None and old != m:
                    raise RemoteProtocolError.nicira(
                        f"tun_metadata{m.index} is already mapped", NxError.TLV_ALREADY_MAPPED
                    )
                if any(
                    (o.option_class, o.option_type) == (m.option_class, m.option_type)
                    and o.index != m.index
                    for o in maps.values()
                ):
                    raise RemoteProtocolError.nicira(
                        f"option {m.option_class:#x}/{m.option_type:#x} is mapped elsewhere",
                        NxError.TLV_DUP_ENTRY,
                    )
                maps[m.index] = m
        else:
            raise RemoteProtocolError.nicira(
                f"TLV table command {msg.command}", NxError.TLV_BAD_COMMAND
            )
        self.tlv_maps = maps

    def _modify10(self, fm: FlowMod, now: float) -> None:
        """OpenFlow 1.0 and 1.1 MODIFY: every table unless the session named one (NXT_FLOW_
        MOD_TABLE_ID, or 1.1's table_id), and a flow that matches nothing is added, as 1.0
        (§4.6) and 1.1 say and Open vSwitch does (1.2 dropped the add)."""
        of = self.bridge.of
        strict = fm.command == FlowModCommand.MODIFY_STRICT
        rules = of.select(
            fm.table_id, fm.match, strict=strict, priority=fm.priority,
            cookie=fm.cookie, cookie_mask=fm.cookie_mask,
        )  # fmt: skip
        if not rules:
            if fm.cookie_mask:
                return  # a cookie-selected modify never adds
            table = 0 if fm.table_id == 0xFF else fm.table_id
            add = replace(fm, command=FlowModCommand.ADD, table_id=table, cookie_mask=0)
            self.bridge.flow_mod(add, now)
            return
        for table in sorted({r.table_id for r in rules}):
            self.bridge.flow_mod(replace(fm, table_id=table), now)

    def _queue_config(self, conn: Connection, msg: QueueGetConfigRequest) -> Message:
        """Every port has one queue, 0, with no properties (as Open vSwitch reports on
        ports without QoS)."""
        port = OFPP_LOCAL_DP if msg.port == OfPort.LOCAL else msg.port
        ports = self.bridge.datapath.ports()
        if msg.port != OfPort.ANY and port not in ports:
            raise RemoteProtocolError(
                f"no port {msg.port}", ErrorType.QUEUE_OP_FAILED, QueueOpFailedCode.BAD_PORT
            )
        wanted = sorted(ports) if msg.port == OfPort.ANY else [port]
        if conn.version in (OFP10_VERSION, OFP11_VERSION):  # ofp_packet_queue without port
            queues = b"".join(struct.pack("!IH2x", 0, 8) for _ in wanted[:1])
        else:
            queues = b"".join(struct.pack("!IIH6x", 0, of_port(p), 16) for p in wanted)
        return QueueGetConfigReply(xid=msg.xid, port=msg.port, queues=queues)

    def _port_mod(self, msg: PortMod) -> list[Message]:
        port = OFPP_LOCAL_DP if msg.port_no == OfPort.LOCAL else msg.port_no
        dpp = self.bridge.datapath.ports().get(port)
        if dpp is None:
            raise RemoteProtocolError(
                f"no port {msg.port_no}", ErrorType.PORT_MOD_FAILED, PortModFailedCode.BAD_PORT
            )
        if msg.hw_addr != dpp.mac:
            raise RemoteProtocolError(
                "hw_addr does not match the port",
                ErrorType.PORT_MOD_FAILED,
                PortModFailedCode.BAD_HW_ADDR,
            )
        self.bridge.port_mod(port, msg.config, msg.mask, self._now)
        return []

    def _role(self, conn: Connection, msg: RoleRequest, others: Iterable[Connection]) -> Message:
        others = tuple(others)
        role = msg.role
        if role not in (
            ControllerRole.NOCHANGE,
            ControllerRole.EQUAL,
            ControllerRole.MASTER,
            ControllerRole.SLAVE,
        ):
            raise RemoteProtocolError(
                f"role {role}", ErrorType.ROLE_REQUEST_FAILED, RoleRequestFailedCode.BAD_ROLE
            )
        # The generation id is the bridge's, not the session's (§6.3.6; Open vSwitch): the
        # newest one any session gave. Sessions keep the one they gave (a handoff's
        # session record carries it), so the newest of theirs stands in after an upgrade.
        gen = self.election_id
        for c in (conn, *others):
            if c.generation_id is not None and (
                gen is None or ((c.generation_id - gen) & (2**64 - 1)) < 2**63
            ):
                gen = c.generation_id
        if role in (ControllerRole.MASTER, ControllerRole.SLAVE):
            if gen is not None and ((msg.generation_id - gen) & (2**64 - 1)) >= 2**63:
                raise RemoteProtocolError(
                    "stale generation id",
                    ErrorType.ROLE_REQUEST_FAILED,
                    RoleRequestFailedCode.STALE,
                )
            conn.generation_id = gen = msg.generation_id
        self.election_id = gen
        if role == ControllerRole.MASTER:
            for other in others:
                if other is not conn and other.role == ControllerRole.MASTER:
                    other.role = ControllerRole.SLAVE
        if role != ControllerRole.NOCHANGE:
            conn.role = role
        # No generation id yet: all ones, which ovs-ofctl does not print (as Open vSwitch).
        return RoleReply(xid=msg.xid, role=conn.role, generation_id=2**64 - 1 if gen is None else gen)

    # -- bundles --
    def _bundle_control(
        self,
        conn: Connection,
        session: OfSession,
        msg: BundleControl,
        now: float,
        others: Iterable[Connection],
    ) -> list[Message]:
        bid, ctrl = msg.bundle_id, msg.ctrl_type

        def reply(t: int) -> list[Message]:
            # Open vSwitch answers with flags 0 whatever the request carried.
            return [BundleControl(xid=msg.xid, bundle_id=bid, ctrl_type=t)]

        def fail(text: str, code: BundleFailedCode) -> RemoteProtocolError:
            return RemoteProtocolError(text, ErrorType.BUNDLE_FAILED, code)

        def drop(text: str, code: BundleFailedCode) -> RemoteProtocolError:
            """A misused bundle is discarded, as Open vSwitch does, with the error."""
            session.bundles.pop(bid, None)
            session.bundle_flags.pop(bid, None)
            session.bundle_raw.pop(bid, None)
            session.closed_bundles.discard(bid)
            return fail(text, code)

        if ctrl == BundleCtrlType.OPEN_REQUEST:
            if bid in session.bundles:
                raise drop(f"bundle {bid} is already open", BundleFailedCode.BAD_ID)
            session.bundles[bid] = []
            session.bundle_flags[bid] = msg.flags
            return reply(BundleCtrlType.OPEN_REPLY)
        if ctrl == BundleCtrlType.CLOSE_REQUEST:
            if bid not in session.bundles:
                raise fail(f"no bundle {bid}", BundleFailedCode.BAD_ID)
            if bid in session.closed_bundles:
                raise drop(f"bundle {bid} is closed", BundleFailedCode.BUNDLE_CLOSED)
            if session.bundle_flags.get(bid, 0) != msg.flags:
                raise drop(f"bundle {bid} was opened with other flags", BundleFailedCode.BAD_FLAGS)
            session.closed_bundles.add(bid)
            return reply(BundleCtrlType.CLOSE_REPLY)
        if ctrl == BundleCtrlType.DISCARD_REQUEST:
            if bid not in session.bundles:
                raise fail(f"no bundle {bid}", BundleFailedCode.BAD_ID)
            drop("", BundleFailedCode.UNKNOWN)
            return reply(BundleCtrlType.DISCARD_REPLY)
        if ctrl == BundleCtrlType.COMMIT_REQUEST:
            if bid not in session.bundles:
                raise fail(f"no bundle {bid}", BundleFailedCode.BAD_ID)
            flags = session.bundle_flags.get(bid, 0)
            msgs = session.bundles[bid]
            raws = session.bundle_raw.get(bid, [])
            drop("", BundleFailedCode.UNKNOWN)
            if flags != msg.flags:
                raise fail(f"bundle {bid} was opened with other flags", BundleFailedCode.BAD_FLAGS)
            snap = self.bridge.of_transaction()
            for i, m in enumerate(msgs):
                try:  # (not ``handle``: a rollback takes back the changes not yet sent)
                    self._handle(conn, session, m, now, others)
                except RemoteProtocolError as e:
                    self.bridge.of_rollback(snap)
                    self.applied_mods = []  # nothing of the bundle happened
                    raw = raws[i] if len(raws) == len(msgs) else None
                    raise BundleMessageFailed(e, m, raw, conn.version or OFP13_VERSION) from None
            return reply(BundleCtrlType.COMMIT_REPLY)
        raise fail(f"bundle control type {ctrl}", BundleFailedCode.BAD_TYPE)

    def _bundle_add(self, session: OfSession, msg: BundleAddMessage) -> list[Message]:
        inner = msg.message
        if not isinstance(inner, (FlowMod, GroupMod, MeterMod, PortMod, PacketOut)):
            raise RemoteProtocolError(
                f"{type(inner).__name__} cannot be bundled",
                ErrorType.BUNDLE_FAILED,
                BundleFailedCode.MSG_UNSUP,
            )
        bid = msg.bundle_id
        if bid in session.bundles:
            problem = None
            if bid in session.closed_bundles:
                problem = (f"bundle {bid} is closed", BundleFailedCode.BUNDLE_CLOSED)
            elif session.bundle_flags.get(bid, 0) != msg.flags:
                problem = (f"bundle {bid} was opened with other flags", BundleFailedCode.BAD_FLAGS)
            if problem is not None:
                session.bundles.pop(bid, None)
                session.bundle_flags.pop(bid, None)
                session.bundle_raw.pop(bid, None)
                session.closed_bundles.discard(bid)
                raise RemoteProtocolError(problem[0], ErrorType.BUNDLE_FAILED, problem[1])
        session.bundles.setdefault(bid, []).append(inner)
        session.bundle_raw.setdefault(bid, []).append(msg.raw)
        session.bundle_flags.setdefault(bid, msg.flags)
        return []

    # -- statistics --
    def _multipart(self, msg: MultipartRequest, now: float, version: int) -> list[Message]:
        br = self.bridge
        of = br.of
        xid = msg.xid
        if isinstance(msg, DescRequest):
            return [
                DescReply(
                    xid=xid,
                    mfr_desc="hitless",
                    hw_desc="hitless userspace switch",
                    sw_desc=_SW_DESC,
                    serial_num="None",
                    dp_desc=br.name,
                )
            ]
        if isinstance(msg, (FlowStatsRequest, AggregateStatsRequest)):
            br.settle_counters()
            rules = of.select(
                msg.table_id,
                msg.match,
                cookie=msg.cookie,
                cookie_mask=msg.cookie_mask,
                out_port=msg.out_port,
                out_group=msg.out_group,
            )
            if isinstance(msg, AggregateStatsRequest):
                return [
                    AggregateStatsReply(
                        xid=xid,
                        packet_count=sum(r.packets for r in rules),
                        byte_count=sum(r.bytes for r in rules),
                        flow_count=len(rules),
                    )
                ]
            stats = []
            for r in rules:
                sec, nsec = _split_time(now - r.created)
                stats.append(
                    FlowStats(
                        table_id=r.table_id,
                        duration_sec=sec,
                        duration_nsec=nsec,
                        priority=r.priority,
                        idle_timeout=r.idle_timeout,
                        hard_timeout=r.hard_timeout,
                        flags=r.flags,
                        importance=r.importance,
                        cookie=r.cookie,
                        packet_count=r.packets,
                        byte_count=r.bytes,
                        match=r.match,
                        instructions=instructions_for(r.instructions, version),
                        idle_age=int(max(0.0, now - r.last_used)),
                        hard_age=int(max(0.0, now - r.modified)),
                    )
                )
            # one value: the connection packs the entries into messages of up to 64 kB in
            # the session's version, as Open vSwitch does (their size depends on it)
            return [FlowStatsReply(xid=xid, stats=tuple(stats))]
        if isinstance(msg, TableStatsRequest):
            br.settle_counters()
            caps = _table_caps()
            named = self._flow_tables()
            ts = [
                TableStats(t.table_id, len(t), t.lookups, t.matched, named.get(t.table_id, ("", 0))[0],
                           replace(caps[t.table_id], config=self.table_miss.get(t.table_id, 0),
                                   max_entries=named.get(t.table_id, ("", TABLE_MAX_ENTRIES))[1]))
                for t in of.tables
            ]  # fmt: skip
            return _replies(TableStatsReply, xid, "stats", ts, 254)
        if isinstance(msg, TableFeaturesRequest):
            global _TABLE_FEATURES, _TABLE_FEATURES15
            if msg.tables:
                raise RemoteProtocolError(
                    "table features cannot be changed",
                    ErrorType.TABLE_FEATURES_FAILED,
                    5,  # OFPTFFC_EPERM
                )
            if _TABLE_FEATURES is None:
                _TABLE_FEATURES = _table_features()
            if _TABLE_FEATURES15 is None:
                _TABLE_FEATURES15 = _table_features(meter_instruction=False)
            named = self._flow_tables()
            tables = [
                replace(tf, name=named[tf.table_id][0], max_entries=named[tf.table_id][1])
                if tf.table_id in named else tf
                for tf in (_TABLE_FEATURES15 if version >= OFP15_VERSION else _TABLE_FEATURES)
            ]  # fmt: skip
            # as many tables a part as fit in 65535 bytes (table 0, listing every next
            # table, is the longest)
            one = len(TableFeaturesReply(xid=xid, tables=tuple(tables[:1])).encode(version))
            return _replies(TableFeaturesReply, xid, "tables", tables, 65535 // one)
        if isinstance(msg, PortDescRequest):
            ports = self.port_descs()
            return _replies(PortDescReply, xid, "ports", ports, 100)
        if isinstance(msg, TableDescRequest):
            descs = [self._table_desc(t.table_id) for t in of.tables]
            return _replies(TableDescReply, xid, "tables", descs, 254)  # one part, as OVS
        if isinstance(msg, QueueDescRequest):
            queues = [
                (of_port(no), 0)
                for no in sorted(br.datapath.ports())
                if msg.port_no in (OfPort.ANY, of_port(no)) and msg.queue_id in (0xFFFFFFFF, 0)
            ]
            return _replies(QueueDescReply, xid, "queues", queues, 200)
        if isinstance(msg, QueueStatsRequest):
            qstats = [
                QueueStats(
                    port_no=of_port(no),
                    queue_id=0,
                    tx_bytes=UNKNOWN,
                    tx_packets=UNKNOWN,
                    tx_errors=UNKNOWN,
                    duration_sec=0xFFFFFFFF,
                    duration_nsec=0xFFFFFFFF,
                )  # fmt: skip
                for no in sorted(br.datapath.ports())
                if msg.port_no in (OfPort.ANY, OfPort.ALL, of_port(no))
                and msg.queue_id in (0xFFFFFFFF, 0)
            ]
            return _replies(QueueStatsReply, xid, "stats", qstats, 100)
        if isinstance(msg, PortStatsRequest):
            pstats = []
            want = msg.port_no
            for no, p in sorted(br.datapath.ports().items()):
                if want != OfPort.ANY and of_port(no) != want:
                    continue
                s = p.stats
                sec, nsec = _split_time(now - br.port_added.get(no, now))
                pstats.append(
                    PortStats(
                        port_no=of_port(no),
                        duration_sec=sec,
                        duration_nsec=nsec,
                        rx_packets=s.rx_packets,
                        tx_packets=s.tx_packets,
                        rx_bytes=s.rx_bytes,
                        tx_bytes=s.tx_bytes,
                        rx_dropped=s.rx_dropped if s.drops_counted else UNKNOWN,
                        tx_dropped=s.tx_dropped if s.drops_counted else UNKNOWN,
                        # counters no datapath of ours keeps: "unavailable" (all ones),
                        # which ovs-ofctl prints as "?", as for Open vSwitch's own
                        rx_errors=UNKNOWN,
                        tx_errors=UNKNOWN,
                        rx_frame_err=UNKNOWN,
                        rx_over_err=UNKNOWN,
                        rx_crc_err=UNKNOWN,
                        collisions=UNKNOWN,
                    )
                )
            return _replies(PortStatsReply, xid, "stats", pstats, 100)
        if isinstance(msg, GroupStatsRequest):
            br.settle_counters()
            gs = []
            for g in sorted(of.groups.values(), key=lambda g: g.group_id):
                if msg.group_id not in (0xFFFFFFFC, g.group_id):
                    continue
                sec, nsec = _split_time(now - g.created)
                refs = sum(1 for r in of.rules() if r.uses_group(g.group_id))
                gs.append(
                    GroupStats(
                        group_id=g.group_id,
                        ref_count=refs,
                        packet_count=g.packets,
                        byte_count=g.bytes,
                        duration_sec=sec,
                        duration_nsec=nsec,
                        bucket_stats=tuple((p, b) for p, b in g.bucket_stats),
                    )
                )
            return _replies(GroupStatsReply, xid, "stats", gs)
        if isinstance(msg, GroupDescRequest):
            gd = [
                GroupDesc(group_type=g.type, group_id=g.group_id, buckets=g.buckets,
                          selection=g.selection)  # fmt: skip
                for g in sorted(of.groups.values(), key=lambda g: g.group_id)
            ]
            return _replies(GroupDescReply, xid, "stats", gd)
        if isinstance(msg, GroupFeaturesRequest):
            return [
                GroupFeaturesReply(
                    xid=xid,
                    types=0b1111,
                    capabilities=GroupCapabilities.SELECT_WEIGHT
                    | GroupCapabilities.SELECT_LIVENESS
                    | GroupCapabilities.CHAINING,
                    max_groups=(0xFFFFFF00,) * 4,  # any id up to OFPG_MAX, no count limit
                    actions=(_group_actions(version),) * 4,
                )
            ]
        if isinstance(msg, (MeterStatsRequest, MeterConfigRequest)):
            br.settle_counters()
            meters = [
                m
                for m in sorted(of.meters.values(), key=lambda m: m.meter_id)
                if msg.meter_id in (0xFFFFFFFF, m.meter_id)
            ]
            if isinstance(msg, MeterConfigRequest):
                mc = [
                    MeterConfig(meter_id=m.meter_id, flags=m.flags, bands=m.bands) for m in meters
                ]
                return _replies(MeterConfigReply, xid, "entries", mc)
            ms = []
            for m in meters:
                sec, nsec = _split_time(now - m.created)
                users = sum(1 for r in of.rules() if r.meter_id() == m.meter_id)
                ms.append(
                    MeterStats(
                        meter_id=m.meter_id,
                        flow_count=users,
                        packet_in_count=m.packets,
                        byte_in_count=m.bytes,
                        duration_sec=sec,
                        duration_nsec=nsec,
                        band_stats=tuple((p, b) for p, b in m.band_stats),
                    )
                )
            return _replies(MeterStatsReply, xid, "stats", ms)
        if isinstance(msg, MeterFeaturesRequest):
            return [
                MeterFeaturesReply(
                    xid=xid,
                    max_meter=MAX_METERS,
                    band_types=1 << 1,  # drop
                    # burst: every datapath's band honours its burst_size (datapath/meters.py)
                    capabilities=MeterFlags.KBPS | MeterFlags.PKTPS | MeterFlags.BURST
                    | MeterFlags.STATS,
                    max_bands=MAX_METER_BANDS,
                    max_color=0,
                )
            ]
        if isinstance(msg, ExperimenterStatsRequest) and (msg.experimenter, msg.exp_type) in (
            (NX_EXPERIMENTER_ID, NxStatsType.IPFIX_BRIDGE),
            (NX_EXPERIMENTER_ID, NxStatsType.IPFIX_FLOW),
        ):
            # Bridge.ipfix: the exporter's statistics, as Open vSwitch answers; flow-based
            # IPFIX (Flow_Sample_Collector_Set) is refused, so never configured.
            exporter = getattr(self.bridge, "ipfix_exporter", None)
            cfg = getattr(self.bridge, "cfg", None)
            if cfg is None or cfg.ipfix is None:  # removed since the daemon set it
                exporter = None
            if exporter is None or msg.exp_type == NxStatsType.IPFIX_FLOW:
                raise RemoteProtocolError.nicira("IPFIX is not configured", NxError.NOT_CONFIGURED)
            data = exporter.statistics().encode()
            return [ExperimenterStatsReply(xid=xid, experimenter=NX_EXPERIMENTER_ID,
                                           exp_type=NxStatsType.IPFIX_BRIDGE, data=data)]  # fmt: skip
        if isinstance(msg, ExperimenterStatsRequest) and (msg.experimenter, msg.exp_type) == (
            NX_EXPERIMENTER_ID,
            NxStatsType.GROUP_FEATURES,
        ):  # Open vSwitch's group features for 1.1 (which has no OFPST_GROUP_FEATURES)
            (features,) = self._multipart(GroupFeaturesRequest(xid=xid), now, version)
            data = features._mp_body(OFP12_VERSION)  # type: ignore[attr-defined]
            return [ExperimenterStatsReply(xid=xid, experimenter=NX_EXPERIMENTER_ID,
                                           exp_type=NxStatsType.GROUP_FEATURES, data=data)]  # fmt: skip
        raise RemoteProtocolError(
            f"multipart type {int(msg.mp_type)} is not supported",
            ErrorType.BAD_REQUEST,
            BadRequestCode.BAD_MULTIPART,
        )

    def port_descs(self) -> list[PortDesc]:
        views = self.bridge.port_views()
        # internal and patch ports, and every port of the dummy datapath, have no link
        # speed (Open vSwitch: 0); a netdev or ebpf port says 10 Gbps
        speed = 0 if self.bridge.datapath.type == "dummy" else 10_000_000
        out = []
        for no, p in sorted(self.bridge.datapath.ports().items()):
            cfg = self.bridge.of_port_config.get(no, 0)
            view = views.get(no)
            if view is not None and not view.can_input:
                cfg |= PortConfig.PORT_DOWN
            state = PortState.LIVE if p.link_up else PortState.LINK_DOWN
            out.append(
                PortDesc(
                    port_no=of_port(no),
                    hw_addr=p.mac,
                    name=p.name[:15],
                    config=cfg,
                    state=state,
                    curr_speed=speed if p.type not in ("internal", "patch") else 0,
                    max_speed=speed if p.type not in ("internal", "patch") else 0,
                )
            )
        return out

    # -- asynchronous messages --
    def port_status(self) -> list[PortStatus]:
        """PORT_STATUS messages for ports added, removed or changed since the last call
        (nothing on the first call: a session learns the ports by asking)."""
        now_ports = {d.port_no: d for d in self.port_descs()}
        seen, self._ports_seen = self._ports_seen, now_ports
        if seen is None or seen == now_ports:
            return []
        out = []
        for no, d in now_ports.items():
            old = seen.get(no)
            if old is None:
                out.append(PortStatus(reason=PortReason.ADD, desc=d))
            elif old != d:
                out.append(PortStatus(reason=PortReason.MODIFY, desc=d))
        for no, d in seen.items():
            if no not in now_ports:
                out.append(PortStatus(reason=PortReason.DELETE, desc=d))
        return out

    def async_messages(self, now: float) -> tuple[list[PacketIn], list[FlowRemoved]]:
        """Packet-ins and flow-removed messages the bridge queued (xid 0)."""
        br = self.bridge
        pins = [
            (MissPacketIn if p.reason == MISS_NO_FLOW else PacketIn)(
                reason=PacketInReason.NO_MATCH if p.reason == MISS_NO_FLOW else p.reason,
                table_id=p.table_id,
                cookie=p.cookie,
                total_len=len(p.packet),
                match=OfMatch(
                    (
                        oxm_field("in_port", of_port(p.in_port)),
                        *(oxm_field(name, value) for name, value in p.fields),
                    )
                ),
                data=p.packet,
                userdata=p.userdata,
                continuation=p.continuation,
            )
            for p in br.take_packet_ins()
        ]
        frs = []
        for rem in br.take_flow_removed():
            r = rem.rule
            sec, nsec = _split_time(now - r.created)
            frs.append(
                FlowRemoved(
                    cookie=r.cookie,
                    priority=r.priority,
                    reason=rem.reason,
                    table_id=r.table_id,
                    duration_sec=sec,
                    duration_nsec=nsec,
                    idle_timeout=r.idle_timeout,
                    hard_timeout=r.hard_timeout,
                    packet_count=r.packets,
                    byte_count=r.bytes,
                    match=r.match,
                )
            )
        return pins, frs

    @staticmethod
    def wants(conn: Connection, session: OfSession, msg: Message) -> bool:
        """Whether ``conn`` should get the asynchronous ``msg``."""
        if session.service:
            return False
        if isinstance(msg, PacketIn):
            if isinstance(msg, MissPacketIn) and (conn.version or 0) >= OFP13_VERSION:
                return False
            return conn.async_allows(MsgType.PACKET_IN, msg.reason)
        if isinstance(msg, PortStatus):
            return conn.async_allows(MsgType.PORT_STATUS, msg.reason)
        if isinstance(msg, TableStatus):  # 1.4+ (1.3's ONF form is not implemented)
            return (conn.version or 0) >= OFP14_VERSION and conn.async_allows(
                MsgType.TABLE_STATUS, msg.reason
            )
        if isinstance(msg, FlowRemoved):
            reason = msg.reason if msg.reason <= FlowRemovedReason.GROUP_DELETE else 2
            return conn.async_allows(MsgType.FLOW_REMOVED, reason)
        return True


@dataclass(frozen=True, slots=True, kw_only=True)
class MissPacketIn(PacketIn):
    """A packet-in for a miss without a table-miss rule (ofxlate ``MISS_NO_FLOW``): sent,
    as Open vSwitch sends it, only to sessions of OpenFlow 1.0-1.2."""


def wants_miss_packet_ins(sessions: Iterable[tuple[int | None, OfSession]]) -> bool:
    """Whether a miss without a table-miss rule makes a packet-in: some session of
    OpenFlow 1.0-1.2 takes async messages (Open vSwitch: a controller id 0 session below
    1.3), given (negotiated version, session) pairs."""
    return any(v is not None and v < OFP13_VERSION and not s.service for v, s in sessions)


class BundleMessageFailed(RemoteProtocolError):
    """A message inside a committed bundle failed: the bundle was rolled back. Answer
    with ``inner`` (for the bundled message's xid) and then this (for the commit)."""

    def __init__(
        self,
        inner: RemoteProtocolError,
        msg: Message,
        raw: bytes | None = None,
        version: int = OFP13_VERSION,
    ) -> None:
        super().__init__(
            f"bundled message failed: {inner.message}",
            ErrorType.BUNDLE_FAILED,
            BundleFailedCode.MSG_FAILED,
        )
        # the message as it was received, as Open vSwitch quotes it (re-encoded in the
        # session's version when the bytes are not at hand: a session from a handoff)
        data = raw if raw else msg.encode(version)
        self.inner = inner.with_request(data, msg.xid)
