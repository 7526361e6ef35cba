"""OpenFlow matches, actions and instructions as ``ovs-ofctl`` writes them, for
``ofproto/trace`` and ``bridge/dump-flows`` (``in_port=1,dl_vlan=10``,
``push_vlan:0x8100,set_field:4106->vlan_vid,goto_table:1``).

Names, value formats and field order follow Open vSwitch 3.1's output (checked in
tests/openflow/test_ofctl_text.py against what it printed for the same rules): a
protocol shorthand (``ip``, ``tcp``, ``arp``...) replaces dl_type/nw_proto, OpenFlow 1.3
``vlan_vid`` is printed as ``dl_vlan``/``vlan_tci``, L4 ports as ``tp_src``/``tp_dst``.

Actions and instructions are formatted by a table from value type to function
(``ACTION_TEXT``); other layers register their own (Nicira actions) with
``register_action``. An action nobody registered prints as its class name. Pure.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from hitless.openflow import actions as of
from hitless.openflow import nx_actions as nx
from hitless.openflow import nx_ct, nxm
from hitless.openflow.constants import OxmField, Port
from hitless.openflow.match import Match, Oxm

__all__ = [
    "ACTION_TEXT",
    "ActionSyntaxError",
    "parse_actions",
    "format_action",
    "format_actions",
    "format_instructions",
    "format_match",
    "format_port",
    "register_action",
]

F = OxmField
_SHORT4 = {1: "icmp", 6: "tcp", 17: "udp", 132: "sctp"}
_SHORT6 = {58: "icmp6", 6: "tcp6", 17: "udp6", 132: "sctp6"}
_PORT_NAMES = {
    Port.IN_PORT: "IN_PORT",
    Port.TABLE: "TABLE",
    Port.NORMAL: "NORMAL",
    Port.FLOOD: "FLOOD",
    Port.ALL: "ALL",
    Port.CONTROLLER: "CONTROLLER",
    Port.LOCAL: "LOCAL",
    Port.ANY: "ANY",
}


def format_port(port: int) -> str:
    name = _PORT_NAMES.get(port)  # type: ignore[call-overload]
    return name if name is not None else str(port)


def _mac(v: int) -> str:
    return ":".join(f"{b:02x}" for b in v.to_bytes(6, "big"))


def _ip4(v: int) -> str:
    return str(ipaddress.IPv4Address(v))


def _ip6(v: int) -> str:
    return str(ipaddress.IPv6Address(v))


def _prefix(fmt: Callable[[int], str], bits: int, v: int, m: int | None) -> str:
    if m is None or m == (1 << bits) - 1:
        return fmt(v)
    inv = ~m & ((1 << bits) - 1)
    if inv & (inv + 1) == 0:  # a CIDR mask
        return f"{fmt(v)}/{bits - inv.bit_length()}"
    return f"{fmt(v)}/{fmt(m)}"


def _hexm(v: int, m: int | None) -> str:
    return f"{v:#x}" if m is None else f"{v:#x}/{m:#x}"


def _decm(v: int, m: int | None) -> str:
    return str(v) if m is None else f"{v:#x}/{m:#x}"


def _macm(v: int, m: int | None) -> str:
    return _mac(v) if m is None else f"{_mac(v)}/{_mac(m)}"


def format_match(match: Match) -> str:
    """A match as ovs-ofctl prints it (without priority), "" when it matches all."""
    got: dict[int, Oxm] = {
        o.field: o for o in match.fields if o.oxm_class == 0x8000
    }  # OFPXMC_OPENFLOW_BASIC
    parts: list[str] = []

    def val(f: int) -> int | None:
        o = got.get(f)
        return None if o is None else o.value

    et = val(F.ETH_TYPE)
    proto = val(F.IP_PROTO)
    short = None
    if et == 0x0800:
        short = _SHORT4.get(proto, "ip") if proto is not None else "ip"
    elif et == 0x86DD:
        short = _SHORT6.get(proto, "ipv6") if proto is not None else "ipv6"
    elif et in (0x0806, 0x8035):
        short = "arp" if et == 0x0806 else "rarp"
    elif et in (0x8847, 0x8848):
        short = "mpls" if et == 0x8847 else "mplsm"
    proto_in_short = short is not None and short not in ("ip", "ipv6", "arp", "rarp", "mpls", "mplsm")
    before, after = _pipeline_parts(match)
    parts += before
    if short:
        parts.append(short)
    parts += after
    if F.METADATA in got:
        o = got[F.METADATA]
        parts.append(f"metadata={_hexm(o.value, o.mask)}")
    if F.IN_PORT in got:
        parts.append(f"in_port={format_port(got[F.IN_PORT].value)}")
    if F.VLAN_VID in got:
        o = got[F.VLAN_VID]
        if o.mask is None and o.value & 0x1000:
            parts.append(f"dl_vlan={o.value & 0xFFF}")
        elif o.mask is None and o.value == 0:
            parts.append("vlan_tci=0x0000/0x1fff")
        else:
            m = 0x1FFF if o.mask is None else o.mask
            parts.append(f"vlan_tci={o.value & 0x1FFF:#06x}/{m & 0x1FFF:#06x}")
    if F.VLAN_PCP in got:
        parts.append(f"dl_vlan_pcp={got[F.VLAN_PCP].value}")
    for f, name in ((F.ETH_SRC, "dl_src"), (F.ETH_DST, "dl_dst")):
        if f in got:
            parts.append(f"{name}={_macm(got[f].value, got[f].mask)}")
    if et is not None and short is None:
        parts.append(f"dl_type={et:#06x}")
    if et in (0x0806, 0x8035):
        for f, name in ((F.ARP_SPA, "arp_spa"), (F.ARP_TPA, "arp_tpa")):
            if f in got:
                parts.append(f"{name}={_prefix(_ip4, 32, got[f].value, got[f].mask)}")
        if F.ARP_OP in got:
            parts.append(f"arp_op={got[F.ARP_OP].value}")
        for f, name in ((F.ARP_SHA, "arp_sha"), (F.ARP_THA, "arp_tha")):
            if f in got:
                parts.append(f"{name}={_macm(got[f].value, got[f].mask)}")
    for f, name, fmt, bits in (
        (F.IPV4_SRC, "nw_src", _ip4, 32),
        (F.IPV4_DST, "nw_dst", _ip4, 32),
        (F.IPV6_SRC, "ipv6_src", _ip6, 128),
        (F.IPV6_DST, "ipv6_dst", _ip6, 128),
    ):
        if f in got:
            parts.append(f"{name}={_prefix(fmt, bits, got[f].value, got[f].mask)}")
    if F.IPV6_FLABEL in got:
        o = got[F.IPV6_FLABEL]
        parts.append(f"ipv6_label={_hexm(o.value, o.mask)}")
    if proto is not None and not proto_in_short and et != 0x0806:
        parts.append(f"nw_proto={proto}")
    if F.IP_DSCP in got:
        parts.append(f"nw_tos={got[F.IP_DSCP].value << 2}")
    if F.IP_ECN in got:
        parts.append(f"nw_ecn={got[F.IP_ECN].value}")
    for f, name in (
        (F.TCP_SRC, "tp_src"),
        (F.UDP_SRC, "tp_src"),
        (F.SCTP_SRC, "tp_src"),
        (F.TCP_DST, "tp_dst"),
        (F.UDP_DST, "tp_dst"),
        (F.SCTP_DST, "tp_dst"),
        (F.ICMPV4_TYPE, "icmp_type"),
        (F.ICMPV4_CODE, "icmp_code"),
        (F.ICMPV6_TYPE, "icmp_type"),
        (F.ICMPV6_CODE, "icmp_code"),
    ):
        if f in got:
            parts.append(f"{name}={_decm(got[f].value, got[f].mask)}")
    if F.IPV6_ND_TARGET in got:
        parts.append(f"nd_target={_ip6(got[F.IPV6_ND_TARGET].value)}")
    if F.IPV6_ND_SLL in got:
        parts.append(f"nd_sll={_mac(got[F.IPV6_ND_SLL].value)}")
    if F.IPV6_ND_TLL in got:
        parts.append(f"nd_tll={_mac(got[F.IPV6_ND_TLL].value)}")
    by_name = {o.name: o for o in match.fields}
    for name in _MPLS_NAMES:  # in Open vSwitch's order, in decimal
        if name in by_name:
            parts.append(f"{name}={by_name[name].value}")
    parts += _nsh_match(by_name)
    for o in match.fields:  # anything else, by its OXM name
        if o.name in _MPLS_NAMES or o.name.startswith("nsh_"):
            continue
        if (o.oxm_class != 0x8000 or o.field not in _FORMATTED) and not _is_pipeline(o):
            named = _NAMED.get(o.name)
            parts.append(named(o.value, o.mask) if named else f"{o.name}={_hexm(o.value, o.mask)}")
    return ",".join(parts)


_MPLS_NAMES = ("mpls_label", "mpls_tc", "mpls_ttl", "mpls_bos")
_TCP_FLAGS = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns")


def _flags(name: str, names: tuple[str, ...], width: int) -> Callable[[int, int | None], str]:
    """Open vSwitch's masked flags: ``+syn-ack`` for the bits in the mask (rightmost
    first), ``a|b`` for an exact value."""

    def fmt(v: int, m: int | None) -> str:
        if m is None or m == (1 << width) - 1:
            on = [names[i] if i < len(names) else f"[{1 << i:x}]" for i in range(width) if v >> i & 1]
            return f"{name}={'|'.join(on) or '0'}"
        out = []
        for i in range(width):
            if m >> i & 1:
                out.append(("+" if v >> i & 1 else "-") + (names[i] if i < len(names) else f"[{1 << i:x}]"))
        return f"{name}={''.join(out) or '0/0'}"

    return fmt


def _nw_frag(v: int, m: int | None) -> str:
    """``nw_frag=no|yes|first|later|not_later`` (bit 0: a fragment, bit 1: not the first)."""
    m = 3 if m is None else m & 3
    if m == 1:
        word = "yes" if v & 1 else "no"
    elif m == 2:
        word = "later" if v & 2 else "not_later"
    elif m == 3:
        word = "later" if v & 2 else "first" if v & 1 else "no"
    else:
        return f"ip_frag={_hexm(v, m)}"
    return f"nw_frag={word}"


_NAMED: dict[str, Callable[[int, int | None], str]] = {
    "ip_frag": _nw_frag,
    "tcp_flags": _flags("tcp_flags", _TCP_FLAGS, 12),
    "tun_flags": _flags("tun_flags", ("oam",), 16),
    "ct_state": _flags("ct_state", ("new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"), 32),
    # Open vSwitch's ND extensions print in decimal (exact only: no mask)
    "nd_reserved": lambda v, m: f"nd_reserved={v}",
    "nd_options_type": lambda v, m: f"nd_options_type={v}",
}


_FORMATTED = frozenset(
    {
        F.METADATA,
        F.IN_PORT,
        F.VLAN_VID,
        F.VLAN_PCP,
        F.ETH_SRC,
        F.ETH_DST,
        F.ETH_TYPE,
        F.ARP_SPA,
        F.ARP_TPA,
        F.ARP_OP,
        F.ARP_SHA,
        F.ARP_THA,
        F.IPV4_SRC,
        F.IPV4_DST,
        F.IPV6_SRC,
        F.IPV6_DST,
        F.IPV6_FLABEL,
        F.IP_PROTO,
        F.IP_DSCP,
        F.IP_ECN,
        F.TCP_SRC,
        F.UDP_SRC,
        F.SCTP_SRC,
        F.TCP_DST,
        F.UDP_DST,
        F.SCTP_DST,
        F.ICMPV4_TYPE,
        F.ICMPV4_CODE,
        F.ICMPV6_TYPE,
        F.ICMPV6_CODE,
        F.IPV6_ND_TARGET,
        F.IPV6_ND_SLL,
        F.IPV6_ND_TLL,
    }
)

# set_field: OXM -> (ovs-ofctl name, value formatter)
_SET_NAMES: dict[int, tuple[str, Callable[[int], str]]] = {
    F.ETH_DST: ("eth_dst", _mac),
    F.ETH_SRC: ("eth_src", _mac),
    F.VLAN_VID: ("vlan_vid", str),
    F.VLAN_PCP: ("vlan_pcp", str),
    F.IP_DSCP: ("ip_dscp", str),
    F.IP_ECN: ("ip_ecn", str),
    F.IP_PROTO: ("ip_proto", str),
    F.IPV4_SRC: ("ip_src", _ip4),
    F.IPV4_DST: ("ip_dst", _ip4),
    F.TCP_SRC: ("tcp_src", str),
    F.TCP_DST: ("tcp_dst", str),
    F.UDP_SRC: ("udp_src", str),
    F.UDP_DST: ("udp_dst", str),
    F.SCTP_SRC: ("sctp_src", str),
    F.SCTP_DST: ("sctp_dst", str),
    F.ICMPV4_TYPE: ("icmp_type", str),
    F.ICMPV4_CODE: ("icmp_code", str),
    F.ARP_OP: ("arp_op", str),
    F.ARP_SPA: ("arp_spa", _ip4),
    F.ARP_TPA: ("arp_tpa", _ip4),
    F.ARP_SHA: ("arp_sha", _mac),
    F.ARP_THA: ("arp_tha", _mac),
    F.IPV6_SRC: ("ipv6_src", _ip6),
    F.IPV6_DST: ("ipv6_dst", _ip6),
    F.IPV6_FLABEL: ("ipv6_label", hex),
    F.MPLS_LABEL: ("mpls_label", str),
    F.MPLS_TC: ("mpls_tc", str),
    F.MPLS_BOS: ("mpls_bos", str),
    F.ICMPV6_TYPE: ("icmpv6_type", str),
    F.ICMPV6_CODE: ("icmpv6_code", str),
    F.IPV6_ND_TARGET: ("nd_target", _ip6),
    F.IPV6_ND_SLL: ("nd_sll", _mac),
    F.IPV6_ND_TLL: ("nd_tll", _mac),
    F.METADATA: ("metadata", hex),
    F.TUNNEL_ID: ("tun_id", hex),
}


# Nicira-class fields whose set_field value is an address
_NX_ADDRESSES: dict[str, Callable[[int], str]] = {
    "tun_src": _ip4, "tun_dst": _ip4, "tun_ipv6_src": _ip6, "tun_ipv6_dst": _ip6,
}  # fmt: skip


def _nsh_value(name: str, v: int, m: int | None) -> str:
    """An NSH field's value as Open vSwitch writes a set_field of it: decimal but for
    the service path and the context words, a partial mask in hex after it."""
    text = _chex(v) if name == "nsh_spi" or name.startswith("nsh_c") else str(v)
    bits = _NSH_BITS.get(name, 32)
    return text if m is None or m == (1 << bits) - 1 else f"{text}/{_chex(m)}"


_NSH_BITS = {"nsh_flags": 8, "nsh_ttl": 8, "nsh_mdtype": 8, "nsh_np": 8, "nsh_si": 8}
_NSH_NAMES = ("nsh_flags", "nsh_ttl", "nsh_mdtype", "nsh_np", "nsh_spi", "nsh_si")


def _nsh_match(by_name: dict[str, Oxm]) -> list[str]:
    """A match's NSH fields in Open vSwitch's order and forms; the context words only
    when it pins MD type 1 (Open vSwitch prints them only then)."""
    out = []
    for name in _NSH_NAMES:
        o = by_name.get(name)
        if o is None:
            continue
        if name == "nsh_flags" and o.mask is not None and o.mask != 0xFF:
            out.append(f"nsh_flags={o.value:#04x}/{o.mask:#04x}")
        elif name == "nsh_spi":
            out.append(f"nsh_spi={o.value:#x}")
        else:
            out.append(f"{name}={o.value}")
    md = by_name.get("nsh_mdtype")
    if md is not None and md.value == 1:
        for i in range(1, 5):
            o = by_name.get(f"nsh_c{i}")
            if o is not None:
                out.append(f"nsh_c{i}={_hexm(o.value, o.mask)}")
    return out


def _set_field(a: of.SetField) -> str:
    o = a.field
    if o.name.startswith("nsh_"):
        return f"set_field:{_nsh_value(o.name, o.value, o.mask)}->{o.name}"
    spec = _SET_NAMES.get(o.field) if o.oxm_class == 0x8000 else None
    if spec is None:
        if o.name in _MPLS_NAMES or o.name in ("nd_reserved", "nd_options_type"):
            return f"set_field:{o.value}->{o.name}"
        if o.name in _NX_ADDRESSES:  # as Open vSwitch writes them: addresses
            return f"set_field:{_NX_ADDRESSES[o.name](o.value)}->{o.name}"
        return f"set_field:{o.value:#x}->{o.name}"
    name, fmt = spec
    return f"set_field:{fmt(o.value)}->{name}"


def _output(a: of.Output) -> str:
    if a.port == Port.CONTROLLER:
        return f"CONTROLLER:{a.max_len}"
    name = _PORT_NAMES.get(a.port)  # type: ignore[call-overload]
    return name if name is not None else f"output:{a.port}"


ACTION_TEXT: dict[type, Callable[[object], str]] = {}


def register_action(cls: type, fmt: Callable[[object], str]) -> None:
    """Format values of ``cls`` (an action or instruction type) with ``fmt``."""
    ACTION_TEXT[cls] = fmt


for _cls, _fmt in (
    (of.Output, _output),
    (of.SetField, _set_field),
    (of.PushVlan, lambda a: f"push_vlan:{a.ethertype:#06x}"),
    (of.PopVlan, lambda a: "pop_vlan"),
    (of.PushMpls, lambda a: f"push_mpls:{a.ethertype:#06x}"),
    (of.PopMpls, lambda a: f"pop_mpls:{a.ethertype:#06x}"),
    (of.GroupAction, lambda a: f"group:{a.group_id}"),
    (of.DecNwTtl, lambda a: "dec_ttl"),
    (of.SetNwTtl, lambda a: f"mod_nw_ttl:{a.ttl}"),
    (of.SetQueue, lambda a: f"set_queue:{a.queue_id}"),
    (of.DecMplsTtl, lambda a: "dec_mpls_ttl"),
    (of.SetMplsTtl, lambda a: f"set_mpls_ttl({a.ttl})"),
    (of.CopyTtlOut, lambda a: "copy_ttl_out"),
    (of.CopyTtlIn, lambda a: "copy_ttl_in"),
    (of.GotoTable, lambda i: f"goto_table:{i.table_id}"),
    (of.MeterInstruction, lambda i: f"meter:{i.meter_id}"),
    (of.ClearActions, lambda i: "clear_actions"),
    (of.WriteMetadata, lambda i: _write_metadata(i)),
    (of.WriteActions, lambda i: f"write_actions({format_actions(i.actions)})"),
):
    register_action(_cls, _fmt)  # type: ignore[arg-type]


def _write_metadata(i: of.WriteMetadata) -> str:
    if i.mask == 0xFFFFFFFFFFFFFFFF:
        return f"write_metadata:{i.metadata:#x}"
    return f"write_metadata:{i.metadata:#x}/{i.mask:#x}"


def format_action(a: object) -> str:
    fmt = ACTION_TEXT.get(type(a))
    return fmt(a) if fmt is not None else type(a).__name__.lower()


def format_actions(actions: Iterable[object]) -> str:
    """Actions as ``actions=`` lists them; "drop" when there are none."""
    text = ",".join(format_action(a) for a in actions)
    return text or "drop"


def format_instructions(instructions: Iterable[of.Instruction]) -> str:
    """A rule's instructions in ovs-ofctl's flat form (apply-actions inline)."""
    out: list[str] = []
    for inst in sorted(instructions, key=_order):
        if isinstance(inst, of.ApplyActions):
            out.extend(format_action(a) for a in inst.actions)
        else:
            out.append(format_action(inst))
    return ",".join(out) or "drop"




def _order(inst: of.Instruction) -> int:
    return of.INSTRUCTION_ORDER.get(type(inst), 9)


# Parsing (the subset ofproto/trace-packet-out takes) ------------------------------------


class ActionSyntaxError(ValueError):
    """Not an action list ovs-ofctl would accept (or not one hitless parses yet)."""


_PORT_WORDS = {name: int(port) for port, name in _PORT_NAMES.items()}
_SET_BY_NAME = {name: (int(f), fmt) for f, (name, fmt) in _SET_NAMES.items()}
_SET_BY_NAME.update({"ipv4_src": _SET_BY_NAME["ip_src"], "ipv4_dst": _SET_BY_NAME["ip_dst"]})


def _parse_value(text: str, fmt: Callable[[int], str]) -> int:
    if fmt is _mac:
        return int(text.replace(":", ""), 16)
    if fmt in (_ip4, _ip6):
        return int(ipaddress.ip_address(text))
    return int(text, 0)


def _split(text: str) -> list[str]:
    """Split an action list at top-level commas (not inside parentheses)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        out.append(cur)
    return [a.strip() for a in out if a.strip()]


