"""The OVSDB adapter: reads the whole Open_vSwitch database into a ``SwitchConfig`` and
writes interface status and ``cur_cfg`` back, through the ``ovs`` library's IDL.

Two halves:

* ``config_from_rows`` is pure: it turns IDL rows (anything with the column attributes,
  so tests can pass plain objects) into an immutable ``SwitchConfig`` plus the
  interfaces that were rejected and why. It is level-triggered: it always reads
  everything, never individual row events.
* ``schema_helper`` and ``write_status`` talk to the IDL.

Database conventions of this switch (they differ from Open vSwitch where noted):

* ``Bridge.datapath_type`` "" means ``netdev`` (the userspace datapath; Open vSwitch
  would mean its kernel datapath, which this switch does not have).
* ``Interface.type`` "" means ``system`` (an existing network device); ``internal``
  is the bridge's own port; ``patch`` (with ``options:peer``) connects two bridges, as
  in Open vSwitch. Other types are rejected with an ``Interface.error``.
* ``Interface.admin_state`` is a status column, as in Open vSwitch: the switch writes
  it, it never reads it as configuration (``ovs-ofctl mod-port`` changes it).

Must not import ofproto, datapath, daemon or handoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hitless.config.model import (
    BondConfig,
    BridgeConfig,
    ControllerConfig,
    ControllerStatus,
    FlowTableConfig,
    InterfaceConfig,
    InterfaceStatus,
    IpfixConfig,
    MirrorConfig,
    NetflowConfig,
    PortConfig,
    QosConfig,
    QueueConfig,
    SflowConfig,
    SwitchConfig,
)

log = logging.getLogger(__name__)

STATUS_KEY = "hitless_unsupported"  # as hitless.config.unsupported

DEFAULT_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
DEFAULT_DATAPATH_TYPE = "netdev"
SUPPORTED_INTERFACE_TYPES = ("system", "internal", "patch", "dummy")
# Datapath.capabilities of a Datapath row for these datapath types (Open_vSwitch.datapaths
# maps a type to its row; ovn-controller creates the row for its bridge's type and reads
# ct_zero_snat from it, then commits every connection with nat(src)). Only what the
# netdev and dummy datapaths' tracker and actions really do (hitless/datapath/
# conntrack.py): no check_pkt_len, no IPv6 original tuple, no timeout policies.
_CAPS = ("recirc", "ct_state", "ct_zone", "ct_mark", "ct_label", "ct_state_nat",
         "ct_orig_tuple", "ct_clear", "ct_zero_snat", "clone")  # fmt: skip
DATAPATH_CAPABILITIES: dict[str, dict[str, str]] = {
    t: dict.fromkeys(_CAPS, "true") for t in ("netdev", "dummy")
}
# An empty Bridge.protocols means Open vSwitch's default: OpenFlow 1.0 to 1.5.
DEFAULT_PROTOCOLS = tuple(f"OpenFlow1{n}" for n in range(6))

# The columns this switch reads (and, for Interface, writes back).
COLUMNS: dict[str, list[str]] = {
    "Open_vSwitch": [
        "bridges",
        "next_cfg",
        "cur_cfg",
        "other_config",
        "datapath_types",  # written back
        "iface_types",  # written back
        "statistics",  # written back while other_config:enable-statistics=true
        "datapaths",  # Datapath rows others create (ovn-controller does), capabilities ours
    ],
    "Datapath": ["capabilities"],  # written back
    "Bridge": [
        "name",
        "ports",
        "datapath_type",
        "fail_mode",
        "other_config",
        "protocols",
        "controller",
        "datapath_id",
        "flow_tables",
        "mirrors",
        "stp_enable",
        "sflow",
        "rstp_enable",
        "rstp_status",  # written back
        "netflow",
        "ipfix",
    ],
    "NetFlow": ["targets", "active_timeout", "engine_type", "engine_id"],
    "IPFIX": [
        "targets",
        "sampling",
        "obs_domain_id",
        "obs_point_id",
        "cache_active_timeout",
        "cache_max_flows",
        "other_config",
    ],
    "sFlow": ["targets", "sampling", "polling", "header", "agent"],
    "Mirror": [
        "name",
        "select_all",
        "select_src_port",
        "select_dst_port",
        "select_vlan",
        "output_port",
        "output_vlan",
        "statistics",  # written back (tx_packets, tx_bytes)
    ],
    "Flow_Table": ["name", "flow_limit", "overflow_policy", "groups", "prefixes"],
    "Port": [
        "name",
        "interfaces",
        "tag",
        "trunks",
        "vlan_mode",
        "bond_mode",
        "lacp",
        "bond_updelay",
        "bond_downdelay",
        "other_config",
        "bond_active_slave",  # written back by the switch (and read at bond creation)
        "qos",
        "statistics",  # written back (STP counters)
        "rstp_status",  # written back
        "rstp_statistics",  # written back
    ],
    "QoS": ["type", "other_config", "queues"],
    "Queue": ["other_config"],
    "Interface": [
        "name",
        "type",
        "ofport_request",
        "options",
        "mac",
        "mtu_request",
        "ingress_policing_rate",
        "ingress_policing_burst",
        # written back by the switch:
        "ofport",
        "error",
        "link_state",
        "admin_state",
        "mac_in_use",
        "ifindex",
        "mtu",
        "link_speed",
        "duplex",
        "link_resets",
        "lacp_current",
        "statistics",
        "status",
    ],
    "Controller": ["target", "is_connected", "role", "status"],  # the last 3 written back
}


@dataclass(frozen=True, slots=True)
class ConfigRead:
    """The result of reading the database."""

    config: SwitchConfig
    rejected: dict[str, str] = field(default_factory=dict)  # interface -> error
    warnings: tuple[str, ...] = ()


def _opt(value: Any) -> Any:
    """An optional OVSDB column (the IDL gives a list of 0 or 1 element) as value|None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _protocol_key(name: str) -> tuple[int, str]:
    digits = "".join(c for c in name if c.isdigit())
    return (int(digits) if digits else 0, name)


