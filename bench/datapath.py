"""Forwarding benchmark: every datapath side by side in one run, as ratios to the limit.

Switches (``--switches``, default all, in this order):

* ``redirect``: the limit of the machine: a bare tc-BPF program that only redirects
  each frame to the paired port (hitless/datapath/ebpf/bpf/redirect.bpf.c), no switch.
* ``bridge``: the Linux bridge.
* ``ebpf``: hitless, the real daemon (``hitless start``), a bridge with
  ``datapath_type=ebpf`` made with stock ``ovs-vsctl``; NORMAL forwarding.
* ``netdev``: the same with ``datapath_type=netdev`` (``netdev-inprocess``: a bare
  ``NetdevDatapath`` driven by ``serve()`` in this process, with a trivial learner).
* ``ovs``: Open vSwitch (private ovsdb-server and ovs-vswitchd in a temporary rundir),
  ``datapath_type=netdev``, its default NORMAL flow.
* ``--baseline PATH`` adds another hitless-vswitchd (netdev), e.g. an older build
  (a wrapper running ``PYTHONPATH=<worktree> python -P -m hitless.daemon "$@"``).

Topology: one pair of hosts per switch (network namespaces, veth pairs, hosts' tx
offload off), so every switch exists side by side and the runs alternate.

Figures, each the median of ``--runs`` runs:

* pps: 64-byte frames (UDP, 18-byte payload) received per second by b's interface
  (its rx counter) while ``--generators`` (2) senders in a send a prebuilt frame as
  fast as they can for ``--seconds``: netsniff-ng's ``trafgen -P 2`` (a TX ring, qdisc
  bypassed; ~470 kpps per process into a bare veth on this loaded machine, 2.5x the
  Python sender it replaces), or Python ``sendmmsg`` loops where trafgen is missing.
  The frames' destination IP is not b's, so b's stack drops them without a reply.
  For a userspace switch also its CPU time per delivered frame. Also the frames
  received per CPU-second of the generators (the whole path runs in their context:
  a figure other users of the machine do not move; the ksoftirqd threads' time is
  printed beside it) and, for a tc-BPF switch, its program's own ns per run in the
  live traffic (the kernel's BPF run-time statistics, on while the run lasts).
* tcp: ``iperf3`` TCP, one stream, receiver's bits/s, ``--seconds`` long.
* rtt: ``ping -i 0.005 -c 200`` average, ms.
* burst: ``--flows`` (20,000) new flows in one burst from a (``sendmmsg``), counted
  at b's interface once its counter stops moving. ``l4``: one source MAC, a distinct
  UDP source port per frame (new 5-tuples); ``mac``: a distinct source MAC per frame
  (each one a miss that NORMAL learns and installs a megaflow for).

``--ct``: the hitless and Open vSwitch bridges get a three-rule stateful firewall
(``CT_RULES``: ``ct(table=1,zone=9)``, commit ``+new``, pass ``+est``, all with NORMAL)
added with stock ``ovs-ofctl`` before any traffic: conntrack throughput side by side
(TCP is the figure that means something there: the pps generator's frames never get a
reply, so every one of them is a new connection; ICMP is the daemon's on ebpf).

Prints each run, then a table of medians with each switch's ratio to ``redirect``
(the first switch given; for RTT the ratio is the limit's RTT over the switch's, so
that higher is better everywhere), and the load average before and after. The
machine is shared (other engineers run tests at the same time): only ratios from the
same invocation mean anything. Needs root.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
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
from hitless.datapath.ebpf import libbpf  # noqa: E402
from hitless.datapath.ebpf.build import REDIRECT_SOURCE, object_path  # noqa: E402
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


CT_RULES = (
    "table=0,priority=100,ip,ct_state=-trk,actions=ct(table=1,zone=9)",
    "table=1,priority=100,ip,ct_state=+trk+new,actions=ct(commit,zone=9),NORMAL",
    "table=1,priority=100,ip,ct_state=+trk+est,actions=NORMAL",
)


def add_flows(mgmt: str, rules: tuple[str, ...], env: dict[str, str] | None = None) -> None:
    """Stock ``ovs-ofctl add-flow`` on a bridge's management socket."""
    for r in rules:
        subprocess.run(["ovs-ofctl", "add-flow", f"unix:{mgmt}", r], check=True, env=env,
                       capture_output=True, timeout=30)  # fmt: skip


