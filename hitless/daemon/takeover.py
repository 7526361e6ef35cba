"""The daemon's side of the handoff: the handoff engine (``hitless.handoff.engine``)
wired to the running ``Switch``.

The engine does the pre-copy, the delta, the restore and the verification over the
switch's bridges and datapaths; this module adds what only a daemon has: the switch's
clocks, its listening sockets, its OpenFlow sessions and switch-level extras at the
freeze (``SwitchExporter``), and on the new side our own OVSDB connection synced before
the freeze, the inherited sessions and listeners, and the commit that wires the rebuilt
bridges into the switch with the configuration the database holds (``SwitchImporter``).
Configuration is never carried: the new process reads it from its own OVSDB connection.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from hitless.config.model import BridgeConfig, InterfaceStatus
from hitless.config.ovsdb import ConfigRead, read_config
from hitless.daemon import faults, gcwatch
from hitless.daemon.clock import WarpClock
from hitless.daemon.ofmgmt import parse_sessions
from hitless.datapath import Datapath
from hitless.handoff.engine import (
    ExportEngine,
    ImportEngine,
    PrecopyJob,
    adopt_switch_extras,
    switch_extras,
)
from hitless.ofproto.bridge import Bridge
from hitless.state import snapshot
from hitless.state.records import BridgeSessions, Delta, State


class Switch(Protocol):
    """What the handoff needs of the running switch (``hitless.daemon.switch.Switch``
    implements it; this module does not import that one: the switch imports us)."""

    bridges: dict[str, Any]  # name -> RunningBridge (cfg, bridge, datapath, statuses)
    clock: Any  # the switch's (warpable) clock: clock() -> seconds
    idl: Any
    inherited_openflow: dict[str, Any]

    def force_reconcile(self) -> None: ...
    def apply_switch_settings(self, other_config: Mapping[str, str]) -> None: ...
    def listening_fds(self) -> dict[str, int]: ...
    def export_openflow_sessions(self) -> tuple[list[BridgeSessions], list[int]]: ...
    def adopt_bridge(
        self,
        cfg: BridgeConfig,
        bridge: Any,
        datapath: Datapath,
        statuses: dict[str, InterfaceStatus],
    ) -> None: ...


def _clock(switch: Switch) -> Callable[[], float]:
    """The switch's (warpable) clock, whatever clock it holds when asked."""
    return lambda: switch.clock()


def _real_time(switch: Switch) -> Callable[[], float]:
    """Real time, even while the switch's clock is stopped or warped (time/stop)."""

    def now() -> float:
        clock = switch.clock
        return float(clock.base() if isinstance(clock, WarpClock) else clock())

    return now


def export_switch(switch: Switch, now: float, *, final: bool) -> tuple[State, list[int]]:
    """The switch's whole learned state (``ExportEngine.export``)."""
    return ExportEngine(lambda: switch.bridges, _clock(switch)).export(now, final=final)


@dataclass(slots=True)
class Frozen:
    state: State | Delta
    fds: list[int]
    digest: str
    counts: dict[str, int]
    listeners: dict[str, int] = field(default_factory=dict)  # name -> live listening fd
    # OpenFlow sessions and listeners (Switch.export_openflow_sessions): records whose
    # descriptor fields index ``session_fds`` (live, still ours)
    sessions: list[BridgeSessions] = field(default_factory=list)
    session_fds: list[int] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # switch extras (register_switch_extra)


class SwitchExporter:
    """The old side's view of the switch (``handoff_old.HandoffServer`` calls it): the
    engine's pre-copy and freeze, plus the daemon's descriptors and sessions."""

    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.engine = ExportEngine(
            lambda: switch.bridges,
            _clock(switch),
            _real_time(switch),
            (gcwatch.before_copy, gcwatch.after_copy),
        )

    def use_features(self, features: list[str]) -> None:
        """The protocol features both sides speak (``HandoffServer`` tells us)."""
        self.engine.use_features(features)

    def precopy_job(self, now: float, delta: bool, version: int) -> PrecopyJob:
        return self.engine.precopy_job(now, delta, version)

    def early_rings(self) -> list[tuple[int, int]]:
        """(descriptor, size) of every datapath's receive-ring sockets, still ours: sent
        with the Welcome (feature "early-rings") for the new side to map ahead."""
        out: list[tuple[int, int]] = []
        for _, rb in sorted(self.switch.bridges.items()):
            rings = getattr(rb.datapath, "ring_sockets", None)
            if rings is not None:
                out.extend(rings())
        return out

    def precopy(self, now: float, delta: bool) -> State:
        return self.engine.precopy(now, delta)

    def counts(self) -> dict[str, int]:
        return self.engine.counts()

    def freeze(self, now: float, delta: bool) -> Frozen:
        f = self.engine.freeze(delta)
        return Frozen(
            f.state,
            f.fds,
            f.digest,
            f.counts,
            self.switch.listening_fds(),
            *self.switch.export_openflow_sessions(),
            switch_extras(self.switch),
        )

    def finish(self, rolled_back: bool) -> None:
        self.engine.finish(rolled_back)


