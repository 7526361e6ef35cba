"""Slow-path flood: does one port flooding new flows starve the others?

    .venv/bin/python bench/flood.py [--switches hitless,ovs] [--seconds 24] [--flood 12]
                                    [--kind mac|l4] [--runs 1] [--json FILE]

Needs root. Three namespace hosts on a netdev bridge (NORMAL, standalone), each switch
private to its own run directory (``hitless.impact.switches``): hosts a and b are the
victims and carry the impact harness's traffic the whole time (sequenced UDP at 1,000
datagrams/s each way, a new TCP connection every 20 ms, ARP probes: every ``arp``
probe flushes the neighbour entry and resolves it again, so it needs the switch's slow
path whenever the flood has pushed the victims' flows or MAC entries out);
``--flood`` seconds in the middle of the run, host c sends new flows as fast as
netsniff-ng's ``trafgen`` can (a TX ring, qdisc bypassed; ``--generators``
processes, default one: the flooding host gets one of the machine's cores):

* ``mac``: every frame from a random source MAC (locally administered, unicast),
  sent to c's own MAC; every one is a miss the switch learns and installs a flow for
  (and drops: the destination is behind the port it came in on);
* ``l4``: c's own MAC, random UDP source and destination ports, sent to c's own MAC.

For each switch it prints the victims' figures over the whole run with and without
the flood (the first run of a switch has no flood: the baseline), what the flooder
sent, and the switch's own counters after the flood (hitless: ``dpctl/show`` and
``upcall/show``; Open vSwitch: ``upcall/show`` and ``coverage/read-counter``).
Only ratios between runs of the same invocation mean anything: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hitless.impact.analysis import Phase
from hitless.impact.run import Rates, measure
from hitless.impact.switches import HitlessSwitch, OvsSwitch
from hitless.impact.topology import Host, Topology, install_signal_cleanup

CLASSES = ("udp", "tcp-connect", "arp")
MAC_TABLE = 8192


def trafgen_config(kind: str, dst_mac: str, src_mac: str) -> str:
    """A trafgen packet: UDP/IPv4 64 bytes, random fields per ``kind``."""
    dst = ", ".join(f"0x{x}" for x in dst_mac.split(":"))
    if kind == "mac":
        src = "0x0e, drnd(), drnd(), drnd(), drnd(), drnd()"
        ports = "0x00, 0x07, 0x00, 0x07"
    else:
        src = ", ".join(f"0x{x}" for x in src_mac.split(":"))
        ports = "drnd(), drnd(), drnd(), drnd()"
    # IPv4 198.18.0.1 -> 198.18.0.2 (benchmarking range, RFC 2544), checksum left 0:
    # the destination is c itself, whose stack never sees these frames.
    ip = ("0x45, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00, "
          "198, 18, 0, 1, 198, 18, 0, 2")  # fmt: skip
    udp = f"{ports}, 0x00, 0x1a, 0x00, 0x00"
    return "{ " + ", ".join((dst, src, "0x08, 0x00", ip, udp, "fill(0x00, 18)")) + " }\n"


class Flood:
    """The operation: trafgen in host c for ``seconds``; what it sent."""

    def __init__(
        self, host: Host, kind: str, seconds: float, workdir: Path, generators: int
    ) -> None:
        self.host, self.kind, self.seconds = host, kind, seconds
        self.generators = generators
        self.cfg = workdir / "flood.cfg"
        self.cfg.write_text(trafgen_config(kind, host.mac, host.mac))
        self.sent = 0

    def __call__(self) -> list[Phase]:
        t0 = time.monotonic()
        res = subprocess.run(
            ["ip", "netns", "exec", self.host.ns, "timeout", "-s", "INT", str(self.seconds),
             "trafgen", "-i", str(self.cfg), "-o", self.host.dev, "-P", str(self.generators), "-t", "0"],
            capture_output=True, text=True, timeout=self.seconds + 60,
        )  # fmt: skip
        t1 = time.monotonic()
        self.sent = sum(int(n) for n in re.findall(r"(\d+) packets outgoing", res.stdout))
        if not self.sent:
            raise RuntimeError(f"trafgen sent nothing: {(res.stdout + res.stderr)[-400:]}")
        return [Phase("flood", t0, t1)]


def _no_flood() -> list[Phase]:
    t = time.monotonic()
    return [Phase("nothing", t, t)]


def counters(sw: HitlessSwitch | OvsSwitch) -> dict[str, Any]:
    """The switch's own view after the run (text, as its tools print it)."""
    out: dict[str, Any] = {}
    for cmd in (
        ["dpctl/show"],
        ["upcall/show"],
        ["coverage/read-counter", "upcall_flow_limit_hit"],
    ):
        if isinstance(sw, HitlessSwitch) and cmd[0] == "coverage/read-counter":
            continue
        try:
            out[" ".join(cmd)] = sw.appctl(*cmd)
        except Exception as e:  # noqa: BLE001 - a counter a switch lacks is reported as such
            out[" ".join(cmd)] = f"({e})"
    return out


