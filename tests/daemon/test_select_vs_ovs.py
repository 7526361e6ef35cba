"""Select groups of the default method and of ``selection_method=dp_hash`` side by side
with real Open vSwitch 3.1 (dummy datapath, its own run directory), and traces that
start with pipeline fields (registers, metadata, pkt_mark, tunnel, dp_hash).

Open vSwitch gives such a group a table of 16 to 256 hash values (each bucket as many as
its weight earns), has the datapath compute the packet's ``dp_hash`` (``sym_l4`` of the
packet for the default method, ``l4`` or the parameter's algorithm for dp_hash) and
recirculates to pick; a default group whose weights need more than 256 values hashes
in the slow path instead. hitless picks in one pass with the same hash and table, so:
the same frames (TCP, UDP, IPv6; one bucket dead, actions after the group) leave by the
same ports byte for byte. ``ofproto/trace`` shows the first pass as Open vSwitch's does
(no dp_hash yet: "no live bucket", the trace stops), and, given ``dp_hash=``, the
bucket that value picks; compared line by line but the Megaflow and Datapath actions
lines (syntax differs by design: hitless's datapath has no hash action)."""

from __future__ import annotations

import pytest

from hitless.packet.flowstr import build_packet, parse_flow
from tests.daemon.test_appctl_vs_ovs import Side, run_ok, set_up_both
from tests.daemon.test_group_vs_ovs import VSCTL_SETUP, _sent, _tree
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.usefixtures("ovs")

B3 = "bucket=actions=output:2,bucket=actions=output:3,bucket=actions=output:4"
GROUPS = [
    # no method: dp_hash sym_l4(0), 16 values
    f"group_id=1,type=select,{B3}",
    # dp_hash, l4(0) (the parameter's high word 0), weights 1/1/2
    "group_id=2,type=select,selection_method=dp_hash,bucket=actions=output:2,"
    "bucket=actions=output:3,bucket=weight:2,actions=output:4",
    # dp_hash, sym_l4(5)
    f"group_id=3,type=select,selection_method=dp_hash,selection_method_param=0x100000005,{B3}",
    # dp_hash, l4(7); bucket 0 watches a port that is not there: its values go on to the next
    "group_id=4,type=select,selection_method=dp_hash,selection_method_param=7,"
    "bucket=watch_port:9,actions=output:2,bucket=actions=output:3,bucket=actions=output:4",
    # weights that need 512 values: the default method (slow-path hash, best bucket score)
    "group_id=5,type=select,bucket=weight:1,actions=output:2,bucket=weight:300,actions=output:3,"
    "bucket=weight:200,actions=output:4",
    # no method, with actions after the group (they run after Open vSwitch's recirculation)
    "group_id=6,type=select,bucket=actions=output:2,bucket=actions=output:3",
]
RULES = [
    *(f"table=0,priority=10,{p},tp_dst={g},actions=group:{g}" for g in range(1, 6)
      for p in ("tcp", "udp", "tcp6")),
    *(f"table=0,priority=10,{p},tp_dst=6,actions=group:6,mod_nw_tos:32,output:4"
      for p in ("tcp", "udp")),
    # traces that start with pipeline fields
    "table=0,priority=30,udp,tp_dst=20,reg0=5,actions=load:6->NXM_NX_REG1[],output:2",
    "table=0,priority=30,udp,tp_dst=21,metadata=7,pkt_mark=3,actions=output:3",
    "table=0,priority=30,udp,tp_dst=22,tun_id=9,tun_dst=2.2.2.2,actions=output:4",
    "table=0,priority=30,udp,tp_dst=23,reg7=0x1234,actions=resubmit(,1)",
    "table=1,priority=30,udp,reg7=0x1234,actions=output:2",
    "table=1,priority=20,actions=output:3",
]  # fmt: skip
N_SELECT = 6
V6 = "ipv6_src=2001:db8::{i},ipv6_dst=2001:db8::ff"


def flow(proto: str, dst_port: int, i: int) -> str:
    """Frame ``i`` of a case: its addresses and source port differ from the others'."""
    l2 = "dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02"
    if proto == "tcp6":
        return f"tcp6,{l2},{V6.format(i=i + 1)},nw_ttl=64,tcp_src={1000 + 7 * i},tcp_dst={dst_port}"
    ip = f"nw_src=10.0.{dst_port}.{i + 1},nw_dst=10.1.0.{i % 5 + 1},nw_ttl=64"
    return f"{proto},{l2},{ip},{proto}_src={1000 + 7 * i},{proto}_dst={dst_port}"


def cases() -> list[str]:
    out = []
    for g in range(1, N_SELECT + 1):
        for proto in ("tcp", "udp", "tcp6") if g < 6 else ("tcp", "udp"):
            out += [flow(proto, g, i) for i in range(8)]
    return out


