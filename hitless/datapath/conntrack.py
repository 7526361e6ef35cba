"""Connection tracking for the userspace datapaths: a pure connection table.

No sockets and no clock: every call that needs the time takes ``now`` (monotonic
seconds). The datapath's ``ct`` action (hitless.datapath.execute) calls
``Conntrack.execute`` with the packet and the action's parameters and gets back the
connection-tracking fields of the packet (``ct_state``, ``ct_zone``, ``ct_mark``,
``ct_label``, the connection's original-direction tuple) and the packet, rewritten when
NAT applies.

Model (the kernel's nf_conntrack and Open vSwitch's userspace conntrack behave alike
here; this is our own code):

* A connection is keyed by zone and 5-tuple, once per direction: the original tuple
  (the first packet's) and the reply tuple (what a reply looks like after NAT) both
  find it. Only ``commit`` creates a connection; an uncommitted new packet is
  ``+trk+new`` and leaves nothing behind.
* ``ct_state`` bits as Open vSwitch defines them (``CS_*``). A packet of a known
  connection is ``+est`` once the connection has seen a reply (before that, packets in
  the original direction stay ``+new``, as the kernel says), ``+rpl`` in the reply
  direction, ``+rel`` for an ICMP error about it, ``+inv`` when it cannot be tracked
  (truncated header, bad TCP flags, outside the TCP window, a fragment).
* TCP: each side keeps its own state (SYN_SENT, ESTABLISHED, CLOSING, FIN_WAIT_2,
  TIME_WAIT...) and its window (highest sequence sent, highest sequence the peer
  allows, largest window seen, window scale), and a segment must fall inside the
  window the peer advertised and acknowledge only data that was sent (the four checks
  of the kernel's ``tcp_in_window``, with the same slack; a segment carrying no data,
  SYN or FIN has no sequence range to check, as in Open vSwitch's userspace tracker,
  only its ACK). A SYN on a closed connection
  starts a new one; a segment without SYN may pick up a connection mid-stream (so a
  connection survives a tracker that lost its table), a SYN+ACK may not create one.
* UDP and other protocols: FIRST until a reply, then BIDIR; ICMP echo/timestamp/info
  requests and their replies pair up by identifier. Timeouts per state as Open
  vSwitch's default policy (``DEFAULT_TIMEOUTS``).
* NAT (``NatSpec``) is chosen at commit: an address from the range (spread by a hash
  of the tuple) and, when the tuple would collide with another connection's reply
  tuple, a free port from the range. Every later packet executed with ``nat`` is
  rewritten: the original direction to the translated tuple, replies back to the
  original one (``+snat``/``+dnat``). An ICMP error about a NATed connection (quoting the
  packet before or after translation, either way) is translated too: the quoted header
  becomes what its receiver sent, the outer addresses what it knows (checksums fixed).
* Zones have connection limits (``set_limit``; zone ``None`` is the default for every
  zone without its own): a commit beyond the limit does not create the connection.
* ``ct_mark`` and ``ct_label`` are set with ``commit`` (masked writes).

Handoff: ``export_records`` returns every live connection as a ``ConnRecord`` (plain
ints and bytes) and ``import_records`` adopts them; ``track_changes`` /
``take_changes`` name the connections created, changed or deleted meanwhile (the
delta after a pre-copy), like the megaflow table's journal.
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

from hitless.packet import ops
from hitless.packet.flow import (
    ETH_TYPE_IPV4,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
)

__all__ = [
    "CS_DNAT",
    "CS_EST",
    "CS_INV",
    "CS_NEW",
    "CS_REL",
    "CS_RPL",
    "CS_SNAT",
    "CS_TRK",
    "CT_STATE_BITS",
    "DEFAULT_TIMEOUTS",
    "Conn",
    "ConnRecord",
    "CtResult",
    "CtTuple",
    "Conntrack",
    "NatSpec",
    "format_ct_state",
    "parse_tuple",
]

# ct_state bits (Open vSwitch's CS_* values, as NXM_NX_CT_STATE carries them).
CS_NEW = 0x01
CS_EST = 0x02
CS_REL = 0x04
CS_RPL = 0x08
CS_INV = 0x10
CS_TRK = 0x20
CS_SNAT = 0x40
CS_DNAT = 0x80
CT_STATE_BITS: dict[str, int] = {
    "new": CS_NEW,
    "est": CS_EST,
    "rel": CS_REL,
    "rpl": CS_RPL,
    "inv": CS_INV,
    "trk": CS_TRK,
    "snat": CS_SNAT,
    "dnat": CS_DNAT,
}


def format_ct_state(state: int) -> str:
    """'new|trk' style (the order Open vSwitch prints flags in)."""
    names = [n for n, b in CT_STATE_BITS.items() if state & b]
    return "|".join(names) if names else "0"


# TCP per-side states: Open vSwitch's CT_DPIF_TCPS_* numbering (what dump-conntrack names).
TCP_STATES = (
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "CLOSE_WAIT",
    "FIN_WAIT_1",
    "CLOSING",
    "LAST_ACK",
    "FIN_WAIT_2",
    "TIME_WAIT",
)
TCPS_CLOSED, TCPS_SYN_SENT, TCPS_ESTABLISHED = 0, 2, 4
TCPS_CLOSING, TCPS_FIN_WAIT_2, TCPS_TIME_WAIT = 7, 9, 10
_COALESCE = {TCPS_FIN_WAIT_2: TCPS_TIME_WAIT, 3: TCPS_ESTABLISHED}  # 3: SYN_RECV

TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK, TH_URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

# Seconds, per state (Open vSwitch's default timeout policy).
DEFAULT_TIMEOUTS: dict[str, float] = {
    "tcp_syn_sent": 30,
    "tcp_syn_recv": 30,
    "tcp_established": 86400,
    "tcp_fin_wait": 900,
    "tcp_time_wait": 30,
    "tcp_close": 30,
    "udp_first": 60,
    "udp_single": 60,
    "udp_multiple": 30,
    "icmp_first": 60,
    "icmp_reply": 30,
}

_PROTO_NAMES = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_ICMP: "icmp",
    IPPROTO_ICMPV6: "icmpv6",
    132: "sctp",
}

_STAT_NAMES = {
    IPPROTO_TCP: "TCP",
    IPPROTO_UDP: "UDP",
    132: "SCTP",
    IPPROTO_ICMP: "ICMP",
    IPPROTO_ICMPV6: "ICMP6",
}
STAT_ORDER = ("TCP", "UDP", "SCTP", "ICMP", "ICMP6", "OTHER")

# ICMP request type -> reply type (and back): these pair up as one connection.
_ICMP4_PAIRS = {8: 0, 13: 14, 15: 16, 17: 18}
_ICMP6_PAIRS = {128: 129}
# The ICMP types that may start a connection (Open vSwitch's icmp4/icmp6_valid_new): any
# other (an echo reply with no request before it...) is +inv and commits nothing.
_ICMP_NEW = {IPPROTO_ICMP: frozenset((8, 13, 15)), IPPROTO_ICMPV6: frozenset((128,))}
_ICMP4_ERRORS = frozenset((3, 4, 5, 11, 12))
_ICMP6_ERRORS = frozenset((1, 2, 3, 4))
DEFAULT_MAX_CONNS = 3_000_000  # Open vSwitch's default for its userspace table
_M32 = 0xFFFFFFFF
_MAX_ACK_WINDOW = 66000  # the kernel's floor for how far back an ACK may lag


def _invert_pairs(pairs: dict[int, int]) -> dict[int, int]:
    out = dict(pairs)
    out.update({v: k for k, v in pairs.items()})
    return out


_ICMP4_REV = _invert_pairs(_ICMP4_PAIRS)
_ICMP6_REV = _invert_pairs(_ICMP6_PAIRS)


class CtTuple(NamedTuple):
    """One direction of a connection. ``src``/``dst`` are 4 (IPv4) or 16 (IPv6) bytes.
    TCP/UDP: ``sport``/``dport`` are the ports. ICMP: ``sport`` is the identifier and
    ``dport`` is ``type << 8 | code``. A named tuple: every packet's lookup hashes one,
    and a handoff builds two per connection (a tuple hashes and builds in C; the frozen
    dataclass it was cost ~2 us more per lookup, seen in the adopt profile)."""

    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int

    @property
    def v6(self) -> bool:
        return len(self.src) == 16

    def reverse(self) -> CtTuple:
        """The tuple a reply to this one carries."""
        if self.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            rev = _ICMP6_REV if self.proto == IPPROTO_ICMPV6 else _ICMP4_REV
            t = rev.get(self.dport >> 8, self.dport >> 8)
            return CtTuple(self.dst, self.src, self.proto, self.sport, t << 8 | (self.dport & 0xFF))
        return CtTuple(self.dst, self.src, self.proto, self.dport, self.sport)

    def describe(self) -> str:
        """Open vSwitch's dump-conntrack form of a tuple (inside orig=(...))."""
        ip = ipaddress.ip_address
        s = f"src={ip(self.src)},dst={ip(self.dst)}"
        if self.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            return f"{s},id={self.sport},type={self.dport >> 8},code={self.dport & 0xFF}"
        if self.proto in (IPPROTO_TCP, IPPROTO_UDP, 132):
            return f"{s},sport={self.sport},dport={self.dport}"
        return s


