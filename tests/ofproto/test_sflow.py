"""sFlow without sockets: the agent's datagrams read back field by field (the layouts
are shared by the encoder and the decoder, so these also pin the numbers against the
specification's sizes), the bridge's sampling on the dummy datapath (every flow starts
with a Sample action; its upcalls carry where the packet went), and the random draw's
rate."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hitless.config.model import SflowConfig
from hitless.datapath.actions import Output, Sample, actions_from_json, actions_to_json
from hitless.datapath.execute import apply_actions
from hitless.ofproto.sflow import (
    ETHERNET,
    FLOW_SOURCE,
    GENERIC,
    MAX_DATAGRAM,
    PortCounters,
    SflowAgent,
    decode_datagram,
    probability,
)
from tests.ofproto.helpers import BCAST, P, Rig, config, frame, mac

CFG = SflowConfig(targets=("127.0.0.1:6343",), sampling=10, polling=2, header=64)


def test_layout_sizes_are_the_specification_s() -> None:
    assert GENERIC.st.size == 88 and ETHERNET.st.size == 52


def test_flow_and_counter_samples_read_back() -> None:
    agent = SflowAgent(CFG, bytes([10, 0, 0, 1]), now=100.0)
    pkt = frame(mac(2), mac(1)) + bytes(100)
    agent.flow_sample(7, 8, pkt)
    agent.counter_sample(
        PortCounters(7, 1, "p1", 10**10, "full", True, True, {"rx_packets": 5, "tx_bytes": 2**33}),
        datapath_id=0xABC,
    )
    (d,) = agent.datagrams(now=103.4)
    dg = decode_datagram(d)
    assert (dg["version"], dg["agent"], dg["seq"], dg["uptime"]) == (5, bytes([10, 0, 0, 1]), 1, 3000)
    f, c = dg["samples"]
    assert (f["format"], f["seq"], f["source"], f["rate"], f["pool"]) == (1, 1, FLOW_SOURCE, 10, 10)
    assert (f["input"], f["output"], f["drops"]) == (7, 8, 0)
    raw = dict(f["records"])[1]
    assert raw["frame_length"] == len(pkt) + 4 and raw["header"] == pkt[:64]
    assert [r[0] for r in c["records"]] == [2, 1004, 1005, 1]
    recs = dict(c["records"])
    assert recs[1004] == {"datapath_id": 0xABC, "port_no": 1} and recs[1005] == {"name": "p1"}
    g = recs[1]
    assert (g["if_index"], g["if_speed"], g["if_direction"], g["if_status"]) == (7, 10**10, 1, 3)
    assert (g["in_ucast"], g["out_octets"], g["in_broadcast"]) == (5, 2**33, 0xFFFFFFFF)


def test_samples_split_into_datagrams_and_state_carries_over() -> None:
    agent = SflowAgent(CFG, bytes(4), now=0.0)
    for i in range(40):
        agent.flow_sample(1, 2, frame(mac(2), mac(1)) + bytes([i]) * 100)
    dgrams = agent.datagrams(now=1.0)
    assert len(dgrams) > 1 and all(len(d) <= MAX_DATAGRAM for d in dgrams)
    decoded = [decode_datagram(d) for d in dgrams]
    assert [d["seq"] for d in decoded] == list(range(1, len(dgrams) + 1))
    assert [s["seq"] for d in decoded for s in d["samples"]] == list(range(1, 41))
    # A new process's agent picks up where the old one stopped (a hitless upgrade).
    state = agent.export_state(now=5.0)
    new = SflowAgent(CFG, bytes(4), now=50.0)
    new.import_state(state, now=50.0)
    new.flow_sample(1, 2, frame(mac(2), mac(1)))
    (d,) = [decode_datagram(x) for x in new.datagrams(now=51.0)]
    assert (d["seq"], d["uptime"], d["samples"][0]["seq"], d["samples"][0]["pool"]) == (
        len(dgrams) + 1, 6000, 41, 410,
    )  # fmt: skip


def test_bad_datagrams_are_refused() -> None:
    with pytest.raises(ValueError):
        decode_datagram(b"\x00\x00\x00\x05\x00")
    with pytest.raises(ValueError, match="version"):
        decode_datagram(bytes(40))


def test_sample_action_rate_and_form() -> None:
    act = Sample(probability(4), b"x")
    assert actions_from_json(actions_to_json((act, Output(2)))) == (act, Output(2))
    n = 0
    for _ in range(8000):
        out, up = apply_actions(b"\x00" * 60, (act, Output(2)))
        assert out == [(2, b"\x00" * 60)]  # the packet goes on either way
        n += len(up)
    assert 1700 <= n <= 2300  # 2000 expected, binomial sd 39
    always = Sample(probability(1))
    assert all(len(apply_actions(b"", (always,))[1]) == 1 for _ in range(100))


def _rig(sampling: int | None) -> Rig:
    r = Rig({"br0": P(type="internal"), "a": P(), "b": P(), "c": P()})
    cfg = config("br0", r.ports)
    if sampling is not None:
        cfg = replace(cfg, sflow=replace(CFG, sampling=sampling))
    r.bridge.reconfigure(cfg, r.clock.t)
    return r


def test_the_bridge_samples_every_flow_with_its_outputs() -> None:
    r = _rig(sampling=1)
    r.send("a", frame(BCAST, mac(1)))  # a flood: three outputs
    r.send("b", frame(mac(1), mac(2)))  # known unicast to a
    r.send("b", frame(mac(1), mac(2)))  # again, now on the megaflow
    got = [(i, n, o) for i, n, o, _ in r.bridge.take_sflow_samples()]
    a, b = r.no("a"), r.no("b")
    assert got == [(a, 3, 0), (b, 1, a), (b, 1, a)]
    assert r.bridge.take_sflow_samples() == []
    # sFlow removed: the flows are translated again without the sample.
    r.bridge.reconfigure(config("br0", r.ports), r.clock.t)
    r.send("b", frame(mac(1), mac(2)))
    assert r.bridge.take_sflow_samples() == []
    assert not any(isinstance(x, Sample) for f in r.flows().values() for x in f.actions)


def test_the_bridge_samples_one_in_n() -> None:
    r = _rig(sampling=10)
    r.send("a", frame(BCAST, mac(1)))
    r.send("b", frame(mac(1), mac(2)))
    r.bridge.take_sflow_samples()
    for _ in range(3000):
        r.send("b", frame(mac(1), mac(2)))
    n = len(r.bridge.take_sflow_samples())
    assert 200 <= n <= 400  # 300 expected, binomial sd 16
