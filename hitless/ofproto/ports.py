"""OpenFlow port numbers for interfaces: stable, honouring ofport_request, remembered.

Datapath port number == OpenFlow port number. The bridge's own internal interface is
OFPP_LOCAL. A number stays with its interface while it exists; when an interface goes
away its number is remembered, so it comes back with the same number if that is still
free, and fresh allocations avoid numbers remembered for other interfaces while any
other number is free.
"""

from __future__ import annotations

from hitless.config.model import OFPP_LOCAL

__all__ = ["OFPP_MAX", "OfportAllocator"]

OFPP_MAX = 0xFF00  # highest number for a physical/logical port (OpenFlow 1.3, 7.2.1)


class OfportAllocator:
    def __init__(self) -> None:
        self.in_use: dict[int, str] = {}  # ofport -> interface name
        self.remembered: dict[str, int] = {}  # interface name -> last ofport

    def choose(self, name: str, request: int | None, local: bool) -> int:
        """The number to try for ``name`` (not yet marked in use)."""
        if local:
            return OFPP_LOCAL
        if request is not None and 1 <= request <= OFPP_MAX and request not in self.in_use:
            return request
        old = self.remembered.get(name)
        if old is not None and old not in self.in_use:
            return old
        reserved = set(self.remembered.values())
        for n in range(1, OFPP_MAX + 1):
            if n not in self.in_use and n not in reserved:
                return n
        for n in range(1, OFPP_MAX + 1):
            if n not in self.in_use:
                return n
        raise ValueError("no OpenFlow port numbers left")

    def take(self, name: str, ofport: int) -> None:
        self.in_use[ofport] = name
        self.remembered[name] = ofport

    def release(self, ofport: int) -> None:
        name = self.in_use.pop(ofport, None)
        if name is not None:
            self.remembered[name] = ofport

    def export(self) -> dict[str, int]:
        return dict(sorted(self.remembered.items()))

    def import_(self, remembered: dict[str, int]) -> None:
        for name, n in remembered.items():
            self.remembered.setdefault(name, int(n))
