"""The pure half of the OVSDB adapter: rows (as the IDL presents them) to SwitchConfig,
and the daemon's pure planning on top of it."""

from __future__ import annotations

from types import SimpleNamespace as Row

from hitless.config.model import (
    BridgeConfig,
    InterfaceConfig,
    PortConfig,
    SflowConfig,
    SwitchConfig,
)
from hitless.config.ovsdb import COLUMNS, config_from_rows, schema_helper
from hitless.daemon.switch import plan, with_ofport_hints


def iface(name: str, type: str = "", ofport_request: list[int] | None = None, **kw: object) -> Row:
    return Row(
        name=name,
        type=type,
        ofport_request=ofport_request or [],
        admin_state=[],
        options=kw.get("options", {}),
        mac=kw.get("mac", []),
        mtu_request=[],
        ingress_policing_rate=0,
        ingress_policing_burst=0,
        ofport=[],
        error=[],
    )


def port(
    name: str,
    *ifaces: Row,
    tag: list[int] | None = None,
    trunks: list[int] | None = None,
    vlan_mode: list[str] | None = None,
    bond_mode: list[str] | None = None,
    lacp: list[str] | None = None,
    other_config: dict[str, str] | None = None,
) -> Row:
    return Row(
        name=name,
        interfaces=list(ifaces),
        tag=tag or [],
        trunks=trunks or [],
        vlan_mode=vlan_mode or [],
        bond_mode=bond_mode or [],
        lacp=lacp or [],
        bond_updelay=0,
        bond_downdelay=0,
        other_config=other_config or {},
        bond_active_slave=[],
        qos=[],
    )


def bridge(name: str, *ports: Row, datapath_type: str = "", **kw: object) -> Row:
    return Row(
        name=name,
        ports=list(ports),
        datapath_type=datapath_type,
        fail_mode=kw.get("fail_mode", []),
        other_config=kw.get("other_config", {}),
        protocols=kw.get("protocols", []),
        controller=kw.get("controller", []),
        flow_tables=kw.get("flow_tables", {}),
        mirrors=kw.get("mirrors", []),
        stp_enable=kw.get("stp_enable", False),
        sflow=kw.get("sflow", []),
        rstp_enable=kw.get("rstp_enable", False),
        netflow=kw.get("netflow", []),
        ipfix=kw.get("ipfix", []),
    )


def ovs(*bridges: Row, next_cfg: int = 3) -> Row:
    return Row(bridges=list(bridges), next_cfg=next_cfg, cur_cfg=0, other_config={})


def test_no_open_vswitch_row_means_nothing_to_apply() -> None:
    assert config_from_rows(None) is None


def test_defaults_and_conversions() -> None:
    read = config_from_rows(
        ovs(
            bridge(
                "br0",
                port("br0", iface("br0", "internal")),
                port("p1", iface("p1", ofport_request=[5], options={"k": "v"}), tag=[10]),
                port("t1", iface("t1"), trunks=[30, 20], vlan_mode=["trunk"]),
                protocols=["OpenFlow15", "OpenFlow13"],
                fail_mode=["secure"],
                controller=[Row(target="tcp:127.0.0.1:6653")],
                other_config={"mac-aging-time": "60"},
            ),
            next_cfg=7,
        )
    )
    assert read is not None and read.rejected == {} and read.warnings == ()
    cfg = read.config
    assert cfg.next_cfg == 7
    br = cfg.bridges["br0"]
    assert br.datapath_type == "netdev"  # "" means netdev for this switch
    assert br.fail_mode == "secure" and br.mac_aging_time == 60
    assert br.protocols == ("OpenFlow13", "OpenFlow15")
    assert [c.target for c in br.controllers] == ["tcp:127.0.0.1:6653"]
    assert br.ports["br0"].interfaces == (InterfaceConfig("br0", "internal"),)
    assert br.ports["p1"] == PortConfig(
        "p1", (InterfaceConfig("p1", "system", 5, None, {"k": "v"}),), tag=10
    )
    assert br.ports["t1"].trunks == frozenset({20, 30}) and br.ports["t1"].vlan_mode == "trunk"
    assert br.ports["t1"].tag is None


def test_an_sflow_row_is_read_with_open_vswitch_s_defaults() -> None:
    row = Row(targets=["127.0.0.1:6343", "10.0.0.9:6343"], sampling=[], polling=[5],
              header=[], agent=["lo"])  # fmt: skip
    cfg = config_from_rows(ovs(bridge("b", sflow=[row]))).config.bridges["b"].sflow  # type: ignore[union-attr]
    assert cfg == SflowConfig(("10.0.0.9:6343", "127.0.0.1:6343"), 400, 5, 128, "lo")
    none = Row(targets=[], sampling=[], polling=[], header=[], agent=[])
    assert config_from_rows(ovs(bridge("b", sflow=[none]))).config.bridges["b"].sflow is None  # type: ignore[union-attr]


