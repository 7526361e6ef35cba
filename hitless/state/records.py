"""The typed records of the learned state a handoff carries, one msgspec struct family
per state format version (``StateV1``...), and the current version's names (``State``,
``BridgeState``, ``Delta``...) for code that should not name a version.

Every layer exports its learned state as these records and adopts it from them; the
codec (``hitless.state.snapshot``) moves them between versions and bytes, the ledger
(``hitless.state.ledger``) digests them. A released version's structs never change:
golden files of every version (tests/golden) must decode and re-encode byte for byte.

Times are carried as ages (seconds before the snapshot was ``taken``), never as
absolute clocks. Pure: imports nothing of the project outside ``hitless.state``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from hitless.state.handles import Handles

__all__ = [
    "BridgeDelta", "BridgeDeltaV1", "BridgeDeltaV2", "BridgeSessions", "BridgeSessionsV4",
    "BridgeState", "BridgeV1", "BridgeV2", "ConntrackDeltaV5", "ConntrackV5", "CtConnV5",
    "CtTupleV5", "DatapathV1", "Delta", "DeltaV1", "DeltaV2", "DeltaV3", "DeltaV4", "DeltaV5",
    "Envelope", "FlowV1", "MacEntryV1", "OfBundleV4",
    "OfConnectionV4", "OfGroupV2", "OfMeterV2", "OfMonitorV4", "OfRuleCountersV2",
    "OfRuleV2", "OfSessionV4", "OfTableConfigV4", "OfTlvMapV4", "OpenFlowDeltaV2",
    "OpenFlowV2", "PortV1", "State", "StateV1", "StateV2", "StateV3", "StateV4", "StateV5",
    "BridgeDeltaV6", "BridgeV6", "DeltaV6", "OfGroup", "OfGroupV6", "OfRule", "OfRuleV6",
    "OfSelectionV6", "OpenFlow", "OpenFlowDelta", "OpenFlowDeltaV6", "OpenFlowV6", "StateV6",
    "Action", "ActionV7", "BridgeDeltaV7", "BridgeV7", "CheckPktLenV7", "CloneV7",
    "CtClearV7", "CtV7",
    "Datapath", "DatapathV7", "DeltaV7", "Flow", "FlowV7", "MeterV7", "NatV7", "OutputV7",
    "PopMplsV7", "PopVlanV7", "PushMplsV7", "PushVlanV7", "RecircV7", "SampleV7",
    "SetFieldV7", "SetPriorityV7", "StateV7", "UserspaceV7",
]  # fmt: skip

# --------------------------------------------------------------------------------------
# Format version 1: NORMAL switching state (ports, MAC tables, datapath flows).


class MacEntryV1(msgspec.Struct, frozen=True, array_like=True):
    vlan: int
    mac: bytes  # 6 bytes
    port: int
    age: float  # seconds since last seen


class PortV1(msgspec.Struct, frozen=True):
    name: str
    ofport: int
    type: str = "system"


class FlowV1(msgspec.Struct, frozen=True, array_like=True):
    key: bytes  # masked flow key (hitless.packet.flow layout)
    mask: bytes
    actions: list[Any]  # hitless.datapath.actions JSON form
    packet_count: int
    byte_count: int
    used_age: float  # seconds since last hit; -1 = never used
    tcp_flags: int = 0


class DatapathV1(msgspec.Struct, frozen=True):
    type: str
    handles: dict[str, Any]  # provider-specific (ring positions, port numbers, ...)
    flows: list[FlowV1] = []
    fd_slots: list[int] = []  # this datapath's descriptors: indices into the handoff's fd list


class BridgeV1(msgspec.Struct, frozen=True):
    name: str
    datapath: DatapathV1
    ports: list[PortV1] = []
    remembered_ofports: dict[str, int] = {}
    mac_entries: list[MacEntryV1] = []
    extra: dict[str, Any] = {}  # counters and other non-essential learned state


class StateV1(msgspec.Struct, frozen=True):
    bridges: list[BridgeV1] = []


class BridgeDeltaV1(msgspec.Struct, frozen=True):
    """One bridge in a delta (protocol feature "delta"): ``changed`` holds the ports
    (all of them: few), the datapath handles, and only the MAC entries and flows that
    changed since the pre-copy (flows whose counters moved included); the ``removed_*``
    lists say what went away. A bridge absent from the pre-copy comes whole."""

    changed: BridgeV1
    removed_flows: list[tuple[bytes, bytes]] = []  # (key, mask)
    removed_macs: list[tuple[int, bytes]] = []  # (vlan, mac)
    new: bool = False  # not in the pre-copy: ``changed`` is the whole bridge


class DeltaV1(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV1] = []


# --------------------------------------------------------------------------------------
# Format version 2: version 1 plus each bridge's OpenFlow state. Matches, instructions,
# buckets and bands are kept in their OpenFlow 1.3 wire encoding: a standard, stable
# form that does not depend on how a build represents them in memory.


class OfRuleV2(msgspec.Struct, frozen=True, array_like=True):
    table: int
    priority: int
    match: bytes  # ofp_match (OXM)
    instructions: bytes  # ofp_instruction list
    cookie: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    importance: int
    age: float  # seconds since the rule was added
    idle: float  # seconds since it last matched
    packet_count: int
    byte_count: int


class OfGroupV2(msgspec.Struct, frozen=True):
    group_id: int
    type: int
    buckets: bytes  # ofp_bucket list
    age: float
    packet_count: int
    byte_count: int
    bucket_stats: list[list[int]] = []


class OfMeterV2(msgspec.Struct, frozen=True):
    meter_id: int
    flags: int
    bands: bytes  # ofp_meter_band list
    age: float
    packet_count: int
    byte_count: int
    band_stats: list[list[int]] = []


class OpenFlowV2(msgspec.Struct, frozen=True):
    rules: list[OfRuleV2] = []
    groups: list[OfGroupV2] = []
    meters: list[OfMeterV2] = []
    tables: list[list[int]] = []  # [table_id, lookups, matched]


class BridgeV2(msgspec.Struct, frozen=True):
    name: str
    datapath: DatapathV1
    ports: list[PortV1] = []
    remembered_ofports: dict[str, int] = {}
    mac_entries: list[MacEntryV1] = []
    extra: dict[str, Any] = {}
    openflow: OpenFlowV2 | None = None  # None: the bridge's default table


class StateV2(msgspec.Struct, frozen=True):
    bridges: list[BridgeV2] = []


class OfRuleCountersV2(msgspec.Struct, frozen=True, array_like=True):
    """New counters of a rule the pre-copy carried (by its place in that list)."""

    index: int
    idle: float
    packet_count: int
    byte_count: int


class OpenFlowDeltaV2(msgspec.Struct, frozen=True):
    """What changed in a bridge's OpenFlow state since the pre-copy (protocol feature
    "openflow-delta"): rules by their index in the pre-copy's list."""

    removed: list[int] = []  # pre-copy rules gone (or changed: then also in added)
    added: list[OfRuleV2] = []  # rules new or changed since the pre-copy, whole
    counters: list[OfRuleCountersV2] = []  # other pre-copy rules whose counters moved
    groups: list[OfGroupV2] = []  # groups, meters and table counters: whole
    meters: list[OfMeterV2] = []
    tables: list[list[int]] = []


