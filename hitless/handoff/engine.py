"""The handoff engine: the pre-copy, the delta, the restore and the verification of a
switch's learned state, over the bridges and datapaths it holds, with no socket, no
OVSDB, no lease and no ``Switch`` (the daemon keeps those: ``hitless.daemon.takeover``
wires this engine to the running switch and ``handoff_old``/``handoff_new`` to the
socket). Two engines and in-memory bridges run a whole handoff in one test process.

Old side (``ExportEngine``): ``precopy_job`` builds the pre-copy in bounded slices
(``PrecopyJob``) while the switch serves, starting every journal (the datapath's changed
matches and hits, the MAC table's, the OpenFlow tables') before the first slice; the
``freeze`` computes what changed since (a ``records.Delta``) plus the datapaths' handles
and descriptors; without a pre-copy taken for a delta (a peer that takes none) it is the
same code against an empty pre-copy (every bridge new), sent as the whole ``State``.

New side (``ImportEngine``): ``prepare`` builds every bridge from the pre-copy while the
old process still serves; ``restore_delta`` adopts the datapaths' descriptors into them
and applies the delta. A full-state freeze goes through the same code as a delta whose
bridges are all new against an empty pre-copy (``restore``); ``commit`` finishes once
the daemon configured the rebuilt bridges (meter buckets, extras, a sweep of the
handed-over flows).

Verification: both sides keep a ``hitless.state.ledger.Ledger`` and apply the same delta
to it; the new side counts its ports as its datapaths adopted them, and both count what
they hold live. A full-state handoff (older peers) is checked by ``ledger.state_digest``.

Extras: small learned state of other layers (bonds, the fail-open clock...) registers an
exporter and an adopter by name (``register_bridge_extra``, ``register_switch_extra``)
and travels at the freeze, outside the digest and the state version.

Time: ``clock`` is the switch's (warpable) clock for state ages; ``slice_clock`` the
real time the pre-copy's slices are bounded by. Neither is read here but through them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import msgspec

from hitless import __version__
from hitless.datapath import DpFlow, FlowStats, provider
from hitless.datapath.actions import (
    Action,
    CheckPktLen,
    Clone,
    PopMpls,
    PushMpls,
    Sample,
    SetField,
    SetPriority,
    actions_from_records,
    actions_to_records,
)
from hitless.handoff.seams import BridgeFactory, HandoffBridge, HandoffDatapath, Running
from hitless.memo import Memo
from hitless.ofproto.ipfix import IPFIX_USERDATA
from hitless.ofproto.oftable import Rule, rules_use_action, rules_use_field_of
from hitless.openflow import nx_actions as nx
from hitless.openflow.nxm import ERICOXM, NSH_VENDOR
from hitless.packet.flow import Match, compact, widen
from hitless.state import handles as dp_handles
from hitless.state import ledger, snapshot
from hitless.state.handles import MeterLevelV1
from hitless.state.parts import RecordList, Splicer
from hitless.state.records import (
    ActionV7,
    BridgeDelta,
    BridgeState,
    BridgeV2,
    BridgeV6,
    ConntrackDeltaV5,
    ConntrackV5,
    CtConnV5,
    DatapathV1,
    DatapathV7,
    Delta,
    FlowV7,
    MacEntryV1,
    OfRule,
    OfRuleCountersV2,
    OpenFlow,
    OpenFlowDelta,
    OpenFlowV2,
    PortV1,
    State,
    StateV5,
    StateV6,
)

__all__ = [
    "ExportEngine",
    "HandoffRefused",
    "ImportEngine",
    "PrecopyJob",
    "Running",
    "StepProfile",
    "adopt_switch_extras",
    "register_bridge_extra",
    "register_switch_extra",
    "switch_extras",
]


class HandoffRefused(Exception):
    """The switch holds state the peer cannot take over; the message says what."""


Clock = Callable[[], float]

log = logging.getLogger(__name__)

# Few distinct action lists exist (NORMAL: one per output set), so their records are
# cached both ways; a handoff of 50k flows then costs dict lookups, not conversions.
_to_records: Memo[tuple[Action, ...], tuple[ActionV7, ...]] = Memo()
_from_records: Memo[tuple[ActionV7, ...], tuple[Action, ...]] = Memo()


def _action_records(actions: tuple[Action, ...]) -> tuple[ActionV7, ...]:
    return _to_records.get(actions, lambda: actions_to_records(actions))


def _actions(records: tuple[ActionV7, ...]) -> tuple[Action, ...]:
    return _from_records.get(records, lambda: actions_from_records(records))


# -- export -----------------------------------------------------------------------

CT_VERSION = 5  # the first state version with the connection table as typed records
BRIDGES_V6 = 6  # the first with its own bridge records (rule modified times, selection)
DATAPATH_V7 = 7  # the first with typed megaflow actions and datapath handles


def _ct_record(c: Any, now: float) -> CtConnV5:
    """A tracked connection (``hitless.datapath.conntrack.Conn``) as its record."""
    o, r = c.orig, c.reply
    return CtConnV5(
        c.zone,
        (o.src, o.dst, o.proto, o.sport, o.dport),
        (r.src, r.dst, r.proto, r.sport, r.dport),
        c.expiration - now,
        c.nat,
        c.mark,
        c.label.to_bytes(16, "big"),
        c.seen_reply,
        c.state,
        [(p.state, p.end, p.maxend, p.maxwin, p.wscale, p.seen) for p in c.peers]
        if c.peers is not None
        else [],
        c.liberal,
    )


def _ct_records(dp: HandoffDatapath, now: float) -> list[CtConnV5]:
    """Every live connection of a datapath's table."""
    return [_ct_record(c, now) for c in dp.conntrack if c.expiration > now]


