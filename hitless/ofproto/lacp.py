"""LACP (IEEE 802.1AX, formerly 802.3ad clause 43): the PDU codec and the per-bond
negotiation that decides which members may carry traffic.

Sans-IO: ``Lacp.receive(ofport, frame, now)`` takes a received PDU, ``Lacp.run(now)``
returns the PDUs to send as ``(ofport, frame)``; the bridge puts them on the wire.
Time comes in as ``now`` (seconds).

The model follows Open vSwitch's (lib/lacp.c as documented in ovs-vswitchd.conf.db(5)
and lacp/show), not the full 802.1AX state machines:

* Each member is ``current`` (a PDU arrived within the timeout), ``expired`` (the
  timeout passed once: we ask the partner for fast PDUs) or ``defaulted`` (twice: the
  partner is forgotten). The timeout is 3 transmit intervals of the partner's rate
  (fast: 1 s, slow: 30 s).
* Members whose partner is the same system and key as the lead member's (the best
  priority among members that are not defaulted) are ``attached``; a member may carry
  traffic when attached and its partner says it is synchronized, or, with
  ``other_config:lacp-fallback-ab``, when it is defaulted (no partner at all).
* Our actor state: activity when active (``lacp=active``), timeout when
  ``other_config:lacp-time=fast``, aggregation always, synchronized, collecting and
  distributing when attached, expired/defaulted as the member is.
* Active members send a PDU every interval the partner asked for (fast 1 s, slow 30 s)
  and at once when what we would say changed; passive members send only when the
  partner is active.

* The Marker Responder (802.1AX-2014 6.5): a Marker Information PDU received on a member
  is answered on that member with a Marker Response carrying the requester's port,
  system and transaction id (Open vSwitch 3.1 counts marker PDUs and answers none).

The wire layout of an actor/partner TLV is described once (``_INFO``) and used both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import IntFlag
from typing import Any

__all__ = [
    "LACP_DST",
    "LACP_ETH_TYPE",
    "Lacp",
    "LacpInfo",
    "LacpState",
    "decode_pdu",
    "encode_pdu",
]

LACP_DST = bytes.fromhex("0180c2000002")  # Slow_Protocols_Multicast (802.3 Annex 57A)
LACP_ETH_TYPE = 0x8809  # Slow_Protocols_Type
SUBTYPE_LACP = 1
SUBTYPE_MARKER = 2
MARKER_INFO, MARKER_RESPONSE = 1, 2  # Marker PDU TLV types
_MARKER = struct.Struct("!BBH6sI2x")  # TLV type, length 16, port, system, transaction
FAST_INTERVAL = 1.0  # seconds between PDUs when the partner asks for short timeouts
SLOW_INTERVAL = 30.0
DEFAULT_PRIORITY = 65535  # port priority
DEFAULT_SYSTEM_PRIORITY = 65534  # as Open vSwitch


class LacpState(IntFlag):
    """Actor/Partner_State bits (802.1AX-2014 6.4.2.3)."""

    ACTIVITY = 0x01
    TIMEOUT = 0x02  # short timeout (fast PDUs)
    AGGREGATION = 0x04
    SYNC = 0x08
    COLLECTING = 0x10
    DISTRIBUTING = 0x20
    DEFAULTED = 0x40
    EXPIRED = 0x80


_STATE_NAMES = (
    (LacpState.ACTIVITY, "activity"),
    (LacpState.TIMEOUT, "timeout"),
    (LacpState.AGGREGATION, "aggregation"),
    (LacpState.SYNC, "synchronized"),
    (LacpState.COLLECTING, "collecting"),
    (LacpState.DISTRIBUTING, "distributing"),
    (LacpState.DEFAULTED, "defaulted"),
    (LacpState.EXPIRED, "expired"),
)


@dataclass(frozen=True, slots=True)
class LacpInfo:
    """One side's identity and state as a PDU carries it (Actor or Partner TLV)."""

    sys_priority: int = 0
    sys_id: bytes = b"\0" * 6
    key: int = 0
    port_priority: int = 0
    port_id: int = 0
    state: int = 0

    def same_aggregator(self, other: LacpInfo) -> bool:
        return (self.sys_priority, self.sys_id, self.key) == (
            other.sys_priority,
            other.sys_id,
            other.key,
        )


