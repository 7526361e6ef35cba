"""The Spanning Tree Protocol of IEEE 802.1D-1998 (clause 8), the one Open vSwitch runs
for ``Bridge.stp_enable``: configuration and topology-change BPDUs, the root and
designated port selection, the blocking/listening/learning/forwarding states with their
timers, and topology changes (which flush the MAC table).

Sans-IO: ``receive(port, frame, now)`` takes a BPDU a port received, ``run(now)``
advances the timers; both leave the frames to send in ``take_bpdus()``. Nothing here
sends, sleeps or reads the clock. ``state(port)`` is what forwarding obeys (the bridge
drops what a port that is not forwarding receives, learns only in ``learning``, and
sends nothing through such a port); ``seq`` moves whenever a port's state changes, and
``flush_macs`` says that a topology change asks for the MAC table to be flushed.

Identifiers as Open vSwitch prints them: a bridge ID is ``priority.system-id``
("8000.5a67dc462f40"), a port ID ``(priority << 8) | port number`` (32769 for 128.1).
Port numbers are the ports' OpenFlow numbers (1-255; Open vSwitch numbers them in its
own order). Times are in seconds; a BPDU carries them in 1/256 s.

Handoff: ``export_state(now)`` / ``import_state(data, now)`` carry every port's state,
role, stored priority vector and running timers (as time left), so a new process goes
on where the old one was instead of blocking every port for two forward delays.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STP_MAC", "Stp", "StpPortConfig", "format_bridge_id", "path_cost"]

STP_MAC = bytes.fromhex("0180c2000000")
LLC = b"\x42\x42\x03"
CONFIG, TCN = 0x00, 0x80  # BPDU types
FLAG_TC, FLAG_TCA = 0x01, 0x80
_CONFIG = struct.Struct("!HBBBQIQHHHHH")  # 35 bytes after the LLC header
_TCN = struct.Struct("!HBB")
MESSAGE_AGE_INCREMENT = 1.0  # seconds added per hop (802.1D's recommended value)

DISABLED, BLOCKING, LISTENING, LEARNING, FORWARDING = (
    "disabled", "blocking", "listening", "learning", "forwarding",
)  # fmt: skip
STATES = (DISABLED, BLOCKING, LISTENING, LEARNING, FORWARDING)


def path_cost(speed_bps: int | None) -> int:
    """802.1D's recommended path cost for a link speed (as Open vSwitch converts it)."""
    mbps = (speed_bps or 0) // 1_000_000
    for at_least, cost in ((10_000, 2), (1_000, 4), (100, 19), (16, 62), (10, 100), (4, 250)):
        if mbps >= at_least:
            return cost
    return 19  # unknown speed: as for 100 Mb/s


def format_bridge_id(bid: int) -> str:
    return f"{bid >> 48:04x}.{bid & 0xFFFFFFFFFFFF:012x}"


def _mac(bid: int) -> str:
    return ":".join(f"{b:02x}" for b in (bid & 0xFFFFFFFFFFFF).to_bytes(6, "big"))


@dataclass(frozen=True, slots=True)
class StpPortConfig:
    """A port taking part: its OpenFlow number (also its STP port number), name, MAC,
    priority (Port other_config:stp-port-priority), path cost (stp-path-cost or from
    the link speed) and whether its link is up."""

    port_no: int
    name: str
    mac: bytes
    priority: int = 128
    cost: int = 2
    up: bool = True


@dataclass(slots=True)
class _Port:
    cfg: StpPortConfig
    port_id: int
    state: str = BLOCKING
    role: str = "designated"
    since: float = 0.0  # when it entered its state
    # The priority vector stored for the port's segment (802.1D 8.5.5).
    d_root: int = 0
    d_cost: int = 0
    d_bridge: int = 0
    d_port: int = 0
    message_age: float = 0.0  # the stored information's age when it arrived
    age_expires: float | None = None  # message age timer
    fwd_expires: float | None = None  # forward delay timer
    tca: bool = False  # acknowledge a TCN in the next config BPDU
    rx: int = 0
    tx: int = 0
    errors: int = 0


@dataclass(slots=True)
class _Times:
    max_age: float
    hello: float
    fwd_delay: float


