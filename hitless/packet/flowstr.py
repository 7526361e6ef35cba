"""Flows written as ``ovs-ofctl`` writes them (``tcp,in_port=1,nw_dst=10.0.0.2,tcp_dst=80``):
parsed into a packet, and flow keys formatted back in ``ovs-appctl ofproto/trace``'s
"Flow:" layout.

``parse_flow(text)`` returns a ``FlowSpec`` (the input port and the header fields);
``build_packet(spec)`` makes the frame those headers describe, so that a traced or
injected flow goes through ``extract_key`` like any received packet (one parser, no
second notion of a flow). Fields not given are zero, as in Open vSwitch's exact flows
(so an IP packet has TTL 0 unless ``nw_ttl`` says otherwise). As ``ovs-ofctl``, an L4
field needs its protocol first (``udp,udp_dst=53``, not ``tp_dst=53`` alone).

``format_flow(key)`` renders a flow key as ``ofproto/trace`` prints its "Flow:" and
"Final flow:" lines. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from hitless.packet.flow import (
    ETH_TYPE_ARP,
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    ETH_TYPE_MPLS,
    ETH_TYPE_NSH,
    ETH_TYPE_VLAN,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    MPLS_TYPES,
    VLAN_PRESENT,
)
from hitless.packet.flow import field as key_field
from hitless.packet.ops import checksum

__all__ = [
    "FlowSpec",
    "FlowSyntaxError",
    "build_packet",
    "format_flow",
    "format_megaflow",
    "parse_flow",
]

OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF  # "no input port" (in_port=ANY in ofproto/trace)
PORT_NAMES = {"LOCAL": OFPP_LOCAL, "ANY": OFPP_ANY, "NONE": OFPP_ANY}


class FlowSyntaxError(ValueError):
    """The flow text is not valid ovs-ofctl flow syntax (the message says why)."""


# shorthand -> (eth_type, ip_proto or None)
_SHORTHANDS: dict[str, tuple[int, int | None]] = {
    "ip": (ETH_TYPE_IPV4, None),
    "ipv4": (ETH_TYPE_IPV4, None),
    "icmp": (ETH_TYPE_IPV4, IPPROTO_ICMP),
    "tcp": (ETH_TYPE_IPV4, IPPROTO_TCP),
    "udp": (ETH_TYPE_IPV4, IPPROTO_UDP),
    "sctp": (ETH_TYPE_IPV4, IPPROTO_SCTP),
    "ipv6": (ETH_TYPE_IPV6, None),
    "icmp6": (ETH_TYPE_IPV6, IPPROTO_ICMPV6),
    "tcp6": (ETH_TYPE_IPV6, IPPROTO_TCP),
    "udp6": (ETH_TYPE_IPV6, IPPROTO_UDP),
    "sctp6": (ETH_TYPE_IPV6, IPPROTO_SCTP),
    "arp": (ETH_TYPE_ARP, None),
}
_TCP_FLAGS = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns")

# ovs-ofctl field name -> our name (one name per meaning)
_ALIASES = {
    "dl_src": "eth_src",
    "dl_dst": "eth_dst",
    "dl_type": "eth_type",
    "dl_vlan": "vlan",
    "dl_vlan_pcp": "vlan_pcp",
    "nw_src": "ip_src",
    "nw_dst": "ip_dst",
    "ipv4_src": "ip_src",
    "ipv4_dst": "ip_dst",
    "nw_proto": "ip_proto",
    "nw_ttl": "ip_ttl",
    "nw_ecn": "ip_ecn",
    "ip_dscp": "dscp",
    "nw_tos": "tos",
    "tcp_src": "tp_src@6",
    "tcp_dst": "tp_dst@6",
    "udp_src": "tp_src@17",
    "udp_dst": "tp_dst@17",
    "sctp_src": "tp_src@132",
    "sctp_dst": "tp_dst@132",
    "icmp_type": "tp_src@1",
    "icmp_code": "tp_dst@1",
    "icmpv4_type": "tp_src@1",
    "icmpv4_code": "tp_dst@1",
    "icmpv6_type": "tp_src@58",
    "icmpv6_code": "tp_dst@58",
    "arp_spa": "ip_src",
    "arp_tpa": "ip_dst",
    "arp_op": "ip_proto",
}
_KNOWN = {
    "in_port",
    "eth_src",
    "eth_dst",
    "eth_type",
    "vlan",
    "vlan_vid",
    "vlan_pcp",
    "vlan_tci",
    "ip_src",
    "ip_dst",
    "ipv6_src",
    "ipv6_dst",
    "ipv6_label",
    "ip_proto",
    "ip_ttl",
    "ip_ecn",
    "dscp",
    "tos",
    "tcp_flags",
    "arp_sha",
    "arp_tha",
    "nd_target",
    "nd_sll",
    "nd_tll",
    "nd_reserved",
    "nd_options_type",
}
# NSH fields (and Open vSwitch's older names for some) -> width in bits
_NSH_BITS = {"nsh_flags": 2, "nsh_ttl": 6, "nsh_mdtype": 8, "nsh_np": 8, "nsh_spi": 24,
             "nsh_si": 8, **{f"nsh_c{i}": 32 for i in range(1, 5)}}  # fmt: skip
_NSH_ALIASES = {"nsp": "nsh_spi", "nsi": "nsh_si", **{f"nshc{i}": f"nsh_c{i}" for i in range(1, 5)}}


@dataclass(slots=True)
class FlowSpec:
    """A parsed flow: the input port (None if not given) and header values."""

    in_port: int | None = None
    in_port_name: str | None = None  # in_port=NAME, for the caller to resolve
    eth_src: bytes = bytes(6)
    eth_dst: bytes = bytes(6)
    eth_type: int = 0
    tci: int = 0  # VLAN_PRESENT | pcp << 13 | vid, or 0 (untagged)
    ip_src: bytes = b""
    ip_dst: bytes = b""
    ip_proto: int = 0
    tos: int = 0
    ttl: int = 0
    label: int = 0
    tp_src: int = 0
    tp_dst: int = 0
    tcp_flags: int = 0
    arp_sha: bytes = bytes(6)
    arp_tha: bytes = bytes(6)
    nd_target: bytes = bytes(16)
    nd_reserved: int = 0
    nd_options_type: int = 0  # the key's, as given (Open vSwitch's trace composes none)
    nsh: dict[str, int] = field(default_factory=dict)  # NSH header fields given
    given: set[str] = field(default_factory=set)


def _int(name: str, text: str, bits: int) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise FlowSyntaxError(f"{text}: invalid value for {name}") from None
    if not 0 <= v < 1 << bits:
        raise FlowSyntaxError(f"{text}: value too large for {bits}-bit field {name}")
    return v


def _mac(name: str, text: str) -> bytes:
    parts = text.split(":")
    try:
        if len(parts) != 6:
            raise ValueError
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise FlowSyntaxError(f"{text}: invalid Ethernet address for {name}") from None


def _ip(name: str, text: str, version: int) -> bytes:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    if addr is None or addr.version != version:
        raise FlowSyntaxError(f"{text}: invalid IPv{version} address for {name}")
    return addr.packed


def _tcp_flags(text: str) -> int:
    if text[:1] in "+-":
        raise FlowSyntaxError(f"bad value for tcp_flags ({text}: wildcards not allowed here)")
    try:
        return _int("tcp_flags", text, 12)
    except FlowSyntaxError:
        pass
    v = 0
    for word in text.split("|"):
        if word not in _TCP_FLAGS:
            raise FlowSyntaxError(f"{text}: invalid value for tcp_flags")
        v |= 1 << _TCP_FLAGS.index(word)
    return v


def parse_flow(text: str) -> FlowSpec:
    """Parse ``text`` (ovs-ofctl flow syntax). Raises FlowSyntaxError."""
    spec = FlowSpec()
    proto_set = False
    tokens = [t for t in text.replace(" ", ",").split(",") if t]
    for tok in tokens:
        name, eq, value = tok.partition("=")
        name = name.strip()
        if not eq:
            if name in _SHORTHANDS:
                spec.eth_type, proto = _SHORTHANDS[name]
                if proto is not None:
                    spec.ip_proto = proto
                    proto_set = True
                spec.given.add("eth_type")
                continue
            raise FlowSyntaxError(f"{text}: unknown field {name}")
        name0 = name
        name = _NSH_ALIASES.get(name, name)
        if name in _NSH_BITS:
            spec.nsh[name] = _int(name0, value, _NSH_BITS[name])
            spec.given.add(name)
            continue
        name = _ALIASES.get(name, name)
        need_proto: int | None = None
        if "@" in name:
            name, _, p = name.partition("@")
            need_proto = int(p)
        if name not in _KNOWN and name not in ("tp_src", "tp_dst"):
            raise FlowSyntaxError(f"{text}: unknown field {name}")
        if name in ("tp_src", "tp_dst"):
            if need_proto is None or not proto_set or spec.ip_proto != need_proto:
                raise FlowSyntaxError(f"{text}: prerequisites not met for setting {name0}")
            setattr(spec, name, _int(name, value, 8 if need_proto in (1, 58) else 16))
        elif name == "in_port":
            if value.upper() in PORT_NAMES:
                spec.in_port = PORT_NAMES[value.upper()]
            elif value.isdigit() or value.startswith("0x"):
                spec.in_port = _int(name, value, 32)
            else:
                spec.in_port_name = value
        elif name in ("eth_src", "eth_dst", "arp_sha", "arp_tha"):
            setattr(spec, name, _mac(name, value))
        elif name in ("nd_sll", "nd_tll"):
            setattr(spec, "arp_sha" if name == "nd_sll" else "arp_tha", _mac(name, value))
        elif name == "eth_type":
            spec.eth_type = _int(name, value, 16)
        elif name == "vlan":
            spec.tci = (spec.tci & 0xE000) | VLAN_PRESENT | _int(name, value, 12)
        elif name == "vlan_vid":  # OpenFlow 1.3 style: 0x1000 | VID
            vid = _int(name, value, 13)
            spec.tci = (spec.tci & 0xE000) | vid if vid & VLAN_PRESENT else 0
        elif name == "vlan_pcp":
            spec.tci = (spec.tci & 0x1FFF) | VLAN_PRESENT | _int(name, value, 3) << 13
        elif name == "vlan_tci":
            spec.tci = _int(name, value, 16)
        elif name in ("ip_src", "ip_dst"):
            ver = 4
            setattr(spec, name, _ip(name, value, ver))
        elif name in ("ipv6_src", "ipv6_dst"):
            setattr(spec, "ip_src" if name == "ipv6_src" else "ip_dst", _ip(name, value, 6))
        elif name == "nd_target":
            spec.nd_target = _ip(name, value, 6)
        elif name in ("nd_reserved", "nd_options_type"):
            setattr(spec, name, _int(name, value, 32 if name == "nd_reserved" else 8))
        elif name == "ipv6_label":
            spec.label = _int(name, value, 20)
        elif name == "ip_proto":
            spec.ip_proto = _int(name, value, 8)
            proto_set = True
        elif name == "ip_ttl":
            spec.ttl = _int(name, value, 8)
        elif name == "ip_ecn":
            spec.tos = (spec.tos & 0xFC) | _int(name, value, 2)
        elif name == "dscp":
            spec.tos = (spec.tos & 0x03) | _int(name, value, 6) << 2
        elif name == "tos":
            spec.tos = (spec.tos & 0x03) | (_int(name, value, 8) & 0xFC)
        elif name == "tcp_flags":
            spec.tcp_flags = _tcp_flags(value)
        spec.given.add(name)
    return spec


def _l4(spec: FlowSpec) -> bytes:
    p = spec.ip_proto
    if p == IPPROTO_TCP:
        off_flags = (5 << 12) | spec.tcp_flags
        return struct.pack("!HHIIHHHH", spec.tp_src, spec.tp_dst, 0, 0, off_flags, 0, 0, 0)
    if p == IPPROTO_UDP:
        return struct.pack("!HHHH", spec.tp_src, spec.tp_dst, 8, 0)
    if p == IPPROTO_SCTP:
        return struct.pack("!HHII", spec.tp_src, spec.tp_dst, 0, 0)
    if p == IPPROTO_ICMP:
        return struct.pack("!BBHI", spec.tp_src, spec.tp_dst, 0, 0)
    if p == IPPROTO_ICMPV6 and spec.eth_type == ETH_TYPE_IPV6:
        head = struct.pack("!BBHI", spec.tp_src, spec.tp_dst, 0, 0)
        if spec.tp_src in (135, 136) and spec.tp_dst == 0:
            head = head[:4] + struct.pack("!I", spec.nd_reserved)
            body = spec.nd_target
            if spec.tp_src == 135 and any(spec.arp_sha):
                body += b"\x01\x01" + spec.arp_sha
            if spec.tp_src == 136 and any(spec.arp_tha):
                body += b"\x02\x01" + spec.arp_tha
            return head + body
        return head
    return b""


def build_packet(spec: FlowSpec) -> bytes:
    """The Ethernet frame whose headers are ``spec``'s fields."""
    eth = spec.eth_dst + spec.eth_src
    if spec.tci & VLAN_PRESENT:
        eth += struct.pack("!HH", ETH_TYPE_VLAN, spec.tci & ~VLAN_PRESENT & 0xFFFF)
    eth += struct.pack("!H", spec.eth_type)
    if spec.eth_type == ETH_TYPE_IPV4:
        l4 = _l4(spec)
        src = spec.ip_src or bytes(4)
        dst = spec.ip_dst or bytes(4)
        hdr = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            spec.tos,
            20 + len(l4),
            0,
            0,
            spec.ttl,
            spec.ip_proto,
            0,
            src,
            dst,
        )
        hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
        return eth + hdr + l4
    if spec.eth_type == ETH_TYPE_IPV6:
        l4 = _l4(spec)
        first = (6 << 28) | (spec.tos << 20) | spec.label
        src = spec.ip_src or bytes(16)
        dst = spec.ip_dst or bytes(16)
        hdr = struct.pack("!IHBB16s16s", first, len(l4), spec.ip_proto, spec.ttl, src, dst)
        return eth + hdr + l4
    if spec.eth_type == ETH_TYPE_ARP:
        arp = struct.pack(
            "!HHBBH6s4s6s4s",
            1,
            ETH_TYPE_IPV4,
            6,
            4,
            spec.ip_proto,
            spec.arp_sha,
            spec.ip_src or bytes(4),
            spec.arp_tha,
            spec.ip_dst or bytes(4),
        )
        return eth + arp
    if spec.eth_type == ETH_TYPE_NSH:
        return eth + _nsh_header(spec.nsh)
    return eth


