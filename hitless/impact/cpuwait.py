"""How long the switch's process waited for a CPU while it had work: the part of a
forwarding gap that a loaded scheduler, not the switch, caused.

Linux counts, per task, the time it spent runnable but not running (``run_delay``, the
second field of ``/proc/PID/schedstat``, nanoseconds). A process that sleeps (a
``blackout:<ms>`` fault, a slow ``poll``) or computes does not add to it; a process
the scheduler keeps off the CPU does. ``Sampler`` reads it for the daemon that owns a
rundir (its pidfile, read again every turn, so the new process of a handoff is picked up
as soon as it writes it) every ``period`` seconds, from a thread that asks for
``SCHED_FIFO`` so the samples land on time on a busy machine (when that is refused it
samples anyway, less precisely). The result is a tuple of ``Wait`` records: between
two samples ``start``..``end``, process ``pid`` waited ``waited`` seconds.

``waited_between(waits, pid, a, b)`` is what a bound may excuse in ``a..b``: the waits
of every sample interval that overlaps it (so up to one period too much at each end).

Who holds the datapath changes during a handoff: the old process until it freezes (the
new process's Ready), the new one from then on (it restores, commits and forwards; it
writes the pidfile only at its commit). ``watch`` names processes to sample before they
own anything (the new process of a handoff, found as a child of ``hitless upgrade``), and
``hand_over(pid, at)`` says, once the handoff reported its Ready, that ``pid`` held the
datapath from ``at``: ``owners()`` is then the timeline of holders, which ``owned`` and
``ran_by_owner`` follow instant by instant (without ``hand_over``: the pidfile's writes).

The daemon is single-threaded (its main thread forwards); only that thread is read.
``also``: pids of other processes on the traffic's path (a test host's VLAN relay, which
sits between the sender's ``sendto`` and the switch), whose waits are excused as well:
per sampling turn the longest of the owner's and theirs, never their sum.
Must not import anything outside the standard library and this package.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Sampler",
    "Span",
    "Wait",
    "Waited",
    "children_reader",
    "pidfile_reader",
    "run_delay",
    "takeover_reader",
    "waited_between",
]


@dataclass(frozen=True, slots=True)
class Wait:
    pid: int
    start: float  # monotonic seconds (relative ones once shifted)
    end: float
    waited: float  # seconds runnable but not running, within start..end
    turn: int = 0  # the sampling turn (every process is read once per turn)

    def shifted(self, t0: float) -> Wait:
        return Wait(self.pid, self.start - t0, self.end - t0, self.waited, self.turn)


def run_delay(pid: int) -> float | None:
    """Seconds ``pid``'s main thread has waited on a run queue (None: gone)."""
    got = schedstat(pid)
    return None if got is None else got[1]


