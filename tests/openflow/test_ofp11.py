"""OpenFlow 1.1 and 1.2 layouts in memory: 1.1's own match and actions
(hitless.openflow.ofp11), and what 1.1/1.2 lay out differently from 1.3."""

from __future__ import annotations

import struct

import pytest

from hitless.openflow import (
    ApplyActions,
    Connection,
    FlowMod,
    FlowStats,
    FlowStatsReply,
    Match,
    Output,
    PacketIn,
    RemoteProtocolError,
    decode,
)
from hitless.openflow._wire import Reader
from hitless.openflow.actions import GotoTable, PopVlan, SetField, WriteActions
from hitless.openflow.connection import NEED_DATA, Negotiated
from hitless.openflow.constants import (
    OFP11_VERSION,
    OFP12_VERSION,
    ActionType,
    BadMatchCode,
    BadRequestCode,
    ErrorType,
    FlowModFlags,
    InstructionType,
    OxmField,
)
from hitless.openflow.match import Oxm, field
from hitless.openflow.messages import FeaturesReply, Hello, PortDesc
from hitless.openflow.multipart import (
    MeterFeaturesRequest,
    PortStats,
    PortStatsReply,
    QueueStats,
    QueueStatsReply,
    TableCaps,
    TableStats,
    TableStatsReply,
)
from hitless.openflow.nx_actions import RegLoad
from hitless.openflow.ofp11 import (
    MATCH11,
    encode_actions11,
    encode_match11,
    parse_actions11,
    parse_match11,
)

V11, V12 = OFP11_VERSION, OFP12_VERSION
ROUND_TRIP = [
    Match(),
    Match.of(in_port=3),
    Match.of(eth_src=(0x001122000000, 0xFFFFFF000000), eth_dst=0x0A0000000001),
    Match.of(vlan_vid=0x1005, vlan_pcp=3),
    Match((field("vlan_vid", 0),)),  # no VLAN tag: dl_vlan 0xffff
    Match((field("vlan_vid", 0x1000, 0x1000),)),  # any VLAN tag: dl_vlan 0xfffe
    Match.of(
        eth_type=0x0800, ip_dscp=2, ip_proto=6, ipv4_src=(0x0A010000, 0xFFFF0000), tcp_dst=80
    ),  # fmt: skip
    Match.of(eth_type=0x0800, ip_proto=1, icmpv4_type=8, icmpv4_code=0),
    Match.of(eth_type=0x0806, arp_op=2, arp_spa=0x01020304, arp_tpa=(0x0A000000, 0xFF000000)),
    Match.of(metadata=(0x5, 0xFF)),
]


@pytest.mark.parametrize("match", ROUND_TRIP, ids=range(len(ROUND_TRIP)))
def test_standard_match_round_trip(match: Match) -> None:
    raw = encode_match11(match)
    assert len(raw) == MATCH11.size == 88
    back = parse_match11(Reader(raw))
    assert sorted(back.fields, key=lambda o: o.field) == sorted(match.fields, key=lambda o: o.field)


def test_masks_are_inverted_and_wildcard_bits_set() -> None:
    raw = encode_match11(Match.of(ipv4_src=(0x0A010000, 0xFFFF0000), eth_type=0x0800))
    (_, _, _, wc, *_rest) = MATCH11.unpack(raw)
    nw_src, nw_src_mask = struct.unpack_from("!II", raw, 44)
    assert (nw_src, nw_src_mask) == (0x0A010000, 0x0000FFFF)  # 1 bits: "any"
    assert wc == 0x3FF & ~(1 << 3)  # everything wildcarded but dl_type


def test_transport_ports_without_a_protocol_are_ignored_and_bad_values_refused() -> None:
    raw = bytearray(encode_match11(Match.of(eth_type=0x0800)))
    struct.pack_into("!I", raw, 8, 0x3FF & ~(1 << 3) & ~(1 << 7))  # tp_dst exact, proto not
    struct.pack_into("!H", raw, 62, 80)
    assert parse_match11(Reader(bytes(raw))) == Match.of(eth_type=0x0800)
    bad = bytearray(encode_match11(Match.of(vlan_vid=0x1005)))
    struct.pack_into("!H", bad, 36, 5000)  # dl_vlan beyond 4095
    with pytest.raises(RemoteProtocolError) as e:
        parse_match11(Reader(bytes(bad)))
    assert (e.value.type, e.value.code) == (ErrorType.BAD_MATCH, BadMatchCode.BAD_VALUE)


