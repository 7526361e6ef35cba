"""What the state layer costs a handoff at scale, one build against another in the same
run: an old engine over a dummy bridge with R OpenFlow rules and M megaflows (NORMAL-like
outputs, and a firewall's ct with NAT and a label then a recirculation, a check_pkt_len,
a VLAN push with a masked set_field), its pre-copy (built, encoded, decoded and prepared
by a new engine; the megaflows are put in the datapath directly, and the old bridge's
revalidator neither adopts nor credits them), then 1% of the megaflows changed and 0.1% removed, then the freeze as
far as the new side's acknowledgement (the old side's freeze and encoding, the new side's
decoding and restore, the digests checked equal).

Each run is a fresh process of ``--tree`` (default: this checkout) and of each
``--baseline`` tree (for example a checkout of the last build of state version 6), in
turns, so the machine's load falls on both alike; the table gives medians and the
ratio to the first baseline.

    .venv/bin/python bench/state_codec.py --rules 100000 --flows 50000 --runs 5 \\
        --baseline /path/to/a/version-6/checkout
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[1]


def bench_bridge(t: list[float]) -> tuple[Callable[[], float], Any, Any]:
    """A clock that reads ``t[0]``, the handoff engine's new datapaths on it, and bridge
    br0 (tests/handoff/pair.py's) on a dummy datapath (also bench/ct_handoff.py's)."""
    from hitless.datapath.dummy import DummyDatapath
    from hitless.handoff import engine
    from hitless.ofproto.bridge import Bridge
    from tests.handoff.pair import CFG

    def clock() -> float:
        return t[0]

    class Clocked(DummyDatapath):
        def __init__(self, name: str) -> None:
            super().__init__(name, clock)

    engine.provider = lambda dp_type: Clocked  # type: ignore[assignment]
    dp = DummyDatapath(CFG.name, clock=clock)
    bridge = Bridge(CFG.name, dp)
    bridge.reconfigure(CFG, clock())
    return clock, dp, bridge


def timed_freeze(
    ex: Any, imp: Any, clock: Callable[[], float], version: int
) -> tuple[Any, bytes, float, float]:
    """The freeze as both sides do it, timed: the old side freezes and encodes the delta
    (seconds), the new side decodes and restores it (seconds); the digests must agree.
    Returns (the new side's datapath of br0, the wire bytes, old side's s, new side's s)
    (also bench/ct_handoff.py's)."""
    from hitless.state import snapshot
    from tests.handoff.pair import CFG

    t0 = time.perf_counter()
    frozen = ex.freeze(True)
    wire = snapshot.encode_delta(frozen.state, software="b", taken=clock(), version=version)
    t_old = time.perf_counter() - t0
    t1 = time.perf_counter()
    digest, _ = imp.restore_delta(snapshot.decode_delta(wire)[1], [])
    t_new = time.perf_counter() - t1
    assert digest == frozen.digest, "the two sides' digests differ"
    return imp.restored[CFG.name][1], wire, t_old, t_new


def one(rules: int, flows: int) -> dict[str, float]:
    """One measurement in this process (the tree on sys.path is the one measured)."""
    from hitless.datapath.actions import CheckPktLen, Ct, Output, PushVlan, Recirc, SetField
    from hitless.datapath.conntrack import NatSpec
    from hitless.handoff import engine
    from hitless.handoff.engine import ExportEngine, ImportEngine
    from hitless.ofproto.bridge import Bridge
    from hitless.packet.flow import Match, full_mask, make_key
    from hitless.state import snapshot
    from tests.handoff.pair import CFG, Held, rule

    t = [1000.0]
    clock, dp, bridge = bench_bridge(t)
    bridge.max_idle = 1e9  # after reconfigure: no megaflow idles out
    for i in range(rules):
        bridge.flow_mod(rule(i, 2 + i % 2), clock())
    nat = NatSpec("dst", bytes([10, 0, 0, 9]), bytes([10, 0, 0, 12]), 8000, 8099)
    kinds = [
        (Output(1),), (Output(2),), (Output(1), Output(2), Output(3)),
        (Ct(5, True, False, nat, (1, 255), (1 << 100, (1 << 128) - 1)), Recirc(0x11)),
        (CheckPktLen(1400, (Output(65534),), (Output(1),)),),
        (PushVlan(0x2064), SetField("eth_dst", b"\x02" * 6, b"\xff" * 5 + b"\0"), Output(2)),
    ]  # fmt: skip
    mask = full_mask("in_port", "eth_src", "eth_dst")

    def match(i: int) -> Match:
        return Match.of(make_key(in_port=1 + i % 3, eth_src=0x020000000000 + i,
                                 eth_dst=0x040000000000 + i), mask)  # fmt: skip

    for i in range(flows):
        dp.flow_put(match(i), kinds[i % len(kinds)])
    # The megaflows are put in the datapath directly: the bridge's revalidator must not
    # adopt them (its translation would replace their actions), nor credit their packets.
    bridge.revalidator.settle_flows = lambda flows, now: None  # type: ignore[method-assign]
    bridges = {CFG.name: Held(bridge, dp)}
    version = snapshot.CURRENT_VERSION
    ex = ExportEngine(lambda: bridges, clock)
    ex.use_features(["delta", "openflow-delta", *(f"action:{n}" for n in engine._GATED_HINT)])
    t0 = time.perf_counter()
    job = ex.precopy_job(clock(), True, version)
    while not job.step(float("inf")):
        pass
    pre = b"".join(job.parts())
    t_pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    env, state = snapshot.decode(pre)
    t_decode = time.perf_counter() - t0
    imp = ImportEngine(clock, Bridge)
    t0 = time.perf_counter()
    imp.prepare(state, True, env.taken)
    t_prepare = time.perf_counter() - t0
    t[0] += 1.0
    for i in range(0, flows, 100):
        dp.flow_put(match(i), kinds[(i + 1) % len(kinds)])
    for i in range(1, flows, 1000):
        dp.flow_del(match(i))
    new_dp, wire, t_old, t_new = timed_freeze(ex, imp, clock, version)
    assert new_dp.flow_count() == dp.flow_count(), (new_dp.flow_count(), dp.flow_count())
    ex.finish(False)
    return {"state_version": version, "precopy_ms": t_pre * 1e3, "decode_ms": t_decode * 1e3,
            "prepare_ms": t_prepare * 1e3, "precopy_bytes": len(pre),
            "freeze_old_ms": t_old * 1e3, "restore_new_ms": t_new * 1e3,
            "freeze_ms": (t_old + t_new) * 1e3, "freeze_bytes": len(wire)}  # fmt: skip


def run_tree(tree: Path, rules: int, flows: int) -> dict[str, float]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
        "import state_codec as b; print(json.dumps(b.one(int(sys.argv[3]), int(sys.argv[4]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(HERE / "bench"), str(rules), str(flows)],
        capture_output=True, text=True, cwd=tree,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"{tree}: the run failed:\n{out.stderr}")
    res: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=100000)
    ap.add_argument("--flows", type=int, default=50000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tree", type=Path, default=HERE, help="the checkout measured")
    ap.add_argument("--baseline", type=Path, action="append", default=[],
                    help="another checkout measured in the same run (repeatable)")  # fmt: skip
    args = ap.parse_args()
    trees = [*args.baseline, args.tree]
    runs: dict[Path, list[dict[str, float]]] = {t: [] for t in trees}
    for _ in range(args.runs):
        for tree in trees:
            runs[tree].append(run_tree(tree, args.rules, args.flows))
    med: dict[Path, dict[str, Any]] = {
        t: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for t, rs in runs.items()
    }
    base = med[trees[0]]
    print(f"{args.rules} OpenFlow rules, {args.flows} megaflows; medians of {args.runs} runs")
    print(f"{'':16}" + "".join(f"{'v' + str(med[t]['state_version']):>14}" for t in trees)
          + "   ratio to the first")  # fmt: skip
    for k in base:
        if k == "state_version":
            continue
        cells = "".join(f"{med[t][k]:14.1f}" for t in trees)
        print(f"{k:16}{cells}   {med[args.tree][k] / base[k]:.3f}")
    for t in trees:
        print(f"  v{med[t]['state_version']}: {t}")


if __name__ == "__main__":
    main()