@contextlib.contextmanager
def hitless_daemon(
    pair: Pair, vswitchd: str | None = None, dp_type: str = "netdev", rules: tuple[str, ...] = ()
) -> Iterator[int]:
    """The real switch: ``hitless start``, a bridge of ``dp_type`` with both ports, NORMAL
    (and ``rules``)."""
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
            "--", "set", "bridge", br, f"datapath_type={dp_type}",
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
        add_flows(f"{rundir}/{br}.mgmt", rules)
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
def linux_bridge(pair: Pair) -> Iterator[int]:
    br = f"lb{unique_suffix()}"
    sh(["ip", "link", "add", br, "type", "bridge"])
    try:
        for p in (pair.a, pair.b):
            sh(["ip", "link", "set", p.switch_port, "master", br])
        sh(["ip", "link", "set", br, "up"])
        yield 0
    finally:
        sh(["ip", "link", "del", br], check=False)


@contextlib.contextmanager
def bare_redirect(pair: Pair) -> Iterator[int]:
    """The limit: a tc-BPF program redirecting a's port to b's and back, nothing else."""
    obj = libbpf.BpfObject(str(object_path(REDIRECT_SOURCE)))
    try:
        prog = obj.prog_fd("hitless_redirect")
        table = libbpf.Map(obj.map_fd("hl_redirect"))
    finally:
        obj.close()
    ia, ib = (sh(["cat", f"/sys/class/net/{p.switch_port}/ifindex"]).stdout.strip()
              for p in (pair.a, pair.b))  # fmt: skip
    ifa, ifb = int(ia), int(ib)
    try:
        table.update(ifa.to_bytes(4, "little"), ifb.to_bytes(4, "little"))
        table.update(ifb.to_bytes(4, "little"), ifa.to_bytes(4, "little"))
        libbpf.tc_attach(ifa, prog)
        libbpf.tc_attach(ifb, prog)
        yield 0
    finally:
        libbpf.tc_detach(ifa)
        libbpf.tc_detach(ifb)
        table.close()
        os.close(prog)


@contextlib.contextmanager
def ovs_switch(pair: Pair, rules: tuple[str, ...] = ()) -> Iterator[int]:
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
        add_flows(f"{rundir}/{br}.mgmt", rules, env)
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
    for _ in range(100):  # until the server listens
        if ":5201 " in pair.b.run(["ss", "-Hlnt"]).stdout:
            break
        time.sleep(0.05)
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


# Runs inside host a's namespace: argv = dev, dst MAC, dst IP, seconds. Sends 64
# prebuilt 64-byte UDP frames over and over with sendmmsg (qdisc bypassed) until the
# time is up; prints the frames sent.
_FLOOD = r"""
import ctypes, ctypes.util, socket, struct, sys, time
dev, dmac, dip, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
dmac = bytes.fromhex(dmac.replace(":", ""))
with open(f"/sys/class/net/{dev}/address") as f:
    smac = bytes.fromhex(f.read().strip().replace(":", ""))
B = 64
frames = []
for i in range(B):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, i, 0, 64, 17, 0, bytes(4), socket.inet_aton(dip))
    c = sum(struct.unpack("!10H", ip)); c = (c & 0xFFFF) + (c >> 16)
    ip = ip[:10] + struct.pack("!H", ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF) + ip[12:]
    frames.append(dmac + smac + b"\x08\x00" + ip + struct.pack("!HHHH", 9, 9, 26, 0) + bytes(18))
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
class Iov(ctypes.Structure):
    _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]
class Msg(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint),
                ("iov", ctypes.POINTER(Iov)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int), ("pad", ctypes.c_int), ("len", ctypes.c_uint)]
iovs = (Iov * B)(*[(f, len(f)) for f in frames])
msgs = (Msg * B)()
for i in range(B):
    msgs[i].iov = ctypes.pointer(iovs[i]); msgs[i].iovlen = 1
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 20, 1)  # PACKET_QDISC_BYPASS
s.bind((dev, 0))
fd, sent, end = s.fileno(), 0, time.monotonic() + seconds
while time.monotonic() < end:
    for _ in range(16):
        r = libc.sendmmsg(fd, msgs, B, 0)
        sent += max(r, 0)
print(sent, flush=True)
"""


