"""Meter token buckets across a handoff: ``export_levels`` in one table and
``adopt_levels`` in a new one (after the same meters were set there) make the new table
decide every later packet exactly as the old one would have."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitless.datapath.dummy import DummyDatapath
from hitless.datapath.meters import BAND_DROP, DpMeter, DpMeterBand, MeterTable
from hitless.state import handles
from hitless.state.handles import MeterLevelV1, levels_from_wire
from hitless.state.snapshot import SnapshotError

TWO_BANDS = DpMeter(True, (DpMeterBand(64, 16), DpMeterBand(512, 64, BAND_DROP)))
PKTPS = DpMeter(False, (DpMeterBand(100, 10),))

arrivals = st.lists(st.tuples(st.floats(0.0, 0.2), st.integers(60, 1500)), min_size=0, max_size=60)


@given(before=arrivals, after=arrivals, gap=st.floats(0.0, 0.5))
def test_adopted_levels_decide_like_the_old_table(
    before: list[tuple[float, int]], after: list[tuple[float, int]], gap: float
) -> None:
    old = MeterTable()
    old.set(1, TWO_BANDS, 0.0)
    old.set(2, PKTPS, 0.0)
    now = 0.0
    for dt, size in before:
        now += dt
        old.admit(1, size, now)
        old.admit(2, size, now)
    records = old.export_levels()
    now += gap  # the freeze: the new table is set up later
    new = MeterTable()
    new.set(2, PKTPS, now)
    new.set(1, TWO_BANDS, now)
    assert new.adopt_levels(records, now) == 2
    assert new.levels(1, now) == old.levels(1, now)
    assert all(s == (0, 0) for s in new.stats(1) or ())  # counters are the bridge's business
    for dt, size in after:
        now += dt
        for mid in (1, 2):
            assert new.admit(mid, size, now) == old.admit(mid, size, now)


def test_without_adoption_an_upgrade_would_allow_a_second_burst() -> None:
    old = MeterTable()
    old.set(1, PKTPS, 0.0)
    assert sum(old.admit(1, 100, 0.0) for _ in range(20)) == 10
    fresh, adopted = MeterTable(), MeterTable()
    for t in (fresh, adopted):
        t.set(1, PKTPS, 0.01)
    adopted.adopt_levels(old.export_levels(), 0.01)
    assert sum(fresh.admit(1, 100, 0.01) for _ in range(20)) == 10
    assert sum(adopted.admit(1, 100, 0.01) for _ in range(20)) == 1  # 10 ms at 100/s


def test_levels_go_only_to_the_same_meter() -> None:
    old = MeterTable()
    old.set(1, PKTPS, 0.0)
    old.set(2, PKTPS, 0.0)
    old.admit(1, 100, 0.0)
    old.admit(2, 100, 0.0)
    new = MeterTable()
    new.set(1, DpMeter(False, (DpMeterBand(100, 20),)), 5.0)  # another burst: a new meter
    new.set(3, PKTPS, 5.0)  # meter 2 is gone, 3 is new
    assert new.adopt_levels(old.export_levels(), 5.0) == 0
    assert new.levels(1, 5.0) == (20.0,) and new.levels(3, 5.0) == (10.0,)


def test_levels_are_capped_and_a_later_clock_counts_as_now() -> None:
    t = MeterTable()
    t.set(1, PKTPS, 100.0)
    rec = MeterLevelV1(1, False, [(100, 10, 1)], [99.0], 50.0)
    assert t.adopt_levels([rec], 100.0) == 1
    assert t.levels(1, 100.0) == (10.0,)
    t.admit(1, 100, 100.0)
    future = MeterLevelV1(1, False, [(100, 10, 1)], [0.0], 1e9)  # another clock's time
    t.adopt_levels([future], 100.0)
    assert t.levels(1, 100.5) == (10.0,)  # refills from now on, not from 1e9
    assert t.levels(1, 100.0) == (0.0,)


@pytest.mark.parametrize(
    "rec",
    [
        {"meter_id": 1},
        {"meter_id": "x", "kbps": False, "bands": [], "tokens": [], "last": 0},
        {"meter_id": 1, "kbps": False, "bands": [[1, 2]], "tokens": [1], "last": 0},
        {"meter_id": 1, "kbps": False, "bands": [[1, 2, 1]], "tokens": ["a"], "last": 0},
    ],
)
def test_malformed_records_are_refused(rec: dict[str, object]) -> None:
    """Levels are typed records: a malformed one from the wire is refused when the
    handles are read, before any datapath is touched."""
    with pytest.raises(SnapshotError, match="meter bucket levels are invalid"):
        levels_from_wire([rec])
    with pytest.raises(SnapshotError, match="dummy datapath handles are invalid"):
        handles.from_wire("dummy", {"ports": [], "meters": [rec]})
    good = {"meter_id": 1, "kbps": False, "bands": [[1, 2, 1]], "tokens": [1], "last": 0}
    assert levels_from_wire([good]) == [MeterLevelV1(1, False, [(1, 2, 1)], [1.0], 0.0)]


def test_dummy_datapath_hands_its_buckets_over() -> None:
    now = [10.0]
    old = DummyDatapath("br0", clock=lambda: now[0])
    old.port_add("p1")
    old.meter_set(1, PKTPS)
    for _ in range(8):
        old._meter(1, 100)
    sent, fds = old.export_handles()
    assert fds == [] and [m["tokens"] for m in handles.to_wire(sent)["meters"]] == [[2.0]]
    state = handles.from_wire("dummy", handles.to_wire(sent))  # as the new process reads it
    new = DummyDatapath.adopt("br0", state, fds)
    new.clock = lambda: now[0]
    new.meter_adopt(state.meters)  # before the bridge pushed meter 1: nothing to carry on
    new.meter_set(1, PKTPS)
    assert new.meters.levels(1, now[0]) == (10.0,)
    new.meter_adopt(state.meters)
    assert new.meters.levels(1, now[0]) == (2.0,)
    older = handles.from_wire("dummy", {"ports": []})  # a build that did not carry buckets
    new.meter_adopt(older.meters)
    assert new.meters.levels(1, now[0]) == (2.0,)
