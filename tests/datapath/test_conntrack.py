"""The pure connection tracker: states, TCP windows, timeouts, related ICMP errors,
NAT, zones and limits, mark/label, and the handoff records."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.datapath import actions as dp
from hitless.datapath.conntrack import (
    CS_DNAT,
    CS_EST,
    CS_INV,
    CS_NEW,
    CS_REL,
    CS_RPL,
    CS_SNAT,
    CS_TRK,
    Conntrack,
    CtTuple,
    NatSpec,
    parse_tuple,
)
from tests.packet.builders import _pseudo, checksum, checksums_ok, eth, ipv4

A, B = "10.0.0.1", "10.0.0.2"
MA, MB = "02:00:00:00:00:01", "02:00:00:00:00:02"
SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08


def tcp_frame(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    seq: int = 0,
    ack: int = 0,
    win: int = 65535,
    payload: bytes = b"",
    wscale: int | None = None,
) -> bytes:
    opts = b"" if wscale is None else bytes((3, 3, wscale, 1))
    off = (20 + len(opts)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0)
    seg += opts + payload
    c = checksum(_pseudo(src, dst, 6, len(seg)) + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return eth(MB, MA, 0x0800, ipv4(src, dst, 6, seg))


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = checksum(_pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    seg = seg[:6] + struct.pack("!H", c) + seg[8:]
    return eth(MB, MA, 0x0800, ipv4(src, dst, 17, seg))


def icmp_frame(src: str, dst: str, typ: int, ident: int = 7, body: bytes = b"ping") -> bytes:
    msg = struct.pack("!BBHHH", typ, 0, 0, ident, 1) + body
    msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
    return eth(MB, MA, 0x0800, ipv4(src, dst, 1, msg))


def icmp_error(src: str, dst: str, quoted: bytes) -> bytes:
    """Destination unreachable quoting the IP packet inside frame ``quoted``."""
    msg = struct.pack("!BBHI", 3, 3, 0, 0) + quoted[14:42]
    msg = msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]
    return eth(MB, MA, 0x0800, ipv4(src, dst, 1, msg))


def handshake(ct: Conntrack, now: float = 0.0, **kw: object) -> list[int]:
    """A full TCP handshake A:1000 -> B:80 through ct; the three ct_states."""
    out = []
    out.append(ct.execute(tcp_frame(A, B, 1000, 80, SYN, seq=100), now, commit=True, **kw).state)  # type: ignore[arg-type]
    out.append(ct.execute(tcp_frame(B, A, 80, 1000, SYN | ACK, seq=500, ack=101), now, **kw).state)  # type: ignore[arg-type]
    out.append(ct.execute(tcp_frame(A, B, 1000, 80, ACK, seq=101, ack=501), now, **kw).state)  # type: ignore[arg-type]
    return out


def test_uncommitted_new_packet_leaves_nothing() -> None:
    ct = Conntrack()
    r = ct.execute(udp_frame(A, B, 5, 6), 0.0)
    assert r.state == CS_TRK | CS_NEW
    assert r.orig == CtTuple(
        ipaddress.ip_address(A).packed, ipaddress.ip_address(B).packed, 17, 5, 6
    )
    assert len(ct) == 0
    assert ct.execute(udp_frame(B, A, 6, 5), 0.0).state == CS_TRK | CS_NEW


def test_tcp_handshake_states() -> None:
    ct = Conntrack()
    assert handshake(ct) == [CS_TRK | CS_NEW, CS_TRK | CS_EST | CS_RPL, CS_TRK | CS_EST]
    (conn,) = list(ct)
    assert conn.tcp_state_text() == "state=ESTABLISHED"
    data = tcp_frame(A, B, 1000, 80, ACK | PSH, seq=101, ack=501, payload=b"hello")
    assert ct.execute(data, 1.0).state == CS_TRK | CS_EST


def test_tcp_outside_window_is_invalid() -> None:
    ct = Conntrack()
    handshake(ct)
    # Far beyond what B allowed (ack 501 + window 65535).
    far = tcp_frame(A, B, 1000, 80, ACK, seq=101 + 10_000_000, ack=501, payload=b"x")
    assert ct.execute(far, 1.0).state == CS_TRK | CS_INV
    # Without data there is no sequence range to check (as Open vSwitch): only the ACK.
    bare = tcp_frame(A, B, 1000, 80, ACK, seq=101 + 10_000_000, ack=501)
    assert ct.execute(bare, 1.0).state == CS_TRK | CS_EST
    # Acknowledging data B never sent.
    bad_ack = tcp_frame(A, B, 1000, 80, ACK, seq=101, ack=501 + 5000)
    assert ct.execute(bad_ack, 1.0).state == CS_TRK | CS_INV
    # The right segment still passes: invalid packets do not move the window.
    assert ct.execute(tcp_frame(A, B, 1000, 80, ACK, seq=101, ack=501), 1.0).state & CS_EST


def test_tcp_bad_flags_and_synack_do_not_create() -> None:
    ct = Conntrack()
    assert ct.execute(tcp_frame(A, B, 1, 2, SYN | FIN), 0.0, commit=True).state == CS_TRK | CS_INV
    assert ct.execute(tcp_frame(A, B, 1, 2, SYN | ACK), 0.0, commit=True).state == CS_TRK | CS_INV
    assert ct.execute(tcp_frame(A, B, 1, 2, RST), 0.0, commit=True).state == CS_TRK | CS_INV
    assert len(ct) == 0


def test_tcp_midstream_pickup_is_tracked() -> None:
    ct = Conntrack()
    r = ct.execute(tcp_frame(A, B, 1000, 80, ACK, seq=5000, ack=9000), 0.0, commit=True)
    assert r.state == CS_TRK | CS_NEW
    assert ct.execute(tcp_frame(B, A, 80, 1000, ACK, seq=9000, ack=5000), 0.0).state == (
        CS_TRK | CS_EST | CS_RPL
    )


def test_tcp_close_and_reuse() -> None:
    ct = Conntrack()
    handshake(ct)
    ct.execute(tcp_frame(A, B, 1000, 80, FIN | ACK, seq=101, ack=501), 1.0)
    ct.execute(tcp_frame(B, A, 80, 1000, FIN | ACK, seq=501, ack=102), 1.0)
    ct.execute(tcp_frame(A, B, 1000, 80, ACK, seq=102, ack=502), 1.0)
    (conn,) = list(ct)
    # Both sides FIN_WAIT_2; the short form says TIME_WAIT as Open vSwitch's does (its
    # dump showed TIME_WAIT for a plain FIN/ACK close with no RST, seen side by side).
    assert conn.tcp_state_text() == "state=TIME_WAIT"
    assert conn.tcp_state_text(verbose=True).startswith(
        "state_orig=FIN_WAIT_2,state_reply=FIN_WAIT_2"
    )
    assert conn.expiration == 1.0 + ct.timeouts["tcp_time_wait"]
    # A new SYN on the same 4-tuple starts a new connection.
    r = ct.execute(tcp_frame(A, B, 1000, 80, SYN, seq=7777), 2.0, commit=True)
    assert r.state == CS_TRK | CS_NEW
    (conn,) = list(ct)
    assert conn.tcp_state_text(verbose=True) == (
        "state_orig=SYN_SENT,state_reply=CLOSED,flags_orig=0,flags_reply=0"
    )


def test_udp_timeouts_and_expiry() -> None:
    ct = Conntrack()
    ct.execute(udp_frame(A, B, 5, 6), 0.0, commit=True)
    assert ct.execute(udp_frame(A, B, 5, 6), 10.0).state == CS_TRK | CS_NEW
    assert ct.execute(udp_frame(B, A, 6, 5), 20.0).state == CS_TRK | CS_EST | CS_RPL
    (conn,) = list(ct)
    assert conn.expiration == 20.0 + ct.timeouts["udp_multiple"]
    assert ct.expire(20.0 + ct.timeouts["udp_multiple"] - 1) == 0
    assert ct.execute(udp_frame(A, B, 5, 6), 20.0 + 31).state == CS_TRK | CS_NEW  # expired
    assert len(ct) == 0


def test_icmp_echo_pairs_and_related_error() -> None:
    ct = Conntrack()
    assert ct.execute(icmp_frame(A, B, 8), 0.0, commit=True).state == CS_TRK | CS_NEW
    assert ct.execute(icmp_frame(B, A, 0), 0.0).state == CS_TRK | CS_EST | CS_RPL
    # An ICMP error about a committed UDP flow is related to it; about another, not.
    out = udp_frame(A, B, 5, 6)
    ct.execute(out, 0.0, commit=True)
    err = icmp_error("10.0.0.9", A, out)
    assert ct.execute(err, 0.0).state == CS_TRK | CS_REL | CS_RPL
    other = icmp_error("10.0.0.9", A, udp_frame(A, B, 5, 7))
    assert ct.execute(other, 0.0).state == CS_TRK | CS_NEW


def test_fragments_and_non_ip_are_invalid() -> None:
    ct = Conntrack()
    frame = udp_frame(A, B, 5, 6)
    frag = frame[:20] + b"\x20\x00" + frame[22:]  # more-fragments
    assert ct.execute(frag, 0.0, commit=True).state == CS_TRK | CS_INV
    arp = eth(MB, MA, 0x0806, bytes(28))
    assert ct.execute(arp, 0.0, commit=True).state == CS_TRK | CS_INV
    assert len(ct) == 0


def test_zones_are_separate_and_limited() -> None:
    ct = Conntrack()
    ct.execute(udp_frame(A, B, 5, 6), 0.0, zone=1, commit=True)
    assert ct.execute(udp_frame(B, A, 6, 5), 0.0, zone=2).state == CS_TRK | CS_NEW
    assert ct.execute(udp_frame(B, A, 6, 5), 0.0, zone=1).state & CS_EST
    ct.set_limit(3, 2)
    for port in range(10, 15):
        ct.execute(udp_frame(A, B, port, 6), 0.0, zone=3, commit=True)
    assert ct.zone_count(3) == 2 and ct.n_limited == 3
    ct.set_limit(None, 1)  # the default applies to zones without their own
    ct.execute(udp_frame(A, B, 99, 6), 0.0, zone=4, commit=True)
    ct.execute(udp_frame(A, B, 98, 6), 0.0, zone=4, commit=True)
    assert ct.zone_count(4) == 1
    assert ct.flush(zone=3) == 2 and ct.zone_count(3) == 0
    with pytest.raises(ValueError):
        ct.set_limit(1, -1)


def test_mark_and_label_need_commit_and_are_masked() -> None:
    ct = Conntrack()
    r = ct.execute(
        udp_frame(A, B, 5, 6), 0.0, commit=True, mark=(0x12, 0xFF), label=(1 << 100, 1 << 100)
    )
    assert (r.mark, r.label) == (0x12, 1 << 100)
    r = ct.execute(udp_frame(B, A, 6, 5), 0.0, mark=(0xFF, 0xFF))  # no commit: unchanged
    assert r.mark == 0x12
    r = ct.execute(udp_frame(B, A, 6, 5), 0.0, commit=True, mark=(0x300, 0xF00))
    assert r.mark == 0x312 and r.label == 1 << 100


def test_dnat_rewrites_both_ways() -> None:
    ct = Conntrack()
    vip, backend = "10.0.0.100", "10.0.0.2"
    nat = NatSpec("dst", ipaddress.ip_address(backend).packed, port_min=8080)
    r = ct.execute(udp_frame(A, vip, 5, 80), 0.0, commit=True, nat=nat)
    assert r.state == CS_TRK | CS_NEW | CS_DNAT
    p = parse_tuple(r.packet)
    assert p is not None and p.tuple.dst == ipaddress.ip_address(backend).packed
    assert p.tuple.dport == 8080 and checksums_ok(r.packet)
    back = ct.execute(udp_frame(backend, A, 8080, 5), 0.0, nat=NatSpec())
    assert back.state == CS_TRK | CS_EST | CS_RPL | CS_DNAT
    q = parse_tuple(back.packet)
    assert q is not None and q.tuple.src == ipaddress.ip_address(vip).packed and q.tuple.sport == 80
    assert checksums_ok(back.packet)
    # Without nat in the action the packet is tracked but not rewritten.
    plain = ct.execute(udp_frame(backend, A, 8080, 5), 0.0)
    assert plain.packet == udp_frame(backend, A, 8080, 5) and plain.state & CS_EST


def test_a_natted_packet_tracked_again_in_its_zone_finds_its_connection() -> None:
    """OVN's gateway router: ct(commit,zone=Z,nat(dst=..)) then, after routing,
    ct(zone=Z,nat) and ct(commit,zone=Z,nat(src)) on the translated packet. Open vSwitch
    finds the first connection again by the reverse of the translated tuple; without
    that a second connection is made whose reply tuple collides with the first's, and
    SNAT moves the source port: the server answers a port the client never used."""
    ct = Conntrack()
    fip, inside, client = "10.1.1.100", "10.1.0.1", "10.1.1.2"
    dnat = NatSpec("dst", ipaddress.ip_address(inside).packed)
    syn = tcp_frame(client, fip, 4000, 22, SYN, seq=1)
    r = ct.execute(syn, 0.0, zone=1, commit=True, nat=dnat)
    assert r.state == CS_TRK | CS_NEW | CS_DNAT
    for commit in (False, True):
        again = ct.execute(r.packet, 0.0, zone=1, commit=commit, nat=NatSpec("src"), natted=True)
        assert again.packet == r.packet, "translated twice"
        assert again.state == CS_TRK | CS_NEW | CS_DNAT and again.orig == r.orig
    assert len(ct) == 1
    # Without the natted flag (another zone's state, or none): a second connection.
    ct.execute(r.packet, 0.0, zone=1, commit=True, nat=NatSpec("src"))
    assert len(ct) == 2
    # The reply comes back through the first connection untouched by the second.
    ct2 = Conntrack()
    r = ct2.execute(syn, 0.0, zone=1, commit=True, nat=dnat)
    ct2.execute(r.packet, 0.0, zone=1, commit=True, nat=NatSpec("src"), natted=True)
    back = ct2.execute(tcp_frame(inside, client, 22, 4000, SYN | ACK, seq=9, ack=2), 0.0,
                       zone=1, nat=NatSpec())  # fmt: skip
    q = parse_tuple(back.packet)
    assert back.state & CS_RPL and q is not None
    want = (ipaddress.ip_address(fip).packed, 22, 4000)
    assert (q.tuple.src, q.tuple.sport, q.tuple.dport) == want


def test_snat_allocates_distinct_ports() -> None:
    ct = Conntrack()
    ext = ipaddress.ip_address("192.168.1.1").packed
    nat = NatSpec("src", ext, port_min=2000, port_max=2001)
    seen = set()
    for src in ("10.0.0.1", "10.0.0.3"):
        r = ct.execute(udp_frame(src, B, 5000, 53), 0.0, commit=True, nat=nat)
        p = parse_tuple(r.packet)
        assert p is not None and p.tuple.src == ext
        seen.add(p.tuple.sport)
    assert seen == {2000, 2001}
    # The range is full: a third connection cannot be committed.
    r = ct.execute(udp_frame("10.0.0.4", B, 5000, 53), 0.0, commit=True, nat=nat)
    assert not r.state & CS_SNAT and len(ct) == 2


def test_zero_snat_keeps_the_source_unless_its_reply_tuple_is_taken() -> None:
    """``nat(src)`` with no address (what OVN commits with when the datapath has
    ct_zero_snat): nothing changes, except a source port whose reply tuple another
    connection of the zone already has."""
    ct = Conntrack()
    frame = udp_frame(A, B, 5000, 53)
    r = ct.execute(frame, 0.0, commit=True, zone=3, nat=NatSpec("src"))
    assert r.packet == frame and r.state == CS_TRK | CS_NEW | CS_SNAT
    # C is translated to A's address keeping its port: it takes A:5000's reply tuple
    # in zone 4, so A's zero-SNAT connection there has to move to another port.
    a = ipaddress.ip_address(A).packed
    ct.execute(udp_frame("10.0.0.7", B, 5000, 53), 0.0, commit=True, zone=4,
               nat=NatSpec("src", a))  # fmt: skip
    moved = ct.execute(frame, 0.0, commit=True, zone=4, nat=NatSpec("src"))
    p = parse_tuple(moved.packet)
    assert p is not None and p.tuple.src == a and p.tuple.sport != 5000
    assert p.tuple.sport >= 1024 and checksums_ok(moved.packet)
    with pytest.raises(ValueError):
        NatSpec("dst")
    # As the datapath action shows it (dpctl/dump-flows) and carries it across a handoff.
    act = (dp.Ct(3, True, False, NatSpec("src")),)
    assert dp.format_actions(act) == "ct(commit,zone=3,nat(src))"
    assert dp.actions_from_json(dp.actions_to_json(act)) == act


def test_records_round_trip_and_changes() -> None:
    ct = Conntrack()
    handshake(ct, 0.0)
    ct.execute(udp_frame(A, B, 5, 6), 0.0, commit=True, zone=9, mark=(3, 0xFF))
    recs = ct.export_records(5.0)
    other = Conntrack()
    other.track_changes()
    assert other.import_records(recs, 100.0) == 2
    assert len(other.take_changes()) == 2
    assert other.export_records(100.0) == recs  # timeouts carried as time left
    # The adopted TCP connection keeps checking windows where it left off.
    assert other.execute(tcp_frame(B, A, 80, 1000, ACK, seq=501, ack=101), 100.0).state == (
        CS_TRK | CS_EST | CS_RPL
    )
    far = tcp_frame(A, B, 1000, 80, ACK, seq=10_000_000, ack=501, payload=b"x")
    assert other.execute(far, 100.0).state == CS_TRK | CS_INV
    with pytest.raises(ValueError):
        other.import_records(
            [
                recs[0].__class__(
                    1, (b"1", b"2", 6, 1, 2), (b"", b"", 6, 2, 1), 1, 0, 0, 0, False, "first"
                )
            ],
            0.0,
        )


# Properties ---------------------------------------------------------------------------

addrs = st.integers(min_value=0x0A000001, max_value=0x0A0000FE).map(
    lambda i: str(ipaddress.IPv4Address(i))
)
ports = st.integers(min_value=1, max_value=65535)


@settings(max_examples=60, deadline=None)
@given(addrs, addrs, ports, ports, st.integers(0, 0xFFFF), st.booleans())
def test_reply_to_committed_is_established_reply(
    a: str, b: str, sp: int, dp: int, zone: int, tcp: bool
) -> None:
    if (a, sp) == (b, dp):
        return
    ct = Conntrack()
    if tcp:
        ct.execute(tcp_frame(a, b, sp, dp, SYN, seq=1), 0.0, zone=zone, commit=True)
        reply = tcp_frame(b, a, dp, sp, SYN | ACK, seq=9, ack=2)
    else:
        ct.execute(udp_frame(a, b, sp, dp), 0.0, zone=zone, commit=True)
        reply = udp_frame(b, a, dp, sp)
    r = ct.execute(reply, 1.0, zone=zone)
    assert r.state == CS_TRK | CS_EST | CS_RPL
    assert r.zone == zone


@settings(max_examples=60, deadline=None)
@given(addrs, addrs, ports, ports, addrs, st.integers(1, 65535), st.sampled_from(["src", "dst"]))
def test_nat_round_trip_restores_the_original_tuple(
    a: str, b: str, sp: int, dp: int, to: str, to_port: int, kind: str
) -> None:
    if a == b or (to == (a if kind == "src" else b)):
        return
    ct = Conntrack()
    nat = NatSpec(kind, ipaddress.ip_address(to).packed, port_min=to_port)  # type: ignore[arg-type]
    out = ct.execute(udp_frame(a, b, sp, dp), 0.0, commit=True, nat=nat)
    o = parse_tuple(out.packet)
    assert o is not None
    # The far side answers the translated packet; the reply comes back untranslated.
    t = o.tuple
    reply = udp_frame(
        str(ipaddress.ip_address(t.dst)), str(ipaddress.ip_address(t.src)), t.dport, t.sport
    )
    back = ct.execute(reply, 0.0, nat=NatSpec())
    assert back.state & (CS_EST | CS_RPL) == CS_EST | CS_RPL
    r = parse_tuple(back.packet)
    assert r is not None
    assert (r.tuple.src, r.tuple.dst, r.tuple.sport, r.tuple.dport) == (
        ipaddress.ip_address(b).packed,
        ipaddress.ip_address(a).packed,
        dp,
        sp,
    )
    assert checksums_ok(out.packet) and checksums_ok(back.packet)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3000), st.integers(0, 100)), max_size=30))
def test_tcp_in_order_stream_stays_established(segs: list[tuple[bool, int, int]]) -> None:
    """Any interleaving of in-order data both ways, each side acknowledging what it has
    received, stays +est (and never +inv)."""
    ct = Conntrack()
    handshake(ct)
    seq = {True: 101, False: 501}
    for from_a, size, _ in segs:
        peer_seq = seq[not from_a]
        if from_a:
            f = tcp_frame(A, B, 1000, 80, ACK, seq=seq[True], ack=peer_seq, payload=bytes(size))
        else:
            f = tcp_frame(B, A, 80, 1000, ACK, seq=seq[False], ack=peer_seq, payload=bytes(size))
        r = ct.execute(f, 1.0)
        assert r.state & CS_EST and not r.state & CS_INV
        seq[from_a] += size


def test_ipv6_udp_icmp_and_dnat() -> None:
    from tests.packet.builders import icmp6, ipv6, udp6

    a6, b6, vip6 = "fd00::1", "fd00::2", "fd00::100"

    def u6(src: str, dst: str, sp: int, dp: int) -> bytes:
        return eth(MB, MA, 0x86DD, ipv6(src, dst, 17, udp6(src, dst, sp, dp, b"q")))

    def echo6(src: str, dst: str, typ: int) -> bytes:
        msg = struct.pack("!BBHHH", typ, 0, 0, 9, 1) + b"ping"
        return eth(MB, MA, 0x86DD, ipv6(src, dst, 58, icmp6(src, dst, msg)))

    ct = Conntrack()
    assert ct.execute(u6(a6, b6, 5, 6), 0.0, commit=True).state == CS_TRK | CS_NEW
    assert ct.execute(u6(b6, a6, 6, 5), 0.0).state == CS_TRK | CS_EST | CS_RPL
    assert ct.execute(echo6(a6, b6, 128), 0.0, commit=True).state == CS_TRK | CS_NEW
    assert ct.execute(echo6(b6, a6, 129), 0.0).state == CS_TRK | CS_EST | CS_RPL
    nat = NatSpec("dst", ipaddress.ip_address(b6).packed, port_min=53)
    r = ct.execute(u6(a6, vip6, 7, 5353), 0.0, commit=True, nat=nat)
    p = parse_tuple(r.packet)
    assert p is not None and (p.tuple.dst, p.tuple.dport) == (ipaddress.ip_address(b6).packed, 53)
    assert checksums_ok(r.packet)
    back = ct.execute(u6(b6, a6, 53, 7), 0.0, nat=NatSpec())
    q = parse_tuple(back.packet)
    assert q is not None and (q.tuple.src, q.tuple.sport) == (
        ipaddress.ip_address(vip6).packed,
        5353,
    )
    assert checksums_ok(back.packet)
    lines = sorted(c.describe(0.0) for c in ct)
    # As Open vSwitch 3.1 printed the same packets (its dummy datapath, zone 0 here).
    assert lines[0] == (
        "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=9,type=128,code=0),"
        "reply=(src=fd00::2,dst=fd00::1,id=9,type=129,code=0)"
    )
    assert (
        "udp,orig=(src=fd00::1,dst=fd00::100,sport=7,dport=5353),reply=(src=fd00::2,dst=fd00::1,sport=53,dport=7)"
        in lines
    )


def test_icmp_error_about_a_natted_connection_is_translated_back() -> None:
    """A client talks to a VIP (DNAT to the server); the server's port-unreachable quotes
    the translated packet. The client gets it from the VIP about its own packet."""
    from tests.packet.builders import checksum

    ct = Conntrack()
    vip, server = "10.0.0.100", "10.0.0.2"
    nat = NatSpec("dst", ipaddress.ip_address(server).packed, port_min=8080)
    sent = ct.execute(udp_frame(A, vip, 5000, 80), 0.0, commit=True, nat=nat).packet
    err = icmp_error(server, A, sent)  # the server quotes what it received
    r = ct.execute(err, 0.0, nat=NatSpec())
    assert r.state == CS_TRK | CS_REL | CS_RPL | CS_DNAT
    assert checksums_ok(r.packet)
    out = parse_tuple(r.packet)
    assert out is not None and out.tuple.src == ipaddress.ip_address(vip).packed
    assert out.inner == CtTuple(
        ipaddress.ip_address(A).packed, ipaddress.ip_address(vip).packed, 17, 5000, 80
    )
    inner = r.packet[42:62]
    assert checksum(inner) == 0  # the quoted IPv4 header's checksum is right again
    # And the client's own error about the server's reply goes to the server as it knows it.
    back = ct.execute(udp_frame(server, A, 8080, 5000), 0.0, nat=NatSpec()).packet
    r2 = ct.execute(icmp_error(A, vip, back), 0.0, nat=NatSpec())
    assert r2.state == CS_TRK | CS_REL | CS_DNAT and checksums_ok(r2.packet)
    o2 = parse_tuple(r2.packet)
    assert o2 is not None and o2.tuple.dst == ipaddress.ip_address(server).packed
    assert o2.inner == CtTuple(
        ipaddress.ip_address(server).packed, ipaddress.ip_address(A).packed, 17, 8080, 5000
    )


def test_only_icmp_requests_start_a_connection() -> None:
    """As Open vSwitch's icmp4/icmp6_valid_new: an echo reply (or any ICMP type that is
    not a request) with no connection is +inv and commits nothing. OVN's router answers
    a ping to its own address in flows (the request turned into the reply) and sends
    that reply through ct(commit): it must not become a connection."""
    ct = Conntrack()
    r = ct.execute(icmp_frame(B, A, 0), 0.0, commit=True)
    assert r.state == CS_TRK | CS_INV and len(ct) == 0
    r = ct.execute(icmp_frame(B, A, 9), 0.0, commit=True)  # router advertisement
    assert r.state == CS_TRK | CS_INV and len(ct) == 0
    r = ct.execute(icmp_frame(A, B, 8), 0.0, commit=True)
    assert r.state == CS_TRK | CS_NEW and len(ct) == 1
    assert ct.execute(icmp_frame(B, A, 0), 0.0).state == CS_TRK | CS_EST | CS_RPL


def test_a_stream_after_the_precopy_is_carried_at_the_freeze() -> None:
    """A handoff copies the table early (track_changes, export), then at the freeze only
    what changed since. Every packet of a live connection changes it (its timeout, and a
    TCP window): a fast stream moves past the window copied early, so the connection
    must be in the changes, or the new process finds the stream's packets invalid."""
    ct = Conntrack()
    handshake(ct, 0.0)
    ct.track_changes()
    early = ct.export_records(0.0)  # the pre-copy
    seq = 101
    for _ in range(100):  # 6.5 MB acknowledged as it goes: far past the early window
        ct.execute(tcp_frame(A, B, 1000, 80, ACK, seq=seq, ack=501, payload=b"x" * 1000), 1.0)
        ct.execute(tcp_frame(B, A, 80, 1000, ACK, seq=501, ack=seq + 1000), 1.0)
        seq += 65_000
    changed = ct.take_changes()
    assert len(changed) == 1, "the stream's connection is not in the freeze's changes"
    new = Conntrack()
    new.import_records(early, 1.0)
    (key,) = changed
    conn = ct.get(*key)
    assert conn is not None
    new.import_records([Conntrack.to_record(conn, 1.0)], 1.0)  # what the freeze carries
    nxt = tcp_frame(A, B, 1000, 80, ACK, seq=seq, ack=501, payload=b"x" * 1000)
    assert new.execute(nxt, 1.0).state == CS_TRK | CS_EST
    # Without it the early copy alone finds the stream invalid.
    stale = Conntrack()
    stale.import_records(early, 1.0)
    assert stale.execute(nxt, 1.0).state == CS_TRK | CS_INV
