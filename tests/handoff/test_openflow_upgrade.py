"""A bridge programmed with stock ovs-ofctl keeps its OpenFlow state across a hitless
upgrade: the same rules, groups and meters, their counters still counting, and no packet
lost while traffic follows those rules (not NORMAL)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hitless.impact.analysis import Phase
from hitless.impact.run import Rates, measure
from tests.netns import Topology
from tests.switch import Sw, run

pytestmark = pytest.mark.netns

BIN = Path(sys.executable).parent


def ofctl(sw: Sw, br: str, *args: str) -> str:
    r = run(
        ["ovs-ofctl", "-O", "OpenFlow13", args[0], f"unix:{sw.rundir.path}/{br}.mgmt", *args[1:]]
    )
    return r.stdout


def rules(sw: Sw, br: str) -> dict[str, int]:
    """dump-flows as {rule without its counters and ages: n_packets}."""
    out = {}
    for line in ofctl(sw, br, "dump-flows").splitlines():
        m = re.search(r"n_packets=(\d+)", line)
        if not m:
            continue
        key = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", line).strip()
        out[key] = int(m.group(1))
    return out


def test_upgrade_keeps_openflow_rules_groups_meters_and_counters(
    started: Sw, topology: Topology
) -> None:
    sw = started
    a = topology.add_host("a", "10.81.0.1/24")
    b = topology.add_host("b", "10.81.0.2/24")
    br = topology.name("br")
    sw.vsctl(
        "add-br",
        br,
        "--",
        "set",
        "bridge",
        br,
        "datapath_type=netdev",
        "fail_mode=secure",
        "--",
        "add-port",
        br,
        a.switch_port,
        "--",
        "add-port",
        br,
        b.switch_port,
    )
    pa, pb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    ofctl(sw, br, "add-group", f"group_id=5,type=select,bucket=output:{pb}")
    ofctl(sw, br, "add-meter", "meter=1,pktps,band=type=drop,rate=100000")
    ofctl(sw, br, "add-flow", f"priority=100,in_port={pa},actions=group:5")
    ofctl(sw, br, "add-flow", f"priority=100,in_port={pb},actions=output:{pa}")
    ofctl(sw, br, "add-flow", "priority=300,udp,tp_dst=9,cookie=0x42,actions=drop")
    assert a.ping(b.addr, count=3, interval=0.1)
    before = rules(sw, br)
    groups_before = ofctl(sw, br, "dump-groups")
    meters_before = ofctl(sw, br, "dump-meters")
    assert len(before) == 3 and sum(before.values()) > 0

    results: list[dict] = []

    def upgrade() -> list[Phase]:
        t0 = time.monotonic()
        r = subprocess.run(
            [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd="/",
        )
        results.append(json.loads(r.stdout))
        return [Phase("upgrade", t0, time.monotonic())]

    res = measure(
        [a, b],
        upgrade,
        name="upgrade",
        duration=4,
        at=1.5,
        rates=Rates(udp_pps=1000),
        classes=("udp", "tcp-stream", "tcp-connect"),
    )
    (report,) = results
    assert report["ok"], report
    assert report["counts"].get("openflow_rules") == 3
    lost = {c.name: c.lost for c in res.classes if c.lost}
    assert not lost, lost
    after = rules(sw, br)
    assert set(after) == set(before)  # the same rules, cookies, matches and actions
    for rule, n in before.items():
        assert after[rule] >= n, rule  # counters kept, and still counting
    assert sum(after.values()) > sum(before.values()) + 1000
    strip = lambda text: re.sub(r"(duration|packet_count|byte_count)=[^,\s]*,?", "", text)  # noqa: E731
    assert strip(ofctl(sw, br, "dump-groups")) == strip(groups_before)
    assert ofctl(sw, br, "dump-meters").split("\n")[0] == meters_before.split("\n")[0]
