"""The ct, ct_clear and recirc datapath actions on the dummy datapath: a stateful
firewall and a DNAT service as megaflows, established packets handled without an
upcall, a miss after recirculation upcalled with its ct fields."""

from __future__ import annotations

import ipaddress

import pytest

from hitless.datapath.actions import (
    Ct,
    CtClear,
    Output,
    Recirc,
    actions_from_json,
    actions_to_json,
    format_actions,
)
from hitless.datapath.base import DatapathError
from hitless.datapath.conntrack import CS_DNAT, CS_EST, CS_NEW, CS_RPL, CS_TRK, NatSpec, parse_tuple
from hitless.datapath.dummy import DummyDatapath
from hitless.packet.flow import (
    Match,
    compact,
    field,
    format_match,
    full_mask,
    make_key,
    make_mask,
    widen,
)
from tests.datapath.test_conntrack import ACK, SYN, tcp_frame, udp_frame

A, B = "10.0.0.1", "10.0.0.2"
IP = 0x0800


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def flow(
    dp: DummyDatapath, actions: tuple, mask_fields: tuple[str, ...] = (), **fields: int
) -> Match:  # type: ignore[type-arg]
    mask = full_mask("in_port", "recirc_id", "eth_type", *mask_fields)
    extra = {}
    if "ct_state_mask" in fields:
        extra["ct_state"] = fields.pop("ct_state_mask")
        mask = bytes(a | b for a, b in zip(mask, make_mask(**extra), strict=True))
    m = Match.of(make_key(eth_type=IP, **fields), mask)
    dp.flow_put(m, actions)
    return m


def firewall() -> DummyDatapath:
    """Port 1 inside, port 2 outside: inside may open connections, outside may only
    answer them (allow +est, drop +new from outside)."""
    dp = DummyDatapath("br-ct", clock=Clock())
    dp.port_add("inside", 1)
    dp.port_add("outside", 2)
    flow(dp, (Ct(zone=5, commit=True), Recirc(1)), in_port=1, recirc_id=0)
    flow(dp, (Ct(zone=5), Recirc(2)), in_port=2, recirc_id=0)
    flow(dp, (Output(2),), in_port=1, recirc_id=1)
    est = CS_TRK | CS_EST
    flow(dp, (Output(1),), in_port=2, recirc_id=2, ct_state=est, ct_state_mask=CS_TRK | CS_EST)
    flow(dp, (), in_port=2, recirc_id=2, ct_state=CS_TRK, ct_state_mask=CS_TRK | CS_EST)
    return dp


def test_firewall_allows_replies_drops_new_from_outside() -> None:
    dp = firewall()
    dp.receive(2, udp_frame(B, A, 53, 5000))  # unsolicited: dropped
    assert dp.pop_sent() == {} and dp.recv_upcalls() == []
    dp.receive(1, udp_frame(A, B, 5000, 53))
    dp.receive(2, udp_frame(B, A, 53, 5000))  # the answer: allowed
    sent = dp.pop_sent()
    assert sent == {2: [udp_frame(A, B, 5000, 53)], 1: [udp_frame(B, A, 53, 5000)]}
    assert dp.recv_upcalls() == [] and dp.n_missed == 0
    (conn,) = list(dp.conntrack)
    assert conn.zone == 5 and conn.seen_reply


def test_tcp_through_firewall_without_upcalls() -> None:
    dp = firewall()
    dp.receive(1, tcp_frame(A, B, 1000, 80, SYN, seq=100))
    dp.receive(2, tcp_frame(B, A, 80, 1000, SYN | ACK, seq=500, ack=101))
    dp.receive(1, tcp_frame(A, B, 1000, 80, ACK, seq=101, ack=501))
    for i in range(5):
        dp.receive(2, tcp_frame(B, A, 80, 1000, ACK, seq=501 + i * 10, ack=101, payload=bytes(10)))
    sent = dp.pop_sent()
    assert len(sent[1]) == 6 and len(sent[2]) == 2
    assert dp.n_missed == 0
    # A segment far outside the window is +inv: neither +est nor dropped by "new" rule
    # here but by the est rule's mask (trk without est): dropped.
    dp.receive(2, tcp_frame(B, A, 80, 1000, ACK, seq=501 + 10**8, ack=101, payload=b"x"))
    assert dp.pop_sent() == {}


