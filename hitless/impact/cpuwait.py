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

The daemon is single-threaded (its main thread forwards); only that thread is read.
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

__all__ = ["Sampler", "Span", "Wait", "Waited", "pidfile_reader", "run_delay", "waited_between"]


@dataclass(frozen=True, slots=True)
class Wait:
    pid: int
    start: float  # monotonic seconds (relative ones once shifted)
    end: float
    waited: float  # seconds runnable but not running, within start..end

    def shifted(self, t0: float) -> Wait:
        return Wait(self.pid, self.start - t0, self.end - t0, self.waited)


def run_delay(pid: int) -> float | None:
    """Seconds ``pid``'s main thread has waited on a run queue (None: gone)."""
    try:
        with open(f"/proc/{pid}/schedstat", "rb") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def pidfile_reader(path: str | os.PathLike[str]) -> Callable[[], int | None]:
    p = Path(path)

    def read() -> int | None:
        try:
            return int(p.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

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

    def __init__(self, pid: Callable[[], int | None], period: float = 0.002) -> None:
        self._pid = pid
        self.period = period
        self.pids: list[int] = []
        self.seen: list[tuple[int, float]] = []  # (pid, when first read from the pidfile)
        self.realtime = False  # whether SCHED_FIFO was granted
        self._waits: list[Wait] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-wait", daemon=True)

    @property
    def waits(self) -> tuple[Wait, ...]:
        return tuple(self._waits)

    def owned(self, t0: float = 0.0) -> tuple[Span, ...]:
        """The waits of whichever process owned the switch at the time (the pid in the
        pidfile: a new process writes it as it commits), times less ``t0``."""
        seen = self.seen
        out = []
        for w in self._waits:
            owner = None
            for pid, t in seen:
                if t <= w.end:
                    owner = pid
            if owner == w.pid:
                out.append((w.start - t0, w.end - t0, w.waited))
        return tuple(out)

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
        last: dict[int, tuple[float, float]] = {}  # pid -> (time, run_delay)
        while not self._stop.is_set():
            pid = self._pid()
            if pid is not None and pid not in self.pids:
                self.pids.append(pid)
                self.seen.append((pid, time.monotonic()))
            for p in self._live(last, pid):
                now = time.monotonic()
                d = run_delay(p)
                if d is None:
                    last.pop(p, None)
                    continue
                if p in last:
                    t, before = last[p]
                    if d > before:
                        self._waits.append(Wait(p, t, now, d - before))
                last[p] = (now, d)
            time.sleep(self.period)

    @staticmethod
    def _live(last: dict[int, tuple[float, float]], pid: int | None) -> Iterator[int]:
        yield from list(last)
        if pid is not None and pid not in last:
            yield pid