class BridgeDeltaV2(msgspec.Struct, frozen=True):
    """As ``BridgeDeltaV1``; ``changed.openflow`` is the whole OpenFlow state, unless
    ``openflow_delta`` (then None) carries only its changes since the pre-copy."""

    changed: BridgeV2
    removed_flows: list[tuple[bytes, bytes]] = []
    removed_macs: list[tuple[int, bytes]] = []
    new: bool = False
    openflow_delta: OpenFlowDeltaV2 | None = None


class DeltaV2(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV2] = []


# --------------------------------------------------------------------------------------
# Format version 3: the structs of version 2; what is new is what two fields may hold.
# - A megaflow's actions (``FlowV1.actions``) may hold the datapath meter action
#   ``["meter", meter_id]``: the datapath enforces OpenFlow meters. A version 2 build
#   cannot parse it.
# - A datapath's handles may hold ``"meters"``: the userspace providers' token buckets
#   (configuration, tokens per band, the CLOCK_MONOTONIC time of those levels; see
#   hitless.datapath.meters). They are handles, not a typed part, because they are
#   provider state that only means something to a live process on the same machine,
#   like ring positions: a provider whose meters live in the kernel keeps them across a
#   handoff and has nothing to carry. The band counters are not here: the bridge folds
#   them into the OpenFlow meters' band statistics (``OfMeterV2.band_stats``).
# Down to version 2, the meter actions and the buckets are dropped: a version 2 build
# neither knows nor enforces datapath meters, and its revalidator re-translates every
# megaflow it imports anyway. Up from version 2 there is nothing to add (the new
# process's revalidator puts the meter actions in, and its buckets start full).


