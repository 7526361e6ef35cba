"""The new side of a handoff: a freshly started daemon takes the switch over.

``take_over`` runs before the new daemon serves anything: it connects to the running
daemon's handoff socket, negotiates the state version, imports the pre-copy, makes its
own OVSDB connection fully synced (make-before-break), says Ready, receives the final
snapshot and the datapath descriptors, restores and verifies them, acknowledges, and
after Commit takes over (``Importer.commit``) and says Owned.

If anything fails before Commit, the new process aborts and exits; the old one thaws
and keeps serving. If the old process disappears after our Ack, we own the switch:
nobody else can.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from hitless import __version__
from hitless.daemon import faults, priority
from hitless.datapath import afpacket
from hitless.handoff import transport
from hitless.handoff.protocol import (
    FEATURES,
    OLD_STATS,
    Abort,
    Ack,
    Commit,
    ConnectionClosed,
    Frozen,
    HandoffConnection,
    HandoffProtocolError,
    Hello,
    Owned,
    PreCopy,
    Ready,
    Role,
    State,
    Welcome,
)
from hitless.state import handles, records, snapshot
from hitless.state import sessions as state_sessions

log = logging.getLogger(__name__)


class TakeoverError(Exception):
    """The takeover failed; the old process keeps (or resumes) serving."""


class Importer(Protocol):
    def prepare(self, state: records.State, delta: bool, taken: float) -> None:
        """Pre-copy arrived (the old process still serves): validate; with ``delta``,
        build everything from it now. Its ages count back from ``taken`` (the old
        process's CLOCK_MONOTONIC when it took the snapshot)."""

    def sync_config(self, deadline: float) -> None:
        """Block until our own OVSDB connection holds the whole database."""

    def restore(
        self, state: records.State, fds: list[int], version: int
    ) -> tuple[str, dict[str, int]]:
        """Full mode: adopt descriptors and rebuild from the final state; return the
        digest (``ledger.state_digest``) and counts of what was rebuilt, as the state
        ``version`` both sides use describes it."""

    def restore_delta(self, delta: records.Delta, fds: list[int]) -> tuple[str, dict[str, int]]:
        """Delta mode: adopt descriptors into what ``prepare`` built and apply the
        changes; return the incremental digest and the counts of what now exists."""

    def take_sessions(self, records: list[records.BridgeSessions], fds: list[int]) -> int:
        """The OpenFlow sessions and listeners (feature "sessions"): records whose
        descriptor fields index ``fds``; ours to close from now on (``discard``). Returns
        the number of sessions; ValueError if unusable."""

    def take_extras(self, extras: dict[str, Any]) -> None:
        """Switch-level state of other layers by name, adopted at commit."""

    def take_listeners(self, fds: dict[str, int]) -> None:
        """The old process's listening sockets by name ("unixctl", "handoff"); the
        importer owns them from now on (closes them in discard)."""

    def commit(self) -> Mapping[str, float] | None:
        """We own the switch: take the control socket, pidfile, and start serving.
        Returns where the time went (seconds by part, reported as phases) or None."""

    def discard(self) -> None:
        """Rollback: drop whatever was built, without touching shared resources."""


@dataclass(slots=True)
class TakeoverResult:
    ok: bool
    reason: str = ""
    connected_at: float = 0.0  # CLOCK_MONOTONIC when we reached the old process
    old_pid: int = 0
    old_software: str = ""
    state_version: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds
    realtime: bool = False  # whether the freeze ran as a real-time process
    freeze_imports: list[str] = field(default_factory=list)  # modules first imported in it
    rings_ahead: int = 0  # receive rings mapped before the freeze and adopted (early-rings)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "old_pid": self.old_pid,
            "old_software": self.old_software,
            "state_version": self.state_version,
            "counts": self.counts,
            "phases_ms": {k: round(v * 1000, 3) for k, v in self.phases.items()},
            "connected_at": self.connected_at,
            "freeze_realtime": self.realtime,
            "freeze_imports": self.freeze_imports,
            "rings_mapped_ahead": self.rings_ahead,
        }


def _old_process_gone(pid: int, wait: float = 1.0) -> bool:
    """True if ``pid`` has exited (or is a zombie nobody reaped) within ``wait`` s."""
    from hitless.daemon.rundir import wait_exit

    return wait_exit(pid, wait)