def config_from_rows(ovs_row: Any | None) -> ConfigRead | None:
    """Compute the whole switch configuration from the Open_vSwitch row (None when the
    database has no such row yet, in which case there is nothing to apply)."""
    if ovs_row is None:
        return None
    bridges: dict[str, BridgeConfig] = {}
    rejected: dict[str, str] = {}
    warnings: list[str] = []
    owner: dict[str, str] = {}  # interface name -> bridge that has it
    for br in sorted(ovs_row.bridges, key=lambda r: r.name):
        if br.name in bridges:
            warnings.append(f"bridge {br.name} is listed twice; ignoring the second")
            continue
        ports: dict[str, PortConfig] = {}
        for port in sorted(br.ports, key=lambda r: r.name):
            ifaces: list[InterfaceConfig] = []
            for iface in sorted(port.interfaces, key=lambda r: r.name):
                if iface.name in owner:
                    rejected[iface.name] = (
                        f"interface {iface.name} is already part of bridge {owner[iface.name]}"
                    )
                    continue
                itype = iface.type or "system"
                if itype not in SUPPORTED_INTERFACE_TYPES:
                    rejected[iface.name] = (
                        f"unsupported interface type {itype!r} "
                        f"(this switch supports: {', '.join(SUPPORTED_INTERFACE_TYPES)})"
                    )
                    continue
                owner[iface.name] = br.name
                ofport_request = _opt(iface.ofport_request)
                ifaces.append(
                    InterfaceConfig(
                        name=iface.name,
                        type=itype,
                        ofport_request=ofport_request,
                        options=dict(iface.options),
                        mac=_opt(iface.mac),
                        mtu_request=_opt(iface.mtu_request),
                        ingress_policing_rate=max(0, int(iface.ingress_policing_rate or 0)),
                        ingress_policing_burst=max(0, int(iface.ingress_policing_burst or 0)),
                    )
                )
            if not ifaces:
                if not port.interfaces:
                    warnings.append(f"port {port.name} on bridge {br.name} has no interfaces")
                continue
            bond = bond_config(port) if len(port.interfaces) > 1 else None
            if bond is not None:
                refusal = bond_refusal(port.name, bond)
                if refusal is not None:
                    # Never run the members as independent ports: with a host joined to
                    # two of them, that is a forwarding loop.
                    for ic in ifaces:
                        rejected[ic.name] = refusal
                    continue
            ports[port.name] = PortConfig(
                name=port.name,
                interfaces=tuple(ifaces),
                tag=_opt(port.tag),
                trunks=frozenset(port.trunks),
                vlan_mode=_opt(port.vlan_mode),
                bond=bond,
                qos=qos_config(_opt(port.qos)),
                other_config={
                    k: v
                    for k, v in dict(port.other_config).items()
                    if k.startswith(("stp-", "rstp-"))
                },
            )
        protocols = tuple(sorted(br.protocols, key=_protocol_key)) or DEFAULT_PROTOCOLS
        bridges[br.name] = BridgeConfig(
            name=br.name,
            datapath_type=br.datapath_type or DEFAULT_DATAPATH_TYPE,
            fail_mode=_opt(br.fail_mode) or "standalone",
            other_config=dict(br.other_config),
            ports=ports,
            protocols=protocols,
            controllers=tuple(
                ControllerConfig(c.target) for c in sorted(br.controller, key=lambda r: r.target)
            ),
            flow_tables={
                int(tid): FlowTableConfig(
                    name=_opt(ft.name),
                    flow_limit=_opt(ft.flow_limit),
                    overflow_policy=_opt(ft.overflow_policy) or "refuse",
                    groups=tuple(ft.groups),
                    prefixes=tuple(ft.prefixes),
                )
                for tid, ft in dict(br.flow_tables).items()
            },
            mirrors=tuple(
                MirrorConfig(
                    name=m.name,
                    select_all=bool(m.select_all),
                    select_src_port=frozenset(p.name for p in m.select_src_port),
                    select_dst_port=frozenset(p.name for p in m.select_dst_port),
                    select_vlan=frozenset(m.select_vlan),
                    output_port=_opt(m.output_port).name if _opt(m.output_port) else None,
                    output_vlan=None if _opt(m.output_port) else _opt(m.output_vlan),
                )
                for m in sorted(br.mirrors, key=lambda r: r.name)
                if _opt(m.output_port) is not None or _opt(m.output_vlan) is not None
            ),
            stp_enable=br.stp_enable is True,
            sflow=sflow_config(_opt(br.sflow)),
            rstp_enable=br.rstp_enable is True,
            netflow=netflow_config(_opt(br.netflow), br.name),
            ipfix=ipfix_config(_opt(br.ipfix)),
        )
    return ConfigRead(
        config=SwitchConfig(
            bridges=bridges,
            next_cfg=ovs_row.next_cfg,
            other_config=dict(ovs_row.other_config),
        ),
        rejected=rejected,
        warnings=tuple(warnings),
    )


