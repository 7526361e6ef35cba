"""The product's claim, measured with real traffic between namespace hosts on the
netdev datapath: a hitless upgrade or downgrade loses nothing, and a handoff that
fails at any phase leaves traffic flowing with exactly one owner.

Traffic (issue 4's bar): a sequenced UDP stream at 1,000 packets/s each way, a
long-lived TCP connection, and a new TCP connection every 20 ms, judged by the shared
handoff assertion (tests/traffic.py: nothing lost or duplicated, longest gap and worst
latency under the stated bound, the operation inside the traffic). State checks that a
flush and relearn would fail: a silent host's MAC entry keeps its age, megaflow
counters grow by at least what was delivered. Each zero-loss case also runs with a
fault point that breaks the claim (``BREAKS``) and must then fail."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from hitless.impact.analysis import ImpactResult
from hitless.impact.bounds import summary, violations
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.traffic import (  # noqa: F401  (tests/datapath/test_ebpf_upgrade.py imports them from here)
    BIN,
    BREAKS,
    CLASSES,
    HANDOFF,
    RATES,
    Bound,
    assert_handoff_traffic,
    bound_of,
    handoff_op,
    handoff_under_traffic,
    judge,
    lease_bound,
)
from tests.upgrade.builds import build, has_fault_point, previous_versions

pytestmark = pytest.mark.netns


def netdev_switch(
    sw: Sw, topo: Topology, start_cmd: list[str] | None = None, env: dict[str, str] | None = None
) -> tuple[Host, Host]:
    """Hosts a and b (they carry the traffic) and c (silent after one ping: its MAC entry
    can only survive a handoff by being carried over, with its age) on a netdev bridge
    named ``bridge_of(topo)`` (unique: a netdev bridge is also a TAP device in the root
    namespace)."""
    a = topo.add_host("a", "10.0.0.1/24")
    b = topo.add_host("b", "10.0.0.2/24")
    c = topo.add_host("c", "10.0.0.3/24")
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
    # MAC entries live an hour, not the default 5 minutes: the silent host's entry must
    # outlast the case (two handoffs under traffic, each behind a new process's start,
    # took 75 s each at load 27-29), or the state check would read its ageing out as a
    # flush. Set with the bridge (every previous build reads it there), never changed.
    sw.vsctl(
        "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
        f"other_config:mac-aging-time={MAC_AGING}",
        "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
        "--", "add-port", br, c.switch_port,
    )  # fmt: skip
    # c and a know each other for good (no ARP later): c speaks once, then never again.
    c.set_neigh(a.addr, a.mac)
    a.set_neigh(c.addr, c.mac)
    assert c.ping(a.addr, count=1)
    assert a.ping(b.addr, count=2, interval=0.1)
    return a, b


MAC_AGING = 3600


def bridge_of(topo: Topology) -> str:
    return topo.name("nbr")


def fdb(sw: Sw, br: str) -> list[str]:
    """fdb/show without the ages: "port vlan mac" lines, sorted."""
    return sorted(f"{p} {k}" for k, (p, _) in fdb_entries(sw, br).items())


def assert_fdb_kept(sw: Sw, br: str, before: list[str]) -> None:
    """Every entry of ``before`` (``fdb``) is still there on its port; the only new ones
    are the bridge's own LOCAL port's (its kernel sends IPv6 RS/MLD whenever it likes)."""
    after = fdb(sw, br)
    assert set(before) <= set(after), sorted(set(before) - set(after))
    new = set(after) - set(before)
    assert all(line.split()[0] == "LOCAL" for line in new), sorted(new)


def fdb_entries(sw: Sw, br: str) -> dict[str, tuple[str, int]]:
    """fdb/show: "vlan mac" -> (port, age in seconds)."""
    out = {}
    for line in sw.appctl("fdb/show", br).stdout.splitlines()[1:]:
        port, vlan, mac, age = line.split()
        out[f"{vlan} {mac}"] = (port, int(age))
    return out


@dataclass
class Before:
    """What the switch held before the operation, for the state checks."""

    br: str
    silent: str  # "vlan mac" of host c
    fdb: dict[str, tuple[str, int]]
    flows: dict[str, int]
    at: float  # monotonic time of the fdb reading
    macs: tuple[str, str]  # hosts a and b

    def pair(self, flow: str) -> bool:
        """A megaflow of traffic between a and b (either direction)."""
        a, b = self.macs
        return f"src={a},dst={b}" in flow or f"src={b},dst={a}" in flow


def keep_idle_flows(sw: Sw, bridge: str | None = None) -> None:
    """The state checks read the megaflows after the traffic has ended and been analysed,
    which takes more than the default 10 s max-idle on a loaded machine (the flows had
    expired: "megaflow gone", counters 0): keep idle flows two minutes. ``bridge``: set it
    on that Bridge row too, where builds up to b74b2c3 (state format 3) read it (this build
    says it is ignored there), for a test that ends on such a build."""
    sw.vsctl("set", "Open_vSwitch", ".", "other_config:max-idle=120000")
    if bridge is not None:
        sw.vsctl("set", "Bridge", bridge, "other_config:max-idle=120000")


def before(sw: Sw, topo: Topology) -> Before:
    keep_idle_flows(sw)
    br = bridge_of(topo)
    c = topo.hosts["c"]
    macs = (topo.hosts["a"].mac, topo.hosts["b"].mac)
    return Before(br, f"0 {c.mac}", fdb_entries(sw, br), flows(sw, br), time.monotonic(), macs)


def fdb_problems(sw: Sw, was: Before) -> list[str]:
    """Every entry survived on its port (new ones only for the bridge's LOCAL port,
    whose kernel sends IPv6 RS/MLD whenever it likes); the silent host's entry kept
    ageing instead of starting again (a flush and relearn cannot bring it back)."""
    now = fdb_entries(sw, was.br)
    elapsed = time.monotonic() - was.at
    out = []
    for key, (port, _) in was.fdb.items():
        if key not in now or now[key][0] != port:
            out.append(f"fdb: {key} on port {port} before, {now.get(key)} after")
    out += [
        f"fdb: new entry {k} {v}" for k, v in now.items() if k not in was.fdb and v[0] != "LOCAL"
    ]
    if was.silent not in was.fdb:
        out.append(f"fdb: the silent host {was.silent} was never learned")
    elif was.silent in now:
        age0, age1 = was.fdb[was.silent][1], now[was.silent][1]
        if age1 < age0 + int(elapsed) - 1:
            out.append(f"fdb: silent host aged {age0} s -> {age1} s over {elapsed:.1f} s (reset)")
    return out


def counter_problems(sw: Sw, was: Before, delivered: int) -> list[str]:
    """Adopted, not flushed: every megaflow between a and b (the ones the traffic keeps
    alive) is still there, and their counters went up by at least what the UDP streams
    delivered (a flushed and relearned table counts only the traffic after the handoff)."""
    now = {f: n for f, n in flows(sw, was.br).items() if was.pair(f)}
    old = {f: n for f, n in was.flows.items() if was.pair(f)}
    # A megaflow is known by its match: a bond that rebalances (balance-tcp/slb, every
    # 10 s by default) re-translates a flow whose hash bucket moved, so its actions
    # change while its match stays; a flush shows in the counters below.
    matches = {f.split(" -> ")[0] for f in now}
    out = [f"megaflow gone: {f}" for f in old if f.split(" -> ")[0] not in matches]
    if not old:
        out.append(f"no megaflow between a and b before the operation: {was.flows}")
    total0, total1 = sum(old.values()), sum(now.values())
    if total1 < total0 + delivered:
        out.append(
            f"megaflow counters: {total1} packets after < {total0} before + {delivered} delivered"
        )
    return out


def udp_delivered(res: ImpactResult) -> int:
    return sum(c.received for c in res.classes if c.kind == "udp")


def flows(sw: Sw, br: str) -> dict[str, int]:
    """dpctl/dump-flows: match+actions -> packet count."""
    out = {}
    for line in sw.appctl("dpctl/dump-flows", br).stdout.splitlines():
        m = re.match(r"(.*), packets:(\d+), bytes:\d+, used:[^,]*, actions:(.*)", line)
        assert m, line
        out[f"{m.group(1)} -> {m.group(3)}"] = int(m.group(2))
    return out


def assert_nothing_lost(res: ImpactResult, bound: Bound = HANDOFF) -> None:
    """The shared handoff traffic assertion (tests/traffic.py), and the classes this
    file's traffic must have had."""
    assert {c.kind for c in res.classes} >= {"udp", "tcp-stream", "tcp-connect"}
    assert_handoff_traffic(res, bound)


