"""The configuration model: immutable values computed from the whole OVSDB database.

Configured state only. Learned state (MAC tables, datapath flows, connections) lives in
the layers that learn it, never here. Equality of two models means "nothing to do".
"""

from __future__ import annotations

from dataclasses import dataclass, field

OFPP_LOCAL = 0xFFFE  # the bridge's own internal port (OpenFlow 1.3, 7.2.1)
# Open_vSwitch other_config:flow-limit when unset: datapath flows per bridge (Open
# vSwitch's default; docs/hardening.md).
DEFAULT_FLOW_LIMIT = 200_000
# Open_vSwitch other_config:max-idle (ms): how long an idle datapath flow stays; Open
# vSwitch's default and floor.
DEFAULT_MAX_IDLE_MS = 10_000
MIN_MAX_IDLE_MS = 500


@dataclass(frozen=True, slots=True)
class InterfaceConfig:
    name: str
    type: str = "system"  # "system" | "internal" | "patch" | "dummy" (OVSDB "" = system)
    ofport_request: int | None = None
    admin_state: str | None = None  # "up" | "down" | None (leave as is)
    options: dict[str, str] = field(default_factory=dict)  # patch: peer; dummy: tx_pcap
    mac: str | None = None  # Interface.mac (for internal interfaces)
    mtu_request: int | None = None  # Interface.mtu_request: the device's MTU is set to it
    ingress_policing_rate: int = 0  # kbit/s, 0 = no policing
    ingress_policing_burst: int = 0  # kbit, 0 = Open vSwitch's default (8000)

    @property
    def peer(self) -> str | None:
        """A patch interface's options:peer (None for other types)."""
        return self.options.get("peer") if self.type == "patch" else None


