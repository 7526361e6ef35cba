"""Packet rewriting used by datapaths to apply actions. Pure functions on bytes.

``set_field`` rewrites Ethernet addresses, the VLAN TCI of a tagged frame, and (for
IPv4) addresses, TOS, TTL and TCP/UDP ports, updating the IPv4 header checksum and the
TCP/UDP checksum incrementally (RFC 1624) so the frame stays valid. A field that does
not apply to the frame (e.g. tp_dst of an ARP packet) leaves it unchanged.
"""

from __future__ import annotations

from hitless.packet.flow import (
    ETH_TYPE_IPV4,
    ETH_TYPE_QINQ,
    ETH_TYPE_VLAN,
    IPPROTO_TCP,
    IPPROTO_UDP,
)


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


_ETH_OFFSETS = {"eth_dst": 0, "eth_src": 6}


def set_field(packet: bytes, name: str, value: bytes, mask: bytes | None = None) -> bytes:
    """Rewrite one flow-key field in the packet. Supports the Ethernet addresses and the
    VLAN TCI of a tagged frame; other fields raise ValueError naming the field."""
    if name in _ETH_OFFSETS:
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
    if name in _IPV4_OFFSETS:
        return _set_ipv4(packet, name, value, mask)
    raise ValueError(f"set_field of {name!r} is not supported by this datapath yet")


# field -> (offset in the IPv4 header, size); tp_* are offsets in the TCP/UDP header.
_IPV4_OFFSETS = {
    "ipv4_src": (12, 4),
    "ipv4_dst": (16, 4),
    "ip_tos": (1, 1),
    "ip_ttl": (8, 1),
    "tp_src": (0, 2),
    "tp_dst": (2, 2),
}
_L4_CSUM = {IPPROTO_TCP: 16, IPPROTO_UDP: 6}


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


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


def _set_ipv4(packet: bytes, name: str, value: bytes, mask: bytes | None) -> bytes:
    eth_type, l3 = l3_offset(packet)
    if eth_type != ETH_TYPE_IPV4 or len(packet) < l3 + 20:
        return packet
    ihl = (packet[l3] & 0x0F) * 4
    proto = packet[l3 + 9]
    l4 = l3 + ihl
    off, size = _IPV4_OFFSETS[name]
    if len(value) != size:
        raise ValueError(f"{name} needs {size} bytes, got {len(value)}")
    later_fragment = (packet[l3 + 6] << 8 | packet[l3 + 7]) & 0x1FFF
    if name.startswith("tp_"):
        if proto not in _L4_CSUM or later_fragment or len(packet) < l4 + 8:
            return packet
        start = l4 + off
    else:
        start = l3 + off
    old = packet[start : start + size]
    if mask is not None:
        value = bytes((o & ~m) | (v & m) for o, v, m in zip(old, value, mask, strict=True))
    if old == value:
        return packet
    buf = bytearray(packet)
    # Checksums work on 16-bit words: adjust over the aligned words holding the field.
    hdr = l4 if name.startswith("tp_") else l3
    a = hdr + ((start - hdr) & ~1)
    b = hdr + ((start - hdr + size + 1) & ~1)
    before = bytes(buf[a:b])
    buf[start : start + size] = value
    after = bytes(buf[a:b])
    if not name.startswith("tp_"):
        c = buf[l3 + 10] << 8 | buf[l3 + 11]
        buf[l3 + 10 : l3 + 12] = _csum_adjust(c, before, after).to_bytes(2, "big")
    covers_l4 = name.startswith("tp_") or name in ("ipv4_src", "ipv4_dst")
    if covers_l4 and proto in _L4_CSUM and not later_fragment:
        co = l4 + _L4_CSUM[proto]
        if len(buf) >= co + 2:
            c = buf[co] << 8 | buf[co + 1]
            if not (proto == IPPROTO_UDP and c == 0):  # UDP checksum 0: none
                c = _csum_adjust(c, before, after)
                if proto == IPPROTO_UDP and c == 0:
                    c = 0xFFFF
                buf[co : co + 2] = c.to_bytes(2, "big")
    return bytes(buf)
