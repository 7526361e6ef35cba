"""Port.qos with real TCP between namespace hosts, side by side with Open vSwitch 3.1
(netdev datapath, its own namespace, same hosts' traffic in the same run): linux-htb
shapes the port's device with tc (the same class tree as Open vSwitch's), an
egress-policer polices in the datapath, a QoS type this kernel cannot build is reported
in the Port's status, and clearing the QoS removes the tree and the limit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from hitless.impact.switches import OvsSwitch
from tests.netns import Host, Topology, sh, unique_name
from tests.switch import Sw
from tests.traffic import COLD, RATES, caught_in_traffic, must_catch, upgrade_under_udp
from tests.wait import wait_for

pytestmark = pytest.mark.netns

RATE = 5_000_000  # bit/s


def tcp_mbit(a: Host, b: Host, seconds: int = 4, port: int = 5201) -> float:
    """What a TCP flow from a to b delivers, in Mbit/s (iperf3, the receiver's count)."""
    b.popen(["iperf3", "-s", "-1", "-B", b.addr, "-p", str(port)])
    wait_for(lambda: f":{port} " in b.run(["ss", "-Hlnt"]).stdout, "iperf3 server")
    res = a.run(["iperf3", "-c", b.addr, "-p", str(port), "-t", str(seconds), "-J"], check=False,
                timeout=120)  # fmt: skip
    b.kill_procs()
    data = json.loads(res.stdout)
    return float(data["end"]["sum_received"]["bits_per_second"]) / 1e6


def tc_classes(dev: str, ns: str | None = None) -> str:
    cmd = ["tc", "class", "show", "dev", dev]
    return sh(["ip", "netns", "exec", ns, *cmd] if ns else cmd).stdout


def root_qdisc(dev: str) -> str:
    return sh(["tc", "qdisc", "show", "dev", dev, "root"]).stdout


def kernel_has(qdisc: str) -> bool:
    """Whether this kernel builds a root ``qdisc`` (on a throwaway veth)."""
    ns = unique_name("hlqk")
    sh(["ip", "netns", "add", ns])
    try:
        sh(["ip", "-n", ns, "link", "add", "q0", "type", "veth", "peer", "name", "q1"])
        r = sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "q0", "root", "handle",
                "1:", qdisc], check=False)  # fmt: skip
        return r.returncode == 0
    finally:
        sh(["ip", "netns", "del", ns], check=False)


def _known_neighbours(a: Host, b: Host) -> None:
    """Permanent ARP entries both ways before the first ping: a dynamic entry made by
    that ping is probed again (a unicast ARP request and its reply) some 5 s later, and
    at load that fell inside a later measurement: 44 packets sampled for 40 pings."""
    a.set_neigh(b.addr, b.mac)
    b.set_neigh(a.addr, a.mac)


@contextmanager
def ovs_pair(topology: Topology, net: str) -> Iterator[tuple[Host, Host, OvsSwitch, str]]:
    """Two more hosts on real Open vSwitch (netdev bridge in its own namespace):
    (a, b, the switch, its namespace)."""
    a = topology.add_host("oa", f"{net}.1/24")
    b = topology.add_host("ob", f"{net}.2/24")
    ns = f"hl-ovsq-{topology.suffix}"
    sh(["ip", "netns", "add", ns])
    topology._namespaces.append(ns)
    for h in (a, b):
        sh(["ip", "link", "set", h.switch_port, "netns", ns])
        sh(["ip", "-n", ns, "link", "set", h.switch_port, "up"])
        h.run(["ethtool", "-K", "eth0", "tx", "off"])
    _known_neighbours(a, b)
    ovs = OvsSwitch(netns=ns)
    try:
        ovs.start()
        ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                  "--", "add-port", "br0", a.switch_port, "--", "add-port", "br0", b.switch_port)  # fmt: skip
        assert wait_for(lambda: a.ping(b.addr, count=1), "ping through Open vSwitch")
        yield a, b, ovs, ns
    finally:
        ovs.close()


