"""Handoff benchmark: what a user sees during ``hitless upgrade``, against the size of
the state, next to a cold restart of the same switch and Open vSwitch's plain restart
at the same size, all in the same run.

    .venv/bin/python bench/handoff.py [--sizes 0:0,10000:1000,100000:50000] [--runs 1]
                                      [--json FILE]

For each size RULES:MACS it runs ``hitless impact --switch both --ops upgrade,cold``
(root: namespace hosts on a netdev bridge of the real daemon, and of Debian's
ovs-vswitchd with the same configuration): RULES OpenFlow rules on top of the
table-miss NORMAL rule (four match shapes over L2, L3 and L4, none hit; loaded with one
``ovs-ofctl --bundle add-flows``), MACS MAC
entries learned from real frames (as many megaflows), then sequenced UDP at 1,000
datagrams/s each way, a new TCP connection every 20 ms, one long-lived TCP connection,
and ``ovs-appctl version``
every 5 ms (the appctl class: connect to the control socket, one request). Per
operation it reports the longest UDP gap (either direction), datagrams lost, new
connections failed, and the longest time ``ovs-appctl`` went unanswered; for the
upgrade also the freeze phase and the old process's longest serving-loop turn during
the pre-copy (from ``hitless upgrade --json``), and under it the freeze's parts (the
old process freezing and sending, the restore, the verification, the commit). The ratio
upgrade gap / Open vSwitch restart gap is printed per size; medians over ``--runs``.

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
    """Traffic long enough to cover the whole upgrade of that much state."""
    return 10.0 + rules * 0.0005 + macs * 0.0002


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
    out: dict[str, Any] = {
        "udp_gap_ms": max((c["longest_gap"] for c in udp), default=0.0) * 1000,
        "udp_lost": sum(c["lost"] for c in udp),
        "tcp_failed": sum(c["lost"] for c in tcp),
        "appctl_gap_ms": max((c["longest_gap"] for c in appctl), default=0.0) * 1000,
        "appctl_wait_ms": max((c["worst_latency"] or 0.0 for c in appctl), default=0.0) * 1000,
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


def one_run(rules: int, macs: int, keep: Path | None) -> dict[str, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="hl-bench-") as d:
        out = Path(d) / "impact.json"
        cmd = [str(BIN / "hitless"), "impact", "--switch", "both", "--ops", "upgrade,cold",
               "--classes", CLASSES, "--rules", str(rules), "--macs", str(macs),
               "--duration", f"{_duration(rules, macs):.0f}", "--at", "2",
               "--json", str(out)]  # fmt: skip
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if not out.exists():
            raise SystemExit(f"hitless impact failed ({r.returncode}):\n{r.stdout[-3000:]}")
        results = json.loads(out.read_text())["results"]
        if keep is not None:
            keep.write_text(out.read_text())
    rows = {}
    for key, name in (("upgrade", "hitless upgrade"), ("cold", "hitless restart --mode cold"),
                      ("ovs", "OVS restart")):  # fmt: skip
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


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="0:0,10000:1000,100000:50000",
                    help="comma-separated RULES:MACS (extra OpenFlow rules : learned MACs)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="runs per size (medians are shown)")
    ap.add_argument("--json", help="write every run's figures here")
    ap.add_argument("--keep", help="directory for each run's impact JSON (hitless impact "
                    "--from-json renders them)")  # fmt: skip
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench/handoff.py needs root (network namespaces)", file=sys.stderr)
        return 2
    sizes = [tuple(int(v) for v in x.split(":")) for x in args.sizes.split(",")]
    keep = Path(args.keep) if args.keep else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    doc: list[dict[str, Any]] = []
    header = (f"{'rules':>7} {'MACs':>6} | {'upgrade gap':>11} {'lost':>4} {'tcp fail':>8} "
              f"{'appctl':>7} {'freeze':>7} {'old loop':>8} | {'cold gap':>8} | "
              f"{'OVS gap':>8} {'lost':>5} {'tcp fail':>8} {'appctl':>7} | {'vs OVS':>6}")  # fmt: skip
    print(header)
    for rules, macs in sizes:
        load0 = _load()
        runs = []
        for i in range(args.runs):
            k = keep / f"impact-{rules}-{macs}-{i}.json" if keep is not None else None
            runs.append(one_run(rules, macs, k))
        load1 = _load()
        up, ovs = _med(runs, "upgrade", "udp_gap_ms"), _med(runs, "ovs", "udp_gap_ms")
        ratio = f"{up / ovs:.2f}x" if up is not None and ovs else "n/a"
        print(
            f"{rules + 1:>7} {macs:>6} | {_fmt(up):>11} {_fmt(_med(runs, 'upgrade', 'udp_lost'), ''):>4} "
            f"{_fmt(_med(runs, 'upgrade', 'tcp_failed'), ''):>8} "
            f"{_fmt(_med(runs, 'upgrade', 'appctl_gap_ms')):>7} "
            f"{_fmt(_med(runs, 'upgrade', 'freeze_ms')):>7} "
            f"{_fmt(_med(runs, 'upgrade', 'old_loop_max_ms')):>8} | "
            f"{_fmt(_med(runs, 'cold', 'udp_gap_ms')):>8} | "
            f"{_fmt(ovs):>8} {_fmt(_med(runs, 'ovs', 'udp_lost'), ''):>5} "
            f"{_fmt(_med(runs, 'ovs', 'tcp_failed'), ''):>8} "
            f"{_fmt(_med(runs, 'ovs', 'appctl_gap_ms')):>7} | {ratio:>6}"
            f"   (load {load0:.1f} -> {load1:.1f}, {args.runs} run(s))"
        )  # fmt: skip
        doc.append({"rules": rules + 1, "macs": macs, "runs": runs, "load": [load0, load1]})
        parts = [(p, _med(runs, "upgrade", f"freeze_{p}_ms")) for p in FREEZE_PARTS]
        if any(v is not None for _, v in parts):
            print("        freeze parts: " + ", ".join(f"{p} {_fmt(v)}" for p, v in parts)
                  + f"; longest UDP gap across the freeze "
                  f"{_fmt(_med(runs, 'upgrade', 'freeze_gap_ms'))}")  # fmt: skip
        kept = {op: _med(runs, op, "tcp_survived") for op in ("upgrade", "cold", "ovs")}
        if any(v is not None for v in kept.values()):
            print("        TCP connection survived: " + ", ".join(
                f"{op} {'n/a' if v is None else 'yes' if v == 1 else 'no'}"
                for op, v in kept.items()))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