def test_a_match_11_cannot_say_goes_as_oxm_and_oxm_is_read() -> None:
    m = Match.of(eth_type=0x86DD, ipv6_src=1)
    raw = encode_match11(m)
    assert struct.unpack_from("!H", raw)[0] == 1  # OFPMT_OXM
    assert parse_match11(Reader(raw)) == m


def test_set_actions_have_their_own_types() -> None:
    acts = (
        SetField(Oxm(OxmField.VLAN_VID, 0x1007)),
        SetField(Oxm(OxmField.ETH_DST, 0x5)),
        SetField(Oxm(OxmField.IP_DSCP, 2)),
        SetField(Oxm(OxmField.UDP_SRC, 99)),
        PopVlan(),
        Output(2),
    )
    raw = encode_actions11(acts)
    types = []
    r = Reader(raw)
    while r.remaining():
        t, n = r.unpack(struct.Struct("!HH"))
        r.take(n - 4)
        types.append(t)
    assert types == [1, 4, 7, 9, ActionType.POP_VLAN, ActionType.OUTPUT]
    assert struct.unpack_from("!B", raw, 8 + 16 + 4)[0] == 8  # set_nw_tos carries the ToS byte
    assert parse_actions11(Reader(raw), proto=17) == acts


def test_a_set_field_without_a_11_action_becomes_nicira_loads() -> None:
    raw = encode_actions11((SetField(Oxm(OxmField.IPV6_DST, (0x20010DB8 << 96) | 2)),))
    loads = parse_actions11(Reader(raw))
    assert len(loads) == 2 and all(isinstance(a, RegLoad) for a in loads)
    assert [(a.dst.ofs, a.dst.nbits, a.value) for a in loads if isinstance(a, RegLoad)] == [
        (0, 64, 2),
        (64, 64, 0x20010DB8 << 32),
    ]


def test_flow_mod_11_round_trip_and_an_add_resets_counters() -> None:
    fm = FlowMod(
        table_id=1, priority=7,
        match=Match.of(eth_type=0x0800, ip_proto=6, tcp_src=5),
        instructions=(ApplyActions((SetField(Oxm(OxmField.TCP_DST, 8)), Output(1))),
                      WriteActions((Output(2),)), GotoTable(3)),
    )  # fmt: skip
    raw = fm.encode(V11)
    assert raw[0] == V11
    back = decode(raw)
    assert isinstance(back, FlowMod)
    assert back.flags == FlowModFlags.RESET_COUNTS
    assert back.match == fm.match and back.instructions == fm.instructions
    assert decode(FlowMod(command=1).encode(V11)).flags == 0  # a modify does not


def test_flow_stats_11_and_12_have_no_flags() -> None:
    s = FlowStats(table_id=2, priority=3, flags=1, match=Match.of(in_port=1),
                  instructions=(ApplyActions((Output(2),)),))  # fmt: skip
    for v in (V11, V12):
        (back,) = decode(FlowStatsReply(stats=(s,)).encode(v)).stats  # type: ignore[attr-defined]
        assert back.flags == 0 and back.match == s.match and back.instructions == s.instructions


def test_packet_in_11_has_ports_and_12_no_cookie() -> None:
    pi = PacketIn(total_len=14, reason=1, table_id=2, match=Match.of(in_port=5), data=b"x" * 14)
    raw11 = pi.encode(V11)
    assert len(raw11) == 8 + 16 + 14 and struct.unpack_from("!II", raw11, 12) == (5, 5)
    assert decode(raw11) == pi
    raw12 = PacketIn(total_len=14, match=Match.of(in_port=5), data=b"y").encode(V12)
    assert len(raw12) == 8 + 8 + 16 + 2 + 1  # header, fixed part, match, pad, data
    assert decode(raw12) == PacketIn(total_len=14, match=Match.of(in_port=5), data=b"y")


