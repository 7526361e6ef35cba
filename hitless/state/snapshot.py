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

from hitless.state import handles as dp_handles
from hitless.state.errors import SnapshotError
from hitless.state.parts import with_bin_tail
from hitless.state.records import (
    ActionV7,
    BridgeDeltaV2,
    BridgeDeltaV6,
    BridgeDeltaV7,
    BridgeV2,
    BridgeV6,
    BridgeV7,
    DatapathV1,
    DatapathV7,
    Delta,
    DeltaV1,
    DeltaV2,
    DeltaV3,
    DeltaV4,
    DeltaV5,
    DeltaV6,
    DeltaV7,
    Envelope,
    FlowV1,
    FlowV7,
    OfGroupV2,
    OfGroupV6,
    OfRuleV2,
    OfRuleV6,
    OpenFlowDeltaV2,
    OpenFlowDeltaV6,
    OpenFlowV2,
    OpenFlowV6,
    State,
    StateV1,
    StateV2,
    StateV3,
    StateV4,
    StateV5,
    StateV6,
    StateV7,
)

MAGIC = "hitless-state"


__all__ = ["SnapshotError"]  # and the functions below (a module of the state layer)


# --------------------------------------------------------------------------------------
# Version registry and migrations.

STATE_TYPES: dict[int, type[msgspec.Struct]] = {
    1: StateV1, 2: StateV2, 3: StateV3, 4: StateV4, 5: StateV5, 6: StateV6, 7: StateV7,
}  # fmt: skip
CURRENT_VERSION = 7

# Versions whose bridges are the very same records (``BridgeV2`` and ``BridgeDeltaV2``):
# between them a state or a delta moves by taking its bridges as they are (no builtin
# round trip, whatever the size).
SAME_BRIDGES = frozenset({3, 4, 5})
# Versions a handoff may send a delta in: the current one, and those of ``SAME_BRIDGES``
# (their bridges convert to and from the current ones record by record: ``bridge_down``).
DELTA_VERSIONS = SAME_BRIDGES | {6, CURRENT_VERSION}


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


def _up_3(obj: Any) -> Any:
    """3 -> 4: no sessions (a version 3 peer sends them beside the snapshot: see
    hitless.state.sessions)."""
    return {**obj, "sessions": []}


def _down_4(obj: Any) -> Any:
    """4 -> 3: the sessions leave the state (a handoff of version 3 sends them beside
    it, ``sessions.to_v3``; a file has none)."""
    return {k: v for k, v in obj.items() if k != "sessions"}


def _up_4(obj: Any) -> Any:
    """4 -> 5: no typed connection table; a version 4 writer's connections stay in the
    datapath's handles, where version 5 providers still read them."""
    return {**obj, "conntrack": []}


def _down_5(obj: Any) -> Any:
    """5 -> 4: each bridge's connections go back into its datapath's handles, in the
    form version 4 builds read there (``ct_conn_v4``)."""
    tables = {t["bridge"]: t.get("conns", []) for t in obj.get("conntrack", [])}
    bridges = []
    for b in obj.get("bridges", []):
        conns = tables.get(b["name"])
        if conns:
            dp = b["datapath"]
            ct = dict((dp.get("handles") or {}).get("conntrack") or {})
            ct["conns"] = [*ct.get("conns", []), *(ct_conn_v4(c) for c in conns)]
            b = {**b, "datapath": {**dp, "handles": {**dp.get("handles", {}), "conntrack": ct}}}
        bridges.append(b)
    return {**{k: v for k, v in obj.items() if k != "conntrack"}, "bridges": bridges}


def ct_conn_v4(c: Any) -> list[Any]:
    """A connection (``CtConnV5`` in builtin form) as version 4 handles carry it."""
    zone, o, r, timeout, nat, mark, label, seen, state, tcp, liberal = c
    return [zone, [bytes(o[0]).hex(), bytes(o[1]).hex(), *o[2:]],
            [bytes(r[0]).hex(), bytes(r[1]).hex(), *r[2:]], timeout, nat, mark,
            f"{int.from_bytes(bytes(label), 'big'):x}", seen, state, [list(p) for p in tcp],
            liberal]  # fmt: skip


def _up_5(obj: Any) -> Any:
    """5 -> 6: a rule's one age is also its modified age; groups have the default
    selection method."""
    return {**obj, "bridges": [_bridge_up_5(b) for b in obj.get("bridges", [])]}


def _bridge_up_5(b: Any) -> Any:
    of = b.get("openflow")
    if of is None:
        return b
    rules = [[*r, r[9]] for r in of.get("rules") or []]  # OfRuleV2 is array-like
    return {**b, "openflow": {**of, "rules": rules}}


