"""The canonical flow key: a fixed-layout byte string every layer shares.

A flow key holds every header field the switch can match on, at fixed offsets, so that
a megaflow is simply ``(key & mask)`` and a datapath lookup is one big-integer AND and a
dict lookup per mask ("tuple space search"). Fields that do not apply to a packet are
zero. Layout (offsets in bytes, all values big-endian, like the wire):

==========  ======  ====  =====================================================
field       offset  size  meaning
==========  ======  ====  =====================================================
in_port          0     4  datapath port number the packet arrived on
eth_dst          4     6
eth_src         10     6
eth_type        16     2  the inner EtherType (after any 802.1Q tag)
vlan_tci        18     2  0 = untagged; else VLAN_PRESENT | PCP<<13 | VID
ipv4_src        20     4  also ARP sender protocol address
ipv4_dst        24     4  also ARP target protocol address
ipv6_src        28    16
mpls_lse0       28     4  MPLS frames only (eth_type 0x8847/0x8848): the label stack
mpls_lse1       32     4  entries, top first, as on the wire (label<<12 | tc<<9 |
mpls_lse2       36     4  bos<<8 | ttl); the first three, as Open vSwitch keeps
ipv6_dst        44    16
ipv6_label      60     4  flow label (20 bits)
ip_proto        64     1  also the ARP opcode (low byte), as Open vSwitch does
ip_tos          65     1  DSCP and ECN
ip_ttl          66     1  TTL / hop limit
ip_frag         67     1  FRAG_ANY | FRAG_LATER
tp_src          68     2  TCP/UDP/SCTP source port; ICMP type
tp_dst          70     2  TCP/UDP/SCTP destination port; ICMP code
tcp_flags       72     2
arp_sha         74     6  also ND source link-layer address
arp_tha         80     6  also ND target link-layer address
nd_target       86    16
nd_reserved     20     4  ICMPv6 neighbour discovery only (solicitation/advertisement):
nd_options_type 73     1  the 32 bits after the checksum (flags, reserved) and the type
                          of the first link-layer address option (source or target),
                          in the bytes ipv4_src and tcp_flags have on other frames
nsh_flags       20     1  NSH frames only (eth_type 0x894f): the base header's flags (2
nsh_ttl         21     1  bits), TTL (6 bits), MD type and next protocol; the service
nsh_mdtype      22     1  path (SPI << 8 | SI) and MD type 1's four context words, in
nsh_np          23     1  the bytes an IP header's addresses use on other frames
nsh_path        24     4
nsh_c1..c4      28    16
recirc_id      102     4  0 for a packet from a port; set by the ``recirc`` action
ct_state       106     1  connection-tracking state bits (CS_* of datapath.conntrack)
ct_nw_proto    107     1  the tracked connection's original tuple (next five too)
ct_zone        108     2  zone of the last ``ct`` action
ct_mark        110     4
ct_label       114    16
ct_nw_src      130     4
ct_nw_dst      134     4
ct_tp_src      138     2  (ICMP: the identifier)
ct_tp_dst      140     2  (ICMP: type << 8 | code)
==========  ======  ====  =====================================================

The fields from ``recirc_id`` on are metadata, not headers: ``extract_key`` leaves them
zero and the datapath's ``ct`` and ``recirc`` actions fill them. ``CT_OFF`` is where
they start: ``compact`` cuts a key and mask there when the mask ignores them (the
102-byte form state snapshots have always carried) and ``widen`` pads a short key back.

Open vSwitch keeps ``nd_reserved`` and ``nd_options_type`` where an ICMPv6 frame has
nothing else (its IGMP group and TCP flags words); so does this key, in ipv4_src (an
IPv6 frame has no IPv4 address) and the low byte of tcp_flags (not TCP): their matches
pin eth_type, nw_proto and icmpv6_type (prerequisites), so a megaflow never mixes the
meanings, and the key stays 142 bytes (state format 7).

An NSH frame (eth_type 0x894f, RFC 8300) has no IP header either: its base header,
service path and MD type 1 context words (24 bytes) lie over ipv4_src..ipv6_src. Every
match on them pins eth_type to 0x894f (their prerequisite), so again a megaflow never
mixes meanings and the key keeps its 142 bytes. As Open vSwitch, a header it cannot
parse (version not 0, longer than the frame, MD type 1 not 6 words long) leaves them
zero, and the context words are zero unless the MD type is 1.

An MPLS frame has no parsed L3 header (Open vSwitch does not look past the label stack
either), so its label stack lives in the bytes an IPv6 frame's source address uses: the
``mpls_lse*`` names overlap ``ipv6_src``. Every match on them pins eth_type to an MPLS
type (their prerequisite), so a megaflow never mixes the two meanings.

The layout mirrors the packet where it can (eth_dst, eth_src, eth_type are in wire
order) so the parser copies slices instead of decoding fields.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

FIELDS: dict[str, tuple[int, int]] = {
    "in_port": (0, 4),
    "eth_dst": (4, 6),
    "eth_src": (10, 6),
    "eth_type": (16, 2),
    "vlan_tci": (18, 2),
    "ipv4_src": (20, 4),
    "ipv4_dst": (24, 4),
    "ipv6_src": (28, 16),
    "ipv6_dst": (44, 16),
    "ipv6_label": (60, 4),
    "ip_proto": (64, 1),
    "ip_tos": (65, 1),
    "ip_ttl": (66, 1),
    "ip_frag": (67, 1),
    "tp_src": (68, 2),
    "tp_dst": (70, 2),
    "tcp_flags": (72, 2),
    "arp_sha": (74, 6),
    "arp_tha": (80, 6),
    "nd_target": (86, 16),
    "recirc_id": (102, 4),
    "ct_state": (106, 1),
    "ct_nw_proto": (107, 1),
    "ct_zone": (108, 2),
    "ct_mark": (110, 4),
    "ct_label": (114, 16),
    "ct_nw_src": (130, 4),
    "ct_nw_dst": (134, 4),
    "ct_tp_src": (138, 2),
    "ct_tp_dst": (140, 2),
    # last, so that every other field keeps its index (the ebpf program numbers them)
    "mpls_lse0": (28, 4),
    "mpls_lse1": (32, 4),
    "mpls_lse2": (36, 4),
    "nd_reserved": (20, 4),
    "nd_options_type": (73, 1),
    "nsh_flags": (20, 1),
    "nsh_ttl": (21, 1),
    "nsh_mdtype": (22, 1),
    "nsh_np": (23, 1),
    "nsh_path": (24, 4),
    "nsh_c1": (28, 4),
    "nsh_c2": (32, 4),
    "nsh_c3": (36, 4),
    "nsh_c4": (40, 4),
}
CT_OFF = 102
KEY_LEN = 142
_ZCT = bytes(KEY_LEN - CT_OFF)

VLAN_PRESENT = 0x1000  # the CFI bit, reused as "a tag is present" (as Open vSwitch does)
FRAG_ANY = 0x01
FRAG_LATER = 0x02

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_RARP = 0x8035  # parsed as ARP (Open vSwitch does too)
ETH_TYPE_VLAN = 0x8100
ETH_TYPE_QINQ = 0x88A8
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_MPLS = 0x8847
ETH_TYPE_MPLSM = 0x8848  # multicast MPLS
ETH_TYPE_NSH = 0x894F  # Network Service Header (RFC 8300)
MPLS_TYPES = (ETH_TYPE_MPLS, ETH_TYPE_MPLSM)
MPLS_MAX_LABELS = 3  # label stack entries the key keeps (Open vSwitch's FLOW_MAX_MPLS_LABELS)
MPLS_BOS = 0x100  # bottom-of-stack bit of a label stack entry
# Fields laid over another's bytes (another meaning for another eth_type): code that
# walks every field once (a restore, a diff) skips them.
NSH_FIELDS = ("nsh_flags", "nsh_ttl", "nsh_mdtype", "nsh_np", "nsh_path", "nsh_c1", "nsh_c2",
              "nsh_c3", "nsh_c4")  # fmt: skip
OVERLAYS = frozenset(
    ("mpls_lse0", "mpls_lse1", "mpls_lse2", "nd_reserved", "nd_options_type", *NSH_FIELDS)
)
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_SCTP = 132
IPPROTO_ICMPV6 = 58

_Z2 = bytes(2)
_Z4 = bytes(4)
_Z6 = bytes(6)
_Z24 = bytes(24)
_Z28 = bytes(28)
_Z36 = bytes(36)
_Z40 = bytes(40)
_Z42 = bytes(42)
_IPV6_EXT = frozenset((0, 43, 60))  # hop-by-hop, routing, destination options
_PORT_PROTOS = frozenset((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP))
_PORT = struct.Struct("!I")


def _port_bytes(in_port: int) -> bytes:
    return _PORT.pack(in_port)


def _nsh(packet: bytes, at: int) -> bytes:
    """An NSH header's 24 key bytes (flags, TTL, MD type, next protocol, path, four
    context words), zero where Open vSwitch's parser gives up on it."""
    if len(packet) < at + 8:
        return _Z24
    word = packet[at] << 8 | packet[at + 1]
    length = (word & 0x3F) * 4
    if word >> 14 or length > len(packet) - at:  # version 0 only
        return _Z24
    md = packet[at + 2]
    head = bytes((word >> 12 & 3, word >> 6 & 0x3F, md, packet[at + 3])) + packet[at + 4 : at + 8]
    if md == 1:
        return head + packet[at + 8 : at + 24] if length == 24 else _Z24
    if md == 2 and length < 8:
        return _Z24
    return head + bytes(16)


