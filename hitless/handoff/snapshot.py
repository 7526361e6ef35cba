"""Versioned state snapshots: the learned state a handoff carries, as msgspec structs.

A snapshot is an ``Envelope`` (magic, format version, the writer's software version, a
SHA-256 of the payload) around a version-specific ``State``. Each format version has a
module-level struct family (``StateV1``...); a migration up and a migration down
connect each step, so every release reads and writes its own version and the previous
one. Configuration is never in a snapshot: the new process reads it from OVSDB.

Times are carried as ages (seconds before ``taken``), never as absolute clocks, so a
snapshot stays meaningful in another process and in a file.

Errors: ``SnapshotError`` says what is wrong with the input (truncated, foreign,
corrupted, a version this build cannot read) in words an operator can act on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec

from hitless.handoff.parts import with_bin_tail

MAGIC = "hitless-state"


class SnapshotError(Exception):
    """The snapshot cannot be used; the message says why and what to do."""


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


# --------------------------------------------------------------------------------------
# Version registry and migrations.

STATE_TYPES: dict[int, type[msgspec.Struct]] = {1: StateV1, 2: StateV2, 3: StateV3}
CURRENT_VERSION = 3


# MIGRATE_UP[n] converts a decoded version-n builtin object to version n+1;
# MIGRATE_DOWN[n] converts version n to version n-1. Builtin (dict/list) form, so a
# migration never needs the struct classes of both versions at once.
def _up_1(obj: Any) -> Any:
    """1 -> 2: a version 1 bridge had no OpenFlow table of its own: the default."""
    return {**obj, "bridges": [{**b, "openflow": None} for b in obj.get("bridges", [])]}


def _default_openflow(of: Any) -> bool:
    """True if an OpenFlow state (builtin form) is what a bridge starts with: no rules,
    or just ``priority=0 actions=NORMAL`` in table 0; no groups, no meters."""
    if of is None:
        return True
    if of.get("groups") or of.get("meters"):
        return False
    rules = of.get("rules") or []
    if not rules:
        return True
    if len(rules) != 1:
        return False
    r = rules[0]
    return bool(
        r[0] == 0
        and r[1] == 0
        and bytes(r[2]) == _EMPTY_MATCH
        and bytes(r[3]) == _NORMAL_INSTRUCTIONS
    )


_EMPTY_MATCH = bytes.fromhex("0001000400000000")
_NORMAL_INSTRUCTIONS = bytes.fromhex("000400180000000000000010fffffffa0000000000000000")


def _down_2(obj: Any) -> Any:
    """2 -> 1: version 1 has no OpenFlow state; refuse rather than drop rules."""
    out = []
    for b in obj.get("bridges", []):
        of = b.get("openflow")
        if not _default_openflow(of):
            n = len(of.get("rules") or []), len(of.get("groups") or []), len(of.get("meters") or [])
            raise SnapshotError(
                f"bridge {b.get('name')} holds OpenFlow state ({n[0]} rules, {n[1]} groups, "
                f"{n[2]} meters) that state version 1 cannot carry: a build that only reads "
                "version 1 has no OpenFlow. Remove the rules, or upgrade the other side"
            )
        out.append({k: v for k, v in b.items() if k != "openflow"})
    return {**obj, "bridges": out}


def _up_2(obj: Any) -> Any:
    """2 -> 3: a version 2 state is a version 3 state without meter actions or buckets."""
    return obj


def _down_3(obj: Any) -> Any:
    """3 -> 2: drop the datapath meter actions from the megaflows and the meters' token
    buckets from the handles (see the version 3 section)."""
    return {**obj, "bridges": [_bridge_down_3(b) for b in obj.get("bridges", [])]}


def _bridge_down_3(b: Any) -> Any:
    dp = b["datapath"]
    handles = {k: v for k, v in (dp.get("handles") or {}).items() if k != "meters"}
    flows = []
    for f in dp.get("flows", []):
        actions = f[2]  # FlowV1 is array-like: key, mask, actions, ...
        if any(a and a[0] == "meter" for a in actions):
            f = [*f[:2], [a for a in actions if not (a and a[0] == "meter")], *f[3:]]
        flows.append(f)
    return {**b, "datapath": {**dp, "handles": handles, "flows": flows}}


def flow_down_3(f: FlowV1) -> FlowV1:
    """One megaflow record as version 2 has it (``_down_3`` for a record at a time)."""
    if not any(a and a[0] == "meter" for a in f.actions):
        return f
    actions = [a for a in f.actions if not (a and a[0] == "meter")]
    return FlowV1(f.key, f.mask, actions, f.packet_count, f.byte_count, f.used_age, f.tcp_flags)


MIGRATE_UP: dict[int, Callable[[Any], Any]] = {1: _up_1, 2: _up_2}
MIGRATE_DOWN: dict[int, Callable[[Any], Any]] = {2: _down_2, 3: _down_3}


def readable_versions() -> list[int]:
    """Every format version this build can read and write, newest first: its own and
    each older one reachable by migrations (at least the previous one, once it exists)."""
    out = [CURRENT_VERSION]
    v = CURRENT_VERSION
    while v in MIGRATE_DOWN and v - 1 in STATE_TYPES:
        v -= 1
        out.append(v)
    return out


def convert(obj: Any, from_version: int, to_version: int) -> Any:
    """Migrate a builtin-form state between versions, one step at a time."""
    v = from_version
    while v < to_version:
        if v not in MIGRATE_UP:
            raise SnapshotError(f"no migration from state version {v} to {v + 1}")
        obj = MIGRATE_UP[v](obj)
        v += 1
    while v > to_version:
        if v not in MIGRATE_DOWN:
            raise SnapshotError(f"no migration from state version {v} down to {v - 1}")
        obj = MIGRATE_DOWN[v](obj)
        v -= 1
    return obj


def payload_checksum(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def encode(
    state: msgspec.Struct, *, software: str, taken: float, version: int | None = None
) -> bytes:
    """Encode a current-version state, migrated down to ``version`` if asked."""
    if version is None or version == CURRENT_VERSION:
        version = CURRENT_VERSION
        payload = msgspec.msgpack.encode(state)
    else:
        if version not in STATE_TYPES:
            raise SnapshotError(f"this build cannot write state version {version}")
        obj = convert(msgspec.to_builtins(state, builtin_types=(bytes,)), CURRENT_VERSION, version)
        typed = msgspec.convert(obj, STATE_TYPES[version])
        payload = msgspec.msgpack.encode(typed)
    env = Envelope(MAGIC, version, software, taken, payload_checksum(payload), payload)
    return msgspec.msgpack.encode(env)


def envelope_parts(
    payload: list[bytes], checksum: str, *, software: str, taken: float, version: int
) -> list[bytes]:
    """A snapshot as pieces: the envelope's head, then the payload's pieces (their
    concatenation encoded for ``version``, its SHA-256 ``checksum`` computed by the
    caller). Concatenated, they are what ``encode`` returns; nothing is copied."""
    head = msgspec.msgpack.encode(Envelope(MAGIC, version, software, taken, checksum, b""))
    return [with_bin_tail(head, sum(len(p) for p in payload)), *payload]


DELTA_TYPES: dict[int, type[msgspec.Struct]] = {1: DeltaV1, 2: DeltaV2, 3: DeltaV3}


def encode_delta(delta: msgspec.Struct, *, software: str, taken: float, version: int) -> bytes:
    """A delta is only ever exchanged between two live processes that negotiated
    ``version``; it has no migrations (a version without a delta type sends full state)."""
    if DELTA_TYPES.get(version) is not type(delta):
        raise SnapshotError(f"no delta format for state version {version}")
    payload = msgspec.msgpack.encode(delta)
    return msgspec.msgpack.encode(
        Envelope(MAGIC, version, software, taken, payload_checksum(payload), payload)
    )


def decode_delta(data: bytes) -> tuple[Envelope, Delta]:
    env = read_envelope(data)
    kind = DELTA_TYPES.get(env.version)
    if kind is None:
        raise SnapshotError(f"no delta format for state version {env.version}")
    try:
        delta = msgspec.msgpack.decode(env.payload, type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise SnapshotError(f"delta for state version {env.version} is invalid: {e}") from None
    if env.version == CURRENT_VERSION:
        return env, delta  # type: ignore[return-value]
    # An older delta: migrate each bridge up as a one-bridge state.
    obj = msgspec.to_builtins(delta, builtin_types=(bytes,))
    for d in obj["bridges"]:
        d["changed"] = convert({"bridges": [d["changed"]]}, env.version, CURRENT_VERSION)[
            "bridges"
        ][0]
    return env, msgspec.convert(obj, Delta)


def read_envelope(data: bytes) -> Envelope:
    if not data:
        raise SnapshotError("empty snapshot")
    try:
        env = msgspec.msgpack.decode(data, type=Envelope)
    except msgspec.DecodeError as e:
        if "truncated" in str(e).lower() or "input data was truncated" in str(e).lower():
            raise SnapshotError(f"truncated snapshot ({len(data)} bytes): {e}") from None
        raise SnapshotError(f"not a hitless state snapshot: {e}") from None
    except msgspec.ValidationError as e:
        raise SnapshotError(f"not a hitless state snapshot: {e}") from None
    if env.magic != MAGIC:
        raise SnapshotError(f"not a hitless state snapshot (magic {env.magic!r})")
    if payload_checksum(env.payload) != env.checksum:
        raise SnapshotError("snapshot payload is corrupted (checksum mismatch)")
    return env


def as_version(state: msgspec.Struct, version: int) -> msgspec.Struct:
    """A current-version state as the typed state of ``version`` (migrated down)."""
    if version == CURRENT_VERSION:
        return state
    obj = convert(msgspec.to_builtins(state, builtin_types=(bytes,)), CURRENT_VERSION, version)
    return msgspec.convert(obj, STATE_TYPES[version])


def decode(data: bytes) -> tuple[Envelope, State]:
    """Validate and decode a snapshot of any readable version into the current one."""
    env = read_envelope(data)
    if env.version not in STATE_TYPES:
        newest = max(STATE_TYPES)
        raise SnapshotError(
            f"snapshot has state version {env.version}, written by hitless {env.software}; "
            f"this build reads versions up to {newest}: upgrade this build or downgrade "
            "the writer first"
        )
    try:
        typed = msgspec.msgpack.decode(env.payload, type=STATE_TYPES[env.version])
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise SnapshotError(f"snapshot version {env.version} payload is invalid: {e}") from None
    if env.version == CURRENT_VERSION:
        return env, typed  # type: ignore[return-value]
    obj = convert(msgspec.to_builtins(typed, builtin_types=(bytes,)), env.version, CURRENT_VERSION)
    return env, msgspec.convert(obj, State)


def state_digest(state: Any) -> str:
    """A digest of the essential learned state, independent of ages and counters that
    move on their own: two processes holding the same state agree on it. Computed on a
    state of the version both sides use (``as_version``): a version 1 state has no
    OpenFlow part, and its digest is what version 1 builds compute."""
    h = hashlib.sha256()
    for br in sorted(state.bridges, key=lambda b: b.name):
        h.update(br.name.encode())
        for p in sorted(br.ports, key=lambda p: p.ofport):
            h.update(f"p{p.name}:{p.ofport}:{p.type}".encode())
        for m in sorted(br.mac_entries, key=lambda m: (m.vlan, m.mac)):
            h.update(f"m{m.vlan}:{m.mac.hex()}:{m.port}".encode())
        for f in sorted(br.datapath.flows, key=lambda f: (f.mask, f.key)):
            h.update(b"f" + f.key + f.mask + msgspec.json.encode(f.actions))
        of = getattr(br, "openflow", None)
        if of is not None:
            for item in sorted(_openflow_items(of)):
                h.update(item)
    return h.hexdigest()


def _rule_item(r: OfRuleV2) -> bytes:
    return (
        b"r"
        + f"{r.table}:{r.priority}:{r.cookie}:{r.flags}:{r.importance}:"
        f"{r.idle_timeout}:{r.hard_timeout}:".encode()
        + r.match
        + b":"
        + r.instructions
    )


def _group_meter_items(groups: list[OfGroupV2], meters: list[OfMeterV2]) -> list[bytes]:
    out = [b"g" + f"{g.group_id}:{g.type}:".encode() + g.buckets for g in groups]
    out += [b"M" + f"{m.meter_id}:{m.flags}:".encode() + m.bands for m in meters]
    return out


def _openflow_items(of: OpenFlowV2) -> list[bytes]:
    """What identifies an OpenFlow state (counters, ages and lookups left out)."""
    return [_rule_item(r) for r in of.rules] + _group_meter_items(of.groups, of.meters)


# Order-independent digests, maintained incrementally across a pre-copy and its delta:
# the sum (mod 2^128) of a hash per item. Ages and counters are not items.

DIGEST_MOD = 1 << 128


def _h(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def port_item(bridge: str, name: str, ofport: int, type_: str) -> int:
    return _h(f"p\0{bridge}\0{name}\0{ofport}\0{type_}".encode())


def mac_item(bridge: str, vlan: int, mac: bytes, port: int) -> int:
    return _h(
        b"m\0" + bridge.encode() + b"\0" + vlan.to_bytes(2, "big") + mac + port.to_bytes(4, "big")
    )


def flow_item(bridge: str, key: bytes, mask: bytes, actions: list[Any]) -> int:
    return _h(b"f\0" + bridge.encode() + b"\0" + key + mask + msgspec.json.encode(actions))


def rule_item(bridge: str, r: OfRuleV2) -> int:
    """One rule's share of ``openflow_item_sum``."""
    return _h(b"o\0" + bridge.encode() + b"\0" + _rule_item(r))


