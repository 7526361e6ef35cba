"""Patch ports: a pair of device-less datapath ports that connect two bridges.

As in Open vSwitch, an interface of type ``patch`` names its peer with
``options:peer=<interface>``; a frame output to it is received by the peer patch port
(on another bridge, usually another datapath instance in this process) and goes
through that bridge's datapath as any received frame: megaflow lookup, and an upcall
to that bridge on a miss.

The ``PatchPanel`` joins the two ends. Every provider plugs its patch ports into the
panel it holds (``Datapath.patch_panel``, by default the process's ``PANEL``), keyed by
interface name (unique across the bridges of one switch, as in OVSDB). A pair is
connected while both ends are plugged and each names the other; otherwise both ends
report their link down and an error (what Open vSwitch writes to ``Interface.error``
for a bad ``peer`` option; a peer that does not exist is reported too).

Delivery is a direct call into the peer datapath, so a frame crossing several
bridges recurses once per hop. ``MAX_DEPTH`` bounds that: a frame that would cross
more patch ports than that inside one delivery (a forwarding loop through patch
ports) is dropped and counted in ``n_looped``. A provider that forwards in batches
wraps each batch in ``PatchPanel.batch()``; a peer that receives frames inside it may
queue its output and ``defer`` the flush to the batch's end (the netdev datapath does:
frames that crossed a pair used to leave with one send each).

Handoff: patch ports have no descriptor; a provider exports them as (number, name,
peer) and a new process plugs them into its own panel when it adopts the ports. The
last instance to plug a name owns it (an in-memory handoff test has both sides in one
process), and only the owner's ``unplug`` removes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from hitless.datapath.errors import DatapathError

__all__ = ["MAX_DEPTH", "PANEL", "PatchEnd", "PatchPanel", "patch_peer"]

MAX_DEPTH = 16  # patch crossings within one delivery before a frame is dropped
IFNAMSIZ = 16


class PatchEnd(Protocol):
    """What a provider implements to receive frames on its patch ports."""

    def patch_input(self, port_no: int, packet: bytes) -> None: ...


def patch_peer(name: str, options: Mapping[str, str] | None) -> str:
    """The ``peer`` of a patch interface's options; raises DatapathError (worded as
    Open vSwitch words it) when the options are not a valid patch configuration."""
    opts = dict(options or {})
    peer = opts.get("peer")
    if not peer:
        raise DatapathError(f"{name}: patch type requires valid 'peer' argument")
    if len(opts) > 1:
        raise DatapathError(f"{name}: patch type takes only a 'peer' argument")
    if len(peer.encode()) >= IFNAMSIZ:
        raise DatapathError(f"{name}: patch 'peer' arg too long")
    if peer == name:
        raise DatapathError(f"{name}: patch peer must not be self")
    return peer


@dataclass(slots=True)
class _End:
    peer: str
    owner: PatchEnd
    port_no: int


class PatchPanel:
    def __init__(self, max_depth: int = MAX_DEPTH) -> None:
        self.max_depth = max_depth
        self._ends: dict[str, _End] = {}
        self.depth = 0
        self.n_looped = 0
        # Batching across a pair: while some provider forwards a batch (``batch()``), a
        # peer that receives frames may queue its own output and ask to be flushed when
        # the outermost batch ends (``defer``), so frames that crossed a patch port leave
        # in the same kind of batch as the others, not one send per frame.
        self._batches = 0
        self._deferred: list[Callable[[], None]] = []

    @property
    def batching(self) -> bool:
        """Whether a provider is inside ``batch()`` (a ``defer``red flush will run)."""
        return self._batches > 0

    def defer(self, flush: Callable[[], None]) -> None:
        """Run ``flush`` when the outermost ``batch()`` ends."""
        self._deferred.append(flush)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self._batches += 1
        try:
            yield
        finally:
            self._batches -= 1
            if not self._batches:
                while self._deferred:
                    self._deferred.pop()()

    def plug(self, name: str, peer: str, owner: PatchEnd, port_no: int) -> None:
        self._ends[name] = _End(peer, owner, port_no)

    def unplug(self, name: str, owner: PatchEnd) -> None:
        end = self._ends.get(name)
        if end is not None and end.owner is owner:
            del self._ends[name]

    def error(self, name: str) -> str | None:
        """Why the patch port ``name`` is not connected (None: it is)."""
        end = self._ends.get(name)
        if end is None:
            return f"{name}: patch port is not attached"
        other = self._ends.get(end.peer)
        if other is None:
            return f"{name}: patch peer {end.peer} does not exist"
        if other.peer != name:
            return f"{name}: patch peer {end.peer} has peer {other.peer}, not {name}"
        return None

    def send(self, name: str, packet: bytes) -> bool:
        """Deliver a frame output to patch port ``name`` to its peer; False if it was
        dropped (no connected peer, or the loop guard)."""
        end = self._ends.get(name)
        if end is None:
            return False
        other = self._ends.get(end.peer)
        if other is None or other.peer != name:
            return False
        if self.depth >= self.max_depth:
            self.n_looped += 1
            return False
        self.depth += 1
        try:
            other.owner.patch_input(other.port_no, packet)
        finally:
            self.depth -= 1
        return True


PANEL = PatchPanel()
"""The process's panel: every datapath opened by ``open_datapath`` uses it."""
