"""What the handoff engine needs of a bridge and of a datapath, as small protocols: the
engine is typed against these, never against ``hitless.ofproto.bridge.Bridge`` or a
datapath provider, so any pair that implements them hands over (the daemon's bridges,
a test's in-memory ones, and next an evacuation's remote end).

- ``HandoffDatapath``: the flow table with its change and hit journals, the ports, the
  handles record (``hitless.state.handles``) out and in, the meters' buckets, thaw, and
  its connection tracker (``HandoffConntrack``: connections, change journal, records in).
- ``HandoffBridge``: the learned state above it (MAC table, ofport numbers, OpenFlow
  tables with their journal, the revalidator's credit baseline) out as records and in
  from them, and ``revalidate_adopted`` at commit.
- ``Running``: one bridge as the switch runs it (the pair).
- ``BridgeFactory``: how the new side makes a bridge over a rebuilt datapath.

The components a bridge exposes (``mac``, ``ofports``, ``of``, ``revalidator``) are
named by their own small types from the layers below; only their type names are imported
here, for checking (nothing of ofproto runs from this module).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from hitless.state.handles import Handles, MeterLevelV1
from hitless.state.records import MacEntryV1, OpenFlow, OpenFlowDelta

if TYPE_CHECKING:
    from hitless.datapath.base import DpFlow, DpPort
    from hitless.ofproto.mac_learning import MacTable
    from hitless.ofproto.oftable import OfState, Rule
    from hitless.ofproto.ports import OfportAllocator
    from hitless.ofproto.revalidator import Revalidator
    from hitless.packet.flow import Match

__all__ = ["BridgeFactory", "HandoffBridge", "HandoffConntrack", "HandoffDatapath", "Running"]


class HandoffConntrack(Protocol):
    """A datapath's connection tracker as a handoff moves it
    (``hitless.datapath.conntrack.Conntrack`` implements it)."""

    def __iter__(self) -> Iterator[Any]: ...  # the connections (``Conn``)
    def get(self, zone: int, orig: Any) -> Any: ...
    def track_changes(self) -> None: ...
    def take_changes(self) -> set[tuple[int, Any]]: ...
    def import_records(self, records: Iterable[Any], now: float) -> int: ...
    def remove_record(self, zone: int, orig: Any) -> None: ...


class HandoffDatapath(Protocol):
    """A datapath as a handoff moves it (``hitless.datapath.base.Datapath`` implements it)."""

    clock: Callable[[], float]
    # False while a handoff carries the connection table as records (state version 5):
    # the handles then leave the connections out
    conntrack_in_handles: bool

    @property
    def type(self) -> str: ...
    @property
    def conntrack(self) -> HandoffConntrack: ...

    def ports(self) -> dict[int, DpPort]: ...
    def flow_dump(self) -> Iterable[DpFlow]: ...
    def flow_get(self, match: Match) -> DpFlow | None: ...
    def flow_put(self, match: Match, actions: tuple[Any, ...]) -> None: ...
    def flow_del(self, match: Match) -> DpFlow | None: ...
    def flow_count(self) -> int: ...
    def track_changes(self) -> None: ...
    def take_changes(self) -> set[Match]: ...
    def take_hits(self, since: float) -> list[DpFlow]: ...
    def export_handles(self) -> tuple[Handles, list[int]]: ...
    def adopt_ports(self, handles: Handles, fds: list[int]) -> None: ...
    def meter_adopt(self, levels: Sequence[MeterLevelV1]) -> None: ...
    def thaw(self) -> None: ...
    def close(self) -> None: ...


class HandoffBridge(Protocol):
    """A bridge's learned state as a handoff moves it (``hitless.ofproto.bridge.Bridge``
    implements it)."""

    mac: MacTable
    ofports: OfportAllocator
    of: OfState
    revalidator: Revalidator

    def export_openflow(self, now: float) -> OpenFlow: ...
    def import_openflow(self, of: OpenFlow, now: float) -> None: ...
    def start_openflow_journal(self) -> None: ...
    def take_openflow_journal(
        self,
    ) -> tuple[set[tuple[int, tuple[int, int, int, int, int]]], set[object], bool]: ...
    def apply_openflow_delta(
        self,
        removed: list[Rule],
        delta: OpenFlowDelta,
        counters: list[tuple[Rule, int, int, float]],
        now: float,
    ) -> None: ...
    def settle_meters(self) -> None: ...
    def adopt_learned(
        self, macs: list[MacEntryV1], ofports: dict[str, int], now: float
    ) -> None: ...
    def revalidate_adopted(self, now: float) -> None: ...
    def close(self) -> None: ...


class Running(Protocol):
    """One bridge as the switch runs it: its bridge and its datapath
    (``hitless.daemon.switch.RunningBridge``; a test's in-memory pair)."""

    @property
    def bridge(self) -> HandoffBridge: ...
    @property
    def datapath(self) -> HandoffDatapath: ...


# (name, rebuilt datapath) -> a bridge over it, not configured yet
BridgeFactory = Callable[[str, Any], HandoffBridge]
