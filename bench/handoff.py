"""Handoff benchmark: what a user sees during ``hitless upgrade`` and ``hitless
downgrade``, against the size of the state, next to a cold restart of the same switch
and Open vSwitch's plain restart at the same size, all in the same run.

    .venv/bin/python bench/handoff.py [--sizes 0:0,10000:1000,100000:50000] [--runs 1]
                                      [--ops upgrade,downgrade,cold] [--downgrade-to REV]
                                      [--no-freeze-realtime] [--json FILE] [--keep DIR]

For each size RULES:MACS it runs ``hitless impact --switch both --ops OPS`` (root:
namespace hosts on a netdev bridge of the real daemon, and of Debian's ovs-vswitchd
with the same configuration): RULES OpenFlow rules on top of the table-miss NORMAL
rule (four match shapes over L2, L3 and L4, none hit; loaded with one ``ovs-ofctl
--bundle add-flows``), MACS MAC entries learned from real frames (as many megaflows),
then sequenced UDP at 1,000 datagrams/s each way, a new TCP connection every 20 ms, one
long-lived TCP connection, and ``ovs-appctl version`` every 5 ms (the appctl class:
connect to the control socket, one request). The downgrade goes to the build ``hitless
impact`` picks (the newest previous release, or ``--downgrade-to``).

One line per operation: the longest UDP gap (either direction; kernel receive times,
counted only while a datagram was due), the same with the machine's own stalls taken
out ("gap net": times a CPU ran nothing at all, seen by real-time probes pinned to each
CPU, see hitless.impact.analysis), "own": the switch's own part of a gap at most
(each gap less the larger of those stalls and the time the switch's forwarding process
waited for a CPU in it, its run-queue delay sampled by hitless impact, see
hitless.impact.cpuwait), "its wait": that wait within the longest gap, datagrams lost, new connections failed, the longest
time ``ovs-appctl`` went unanswered; for a handoff also the freeze, the longest UDP gap
across it, the switch's own part of the gaps that overlap the freeze ("own fz") and
of those anywhere else ("own else": the pre-copy while the old process serves, and
after), the old process's longest serving-loop turn during the pre-copy ("old loop"),
that turn's CPU time ("its cpu": much less than the turn means it waited for a core),
the most CPU time any pre-copy turn used ("loop cpu"), the most garbage collection in one
pre-copy turn ("loop gc") and its pre-copy time (from
``hitless upgrade --json``); the machine's stalls during the run (count, longest);
whether the long-lived TCP connection survived. Medians over ``--runs``; the ratios
upgrade / downgrade gap to Open vSwitch's restart gap.

The freeze's parts as the new process timed them (medians, upgrade and downgrade): the
old process freezing and sending, restore (wall and CPU), verify, commit (wall and CPU;
a wall time above the CPU time is mostly waiting for a CPU), and whether the freeze ran
as a real-time process (``hitless.daemon.priority.realtime``; ``--no-freeze-realtime``
runs the switches with ``HITLESS_FREEZE_REALTIME=0`` to measure what that changes; a
downgrade's new process is the older build, which decides for itself).

Both switches and the traffic agents run at niceness -10 (``hitless impact``: what
ovs-ctl gives ovs-vswitchd; the same for both, so a loaded machine weighs on both alike),
and the output says so. The machine is shared: the load average before and after each
size is printed with the figures, which are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CLASSES = "udp,tcp-connect,tcp-stream,appctl"


def _load() -> float:
    return os.getloadavg()[0]


def _duration(rules: int, macs: int) -> float:
    """Traffic long enough to cover the whole handoff of that much state on a loaded
    machine (at a load average of ~30 on 2 cores a 10,001-rule upgrade took 15.8 s,
    its freeze after the end of 15 s of traffic); and ``--after 5``: at least 5 s more
    after the operation, however long it takes (at load ~20 a 10,001-rule upgrade took
    45 s, past 33 s of traffic)."""
    return 25.0 + rules * 0.0008 + macs * 0.0004


def _op(results: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for r in results:
        if r["operation"] == name:
            return r
    return None


def _gap_across(classes: list[dict[str, Any]], start: float, end: float) -> float:
    """The longest time between two consecutive arrivals (any of ``classes``) that
    overlaps [start, end]: what the freeze itself did to the traffic, told apart from
    stalls elsewhere in the run (the machine's, with ~20 processes per core)."""
    best = 0.0
    for c in classes:
        a = sorted(x for x in c["arrivals"] if x is not None)
        for x, y in zip(a, a[1:], strict=False):
            if x < end and y > start:
                best = max(best, y - x)
    return best


def _own_gap(
    classes: list[dict[str, Any]],
    res: dict[str, Any],
    within: tuple[float, float] | None = None,
    outside: bool = False,
) -> tuple[float, float]:
    """The switch's own part of the longest gap, at most: over every two consecutive
    arrivals of ``classes``, the time between them less the larger of the machine's
    stalls in it (CPU probes) and the switch's forwarding process's wait for a CPU in it
    (its run-queue delay, ``hitless.impact.cpuwait``, sampled every 5 ms: the whole of
    each sample that overlaps). The two may overlap, so only the larger is taken out: an
    upper estimate of what the switch itself took. Also the CPU wait within the longest
    gap. Arrival pairs include times no datagram was due (a sender not run), which only
    makes the estimate larger. With ``within`` (a phase), only the gaps that overlap it
    count; with ``outside`` too, only those that do not."""
    from hitless.impact.cpuwait import Waited

    stalls = sorted((float(a), float(b)) for a, b in res.get("cpu_stalls") or [])
    waited = Waited((float(a), float(b), float(w)) for a, b, w in res.get("cpu_waits") or [])

    def stalled(x: float, y: float) -> float:
        return sum(max(0.0, min(y, b) - max(x, a)) for a, b in stalls if a < y and b > x)

    own, longest, wait_in_longest = 0.0, 0.0, 0.0
    for c in classes:
        a = sorted(t for t in c["arrivals"] if t is not None)
        for x, y in zip(a, a[1:], strict=False):
            if y - x <= own:
                continue  # cannot beat what we have, whatever is taken out
            if within is not None and (x < within[1] and y > within[0]) == outside:
                continue
            w = waited(x, y)
            own = max(own, y - x - max(stalled(x, y), w))
            if y - x > longest:
                longest, wait_in_longest = y - x, w
    return own, wait_in_longest


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    classes = {c["kind"]: [] for c in res["classes"]}
    for c in res["classes"]:
        classes[c["kind"]].append(c)
    udp = classes.get("udp", [])
    tcp = classes.get("tcp-connect", [])
    appctl = classes.get("appctl", [])
    stalls = res.get("cpu_stalls") or []
    own, wait = _own_gap(udp, res)
    out: dict[str, Any] = {
        "udp_gap_ms": max((c["longest_gap"] for c in udp), default=0.0) * 1000,
        "udp_gap_net_ms": max((c.get("gap_net") or c["longest_gap"] for c in udp), default=0.0)
        * 1000,
        "udp_lost": sum(c["lost"] for c in udp),
        "tcp_failed": sum(c["lost"] for c in tcp),
        "appctl_gap_ms": max((c["longest_gap"] for c in appctl), default=0.0) * 1000,
        "appctl_wait_ms": max((c["worst_latency"] or 0.0 for c in appctl), default=0.0) * 1000,
        "cpu_stalls": float(len(stalls)),
        "udp_gap_own_ms": own * 1000,
        "gap_cpu_wait_ms": wait * 1000,
        "cpu_stall_max_ms": max((b - a for a, b in stalls), default=0.0) * 1000,
    }
    for ph in res["window"]["phases"]:
        if ph["name"].startswith("freeze"):
            out["freeze_ms"] = (ph["end"] - ph["start"]) * 1000
            out["freeze_gap_ms"] = _gap_across(udp, ph["start"], ph["end"]) * 1000
            # The switch's own part per phase: across the freeze, and anywhere else
            # (the pre-copy while the old process serves, and after the commit).
            fz = (ph["start"], ph["end"])
            out["own_freeze_ms"] = _own_gap(udp, res, fz)[0] * 1000
            out["own_else_ms"] = _own_gap(udp, res, fz, outside=True)[0] * 1000
    phases = res["settings"].get("handoff_phases_ms") or {}
    if "old_loop_max" in phases:
        out["old_loop_max_ms"] = float(phases["old_loop_max"])
    if "old_loop_max_its_cpu" in phases:  # that turn's CPU time (newer builds)
        out["old_loop_its_cpu_ms"] = float(phases["old_loop_max_its_cpu"])
    if "old_loop_max_cpu" in phases:  # the most CPU time of any pre-copy turn
        out["old_loop_cpu_ms"] = float(phases["old_loop_max_cpu"])
    if "old_loop_max_gc" in phases:  # the most garbage collection in one pre-copy turn
        out["old_loop_gc_ms"] = float(phases["old_loop_max_gc"])
    if "old_precopy_send" in phases:
        out["old_precopy_ms"] = float(phases["old_precopy_send"])
    streams = classes.get("tcp-stream", [])
    if streams:  # 1: every long-lived TCP connection survived the operation
        out["tcp_survived"] = float(all(c.get("outcome") == "survived" for c in streams))
    for part in FREEZE_PARTS:  # where the freeze went (newer builds report them all)
        if part in phases:
            out[f"freeze_{part}_ms"] = float(phases[part])
    rt = res["settings"].get("handoff_realtime")
    if rt is not None:  # 1: the new process ran the freeze as a real-time process
        out["freeze_realtime"] = float(bool(rt))
    return out


# The freeze's parts as the new process times them: the old process freezing and sending
# the final state (until it arrives), restoring it, the old one's verification, and the
# new one taking the bridges and sockets (hitless.daemon.handoff_new.take_over), and its
# first forwarding of what the rings held meanwhile (right after the freeze).
FREEZE_PARTS = ("frozen_wait", "restore", "restore_cpu", "verify", "commit", "commit_cpu",
                "commit_bridges", "commit_reconcile", "commit_adopt", "first_forward")  # fmt: skip


OPS = (("upgrade", "hitless upgrade"), ("downgrade", "hitless downgrade"),
       ("cold", "hitless restart --mode cold"), ("ovs", "OVS restart"))  # fmt: skip


def one_run(
    rules: int,
    macs: int,
    ops: str,
    downgrade_to: str | None,
    keep: Path | None,
    env: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    if "cold" not in ops.split(","):  # Open vSwitch's plain restart is impact's "cold"
        ops += ",cold"
    with tempfile.TemporaryDirectory(prefix="hl-bench-") as d:
        out = Path(d) / "impact.json"
        cmd = [str(BIN / "hitless"), "impact", "--switch", "both", "--ops", ops,
               "--classes", CLASSES, "--rules", str(rules), "--macs", str(macs),
               "--duration", f"{_duration(rules, macs):.0f}", "--at", "2", "--after", "5",
               "--json", str(out)]  # fmt: skip
        if downgrade_to:
            cmd += ["--downgrade-to", downgrade_to]
        if keep is not None:  # the agents' raw records and the switches' logs too
            cmd += ["--keep-records", str(keep.with_suffix(""))]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
        if not out.exists():
            raise SystemExit(f"hitless impact failed ({r.returncode}):\n{r.stdout[-3000:]}")
        results = json.loads(out.read_text())["results"]
        for line in r.stdout.splitlines():  # an operation that failed has no result
            if " failed: " in line:
                print(f"        {line.strip()}")
        if keep is not None:
            keep.write_text(out.read_text())
    rows = {}
    for key, name in OPS:
        res = _op(results, name)
        if res is not None:
            rows[key] = _summary(res)
    return rows


def _med(runs: list[dict[str, dict[str, Any]]], op: str, key: str) -> float | None:
    vals = [r[op][key] for r in runs if op in r and key in r[op]]
    return statistics.median(vals) if vals else None


def _fmt(v: float | None, unit: str = " ms") -> str:
    if v is None:
        return "n/a"
    return f"{v:.0f}{unit}" if unit else f"{v:g}"


COLUMNS = (  # (heading, summary key, unit)
    ("gap", "udp_gap_ms", " ms"),
    ("gap net", "udp_gap_net_ms", " ms"),
    ("own", "udp_gap_own_ms", " ms"),
    ("its wait", "gap_cpu_wait_ms", " ms"),
    ("lost", "udp_lost", ""),
    ("tcp fail", "tcp_failed", ""),
    ("appctl", "appctl_gap_ms", " ms"),
    ("freeze", "freeze_ms", " ms"),
    ("across", "freeze_gap_ms", " ms"),
    ("own fz", "own_freeze_ms", " ms"),
    ("own else", "own_else_ms", " ms"),
    ("old loop", "old_loop_max_ms", " ms"),
    ("its cpu", "old_loop_its_cpu_ms", " ms"),
    ("loop cpu", "old_loop_cpu_ms", " ms"),
    ("loop gc", "old_loop_gc_ms", " ms"),
    ("pre-copy", "old_precopy_ms", " ms"),
    ("cpu stalls", "cpu_stalls", ""),
    ("longest", "cpu_stall_max_ms", " ms"),
)


def _table(rules: int, macs: int, runs: list[dict[str, dict[str, Any]]]) -> list[str]:
    lines = []
    for key, name in OPS:
        if not any(key in r for r in runs):
            continue
        cells = " ".join(f"{_fmt(_med(runs, key, k), u):>{max(len(h), 8)}}" for h, k, u in COLUMNS)
        kept = _med(runs, key, "tcp_survived")
        tcp = "n/a" if kept is None else "yes" if kept == 1 else "no"
        lines.append(f"{rules + 1:>7} {macs:>6} {name:<28} {cells} {tcp:>8}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="0:0,10000:1000,100000:50000",
                    help="comma-separated RULES:MACS (extra OpenFlow rules : learned MACs)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="runs per size (medians are shown)")
    ap.add_argument("--ops", default="upgrade,downgrade,cold",
                    help="hitless impact --ops; cold is always added (it is also Open "
                    "vSwitch's plain restart, the baseline)")  # fmt: skip
    ap.add_argument("--downgrade-to", help="hitless impact --downgrade-to (default: its own)")
    ap.add_argument("--no-freeze-realtime", action="store_true",
                    help="run the switches with HITLESS_FREEZE_REALTIME=0: the freeze "
                    "at the daemon's ordinary priority (to compare)")  # fmt: skip
    ap.add_argument("--json", help="write every run's figures here")
    ap.add_argument("--keep", help="directory for each run's impact JSON (hitless impact "
                    "--from-json renders them), raw agent records and switch logs")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/handoff.py needs root (network namespaces)", file=sys.stderr)
        return 2
    sizes = [tuple(int(v) for v in x.split(":")) for x in args.sizes.split(",")]
    env = {**os.environ, "HITLESS_FREEZE_REALTIME": "0"} if args.no_freeze_realtime else None
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    doc: list[dict[str, Any]] = []
    heads = " ".join(f"{h:>{max(len(h), 8)}}" for h, _, _ in COLUMNS)
    from hitless.impact.switches import SWITCH_NICE

    print(f"(both switches, hitless-vswitchd and Open vSwitch's ovs-vswitchd, and the traffic "
          f"agents run at niceness {SWITCH_NICE}, as ovs-ctl runs ovs-vswitchd; the CPU "
          "probes real-time)")  # fmt: skip
    print(f"{'rules':>7} {'MACs':>6} {'operation':<28} {heads} {'TCP kept':>8}")
    for rules, macs in sizes:
        load0 = _load()
        runs = []
        for i in range(args.runs):
            k = keep / f"impact-{rules}-{macs}-{i}.json" if keep is not None else None
            runs.append(one_run(rules, macs, args.ops, args.downgrade_to, k, env))
        load1 = _load()
        for line in _table(rules, macs, runs):
            print(line)
        for op in ("upgrade", "downgrade"):
            mine, ovs = _med(runs, op, "udp_gap_ms"), _med(runs, "ovs", "udp_gap_ms")
            if mine is not None and ovs:
                print(f"        {op} gap / OVS restart gap: {mine / ovs:.2f}x")
        print(f"        (load {load0:.1f} -> {load1:.1f}, {args.runs} run(s), medians)")
        doc.append({"rules": rules + 1, "macs": macs, "runs": runs, "load": [load0, load1]})
        for op in ("upgrade", "downgrade"):
            parts = [(p, _med(runs, op, f"freeze_{p}_ms")) for p in FREEZE_PARTS]
            if any(v is not None for _, v in parts):
                rt = _med(runs, op, "freeze_realtime")
                rt_text = "n/a" if rt is None else "yes" if rt == 1 else "no"
                print(f"        {op} freeze parts: "
                      + ", ".join(f"{p} {_fmt(v)}" for p, v in parts if v is not None)
                      + f"; real-time {rt_text}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
