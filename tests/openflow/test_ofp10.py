"""OpenFlow 1.0 and Nicira framing: the 1.0 codec against the values later versions use,
NXM against OXM, and two 1.0 peers in memory."""

from __future__ import annotations

import struct

import pytest

from hitless.openflow import (
    CLOSED,
    NEED_DATA,
    AggregateStatsReply,
    ApplyActions,
    Connection,
    FeaturesReply,
    FlowMod,
    FlowRemoved,
    FlowStats,
    FlowStatsReply,
    FlowStatsRequest,
    GotoTable,
    Instruction,
    Match,
    Output,
    PacketIn,
    PacketOut,
    PopVlan,
    PortDesc,
    ProtocolErrorEvent,
    SessionState,
    SetField,
    WriteMetadata,
    field,
    ofp10,
)
from hitless.openflow._wire import Reader
from hitless.openflow.connection import Negotiated, NxConfigured
from hitless.openflow.constants import (
    OFP10_VERSION,
    BadActionCode,
    BadMatchCode,
    ErrorType,
    FlowModCommand,
    Port,
)
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Oxm
from hitless.openflow.nx import NXM_NX, NxFlowFormat, NxSession, encode_nxm, parse_nxm
from hitless.openflow.nxmsg import NxFlowModTableId, NxSetFlowFormat, NxSetPacketInFormat


def events(conn: Connection) -> list:
    out = []
    while (ev := conn.next_event()) not in (NEED_DATA, CLOSED):
        out.append(ev)
    return out


def pair10() -> tuple[Connection, Connection]:
    """A switch speaking 1.0, 1.3, 1.4 and a controller speaking only 1.0 (ovs-ofctl)."""
    switch = Connection(versions=(1, 4, 5))
    ctl = Connection(versions=(1,))
    switch.receive_data(ctl.start())
    ctl.receive_data(switch.start())
    assert [type(e) for e in events(switch)] == [Negotiated]
    assert [type(e) for e in events(ctl)] == [Negotiated]
    assert switch.version == ctl.version == OFP10_VERSION
    return switch, ctl


def to_switch(switch: Connection, ctl: Connection, msg: object) -> list:
    switch.receive_data(ctl.send(msg))  # type: ignore[arg-type]
    return events(switch)


MATCHES = [
    Match(),
    Match.of(in_port=1),
    Match.of(in_port=Port.LOCAL, eth_dst=0x0A0000000001, eth_type=0x0800),
    Match.of(eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFF000000), ip_proto=6, tcp_dst=80),
    Match.of(eth_type=0x0800, ip_dscp=10, ip_proto=17, udp_src=53),
    Match.of(eth_type=0x0806, arp_op=1, arp_spa=0x0A000001),
    Match.of(eth_type=0x0800, ip_proto=1, icmpv4_type=8, icmpv4_code=0),
    Match.of(vlan_vid=0x1000 | 10, vlan_pcp=3),
    Match.of(vlan_vid=0),
]


@pytest.mark.parametrize("match", MATCHES)
def test_ofp10_match_round_trip(match: Match) -> None:
    raw = ofp10.match_to10(match)
    assert len(raw) == 40
    back, exact = ofp10.match_from10(Reader(raw))
    assert sorted(back.fields, key=repr) == sorted(match.fields, key=repr)
    assert not exact


@pytest.mark.parametrize("match", MATCHES)
def test_nxm_round_trip(match: Match) -> None:
    raw = encode_nxm(match)
    back = parse_nxm(Reader(raw + b"\0" * 8), len(raw))
    assert sorted(back.fields, key=repr) == sorted(match.fields, key=repr)


def test_nxm_uses_nicira_classes_and_keeps_unknown_fields() -> None:
    reg0 = Oxm(0, 5, None, NXM_NX, 4)  # NXM_NX_REG0: the Nicira pipeline's to interpret
    m = Match((field("eth_type", 0x0800), field("ipv4_src", 0x01020304), reg0))
    raw = encode_nxm(m)
    # NXM_OF_ETH_TYPE (class 0, field 3, 2 bytes) first: prerequisites lead.
    assert raw[:4] == struct.pack("!I", 3 << 9 | 2)
    assert struct.pack("!I", 7 << 9 | 4) in raw  # NXM_OF_IP_SRC
    back = parse_nxm(Reader(raw), len(raw))
    assert reg0 in back.fields