def sflow_config(row: Any | None) -> SflowConfig | None:
    """A Bridge's sFlow row (None without one, or without a collector)."""
    if row is None or not row.targets:
        return None
    return SflowConfig(
        targets=tuple(sorted(row.targets)),
        sampling=max(1, _int(_opt(row.sampling), 400)),
        polling=max(0, _int(_opt(row.polling), 30)),
        header=max(1, _int(_opt(row.header), 128)),
        agent=_opt(row.agent) or None,
    )


def netflow_config(row: Any | None, bridge: str) -> NetflowConfig | None:
    """A Bridge's NetFlow row (None without one or without a collector). Without an
    engine type/id, both come from the bridge's name (Open vSwitch takes them from its
    datapath: they differ)."""
    if row is None or not row.targets:
        return None
    h = sum(bridge.encode()) * 2654435761
    return NetflowConfig(
        targets=tuple(sorted(row.targets)),
        active_timeout=_int(_opt(row.active_timeout), 0) or 600,
        engine_type=_int(_opt(row.engine_type), h >> 8 & 0xFF) & 0xFF,
        engine_id=_int(_opt(row.engine_id), h & 0xFF) & 0xFF,
    )


def ipfix_config(row: Any | None) -> IpfixConfig | None:
    """A Bridge's IPFIX row (None without one or without a collector)."""
    if row is None or not row.targets:
        return None
    oc = dict(row.other_config)
    return IpfixConfig(
        targets=tuple(sorted(row.targets)),
        sampling=max(1, _int(_opt(row.sampling), 400)),
        obs_domain_id=_int(_opt(row.obs_domain_id), 0) & 0xFFFFFFFF,
        obs_point_id=_int(_opt(row.obs_point_id), 0) & 0xFFFFFFFF,
        cache_active_timeout=max(0, _int(_opt(row.cache_active_timeout), 0)),
        cache_max_flows=max(0, _int(_opt(row.cache_max_flows), 0)),
        input_sampling=oc.get("enable-input-sampling", "true") != "false",
        output_sampling=oc.get("enable-output-sampling", "true") != "false",
    )


