"""Fault injection points for the handoff fault tests.

``HITLESS_FAULT`` (comma-separated names) in a daemon's environment makes it fail on
purpose at a named point: ``crash:<phase>`` kills the process with SIGKILL right there
(a real kill -9 at a precise moment), the other names corrupt what it sends. Unset in
normal operation; every point is listed in ``POINTS`` and documented in
docs/upgrading.md.
"""

from __future__ import annotations

import os
import signal
import time

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
}


def active() -> set[str]:
    return {p.strip() for p in os.environ.get("HITLESS_FAULT", "").split(",") if p.strip()}


def hit(point: str) -> bool:
    if point not in POINTS:
        raise ValueError(f"unknown fault point {point!r}")
    return point in active()


def maybe_crash(phase: str) -> None:
    """SIGKILL ourselves if ``crash:<phase>`` is requested."""
    if hit(f"crash:{phase}"):
        os.kill(os.getpid(), signal.SIGKILL)


def maybe_stall(phase: str) -> None:
    if hit(f"stall:{phase}"):
        signal.pause()
    if hit(f"delay:{phase}"):
        time.sleep(1.0)