@dataclass(frozen=True, slots=True)
class NatSpec:
    """nat(src=...) / nat(dst=...): translate to an address in [addr_min, addr_max]
    and, if given, a port in [port_min, port_max]. ``kind`` None (a bare ``nat``) only
    applies the translation a committed connection already has. ``nat(src)`` with no
    address is Open vSwitch's "zero SNAT" (datapath capability ct_zero_snat, which OVN
    uses on every commit): the source stays as it is unless that reply tuple is taken in
    the zone, then the source port moves to a free one."""

    kind: Literal["src", "dst"] | None = None
    addr_min: bytes = b""
    addr_max: bytes = b""
    port_min: int = 0
    port_max: int = 0
    persistent: bool = False
    random: bool = False

    def __post_init__(self) -> None:
        if self.kind == "dst" and not self.addr_min:
            raise ValueError("nat(dst) needs an address")
        if self.addr_max and len(self.addr_max) != len(self.addr_min):
            raise ValueError("nat address range mixes IPv4 and IPv6")
        if self.addr_max and int.from_bytes(self.addr_max, "big") < int.from_bytes(
            self.addr_min, "big"
        ):
            raise ValueError("nat address range is empty")
        if self.port_max and self.port_max < self.port_min:
            raise ValueError("nat port range is empty")


@dataclass(slots=True)
class _Peer:
    """One side of a TCP connection, as the tracker sees it."""

    state: int = TCPS_CLOSED
    end: int = 0  # highest sequence number sent + length (mod 2**32)
    maxend: int = 0  # highest sequence number the other side allows
    maxwin: int = 0  # largest (scaled) window this side advertised, at least 1
    wscale: int = 0  # window scale this side announced (14 max); -1: none
    seen: bool = False  # sent anything yet


@dataclass(slots=True)
class Conn:
    zone: int
    orig: CtTuple
    reply: CtTuple  # what the reply looks like (after NAT)
    expiration: float
    nat: int = 0  # CS_SNAT | CS_DNAT the connection applies
    mark: int = 0
    label: int = 0
    seen_reply: bool = False
    state: str = "first"  # UDP/ICMP/other: first | multiple | bidir
    peers: tuple[_Peer, _Peer] | None = None  # TCP: (original side, reply side)
    liberal: bool = False  # TCP picked up mid-stream: windows not checked

    def tcp_state_text(self, verbose: bool = False) -> str:
        """protoinfo as dump-conntrack prints it: the further of the two sides' states,
        or (verbose) both, with the (always zero) flags."""
        assert self.peers is not None
        a, b = (p.state for p in self.peers)
        if not verbose:
            # Open vSwitch coalesces two states in the short form (ct-dpif.c, to match
            # the kernel tracker's view): FIN_WAIT_2 prints TIME_WAIT, SYN_RECV ESTABLISHED.
            s = max(a, b)
            return f"state={TCP_STATES[_COALESCE.get(s, s)]}"
        # The window scale each side's SYN announced, and the flag saying it did (Open
        # vSwitch's userspace tracker sets no other flag); when only one side offered
        # it this tracker has forgotten both (neither scales), as shown here.
        wa, wb = (max(p.wscale, 0) for p in self.peers)
        fa, fb = ("WINDOW_SCALE" if p.wscale >= 0 and p.seen else "0" for p in self.peers)
        ws = f",wscale_orig={wa},wscale_reply={wb}" if wa or wb else ""
        return f"state_orig={TCP_STATES[a]},state_reply={TCP_STATES[b]}{ws},flags_orig={fa},flags_reply={fb}"

    def describe(self, now: float, verbose: bool = False, stats: bool = False) -> str:
        """One line of ``ovs-appctl dpctl/dump-conntrack`` (``-m``: verbose, ``-s``:
        stats), in Open vSwitch's field order."""
        name = _PROTO_NAMES.get(self.orig.proto, str(self.orig.proto))  # v4 and v6 alike
        parts = [name, f"orig=({self.orig.describe()})", f"reply=({self.reply.describe()})"]
        if verbose:
            parts.append("id=0")
        if self.zone:
            parts.append(f"zone={self.zone}")
        if verbose:
            parts.append("status=0")
        if stats:
            parts.append(f"timeout={max(0, int(self.expiration - now))}")
        if self.mark:
            parts.append(f"mark={self.mark}")
        if self.label:
            parts.append(f"labels={self.label:#x}")
        if self.peers is not None:
            parts.append(f"protoinfo=({self.tcp_state_text(verbose)})")
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class ConnRecord:
    """A connection as plain values, for state snapshots (see ``export_records``).
    ``tcp`` holds (state, end, maxend, maxwin, wscale, seen) per side; ``timeout`` the
    seconds left before it expires."""

    zone: int
    orig: tuple[bytes, bytes, int, int, int]
    reply: tuple[bytes, bytes, int, int, int]
    timeout: float
    nat: int
    mark: int
    label: int
    seen_reply: bool
    state: str
    tcp: tuple[tuple[int, int, int, int, int, bool], ...] = ()
    liberal: bool = False