def qos_config(row: Any | None) -> QosConfig | None:
    """A QoS row (or None) as a ``QosConfig``."""
    if row is None:
        return None
    return QosConfig(
        type=row.type,
        other_config=dict(row.other_config),
        queues=tuple(
            QueueConfig(int(qid), dict(q.other_config))
            for qid, q in sorted(dict(row.queues).items())
        ),
    )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def bond_config(port: Any) -> BondConfig:
    """The bond settings of a Port row with several interfaces."""
    oc = dict(port.other_config)
    return BondConfig(
        mode=_opt(port.bond_mode) or "active-backup",
        lacp=_opt(port.lacp) or "off",
        updelay=max(0, _int(port.bond_updelay, 0)),
        downdelay=max(0, _int(port.bond_downdelay, 0)),
        primary=oc.get("bond-primary") or None,
        rebalance_interval=max(0, _int(oc.get("bond-rebalance-interval"), 10_000)),
        lacp_time=oc.get("lacp-time", "slow"),
        lacp_system_id=oc.get("lacp-system-id") or None,
        lacp_system_priority=_int(oc.get("lacp-system-priority"), 65534),
        lacp_fallback_ab=oc.get("lacp-fallback-ab", "false") == "true",
        active_mac=_opt(port.bond_active_slave),
    )


SUPPORTED_BOND_MODES = ("active-backup", "balance-slb", "balance-tcp")  # hitless.ofproto.bond
SUPPORTED_LACP = ("active", "passive")


def bond_refusal(port: str, bond: BondConfig) -> str | None:
    """Why this switch cannot run the bond (the members' Interface.error), or None."""
    if bond.mode not in SUPPORTED_BOND_MODES:
        return (
            f"port {port}: bond_mode {bond.mode} is not supported by this switch yet; "
            "the bond's interfaces stay detached (never forwarding as separate ports)"
        )
    if bond.lacp != "off" and bond.lacp not in SUPPORTED_LACP:
        return (
            f"port {port}: lacp={bond.lacp} is not supported by this switch yet; "
            "the bond's interfaces stay detached (never forwarding as separate ports)"
        )
    if bond.mode == "balance-tcp" and bond.lacp == "off":
        # Open vSwitch would drop everything such a bond receives; say so instead.
        return (
            f"port {port}: bond_mode balance-tcp needs lacp=active or lacp=passive; "
            "the bond's interfaces stay detached (never forwarding as separate ports)"
        )
    return None


# The IDL side ------------------------------------------------------------------------


def schema_helper(schema_path: str = DEFAULT_SCHEMA) -> Any:
    """An ``ovs.db.idl.SchemaHelper`` registering only the columns this switch uses."""
    import ovs.db.idl

    from hitless.config import unsupported

    helper = ovs.db.idl.SchemaHelper(location=schema_path)
    tables = {t: list(c) for t, c in COLUMNS.items()}
    for table, columns in unsupported.COLUMNS.items():
        tables.setdefault(table, []).extend(c for c in columns if c not in tables[table])
    for table, columns in tables.items():
        helper.register_columns(table, columns)
    return helper


def open_vswitch_row(idl: Any) -> Any | None:
    rows = list(idl.tables["Open_vSwitch"].rows.values())
    return rows[0] if rows else None


