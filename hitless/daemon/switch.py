"""The running switch: one object that holds all of the daemon's state (bridges and their
datapaths, the IDL, the unixctl server, counters), so that a handoff can export it
and a new process can take it over.

Each loop iteration does the datapath work first (so control-plane work never starves
forwarding for long), then the control plane: the IDL, reconciliation when the database
changed, status write-back, management commands.

Reconciliation is level-triggered: whenever the IDL's ``change_seqno`` moves, the whole
``SwitchConfig`` is recomputed and diffed against the running bridges (``plan``).
A bridge whose configuration changed is reconfigured in place ("warm"); creating,
destroying or changing the datapath type of a bridge is "cold". Both are logged and
counted.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from hitless.config.model import (
    DEFAULT_FLOW_LIMIT,
    DEFAULT_MAX_IDLE_MS,
    MIN_MAX_IDLE_MS,
    BridgeConfig,
    ControllerStatus,
    InterfaceConfig,
    InterfaceStatus,
    SwitchConfig,
)
from hitless.config.ovsdb import (
    DEFAULT_SCHEMA,
    SUPPORTED_INTERFACE_TYPES,
    ConfigRead,
    failed_statuses,
    ofport_hints,
    open_vswitch_row,
    read_config,
    schema_helper,
    write_links,
    write_status,
)
from hitless.config.unsupported import Unsupported, notes_by_row, unsupported
from hitless.daemon import gcwatch, sysstats, unixctl
from hitless.daemon.clock import WarpClock
from hitless.daemon.coverage import Coverage
from hitless.daemon.devstatus import device_info, set_mtu
from hitless.daemon.handoff_old import DEFAULT_LEASE, HANDED_OVER, HandoffServer, handoff_path
from hitless.daemon.linkwatch import LinkWatch
from hitless.daemon.qos import TcQos
from hitless.daemon.qos import plan as tc_plan
from hitless.daemon.rundir import RunDir
from hitless.daemon.sflow import SflowExporter
from hitless.daemon.takeover import SwitchExporter
from hitless.daemon.unixctl import CommandError
from hitless.datapath import Datapath, DatapathError, open_datapath
from hitless.datapath.afpacket import IFF_UP, if_flags
from hitless.datapath.registry import PROVIDERS
from hitless.state.records import BridgeSessions

log = logging.getLogger(__name__)

# A serving-loop turn longer than this is logged with its sections (``_note_turn``): the
# datapaths and bridges (forwarding, revalidation), OpenFlow connections, the database
# (reconfiguration and status), ovs-appctl commands, and the handoff.
SLOW_TURN = 0.05
TURN_SECTIONS = ("datapath", "openflow", "ovsdb", "unixctl", "handoff")

STATUS_REFRESH_INTERVAL = 5.0  # seconds between link_state refreshes
# fail_mode standalone fails open when no primary controller was reachable for this
# long: 3 x the default inactivity probe (5 s), Open vSwitch's figure.
FAIL_OPEN_AFTER = 15.0
DEVICE_DATAPATHS = ("netdev", "ebpf")  # their interfaces are kernel network devices
IDLE_TIMER_MS = 1000  # the loop always has a timer (ovs.poller can block otherwise)


class BridgeLike(Protocol):
    """What the daemon needs from ``hitless.ofproto.bridge.Bridge``."""

    def reconfigure(self, cfg: BridgeConfig, now: float) -> dict[str, InterfaceStatus]: ...
    def run(self, now: float) -> None: ...
    def next_wakeup(self, now: float) -> float | None: ...
    def fdb_show(self) -> str: ...
    def bond_status(self) -> dict[str, str | None]: ...
    def stp_status(self, now: float) -> dict[tuple[str, str], dict[str, str]]: ...
    def stp_statistics(self) -> dict[str, dict[str, int]]: ...
    def set_fail_open(self, on: bool, now: float) -> None: ...

    link_seq: int  # moves whenever a link state changes
    flow_limit: int  # datapath flows it installs at most (Open_vSwitch other_config:flow-limit)
    max_idle: float  # seconds an idle datapath flow stays (Open_vSwitch other_config:max-idle)

    def fdb_flush(self) -> int: ...
    def dump_flows(self) -> str: ...
    def close(self) -> None: ...


BridgeFactory = Callable[[str, Datapath], BridgeLike]
DatapathOpener = Callable[[str, str], Datapath]


def default_bridge_factory(name: str, datapath: Datapath) -> BridgeLike:
    from hitless.ofproto.bridge import Bridge  # type: ignore[attr-defined]

    return Bridge(name, datapath)  # type: ignore[no-any-return]


# Pure planning -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do to go from the running bridges to a new configuration."""

    create: tuple[str, ...] = ()  # cold: new bridges
    destroy: tuple[str, ...] = ()  # cold: removed bridges
    recreate: tuple[str, ...] = ()  # cold: datapath type changed
    reconfigure: tuple[str, ...] = ()  # warm: same datapath, other settings changed

    @property
    def empty(self) -> bool:
        return not (self.create or self.destroy or self.recreate or self.reconfigure)


def plan(running: Mapping[str, BridgeConfig], new: SwitchConfig) -> Plan:
    """Diff the running bridges' configurations against the desired configuration."""
    create, recreate, reconfigure = [], [], []
    for name, cfg in sorted(new.bridges.items()):
        old = running.get(name)
        if old is None:
            create.append(name)
        elif old.datapath_type != cfg.datapath_type:
            recreate.append(name)
        elif old != cfg:
            reconfigure.append(name)
    destroy = sorted(set(running) - set(new.bridges))
    return Plan(tuple(create), tuple(destroy), tuple(recreate), tuple(reconfigure))


