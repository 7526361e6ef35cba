"""Hosts in network namespaces, wired to the switch by veth pairs (tests, benchmarks).

Usage::

    with Topology() as topo:
        a = topo.add_host("a", "10.0.0.1/24")
        b = topo.add_host("b", "10.0.0.2/24", vlan=10)   # b sends 802.1Q-tagged frames
        dp.port_add(a.switch_port)                      # root-namespace veth end
        assert a.ping(b.addr)
        a.run(["ip", "neigh"])                          # any command inside a's namespace

Every namespace and interface name carries a random per-topology suffix, so parallel
or leftover runs never collide, and ``close()`` (called by ``with`` and by the pytest
fixture even when the test fails) kills what ``Host.popen`` started, deletes the
namespaces (which deletes the veth pairs) and any switch-side link left behind.

Inside a namespace the host's interface is ``eth0`` with the given address, up, and transmit checksum offload off (a
userspace switch forwards the bytes it reads; with offload on, TCP segments would
leave with unfinished checksums). The switch-side end is up, with IPv6 disabled so the
root namespace sends nothing on it.

VLAN hosts: this kernel has no 802.1Q interfaces (CONFIG_VLAN_8021Q is off, and tc has
no vlan action), so a VLAN host gets a small userspace shim instead: its address sits
on a TAP device ``vVID`` and a process in the namespace relays frames between that TAP
and ``eth0``, adding the tag on the way out and accepting only frames tagged VID on the
way in. On the wire ``eth0`` sends and receives real 802.1Q frames.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

Cmd = Sequence[str] | str


# Every suffix handed out in this process: a name that contains one is private to its
# test (``is_private``; tests/switch.py refuses a netdev or ebpf bridge, or an internal
# port on one, whose name is not: it would be a device in the root namespace that two
# test runs on the machine share).
ISSUED: set[str] = set()


def unique_suffix(n: int = 6) -> str:
    """A random lowercase hex string of n characters, for names that must not collide."""
    suffix = secrets.token_hex((n + 1) // 2)[:n]
    ISSUED.add(suffix)
    return suffix


def is_private(name: str) -> bool:
    """Whether ``name`` carries a suffix this process handed out (``unique_suffix``,
    ``unique_name``, ``Topology.name``)."""
    return any(s in name for s in ISSUED)


def sh(cmd: Cmd, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command in the root namespace, capturing text output; raise with the
    command's stderr if it fails and check is set."""
    args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    res = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(
            f"command failed ({res.returncode}): {shlex.join(args)}\n{res.stderr.strip()}"
        )
    return res


