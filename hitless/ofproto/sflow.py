"""sFlow version 5 (sflow.org's "sFlow Version 5" specification, 2004): the agent of
one bridge, pure. It turns the datapath's samples (a ``Sample`` action's upcalls) into
flow samples and the ports' device counters into counter samples, and packs them into
datagrams for the collectors, with the records Open vSwitch 3.1 sends and in its order
(captured from its netdev datapath, tests/daemon/test_sflow.py compares them side by
side):

* flow sample (enterprise 0, format 1): source ``2:1000`` (the bridge's sampler), the
  sampling rate, the sample pool (grows by the rate with every sample, as Open vSwitch
  assumes the datapath's random draw converges to it), input and output ifIndex (an
  output to several ports is ``0x80000000 | n``, a drop ``0x40000000``); records:
  extended switch (1001) and the raw packet header (1: Ethernet, frame length with the
  4 FCS bytes, stripped 4, the first ``header`` bytes);
* counter sample (format 2), one per port every ``polling`` seconds: source ``0:ifIndex``;
  records: Ethernet (2), OpenFlow port (1004), port name (1005), generic interface (1).

Each wire layout is described once (a ``struct.Struct`` and its field names): the
encoder and the decoder (used by the tests and by anyone reading datagrams back) share
it. The clock comes in as ``now``; sockets belong to the daemon (hitless.daemon.sflow).
Must not import datapath, daemon or handoff.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hitless.config.model import SflowConfig

__all__ = [
    "COUNTER_UNKNOWN",
    "FLOW_SOURCE",
    "OUTPUT_DISCARD",
    "OUTPUT_MULTIPLE",
    "PortCounters",
    "SflowAgent",
    "decode_datagram",
    "probability",
]

VERSION = 5
MAX_DATAGRAM = 1400  # bytes: Open vSwitch's default datagram size
FLOW_SOURCE = 2 << 24 | 1000  # the bridge's sampler: a physical entity, index 1000 (OVS)
OUTPUT_MULTIPLE = 0x80000000  # | number of outputs
OUTPUT_DISCARD = 0x40000000  # | reason (0: unknown)
COUNTER_UNKNOWN = 0xFFFFFFFF

# sample and record formats (enterprise 0)
FLOW_SAMPLE, COUNTER_SAMPLE = 1, 2
REC_RAW_HEADER, REC_SWITCH = 1, 1001
REC_GENERIC, REC_ETHERNET, REC_OFPORT, REC_PORTNAME = 1, 2, 1004, 1005


@dataclass(frozen=True, slots=True)
class _Layout:
    """A fixed wire layout: its struct and field names (both directions use it)."""

    st: struct.Struct
    names: tuple[str, ...]

    def pack(self, **values: int) -> bytes:
        return self.st.pack(*(values.get(n, 0) for n in self.names))

    def unpack(self, data: bytes, offset: int = 0) -> dict[str, int]:
        return dict(zip(self.names, self.st.unpack_from(data, offset), strict=True))


def _layout(fmt: str, names: str) -> _Layout:
    return _Layout(struct.Struct("!" + fmt), tuple(names.split()))


HEAD = _layout("II", "version address_type")
HEAD_REST = _layout("IIII", "sub_agent seq uptime n_samples")
SAMPLE_HEAD = _layout("II", "format length")
FLOW = _layout("8I", "seq source rate pool drops input output n_records")
COUNTERS = _layout("3I", "seq source n_records")
RAW_HEADER = _layout("4I", "protocol frame_length stripped header_length")
SWITCH = _layout("4I", "src_vlan src_priority dst_vlan dst_priority")
GENERIC = _layout(
    "IIQIIQIIIIIIQIIIIII",
    "if_index if_type if_speed if_direction if_status in_octets in_ucast in_multicast "
    "in_broadcast in_discards in_errors in_unknown_protos out_octets out_ucast "
    "out_multicast out_broadcast out_discards out_errors promiscuous",
)
ETHERNET = _layout(
    "13I",
    "alignment_errors fcs_errors single_collisions multiple_collisions sqe_errors "
    "deferred late_collisions excessive_collisions internal_mac_tx_errors "
    "carrier_sense_errors frame_too_longs internal_mac_rx_errors symbol_errors",
)
OFPORT = _layout("QI", "datapath_id port_no")


def probability(sampling: int) -> int:
    """A ``Sample`` action's probability for one packet in ``sampling`` (as OVS)."""
    return 0xFFFFFFFF // max(1, sampling)


@dataclass(frozen=True, slots=True)
class PortCounters:
    """One port's counters for a counter sample (device counters; None: unknown)."""

    ifindex: int
    ofport: int
    name: str
    speed: int = 0  # bit/s
    duplex: str | None = None  # "full" | "half"
    admin_up: bool = False
    oper_up: bool = False
    stats: dict[str, int] = field(default_factory=dict)  # Interface.statistics keys


