"""set_field for every OXM the classifier matches (IPv6, DSCP/ECN, flow label, ARP, ICMP,
neighbour discovery, L4 ports over IPv6) and dec_ttl on IPv6, through the OpenFlow
pipeline on the dummy datapath: the frames that come out carry the new values and valid
checksums; a rewrite whose prerequisite the packet lacks changes nothing."""

from __future__ import annotations

import ipaddress

from hitless.ofproto.oftable import SETTABLE
from hitless.ofproto.ofxlate import _SET
from hitless.openflow import (
    ApplyActions,
    Bucket,
    DecNwTtl,
    FlowMod,
    GroupAction,
    GroupMod,
    Match,
    Output,
    SetField,
    SetNwTtl,
)
from hitless.openflow.constants import FlowModCommand, GroupModCommand, GroupType
from hitless.openflow.match import field as oxm
from hitless.packet.flow import extract_key, field
from tests.ofproto.helpers import P, Rig
from tests.packet import builders as b

A, B = "50:54:00:00:00:01", "50:54:00:00:00:02"
S6, D6 = "2001:db8::1", "2001:db8::2"


def rig(*actions: object) -> Rig:
    """p1 -> actions (then output to p2); nothing else."""
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    r.bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF), r.clock.t)
    r.bridge.flow_mod(
        FlowMod(
            command=FlowModCommand.ADD,
            priority=10,
            match=Match.of(in_port=r.no("p1")),
            instructions=(ApplyActions((*actions, Output(r.no("p2")))),),  # type: ignore[arg-type]
        ),
        r.clock.t,
    )
    r.bridge.commit_openflow()
    return r


def through(r: Rig, frame: bytes) -> bytes | None:
    out = r.send("p1", frame).get("p2", [])
    assert len(out) <= 1
    return out[0] if out else None


def udp6(hlim: int = 64) -> bytes:
    seg = b.udp6(S6, D6, 1000, 2000, b"hello")
    ip = bytearray(b.ipv6(S6, D6, 17, seg, tclass=0x01, label=0x12345))
    ip[7] = hlim
    return b.eth(B, A, 0x86DD, bytes(ip))


def ip6(a: str) -> int:
    return int(ipaddress.IPv6Address(a))


def test_every_matchable_ip_field_the_pipeline_can_rewrite_is_settable() -> None:
    assert set(_SET) == SETTABLE


def test_ipv6_addresses_ports_dscp_ecn_label_and_hop_limit() -> None:
    r = rig(
        SetField(oxm("ipv6_src", ip6("2001:db8::a"))),
        SetField(oxm("ipv6_dst", ip6("2001:db8::b"))),
        SetField(oxm("udp_dst", 53)),
        SetField(oxm("ip_dscp", 46)),
        SetField(oxm("ip_ecn", 2)),
        SetField(oxm("ipv6_flabel", 0xABCDE)),
        DecNwTtl(),
    )
    out = through(r, udp6())
    assert out is not None and b.checksums_ok(out)
    k = extract_key(out, 1)
    assert field(k, "ipv6_src") == ip6("2001:db8::a")
    assert field(k, "ipv6_dst") == ip6("2001:db8::b")
    assert (field(k, "tp_src"), field(k, "tp_dst")) == (1000, 53)
    assert field(k, "ip_tos") == 46 << 2 | 2
    assert field(k, "ipv6_label") == 0xABCDE
    assert field(k, "ip_ttl") == 63
    assert through(r, udp6()) == out  # the cached megaflow does the same


def test_dec_ttl_drops_an_ipv6_packet_at_hop_limit_one_and_set_ttl_sets_it() -> None:
    r = rig(DecNwTtl())
    assert through(r, udp6(hlim=1)) is None
    r2 = rig(SetNwTtl(9))
    out = through(r2, udp6())
    assert out is not None and field(extract_key(out, 1), "ip_ttl") == 9


