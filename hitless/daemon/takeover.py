"""The switch's side of the handoff: exporting a running ``Switch`` as a state snapshot
plus descriptors (``SwitchExporter``), and rebuilding one from them in a new process
(``SwitchImporter``).

What a snapshot holds per bridge: the datapath's ports (name, number, type), its
megaflows with counters and ages, the provider's handles (AF_PACKET ring positions, the
meters' token buckets and such; the descriptors travel separately), the MAC table with
entry ages, and the ofport numbers remembered for removed interfaces. Configuration is
not carried: the new process reads it from its own, already synced, OVSDB connection.

With the protocol feature "delta" the freeze is short whatever the size of the state:
the new process builds every bridge, megaflow and MAC entry from the pre-copy while the
old one still serves; the old one tracks what changes from then on (the datapath's
changed matches, the MAC table's journal, flows whose counters moved) and the freeze
carries only that, plus the descriptors. Both sides keep a ``hitless.state.ledger.Ledger``:
the old one fills it while it copies, the new one from the pre-copy it received, and both
apply the freeze's delta to it with the same code; the old side checks the new side's
digest (and its live counts) before it lets go.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import msgspec

from hitless import __version__
from hitless.config.model import BridgeConfig, InterfaceStatus
from hitless.config.ovsdb import read_config
from hitless.daemon.clock import WarpClock
from hitless.daemon.handoff_old import HandoffRefused
from hitless.datapath import Datapath, DpFlow, FlowStats, provider
from hitless.datapath.actions import Action, actions_from_json, actions_to_json
from hitless.ofproto.bridge import Bridge
from hitless.ofproto.mac_learning import format_mac, parse_mac
from hitless.ofproto.oftable import Rule
from hitless.openflow.actions import encode_instructions
from hitless.packet.flow import Match, compact, widen
from hitless.state import ledger, snapshot
from hitless.state.parts import RecordList, Splicer
from hitless.state.records import (
    BridgeDelta,
    BridgeState,
    DatapathV1,
    Delta,
    FlowV1,
    MacEntryV1,
    OfGroupV2,
    OfMeterV2,
    OfRuleCountersV2,
    OfRuleV2,
    OpenFlowDeltaV2,
    OpenFlowV2,
    PortV1,
    State,
)


class Switch(Protocol):
    """What the handoff needs of the running switch (``hitless.daemon.switch.Switch``
    implements it; this module does not import that one: the switch imports us)."""

    bridges: dict[str, Any]  # name -> RunningBridge (cfg, bridge, datapath, statuses)
    clock: Any  # the switch's (warpable) clock: clock() -> seconds
    idl: Any
    inherited_openflow: dict[str, Any]

    def force_reconcile(self) -> None: ...
    def listening_fds(self) -> dict[str, int]: ...
    def export_openflow_sessions(self) -> tuple[list[dict[str, Any]], list[int]]: ...
    def adopt_bridge(
        self,
        cfg: BridgeConfig,
        bridge: Any,
        datapath: Datapath,
        statuses: dict[str, InterfaceStatus],
    ) -> None: ...


log = logging.getLogger(__name__)

# Few distinct action lists exist (NORMAL: one per output set), so their JSON forms are
# cached both ways; a handoff of 50k flows then costs dict lookups, not conversions.
_to_json: dict[tuple[Action, ...], list[Any]] = {}
_from_json: dict[bytes, tuple[Action, ...]] = {}


def _actions_json(actions: tuple[Action, ...]) -> list[Any]:
    j = _to_json.get(actions)
    if j is None:
        if len(_to_json) > 4096:
            _to_json.clear()
        j = _to_json[actions] = actions_to_json(actions)
    return j


def _actions(j: list[Any]) -> tuple[Action, ...]:
    k = msgspec.msgpack.encode(j)
    a = _from_json.get(k)
    if a is None:
        if len(_from_json) > 4096:
            _from_json.clear()
        a = _from_json[k] = actions_from_json(j)
    return a


# -- export -----------------------------------------------------------------------


def _flow_record(f: Any, now: float) -> FlowV1:
    s = f.stats
    key, mask = compact(f.match.key, f.match.mask)  # 102 bytes unless it matches ct fields
    return FlowV1(
        key,
        mask,
        _actions_json(f.actions),
        s.packets,
        s.bytes,
        now - s.used if s.used else -1.0,
        s.tcp_flags,
    )


def _ports(dp: Datapath) -> list[PortV1]:
    return [
        PortV1(p.name, p.port_no, p.type)
        for p in sorted(dp.ports().values(), key=lambda p: p.port_no)
    ]


def _rule_v2(r: dict[str, Any]) -> OfRuleV2:
    return OfRuleV2(
        int(r["table"]), int(r["priority"]), bytes.fromhex(r["match"]),
        bytes.fromhex(r["instructions"]), int(r["cookie"]), int(r["idle_timeout"]),
        int(r["hard_timeout"]), int(r["flags"]), int(r.get("importance", 0)),
        float(r["age"]), float(r["idle"]), int(r["packets"]), int(r["bytes"]),
    )  # fmt: skip


_instructions_wire: dict[tuple[Any, ...], bytes] = {}


def _rule_record(r: Rule, now: float) -> OfRuleV2:
    """A live rule as its record, straight from the object (no JSON form in between)."""
    insts = _instructions_wire.get(r.instructions)
    if insts is None:
        if len(_instructions_wire) > 4096:
            _instructions_wire.clear()
        insts = _instructions_wire[r.instructions] = encode_instructions(r.instructions)
    return OfRuleV2(
        r.table_id, r.priority, r.match.encode(), insts, r.cookie, r.idle_timeout,
        r.hard_timeout, r.flags, r.importance, now - r.created, now - r.last_used,
        r.packets, r.bytes,
    )  # fmt: skip


def _group_v2(g: dict[str, Any]) -> OfGroupV2:
    return OfGroupV2(
        int(g["group_id"]), int(g["type"]), bytes.fromhex(g["buckets"]),
        float(g["age"]), int(g["packets"]), int(g["bytes"]),
        [[int(p), int(b)] for p, b in g.get("bucket_stats", [])],
    )  # fmt: skip


def _meter_v2(m: dict[str, Any]) -> OfMeterV2:
    return OfMeterV2(
        int(m["meter_id"]), int(m["flags"]), bytes.fromhex(m["bands"]),
        float(m["age"]), int(m["packets"]), int(m["bytes"]),
        [[int(p), int(b)] for p, b in m.get("band_stats", [])],
    )  # fmt: skip


def _rule_dict(r: OfRuleV2) -> dict[str, Any]:
    return {"table": r.table, "priority": r.priority, "match": r.match.hex(),
            "instructions": r.instructions.hex(), "cookie": r.cookie,
            "idle_timeout": r.idle_timeout, "hard_timeout": r.hard_timeout, "flags": r.flags,
            "importance": r.importance, "age": r.age, "idle": r.idle,
            "packets": r.packet_count, "bytes": r.byte_count}  # fmt: skip


def _group_dict(g: OfGroupV2) -> dict[str, Any]:
    return {"group_id": g.group_id, "type": g.type, "buckets": g.buckets.hex(), "age": g.age,
            "packets": g.packet_count, "bytes": g.byte_count,
            "bucket_stats": g.bucket_stats}  # fmt: skip


def _meter_dict(m: OfMeterV2) -> dict[str, Any]:
    return {"meter_id": m.meter_id, "flags": m.flags, "bands": m.bands.hex(), "age": m.age,
            "packets": m.packet_count, "bytes": m.byte_count,
            "band_stats": m.band_stats}  # fmt: skip


def _openflow_state(bridge: Any, now: float) -> OpenFlowV2 | None:
    """The bridge's OpenFlow rules, groups and meters (None: a bridge without any)."""
    export = getattr(bridge, "export_openflow", None)
    if export is None:
        return None
    d = export(now)
    return OpenFlowV2(
        [_rule_v2(r) for r in d.get("rules", [])],
        [_group_v2(g) for g in d.get("groups", [])],
        [_meter_v2(m) for m in d.get("meters", [])],
        [[int(x) for x in t] for t in d.get("tables", [])],
    )