def read_config(idl: Any) -> ConfigRead | None:
    return config_from_rows(open_vswitch_row(idl))


def interface_rows(idl: Any) -> dict[str, Any]:
    return {row.name: row for row in idl.tables["Interface"].rows.values()}


OFPP_MAX = 0xFF00  # highest OpenFlow port number a physical/logical port may have


def ofport_hints(idl: Any) -> dict[str, int]:
    """The OpenFlow port numbers the database says interfaces had (Interface.ofport), so a
    restarted switch can give them the same numbers again (as Open vSwitch does)."""
    out: dict[str, int] = {}
    for name, row in interface_rows(idl).items():
        ofport = _opt(row.ofport)
        if isinstance(ofport, int) and 0 < ofport < OFPP_MAX:
            out[name] = ofport
    return out


def _set_opt(row: Any, column: str, value: Any) -> None:
    new = [] if value is None else [value]
    if list(getattr(row, column)) != new:
        setattr(row, column, new)


def write_links(idl: Any, statuses: Mapping[str, InterfaceStatus]) -> Any | None:
    """Stage and commit one transaction writing only ``link_state``, ``admin_state`` and
    ``link_resets`` of the Interface rows named in ``statuses`` (a link went up or down:
    these go out at once, on their own, before the rest of the status is gathered);
    return it, or None when the rows already say so. The caller keeps calling
    ``commit()`` on an INCOMPLETE transaction, as for ``write_status``."""
    import ovs.db.idl

    rows = interface_rows(idl)
    txn = ovs.db.idl.Transaction(idl)
    txn.add_comment("hitless-vswitchd: link state")
    for name, st in statuses.items():
        row = rows.get(name)
        if row is None:
            continue
        _set_opt(row, "link_state", st.link_state)
        _set_opt(row, "admin_state", st.admin_state)
        _set_opt(row, "link_resets", st.link_resets)
    status = txn.commit()
    if status == ovs.db.idl.Transaction.UNCHANGED:
        return None
    return txn