@dataclass
class Host:
    """One host: a namespace with one interface towards the switch."""

    name: str
    ns: str  # namespace name
    switch_port: str  # the veth end in the root namespace, to attach to the switch
    ip: str  # with prefix length, e.g. "10.0.0.1/24"
    mac: str  # the host interface's MAC, "aa:bb:..."
    vlan: int | None = None
    dev: str = "eth0"  # the interface carrying the address inside the namespace
    _procs: list[subprocess.Popen[str]] = field(default_factory=list, repr=False)
    shim: subprocess.Popen[str] | None = field(default=None, repr=False)  # the VLAN relay

    @property
    def addr(self) -> str:
        """The address without prefix length."""
        return str(ipaddress.ip_interface(self.ip).ip)

    @property
    def mac_bytes(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))

    def _wrap(self, cmd: Cmd) -> list[str]:
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        return ["ip", "netns", "exec", self.ns, *args]

    def run(
        self, cmd: Cmd, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        return sh(self._wrap(cmd), check=check, timeout=timeout)

    def popen(self, cmd: Cmd, **kwargs: object) -> subprocess.Popen[str]:
        """Start a command inside the namespace; it is killed (by PID) at teardown."""
        kw: dict[str, object] = {
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "text": True,
            "start_new_session": True,
        }
        kw.update(kwargs)
        proc: subprocess.Popen[str] = subprocess.Popen(self._wrap(cmd), **kw)  # type: ignore[call-overload]
        self._procs.append(proc)
        return proc

    def ping(self, ip: str, count: int = 1, timeout: float = 2, interval: float = 0.2) -> bool:
        """True if all ``count`` echo requests to ``ip`` were answered."""
        res = self.run(
            ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(timeout), ip],
            check=False,
            timeout=count * (interval + timeout) + 10,
        )
        return res.returncode == 0

    def counter(self, name: str, dev: str = "eth0") -> int:
        """An interface statistic of the host, e.g. counter("tx_packets")."""
        return int(self.run(["cat", f"/sys/class/net/{dev}/statistics/{name}"]).stdout)

    def harness_drops(self) -> dict[str, int]:
        """Frames this host's own plumbing dropped (not the switch): its interfaces'
        dropped counters and, for a VLAN host, its relay's packet socket and the TAP
        queue. A loss the switch did not cause shows here."""
        out = {
            f"{dev} {d}": self.counter(f"{d}_dropped", dev)
            for dev in dict.fromkeys(("eth0", self.dev))
            for d in ("rx", "tx")
        }
        if self.shim is not None and self.shim.poll() is None and self.shim.stdout:
            os.kill(self.shim.pid, signal.SIGUSR1)
            out.update(json.loads(self.shim.stdout.readline()))
        return out

    def set_neigh(self, ip: str, mac: str) -> None:
        """A permanent ARP/ND entry, so traffic needs no resolution."""
        self.run(["ip", "neigh", "replace", ip, "lladdr", mac, "dev", self.dev, "nud", "permanent"])

    def kill_procs(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                proc.communicate(timeout=5)
        self._procs.clear()


class Topology:
    """A set of hosts; a context manager that tears everything down on exit."""

    def __init__(self, prefix: str = "hl") -> None:
        self.suffix = unique_suffix()
        self.prefix = prefix
        self.hosts: dict[str, Host] = {}
        self._links: list[str] = []  # root-namespace links we created
        self._namespaces: list[str] = []

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def name(self, base: str) -> str:
        """A unique interface-safe name (<= 15 characters) derived from base."""
        return f"{base[:8]}{self.suffix}"[:15]

    def own_link(self, name: str) -> None:
        """Delete root-namespace link ``name`` (and so its veth peer) at teardown: a
        device the switch made for a test (an ebpf bridge's internal port outlives the
        daemon by design, as a kernel datapath does)."""
        self._links.append(name)

    def add_host(
        self,
        name: str,
        ip: str,
        vlan: int | None = None,
        mac: str | None = None,
        ipv6: bool = False,
    ) -> Host:
        """Create namespace + veth pair; ``ip`` has a prefix length ("10.0.0.1/24").
        With ``vlan`` the address sits on a VLAN interface, so the host's frames
        reach the switch tagged. IPv6 is off unless asked for (fewer stray frames)."""
        if name in self.hosts:
            raise ValueError(f"host {name!r} already exists in this topology")
        ns = f"{self.prefix}-{name}-{self.suffix}"
        swp = self.name(f"{self.prefix[:2]}{name}")
        sh(["ip", "netns", "add", ns])
        self._namespaces.append(ns)
        sh(["ip", "link", "add", swp, "type", "veth", "peer", "name", "eth0", "netns", ns])
        self._links.append(swp)
        host = Host(name, ns, swp, ip, mac="", vlan=vlan)
        self.hosts[name] = host
        sh(["sysctl", "-q", "-w", f"net.ipv6.conf.{swp}.disable_ipv6=1"])
        sh(["ip", "link", "set", swp, "up"])
        if not ipv6:
            host.run(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])
            host.run(["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"])
        if mac is not None:
            host.run(["ip", "link", "set", "eth0", "address", mac])
        host.run(["ip", "link", "set", "lo", "up"])
        host.run(["ip", "link", "set", "eth0", "up"])
        host.run(["ethtool", "-K", "eth0", "tx", "off"])
        if vlan is not None:
            host.dev = f"v{vlan}"
            shim = host.popen([sys.executable, "-c", _VLAN_SHIM, str(vlan), host.dev, "eth0"])
            assert shim.stdout is not None
            if shim.stdout.readline().strip() != "ready":
                raise RuntimeError(f"VLAN shim of host {name} did not start")
            host.shim = shim
            # The TAP queues what the host sends until the relay reads it (default 500).
            host.run(["ip", "link", "set", host.dev, "txqueuelen", "10000", "up"])
        host.run(["ip", "addr", "add", ip, "dev", host.dev])
        host.mac = host.run(["cat", f"/sys/class/net/{host.dev}/address"]).stdout.strip()
        return host

    def close(self) -> None:
        """Kill started processes, delete namespaces and leftover links. Idempotent,
        and keeps going past individual failures."""
        for host in self.hosts.values():
            host.kill_procs()
        for ns in self._namespaces:
            sh(["ip", "netns", "del", ns], check=False)
        for link in self._links:
            if os.path.exists(f"/sys/class/net/{link}"):
                sh(["ip", "link", "del", link], check=False)
        self._namespaces.clear()
        self._links.clear()
        self.hosts.clear()


