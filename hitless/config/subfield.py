"""Flow_Table eviction groups' subfields (``groups``), parsed as Open vSwitch reads
them: ``FIELD[]``, ``FIELD[BIT]``, ``FIELD[START..END]`` or a bare field name, the field
named as Open vSwitch names it (``in_port``, ``NXM_OF_IN_PORT``, ``reg0``,
``NXM_NX_REG0``...). hitless.ofproto.eviction groups rules by them.

Pure: parses strings; must not import ofproto, datapath, daemon or handoff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PREFIXES", "PREFIX_FIELDS", "Subfield", "parse_subfield", "prefix_fields"]

# Open vSwitch's names (and NXM names) of the fields a group can read -> the name this
# switch's matches give them (Oxm.name).
_ALIASES = {
    "in_port": "in_port", "nxm_of_in_port": "in_port", "in_port_oxm": "in_port",
    "eth_src": "eth_src", "dl_src": "eth_src", "nxm_of_eth_src": "eth_src",
    "eth_dst": "eth_dst", "dl_dst": "eth_dst", "nxm_of_eth_dst": "eth_dst",
    "eth_type": "eth_type", "dl_type": "eth_type", "nxm_of_eth_type": "eth_type",
    "vlan_vid": "vlan_vid", "dl_vlan": "vlan_vid",
    "ip_src": "ipv4_src", "nw_src": "ipv4_src", "nxm_of_ip_src": "ipv4_src",
    "ip_dst": "ipv4_dst", "nw_dst": "ipv4_dst", "nxm_of_ip_dst": "ipv4_dst",
    "nw_proto": "ip_proto", "ip_proto": "ip_proto", "nxm_of_ip_proto": "ip_proto",
    "tcp_src": "tcp_src", "nxm_of_tcp_src": "tcp_src",
    "tcp_dst": "tcp_dst", "nxm_of_tcp_dst": "tcp_dst",
    "udp_src": "udp_src", "nxm_of_udp_src": "udp_src",
    "udp_dst": "udp_dst", "nxm_of_udp_dst": "udp_dst",
    "metadata": "metadata", "oxm_of_metadata": "metadata",
    "tun_id": "tunnel_id", "nxm_nx_tun_id": "tunnel_id",
    **{f"reg{i}": f"reg{i}" for i in range(16)},
    **{f"nxm_nx_reg{i}": f"reg{i}" for i in range(16)},
}  # fmt: skip
_SUBFIELD = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(?:(\d+)(?:\.\.(\d+))?)?\])?$")


@dataclass(frozen=True, slots=True)
class Subfield:
    field: str  # the match field's name (Oxm.name)
    start: int = 0
    n_bits: int | None = None  # None: the whole field


def parse_subfield(text: str) -> Subfield:
    """One ``groups`` element; ValueError saying why it is not one."""
    m = _SUBFIELD.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not FIELD[], FIELD[BIT] or FIELD[START..END]")
    name, start, end = m.group(1), m.group(2), m.group(3)
    field = _ALIASES.get(name.lower())
    if field is None:
        raise ValueError(f"{name!r} is not a field an eviction group can read here")
    if start is None:
        return Subfield(field)
    lo = int(start)
    hi = int(end) if end is not None else lo
    if hi < lo:
        raise ValueError(f"{text!r}: the end bit is before the start bit")
    return Subfield(field, lo, hi - lo + 1)




# Flow_Table prefixes this switch tracks (Open vSwitch tracks any 32-bit-multiple field:
# ip_src and ip_dst are its default) -> the flow key's field.
PREFIX_FIELDS = {"ip_src": "ip_src", "nw_src": "ip_src", "ip_dst": "ip_dst", "nw_dst": "ip_dst"}
# What a table tracks when its row's prefixes column is empty, or it has no row: Open
# vSwitch's default (ofproto.c default_prefix_fields; ovs-vswitchd.conf.db(5)).
DEFAULT_PREFIXES = ("ip_dst", "ip_src")


def prefix_fields(names: tuple[str, ...]) -> tuple[tuple[str, ...], list[str]]:
    """(the fields tracked, the names that are not tracked here) of a prefixes column;
    empty is Open vSwitch's default (``ip_dst,ip_src``), ``none`` tracks nothing. At most
    3 fields, as Open vSwitch."""
    if not names:
        return DEFAULT_PREFIXES, []
    if "none" in names:
        return (), []
    out: list[str] = []
    bad: list[str] = []
    for n in names:
        f = PREFIX_FIELDS.get(n)
        if f is None or len(out) >= 3:
            bad.append(n)
        elif f not in out:
            out.append(f)
    return tuple(out), bad
