"""A sender's end (hitless.impact.agents.Until): the planned duration, pushed back by
the file ``measure(after=...)`` writes once the operation returned."""

from __future__ import annotations

import argparse
from pathlib import Path

from hitless.impact.agents import Until


def args(duration: float, until: Path | None) -> argparse.Namespace:
    return argparse.Namespace(duration=duration, until=None if until is None else str(until))


def test_without_a_file_the_planned_end_holds() -> None:
    u = Until(100.0, args(15, None))
    assert u(99.0) == u(200.0) == 115.0


def test_the_sender_goes_on_until_the_file_says(tmp_path: Path) -> None:
    f = tmp_path / "until"
    u = Until(100.0, args(15, f))
    assert u(110.0) == 115.0  # before the planned end: not even looked at
    assert u(115.0) > 115.0  # the operation has not returned: keep sending
    assert u(130.0) > 130.0
    f.write_text("131.5")
    assert u(131.0) == 131.5
    f.write_text("200")  # read once: the end is final
    assert u(140.0) == 131.5


def test_an_earlier_time_does_not_shorten_the_traffic(tmp_path: Path) -> None:
    f = tmp_path / "until"
    f.write_text("105")
    assert Until(100.0, args(15, f))(115.0) == 115.0


def test_a_file_that_never_comes_ends_it_after_the_limit(tmp_path: Path) -> None:
    u = Until(100.0, args(15, tmp_path / "never"))
    assert u(115.0 + Until.MAX_EXTRA) == 115.0 + Until.MAX_EXTRA
    assert u(1e9) == 115.0 + Until.MAX_EXTRA
