"""Open vSwitch's extension fields and actions end to end, side by side with real Open
vSwitch: the same flow table, loaded with stock ``ovs-ofctl -O OpenFlow13``, into a
hitless bridge and into an ovs-vswitchd bridge (netdev datapath, its own run directory),
each with its own namespace hosts; the hosts ping each other and the test compares what
got through and every rule's packet counter.

The table passes a "logical port" in registers from table to table as OVN does:
``reg14`` the ingress port (set per in_port), ``reg15`` the egress port (moved from the
low byte of the IP destination), ``reg13`` the OpenFlow port to output to (loaded, pushed
and popped around a clone), then ``output:NXM_NX_REG13[0..15]``. Along the way:
metadata, xreg/xxreg views, resubmit, note, exit, move, load, push/pop, clone, and an
ACL made of conjunctions (``conjunction(id,k/n)`` clauses and ``conj_id`` rules)."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitless.impact.switches import OvsSwitch
from tests.daemon.test_openflow import make_bridge, ofctl, static_neighbours
from tests.netns import Host, Topology, sh
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns

NET = "10.73.0"


def table(a: int, b: int, c: int) -> list[str]:
    """The flow table for hosts a, b, c (.1, .2, .3) on OpenFlow ports a, b, c."""
    return [
        # table 0: classify the ingress port into reg14 and the datapath into metadata
        f"table=0,priority=100,in_port={a},ip,actions=load:1->NXM_NX_REG14[],set_field:0x10->metadata,resubmit(,1)",
        f"table=0,priority=100,in_port={b},ip,actions=set_field:2->reg14,set_field:0x10->metadata,resubmit(,1)",
        f"table=0,priority=100,in_port={c},ip,actions=set_field:3/0xffff->reg14,write_metadata:0x10,goto_table:1",
        # table 1: the egress logical port is the low byte of the IP destination
        "table=1,priority=50,ip,metadata=0x10,actions=move:NXM_OF_IP_DST[0..7]->NXM_NX_REG15[0..7],resubmit(,2)",
        # table 2: logical egress port -> OpenFlow port in reg13; port 3 through a clone
        f"table=2,priority=50,reg15=1,actions=load:{a}->NXM_NX_REG13[0..15],note:61.62,resubmit(,3)",
        f"table=2,priority=50,reg15=2,actions=push:NXM_NX_REG14[],load:{b}->NXM_NX_REG13[0..15],load:7->NXM_NX_REG14[],pop:NXM_NX_REG14[],resubmit(,3)",
        f"table=2,priority=50,reg15=3,actions=clone(load:{c}->NXM_NX_REG13[0..15],resubmit(,3)),exit,output:{a}",
        # table 3: an ACL as conjunctions: drop {.3} -> {.2}; allow echo from {.1, .2}
        f"table=3,priority=70,ip,nw_src={NET}.3,actions=conjunction(9,1/2)",
        f"table=3,priority=70,ip,nw_dst={NET}.2,actions=conjunction(9,2/2)",
        "table=3,priority=70,conj_id=9,ip,actions=drop",
        f"table=3,priority=65,ip,nw_src={NET}.1,actions=conjunction(10,1/2)",
        f"table=3,priority=65,ip,nw_src={NET}.2,actions=conjunction(10,1/2),note:00",
        "table=3,priority=65,icmp,icmp_type=8,actions=conjunction(10,2/2)",
        "table=3,priority=65,icmp,icmp_type=0,actions=conjunction(10,2/2)",
        "table=3,priority=65,conj_id=10,ip,actions=resubmit(,4)",
        # then refuse traffic that would hairpin (ingress == egress), then output
        "table=3,priority=60,xxreg3=0x20002/0xffff0000ffff,actions=drop",
        "table=3,priority=50,reg14=2,xreg7=0x300000002/0xffffffff0000ffff,actions=drop",
        "table=3,priority=10,actions=resubmit(,4)",
        "table=4,priority=10,reg13=0/0xffff0000,actions=output:NXM_NX_REG13[0..15]",
        # never reached: their text and their loading are compared
        "table=9,priority=1,actions=multipath(symmetric_l3l4,0,hrw,2,0,NXM_NX_REG0[0..1]),"
        f"bundle_load(eth_src,0,active_backup,ofport,NXM_NX_REG1[],members:{a},{b}),"
        f"bundle(symmetric_l4,5,hrw,ofport,members:{b},{c})",
    ]


def _counters(dump: str) -> dict[str, int]:
    """n_packets per rule, keyed by the rule as dump-flows prints it without stats."""
    out: dict[str, int] = {}
    for line in dump.splitlines():
        m = re.search(r"n_packets=(\d+)", line)
        if m is None:
            continue
        rule = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", line)
        out[rule.strip()] = int(m.group(1))
    return out


def _texts_match_ofctl(sw: Sw, br: str) -> None:
    """``ovs-appctl bridge/dump-flows`` writes each rule as ``ovs-ofctl dump-flows``
    (Open vSwitch's own formatter, fed our flow stats) does."""
    theirs = set()
    for line in ofctl(sw, br, "dump-flows").splitlines():
        m = re.search(r"(priority=\S*) actions=(.*)$", line.strip())
        if m:
            theirs.add(f"{m.group(1)} actions={m.group(2)}")
    ours = set()
    for line in sw.appctl("bridge/dump-flows", br).stdout.splitlines():
        m = re.search(r"(priority=.*?),?actions=(.*)$", line.strip())
        if m:
            ours.add(f"{m.group(1)} actions={m.group(2)}")
    assert ours == theirs
    assert len(ours) >= 3, ours


def _settled(dump: Callable[[], str], n: int) -> dict[str, int]:
    """The counters once table 0 has counted ``n`` packets: Open vSwitch credits rules
    from its datapath flows in its revalidator's next pass, up to a second later."""

    def table0() -> dict[str, int] | None:
        c = _counters(dump())
        return c if sum(v for k, v in c.items() if "table=0," in k) == n else None

    return wait_for(table0, f"table 0 to count {n} packets")


def _hosts(topo: Topology, tag: str) -> tuple[Host, Host, Host]:
    hs = tuple(topo.add_host(f"{tag}{i}", f"{NET}.{i}/24") for i in (1, 2, 3))
    static_neighbours(*hs)
    return hs  # type: ignore[return-value]


def _traffic(a: Host, b: Host, c: Host) -> dict[str, bool]:
    return {
        "a-b": a.ping(f"{NET}.2", count=3, interval=0.05),
        "b-a": b.ping(f"{NET}.1", count=2, interval=0.05),
        "a-c": a.ping(f"{NET}.3", count=2, interval=0.05),
        "c-b": c.ping(f"{NET}.2", count=1, interval=0.05),
    }


@contextlib.contextmanager
def _ovs(topo: Topology, hosts: tuple[Host, ...]) -> Iterator[OvsSwitch]:
    """ovs-vswitchd in a namespace of its own (its netdev datapath creates a TAP named
    ovs-netdev, which would clash with any other Open vSwitch in the root namespace),
    with the hosts' switch-side ports moved there."""
    ns = f"hl-ovs-{topo.suffix}"
    sh(["ip", "netns", "add", ns])
    topo._namespaces.append(ns)  # deleted with the topology
    for h in hosts:
        sh(["ip", "link", "set", h.switch_port, "netns", ns])
        sh(["ip", "-n", ns, "link", "set", h.switch_port, "up"])
    o = OvsSwitch(netns=ns)
    try:
        o.start()
        yield o
    finally:
        o.close()


def _ofports(o: OvsSwitch, hosts: tuple[Host, ...]) -> list[int]:
    """The OpenFlow ports Open vSwitch gave the hosts' ports (once it has opened them)."""

    def ports() -> list[int] | None:
        out = [o.vsctl("get", "Interface", h.switch_port, "ofport") for h in hosts]
        return [int(x) for x in out] if all(x.isdigit() and int(x) > 0 for x in out) else None

    return wait_for(ports, "Open vSwitch to number the ports")


def _ovs_bridge(o: OvsSwitch, topo: Topology, hosts: tuple[Host, ...], ports: list[int]) -> str:
    """A netdev bridge on ``o`` with the hosts' ports numbered ``ports`` (as on hitless)."""
    obr = topo.name("ob")
    cmd = ["add-br", obr, "--", "set", "bridge", obr, "datapath_type=netdev"]
    for h, n in zip(hosts, ports, strict=True):
        cmd += ["--", "add-port", obr, h.switch_port]
        cmd += ["--", "set", "interface", h.switch_port, f"ofport_request={n}"]
    o.vsctl(*cmd)
    if hosts:
        assert _ofports(o, hosts) == ports
    return obr


def _ovs_ofctl(o: OvsSwitch, br: str, *args: str) -> str:
    r = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", args[0], f"unix:{o.rundir}/{br}.mgmt", *args[1:]],
        capture_output=True,
        text=True,
        env=o.paths.env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_register_pipeline_forwards_and_counts_as_open_vswitch(
    started: Sw, topology: Topology, tmp_path: Path
) -> None:
    # hitless
    a, b, c = _hosts(topology, "h")
    br = make_bridge(started, topology, a, b, c)
    ports = [started.ofport(h.switch_port) for h in (a, b, c)]
    flows = tmp_path / "flows.txt"
    flows.write_text("\n".join(table(*ports)) + "\n")
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    got = _traffic(a, b, c)
    # 6 + 4 + 4 echo requests and replies, and c's one request that is dropped
    ours = _settled(lambda: ofctl(started, br, "dump-flows"), 15)
    _texts_match_ofctl(started, br)

    # real Open vSwitch, same table, its own hosts
    oa, ob, oc = _hosts(topology, "o")
    with _ovs(topology, (oa, ob, oc)) as o:
        obr = _ovs_bridge(o, topology, (oa, ob, oc), ports)
        _ovs_ofctl(o, obr, "del-flows")
        _ovs_ofctl(o, obr, "add-flows", str(flows))
        want = _traffic(oa, ob, oc)
        theirs = _settled(lambda: _ovs_ofctl(o, obr, "dump-flows"), 15)

    # a->b and b->a cross; a->c goes through the clone; c->b is dropped by conjunction 9
    assert want == {"a-b": True, "b-a": True, "a-c": True, "c-b": False}
    assert got == want
    assert ours == theirs
    assert len(ours) >= 3, ours
    assert sum(ours.values()) > 20


def learning_table(a: int, b: int, c: int) -> list[str]:
    """MAC learning with learn(): table 0 learns eth_src -> in_port into table 10 and
    looks the destination up there; table 20 floods what is still unknown."""
    learn = (
        "learn(table=10,idle_timeout=60,hard_timeout=300,priority=5,cookie=0x77,"
        "NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15])"
    )
    return [
        f"table=0,priority=10,ip,actions={learn},resubmit(,10),resubmit(,20)",
        "table=20,priority=10,reg1=0,actions=flood",
        "table=20,priority=5,actions=output:NXM_NX_REG1[0..15]",
    ]


def _run_learning(
    dump: Callable[[], str],
    load: Callable[[Path], None],
    hosts: tuple[Host, Host, Host],
    flows: Path,
) -> tuple[dict[str, bool], dict[str, int]]:
    """Every host first sends one datagram to an address nobody has (flooded: each
    switch learns the three MACs), then, once both switches show the learned rules
    (Open vSwitch installs them after the upcall, a moment later), the pings."""
    load(flows)
    for h in hosts:
        h.set_neigh(f"{NET}.99", "02:00:00:00:00:99")
        h.run(["python3", "-c", _HELLO, f"{NET}.99"])
    wait_for(lambda: len(_learned(dump())) == 3, "three learned rules")
    a, b, c = hosts
    got = {
        "a-b": a.ping(f"{NET}.2", count=3, interval=0.05),
        "c-a": c.ping(f"{NET}.1", count=2, interval=0.05),
    }
    return got, _settled(dump, 3 + 6 + 4)  # the hellos, then requests and replies


def _learned(dump: str) -> list[str]:
    return [k for k in _counters(dump) if k.startswith("cookie=0x77, table=10")]


_HELLO = "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hi', (sys.argv[1], 9))"


def test_learned_mac_table_matches_open_vswitch(
    started: Sw, topology: Topology, tmp_path: Path
) -> None:
    hs = _hosts(topology, "l")
    br = make_bridge(started, topology, *hs)
    ports = [started.ofport(h.switch_port) for h in hs]
    flows = tmp_path / "learn.txt"
    flows.write_text("\n".join(learning_table(*ports)) + "\n")

    def load_ours(f: Path) -> None:
        ofctl(started, br, "del-flows")
        ofctl(started, br, "add-flows", str(f))

    got, ours = _run_learning(lambda: ofctl(started, br, "dump-flows"), load_ours, hs, flows)

    ohs = _hosts(topology, "m")
    with _ovs(topology, ohs) as o:
        obr = _ovs_bridge(o, topology, ohs, ports)

        def load_theirs(f: Path) -> None:
            _ovs_ofctl(o, obr, "del-flows")
            _ovs_ofctl(o, obr, "add-flows", str(f))

        want, theirs = _run_learning(
            lambda: _ovs_ofctl(o, obr, "dump-flows"), load_theirs, ohs, flows
        )

    assert want == {"a-b": True, "c-a": True}
    assert got == want

    # the learned rules: one per host MAC, the same text, the same counters; hosts'
    # MACs differ between the two runs, so compare with the MACs replaced by ports
    def norm(d: dict[str, int], hosts: tuple[Host, Host, Host]) -> dict[str, int]:
        out = {}
        for k, v in d.items():
            for i, h in enumerate(hosts):
                k = k.replace(h.mac, f"host{i}")
            out[re.sub(r"(idle_timeout|hard_timeout)=\d+", r"\1=N", k)] = v
        return out

    assert norm(ours, hs) == norm(theirs, ohs)
    assert len(_learned(ofctl(started, br, "dump-flows"))) == 3
    _texts_match_ofctl(started, br)


def _monitor_packet_in(target: str, env: dict[str, str], send: Callable[[], None]) -> str:
    """What ``ovs-ofctl monitor`` prints for the first NXT_PACKET_IN2 (its two lines),
    sending with ``send`` until one arrives."""
    mon = subprocess.Popen(
        ["ovs-ofctl", "-O", "OpenFlow13", "monitor", target, "65535"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert mon.stdout is not None
    lines: list[str] = []
    try:

        def got() -> bool:
            send()
            while select.select([mon.stdout], [], [], 0.2)[0]:
                line = mon.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    return False
                lines.append(line.rstrip())
                if lines[-2:-1] and lines[-2].startswith("NXT_PACKET_IN2"):
                    return True
            return False

        wait_for(got, "a packet-in at ovs-ofctl monitor")
    finally:
        mon.kill()
        mon.wait()
    return "\n".join(lines[-2:])


def test_controller_userdata_and_registers_reach_the_controller_as_open_vswitch(
    started: Sw, topology: Topology
) -> None:
    frame = "ffffffffffff020000007409" + "88b5" + "00" * 46
    actions = (
        "load:5->NXM_NX_REG0[],set_field:0x42->metadata,load:0x77->NXM_NX_REG14[0..15],"
        "controller(userdata=01.02.03)"
    )
    br = make_bridge(started, topology)
    target = f"unix:{started.rundir.path}/{br}.mgmt"
    ours = _monitor_packet_in(
        target,
        {**os.environ, "OVS_RUNDIR": str(started.rundir.path)},
        lambda: ofctl(started, br, "packet-out", "LOCAL", actions, frame) and None,
    )
    with _ovs(topology, ()) as o:
        obr = _ovs_bridge(o, topology, (), [])
        theirs = _monitor_packet_in(
            f"unix:{o.rundir}/{obr}.mgmt",
            {**o.paths.env},
            lambda: _ovs_ofctl(o, obr, "packet-out", "LOCAL", actions, frame) and None,
        )
    assert "userdata=01.02.03" in theirs and "reg0=0x5" in theirs, theirs
    assert ours == theirs
