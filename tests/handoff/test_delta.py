"""The delta freeze: whatever changes between the pre-copy and the freeze (hosts
learned, moved, flushed; flows added, modified, removed; counters moving), the new side
ends up with exactly the old side's state, and both digests agree."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.config.model import BridgeConfig, InterfaceConfig, PortConfig
from hitless.daemon.switch import RunningBridge
from hitless.daemon.takeover import SwitchExporter, SwitchImporter, export_switch
from hitless.datapath import Output
from hitless.datapath.dummy import DummyDatapath
from hitless.ofproto.bridge import Bridge
from hitless.packet.flow import Match, full_mask, make_key
from hitless.state import ledger, records, snapshot

PORTS = ["p1", "p2", "p3"]
CFG = BridgeConfig(
    "br0",
    "dummy",
    ports={p: PortConfig(p, (InterfaceConfig(p),)) for p in PORTS},
    other_config={"max-idle": "600000"},
)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeSwitch:
    def __init__(self, clock: Clock) -> None:
        self.bridges: dict[str, RunningBridge] = {}
        self.clock = clock
        self.inherited_openflow: dict[str, object] = {}
        self.unreachable_since: dict[str, float] = {}  # what the fail-open extra carries

    def force_reconcile(self) -> None:
        pass

    def listening_fds(self) -> dict[str, int]:
        return {}

    def export_openflow_sessions(self) -> tuple[list[dict[str, object]], list[int]]:
        return [], []


def old_switch(clock: Clock) -> tuple[FakeSwitch, DummyDatapath, Bridge]:
    sw = FakeSwitch(clock)
    dp = DummyDatapath("br0", clock=clock)
    bridge = Bridge("br0", dp)
    bridge.reconfigure(CFG, clock())
    sw.bridges["br0"] = RunningBridge(CFG, bridge, dp)
    return sw, dp, bridge


def frame(src: int, dst: int) -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + b"\x08\x06" + bytes(28)


def send(dp: DummyDatapath, bridge: Bridge, clock: Clock, port: int, src: int, dst: int) -> None:
    dp.receive(port, frame(src, dst))
    bridge.run(clock())
    dp.pop_sent()


def full(sw: Any, clock: Clock) -> records.State:
    state, _ = export_switch(sw, clock(), final=False)
    return state


def handoff(sw: FakeSwitch, clock: Clock, between: Any) -> tuple[Any, SwitchImporter]:
    ex = SwitchExporter(sw)
    pre = ex.precopy(clock(), True)
    new = FakeSwitch(clock)
    imp = SwitchImporter(new)  # type: ignore[arg-type]
    imp.prepare(msgspec.msgpack.decode(msgspec.msgpack.encode(pre), type=records.State), True)
    between()
    frozen = ex.freeze(clock(), True)
    assert isinstance(frozen.state, records.Delta)
    wire = snapshot.encode_delta(
        frozen.state, software="t", taken=clock(), version=snapshot.CURRENT_VERSION
    )
    _, delta = snapshot.decode_delta(wire)
    digest, counts = imp.restore_delta(delta, [])
    assert digest == frozen.digest
    assert counts == frozen.counts
    return frozen, imp


def rebuilt(imp: SwitchImporter, clock: Clock) -> records.State:
    sw = FakeSwitch(clock)
    for name, (bridge, dp) in imp.restored.items():
        sw.bridges[name] = RunningBridge(CFG, bridge, dp)
    return full(sw, clock)


B = 0xFFFFFFFFFFFF


def test_changes_between_precopy_and_freeze_all_arrive() -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(20):
        send(dp, bridge, clock, 1 + i % 3, 0x020000000000 + i, B)

    def between() -> None:
        clock.t += 1
        send(dp, bridge, clock, 1, 0x020000000100, B)  # a new host
        send(dp, bridge, clock, 3, 0x020000000000, B)  # a move (was on port 1)
        send(dp, bridge, clock, 2, 0x020000000001, 0x020000000002)  # a unicast flow
        m = next(iter(dp.flow_dump())).match
        dp.flow_del(m)  # a flow removed
        dp.receive(3, frame(0x020000000005, B))  # a counter moves on an existing flow
        bridge.mac.forget([(0, (0x020000000007).to_bytes(6, "big"))])  # an entry gone

    _, imp = handoff(sw, clock, between)
    old_state, new_state = full(sw, clock), rebuilt(imp, clock)
    assert ledger.state_digest(new_state) == ledger.state_digest(old_state)
    old_stats = {
        (f.key, f.mask): (f.packet_count, f.byte_count) for f in old_state.bridges[0].datapath.flows
    }
    new_stats = {
        (f.key, f.mask): (f.packet_count, f.byte_count) for f in new_state.bridges[0].datapath.flows
    }
    assert new_stats == old_stats


def test_a_bridge_created_after_the_precopy_comes_whole() -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    send(dp, bridge, clock, 1, 0x020000000001, B)

    def between() -> None:
        dp2 = DummyDatapath("br1", clock=clock)
        b2 = Bridge("br1", dp2)
        cfg2 = BridgeConfig(
            "br1", "dummy", ports={"q1": PortConfig("q1", (InterfaceConfig("q1"),))}
        )
        b2.reconfigure(cfg2, clock())
        dp2.flow_put(Match.of(make_key(in_port=1), full_mask("in_port")), (Output(1),))
        sw.bridges["br1"] = RunningBridge(cfg2, b2, dp2)

    _, imp = handoff(sw, clock, between)
    assert set(imp.restored) == {"br0", "br1"}
    assert ledger.state_digest(rebuilt(imp, clock)) == ledger.state_digest(full(sw, clock))


def test_a_tampered_delta_is_caught_by_the_digest() -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(5):
        send(dp, bridge, clock, 1, 0x020000000000 + i, B)
    ex = SwitchExporter(sw)
    pre = ex.precopy(clock(), True)
    imp = SwitchImporter(FakeSwitch(clock))  # type: ignore[arg-type]
    imp.prepare(pre, True)
    send(dp, bridge, clock, 2, 0x020000000009, B)
    frozen = ex.freeze(clock(), True)
    d = frozen.state.bridges[0]
    lying = records.Delta(
        [
            msgspec.structs.replace(
                d,
                changed=msgspec.structs.replace(
                    d.changed,
                    mac_entries=[msgspec.structs.replace(m, port=3) for m in d.changed.mac_entries],
                ),
            )
        ]
    )
    digest, _ = imp.restore_delta(lying, [])
    assert digest != frozen.digest


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 3),
            st.integers(0, 12),
            st.sampled_from(["bcast", "uni", "del", "forget", "age"]),
        ),
        max_size=25,
    )
)
def test_random_changes_between_precopy_and_freeze(ops: list[tuple[int, int, str]]) -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(8):
        send(dp, bridge, clock, 1 + i % 3, 0x020000000000 + i, B)

    def between() -> None:
        for port, host, op in ops:
            clock.t += 0.5
            src = 0x020000000000 + host
            if op == "bcast":
                send(dp, bridge, clock, port, src, B)
            elif op == "uni":
                send(dp, bridge, clock, port, src, 0x020000000000 + (host + 1) % 13)
            elif op == "del":
                flows = list(dp.flow_dump())
                if flows:
                    dp.flow_del(flows[host % len(flows)].match)
            elif op == "forget":
                bridge.mac.forget([(0, src.to_bytes(6, "big"))])
            else:
                bridge.run(clock())

    _, imp = handoff(sw, clock, between)
    assert ledger.state_digest(rebuilt(imp, clock)) == ledger.state_digest(full(sw, clock))


@pytest.mark.parametrize("n", [0, 1])
def test_no_changes_at_all(n: int) -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(n):
        send(dp, bridge, clock, 1, 0x020000000000 + i, B)
    frozen, imp = handoff(sw, clock, lambda: None)
    assert all(
        not b.changed.datapath.flows and not b.changed.mac_entries for b in frozen.state.bridges
    )
    assert ledger.state_digest(rebuilt(imp, clock)) == ledger.state_digest(full(sw, clock))