def _frame(dmac: str, smac: str, dip: str) -> bytes:
    """A 64-byte UDP frame (without FCS: 60 bytes) from smac to dmac, to IP dip."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0, bytes(4), socket.inet_aton(dip))
    c = sum(struct.unpack("!10H", ip))
    c = (c & 0xFFFF) + (c >> 16)
    ip = ip[:10] + struct.pack("!H", ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF) + ip[12:]
    mac = bytes.fromhex((dmac + smac).replace(":", ""))
    return mac + b"\x08\x00" + ip + struct.pack("!HHHH", 9, 9, 26, 0) + bytes(18)


def _generate(pair: Pair, seconds: float, generators: int) -> list[subprocess.Popen[str]]:
    """Start the 64-byte generators in host a: trafgen (netsniff-ng: a TX ring, qdisc
    bypassed) if installed, else Python sendmmsg loops (slower, so more often the limit)."""
    dip = "10.255.0.222"
    if shutil.which("trafgen"):
        frame = _frame(pair.b.mac, pair.a.mac, dip)
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
            cfg.write("{ " + ", ".join(f"0x{x:02x}" for x in frame) + " }\n")
        return [
            pair.a.popen(
                [
                    "timeout",
                    "-s",
                    "INT",
                    f"{seconds}",
                    "trafgen",
                    "-i",
                    cfg.name,
                    "-o",
                    "eth0",
                    "-P",
                    str(generators),
                    "-t",
                    "0",
                ],
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        ]
    return [
        pair.a.popen([sys.executable, "-c", _FLOOD, "eth0", pair.b.mac, dip, str(seconds)])
        for _ in range(generators)
    ]


@dataclass
class PpsRun:
    pps: float  # frames/s b's interface received
    sent: float  # frames/s the generators sent
    us_per_pkt: float  # the switch process's CPU per received frame (nan: no process)
    per_gen_cpu: float  # frames received per CPU-second of the generators (see below)
    prog_ns: float  # the tc program's own run time per run on a's port (nan: none)
    softirqd: float  # CPU-seconds the ksoftirqd threads used meanwhile (anyone's work)


def softirqd_seconds() -> float:
    """CPU time of the ksoftirqd threads so far: softirq work the kernel deferred to
    them is not in the generators' CPU time (with tick accounting the rest is)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("ksoftirqd/"):
                    continue
            total += sum(cpu_seconds(int(pid)))
        except OSError:
            continue
    return total


def _prog_counters(ifindex: int) -> tuple[int, int] | None:
    """(run_time_ns, run_cnt) of the BPF program on the device's ingress, if any."""
    prog_id = libbpf.tc_query(ifindex)
    if prog_id is None:
        return None
    fd = libbpf.prog_fd_by_id(prog_id)
    try:
        info = libbpf.prog_info(fd)
    finally:
        os.close(fd)
    return info["run_time_ns"], info["run_cnt"]


def measure_pps(pair: Pair, seconds: float, pid: int, generators: int) -> PpsRun:
    """One pps run. Besides the rates: the frames received per CPU-second the generator
    processes used (trafgen's sends run the whole path, a's veth, the switch's tc
    program or bridge, b's veth, in their own system time: a figure that the other
    users of the machine do not move, unlike frames per wall-clock second when the
    generators wait for a CPU), and the tc program's own ns per run in live traffic
    (the kernel's BPF run-time statistics, on while the run lasts)."""
    ifa = int(Path(f"/sys/class/net/{pair.a.switch_port}/ifindex").read_text())
    before = pair.b.counter("rx_packets")
    cpu0 = cpu_seconds(pid) if pid else (0.0, 0.0)
    stats_fd = libbpf.enable_stats()
    prog0 = _prog_counters(ifa)
    gen0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    soft0 = softirqd_seconds()
    t = time.monotonic()
    sent = 0
    try:
        for g in _generate(pair, seconds, generators):
            out, err = g.communicate(timeout=seconds + 60)
            m = re.search(r"(\d+) packets outgoing", out)
            if m:  # trafgen (exits 124 from timeout)
                sent += int(m.group(1))
            elif g.returncode == 0 and out.split():
                sent += int(out.split()[0])
            else:
                raise RuntimeError(f"generator failed: {(out + (err or '')).strip()[-300:]}")
        elapsed = time.monotonic() - t
        gen1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        soft1 = softirqd_seconds()
        prog1 = _prog_counters(ifa)
    finally:
        os.close(stats_fd)
    got = settled_rx(pair.b, 0.2) - before  # frames still in flight
    cpu1 = cpu_seconds(pid) if pid else (0.0, 0.0)
    cpu = cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]
    gen_cpu = gen1.ru_utime - gen0.ru_utime + gen1.ru_stime - gen0.ru_stime
    prog_ns = math.nan
    if prog0 and prog1 and prog1[1] > prog0[1]:
        prog_ns = (prog1[0] - prog0[0]) / (prog1[1] - prog0[1])
    return PpsRun(
        pps=got / elapsed,
        sent=sent / elapsed,
        us_per_pkt=cpu / max(got, 1) * 1e6 if pid else math.nan,
        per_gen_cpu=got / gen_cpu if gen_cpu > 0 else math.nan,
        prog_ns=prog_ns,
        softirqd=soft1 - soft0,
    )


