"""Packet rewriting used by datapaths to apply actions. Pure functions on bytes.

``set_field(packet, name, value, mask)`` rewrites one flow-key field (``FIELDS`` name,
value in the key's layout) so that ``extract_key`` of the result shows the new value.
A key field means what ``extract_key`` makes it mean for the packet at hand:

==========  ===============================================================
field       rewritten in
==========  ===============================================================
eth_*       the Ethernet addresses
vlan_tci    the outermost 802.1Q tag (an untagged frame is left alone)
ipv4_*      IPv4 addresses; ARP sender/target protocol addresses
ipv6_src,   IPv6 addresses
ipv6_dst
ipv6_label  the IPv6 flow label (20 bits)
ip_tos      IPv4 TOS; IPv6 traffic class (DSCP and ECN)
ip_ttl      IPv4 TTL; IPv6 hop limit
ip_proto    the ARP opcode (only: the IP protocol is not rewritable)
tp_src,     TCP/UDP ports (IPv4 and IPv6); ICMP/ICMPv6 type and code
tp_dst
arp_sha,    ARP sender/target hardware addresses; the source/target link-layer
arp_tha     address option of an IPv6 neighbour solicitation/advertisement
nd_target   the target address of an IPv6 neighbour solicitation/advertisement
nd_reserved its 32 bits after the checksum (flags and reserved)
nd_options_ its first option's type byte (as Open vSwitch writes it)
type
mpls_lse0   the top MPLS label stack entry (label, TC, bottom of stack, TTL)
nsh_*       an NSH header's flags, TTL, MD type, next protocol, service path and
            (MD type 1 only, as Open vSwitch) context words
==========  ===============================================================

``push_mpls``/``pop_mpls`` add and remove a label stack entry where the L3 header starts
(after any 802.1Q tags) and set the EtherType in front of it.

Checksums stay valid: the IPv4 header checksum, the TCP/UDP checksum (which covers the
IPv4/IPv6 addresses through the pseudo-header), the ICMP and ICMPv6 checksums (ICMPv6
covers the pseudo-header too), all updated incrementally (RFC 1624). A UDP checksum of
zero (none) is left zero. A field that does not apply to the frame (tp_dst of an ARP
packet, a port of a later fragment, a truncated header) leaves the frame unchanged;
``in_port``, ``eth_type``, ``ip_frag``, ``tcp_flags`` and the MPLS entries below the top
are not rewritable (ValueError).
"""

from __future__ import annotations

from hitless.packet.flow import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ETH_TYPE_NSH,
    ETH_TYPE_QINQ,
    ETH_TYPE_RARP,
    ETH_TYPE_VLAN,
    FIELDS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MPLS_TYPES,
)

__all__ = [
    "SETTABLE",
    "checksum",
    "csum_adjust",
    "ipv6_l4",
    "is_tagged",
    "l3_offset",
    "pop_mpls",
    "pop_vlan",
    "push_mpls",
    "push_vlan",
    "set_field",
]


def is_tagged(packet: bytes) -> bool:
    return len(packet) >= 18 and (packet[12] << 8 | packet[13]) in (ETH_TYPE_VLAN, ETH_TYPE_QINQ)


def push_vlan(packet: bytes, tci: int, tpid: int = ETH_TYPE_VLAN) -> bytes:
    """Insert an 802.1Q tag after the MAC addresses (tci: PCP<<13 | VID)."""
    tci &= 0xEFFF  # the flow key's VLAN_PRESENT bit is not the wire's DEI bit
    return packet[:12] + bytes((tpid >> 8, tpid & 0xFF, tci >> 8, tci & 0xFF)) + packet[12:]


def pop_vlan(packet: bytes) -> bytes:
    """Remove the outermost 802.1Q tag (no-op on an untagged frame)."""
    if not is_tagged(packet):
        return packet
    return packet[:12] + packet[16:]


def push_mpls(packet: bytes, lse: int, ethertype: int) -> bytes:
    """Insert the label stack entry ``lse`` (label<<12 | tc<<9 | bos<<8 | ttl) where the
    L3 header starts, the EtherType before it becoming ``ethertype`` (0x8847 or 0x8848)."""
    if len(packet) < 14:
        return packet
    _, l3 = l3_offset(packet)
    return (
        packet[: l3 - 2] + ethertype.to_bytes(2, "big") + lse.to_bytes(4, "big") + packet[l3:]
    )


def pop_mpls(packet: bytes, ethertype: int) -> bytes:
    """Remove the top label stack entry of an MPLS frame, the EtherType before the
    stack becoming ``ethertype``; any other frame is left alone."""
    eth_type, l3 = l3_offset(packet)
    if eth_type not in MPLS_TYPES or len(packet) < l3 + 4:
        return packet
    return packet[: l3 - 2] + ethertype.to_bytes(2, "big") + packet[l3 + 4 :]


