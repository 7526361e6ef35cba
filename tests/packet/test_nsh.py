"""NSH (eth_type 0x894f) in the flow key, set_field and trace flows: parsed as Open
vSwitch 3.1's parser does (seen with its ofproto/trace of raw frames: a header it cannot
parse leaves every NSH field zero; the context words are kept for MD type 1 only), and
rewritten where that parser would read the new value back."""

from __future__ import annotations

import pytest

from hitless.packet import ops
from hitless.packet.flow import NSH_FIELDS, extract_key, field
from hitless.packet.flowstr import build_packet, format_flow, parse_flow
from tests.openflow.test_nsh_vs_ovs import nsh


def _nsh_key(frame: bytes) -> dict[str, int]:
    key = extract_key(frame, 1)
    return {n: field(key, n) for n in NSH_FIELDS}


def test_the_key_holds_the_header_of_md_type_1() -> None:
    got = _nsh_key(nsh(0x123, 255, flags=1, ttl=9, ctx=(1, 2, 3, 4)))
    assert got == {"nsh_flags": 1, "nsh_ttl": 9, "nsh_mdtype": 1, "nsh_np": 3,
                   "nsh_path": 0x123FF, "nsh_c1": 1, "nsh_c2": 2, "nsh_c3": 3,
                   "nsh_c4": 4}  # fmt: skip
    tagged = extract_key(nsh(0x123, 255, ctx=(1, 2, 3, 4), tag=bytes.fromhex("81000064")), 1)
    assert field(tagged, "nsh_path") == 0x123FF and field(tagged, "vlan_tci") == 0x1064


@pytest.mark.parametrize(
    ("frame", "want"),
    [
        # MD type 2: no context words in the key, whatever metadata follows
        (nsh(5, 1, md=2, meta=bytes.fromhex("01020304")), (2, 0x501)),
        # an unknown MD type: the header, no context words
        (nsh(5, 1, md=0xF1, meta=bytes(16)), (0xF1, 0x501)),
        # version 1, MD type 1 of 5 words, MD type 2 of 1 word, longer than the frame:
        # not parsed
        (nsh(5, 1, version=1), (0, 0)),
        (nsh(5, 1, words=5), (0, 0)),
        (nsh(5, 1, md=2, words=1), (0, 0)),
        (nsh(5, 1, words=63), (0, 0)),
        (nsh(5, 1)[:20], (0, 0)),
    ],
)
def test_headers_open_vswitch_does_not_parse_leave_zeros(
    frame: bytes, want: tuple[int, int]
) -> None:
    got = _nsh_key(frame)
    assert (got["nsh_mdtype"], got["nsh_path"]) == want
    assert not any(got[f"nsh_c{i}"] for i in range(1, 5))


def test_set_field_rewrites_the_header_and_reads_back() -> None:
    frame = nsh(0x123, 255, flags=1, ttl=63, ctx=(1, 2, 3, 4))
    for name, value in (("nsh_flags", b"\x02"), ("nsh_ttl", b"\x09"),
                        ("nsh_path", b"\x00\x04\x56\x03"), ("nsh_c2", b"\x00\x00\x00\x55"),
                        ("nsh_c4", b"\x00\x00\x0a\xbc")):  # fmt: skip
        out = ops.set_field(frame, name, value)
        assert len(out) == len(frame) and out[-34:] == frame[-34:]  # the inner frame
        assert field(extract_key(out, 1), name) == int.from_bytes(value, "big"), name
        before, after = _nsh_key(frame), _nsh_key(out)
        assert {k for k in before if before[k] != after[k]} == {name}
    # the flags and TTL share a word with the length: it stays
    out = ops.set_field(frame, "nsh_ttl", b"\x05", b"\x3f")
    assert out[15] & 0x3F == 6 and out[14] >> 4 == 1  # length 6 words, flags 1
    assert _nsh_key(out)["nsh_ttl"] == 5
    # MD type 2: its metadata is not the context words, nothing written
    md2 = nsh(0x999, 5, md=2, meta=bytes.fromhex("01020304"))
    assert ops.set_field(md2, "nsh_c1", b"\x00\x00\x00\x03") == md2
    # an IPv4 frame has no NSH header
    ip = bytes.fromhex("020000000002020000000001") + b"\x08\x00" + bytes.fromhex("45") + bytes(19)
    assert ops.set_field(ip, "nsh_c1", b"\x00\x00\x00\x03") == ip


def test_trace_flows_build_and_print_as_open_vswitch() -> None:
    """The flow text ofproto/trace takes becomes a frame whose key prints back as Open
    vSwitch prints that flow (its Flow: line, seen with Open vSwitch 3.1)."""
    spec = parse_flow("in_port=1,dl_type=0x894f,nsh_spi=0x123,nsh_si=255,nsh_mdtype=1,"
                      "nsh_np=3,nshc4=7")  # fmt: skip
    assert format_flow(extract_key(build_packet(spec), 1)) == (
        "in_port=1,vlan_tci=0x0000,dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00,"
        "dl_type=0x894f,nsh_flags=0,nsh_ttl=0,nsh_mdtype=1,nsh_np=3,nsh_spi=0x123,"
        "nsh_si=255,nsh_c1=0x0,nsh_c2=0x0,nsh_c3=0x0,nsh_c4=0x7,nw_proto=0,nw_tos=0,"
        "nw_ecn=0,nw_ttl=0,nw_frag=no"
    )
    spec = parse_flow("in_port=1,dl_type=0x894f,nsh_mdtype=2,nsp=0x999,nsi=5,nsh_ttl=63")
    assert format_flow(extract_key(build_packet(spec), 1)).endswith(
        "dl_type=0x894f,nsh_flags=0,nsh_ttl=63,nsh_mdtype=2,nsh_np=0,nsh_spi=0x999,nsh_si=5,"
        "nw_proto=0,nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no"
    )