def write_status(
    idl: Any,
    statuses: Mapping[str, InterfaceStatus],
    cur_cfg: int | None = None,
    comment: str = "hitless-vswitchd: status",
    controllers: Mapping[str, ControllerStatus] | None = None,
    datapath_ids: Mapping[str, int] | None = None,
    bond_active: Mapping[str, str | None] | None = None,
    types: tuple[list[str], list[str]] | None = None,
    notes: Mapping[tuple[str, str], str] | None = None,
    now_ms: int = 0,
    row_status: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
    port_statistics: Mapping[str, Mapping[str, int]] | None = None,
    system_stats: Mapping[str, str] | None = None,
    mirror_statistics: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
) -> Any | None:
    """Stage one transaction writing ``statuses`` to the Interface rows (by name),
    each bond's active member MAC (Port.bond_active_slave), Open_vSwitch
    datapath_types/iface_types (``types``) and the capabilities of its Datapath rows, the
    ``hitless_unsupported`` key of Bridge, Port and Interface status maps (``notes``, from
    hitless.config.unsupported), the rest of Bridge and Port status (``row_status``: the
    spanning tree's keys), Port.statistics (``port_statistics``), Open_vSwitch.statistics
    (``system_stats``), Mirror.statistics (``mirror_statistics``, by (bridge, mirror)),
    Controller connection state (its ``status`` map as of ``now_ms``, the controllers'
    clock), each running bridge's OpenFlow datapath ID (16 hex
    digits, as Open vSwitch writes it) and, if given, Open_vSwitch.cur_cfg; commit it
    and return it (None when nothing changed). The caller keeps calling ``commit()`` on
    an INCOMPLETE transaction."""
    import ovs.db.idl

    rows = interface_rows(idl)
    txn = ovs.db.idl.Transaction(idl)
    txn.add_comment(comment)
    for name, st in statuses.items():
        row = rows.get(name)
        if row is None:  # removed from the database meanwhile
            continue
        _set_opt(row, "ofport", st.ofport)
        _set_opt(row, "error", st.error)
        _set_opt(row, "link_state", st.link_state)
        _set_opt(row, "admin_state", st.admin_state)
        _set_opt(row, "mac_in_use", st.mac_in_use)
        _set_opt(row, "ifindex", st.ifindex)
        _set_opt(row, "mtu", st.mtu)
        _set_opt(row, "link_speed", st.link_speed)
        _set_opt(row, "duplex", st.duplex)
        _set_opt(row, "link_resets", st.link_resets)
        _set_opt(row, "lacp_current", st.lacp_current)
        if dict(row.statistics) != st.statistics:
            row.statistics = dict(st.statistics)
        status = dict(st.status)
        note = notes.get(("Interface", name)) if notes else None
        if note:
            status[STATUS_KEY] = note
        if dict(row.status) != status:
            row.status = status
    if controllers:
        for row in idl.tables["Controller"].rows.values():
            cs = controllers.get(row.target)
            if cs is None:
                continue
            if row.is_connected != cs.is_connected:
                row.is_connected = cs.is_connected
            _set_opt(row, "role", cs.role)
            status = cs.status_map(now_ms)
            if dict(row.status) != status:
                row.status = status
    if notes is not None:
        for table in ("Bridge", "Port"):
            for row in idl.tables[table].rows.values():
                key = (table, row.name)
                rest = dict(row_status.get(key, {})) if row_status else {}
                rstp = {k: rest.pop(k) for k in [k for k in rest if k.startswith("rstp_")]}
                _set_note(row, notes.get(key), rest)
                if dict(row.rstp_status) != rstp:
                    row.rstp_status = rstp
    if port_statistics is not None:
        for row in idl.tables["Port"].rows.values():
            stats = dict(port_statistics.get(row.name, {}))
            rstp_stats = {k: stats.pop(k) for k in [k for k in stats if k.startswith("rstp_")]}
            if dict(row.statistics) != stats:
                row.statistics = stats
            if dict(row.rstp_statistics) != rstp_stats:
                row.rstp_statistics = rstp_stats
    if mirror_statistics is not None:
        for br in idl.tables["Bridge"].rows.values():
            for m in br.mirrors:
                mstats = dict(mirror_statistics.get((br.name, m.name), {}))
                if dict(m.statistics) != mstats:
                    m.statistics = mstats
    if bond_active:
        for row in idl.tables["Port"].rows.values():
            if row.name in bond_active:
                _set_opt(row, "bond_active_slave", bond_active[row.name])
    if datapath_ids:
        for row in idl.tables["Bridge"].rows.values():
            dpid = datapath_ids.get(row.name)
            if dpid is not None:
                _set_opt(row, "datapath_id", f"{dpid:016x}")
    ovs_row = open_vswitch_row(idl)
    if cur_cfg is not None and ovs_row is not None and ovs_row.cur_cfg != cur_cfg:
        ovs_row.cur_cfg = cur_cfg
    if (
        system_stats is not None
        and ovs_row is not None
        and dict(ovs_row.statistics) != dict(system_stats)
    ):
        ovs_row.statistics = dict(system_stats)
    if types is not None and ovs_row is not None:
        if sorted(ovs_row.datapath_types) != types[0]:
            ovs_row.datapath_types = types[0]
        if sorted(ovs_row.iface_types) != types[1]:
            ovs_row.iface_types = types[1]
        for dp_type, dp_row in dict(ovs_row.datapaths).items():
            caps = DATAPATH_CAPABILITIES.get(dp_type, {})
            if dict(dp_row.capabilities) != caps:
                dp_row.capabilities = caps
    status = txn.commit()
    if status == ovs.db.idl.Transaction.UNCHANGED:
        return None
    return txn


def _set_note(row: Any, note: str | None, rest: Mapping[str, str]) -> None:
    """Make a row's status map ``rest`` plus the hitless_unsupported key (if ``note``)."""
    status = dict(rest)
    if note:
        status[STATUS_KEY] = note
    if dict(row.status) != status:
        row.status = status


def failed_statuses(names: Iterable[str], error: str) -> dict[str, InterfaceStatus]:
    """The status of interfaces that could not be attached at all."""
    return {n: InterfaceStatus(ofport=-1, error=error) for n in names}
