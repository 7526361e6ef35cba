"""Datapath actions: small immutable values. A flow's actions are a tuple applied in
order to the packet; an empty tuple drops it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from hitless.datapath.conntrack import NatSpec
from hitless.state import records as rec


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
class PushMpls:
    """Insert an MPLS label stack entry ``lse`` (label<<12 | tc<<9 | bos<<8 | ttl) where
    the L3 header starts; the EtherType before it becomes ``ethertype``."""

    lse: int
    ethertype: int = 0x8847

    def __str__(self) -> str:
        v = self.lse
        return (
            f"push_mpls(label={v >> 12},tc={(v >> 9) & 7},ttl={v & 0xFF},bos={(v >> 8) & 1},"
            f"eth_type={self.ethertype:#x})"
        )


@dataclass(frozen=True, slots=True)
class PopMpls:
    """Remove the top MPLS label stack entry; the EtherType becomes ``ethertype``."""

    ethertype: int

    def __str__(self) -> str:
        return f"pop_mpls(eth_type={self.ethertype:#x})"


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
class Sample:
    """With probability ``probability`` / 2**32 (UINT32_MAX: always), send the packet to
    the daemon as an upcall with reason 'action' carrying ``userdata``; the packet itself
    goes on with the rest of the list either way (Open vSwitch's
    ``sample(sample=P,actions(userspace(...)))``, as sFlow uses it)."""

    probability: int
    userdata: bytes = b""

    def __str__(self) -> str:
        pct = self.probability * 100 / 0xFFFFFFFF
        return f"sample(sample={pct:.1f}%,actions(userspace({self.userdata.hex()})))"


@dataclass(frozen=True, slots=True)
class Meter:
    """Run the packet through datapath meter ``meter_id`` (see hitless.datapath.meters):
    if a drop band applies, the packet goes no further (actions before this one have
    already happened). A meter the datapath does not have lets the packet pass.

    With ``scope`` n > 0 the meter governs only the next n actions: a drop skips them and
    the list goes on (a port's egress policer before that port's output, leaving the
    other outputs of a flood alone)."""

    meter_id: int
    scope: int = 0

    def __str__(self) -> str:
        if self.scope:
            return f"meter({self.meter_id},scope={self.scope})"
        return f"meter({self.meter_id})"


@dataclass(frozen=True, slots=True)
class SetPriority:
    """Give the packet's later outputs the socket priority ``priority`` (Open vSwitch's
    ``set(skb_priority(...))``): a tc qdisc on the output device classifies by it, so
    ``0x10000 | (queue + 1)`` puts the packet in class ``1:<queue+1>`` of an htb or hfsc
    tree with root ``1:`` (how OpenFlow's set_queue picks a QoS queue). 0: none."""

    priority: int

    def __str__(self) -> str:
        return f"set(skb_priority({self.priority:#x}))"


@dataclass(frozen=True, slots=True)
class Ct:
    """Send the packet through the datapath's connection tracker in ``zone`` (see
    hitless.datapath.conntrack): the packet's ct_* key fields take the result. With
    ``commit`` the connection is created and ``mark``/``label`` (value, mask) set;
    ``nat`` rewrites the packet by the connection's translation."""

    zone: int = 0
    commit: bool = False
    force: bool = False
    nat: NatSpec | None = None
    mark: tuple[int, int] | None = None
    label: tuple[int, int] | None = None

    def __str__(self) -> str:
        parts = ["commit"] if self.commit and not self.force else []
        if self.force:
            parts.append("force_commit")
        if self.zone:
            parts.append(f"zone={self.zone}")
        if self.mark is not None:
            parts.append(f"mark={self.mark[0]:#x}/{self.mark[1]:#x}")
        if self.label is not None:
            parts.append(f"label={self.label[0]:#x}/{self.label[1]:#x}")
        if self.nat is not None:
            parts.append(format_nat(self.nat))
        return f"ct({','.join(parts)})" if parts else "ct"


def format_nat(nat: NatSpec) -> str:
    """nat, nat(src), nat(src=10.0.0.1-10.0.0.9:2000-2999,persistent) as Open vSwitch
    writes it."""
    if nat.kind is None:
        return "nat"
    if not nat.addr_min:  # zero SNAT
        return f"nat({nat.kind})"
    addr = str(ipaddress.ip_address(nat.addr_min))
    if nat.addr_max and nat.addr_max != nat.addr_min:
        addr += f"-{ipaddress.ip_address(nat.addr_max)}"
    if len(nat.addr_min) == 16 and nat.port_min:
        addr = f"[{addr}]"
    if nat.port_min:
        addr += f":{nat.port_min}"
        if nat.port_max and nat.port_max != nat.port_min:
            addr += f"-{nat.port_max}"
    flags = "".join(
        f",{n}" for n, on in (("persistent", nat.persistent), ("random", nat.random)) if on
    )
    return f"nat({nat.kind}={addr}{flags})"


@dataclass(frozen=True, slots=True)
class CtClear:
    """Forget the packet's connection-tracking state (its ct_* key fields become 0)."""

    def __str__(self) -> str:
        return "ct_clear"


@dataclass(frozen=True, slots=True)
class Recirc:
    """Look the packet up again with ``recirc_id`` set in its key (and the ct_* fields an
    earlier ``Ct`` gave it); a miss becomes an upcall carrying that key. A copy goes: the
    actions after it run on the packet as it is (Open vSwitch's datapaths fork too)."""

    recirc_id: int

    def __str__(self) -> str:
        return f"recirc({self.recirc_id:#x})"


@dataclass(frozen=True, slots=True)
class CheckPktLen:
    """Run ``gt`` if the frame (Ethernet header on, no FCS) is longer than ``size``
    bytes, else ``le``, each on a copy of the packet; the list goes on after with the
    packet as it was (Open vSwitch's ``check_pkt_len``, what ``check_pkt_larger``
    becomes)."""

    size: int
    gt: tuple[Action, ...]
    le: tuple[Action, ...]

    def __str__(self) -> str:
        return f"check_pkt_len(size={self.size},gt({format_actions(self.gt)}),le({format_actions(self.le)}))"


@dataclass(frozen=True, slots=True)
class Clone:
    """Run ``actions`` on a copy of the packet (its headers, ct fields and priority);
    the list goes on after with the packet as it was (Open vSwitch's datapath
    ``clone``: what a ``clone()`` whose actions cannot be undone by rewrites, a ct,
    becomes)."""

    actions: tuple[Action, ...]

    def __str__(self) -> str:
        return f"clone({format_actions(self.actions)})"


Action = (
    Output
    | PushVlan
    | PopVlan
    | PushMpls
    | PopMpls
    | SetField
    | Userspace
    | Sample
    | Meter
    | SetPriority
    | Ct
    | CtClear
    | Recirc
    | CheckPktLen
    | Clone
)


def format_actions(actions: tuple[Action, ...]) -> str:
    return ",".join(str(a) for a in actions) if actions else "drop"


# ---------------------------------------------------------------------------------
# A JSON-able form, for state snapshots (handoff). Each action is a short list whose
# first element names it: ["output", 2], ["push_vlan", tci, tpid], ["pop_vlan"],
# ["set_field", field, value_hex, mask_hex_or_None], ["userspace", userdata_hex],
# ["sample", probability, userdata_hex],
# ["meter", meter_id] or ["meter", meter_id, scope], ["set_priority", priority], ["ct", zone, commit, force, nat, mark, label] (nat: None or
# [kind, addr_min_hex, addr_max_hex, port_min, port_max, persistent, random]; mark and
# label: None or [value, mask]), ["ct_clear"], ["recirc", id],
# ["check_pkt_len", size, gt_actions, le_actions] (the two lists in this same form),
# ["push_mpls", lse, ethertype], ["pop_mpls", ethertype], ["clone", actions].


def actions_to_json(actions: tuple[Action, ...]) -> list[list[object]]:
    out: list[list[object]] = []
    for a in actions:
        if isinstance(a, Output):
            out.append(["output", a.port])
        elif isinstance(a, PushVlan):
            out.append(["push_vlan", a.tci, a.tpid])
        elif isinstance(a, PopVlan):
            out.append(["pop_vlan"])
        elif isinstance(a, PushMpls):
            out.append(["push_mpls", a.lse, a.ethertype])
        elif isinstance(a, PopMpls):
            out.append(["pop_mpls", a.ethertype])
        elif isinstance(a, SetField):
            out.append(["set_field", a.field, a.value.hex(), a.mask.hex() if a.mask else None])
        elif isinstance(a, Userspace):
            out.append(["userspace", a.userdata.hex()])
        elif isinstance(a, Sample):
            out.append(["sample", a.probability, a.userdata.hex()])
        elif isinstance(a, Meter):
            out.append(["meter", a.meter_id, a.scope] if a.scope else ["meter", a.meter_id])
        elif isinstance(a, SetPriority):
            out.append(["set_priority", a.priority])
        elif isinstance(a, Ct):
            n = a.nat
            nat = (
                None
                if n is None
                else [
                    n.kind,
                    n.addr_min.hex(),
                    n.addr_max.hex(),
                    n.port_min,
                    n.port_max,
                    n.persistent,
                    n.random,
                ]
            )
            out.append(
                [
                    "ct",
                    a.zone,
                    a.commit,
                    a.force,
                    nat,
                    list(a.mark) if a.mark else None,
                    [str(a.label[0]), str(a.label[1])] if a.label else None,
                ]
            )
        elif isinstance(a, CtClear):
            out.append(["ct_clear"])
        elif isinstance(a, Recirc):
            out.append(["recirc", a.recirc_id])
        elif isinstance(a, CheckPktLen):
            out.append(["check_pkt_len", a.size, actions_to_json(a.gt), actions_to_json(a.le)])
        elif isinstance(a, Clone):
            out.append(["clone", actions_to_json(a.actions)])
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
            elif name == "push_mpls":
                out.append(PushMpls(int(args[0]), int(args[1])))  # type: ignore[call-overload]
            elif name == "pop_mpls":
                out.append(PopMpls(int(args[0])))  # type: ignore[call-overload]
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
            elif name == "sample":
                prob = int(args[0])  # type: ignore[call-overload]
                out.append(Sample(prob, bytes.fromhex(str(args[1]))))
            elif name == "meter":
                scope = int(args[1]) if len(args) > 1 else 0  # type: ignore[call-overload]
                out.append(Meter(int(args[0]), scope))  # type: ignore[call-overload]
            elif name == "set_priority":
                out.append(SetPriority(int(args[0])))  # type: ignore[call-overload]
            elif name == "ct":
                out.append(_ct_from_json(args))
            elif name == "ct_clear":
                out.append(CtClear())
            elif name == "recirc":
                out.append(Recirc(int(args[0])))  # type: ignore[call-overload]
            elif name == "check_pkt_len":
                size, gt, le = args
                out.append(CheckPktLen(int(size), actions_from_json(gt), actions_from_json(le)))  # type: ignore[call-overload, arg-type]
            elif name == "clone":
                out.append(Clone(actions_from_json(args[0])))  # type: ignore[arg-type]
            else:
                raise ValueError(f"unknown action {name!r}")
        except (ValueError, TypeError, IndexError) as e:
            raise ValueError(f"bad serialised action {item!r}: {e}") from None
    return tuple(out)


def _ct_from_json(args: list[Any]) -> Ct:
    zone, commit, force, nat, mark, label = args
    spec = None
    if nat is not None:
        kind, lo, hi, pmin, pmax, persistent, random = nat
        spec = NatSpec(
            kind,
            bytes.fromhex(lo),
            bytes.fromhex(hi),
            int(pmin),
            int(pmax),
            bool(persistent),
            bool(random),
        )
    m = (int(mark[0]), int(mark[1])) if mark else None
    lab = (int(label[0]), int(label[1])) if label else None
    return Ct(int(zone), bool(commit), bool(force), spec, m, lab)


# ---------------------------------------------------------------------------------
# The typed records of state version 7 (hitless.state.records ``ActionV7``): what a
# handoff carries of a megaflow's actions. One converter per action type each way, in
# two tables: an action type without its record is a TypeError at the first handoff.


def _nat_record(n: NatSpec | None) -> rec.NatV7 | None:
    if n is None:
        return None
    return rec.NatV7(n.kind, n.addr_min, n.addr_max, n.port_min, n.port_max, n.persistent,
                     n.random)  # fmt: skip


def _ct_record(a: Ct) -> rec.CtV7:
    label = None
    if a.label:
        label = (a.label[0].to_bytes(16, "big"), a.label[1].to_bytes(16, "big"))
    return rec.CtV7(a.zone, a.commit, a.force, _nat_record(a.nat),
                    a.mark if a.mark else None, label)  # fmt: skip


def _ct_action(r: rec.CtV7) -> Ct:
    n = r.nat
    nat = None
    if n is not None:
        nat = NatSpec(n.kind, n.addr_min, n.addr_max, n.port_min, n.port_max, n.persistent,
                      n.random)  # fmt: skip
    label = None
    if r.label is not None:
        label = (int.from_bytes(r.label[0], "big"), int.from_bytes(r.label[1], "big"))
    return Ct(r.zone, r.commit, r.force, nat, r.mark, label)


_TO_RECORD: dict[type, Any] = {
    Output: lambda a: rec.OutputV7(a.port),
    PushVlan: lambda a: rec.PushVlanV7(a.tci, a.tpid),
    PopVlan: lambda a: rec.PopVlanV7(),
    PushMpls: lambda a: rec.PushMplsV7(a.lse, a.ethertype),
    PopMpls: lambda a: rec.PopMplsV7(a.ethertype),
    SetField: lambda a: rec.SetFieldV7(a.field, a.value, a.mask or None),
    Userspace: lambda a: rec.UserspaceV7(a.userdata),
    Sample: lambda a: rec.SampleV7(a.probability, a.userdata),
    Meter: lambda a: rec.MeterV7(a.meter_id, a.scope),
    SetPriority: lambda a: rec.SetPriorityV7(a.priority),
    Ct: _ct_record,
    CtClear: lambda a: rec.CtClearV7(),
    Recirc: lambda a: rec.RecircV7(a.recirc_id),
    CheckPktLen: lambda a: rec.CheckPktLenV7(a.size, actions_to_records(a.gt),
                                             actions_to_records(a.le)),  # fmt: skip
    Clone: lambda a: rec.CloneV7(actions_to_records(a.actions)),
}
_FROM_RECORD: dict[type, Any] = {
    rec.OutputV7: lambda r: Output(r.port),
    rec.PushVlanV7: lambda r: PushVlan(r.tci, r.tpid),
    rec.PopVlanV7: lambda r: PopVlan(),
    rec.PushMplsV7: lambda r: PushMpls(r.lse, r.ethertype),
    rec.PopMplsV7: lambda r: PopMpls(r.ethertype),
    rec.SetFieldV7: lambda r: SetField(r.field, r.value, r.mask),
    rec.UserspaceV7: lambda r: Userspace(r.userdata),
    rec.SampleV7: lambda r: Sample(r.probability, r.userdata),
    rec.MeterV7: lambda r: Meter(r.meter_id, r.scope),
    rec.SetPriorityV7: lambda r: SetPriority(r.priority),
    rec.CtV7: _ct_action,
    rec.CtClearV7: lambda r: CtClear(),
    rec.RecircV7: lambda r: Recirc(r.recirc_id),
    rec.CheckPktLenV7: lambda r: CheckPktLen(r.size, actions_from_records(r.gt),
                                             actions_from_records(r.le)),  # fmt: skip
    rec.CloneV7: lambda r: Clone(actions_from_records(r.actions)),
}


def actions_to_records(actions: tuple[Action, ...]) -> tuple[rec.ActionV7, ...]:
    """A megaflow's actions as state version 7 records."""
    return tuple(_TO_RECORD[type(a)](a) for a in actions)


def actions_from_records(records: tuple[rec.ActionV7, ...]) -> tuple[Action, ...]:
    """Inverse of ``actions_to_records``; raises ValueError naming the bad record."""
    try:
        return tuple(_FROM_RECORD[type(r)](r) for r in records)
    except (KeyError, ValueError) as e:
        raise ValueError(f"bad action record in {records!r}: {e}") from None
