"""OXM parsing remembers headers it has validated (``match._KNOWN_HEADERS``): a header
seen before is parsed by its remembered layout, which must give the same fields as the
checked path, and never accept what the checked path refuses (a truncated field, a
duplicate, a bad length)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitless.openflow import Match, RemoteProtocolError
from hitless.openflow import match as match_mod
from hitless.openflow._wire import Reader

SAMPLES = [
    Match.of(eth_type=0x0800, ip_proto=17, ipv4_src=0xC6120001, udp_dst=9),
    Match.of(eth_src=0x0A0000000001, eth_dst=(0x0A0000000000, 0xFFFFFFFFFF00)),
    Match.of(reg0=5, metadata=(0x10, 0xFF), in_port=3),
    Match.of(eth_type=0x86DD, ipv6_src=(1 << 127, 1 << 127)),
]


def parse(data: bytes) -> Match:
    return Match.parse(Reader(data))


@pytest.mark.parametrize("m", SAMPLES)
def test_remembered_headers_parse_like_the_checked_path(m: Match) -> None:
    match_mod._KNOWN_HEADERS.clear()
    first = parse(m.encode())  # the checked path, which remembers the headers
    assert match_mod._KNOWN_HEADERS
    again = parse(m.encode())  # the remembered layouts
    assert first == again == m


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**16 - 1))
def test_remembered_values_round_trip(src: int, port: int) -> None:
    m = Match.of(eth_type=0x0800, ip_proto=6, ipv4_src=src, tcp_dst=port)
    assert parse(m.encode()) == m
    assert parse(m.encode()) == m


def test_remembered_headers_still_refuse_bad_input() -> None:
    m = Match.of(eth_type=0x0800, ipv4_src=0x01020304)
    parse(m.encode())  # both headers are known now
    body = b"".join(f.encode() for f in m.fields)
    truncated = body[:-2]  # ipv4_src cut short: its header says 4 bytes
    dup = body + m.fields[0].encode()
    for bad in (truncated, dup):
        length = 4 + len(bad)
        data = (1).to_bytes(2, "big") + length.to_bytes(2, "big") + bad
        data += b"\0" * ((8 - length % 8) % 8)
        with pytest.raises(RemoteProtocolError):
            parse(data)
