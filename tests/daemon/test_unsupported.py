"""Settings the switch does not implement are refused out loud (issue 12): set with stock
ovs-vsctl, each one is logged once at WARN and reported in the row's status column
(key hitless_unsupported) where the table has one; clearing it clears the report."""

from __future__ import annotations

from tests.daemon.test_config import add_dummy_bridge
from tests.switch import Sw
from tests.wait import eventually as wait_for


def test_unimplemented_settings_are_reported_in_status_and_logged_once(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    sw.vsctl("add-port", "br0", "p1", "--", "add-port", "br0", "p2")
    sw.vsctl(
        "--", "--id=@m", "create", "Mirror", "name=m0", "select_all=true",
        "--", "add", "Bridge", "br0", "mirrors", "@m",
        "--", "--id=@b", "get", "Bridge", "br0",
        "--", "create", "Flow_Sample_Collector_Set", "id=7", "bridge=@b",
        "--", "set", "Bridge", "br0", "mcast_snooping_enable=true",
        "--", "--id=@q", "create", "QoS", "type=linux-htb",
        "--", "set", "Port", "p1", "qos=@q",
        "--", "set", "Interface", "p2", "ingress_policing_kpkts_rate=1000",
    )  # fmt: skip
    status = sw.get("Bridge", "br0", "status")
    for what in ("mirrors: mirror m0: no output_port or output_vlan",
                 "ipfix: Flow_Sample_Collector_Set 7: flow-based IPFIX",
                 "mcast_snooping_enable: IGMP/MLD"):  # fmt: skip
        assert what in status, status
    assert "qos: QoS" in sw.get("Port", "p1", "status")
    assert "ingress_policing_kpkts_rate: packet-rate" in sw.get("Interface", "p2", "status")
    log = sw.log()
    assert "WARNING" in log or "WARN" in log
    assert log.count("Bridge br0: mcast_snooping_enable: IGMP/MLD snooping is not implemented") == 1
    assert log.count("Port p1: qos: QoS") == 1
    sw.vsctl("set", "Bridge", "br0", "other_config:x=y")  # another change: no new line
    assert sw.log().count("Bridge br0: mcast_snooping_enable: IGMP/MLD snooping is not implemented") == 1

    sw.vsctl("set", "Bridge", "br0", "mcast_snooping_enable=false",
             "--", "--all", "destroy", "Flow_Sample_Collector_Set",
             "--", "clear", "Bridge", "br0", "mirrors", "--", "clear", "Port", "p1", "qos",
             "--", "set", "Interface", "p2", "ingress_policing_kpkts_rate=0")  # fmt: skip
    assert wait_for(lambda: "hitless_unsupported" not in sw.get("Bridge", "br0", "status"))
    assert "hitless_unsupported" not in sw.get("Port", "p1", "status")
    assert "hitless_unsupported" not in sw.get("Interface", "p2", "status")


def test_a_bond_in_a_spanning_tree_bridge_is_reported(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    sw.vsctl("add-bond", "br0", "bond0", "p1", "p2", "bond_mode=active-backup",
             "--", "add-port", "br0", "p3")  # fmt: skip
    assert "hitless_unsupported" not in sw.get("Port", "bond0", "status")
    sw.vsctl("set", "Bridge", "br0", "rstp_enable=true")
    assert wait_for(lambda: "a bond takes no part in RSTP" in sw.get("Port", "bond0", "status"))
    assert "hitless_unsupported" not in sw.get("Port", "p3", "status")
    assert sw.log().count("Port bond0: interfaces: a bond takes no part in RSTP") == 1
    sw.vsctl("set", "Bridge", "br0", "rstp_enable=false")
    assert wait_for(lambda: "hitless_unsupported" not in sw.get("Port", "bond0", "status"))