def parse_actions(text: str) -> tuple[of.Action, ...]:
    """Parse an ovs-ofctl action list (``output:2,push_vlan:0x8100,NORMAL``...)."""
    out: list[of.Action] = []
    for word in _split(text.removeprefix("actions=")):
        name, sep, arg = word.partition(":")
        lname = name.lower()
        try:
            if word == "drop":
                continue
            if word.upper() in _PORT_WORDS and not sep:
                out.append(of.Output(_PORT_WORDS[word.upper()], 0xFFFF))
            elif word.isdigit():
                out.append(of.Output(int(word)))
            elif lname == "output":
                out.append(of.Output(_PORT_WORDS.get(arg.upper(), 0) or int(arg, 0)))
            elif lname == "controller":
                out.append(of.Output(Port.CONTROLLER, int(arg or "65535", 0)))
            elif lname == "push_vlan":
                out.append(of.PushVlan(int(arg, 0)))
            elif word == "pop_vlan" or word == "strip_vlan":
                out.append(of.PopVlan())
            elif lname == "group":
                out.append(of.GroupAction(int(arg, 0)))
            elif word == "dec_ttl":
                out.append(of.DecNwTtl())
            elif lname in ("mod_nw_ttl", "set_nw_ttl"):
                out.append(of.SetNwTtl(int(arg, 0)))
            elif lname == "mod_vlan_vid":
                out.append(of.SetField(Oxm(F.VLAN_VID, 0x1000 | int(arg, 0))))
            elif lname in ("mod_dl_src", "mod_dl_dst"):
                f = F.ETH_SRC if lname == "mod_dl_src" else F.ETH_DST
                out.append(of.SetField(Oxm(f, _parse_value(arg, _mac))))
            elif lname == "set_field":
                value, arrow, fname = arg.partition("->")
                spec = _SET_BY_NAME.get(fname)
                if not arrow or spec is None:
                    raise ActionSyntaxError(f"{word}: unknown field {fname!r}")
                field_id, fmt = spec
                out.append(of.SetField(Oxm(field_id, _parse_value(value, fmt))))
            else:
                raise ActionSyntaxError(f"unknown action {name}")
        except ValueError as e:
            if isinstance(e, ActionSyntaxError):
                raise
            raise ActionSyntaxError(f"{word}: invalid argument") from None
    return tuple(out)


