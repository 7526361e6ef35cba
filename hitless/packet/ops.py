"""Packet rewriting used by datapaths to apply actions. Pure functions on bytes."""

from __future__ import annotations

from hitless.packet.flow import ETH_TYPE_QINQ, ETH_TYPE_VLAN


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
    raise ValueError(f"set_field of {name!r} is not supported by this datapath yet")
