"""The impact harness's ``measure`` as the package tests use it: the traffic lasts until
the operation is over (``after``), however long a loaded machine makes an ``apt-get
install`` or a database restart, and the switch's waits for a CPU are sampled (for
whichever process its pidfile names) so that the shared bound excuses them, as in every
other upgrade test."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from hitless.impact.analysis import ImpactResult
from hitless.impact.cpuwait import Sampler, pidfile_reader
from hitless.impact.run import Operation, measure
from tests.traffic import AFTER, with_cpu_waits, with_fault_windows


def measure_switch(rundir: Path, operation: Operation, **kw: Any) -> ImpactResult:
    """``measure(hosts, operation, **kw)`` (``hosts`` in ``kw``) around a switch whose
    pidfile is ``rundir``/hitless-vswitchd.pid; the windows of the blackouts its new
    processes injected meanwhile (``blackout:<ms>``, their lines in
    ``rundir``/hitless-vswitchd.log) are the result's ``fault_windows``."""
    started: list[float] = []

    def timed() -> Any:
        started.append(time.monotonic())
        return operation()

    with Sampler(pidfile_reader(rundir / "hitless-vswitchd.pid")) as cpu:
        res = measure(operation=timed, after=AFTER, **kw)
    log = rundir / "hitless-vswitchd.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return with_fault_windows(with_cpu_waits(res, cpu, started[0]), text, started[0])