def with_ofport_hints(cfg: BridgeConfig, hints: Mapping[str, int]) -> BridgeConfig:
    """``cfg`` with interfaces that request no OpenFlow port number asking for the one
    they had before (``hints``), unless another interface of the bridge claims it."""
    claimed = {
        i.ofport_request
        for p in cfg.ports.values()
        for i in p.interfaces
        if i.ofport_request is not None
    }
    ports = {}
    for pname, port in cfg.ports.items():
        ifaces = []
        for iface in port.interfaces:
            hint = hints.get(iface.name)
            if iface.ofport_request is None and hint is not None and hint not in claimed:
                claimed.add(hint)
                iface = replace(iface, ofport_request=hint)
            ifaces.append(iface)
        ports[pname] = replace(port, interfaces=tuple(ifaces))
    return replace(cfg, ports=ports)


def _datapath_id(rb: RunningBridge) -> int:
    """other_config:datapath-id (16 hex digits), else the bridge port's MAC address."""
    dpid = rb.cfg.other_config.get("datapath-id", "")
    with contextlib.suppress(ValueError):
        if len(dpid) == 16:
            return int(dpid, 16)
    for p in rb.datapath.ports().values():
        if p.name == rb.cfg.name and any(p.mac):
            return int.from_bytes(p.mac, "big")
    return int.from_bytes(rb.cfg.name.encode()[:6].ljust(6, b"\0"), "big")


def bridge_interfaces(cfg: BridgeConfig) -> list[str]:
    return [i.name for i in _interfaces(cfg)]


def _interfaces(cfg: BridgeConfig) -> list[InterfaceConfig]:
    return [i for p in cfg.ports.values() for i in p.interfaces]


# The running switch -------------------------------------------------------------------


@dataclass(slots=True)
class RunningBridge:
    cfg: BridgeConfig
    bridge: BridgeLike
    datapath: Datapath
    statuses: dict[str, InterfaceStatus] = field(default_factory=dict)
    link_seq: int = -1  # the bridge's link_seq when ``statuses`` were read


@dataclass(slots=True)
class FailedBridge:
    """A configured bridge that could not be created (e.g. unknown datapath type)."""

    cfg: BridgeConfig
    error: str


@dataclass(slots=True)
class Counters:
    warm: int = 0
    cold: int = 0
    reconciliations: int = 0
    txn_failures: int = 0


