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

from hitless.state.parts import with_bin_tail
from hitless.state.records import (
    Delta,
    DeltaV1,
    DeltaV2,
    DeltaV3,
    Envelope,
    FlowV1,
    State,
    StateV1,
    StateV2,
    StateV3,
)

MAGIC = "hitless-state"


class SnapshotError(Exception):
    """The snapshot cannot be used; the message says why and what to do."""


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