def test_features_reply_lists_ports_before_13() -> None:
    port = PortDesc(port_no=1, name="p1", hw_addr=b"\0\1\2\3\4\5")
    for v in (V11, V12):
        fr = FeaturesReply(datapath_id=0xA1, capabilities=0x4F, ports=(port,))
        raw = fr.encode(v)
        assert len(raw) == 32 + 64
        assert decode(raw) == fr


def test_stats_without_durations_before_13() -> None:
    ps = PortStats(port_no=1, rx_packets=3, collisions=4)
    qs = QueueStats(port_no=1, queue_id=0, tx_bytes=9)
    for v in (V11, V12):
        raw = PortStatsReply(stats=(ps,)).encode(v)
        assert len(raw) == 16 + 104
        assert decode(raw) == PortStatsReply(stats=(ps,))
        raw = QueueStatsReply(stats=(qs,)).encode(v)
        assert len(raw) == 16 + 32
        assert decode(raw) == QueueStatsReply(stats=(qs,))


def test_table_stats_carry_what_a_table_can_do() -> None:
    caps = TableCaps(
        match=frozenset((0, 2, 3, 4, 5, 11, 12)), wildcards=frozenset((0, 2, 3, 4, 5, 11, 12)),
        actions=frozenset((ActionType.OUTPUT, ActionType.SET_FIELD, ActionType.POP_VLAN)),
        setfields=frozenset((3, 4, 11)),
        instructions=frozenset((InstructionType.APPLY_ACTIONS, InstructionType.GOTO_TABLE)),
        max_entries=1000,
    )  # fmt: skip
    ts = TableStats(1, 2, 3, 4, "", caps)
    raw12 = TableStatsReply(stats=(ts,)).encode(V12)
    assert len(raw12) == 16 + 128
    assert decode(raw12) == TableStatsReply(stats=(ts,))
    raw11 = TableStatsReply(stats=(ts,)).encode(V11)
    assert len(raw11) == 16 + 88
    (back,) = decode(raw11).stats  # type: ignore[attr-defined]
    assert back.caps.setfields == caps.setfields and back.caps.actions == caps.actions
    # 1.1 bit 10 is the match type: Ethernet addresses are bits 11 and 12
    match_bits = struct.unpack_from("!I", raw11, 16 + 44)[0]
    assert match_bits & (1 << 11) and match_bits & (1 << 12) and not match_bits & (1 << 10)


def test_13_only_statistics_are_refused_in_12() -> None:
    raw = bytearray(MeterFeaturesRequest(xid=9).encode(0x04))
    raw[0] = V12
    with pytest.raises(RemoteProtocolError) as e:
        decode(bytes(raw))
    assert (e.value.type, e.value.code) == (ErrorType.BAD_REQUEST, BadRequestCode.BAD_MULTIPART)


@pytest.mark.parametrize("version", [V11, V12])
def test_a_peer_speaking_only_11_or_12_negotiates_it(version: int) -> None:
    sw = Connection(versions=(1, 2, 3, 4, 5, 6))
    sw.start()
    sw.receive_data(Hello(xid=1, versions=frozenset((version,))).encode(version))
    ev = sw.next_event()
    assert isinstance(ev, Negotiated) and ev.version == version
    assert sw.next_event() is NEED_DATA


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_nicira_errors_are_vendor_errors_up_to_1_1_and_experimenter_errors_after(
    version: int,
) -> None:
    from hitless.openflow.errors import NxError

    e = RemoteProtocolError.nicira("mapped", NxError.TLV_ALREADY_MAPPED).with_request(
        b"\x01\x04\x00\x08\x00\x00\x00\x07", 7
    )
    raw = e.reply(version)
    if version <= 2:
        # Open vSwitch's vendor error: NXET_VENDOR, NXVC_VENDOR_ERROR, Nicira's (1, 531)
        assert struct.unpack_from("!BBHIHHIHH", raw) == (
            version, 1, 28, 7, 0xB0C2, 0, 0x2320, 1, 531,
        )  # fmt: skip
    else:
        assert struct.unpack_from("!BBHIHHI", raw) == (version, 1, 24, 7, 0xFFFF, 20, 0x2320)
    assert raw.endswith(b"\x01\x04\x00\x08\x00\x00\x00\x07")