def test_protocols_default_and_dummy_type() -> None:
    read = config_from_rows(ovs(bridge("b", datapath_type="dummy")))
    assert read is not None
    assert read.config.bridges["b"].protocols == tuple(f"OpenFlow1{n}" for n in range(6))
    assert read.config.bridges["b"].datapath_type == "dummy"


def test_bad_interfaces_are_rejected_with_a_reason() -> None:
    read = config_from_rows(
        ovs(
            bridge("a", port("x", iface("x")), port("v", iface("v", "vxlan"))),
            bridge("b", port("x2", iface("x")), port("empty")),
        )
    )
    assert read is not None
    assert read.rejected == {
        "v": "unsupported interface type 'vxlan' (this switch supports: system, internal, patch, dummy)",
        "x": "interface x is already part of bridge a",
    }
    assert set(read.config.bridges["a"].ports) == {"x"}
    assert read.config.bridges["b"].ports == {}
    assert read.warnings == ("port empty on bridge b has no interfaces",)


def test_a_bond_is_read_with_its_settings_and_refused_whole_if_unsupported() -> None:
    from hitless.config import ovsdb
    from hitless.config.model import BondConfig

    rows = ovs(
        bridge(
            "br0",
            port(
                "bond0",
                iface("p0"),
                iface("p1"),
                bond_mode=["balance-slb"],
                lacp=["active"],
                other_config={"bond-primary": "p1", "bond-rebalance-interval": "0"},
            ),
            port("solo", iface("s0"), bond_mode=["balance-slb"]),  # one interface: no bond
            port("tcp", iface("t0"), iface("t1"), bond_mode=["balance-tcp"]),  # needs LACP
        )
    )
    port_row = rows.bridges[0].ports[0]
    assert ovsdb.bond_config(port_row) == BondConfig(
        mode="balance-slb", lacp="active", primary="p1", rebalance_interval=0
    )
    read = config_from_rows(rows)
    assert read is not None
    ports = read.config.bridges["br0"].ports
    assert set(ports) == {"bond0", "solo"}
    assert ports["solo"].bond is None and ports["bond0"].bond is not None
    # Refused as a whole: no member is attached on its own.
    assert set(read.rejected) == {"t0", "t1"}
    assert read.rejected["t0"].startswith("port tcp: bond_mode balance-tcp needs lacp=")


def test_reading_is_deterministic_whatever_the_row_order() -> None:
    a = config_from_rows(
        ovs(bridge("b", port("p2", iface("p2")), port("p1", iface("p1"))), bridge("a"))
    )
    b = config_from_rows(
        ovs(bridge("a"), bridge("b", port("p1", iface("p1")), port("p2", iface("p2"))))
    )
    assert a == b


def test_schema_helper_registers_existing_columns_only() -> None:
    from hitless.config import unsupported

    schema = schema_helper().get_idl_schema()
    for table in set(COLUMNS) | set(unsupported.COLUMNS):
        want = set(COLUMNS.get(table, [])) | set(unsupported.COLUMNS.get(table, []))
        assert set(schema.tables[table].columns) == want


def _bridge(name: str, dp: str = "dummy", **ports: int | None) -> BridgeConfig:
    return BridgeConfig(
        name,
        dp,
        ports={
            p: PortConfig(p, (InterfaceConfig(p, ofport_request=req),)) for p, req in ports.items()
        },
    )


def test_plan_warm_and_cold() -> None:
    running = {
        "keep": _bridge("keep"),
        "tune": _bridge("tune"),
        "gone": _bridge("gone"),
        "retype": _bridge("retype"),
    }
    new = SwitchConfig(
        bridges={
            "keep": _bridge("keep"),
            "tune": _bridge("tune", p1=None),
            "retype": _bridge("retype", "netdev"),
            "fresh": _bridge("fresh"),
        }
    )
    p = plan(running, new)
    assert p.create == ("fresh",)
    assert p.destroy == ("gone",)
    assert p.recreate == ("retype",)
    assert p.reconfigure == ("tune",)
    assert plan(new.bridges, new).empty


def test_ofport_hints_never_steal_a_requested_number() -> None:
    cfg = _bridge("b", a=None, b=3, c=None, d=None)
    hinted = with_ofport_hints(cfg, {"a": 3, "c": 4, "d": 4, "b": 9})
    got = {p: pc.interfaces[0].ofport_request for p, pc in hinted.ports.items()}
    assert got == {"a": None, "b": 3, "c": 4, "d": None}