class StateV3(msgspec.Struct, frozen=True):
    bridges: list[BridgeV2] = []


class DeltaV3(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV2] = []


# --------------------------------------------------------------------------------------
# Format version 4: version 3 plus every bridge's OpenFlow sessions (controllers and
# ovs-ofctl clients) and OpenFlow listeners, typed. Before, they crossed a handoff only as
# the protocol feature "sessions": plain dicts beside the snapshot, outside its version
# (hitless.state.sessions keeps that form, for peers that negotiate version 3 or older).
# A session is meaningless without its socket: the records' ``fd`` fields are indices
# into the handoff's session descriptors, and a snapshot file holds none (``sessions``
# is empty). Bundles keep their messages and monitors their match in the session's own
# OpenFlow wire encoding / OXM, as the OpenFlow parts of version 2 do.


class OfMonitorV4(msgspec.Struct, frozen=True, array_like=True):
    """A flow monitor a session set up (NXST_FLOW_MONITOR / OFPMP_FLOW_MONITOR)."""

    monitor_id: int
    flags: int
    table_id: int
    out_port: int
    out_group: int
    match: bytes  # ofp_match (OXM)


class OfBundleV4(msgspec.Struct, frozen=True, array_like=True):
    """A bundle opened and not yet committed: its flags and the messages added so far."""

    bundle_id: int
    flags: int
    messages: list[bytes]  # each an OpenFlow message in the session's version


class OfConnectionV4(msgspec.Struct, frozen=True):
    """The OpenFlow connection's own state (hitless.openflow.SessionState): what was
    negotiated (version, Nicira flow and packet-in formats, controller id), the role
    and async configuration, the next xid and the bytes received but not yet parsed."""

    versions: list[int]  # the versions it allows (the one negotiated among them)
    version: int | None  # None: HELLO not received yet
    phase: str
    hello_sent: bool
    role: int  # OFPCR_ROLE_* (§7.3.9)
    generation_id: int | None
    async_config: list[tuple[int, int]]  # (property type, mask)
    next_xid: int
    unparsed: bytes
    probe_interval: float | None
    probe_xid: int | None = None
    flow_format: int = 0  # NXFF_OPENFLOW10
    packet_in_format: int = 0  # NXPIF_STANDARD
    controller_id: int = 0
    flow_mod_table_id: bool = False
    nx_xids: list[int] = []  # requests that came as NXST_*: their replies take that form


class OfSessionV4(msgspec.Struct, frozen=True):
    """One OpenFlow session of a bridge: its connection, unsent output, who it is (a
    service session of DIR/<br>.mgmt or a controller's), its bundles and monitors."""

    fd: int  # index into the handoff's session descriptors
    connection: OfConnectionV4
    wbuf: bytes = b""  # bytes encoded for the peer, not yet written
    closing: bool = False
    service: bool = True  # a management (ovs-ofctl) session: no asynchronous messages
    miss_send_len: int | None = None  # the session's own (OFPT_SET_CONFIG), None: bridge's
    controller: str | None = None  # the Controller target of an active connection
    origin: str | None = None  # the listener it came from (a ptcp/punix target)
    bundles: list[OfBundleV4] = []
    closed_bundles: list[int] = []
    monitors: list[OfMonitorV4] = []


class OfTableConfigV4(msgspec.Struct, frozen=True, array_like=True):
    """An OFPT_TABLE_MOD's settings of one table."""

    table: int
    miss: int  # OpenFlow 1.1's table-miss config
    evict: bool  # 1.4 eviction
    vacancy: tuple[int, int] | None  # 1.4 vacancy (down, up) thresholds


class OfTlvMapV4(msgspec.Struct, frozen=True, array_like=True):
    """One Geneve option mapped to a tun_metadata field (NXT_TLV_TABLE_MOD)."""

    option_class: int
    option_type: int
    option_len: int
    index: int


