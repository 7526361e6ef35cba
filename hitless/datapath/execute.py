"""A generic action interpreter: applies an action list to one packet and returns what
to send where. Providers use it on their slow path (execute, upcall replies); the
netdev fast path compiles common action lists to something cheaper."""

from __future__ import annotations

from hitless.datapath.actions import Action, Output, PopVlan, PushVlan, SetField, Userspace
from hitless.packet import ops


def apply_actions(
    packet: bytes, actions: tuple[Action, ...]
) -> tuple[list[tuple[int, bytes]], list[tuple[bytes, bytes]]]:
    """Returns (outputs, userspace) where outputs is [(port, packet)] in order and
    userspace is [(packet, userdata)] for each Userspace action reached."""
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
    return out, up