@dataclass(frozen=True, slots=True)
class CtResult:
    """What a ct action leaves on the packet."""

    state: int
    zone: int
    mark: int = 0
    label: int = 0
    orig: CtTuple | None = None
    packet: bytes = b""


@dataclass(slots=True)
class _Pkt:
    """What the tracker reads from a packet."""

    tuple: CtTuple
    l3: int
    l4: int
    v6: bool
    flags: int = 0
    seq: int = 0
    ack: int = 0
    win: int = 0
    datalen: int = 0
    wscale: int = -1  # the SYN's window scale option, -1 if absent
    inner: CtTuple | None = None  # ICMP error: the offending packet's tuple
    invalid: bool = False


_SEQ = struct.Struct("!IIBBH")


def _before(a: int, b: int) -> bool:
    """a < b in sequence space."""
    return ((a - b) & 0xFFFFFFFF) >= 0x80000000


def _after(a: int, b: int) -> bool:
    return _before(b, a)


def _tcp_wscale(packet: bytes, l4: int, hlen: int) -> int:
    off, end = l4 + 20, min(l4 + hlen, len(packet))
    while off < end:
        kind = packet[off]
        if kind == 0:
            break
        if kind == 1:
            off += 1
            continue
        if off + 1 >= end or packet[off + 1] < 2:
            break
        if kind == 3 and packet[off + 1] == 3 and off + 2 < end:
            return min(packet[off + 2], 14)
        off += packet[off + 1]
    return -1


def _l4_tuple(
    packet: bytes, src: bytes, dst: bytes, proto: int, l4: int, end: int, v6: bool
) -> _Pkt | None:
    """The tuple of an IP packet whose L4 header starts at l4 (None: not trackable)."""
    if proto in (IPPROTO_TCP, IPPROTO_UDP, 132):
        need = 20 if proto == IPPROTO_TCP else 8
        if end < l4 + need:
            return None
        sport, dport = packet[l4] << 8 | packet[l4 + 1], packet[l4 + 2] << 8 | packet[l4 + 3]
        return _Pkt(CtTuple(src, dst, proto, sport, dport), 0, l4, v6)
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if end < l4 + 8:
            return None
        t, c = packet[l4], packet[l4 + 1]
        ident = packet[l4 + 4] << 8 | packet[l4 + 5]
        pairs = _ICMP6_REV if proto == IPPROTO_ICMPV6 else _ICMP4_REV
        return _Pkt(CtTuple(src, dst, proto, ident if t in pairs else 0, t << 8 | c), 0, l4, v6)
    return _Pkt(CtTuple(src, dst, proto, 0, 0), 0, l4, v6)


def _ip_tuple(packet: bytes, l3: int, inner: bool = False) -> _Pkt | None:
    """Parse an IPv4/IPv6 header at l3 (an ICMP error's inner header when ``inner``)."""
    n = len(packet)
    if n < l3 + 1:
        return None
    version = packet[l3] >> 4
    if version == 4:
        ihl = (packet[l3] & 0x0F) * 4
        if ihl < 20 or n < l3 + ihl:
            return None
        frag = (packet[l3 + 6] << 8 | packet[l3 + 7]) & 0x3FFF
        total = packet[l3 + 2] << 8 | packet[l3 + 3]
        end = n if inner else min(n, l3 + total)
        if not inner and (total < ihl or frag):
            p = _l4_tuple(
                packet, packet[l3 + 12 : l3 + 16], packet[l3 + 16 : l3 + 20], 0, 0, 0, False
            )
            assert p is not None
            p.invalid = True
            return p
        p = _l4_tuple(
            packet,
            packet[l3 + 12 : l3 + 16],
            packet[l3 + 16 : l3 + 20],
            packet[l3 + 9],
            l3 + ihl,
            end,
            False,
        )
    elif version == 6:
        if n < l3 + 40:
            return None
        nxt, l4, later = ops.ipv6_l4(packet, l3)
        end = n if inner else min(n, l3 + 40 + (packet[l3 + 4] << 8 | packet[l3 + 5]))
        p = _l4_tuple(
            packet, packet[l3 + 8 : l3 + 24], packet[l3 + 24 : l3 + 40], nxt, l4, end, True
        )
        if p is not None and later:
            p.invalid = True
    else:
        return None
    if p is not None:
        p.l3 = l3
    return p


