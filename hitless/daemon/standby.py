"""The crash standby: a second ``hitless-vswitchd`` that takes over the moment the
daemon dies (``kill -9``, a crash), from where the daemon stood.

Why: a netdev bridge's AF_PACKET sockets die with the process that holds them, and a
new Python process needs 0.5 s (quiet machine) to 5 s (loaded) before it reads the
rings again; everything that arrives meanwhile is dropped by the kernel and the learned
state (MAC table, OpenFlow rules, megaflows, connections) is gone.

How (``StandbyLink`` in the daemon, ``run_standby`` in the standby):

- The daemon starts the standby itself (``hitless-vswitchd --standby``, the same build)
  once it holds a netdev bridge, and starts a new one whenever the standby exits; the
  standby imports everything, opens and syncs its own OVSDB connection, connects to
  DIR/hitless-vswitchd.standby (mode 0600, peer credentials checked) and waits on a
  pidfd of the daemon.
- Descriptors: every netdev port's socket (or TAP) is sent to the standby with
  SCM_RIGHTS, again whenever the ports change. While the standby holds a socket, the
  kernel keeps filling its ring after the daemon died: the frames wait, they are not
  lost (24,576 frames per port).
- State: the daemon builds the pre-copy of a handoff (``PrecopyJob``, the same slices,
  without tracking changes) every ``MIRROR_INTERVAL`` and sends it with each bridge's
  datapath handles; at least 20 times its own build time apart, so that the mirror
  costs the daemon at most ~5% of a core whatever the state size.
- Ready bridges: the standby builds a mirror into bridges while it waits (the
  handoff's ``ImportEngine.prepare``, ``_prepare``), again only when the OpenFlow rules
  changed (each mirror carries the tables' version): building 100,000 rules costs
  seconds of CPU, adopting them at a takeover nothing.
- On the daemon's death (pidfd readable, no "bye" received, no handoff in progress)
  the standby applies to the built bridges what changed since (``takeover_delta``: MAC
  entries, megaflows, rule counters; the import engine's delta path, as at a handoff's
  freeze) or, with none built, restores the last mirror whole; adopts the
  descriptors it holds (a ring's read position is found from the frames waiting in it:
  ``NetdevDatapath._resync``), commits against the database, serves the control and
  handoff sockets, writes the pidfile and serves; its own ``StandbyLink`` then starts a
  new standby.
- A clean exit (``hitless stop``, ``ovs-appctl exit``) and a handoff (``hitless
  upgrade``) send "bye" first: the standby exits. During a handoff the standby never
  takes over (the new process does).

What a crash loses: what the mirror did not have yet (state learned in the last
interval: MAC entries relearned by flooding, megaflows by upcalls; OpenFlow rules added
in that interval: their controller's reconnect resends them), the OpenFlow and OVSDB
sessions (controllers reconnect), and the frames the dead process had read but not sent.

Wire (unix stream): messages of one kind byte and a 4-byte big-endian length, then the
payload. ``F``: the descriptors (carried by SCM_RIGHTS with the message's first byte),
payload a msgpack map {"n": count, "bridges": {name: {"handles": wire, "fds": [index]}}};
``S``: a 4-byte length, that msgpack map (without "n", with "of": the OpenFlow tables'
version, null if rules changed while the mirror was built) and the snapshot
(``snapshot`` envelope); ``H``: b"1" while a handoff runs, b"0" after; ``B``: bye.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Any

import msgspec

from hitless import localsock
from hitless.daemon.rundir import DAEMON_NAME, RunDir, read_pid, spawn_logged, write_pidfile

log = logging.getLogger(DAEMON_NAME)

__all__ = [
    "MIRROR_INTERVAL",
    "LinkReader",
    "StandbyLink",
    "link_path",
    "run_standby",
    "standby_args",
    "standby_pid",
    "standby_pidfile",
]

MIRROR_INTERVAL = 0.5  # seconds between two mirrors of the state, at least
MIRROR_COST = 20  # ... and at least this many times the last mirror's build time
MIRROR_SLICE = 0.002  # seconds of a serving-loop turn given to building the mirror
# An OpenFlow rule change (a flow-mod) brings the next mirror forward to this
# long after the last one started (still at least MIRROR_COST times its build time):
# rules are the state a crash must not lose; MACs and megaflows come back by themselves.
OPENFLOW_MIRROR_DELAY = 0.05
OPENFLOW_CHECK_EVERY = 0.01  # seconds between two looks at the tables' versions
SPAWN_BACKOFF = (2.0, 60.0)  # seconds before starting a standby again (doubling)
# After a handoff or a takeover, the new standby's start (imports: ~1 s of CPU) waits
# this long, and imports at IMPORT_NICE: not while the new process starts serving.
SPAWN_DELAY_AFTER_TAKEOVER = 5.0
IMPORT_NICE = 10
# A mirror is built into ready bridges at this niceness: below the daemon's, but not so
# low that a loaded machine leaves the standby without ready bridges for long (the
# kernel raises it to the daemon's if the daemon dies meanwhile).
PREPARE_NICE = 0
CONNECT_TIMEOUT = 30.0  # the standby gives up reaching its daemon after this long
SEND_PER_TURN = 1 << 20  # bytes written to the standby in one serving-loop turn at most
SEND_PIECES = 512  # pieces per sendmsg (the kernel takes up to IOV_MAX = 1024)
_HDR = struct.Struct("!cI")


def link_path(rundir: RunDir) -> Path:
    return rundir.path / f"{DAEMON_NAME}.standby"


def standby_pidfile(rundir: RunDir) -> Path:
    return rundir.path / f"{DAEMON_NAME}-standby.pid"


def standby_pid(rundir: RunDir) -> int | None:
    """PID of this rundir's live standby, or None."""
    from hitless.daemon.rundir import process_alive

    pid = read_pid(standby_pidfile(rundir))
    if pid is not None and process_alive(pid, "--standby"):
        return pid
    return None