class BridgeSessionsV4(msgspec.Struct, frozen=True):
    """A bridge's OpenFlow listeners and sessions, and the session-level settings that
    are the bridge's (switch config flags, the Geneve option map, table settings)."""

    bridge: str
    mgmt: int | None = None  # the DIR/<br>.mgmt listener's descriptor index
    snoop: int | None = None  # the DIR/<br>.snoop listener's (ovs-ofctl snoop)
    passive: dict[str, int] = {}  # ptcp/punix target -> listener descriptor index
    clients: list[OfSessionV4] = []
    switch_flags: int = 0  # OFPT_SET_CONFIG flags
    miss_send_len: int = 128
    tlv_maps: list[OfTlvMapV4] = []
    table_config: list[OfTableConfigV4] = []


class StateV4(msgspec.Struct, frozen=True):
    bridges: list[BridgeV2] = []
    sessions: list[BridgeSessionsV4] = []  # only in a handoff's freeze


class DeltaV4(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV2] = []
    sessions: list[BridgeSessionsV4] = []  # the sessions are always whole


# --------------------------------------------------------------------------------------
# Format version 5: version 4 plus each datapath's connection-tracking table as typed
# records, carried in the pre-copy and then as a delta (the connections created, changed
# or removed since), so the freeze does not grow with the number of connections. Up to
# version 4 the table went whole at the freeze, inside the datapath's handles (their
# "conntrack" map, "conns" as JSON lists with hex strings); its limits, table size and
# the recirculation ids still travel there.


CtTupleV5 = tuple[bytes, bytes, int, int, int]  # src, dst (4 or 16 bytes), proto, sport, dport


class CtConnV5(msgspec.Struct, frozen=True, array_like=True):
    """One tracked connection: its tuples, what is left of its timeout at the snapshot's
    ``taken`` (or the freeze's), NAT, mark, label and TCP window state."""

    zone: int
    orig: CtTupleV5
    reply: CtTupleV5  # the reply as it looks after NAT
    timeout: float
    nat: int  # CS_SNAT | CS_DNAT
    mark: int
    label: bytes  # the 128-bit ct_label, big-endian
    seen_reply: bool
    state: str  # UDP/ICMP/other: first | multiple | bidir
    tcp: list[tuple[int, int, int, int, int, bool]] = []  # per side: state, end, maxend,
    liberal: bool = False  # maxwin, wscale, seen (empty: not TCP)


class ConntrackV5(msgspec.Struct, frozen=True):
    """A bridge's datapath connection table (every live connection)."""

    bridge: str
    conns: list[CtConnV5] = []


class ConntrackDeltaV5(msgspec.Struct, frozen=True):
    """What changed in a bridge's connection table since the pre-copy: connections
    created or changed (whole) and the (zone, original tuple) of those removed. A bridge
    absent from the pre-copy has all its connections in ``changed``."""

    bridge: str
    changed: list[CtConnV5] = []
    removed: list[tuple[int, CtTupleV5]] = []


class StateV5(msgspec.Struct, frozen=True):
    bridges: list[BridgeV2] = []
    sessions: list[BridgeSessionsV4] = []
    conntrack: list[ConntrackV5] = []


class DeltaV5(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV2] = []
    sessions: list[BridgeSessionsV4] = []
    conntrack: list[ConntrackDeltaV5] = []


# --------------------------------------------------------------------------------------
# Format version 6: version 5 with a bridge record family of its own, for what the
# version 2 records lose:
# - a rule's last modification apart from its creation (``OfRuleV6.modified``): Open
#   vSwitch keeps a rule's duration when a flow_mod or a learn action refreshes it and
#   counts only its hard timeout again from then. Version 2 records have one age, which
#   builds of versions 2-5 use for both (they restart the duration): towards them a
#   rule's ``age`` is its modified age, so its timeouts fire as they would have here.
# - a select group's selection method (``OfGroupV6.selection``: Open vSwitch's
#   selection_method, hash or dp_hash, its basis and hashed fields). A version 5 build
#   cannot carry it: a downgrade holding one is refused before the freeze.


class OfRuleV6(OfRuleV2, frozen=True, array_like=True):
    """``OfRuleV2`` plus ``modified``: seconds since the rule was last modified (a
    flow_mod or a learn action refreshing it), from which its hard timeout counts; its
    ``age`` is since it was added (its duration)."""

    modified: float  # <= age


