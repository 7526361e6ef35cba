"""Linux plumbing for the netdev datapath: AF_PACKET sockets with a PACKET_MMAP
(TPACKET_V2) receive ring, TAP devices, and interface ioctls.

Only what ``netdev.py`` needs, with the kernel ABI constants in one place. Nothing here
knows about flows. Everything is stdlib (socket, mmap, fcntl, struct).

Ring layout (TPACKET_V2): ``frame_nr`` frames of ``frame_size`` bytes, laid out in
``block_nr`` blocks of ``block_size`` bytes. Frame ``i`` starts at ``i * frame_size``
with a 32-byte ``tpacket2_hdr`` whose ``tp_status`` word says who owns it: 0 (kernel)
or TP_STATUS_USER. Userspace reads frames in order and hands each back by writing 0.
The ring belongs to the socket, not to the mapping, so a process that receives the
socket's fd (SCM_RIGHTS) can mmap the same ring and carry on from the next index.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import mmap
import os
import socket
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hitless.datapath.errors import DatapathError

if TYPE_CHECKING:
    from hitless.datapath.base import DpPort

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
TPACKET_V2 = 1
TP_STATUS_USER = 0x1
TP_STATUS_LOSING = 0x4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_ALL = 0x0003

# struct tpacket2_hdr: status, len, snaplen, mac, net, sec, nsec, vlan_tci, vlan_tpid
TPACKET2_HDR = struct.Struct("<IIIHHIIHH4x")

# <linux/sockios.h>, <linux/if_tun.h>, <linux/if.h>
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
SIOCSIFHWADDR = 0x8924
ARPHRD_ETHER = 1
SIOCSIFTXQLEN = 0x8943
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_UP = 0x1
IFF_RUNNING = 0x40

PAGE = mmap.PAGESIZE
BLOCK_SIZE = 1 << 20  # 1 MiB blocks: few high-order allocations, little waste


@dataclass(frozen=True, slots=True)
class RingGeometry:
    """The ``tpacket_req`` a ring was created with (needed to map it again)."""

    block_size: int
    block_nr: int
    frame_size: int
    frame_nr: int

    @property
    def size(self) -> int:
        return self.block_size * self.block_nr

    @classmethod
    def for_port(cls, mtu: int, min_frames: int) -> RingGeometry:
        """Frames big enough for an MTU-sized frame plus headers (power of two), and
        at least ``min_frames`` of them, in whole 1 MiB blocks."""
        frame_size = 2048
        while frame_size < mtu + 18 + 96:  # Ethernet + tpacket2_hdr + sockaddr_ll
            frame_size *= 2
        block_size = max(BLOCK_SIZE, frame_size)
        per_block = block_size // frame_size
        block_nr = -(-min_frames // per_block)
        return cls(block_size, block_nr, frame_size, per_block * block_nr)

    def to_json(self) -> list[int]:
        return [self.block_size, self.block_nr, self.frame_size, self.frame_nr]

    @classmethod
    def from_json(cls, data: list[int]) -> RingGeometry:
        return cls(*(int(x) for x in data))


def no_such_device(name: str, err: int = errno.ENODEV) -> str:
    return f"could not open network device {name} ({os.strerror(err)})"


def _ifreq(name: str, payload: bytes = b"") -> bytes:
    return struct.pack("16s", name.encode()) + payload.ljust(24, b"\0")


def _ctl() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0)


def control_socket() -> socket.socket:
    """A socket for interface ioctls, to pass to ``if_flags``/``link_up`` by callers
    that ask often (creating one per call costs more than the ioctl)."""
    return _ctl()


def if_flags(name: str, ctl: socket.socket | None = None) -> int:
    """The interface's IFF_* flags; raises OSError if it does not exist."""
    if ctl is not None:
        return int(struct.unpack_from("H", fcntl.ioctl(ctl, SIOCGIFFLAGS, _ifreq(name)), 16)[0])
    with _ctl() as s:
        res = fcntl.ioctl(s, SIOCGIFFLAGS, _ifreq(name))
    return int(struct.unpack_from("H", res, 16)[0])


def if_set_up(name: str) -> None:
    with _ctl() as s:
        flags = struct.unpack_from("H", fcntl.ioctl(s, SIOCGIFFLAGS, _ifreq(name)), 16)[0]
        fcntl.ioctl(s, SIOCSIFFLAGS, _ifreq(name, struct.pack("H", flags | IFF_UP)))