# ---------------------------------------------------------------------------------
# Numbered UDP traffic, for counting losses and duplicates exactly.

_SINK = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(float(sys.argv[4]))  # for the first datagram
print("ready", flush=True)
seqs = []
try:
    while True:
        seqs.append(int.from_bytes(s.recv(2048)[:8], "big"))
        s.settimeout(float(sys.argv[3]))  # then: idle
except socket.timeout:
    pass
print(json.dumps(seqs), flush=True)
"""

_SOURCE = r"""
import socket, sys, time
dst, port, count, batch, pause, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
pad = bytes(max(0, size - 8))
for i in range(count):
    s.sendto(i.to_bytes(8, "big") + pad, (dst, port))
    if (i + 1) % batch == 0:
        time.sleep(pause)  # pacing: a batch every pause seconds
"""


_VLAN_SHIM = r"""
import fcntl, json, os, select, signal, socket, struct, sys
vid, tap, dev = int(sys.argv[1]), sys.argv[2], sys.argv[3]
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH22x", tap.encode(), 0x1002))  # TAP, NO_PI
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.setsockopt(263, 23, 1)  # PACKET_IGNORE_OUTGOING
s.setsockopt(263, 8, 1)  # PACKET_AUXDATA: the tag the kernel took off
# Room for a burst the switch delivers after a freeze while this relay waits for a CPU
# (the default 208 kB holds ~200 frames: less than a loaded freeze's worth at 1,000/s).
s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE
s.setsockopt(socket.SOL_SOCKET, 32, 32 << 20)  # SO_SNDBUFFORCE
s.bind((dev, 0))
tag = struct.pack("!HH", 0x8100, vid)
drops = [0, 0]  # frames the relay's packet socket dropped (PACKET_STATISTICS), send errors
def report(*_):
    drops[0] += struct.unpack("II", s.getsockopt(263, 6, 8))[1]  # reading resets it
    print(json.dumps({"socket_drops": drops[0], "send_errors": drops[1]}), flush=True)
signal.signal(signal.SIGUSR1, report)
print("ready", flush=True)
while True:
    ready, _, _ = select.select([fd, s], [], [])
    if fd in ready:
        f = os.read(fd, 65536)
        try:
            s.send(f[:12] + tag + f[12:])
        except OSError:
            drops[1] += 1
    if s in ready:
        data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(20))
        tci = None
        for level, kind, aux in anc:
            if level == 263 and kind == 8 and struct.unpack_from("I", aux)[0] & 0x10:
                tci = struct.unpack_from("H", aux, 16)[0]
        if tci is None and data[12:14] == b"\x81\x00":
            tci, data = int.from_bytes(data[14:16], "big"), data[:12] + data[16:]
        if tci is not None and tci & 0xFFF == vid:
            os.write(fd, data)
"""


class UdpSink:
    """A UDP receiver in a host that records the sequence number of every datagram;
    it stops after ``idle`` seconds without one, or ``first`` seconds without any (so
    a sink started before a stall does not give up before the stall ends)."""

    def __init__(self, host: Host, port: int, idle: float, first: float = 60.0) -> None:
        cmd = [sys.executable, "-c", _SINK, host.addr, str(port), str(idle), str(max(idle, first))]
        self.proc = host.popen(cmd)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"UDP sink in {host.name} did not start: {self.proc.stderr}")

    def seqs(self, timeout: float = 60) -> list[int]:
        """Wait for the sink to go idle and return the sequence numbers received."""
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"UDP sink failed: {err.strip()}")
        return [int(x) for x in json.loads(out.strip().splitlines()[-1])]


def udp_send(
    host: Host,
    dst: str,
    port: int,
    count: int,
    batch: int = 50,
    pause: float = 0.001,
    size: int = 64,
) -> None:
    """Send ``count`` datagrams numbered 0..count-1 (``size`` bytes of payload), pausing
    ``pause`` seconds after every ``batch`` so no kernel queue overflows on the way."""
    host.run(
        [
            sys.executable,
            "-c",
            _SOURCE,
            dst,
            str(port),
            str(count),
            str(batch),
            str(pause),
            str(size),
        ],
        timeout=120,
    )


def unique_name(base: str) -> str:
    """A name for a bridge, device or namespace that no other test (or helper running
    tests on the same machine) uses: ``base`` cut to 9 characters plus a random
    6-character suffix (15 characters at most, the Linux interface name limit)."""
    return f"{base[:9]}{unique_suffix()}"
