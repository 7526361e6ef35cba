"""The netdev datapath: a userspace datapath over AF_PACKET sockets.

Each attached port is either

* ``system``: an existing device, read through an AF_PACKET socket with a PACKET_MMAP
  (TPACKET_V2) receive ring and written through the same socket (qdisc bypassed;
  ``sendmmsg`` batches, see below). The socket ignores outgoing frames (PACKET_IGNORE_OUTGOING), so the
  datapath never sees what it sent, and keeps the device promiscuous while it lives.
* ``internal``: a TAP device created with the port's name (the bridge's local port);
  frames are read from and written to the tap fd.
* ``patch``: no device; a frame output to it is received by its peer patch port,
  usually on another datapath instance in this process, and goes through that
  datapath (lookup, upcall on a miss): see hitless.datapath.patch. Its link is up
  while the peer is connected.

Fast path (``run``): for each port, read the frames the kernel has filled, re-insert
the 802.1Q tag the kernel moved into ``tp_vlan_tci``, extract the flow key, look it up
in the megaflow table (exact-match cache first), count, and apply the flow's
precompiled plan. For untagged IPv4 frames with a 20-byte header a per-port header
cache comes first: the key depends only on fixed byte ranges of such a frame, so those
bytes (one struct unpack, read in place in the ring) index the flow directly and
``extract_key`` runs once per flow, not per packet; the cache is cleared whenever a
flow is added or removed. A plan for "output to these ports" is a tuple of port
numbers; any other action list goes through the generic interpreter. A miss queues an
``Upcall``.

Transmit is batched: inside ``run`` every output to a socket port is queued (an
iovec) and each port's queue goes out with one ``sendmmsg`` when the input port's
frames are done. A frame forwarded unchanged is not copied at all: its iovec points
into the rx ring, and the ring frames are handed back to the kernel only after the
flush. Frames that are not in a ring (tag re-inserted, actions applied, read from a
TAP) are copied into a staging buffer and queued behind the others, so per-port order
is arrival order. Measured on veth (bench/datapath.py, 64-byte UDP through the real
daemon, same invocation): 5.7 -> 4.2 us of switch CPU per forwarded frame against one
``send`` per frame; more than half of what is left is the kernel delivering the frame
to the receiving host's socket (veth runs it in the transmitting process), which no
batching removes. A PACKET_TX_RING was measured too (veth, 60-byte frames, one
``send(MSG_DONTWAIT)`` kick per 64 frames): 2.1-2.2 us per frame against 2.4 for one
``send`` each and 1.5 for ``sendmmsg`` of 64 prepared frames; a TX ring needs every
frame copied into it and its status words written and polled from Python, whereas
``sendmmsg`` iovecs point at the rx ring, so it is not used. Outside
``run`` (``execute`` from the upcall handler) a frame is sent at once. TAP devices
are written one frame per ``write``. ``ports()`` refreshes link states and the
kernel's drop counters at most every ``LINK_REFRESH`` seconds (the daemon asks every
loop iteration).

Sizing: a port's rx ring holds ``RING_FRAMES`` (24,576) frames of 2 KiB (48 MiB for a
1500-byte MTU), so a process that stops reading for 2 s while 10,000 packets/s arrive
on the port loses nothing (20,000 frames wait in the ring; 2.4 s of headroom). TAP
devices get a transmit queue of the same length. Bigger MTUs get bigger frames.

Handoff: ``export_handles`` (between two ``run`` calls) returns the socket and tap fds
plus a typed record (``hitless.state.handles.NetdevHandlesV1``): per port its number,
name, type, ring geometry and the index of the next frame to read (a patch port: its
peer, and no fd); the upcalls not yet collected (the megaflows travel apart, as the
handoff's typed flow records); the meters' token buckets (restored by ``meter_adopt`` once the bridge has
pushed the meters again). Ownership of the kernel objects passes with the fds: the
exporter sends them (SCM_RIGHTS gives the receiver its own references) and may then
``close()``, which only closes its own copies. A socket's ring lives as long as any fd
refers to it, and a TAP device created here is not persistent, so it too lives exactly
as long as an fd does. ``adopt`` maps the same rings again and continues at the exported
indices: frames that arrived meanwhile wait in the ring, none is read twice.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hitless.datapath import afpacket
from hitless.datapath.actions import (
    Action,
    Output,
    actions_from_json,
)
from hitless.datapath.base import (
    Datapath,
    DatapathError,
    DpFlow,
    DpPort,
    FlowStats,
    InProcessMeters,
    InProcessRecirc,
    LookupStats,
    PortStats,
    Upcall,
    new_port_number,
)
from hitless.datapath.megaflow import MegaflowTable, recorded_hits
from hitless.datapath.meters import MeterTable
from hitless.datapath.patch import patch_peer
from hitless.datapath.upcallq import FairUpcallQueue, PortQueueStats
from hitless.packet.flow import CT_OFF, Match, extract_key, widen
from hitless.state.handles import Handles, NetdevHandlesV1, NetdevPortV1, UpcallV1

log = logging.getLogger(__name__)

RING_FRAMES = 24576
BUDGET = 512  # frames per port per run()
TX_BATCH = BUDGET  # frames per sendmmsg (each read frame is queued at most once per port)
# ports() refreshes link states and the kernel's drop counters at most this often
# (seconds): the daemon asks every loop iteration, and the ioctls would then cost more
# than forwarding a packet.
LINK_REFRESH = 0.1
MAX_UPCALLS = 16384  # queued misses beyond this are dropped (and counted)
# One port's queued misses beyond this are dropped (and counted for that port): a port
# flooding new flows cannot take the whole queue (hitless.datapath.upcallq). Above the
# BUDGET frames one run() reads from a port, so a burst the daemon drains each loop
# turn never reaches it; the rest of a burst waits in the port's receive ring.
MAX_UPCALLS_PER_PORT = 4096

_VLAN = struct.Struct("<HH")  # tp_vlan_tci, tp_vlan_tpid at offset 24
CACHE_SIZE = 65536
STAGE_SIZE = 1 << 20  # bytes for copies of frames queued for transmit during run()
# The bytes extract_key reads from an untagged IPv4 frame with a 20-byte header:
# Ethernet addresses, EtherType + version/IHL + TOS (one word: 0x080045xx for these
# frames), frag field, TTL, protocol, addresses + L4 ports; and TCP flags for TCP. Total
# length, IP id and checksum are skipped (they vary per packet).
#
# One little-endian unpack reads a ring frame's tpacket2_hdr (status, snaplen, mac)
# and those bytes, assuming the frame starts at MAC_OFF (where the kernel puts an
# Ethernet frame in a TPACKET_V2 ring; checked per frame). Fields 3.. are the cache key
# (field 4 is 0x450008 | tos << 24 for these frames, field 7 the IP protocol).
MAC_OFF = 66
_FRAME = struct.Struct("<I4xIH52x12sI4xHBB2x12s").unpack_from
_FRAME_TCP = struct.Struct("<I4xIH52x12sI4xHBB2x12s8xH").unpack_from
_LEN = struct.Struct("<I").unpack_from  # tpacket2_hdr.tp_len: the frame's real length
_ZEROS = memoryview(bytes(4 * 65536)).cast("I")  # status words to hand frames back
_IOV = struct.Struct("@PN").pack_into  # struct iovec
_PRIORITY = struct.Struct("=I")  # an SO_PRIORITY control message's payload
_VLAN_VALID = afpacket.TP_STATUS_VLAN_VALID
_TPID_VALID = afpacket.TP_STATUS_VLAN_TPID_VALID


class _Flow(DpFlow):
    """A DpFlow with its precompiled plan: a tuple of output ports when the actions are
    only outputs, else None (use the generic interpreter)."""

    __slots__ = ("plan",)

    plan: tuple[int, ...] | None


def _patch_mac(port_no: int) -> bytes:
    """A locally administered address for a device-less (patch) port."""
    return bytes((0x02, 0, 0, 0, port_no >> 8 & 0xFF, port_no & 0xFF))


def _compile(actions: tuple[Action, ...]) -> tuple[int, ...] | None:
    if all(type(a) is Output for a in actions):
        return tuple(a.port for a in actions)  # type: ignore[union-attr]
    return None


def _make_flow(
    match: Match, actions: tuple[Action, ...], stats: FlowStats, created: float
) -> _Flow:
    f = _Flow(match, actions, stats, created)
    f.plan = _compile(actions)
    return f


class _Port:
    """Everything the datapath holds for one attached device."""

    __slots__ = (
        "dp", "sock", "fd", "ring", "geometry", "head", "ifindex", "cache", "tx", "base",
        "words", "_anchor", "grow", "resync",
    )  # fmt: skip

    def __init__(
        self,
        dp: DpPort,
        fd: int,
        sock: socket.socket | None = None,
        ring: mmap.mmap | None = None,
        geometry: afpacket.RingGeometry | None = None,
        head: int = 0,
        ifindex: int = 0,
    ) -> None:
        self.dp = dp
        self.fd = fd
        self.sock = sock
        self.ring = ring
        self.geometry = geometry
        self.head = head
        self.ifindex = ifindex
        # Header cache: the bytes extract_key reads from an untagged IPv4 frame with a
        # 20-byte header -> its megaflow (see _run_ring). Cleared when flows change.
        self.cache: dict[tuple[bytes | int, ...], DpFlow] = {}
        # Frames queued for this port's socket during run(), sent in one sendmmsg.
        self.tx = afpacket.TxBatch(sock, TX_BATCH) if sock is not None else None
        # The ring's address: queued frames point into it (no copy) until flushed.
        self.base = 0
        self._anchor: object = None
        # The ring as 32-bit words: frames are handed back with strided assignments.
        self.words: memoryview | None = None
        self.grow = False  # a frame too long for the ring arrived: resize it
        # Adopted after a crash: ``head`` is not known (the owner died between two
        # mirrors); the frames waiting decide it (``NetdevDatapath._resync``).
        self.resync = False
        if ring is not None:
            self.base, self._anchor = afpacket.buffer_address(ring)
            self.words = memoryview(ring).cast("I")

    def sender(self) -> Callable[[bytes], object]:
        if self.sock is not None:
            return self.sock.send
        fd = self.fd
        return lambda data: os.write(fd, data)

    def release(self, close_fds: bool) -> None:
        self.tx = None
        self._anchor = None  # unpins the ring
        if self.words is not None:
            self.words.release()
            self.words = None
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.sock is not None:
            if close_fds:
                self.sock.close()
            else:
                self.sock.detach()
            self.sock = None
        elif close_fds and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class NetdevDatapath(InProcessRecirc, InProcessMeters, Datapath):
    type = "netdev"

    def __init__(
        self, name: str, ring_frames: int = RING_FRAMES, max_upcalls: int = MAX_UPCALLS
    ) -> None:
        super().__init__(name)
        self.ring_frames = ring_frames
        self.max_upcalls = max_upcalls
        self._ports: dict[int, _Port] = {}
        self._send: dict[int, Callable[[bytes], object]] = {}
        self._tx: dict[int, afpacket.TxBatch] = {}  # ports with a socket: their batch
        # Inside run() outputs are queued (self._tx) and sent when the port's frames are
        # done; frames not in a ring are copied into the stage buffer meanwhile.
        self._batching = False
        self._stage = bytearray(STAGE_SIZE)
        self._stage_addr, self._stage_anchor = afpacket.buffer_address(self._stage)
        self._stage_pos = 0
        self._flows = MegaflowTable()
        self.meters = MeterTable()
        # Misses per input port, bounded per port, served one port at a time in turn.
        self._upcalls = FairUpcallQueue(max_upcalls, min(max_upcalls, MAX_UPCALLS_PER_PORT))
        self._more = False  # a port had more frames than the budget in the last run()
        self._frozen = False
        # Fault injection only (hitless.daemon.faults "duplicate"): this many batches
        # are sent twice, as if two processes forwarded the same frames.
        self.duplicate_batches = 0
        self._ctl: socket.socket | None = None  # for the link-state ioctls
        self._links_at = float("-inf")  # monotonic time of the last refresh
        self.n_hit = 0
        self.n_missed = 0
        self.n_lost = 0  # misses dropped because the upcall queue was full
        self.n_truncated = 0  # frames longer than their port's ring frames (dropped)
        self._check_mtu = False

    # Ports ---------------------------------------------------------------------
    def port_add(
        self,
        name: str,
        port_no: int | None = None,
        type: str = "system",
        options: Mapping[str, str] | None = None,
    ) -> int:
        port_no = new_port_number(
            self.name, name, port_no, {n: p.dp.name for n, p in self._ports.items()}
        )
        if len(name.encode()) > 15 or not name:
            raise DatapathError(f"could not open network device {name!r} (invalid name)")
        if type == "system":
            port = self._open_system(name, port_no)
        elif type == "internal":
            port = self._open_internal(name, port_no)
        elif type == "patch":
            peer = patch_peer(name, options)
            port = _Port(DpPort(port_no, name, "patch", False, _patch_mac(port_no), peer=peer), -1)
        else:
            raise DatapathError(
                f"port type {type!r} of {name} is not supported by the netdev datapath "
                "(supported: system, internal, patch)"
            )
        self._attach(port)
        return port_no

    def _attach(self, port: _Port) -> None:
        d = port.dp
        n = d.port_no
        self._ports[n] = port
        if d.peer is not None:
            self._send[n] = self._patch_sender(d.name)
            self.patch_panel.plug(d.name, d.peer, self, n)
        else:
            self._send[n] = port.sender()
        if port.tx is not None:
            self._tx[n] = port.tx

    def _patch_sender(self, name: str) -> Callable[[bytes], object]:
        send = self.patch_panel.send

        def sender(data: bytes) -> None:
            if not send(name, data):
                raise OSError(errno.ENOTCONN, "patch port without a connected peer")

        return sender

    def _unplug(self, port: _Port) -> None:
        if port.dp.peer is not None:
            self.patch_panel.unplug(port.dp.name, self)

    def _open_system(self, name: str, port_no: int) -> _Port:
        try:
            mtu = afpacket.if_mtu(name)
            geometry = afpacket.RingGeometry.for_port(mtu, self.ring_frames)
            sock, ifindex = afpacket.open_ring_socket(name, geometry)
        except OSError as e:
            raise DatapathError(afpacket.no_such_device(name, e.errno or errno.ENODEV)) from None
        try:
            ring = afpacket.map_ring(sock.fileno(), geometry)
            mac = afpacket.if_mac(name)
        except OSError as e:
            sock.close()
            raise DatapathError(
                f"could not set up the receive ring of {name} ({os.strerror(e.errno or 0)})"
            ) from None
        dp = DpPort(port_no, name, "system", afpacket.link_up(name), mac)
        return _Port(dp, sock.fileno(), sock, ring, geometry, 0, ifindex)

    def _open_internal(self, name: str, port_no: int) -> _Port:
        try:
            fd = afpacket.open_tap(name, self.ring_frames)
            mac = afpacket.if_mac(name)
        except OSError as e:
            raise DatapathError(
                f"could not create internal device {name} ({os.strerror(e.errno or 0)})"
            ) from None
        dp = DpPort(port_no, name, "internal", afpacket.link_up(name), mac)
        return _Port(dp, fd, ifindex=socket.if_nametoindex(name))

    def port_set_mac(self, port_no: int, mac: bytes) -> None:
        """The internal port's TAP device gets ``mac`` (a TAP may change it while up)."""
        port = self._ports.get(port_no)
        new = afpacket.set_internal_mac(None if port is None else port.dp, port_no, mac)
        if port is not None:
            port.dp = new

    def port_del(self, port_no: int) -> None:
        port = self._ports.pop(port_no, None)
        self._send.pop(port_no, None)
        self._tx.pop(port_no, None)
        self._upcalls.forget(port_no)
        if port is not None:
            self._unplug(port)
            port.release(close_fds=True)

    def refresh_links(self) -> None:
        self._links_at = float("-inf")
        self._check_mtu = True  # a link changed (or a frame was truncated): MTUs too

    def _truncated(self, port: _Port) -> None:
        """A frame longer than the ring's frames arrived (the device's MTU grew after it
        was attached): drop it, count it, and resize the ring at the next port refresh."""
        port.dp.stats.rx_dropped += 1
        self.n_truncated += 1
        if not port.grow:
            port.grow = True
            log.warning(
                "%s: %s: a frame longer than its receive ring's %d-byte frames was dropped; "
                "resizing the ring for the device's MTU",
                self.name,
                port.dp.name,
                port.geometry.frame_size if port.geometry is not None else 0,
            )
        self.refresh_links()

    def _fit_ring(self, port_no: int, port: _Port) -> None:
        """Give ``port`` a ring whose frames hold its device's current MTU, if the one it
        has is too small. The new socket is set up unbound, the old ring drained and
        closed, then the new socket bound: no frame is delivered twice; frames arriving
        in the few microseconds between close and bind are not received."""
        assert port.geometry is not None and self._ctl is not None
        try:
            mtu = afpacket.if_mtu(port.dp.name, self._ctl)
        except OSError:
            return
        geometry = afpacket.RingGeometry.for_port(mtu, self.ring_frames)
        if geometry.frame_size <= port.geometry.frame_size:
            port.grow = False
            return
        try:
            sock, ifindex = afpacket.open_ring_socket(port.dp.name, geometry, bind=False)
        except OSError as e:
            log.warning("%s: could not resize the ring of %s: %s", self.name, port.dp.name, e)
            return
        try:
            ring = afpacket.map_ring(sock.fileno(), geometry)
        except OSError as e:
            sock.close()
            log.warning("%s: could not map the new ring of %s: %s", self.name, port.dp.name, e)
            return
        now = self.clock()
        while self._run_ring(port, now):
            pass
        new = _Port(port.dp, sock.fileno(), sock, ring, geometry, 0, ifindex)
        port.release(close_fds=True)
        try:
            afpacket.bind_ring_socket(sock, port.dp.name)
        except OSError as e:
            log.warning("%s: could not bind the new ring of %s: %s", self.name, port.dp.name, e)
        self._ports[port_no] = new
        self._send[port_no] = new.sender()
        if new.tx is not None:
            self._tx[port_no] = new.tx
        log.info(
            "%s: %s: receive ring resized to %d-byte frames (MTU %d)",
            self.name,
            port.dp.name,
            geometry.frame_size,
            mtu,
        )

    def port_use_qdisc(self, port_no: int, use: bool) -> None:
        port = self._ports.get(port_no)
        if port is not None and port.sock is not None:
            port.sock.setsockopt(afpacket.SOL_PACKET, afpacket.PACKET_QDISC_BYPASS, 0 if use else 1)

    def ports(self) -> dict[int, DpPort]:
        now = self.clock()
        if now - self._links_at >= LINK_REFRESH:
            self._links_at = now
            self._refresh_ports()
        for p in self._ports.values():
            d = p.dp
            if d.peer is not None:  # a patch port: up while its peer is connected
                d.error = self.patch_panel.error(d.name)
                d.link_up = d.error is None
        return {n: p.dp for n, p in self._ports.items()}

    def _refresh_ports(self) -> None:
        if self._ctl is None:
            self._ctl = afpacket.control_socket()
        check_mtu, self._check_mtu = self._check_mtu, False
        for n, p in list(self._ports.items()):
            if p.dp.peer is not None:
                continue
            p.dp.link_up = afpacket.link_up(p.dp.name, self._ctl)
            if p.geometry is not None and (check_mtu or p.grow):
                self._fit_ring(n, p)
            if p.sock is not None:
                try:
                    _, drops = afpacket.packet_statistics(p.sock)
                except OSError:
                    drops = 0
                p.dp.stats.rx_dropped += drops

    # Flows ---------------------------------------------------------------------
    def flow_put(
        self, match: Match, actions: tuple[Action, ...], reset_stats: bool = False
    ) -> None:
        old = self._flows.get(match)
        if isinstance(old, _Flow):
            old.actions = actions
            old.plan = _compile(actions)
            self._flows.touch(match)
            if reset_stats:
                old.stats = FlowStats()
            return
        self._flows.insert(_make_flow(match, actions, FlowStats(), self.clock()))
        self._invalidate()

    def flow_del(self, match: Match) -> DpFlow | None:
        flow = self._flows.remove(match)
        if flow is not None:
            self._invalidate()
        return flow

    def _invalidate(self) -> None:
        for port in self._ports.values():
            port.cache.clear()

    def flow_count(self) -> int:
        return len(self._flows)

    def flow_get(self, match: Match) -> DpFlow | None:
        return self._flows.get(match)

    def flow_dump(self) -> Iterable[DpFlow]:
        return iter(self._flows)

    # Meters --------------------------------------------------------------------
    # Flows with a Meter action take the generic interpreter (their plan is None).
    def _meter_now(self) -> float:
        return self.clock()

    # Packets -------------------------------------------------------------------
    def execute(
        self, packet: bytes, in_port: int, actions: tuple[Action, ...], key: bytes | None = None
    ) -> None:
        self._apply(packet, in_port, key, actions)

    def _output(self, port_no: int, data: bytes) -> None:
        port = self._ports.get(port_no)
        if port is None:
            return
        tb = port.tx
        if self._batching and tb is not None:
            # Queue a copy behind the frames already queued for the port (order kept).
            size = len(data)
            pos = self._stage_pos
            if tb.n == tb.cap or pos + size > STAGE_SIZE:
                self._flush_tx()
                pos = 0
            if size <= STAGE_SIZE:
                self._stage[pos : pos + size] = data
                _IOV(tb.iov, tb.n << 4, self._stage_addr + pos, size)
                tb.n += 1
                tb.nbytes += size
                self._stage_pos = pos + size
                return
        st = port.dp.stats
        try:
            self._send[port_no](data)
            if self.duplicate_batches and port.dp.type != "patch":
                # Fault injection: a frame sent on its own (outside a batch: the frames
                # a patch port's peer delivers, an upcall's actions) goes out twice too.
                self.duplicate_batches -= 1
                self._send[port_no](data)
        except OSError:
            st.tx_dropped += 1
            return
        st.tx_packets += 1
        st.tx_bytes += len(data)

    def _output_priority(self, port_no: int, data: bytes, priority: int) -> None:
        """A frame with a socket priority (``SetPriority``: OpenFlow's set_queue) goes out
        on its own with an SO_PRIORITY control message, so the device's qdisc puts it in
        that class (tc classifies by priority ``1:<queue+1>`` before any filter). What
        is queued for the ports goes first: order is kept. TAP and patch ports have no
        qdisc of ours: the frame goes out as any other."""
        port = self._ports.get(port_no)
        if port is None or port.sock is None:
            self._output(port_no, data)
            return
        if self._batching:
            self._flush_tx()
        st = port.dp.stats
        ancillary = [(socket.SOL_SOCKET, socket.SO_PRIORITY, _PRIORITY.pack(priority))]
        try:
            port.sock.sendmsg([data], ancillary, socket.MSG_DONTWAIT)
            if self.duplicate_batches:
                # Fault injection: a frame sent with a priority (set_queue, enqueue)
                # goes out twice too, as a frame sent on its own does.
                self.duplicate_batches -= 1
                port.sock.sendmsg([data], ancillary, socket.MSG_DONTWAIT)
        except OSError:
            st.tx_dropped += 1
            return
        st.tx_packets += 1
        st.tx_bytes += len(data)

    def _flush_tx(self) -> None:
        """Send every queued frame (one sendmmsg per port with frames queued)."""
        for port_no, tb in self._tx.items():
            if tb.n:
                if self.duplicate_batches:  # fault injection: send the same batch twice
                    self.duplicate_batches -= 1
                    n, nb = tb.n, tb.nbytes
                    tb.flush()
                    tb.n, tb.nbytes = n, nb
                sent, nbytes, dropped = tb.flush()
                st = self._ports[port_no].dp.stats
                st.tx_packets += sent
                st.tx_bytes += nbytes
                st.tx_dropped += dropped
        self._stage_pos = 0

    def _queue(self, upcall: Upcall) -> None:
        if not self._upcalls.push(upcall):
            self.n_lost += 1
            port = self._ports.get(upcall.in_port)
            if port is not None:
                port.dp.stats.rx_dropped += 1

    def lookup_stats(self) -> LookupStats:
        return LookupStats(self.n_hit, self.n_missed, self.n_lost)

    def recv_upcalls(self, max_count: int = 64) -> list[Upcall]:
        """At most ``max_count`` queued misses, one input port at a time in turn."""
        return self._upcalls.pop(max_count)

    def upcall_queues(self) -> dict[int, PortQueueStats]:
        """Per input port: upcalls queued now, the deepest queue seen, handed over,
        dropped at the port's bound (``upcall/show``)."""
        return dict(self._upcalls.stats)

    def show_lines(self) -> list[str]:
        """dpctl/show: the upcall queues' bounds and the ports whose misses were
        dropped because their queue was full."""
        q = self._upcalls
        names = {n: p.dp.name for n, p in self._ports.items()}
        drops = ", ".join(
            f"{names.get(n, n)}:{st.dropped}" for n, st in sorted(q.stats.items()) if st.dropped
        )
        return [
            f"upcall queues: {len(q)} queued (limit {q.per_port} per port, {q.total} in all)"
            + (f"; dropped per port: {drops}" if drops else "")
        ]

    # Event loop ------------------------------------------------------------------
    def run(self) -> None:
        """Forward what is waiting now: at most BUDGET frames per port."""
        if self._frozen:
            return
        now = self.clock()
        more = False
        if len(self.conntrack):
            self.conntrack.sweep(now)
        self._batching = True
        try:
            with self.patch_panel.batch():  # peers' output flushed at its end
                upcalls = self._upcalls
                for port in list(self._ports.values()):
                    if upcalls.queued(port.dp.port_no) >= BUDGET:
                        # Its misses of earlier turns are not handled yet: leave its frames
                        # in its ring (backpressure, as a full rx queue) rather than queue
                        # more, so one port's flood of new flows costs the loop at most
                        # its share of upcalls per turn and loses nothing the ring holds.
                        upcalls.defer(port.dp.port_no)
                        more = True
                        continue
                    if port.ring is not None:
                        n = self._run_ring(port, now)
                    elif port.fd < 0:  # a patch port: its frames come from the peer
                        continue
                    else:
                        n = self._run_tap(port, now)
                    if n >= BUDGET:
                        more = True
                self._flush_tx()
        finally:
            self._flush_tx()  # a no-op unless a send failed half-way
            self._batching = False
        self._more = more

    def _forward(self, port_no: int, pkt: bytes, now: float) -> None:
        """The per-packet fast path, shared by rings and taps (inlined in _run_ring)."""
        key = extract_key(pkt, port_no)
        flow = self._flows.lookup(key)
        if flow is None:
            self.n_missed += 1
            self._queue(Upcall(port_no, pkt, key))
            return
        self.n_hit += 1
        st = flow.stats
        st.packets += 1
        st.bytes += len(pkt)
        st.used = now
        st.tcp_flags |= key[72] << 8 | key[73]
        if self._flows.hits is not None:
            self._flows.hits.add(flow.match)
        plan = flow.plan  # type: ignore[attr-defined]
        if plan is None:
            self._apply(pkt, port_no, key, flow.actions)
        else:
            for o in plan:
                self._output(o, pkt)

    def patch_input(self, port_no: int, packet: bytes) -> None:
        """A frame from the peer of patch port ``port_no``: forwarded as if received."""
        port = self._ports.get(port_no)
        if port is None or self._frozen:
            return
        port.dp.stats.rx_packets += 1
        port.dp.stats.rx_bytes += len(packet)
        if not self._batching and self.patch_panel.batching:
            # Inside the peer's batch: queue the output, flushed when the batch ends.
            self._batching = True
            self.patch_panel.defer(self._end_batch)
        self._forward(port_no, packet, self.clock())

    def _end_batch(self) -> None:
        try:
            self._flush_tx()
        finally:
            self._batching = False

    def _run_tap(self, port: _Port, now: float) -> int:
        n = 0
        nbytes = 0
        fd = port.fd
        port_no = port.dp.port_no
        while n < BUDGET:
            try:
                pkt = os.read(fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                port.dp.stats.rx_dropped += 1
                break
            n += 1
            nbytes += len(pkt)
            self._forward(port_no, pkt, now)
        port.dp.stats.rx_packets += n
        port.dp.stats.rx_bytes += nbytes
        return n

    def _resync(self, port: _Port) -> bool:
        """Find where to read a ring adopted after its owner crashed (``head`` unknown):
        at the oldest frame the kernel filled (by its timestamp), once there is one.
        The kernel fills frames in order from its own position, which is never exported;
        until a frame arrives there is nothing to read. Returns whether it is known."""
        assert port.geometry is not None and port.words is not None
        r, _, _ = select.select([port.fd], [], [], 0)
        if not r:
            return False
        w = port.geometry.frame_size >> 2
        words = port.words
        status = words[0::w].tolist()
        # tpacket2_hdr: tp_sec at byte 16, tp_nsec at 20
        sec, nsec = words[4::w].tolist(), words[5::w].tolist()
        filled = [i for i, st in enumerate(status) if st & 1]
        if not filled:
            return False
        port.head = min(filled, key=lambda i: (sec[i], nsec[i], i))
        port.resync = False
        log.info(
            "port %s: ring adopted after a crash: %d frames waiting, reading from frame %d",
            port.dp.name,
            len(filled),
            port.head,
        )
        return True

    def _run_ring(self, port: _Port, now: float) -> int:
        if port.resync and not self._resync(port):
            return 0
        ring = port.ring
        geometry = port.geometry
        words = port.words
        assert ring is not None and geometry is not None and words is not None
        fs = geometry.frame_size
        nr = geometry.frame_nr
        first = i = port.head
        port_no = port.dp.port_no
        lookup = self._flows.lookup
        unpack = _FRAME
        iov = _IOV
        txs = self._tx
        base = port.base + MAC_OFF
        cache = port.cache
        budget = min(BUDGET, nr)  # frames stay ours until the end: never lap the ring
        n = nbytes = hits = 0
        # Consecutive frames of one flow are counted together (committed on a change).
        last: DpFlow | None = None
        run_n = run_bytes = 0
        tracked = self._flows.hits  # a handoff's pre-copy is out: record the flows hit
        try:
            while n < budget:
                off = i * fs
                t = unpack(ring, off)
                status = t[0]
                if not status & 1:  # TP_STATUS_USER
                    break
                i += 1
                if i == nr:
                    i = 0
                n += 1
                size = t[1]
                nbytes += size
                if size + t[2] >= fs and _LEN(ring, off + 4)[0] > size:
                    self._truncated(port)  # longer than the ring's frames: never forward it
                    continue
                # Untagged IPv4 with a 20-byte header: the key depends only on these
                # bytes (addresses, ports, tos, ttl, frag, proto; TCP flags for TCP),
                # so they index a per-port cache and extract_key runs once per flow.
                if (
                    status & _VLAN_VALID
                    or size < 48
                    or t[2] != MAC_OFF
                    or t[4] & 0xFFFFFF != 0x450008
                ):
                    p = off + t[2]
                    pkt = ring[p : p + size]
                    if status & _VLAN_VALID:  # put back the tag the kernel took off
                        tci, tpid = _VLAN.unpack_from(ring, off + 24)
                        if not status & _TPID_VALID:
                            tpid = 0x8100
                        pkt = pkt[:12] + struct.pack("!HH", tpid, tci) + pkt[12:]
                    self._forward(port_no, pkt, now)
                    continue
                tcp = t[7] == 6
                hk = _FRAME_TCP(ring, off)[3:] if tcp else t[3:]
                flow = cache.get(hk)
                if flow is None:
                    p = off + MAC_OFF
                    pkt = ring[p : p + size]
                    key = extract_key(pkt, port_no)
                    flow = lookup(key)
                    if flow is None:
                        self.n_missed += 1
                        self._queue(Upcall(port_no, pkt, key))
                        continue
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    cache[hk] = flow
                hits += 1
                if flow is not last:
                    if last is not None:
                        st = last.stats
                        st.packets += run_n
                        st.bytes += run_bytes
                        st.used = now
                        if tracked is not None:
                            tracked.add(last.match)
                    last = flow
                    run_n = run_bytes = 0
                run_n += 1
                run_bytes += size
                if tcp:
                    f = hk[-1]
                    flow.stats.tcp_flags |= (f & 0x0F) << 8 | f >> 8  # type: ignore[operator]
                plan = flow.plan  # type: ignore[attr-defined]
                if plan is None:
                    p = off + MAC_OFF
                    self._apply(ring[p : p + size], port_no, None, flow.actions)
                    continue
                for o in plan:  # queue the frame where it lies in the ring
                    tb = txs.get(o)
                    if tb is None:  # a TAP device (or gone)
                        p = off + MAC_OFF
                        self._output(o, ring[p : p + size])
                        continue
                    k = tb.n
                    if k == tb.cap:
                        self._flush_tx()
                        k = 0
                    iov(tb.iov, k << 4, base + off, size)
                    tb.n = k + 1
                    tb.nbytes += size
        finally:
            if last is not None:
                st = last.stats
                st.packets += run_n
                st.bytes += run_bytes
                st.used = now
                if tracked is not None:
                    tracked.add(last.match)
            try:
                self._flush_tx()
            finally:
                # Only now hand the frames back to the kernel (queued frames point there):
                # zero their status words, one strided assignment per contiguous run.
                w = fs >> 2
                k = min(n, nr - first)
                words[first * w : (first + k) * w : w] = _ZEROS[:k]
                if n > k:
                    words[0 : (n - k) * w : w] = _ZEROS[: n - k]
                port.head = i
                port.dp.stats.rx_packets += n
                port.dp.stats.rx_bytes += nbytes
                self.n_hit += hits
        return n

    def wait(self, poller: Any) -> None:
        if self._more or self._upcalls:
            poller.immediate_wake()
        for port in self._ports.values():
            if port.fd >= 0:
                poller.fd_wait(port.fd, select.POLLIN)

    def fds(self) -> list[int]:
        """The fds to poll for input (for loops that do not use ovs.poller)."""
        return [p.fd for p in self._ports.values() if p.fd >= 0]

    # Lifetime / handoff ----------------------------------------------------------
    def close(self) -> None:
        """Close this process's sockets and tap fds. TAP devices created here vanish
        with their last fd; devices handed to another process stay with it."""
        for port in self._ports.values():
            self._unplug(port)
            port.release(close_fds=True)
        self._ports.clear()
        self._send.clear()
        self._tx.clear()
        self._close_ctl()

    def detach(self) -> None:
        """Drop every Python object but leave the fds open (ownership passed to whoever
        holds the exported fds, e.g. ``adopt`` in the same process)."""
        for port in self._ports.values():
            self._unplug(port)
            port.release(close_fds=False)
        self._ports.clear()
        self._send.clear()
        self._tx.clear()
        self._close_ctl()

    def _close_ctl(self) -> None:
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None

    def ring_sockets(self) -> list[tuple[int, int]]:
        """(descriptor, ring size in bytes) of each port's receive-ring socket, still
        ours: what a handoff's new process may map ahead (``afpacket.map_ahead``)."""
        return [
            (p.fd, p.geometry.size)
            for p in self._ports.values()
            if p.ring is not None and p.geometry is not None
        ]

    def export_handles(self, freeze: bool = True) -> tuple[NetdevHandlesV1, list[int]]:
        """Freeze the datapath (``run`` does nothing afterwards) and describe it; its
        megaflows are not in the handles (a handoff carries them as typed records).
        Without ``freeze`` (the crash standby's mirror, hitless.daemon.standby) it keeps
        forwarding: the record is a picture whose ring positions are soon stale.

        Call it between two ``run`` calls. The returned fds are still owned by this
        object; pass them on, then ``close()`` (after SCM_RIGHTS) or ``detach()``
        (same process)."""
        self._frozen = self._frozen or freeze
        fds: list[int] = []
        ports = []
        for port in self._ports.values():
            d = port.dp
            s = d.stats
            fd: int | None = None
            if d.peer is None:
                fd = len(fds)
                fds.append(port.fd)
            # A patch port has no descriptor: a build that knows no patch ports fails to
            # adopt it (no "fd") and the handoff rolls back.
            ports.append(
                NetdevPortV1(
                    d.port_no,
                    d.name,
                    d.type,
                    d.mac.hex(),
                    port.ifindex,
                    [s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes, s.rx_dropped,
                     s.tx_dropped],  # fmt: skip
                    port.geometry.to_json() if port.geometry is not None else None,
                    port.head if port.geometry is not None else None,
                    d.peer,
                    fd,
                )
            )
        # A recirculated upcall's key carries ct state the packet does not: sent too.
        upcalls = [
            UpcallV1(u.in_port, u.packet, u.reason, u.userdata,
                     u.key if any(u.key[CT_OFF:]) else None)  # fmt: skip
            for u in self._upcalls
        ]
        handles = NetdevHandlesV1(
            self.ring_frames,
            self.max_upcalls,
            ports=ports,
            upcalls=upcalls,
            counters=[self.n_hit, self.n_missed, self.n_lost],
            meters=self.meters.export_levels(),
            conntrack=self.export_conntrack(),
        )
        return handles, fds

    def thaw(self) -> None:
        """The handoff rolled back: forward again from where the rings stand."""
        self._frozen = False
        for port in self._ports.values():  # an adopter in this process may have taken them
            d = port.dp
            if d.peer is not None:
                self.patch_panel.plug(d.name, d.peer, self, d.port_no)

    def adopt_ports(self, handles: Handles, fds: list[int]) -> None:
        """Attach the exported ports (their sockets, rings and positions) to this
        instance, which keeps its flow table; takes ownership of fds."""
        if not isinstance(handles, NetdevHandlesV1):
            raise DatapathError(f"cannot adopt {self.name}: not a netdev datapath's handles")
        self.ring_frames = handles.ring_frames
        self.max_upcalls = handles.max_upcalls
        self._upcalls.total = self.max_upcalls
        self._upcalls.per_port = min(self.max_upcalls, MAX_UPCALLS_PER_PORT)
        try:
            for e in handles.ports:
                stats = PortStats(*e.stats)
                if e.type == "patch":
                    peer = patch_peer(e.name, {"peer": e.peer or ""})
                    d = DpPort(
                        e.port_no, e.name, "patch", False, bytes.fromhex(e.mac), stats, peer=peer
                    )
                    self._attach(_Port(d, -1))
                    continue
                if e.fd is None:
                    raise DatapathError(f"port {e.name} came without a descriptor")
                fd = fds[e.fd]
                d = DpPort(
                    e.port_no,
                    e.name,
                    e.type,
                    afpacket.link_up(e.name),
                    bytes.fromhex(e.mac),
                    stats,
                )
                if e.ring is not None:
                    geometry = afpacket.RingGeometry.from_json(e.ring)
                    sock = socket.socket(fileno=fd)
                    sock.setblocking(False)
                    ring = afpacket.map_ring(fd, geometry)
                    port = _Port(d, fd, sock, ring, geometry, e.head or 0, e.ifindex)
                    port.resync = e.head is None  # after a crash: see _resync
                else:
                    os.set_blocking(fd, False)
                    port = _Port(d, fd, ifindex=e.ifindex)
                self._attach(port)
        except (OSError, IndexError, ValueError, TypeError, DatapathError) as err:
            self.detach()
            raise DatapathError(f"cannot adopt netdev datapath {self.name}: {err}") from None
        self.adopt_conntrack(handles.conntrack)
        self._invalidate()

    def track_changes(self) -> None:
        self._flows.changed = set()
        self._flows.hits = set()

    def take_changes(self) -> set[Match]:
        out = self._flows.changed or set()
        self._flows.changed = self._flows.hits = None  # take_hits first to have them
        return out

    def take_hits(self, since: float) -> list[DpFlow]:
        got = recorded_hits(self._flows, since)
        return got if got is not None else super().take_hits(since)

    @classmethod
    def adopt(cls, name: str, handles: Handles, fds: list[int]) -> NetdevDatapath:
        """Rebuild a datapath from ``export_handles`` output (ports, queued misses and
        counters; its flows come apart, as a handoff carries them); takes ownership of
        fds."""
        if not isinstance(handles, NetdevHandlesV1):
            raise DatapathError(f"cannot adopt {name}: not a netdev datapath's handles")
        dp = cls(name, handles.ring_frames, handles.max_upcalls)
        dp.adopt_ports(handles, fds)
        for f in handles.flows:  # from a build that still sent them here
            packets, nbytes, used, flags = f["stats"]
            dp._flows.insert(
                _make_flow(
                    Match(*widen(bytes.fromhex(f["key"]), bytes.fromhex(f["mask"]))),
                    actions_from_json(f["actions"]),
                    FlowStats(int(packets), int(nbytes), float(used), int(flags)),
                    float(f["created"]),
                )
            )
        for u in handles.upcalls:
            dp._upcalls.push(
                Upcall(
                    u.in_port,
                    u.packet,
                    u.key if u.key is not None else extract_key(u.packet, u.in_port),
                    u.reason,
                    u.userdata,
                ),
                force=True,  # the predecessor's bounds may have been wider
            )
        dp.n_hit, dp.n_missed, dp.n_lost = (int(x) for x in handles.counters)
        return dp


# ---------------------------------------------------------------------------------
# Running a datapath on its own (tests, benchmarks): poll, run, hand upcalls over.

UpcallHandler = Callable[[Datapath, list[Upcall]], None]


class _Poller:
    """The subset of ``ovs.poller.Poller`` that ``Datapath.wait`` uses, over
    select.poll (importing ovs.poller pulls in eventlet, which breaks thread joins
    when first imported from a non-main thread)."""

    def __init__(self) -> None:
        self._poll = select.poll()
        self._fds: list[int] = []
        self.timeout = -1

    def fd_wait(self, fd: int, events: int) -> None:
        self._poll.register(fd, events)
        self._fds.append(fd)

    def immediate_wake(self) -> None:
        self.timeout = 0

    def timer_wait(self, msec: int) -> None:
        if self.timeout < 0 or msec < self.timeout:
            self.timeout = max(0, msec)

    def block(self) -> None:
        try:
            self._poll.poll(self.timeout)
        except InterruptedError:
            pass
        for fd in self._fds:
            self._poll.unregister(fd)
        self._fds.clear()
        self.timeout = -1


def serve(
    dp: Datapath,
    should_stop: Callable[[], bool],
    handler: UpcallHandler | None = None,
    poll_ms: int = 50,
) -> None:
    """Loop until ``should_stop()``: forward, give upcalls to ``handler`` (which may
    call flow_put/execute on ``dp``; it runs in this loop, so no locking is needed),
    then sleep in poll until a port has input (at most ``poll_ms``)."""
    poller = _Poller()
    while not should_stop():
        dp.run()
        ups = dp.recv_upcalls(1024)
        if ups and handler is not None:
            handler(dp, ups)
        dp.wait(poller)
        poller.timer_wait(poll_ms)
        poller.block()


class ServeThread(threading.Thread):
    """``serve`` in a background thread: ``with ServeThread(dp, handler): ...``.
    Only the thread touches ``dp`` while it runs; stop it before using ``dp``."""

    def __init__(self, dp: Datapath, handler: UpcallHandler | None = None) -> None:
        super().__init__(name=f"serve-{dp.name}", daemon=True)
        self.dp = dp
        self.handler = handler
        self._stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            serve(self.dp, self._stop_event.is_set, self.handler)
        except BaseException as e:  # reported by stop()
            self.error = e

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        if self.error is not None:
            raise RuntimeError(f"datapath loop of {self.dp.name} failed") from self.error

    def __enter__(self) -> ServeThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