def _down_6(obj: Any) -> Any:
    """6 -> 5: a rule's age becomes its modified age (what a version 5 build times it
    out from); a group's selection method goes where dropping it changes nothing
    (``selection_lost``), else the migration is refused."""
    return {**obj, "bridges": [_bridge_down_6(b) for b in obj.get("bridges", [])]}


def _bridge_down_6(b: Any) -> Any:
    of = b.get("openflow")
    if of is None:
        return b
    for g in of.get("groups") or []:
        sel = g.get("selection")
        if sel is not None and selection_lost(sel[0], bool(sel[2])):
            raise SnapshotError(selection_refusal(b["name"], g["group_id"], sel[0]))
    rules = [[*r[:9], r[13], *r[10:13]] for r in of.get("rules") or []]
    groups = [{k: v for k, v in g.items() if k != "selection"} for g in of.get("groups") or []]
    return {**b, "openflow": {**of, "rules": rules, "groups": groups}}


def selection_lost(method: str, has_fields: bool) -> bool:
    """Whether a build of version 5 or older would pick a group's buckets otherwise
    without its selection method: it hashes a packet's addresses and ports, as it does
    for dp_hash and for a hash over no fields, but not as for a hash over given fields.
    (dp_hash and a field-less hash go down as no selection method: the buckets are
    picked the same; ``dump-groups`` there no longer shows the property.)"""
    return method == "hash" and has_fields


def selection_refusal(bridge: str, group_id: int, method: str, version: int = 5) -> str:
    return (
        f"bridge {bridge}: group {group_id} has selection_method={method} with fields, "
        f"which a build of state version {version} cannot carry (it would pick the group's "
        "buckets by another hash): delete the group or set it again without "
        "selection_method (ovs-ofctl -O OpenFlow15 mod-group), or hand over to a newer "
        "build"
    )


# -- version 7: typed megaflow actions and datapath handles ----------------------------
# A megaflow's actions go between version 7's records (in builtin form: each a list
# whose first item is the action's name, byte values as bytes) and version 1's JSON form
# (byte values in hex, a ct label as two decimal strings, a meter's scope left out when
# 0) one action at a time; the handles between version 7's tagged records and the
# released wire map (``hitless.state.handles``).


def _hex(b: Any) -> str:
    return bytes(b).hex()


def action_down(a: Any) -> list[Any]:
    """One action from version 7's builtin form to version 1's JSON form."""
    name = a[0]
    if name == "set_field":
        return [name, a[1], _hex(a[2]), None if a[3] is None else _hex(a[3])]
    if name == "userspace":
        return [name, _hex(a[1])]
    if name == "sample":
        return [name, a[1], _hex(a[2])]
    if name == "meter":
        return [name, a[1], a[2]] if a[2] else [name, a[1]]
    if name == "ct":
        zone, commit, force, nat, mark, label = a[1:]
        return [
            name, zone, commit, force,
            None if nat is None else [nat[0], _hex(nat[1]), _hex(nat[2]), *nat[3:]],
            None if mark is None else list(mark),
            None if label is None else [str(int.from_bytes(bytes(x), "big")) for x in label],
        ]  # fmt: skip
    if name == "check_pkt_len":
        return [name, a[1], [action_down(x) for x in a[2]], [action_down(x) for x in a[3]]]
    if name == "clone":
        return [name, [action_down(x) for x in a[1]]]
    return list(a)


def action_up(j: Any) -> list[Any]:
    """One action from version 1's JSON form to version 7's builtin form (``ValueError``,
    ``TypeError`` or ``IndexError`` if it is not an action of that form)."""
    name = j[0]
    if name == "set_field":
        return [name, j[1], bytes.fromhex(j[2]), None if j[3] is None else bytes.fromhex(j[3])]
    if name == "userspace":
        return [name, bytes.fromhex(j[1])]
    if name == "sample":
        return [name, j[1], bytes.fromhex(j[2])]
    if name == "meter":
        return [name, j[1], j[2] if len(j) > 2 else 0]
    if name == "ct":
        zone, commit, force, nat, mark, label = j[1:]
        return [
            name, zone, commit, force,
            None if nat is None else [nat[0], bytes.fromhex(nat[1]), bytes.fromhex(nat[2]),
                                      *nat[3:]],
            mark,
            None if label is None else [int(x).to_bytes(16, "big") for x in label],
        ]  # fmt: skip
    if name == "check_pkt_len":
        return [name, j[1], [action_up(x) for x in j[2]], [action_up(x) for x in j[3]]]
    if name == "clone":
        return [name, [action_up(x) for x in j[1]]]
    return list(j)


