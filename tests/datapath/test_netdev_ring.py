"""The netdev ring reader without a kernel: an anonymous mapping laid out like a
TPACKET_V2 ring, filled by the test, drives ``NetdevDatapath._run_ring`` directly.
Checks VLAN re-insertion, the header cache against plain extract_key + lookup, budget
and wrap-around. Needs no root."""

from __future__ import annotations

import mmap

from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.datapath import afpacket, netdev
from hitless.datapath.actions import Output
from hitless.datapath.base import DpPort
from hitless.datapath.netdev import NetdevDatapath, _Port
from hitless.packet.flow import Match, extract_key, full_mask, make_key
from tests.packet import builders as b

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
MAC_OFF = 66  # where the kernel would put the frame in a 2 KiB frame


class FakeRing:
    """Port 1 reads a ring we fill; ports 2 and 3 record what is sent to them."""

    def __init__(self, frames: int = 64) -> None:
        self.geometry = afpacket.RingGeometry(frames * 2048, 1, 2048, frames)
        self.ring = mmap.mmap(-1, self.geometry.size)
        self.dp = NetdevDatapath("fake")
        self.port = _Port(DpPort(1, "in"), -1, None, self.ring, self.geometry)
        self.dp._ports[1] = self.port
        self.sent: dict[int, list[bytes]] = {2: [], 3: []}
        for n in (2, 3):
            self.dp._ports[n] = _Port(DpPort(n, f"out{n}"), -1)
            self.dp._send[n] = self.sent[n].append
        self.tail = 0

    def put(
        self, frame: bytes, vlan_tci: int | None = None, tpid: int | None = None,
        wire_len: int | None = None,
    ) -> None:
        """``wire_len``: the frame's length on the wire, when the kernel cut it to fit."""
        off = self.tail * self.geometry.frame_size
        status = afpacket.TP_STATUS_USER
        if vlan_tci is not None:
            status |= afpacket.TP_STATUS_VLAN_VALID
        if tpid is not None:
            status |= afpacket.TP_STATUS_VLAN_TPID_VALID
        afpacket.TPACKET2_HDR.pack_into(
            self.ring, off, status, wire_len or len(frame), len(frame), MAC_OFF, MAC_OFF + 14, 0, 0,
            vlan_tci or 0, tpid or 0,
        )  # fmt: skip
        self.ring[off + MAC_OFF : off + MAC_OFF + len(frame)] = frame
        self.tail = (self.tail + 1) % self.geometry.frame_nr

    def run(self) -> int:
        return self.dp._run_ring(self.port, 1.0)


def udp_frame(sport: int = 1, ttl: int = 64, payload: bytes = b"x" * 18) -> bytes:
    seg = b.udp("10.0.0.1", "10.0.0.2", sport, 53, payload)
    return b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 17, seg, ttl=ttl))


def tcp_frame(flags: int) -> bytes:
    seg = b.tcp("10.0.0.1", "10.0.0.2", 1000, 80, flags, b"data")
    return b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 6, seg))


def test_the_kernels_vlan_metadata_is_put_back_in_the_frame() -> None:
    r = FakeRing()
    frame = udp_frame()
    r.put(frame, vlan_tci=0x2000 | 7)
    r.put(frame, vlan_tci=5, tpid=0x88A8)
    assert r.run() == 2
    ups = r.dp.recv_upcalls()
    assert ups[0].packet == frame[:12] + b"\x81\x00\x20\x07" + frame[12:]
    assert ups[1].packet == frame[:12] + b"\x88\xa8\x00\x05" + frame[12:]
    assert ups[0].key == extract_key(ups[0].packet, 1)
    assert r.ring[0:4] == bytes(4), "frames are handed back to the kernel"