def if_mtu(name: str, ctl: socket.socket | None = None) -> int:
    if ctl is not None:
        return int(struct.unpack_from("i", fcntl.ioctl(ctl, SIOCGIFMTU, _ifreq(name)), 16)[0])
    with _ctl() as s:
        res = fcntl.ioctl(s, SIOCGIFMTU, _ifreq(name))
    return int(struct.unpack_from("i", res, 16)[0])


def if_mac(name: str) -> bytes:
    with _ctl() as s:
        res = fcntl.ioctl(s, SIOCGIFHWADDR, _ifreq(name))
    return bytes(res[18:24])  # sockaddr: family (2 bytes) then the address


def if_set_mac(name: str, mac: bytes) -> None:
    """Set an Ethernet device's MAC address (SIOCSIFHWADDR)."""
    sockaddr = struct.pack("H", ARPHRD_ETHER) + bytes(mac).ljust(14, b"\0")
    with _ctl() as s:
        fcntl.ioctl(s, SIOCSIFHWADDR, _ifreq(name, sockaddr))


def set_internal_mac(port: DpPort | None, port_no: int, mac: bytes) -> DpPort:
    """``port`` (an internal port: Bridge other_config:hwaddr) once its device has the
    MAC address ``mac``; DatapathError if it is not an internal port or the kernel
    refuses."""
    if port is None or port.type != "internal":
        raise DatapathError(f"port {port_no} is not an internal port")
    try:
        if_set_mac(port.name, mac)
    except OSError as e:
        raise DatapathError(
            f"could not set {port.name}'s MAC address ({os.strerror(e.errno or 0)})"
        ) from None
    return dataclasses.replace(port, mac=bytes(mac))


def if_set_txqlen(name: str, qlen: int) -> None:
    with _ctl() as s:
        fcntl.ioctl(s, SIOCSIFTXQLEN, _ifreq(name, struct.pack("i", qlen)))


def link_up(name: str, ctl: socket.socket | None = None) -> bool:
    """Administratively up and with carrier (operstate up); False if it vanished."""
    try:
        flags = if_flags(name, ctl)
    except OSError:
        return False
    return flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING


def open_ring_socket(
    name: str, geometry: RingGeometry, bind: bool = True
) -> tuple[socket.socket, int]:
    """An AF_PACKET socket bound to ``name`` with a TPACKET_V2 rx ring; it ignores
    what it (or the host) sends on the device, and puts the device in promiscuous
    mode for as long as the socket lives. Returns (socket, ifindex). With
    ``bind=False`` it receives nothing until ``bind_ring_socket``."""
    ifindex = socket.if_nametoindex(name)  # OSError(ENODEV) if missing
    # Protocol 0: receive nothing until bound, so no frame bypasses the ring.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        sock.setsockopt(
            SOL_PACKET,
            PACKET_RX_RING,
            struct.pack(
                "IIII",
                geometry.block_size,
                geometry.block_nr,
                geometry.frame_size,
                geometry.frame_nr,
            ),
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.setsockopt(
            SOL_PACKET,
            PACKET_ADD_MEMBERSHIP,
            struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""),
        )
        if bind:
            bind_ring_socket(sock, name)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, ifindex


def bind_ring_socket(sock: socket.socket, name: str) -> None:
    """Start receiving every frame of ``name`` into the socket's ring."""
    sock.bind((name, ETH_P_ALL))


def map_ring(fd: int, geometry: RingGeometry) -> mmap.mmap:
    """Map a socket's rx ring (the same ring again, if another process mapped it): the
    mapping ``map_ahead`` made of the same socket's ring, if there is one of that size."""
    if _ahead:
        st = os.fstat(fd)
        got = _ahead.pop((st.st_dev, st.st_ino), None)
        if got is not None:
            early_fd, ring = got
            os.close(early_fd)  # the mapping holds the ring; ``fd`` is the socket's
            if len(ring) == geometry.size:
                return ring
            ring.close()
    return mmap.mmap(fd, geometry.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)


# Receive rings mapped before their sockets are adopted, by the socket's (st_dev,
# st_ino): (our descriptor of it, the mapping). The kernel inserts every page of a ring
# when it is mapped (2-3 ms for 48 MiB): a handoff's new process maps the rings the old
# one sent it early while that one still serves, not in the freeze (``map_ahead``,
# hitless.daemon.handoff_new), and ``map_ring`` takes them from here.
_ahead: dict[tuple[int, int], tuple[int, mmap.mmap]] = {}