def _import_openflow(bridge: Any, of: OpenFlowV2 | None, now: float) -> None:
    """Give a new bridge the OpenFlow state (None: it keeps its default table)."""
    if of is None:
        return
    data = {
        "version": 1,
        "rules": [_rule_dict(r) for r in of.rules],
        "groups": [_group_dict(g) for g in of.groups],
        "meters": [_meter_dict(m) for m in of.meters],
        "tables": of.tables,
    }
    bridge.import_openflow(data, now)


def _openflow_delta(
    name: str, bridge: Bridge, base: _Baseline, moved: list[Any], now: float
) -> OpenFlowDeltaV2 | None:
    """The bridge's OpenFlow changes since the pre-copy; None when only a whole copy
    will do (the tables were replaced wholesale)."""
    bridge.revalidator.settle_flows(moved, now)  # counters up to the freeze
    bridge.settle_meters()
    journal, credited, overflow = bridge.take_openflow_journal()
    if overflow:
        return None
    index, objs = base.of_index[name], base.of_objs[name]
    of = bridge.of
    removed: list[int] = []
    added: list[OfRuleV2] = []
    for key in journal:
        i = index.get(key)
        if i is not None:
            removed.append(i)
        r = of.tables[key[0]].rules.get(key[1])
        if r is not None:
            added.append(_rule_record(r, now))
    counters = []
    for obj in credited:
        if type(obj) is not Rule:
            continue  # table, group, bucket and meter counters travel whole
        i = objs.get(obj)
        if i is None or (obj.table_id, obj.ident) in journal:
            continue
        rule = obj
        counters.append(OfRuleCountersV2(i, now - rule.last_used, rule.packets, rule.bytes))
    groups = [_group_v2(g.to_json(now)) for g in sorted(of.groups.values(), key=_group_id)]
    meters = [_meter_v2(m.to_json(now)) for m in sorted(of.meters.values(), key=_meter_id)]
    tables = [[t.table_id, t.lookups, t.matched] for t in of.tables if t.lookups]
    return OpenFlowDeltaV2(sorted(removed), added, counters, groups, meters, tables)


def _group_id(g: Any) -> int:
    return int(g.group_id)


def _meter_id(m: Any) -> int:
    return int(m.meter_id)


# -- extras: small learned state of other layers, carried at the freeze ----------------