def _ct_delta(name: str, dp: HandoffDatapath, copied: bool, now: float) -> ConntrackDeltaV5:
    """A bridge's connections at the freeze: those touched since the pre-copy copied
    its table (``copied``: the tracker journaled them), else all of them."""
    ct = dp.conntrack
    if not copied:
        return ConntrackDeltaV5(name, _ct_records(dp, now))
    changed, removed = [], []
    for zone, orig in ct.take_changes():
        c = ct.get(zone, orig)
        if c is not None and c.expiration > now:
            changed.append(_ct_record(c, now))
        else:
            removed.append((zone, (orig.src, orig.dst, orig.proto, orig.sport, orig.dport)))
    return ConntrackDeltaV5(name, changed, removed)


def _ct_apply(dp: HandoffDatapath, d: ConntrackDeltaV5, now: float) -> None:
    """Remove and add connections as a delta (or a whole table: all ``changed``) says."""
    from hitless.datapath.conntrack import ConnRecord, CtTuple

    ct = dp.conntrack
    for zone, orig in d.removed:
        ct.remove_record(zone, CtTuple(*orig))
    ct.import_records(
        (
            ConnRecord(c.zone, c.orig, c.reply, c.timeout, c.nat, c.mark,
                       int.from_bytes(c.label, "big"), c.seen_reply, c.state,
                       tuple(c.tcp), c.liberal)  # fmt: skip
            for c in d.changed
        ),
        now,
    )



def _flow_record(f: Any, now: float) -> FlowV7:
    s = f.stats
    key, mask = compact(f.match.key, f.match.mask)  # 102 bytes unless it matches ct fields
    return FlowV7(
        key,
        mask,
        _action_records(f.actions),
        s.packets,
        s.bytes,
        now - s.used if s.used else -1.0,
        s.tcp_flags,
    )


def _ports(dp: HandoffDatapath) -> list[PortV1]:
    return [
        PortV1(p.name, p.port_no, p.type)
        for p in sorted(dp.ports().values(), key=lambda p: p.port_no)
    ]


def _openflow_state(bridge: HandoffBridge, now: float) -> OpenFlow:
    """The bridge's OpenFlow rules, groups and meters."""
    return bridge.export_openflow(now)


def _import_openflow(bridge: HandoffBridge, of: OpenFlow | None, now: float) -> None:
    """Give a new bridge the OpenFlow state (None: it keeps its default table)."""
    if of is not None:
        bridge.import_openflow(of, now)


def _openflow_delta(
    name: str, bridge: HandoffBridge, base: _Baseline, moved: list[Any], now: float
) -> OpenFlowDelta | None:
    """The bridge's OpenFlow changes since the pre-copy; None when only a whole copy
    will do (the tables were replaced wholesale)."""
    bridge.revalidator.settle_flows(moved, now)  # counters up to the freeze
    bridge.settle_meters()
    journal, credited, overflow = bridge.take_openflow_journal()
    if overflow:
        return None
    index, placed = base.of_index[name], base.of_rules[name]
    of = bridge.of
    removed: list[int] = []
    added: list[OfRule] = []
    for key in journal:
        i = index.get(key)
        if i is not None:
            removed.append(i)
        r = of.tables[key[0]].rules.get(key[1])
        if r is not None:
            added.append(r.to_record(now))
    counters = []
    for obj in credited:
        if type(obj) is not Rule:
            continue  # table, group, bucket and meter counters travel whole
        key = (obj.table_id, obj.ident)
        i = index.get(key)
        if i is None or placed[i] is not obj or key in journal:
            continue  # not the pre-copy's rule (replaced, or gone before its slice)
        rule = obj
        counters.append(OfRuleCountersV2(i, now - rule.last_used, rule.packets, rule.bytes))
    return OpenFlowDelta(
        sorted(removed),
        added,
        counters,
        of.group_records(now),
        of.meter_records(now),
        of.table_counters(),
    )


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


def adopt_switch_extras(switch: Any, extras: dict[str, Any]) -> None:
    """Hand the old process's switch extras to their adopters (the new one, at commit)."""
    _adopt_extras(_SWITCH_EXTRAS, extras, switch)


def _bridge_state(
    name: str,
    bridge: Any,
    dp: HandoffDatapath,
    now: float,
    handles: dp_handles.Handles | None,
    slots: list[int],
    extra: dict[str, Any] | None = None,
) -> BridgeState:
    flows = [_flow_record(f, now) for f in dp.flow_dump()]
    return BridgeState(
        name,
        DatapathV7(dp.type, handles, flows, slots),
        _ports(dp),
        bridge.ofports.export(),
        bridge.mac.records(now),
        extra or {},
        _openflow_state(bridge, now),
    )


def _final_handles(dp: HandoffDatapath, fds: list[int]) -> tuple[dp_handles.Handles, list[int]]:
    """The datapath's handles record, and the slots of its descriptors (appended to
    ``fds``)."""
    rec, dp_fds = dp.export_handles()
    slots = list(range(len(fds), len(fds) + len(dp_fds)))
    fds.extend(dp_fds)
    return rec, slots


def _openflow_counts(bridges: Iterable[HandoffBridge]) -> dict[str, int]:
    """{"openflow_rules": N} over the bridges, if any (as ``summary``)."""
    tables = [b.of for b in bridges]
    return {"openflow_rules": sum(of.n_rules for of in tables)} if tables else {}


def _handles(br: BridgeState) -> dp_handles.Handles:
    """A bridge's datapath handles (the record of its datapath type); a state without
    them (a pre-copy's) has the empty map's, which only the dummy datapath accepts."""
    got = br.datapath.handles
    if got is None:
        return dp_handles.from_wire(br.datapath.type, {})
    if got.datapath_type != br.datapath.type:
        raise snapshot.SnapshotError(
            f"bridge {br.name}: {got.datapath_type} datapath handles for a "
            f"{br.datapath.type} datapath"
        )
    return got


def _bridge(rb: Running) -> HandoffBridge:
    return rb.bridge