def _message(kind: bytes, payload: bytes) -> bytes:
    return _HDR.pack(kind, len(payload)) + payload


class LinkReader:
    """Sans-IO parser of the link's messages: ``feed`` bytes and the descriptors that
    came with them, get (kind, payload, fds) events. An ``F`` message takes its
    descriptors from those received so far (they ride with its first byte)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.fds: deque[int] = deque()

    def feed(self, data: bytes, fds: list[int]) -> list[tuple[bytes, bytes, list[int]]]:
        self.buf += data
        self.fds.extend(fds)
        out = []
        while len(self.buf) >= _HDR.size:
            kind, n = _HDR.unpack_from(self.buf)
            if len(self.buf) < _HDR.size + n:
                break
            payload = bytes(self.buf[_HDR.size : _HDR.size + n])
            del self.buf[: _HDR.size + n]
            got: list[int] = []
            if kind == b"F":
                count = msgspec.msgpack.decode(payload)["n"]
                if count > len(self.fds):
                    raise ValueError(f"standby link: {count} descriptors announced, "
                                     f"{len(self.fds)} received")  # fmt: skip
                got = [self.fds.popleft() for _ in range(count)]
            out.append((kind, payload, got))
        return out

    def close(self) -> None:
        while self.fds:
            with contextlib.suppress(OSError):
                os.close(self.fds.popleft())


def _own_command() -> list[str]:
    """How to start this very build again (the script we run as, else the module)."""
    script = sys.argv[0]
    if script and os.path.basename(script).startswith(DAEMON_NAME) and os.path.exists(script):
        return [sys.executable, script]
    return [sys.executable, "-m", "hitless.daemon"]


class StandbyLink:
    """The daemon's side: starts the standby, sends it the netdev ports' descriptors and
    the mirrored state. ``run`` and ``wait`` join the serving loop; ``close`` says bye.
    ``switch`` is a ``hitless.daemon.switch.Switch`` (bridges, clock, handoff)."""

    def __init__(
        self,
        switch: Any,
        rundir: RunDir,
        *,
        spawn: bool = True,
        extra_args: list[str] | None = None,
        delay: float = 0.0,
    ) -> None:
        from hitless.daemon.takeover import SwitchExporter

        self.switch = switch
        self.rundir = rundir
        self.spawn = spawn
        self.extra_args = extra_args or []
        self.exporter = SwitchExporter(switch)
        self.listener: socket.socket | None = localsock.listen(str(link_path(rundir)), 2)
        self.inode = _inode(link_path(rundir))
        self.conn: socket.socket | None = None
        self.peer_pid = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.next_spawn = time.monotonic() + delay
        self.backoff = SPAWN_BACKOFF[0]
        self.out: deque[tuple[memoryview, list[int]]] = deque()
        self.sent_keys: tuple[Any, ...] | None = None
        self.index: dict[str, list[int]] = {}  # bridge -> indices of its fds as sent
        self.job: Any = None  # the mirror being built (engine.PrecopyJob)
        self.job_started = 0.0
        self.job_cpu = 0.0
        self.next_mirror = 0.0
        self.handoff_flag = False
        self.mirrors = 0  # sent, for upcall/show-like reporting and tests
        self.last_build = 0.0
        self.of_version = -1  # the OpenFlow tables' versions summed, as last mirrored
        self.next_of_check = 0.0

    # -- the serving loop --------------------------------------------------------------
    def wait(self, poller: Any) -> None:
        import ovs.poller

        if self.listener is not None:
            poller.fd_wait(self.listener.fileno(), ovs.poller.POLLIN)
        if self.conn is not None:
            poller.fd_wait(self.conn.fileno(), ovs.poller.POLLIN)
            if self.out:
                poller.fd_wait(self.conn.fileno(), ovs.poller.POLLOUT)
            if self.job is not None:
                poller.immediate_wake()
            else:
                now = time.monotonic()
                poller.timer_wait(max(0, int((self.next_mirror - now) * 1000) + 1))
        elif self.spawn and self._netdev_bridges():
            poller.timer_wait(max(0, int((self.next_spawn - time.monotonic()) * 1000) + 1))

    def run(self) -> None:
        now = time.monotonic()
        self._accept()
        self._reap()
        if self.conn is None:
            due = self.spawn and self.proc is None and now >= self.next_spawn
            if due and self._netdev_bridges() and not self._in_handoff():
                self._start_standby(now)
            return
        try:
            self._poll_peer()
            if self.conn is None:
                return
            handoff = self._in_handoff()
            if handoff != self.handoff_flag:
                self.handoff_flag = handoff
                self.job = None  # never beside a handoff's own pre-copy
                self._queue(_message(b"H", b"1" if handoff else b"0"))
            if not handoff:
                self._send_fds_if_changed()
                self._mirror_step(now)
            self._flush()
        except OSError as e:
            log.warning("standby link: %s; dropping the standby (pid %d)", e, self.peer_pid)
            self._drop()

    def close(self) -> None:
        """Say bye (the standby exits instead of taking over) and stop listening."""
        if self.conn is not None:
            said = False
            with contextlib.suppress(OSError):
                self.conn.setblocking(True)
                self.conn.settimeout(1.0)
                self._flush_all()
                self.conn.sendall(_message(b"B", b""))
                said = True
            if not said and self.peer_pid:
                # A standby busy building bridges from a mirror reads nothing for a
                # while: the rest of the mirror and the bye do not fit in the socket.
                # Without the bye it would take this clean stop for a crash and take
                # over (seen at 100,000 rules); it is ours and has no handler: stop it.
                log.info("standby link: the standby (pid %d) did not take the bye in 1 s; "
                         "stopping it", self.peer_pid)  # fmt: skip
                with contextlib.suppress(OSError):
                    os.kill(self.peer_pid, signal.SIGTERM)
            self._drop()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            # Unless a successor replaced it (after a handoff): then it is not ours.
            if _inode(link_path(self.rundir)) == self.inode:
                with contextlib.suppress(OSError):
                    os.unlink(link_path(self.rundir))

    def status(self) -> dict[str, Any]:
        return {
            "standby_pid": self.peer_pid if self.conn is not None else None,
            "mirrors": self.mirrors,
            "last_build_ms": round(self.last_build * 1000, 1),
        }

    # -- pieces ------------------------------------------------------------------------
    def _netdev_bridges(self) -> list[tuple[str, Any]]:
        return sorted(
            (name, rb.datapath)
            for name, rb in self.switch.bridges.items()
            if getattr(rb.datapath, "type", None) == "netdev"
        )

    def _in_handoff(self) -> bool:
        h = self.switch.handoff
        return h is not None and h.conn is not None

    def _start_standby(self, now: float) -> None:
        cmd = [*_own_command(), "--standby", "--rundir", str(self.rundir.path), *self.extra_args]
        try:
            self.proc = spawn_logged(cmd, self.rundir.log)
        except OSError as e:
            log.error("could not start the crash standby: %s", e)
            self.proc = None
        self.next_spawn = now + self.backoff
        self.backoff = min(self.backoff * 2, SPAWN_BACKOFF[1])
        if self.proc is not None:
            log.info("started the crash standby (pid %d)", self.proc.pid)

    def _reap(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            if self.proc.returncode:
                log.warning(
                    "the crash standby (pid %d) exited with status %d",
                    self.proc.pid,
                    self.proc.returncode,
                )
            self.proc = None

    def _accept(self) -> None:
        if self.listener is None:
            return
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        why = localsock.refusal(sock)
        if why is not None or self.conn is not None:
            log.warning("standby link: refused a connection (%s)", why or "one standby only")
            sock.close()
            return
        sock.setblocking(False)
        self.conn = sock
        self.peer_pid = localsock.peer_credentials(sock)[0]
        self.sent_keys, self.index, self.out = None, {}, deque()
        self.next_mirror = 0.0
        self.backoff = SPAWN_BACKOFF[0]
        self.handoff_flag = False
        log.info("crash standby (pid %d) connected", self.peer_pid)

    def _poll_peer(self) -> None:
        assert self.conn is not None
        try:
            data = self.conn.recv(4096)
        except BlockingIOError:
            return
        if not data:  # it exited (or took over from someone else)
            log.info("crash standby (pid %d) went away", self.peer_pid)
            self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.job = None
        self.out.clear()
        self.sent_keys = None

    def _keys(self, bridges: list[tuple[str, Any]]) -> tuple[Any, ...]:
        keys = []
        for name, dp in bridges:
            for fd in dp.fds():
                keys.append((name, fd, os.fstat(fd).st_ino))
        return tuple(keys)

    def _handles(self, bridges: list[tuple[str, Any]]) -> tuple[dict[str, Any], list[int]]:
        from hitless.state import handles as dp_handles

        out: dict[str, Any] = {}
        fds: list[int] = []
        for name, dp in bridges:
            rec, mine = dp.export_handles(freeze=False)
            out[name] = {
                "handles": dp_handles.to_wire(rec),
                "fds": list(range(len(fds), len(fds) + len(mine))),
            }
            fds.extend(mine)
        return out, fds

    def _send_fds_if_changed(self) -> None:
        bridges = self._netdev_bridges()
        keys = self._keys(bridges)
        if keys == self.sent_keys:
            return
        doc, fds = self._handles(bridges)
        self.index = {name: b["fds"] for name, b in doc.items()}
        self.sent_keys = keys
        self._queue(_message(b"F", msgspec.msgpack.encode({"n": len(fds), "bridges": doc})), fds)
        self.next_mirror = 0.0  # new ports: mirror the state that goes with them now

    def _mirror_step(self, now: float) -> None:
        from hitless.state import snapshot

        if self.job is None and now >= self.next_of_check:
            self.next_of_check = now + OPENFLOW_CHECK_EVERY
            if self._openflow_version() != self.of_version:
                soon = self.job_started + max(OPENFLOW_MIRROR_DELAY, MIRROR_COST * self.last_build)
                self.next_mirror = min(self.next_mirror, soon)
        if self.job is None:
            if now < self.next_mirror or self.out:
                return
            self.job_started, self.job_cpu = now, 0.0
            self.of_version = self._openflow_version()
            self.job = self.exporter.precopy_job(now, False, snapshot.CURRENT_VERSION)
        cpu = time.process_time()
        done = self.job.step(self.switch.clock.base() + MIRROR_SLICE)
        self.job_cpu += time.process_time() - cpu
        if not done:
            return
        parts = self.job.parts()
        self.job = None
        bridges = self._netdev_bridges()
        if self._keys(bridges) != self.sent_keys:
            self.next_mirror = 0.0  # ports changed meanwhile: descriptors first, then again
            return
        doc, _fds = self._handles(bridges)  # the descriptors are the ones already sent
        # The OpenFlow tables' version, if no rule changed while the mirror was built:
        # the standby rebuilds its ready bridges only when it moves.
        same = self._openflow_version() == self.of_version
        head = msgspec.msgpack.encode({"bridges": doc, "of": self.of_version if same else None})
        # The pieces as the job made them, never joined: one copy of the whole mirror in
        # one turn (20 MB at 100,001 rules + 50,000 MACs) is what the slices avoid.
        body = [struct.pack("!I", len(head)) + head, *parts]
        self._queue(_HDR.pack(b"S", sum(len(p) for p in body)))
        for piece in body:
            self._queue(piece)
        self.mirrors += 1
        self.last_build = self.job_cpu
        self.next_mirror = now + max(MIRROR_INTERVAL, MIRROR_COST * self.job_cpu)

    def _openflow_version(self) -> int:
        """Moves with every change of any bridge's OpenFlow tables (``Table.version``)."""
        total = 0
        for rb in self.switch.bridges.values():
            of = getattr(rb.bridge, "of", None)
            if of is not None:
                total += sum(t.version for t in of.tables)
        return total

    def _queue(self, data: bytes, fds: list[int] | None = None) -> None:
        self.out.append((memoryview(data), list(fds or [])))

    def _flush(self) -> None:
        """Send what the socket takes now, at most ``SEND_PER_TURN`` bytes: a standby
        that reads as fast as we write (on the other core) never fills the socket."""
        conn = self.conn
        assert conn is not None
        out, budget = self.out, SEND_PER_TURN
        while out and budget > 0:
            view, fds = out[0]
            try:
                if fds:
                    n = socket.send_fds(conn, [view[:1]], fds)
                else:
                    pieces = []
                    for v, f in islice(out, SEND_PIECES):
                        if f:
                            break
                        pieces.append(v)
                    n = conn.sendmsg(pieces)
            except BlockingIOError:
                return
            budget -= n
            while n and out:
                view, fds = out[0]
                if n >= len(view):
                    n -= len(view)
                    out.popleft()
                else:
                    out[0] = (view[n:], [])
                    n = 0

    def _flush_all(self) -> None:
        assert self.conn is not None
        while self.out:
            view, fds = self.out.popleft()
            if fds:
                n = socket.send_fds(self.conn, [view[:1]], fds)
                view = view[n:]
            self.conn.sendall(view)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