def extract_key(packet: bytes, in_port: int) -> bytes:
    """Parse a raw Ethernet frame into its canonical flow key (KEY_LEN bytes).

    Never raises on malformed input: a truncated header leaves the fields it would
    have filled at zero, as a datapath must forward whatever arrives.
    """
    n = len(packet)
    port = _PORT.pack(in_port)
    if n < 14:
        return port + packet[:12].ljust(12, b"\0") + bytes(KEY_LEN - 16)
    eth_type = packet[12] << 8 | packet[13]
    if eth_type in (ETH_TYPE_VLAN, ETH_TYPE_QINQ):
        if n < 18:
            return port + packet[:12] + bytes(KEY_LEN - 16)
        tci = ((packet[14] << 8 | packet[15]) | VLAN_PRESENT).to_bytes(2, "big")
        eth = packet[:12] + packet[16:18]
        eth_type = packet[16] << 8 | packet[17]
        l3 = 18
    else:
        tci = _Z2
        eth = packet[:14]
        l3 = 14

    if eth_type == ETH_TYPE_IPV4:
        if n < l3 + 20:
            return port + eth + tci + bytes(KEY_LEN - 20)
        ihl = (packet[l3] & 0x0F) * 4
        proto = packet[l3 + 9]
        frag_field = packet[l3 + 6] << 8 | packet[l3 + 7]
        frag = 0
        if frag_field & 0x3FFF:
            frag = FRAG_ANY | (FRAG_LATER if frag_field & 0x1FFF else 0)
        l4 = l3 + ihl
        tp = _Z4
        flags = _Z2
        if not frag & FRAG_LATER:
            if proto in _PORT_PROTOS and n >= l4 + 4:
                tp = packet[l4 : l4 + 4]
                if proto == IPPROTO_TCP and n >= l4 + 14:
                    flags = bytes((packet[l4 + 12] & 0x0F, packet[l4 + 13]))
            elif proto == IPPROTO_ICMP and n >= l4 + 2:
                tp = bytes((0, packet[l4], 0, packet[l4 + 1]))
        return b"".join(
            (
                port,
                eth,
                tci,
                packet[l3 + 12 : l3 + 20],
                _Z36,
                bytes((proto, packet[l3 + 1], packet[l3 + 8], frag)),
                tp,
                flags,
                _Z28,
                _ZCT,
            )
        )

    if eth_type == ETH_TYPE_NSH:
        return port + eth + tci + _nsh(packet, l3) + bytes(KEY_LEN - 44)

    if eth_type in (ETH_TYPE_ARP, ETH_TYPE_RARP):
        # Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
        if n < l3 + 28 or packet[l3 : l3 + 6] != b"\x00\x01\x08\x00\x06\x04":
            return port + eth + tci + bytes(KEY_LEN - 20)
        op = packet[l3 + 7] if packet[l3 + 6] == 0 else 0
        return b"".join(
            (
                port,
                eth,
                tci,
                packet[l3 + 14 : l3 + 18],  # spa
                packet[l3 + 24 : l3 + 28],  # tpa
                _Z36,
                bytes((op, 0, 0, 0)),
                _Z6,
                packet[l3 + 8 : l3 + 14],  # sha
                packet[l3 + 18 : l3 + 24],  # tha
                bytes(16),
                _ZCT,
            )
        )

    if eth_type == ETH_TYPE_IPV6:
        if n < l3 + 40:
            return port + eth + tci + bytes(KEY_LEN - 20)
        vtc = packet[l3] << 24 | packet[l3 + 1] << 16 | packet[l3 + 2] << 8 | packet[l3 + 3]
        tos = (vtc >> 20) & 0xFF
        label = (vtc & 0xFFFFF).to_bytes(4, "big")
        nxt = packet[l3 + 6]
        ttl = packet[l3 + 7]
        off = l3 + 40
        frag = 0
        # Walk the extension headers we understand to find the upper layer.
        for _ in range(8):
            if nxt in _IPV6_EXT and n >= off + 8:
                nxt, off = packet[off], off + (packet[off + 1] + 1) * 8
            elif nxt == 44 and n >= off + 8:  # fragment header
                fo = packet[off + 2] << 8 | packet[off + 3]
                frag = FRAG_ANY | (FRAG_LATER if fo & 0xFFF8 else 0)
                nxt, off = packet[off], off + 8
            else:
                break
        tp = _Z4
        flags = _Z2
        sll = tll = _Z6
        target = bytes(16)
        nd_rsv = _Z4
        if not frag & FRAG_LATER:
            if nxt in _PORT_PROTOS and n >= off + 4:
                tp = packet[off : off + 4]
                if nxt == IPPROTO_TCP and n >= off + 14:
                    flags = bytes((packet[off + 12] & 0x0F, packet[off + 13]))
            elif nxt == IPPROTO_ICMPV6 and n >= off + 4:
                icmp_type, icmp_code = packet[off], packet[off + 1]
                tp = bytes((0, icmp_type, 0, icmp_code))
                nd = icmp_type in (135, 136) and icmp_code == 0
                if nd and n >= off + 8:
                    nd_rsv = packet[off + 4 : off + 8]
                if nd and n >= off + 24:
                    target = packet[off + 8 : off + 24]
                    opt = off + 24
                    opt_type = 0  # the first link-layer address option's, either kind
                    while opt + 8 <= n:
                        olen = packet[opt + 1] * 8
                        if olen == 0:
                            break
                        if packet[opt] in (1, 2) and olen == 8 and not opt_type:
                            opt_type = packet[opt]
                        if packet[opt] == 1 and olen == 8 and icmp_type == 135:
                            sll = packet[opt + 2 : opt + 8]
                        elif packet[opt] == 2 and olen == 8 and icmp_type == 136:
                            tll = packet[opt + 2 : opt + 8]
                        opt += olen
                    flags = bytes((0, opt_type))
        return b"".join(
            (
                port,
                eth,
                tci,
                nd_rsv,
                _Z4,
                packet[l3 + 8 : l3 + 40],  # src, dst
                label,
                bytes((nxt, tos, ttl, frag)),
                tp,
                flags,
                sll,
                tll,
                target,
                _ZCT,
            )
        )

    if eth_type in MPLS_TYPES:
        return port + eth + tci + _mpls_stack(packet, l3, n) + bytes(KEY_LEN - 40)

    return port + eth + tci + bytes(KEY_LEN - 20)


