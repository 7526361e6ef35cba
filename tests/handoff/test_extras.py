"""Extras: a layer's small learned state (bonds, a clock's warp...) carried at the freeze
by name, without a state version change: exported by the old side into the final state
(bridges) or the Frozen message (switch), adopted by the new side after commit; a name
the new side has no adopter for is ignored, an adopter that fails loses only its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hitless.daemon import takeover
from hitless.daemon.switch import RunningBridge
from hitless.daemon.takeover import SwitchExporter, SwitchImporter
from hitless.state import snapshot
from tests.handoff.test_delta import CFG, B, Clock, FakeSwitch, old_switch, send


@pytest.fixture
def registry() -> Iterator[None]:
    bridges, switches = dict(takeover._BRIDGE_EXTRAS), dict(takeover._SWITCH_EXTRAS)
    yield
    takeover._BRIDGE_EXTRAS.clear()
    takeover._BRIDGE_EXTRAS.update(bridges)
    takeover._SWITCH_EXTRAS.clear()
    takeover._SWITCH_EXTRAS.update(switches)


def handoff(delta: bool) -> tuple[Any, SwitchImporter, FakeSwitch]:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    send(dp, bridge, clock, 1, 0x020000000001, B)
    ex = SwitchExporter(sw)
    ex.use_features(["delta"] if delta else [])
    env_pre = ex.precopy(clock(), delta)
    new = FakeSwitch(clock)
    imp = SwitchImporter(new)  # type: ignore[arg-type]
    imp.prepare(env_pre, delta, clock())
    frozen = ex.freeze(clock(), delta)
    if delta:
        wire = snapshot.encode_delta(frozen.state, software="t", taken=clock(), version=3)
        imp.restore_delta(snapshot.decode_delta(wire)[1], [])
    else:
        wire = snapshot.encode(frozen.state, software="t", taken=clock())
        imp.restore(snapshot.decode(wire)[1], [], 3)
    imp.take_extras(frozen.extras)
    for name, (b, d) in imp.restored.items():  # what commit does, without a database
        new.bridges[name] = RunningBridge(CFG, b, d)
    return frozen, imp, new


@pytest.mark.parametrize("delta", [True, False])
def test_bridge_and_switch_extras_travel_at_the_freeze(registry: None, delta: bool) -> None:
    adopted: list[tuple[str, Any]] = []
    takeover.register_bridge_extra(
        "t-bonds",
        export=lambda bridge, now: {"active": "p1", "bridge": bridge.name},
        adopt=lambda bridge, data, now: adopted.append((bridge.name, data)),
    )
    takeover.register_bridge_extra(
        "t-nothing", export=lambda bridge, now: None, adopt=lambda b, d, n: adopted.append(d)
    )
    takeover.register_switch_extra(
        "t-clock",
        export=lambda switch: {"offset": 1.5},
        adopt=lambda switch, data: adopted.append(("switch", data)),
    )
    frozen, imp, new = handoff(delta)
    bridges = frozen.state.bridges
    extra = bridges[0].changed.extra if delta else bridges[0].extra
    assert extra == {"t-bonds": {"active": "p1", "bridge": "br0"}}  # None: not carried
    assert frozen.extras == {"t-clock": {"offset": 1.5}}
    imp.adopt_extras(new, 0.0)  # type: ignore[arg-type]
    assert adopted == [("br0", {"active": "p1", "bridge": "br0"}), ("switch", {"offset": 1.5})]


def test_unknown_or_failing_extras_lose_only_themselves(registry: None) -> None:
    adopted: list[Any] = []

    def boom(bridge: Any, data: Any, now: float) -> None:
        raise RuntimeError("cannot")

    takeover.register_bridge_extra("t-a", export=lambda b, n: 1, adopt=boom)
    takeover.register_bridge_extra(
        "t-b", export=lambda b, n: 2, adopt=lambda b, d, n: adopted.append(d)
    )
    takeover.register_bridge_extra("t-gone", export=lambda b, n: 3, adopt=boom)
    _, imp, new = handoff(True)
    del takeover._BRIDGE_EXTRAS["t-gone"]  # a new build without this layer
    imp.adopt_extras(new, 0.0)  # type: ignore[arg-type]
    assert adopted == [2]


def test_extras_do_not_change_the_digest(registry: None) -> None:
    plain, _, _ = handoff(True)
    takeover.register_bridge_extra("t-x", export=lambda b, n: [1, 2], adopt=lambda b, d, n: None)
    carried, _, _ = handoff(True)
    assert carried.digest == plain.digest


def test_an_extra_whose_export_fails_is_left_out_and_the_handoff_goes_on(registry: None) -> None:
    def boom(*args: Any) -> Any:
        raise AttributeError("no such state here")

    adopted: list[Any] = []
    takeover.register_bridge_extra("t-boom", export=boom, adopt=lambda b, d, n: adopted.append(d))
    takeover.register_bridge_extra(
        "t-ok", export=lambda b, n: 7, adopt=lambda b, d, n: adopted.append(d)
    )
    takeover.register_switch_extra("t-sboom", export=boom, adopt=lambda s, d: adopted.append(d))
    frozen, imp, new = handoff(True)
    assert "t-sboom" not in frozen.extras
    assert frozen.state.bridges[0].changed.extra == {"t-ok": 7}
    imp.adopt_extras(new, 0.0)  # type: ignore[arg-type]
    assert adopted == [7]