SETTABLE = frozenset(FIELDS) - {
    "in_port", "eth_type", "ip_frag", "tcp_flags", "mpls_lse1", "mpls_lse2"
}  # fmt: skip
_ETH_OFFSETS = {"eth_dst": 0, "eth_src": 6}
_L4_CSUM = {IPPROTO_TCP: 16, IPPROTO_UDP: 6}
_IPV6_EXT = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_ARP_HEAD = b"\x00\x01\x08\x00\x06\x04"  # Ethernet/IPv4 ARP

# How a key field's bytes relate to the bytes in the packet (see _Loc).
_DIRECT = 0  # the same bytes
_LOW8 = 1  # key: 2 bytes, the packet's 1 byte in the low one (ICMP type, code)
_ARP_OP = 2  # key: 1 byte; packet: the 2-byte opcode (high byte 0)
_V6_TC = 3  # key: 1 byte; packet: the first 32-bit word of the IPv6 header, bits 20-27
_V6_LABEL = 4  # key: 4 bytes, 20 used; packet: the first word, bits 0-19
_NSH_FLAGS = 5  # key: 1 byte, 2 used; packet: the NSH's first 16 bits, bits 12-13
_NSH_TTL = 6  # key: 1 byte, 6 used; packet: the NSH's first 16 bits, bits 6-11
_NSH_AT = {"nsh_mdtype": (2, 1), "nsh_np": (3, 1), "nsh_path": (4, 4)}
_NSH_AT.update({f"nsh_c{i}": (4 + 4 * i, 4) for i in range(1, 5)})


def set_field(packet: bytes, name: str, value: bytes, mask: bytes | None = None) -> bytes:
    """Rewrite one flow-key field in the packet (see the module docstring). ``value`` and
    ``mask`` (None: the whole field) are in the key's layout and width."""
    if name not in SETTABLE:
        raise ValueError(f"set_field of {name!r} is not supported by this datapath")
    size = FIELDS[name][1]
    if len(value) != size or (mask is not None and len(mask) != size):
        raise ValueError(f"{name} needs {size} bytes, got {len(value)}")
    if name in _ETH_OFFSETS:
        if len(packet) < 14:
            return packet
        off = _ETH_OFFSETS[name]
        old = packet[off : off + 6]
        if mask is not None:
            value = bytes((o & ~m) | (v & m) for o, v, m in zip(old, value, mask, strict=True))
        return packet[:off] + value + packet[off + 6 :]
    if name == "vlan_tci":
        if not is_tagged(packet):
            return packet
        old_tci = packet[14] << 8 | packet[15]
        new = int.from_bytes(value, "big") & 0xEFFF
        if mask is not None:
            m = int.from_bytes(mask, "big") & 0xEFFF
            new = (old_tci & ~m) | (new & m)
        return packet[:14] + new.to_bytes(2, "big") + packet[16:]
    loc = _locate(packet, name)
    if loc is None:
        return packet
    start, width, kind, csums, l3 = loc
    old_wire = packet[start : start + width]
    old_key = _key_of(kind, old_wire)
    new_key = int.from_bytes(value, "big")
    if mask is not None:
        m = int.from_bytes(mask, "big")
        new_key = (old_key & ~m) | (new_key & m)
    new_wire = _wire_of(kind, new_key, old_wire)
    if new_wire == old_wire:
        return packet
    buf = bytearray(packet)
    # Checksums sum 16-bit words; every checksummed header starts at an even offset from
    # the L3 header, so adjust over the aligned words that hold the field.
    a = l3 + ((start - l3) & ~1)
    b = l3 + ((start - l3 + width + 1) & ~1)
    before = bytes(buf[a:b])
    buf[start : start + width] = new_wire
    after = bytes(buf[a:b])
    for co, udp in csums:
        c = buf[co] << 8 | buf[co + 1]
        if udp and c == 0:  # no UDP checksum
            continue
        c = _csum_adjust(c, before, after)
        if udp and c == 0:
            c = 0xFFFF
        buf[co : co + 2] = c.to_bytes(2, "big")
    return bytes(buf)


_Loc = tuple[int, int, int, list[tuple[int, bool]], int]
"""(offset in the packet, width there, kind, checksums to fix as [(offset, is_udp)], l3)"""


