"""sFlow, NetFlow and IPFIX export (Bridge.sflow, Bridge.netflow, Bridge.ipfix): the I/O
around each bridge's pure agents (hitless.ofproto.sflow, hitless.ofproto.netflow,
hitless.ofproto.ipfix). IPFIX: every turn the bridge's samples go to its exporter; once
a second the due messages go to every IPFIX target over UDP. NetFlow: once a second the
bridge's due v5 records (flows idle for twice the bridge's max-idle plus a second, or
past the active timeout) go to every NetFlow target.

sFlow: Every turn it takes the samples the bridge's datapath raised
(a ``Sample`` action, one packet in ``sampling``), maps ofports to ifIndexes, and once a
second sends the datagrams to every collector over UDP; every ``polling`` seconds it
adds one counter sample per port from the device's counters (as Open vSwitch's
netdev-linux reads them). The agent address is the ``agent`` column's (an IP address, or
an interface's IPv4 address), else the source address of the route to the first
collector.

What a collector follows (datagram and sample sequence numbers, the sample pool, the
agent's uptime) crosses a hitless upgrade (the switch extra ``sflow``,
hitless.daemon.carried): the collector sees one agent that never restarted.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hitless.config.model import BridgeConfig, InterfaceStatus, SflowConfig
from hitless.daemon.devstatus import device_info
from hitless.ofproto.ipfix import IpfixExporter, IpfixPort, SampleInfo
from hitless.ofproto.sflow import OUTPUT_DISCARD, OUTPUT_MULTIPLE, PortCounters, SflowAgent

__all__ = ["SflowExporter", "parse_target"]

log = logging.getLogger("hitless.sflow")

FLUSH_INTERVAL = 1.0  # s: Open vSwitch's agent ticks once a second
SIOCGIFADDR = 0x8915


def parse_target(target: str, default_port: int = 6343) -> tuple[str, int]:
    """"IP:PORT" or "[IPv6]:PORT" (``default_port`` when absent) -> (address, port);
    raises ValueError."""
    t = target.strip()
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif t.count(":") == 1:
        host, port = t.split(":")
    else:
        host, port = t, ""
    ipaddress.ip_address(host)
    return host, int(port) if port else default_port


def _iface_ipv4(name: str) -> bytes | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        res = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        return res[20:24]
    except OSError:
        return None
    finally:
        s.close()


def agent_address(cfg: SflowConfig) -> bytes:
    """The agent address datagrams carry (see the module docstring); 0.0.0.0 if none."""
    if cfg.agent:
        try:
            return ipaddress.ip_address(cfg.agent).packed
        except ValueError:
            addr = _iface_ipv4(cfg.agent)
            if addr is not None:
                return addr
    for t in cfg.targets:
        try:
            host, port = parse_target(t)
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(fam, socket.SOCK_DGRAM) as s:
                s.connect((host, port))
                return ipaddress.ip_address(s.getsockname()[0]).packed
        except (OSError, ValueError):
            continue
    return bytes(4)


@dataclass
class _Export:
    cfg: SflowConfig
    agent: SflowAgent
    targets: list[tuple[str, int]]
    socks: dict[int, socket.socket] = field(default_factory=dict)  # family -> socket
    next_flush: float = 0.0
    ifindex: dict[str, int] = field(default_factory=dict)  # device name -> ifIndex

    def close(self) -> None:
        for s in self.socks.values():
            s.close()
        self.socks.clear()


class SflowExporter:
    """One sFlow agent per bridge that has an sFlow row."""

    def __init__(self) -> None:
        self.exports: dict[str, _Export] = {}
        self._adopted: dict[str, dict[str, Any]] = {}  # bridge -> agent state to adopt
        self._warned: set[str] = set()
        self.n_sent = 0
        self._nf_next: dict[str, float] = {}  # bridge -> next NetFlow flush
        self._nf_socks: dict[int, socket.socket] = {}
        self.ipfix: dict[str, IpfixExporter] = {}  # bridge -> its IPFIX exporter
        self._ipfix_next: dict[str, float] = {}
        self._ipfix_adopted: dict[str, dict[str, Any]] = {}
        self._ipfix_ifindex: dict[str, int] = {}  # device name -> ifindex

    def sync(self, bridges: Iterable[tuple[str, BridgeConfig]], now: float) -> None:
        """Agents for the bridges whose configuration has an sFlow row (exporters for
        those with an IPFIX row); others closed."""
        bridges = list(bridges)
        self._sync_ipfix(bridges, now)
        want = {name: cfg.sflow for name, cfg in bridges if cfg.sflow is not None}
        for name in [n for n in self.exports if n not in want]:
            self.exports.pop(name).close()
        for name, cfg in want.items():
            assert cfg is not None
            ex = self.exports.get(name)
            if ex is not None and ex.cfg == cfg:
                continue
            targets = []
            for t in cfg.targets:
                try:
                    targets.append(parse_target(t))
                except ValueError:
                    self._warn(f"{name}: sFlow target {t!r} is not IP:PORT; ignored")
            addr = agent_address(cfg)
            if ex is None:
                agent = SflowAgent(cfg, addr, now)
                state = self._adopted.pop(name, None)
                if state is not None:
                    agent.import_state(state, now)
                ex = self.exports[name] = _Export(cfg, agent, targets, next_flush=now + 1)
            else:
                ex.agent.reconfigure(cfg, addr, now)
                ex.cfg, ex.targets = cfg, targets

    def run(
        self,
        name: str,
        bridge: Any,
        cfg: BridgeConfig,
        statuses: dict[str, InterfaceStatus],
        datapath_id: Callable[[], int],
        now: float,
        flush: bool = False,
    ) -> None:
        """Feed the bridge's samples to its agent; flush and poll when due (``flush``:
        send what is pending now, as before a handoff)."""
        ex = self.exports.get(name)
        samples = bridge.take_sflow_samples()
        if ex is None:
            return
        if samples:
            by_port = self._ifindexes(ex.ifindex, statuses)
            for in_port, n_out, out_port, packet in samples:
                if n_out == 1:
                    output = by_port.get(out_port, 0)
                else:
                    output = OUTPUT_MULTIPLE | n_out if n_out else OUTPUT_DISCARD
                ex.agent.flow_sample(
                    by_port.get(in_port, 0), output, packet, drops=bridge.sflow_dropped
                )
        if now < ex.next_flush and not flush:
            return
        ex.next_flush = max(ex.next_flush, now) if flush else now + FLUSH_INTERVAL
        if not flush and ex.agent.poll_due(now):  # counters keep their own cadence
            self._poll(ex, cfg, statuses, datapath_id())
        for dgram in ex.agent.datagrams(now):
            self._send(name, ex, dgram)

    def run_netflow(self, name: str, bridge: Any, cfg: BridgeConfig, now: float) -> None:
        """Send the bridge's due NetFlow records (once a second)."""
        nf = getattr(bridge, "netflow", None)
        if nf is None or cfg.netflow is None or now < self._nf_next.get(name, 0.0):
            return
        self._nf_next[name] = now + FLUSH_INTERVAL
        idle = 2 * bridge.max_idle + 1.0  # its datapath flow has expired and been settled
        dgrams = nf.datagrams(now, idle, time.time())
        if not dgrams:
            return
        targets = []
        for t in cfg.netflow.targets:
            try:
                targets.append(parse_target(t))
            except ValueError:
                self._warn(f"{name}: NetFlow target {t!r} is not IP:PORT; ignored")
        for d in dgrams:
            self._send_to(name, targets, self._nf_socks, d, "NetFlow")

    def _sync_ipfix(self, bridges: list[tuple[str, BridgeConfig]], now: float) -> None:
        want = {name: cfg.ipfix for name, cfg in bridges if cfg.ipfix is not None}
        for name in [n for n in self.ipfix if n not in want]:
            del self.ipfix[name]
            self._ipfix_next.pop(name, None)
        for name, cfg in want.items():
            assert cfg is not None
            ex = self.ipfix.get(name)
            if ex is None:
                ex = self.ipfix[name] = IpfixExporter(cfg)
                state = self._ipfix_adopted.pop(name, None)
                if state is not None:
                    ex.import_state(state)
                self._ipfix_next[name] = now + FLUSH_INTERVAL
            elif ex.cfg != cfg:
                ex.reconfigure(cfg)

    def run_ipfix(
        self,
        name: str,
        bridge: Any,
        cfg: BridgeConfig,
        statuses: dict[str, InterfaceStatus],
        now: float,
        flush: bool = False,
    ) -> None:
        """Feed the bridge's IPFIX samples to its exporter; once a second (or at once
        with ``flush``) send what is due to every target."""
        samples = bridge.take_ipfix_samples()
        ex = self.ipfix.get(name)
        # What ovs-ofctl dump-ipfix-bridge reads (None: not configured).
        bridge.ipfix_exporter = ex if cfg.ipfix is not None else None
        if ex is None or cfg.ipfix is None:
            return
        wall = time.time()
        for direction, in_port, out_port, dropped, packet in samples:
            ex.sample(SampleInfo(direction, in_port, out_port, dropped), packet, wall)
        if now < self._ipfix_next.get(name, 0.0) and not flush:
            return
        self._ipfix_next[name] = now + FLUSH_INTERVAL
        names = {st.ofport: iname for iname, st in statuses.items() if st.ofport > 0}
        idx = self._ifindexes(self._ipfix_ifindex, statuses)

        def port(ofport: int) -> IpfixPort:
            return IpfixPort(idx.get(ofport, 0), names.get(ofport, ""))

        msgs = ex.messages(wall, port, flush=flush)
        if not msgs:
            return
        targets = []
        for t in cfg.ipfix.targets:
            try:
                targets.append(parse_target(t, 4739))
            except ValueError:
                self._warn(f"{name}: IPFIX target {t!r} is not IP:PORT; ignored")
        for m in msgs:
            ok = self._send_to(name, targets, self._nf_socks, m, "IPFIX")
            ex.sent(ok, len(targets) - ok)

    def export_ipfix(self) -> dict[str, Any] | None:
        return {n: ex.export_state() for n, ex in sorted(self.ipfix.items())} or None

    def adopt_ipfix(self, data: dict[str, Any]) -> None:
        for name, state in dict(data).items():
            ex = self.ipfix.get(name)
            if ex is not None:
                ex.import_state(dict(state))
            else:
                self._ipfix_adopted[name] = dict(state)

    def next_wakeup(self) -> float | None:
        times = [ex.next_flush for ex in self.exports.values()] + list(self._nf_next.values())
        times += self._ipfix_next.values()
        return min(times, default=None)

    def _ifindexes(self, cache: dict[str, int], statuses: dict[str, InterfaceStatus]) -> dict[int, int]:
        """ofport -> the device's ifindex (0: none), from the status or the kernel."""
        out: dict[int, int] = {}
        for iname, st in statuses.items():
            if st.ofport <= 0:
                continue
            idx = st.ifindex or cache.get(iname)
            if idx is None:
                try:
                    idx = cache[iname] = socket.if_nametoindex(iname)
                except OSError:
                    idx = cache[iname] = 0  # no device (patch, dummy)
            out[st.ofport] = idx
        return out

    def _poll(
        self, ex: _Export, cfg: BridgeConfig, statuses: dict[str, InterfaceStatus], dpid: int
    ) -> None:
        internal = {ic.name for pc in cfg.ports.values() for ic in pc.interfaces if ic.type == "internal"}
        for iname, st in sorted(statuses.items()):
            if st.ofport <= 0:
                continue
            try:
                d = device_info(iname, tap=iname in internal)
            except OSError:
                continue  # no device: nothing to count
            ex.agent.counter_sample(
                PortCounters(
                    ifindex=d.ifindex,
                    ofport=st.ofport,
                    name=iname,
                    speed=d.link_speed or 0,
                    duplex=d.duplex,
                    admin_up=d.admin_up,
                    oper_up=d.admin_up and d.carrier,
                    stats=d.statistics,
                ),
                dpid,
            )

    def _send(self, name: str, ex: _Export, dgram: bytes) -> None:
        self._send_to(name, ex.targets, ex.socks, dgram, "sFlow")

    def _send_to(
        self,
        name: str,
        targets: list[tuple[str, int]],
        socks: dict[int, socket.socket],
        dgram: bytes,
        what: str,
    ) -> int:
        """Send ``dgram`` to every target; returns to how many it went."""
        ok = 0
        for host, port in targets:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            s = socks.get(fam)
            if s is None:
                s = socks[fam] = socket.socket(fam, socket.SOCK_DGRAM)
                s.setblocking(False)
            try:
                s.sendto(dgram, (host, port))
                self.n_sent += 1
                ok += 1
            except OSError as e:
                self._warn(f"{name}: {what} datagram to {host}:{port} not sent: {e}")
        return ok

    def _warn(self, text: str) -> None:
        if text not in self._warned:
            self._warned.add(text)
            log.warning("%s", text)

    # -- handoff (hitless.daemon.carried) ---------------------------------------------
    def export(self, now: float) -> dict[str, Any] | None:
        return {n: ex.agent.export_state(now) for n, ex in sorted(self.exports.items())} or None

    def adopt(self, data: dict[str, Any], now: float) -> None:
        for name, state in dict(data).items():
            ex = self.exports.get(name)
            if ex is not None:
                ex.agent.import_state(dict(state), now)
            else:
                self._adopted[name] = dict(state)

    def close(self) -> None:
        for ex in self.exports.values():
            ex.close()
        self.exports.clear()
        for s in self._nf_socks.values():
            s.close()
        self._nf_socks.clear()
