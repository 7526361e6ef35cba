"""Pure analysis of the traffic agents' records: what an operation did to each class.

Input: the JSON-line records the agents wrote (``hitless.impact.agents``, already
parsed into dicts) and the operation's ``Window`` (absolute ``time.monotonic()``
seconds). Output: one ``ClassStats`` per traffic class, every time in it relative to
the operation's start. No I/O and no clock here: the same records always give the
same numbers, so everything is unit-tested on synthetic records.

Definitions shared by all classes:

* a unit (datagram, message, connection attempt, probe) is *disrupted* when it was
  lost or failed, or arrived / completed more than ``late_after`` seconds late;
* each unit owns the time slot from its own send time to the next unit's send time;
  ``disrupted`` is the total length of the slots of disrupted units (for a 1,000
  packets/s stream that lost 300 packets in a row: 0.3 s), and ``disruptions`` lists
  those slots merged into intervals;
* ``longest_gap`` is the longest time the receiving side saw nothing arrive, counted
  from the first send to the last send (or the last arrival, if later). For a UDP
  stream an arrival is the kernel's receive time (``tk``, SO_TIMESTAMPNS) when the
  receiver recorded one, not the moment the receiving process got to read it, and a
  gap starts only once a datagram was due: from the send time of the oldest datagram
  not arrived yet. So a receiver or a sender that the machine did not run for a while
  (both are Python processes on a shared machine) is not counted as the switch's gap;
* ``gap_net`` is the longest gap with the machine's own stalls taken out: the times a
  CPU ran nothing at all, not even a real-time probe pinned to it (``cpu_stalls``,
  from the ``cpu-probe`` agents; on a virtual machine, a vCPU the host did not run).
  Nothing in the guest could forward then, Open vSwitch included.

Must not import anything outside the standard library and this package.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from typing import Any

__all__ = [
    "ClassStats",
    "ImpactResult",
    "Phase",
    "Window",
    "broadcast",
    "controller",
    "cpu_stalls",
    "merge_intervals",
    "neighbour",
    "net_gap",
    "tcp_connect",
    "tcp_push",
    "tcp_stream",
    "udp_stream",
]

Record = Mapping[str, Any]
Interval = tuple[float, float]

# Kinds of traffic class, in the order reports list them.
KINDS = ("udp", "openflow", "controller", "tcp-stream", "tcp-connect", "arp", "nd", "broadcast")
# The stateful class's (hitless.impact.stateful): the same measures as udp, tcp-stream and
# tcp-connect, through a connection-tracking firewall and DNAT.
STATEFUL_KINDS = ("ct-udp", "ct-tcp-stream", "ct-tcp-connect")


@dataclass(frozen=True, slots=True)
class Phase:
    """A named part of the operation, absolute monotonic seconds (or relative ones
    inside an ``ImpactResult``)."""

    name: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Window:
    """When the operation ran (absolute monotonic seconds), with optional phases."""

    start: float
    end: float
    phases: tuple[Phase, ...] = ()

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"operation window ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class ClassStats:
    """What one traffic class saw. Times are seconds relative to the operation start.

    Field meaning per ``kind``:

    ============  =============  ==================  ============================
    kind          sent           received            lost
    ============  =============  ==================  ============================
    udp,          datagrams      unique datagrams    datagrams never received
    openflow,
    ct-udp
    broadcast     datagrams x    unique datagrams,   sum over receivers
                  receivers      all receivers
    tcp-stream    messages       messages echoed     messages never echoed
    ct-tcp-stream messages       messages read       messages never read
    tcp-connect,  attempts       connected           failed attempts
    ct-tcp-connect
    arp / nd      probes         answered            failed probes
    controller    echo requests  echo replies        echo requests unanswered
    appctl        requests       answered            failed requests
    ============  =============  ==================  ============================

    ``worst_latency`` / ``median_latency``: connect time (tcp-connect), flush to reply
    (arp / nd), one-way delay (udp, openflow, broadcast), send to echo (tcp-stream).
    ``outcome`` is set for tcp-stream and controller only: ``survived``, or how the
    connection ended (``reset``, ``closed``, ``timeout``, ``stalled``,
    ``not-connected``...; controller: ``N disconnects, reconnected after X ms``).
    ``failures`` counts failed units by reason. ``before_op`` counts disrupted units
    sent more than the analysis margin before the operation began: noise the
    operation cannot have caused (after it, recovery may legitimately take a while). ``arrivals`` (arrival or success times) and
    ``failed_at`` (send times of failed units) feed the timeline plot.
    Paced datagram classes (udp, openflow, broadcast) also list, longer than
    ``HELD_AFTER``, what they were ``held``: times the switch held a datagram and delivered
    nothing of the stream (from when the datagram was surely with the switch, its
    sender's ``sendto`` having returned, or from the previous delivery if later, to its
    delivery), and ``slow`` datagrams (sent .. delivered): what a bound excuses part of
    (``hitless.impact.bounds``). Round trips (tcp-stream, tcp-connect, arp / nd,
    appctl) list as ``slow`` those that took longer than their class's late threshold
    (sent .. echoed, connected or answered). They are in the JSON form with the series.
    """

    name: str
    kind: str
    sent: int
    received: int
    lost: int
    duplicates: int = 0
    reordered: int = 0
    late: int = 0
    longest_gap: float = 0.0
    disrupted: float = 0.0
    worst_latency: float | None = None
    median_latency: float | None = None
    outcome: str | None = None
    failures: Mapping[str, int] = field(default_factory=dict)
    before_op: int = 0
    disruptions: tuple[Interval, ...] = ()
    arrivals: tuple[float, ...] = ()
    failed_at: tuple[float, ...] = ()
    gap_net: float | None = None  # longest_gap without the machine's stalls (see above)
    held: tuple[Interval, ...] = ()
    slow: tuple[Interval, ...] = ()
    held_listed: bool = False  # held and slow were computed (not from JSON)

    @property
    def clean(self) -> bool:
        """No unit lost, late, duplicated or reordered and the connection (if any) survived."""
        return (
            self.lost == 0
            and self.late == 0
            and self.duplicates == 0
            and self.reordered == 0
            and self.outcome in (None, "survived")
        )

    def summary(self) -> dict[str, Any]:
        """The numbers without the per-unit series (for tables, JSON and docs)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
            "late": self.late,
            "longest_gap": self.longest_gap,
            "gap_net": self.gap_net,
            "disrupted": self.disrupted,
            "worst_latency": self.worst_latency,
            "median_latency": self.median_latency,
            "outcome": self.outcome,
            "failures": dict(self.failures),
            "before_op": self.before_op,
            "disruptions": [list(iv) for iv in self.disruptions],
        }