@dataclass(slots=True)
class _Baseline:
    """What the pre-copy said: the ledger of what was copied (digest and pre-image of
    every item, per bridge) and, with "openflow-delta", where each live rule is in the
    copied list (by identity in its table, and by object), to compute a delta."""

    taken: float
    ledger: ledger.Ledger = field(default_factory=ledger.Ledger)
    of_index: dict[str, dict[tuple[int, Any], int]] = field(default_factory=dict)
    of_rules: dict[str, list[Rule]] = field(default_factory=dict)  # the rules by place
    ct_bridges: set[str] = field(default_factory=set)  # connection tables copied, journaled


@dataclass(slots=True)
class FrozenState:
    """What the old side's freeze hands over of the bridges (the daemon adds its
    listeners, OpenFlow sessions and switch extras)."""

    state: State | Delta
    fds: list[int]  # live, still ours
    digest: str
    counts: dict[str, int]


class ExportEngine:
    """The old side: the learned state of the bridges ``bridges()`` returns (the live
    mapping, looked at anew each time), as a pre-copy and then a freeze."""

    def __init__(
        self,
        bridges: Callable[[], Mapping[str, Running]],
        clock: Clock,
        slice_clock: Clock | None = None,
        around_copy: tuple[Callable[[], None], Callable[[], None]] | None = None,
    ) -> None:
        self.bridges = bridges
        self.clock = clock  # state ages
        self.slice_clock = slice_clock or clock  # the pre-copy's slices: real time
        # Called just before and just after a handoff's pre-copy copies its lists (the
        # daemon's young-collection policy, ``hitless.daemon.gcwatch.before_copy`` and
        # ``after_copy``); not for a pre-copy without a delta (the standby's mirror).
        self.around_copy = around_copy
        self.baseline: _Baseline | None = None
        self.openflow_delta = False  # the peer takes OpenFlow changes as a delta
        self.patch_ports = True  # the peer adopts patch ports (told otherwise at Hello)
        self.version = snapshot.CURRENT_VERSION  # negotiated (``precopy_job`` is told)
        self.actions_unread: frozenset[str] = frozenset()  # megaflow actions the peer cannot read
        self.nd_ext = True  # the peer knows nd_reserved/nd_options_type (told otherwise at Hello)
        self.nsh = True  # the peer knows the NSH fields (told otherwise at Hello)

    def use_features(self, features: list[str]) -> None:
        """The protocol features both sides speak (``HandoffServer`` tells us)."""
        self.openflow_delta = "openflow-delta" in features
        self.patch_ports = "patch-ports" in features
        self.actions_unread = frozenset(n for n in _GATED_HINT if f"action:{n}" not in features)
        self.nd_ext = "field:nd_ext" in features
        self.nsh = "field:nsh" in features

    def _check_peer_can_take(self, version: int) -> None:
        """Refuse, before anything is frozen, state the new build cannot adopt."""
        if version < BRIDGES_V6:
            self._check_groups(version)
        # Megaflow actions and rules on nd_ext or NSH fields: checked slice by slice as
        # the pre-copy copies them (``_check_flows``, ``_check_rules``; all at once, a
        # walk of 100,001 rules held the serving loop 45 ms); group buckets here (few).
        if not self.nd_ext:
            for name, rb in sorted(self.bridges().items()):
                if rb.bridge is not None and rb.bridge.of.groups_use_field_of(ERICOXM):
                    raise HandoffRefused(_nd_ext_refusal(name))
        if not self.nsh:
            for name, rb in sorted(self.bridges().items()):
                of = rb.bridge.of if rb.bridge is not None else None
                if of is not None and (
                    of.groups_use_field_of(0xFFFF, NSH_VENDOR)
                    or of.groups_use_action(nx.NxDecNshTtl)
                ):
                    raise HandoffRefused(_nsh_refusal(name))
        if self.patch_ports:
            return
        for name, rb in sorted(self.bridges().items()):
            patches = sorted(p.name for p in rb.datapath.ports().values() if p.type == "patch")
            if patches:
                raise HandoffRefused(
                    f"bridge {name} has patch ports ({', '.join(patches)}) and the new build "
                    "cannot take them over (it predates patch ports): remove them first "
                    "(ovs-vsctl del-port), or hand over to a newer build"
                )

    def _check_rules(self, name: str, rules: list[Rule]) -> None:
        """Rules on nd_reserved/nd_options_type, or on the NSH fields or with dec_nsh_ttl,
        cannot go to a build without them."""
        if not self.nd_ext and rules_use_field_of(rules, ERICOXM):
            raise HandoffRefused(_nd_ext_refusal(name))
        if not self.nsh and (
            rules_use_field_of(rules, 0xFFFF, NSH_VENDOR)
            or rules_use_action(rules, nx.NxDecNshTtl)
        ):
            raise HandoffRefused(_nsh_refusal(name))

    def _check_groups(self, version: int) -> None:
        """A group's selection method cannot go to a build of an older state version."""
        for name, rb in sorted(self.bridges().items()):
            bridge = rb.bridge
            if bridge is None:
                continue
            for g in sorted(bridge.of.groups.values(), key=lambda g: g.group_id):
                sel = g.selection
                if sel is not None and snapshot.selection_lost(sel.method, bool(sel.fields)):
                    raise HandoffRefused(
                        snapshot.selection_refusal(name, g.group_id, sel.method, version)
                    )

    def _check_flows(self, name: str, flows: list[DpFlow]) -> None:
        """Megaflow actions the new build cannot read (``actions_unread``) are refused."""
        unread = self.actions_unread
        if not unread:
            return
        for f in flows:
            for a in _nested(f.actions):
                what = _gated(a)
                if what in unread:
                    raise HandoffRefused(
                        f"bridge {name} has datapath flows with the {what} action, which "
                        f"the new build cannot read (it predates it): "
                        f"{_GATED_HINT[what].format(bridge=name)}, or hand over to a "
                        "newer build"
                    )

    def precopy_job(self, now: float, delta: bool, version: int) -> PrecopyJob:
        """The pre-copy, to build in slices between datapath polls (``PrecopyJob``); with
        ``delta``, changes are tracked from now on and the finished job leaves the
        baseline the freeze's delta is computed against."""
        now = self.clock()  # state ages on the switch's (warpable) clock, not the lease's
        if delta:  # a handoff's (the standby's mirror takes none): its freeze follows
            self.version = version
        return PrecopyJob(self, now, delta, version)

    def precopy(self, now: float, delta: bool) -> State:
        """The whole pre-copy at once (tests and tools): the job run to its end."""
        job = self.precopy_job(now, delta, snapshot.CURRENT_VERSION)
        while not job.step(float("inf")):
            pass
        return snapshot.decode(b"".join(job.parts()))[1]

    def counts(self) -> dict[str, int]:
        bridges = self.bridges().values()
        return {
            "bridges": len(bridges),
            "ports": sum(len(rb.datapath.ports()) for rb in bridges),
            "mac_entries": sum(len(_bridge(rb).mac) for rb in bridges),
            "datapath_flows": sum(rb.datapath.flow_count() for rb in bridges),
        } | _openflow_counts(rb.bridge for rb in bridges)

    def freeze(self, delta: bool) -> FrozenState:
        """Stop at a message boundary: what changed since the pre-copy (with ``delta``
        and a pre-copy taken with it) or the whole state, the datapaths' handles and
        live descriptors (still ours until the new side commits), and what the new side
        must acknowledge (digest and counts)."""
        now = self.clock()  # as precopy_job
        # Without a pre-copy taken for a delta, the baseline is an empty pre-copy: every
        # bridge comes whole, through the same code as one created after a pre-copy.
        base = self.baseline if delta and self.baseline is not None else _Baseline(now)
        whole_state = base is not self.baseline
        self.baseline = None
        images = base.ledger.bridges
        fds: list[int] = []
        out = []
        typed_ct = self.version >= CT_VERSION  # else the table goes in the handles, whole
        ct_out: list[ConntrackDeltaV5] = []
        for name, rb in sorted(self.bridges().items()):
            dp, mac = rb.datapath, _bridge(rb).mac
            dp.conntrack_in_handles = not typed_ct
            if typed_ct:
                ct_out.append(_ct_delta(name, dp, name in base.ct_bridges, now))
            if name not in images:  # not in the pre-copy (or none): send it whole
                handles, slots = _final_handles(dp, fds)
                whole = _bridge_state(
                    name, rb.bridge, dp, now, handles, slots, _bridge_extras(rb.bridge, now)
                )
                out.append(BridgeDelta(whole, new=True))
                continue
            moved = dp.take_hits(base.taken)
            of_delta: OpenFlowDelta | None = None
            if name in base.of_index:  # before take_changes: adopting may change flows
                of_delta = _openflow_delta(name, _bridge(rb), base, moved, now)
            changed_flows = dp.take_changes()
            changed_macs = mac.take_journal()
            handles, slots = _final_handles(dp, fds)
            flows: list[FlowV7] = []
            removed_flows: list[tuple[bytes, bytes]] = []
            # A flow gone by now that the pre-copy did not copy (made and removed since:
            # at a pre-copy of many seconds, most of the removals) is not the new side's
            # to remove. The pre-copy's keys are these only in typed (version 7) records.
            copied_flows = images[name].flows if self.version >= DATAPATH_V7 else None
            for m in changed_flows:
                f = dp.flow_get(m)
                if f is None:
                    sent = compact(m.key, m.mask)
                    if copied_flows is None or sent in copied_flows:
                        removed_flows.append(sent)
                else:
                    flows.append(_flow_record(f, now))
            for f in moved:  # counters that moved since the pre-copy
                if f.match not in changed_flows:
                    flows.append(_flow_record(f, now))
            macs: list[MacEntryV1] = []
            removed_macs: list[tuple[int, bytes]] = []
            copied_macs = images[name].macs
            for key in changed_macs:
                rec = mac.record(key, now)
                if rec is None:
                    if key in copied_macs:
                        removed_macs.append(key)
                else:
                    macs.append(rec)
            openflow = None
            if of_delta is None:  # the whole OpenFlow state replaces the pre-copy's
                openflow = _openflow_state(rb.bridge, now)
            out.append(
                BridgeDelta(
                    BridgeState(
                        name,
                        DatapathV7(dp.type, handles, flows, slots),
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
        changes = Delta(out, [], [d for d in ct_out if d.changed or d.removed])
        if whole_state:  # a peer that takes the whole state: the same bridges, as a State
            self._stop_tracking()
            state = State(
                [d.changed for d in changes.bridges],
                [],
                [ConntrackV5(d.bridge, d.changed) for d in changes.conntrack],
            )
            return FrozenState(state, fds, ledger.state_digest(state), snapshot.summary(state))
        # What the new side computes from the same delta, as it will read it: towards a
        # build of an older version, its records (``SnapshotError``: it cannot take them).
        seen = changes
        if 3 <= self.version < DATAPATH_V7:
            down: list[Any] = [snapshot.bridge_delta_as(d, self.version) for d in out]
            seen = Delta(down, [], changes.conntrack)
        base.ledger.apply_delta(seen)
        return FrozenState(changes, fds, base.ledger.hex(), self.counts())

    def export(self, now: float, *, final: bool) -> tuple[State, list[int]]:
        """The whole learned state. With ``final`` (the freeze), also the datapaths'
        handles and live descriptors (still owned by this process) and the extras."""
        bridges = []
        fds: list[int] = []
        for name, rb in sorted(self.bridges().items()):
            handles: dp_handles.Handles | None = None
            slots: list[int] = []
            extra: dict[str, Any] = {}
            if final:
                handles, slots = _final_handles(rb.datapath, fds)
                extra = _bridge_extras(rb.bridge, now)
            bridges.append(
                _bridge_state(name, rb.bridge, rb.datapath, now, handles, slots, extra)
            )
        return State(bridges), fds

    def _stop_tracking(self) -> None:
        for rb in self.bridges().values():
            with contextlib.suppress(NotImplementedError):
                rb.datapath.take_changes()
            rb.datapath.conntrack.take_changes()
            _bridge(rb).mac.take_journal()
            rb.bridge.take_openflow_journal()

    def finish(self, rolled_back: bool) -> None:
        """The handoff ended (any way): stop tracking; after a freeze, thaw."""
        self.baseline = None
        self._stop_tracking()
        for rb in self.bridges().values():
            rb.datapath.conntrack_in_handles = True
        if rolled_back:  # undo what the final export did to the datapaths
            for rb in self.bridges().values():
                rb.datapath.thaw()


SLICE_ITEMS = 32  # items between two looks at the clock (~1 ms of rules at most)


def _nd_ext_refusal(bridge: str) -> str:
    return (
        f"bridge {bridge} has OpenFlow rules on nd_reserved or nd_options_type, which the "
        "new build cannot restore (it predates them): delete those rules first "
        f"(ovs-ofctl del-flows {bridge} ...), or hand over to a newer build"
    )


def _nsh_refusal(bridge: str) -> str:
    return (
        f"bridge {bridge} has OpenFlow rules on NSH fields (nsh_*) or with dec_nsh_ttl, which "
        "the new build cannot restore (it predates them): delete those rules first "
        f"(ovs-ofctl del-flows {bridge} ...), or hand over to a newer build"
    )


def _slices(items: list[Any]) -> Iterable[list[Any]]:
    for i in range(0, len(items), SLICE_ITEMS):
        yield items[i : i + SLICE_ITEMS]


def _gated(a: Action) -> str | None:
    """The handoff feature name ("action:NAME") a peer needs to read ``a``, if any: an
    IPFIX sample needs more than an sFlow one (its upcalls mean something else)."""
    if isinstance(a, Sample) and a.userdata[:4] == IPFIX_USERDATA:
        return "ipfix-sample"
    if isinstance(a, SetField) and a.field.startswith("mpls_"):
        return "mpls"
    return _GATED_ACTIONS.get(type(a))


def _nested(actions: tuple[Action, ...]) -> Iterator[Action]:
    """Every action of a list, those inside a check_pkt_len's branches or a clone
    included."""
    for a in actions:
        yield a
        if isinstance(a, CheckPktLen):
            yield from _nested(a.gt)
            yield from _nested(a.le)
        elif isinstance(a, Clone):
            yield from _nested(a.actions)


# Megaflow actions a build may not read (handoff feature "action:NAME"), and what the
# operator clears so that no flow holds them.
_GATED_ACTIONS: dict[type, str] = {
    Sample: "sample",
    SetPriority: "set_priority",
    CheckPktLen: "check_pkt_len",
    Clone: "clone",
    PushMpls: "mpls",
    PopMpls: "mpls",
}
_GATED_HINT = {
    "sample": "turn sFlow off first (ovs-vsctl clear Bridge {bridge} sflow)",
    "ipfix-sample": "turn IPFIX off first (ovs-vsctl clear Bridge {bridge} ipfix)",
    "set_priority": "remove the set_queue/enqueue actions from the bridge's OpenFlow rules "
    "first",
    "check_pkt_len": "remove the check_pkt_larger actions from the bridge's OpenFlow rules "
    "first",
    "clone": "remove the ct actions inside clone() from the bridge's OpenFlow rules first",
    "mpls": "remove the MPLS actions (push_mpls, pop_mpls, set_mpls_*, dec_mpls_ttl) from the "
    "bridge's OpenFlow rules first",
}


# A table of the job that grows by more than this in one step is named in its profile
# (a dict of 100,000 entries doubling copies every entry in that step).
RESIZE_NOTED = 1 << 18  # bytes


@dataclass(slots=True)
class StepProfile:
    """What one ``PrecopyJob.step`` did (the pre-copy's per-turn profile): items per
    part in the order it worked on them (``"rules br0"``: rules copied; ``"instant"``:
    the journals started and the lists taken; ``"encode"``, ``"checksum"``,
    ``"envelope"``: the finishing parts), how many slices, and the job's own tables
    that grew in it by at least ``RESIZE_NOTED`` bytes (name, bytes before, after)."""

    items: dict[str, int] = field(default_factory=dict)
    slices: int = 0
    resized: list[tuple[str, int, int]] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{k} {n}" for k, n in self.items.items()]
        text = f"{self.slices} slices: " + (", ".join(parts) or "nothing")
        if self.resized:
            text += "; grew " + ", ".join(
                f"{name} {a / 1e6:.1f}->{b / 1e6:.1f} MB" for name, a, b in self.resized
            )
        return text


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

    def __init__(self, exporter: ExportEngine, now: float, delta: bool, version: int) -> None:
        self.exporter = exporter
        self.clock = exporter.clock
        # Deadlines are real time, even on a stopped or warped clock (time/stop).
        self.slice_clock = exporter.slice_clock
        self.taken = now
        self.delta = delta
        self.version = version
        self.counts: dict[str, int] = {}
        self._parts: list[bytes] | None = None
        self._work = self._produce()
        self.last_step = StepProfile()  # what the last ``step`` did
        # the job's own growing tables, by name (their resizes are in the profile)
        self._tables: dict[str, Any] = {}

    def step(self, deadline: float) -> bool:
        """Work until ``deadline`` (real time); True once the snapshot is built.
        Raises ``HandoffRefused`` or ``SnapshotError`` if it cannot be. ``last_step``
        then says what this step did."""
        self.last_step = prof = StepProfile()
        sizes = {name: sys.getsizeof(t) for name, t in self._tables.items()}
        while self._parts is None:
            next(self._work)
            prof.slices += 1
            if self.slice_clock() >= deadline:
                break
        for name, t in self._tables.items():
            was, now = sizes.get(name, 0), sys.getsizeof(t)
            if now - was >= RESIZE_NOTED:
                prof.resized.append((name, was, now))
        return self._parts is not None

    def _did(self, part: str, n: int) -> None:
        """``n`` items of ``part`` done in this slice (the step's profile)."""
        items = self.last_step.items
        items[part] = items.get(part, 0) + n

    def parts(self) -> list[bytes]:
        assert self._parts is not None, "the pre-copy is not built yet"
        return self._parts

    def _produce(self) -> Iterator[None]:
        ex, taken = self.exporter, self.taken
        ex._check_peer_can_take(self.version)
        # versions 2-5: the bridges are version 2's records (1: migrated from the current)
        older = 2 <= self.version < BRIDGES_V6
        typed_dp = self.version >= DATAPATH_V7  # else version 1's flows and handles
        ex._stop_tracking()
        around = ex.around_copy if self.delta else None
        if around is not None:
            around[0]()
        self._did("checks", 1)
        yield  # the checks and the instant below in two turns: nothing is tracked between
        base = _Baseline(self.taken)
        book = base.ledger
        plans: list[tuple[str, Any, list[DpFlow], list[tuple[int, bytes]], list[Rule]]] = []
        # Connection tables (state version 5, with a delta): copied here, then the
        # connections touched since come at the freeze (the tracker's journal).
        typed_ct = self.delta and self.version >= CT_VERSION
        ct_plans: dict[str, list[Any]] = {}
        for name, rb in sorted(ex.bridges().items()):  # one instant: journals, then lists
            bridge = rb.bridge
            if typed_ct:
                rb.datapath.conntrack.track_changes()
                ct_plans[name] = list(rb.datapath.conntrack)
            if self.delta:
                rb.datapath.track_changes()
                _bridge(rb).mac.start_journal()
                if bridge is not None and ex.openflow_delta:
                    bridge.start_openflow_journal()
            # Table by table as ``of.rules()`` yields them, without a generator per rule:
            # the copy is the whole of this turn's work (0.5 ms at 100,001 rules, not 3).
            rules = (
                list(chain.from_iterable([t.rules.values() for t in bridge.of.tables]))
                if bridge is not None
                else []
            )
            plans.append((name, rb, list(rb.datapath.flow_dump()), _bridge(rb).mac.keys(), rules))
            self._did("instant", len(rules) + len(plans[-1][2]) + len(plans[-1][3]))
        if around is not None:
            around[1]()
        yield
        bridges: list[Any] = []
        ct_tables: list[ConntrackV5] = []
        splice = Splicer()
        for name, rb, flows, macs, rules in plans:
            if name in ct_plans:
                ct, ct_recs = rb.datapath.conntrack, RecordList()
                for chunk in _slices(ct_plans[name]):
                    ct_recs.extend([_ct_record(c, taken) for c in chunk
                                    if ct.get(c.zone, c.orig) is c and c.expiration > taken])  # fmt: skip
                    self._did(f"conntrack {name}", len(chunk))
                    yield
                ct_tables.append(ConntrackV5(name, splice.placeholder(ct_recs)))
                base.ct_bridges.add(name)
                self.counts["conntrack"] = self.counts.get("conntrack", 0) + ct_recs.n
            dp, mac = rb.datapath, _bridge(rb).mac
            ports = _ports(dp)
            book.set_ports(name, ports)
            bridge = rb.bridge
            if bridge is not None:
                for chunk in _slices(flows):  # counters up to now, before the rules
                    live_flows = [f for f in chunk if dp.flow_get(f.match) is f]
                    bridge.revalidator.settle_flows(live_flows, self.clock())
                    self._did(f"counters {name}", len(chunk))
                    yield
            flow_recs = RecordList()
            self._tables[f"ledger flows {name}"] = book.bridges[name].flows
            self._tables[f"ledger macs {name}"] = book.bridges[name].macs
            for chunk in _slices(flows):
                live_flows = [f for f in chunk if dp.flow_get(f.match) is f]
                ex._check_flows(name, live_flows)
                recs: list[Any] = [_flow_record(f, taken) for f in live_flows]
                sent = recs
                if not typed_dp:
                    sent = [snapshot.flow_down_7(r) for r in recs]
                    if self.version < 3:
                        sent = [snapshot.flow_down_3(r) for r in sent]
                    if self.version > 1:  # version 1: the whole state migrates at the end
                        recs = sent
                flow_recs.extend(recs)
                for r in sent:
                    book.set_flow(name, r.key, r.mask, r.actions)
                self._did(f"flows {name}", len(chunk))
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
                self._did(f"macs {name}", len(chunk))
                yield
            openflow: Any = None
            if bridge is not None:
                of = bridge.of
                bridge.settle_meters()
                rule_recs = RecordList()
                book.add_rules(name, [])  # counted rule by rule, even with none at all
                index: dict[tuple[int, Any], int] = {}
                # The rule objects by place: a list, not a second dict growing beside
                # ``index`` (two dicts of 100,000 entries resizing in the same slice took
                # 6-7 ms of CPU in one turn).
                placed: list[Rule] = []
                self._tables[f"rule index {name}"] = index
                self._tables[f"rules placed {name}"] = placed
                self._tables[f"ledger rules {name}"] = book.bridges[name].rules
                for chunk in _slices(rules):
                    live = [r for r in chunk if of.tables[r.table_id].rules.get(r.ident) is r]
                    ex._check_rules(name, live)
                    rrecs: list[Any] = [r.to_record(taken) for r in live]
                    if older:
                        rrecs = [snapshot.rule_down(r) for r in rrecs]
                    rule_recs.extend(rrecs)
                    for r in live:
                        index[(r.table_id, r.ident)] = len(placed)
                        placed.append(r)
                    book.add_rules(name, rrecs)
                    self._did(f"rules {name}", len(chunk))
                    yield
                groups: list[Any] = of.group_records(taken)
                if older:
                    groups = [snapshot.group_down(name, g) for g in groups]
                meters = of.meter_records(taken)
                tables = of.table_counters()
                book.set_group_meters(name, groups, meters)
                if ex.openflow_delta:
                    base.of_index[name], base.of_rules[name] = index, placed
                of_kind = OpenFlowV2 if older else OpenFlow
                openflow = of_kind(splice.placeholder(rule_recs), groups, meters, tables)
                self.counts["openflow_rules"] = self.counts.get("openflow_rules", 0) + len(placed)
            flows_out = splice.placeholder(flow_recs)
            datapath: Any = (
                DatapathV7(dp.type, None, flows_out, [])
                if typed_dp or self.version == 1
                else DatapathV1(dp.type, {}, flows_out, [])
            )
            bridge_kind: Any = BridgeState if typed_dp or self.version == 1 else BridgeV6
            bridges.append(
                (BridgeV2 if older else bridge_kind)(
                    name,
                    datapath,
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
            self._did(f"groups, meters {name}", 1)
            yield
        self.counts["bridges"] = len(bridges)
        # Versions 2 and 3 have the same bridges in a state without sessions (the
        # pre-copy never has any: they travel at the freeze).
        if self.version >= CT_VERSION:
            state_kind = {DATAPATH_V7: State, BRIDGES_V6: StateV6}.get(self.version, StateV5)
            payload = splice.encode(state_kind(bridges, [], ct_tables))
        else:
            kind = snapshot.STATE_TYPES[self.version] if self.version >= 2 else State
            payload = splice.encode(kind(bridges))
        self._did("encode", len(payload))
        self._tables.clear()  # done growing
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
                self._did("checksum", len(part))
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
        self._did("envelope", len(parts))
        self._parts = parts
        yield


CHECKSUM_SLICE = 1 << 20


class ImportEngine:
    """The new side: bridges and datapaths rebuilt from a pre-copy and adopted at the
    freeze, in ``restored`` (name -> (bridge, datapath)) until the daemon takes them
    (``take_restored``) or drops them (``discard``). ``clock`` dates what it rebuilds;
    ``make_bridge`` makes a (not yet configured) bridge over a rebuilt datapath."""

    def __init__(self, clock: Clock, make_bridge: BridgeFactory) -> None:
        self.clock = clock
        self.make_bridge = make_bridge
        self.restored: dict[str, tuple[HandoffBridge, HandoffDatapath]] = {}
        self.ledger = ledger.Ledger()  # what the pre-copy built (delta mode)
        # bridge -> (key, mask) as sent -> the actions put and the flow they made: a
        # flow the freeze brings again with the same actions (its counters moved) has
        # its counters set in place, not put again
        self.flow_actions: dict[str, dict[tuple[bytes, bytes], tuple[tuple[ActionV7, ...], Any]]] = {}
        # the rules built from the pre-copy, in its order (an OpenFlow delta's indices)
        self.precopy_rules: dict[str, list[Rule]] = {}
        self.extras: dict[str, dict[str, Any]] = {}  # bridge -> its extras, from the freeze
        # bridge -> the old datapath's meter buckets, adopted at commit (``commit``)
        self.meter_levels: dict[str, list[MeterLevelV1]] = {}

    def prepare(self, state: State, delta: bool = False, taken: float | None = None) -> None:
        """With ``delta``, build every bridge now (no ports yet) while the old process
        serves; otherwise only check that we can. Ages count back from ``taken`` (the
        old process's clock when it took the snapshot: the same clock on one machine),
        or from now."""
        for br in state.bridges:
            provider(br.datapath.type)  # fails early on a datapath type we do not have
        if not delta:
            return
        now = self.clock() if taken is None else taken
        for br in state.bridges:
            dp = provider(br.datapath.type)(br.name)
            dp.clock = self.clock  # as the daemon's: flows it puts are dated on it
            self._build(br, dp, now)
            if br.openflow is not None:
                self.precopy_rules[br.name] = list(self.restored[br.name][0].of.rules())
        for t in state.conntrack:  # timeouts count from ``taken`` too
            _ct_apply(self.restored[t.bridge][1], ConntrackDeltaV5(t.bridge, t.conns), now)
        self.ledger = ledger.Ledger.of_state(state)

    def _build(self, br: BridgeState, dp: HandoffDatapath, now: float) -> None:
        bridge = self.make_bridge(br.name, dp)
        self.restored[br.name] = (bridge, dp)
        self._put_flows(br.name, dp, br.datapath.flows, now, bridge.revalidator.baseline)
        ofports = {**br.remembered_ofports, **{p.name: p.ofport for p in br.ports}}
        bridge.adopt_learned(br.mac_entries, ofports, now)
        _import_openflow(bridge, br.openflow, now)

    def _put_flows(
        self,
        name: str,
        dp: HandoffDatapath,
        flows: list[FlowV7],
        now: float,
        credited: dict[Match, tuple[int, int]],
    ) -> None:
        """Install the flows with their counters; ``credited`` (the new bridge's
        revalidator baseline) learns that the old process already counted those packets
        in OpenFlow counters, so only packets from now on are credited again."""
        known = self.flow_actions.setdefault(name, {})
        get = dp.flow_get
        for f in flows:
            sent = (f.key, f.mask)
            put = known.get(sent)
            got = put[1] if put is not None and put[0] == f.actions else None
            if got is None or get(got.match) is not got:
                match = Match(*widen(f.key, f.mask))
                dp.flow_put(match, _actions(f.actions))
                got = get(match)
                known[sent] = (f.actions, got)
            if got is not None:
                used = now - f.used_age if f.used_age >= 0 else 0.0
                got.stats = FlowStats(f.packet_count, f.byte_count, used, f.tcp_flags)
                credited[got.match] = (f.packet_count, f.byte_count)

    def restore(
        self,
        state: State,
        fds: list[int],
        version: int = snapshot.CURRENT_VERSION,
        check: bool = True,
    ) -> tuple[str, dict[str, int]]:
        """Full mode: the final state is a delta whose bridges are all new, against an
        empty pre-copy (the one restore path, ``_apply``). The digest and counts are
        those of the state as ``version`` (the one both sides use) describes it; without
        ``check`` (nobody to compare with: a crash standby's takeover) no digest (""),
        and the counts of what was built: exporting the rebuilt state again for the
        digest took a third of a 100,000-rule takeover."""
        now = self.clock()
        whole = Delta(
            [BridgeDelta(br, new=True) for br in state.bridges],
            [],
            [ConntrackDeltaV5(t.bridge, t.conns) for t in state.conntrack],
        )
        self._apply(whole, fds, now)
        if not check:
            return "", self.counts()
        rebuilt = State(
            [
                _bridge_state(
                    br.name,
                    self.restored[br.name][0],
                    self.restored[br.name][1],
                    now,
                    br.datapath.handles,
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
        self.ledger.apply_delta(delta)  # a delta that does not fit raises before any change
        self._apply(delta, fds, self.clock())
        for name, (_, dp) in self.restored.items():  # the ports as adopted, not as sent
            self.ledger.set_ports(name, _ports(dp))
        return self.ledger.hex(), self.counts()

    def counts(self) -> dict[str, int]:
        """What the rebuilt bridges hold, live."""
        return {
            "bridges": len(self.restored),
            "ports": sum(len(dp.ports()) for _, dp in self.restored.values()),
            "mac_entries": sum(len(b.mac) for b, _ in self.restored.values()),
            "datapath_flows": sum(dp.flow_count() for _, dp in self.restored.values()),
        } | _openflow_counts(b for b, _ in self.restored.values())

    def _apply(self, delta: Delta, fds: list[int], now: float) -> None:
        """Adopt the datapaths' descriptors and apply the delta: bridges the pre-copy
        did not build come whole (all of them in full mode), the others change by it;
        bridges the delta does not name were destroyed meanwhile."""
        self.extras = {
            d.changed.name: dict(d.changed.extra) for d in delta.bridges if d.changed.extra
        }
        adopted: list[list[int]] = []
        tables = {t.bridge: t for t in delta.conntrack}
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
                handles = _handles(br)
                self.meter_levels[br.name] = list(handles.meters)
                if d.new or br.name not in self.restored:
                    dp = provider(br.datapath.type).adopt(br.name, handles, dp_fds)
                    dp.clock = self.clock
                    adopted.append(br.datapath.fd_slots)
                    self._build(br, dp, now)
                    if br.name in tables:
                        _ct_apply(dp, tables[br.name], now)
                    continue
                bridge, dp = self.restored[br.name]
                dp.adopt_ports(handles, dp_fds)
                adopted.append(br.datapath.fd_slots)
                if br.name in tables:
                    _ct_apply(dp, tables[br.name], now)
                known = self.flow_actions.setdefault(br.name, {})
                for key, mask in d.removed_flows:
                    known.pop((key, mask), None)
                    dp.flow_del(Match(*widen(key, mask)))
                    bridge.revalidator.baseline.pop(Match(*widen(key, mask)), None)
                self._put_flows(br.name, dp, br.datapath.flows, now, bridge.revalidator.baseline)
                bridge.mac.forget(d.removed_macs)
                bridge.mac.apply_records(br.mac_entries, now)
                bridge.ofports.import_(dict(br.remembered_ofports))
                if d.openflow_delta is not None:
                    self._apply_openflow_delta(br.name, bridge, d.openflow_delta, now)
                else:  # the whole OpenFlow state replaces the pre-copy's
                    _import_openflow(bridge, br.openflow, now)
        finally:
            self._close_unadopted(fds, adopted)

    def _apply_openflow_delta(
        self, name: str, bridge: HandoffBridge, ofd: OpenFlowDelta, now: float
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
            ofd,
            [(rules[c.index], c.packet_count, c.byte_count, c.idle) for c in ofd.counters],
            now,
        )

    @staticmethod
    def _close_unadopted(fds: list[int], adopted: list[list[int]]) -> None:
        keep = {i for slots in adopted for i in slots}
        for i, fd in enumerate(fds):
            if i not in keep and fd >= 0:  # -1: a slot that is not the datapaths' to close
                with contextlib.suppress(OSError):
                    os.close(fd)

    def commit(self, bridges: Mapping[str, Running], now: float) -> None:
        """The rebuilt bridges are the daemon's and configured (``bridges``: as it holds
        them now): carry on the old datapaths' meter buckets into the meters pushed by
        now (OpenFlow's and the configuration's: policers), hand over the extras, and
        make the handed-over datapath flows follow this process's state (configuration,
        spanning tree...) before the first packet goes through them."""
        for name, levels in sorted(self.meter_levels.items()):
            rb = bridges.get(name)
            if rb is not None:
                rb.datapath.meter_adopt(levels)
        adopted = set(self.meter_levels)
        self.meter_levels = {}
        self.adopt_extras(bridges, now)
        for name in sorted(adopted):
            rb = bridges.get(name)
            if rb is not None:
                _bridge(rb).revalidate_adopted(now)

    def adopt_extras(self, bridges: Mapping[str, Running], now: float) -> None:
        """Hand each bridge's carried extras to their adopters (the bridges as the
        daemon holds them now, configured, at commit)."""
        for name, extras in sorted(self.extras.items()):
            rb = bridges.get(name)
            if rb is not None:
                _adopt_extras(_BRIDGE_EXTRAS, extras, rb.bridge, now)
        self.extras = {}

    def take_restored(self) -> dict[str, tuple[HandoffBridge, HandoffDatapath]]:
        """What was rebuilt, now the caller's (the daemon wires it into its switch)."""
        restored, self.restored = self.restored, {}
        return restored

    def discard(self) -> None:
        """Drop whatever was rebuilt (a rollback: the old process serves on)."""
        for bridge, dp in self.restored.values():
            with contextlib.suppress(Exception):
                bridge.close()
            dp.close()
        self.restored = {}
        self.meter_levels = {}

