"""Hand-built frames with correct checksums, for packet tests (no external library)."""

from __future__ import annotations

import ipaddress
import struct


def mac(s: str) -> bytes:
    return bytes.fromhex(s.replace(":", ""))


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst: str, src: str, eth_type: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return mac(dst) + mac(src) + tag + struct.pack("!H", eth_type) + payload


def ipv4(
    src: str, dst: str, proto: int, l4: bytes, tos: int = 0, ttl: int = 64, frag: int = 0
) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        20 + len(l4),
        0x1234,
        frag,
        ttl,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + l4


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + struct.pack("!BBH", 0, proto, length)
    )


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = checksum(_pseudo(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload
    c = checksum(_pseudo(src, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def icmp_echo(ident: int = 1, seq: int = 1) -> bytes:
    msg = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"ping"
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def arp(op: int, sha: str, spa: str, tha: str, tpa: str) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        op,
        mac(sha),
        ipaddress.IPv4Address(spa).packed,
        mac(tha),
        ipaddress.IPv4Address(tpa).packed,
    )


def ipv6(src: str, dst: str, nxt: int, payload: bytes, tclass: int = 0, label: int = 0) -> bytes:
    vtc = 6 << 28 | tclass << 20 | label
    return (
        struct.pack("!IHBB", vtc, len(payload), nxt, 64)
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


def neighbor_solicitation(target: str, sll: str) -> bytes:
    return (
        struct.pack("!BBHI", 135, 0, 0, 0)
        + ipaddress.IPv6Address(target).packed
        + struct.pack("!BB", 1, 1)
        + mac(sll)
    )


def ipv4_header_ok(frame: bytes, l3: int = 14) -> bool:
    ihl = (frame[l3] & 0xF) * 4
    return checksum(frame[l3 : l3 + ihl]) == 0


def l4_checksum_ok(frame: bytes, l3: int = 14) -> bool:
    ihl = (frame[l3] & 0xF) * 4
    proto = frame[l3 + 9]
    seg = frame[l3 + ihl :]
    src = str(ipaddress.IPv4Address(frame[l3 + 12 : l3 + 16]))
    dst = str(ipaddress.IPv4Address(frame[l3 + 16 : l3 + 20]))
    if proto == 17 and seg[6:8] == b"\0\0":
        return True
    return checksum(_pseudo(src, dst, proto, len(seg)) + seg) == 0


def _pseudo6(src: str, dst: str, nxt: int, length: int) -> bytes:
    return (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + struct.pack("!IxxxB", length, nxt)
    )


def udp6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    c = checksum(_pseudo6(src, dst, 17, len(seg)) + seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def tcp6(src: str, dst: str, sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    seg = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, flags, 65535, 0, 0) + payload
    c = checksum(_pseudo6(src, dst, 6, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def icmp6(src: str, dst: str, msg: bytes) -> bytes:
    """An ICMPv6 message (checksum field zero in ``msg``) with its checksum filled in."""
    c = checksum(_pseudo6(src, dst, 58, len(msg)) + msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def neighbor_advertisement(target: str, tll: str) -> bytes:
    return (
        struct.pack("!BBHI", 136, 0, 0, 0x60000000)
        + ipaddress.IPv6Address(target).packed
        + struct.pack("!BB", 2, 1)
        + mac(tll)
    )


def hop_by_hop(nxt: int) -> bytes:
    """An 8-byte hop-by-hop options header holding one PadN option."""
    return struct.pack("!BB", nxt, 0) + b"\x01\x04\0\0\0\0"


def checksums_ok(frame: bytes) -> bool:
    """Every checksum of an IPv4/IPv6 frame (IPv4 header; TCP, UDP, ICMP, ICMPv6 after
    any hop-by-hop header) equals the one recomputed from scratch."""
    l3 = 18 if frame[12:14] == b"\x81\x00" else 14
    et = frame[l3 - 2 : l3]
    if et == b"\x08\x00":
        ihl = (frame[l3] & 0xF) * 4
        hdr = frame[l3 : l3 + ihl]
        if checksum(hdr[:10] + b"\0\0" + hdr[12:]) != int.from_bytes(hdr[10:12], "big"):
            return False
        proto, seg = frame[l3 + 9], frame[l3 + ihl :]
        src = str(ipaddress.IPv4Address(frame[l3 + 12 : l3 + 16]))
        dst = str(ipaddress.IPv4Address(frame[l3 + 16 : l3 + 20]))
        pseudo = _pseudo(src, dst, proto, len(seg)) if proto in (6, 17) else b""
    elif et == b"\x86\xdd":
        proto, off = frame[l3 + 6], l3 + 40
        if proto == 0:
            proto, off = frame[off], off + (frame[off + 1] + 1) * 8
        seg = frame[off:]
        src = str(ipaddress.IPv6Address(frame[l3 + 8 : l3 + 24]))
        dst = str(ipaddress.IPv6Address(frame[l3 + 24 : l3 + 40]))
        pseudo = _pseudo6(src, dst, proto, len(seg))
    else:
        return True
    co = {6: 16, 17: 6, 1: 2, 58: 2}.get(proto)
    if co is None:
        return True
    stored = int.from_bytes(seg[co : co + 2], "big")
    if proto == 17 and stored == 0 and et == b"\x08\x00":
        return True  # no UDP checksum
    want = checksum(pseudo + seg[:co] + b"\0\0" + seg[co + 2 :])
    if proto == 17 and want == 0:
        want = 0xFFFF
    return stored == want