def measure_rtt(pair: Pair) -> float:
    """Average ping RTT in ms (200 echoes, 5 ms apart)."""
    res = pair.a.run(
        ["ping", "-n", "-q", "-c", "200", "-i", "0.005", pair.b.addr], check=False, timeout=60
    )
    for line in res.stdout.splitlines():
        if "min/avg/max" in line:
            return float(line.split("=")[1].split("/")[1])
    raise RuntimeError(f"no RTT in ping output: {res.stdout[-300:]}")


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
    # A switch whose slow path stalls for a moment (hitless learning 20,000 MACs under
    # load: up to ~3 s seen) is not cut off.
    return settled_rx(pair.b, 3.0) - before, seconds


def settled_rx(host: Host, quiet: float) -> int:
    """The host's rx counter once it has not moved for ``quiet`` seconds."""
    last, still = host.counter("rx_packets"), 0.0
    while still < quiet:
        time.sleep(0.1)
        now = host.counter("rx_packets")
        still = still + 0.1 if now == last else 0.0
        last = now
    return last


def program_cost(topo: Topology, repeat: int = 200_000) -> list[tuple[str, int]]:
    """Nanoseconds per packet of the programs themselves (BPF_PROG_TEST_RUN on a
    64-byte UDP frame, no device work): the bare redirect, and the ebpf datapath's hit
    with its flow behind 1 and 4 masks (each mask searched costs a hash lookup)."""
    from hitless.datapath.ebpf.provider import EbpfDatapath
    from hitless.packet.flow import extract_key, make_key

    pair = make_pair(topo, "p", 59)
    ia = int(sh(["cat", f"/sys/class/net/{pair.a.switch_port}/ifindex"]).stdout)
    ib = int(sh(["cat", f"/sys/class/net/{pair.b.switch_port}/ifindex"]).stdout)
    frame = _frame(pair.b.mac, pair.a.mac, pair.b.addr)
    out = []
    obj = libbpf.BpfObject(str(object_path(REDIRECT_SOURCE)))
    try:
        prog, table = obj.prog_fd("hitless_redirect"), libbpf.Map(obj.map_fd("hl_redirect"))
    finally:
        obj.close()
    table.update(ia.to_bytes(4, "little"), ib.to_bytes(4, "little"))
    out.append(
        ("tc redirect", min(libbpf.prog_test_run(prog, frame, ia, repeat)[1] for _ in range(3)))
    )
    os.close(prog)
    table.close()
    dp = EbpfDatapath(f"bp{unique_suffix()}")
    try:
        pa, pb = dp.port_add(pair.a.switch_port), dp.port_add(pair.b.switch_port)
        hit = Match.of(
            extract_key(frame, pa), full_mask("in_port", "eth_src", "eth_dst", "vlan_tci")
        )
        dp.flow_put(hit, (Output(pb),))
        for masks in (1, 4):
            while dp.stats()["masks"] < masks:  # masks searched before the hit's
                n = dp.stats()["masks"]
                dp.flow_del(hit)
                dp.flow_put(
                    Match.of(
                        make_key(in_port=99, ip_ttl=n),
                        full_mask("in_port", *["ip_ttl", "ip_tos", "tp_src"][:n]),
                    ),
                    (Output(pb),),
                )
                dp.flow_put(hit, (Output(pb),))
            ns = min(libbpf.prog_test_run(dp.prog_fd, frame, ia, repeat)[1] for _ in range(3))
            out.append((f"ebpf hit, {masks} mask{'s' if masks > 1 else ''}", ns))
    finally:
        dp.close()
    return out