class SwitchImporter:
    """Implements ``handoff_new.Importer`` for a ``Switch`` that is not serving yet."""

    def __init__(self, switch: Switch, on_commit: Callable[[], None] | None = None) -> None:
        self.switch = switch
        self.on_commit = on_commit
        self.engine = ImportEngine(_clock(switch), Bridge)
        self.listeners: dict[str, int] = {}  # handed-over listening fds, by name
        self.switch_extras: dict[str, Any] = {}
        self.session_fds: list[int] = []  # OpenFlow session descriptors, ours until commit
        self.sessions: dict[str, Any] = {}  # bridge -> ofmgmt.InheritedSessions
        # (the IDL's change_seqno, the configuration read at it) by sync_config
        self._config: tuple[int, ConfigRead | None] = (-1, None)

    def prepare(self, state: State, delta: bool = False, taken: float | None = None) -> None:
        self.engine.prepare(state, delta, taken)

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
        # What the commit will read, read now (1-2 ms at the freeze otherwise): valid as
        # long as the IDL has not moved since (nothing runs it until the commit).
        self._config = (idl.change_seqno, read_config(idl))

    def restore(
        self,
        state: State,
        fds: list[int],
        version: int = snapshot.CURRENT_VERSION,
        check: bool = True,
    ) -> tuple[str, dict[str, int]]:
        return self.engine.restore(state, fds, version, check)

    def restore_delta(self, delta: Delta, fds: list[int]) -> tuple[str, dict[str, int]]:
        return self.engine.restore_delta(delta, fds)

    def commit(self) -> dict[str, float]:
        """We own everything now: wire the restored bridges into the switch and apply
        the configuration as the database has it (changes made during the handoff are
        applied here, exactly once). Returns the seconds each part took (phases
        ``commit_bridges``: the bridges configured, ``commit_reconcile``: the switch
        reconciled with the database, ``commit_adopt``: meters, extras, the handed-over
        megaflows revalidated): nothing forwards until it returns."""
        faults.cold_commit(self)  # fault tests only (HITLESS_FAULT)
        marks = [time.perf_counter()]
        sw = self.switch
        now = sw.clock()
        used = {fd for inh in self.sessions.values() for fd in inh.fds()}
        for fd in self.session_fds:
            if fd not in used:
                with contextlib.suppress(OSError):
                    os.close(fd)
        sw.inherited_openflow.update(self.sessions)
        self.sessions, self.session_fds = {}, []
        seqno, read = self._config
        if seqno != sw.idl.change_seqno or read is None:
            read = read_config(sw.idl)
        for name, (rebuilt, rebuilt_dp) in self.engine.take_restored().items():
            # What ImportEngine(..., Bridge) built over the providers' datapaths.
            bridge, dp = cast(Bridge, rebuilt), cast(Datapath, rebuilt_dp)
            dp.clock = sw.clock  # the switch's warpable clock (hitless.daemon.clock)
            cfg = read.config.bridges.get(name) if read is not None else None
            if cfg is None:
                # Removed during the handoff: the first reconciliation destroys it.
                sw.adopt_bridge(BridgeConfig(name, dp.type), bridge, dp, {})
            else:
                sw.adopt_bridge(cfg, bridge, dp, bridge.reconfigure(cfg, now))
        marks.append(time.perf_counter())
        if read is not None:
            sw.apply_switch_settings(read.config.other_config)
        sw.force_reconcile()
        if self.on_commit is not None:
            self.on_commit()
        marks.append(time.perf_counter())
        # After on_commit: the modules that register extras are imported by then. After
        # the configuration: the meters it makes (policers) take their buckets too.
        self.engine.commit(sw.bridges, now)
        adopt_switch_extras(sw, self.switch_extras)
        self.switch_extras = {}
        marks.append(time.perf_counter())
        names = ("commit_bridges", "commit_reconcile", "commit_adopt")
        return {n: marks[i + 1] - marks[i] for i, n in enumerate(names)}

    def take_extras(self, extras: dict[str, Any]) -> None:
        """The old process's switch extras (``register_switch_extra``), adopted at commit."""
        self.switch_extras = dict(extras)

    def take_listeners(self, fds: dict[str, int]) -> None:
        """The old process's listening sockets (used at commit instead of new ones)."""
        self.listeners = dict(fds)

    def take_sessions(self, records: list[BridgeSessions], fds: list[int]) -> int:
        """The old process's OpenFlow sessions and listeners, served from commit on.
        Returns how many sessions there are; ValueError if a record is unusable (the
        handoff is aborted: the old process still serves them)."""
        self.session_fds = list(fds)
        now = self.switch.clock()
        sessions = {}
        for rec in records:
            if rec.bridge in sessions:
                raise ValueError(f"two OpenFlow session records for bridge {rec.bridge!r}")
            sessions[rec.bridge] = parse_sessions(rec, self.session_fds, now)
        self.sessions = sessions
        return sum(len(s.clients) for s in sessions.values())

    def discard(self) -> None:
        for fd in [*self.listeners.values(), *self.session_fds]:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.listeners, self.session_fds, self.sessions = {}, [], {}
        self.engine.discard()
