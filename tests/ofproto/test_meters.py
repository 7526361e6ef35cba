"""OpenFlow meters are enforced: translation puts a datapath Meter action where the meter
instruction is, the datapath drops per packet, meter statistics count the drops, and the
datapath's meters follow meter-mods, bundle rollbacks and a handoff's import."""

from __future__ import annotations

import pytest

from hitless.datapath.actions import Meter as DpMeterAction
from hitless.datapath.actions import Output as DpOutput
from hitless.ofproto.ofhandler import OfHandler, OfSession
from hitless.openflow import (
    ApplyActions,
    Connection,
    FlowMod,
    GotoTable,
    Match,
    MeterBand,
    MeterFeaturesReply,
    MeterFeaturesRequest,
    MeterInstruction,
    MeterMod,
    MeterStatsReply,
    MeterStatsRequest,
    Output,
    RemoteProtocolError,
)
from hitless.openflow.constants import (
    FlowModCommand,
    MeterBandType,
    MeterFlags,
    MeterModCommand,
    MeterModFailedCode,
    Port,
)
from tests.ofproto.helpers import P, Rig, frame, mac

PKT = frame(mac(2), mac(1))  # 60 bytes


def rig() -> Rig:
    return Rig({"br0": P(type="internal"), "p1": P(), "p2": P()})


def add_meter(
    r: Rig, mid: int = 1, rate: int = 100, burst: int = 10, flags: int = MeterFlags.PKTPS
) -> None:
    band = MeterBand(rate=rate, burst_size=burst)
    mm = MeterMod(
        command=MeterModCommand.ADD, flags=flags | MeterFlags.BURST, meter_id=mid, bands=(band,)
    )
    r.bridge.meter_mod(mm, r.clock.t)


def metered_rule(r: Rig, mid: int = 1, priority: int = 10) -> None:
    fm = FlowMod(
        command=FlowModCommand.ADD,
        priority=priority,
        match=Match.of(in_port=r.no("p1")),
        instructions=(MeterInstruction(mid), ApplyActions((Output(r.no("p2")),))),
    )
    r.bridge.flow_mod(fm, r.clock.t)
    r.bridge.commit_openflow()


def burst(r: Rig, n: int) -> int:
    """Send n frames from p1 at the current time; how many came out of p2."""
    got = 0
    for _ in range(n):
        got += len(r.send("p1", PKT).get("p2", []))
    return got


def meter_stats(r: Rig) -> tuple[int, tuple[tuple[int, int], ...]]:
    h = OfHandler(r.bridge, 1)
    (reply,) = h.handle(Connection(), OfSession(), MeterStatsRequest(xid=1), r.clock.t)
    assert isinstance(reply, MeterStatsReply)
    (st,) = reply.stats
    return st.packet_in_count, st.band_stats


def test_drop_band_drops_packets_of_a_cached_megaflow_and_stats_count_them() -> None:
    r = rig()
    add_meter(r)
    metered_rule(r)
    assert burst(r, 25) == 10  # the first through the upcall, the rest by the megaflow
    (flow,) = r.flows().values()
    assert flow.actions == (DpMeterAction(1), DpOutput(r.no("p2")))
    assert flow.stats.packets == 24
    assert meter_stats(r) == (25, ((15, 15 * len(PKT)),))
    r.advance(0.0625)  # 6.25 packets' worth of tokens at 100/s
    assert burst(r, 10) == 6
    assert meter_stats(r) == (35, ((19, 19 * len(PKT)),))


