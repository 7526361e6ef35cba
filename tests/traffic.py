"""The one way to drive and judge traffic across a handoff (upgrade, downgrade, fault
cases): ``handoff_under_traffic(sw, hosts, "upgrade", ...)`` runs ``hitless ARGS --json``
inside the shared traffic (``CLASSES`` at ``RATES`` between two hosts) and returns the
command's report and the measured traffic; ``assert_handoff_traffic(result, bound)`` (or
``violations`` + ``judge``) is the one assertion. The rules live in
``hitless.impact.bounds`` (the impact harness applies the same ones); the assertion raises
with the violations and the numbers of every class, and prints the numbers (visible with
``pytest -s``)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from hitless.impact.analysis import ImpactResult, Phase
from hitless.impact.bounds import (
    HANDOFF,
    Bound,
    after_freeze,
    lease_bound,
    summary,
    unexplained,
    violations,
)
from hitless.impact.cpuwait import Sampler, pidfile_reader
from hitless.impact.run import Rates, measure
from hitless.impact.switches import _handoff_phases as handoff_phases
from tests.netns import Host
from tests.switch import Sw

__all__ = [
    "BIN",
    "BREAKS",
    "CLASSES",
    "OLD_BUILD_BLACKOUT",
    "OLD_BUILD_SLACK",
    "HANDOFF",
    "RATES",
    "Bound",
    "assert_handoff_traffic",
    "bound_of",
    "fault_env",
    "handoff_op",
    "handoff_under_traffic",
    "judge",
    "lease_bound",
    "violations",
    "with_cpu_waits",
]


# A handoff from or to a previous build stalls longer outside the freeze it reports
# (seen +87-100 ms beyond it for c179151 and 77f006e as the old side at load average 7,
# +150 ms for a downgrade to 77f006e at load 15, 2026-12-06, where this build shows
# +6-50 ms). With that allowance a 100 ms stall
# cannot be told from the old build's own, so the previous-build cases inject a 250 ms
# blackout instead (``OLD_BUILD_BLACKOUT``).
OLD_BUILD_SLACK = 0.2
OLD_BUILD_BLACKOUT = "blackout:250"


def bound_of(reports: list[dict], slack: float = HANDOFF.gap) -> Bound:
    """The bound for handoffs that printed these ``--json`` reports (their freeze
    phases: see ``hitless.impact.bounds.after_freeze``)."""
    freezes = [
        r["phases_ms"]["freeze"] / 1000 for r in reports if "freeze" in r.get("phases_ms", {})
    ]
    assert freezes, f"no freeze phase reported: {reports}"
    bound = after_freeze(freezes, slack)
    print(f"bound: {bound}")
    return bound


def numbers(res: ImpactResult, bound: Bound = HANDOFF) -> str:
    """The traffic's numbers and, per paced class, how long the switch held it and
    delayed a datagram beyond what the freeze and its wait for a CPU explain."""
    left = unexplained(res, bound)
    waited = sum(w for _s, _e, w in res.cpu_waits)
    return (
        summary(res)
        + f"\n  the switch waited {waited * 1000:.0f} ms for a CPU in all; unexplained: "
        + ", ".join(
            f"{k} held {g * 1000:.1f} ms delayed {d * 1000:.1f} ms" for k, (g, d) in left.items()
        )
    )


def assert_handoff_traffic(res: ImpactResult, bound: Bound = HANDOFF) -> None:
    print(numbers(res, bound))
    bad = violations(res, bound)
    assert not bad, f"bound: {bound}\n" + "\n".join(bad) + "\n" + numbers(res, bound)


# Fault points (hitless/daemon/faults.py) that break the claim in a new process that took
# over, and the words of the problem that must then be reported: a zero-loss or
# state-kept test runs once clean and once with each fault it must catch.
BREAKS: dict[str, tuple[str, ...]] = {
    "blackout:100": ("gap",),  # 100 ms without reading the datapath: frames queue, none lost
    "duplicate": ("twice",),  # the first batch of each port forwarded twice
    # Adopted state thrown away and relearned: caught by counters that restarted, or by
    # the MAC table (a silent host's entry cannot come back). Either suffices: a NORMAL
    # megaflow also counts the TCP classes' packets, so when the handoff is quick the
    # relearned flows can count more than the UDP delivered and the counter check alone
    # would miss the flush.
    "flush-after-adopt": ("counters", "fdb:"),
}


def fault_env(fault: str | None) -> dict[str, str] | None:
    return {"HITLESS_FAULT": fault} if fault else None


def judge(problems: list[str], fault: str | None, res: ImpactResult | None = None) -> None:
    """Clean run: no problem at all. With ``fault`` armed: the check that should catch
    it did (a problem containing one of the words ``BREAKS[fault]``)."""
    numbers_ = numbers(res) if res is not None else ""
    print(f"fault {fault}: {problems}\n{numbers_}")
    if fault is None:
        assert not problems, "\n".join(problems) + "\n" + numbers_
    else:
        words = BREAKS["blackout:100"] if fault.startswith("blackout:") else BREAKS[fault]
        assert any(w in p for w in words for p in problems), (
            f"{fault} went unnoticed: {problems}\n{numbers_}"
        )


BIN = Path(sys.executable).parent
# The traffic of every upgrade test: sequenced UDP at 1,000/s each way, a long-lived TCP
# connection (a message every 10 ms), a new TCP connection every 20 ms.
CLASSES = ("udp", "tcp-stream", "tcp-connect")
RATES = Rates(udp_pps=1000, tcp_interval=0.01, connect_interval=0.02)
# 15 s of traffic with the operation 1.5 s in, and at least ``AFTER`` seconds more after
# the operation returned: at load average 16-22 on the 2-core test machine `hitless
# upgrade` took 10-16 s (most of it the new process starting), at 20-23 17-28 s, and the
# freeze came after the traffic (2026-12-06).
AFTER = 2.0


def handoff_op(
    sw: Sw, *args: str, env: dict[str, str] | None = None, results: list[dict] | None = None
) -> Callable[[], list[Phase]]:
    """``hitless ARGS --rundir DIR --json`` as a measured operation: its report (with
    ``returncode``) appended to ``results``, its phases laid out as ``hitless impact``
    lays them out when it handed over (so the freeze must lie inside the traffic)."""

    def operation() -> list[Phase]:
        t0 = time.monotonic()
        r = subprocess.run(
            [str(BIN / "hitless"), *args, "--rundir", str(sw.rundir.path), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
            cwd="/",
        )
        t1 = time.monotonic()
        report = json.loads(r.stdout)
        report["returncode"] = r.returncode
        if results is not None:
            results.append(report)
        if report.get("ok") and "freeze" in report.get("phases_ms", {}):
            at = report.get("connected_at")  # the same CLOCK_MONOTONIC as ours
            return handoff_phases(report["phases_ms"], t0, t1, float(at) if at else None)
        return [Phase(args[0], t0, t1)]

    return operation


def handoff_under_traffic(
    sw: Sw,
    hosts: Sequence[Host],
    *args: str,
    fault: str | None = None,
    env: dict[str, str] | None = None,
    duration: float = 15,
    at: float = 1.5,
    rates: Rates = RATES,
    classes: Sequence[str] = CLASSES,
    port: int | None = None,
) -> tuple[dict, ImpactResult]:
    """Run ``hitless ARGS`` (``fault`` armed in the new process, ``env`` added) ``at``
    seconds into ``duration`` seconds of traffic between ``hosts`` (``port``: the base
    port, as ``measure``'s); the command's report and the traffic, for
    ``violations``/``judge``."""
    results: list[dict] = []
    op = handoff_op(sw, *args, env={**(fault_env(fault) or {}), **(env or {})}, results=results)
    started: list[float] = []

    def operation() -> list[Phase]:
        started.append(time.monotonic())
        return op()

    with Sampler(pidfile_reader(sw.rundir.pidfile)) as cpu:
        res = measure(
            list(hosts),
            operation,
            name=args[0] if not fault else f"{args[0]} ({fault})",
            duration=duration,
            at=at,
            rates=rates,
            classes=tuple(classes),
            after=AFTER,
            port=port,
        )
    (report,) = results
    return report, with_cpu_waits(res, cpu, started[0])


def with_cpu_waits(res: ImpactResult, cpu: Sampler, t0: float) -> ImpactResult:
    """``res`` with the switch's wait for a CPU (``cpu``, sampled around it; ``t0``:
    when its operation started), which the bound excuses (``hitless.impact.bounds``)."""
    print(f"cpu wait sampled for pids {cpu.pids} (SCHED_FIFO: {cpu.realtime})")
    return dataclasses.replace(res, cpu_waits=cpu.owned(t0))