# -- the standby process ------------------------------------------------------------


class _Standby:
    """What the standby holds while it waits: the daemon's descriptors, the last mirror
    and the handles that go with them."""

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.bridges: dict[str, Any] = {}  # name -> {"handles": wire, "fds": [index]}
        self.snapshot: bytes | None = None
        self.bye = False
        self.handoff = False
        self.mirrors = 0
        # The last mirror's OpenFlow tables' version (None: unknown) and its decoded state
        self.of_version: int | None = None
        self.latest_state: Any = None
        # The mirror built into ready bridges (``prepare``), its state and version.
        self.prepared = 0
        self.prepared_state: Any = None
        self.prepared_of: int | None = None
        self.prepared_at = 0.0

    def apply(self, kind: bytes, payload: bytes, fds: list[int]) -> None:
        if kind == b"F":
            for fd in self.fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.fds = fds
            # The last mirror stays: its rules, MACs and flows with the new ports (a
            # port gone is dropped by the commit's reconfiguration, a new one numbered)
            # until the next mirror, which the daemon sends at once.
            self.bridges = msgspec.msgpack.decode(payload)["bridges"]
        elif kind == b"S":
            (n,) = struct.unpack_from("!I", payload)
            head = msgspec.msgpack.decode(payload[4 : 4 + n])
            self.bridges = head["bridges"]
            self.snapshot = payload[4 + n :]
            self.of_version = head.get("of")
            self.latest_state = None
            self.mirrors += 1
        elif kind == b"H":
            self.handoff = payload == b"1"
        elif kind == b"B":
            self.bye = True

    def needs_prepare(self) -> bool:
        """Whether the last mirror must be built: the ready bridges are older and their
        OpenFlow rules may differ (their MAC entries, flows and counters are brought up
        to date at the takeover: ``takeover_delta``)."""
        if self.snapshot is None or self.prepared == self.mirrors or self.handoff:
            return False
        if self.prepared_state is None or self.of_version is None:
            return True
        if self.of_version != self.prepared_of:
            return True
        return {br.name: _n_rules(br) for br in self.latest().bridges} != {
            br.name: _n_rules(br) for br in self.prepared_state.bridges
        }

    def latest(self) -> Any:
        """The last mirror, decoded (once)."""
        from hitless.state import snapshot

        if self.latest_state is None:
            assert self.snapshot is not None
            self.latest_state = snapshot.decode(self.snapshot)[1]
        return self.latest_state

    def prepare(self, importer: Any) -> None:
        """Build the last mirror into ready bridges (no ports yet) with ``importer``
        (a fresh ``SwitchImporter``), as a handoff's new process builds its pre-copy: a
        takeover then only adopts the descriptors (``takeover_delta``). Ages count from
        now: at a takeover the mirror's MAC entries and flows are as old as they are."""
        st = self.latest()
        importer.prepare(st, delta=True)
        self.prepared, self.prepared_state, self.prepared_of = self.mirrors, st, self.of_version
        self.prepared_at = time.monotonic()

    def takeover_delta(self) -> tuple[Any, list[int]]:
        """What a takeover applies to the prepared bridges (built from a mirror with the
        same OpenFlow rules as the latest one): each netdev bridge with its datapath
        handles pointing at the descriptors we hold, its ports, OpenFlow groups, meters
        and table counters as the latest mirror has them, the MAC entries, megaflows and
        rule counters that changed since the built mirror and those gone since; a bridge
        not built comes whole from the latest mirror, one not mirrored bare (``new``);
        and the descriptors."""
        from hitless.state.records import (
            BridgeDelta,
            BridgeState,
            DatapathV7,
            Delta,
            OfRuleCountersV2,
            OpenFlowDelta,
        )

        built = {br.name: br for br in self.prepared_state.bridges}
        latest = {br.name: br for br in self.latest().bridges}
        since = time.monotonic() - self.prepared_at  # the mirror came after the build
        out = []
        fds: list[int] = []
        for name, handles, slots in self._held(fds):
            br, old = latest.get(name), built.get(name)
            if br is None:  # not mirrored yet: a bare bridge
                bare = BridgeState(name, DatapathV7("netdev", handles, [], slots))
                out.append(BridgeDelta(bare, new=True))
                continue
            if old is None:  # not built: the latest mirror's, whole
                dp = DatapathV7(br.datapath.type, handles, br.datapath.flows, slots)
                out.append(BridgeDelta(msgspec.structs.replace(br, datapath=dp), new=True))
                continue
            flows, gone_flows = _flows_since(old.datapath.flows, br.datapath.flows)
            macs, gone_macs = _macs_since(old.mac_entries, br.mac_entries, since)
            changed = msgspec.structs.replace(
                br,
                datapath=DatapathV7(br.datapath.type, handles, flows, slots),
                mac_entries=macs,
                openflow=None,
            )
            of, was = br.openflow, old.openflow
            ofd = None
            if of is not None and was is not None:
                counters = [
                    OfRuleCountersV2(i, r.idle, r.packet_count, r.byte_count)
                    for i, (r, p) in enumerate(zip(of.rules, was.rules, strict=True))
                    if r.packet_count != p.packet_count or r.byte_count != p.byte_count
                ]
                ofd = OpenFlowDelta(
                    counters=counters, groups=of.groups, meters=of.meters, tables=of.tables
                )
            out.append(BridgeDelta(changed, gone_flows, gone_macs, openflow_delta=ofd))
        return Delta(out), fds

    def _held(self, fds: list[int]) -> list[tuple[str, Any, list[int]]]:
        """Each bridge's handles (ring positions left out: found from the frames) and
        the slots in ``fds`` of its descriptors, appended there; the descriptors of no
        bridge are closed and forgotten."""
        from hitless.state import handles as dp_handles

        out = []
        for name, b in sorted(self.bridges.items()):
            wire = dict(b["handles"])
            wire["ports"] = [{k: v for k, v in p.items() if k != "head"} for p in wire["ports"]]
            handles = dp_handles.from_wire("netdev", wire)
            slots = list(range(len(fds), len(fds) + len(b["fds"])))
            fds.extend(self.fds[i] for i in b["fds"])
            out.append((name, handles, slots))
        used = set(fds)
        for fd in self.fds:
            if fd not in used:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fds = []
        return out

    def state(self) -> tuple[Any, list[int]]:
        """The state to restore: the last mirror's netdev bridges with their datapath
        handles pointing at the descriptors we hold (ring positions unknown: found from
        the frames), or bare bridges if no mirror came yet; and the descriptors."""
        from hitless.state import snapshot
        from hitless.state.records import BridgeState, DatapathV7, State

        mirrored = {}
        if self.snapshot is not None:
            _env, st = snapshot.decode(self.snapshot)
            mirrored = {br.name: br for br in st.bridges}
        out = []
        fds: list[int] = []
        for name, handles, slots in self._held(fds):
            br = mirrored.get(name)
            if br is None:
                br = BridgeState(name, DatapathV7("netdev"))
            out.append(
                msgspec.structs.replace(
                    br,
                    datapath=msgspec.structs.replace(br.datapath, handles=handles, fd_slots=slots),
                )
            )
        return State(out), fds


