"""Handoff benchmark: what a user sees during ``hitless upgrade`` and ``hitless
downgrade``, against the size of the state, next to a cold restart of the same switch
and Open vSwitch's plain restart at the same size, all in the same run.

    .venv/bin/python bench/handoff.py [--sizes 0:0,10000:1000,100000:50000] [--runs 1]
                                      [--ops upgrade,downgrade,cold] [--downgrade-to REV]
                                      [--json FILE] [--keep DIR]

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
CPU, see hitless.impact.analysis), datagrams lost, new connections failed, the longest
time ``ovs-appctl`` went unanswered; for a handoff also the freeze, the longest UDP gap
across it, the old process's longest serving-loop turn and its pre-copy time (from
``hitless upgrade --json``); the machine's stalls during the run (count, longest);
whether the long-lived TCP connection survived. Medians over ``--runs``; the ratios
upgrade / downgrade gap to Open vSwitch's restart gap.

The machine is shared: the load average before and after each size is printed with
the figures, which are only comparable within one run.
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
    its freeze after the end of 15 s of traffic)."""
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


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    classes = {c["kind"]: [] for c in res["classes"]}
    for c in res["classes"]:
        classes[c["kind"]].append(c)
    udp = classes.get("udp", [])
    tcp = classes.get("tcp-connect", [])
    appctl = classes.get("appctl", [])
    stalls = res.get("cpu_stalls") or []
    out: dict[str, Any] = {
        "udp_gap_ms": max((c["longest_gap"] for c in udp), default=0.0) * 1000,
        "udp_gap_net_ms": max((c.get("gap_net") or c["longest_gap"] for c in udp), default=0.0)
        * 1000,
        "udp_lost": sum(c["lost"] for c in udp),
        "tcp_failed": sum(c["lost"] for c in tcp),
        "appctl_gap_ms": max((c["longest_gap"] for c in appctl), default=0.0) * 1000,
        "appctl_wait_ms": max((c["worst_latency"] or 0.0 for c in appctl), default=0.0) * 1000,
        "cpu_stalls": float(len(stalls)),
        "cpu_stall_max_ms": max((b - a for a, b in stalls), default=0.0) * 1000,
    }
    for ph in res["window"]["phases"]:
        if ph["name"].startswith("freeze"):
            out["freeze_ms"] = (ph["end"] - ph["start"]) * 1000
            out["freeze_gap_ms"] = _gap_across(udp, ph["start"], ph["end"]) * 1000
    phases = res["settings"].get("handoff_phases_ms") or {}
    if "old_loop_max" in phases:
        out["old_loop_max_ms"] = float(phases["old_loop_max"])
    if "old_precopy_send" in phases:
        out["old_precopy_ms"] = float(phases["old_precopy_send"])
    streams = classes.get("tcp-stream", [])
    if streams:  # 1: every long-lived TCP connection survived the operation
        out["tcp_survived"] = float(all(c.get("outcome") == "survived" for c in streams))
    for part in FREEZE_PARTS:  # where the freeze went (newer builds report them all)
        if part in phases:
            out[f"freeze_{part}_ms"] = float(phases[part])
    return out


# The freeze's parts as the new process times them: the old process freezing and sending
# the final state (until it arrives), restoring it, the old one's verification, and the
# new one taking the bridges and sockets (hitless.daemon.handoff_new.take_over).
FREEZE_PARTS = ("frozen_wait", "restore", "restore_cpu", "verify", "commit", "commit_cpu")


OPS = (("upgrade", "hitless upgrade"), ("downgrade", "hitless downgrade"),
       ("cold", "hitless restart --mode cold"), ("ovs", "OVS restart"))  # fmt: skip


def one_run(
    rules: int, macs: int, ops: str, downgrade_to: str | None, keep: Path | None
) -> dict[str, dict[str, Any]]:
    if "cold" not in ops.split(","):  # Open vSwitch's plain restart is impact's "cold"
        ops += ",cold"
    with tempfile.TemporaryDirectory(prefix="hl-bench-") as d:
        out = Path(d) / "impact.json"
        cmd = [str(BIN / "hitless"), "impact", "--switch", "both", "--ops", ops,
               "--classes", CLASSES, "--rules", str(rules), "--macs", str(macs),
               "--duration", f"{_duration(rules, macs):.0f}", "--at", "2",
               "--json", str(out)]  # fmt: skip
        if downgrade_to:
            cmd += ["--downgrade-to", downgrade_to]
        if keep is not None:  # the agents' raw records and the switches' logs too
            cmd += ["--keep-records", str(keep.with_suffix(""))]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
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
    ("lost", "udp_lost", ""),
    ("tcp fail", "tcp_failed", ""),
    ("appctl", "appctl_gap_ms", " ms"),
    ("freeze", "freeze_ms", " ms"),
    ("across", "freeze_gap_ms", " ms"),
    ("old loop", "old_loop_max_ms", " ms"),
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
    ap.add_argument("--json", help="write every run's figures here")
    ap.add_argument("--keep", help="directory for each run's impact JSON (hitless impact "
                    "--from-json renders them), raw agent records and switch logs")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/handoff.py needs root (network namespaces)", file=sys.stderr)
        return 2
    sizes = [tuple(int(v) for v in x.split(":")) for x in args.sizes.split(",")]
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    doc: list[dict[str, Any]] = []
    heads = " ".join(f"{h:>{max(len(h), 8)}}" for h, _, _ in COLUMNS)
    print(f"{'rules':>7} {'MACs':>6} {'operation':<28} {heads} {'TCP kept':>8}")
    for rules, macs in sizes:
        load0 = _load()
        runs = []
        for i in range(args.runs):
            k = keep / f"impact-{rules}-{macs}-{i}.json" if keep is not None else None
            runs.append(one_run(rules, macs, args.ops, args.downgrade_to, k))
        load1 = _load()
        for line in _table(rules, macs, runs):
            print(line)
        for op in ("upgrade", "downgrade"):
            mine, ovs = _med(runs, op, "udp_gap_ms"), _med(runs, "ovs", "udp_gap_ms")
            if mine is not None and ovs:
                print(f"        {op} gap / OVS restart gap: {mine / ovs:.2f}x")
        print(f"        (load {load0:.1f} -> {load1:.1f}, {args.runs} run(s), medians)")
        doc.append({"rules": rules + 1, "macs": macs, "runs": runs, "load": [load0, load1]})
        parts = [(p, _med(runs, "upgrade", f"freeze_{p}_ms")) for p in FREEZE_PARTS]
        if any(v is not None for _, v in parts):
            print("        upgrade freeze parts: "
                  + ", ".join(f"{p} {_fmt(v)}" for p, v in parts))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