def parse_tuple(packet: bytes) -> _Pkt | None:
    """The trackable view of an Ethernet frame (None: not IPv4/IPv6)."""
    eth_type, l3 = ops.l3_offset(packet)
    if eth_type not in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
        return None
    p = _ip_tuple(packet, l3)
    if p is None:
        return None
    t = p.tuple
    if p.invalid:
        return p
    if t.proto == IPPROTO_TCP:
        l4 = p.l4
        seq, ack, off, flags, win = _SEQ.unpack_from(packet, l4 + 4)
        hlen = (off >> 4) * 4
        if hlen < 20 or len(packet) < l4 + hlen:
            p.invalid = True
            return p
        if p.v6:
            end = l3 + 40 + (packet[l3 + 4] << 8 | packet[l3 + 5])
        else:
            end = l3 + (packet[l3 + 2] << 8 | packet[l3 + 3])
        p.seq, p.ack, p.flags, p.win = seq, ack, flags | (off & 1) << 8, win
        p.datalen = max(0, min(end, len(packet)) - l4 - hlen)
        if flags & TH_SYN:
            p.wscale = _tcp_wscale(packet, l4, hlen)
    elif t.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        errors = _ICMP6_ERRORS if t.proto == IPPROTO_ICMPV6 else _ICMP4_ERRORS
        if t.dport >> 8 in errors:
            inner = _ip_tuple(packet, p.l4 + 8, inner=True)
            if inner is None or inner.invalid or inner.tuple.v6 != t.v6:
                p.invalid = True
            else:
                p.inner = inner.tuple
    return p


def _tuple_json(t: tuple[bytes, bytes, int, int, int]) -> list[Any]:
    return [t[0].hex(), t[1].hex(), t[2], t[3], t[4]]


def _tuple_from(x: list[Any]) -> tuple[bytes, bytes, int, int, int]:
    return (bytes.fromhex(x[0]), bytes.fromhex(x[1]), int(x[2]), int(x[3]), int(x[4]))


def record_to_json(r: ConnRecord) -> list[Any]:
    """A ConnRecord as a JSON/msgpack-safe list (128-bit label as hex)."""
    return [
        r.zone,
        _tuple_json(r.orig),
        _tuple_json(r.reply),
        r.timeout,
        r.nat,
        r.mark,
        f"{r.label:x}",
        r.seen_reply,
        r.state,
        [list(p) for p in r.tcp],
        r.liberal,
    ]


def record_from_json(x: list[Any]) -> ConnRecord:
    zone, orig, reply, timeout, nat, mark, label, seen, state, tcp, liberal = x
    return ConnRecord(
        int(zone),
        _tuple_from(orig),
        _tuple_from(reply),
        float(timeout),
        int(nat),
        int(mark),
        int(label, 16),
        bool(seen),
        str(state),
        tuple((int(a), int(b), int(c), int(d), int(e), bool(f)) for a, b, c, d, e, f in tcp),
        bool(liberal),
    )


def _tcp_invalid_flags(flags: int) -> bool:
    f = flags & 0x3F
    if f & TH_SYN and f & (TH_RST | TH_FIN):
        return True
    if f & TH_RST and f & TH_FIN:
        return True
    if not f & TH_ACK and f & ~TH_SYN & ~TH_RST & 0x3F:  # FIN/PSH/URG need ACK
        return True
    return f == 0


def _nat_icmp_error(packet: bytes, p: _Pkt, conn: Conn, reply: bool) -> bytes:
    """Rewrite an ICMP error about a NATed connection the way the packet it quotes was
    translated: the quoted header shows the tuple its sender knows (orig for an error
    going back to the originator, reply the other way), and the outer addresses that
    are the translated side's become the other side's. Checksums are fixed: the
    quoted IPv4 header's, the quoted TCP/UDP checksum incrementally (if quoted), the
    ICMP checksum recomputed."""
    assert p.inner is not None
    inner_want = conn.orig if reply else conn.reply  # quoted packet as its sender sent it
    other = conn.reply if reply else conn.orig  # the direction the error travels
    v6 = p.v6
    buf = bytearray(packet)
    il3 = p.l4 + 8
    alen = 16 if v6 else 4
    isrc, idst = (il3 + 8, il3 + 24) if v6 else (il3 + 12, il3 + 16)
    if v6:
        _, il4, _ = ops.ipv6_l4(bytes(buf), il3)
    else:
        il4 = il3 + (buf[il3] & 0x0F) * 4
    old_l4 = bytes(buf[il4 : il4 + 4])
    old_addrs = bytes(buf[isrc : isrc + alen]) + bytes(buf[idst : idst + alen])
    buf[isrc : isrc + alen] = inner_want.src
    buf[idst : idst + alen] = inner_want.dst
    proto = inner_want.proto
    if proto in (IPPROTO_TCP, IPPROTO_UDP, 132) and len(buf) >= il4 + 4:
        buf[il4 : il4 + 4] = struct.pack("!HH", inner_want.sport, inner_want.dport)
        co = il4 + (16 if proto == IPPROTO_TCP else 6)
        if (
            proto != 132
            and len(buf) >= co + 2
            and (proto == IPPROTO_TCP or buf[co : co + 2] != b"\0\0")
        ):
            old = old_addrs + old_l4
            new = (
                bytes(buf[isrc : isrc + alen])
                + bytes(buf[idst : idst + alen])
                + bytes(buf[il4 : il4 + 4])
            )
            c = ops.csum_adjust(int.from_bytes(buf[co : co + 2], "big"), old, new)
            buf[co : co + 2] = c.to_bytes(2, "big")
    if not v6:  # the quoted IPv4 header's own checksum
        ihl = (buf[il3] & 0x0F) * 4
        buf[il3 + 10 : il3 + 12] = b"\0\0"
        buf[il3 + 10 : il3 + 12] = ops.checksum(bytes(buf[il3 : il3 + ihl])).to_bytes(2, "big")
    out = bytes(buf)
    # Outer addresses: the translated side's become what the other side knows.
    a_src, a_dst = ("ipv6_src", "ipv6_dst") if v6 else ("ipv4_src", "ipv4_dst")
    osrc, odst = p.tuple.src, p.tuple.dst
    if odst == other.dst and other.dst != inner_want.src:
        out = ops.set_field(out, a_dst, inner_want.src)
    if osrc == other.src and other.src != inner_want.dst:
        out = ops.set_field(out, a_src, inner_want.dst)
    # The ICMP checksum over the message (ICMPv6: with the pseudo-header), from scratch.
    l3, l4 = p.l3, p.l4
    if v6:
        end = l3 + 40 + (out[l3 + 4] << 8 | out[l3 + 5])
    else:
        end = l3 + (out[l3 + 2] << 8 | out[l3 + 3])
    msg = bytearray(out[l4:end])
    msg[2:4] = b"\0\0"
    pseudo = b""
    if v6:
        pseudo = out[l3 + 8 : l3 + 40] + struct.pack("!IxxxB", len(msg), IPPROTO_ICMPV6)
    msg[2:4] = ops.checksum(pseudo + bytes(msg)).to_bytes(2, "big")
    return out[:l4] + bytes(msg) + out[end:]