@dataclass(frozen=True, slots=True)
class ImpactResult:
    """One operation measured: its window (relative to its own start, so
    ``window.start == 0``) and the statistics of every traffic class."""

    operation: str
    window: Window
    classes: tuple[ClassStats, ...]
    duration: float  # seconds of traffic
    traffic_start: float  # relative to the operation start (negative: before it)
    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # when a CPU of the machine ran nothing (relative, merged; see the module doc)
    cpu_stalls: tuple[Interval, ...] = ()
    # (start, end, seconds): how long the switch's forwarding process waited for a CPU
    # in each interval (relative; ``hitless.impact.cpuwait``); in the JSON form with series.
    cpu_waits: tuple[tuple[float, float, float], ...] = ()
    # when a fault injected on purpose held the traffic (relative; a test's
    # ``blackout:<ms>``): nothing inside is excused (``hitless.impact.bounds``)
    fault_windows: tuple[Interval, ...] = ()

    @property
    def clean(self) -> bool:
        return all(c.clean for c in self.classes)

    def by_name(self, name: str) -> ClassStats:
        for c in self.classes:
            if c.name == name:
                return c
        raise KeyError(f"no traffic class {name!r} in this result")

    def to_json(self, series: bool = False) -> dict[str, Any]:
        """A JSON-able dict; with ``series`` also the arrival / failure times that the
        timeline plot needs (``from_json`` reads both forms)."""
        classes = []
        for c in self.classes:
            d = c.summary()
            if series:
                d["arrivals"] = list(c.arrivals)
                d["failed_at"] = list(c.failed_at)
                if c.held_listed:
                    d["held"] = [list(iv) for iv in c.held]
                    d["slow"] = [list(iv) for iv in c.slow]
            classes.append(d)
        return {
            "operation": self.operation,
            "window": {
                "start": self.window.start,
                "end": self.window.end,
                "phases": [
                    {"name": p.name, "start": p.start, "end": p.end} for p in self.window.phases
                ],
            },
            "duration": self.duration,
            "traffic_start": self.traffic_start,
            "settings": dict(self.settings),
            "notes": list(self.notes),
            "cpu_stalls": [list(iv) for iv in self.cpu_stalls],
            **({"fault_windows": [list(iv) for iv in self.fault_windows]} if self.fault_windows else {}),
            "clean": self.clean,
            "classes": classes,
            **({"cpu_waits": [list(w) for w in self.cpu_waits]} if series else {}),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ImpactResult:
        w = d["window"]
        window = Window(
            float(w["start"]),
            float(w["end"]),
            tuple(Phase(p["name"], float(p["start"]), float(p["end"])) for p in w["phases"]),
        )
        classes = []
        for c in d["classes"]:
            classes.append(
                ClassStats(
                    name=c["name"],
                    kind=c["kind"],
                    sent=int(c["sent"]),
                    received=int(c["received"]),
                    lost=int(c["lost"]),
                    duplicates=int(c.get("duplicates", 0)),
                    reordered=int(c.get("reordered", 0)),
                    late=int(c.get("late", 0)),
                    longest_gap=float(c.get("longest_gap", 0.0)),
                    gap_net=None if c.get("gap_net") is None else float(c["gap_net"]),
                    disrupted=float(c.get("disrupted", 0.0)),
                    worst_latency=c.get("worst_latency"),
                    median_latency=c.get("median_latency"),
                    outcome=c.get("outcome"),
                    failures=dict(c.get("failures", {})),
                    before_op=int(c.get("before_op", 0)),
                    disruptions=tuple((float(a), float(b)) for a, b in c.get("disruptions", [])),
                    arrivals=tuple(float(x) for x in c.get("arrivals", [])),
                    failed_at=tuple(float(x) for x in c.get("failed_at", [])),
                    held=tuple((float(a), float(b)) for a, b in c.get("held", [])),
                    slow=tuple((float(a), float(b)) for a, b in c.get("slow", [])),
                    held_listed="held" in c,
                )
            )
        return cls(
            operation=d["operation"],
            window=window,
            classes=tuple(classes),
            duration=float(d["duration"]),
            traffic_start=float(d["traffic_start"]),
            settings=dict(d.get("settings", {})),
            notes=tuple(d.get("notes", ())),
            cpu_stalls=tuple((float(a), float(b)) for a, b in d.get("cpu_stalls", [])),
            cpu_waits=tuple((float(a), float(b), float(w)) for a, b, w in d.get("cpu_waits", [])),
            fault_windows=tuple((float(a), float(b)) for a, b in d.get("fault_windows", [])),
        )


def relative(window: Window) -> Window:
    """The window with every time relative to its start."""
    t0 = window.start
    return Window(
        0.0,
        window.end - t0,
        tuple(Phase(p.name, p.start - t0, p.end - t0) for p in window.phases),
    )


# ---------------------------------------------------------------- helpers


def merge_intervals(intervals: Iterable[Interval], slack: float = 1e-9) -> tuple[Interval, ...]:
    """Sorted union of intervals; ones that touch (within ``slack``) are joined."""
    out: list[list[float]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + slack:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _slots(times: Sequence[float]) -> list[float]:
    """Slot length of each unit (sorted by send time): the time to the next unit's
    send, the last one getting the median slot (0 when there is only one unit)."""
    n = len(times)
    if n == 0:
        return []
    diffs = [times[i + 1] - times[i] for i in range(n - 1)]
    last = statistics.median(diffs) if diffs else 0.0
    return [*diffs, last]


def _longest_gap(first_send: float, last_send: float, arrivals: Sequence[float]) -> float:
    points = sorted(arrivals)
    points = [first_send, *points] if not points or first_send < points[0] else points
    if last_send > points[-1]:
        points.append(last_send)
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)


def _overlap(a: float, b: float, stalls: Sequence[Interval]) -> float:
    """How much of [a, b] the (merged) ``stalls`` cover."""
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in stalls if x < b and y > a)


