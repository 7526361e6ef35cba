"""Egress shaping of a port's network devices with Linux tc: the ``linux-htb`` and
``linux-hfsc`` QoS types of Port.qos (ovs-vswitchd.conf.db(5) "QoS" and "Queue").

The same tree Open vSwitch's netdev-linux builds (seen on its netdev datapath with
``tc class show``): a root qdisc ``1:`` whose default class is ``1:1`` (queue 0), one
class ``1:fffe`` at the QoS row's ``max-rate``, and under it one class ``1:<id+1>`` per
queue with the Queue's ``min-rate`` (default 1500 bytes/s), ``max-rate`` (default the
parent's), ``burst`` and, for htb, ``priority``. Rates are bit/s as in the database;
``max-rate`` defaults to the device's link speed (10 Gbit/s when it has none).

Frames the switch sends reach the qdisc because the datapath stops bypassing it on
such a port (``Datapath.port_use_qdisc``). Every packet is in queue 0: ``set_queue``
does not choose a class yet (as with Open vSwitch's userspace datapath).

``plan`` is pure (a ``QosConfig`` and a speed -> the tc commands); ``TcQos`` runs them,
keeps what each device has (so an unchanged configuration costs nothing), reconfigures
an existing tree in place (``tc class replace``: no packet queued in it is lost) and
removes the tree when the QoS row goes. What it applied rides a handoff (the switch
extra "qos"), so a new process neither rebuilds nor forgets a tree. A device the kernel
cannot shape (no such qdisc: this machine's kernel has no hfsc) gets the tc error in
the Port's status and one WARN line.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from typing import Any

from hitless.config.model import QosConfig

log = logging.getLogger(__name__)

__all__ = ["TcPlan", "TcQos", "plan"]

DEFAULT_SPEED = 10_000_000_000  # bit/s, for a device that reports none (Open vSwitch's)
MIN_RATE = 12_000  # bit/s: a queue's min-rate when unset (1500 bytes/s)
MTU_BURST = 1500 * 8  # bits: the smallest burst (one full frame)


@dataclass(frozen=True, slots=True)
class TcPlan:
    """One device's tc tree: the root qdisc's kind and the classes under it, each as the
    arguments after ``tc class add dev DEV``."""

    kind: str  # htb | hfsc
    classes: tuple[tuple[str, tuple[str, ...]], ...]  # (classid, argv tail)

    def qdisc(self, dev: str) -> list[str]:
        """Put this tree's root qdisc in place of whatever root qdisc ``dev`` has."""
        return ["qdisc", "replace", "dev", dev, "root", "handle", "1:", self.kind, "default", "1"]


def _rate(text: str | None, default: int) -> int:
    try:
        v = int(text) if text is not None else 0
    except ValueError:
        return default
    return v if v > 0 else default


def plan(qos: QosConfig, speed: int | None) -> TcPlan:
    """The tc tree of a linux-htb or linux-hfsc QoS row on a device of ``speed`` bit/s."""
    kind = "htb" if qos.type == "linux-htb" else "hfsc"
    top = _rate(qos.other_config.get("max-rate"), speed or DEFAULT_SPEED)
    queues = {q.queue_id: q.other_config for q in qos.queues}
    queues.setdefault(0, {})  # queue 0 (class 1:1) always exists: the default class
    classes: list[tuple[str, tuple[str, ...]]] = []
    if kind == "htb":
        burst = max(MTU_BURST, _rate(qos.other_config.get("burst"), 0)) // 8
        classes.append(("1:fffe", ("parent", "1:", "classid", "1:fffe", "htb", "rate",
                                   f"{top}bit", "ceil", f"{top}bit", "burst", f"{burst}b")))  # fmt: skip
    else:
        classes.append(("1:fffe", ("parent", "1:", "classid", "1:fffe", "hfsc", "sc", "rate",
                                   f"{top}bit", "ul", "rate", f"{top}bit")))  # fmt: skip
    for qid, oc in sorted(queues.items()):
        cid = f"1:{qid + 1:x}"
        hi = min(top, _rate(oc.get("max-rate"), top))
        lo = min(hi, _rate(oc.get("min-rate"), MIN_RATE))
        tail: tuple[str, ...]
        if kind == "htb":
            burst = max(MTU_BURST, _rate(oc.get("burst"), 0)) // 8
            prio = _rate(oc.get("priority"), 0)
            tail = ("parent", "1:fffe", "classid", cid, "htb", "rate", f"{lo}bit", "ceil",
                    f"{hi}bit", "burst", f"{burst}b", "prio", str(prio))  # fmt: skip
        else:
            tail = ("parent", "1:fffe", "classid", cid, "hfsc", "sc", "rate", f"{lo}bit",
                    "ul", "rate", f"{hi}bit")  # fmt: skip
        classes.append((cid, tail))
    return TcPlan(kind, tuple(classes))