def _u32(stats: dict[str, int], key: str) -> int:
    v = stats.get(key)
    return COUNTER_UNKNOWN if v is None else v & 0xFFFFFFFF


def _record(fmt: int, body: bytes) -> bytes:
    return SAMPLE_HEAD.pack(format=fmt, length=len(body)) + body


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


class SflowAgent:
    """The sFlow agent of one bridge: sequence numbers and the sample pool (the state a
    collector follows, carried by a hitless upgrade), pending samples, the poll clock."""

    def __init__(self, config: SflowConfig, address: bytes, now: float) -> None:
        self.config = config
        self.address = address  # 4 (IPv4) or 16 (IPv6) bytes
        self.boot = now
        self.seq = 0  # datagrams sent
        self.flow_seq = 0
        self.pool = 0
        self.counter_seq: dict[int, int] = {}  # by source ifIndex
        self.next_poll = now + config.polling if config.polling else None
        self._pending: list[bytes] = []
        self.n_samples = 0

    def reconfigure(self, config: SflowConfig, address: bytes, now: float) -> None:
        if config.polling != self.config.polling:
            self.next_poll = now + config.polling if config.polling else None
        self.config, self.address = config, address

    def flow_sample(
        self, in_ifindex: int, output: int, packet: bytes, vlan: int = 0, drops: int = 0
    ) -> None:
        """A sampled packet: ``output`` is the output ifIndex, or OUTPUT_MULTIPLE | n,
        or OUTPUT_DISCARD; ``drops``: samples lost so far for want of room."""
        cfg = self.config
        self.flow_seq += 1
        self.pool += cfg.sampling
        self.n_samples += 1
        head = packet[: cfg.header]
        raw = RAW_HEADER.pack(
            protocol=1, frame_length=len(packet) + 4, stripped=4, header_length=len(head)
        ) + _pad(head)
        sw = SWITCH.pack(src_vlan=vlan, dst_vlan=vlan)
        body = FLOW.pack(
            seq=self.flow_seq,
            source=FLOW_SOURCE,
            rate=cfg.sampling,
            pool=self.pool,
            drops=drops & 0xFFFFFFFF,
            input=in_ifindex,
            output=output,
            n_records=2,
        )
        body += _record(REC_SWITCH, sw) + _record(REC_RAW_HEADER, raw)
        self._pending.append(_record(FLOW_SAMPLE, body))

    def poll_due(self, now: float) -> bool:
        """Whether counters are due; if so the next poll is scheduled."""
        if self.next_poll is None or now < self.next_poll:
            return False
        self.next_poll = max(self.next_poll + self.config.polling, now)
        return True

    def counter_sample(self, port: PortCounters, datapath_id: int) -> None:
        s = port.stats
        seq = self.counter_seq[port.ifindex] = self.counter_seq.get(port.ifindex, 0) + 1
        eth: dict[str, int] = dict.fromkeys(ETHERNET.names, COUNTER_UNKNOWN)
        eth["alignment_errors"] = _u32(s, "rx_frame_err") if "rx_frame_err" in s else 0
        eth["fcs_errors"] = _u32(s, "rx_crc_err") if "rx_crc_err" in s else 0
        name = port.name.encode()
        generic = GENERIC.pack(
            if_index=port.ifindex,
            if_type=6,  # ethernetCsmacd
            if_speed=port.speed,
            if_direction={"full": 1, "half": 2}.get(port.duplex or "", 0),
            if_status=int(port.admin_up) | int(port.oper_up) << 1,
            in_octets=s.get("rx_bytes", 0),
            in_ucast=_u32(s, "rx_packets"),
            in_multicast=_u32(s, "rx_multicast_packets"),
            in_broadcast=COUNTER_UNKNOWN,
            in_discards=_u32(s, "rx_dropped"),
            in_errors=_u32(s, "rx_errors"),
            in_unknown_protos=COUNTER_UNKNOWN,
            out_octets=s.get("tx_bytes", 0),
            out_ucast=_u32(s, "tx_packets"),
            out_multicast=COUNTER_UNKNOWN,
            out_broadcast=COUNTER_UNKNOWN,
            out_discards=_u32(s, "tx_dropped"),
            out_errors=_u32(s, "tx_errors"),
            promiscuous=0,
        )
        body = COUNTERS.pack(seq=seq, source=port.ifindex, n_records=4)
        body += _record(REC_ETHERNET, ETHERNET.pack(**eth))
        body += _record(REC_OFPORT, OFPORT.pack(datapath_id=datapath_id, port_no=port.ofport))
        body += _record(REC_PORTNAME, struct.pack("!I", len(name)) + _pad(name))
        body += _record(REC_GENERIC, generic)
        self._pending.append(_record(COUNTER_SAMPLE, body))

    def datagrams(self, now: float) -> list[bytes]:
        """The pending samples packed into datagrams of at most MAX_DATAGRAM bytes."""
        out: list[bytes] = []
        pending, self._pending = self._pending, []
        uptime = int(now - self.boot) * 1000 & 0xFFFFFFFF  # whole seconds, as OVS ticks
        atype = 1 if len(self.address) == 4 else 2
        head_len = HEAD.st.size + len(self.address) + HEAD_REST.st.size
        i = 0
        while i < len(pending):
            size, j = head_len, i
            while j < len(pending) and (j == i or size + len(pending[j]) <= MAX_DATAGRAM):
                size += len(pending[j])
                j += 1
            self.seq += 1
            head = HEAD.pack(version=VERSION, address_type=atype) + self.address
            head += HEAD_REST.pack(sub_agent=0, seq=self.seq, uptime=uptime, n_samples=j - i)
            out.append(head + b"".join(pending[i:j]))
            i = j
        return out

    # -- handoff: what a collector follows must not restart ---------------------------
    def export_state(self, now: float) -> dict[str, Any]:
        return {
            "uptime": now - self.boot,
            "seq": self.seq,
            "flow_seq": self.flow_seq,
            "pool": self.pool,
            "counter_seq": {str(k): v for k, v in sorted(self.counter_seq.items())},
            "poll_in": None if self.next_poll is None else self.next_poll - now,
        }

    def import_state(self, data: dict[str, Any], now: float) -> None:
        self.boot = now - float(data["uptime"])
        self.seq = int(data["seq"])
        self.flow_seq = int(data["flow_seq"])
        self.pool = int(data["pool"])
        self.counter_seq = {int(k): int(v) for k, v in dict(data["counter_seq"]).items()}
        if data.get("poll_in") is not None and self.config.polling:
            self.next_poll = now + float(data["poll_in"])


