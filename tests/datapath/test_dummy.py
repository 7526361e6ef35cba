"""The dummy datapath and the megaflow table, in memory."""

from __future__ import annotations

import pytest

from hitless.datapath.actions import (
    Output,
    PopVlan,
    PushVlan,
    SetField,
    Userspace,
    actions_from_json,
    actions_to_json,
)
from hitless.datapath.base import DatapathError, DpFlow
from hitless.datapath.dummy import DummyDatapath
from hitless.datapath.megaflow import MegaflowTable
from hitless.packet.flow import VLAN_PRESENT, Match, extract_key, full_mask, make_key, make_mask
from hitless.state import handles

A = "02:00:00:00:00:0a"
B = "02:00:00:00:00:0b"


def frame(dst: str, src: str, eth_type: int = 0x88B5, payload: bytes = bytes(46)) -> bytes:
    mac = lambda s: bytes.fromhex(s.replace(":", ""))  # noqa: E731
    return mac(dst) + mac(src) + eth_type.to_bytes(2, "big") + payload


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def dp() -> DummyDatapath:
    d = DummyDatapath("br0", clock=Clock())
    d.port_add("p1")
    d.port_add("p2")
    d.port_add("p3")
    return d


def l2(in_port: int, dst: str) -> Match:
    return Match.of(make_key(in_port=in_port, eth_dst=dst), full_mask("in_port", "eth_dst"))


def test_miss_is_an_upcall_with_the_packet_and_key(dp: DummyDatapath) -> None:
    pkt = frame(B, A)
    dp.receive(1, pkt)
    [up] = dp.recv_upcalls()
    assert (up.in_port, up.packet, up.reason) == (1, pkt, "miss")
    assert up.key == extract_key(pkt, 1)
    assert dp.pop_sent() == {}


def test_hit_forwards_and_counts(dp: DummyDatapath) -> None:
    dp.flow_put(l2(1, B), (Output(2), Output(3)))
    pkt = frame(B, A)
    dp.clock.now = 123.0  # type: ignore[attr-defined]
    dp.receive(1, pkt)
    dp.receive(1, pkt)
    assert dp.pop_sent() == {2: [pkt, pkt], 3: [pkt, pkt]}
    flow = dp.flow_get(l2(1, B))
    assert flow is not None
    assert (flow.stats.packets, flow.stats.bytes, flow.stats.used) == (2, 2 * len(pkt), 123.0)
    assert dp.ports()[2].stats.tx_packets == 2 and dp.ports()[1].stats.rx_packets == 2
    assert dp.recv_upcalls() == []


def test_other_destination_still_misses(dp: DummyDatapath) -> None:
    dp.flow_put(l2(1, B), (Output(2),))
    dp.receive(1, frame(A, B))
    assert len(dp.recv_upcalls()) == 1


def test_vlan_actions_and_userspace(dp: DummyDatapath) -> None:
    dp.flow_put(l2(1, B), (PushVlan(5), Output(2), PopVlan(), Output(3), Userspace(b"x")))
    pkt = frame(B, A)
    dp.receive(1, pkt)
    sent = dp.pop_sent()
    assert sent[2] == [pkt[:12] + b"\x81\x00\x00\x05" + pkt[12:]]
    assert sent[3] == [pkt]
    [up] = dp.recv_upcalls()
    assert (up.reason, up.userdata) == ("action", b"x")


def test_flow_modify_keeps_or_resets_stats(dp: DummyDatapath) -> None:
    m = l2(1, B)
    dp.flow_put(m, (Output(2),))
    dp.receive(1, frame(B, A))
    dp.flow_put(m, (Output(3),))
    flow = dp.flow_get(m)
    assert flow is not None and flow.stats.packets == 1 and flow.actions == (Output(3),)
    dp.flow_put(m, (Output(3),), reset_stats=True)
    assert dp.flow_get(m).stats.packets == 0  # type: ignore[union-attr]
    deleted = dp.flow_del(m)
    assert deleted is not None and dp.flow_get(m) is None and dp.flow_del(m) is None


def test_port_errors_name_the_culprit(dp: DummyDatapath) -> None:
    dp.missing_devices.add("eth9")
    with pytest.raises(
        DatapathError, match=r"could not open network device eth9 \(No such device\)"
    ):
        dp.port_add("eth9")
    with pytest.raises(DatapathError, match="p1 is already attached to br0 as port 1"):
        dp.port_add("p1")
    with pytest.raises(DatapathError, match="port number 2 is already in use"):
        dp.port_add("p9", 2)


def test_link_down_port_sends_nothing(dp: DummyDatapath) -> None:
    dp.flow_put(l2(1, B), (Output(2),))
    dp.set_link(2, False)
    dp.receive(1, frame(B, A))
    assert dp.pop_sent() == {}


def test_export_and_adopt_keep_ports(dp: DummyDatapath) -> None:
    state, fds = dp.export_handles()
    assert fds == []
    wire = handles.to_wire(state)  # what DatapathV1.handles carries
    assert wire["ports"] == [[1, "p1", "system"], [2, "p2", "system"], [3, "p3", "system"]]
    new = DummyDatapath.adopt("br0", handles.from_wire("dummy", wire), fds)
    assert {n: p.name for n, p in new.ports().items()} == {1: "p1", 2: "p2", 3: "p3"}


# Megaflow table -----------------------------------------------------------------


def flow(match: Match, port: int) -> DpFlow:
    return DpFlow(match, (Output(port),))


def test_megaflow_lookup_across_masks() -> None:
    t = MegaflowTable()
    by_dst = l2(1, B)
    by_vlan = Match.of(
        make_key(in_port=2, vlan_tci=VLAN_PRESENT | 7),
        make_mask(in_port=0xFFFFFFFF, vlan_tci=0x1FFF),
    )
    t.insert(flow(by_dst, 2))
    t.insert(flow(by_vlan, 3))
    assert len(t) == 2
    assert t.lookup(extract_key(frame(B, A), 1)).actions == (Output(2),)  # type: ignore[union-attr]
    tagged = frame(B, A)[:12] + b"\x81\x00\x20\x07" + frame(B, A)[12:]  # pcp 1, vid 7
    assert t.lookup(extract_key(tagged, 2)).actions == (Output(3),)  # type: ignore[union-attr]
    assert t.lookup(extract_key(frame(B, A), 2)) is None
    assert t.lookup(extract_key(frame(A, B), 1)) is None


def test_megaflow_cache_follows_changes() -> None:
    t = MegaflowTable()
    key = extract_key(frame(B, A), 1)
    t.insert(flow(l2(1, B), 2))
    assert t.lookup(key) is not None  # now cached
    t.remove(l2(1, B))
    assert t.lookup(key) is None
    t.insert(flow(l2(1, B), 3))
    assert t.lookup(key).actions == (Output(3),)  # type: ignore[union-attr]
    t.insert(flow(l2(1, B), 4))  # same match replaces
    assert len(t) == 1 and t.lookup(key).actions == (Output(4),)  # type: ignore[union-attr]
    assert [f.actions for f in t] == [(Output(4),)]


def test_actions_json_round_trip() -> None:
    acts = (
        Output(3),
        PushVlan(0x2005, 0x88A8),
        PopVlan(),
        SetField("eth_dst", b"\x01" * 6, b"\xff" * 6),
        SetField("ip_ttl", b"\x05"),
        Userspace(b"\x00\x01"),
    )
    import json

    assert actions_from_json(json.loads(json.dumps(actions_to_json(acts)))) == acts
    with pytest.raises(ValueError, match="unknown action"):
        actions_from_json([["teleport", 1]])
