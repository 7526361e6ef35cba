"""The shared handoff check (hitless.impact.bounds) on synthetic results: each rule can
fail, and a clean handoff passes."""

from __future__ import annotations

import dataclasses

import pytest

from hitless.impact.analysis import ClassStats, ImpactResult, Phase, Window
from hitless.impact.bounds import HANDOFF, after_freeze, lease_bound, violations
from hitless.impact.cpuwait import Waited


def result(**udp: object) -> ImpactResult:
    stats = {"name": "udp a→b", "kind": "udp", "sent": 5000, "received": 5000, "lost": 0,
             "longest_gap": 0.012, "worst_latency": 0.011, **udp}  # fmt: skip
    return ImpactResult(
        operation="upgrade",
        window=Window(0.0, 1.2, (Phase("freeze", 1.1, 1.15),)),
        classes=(
            ClassStats(**stats),  # type: ignore[arg-type]
            ClassStats(
                "tcp stream a→b", "tcp-stream", 500, 500, 0, worst_latency=0.02, outcome="survived"
            ),  # fmt: skip
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
        # From JSON (no holds listed): the receiver's gap against the freeze + the bound;
        # a 100 ms blackout beyond the 50 ms freeze, nothing lost.
        ({"longest_gap": 0.160}, "longest gap 160.0 ms"),
        ({"worst_latency": 0.160}, "worst latency 160.0 ms"),
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
    phased = dataclasses.replace(
        r,
        window=Window(
            0.0,
            8.5,
            (Phase("freeze (restore, verify)", 7.0, 7.2), Phase("old process exit", 7.2, 8.5)),
        ),
    )
    assert violations(phased) == []
    late_freeze = dataclasses.replace(r, window=Window(0.0, 8.5, (Phase("freeze", 8.0, 8.4),)))
    assert any("the freeze ended 8.40 s in" in v for v in violations(late_freeze))


def test_a_broken_tcp_stream_is_a_violation() -> None:
    r = result()
    tcp = dataclasses.replace(r.classes[1], outcome="reset")
    assert any(
        "reset" in v for v in violations(dataclasses.replace(r, classes=(r.classes[0], tcp)))
    )


def test_bounds_follow_the_reported_freeze_and_the_fault() -> None:
    b = after_freeze([0.040, 0.085])
    assert (b.gap, b.freeze) == (HANDOFF.gap, 0.085)
    assert HANDOFF.gap < 0.100  # a deliberate 100 ms blackout fails the plain bound
    assert lease_bound(0.5).gap > 0.5


def holding(held: tuple = (), slow: tuple = (), cpu: tuple = ()) -> ImpactResult:
    """A result whose udp class lists what the switch held (freeze 1.1..1.15 s)."""
    r = result()
    udp = dataclasses.replace(r.classes[0], held=held, slow=slow, held_listed=True,
                              longest_gap=0.5, worst_latency=0.5)  # fmt: skip
    return dataclasses.replace(r, classes=(udp, r.classes[1]), cpu_waits=cpu)


def test_what_the_freeze_and_the_cpu_wait_explain_is_excused() -> None:
    # a stall across the freeze, 10 ms beyond it
    assert violations(holding(held=((1.1, 1.16),), slow=((1.1, 1.16),))) == []
    # 100 ms held away from the freeze, 80 ms of it waiting for a CPU (samples 2 ms apart)
    cpu = tuple((1.99 + i * 0.002, 1.992 + i * 0.002, 0.0016) for i in range(50))
    assert violations(holding(held=((2.0, 2.1),), cpu=cpu)) == []


@pytest.mark.parametrize(
    ("held", "slow", "cpu", "word"),
    [
        # 100 ms held beyond the freeze: a blackout right after the handoff
        (((1.1, 1.25),), (), (), "gap of 150.0 ms at +1.100 s, 100.0 ms of it unexplained"),
        # the same away from the handoff; the CPU wait elsewhere excuses nothing
        (((2.0, 2.1),), (), ((3.0, 3.1, 0.1),), "gap of 100.0 ms"),
        # a datagram delayed 100 ms, 5 ms of it waiting for a CPU
        ((), ((2.0, 2.1),), ((2.0, 2.1, 0.005),), "latency of 100.0 ms at +2.000 s, 95.0 ms"),
    ],
)
def test_what_nothing_explains_is_a_violation(
    held: tuple, slow: tuple, cpu: tuple, word: str
) -> None:
    bad = violations(holding(held=held, slow=slow, cpu=cpu))
    assert any(word in b for b in bad), bad


def test_waited_sums_the_samples_that_overlap() -> None:
    w = Waited([(0.0, 1.0, 0.5), (1.0, 2.0, 0.25), (2.0, 3.0, 0.125)])
    assert w(1.5, 1.6) == 0.25
    assert w(0.5, 2.5) == 0.875
    assert w(3.0, 4.0) == 0.0
    assert w(-1.0, 0.0) == 0.0


def test_a_cpu_that_ran_nothing_explains_its_part() -> None:
    r = holding(held=((2.0, 2.1),))
    assert violations(r)  # 100 ms held, nothing explains it
    assert violations(dataclasses.replace(r, cpu_stalls=((1.99, 2.07),))) == []  # 70 ms of it
