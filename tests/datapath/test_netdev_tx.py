"""Batched transmit without a kernel device: ``afpacket.TxBatch`` and the netdev
datapath's queue-then-sendmmsg path, with UNIX datagram socket pairs standing in for
AF_PACKET sockets (sendmmsg behaves the same on any datagram socket). Needs no root."""

from __future__ import annotations

import mmap
import socket
from collections.abc import Iterator

import pytest

from hitless.datapath import afpacket
from hitless.datapath.actions import Output, PushVlan
from hitless.datapath.base import DpPort
from hitless.datapath.netdev import NetdevDatapath, _Port
from hitless.packet.flow import Match, full_mask, make_key
from tests.datapath.test_netdev_ring import MAC_OFF, udp_frame


def recv_all(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65536))
        except BlockingIOError:
            return out


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    tx, rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.setblocking(False)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    yield tx, rx
    tx.close()
    rx.close()


def queue(batch: afpacket.TxBatch, addr: int, size: int) -> None:
    afpacket._IOVEC.pack_into(batch.iov, batch.n * afpacket._IOVEC.size, addr, size)
    batch.n += 1
    batch.nbytes += size


def test_a_batch_sends_its_frames_in_order_with_one_flush(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    tx, rx = pair
    buf = bytearray(b"first" + b"second-frame" + b"3")
    addr, anchor = afpacket.buffer_address(buf)
    batch = afpacket.TxBatch(tx, 4)
    queue(batch, addr, 5)
    queue(batch, addr + 5, 12)
    queue(batch, addr + 17, 1)
    assert batch.flush() == (3, 18, 0)
    assert recv_all(rx) == [b"first", b"second-frame", b"3"]
    assert batch.n == batch.nbytes == 0
    assert batch.flush() == (0, 0, 0)
    del anchor


def test_a_refused_frame_is_dropped_and_the_rest_still_go(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    tx, rx = pair
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    huge = 1 << 17  # more than the send buffer can ever hold: EMSGSIZE
    buf = bytearray(b"a" * 10 + bytes(huge) + b"b" * 20)
    addr, anchor = afpacket.buffer_address(buf)
    batch = afpacket.TxBatch(tx, 4)
    queue(batch, addr, 10)
    queue(batch, addr + 10, huge)
    queue(batch, addr + 10 + huge, 20)
    assert batch.flush() == (2, 30, 1)
    assert recv_all(rx) == [b"a" * 10, b"b" * 20]
    del anchor


class RingToSockets:
    """Port 1 reads a ring we fill; ports 2 and 3 are sockets (queued, then flushed)."""

    def __init__(self, frames: int = 64) -> None:
        self.geometry = afpacket.RingGeometry(frames * 2048, 1, 2048, frames)
        self.ring = mmap.mmap(-1, self.geometry.size)
        self.dp = NetdevDatapath("fake")
        self.port = _Port(DpPort(1, "in"), -1, None, self.ring, self.geometry)
        self.dp._ports[1] = self.port
        self.rx: dict[int, socket.socket] = {}
        self.socks: list[socket.socket] = []
        for n in (2, 3):
            tx, rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            rx.setblocking(False)
            tx.setblocking(False)  # run() also polls it for input, as a TAP
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.dp._attach(_Port(DpPort(n, f"out{n}"), tx.fileno(), tx))
            self.rx[n] = rx
            self.socks += [tx, rx]
        self.tail = 0

    def put(self, frame: bytes, vlan_tci: int | None = None, mac: int = MAC_OFF) -> None:
        off = self.tail * self.geometry.frame_size
        status = afpacket.TP_STATUS_USER
        if vlan_tci is not None:
            status |= afpacket.TP_STATUS_VLAN_VALID
        afpacket.TPACKET2_HDR.pack_into(
            self.ring, off, status, len(frame), len(frame), mac, mac + 14, 0, 0,
            vlan_tci or 0, 0,
        )  # fmt: skip
        self.ring[off + mac : off + mac + len(frame)] = frame
        self.tail = (self.tail + 1) % self.geometry.frame_nr

    def received(self, port_no: int) -> list[bytes]:
        return recv_all(self.rx[port_no])

    def close(self) -> None:
        self.port.release(close_fds=False)
        for s in self.socks:
            s.close()


@pytest.fixture
def r2s() -> Iterator[RingToSockets]:
    r = RingToSockets()
    yield r
    r.close()


def test_ring_frames_are_sent_from_the_ring_then_handed_back(r2s: RingToSockets) -> None:
    r2s.dp.flow_put(Match.of(make_key(in_port=1), full_mask("in_port")), (Output(2), Output(3)))
    frames = [udp_frame(sport=i) for i in range(10)]
    for f in frames:
        r2s.put(f)
    r2s.dp.run()
    assert r2s.received(2) == frames
    assert r2s.received(3) == frames
    assert all(r2s.ring[i * 2048 : i * 2048 + 4] == bytes(4) for i in range(10)), (
        "every frame handed back to the kernel"
    )
    ports = r2s.dp.ports()
    assert ports[2].stats.tx_packets == ports[3].stats.tx_packets == 10
    assert ports[2].stats.tx_bytes == sum(map(len, frames))
    assert ports[1].stats.rx_packets == 10


def test_copied_frames_keep_their_place_among_ring_frames(r2s: RingToSockets) -> None:
    # Untagged frames go out straight from the ring; a frame that arrived tagged
    # (the kernel took the tag off) and frames that need actions applied are copies:
    # all reach port 2 in arrival order, in one run.
    r2s.dp.flow_put(
        Match.of(make_key(in_port=1, vlan_tci=0x1000 | 7), full_mask("in_port", "vlan_tci")),
        (Output(2),),
    )
    r2s.dp.flow_put(
        Match.of(make_key(in_port=1, ip_ttl=9), full_mask("in_port", "vlan_tci", "ip_ttl")),
        (PushVlan(5), Output(2)),
    )
    r2s.dp.flow_put(
        Match.of(make_key(in_port=1, ip_ttl=64), full_mask("in_port", "vlan_tci", "ip_ttl")),
        (Output(2),),
    )
    plain = [udp_frame(sport=i) for i in range(3)]
    tagged = udp_frame(sport=100)
    pushed = udp_frame(sport=200, ttl=9)
    r2s.put(plain[0])
    r2s.put(tagged, vlan_tci=7)
    r2s.put(plain[1])
    r2s.put(pushed)
    r2s.put(plain[2])
    r2s.dp.run()
    got = r2s.received(2)
    assert got == [
        plain[0],
        tagged[:12] + b"\x81\x00\x00\x07" + tagged[12:],
        plain[1],
        pushed[:12] + b"\x81\x00\x00\x05" + pushed[12:],
        plain[2],
    ]
    assert r2s.dp.recv_upcalls() == []


def test_execute_outside_run_sends_at_once(r2s: RingToSockets) -> None:
    frame = udp_frame()
    r2s.dp.execute(frame, 1, (Output(3),))
    assert r2s.received(3) == [frame]
    assert r2s.dp.ports()[3].stats.tx_packets == 1


def test_a_frame_elsewhere_in_its_ring_slot_is_read_where_the_kernel_put_it(
    r2s: RingToSockets,
) -> None:
    r2s.dp.flow_put(Match.of(make_key(in_port=1), full_mask("in_port")), (Output(2),))
    frames = [udp_frame(sport=i) for i in range(4)]
    r2s.put(frames[0])
    r2s.put(frames[1], mac=MAC_OFF + 30)  # not where the fast path looks first
    r2s.put(frames[2])
    r2s.put(frames[3], mac=MAC_OFF + 30)
    r2s.dp.run()
    assert r2s.received(2) == frames
    flow = r2s.dp.flow_get(Match.of(make_key(in_port=1), full_mask("in_port")))
    assert flow is not None and flow.stats.packets == 4
    assert flow.stats.bytes == sum(map(len, frames))