# Few distinct action lists exist (NORMAL: one per output set): both directions are
# cached, so a table of 100k megaflows costs lookups, not conversions.
_CACHE_MAX = 1 << 14
_down_cache: dict[tuple[ActionV7, ...], list[Any]] = {}
_up_cache: dict[bytes, tuple[ActionV7, ...]] = {}


def actions_down(actions: tuple[ActionV7, ...]) -> list[Any]:
    """Typed actions in version 1's JSON form (what versions 1-6 carry and digest)."""
    got = _down_cache.get(actions)
    if got is None:
        got = [action_down(a) for a in msgspec.to_builtins(actions, builtin_types=(bytes,))]
        if len(_down_cache) < _CACHE_MAX:
            _down_cache[actions] = got
    return got


def actions_up(j: list[Any]) -> tuple[ActionV7, ...]:
    """Version 1's JSON form of a megaflow's actions as records (``SnapshotError`` if it
    is not one)."""
    key = msgspec.msgpack.encode(j)
    got = _up_cache.get(key)
    if got is None:
        try:
            got = msgspec.convert([action_up(a) for a in j], tuple[ActionV7, ...])
        except (ValueError, TypeError, IndexError, OverflowError, msgspec.ValidationError) as e:
            raise SnapshotError(f"bad megaflow actions {j!r}: {e}") from None
        if len(_up_cache) < _CACHE_MAX:
            _up_cache[key] = got
    return got


def flow_down_7(f: FlowV7) -> FlowV1:
    return FlowV1(f.key, f.mask, actions_down(f.actions), f.packet_count, f.byte_count,
                  f.used_age, f.tcp_flags)  # fmt: skip


def flow_up_6(f: FlowV1) -> FlowV7:
    return FlowV7(f.key, f.mask, actions_up(f.actions), f.packet_count, f.byte_count,
                  f.used_age, f.tcp_flags)  # fmt: skip


def datapath_down_7(dp: DatapathV7) -> DatapathV1:
    handles = {} if dp.handles is None else dp_handles.to_wire(dp.handles)
    return DatapathV1(dp.type, handles, [flow_down_7(f) for f in dp.flows], dp.fd_slots)


def datapath_up_6(dp: DatapathV1) -> DatapathV7:
    handles = dp_handles.from_wire(dp.type, dp.handles) if dp.handles else None
    return DatapathV7(dp.type, handles, [flow_up_6(f) for f in dp.flows], dp.fd_slots)


def bridge_down_7(b: BridgeV7) -> BridgeV6:
    return BridgeV6(b.name, datapath_down_7(b.datapath), b.ports, b.remembered_ofports,
                    b.mac_entries, b.extra, b.openflow)  # fmt: skip


def bridge_up_6(b: BridgeV6) -> BridgeV7:
    return BridgeV7(b.name, datapath_up_6(b.datapath), b.ports, b.remembered_ofports,
                    b.mac_entries, b.extra, b.openflow)  # fmt: skip


def bridge_delta_down_7(d: BridgeDeltaV7) -> BridgeDeltaV6:
    return BridgeDeltaV6(bridge_down_7(d.changed), d.removed_flows, d.removed_macs, d.new,
                         d.openflow_delta)  # fmt: skip


def bridge_delta_up_6(d: BridgeDeltaV6) -> BridgeDeltaV7:
    return BridgeDeltaV7(bridge_up_6(d.changed), d.removed_flows, d.removed_macs, d.new,
                         d.openflow_delta)  # fmt: skip


def bridge_delta_as(d: BridgeDeltaV7, version: int) -> Any:
    """A current bridge delta as a build of ``version`` (3-7) reads it."""
    if version >= CURRENT_VERSION:
        return d
    d6 = bridge_delta_down_7(d)
    return d6 if version == 6 else bridge_delta_down(d6)


def _up_6(obj: Any) -> Any:
    """6 -> 7: megaflow actions and datapath handles as records (builtin form)."""
    return {**obj, "bridges": [_bridge_up_6(b) for b in obj.get("bridges", [])]}


def _bridge_up_6(b: Any) -> Any:
    dp = b["datapath"]
    try:
        flows = [[*f[:2], [action_up(a) for a in f[2]], *f[3:]] for f in dp.get("flows", [])]
    except (ValueError, TypeError, IndexError, OverflowError) as e:
        raise SnapshotError(f"bridge {b.get('name')}: bad megaflow actions: {e}") from None
    handles = dp.get("handles") or None
    if handles is not None:
        rec = dp_handles.from_wire(dp["type"], handles)
        handles = msgspec.to_builtins(rec, builtin_types=(bytes,))
    return {**b, "datapath": {**dp, "handles": handles, "flows": flows}}


