"""Finishing partial (offloaded) TCP/UDP checksums of upcalled packets."""

from __future__ import annotations

import struct

import pytest

from hitless.datapath.ebpf.csum import _sum16, complete_checksum
from hitless.packet.ops import push_vlan
from tests.packet.builders import eth, ipv4, ipv6, tcp, tcp6, udp

A, B = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"
MA, MB = "02:00:00:00:00:01", "02:00:00:00:00:02"


def ipv4_tcp() -> bytes:
    return eth(MB, MA, 0x0800, ipv4(A, B, 6, tcp(A, B, 1234, 80, 0x02, b"hello world")))


def ipv4_udp() -> bytes:
    return eth(MB, MA, 0x0800, ipv4(A, B, 17, udp(A, B, 1234, 53, b"query!")))


def ipv6_tcp() -> bytes:
    return eth(MB, MA, 0x86DD, ipv6(A6, B6, 6, tcp6(A6, B6, 1234, 80, 0x10, b"data")))


def _partial(pkt: bytes) -> bytes:
    """The same packet as a host with tx offload sends it: the L4 checksum field holds
    the folded pseudo-header sum."""
    l3 = 14
    if pkt[12:14] == b"\x08\x00":
        ihl = (pkt[l3] & 15) * 4
        proto = pkt[l3 + 9]
        l4 = l3 + ihl
        tot = pkt[l3 + 2] << 8 | pkt[l3 + 3]
        pseudo = pkt[l3 + 12 : l3 + 20] + struct.pack("!HH", proto, tot - ihl)
    else:
        proto = pkt[l3 + 6]
        l4 = l3 + 40
        plen = pkt[l3 + 4] << 8 | pkt[l3 + 5]
        pseudo = pkt[l3 + 8 : l3 + 40] + struct.pack("!IxxxB", plen, proto)
    co = l4 + (16 if proto == 6 else 6)
    return pkt[:co] + _sum16(pseudo).to_bytes(2, "big") + pkt[co + 2 :]


@pytest.mark.parametrize("make", [ipv4_tcp, ipv4_udp, ipv6_tcp])
def test_partial_checksum_is_finished_and_full_one_left_alone(make) -> None:  # type: ignore[no-untyped-def]
    good = make()
    assert complete_checksum(good) == good
    part = _partial(good)
    assert part != good
    assert complete_checksum(part) == good
    tagged = push_vlan(part, 10)
    assert complete_checksum(tagged) == push_vlan(good, 10)


def test_other_packets_unchanged() -> None:
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    assert complete_checksum(arp) == arp
    assert complete_checksum(b"short") == b"short"
