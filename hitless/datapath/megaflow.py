"""The megaflow table shared by the providers: tuple space search.

Flows are grouped by mask ("subtables"); a lookup ANDs the packet's key with each mask
in turn and looks the result up in that subtable's dict. Megaflows never overlap, so
the first hit is the only hit. An exact-match cache in front (full key -> flow) makes
a repeated key cost one dict lookup.
"""

from __future__ import annotations

from collections.abc import Iterator

from hitless.datapath.base import DpFlow
from hitless.packet.flow import Match

EMC_SIZE = 65536


class MegaflowTable:
    __slots__ = ("_subtables", "_by_match", "_emc", "changed", "hits")

    def __init__(self) -> None:
        # While a handoff's pre-copy is out: every match inserted, modified or removed,
        # and (kept by the provider's forwarding loop) every match whose counters moved.
        self.changed: set[Match] | None = None
        self.hits: set[Match] | None = None
        # mask as int -> (masked key as int -> flow)
        self._subtables: dict[int, dict[int, DpFlow]] = {}
        self._by_match: dict[Match, DpFlow] = {}
        self._emc: dict[bytes, DpFlow] = {}

    def __len__(self) -> int:
        return len(self._by_match)

    def __iter__(self) -> Iterator[DpFlow]:
        return iter(list(self._by_match.values()))

    def get(self, match: Match) -> DpFlow | None:
        return self._by_match.get(match)

    def insert(self, flow: DpFlow) -> None:
        m = flow.match
        old = self._by_match.get(m)
        if old is not None:
            self.remove(m)
        self._by_match[m] = flow
        if self.changed is not None:
            self.changed.add(m)
        mask = int.from_bytes(m.mask, "big")
        self._subtables.setdefault(mask, {})[int.from_bytes(m.key, "big")] = flow
        self._emc.clear()

    def remove(self, match: Match) -> DpFlow | None:
        flow = self._by_match.pop(match, None)
        if flow is None:
            return None
        if self.changed is not None:
            self.changed.add(match)
        mask = int.from_bytes(match.mask, "big")
        sub = self._subtables.get(mask)
        if sub is not None:
            sub.pop(int.from_bytes(match.key, "big"), None)
            if not sub:
                del self._subtables[mask]
        self._emc.clear()
        return flow

    def touch(self, match: Match) -> None:
        """A flow's actions were modified in place."""
        if self.changed is not None:
            self.changed.add(match)

    def lookup(self, key: bytes) -> DpFlow | None:
        flow = self._emc.get(key)
        if flow is not None:
            return flow
        k = int.from_bytes(key, "big")
        for mask, sub in self._subtables.items():
            flow = sub.get(k & mask)
            if flow is not None:
                if len(self._emc) >= EMC_SIZE:
                    self._emc.clear()
                self._emc[key] = flow
                return flow
        return None


def recorded_hits(flows: MegaflowTable, since: float) -> list[DpFlow] | None:
    """The flows hit since tracking started (and used at or after ``since``), from the
    table's record; None when nothing was recorded (the caller scans instead)."""
    hits = flows.hits
    if hits is None:
        return None
    flows.hits = None
    out = []
    for m in hits:
        f = flows.get(m)
        if f is not None and f.stats.used >= since:
            out.append(f)
    return out
