"""Receive rings mapped ahead (``afpacket.map_ahead``, a handoff's feature "early-rings"):
``map_ring`` of the same socket takes the mapping made ahead and closes the descriptor
that came with it; a mapping nobody took is dropped. Real TPACKET_V2 rings of unbound
AF_PACKET sockets (no interface, nothing received): needs root (CAP_NET_RAW)."""

from __future__ import annotations

import mmap
import os
import socket
import struct
from collections.abc import Iterator

import pytest

from hitless.datapath import afpacket

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET sockets need root")

GEOMETRY = afpacket.RingGeometry(4096, 4, 2048, 8)


@pytest.fixture
def rings() -> Iterator[list[socket.socket]]:
    """Two sockets with a ring each; whatever a test left mapped ahead is dropped."""
    socks = []
    try:
        for _ in range(2):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            socks.append(s)
            s.setsockopt(afpacket.SOL_PACKET, afpacket.PACKET_VERSION, afpacket.TPACKET_V2)
            g = GEOMETRY
            s.setsockopt(afpacket.SOL_PACKET, afpacket.PACKET_RX_RING,
                         struct.pack("IIII", g.block_size, g.block_nr, g.frame_size, g.frame_nr))  # fmt: skip
        yield socks
    finally:
        afpacket.drop_mapped_ahead()
        for s in socks:
            s.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_ring_mapped_ahead_is_the_one_adopted(rings: list[socket.socket]) -> None:
    a, b = rings
    before = open_fds()
    assert afpacket.map_ahead(os.dup(a.fileno()), GEOMETRY.size)
    ring = afpacket.map_ring(a.fileno(), GEOMETRY)
    # The descriptor that came with it is closed (Python's mmap keeps one of its own).
    assert open_fds() == before + 1
    assert afpacket.drop_mapped_ahead() == 0  # taken
    # It is the socket's ring: what one mapping writes, another one reads.
    ring[100] = 7
    again = mmap.mmap(a.fileno(), GEOMETRY.size, mmap.MAP_SHARED, mmap.PROT_READ)
    assert again[100] == 7
    again.close()
    ring.close()
    assert open_fds() == before
    # Mapped ahead for a, adopted for b: b is mapped as usual, a's is dropped unused.
    assert afpacket.map_ahead(os.dup(a.fileno()), GEOMETRY.size)
    ring_b = afpacket.map_ring(b.fileno(), GEOMETRY)
    assert len(ring_b) == GEOMETRY.size and open_fds() == before + 3
    assert afpacket.drop_mapped_ahead() == 1 and open_fds() == before + 1
    ring_b.close()
    assert open_fds() == before


def test_a_ring_that_cannot_be_mapped_ahead_is_mapped_later(rings: list[socket.socket]) -> None:
    a, _ = rings
    before = open_fds()
    # The kernel maps a ring whole or not at all: a wrong size is refused, fd closed.
    assert not afpacket.map_ahead(os.dup(a.fileno()), GEOMETRY.size * 2)
    assert open_fds() == before and afpacket.drop_mapped_ahead() == 0
    # Mapped ahead with a size that is not the one adopted: mapped again, closed.
    assert afpacket.map_ahead(os.dup(a.fileno()), GEOMETRY.size)
    small = afpacket.RingGeometry(4096, 2, 2048, 4)
    with pytest.raises(OSError):  # the ring is 4 blocks: the kernel refuses 2
        afpacket.map_ring(a.fileno(), small)
    assert open_fds() == before and afpacket.drop_mapped_ahead() == 0
