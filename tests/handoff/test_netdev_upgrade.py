"""The product's claim, measured with real traffic between namespace hosts on the
netdev datapath: a hitless upgrade or downgrade loses nothing, and a handoff that
fails at any phase leaves traffic flowing with exactly one owner.

Traffic (issue 4's bar): a sequenced UDP stream at 1,000 packets/s each way, a
long-lived TCP connection, and a new TCP connection every 20 ms."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hitless.impact.analysis import ClassStats, ImpactResult, Phase
from hitless.impact.run import Rates, measure
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.upgrade.builds import build, previous_versions

pytestmark = pytest.mark.netns

BIN = Path(sys.executable).parent
CLASSES = ("udp", "tcp-stream", "tcp-connect")
RATES = Rates(udp_pps=1000, tcp_interval=0.01, connect_interval=0.02)


def netdev_switch(
    sw: Sw, topo: Topology, start_cmd: list[str] | None = None, env: dict[str, str] | None = None
) -> tuple[Host, Host]:
    """Hosts a and b on a netdev bridge named ``bridge_of(topo)`` (unique: a netdev
    bridge is also a TAP device in the root namespace)."""
    a = topo.add_host("a", "10.0.0.1/24")
    b = topo.add_host("b", "10.0.0.2/24")
    cmd = start_cmd or [str(BIN / "hitless"), "start"]
    r = subprocess.run(
        [*cmd, "--rundir", str(sw.rundir.path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd="/",
    )
    assert r.returncode == 0, r.stderr
    br = bridge_of(topo)
    sw.vsctl(
        "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
        "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
    )  # fmt: skip
    assert a.ping(b.addr, count=2, interval=0.1)
    return a, b


def bridge_of(topo: Topology) -> str:
    return topo.name("nbr")


def fdb(sw: Sw, br: str) -> list[str]:
    """fdb/show without the ages (they keep running)."""
    return sorted(
        line.rsplit(None, 1)[0] for line in sw.appctl("fdb/show", br).stdout.splitlines()[1:]
    )


def assert_fdb_kept(sw: Sw, br: str, before: list[str]) -> None:
    """Every entry survived, on its port; the only new ones are the bridge's own
    internal port (its kernel sends IPv6 router solicitations and MLD reports whenever
    it likes, so the switch may learn its MAC during the test)."""
    after = fdb(sw, br)
    assert set(before) <= set(after), sorted(set(before) - set(after))
    new = set(after) - set(before)
    assert all(line.split()[0] == "LOCAL" for line in new), sorted(new)


def flows(sw: Sw, br: str) -> dict[str, int]:
    """dpctl/dump-flows: match+actions -> packet count."""
    out = {}
    for line in sw.appctl("dpctl/dump-flows", br).stdout.splitlines():
        m = re.match(r"(.*), packets:(\d+), bytes:\d+, used:[^,]*, actions:(.*)", line)
        assert m, line
        out[f"{m.group(1)} -> {m.group(3)}"] = int(m.group(2))
    return out


def handoff_op(
    sw: Sw, *args: str, env: dict[str, str] | None = None, results: list[dict] | None = None
) -> object:
    def operation() -> list[Phase]:
        t0 = time.monotonic()
        r = subprocess.run(
            [str(BIN / "hitless"), *args, "--rundir", str(sw.rundir.path), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **(env or {})},
            cwd="/",
        )
        report = json.loads(r.stdout)
        report["returncode"] = r.returncode
        if results is not None:
            results.append(report)
        return [Phase(args[0], t0, time.monotonic())]

    return operation


def assert_nothing_lost(res: ImpactResult) -> None:
    by = {c.name: c for c in res.classes}
    problems = []
    for c in by.values():
        c: ClassStats
        if c.lost:
            problems.append(f"{c.name}: {c.lost} of {c.sent} lost")
        if c.kind == "tcp-stream" and c.outcome != "survived":
            problems.append(f"{c.name}: {c.outcome}")
    assert not problems, problems
    assert {c.kind for c in res.classes} >= {"udp", "tcp-stream", "tcp-connect"}


def test_upgrade_with_traffic_loses_nothing_and_keeps_all_state(sw: Sw, topology: Topology) -> None:
    a, b = netdev_switch(sw, topology)
    br = bridge_of(topology)
    fdb_before, flows_before = fdb(sw, br), flows(sw, br)
    old = sw.daemon_pid
    results: list[dict] = []
    res = measure(
        [a, b],
        handoff_op(sw, "upgrade", results=results),
        name="upgrade",
        duration=5,
        at=2,
        rates=RATES,
        classes=CLASSES,
    )
    (report,) = results
    assert report["ok"], report
    assert report["old_pid"] == old and sw.daemon_pid == report["new_pid"]
    assert_nothing_lost(res)
    assert_fdb_kept(sw, br, fdb_before)
    flows_after = flows(sw, br)
    for flow, packets in flows_before.items():
        # Adopted, not flushed: every flow is still there and its counter kept counting.
        assert flow in flows_after and flows_after[flow] >= packets, flow


@pytest.mark.parametrize("previous", previous_versions())
def test_upgrade_from_previous_build_and_downgrade_back_with_traffic(
    sw: Sw, topology: Topology, previous: str
) -> None:
    old_build = build(previous)
    a, b = netdev_switch(sw, topology, start_cmd=[str(old_build.hitless), "start"])
    br = bridge_of(topology)
    fdb_before = fdb(sw, br)
    results: list[dict] = []

    def up_and_down() -> list[Phase]:
        phases = handoff_op(sw, "upgrade", "--to", str(BIN / "hitless-vswitchd"), results=results)()
        time.sleep(1.0)
        return (
            phases + handoff_op(sw, "downgrade", "--to", str(old_build.vswitchd), results=results)()
        )

    res = measure(
        [a, b],
        up_and_down,
        name="upgrade+downgrade",
        duration=6,
        at=1.5,
        rates=RATES,
        classes=CLASSES,
    )
    assert [r["ok"] for r in results] == [True, True], results
    assert_nothing_lost(res)
    assert str(old_build.venv) in Path(f"/proc/{sw.daemon_pid}/cmdline").read_text()
    assert_fdb_kept(sw, br, fdb_before)


@pytest.mark.parametrize(
    "fault", ["crash:ready", "crash:restored", "crash:acked", "crash:committed", "stall:restored"]
)
def test_failed_handoff_with_traffic_rolls_back_without_loss(
    sw: Sw, topology: Topology, fault: str
) -> None:
    a, b = netdev_switch(sw, topology)
    old = sw.daemon_pid
    results: list[dict] = []
    res = measure(
        [a, b],
        handoff_op(sw, "upgrade", "--lease", "0.5", env={"HITLESS_FAULT": fault}, results=results),
        name=fault,
        duration=4,
        at=1.5,
        rates=RATES,
        classes=CLASSES,
    )
    (report,) = results
    assert not report["ok"] and report["returncode"] == 1
    assert sw.daemon_pid == old
    # Packets that arrived while the old process was frozen waited in the rings.
    assert_nothing_lost(res)
    assert a.ping(b.addr, count=2, interval=0.1)


def test_old_process_killed_after_the_ack_with_traffic(sw: Sw, topology: Topology) -> None:
    a, b = netdev_switch(sw, topology, env={"HITLESS_FAULT": "crash:old-after-ack"})
    old = sw.daemon_pid
    results: list[dict] = []
    res = measure(
        [a, b],
        handoff_op(sw, "upgrade", results=results),
        name="old dies",
        duration=4,
        at=1.5,
        rates=RATES,
        classes=CLASSES,
    )
    (report,) = results
    assert report["ok"], report
    assert sw.daemon_pid == report["new_pid"] != old
    assert_nothing_lost(res)
