"""Datapath handles as typed records: what a new process needs to adopt a datapath
unchanged, one record family per datapath type (a tagged union whose tag is the
datapath's type, ``DatapathV1.type``).

A provider exports its ``Handles`` record (``Datapath.export_handles``) and adopts one
(``adopt``, ``adopt_ports``, ``meter_adopt``); the engine moves it through the snapshot.
On the wire (``DatapathV1.handles``) a record is the plain map every released build
reads and writes (state versions 1-3): ``to_wire`` writes exactly those keys and
layouts, ``from_wire`` reads what any of those builds sent (missing keys take their
defaults, unknown keys are ignored) and says what is wrong with anything else
(``SnapshotError``). The wire keeps hex strings where older builds expect them (a
port's MAC, queued misses): they are part of the released format.

Each type's own format version is the record's ``version`` (netdev, ebpf): a build
refuses handles of a version it does not know, before it touches a descriptor.

Pure: imports nothing of the project outside ``hitless.state``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from hitless.state.errors import SnapshotError

__all__ = [
    "DummyHandlesV1", "DummyPortV1", "EbpfHandlesV1", "HANDLES", "Handles", "MeterLevelV1",
    "NetdevHandlesV1", "NetdevPortV1", "UpcallV1", "from_wire", "levels_from_wire", "to_wire",
]  # fmt: skip


class MeterLevelV1(msgspec.Struct, frozen=True):
    """One userspace meter's token buckets (hitless.datapath.meters): its configuration,
    so that levels only ever go to the same meter, each band's tokens, and the
    CLOCK_MONOTONIC time they were so."""

    meter_id: int
    kbps: bool
    bands: list[tuple[int, int, int]]  # (rate, burst, type) per band
    tokens: list[float]
    last: float


class DummyPortV1(msgspec.Struct, frozen=True):
    port_no: int
    name: str
    type: str
    peer: str | None = None  # a patch port's peer


class DummyHandlesV1(msgspec.Struct, frozen=True, tag_field="datapath", tag="dummy"):
    """The in-memory datapath: its ports, meters, pcap files and connection table."""

    datapath_type: ClassVar[str] = "dummy"
    ports: list[DummyPortV1] = []
    meters: list[MeterLevelV1] = []
    pcap: dict[str, dict[str, str]] = {}  # port number -> {direction: path}
    conntrack: dict[str, Any] = {}

    def _wire(self) -> dict[str, Any]:
        out = msgspec.to_builtins(self)
        del out["datapath"]  # the tag (state version 7's union) is not in the wire map
        for k in ("meters", "pcap", "conntrack"):  # absent when empty, as builds before them
            if not out[k]:
                del out[k]
        # A port is [port_no, name, type] with the peer after only for a patch port.
        out["ports"] = [
            [p.port_no, p.name, p.type] + ([p.peer] if p.peer is not None else [])
            for p in self.ports
        ]
        return out

    @classmethod
    def _read(cls, obj: dict[str, Any]) -> dict[str, Any]:
        ports = obj.get("ports", [])
        if not isinstance(ports, list):
            raise SnapshotError(f"dummy datapath handles: ports {ports!r} is not a list")
        out = dict(obj)
        out["ports"] = [
            dict(zip(("port_no", "name", "type", "peer"), p, strict=False))
            if isinstance(p, list | tuple)
            else p
            for p in ports
        ]
        return out


class NetdevPortV1(msgspec.Struct, frozen=True, omit_defaults=True):
    port_no: int
    name: str
    type: str
    mac: str  # hex (the released wire form)
    ifindex: int
    stats: list[int]  # rx_packets, rx_bytes, tx_packets, tx_bytes, rx_dropped, tx_dropped
    ring: list[int] | None = None  # RX ring geometry (block size/count, frame size/count)
    head: int | None = None  # the ring's next frame
    peer: str | None = None  # a patch port: no descriptor
    fd: int | None = None  # index into the datapath's descriptors


class UpcallV1(msgspec.Struct, frozen=True, array_like=True):
    """A miss (or userspace action) queued in the datapath and not yet handled: the
    new process handles it (``hitless.datapath.base.Upcall``)."""

    in_port: int
    packet: bytes
    reason: str  # "miss" | "action"
    userdata: bytes
    key: bytes | None = None  # a recirculated miss's key (its ct state); None: from the packet

    def wire(self) -> list[Any]:
        """The released form: [in_port, packet hex, reason, userdata hex, (key hex)]."""
        out = [self.in_port, self.packet.hex(), self.reason, self.userdata.hex()]
        return out + [self.key.hex()] if self.key is not None else out

    @classmethod
    def read(cls, item: Any) -> UpcallV1:
        if isinstance(item, UpcallV1):
            return item
        try:
            in_port, packet, reason, userdata, *key = item
            return cls(int(in_port), bytes.fromhex(packet), str(reason),
                       bytes.fromhex(userdata), bytes.fromhex(key[0]) if key else None)  # fmt: skip
        except (TypeError, ValueError) as e:
            raise SnapshotError(f"netdev datapath handles: bad queued miss {item!r}: {e}") from None


# A netdev port's keys in the released order (a port's optional ones absent when unset).
_PORT_KEYS = ("port_no", "name", "type", "mac", "ifindex", "fd", "stats", "ring", "head", "peer")


class NetdevHandlesV1(msgspec.Struct, frozen=True, tag_field="datapath", tag="netdev"):
    """The userspace AF_PACKET datapath: its ports (sockets, rings and their positions),
    the misses queued but not handled, counters, meters and connection table. Its
    megaflows travel as typed ``FlowV1`` records in ``DatapathV1.flows``."""

    datapath_type: ClassVar[str] = "netdev"
    VERSION: ClassVar[int] = 1
    ring_frames: int
    max_upcalls: int
    version: int = 1
    type: str = "netdev"
    ports: list[NetdevPortV1] = []
    flows: list[dict[str, Any]] = []  # released builds read it; always sent empty
    upcalls: list[UpcallV1] = []  # the misses queued at the freeze
    counters: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0])  # hit, missed, lost
    meters: list[MeterLevelV1] = []
    conntrack: dict[str, Any] = {}

    def _wire(self) -> dict[str, Any]:
        out = msgspec.to_builtins(self)
        out["upcalls"] = [u.wire() for u in self.upcalls]
        out["ports"] = [{k: p[k] for k in _PORT_KEYS if k in p} for p in out["ports"]]
        return {  # the released key order; no meters or connections: absent, as before
            k: out[k]  # version 3 and 4 (what older builds wrote, and the golden files)
            for k in ("version", "type", "ring_frames", "max_upcalls", "ports", "flows",
                      "upcalls", "counters", "meters", "conntrack")  # fmt: skip
            if out[k] or k not in ("meters", "conntrack")
        }

    @classmethod
    def _read(cls, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("version") != cls.VERSION:
            raise SnapshotError(
                f"cannot adopt netdev datapath state version {obj.get('version')!r} "
                f"(this version understands {cls.VERSION})"
            )
        upcalls = obj.get("upcalls", [])
        if not isinstance(upcalls, list):
            raise SnapshotError(f"netdev datapath handles: upcalls {upcalls!r} is not a list")
        return {**obj, "upcalls": [UpcallV1.read(u) for u in upcalls]}


class EbpfHandlesV1(msgspec.Struct, frozen=True, tag_field="datapath", tag="ebpf"):
    """The tc-BPF datapath: the kernel holds its whole state (ports, flows, counters,
    waiting misses); the handles name the program and maps passed as descriptors, in
    the order of ``fds``, and carry the userspace meters' buckets."""

    datapath_type: ClassVar[str] = "ebpf"
    VERSION: ClassVar[int] = 1
    prog_id: int
    abi: int
    fds: list[str]  # the names of the descriptors passed, in order ("prog", maps...)
    version: int = 1
    kind: str = "ebpf"
    meters: list[MeterLevelV1] = []

    def _wire(self) -> dict[str, Any]:
        out = msgspec.to_builtins(self)
        return {k: out[k] for k in ("version", "kind", "prog_id", "abi", "fds", "meters")}

    @classmethod
    def _read(cls, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("kind") != "ebpf":
            raise SnapshotError("not an ebpf datapath state")
        if obj.get("version") != cls.VERSION:
            raise SnapshotError(
                f"cannot adopt ebpf datapath state version {obj.get('version')!r} "
                f"(this version understands {cls.VERSION})"
            )
        return obj


Handles = DummyHandlesV1 | NetdevHandlesV1 | EbpfHandlesV1

# The union's tags: a datapath type -> its handles record.
HANDLES: dict[str, type[DummyHandlesV1] | type[NetdevHandlesV1] | type[EbpfHandlesV1]] = {
    "dummy": DummyHandlesV1,
    "netdev": NetdevHandlesV1,
    "ebpf": EbpfHandlesV1,
}


def to_wire(handles: Handles) -> dict[str, Any]:
    """A record as ``DatapathV1.handles`` carries it (the released map)."""
    return handles._wire()


def from_wire(datapath_type: str, obj: dict[str, Any]) -> Handles:
    """The record of a ``datapath_type`` datapath from its wire map; ``SnapshotError``
    if the type is unknown or the map is not what such a datapath exports."""
    kind = HANDLES.get(datapath_type)
    if kind is None:
        raise SnapshotError(f"this build has no {datapath_type!r} datapath to adopt")
    if not isinstance(obj, dict):
        raise SnapshotError(f"{datapath_type} datapath handles are not a map: {obj!r}")
    try:
        return msgspec.convert(kind._read(obj), kind, strict=False)
    except msgspec.ValidationError as e:
        raise SnapshotError(f"{datapath_type} datapath handles are invalid: {e}") from None


def levels_from_wire(obj: Any) -> list[MeterLevelV1]:
    """Meter bucket levels from their wire form (a list of maps)."""
    try:
        return msgspec.convert(obj, list[MeterLevelV1], strict=False)
    except msgspec.ValidationError as e:
        raise SnapshotError(f"meter bucket levels are invalid: {e}") from None
