"""The daemon's CPU priority: its niceness, and its session's.

Open vSwitch's ovs-ctl runs ovs-vswitchd at niceness -10 (``--ovs-vswitchd-priority``);
hitless-vswitchd does the same (``--nice``, root only). With the kernel's session
autogroups (``kernel.sched_autogroup_enabled``, on in Debian's kernels) a process's
niceness only weighs against the other processes of its session, and each session
competes as one at its autogroup's niceness (``/proc/self/autogroup``): so a daemon that
leads its own session (``hitless start`` and ``hitless upgrade`` start it so) sets that
one too. A daemon run inside someone else's session leaves the session alone.

Measured on the shared 2-core machine at a load average of ~15-20: at niceness 0 the
daemon's serving-loop turns took 60-150 ms of wall time for 12-34 ms of CPU, and a
handoff's restore 55-89 ms for 10-11 ms of CPU (waiting for a core): every such wait is a
forwarding gap for a userspace datapath.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# 0 for now, not ovs-ctl's -10: at -10 the ebpf datapath delivered the first two frames
# of a new flow out of order in tests/daemon/test_openflow_actions.py (2 of 3 runs; the
# upcalled frame goes out after the installed flow forwarded the next one). Run with
# ``--nice -10`` to measure; make it the default once that race is fixed.
DEFAULT_NICE = 0
AUTOGROUP = Path("/proc/self/autogroup")


def set_niceness(nice: int) -> None:
    """Run at ``nice`` (and our session too, if we lead it) if allowed; otherwise say
    so and keep the inherited niceness."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as e:
        log.info(
            "keeping niceness %d (cannot set %d: %s)",
            os.getpriority(os.PRIO_PROCESS, 0),
            nice,
            e.strerror,
        )
        return
    set_session_niceness(nice)


def session_niceness() -> int | None:
    """Our session's autogroup niceness, if we lead the session and there are
    autogroups; else None."""
    if os.getsid(0) != os.getpid():
        return None
    try:
        return int(AUTOGROUP.read_text().split()[-1])  # "/autogroup-123 nice -10"
    except (OSError, ValueError, IndexError):
        return None


def set_session_niceness(nice: int) -> None:
    """Set our session's autogroup niceness, if we lead the session."""
    if os.getsid(0) == os.getpid() and AUTOGROUP.exists():
        try:
            AUTOGROUP.write_text(f"{nice}\n")
        except OSError as e:
            log.info("session autogroup niceness left as it is: %s", e.strerror)
