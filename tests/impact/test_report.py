"""Report forms: table, JSON, timeline PNG and docs markdown from synthetic results."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from hitless.impact import report
from hitless.impact.analysis import ClassStats, ImpactResult, Phase, Window


def result(name: str, lost: int) -> ImpactResult:
    arrivals = tuple(-1.0 + i / 100 for i in range(300) if not (100 <= i < 100 + lost))
    udp = ClassStats(
        "udp a→b", "udp", sent=300, received=300 - lost, lost=lost,
        longest_gap=0.01 * (lost + 1), disrupted=0.01 * lost,
        worst_latency=0.002, median_latency=0.001,
        failures={"lost": lost} if lost else {},
        disruptions=((0.0, 0.01 * lost),) if lost else (),
        arrivals=arrivals,
        failed_at=tuple(i / 100 for i in range(lost)),
    )  # fmt: skip
    tcp = ClassStats(
        "tcp stream a→b", "tcp-stream", sent=200, received=200, lost=0,
        outcome="survived", arrivals=tuple(-1.0 + i / 100 for i in range(200)),
    )  # fmt: skip
    conn = ClassStats(
        "new tcp a→b", "tcp-connect", sent=100, received=100 - (1 if lost else 0),
        lost=1 if lost else 0, worst_latency=1.02 if lost else 0.001,
        failures={"timeout": 1} if lost else {}, failed_at=(0.05,) if lost else (),
    )  # fmt: skip
    return ImpactResult(
        operation=name,
        window=Window(0.0, 0.12, (Phase("freeze", 0.0, 0.02), Phase("restore", 0.02, 0.12))),
        classes=(udp, tcp, conn),
        duration=3.0,
        traffic_start=-1.0,
        settings={"rates": {"udp_pps": 100.0}},
        notes=("nd: skipped, the second host has no IPv6 address",),
    )


RESULTS = [result("hitless upgrade", 0), result("restart --mode cold", 30)]


def test_table_has_a_row_per_operation_and_class() -> None:
    console = Console(record=True, width=200)
    report.print_table(RESULTS, console=console)
    text = console.export_text()
    assert "hitless upgrade" in text and "restart --mode cold" in text
    assert text.count("udp a→b") == 2 and text.count("new tcp a→b") == 2
    assert "30 lost" in text and "1 timeout" in text and "survived" in text
    assert "nd: skipped" in text


def test_json_round_trip() -> None:
    back = report.from_json(report.to_json(RESULTS, series=True))
    assert back == RESULTS
    short = report.from_json(report.to_json(RESULTS))
    assert short[1].by_name("udp a→b").lost == 30 and short[1].by_name("udp a→b").arrivals == ()
    with pytest.raises(ValueError, match="format version 99"):
        report.from_json({"version": 99, "results": []})


def test_timeline_png(tmp_path: Path) -> None:
    out = report.plot_timeline(RESULTS, tmp_path / "timeline.png", title="test")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    with pytest.raises(ValueError, match="at least one result"):
        report.plot_timeline([], tmp_path / "none.png")


def test_blips_markdown() -> None:
    md = report.blips_markdown(
        RESULTS, {"restart --mode cold/udp": "the datapath is gone while the daemon restarts"}
    )
    assert md.startswith("# Blips")
    assert "## hitless upgrade" in md and "## restart --mode cold" in md
    upgrade, cold = md.split("## restart --mode cold")
    assert "No disruption in any traffic class." in upgrade
    assert "| udp a→b | 300 | 30 |" in cold
    assert "- **udp a→b** (30 lost" in cold and "the datapath is gone" in cold
    assert "- **new tcp a→b** (1 failed" in cold and "*unexplained*" in cold
    assert "phases: freeze 20.0 ms, restore 100.0 ms" in cold


def test_controller_class_says_whether_it_stayed_connected() -> None:
    kept = ClassStats(
        "controller session", "controller", sent=200, received=200, lost=0,
        longest_gap=0.038, outcome="survived",
    )  # fmt: skip
    dropped = ClassStats(
        "controller session", "controller", sent=150, received=149, lost=1,
        longest_gap=0.62, disrupted=0.6, outcome="1 disconnect, reconnected after 590 ms",
        failures={"reset": 1, "unanswered": 1}, disruptions=((0.1, 0.7),),
    )  # fmt: skip
    results = [
        ImpactResult("hitless upgrade", Window(0.0, 0.1), (kept,), 3.0, -1.0),
        ImpactResult("hitless restart --mode cold", Window(0.0, 0.8), (dropped,), 3.0, -1.0),
    ]
    console = Console(record=True, width=250)
    report.print_table(results, console=console)
    text = console.export_text()
    assert "connected throughout, longest echo stall 38.0 ms" in text
    assert "1 disconnect, reconnected after 590 ms, longest echo stall 620.0 ms, 1 reset" in text
    md = report.blips_markdown(
        results, {"hitless restart --mode cold/controller": "the session dies with the process"}
    )
    upgrade, cold = md.split("## hitless restart --mode cold")
    assert "No disruption in any traffic class." in upgrade
    assert "| controller session | 150 | 1 |" in cold
    assert "(1 echoes unanswered, 1 disconnect, reconnected after 590 ms, echo stall" in cold
    assert "the session dies with the process" in cold
