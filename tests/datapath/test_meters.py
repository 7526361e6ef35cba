"""Datapath meters: token buckets on a fake clock, the Meter action in the dummy and netdev
datapaths, and its JSON form (megaflow actions travel in handoff snapshots)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitless.datapath import netdev
from hitless.datapath.actions import Meter, Output, Userspace, actions_from_json, actions_to_json
from hitless.datapath.dummy import DummyDatapath
from hitless.datapath.meters import BAND_DROP, BAND_DSCP_REMARK, DpMeter, DpMeterBand, MeterTable
from hitless.packet.flow import Match, full_mask, make_key

PKTPS_100_BURST_10 = DpMeter(False, (DpMeterBand(100, 10),))


def run(t: MeterTable, n: int, now: float, size: int = 100, meter_id: int = 1) -> int:
    """How many of ``n`` packets arriving at ``now`` pass."""
    return sum(t.admit(meter_id, size, now) for _ in range(n))


def test_pktps_bucket_starts_full_refills_at_the_rate_and_caps_at_the_burst() -> None:
    t = MeterTable()
    t.set(1, PKTPS_100_BURST_10, 0.0)
    assert run(t, 20, 0.0) == 10  # the burst
    assert t.stats(1) == ((10, 1000),)  # the drop band counts what it dropped
    assert run(t, 20, 0.05) == 5  # 50 ms at 100 packets/s
    assert run(t, 1, 0.05) == 0
    assert run(t, 20, 100.0) == 10  # a long pause refills only up to the burst
    assert t.stats(1) == ((36, 3600),)


def test_burst_defaults_to_one_second_of_the_rate() -> None:
    t = MeterTable()
    t.set(1, DpMeter(False, (DpMeterBand(50),)), 7.0)
    assert run(t, 80, 7.0) == 50
    assert run(t, 80, 7.5) == 25


def test_kbps_counts_bits() -> None:
    t = MeterTable()
    # 8 kbit/s = 1000 bytes/s; burst 8 kbit = 1000 bytes = ten 100-byte packets.
    t.set(1, DpMeter(True, (DpMeterBand(8, 8),)), 0.0)
    assert run(t, 15, 0.0, size=100) == 10
    assert run(t, 5, 0.1, size=100) == 1  # 100 ms refills 800 bits
    assert not t.admit(1, 1001, 50.0)  # bigger than the bucket ever holds
    assert t.admit(1, 1000, 50.0)
    assert t.stats(1) == ((10, 1901),)


def test_the_exceeded_band_with_the_highest_rate_applies() -> None:
    # OpenFlow 1.3.5 §5.7: a remark band at 100/s over a drop band at 10/s. Up to 10
    # packets conform to both; then only the drop band is exceeded (dropped); past 100
    # both are, and the remark band (the higher rate) applies: counted, not dropped.
    t = MeterTable()
    t.set(
        1,
        DpMeter(False, (DpMeterBand(10, 10, BAND_DROP), DpMeterBand(100, 100, BAND_DSCP_REMARK))),
        0.0,
    )
    passed = [t.admit(1, 60, 0.0) for _ in range(150)]
    assert passed == [True] * 10 + [False] * 90 + [True] * 50
    assert t.stats(1) == ((90, 5400), (50, 3000))


def test_unknown_meter_passes_and_set_resets() -> None:
    t = MeterTable()
    assert t.admit(9, 100, 0.0) and t.stats(9) is None
    t.set(1, PKTPS_100_BURST_10, 0.0)
    run(t, 30, 0.0)
    t.set(1, PKTPS_100_BURST_10, 0.0)  # replaced: full again, counters at zero
    assert t.stats(1) == ((0, 0),)
    assert run(t, 10, 0.0) == 10
    t.delete(1)
    assert 1 not in t and run(t, 30, 0.0) == 30
    with pytest.raises(ValueError):
        t.set(2, DpMeter(False, (DpMeterBand(0),)), 0.0)


@given(
    st.integers(1, 1000),
    st.integers(0, 200),
    st.lists(st.tuples(st.floats(0, 2), st.integers(1, 50)), max_size=30),
)
def test_never_more_than_burst_plus_rate_times_elapsed(
    rate: int, burst: int, arrivals: list[tuple[float, int]]
) -> None:
    """Whatever the arrival pattern, what passes is bounded by the bucket, and every
    packet either passes or is counted by the drop band."""
    t = MeterTable()
    t.set(1, DpMeter(False, (DpMeterBand(rate, burst),)), 0.0)
    now = 0.0
    passed = total = 0
    for gap, n in arrivals:
        now += gap
        passed += run(t, n, now)
        total += n
    assert passed <= (burst or rate) + rate * now + 1e-6
    assert passed + t.stats(1)[0][0] == total  # type: ignore[index]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_dummy_datapath_meters_each_packet_of_a_megaflow() -> None:
    clock = Clock()
    dp = DummyDatapath("br0", clock=clock)
    p1, p2 = dp.port_add("p1"), dp.port_add("p2")
    dp.meter_set(1, PKTPS_100_BURST_10)
    m = Match.of(make_key(in_port=p1), full_mask("in_port"))
    dp.flow_put(m, (Output(p2), Meter(1), Userspace(b"u")))
    pkt = bytes(60)
    for _ in range(25):
        dp.receive(p1, pkt)
    # Actions before the meter happen for every packet; after it only for conforming ones.
    assert len(dp.pop_sent()[p2]) == 25
    assert len(dp.recv_upcalls(100)) == 10
    assert dp.meter_stats(1) == ((15, 900),)
    clock.now += 0.0625  # 6.25 more tokens
    dp.execute(pkt, p1, (Meter(1), Output(p2)))  # execute (upcall replies) is metered too
    assert len(dp.pop_sent()[p2]) == 1
    for _ in range(20):
        dp.receive(p1, pkt)
    assert len(dp.recv_upcalls(100)) == 5
    assert dp.meter_stats(1) == ((30, 1800),)
    flow = dp.flow_get(m)
    assert flow is not None and flow.stats.packets == 45  # the megaflow counts them all
    dp.meter_del(1)
    assert dp.meter_stats(1) is None
    dp.receive(p1, pkt)
    assert len(dp.recv_upcalls(100)) == 1  # no meter: passes


def test_netdev_datapath_meters_execute() -> None:
    """The netdev provider's meter bookkeeping (no devices: Userspace actions show
    what passed), on a fake clock."""
    clock = Clock()
    dp = netdev.NetdevDatapath("brm", ring_frames=64)
    dp.clock = clock
    try:
        dp.meter_set(3, DpMeter(False, (DpMeterBand(20, 4),)))
        for _ in range(10):
            dp.execute(bytes(60), 1, (Meter(3), Userspace(b"x")))
        assert len(dp.recv_upcalls(100)) == 4
        clock.now += 0.25  # 5 tokens, capped at 4
        for _ in range(10):
            dp.execute(bytes(60), 1, (Meter(3), Userspace(b"x")))
        assert len(dp.recv_upcalls(100)) == 4
        assert dp.meter_stats(3) == ((12, 720),)
        dp.meter_del(3)
        assert dp.meter_stats(3) is None
    finally:
        dp.close()


def test_meter_action_json_round_trip() -> None:
    acts = (Meter(7), Output(2), Meter(0xFFFF0000))
    j = actions_to_json(acts)
    assert j[0] == ["meter", 7]
    assert actions_from_json(j) == acts
    assert str(Meter(7)) == "meter(7)"
    with pytest.raises(ValueError, match="meter"):
        actions_from_json([["meter"]])
