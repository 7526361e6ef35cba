"""OpenFlow actions and group types end to end, with real packets: stock ``ovs-ofctl -O
OpenFlow13`` programs a bridge of the real daemon, and namespace hosts send UDP
datagrams (and TCP connections) through it. Each receiver reads with an ordinary socket,
so a datagram only counts if the kernel accepted its IP and UDP/TCP checksums, and
captures the same frames on its interface (AF_PACKET) so the test also sees the
Ethernet header and checks the checksums itself.

Covered: set_field of Ethernet, IPv4 and IPv6 addresses and TCP/UDP ports (a stateless
NAT carrying real TCP connections, IPv4 and IPv6), dec_ttl (TTL and hop limit seen by
the receiver, TTL 1 dropped), output to IN_PORT, FLOOD, ALL and LOCAL, write_actions +
write_metadata + goto_table pipelines, a table-miss rule sending packet-ins to a
controller, and groups of type all, indirect and fast_failover (a watched port's link
goes down: traffic fails over, and comes back when the link does)."""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass

import pytest

from tests.daemon import test_openflow
from tests.daemon.test_openflow import make_bridge, n_packets, ofctl, static_neighbours
from tests.netns import Host, Topology
from tests.osken_fixture import OsKenPeer
from tests.switch import Sw, run
from tests.wait import eventually, wait_for

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True, params=["netdev", "ebpf"])
def datapath_type(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both datapaths: the same OpenFlow actions, the same packets."""
    monkeypatch.setattr(test_openflow, "DATAPATH_TYPE", request.param)
    return str(request.param)


VMAC = "02:00:00:00:99:64"  # the MAC address hosts use for the virtual addresses
PROBE = 7599  # fast failover probes go to another UDP port than the measured datagrams

# ---------------------------------------------------------------------------------
# Helpers: a receiver (UDP socket + capture) and a sender, each a small script run in
# a host's namespace.

_RECV = r"""
import json, select, socket, struct, sys, time
v6 = sys.argv[1] == "6"
port, want, limit = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
u = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    u.bind(("::", port))
else:
    u.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
    u.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
    u.bind(("0.0.0.0", port))
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
cap.bind(("eth0", 0))
print("ready", flush=True)

def is_ours(f):
    et = f[12:14]
    if et == b"\x08\x00" and f[23] == 17:
        l4 = 14 + (f[14] & 15) * 4
    elif et == b"\x86\xdd" and f[20] == 17:
        l4 = 54
    else:
        return False
    return len(f) >= l4 + 8 and int.from_bytes(f[l4 + 2 : l4 + 4], "big") == port

dgrams, frames = [], []
deadline = time.monotonic() + limit
while len(dgrams) < want and time.monotonic() < deadline:
    r, _, _ = select.select([u, cap], [], [], max(0.0, deadline - time.monotonic()))
    if cap in r:
        f, addr = cap.recvfrom(65536)
        if addr[2] != socket.PACKET_OUTGOING and is_ours(f):
            frames.append(f.hex())
    if u in r:
        data, anc, _, src = u.recvmsg(2048, 256)
        ttl, dst = None, None
        for level, kind, val in anc:
            if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
                ttl = struct.unpack("i", val[:4])[0]
            elif (level, kind) == (socket.IPPROTO_IP, 8):  # IP_PKTINFO
                dst = socket.inet_ntop(socket.AF_INET, val[8:12])
            elif (level, kind) == (socket.IPPROTO_IPV6, socket.IPV6_PKTINFO):
                dst = socket.inet_ntop(socket.AF_INET6, val[:16])
        dgrams.append([data.hex(), src[0], src[1], dst, ttl])
cap.setblocking(False)
while True:  # the capture saw each frame before the socket got its datagram
    try:
        f, addr = cap.recvfrom(65536)
    except BlockingIOError:
        break
    if addr[2] != socket.PACKET_OUTGOING and is_ours(f):
        frames.append(f.hex())
print(json.dumps({"dgrams": dgrams, "frames": frames}), flush=True)
"""

_SEND = r"""
import socket, sys
v6 = sys.argv[1] == "6"
dst, dport, sport, count, ttl, tag = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
if ttl:
    if v6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
s.bind(("::" if v6 else "0.0.0.0", sport))
for i in range(count):
    s.sendto(f"{tag}-{i}".encode(), (dst, dport))
"""


@dataclass(frozen=True)
class Datagram:
    payload: bytes
    src: str
    sport: int
    dst: str  # the destination address the receiving kernel saw (IP_PKTINFO)
    ttl: int  # TTL or hop limit


@dataclass(frozen=True)
class Received:
    dgrams: list[Datagram]
    frames: list[bytes]  # the frames that carried them, as captured on the interface


class Receiver:
    """A UDP socket on ``port`` in ``host`` (any address) and a capture on its eth0; it
    stops once ``want`` datagrams arrived, or after ``limit`` seconds."""

    def __init__(self, host: Host, port: int, want: int, v6: bool = False, limit: float = 20):
        args = ["6" if v6 else "4", str(port), str(want), str(limit)]
        self.proc = host.popen([sys.executable, "-c", _RECV, *args])
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"receiver in {host.name} failed: {self.proc.communicate()[1]}")

    def result(self) -> Received:
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        data = json.loads(out.strip().splitlines()[-1])
        return Received(
            [Datagram(bytes.fromhex(p), s, sp, d, t) for p, s, sp, d, t in data["dgrams"]],
            [bytes.fromhex(f) for f in data["frames"]],
        )


def send(
    host: Host,
    dst: str,
    dport: int,
    count: int = 3,
    sport: int = 0,
    ttl: int = 0,
    tag: str = "m",
    v6: bool = False,
) -> list[bytes]:
    """Send ``count`` datagrams ``tag-0``, ``tag-1``...; returns their payloads."""
    args = ["6" if v6 else "4", dst, str(dport), str(sport), str(count), str(ttl), tag]
    host.run([sys.executable, "-c", _SEND, *args])
    return [f"{tag}-{i}".encode() for i in range(count)]


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


@dataclass(frozen=True)
class Frame:
    """The fields of a captured Ethernet/IP/UDP frame, checksums verified."""

    eth_dst: str
    eth_src: str
    src: str
    dst: str
    ttl: int
    sport: int
    dport: int
    payload: bytes


def parse(frame: bytes) -> Frame:
    """Decode an untagged IPv4 or IPv6 UDP frame; assert its checksums are right."""
    mac = lambda b: ":".join(f"{x:02x}" for x in b)  # noqa: E731
    et = frame[12:14]
    if et == b"\x08\x00":
        ihl = (frame[14] & 15) * 4
        ip = frame[14 : 14 + ihl]
        assert _csum(ip) == 0xFFFF, f"bad IPv4 header checksum: {frame.hex()}"
        src, dst, ttl = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), ip[8]
        udp = frame[14 + ihl : 14 + int.from_bytes(ip[2:4], "big")]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
    else:
        assert et == b"\x86\xdd", frame.hex()
        ip = frame[14:54]
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
        ttl = ip[7]
        udp = frame[54 : 54 + int.from_bytes(ip[4:6], "big")]
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(udp), 17)
    assert _csum(pseudo + udp) == 0xFFFF, f"bad UDP checksum: {frame.hex()}"
    sport, dport = struct.unpack("!HH", udp[:4])
    return Frame(mac(frame[0:6]), mac(frame[6:12]), src, dst, ttl, sport, dport, udp[8:])


def add_v6(host: Host, addr: str) -> None:
    """An IPv6 address usable at once (no duplicate address detection)."""
    host.run(["ip", "-6", "addr", "add", f"{addr}/64", "dev", "eth0", "nodad"])


def group_stats(sw: Sw, br: str, gid: int) -> tuple[int, list[int]]:
    """(packet_count, [bucket packet counts]) of group ``gid``."""
    out = ofctl(sw, br, "dump-group-stats", f"group_id={gid}")
    m = re.search(r"packet_count=(\d+)", out)
    assert m is not None, out
    return int(m.group(1)), [int(x) for x in re.findall(r"bucket\d+:packet_count=(\d+)", out)]


_TCP_SERVER = r"""
import socket, sys
v6 = sys.argv[1] == "6"
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::" if v6 else "0.0.0.0", int(sys.argv[2])))
s.listen(1)
s.settimeout(20)
print("ready", flush=True)
c, peer = s.accept()
c.settimeout(20)
data = b""
while not data.endswith(b"\n"):
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
c.sendall(data.upper())
c.close()
print(peer[0], flush=True)
"""

_TCP_CLIENT = r"""
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
c.sendall(b"x" * 3000 + b"hello through the nat\n")
data = b""
while True:
    chunk = c.recv(4096)
    if not chunk:
        break
    data += chunk
print(data[-22:].decode().strip(), len(data), flush=True)
"""


def nat_rules(sw: Sw, br: str, na: int, b: Host, nb: int, vip: str, b_ip: str, v6: bool) -> None:
    """A -> VIP:8000 becomes A -> B:9000 on the way to B, and B:9000 -> A becomes
    VIP:8000 -> A on the way back: a stateless NAT of MAC and IP addresses and TCP
    ports in both directions."""
    proto, dst, src = ("tcp6", "ipv6_dst", "ipv6_src") if v6 else ("tcp", "ip_dst", "ip_src")
    ofctl(
        sw, br, "add-flow",
        f"{proto},in_port={na},{dst}={vip},tp_dst=8000,actions="
        f"set_field:{b.mac}->eth_dst,set_field:{b_ip}->{dst},set_field:9000->tcp_dst,output:{nb}",
    )  # fmt: skip
    ofctl(
        sw, br, "add-flow",
        f"{proto},in_port={nb},{src}={b_ip},tp_src=9000,actions="
        f"set_field:{VMAC}->eth_src,set_field:{vip}->{src},set_field:8000->tcp_src,output:{na}",
    )  # fmt: skip


def tcp_through_nat(a: Host, b: Host, vip: str, a_ip: str, v6: bool) -> None:
    """A connects to VIP:8000, sends 3 kB and a line, B (listening on 9000) answers
    with it in capitals and closes; B saw the connection come from A's address."""
    fam = "6" if v6 else "4"
    server = b.popen([sys.executable, "-c", _TCP_SERVER, fam, "9000"])
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    out = a.run([sys.executable, "-c", _TCP_CLIENT, vip, "8000"], timeout=30).stdout
    assert out.split() == ["HELLO", "THROUGH", "THE", "NAT", "3022"], out
    srv_out, err = server.communicate(timeout=20)
    assert srv_out.split() == [a_ip], (srv_out, err)


def capture_local(br: str) -> socket.socket:
    """A capture of the frames the switch sends to its LOCAL port (the bridge's own
    internal device, in the root namespace)."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((br, 0))
    s.settimeout(5)
    return s


def local_frames(s: socket.socket, port: int, want: int) -> list[Frame]:
    out: list[Frame] = []
    deadline = time.monotonic() + 10
    while len(out) < want and time.monotonic() < deadline:
        try:
            f, addr = s.recvfrom(65536)
        except TimeoutError:
            break
        if addr[2] == socket.PACKET_OUTGOING or f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        fr = parse(f)
        if fr.dport == port:
            out.append(fr)
    return out


def ports_desc_state(sw: Sw, br: str, port: int) -> str:
    out = ofctl(sw, br, "dump-ports-desc")
    m = re.search(rf"^ {port}\(.*?\n(?:\s+config:.*\n)?\s+state:\s+(\S+)", out, re.M)
    assert m is not None, out
    return m.group(1)


def probe_until(a: Host, vip: str, port: int, h: Host, tag: str) -> int:
    """Send single datagrams until one reaches ``h`` (the switch has noticed a link
    change); returns how many were sent. Nothing but these datagrams reaches ``h``.
    The switch handles A's packets in order, so once one probe has reached ``h`` every
    earlier one has been forwarded (counted), wherever it went."""
    for i in range(1, 40):
        rx = h.counter("rx_packets")
        send(a, vip, port, count=1, tag=f"{tag}{i}")
        if eventually(lambda: h.counter("rx_packets") > rx, timeout=0.5):  # noqa: B023
            return i
    raise AssertionError(f"traffic never reached {h.name}")


# ---------------------------------------------------------------------------------


def test_set_field_ipv4_udp_rewrites_reach_the_receiver(started: Sw, topology: Topology) -> None:
    """A datagram to a virtual address leaves the switch with both MAC addresses, both
    IPv4 addresses and both UDP ports rewritten; B's socket accepts it."""
    sw = started
    a = topology.add_host("a", "10.91.0.1/24")
    b = topology.add_host("b", "10.91.0.2/24")
    br = make_bridge(sw, topology, a, b)
    na, nb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    vip, new_src, new_smac = "10.91.0.100", "10.91.0.50", "02:00:00:91:00:32"
    a.set_neigh(vip, VMAC)
    ofctl(sw, br, "del-flows")
    ofctl(
        sw, br, "add-flow",
        f"udp,in_port={na},nw_dst={vip},tp_dst=7000,actions="
        f"set_field:{b.mac}->eth_dst,set_field:{new_smac}->eth_src,"
        f"set_field:{b.addr}->ip_dst,set_field:{new_src}->ip_src,"
        f"set_field:7001->udp_dst,set_field:6001->udp_src,output:{nb}",
    )  # fmt: skip
    rx = Receiver(b, 7001, want=4)
    sent = send(a, vip, 7000, count=4, sport=6000)
    got = rx.result()
    assert [d.payload for d in got.dgrams] == sent
    assert {(d.src, d.sport, d.dst) for d in got.dgrams} == {(new_src, 6001, b.addr)}
    frames = [parse(f) for f in got.frames]
    assert [f.payload for f in frames] == sent
    assert {(f.eth_src, f.eth_dst, f.src, f.dst, f.sport, f.dport) for f in frames} == {
        (new_smac, b.mac, new_src, b.addr, 6001, 7001)
    }
    assert n_packets(sw, br, "udp") == 4


def test_stateless_nat_rewrites_carry_tcp_over_ipv4_and_ipv6(
    started: Sw, topology: Topology
) -> None:
    """Real TCP connections (handshake, 3 kB of data, close) to a virtual address and
    port, rewritten to B's address and port and back: the kernels at both ends accept
    every segment, so the IPv4/IPv6 and TCP checksums stay right."""
    sw = started
    a = topology.add_host("a", "10.92.0.1/24", ipv6=True)
    b = topology.add_host("b", "10.92.0.2/24", ipv6=True)
    a6, b6, vip6 = "fd92::1", "fd92::2", "fd92::64"
    add_v6(a, a6)
    add_v6(b, b6)
    br = make_bridge(sw, topology, a, b)
    na, nb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    vip = "10.92.0.100"
    a.set_neigh(vip, VMAC)
    a.set_neigh(vip6, VMAC)
    b.set_neigh(a.addr, a.mac)
    b.set_neigh(a6, a.mac)
    ofctl(sw, br, "del-flows")
    nat_rules(sw, br, na, b, nb, vip, b.addr, v6=False)
    nat_rules(sw, br, na, b, nb, vip6, b6, v6=True)
    tcp_through_nat(a, b, vip, a.addr, v6=False)
    tcp_through_nat(a, b, vip6, a6, v6=True)
    flows = ofctl(sw, br, "dump-flows")
    counts = [int(x) for x in re.findall(r"n_packets=(\d+)", flows)]
    assert len(counts) == 4 and min(counts) >= 4, flows  # SYN, ACK, data, FIN at least


def test_ipv6_rewrites_and_dec_ttl_reach_the_receiver(started: Sw, topology: Topology) -> None:
    """IPv6: addresses and UDP ports rewritten, the hop limit decremented (seen by the
    receiving socket); IPv4: TTL decremented twice, and a TTL that would reach zero
    drops the packet."""
    sw = started
    a = topology.add_host("a", "10.93.0.1/24", ipv6=True)
    b = topology.add_host("b", "10.93.0.2/24", ipv6=True)
    a6, b6, vip6, src6 = "fd93::1", "fd93::2", "fd93::64", "fd93::32"
    add_v6(a, a6)
    add_v6(b, b6)
    br = make_bridge(sw, topology, a, b)
    na, nb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    a.set_neigh(vip6, VMAC)
    static_neighbours(a, b)
    ofctl(sw, br, "del-flows")
    ofctl(
        sw, br, "add-flow",
        f"cookie=0x61,udp6,in_port={na},ipv6_dst={vip6},tp_dst=7000,actions="
        f"set_field:{b.mac}->eth_dst,set_field:{b6}->ipv6_dst,set_field:{src6}->ipv6_src,"
        f"set_field:7001->udp_dst,set_field:6001->udp_src,dec_ttl,output:{nb}",
    )  # fmt: skip
    ofctl(sw, br, "add-flow", f"cookie=0x41,udp,in_port={na},tp_dst=7100,actions=dec_ttl,dec_ttl,output:{nb}")  # fmt: skip

    rx = Receiver(b, 7001, want=3, v6=True)
    sent = send(a, vip6, 7000, count=3, sport=6000, ttl=10, v6=True)
    got = rx.result()
    assert [d.payload for d in got.dgrams] == sent
    assert {(d.src, d.sport, d.dst, d.ttl) for d in got.dgrams} == {(src6, 6001, b6, 9)}
    frames = [parse(f) for f in got.frames]
    assert {(f.eth_dst, f.src, f.dst, f.sport, f.dport, f.ttl) for f in frames} == {
        (b.mac, src6, b6, 6001, 7001, 9)
    }
    assert n_packets(sw, br, "cookie=0x61") == 3
    # Hop limit 1: dec_ttl drops it (the next datagram, hop limit 2, arrives with 1).
    rx = Receiver(b, 7001, want=1, v6=True)
    send(a, vip6, 7000, count=2, ttl=1, tag="dies", v6=True)
    sent = send(a, vip6, 7000, count=1, ttl=2, tag="lives", v6=True)
    assert [(d.payload, d.ttl) for d in rx.result().dgrams] == [(sent[0], 1)]
    assert n_packets(sw, br, "cookie=0x61") == 6

    rx = Receiver(b, 7100, want=2)
    send(a, b.addr, 7100, count=2, ttl=2, tag="dies")  # 2 -> 1 -> 0: dropped
    sent = send(a, b.addr, 7100, count=2, ttl=9, tag="lives")
    got = rx.result()
    assert [(d.payload, d.ttl) for d in got.dgrams] == [(p, 7) for p in sent]
    assert [parse(f).ttl for f in got.frames] == [7, 7]
    assert n_packets(sw, br, "cookie=0x41") == 4  # the dropped ones matched too


def test_output_to_in_port_flood_all_and_local(started: Sw, topology: Topology) -> None:
    sw = started
    a = topology.add_host("a", "10.94.0.1/24")
    b = topology.add_host("b", "10.94.0.2/24")
    c = topology.add_host("c", "10.94.0.3/24")
    br = make_bridge(sw, topology, a, b, c)
    na = sw.ofport(a.switch_port)
    static_neighbours(a, b, c)
    vip = "10.94.0.100"
    a.set_neigh(vip, VMAC)
    bcast = "10.94.0.255"
    ofctl(sw, br, "del-flows")
    ofctl(sw, br, "add-flow", f"cookie=0x1,udp,in_port={na},tp_dst=7200,actions=FLOOD")
    ofctl(sw, br, "add-flow", f"cookie=0x2,udp,in_port={na},tp_dst=7201,actions=ALL")
    ofctl(sw, br, "add-flow", f"cookie=0x3,udp,in_port={na},tp_dst=7202,actions=LOCAL")
    ofctl(
        sw, br, "add-flow",
        f"cookie=0x4,udp,in_port={na},tp_dst=7203,actions=set_field:{a.mac}->eth_dst,"
        f"set_field:{a.addr}->ip_dst,set_field:{vip}->ip_src,IN_PORT",
    )  # fmt: skip
    local = capture_local(br)
    with local:
        for port, cookie in ((7200, "0x1"), (7201, "0x2")):
            a_rx = a.counter("rx_packets")
            rxs = [Receiver(h, port, want=2) for h in (b, c)]
            sent = send(a, bcast, port, count=2, tag=f"p{port}")
            for rx in rxs:
                got = rx.result()
                assert [d.payload for d in got.dgrams] == sent, port
                assert {(d.src, d.dst) for d in got.dgrams} == {(a.addr, bcast)}
            assert [f.payload for f in local_frames(local, port, 2)] == sent, port
            assert n_packets(sw, br, f"cookie={cookie},") == 2
            assert a.counter("rx_packets") == a_rx  # never back out of the input port

        b_rx, c_rx = b.counter("rx_packets"), c.counter("rx_packets")
        sent = send(a, b.addr, 7202, count=3, tag="local")
        assert [f.payload for f in local_frames(local, 7202, 3)] == sent
        assert n_packets(sw, br, "cookie=0x3,") == 3
        assert (b.counter("rx_packets"), c.counter("rx_packets")) == (b_rx, c_rx)

    # IN_PORT: the datagram comes back to its sender, readdressed to it.
    rx = Receiver(a, 7203, want=3)
    sent = send(a, vip, 7203, count=3, sport=6000, tag="mirror")
    got = rx.result()
    assert [d.payload for d in got.dgrams] == sent
    assert {(d.src, d.sport, d.dst) for d in got.dgrams} == {(vip, 6000, a.addr)}
    assert n_packets(sw, br, "cookie=0x4,") == 3


def test_write_actions_metadata_and_goto_table_pipeline(started: Sw, topology: Topology) -> None:
    """The action set runs at the end of the pipeline (a later table still matches the
    original port; a later write_actions output replaces an earlier one; a group in the
    set wins over its output; clear_actions empties it), metadata written in one table
    is matched in the next, apply_actions take effect at once."""
    sw = started
    a = topology.add_host("a", "10.95.0.1/24")
    b = topology.add_host("b", "10.95.0.2/24")
    c = topology.add_host("c", "10.95.0.3/24")
    br = make_bridge(sw, topology, a, b, c)
    na, nb, nc = (sw.ofport(h.switch_port) for h in (a, b, c))
    bcast = "10.95.0.255"
    ofctl(sw, br, "del-flows")
    flows = [
        # 7400: metadata 5, action set (udp_dst 7401, output b), then table 1.
        f"cookie=0x10,table=0,udp,in_port={na},tp_dst=7400,actions="
        f"write_actions(set_field:7401->udp_dst,output:{nb}),write_metadata:0x5/0xff,goto_table:1",
        # 7500: metadata 6, action set (output c), then table 1.
        f"cookie=0x20,table=0,udp,in_port={na},tp_dst=7500,actions="
        f"write_actions(output:{nc}),write_metadata:0x6/0xff,goto_table:1",
        # Table 1 sees the original port 7400 (the set_field is still in the set).
        "cookie=0x11,table=1,udp,metadata=0x5/0xff,tp_dst=7400,actions=goto_table:2",
        # 7500 is rewritten here, at once, so table 2 matches 7501.
        "cookie=0x21,table=1,udp,metadata=0x6/0xff,actions=set_field:7501->udp_dst,goto_table:2",
        f"cookie=0x12,table=2,udp,tp_dst=7400,actions=write_actions(output:{nc})",
        f"cookie=0x22,table=2,udp,metadata=0x6/0xff,tp_dst=7501,actions=write_actions(output:{nb})",
        # 7600: the set holds a group and an output: only the group runs.
        f"cookie=0x30,table=0,udp,in_port={na},tp_dst=7600,actions=write_actions(group:9,output:{nb})",
        # 7700: an output written, then cleared in table 1: dropped.
        f"cookie=0x40,table=0,udp,in_port={na},tp_dst=7700,actions=write_actions(output:{nb}),goto_table:1",
        "cookie=0x41,table=1,udp,tp_dst=7700,actions=clear_actions",
    ]
    ofctl(sw, br, "add-group", f"group_id=9,type=indirect,bucket=output:{nc}")
    for f in flows:
        ofctl(sw, br, "add-flow", f)
    rx0 = (b.counter("rx_packets"), c.counter("rx_packets"))
    c_rx = Receiver(c, 7401, want=3)
    c_rx2 = Receiver(c, 7600, want=2)
    b_rx = Receiver(b, 7501, want=2)
    send(a, bcast, 7700, count=2, tag="cleared")  # first: A's packets are handled in order
    sent_g = send(a, bcast, 7600, count=2, tag="group")
    sent_c = send(a, bcast, 7400, count=3, tag="to-c")
    sent_b = send(a, bcast, 7500, count=2, tag="to-b")
    assert [d.payload for d in c_rx.result().dgrams] == sent_c
    assert [d.payload for d in c_rx2.result().dgrams] == sent_g
    assert [d.payload for d in b_rx.result().dgrams] == sent_b
    # Each datagram went out of one port only; the cleared ones out of none.
    assert (b.counter("rx_packets") - rx0[0], c.counter("rx_packets") - rx0[1]) == (2, 5)
    for cookie, n in (
        ("0x10", 3), ("0x11", 3), ("0x12", 3), ("0x20", 2), ("0x21", 2), ("0x22", 2),
        ("0x30", 2), ("0x40", 2), ("0x41", 2),
    ):  # fmt: skip
        assert n_packets(sw, br, f"cookie={cookie},") == n, cookie
    assert group_stats(sw, br, 9) == (2, [2])


def test_table_miss_rules_send_packet_ins_to_the_controller(
    started: Sw, topology: Topology
) -> None:
    """A table-miss rule (priority 0, matches everything) with output:CONTROLLER, in
    table 0 and in a later table: the controller (os-ken) gets the packets as packet-ins
    with reason "no match", the table and the rule's cookie; an ordinary rule's
    CONTROLLER action says "action"."""
    sw = started
    a = topology.add_host("a", "10.96.0.1/24")
    b = topology.add_host("b", "10.96.0.2/24")
    br = make_bridge(sw, topology, a, b)
    sw.vsctl("set", "bridge", br, "fail_mode=secure")
    na = sw.ofport(a.switch_port)
    static_neighbours(a, b)
    with OsKenPeer(app="observer") as ctl:
        # The first primary controller flushes the table (as Open vSwitch): rules after.
        sw.vsctl("set-controller", br, ctl.target)
        ctl.wait_for(lambda e: e["event"] == "connected")
        ofctl(sw, br, "del-flows")
        ofctl(sw, br, "add-flow", "cookie=0x70,table=0,priority=0,actions=CONTROLLER:65535")
        ofctl(sw, br, "add-flow",
              "cookie=0x71,table=0,priority=10,udp,tp_dst=7701,actions=goto_table:3")  # fmt: skip
        ofctl(sw, br, "add-flow", "cookie=0x73,table=3,priority=0,actions=CONTROLLER:65535")
        ofctl(sw, br, "add-flow",
              "cookie=0x72,table=0,priority=10,udp,tp_dst=7702,actions=CONTROLLER:65535")  # fmt: skip
        send(a, b.addr, 7700, count=2, tag="miss0")
        send(a, b.addr, 7701, count=3, tag="miss3")
        send(a, b.addr, 7702, count=1, tag="act")

        def pins() -> list[tuple[int, int, int, int, str]]:
            return sorted(
                (e["table_id"], e["cookie"], e["reason"], e["in_port"], e["eth_src"])
                for e in ctl.events("packet_in")
                if e["ethertype"] == 0x0800
            )

        want = sorted(
            [(0, 0x70, 0, na, a.mac)] * 2
            + [(3, 0x73, 0, na, a.mac)] * 3
            + [(0, 0x72, 1, na, a.mac)]
        )
        wait_for(lambda: len(pins()) >= len(want), "six packet-ins", timeout=20)
        assert pins() == want
        act = [e for e in ctl.events("packet_in") if e["cookie"] == 0x72]
        assert [e["total_len"] for e in act] == [14 + 20 + 8 + len(b"act-0")]  # the whole frame
    assert n_packets(sw, br, "cookie=0x73,") == 3
    assert n_packets(sw, br, "cookie=0x72,") == 1


def test_group_all_and_indirect(started: Sw, topology: Topology) -> None:
    """``all``: every bucket gets its own copy, a rewrite in one bucket does not leak
    into the next; ``indirect``: two rules share one bucket, and changing the group
    (mod-group) moves both at once."""
    sw = started
    a = topology.add_host("a", "10.97.0.1/24")
    b = topology.add_host("b", "10.97.0.2/24")
    c = topology.add_host("c", "10.97.0.3/24")
    br = make_bridge(sw, topology, a, b, c)
    na, nb, nc = (sw.ofport(h.switch_port) for h in (a, b, c))
    vip = "10.97.0.100"
    a.set_neigh(vip, VMAC)

    def to(h: Host, n: int) -> str:
        return f"set_field:{h.mac}->eth_dst,set_field:{h.addr}->ip_dst,output:{n}"

    ofctl(sw, br, "del-flows")
    ofctl(sw, br, "add-group", f"group_id=1,type=all,bucket=set_field:7301->udp_dst,{to(b, nb)},bucket={to(c, nc)}")  # fmt: skip
    ofctl(sw, br, "add-group", f"group_id=2,type=indirect,bucket={to(b, nb)}")
    ofctl(sw, br, "add-flow", f"udp,in_port={na},tp_dst=7300,actions=group:1")
    ofctl(sw, br, "add-flow", f"udp,in_port={na},tp_dst=7310,actions=group:2")
    ofctl(sw, br, "add-flow", f"udp,in_port={na},tp_dst=7311,actions=group:2")

    rb, rc = Receiver(b, 7301, want=4), Receiver(c, 7300, want=4)
    sent = send(a, vip, 7300, count=4, tag="all")
    for rx, h in ((rb, b), (rc, c)):
        got = rx.result()
        assert [d.payload for d in got.dgrams] == sent, h.name
        assert {d.dst for d in got.dgrams} == {h.addr}
    assert group_stats(sw, br, 1) == (4, [4, 4])

    rb = Receiver(b, 7310, want=2)
    rb2 = Receiver(b, 7311, want=2)
    sent = send(a, vip, 7310, count=2, tag="ind0")
    sent2 = send(a, vip, 7311, count=2, tag="ind1")
    assert [d.payload for d in rb.result().dgrams] == sent
    assert [d.payload for d in rb2.result().dgrams] == sent2
    assert group_stats(sw, br, 2) == (4, [4])

    ofctl(sw, br, "mod-group", f"group_id=2,type=indirect,bucket={to(c, nc)}")
    b_rx = b.counter("rx_packets")
    rc, rc2 = Receiver(c, 7310, want=2), Receiver(c, 7311, want=2)
    sent = send(a, vip, 7310, count=2, tag="ind2")
    sent2 = send(a, vip, 7311, count=2, tag="ind3")
    assert [d.payload for d in rc.result().dgrams] == sent
    assert [d.payload for d in rc2.result().dgrams] == sent2
    assert b.counter("rx_packets") == b_rx
    assert n_packets(sw, br, "tp_dst=7310") == n_packets(sw, br, "tp_dst=7311") == 4


def test_fast_failover_group_follows_the_watched_port_link(started: Sw, topology: Topology) -> None:
    """A fast_failover group sends to the first bucket whose watched port is live: when
    B1's link goes down (its host's interface, then the switch's own end), traffic moves
    to B2; when it comes back up, traffic moves back. Every datagram sent once the
    switch has noticed arrives; the bucket counters add up."""
    sw = started
    a = topology.add_host("a", "10.98.0.1/24")
    b1 = topology.add_host("b1", "10.98.0.2/24")
    b2 = topology.add_host("b2", "10.98.0.3/24")
    br = make_bridge(sw, topology, a, b1, b2)
    na, n1, n2 = (sw.ofport(h.switch_port) for h in (a, b1, b2))
    vip = "10.98.0.100"
    a.set_neigh(vip, VMAC)

    def bucket(h: Host, n: int) -> str:
        return (
            f"bucket=watch_port:{n},actions="
            f"set_field:{h.mac}->eth_dst,set_field:{h.addr}->ip_dst,output:{n}"
        )

    ofctl(sw, br, "del-flows")
    ofctl(sw, br, "add-group", f"group_id=3,type=fast_failover,{bucket(b1, n1)},{bucket(b2, n2)}")
    ofctl(sw, br, "add-flow", f"udp,in_port={na},nw_dst={vip},actions=group:3")
    sent_total = 0  # every datagram A sent, probes included

    def phase(h: Host, tag: str) -> None:
        """10 datagrams, all to ``h`` (and all counted in its bucket)."""
        nonlocal sent_total
        want = [0, 10] if h is b2 else [10, 0]
        before = group_stats(sw, br, 3)[1]
        rx = Receiver(h, 7500, want=10)
        sent = send(a, vip, 7500, count=10, tag=tag)
        assert [d.payload for d in rx.result().dgrams] == sent, tag
        sent_total += 10
        after = group_stats(sw, br, 3)[1]
        assert [n - o for n, o in zip(after, before, strict=True)] == want, tag

    phase(b1, "up")
    for down, up in (
        (["ip", "netns", "exec", b1.ns, "ip", "link", "set", "eth0", "down"],
         ["ip", "netns", "exec", b1.ns, "ip", "link", "set", "eth0", "up"]),
        (["ip", "link", "set", b1.switch_port, "down"],
         ["ip", "link", "set", b1.switch_port, "up"]),
    ):  # fmt: skip
        run(down)
        wait_for(lambda: ports_desc_state(sw, br, n1) == "LINK_DOWN", "LINK_DOWN")
        sent_total += probe_until(a, vip, PROBE, b2, "fo")
        phase(b2, "failed-over")
        run(up)
        wait_for(lambda: ports_desc_state(sw, br, n1) == "LIVE", "LIVE")
        sent_total += probe_until(a, vip, PROBE, b1, "fb")
        phase(b1, "back")

    total, buckets = group_stats(sw, br, 3)
    assert total == sent_total == sum(buckets)
    assert n_packets(sw, br, "group:3") == sent_total