def _n_rules(br: Any) -> int:
    return len(br.openflow.rules) if br.openflow is not None else -1


def _flows_since(built: list[Any], latest: list[Any]) -> tuple[list[Any], list[Any]]:
    """The megaflows of the latest mirror that are new or whose actions or counters
    moved since the built one, and the (key, mask) of those gone since."""
    was = {(f.key, f.mask): f for f in built}
    changed = []
    for f in latest:
        p = was.pop((f.key, f.mask), None)
        if p is None or p.actions != f.actions or p.packet_count != f.packet_count:
            changed.append(f)
    return changed, list(was)


def _macs_since(built: list[Any], latest: list[Any], since: float) -> tuple[list[Any], list[Any]]:
    """The MAC entries of the latest mirror that are new, moved, or seen again since the
    built mirror (``since`` seconds older: an entry the build has as older than it now
    is would age out too early), and the (vlan, mac) of those gone since."""
    was = {(m.vlan, m.mac): m for m in built}
    changed = []
    for m in latest:
        p = was.pop((m.vlan, m.mac), None)
        if p is None or p.port != m.port or m.age + 1.0 < p.age + since:
            changed.append(m)
    return changed, list(was)


def _connect(rundir: RunDir, deadline: float) -> socket.socket:
    """Connect to the daemon's link; gives up once no daemon runs (nothing to hold)."""
    from hitless.daemon.rundir import daemon_pid

    path = str(link_path(rundir))
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as e:
            sock.close()
            if time.monotonic() > deadline or daemon_pid(rundir) is None:
                raise OSError(e.errno, f"cannot reach the daemon at {path}: {e.strerror}") from None
            time.sleep(0.1)


