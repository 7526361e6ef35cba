"""A bridge's IPFIX exporter (Bridge.ipfix, RFC 7011), pure: sampled packets in, IPFIX
messages out; the daemon (hitless.daemon.sflow) owns the sockets and the clock.

Sampling is Open vSwitch's bridge-level IPFIX: the datapath samples one packet in
``sampling`` as it enters the bridge (``enable-input-sampling``, flow direction 0) and
one in ``sampling`` before each output to a port (``enable-output-sampling``, direction
1, with the egress interface). Samples are aggregated per flow (direction, ports,
Ethernet addresses and type, IPv4 addresses, protocol, ToS, TTL, transport ports or ICMP
type and code) for ``cache_active_timeout`` seconds (0: sent at the next flush), then
exported as one data record with the delta counts (each sample stands for ``sampling``
packets, as Open vSwitch estimates) and the flow's totals since it was first seen.

Records use the information elements, in the order, Open vSwitch 3.1 sends for a flow
without tunnel (seen in its export; IANA numbers): the observation point, direction,
Ethernet header, ingress interface (ifindex, type, name, description), the egress
interface for an output sample, a tagged frame's VLAN, IPv4 header fields, transport ports or ICMP type/code,
then flow start/end (microseconds before the export time), dropped, delta and total
packet counts, ingress/egress unicast/multicast/broadcast totals, layer 2 octets, the
end reason (2, active timeout) and, for IPv4, IP octets, their sum of squares and the
smallest and largest IP total length. One template per kind of record (L2 only, IPv4,
IPv4 with TCP/UDP ports, IPv4 with ICMP; each without and with the egress interface),
and the same with the 802.1Q VLAN id and priority for a tagged frame; sent in the first
message and every ``TEMPLATE_INTERVAL`` seconds (templates over UDP
must be resent: RFC 7011 8.4). The message header's sequence number counts the data
records sent before it for the observation domain.

One layout description (``_TEMPLATES``: element id and length per field) drives both the
template records and the data records.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hitless.config.model import IpfixConfig

__all__ = ["IPFIX_USERDATA", "IpfixExporter", "IpfixPort", "SampleInfo", "TEMPLATE_INTERVAL"]

# A Sample action's upcall for IPFIX (then: direction, 0 input or 1 output; the output
# port of an output sample, 4 bytes; 1 if the flow drops the packet).
IPFIX_USERDATA = b"hIP\x01"

VERSION = 10
TEMPLATE_SET = 2
VAR = 0xFFFF  # a variable-length field
TEMPLATE_INTERVAL = 600.0  # s
MAX_MESSAGE = 1400  # bytes: one UDP datagram on a 1500-byte path
END_ACTIVE_TIMEOUT = 2  # flowEndReason

# Information elements (IANA "IPFIX Information Elements"), as Open vSwitch orders them.
_COMMON = ((138, 4), (61, 1), (56, 6), (80, 6), (256, 2), (240, 1), (10, 4), (368, 4),
           (82, VAR), (83, VAR))  # fmt: skip
_EGRESS = ((14, 4), (369, 4), (82, VAR), (83, VAR))
_VLAN = ((58, 2), (243, 2), (244, 1))
_IPV4 = ((60, 1), (192, 1), (4, 1), (195, 1), (196, 1), (5, 1), (8, 4), (12, 4))
_PORTS = ((7, 2), (11, 2))
_ICMP = ((176, 1), (177, 1))
_STATS = ((158, 4), (159, 4), (133, 8), (135, 8), (2, 8), (86, 8), (354, 8), (355, 8),
          (356, 8), (357, 8), (358, 8), (19, 8), (174, 8), (352, 8), (353, 8), (136, 1))  # fmt: skip
_IP_STATS = ((132, 8), (134, 8), (1, 8), (85, 8), (198, 8), (199, 8), (25, 8), (26, 8),
             (20, 8), (175, 8))  # fmt: skip

L2, IPV4, IPV4_PORTS, IPV4_ICMP = range(4)
_L3L4: dict[int, tuple[tuple[int, int], ...]] = {
    L2: (),
    IPV4: _IPV4,
    IPV4_PORTS: _IPV4 + _PORTS,
    IPV4_ICMP: _IPV4 + _ICMP,
}


def _template(kind: int, egress: bool, vlan: bool) -> tuple[tuple[int, int], ...]:
    return (_COMMON + (_EGRESS if egress else ()) + (_VLAN if vlan else ()) + _L3L4[kind]
            + _STATS + (_IP_STATS if kind != L2 else ()))  # fmt: skip


def _template_id(kind: int, egress: bool, vlan: bool) -> int:
    return 256 + (vlan * 4 + kind) * 2 + egress


_TEMPLATES: dict[int, tuple[tuple[int, int], ...]] = {
    _template_id(kind, bool(egress), bool(vlan)): _template(kind, bool(egress), bool(vlan))
    for vlan in (0, 1)
    for kind in range(4)
    for egress in (0, 1)
}


@dataclass(frozen=True, slots=True)
class IpfixPort:
    """What a record says of a port: its device's ifindex (0: none) and its name."""

    ifindex: int
    name: str


