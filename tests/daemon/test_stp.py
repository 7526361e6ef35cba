"""STP (Bridge.stp_enable) between a hitless bridge and a real Open vSwitch 3.1 bridge
(netdev, in its own namespace) cabled by two veth pairs: a loop. Both run 802.1D with
the same fast timers; the tree converges with exactly one of the four ports blocking,
both switches print it the same way (``ovs-appctl stp/show``, Bridge and Port status,
Port statistics), a broadcast does not storm, and a hitless upgrade keeps every port's
state (no port goes back to listening) while traffic crosses the loop."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from hitless.impact.switches import OvsSwitch
from tests.daemon.test_bonds import cabled_to_a_namespace
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.traffic import COLD, caught_in_traffic, must_catch, upgrade_under_udp
from tests.wait import wait_for

pytestmark = pytest.mark.netns

TIMERS = ("other_config:stp-forward-delay=4", "other_config:stp-hello-time=1",
          "other_config:stp-max-age=6")  # fmt: skip


def table(show: str) -> dict[str, tuple[str, str]]:
    """Interface -> (role, state) from stp/show."""
    out = {}
    for line in show.splitlines():
        f = line.split()
        if len(f) == 5 and f[1] in ("root", "designated", "alternate", "disabled"):
            out[f[0]] = (f[1], f[2])
    return out


def shape(show: str, names: dict[str, str]) -> str:
    """stp/show with interface names mapped to roles in the test and MACs blanked."""
    for old, new in names.items():
        show = re.sub(rf"\b{re.escape(old)}\b", new, show)
    show = re.sub(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", "MAC", show)
    return re.sub(r"^---- .* ----$", "---- BR ----", show, flags=re.M)


Roles = dict[str, tuple[str, str]]  # interface -> (role, state)
Ready = Callable[[Roles, Roles, list[tuple[str, str]]], bool]


def _stp_ready(ours: Roles, theirs: Roles, hosts: list[tuple[str, str]]) -> bool:
    states = [s for _, s in ours.values()] + [s for _, s in theirs.values()]
    return len(states) == 4 and sorted(states) == ["blocking"] + ["forwarding"] * 3


@contextmanager
def looped(
    sw: Sw,
    topology: Topology,
    *,
    kind: str = "stp",
    net: str = "10.76.0",
    timers: tuple[str, ...] = TIMERS,
    read: Callable[[str], Roles] = table,
    ready: Ready = _stp_ready,
) -> Iterator[tuple[Host, Host, OvsSwitch, list[str], list[str]]]:
    """A hitless bridge and an Open vSwitch netdev bridge running ``kind`` ("stp" or
    "rstp"), cabled by two veth pairs (a loop), each with a host; yields once ``ready``
    says the loop's ports (ours, theirs) and the hosts' ports converged."""
    a, b, ns, xs, ys = cabled_to_a_namespace(topology, net, f"hl-ovs{kind[0]}")
    for h in (a, b):
        h.run(["ethtool", "-K", "eth0", "tx", "off"])
    ovs = OvsSwitch(netns=ns)
    try:
        ovs.start()
        ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                  f"{kind}_enable=true", *timers, "--", "add-port", "br0", b.switch_port,
                  "--", "add-port", "br0", ys[0], "--", "add-port", "br0", ys[1])  # fmt: skip
        br = topology.name(f"h{kind[0]}")
        sw.vsctl("add-br", br, "--", "set", "bridge", br, f"{kind}_enable=true", *timers,
                 "--", "add-port", br, a.switch_port, "--", "add-port", br, xs[0],
                 "--", "add-port", br, xs[1])  # fmt: skip

        def converged() -> bool:
            ours = read(sw.appctl(f"{kind}/show").stdout)
            theirs = read(ovs.appctl(f"{kind}/show"))
            return ready(
                {x: ours[x] for x in xs if x in ours},
                {y: theirs[y] for y in ys if y in theirs},
                [v for v in (ours.get(a.switch_port), theirs.get(b.switch_port)) if v],
            )

        wait_for(converged, "the tree to converge on both switches", 60)
        yield a, b, ovs, xs, ys
    finally:
        ovs.close()


def test_stp_breaks_a_loop_with_open_vswitch(started: Sw, topology: Topology) -> None:
    sw = started
    with looped(sw, topology) as (a, b, ovs, xs, ys):
        ours, theirs = sw.appctl("stp/show").stdout, ovs.appctl("stp/show")
        print(ours, "---- Open vSwitch ----\n", theirs, sep="")
        t_ours, t_theirs = table(ours), table(theirs)
        # The same tree seen from both ends of each link: the lower bridge ID is the root,
        # its two ports designated; the other bridge has a root port and an alternate.
        hitless_root = "This bridge is the root" in ours
        assert hitless_root != ("This bridge is the root" in theirs)
        root_t, other_t = (t_ours, t_theirs) if hitless_root else (t_theirs, t_ours)
        root_ends, other_ends = (xs, ys) if hitless_root else (ys, xs)
        assert [root_t[e] for e in root_ends] == [("designated", "forwarding")] * 2
        assert sorted(other_t[e] for e in other_ends) == [
            ("alternate", "blocking"), ("root", "forwarding")]  # fmt: skip
        # The hosts' ports: designated and forwarding on both.
        assert t_ours[a.switch_port] == t_theirs[b.switch_port] == ("designated", "forwarding")
        # The same text apart from names and MACs.
        names_o = {a.switch_port: "HOST", xs[0]: "L0", xs[1]: "L1"}
        names_t = {b.switch_port: "HOST", ys[0]: "L0", ys[1]: "L1"}
        skip = ("root-port", "root-path-cost", "This bridge", "HOST", "L0", "L1")

        def common(text: str, names: dict[str, str]) -> list[str]:
            return [ln for ln in shape(text, names).splitlines() if not any(k in ln for k in skip)]

        assert common(ours, names_o) == common(theirs, names_t)
        costs = lambda text: sorted(ln.split()[3:] for ln in text.splitlines()  # noqa: E731
                                    if len(ln.split()) == 5 and ln.split()[2] in ("forwarding", "blocking"))  # fmt: skip
        assert [c[0] for c in costs(ours)] == [c[0] for c in costs(theirs)] == ["2"] * 3
        assert all(c[1].startswith("128.") for c in costs(ours) + costs(theirs))

        # Database columns: the same keys as Open vSwitch's.
        br = sw.vsctl("--bare", "--columns=name", "find", "Bridge", "stp_enable=true").stdout.strip()
        st = sw.get("Bridge", br, "status")
        assert "stp_bridge_id=" in st and "stp_designated_root=" in st and "stp_root_path_cost=" in st
        keys = lambda s: sorted(re.findall(r"(\w+)=", s))  # noqa: E731
        assert keys(st) == keys(ovs.vsctl("get", "Bridge", "br0", "status"))
        mine = sw.get("Port", xs[0], "status")
        assert keys(mine) == keys(ovs.vsctl("get", "Port", ys[0], "status")), mine
        assert keys(sw.get("Port", xs[0], "statistics")) == keys(
            ovs.vsctl("get", "Port", ys[0], "statistics"))  # fmt: skip

        # Traffic crosses; a broadcast does not circle the loop.
        assert wait_for(lambda: a.ping(b.addr, count=2), "ping across the tree")
        rx0 = b.counter("rx_packets")
        a.run(["ping", "-b", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "1", "10.76.0.255"],
              check=False)  # fmt: skip
        got = b.counter("rx_packets") - rx0
        print(f"5 broadcast pings: host b received {got} frames (BPDUs of its port included)")
        assert 5 <= got < 30


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate", COLD])
def test_upgrade_keeps_the_tree(started: Sw, topology: Topology, fault: str | None) -> None:
    """Port roles and states kept, and the UDP across the loop judged as every
    handoff's (nothing lost or doubled, nothing held beyond the bound); a new process
    that stops reading for 100 ms, sends frames twice or starts cold (its tree from
    scratch: listening, learning) must fail that."""
    sw = started
    with looped(sw, topology) as (a, b, ovs, _xs, _ys):
        before = table(sw.appctl("stp/show").stdout)
        assert wait_for(lambda: a.ping(b.addr, count=1), "ping across the tree")
        pid, theirs = sw.daemon_pid, ovs.daemon_pid()
        assert theirs is not None
        # Open vSwitch forwards the same traffic on the other side: its waits for a CPU
        # are excused as a relay's are.
        problems, res = upgrade_under_udp(sw, [a, b], fault, port=9700, relays=[theirs])
        after = table(sw.appctl("stp/show").stdout)
        print(f"upgrade with STP: {problems}; ports before {before}, after {after}")
        assert sw.daemon_pid != pid
        if caught_in_traffic(problems, fault, res):
            return
        with must_catch(fault):
            assert after == before
            assert not problems, problems