def test_nxm_vlan_tci_becomes_vid_and_pcp() -> None:
    # NXM_OF_VLAN_TCI=0x3005 (pcp 1, CFI, vid 5), exact.
    tlv = struct.pack("!IH", 4 << 9 | 2, 0x3005)
    m = parse_nxm(Reader(tlv), len(tlv))
    assert set(m.fields) == {field("vlan_vid", 0x1005), field("vlan_pcp", 1)}
    # "no 802.1Q header": TCI 0 exact.
    tlv = struct.pack("!IH", 4 << 9 | 2, 0)
    assert parse_nxm(Reader(tlv), len(tlv)).fields == (field("vlan_vid", 0),)


def test_flow_mod10_decodes_to_the_common_value() -> None:
    fm = FlowMod(
        command=FlowModCommand.ADD,
        priority=7,
        match=Match.of(in_port=1, eth_type=0x0800, ip_proto=6, tcp_dst=80),
        instructions=(
            ApplyActions((PopVlan(), SetField(field("tcp_dst", 8080)), Output(Port.NORMAL))),
        ),
    )
    raw = ofp10.encode(fm)
    assert raw[0] == 1 and raw[1] == 14  # OFPT_FLOW_MOD in 1.0
    back = ofp10.decode(raw)
    assert isinstance(back, FlowMod)
    assert back.match.fields == fm.match.fields
    assert back.instructions == fm.instructions
    assert back.priority == 7 and back.table_id == 0


def test_exact_1_0_match_gets_top_priority_and_delete_spans_tables() -> None:
    exact = b"\0" * 40  # wildcards 0: every field exact
    body = exact + struct.pack("!QHHHHIHH", 0, FlowModCommand.DELETE, 0, 0, 5, 2**32 - 1, 0xFFFF, 0)
    raw = struct.pack("!BBHI", 1, 14, 8 + len(body), 9) + body
    fm = ofp10.decode(raw)
    assert isinstance(fm, FlowMod)
    assert fm.priority == 0xFFFF and fm.table_id == 0xFF and fm.out_port == Port.ANY


def test_resubmit_to_later_table_at_the_end_is_goto_table() -> None:
    fm = FlowMod(table_id=2, match=Match(), instructions=(GotoTable(5),))
    nx = NxSession(flow_mod_table_id=True)
    back = ofp10.decode(ofp10.encode(fm, nx), nx)
    assert isinstance(back, FlowMod)
    assert back.table_id == 2 and back.instructions == (GotoTable(5),)


@pytest.mark.parametrize(
    ("insts", "refused"),
    [
        ((WriteMetadata(0x10, 0xFF), GotoTable(5)), True),  # resubmit(,5) after it
        ((ApplyActions((Output(1),)), WriteMetadata(0x10, 0xFF)), False),
        ((WriteMetadata(0x10, 0xFF),), False),
    ],
)
def test_an_action_after_write_metadata_is_refused_in_1_0(
    insts: tuple[Instruction, ...], refused: bool
) -> None:
    """Open vSwitch reads a 1.0 action list in instruction order: write_metadata last."""
    nx = NxSession(flow_mod_table_id=True)
    raw = ofp10.encode(FlowMod(table_id=2, match=Match(), instructions=insts), nx)
    if not refused:
        assert isinstance(ofp10.decode(raw, nx), FlowMod)
        return
    with pytest.raises(RemoteProtocolError) as e:
        ofp10.decode(raw, nx)
    assert (e.value.type, e.value.code) == (ErrorType.BAD_ACTION, BadActionCode.UNSUPPORTED_ORDER)
    reply = e.value.reply(OFP10_VERSION)
    # NXBRC_UNENCODABLE_ERROR, Open vSwitch's vendor error, quoting the flow_mod
    assert struct.unpack_from("!HHIHH", reply, 8) == (0xB0C2, 0, 0x2320, 1, 521)
    assert reply.endswith(raw)