@pytest.mark.parametrize("fault", [None, *BREAKS])
def test_upgrade_with_traffic_loses_nothing_and_keeps_all_state(
    sw: Sw, topology: Topology, fault: str | None
) -> None:
    a, b = netdev_switch(sw, topology)
    was = before(sw, topology)
    old = sw.daemon_pid
    report, res = handoff_under_traffic(sw, [a, b], "upgrade", fault=fault)
    assert report["ok"], report
    assert report["old_pid"] == old and sw.daemon_pid == report["new_pid"]
    if fault is None:  # hosts a, b and c's ports: their rings were mapped before the freeze
        assert report["rings_mapped_ahead"] == 3, report
    problems = violations(res, bound_of([report])) + fdb_problems(sw, was)
    problems += counter_problems(sw, was, udp_delivered(res))
    judge(problems, fault, res)


def _previous_cases() -> list[tuple[str, str | None, str]]:
    """(build, fault, the handoff the fault is armed in): each build clean; on the newest
    each fault in this build's process of the upgrade, and a blackout in the previous
    build's own process of the downgrade when that build has the fault point."""
    versions = previous_versions()
    cases = [(v, None, "upgrade") for v in versions]
    if versions:
        newest = versions[-1]
        cases += [(newest, f, "upgrade") for f in BREAKS]
        if has_fault_point(newest, "blackout"):
            cases.append((newest, "blackout:100", "downgrade"))
    return cases