def schedstat(pid: int) -> tuple[float, float] | None:
    """Seconds ``pid``'s main thread has run on a CPU and waited on a run queue (None:
    gone)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            ran, waited = f.read().split()[:2]
            return int(ran) / 1e9, int(waited) / 1e9
    except (OSError, ValueError):
        return None


def pidfile_reader(path: str | os.PathLike[str]) -> Callable[[], int | None]:
    p = Path(path)

    def read() -> int | None:
        try:
            return int(p.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    return read


def children_reader(parent: Callable[[], int | None]) -> Callable[[], list[int]]:
    """The children of the process ``parent()`` names (none while it names none): the
    new process of a handoff is a child of the ``hitless upgrade`` that started it."""

    def read() -> list[int]:
        pid = parent()
        if pid is None:
            return []
        try:
            with open(f"/proc/{pid}/task/{pid}/children", "rb") as f:
                return [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            return []

    return read


def takeover_reader(
    rundir: str | os.PathLike[str], every: float = 0.05
) -> Callable[[], tuple[int, ...]]:
    """For ``watch`` when the ``hitless upgrade`` process is not at hand (run through
    ``subprocess.run``): the pids of the ``hitless-vswitchd ... --rundir RUNDIR ...
    --takeover`` processes (a handoff's new process, of any build). ``/proc`` is listed
    at most every ``every`` seconds (the last answer otherwise); each process's command
    line is read once, the first time it is listed."""
    want = os.fsencode(os.fspath(rundir))
    verdict: dict[int, bool] = {}
    listed = [float("-inf")]  # when /proc was last listed
    found: list[tuple[int, ...]] = [()]  # what it gave

    def scan() -> tuple[int, ...]:
        try:
            pids = [int(n) for n in os.listdir("/proc") if n.isdigit()]
        except OSError:
            return ()
        live = set(pids)
        for gone in [p for p in verdict if p not in live]:
            del verdict[gone]
        for p in pids:
            if p not in verdict:
                try:
                    with open(f"/proc/{p}/cmdline", "rb") as f:
                        args = f.read().split(b"\0")
                except OSError:
                    continue
                verdict[p] = (
                    b"--takeover" in args
                    and any(a == b"--rundir" and b == want for a, b in itertools.pairwise(args))
                    and any(a.endswith(b"hitless-vswitchd") for a in args)
                )
        return tuple(p for p, yes in verdict.items() if yes)

    def read() -> tuple[int, ...]:
        now = time.monotonic()
        if now - listed[0] >= every:
            listed[0], found[0] = now, scan()
        return found[0]

    return read


def waited_between(waits: Iterable[Wait], pid: int, a: float, b: float) -> float:
    return sum(w.waited for w in waits if w.pid == pid and w.end > a and w.start < b)


Span = tuple[float, float, float]  # start, end, seconds waited


class Waited:
    """``waited(a, b)``: seconds the forwarding process waited for a CPU in the sample
    intervals that overlap a..b; built from ``Span``s in time order (one process's
    samples at a time do not overlap)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self.spans = tuple(sorted(spans))
        self._starts = [s for s, _e, _w in self.spans]
        self._ends = [e for _s, e, _w in self.spans]
        self._sums = [0.0, *itertools.accumulate(w for _s, _e, w in self.spans)]

    def __call__(self, a: float, b: float) -> float:
        i = bisect.bisect_right(self._ends, a)
        j = bisect.bisect_left(self._starts, b)
        return self._sums[j] - self._sums[i] if j > i else 0.0


class Sampler:
    """``with Sampler(pidfile_reader(rundir / "hitless-vswitchd.pid")) as s: ...``;
    then ``s.waits`` (absolute monotonic times) and ``s.pids`` (every pid seen, in the
    order seen)."""

    def __init__(
        self,
        pid: Callable[[], int | None],
        period: float = 0.002,
        also: Iterable[int] = (),
        watch: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        self._pid = pid
        self._watch = watch
        # Processes on the traffic's path that are not the switch (a test host's frame
        # relay): their waits for a CPU are excused too, whoever owns the switch.
        self.also = tuple(also)
        self.period = period
        self.pids: list[int] = []
        self.seen: list[tuple[int, float]] = []  # (pid, when first read from the pidfile)
        self.handovers: list[tuple[int, float]] = []  # (pid, holds the datapath from)
        self.watched: list[int] = []  # every pid ``watch`` named, in the order named
        self.realtime = False  # whether SCHED_FIFO was granted
        self._waits: list[Wait] = []
        # (pid, start, end, seconds on a CPU): what the processes did besides waiting
        self._runs: list[tuple[int, float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-wait", daemon=True)

    @property
    def waits(self) -> tuple[Wait, ...]:
        return tuple(self._waits)

    def hand_over(self, pid: int, at: float) -> None:
        """``pid`` held the datapath from ``at`` (absolute monotonic): a handoff's new
        process from its Ready, when the old one froze."""
        self.handovers.append((pid, at))

    def owners(self) -> list[tuple[int, float]]:
        """Who held the datapath, as (pid, since) in time order: each pid from the
        earliest of its ``hand_over`` and its first reading from the pidfile."""
        since: dict[int, float] = {}
        for pid, t in [*self.seen, *self.handovers]:
            since[pid] = min(t, since.get(pid, t))
        return sorted(since.items(), key=lambda x: x[1])

    def owner_at(self, t: float) -> int | None:
        """The pid holding the datapath at ``t`` (the first one seen, before anyone)."""
        timeline = self.owners()
        owner = timeline[0][0] if timeline else None
        for pid, since in timeline:
            if since <= t:
                owner = pid
        return owner

    def ran_by_owner(self, a: float, b: float) -> list[tuple[int, float, float, float]]:
        """a..b (absolute) split where the datapath changed hands: (pid, start, end,
        seconds that pid ran on a CPU in the sample intervals overlapping its part)."""
        cuts = [t for _pid, t in self.owners() if a < t < b]
        out = []
        for s, e in zip([a, *cuts], [*cuts, b], strict=True):
            pid = self.owner_at(s)
            if pid is not None:
                out.append((pid, s, e, self.ran_between(pid, s, e)))
        return out

    def owned(self, t0: float = 0.0) -> tuple[Span, ...]:
        """The waits of whichever process held the datapath at the time (``owners``: the
        pid in the pidfile, which a new process writes as it commits, or from its Ready
        once ``hand_over`` said so), times less ``t0``. With
        ``also``, per sampling turn the longest wait of the owner and those processes:
        the most any one of them can have held a frame in that turn (their waits often
        overlap, and a sum would excuse a stall of the switch that a relay's wait only
        ran beside)."""
        timeline = self.owners()
        turns: dict[int, tuple[float, float, float]] = {}
        for w in self._waits:
            owner = None
            for pid, t in timeline:
                if t <= w.end:
                    owner = pid
            if owner == w.pid or w.pid in self.also:
                s0, e0, w0 = turns.get(w.turn, (w.start, w.end, 0.0))
                turns[w.turn] = (min(s0, w.start), max(e0, w.end), max(w0, w.waited))
        return tuple((s - t0, e - t0, w) for s, e, w in turns.values())

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError, PermissionError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            self.realtime = True
        last: dict[int, tuple[float, float, float]] = {}  # pid -> (time, run_delay, ran)
        turn = 0
        while not self._stop.is_set():
            turn += 1
            pid = self._pid()
            if pid is not None and pid not in self.pids:
                self.pids.append(pid)
                self.seen.append((pid, time.monotonic()))
            watched = tuple(self._watch()) if self._watch is not None else ()
            self.watched += [p for p in watched if p not in self.watched]
            for p in self._live(last, pid, self.also + watched):
                now = time.monotonic()
                got = schedstat(p)
                if got is None:
                    last.pop(p, None)
                    continue
                ran, d = got
                if p in last:
                    t, before, ran0 = last[p]
                    if d > before:
                        self._waits.append(Wait(p, t, now, d - before, turn))
                    if ran > ran0:
                        self._runs.append((p, t, now, ran - ran0))
                last[p] = (now, d, ran)
            time.sleep(self.period)

    def ran_between(self, pid: int, a: float, b: float) -> float:
        """Seconds ``pid`` ran on a CPU in the sample intervals that overlap a..b
        (absolute monotonic times)."""
        return sum(r for p, s, e, r in self._runs if p == pid and e > a and s < b)

    @staticmethod
    def _live(
        last: dict[int, tuple[float, float, float]], pid: int | None, also: tuple[int, ...]
    ) -> Iterator[int]:
        yield from list(last)
        for p in (pid, *also):
            if p is not None and p not in last:
                yield p
