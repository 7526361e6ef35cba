"""Geneve options as fields (tun_metadata0-63) on the dummy datapath: a rule or an action
names one only once the TLV map (NXT_TLV_TABLE_MOD) maps it, within the option's length;
a frame from a port carries no option, so no rule on one matches it (not even on value
0) until a set_field or move writes it; a mapping in use cannot be deleted."""

from __future__ import annotations

import pytest

from hitless.ofproto.ofhandler import OfHandler, OfSession
from hitless.openflow import ApplyActions, Connection, FlowMod, Match, Output
from hitless.openflow.actions import GotoTable, SetField
from hitless.openflow.constants import BadActionCode, FlowModCommand, OxmClass
from hitless.openflow.errors import NxError, RemoteProtocolError
from hitless.openflow.match import Oxm
from hitless.openflow.nx_actions import RegMove
from hitless.openflow.nxm import FieldRef, Subfield
from hitless.openflow.nxmsg import NxTlvTableMod, TlvCommand, TlvMap
from tests.ofproto.helpers import P, Rig, frame, mac


def tun_md(index: int, value: int, width: int, mask: int | None = None) -> Oxm:
    return Oxm(40 + index, value, mask, OxmClass.NXM_1, width)


def setup() -> tuple[Rig, OfHandler, Connection, OfSession]:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    return r, OfHandler(r.bridge, 0x42), Connection(), OfSession()


def send(h: OfHandler, conn: Connection, sess: OfSession, msg: object) -> None:
    h.handle(conn, sess, msg, 0.0)  # type: ignore[arg-type]


def refused(h: OfHandler, conn: Connection, sess: OfSession, msg: object) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as e:
        send(h, conn, sess, msg)
    return e.value


def add_map(h: OfHandler, conn: Connection, sess: OfSession, *maps: TlvMap) -> None:
    send(h, conn, sess, NxTlvTableMod(xid=1, command=TlvCommand.ADD, maps=maps))


def flow(prio: int, fields: tuple[Oxm, ...], *insts: object, table: int = 0) -> FlowMod:
    return FlowMod(xid=2, table_id=table, priority=prio, match=Match(fields),
                   instructions=tuple(insts))  # type: ignore[arg-type]  # fmt: skip


def counts(r: Rig) -> dict[tuple[int, int], int]:
    return {(x.table_id, x.priority): x.packets for x in r.bridge.of.rules()}


def test_an_unmapped_field_is_refused_in_a_match_and_in_an_action() -> None:
    r, h, conn, sess = setup()
    e = refused(h, conn, sess, flow(5, (tun_md(0, 1, 1),), ApplyActions((Output(2),))))
    assert e.nx == NxError.INVALID_TLV_FIELD
    add_map(h, conn, sess, TlvMap(0xFFFF, 0, 4, 0))
    e = refused(h, conn, sess, flow(5, (), ApplyActions((SetField(tun_md(2, 1, 1)),))))
    assert e.nx == NxError.INVALID_TLV_FIELD
    # a move beyond the 4-byte option: Open vSwitch's OFPBAC_BAD_SET_LEN
    reg0 = Subfield.whole("reg0")
    beyond = Subfield(FieldRef.of("tun_metadata0"), 32, 32)
    e = refused(h, conn, sess, flow(5, (), ApplyActions((RegMove(reg0, beyond),))))
    assert e.code == BadActionCode.BAD_SET_LEN
    assert sorted(x.priority for x in r.bridge.of.rules()) == [0]  # nothing added


def test_only_a_packet_that_carries_the_option_matches_even_value_zero() -> None:
    r, h, conn, sess = setup()
    add_map(h, conn, sess, TlvMap(0xFFFF, 0, 4, 0), TlvMap(0xFFFF, 1, 8, 1))
    to = {n: r.no(n) for n in ("p2", "p3")}
    # table 0: a rule on tun_metadata0=0 (the frame has no option: never hit), and one
    # that writes tun_metadata1 (a 1-byte value, read as the low byte of 8) and goes on
    send(h, conn, sess, flow(10, (tun_md(0, 0, 0),), ApplyActions((Output(to["p3"]),))))
    send(h, conn, sess, flow(9, (tun_md(0, 0, 0, 0),), ApplyActions((Output(to["p3"]),))))
    send(h, conn, sess, flow(5, (), ApplyActions((SetField(tun_md(1, 7, 1)),)), GotoTable(1)))
    # table 1: tun_metadata1 is now there with 7: p2; tun_metadata0 still absent
    send(h, conn, sess, flow(10, (tun_md(0, 0, 0, 0),), ApplyActions((Output(to["p3"]),)),
                             table=1))  # fmt: skip
    send(h, conn, sess, flow(8, (tun_md(1, 7, 1),), ApplyActions((Output(to["p2"]),)), table=1))
    send(h, conn, sess, flow(0, (), ApplyActions(()), table=1))
    out = r.send("p1", frame(mac(2), mac(1)))
    assert sorted(out) == ["p2"]
    assert counts(r) == {(0, 0): 0, (0, 10): 0, (0, 9): 0, (0, 5): 1,
                         (1, 10): 0, (1, 8): 1, (1, 0): 0}  # fmt: skip


def test_a_value_is_read_as_wide_as_its_mapping() -> None:
    r, h, conn, sess = setup()
    add_map(h, conn, sess, TlvMap(0xFFFF, 0, 4, 0))
    # shorter: the low bytes; longer: its first bytes (as Open vSwitch reads them)
    send(h, conn, sess, flow(7, (tun_md(0, 1, 1),), ApplyActions(())))
    send(h, conn, sess, flow(6, (tun_md(0, 0x112233445566, 6),), ApplyActions(())))
    got = {x.priority: x.match.fields for x in r.bridge.of.rules() if x.priority}
    assert got == {7: (tun_md(0, 1, 4),), 6: (tun_md(0, 0x11223344, 4),)}


def test_a_mapping_a_flow_uses_cannot_be_deleted() -> None:
    r, h, conn, sess = setup()
    geneve = TlvMap(0xFFFF, 0, 4, 0)
    add_map(h, conn, sess, geneve, TlvMap(0xFFFF, 1, 4, 1))
    send(h, conn, sess, flow(5, (), ApplyActions((SetField(tun_md(1, 3, 4)),))))
    for cmd, maps in ((TlvCommand.CLEAR, ()), (TlvCommand.DELETE, (TlvMap(0xFFFF, 1, 4, 1),))):
        e = refused(h, conn, sess, NxTlvTableMod(xid=3, command=cmd, maps=maps))
        assert e.nx == NxError.TLV_INVALID_DEL
    assert sorted(h.tlv_maps) == [0, 1]
    send(h, conn, sess, NxTlvTableMod(xid=4, command=TlvCommand.DELETE, maps=(geneve,)))
    assert sorted(h.tlv_maps) == [1]  # the unused one goes
    send(h, conn, sess, FlowMod(xid=5, command=FlowModCommand.DELETE, table_id=0xFF))
    send(h, conn, sess, NxTlvTableMod(xid=6, command=TlvCommand.CLEAR))
    assert h.tlv_maps == {}