# -- reading datagrams back (tests, tools) ---------------------------------------------


def _records(data: bytes, offset: int, n: int) -> Iterable[tuple[int, bytes]]:
    for _ in range(n):
        h = SAMPLE_HEAD.unpack(data, offset)
        offset += SAMPLE_HEAD.st.size
        yield h["format"], data[offset : offset + h["length"]]
        offset += h["length"]


def _decode_record(fmt: int, body: bytes) -> dict[str, Any]:
    if fmt == REC_RAW_HEADER:
        r: dict[str, Any] = RAW_HEADER.unpack(body)
        start = RAW_HEADER.st.size
        r["header"] = body[start : start + r["header_length"]]
        return r
    if fmt == REC_PORTNAME:
        (n,) = struct.unpack_from("!I", body)
        return {"name": body[4 : 4 + n].decode(errors="replace")}
    layout = {REC_SWITCH: SWITCH, REC_OFPORT: OFPORT}.get(fmt)
    return layout.unpack(body) if layout is not None else {"raw": body}


def _decode_counter_record(fmt: int, body: bytes) -> dict[str, Any]:
    layout = {REC_GENERIC: GENERIC, REC_ETHERNET: ETHERNET, REC_OFPORT: OFPORT}.get(fmt)
    if layout is not None:
        return layout.unpack(body)
    return _decode_record(fmt, body)


def decode_datagram(data: bytes) -> dict[str, Any]:
    """An sFlow v5 datagram as a dict: header fields, ``agent`` bytes and ``samples``,
    each with ``format``, its fields and ``records`` [(format, fields)]. Raises
    ValueError on a truncated or foreign datagram."""
    try:
        d: dict[str, Any] = HEAD.unpack(data)
        if d["version"] != VERSION:
            raise ValueError(f"sFlow version {d['version']}, not {VERSION}")
        alen = 4 if d["address_type"] == 1 else 16
        off = HEAD.st.size
        d["agent"] = data[off : off + alen]
        off += alen
        d.update(HEAD_REST.unpack(data, off))
        off += HEAD_REST.st.size
        samples = []
        for fmt, body in _records(data, off, d["n_samples"]):
            if fmt == FLOW_SAMPLE:
                s: dict[str, Any] = dict(FLOW.unpack(body))
                recs = _records(body, FLOW.st.size, s["n_records"])
                s["records"] = [(f, _decode_record(f, b)) for f, b in recs]
            elif fmt == COUNTER_SAMPLE:
                s = dict(COUNTERS.unpack(body))
                recs = _records(body, COUNTERS.st.size, s["n_records"])
                s["records"] = [(f, _decode_counter_record(f, b)) for f, b in recs]
            else:
                s = {"records": []}
            s["format"] = fmt
            samples.append(s)
            off += SAMPLE_HEAD.st.size + len(body)
        d["samples"] = samples
    except struct.error as e:
        raise ValueError(f"truncated sFlow datagram: {e}") from None
    return d