@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    sides = set_up_both(started, ovs, VSCTL_SETUP, rules=[], fresh=True)
    for s in sides:
        target = f"unix:{s.rundir}/br0.mgmt"
        for g in GROUPS:  # selection methods are OpenFlow 1.5's group properties
            run_ok(["ovs-ofctl", "-O", "OpenFlow15", "add-group", target, g], s.rundir)
        for r in RULES:
            s.ofctl("add-flow", r)
    return sides


def test_select_groups_pick_the_buckets_open_vswitch_picks(both: tuple[Side, Side]) -> None:
    flows = cases()
    frames = [build_packet(parse_flow(f)) for f in flows]
    # one output per frame, two for group 6's (its bucket's, then port 4)
    n_out = len(frames) + sum(f.endswith("_dst=6") for f in flows)
    got = []
    for side in both:
        for f in frames:
            r = side.appctl("netdev-dummy/receive", "p1", f.hex())
            assert r.returncode == 0, r.stderr

        def all_out(side: Side = side) -> dict[int, list[str]] | None:
            sent = _sent(side)
            return sent if sum(map(len, sent.values())) >= n_out else None

        got.append(wait_for(all_out, f"{n_out} frames out of {side.rundir}", timeout=60))
    want, ours = got
    # Open vSwitch's own outcome spreads each group's frames over more than one bucket
    # (so a wrong pick shows), and never to group 4's dead one
    assert sum(len(v) for v in want.values()) == n_out, want
    group_of = {f.hex(): int(text.rpartition("=")[2]) for f, text in zip(frames, flows, strict=True)}
    for g in range(1, N_SELECT + 1):
        ports = {p for p, sent in want.items() for x in sent if group_of.get(x) == g}
        assert len(ports) > 1 and (g != 4 or 2 not in ports), (g, ports)
    assert ours == want


TRACED = [
    *(f"in_port=1,{flow(p, g, 0)}" for g in range(1, N_SELECT + 1) for p in ("tcp", "tcp6")
      if not (g == 6 and p == "tcp6")),
    # given a dp_hash: the bucket that value picks (0x21: bucket 0 in group 4 is dead)
    *(f"dp_hash={h},in_port=1,{flow('udp', g, 1)}" for g in (1, 2, 3, 4, 6)
      for h in ("0x1", "0x21", "0x7fffffff", "0xfffffffe")),
    f"dp_hash=0x1234,in_port=1,{flow('udp', 5, 0)}",
    # the pipeline fields a flow starts with
    f"reg0=5,in_port=1,{flow('udp', 20, 0)}",
    f"pkt_mark=3,metadata=0x7,in_port=1,{flow('udp', 21, 0)}",
    f"tun_id=9,tun_src=1.1.1.1,tun_dst=2.2.2.2,tun_flags=oam,in_port=1,{flow('udp', 22, 0)}",
    f"tunnel_id=9,tun_gbp_id=5,tun_dst=2.2.2.2,in_port=1,{flow('udp', 22, 0)}",
    f"xxreg1=0x1234,tun_ipv6_dst=::1,in_port=1,{flow('udp', 23, 0)}",
    f"xreg3=0x1234,in_port=1,{flow('udp', 23, 0)}",
    f"reg15=1,xreg0=0x500000006,in_port=1,{flow('udp', 23, 0)}",
]  # fmt: skip


def test_traces_as_open_vswitch(both: tuple[Side, Side]) -> None:
    """Every flow's trace (one switch pair for all: each costs two daemons' start)."""
    o, h = both
    differ = []
    for flow_text in TRACED:
        args = ["ofproto/trace", "br0", flow_text]
        ro, rh = o.appctl(*args), h.appctl(*args)
        assert ro.returncode == rh.returncode == 0, (flow_text, ro.stderr, rh.stderr)
        if _tree(rh.stdout) != _tree(ro.stdout):
            differ.append(f"{flow_text}\nOVS:\n{ro.stdout}\nhitless:\n{rh.stdout}")
    assert not differ, "\n".join(differ)
    # the baseline shows each kind of line compared
    texts = [o.appctl("ofproto/trace", "br0", f).stdout for f in TRACED]
    assert sum("no live bucket" in t for t in texts) == 9
    assert sum("using bucket" in t for t in texts) == 23


BAD = [
    f"reg0=0x5/0xff,in_port=1,{flow('udp', 20, 0)}",
    f"tun_flags=+oam,in_port=1,{flow('udp', 20, 0)}",
    f"reg0=foo,in_port=1,{flow('udp', 20, 0)}",
    f"reg16=1,in_port=1,{flow('udp', 20, 0)}",
]


def test_bad_starting_fields_refused_as_open_vswitch(both: tuple[Side, Side]) -> None:
    o, h = both
    for text in BAD:
        ro, rh = o.appctl("ofproto/trace", "br0", text), h.appctl("ofproto/trace", "br0", text)
        assert ro.returncode == rh.returncode == 2, (text, ro.stderr, rh.stderr)
        assert rh.stderr.splitlines()[0] == ro.stderr.splitlines()[0], (text, ro.stderr, rh.stderr)