# Two handoffs under traffic, each behind a new process's start: at load average 27-29
# one upgrade's new process took 75 s to say Ready, and the case ran past 300 s.
@pytest.mark.timeout(900)
@pytest.mark.parametrize(("previous", "fault", "armed"), _previous_cases())
def test_upgrade_from_previous_build_and_downgrade_back_with_traffic(
    sw: Sw, topology: Topology, previous: str, fault: str | None, armed: str
) -> None:
    """Up to this build and back down to the previous one, each under its own traffic
    run, each judged by the same bound as a handoff between two processes of this build
    (tests/traffic.py: measured, the previous builds need no more); the fault (if any)
    is armed in the new process of the ``armed`` handoff: this build's on the upgrade,
    the previous build's on the downgrade."""
    old_build = build(previous)
    a, b = netdev_switch(sw, topology, start_cmd=[str(old_build.hitless), "start"])
    was = before(sw, topology)
    # The checks run on the previous build, after the downgrade: builds up to b74b2c3
    # read max-idle from the Bridge row (2026-12-07 at load ~20, the 77f006e and b74b2c3
    # cases: "megaflow gone", counters 0 after the downgrade).
    keep_idle_flows(sw, bridge_of(topology))
    up_report, up = handoff_under_traffic(sw, [a, b], "upgrade", "--to",
                                          str(BIN / "hitless-vswitchd"),
                                          fault=fault if armed == "upgrade" else None)  # fmt: skip
    down_report, down = handoff_under_traffic(sw, [a, b], "downgrade", "--to",
                                              str(old_build.vswitchd),
                                              fault=fault if armed == "downgrade" else None)  # fmt: skip
    ups, downs = [up_report], [down_report]
    assert [r["ok"] for r in ups + downs] == [True, True], ups + downs
    assert str(old_build.venv) in Path(f"/proc/{sw.daemon_pid}/cmdline").read_text()
    problems = violations(up, bound_of(ups))
    problems += [f"downgrade: {p}" for p in violations(down, bound_of(downs))]
    delivered = sum(c.received for r in (up, down) for c in r.classes if c.kind == "udp")
    problems += fdb_problems(sw, was) + counter_problems(sw, was, delivered)
    print(summary(down))
    judge(problems, fault, up if armed == "upgrade" else down)
    if fault is not None and fault.startswith("blackout:"):  # caught where it was armed
        there = [p for p in problems if p.startswith("downgrade: ") == (armed == "downgrade")]
        assert any("gap" in p for p in there), f"not caught on the {armed}: {problems}"


# What each fault implies for traffic: the old process is frozen from Ready until it
# sees the new one is gone (its socket closes when the new process dies; a new process
# that hangs is noticed when the 0.5 s lease expires) and thaws. Either way the bound is
# the lease: under load a crash after restoring kept traffic waiting 90-125 ms (seen
# 2026-12-06), a hang ~0.5 s.
LEASE = 0.5
ROLLBACK_BOUNDS = {
    "crash:ready": lease_bound(LEASE, "the new process dies: frozen until the old sees it"),
    "crash:restored": lease_bound(LEASE, "the new process dies: frozen until the old sees it"),
    "crash:acked": lease_bound(LEASE, "the new process dies: frozen until the old sees it"),
    "crash:committed": lease_bound(LEASE, "the new process dies: frozen until the old sees it"),
    "stall:restored": lease_bound(LEASE, "the new process hangs: frozen until the lease expires"),
}


