"""The typed records of the learned state a handoff carries, one msgspec struct family
per state format version (``StateV1``...), and the current version's names (``State``,
``BridgeState``, ``Delta``...) for code that should not name a version.

Every layer exports its learned state as these records and adopts it from them; the
codec (``hitless.state.snapshot``) moves them between versions and bytes, the ledger
(``hitless.state.ledger``) digests them. A released version's structs never change:
golden files of every version (tests/golden) must decode and re-encode byte for byte.

Times are carried as ages (seconds before the snapshot was ``taken``), never as
absolute clocks. Pure: imports nothing of the project.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "BridgeDelta", "BridgeDeltaV1", "BridgeDeltaV2", "BridgeState", "BridgeV1", "BridgeV2",
    "DatapathV1", "Delta", "DeltaV1", "DeltaV2", "DeltaV3", "Envelope", "FlowV1",
    "MacEntryV1", "OfGroupV2", "OfMeterV2", "OfRuleCountersV2", "OfRuleV2",
    "OpenFlowDeltaV2", "OpenFlowV2", "PortV1", "State", "StateV1", "StateV2", "StateV3",
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


# The current version's types, for code that should not name a version.
State = StateV3
BridgeState = BridgeV2
Delta = DeltaV3
BridgeDelta = BridgeDeltaV2


class Envelope(msgspec.Struct, frozen=True):
    magic: str
    version: int
    software: str
    taken: float  # CLOCK_MONOTONIC of the writer when the snapshot was taken
    checksum: str  # sha256 hex of payload
    payload: bytes