def test_session_controls_and_nx_replies() -> None:
    switch, ctl = pair10()
    (ev,) = to_switch(switch, ctl, NxSetFlowFormat(xid=2, format=NxFlowFormat.NXM))
    assert isinstance(ev, NxConfigured) and switch.nx.flow_format == NxFlowFormat.NXM
    (ev,) = to_switch(switch, ctl, NxFlowModTableId(xid=3, enable=True))
    assert switch.nx.flow_mod_table_id
    (ev,) = to_switch(switch, ctl, NxSetPacketInFormat(xid=4, format=2))
    assert switch.nx.packet_in_format == 2
    # An NXST_FLOW request (hand-built as ovs-ofctl sends it) gets an NXST_FLOW reply.
    nxm = encode_nxm(Match.of(eth_type=0x0800))
    body = struct.pack("!HHIII", 0xFFFF, 0, 0x2320, 0, 0) + struct.pack(
        "!HHB3x", 0xFFFF, len(nxm), 0xFF
    )
    body += nxm + b"\0" * (-len(nxm) % 8)
    switch.receive_data(struct.pack("!BBHI", 1, 16, 8 + len(body), 7) + body)
    (req,) = events(switch)
    assert isinstance(req, FlowStatsRequest) and req.match == Match.of(eth_type=0x0800)
    stats = FlowStats(priority=9, match=Match.of(eth_type=0x0800), idle_age=3,
                      instructions=(ApplyActions((Output(2),)),))  # fmt: skip
    reply = switch.send(FlowStatsReply(xid=7, stats=(stats,)))
    assert reply[1] == 17 and struct.unpack_from("!HHII", reply, 8) == (0xFFFF, 0, 0x2320, 0)
    assert 7 not in switch.nx.nx_xids  # the last part of the reply was sent
    # The next reply for that xid is a plain OFPST one.
    assert switch.send(AggregateStatsReply(xid=7))[8:10] == b"\0\x02"


def test_bad_flow_format_is_refused_and_the_session_goes_on() -> None:
    switch, ctl = pair10()
    (ev,) = to_switch(switch, ctl, NxSetFlowFormat(xid=2, format=1))
    assert isinstance(ev, ProtocolErrorEvent) and ev.error.type != 0
    assert struct.unpack_from("!BBHIHH", ev.data) == (1, 1, len(ev.data), 2, 1, 5)  # EPERM
    assert switch.nx.flow_format == NxFlowFormat.OPENFLOW10


@pytest.mark.parametrize(
    ("etype", "code", "want"),
    [
        (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ, (1, 260)),
        (ErrorType.BAD_REQUEST, 9, (1, 512)),  # bad table id
        (ErrorType.FLOW_MOD_FAILED, 3, (3, 1)),  # overlap
        (ErrorType.METER_MOD_FAILED, 1, (1, 521)),  # no 1.0 form: "unencodable"
        (ErrorType.BAD_ACTION, 4, (2, 4)),
    ],
)
def test_errors_use_open_vswitchs_1_0_codes(etype: int, code: int, want: tuple[int, int]) -> None:
    """Standard 1.0 codes as they are; Open vSwitch's own (code 256 and up, group errors)
    as its vendor error: NXET_VENDOR, NXVC_VENDOR_ERROR, then Nicira's (type, code)."""
    raw = RemoteProtocolError("x", etype, code, xid=3).reply(OFP10_VERSION)
    if want[1] < 256:
        assert struct.unpack_from("!HH", raw, 8) == want
    else:
        assert struct.unpack_from("!HHIHH", raw, 8) == (0xB0C2, 0, 0x2320, *want)