def _down_7(obj: Any) -> Any:
    """7 -> 6: megaflow actions and datapath handles in their version 1 wire forms."""
    return {**obj, "bridges": [_bridge_down_7(b) for b in obj.get("bridges", [])]}


def _bridge_down_7(b: Any) -> Any:
    dp = b["datapath"]
    flows = [[*f[:2], [action_down(a) for a in f[2]], *f[3:]] for f in dp.get("flows", [])]
    handles = dp.get("handles")
    if handles is None:
        handles = {}
    else:
        try:
            handles = dp_handles.to_wire(msgspec.convert(handles, dp_handles.Handles))
        except msgspec.ValidationError as e:
            raise SnapshotError(f"bridge {b.get('name')}: bad datapath handles: {e}") from None
    return {**b, "datapath": {**dp, "handles": handles, "flows": flows}}


MIGRATE_UP: dict[int, Callable[[Any], Any]] = {
    1: _up_1, 2: _up_2, 3: _up_3, 4: _up_4, 5: _up_5, 6: _up_6,
}  # fmt: skip
MIGRATE_DOWN: dict[int, Callable[[Any], Any]] = {
    2: _down_2, 3: _down_3, 4: _down_4, 5: _down_5, 6: _down_6, 7: _down_7,
}  # fmt: skip


# Typed conversions between version 6's bridges and version 2's (those of versions 3-5),
# record by record: what a handoff between a version 6 build and a version 3-5 one
# converts (a constructor per record, no builtin round trip), as ``_down_6``/``_up_5``.


def rule_down(r: OfRuleV6) -> OfRuleV2:
    """A rule as versions 2-5 carry it: its age is its modified age."""
    return OfRuleV2(
        r.table, r.priority, r.match, r.instructions, r.cookie, r.idle_timeout,
        r.hard_timeout, r.flags, r.importance, r.modified, r.idle, r.packet_count,
        r.byte_count,
    )  # fmt: skip


def rule_up(r: OfRuleV2) -> OfRuleV6:
    return OfRuleV6(
        r.table, r.priority, r.match, r.instructions, r.cookie, r.idle_timeout,
        r.hard_timeout, r.flags, r.importance, r.age, r.idle, r.packet_count,
        r.byte_count, r.age,
    )  # fmt: skip


def group_down(bridge: str, g: OfGroupV6) -> OfGroupV2:
    """A group as versions 2-5 carry it, without its selection method (``SnapshotError``
    if that would change how its buckets are picked: ``selection_lost``)."""
    sel = g.selection
    if sel is not None and selection_lost(sel.method, bool(sel.fields)):
        raise SnapshotError(selection_refusal(bridge, g.group_id, sel.method))
    return OfGroupV2(g.group_id, g.type, g.buckets, g.age, g.packet_count, g.byte_count,
                     g.bucket_stats)  # fmt: skip


def group_up(g: OfGroupV2) -> OfGroupV6:
    return OfGroupV6(g.group_id, g.type, g.buckets, g.age, g.packet_count, g.byte_count,
                     g.bucket_stats)  # fmt: skip


def openflow_down(bridge: str, of: OpenFlowV6 | None) -> OpenFlowV2 | None:
    if of is None:
        return None
    return OpenFlowV2(
        [rule_down(r) for r in of.rules],
        [group_down(bridge, g) for g in of.groups],
        of.meters,
        of.tables,
    )


def openflow_up(of: OpenFlowV2 | None) -> OpenFlowV6 | None:
    if of is None:
        return None
    return OpenFlowV6(
        [rule_up(r) for r in of.rules], [group_up(g) for g in of.groups], of.meters, of.tables
    )


def bridge_down(b: BridgeV6) -> BridgeV2:
    """A bridge as versions 3-5 carry it (``SnapshotError`` if it cannot go)."""
    return BridgeV2(b.name, b.datapath, b.ports, b.remembered_ofports, b.mac_entries, b.extra,
                    openflow_down(b.name, b.openflow))  # fmt: skip


def bridge_up(b: BridgeV2) -> BridgeV6:
    return BridgeV6(b.name, b.datapath, b.ports, b.remembered_ofports, b.mac_entries, b.extra,
                    openflow_up(b.openflow))  # fmt: skip


def bridge_delta_down(d: BridgeDeltaV6) -> BridgeDeltaV2:
    ofd = d.openflow_delta
    name = d.changed.name
    return BridgeDeltaV2(
        bridge_down(d.changed),
        d.removed_flows,
        d.removed_macs,
        d.new,
        None if ofd is None else OpenFlowDeltaV2(
            ofd.removed, [rule_down(r) for r in ofd.added], ofd.counters,
            [group_down(name, g) for g in ofd.groups], ofd.meters, ofd.tables,
        ),
    )  # fmt: skip


