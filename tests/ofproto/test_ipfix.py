"""The IPFIX exporter in memory, read back with the RFC 7011 parser of
tests/daemon/test_ipfix.py: aggregation for cache_active_timeout, the sequence number,
the cache limit, a tagged frame's template, the templates' resending."""

from __future__ import annotations

from hitless.config.model import IpfixConfig
from hitless.ofproto.ipfix import TEMPLATE_INTERVAL, IpfixExporter, IpfixPort, SampleInfo
from tests.daemon.test_ipfix import num, parse

SRC, DST = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def udp(sport: int, tag: bytes = b"") -> bytes:
    ip = (bytes.fromhex("4500001c00004000" "4011" "0000") + bytes((10, 0, 0, 1, 10, 0, 0, 2))
          + sport.to_bytes(2, "big") + (53).to_bytes(2, "big") + bytes(4))  # fmt: skip
    return DST + SRC + tag + b"\x08\x00" + ip


def port(n: int) -> IpfixPort:
    return IpfixPort(100 + n, f"p{n}")


def test_aggregation_sequence_and_templates() -> None:
    ex = IpfixExporter(IpfixConfig(("127.0.0.1:4739",), sampling=10, obs_domain_id=9,
                                   cache_active_timeout=5, cache_max_flows=100))  # fmt: skip
    known: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    t = 1000.0
    for _ in range(3):
        ex.sample(SampleInfo(0, 1, 0), udp(1000), t)
    ex.sample(SampleInfo(1, 1, 2), udp(1000), t)
    ex.sample(SampleInfo(0, 1, 0), udp(1001), t)
    first = parse(ex.messages(t + 1, port), known)
    assert len(first) == 1 and first[0]["templates"] and not first[0]["records"]
    assert ex.pending() == 3  # aggregated until the active timeout
    msgs = parse(ex.messages(t + 5, port), known)
    recs = [r for m in msgs for _, r in m["records"]]
    assert len(recs) == 3
    agg = [r for r in recs if num(r, 7) == 1000 and num(r, 61) == 0]
    (r,) = agg
    assert num(r, 2) == 30 and num(r, 86) == 40  # 3 samples of 10; the flow's 4 so far
    assert num(r, 10) == 101 and r[(0, 82)] == b"p1" and num(r, 11) == 53
    (out,) = [r for r in recs if num(r, 61) == 1]
    assert num(out, 14) == 102 and out[(0, 82)] == b"p1"
    # Sequence numbers: the data records sent before each message.
    assert msgs[0]["seq"] == 0
    for prev, m in zip(msgs, msgs[1:], strict=False):
        assert m["seq"] == prev["seq"] + len(prev["records"])
    assert ex.messages(t + 6, port, flush=True) == []  # nothing left
    ex.sample(SampleInfo(0, 1, 0), udp(1002, tag=b"\x81\x00\x20\x05"), t + 7)
    (m,) = parse(ex.messages(t + 13, port), known)
    assert m["seq"] == 3
    (tid, rec), = m["records"]
    assert num(rec, 243) == 5 and num(rec, 244) == 1 and num(rec, 7) == 1002
    assert parse(ex.messages(t + TEMPLATE_INTERVAL + 2, port), known)[0]["templates"]  # resent


def test_cache_limit_sends_the_oldest_flow() -> None:
    ex = IpfixExporter(IpfixConfig(("127.0.0.1:4739",), cache_active_timeout=60,
                                   cache_max_flows=2))  # fmt: skip
    known: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    parse(ex.messages(0.0, port), known)  # templates
    for i in range(3):
        ex.sample(SampleInfo(0, 1, 0), udp(2000 + i), float(i))
    msgs = parse(ex.messages(4.0, port), known)
    assert [num(r, 7) for m in msgs for _, r in m["records"]] == [2000]


def test_without_a_cache_every_sample_is_its_own_record_and_counted() -> None:
    """cache_max_flows 0 (the default): no aggregation, as Open vSwitch (each sample a
    flow of its own, exported at the next flush, whatever the active timeout); the
    exporter's statistics count the flows, the samples by kind and what was sent."""
    ex = IpfixExporter(IpfixConfig(("127.0.0.1:4739",), sampling=2, cache_active_timeout=60))
    t = 1000.0
    for _ in range(3):
        ex.sample(SampleInfo(0, 1, 0), udp(1000), t)
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)
    ex.sample(SampleInfo(0, 1, 0), arp, t)
    st = ex.statistics()
    assert (st.total_flows, st.current_flows, st.pkts, st.ipv4_pkts, st.error_pkts) == (4, 4, 4, 3, 0)
    recs = [r for m in parse(ex.messages(t + 1, port), {}) for _, r in m["records"]]
    assert len(recs) == 4 and all(num(r, 2) == 2 for r in recs)
    assert ex.statistics().current_flows == 0
    ex.sent(2, 1)
    body = ex.statistics().encode()
    assert len(body) == 88 and int.from_bytes(body[64:72], "big") == 2  # tx_pkts
