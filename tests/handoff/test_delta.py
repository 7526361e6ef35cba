"""The delta freeze: whatever changes between the pre-copy and the freeze (hosts
learned, moved, flushed; flows added, modified, removed; counters moving), the new side
ends up with exactly the old side's state, and both digests agree. Two engines and
in-memory bridges (tests/handoff/pair.py)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.config.model import BridgeConfig, InterfaceConfig, PortConfig
from hitless.datapath import Output
from hitless.datapath.dummy import DummyDatapath
from hitless.handoff.engine import ImportEngine
from hitless.ofproto.bridge import Bridge
from hitless.packet.flow import Match, full_mask, make_key, widen
from hitless.state import ledger, records
from tests.handoff.pair import B, Clock, Held, frame, handoff, old_switch, send


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

    h = handoff(sw, clock, between)
    old_state, new_state = sw.state(), h.new.state()
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
        sw.bridges["br1"] = Held(b2, dp2)

    h = handoff(sw, clock, between, adopt=False)  # as restored (its hand-made flow is no
    # translation: the commit's revalidation would delete it)
    assert set(h.imp.restored) == {"br0", "br1"}
    assert ledger.state_digest(h.new.state()) == ledger.state_digest(sw.state())


def test_a_tampered_delta_is_caught_by_the_digest() -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(5):
        send(dp, bridge, clock, 1, 0x020000000000 + i, B)
    ex = sw.exporter()
    pre = ex.precopy(clock(), True)
    imp = ImportEngine(clock, Bridge)
    imp.prepare(pre, True)
    send(dp, bridge, clock, 2, 0x020000000009, B)
    frozen = ex.freeze(True)
    assert isinstance(frozen.state, records.Delta)
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

    h = handoff(sw, clock, between, adopt=False)  # as restored, before the commit's sweep
    assert ledger.state_digest(h.new.state()) == ledger.state_digest(sw.state())


@pytest.mark.parametrize("n", [0, 1])
def test_no_changes_at_all(n: int) -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(n):
        send(dp, bridge, clock, 1, 0x020000000000 + i, B)
    h = handoff(sw, clock)
    assert isinstance(h.frozen.state, records.Delta)
    assert all(
        not b.changed.datapath.flows and not b.changed.mac_entries for b in h.frozen.state.bridges
    )
    assert ledger.state_digest(h.new.state()) == ledger.state_digest(sw.state())


def test_flows_whose_counters_alone_moved_bring_counters_and_no_digest_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Most of a freeze's flows only forwarded since the pre-copy: their counters
    arrive, set on the flows the pre-copy built (the same objects), and neither side's
    digest ledger hashes them again (what stays in the freeze is the changes, not the
    traffic)."""
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(12):
        send(dp, bridge, clock, 1 + i % 3, 0x020000000000 + i, B)
    hashed: list[bytes] = []
    item = ledger.flow_item

    def counting(bridge_name: str, key: bytes, mask: bytes, actions: object) -> int:
        hashed.append(key)
        return item(bridge_name, key, mask, actions)

    def between() -> None:
        clock.t += 1
        for i in range(12):  # every flow forwards again, nothing else changes
            dp.receive(1 + i % 3, frame(0x020000000000 + i, B))
        dp.pop_sent()
        monkeypatch.setattr(ledger, "flow_item", counting)

    h = handoff(sw, clock, between, adopt=False)
    moved = [f for b in h.frozen.state.bridges for f in b.changed.datapath.flows]
    assert len(moved) == 12
    assert hashed == []
    old_state, new_state = sw.state(), h.new.state()
    counters = [{(f.key, f.mask): (f.packet_count, f.byte_count) for f in s.bridges[0].datapath.flows}
                for s in (old_state, new_state)]  # fmt: skip
    assert counters[0] == counters[1]
    assert sum(c for c, _ in counters[1].values()) == 12  # the frames of ``between``


def test_only_flows_the_pre_copy_copied_are_removed_by_the_delta() -> None:
    """A megaflow made after the pre-copy and gone before the freeze (short connections
    during a long pre-copy: most of the removals) never reached the new side, so the
    delta does not remove it; one the pre-copy copied is removed."""
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(4):
        send(dp, bridge, clock, 1 + i % 3, 0x020000000000 + i, B)
    copied = next(iter(dp.flow_dump())).match

    def between() -> None:
        clock.t += 1
        before = {f.match for f in dp.flow_dump()}
        send(dp, bridge, clock, 2, 0x020000000040, B)  # a new host, a new flow...
        made = {f.match for f in dp.flow_dump()} - before
        assert made
        for m in made:  # ...gone again before the freeze
            dp.flow_del(m)
        dp.flow_del(copied)

    h = handoff(sw, clock, between)
    assert isinstance(h.frozen.state, records.Delta)
    (d,) = h.frozen.state.bridges
    assert [widen(k, m) for k, m in d.removed_flows] == [(copied.key, copied.mask)]
    assert ledger.state_digest(h.new.state()) == ledger.state_digest(sw.state())
