"""Keeping installed megaflows true: MAC moves, aging, flushes, idle flows, stats."""

from __future__ import annotations

from hitless.datapath.actions import Output
from tests.ofproto.helpers import BCAST, P, Rig, frame, mac


def learned_pair(**other_config: str) -> Rig:
    r = Rig({"p1": P(), "p2": P(), "p3": P()}, **other_config)
    r.send("p1", frame(BCAST, mac(1)))
    r.send("p2", frame(BCAST, mac(2)))
    assert list(r.send("p2", frame(mac(1), mac(2)))) == ["p1"]
    return r


def flow_to(r: Rig, dst: str) -> list:  # noqa: ANN201
    d = bytes(int(x, 16) for x in dst.split(":"))
    return [f for f in r.dp.flow_dump() if f.match.key[4:10] == d]


def test_mac_move_revalidates_flows_towards_it() -> None:
    r = learned_pair()
    [before] = flow_to(r, mac(1))
    assert before.actions == (Output(r.no("p1")),)
    r.clock.t += 1
    r.send("p3", frame(BCAST, mac(1)))  # host 1 moved to p3
    assert r.bridge.mac.n_moves == 1
    [after] = flow_to(r, mac(1))
    assert after.match == before.match and after.actions == (Output(r.no("p3")),)
    missed = r.dp.n_missed
    out = r.send("p2", frame(mac(1), mac(2)))
    assert list(out) == ["p3"]  # straight from the fast path, the new way
    assert r.dp.n_missed == missed


def test_fdb_flush_revalidates_to_flooding() -> None:
    r = learned_pair()
    assert r.bridge.fdb_flush() == 2
    assert r.bridge.fdb_show().count("\n") == 1
    [f] = flow_to(r, mac(1))
    assert set(f.actions) == {Output(r.no("p1")), Output(r.no("p3"))}  # flood
    # the flooding flow was modified in place: its stats survive
    assert f.stats.packets == 0 and r.dp.flow_get(f.match) is f


def test_fdb_flush_per_port() -> None:
    r = learned_pair()
    assert r.bridge.fdb_flush(port=r.no("p1")) == 1
    assert mac(1) not in r.bridge.fdb_show() and mac(2) in r.bridge.fdb_show()


def test_aging_removes_entries_and_revalidates() -> None:
    r = learned_pair(**{"mac-aging-time": "10", "max-idle": "60000"})
    assert r.bridge.next_wakeup(r.clock.t) is not None
    r.advance(5)
    r.send("p2", frame(BCAST, mac(2)))  # host 2 speaks again (an upcall: new flow)
    r.advance(5.5)
    show = r.bridge.fdb_show()
    assert mac(1) not in show and mac(2) in show
    [f] = flow_to(r, mac(1))
    assert Output(r.no("p3")) in f.actions  # unknown again: flooded
    assert r.bridge.mac.n_expired == 1


def test_fast_path_traffic_keeps_source_learned() -> None:
    r = learned_pair(**{"mac-aging-time": "10", "max-idle": "60000"})
    r.send("p1", frame(mac(2), mac(1)))  # installs p1 -> p2 unicast
    for _ in range(30):  # 30 s of traffic that only hits the datapath
        r.clock.t += 1
        missed = r.dp.n_missed
        r.dp.receive(r.no("p1"), frame(mac(2), mac(1)))
        r.dp.receive(r.no("p2"), frame(mac(1), mac(2)))
        assert r.dp.n_missed == missed
        r.run()
    show = r.bridge.fdb_show()
    assert mac(1) in show and mac(2) in show
    assert r.bridge.mac.n_expired == 0


def test_stale_flow_stats_do_not_undo_a_move() -> None:
    r = learned_pair()
    r.clock.t += 0.5
    r.dp.receive(r.no("p1"), frame(mac(2), mac(1)))  # upcall, flow in_port=p1,src=1
    r.run()
    r.dp.receive(r.no("p1"), frame(mac(2), mac(1)))  # fast path hit at t
    r.clock.t += 0.1
    r.send("p3", frame(BCAST, mac(1)))  # then host 1 moves to p3
    r.advance(2)  # sweep: the p1 flow's hit is older than the move
    line = next(x for x in r.bridge.fdb_show().splitlines() if mac(1) in x)
    assert line.split()[0] == str(r.no("p3"))


def test_flow_hit_after_move_moves_back() -> None:
    r = learned_pair()
    r.send("p1", frame(mac(2), mac(1)))  # flow in_port=p1, src=1
    r.clock.t += 1
    r.send("p3", frame(BCAST, mac(1)))  # moved to p3
    r.clock.t += 1
    r.dp.receive(r.no("p1"), frame(mac(2), mac(1)))  # ... and back: fast path only
    r.advance(1)
    line = next(x for x in r.bridge.fdb_show().splitlines() if mac(1) in x)
    assert line.split()[0] == str(r.no("p1"))
    [f] = [f for f in flow_to(r, mac(1)) if f.match.key[0:4] == r.no("p2").to_bytes(4, "big")]
    assert f.actions == (Output(r.no("p1")),)


