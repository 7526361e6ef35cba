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


@dataclass(frozen=True, slots=True)
class Meter:
    """Run the packet through datapath meter ``meter_id`` (see hitless.datapath.meters):
    if a drop band applies, the packet goes no further (actions before this one have
    already happened). A meter the datapath does not have lets the packet pass."""

    meter_id: int

    def __str__(self) -> str:
        return f"meter({self.meter_id})"


Action = Output | PushVlan | PopVlan | SetField | Userspace | Meter


def format_actions(actions: tuple[Action, ...]) -> str:
    return ",".join(str(a) for a in actions) if actions else "drop"


# ---------------------------------------------------------------------------------
# A JSON-able form, for state snapshots (handoff). Each action is a short list whose
# first element names it: ["output", 2], ["push_vlan", tci, tpid], ["pop_vlan"],
# ["set_field", field, value_hex, mask_hex_or_None], ["userspace", userdata_hex],
# ["meter", meter_id].


def actions_to_json(actions: tuple[Action, ...]) -> list[list[object]]:
    out: list[list[object]] = []
    for a in actions:
        if isinstance(a, Output):
            out.append(["output", a.port])
        elif isinstance(a, PushVlan):
            out.append(["push_vlan", a.tci, a.tpid])
        elif isinstance(a, PopVlan):
            out.append(["pop_vlan"])
        elif isinstance(a, SetField):
            out.append(["set_field", a.field, a.value.hex(), a.mask.hex() if a.mask else None])
        elif isinstance(a, Userspace):
            out.append(["userspace", a.userdata.hex()])
        elif isinstance(a, Meter):
            out.append(["meter", a.meter_id])
        else:  # pragma: no cover - Action is a closed union
            raise TypeError(f"cannot serialise action {a!r}")
    return out


def actions_from_json(data: list[list[object]]) -> tuple[Action, ...]:
    """Inverse of actions_to_json; raises ValueError naming the bad element."""
    out: list[Action] = []
    for item in data:
        try:
            name, *args = item
            if name == "output":
                out.append(Output(int(args[0])))  # type: ignore[call-overload]
            elif name == "push_vlan":
                out.append(PushVlan(int(args[0]), int(args[1])))  # type: ignore[call-overload]
            elif name == "pop_vlan":
                out.append(PopVlan())
            elif name == "set_field":
                mask = args[2]
                out.append(
                    SetField(
                        str(args[0]),
                        bytes.fromhex(str(args[1])),
                        bytes.fromhex(str(mask)) if mask is not None else None,
                    )
                )
            elif name == "userspace":
                out.append(Userspace(bytes.fromhex(str(args[0]))))
            elif name == "meter":
                out.append(Meter(int(args[0])))  # type: ignore[call-overload]
            else:
                raise ValueError(f"unknown action {name!r}")
        except (ValueError, TypeError, IndexError) as e:
            raise ValueError(f"bad serialised action {item!r}: {e}") from None
    return tuple(out)
