"""Forwarding benchmark: hitless netdev datapath vs Open vSwitch (datapath_type=netdev).

Topology (built twice, one per switch, so both exist side by side and runs alternate):
two hosts in network namespaces, each wired by a veth pair (hosts' tx offload off) to
the switch's two ports in the root namespace.

Figures, each the median of ``--runs`` runs of ``--seconds`` seconds:

* pps: 64-byte frames (18-byte UDP payload, 60 bytes + FCS on the wire) forwarded per
  second. Generator: ``iperf3 -u -b 0 -l 18`` (one sender stream, as fast as it can);
  the figure is the frames the switch delivered to the receiver's interface (its rx
  counter) per second; "app pps" is what the receiving iperf3 counted (sent - lost).
  "switch CPU us/packet" is the switch process's CPU time (user + system, all
  threads) over the run divided by the frames delivered: less noisy than the rates
  on a shared machine, and it is what a faster datapath must lower.
* tcp: ``iperf3`` TCP, one stream, receiver's bits/s.
* burst: ``--flows`` (20,000) distinct new flows sent as fast as one host can (raw
  64-byte frames, ``sendmmsg`` in batches of 64, from host a to host b's MAC and IP);
  the figure is how many of them reach b's interface (its rx counter, once it has
  stopped moving). Two kinds: ``l4`` (one source MAC, a distinct UDP source port per
  frame: new 5-tuples, each a new entry for the switch's caches) and ``mac`` (a
  distinct source MAC per frame: every frame misses the datapath, goes up to NORMAL,
  is learned and gets its own megaflow). MAC tables are warm (a ping first).

hitless (default ``--switch daemon``): the product, ``hitless start --rundir DIR``
(private ovsdb-server + hitless-vswitchd), one bridge with ``datapath_type=netdev``
made with stock ``ovs-vsctl add-br/add-port``; NORMAL forwarding. ``--switch
inprocess`` instead drives a bare ``NetdevDatapath`` in this process by ``serve()`` in
a thread, with a trivial MAC-learning handler (the datapath alone, no daemon).
OVS: a private ``ovsdb-server`` and ``ovs-vswitchd`` in a temporary rundir, one bridge
with ``datapath_type=netdev`` and its default NORMAL flow. Both are stopped by PID.
``--baseline PATH`` adds a third switch: another hitless-vswitchd, e.g. an older build
to measure a change against in the same invocation (a wrapper script that runs
``PYTHONPATH=<git worktree of the old commit> python -P -m hitless.daemon "$@"``).

Prints each figure and the ratio hitless/OVS (the machine is shared and noisy: only
ratios from the same invocation mean anything). A pps or TCP run whose iperf3 fails
three times is reported and left out of the median. Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
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
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hitless.datapath.actions import Output  # noqa: E402
from hitless.datapath.base import Datapath, Upcall  # noqa: E402
from hitless.datapath.netdev import NetdevDatapath, ServeThread  # noqa: E402
from hitless.packet.flow import Match, full_mask  # noqa: E402
from tests.netns import Host, Topology, sh, unique_suffix  # noqa: E402

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BIN = Path(sys.executable).parent


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
def hitless_daemon(pair: Pair, vswitchd: str | None = None) -> Iterator[int]:
    """The real switch: ``hitless start``, a netdev bridge with both ports, NORMAL."""
    rundir = tempfile.mkdtemp(prefix="hl-bench-hitless-")
    db = f"unix:{rundir}/db.sock"
    br = f"bh{unique_suffix()}"

    def run(*args: str) -> str:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {(r.stderr or r.stdout).strip()}")
        return r.stdout

    try:
        extra = ["--vswitchd", vswitchd] if vswitchd else []
        run(str(BIN / "hitless"), "start", "--rundir", rundir, *extra)
        run(
            "ovs-vsctl", f"--db={db}", "--timeout=30", "add-br", br,
            "--", "set", "bridge", br, "datapath_type=netdev",
            "--", "add-port", br, pair.a.switch_port,
            "--", "add-port", br, pair.b.switch_port,
        )  # fmt: skip
        for _ in range(100):
            ofports = [
                run("ovs-vsctl", f"--db={db}", "get", "Interface", p.switch_port, "ofport")
                for p in (pair.a, pair.b)
            ]
            if all(o.strip() not in ("[]", "-1", "") for o in ofports):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("hitless-vswitchd did not attach the benchmark's ports")
        with open(f"{rundir}/hitless-vswitchd.pid") as f:
            yield int(f.read().strip())
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [str(BIN / "hitless"), "stop", "--rundir", rundir],
                capture_output=True,
                timeout=60,
            )
        for name in ("hitless-vswitchd.pid", "ovsdb-server.pid"):  # if stop failed
            with contextlib.suppress(OSError, ValueError), open(f"{rundir}/{name}") as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        shutil.rmtree(rundir, ignore_errors=True)


@contextlib.contextmanager
def hitless_inprocess(pair: Pair) -> Iterator[int]:
    dp = NetdevDatapath(f"hl{unique_suffix()}")
    dp.port_add(pair.a.switch_port)
    dp.port_add(pair.b.switch_port)
    try:
        with ServeThread(dp, Learner()):
            yield os.getpid()
    finally:
        dp.close()


@contextlib.contextmanager
def ovs_switch(pair: Pair) -> Iterator[int]:
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
        with open(f"{rundir}/ovs-vswitchd.pid") as f:
            yield int(f.read().strip())
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
            print(f"  ({pair.a.name} -> {pair.b.name}: {e}; retrying)", flush=True)
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def measure_pps(pair: Pair, seconds: float, pid: int) -> tuple[float, float, float, float]:
    """(frames/s the switch delivered to b's interface, datagrams/s iperf3 received,
    microseconds of the switch process's CPU per delivered frame, the share of it spent
    in the kernel)."""
    before = pair.b.counter("rx_packets")
    user0, sys0 = cpu_seconds(pid)
    end = iperf(pair, ["-u", "-b", "0", "-l", "18"], seconds)["end"]
    user1, sys1 = cpu_seconds(pid)
    delivered = pair.b.counter("rx_packets") - before
    s = end["sum"]  # type: ignore[index]
    duration = float(s["seconds"])
    app = float(s["packets"] - s["lost_packets"]) / duration
    cpu = user1 - user0 + sys1 - sys0
    return delivered / duration, app, cpu / max(delivered, 1) * 1e6, (sys1 - sys0) / max(cpu, 1e-9)


def measure_tcp(pair: Pair, seconds: float) -> float:
    end = iperf(pair, [], seconds)["end"]
    return float(end["sum_received"]["bits_per_second"])  # type: ignore[index]


# Runs inside host a's namespace: argv = dev, dst MAC, src IP, dst IP, count, kind, salt
# (salt: a byte that makes each burst's flows new: the MACs' second byte, the UDP
# destination port).
# Builds every frame first, then sends them with sendmmsg (64 per call) as fast as the
# kernel takes them; prints how many were sent and how long it took.
_BURST = r"""
import ctypes, ctypes.util, socket, struct, sys, time
dev, dmac, sip, dip, count, kind, salt = sys.argv[1:8]
count, salt = int(count), int(salt)
dmac = bytes.fromhex(dmac.replace(":", ""))
with open(f"/sys/class/net/{dev}/address") as f:
    smac = bytes.fromhex(f.read().strip().replace(":", ""))
