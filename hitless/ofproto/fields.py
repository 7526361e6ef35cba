"""Where each OpenFlow field lives: the pipeline key.

Rules match, and translation reads and writes, one integer: the **pipeline key**. Its low
``KEY_BITS`` bits are the datapath flow key (``hitless.packet.flow``, unchanged layout), so
a packet field sits where the datapath key puts it. Above them lies a region the datapath
never sees: the registers (``reg0``-``reg15``, with ``xreg``/``xxreg`` as wider views of
the same bits, ``reg0`` the most significant as Open vSwitch orders them), ``metadata``,
``pkt_mark``, ``conj_id``, the tunnel values and ``dp_hash``. Translation carries that
region in its context; it starts at zero for every packet, so a megaflow mask never needs
it: whatever a register holds was computed from packet fields that translation
un-wildcarded when it read them.

``LOCS[name]`` is a field's ``Loc`` (bit position and width in the pipeline key, and the
datapath key field it belongs to, if any); ``PREREQS[name]`` the fields and values a match
must pin for the field to mean something (OpenFlow 1.3.5 §7.2.3.8, Open vSwitch's
``ovs-fields(7)``). ``register_meta`` gives a new pipeline-only field (connection tracking's,
say) its bits. Pure data; imports only the packet layout and the wire field table.
"""

from __future__ import annotations

from dataclasses import dataclass

from hitless.packet.flow import FIELDS, KEY_LEN

__all__ = [
    "DP_MASK",
    "KEY_BITS",
    "LOCS",
    "PREREQS",
    "TUN_PRESENT",
    "Loc",
    "register_meta",
]

KEY_BITS = KEY_LEN * 8
DP_MASK = (1 << KEY_BITS) - 1


@dataclass(frozen=True, slots=True)
class Loc:
    """A field's place in the pipeline key: ``bits`` bits whose lowest is bit ``pos``;
    ``key_field``/``shift`` name the datapath key field (None: pipeline-only)."""

    pos: int
    bits: int
    key_field: str | None = None
    shift: int = 0

    @property
    def ones(self) -> int:
        return (1 << self.bits) - 1

    @property
    def mask(self) -> int:
        return self.ones << self.pos

    def get(self, pk: int) -> int:
        return (pk >> self.pos) & self.ones

    def put(self, pk: int, value: int, mask: int | None = None) -> int:
        m = self.ones if mask is None else mask & self.ones
        return (pk & ~(m << self.pos)) | ((value & m) << self.pos)


def _dp(name: str, shift: int = 0, bits: int | None = None) -> Loc:
    off, size = FIELDS[name]
    b = size * 8 if bits is None else bits
    return Loc((KEY_LEN - off - size) * 8 + shift, b, name, shift)