def map_ahead(fd: int, size: int) -> bool:
    """Map the rx ring (``size`` bytes) of packet socket ``fd`` now, for a later
    ``map_ring`` of the same socket; the descriptor is ours from now on (closed by that
    ``map_ring`` or by ``drop_mapped_ahead``). False (and ``fd`` closed) if it cannot be
    mapped: ``map_ring`` then maps it as usual."""
    try:
        st = os.fstat(fd)
        ring = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    except (OSError, ValueError, OverflowError):
        os.close(fd)
        return False
    old = _ahead.pop((st.st_dev, st.st_ino), None)
    _ahead[(st.st_dev, st.st_ino)] = (fd, ring)
    if old is not None:  # the same socket twice: the newer mapping stays
        old[1].close()
        os.close(old[0])
    return True


def drop_mapped_ahead() -> int:
    """Unmap and close the rings mapped ahead that no ``map_ring`` took; how many."""
    n = len(_ahead)
    while _ahead:
        _, (fd, ring) = _ahead.popitem()
        ring.close()
        os.close(fd)
    return n


def packet_statistics(sock: socket.socket) -> tuple[int, int]:
    """(packets, drops) counted by the kernel since the last call (reading resets)."""
    packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    return packets, drops


def open_tap(name: str, txqlen: int) -> int:
    """Create (or attach to) TAP device ``name`` without packet info, bring it up, and
    return its non-blocking fd. The device is not persistent: it disappears when the
    last fd referring to it is closed (so a handed-over fd keeps it alive)."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI))
        if_set_txqlen(name, txqlen)
        if_set_up(name)
    except BaseException:
        os.close(fd)
        raise
    return fd


# ---------------------------------------------------------------------------------
# Batched transmit: sendmmsg(2) through libc, one system call for many frames.

_libc = ctypes.CDLL(None, use_errno=True)
_sendmmsg = _libc.sendmmsg
_sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
_sendmmsg.restype = ctypes.c_int
_IOVEC = struct.Struct("@PN")  # struct iovec: base, len
_MMSG = struct.Struct("@PI4xPNPNi4xI4x")  # struct mmsghdr: msghdr + msg_len
MSG_DONTWAIT = socket.MSG_DONTWAIT


def buffer_address(buf: mmap.mmap | bytearray) -> tuple[int, ctypes.c_char]:
    """The address of a writable buffer's first byte, and the ctypes object that pins
    it (the buffer cannot be closed or resized while that object lives)."""
    anchor = ctypes.c_char.from_buffer(buf)
    return ctypes.addressof(anchor), anchor


class TxBatch:
    """Frames queued for one AF_PACKET socket, sent with one ``sendmmsg`` per flush.

    The batch holds addresses, not bytes: each queued frame is ``(address, length)`` of
    memory the caller keeps unchanged until ``flush`` returns (a frame still in an rx
    ring, or a copy in ``stage``'s buffer). ``n`` frames are queued; ``cap`` fit."""

    __slots__ = ("sock", "fd", "cap", "n", "nbytes", "iov", "_msgs", "_msgs_addr", "_anchors")

    def __init__(self, sock: socket.socket, cap: int) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.cap = cap
        self.n = 0
        self.nbytes = 0
        self.iov = bytearray(_IOVEC.size * cap)
        self._msgs = bytearray(_MMSG.size * cap)
        iov_addr, iov_anchor = buffer_address(self.iov)
        self._msgs_addr, msgs_anchor = buffer_address(self._msgs)
        self._anchors = (iov_anchor, msgs_anchor)
        for k in range(cap):  # each message: no address, one iovec of its own
            _MMSG.pack_into(self._msgs, k * _MMSG.size, 0, 0, iov_addr + k * _IOVEC.size, 1,
                            0, 0, 0, 0)  # fmt: skip

    def flush(self) -> tuple[int, int, int]:
        """Send what is queued; returns (frames sent, bytes sent, frames dropped).
        A frame the kernel refuses (e.g. the device's queue is full) is dropped and
        the rest are still sent."""
        n, nbytes = self.n, self.nbytes
        self.n = self.nbytes = 0
        sent = dropped = 0
        while sent + dropped < n:
            done = sent + dropped
            r = _sendmmsg(self.fd, self._msgs_addr + done * _MMSG.size, n - done, MSG_DONTWAIT)
            if r > 0:
                sent += r
            else:  # the first remaining frame failed: drop it and go on
                nbytes -= _IOVEC.unpack_from(self.iov, done * _IOVEC.size)[1]
                dropped += 1
        if dropped:
            # sendmmsg parks the error of a partly sent batch on the socket, where
            # poll() would report it (POLLERR) until read: read it.
            with contextlib.suppress(OSError):
                self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        return sent, nbytes, dropped