def hitless_pair(sw: Sw, topology: Topology, net: str) -> tuple[Host, Host, str]:
    a = topology.add_host("a", f"{net}.1/24")
    b = topology.add_host("b", f"{net}.2/24")
    for h in (a, b):
        h.run(["ethtool", "-K", "eth0", "tx", "off"])
    _known_neighbours(a, b)
    br = topology.name("hq")
    sw.vsctl("add-br", br, "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    assert wait_for(lambda: a.ping(b.addr, count=1), "ping through hitless")
    return a, b, br


def test_linux_htb_shapes_tcp_as_open_vswitch_does(started: Sw, topology: Topology) -> None:
    sw = started
    a, b, _ = hitless_pair(sw, topology, "10.77.0")
    free = tcp_mbit(a, b)
    # Shape what the switch sends to b: its port's device gets the tc tree.
    sw.vsctl("set", "port", b.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
             "type=linux-htb", f"other_config:max-rate={RATE}")  # fmt: skip
    classes = tc_classes(b.switch_port)
    assert "class htb 1:fffe root rate 5Mbit ceil 5Mbit" in classes, classes
    assert "class htb 1:1 parent 1:fffe" in classes and "ceil 5Mbit" in classes, classes
    shaped = tcp_mbit(a, b)

    with ovs_pair(topology, "10.77.1") as (oa, ob, ovs, ns):
        ovs.vsctl("set", "port", ob.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
                  "type=linux-htb", f"other_config:max-rate={RATE}")  # fmt: skip
        theirs = tc_classes(ob.switch_port, ns)
        ovs_shaped = tcp_mbit(oa, ob)
    print(f"linux-htb max-rate=5 Mbit/s, TCP: hitless {free:.1f} Mbit/s unshaped, "
          f"{shaped:.2f} shaped; Open vSwitch {ovs_shaped:.2f} shaped")  # fmt: skip

    def tree(text: str) -> list[str]:  # the classes without the bursts' rounding
        return sorted(" ".join(ln.split()[:11]) for ln in text.splitlines() if ln)

    assert tree(classes) == tree(theirs), (classes, theirs)
    assert free > 20
    assert 3.0 < shaped <= 5.3
    assert 0.7 < shaped / ovs_shaped < 1.3

    # Cleared: the tree goes, the limit with it.
    sw.vsctl("clear", "port", b.switch_port, "qos")
    assert "htb" not in root_qdisc(b.switch_port)
    assert tcp_mbit(a, b) > 20


def test_egress_policer_limits_tcp_in_the_datapath(started: Sw, topology: Topology) -> None:
    sw = started
    a, b, _ = hitless_pair(sw, topology, "10.77.2")
    free = tcp_mbit(a, b)
    # cir/cbs in bytes/s and bytes: 625,000 B/s = 5 Mbit/s.
    sw.vsctl("set", "port", b.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
             "type=egress-policer", "other_config:cir=625000", "other_config:cbs=62500")  # fmt: skip
    policed = tcp_mbit(a, b)
    back = a.ping(b.addr, count=2)  # the other direction is not policed: replies pass

    with ovs_pair(topology, "10.77.3") as (oa, ob, ovs, _):
        ovs.vsctl("set", "port", ob.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
                  "type=egress-policer", "other_config:cir=625000", "other_config:cbs=62500")  # fmt: skip
        ovs_policed = tcp_mbit(oa, ob)
    print(f"egress-policer cir=625000 B/s, TCP: hitless {free:.1f} Mbit/s free, "
          f"{policed:.2f} policed; Open vSwitch 3.1 netdev {ovs_policed:.1f} (it has no "
          "egress-policer for a Linux device)")  # fmt: skip
    assert free > 20 and back
    assert 1.0 < policed <= 5.5
    assert "hitless_unsupported" not in sw.get("Port", b.switch_port, "status")

    sw.vsctl("clear", "port", b.switch_port, "qos")
    assert tcp_mbit(a, b) > 20


QUEUES = (
    "other_config:max-rate=20000000", "queues:1=@q1", "queues:2=@q2",
    "--", "--id=@q1", "create", "queue", "other_config:max-rate=2000000",
    "--", "--id=@q2", "create", "queue", "other_config:max-rate=8000000",
)  # fmt: skip


def queue_flows(ofctl: Callable[..., object], dst: str) -> None:
    """TCP to port 5202 in queue 1, to 5203 in queue 2 (set_queue, then NORMAL)."""
    for port, queue in ((5202, 1), (5203, 2)):
        ofctl("add-flow", f"priority=100,tcp,nw_dst={dst},tp_dst={port},"
              f"actions=set_queue:{queue},normal")  # fmt: skip


def test_set_queue_puts_each_flow_in_its_queue_class(started: Sw, topology: Topology) -> None:
    """Two flows to two queues of a linux-htb QoS (2 and 8 Mbit/s, port 20 Mbit/s): each
    TCP flow gets its queue's rate (the datapath gives the frames the queue's socket
    priority, tc's htb puts them in class 1:<queue+1>); a flow without set_queue is in
    queue 0 (class 1:1, up to the port's 20 Mbit/s)."""
    sw = started
    a, b, br = hitless_pair(sw, topology, "10.77.6")
    sw.vsctl("set", "port", b.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
             "type=linux-htb", *QUEUES)  # fmt: skip
    queue_flows(lambda *args: sw.ofctl(br, *args), b.addr)
    flows = sw.appctl("ofproto/trace", br,
                      f"tcp,in_port={a.switch_port},dl_src={a.mac},dl_dst={b.mac},nw_src={a.addr},"
                      f"nw_dst={b.addr},tcp_dst=5202").stdout  # fmt: skip
    assert "set(skb_priority(0x10002))" in flows, flows
    q1_before = sent_bytes(b.switch_port, "1:2")
    q1, q2, q0 = (tcp_mbit(a, b, port=p) for p in (5202, 5203, 5201))
    print(f"set_queue into linux-htb queues, TCP: queue 1 (2 Mbit/s) {q1:.2f}, queue 2 "
          f"(8 Mbit/s) {q2:.2f}, no set_queue (queue 0, port at 20) {q0:.2f} Mbit/s")  # fmt: skip
    assert sent_bytes(b.switch_port, "1:2") > q1_before + 500_000
    assert sent_bytes(b.switch_port, "1:3") > 2_000_000
    assert 1.0 < q1 <= 2.2
    assert 5.0 < q2 <= 8.5
    assert 12 < q0 <= 21

    with ovs_pair(topology, "10.77.7") as (oa, ob, ovs, _):
        ovs.vsctl("set", "port", ob.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
                  "type=linux-htb", *QUEUES)  # fmt: skip
        queue_flows(lambda *args: ovs.ofctl(*args), ob.addr)
        o1, o2 = (tcp_mbit(oa, ob, port=p) for p in (5202, 5203))
    print(f"Open vSwitch 3.1 netdev, the same rules: queue 1 {o1:.2f}, queue 2 {o2:.2f} Mbit/s")


def test_set_queue_on_ebpf_runs_in_the_kernel(started: Sw, topology: Topology) -> None:
    """The same two queues on an ebpf bridge: the BPF program (layout 4) sets the
    packets' skb->priority itself, so each TCP flow gets its queue's rate while its
    megaflow stays a kernel flow (no slow path: every packet of the three iperf3 runs
    passes the kernel, the daemon executes none)."""
    import re

    from tests.datapath.test_ebpf_switch import ebpf_bridge

    sw = started
    a = topology.add_host("ea", "10.77.8.1/24")
    b = topology.add_host("eb", "10.77.8.2/24")
    for h in (a, b):
        h.run(["ethtool", "-K", "eth0", "tx", "off"])
    br = ebpf_bridge(sw, topology, a, b)
    assert wait_for(lambda: a.ping(b.addr, count=1), "ping through the ebpf bridge")
    sw.vsctl("set", "port", b.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
             "type=linux-htb", *QUEUES)  # fmt: skip
    queue_flows(lambda *args: sw.ofctl(br, *args), b.addr)

    def executed() -> int:
        show = sw.appctl("dpctl/show", br).stdout
        m = re.search(r"slow path: kernel:\d+ executed:(\d+)", show)
        assert m is not None, show
        return int(m.group(1))

    q1_before, ex0 = sent_bytes(b.switch_port, "1:2"), executed()
    q1, q2, q0 = (tcp_mbit(a, b, port=p) for p in (5202, 5203, 5201))
    show = sw.appctl("dpctl/show", br).stdout
    flows = sw.appctl("dpctl/dump-flows", br).stdout
    print(f"ebpf, set_queue into linux-htb queues, TCP: queue 1 (2 Mbit/s) {q1:.2f}, queue 2 "
          f"(8 Mbit/s) {q2:.2f}, no set_queue (queue 0, port at 20) {q0:.2f} Mbit/s; "
          f"slow path executed {executed() - ex0} packets\n{show}")  # fmt: skip
    assert "set(skb_priority(0x10002))" in flows, flows
    assert "program layout: 4" in show, show
    assert executed() - ex0 < 20  # the misses' first packets at most
    assert sent_bytes(b.switch_port, "1:2") > q1_before + 500_000
    assert sent_bytes(b.switch_port, "1:3") > 2_000_000
    assert 1.0 < q1 <= 2.2
    assert 5.0 < q2 <= 8.5
    assert 12 < q0 <= 21


def test_qos_the_kernel_cannot_build_is_reported(started: Sw, topology: Topology) -> None:
    sw = started
    a, b, br = hitless_pair(sw, topology, "10.77.4")
    sw.vsctl("set", "port", b.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
             "type=linux-hfsc", f"other_config:max-rate={RATE}")  # fmt: skip
    if kernel_has("hfsc"):
        assert "class hfsc 1:fffe" in tc_classes(b.switch_port)
    else:
        status = wait_for(
            lambda: (s := sw.get("Port", b.switch_port, "status")) and "hitless_unsupported" in s
            and s,
            "the Port's status to report the QoS the kernel refused",
        )
        assert "tc could not build the tree" in status, status
        assert f"{b.switch_port}: cannot apply QoS" in sw.log()
    # A type hitless does not implement is refused out loud too.
    sw.vsctl("set", "qos", sw.get("Port", b.switch_port, "qos"), "type=linux-netem")
    assert "QoS type 'linux-netem' is not implemented" in sw.get("Port", b.switch_port, "status")
    sw.vsctl("clear", "port", b.switch_port, "qos")
    assert wait_for(lambda: "hitless_unsupported" not in sw.get("Port", b.switch_port, "status"),
                    "the report to clear")  # fmt: skip
    assert a.ping(b.addr, count=2)


def sent_bytes(dev: str, classid: str) -> int:
    """The bytes tc's class ``classid`` on ``dev`` has sent (reset if the tree is rebuilt)."""
    out = sh(["tc", "-s", "class", "show", "dev", dev, "classid", classid]).stdout
    words = out.split()
    return int(words[words.index("Sent") + 1])


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate", COLD])
def test_upgrade_keeps_the_shaper_and_the_policer(
    started: Sw, topology: Topology, fault: str | None
) -> None:
    """The tc tree is adopted, not rebuilt (its counters go on), the traffic through it
    judged as every handoff's, and both limits hold afterwards; a new process that
    stops reading for 100 ms, sends frames twice or starts cold (rebuilding the tree)
    must fail that."""
    sw = started
    a, b, _ = hitless_pair(sw, topology, "10.77.5")
    # b's port shaped at 20 Mbit/s (tc), a's policed at 10 Mbit/s (datapath): 1000
    # datagrams/s each way (106-byte frames: 0.85 Mbit/s) stay well under both.
    sw.vsctl("set", "port", b.switch_port, "qos=@q", "--", "--id=@q", "create", "qos",
             "type=linux-htb", "other_config:max-rate=20000000")  # fmt: skip
    sw.vsctl("set", "port", a.switch_port, "qos=@p", "--", "--id=@p", "create", "qos",
             "type=egress-policer", "other_config:cir=1250000", "other_config:cbs=125000")  # fmt: skip
    applied = sw.log().count("egress shaping applied")
    assert applied == 1
    assert a.ping(b.addr, count=3, interval=0.05)
    before = sent_bytes(b.switch_port, "1:1")
    assert before > 0

    pid = sw.daemon_pid
    problems, res = upgrade_under_udp(sw, [a, b], fault, port=9600)
    sent = [c.sent for c in res.classes]
    print(f"upgrade with linux-htb and egress-policer ports: {problems}, sent {sent}")
    assert sw.daemon_pid != pid
    if caught_in_traffic(problems, fault, res):
        return
    # The same tree (its counters went on: not rebuilt), not applied again.
    with must_catch(fault):
        # each of a's datagrams: its payload and 42 bytes of Ethernet, IPv4 and UDP headers
        assert sent_bytes(b.switch_port, "1:1") >= before + sent[0] * (42 + RATES.udp_size)
        assert sw.log().count("egress shaping applied") == applied
        assert not problems, problems
    # Both limits still hold in the new process.
    to_b = tcp_mbit(a, b)
    to_a = tcp_mbit(b, a)
    print(f"after the upgrade: TCP to b {to_b:.1f} Mbit/s (shaped at 20), to a {to_a:.1f} "
          "(policed at 10)")  # fmt: skip
    assert 10 < to_b <= 21
    assert 2 < to_a <= 11