@dataclass(frozen=True, slots=True)
class SampleInfo:
    """One sampled packet: direction (0 input, 1 output), the input port, the output
    port of an output sample (else 0), and whether the flow drops it."""

    direction: int
    in_port: int
    out_port: int
    dropped: bool = False


def _fields(frame: bytes) -> tuple[int, tuple[Any, ...], int]:
    """(record kind, the IPv4 and transport fields, IP total length or 0) of a frame
    (after its 802.1Q tag, if it has one)."""
    packet = frame[:12] + frame[16:] if frame[12:14] == b"\x81\x00" else frame
    eth_type = int.from_bytes(packet[12:14], "big") if len(packet) >= 14 else 0
    if eth_type != 0x0800 or len(packet) < 34 or packet[14] >> 4 != 4:
        return L2, (), 0
    ihl = (packet[14] & 0x0F) * 4
    tos, total = packet[15], int.from_bytes(packet[16:18], "big")
    ttl, proto = packet[22], packet[23]
    ip = (tos, ttl, proto, packet[26:30], packet[30:34])
    l4 = 14 + ihl
    frag = int.from_bytes(packet[20:22], "big") & 0x1FFF
    if frag == 0 and proto in (6, 17, 132) and len(packet) >= l4 + 4:
        return IPV4_PORTS, (*ip, packet[l4 : l4 + 2], packet[l4 + 2 : l4 + 4]), total
    if frag == 0 and proto == 1 and len(packet) >= l4 + 2:
        return IPV4_ICMP, (*ip, packet[l4], packet[l4 + 1]), total
    return IPV4, ip, total


@dataclass(slots=True)
class _Totals:
    packets: int = 0
    l2_octets: int = 0
    octets: int = 0
    octets_sq: int = 0
    dropped_packets: int = 0
    dropped_octets: int = 0
    mcast_packets: int = 0
    mcast_octets: int = 0
    cast: list[int] = field(default_factory=lambda: [0] * 5)  # 354..358


@dataclass(slots=True)
class _Entry:
    kind: int
    direction: int
    in_port: int
    out_port: int
    src: bytes
    dst: bytes
    eth_type: int
    tci: int | None  # the 802.1Q tag's TCI, if tagged
    l3l4: tuple[Any, ...]
    start: float
    end: float
    first_seen: float  # when this aggregation began (for the active timeout)
    delta: _Totals = field(default_factory=_Totals)
    min_len: int = 0
    max_len: int = 0


def _var(text: str) -> bytes:
    b = text.encode()[:65535]
    return (bytes((len(b),)) if len(b) < 255 else b"\xff" + len(b).to_bytes(2, "big")) + b