# TLV type, length, system priority, system, key, port priority, port, state, reserved
_INFO = struct.Struct("!BBH6sHHHB3x")
_HEADER = struct.Struct("!6s6sHBB")  # dst, src, EtherType, subtype, version
_COLLECTOR = struct.Struct("!BBH12x")  # type 3, length 16, max delay
_TERMINATOR = struct.Struct("!BB50x")  # type 0, length 0, reserved
PDU_LEN = _HEADER.size + 2 * _INFO.size + _COLLECTOR.size + _TERMINATOR.size  # 124


def _pack_info(tlv: int, info: LacpInfo) -> bytes:
    return _INFO.pack(
        tlv,
        _INFO.size,
        info.sys_priority,
        info.sys_id,
        info.key,
        info.port_priority,
        info.port_id,
        info.state,
    )


def _unpack_info(data: bytes, offset: int, tlv: int) -> LacpInfo:
    t, length, prio, sys_id, key, pprio, port, state = _INFO.unpack_from(data, offset)
    if t != tlv or length != _INFO.size:
        raise ValueError(f"TLV {tlv} expected, found type {t} length {length}")
    return LacpInfo(prio, sys_id, key, pprio, port, state)


def encode_pdu(src: bytes, actor: LacpInfo, partner: LacpInfo) -> bytes:
    """An LACPDU Ethernet frame from ``src`` (the member's MAC)."""
    return (
        _HEADER.pack(LACP_DST, src, LACP_ETH_TYPE, SUBTYPE_LACP, 1)
        + _pack_info(1, actor)
        + _pack_info(2, partner)
        + _COLLECTOR.pack(3, _COLLECTOR.size, 0)
        + _TERMINATOR.pack(0, 0)
    )


def marker_response(frame: bytes, src: bytes) -> bytes | None:
    """The Marker Response (from ``src``) to a Marker Information PDU; None for anything
    else (a response, a short or malformed frame)."""
    if len(frame) < _HEADER.size + _MARKER.size:
        return None
    _, _, eth_type, subtype, _version = _HEADER.unpack_from(frame)
    tlv, length, port, system, xid = _MARKER.unpack_from(frame, _HEADER.size)
    if eth_type != LACP_ETH_TYPE or subtype != SUBTYPE_MARKER or tlv != MARKER_INFO:
        return None
    if length != _MARKER.size:
        return None
    body = _MARKER.pack(MARKER_RESPONSE, _MARKER.size, port, system, xid)
    frame_out = _HEADER.pack(LACP_DST, src, LACP_ETH_TYPE, SUBTYPE_MARKER, 1) + body
    return (frame_out + _TERMINATOR.pack(0, 0)).ljust(_HEADER.size + 108, b"\0")


def decode_pdu(frame: bytes) -> tuple[LacpInfo, LacpInfo]:
    """(actor, partner) of an LACPDU frame; raises ValueError for anything else (a
    Marker PDU, a short or malformed frame)."""
    if len(frame) < _HEADER.size + 2 * _INFO.size:
        raise ValueError(f"short LACPDU ({len(frame)} bytes)")
    _, _, eth_type, subtype, _version = _HEADER.unpack_from(frame)
    if eth_type != LACP_ETH_TYPE:
        raise ValueError(f"not a slow protocol frame (EtherType {eth_type:#06x})")
    if subtype != SUBTYPE_LACP:
        raise ValueError(f"slow protocol subtype {subtype} is not LACP")
    actor = _unpack_info(frame, _HEADER.size, 1)
    partner = _unpack_info(frame, _HEADER.size + _INFO.size, 2)
    return actor, partner


def format_state(state: int) -> str:
    return " ".join(name for bit, name in _STATE_NAMES if state & bit)


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


