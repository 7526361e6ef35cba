"""The datapath interface every provider implements (dummy, netdev, later ebpf).

A datapath forwards packets by megaflows (``Match`` + actions) without asking anyone.
A packet that matches no flow becomes an ``Upcall`` queued for the daemon, which
translates it, installs a megaflow with ``flow_put`` and sends the packet on with
``execute``. Installed megaflows never overlap (translation guarantees it), so lookup
order does not matter.

Time: ``used`` timestamps are ``clock()`` seconds, by default ``time.monotonic()``
(CLOCK_MONOTONIC is shared by all processes on the machine, so they stay meaningful
across a handoff); the daemon sets ``clock`` to its own (warpable) clock, and the dummy
datapath takes a clock function so tests are deterministic.

Handoff: ``export_handles`` returns everything a new process needs to adopt the
datapath (a msgspec-serialisable state and a list of file descriptors to pass with
SCM_RIGHTS); ``adopt`` is its inverse. Flows are adopted, never flushed. The userspace
providers' handles also carry their meters' token buckets (``"meters"``, see
hitless.datapath.meters), which ``meter_adopt`` restores once the bridge has pushed the
meters again, so that a handoff does not refill every bucket. Patch ports
(hitless.datapath.patch) have no descriptor: the state names their peers, and the
adopting instance plugs them into its own process's patch panel.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from hitless.datapath.actions import Action, Ct
from hitless.datapath.conntrack import Conn, Conntrack, CtResult, CtTuple
from hitless.datapath.errors import DatapathError
from hitless.datapath.execute import MAX_RECIRC_DEPTH, apply_actions
from hitless.datapath.meters import DpMeter, MeterTable
from hitless.datapath.patch import PANEL, PatchPanel
from hitless.packet.flow import Match, extract_key
from hitless.state.handles import Handles, MeterLevelV1

if TYPE_CHECKING:
    from hitless.datapath.megaflow import MegaflowTable


@dataclass(frozen=True, slots=True)
class Upcall:
    """A packet that missed the flow table (or hit an explicit userspace action)."""

    in_port: int
    packet: bytes
    key: bytes
    reason: str = "miss"  # "miss" | "action"
    userdata: bytes = b""


@dataclass(frozen=True, slots=True)
class LookupStats:
    """What ``dpctl/show`` prints as "lookups": packets that hit a flow, that missed
    (upcalls), and misses lost (the upcall queue was full)."""

    hit: int = 0
    missed: int = 0
    lost: int = 0


@dataclass(slots=True)
class FlowStats:
    packets: int = 0
    bytes: int = 0
    used: float = 0.0  # monotonic seconds of the last hit, 0 = never
    tcp_flags: int = 0


@dataclass(slots=True)
class DpFlow:
    match: Match
    actions: tuple[Action, ...]
    stats: FlowStats = field(default_factory=FlowStats)
    created: float = 0.0


@dataclass(slots=True)
class PortStats:
    rx_packets: int = 0
    rx_bytes: int = 0
    tx_packets: int = 0
    tx_bytes: int = 0
    rx_dropped: int = 0
    tx_dropped: int = 0
    # False: this port cannot drop and keeps no drop counters (a dummy port): OpenFlow
    # port statistics say "unavailable" (ovs-ofctl prints drop=?), as Open vSwitch does
    drops_counted: bool = field(default=True, kw_only=True)


@dataclass(slots=True)
class DpPort:
    port_no: int
    name: str
    type: str = "system"  # "system" | "internal" | "patch"
    link_up: bool = True
    mac: bytes = b"\0" * 6
    stats: PortStats = field(default_factory=PortStats)
    peer: str | None = None  # a patch port's peer interface
    error: str | None = None  # why a patch port is down (no connected peer)


class Datapath(ABC):
    """One datapath instance per bridge."""

    type: ClassVar[str]

    def __init__(self, name: str) -> None:
        self.name = name
        # What "now" is for ``used`` times and meters: CLOCK_MONOTONIC, or the daemon's
        # (possibly warped, see hitless.daemon.clock) clock, which it sets here.
        self.clock: Clock = time.monotonic
        # Where this datapath's patch ports meet their peers (hitless.datapath.patch);
        # replace it before adding patch ports to keep a test's bridges apart.
        self.patch_panel: PatchPanel = PANEL
        # The connection table the ``Ct`` action uses (hitless.datapath.conntrack);
        # dpctl/*conntrack* commands read and flush it, a handoff carries it.
        self.conntrack = Conntrack()
        # False while a handoff carries the connections as records of their own (state
        # version 5, hitless.handoff.engine): ``export_conntrack`` leaves them out
        self.conntrack_in_handles = True
        # Recirculation ids the layer above handed out, each with its opaque frozen
        # state (hitless.ofproto: the table to resume in and the pipeline metadata):
        # kept here, beside the flows that carry those ids, so a handoff moves both.
        self.recirc: dict[int, bytes] = {}

    # Ports -------------------------------------------------------------------
    @abstractmethod
    def port_add(
        self,
        name: str,
        port_no: int | None = None,
        type: str = "system",
        options: Mapping[str, str] | None = None,
    ) -> int:
        """Attach a device (type "system" or "internal") or a device-less patch port
        (type "patch", ``options`` ``{"peer": NAME}``: see hitless.datapath.patch);
        returns its port number. Raises DatapathError if the port cannot be used (the
        message is suitable for Interface.error)."""

    @abstractmethod
    def port_del(self, port_no: int) -> None: ...

    def port_set_mac(self, port_no: int, mac: bytes) -> None:
        """Give a port (the bridge's internal one: other_config:hwaddr) the MAC address
        ``mac``; DatapathError where this datapath cannot."""
        raise DatapathError(f"the {type(self).__name__} cannot change a port's MAC address")

    @abstractmethod
    def ports(self) -> dict[int, DpPort]: ...

    # Flows -------------------------------------------------------------------
    @abstractmethod
    def flow_put(
        self, match: Match, actions: tuple[Action, ...], reset_stats: bool = False
    ) -> None:
        """Install or modify (same match) a megaflow."""

    @abstractmethod
    def flow_del(self, match: Match) -> DpFlow | None:
        """Remove a megaflow; returns it with its final stats (None if absent)."""

    @abstractmethod
    def flow_get(self, match: Match) -> DpFlow | None: ...

    @abstractmethod
    def flow_dump(self) -> Iterable[DpFlow]: ...

    def flow_count(self) -> int:
        return sum(1 for _ in self.flow_dump())

    def flow_flush(self) -> None:
        for f in list(self.flow_dump()):
            self.flow_del(f.match)

    # Packets -----------------------------------------------------------------
    @abstractmethod
    def execute(
        self, packet: bytes, in_port: int, actions: tuple[Action, ...], key: bytes | None = None
    ) -> None:
        """Apply actions to a packet (as if it arrived on in_port). ``key``: the packet's
        key when it carries more than the packet's headers say (an upcall after a
        recirculation: recirc_id and ct fields); None takes it from the packet."""

    @abstractmethod
    def lookup_stats(self) -> LookupStats:
        """Hits, misses and lost misses since the datapath was created (or adopted)."""

    def show_lines(self) -> list[str]:
        """Provider-specific lines ``dpctl/show`` prints after the flow count (e.g. the
        ebpf datapath's masks and slow-path counters); none by default."""
        return []

    @abstractmethod
    def recv_upcalls(self, max_count: int = 64) -> list[Upcall]: ...

    def upcall_queues(self) -> Mapping[int, Any]:
        """Per input port, the state of its upcall queue (``upcall/show``): a provider
        with per-port queues returns records with ``queued``, ``max_queued``,
        ``handled`` and ``dropped``; none by default."""
        return {}

    def ct_now(self) -> float:
        """The clock this datapath's connection tracker runs on (the datapath's)."""
        return self.clock()

    def export_conntrack(self) -> dict[str, Any]:
        """The connection table and recirculation ids, for ``export_handles``."""
        if self.conntrack_in_handles:
            state = self.conntrack.export_json(self.ct_now())
        else:
            ct = self.conntrack
            state = {"conns": [], "limits": [[z, n] for z, n in ct.limits.items()],
                     "max_conns": ct.max_conns}  # fmt: skip
        # Frozen states with actions (their first byte 0xff: hitless.ofproto.frozen) go
        # under a key of their own, which builds without them ignore: there their ids
        # are unknown, so packets are translated again, never resumed from a misread state.
        state["recirc"] = [[k, v.hex()] for k, v in self.recirc.items() if v[:1] != b"\xff"]
        frozen = [[k, v.hex()] for k, v in self.recirc.items() if v[:1] == b"\xff"]
        if frozen:
            state["frozen"] = frozen
        return state

    def adopt_conntrack(self, state: dict[str, Any]) -> None:
        """Take the connection table and recirculation ids of exported handles (their
        ``conntrack``; empty, from a build without conntrack: nothing to take)."""
        if not state:
            return
        try:
            for k, v in (*state.get("recirc", []), *state.get("frozen", [])):
                self.recirc[int(k)] = bytes.fromhex(v)
            self.conntrack.adopt_json(state, self.ct_now())
        except (TypeError, ValueError) as e:
            raise DatapathError(f"cannot adopt the conntrack state of {self.name}: {e}") from None

    def ct_flush(
        self,
        zone: int | None = None,
        orig: CtTuple | None = None,
        where: Callable[[Conn], bool] | None = None,
    ) -> int:
        """dpctl/flush-conntrack: remove connections (``Conntrack.flush``) from the
        tracker and from any copy the datapath keeps of them, before returning (as Open
        vSwitch's flush: the next packet is not of those connections); how many."""
        return self.conntrack.flush(zone=zone, orig=orig, where=where)

    def ct_execute(self, packet: bytes, action: Ct, now: float, natted: bool) -> CtResult:
        """Run a packet through this datapath's connection tracker for a ``Ct`` action
        (``natted``: see ``Conntrack.execute``)."""
        return self.conntrack.execute(
            packet,
            now,
            zone=action.zone,
            commit=action.commit,
            force=action.force,
            nat=action.nat,
            mark=action.mark,
            label=action.label,
            natted=natted,
        )

    # Meters --------------------------------------------------------------------
    # ``Meter`` actions refer to these by id. The bridge pushes every OpenFlow meter here
    # (on meter-mod and after a handoff's import); a provider keeps the token buckets
    # and per-band counters (semantics: hitless.datapath.meters).
    @abstractmethod
    def meter_set(self, meter_id: int, meter: DpMeter) -> None:
        """Install or replace a meter: buckets start full, band counters at zero."""

    @abstractmethod
    def meter_del(self, meter_id: int) -> None:
        """Remove a meter (absent: no-op); ``Meter`` actions naming it then pass."""

    @abstractmethod
    def meter_stats(self, meter_id: int) -> tuple[tuple[int, int], ...] | None:
        """Per band (packets, bytes) the band applied to since ``meter_set`` (a drop
        band: the packets it dropped); None if the meter is absent."""

    # Event loop integration ----------------------------------------------------
    def run(self) -> None:
        """Do the forwarding work available now (poll-loop providers)."""

    def port_use_qdisc(self, port_no: int, use: bool) -> None:
        """Whether frames this datapath sends on the port go through the device's qdisc
        (its tc egress shaping, Port.qos linux-htb/hfsc) or may bypass it (the default
        where a provider can: faster). Ports without a kernel device ignore it."""

    def refresh_links(self) -> None:
        """The kernel said a link changed (a netlink event): read link states again at the
        next ``ports()`` instead of waiting for the provider's own refresh."""

    def wait(self, poller: Any) -> None:
        """Register with an ovs.poller.Poller what should wake the loop."""

    def close(self) -> None:
        """Release everything; does not touch devices it does not own."""

    # Handoff -------------------------------------------------------------------
    def export_handles(self) -> tuple[Handles, list[int]]:
        """(handles, fds) a new process needs to adopt this datapath unchanged: the
        record of this datapath type (``hitless.state.handles``) and the descriptors."""
        raise NotImplementedError(f"{self.type} datapath cannot be handed over")

    def track_changes(self) -> None:
        """Start recording which flows are added, modified or removed (pre-copy)."""
        raise NotImplementedError(f"{self.type} datapath cannot track changes")

    def take_changes(self) -> set[Match]:
        """The matches changed since ``track_changes``; stops tracking (hits too: call
        ``take_hits`` first)."""
        raise NotImplementedError(f"{self.type} datapath cannot track changes")

    def take_hits(self, since: float) -> list[DpFlow]:
        """The flows whose counters moved since ``since`` (a handoff's freeze asks for
        those since its pre-copy). A provider that records hits while tracking changes
        answers from that record and stops recording; this default scans every flow."""
        return [f for f in self.flow_dump() if f.stats.used >= since]

    def adopt_ports(self, handles: Handles, fds: list[int]) -> None:
        """Attach the ports of an ``export_handles`` state to this (port-less) instance:
        a handoff builds the flow table during pre-copy, then adopts the ports at the
        freeze. Takes ownership of fds."""
        raise NotImplementedError(f"{self.type} datapath cannot adopt ports")

    def meter_adopt(self, levels: Sequence[MeterLevelV1]) -> None:
        """Carry on the meters' token buckets of an ``export_handles`` record (its
        ``meters``): call it after the bridge pushed its meters into this datapath
        (``meter_set`` starts full buckets). Meters whose configuration differs, or
        that this datapath does not have, keep what they have. A provider whose meters
        outlive the process (in the kernel, with the flows) has nothing to carry."""

    def thaw(self) -> None:
        """Undo ``export_handles`` after a handoff rolled back: serve on as before."""

    @classmethod
    def adopt(cls, name: str, handles: Handles, fds: list[int]) -> Datapath:
        raise NotImplementedError(f"{cls.type} datapath cannot be adopted")


Clock = Callable[[], float]


def new_port_number(dp: str, name: str, port_no: int | None, ports: Mapping[int, str]) -> int:
    """The checks every provider's ``port_add`` makes first: ``name`` is not attached
    to datapath ``dp`` yet (``ports``: number -> name) and ``port_no`` is free; None
    picks the lowest free number from 1. Raises DatapathError with the operator's text."""
    for n, attached in ports.items():
        if attached == name:
            raise DatapathError(f"{name} is already attached to {dp} as port {n}")
    if port_no is None:
        port_no = 1
        while port_no in ports:
            port_no += 1
    elif port_no in ports:
        raise DatapathError(f"port number {port_no} is already in use on {dp}")
    return port_no


class InProcessRecirc:
    """The generic interpreter and recirculation for the datapaths that run actions in
    this process (dummy and netdev for every packet, ebpf for its slow path): ``_apply``
    runs a flow's actions (conntrack and meters included), hands outputs to
    ``_output`` and ``userspace`` actions to ``_queue``; each (packet, key) a ``Recirc``
    action hands back is looked up again: a hit counts on its flow and runs the flow's
    actions one level deeper, a miss becomes an upcall carrying the key (recirc_id and
    ct fields). Past ``MAX_RECIRC_DEPTH`` the packet is dropped (a recirculation loop).
    Mix in before ``Datapath`` (and ``InProcessMeters``)."""

    _flows: MegaflowTable
    n_hit: int
    n_missed: int
    clock: Clock
    # Provided by the other bases (annotations only: the mixin comes first in the MRO).
    _meter: Callable[[int, int], bool]
    ct_execute: Callable[[bytes, Ct, float, bool], CtResult]

    def _queue(self, upcall: Upcall) -> None:
        raise NotImplementedError

    def _output(self, port_no: int, data: bytes) -> None:
        raise NotImplementedError

    def _output_priority(self, port_no: int, data: bytes, priority: int) -> None:
        """Output with a socket priority (``SetPriority``); where the provider cannot
        give a frame one, it goes out as any other."""
        self._output(port_no, data)

    def _apply(
        self,
        packet: bytes,
        in_port: int,
        key: bytes | None,
        actions: tuple[Action, ...],
        depth: int = 0,
    ) -> None:
        recirc: list[tuple[bytes, bytes]] = []
        prios: list[int] = []
        outputs, userspace = apply_actions(
            packet,
            actions,
            self._meter,
            key=key,
            in_port=in_port,
            ct=lambda p, a, n: self.ct_execute(p, a, self.clock(), n),
            recirc=recirc,
            priorities=prios,
        )
        for (port_no, data), prio in zip(outputs, prios, strict=True):
            if prio:
                self._output_priority(port_no, data, prio)
            else:
                self._output(port_no, data)
        for data, userdata in userspace:
            k = key if key is not None else extract_key(data, in_port)
            self._queue(Upcall(in_port, data, k, "action", userdata))
        self._recirculate(in_port, recirc, depth)  # established connections: no upcall

    def _count_hit(self, flow: DpFlow, key: bytes, size: int) -> None:
        self.n_hit += 1
        s = flow.stats
        s.packets += 1
        s.bytes += size
        s.used = self.clock()
        s.tcp_flags |= key[72] << 8 | key[73]  # the key's tcp_flags field
        if self._flows.hits is not None:
            self._flows.hits.add(flow.match)

    def _recirculate(self, in_port: int, recirc: list[tuple[bytes, bytes]], depth: int) -> None:
        for data, rkey in recirc:
            if depth >= MAX_RECIRC_DEPTH:
                continue
            flow = self._flows.lookup(rkey)
            if flow is None:
                self.n_missed += 1
                self._queue(Upcall(in_port, data, rkey))
                continue
            self._count_hit(flow, rkey, len(data))
            self._apply(data, in_port, rkey, flow.actions, depth + 1)


class InProcessMeters:
    """The meters of a datapath that forwards in this process (dummy, netdev): token
    buckets in a ``MeterTable``, timed by ``_meter_now``; the buckets travel in the
    handles (``"meters"``) and ``meter_adopt`` restores them. Mix in before
    ``Datapath``; set ``self.meters = MeterTable()`` in ``__init__``."""

    meters: MeterTable
    name: str

    def _meter_now(self) -> float:
        raise NotImplementedError

    def meter_set(self, meter_id: int, meter: DpMeter) -> None:
        self.meters.set(meter_id, meter, self._meter_now())

    def meter_del(self, meter_id: int) -> None:
        self.meters.delete(meter_id)

    def meter_stats(self, meter_id: int) -> tuple[tuple[int, int], ...] | None:
        return self.meters.stats(meter_id)

    def _meter(self, meter_id: int, nbytes: int) -> bool:
        """Whether the meter lets ``nbytes`` through now (counts a band's drop)."""
        return self.meters.admit(meter_id, nbytes, self._meter_now())

    def meter_adopt(self, levels: Sequence[MeterLevelV1]) -> None:
        """The exported meters' token buckets, for the meters the bridge pushed since."""
        self.meters.adopt_levels(levels, self._meter_now())
