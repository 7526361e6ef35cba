"""No sleep as synchronisation: a test waits for a condition (tests/wait.py). A sleep
anywhere in tests/ (outside tests/wait.py) must say on its line why it is not one:
``# pacing`` (a sender's rate, a loop's turn), ``# deliberate`` (a stall, an outage, a
process that waits to be killed: the thing under test) or ``# poll`` (a condition, where
tests.wait cannot be imported). This test fails on a new bare sleep."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SLEEP = re.compile(r"\bsleep\(")
WHY = re.compile(r"#\s*(pacing|deliberate|poll)\b")


def bare_sleeps(path: Path) -> list[str]:
    return [
        f"{path}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if SLEEP.search(line) and not WHY.search(line)
    ]


def test_every_sleep_says_why_it_is_not_a_synchronisation() -> None:
    found = [s for p in sorted(TESTS.rglob("*.py")) if p.name != "wait.py" for s in bare_sleeps(p)]
    assert not found, "sleeps that may synchronise (wait for a condition):\n" + "\n".join(found)


def test_a_bare_sleep_is_seen(tmp_path: Path) -> None:
    p = tmp_path / "probe.py"
    bare = "time.sle" + "ep(0.3)  # let the old switch read it"
    p.write_text(bare + "\ntime.sleep(1)  # pacing\n")
    assert bare_sleeps(p) == [f"{p}:1: {bare}"]
