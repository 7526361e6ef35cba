"""The cpu-probe agent: a CPU that runs nothing but a higher real-time task for a while
is recorded as stalled, and an idle one is not (the probe is how the impact analysis
tells the machine's stalls from the switch's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hitless.impact import analysis as an

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="SCHED_FIFO needs root")

HOG = 0.15  # seconds a real-time task above the probe keeps its CPU


def _hog(cpu: int, seconds: float) -> None:
    """Busy-loop on ``cpu`` at a real-time priority above the probe's."""
    code = (
        "import os, time\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        "os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(60))\n"
        f"end = time.monotonic() + {seconds}\n"
        "while time.monotonic() < end: pass\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_a_cpu_taken_by_a_higher_real_time_task_is_a_stall(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    out = tmp_path / "probe.jsonl"
    # It watches until the hog has run (SIGTERM below), not for a fixed time: at load
    # 30 the hog's interpreter came up after a 3 s probe had ended, and no stall was seen.
    end = time.monotonic() + 300.0
    probe = subprocess.Popen(
        [sys.executable, "-m", "hitless.impact.agents", "cpu-probe", "--cpu", str(cpu),
         "--end", f"{end:.6f}", "--out", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert probe.stderr is not None
    assert probe.stderr.readline().strip() == "ready"
    t0 = time.monotonic()
    _hog(cpu, HOG)
    t1 = time.monotonic()
    probe.send_signal(signal.SIGTERM)
    assert probe.wait(timeout=60) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert recs[0]["policy"] == "fifo" and recs[0]["cpu"] == cpu
    stalls = an.cpu_stalls([recs])
    # the hog's whole run (less the probe's tick and the hog's own start) is one stall
    hit = [(a, b) for a, b in stalls if a < t1 and b > t0]
    assert hit, (stalls, t0, t1)
    assert max(b - a for a, b in hit) >= HOG * 0.8, hit