class Switch:
    def __init__(
        self,
        rundir: RunDir,
        *,
        schema: str = DEFAULT_SCHEMA,
        bridge_factory: BridgeFactory = default_bridge_factory,
        datapath_opener: DatapathOpener = open_datapath,
        clock: Callable[[], float] = time.monotonic,
        status_interval: float = STATUS_REFRESH_INTERVAL,
    ) -> None:
        import ovs.db.idl

        self.rundir = rundir
        self.bridge_factory = bridge_factory
        self.datapath_opener = datapath_opener
        # Warpable (time/stop, time/warp): the bridges, datapaths and OpenFlow timers run
        # on it; the handoff lease runs on the real clock (``clock.base``).
        self.clock = WarpClock(clock)
        self.status_interval = status_interval
        self.bridges: dict[str, RunningBridge] = {}
        self.failed: dict[str, FailedBridge] = {}
        self.config: SwitchConfig | None = None
        self.rejected: dict[str, str] = {}
        self.counters: Counters = Counters()
        self.coverage = Coverage()  # coverage/show
        self.exiting = False
        self.idl = ovs.db.idl.Idl(rundir.db_remote, schema_helper(schema))
        self.unixctl_server: unixctl.Server | None = None
        self.handoff: HandoffServer | None = None
        # the crash standby's link (hitless.daemon.standby.StandbyLink), run every turn
        self.standby: Any = None
        self.handed_over = False  # a new process owns everything: exit without touching it
        self.takeover_report: dict[str, Any] | None = None  # how this process took over
        self._seqno = -1
        self._turn_marks: list[float] = [0.0]  # perf_counter at each of TURN_SECTIONS' ends
        self._warnings: tuple[str, ...] = ()
        self._iface_errors: dict[str, str] = {}
        self._txns: list[Any] = []
        self._next_refresh = 0.0
        self._status_dirty = False
        self._wake_r = -1
        self._wake_w = -1
        self.ofmgrs: dict[str, Any] = {}  # bridge name -> OpenFlow management listener
        # bridge name -> ofmgmt.InheritedSessions: a predecessor's OpenFlow sessions and
        # listeners, served by the bridge's OfManager once it exists
        self.inherited_openflow: dict[str, Any] = {}
        self._controllers: dict[str, ControllerStatus] = {}  # as last written back
        self._bond_active: dict[str, str | None] = {}  # Port.bond_active_slave, as written
        self.unreachable_since: dict[str, float] = {}  # bridge -> no primary connected
        self._links_dirty = False  # a link changed: its columns go out first, alone
        self._mtu_errors: dict[str, str] = {}  # interface -> why its mtu_request failed
        self.tcqos = TcQos()  # linux-htb/hfsc trees on port devices (Port.qos)
        self.sflow = SflowExporter()  # Bridge.sflow: the agents and their collectors
        self._sys_stats: dict[str, str] = {}  # Open_vSwitch.statistics, as last computed
        self._sys_stats_at = float("-inf")
        self._qos_errors: dict[str, str] = {}  # Port name -> why tc could not shape it
        self.linkwatch: LinkWatch | None = None
        try:
            self.linkwatch = LinkWatch()
        except OSError as e:  # no netlink here: the datapath's own refresh still works
            log.warning("no link notifications (%s); link states are polled", e)
        self.unsupported: tuple[Unsupported, ...] = ()  # settings refused out loud
        self._warned: set[Unsupported] = set()

    # Lifecycle ----------------------------------------------------------------------
    def start_unixctl(self, inherited_fd: int | None = None) -> None:
        """Serve management commands on DIR/hitless-vswitchd.ctl. With ``inherited_fd``
        (a handoff), keep serving the predecessor's listening socket itself: clients
        that connected while it was frozen are answered by us."""
        path = str(self.rundir.ctl)
        if inherited_fd is not None:
            self.unixctl_server = unixctl.Server.inherit(inherited_fd, path, self)
        else:
            self.unixctl_server = unixctl.Server.listen(path, self)

    def listening_fds(self) -> dict[str, int]:
        """The listening sockets a successor takes over (live fds, still ours)."""
        out = {}
        if self.unixctl_server is not None:
            out["unixctl"] = self.unixctl_server.fileno()
        return out

    def export_openflow_sessions(self) -> tuple[list[BridgeSessions], list[int]]:
        """Every bridge's OpenFlow listeners and sessions for a successor; the records'
        descriptor fields index the returned (live, still ours) descriptors."""
        fds: list[int] = []
        records = [mgr.export_sessions(name, fds) for name, mgr in sorted(self.ofmgrs.items())]
        return records, fds

    def adopt_bridge(
        self,
        cfg: BridgeConfig,
        bridge: BridgeLike,
        datapath: Datapath,
        statuses: dict[str, InterfaceStatus],
    ) -> None:
        """A bridge a handoff brought (``takeover.SwitchImporter.commit``) joins the switch
        with the statuses it has just read (no link change in them to write again)."""
        self.bridges[cfg.name] = RunningBridge(cfg, bridge, datapath, statuses, bridge.link_seq)

    def apply_switch_settings(self, other_config: Mapping[str, str]) -> None:
        """The Open_vSwitch row's per-bridge settings (flow-limit, max-idle) onto every
        bridge: at each reconfiguration, and at a handoff's commit before the handed-over
        megaflows are swept (with the user's max-idle, not the default)."""
        limit, idle = flow_limit(other_config), max_idle(other_config)
        for rb in self.bridges.values():
            rb.bridge.flow_limit = limit
            rb.bridge.max_idle = idle

    def start_handoff_listener(
        self, lease: float = DEFAULT_LEASE, inherited_fd: int | None = None
    ) -> None:
        """Accept handoffs to a new process on DIR/hitless-vswitchd.handoff (or on the
        predecessor's listening socket, inherited by a handoff)."""
        self.handoff = HandoffServer(
            handoff_path(self.rundir.path),
            SwitchExporter(self),
            lease=lease,
            clock=self.clock.base,
            inherited_fd=inherited_fd,
        )

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT ask the loop to exit cleanly; a pipe wakes the poller."""
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

        def on_signal(signum: int, _frame: Any) -> None:
            self.exiting = True

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def close(self) -> None:
        if self.standby is not None:  # bye first: the standby must not take over
            self.standby.close()
            self.standby = None
        if self.handed_over:
            # Everything (datapath sockets, control socket path, pidfile) belongs to
            # the new process now: leave it all alone.
            return
        if self.handoff is not None:
            self.handoff.close()
            self.handoff = None
            with contextlib.suppress(OSError):
                os.unlink(handoff_path(self.rundir.path))
        for name in list(self.bridges):
            self._destroy(name, "switch is shutting down")
        for mgr in self.ofmgrs.values():
            mgr.close()
        self.ofmgrs.clear()
        for inh in self.inherited_openflow.values():
            inh.close()
        self.inherited_openflow.clear()
        if self.unixctl_server is not None:
            self.unixctl_server.close()
            self.unixctl_server = None
            try:
                os.unlink(self.rundir.ctl)
            except OSError:
                pass
        self.idl.close()
        self.sflow.close()
        if self.linkwatch is not None:
            self.linkwatch.close()
            self.linkwatch = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

    # The loop -----------------------------------------------------------------------
    def serve_forever(self) -> None:
        import ovs.poller

        while not self.exiting:
            t = self.clock()
            cpu = time.process_time()
            self.run()
            cpu = time.process_time() - cpu
            collecting = gcwatch.take_turn()  # young collections' time in the turn
            if self.handoff is not None:
                self.handoff.note_loop(self.clock() - t, cpu, self._turn_sections, collecting)
            self._note_turn(cpu)
            if self.exiting:
                break
            poller = ovs.poller.Poller()
            self.wait(poller)
            poller.block()

    def _note_turn(self, cpu: float) -> None:
        """Log a serving-loop turn longer than ``SLOW_TURN`` with where it went (its
        sections, and the CPU this process used: much less than the turn means the
        machine did not run us, not that we were busy)."""
        marks = self._turn_marks
        took = marks[-1] - marks[0]
        if took < SLOW_TURN:
            return
        log.info(
            "slow loop turn: %.0f ms (%.0f ms of CPU): %s ms",
            took * 1000,
            cpu * 1000,
            self._turn_sections(),
        )

    def _turn_sections(self) -> str:
        """Where the last turn went: "datapath 1, openflow 0, ..." (ms of wall time)."""
        marks = self._turn_marks
        return ", ".join(
            f"{name} {(marks[i + 1] - marks[i]) * 1000:.0f}"
            for i, name in enumerate(TURN_SECTIONS)
            if i + 1 < len(marks)
        )

    def run(self) -> None:
        """One iteration: forwarding first, then the control plane."""
        marks = self._turn_marks
        marks.clear()
        marks.append(time.perf_counter())
        self._run()
        marks.append(time.perf_counter())

    def _run(self) -> None:
        self.clock.step()  # a stepped time/warp advances one step per iteration
        now = self.clock()
        self.coverage.sample(self, self.clock.base())  # at most every 5 s
        self.forward(now)
        for name, rb in self.bridges.items():
            if rb.cfg.netflow is not None:
                self.sflow.run_netflow(name, rb.bridge, rb.cfg, now)
            if rb.cfg.ipfix is not None:
                self.sflow.run_ipfix(name, rb.bridge, rb.cfg, rb.statuses, now)
        if self.sflow.exports:
            for name, rb in self.bridges.items():
                if rb.cfg.sflow is not None:
                    self.sflow.run(name, rb.bridge, rb.cfg, rb.statuses, partial(_datapath_id, rb), now)
        self._turn_marks.append(time.perf_counter())
        if self.bond_status() != self._bond_active:
            self._status_dirty = True  # a bond failed over: write it back at once
        if any(rb.bridge.link_seq != rb.link_seq for rb in self.bridges.values()):
            # A link went up or down: its columns are written at once, then the rest.
            self._links_dirty = self._status_dirty = True
        self._run_openflow(now)
        self._drain_wakeup()
        self._turn_marks.append(time.perf_counter())

        self.idl.run()
        self._progress_txns()
        if self._links_dirty:
            self._write_links(self.clock())
        if self.idl.change_seqno != self._seqno:
            self._seqno = self.idl.change_seqno
            self.reconcile(self.clock())
        elif self._status_dirty or self.clock() >= self._next_refresh:
            self.refresh_status(self.clock())
        self._turn_marks.append(time.perf_counter())

        if self.unixctl_server is not None:
            self.unixctl_server.run()
        self._turn_marks.append(time.perf_counter())
        if self.standby is not None:
            self.standby.run()
        if self.handoff is not None and self.handoff.run() == HANDED_OVER:
            self.handed_over = True
            self.exiting = True

    def forward(self, now: float) -> None:
        """The serving loop's first section: what waits in the datapaths is forwarded
        (and their misses handled). Also called once by a new process right after it
        took the switch over, before it reports anything: the frames queued in the
        rings during the freeze go out first."""
        waiting = self.flow_restore_wait
        if self.linkwatch is not None and self.linkwatch.drain():
            for rb in self.bridges.values():
                rb.datapath.refresh_links()  # a link changed: bonds and status see it now
        for rb in list(self.bridges.values()):
            rb.datapath.run()
            if waiting:
                # As Open vSwitch's flow-restore-wait: no packets from the datapath are
                # handled (misses are dropped) and nothing expires until it clears.
                while rb.datapath.recv_upcalls(256):
                    pass
            else:
                rb.bridge.run(now)

    def wait(self, poller: Any) -> None:
        now = self.clock()
        timeout = self._next_refresh - now
        for rb in self.bridges.values():
            rb.datapath.wait(poller)
            wake = rb.bridge.next_wakeup(now)
            if wake is not None:
                timeout = min(timeout, wake - now)
        wake = self.sflow.next_wakeup()
        if wake is not None:
            timeout = min(timeout, wake - now)
        poller.timer_wait(max(0, min(int(timeout * 1000) + 1, IDLE_TIMER_MS)))
        self.idl.wait(poller)
        for txn in self._txns:
            txn.wait(poller)
        if self.unixctl_server is not None:
            self.unixctl_server.wait(poller)
        for mgr in self.ofmgrs.values():
            t = mgr.wait(poller, now)
            if t is not None:
                poller.timer_wait(max(0, int((t - now) * 1000) + 1))
        if self.handoff is not None:
            self.handoff.wait(poller)
        if self.standby is not None:
            self.standby.wait(poller)
        if self._wake_r >= 0:
            poller.fd_wait(self._wake_r, select.POLLIN)
        if self.linkwatch is not None:
            poller.fd_wait(self.linkwatch.fileno(), select.POLLIN)
        if self.exiting or self.clock.stepping:
            poller.immediate_wake()

    def _run_openflow(self, now: float) -> None:
        """Keep one management listener per running bridge, and serve them."""
        from hitless.daemon.ofmgmt import OfManager, mgmt_path, versions_of
        from hitless.ofproto.bridge import Bridge
        from hitless.ofproto.ofhandler import OfHandler

        for name in list(self.ofmgrs):
            rb = self.bridges.get(name)
            if rb is None or self.ofmgrs[name].handler.bridge is not rb.bridge:
                self.ofmgrs.pop(name).close()
        for name, rb in self.bridges.items():
            if name in self.ofmgrs or not isinstance(rb.bridge, Bridge):
                continue
            inherited = self.inherited_openflow.pop(name, None)
            try:
                handler = OfHandler(rb.bridge, _datapath_id(rb))
                self.ofmgrs[name] = OfManager(
                    mgmt_path(str(self.rundir.path), name), handler, now, inherited
                )
            except OSError as e:
                log.error("bridge %s: no OpenFlow management socket: %s", name, e)
                continue
            finally:
                if inherited is not None:
                    inherited.close()  # a no-op when the manager took them
        for name in [n for n in self.inherited_openflow if n not in self.bridges]:
            self.inherited_openflow.pop(name).close()  # the bridge is gone
        for name, mgr in self.ofmgrs.items():
            rb = self.bridges[name]
            cfg = rb.cfg
            if mgr.handler.datapath_id_cfg is not cfg:  # other_config:datapath-id, ports
                mgr.handler.datapath_id = _datapath_id(rb)
                mgr.handler.datapath_id_cfg = cfg
            mgr.versions = versions_of(cfg.protocols)
            mgr.set_controllers(tuple(c.target for c in cfg.controllers), now)
            mgr.run(now)
            self._fail_open(name, rb, mgr.controller_status(), now)
        if self.controller_status() != self._controllers:
            self._status_dirty = True  # written back with the next status transaction

    def _fail_open(
        self, name: str, rb: RunningBridge, status: Mapping[str, ControllerStatus], now: float
    ) -> None:
        """Open vSwitch's fail-open: in fail_mode standalone, a bridge whose primary
        controllers have all been unreachable for FAIL_OPEN_AFTER seconds switches by
        NORMAL until one connects (the time counts whatever the fail_mode)."""
        targets = [c.target for c in rb.cfg.controllers if c.primary]
        connected = any(status[t].is_connected for t in targets if t in status)
        if not targets or connected:
            self.unreachable_since.pop(name, None)
            rb.bridge.set_fail_open(False, now)
            return
        since = self.unreachable_since.setdefault(name, now)
        standalone = rb.cfg.fail_mode != "secure"
        rb.bridge.set_fail_open(standalone and now - since >= FAIL_OPEN_AFTER, now)

    def bond_status(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for rb in self.bridges.values():
            out.update(rb.bridge.bond_status())
        return out

    def controller_status(self) -> dict[str, ControllerStatus]:
        out: dict[str, ControllerStatus] = {}
        for mgr in self.ofmgrs.values():
            out.update(mgr.controller_status())
        return out

    def _drain_wakeup(self) -> None:
        if self._wake_r < 0:
            return
        try:
            while os.read(self._wake_r, 512):
                pass
        except OSError as e:
            if e.errno != errno.EAGAIN:
                raise

    # Reconciliation ----------------------------------------------------------------
    def force_reconcile(self) -> None:
        """Reconcile and rewrite all status at the next ``run()`` even if the database did
        not change (e.g. after bridges were adopted from another process)."""
        self._seqno = -1
        self._status_dirty = True

    def reconcile(self, now: float) -> None:
        read = read_config(self.idl)
        if read is None:
            # No Open_vSwitch row (not connected yet, or an empty database): keep
            # whatever runs; an empty database must not tear the switch down.
            return
        sets = self.idl.tables.get("Flow_Sample_Collector_Set")
        self._note_unsupported(
            unsupported(open_vswitch_row(self.idl), sets.rows.values() if sets else ())
        )
        self._apply(read, now)

    def _note_unsupported(self, found: tuple[Unsupported, ...]) -> None:
        """Settings this switch does not implement: one WARN line each (again if it is
        set again after being cleared), and the rows' status (written with the status)."""
        if found != self.unsupported:
            self._status_dirty = True
        self.unsupported = found
        for u in found:
            if u not in self._warned:
                log.warning("%s %s: %s", u.table, u.name, u.text())
        self._warned = set(found)

    def _apply(self, read: ConfigRead, now: float) -> None:
        new = read.config
        if read.warnings != self._warnings:
            for w in read.warnings:
                log.warning("configuration: %s", w)
            self._warnings = read.warnings
        self.rejected = dict(read.rejected)

        running = {n: rb.cfg for n, rb in self.bridges.items()}
        p = plan(running, new)
        if p.empty and self.config == new and not self._status_dirty:
            return
        self.counters.reconciliations += 1
        for name in p.destroy:
            self._destroy(name, "removed from the database")
            self._count("cold", name, "destroyed")
        for name in p.recreate:
            old = self.bridges[name].cfg.datapath_type
            self._destroy(name, f"datapath type changes from {old}")
            if self._create(new.bridges[name], now):
                self._count(
                    "cold",
                    name,
                    f"recreated: datapath type {old} -> {new.bridges[name].datapath_type}",
                )
        for name in p.create:
            fb = self.failed.get(name)
            if fb is not None and fb.cfg == new.bridges[name]:
                continue  # failed before with this very configuration; no retry loop
            if self._create(new.bridges[name], now):
                self._count(
                    "cold", name, f"created with datapath type {new.bridges[name].datapath_type}"
                )
        for name in p.reconfigure:
            rb = self.bridges[name]
            rb.cfg = new.bridges[name]
            try:
                self._read_statuses(rb, now)
            except Exception as e:  # our bug; keep the other bridges working
                log.exception("bridge %s: reconfiguration failed; closing it", name)
                self._destroy(name, "reconfiguration failed")
                self.failed[name] = FailedBridge(
                    rb.cfg, f"bridge {name}: internal error: {type(e).__name__}: {e}"
                )
                continue
            self._count("warm", name, "reconfigured in place")
        for name in set(self.failed) - set(new.bridges):
            del self.failed[name]
        if any(i.type == "patch" for c in new.bridges.values() for i in _interfaces(c)):
            # A patch port's status (link, error) depends on its peer on another bridge,
            # which may have appeared or gone just now.
            for rb in self.bridges.values():
                self._read_statuses(rb, now)
        was_waiting = self.flow_restore_wait
        self.config = new
        self.apply_switch_settings(new.other_config)
        if was_waiting and not self.flow_restore_wait:
            # What ovs-ctl's restart ends with: the restored flows take over and the
            # datapath is flushed (the baseline hitless avoids; see docs/upgrading.md).
            for name, rb in self.bridges.items():
                n = sum(1 for _ in rb.datapath.flow_dump())
                rb.datapath.flow_flush()
                log.info("bridge %s: flow-restore-wait cleared; flushed %d datapath flows", name, n)
        # Management sockets and controller connections of new bridges exist before
        # cur_cfg says the change is applied (ovs-vsctl returns, ovs-ofctl may connect).
        self._run_openflow(now)
        self._apply_mtu()
        self._apply_qos()
        self.sflow.sync(((n, rb.cfg) for n, rb in self.bridges.items()), now)
        self._write_status(cur_cfg=new.next_cfg)
        self._next_refresh = now + self.refresh_interval

    def _count(self, kind: str, bridge: str, what: str) -> None:
        if kind == "warm":
            self.counters.warm += 1
        else:
            self.counters.cold += 1
        log.info(
            "bridge %s: %s (%s; %d warm, %d cold so far)",
            bridge,
            what,
            kind,
            self.counters.warm,
            self.counters.cold,
        )

    def _create(self, cfg: BridgeConfig, now: float) -> bool:
        self.failed.pop(cfg.name, None)
        try:
            dp = self.datapath_opener(cfg.datapath_type, cfg.name)
            dp.clock = self.clock
        except DatapathError as e:
            msg = f"bridge {cfg.name}: {e}"
            log.error("%s; its interfaces stay detached", msg)
            self.failed[cfg.name] = FailedBridge(cfg, msg)
            return False
        except Exception as e:  # our bug (e.g. a provider that fails to import)
            log.exception("bridge %s: could not open its %s datapath", cfg.name, cfg.datapath_type)
            self.failed[cfg.name] = FailedBridge(
                cfg, f"bridge {cfg.name}: internal error: {type(e).__name__}: {e}"
            )
            return False
        try:
            bridge = self.bridge_factory(cfg.name, dp)
            # A new bridge (or a restarted daemon) gives interfaces their old numbers.
            statuses = bridge.reconfigure(with_ofport_hints(cfg, ofport_hints(self.idl)), now)
        except Exception as e:  # our bug; keep the other bridges working
            log.exception("bridge %s: could not be created", cfg.name)
            dp.close()
            self.failed[cfg.name] = FailedBridge(
                cfg, f"bridge {cfg.name}: internal error: {type(e).__name__}: {e}"
            )
            return False
        self.bridges[cfg.name] = RunningBridge(cfg, bridge, dp, statuses, bridge.link_seq)
        return True

    def _destroy(self, name: str, why: str) -> None:
        rb = self.bridges.pop(name, None)
        if rb is None:
            return
        log.info("bridge %s: closing (%s)", name, why)
        try:
            rb.bridge.close()
        finally:
            rb.datapath.close()

    # Status write-back ----------------------------------------------------------------
    def statuses(self) -> dict[str, InterfaceStatus]:
        """Status of every interface in the configuration (what the database should say)."""
        out: dict[str, InterfaceStatus] = {}
        for fb in self.failed.values():
            out.update(failed_statuses(bridge_interfaces(fb.cfg), fb.error))
        for rb in self.bridges.values():
            out.update(rb.statuses)
        for rb in self._device_bridges():
            drops = {p.name: p.stats for p in rb.datapath.ports().values()}
            self._with_device(rb.cfg, out, drops)
            set_speeds = getattr(rb.bridge, "set_link_speeds", None)
            if set_speeds is not None:  # spanning tree path costs follow the link speed
                speeds = {i.name: out[i.name].link_speed for i in _interfaces(rb.cfg) if i.name in out}
                set_speeds({n: v for n, v in speeds.items() if v}, self.clock())
        for iface, err in self.rejected.items():
            out[iface] = InterfaceStatus(ofport=-1, error=err)
        return out

    def refresh_status(self, now: float) -> None:
        """Re-read link state etc. from the bridges (an unchanged configuration is a
        no-op for them) and write what changed."""
        for rb in self.bridges.values():
            self._read_statuses(rb, now)
        self._write_status(cur_cfg=self.config.next_cfg if self.config else None)
        self._next_refresh = now + self.refresh_interval

    @staticmethod
    def _read_statuses(rb: RunningBridge, now: float) -> None:
        """The bridge's interface statuses as of now (an unchanged configuration is a
        no-op for it), and the link changes they include."""
        rb.statuses = rb.bridge.reconfigure(rb.cfg, now)
        rb.link_seq = rb.bridge.link_seq

    def _write_links(self, now: float) -> None:
        """A link went up or down (or a port's state moved): write the link columns
        (``link_state``, ``admin_state``, ``link_resets``) of every interface whose row
        does not say so yet, in a transaction of their own and before the rest of the
        status is gathered. They come from the bridges and the devices' flags (an ioctl
        that never waits); the rest (speed, driver, counters: sysfs and ethtool, which
        wait for the kernel's RTNL lock while another process changes links or deletes a
        namespace) follows in the full status write, in the same turn."""
        self._links_dirty = False
        if read_config(self.idl) is None:
            return
        links: dict[str, InterfaceStatus] = {}
        for rb in self.bridges.values():
            if rb.bridge.link_seq != rb.link_seq:
                self._read_statuses(rb, now)
            for iface in _interfaces(rb.cfg):
                st = rb.statuses.get(iface.name)
                if st is None or st.ofport <= 0:
                    continue
                if rb.cfg.datapath_type in DEVICE_DATAPATHS and iface.type != "patch":
                    st = replace(st, admin_state=_device_admin(iface.name, st.admin_state))
                links[iface.name] = st
        txn = write_links(self.idl, links)
        if txn is not None:
            self._txns.append(txn)
            self._progress_txns()

    @property
    def refresh_interval(self) -> float:
        """Seconds between statistics/status refreshes: Open_vSwitch
        other_config:stats-update-interval (ms, at least 5000 as in Open vSwitch), else
        the daemon's default."""
        v = self.config.other_config.get("stats-update-interval") if self.config else None
        try:
            return max(5.0, int(v) / 1000) if v is not None else self.status_interval
        except ValueError:
            return self.status_interval

    def _device_bridges(self) -> list[RunningBridge]:
        """Running bridges whose interfaces are kernel network devices."""
        return [rb for rb in self.bridges.values() if rb.cfg.datapath_type in DEVICE_DATAPATHS]

    def _apply_mtu(self) -> None:
        """Interface.mtu_request: set the device's MTU (as Open vSwitch; once per change,
        a failure logged once)."""
        for rb in self._device_bridges():
            for iface in _interfaces(rb.cfg):
                want = iface.mtu_request
                st = rb.statuses.get(iface.name)
                if want is None or st is None or st.ofport <= 0 or iface.type == "patch":
                    continue
                try:
                    if device_info(iface.name).mtu == want:
                        self._mtu_errors.pop(iface.name, None)
                        continue
                    set_mtu(iface.name, want)
                    log.info("interface %s: MTU set to %d (mtu_request)", iface.name, want)
                    self._mtu_errors.pop(iface.name, None)
                except OSError as e:
                    err = f"cannot set MTU {want}: {e.strerror or e}"
                    if self._mtu_errors.get(iface.name) != err:
                        log.warning("interface %s: %s", iface.name, err)
                    self._mtu_errors[iface.name] = err

    def _apply_qos(self) -> None:
        """Port.qos linux-htb/linux-hfsc: the tc tree on each attached interface's device
        (hitless.daemon.qos); trees of ports that lost their QoS are removed."""
        want: dict[str, tuple[str, Any]] = {}  # device -> (port, plan)
        for rb in self._device_bridges():
            for pc in rb.cfg.ports.values():
                q = pc.qos
                if q is None or q.type not in ("linux-htb", "linux-hfsc"):
                    continue
                for ic in pc.interfaces:
                    st = rb.statuses.get(ic.name)
                    if ic.type == "patch" or st is None or st.ofport <= 0:
                        continue
                    try:
                        speed = device_info(ic.name, tap=ic.type == "internal").link_speed
                    except OSError:
                        continue
                    want[ic.name] = (pc.name, tc_plan(q, speed))
        errors: dict[str, str] = {}
        for dev in sorted(set(self.tcqos.applied) - set(want)):
            self.tcqos.apply(dev, None)
        for dev, (port, p) in sorted(want.items()):
            err = self.tcqos.apply(dev, p)
            if err is not None:
                errors[port] = f"qos: {dev}: tc could not build the tree: {err}"
        if errors != self._qos_errors:
            self._status_dirty = True
        self._qos_errors = errors

    def _system_stats(self) -> dict[str, str]:
        """Open_vSwitch.statistics: system and process figures while other_config
        enable-statistics=true (refreshed at most every 5 s, as Open vSwitch), else none."""
        enabled = self.config is not None and (
            self.config.other_config.get("enable-statistics") == "true"
        )
        if not enabled:
            self._sys_stats, self._sys_stats_at = {}, float("-inf")
            return {}
        now = self.clock.base()
        if now - self._sys_stats_at >= sysstats.INTERVAL:
            self._sys_stats = sysstats.system_stats(str(self.rundir.path))
            self._sys_stats_at = now
        return self._sys_stats

    def _row_status(self) -> dict[tuple[str, str], dict[str, str]]:
        """Bridge and Port status keys the bridges report (the spanning tree's)."""
        now = self.clock()
        out: dict[tuple[str, str], dict[str, str]] = {}
        for rb in self.bridges.values():
            out.update(rb.bridge.stp_status(now))
        return out

    def _notes(self) -> dict[tuple[str, str], str]:
        """Each row's hitless_unsupported text: refused settings, then QoS the kernel
        refused."""
        notes = notes_by_row(self.unsupported)
        for port, err in self._qos_errors.items():
            key = ("Port", port)
            notes[key] = f"{notes[key]}; {err}" if key in notes else err
        return notes

    def _with_device(
        self, cfg: BridgeConfig, statuses: dict[str, InterfaceStatus], dp_stats: Mapping[str, Any]
    ) -> None:
        """Fill the device columns (ifindex, mtu, speed, duplex, statistics, status) of a
        device bridge's attached interfaces, in place. As Open vSwitch's netdev-linux,
        the drops are the device's plus the datapath's own (a frame the device refused,
        one longer than the receive ring holds, a full upcall queue)."""
        for iface in _interfaces(cfg):
            st = statuses.get(iface.name)
            if st is None or st.ofport <= 0 or iface.type == "patch":
                continue
            try:
                d = device_info(iface.name, tap=iface.type == "internal")
            except OSError:
                continue
            statuses[iface.name] = replace(
                st,
                ifindex=d.ifindex,
                mtu=d.mtu,
                link_speed=d.link_speed,
                duplex=d.duplex,
                admin_state="up" if d.admin_up and st.admin_state != "down" else "down",
                statistics=_plus_drops(d.statistics, dp_stats.get(iface.name)),
                status=d.status,
            )

    def _log_errors(self, statuses: Mapping[str, InterfaceStatus]) -> None:
        """One log line when an interface's error appears, changes or clears."""
        errors = {n: st.error for n, st in statuses.items() if st.error}
        for name, err in sorted(errors.items()):
            if self._iface_errors.get(name) != err:
                log.warning("interface %s: %s", name, err)
        for name in sorted(set(self._iface_errors) - set(errors)):
            if name in statuses:
                log.info("interface %s: error cleared (ofport %d)", name, statuses[name].ofport)
        self._iface_errors = errors

    def _write_status(self, cur_cfg: int | None) -> None:
        self._status_dirty = False
        if read_config(self.idl) is None:
            return
        now = self.clock()
        for rb in self.bridges.values():
            if rb.bridge.link_seq != rb.link_seq:
                # A link changed since the statuses were read (a reconciliation in the
                # same turn as the change reads only the bridges it reconfigured).
                self._read_statuses(rb, now)
        statuses = self.statuses()
        self._log_errors(statuses)
        self._controllers = self.controller_status()
        self._bond_active = self.bond_status()
        txn = write_status(
            self.idl,
            statuses,
            cur_cfg,
            controllers=self._controllers,
            bond_active=self._bond_active,
            types=(sorted(PROVIDERS), sorted(SUPPORTED_INTERFACE_TYPES)),
            notes=self._notes(),
            row_status=self._row_status(),
            system_stats=self._system_stats(),
            mirror_statistics={
                (name, m): {"tx_packets": c.packets, "tx_bytes": c.bytes}
                for name, rb in self.bridges.items()
                for m, c in getattr(rb.bridge, "mirror_counters", {}).items()
            },
            port_statistics={
                k: v for rb in self.bridges.values() for k, v in rb.bridge.stp_statistics().items()
            },
            datapath_ids={name: _datapath_id(rb) for name, rb in self.bridges.items()},
            now_ms=int(self.clock() * 1000),
        )
        if txn is not None:
            self._txns.append(txn)
            self._progress_txns()

    def _progress_txns(self) -> None:
        import ovs.db.idl

        T = ovs.db.idl.Transaction
        still: list[Any] = []
        for txn in self._txns:
            status = txn.commit()
            if status == T.INCOMPLETE:
                still.append(txn)
            elif status in (T.SUCCESS, T.UNCHANGED):
                continue
            else:
                self.counters.txn_failures += 1
                log.warning(
                    "status write-back failed (%s%s); will retry",
                    status,
                    f": {txn.get_error()}" if status == T.ERROR else "",
                )
                self._status_dirty = True
        self._txns = still

    @property
    def flow_restore_wait(self) -> bool:
        """Open_vSwitch other_config:flow-restore-wait, as Open vSwitch interprets it."""
        return self.config is not None and (
            self.config.other_config.get("flow-restore-wait", "false") == "true"
        )

    # Helpers for commands -------------------------------------------------------------
    def bridge(self, name: str) -> BridgeLike:
        """The running bridge called ``name`` (``TYPE@NAME`` is accepted too)."""
        _, _, bare = name.rpartition("@")
        rb = self.bridges.get(bare)
        if rb is not None:
            return rb.bridge
        if bare in self.failed:
            raise CommandError(f"bridge {bare} is not running: {self.failed[bare].error}")
        known = ", ".join(sorted(self.bridges)) or "none"
        raise CommandError(f"no such bridge: {bare} (bridges: {known})")

    def bridge_names(self) -> Iterable[str]:
        return sorted(self.bridges)


