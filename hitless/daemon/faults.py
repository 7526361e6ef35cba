"""Fault injection points for the handoff fault tests.

``HITLESS_FAULT`` (comma-separated names) in a daemon's environment makes it fail on
purpose at a named point: ``crash:<phase>`` kills the process with SIGKILL right there
(a real kill -9 at a precise moment), the other names corrupt what it sends. Unset in
normal operation; every point is listed in ``POINTS`` and documented in
docs/upgrading.md.

The points applied by ``after_owned`` misbehave in a new process that took over
successfully, so tests can prove their checks would catch it: ``blackout:<ms>`` (stop
reading the datapath that long: frames queue in the rings, nothing is dropped; on ebpf,
where the kernel forwards without the daemon, its flows hand every packet up to the
upcall ring meanwhile), ``duplicate`` (the first ``DUPLICATE_SENDS`` batches per netdev
port go out twice; a frame sent on its own, as those a patch port's peer delivers,
counts as a batch; on ebpf each kernel flow sends its next ``DUPLICATE_SENDS`` frames
twice) and
``flush-after-adopt`` (forget what was adopted, as a cold restart would: datapath flows,
the connection tracker's table, MAC tables, OpenFlow rule/group/meter counters) and
``cold-restart-after-adopt`` (all of that, and the rest of what a naive restart would not
have either: it takes no carried state of the other layers (``cold_commit``: spanning
trees, bonds, NetFlow, sFlow and IPFIX agents, tc trees, fail-open clocks), no meter
buckets (policers start full) and no OpenFlow sessions (controllers are disconnected,
their open bundles and unsent replies gone); only the datapath's ports and the listeners
stay, so traffic still flows).
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
    "foreign-record-snapshot": (
        "old process sends a well-formed final snapshot (magic, version, checksum) whose "
        "datapath handles name a datapath type no build has"
    ),
    # new side, after a successful takeover (see after_owned)
    "blackout:<ms>": (
        "new process reads nothing from the datapath for <ms> after owning it (ebpf: its"
        " kernel flows hand every packet up to the ring meanwhile)"
    ),
    "duplicate": (
        "new process sends its first batches of frames (16 per netdev port) twice (ebpf:"
        " each kernel flow its next 16 frames)"
    ),
    "flush-after-adopt": "new process flushes datapath flows, MAC tables and OpenFlow counters",
    "cold-restart-after-adopt": (
        "new process adopts no carried state, meter bucket or OpenFlow session, then"
        " flushes as flush-after-adopt: a naive restart"
    ),
    # ebpf datapath, any process (read by hitless/datapath/ebpf/provider.py itself)
    "ebpf-slow-batch": "ebpf: a batch of upcalls that put new flows lasts 5 ms longer",
}


BLACKOUT_LOG = "fault blackout:%d: read nothing from %.6f to %.6f (CLOCK_MONOTONIC)"
BLACKOUT_RE = r"fault blackout:\d+: read nothing from ([0-9.]+) to ([0-9.]+) \(CLOCK_MONOTONIC\)"


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


# Sends (a batch, or a frame sent on its own) that ``duplicate`` doubles, per port. One
# per port left it to chance which frames went twice: behind a conntrack firewall the
# first frames after a handoff go out one at a time (upcalls), and in 1 of 4 runs all
# of them were TCP segments and ACKs, none of the sequenced UDP that catches it.
DUPLICATE_SENDS = 16


def arm_duplicate(switch: Any) -> None:
    """``duplicate``: the next ``DUPLICATE_SENDS`` sends per netdev port go out twice.
    A handoff's new process arms it before it forwards what the rings held during the
    freeze (``first_forward``), so that the backlog is among what goes out twice."""
    if hit("duplicate"):
        for rb in switch.bridges.values():
            if hasattr(rb.datapath, "fault_duplicate"):  # ebpf: the kernel's flows
                rb.datapath.fault_duplicate(DUPLICATE_SENDS)
            elif hasattr(rb.datapath, "duplicate_batches"):
                rb.datapath.duplicate_batches = DUPLICATE_SENDS * len(rb.datapath.ports())


def after_owned(switch: Any, *, duplicate: bool = True) -> None:
    """The faults of a new process that now owns everything (called before its first
    loop iteration); ``duplicate``: arm that fault here (False: armed already)."""
    if hit("flush-after-adopt") or hit("cold-restart-after-adopt"):
        for rb in switch.bridges.values():
            _flush(rb.bridge, rb.datapath)
    if duplicate:
        arm_duplicate(switch)
    ms = blackout_ms()
    if ms:
        # ebpf: the kernel forwards without us; its flows hand every packet up to the
        # ring meanwhile (held there, sent on once we read again).
        held = [rb.datapath for rb in switch.bridges.values() if hasattr(rb.datapath, "fault_hold")]
        t0 = time.monotonic()
        for dp in held:
            dp.fault_hold(True)
        time.sleep(ms / 1000)
        for dp in held:
            dp.fault_hold(False)
        # Tests read this line: the blackout's own window, on the CLOCK_MONOTONIC every
        # process shares, so that their bound excuses nothing inside it.
        log.warning(BLACKOUT_LOG, ms, t0, time.monotonic())


def cold_commit(takeover: Any) -> None:
    """``cold-restart-after-adopt`` (called by the new process's commit, before it wires
    in what it took over): forget the old process's OpenFlow sessions (their sockets are
    closed: controllers see a disconnection), the switch's and bridges' carried extras
    and the datapaths' meter buckets, as a process that started from nothing would."""
    if hit("cold-restart-after-adopt"):
        log.warning("fault cold-restart-after-adopt: adopting no carried state")
        takeover.sessions, takeover.switch_extras = {}, {}
        takeover.engine.extras, takeover.engine.meter_levels = {}, {}


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
