"""Big frames stay right on the netdev datapath: ICMP and TCP at MTU 9000 cross the
switch whole, also through a port whose MTU was raised after it joined the bridge; a
frame too big for an output port is counted (tx_dropped) and dropped, never delivered
truncated. Real namespace hosts over veth pairs, the real daemon."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from tests.netns import Host, Topology
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns

JUMBO = 9000
PAYLOAD = 2 << 20  # bytes of TCP data, echoed back as a digest

_SERVER = r"""
import hashlib, socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept(); h = hashlib.sha256(); n = 0
while n < int(sys.argv[2]):
    d = c.recv(1 << 16)
    if not d: break
    h.update(d); n += len(d)
c.sendall(h.hexdigest().encode()); c.close()
"""

_CLIENT = r"""
import os, socket, sys
data = bytes.fromhex(sys.argv[3]) * (int(sys.argv[4]) // 32)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
s.sendall(data); print(mss, s.recv(64).decode(), flush=True)
"""


def set_mtu(host: Host, mtu: int, inside: bool = True, outside: bool = True) -> None:
    if inside:
        host.run(["ip", "link", "set", "eth0", "mtu", str(mtu)])
    if outside:
        subprocess.run(["ip", "link", "set", host.switch_port, "mtu", str(mtu)], check=True)


def tcp_transfer(src: Host, dst: Host, port: int) -> tuple[int, bool]:
    """(the sender's MSS, whether the receiver's digest matched) for PAYLOAD bytes."""
    seed = hashlib.sha256(src.name.encode()).hexdigest()
    server = dst.popen([sys.executable, "-c", _SERVER, str(port), str(PAYLOAD)])
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    out = src.run([sys.executable, "-c", _CLIENT, dst.addr, str(port), seed, str(PAYLOAD)])
    mss, digest = out.stdout.split()
    want = hashlib.sha256(bytes.fromhex(seed) * (PAYLOAD // 32)).hexdigest()
    return int(mss), digest == want


def test_jumbo_frames_cross_whole_and_oversized_ones_are_counted_drops(
    started: Sw, topology: Topology
) -> None:
    sw = started
    a = topology.add_host("a", "10.97.0.1/24")
    b = topology.add_host("b", "10.97.0.2/24")
    c = topology.add_host("c", "10.97.0.3/24")  # stays at MTU 1500
    set_mtu(a, JUMBO)
    set_mtu(b, JUMBO, outside=False)  # b's switch side is raised after it joins
    br = topology.name("jb")
    sw.vsctl("add-br", br, "--", "add-port", br, a.switch_port,
             "--", "add-port", br, b.switch_port, "--", "add-port", br, c.switch_port)  # fmt: skip
    wait_for(lambda: sw.ofport(c.switch_port) > 0, "the ports")
    set_mtu(b, JUMBO, inside=False)
    wait_for(lambda: sw.get("Interface", b.switch_port, "mtu") == str(JUMBO), "b's new MTU")

    # ICMP: 9000-byte IP packets, don't-fragment, both ways.
    assert a.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do",
                  "-s", str(JUMBO - 28), b.addr], check=False).returncode == 0  # fmt: skip
    assert b.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", "-M", "do",
                  "-s", str(JUMBO - 28), a.addr], check=False).returncode == 0  # fmt: skip
    # TCP at MTU 9000: jumbo segments, every byte intact.
    # (TCP_MAXSEG is the MSS less the 12 bytes of the timestamp option.)
    mss, intact = tcp_transfer(a, b, 5001)
    assert mss == JUMBO - 40 - 12 and intact, (mss, intact)
    mss, intact = tcp_transfer(b, a, 5002)
    assert mss == JUMBO - 40 - 12 and intact, (mss, intact)

    # A flooded 9000-byte frame reaches b whole and is dropped, counted, at c.
    def tx_dropped() -> int:
        stats = sw.get("Interface", c.switch_port, "statistics")
        return int(stats.split("tx_dropped=")[1].split(",")[0].rstrip("}"))

    nobody = "10.97.0.99"
    for h in (a, b, c):
        h.set_neigh(nobody, "02:00:00:00:97:99")
    c_rx = c.counter("rx_packets"), c.counter("rx_bytes")
    b_rx = b.counter("rx_bytes")
    dropped = tx_dropped()
    n = 5
    a.run(["ping", "-n", "-q", "-c", str(n), "-i", "0.2", "-W", "1", "-M", "do",
           "-s", str(JUMBO - 28), nobody], check=False)  # fmt: skip
    wait_for(lambda: tx_dropped() >= dropped + n, f"{n} drops counted at c")
    assert b.counter("rx_bytes") - b_rx >= n * (JUMBO + 14)
    # Nothing of them, truncated or not, reached c (what did is small: the bridge's own
    # port may send a frame or two meanwhile).
    rx_packets, rx_bytes = c.counter("rx_packets") - c_rx[0], c.counter("rx_bytes") - c_rx[1]
    assert rx_packets < n and rx_bytes <= rx_packets * 1514, (rx_packets, rx_bytes)
    # Small frames still reach c.
    assert a.ping(c.addr, count=2)
