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

import argparse
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# ovs-ctl's --ovs-vswitchd-priority default. It was 0 for a while: at -10 the ebpf
# datapath sent the first two frames of a new flow out of order (the installed flow
# forwarded the second before the daemon sent the upcalled first); since d3cb072 a new
# flow enters the kernel only after its upcalled frames are sent.
DEFAULT_NICE = -10
AUTOGROUP = Path("/proc/self/autogroup")


def nice_value(text: str) -> int:
    """An argparse type: a niceness, -20 to 19."""
    try:
        nice = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a niceness: {text!r}") from None
    if not -20 <= nice <= 19:
        raise argparse.ArgumentTypeError(f"must be from -20 to 19, not {nice}")
    return nice


def niceness_of(pid: int) -> int | None:
    """The niceness of process ``pid``; None if it is gone."""
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except OSError:
        return None


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


def set_child_niceness(nice: int) -> None:
    """For ``subprocess.Popen(preexec_fn=...)`` after ``start_new_session``: the child's
    niceness and its new session's, silently kept as they are if not allowed."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
        AUTOGROUP.write_text(f"{nice}\n")


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


# The freeze's real-time priority: above every ordinary (SCHED_OTHER) process, the
# lowest of the real-time ones (a sampler or a watchdog at 1 is not pushed aside for long).
FREEZE_RT_PRIORITY = 1


@contextlib.contextmanager
def realtime(priority: int = FREEZE_RT_PRIORITY) -> Iterator[bool]:
    """Run the block as a ``SCHED_FIFO`` process (yields whether that was granted), then
    go back to ``SCHED_OTHER`` at the niceness we had. For the handoff's freeze, where
    nothing forwards until it ends: a process that waits for a CPU there makes the
    forwarding gap longer by that wait. Bounded by the freeze's lease; the kernel's
    real-time throttling (``kernel.sched_rt_runtime_us``) still leaves the other
    processes 5% of each CPU. Without the privilege (not root, or a real-time budget of
    0 for our cgroup) the block runs as it is."""
    try:
        before = os.sched_getscheduler(0)
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, before, os.sched_param(0))


def freeze_realtime() -> contextlib.AbstractContextManager[bool]:
    """``realtime()`` for a handoff's freeze (both processes), unless the environment
    says ``HITLESS_FREEZE_REALTIME=0`` (to measure what it changes: ``bench/handoff.py
    --no-freeze-realtime``)."""
    if os.environ.get("HITLESS_FREEZE_REALTIME", "1") == "0":
        return contextlib.nullcontext(False)
    return realtime()