def _resubmit(a: nx.Resubmit) -> str:
    port = (
        ""
        if a.in_port == 0xFFF8
        else format_port(a.in_port | 0xFFFF0000 if a.in_port >= 0xFF00 else a.in_port)
    )
    if a.table == 0xFF and port:
        return f"resubmit:{port}"
    return f"resubmit({port},{'' if a.table == 0xFF else a.table})"


register_action(nx.Resubmit, _resubmit)  # type: ignore[arg-type]
register_action(nx.Exit, lambda a: "exit")
register_action(nx.NxDecTtl, lambda a: "dec_ttl")
register_action(nx.NxPushMpls, lambda a: f"push_mpls:{a.ethertype:#06x}")  # type: ignore[attr-defined]
register_action(nx.NxPopMpls, lambda a: f"pop_mpls:{a.ethertype:#06x}")  # type: ignore[attr-defined]
register_action(nx.NxSetMplsTtl, lambda a: f"set_mpls_ttl({a.ttl})")  # type: ignore[attr-defined]
register_action(nx.NxDecMplsTtl, lambda a: "dec_mpls_ttl")
register_action(nx.NxDecNshTtl, lambda a: "dec_nsh_ttl")
register_action(nx.NxSetMplsLabel, lambda a: f"set_mpls_label({a.label})")  # type: ignore[attr-defined]
register_action(nx.NxSetMplsTc, lambda a: f"set_mpls_tc({a.tc})")  # type: ignore[attr-defined]
register_action(nx.Clone, lambda a: f"clone({format_actions(a.actions)})")  # type: ignore[attr-defined]


