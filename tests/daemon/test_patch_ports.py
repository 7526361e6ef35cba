"""Patch ports through the real daemon: namespace hosts on two bridges (netdev, and
ebpf, where the pair is a veth pair the kernel forwards through) joined by a patch pair (configured with stock ovs-vsctl as for Open vSwitch); ping and UDP
cross with NORMAL on both bridges and with OpenFlow rules that output to the patch
port; a patch port without its peer reports an error and link down; a hitless
upgrade with traffic across the bridges loses nothing, and a downgrade to a build
without patch ports rolls back, also without loss."""

from __future__ import annotations

import time

import pytest

from tests.daemon.test_openflow import ofctl, static_neighbours
from tests.handoff.test_netdev_upgrade import (
    Before,
    assert_nothing_lost,
    counter_problems,
    fdb_entries,
    fdb_problems,
    flows,
    keep_idle_flows,
    udp_delivered,
)
from tests.netns import Topology, UdpSink, udp_send
from tests.switch import Sw
from tests.traffic import BREAKS, Bound, bound_of, handoff_under_traffic, judge, violations
from tests.upgrade.builds import build, handoff_features, previous_versions
from tests.wait import wait_for

pytestmark = pytest.mark.netns


@pytest.fixture(params=["netdev", "ebpf"])
def dp_type(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Two:
    """br0 with hosts a and b, br1 with host c, joined by patch ports p0 <-> p1."""

    def __init__(
        self, sw: Sw, topo: Topology, net: str = "10.72.0", dp_type: str = "netdev"
    ) -> None:
        self.sw = sw
        self.a = topo.add_host("a", f"{net}.1/24")
        self.b = topo.add_host("b", f"{net}.2/24")
        self.c = topo.add_host("c", f"{net}.3/24")
        self.br0, self.br1 = topo.name("pbra"), topo.name("pbrb")
        self.p0, self.p1 = topo.name("pqa"), topo.name("pqb")
        sw.vsctl(
            "add-br", self.br0, "--", "set", "bridge", self.br0, f"datapath_type={dp_type}",
            "--", "add-port", self.br0, self.a.switch_port,
            "--", "add-port", self.br0, self.b.switch_port,
            "--", "add-br", self.br1, "--", "set", "bridge", self.br1, f"datapath_type={dp_type}",
            "--", "add-port", self.br1, self.c.switch_port,
        )  # fmt: skip
        self.patch()

    def patch(self) -> None:
        self.sw.vsctl(
            "add-port", self.br0, self.p0,
            "--", "set", "interface", self.p0, "type=patch", f"options:peer={self.p1}",
            "--", "add-port", self.br1, self.p1,
            "--", "set", "interface", self.p1, "type=patch", f"options:peer={self.p0}",
        )  # fmt: skip
        wait_for(lambda: self.link(self.p0) == "up" and self.link(self.p1) == "up", "patch up")

    def link(self, iface: str) -> str:
        return self.sw.get("Interface", iface, "link_state")


def test_normal_switching_across_a_patch_pair(
    started: Sw, topology: Topology, dp_type: str
) -> None:
    t = Two(started, topology, dp_type=dp_type)
    for p in (t.p0, t.p1):
        assert started.get("Interface", p, "type") == "patch"
        assert started.get("Interface", p, "error") == "[]"
        assert started.ofport(p) > 0
    assert t.a.ping(t.c.addr, count=3, interval=0.1)
    assert t.c.ping(t.b.addr, count=3, interval=0.1)
    # MAC learning on both bridges: a and b behind the patch port of br1, c behind br0's
    fdb0 = started.appctl("fdb/show", t.br0).stdout
    fdb1 = started.appctl("fdb/show", t.br1).stdout
    p0, p1 = started.ofport(t.p0), started.ofport(t.p1)
    assert any(ln.split()[:1] == [str(p0)] and t.c.mac in ln for ln in fdb0.splitlines()), fdb0
    assert any(ln.split()[:1] == [str(p1)] and t.a.mac in ln for ln in fdb1.splitlines()), fdb1
    # UDP across, every datagram delivered
    sink = UdpSink(t.c, 5501, idle=1.0)
    udp_send(t.a, t.c.addr, 5501, count=200)
    assert sorted(sink.seqs()) == list(range(200))
    # The crossing frames hit megaflows on both datapaths (no upcall per packet)
    flows1 = started.appctl("dpctl/dump-flows", t.br1).stdout
    assert f"in_port({p1})" in flows1 or f"in_port={p1}" in flows1, flows1
    if dp_type == "ebpf":  # and the kernel ran them: nothing went through the daemon
        for br in (t.br0, t.br1):
            show = started.appctl("dpctl/show", br).stdout
            assert "slow path: kernel:0 executed:0" in show, show


def test_openflow_output_to_the_patch_port(started: Sw, topology: Topology, dp_type: str) -> None:
    t = Two(started, topology, "10.73.0", dp_type)
    static_neighbours(t.a, t.b, t.c)
    na, nc = started.ofport(t.a.switch_port), started.ofport(t.c.switch_port)
    p0, p1 = started.ofport(t.p0), started.ofport(t.p1)
    for br in (t.br0, t.br1):
        ofctl(started, br, "del-flows")
    assert not t.a.ping(t.c.addr, count=1, timeout=1)
    ofctl(started, t.br0, "add-flow", f"in_port={na},actions=output:{p0}")
    ofctl(started, t.br0, "add-flow", f"in_port={p0},actions=output:{na}")
    ofctl(started, t.br1, "add-flow", f"in_port={p1},actions=output:{nc}")
    ofctl(started, t.br1, "add-flow", f"in_port={nc},actions=output:{p1}")
    assert t.a.ping(t.c.addr, count=5, interval=0.05)
    sink = UdpSink(t.c, 5502, idle=1.0)
    udp_send(t.a, t.c.addr, 5502, count=100)
    assert sorted(sink.seqs()) == list(range(100))
    # Every echo request and datagram went through both bridges' rules
    out0 = ofctl(started, t.br0, "dump-flows")
    out1 = ofctl(started, t.br1, "dump-flows")
    for out, rule in ((out0, f"in_port={na}"), (out1, f"in_port={p1}")):
        line = next(ln for ln in out.splitlines() if rule in ln)
        n = int(line.split("n_packets=")[1].split(",")[0])
        assert n >= 105, line


def test_patch_port_without_peer_reports_error(
    started: Sw, topology: Topology, dp_type: str
) -> None:
    a = topology.add_host("a", "10.74.0.1/24")
    br = topology.name("pbrc")
    p0, p1 = topology.name("pqc"), topology.name("pqd")
    started.vsctl(
        "add-br", br, "--", "set", "bridge", br, f"datapath_type={dp_type}",
        "--", "add-port", br, a.switch_port,
        "--", "add-port", br, p0, "--", "set", "interface", p0, "type=patch",
        f"options:peer={p1}",
        "--", "add-port", br, "pqbad", "--", "set", "interface", "pqbad", "type=patch",
    )  # fmt: skip
    wait_for(lambda: started.get("Interface", p0, "error") != "[]", "an error on p0")
    assert started.get("Interface", p0, "error") == f'"{p0}: patch peer {p1} does not exist"'
    assert started.get("Interface", p0, "link_state") == "down"
    assert started.ofport(p0) > 0
    wait_for(lambda: started.get("Interface", "pqbad", "error") != "[]", "an error on pqbad")
    assert "requires valid 'peer' argument" in started.get("Interface", "pqbad", "error")
    assert started.ofport("pqbad") == -1
    # The peer appears on a second bridge: both up, errors cleared
    br1 = topology.name("pbrd")
    started.vsctl(
        "add-br", br1, "--", "set", "bridge", br1, f"datapath_type={dp_type}",
        "--", "add-port", br1, p1, "--", "set", "interface", p1, "type=patch",
        f"options:peer={p0}",
    )  # fmt: skip
    wait_for(lambda: started.get("Interface", p0, "link_state") == "up", "p0 up")
    assert started.get("Interface", p0, "error") == "[]"
    assert started.get("Interface", p1, "link_state") == "up"


def test_a_patch_pair_between_ebpf_and_netdev_reports_an_error(
    started: Sw, topology: Topology
) -> None:
    """The ebpf end of a patch pair is a veth the kernel forwards into; a netdev peer
    never reads it, so the pair is refused visibly instead of half forwarding."""
    br0, br1 = topology.name("pbre"), topology.name("pbrf")
    p0, p1 = topology.name("pqe"), topology.name("pqf")
    started.vsctl(
        "add-br", br0, "--", "set", "bridge", br0, "datapath_type=ebpf",
        "--", "add-port", br0, p0, "--", "set", "interface", p0, "type=patch",
        f"options:peer={p1}",
        "--", "add-br", br1, "--", "set", "bridge", br1, "datapath_type=netdev",
        "--", "add-port", br1, p1, "--", "set", "interface", p1, "type=patch",
        f"options:peer={p0}",
    )  # fmt: skip
    wait_for(lambda: started.get("Interface", p0, "error") != "[]", "an error on the ebpf end")
    assert "is not on an ebpf bridge" in started.get("Interface", p0, "error")
    assert started.get("Interface", p0, "link_state") == "down"


@pytest.mark.parametrize(
    ("dp_type", "fault"),
    [("netdev", None), *(("netdev", f) for f in BREAKS), ("ebpf", None)],
)
def test_upgrade_with_traffic_across_the_patch_pair_loses_nothing(
    sw: Sw, topology: Topology, dp_type: str, fault: str | None
) -> None:
    """Traffic a <-> c crosses both bridges and the pair; b speaks once and then stays
    silent, so its MAC entry on br0 can only survive by being carried over. The shared
    traffic claim, the fdb (b kept, with its age) and the megaflow counters of both
    bridges (at least what was delivered) are judged together; each fault of ``BREAKS``
    armed in the new process must be caught (on netdev: the fault points act there)."""
    sw.hitless("start")
    t = Two(sw, topology, "10.75.0", dp_type)
    static_neighbours(t.a, t.b, t.c)
    assert t.b.ping(t.a.addr, count=1)
    assert t.a.ping(t.c.addr, count=2, interval=0.1)
    old = sw.daemon_pid
    # The state checks read the netdev datapath's megaflows (on ebpf the kernel's flows
    # and the pair's veths forward: only the traffic is judged there).
    was = [before_on(sw, br, (t.a.mac, t.c.mac), t.b.mac if br == t.br0 else None)
           for br in (t.br0, t.br1) if dp_type == "netdev"]  # fmt: skip
    report, res = handoff_under_traffic(sw, [t.a, t.c], "upgrade", fault=fault)
    assert report["ok"], report
    assert sw.daemon_pid == report["new_pid"] != old
    problems = violations(res, bound_of([report]))
    for w in was:
        # The bridges' own LOCAL ports talk (IPv6) when they like, and what br1's says
        # is learned on br0's patch port: new entries are not judged here.
        problems += [p for p in fdb_problems(sw, w)
                     if not p.startswith("fdb: new entry") and (w.silent or "silent" not in p)]  # fmt: skip
        problems += counter_problems(sw, w, udp_delivered(res))
    judge(problems, fault, res)
    # The new process holds the pair: still connected, traffic still crosses
    assert t.link(t.p0) == "up" and t.link(t.p1) == "up"
    assert t.a.ping(t.c.addr, count=2, interval=0.1)


def before_on(sw: Sw, br: str, pair: tuple[str, str], silent: str | None) -> Before:
    """What ``br`` held before the handoff: its fdb (``silent``: the MAC of a host that
    spoke once and must keep its entry and age; None: no such host on it) and the
    megaflows of the traffic pair."""
    keep_idle_flows(sw)
    key = f"0 {silent}" if silent else ""
    return Before(br, key, fdb_entries(sw, br), flows(sw, br), time.monotonic(), pair)


def test_downgrade_to_a_build_without_patch_ports_is_refused_before_freezing(
    sw: Sw, topology: Topology
) -> None:
    """The newest previous release without patch ports (no feature "patch-ports"): it
    cannot adopt the pair (no descriptor to take), so the handoff rolls back and the
    running switch keeps forwarding across the bridges."""
    previous = [v for v in previous_versions() if "patch-ports" not in handoff_features(v)][-1]
    old_build = build(previous)
    sw.hitless("start")
    t = Two(sw, topology, "10.76.0")
    old = sw.daemon_pid
    report, res = handoff_under_traffic(sw, [t.a, t.c], "downgrade", "--to",
                                        str(old_build.vswitchd), duration=8)  # fmt: skip
    assert not report["ok"] and report["returncode"] == 1, report
    # Refused up front, saying why and what to do: nothing was frozen (no freeze phase),
    # so traffic waited only for the machine (gaps up to 120 ms seen at load average 13).
    assert f"bridge {t.br0} has patch ports" in report["reason"], report
    assert "remove them first" in report["reason"], report
    assert "freeze" not in report.get("phases_ms", {}) and "restore" not in report.get(
        "phases_ms", {}
    ), report
    assert sw.daemon_pid == old
    assert_nothing_lost(res, Bound(0.25, 0.25, "nothing frozen: scheduling delays only"))
    assert t.link(t.p0) == "up" and t.link(t.p1) == "up"
    assert t.a.ping(t.c.addr, count=2, interval=0.1)
