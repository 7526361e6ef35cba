"""The connection-tracking table in the handoff (state version 5): copied in the
pre-copy while the old side serves, then only the connections created, changed or
removed since (the tracker's journal) go at the freeze, so the freeze does not grow with
the table. Towards a version 4 peer the table goes whole at the freeze, inside the
datapath's handles, as before. Two engines in one process (tests/handoff/pair.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hitless.datapath.conntrack import ConnRecord, CtTuple
from hitless.handoff.engine import _ct_records
from hitless.state import records
from tests.handoff.pair import Clock, handoff, old_switch, one_clock

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def conn(i: int, zone: int = 0) -> ConnRecord:
    return ConnRecord(zone, (A, B, 17, 10000 + i, 53), (B, A, 17, 53, 10000 + i), 30.0,
                      0, 0, i << 100, True, "bidir")  # fmt: skip


def handles_ct(handles: Any) -> Any:
    """The connection table inside a datapath's handles: a typed record's field (state
    version 7) or the map's key (version 6 and older)."""
    return handles["conntrack"] if isinstance(handles, dict) else handles.conntrack


def table(dp: object, clock: Clock) -> list[records.CtConnV5]:
    return sorted(_ct_records(dp, clock()), key=lambda c: (c.zone, c.orig))  # type: ignore[arg-type]


def test_the_freeze_carries_only_the_connections_touched_since_the_precopy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = one_clock(monkeypatch)
    old, dp, _ = old_switch(clock)
    dp.conntrack.import_records([conn(i) for i in range(500)], clock())

    def between() -> None:  # after the pre-copy: one new, one changed, one gone
        clock.t += 1.0
        dp.conntrack.import_records([conn(1000), replace(conn(3), mark=9)], clock())
        dp.conntrack.remove_record(0, CtTuple(*conn(4).orig))

    h = handoff(old, clock, between)
    d = h.frozen.state
    assert isinstance(d, records.Delta)
    (t,) = d.conntrack
    assert sorted(c.orig[3] for c in t.changed) == [10003, 11000]
    assert [c.mark for c in t.changed if c.orig[3] == 10003] == [9]
    assert t.removed == [(0, conn(4).orig)]
    assert handles_ct(d.bridges[0].changed.datapath.handles)["conns"] == []  # not twice
    new_dp = h.new.bridges["br0"].datapath
    assert len(table(new_dp, clock)) == 500
    assert table(new_dp, clock) == table(dp, clock)
    assert dp.conntrack_in_handles  # the old side's datapath is back to normal


def test_a_version_4_peer_gets_the_whole_table_in_the_handles_at_the_freeze(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = one_clock(monkeypatch)
    old, dp, _ = old_switch(clock)
    dp.conntrack.import_records([conn(i) for i in range(50)], clock())
    h = handoff(old, clock, lambda: dp.conntrack.import_records([conn(77)], clock()), version=4)
    d = h.frozen.state
    assert isinstance(d, records.Delta) and d.conntrack == []
    assert len(handles_ct(d.bridges[0].changed.datapath.handles)["conns"]) == 51
    assert table(h.new.bridges["br0"].datapath, clock) == table(dp, clock)


def test_without_a_delta_the_whole_table_goes_typed_at_the_freeze(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = one_clock(monkeypatch)
    old, dp, _ = old_switch(clock)
    dp.conntrack.import_records([conn(i, zone=i % 3) for i in range(30)], clock())
    h = handoff(old, clock, features=())
    s = h.frozen.state
    assert isinstance(s, records.State)
    assert [len(t.conns) for t in s.conntrack] == [30]
    assert handles_ct(s.bridges[0].datapath.handles)["conns"] == []
    assert table(h.new.bridges["br0"].datapath, clock) == table(dp, clock)
