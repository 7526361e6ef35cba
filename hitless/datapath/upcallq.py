"""Upcall queues bounded per port and served round robin: the slow path's fairness.

A userspace datapath queues a packet that missed the flow table (an ``Upcall``) for
the daemon, which handles a bounded number per loop turn. With one first-in first-out
queue, a port that floods new flows (random source MACs or ports) fills it: the other
ports' misses (a victim's first SYN, an ARP reply after its MAC entry was evicted)
wait behind the whole backlog, seconds under a flood from one namespace host
(bench/flood.py measured 4.7 s), or are dropped when it is full.

``FairUpcallQueue`` keeps one queue per input port:

* each port's queue holds at most ``per_port`` upcalls and all of them together at
  most ``total``; a miss beyond either bound is dropped and counted for its port
  (``dropped``), never one of another port's;
* ``pop(n)`` serves the ports with something queued in turn, one upcall each (a
  deficit round robin whose quantum is one packet: every upcall costs the slow path
  about the same), resuming after the port it served last, so a port with one
  waiting upcall is served within one round however deep the flooder's queue is.

Compare Open vSwitch: the kernel datapath gives each port (or CPU) its own netlink
socket, whose buffer bounds that port's upcalls and whose overflow is counted as
``lost``; its userspace datapath handles misses inline in the polling thread, one
receive batch per port in turn. This is the same bound-and-turn shape in one process.

Pure: no I/O, no time. ``export()`` lists the queued upcalls in service order, so a
build with a single FIFO that adopts them still serves them fairly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from hitless.datapath.base import Upcall

__all__ = ["FairUpcallQueue", "PortQueueStats"]


@dataclass(slots=True)
class PortQueueStats:
    """One input port's upcall queue: what it holds and what happened to it."""

    queued: int = 0  # upcalls waiting now
    max_queued: int = 0  # the deepest the queue has been
    handled: int = 0  # upcalls handed to the daemon
    dropped: int = 0  # misses dropped because a bound was reached
    deferred: int = 0  # datapath turns that left the port's frames in its ring (backlog)


class FairUpcallQueue:
    """Per-port bounded upcall queues, served one upcall per port in turn."""

    __slots__ = ("per_port", "total", "_queues", "_ring", "_len", "stats")

    def __init__(self, total: int, per_port: int) -> None:
        if total < 1 or per_port < 1:
            raise ValueError(
                f"upcall queue bounds must be positive (total {total}, per port {per_port})"
            )
        self.total = total
        self.per_port = per_port
        self._queues: dict[int, deque[Upcall]] = {}
        # Ports with something queued, in service order (head is served next).
        self._ring: deque[int] = deque()
        self._len = 0
        self.stats: dict[int, PortQueueStats] = {}

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def queued(self, port: int) -> int:
        """How many of ``port``'s upcalls wait."""
        q = self._queues.get(port)
        return len(q) if q is not None else 0

    def defer(self, port: int) -> None:
        """Count a datapath turn that did not read ``port`` because of its backlog."""
        self._stats(port).deferred += 1

    def _stats(self, port: int) -> PortQueueStats:
        st = self.stats.get(port)
        if st is None:
            st = self.stats[port] = PortQueueStats()
        return st

    def push(self, upcall: Upcall, force: bool = False) -> bool:
        """Queue ``upcall``; False (and counted) if its port's queue or the whole is
        full. ``force``: queue it whatever the bounds (adopting a predecessor's)."""
        port = upcall.in_port
        q = self._queues.get(port)
        if q is None:
            q = self._queues[port] = deque()
        if not force and (len(q) >= self.per_port or self._len >= self.total):
            self._stats(port).dropped += 1
            return False
        if not q:
            self._ring.append(port)
        q.append(upcall)
        self._len += 1
        st = self._stats(port)
        n = len(q)
        st.queued = n
        if n > st.max_queued:
            st.max_queued = n
        return True

    def pop(self, max_count: int) -> list[Upcall]:
        """At most ``max_count`` upcalls, one per port in turn."""
        out: list[Upcall] = []
        ring, queues = self._ring, self._queues
        while ring and len(out) < max_count:
            port = ring.popleft()
            q = queues[port]
            out.append(q.popleft())
            st = self.stats[port]
            st.handled += 1
            st.queued = len(q)
            if q:
                ring.append(port)
        self._len -= len(out)
        return out

    def __iter__(self) -> Iterator[Upcall]:
        """Every queued upcall in the order ``pop`` would serve them (nothing removed)."""
        cursors = {p: iter(self._queues[p]) for p in self._ring}
        ring = deque(self._ring)
        while ring:
            port = ring.popleft()
            up = next(cursors[port], None)
            if up is not None:
                yield up
                ring.append(port)

    def forget(self, port: int) -> None:
        """A port went away: its queued upcalls and its counters go with it."""
        q = self._queues.pop(port, None)
        if q:
            self._len -= len(q)
            self._ring.remove(port)
        self.stats.pop(port, None)

    def clear(self) -> None:
        self._queues.clear()
        self._ring.clear()
        self._len = 0
        for st in self.stats.values():
            st.queued = 0