def warm_up(pair: Pair) -> None:
    for _ in range(20):
        if pair.a.ping(pair.b.addr, count=1, timeout=1):
            return
    raise RuntimeError(f"{pair.a.name} cannot reach {pair.b.name} through the switch")


SWITCHES = ("redirect", "bridge", "ebpf", "netdev", "ovs")
LABELS = {
    "redirect": "tc redirect",
    "bridge": "linux bridge",
    "ebpf": "hitless ebpf",
    "netdev": "hitless netdev",
    "netdev-inprocess": "netdev (in-proc)",
    "ovs": "ovs netdev",
    "baseline": "baseline",
}


def switch_cm(  # type: ignore[no-untyped-def]
    name: str, pair: Pair, vswitchd: str | None, baseline: str | None, rules: tuple[str, ...] = ()
):
    if name == "redirect":
        return bare_redirect(pair)
    if name == "bridge":
        return linux_bridge(pair)
    if name == "ebpf":
        return hitless_daemon(pair, vswitchd=vswitchd, dp_type="ebpf", rules=rules)
    if name == "netdev":
        return hitless_daemon(pair, vswitchd=vswitchd, dp_type="netdev", rules=rules)
    if name == "netdev-inprocess":
        return hitless_inprocess(pair)
    if name == "ovs":
        return ovs_switch(pair, rules)
    if name == "baseline":
        return hitless_daemon(pair, vswitchd=baseline, rules=rules)
    raise SystemExit(f"unknown switch {name!r} (known: {', '.join(LABELS)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--flows", type=int, default=20000, help="frames (new flows) per burst")
    ap.add_argument("--generators", type=int, default=2, help="pps sender processes")
    ap.add_argument(
        "--switches",
        default=",".join(SWITCHES),
        help="comma-separated, the first is the reference of the ratios "
        f"(default {','.join(SWITCHES)}; also: netdev-inprocess)",
    )
    ap.add_argument(
        "--vswitchd",
        metavar="PATH",
        help="hitless-vswitchd to run (e.g. a wrapper that profiles it)",
    )
    ap.add_argument(
        "--baseline",
        metavar="PATH",
        help="also run this hitless-vswitchd (e.g. an older build) as another switch",
    )
    ap.add_argument(
        "--only",
        choices=("pps", "tcp", "rtt", "burst"),
        action="append",
        help="measure only these figures (repeatable; default: all)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="only measure the BPF programs' own cost per packet (BPF_PROG_TEST_RUN)",
    )
    ap.add_argument(
        "--ct",
        action="store_true",
        help="give the hitless and Open vSwitch bridges a stateful firewall (CT_RULES)",
    )
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/datapath.py needs root (network namespaces)")
    sh(["iperf3", "--version"])

    if args.profile:
        with Topology("hp") as topo:
            for label, ns in program_cost(topo):
                print(f"{label:24} {ns:5d} ns/packet")
        return
    only = set(args.only or ("pps", "tcp", "rtt", "burst"))
    metrics = ("pps", "sent_pps", "us_per_pkt", "per_gen_cpu", "prog_ns", "tcp", "rtt",
               "burst_l4", "burst_mac")  # fmt: skip
    names = [n.strip() for n in args.switches.split(",") if n.strip()]
    if args.baseline:
        names.append("baseline")
    results: dict[str, dict[str, list[float]]] = {n: {m: [] for m in metrics} for n in names}
    load_before = os.getloadavg()
    with Topology("hb") as topo, contextlib.ExitStack() as stack:
        pairs = {n: make_pair(topo, f"{i}", 60 + i) for i, n in enumerate(names)}
        pids = {
            n: stack.enter_context(
                switch_cm(n, pairs[n], args.vswitchd, args.baseline, CT_RULES if args.ct else ())
            )
            for n in names
        }
        for pair in pairs.values():
            warm_up(pair)
        for run in range(args.runs):
            for name, pair in pairs.items():
                if "pps" not in only:
                    break
                try:
                    r = measure_pps(pair, args.seconds, pids[name], args.generators)
                except RuntimeError as e:  # left out of the median, and said so
                    print(f"run {run + 1} {name:8} pps: no result ({e})", flush=True)
                    continue
                for metric in ("pps", "sent_pps", "us_per_pkt", "per_gen_cpu", "prog_ns"):
                    v = getattr(r, "sent" if metric == "sent_pps" else metric)
                    if not math.isnan(v):
                        results[name][metric].append(v)
                cpu = f"; switch CPU {r.us_per_pkt:.2f} us/packet" if pids[name] else ""
                prog = f"; tc program {r.prog_ns:.0f} ns/run" if not math.isnan(r.prog_ns) else ""
                print(
                    f"run {run + 1} {name:8} pps: {r.pps:,.0f} received of {r.sent:,.0f} sent, "
                    f"{r.per_gen_cpu:,.0f} per generator CPU-second (ksoftirqd "
                    f"{r.softirqd:.2f} s meanwhile){cpu}{prog}",
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
            for name, pair in pairs.items():
                if "rtt" not in only:
                    break
                try:
                    rtt = measure_rtt(pair)
                except RuntimeError as e:
                    print(f"run {run + 1} {name:8} rtt: no result ({e})", flush=True)
                    continue
                results[name]["rtt"].append(rtt)
                print(f"run {run + 1} {name:8} rtt: {rtt:.3f} ms", flush=True)
            for kind in ("l4", "mac"):
                for name, pair in pairs.items():
                    if "burst" not in only:
                        break
                    try:
                        warm_up(pair)
                    except RuntimeError as e:
                        alive = not pids[name] or os.path.exists(f"/proc/{pids[name]}")
                        why = "" if alive else f"; its process {pids[name]} has exited"
                        print(f"run {run + 1} {name:8} burst {kind}: no result ({e}{why})")
                        continue
                    got, secs = measure_burst(pair, args.flows, kind, run)
                    results[name][f"burst_{kind}"].append(got)
                    print(
                        f"run {run + 1} {name:8} burst {kind:3}: {got:,} of {args.flows:,}"
                        f" arrived (sent in {secs * 1000:.0f} ms)",
                        flush=True,
                    )
    load_after = os.getloadavg()

    med = {n: {m: statistics.median(v) for m, v in r.items() if v} for n, r in results.items()}
    ref = names[0]
    print()
    print(f"{'':24}" + "".join(f"{LABELS.get(n, n):>18}" for n in names))
    for metric, label, scale, fmt in (
        ("pps", "64-byte pkts/s received", 1.0, ",.0f"),
        ("sent_pps", "  (generators sent/s)", 1.0, ",.0f"),
        ("us_per_pkt", "  switch CPU us/packet", 1.0, ".2f"),
        ("per_gen_cpu", "  per generator CPU-s", 1.0, ",.0f"),
        ("prog_ns", "  tc program ns/run", 1.0, ".0f"),
        ("tcp", "TCP 1 stream, Gbit/s", 1e-9, ".2f"),
        ("rtt", "avg RTT, ms", 1.0, ".3f"),
        ("burst_l4", f"burst {args.flows} 5-tuples", 1.0, ",.0f"),
        ("burst_mac", f"burst {args.flows} src MACs", 1.0, ",.0f"),
    ):
        if not any(metric in med[n] for n in names):
            continue
        cells = []
        r = med[ref].get(metric, math.nan)
        for n in names:
            v = med[n].get(metric, math.nan)
            cell = f"{v * scale:{fmt}}" if not math.isnan(v) else "-"
            ratios = ("pps", "per_gen_cpu", "tcp", "rtt", "burst_l4", "burst_mac")
            if n != ref and metric in ratios and v and r:
                ratio = r / v if metric == "rtt" else v / r
                cell += f" ({ratio:.2f}x)"
            cells.append(f"{cell:>18}")
        print(f"{label:24}" + "".join(cells))
    print(
        f"(median of {args.runs} runs; pps and TCP runs of {args.seconds:g} s; (Nx) = ratio "
        f"to {LABELS.get(ref, ref)}, for RTT its RTT / this one's; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs "
        "shared with other users" + ("; hitless and OVS with a ct firewall)" if args.ct else ")")
    )
    if args.json:
        print(json.dumps({"runs": results, "median": med,
                          "load": [load_before, load_after]}))  # fmt: skip


if __name__ == "__main__":
    main()
