"""LACP: the PDU codec and two bridges negotiating over a pair of bonds in memory (two
dummy datapaths whose member ports are wired to each other)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hitless.config.model import BondConfig
from hitless.ofproto.lacp import (
    PDU_LEN,
    LacpInfo,
    LacpState,
    decode_pdu,
    encode_pdu,
    format_state,
)
from tests.ofproto.helpers import BCAST, P, Rig, config, frame, mac
from tests.ofproto.test_bond import with_bond


def test_pdu_round_trip_and_layout() -> None:
    actor = LacpInfo(65534, bytes.fromhex("020000000001"), 1, 65535, 2, 0x3D)
    partner = LacpInfo(65534, bytes.fromhex("020000000002"), 5, 65535, 7, 0x0D)
    pdu = encode_pdu(bytes.fromhex("020000000009"), actor, partner)
    assert len(pdu) == PDU_LEN == 124  # 14-byte header + 110-byte LACPDU
    assert pdu[:6] == bytes.fromhex("0180c2000002") and pdu[12:16] == b"\x88\x09\x01\x01"
    assert pdu[16:18] == b"\x01\x14" and pdu[36:38] == b"\x02\x14"  # actor, partner TLVs
    assert pdu[56:58] == b"\x03\x10" and pdu[72:74] == b"\x00\x00"  # collector, terminator
    assert decode_pdu(pdu) == (actor, partner)
    assert format_state(0x3D) == "activity aggregation synchronized collecting distributing"
    with pytest.raises(ValueError, match="short"):
        decode_pdu(pdu[:40])
    with pytest.raises(ValueError, match="subtype 2"):
        decode_pdu(pdu[:14] + b"\x02" + pdu[15:])


class Pair:
    """Two bridges whose bonds are cabled member to member (p0-p0, p1-p1)."""

    def __init__(self, bond_a: BondConfig, bond_b: BondConfig) -> None:
        self.a = Rig({"br0": P(type="internal"), "ha": P()})
        self.b = Rig({"br0": P(type="internal"), "hb": P()})
        self.a.clock = self.b.clock  # one clock for both
        for r, bond in ((self.a, bond_a), (self.b, bond_b)):
            r.bridge.reconfigure(with_bond(config("br0", r.ports), bond), r.clock.t)
        self.cut: set[str] = set()
        self.hosts: dict[str, list[bytes]] = {"ha": [], "hb": []}  # what reached them

    def step(self, rounds: int = 4) -> None:
        for _ in range(rounds):
            self.a.run()
            self.b.run()
            for src, dst in ((self.a, self.b), (self.b, self.a)):
                for port, frames in src.out().items():
                    if port in ("p0", "p1") and port not in self.cut:
                        for f in frames:
                            dst.dp.receive(dst.no(port), f)
                    elif port in self.hosts:
                        self.hosts[port] += data(frames)

    def advance(self, dt: float, step: float = 0.5) -> None:
        t = 0.0
        while t < dt:
            self.a.clock.t += step
            t += step
            self.step()


def data(frames: list[bytes]) -> list[bytes]:
    """The frames that are not slow-protocol PDUs."""
    return [f for f in frames if f[12:14] != b"\x88\x09"]


def data_ports(out: dict[str, list[bytes]]) -> set[str]:
    return {p for p, frames in out.items() if data(frames)}


def test_two_bridges_negotiate_and_forward_over_balance_tcp() -> None:
    lacp = BondConfig(mode="balance-tcp", lacp="active", lacp_time="fast")
    pair = Pair(lacp, replace(lacp, lacp="passive"))
    ba, bb = pair.a.bridge.bonds["bond0"], pair.b.bridge.bonds["bond0"]
    assert ba.lacp_status == "configured"
    # Not negotiated yet: nothing is admitted or sent on the bond.
    assert data_ports(pair.a.send("ha", frame(BCAST, mac(1)))) == {"br0"}
    pair.advance(2)
    assert ba.lacp_status == bb.lacp_status == "negotiated"
    assert all(m.enabled for m in ba.members.values())
    assert all(m.enabled for m in bb.members.values())
    text = ba.lacp.show()  # type: ignore[union-attr]
    assert "  status: active negotiated\n" in text
    assert "member: p0: current attached\n" in text
    assert "actor state: activity timeout aggregation synchronized collecting distributing\n" in text
    assert "passive" in bb.lacp.show()  # type: ignore[union-attr]
    # Traffic crosses the bond both ways.
    pair.b.dp.receive(pair.b.no("hb"), frame(BCAST, mac(2)))
    pair.step()
    assert [f[6:12] for f in pair.hosts["ha"]] == [bytes.fromhex(mac(2).replace(":", ""))]
    pair.a.dp.receive(pair.a.no("ha"), frame(mac(2), mac(1)))
    pair.step()
    to_b = [f for f in pair.hosts["hb"] if f[12:14] != b"\x80\x35"]  # not learning packets
    assert [f[:6] for f in to_b] == [bytes.fromhex(mac(2).replace(":", ""))]


def test_a_member_whose_partner_falls_silent_is_disabled() -> None:
    lacp = BondConfig(mode="active-backup", lacp="active", lacp_time="fast")
    pair = Pair(lacp, lacp)
    pair.advance(2)
    ba = pair.a.bridge.bonds["bond0"]
    assert ba.lacp_status == "negotiated" and all(m.enabled for m in ba.members.values())
    pair.cut.add("p0")  # the cable is cut without a link down: only LACP can tell
    pair.advance(4)  # 3 fast intervals: expired (the partner is kept, still enabled)
    assert "member: p0: expired attached" in ba.lacp.show()  # type: ignore[union-attr]
    pair.advance(3)  # 3 more: defaulted
    p0 = ba.members[pair.a.no("p0")]
    assert not p0.enabled and ba.members[pair.a.no("p1")].enabled
    assert ba.active == pair.a.no("p1")
    assert "member: p0: defaulted detached" in ba.lacp.show()  # type: ignore[union-attr]
    pair.cut.clear()
    pair.advance(31, step=1)  # a defaulted member sends at the slow rate (30 s), as OVS
    assert p0.enabled


def test_no_partner_means_nothing_forwarded_unless_fallback() -> None:
    r = Rig({"br0": P(type="internal"), "a": P()})
    r.bridge.reconfigure(
        with_bond(config("br0", r.ports), BondConfig(lacp="active")), r.clock.t
    )
    assert data_ports(r.send("a", frame(BCAST, mac(1)))) == {"br0"}
    assert data_ports(r.send("p0", frame(BCAST, mac(2)))) == set()
    r.bridge.reconfigure(
        with_bond(config("br0", r.ports), BondConfig(lacp="active", lacp_fallback_ab=True)),
        r.clock.t,
    )
    r.run()
    assert data_ports(r.send("a", frame(BCAST, mac(3)))) == {"br0"}  # still expired
    r.advance(3.1)  # no partner within 3 fast intervals: defaulted, and the fallback
    assert data_ports(r.send("a", frame(BCAST, mac(4)))) == {"br0", "p0"}  # active-backup


def test_state_bits() -> None:
    assert LacpState.SYNC == 0x08 and LacpState.EXPIRED == 0x80


def test_bond_state_carried_to_a_new_bridge_needs_no_renegotiation() -> None:
    """What a handoff carries (Bridge.export_bonds / import_bonds, a takeover extra): a
    new bridge with the same configuration forwards over the bond at once, without
    waiting for the partner's next PDU (30 s at the slow rate)."""
    lacp = BondConfig(mode="balance-tcp", lacp="active")  # slow
    pair = Pair(lacp, lacp)
    pair.advance(2)
    ba = pair.a.bridge.bonds["bond0"]
    assert ba.lacp_status == "negotiated"
    data = pair.a.bridge.export_bonds(pair.a.clock.t)
    fresh = Rig({"br0": P(type="internal"), "ha": P()})
    fresh.clock = pair.a.clock
    fresh.bridge.reconfigure(with_bond(config("br0", fresh.ports), lacp), fresh.clock.t)
    nb = fresh.bridge.bonds["bond0"]
    assert nb.lacp_status == "configured" and not any(m.enabled for m in nb.members.values())
    assert data is not None
    fresh.bridge.import_bonds(data, fresh.clock.t)
    fresh.run()
    assert nb.lacp_status == "negotiated"
    assert all(m.enabled for m in nb.members.values())
    assert nb.buckets == ba.buckets
    assert data_ports(fresh.send("ha", frame(BCAST, mac(5)))) >= {"br0"}
    assert len(data_ports(fresh.send("ha", frame(BCAST, mac(5)))) & {"p0", "p1"}) == 1