def _owed_gaps(
    sends: Sequence[float], arrived: Sequence[float], points: Sequence[float]
) -> list[Interval]:
    """The intervals without an arrival while a datagram was due. ``sends`` in send
    order, ``arrived`` the first arrival of each (``inf``: lost), ``points`` every
    arrival (sorted). After an arrival at ``a`` the switch owes nothing until the oldest
    datagram not arrived by ``a`` was sent: a sender that was not running sent nothing
    to forward."""
    if not sends:
        return []
    high = list(accumulate(arrived, max))  # first k with high[k] > a: oldest not arrived
    out: list[Interval] = []
    if not points:
        return [(sends[0], sends[-1])]
    out.append((sends[0], points[0]))
    for a, b in zip(points, [*points[1:], sends[-1]], strict=True):
        k = bisect_right(high, a)
        if k < len(sends):
            start = max(a, sends[k])
            if b > start:
                out.append((start, b))
    return out


def net_gap(arrivals: Sequence[float], stalls: Sequence[Interval]) -> float:
    """The longest time between two consecutive ``arrivals`` (sorted) less the part the
    machine's ``stalls`` cover (same time base)."""
    return max(
        (b - a - _overlap(a, b, stalls) for a, b in zip(arrivals, arrivals[1:], strict=False)),
        default=0.0,
    )


