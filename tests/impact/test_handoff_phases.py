"""Where hitless impact puts a handoff's freeze on the timeline: at the new process's
Ready (``ready_at``, CLOCK_MONOTONIC, the harness's clock too) when the report has it,
else laid out backwards from the end of the command; and how ``hitless upgrade`` puts
the new process's report on that clock."""

from __future__ import annotations

from hitless.cli.upgrade import _anchor_phases
from hitless.impact.switches import _handoff_phases

PHASES = {"start": 500.0, "precopy": 1000.0, "freeze": 30.0, "old_exit": 20.0}


def test_the_freeze_starts_at_ready() -> None:
    t0, t1 = 100.0, 104.0  # the command took 4 s (it noticed the old exit late)
    got = {p.name: (p.start, p.end) for p in _handoff_phases(PHASES, t0, t1, 102.3)}
    start, end = got["freeze (restore, verify)"]
    assert abs(start - 102.3) < 1e-9 and abs(end - 102.33) < 1e-9
    assert got["new process start + pre-copy (old serving)"] == (t0, start)
    assert got["old process exit"] == (end, t1)


def test_without_the_ready_time_it_is_laid_out_from_the_end() -> None:
    got = {p.name: (p.start, p.end) for p in _handoff_phases(PHASES, 100.0, 104.0)}
    start, end = got["freeze (restore, verify)"]
    assert abs(end - (104.0 - 0.02)) < 1e-9 and abs(start - (104.0 - 0.05)) < 1e-9


def test_a_ready_time_outside_the_command_is_not_trusted() -> None:
    got = {p.name: p.start for p in _handoff_phases(PHASES, 100.0, 104.0, 50.0)}
    assert abs(got["freeze (restore, verify)"] - (104.0 - 0.05)) < 1e-9


def test_the_command_anchors_ready_before_start_counts_from_the_spawn() -> None:
    """The new process counts "start" from its connection (at 100.8, spawned at 100.0):
    Ready came start + precopy after the connection, and the command's "start" is the
    whole start-up from the spawn. (Anchoring on the rewritten "start" put the freeze
    0.8 s late here: past the end of the command, so it was laid out from the end.)"""
    report = {"connected_at": 100.8, "phases_ms": dict(PHASES)}
    _anchor_phases(report, 100.0)
    assert abs(report["ready_at"] - (100.8 + 1.5)) < 1e-9
    assert abs(report["phases_ms"]["start"] - 1300.0) < 1e-6
    placed = {p.name: p.start for p in _handoff_phases(report["phases_ms"], 100.0, 104.0,
                                                         report["ready_at"])}  # fmt: skip
    assert abs(placed["freeze (restore, verify)"] - 102.3) < 1e-9


def test_a_report_without_a_connection_is_left_as_it_is() -> None:
    report = {"ok": False, "phases_ms": {"start": 5.0}}
    _anchor_phases(report, 100.0)
    assert report == {"ok": False, "phases_ms": {"start": 5.0}}
