"""NetFlow version 5 (Cisco's v5 export format, as Open vSwitch sends it for
``Bridge.netflow``): one record per IPv4 flow (addresses, protocol, ToS, ports, the
OpenFlow input and output ports, packets, bytes, first and last seen as the agent's
uptime), exported when the flow has been idle for the bridge's max-idle time (its
datapath flow expired), and every ``active_timeout`` seconds while it lasts; up to 30
records per datagram.

Pure: ``NetflowFlow`` objects are the bridge's counters (hitless.ofproto.revalidator
credits each datapath flow's packets to them, as to OpenFlow rules), ``Netflow.records``
turns what is due into datagrams with the clock it is given; the daemon sends them
(hitless.daemon.sflow's exporter does both sFlow and NetFlow). One layout description
serves the encoder and the decoder. Must not import datapath, daemon or handoff.
"""

from __future__ import annotations

import struct
from typing import Any

from hitless.config.model import NetflowConfig

__all__ = ["Netflow", "NetflowFlow", "decode_netflow"]

VERSION = 5
MAX_RECORDS = 30
OUTPUT_FLOOD = 0xFFFF  # several outputs (Open vSwitch's NETFLOW output for a flood)
_HEAD = struct.Struct("!HHIIIIBBH")  # 24 bytes
_HEAD_NAMES = ("version", "count", "uptime", "unix_secs", "unix_nsecs", "seq", "engine_type",
               "engine_id", "sampling")  # fmt: skip
_REC = struct.Struct("!4s4s4sHHIIIIHHBBBBHHBBH")  # 48 bytes
_REC_NAMES = ("src", "dst", "nexthop", "input", "output", "packets", "octets", "first", "last",
              "src_port", "dst_port", "pad1", "tcp_flags", "proto", "tos", "src_as", "dst_as",
              "src_mask", "dst_mask", "pad2")  # fmt: skip


class NetflowFlow:
    """One IPv4 flow's counters (a credit target: ``credit(packets, bytes, used)``)."""

    __slots__ = ("key", "packets", "octets", "first", "last", "sent_packets", "sent_octets",
                 "exported_at")  # fmt: skip

    def __init__(self, key: tuple[Any, ...]) -> None:
        self.key = key  # (src, dst, proto, tos, sport, dport, in_port, out_port)
        self.packets = self.octets = 0
        self.first = self.last = 0.0
        self.sent_packets = self.sent_octets = 0
        self.exported_at: float | None = None

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        if not self.packets and not self.first:
            self.first = used
        self.packets += packets
        self.octets += nbytes
        self.last = max(self.last, used)


class Netflow:
    """A bridge's NetFlow flows and its export sequence (carried by a handoff)."""

    def __init__(self, config: NetflowConfig, now: float) -> None:
        self.config = config
        self.boot = now
        self.seq = 0  # datagrams sent so far (the header's flow_sequence is seq + 1)
        self.flows: dict[tuple[Any, ...], NetflowFlow] = {}

    def flow(self, key: tuple[Any, ...]) -> NetflowFlow:
        f = self.flows.get(key)
        if f is None:
            f = self.flows[key] = NetflowFlow(key)
        return f

    def _ms(self, t: float) -> int:
        return max(0, int((t - self.boot) * 1000)) & 0xFFFFFFFF

    def datagrams(self, now: float, idle: float, wall: float) -> list[bytes]:
        """Records for the flows idle for ``idle`` seconds (then forgotten) and those
        whose active timeout passed, packed 30 to a datagram (``wall``: Unix time)."""
        due: list[bytes] = []
        active = self.config.active_timeout or 600
        for key, f in list(self.flows.items()):
            ended = f.last and now - f.last > idle
            start = f.exported_at if f.exported_at is not None else f.first
            if not ended and not (f.last and now - start >= active):
                continue
            n, b = f.packets - f.sent_packets, f.octets - f.sent_octets
            if n > 0:
                src, dst, proto, tos, sport, dport, inp, outp = key
                due.append(_REC.pack(
                    src, dst, bytes(4), inp & 0xFFFF, outp & 0xFFFF, n & 0xFFFFFFFF,
                    b & 0xFFFFFFFF, self._ms(start if f.exported_at else f.first),
                    self._ms(f.last), sport, dport, 0, 0, proto, tos, 0, 0, 0, 0, 0,
                ))  # fmt: skip
            f.sent_packets, f.sent_octets, f.exported_at = f.packets, f.octets, now
            if ended:
                del self.flows[key]
        out = []
        for i in range(0, len(due), MAX_RECORDS):
            recs = due[i : i + MAX_RECORDS]
            head = _HEAD.pack(
                VERSION, len(recs), self._ms(now), int(wall), int(wall % 1 * 1e9),
                self.seq + 1, self.config.engine_type, self.config.engine_id, 0,
            )  # fmt: skip
            self.seq += 1  # Open vSwitch 3.1's first datagram says 1
            out.append(head + b"".join(recs))
        return out

    def export_state(self, now: float) -> dict[str, Any]:
        """The sequence, the uptime and every flow's counters (times as seconds ago), so
        the new process goes on counting the same flows: one record per flow."""

        def ago(t: float | None) -> float | None:
            return None if t is None else now - t

        flows = [
            [k[0].hex(), k[1].hex(), *k[2:], f.packets, f.octets, ago(f.first), ago(f.last),
             f.sent_packets, f.sent_octets, ago(f.exported_at)]
            for k, f in self.flows.items()
        ]  # fmt: skip
        return {"uptime": now - self.boot, "seq": self.seq, "flows": flows}

    def import_state(self, data: dict[str, Any], now: float) -> None:
        self.boot = now - float(data["uptime"])
        self.seq = int(data["seq"])
        for row in data.get("flows", []):
            src, dst, *rest = row
            key = (bytes.fromhex(src), bytes.fromhex(dst), *(int(v) for v in rest[:6]))
            packets, octets, first, last, sp, so, exp = rest[6:]
            f = self.flow(key)
            f.packets, f.octets = f.packets + int(packets), f.octets + int(octets)
            f.first = now - float(first) if f.first == 0.0 else min(f.first, now - float(first))
            f.last = max(f.last, now - float(last))
            f.sent_packets, f.sent_octets = int(sp), int(so)
            f.exported_at = None if exp is None else now - float(exp)


def decode_netflow(data: bytes) -> dict[str, Any]:
    """A NetFlow v5 datagram as a dict with ``records``; raises ValueError."""
    try:
        d: dict[str, Any] = dict(zip(_HEAD_NAMES, _HEAD.unpack_from(data), strict=True))
        if d["version"] != VERSION:
            raise ValueError(f"NetFlow version {d['version']}, not {VERSION}")
        d["records"] = [
            dict(zip(_REC_NAMES, _REC.unpack_from(data, _HEAD.size + i * _REC.size), strict=True))
            for i in range(d["count"])
        ]
    except struct.error as e:
        raise ValueError(f"truncated NetFlow datagram: {e}") from None
    return d