def _locate(packet: bytes, name: str) -> _Loc | None:
    """Where field ``name`` lives in this packet, or None if it does not apply."""
    n = len(packet)
    eth_type, l3 = l3_offset(packet)
    if eth_type in MPLS_TYPES:
        if name != "mpls_lse0" or n < l3 + 4:
            return None
        return l3, 4, _DIRECT, [], l3
    if eth_type == ETH_TYPE_NSH:
        return _nsh(packet, name, l3)
    if eth_type == ETH_TYPE_IPV4:
        if n < l3 + 20:
            return None
        hdr = [(l3 + 10, False)]
        if name in ("ipv4_src", "ipv4_dst", "ip_tos", "ip_ttl"):
            start, width = {"ipv4_src": (12, 4), "ipv4_dst": (16, 4), "ip_tos": (1, 1)}.get(
                name, (8, 1)
            )
            csums = hdr
            if width == 4:
                csums = hdr + _l4_csums(packet, *_ipv4_l4(packet, l3), v6=False)
            return l3 + start, width, _DIRECT, csums, l3
        if name in ("tp_src", "tp_dst"):
            return _ports(packet, name, *_ipv4_l4(packet, l3), l3, IPPROTO_ICMP)
        return None
    if eth_type == ETH_TYPE_IPV6:
        if n < l3 + 40:
            return None
        if name in ("ipv6_src", "ipv6_dst"):
            start = l3 + (8 if name == "ipv6_src" else 24)
            return start, 16, _DIRECT, _l4_csums(packet, *_ipv6_l4(packet, l3), v6=True), l3
        if name == "ip_ttl":
            return l3 + 7, 1, _DIRECT, [], l3
        if name == "ip_tos":
            return l3, 4, _V6_TC, [], l3
        if name == "ipv6_label":
            return l3, 4, _V6_LABEL, [], l3
        if name in ("tp_src", "tp_dst"):
            return _ports(packet, name, *_ipv6_l4(packet, l3), l3, IPPROTO_ICMPV6)
        if name in ("nd_target", "arp_sha", "arp_tha", "nd_reserved", "nd_options_type"):
            return _nd(packet, name, *_ipv6_l4(packet, l3), l3)
        return None
    if eth_type in (ETH_TYPE_ARP, ETH_TYPE_RARP):
        if n < l3 + 28 or packet[l3 : l3 + 6] != _ARP_HEAD:
            return None
        spec = {
            "ipv4_src": (14, 4, _DIRECT),
            "ipv4_dst": (24, 4, _DIRECT),
            "arp_sha": (8, 6, _DIRECT),
            "arp_tha": (18, 6, _DIRECT),
            "ip_proto": (6, 2, _ARP_OP),
        }.get(name)
        if spec is None:
            return None
        return l3 + spec[0], spec[1], spec[2], [], l3
    return None


def _ipv4_l4(packet: bytes, l3: int) -> tuple[int, int, bool]:
    """(protocol, offset of the L4 header, is a later fragment)."""
    later = bool((packet[l3 + 6] << 8 | packet[l3 + 7]) & 0x1FFF)
    return packet[l3 + 9], l3 + (packet[l3] & 0x0F) * 4, later


def _ipv6_l4(packet: bytes, l3: int) -> tuple[int, int, bool]:
    """(upper-layer protocol, its offset, is a later fragment): the extension headers
    walked as ``extract_key`` walks them."""
    n = len(packet)
    nxt = packet[l3 + 6]
    off = l3 + 40
    later = False
    for _ in range(8):
        if nxt in _IPV6_EXT and n >= off + 8:
            nxt, off = packet[off], off + (packet[off + 1] + 1) * 8
        elif nxt == 44 and n >= off + 8:
            later = bool((packet[off + 2] << 8 | packet[off + 3]) & 0xFFF8)
            nxt, off = packet[off], off + 8
        else:
            break
    return nxt, off, later


def _l4_csums(packet: bytes, proto: int, l4: int, later: bool, v6: bool) -> list[tuple[int, bool]]:
    """The L4 checksum covering the addresses (pseudo-header) of this packet, if any."""
    if later:
        return []
    if proto in _L4_CSUM:
        co = l4 + _L4_CSUM[proto]
        return [(co, proto == IPPROTO_UDP)] if len(packet) >= co + 2 else []
    if v6 and proto == IPPROTO_ICMPV6 and len(packet) >= l4 + 4:
        return [(l4 + 2, False)]
    return []


def _ports(
    packet: bytes, name: str, proto: int, l4: int, later: bool, l3: int, icmp: int
) -> _Loc | None:
    """TCP/UDP ports, or the type and code of the family's ICMP (``icmp``)."""
    if later:
        return None
    src = name == "tp_src"
    if proto in _L4_CSUM:
        co = l4 + _L4_CSUM[proto]
        if len(packet) < co + 2:
            return None
        return l4 + (0 if src else 2), 2, _DIRECT, [(co, proto == IPPROTO_UDP)], l3
    if proto == icmp and len(packet) >= l4 + 4:
        return l4 + (0 if src else 1), 1, _LOW8, [(l4 + 2, False)], l3
    return None