IMPORT_NICENESS = 5  # added while importing the pre-copy


def _warm_decoders(version: int) -> None:
    """Build msgspec's decoding plans for what the freeze decodes (the delta of
    ``version``, the current one, the datapath handles) now, while the old process
    serves: built on first use they cost 2-3 ms inside the freeze."""
    for kind in (
        snapshot.DELTA_TYPES.get(version),
        records.Delta,
        records.State,
        *handles.HANDLES.values(),
        list[handles.MeterLevelV1],
    ):
        if kind is not None:
            msgspec.msgpack.Decoder(kind)


@contextlib.contextmanager
def _freeze_profile() -> Iterator[None]:
    """With HITLESS_PROFILE_FREEZE=DIR, a cProfile of this process's part of the freeze
    (restore, verify, commit) is written to DIR/freeze-PID.prof (``python -m pstats``
    reads it). For finding where the freeze's time goes in the real daemon; profiling
    makes the freeze itself about twice as long."""
    where = os.environ.get("HITLESS_PROFILE_FREEZE")
    if not where:
        yield
        return
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        with contextlib.suppress(OSError):
            prof.dump_stats(str(Path(where) / f"freeze-{os.getpid()}.prof"))


@contextlib.contextmanager
def _second_to_the_old_process() -> Iterator[None]:
    """Import the pre-copy at a lower CPU priority: on a busy machine the old process,
    which still forwards every packet, gets the CPU first (our session's too, when we
    lead one: ``hitless.daemon.priority``). Only when this process can take its priority
    back afterwards (as root); otherwise it imports as it is. The freeze runs at the
    old process's priority again."""
    if os.geteuid() != 0:
        yield
        return
    before = os.getpriority(os.PRIO_PROCESS, 0)
    session = priority.session_niceness()  # None: no session of our own to weigh
    os.setpriority(os.PRIO_PROCESS, 0, min(before + IMPORT_NICENESS, 19))
    if session is not None:
        priority.set_session_niceness(min(session + IMPORT_NICENESS, 19))
    try:
        yield
    finally:  # from Ready on (the freeze): the old process's priority again
        os.setpriority(os.PRIO_PROCESS, 0, before)
        if session is not None:
            priority.set_session_niceness(session)


class _Session:
    def __init__(self, sock: socket.socket, clock: Callable[[], float]) -> None:
        self.sock = sock
        self.clock = clock
        self.proto = HandoffConnection(Role.NEW)

    def send(self, msg: Any) -> None:
        try:
            transport.send(self.sock, self.proto.send(msg))
        except OSError as e:
            # The old side may have aborted (its Abort is waiting in our buffer).
            reason = self._pending_abort()
            if reason:
                raise TakeoverError(f"the running switch aborted the handoff: {reason}") from None
            raise TakeoverError(f"the running switch went away ({e.strerror or e})") from None

    def _pending_abort(self) -> str | None:
        try:
            while True:
                data, fds = transport.recv(self.sock, self.clock() + 0.2)
                for fd in fds:
                    os.close(fd)
                self.proto.receive_data(data)
                if not data:
                    break
        except (TimeoutError, OSError, HandoffProtocolError):
            pass
        while (ev := self.proto.next_event()) is not None:
            if isinstance(ev, Abort):
                return ev.reason
        return self.proto.abort_reason

    def abort(self, reason: str) -> None:
        try:
            transport.send(self.sock, self.proto.abort(reason))
        except OSError:
            pass

    def expect(
        self, kind: type, deadline: float, what: str, progress: float | None = None
    ) -> Any:
        """Wait for one message of ``kind``; ConnectionClosed is returned as is. With
        ``progress``, every chunk that arrives moves the deadline to at least that many
        seconds from then: a big message is waited for as long as it keeps coming."""
        while True:
            ev = self.proto.next_event()
            if ev is None:
                try:
                    data, fds = transport.recv(self.sock, deadline)
                except TimeoutError:
                    raise TakeoverError(f"timed out waiting for {what}") from None
                if progress is not None:
                    deadline = max(deadline, self.clock() + progress)
                self.proto.receive_data(data, fds)
                continue
            if isinstance(ev, (kind, ConnectionClosed)):
                return ev
            if isinstance(ev, Abort):
                raise TakeoverError(f"the running switch aborted the handoff: {ev.reason}")
            raise TakeoverError(f"unexpected {type(ev).__name__} while waiting for {what}")