def _mpls_stack(packet: bytes, l3: int, n: int) -> bytes:
    """The 20 bytes after eth_type/vlan_tci of an MPLS frame's key: ipv4_src/dst zero
    (no L3), then the first three label stack entries (up to bottom of stack; an entry
    cut short by the frame's end is left zero)."""
    out = bytearray(20)
    off = l3
    for i in range(MPLS_MAX_LABELS):
        if n < off + 4:
            break
        out[8 + 4 * i : 12 + 4 * i] = packet[off : off + 4]
        if packet[off + 2] & 0x01:  # bottom of stack
            break
        off += 4
    return bytes(out)


# ---------------------------------------------------------------------------------
# Building keys and masks, reading fields.


def _encode(name: str, value: int | bytes | str) -> bytes:
    off, size = FIELDS[name]
    if isinstance(value, bytes):
        if len(value) != size:
            raise ValueError(f"{name} needs {size} bytes, got {len(value)}")
        return value
    if isinstance(value, str):
        if size == 6:
            return bytes(int(b, 16) for b in value.split(":"))
        return ipaddress.ip_address(value).packed
    return value.to_bytes(size, "big")


def make_key(**fields: int | bytes | str) -> bytes:
    """A key with the named fields set (MACs and IPs may be given as strings)."""
    key = bytearray(KEY_LEN)
    for name, value in fields.items():
        off, size = FIELDS[name]
        key[off : off + size] = _encode(name, value)
    return bytes(key)