@dataclass(slots=True)
class IpfixStats:
    """The exporter's own statistics, as Open vSwitch keeps them for
    ``ovs-ofctl dump-ipfix-bridge`` (NXST_IPFIX_BRIDGE): flows begun in the cache and in
    it now, sampled packets (each once, whatever the sampling rate) by kind, and
    messages sent or not, one per collector."""

    total_flows: int = 0
    current_flows: int = 0
    pkts: int = 0
    ipv4_pkts: int = 0
    ipv6_pkts: int = 0
    error_pkts: int = 0
    ipv4_error_pkts: int = 0
    ipv6_error_pkts: int = 0
    tx_pkts: int = 0
    tx_errors: int = 0

    def encode(self, collector_set_id: int = 0) -> bytes:
        """The body of an nx_ipfix_stats_reply (nicira-ext.h)."""
        return struct.pack(
            "!10QI4x", self.total_flows, self.current_flows, self.pkts, self.ipv4_pkts,
            self.ipv6_pkts, self.error_pkts, self.ipv4_error_pkts, self.ipv6_error_pkts,
            self.tx_pkts, self.tx_errors, collector_set_id,
        )  # fmt: skip


# The transport protocols an IPFIX record has fields for: a sampled IPv4 or IPv6 packet
# of another protocol counts as an error in the exporter's statistics (Open vSwitch).
_KNOWN_L4 = {0x0800: (1, 6, 17, 132), 0x86DD: (6, 17, 58, 132)}


def _sampled_kind(packet: bytes, eth_type: int) -> str:
    """"ipv4" | "ipv6" | "ipv4_error" | "ipv6_error" | "other" (not IP)."""
    known = _KNOWN_L4.get(eth_type)
    if known is None:
        return "other"
    off = 18 if packet[12:14] == b"\x81\x00" else 14
    proto_at = off + (9 if eth_type == 0x0800 else 6)
    proto = packet[proto_at] if len(packet) > proto_at else -1
    v = "ipv4" if eth_type == 0x0800 else "ipv6"
    return v if proto in known else f"{v}_error"


