"""bench/handoff.py's arithmetic on a synthetic impact result: the switch's own part of
a gap (the gap less the larger of the machine's stalls and the switch's CPU wait in it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "handoff.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_handoff", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def udp(arrivals: list[float]) -> dict:
    return {"kind": "udp", "arrivals": arrivals}


def test_own_part_takes_out_the_larger_of_stalls_and_cpu_wait() -> None:
    b = bench()
    # arrivals every 1 ms, a 100 ms gap from 1.0 to 1.1 and a 30 ms one from 2.0 to 2.03
    arr = [i / 1000 for i in range(0, 1001)] + [1.1 + i / 1000 for i in range(0, 901)]
    arr += [2.03 + i / 1000 for i in range(0, 100)]
    res = {"cpu_stalls": [], "cpu_waits": []}
    own, wait = b._own_gap([udp(arr)], res)
    assert round(own, 3) == 0.1 and wait == 0  # nothing to take out: all of it is the switch's
    res = {"cpu_stalls": [[1.01, 1.05]], "cpu_waits": [[1.05, 1.09, 0.04], [3.0, 3.1, 0.5]]}
    own, wait = b._own_gap([udp(arr)], res)
    # 100 ms less max(40 ms of stalls, 40 ms waited): 60 ms; the wait at 3.0 is elsewhere
    assert round(own, 3) == 0.06 and round(wait, 3) == 0.04
    res = {"cpu_stalls": [[1.0, 1.1]], "cpu_waits": []}
    own, _ = b._own_gap([udp(arr)], res)
    assert round(own, 3) == 0.03  # the 100 ms gap was the machine's; the 30 ms one is left


def test_summary_has_the_own_columns() -> None:
    b = bench()
    res = {
        "classes": [udp([0.0, 0.001, 0.05]) | {"longest_gap": 0.049, "lost": 0, "gap_net": 0.049}],
        "cpu_stalls": [],
        "cpu_waits": [[0.0, 0.05, 0.02]],
        "window": {"phases": []},
        "settings": {},
    }
    out = b._summary(res)
    assert round(out["udp_gap_own_ms"]) == 29 and round(out["gap_cpu_wait_ms"]) == 20
    assert {"own", "its wait"} <= {h for h, _k, _u in b.COLUMNS}
