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
