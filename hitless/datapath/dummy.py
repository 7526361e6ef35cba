"""The dummy datapath: in memory and deterministic, for tests of every layer above.

Packets enter with ``receive(port_no, packet)`` (the daemon's ``netdev-dummy/receive``);
what the datapath sends is appended to ``sent[port_no]``. Ports need no device: any name
can be attached, except names listed in ``missing_devices`` (to test error reporting).
Patch ports (hitless.datapath.patch) deliver to their peer's datapath instead of
``sent``. As Open vSwitch's dummy interfaces, a port added with options ``tx_pcap=FILE``
writes every frame it sends to FILE and ``rxq_pcap=FILE`` every frame it receives
(pcap format, appended after a handoff), so that tests outside the process can see them.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import BinaryIO

from hitless.datapath.actions import Action
from hitless.datapath.base import (
    Clock,
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
from hitless.packet.flow import Match, extract_key
from hitless.state.handles import DummyHandlesV1, DummyPortV1, Handles


class DummyDatapath(InProcessRecirc, InProcessMeters, Datapath):
    type = "dummy"

    def __init__(self, name: str, clock: Clock = time.monotonic) -> None:
        super().__init__(name)
        self.clock = clock
        self._ports: dict[int, DpPort] = {}
        self._flows = MegaflowTable()
        self._upcalls: deque[Upcall] = deque()
        self.meters = MeterTable()
        self.sent: dict[int, list[bytes]] = {}
        self.missing_devices: set[str] = set()
        self.n_missed = 0
        self.n_hit = 0
        # port_no -> {"tx"|"rx": path}; and the open files
        self._pcap_paths: dict[int, dict[str, str]] = {}
        self._pcap: dict[tuple[int, str], BinaryIO] = {}

    # Ports ---------------------------------------------------------------------
    def port_add(
        self,
        name: str,
        port_no: int | None = None,
        type: str = "system",
        options: Mapping[str, str] | None = None,
    ) -> int:
        peer = patch_peer(name, options) if type == "patch" else None
        if name in self.missing_devices and peer is None:
            raise DatapathError(f"could not open network device {name} (No such device)")
        port_no = new_port_number(
            self.name, name, port_no, {n: p.name for n, p in self._ports.items()}
        )
        mac = bytes((0x02, 0, 0, 0, port_no >> 8 & 0xFF, port_no & 0xFF))
        # a dummy port takes every frame (no queue to overflow): no drop counters in
        # OpenFlow (drop=?), as Open vSwitch's dummy and patch ports; a patch port whose
        # peer is gone still counts its drops here (dpctl, the datapath's own view)
        stats = PortStats(drops_counted=False)
        self._ports[port_no] = DpPort(port_no, name, type, True, mac, stats=stats, peer=peer)
        self.sent.setdefault(port_no, [])
        paths = {
            d: (options or {}).get(opt, "")
            for d, opt in (("tx", "tx_pcap"), ("rx", "rxq_pcap"))
            if (options or {}).get(opt)
        }
        if paths:
            try:
                self._open_pcaps(port_no, paths, append=False)
            except DatapathError:
                self._close_pcaps(port_no)
                del self._ports[port_no], self.sent[port_no]
                raise
        if peer is not None:
            self.patch_panel.plug(name, peer, self, port_no)
        return port_no

    def _open_pcaps(self, port_no: int, paths: dict[str, str], append: bool) -> None:
        for direction, path in paths.items():
            try:
                f = open_pcap(path, append)
            except OSError as e:
                raise DatapathError(f"could not open {path}: {e.strerror or e}") from None
            self._pcap[(port_no, direction)] = f
            self._pcap_paths.setdefault(port_no, {})[direction] = path

    def _close_pcaps(self, port_no: int) -> None:
        for direction in self._pcap_paths.pop(port_no, {}):
            f = self._pcap.pop((port_no, direction), None)
            if f is not None:
                f.close()

    def _record(self, port_no: int, direction: str, packet: bytes) -> None:
        f = self._pcap.get((port_no, direction))
        if f is not None:
            write_pcap_record(f, packet, self.clock())

    def port_set_mac(self, port_no: int, mac: bytes) -> None:
        p = self._ports.get(port_no)
        if p is None:
            raise DatapathError(f"no port {port_no}")
        self._ports[port_no] = replace(p, mac=bytes(mac))

    def port_del(self, port_no: int) -> None:
        self._close_pcaps(port_no)
        port = self._ports.pop(port_no, None)
        if port is not None and port.peer is not None:
            self.patch_panel.unplug(port.name, self)

    def ports(self) -> dict[int, DpPort]:
        for p in self._ports.values():
            if p.peer is not None:
                p.error = self.patch_panel.error(p.name)
                p.link_up = p.error is None
        return dict(self._ports)

    def close(self) -> None:
        for port_no in list(self._pcap_paths):
            self._close_pcaps(port_no)
        for p in self._ports.values():
            if p.peer is not None:
                self.patch_panel.unplug(p.name, self)

    def set_link(self, port_no: int, up: bool) -> None:
        self._ports[port_no].link_up = up

    # Flows ---------------------------------------------------------------------
    def flow_put(
        self, match: Match, actions: tuple[Action, ...], reset_stats: bool = False
    ) -> None:
        old = self._flows.get(match)
        if old is not None:
            old.actions = actions
            self._flows.touch(match)
            if reset_stats:
                old.stats = FlowStats()
            return
        self._flows.insert(DpFlow(match, actions, FlowStats(), self.clock()))

    def flow_del(self, match: Match) -> DpFlow | None:
        return self._flows.remove(match)

    def flow_count(self) -> int:
        return len(self._flows)

    def flow_get(self, match: Match) -> DpFlow | None:
        return self._flows.get(match)

    def flow_dump(self) -> Iterable[DpFlow]:
        return iter(self._flows)

    # Meters --------------------------------------------------------------------
    def _meter_now(self) -> float:
        return self.clock()

    # Packets -------------------------------------------------------------------
    def receive(self, port_no: int, packet: bytes) -> None:
        """A packet arrives on a port: forward it by the flow table or raise an upcall."""
        port = self._ports.get(port_no)
        if port is None:
            return
        port.stats.rx_packets += 1
        port.stats.rx_bytes += len(packet)
        if self._pcap:
            self._record(port_no, "rx", packet)
        key = extract_key(packet, port_no)
        flow = self._flows.lookup(key)
        if flow is None:
            self.n_missed += 1
            self._upcalls.append(Upcall(port_no, packet, key))
            return
        self._count_hit(flow, key, len(packet))
        self._apply(packet, port_no, key, flow.actions)

    def _queue(self, upcall: Upcall) -> None:
        self._upcalls.append(upcall)

    def _apply(
        self,
        packet: bytes,
        in_port: int,
        key: bytes | None,
        actions: tuple[Action, ...],
        depth: int = 0,
    ) -> None:
        super()._apply(packet, in_port, key or extract_key(packet, in_port), actions, depth)

    def _output(self, port_no: int, data: bytes) -> None:
        port = self._ports.get(port_no)
        if port is None:
            return
        if port.peer is not None:  # a patch port: its peer receives the frame
            if not self.patch_panel.send(port.name, data):
                port.stats.tx_dropped += 1
                return
        elif not port.link_up:
            return
        port.stats.tx_packets += 1
        port.stats.tx_bytes += len(data)
        if port.peer is None:
            self.sent[port_no].append(data)
            if self._pcap:
                self._record(port_no, "tx", data)

    def patch_input(self, port_no: int, packet: bytes) -> None:
        """A frame from the peer of patch port ``port_no``: received as on any port."""
        self.receive(port_no, packet)

    def execute(
        self, packet: bytes, in_port: int, actions: tuple[Action, ...], key: bytes | None = None
    ) -> None:
        self._apply(packet, in_port, key, actions)

    def lookup_stats(self) -> LookupStats:
        return LookupStats(self.n_hit, self.n_missed, 0)

    def recv_upcalls(self, max_count: int = 64) -> list[Upcall]:
        out: list[Upcall] = []
        while self._upcalls and len(out) < max_count:
            out.append(self._upcalls.popleft())
        return out

    def pop_sent(self) -> dict[int, list[bytes]]:
        """Everything sent since the last call, by port (ports with nothing omitted)."""
        out = {p: v for p, v in self.sent.items() if v}
        self.sent = {p: [] for p in self.sent}
        return out

    # Handoff -------------------------------------------------------------------
    def export_handles(self) -> tuple[DummyHandlesV1, list[int]]:
        return DummyHandlesV1(
            [DummyPortV1(p.port_no, p.name, p.type, p.peer) for p in self._ports.values()],
            self.meters.export_levels(),
            {str(p): dict(paths) for p, paths in self._pcap_paths.items()},
            self.export_conntrack(),
        ), []

    @classmethod
    def adopt(cls, name: str, handles: Handles, fds: list[int]) -> DummyDatapath:
        dp = cls(name)
        dp.adopt_ports(handles, fds)
        return dp

    def adopt_ports(self, handles: Handles, fds: list[int]) -> None:
        if not isinstance(handles, DummyHandlesV1):
            raise DatapathError(f"cannot adopt {self.name}: not a dummy datapath's handles")
        for p in handles.ports:
            self.port_add(p.name, p.port_no, p.type, {"peer": p.peer} if p.peer else None)
        for port_no, paths in handles.pcap.items():
            self._open_pcaps(int(port_no), paths, append=True)
        self.adopt_conntrack(handles.conntrack)

    def thaw(self) -> None:
        for p in self._ports.values():  # an adopter in this process may have taken them
            if p.peer is not None:
                self.patch_panel.plug(p.name, p.peer, self, p.port_no)

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


# pcap files (what Open vSwitch's dummy interfaces write for tx_pcap / rxq_pcap) --------

PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet
PCAP_RECORD = struct.Struct("<IIII")


def open_pcap(path: str, append: bool) -> BinaryIO:
    """A pcap file to write frames to (a new file gets the header)."""
    f = open(path, "ab" if append else "wb", buffering=0)  # noqa: SIM115 (kept open)
    if f.tell() == 0:
        f.write(PCAP_HEADER)
    return f


def write_pcap_record(f: BinaryIO, packet: bytes, now: float) -> None:
    sec = int(now)
    f.write(PCAP_RECORD.pack(sec, int((now - sec) * 1e6), len(packet), len(packet)) + packet)


def read_pcap(path: str) -> list[bytes]:
    """Every frame of a pcap file (for tests and tools)."""
    with open(path, "rb") as f:
        data = f.read()
    out: list[bytes] = []
    off = len(PCAP_HEADER)
    while off + PCAP_RECORD.size <= len(data):
        _, _, caplen, _ = PCAP_RECORD.unpack_from(data, off)
        off += PCAP_RECORD.size
        out.append(data[off : off + caplen])
        off += caplen
    return out
