"""Fault injection points for the handoff fault tests.

``HITLESS_FAULT`` (comma-separated names) in a daemon's environment makes it fail on
purpose at a named point: ``crash:<phase>`` kills the process with SIGKILL right there
(a real kill -9 at a precise moment), the other names corrupt what it sends. Unset in
normal operation; every point is listed in ``POINTS`` and documented in
docs/upgrading.md.

The points applied by ``after_owned`` misbehave in a new process that took over
successfully, so tests can prove their checks would catch it: ``blackout:<ms>`` (stop
reading the datapath that long: frames queue in the rings, nothing is dropped),
``duplicate`` (the first batch each netdev port sends goes out twice; so does a frame
sent on its own, as those a patch port's peer delivers) and
``flush-after-adopt`` (forget what was adopted, as a cold restart would: datapath flows,
the connection tracker's table, MAC tables, OpenFlow rule/group/meter counters).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

log = logging.getLogger(__name__)

POINTS = {
    # new side
    "crash:connected": "new process dies right after connecting",
    "crash:precopy": "new process dies after receiving the pre-copy",
    "crash:ready": "new process dies after saying Ready (old is frozen)",
    "crash:restored": "new process dies after restoring, before its Ack",
    "crash:acked": "new process dies after its Ack, before Commit arrives",
    "crash:committed": "new process dies after Commit, before saying Owned",
    "stall:restored": "new process hangs after restoring (the lease must expire)",
    "delay:restored": "new process sleeps 1 s after restoring (within a longer lease)",
    # old side
    "crash:old-after-ack": "old process dies right after receiving the Ack",
    "truncate-snapshot": "old process sends a truncated final snapshot",
    "foreign-snapshot": "old process sends bytes that are not a snapshot",
    # new side, after a successful takeover (see after_owned)
    "blackout:<ms>": "new process reads nothing from the datapath for <ms> after owning it",
    "duplicate": "new process sends its first batch of frames on each netdev port twice",
    "flush-after-adopt": "new process flushes datapath flows, MAC tables and OpenFlow counters",
}


def active() -> set[str]:
    return {p.strip() for p in os.environ.get("HITLESS_FAULT", "").split(",") if p.strip()}


def hit(point: str) -> bool:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}")
    return point in active()


def blackout_ms() -> int:
    """The <ms> of an armed ``blackout:<ms>`` point, else 0."""
    for p in active():
        if p.startswith("blackout:"):
            return int(p.split(":", 1)[1])
    return 0


def maybe_crash(phase: str) -> None:
    """SIGKILL ourselves if ``crash:<phase>`` is requested."""
    if hit(f"crash:{phase}"):
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_stall(phase: str) -> None:
    if hit(f"stall:{phase}"):
        log.warning("fault stall:%s: hanging", phase)
        signal.pause()
    if hit(f"delay:{phase}"):
        log.warning("fault delay:%s: sleeping 1 s", phase)  # tests wait for this line
        time.sleep(1.0)


def after_owned(switch: Any) -> None:
    """The faults of a new process that now owns everything (called before its first
    loop iteration)."""
    if hit("flush-after-adopt"):
        for rb in switch.bridges.values():
            _flush(rb.bridge, rb.datapath)
    if hit("duplicate"):
        for rb in switch.bridges.values():
            if hasattr(rb.datapath, "duplicate_batches"):
                rb.datapath.duplicate_batches = len(rb.datapath.ports())
    ms = blackout_ms()
    if ms:
        time.sleep(ms / 1000)


def _flush(bridge: Any, dp: Any) -> None:
    """What a restart that adopts nothing would leave: no datapath flows, an empty MAC
    table, every OpenFlow counter at zero (the rules themselves stay, as a controller or
    ovs-save would put them back)."""
    for f in list(dp.flow_dump()):
        dp.flow_del(f.match)
    ct = getattr(dp, "conntrack", None)
    if ct is not None:  # every tracked connection forgotten
        ct.flush()
    bridge.revalidator.forget_all()
    bridge.mac.flush()
    of = getattr(bridge, "of", None)
    if of is not None:
        for obj in [*of.rules(), *of.groups.values(), *of.meters.values()]:
            obj.packets = obj.bytes = 0