sip, dip = socket.inet_aton(sip), socket.inet_aton(dip)
frames = []
for i in range(count):
    src = smac if kind == "l4" else bytes((2, salt)) + i.to_bytes(4, "big")
    sport = 1024 + i % 60000 if kind == "l4" else 7
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, i & 0xFFFF, 0, 64, 17, 0, sip, dip)
    csum = sum(struct.unpack("!10H", ip))
    csum = (csum & 0xFFFF) + (csum >> 16)
    csum = ~((csum & 0xFFFF) + (csum >> 16)) & 0xFFFF
    ip = ip[:10] + struct.pack("!H", csum) + ip[12:]
    udp = struct.pack("!HHHH", sport, 1000 + salt, 26, 0) + bytes(18)
    frames.append(dmac + src + b"\x08\x00" + ip + udp)
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
class Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]
class Msg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint),
                ("iov", ctypes.POINTER(Iov)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int), ("pad", ctypes.c_int), ("len", ctypes.c_uint)]
assert ctypes.sizeof(Msg) == 64  # struct mmsghdr on x86-64 / arm64
B = 64
iovs = (Iov * count)(*[(f, len(f)) for f in frames])
msgs = (Msg * count)()
for i in range(count):
    msgs[i].iov = ctypes.pointer(iovs[i])
    msgs[i].iovlen = 1
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 20, 1)  # PACKET_QDISC_BYPASS
s.bind((dev, 0))
base = ctypes.addressof(msgs)
size = ctypes.sizeof(Msg)
sent = 0
t = time.perf_counter()
while sent < count:
    r = libc.sendmmsg(s.fileno(), ctypes.c_void_p(base + sent * size), min(B, count - sent), 0)
    sent += r if r > 0 else 1  # a frame the kernel refused counts as sent (and lost)