def _nsh_header(f: dict[str, int]) -> bytes:
    """An NSH base header and service path, and MD type 1's context words when the MD
    type is 1 (a header 6 words long; 2 words otherwise)."""
    md = f.get("nsh_mdtype", 0)
    words = 6 if md == 1 else 2
    first = f.get("nsh_flags", 0) << 12 | f.get("nsh_ttl", 0) << 6 | words
    head = struct.pack("!HBBI", first, md, f.get("nsh_np", 0),
                       f.get("nsh_spi", 0) << 8 | f.get("nsh_si", 0))  # fmt: skip
    if md == 1:
        head += struct.pack("!4I", *(f.get(f"nsh_c{i}", 0) for i in range(1, 5)))
    return head


# Formatting ---------------------------------------------------------------------------


def _m(key: bytes, name: str) -> str:
    from hitless.packet.flow import FIELDS

    off, size = FIELDS[name]
    return ":".join(f"{b:02x}" for b in key[off : off + size])


def _a(key: bytes, name: str) -> str:
    from hitless.packet.flow import FIELDS

    off, size = FIELDS[name]
    return str(ipaddress.ip_address(key[off : off + size]))


def format_port(port: int) -> str:
    if port == OFPP_LOCAL:
        return "LOCAL"
    if port == OFPP_ANY:
        return "ANY"
    return str(port)


