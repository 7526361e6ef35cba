"""coverage/show: counters that mean something, in ovs-vswitchd's layout."""

from __future__ import annotations

import re

from hitless.daemon.coverage import Coverage
from tests.daemon.test_testhooks import FLOW, dummy_bridge, ofctl
from tests.switch import Sw

LINE = re.compile(r"^(\S+) +\d+\.\d/sec +\d+\.\d{3}/sec +\d+\.\d{4}/sec   total: (\d+)$")


def totals(sw: Sw) -> dict[str, int]:
    text = sw.appctl("coverage/show").stdout
    lines = text.splitlines()
    assert lines[0].startswith("Event coverage, avg rate over last: 5 seconds, last minute, ")
    assert re.fullmatch(r"\d+ events never hit", lines[-1])
    out = {}
    for ln in lines[1:-1]:
        m = LINE.match(ln)
        assert m, ln
        out[m.group(1)] = int(m.group(2))
    return out


def test_counters_follow_what_the_switch_does(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, pcap=False)
    ofctl(sw, "add-flow", "priority=10,in_port=1,actions=output:2")
    before = totals(sw)
    for _ in range(3):
        sw.appctl("netdev-dummy/receive", "p1", FLOW)
    after = totals(sw)
    assert after["dpif_miss"] - before.get("dpif_miss", 0) == 1  # one megaflow, then hits
    assert after["dpif_hit"] - before.get("dpif_hit", 0) == 2
    assert after["upcall_handled"] - before.get("upcall_handled", 0) == 1
    assert after["dpif_flow_put"] - before.get("dpif_flow_put", 0) == 1
    assert after["unixctl_received"] > before["unixctl_received"]
    assert sw.appctl("coverage/read-counter", "dpif_hit").stdout == f"{after['dpif_hit']}\n"


def test_rates_are_averages_over_their_windows() -> None:
    c = Coverage()
    c.samples.append((0.0, {"x": 0}))
    c.samples.append((5.0, {"x": 10}))
    # 60 events in the last 5 s window (from the sample at t=5), 70 in the minute
    assert c.rate("x", 70, 10.0, 5.0) == 12.0
    assert c.rate("x", 70, 10.0, 60.0) == 70 / 60
    assert c.rate("x", 70, 10.0, 3600.0) == 70 / 3600
