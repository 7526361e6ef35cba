"""Packet rewriting: VLAN push/pop round trips, set_field keeps checksums valid."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitless.packet import ops
from hitless.packet.flow import VLAN_PRESENT, extract_key, field, set_field
from tests.packet import builders as b

A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"

untagged = st.builds(
    lambda macs, et, rest: macs + et.to_bytes(2, "big") + rest,
    st.binary(min_size=12, max_size=12),
    st.integers(0, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8)),
    st.binary(max_size=100),
)


@given(untagged, st.integers(0, 0xFFFF))
def test_push_then_pop_is_identity(pkt: bytes, tci: int) -> None:
    tagged = ops.push_vlan(pkt, tci)
    assert ops.is_tagged(tagged)
    assert ops.pop_vlan(tagged) == pkt


@given(untagged, st.integers(0, 0xFFFF))
def test_pushed_tag_shows_in_the_key(pkt: bytes, tci: int) -> None:
    key = extract_key(ops.push_vlan(pkt, tci), 1)
    assert field(key, "vlan_tci") == (tci & 0xEFFF) | VLAN_PRESENT
    assert set_field(key, "vlan_tci", 0) == extract_key(pkt, 1)


@given(untagged)
def test_pop_on_untagged_is_a_no_op(pkt: bytes) -> None:
    assert ops.pop_vlan(pkt) == pkt


@given(st.binary(max_size=80))
def test_rewrites_never_raise_on_garbage(data: bytes) -> None:
    for name, value in [("ipv4_src", b"\1\2\3\4"), ("tp_dst", b"\0\1"), ("ip_ttl", b"\5")]:
        out = ops.set_field(data, name, value)
        assert len(out) == len(data)


def _udp_frame(payload: bytes, vlan: int | None = None) -> bytes:
    seg = b.udp("10.0.0.1", "10.0.0.2", 1000, 2000, payload)
    return b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 17, seg), vlan=vlan)


def _tcp_frame(payload: bytes) -> bytes:
    seg = b.tcp("10.0.0.1", "10.0.0.2", 1000, 2000, 0x18, payload)
    return b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 6, seg))


FIELDS = st.sampled_from(
    [("ipv4_src", 4), ("ipv4_dst", 4), ("ip_tos", 1), ("ip_ttl", 1), ("tp_src", 2), ("tp_dst", 2)]
)


@given(
    st.binary(max_size=40),
    st.sampled_from(["udp", "tcp", "vlan-udp"]),
    FIELDS,
    st.data(),
)
def test_set_field_keeps_checksums_and_shows_in_the_key(
    payload: bytes, kind: str, fld: tuple[str, int], data: st.DataObject
) -> None:
    name, size = fld
    value = data.draw(st.binary(min_size=size, max_size=size))
    frame = {"udp": lambda: _udp_frame(payload), "tcp": lambda: _tcp_frame(payload)}.get(
        kind, lambda: _udp_frame(payload, vlan=5)
    )()
    l3 = 18 if kind == "vlan-udp" else 14
    out = ops.set_field(frame, name, value)
    assert b.ipv4_header_ok(out, l3)
    assert b.l4_checksum_ok(out, l3)
    assert set_field(extract_key(frame, 1), name, value) == extract_key(out, 1)


def test_masked_eth_rewrite_and_unsupported_field() -> None:
    frame = _udp_frame(b"x")
    out = ops.set_field(frame, "eth_src", bytes(6), b"\xff\xff\xff\0\0\0")
    assert out[6:12] == bytes(3) + b.mac(A)[3:]
    with pytest.raises(ValueError, match="ipv6_src"):
        ops.set_field(frame, "ipv6_src", bytes(16))