def test_miss_after_recirculation_upcalls_with_ct_fields() -> None:
    dp = DummyDatapath("br-ct2", clock=Clock())
    dp.port_add("p1", 1)
    flow(dp, (Ct(zone=7, commit=True, mark=(0x42, 0xFF)), Recirc(3)), in_port=1, recirc_id=0)
    dp.receive(1, udp_frame(A, B, 1, 2))
    (up,) = dp.recv_upcalls()
    assert field(up.key, "recirc_id") == 3
    assert field(up.key, "ct_state") == CS_TRK | CS_NEW
    assert field(up.key, "ct_zone") == 7 and field(up.key, "ct_mark") == 0x42
    assert field(up.key, "ct_nw_src") == int(ipaddress.IPv4Address(A))
    assert field(up.key, "ct_tp_dst") == 2 and field(up.key, "ct_nw_proto") == 17
    # The daemon answers with execute() and the key: the packet goes on with its state.
    dp.execute(up.packet, 1, (CtClear(), Output(1)), up.key)
    assert dp.pop_sent() == {1: [up.packet]}


def test_dnat_service() -> None:
    """Clients on port 1 reach 10.0.0.100:80, served by 10.0.0.2:8080 on port 2."""
    dp = DummyDatapath("br-nat", clock=Clock())
    dp.port_add("clients", 1)
    dp.port_add("server", 2)
    nat = NatSpec("dst", ipaddress.ip_address(B).packed, port_min=8080)
    flow(dp, (Ct(zone=1, commit=True, nat=nat), Recirc(1)), in_port=1, recirc_id=0)
    flow(dp, (Ct(zone=1, nat=NatSpec()), Recirc(2)), in_port=2, recirc_id=0)
    flow(dp, (Output(2),), in_port=1, recirc_id=1)
    flow(
        dp,
        (Output(1),),
        in_port=2,
        recirc_id=2,
        ct_state=CS_TRK | CS_EST | CS_RPL | CS_DNAT,
        ct_state_mask=0xFF,
    )
    dp.receive(1, udp_frame(A, "10.0.0.100", 4000, 80))
    (to_server,) = dp.pop_sent()[2]
    t = parse_tuple(to_server)
    assert t is not None and (t.tuple.dst, t.tuple.dport) == (ipaddress.ip_address(B).packed, 8080)
    dp.receive(2, udp_frame(B, A, 8080, 4000))
    (to_client,) = dp.pop_sent()[1]
    r = parse_tuple(to_client)
    assert r is not None
    assert (r.tuple.src, r.tuple.sport) == (ipaddress.ip_address("10.0.0.100").packed, 80)


def test_gateway_router_dnat_then_snat_in_one_zone_keeps_the_client_port() -> None:
    """OVN's gateway router on a floating IP: ct(commit,zone=1,nat(dst)), recirculate,
    then ct(zone=1,nat) and ct(commit,zone=1,nat(src)) on the translated packet. The
    recirculated key says the packet was translated in zone 1, so the later ct actions
    find the same connection (one entry) and the server sees the client's own port."""
    dp = DummyDatapath("br-gw", clock=Clock())
    dp.port_add("outside", 1)
    dp.port_add("inside", 2)
    dnat = NatSpec("dst", ipaddress.ip_address(B).packed)
    flow(dp, (Ct(zone=1, commit=True, nat=dnat), Recirc(1)), in_port=1, recirc_id=0)
    flow(dp, (Ct(zone=1, nat=NatSpec()), Recirc(2)), in_port=1, recirc_id=1)
    flow(dp, (Ct(zone=1, commit=True, nat=NatSpec("src")), Output(2)), in_port=1, recirc_id=2)
    dp.receive(1, tcp_frame(A, "10.0.0.100", 4000, 22, SYN, seq=1))
    (to_server,) = dp.pop_sent()[2]
    t = parse_tuple(to_server)
    assert t is not None and (t.tuple.src, t.tuple.sport) == (ipaddress.ip_address(A).packed, 4000)
    assert t.tuple.dst == ipaddress.ip_address(B).packed
    assert len(dp.conntrack) == 1, [c.describe(0) for c in dp.conntrack]


