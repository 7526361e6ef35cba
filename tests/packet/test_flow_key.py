"""extract_key: never raises, and fills the fields of hand-built packets correctly."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hitless.packet.flow import (
    FRAG_ANY,
    FRAG_LATER,
    KEY_LEN,
    VLAN_PRESENT,
    extract_key,
    field,
    make_key,
)
from tests.packet import builders as b

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"


@given(st.binary(max_size=200), st.integers(0, 2**32 - 1))
def test_any_bytes_give_a_key(data: bytes, port: int) -> None:
    key = extract_key(data, port)
    assert len(key) == KEY_LEN
    assert field(key, "in_port") == port


_ETH_TYPES = st.sampled_from([0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8, 0x1234])


@given(st.binary(min_size=12, max_size=12), _ETH_TYPES, st.binary(max_size=120))
def test_any_payload_after_a_known_ethertype_gives_a_key(
    macs: bytes, eth_type: int, rest: bytes
) -> None:
    pkt = macs + eth_type.to_bytes(2, "big") + rest
    key = extract_key(pkt, 1)
    assert len(key) == KEY_LEN
    assert key[4:16] == macs


def test_tcp_over_ipv4() -> None:
    seg = b.tcp("10.0.0.1", "10.0.0.2", 1234, 80, 0x12)
    pkt = b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 6, seg, tos=0x10, ttl=7))
    assert extract_key(pkt, 3) == make_key(
        in_port=3,
        eth_dst=B,
        eth_src=A,
        eth_type=0x0800,
        ipv4_src="10.0.0.1",
        ipv4_dst="10.0.0.2",
        ip_proto=6,
        ip_tos=0x10,
        ip_ttl=7,
        tp_src=1234,
        tp_dst=80,
        tcp_flags=0x12,
    )


def test_udp_in_a_vlan() -> None:
    seg = b.udp("10.0.0.1", "10.0.0.2", 5000, 53, b"q")
    pkt = b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 17, seg), vlan=0x2000 | 42)
    key = extract_key(pkt, 1)
    assert field(key, "vlan_tci") == VLAN_PRESENT | 0x2000 | 42
    assert field(key, "eth_type") == 0x0800
    assert (field(key, "tp_src"), field(key, "tp_dst"), field(key, "ip_proto")) == (5000, 53, 17)


def test_icmp_and_fragments() -> None:
    pkt = b.eth(B, A, 0x0800, b.ipv4("1.1.1.1", "2.2.2.2", 1, b.icmp_echo()))
    key = extract_key(pkt, 1)
    assert (field(key, "tp_src"), field(key, "tp_dst")) == (8, 0)
    first = b.eth(B, A, 0x0800, b.ipv4("1.1.1.1", "2.2.2.2", 17, b"x" * 16, frag=0x2000))
    later = b.eth(B, A, 0x0800, b.ipv4("1.1.1.1", "2.2.2.2", 17, b"x" * 16, frag=0x0004))
    assert field(extract_key(first, 1), "ip_frag") == FRAG_ANY
    assert field(extract_key(later, 1), "ip_frag") == FRAG_ANY | FRAG_LATER
    assert field(extract_key(later, 1), "tp_src") == 0


def test_arp() -> None:
    pkt = b.eth(
        "ff:ff:ff:ff:ff:ff", A, 0x0806, b.arp(1, A, "10.0.0.1", "00:00:00:00:00:00", "10.0.0.2")
    )
    assert extract_key(pkt, 2) == make_key(
        in_port=2,
        eth_dst="ff:ff:ff:ff:ff:ff",
        eth_src=A,
        eth_type=0x0806,
        ipv4_src="10.0.0.1",
        ipv4_dst="10.0.0.2",
        ip_proto=1,
        arp_sha=A,
    )


def test_ipv6_tcp_and_neighbor_solicitation() -> None:
    seg = b.tcp("0.0.0.0", "0.0.0.0", 4000, 22, 0x02)  # checksum irrelevant here
    pkt = b.eth(B, A, 0x86DD, b.ipv6("fe80::1", "fe80::2", 6, seg, tclass=0x20, label=0x12345))
    key = extract_key(pkt, 1)
    assert field(key, "ipv6_label") == 0x12345 and field(key, "ip_tos") == 0x20
    assert (field(key, "tp_src"), field(key, "tp_dst"), field(key, "tcp_flags")) == (4000, 22, 2)
    ns = b.neighbor_solicitation("fe80::2", A)
    pkt = b.eth("33:33:ff:00:00:02", A, 0x86DD, b.ipv6("fe80::1", "ff02::1:ff00:2", 58, ns))
    key = extract_key(pkt, 1)
    assert key == make_key(
        in_port=1,
        eth_dst="33:33:ff:00:00:02",
        eth_src=A,
        eth_type=0x86DD,
        ipv6_src="fe80::1",
        ipv6_dst="ff02::1:ff00:2",
        ip_proto=58,
        ip_ttl=64,
        tp_src=135,
        arp_sha=A,
        nd_target="fe80::2",
        nd_options_type=1,  # its SLL option's
    )
