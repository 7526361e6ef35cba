"""The old side of a handoff, inside the running daemon.

``HandoffServer`` listens on ``DIR/hitless-vswitchd.handoff`` and answers one new
process at a time. Until the new process says Ready, the switch keeps serving (the
socket is just one more fd in the poll loop). Then it freezes: the loop stops at a
message boundary, the final snapshot and the datapath descriptors go out, and this
module waits, under the lease, for Ack and then Owned. Owned means the new process
serves: ``run`` returns ``HANDED_OVER`` and the daemon exits without touching anything
shared. Anything else (a bad digest, Abort, the peer gone, the lease expired) rolls
back: the daemon carries on as if nothing happened.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import msgspec

from hitless import __version__
from hitless.daemon import faults, priority
from hitless.handoff import transport
from hitless.handoff.engine import HandoffRefused
from hitless.handoff.protocol import (
    FEATURES,
    OLD_STATS,
    Abort,
    Ack,
    Commit,
    ConnectionClosed,
    HandoffConnection,
    HandoffProtocolError,
    Hello,
    LeaseExpired,
    Owned,
    Ready,
    Role,
    Welcome,
    negotiate,
)
from hitless.state import ledger, records, snapshot
from hitless.state import sessions as state_sessions

log = logging.getLogger(__name__)

DEFAULT_LEASE = 2.0
# The new side must say Ready within this after the last progress: Welcome, a slice of
# the pre-copy built or taken by the new side's socket, or (once it is all sent) within
# this plus IMPORT_PER_MB per megabyte of pre-copy, the new side's import growing with
# the state (100,001 rules + 50,000 MACs: 5.7 s of import at a load average of 3).
PRECOPY_TIMEOUT = 60.0
IMPORT_PER_MB = 4.0
# The pre-copy's share of one serving-loop turn: the loop forwards, answers OpenFlow and
# ovs-appctl between two slices, so none of them waits longer than this for it (plus the
# last items of the slice: ``engine.SLICE_ITEMS`` between two looks at the clock).
PRECOPY_SLICE = 0.002
SEND_BUFFER = 4 << 20  # the handoff socket's send buffer: fewer turns to send a pre-copy
SEND_PIECES = 512  # pieces per sendmsg (the kernel takes up to IOV_MAX = 1024)
# Bytes of the pre-copy written in one serving-loop turn at most: while the new process
# reads as fast as we write (the other core), the socket never says "full" and one turn
# would copy the whole pre-copy (20 MB at 100,001 rules + 50,000 MACs).
SEND_PER_TURN = 1 << 20


class PrecopyJob(Protocol):
    """A pre-copy built a slice at a time (``hitless.handoff.engine.PrecopyJob``)."""

    counts: dict[str, int]

    def step(self, deadline: float) -> bool:
        """Work until the clock passes ``deadline``; True once the snapshot is built.
        Raises ``HandoffRefused`` or ``snapshot.SnapshotError`` if it cannot be."""

    def parts(self) -> list[bytes]:
        """The encoded snapshot, as pieces to send in this order."""


class WholePrecopy:
    """A pre-copy that exists whole already (an exporter with a small, fixed state)."""

    def __init__(self, state: records.State, version: int, taken: float) -> None:
        self.state, self.version, self.taken = state, version, taken
        self.counts = snapshot.summary(state)

    def step(self, deadline: float) -> bool:
        return True

    def parts(self) -> list[bytes]:
        return [
            snapshot.encode(
                self.state, software=__version__, taken=self.taken, version=self.version
            )
        ]


class Exporter(Protocol):
    """The switch as the old side sees it (``hitless.daemon.takeover.SwitchExporter``)."""

    def precopy_job(self, now: float, delta: bool, version: int) -> PrecopyJob:
        """The whole learned state as of now, encoded for ``version`` a slice at a time
        while the switch serves; with ``delta``, changes are tracked from now on."""

    def freeze(self, now: float, delta: bool) -> Any:
        """The final state (a ``records.Delta`` with ``delta``), the live descriptors the new
        process needs (still owned by this process: never closed here), and the
        digest and counts the new process must acknowledge: an object with ``state``,
        ``fds``, ``digest``, ``counts``, and ``listeners`` (name -> live listening fd
        to hand over too, e.g. the control socket); optionally ``sessions`` (plain
        records) and ``session_fds`` (the live descriptors their "fd" fields index),
        sent when the new side speaks the "sessions" feature; and ``extras`` (switch-level
        state of other layers by name, sent to any peer: an older one ignores it)."""

    def finish(self, rolled_back: bool) -> None:
        """The handoff ended; ``rolled_back`` after a freeze: serve on as before."""

    # Optional (looked up with getattr): ``use_features(features)``, told the features
    # both sides speak; ``early_rings()``, (live descriptor, ring size) of the receive
    # rings, sent with the Welcome when the new side speaks "early-rings".


SERVING = "serving"
HANDED_OVER = "handed-over"


def handoff_path(rundir: Path) -> Path:
    return rundir / "hitless-vswitchd.handoff"


@dataclass(slots=True)
class HandoffRecord:
    """What ``upgrade/status`` shows about the current or last handoff."""

    peer_pid: int = 0
    peer_software: str = ""
    version: int = 0
    state: str = "idle"
    result: str = ""
    reason: str = ""
    started: float = 0.0
    precopy_started: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    turns: int = 0  # serving-loop turns from Hello to the freeze
    longest_turn: str = ""  # where the longest of them went (its sections)
    busiest_turn: str = ""  # where the one with the most CPU time went
    # what the pre-copy step with the most CPU time did (``engine.StepProfile``: the
    # parts and items it worked on, the job's tables that grew in it)
    busiest_step: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "peer_pid": self.peer_pid,
            "peer_software": self.peer_software,
            "state_version": self.version,
            "state": self.state,
            "result": self.result,
            "reason": self.reason,
            "phases_ms": {k: round(v * 1000, 3) for k, v in self.phases.items()},
            "turns": self.turns,
        }


class HandoffServer:
    def __init__(
        self,
        path: Path,
        exporter: Exporter,
        *,
        lease: float = DEFAULT_LEASE,
        clock: Callable[[], float] = time.monotonic,
        inherited_fd: int | None = None,
    ) -> None:
        self.path = path
        self.exporter = exporter
        self._frozen = False
        self.default_lease = lease
        self.clock = clock
        self._delta = False
        self._listeners = False
        self._sessions = False
        self.listener: socket.socket | None
        if inherited_fd is not None:  # the predecessor's socket, handed over
            self.listener = socket.socket(fileno=inherited_fd)
            self.listener.setblocking(False)
        else:
            self.listener = transport.listen(str(path))
        self.conn: socket.socket | None = None
        self.proto: HandoffConnection | None = None
        self.current: HandoffRecord | None = None
        self.last: HandoffRecord | None = None
        self._precopy_deadline = 0.0
        self._lease = lease
        self._job: PrecopyJob | None = None  # the pre-copy being built
        self._out: deque[memoryview] = deque()  # bytes not yet sent (the pre-copy)
        self._out_bytes = 0  # the pre-copy's size

    # -- poll loop ------------------------------------------------------------------
    def wait(self, poller: Any) -> None:
        import ovs.poller

        if self.listener is not None:
            poller.fd_wait(self.listener.fileno(), ovs.poller.POLLIN)
        if self.conn is not None:
            poller.fd_wait(self.conn.fileno(), ovs.poller.POLLIN)
            poller.timer_wait(max(0, int((self._precopy_deadline - self.clock()) * 1000) + 1))
            if self._out:
                poller.fd_wait(self.conn.fileno(), ovs.poller.POLLOUT)
        if self._job is not None:
            poller.immediate_wake()  # more of the pre-copy to build after this turn

    def run(self) -> str:
        self._accept()
        if self.conn is None or self.proto is None:
            return SERVING
        if self.clock() > self._precopy_deadline:
            self._finish("rolled-back", "the new process did not get ready in time")
            return SERVING
        try:
            self._precopy_step()
            self._flush()
            if self.conn is None:
                return SERVING
            data, fds = transport.recv(self.conn, deadline=None) if self._readable() else (None, [])
            if data is None:
                return SERVING
            for fd in fds:  # the new side never sends descriptors
                os.close(fd)
            proto = self.proto
            proto.receive_data(data)
            while self.proto is proto and (ev := proto.next_event()) is not None:
                if isinstance(ev, Hello):
                    self._on_hello(ev)
                elif isinstance(ev, Ready):
                    return self._freeze_and_hand_over()
                elif isinstance(ev, Abort):
                    self._finish("rolled-back", f"the new process aborted: {ev.reason}")
                elif isinstance(ev, ConnectionClosed):
                    self._finish("rolled-back", "the new process went away before freezing")
        except HandoffProtocolError as e:
            self._fail(f"protocol error from the new process: {e}")
        except OSError as e:
            self._fail(f"handoff socket error: {e}")
        return SERVING

    def note_loop(
        self,
        seconds: float,
        cpu: float | None = None,
        where: Callable[[], str] | None = None,
        collecting: float = 0.0,
    ) -> None:
        """One serving-loop turn took ``seconds`` (``cpu`` of them this process's CPU
        time, ``collecting`` of them in garbage collections; ``where`` says where it
        went); during a pre-copy the longest turn, the CPU time of that turn, the most
        CPU time of any turn and the most collecting time of any turn are reported
        (``upgrade/status``, and to the new process with the freeze; where the longest
        and the busiest went, logged): a turn much longer than its CPU time waited for a
        core."""
        rec = self.current
        if rec is None or self._frozen or rec.state not in ("hello", "pre-copy"):
            return
        ph = rec.phases
        rec.turns += 1

        def said() -> str:
            return f"{where() if where is not None else '?'}; gc {collecting * 1000:.1f}"

        if seconds > ph.get("loop_max", 0.0):
            ph["loop_max"] = seconds
            if cpu is not None:
                ph["loop_max_its_cpu"] = cpu
            rec.longest_turn = said()
        if cpu is not None and cpu > ph.get("loop_max_cpu", 0.0):
            ph["loop_max_cpu"] = cpu
            rec.busiest_turn = said()
        if collecting > ph.get("loop_max_gc", 0.0):
            ph["loop_max_gc"] = collecting

    def close(self) -> None:
        self._job = None
        self._out.clear()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def release_listener(self) -> None:
        """After a successful handoff: close without unlinking (the new process owns
        the path now)."""
        self.close()

    # -- phases ---------------------------------------------------------------------
    def _readable(self) -> bool:
        import select

        assert self.conn is not None
        r, _, _ = select.select([self.conn], [], [], 0)
        return bool(r)

    def _accept(self) -> None:
        if self.listener is None:
            return
        try:
            got = transport.accept_checked(self.listener)
        except transport.HandoffTransportError as e:
            log.warning("%s", e)
            return
        if got is None:
            return
        sock, pid = got
        if self.conn is not None:
            log.warning("refusing a second handoff from pid %d while one is in progress", pid)
            sock.close()
            return
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self.conn = sock
        self.proto = HandoffConnection(Role.OLD)
        self.current = HandoffRecord(peer_pid=pid, state="hello", started=self.clock())
        self._precopy_deadline = self.clock() + PRECOPY_TIMEOUT
        log.info("handoff: new process pid %d connected", pid)

    def _send(self, data: bytes, fds: list[int] | None = None) -> None:
        assert self.conn is not None
        if self._out:  # the pre-copy is still going out: after it, without blocking
            assert not fds
            self._out.append(memoryview(data))
            self._flush()
            return
        transport.send(self.conn, data, fds or ())

    def _flush(self) -> None:
        """Send what the socket takes now, never waiting for the new process to read."""
        if self.conn is None:
            return
        out = self._out
        budget = SEND_PER_TURN
        while out and budget > 0:
            try:
                n = self.conn.sendmsg(list(islice(out, SEND_PIECES)), [], socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            budget -= n
            moved = n > 0
            while n and out:
                if n >= len(out[0]):
                    n -= len(out.popleft())
                else:
                    out[0] = out[0][n:]
                    n = 0
            if moved:  # the new side reads: progress; once all is out, time for its import
                self._progress(0.0 if out else IMPORT_PER_MB * self._out_bytes / (1 << 20))
        rec = self.current
        if rec is not None and self._job is None and "precopy_build" in rec.phases:
            rec.phases.setdefault("precopy_send", self.clock() - rec.precopy_started)

    def _progress(self, extra: float) -> None:
        """The handoff moved: the new side has PRECOPY_TIMEOUT (+ ``extra``) from now."""
        deadline = self.clock() + PRECOPY_TIMEOUT + extra
        self._precopy_deadline = max(self._precopy_deadline, deadline)

    def _precopy_step(self) -> None:
        """Build a slice of the pre-copy; once built, queue it for sending."""
        job, rec = self._job, self.current
        if job is None or self.proto is None or rec is None:
            return
        cpu = time.process_time()
        try:
            done = job.step(self.clock() + PRECOPY_SLICE)
        except (HandoffRefused, snapshot.SnapshotError) as e:
            self._job = None
            self._send(self.proto.abort(str(e)))
            self._finish("refused", str(e))
            return
        cpu = time.process_time() - cpu
        if cpu > rec.phases.get("precopy_step_max_cpu", 0.0):  # the per-turn profile
            rec.phases["precopy_step_max_cpu"] = cpu
            rec.busiest_step = str(getattr(job, "last_step", "?"))
        self._progress(0.0)  # our own work: the new side is not late for it
        if not done:
            return
        self._job = None
        self._out.extend(memoryview(b) for b in self.proto.send_precopy(job.parts()) if b)
        self._out_bytes = sum(len(b) for b in self._out)
        rec.phases["precopy_build"] = self.clock() - rec.precopy_started
        log.info(
            "handoff: pid %d (%s): pre-copy of state version %d built in %.0f ms (%s)",
            rec.peer_pid,
            rec.peer_software,
            rec.version,
            rec.phases["precopy_build"] * 1000,
            job.counts,
        )

    def _on_hello(self, hello: Hello) -> None:
        assert self.proto is not None and self.current is not None
        rec = self.current
        rec.peer_software = hello.software
        ours = snapshot.readable_versions()
        version = negotiate(ours, hello.versions)
        if version is None:
            reason = (
                f"no common state version: this switch ({__version__}) reads {ours}, "
                f"the new one ({hello.software}) reads {hello.versions}"
            )
            self._send(self.proto.abort(reason))
            self._finish("refused", reason)
            return
        rec.version = version
        self._lease = hello.lease if hello.lease > 0 else self.default_lease
        features = [f for f in FEATURES if f in hello.features]
        if version not in snapshot.DELTA_VERSIONS:  # deltas only for the newest bridges
            features = [f for f in features if f != "delta"]
        self._delta = "delta" in features
        self._listeners = "listeners" in features
        self._sessions = "sessions" in features
        use_features = getattr(self.exporter, "use_features", None)
        if use_features is not None:
            use_features(features)
        # The rings' sockets ahead of the freeze, for the new side to map while we serve
        # (feature "early-rings"; an exporter without rings has none to send).
        early_rings = getattr(self.exporter, "early_rings", None)
        rings = early_rings() if "early-rings" in features and early_rings is not None else []
        welcome = Welcome(__version__, version, os.getpid(), self._lease, features,
                          fd_count=len(rings), rings=[size for _, size in rings])  # fmt: skip
        self._send(self.proto.send(welcome), [fd for fd, _ in rings])
        t = self.clock()
        # Built and sent a slice per serving-loop turn (run); carries no descriptors.
        self._job = self.exporter.precopy_job(t, self._delta, version)
        rec.precopy_started = t
        rec.state = "pre-copy"
        log.info(
            "handoff: pid %d (%s) negotiated state version %d; building the pre-copy",
            rec.peer_pid,
            hello.software,
            version,
        )

    def _freeze_and_hand_over(self) -> str:
        # Nothing forwards until this returns: the CPU first (hitless.daemon.priority);
        # a rollback serves on as before.
        with priority.freeze_realtime():
            return self._freeze()

    def _freeze(self) -> str:
        assert self.proto is not None and self.conn is not None and self.current is not None
        rec = self.current
        t_freeze = self.clock()
        ph = rec.phases
        log.info(
            "handoff: pid %d ready after %d serving-loop turns of ours; the longest "
            "%.1f ms (%.1f ms of CPU; %s ms), the most CPU in one turn %.1f ms (%s ms), "
            "the most garbage collection in one turn %.1f ms; the busiest pre-copy step "
            "%.1f ms of CPU (%s)",
            rec.peer_pid,
            rec.turns,
            ph.get("loop_max", 0.0) * 1000,
            ph.get("loop_max_its_cpu", 0.0) * 1000,
            rec.longest_turn or "?",
            ph.get("loop_max_cpu", 0.0) * 1000,
            rec.busiest_turn or "?",
            ph.get("loop_max_gc", 0.0) * 1000,
            ph.get("precopy_step_max_cpu", 0.0) * 1000,
            rec.busiest_step or "?",
        )
        rec.state = "frozen"
        try:
            self._frozen = True
            frozen = self.exporter.freeze(t_freeze, self._delta)
            fds = list(frozen.fds)
            listeners: dict[str, int] = {}
            if self._listeners:
                for name, fd in frozen.listeners.items():
                    listeners[name] = len(fds)
                    fds.append(fd)
                if self.listener is not None:
                    listeners["handoff"] = len(fds)
                    fds.append(self.listener.fileno())
            sessions: list[dict[str, Any]] = []  # version 3 and older: beside the state
            session_fds: list[int] = []
            if self._sessions:
                typed = list(getattr(frozen, "sessions", []))
                for fd in getattr(frozen, "session_fds", []):
                    session_fds.append(len(fds))
                    fds.append(fd)
                if rec.version >= 4:  # typed records in the state
                    frozen.state = msgspec.structs.replace(frozen.state, sessions=typed)
                else:
                    sessions = [state_sessions.to_v3(r) for r in typed]
                frozen.counts["openflow_sessions"] = sum(len(r.clients) for r in typed)
            is_delta = isinstance(frozen.state, tuple(snapshot.DELTA_TYPES.values()))
            if is_delta:
                data = snapshot.encode_delta(
                    frozen.state, software=__version__, taken=t_freeze, version=rec.version
                )
            else:
                data = snapshot.encode(
                    frozen.state, software=__version__, taken=t_freeze, version=rec.version
                )
                # Verify what the new process can know: the state as this version has it.
                as_sent = snapshot.as_version(frozen.state, rec.version)
                frozen.digest = ledger.state_digest(as_sent)
                frozen.counts = snapshot.summary(as_sent) | {
                    k: v for k, v in frozen.counts.items() if k == "openflow_sessions"
                }
            if faults.hit("truncate-snapshot"):
                data = data[: len(data) // 2]
            elif faults.hit("foreign-snapshot"):
                data = b"\x93\x01\x02\x03 not a snapshot"
            elif faults.hit("foreign-record-snapshot"):
                data = _foreign_record(data)
            self._send(
                self.proto.freeze(
                    data,
                    len(fds),
                    t_freeze,
                    self._lease,
                    is_delta,
                    listeners,
                    sessions,
                    session_fds,
                    {k: rec.phases[k] for k in OLD_STATS if k in rec.phases},
                    frozen.extras,
                ),
                fds,
            )
            rec.phases["freeze_send"] = self.clock() - t_freeze
            deadline = self.proto.get_timer()
            assert deadline is not None
            ack = self._wait_for(Ack, deadline)
            if ack is None:
                return SERVING
            assert isinstance(ack, Ack)
            faults.maybe_crash("old-after-ack")
            common = set(ack.counts) & set(frozen.counts)  # older builds count less
            if ack.digest != frozen.digest or any(
                ack.counts[k] != frozen.counts[k] for k in common
            ):
                reason = (
                    f"the new process restored a different state (digest {ack.digest[:12]} "
                    f"!= {frozen.digest[:12]}; counts {ack.counts} vs {frozen.counts})"
                )
                self._send(self.proto.abort(reason))
                self._finish("rolled-back", reason)
                return SERVING
            rec.phases["restore_verify"] = self.clock() - t_freeze
            self._send(self.proto.send(Commit()))
            owned = self._wait_for(Owned, deadline)
            if owned is None:
                return SERVING
            rec.phases["freeze"] = self.clock() - t_freeze
            self._finish("handed-over", "")
            return HANDED_OVER
        except HandoffProtocolError as e:
            self._fail(f"protocol error from the new process: {e}")
        except OSError as e:
            self._fail(f"handoff socket error during the freeze: {e}")
        except snapshot.SnapshotError as e:
            self._fail(f"cannot encode the final state: {e}")
        except HandoffRefused as e:
            self._fail(str(e))
        return SERVING

    def _wait_for(self, kind: type, deadline: float) -> object | None:
        """Block (frozen) until a message of ``kind`` arrives; None after a rollback."""
        assert self.proto is not None and self.conn is not None
        while True:
            try:
                data, fds = transport.recv(self.conn, deadline)
            except TimeoutError:
                self._send(self.proto.handle_timer(deadline))
                while (ev := self.proto.next_event()) is not None:
                    if isinstance(ev, LeaseExpired):
                        break
                self._finish("rolled-back", f"freeze lease of {self._lease:g}s expired")
                return None
            for fd in fds:
                os.close(fd)
            self.proto.receive_data(data)
            while (ev := self.proto.next_event()) is not None:
                if isinstance(ev, kind):
                    return ev
                if isinstance(ev, Abort):
                    self._finish("rolled-back", f"the new process aborted: {ev.reason}")
                    return None
                if isinstance(ev, ConnectionClosed):
                    self._finish("rolled-back", "the new process died during the freeze")
                    return None

    def _fail(self, reason: str) -> None:
        if self.proto is not None and self.conn is not None:
            try:
                self._send(self.proto.abort(reason))
            except OSError:
                pass
        self._finish("rolled-back", reason)

    def _finish(self, result: str, reason: str) -> None:
        rec = self.current
        if rec is not None:
            rec.result = result
            rec.reason = reason
            rec.state = "done" if result == "handed-over" else "idle"
            self.last = rec
        self.current = None
        self._job = None
        if result != "handed-over":
            self._out.clear()
            self.exporter.finish(rolled_back=self._frozen)
        self._frozen = False
        if result != "handed-over":
            if reason:
                log.warning("handoff %s: %s; this process keeps serving", result, reason)
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            self.proto = None
        else:
            log.info("handoff: the new process owns the switch; exiting")

    def status(self) -> dict[str, Any]:
        return {
            "current": self.current.to_json() if self.current else None,
            "last": self.last.to_json() if self.last else None,
        }


def _foreign_record(data: bytes) -> bytes:
    """Fault injection: the snapshot with its first handles record's tag ("datapath":
    "dummy", msgpack fixstrs) made unknown, in a valid envelope (checksum recomputed)."""
    env = snapshot.read_envelope(data)
    tag = re.search(rb"\xa8datapath[\xa1-\xbf]", env.payload)  # the key, a short str value
    if tag is None:  # no typed handles (a version 6 peer): nothing to make foreign
        return data
    j = tag.end()  # the value's first character
    payload = env.payload[:j] + b"X" + env.payload[j + 1 :]
    out = msgspec.structs.replace(
        env, payload=payload, checksum=snapshot.payload_checksum(payload)
    )
    return msgspec.msgpack.encode(out)