def run_standby(rundir: RunDir, args: Any) -> Any:
    """``hitless-vswitchd --standby``: wait for the daemon's death, then take over.
    Returns the switch, committed and ready to serve, or an exit status."""
    import ovs.poller

    from hitless.daemon.priority import set_niceness

    # Import and connect at a low priority (the daemon and its traffic come first), then
    # run at the daemon's: a takeover must not wait for the CPU.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, IMPORT_NICE)
    from hitless.daemon import ofmgmt, settings, unixctl  # noqa: F401  (imported now)
    from hitless.daemon.rundir import publish_ovs_names, remove_pidfile_if_mine
    from hitless.daemon.switch import Switch
    from hitless.daemon.takeover import SwitchImporter
    from hitless.ofproto import ofhandler  # noqa: F401  (imported now, not at takeover)
    from hitless.state import snapshot

    unixctl.load_commands()
    pidfile = standby_pidfile(rundir)
    held = _Standby()
    reader = LinkReader()
    prepared: SwitchImporter | None = None
    _raise_priority_when_parent_dies(args.nice)

    def on_commit() -> None:
        switch.start_unixctl()
        remove_pidfile_if_mine(pidfile)
        write_pidfile(rundir.pidfile)
        publish_ovs_names(rundir)
        settings.apply_settings(switch)
        switch.start_handoff_listener(args.lease)
        switch.standby = StandbyLink(
            switch, rundir, extra_args=standby_args(args), delay=SPAWN_DELAY_AFTER_TAKEOVER
        )

    try:
        sock = _connect(rundir, time.monotonic() + CONNECT_TIMEOUT)
        pid, uid, _ = localsock.peer_credentials(sock)
        if not localsock.trusted(uid):
            raise PermissionError(f"standby link belongs to uid {uid}")
        pidfd = os.pidfd_open(pid)
        # From now on we take over if it dies: ``hitless start`` waits for us.
        write_pidfile(pidfile)
        switch = Switch(rundir, schema=args.schema)
        set_niceness(args.nice)
        log.info("crash standby (pid %d) ready for %s pid %d", os.getpid(), DAEMON_NAME, pid)
        eof = False
        while True:
            poller = ovs.poller.Poller()
            if not eof:
                poller.fd_wait(sock.fileno(), ovs.poller.POLLIN)
            poller.fd_wait(pidfd, ovs.poller.POLLIN)
            switch.idl.wait(poller)
            poller.block()
            switch.idl.run()
            dead = bool(select.select([pidfd], [], [], 0)[0])
            while not eof and select.select([sock], [], [], 0)[0]:
                data, fds, _f, _a = socket.recv_fds(sock, 1 << 20, 250)
                if not data:
                    eof = True
                for ev in reader.feed(data, list(fds)):
                    held.apply(*ev)
            if held.bye:
                log.info("crash standby (pid %d): %s pid %d said bye; exiting", os.getpid(),
                         DAEMON_NAME, pid)  # fmt: skip
                return 0
            if dead:
                break
            if eof and not select.select([pidfd], [], [], 1.0)[0]:
                log.warning("crash standby: the daemon closed the link; exiting")
                return 0
            if held.needs_prepare():
                if prepared is not None:
                    prepared.discard()
                prepared = _prepare(held, SwitchImporter(switch, on_commit=on_commit), args.nice)
        if held.handoff:
            log.info("crash standby: %s pid %d died during a handoff; the new process takes "
                     "over, not us", DAEMON_NAME, pid)  # fmt: skip
            return 0
        current = read_pid(rundir.pidfile)
        if current not in (None, pid) and os.path.exists(f"/proc/{current}"):
            log.info("crash standby: %s pid %d is gone but pid %d runs; exiting",
                     DAEMON_NAME, pid, current)  # fmt: skip
            return 0
    except Exception as e:
        log.error("crash standby (pid %d) gives up: %s: %s", os.getpid(), type(e).__name__, e)
        held.state()  # closes what we hold
        remove_pidfile_if_mine(pidfile)
        return 1
    finally:
        reader.close()

    t0 = time.monotonic()
    ready = prepared is not None and not held.needs_prepare()
    log.warning(
        "%s pid %d died; crash standby (pid %d) takes over with mirror %d (%s)",
        DAEMON_NAME,
        pid,
        os.getpid(),
        held.mirrors,
        f"bridges built from mirror {held.prepared}" if ready else "bridges not built yet",
    )

    importer = prepared if ready and prepared is not None else SwitchImporter(switch, on_commit)
    try:
        importer.sync_config(switch.clock() + 10.0)
        if ready:  # the bridges are built: adopt the descriptors
            delta, fds = held.takeover_delta()
            _digest, counts = importer.restore_delta(delta, fds)
        else:
            if prepared is not None:
                prepared.discard()
            state, fds = held.state()
            _digest, counts = importer.restore(state, fds, snapshot.CURRENT_VERSION, check=False)
        importer.commit()
    except Exception:
        log.critical("crash standby: the takeover failed", exc_info=True)
        importer.discard()
        return 1
    switch.takeover_report = {"crash_takeover_ms": round((time.monotonic() - t0) * 1000, 1)}
    log.info(
        "crash standby took over in %.0f ms: %s",
        (time.monotonic() - t0) * 1000,
        counts,
    )
    return switch


