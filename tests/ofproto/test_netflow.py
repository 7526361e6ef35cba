"""NetFlow v5 without sockets: records read back field by field, an idle flow exported
once and forgotten, a long flow exported every active timeout with what is new, 30
records to a datagram, and a handoff's export/import continuing the same flows."""

from __future__ import annotations

import pytest

from hitless.config.model import NetflowConfig
from hitless.ofproto.netflow import Netflow, decode_netflow

CFG = NetflowConfig(("127.0.0.1:2055",), active_timeout=60, engine_type=3, engine_id=4)
KEY = (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 17, 0, 1000, 2000, 1, 2)


def test_an_idle_flow_is_exported_once_with_its_fields() -> None:
    nf = Netflow(CFG, now=100.0)
    f = nf.flow(KEY)
    f.credit(1, 100, 101.0)
    f.credit(9, 900, 102.5)
    assert nf.datagrams(now=104.0, idle=5, wall=1e9) == []  # not idle long enough
    (d,) = nf.datagrams(now=108.0, idle=5, wall=1e9 + 0.5)
    h = decode_netflow(d)
    assert (h["version"], h["count"], h["seq"], h["uptime"]) == (5, 1, 1, 8000)
    assert (h["unix_secs"], h["engine_type"], h["engine_id"]) == (10**9, 3, 4)
    (r,) = h["records"]
    assert (r["src"], r["dst"], r["proto"], r["src_port"], r["dst_port"]) == (
        KEY[0], KEY[1], 17, 1000, 2000)  # fmt: skip
    assert (r["input"], r["output"], r["packets"], r["octets"]) == (1, 2, 10, 1000)
    assert (r["first"], r["last"]) == (1000, 2500)
    assert nf.flows == {} and nf.datagrams(now=120.0, idle=5, wall=1e9) == []


def test_active_timeout_and_datagram_split() -> None:
    nf = Netflow(CFG, now=0.0)
    for i in range(35):
        nf.flow((*KEY[:4], i, 2000, 1, 2)).credit(1, 60, 1.0)
    long = nf.flow(KEY)
    long.credit(5, 500, 1.0)
    for t in range(2, 62):
        long.credit(1, 100, float(t))
    dgrams = nf.datagrams(now=62.0, idle=10, wall=0)
    heads = [decode_netflow(d) for d in dgrams]
    assert [h["count"] for h in heads] == [30, 6] and [h["seq"] for h in heads] == [1, 2]
    (rec,) = [r for h in heads for r in h["records"] if r["src_port"] == 1000]
    assert rec["packets"] == 65  # the active timeout: exported while it lasts
    long.credit(3, 300, 63.0)
    assert nf.datagrams(now=64.0, idle=10, wall=0) == []
    (d,) = nf.datagrams(now=74.0, idle=10, wall=0)
    assert [r["packets"] for r in decode_netflow(d)["records"]] == [3]  # only what is new


def test_a_handoff_continues_the_same_flows() -> None:
    old = Netflow(CFG, now=0.0)
    old.flow(KEY).credit(7, 700, 5.0)
    state = old.export_state(now=6.0)
    new = Netflow(CFG, now=1000.0)
    new.import_state(state, now=1000.0)
    new.flow(KEY).credit(3, 300, 1000.5)  # the new process's translation finds it
    (d,) = new.datagrams(now=1010.0, idle=5, wall=0)
    h = decode_netflow(d)
    assert h["uptime"] == 16000 and h["records"][0]["packets"] == 10
    assert h["records"][0]["first"] == 5000


def test_garbage_is_refused() -> None:
    with pytest.raises(ValueError):
        decode_netflow(b"\x00\x05\x00\x01")
    with pytest.raises(ValueError, match="version"):
        decode_netflow(bytes(24))
