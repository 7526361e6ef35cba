"""Extras: a layer's small learned state (bonds, a clock's warp...) carried at the freeze
by name, without a state version change: exported by the old side into the final state
(bridges) or beside it (switch), adopted by the new side after commit; a name the new
side has no adopter for is ignored, an adopter that fails loses only its own. Two
engines and in-memory bridges (tests/handoff/pair.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hitless.handoff import engine
from hitless.handoff.engine import adopt_switch_extras
from hitless.state import records
from tests.handoff.pair import B, Clock, Handoff, handoff, old_switch, send


@pytest.fixture
def registry() -> Iterator[None]:
    """Only the test's own extras are registered while it runs (the daemon's, which
    hitless.daemon.carried registers on import, would depend on which tests ran first)."""
    bridges, switches = dict(engine._BRIDGE_EXTRAS), dict(engine._SWITCH_EXTRAS)
    engine._BRIDGE_EXTRAS.clear()
    engine._SWITCH_EXTRAS.clear()
    yield
    engine._BRIDGE_EXTRAS.clear()
    engine._BRIDGE_EXTRAS.update(bridges)
    engine._SWITCH_EXTRAS.clear()
    engine._SWITCH_EXTRAS.update(switches)


def run(delta: bool) -> Handoff:
    clock = Clock()
    old, dp, bridge = old_switch(clock)
    send(dp, bridge, clock, 1, 0x020000000001, B)
    return handoff(old, clock, features=("delta",) if delta else (), adopt=False)


def bridge_extra(h: Handoff) -> dict[str, Any]:
    (b,) = h.frozen.state.bridges
    return dict(b.changed.extra if isinstance(b, records.BridgeDelta) else b.extra)


def adopt(h: Handoff) -> None:
    """What a commit does with the extras."""
    h.imp.adopt_extras(h.new.bridges, 0.0)
    adopt_switch_extras(h.new, h.extras)


@pytest.mark.parametrize("delta", [True, False])
def test_bridge_and_switch_extras_travel_at_the_freeze(registry: None, delta: bool) -> None:
    adopted: list[tuple[str, Any]] = []
    engine.register_bridge_extra(
        "t-bonds",
        export=lambda bridge, now: {"active": "p1", "bridge": bridge.name},
        adopt=lambda bridge, data, now: adopted.append((bridge.name, data)),
    )
    engine.register_bridge_extra(
        "t-nothing", export=lambda bridge, now: None, adopt=lambda b, d, n: adopted.append(d)
    )
    engine.register_switch_extra(
        "t-clock",
        export=lambda switch: {"offset": 1.5},
        adopt=lambda switch, data: adopted.append(("switch", data)),
    )
    h = run(delta)
    assert isinstance(h.frozen.state, records.Delta if delta else records.State)
    assert bridge_extra(h) == {"t-bonds": {"active": "p1", "bridge": "br0"}}  # None: not carried
    assert h.extras == {"t-clock": {"offset": 1.5}}
    adopt(h)
    assert adopted == [("br0", {"active": "p1", "bridge": "br0"}), ("switch", {"offset": 1.5})]


def test_unknown_or_failing_extras_lose_only_themselves(registry: None) -> None:
    adopted: list[Any] = []

    def boom(bridge: Any, data: Any, now: float) -> None:
        raise RuntimeError("cannot")

    engine.register_bridge_extra("t-a", export=lambda b, n: 1, adopt=boom)
    engine.register_bridge_extra(
        "t-b", export=lambda b, n: 2, adopt=lambda b, d, n: adopted.append(d)
    )
    engine.register_bridge_extra("t-gone", export=lambda b, n: 3, adopt=boom)
    h = run(True)
    del engine._BRIDGE_EXTRAS["t-gone"]  # a new build without this layer
    adopt(h)
    assert adopted == [2]


def test_extras_do_not_change_the_digest(registry: None) -> None:
    plain = run(True)
    engine.register_bridge_extra("t-x", export=lambda b, n: [1, 2], adopt=lambda b, d, n: None)
    carried = run(True)
    assert bridge_extra(carried) == {"t-x": [1, 2]}
    assert carried.frozen.digest == plain.frozen.digest


def test_an_extra_whose_export_fails_is_left_out_and_the_handoff_goes_on(registry: None) -> None:
    def boom(*args: Any) -> Any:
        raise AttributeError("no such state here")

    adopted: list[Any] = []
    engine.register_bridge_extra("t-boom", export=boom, adopt=lambda b, d, n: adopted.append(d))
    engine.register_bridge_extra(
        "t-ok", export=lambda b, n: 7, adopt=lambda b, d, n: adopted.append(d)
    )
    engine.register_switch_extra("t-sboom", export=boom, adopt=lambda s, d: adopted.append(d))
    h = run(True)
    assert "t-sboom" not in h.extras
    assert bridge_extra(h) == {"t-ok": 7}
    adopt(h)
    assert adopted == [7]