print(count, time.perf_counter() - t, flush=True)
"""


def measure_burst(pair: Pair, flows: int, kind: str, salt: int) -> tuple[int, float]:
    """(frames of a ``flows``-frame burst that reached b, seconds the sender took)."""
    before = pair.b.counter("rx_packets")
    res = pair.a.run(
        [sys.executable, "-c", _BURST, "eth0", pair.b.mac, pair.a.addr, pair.b.addr,
         str(flows), kind, str(salt)],
        timeout=120,
    )  # fmt: skip
    seconds = float(res.stdout.split()[1])
    last, stable = -1, 0
    while stable < 5:  # the count has not moved for 5 x 0.2 s
        time.sleep(0.2)
        now = pair.b.counter("rx_packets")
        stable = stable + 1 if now == last else 0
        last = now
    return last - before, seconds


def warm_up(pair: Pair) -> None:
    for _ in range(20):
        if pair.a.ping(pair.b.addr, count=1, timeout=1):
            return
    raise RuntimeError(f"{pair.a.name} cannot reach {pair.b.name} through the switch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--flows", type=int, default=20000, help="frames (new flows) per burst")
    ap.add_argument(
        "--switch",
        choices=("daemon", "inprocess"),
        default="daemon",
        help="hitless as the real daemon (default) or a bare datapath in this process",
    )
    ap.add_argument(
        "--vswitchd",
        metavar="PATH",
        help="hitless-vswitchd to run (e.g. a wrapper that profiles it)",
    )
    ap.add_argument(
        "--baseline",
        metavar="PATH",
        help="also run this hitless-vswitchd (e.g. an older build) as a third switch",
    )
    ap.add_argument(
        "--only",
        choices=("pps", "tcp", "burst"),
        action="append",
        help="measure only these figures (repeatable; default: all)",
    )
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/datapath.py needs root (network namespaces)")
    sh(["iperf3", "--version"])

    only = set(args.only or ("pps", "tcp", "burst"))
    metrics = ("pps", "app_pps", "us_per_pkt", "tcp", "burst_l4", "burst_mac")
    names = ["hitless", "ovs"] + (["baseline"] if args.baseline else [])
    results: dict[str, dict[str, list[float]]] = {n: {m: [] for m in metrics} for n in names}
    hitless_switch = (
        functools.partial(hitless_daemon, vswitchd=args.vswitchd)
        if args.switch == "daemon"
        else hitless_inprocess
    )
    with Topology("hb") as topo, contextlib.ExitStack() as stack:
        pairs = {n: make_pair(topo, n[0], 91 + i) for i, n in enumerate(names)}
        pids = {
            "hitless": stack.enter_context(hitless_switch(pairs["hitless"])),
            "ovs": stack.enter_context(ovs_switch(pairs["ovs"])),
        }
        if args.baseline:
            pids["baseline"] = stack.enter_context(
                hitless_daemon(pairs["baseline"], vswitchd=args.baseline)
            )
        for pair in pairs.values():
            warm_up(pair)
        for run in range(args.runs):
            for name, pair in pairs.items():
                if "pps" not in only:
                    break
                try:
                    pps, app, us, kernel = measure_pps(pair, args.seconds, pids[name])
                except RuntimeError as e:  # left out of the median, and said so
                    print(f"run {run + 1} {name:8} pps: no result ({e})", flush=True)
                    continue
                results[name]["pps"].append(pps)
                results[name]["app_pps"].append(app)
                results[name]["us_per_pkt"].append(us)
                print(
                    f"run {run + 1} {name:8} pps: {pps:,.0f} (app {app:,.0f}; switch CPU"
                    f" {us:.2f} us/packet, {kernel:.0%} in the kernel)",
                    flush=True,
                )
            for name, pair in pairs.items():
                if "tcp" not in only:
                    break
                try:
                    tcp = measure_tcp(pair, args.seconds)
                except RuntimeError as e:
                    print(f"run {run + 1} {name:8} tcp: no result ({e})", flush=True)
                    continue
                results[name]["tcp"].append(tcp)
                print(f"run {run + 1} {name:8} tcp: {tcp / 1e9:.3f} Gbit/s", flush=True)
            for kind in ("l4", "mac"):
                for name, pair in pairs.items():
                    if "burst" not in only:
                        break
                    warm_up(pair)
                    got, secs = measure_burst(pair, args.flows, kind, run)
                    results[name][f"burst_{kind}"].append(got)
                    print(
                        f"run {run + 1} {name:8} burst {kind:3}: {got:,} of {args.flows:,}"
                        f" arrived (sent in {secs * 1000:.0f} ms)",
                        flush=True,
                    )

    med = {n: {m: statistics.median(v) for m, v in r.items() if v} for n, r in results.items()}
    print()
    head = f"{'':26}{'hitless':>14}{'ovs netdev':>14}{'ratio':>8}"
    if args.baseline:
        head += f"{'baseline':>14}{'ratio':>8}"
    print(head)
    for metric, label, scale in (
        ("pps", "64-byte packets/s", 1.0),
        ("app_pps", "  (app pps)", 1.0),
        ("us_per_pkt", "  switch CPU us/packet", 1.0),
        ("tcp", "TCP Gbit/s", 1e-9),
        ("burst_l4", f"burst {args.flows} 5-tuples", 1.0),
        ("burst_mac", f"burst {args.flows} src MACs", 1.0),
    ):
        if not any(metric in med[n] for n in names):
            continue
        h = med["hitless"].get(metric, math.nan)
        line = f"{label:26}{h * scale:>14,.3f}"
        for other in names[1:]:
            o = med[other].get(metric, math.nan)
            ratio = f"{h / o:>8.2f}" if o else f"{'inf':>8}"
            line += f"{o * scale:>14,.3f}{ratio}"
        print(line)
    print(
        f"(median of {args.runs} runs; pps and TCP runs of {args.seconds:g} s; "
        f"hitless as {args.switch}; ratio = hitless / column to its left)"
    )
    if args.json:
        print(json.dumps({"runs": results, "median": med}))


if __name__ == "__main__":
    main()
