"""Bonds: a Port with several Interfaces is one logical port (ovs-vswitchd.conf.db(5),
"Bonding Configuration").

A ``Bond`` decides, for NORMAL switching, which member a frame leaves by and whether a
frame received on a member is admitted; the bridge keeps every member a datapath port
with its own OpenFlow port number (as Open vSwitch does), learns MAC addresses on the
bond as a whole (on its representative port number, ``rep``: the lowest member's) and
floods to the bond once.

Modes:

* ``active-backup``: one active member carries everything; frames received on the
  others are dropped (a host joined to two members cannot make a loop). The active
  member is ``other_config:bond-primary`` while it is enabled, else the current one
  while it stays enabled, else the enabled member with the lowest port number. A new bond (a restart, an upgrade) starts with the
member whose MAC ``Port.bond_active_slave`` names, as Open vSwitch does.
* ``balance-slb``: source MAC + VLAN hashed into 256 buckets, each bucket on an enabled
  member (spread evenly across the enabled members; a disabled member's buckets move
  to the others). Multicast and broadcast are received only on the active member, and
  a frame whose source was learned on another port is dropped (our own flood coming
  back over another member), as Open vSwitch does.

When a bond's decisions change (failover, a new active member, buckets moved), the
bridge sends a learning packet (``learning_packet``: a gratuitous RARP) out the bond for
every MAC address learned on another port, from that address, so a host or switch on
the other side relearns where those addresses are now (its own MAC table still points
at the old member, where this switch drops what it sends).

A member is enabled when its link is up (and, with LACP, when LACP says it may carry
traffic) and has stayed so for ``bond_updelay`` ms; disabled when down for
``bond_downdelay`` ms; a new member starts as its link is. When no member is enabled, one waiting on its updelay is enabled
at once (as Open vSwitch does).

Pure: takes ``now`` (seconds), returns whether forwarding decisions changed; the bridge
re-translates the megaflows through the bond's members when they do. Never touches the
clock, sockets or the datapath.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hitless.config.model import BondConfig
from hitless.ofproto.lacp import Lacp

__all__ = ["ACCEPT", "BUCKETS", "DROP", "DROP_IF_MOVED", "SUPPORTED_MODES", "Bond"]

log = logging.getLogger(__name__)

BUCKETS = 256
SUPPORTED_MODES = ("active-backup", "balance-slb", "balance-tcp")
ACCEPT, DROP, DROP_IF_MOVED = "accept", "drop", "drop-if-moved"


def bucket_of(src: bytes, vlan: int) -> int:
    """The hash bucket of a source MAC and VLAN (stable across processes: a handoff
    keeps every flow on its member)."""
    return zlib.crc32(src + vlan.to_bytes(2, "big")) % BUCKETS


def l4_bucket_of(key: bytes) -> int:
    """balance-tcp: the bucket of a flow key's L3/L4 fields (EtherType, IPv4/IPv6
    addresses, protocol, ports; see hitless.packet.flow for the offsets)."""
    return zlib.crc32(key[16:18] + key[20:60] + key[64:65] + key[68:72]) % BUCKETS


@dataclass(frozen=True, slots=True)
class BucketCredit:
    """A megaflow's share of a bond's load: the revalidator credits each flow's new bytes
    to the hash bucket that chose its member (``credit``, as for OpenFlow counters)."""

    bond: str
    bucket: int
    loads: list[int] = field(compare=False, hash=False, repr=False)

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        self.loads[self.bucket] += nbytes


@dataclass(slots=True)
class Member:
    name: str
    ofport: int
    mac: bytes = b"\0" * 6
    carrier: bool = False  # link up (the datapath's view, admin state included)
    may_enable: bool = True  # LACP lets it carry traffic (always without LACP)
    enabled: bool = False
    delay_expires: float | None = None  # a pending enable/disable (updelay/downdelay)
    announced: bool | None = None  # the link state last logged


class Bond:
    def __init__(self, name: str, cfg: BondConfig) -> None:
        self.name = name
        self.cfg = cfg
        self.members: dict[int, Member] = {}  # ofport -> member
        self.active: int | None = None
        self.buckets: list[int | None] = [None] * BUCKETS
        # Bytes each bucket sent since the last rebalancing (halved at each one, as
        # Open vSwitch's moving average), and when the next one is due.
        self.loads: list[int] = [0] * BUCKETS
        self.next_rebalance: float | None = None
        self.lacp: Lacp | None = None
        self._pdus: list[tuple[int, bytes]] = []

    # Configuration -------------------------------------------------------------
    @property
    def rep(self) -> int:
        """The port number MAC addresses learned on the bond point to."""
        return min(self.members) if self.members else -1

    def configure(
        self,
        cfg: BondConfig,
        members: Sequence[tuple[str, int, bytes]],
        sys_id: bytes = b"\0" * 6,
    ) -> bool:
        """New settings and the attached members (name, ofport, MAC); ``sys_id`` is the
        LACP system id unless ``other_config:lacp-system-id`` says otherwise (the
        bridge's MAC). Returns whether forwarding decisions may have changed."""
        changed = cfg != self.cfg
        self.cfg = cfg
        if cfg.lacp == "off":
            if self.lacp is not None:
                self.lacp = None
                for m in self.members.values():
                    m.may_enable = True
                changed = True
        else:
            if self.lacp is None:
                self.lacp = Lacp(self.name)
                changed = True
            if cfg.lacp_system_id:
                try:
                    sys_id = bytes.fromhex(cfg.lacp_system_id.replace(":", ""))[:6].ljust(6, b"\0")
                except ValueError:
                    log.warning("bond %s: bad lacp-system-id %r", self.name, cfg.lacp_system_id)
            self.lacp.configure(
                cfg.lacp == "active",
                cfg.lacp_time == "fast",
                sys_id,
                cfg.lacp_system_priority,
                members,
                cfg.lacp_fallback_ab,
            )
        want = {no: (name, mac) for name, no, mac in members}
        for no in [n for n in self.members if n not in want]:
            del self.members[no]
            changed = True
        for no, (name, mac) in want.items():
            cur = self.members.get(no)
            if cur is None or cur.name != name:
                self.members[no] = Member(name, no, mac)
                changed = True
            else:
                cur.mac = mac
        if self.active not in self.members:
            self.active = None
        self.buckets = [b if b in self.members else None for b in self.buckets]
        return changed

    # Links and timers ------------------------------------------------------------
    def set_carrier(self, ofport: int, up: bool) -> None:
        m = self.members.get(ofport)
        if m is not None:
            m.carrier = up

    def set_may_enable(self, ofport: int, may: bool) -> None:
        m = self.members.get(ofport)
        if m is not None:
            m.may_enable = may

    def receive_lacp(self, ofport: int, frame: bytes, now: float) -> None:
        """A slow-protocol frame received on a member (the next ``run`` acts on it)."""
        if self.lacp is not None:
            self.lacp.receive(ofport, frame, now)

    def take_pdus(self) -> list[tuple[int, bytes]]:
        """The LACP PDUs the last ``run`` wants sent, as (member ofport, frame)."""
        out, self._pdus = self._pdus, []
        return out

    @property
    def lacp_status(self) -> str:
        """off | negotiated | configured (bond/show's lacp_status)."""
        return "off" if self.lacp is None else self.lacp.status

    @property
    def hashes_l4(self) -> bool:
        """Whether the output choice reads L3/L4 fields (balance-tcp, negotiated)."""
        return self.cfg.mode == "balance-tcp" and self.lacp_status == "negotiated"

    def run(self, now: float) -> bool:
        """Apply link changes, LACP, delays and the choice of the active member.
        Returns whether the active member, the enabled set or the buckets changed."""
        before = self._decisions()
        lacp = self.lacp
        if lacp is not None:
            for no, m in self.members.items():
                lacp.set_carrier(no, m.carrier, now)
            pdus, _ = lacp.run(now)
            self._pdus.extend(pdus)
            for no, m in self.members.items():
                m.may_enable = lacp.may_enable(no)
        for m in sorted(self.members.values(), key=_by_name):
            up = m.carrier and m.may_enable
            if m.announced is None:
                # A new member starts as its link is, without a delay (as Open vSwitch).
                m.announced = up
                self._enable(m, up)
                continue
            if m.announced != up:
                m.announced = up
                log.info("member %s: link state %s", m.name, "up" if up else "down")
            if up == m.enabled:
                if m.delay_expires is not None:
                    m.delay_expires = None
                    log.info("member %s: will not be %s", m.name, "disabled" if up else "enabled")
            elif m.delay_expires is None:
                delay = (self.cfg.updelay if up else self.cfg.downdelay) / 1000
                m.delay_expires = now + delay
                if delay:
                    log.info(
                        "member %s: will be %s if it stays %s for %d ms",
                        m.name,
                        "enabled" if up else "disabled",
                        "up" if up else "down",
                        delay * 1000,
                    )
            if m.delay_expires is not None and now >= m.delay_expires:
                self._enable(m, up)
        self._choose_active(now)
        self._assign_buckets()
        self._rebalance(now)
        return self._decisions() != before

    def _enable(self, m: Member, enable: bool) -> None:
        m.delay_expires = None
        if m.enabled != enable:
            m.enabled = enable
            log.info("member %s: %s", m.name, "enabled" if enable else "disabled")

    def _decisions(self) -> tuple[object, ...]:
        return (
            self.active,
            tuple(sorted(n for n, m in self.members.items() if m.enabled)),
            tuple(self.buckets),
        )

    def _choose_active(self, now: float) -> None:
        enabled = sorted(n for n, m in self.members.items() if m.enabled)
        if not enabled:
            # Nothing enabled: skip the updelay of the member soonest to come up.
            waiting = [
                m for m in self.members.values() if m.carrier and m.may_enable and not m.enabled
            ]
            if waiting:
                m = min(waiting, key=lambda m: (m.delay_expires or now, m.ofport))
                left = max(0.0, (m.delay_expires or now) - now)
                log.info(
                    "bond %s: active member is now %s, skipping remaining %d ms updelay "
                    "(since no interface was enabled)",
                    self.name,
                    m.name,
                    left * 1000,
                )
                self._enable(m, True)
                enabled = [m.ofport]
        best: int | None
        primary = self._by_name(self.cfg.primary)
        if primary is not None and primary.enabled:
            best = primary.ofport
        elif self.active in enabled:
            best = self.active
        elif self.active is None and self._by_mac(self.cfg.active_mac) in enabled:
            best = self._by_mac(self.cfg.active_mac)  # as written back before a restart
        else:
            best = enabled[0] if enabled else None
        if best != self.active:
            if best is None:
                log.info("bond %s: all members disabled", self.name)
            else:
                log.info("bond %s: active member is now %s", self.name, self.members[best].name)
            self.active = best

    def _assign_buckets(self) -> None:
        enabled = sorted(n for n, m in self.members.items() if m.enabled)
        if not enabled:
            self.buckets = [None] * BUCKETS
            return
        if self.cfg.mode == "active-backup":
            return
        for i, b in enumerate(self.buckets):
            if b not in enabled:
                self.buckets[i] = enabled[i % len(enabled)]

    def _rebalance(self, now: float) -> bool:
        """balance-slb/balance-tcp, every other_config:bond-rebalance-interval ms: move
        hash buckets from the most loaded enabled member to the least loaded one while a
        move makes the two closer and the gap is worth it (at least 100 kB and 1/32 of
        the lighter one's load, Open vSwitch's thresholds); then halve every bucket's
        load. Returns whether a bucket moved."""
        interval = self.cfg.rebalance_interval / 1000
        if self.cfg.mode == "active-backup" or interval <= 0:
            self.next_rebalance = None
            return False
        if self.next_rebalance is None:
            self.next_rebalance = now + interval
        if now < self.next_rebalance:
            return False
        self.next_rebalance = now + interval
        enabled = [n for n, m in self.members.items() if m.enabled]
        moved = False
        if len(enabled) > 1:
            for _ in range(BUCKETS):
                load = {n: 0 for n in enabled}
                for i, b in enumerate(self.buckets):
                    if b in load:
                        load[b] += self.loads[i]
                hi = max(enabled, key=lambda n: (load[n], -n))
                lo = min(enabled, key=lambda n: (load[n], n))
                gap = load[hi] - load[lo]
                if gap < 100_000 or gap < load[lo] >> 5:
                    break
                # The bucket whose move leaves the pair most even, if any improves it.
                best, best_after = None, gap
                for i, b in enumerate(self.buckets):
                    d = self.loads[i]
                    if b == hi and d and abs(gap - 2 * d) < best_after:
                        best, best_after = i, abs(gap - 2 * d)
                if best is None:
                    break
                self.buckets[best] = lo
                moved = True
                log.info(
                    "bond %s: shift %dkB of load (with hash %d) from %s to %s (now carrying "
                    "%dkB and %dkB load, respectively)", self.name, self.loads[best] // 1024,
                    best, self.members[hi].name, self.members[lo].name,
                    (load[hi] - self.loads[best]) // 1024, (load[lo] + self.loads[best]) // 1024,
                )  # fmt: skip
        self.loads[:] = [x // 2 for x in self.loads]  # in place: credits point here
        return moved

    def credit_for(self, src: bytes, vlan: int, key: bytes = b"") -> BucketCredit | None:
        """The load account of the bucket ``choose_output`` reads for this frame (None
        when no bucket decides: active-backup, LACP not negotiated)."""
        if self.lacp_status == "configured":
            return None
        if self.cfg.mode == "balance-slb":
            return BucketCredit(self.name, bucket_of(src, vlan), self.loads)
        if self.cfg.mode == "balance-tcp" and key:
            return BucketCredit(self.name, l4_bucket_of(key), self.loads)
        return None

    def next_wakeup(self, now: float) -> float | None:
        times = [m.delay_expires for m in self.members.values() if m.delay_expires is not None]
        if self.next_rebalance is not None:
            times.append(self.next_rebalance)
        if self.lacp is not None:
            t = self.lacp.next_wakeup(now)
            if t is not None:
                times.append(t)
        return min(times) if times else None

    # Forwarding decisions (read by NORMAL translation) ---------------------------------
    def admissible(self, ofport: int, multicast_dst: bool) -> str:
        """Whether a frame received on member ``ofport`` is admitted: ACCEPT, DROP, or
        DROP_IF_MOVED (balance-slb: drop it if its source is learned elsewhere)."""
        m = self.members.get(ofport)
        if m is None or not m.enabled:
            return DROP
        status = self.lacp_status
        if status == "negotiated":
            # The partner knows the members are one bond: accept on any enabled one.
            return ACCEPT
        if status == "configured" and not self.cfg.lacp_fallback_ab:
            return DROP
        if multicast_dst and ofport != self.active:
            return DROP
        if self.cfg.mode == "balance-slb":
            return DROP_IF_MOVED
        return ACCEPT if ofport == self.active else DROP

    def choose_output(self, src: bytes, vlan: int, key: bytes = b"") -> int | None:
        """The member a frame from ``src`` in ``vlan`` (flow key ``key``) leaves by
        (None: no member is enabled)."""
        mode = self.cfg.mode
        status = self.lacp_status
        if status == "configured":
            # LACP did not negotiate: nothing, or active-backup with lacp-fallback-ab.
            return self.active if self.cfg.lacp_fallback_ab else None
        if mode == "balance-slb":
            return self.buckets[bucket_of(src, vlan)]
        if mode == "balance-tcp" and key:
            return self.buckets[l4_bucket_of(key)]
        return self.active

    # Management ------------------------------------------------------------------
    def _by_name(self, name: str | None) -> Member | None:
        if name is None:
            return None
        for m in self.members.values():
            if m.name == name:
                return m
        return None

    def _by_mac(self, mac: str | None) -> int | None:
        for no, m in self.members.items():
            if mac is not None and _mac(m.mac) == mac.lower():
                return no
        return None

    def member(self, name: str) -> Member | None:
        return self._by_name(name)

    def set_active(self, name: str) -> str:
        """bond/set-active-member: raises ValueError with Open vSwitch's wording."""
        m = self._by_name(name)
        if m is None:
            raise ValueError("no such member")
        if not m.enabled:
            raise ValueError("cannot make disabled member active")
        if self.active != m.ofport:
            self.active = m.ofport
            log.info("bond %s: active member is now %s", self.name, m.name)
            return f"done; {m.name} is now active\n"
        return f"no change; {m.name} is already active\n"

    def migrate(self, hash_text: str, name: str) -> str:
        """bond/migrate: put a hash bucket on a member (balance-slb only; the next
        rebalancing may move it again). ValueError with Open vSwitch's wording."""
        if self.cfg.mode != "balance-slb":
            raise ValueError("not an SLB bond")
        if not hash_text.isdigit():
            raise ValueError("bad hash")
        m = self._by_name(name)
        if m is None:
            raise ValueError("no such member")
        if not m.enabled:
            raise ValueError("cannot migrate to disabled member")
        self.buckets[int(hash_text) % BUCKETS] = m.ofport
        return "migrated\n"

    def set_enabled(self, name: str, enable: bool) -> str:
        """bond/enable-member, bond/disable-member (as in Open vSwitch, a link that is
        up re-enables a disabled member after its updelay at the next run)."""
        m = self._by_name(name)
        if m is None:
            raise ValueError("no such member")
        self._enable(m, enable)
        return "enabled\n" if enable else "disabled\n"

    def show(self, now: float) -> str:
        """``ovs-appctl bond/show`` text, as Open vSwitch 3.1 prints it."""
        cfg = self.cfg
        out = [
            f"---- {self.name} ----",
            f"bond_mode: {cfg.mode}",
            "bond may use recirculation: no, Recirc-ID : -1",
            "bond-hash-basis: 0",
            "lb_output action: disabled, bond-id: -1",
        ]
        if cfg.mode == "balance-slb":
            out.append("all members active: false")
        out += [f"updelay: {cfg.updelay} ms", f"downdelay: {cfg.downdelay} ms"]
        if cfg.mode != "active-backup" and cfg.rebalance_interval:
            left = cfg.rebalance_interval / 1000
            if self.next_rebalance is not None:
                left = max(0.0, self.next_rebalance - now)
            out.append(f"next rebalance: {int(left * 1000)} ms")
        out += [
            f"lacp_status: {self.lacp_status}",
            f"lacp_fallback_ab: {'true' if cfg.lacp_fallback_ab else 'false'}",
            f"active-backup primary: {cfg.primary or '<none>'}",
        ]
        act = self.members.get(self.active) if self.active is not None else None
        if act is None:
            out.append("active member mac: 00:00:00:00:00:00(none)")
        else:
            out.append(f"active member mac: {_mac(act.mac)}({act.name})")
        out.append("")
        for m in sorted(self.members.values(), key=_by_name):
            out.append(f"member {m.name}: {'enabled' if m.enabled else 'disabled'}")
            if m.ofport == self.active:
                out.append("  active member")
            if m.delay_expires is not None:
                kind = "downdelay" if m.enabled else "updelay"
                out.append(f"  {kind} expires in {max(0, round((m.delay_expires - now) * 1000))} ms")
            out.append(f"  may_enable: {'true' if m.carrier and m.may_enable else 'false'}")
            if cfg.mode != "active-backup":
                n = sum(1 for b in self.buckets if b == m.ofport)
                if n:
                    out.append(f"  hash buckets: {n}")
                for i, b in enumerate(self.buckets):
                    if b == m.ofport and self.loads[i]:
                        out.append(f"  hash {i}: {self.loads[i] // 1024} kB load")
            out.append("")
        return "\n".join(out) + "\n"

    def active_mac(self) -> str | None:
        """Port.bond_active_slave: the active member's MAC (None without one)."""
        act = self.members.get(self.active) if self.active is not None else None
        return None if act is None else _mac(act.mac)

    # Handoff ---------------------------------------------------------------------
    def export_state(self, now: float) -> dict[str, Any]:
        """The learned state by member name: which are enabled, the active one, each
        bucket's member, pending delays (remaining seconds)."""
        names = {n: m.name for n, m in self.members.items()}
        return {
            "active": names.get(self.active) if self.active is not None else None,
            "enabled": sorted(m.name for m in self.members.values() if m.enabled),
            "buckets": [names.get(b) if b is not None else None for b in self.buckets],
            "loads": list(self.loads),
            "rebalance_in": None if self.next_rebalance is None else self.next_rebalance - now,
            "delays": {
                m.name: m.delay_expires - now
                for m in self.members.values()
                if m.delay_expires is not None
            },
        }

    def import_state(self, data: dict[str, Any], now: float) -> None:
        by_name = {m.name: m for m in self.members.values()}
        for name in data.get("enabled", []):
            if name in by_name:
                by_name[name].enabled = True
                by_name[name].announced = True
        act = by_name.get(data.get("active") or "")
        self.active = act.ofport if act is not None else None
        buckets = data.get("buckets", [])
        if len(buckets) == BUCKETS:
            self.buckets = [by_name[b].ofport if b in by_name else None for b in buckets]
        loads = data.get("loads", [])
        if len(loads) == BUCKETS:
            self.loads[:] = [int(x) for x in loads]  # in place: flows' credits point here
        if data.get("rebalance_in") is not None:
            self.next_rebalance = now + float(data["rebalance_in"])
        for name, left in data.get("delays", {}).items():
            if name in by_name:
                by_name[name].delay_expires = now + float(left)


RARP = 0x8035


def learning_packet(mac: bytes, vid: int) -> bytes:
    """A gratuitous RARP from ``mac`` (tagged with ``vid`` unless 0): sent out a bond
    after its active member changed, so the switch or host on the other side learns that
    ``mac`` is now reached through the new member (as Open vSwitch does)."""
    tag = b"\x81\x00" + vid.to_bytes(2, "big") if vid else b""
    arp = (
        b"\x00\x01\x08\x00\x06\x04\x00\x03"  # Ethernet/IPv4, reverse request
        + mac
        + b"\0" * 4
        + mac
        + b"\0" * 4
    )
    frame = b"\xff" * 6 + mac + tag + RARP.to_bytes(2, "big") + arp
    return frame.ljust(60, b"\0")


def _by_name(m: Member) -> str:
    return m.name


def _mac(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
