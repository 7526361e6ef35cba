"""A generic action interpreter: applies an action list to one packet and returns what
to send where. Providers use it on their slow path (execute, upcall replies); the
netdev fast path compiles common action lists to something cheaper.

Connection tracking: a ``Ct`` action asks the provider's ``ct`` function (its
``Conntrack`` with the provider's clock) and writes the result into the packet's key
(``ct_key``); ``Recirc`` hands a copy of the packet and its key (headers as the packet
now is, ``recirc_id`` set, ct fields kept) back to the provider, which looks it up again
(at most ``MAX_RECIRC_DEPTH`` times per packet) or makes an upcall of it; the actions
after it go on with the packet as it is (a fork, as Open vSwitch's datapaths do: a
group bucket or a clone that recirculates, the rest of the list after it). ``Clone``
runs its actions on a copy (packet, key, priority), ``CheckPktLen`` one branch."""

from __future__ import annotations

import random
from collections.abc import Callable

from hitless.datapath.actions import (
    Action,
    CheckPktLen,
    Clone,
    Ct,
    CtClear,
    Meter,
    Output,
    PopMpls,
    PopVlan,
    PushMpls,
    PushVlan,
    Recirc,
    Sample,
    SetField,
    SetPriority,
    Userspace,
)
from hitless.datapath.conntrack import CS_DNAT, CS_SNAT, CtResult
from hitless.packet import ops
from hitless.packet.flow import CT_OFF, KEY_LEN, extract_key

MeterFn = Callable[[int, int], bool]
"""``meter(meter_id, nbytes)``: False if the meter drops the packet."""
CtFn = Callable[[bytes, Ct, bool], CtResult]
"""``fn(packet, action, natted)``: natted when the packet's ct state says an earlier ct
action of the same zone translated it: run the packet through the provider's connection
tracker (hitless.datapath.conntrack.Conntrack.execute)."""
MAX_RECIRC_DEPTH = 6  # lookups after the first, per packet (Open vSwitch's limit too)
_NO_CT = bytes(KEY_LEN - CT_OFF - 4)
_NATTED = CS_SNAT | CS_DNAT


_rng = random.Random()


def _rand32() -> int:
    """Sample's draw: 32 random bits per packet."""
    return _rng.getrandbits(32)


def ct_key(key: bytes, r: CtResult) -> bytes:
    """``key`` with the ct_* fields of a ct action's result (recirc_id kept)."""
    o = r.orig
    if o is None:
        tail = bytes((r.state, 0)) + r.zone.to_bytes(2, "big") + r.mark.to_bytes(4, "big")
        tail += r.label.to_bytes(16, "big") + bytes(12)
    else:
        v4 = len(o.src) == 4
        tail = b"".join(
            (
                bytes((r.state, o.proto)),
                r.zone.to_bytes(2, "big"),
                r.mark.to_bytes(4, "big"),
                r.label.to_bytes(16, "big"),
                o.src if v4 else bytes(4),
                o.dst if v4 else bytes(4),
                o.sport.to_bytes(2, "big"),
                o.dport.to_bytes(2, "big"),
            )
        )
    return key[: CT_OFF + 4] + tail


def rekey(packet: bytes, key: bytes, recirc_id: int | None = None) -> bytes:
    """The key of ``packet`` (rewritten since ``key`` was taken) with ``key``'s metadata:
    its in_port, its ct fields and its recirc_id (or ``recirc_id``)."""
    in_port = int.from_bytes(key[0:4], "big")
    rid = key[CT_OFF : CT_OFF + 4] if recirc_id is None else recirc_id.to_bytes(4, "big")
    return extract_key(packet, in_port)[:CT_OFF] + rid + key[CT_OFF + 4 :]