class OfSelectionV6(msgspec.Struct, frozen=True, array_like=True):
    """A select group's selection method (NTR_SELECTION_METHOD group property)."""

    method: str  # "hash" or "dp_hash"
    param: int  # the hash basis
    fields: bytes  # the hashed fields: OXM TLVs, each value the mask of the bits hashed


class OfGroupV6(OfGroupV2, frozen=True):
    """``OfGroupV2`` plus its selection method (None: the switch's default)."""

    selection: OfSelectionV6 | None = None


class OpenFlowV6(msgspec.Struct, frozen=True):
    rules: list[OfRuleV6] = []
    groups: list[OfGroupV6] = []
    meters: list[OfMeterV2] = []
    tables: list[list[int]] = []  # [table_id, lookups, matched]


class BridgeV6(msgspec.Struct, frozen=True):
    name: str
    datapath: DatapathV1
    ports: list[PortV1] = []
    remembered_ofports: dict[str, int] = {}
    mac_entries: list[MacEntryV1] = []
    extra: dict[str, Any] = {}
    openflow: OpenFlowV6 | None = None  # None: the bridge's default table


class OpenFlowDeltaV6(msgspec.Struct, frozen=True):
    """As ``OpenFlowDeltaV2``, with version 6 rules and groups."""

    removed: list[int] = []
    added: list[OfRuleV6] = []
    counters: list[OfRuleCountersV2] = []
    groups: list[OfGroupV6] = []
    meters: list[OfMeterV2] = []
    tables: list[list[int]] = []


class BridgeDeltaV6(msgspec.Struct, frozen=True):
    """As ``BridgeDeltaV2``, with version 6 bridges."""

    changed: BridgeV6
    removed_flows: list[tuple[bytes, bytes]] = []
    removed_macs: list[tuple[int, bytes]] = []
    new: bool = False
    openflow_delta: OpenFlowDeltaV6 | None = None


class StateV6(msgspec.Struct, frozen=True):
    bridges: list[BridgeV6] = []
    sessions: list[BridgeSessionsV4] = []
    conntrack: list[ConntrackV5] = []


class DeltaV6(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV6] = []
    sessions: list[BridgeSessionsV4] = []
    conntrack: list[ConntrackDeltaV5] = []


# --------------------------------------------------------------------------------------
# Format version 7: version 6 with a datapath record of its own (``DatapathV7``):
# - a megaflow's actions are typed records (``FlowV7.actions``), one per datapath action
#   (hitless.datapath.actions), a msgspec tagged union: each encodes as a short array
#   whose first item is the action's name, its byte values as bytes (version 1's JSON
#   form had them in hex, a ct label as a decimal string);
# - the handles are the datapath type's record (``hitless.state.handles.Handles``, a
#   tagged union on "datapath"), None in a pre-copy; a netdev datapath's queued misses
#   are typed records there (``UpcallV1``), no longer hex lists.
# Down to version 6 the actions and handles take their version 1 wire forms again
# (``hitless.state.snapshot``: nothing is lost); up from 6 they are read into records.


class NatV7(msgspec.Struct, frozen=True, array_like=True):
    """A ct action's NAT (hitless.datapath.conntrack.NatSpec)."""

    kind: Literal["src", "dst"] | None  # None: by the connection's own
    addr_min: bytes
    addr_max: bytes
    port_min: int
    port_max: int
    persistent: bool
    random: bool


class OutputV7(msgspec.Struct, frozen=True, array_like=True, tag="output"):
    port: int


class PushVlanV7(msgspec.Struct, frozen=True, array_like=True, tag="push_vlan"):
    tci: int
    tpid: int


class PopVlanV7(msgspec.Struct, frozen=True, array_like=True, tag="pop_vlan"):
    pass


class PushMplsV7(msgspec.Struct, frozen=True, array_like=True, tag="push_mpls"):
    lse: int
    ethertype: int


class PopMplsV7(msgspec.Struct, frozen=True, array_like=True, tag="pop_mpls"):
    ethertype: int


class SetFieldV7(msgspec.Struct, frozen=True, array_like=True, tag="set_field"):
    field: str  # a flow-key field name (hitless.packet.flow.FIELDS)
    value: bytes
    mask: bytes | None  # None: the whole field


class UserspaceV7(msgspec.Struct, frozen=True, array_like=True, tag="userspace"):
    userdata: bytes