def test_marker_information_is_answered_on_the_member_it_came_in_on() -> None:
    import struct

    r = Rig({"br0": P(type="internal"), "ha": P()})
    bond = BondConfig(mode="balance-tcp", lacp="active", lacp_time="fast")
    r.bridge.reconfigure(with_bond(config("br0", r.ports), bond), r.clock.t)
    r.run()
    r.out()
    requester = bytes.fromhex("020000000099")
    body = struct.pack("!BBBBH6sI2x", 2, 1, 1, 16, 7, requester, 0xABCDEF01)
    marker = bytes.fromhex("0180c2000002") + requester + b"\x88\x09" + body
    marker += struct.pack("!BB", 0, 0) + bytes(90)
    r.dp.receive(r.no("p1"), marker)
    r.run()
    out = r.out()
    (resp,) = [f for f in out.get("p1", []) if f[12:15] == b"\x88\x09\x02"]
    assert resp[:6] == bytes.fromhex("0180c2000002")
    assert resp[6:12] == r.dp.ports()[r.no("p1")].mac  # from the member's own address
    assert resp[14:18] == b"\x02\x01\x02\x10"  # Marker, version 1, Marker Response TLV, 16
    assert resp[18:30] == struct.pack("!H6sI", 7, requester, 0xABCDEF01)
    assert len(resp) == 124
    assert not [f for f in out.get("p0", []) if f[12:15] == b"\x88\x09\x02"]
    lacp = r.bridge.bonds["bond0"].lacp
    assert lacp is not None and "RX Marker Request PDUs: 1" in lacp.show_stats()
    # A Marker Response is not answered.
    r.dp.receive(r.no("p1"), resp)
    r.run()
    assert not [f for f in r.out().get("p1", []) if f[12:15] == b"\x88\x09\x02"]