def apply_actions(
    packet: bytes,
    actions: tuple[Action, ...],
    meter: MeterFn | None = None,
    *,
    key: bytes | None = None,
    in_port: int = 0,
    ct: CtFn | None = None,
    recirc: list[tuple[bytes, bytes]] | None = None,
    priorities: list[int] | None = None,
    priority: int = 0,
) -> tuple[list[tuple[int, bytes]], list[tuple[bytes, bytes]]]:
    """Returns (outputs, userspace) where outputs is [(port, packet)] in order and
    userspace is [(packet, userdata)] for each Userspace action reached. A ``Meter``
    action asks ``meter`` (None: every meter passes); a drop ends the list there (or, for
    a scoped meter, skips the actions it governs).
    ``key`` is the packet's key (taken from the packet and ``in_port`` if None and a
    ct action needs it); ``ct`` runs ``Ct`` actions (None: they do nothing); a ``Recirc``
    appends (packet, key) to ``recirc`` and the list goes on. ``priorities`` (if given)
    gets the socket priority ``SetPriority`` gave each output (0: none), in order;
    ``priority`` is the packet's before the list."""
    out: list[tuple[int, bytes]] = []
    up: list[tuple[bytes, bytes]] = []
    keyed = packet  # the packet whose headers ``key`` describes (rewrites make it stale)
    skip = 0  # actions a scoped meter's drop still skips
    prio = priority
    for a in actions:
        if skip:
            skip -= 1
            continue
        if isinstance(a, Output):
            out.append((a.port, packet))
            if priorities is not None:
                priorities.append(prio)
        elif isinstance(a, PushVlan):
            packet = ops.push_vlan(packet, a.tci, a.tpid)
        elif isinstance(a, PopVlan):
            packet = ops.pop_vlan(packet)
        elif isinstance(a, PushMpls):
            packet = ops.push_mpls(packet, a.lse, a.ethertype)
        elif isinstance(a, PopMpls):
            packet = ops.pop_mpls(packet, a.ethertype)
        elif isinstance(a, SetField):
            packet = ops.set_field(packet, a.field, a.value, a.mask)
        elif isinstance(a, Userspace):
            up.append((packet, a.userdata))
        elif isinstance(a, Sample):
            if a.probability >= 0xFFFFFFFF or _rand32() < a.probability:
                up.append((packet, a.userdata))
        elif isinstance(a, SetPriority):
            prio = a.priority
        elif isinstance(a, Meter):
            if meter is not None and not meter(a.meter_id, len(packet)):
                if not a.scope:
                    break
                skip = a.scope
        elif isinstance(a, Ct):
            if ct is not None:
                if key is None:
                    key, keyed = extract_key(packet, in_port), packet
                st = key[CT_OFF + 4]
                natted = (
                    bool(st & _NATTED)
                    and int.from_bytes(key[CT_OFF + 6 : CT_OFF + 8], "big") == a.zone
                )
                r = ct(packet, a, natted)
                if r.packet is not packet:  # NAT rewrote it
                    packet = r.packet
                key = ct_key(key, r)
        elif isinstance(a, CtClear):
            if key is not None:
                key = key[: CT_OFF + 4] + _NO_CT
        elif isinstance(a, Recirc):
            if recirc is not None:
                if key is not None and keyed is packet:  # headers unchanged: splice the id
                    rkey = key[:CT_OFF] + a.recirc_id.to_bytes(4, "big") + key[CT_OFF + 4 :]
                else:
                    rkey = rekey(packet, key or extract_key(packet, in_port), a.recirc_id)
                recirc.append((packet, rkey))
        elif isinstance(a, CheckPktLen | Clone):
            # One branch (or the clone's actions) on a copy: its headers, ct fields
            # and priority; the list goes on with the packet as it was.
            if isinstance(a, Clone):
                branch = a.actions
            else:
                branch = a.gt if len(packet) > a.size else a.le
            bkey = key if key is None or keyed is packet else rekey(packet, key)
            o2, u2 = apply_actions(
                packet,
                branch,
                meter,
                key=bkey,
                in_port=in_port,
                ct=ct,
                recirc=recirc,
                priorities=priorities,
                priority=prio,
            )
            out += o2
            up += u2
    return out, up
