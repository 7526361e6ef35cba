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


class Envelope(msgspec.Struct, frozen=True):
    magic: str
    version: int
    software: str
    taken: float  # CLOCK_MONOTONIC of the writer when the snapshot was taken
    checksum: str  # sha256 hex of payload
    payload: bytes


# --------------------------------------------------------------------------------------
# Version registry and migrations.

STATE_TYPES: dict[int, type[msgspec.Struct]] = {1: StateV1}
CURRENT_VERSION = 1

# MIGRATE_UP[n] converts a decoded version-n builtin object to version n+1;
# MIGRATE_DOWN[n] converts version n to version n-1. Builtin (dict/list) form, so a
# migration never needs the struct classes of both versions at once.
MIGRATE_UP: dict[int, Callable[[Any], Any]] = {}
MIGRATE_DOWN: dict[int, Callable[[Any], Any]] = {}


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
        obj = convert(msgspec.to_builtins(state), CURRENT_VERSION, version)
        typed = msgspec.convert(obj, STATE_TYPES[version])
        payload = msgspec.msgpack.encode(typed)
    env = Envelope(MAGIC, version, software, taken, payload_checksum(payload), payload)
    return msgspec.msgpack.encode(env)


DELTA_TYPES: dict[int, type[msgspec.Struct]] = {1: DeltaV1}


def encode_delta(delta: DeltaV1, *, software: str, taken: float, version: int) -> bytes:
    """A delta is only ever exchanged between two live processes that negotiated
    ``version``; it has no migrations (a version without a delta type sends full state)."""
    if DELTA_TYPES.get(version) is not type(delta):
        raise SnapshotError(f"no delta format for state version {version}")
    payload = msgspec.msgpack.encode(delta)
    return msgspec.msgpack.encode(
        Envelope(MAGIC, version, software, taken, payload_checksum(payload), payload)
    )


def decode_delta(data: bytes) -> tuple[Envelope, DeltaV1]:
    env = read_envelope(data)
    kind = DELTA_TYPES.get(env.version)
    if kind is None:
        raise SnapshotError(f"no delta format for state version {env.version}")
    try:
        return env, msgspec.msgpack.decode(env.payload, type=kind)  # type: ignore[return-value]
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise SnapshotError(f"delta for state version {env.version} is invalid: {e}") from None


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


def decode(data: bytes) -> tuple[Envelope, StateV1]:
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
    obj = convert(msgspec.to_builtins(typed), env.version, CURRENT_VERSION)
    return env, msgspec.convert(obj, StateV1)


def state_digest(state: StateV1) -> str:
    """A digest of the essential learned state, independent of ages and counters that
    move on their own: two processes holding the same state agree on it."""
    h = hashlib.sha256()
    for br in sorted(state.bridges, key=lambda b: b.name):
        h.update(br.name.encode())
        for p in sorted(br.ports, key=lambda p: p.ofport):
            h.update(f"p{p.name}:{p.ofport}:{p.type}".encode())
        for m in sorted(br.mac_entries, key=lambda m: (m.vlan, m.mac)):
            h.update(f"m{m.vlan}:{m.mac.hex()}:{m.port}".encode())
        for f in sorted(br.datapath.flows, key=lambda f: (f.mask, f.key)):
            h.update(b"f" + f.key + f.mask + msgspec.json.encode(f.actions))
    return h.hexdigest()


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


def multiset_digest(state: StateV1) -> int:
    total = 0
    for br in state.bridges:
        n = br.name
        for p in br.ports:
            total += port_item(n, p.name, p.ofport, p.type)
        for m in br.mac_entries:
            total += mac_item(n, m.vlan, m.mac, m.port)
        for f in br.datapath.flows:
            total += flow_item(n, f.key, f.mask, f.actions)
    return total % DIGEST_MOD


def format_digest(value: int) -> str:
    return f"{value % DIGEST_MOD:032x}"


def summary(state: StateV1) -> dict[str, int]:
    return {
        "bridges": len(state.bridges),
        "ports": sum(len(b.ports) for b in state.bridges),
        "mac_entries": sum(len(b.mac_entries) for b in state.bridges),
        "datapath_flows": sum(len(b.datapath.flows) for b in state.bridges),
    }
