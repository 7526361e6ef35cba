"""ovs-ofctl flow syntax -> packet -> flow key -> ofproto/trace's "Flow:" text.

The expected strings are what Open vSwitch 3.1's ``ovs-appctl ofproto/trace br0 FLOW``
printed on its "Flow:" line for the same input (recorded on this machine); the
differential test in tests/daemon/test_appctl_vs_ovs.py checks them live."""

from __future__ import annotations

import pytest

from hitless.packet.flow import extract_key
from hitless.packet.flowstr import OFPP_ANY, FlowSyntaxError, build_packet, format_flow, parse_flow

Z = "dl_src=00:00:00:00:00:00,dl_dst=00:00:00:00:00:00"
IP0 = "nw_tos=0,nw_ecn=0,nw_ttl=0,nw_frag=no"
CASES = [
    (
        "udp,in_port=1,nw_src=1.2.3.4,udp_dst=53,nw_ttl=64",
        f"udp,in_port=1,vlan_tci=0x0000,{Z},nw_src=1.2.3.4,nw_dst=0.0.0.0,nw_tos=0,nw_ecn=0,"
        "nw_ttl=64,nw_frag=no,tp_src=0,tp_dst=53",
    ),
    (
        "tcp6,in_port=2,ipv6_src=::1,tcp_flags=0x002",
        f"tcp6,in_port=2,vlan_tci=0x0000,{Z},ipv6_src=::1,ipv6_dst=::,ipv6_label=0x00000,{IP0},"
        "tp_src=0,tp_dst=0,tcp_flags=syn",
    ),
    (
        "tcp,tcp_dst=80",
        f"tcp,in_port=ANY,vlan_tci=0x0000,{Z},nw_src=0.0.0.0,nw_dst=0.0.0.0,{IP0},tp_src=0,"
        "tp_dst=80,tcp_flags=0",
    ),
    (
        "ipv6,nw_proto=50",
        f"ipv6,in_port=ANY,vlan_tci=0x0000,{Z},ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,"
        f"nw_proto=50,{IP0}",
    ),
    (
        "ip,nw_tos=0x10,nw_ecn=1",
        f"ip,in_port=ANY,vlan_tci=0x0000,{Z},nw_src=0.0.0.0,nw_dst=0.0.0.0,nw_proto=0,nw_tos=16,"
        "nw_ecn=1,nw_ttl=0,nw_frag=no",
    ),
    ("in_port=LOCAL,dl_type=0x88cc", f"in_port=LOCAL,vlan_tci=0x0000,{Z},dl_type=0x88cc"),
    (
        "arp,arp_spa=1.1.1.1,arp_op=1",
        f"arp,in_port=ANY,vlan_tci=0x0000,{Z},arp_spa=1.1.1.1,arp_tpa=0.0.0.0,arp_op=1,"
        "arp_sha=00:00:00:00:00:00,arp_tha=00:00:00:00:00:00",
    ),
    (
        "icmp,icmp_type=8",
        f"icmp,in_port=ANY,vlan_tci=0x0000,{Z},nw_src=0.0.0.0,nw_dst=0.0.0.0,{IP0},icmp_type=8,"
        "icmp_code=0",
    ),
    (
        "in_port=1,dl_vlan=5,dl_vlan_pcp=3",
        f"in_port=1,dl_vlan=5,dl_vlan_pcp=3,vlan_tci1=0x0000,{Z},dl_type=0x0000",
    ),
    (
        "icmp6,icmpv6_type=135,nd_target=::2,nd_sll=00:00:00:00:00:09",
        f"icmp6,in_port=ANY,vlan_tci=0x0000,{Z},ipv6_src=::,ipv6_dst=::,ipv6_label=0x00000,{IP0},"
        "icmp_type=135,icmp_code=0,nd_target=::2,nd_sll=00:00:00:00:00:09,"
        "nd_tll=00:00:00:00:00:00",
    ),
]


@pytest.mark.parametrize(("text", "ovs"), CASES)
def test_flow_round_trip_as_ovs_prints_it(text: str, ovs: str) -> None:
    spec = parse_flow(text)
    key = extract_key(build_packet(spec), OFPP_ANY if spec.in_port is None else spec.in_port)
    assert format_flow(key) == ovs


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("udp,tp_dst=53", "prerequisites not met"),
        ("udp_dst=53", "prerequisites not met"),
        ("tcp,tcp_flags=+syn", "wildcards not allowed"),
        ("in_port=1,foo=1", "unknown field foo"),
        ("dl_src=00:01", "invalid Ethernet address"),
        ("ip,nw_src=::1", "invalid IPv4 address"),
        ("dl_vlan=5000", "too large"),
    ],
)
def test_bad_flows_say_why(text: str, error: str) -> None:
    with pytest.raises(FlowSyntaxError, match=error):
        parse_flow(text)


def test_port_names_are_left_to_the_caller() -> None:
    spec = parse_flow("in_port=p1,ip")
    assert spec.in_port is None and spec.in_port_name == "p1"