def test_async_messages_in_each_form() -> None:
    switch, _ = pair10()
    pin = PacketIn(reason=1, total_len=4, match=Match.of(in_port=3), data=b"abcd")
    std = switch.send(pin)
    assert std[1] == 10 and struct.unpack_from("!HH", std, 12) == (4, 3)
    switch.nx.packet_in_format = 1
    nxt = switch.send(pin)
    assert nxt[1] == 4 and struct.unpack_from("!II", nxt, 8) == (0x2320, 17)
    switch.nx.packet_in_format = 2
    assert struct.unpack_from("!II", switch.send(pin), 8) == (0x2320, 30)
    fr = FlowRemoved(priority=3, match=Match.of(in_port=1))
    assert switch.send(fr)[1] == 11
    switch.nx.flow_format = NxFlowFormat.NXM
    assert struct.unpack_from("!II", switch.send(fr), 8) == (0x2320, 14)


def test_features_reply_lists_ports_in_1_0() -> None:
    switch, _ = pair10()
    port = PortDesc(port_no=Port.LOCAL, hw_addr=b"\x02" * 6, name="br0", curr=1 << 6)
    raw = switch.send(FeaturesReply(datapath_id=0xA1, ports=(port,)))
    assert len(raw) == 32 + 48
    back = ofp10.decode(raw)
    assert isinstance(back, FeaturesReply) and back.ports == (port,)


def test_packet_out_in_1_0() -> None:
    po = PacketOut(in_port=Port.LOCAL, actions=(Output(1),), data=b"x" * 14)
    back = ofp10.decode(ofp10.encode(po))
    assert back == po


def test_session_state_carries_the_nicira_state() -> None:
    switch, _ = pair10()
    switch.nx.flow_format = NxFlowFormat.NXM
    switch.nx.controller_id = 7
    state = SessionState.from_dict(switch.export_state().to_dict())
    again = Connection.from_state(state, now=5.0)
    assert again.version == 1 and again.nx.flow_format == NxFlowFormat.NXM
    assert again.nx.controller_id == 7
    # A record from before this field existed still loads, with the defaults.
    old = switch.export_state().to_dict()
    del old["nx"]
    assert Connection.from_state(SessionState.from_dict(old), now=5.0).nx == NxSession()


def test_nicira_session_controls_work_over_1_3_too() -> None:
    """ovs-ofctl -P standard monitor sends NXT_SET_PACKET_IN_FORMAT in a 1.3 session (it
    was refused with BAD_VENDOR): applied, and packet-ins follow the chosen form."""
    switch = Connection(versions=(4,))
    ctl = Connection(versions=(4,))
    switch.receive_data(ctl.start())
    ctl.receive_data(switch.start())
    events(switch)
    events(ctl)
    (ev,) = to_switch(switch, ctl, NxSetPacketInFormat(xid=2, format=0))
    assert isinstance(ev, NxConfigured) and switch.nx.packet_in_format == 0
    pin = PacketIn(reason=0, total_len=1, match=Match.of(in_port=1), data=b"x")
    assert switch.send(pin)[1] == 10  # OFPT_PACKET_IN
    to_switch(switch, ctl, NxSetPacketInFormat(xid=3, format=2))
    assert struct.unpack_from("!II", switch.send(pin), 8) == (0x2320, 30)  # NXT_PACKET_IN2


def test_a_meter_deletion_reads_as_a_delete_before_1_4() -> None:
    """Flow-removed reason METER_DELETE (1.4's) goes as DELETE in 1.0 (both forms) and
    1.1-1.3, as Open vSwitch sends it; 1.4+ keep it, and EVICTION stays everywhere."""
    from hitless.openflow.constants import FlowRemovedReason as R
    from hitless.openflow.messages import decode

    for reason, before, after in ((R.METER_DELETE, R.DELETE, R.METER_DELETE),
                                  (R.EVICTION, R.EVICTION, R.EVICTION)):  # fmt: skip
        fr = FlowRemoved(priority=3, reason=reason, match=Match.of(in_port=1))
        for v in (2, 3, 4, 5, 6):
            got = decode(fr.encode(v))
            assert isinstance(got, FlowRemoved) and got.reason == (before if v < 5 else after)
        switch, _ = pair10()
        assert switch.send(fr)[8 + 40 + 10] == before  # ofp_flow_removed (1.0): reason
        switch.nx.flow_format = NxFlowFormat.NXM
        assert switch.send(fr)[16 + 10] == before  # nx_flow_removed: reason