def test_arp_fields() -> None:
    r = rig(
        SetField(oxm("arp_op", 2)),
        SetField(oxm("arp_spa", 0x0A000063)),
        SetField(oxm("arp_tpa", 0x0A000064)),
        SetField(oxm("arp_sha", 0x020000000099)),
        SetField(oxm("arp_tha", 0x0200000000AA)),
        SetField(oxm("ipv4_src", 0x01010101)),  # prerequisite eth_type=ipv4: not applied
    )
    out = through(r, b.eth(B, A, 0x0806, b.arp(1, A, "10.0.0.1", B, "10.0.0.2")))
    assert out is not None
    k = extract_key(out, 1)
    assert field(k, "ip_proto") == 2
    assert (field(k, "ipv4_src"), field(k, "ipv4_dst")) == (0x0A000063, 0x0A000064)
    assert (field(k, "arp_sha"), field(k, "arp_tha")) == (0x020000000099, 0x0200000000AA)


def test_icmp_type_code_and_prerequisites_of_l4_rewrites() -> None:
    r = rig(
        SetField(oxm("icmpv4_type", 0)),
        SetField(oxm("icmpv4_code", 3)),
        SetField(oxm("tcp_dst", 99)),  # not TCP: nothing to rewrite
    )
    echo = b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 1, b.icmp_echo()))
    out = through(r, echo)
    assert out is not None and b.checksums_ok(out)
    k = extract_key(out, 1)
    assert (field(k, "tp_src"), field(k, "tp_dst")) == (0, 3)
    udp = b.eth(B, A, 0x0800, b.ipv4("10.0.0.1", "10.0.0.2", 17, b.udp("10.0.0.1", "10.0.0.2", 7, 8, b"x")))  # fmt: skip
    assert through(r, udp) == udp  # neither ICMP nor TCP: unchanged
    # The megaflows keep the protocol exact: the decision depended on it.
    assert all(field(f.match.mask, "ip_proto") == 0xFF for f in r.flows().values())


def test_neighbour_discovery_target_and_link_layer_address() -> None:
    r = rig(
        SetField(oxm("ipv6_nd_target", ip6("2001:db8::77"))),
        SetField(oxm("ipv6_nd_sll", 0x0200000000BB)),
        SetField(oxm("ipv6_nd_tll", 0x0200000000CC)),  # a solicitation has no TLL
        SetField(oxm("icmpv6_code", 0)),
    )
    ns = b.icmp6(S6, D6, b.neighbor_solicitation("2001:db8::9", A))
    out = through(r, b.eth(B, A, 0x86DD, b.ipv6(S6, D6, 58, ns)))
    assert out is not None and b.checksums_ok(out)
    k = extract_key(out, 1)
    assert field(k, "nd_target") == ip6("2001:db8::77")
    assert (field(k, "arp_sha"), field(k, "arp_tha")) == (0x0200000000BB, 0)


def test_tcp_ports_over_ipv6() -> None:
    r = rig(SetField(oxm("tcp_src", 4444)))
    seg = b.tcp6(S6, D6, 1000, 2000, 0x02, b"syn")
    out = through(r, b.eth(B, A, 0x86DD, b.ipv6(S6, D6, 6, seg)))
    assert out is not None and b.checksums_ok(out)
    assert field(extract_key(out, 1), "tp_src") == 4444


def test_a_bucket_rewrite_does_not_leak_into_the_next_bucket() -> None:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})
    p2, p3 = r.no("p2"), r.no("p3")
    r.bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF), r.clock.t)
    r.bridge.group_mod(
        GroupMod(
            command=GroupModCommand.ADD,
            group_type=GroupType.ALL,
            group_id=1,
            buckets=(
                Bucket(
                    actions=(
                        SetField(oxm("ipv6_dst", ip6("2001:db8::b"))),
                        SetField(oxm("ipv6_flabel", 1)),
                        Output(p2),
                    )
                ),
                Bucket(actions=(Output(p3),)),
            ),
        ),
        r.clock.t,
    )
    r.bridge.flow_mod(
        FlowMod(
            command=FlowModCommand.ADD,
            priority=10,
            match=Match.of(in_port=r.no("p1")),
            instructions=(ApplyActions((GroupAction(1),)),),
        ),
        r.clock.t,
    )
    r.bridge.commit_openflow()
    frame = udp6()
    out = r.send("p1", frame)
    (changed,) = out["p2"]
    assert field(extract_key(changed, 1), "ipv6_dst") == ip6("2001:db8::b")
    assert out["p3"] == [frame]
