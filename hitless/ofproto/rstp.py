"""The Rapid Spanning Tree Protocol of IEEE 802.1D-2004 (clause 17), the one Open vSwitch
runs for ``Bridge.rstp_enable``: RST BPDUs (version 2, type 2, the port role and state in
the flags), port roles (root, designated, alternate, backup, disabled) chosen from the
priority vectors, the discarding/learning/forwarding states, the proposal/agreement
handshake that lets a designated port forward as soon as the port facing it agrees (and
a root port as soon as every other port is in sync), edge ports (declared, or found by
hearing no BPDU for the migrate time), topology changes carried by the TC flag (they
flush the MAC table).

The same surface as hitless.ofproto.stp.Stp, so the bridge runs either: sans-IO
(``receive(port, frame, now)``, ``run(now)``, ``take_bpdus()``), ``state(port)`` in STP
words for forwarding ("blocking" for discarding), ``seq`` moving on every port state
change, ``flush_macs``. Status keys, ``rstp/show`` and identifiers as Open vSwitch 3.1
writes them: a bridge ID "8.000.86ebb99dfd4c" (priority / 4096, the 12-bit system ID
extension, the address), a port ID "8001" (priority in the top 4 bits, the port number
below). Port numbers are the ports' OpenFlow numbers (1-4095).

STP compatibility (802.1D-2004 17.26, port protocol migration): a port that hears an
802.1D configuration or TCN BPDU speaks 802.1D there (configuration BPDUs from a
designated port, with the TCA flag after a TCN; a TCN from the root port while a
topology change is being passed on), and RSTP again once it hears an RST BPDU; either
way it keeps the mode for at least the migrate time. An 802.1D neighbour has no
proposal/agreement, so a designated port facing it forwards after two forward delays.
The transmit hold count (17.13.12): a port sends at most ``hold_count`` BPDUs (Bridge
other_config:rstp-transmit-hold-count, default 6) before its count drops by one a
second; a BPDU held back goes out when it does.

Disputes: inferior information (17.27 INFERIOR_DESIGNATED: a designated port's RST BPDU
worse than what the port holds, from another bridge or port) is not recorded; with the
learning flag set the port is disputed, as 802.1Q-2008 and Open vSwitch 3.1 have it
(lib/rstp-state-machines.c record_dispute, not 802.1D-2004's "agreed"): a disputed
designated port that learns or forwards goes back to discarding and restarts its
forward delay, so while the other side keeps disputing it never forwards. Handoff:
``export_state``/``import_state`` carry each port's role, state, stored information,
handshake flags and timers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from hitless.ofproto.stp import LLC, STP_MAC

__all__ = ["Rstp", "RstpPortConfig", "format_rstp_id", "rstp_path_cost"]

RST = 0x02  # BPDU type (and protocol version) of an RST BPDU
CONFIG, TCN = 0x00, 0x80
F_TC, F_PROPOSAL, F_LEARNING, F_FORWARDING, F_AGREEMENT = 0x01, 0x02, 0x10, 0x20, 0x40
ROLE_SHIFT = 2  # flags bits 2-3
ROLE_BITS = {"Alternate": 1, "Backup": 1, "Root": 2, "Designated": 3}
_BPDU = struct.Struct("!HBBBQIQHHHHH")  # 35 bytes after the LLC header, as 802.1D's
MIGRATE_TIME = 3.0  # s: an auto-edge port that heard no BPDU for this long is an edge
HELLO = 2.0  # s: Open vSwitch 3.1 runs RSTP with a fixed hello time

DISCARDING, LEARNING, FORWARDING = "Discarding", "Learning", "Forwarding"
_AS_STP = {DISCARDING: "blocking", LEARNING: "learning", FORWARDING: "forwarding"}


def rstp_path_cost(speed_bps: int | None) -> int:
    """802.1D-2004's recommended port path cost: 20,000,000 / link speed in Mb/s (2000
    for 10 Gb/s, 20,000 for 1 Gb/s); 2000 when the speed is unknown."""
    mbps = (speed_bps or 0) // 1_000_000
    return 20_000_000 // mbps if mbps > 0 else 2000


def format_rstp_id(bid: int) -> str:
    prio = bid >> 48
    return f"{prio >> 12:x}.{prio & 0xFFF:03x}.{bid & 0xFFFFFFFFFFFF:012x}"


def _mac(bid: int) -> str:
    return ":".join(f"{b:02x}" for b in (bid & 0xFFFFFFFFFFFF).to_bytes(6, "big"))


@dataclass(frozen=True, slots=True)
class RstpPortConfig:
    """A port taking part: OpenFlow number (its RSTP port number), name, MAC, priority
    (Port other_config:rstp-port-priority, a multiple of 16), path cost, whether its link
    is up, admin edge (rstp-port-admin-edge) and auto edge (rstp-port-auto-edge)."""

    port_no: int
    name: str
    mac: bytes
    priority: int = 128
    cost: int = 2000
    up: bool = True
    admin_edge: bool = False
    auto_edge: bool = True


Vector = tuple[int, int, int, int]  # root, root path cost, designated bridge, designated port


@dataclass(slots=True)
class _Port:
    cfg: RstpPortConfig
    port_id: int
    role: str = "Designated"
    state: str = DISCARDING
    msg: Vector | None = None  # information received from the segment's designated port
    msg_age: float = 0.0
    msg_expires: float | None = None
    proposed: bool = False  # the designated port facing our root port proposed
    agree: bool = False  # send an agreement (root port, after a proposal, in sync)
    agreed: bool = False  # the port facing our designated port agreed
    disputed: bool = False  # a worse designated port facing ours learns or forwards
    fd_expires: float | None = None  # forward delay timer (designated ports)
    edge: bool = False
    edge_at: float | None = None  # when an auto-edge port becomes an edge
    tc_until: float = 0.0
    next_hello: float = 0.0
    send_now: bool = False
    up_since: float = 0.0
    rx: int = 0
    tx: int = 0
    errors: int = 0
    send_rstp: bool = True  # False: an 802.1D bridge is on the link (STP compatibility)
    mdelay_until: float = 0.0  # the protocol is kept until then (the migrate time)
    tx_count: int = 0  # BPDUs sent, less one a second (the transmit hold count's)
    tca: bool = False  # acknowledge a TCN in the next configuration BPDU


@dataclass
class Rstp:
    """One bridge's rapid spanning tree."""

    bridge_id: int  # priority << 48 | system id
    max_age: float = 20.0
    fwd_delay: float = 15.0
    now: float = 0.0
    ports: dict[int, _Port] = field(default_factory=dict)
    seq: int = 0
    flush_macs: bool = False
    hold_count: int = 6  # other_config:rstp-transmit-hold-count (802.1D's TxHoldCount)

    def __post_init__(self) -> None:
        self.hello = HELLO
        self._tick = self.now  # when the ports' tx counts last dropped
        self.root: Vector = (self.bridge_id, 0, self.bridge_id, 0)
        self.root_port: int | None = None
        self._out: list[tuple[int, bytes]] = []

    kind = "rstp"

    # -- configuration -----------------------------------------------------------------
    def configure(self, bridge_id: int, max_age: float, fwd_delay: float, now: float) -> None:
        changed = bridge_id != self.bridge_id
        self.bridge_id, self.max_age, self.fwd_delay = bridge_id, max_age, fwd_delay
        if changed:
            self._update(now)

    def set_ports(self, cfgs: list[RstpPortConfig], now: float) -> None:
        want = {c.port_no: c for c in cfgs}
        for no in [n for n in self.ports if n not in want]:
            del self.ports[no]
        for no, c in want.items():
            p = self.ports.get(no)
            pid = (c.priority & 0xF0) << 8 | (no & 0xFFF)
            if p is None:
                p = self.ports[no] = _Port(c, pid, up_since=now)
                self._enable(p, now)
            else:
                was_up = p.cfg.up
                p.cfg, p.port_id = c, pid
                if c.up and not was_up:
                    self._enable(p, now)
            if not c.up:
                p.role, p.msg, p.agreed, p.proposed = "Disabled", None, False, False
                self._set_state(p, DISCARDING, now)
            elif c.admin_edge:
                p.edge = True
        self._update(now)

    def _enable(self, p: _Port, now: float) -> None:
        p.up_since = now
        p.edge = p.cfg.admin_edge
        p.edge_at = now + MIGRATE_TIME if p.cfg.auto_edge and not p.edge else None
        p.role, p.msg, p.agreed, p.proposed = "Designated", None, False, False
        p.next_hello = now
        p.send_now = True

    # -- the surface the bridge uses -----------------------------------------------------
    def is_root(self) -> bool:
        return self.root[0] == self.bridge_id

    def state(self, port_no: int) -> str | None:
        p = self.ports.get(port_no)
        return None if p is None else _AS_STP[p.state]

    def take_bpdus(self) -> list[tuple[int, bytes]]:
        out, self._out = self._out, []
        return out

    def next_wakeup(self) -> float | None:
        times = [
            t
            for p in self.ports.values()
            for t in (p.fd_expires, p.msg_expires, p.edge_at, p.next_hello if p.cfg.up else None)
            if t is not None
        ]
        return min(times, default=None)

    def topology_change_now(self, now: float) -> None:
        self._tc(None, now)

    # -- receiving --------------------------------------------------------------------
    def receive(self, port_no: int, frame: bytes, now: float) -> None:
        self.now = now
        p = self.ports.get(port_no)
        if p is None or not p.cfg.up:
            return
        body = frame[17:] if frame[14:17] == LLC else b""
        if len(body) < 4 or body[0:2] != b"\x00\x00":
            p.errors += 1
            return
        p.rx += 1
        p.edge, p.edge_at = False, None  # a bridge is there
        btype = body[3]
        if now >= p.mdelay_until and p.send_rstp != (btype == RST):
            p.send_rstp = btype == RST  # port protocol migration (17.26)
            p.mdelay_until = now + MIGRATE_TIME
            p.send_now = True
        if btype == TCN and p.role == "Designated":
            self._tc(port_no, now)
            p.tca = p.send_now = True
            self._update(now)
            return
        if btype not in (CONFIG, RST) or len(body) < _BPDU.size:
            p.errors += 1
            return
        _, _, _, flags, root, cost, bridge, port, age, _max, _hello, _fwd = _BPDU.unpack_from(body)
        role_bits = (flags >> ROLE_SHIFT) & 3 if btype == RST else 3  # a config BPDU: designated
        if flags & F_TC and p.role in ("Root", "Designated"):
            self._tc(port_no, now)  # an alternate or backup port ignores it (802.1D 17.29)
        vec = (root, cost, bridge, port)
        if role_bits == 3 and btype == RST and self._inferior(p, vec):
            # 17.27 INFERIOR_DESIGNATED: the information is not recorded. recordDispute
            # as 802.1Q-2008 and Open vSwitch 3.1 have it (lib/rstp-state-machines.c
            # record_dispute; not 802.1D-2004's "agreed"): with the learning flag the
            # port is disputed and loses any agreement.
            if flags & F_LEARNING:
                p.disputed, p.agreed = True, False
        elif role_bits == 3:  # the segment's designated port speaks: its information
            if p.msg != vec and p.role == "Designated":
                p.agreed = False
            p.msg, p.msg_age = vec, age / 256
            p.msg_expires = now + 3 * self.hello
            p.proposed = bool(flags & F_PROPOSAL)
        elif role_bits == 2 and flags & F_AGREEMENT and p.role == "Designated":
            p.agreed = True  # the root port facing us is in sync
        self._update(now)

    def _inferior(self, p: _Port, vec: Vector) -> bool:
        """Whether a designated port's message ``vec`` is worse than what ``p`` holds (its
        own designated vector, or the information it recorded) and comes from another
        port (17.6: a message from the recorded designated bridge and port replaces it)."""
        if p.role == "Designated":
            mine: Vector = (self.root[0], self.root[1], self.bridge_id, p.port_id)
        elif p.msg is not None:
            mine = p.msg
        else:
            return False
        same_sender = (vec[2] & 0xFFFFFFFFFFFF, vec[3] & 0xFFF) == (
            mine[2] & 0xFFFFFFFFFFFF, mine[3] & 0xFFF)  # fmt: skip
        return vec > mine and not same_sender

    # -- timers -----------------------------------------------------------------------
    def run(self, now: float) -> None:
        self.now = now
        dirty = False
        for p in self.ports.values():
            if p.msg_expires is not None and now >= p.msg_expires:
                p.msg, p.msg_expires, p.proposed = None, None, False
                dirty = True
            if p.edge_at is not None and now >= p.edge_at:
                p.edge, p.edge_at = True, None
                dirty = True
            if p.fd_expires is not None and now >= p.fd_expires:
                dirty = True
        if dirty:
            self._update(now)
        if now - self._tick >= 1.0:  # the hold count's one-second tick
            ticks = int(now - self._tick)
            self._tick += ticks
            for p in self.ports.values():
                p.tx_count = max(0, p.tx_count - ticks)
        for p in self.ports.values():
            if p.cfg.up and (p.send_now or now >= p.next_hello):
                if p.tx_count >= self.hold_count:
                    p.send_now = True  # held back until the count drops
                    continue
                self._transmit(p, now)

    # -- role selection and state transitions -----------------------------------------
    def _update(self, now: float) -> None:
        own: tuple[int, int, int, int, int] = (self.bridge_id, 0, self.bridge_id, 0, 0)
        best, best_no = own, None
        for no, p in self.ports.items():
            if p.cfg.up and p.msg is not None and p.msg[2] != self.bridge_id:
                m = p.msg
                cand = (m[0], m[1] + p.cfg.cost, m[2], m[3], p.port_id)
                if cand < best:
                    best, best_no = cand, no
        old_root_port, old_root = self.root_port, self.root
        self.root = best[:4]
        self.root_port = best_no
        rerooted = best_no != old_root_port or self.root[0] != old_root[0]
        for no, p in self.ports.items():
            if not p.cfg.up:
                continue
            if no == best_no:
                role = "Root"
            elif p.msg is not None and p.msg < (
                self.root[0],
                self.root[1],
                self.bridge_id,
                p.port_id,
            ):
                role = "Backup" if p.msg[2] == self.bridge_id else "Alternate"
            else:
                role = "Designated"
            if role != p.role:
                p.role = role
                p.agreed = False
                p.send_now = True
                if role == "Designated":
                    p.fd_expires = None
        if rerooted:
            for p in self.ports.values():
                p.send_now = p.send_now or p.cfg.up
        # Alternate and backup ports discard first, so the new root port may forward.
        for p in self.ports.values():
            if p.cfg.up and p.role in ("Alternate", "Backup"):
                p.fd_expires = None
                self._set_state(p, DISCARDING, now)
        rp = self.ports.get(best_no) if best_no is not None else None
        if rp is not None and (rerooted or rp.proposed):
            # Sync: every designated port that is not an edge and has no agreement stops
            # forwarding before the root port forwards (and agrees).
            for p in self.ports.values():
                if (
                    p is not rp
                    and p.cfg.up
                    and p.role == "Designated"
                    and not (p.edge or p.agreed or p.state == DISCARDING)
                ):
                    self._set_state(p, DISCARDING, now)
                    p.fd_expires = None
            if rp.proposed:
                rp.proposed, rp.agree, rp.send_now = False, True, True
        if rp is not None:
            self._set_state(rp, FORWARDING, now)
        for p in self.ports.values():
            if not p.cfg.up or p.role != "Designated":
                continue
            if p.disputed and not p.edge and p.state != DISCARDING:
                # DESIGNATED_DISCARD (17.29.3): a dispute stops a learning or forwarding
                # port and restarts its forward delay.
                self._discard_disputed(p, now)
                continue
            if p.edge or p.agreed:
                p.fd_expires = None
                self._set_state(p, FORWARDING, now)
            elif p.state == FORWARDING:
                continue
            elif p.fd_expires is None:
                p.fd_expires = now + self.fwd_delay
                p.send_now = True  # propose
            elif now >= p.fd_expires:
                nxt = LEARNING if p.state == DISCARDING else FORWARDING
                self._set_state(p, nxt, now)
                p.fd_expires = now + self.fwd_delay if nxt == LEARNING else None
                if p.disputed and not p.edge:  # disputed while discarding: back at once
                    self._discard_disputed(p, now)

    def _discard_disputed(self, p: _Port, now: float) -> None:
        p.disputed = False
        self._set_state(p, DISCARDING, now)
        p.fd_expires = now + self.fwd_delay

    def _set_state(self, p: _Port, state: str, now: float) -> None:
        if p.state == state:
            return
        p.state = state
        self.seq += 1
        p.send_now = True
        if state == FORWARDING and not p.edge:
            self._tc(p.cfg.port_no, now, detected=True)

    def _tc(self, port_no: int | None, now: float, detected: bool = False) -> None:
        """A topology change (detected here, or heard on ``port_no``): flush what was
        learned and tell the other ports' neighbours for two hello times."""
        self.flush_macs = True
        for no, p in self.ports.items():
            up = p.cfg.up and not p.edge and p.role in ("Root", "Designated")
            if up and (no != port_no or detected):
                p.tc_until = now + 2 * self.hello
                p.send_now = True

    # -- sending ----------------------------------------------------------------------
    def _transmit(self, p: _Port, now: float) -> None:
        p.send_now = False
        p.next_hello = now + self.hello
        if not p.send_rstp:
            self._transmit_8021d(p, now)
            return
        if p.role not in ("Designated", "Root") or (
            p.role == "Root" and not p.agree and now >= p.tc_until
        ):
            return  # a root port speaks only to agree or to pass on a change
        flags = ROLE_BITS[p.role] << ROLE_SHIFT
        if p.state in (LEARNING, FORWARDING):
            flags |= F_LEARNING
        if p.state == FORWARDING:
            flags |= F_FORWARDING
        if now < p.tc_until:
            flags |= F_TC
        if p.role == "Designated" and p.state != FORWARDING and not p.edge:
            flags |= F_PROPOSAL
        if p.role == "Root" and p.agree:
            flags |= F_AGREEMENT
            p.agree = False
        rp = self.ports.get(self.root_port) if self.root_port is not None else None
        age = 0.0 if rp is None else rp.msg_age + 1.0
        body = _BPDU.pack(
            0, RST, RST, flags, self.root[0], self.root[1], self.bridge_id, p.port_id,
            int(age * 256), int(self.max_age * 256), int(self.hello * 256),
            int(self.fwd_delay * 256),
        ) + b"\x00"  # fmt: skip
        llc = LLC + body
        frame = STP_MAC + p.cfg.mac + len(llc).to_bytes(2, "big") + llc
        self._out.append((p.cfg.port_no, frame.ljust(60, b"\0")))
        p.tx += 1
        p.tx_count += 1

    def _transmit_8021d(self, p: _Port, now: float) -> None:
        """To an 802.1D bridge: a configuration BPDU from a designated port (TC while a
        change is passed on, TCA after a TCN), a TCN from the root port during a change."""
        if p.role == "Root" and now < p.tc_until:
            llc = LLC + b"\x00\x00\x00" + bytes((TCN,))
        elif p.role == "Designated":
            flags = (F_TC if now < p.tc_until else 0) | (0x80 if p.tca else 0)
            p.tca = False
            rp = self.ports.get(self.root_port) if self.root_port is not None else None
            age = 0.0 if rp is None else rp.msg_age + 1.0
            llc = LLC + _BPDU.pack(
                0, 0, CONFIG, flags, self.root[0], self.root[1], self.bridge_id, p.port_id,
                int(age * 256), int(self.max_age * 256), int(self.hello * 256),
                int(self.fwd_delay * 256),
            )  # fmt: skip
        else:
            return
        frame = STP_MAC + p.cfg.mac + len(llc).to_bytes(2, "big") + llc
        self._out.append((p.cfg.port_no, frame.ljust(60, b"\0")))
        p.tx += 1
        p.tx_count += 1

    # -- status -----------------------------------------------------------------------
    def bridge_status(self) -> dict[str, str]:
        rp = self.ports.get(self.root_port) if self.root_port is not None else None
        return {
            "rstp_bridge_id": format_rstp_id(self.bridge_id),
            "rstp_bridge_port_id": f"{rp.port_id:04x}" if rp else "0000",
            "rstp_designated_id": format_rstp_id(rp.msg[2] if rp and rp.msg else self.bridge_id),
            "rstp_designated_port_id": f"{rp.msg[3]:04x}" if rp and rp.msg else "0000",
            "rstp_root_id": format_rstp_id(self.root[0]),
            "rstp_root_path_cost": str(self.root[1]),
        }

    def port_status(self, port_no: int, now: float) -> dict[str, str]:
        p = self.ports[port_no]
        # The port's priority vector: what it sends if designated, else what it heard.
        if p.role == "Designated" or p.msg is None:
            d = (self.root[0], self.root[1], self.bridge_id, p.port_id)
        else:
            d = p.msg
        return {
            "rstp_designated_bridge_id": format_rstp_id(d[2]),
            "rstp_designated_path_cost": str(d[1]),
            "rstp_designated_port_id": f"{d[3]:04x}",
            "rstp_port_id": f"{p.port_id:04x}",
            "rstp_port_role": p.role,
            "rstp_port_state": p.state if p.cfg.up else "Disabled",
        }

    def port_statistics(self, port_no: int) -> dict[str, int]:
        p = self.ports[port_no]
        return {
            "rstp_error_count": p.errors,
            "rstp_rx_count": p.rx,
            "rstp_tx_count": p.tx,
            "rstp_uptime": int(self.now - p.up_since),
        }

    def show(self, name: str) -> str:
        def ident(bid: int) -> list[str]:
            return [
                f"  stp-priority    {bid >> 48}",
                f"  stp-system-id   {_mac(bid)}",
                f"  stp-hello-time  {int(self.hello)}s",
                f"  stp-max-age     {int(self.max_age)}s",
                f"  stp-fwd-delay   {int(self.fwd_delay)}s",
            ]

        lines = [f"---- {name} ----", "Root ID:", *ident(self.root[0])]
        rp = self.ports.get(self.root_port) if self.root_port is not None else None
        if rp is None:
            lines.append("  This bridge is the root")
        else:
            lines += [f"  root-port       {rp.cfg.name}", f"  root-path-cost  {self.root[1]}"]
        lines += ["", "Bridge ID:", *ident(self.bridge_id), ""]
        lines.append(f"  {'Interface':<10} {'Role':<10} {'State':<10} {'Cost':<8} Pri.Nbr ")
        lines.append(f"  {'-' * 10} {'-' * 10} {'-' * 10} {'-' * 8} -------")
        for no, p in sorted(self.ports.items()):
            state = p.state if p.cfg.up else "Disabled"
            role = p.role if p.cfg.up else "Disabled"
            lines.append(
                f"  {p.cfg.name:<10} {role:<10} {state:<10} {p.cfg.cost:<8} "
                f"{p.port_id >> 8 & 0xF0}.{no}"
            )
        return "\n".join(lines) + "\n\n"

    # -- handoff ----------------------------------------------------------------------
    def export_state(self, now: float) -> dict[str, Any]:
        def left(t: float | None) -> float | None:
            return None if t is None else t - now

        return {
            "kind": self.kind,
            "ports": {
                str(no): {
                    "role": p.role,
                    "state": p.state,
                    "msg": list(p.msg) if p.msg else None,
                    "msg_age": p.msg_age,
                    "msg_expires": left(p.msg_expires),
                    "agreed": p.agreed,
                    "disputed": p.disputed,
                    "edge": p.edge,
                    "edge_at": left(p.edge_at),
                    "fd_expires": left(p.fd_expires),
                    "tc_until": p.tc_until - now,
                    "up_since": p.up_since - now,
                    "rx": p.rx,
                    "tx": p.tx,
                    "errors": p.errors,
                    "send_rstp": p.send_rstp,
                }  # fmt: skip
                for no, p in sorted(self.ports.items())
            },
        }

    def import_state(self, data: dict[str, Any], now: float) -> None:
        if data.get("kind") != self.kind:
            return  # an STP state: this bridge now runs RSTP and starts afresh

        def at(t: float | None) -> float | None:
            return None if t is None else now + float(t)

        for no, d in dict(data["ports"]).items():
            p = self.ports.get(int(no))
            if p is None:
                continue
            p.role, p.state = str(d["role"]), str(d["state"])
            msg = d["msg"]
            p.msg = (int(msg[0]), int(msg[1]), int(msg[2]), int(msg[3])) if msg else None
            p.msg_age, p.msg_expires = float(d["msg_age"]), at(d["msg_expires"])
            p.agreed, p.edge, p.edge_at = bool(d["agreed"]), bool(d["edge"]), at(d["edge_at"])
            p.disputed = bool(d.get("disputed", False))  # older builds: none
            p.fd_expires, p.tc_until = at(d["fd_expires"]), now + float(d["tc_until"])
            p.up_since = now + float(d["up_since"])
            p.rx, p.tx, p.errors = int(d["rx"]), int(d["tx"]), int(d["errors"])
            p.send_rstp = bool(d.get("send_rstp", True))  # older builds: RSTP
        self._update(now)
        self.seq += 1