def cpu_stalls(records: Iterable[Sequence[Record]]) -> tuple[Interval, ...]:
    """The machine's stalls (absolute, merged) from the ``cpu-probe`` agents' records."""
    found = [
        (float(r["from"]), float(r["t"]))
        for recs in records
        for r in recs
        if r.get("ev") == "stall"
    ]
    return merge_intervals(sorted(found))
HELD_AFTER = 0.01  # seconds: shorter holds and delays are not listed


def _held(
    sent: Mapping[int, tuple[float, float]], arrivals: Sequence[tuple[int, float]], t0: float
) -> tuple[tuple[Interval, ...], tuple[Interval, ...]]:
    """``held`` and ``slow`` (see ``ClassStats``) of one stream: ``sent`` maps a
    sequence number to (send time, time its ``sendto`` returned); ``arrivals`` are
    (sequence number, arrival time) of first copies in arrival order."""
    held: list[Interval] = []
    slow: list[Interval] = []
    prev: float | None = None
    for seq, r in arrivals:
        if seq not in sent:
            continue
        _s, u = sent[seq]
        if r - u > HELD_AFTER:  # not the sender's own wait between its clock and sendto
            slow.append((u - t0, r - t0))
        start = u if prev is None else max(prev, u)
        if r - start > HELD_AFTER:
            held.append((start - t0, r - t0))
        prev = r if prev is None else max(prev, r)
    return tuple(held), tuple(slow)


def _before(t: float, window: Window, margin: float) -> bool:
    return t < window.start - margin