@dataclass(slots=True)
class LacpMember:
    name: str
    ofport: int
    mac: bytes
    port_id: int
    carrier: bool = False
    status: str = "expired"  # current | expired | defaulted
    # Expired asks for fast PDUs: a new member sends every second until it hears one.
    partner: LacpInfo = field(default_factory=lambda: LacpInfo(state=LacpState.TIMEOUT))
    their_view: LacpInfo = field(default_factory=LacpInfo)  # the partner TLV it sent
    rx_expires: float | None = None
    tx_next: float = 0.0
    ntt: bool = True  # need to transmit
    attached: bool = False
    sent_actor: LacpInfo | None = None
    # statistics (lacp/show-stats)
    tx_pdus: int = 0
    rx_pdus: int = 0
    rx_bad: int = 0
    rx_marker: int = 0
    tx_marker: int = 0  # Marker Responses sent
    expired_count: int = 0
    defaulted_count: int = 0
    carrier_changes: int = 0


class Lacp:
    def __init__(
        self,
        name: str,
        active: bool = True,
        fast: bool = False,
        sys_id: bytes = b"\0" * 6,
        sys_priority: int = DEFAULT_SYSTEM_PRIORITY,
    ) -> None:
        self.name = name
        self.active = active
        self.fast = fast
        self.sys_id = sys_id
        self.sys_priority = sys_priority
        self.members: dict[int, LacpMember] = {}  # ofport -> member
        self.fallback_ab = False  # other_config:lacp-fallback-ab
        self._responses: list[tuple[int, bytes]] = []  # Marker Responses to send

    # Configuration ---------------------------------------------------------------
    def configure(
        self,
        active: bool,
        fast: bool,
        sys_id: bytes,
        sys_priority: int,
        members: Sequence[tuple[str, int, bytes]],
        fallback_ab: bool = False,
    ) -> None:
        """Settings and members (name, ofport, MAC); the port id is the ofport. With
        ``fallback_ab`` a member whose partner is defaulted may carry traffic (the
        bond then runs as active-backup)."""
        self.fallback_ab = fallback_ab
        if (active, fast, sys_id, sys_priority) != (
            self.active,
            self.fast,
            self.sys_id,
            self.sys_priority,
        ):
            for m in self.members.values():
                m.ntt = True
        self.active, self.fast, self.sys_id, self.sys_priority = active, fast, sys_id, sys_priority
        want = {no: (name, mac) for name, no, mac in members}
        for no in [n for n in self.members if n not in want]:
            del self.members[no]
        for no, (name, mac) in want.items():
            cur = self.members.get(no)
            if cur is None or cur.name != name:
                self.members[no] = LacpMember(name, no, mac, port_id=no)
            else:
                cur.mac = mac
        self._update_attached()

    @property
    def key(self) -> int:
        """The aggregation key: the lowest member port id (as Open vSwitch's default)."""
        return min((m.port_id for m in self.members.values()), default=0)

    def set_carrier(self, ofport: int, up: bool, now: float) -> None:
        m = self.members.get(ofport)
        if m is None or m.carrier == up:
            return
        m.carrier = up
        m.carrier_changes += 1
        if not up:
            # A member whose link went down has lost its partner (as a cable pull).
            self._expire(m, now)
        m.ntt = True

    # Negotiation -------------------------------------------------------------------
    def receive(self, ofport: int, frame: bytes, now: float) -> bool:
        """A slow-protocol frame received on member ``ofport``. Returns whether the
        decision which members may carry traffic may have changed."""
        m = self.members.get(ofport)
        if m is None:
            return False
        if len(frame) > 14 and frame[14] == SUBTYPE_MARKER:
            m.rx_marker += 1
            response = marker_response(frame, m.mac)
            if response is not None:
                self._responses.append((ofport, response))
                m.tx_marker += 1
            return False
        try:
            actor, partner = decode_pdu(frame)
        except ValueError:
            m.rx_bad += 1
            return False
        m.rx_pdus += 1
        before = self._decisions()
        timeout = FAST_INTERVAL if actor.state & LacpState.TIMEOUT else SLOW_INTERVAL
        m.rx_expires = now + 3 * timeout
        if m.status != "current" or m.partner != actor:
            m.ntt = True
        m.status = "current"
        m.partner = actor
        if partner != m.their_view:
            m.their_view = partner
        if m.sent_actor is not None and not _agrees(partner, m.sent_actor):
            m.ntt = True  # the partner's view of us is stale: tell it again
        self._update_attached()
        return self._decisions() != before

    def _expire(self, m: LacpMember, now: float) -> None:
        if m.status == "current":
            m.status = "expired"
            m.expired_count += 1
            # Ask for fast PDUs while we wait (as 802.1AX's expired state does).
            m.partner = replace(m.partner, state=m.partner.state | LacpState.TIMEOUT)
            m.rx_expires = now + 3 * FAST_INTERVAL

    def run(self, now: float) -> tuple[list[tuple[int, bytes]], bool]:
        """Timers: expire partners, transmit PDUs. Returns (PDUs to send, whether the
        members that may carry traffic changed)."""
        before = self._decisions()
        for m in self.members.values():
            if m.rx_expires is None and m.status == "expired":
                m.rx_expires = now + 3 * FAST_INTERVAL  # a new member: defaulted unless heard
            if m.rx_expires is not None and now >= m.rx_expires:
                if m.status == "current":
                    self._expire(m, now)
                else:
                    m.status = "defaulted"
                    m.defaulted_count += 1
                    m.partner = LacpInfo()
                    m.rx_expires = None
                m.ntt = True
        self._update_attached()
        out, self._responses = self._responses, []
        for m in sorted(self.members.values(), key=lambda m: m.ofport):
            if not m.carrier:
                continue
            if not (self.active or m.partner.state & LacpState.ACTIVITY):
                continue  # passive and the partner is passive too: say nothing
            actor = self.actor(m)
            if actor != m.sent_actor:
                m.ntt = True
            if m.ntt or now >= m.tx_next:
                out.append((m.ofport, encode_pdu(m.mac, actor, self.partner_info(m))))
                m.sent_actor = actor
                m.ntt = False
                m.tx_pdus += 1
                m.tx_next = now + self._interval(m)
        return out, self._decisions() != before

    def _interval(self, m: LacpMember) -> float:
        return FAST_INTERVAL if m.partner.state & LacpState.TIMEOUT else SLOW_INTERVAL

    def next_wakeup(self, now: float) -> float | None:
        times: list[float] = []
        for m in self.members.values():
            if m.rx_expires is not None:
                times.append(m.rx_expires)
            if m.carrier and (self.active or m.partner.state & LacpState.ACTIVITY):
                times.append(now if m.ntt else m.tx_next)
        return min(times) if times else None

    def _update_attached(self) -> None:
        lead: LacpMember | None = None
        for m in self.members.values():
            if m.status == "defaulted":
                m.attached = self.fallback_ab and m.carrier
                continue
            m.attached = m.carrier
            if m.attached and (lead is None or _priority(m) < _priority(lead)):
                lead = m  # a member that hears its partner leads before one that does not
        for m in self.members.values():
            if m.attached and lead is not None and not m.partner.same_aggregator(lead.partner):
                m.attached = False

    def _decisions(self) -> tuple[object, ...]:
        return tuple(sorted((no, self.may_enable(no)) for no in self.members)) + (self.status,)

    # Decisions ---------------------------------------------------------------------
    def may_enable(self, ofport: int) -> bool:
        m = self.members.get(ofport)
        if m is None or not m.attached:
            return False
        if m.status == "defaulted":
            return self.fallback_ab
        return bool(m.partner.state & LacpState.SYNC)

    @property
    def status(self) -> str:
        """negotiated (a partner answered on some member) or configured."""
        if any(m.status == "current" for m in self.members.values()):
            return "negotiated"
        return "configured"

    def actor(self, m: LacpMember) -> LacpInfo:
        state = LacpState.AGGREGATION
        if self.active:
            state |= LacpState.ACTIVITY
        if self.fast:
            state |= LacpState.TIMEOUT
        if m.attached:
            state |= LacpState.SYNC | LacpState.COLLECTING | LacpState.DISTRIBUTING
        if m.status == "defaulted":
            state |= LacpState.DEFAULTED
        if m.status == "expired":
            state |= LacpState.EXPIRED
        return LacpInfo(
            self.sys_priority, self.sys_id, self.key, DEFAULT_PRIORITY, m.port_id, int(state)
        )

    def partner_info(self, m: LacpMember) -> LacpInfo:
        return m.partner

    # Management ----------------------------------------------------------------------
    def show(self) -> str:
        """``ovs-appctl lacp/show`` text, as Open vSwitch 3.1 prints it."""
        out = [
            f"---- {self.name} ----",
            f"  status: {'active' if self.active else 'passive'} {self.status}",
            f"  sys_id: {_mac(self.sys_id)}",
            f"  sys_priority: {self.sys_priority}",
            f"  aggregation key: {self.key}",
            f"  lacp_time: {'fast' if self.fast else 'slow'}",
            "",
        ]
        for m in sorted(self.members.values(), key=lambda m: m.name):
            actor, p = self.actor(m), m.partner
            out += [
                f"member: {m.name}: {m.status} {'attached' if m.attached else 'detached'}",
                f"  port_id: {m.port_id}",
                f"  port_priority: {DEFAULT_PRIORITY}",
                f"  may_enable: {'true' if self.may_enable(m.ofport) else 'false'}",
                "",
                f"  actor sys_id: {_mac(actor.sys_id)}",
                f"  actor sys_priority: {actor.sys_priority}",
                f"  actor port_id: {actor.port_id}",
                f"  actor port_priority: {actor.port_priority}",
                f"  actor key: {actor.key}",
                f"  actor state: {format_state(actor.state)}",
                "",
                f"  partner sys_id: {_mac(p.sys_id)}",
                f"  partner sys_priority: {p.sys_priority}",
                f"  partner port_id: {p.port_id}",
                f"  partner port_priority: {p.port_priority}",
                f"  partner key: {p.key}",
                f"  partner state: {format_state(p.state)}",
                "",
            ]
        return "\n".join(out)

    def show_stats(self) -> str:
        """``ovs-appctl lacp/show-stats`` text."""
        out = [f"---- {self.name} statistics ----", ""]
        for m in sorted(self.members.values(), key=lambda m: m.name):
            out += [
                f"member: {m.name}:",
                f"  TX PDUs: {m.tx_pdus}",
                f"  RX PDUs: {m.rx_pdus}",
                f"  RX Bad PDUs: {m.rx_bad}",
                f"  RX Marker Request PDUs: {m.rx_marker}",
                f"  Link Expired: {m.expired_count}",
                f"  Link Defaulted: {m.defaulted_count}",
                f"  Carrier Status Changed: {m.carrier_changes}",
                "",
            ]
        return "\n".join(out)

    # Handoff -------------------------------------------------------------------------
    def export_state(self, now: float) -> dict[str, Any]:
        """Each member's partner and timers (remaining seconds), by member name."""
        return {
            m.name: {
                "status": m.status,
                "partner": _info_json(m.partner),
                "rx_expires": None if m.rx_expires is None else m.rx_expires - now,
                "tx_next": m.tx_next - now,
            }
            for m in self.members.values()
        }

    def import_state(self, data: dict[str, Any], now: float) -> None:
        by_name = {m.name: m for m in self.members.values()}
        for name, d in data.items():
            m = by_name.get(name)
            if m is None:
                continue
            m.status = str(d["status"])
            m.partner = _info_from_json(d["partner"])
            left = d.get("rx_expires")
            m.rx_expires = None if left is None else now + float(left)
            m.tx_next = now + float(d.get("tx_next", 0.0))
            m.ntt = False
        self._update_attached()


def _agrees(view: LacpInfo, actor: LacpInfo) -> bool:
    """Whether the partner's view of us (its Partner TLV) matches what we sent, in the
    fields that matter for aggregation."""
    return (
        view.sys_priority,
        view.sys_id,
        view.key,
        view.port_priority,
        view.port_id,
        view.state & _AGREED,
    ) == (
        actor.sys_priority,
        actor.sys_id,
        actor.key,
        actor.port_priority,
        actor.port_id,
        actor.state & _AGREED,
    )


_AGREED = LacpState.ACTIVITY | LacpState.TIMEOUT | LacpState.AGGREGATION | LacpState.SYNC


def _priority(m: LacpMember) -> tuple[bool, int, bytes, int, int]:
    p = m.partner
    return (m.status != "current", p.sys_priority, p.sys_id, p.port_priority, p.port_id)


def _info_json(i: LacpInfo) -> list[Any]:
    return [i.sys_priority, i.sys_id.hex(), i.key, i.port_priority, i.port_id, i.state]


def _info_from_json(d: list[Any]) -> LacpInfo:
    return LacpInfo(int(d[0]), bytes.fromhex(d[1]), int(d[2]), int(d[3]), int(d[4]), int(d[5]))