def _nd(packet: bytes, name: str, proto: int, l4: int, later: bool, l3: int) -> _Loc | None:
    """Neighbour discovery fields, where ``extract_key`` finds them."""
    n = len(packet)
    if later or proto != IPPROTO_ICMPV6 or n < l4 + 24:
        return None
    icmp_type = packet[l4]
    if icmp_type not in (135, 136) or packet[l4 + 1] != 0:
        return None
    csum = [(l4 + 2, False)]
    if name == "nd_target":
        return l4 + 8, 16, _DIRECT, csum, l3
    if name == "nd_reserved":
        return l4 + 4, 4, _DIRECT, csum, l3
    if name == "nd_options_type":  # the first option's type, as Open vSwitch writes it
        return (l4 + 24, 1, _DIRECT, csum, l3) if n > l4 + 24 else None
    want = (1, 135) if name == "arp_sha" else (2, 136)
    if icmp_type != want[1]:
        return None
    opt = l4 + 24
    found = None
    while opt + 8 <= n:
        olen = packet[opt + 1] * 8
        if olen == 0:
            break
        if packet[opt] == want[0] and olen == 8:
            found = opt + 2  # the last such option is the one the key shows
        opt += olen
    return None if found is None else (found, 6, _DIRECT, csum, l3)


def _nsh(packet: bytes, name: str, l3: int) -> _Loc | None:
    """An NSH header's field, where the parser finds one (``flow._nsh``); the context
    words of MD type 1 only (Open vSwitch writes no other format's metadata)."""
    n = len(packet)
    if n < l3 + 8 or packet[l3] >> 6 or (packet[l3 + 1] & 0x3F) * 4 > n - l3:
        return None
    if name in ("nsh_flags", "nsh_ttl"):
        return l3, 2, _NSH_FLAGS if name == "nsh_flags" else _NSH_TTL, [], l3
    at = _NSH_AT.get(name)
    if at is None:
        return None
    if name.startswith("nsh_c") and (packet[l3 + 2] != 1 or packet[l3 + 1] & 0x3F != 6):
        return None
    return l3 + at[0], at[1], _DIRECT, [], l3


def _key_of(kind: int, wire: bytes) -> int:
    w = int.from_bytes(wire, "big")
    if kind == _NSH_FLAGS:
        return w >> 12 & 3
    if kind == _NSH_TTL:
        return w >> 6 & 0x3F
    if kind == _ARP_OP:
        return w if w <= 0xFF else 0
    if kind == _V6_TC:
        return (w >> 20) & 0xFF
    if kind == _V6_LABEL:
        return w & 0xFFFFF
    return w  # _DIRECT, _LOW8 (the key's high byte is zero)


def _wire_of(kind: int, key: int, old: bytes) -> bytes:
    if kind == _LOW8:
        return bytes((key & 0xFF,))
    if kind == _ARP_OP:
        return (key & 0xFF).to_bytes(2, "big")
    w = int.from_bytes(old, "big")
    if kind == _V6_TC:
        return ((w & ~(0xFF << 20)) | (key & 0xFF) << 20).to_bytes(4, "big")
    if kind == _V6_LABEL:
        return ((w & ~0xFFFFF) | (key & 0xFFFFF)).to_bytes(4, "big")
    if kind == _NSH_FLAGS:
        return ((w & ~0x3000) | (key & 3) << 12).to_bytes(2, "big")
    if kind == _NSH_TTL:
        return ((w & ~0xFC0) | (key & 0x3F) << 6).to_bytes(2, "big")
    return key.to_bytes(len(old), "big")


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    return (
        ~_fold(sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))) & 0xFFFF
    )


def _csum_adjust(csum: int, old: bytes, new: bytes) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over the 16-bit words that changed."""
    acc = ~csum & 0xFFFF
    for i in range(0, len(old), 2):
        acc += (~(old[i] << 8 | old[i + 1]) & 0xFFFF) + (new[i] << 8 | new[i + 1])
    return ~_fold(acc) & 0xFFFF


def l3_offset(packet: bytes) -> tuple[int, int]:
    """(EtherType after any 802.1Q tags, offset of the L3 header)."""
    off = 12
    eth_type = packet[12] << 8 | packet[13] if len(packet) >= 14 else 0
    while eth_type in (ETH_TYPE_VLAN, ETH_TYPE_QINQ) and len(packet) >= off + 6:
        off += 4
        eth_type = packet[off] << 8 | packet[off + 1]
    return eth_type, off + 2


csum_adjust = _csum_adjust  # a checksum updated for changed 16-bit-aligned bytes
ipv6_l4 = _ipv6_l4  # (upper-layer protocol, its offset, is a later fragment)