def group_meter_item_sum(bridge: str, groups: list[OfGroupV2], meters: list[OfMeterV2]) -> int:
    """The groups' and meters' share of ``openflow_item_sum``."""
    prefix = b"o\0" + bridge.encode() + b"\0"
    return sum(_h(prefix + item) for item in _group_meter_items(groups, meters)) % DIGEST_MOD


def openflow_item_sum(bridge: str, of: OpenFlowV2 | None) -> int:
    if of is None:
        return 0
    prefix = b"o\0" + bridge.encode() + b"\0"
    return sum(_h(prefix + item) for item in _openflow_items(of)) % DIGEST_MOD


def multiset_digest(state: Any) -> int:
    total = 0
    for br in state.bridges:
        n = br.name
        for p in br.ports:
            total += port_item(n, p.name, p.ofport, p.type)
        for m in br.mac_entries:
            total += mac_item(n, m.vlan, m.mac, m.port)
        for f in br.datapath.flows:
            total += flow_item(n, f.key, f.mask, f.actions)
        total += openflow_item_sum(n, getattr(br, "openflow", None))
    return total % DIGEST_MOD


def format_digest(value: int) -> str:
    return f"{value % DIGEST_MOD:032x}"


def summary(state: Any) -> dict[str, int]:
    out = {
        "bridges": len(state.bridges),
        "ports": sum(len(b.ports) for b in state.bridges),
        "mac_entries": sum(len(b.mac_entries) for b in state.bridges),
        "datapath_flows": sum(len(b.datapath.flows) for b in state.bridges),
    }
    ofs = [b.openflow for b in state.bridges if getattr(b, "openflow", None) is not None]
    if ofs:
        out["openflow_rules"] = sum(len(of.rules) for of in ofs)
    return out
