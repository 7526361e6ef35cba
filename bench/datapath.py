"""Forwarding benchmark: hitless netdev datapath vs Open vSwitch (datapath_type=netdev).

Topology (built twice, one per switch, so both exist side by side and runs alternate):
two hosts in network namespaces, each wired by a veth pair (hosts' tx offload off) to
the switch's two ports in the root namespace.

Figures, each the median of ``--runs`` runs of ``--seconds`` seconds:

* pps: 64-byte frames (18-byte UDP payload, 60 bytes + FCS on the wire) forwarded per
  second. Generator: ``iperf3 -u -b 0 -l 18`` (one sender stream, as fast as it can);
  the figure is the datagrams the receiving iperf3 counted (sent - lost) / seconds.
* tcp: ``iperf3`` TCP, one stream, receiver's bits/s.

hitless: the ``NetdevDatapath`` driven in this process by ``serve()`` in a thread, with
a trivial MAC-learning handler that installs (in_port, eth_dst) megaflows on a miss.
OVS: a private ``ovsdb-server`` and ``ovs-vswitchd`` in a temporary rundir, one bridge
with ``datapath_type=netdev`` and its default NORMAL flow. Both are killed by PID.

Prints each figure and the ratio hitless/OVS (the machine is shared and noisy: only
ratios from the same invocation mean anything). Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hitless.datapath.actions import Output  # noqa: E402
from hitless.datapath.base import Datapath, Upcall  # noqa: E402
from hitless.datapath.netdev import NetdevDatapath, ServeThread  # noqa: E402
from hitless.packet.flow import Match, full_mask  # noqa: E402
from tests.netns import Host, Topology, sh, unique_suffix  # noqa: E402

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


class Learner:
    """Minimal L2 learning for the benchmark: learn eth_src -> in_port; known unicast
    destinations get an (in_port, eth_dst) megaflow, everything else is flooded."""

    def __init__(self) -> None:
        self.macs: dict[bytes, int] = {}

    def __call__(self, dp: Datapath, upcalls: list[Upcall]) -> None:
        ports = list(dp.ports())
        mask = full_mask("in_port", "eth_dst")
        for u in upcalls:
            self.macs[u.packet[6:12]] = u.in_port
            out = self.macs.get(u.packet[0:6])
            if out is not None and out != u.in_port:
                dp.flow_put(Match.of(u.key, mask), (Output(out),))
                dp.execute(u.packet, u.in_port, (Output(out),))
            else:
                dp.execute(u.packet, u.in_port, tuple(Output(p) for p in ports if p != u.in_port))


@dataclass
class Pair:
    a: Host
    b: Host


def make_pair(topo: Topology, tag: str, net: int) -> Pair:
    return Pair(
        topo.add_host(f"{tag}a", f"10.{net}.0.1/24"), topo.add_host(f"{tag}b", f"10.{net}.0.2/24")
    )


@contextlib.contextmanager
def hitless_switch(pair: Pair) -> Iterator[NetdevDatapath]:
    dp = NetdevDatapath(f"hl{unique_suffix()}")
    dp.port_add(pair.a.switch_port)
    dp.port_add(pair.b.switch_port)
    try:
        with ServeThread(dp, Learner()):
            yield dp
    finally:
        dp.close()


@contextlib.contextmanager
def ovs_switch(pair: Pair) -> Iterator[str]:
    rundir = tempfile.mkdtemp(prefix="hl-bench-ovs-")
    env = dict(os.environ, OVS_RUNDIR=rundir, OVS_LOGDIR=rundir, OVS_DBDIR=rundir)
    db = f"unix:{rundir}/db.sock"
    br = f"bo{unique_suffix()}"
    pids: list[str] = []

    def run(*args: str) -> None:
        subprocess.run(args, check=True, env=env, capture_output=True, timeout=30)

    try:
        run("ovsdb-tool", "create", f"{rundir}/conf.db", SCHEMA)
        run(
            "ovsdb-server",
            f"{rundir}/conf.db",
            f"--remote=punix:{rundir}/db.sock",
            f"--unixctl={rundir}/ovsdb-server.ctl",
            f"--pidfile={rundir}/ovsdb-server.pid",
            f"--log-file={rundir}/ovsdb-server.log",
            "--detach",
            "--no-chdir",
        )
        pids.append(f"{rundir}/ovsdb-server.pid")
        run("ovs-vsctl", f"--db={db}", "--no-wait", "init")
        run(
            "ovs-vswitchd",
            db,
            f"--unixctl={rundir}/ovs-vswitchd.ctl",
            f"--pidfile={rundir}/ovs-vswitchd.pid",
            f"--log-file={rundir}/ovs-vswitchd.log",
            "--detach",
            "--no-chdir",
        )
        pids.append(f"{rundir}/ovs-vswitchd.pid")
        run(
            "ovs-vsctl", f"--db={db}", "--timeout=30", "add-br", br,
            "--", "set", "bridge", br, "datapath_type=netdev",
            "--", "add-port", br, pair.a.switch_port,
            "--", "add-port", br, pair.b.switch_port,
        )  # fmt: skip
        yield br
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                ["ovs-vsctl", f"--db={db}", "--timeout=5", "del-br", br],
                env=env,
                capture_output=True,
                timeout=10,
            )
        for pidfile in reversed(pids):
            with contextlib.suppress(OSError, ValueError):
                with open(pidfile) as f:
                    pid = int(f.read().strip())
                os.kill(pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(pid, 0)
                    time.sleep(0.1)
        shutil.rmtree(rundir, ignore_errors=True)


def iperf(pair: Pair, args: list[str], seconds: float) -> dict[str, object]:
    """One iperf3 client run; retried (twice) when iperf3's own control connection
    fails, which happens when the data stream saturates the path it shares."""
    for attempt in range(3):
        try:
            return _iperf_once(pair, args, seconds)
        except RuntimeError as e:
            print(f"  (retrying: {e})", flush=True)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _iperf_once(pair: Pair, args: list[str], seconds: float) -> dict[str, object]:
    server = pair.b.popen(["iperf3", "-s", "-1", "-B", pair.b.addr])
    time.sleep(0.3)
    try:
        res = pair.a.run(
            ["iperf3", "-c", pair.b.addr, "-t", str(seconds), "-J", *args],
            check=False,
            timeout=seconds + 30,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError("iperf3 client hung (its control connection stalled)") from None
    finally:
        if server.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            server.communicate(timeout=10)
    try:
        data: dict[str, object] = json.loads(res.stdout)
    except ValueError:
        raise RuntimeError(f"iperf3 gave no result: {res.stderr.strip()[-300:]}") from None
    if "error" in data:
        raise RuntimeError(f"iperf3 failed: {data['error']}")
    return data


def measure_pps(pair: Pair, seconds: float) -> tuple[float, float]:
    """(frames/s the switch delivered to b's interface, datagrams/s iperf3 received)."""
    before = pair.b.counter("rx_packets")
    end = iperf(pair, ["-u", "-b", "0", "-l", "18"], seconds)["end"]
    delivered = pair.b.counter("rx_packets") - before
    s = end["sum"]  # type: ignore[index]
    duration = float(s["seconds"])
    return delivered / duration, float(s["packets"] - s["lost_packets"]) / duration


def measure_tcp(pair: Pair, seconds: float) -> float:
    end = iperf(pair, [], seconds)["end"]
    return float(end["sum_received"]["bits_per_second"])  # type: ignore[index]


def warm_up(pair: Pair) -> None:
    for _ in range(20):
        if pair.a.ping(pair.b.addr, count=1, timeout=1):
            return
    raise RuntimeError(f"{pair.a.name} cannot reach {pair.b.name} through the switch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/datapath.py needs root (network namespaces)")
    sh(["iperf3", "--version"])

    results: dict[str, dict[str, list[float]]] = {
        "hitless": {"pps": [], "app_pps": [], "tcp": []},
        "ovs": {"pps": [], "app_pps": [], "tcp": []},
    }
    with Topology("hb") as topo:
        pairs = {"hitless": make_pair(topo, "h", 91), "ovs": make_pair(topo, "o", 92)}
        with hitless_switch(pairs["hitless"]), ovs_switch(pairs["ovs"]):
            for pair in pairs.values():
                warm_up(pair)
            for run in range(args.runs):
                for name, pair in pairs.items():
                    pps, app = measure_pps(pair, args.seconds)
                    results[name]["pps"].append(pps)
                    results[name]["app_pps"].append(app)
                    print(f"run {run + 1} {name:8} pps: {pps:,.0f} (app {app:,.0f})", flush=True)
                for name, pair in pairs.items():
                    tcp = measure_tcp(pair, args.seconds)
                    results[name]["tcp"].append(tcp)
                    print(f"run {run + 1} {name:8} tcp: {tcp / 1e9:.3f} Gbit/s", flush=True)

    med = {n: {m: statistics.median(v) for m, v in r.items()} for n, r in results.items()}
    print()
    print(f"{'':22}{'hitless':>16}{'ovs netdev':>16}{'ratio':>8}")
    for metric, label, scale in (
        ("pps", "64-byte packets/s", 1.0),
        ("app_pps", "  (app pps)", 1.0),
        ("tcp", "TCP Gbit/s", 1e-9),
    ):
        h, o = med["hitless"][metric], med["ovs"][metric]
        print(f"{label:22}{h * scale:>16,.3f}{o * scale:>16,.3f}{h / o:>8.2f}")
    print(f"(median of {args.runs} runs of {args.seconds:g} s each)")
    if args.json:
        print(json.dumps({"runs": results, "median": med}))


if __name__ == "__main__":
    main()