def format_flow(
    key: bytes,
    regs: Iterable[tuple[int, int]] = (),
    first: Iterable[str] = (),
    after_regs: Iterable[str] = (),
) -> str:
    """A flow key as ``ofproto/trace`` prints it (its "Flow:" line); ``regs``: the
    registers that are not zero, (number, value), printed after the protocol as Open
    vSwitch does; ``first`` (``pkt_mark=..``) goes before the protocol, ``after_regs``
    (the tunnel fields, ``metadata=..``) between the registers and ``in_port``."""
    et = key_field(key, "eth_type")
    proto = key_field(key, "ip_proto")
    parts: list[str] = list(first)
    short = None
    if et == ETH_TYPE_IPV4:
        short = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}.get(proto, "ip")
    elif et == ETH_TYPE_IPV6:
        short = {58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"}.get(proto, "ipv6")
    elif et == ETH_TYPE_ARP:
        short = "arp"
    elif et in MPLS_TYPES:
        short = "mpls" if et == ETH_TYPE_MPLS else "mplsm"
    if short:
        parts.append(short)
    parts += [f"reg{n}={v:#x}" for n, v in regs if v]
    parts += after_regs
    parts.append(f"in_port={format_port(key_field(key, 'in_port'))}")
    tci = key_field(key, "vlan_tci")
    if tci & VLAN_PRESENT:
        parts += [f"dl_vlan={tci & 0xFFF}", f"dl_vlan_pcp={tci >> 13}", "vlan_tci1=0x0000"]
    else:
        parts.append("vlan_tci=0x0000")
    parts += [f"dl_src={_m(key, 'eth_src')}", f"dl_dst={_m(key, 'eth_dst')}"]
    tos = key_field(key, "ip_tos")
    ipcommon = [
        f"nw_tos={tos & 0xFC}",
        f"nw_ecn={tos & 3}",
        f"nw_ttl={key_field(key, 'ip_ttl')}",
        f"nw_frag={_frag(key_field(key, 'ip_frag'))}",
    ]
    l4: list[str] = []
    if short in ("tcp", "udp", "sctp", "tcp6", "udp6", "sctp6"):
        l4 = [f"tp_src={key_field(key, 'tp_src')}", f"tp_dst={key_field(key, 'tp_dst')}"]
        if proto == IPPROTO_TCP:
            l4.append(f"tcp_flags={_flags(key_field(key, 'tcp_flags'))}")
    elif short in ("icmp", "icmp6"):
        l4 = [f"icmp_type={key_field(key, 'tp_src')}", f"icmp_code={key_field(key, 'tp_dst')}"]
        if short == "icmp6" and key_field(key, "tp_src") in (135, 136):
            l4 += [
                f"nd_target={_a(key, 'nd_target')}",
                f"nd_sll={_m(key, 'arp_sha')}",
                f"nd_tll={_m(key, 'arp_tha')}",
            ]
    if et == ETH_TYPE_IPV4:
        parts += [f"nw_src={_a(key, 'ipv4_src')}", f"nw_dst={_a(key, 'ipv4_dst')}"]
        if short == "ip":
            parts.append(f"nw_proto={proto}")
        parts += ipcommon + l4
    elif et == ETH_TYPE_IPV6:
        parts += [
            f"ipv6_src={_a(key, 'ipv6_src')}",
            f"ipv6_dst={_a(key, 'ipv6_dst')}",
            f"ipv6_label={key_field(key, 'ipv6_label'):#07x}",
        ]
        if short == "ipv6":
            parts.append(f"nw_proto={proto}")
        parts += ipcommon + l4
    elif et == ETH_TYPE_ARP:
        parts += [
            f"arp_spa={_a(key, 'ipv4_src')}",
            f"arp_tpa={_a(key, 'ipv4_dst')}",
            f"arp_op={proto}",
            f"arp_sha={_m(key, 'arp_sha')}",
            f"arp_tha={_m(key, 'arp_tha')}",
        ]
    elif et in MPLS_TYPES:
        parts += _mpls_stack(key)
    elif et == ETH_TYPE_NSH:
        parts += [f"dl_type={et:#06x}", *_nsh_flow(key), f"nw_proto={proto}", *ipcommon]
    else:
        parts.append(f"dl_type={et:#06x}")
    return ",".join(parts)


def _nsh_flow(key: bytes) -> list[str]:
    """An NSH header as Open vSwitch prints a flow's: the context words with MD type 1
    only."""
    path = key_field(key, "nsh_path")
    out = [f"nsh_{n}={key_field(key, 'nsh_' + n)}" for n in ("flags", "ttl", "mdtype", "np")]
    out += [f"nsh_spi={path >> 8:#x}", f"nsh_si={path & 0xFF}"]
    if key_field(key, "nsh_mdtype") == 1:
        out += [f"nsh_c{i}={key_field(key, f'nsh_c{i}'):#x}" for i in range(1, 5)]
    return out


def _mpls_stack(key: bytes) -> list[str]:
    """The label stack as Open vSwitch prints a flow's: the top entry's fields, then
    each entry below it (down to the bottom of stack, three at most) whole, in decimal."""
    lse = key_field(key, "mpls_lse0")
    out = [f"mpls_label={lse >> 12}", f"mpls_tc={lse >> 9 & 7}", f"mpls_ttl={lse & 0xFF}",
           f"mpls_bos={lse >> 8 & 1}"]  # fmt: skip
    for i in (1, 2):
        if lse >> 8 & 1:
            break
        lse = key_field(key, f"mpls_lse{i}")
        out.append(f"mpls_lse{i}={lse}")
    return out


def _frag(v: int) -> str:
    if not v & 1:
        return "no"
    return "later" if v & 2 else "first"


def _flags(v: int) -> str:
    if not v:
        return "0"
    return "|".join(n for i, n in enumerate(_TCP_FLAGS) if v & 1 << i)


def _masked(key: bytes, mask: bytes, name: str, fmt: str = "dec") -> str | None:
    """A field of a megaflow as ``value`` or ``value/mask`` (None when wildcarded)."""
    from hitless.packet.flow import FIELDS

    off, size = FIELDS[name]
    m = int.from_bytes(mask[off : off + size], "big")
    if not m:
        return None
    v = int.from_bytes(key[off : off + size], "big") & m
    full = m == (1 << size * 8) - 1
    if fmt == "mac":
        vs = ":".join(f"{b:02x}" for b in v.to_bytes(size, "big"))
        ms = ":".join(f"{b:02x}" for b in m.to_bytes(size, "big"))
        return vs if full else f"{vs}/{ms}"
    if fmt == "ip":
        vs, ms = str(ipaddress.ip_address(v.to_bytes(size, "big"))), ""
        if not full:
            inv = ~m & ((1 << size * 8) - 1)
            cidr = inv & (inv + 1) == 0
            ms = (
                str(size * 8 - inv.bit_length())
                if cidr
                else str(ipaddress.ip_address(m.to_bytes(size, "big")))
            )
        return vs if full else f"{vs}/{ms}"
    if fmt == "hex":
        return f"{v:#0{size * 2 + 2}x}" if full else f"{v:#0{size * 2 + 2}x}/{m:#0{size * 2 + 2}x}"
    return str(v) if full else f"{v:#x}/{m:#x}"


def format_megaflow(key: bytes, mask: bytes) -> str:
    """A megaflow (key and mask) as ``ofproto/trace`` prints its "Megaflow:" line."""
    et_m = key_field(mask, "eth_type")
    et = key_field(key, "eth_type") if et_m == 0xFFFF else None
    proto_m = key_field(mask, "ip_proto") == 0xFF
    proto = key_field(key, "ip_proto")
    parts: list[str] = []
    v = _masked(key, mask, "recirc_id") if "recirc_id" in _fields() else None
    if v is not None:
        parts.append(f"recirc_id={v}")
    parts.append("eth")
    short = None
    if et == ETH_TYPE_IPV4:
        short = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}.get(proto) if proto_m else None
        short = short or "ip"
    elif et == ETH_TYPE_IPV6:
        short = {58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"}.get(proto) if proto_m else None
        short = short or "ipv6"
    elif et == ETH_TYPE_ARP:
        short = "arp"
    if short:
        parts.append(short)
    in_port = _masked(key, mask, "in_port")
    if in_port is not None:
        parts.append(f"in_port={format_port(int(in_port, 0))}" if "/" not in in_port else in_port)
    tci_m = key_field(mask, "vlan_tci")
    if tci_m:
        tci = key_field(key, "vlan_tci") & tci_m
        if tci_m & 0x1FFF == 0x1FFF and tci & VLAN_PRESENT:
            parts.append(f"dl_vlan={tci & 0xFFF}")
        else:
            parts.append(f"vlan_tci={tci:#06x}/{tci_m:#06x}")
    for name, label in (("eth_src", "dl_src"), ("eth_dst", "dl_dst")):
        val = _masked(key, mask, name, "mac")
        if val is not None:
            parts.append(f"{label}={val}")
    if et_m and short is None:
        parts.append(f"dl_type={_masked(key, mask, 'eth_type', 'hex')}")
    labels: list[tuple[str, str, str]] = []
    if et == ETH_TYPE_ARP:
        labels = [("ipv4_src", "arp_spa", "ip"), ("ipv4_dst", "arp_tpa", "ip"),
                  ("ip_proto", "arp_op", "dec"), ("arp_sha", "arp_sha", "mac"),
                  ("arp_tha", "arp_tha", "mac")]  # fmt: skip
    elif et in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        if et == ETH_TYPE_IPV4:
            labels = [("ipv4_src", "nw_src", "ip"), ("ipv4_dst", "nw_dst", "ip")]
        else:
            labels = [("ipv6_src", "ipv6_src", "ip"), ("ipv6_dst", "ipv6_dst", "ip"),
                      ("ipv6_label", "ipv6_label", "hex")]  # fmt: skip
        if short in ("ip", "ipv6"):
            labels.append(("ip_proto", "nw_proto", "dec"))
        labels += [("ip_tos", "nw_tos", "dec"), ("ip_ttl", "nw_ttl", "dec")]
    for name, label, fmt in labels:
        val = _masked(key, mask, name, fmt)
        if val is not None:
            parts.append(f"{label}={val}")
    if et in (ETH_TYPE_IPV4, ETH_TYPE_IPV6) and key_field(mask, "ip_frag"):
        parts.append(f"nw_frag={_frag(key_field(key, 'ip_frag'))}")
    if et in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        icmp = short in ("icmp", "icmp6")
        for name, label in (("tp_src", "icmp_type" if icmp else "tp_src"),
                            ("tp_dst", "icmp_code" if icmp else "tp_dst")):  # fmt: skip
            val = _masked(key, mask, name)
            if val is not None:
                parts.append(f"{label}={val}")
        val = _masked(key, mask, "tcp_flags", "hex")
        if val is not None:
            parts.append(f"tcp_flags={val}")
    return ",".join(parts)


def _fields() -> dict[str, tuple[int, int]]:
    from hitless.packet.flow import FIELDS

    return FIELDS