def _ct(a: nx_ct.CtAction) -> str:
    """Open vSwitch's order: commit, force, table, zone, a leading nat, exec(...)."""
    parts = ["commit"] if a.flags & nx_ct.NX_CT_F_COMMIT else []
    if a.flags & nx_ct.NX_CT_F_FORCE:
        parts.append("force")
    if a.table != nx_ct.RECIRC_NONE:
        parts.append(f"table={a.table}")
    if a.zone_field is not None:
        parts.append(f"zone={a.zone_field}")
    elif a.zone:
        parts.append(f"zone={a.zone}")
    rest = a.actions
    if rest and isinstance(rest[0], nx_ct.NatAction):
        parts.append(str(rest[0]))
        rest = rest[1:]
    if rest:
        parts.append(f"exec({format_actions(rest)})")
    return f"ct({','.join(parts)})" if parts else "ct"


register_action(nx_ct.CtAction, _ct)  # type: ignore[arg-type]
register_action(nx_ct.CtClear, lambda a: "ct_clear")
register_action(nx_ct.NatAction, str)


# -- Open vSwitch's pipeline fields and Nicira actions ----------------------------------


def _chex(v: int) -> str:
    """C's ``%#x``: "0" for zero, "0x1f" otherwise (what Open vSwitch prints)."""
    return "0" if v == 0 else f"{v:#x}"