class SampleV7(msgspec.Struct, frozen=True, array_like=True, tag="sample"):
    probability: int  # of 2**32
    userdata: bytes


class MeterV7(msgspec.Struct, frozen=True, array_like=True, tag="meter"):
    meter_id: int
    scope: int  # 0: the rest of the list; n: the next n actions


class SetPriorityV7(msgspec.Struct, frozen=True, array_like=True, tag="set_priority"):
    priority: int


class CtV7(msgspec.Struct, frozen=True, array_like=True, tag="ct"):
    zone: int
    commit: bool
    force: bool
    nat: NatV7 | None
    mark: tuple[int, int] | None  # (value, mask)
    label: tuple[bytes, bytes] | None  # (value, mask), 16 bytes each, big-endian


class CtClearV7(msgspec.Struct, frozen=True, array_like=True, tag="ct_clear"):
    pass


class RecircV7(msgspec.Struct, frozen=True, array_like=True, tag="recirc"):
    recirc_id: int


class CheckPktLenV7(msgspec.Struct, frozen=True, array_like=True, tag="check_pkt_len"):
    size: int
    gt: tuple[ActionV7, ...]
    le: tuple[ActionV7, ...]


class CloneV7(msgspec.Struct, frozen=True, array_like=True, tag="clone"):
    actions: tuple[ActionV7, ...]


ActionV7 = (
    OutputV7 | PushVlanV7 | PopVlanV7 | PushMplsV7 | PopMplsV7 | SetFieldV7 | UserspaceV7
    | SampleV7 | MeterV7 | SetPriorityV7 | CtV7 | CtClearV7 | RecircV7 | CheckPktLenV7
    | CloneV7
)  # fmt: skip


class FlowV7(msgspec.Struct, frozen=True, array_like=True):
    """``FlowV1`` with typed actions (hashable: a tuple of frozen records)."""

    key: bytes  # masked flow key (hitless.packet.flow layout)
    mask: bytes
    actions: tuple[ActionV7, ...]
    packet_count: int
    byte_count: int
    used_age: float  # seconds since last hit; -1 = never used
    tcp_flags: int = 0


class DatapathV7(msgspec.Struct, frozen=True):
    type: str
    handles: Handles | None = None  # None: a pre-copy's (no descriptors yet)
    flows: list[FlowV7] = []
    fd_slots: list[int] = []  # this datapath's descriptors: indices into the handoff's fds


class BridgeV7(msgspec.Struct, frozen=True):
    name: str
    datapath: DatapathV7
    ports: list[PortV1] = []
    remembered_ofports: dict[str, int] = {}
    mac_entries: list[MacEntryV1] = []
    extra: dict[str, Any] = {}
    openflow: OpenFlowV6 | None = None  # None: the bridge's default table


class BridgeDeltaV7(msgspec.Struct, frozen=True):
    """As ``BridgeDeltaV6``, with version 7 bridges."""

    changed: BridgeV7
    removed_flows: list[tuple[bytes, bytes]] = []
    removed_macs: list[tuple[int, bytes]] = []
    new: bool = False
    openflow_delta: OpenFlowDeltaV6 | None = None


class StateV7(msgspec.Struct, frozen=True):
    bridges: list[BridgeV7] = []
    sessions: list[BridgeSessionsV4] = []
    conntrack: list[ConntrackV5] = []


class DeltaV7(msgspec.Struct, frozen=True):
    bridges: list[BridgeDeltaV7] = []
    sessions: list[BridgeSessionsV4] = []
    conntrack: list[ConntrackDeltaV5] = []


# The current version's types, for code that should not name a version.
State = StateV7
BridgeState = BridgeV7
Delta = DeltaV7
BridgeDelta = BridgeDeltaV7
Flow = FlowV7
Datapath = DatapathV7
Action = ActionV7
BridgeSessions = BridgeSessionsV4
OfRule = OfRuleV6
OfGroup = OfGroupV6
OpenFlow = OpenFlowV6
OpenFlowDelta = OpenFlowDeltaV6


class Envelope(msgspec.Struct, frozen=True):
    magic: str
    version: int
    software: str
    taken: float  # CLOCK_MONOTONIC of the writer when the snapshot was taken
    checksum: str  # sha256 hex of payload
    payload: bytes