def _tc(args: list[str], stdin: str | None = None) -> str | None:
    """Run tc; None if it succeeded, else its error text."""
    try:
        r = subprocess.run(["tc", *args], input=stdin, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"tc: {e}"
    if r.returncode == 0:
        return None
    lines = [ln for ln in r.stderr.splitlines() if ln and not ln.startswith("Warning")]
    return "; ".join(lines) or f"tc exited {r.returncode}"


def root_kind(dev: str) -> str | None:
    """The kind of ``dev``'s root qdisc if its handle is 1: (ours), else None."""
    try:
        out = subprocess.run(
            ["tc", "qdisc", "show", "dev", dev, "root"], capture_output=True, text=True,
            timeout=10,
        ).stdout  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "qdisc" and f[2] == "1:" and f[3] == "root":
            return f[1]
    return None


class TcQos:
    """The tc trees this process put on devices, by device name."""

    def __init__(self) -> None:
        self.applied: dict[str, TcPlan] = {}
        self.errors: dict[str, str] = {}  # device -> why its tree could not be built

    def apply(self, dev: str, want: TcPlan | None) -> str | None:
        """Make ``dev``'s tree ``want`` (None: remove ours). Returns the error, if any
        (also kept in ``errors`` and logged once)."""
        have = self.applied.get(dev)
        if want == have and (want is None or dev not in self.errors):
            return self.errors.get(dev)
        err = self._apply(dev, have, want)
        if err is None:
            if want is None:
                self.applied.pop(dev, None)
            else:
                self.applied[dev] = want
                log.info("%s: %s egress shaping applied (%d classes)", dev, want.kind,
                         len(want.classes))  # fmt: skip
            self.errors.pop(dev, None)
        else:
            self.applied.pop(dev, None)
            if self.errors.get(dev) != err:
                log.warning("%s: cannot apply QoS: %s", dev, err)
            self.errors[dev] = err
        return err

    def _apply(self, dev: str, have: TcPlan | None, want: TcPlan | None) -> str | None:
        if want is None:
            if have is None:
                return None
            err = _tc(["qdisc", "del", "dev", dev, "root"])
            return None if err is None or "No such" in err or "Cannot find" in err else err
        kind = root_kind(dev)
        stale = {c for c, _ in have.classes} - {c for c, _ in want.classes} if have else set()
        if kind == want.kind and (have is not None or not stale):
            # Reconfigure in place: the queued packets stay.
            lines = [f"class del dev {dev} classid {c}" for c in sorted(stale, reverse=True)]
            lines += [f"class replace dev {dev} {' '.join(tail)}" for _, tail in want.classes]
            return _tc(["-force", "-batch", "-"], "\n".join(lines) + "\n")
        err = _tc(want.qdisc(dev))
        if err is not None:
            return err
        lines = [f"class add dev {dev} {' '.join(tail)}" for _, tail in want.classes]
        err = _tc(["-force", "-batch", "-"], "\n".join(lines) + "\n")
        if err is not None:
            _tc(["qdisc", "del", "dev", dev, "root"])
        return err

    def forget(self, devs: set[str]) -> None:
        """Devices no longer attached: not ours to manage any more."""
        for d in set(self.applied) - devs:
            del self.applied[d]
        for d in set(self.errors) - devs:
            del self.errors[d]

    # Handoff (the switch extra "qos") --------------------------------------------
    def export(self) -> dict[str, list[object]] | None:
        return {
            dev: [p.kind, [[c, list(t)] for c, t in p.classes]]
            for dev, p in sorted(self.applied.items())
        } or None

    def adopt(self, data: Any) -> None:
        """What a predecessor applied (``export``'s value): trees already in place."""
        for dev, (kind, classes) in dict(data).items():
            self.applied[str(dev)] = TcPlan(
                str(kind), tuple((str(c), tuple(str(x) for x in t)) for c, t in classes)
            )