def _chexm(v: int, m: int | None, bits: int) -> str:
    if m is None or m == (1 << bits) - 1:
        return _chex(v)
    return f"{_chex(v)}/{_chex(m)}"


_BEFORE_SHORT = ("pkt_mark", "dp_hash", "conj_id")
_AFTER_SHORT = ("tun_id", "tun_src", "tun_dst")


def _is_pipeline(o: Oxm) -> bool:
    spec = nxm.spec_of(o)
    return spec is not None and (
        spec.name in _BEFORE_SHORT
        or spec.name in _AFTER_SHORT
        or spec.name.startswith(("reg", "xreg", "xxreg"))
    )


def _pipeline_parts(match: Match) -> tuple[list[str], list[str]]:
    """Open vSwitch's pipeline fields, in its order: pkt_mark, dp_hash and conj_id
    before the protocol shorthand, the registers (xreg/xxreg as the 32-bit registers
    they cover) and the tunnel values after it."""
    named: dict[str, tuple[int, int | None]] = {}
    regs: dict[int, list[int]] = {}
    for o in match.fields:
        spec = nxm.spec_of(o)
        if spec is None:
            continue
        n = spec.name
        for prefix, width in (("xxreg", 4), ("xreg", 2), ("reg", 1)):
            if n.startswith(prefix) and n[len(prefix) :].isdigit():
                first = int(n[len(prefix) :]) * width
                m = o.mask if o.mask is not None else (1 << (32 * width)) - 1
                for k in range(width):
                    shift = 32 * (width - 1 - k)
                    rv, rm = (o.value >> shift) & 0xFFFFFFFF, (m >> shift) & 0xFFFFFFFF
                    if rm:
                        cur = regs.setdefault(first + k, [0, 0])
                        cur[0] |= rv
                        cur[1] |= rm
                break
        else:
            named[n] = (o.value, o.mask)
    widths = {"pkt_mark": 32, "dp_hash": 32, "tun_id": 64}
    before = []
    for n in _BEFORE_SHORT:
        if n in named:
            v, mm = named[n]
            before.append(f"{n}={v}" if n == "conj_id" else f"{n}={_chexm(v, mm, widths[n])}")
    after = [f"reg{i}={_chexm(v, m, 32)}" for i, (v, m) in sorted(regs.items())]
    for n in _AFTER_SHORT:
        if n in named:
            v, mm = named[n]
            after.append(
                f"{n}={_chexm(v, mm, 64)}" if n == "tun_id" else f"{n}={_prefix(_ip4, 32, v, mm)}"
            )
    return before, after