LOCS: dict[str, Loc] = {
    "in_port": _dp("in_port", 0, 16),
    "in_port_oxm": _dp("in_port"),
    "eth_dst": _dp("eth_dst"),
    "eth_src": _dp("eth_src"),
    "eth_type": _dp("eth_type"),
    "vlan_tci": _dp("vlan_tci"),
    "vlan_vid": _dp("vlan_tci", 0, 13),  # OFPVID_PRESENT is the key's VLAN_PRESENT bit
    "vlan_pcp": _dp("vlan_tci", 13, 3),
    "nw_tos": _dp("ip_tos"),
    "ip_dscp": _dp("ip_tos", 2, 6),
    "nw_ecn": _dp("ip_tos", 0, 2),
    "nw_ttl": _dp("ip_ttl"),
    "nw_proto": _dp("ip_proto"),
    "ip_src": _dp("ipv4_src"),
    "ip_dst": _dp("ipv4_dst"),
    "tcp_src": _dp("tp_src"),
    "tcp_dst": _dp("tp_dst"),
    "udp_src": _dp("tp_src"),
    "udp_dst": _dp("tp_dst"),
    "sctp_src": _dp("tp_src"),
    "sctp_dst": _dp("tp_dst"),
    "icmp_type": _dp("tp_src", 0, 8),
    "icmp_code": _dp("tp_dst", 0, 8),
    "arp_op": _dp("ip_proto"),  # the key keeps the opcode's low byte, as Open vSwitch
    "arp_spa": _dp("ipv4_src"),
    "arp_tpa": _dp("ipv4_dst"),
    "arp_sha": _dp("arp_sha"),
    "arp_tha": _dp("arp_tha"),
    "ipv6_src": _dp("ipv6_src"),
    "ipv6_dst": _dp("ipv6_dst"),
    "ipv6_label": _dp("ipv6_label", 0, 20),
    "icmpv6_type": _dp("tp_src", 0, 8),
    "icmpv6_code": _dp("tp_dst", 0, 8),
    "nd_target": _dp("nd_target"),
    "nd_sll": _dp("arp_sha"),
    "nd_tll": _dp("arp_tha"),
    "nd_reserved": _dp("nd_reserved"),
    "nd_options_type": _dp("nd_options_type"),
    "ip_frag": _dp("ip_frag"),
    "tcp_flags": _dp("tcp_flags", 0, 12),
    "recirc_id": _dp("recirc_id"),
    # the top label stack entry of an MPLS frame (label<<12 | tc<<9 | bos<<8 | ttl)
    "mpls_label": _dp("mpls_lse0", 12, 20),
    "mpls_tc": _dp("mpls_lse0", 9, 3),
    "mpls_bos": _dp("mpls_lse0", 8, 1),
    "mpls_ttl": _dp("mpls_lse0", 0, 8),
    # an NSH frame's header (over the IP address bytes: hitless.packet.flow)
    "nsh_flags": _dp("nsh_flags"),
    "nsh_ttl": _dp("nsh_ttl"),
    "nsh_mdtype": _dp("nsh_mdtype"),
    "nsh_np": _dp("nsh_np"),
    "nsh_spi": _dp("nsh_path", 8, 24),
    "nsh_si": _dp("nsh_path", 0, 8),
    **{f"nsh_c{i}": _dp(f"nsh_c{i}") for i in range(1, 5)},
}

# The pipeline-only region, above the datapath key. Registers first: reg i is bits
# [(15 - i) * 32, +32) of a 512-bit block, so xreg k (reg 2k:2k+1) and xxreg k (reg
# 4k..4k+3) are the wider slices over the same bits.
for _i in range(16):
    LOCS[f"reg{_i}"] = Loc(KEY_BITS + (15 - _i) * 32, 32)
for _i in range(8):
    LOCS[f"xreg{_i}"] = Loc(KEY_BITS + (14 - 2 * _i) * 32, 64)
for _i in range(4):
    LOCS[f"xxreg{_i}"] = Loc(KEY_BITS + (12 - 4 * _i) * 32, 128)
_next_meta = KEY_BITS + 512


def register_meta(name: str, bits: int) -> Loc:
    """Give a pipeline-only field its bits (once)."""
    global _next_meta
    if name in LOCS:
        raise ValueError(f"field {name} already has a location")
    loc = LOCS[name] = Loc(_next_meta, bits)
    _next_meta += bits
    return loc


for _name, _bits in (
    ("metadata", 64),
    ("pkt_mark", 32),
    ("conj_id", 32),
    ("tun_id", 64),
    ("tun_src", 32),
    ("tun_dst", 32),
    ("tun_flags", 16),
    ("dp_hash", 32),
    # after the fields above, so their places (and every older rule's mask) stay put
    ("packet_type", 32),  # always (0, 0): standard Ethernet
    ("tun_ipv6_src", 128),
    ("tun_ipv6_dst", 128),
    ("tun_gbp_id", 16),
    ("tun_gbp_flags", 8),
    ("tun_erspan_idx", 32),  # Open vSwitch takes any value (its "low 20 bits" unchecked)
    ("tun_erspan_ver", 8),
    ("tun_erspan_dir", 8),
    ("tun_erspan_hwid", 8),
    ("tun_gtpu_flags", 8),
    ("tun_gtpu_msgtype", 8),
    # the output port of the action set (OFPP_UNSET without one): not kept in the
    # region, the lookup adds it (hitless.ofproto.ofxlate)
    ("actset_output", 32),
    # which tun_metadata<n> fields a packet has (bit n): a rule on one matches only a packet
    # that carries it, even a rule on value 0 (Open vSwitch's "present" map); a port's
    # packet carries none (no Geneve port yet), a set_field or move gives it one
    ("tun_metadata_present", 64),
    # tun_metadata0-63, each as wide as the widest Geneve option (124 bytes); a value sits
    # in the low bits, as wide as its mapping (NXT_TLV_TABLE_MOD)
    *((f"tun_metadata{i}", 124 * 8) for i in range(64)),
):
    register_meta(_name, _bits)