BridgeExport = Callable[[Any, float], Any]  # (bridge, now) -> builtins, or None
BridgeAdopt = Callable[[Any, Any, float], None]  # (bridge, data, now)
SwitchExport = Callable[[Any], Any]  # (switch) -> builtins, or None
SwitchAdopt = Callable[[Any, Any], None]  # (switch, data)
_BRIDGE_EXTRAS: dict[str, tuple[BridgeExport, BridgeAdopt]] = {}
_SWITCH_EXTRAS: dict[str, tuple[SwitchExport, SwitchAdopt]] = {}


def register_bridge_extra(name: str, *, export: BridgeExport, adopt: BridgeAdopt) -> None:
    """Carry a bridge layer's small learned state (bonds, LACP partners...) across a
    handoff: ``export(bridge, now)`` runs in the old process at the freeze (inside the
    freeze window: keep it small) and returns msgpack-able builtins (None: nothing);
    ``adopt(bridge, data, now)`` runs in the new process at commit, after the bridge
    applied its configuration, before it serves. Travels in ``BridgeV2.extra[name]``
    (no state version change; the digest ignores it). A peer that does not know
    ``name`` ignores it; without data for it, ``adopt`` is not called."""
    _BRIDGE_EXTRAS[name] = (export, adopt)


def register_switch_extra(name: str, *, export: SwitchExport, adopt: SwitchAdopt) -> None:
    """The same for state of the whole switch (its clock's warp, log levels...):
    ``export(switch)`` at the freeze, ``adopt(switch, data)`` at commit. Travels in the
    handoff's Frozen message (``extras``)."""
    _SWITCH_EXTRAS[name] = (export, adopt)


def _export_extras(registry: dict[str, tuple[Any, Any]], *args: Any) -> dict[str, Any]:
    """Every registered extra's export (the old process, at the freeze); one that fails
    is logged and left out, the handoff goes on without it (as towards a build that
    does not know it)."""
    out = {}
    for name, (export, _) in sorted(registry.items()):
        try:
            data = export(*args)
        except Exception:
            log.exception("handoff: exporting the carried state %r failed (not carried)", name)
            continue
        if data is not None:
            out[name] = data
    return out


def _bridge_extras(bridge: Any, now: float) -> dict[str, Any]:
    return _export_extras(_BRIDGE_EXTRAS, bridge, now)


def switch_extras(switch: Any) -> dict[str, Any]:
    """Every registered switch extra's export (the old process, at the freeze)."""
    return _export_extras(_SWITCH_EXTRAS, switch)


def _adopt_extras(registry: dict[str, tuple[Any, Any]], extras: dict[str, Any], *args: Any) -> None:
    """Hand each extra to its adopter; one that fails is logged, the others go on (the
    switch is ours already: losing one is what a build without it would do)."""
    for name, data in sorted(extras.items()):
        entry = registry.get(name)
        if entry is None:
            log.info("handoff: no adopter for the carried state %r (ignored)", name)
            continue
        try:
            entry[1](*args[:1], data, *args[1:])
        except Exception:
            log.exception("handoff: adopting the carried state %r failed", name)


def _bridge_state(
    name: str,
    bridge: Any,
    dp: Datapath,
    now: float,
    handles: dict[str, Any],
    slots: list[int],
    extra: dict[str, Any] | None = None,
) -> BridgeState:
    learned = bridge.export_state()
    macs = [MacEntryV1(int(v), parse_mac(m), int(p), float(a)) for v, m, p, a in learned["mac"]]
    flows = [_flow_record(f, now) for f in dp.flow_dump()]
    return BridgeState(
        name,
        DatapathV1(dp.type, handles, flows, slots),
        _ports(dp),
        dict(learned.get("remembered", {})),
        macs,
        extra or {},
        _openflow_state(bridge, now),
    )


def _final_handles(dp: Datapath, fds: list[int]) -> tuple[dict[str, Any], list[int]]:
    handles, dp_fds = dp.export_handles()
    handles = {k: v for k, v in handles.items() if k != "flows"}
    handles["flows"] = []  # carried as typed FlowV1 records instead
    slots = list(range(len(fds), len(fds) + len(dp_fds)))
    fds.extend(dp_fds)
    return handles, slots


def export_switch(switch: Switch, now: float, *, final: bool) -> tuple[State, list[int]]:
    """The switch's whole learned state. With ``final`` (the freeze), also the
    datapaths' handles and live descriptors (still owned by this process)."""
    bridges = []
    fds: list[int] = []
    for name, rb in sorted(switch.bridges.items()):
        handles: dict[str, Any] = {}
        slots: list[int] = []
        extra: dict[str, Any] = {}
        if final:
            handles, slots = _final_handles(rb.datapath, fds)
            extra = _bridge_extras(rb.bridge, now)
        bridges.append(_bridge_state(name, rb.bridge, rb.datapath, now, handles, slots, extra))
    return State(bridges), fds


def _openflow_counts(bridges: Iterable[Any]) -> dict[str, int]:
    """{"openflow_rules": N} over bridges with an OpenFlow table (as ``summary``)."""
    tables = [of for of in (getattr(b, "of", None) for b in bridges) if of is not None]
    return {"openflow_rules": sum(of.n_rules for of in tables)} if tables else {}


def _bridge(rb: Any) -> Bridge:
    return cast(Bridge, rb.bridge)


def thaw_switch(switch: Switch) -> None:
    """Undo what a final export did to the datapaths (a rollback)."""
    for rb in switch.bridges.values():
        rb.datapath.thaw()


