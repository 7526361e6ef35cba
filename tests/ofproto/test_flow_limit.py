"""The datapath flow limit (Open_vSwitch other_config:flow-limit): past it, a miss is
still handled (learned, forwarded) but installs no flow, and is counted."""

from __future__ import annotations

from hitless.config.model import DEFAULT_FLOW_LIMIT
from hitless.daemon.switch import flow_limit
from tests.ofproto.helpers import BCAST, P, Rig, frame, mac


def src(i: int) -> str:
    return f"52:54:00:00:{i >> 8:02x}:{i & 0xFF:02x}"


def test_misses_past_the_limit_are_forwarded_and_counted_but_install_nothing() -> None:
    r = Rig({"p1": P(), "p2": P()})
    r.send("p1", frame(BCAST, mac(1)))
    r.bridge.flow_limit = 10
    installed = r.dp.flow_count()
    for i in range(30):
        out = r.send("p2", frame(mac(1), src(i)))
        assert list(out) == ["p1"]  # forwarded all the same
    assert r.dp.flow_count() == 10
    assert r.bridge.n_flow_limit_hit == 30 - (10 - installed)
    assert r.bridge.mac.lookup(0, bytes.fromhex(src(29).replace(":", ""))) is not None
    # idle flows expire and make room again
    r.advance(r.bridge.max_idle + 1)
    r.advance(r.bridge.max_idle + 1)
    assert r.dp.flow_count() == 0
    r.send("p2", frame(mac(1), src(1000)))
    assert r.dp.flow_count() == 1


def test_flow_limit_setting() -> None:
    assert flow_limit({}) == DEFAULT_FLOW_LIMIT == 200_000
    assert flow_limit({"flow-limit": "5000"}) == 5000
    assert flow_limit({"flow-limit": "0"}) == DEFAULT_FLOW_LIMIT
    assert flow_limit({"flow-limit": "lots"}) == DEFAULT_FLOW_LIMIT
