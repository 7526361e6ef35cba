"""Datapath actions: small immutable values. A flow's actions are a tuple applied in
order to the packet; an empty tuple drops it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Output:
    port: int

    def __str__(self) -> str:
        return str(self.port)


@dataclass(frozen=True, slots=True)
class PushVlan:
    tci: int  # PCP<<13 | VID (VLAN_PRESENT bit ignored)
    tpid: int = 0x8100

    def __str__(self) -> str:
        return f"push_vlan(vid={self.tci & 0xFFF},pcp={self.tci >> 13})"


@dataclass(frozen=True, slots=True)
class PopVlan:
    def __str__(self) -> str:
        return "pop_vlan"


@dataclass(frozen=True, slots=True)
class SetField:
    """Rewrite a flow-key field (see hitless.packet.flow.FIELDS) in the packet,
    fixing checksums. ``mask`` None means the whole field."""

    field: str
    value: bytes
    mask: bytes | None = None

    def __str__(self) -> str:
        v = self.value.hex()
        return f"set({self.field}={v}{'/' + self.mask.hex() if self.mask else ''})"


@dataclass(frozen=True, slots=True)
class Userspace:
    """Send the packet to the daemon as an upcall with reason 'action'."""

    userdata: bytes = b""

    def __str__(self) -> str:
        return f"userspace({self.userdata.hex()})" if self.userdata else "userspace"


Action = Output | PushVlan | PopVlan | SetField | Userspace


def format_actions(actions: tuple[Action, ...]) -> str:
    return ",".join(str(a) for a in actions) if actions else "drop"