@pytest.mark.parametrize("fault", list(ROLLBACK_BOUNDS))
def test_failed_handoff_with_traffic_rolls_back_without_loss(
    sw: Sw, topology: Topology, fault: str
) -> None:
    a, b = netdev_switch(sw, topology)
    old = sw.daemon_pid
    report, res = handoff_under_traffic(sw, [a, b], "upgrade", "--lease", str(LEASE),
                                        env={"HITLESS_FAULT": fault}, duration=10)  # fmt: skip
    assert not report["ok"] and report["returncode"] == 1
    assert sw.daemon_pid == old
    # Packets that arrived while the old process was frozen waited in the rings.
    assert_nothing_lost(res, ROLLBACK_BOUNDS[fault])
    assert a.ping(b.addr, count=2, interval=0.1)


# With the old process killed right after the ack, part of the new process's blackout
# falls inside the freeze it reports: the bound excuses nothing inside the blackout's own
# window (the new process logs it), else a 100 ms one left only 93-94 ms unexplained.
@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate"])
def test_old_process_killed_after_the_ack_with_traffic(
    sw: Sw, topology: Topology, fault: str | None
) -> None:
    a, b = netdev_switch(sw, topology, env={"HITLESS_FAULT": "crash:old-after-ack"})
    old = sw.daemon_pid
    report, res = handoff_under_traffic(sw, [a, b], "upgrade", fault=fault)
    assert report["ok"], report
    assert sw.daemon_pid == report["new_pid"] != old
    judge(violations(res, bound_of([report])), fault, res)


# Each VLAN host's relay keeps running while the new process is blacked out, and the
# relays' waits for a CPU are excused as the switch's are, except inside the blackout's
# own window: excused there they ate 4-35 ms of a 100 ms blackout (85-112 ms left
# unexplained against the 90 ms bound, missed in 3 of 4 runs at load 1-3, 2026-12-06).
@pytest.mark.parametrize("fault", [None, *BREAKS])
def test_vlan_tagged_hosts_across_an_upgrade(sw: Sw, topology: Topology, fault: str | None) -> None:
    """Hosts that send 802.1Q-tagged frames (VLAN 10) on trunk ports: their traffic
    crosses the upgrade under the same claim, their MAC entries stay on VLAN 10 and
    their megaflows keep counting."""
    a = topology.add_host("a", "10.0.10.1/24", vlan=10)
    b = topology.add_host("b", "10.0.10.2/24", vlan=10)
    sw.hitless("start")
    br = bridge_of(topology)
    sw.vsctl(
        "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
        "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
    )  # fmt: skip
    assert a.ping(b.addr, count=2, interval=0.1)
    # The megaflows are read after the traffic has been analysed: at load ~25 that took
    # more than the default 10 s max-idle ("megaflow gone", counters 0, in a clean run).
    keep_idle_flows(sw)
    fdb0, flows0 = fdb_entries(sw, br), flows(sw, br)
    assert {f"10 {a.mac}", f"10 {b.mac}"} <= set(fdb0), fdb0
    # With flush-after-adopt the megaflow counters must show the flush: only UDP then, so
    # that the relearned flows cannot make up with TCP packets for the datagrams they
    # never counted (the hosts keep talking, so their MAC entries come back at once).
    classes = ("udp",) if fault == "flush-after-adopt" else CLASSES
    plumbing0 = {h.name: h.harness_drops() for h in (a, b)}
    # Each host's VLAN relay sits between its sender and the switch: its waits for a
    # CPU are excused as the switch's are (at load 17 it left 92 ms unexplained).
    relays = [h.shim.pid for h in (a, b) if h.shim is not None]
    report, res = handoff_under_traffic(
        sw, [a, b], "upgrade", fault=fault, classes=classes, relays=relays
    )
    assert report["ok"], report
    problems = violations(res, bound_of([report]))
    # A loss here was once (2026-12-06) 10 + 1 of 12,000 with no cause found; each VLAN
    # host relays its frames through a userspace shim (tests/netns.py), whose own drops
    # are counted so that a loss says whether the hosts' plumbing or the switch lost it.
    plumbing = {
        h.name: {k: v - plumbing0[h.name].get(k, 0) for k, v in h.harness_drops().items()}
        for h in (a, b)
    }
    print(f"dropped by the hosts' own plumbing (not the switch): {plumbing}")
    fdb1 = fdb_entries(sw, br)
    problems += [f"fdb: {k} {v} -> {fdb1.get(k)}" for k, v in fdb0.items()
                 if k.startswith("10 ") and fdb1.get(k, ("",))[0] != v[0]]  # fmt: skip
    was = Before(br, "", fdb0, flows0, 0.0, (a.mac, b.mac))
    problems += counter_problems(sw, was, udp_delivered(res))
    judge(problems, fault, res)