def test_header_cache_distinguishes_tcp_flags_and_ttl() -> None:
    r = FakeRing()
    syn = Match.of(make_key(in_port=1, eth_type=0x0800, ip_proto=6, tcp_flags=0x02),
                   full_mask("in_port", "eth_type", "ip_proto", "tcp_flags"))  # fmt: skip
    r.dp.flow_put(syn, (Output(2),))
    ttl5 = Match.of(make_key(in_port=1, eth_type=0x0800, ip_ttl=5),
                    full_mask("in_port", "eth_type", "ip_ttl"))  # fmt: skip
    r.dp.flow_put(ttl5, (Output(3),))
    for frame in (tcp_frame(0x02), tcp_frame(0x10), tcp_frame(0x02), udp_frame(ttl=5),
                  udp_frame(ttl=6), udp_frame(ttl=5)):  # fmt: skip
        r.put(frame)
    r.run()
    assert r.sent[2] == [tcp_frame(0x02)] * 2
    assert r.sent[3] == [udp_frame(ttl=5)] * 2
    assert [u.packet for u in r.dp.recv_upcalls()] == [tcp_frame(0x10), udp_frame(ttl=6)]
    assert r.dp.flow_get(syn).stats.tcp_flags == 0x02  # type: ignore[union-attr]


def test_a_frame_cut_to_fit_the_ring_is_counted_and_dropped_never_forwarded() -> None:
    r = FakeRing()
    r.dp.flow_put(Match.of(make_key(in_port=1), full_mask("in_port")), (Output(2),))
    room = r.geometry.frame_size - MAC_OFF  # what the kernel copies of a longer frame
    jumbo = udp_frame(payload=bytes(9000))
    r.put(jumbo[:room], wire_len=len(jumbo))
    r.put(udp_frame())
    r.put(udp_frame(payload=bytes(room - 42)))  # exactly fills its frame: whole
    assert r.run() == 3
    assert r.sent[2] == [udp_frame(), udp_frame(payload=bytes(room - 42))]
    assert r.dp.n_truncated == 1 and r.port.dp.stats.rx_dropped == 1
    assert r.port.grow, "the ring is to be resized for the device's MTU"


def test_budget_and_wrap_around() -> None:
    r = FakeRing(frames=8)
    r.dp.flow_put(Match.of(make_key(in_port=1), full_mask("in_port")), (Output(2),))
    old_budget = netdev.BUDGET
    netdev.BUDGET = 5
    try:
        for i in range(6):
            r.put(udp_frame(sport=i))
        assert r.run() == 5
        assert r.run() == 1
        for i in range(6, 12):  # wraps past the end of the 8-frame ring
            r.put(udp_frame(sport=i))
        assert r.run() == 5 and r.run() == 1 and r.run() == 0
    finally:
        netdev.BUDGET = old_budget
    assert r.sent[2] == [udp_frame(sport=i) for i in range(12)]
    assert r.dp.ports()[1].stats.rx_packets == 12
    assert r.dp.ports()[2].stats.tx_packets == 12


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["udp", "tcp"]),
            st.integers(0, 3),
            st.integers(1, 3),
            st.binary(max_size=30),
        ),  # fmt: skip
        min_size=1,
        max_size=40,
    )
)
def test_cached_path_forwards_like_extract_key_and_lookup(
    frames: list[tuple[str, int, int, bytes]],
) -> None:
    r = FakeRing()
    # Flows on L4 port and TTL: neither cache hits nor misses may confuse them.
    for port in range(3):
        m = Match.of(make_key(in_port=1, eth_type=0x0800, tp_src=port, ip_ttl=port + 1),
                     full_mask("in_port", "eth_type", "tp_src", "ip_ttl"))  # fmt: skip
        r.dp.flow_put(m, (Output(2 + port % 2),))
    expected: dict[int, list[bytes]] = {2: [], 3: []}
    missed: list[bytes] = []
    for kind, sport, ttl, payload in frames:
        if kind == "udp":
            seg = b.udp("10.0.0.1", "10.0.0.2", sport, 53, payload)
            frame = b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 17, seg, ttl=ttl))
        else:
            seg = b.tcp("10.0.0.1", "10.0.0.2", sport, 80, 0x10, payload)
            frame = b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 6, seg, ttl=ttl))
        flow = r.dp._flows.lookup(extract_key(frame, 1))
        if flow is None:
            missed.append(frame)
        else:
            expected[flow.actions[0].port].append(frame)  # type: ignore[union-attr]
        r.put(frame)
    r.run()
    assert r.sent == expected
    assert [u.packet for u in r.dp.recv_upcalls(100)] == missed
