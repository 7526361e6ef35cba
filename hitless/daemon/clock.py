"""The daemon's clock: CLOCK_MONOTONIC (shared by every process on the machine, so
datapath ``used`` times stay meaningful across a handoff) plus a warp offset, and
optionally stopped: what ``ovs-appctl time/stop`` and ``time/warp`` drive, so that idle
and hard timeouts, MAC ageing and revalidation can be tested without waiting.

``WarpClock()`` is called like ``time.monotonic``. ``stop()`` freezes it; ``warp(s)``
moves it forward by ``s`` seconds (stopped or not). ``plan(total, step, done)`` asks for
a warp in steps: the daemon's loop calls ``step()`` once per iteration, which advances
one step, so every timer due in between fires in order (``time/warp LARGE_MSECS MSECS``
as in Open vSwitch), and ``done`` is called after the last one.

Housekeeping that must never stand still (the handoff lease) uses ``base``, the real
clock. ``export_state()``/``adopt()`` carry the offset and the stopped value to a successor.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["WarpClock"]


class WarpClock:
    def __init__(self, base: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.offset = 0.0
        self.stopped_at: float | None = None
        self._steps = 0
        self._step = 0.0
        self._left = 0.0
        self._done: Callable[[], None] | None = None

    def __call__(self) -> float:
        if self.stopped_at is not None:
            return self.stopped_at
        return self.base() + self.offset

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    @property
    def warped(self) -> bool:
        """True once anyone stopped or warped the clock (it differs from ``base``)."""
        return self.stopped_at is not None or self.offset != 0.0

    def stop(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = self()

    def warp(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock never goes back")
        if self.stopped_at is not None:
            self.stopped_at += seconds
        else:
            self.offset += seconds

    # Stepped warps -------------------------------------------------------------------
    @property
    def stepping(self) -> bool:
        return self._steps > 0 or self._done is not None

    def plan(self, total: float, step: float, done: Callable[[], None]) -> None:
        """Warp by ``total`` in steps of ``step`` (the last one may be shorter), one per
        ``step()`` call; then call ``done``. Replaces an unfinished plan (whose ``done``
        is called first)."""
        if total < 0 or step <= 0:
            raise ValueError("a warp needs total >= 0 and step > 0")
        if self._done is not None:
            self._done()
        self._left, self._step, self._done = total, step, done
        self._steps = max(1, int(-(-total // step)))

    def step(self) -> None:
        """Advance one planned step; the call after the last step calls ``done`` (so
        the loop has run once at the final time before). A no-op without a plan."""
        if self._steps:
            self._steps -= 1
            d = self._left if not self._steps else min(self._step, self._left)
            self.warp(d)
            self._left -= d
        elif self._done is not None:
            done, self._done = self._done, None
            done()

    # Handoff -----------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """The warp, for a successor (a stepped warp under way counts as done)."""
        offset, stopped = self.offset, self.stopped_at
        if self._steps:
            if stopped is not None:
                stopped += self._left
            else:
                offset += self._left
        return {"offset": offset, "stopped_at": stopped}

    def adopt(self, state: dict[str, Any]) -> None:
        self.offset = float(state.get("offset", 0.0))
        stopped = state.get("stopped_at")
        self.stopped_at = None if stopped is None else float(stopped)
