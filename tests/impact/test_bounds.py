"""The shared handoff check (hitless.impact.bounds) on synthetic results: each rule can
fail, and a clean handoff passes."""

from __future__ import annotations

import dataclasses

import pytest

from hitless.impact.analysis import ClassStats, ImpactResult, Phase, Window
from hitless.impact.bounds import HANDOFF, after_freeze, lease_bound, violations


def result(**udp: object) -> ImpactResult:
    stats = {"name": "udp a→b", "kind": "udp", "sent": 5000, "received": 5000, "lost": 0,
             "longest_gap": 0.012, "worst_latency": 0.011, **udp}  # fmt: skip
    return ImpactResult(
        operation="upgrade",
        window=Window(0.0, 1.2, (Phase("freeze", 1.1, 1.15),)),
        classes=(
            ClassStats(**stats),  # type: ignore[arg-type]
            ClassStats("tcp stream a→b", "tcp-stream", 500, 500, 0, worst_latency=0.02,
                       outcome="survived"),  # fmt: skip
        ),
        duration=10.0,
        traffic_start=-1.5,
    )


def test_a_clean_handoff_keeps_the_claim() -> None:
    assert violations(result()) == []


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"lost": 1, "received": 4999}, "1 of 5000 lost"),
        ({"duplicates": 3}, "3 delivered twice"),
        ({"longest_gap": 0.100}, "longest gap 100.0 ms"),  # a 100 ms blackout, nothing lost
        ({"worst_latency": 0.100}, "worst latency 100.0 ms"),
        ({"sent": 0, "received": 0}, "nothing sent"),
    ],
)
def test_each_rule_fails(change: dict, word: str) -> None:
    bad = violations(result(**change))
    assert any(word in b for b in bad), bad


def test_reordering_is_reported_not_a_violation() -> None:
    assert violations(result(reordered=2)) == []


def test_the_operation_must_lie_inside_the_traffic() -> None:
    r = result()
    late = dataclasses.replace(r, traffic_start=-0.1)
    assert any("not before it" in v for v in violations(late))
    long_op = dataclasses.replace(r, window=Window(0.0, 8.5))
    assert any("not inside it" in v for v in violations(long_op))
    # with phases, the freeze is what must lie inside (the old process's exit need not)
    phased = dataclasses.replace(r, window=Window(0.0, 8.5, (Phase("freeze (restore, verify)", 7.0, 7.2),
                                                            Phase("old process exit", 7.2, 8.5))))
    assert violations(phased) == []
    late_freeze = dataclasses.replace(r, window=Window(0.0, 8.5, (Phase("freeze", 8.0, 8.4),)))
    assert any("the freeze ended 8.40 s in" in v for v in violations(late_freeze))


def test_a_broken_tcp_stream_is_a_violation() -> None:
    r = result()
    tcp = dataclasses.replace(r.classes[1], outcome="reset")
    assert any("reset" in v for v in violations(dataclasses.replace(r, classes=(r.classes[0], tcp))))


def test_bounds_follow_the_reported_freeze_and_the_fault() -> None:
    b = after_freeze([0.040, 0.085])
    assert b.gap == pytest.approx(0.085 + HANDOFF.gap)
    # a 100 ms stall outside the reported freeze breaks it whatever the freeze was
    assert b.gap < 0.085 + 0.100
    assert HANDOFF.gap < 0.100  # a deliberate 100 ms blackout fails the plain bound
    assert lease_bound(0.5).gap > 0.5
