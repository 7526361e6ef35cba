"""The rest of the controllers' pipeline side by side with real Open vSwitch 3.1, as
tests/daemon/test_group_vs_ovs.py does it (dummy datapath, the same table loaded with
stock ``ovs-ofctl`` into both, the same frames injected with ``netdev-dummy/receive``,
what leaves every port compared byte for byte, ``ofproto/trace`` line by line but its
Megaflow and Datapath actions lines).

Covered: a ``ct`` with nat inside ``clone()`` rewrites the clone's copy only (Open
vSwitch's datapath clone action; the actions after the clone see the packet as it was),
with and without a recirculation (``ct(table=)``); a trace simulates a ct's nat on the
recirculated packet as Open vSwitch 3.1 does ("Replacing src/dst IP/ports to simulate
NAT", the first address and port of the range); MPLS packets' Flow and Final flow
lines (the top label's fields, the entries below it in decimal), after a push_mpls too."""

from __future__ import annotations

import struct

import pytest

from hitless.packet.flowstr import build_packet, parse_flow
from tests.daemon.test_appctl_vs_ovs import Side, set_up_both
from tests.daemon.test_group_vs_ovs import PORTS, VSCTL_SETUP, _tree, sent_by_both, udp
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw

pytestmark = pytest.mark.usefixtures("ovs")

RULES = [
    # nat in a clone: the copy leaves on 2 rewritten, the packet on 3 as it came
    "table=0,priority=10,udp,tp_dst=20,"
    "actions=clone(ct(commit,zone=5,nat(dst=10.0.0.9)),output:2),output:3",
    # the same with a recirculation: table 5 sees the natted copy, 4 the packet as it came
    "table=0,priority=10,udp,tp_dst=21,"
    "actions=clone(ct(commit,zone=6,table=5,nat(dst=10.0.0.8:8080)),output:2),output:4",
    # two clones, each natting its own copy
    "table=0,priority=10,udp,tp_dst=22,"
    "actions=clone(ct(commit,zone=7,nat(src=10.0.0.7)),output:2),"
    "clone(ct(commit,zone=8,nat(dst=10.0.0.6)),output:3),output:4",
    # a bare nat (nothing to translate for a new connection) and a nat(src) with a port
    "table=0,priority=10,udp,tp_dst=23,actions=ct(table=5,zone=9,nat),output:4",
    "table=0,priority=10,udp,tp_dst=24,"
    "actions=ct(commit,table=5,zone=10,nat(src=10.0.1.7:5000)),output:4",
    # nat in a group bucket: Open vSwitch 3.1 does not clone a bucket, so the next
    # bucket's output has the natted packet (hitless too); its trace prints a "Modified
    # flow" of stale memory there (nw_dst=48.0.0.0,tp_dst=24), so that trace is not compared
    "table=0,priority=10,udp,tp_dst=25,actions=group:1",
    # MPLS: the trace's Flow lines show the label stack entry
    "table=0,priority=10,mpls,mpls_label=60,actions=set_field:61->mpls_label,dec_mpls_ttl,"
    "output:2",
    "table=0,priority=10,mpls,mpls_label=62,actions=pop_mpls:0x0800,output:3",
    "table=0,priority=10,udp,tp_dst=26,actions=push_mpls:0x8847,set_field:63->mpls_label,"
    "output:4",
    "table=5,priority=10,ct_state=+trk,actions=mod_dl_src:02:00:00:00:00:dd,output:3",
    "table=5,priority=5,actions=output:3",
]
CASES = (20, 21, 22, 23, 24, 25, 26)
GROUPS = [
    "group_id=1,type=all,bucket=actions=ct(commit,table=5,zone=11,nat(dst=10.0.0.5)),"
    "bucket=actions=output:4",
]


def mpls_frame(*labels: int) -> bytes:
    """A label stack (top first; TC 2, TTL 20) over an IPv4/UDP packet."""
    ip = build_packet(parse_flow(udp(8)))[14:]
    lses = b"".join(
        struct.pack("!I", label << 12 | 2 << 9 | (i == len(labels) - 1) << 8 | 20)
        for i, label in enumerate(labels)
    )
    return bytes.fromhex("000000000002000000000001" "8847") + lses + ip


@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    return set_up_both(started, ovs, VSCTL_SETUP, groups=GROUPS, rules=RULES)


def test_nat_in_a_clone_forwards_the_same_packets_as_open_vswitch(
    both: tuple[Side, Side],
) -> None:
    frames = [build_packet(parse_flow(udp(case))) for case in CASES]
    # Not a stack of two: Open vSwitch 3.1 sends it with the top entry's bottom-of-stack
    # bit set after set_field:61->mpls_label,dec_mpls_ttl (0x0003d513; hitless 0x0003d413)
    frames += [mpls_frame(60), mpls_frame(62)]
    want, got = sent_by_both(both, frames, {2: 4, 3: 7, 4: 6})
    # case 20: the clone's copy natted to 10.0.0.9 on 2, the packet as it came on 3
    assert any(f[52:68] == "0a0000010a000009" for f in want[2]), want[2]
    assert frames[0].hex() in want[3]
    for p in PORTS:
        assert got[p] == want[p], (p, got[p], want[p])


@pytest.mark.parametrize("case", [c for c in CASES if c != 25])
def test_nat_in_a_clone_traces_as_open_vswitch(both: tuple[Side, Side], case: int) -> None:
    o, h = both
    args = ["ofproto/trace", "br0", f"in_port=1,{udp(case)}"]
    ro, rh = o.appctl(*args), h.appctl(*args)
    assert ro.returncode == rh.returncode == 0, (ro.stderr, rh.stderr)
    assert _tree(rh.stdout) == _tree(ro.stdout), f"OVS:\n{ro.stdout}\nhitless:\n{rh.stdout}"


assert PORTS == (2, 3, 4)


# Open vSwitch's trace takes no MPLS fields in a flow: the packets are given.
@pytest.mark.parametrize("labels", [(60,), (62,), (60, 7), (60, 7, 8)], ids=str)
def test_mpls_traces_as_open_vswitch(both: tuple[Side, Side], labels: tuple[int, ...]) -> None:
    o, h = both
    args = ["ofproto/trace", "br0", "in_port=1", mpls_frame(*labels).hex()]
    ro, rh = o.appctl(*args), h.appctl(*args)
    assert ro.returncode == rh.returncode == 0, (ro.stderr, rh.stderr)
    assert _tree(rh.stdout) == _tree(ro.stdout), f"OVS:\n{ro.stdout}\nhitless:\n{rh.stdout}"