_NXM_NAMES = {
    "in_port": "NXM_OF_IN_PORT",
    "eth_dst": "NXM_OF_ETH_DST",
    "eth_src": "NXM_OF_ETH_SRC",
    "eth_type": "NXM_OF_ETH_TYPE",
    "vlan_tci": "NXM_OF_VLAN_TCI",
    "nw_tos": "NXM_OF_IP_TOS",
    "nw_proto": "NXM_OF_IP_PROTO",
    "ip_src": "NXM_OF_IP_SRC",
    "ip_dst": "NXM_OF_IP_DST",
    "tcp_src": "NXM_OF_TCP_SRC",
    "tcp_dst": "NXM_OF_TCP_DST",
    "udp_src": "NXM_OF_UDP_SRC",
    "udp_dst": "NXM_OF_UDP_DST",
    "icmp_type": "NXM_OF_ICMP_TYPE",
    "icmp_code": "NXM_OF_ICMP_CODE",
    "arp_op": "NXM_OF_ARP_OP",
    "arp_spa": "NXM_OF_ARP_SPA",
    "arp_tpa": "NXM_OF_ARP_TPA",
    "tun_id": "NXM_NX_TUN_ID",
    "arp_sha": "NXM_NX_ARP_SHA",
    "arp_tha": "NXM_NX_ARP_THA",
    "ipv6_src": "NXM_NX_IPV6_SRC",
    "ipv6_dst": "NXM_NX_IPV6_DST",
    "icmpv6_type": "NXM_NX_ICMPV6_TYPE",
    "icmpv6_code": "NXM_NX_ICMPV6_CODE",
    "nd_target": "NXM_NX_ND_TARGET",
    "nd_sll": "NXM_NX_ND_SLL",
    "nd_tll": "NXM_NX_ND_TLL",
    "ip_frag": "NXM_NX_IP_FRAG",
    "ipv6_label": "NXM_NX_IPV6_LABEL",
    "nw_ecn": "NXM_NX_IP_ECN",
    "nw_ttl": "NXM_NX_IP_TTL",
    "mpls_ttl": "NXM_NX_MPLS_TTL",
    "tun_src": "NXM_NX_TUN_IPV4_SRC",
    "tun_dst": "NXM_NX_TUN_IPV4_DST",
    "pkt_mark": "NXM_NX_PKT_MARK",
    "tcp_flags": "NXM_NX_TCP_FLAGS",
    "dp_hash": "NXM_NX_DP_HASH",
    "recirc_id": "NXM_NX_RECIRC_ID",
    "conj_id": "NXM_NX_CONJ_ID",
    "tun_flags": "NXM_NX_TUN_FLAGS",
    "metadata": "OXM_OF_METADATA",
    "in_port_oxm": "OXM_OF_IN_PORT",
    "vlan_vid": "OXM_OF_VLAN_VID",
    "vlan_pcp": "OXM_OF_VLAN_PCP",
    "ip_dscp": "OXM_OF_IP_DSCP",
    "sctp_src": "OXM_OF_SCTP_SRC",
    "sctp_dst": "OXM_OF_SCTP_DST",
    "mpls_label": "OXM_OF_MPLS_LABEL",
    "mpls_tc": "OXM_OF_MPLS_TC",
    "mpls_bos": "OXM_OF_MPLS_BOS",
    **{f"reg{i}": f"NXM_NX_REG{i}" for i in range(16)},
    **{f"xreg{i}": f"OXM_OF_PKT_REG{i}" for i in range(8)},
    **{f"xxreg{i}": f"NXM_NX_XXREG{i}" for i in range(4)},
}