TUN_PRESENT = LOCS["tun_metadata_present"]

# Prerequisites: field -> alternatives, each a tuple of (field, value) the match must pin
# exactly. Fields not listed have none (vlan_pcp is checked on its own: it needs a tag).
_Alts = tuple[tuple[tuple[str, int], ...], ...]
_IP: _Alts = ((("eth_type", 0x0800),), (("eth_type", 0x86DD),))
_V4: _Alts = ((("eth_type", 0x0800),),)
_V6: _Alts = ((("eth_type", 0x86DD),),)
# ARP fields: ARP or RARP (Open vSwitch parses both alike; OVN matches ``rarp,arp_op=3``)
_ARP: _Alts = ((("eth_type", 0x0806),), (("eth_type", 0x8035),))
_MPLS: _Alts = ((("eth_type", 0x8847),), (("eth_type", 0x8848),))
_NSH = ("nsh_flags", "nsh_ttl", "nsh_mdtype", "nsh_np", "nsh_spi", "nsh_si", "nsh_c1", "nsh_c2",
        "nsh_c3", "nsh_c4")  # fmt: skip


def _l4(proto: int, *eth_types: int) -> _Alts:
    return tuple((("eth_type", et), ("nw_proto", proto)) for et in eth_types)


PREREQS: dict[str, _Alts] = {
    "nw_tos": _IP,
    "ip_dscp": _IP,
    "nw_ecn": _IP,
    "nw_ttl": _IP,
    "nw_proto": _IP,
    "ip_frag": _IP,
    "ip_src": _V4,
    "ip_dst": _V4,
    "tcp_src": _l4(6, 0x0800, 0x86DD),
    "tcp_dst": _l4(6, 0x0800, 0x86DD),
    "tcp_flags": _l4(6, 0x0800, 0x86DD),
    "udp_src": _l4(17, 0x0800, 0x86DD),
    "udp_dst": _l4(17, 0x0800, 0x86DD),
    "sctp_src": _l4(132, 0x0800, 0x86DD),
    "sctp_dst": _l4(132, 0x0800, 0x86DD),
    "icmp_type": _l4(1, 0x0800),
    "icmp_code": _l4(1, 0x0800),
    "icmpv6_type": _l4(58, 0x86DD),
    "icmpv6_code": _l4(58, 0x86DD),
    "arp_op": _ARP,
    "arp_spa": _ARP,
    "arp_tpa": _ARP,
    "arp_sha": _ARP,
    "arp_tha": _ARP,
    "ipv6_src": _V6,
    "ipv6_dst": _V6,
    "ipv6_label": _V6,
    "mpls_label": _MPLS,
    "mpls_tc": _MPLS,
    "mpls_bos": _MPLS,
    "mpls_ttl": _MPLS,
    "nd_target": tuple(
        (("eth_type", 0x86DD), ("nw_proto", 58), ("icmpv6_type", t)) for t in (135, 136)
    ),
    "nd_reserved": tuple(
        (("eth_type", 0x86DD), ("nw_proto", 58), ("icmpv6_type", t)) for t in (135, 136)
    ),
    "nd_options_type": tuple(
        (("eth_type", 0x86DD), ("nw_proto", 58), ("icmpv6_type", t)) for t in (135, 136)
    ),
    "nd_sll": ((("eth_type", 0x86DD), ("nw_proto", 58), ("icmpv6_type", 135)),),
    "nd_tll": ((("eth_type", 0x86DD), ("nw_proto", 58), ("icmpv6_type", 136)),),
    **{n: ((("eth_type", 0x894F),),) for n in _NSH},
}