def full_mask(*names: str) -> bytes:
    """A mask that matches the named fields exactly."""
    mask = bytearray(KEY_LEN)
    for name in names:
        off, size = FIELDS[name]
        mask[off : off + size] = b"\xff" * size
    return bytes(mask)


def make_mask(**fields: int | bytes | str) -> bytes:
    """A mask with per-field (possibly partial) masks, e.g. make_mask(vlan_tci=0x1fff)."""
    return make_key(**fields)


def field(key: bytes, name: str) -> int:
    """Read a field of a key (or mask) as an integer."""
    off, size = FIELDS[name]
    return int.from_bytes(key[off : off + size], "big")


def set_field(key: bytes, name: str, value: int | bytes | str) -> bytes:
    off, size = FIELDS[name]
    return key[:off] + _encode(name, value) + key[off + size :]


def mask_or(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") | int.from_bytes(b, "big")).to_bytes(KEY_LEN, "big")


def apply_mask(key: bytes, mask: bytes) -> bytes:
    return (int.from_bytes(key, "big") & int.from_bytes(mask, "big")).to_bytes(KEY_LEN, "big")


def compact(key: bytes, mask: bytes) -> tuple[bytes, bytes]:
    """The stored form of a megaflow: cut at CT_OFF when it matches recirc_id 0 and no
    ct field (every flow outside a ct pipeline), the 102-byte form that snapshots
    carried before those fields existed; other flows are kept whole."""
    if len(mask) > CT_OFF and not any(mask[CT_OFF + 4 :]) and not any(key[CT_OFF:]):
        return key[:CT_OFF], mask[:CT_OFF]
    return key, mask


_RECIRC0_MASK = b"\xff" * 4 + bytes(KEY_LEN - CT_OFF - 4)


def widen(key: bytes, mask: bytes) -> tuple[bytes, bytes]:
    """A stored megaflow at full KEY_LEN: a compact one matches recirc_id 0 (so a flow
    from a build that had no recirculation never catches a recirculated packet).
    ValueError if the lengths are neither form."""
    if len(key) == len(mask) == KEY_LEN:
        return key, mask
    if len(key) == len(mask) == CT_OFF:
        return key + _ZCT, mask + _RECIRC0_MASK
    raise ValueError(
        f"a flow key and mask are {CT_OFF} or {KEY_LEN} bytes, not {len(key)}/{len(mask)}"
    )


@dataclass(frozen=True, slots=True)
class Match:
    """A megaflow: the fields of ``key`` selected by ``mask`` (key is stored masked)."""

    key: bytes
    mask: bytes

    @classmethod
    def of(cls, key: bytes, mask: bytes) -> Match:
        return cls(apply_mask(key, mask), mask)

    def matches(self, key: bytes) -> bool:
        return apply_mask(key, self.mask) == self.key

    def __str__(self) -> str:
        return format_match(self.key, self.mask)


# ---------------------------------------------------------------------------------
# Formatting, in the spirit of `ovs-appctl dpctl/dump-flows`.


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _fmt(name: str, key: bytes, mask: bytes) -> str | None:
    off, size = FIELDS[name]
    m = mask[off : off + size]
    if not any(m):
        return None
    v = key[off : off + size]
    full = all(x == 0xFF for x in m)
    if size == 6:
        s = _mac(v)
        return s if full else f"{s}/{_mac(m)}"
    if name.startswith("ipv4"):
        s = str(ipaddress.IPv4Address(v))
        return s if full else f"{s}/{ipaddress.IPv4Address(m)}"
    if name.startswith("ipv6") and size == 16 or name == "nd_target":
        s = str(ipaddress.IPv6Address(v))
        return s if full else f"{s}/{ipaddress.IPv6Address(m)}"
    iv = int.from_bytes(v, "big")
    im = int.from_bytes(m, "big")
    if name in ("eth_type", "vlan_tci", "tcp_flags", "ip_frag", "nd_reserved"):
        s = f"{iv:#0{size * 2 + 2}x}"
        return s if full else f"{s}/{im:#0{size * 2 + 2}x}"
    return str(iv) if full else f"{iv}/{im:#x}"


_LSE_PARTS = (("label", 12, 0xFFFFF), ("tc", 9, 7), ("ttl", 0, 0xFF), ("bos", 8, 1))


def _format_mpls(key: bytes, mask: bytes) -> str:
    """``mpls(label=..,tc=..,ttl=..,bos=..)`` for the top entry alone (a part's mask
    after a slash when partial), ``mpls(lse0=..,lse1=..)`` when deeper ones count."""
    ms = [field(mask, f"mpls_lse{i}") for i in range(MPLS_MAX_LABELS)]
    vs = [field(key, f"mpls_lse{i}") for i in range(MPLS_MAX_LABELS)]
    if not any(ms):
        return ""
    if not any(ms[1:]):
        shown = []
        for name, shift, ones in _LSE_PARTS:
            m = (ms[0] >> shift) & ones
            if m:
                v = (vs[0] >> shift) & ones
                shown.append(f"{name}={v}" if m == ones else f"{name}={v}/{m:#x}")
        return f"mpls({','.join(shown)})"
    shown = [
        f"lse{i}={v:#x}" if m == 0xFFFFFFFF else f"lse{i}={v:#x}/{m:#x}"
        for i, (v, m) in enumerate(zip(vs, ms, strict=True))
        if m
    ]
    return f"mpls({','.join(shown)})"


_CT_BITS = (
    ("new", 0x01),
    ("est", 0x02),
    ("rel", 0x04),
    ("rpl", 0x08),
    ("inv", 0x10),
    ("trk", 0x20),
    ("snat", 0x40),
    ("dnat", 0x80),
)


def format_match(key: bytes, mask: bytes) -> str:
    """Render a megaflow as 'in_port(1),eth(src=..,dst=..),eth_type(0x0800),...'."""
    parts: list[str] = []

    def group(title: str, names: list[tuple[str, str]]) -> None:
        items = [(label, _fmt(n, key, mask)) for n, label in names]
        shown = [f"{label}={v}" for label, v in items if v is not None]
        if shown:
            parts.append(f"{title}({','.join(shown)})")

    r = _fmt("recirc_id", key, mask)
    if r is not None:
        parts.append(
            f"recirc_id({field(key, 'recirc_id'):#x})"
            if field(key, "recirc_id")
            else "recirc_id(0)"
        )
    cs = field(mask, "ct_state")
    if cs:
        v = field(key, "ct_state")
        bits = [(n, b) for n, b in _CT_BITS if cs & b]
        parts.append("ct_state(" + "".join(("+" if v & b else "-") + n for n, b in bits) + ")")
    for name in ("ct_zone", "ct_mark", "ct_label"):
        s = _fmt(name, key, mask)
        if s is not None:
            iv = field(key, name)
            im = field(mask, name)
            full = im == (1 << FIELDS[name][1] * 8) - 1
            parts.append(f"{name}({iv:#x}{'' if full else f'/{im:#x}'})")
    p = _fmt("in_port", key, mask)
    if p is not None:
        parts.append(f"in_port({p})")
    group("eth", [("eth_src", "src"), ("eth_dst", "dst")])
    tci = _fmt("vlan_tci", key, mask)
    if tci is not None:
        t = field(key, "vlan_tci")
        if field(mask, "vlan_tci") and not t & VLAN_PRESENT:
            parts.append("vlan(none)")
        else:
            parts.append(f"vlan(vid={t & 0xFFF},pcp={t >> 13})" if t else f"vlan_tci({tci})")
    et = _fmt("eth_type", key, mask)
    if et is not None:
        parts.append(f"eth_type({et})")
    eth_type = field(key, "eth_type")
    if eth_type == ETH_TYPE_NSH:
        group("nsh", [(n, n[4:]) for n in NSH_FIELDS])
        return ",".join(parts)
    if eth_type in MPLS_TYPES:
        mpls = _format_mpls(key, mask)
        if mpls:
            parts.append(mpls)
        return ",".join(parts)
    if eth_type in (ETH_TYPE_ARP, ETH_TYPE_RARP):
        group(
            "arp",
            [
                ("ipv4_src", "sip"),
                ("ipv4_dst", "tip"),
                ("ip_proto", "op"),
                ("arp_sha", "sha"),
                ("arp_tha", "tha"),
            ],
        )
    elif eth_type == ETH_TYPE_IPV6:
        group(
            "ipv6",
            [
                ("ipv6_src", "src"),
                ("ipv6_dst", "dst"),
                ("ipv6_label", "label"),
                ("ip_proto", "proto"),
                ("ip_tos", "tclass"),
                ("ip_ttl", "hlimit"),
                ("ip_frag", "frag"),
            ],
        )
    else:
        group(
            "ipv4",
            [
                ("ipv4_src", "src"),
                ("ipv4_dst", "dst"),
                ("ip_proto", "proto"),
                ("ip_tos", "tos"),
                ("ip_ttl", "ttl"),
                ("ip_frag", "frag"),
            ],
        )
    proto = field(key, "ip_proto")
    l4 = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp", IPPROTO_SCTP: "sctp"}.get(proto)
    if eth_type in (ETH_TYPE_IPV4, ETH_TYPE_IPV6) and proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        group(
            "icmp" if proto == IPPROTO_ICMP else "icmpv6", [("tp_src", "type"), ("tp_dst", "code")]
        )
    else:
        group(l4 or "l4", [("tp_src", "src"), ("tp_dst", "dst")])
    if eth_type == ETH_TYPE_IPV6 and proto == IPPROTO_ICMPV6:
        group("nd", [("nd_target", "target"), ("arp_sha", "sll"), ("arp_tha", "tll")])
        group("nd_ext", [("nd_reserved", "nd_reserved"), ("nd_options_type", "nd_options_type")])
    else:
        group("tcp_flags", [("tcp_flags", "flags")])
    return ",".join(parts) if parts else "<any>"
