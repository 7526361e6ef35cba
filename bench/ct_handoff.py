"""What the connection-tracking table costs a handoff's freeze, in one process: an old
engine over a dummy bridge holding N tracked connections (UDP, as the tracker keeps
them), a pre-copy, then 1% of the connections touched and 0.1% removed, then the freeze
as far as the new side's acknowledgement (the old side's freeze and encoding, the new
side's decoding and restore). Two ways in the same run: towards a state version 4 peer
(the table goes whole at the freeze, inside the datapath's handles) and version 5 (the
table in the pre-copy, only what changed at the freeze). Medians of --runs.

    .venv/bin/python bench/ct_handoff.py --conns 10000 100000 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from state_codec import bench_bridge, timed_freeze  # noqa: E402

from hitless.datapath.conntrack import ConnRecord, CtTuple  # noqa: E402
from hitless.handoff.engine import ExportEngine, ImportEngine  # noqa: E402
from hitless.ofproto.bridge import Bridge  # noqa: E402
from hitless.state import snapshot  # noqa: E402
from tests.handoff.pair import CFG, Held  # noqa: E402


def conn(i: int) -> ConnRecord:
    a = bytes([10, 1, i >> 16 & 0xFF, i >> 8 & 0xFF])
    b = bytes([10, 2, 0, i & 0xFF])
    return ConnRecord(0, (a, b, 17, 1024 + (i & 0x7FFF), 53), (b, a, 17, 53, 1024 + (i & 0x7FFF)),
                      300.0, 0, 0, 0, True, "bidir")  # fmt: skip


def one(n: int, version: int) -> dict[str, float]:
    t = [1000.0]
    clock, dp, bridge = bench_bridge(t)
    dp.conntrack.max_conns = max(dp.conntrack.max_conns, 2 * n)
    dp.conntrack.import_records([conn(i) for i in range(n)], clock())
    bridges = {CFG.name: Held(bridge, dp)}
    ex = ExportEngine(lambda: bridges, clock)
    ex.use_features(["delta", "openflow-delta"])
    t0 = time.perf_counter()
    job = ex.precopy_job(clock(), True, version)
    while not job.step(float("inf")):
        pass
    pre = b"".join(job.parts())
    t_pre = time.perf_counter() - t0
    imp = ImportEngine(clock, Bridge)
    env, state = snapshot.decode(pre)
    t0 = time.perf_counter()
    imp.prepare(state, True, env.taken)
    t_prepare = time.perf_counter() - t0
    t[0] += 1.0
    ct = dp.conntrack
    ct.import_records([replace(conn(i), mark=1) for i in range(0, n, 100)], clock())
    for i in range(1, n, 1000):
        ct.remove_record(0, CtTuple(*conn(i).orig))
    new_dp, wire, t_old, t_new = timed_freeze(ex, imp, clock, version)
    assert len(new_dp.conntrack) == len(ct), (len(new_dp.conntrack), len(ct))
    ex.finish(False)
    return {"precopy_ms": t_pre * 1e3, "prepare_ms": t_prepare * 1e3, "freeze_old_ms": t_old * 1e3,
            "restore_new_ms": t_new * 1e3, "freeze_ms": (t_old + t_new) * 1e3,
            "freeze_bytes": len(wire)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    for n in args.conns:
        rows = {}
        for version in (4, snapshot.CURRENT_VERSION):
            runs = [one(n, version) for _ in range(args.runs)]
            rows[version] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        old, new = rows[4], rows[snapshot.CURRENT_VERSION]
        print(f"{n} connections, medians of {args.runs}:")
        for k in old:
            print(f"  {k:15} v4 {old[k]:12.1f}  v{snapshot.CURRENT_VERSION} {new[k]:12.1f}"
                  f"  ratio {new[k] / old[k]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
