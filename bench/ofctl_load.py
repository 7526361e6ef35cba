"""Loading a big OpenFlow table: ``ovs-ofctl add-flows BRIDGE FILE`` of N rules into
hitless and into Open vSwitch 3.1, side by side in the same run.

    .venv/bin/python bench/ofctl_load.py [--rules 100000] [--runs 3]
                                         [--modes bundle,plain] [--json FILE]

Both switches run their own ovsdb-server and daemon in a fresh run directory, inside a
network namespace this benchmark creates (a netdev bridge opens a TAP device named
after the bridge: the namespace keeps it apart from other runs), with one netdev bridge
and no ports (``hitless.impact.switches``). The rules are the ones ``hitless impact
--rules N`` and bench/handoff.py load (``hitless.impact.rules.filler_rules``: four match
shapes over L2, L3 and L4 taken in turn, each rule distinct, ``actions=drop``).

Per run and mode, on each switch: ``ovs-ofctl del-flows`` (timed too: emptying the
table), then the timed ``ovs-ofctl [--bundle] add-flows BRIDGE FILE`` (stock
ovs-ofctl, OpenFlow 1.3, through the bridge's management socket: its wall time is what
a user or an agent such as OVN waits), then ``dump-aggregate`` must count all N rules
(a load that lost rules fails the benchmark). Modes:

* ``bundle``: ``--bundle add-flows``: one OpenFlow bundle (open, N adds, commit), the
  way bench/handoff.py loads and the way an agent loads a table atomically;
* ``plain``: ``add-flows``: stock ovs-ofctl sends each flow_mod followed by a barrier
  and waits for the barrier's reply before the next one (one round trip per rule, see
  ``vconn_transact_noreply`` in Open vSwitch's lib/vconn.c), so this mode measures the
  switch's per-message latency more than its table.

Printed per mode: the medians over ``--runs`` of the wall time and the cost per rule
on each switch, and the ratio hitless / Open vSwitch (above 1: hitless is slower). The
two switches alternate within a run (hitless first on even runs) so that a change of
the machine's load falls on both. The machine's load average is printed with the
figures: they compare only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hitless.impact import switches as sw  # noqa: E402
from hitless.impact.rules import aggregate_count, filler_rules  # noqa: E402

MODES = ("bundle", "plain")


def _ofctl(s: Any, *args: str, timeout: float) -> str:
    """Stock ovs-ofctl -O OpenFlow13 with ARGS; the bridge's management socket goes
    after the last option (``s.ofctl`` cannot place an option such as ``--bundle``)."""
    mgmt = f"unix:{s.rundir / (sw.BRIDGE + '.mgmt')}"
    opts = [a for a in args if a.startswith("--")]
    rest = [a for a in args if not a.startswith("--")]
    cmd = ["ovs-ofctl", "-O", "OpenFlow13", *opts, rest[0], mgmt, *rest[1:]]
    return sw._run(cmd, f"ovs-ofctl {' '.join(args[:2])}", env=s._env(), timeout=timeout)


def _count(s: Any) -> int:
    return aggregate_count(_ofctl(s, "dump-aggregate", timeout=600))


def _one(s: Any, mode: str, path: Path, n: int) -> dict[str, float]:
    t = time.monotonic()
    _ofctl(s, "del-flows", timeout=900)
    cleared = time.monotonic() - t
    if _count(s) != 0:
        raise SystemExit(f"{s.kind}: del-flows left rules in the table")
    args = ["--bundle", "add-flows"] if mode == "bundle" else ["add-flows"]
    t = time.monotonic()
    _ofctl(s, *args, str(path), timeout=3600)
    took = time.monotonic() - t
    got = _count(s)
    if got != n:
        raise SystemExit(f"{s.kind}: {mode} add-flows of {n} rules left {got} in the table")
    return {"seconds": took, "us_per_rule": took / n * 1e6, "del_seconds": cleared}


def _median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--modes", default="bundle", help=f"comma-separated of {','.join(MODES)}")
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    a = ap.parse_args(argv)
    modes = [m for m in a.modes.split(",") if m]
    if a.rules < 1 or a.runs < 1 or any(m not in MODES for m in modes):
        ap.error(f"--rules and --runs at least 1, --modes among {', '.join(MODES)}")
    if os.geteuid() != 0:
        ap.error("needs root (a network namespace for the switches)")

    ns = f"hlol{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    switches: list[Any] = []
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        m: {"hitless": [], "ovs": []} for m in modes
    }
    load_before = os.getloadavg()[0]
    try:
        for cls in (sw.HitlessSwitch, sw.OvsSwitch):
            s = cls(netns=ns)
            switches.append(s)
            s.start()
            s.add_bridge([])
        path = switches[0].rundir / "rules.txt"
        path.write_text("".join(f"{line}\n" for line in filler_rules(a.rules)))
        for run in range(a.runs):
            order = switches if run % 2 == 0 else switches[::-1]
            for mode in modes:
                for s in order:
                    r = _one(s, mode, path, a.rules)
                    results[mode][s.kind].append(r)
                    print(f"run {run + 1} {mode:6} {s.kind:7} {r['seconds']:8.2f} s "
                          f"{r['us_per_rule']:8.1f} us/rule (del-flows {r['del_seconds']:.2f} s)",
                          flush=True)  # fmt: skip
    finally:
        for s in switches:
            s.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)
    load_after = os.getloadavg()[0]

    print(f"\n{a.rules} rules, medians of {a.runs}, load average {load_before:.1f} -> {load_after:.1f}")
    print(f"{'mode':8}{'hitless s':>11}{'us/rule':>9}{'ovs s':>9}{'us/rule':>9}{'ratio':>8}"
          f"{'del hl s':>10}{'del ovs s':>10}")  # fmt: skip
    summary: dict[str, Any] = {}
    for mode in modes:
        h, o = results[mode]["hitless"], results[mode]["ovs"]
        hs, os_ = _median(h, "seconds"), _median(o, "seconds")
        ratio = hs / os_ if os_ > 0 else float("inf")
        summary[mode] = {"hitless_s": hs, "ovs_s": os_, "ratio": ratio,
                         "hitless_del_s": _median(h, "del_seconds"),
                         "ovs_del_s": _median(o, "del_seconds")}  # fmt: skip
        print(f"{mode:8}{hs:11.2f}{hs / a.rules * 1e6:9.1f}{os_:9.2f}{os_ / a.rules * 1e6:9.1f}"
              f"{ratio:7.2f}x{summary[mode]['hitless_del_s']:10.2f}{summary[mode]['ovs_del_s']:10.2f}")  # fmt: skip
    if a.json is not None:
        a.json.write_text(json.dumps({"rules": a.rules, "runs": results, "summary": summary,
                                      "load": [load_before, load_after]}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
