"""The ebpf datapath on real veth pairs between namespace hosts (no daemon): the kernel
forwards by the flows Python installs, misses come up through the ring buffer."""

from __future__ import annotations

import json
import time

import pytest

from hitless.datapath.actions import Meter, Output, SetField, Userspace
from hitless.datapath.ebpf.provider import EbpfDatapath, hidden_peer
from hitless.datapath.netdev import ServeThread
from hitless.packet.flow import (
    Match,
    extract_key,
    field,
    full_mask,
    make_key,
)
from tests.datapath.flows import cross_connect, port_flow
from tests.netns import Host, Topology, UdpSink, sh, unique_suffix
from tests.wait import wait_for

pytestmark = pytest.mark.netns


def listening(host: Host, port: int, timeout: float = 10.0) -> None:
    """Wait until a socket in the host's namespace is bound to ``port``."""
    wait_for(lambda: f":{port} " in host.run(["ss", "-Hlnut"]).stdout,
             f"a listener on port {port} in {host.ns}", timeout)  # fmt: skip


@pytest.fixture
def two_hosts(topology: Topology) -> tuple[Host, Host]:
    return topology.add_host("a", "10.87.0.1/24"), topology.add_host("b", "10.87.0.2/24")


@pytest.fixture
def dp() -> EbpfDatapath:
    d = EbpfDatapath(f"br{unique_suffix()}")
    yield d  # type: ignore[misc]
    d.close()


