"""Settings in the database that this switch does not implement, found so they are
refused out loud instead of accepted and ignored: each becomes an ``Unsupported`` value
that the daemon logs once at WARN and writes to the row's ``status`` column (key
``hitless_unsupported``) where the table has one (Bridge, Port, Interface).

Pure: reads IDL rows (or plain objects with the same attributes) and returns values.
The full list, supported / refused / ignored and why, is docs/columns.md; a column
that is set to its default is never reported. Must not import ofproto, datapath,
daemon or handoff.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hitless.config.subfield import parse_subfield, prefix_fields
from hitless.config.values import bad_switch_values, bad_values

__all__ = ["COLUMNS", "STATUS_KEY", "Unsupported", "unsupported", "notes_by_row"]

STATUS_KEY = "hitless_unsupported"

# Columns read only to be refused (registered with the IDL besides config's own).
COLUMNS: dict[str, list[str]] = {
    "Bridge": [
        "mirrors",
        "stp_enable",
        "mcast_snooping_enable",
        "flood_vlans",
        "flow_tables",
        "auto_attach",
        "status",
    ],
    "Port": ["qos", "protected", "cvlans", "status"],
    "Interface": [
        "bfd",
        "cfm_mpid",
        "lldp",
        "ingress_policing_kpkts_rate",
        "ingress_policing_kpkts_burst",
    ],
    "Open_vSwitch": ["ssl"],
    "Mirror": ["name", "output_port", "output_vlan"],
    "QoS": ["type"],
    "Flow_Sample_Collector_Set": ["id", "bridge"],
}


@dataclass(frozen=True, slots=True)
class Unsupported:
    table: str  # Bridge | Port | Interface | Open_vSwitch
    name: str  # the row's name ("." for Open_vSwitch)
    column: str
    why: str

    def text(self) -> str:
        return f"{self.column}: {self.why}"


_NOT = "not implemented by hitless; the setting has no effect"


def _set(value: Any) -> bool:
    """Whether an optional/set/map column holds anything."""
    return bool(value) if isinstance(value, (list, dict, tuple)) else value is not None


def _bridge(br: Any) -> Iterable[Unsupported]:
    n = br.name
    for m in sorted(br.mirrors, key=lambda r: r.name):
        if not _set(m.output_port) and not _set(m.output_vlan):
            yield Unsupported(
                "Bridge", n, "mirrors", f"mirror {m.name}: no output_port or output_vlan"
            )
    if br.rstp_enable is True and br.stp_enable is True:
        yield Unsupported(
            "Bridge", n, "rstp_enable", "STP and RSTP cannot run together: STP runs"
        )  # fmt: skip
    if br.mcast_snooping_enable is True:
        yield Unsupported(
            "Bridge", n, "mcast_snooping_enable", f"IGMP/MLD snooping is {_NOT}: multicast floods"
        )
    if _set(br.flood_vlans):
        yield Unsupported("Bridge", n, "flood_vlans", f"flood_vlans is {_NOT}: MACs are learned")
    for tid, ft in sorted(dict(br.flow_tables).items()):
        _, untracked = prefix_fields(tuple(ft.prefixes))
        if untracked:
            yield Unsupported(
                "Bridge", n, "flow_tables",
                f"table {tid}: prefixes {', '.join(untracked)} not tracked "
                "(hitless tracks ip_dst and ip_src only)",
            )  # fmt: skip
        for g in ft.groups:
            try:
                parse_subfield(g)
            except ValueError as e:
                yield Unsupported(
                    "Bridge", n, "flow_tables", f"table {tid}: eviction group ignored: {e}"
                )
    if _set(br.auto_attach):
        yield Unsupported("Bridge", n, "auto_attach", f"Auto Attach (IEEE 802.1Qcb) is {_NOT}")


# QoS types this switch applies: the two Linux shapers through tc on the port's devices,
# the policer in the datapath (hitless.daemon.qos, hitless.ofproto.bridge).
TC_QOS_TYPES = ("linux-htb", "linux-hfsc")
QOS_TYPES = (*TC_QOS_TYPES, "egress-policer")


def _port(br: Any, port: Any) -> Iterable[Unsupported]:
    n = port.name
    tree = "STP" if br.stp_enable is True else "RSTP" if br.rstp_enable is True else None
    if tree is not None and len(port.interfaces) > 1:
        yield Unsupported(
            "Port", n, "interfaces",
            f"a bond takes no part in {tree}: its members send no BPDUs and are never blocked",
        )  # fmt: skip
    if _set(port.qos):
        q = port.qos[0] if isinstance(port.qos, list) else port.qos
        if q.type not in QOS_TYPES:
            yield Unsupported(
                "Port",
                n,
                "qos",
                f"QoS type {q.type!r} is {_NOT} (supported: {', '.join(QOS_TYPES)})",
            )
        elif q.type in TC_QOS_TYPES and br.datapath_type == "dummy":
            yield Unsupported(
                "Port", n, "qos",
                f"QoS {q.type} shapes a network device with tc: a dummy bridge has none; "
                "the setting has no effect",
            )  # fmt: skip
    if port.protected is True:
        yield Unsupported("Port", n, "protected", f"protected ports are {_NOT}")
    if _set(port.cvlans):
        yield Unsupported("Port", n, "cvlans", f"dot1q-tunnel customer VLANs are {_NOT}")


def _iface(iface: Any) -> Iterable[Unsupported]:
    n = iface.name
    if _set(iface.bfd):
        yield Unsupported("Interface", n, "bfd", f"BFD is {_NOT}")
    if _set(iface.cfm_mpid):
        yield Unsupported("Interface", n, "cfm_mpid", f"CFM is {_NOT}")
    if _set(iface.lldp):
        yield Unsupported("Interface", n, "lldp", f"LLDP is {_NOT}")
    for col in ("ingress_policing_kpkts_rate", "ingress_policing_kpkts_burst"):
        if getattr(iface, col):
            yield Unsupported(
                "Interface", n, col, f"packet-rate ingress policing is {_NOT}: no rate limit"
            )


def unsupported(ovs_row: Any | None, collector_sets: Iterable[Any] = ()) -> tuple[Unsupported, ...]:
    """Every setting of the database this switch does not implement (``collector_sets``:
    the Flow_Sample_Collector_Set rows, reported on their bridges)."""
    if ovs_row is None:
        return ()
    out: list[Unsupported] = []
    for cs in sorted(collector_sets, key=lambda r: r.id):
        br = cs.bridge[0] if isinstance(cs.bridge, list) else cs.bridge
        if br is not None and getattr(br, "name", None):
            out.append(Unsupported(
                "Bridge", br.name, "ipfix",
                f"Flow_Sample_Collector_Set {cs.id}: flow-based IPFIX (the OpenFlow sample "
                f"action's collector sets) is {_NOT}: nothing is sent to it",
            ))  # fmt: skip
    if _set(ovs_row.ssl):
        out.append(Unsupported("Open_vSwitch", ".", "ssl", f"SSL for OpenFlow is {_NOT}"))
    out += (Unsupported(*bad) for bad in bad_switch_values(ovs_row))
    for br in sorted(ovs_row.bridges, key=lambda r: r.name):
        out += _bridge(br)
        out += (Unsupported(*bad) for bad in bad_values(br))
        for port in sorted(br.ports, key=lambda r: r.name):
            out += _port(br, port)
            for iface in sorted(port.interfaces, key=lambda r: r.name):
                out += _iface(iface)
    return tuple(out)


def notes_by_row(items: Iterable[Unsupported]) -> dict[tuple[str, str], str]:
    """(table, name) -> the status text of that row ("; "-joined)."""
    out: dict[tuple[str, str], list[str]] = {}
    for u in items:
        out.setdefault((u.table, u.name), []).append(u.text())
    return {k: "; ".join(v) for k, v in out.items()}
