"""OpenFlow 1.5 layouts and the Nicira messages OVN's ovn-controller sends, in memory."""

from __future__ import annotations

import struct

import pytest

from hitless.daemon.ofmgmt import parse_sessions
from hitless.ofproto.ofhandler import OfHandler, OfSession
from hitless.openflow import (
    ApplyActions,
    Bucket,
    Connection,
    FlowStats,
    FlowStatsReply,
    GroupMod,
    Match,
    Output,
    PacketOut,
    RemoteProtocolError,
    decode,
)
from hitless.openflow.constants import OFP15_VERSION, GroupModCommand, GroupType, Port
from hitless.openflow.nxmsg import (
    NxCtFlushZone,
    NxTlvTableMod,
    NxTlvTableReply,
    NxTlvTableRequest,
    TlvCommand,
    TlvMap,
)
from hitless.state.records import BridgeSessionsV4, OfTlvMapV4
from tests.ofproto.helpers import P, Rig

V15 = OFP15_VERSION


def test_packet_out_carries_in_port_in_a_match() -> None:
    po = PacketOut(in_port=Port.LOCAL, actions=(Output(1),), data=b"x" * 14)
    raw = po.encode(V15)
    # buffer_id, actions_len, pad, then an OXM match holding in_port (class 0x8000, field 0)
    assert struct.unpack_from("!IH2xHH", raw, 8) == (0xFFFFFFFF, 16, 1, 12)
    assert struct.unpack_from("!II", raw, 20) == (0x80000004, Port.LOCAL)
    assert decode(raw) == po


def test_flow_desc_counts_are_oxs_fields() -> None:
    s = FlowStats(
        table_id=3, duration_sec=7, duration_nsec=5_000_000, priority=9, packet_count=11,
        byte_count=600, idle_age=2, match=Match.of(in_port=1),
        instructions=(ApplyActions((Output(2),)),),
    )  # fmt: skip
    raw = FlowStatsReply(xid=5, stats=(s,)).encode(V15)
    body = raw[16:]
    length, table, prio = struct.unpack_from("!H2xBxH", body)
    assert (length, table, prio) == (len(body), 3, 9)
    oxs = body[24 + 16 :]  # after ofp_flow_desc and the 16-byte match
    assert struct.unpack_from("!HHI", oxs) == (0, 4 + 4 * 12, 0x80020008)  # duration first
    assert decode(raw) == FlowStatsReply(xid=5, stats=(s,))


def test_group_mod_15_has_bucket_ids_and_properties() -> None:
    gm = GroupMod(
        command=GroupModCommand.ADD, group_type=GroupType.SELECT, group_id=4,
        buckets=(Bucket(weight=5, actions=(Output(1),)), Bucket(weight=7, actions=(Output(2),))),
    )  # fmt: skip
    raw = gm.encode(V15)
    command, gtype, gid, blen, cbid = struct.unpack_from("!HBxIH2xI", raw, 8)
    assert (command, gtype, gid, cbid) == (0, 1, 4, 0xFFFFFFFF)
    assert blen == len(raw) - 24
    first = struct.unpack_from("!HHI", raw, 24)
    assert first[1:] == (16, 0)  # action array length, bucket id 0
    assert decode(raw) == gm


def _handler() -> tuple[Rig, OfHandler, Connection, OfSession]:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P()})
    return r, OfHandler(r.bridge, 0x42), Connection(versions=(6,)), OfSession()


def test_add_or_mod_group_creates_then_modifies() -> None:
    r, h, c, s = _handler()
    gm = GroupMod(command=0x8000, group_type=GroupType.ALL, group_id=9,
                  buckets=(Bucket(actions=(Output(1),)),))  # fmt: skip
    h.handle(c, s, gm, 0.0)
    assert r.bridge.of.groups[9].buckets[0].actions == (Output(1),)
    h.handle(c, s, GroupMod(command=0x8000, group_type=GroupType.ALL, group_id=9,
                            buckets=(Bucket(actions=(Output(2),)),)), 0.0)  # fmt: skip
    assert r.bridge.of.groups[9].buckets[0].actions == (Output(2),)


def test_tlv_table_mod_request_and_handoff_record() -> None:
    _, h, c, s = _handler()
    geneve = TlvMap(0x0102, 0x80, 4, 0)
    h.handle(c, s, NxTlvTableMod(command=TlvCommand.ADD, maps=(geneve,)), 0.0)
    (rep,) = h.handle(c, s, NxTlvTableRequest(xid=3), 0.0)
    assert isinstance(rep, NxTlvTableReply) and rep.maps == (geneve,)
    assert decode(rep.encode(V15)) == rep
    with pytest.raises(RemoteProtocolError):  # index 0 is taken by another option
        h.handle(c, s, NxTlvTableMod(command=TlvCommand.ADD,
                                     maps=(TlvMap(0x0102, 0x81, 4, 0),)), 0.0)  # fmt: skip
    assert list(h.tlv_maps.values()) == [geneve]  # all or nothing
    record = BridgeSessionsV4("br0", tlv_maps=[OfTlvMapV4(0x0102, 0x80, 4, 0)])
    assert parse_sessions(record, [], 0.0).tlv_maps == (geneve,)
    h.handle(c, s, NxTlvTableMod(command=TlvCommand.CLEAR), 0.0)
    assert h.tlv_maps == {}


def test_ct_flush_zone_is_accepted_and_flushes_the_zone() -> None:
    r, h, c, s = _handler()
    calls = []
    ct = r.bridge.datapath.conntrack
    real = ct.flush

    def flush(zone: int | None = None, orig: object = None, where: object = None) -> int:
        calls.append(zone)
        return real(zone)

    ct.flush = flush  # type: ignore[method-assign]
    raw = NxCtFlushZone(xid=2, zone_id=5).encode(V15)
    msg = decode(raw)
    assert msg == NxCtFlushZone(xid=2, zone_id=5)
    assert h.handle(c, s, msg, 0.0) == []
    assert calls == [5]