def test_ct_actions_format_and_json_round_trip() -> None:
    acts = (
        Ct(
            zone=3,
            commit=True,
            nat=NatSpec("src", bytes([10, 0, 0, 1]), bytes([10, 0, 0, 9]), 2000, 2999),
            mark=(1, 0xFF),
            label=(1 << 127, 1 << 127),
        ),
        Ct(nat=NatSpec()),
        CtClear(),
        Recirc(0x1F),
    )
    assert actions_from_json(actions_to_json(acts)) == acts
    assert format_actions(acts) == (
        "ct(commit,zone=3,mark=0x1/0xff,label=0x80000000000000000000000000000000/"
        "0x80000000000000000000000000000000,nat(src=10.0.0.1-10.0.0.9:2000-2999)),"
        "ct(nat),ct_clear,recirc(0x1f)"
    )


def test_key_compaction_round_trip_and_format() -> None:
    m = Match.of(make_key(in_port=1, eth_type=IP), full_mask("in_port", "recirc_id", "eth_type"))
    k, mk = compact(m.key, m.mask)
    assert len(k) == 102 and widen(k, mk) == (m.key, m.mask)
    ct = Match.of(
        make_key(recirc_id=2, ct_state=0x22), make_mask(recirc_id=0xFFFFFFFF, ct_state=0x23)
    )
    assert compact(ct.key, ct.mask) == (ct.key, ct.mask)
    assert format_match(ct.key, ct.mask) == "recirc_id(0x2),ct_state(-new+est+trk)"


def test_handles_carry_the_connection_table_and_recirc_ids() -> None:
    """A firewall's table moves with the datapath handles: after adoption, the reply to
    a connection committed before is still +est, and an unsolicited packet still +new."""
    old = firewall()
    old.recirc[1] = b"frozen-1"
    old.conntrack.set_limit(5, 100)
    old.receive(1, tcp_frame(A, B, 1000, 80, SYN, seq=100))
    old.receive(2, tcp_frame(B, A, 80, 1000, SYN | ACK, seq=500, ack=101))
    old.receive(1, tcp_frame(A, B, 1000, 80, ACK, seq=101, ack=501))
    old.pop_sent()
    state, fds = old.export_handles()
    new = DummyDatapath.adopt("br-ct", state, fds)
    assert new.recirc == {1: b"frozen-1"} and new.conntrack.limit_of(5) == 100
    for m in (f.match for f in old.flow_dump()):
        new.flow_put(m, old.flow_get(m).actions)  # type: ignore[union-attr]
    new.receive(2, tcp_frame(B, A, 80, 1000, ACK, seq=501, ack=101, payload=b"x"))
    new.receive(2, udp_frame(B, A, 53, 9))
    assert new.pop_sent() == {1: [tcp_frame(B, A, 80, 1000, ACK, seq=501, ack=101, payload=b"x")]}
    # The window state came along: a segment far outside it is not +est.
    new.receive(2, tcp_frame(B, A, 80, 1000, ACK, seq=10**8, ack=101, payload=b"x"))
    assert new.pop_sent() == {}
    # Without the table (what a restart does) the same reply is dropped by the rules.
    cold = firewall()
    cold.receive(2, tcp_frame(B, A, 80, 1000, ACK, seq=501, ack=101, payload=b"x"))
    assert cold.pop_sent() == {}


def test_bad_conntrack_handles_are_refused() -> None:
    dp = DummyDatapath("br-bad", clock=Clock())
    with pytest.raises(DatapathError, match="conntrack"):
        dp.adopt_conntrack({"conns": [[1, 2, 3]]})
    assert len(dp.conntrack) == 0
