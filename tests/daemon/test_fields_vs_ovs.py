"""The fields and actions of issue 17 that the namespace tests load but send no packet
through, side by side with real Open vSwitch 3.1 as tests/daemon/test_group_vs_ovs.py
does it (dummy datapath, the same table loaded with stock ``ovs-ofctl`` into both, the
same frames injected with ``netdev-dummy/receive``, what leaves every port compared byte
for byte, ``ofproto/trace`` line by line but its Megaflow and Datapath actions lines).

Covered: ``multipath`` with every hash (eth_src, symmetric_l4, symmetric_l3l4 and its
+udp, nw_src, nw_dst, symmetric_l3; IPv4, IPv6, VLAN-tagged and non-IP frames) and every
algorithm, ``bundle`` and ``bundle_load`` (hrw and active_backup): each frame picks the
link and member Open vSwitch picks (its hash functions); ``tcp_flags``,
``nd_target``/``nd_sll``/``nd_tll`` (masked too), ``arp_sha``/``arp_tha`` (masked), every
``ip_frag`` value, ``tun_src``/``tun_dst``/``tun_id`` written and matched after a
resubmit, ``resubmit(port,table)`` and its ``in_port``, the 64-deep resubmit limit, and
the OpenFlow 1.1 ``set_mpls_label``/``set_mpls_tc`` actions; the table loads and dumps
alike in every OpenFlow version (tests/daemon/test_every_action.py's helper), and so does
tests/daemon/test_nx_flows.py's register table (its traffic runs in that file)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hitless.packet.flowstr import build_packet, parse_flow
from tests.daemon import test_nx_flows
from tests.daemon.test_appctl_vs_ovs import Side, loaded_by_both, set_up_both, traced_by_both
from tests.daemon.test_group_vs_ovs import PORTS, VSCTL_SETUP, _tree, sent_by_both
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw

pytestmark = pytest.mark.usefixtures("ovs")

REG0 = "NXM_NX_REG0[0..1]"
# tp_dst picks the hash and the algorithm; table 1 outputs link 0/1/2 to port 2/3/4
MULTIPATH = {
    30: f"multipath(eth_src,0,modulo_n,2,0,{REG0})",
    31: f"multipath(symmetric_l4,5,hash_threshold,2,0,{REG0})",
    32: f"multipath(symmetric_l3l4,0,hrw,2,0,{REG0})",
    33: f"multipath(symmetric_l3l4+udp,7,iter_hash,2,4,{REG0})",
    34: f"multipath(nw_src,0,hrw,2,0,{REG0})",
    35: f"multipath(nw_dst,3,modulo_n,2,0,{REG0})",
    36: f"multipath(symmetric_l3,0,hash_threshold,2,0,{REG0})",
    37: "bundle(symmetric_l4,5,hrw,ofport,members:2,3,4)",
    38: "bundle_load(symmetric_l3l4,0,hrw,ofport,NXM_NX_REG1[0..15],members:2,3,4),"
    "output:NXM_NX_REG1[0..15]",
    39: "bundle(eth_src,0,active_backup,ofport,members:9,3,4)",
    # modulo_n over 3 links of a 2-bit field, hrw over 2 links
    46: f"multipath(symmetric_l3l4+udp,0,hrw,1,0,{REG0})",
}
RULES = [
    *(
        f"table=0,priority=10,{proto},tp_dst={case},actions={action}"
        + (",resubmit(,1)" if action.startswith("multipath") else "")
        for case, action in MULTIPATH.items()
        for proto in ("tcp", "udp", "tcp6")
    ),
    "table=0,priority=10,dl_type=0x88b5,actions=" + MULTIPATH[32] + ",resubmit(,1)",
    "table=0,priority=10,dl_type=0x88b6,actions=" + MULTIPATH[37],
    "table=1,priority=10,reg0=0,actions=output:2",
    "table=1,priority=10,reg0=1,actions=output:3",
    "table=1,priority=10,reg0=2,actions=output:4",
    # tcp_flags
    "table=0,priority=11,tcp,tp_dst=40,tcp_flags=+syn-ack,actions=output:2",
    "table=0,priority=11,tcp,tp_dst=40,tcp_flags=+syn+ack,actions=output:3",
    "table=0,priority=11,tcp,tp_dst=40,tcp_flags=0x011/0x0ff,actions=output:4",
    "table=0,priority=10,tcp,tp_dst=40,actions=drop",
    # neighbour discovery
    "table=0,priority=12,icmp6,icmp_type=135,nd_target=fe80::1,nd_sll=02:00:00:00:00:01,"
    "actions=output:2",
    "table=0,priority=11,icmp6,icmp_type=135,nd_target=fe80::/16,actions=output:4",
    "table=0,priority=12,icmp6,icmp_type=136,nd_target=fe80::2,nd_tll=02:00:00:00:00:02,"
    "actions=output:3",
    "table=0,priority=11,icmp6,icmp_type=136,nd_tll=02:00:00:00:00:00/ff:ff:ff:ff:ff:00,"
    "actions=output:2",
    "table=0,priority=10,icmp6,actions=drop",
    # ARP hardware addresses
    "table=0,priority=12,arp,arp_sha=02:00:00:00:00:03,arp_tha=00:00:00:00:00:00,"
    "actions=output:2",
    "table=0,priority=11,arp,arp_sha=02:00:00:00:00:00/ff:ff:ff:ff:ff:00,actions=output:3",
    "table=0,priority=11,arp,arp_tha=02:00:00:00:00:07,actions=output:4",
    "table=0,priority=10,arp,actions=drop",
    # fragments: no / first / later, and the masked forms
    "table=0,priority=12,ip,nw_src=10.0.5.1,ip_frag=no,actions=output:2",
    "table=0,priority=12,ip,nw_src=10.0.5.1,ip_frag=first,actions=output:3",
    "table=0,priority=12,ip,nw_src=10.0.5.1,ip_frag=later,actions=output:4",
    "table=0,priority=12,ip,nw_src=10.0.5.2,ip_frag=not_later,actions=output:2",
    "table=0,priority=11,ip,nw_src=10.0.5.2,ip_frag=yes,actions=output:3",
    # tunnel metadata written, then matched after a resubmit
    "table=0,priority=10,udp,tp_dst=42,actions=set_field:192.0.2.1->tun_src,"
    "set_field:192.0.2.2->tun_dst,set_field:0x77->tun_id,resubmit(,2)",
    "table=0,priority=10,udp,tp_dst=43,actions=set_field:192.0.2.1->tun_src,resubmit(,2)",
    "table=2,priority=10,tun_src=192.0.2.1,tun_dst=192.0.2.2,tun_id=0x77,actions=output:2",
    "table=2,priority=9,tun_src=192.0.2.0/24,actions=output:3",
    "table=2,priority=5,actions=output:4",
    # resubmit(port,table): the lookup sees the given in_port; in_port as a field
    "table=0,priority=10,udp,tp_dst=44,actions=resubmit(3,3)",
    "table=0,priority=10,udp,tp_dst=45,actions=resubmit(,3),resubmit(4,3)",
    "table=3,priority=10,in_port=3,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG3[0..15],resubmit(,4)",
    "table=3,priority=10,in_port=4,actions=output:in_port",
    "table=3,priority=5,actions=output:4",
    "table=4,priority=10,reg3=3,actions=output:2",
    # resubmit beyond 64 levels
    "table=0,priority=10,udp,tp_dst=47,actions=output:2,resubmit(,7)",
    "table=7,priority=10,actions=resubmit(,7)",
    # OpenFlow 1.1's MPLS actions
    "table=0,priority=10,mpls,mpls_label=70,actions=set_mpls_label(71),set_mpls_tc(5),"
    "output:3",
]


def udp(dst_port: int, src: str = "10.0.0.1", sport: int = 100, proto: str = "udp") -> str:
    return (
        f"{proto},dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,nw_src={src},"
        f"nw_dst=10.0.0.2,nw_ttl=64,{proto[:3]}_src={sport},{proto[:3]}_dst={dst_port}"
    )


def _frame(flow: str) -> bytes:
    return build_packet(parse_flow(flow))


def _v6(dst_port: int, i: int) -> bytes:
    return _frame(
        f"tcp6,dl_src=00:00:00:00:00:0{i % 8},dl_dst=00:00:00:00:00:02,ipv6_src=2001:db8::{i},"
        f"ipv6_dst=2001:db8::ff,nw_ttl=64,tcp_src={1000 + 7 * i},tcp_dst={dst_port}"
    )


def _vlan(f: bytes, vid: int) -> bytes:
    return f[:12] + struct.pack("!HH", 0x8100, vid) + f[12:]


def _frag(f: bytes, mf: bool, offset: int) -> bytes:
    """An IPv4 frame made a fragment (its header checksum is not fixed up: neither
    switch checks it)."""
    return f[:20] + struct.pack("!H", (mf << 13) | offset) + f[22:]


def multipath_frames() -> list[bytes]:
    frames = []
    for case in MULTIPATH:
        for i in range(1, 6):
            src, sport = f"10.0.{i}.{i * 7}", 100 + 13 * i
            frames.append(_frame(udp(case, src, sport, "tcp")))
            frames.append(_frame(udp(case, src, sport)))
            frames.append(_v6(case, i))
        frames.append(_vlan(_frame(udp(case, "10.0.0.9", 5, "tcp")), 10))
        frames.append(_vlan(_frame(udp(case, "10.0.0.9", 5, "tcp")), 11))
    for i in range(1, 6):
        eth = bytes.fromhex(f"0000000000{i:02x}0000000000{i + 16:02x}")
        frames += [eth + b"\x88\xb5" + bytes(46), eth + b"\x88\xb6" + bytes(46)]
    return frames


TCP_FLAGS = (0x002, 0x012, 0x010, 0x011, 0x111)


def field_frames() -> list[bytes]:
    base6 = "icmp6,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,ipv6_src=fe80::5,ipv6_dst=ff02::1,nw_ttl=255"
    nd = [
        f"{base6},icmpv6_type=135,icmpv6_code=0,nd_target=fe80::1,nd_sll=02:00:00:00:00:01",
        f"{base6},icmpv6_type=135,icmpv6_code=0,nd_target=fe80::1,nd_sll=02:00:00:00:00:09",
        f"{base6},icmpv6_type=135,icmpv6_code=0,nd_target=2001:db8::1",
        f"{base6},icmpv6_type=136,icmpv6_code=0,nd_target=fe80::2,nd_tll=02:00:00:00:00:02",
        f"{base6},icmpv6_type=136,icmpv6_code=0,nd_target=fe80::3,nd_tll=02:00:00:00:00:05",
        f"{base6},icmpv6_type=136,icmpv6_code=0,nd_target=fe80::3,nd_tll=04:00:00:00:00:05",
    ]
    arp = "arp,dl_src=00:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,arp_op=1,arp_spa=10.0.0.1,arp_tpa=10.0.0.2"
    arps = [
        f"{arp},arp_sha=02:00:00:00:00:03,arp_tha=00:00:00:00:00:00",
        f"{arp},arp_sha=02:00:00:00:00:04,arp_tha=00:00:00:00:00:00",
        f"{arp},arp_sha=06:00:00:00:00:04,arp_tha=02:00:00:00:00:07",
        f"{arp},arp_sha=06:00:00:00:00:04,arp_tha=02:00:00:00:00:08",
    ]
    frames = [_frame(udp(40, sport=200 + f, proto="tcp") + f",tcp_flags={f:#x}") for f in TCP_FLAGS]
    frames += [_frame(x) for x in nd + arps]
    for src in ("10.0.5.1", "10.0.5.2"):
        f = _frame(udp(41, src))
        frames += [f, _frag(f, True, 0), _frag(f, True, 100), _frag(f, False, 100)]
    frames += [_frame(udp(p)) for p in (42, 43, 44, 45, 47)]
    lse = struct.pack("!I", 70 << 12 | 1 << 8 | 20)
    frames.append(bytes.fromhex("000000000002000000000001" "8847") + lse + _frame(udp(8))[14:])
    return frames


@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    return set_up_both(started, ovs, VSCTL_SETUP, rules=RULES, fresh=True)


def _send_and_compare(
    both: tuple[Side, Side], frames: list[bytes], n_want: dict[int, int]
) -> dict[int, list[str]]:
    """Send ``frames`` into port 1 of both (``sent_by_both``): what left each port,
    compared; Open vSwitch's outcome returned."""
    want, got = sent_by_both(both, frames, n_want)
    diff = {p: (sorted(set(got[p]) - set(want[p])), sorted(set(want[p]) - set(got[p])))
            for p in PORTS if got[p] != want[p]}  # fmt: skip
    assert not diff, f"port: (only hitless sent, only Open vSwitch sent): {diff}"

    return want