def flow_limit(other_config: Mapping[str, str]) -> int:
    """Open_vSwitch other_config:flow-limit: datapath flows per bridge (Open vSwitch's
    default, 200,000, when unset or not a positive integer)."""
    try:
        n = int(other_config.get("flow-limit", DEFAULT_FLOW_LIMIT))
    except ValueError:
        return DEFAULT_FLOW_LIMIT
    return n if n > 0 else DEFAULT_FLOW_LIMIT


def max_idle(other_config: Mapping[str, str]) -> float:
    """Open_vSwitch other_config:max-idle in seconds: how long an idle datapath flow stays,
    on every bridge (Open vSwitch reads it from that row only). 10 s when unset or not
    an integer of at least 500 (hitless.config.values says so out loud)."""
    try:
        ms = int(other_config.get("max-idle", DEFAULT_MAX_IDLE_MS))
    except ValueError:
        ms = DEFAULT_MAX_IDLE_MS
    return (ms if ms >= MIN_MAX_IDLE_MS else DEFAULT_MAX_IDLE_MS) / 1000


def _device_admin(name: str, bridge_admin: str | None) -> str:
    """Interface.admin_state of a device: up when the device is up (IFF_UP) and the
    bridge has not taken the port down (an OpenFlow port-mod)."""
    try:
        up = bool(if_flags(name) & IFF_UP)
    except OSError:
        up = False
    return "up" if up and bridge_admin != "down" else "down"


def _plus_drops(stats: dict[str, int], dp: Any) -> dict[str, int]:
    if dp is None:
        return stats
    out = dict(stats)
    for key in ("rx_dropped", "tx_dropped"):
        if key in out:
            out[key] += getattr(dp, key)
    return out