def format_subfield(sf: nxm.Subfield) -> str:
    """``NXM_NX_REG0[0..15]``, ``NXM_OF_ETH_SRC[]``, ``NXM_NX_REG1[3]``."""
    name = _NXM_NAMES.get(sf.ref.name, sf.ref.name)
    if sf.ofs == 0 and sf.nbits == sf.ref.nbytes * 8:
        return f"{name}[]"
    if sf.nbits == 1:
        return f"{name}[{sf.ofs}]"
    return f"{name}[{sf.ofs}..{sf.ofs + sf.nbits - 1}]"


def _reg_load2(a: nx.RegLoad2) -> str:
    o = a.field
    spec = nxm.spec_of(o)
    if spec is None:
        return f"set_field:{_chex(o.value)}->{o.name}"
    bits = spec.nbytes * 8
    m = o.mask
    if spec.name.startswith("nsh_"):
        return f"set_field:{_nsh_value(spec.name, o.value, m)}->{spec.name}"
    if m is None or m == (1 << bits) - 1:
        return f"set_field:{_chex(o.value)}->{spec.name}"
    low = (m & -m).bit_length() - 1
    n = (m >> low).bit_length()
    if m == ((1 << n) - 1) << low:  # a contiguous range prints as load
        sf = nxm.Subfield(nxm.FieldRef.of(spec.name), low, n)
        return f"load:{_chex(o.value >> low)}->{format_subfield(sf)}"
    return f"set_field:{_chex(o.value)}/{_chex(m)}->{spec.name}"


def _controller(a: nx.Controller | nx.Controller2) -> str:
    userdata = getattr(a, "userdata", b"")
    pause = getattr(a, "pause", False)
    meter = getattr(a, "meter_id", None)
    if a.reason == 1 and not a.controller_id and not userdata and not pause and meter is None:
        return f"CONTROLLER:{a.max_len}"
    reasons = {0: "no_match", 1: "action", 2: "invalid_ttl"}
    parts = []
    if a.reason != 1:
        parts.append(f"reason={reasons.get(a.reason, str(a.reason))}")
    if a.max_len != 0xFFFF:
        parts.append(f"max_len={a.max_len}")
    if a.controller_id:
        parts.append(f"id={a.controller_id}")
    if userdata:
        parts.append("userdata=" + ".".join(f"{b:02x}" for b in userdata))
    if pause:
        parts.append("pause")
    if meter is not None:
        parts.append(f"meter_id={meter}")
    return f"controller({','.join(parts)})"