def take_over(
    path: Path,
    importer: Importer,
    *,
    lease: float = 0.0,
    timeout: float = 55.0,  # per step, within the old side's PRECOPY_TIMEOUT (60 s)
    versions: list[int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    serve_first: Callable[[], None] | None = None,
) -> TakeoverResult:
    """Run the whole new side. Never raises for handoff failures: returns ok=False.

    ``serve_first``, once we own the switch, still at the freeze's CPU priority: the
    first forwarding (the frames the rings held during the freeze), before anything else
    (phase ``first_forward``). An exception from it is not a failed handoff: it
    propagates (we own the switch by then)."""
    res = TakeoverResult(ok=False)
    t0 = clock()
    ours = versions if versions is not None else snapshot.readable_versions()
    try:
        sock = transport.connect(str(path), timeout)
    except transport.HandoffTransportError as e:
        res.reason = str(e)
        return res
    res.connected_at = clock()
    s = _Session(sock, clock)
    gc_enabled = gc.isenabled()
    restored = committed = False
    ahead: list[int] = []  # ring sockets that came with the Welcome, not mapped yet
    # From Ready to Owned nothing forwards: the CPU first (hitless.daemon.priority), and
    # the optional profile of the freeze (_freeze_profile).
    freeze = contextlib.ExitStack()
    try:
        faults.maybe_crash("connected")
        s.send(Hello(__version__, ours, os.getpid(), lease, list(FEATURES)))
        w = s.expect(Welcome, t0 + timeout, "the running switch's welcome")
        if isinstance(w, ConnectionClosed):
            raise TakeoverError("the running switch closed the handoff connection")
        res.old_pid, res.old_software, res.state_version = w.pid, w.software, w.version
        ahead = list(w.fds)
        if w.version not in ours:
            raise TakeoverError(
                f"the running switch chose state version {w.version}, not in {ours}"
            )
        # the pre-copy grows with the state: waited for while it keeps coming
        pc = s.expect(PreCopy, clock() + timeout, "the pre-copy", progress=timeout)
        if isinstance(pc, ConnectionClosed):
            raise TakeoverError("the running switch closed the connection during pre-copy")
        t_pc = clock()
        delta = "delta" in w.features
        with _second_to_the_old_process():
            pre_env, pre_state = snapshot.decode(pc.snapshot)
            restored = True  # prepare may build things discard must drop
            importer.prepare(pre_state, delta, pre_env.taken)
            faults.maybe_crash("precopy")
            # its own deadline: the import before it grows with the state, this does not
            importer.sync_config(clock() + timeout)
            _warm_decoders(w.version)
            # The rings' pages are inserted when mapped (2-3 ms per 48 MiB ring): now,
            # while the old process serves, not in the restore (afpacket.map_ring).
            mapped = sum(afpacket.map_ahead(fd, n) for fd, n in zip(ahead, w.rings, strict=True))
            ahead = []
        res.phases["start"] = t_pc - res.connected_at
        res.phases["precopy"] = clock() - t_pc

        # No collection inside the freeze, where nothing forwards: the young
        # generations are emptied now, while the old process still serves (right after
        # an import they can hold enough objects for a 20-40 ms collection), and
        # collections wait until the commit is done (``finally`` below).
        gc.collect(1)
        gc.disable()
        res.realtime = freeze.enter_context(priority.freeze_realtime())
        imported = set(sys.modules)
        t_ready = clock()
        s.send(Ready())
        faults.maybe_crash("ready")
        fr = s.expect(Frozen, t_ready + w.lease + 1.0, "the frozen state")
        if isinstance(fr, ConnectionClosed):
            raise TakeoverError("the running switch closed the connection before freezing")
        t_frozen, cpu_frozen = clock(), time.process_time()
        freeze.enter_context(_freeze_profile())
        res.phases["frozen_wait"] = t_frozen - t_ready  # the old side's freeze + transfer
        for k, v in fr.old_stats.items():  # the old side's pre-copy, as it measured it
            if k in OLD_STATS and isinstance(v, (int, float)):
                res.phases[f"old_{k}"] = float(v)
        try:
            if fr.delta:
                if not delta:
                    raise TakeoverError("the running switch sent a delta nobody agreed on")
                _, final_delta = snapshot.decode_delta(fr.snapshot)
            else:
                _, final = snapshot.decode(fr.snapshot)
        except snapshot.SnapshotError:
            for fd in fr.fds:
                os.close(fd)
            raise
        listen_idx = set(fr.listeners.values()) | set(fr.session_fds)
        importer.take_listeners({name: fr.fds[i] for name, i in fr.listeners.items()})
        importer.take_extras(fr.extras)
        n_sessions = None
        if "sessions" in w.features:
            try:
                if w.version >= 4:  # typed, in the state (hitless.state.records)
                    taken = final_delta.sessions if fr.delta else final.sessions
                else:  # an older build's form, beside it
                    taken = [state_sessions.from_v3(d) for d in fr.sessions]
                n_sessions = importer.take_sessions(taken, [fr.fds[i] for i in fr.session_fds])
            except ValueError as e:
                for i in range(len(fr.fds)):  # nothing is adopted yet: close them all
                    if i not in listen_idx:
                        with contextlib.suppress(OSError):
                            os.close(fr.fds[i])
                raise TakeoverError(f"cannot take over the OpenFlow sessions: {e}") from None
        dp_fds = [fd if i not in listen_idx else -1 for i, fd in enumerate(fr.fds)]
        if fr.delta:
            digest, res.counts = importer.restore_delta(final_delta, dp_fds)
        else:
            digest, res.counts = importer.restore(final, dp_fds, w.version)
        if n_sessions is not None:
            res.counts["openflow_sessions"] = n_sessions
        res.phases["restore"] = clock() - t_frozen
        # CPU time too: on a loaded machine most of a phase can be waiting for a core
        res.phases["restore_cpu"] = time.process_time() - cpu_frozen
        faults.maybe_crash("restored")
        faults.maybe_stall("restored")
        t_verify = clock()
        s.send(Ack(digest, res.counts))
        faults.maybe_crash("acked")
        c = s.expect(Commit, t_ready + w.lease + 1.0, "the commit")
        if isinstance(c, ConnectionClosed):
            if not _old_process_gone(res.old_pid):
                raise TakeoverError("the running switch closed the connection without committing")
            log.warning("old process %d died after our Ack; taking over", res.old_pid)
        res.phases["verify"] = clock() - t_verify
        faults.maybe_crash("committed")
        t_commit, cpu_commit = clock(), time.process_time()
        parts = importer.commit()
        committed = True
        res.phases["commit"] = clock() - t_commit
        res.phases["commit_cpu"] = time.process_time() - cpu_commit
        res.phases.update(parts or {})
        try:
            if s.proto.state is State.COMMITTED:
                s.send(Owned())
        except OSError:
            pass  # the old process is gone already: fine, we own everything
        res.phases["freeze"] = clock() - t_ready
        res.freeze_imports = sorted(set(sys.modules) - imported)
        if res.freeze_imports:  # each one is compile or load time nothing forwards in
            log.warning("the freeze imported %s", ", ".join(res.freeze_imports))
        if serve_first is not None:
            # Before the real-time priority ends (on a loaded machine, 2-3 ms waiting
            # for a core right after it), the report and the log line.
            t_first = clock()
            serve_first()
            res.phases["first_forward"] = clock() - t_first
        freeze.close()
        res.rings_ahead = mapped - afpacket.drop_mapped_ahead()  # the rest was not adopted
        res.phases["total"] = clock() - t0
        res.ok = True
        return res
    except (TakeoverError, snapshot.SnapshotError, HandoffProtocolError, OSError) as e:
        if committed:  # ours by now (serve_first): not a handoff that failed
            raise
        res.reason = str(e)
        s.abort(res.reason)
        if restored:
            importer.discard()
        return res
    finally:
        freeze.close()
        for fd in ahead:
            os.close(fd)
        afpacket.drop_mapped_ahead()
        sock.close()
        if gc_enabled:
            gc.enable()