class Conntrack:
    """The connection table of one datapath (all zones)."""

    def __init__(self, timeouts: dict[str, float] | None = None) -> None:
        self.timeouts = dict(DEFAULT_TIMEOUTS)
        if timeouts:
            unknown = set(timeouts) - set(DEFAULT_TIMEOUTS)
            if unknown:
                raise ValueError(f"unknown conntrack timeout {sorted(unknown)[0]}")
            self.timeouts.update(timeouts)
        self._table: dict[tuple[int, CtTuple], Conn] = {}  # both directions
        self._conns: dict[tuple[int, CtTuple], Conn] = {}  # by (zone, orig)
        self._zone_count: dict[int, int] = {}
        self.limits: dict[int | None, int] = {}  # zone -> limit (None: default; 0: none)
        self.max_conns = DEFAULT_MAX_CONNS  # the whole table (dpctl/ct-set-maxconns)
        self.changed: set[tuple[int, CtTuple]] | None = None
        self._sweep: list[tuple[int, CtTuple]] | None = None
        self.n_created = 0
        self.n_limited = 0
        self.n_invalid = 0

    # Table -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Conn]:
        return iter(list(self._conns.values()))

    def zone_count(self, zone: int) -> int:
        return self._zone_count.get(zone, 0)

    def set_limit(self, zone: int | None, limit: int) -> None:
        """Connections zone ``zone`` may hold (0: unlimited); zone None: the default."""
        if limit < 0:
            raise ValueError("a zone limit is a count of connections (0: unlimited)")
        if not 0 <= (zone or 0) <= 0xFFFF:
            raise ValueError(f"zone {zone} is not a 16-bit zone number")
        self.limits[zone] = limit

    def del_limit(self, zone: int) -> None:
        self.limits.pop(zone, None)

    def limit_of(self, zone: int) -> int:
        return self.limits.get(zone, self.limits.get(None, 0))

    def _touch(self, conn: Conn) -> None:
        if self.changed is not None:
            self.changed.add((conn.zone, conn.orig))

    def _insert(self, conn: Conn) -> None:
        self._table[(conn.zone, conn.orig)] = conn
        self._table[(conn.zone, conn.reply)] = conn
        self._conns[(conn.zone, conn.orig)] = conn
        self._zone_count[conn.zone] = self._zone_count.get(conn.zone, 0) + 1
        self._touch(conn)

    def _remove(self, conn: Conn) -> None:
        if self._conns.pop((conn.zone, conn.orig), None) is None:
            return
        self._table.pop((conn.zone, conn.orig), None)
        self._table.pop((conn.zone, conn.reply), None)
        left = self._zone_count.get(conn.zone, 1) - 1
        if left:
            self._zone_count[conn.zone] = left
        else:
            self._zone_count.pop(conn.zone, None)
        self._touch(conn)

    def lookup(self, zone: int, t: CtTuple, now: float) -> Conn | None:
        conn = self._table.get((zone, t))
        if conn is not None and conn.expiration <= now:
            self._remove(conn)
            return None
        return conn

    def stats(self, zone: int | None = None) -> dict[str, int]:
        """Connections per protocol ("TCP", "UDP", "SCTP", "ICMP", "ICMP6", "OTHER") and
        per TCP state ("tcp:ESTABLISHED"...), for ct-stats-show."""
        out: dict[str, int] = {}
        for c in self._conns.values():
            if zone is not None and c.zone != zone:
                continue
            name = _STAT_NAMES.get(c.orig.proto, "OTHER")
            out[name] = out.get(name, 0) + 1
            if c.peers is not None:  # coalesced as in the short dump (Open vSwitch does)
                s = max(p.state for p in c.peers)
                st = "tcp:" + TCP_STATES[_COALESCE.get(s, s)]
                out[st] = out.get(st, 0) + 1
        return out

    def sweep(self, now: float, budget: int = 256) -> int:
        """Expire up to ``budget`` connections' worth of the table (a slice per call, so
        a big table never stalls the forwarding loop); returns how many were removed."""
        if self._sweep is None or not self._sweep:
            self._sweep = list(self._conns)
        removed = 0
        for _ in range(min(budget, len(self._sweep))):
            c = self._conns.get(self._sweep.pop())
            if c is not None and c.expiration <= now:
                self._remove(c)
                removed += 1
        return removed

    def expire(self, now: float) -> int:
        """Remove connections whose timeout passed; returns how many."""
        dead = [c for c in self._conns.values() if c.expiration <= now]
        for c in dead:
            self._remove(c)
        return len(dead)

    def flush(
        self,
        zone: int | None = None,
        orig: CtTuple | None = None,
        where: Callable[[Conn], bool] | None = None,
    ) -> int:
        """Remove every connection (of ``zone``; the one whose original tuple is
        ``orig``; those ``where`` accepts); returns how many."""
        dead = [
            c
            for c in self._conns.values()
            if (zone is None or c.zone == zone)
            and (orig is None or c.orig == orig)
            and (where is None or where(c))
        ]
        for c in dead:
            self._remove(c)
        return len(dead)

    # The ct action ---------------------------------------------------------------
    def execute(
        self,
        packet: bytes,
        now: float,
        *,
        zone: int = 0,
        commit: bool = False,
        force: bool = False,
        nat: NatSpec | None = None,
        mark: tuple[int, int] | None = None,
        label: tuple[int, int] | None = None,
        natted: bool = False,
    ) -> CtResult:
        """Track one packet in ``zone``. ``commit`` creates (``force``: recreates, if the
        packet is a reply) its connection and applies ``mark``/``label`` (value, mask);
        ``nat`` rewrites the packet by the connection's translation (a ``kind`` also sets
        the translation of a connection this call creates).

        ``natted``: an earlier ct action of this zone already translated the packet (its
        ct_state has snat/dnat in this zone): its connection is found by the reverse of
        its tuple, which is the other direction's translated tuple, and it is not
        translated again (as Open vSwitch's conntrack does: a router that DNATs and then
        commits for SNAT in the same zone gets one connection, not two)."""
        p = parse_tuple(packet)
        if p is None:
            return CtResult(CS_TRK | CS_INV, zone, packet=packet)
        if p.invalid:
            self.n_invalid += 1
            return CtResult(CS_TRK | CS_INV, zone, packet=packet)
        t = p.tuple
        if p.inner is not None:
            return self._related(packet, p, zone, nat, now)
        conn = None
        reply = False
        if natted:
            rt = t.reverse()
            conn = self.lookup(zone, rt, now)
            if conn is not None:
                reply = not (rt == conn.reply and rt != conn.orig)
            else:
                natted = False  # gone since (or never committed): track it as it is
        if conn is None:
            conn = self.lookup(zone, t, now)
            reply = conn is not None and t == conn.reply and t != conn.orig
        if conn is not None and force and commit and reply:
            self._remove(conn)
            conn = None
        state = 0
        if conn is not None:
            verdict = self._update(conn, p, reply, now)
            # Its timeout moved, and a TCP connection's window state with it: the freeze
            # of a handoff carries it again (a pre-copied window goes stale in a second
            # of a fast stream, and the new process then finds its packets invalid).
            # Inline: this is the per-packet path, and nothing records outside a handoff.
            if self.changed is not None:
                self.changed.add((conn.zone, conn.orig))
            if verdict == "restart":
                self._remove(conn)
                conn = None
            elif verdict == "invalid":
                self.n_invalid += 1
                return CtResult(CS_TRK | CS_INV, zone, conn.mark, conn.label, conn.orig, packet)
            else:
                if reply:
                    state |= CS_RPL
                    if not conn.seen_reply:
                        conn.seen_reply = True
                state |= CS_EST if conn.seen_reply else CS_NEW
        if conn is None:
            if (t.proto == IPPROTO_TCP and not self._tcp_valid_new(p)) or (
                t.proto in _ICMP_NEW and t.dport >> 8 not in _ICMP_NEW[t.proto]
            ):
                self.n_invalid += 1
                return CtResult(CS_TRK | CS_INV, zone, packet=packet)
            state = CS_NEW
            if commit:
                conn = self._create(p, zone, nat, now)
            if conn is None:
                return CtResult(CS_TRK | CS_NEW, zone, orig=t, packet=packet)
        if commit:
            changed = False
            if mark is not None:
                v = (conn.mark & ~mark[1]) | (mark[0] & mark[1])
                changed |= v != conn.mark
                conn.mark = v
            if label is not None:
                v = (conn.label & ~label[1]) | (label[0] & label[1])
                changed |= v != conn.label
                conn.label = v
            if changed:
                self._touch(conn)
        if nat is not None and conn.nat:
            if not natted:
                packet = self._translate(packet, p, conn, state & CS_RPL != 0)
            state |= conn.nat
        return CtResult(state | CS_TRK, zone, conn.mark, conn.label, conn.orig, packet)

    # Creation and NAT ----------------------------------------------------------------
    @staticmethod
    def _tcp_valid_new(p: _Pkt) -> bool:
        f = p.flags
        if _tcp_invalid_flags(f):
            return False
        # A connection starts with a SYN, or is picked up mid-stream; a SYN+ACK or a
        # RST never creates one.
        return not (f & TH_SYN and f & TH_ACK) and not f & TH_RST

    def _create(self, p: _Pkt, zone: int, nat: NatSpec | None, now: float) -> Conn | None:
        limit = self.limit_of(zone)
        if (limit and self._zone_count.get(zone, 0) >= limit) or len(self._conns) >= self.max_conns:
            self.n_limited += 1
            return None
        t = p.tuple
        reply = t.reverse()
        nat_bits = 0
        if nat is not None and nat.kind == "src" and not nat.addr_min:
            nat = replace(nat, addr_min=t.src, addr_max=b"")  # zero SNAT: keep the address
        if nat is not None and nat.kind is not None:
            if len(nat.addr_min) != len(t.src):
                return None  # an IPv4 range for an IPv6 packet: nothing to translate to
            chosen = self._nat_reply(zone, t, nat)
            if chosen is None:
                return None  # the range is exhausted
            reply = chosen
            nat_bits = CS_SNAT if nat.kind == "src" else CS_DNAT
        elif (zone, reply) in self._table:
            return None  # our reply tuple is someone else's: cannot track both
        conn = Conn(zone, t, reply, now, nat_bits)
        if t.proto == IPPROTO_TCP:
            conn.peers = (_Peer(), _Peer())
            self._update_tcp(conn, p, False, now)
        else:
            icmp = t.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6)
            conn.expiration = now + self.timeouts["icmp_first" if icmp else "udp_first"]
        self._insert(conn)
        self.n_created += 1
        return conn

    def _nat_reply(self, zone: int, t: CtTuple, nat: NatSpec) -> CtTuple | None:
        """The reply tuple of a new connection translated by ``nat``: a free one."""
        lo = int.from_bytes(nat.addr_min, "big")
        hi = int.from_bytes(nat.addr_max, "big") if nat.addr_max else lo
        size = len(t.src)
        # The address: a hash of the tuple spreads connections over the range
        # (persistent: of the addresses only, so a client keeps its address).
        seed = t.src + t.dst if nat.persistent else t.src + t.dst + t.sport.to_bytes(2, "big")
        start = zlib.crc32(seed) % (hi - lo + 1)
        has_ports = t.proto in (IPPROTO_TCP, IPPROTO_UDP, 132)
        orig_port = t.sport if nat.kind == "src" else t.dport
        if has_ports and nat.port_min:
            pmin, pmax = nat.port_min, nat.port_max or nat.port_min
        elif has_ports and nat.kind == "src":
            # No range given: keep the port if free, else any in its class (as OVS).
            pmin, pmax = (1024, 65535) if orig_port >= 1024 else (1, 1023)
        else:
            pmin = pmax = orig_port
        n_ports = pmax - pmin + 1
        first_port = orig_port if pmin <= orig_port <= pmax else pmin
        if nat.random:
            first_port = pmin + zlib.crc32(t.src + t.dst + bytes(4)) % n_ports
        for i in range(min(hi - lo + 1, 256)):
            addr = (lo + (start + i) % (hi - lo + 1)).to_bytes(size, "big")
            for j in range(min(n_ports, 65536)):
                port = pmin + (first_port - pmin + j) % n_ports
                if nat.kind == "src":
                    r = CtTuple(t.dst, addr, t.proto, t.dport, port if has_ports else t.sport)
                else:
                    r = CtTuple(addr, t.src, t.proto, port if has_ports else t.dport, t.sport)
                if t.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
                    rv = t.reverse()
                    r = rv._replace(dst=addr) if nat.kind == "src" else rv._replace(src=addr)
                if (zone, r) not in self._table:
                    return r
                if not has_ports:
                    break
        return None

    @staticmethod
    def _translate(packet: bytes, p: _Pkt, conn: Conn, reply: bool) -> bytes:
        """Rewrite the packet to the reverse of the other direction's tuple."""
        want = conn.orig.reverse() if reply else conn.reply.reverse()
        have = p.tuple
        a_src, a_dst = ("ipv6_src", "ipv6_dst") if have.v6 else ("ipv4_src", "ipv4_dst")
        if want.src != have.src:
            packet = ops.set_field(packet, a_src, want.src)
        if want.dst != have.dst:
            packet = ops.set_field(packet, a_dst, want.dst)
        if have.proto in (IPPROTO_TCP, IPPROTO_UDP, 132):
            if want.sport != have.sport:
                packet = ops.set_field(packet, "tp_src", want.sport.to_bytes(2, "big"))
            if want.dport != have.dport:
                packet = ops.set_field(packet, "tp_dst", want.dport.to_bytes(2, "big"))
        return packet

    def _related(
        self, packet: bytes, p: _Pkt, zone: int, nat: NatSpec | None, now: float
    ) -> CtResult:
        """An ICMP error: +rel if the packet it quotes belongs to a connection. The
        quoted packet is as it was when the error was made: before or after NAT, in
        either direction; the error travels the other way."""
        assert p.inner is not None
        quoted = p.inner
        conn = self.lookup(zone, quoted, now)
        if conn is not None:
            seen_as = conn.orig if quoted == conn.orig else conn.reply
        else:
            conn = self.lookup(zone, quoted.reverse(), now)
            if conn is None:
                return CtResult(CS_TRK | CS_NEW, zone, orig=p.tuple, packet=packet)
            # quoted is the reverse of one direction's tuple: the packet as it left NAT.
            seen_as = conn.reply if quoted.reverse() == conn.orig else conn.orig
        # seen_as: the direction the quoted packet belongs to (orig: the error is a reply).
        reply = seen_as is conn.orig
        state = CS_TRK | CS_REL | (CS_RPL if reply else 0)
        if nat is not None and conn.nat:
            packet = _nat_icmp_error(packet, p, conn, reply)
            state |= conn.nat
        return CtResult(state, zone, conn.mark, conn.label, conn.orig, packet)

    # Protocol state ------------------------------------------------------------------
    def _update(self, conn: Conn, p: _Pkt, reply: bool, now: float) -> str:
        """Advance the connection's state by a packet: 'ok', 'invalid' or 'restart'."""
        if conn.peers is None:
            return self._update_other(conn, reply, now)
        return self._update_tcp(conn, p, reply, now)

    def _update_other(self, conn: Conn, reply: bool, now: float) -> str:
        icmp = conn.orig.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6)
        if reply:
            conn.state = "bidir"
        elif conn.state == "first":
            conn.state = "multiple"
        if icmp:
            key = "icmp_reply" if conn.state == "bidir" else "icmp_first"
        else:
            key = {"first": "udp_first", "multiple": "udp_single", "bidir": "udp_multiple"}[
                conn.state
            ]
        conn.expiration = now + self.timeouts[key]
        return "ok"

    def _update_tcp(self, conn: Conn, p: _Pkt, reply: bool, now: float) -> str:
        assert conn.peers is not None
        src, dst = (conn.peers[1], conn.peers[0]) if reply else conn.peers
        f = p.flags
        if _tcp_invalid_flags(f):
            return "invalid"
        if (
            f & TH_SYN
            and not f & TH_ACK
            and src.state >= TCPS_FIN_WAIT_2
            and dst.state >= TCPS_FIN_WAIT_2
        ):
            return "restart"  # the 4-tuple is being reused by a new connection
        win = p.win
        seq = p.seq
        end = (seq + p.datalen + (1 if f & TH_SYN else 0) + (1 if f & TH_FIN else 0)) & _M32
        ack = p.ack if f & TH_ACK else dst.end
        if not src.seen:
            # This side's first segment sets up its window from what it says.
            src.seen = True
            if f & TH_SYN:
                src.wscale = p.wscale
                if f & TH_ACK and (src.wscale < 0 or dst.wscale < 0):
                    src.wscale = dst.wscale = -1  # scaling needs both SYNs to offer it
                src.end = src.maxend = end
                src.maxwin = max(win, 1)
            else:
                # Picked up mid-stream (or the peer's first word is not a SYN): the
                # history is lost, so believe the segment and stop checking windows.
                src.wscale = -1
                src.end = end
                src.maxwin = max(win, 1)
                src.maxend = (end + src.maxwin) & _M32
                if not dst.seen and f & TH_ACK:
                    dst.end = dst.maxend = p.ack
                conn.liberal = True
                if src.state < TCPS_ESTABLISHED:
                    src.state = TCPS_ESTABLISHED
                if dst.state < TCPS_ESTABLISHED and f & TH_ACK:
                    dst.state = TCPS_ESTABLISHED
        elif not conn.liberal:
            if seq == end:
                # No data, SYN or FIN: nothing to place in the window (Open vSwitch's
                # userspace tracker eases these too; the kernel would check seq).
                seq = end = src.end
            # The kernel's four checks: the segment fits the window the receiver
            # advertised, and it acknowledges only what the receiver sent.
            maxack = max(dst.maxwin, _MAX_ACK_WINDOW)
            if (
                _after(seq, src.maxend)
                or _before(end, (src.end - dst.maxwin) & _M32)
                or _after(ack, dst.end)
                or _before(ack, (dst.end - maxack) & _M32)
            ):
                return "invalid"
        scale = src.wscale if src.wscale >= 0 and dst.wscale >= 0 else 0
        swin = win if f & TH_SYN else win << scale
        if src.maxwin < swin:
            src.maxwin = swin
        if _after(end, src.end):
            src.end = end
        if f & TH_ACK:
            m = (ack + max(swin, 1)) & _M32
            if _after(m, dst.maxend):
                dst.maxend = m
        # Per-side states (Open vSwitch's CT_DPIF_TCPS_* progression).
        if f & TH_SYN and src.state < TCPS_SYN_SENT:
            src.state = TCPS_SYN_SENT
        if f & TH_FIN and src.state < TCPS_CLOSING:
            src.state = TCPS_CLOSING
        if f & TH_ACK:
            if dst.state == TCPS_SYN_SENT:
                dst.state = TCPS_ESTABLISHED
            elif dst.state == TCPS_CLOSING and not _before(p.ack, dst.end):
                dst.state = TCPS_FIN_WAIT_2
        if f & TH_RST:
            src.state = dst.state = TCPS_TIME_WAIT
        # The timeout follows the pair of states.
        if src.state >= TCPS_FIN_WAIT_2 and dst.state >= TCPS_FIN_WAIT_2:
            key = "tcp_close" if f & TH_RST else "tcp_time_wait"
        elif src.state < TCPS_ESTABLISHED or dst.state < TCPS_ESTABLISHED:
            key = "tcp_syn_sent" if dst.state == TCPS_CLOSED else "tcp_syn_recv"
        elif src.state >= TCPS_CLOSING or dst.state >= TCPS_CLOSING:
            key = "tcp_fin_wait"
        else:
            key = "tcp_established"
        conn.expiration = now + self.timeouts[key]
        return "ok"

    # Handoff -------------------------------------------------------------------------
    def track_changes(self) -> None:
        """Start recording which connections are created, changed or removed."""
        self.changed = set()

    def take_changes(self) -> set[tuple[int, CtTuple]]:
        """(zone, original tuple) of every connection touched since ``track_changes``
        (look each up in ``get``: absent means removed); stops recording."""
        out = self.changed or set()
        self.changed = None
        return out

    def get(self, zone: int, orig: CtTuple) -> Conn | None:
        return self._conns.get((zone, orig))

    @staticmethod
    def to_record(conn: Conn, now: float) -> ConnRecord:
        o, r = conn.orig, conn.reply
        return ConnRecord(
            conn.zone,
            (o.src, o.dst, o.proto, o.sport, o.dport),
            (r.src, r.dst, r.proto, r.sport, r.dport),
            max(0.0, conn.expiration - now),
            conn.nat,
            conn.mark,
            conn.label,
            conn.seen_reply,
            conn.state,
            tuple((p.state, p.end, p.maxend, p.maxwin, p.wscale, p.seen) for p in conn.peers)
            if conn.peers is not None
            else (),
            conn.liberal,
        )

    def export_records(self, now: float) -> list[ConnRecord]:
        return [self.to_record(c, now) for c in self._conns.values() if c.expiration > now]

    def import_records(self, records: Iterable[ConnRecord], now: float) -> int:
        """Adopt exported connections (replacing any with the same original tuple);
        returns how many. Raises ValueError on a malformed record, adopting nothing."""
        conns = []
        for rec in records:
            try:
                o, r = CtTuple(*rec.orig), CtTuple(*rec.reply)
                if (
                    len(o.src) not in (4, 16)
                    or len({len(o.src), len(o.dst), len(r.src), len(r.dst)}) != 1
                ):
                    raise ValueError("addresses must be 4 or 16 bytes, all alike")
                peers = None
                if rec.tcp:
                    a, b = (_Peer(*x) for x in rec.tcp)
                    peers = (a, b)
                conns.append(
                    Conn(
                        rec.zone,
                        o,
                        r,
                        now + rec.timeout,
                        rec.nat,
                        rec.mark,
                        rec.label,
                        rec.seen_reply,
                        rec.state,
                        peers,
                        rec.liberal,
                    )
                )
            except (TypeError, ValueError) as e:
                raise ValueError(f"bad connection record {rec!r}: {e}") from None
        for c in conns:
            old = self._conns.get((c.zone, c.orig))
            if old is not None:
                self._remove(old)
            self._insert(c)
        return len(conns)

    def export_json(self, now: float) -> dict[str, Any]:
        """The table, its zone limits and counters as JSON-able values (a handoff): each
        connection as ``record_to_json(to_record(conn))`` says, written in one step (the
        handoff moves the table inside the freeze: per connection this is its cost)."""
        conns = []
        for c in self._conns.values():
            if c.expiration <= now:
                continue
            o, r = c.orig, c.reply
            conns.append([
                c.zone,
                [o[0].hex(), o[1].hex(), o[2], o[3], o[4]],
                [r[0].hex(), r[1].hex(), r[2], r[3], r[4]],
                c.expiration - now,
                c.nat,
                c.mark,
                f"{c.label:x}",
                c.seen_reply,
                c.state,
                [[p.state, p.end, p.maxend, p.maxwin, p.wscale, p.seen] for p in c.peers]
                if c.peers is not None else [],
                c.liberal,
            ])  # fmt: skip
        return {
            "conns": conns,
            "limits": [[z, n] for z, n in self.limits.items()],
            "max_conns": self.max_conns,
        }

    def adopt_json(self, data: dict[str, Any], now: float) -> int:
        """Inverse of ``export_json`` (replaces the limits, adds the connections);
        ValueError on malformed input, adopting nothing."""
        conns = []
        fromhex = bytes.fromhex
        try:
            for x in data.get("conns", []):
                zone, o, r, timeout, nat, mark, label, seen, state, tcp, liberal = x
                orig = CtTuple(fromhex(o[0]), fromhex(o[1]), int(o[2]), int(o[3]), int(o[4]))
                reply = CtTuple(fromhex(r[0]), fromhex(r[1]), int(r[2]), int(r[3]), int(r[4]))
                n = len(orig.src)
                if n not in (4, 16) or not n == len(orig.dst) == len(reply.src) == len(reply.dst):
                    raise ValueError("addresses must be 4 or 16 bytes, all alike")
                peers = None
                if tcp:
                    a, b = tcp
                    peers = (
                        _Peer(int(a[0]), int(a[1]), int(a[2]), int(a[3]), int(a[4]), bool(a[5])),
                        _Peer(int(b[0]), int(b[1]), int(b[2]), int(b[3]), int(b[4]), bool(b[5])),
                    )
                conns.append(Conn(int(zone), orig, reply, now + float(timeout), int(nat),
                                  int(mark), int(label, 16), bool(seen), str(state), peers,
                                  bool(liberal)))  # fmt: skip
            limits = {(None if z is None else int(z)): int(n) for z, n in data.get("limits", [])}
            max_conns = int(data.get("max_conns", DEFAULT_MAX_CONNS))
        except (TypeError, ValueError, IndexError) as e:
            raise ValueError(f"bad conntrack state: {e}") from None
        for c in conns:
            old = self._conns.get((c.zone, c.orig))
            if old is not None:
                self._remove(old)
            self._insert(c)
        self.limits = limits
        self.max_conns = max_conns
        return len(conns)

    def remove_record(self, zone: int, orig: CtTuple) -> None:
        conn = self._conns.get((zone, orig))
        if conn is not None:
            self._remove(conn)