def test_idle_flows_are_deleted_after_max_idle() -> None:
    r = learned_pair(**{"max-idle": "2000"})
    n = len(r.flows())
    assert n >= 3
    r.dp.receive(r.no("p2"), frame(mac(1), mac(2)))  # keep one flow busy
    r.advance(1.5)
    r.dp.receive(r.no("p2"), frame(mac(1), mac(2)))
    r.advance(1.5)
    flows = list(r.dp.flow_dump())
    assert len(flows) == 1 and flows[0].actions == (Output(r.no("p1")),)
    r.advance(3)
    assert r.flows() == {}
    assert len(r.bridge.revalidator) == 0


def test_table_size_limit_evicts_oldest() -> None:
    r = Rig({"p1": P(), "p2": P()}, **{"mac-table-size": "3"})
    for i in range(1, 6):
        r.clock.t += 1
        r.send("p1", frame(BCAST, mac(i)))
    show = r.bridge.fdb_show()
    assert [mac(i) in show for i in range(1, 6)] == [False, False, True, True, True]
    assert r.bridge.mac.n_evicted == 2


def test_mac_table_scales_and_ages_from_the_front() -> None:
    from hitless.ofproto.mac_learning import MacTable

    t = MacTable(aging_time=300, max_entries=60_000)
    for i in range(50_000):
        t.learn(i % 4096, i.to_bytes(6, "big"), 1 + i % 48, 1000.0 + i / 1000)
    assert len(t) == 50_000
    t.take_dirty()
    assert t.expire(1300.0) == 1  # only the entry learned at exactly 1000.0
    assert t.expire(1310.0) == 10_000  # learned at 1000.001 .. 1010.0
    assert len(t.take_dirty()) == 10_001
    assert t.next_expiry() == 1000.0 + 10_001 / 1000 + 300


def test_adopted_flows_are_revalidated_not_flushed() -> None:
    """A fresh bridge on a datapath that already holds flows keeps the valid ones
    and relearns the sources that use them."""
    from hitless.ofproto.bridge import Bridge

    r = learned_pair()
    r.send("p1", frame(mac(2), mac(1)))
    before = {m: (f.actions, f.stats.packets) for m, f in r.flows().items()}
    b2 = Bridge("br0", r.dp)  # a new process adopting the datapath
    r.bridge = b2
    r.reconfigure()
    r.dp.receive(r.no("p1"), frame(mac(2), mac(1)))
    r.dp.receive(r.no("p2"), frame(mac(1), mac(2)))
    r.run()
    assert b2.revalidator.n_adopted == len(before)
    show = b2.fdb_show()
    assert mac(1) in show and mac(2) in show  # learned back from flow stats
    after = r.flows()
    assert set(after) == set(before)
    for m, f in after.items():
        assert f.actions == before[m][0]


def test_sweep_in_slices_keeps_flows_installed_meanwhile(monkeypatch) -> None:  # noqa: ANN001
    import hitless.ofproto.bridge as bridge_mod

    monkeypatch.setattr(bridge_mod, "SWEEP_SLICE", 2)
    r = Rig({"p1": P(), "p2": P(), "p3": P()}, **{"max-idle": "4000"})
    for i in range(1, 7):
        r.send("p1", frame(BCAST, mac(i)))
    r.advance(1.0)  # starts a sweep: 6 flows, 2 per run
    assert r.bridge.revalidator.sweeping
    assert r.bridge.next_wakeup(r.clock.t) == r.clock.t
    r.send("p2", frame(mac(1), mac(20)))  # installed while the sweep is under way
    while r.bridge.revalidator.sweeping:
        r.run()
    assert len(r.bridge.revalidator) == len(r.flows()) == 7
    for _ in range(10):
        r.dp.receive(r.no("p2"), frame(mac(1), mac(20)))  # keep that one busy
        r.advance(0.5)
    # everything else went idle and was deleted; the busy flow stayed
    assert len(r.flows()) == 1 and len(r.bridge.revalidator) == 1


def test_a_big_mac_revalidation_is_spread_over_loop_turns() -> None:
    from hitless.ofproto.bridge import MAC_REVALIDATE_SLICE

    r = learned_pair()
    n = MAC_REVALIDATE_SLICE + MAC_REVALIDATE_SLICE // 2
    for i in range(n):  # n sources behind p2, each with a flow towards host 1 on p1
        r.send("p2", frame(mac(1), f"52:54:00:00:{i >> 8:02x}:{i & 0xFF:02x}"))
    assert len(flow_to(r, mac(1))) == n + 1
    r.clock.t += 1
    r.bridge.mac.learn(0, bytes(int(x, 16) for x in mac(1).split(":")), r.no("p3"), r.clock.t)
    modified = r.bridge.revalidator.n_modified
    r.run()  # one turn: a slice of the flows towards host 1 is re-translated
    assert r.bridge.revalidator.n_modified - modified == MAC_REVALIDATE_SLICE
    assert r.bridge.next_wakeup(r.clock.t) == r.clock.t  # more to do: the loop comes back
    r.run()
    assert r.bridge.revalidator.n_modified - modified == n + 1
    assert {f.actions for f in flow_to(r, mac(1))} == {(Output(r.no("p3")),)}