@dataclass(frozen=True, slots=True)
class PortConfig:
    name: str
    interfaces: tuple[InterfaceConfig, ...]
    tag: int | None = None  # access VLAN
    trunks: frozenset[int] = frozenset()  # empty = all VLANs
    vlan_mode: str | None = None  # access | trunk | native-tagged | native-untagged
    # A port with several interfaces is a bond (one logical port): see BondConfig.
    bond: BondConfig | None = None
    qos: QosConfig | None = None  # Port.qos: egress shaping/policing of its interfaces
    other_config: dict[str, str] = field(default_factory=dict)  # stp-*; bonds read theirs


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """A Queue row as a QoS row's ``queues`` names it (ovs-vswitchd.conf.db(5), Queue):
    ``other_config`` min-rate, max-rate (bit/s), burst (bits), priority."""

    queue_id: int
    other_config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QosConfig:
    """A QoS row: ``type`` (linux-htb, linux-hfsc, egress-policer...), its
    ``other_config`` (max-rate for the shapers; cir, cbs for egress-policer) and its
    queues by id."""

    type: str
    other_config: dict[str, str] = field(default_factory=dict)
    queues: tuple[QueueConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class BondConfig:
    """The bond settings of a Port with more than one interface (ovs-vswitchd.conf.db(5),
    "Bonding Configuration"); defaults as Open vSwitch's."""

    mode: str = "active-backup"  # active-backup | balance-slb | balance-tcp
    lacp: str = "off"  # off | active | passive
    updelay: int = 0  # ms a member's link must stay up before it is enabled
    downdelay: int = 0  # ms a member's link must stay down before it is disabled
    primary: str | None = None  # other_config:bond-primary (active-backup)
    rebalance_interval: int = 10_000  # ms, other_config:bond-rebalance-interval (0: never)
    lacp_time: str = "slow"  # other_config:lacp-time fast | slow
    lacp_system_id: str | None = None  # other_config:lacp-system-id
    lacp_system_priority: int = 65534  # other_config:lacp-system-priority
    lacp_fallback_ab: bool = False  # other_config:lacp-fallback-ab
    # Port.bond_active_slave: the active member's MAC as last written back (by this or a
    # previous process): a new bond starts with that member active, as Open vSwitch
    # does after a restart. A status column, so it is not part of equality.
    active_mac: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    target: str  # "tcp:IP:PORT", "ptcp:PORT[:IP]", "unix:PATH", "punix:PATH"

    @property
    def primary(self) -> bool:
        """An active connection (tcp:, unix:, ssl:): a "primary controller" in Open
        vSwitch's terms; ptcp:/punix: are service connections."""
        return self.target.split(":", 1)[0] in ("tcp", "unix", "ssl")


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    """A Mirror row of a bridge (ports by Port name)."""

    name: str
    select_all: bool = False
    select_src_port: frozenset[str] = frozenset()
    select_dst_port: frozenset[str] = frozenset()
    select_vlan: frozenset[int] = frozenset()  # empty: every VLAN
    output_port: str | None = None
    # RSPAN: the selected frames go, tagged with this VLAN, wherever the VLAN goes
    # (exclusive with output_port, as the schema says).
    output_vlan: int | None = None


@dataclass(frozen=True, slots=True)
class SflowConfig:
    """A bridge's sFlow row: collectors ("IP:PORT"), one in ``sampling`` packets
    sampled, counters every ``polling`` seconds (0: never), the first ``header`` bytes
    of each sampled packet, ``agent`` (an interface name or an IP address; None: the
    source address of the route to the first collector). Defaults as
    ovs-vswitchd.conf.db(5)."""

    targets: tuple[str, ...]
    sampling: int = 400
    polling: int = 30
    header: int = 128
    agent: str | None = None


@dataclass(frozen=True, slots=True)
class NetflowConfig:
    """A bridge's NetFlow row: collectors ("IP:PORT"), the active timeout in seconds
    (Open vSwitch's 600 when 0 or absent), the header's engine type and id."""

    targets: tuple[str, ...]
    active_timeout: int = 600
    engine_type: int = 0
    engine_id: int = 0


@dataclass(frozen=True, slots=True)
class IpfixConfig:
    """A bridge's IPFIX row (bridge-level sampling): collectors ("IP:PORT"), one in
    ``sampling`` packets sampled, the observation domain and point ids, how long a flow's
    samples are aggregated before its record goes (``cache_active_timeout`` s; 0: sent at
    once) and at most ``cache_max_flows`` flows aggregated (0: no limit), sampling on
    input and/or on output (``other_config:enable-input-sampling`` and
    ``enable-output-sampling``, both on by default). Defaults as
    ovs-vswitchd.conf.db(5)."""

    targets: tuple[str, ...]
    sampling: int = 400
    obs_domain_id: int = 0
    obs_point_id: int = 0
    cache_active_timeout: int = 0
    cache_max_flows: int = 0
    input_sampling: bool = True
    output_sampling: bool = True


@dataclass(frozen=True, slots=True)
class FlowTableConfig:
    """A Flow_Table row attached to a table id by Bridge.flow_tables."""

    name: str | None = None
    flow_limit: int | None = None  # None: unlimited
    overflow_policy: str = "refuse"  # refuse | evict
    groups: tuple[str, ...] = ()  # eviction groups' subfields (hitless.ofproto.eviction)
    prefixes: tuple[str, ...] = ()  # address fields whose prefixes lookups track


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    name: str
    datapath_type: str = "netdev"  # "netdev" | "dummy" | "ebpf"; OVSDB "" means netdev here
    fail_mode: str = "standalone"  # "standalone" | "secure"
    other_config: dict[str, str] = field(default_factory=dict)
    ports: dict[str, PortConfig] = field(default_factory=dict)
    protocols: tuple[str, ...] = tuple(f"OpenFlow1{n}" for n in range(6))  # OVS default
    controllers: tuple[ControllerConfig, ...] = ()
    flow_tables: dict[int, FlowTableConfig] = field(default_factory=dict)
    mirrors: tuple[MirrorConfig, ...] = ()
    stp_enable: bool = False  # Bridge.stp_enable (other_config:stp-* tune it)
    sflow: SflowConfig | None = None  # Bridge.sflow
    rstp_enable: bool = False  # Bridge.rstp_enable (other_config:rstp-* tune it)
    netflow: NetflowConfig | None = None  # Bridge.netflow
    ipfix: IpfixConfig | None = None  # Bridge.ipfix

    @property
    def has_primary_controller(self) -> bool:
        return any(c.primary for c in self.controllers)

    @property
    def mac_aging_time(self) -> int:
        """other_config:mac-aging-time in seconds (default 300, as Open vSwitch)."""
        try:
            return max(1, int(self.other_config.get("mac-aging-time", "300")))
        except ValueError:
            return 300

    @property
    def mac_table_size(self) -> int:
        try:
            return max(1, int(self.other_config.get("mac-table-size", "8192")))
        except ValueError:
            return 8192


@dataclass(frozen=True, slots=True)
class SwitchConfig:
    bridges: dict[str, BridgeConfig] = field(default_factory=dict)
    next_cfg: int = 0
    other_config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ControllerStatus:
    """What the switch writes back to a Controller row."""

    is_connected: bool
    role: str | None = None  # "other" | "master" | "slave" while connected
    state: str = ""  # the connection state machine's state (status:state)
    last_error: str | None = None  # why the last attempt failed or connection ended
    connected_at: int | None = None  # ms (the connection's clock) it last connected
    disconnected_at: int | None = None  # ms it last lost an established connection

    def status_map(self, now_ms: int) -> dict[str, str]:
        """The Controller.status map as Open vSwitch 3.1 writes it (connmgr): last_error
        (once a connection attempt failed or a connection ended), state,
        sec_since_connect and sec_since_disconnect (whole seconds, absent until the
        first connection/disconnection); a passive (listening) target has none."""
        out: dict[str, str] = {}
        if self.last_error:
            out["last_error"] = self.last_error
        if self.state:
            out["state"] = self.state
        if self.connected_at is not None:
            out["sec_since_connect"] = str(max(0, now_ms - self.connected_at) // 1000)
        if self.disconnected_at is not None:
            out["sec_since_disconnect"] = str(max(0, now_ms - self.disconnected_at) // 1000)
        return out


@dataclass(frozen=True, slots=True)
class InterfaceStatus:
    """What the switch writes back to an Interface row."""

    ofport: int  # -1 when the interface could not be attached (as Open vSwitch)
    error: str | None = None
    link_state: str | None = None  # "up" | "down"
    admin_state: str | None = None
    mac_in_use: str | None = None
    # From the device (netdev/ebpf bridges), refreshed at stats-update-interval:
    ifindex: int | None = None
    mtu: int | None = None
    link_speed: int | None = None  # bits/s
    duplex: str | None = None
    link_resets: int | None = None  # link_state changes the switch has seen
    lacp_current: bool | None = None  # a member of an LACP bond: its partner is current
    statistics: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