def test_meter_in_a_later_table_meters_only_what_reaches_it() -> None:
    r = rig()
    add_meter(r, burst=3)
    p1, p2 = r.no("p1"), r.no("p2")
    r.bridge.flow_mod(
        FlowMod(
            priority=5,
            match=Match.of(in_port=p1),
            instructions=(ApplyActions((Output(Port.LOCAL),)), GotoTable(1)),
        ),
        r.clock.t,
    )
    r.bridge.flow_mod(
        FlowMod(
            table_id=1,
            priority=5,
            instructions=(MeterInstruction(1), ApplyActions((Output(p2),))),
        ),
        r.clock.t,
    )
    r.bridge.commit_openflow()
    outs = [r.send("p1", PKT) for _ in range(5)]
    assert all(len(o.get("br0", [])) == 1 for o in outs)  # before the meter: every packet
    assert sum(len(o.get("p2", [])) for o in outs) == 3


def test_modify_pushes_the_new_bands_and_delete_removes_rules_and_datapath_meter() -> None:
    r = rig()
    add_meter(r, burst=2)
    metered_rule(r)
    assert burst(r, 5) == 2
    mm = MeterMod(
        command=MeterModCommand.MODIFY,
        flags=MeterFlags.PKTPS | MeterFlags.BURST,
        meter_id=1,
        bands=(MeterBand(rate=100, burst_size=4),),
    )
    r.bridge.meter_mod(mm, r.clock.t)
    assert burst(r, 6) == 4  # a fresh, bigger bucket
    assert r.dp.meter_stats(1) == ((2, 2 * len(PKT)),)
    r.bridge.meter_mod(MeterMod(command=MeterModCommand.DELETE, meter_id=1), r.clock.t)
    r.run()
    assert r.dp.meter_stats(1) is None
    assert [x.priority for x in r.bridge.of.rules()] == [0]  # the metered rule went too
    assert burst(r, 3) == 3  # NORMAL (priority 0) floods them, unmetered


def test_kbps_meter() -> None:
    r = rig()
    # 8 kbit burst = 1000 bytes = 16 frames of 60 bytes (960 bytes), not 17.
    add_meter(r, rate=8, burst=8, flags=MeterFlags.KBPS)
    metered_rule(r)
    assert burst(r, 20) == 16


def test_only_drop_bands_are_accepted() -> None:
    r = rig()
    mm = MeterMod(
        command=MeterModCommand.ADD,
        flags=MeterFlags.PKTPS,
        meter_id=1,
        bands=(MeterBand(type=MeterBandType.DSCP_REMARK, rate=10, prec_level=1),),
    )
    with pytest.raises(RemoteProtocolError) as e:
        r.bridge.meter_mod(mm, r.clock.t)
    assert e.value.code == MeterModFailedCode.BAD_BAND
    assert r.dp.meter_stats(1) is None
    h = OfHandler(r.bridge, 1)
    (feat,) = h.handle(Connection(), OfSession(), MeterFeaturesRequest(xid=2), 0.0)
    assert isinstance(feat, MeterFeaturesReply) and feat.band_types == 1 << MeterBandType.DROP


def test_import_pushes_meters_into_the_new_datapath_and_band_counts_carry_on() -> None:
    r = rig()
    add_meter(r)
    metered_rule(r)
    assert burst(r, 30) == 10
    data = r.bridge.export_openflow(r.clock.t)
    r2 = rig()
    assert r2.dp.meter_stats(1) is None
    r2.bridge.import_openflow(data, r2.clock.t)
    assert r2.dp.meter_stats(1) == ((0, 0),)  # pushed: a full bucket, fresh counters
    assert burst(r2, 15) == 10
    assert meter_stats(r2) == (45, ((25, 25 * len(PKT)),))


def test_bundle_rollback_restores_the_datapath_meter() -> None:
    r = rig()
    add_meter(r, burst=2)
    metered_rule(r)
    snap = r.bridge.of_transaction()
    mm = MeterMod(
        command=MeterModCommand.MODIFY,
        flags=MeterFlags.PKTPS | MeterFlags.BURST,
        meter_id=1,
        bands=(MeterBand(rate=100, burst_size=50),),
    )
    r.bridge.meter_mod(mm, r.clock.t)
    r.bridge.of_rollback(snap)
    r.run()
    assert burst(r, 5) == 2  # the burst of 2 again, not 50
