"""Finishing the checksums a sending host left to offload, for packets the kernel hands
to the daemon.

A host whose interface has transmit checksum offload on (the default on veth) sends
TCP and UDP with CHECKSUM_PARTIAL: the checksum field holds only the folded sum of the
pseudo-header, and whoever transmits the frame on a real wire is meant to finish it.
A frame the kernel forwards keeps that state with it; a frame that comes up to the
daemon (a miss) is just bytes, so the daemon sends it on unfinished and the receiver
drops it. The Open vSwitch kernel module finishes such checksums before an upcall; the
ring buffer does not carry the skb's checksum state, so this module recognises it
instead: a TCP/UDP checksum equal to the pseudo-header's folded sum is partial (a
finished one equals that only when the payload sums to zero, and then finishing it
gives the same value), and is replaced by the full checksum.
"""

from __future__ import annotations

import struct

from hitless.packet.ops import l3_offset

__all__ = ["complete_checksum"]

_L4 = {6: 16, 17: 6}  # protocol -> offset of its checksum


def _sum16(data: bytes | memoryview) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def complete_checksum(packet: bytes) -> bytes:
    """``packet`` with a partial TCP/UDP checksum finished (else unchanged)."""
    if len(packet) < 34:
        return packet
    eth_type, l3 = l3_offset(packet)
    if eth_type == 0x0800:
        ihl = (packet[l3] & 0x0F) * 4
        proto = packet[l3 + 9]
        if proto not in _L4 or packet[l3 + 6] & 0x3F or packet[l3 + 7]:  # fragments
            return packet
        l4 = l3 + ihl
        end = min(len(packet), l3 + (packet[l3 + 2] << 8 | packet[l3 + 3]))
        pseudo = packet[l3 + 12 : l3 + 20] + struct.pack("!HH", proto, end - l4)
    elif eth_type == 0x86DD:
        proto = packet[l3 + 6]
        if proto not in _L4 or len(packet) < l3 + 40:
            return packet
        l4 = l3 + 40
        end = min(len(packet), l4 + (packet[l3 + 4] << 8 | packet[l3 + 5]))
        pseudo = packet[l3 + 8 : l3 + 40] + struct.pack("!IxxxB", end - l4, proto)
    else:
        return packet
    co = l4 + _L4[proto]
    if end < co + 2:
        return packet
    stored = packet[co] << 8 | packet[co + 1]
    if stored == 0 and proto == 17:  # no UDP checksum
        return packet
    if stored != _sum16(pseudo):
        return packet
    seg = bytearray(packet[l4:end])
    seg[co - l4 : co - l4 + 2] = b"\0\0"
    full = ~_sum16(pseudo + bytes(seg)) & 0xFFFF
    if full == 0 and proto == 17:
        full = 0xFFFF
    return packet[:co] + full.to_bytes(2, "big") + packet[co + 2 :]