def _prepare(held: _Standby, importer: Any, nice: int) -> Any:
    """Build the last mirror into ready bridges at a low priority (the daemon serving
    traffic comes first); returns the importer holding them, or None if that failed
    (a takeover then restores the mirror whole). Back at ``nice`` afterwards."""
    from hitless.daemon.priority import set_child_niceness

    t0, cpu = time.monotonic(), time.process_time()
    set_child_niceness(PREPARE_NICE)
    try:
        held.prepare(importer)
    except Exception as e:
        log.warning("crash standby: could not build mirror %d: %s: %s", held.mirrors,
                    type(e).__name__, e)  # fmt: skip
        importer.discard()
        held.prepared, held.prepared_state = held.mirrors, None
        return None
    finally:
        set_child_niceness(nice)
    log.info("crash standby: mirror %d built in %.0f ms (%.0f ms of CPU)", held.mirrors,
              (time.monotonic() - t0) * 1000, (time.process_time() - cpu) * 1000)  # fmt: skip
    return importer


def _raise_priority_when_parent_dies(nice: int) -> None:
    """The daemon that started us is our parent: the kernel signals us when it dies
    (PR_SET_PDEATHSIG), and a mirror being built at a low priority (``_prepare``) goes
    on at the daemon's, so that the takeover waits for it as little as possible."""
    import ctypes

    from hitless.daemon.priority import set_child_niceness

    def raise_priority(_signum: int, _frame: Any) -> None:
        set_child_niceness(nice)

    signal.signal(signal.SIGUSR2, raise_priority)
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGUSR2, 0, 0, 0)


def standby_args(args: Any) -> list[str]:
    """The arguments a standby of this daemon is started with."""
    return [
        "--schema",
        args.schema,
        "--log-level",
        args.log_level,
        "--nice",
        str(args.nice),
        "--lease",
        str(args.lease),
    ]