@dataclass
class Stp:
    """One bridge's spanning tree."""

    bridge_id: int  # priority << 48 | system id
    hello: float = 2.0
    max_age: float = 20.0
    fwd_delay: float = 15.0
    now: float = 0.0
    ports: dict[int, _Port] = field(default_factory=dict)
    seq: int = 0
    flush_macs: bool = False

    def __post_init__(self) -> None:
        self.root_id = self.bridge_id
        self.root_cost = 0
        self.root_port: int | None = None
        self.times = _Times(self.max_age, self.hello, self.fwd_delay)  # in use (root's)
        self.hello_expires: float | None = self.now
        self.tcn_expires: float | None = None
        self.tc_expires: float | None = None
        self.topology_change = False
        self.tc_detected = False
        self._out: list[tuple[int, bytes]] = []

    # Configuration ---------------------------------------------------------------
    def configure(
        self, bridge_id: int, hello: float, max_age: float, fwd_delay: float, now: float
    ) -> None:
        """New bridge parameters (other_config:stp-priority, stp-system-id, stp-*-time)."""
        was_root = self.is_root
        self.hello, self.max_age, self.fwd_delay = hello, max_age, fwd_delay
        if bridge_id != self.bridge_id:
            self.bridge_id = bridge_id
            for p in self.ports.values():
                if p.d_bridge != bridge_id and self._designated(p):
                    self._become_designated(p)
            self._update(now)
        if self.is_root:
            self.times = _Times(max_age, hello, fwd_delay)
            if not was_root:
                self._became_root(now)

    def set_ports(self, cfgs: list[StpPortConfig], now: float) -> None:
        """The ports taking part (added ports start blocking, as 802.1D initialises
        them; a port whose link went down is disabled; removed ones leave)."""
        want = {c.port_no: c for c in cfgs}
        changed = False
        for no in [n for n in self.ports if n not in want]:
            del self.ports[no]
            changed = True
        for no, c in want.items():
            p = self.ports.get(no)
            if p is None:
                p = self.ports[no] = _Port(c, (c.priority & 0xFF) << 8 | (no & 0xFF), since=now)
                self._become_designated(p)
                if not c.up:
                    self._set_state(p, DISABLED, now)
                changed = True
                continue
            was_up = p.cfg.up
            if p.cfg != c:
                p.cfg = c
                p.port_id = (c.priority & 0xFF) << 8 | (no & 0xFF)
                changed = True
            if was_up and not c.up:
                self._disable(p, now)
            elif c.up and not was_up:
                self._become_designated(p)
                self._set_state(p, BLOCKING, now)
        if changed or any(not p.cfg.up for p in self.ports.values()):
            self._update(now)

    def topology_change_now(self, now: float) -> None:
        """Start a topology change by hand (``stp/tcn``)."""
        self._tc_detected(now)

    # Queries ---------------------------------------------------------------------
    @property
    def is_root(self) -> bool:
        return self.root_id == self.bridge_id

    def state(self, port_no: int) -> str | None:
        """The port's state; None if it does not take part (it forwards)."""
        p = self.ports.get(port_no)
        return None if p is None else p.state

    def take_bpdus(self) -> list[tuple[int, bytes]]:
        out, self._out = self._out, []
        return out

    def next_wakeup(self) -> float | None:
        ts = [self.hello_expires, self.tcn_expires, self.tc_expires]
        for p in self.ports.values():
            ts += [p.age_expires, p.fwd_expires]
        return min((t for t in ts if t is not None), default=None)

    # Input -----------------------------------------------------------------------
    def receive(self, port_no: int, frame: bytes, now: float) -> None:
        """A frame sent to the STP group address arrived on ``port_no``."""
        self.now = now
        p = self.ports.get(port_no)
        if p is None:
            return
        body = _parse(frame)
        if body is None:
            p.errors += 1
            return
        p.rx += 1
        if p.state == DISABLED:
            return
        if body[3] == TCN:
            if self._designated(p):
                self._tc_detected(now)
                p.tca = True
                self._transmit_config(p, now)
            return
        if len(body) < _CONFIG.size:
            p.errors += 1
            return
        _, _, _, flags, root, cost, bridge, port, age, max_age, hello, fwd = _CONFIG.unpack_from(
            body
        )
        if (root, cost, bridge) < (p.d_root, p.d_cost, p.d_bridge) or (
            (root, cost, bridge) == (p.d_root, p.d_cost, p.d_bridge) and port <= p.d_port
        ):  # the received information supersedes the port's (802.1D 8.6.2.2)
            if bridge == self.bridge_id and port == p.port_id:
                return  # our own BPDU looped back
            was_root = self.is_root
            p.d_root, p.d_cost, p.d_bridge, p.d_port = root, cost, bridge, port
            p.message_age = age / 256
            p.age_expires = now + max(0.0, max_age / 256 - age / 256)
            self._update(now)
            if was_root and not self.is_root:
                self.hello_expires = None
                if self.tc_detected:
                    self.tc_expires = None
                    self._transmit_tcn(now)
                    self.tcn_expires = now + self.times.hello
            if self.root_port == port_no:
                self.times = _Times(max_age / 256, hello / 256, fwd / 256)
                self.topology_change = bool(flags & FLAG_TC)
                if self.topology_change:
                    self.flush_macs = True
                self._generate(now)
                if flags & FLAG_TCA:
                    self.tcn_expires = None
                    self.tc_detected = False
        elif self._designated(p):
            self._transmit_config(p, now)

    # Timers ----------------------------------------------------------------------
    def run(self, now: float) -> None:
        self.now = now
        if self.hello_expires is not None and now >= self.hello_expires:
            self._generate(now)
            self.hello_expires = now + self.times.hello
        if self.tcn_expires is not None and now >= self.tcn_expires:
            self._transmit_tcn(now)
            self.tcn_expires = now + self.times.hello
        if self.tc_expires is not None and now >= self.tc_expires:
            self.tc_expires = None
            self.topology_change = False
            self.tc_detected = False
        for p in self.ports.values():
            if p.age_expires is not None and now >= p.age_expires:
                p.age_expires = None
                was_root = self.is_root
                self._become_designated(p)
                self._update(now)
                if self.is_root and not was_root:
                    self._became_root(now)
            if p.fwd_expires is not None and now >= p.fwd_expires:
                if p.state == LISTENING:
                    self._set_state(p, LEARNING, now)
                    p.fwd_expires = now + self.times.fwd_delay
                elif p.state == LEARNING:
                    p.fwd_expires = None
                    self._set_state(p, FORWARDING, now)
                    if any(self._designated(q) for q in self.ports.values()):
                        self._tc_detected(now)

    # The procedures of 802.1D 8.6 ------------------------------------------------
    def _designated(self, p: _Port) -> bool:
        return p.d_bridge == self.bridge_id and p.d_port == p.port_id

    def _become_designated(self, p: _Port) -> None:
        p.d_root, p.d_cost = self.root_id, self.root_cost
        p.d_bridge, p.d_port = self.bridge_id, p.port_id

    def _update(self, now: float) -> None:
        """Configuration update (root and designated port selection), then port state
        selection."""
        best: tuple[int, ...] | None = None
        self.root_port = None
        for no, p in self.ports.items():
            if p.state == DISABLED or self._designated(p) or p.d_root >= self.bridge_id:
                continue
            v = (p.d_root, p.d_cost + p.cfg.cost, p.d_bridge, p.d_port, p.port_id)
            if best is None or v < best:
                best, self.root_port = v, no
        if best is None:
            self.root_id, self.root_cost = self.bridge_id, 0
        else:
            self.root_id, self.root_cost = best[0], best[1]
        for no, p in self.ports.items():
            if p.state == DISABLED or no == self.root_port:
                continue
            if (
                self._designated(p)
                or p.d_root != self.root_id
                or self.root_cost < p.d_cost
                or (
                    self.root_cost == p.d_cost
                    and (self.bridge_id, p.port_id) <= (p.d_bridge, p.d_port)
                )
            ):
                self._become_designated(p)
        for no, p in self.ports.items():
            if p.state == DISABLED:
                p.role = "disabled"
            elif no == self.root_port:
                p.role = "root"
                self._make_forwarding(p, now)
            elif self._designated(p):
                p.role = "designated"
                p.age_expires = None
                self._make_forwarding(p, now)
            else:
                p.role = "alternate"
                self._make_blocking(p, now)

    def _make_forwarding(self, p: _Port, now: float) -> None:
        if p.state == BLOCKING:
            self._set_state(p, LISTENING, now)
            p.fwd_expires = now + self.times.fwd_delay

    def _make_blocking(self, p: _Port, now: float) -> None:
        if p.state in (LISTENING, LEARNING, FORWARDING):
            if p.state in (LEARNING, FORWARDING):
                self._tc_detected(now)
            self._set_state(p, BLOCKING, now)
            p.fwd_expires = None

    def _disable(self, p: _Port, now: float) -> None:
        was_root = self.is_root
        self._become_designated(p)
        if p.state in (LEARNING, FORWARDING):
            self._tc_detected(now)
        self._set_state(p, DISABLED, now)
        p.age_expires = p.fwd_expires = None
        p.tca = False
        self._update(now)
        if self.is_root and not was_root:
            self._became_root(now)

    def _became_root(self, now: float) -> None:
        self.times = _Times(self.max_age, self.hello, self.fwd_delay)
        self._tc_detected(now)
        self.tcn_expires = None
        self._generate(now)
        self.hello_expires = now + self.times.hello

    def _set_state(self, p: _Port, state: str, now: float) -> None:
        if p.state != state:
            p.state = state
            p.since = now
            self.seq += 1

    def _tc_detected(self, now: float) -> None:
        self.flush_macs = True
        if self.is_root:
            self.topology_change = True
            self.tc_expires = now + self.times.max_age + self.times.fwd_delay
        elif not self.tc_detected:
            self._transmit_tcn(now)
            self.tcn_expires = now + self.times.hello
        self.tc_detected = True

    def _generate(self, now: float) -> None:
        for p in self.ports.values():
            if p.state != DISABLED and self._designated(p):
                self._transmit_config(p, now)

    def _transmit_config(self, p: _Port, now: float) -> None:
        if self.is_root:
            age = 0.0
        else:
            rp = self.ports[self.root_port] if self.root_port is not None else None
            if rp is None or rp.age_expires is None:
                return
            # The root port's information, aged by the time since it arrived, plus a hop.
            age = self.times.max_age - (rp.age_expires - now) + MESSAGE_AGE_INCREMENT
            if age >= self.times.max_age:
                return
        flags = (FLAG_TC if self.topology_change else 0) | (FLAG_TCA if p.tca else 0)
        p.tca = False
        t = self.times
        body = _CONFIG.pack(
            0, 0, CONFIG, flags, self.root_id, self.root_cost, self.bridge_id, p.port_id,
            *(int(round(x * 256)) for x in (age, t.max_age, t.hello, t.fwd_delay)),
        )  # fmt: skip
        self._send(p, body)

    def _transmit_tcn(self, now: float) -> None:
        if self.root_port is not None:
            self._send(self.ports[self.root_port], _TCN.pack(0, 0, TCN))

    def _send(self, p: _Port, body: bytes) -> None:
        p.tx += 1
        frame = STP_MAC + p.cfg.mac + struct.pack("!H", len(LLC) + len(body)) + LLC + body
        self._out.append((p.cfg.port_no, frame.ljust(60, b"\0")))

    # Status and show -------------------------------------------------------------
    def port_status(self, port_no: int, now: float) -> dict[str, str]:
        """Port.status as Open vSwitch writes it for a port in STP."""
        p = self.ports[port_no]
        return {
            "stp_port_id": str(p.port_id),
            "stp_role": p.role,
            "stp_sec_in_state": str(int(now - p.since)),
            "stp_state": p.state,
        }

    def port_statistics(self, port_no: int) -> dict[str, int]:
        p = self.ports[port_no]
        return {"stp_error_count": p.errors, "stp_rx_count": p.rx, "stp_tx_count": p.tx}

    def bridge_status(self) -> dict[str, str]:
        return {
            "stp_bridge_id": format_bridge_id(self.bridge_id),
            "stp_designated_root": format_bridge_id(self.root_id),
            "stp_root_path_cost": str(self.root_cost),
        }

    def show(self, name: str) -> str:
        """``ovs-appctl stp/show`` for this bridge, in Open vSwitch 3.1's layout."""

        def ident(bid: int, t: _Times) -> list[str]:
            return [
                f"  stp-priority  {bid >> 48}",
                f"  stp-system-id   {_mac(bid)}",
                f"  stp-hello-time  {t.hello:g}s",
                f"  stp-max-age     {t.max_age:g}s",
                f"  stp-fwd-delay   {t.fwd_delay:g}s",
            ]

        lines = [f"---- {name} ----", "Root ID:", *ident(self.root_id, self.times)]
        if self.is_root:
            lines.append("  This bridge is the root")
        else:
            rp = self.ports.get(self.root_port or -1)
            lines.append(f"  root-port       {rp.cfg.name if rp else ''}")
            lines.append(f"  root-path-cost  {self.root_cost}")
        lines += ["", "Bridge ID:",
                  *ident(self.bridge_id, _Times(self.max_age, self.hello, self.fwd_delay))]  # fmt: skip
        lines += ["", "  Interface  Role       State      Cost  Pri.Nbr ",
                  "  ---------- ---------- ---------- ----- -------"]  # fmt: skip
        for no, p in sorted(self.ports.items()):
            lines.append(
                f"  {p.cfg.name:<10} {p.role:<10} {p.state:<10} {p.cfg.cost:<5} "
                f"{p.port_id >> 8}.{no}"
            )
        return "\n".join(lines) + "\n\n"

    # Handoff ---------------------------------------------------------------------
    def export_state(self, now: float) -> dict[str, Any]:
        def left(t: float | None) -> float | None:
            return None if t is None else max(0.0, t - now)

        return {
            "root": [self.root_id, self.root_cost, self.root_port],
            "times": [self.times.max_age, self.times.hello, self.times.fwd_delay],
            "timers": [left(self.hello_expires), left(self.tcn_expires), left(self.tc_expires)],
            "tc": [self.topology_change, self.tc_detected],
            "ports": {
                str(no): [
                    p.state,
                    p.role,
                    now - p.since,
                    p.d_root,
                    p.d_cost,
                    p.d_bridge,
                    p.d_port,
                    p.message_age,
                    left(p.age_expires),
                    left(p.fwd_expires),
                    p.rx,
                    p.tx,
                    p.errors,
                ]  # fmt: skip
                for no, p in self.ports.items()
            },
        }

    def import_state(self, data: dict[str, Any], now: float) -> None:
        """A predecessor's ``export_state``, into the ports configured since (a port it
        did not have starts afresh; one it had that is gone is skipped)."""

        def at(t: float | None) -> float | None:
            return None if t is None else now + float(t)

        self.root_id, self.root_cost, rp = data["root"]
        self.root_port = rp if rp in self.ports else None
        self.times = _Times(*(float(x) for x in data["times"]))
        self.hello_expires, self.tcn_expires, self.tc_expires = (at(t) for t in data["timers"])
        self.topology_change, self.tc_detected = (bool(x) for x in data["tc"])
        for key, v in data["ports"].items():
            p = self.ports.get(int(key))
            if p is None:
                continue
            (p.state, p.role, age, p.d_root, p.d_cost, p.d_bridge, p.d_port, p.message_age,
             ae, fe, p.rx, p.tx, p.errors) = v  # fmt: skip
            p.since = now - float(age)
            p.age_expires, p.fwd_expires = at(ae), at(fe)
        self.seq += 1


def _parse(frame: bytes) -> bytes | None:
    """The BPDU inside an 802.3/LLC frame (from the protocol identifier on), or None."""
    if len(frame) < 14 + 3 + _TCN.size or frame[:6] != STP_MAC:
        return None
    length = int.from_bytes(frame[12:14], "big")
    if length > 1500 or frame[14:17] != LLC:
        return None
    body = frame[17 : 14 + length]
    if len(body) < _TCN.size or body[0:2] != b"\0\0":
        return None
    if body[3] not in (CONFIG, TCN):
        return None
    return body
