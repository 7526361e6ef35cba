"""A generic action interpreter: applies an action list to one packet and returns what
to send where. Providers use it on their slow path (execute, upcall replies); the
netdev fast path compiles common action lists to something cheaper."""

from __future__ import annotations

from collections.abc import Callable

from hitless.datapath.actions import (
    Action,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    SetField,
    Userspace,
)
from hitless.packet import ops

MeterFn = Callable[[int, int], bool]
"""``meter(meter_id, nbytes)``: False if the meter drops the packet."""


def apply_actions(
    packet: bytes, actions: tuple[Action, ...], meter: MeterFn | None = None
) -> tuple[list[tuple[int, bytes]], list[tuple[bytes, bytes]]]:
    """Returns (outputs, userspace) where outputs is [(port, packet)] in order and
    userspace is [(packet, userdata)] for each Userspace action reached. A ``Meter``
    action asks ``meter`` (None: every meter passes); a drop ends the list there."""
    out: list[tuple[int, bytes]] = []
    up: list[tuple[bytes, bytes]] = []
    for a in actions:
        if isinstance(a, Output):
            out.append((a.port, packet))
        elif isinstance(a, PushVlan):
            packet = ops.push_vlan(packet, a.tci, a.tpid)
        elif isinstance(a, PopVlan):
            packet = ops.pop_vlan(packet)
        elif isinstance(a, SetField):
            packet = ops.set_field(packet, a.field, a.value, a.mask)
        elif isinstance(a, Userspace):
            up.append((packet, a.userdata))
        elif isinstance(a, Meter) and meter is not None and not meter(a.meter_id, len(packet)):
            break
    return out, up