def test_multipath_and_bundle_pick_the_links_open_vswitch_picks(
    both: tuple[Side, Side],
) -> None:
    frames = multipath_frames()
    # every frame leaves once: Open vSwitch's links and members per port
    _send_and_compare(both, frames, {2: 87, 3: 105, 4: 5})


def test_fields_match_and_actions_act_as_open_vswitch(both: tuple[Side, Side]) -> None:
    frames = field_frames()
    want = _send_and_compare(both, frames, {2: 8, 3: 8, 4: 7})
    # Open vSwitch's own outcome: tcp_flags: syn -> 2, syn-ack -> 3, fin-ack -> 4
    assert frames[0].hex() in want[2] and frames[1].hex() in want[3], want
    assert frames[3].hex() in want[4]


TRACED = (
    [udp(c, proto=p) for c in MULTIPATH for p in ("tcp", "udp")]
    # tunnel addresses written (the Final flow with the tunnel header), the 65th
    # nested resubmit (">>>> over max translation depth 64 <<<<", "Recursion too deep")
    + [udp(p) for p in (42, 43, 44, 45, 47)]
    + [udp(40, proto="tcp") + ",tcp_flags=0x012"]
)


def test_traces_as_open_vswitch(both: tuple[Side, Side]) -> None:
    """Every case's trace (one switch pair for all: each costs two daemons' start)."""
    differ = [
        f"{f}\nOVS:\n{t}\nhitless:\n{u}"
        for f, t, u in traced_by_both(both, TRACED)
        if _tree(u) != _tree(t)
    ]
    assert not differ, "\n".join(differ)


def test_tables_load_and_dump_alike_in_every_openflow_version(
    both: tuple[Side, Side], tmp_path: Path
) -> None:
    """This file's table, then tests/daemon/test_nx_flows.py's register table (in
    OpenFlow 1.0 both refuse its write_metadata/goto_table rule, with the same error)."""
    for rules in (RULES, test_nx_flows.table(2, 3, 4)):
        theirs, ours = loaded_by_both(both, rules, tmp_path)
        assert "rc=0\nrc=0\nrc=0" in theirs["OpenFlow13"], theirs["OpenFlow13"]
        for v in theirs:
            assert ours[v] == theirs[v], f"{v}\nOVS:\n{theirs[v]}\nhitless:\n{ours[v]}"