def _latency(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return max(values), statistics.median(values)


def _disruption(
    units: Sequence[tuple[float, bool]], window: Window, margin: float
) -> tuple[float, tuple[Interval, ...], int]:
    """units: (send time, disrupted?) sorted by send time. Returns total disrupted
    time, merged intervals relative to the window start, and how many disrupted
    units were sent before the operation (by more than ``margin``)."""
    times = [t for t, _ in units]
    slots = _slots(times)
    t0 = window.start
    bad = [(t - t0, t - t0 + s) for (t, d), s in zip(units, slots, strict=True) if d]
    merged = merge_intervals(bad)
    before = sum(1 for t, d in units if d and _before(t, window, margin))
    return sum(b - a for a, b in merged), merged, before


# ---------------------------------------------------------------- classes


def udp_stream(
    name: str,
    tx: Sequence[Record],
    rx: Sequence[Record],
    window: Window,
    *,
    stream: int | None = None,
    late_after: float = 0.05,
    margin: float = 0.5,
    kind: str = "udp",
    stalls: Sequence[Interval] = (),
) -> ClassStats:
    """A sequenced datagram stream from ``udp-send`` (tx) and ``udp-recv`` (rx) records.
    ``stream`` selects one stream id among the receiver's records; ``stalls`` are the
    machine's (absolute, merged: ``cpu_stalls``), for ``gap_net``."""
    sent = {int(r["seq"]): float(r["t"]) for r in tx if r.get("ev") == "tx"}
    send_errors = Counter(str(r["err"]) for r in tx if r.get("ev") == "tx" and "err" in r)
    arrivals = sorted(
        (
            (float(r.get("tk", r["t"])), r)  # the kernel's receive time when recorded
            for r in rx
            if r.get("ev") == "rx" and (stream is None or int(r["stream"]) == stream)
        ),
        key=lambda x: x[0],
    )
    handed = {
        int(r["seq"]): (float(r["t"]), float(r.get("u", r["t"])))
        for r in tx
        if r.get("ev") == "tx" and "err" not in r
    }
    first: dict[int, float] = {}  # seq -> one-way delay of its first copy
    firsts: list[tuple[int, float]] = []
    duplicates = reordered = 0
    highest = -1
    for t, r in arrivals:
        seq = int(r["seq"])
        if seq in first:
            duplicates += 1
            continue
        first[seq] = t - float(r["ts"])
        firsts.append((seq, t))
        if seq < highest:
            reordered += 1
        highest = max(highest, seq)
    order = sorted(sent, key=lambda s: sent[s])
    delays = [first[s] for s in order if s in first]
    lost = sum(1 for s in order if s not in first)
    late = sum(1 for s in order if s in first and first[s] > late_after)
    units = [(sent[s], s not in first or first[s] > late_after) for s in order]
    disrupted, intervals, before = _disruption(units, window, margin)
    t0 = window.start
    owed = _owed_gaps(
        [sent[s] for s in order],
        [sent[s] + first[s] if s in first else float("inf") for s in order],
        [t for t, _ in arrivals],
    )
    gap = max((b - a for a, b in owed), default=0.0)
    net = max((b - a - _overlap(a, b, stalls) for a, b in owed), default=0.0)
    worst, median = _latency(delays)
    held, slow = _held(handed, firsts, t0)
    failures: dict[str, int] = {}
    if lost:
        failures["lost"] = lost - sum(send_errors.values())
        failures.update(send_errors)
        failures = {k: v for k, v in failures.items() if v}
    return ClassStats(
        name=name,
        kind=kind,
        sent=len(sent),
        received=sum(1 for s in first if s in sent),
        lost=lost,
        duplicates=duplicates,
        reordered=reordered,
        late=late,
        longest_gap=gap,
        disrupted=disrupted,
        worst_latency=worst,
        median_latency=median,
        failures=failures,
        before_op=before,
        disruptions=intervals,
        arrivals=tuple(t - t0 for t, _ in arrivals),
        failed_at=tuple(sent[s] - t0 for s in order if s not in first),
        gap_net=net,
        held=held,
        slow=slow,
        held_listed=True,
    )


def broadcast(
    name: str,
    tx: Sequence[Record],
    rx_by_receiver: Mapping[str, Sequence[Record]],
    window: Window,
    *,
    late_after: float = 0.05,
    margin: float = 0.5,
) -> ClassStats:
    """One broadcast sender, several receivers: each receiver is a stream of its own;
    counts add up, gaps and latencies take the worst, disruptions are the union."""
    per = [
        udp_stream(f"{name} {rcv}", tx, rx, window, late_after=late_after, margin=margin)
        for rcv, rx in sorted(rx_by_receiver.items())
    ]
    if not per:
        return ClassStats(name=name, kind="broadcast", sent=0, received=0, lost=0)
    failures: Counter[str] = Counter()
    for p in per:
        failures.update(p.failures)
    merged = merge_intervals(iv for p in per for iv in p.disruptions)
    worst = [p.worst_latency for p in per if p.worst_latency is not None]
    medians = [p.median_latency for p in per if p.median_latency is not None]
    return ClassStats(
        name=name,
        kind="broadcast",
        sent=sum(p.sent for p in per),
        received=sum(p.received for p in per),
        lost=sum(p.lost for p in per),
        duplicates=sum(p.duplicates for p in per),
        reordered=sum(p.reordered for p in per),
        late=sum(p.late for p in per),
        longest_gap=max(p.longest_gap for p in per),
        disrupted=sum(b - a for a, b in merged),
        worst_latency=max(worst) if worst else None,
        median_latency=statistics.median(medians) if medians else None,
        failures=dict(failures),
        before_op=sum(p.before_op for p in per),
        disruptions=merged,
        arrivals=tuple(sorted(t for p in per for t in p.arrivals)),
        failed_at=tuple(sorted(t for p in per for t in p.failed_at)),
        held=tuple(iv for p in per for iv in p.held),
        slow=tuple(iv for p in per for iv in p.slow),
        held_listed=all(p.held_listed for p in per),
    )


def tcp_stream(
    name: str,
    client: Sequence[Record],
    server: Sequence[Record],
    window: Window,
    *,
    stall_after: float = 0.05,
    margin: float = 0.5,
) -> ClassStats:
    """The long-lived connection from ``tcp-stream-client`` and ``-server`` records.

    ``longest_gap`` is the longest stall: the longest time without progress in
    either direction (between arrivals at the server, and between echoes at the
    client). Messages echoed later than ``stall_after`` after being sent are late;
    ``disruptions`` are the periods of late or never echoed messages."""
    t0 = window.start
    tx = {int(r["seq"]): float(r["t"]) for r in client if r.get("ev") == "tx"}
    echo: dict[int, float] = {}
    echo_times: list[float] = []
    for r in client:
        if r.get("ev") == "echo":
            echo.setdefault(int(r["seq"]), float(r["t"]))
            echo_times.append(float(r["t"]))
    server_times = [float(r["t"]) for r in server if r.get("ev") == "rx"]
    errors = [r for r in client if r.get("ev") == "error"] + [
        r for r in server if r.get("ev") == "error"
    ]
    connected = any(r.get("ev") == "connected" for r in client)
    if not connected:
        outcome = "not-connected"
    elif errors:
        outcome = str(min(errors, key=lambda r: float(r["t"]))["kind"])
    else:
        outcome = "survived"
    order = sorted(tx, key=lambda s: tx[s])
    rtts = [echo[s] - tx[s] for s in order if s in echo]
    units = [(tx[s], s not in echo or echo[s] - tx[s] > stall_after) for s in order]
    disrupted, intervals, before = _disruption(units, window, margin)
    gap = 0.0
    if order:
        first, last = tx[order[0]], tx[order[-1]]
        gap = max(_longest_gap(first, last, echo_times), _longest_gap(first, last, server_times))
    worst, median = _latency(rtts)
    lost = sum(1 for s in order if s not in echo)
    failures = {outcome: 1} if outcome != "survived" else {}
    if lost:
        failures["unechoed"] = lost
    return ClassStats(
        name=name,
        kind="tcp-stream",
        sent=len(tx),
        received=sum(1 for s in echo if s in tx),
        lost=lost,
        late=sum(1 for s in order if s in echo and echo[s] - tx[s] > stall_after),
        longest_gap=gap,
        disrupted=disrupted,
        worst_latency=worst,
        median_latency=median,
        outcome=outcome,
        failures=failures,
        before_op=before,
        disruptions=intervals,
        arrivals=tuple(t - t0 for t in sorted(server_times)),
        failed_at=tuple(
            [tx[s] - t0 for s in order if s not in echo] + [float(r["t"]) - t0 for r in errors]
        ),
        slow=tuple(
            (tx[s] - t0, echo[s] - t0) for s in order if s in echo and echo[s] - tx[s] > stall_after
        ),
        held_listed=True,
    )


def tcp_push(
    name: str,
    sender: Sequence[Record],
    receiver: Sequence[Record],
    window: Window,
    *,
    late_after: float = 0.05,
    margin: float = 0.5,
    kind: str = "ct-tcp-stream",
    stalls: Sequence[Interval] = (),
) -> ClassStats:
    """A ``tcp-push`` connection: the sender's messages (``tx``) against what the
    opener read (``rx``), measured as a paced stream (``udp_stream``: lost, longest gap,
    one-way delay, holds), with ``outcome``: ``survived`` when the opener read every
    message and the sender's close, else the first error (``reset``, ``timeout``...),
    ``stalled`` when the stream stopped with the connection still open, or
    ``not-connected``."""
    stats = udp_stream(name, sender, receiver, window, late_after=late_after, margin=margin,
                       kind=kind, stalls=stalls)  # fmt: skip
    errors = sorted(
        (r for r in (*sender, *receiver) if r.get("ev") == "error"), key=lambda r: float(r["t"])
    )
    ends = {str(r.get("state")) for r in (*sender, *receiver) if r.get("ev") == "end"}
    if not any(r.get("ev") == "connected" for r in receiver):
        outcome = "not-connected"
    elif errors:
        outcome = str(errors[0]["kind"])
    elif stats.lost or "closed-by-peer" not in ends:
        outcome = "stalled"
    elif "closed" not in ends:
        outcome = next(iter(sorted(ends - {"closed-by-peer"})), "stalled")
    else:
        outcome = "survived"
    failures = dict(stats.failures)
    if outcome != "survived":
        failures[outcome] = 1
    return replace(stats, outcome=outcome, failures=failures)


def _attempts(
    name: str,
    kind: str,
    records: Sequence[Record],
    ev: str,
    window: Window,
    late_after: float,
    margin: float,
) -> ClassStats:
    t0 = window.start
    att = sorted((r for r in records if r.get("ev") == ev), key=lambda r: float(r["t0"]))
    ok = [r for r in att if r["result"] == "ok" and r.get("t") is not None]
    lat = [float(r["t"]) - float(r["t0"]) for r in ok]
    failures = Counter(str(r["result"]) for r in att if r["result"] != "ok")
    units = [
        (
            float(r["t0"]),
            r["result"] != "ok"
            or r.get("t") is None
            or float(r["t"]) - float(r["t0"]) > late_after,
        )
        for r in att
    ]
    disrupted, intervals, before = _disruption(units, window, margin)
    worst, median = _latency(lat)
    gap = 0.0
    if att:
        gap = _longest_gap(float(att[0]["t0"]), float(att[-1]["t0"]), [float(r["t"]) for r in ok])
    return ClassStats(
        name=name,
        kind=kind,
        sent=len(att),
        received=len(ok),
        lost=len(att) - len(ok),
        late=sum(1 for x in lat if x > late_after),
        longest_gap=gap,
        disrupted=disrupted,
        worst_latency=worst,
        median_latency=median,
        failures=dict(failures),
        before_op=before,
        disruptions=intervals,
        arrivals=tuple(sorted(float(r["t"]) - t0 for r in ok)),
        failed_at=tuple(float(r["t0"]) - t0 for r in att if r["result"] != "ok"),
        slow=tuple(
            (float(r["t0"]) - t0, float(r["t"]) - t0)
            for r in ok
            if float(r["t"]) - float(r["t0"]) > late_after
        ),
        held_listed=True,
    )


def tcp_connect(
    name: str,
    records: Sequence[Record],
    window: Window,
    *,
    late_after: float = 0.05,
    margin: float = 0.5,
    kind: str = "tcp-connect",
) -> ClassStats:
    """New connections from ``tcp-connect`` records: a connection that took longer
    than ``late_after`` to establish is late (it needed a SYN retransmission, or it
    waited for the switch), one that did not establish has failed."""
    return _attempts(name, kind, records, "conn", window, late_after, margin)


def appctl(
    name: str,
    records: Sequence[Record],
    window: Window,
    *,
    late_after: float = 0.05,
    margin: float = 0.5,
) -> ClassStats:
    """``ovs-appctl version`` probes from ``appctl-probe`` records. ``worst_latency`` is
    the longest any request waited for its answer; ``longest_gap`` the longest time
    without an answer to anyone (what a management tool polling the switch sees)."""
    return _attempts(name, "appctl", records, "probe", window, late_after, margin)


def neighbour(
    name: str,
    records: Sequence[Record],
    window: Window,
    *,
    late_after: float = 0.05,
    margin: float = 0.5,
) -> ClassStats:
    """Neighbour resolution probes from ``neigh-probe`` records (ARP for family 4,
    ND for family 6): flush, then one datagram's round trip through the switch."""
    fams = {int(r.get("family", 4)) for r in records if r.get("ev") == "probe"}
    kind = "nd" if fams == {6} else "arp"
    return _attempts(name, kind, records, "probe", window, late_after, margin)


def _fmt_ms(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x >= 0.01 else f"{x * 1000:.1f} ms"


def controller(
    name: str,
    records: Sequence[Record],
    window: Window,
    *,
    late_after: float = 0.05,
    margin: float = 0.5,
    span: Interval | None = None,
) -> ClassStats:
    """An OpenFlow controller session from ``hitless.impact.controller`` records.

    Units are the controller's echo requests: one without a reply (its session ended
    first) is lost, one answered more than ``late_after`` after it was sent is late.
    ``outcome`` is ``survived`` when the first session lasted to the end, else
    ``N disconnect(s), reconnected after X ms`` (the longest time from a disconnect
    to the next session's features reply) or ``..., not reconnected``. Only sessions
    that got their features reply count as disconnected; ``failures`` counts their
    disconnects by kind, plus connections accepted and closed before the features
    reply (``closed before features``: the restarting switch accepted and dropped them). ``longest_gap`` is the longest time
    without an echo reply, from the first echo request to the last; the disconnected
    periods count as disrupted even though no echo request was sent in them.
    ``span`` (absolute seconds): count only the echo requests sent in it (the other
    classes' traffic; the session itself is held from before to after)."""
    t0 = window.start
    tx: dict[tuple[int, int], float] = {}
    reply: dict[tuple[int, int], float] = {}
    for r in records:
        key = (int(r.get("conn", 0)), int(r.get("xid", 0)))
        if r.get("ev") == "echo-tx":
            if span is not None and not span[0] <= float(r["t"]) <= span[1]:
                continue
            tx[key] = float(r["t"])
        elif r.get("ev") == "echo-rx":
            reply.setdefault(key, float(r["t"]))
    reply = {k: t for k, t in reply.items() if k in tx}
    opened = {int(r.get("conn", 0)) for r in records if r.get("ev") == "features"}
    ends = sorted(
        (r for r in records if r.get("ev") == "disconnected"), key=lambda r: float(r["t"])
    )
    downs = [r for r in ends if int(r.get("conn", 0)) in opened]
    stillborn = len(ends) - len(downs)  # accepted, then closed before the features reply
    features = sorted(float(r["t"]) for r in records if r.get("ev") == "features")
    outages: list[Interval] = []
    back: list[float | None] = []
    last_t = max((float(r["t"]) for r in records if "t" in r), default=t0)
    for d in downs:
        t = float(d["t"])
        up = next((f for f in features if f > t), None)
        back.append(None if up is None else up - t)
        outages.append((t, last_t if up is None else up))
    if not features:
        outcome = "not-connected"
    elif not downs:
        outcome = "survived"
    else:
        n = len(downs)
        what = f"{n} disconnect{'s' if n > 1 else ''}"
        if back[-1] is None:
            outcome = f"{what}, not reconnected"
        else:
            outcome = f"{what}, reconnected after {_fmt_ms(max(b for b in back if b is not None))}"
    order = sorted(tx, key=lambda k: tx[k])
    rtts = [reply[k] - tx[k] for k in order if k in reply]
    units = [(tx[k], k not in reply or reply[k] - tx[k] > late_after) for k in order]
    disrupted, intervals, before = _disruption(units, window, margin)
    intervals = merge_intervals([*intervals, *((a - t0, b - t0) for a, b in outages)])
    disrupted = sum(b - a for a, b in intervals)
    before += sum(1 for d in downs if _before(float(d["t"]), window, margin))
    gap = 0.0
    if order:
        gap = _longest_gap(tx[order[0]], tx[order[-1]], list(reply.values()))
    worst, median = _latency(rtts)
    lost = sum(1 for k in order if k not in reply)
    failures: dict[str, int] = dict(Counter(str(d.get("kind", "closed")) for d in downs))
    if lost:
        failures["unanswered"] = lost
    if stillborn:
        failures["closed before features"] = stillborn
    return ClassStats(
        name=name,
        kind="controller",
        sent=len(tx),
        received=sum(1 for k in reply if k in tx),
        lost=lost,
        late=sum(1 for x in rtts if x > late_after),
        longest_gap=gap,
        disrupted=disrupted,
        worst_latency=worst,
        median_latency=median,
        outcome=outcome,
        failures=failures,
        before_op=before,
        disruptions=intervals,
        arrivals=tuple(sorted(t - t0 for t in reply.values())),
        failed_at=tuple(
            sorted(
                [tx[k] - t0 for k in order if k not in reply] + [float(d["t"]) - t0 for d in downs]
            )
        ),
    )