def _learn(a: nx.Learn) -> str:
    parts = [f"table={a.table_id}"]
    if a.idle_timeout:
        parts.append(f"idle_timeout={a.idle_timeout}")
    if a.hard_timeout:
        parts.append(f"hard_timeout={a.hard_timeout}")
    if a.fin_idle_timeout:
        parts.append(f"fin_idle_timeout={a.fin_idle_timeout}")
    if a.fin_hard_timeout:
        parts.append(f"fin_hard_timeout={a.fin_hard_timeout}")
    if a.priority != 0x8000:
        parts.append(f"priority={a.priority}")
    if a.flags & nx.LEARN_SEND_FLOW_REM:
        parts.append("send_flow_rem")
    if a.flags & nx.LEARN_DELETE_LEARNED:
        parts.append("delete_learned")
    if a.cookie:
        parts.append(f"cookie={a.cookie:#x}")
    if a.limit:
        parts.append(f"limit={a.limit}")
    if a.result_dst is not None:
        parts.append(f"result_dst={format_subfield(a.result_dst)}")
    for sp in a.specs:
        src = format_subfield(sp.src) if sp.src is not None else _chex(sp.immediate())
        if sp.dst_type == 0 and sp.dst is not None:
            if sp.src is not None and sp.src == sp.dst:
                parts.append(src)
            else:
                dst = format_subfield(sp.dst)
                if sp.src is None and sp.dst.ofs == 0 and sp.dst.nbits == sp.dst.ref.nbytes * 8:
                    dst = sp.dst.ref.name
                parts.append(f"{dst}={src}")
        elif sp.dst_type == 1 and sp.dst is not None:
            parts.append(f"load:{src}->{format_subfield(sp.dst)}")
        else:
            parts.append(f"output:{src}")
    return f"learn({','.join(parts)})"


_HASH_NAMES = {
    0: "eth_src",
    1: "symmetric_l4",
    2: "symmetric_l3l4",
    3: "symmetric_l3l4+udp",
    4: "nw_src",
    5: "nw_dst",
    6: "symmetric_l3",
}
_MP_ALGS = {0: "modulo_n", 1: "hash_threshold", 2: "hrw", 3: "iter_hash"}


def _multipath(a: nx.Multipath) -> str:
    fields = _HASH_NAMES.get(a.fields, str(a.fields))
    alg = _MP_ALGS.get(a.algorithm, str(a.algorithm))
    return f"multipath({fields},{a.basis},{alg},{a.max_link + 1},{a.arg},{format_subfield(a.dst)})"


def _bundle(a: nx.BundleAction) -> str:
    fields = _HASH_NAMES.get(a.fields, str(a.fields))
    alg = "active_backup" if a.algorithm == 0 else "hrw"
    members = "members:" + ",".join(str(m) for m in a.members)
    if a.dst is None:
        return f"bundle({fields},{a.basis},{alg},ofport,{members})"
    return f"bundle_load({fields},{a.basis},{alg},ofport,{format_subfield(a.dst)},{members})"


_NX_TEXT: list[tuple[type, Callable[[Any], str]]] = [
    (nx.Multipath, _multipath),
    (nx.BundleAction, _bundle),
    (nx.RegLoad, lambda a: f"load:{_chex(a.value)}->{format_subfield(a.dst)}"),
    (nx.RegLoad2, _reg_load2),
    (nx.RegMove, lambda a: f"move:{format_subfield(a.src)}->{format_subfield(a.dst)}"),
    (nx.OutputReg, lambda a: f"output:{format_subfield(a.src)}"),
    (nx.StackPush, lambda a: f"push:{format_subfield(a.field)}"),
    (nx.StackPop, lambda a: f"pop:{format_subfield(a.field)}"),
    (nx.Note, lambda a: "note:" + ".".join(f"{b:02x}" for b in a.data)),
    (nx.Conjunction, lambda a: f"conjunction({a.id},{a.clause + 1}/{a.n_clauses})"),
    (nx.Controller, _controller),
    (nx.Controller2, _controller),
    (nx.Learn, _learn),
    (nx.DecTtlIds, lambda a: f"dec_ttl({','.join(str(i) for i in a.ids)})"),
    (nx.WriteMetadataAction, lambda a: _write_metadata(of.WriteMetadata(a.metadata, a.mask))),
    (nx.SetTunnel, lambda a: f"set_tunnel{'64' if a.form == 9 else ''}:{a.tun_id:#x}"),
    (nx.PopQueue, lambda a: "pop_queue"),
    (
        nx.FinTimeout,
        lambda a: (
            "fin_timeout("
            + ",".join(
                p
                for p in (
                    f"idle_timeout={a.fin_idle_timeout}" if a.fin_idle_timeout else "",
                    f"hard_timeout={a.fin_hard_timeout}" if a.fin_hard_timeout else "",
                )
                if p
            )
            + ")"
        ),
    ),
    (nx.CheckPktLarger, lambda a: f"check_pkt_larger({a.pkt_len})->{format_subfield(a.dst)}"),
    (nx.Sample, lambda a: _sample(a)),
]


def _sample(a: nx.Sample) -> str:
    """``sample(...)`` as ovs-ofctl writes it (sample2/3: the port and direction)."""
    out = (f"sample(probability={a.probability},collector_set_id={a.collector_set_id},"
           f"obs_domain_id={a.obs_domain_id},obs_point_id={a.obs_point_id}")  # fmt: skip
    if a.sampling_port:
        out += f",sampling_port={format_port(a.sampling_port)}"
    if a.form == 41 and a.direction:
        out += ",ingress" if a.direction == 1 else ",egress"
    return out + ")"
for _ncls, _nfmt in _NX_TEXT:
    register_action(_ncls, _nfmt)