def bridge_delta_up(d: BridgeDeltaV2) -> BridgeDeltaV6:
    ofd = d.openflow_delta
    return BridgeDeltaV6(
        bridge_up(d.changed),
        d.removed_flows,
        d.removed_macs,
        d.new,
        None if ofd is None else OpenFlowDeltaV6(
            ofd.removed, [rule_up(r) for r in ofd.added], ofd.counters,
            [group_up(g) for g in ofd.groups], ofd.meters, ofd.tables,
        ),
    )  # fmt: skip


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
        payload = msgspec.msgpack.encode(as_version(state, version))
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


DELTA_TYPES: dict[int, type[msgspec.Struct]] = {
    1: DeltaV1, 2: DeltaV2, 3: DeltaV3, 4: DeltaV4, 5: DeltaV5, 6: DeltaV6, 7: DeltaV7,
}  # fmt: skip


def encode_delta(delta: msgspec.Struct, *, software: str, taken: float, version: int) -> bytes:
    """A delta is only ever exchanged between two live processes that negotiated
    ``version``; it has no migrations, but a current delta goes to a version of
    ``SAME_BRIDGES`` with its bridges converted (``bridge_delta_down``; sessions, new in
    version 4, go beside it; before version 5 a handoff has no typed connection table:
    the datapath kept it in its handles)."""
    if isinstance(delta, DeltaV7) and version in DELTA_VERSIONS and version < CURRENT_VERSION:
        b6 = [bridge_delta_down_7(d) for d in delta.bridges]
        delta = DeltaV6(b6, delta.sessions, delta.conntrack)
    if isinstance(delta, DeltaV6) and version in SAME_BRIDGES:
        if delta.conntrack and version < 5:
            raise SnapshotError(f"a connection-table delta cannot go to state version {version}")
        bridges = [bridge_delta_down(d) for d in delta.bridges]
        if version == 5:
            delta = DeltaV5(bridges, delta.sessions, delta.conntrack)
        else:
            delta = DeltaV4(bridges, delta.sessions) if version == 4 else DeltaV3(bridges)
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
    if env.version in SAME_BRIDGES or env.version == 6:
        bridges6 = delta.bridges  # type: ignore[attr-defined]
        if env.version != 6:
            bridges6 = [bridge_delta_up(d) for d in bridges6]
        return env, Delta(
            [bridge_delta_up_6(d) for d in bridges6],
            getattr(delta, "sessions", []),
            getattr(delta, "conntrack", []),
        )
    # An older delta: migrate each bridge up as a one-bridge state.
    obj = msgspec.to_builtins(delta, builtin_types=(bytes,))
    for d in obj["bridges"]:
        d["changed"] = convert({"bridges": [d["changed"]]}, env.version, CURRENT_VERSION)[
            "bridges"
        ][0]
        ofd = d.get("openflow_delta")
        if ofd:  # its rules as version 6 has them (``_up_5``: the one age is both)
            ofd["added"] = [[*r, r[9]] for r in ofd.get("added") or []]
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
    """A current-version state as the typed state of ``version`` (migrated down); a
    state of that version already is returned as it is."""
    if version == CURRENT_VERSION or type(state) is STATE_TYPES.get(version):
        return state
    if version not in STATE_TYPES:
        raise SnapshotError(f"this build cannot write state version {version}")
    s7: Any = state
    s6: Any = StateV6([bridge_down_7(b) for b in s7.bridges], s7.sessions, s7.conntrack)
    if version == 6:
        return s6
    state = StateV5([bridge_down(b) for b in s6.bridges], s6.sessions, s6.conntrack)
    if version == 5:
        return state
    if version in SAME_BRIDGES and not getattr(state, "conntrack", None):
        if version == 4:
            return StateV4(state.bridges, state.sessions)  # type: ignore[attr-defined]
        return STATE_TYPES[version](state.bridges)  # type: ignore[attr-defined]
    obj = convert(msgspec.to_builtins(state, builtin_types=(bytes,)), 5, version)
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
    if env.version in SAME_BRIDGES or env.version == 6:
        bridges6 = typed.bridges  # type: ignore[attr-defined]
        if env.version != 6:
            bridges6 = [bridge_up(b) for b in bridges6]
        return env, State(
            [bridge_up_6(b) for b in bridges6],
            getattr(typed, "sessions", []),
            getattr(typed, "conntrack", []),
        )
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
