"""Stock ``ovs-ofctl`` against our codec and connection, over a unix socket (no root).

Each test runs a real ``ovs-ofctl`` command against the fake switch in ``ofctl_peer``:
the switch must decode every message the tool sends (no protocol error), and the tool
must accept our replies (exit 0) and print what we encoded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hitless.openflow import (
    AggregateStatsRequest,
    ApplyActions,
    BarrierRequest,
    BundleAddMessage,
    BundleControl,
    FlowMod,
    FlowStatsRequest,
    GotoTable,
    GroupAction,
    GroupMod,
    MeterInstruction,
    MeterMod,
    Output,
    PacketOut,
    PopVlan,
    PortMod,
    PortStatsRequest,
    PushVlan,
    SetField,
    TableStatsRequest,
    WriteMetadata,
)
from hitless.openflow.constants import BundleCtrlType, FlowModCommand, OxmField, Port
from tests.openflow.ofctl_peer import Capture, run_ofctl

pytestmark = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")

V13 = ["-O", "OpenFlow13"]
V14 = ["-O", "OpenFlow14"]


def ofctl(tmp_path: Path, *args: str) -> tuple[str, Capture]:
    result, capture = run_ofctl(tmp_path, list(args))
    assert result.returncode == 0, result.stderr
    assert capture.errors == []
    return result.stdout, capture


def only(capture: Capture, cls: type) -> list:
    return [m for m in capture.messages if isinstance(m, cls)]


def test_default_version_is_refused(tmp_path: Path) -> None:
    """Without -O, ovs-ofctl speaks only 1.0: negotiation fails with HELLO_FAILED."""
    result, capture = run_ofctl(tmp_path, ["dump-flows", "{sock}"])
    assert result.returncode != 0
    assert "version negotiation failed" in result.stderr
    assert [e.fatal for e in capture.errors] == [True]
    assert capture.errors[0].error.type == 0  # OFPET_HELLO_FAILED


@pytest.mark.parametrize(
    ("flow", "check"),
    [
        (
            "ip,nw_dst=10.0.0.0/8,actions=output:2",
            lambda m: (
                m.match.get("ipv4_dst").mask == 0xFF000000
                and m.instructions == (ApplyActions((Output(2),)),)
            ),
        ),
        (
            "priority=7,in_port=1,dl_vlan=10,actions=pop_vlan,output:3",
            lambda m: (
                m.priority == 7
                and m.match.get("vlan_vid").value == 0x1000 | 10
                and m.instructions == (ApplyActions((PopVlan(), Output(3))),)
            ),
        ),
        (
            "tcp,tp_dst=80,nw_src=192.168.1.1,actions=mod_nw_dst:10.1.1.1,goto_table:1",
            lambda m: (
                m.match.get("tcp_dst").value == 80
                and m.match.get("ip_proto").value == 6
                and m.instructions[-1] == GotoTable(1)
                and m.instructions[0].actions[0] == SetField(m.instructions[0].actions[0].field)
                and m.instructions[0].actions[0].field.value == 0x0A010101
            ),
        ),
        (
            "ipv6,ipv6_dst=2001:db8::/32,actions=push_vlan:0x8100,set_field:4196->vlan_vid,output:1",
            lambda m: (
                m.match.get("ipv6_dst").mask == (0xFFFFFFFF << 96)
                and m.instructions[0].actions[0] == PushVlan(0x8100)
                and m.instructions[0].actions[1].field.field == OxmField.VLAN_VID
            ),
        ),
        (
            "arp,arp_tpa=10.0.0.1,arp_op=1,actions=meter:1,group:3,write_metadata:0x5/0xff",
            lambda m: (
                m.match.get("arp_op").value == 1
                and WriteMetadata(5, 0xFF) in m.instructions
                and MeterInstruction(1) in m.instructions
                and ApplyActions((GroupAction(3),)) in m.instructions
            ),
        ),
        (
            "icmp6,icmp_type=135,nd_target=fe80::1,actions=NORMAL",
            lambda m: (
                m.match.get("ipv6_nd_target").value == (0xFE80 << 112) | 1
                and m.instructions == (ApplyActions((Output(Port.NORMAL),)),)
            ),
        ),
        (
            "udp,udp_src=53,ip_dscp=46,actions=CONTROLLER:128,dec_ttl",
            lambda m: (
                m.match.get("udp_src").value == 53
                and m.match.get("ip_dscp").value == 46
                and m.instructions[0].actions[0] == Output(Port.CONTROLLER, 128)
            ),
        ),
        (
            "mpls,mpls_label=100,actions=pop_mpls:0x0800,output:2",
            lambda m: m.match.get("mpls_label").value == 100,
        ),
        (
            "table=1,cookie=0x99,idle_timeout=30,hard_timeout=60,send_flow_rem,"
            "tun_id=0x5/0xff,actions=clear_actions,write_actions(output:2)",
            lambda m: (
                m.table_id == 1
                and m.cookie == 0x99
                and (m.idle_timeout, m.hard_timeout) == (30, 60)
                and m.flags & 1
                and m.match.get("tunnel_id").mask == 0xFF
            ),
        ),
    ],
)
@pytest.mark.parametrize("version", [V13, V14], ids=["of13", "of14"])
def test_add_flow(tmp_path: Path, version: list[str], flow: str, check) -> None:
    _, capture = ofctl(tmp_path, *version, "add-flow", "{sock}", flow)
    (mod,) = only(capture, FlowMod)
    assert mod.command == FlowModCommand.ADD
    assert check(mod), mod
    assert only(capture, BarrierRequest)


@pytest.mark.parametrize("version", [V13, V14], ids=["of13", "of14"])
def test_bundle_add_flow(tmp_path: Path, version: list[str]) -> None:
    """1.4 native bundles; in 1.3 the ONF extension, decoded into the same values."""
    _, capture = ofctl(tmp_path, *version, "--bundle", "add-flow", "{sock}", "in_port=1,actions=2")
    controls = [m.ctrl_type for m in only(capture, BundleControl)]
    assert controls == [BundleCtrlType.OPEN_REQUEST, BundleCtrlType.COMMIT_REQUEST]
    (add,) = only(capture, BundleAddMessage)
    assert isinstance(add.message, FlowMod)
    assert add.message.xid == add.xid
    assert add.message.match.get("in_port").value == 1


@pytest.mark.parametrize("bundle", [[], ["--bundle"]], ids=["plain", "bundle"])
def test_replace_flows(tmp_path: Path, bundle: list[str]) -> None:
    flows = tmp_path / "flows.txt"
    flows.write_text("priority=10,ip,actions=drop\npriority=5,arp,actions=NORMAL\n")
    _, capture = ofctl(tmp_path, *V14, *bundle, "replace-flows", "{sock}", str(flows))
    assert only(capture, FlowStatsRequest)
    mods = only(capture, FlowMod) + [
        m.message for m in only(capture, BundleAddMessage) if isinstance(m.message, FlowMod)
    ]
    # Our switch reports one flow (priority 10, ip, nw_dst=10/8): replaced, and two added.
    assert sorted(m.command for m in mods) == [FlowModCommand.ADD] * 2 + [
        FlowModCommand.DELETE_STRICT
    ]


def test_add_group(tmp_path: Path) -> None:
    _, capture = ofctl(
        tmp_path, *V13, "add-group", "{sock}",
        "group_id=1,type=select,bucket=weight:5,output:1,bucket=weight:5,output:2",
    )  # fmt: skip
    (mod,) = only(capture, GroupMod)
    assert (mod.group_id, mod.group_type) == (1, 1)
    assert [(b.weight, b.actions) for b in mod.buckets] == [(5, (Output(1),)), (5, (Output(2),))]


def test_add_meter(tmp_path: Path) -> None:
    _, capture = ofctl(
        tmp_path,
        *V13,
        "add-meter",
        "{sock}",
        "meter=1,kbps,burst,stats,band=type=drop,rate=1000,burst_size=100",
    )
    (mod,) = only(capture, MeterMod)
    assert (mod.meter_id, mod.flags) == (1, 0b1101)
    assert [(b.type, b.rate, b.burst_size) for b in mod.bands] == [(1, 1000, 100)]


def test_packet_out(tmp_path: Path) -> None:
    frame = "ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002"
    _, capture = ofctl(
        tmp_path, *V13, "packet-out", "{sock}", f"in_port=1,packet={frame},actions=output:2"
    )
    (out,) = only(capture, PacketOut)
    assert (out.in_port, out.actions, out.data) == (1, (Output(2),), bytes.fromhex(frame))


def test_mod_port(tmp_path: Path) -> None:
    _, capture = ofctl(tmp_path, *V14, "mod-port", "{sock}", "1", "down")
    (mod,) = only(capture, PortMod)
    assert (mod.port_no, mod.config, mod.mask) == (1, 1, 1)
    assert mod.hw_addr == bytes.fromhex("020000000001")  # from our port description


@pytest.mark.parametrize("version", [V13, V14], ids=["of13", "of14"])
def test_dumps_read_our_replies(tmp_path: Path, version: list[str]) -> None:
    out, capture = ofctl(tmp_path, *version, "dump-flows", "{sock}")
    assert only(capture, FlowStatsRequest)
    assert "cookie=0x42" in out and "n_packets=3" in out
    assert "priority=10,ip,nw_dst=10.0.0.0/8 actions=output:2" in out
    out, capture = ofctl(tmp_path, *version, "dump-ports", "{sock}")
    assert only(capture, PortStatsRequest)[0].port_no == Port.ANY
    assert "rx pkts=7, bytes=700" in out and "coll=3" in out
    out, _ = ofctl(tmp_path, *version, "dump-ports-desc", "{sock}")
    assert "1(p1): addr:02:00:00:00:00:01" in out and "2(p2)" in out
    out, capture = ofctl(tmp_path, *version, "dump-tables", "{sock}")
    assert only(capture, TableStatsRequest)
    assert "active=4, lookup=100, matched=90" in out
    out, capture = ofctl(tmp_path, *version, "dump-aggregate", "{sock}")
    assert only(capture, AggregateStatsRequest)
    assert "packet_count=5 byte_count=300 flow_count=2" in out
    out, _ = ofctl(tmp_path, *version, "dump-groups", "{sock}")
    assert "group_id=1,type=select,bucket=weight:5,actions=output:1" in out
    out, _ = ofctl(tmp_path, *version, "dump-meters", "{sock}")
    assert "meter=1 kbps burst stats" in out and "type=drop rate=1000 burst_size=100" in out
    out, _ = ofctl(tmp_path, *version, "dump-desc", "{sock}")
    assert "Manufacturer: hitless" in out
    out, _ = ofctl(tmp_path, *version, "get-frags", "{sock}")
    assert "normal" in out
