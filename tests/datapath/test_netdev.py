"""The netdev datapath on real veth pairs between namespace hosts (no daemon)."""

from __future__ import annotations

import json
import os
import socket

import msgspec
import pytest

from hitless.datapath.actions import Output
from hitless.datapath.base import Upcall
from hitless.datapath.netdev import NetdevDatapath, ServeThread
from hitless.packet.flow import (
    Match,
    field,
    full_mask,
    make_key,
)
from hitless.state import handles
from tests.datapath.flows import cross_connect, port_flow
from tests.netns import Host, Topology, UdpSink, udp_send, unique_suffix
from tests.wait import wait_for

pytestmark = pytest.mark.netns


@pytest.fixture
def two_hosts(topology: Topology) -> tuple[Host, Host]:
    return topology.add_host("a", "10.77.0.1/24"), topology.add_host("b", "10.77.0.2/24")


@pytest.fixture
def dp() -> NetdevDatapath:
    d = NetdevDatapath(f"br{unique_suffix()}", ring_frames=4096)
    yield d  # type: ignore[misc]
    d.close()


def test_ping_and_tcp_through_installed_flows(two_hosts: tuple[Host, Host], dp) -> None:
    a, b = two_hosts
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    cross_connect(dp, pa, pb)
    with ServeThread(dp):
        assert a.ping(b.addr, count=3)
        b.popen(["iperf3", "-s", "-1", "-B", b.addr])
        wait_for(lambda: ":5201 " in b.run(["ss", "-Hlnt"]).stdout, "iperf3 listening")
        res = a.run(["iperf3", "-c", b.addr, "-n", "20M", "-J"], check=False, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    received = json.loads(res.stdout)["end"]["sum_received"]["bytes"]
    assert received > 10_000_000
    for _ in range(3):  # drain what is still in the rings
        dp.run()
    ports = dp.ports()
    # Every frame a host put on its wire was read, and every frame forwarded arrived.
    assert ports[pa].stats.rx_packets == a.counter("tx_packets")
    assert ports[pb].stats.tx_packets == b.counter("rx_packets")
    assert ports[pb].stats.tx_packets == ports[pa].stats.rx_packets
    assert ports[pa].stats.rx_dropped == ports[pb].stats.tx_dropped == 0
    assert ports[pa].mac != bytes(6) and ports[pa].link_up
    flows = {f.match: f for f in dp.flow_dump()}
    sent = flows[Match.of(make_key(in_port=pa), full_mask("in_port"))].stats
    assert sent.packets == ports[pa].stats.rx_packets
    assert sent.tcp_flags & 0x02  # SYN seen


def test_internal_port_is_a_tap_device(topology: Topology, dp) -> None:
    a = topology.add_host("a", "10.80.0.1/24")
    pa = dp.port_add(a.switch_port)
    tap = topology.name("hltap")
    pt = dp.port_add(tap, type="internal")
    assert os.path.exists(f"/sys/class/net/{tap}")
    info = dp.ports()[pt]
    assert info.type == "internal" and info.link_up and info.mac != bytes(6)
    # Sniff what the switch writes into the tap (what the host stack receives).
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    sniff.bind((tap, 0))
    sniff.settimeout(5)
    port_flow(dp, pa, Output(pt))
    try:
        with ServeThread(dp):
            a.ping("10.80.0.9", count=1, timeout=0.5)  # an ARP broadcast
            frame = sniff.recv(2048)
            while frame[6:12] != a.mac_bytes:
                frame = sniff.recv(2048)
        # What the host stack sends on the tap comes back to the switch as input.
        frame = b"\xff" * 6 + info.mac + b"\x88\xb5" + b"hitless-internal".ljust(46, b"\0")
        sniff.send(frame)

        def upcalls() -> list[Upcall]:
            dp.run()
            return [u for u in dp.recv_upcalls() if u.packet == frame]

        got = wait_for(upcalls, "the frame the host stack sent, as an upcall", timeout=5)
        assert got[0].in_port == pt
    finally:
        sniff.close()
    dp.port_del(pt)
    assert not os.path.exists(f"/sys/class/net/{tap}")


def test_handoff_in_one_process_forwards_every_frame_once(two_hosts: tuple[Host, Host]) -> None:
    """Frames queue in the rx ring while nobody reads; the old datapath forwards some,
    exports, and lets go of its Python objects; the adopter forwards the rest."""
    a, b = two_hosts
    a.set_neigh(b.addr, b.mac)
    b.set_neigh(a.addr, a.mac)
    old = NetdevDatapath(f"br{unique_suffix()}", ring_frames=8192)
    pa, pb = old.port_add(a.switch_port), old.port_add(b.switch_port)
    tap = f"hlt{unique_suffix()}"
    pt = old.port_add(tap, type="internal")
    cross_connect(old, pa, pb)
    new: NetdevDatapath | None = None
    try:
        sink = UdpSink(b, 5555, idle=3.0)
        count = 3000
        udp_send(a, b.addr, 5555, count)  # nobody reads: everything waits in the ring
        old.run()  # forwards one budget's worth
        forwarded_by_old = old.ports()[pb].stats.tx_packets
        assert 0 < forwarded_by_old < count
        # A miss queued but not collected must survive the handoff too.
        probe = b"\x02" * 6 + a.mac_bytes + b"\x88\xb5" + bytes(46)
        old._queue(Upcall(pa, probe, make_key(in_port=pa)))

        sent, fds = old.export_handles()
        # The megaflows travel apart (a handoff's typed flow records), with their counters.
        flows = [(f.match, f.actions, f.stats) for f in old.flow_dump()]
        passed = [os.dup(fd) for fd in fds]  # what SCM_RIGHTS would hand the receiver
        old.close()  # closes only the old process's references
        assert os.path.exists(f"/sys/class/net/{tap}"), "the passed fd keeps the TAP alive"
        state = handles.from_wire("netdev", msgspec.msgpack.decode(
            msgspec.msgpack.encode(handles.to_wire(sent))))  # fmt: skip
        assert state == sent
        new = NetdevDatapath.adopt(old.name, state, passed)
        for m, actions, stats in flows:
            new.flow_put(m, actions)
            got = new.flow_get(m)
            assert got is not None
            got.stats = stats
        assert {n: (p.name, p.type) for n, p in new.ports().items()} == {
            pa: (a.switch_port, "system"),
            pb: (b.switch_port, "system"),
            pt: (tap, "internal"),
        }
        assert [u.packet for u in new.recv_upcalls(1000) if u.in_port == pa] == [probe]
        with ServeThread(new):
            seqs = sink.seqs()
        assert sorted(seqs) == list(range(count)), (
            f"lost {count - len(set(seqs))}, duplicated {len(seqs) - len(set(seqs))}"
        )
        ports = new.ports()
        assert ports[pb].stats.tx_packets == count
        assert ports[pa].stats.rx_dropped == 0
        flow = new.flow_get(Match.of(make_key(in_port=pa), full_mask("in_port")))
        assert flow is not None and flow.stats.packets == count
        # The adopted datapath keeps forwarding both ways.
        with ServeThread(new):
            assert a.ping(b.addr, count=2)
    finally:
        old.close()
        if new is not None:
            new.close()
    assert not os.path.exists(f"/sys/class/net/{tap}"), "the TAP goes with its last fd"


def test_two_second_stall_at_10k_pps_loses_nothing(two_hosts: tuple[Host, Host]) -> None:
    """Default ring size: 20,000 frames arrive over ~2 s while nobody reads."""
    a, b = two_hosts
    a.set_neigh(b.addr, b.mac)
    b.set_neigh(a.addr, a.mac)
    d = NetdevDatapath(f"br{unique_suffix()}")
    try:
        pa, pb = d.port_add(a.switch_port), d.port_add(b.switch_port)
        cross_connect(d, pa, pb)
        sink = UdpSink(b, 5556, idle=3.0)
        count = 20_000
        udp_send(a, b.addr, 5556, count, batch=50, pause=0.005)  # about 10k/s
        with ServeThread(d):
            seqs = sink.seqs()
        assert d.ports()[pa].stats.rx_dropped == 0
        assert sorted(seqs) == list(range(count))
    finally:
        d.close()


def test_deleted_flows_stop_matching_at_once(two_hosts: tuple[Host, Host], dp) -> None:
    a, b = two_hosts
    a.set_neigh(b.addr, b.mac)
    b.set_neigh(a.addr, a.mac)
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    cross_connect(dp, pa, pb)
    with ServeThread(dp):
        assert a.ping(b.addr, count=2)  # the echo request's headers are cached now
    dp.flow_del(Match.of(make_key(in_port=pa), full_mask("in_port")))
    assert not a.ping(b.addr, count=1, timeout=0.5)
    dp.run()
    [up] = dp.recv_upcalls()
    assert up.in_port == pa and field(up.key, "ip_proto") == 1 and field(up.key, "tp_src") == 8
