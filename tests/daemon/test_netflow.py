"""NetFlow v5 (Bridge.netflow) side by side with Open vSwitch 3.1 (netdev datapath in
its own namespace) in the same run: the same NetFlow row and max-idle, the same pings
between two namespace hosts; a collector on loopback next to each switch reads the
records back (hitless.ofproto.netflow.decode_netflow). Each direction of the ICMP
exchange is one record with the same fields as Open vSwitch's; a hitless upgrade keeps
the exporter's sequence and uptime."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from hitless.ofproto.netflow import decode_netflow
from tests.daemon.test_qos import hitless_pair, ovs_pair
from tests.daemon.test_sflow import collecting
from tests.netns import Topology, sh
from tests.switch import Sw
from tests.traffic import COLD, caught_in_traffic, must_catch, upgrade_under_udp

pytestmark = pytest.mark.netns

PINGS = 50


def _row(port: int) -> list[str]:
    # max-idle is the Open_vSwitch row's, on both switches: records come out once a flow
    # has been idle that long.
    return ["set", "Open_vSwitch", ".", "other_config:max-idle=2000", "--", "--id=@n", "create", "netflow",
            f'targets="127.0.0.1:{port}"', "active_timeout=60"]  # fmt: skip


def records(dgrams: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for d in dgrams:
        for r in decode_netflow(d)["records"]:
            r = dict(r, src=socket.inet_ntoa(r["src"]), dst=socket.inet_ntoa(r["dst"]))
            out.append(r)
    return out


def flows(recs: list[dict[str, Any]], ofport: dict[str, int]) -> dict[tuple[str, str], list[Any]]:
    """ICMP records by (src, dst), summed: [input, output (port names), packets, octets,
    source port, destination port, ToS, records]."""
    names = {v: k for k, v in ofport.items()}
    out: dict[tuple[str, str], list[Any]] = {}
    for r in recs:
        if r["proto"] != 1:
            continue
        f = out.setdefault((r["src"], r["dst"]), [names.get(r["input"]), names.get(r["output"]),
                                                   0, 0, r["src_port"], r["dst_port"], r["tos"], 0])
        f[2] += r["packets"]
        f[3] += r["octets"]
        f[7] += 1
    return out  # fmt: skip


def test_netflow_records_as_open_vswitch_sends_them(started: Sw, topology: Topology) -> None:
    sw = started
    a, b, br = hitless_pair(sw, topology, "10.79.0")
    with collecting(tail=8.0) as col:
        sw.vsctl(*_row(col.port), "--", "set", "bridge", br, "netflow=@n")
        assert "hitless_unsupported" not in sw.get("Bridge", br, "status")
        assert a.ping(b.addr, count=PINGS, interval=0.01)
        ours = col.raw()
    ofp = {"a": sw.ofport(a.switch_port), "b": sw.ofport(b.switch_port)}
    with ovs_pair(topology, "10.79.1") as (oa, ob, ovs, ns):
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        with collecting(ns, tail=8.0) as ocol:
            ovs.vsctl(*_row(ocol.port), "--", "set", "bridge", "br0", "netflow=@n")
            assert oa.ping(ob.addr, count=PINGS, interval=0.01)
            theirs = ocol.raw()
        oofp = {h: int(ovs.vsctl("get", "Interface", p.switch_port, "ofport"))
                for h, p in (("a", oa), ("b", ob))}  # fmt: skip
    mine, other = flows(records(ours), ofp), flows(records(theirs), oofp)
    print(f"NetFlow: hitless {len(ours)} datagrams {mine}; Open vSwitch {len(theirs)} {other}")
    assert mine[(a.addr, b.addr)] == ["a", "b", PINGS, PINGS * 98, 0, 8 << 8, 0, 1]
    assert mine[(b.addr, a.addr)] == ["b", "a", PINGS, PINGS * 98, 0, 0, 0, 1]
    # The same fields as Open vSwitch's records for the same exchange (its counts fell
    # short of the 50 pings in every run seen: 30 or 48, not investigated).
    assert sorted(f[:2] + f[4:7] for f in mine.values()) == sorted(f[:2] + f[4:7] for f in other.values())
    for d in ours:
        h = decode_netflow(d)
        assert h["version"] == 5 and h["count"] == len(h["records"]) <= 30
    r = records(ours)[0]
    assert 0 < r["first"] <= r["last"] <= decode_netflow(ours[0])["uptime"]


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate", COLD])
def test_an_upgrade_keeps_the_netflow_exporter(
    started: Sw, topology: Topology, fault: str | None
) -> None:
    """One exporter throughout (sequence and uptime go on) and every datagram counted
    once across the two processes, the traffic judged as every handoff's; a new
    process that stops reading for 100 ms, sends frames twice or starts cold must fail
    that."""
    sw = started
    a, b, br = hitless_pair(sw, topology, "10.79.2")
    with collecting(tail=8.0) as col:
        sw.vsctl(*_row(col.port), "--", "set", "bridge", br, "netflow=@n")
        assert a.ping(b.addr, count=5, interval=0.01)
        problems, res = upgrade_under_udp(sw, [a, b], fault, port=9713)
        dgrams = col.raw()
    if caught_in_traffic(problems, fault, res):
        return
    sent = [c.sent for c in res.classes]
    heads = [decode_netflow(d) for d in dgrams]
    recs = records(dgrams)
    udp = [r for r in recs if r["proto"] == 17]
    print(f"upgrade with NetFlow: {problems}, sent {sent}; {len(dgrams)} datagrams, UDP records "
          f"{[(r['src'], r['packets']) for r in udp]}")  # fmt: skip
    with must_catch(fault):
        assert [h["seq"] for h in heads] == list(range(1, len(heads) + 1))  # one exporter
        assert [h["uptime"] for h in heads] == sorted(h["uptime"] for h in heads)
        # Every datagram of both directions counted once, across the two processes.
        assert sorted(r["packets"] for r in udp) == sorted(sent)
        assert not problems, problems


def test_sflow_and_netflow_on_an_ebpf_bridge(started: Sw, topology: Topology) -> None:
    """The ebpf datapath: a flow with the sample action runs in the daemon (a counted
    slow path); NetFlow's counters come from the kernel's flow statistics."""
    from tests.daemon.test_sflow import _sflow_row, flows, icmp
    from tests.wait import wait_for

    sw = started
    a = topology.add_host("a", "10.73.0.1/24")
    b = topology.add_host("b", "10.73.0.2/24")
    br = topology.name("he")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=ebpf",
             "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)  # fmt: skip
    assert wait_for(lambda: a.ping(b.addr, count=1), "ping through the ebpf bridge")
    with collecting() as col:
        sw.vsctl(*_sflow_row(col.port)[1:], "--", "set", "bridge", br, "sflow=@s")
        assert a.ping(b.addr, count=300, interval=0.01)
        samples = [f for f in flows(col.stop()) if icmp(f)]
    sw.vsctl("clear", "bridge", br, "sflow")
    with collecting(tail=8.0) as col:
        sw.vsctl(*_row(col.port), "--", "set", "bridge", br, "netflow=@n")
        assert a.ping(b.addr, count=PINGS, interval=0.01)
        recs = [r for r in records(col.raw()) if r["proto"] == 1]
    print(f"ebpf: {len(samples)} sFlow samples of 600 frames at 1/10; NetFlow "
          f"{[(r['src'], r['packets']) for r in recs]}")  # fmt: skip
    assert 24 <= len(samples) <= 97
    assert sorted((r["src"], r["packets"]) for r in recs) == [(a.addr, PINGS), (b.addr, PINGS)]