def one_run(
    name: str,
    kind: str,
    seconds: float,
    flood: float,
    generators: int = 1,
    keep_logs: str | None = None,
) -> dict[str, Any]:
    with Topology(n_hosts=3) as top, tempfile.TemporaryDirectory(prefix="hl-flood-") as tmp:
        sw: HitlessSwitch | OvsSwitch = (
            HitlessSwitch(netns=top.switch_ns)
            if name == "hitless"
            else OvsSwitch(netns=top.switch_ns)
        )
        try:
            sw.start()
            sw.add_bridge(top.ports, mac_table_size=MAC_TABLE)
            if not top.wait_connected(30):
                raise RuntimeError(f"{name}: the hosts cannot reach each other")
            op = Flood(top.hosts[2], kind, flood, Path(tmp), generators) if flood > 0 else _no_flood
            at = (seconds - flood) / 2 if flood > 0 else seconds / 2
            res = measure(top.hosts[:2], op, name="flood", duration=seconds, at=at,
                          rates=Rates(), classes=CLASSES, drain=2.0)  # fmt: skip
            after = counters(sw)
            if keep_logs:
                Path(keep_logs).mkdir(parents=True, exist_ok=True)
                dst = Path(keep_logs) / f"{name}-{flood:g}-{top.suffix}.log"
                dst.write_bytes(sw.log().read_bytes())
        finally:
            sw.close()
    classes = {c.name: c.summary() for c in res.classes}
    for c in classes.values():
        for k in ("disruptions", "arrivals", "failed_at"):
            c.pop(k, None)
    return {
        "switch": name,
        "flood_seconds": flood,
        "kind": kind,
        "flood_sent": op.sent if isinstance(op, Flood) else 0,
        "classes": classes,
        "counters": after,
    }


def _row(r: dict[str, Any]) -> str:
    c = r["classes"]
    conn = [v for k, v in c.items() if k.startswith("new tcp")]
    udp = [v for k, v in c.items() if k.startswith("udp")]
    arp = [v for k, v in c.items() if k.startswith("arp")]
    sent_c = sum(v["sent"] for v in conn)
    fail_c = sum(v["lost"] for v in conn)
    worst = max((v["worst_latency"] or 0.0 for v in conn), default=0.0)
    med = statistics.median([v["median_latency"] or 0.0 for v in conn]) if conn else 0.0
    return (
        f"{r['switch']:8} flood {r['flood_seconds']:>4g}s ({r['flood_sent']:>9} frames)  "
        f"connect ok {sent_c - fail_c}/{sent_c} median {med * 1000:.1f} ms worst "
        f"{worst * 1000:.0f} ms  udp lost {sum(v['lost'] for v in udp)}/"
        f"{sum(v['sent'] for v in udp)} gap {max(v['longest_gap'] for v in udp) * 1000:.0f} ms  "
        f"arp failed {sum(v['lost'] for v in arp)}/{sum(v['sent'] for v in arp)} worst "
        f"{max((v['worst_latency'] or 0.0) for v in arp) * 1000:.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--switches", default="hitless,ovs")
    ap.add_argument("--seconds", type=float, default=24.0, help="traffic per run (default 24)")
    ap.add_argument("--flood", type=float, default=12.0, help="flood seconds (default 12)")
    ap.add_argument("--kind", default="mac", choices=("mac", "l4"))
    ap.add_argument("--generators", type=int, default=1,
                    help="trafgen processes (default 1: the flooding host has one core)")  # fmt: skip
    ap.add_argument("--runs", type=int, default=1, help="flooded runs per switch (default 1)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the runs without flood")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--keep-logs", metavar="DIR", help="copy each switch's log there")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("flood: needs root (network namespaces)", file=sys.stderr)
        return 2
    if not 0 < args.flood < args.seconds:
        print("flood: --flood must be positive and shorter than --seconds", file=sys.stderr)
        return 2
    install_signal_cleanup()
    load0 = os.getloadavg()[0]
    results = []
    for name in args.switches.split(","):
        plan = ([] if args.no_baseline else [0.0]) + [args.flood] * args.runs
        for flood in plan:
            r = one_run(name, args.kind, args.seconds, flood, args.generators, args.keep_logs)
            print(_row(r), flush=True)
            results.append(r)
    load1 = os.getloadavg()[0]
    print(f"load average {load0:.1f} -> {load1:.1f}")
    for r in results:
        if r["flood_seconds"]:
            print(f"--- {r['switch']} after the flood:")
            for k, v in r["counters"].items():
                print(f"$ ovs-appctl {k}\n{v.rstrip()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load": [load0, load1], "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
