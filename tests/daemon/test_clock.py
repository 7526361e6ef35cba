"""The daemon's warpable clock (time/stop, time/warp) as a pure object."""

from __future__ import annotations

import pytest

from hitless.daemon.clock import WarpClock


class Base:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_warp_stop_and_export() -> None:
    base = Base()
    c = WarpClock(base)
    assert c() == 100.0 and not c.warped
    c.warp(5)
    base.t = 101.0
    assert c() == 106.0 and c.warped
    c.stop()
    base.t = 200.0
    assert c() == 106.0
    c.warp(0.5)
    assert c() == 106.5
    with pytest.raises(ValueError):
        c.warp(-1)
    other = WarpClock(base)
    other.adopt(c.export_state())
    assert other() == 106.5 and other.stopped


def test_stepped_warp_advances_once_per_step_then_reports() -> None:
    c = WarpClock(Base())
    c.stop()
    done: list[float] = []
    c.plan(2.5, 1.0, lambda: done.append(c()))
    seen = []
    while c.stepping:
        c.step()
        seen.append(round(c() - 100.0, 6))
    # steps of 1 s, the last one shorter, then one more iteration at the final time: done
    assert seen == [1.0, 2.0, 2.5, 2.5] and done == [102.5]
    c.step()  # no plan: nothing
    assert c() == 102.5
