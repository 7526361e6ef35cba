"""The Nicira action codec and the NXM field table: byte layouts as stock ovs-ofctl 3.1
writes them (the hex below was captured from ``ovs-ofctl -O OpenFlow13 add-flow``), round
trips of every action value, and errors for malformed input."""

from __future__ import annotations

import pytest

from hitless.openflow import messages
from hitless.openflow._wire import Reader
from hitless.openflow.actions import ApplyActions, Output, SetField, parse_actions
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import field
from hitless.openflow.nx_actions import (
    BundleAction,
    CheckPktLarger,
    Clone,
    Conjunction,
    Controller,
    Controller2,
    DecTtlIds,
    Exit,
    FinTimeout,
    Learn,
    LearnSpec,
    Multipath,
    Note,
    NxUnknown,
    OutputReg,
    RegLoad,
    RegLoad2,
    RegMove,
    Resubmit,
    Sample,
    SetTunnel,
    StackPop,
    StackPush,
    WriteMetadataAction,
)
from hitless.openflow.nxm import FieldRef, Subfield, spec_by_name

# captured: reg0=5,actions=resubmit(,1)
RESUBMIT_FLOW = (
    "040e005800000006000000000000000000000000000000000000000000008000ffffffffffffffffffffffff"
    "000000000001000c0001000400000005000000000004001800000000ffff001000002320000efff801000000"
)
# captured: actions=conjunction(5,1/2),note:01.02.03
CONJ_ACTIONS = "ffff0010000023200022000200000005ffff0010000023200008010203000000"
# captured: controller(reason=no_match,max_len=100,userdata=01.02,pause)
CONTROLLER2 = (
    "ffff003000002320002500000000000000000008006400000002000500000000000300060102000000040004"
    "00000000"
)


def sf(name: str, ofs: int = 0, nbits: int | None = None) -> Subfield:
    w = Subfield.whole(name)
    return Subfield(w.ref, ofs, w.nbits - ofs if nbits is None else nbits)


def test_captured_flow_mod_parses_and_reencodes_byte_for_byte() -> None:
    raw = bytes.fromhex(RESUBMIT_FLOW)
    fm = messages.decode(raw)
    assert [f.name for f in fm.match.fields] == ["reg0"]  # type: ignore[attr-defined]
    assert fm.instructions == (ApplyActions((Resubmit(0xFFF8, 1),)),)  # type: ignore[attr-defined]
    assert fm.encode() == raw


def test_captured_actions() -> None:
    acts = parse_actions(Reader(bytes.fromhex(CONJ_ACTIONS)))
    assert acts == (Conjunction(0, 2, 5), Note(b"\x01\x02\x03\x00\x00\x00"))
    (c,) = parse_actions(Reader(bytes.fromhex(CONTROLLER2)))
    assert c == Controller2(max_len=100, reason=0, userdata=b"\x01\x02", pause=True)
    assert c.encode().hex() == CONTROLLER2


ALL = [
    Resubmit(3, 2),
    Resubmit(5, 0xFF, False, 1),
    Resubmit(0xFFF8, 4, True, 44),
    RegLoad(sf("reg3", 8, 8), 0x7F),
    RegLoad2(field("reg2", 0x10, 0xFF)),
    RegLoad2(field("xxreg1", 5)),
    RegMove(sf("eth_src", 0, 16), sf("reg3", 16, 16)),
    RegMove(sf("tcp_flags", 0, 12), sf("reg1", 0, 12)),
    OutputReg(sf("reg0", 0, 16)),
    OutputReg(sf("reg0", 0, 16), 128, 15),
    Note(b"abcdef"),
    Exit(),
    DecTtlIds((1, 2, 3)),
    Conjunction(1, 3, 77),
    StackPush(sf("reg0")),
    StackPop(sf("reg1", 0, 16)),
    Controller(100, 1, 0),
    Controller2(userdata=b"\x00\x01\x02"),
    Clone((Output(1), SetField(field("reg0", 1)))),
    WriteMetadataAction(5, 0xFF),
    SetTunnel(5, 2),
    SetTunnel(0x123456789),
    FinTimeout(3, 0),
    CheckPktLarger(200, sf("reg0", 0, 1)),
    Sample(100, 1, 2, 3),
    Sample(100, 1, 2, 3, 4, 1, 41),
    Multipath(0, 50, 0, 1, 0, sf("reg0", 0, 2)),
    BundleAction(1, 0, 0, (1, 2)),
    BundleAction(1, 0, 0, (1, 2), sf("reg0")),
    Learn(
        2,
        (
            LearnSpec(0, 48, src=sf("eth_src"), dst=sf("eth_dst")),
            LearnSpec(1, 16, src=sf("in_port"), dst=sf("reg0", 0, 16)),
            LearnSpec(2, 16, src=sf("in_port")),
            LearnSpec(0, 16, src_value=b"\x08\x00", dst=sf("eth_type")),
        ),
        idle_timeout=10,
        limit=5,
        form=45,
    ),
    NxUnknown(200, b"\x00" * 6),
]


@pytest.mark.parametrize("action", ALL, ids=lambda a: type(a).__name__)
def test_round_trip(action: object) -> None:
    raw = action.encode()  # type: ignore[attr-defined]
    assert len(raw) % 8 == 0
    assert parse_actions(Reader(raw)) == (action,)


def test_field_table_names_and_headers() -> None:
    assert spec_by_name("reg0").headers[0] == (1, 0, None)  # type: ignore[union-attr]
    assert spec_by_name("xreg3").headers[0] == (0x8001, 3, None)  # type: ignore[union-attr]
    assert spec_by_name("nw_src") is spec_by_name("ip_src")
    assert FieldRef.of("tcp_flags").encode().hex() == "00014402"
    assert FieldRef.of("dp_hash").size == 4


@pytest.mark.parametrize(
    "hexdata",
    [
        # load into an unknown field header
        "ffff001800002320000700070001fe040000000000000000",
        # move with a source range outside the field
        "ffff001800002320000600200004000000010004000102040000000000000000"[:48],
        # conjunction 3/2
        "ffff0010000023200022030200000005",
    ],
)
def test_malformed_nx_actions_are_the_peers_fault(hexdata: str) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_actions(Reader(bytes.fromhex(hexdata)))


def test_nxm_lists_tcp_flags_and_mpls_ttl_after_their_prerequisites() -> None:
    """Open vSwitch parses an nx_match in order and wants each field's prerequisites
    before it (OFPBMC_BAD_PREREQ otherwise): ovs-ofctl's 1.0 dump of a rule loaded in
    1.3 with tcp_flags (its ONF experimenter form) once failed to decode."""
    from hitless.openflow.match import Match, Oxm
    from hitless.openflow.match import field as oxm_field
    from hitless.openflow.nx import encode_nxm

    onf_tcp_flags = Oxm(42, 2, 0x12, 0xFFFF, 2, 0x4F4E4600)
    m = Match((oxm_field("eth_type", 0x0800), onf_tcp_flags, oxm_field("ip_proto", 6)))
    got = encode_nxm(m)
    assert got.index(bytes.fromhex("00000c0106")) < got.index(bytes.fromhex("ffff5508"))
    mpls = encode_nxm(Match((oxm_field("mpls_ttl", 3), oxm_field("eth_type", 0x8847))))
    assert mpls == bytes.fromhex("00000602" "8847" "00013c01" "03")  # eth_type first