class IpfixExporter:
    """One bridge's exporter: ``sample`` each sampled packet, ``messages`` what is due."""

    def __init__(self, cfg: IpfixConfig) -> None:
        self.cfg = cfg
        self.seq = 0  # data records sent so far (the next message's sequence number)
        self.templates_at: float | None = None  # wall time the templates were last sent
        self._cache: dict[tuple[Any, ...], _Entry] = {}
        self._totals: dict[tuple[Any, ...], _Totals] = {}
        self.n_samples = 0
        self.stats = IpfixStats()

    def statistics(self) -> IpfixStats:
        """The exporter's statistics now (``current_flows``: the flows in the cache)."""
        self.stats.current_flows = len(self._cache)
        return self.stats

    def sent(self, ok: int, failed: int) -> None:
        """Messages the caller sent (per collector) and could not send."""
        self.stats.tx_pkts += ok
        self.stats.tx_errors += failed

    def reconfigure(self, cfg: IpfixConfig) -> None:
        if cfg.obs_domain_id != self.cfg.obs_domain_id:
            self.seq = 0  # another observation domain: its own stream
            self.templates_at = None
        self.cfg = cfg

    def sample(self, info: SampleInfo, packet: bytes, now: float) -> None:
        """Aggregate one sampled packet (``now``: wall-clock seconds)."""
        self.n_samples += 1
        kind, l3l4, ip_len = _fields(packet)
        src, dst = packet[6:12], packet[0:6]
        tci = None
        if packet[12:14] == b"\x81\x00" and len(packet) >= 18:
            tci = int.from_bytes(packet[14:16], "big")
            eth_type = int.from_bytes(packet[16:18], "big")
        else:
            eth_type = int.from_bytes(packet[12:14], "big") if len(packet) >= 14 else 0
        flow = (info.in_port, src, dst, eth_type, tci, l3l4)
        key: tuple[Any, ...] = (info.direction, info.out_port, *flow)
        st = self.stats
        st.pkts += 1
        kind_name = _sampled_kind(packet, eth_type)
        if kind_name != "other":
            setattr(st, f"{kind_name}_pkts", getattr(st, f"{kind_name}_pkts") + 1)
            if kind_name.endswith("_error"):
                st.error_pkts += 1
        limit = self.cfg.cache_max_flows
        if not limit:  # no cache (Open vSwitch's default): every sample is its own record
            key = (*key, self.n_samples)
        e = self._cache.get(key)
        if e is None:
            st.total_flows += 1
            if limit and len(self._cache) >= limit:
                oldest = min(self._cache, key=lambda k: self._cache[k].first_seen)
                self._cache[oldest].first_seen = float("-inf")  # due at the next flush
            e = self._cache[key] = _Entry(kind, info.direction, info.in_port, info.out_port,
                                          src, dst, eth_type, tci, l3l4, now, now, now)  # fmt: skip
            if not limit:
                e.first_seen = float("-inf")  # due at the next flush
        e.end = now
        n = self.cfg.sampling
        frame = len(packet)
        for t in (e.delta, self._totals.setdefault(flow, _Totals())):
            t.packets += n
            t.l2_octets += frame * n
            t.octets += ip_len * n
            t.octets_sq += ip_len * ip_len * n
            if info.dropped:
                t.dropped_packets += n
                t.dropped_octets += ip_len * n
            bcast, mcast = dst == b"\xff" * 6, bool(dst[0] & 1)
            if info.direction == 0:
                t.cast[2 if bcast else 1 if mcast else 0] += n
            elif bcast:
                t.cast[4] += n
            elif mcast:
                t.mcast_packets += n
                t.mcast_octets += ip_len * n
            else:
                t.cast[3] += n
        if ip_len:
            e.min_len = min(e.min_len, ip_len) if e.min_len else ip_len
            e.max_len = max(e.max_len, ip_len)

    def messages(self, now: float, ports: Callable[[int], IpfixPort], flush: bool = False) -> list[bytes]:
        """The IPFIX messages due at wall time ``now``: the templates when due, then a
        record for each flow whose active timeout has passed (all of them with
        ``flush``). ``ports`` names an OpenFlow port."""
        out: list[bytes] = []
        export_time = int(now)
        if self.templates_at is None or now - self.templates_at >= TEMPLATE_INTERVAL:
            self.templates_at = now
            out.append(self._message(export_time, [(TEMPLATE_SET, self._template_records())]))
        timeout = self.cfg.cache_active_timeout
        due = [k for k, e in self._cache.items() if flush or now - e.first_seen >= timeout]
        by_template: dict[int, list[bytes]] = {}
        for k in due:
            e = self._cache.pop(k)
            tid = _template_id(e.kind, e.direction == 1, e.tci is not None)
            by_template.setdefault(tid, []).append(self._record(tid, e, now, ports))
        for tid, records in sorted(by_template.items()):
            chunk: list[bytes] = []
            size = 20
            for r in records:
                if chunk and size + len(r) > MAX_MESSAGE:
                    out.append(self._data_message(export_time, tid, chunk))
                    chunk, size = [], 20
                chunk.append(r)
                size += len(r)
            if chunk:
                out.append(self._data_message(export_time, tid, chunk))
        return out

    def pending(self) -> int:
        return len(self._cache)

    # -- encoding ------------------------------------------------------------------------
    def _template_records(self) -> bytes:
        out = bytearray()
        for tid, fields in _TEMPLATES.items():
            out += struct.pack("!HH", tid, len(fields))
            for ie, length in fields:
                out += struct.pack("!HH", ie, length)
        return bytes(out)

    def _data_message(self, export_time: int, tid: int, records: list[bytes]) -> bytes:
        msg = self._message(export_time, [(tid, b"".join(records))])
        self.seq = (self.seq + len(records)) & 0xFFFFFFFF
        return msg

    def _message(self, export_time: int, sets: list[tuple[int, bytes]]) -> bytes:
        body = b"".join(struct.pack("!HH", sid, 4 + len(data)) + data for sid, data in sets)
        return struct.pack("!HHIII", VERSION, 16 + len(body), export_time, self.seq,
                           self.cfg.obs_domain_id) + body  # fmt: skip

    def _record(self, tid: int, e: _Entry, now: float, ports: Callable[[int], IpfixPort]) -> bytes:
        d = e.delta
        t = self._totals.get((e.in_port, e.src, e.dst, e.eth_type, e.tci, e.l3l4), d)
        inp = ports(e.in_port)
        values: dict[int, Any] = {
            138: self.cfg.obs_point_id, 61: e.direction, 56: e.src, 80: e.dst,
            256: e.eth_type, 240: 14, 10: inp.ifindex, 368: 0,
            158: max(0, int((now - e.start) * 1e6)), 159: max(0, int((now - e.end) * 1e6)),
            133: d.dropped_packets, 135: t.dropped_packets, 2: d.packets, 86: t.packets,
            354: t.cast[0], 355: t.cast[1], 356: t.cast[2], 357: t.cast[3], 358: t.cast[4],
            19: d.mcast_packets, 174: t.mcast_packets, 352: d.l2_octets, 353: t.l2_octets,
            136: END_ACTIVE_TIMEOUT, 132: d.dropped_octets, 134: t.dropped_octets,
            1: d.octets, 85: t.octets, 198: d.octets_sq, 199: t.octets_sq, 25: e.min_len,
            26: e.max_len, 20: d.mcast_octets, 175: t.mcast_octets,
        }  # fmt: skip
        if e.tci is not None:
            values.update({58: e.tci & 0xFFF, 243: e.tci & 0xFFF, 244: e.tci >> 13})
        if e.l3l4:
            tos, ttl, proto, src, dst, *l4 = e.l3l4
            values.update({60: 4, 192: ttl, 4: proto, 195: tos >> 2, 196: tos >> 5, 5: tos,
                           8: src, 12: dst})  # fmt: skip
            if e.kind == IPV4_PORTS:
                values.update({7: l4[0], 11: l4[1]})
            elif e.kind == IPV4_ICMP:
                values.update({176: l4[0], 177: l4[1]})
        out = bytearray()
        port = inp  # interfaceName/Description follow the ingress, then the egress interface
        for ie, length in _TEMPLATES[tid]:
            if ie == 14:
                port = ports(e.out_port)
                v: Any = port.ifindex
            elif ie == 82:
                out += _var(port.name)
                continue
            elif ie == 83:
                out += _var("")
                continue
            else:
                v = values.get(ie, 0)
            out += v if isinstance(v, bytes) else int(v).to_bytes(length, "big")
        return bytes(out)

    # -- handoff -------------------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        st = self.statistics()
        stats = [st.total_flows, st.pkts, st.ipv4_pkts, st.ipv6_pkts, st.error_pkts,
                 st.ipv4_error_pkts, st.ipv6_error_pkts, st.tx_pkts, st.tx_errors]  # fmt: skip
        return {"seq": self.seq, "templates_at": self.templates_at, "stats": stats}

    def import_state(self, data: dict[str, Any]) -> None:
        stats = data.get("stats")  # absent from a build before the statistics
        if stats is not None:
            t, p, v4, v6, e, e4, e6, tx, txe = (int(v) for v in stats)
            self.stats = IpfixStats(t, 0, p, v4, v6, e, e4, e6, tx, txe)
        self.seq = int(data.get("seq", 0))
        at = data.get("templates_at")
        self.templates_at = float(at) if at is not None else None
