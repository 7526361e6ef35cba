"""Where hitless impact puts a handoff's freeze on the timeline: anchored to the new
process's connection time (CLOCK_MONOTONIC, the harness's clock too) when the report
has it, else laid out backwards from the end of the command."""

from __future__ import annotations

from hitless.impact.switches import _handoff_phases

PHASES = {"start": 500.0, "precopy": 1000.0, "freeze": 30.0, "old_exit": 20.0}


def test_the_freeze_starts_start_plus_precopy_after_the_connection() -> None:
    t0, t1 = 100.0, 104.0  # the command took 4 s (it noticed the old exit late)
    got = {p.name: (p.start, p.end) for p in _handoff_phases(PHASES, t0, t1, 100.8)}
    start, end = got["freeze (restore, verify)"]
    assert abs(start - (100.8 + 1.5)) < 1e-9 and abs(end - (100.8 + 1.53)) < 1e-9
    assert got["new process start + pre-copy (old serving)"] == (t0, start)
    assert got["old process exit"] == (end, t1)


def test_without_the_connection_time_it_is_laid_out_from_the_end() -> None:
    got = {p.name: (p.start, p.end) for p in _handoff_phases(PHASES, 100.0, 104.0)}
    start, end = got["freeze (restore, verify)"]
    assert abs(end - (104.0 - 0.02)) < 1e-9 and abs(start - (104.0 - 0.05)) < 1e-9


def test_a_connection_time_outside_the_command_is_not_trusted() -> None:
    got = {p.name: p.start for p in _handoff_phases(PHASES, 100.0, 104.0, 50.0)}
    assert abs(got["freeze (restore, verify)"] - (104.0 - 0.05)) < 1e-9