def test_ping_and_tcp_forwarded_by_the_kernel(two_hosts: tuple[Host, Host], dp) -> None:
    a, b = two_hosts
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    cross_connect(dp, pa, pb)
    # No loop runs: whatever arrives is forwarded by the kernel alone.
    assert a.ping(b.addr, count=3)
    b.popen(["iperf3", "-s", "-1", "-B", b.addr])
    listening(b, 5201)
    res = a.run(["iperf3", "-c", b.addr, "-n", "50M", "-J"], check=False, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert json.loads(res.stdout)["end"]["sum_received"]["bytes"] > 40_000_000
    flows = {f.match: f for f in dp.flow_dump()}
    sent = flows[Match.of(make_key(in_port=pa), full_mask("in_port"))].stats
    assert sent.packets >= a.counter("tx_packets") - 5  # IPv6 noise before the flow
    assert sent.tcp_flags & 0x02  # SYN seen
    assert sent.used > time.monotonic() - 60
    st = dp.stats()
    assert st["hit"] >= sent.packets and st["upcalls"] == 0


def test_set_fields_rewrite_with_valid_checksums(topology: Topology, dp) -> None:
    """a talks to a virtual address 10.90.0.99; the kernel rewrites it to b (and back)
    with TTL decrement: ping and TCP only work if every checksum is right."""
    a = topology.add_host("a", "10.90.0.1/24")
    b = topology.add_host("b", "10.90.0.2/24")
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    vip = "10.90.0.99"
    vmac = "02:00:00:00:00:99"
    a.run(["ip", "neigh", "replace", vip, "lladdr", vmac, "dev", "eth0"])
    b.run(["ip", "neigh", "replace", a.addr, "lladdr", a.mac, "dev", "eth0"])
    ip = full_mask("in_port", "eth_type")
    to_b = (
        SetField("eth_dst", b.mac_bytes),
        SetField("ipv4_dst", bytes(map(int, b.addr.split(".")))),
        SetField("ip_tos", b"\x10"),
        Output(pb),
    )
    to_a = (
        SetField("eth_src", bytes.fromhex(vmac.replace(":", ""))),
        SetField("ipv4_src", bytes(map(int, vip.split(".")))),
        SetField("ip_ttl", b"\x20"),
        Output(pa),
    )
    dp.flow_put(Match.of(make_key(in_port=pa, eth_type=0x0800), ip), to_b)
    dp.flow_put(Match.of(make_key(in_port=pb, eth_type=0x0800), ip), to_a)
    assert a.ping(vip, count=3)
    b.popen(["iperf3", "-s", "-1", "-B", b.addr])
    listening(b, 5201)
    res = a.run(["iperf3", "-c", vip, "-n", "5M", "-J"], check=False, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    # UDP port rewrite: a sends to port 7000, b's socket listens on 7001.
    tcp_udp = full_mask("in_port", "eth_type", "ip_proto")
    dp.flow_del(Match.of(make_key(in_port=pa, eth_type=0x0800), ip))  # megaflows never overlap
    dp.flow_put(
        Match.of(make_key(in_port=pa, eth_type=0x0800, ip_proto=17), tcp_udp),
        (*to_b[:2], SetField("tp_dst", (7001).to_bytes(2, "big")), Output(pb)),
    )
    sink = b.popen(
        [
            "python3",
            "-c",
            (
                "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                f"s.bind(('{b.addr}',7001));s.settimeout(10);print(s.recv(100).decode())"
            ),
        ]
    )
    listening(b, 7001)
    a.run(
        [
            "python3",
            "-c",
            (
                "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                f"[s.sendto(b'hello',('{vip}',7000)) for _ in range(3)]"
            ),
        ]
    )
    out, _ = sink.communicate(timeout=15)
    assert out.strip() == "hello"
    st = dp.stats()
    assert st["slowpath_executed"] == 0 and st["action_error"] == 0


def test_flows_the_kernel_cannot_run_go_to_the_daemon_visibly(
    two_hosts: tuple[Host, Host], dp
) -> None:
    a, b = two_hosts
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    port_flow(dp, pa, Meter(7), Output(pb))  # a meter: not in the kernel
    port_flow(dp, pb, SetField("arp_sha", a.mac_bytes, bytes(6)), Output(pa))  # no-op rewrite
    with ServeThread(dp):
        assert a.ping(b.addr, count=3)
    st = dp.stats()
    assert st["slowpath"] >= 6 and st["slowpath_executed"] == st["slowpath"]
    assert "slow-path flows: 2 (meter: 1, set_field(arp_sha): 1)" in dp.show_lines()
    f = dp.flow_get(Match.of(make_key(in_port=pa), full_mask("in_port")))
    assert f is not None and f.stats.packets >= 3  # counted by the kernel all the same


def test_userspace_action_is_an_upcall_with_userdata(two_hosts: tuple[Host, Host], dp) -> None:
    a, b = two_hosts
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    port_flow(dp, pa, Output(pb), Userspace(b"\x01\x02cookie"))
    port_flow(dp, pb, Output(pa))
    assert a.ping(b.addr, count=2)
    dp.run()
    ups = dp.recv_upcalls(100)
    assert ups and all(u.reason == "action" and u.userdata == b"\x01\x02cookie" for u in ups)
    assert all(u.in_port == pa for u in ups)


def test_internal_port_is_a_veth_with_a_hidden_peer(topology: Topology, dp) -> None:
    a = topology.add_host("a", "10.91.0.1/24")
    pa = dp.port_add(a.switch_port)
    local = dp.port_add(dp.name, type="internal")
    try:
        sh(["ip", "addr", "add", "10.91.0.254/24", "dev", dp.name])
        cross_connect(dp, pa, local)
        assert a.ping("10.91.0.254", count=3)
        assert dp.ports()[local].type == "internal"
    finally:
        dp.port_del(local)
    assert sh(["ip", "link", "show", hidden_peer(dp.name)], check=False).returncode != 0


def test_a_new_instance_adopts_ports_flows_and_counters(two_hosts: tuple[Host, Host]) -> None:
    a, b = two_hosts
    name = f"br{unique_suffix()}"
    dp = EbpfDatapath(name)
    try:
        pa, pb = dp.port_add(a.switch_port, 5), dp.port_add(b.switch_port, 9)
        # As translation makes them: the mask covers recirc_id (beyond the kernel key).
        for i, o in ((pa, pb), (pb, pa)):
            m = Match.of(make_key(in_port=i), full_mask("in_port", "recirc_id"))
            dp.flow_put(m, (Output(o),))
        assert a.ping(b.addr, count=2)
        before = {f.match: (f.actions, f.stats.packets) for f in dp.flow_dump()}
        # Forget this process's view without detaching (what kill -9 leaves behind).
        dp._exported = True
        dp.close()
        assert a.ping(b.addr, count=2)  # forwarding went on with no process at all
        dp = EbpfDatapath(name)
        assert dp.adopted
        assert {n: (p.name, p.type) for n, p in dp.ports().items()} == {
            5: (a.switch_port, "system"),
            9: (b.switch_port, "system"),
        }
        after = {f.match: (f.actions, f.stats.packets) for f in dp.flow_dump()}
        assert set(after) == set(before)
        for m, (acts, pkts) in after.items():
            assert acts == before[m][0] and pkts >= before[m][1] + 2
    finally:
        dp.close()


def test_flow_dump_of_many_flows_reads_the_same_counters(two_hosts: tuple[Host, Host], dp) -> None:
    a, b = two_hosts
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    for i in range(400):  # enough for the batch read; never hit
        port_flow(dp, 1000 + i, Output(pb))
    cross_connect(dp, pa, pb)
    assert a.ping(b.addr, count=3)
    dumped = {f.match: (f.stats.packets, f.stats.bytes, f.stats.used) for f in dp.flow_dump()}
    assert len(dumped) == 402
    for m, st in dumped.items():
        got = dp.flow_get(m)
        assert got is not None
        assert (got.stats.packets, got.stats.bytes, got.stats.used) == st
    assert dumped[Match.of(make_key(in_port=pa), full_mask("in_port"))][0] >= 3


def test_kernel_keys_of_tcp_udp_icmp_and_ipv6_are_the_python_keys(
    two_hosts: tuple[Host, Host], dp
) -> None:
    """With no flow at all, every packet comes up with the key the kernel extracted:
    it must be extract_key's, for the fast IPv4 path and the general one alike."""
    a, b = two_hosts
    pa = dp.port_add(a.switch_port)
    dp.port_add(b.switch_port)
    a.run(["ip", "neigh", "replace", b.addr, "lladdr", b.mac, "dev", "eth0"])
    a.run(["sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=0"])
    a.run(["ip", "-6", "addr", "add", "fd87::1/64", "dev", "eth0", "nodad"])
    a.run(["ip", "-6", "neigh", "replace", "fd87::2", "lladdr", b.mac, "dev", "eth0"])
    script = (
        "import socket\n"
        "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"u.sendto(b'x' * 100, ('{b.addr}', 4000))\n"
        "u.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, 0x28)\n"
        f"u.sendto(b'y' * 3000, ('{b.addr}', 4001))\n"  # fragments
        "t = socket.socket(); t.setblocking(False)\n"
        f"t.connect_ex(('{b.addr}', 4002))\n"
        "v = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\n"
        "v.sendto(b'z', ('fd87::2', 4003))\n"
    )
    a.run(["python3", "-c", script])
    a.ping(b.addr, count=1, timeout=0.3)
    dp.run()
    ups = dp.recv_upcalls(200)
    protos = {field(u.key, "ip_proto") for u in ups if u.in_port == pa}
    assert {1, 6, 17} <= protos, protos
    assert any(field(u.key, "ip_frag") for u in ups)
    assert any(field(u.key, "eth_type") == 0x86DD for u in ups)
    for u in ups:
        assert u.key == extract_key(u.packet, u.in_port), u.packet[:64].hex()


def test_patch_pair_is_a_veth_pair_the_kernel_forwards_through_and_survives(
    two_hosts: tuple[Host, Host],
) -> None:
    """Two bridges joined by patch ports: output to a patch port is a redirect into a
    veth pair whose other end carries the peer bridge's program, so frames cross with no
    process running; a new instance finds the pair (and each port's peer) again."""
    from hitless.datapath.ebpf.provider import patch_device

    a, b = two_hosts
    sfx = unique_suffix()  # unique port names: the process's patch panel is shared
    names, pq = (f"br{sfx}x", f"br{sfx}y"), (f"pq{sfx}x", f"pq{sfx}y")

    def open_pair() -> tuple[EbpfDatapath, EbpfDatapath]:
        return EbpfDatapath(names[0]), EbpfDatapath(names[1])

    d0, d1 = open_pair()
    try:
        pa, p0 = d0.port_add(a.switch_port), d0.port_add(pq[0], type="patch",
                                                         options={"peer": pq[1]})  # fmt: skip
        pb, p1 = d1.port_add(b.switch_port), d1.port_add(pq[1], type="patch",
                                                         options={"peer": pq[0]})  # fmt: skip
        cross_connect(d0, pa, p0)
        cross_connect(d1, pb, p1)
        assert d0.ports()[p0].link_up and d0.ports()[p0].error is None
        assert a.ping(b.addr, count=3)
        # What kill -9 leaves behind: no process, the kernel forwards on.
        for d in (d0, d1):
            d._exported = True
            d.close()
        assert a.ping(b.addr, count=3)
        d0, d1 = open_pair()
        for d, p, peer in ((d0, p0, pq[1]), (d1, p1, pq[0])):
            port = d.ports()[p]
            assert (port.type, port.peer, port.link_up) == ("patch", peer, True)
        flow = d1.flow_get(Match.of(make_key(in_port=p1), full_mask("in_port")))
        assert flow is not None and flow.stats.packets >= 6
        assert d0.stats()["upcalls"] == d1.stats()["upcalls"] == 0
        d1.port_del(p1)  # the other end still carries d0's program: the pair stays
        assert sh(["ip", "link", "show", patch_device(pq[0])], check=False).returncode == 0
        assert d0.ports()[p0].error == f"{pq[0]}: patch peer {pq[1]} does not exist"
    finally:
        d0.close()
        d1.close()
    for q in pq:  # the last end removed takes the pair with it
        assert sh(["ip", "link", "show", patch_device(q)], check=False).returncode != 0


_SEND_ONE = (
    "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
    "s.sendto(int(sys.argv[3]).to_bytes(8,'big'),(sys.argv[1],int(sys.argv[2])))"
)


def test_a_new_flow_enters_the_kernel_only_after_its_upcalled_packets(
    two_hosts: tuple[Host, Host], dp
) -> None:
    """The first frame of a new flow comes up as a miss; the daemon puts the flow and
    sends the frame. If the flow went into the kernel at once, the flow's next frame
    could be forwarded by the kernel before the daemon sent the first (reordering,
    seen as a flaky ordered-delivery test). A flow put while its upcalls are being
    handled is held back until they are sent: the second frame misses too, and the
    daemon sends it after the first; then the flow is in the kernel."""
    a, b = two_hosts
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    a.set_neigh(b.addr, b.mac)
    sink = UdpSink(b, 9300, idle=1.0)

    def send(seq: int) -> None:
        a.run(["python3", "-c", _SEND_ONE, b.addr, "9300", str(seq)])

    def lookups() -> int:
        s = dp.stats()
        return s["hit"] + s["miss"]

    send(0)

    def first_upcall():  # type: ignore[no-untyped-def]
        return next((u for u in dp.recv_upcalls() if u.packet[-8:] == bytes(8)), None)

    up = wait_for(first_upcall, "the first datagram's upcall")
    m = Match.of(make_key(in_port=pa), full_mask("in_port"))
    dp.flow_put(m, (Output(pb),))  # as the bridge does: put, then execute
    rx_b, seen = b.counter("rx_packets"), lookups()
    send(1)
    wait_for(lambda: lookups() > seen, "the kernel to look the second datagram up")
    # The kernel did not forward it: it is not in the kernel yet.
    assert b.counter("rx_packets") == rx_b
    dp.execute(up.packet, up.in_port, (Output(pb),), up.key)
    while dp.recv_upcalls():  # noise (IPv6 from the hosts) only: nothing to put
        pass
    assert sink.seqs() == [0, 1]
    # Now it is: the next datagram is forwarded by the kernel, with no upcall.
    hits = dp.stats()["hit"]
    send(2)
    wait_for(lambda: dp.stats()["hit"] > hits, "the kernel to forward the third datagram")
    # The flow counts the second (run by the daemon for it) and the third (the
    # kernel's); the first was the bridge's execute, credited by the bridge.
    assert dp.flow_get(m).stats.packets == 2  # type: ignore[union-attr]