@dataclass(slots=True)
class _Baseline:
    """What the pre-copy said: the ledger of what was copied (digest and pre-image of
    every item, per bridge) and, with "openflow-delta", where each live rule is in the
    copied list (by identity in its table, and by object), to compute a delta."""

    taken: float
    ledger: ledger.Ledger = field(default_factory=ledger.Ledger)
    of_index: dict[str, dict[tuple[int, Any], int]] = field(default_factory=dict)
    of_objs: dict[str, dict[Rule, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Frozen:
    state: State | Delta
    fds: list[int]
    digest: str
    counts: dict[str, int]
    listeners: dict[str, int] = field(default_factory=dict)  # name -> live listening fd
    # OpenFlow sessions and listeners (Switch.export_openflow_sessions): records whose
    # "fd" fields index ``session_fds`` (live, still ours)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    session_fds: list[int] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # switch extras (register_switch_extra)


class SwitchExporter:
    """The old side's view of the switch (``handoff_old.HandoffServer`` calls it)."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.baseline: _Baseline | None = None
        self.openflow_delta = False  # the peer takes OpenFlow changes as a delta
        self.patch_ports = True  # the peer adopts patch ports (told otherwise at Hello)

    def use_features(self, features: list[str]) -> None:
        """The protocol features both sides speak (``HandoffServer`` tells us)."""
        self.openflow_delta = "openflow-delta" in features
        self.patch_ports = "patch-ports" in features

    def _check_peer_can_take(self) -> None:
        """Refuse, before anything is frozen, state the new build cannot adopt."""
        if self.patch_ports:
            return
        for name, rb in sorted(self.switch.bridges.items()):
            patches = sorted(p.name for p in rb.datapath.ports().values() if p.type == "patch")
            if patches:
                raise HandoffRefused(
                    f"bridge {name} has patch ports ({', '.join(patches)}) and the new build "
                    "cannot take them over (it predates patch ports): remove them first "
                    "(ovs-vsctl del-port), or hand over to a newer build"
                )

    def precopy_job(self, now: float, delta: bool, version: int) -> PrecopyJob:
        """The pre-copy, to build in slices between datapath polls (``PrecopyJob``); with
        ``delta``, changes are tracked from now on and the finished job leaves the
        baseline the freeze's delta is computed against."""
        now = self.switch.clock()  # state ages on the switch's (warpable) clock, not the lease's
        return PrecopyJob(self, now, delta, version)

    def precopy(self, now: float, delta: bool) -> State:
        """The whole pre-copy at once (tests and tools): the job run to its end."""
        job = self.precopy_job(now, delta, snapshot.CURRENT_VERSION)
        while not job.step(float("inf")):
            pass
        return snapshot.decode(b"".join(job.parts()))[1]

    def counts(self) -> dict[str, int]:
        bridges = self.switch.bridges.values()
        return {
            "bridges": len(self.switch.bridges),
            "ports": sum(len(rb.datapath.ports()) for rb in bridges),
            "mac_entries": sum(len(_bridge(rb).mac) for rb in bridges),
            "datapath_flows": sum(rb.datapath.flow_count() for rb in bridges),
        } | _openflow_counts(rb.bridge for rb in bridges)

    def freeze(self, now: float, delta: bool) -> Frozen:
        now = self.switch.clock()  # as precopy_job
        if not delta or self.baseline is None:
            state, live_fds = export_switch(self.switch, now, final=True)
            self._stop_tracking()
            return Frozen(
                state,
                live_fds,
                ledger.state_digest(state),
                snapshot.summary(state),
                self.switch.listening_fds(),
                *self.switch.export_openflow_sessions(),
                switch_extras(self.switch),
            )
        base = self.baseline
        self.baseline = None
        images = base.ledger.bridges
        fds: list[int] = []
        out = []
        for name, rb in sorted(self.switch.bridges.items()):
            dp, mac = rb.datapath, _bridge(rb).mac
            moved = dp.take_hits(base.taken)
            of_delta: OpenFlowDeltaV2 | None = None
            if name in base.of_index:  # before take_changes: adopting may change flows
                of_delta = _openflow_delta(name, _bridge(rb), base, moved, now)
            changed_flows = dp.take_changes()
            changed_macs = mac.take_journal()
            handles, slots = _final_handles(dp, fds)
            if name not in images:  # created after the pre-copy: send it whole
                whole = _bridge_state(
                    name, rb.bridge, dp, now, handles, slots, _bridge_extras(rb.bridge, now)
                )
                out.append(BridgeDelta(whole, new=True))
                continue
            flows: list[FlowV1] = []
            removed_flows: list[tuple[bytes, bytes]] = []
            for m in changed_flows:
                f = dp.flow_get(m)
                if f is None:
                    removed_flows.append(compact(m.key, m.mask))
                else:
                    flows.append(_flow_record(f, now))
            for f in moved:  # counters that moved since the pre-copy
                if f.match not in changed_flows:
                    flows.append(_flow_record(f, now))
            macs: list[MacEntryV1] = []
            removed_macs: list[tuple[int, bytes]] = []
            copied_macs = images[name].macs
            for key in changed_macs:
                row = mac.entry_row(key, now)
                if row is None:
                    if key in copied_macs:
                        removed_macs.append(key)
                else:
                    macs.append(MacEntryV1(key[0], key[1], int(row[2]), float(row[3])))
            openflow = None
            if of_delta is None:  # the whole OpenFlow state replaces the pre-copy's
                openflow = _openflow_state(rb.bridge, now)
            out.append(
                BridgeDelta(
                    BridgeState(
                        name,
                        DatapathV1(dp.type, handles, flows, slots),
                        _ports(dp),
                        _bridge(rb).ofports.export(),
                        macs,
                        _bridge_extras(rb.bridge, now),
                        openflow,
                    ),
                    removed_flows,
                    removed_macs,
                    openflow_delta=of_delta,
                )
            )
        changes = Delta(out)
        base.ledger.apply_delta(changes)  # what the new side computes from the same delta
        return Frozen(
            changes,
            fds,
            base.ledger.hex(),
            self.counts(),
            self.switch.listening_fds(),
            *self.switch.export_openflow_sessions(),
            switch_extras(self.switch),
        )

    def _stop_tracking(self) -> None:
        for rb in self.switch.bridges.values():
            with contextlib.suppress(NotImplementedError):
                rb.datapath.take_changes()
            _bridge(rb).mac.take_journal()
            take = getattr(rb.bridge, "take_openflow_journal", None)
            if take is not None:
                take()

    def finish(self, rolled_back: bool) -> None:
        """The handoff ended (any way): stop tracking; after a freeze, thaw."""
        self.baseline = None
        self._stop_tracking()
        if rolled_back:
            thaw_switch(self.switch)


SLICE_ITEMS = 64  # items between two looks at the clock


def _slices(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), SLICE_ITEMS):
        yield items[i : i + SLICE_ITEMS]


class PrecopyJob:
    """The pre-copy, built in bounded slices so the old process keeps serving.

    ``step(deadline)`` works until the clock passes ``deadline`` (the serving loop gives
    it a few milliseconds per turn) and says whether the snapshot is complete; then
    ``parts()`` is the encoded snapshot as pieces to send in order, never joined.

    Times are ages before ``taken`` (the envelope's), whenever a slice copies them: the
    new process, on the same machine and clock, takes them from ``taken`` too (an item
    used after ``taken`` has a negative age until the delta brings it again).

    Consistency: every journal (the datapath's changed matches and hits, the MAC table's,
    the OpenFlow tables') starts before the first item is looked at, and the lists to
    walk are taken in that same instant. An item that changes afterwards, whether before
    or after its slice copied it, is in the freeze's delta; an item removed before its
    slice is skipped (and the delta removes it). The baseline the delta is computed
    against (digest, pre-image per key, rule positions) is exactly what was copied, so
    both sides' incremental digests agree. Counters: the flows' packets are credited to
    the rules in slices before the rules are copied; a rule credited after the journal
    started has its counters sent again at the freeze.
    """

    def __init__(self, exporter: SwitchExporter, now: float, delta: bool, version: int) -> None:
        self.exporter = exporter
        self.clock = exporter.switch.clock
        # Deadlines are real time, even on a stopped or warped clock (time/stop).
        clock = exporter.switch.clock
        self.slice_clock = clock.base if isinstance(clock, WarpClock) else clock
        self.taken = now
        self.delta = delta
        self.version = version
        self.counts: dict[str, int] = {}
        self._parts: list[bytes] | None = None
        self._work = self._produce()

    def step(self, deadline: float) -> bool:
        """Work until ``deadline`` (real time); True once the snapshot is built.
        Raises ``HandoffRefused`` or ``SnapshotError`` if it cannot be."""
        while self._parts is None:
            next(self._work)
            if self.slice_clock() >= deadline:
                break
        return self._parts is not None

    def parts(self) -> list[bytes]:
        assert self._parts is not None, "the pre-copy is not built yet"
        return self._parts

    def _produce(self) -> Iterator[None]:
        ex, sw, taken = self.exporter, self.exporter.switch, self.taken
        ex._check_peer_can_take()
        ex._stop_tracking()
        base = _Baseline(self.taken)
        book = base.ledger
        plans: list[tuple[str, Any, list[DpFlow], list[tuple[int, bytes]], list[Rule]]] = []
        for name, rb in sorted(sw.bridges.items()):  # one instant: journals, then lists
            bridge = rb.bridge if isinstance(rb.bridge, Bridge) else None
            if self.delta:
                rb.datapath.track_changes()
                _bridge(rb).mac.start_journal()
                if bridge is not None and ex.openflow_delta:
                    bridge.start_openflow_journal()
            rules = list(bridge.of.rules()) if bridge is not None else []
            plans.append((name, rb, list(rb.datapath.flow_dump()), _bridge(rb).mac.keys(), rules))
        yield
        bridges = []
        splice = Splicer()
        for name, rb, flows, macs, rules in plans:
            dp, mac = rb.datapath, _bridge(rb).mac
            ports = _ports(dp)
            book.set_ports(name, ports)
            bridge = rb.bridge if isinstance(rb.bridge, Bridge) else None
            if bridge is not None:
                for chunk in _slices(flows):  # counters up to now, before the rules
                    live_flows = [f for f in chunk if dp.flow_get(f.match) is f]
                    bridge.revalidator.settle_flows(live_flows, self.clock())
                    yield
            flow_recs = RecordList()
            for chunk in _slices(flows):
                recs = [_flow_record(f, taken) for f in chunk if dp.flow_get(f.match) is f]
                if self.version < 3:
                    recs = [snapshot.flow_down_3(r) for r in recs]
                flow_recs.extend(recs)
                for r in recs:
                    book.set_flow(name, r.key, r.mask, r.actions)
                yield
            mac_recs = RecordList()
            for chunk in _slices(macs):
                mrecs = []
                for vlan, addr in chunk:
                    e = mac.get(vlan, addr)
                    if e is not None:
                        mrecs.append(MacEntryV1(vlan, addr, e.port, taken - e.last_seen))
                        book.set_mac(name, vlan, addr, e.port)
                mac_recs.extend(mrecs)
                yield
            openflow: OpenFlowV2 | None = None
            if bridge is not None:
                of = bridge.of
                bridge.settle_meters()
                rule_recs, records = RecordList(), list[OfRuleV2]()
                index: dict[tuple[int, Any], int] = {}
                objs: dict[Rule, int] = {}
                for chunk in _slices(rules):
                    live = [r for r in chunk if of.tables[r.table_id].rules.get(r.ident) is r]
                    rrecs = [_rule_record(r, taken) for r in live]
                    rule_recs.extend(rrecs)
                    for r, rec in zip(live, rrecs, strict=True):
                        index[(r.table_id, r.ident)] = objs[r] = len(records)
                        records.append(rec)
                    book.add_rules(name, rrecs)
                    yield
                groups = [
                    _group_v2(g.to_json(taken)) for g in sorted(of.groups.values(), key=_group_id)
                ]
                meters = [
                    _meter_v2(m.to_json(taken)) for m in sorted(of.meters.values(), key=_meter_id)
                ]
                tables = [[t.table_id, t.lookups, t.matched] for t in of.tables if t.lookups]
                book.set_group_meters(name, groups, meters)
                if ex.openflow_delta:
                    base.of_index[name], base.of_objs[name] = index, objs
                openflow = OpenFlowV2(splice.placeholder(rule_recs), groups, meters, tables)
                self.counts["openflow_rules"] = self.counts.get("openflow_rules", 0) + len(records)
            bridges.append(
                BridgeState(
                    name,
                    DatapathV1(dp.type, {}, splice.placeholder(flow_recs), []),
                    ports,
                    _bridge(rb).ofports.export(),
                    splice.placeholder(mac_recs),
                    {},
                    openflow,
                )
            )
            for k, n in (("ports", len(ports)), ("mac_entries", mac_recs.n),
                         ("datapath_flows", flow_recs.n)):  # fmt: skip
                self.counts[k] = self.counts.get(k, 0) + n
            yield
        self.counts["bridges"] = len(bridges)
        payload = splice.encode(State(bridges))
        yield
        if self.version == 1:  # no OpenFlow in version 1: migrate the whole (small) state
            whole = msgspec.msgpack.decode(b"".join(payload), type=State)
            parts = [snapshot.encode(whole, software=__version__, taken=self.taken, version=1)]
        else:
            checksum = hashlib.sha256()
            hashed = 0
            for part in payload:
                checksum.update(part)
                hashed += len(part)
                if hashed >= CHECKSUM_SLICE:
                    hashed = 0
                    yield
            parts = snapshot.envelope_parts(
                payload,
                checksum.hexdigest(),
                software=__version__,
                taken=self.taken,
                version=self.version,
            )
        if self.delta:
            ex.baseline = base
        self._parts = parts
        yield


CHECKSUM_SLICE = 1 << 20


# -- import -----------------------------------------------------------------------


class SwitchImporter:
    """Implements ``handoff_new.Importer`` for a ``Switch`` that is not serving yet."""

    def __init__(self, switch: Switch, on_commit: Callable[[], None] | None = None) -> None:
        self.switch = switch
        self.on_commit = on_commit
        self.restored: dict[str, tuple[Bridge, Datapath]] = {}
        self.ledger = ledger.Ledger()  # what the pre-copy built (delta mode)
        self.flow_actions: dict[str, dict[tuple[bytes, bytes], list[Any]]] = {}
        # the rules built from the pre-copy, in its order (an OpenFlow delta's indices)
        self.precopy_rules: dict[str, list[Rule]] = {}
        self.listeners: dict[str, int] = {}  # handed-over listening fds, by name
        self.extras: dict[str, dict[str, Any]] = {}  # bridge -> its extras, from the freeze
        self.switch_extras: dict[str, Any] = {}
        self.session_fds: list[int] = []  # OpenFlow session descriptors, ours until commit
        self.sessions: dict[str, Any] = {}  # bridge -> ofmgmt.InheritedSessions

    def prepare(self, state: State, delta: bool = False, taken: float | None = None) -> None:
        """With ``delta``, build every bridge now (no ports yet) while the old process
        serves; otherwise only check that we can. Ages count back from ``taken`` (the
        old process's clock when it took the snapshot: the same clock on one machine),
        or from now."""
        for br in state.bridges:
            provider(br.datapath.type)  # fails early on a datapath type we do not have
        if not delta:
            return
        now = self.switch.clock() if taken is None else taken
        for br in state.bridges:
            dp = provider(br.datapath.type)(br.name)
            self._build(br, dp, now)
            if br.openflow is not None:
                self.precopy_rules[br.name] = list(self.restored[br.name][0].of.rules())
        self.ledger = ledger.Ledger.of_state(state)

    def _build(self, br: BridgeState, dp: Datapath, now: float) -> None:
        bridge = Bridge(br.name, dp)
        self.restored[br.name] = (bridge, dp)
        self._put_flows(br.name, dp, br.datapath.flows, now, bridge.revalidator.baseline)
        bridge.import_state(
            {
                "version": 1,
                "mac": [[m.vlan, format_mac(m.mac), m.port, m.age] for m in br.mac_entries],
                "ofports": {p.name: p.ofport for p in br.ports},
                "remembered": dict(br.remembered_ofports),
            },
            now,
        )
        _import_openflow(bridge, br.openflow, now)
        # The bridge has pushed its meters (full buckets): carry on the old ones' levels.
        dp.meter_adopt(dict(br.datapath.handles))

    def _put_flows(
        self,
        name: str,
        dp: Datapath,
        flows: list[FlowV1],
        now: float,
        credited: dict[Match, tuple[int, int]],
    ) -> None:
        """Install the flows with their counters; ``credited`` (the new bridge's
        revalidator baseline) learns that the old process already counted those packets
        in OpenFlow counters, so only packets from now on are credited again."""
        known = self.flow_actions.setdefault(name, {})
        for f in flows:
            match = Match(*widen(f.key, f.mask))
            if known.get((f.key, f.mask)) != f.actions:
                dp.flow_put(match, _actions(f.actions))
                known[(f.key, f.mask)] = f.actions
            got = dp.flow_get(match)
            if got is not None:
                used = now - f.used_age if f.used_age >= 0 else 0.0
                got.stats = FlowStats(f.packet_count, f.byte_count, used, f.tcp_flags)
                credited[match] = (f.packet_count, f.byte_count)

    def sync_config(self, deadline: float) -> None:
        """Make-before-break: our own OVSDB connection, fully synced, before the freeze."""
        import ovs.poller

        idl = self.switch.idl
        while not (idl.has_ever_connected() and read_config(idl) is not None):
            idl.run()
            if idl.has_ever_connected() and read_config(idl) is not None:
                break
            if self.switch.clock() > deadline:
                raise TimeoutError("could not sync the OVSDB database in time")
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(100)
            poller.block()

    def restore(
        self, state: State, fds: list[int], version: int = snapshot.CURRENT_VERSION
    ) -> tuple[str, dict[str, int]]:
        """Full mode: adopt everything from the final state. The digest and counts are
        those of the state as ``version`` (the one both sides use) describes it."""
        now = self.switch.clock()
        self.extras = {br.name: dict(br.extra) for br in state.bridges if br.extra}
        try:
            for br in state.bridges:
                dp_fds = [fds[i] for i in br.datapath.fd_slots]
                dp = provider(br.datapath.type).adopt(br.name, dict(br.datapath.handles), dp_fds)
                self._build(br, dp, now)
        finally:
            self._close_unadopted(
                fds, [br.datapath.fd_slots for br in state.bridges if br.name in self.restored]
            )
        rebuilt = State(
            [
                _bridge_state(
                    br.name,
                    self.restored[br.name][0],
                    self.restored[br.name][1],
                    now,
                    dict(br.datapath.handles),
                    list(br.datapath.fd_slots),
                )
                for br in state.bridges
            ]
        )
        as_sent = snapshot.as_version(rebuilt, version)
        return ledger.state_digest(as_sent), snapshot.summary(as_sent)

    def restore_delta(self, delta: Delta, fds: list[int]) -> tuple[str, dict[str, int]]:
        """Delta mode: adopt the ports into the bridges the pre-copy built and apply
        what changed. The digest is the pre-copy's ledger moved by the delta (the very
        code the old side ran), with every bridge's ports as its datapath adopted them."""
        now = self.switch.clock()
        self.ledger.apply_delta(delta)  # a delta that does not fit raises here, before anything live moves
        self.extras = {
            d.changed.name: dict(d.changed.extra) for d in delta.bridges if d.changed.extra
        }
        adopted: list[list[int]] = []
        try:
            final_names = {d.changed.name for d in delta.bridges}
            for name in set(self.restored) - final_names:  # destroyed meanwhile
                bridge, dp = self.restored.pop(name)
                self.flow_actions.pop(name, None)
                bridge.close()
                dp.close()
            for d in delta.bridges:
                br = d.changed
                dp_fds = [fds[i] for i in br.datapath.fd_slots]
                if d.new or br.name not in self.restored:
                    dp = provider(br.datapath.type).adopt(
                        br.name, dict(br.datapath.handles), dp_fds
                    )
                    adopted.append(br.datapath.fd_slots)
                    self._build(br, dp, now)
                    continue
                bridge, dp = self.restored[br.name]
                dp.adopt_ports(dict(br.datapath.handles), dp_fds)
                adopted.append(br.datapath.fd_slots)
                known = self.flow_actions.setdefault(br.name, {})
                for key, mask in d.removed_flows:
                    known.pop((key, mask), None)
                    dp.flow_del(Match(*widen(key, mask)))
                    bridge.revalidator.baseline.pop(Match(*widen(key, mask)), None)
                self._put_flows(br.name, dp, br.datapath.flows, now, bridge.revalidator.baseline)
                bridge.mac.forget(d.removed_macs)
                bridge.mac.apply_rows(
                    [[m.vlan, format_mac(m.mac), m.port, m.age] for m in br.mac_entries], now
                )
                bridge.ofports.import_(dict(br.remembered_ofports))
                if d.openflow_delta is not None:
                    self._apply_openflow_delta(br.name, bridge, d.openflow_delta, now)
                else:  # the whole OpenFlow state replaces the pre-copy's
                    _import_openflow(bridge, br.openflow, now)
                dp.meter_adopt(dict(br.datapath.handles))  # after the meters were pushed
        finally:
            self._close_unadopted(fds, adopted)
        for name, (_, dp) in self.restored.items():  # the ports as adopted, not as sent
            self.ledger.set_ports(name, _ports(dp))
        counts = {
            "bridges": len(self.restored),
            "ports": sum(len(dp.ports()) for _, dp in self.restored.values()),
            "mac_entries": sum(len(b.mac) for b, _ in self.restored.values()),
            "datapath_flows": sum(dp.flow_count() for _, dp in self.restored.values()),
        } | _openflow_counts(b for b, _ in self.restored.values())
        return self.ledger.hex(), counts

    def _apply_openflow_delta(
        self, name: str, bridge: Bridge, ofd: OpenFlowDeltaV2, now: float
    ) -> None:
        """Apply a bridge's OpenFlow changes since the pre-copy (the ledger checked
        that the indices fit the pre-copy's rules)."""
        rules, copied = self.precopy_rules.get(name, []), self.ledger.bridges[name].rules
        if copied is None or len(rules) != len(copied):
            raise snapshot.SnapshotError(
                f"bridge {name}: the pre-copy's {len(copied or [])} OpenFlow rules were "
                f"built as {len(rules)}: an OpenFlow delta against them cannot be applied"
            )
        bridge.apply_openflow_delta(
            [rules[i] for i in ofd.removed],
            [_rule_dict(r) for r in ofd.added],
            [(rules[c.index], c.packet_count, c.byte_count, c.idle) for c in ofd.counters],
            {
                "groups": [_group_dict(g) for g in ofd.groups],
                "meters": [_meter_dict(m) for m in ofd.meters],
                "tables": ofd.tables,
            },
            now,
        )

    @staticmethod
    def _close_unadopted(fds: list[int], adopted: list[list[int]]) -> None:
        keep = {i for slots in adopted for i in slots}
        for i, fd in enumerate(fds):
            if i not in keep and fd >= 0:  # -1: a slot that is not the datapaths' to close
                with contextlib.suppress(OSError):
                    os.close(fd)

    def commit(self) -> None:
        """We own everything now: wire the restored bridges into the switch and apply
        the configuration as the database has it (changes made during the handoff are
        applied here, exactly once)."""
        sw = self.switch
        now = sw.clock()
        used = {fd for inh in self.sessions.values() for fd in inh.fds()}
        for fd in self.session_fds:
            if fd not in used:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sw.inherited_openflow.update(self.sessions)
        self.sessions, self.session_fds = {}, []
        read = read_config(sw.idl)
        for name, (bridge, dp) in self.restored.items():
            dp.clock = sw.clock  # the switch's warpable clock (hitless.daemon.clock)
            cfg = read.config.bridges.get(name) if read is not None else None
            if cfg is None:
                # Removed during the handoff: the first reconciliation destroys it.
                sw.adopt_bridge(BridgeConfig(name, dp.type), bridge, dp, {})
            else:
                sw.adopt_bridge(cfg, bridge, dp, bridge.reconfigure(cfg, now))
        self.restored = {}
        sw.force_reconcile()
        if self.on_commit is not None:
            self.on_commit()
        # After on_commit: the modules that register extras are imported by then.
        self.adopt_extras(sw, now)

    def adopt_extras(self, sw: Switch, now: float) -> None:
        """Hand the carried extras to their adopters (bridges as ``sw`` holds them now)."""
        for name, extras in sorted(self.extras.items()):
            rb = sw.bridges.get(name)
            if rb is not None:
                _adopt_extras(_BRIDGE_EXTRAS, extras, rb.bridge, now)
        _adopt_extras(_SWITCH_EXTRAS, self.switch_extras, sw)
        self.extras, self.switch_extras = {}, {}

    def take_extras(self, extras: dict[str, Any]) -> None:
        """The old process's switch extras (``register_switch_extra``), adopted at commit."""
        self.switch_extras = dict(extras)

    def take_listeners(self, fds: dict[str, int]) -> None:
        """The old process's listening sockets (used at commit instead of new ones)."""
        self.listeners = dict(fds)

    def take_sessions(self, records: list[dict[str, Any]], fds: list[int]) -> int:
        """The old process's OpenFlow sessions and listeners, served from commit on.
        Returns how many sessions there are; ValueError if a record is unusable (the
        handoff is aborted: the old process still serves them)."""
        from hitless.daemon.ofmgmt import parse_sessions

        self.session_fds = list(fds)
        now = self.switch.clock()
        sessions = {}
        for rec in records:
            name = rec.get("bridge")
            if not isinstance(name, str) or name in sessions:
                raise ValueError(f"OpenFlow session record for bridge {name!r}")
            sessions[name] = parse_sessions(rec, self.session_fds, now)
        self.sessions = sessions
        return sum(len(s.clients) for s in sessions.values())

    def discard(self) -> None:
        for fd in [*self.listeners.values(), *self.session_fds]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.listeners, self.session_fds, self.sessions = {}, [], {}
        for bridge, dp in self.restored.values():
            with contextlib.suppress(Exception):
                bridge.close()
            dp.close()
        self.restored = {}
