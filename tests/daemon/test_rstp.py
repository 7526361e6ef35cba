"""RSTP (Bridge.rstp_enable) between a hitless bridge and a real Open vSwitch 3.1 bridge
(netdev, in its own namespace) cabled by two veth pairs: a loop. Both run 802.1D-2004's
rapid spanning tree with the same timers; the tree converges with exactly one of the
four ports discarding, both print it the same way (``ovs-appctl rstp/show``,
Bridge/Port rstp_status, Port rstp_statistics keys), a broadcast does not storm, and a
hitless upgrade keeps every port's role and state while traffic crosses the loop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hitless.impact.switches import OvsSwitch
from tests.daemon.test_bonds import two_way_udp
from tests.daemon.test_stp import Roles, shape
from tests.daemon.test_stp import looped as stp_looped
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns

TIMERS = ("other_config:rstp-forward-delay=4", "other_config:rstp-max-age=6")


def table(show: str) -> dict[str, tuple[str, str]]:
    """Interface -> (role, state) from rstp/show."""
    out = {}
    for line in show.splitlines():
        f = line.split()
        if len(f) == 5 and f[1] in ("Root", "Designated", "Alternate", "Backup", "Disabled"):
            out[f[0]] = (f[1], f[2])
    return out


def _ready(ours: Roles, theirs: Roles, hosts: list[tuple[str, str]]) -> bool:
    states = sorted(s for _, s in [*ours.values(), *theirs.values()])
    return states == ["Discarding"] + ["Forwarding"] * 3 and hosts == [
        ("Designated", "Forwarding")] * 2  # fmt: skip


@contextmanager
def looped(
    sw: Sw, topology: Topology, net: str = "10.75.0"
) -> Iterator[tuple[Host, Host, OvsSwitch, list[str], list[str]]]:
    with stp_looped(sw, topology, kind="rstp", net=net, timers=TIMERS, read=table,
                    ready=_ready) as looped_:  # fmt: skip
        yield looped_


def test_rstp_breaks_a_loop_with_open_vswitch(started: Sw, topology: Topology) -> None:
    sw = started
    with looped(sw, topology) as (a, b, ovs, xs, ys):
        ours, theirs = sw.appctl("rstp/show").stdout, ovs.appctl("rstp/show")
        print(ours, "---- Open vSwitch ----\n", theirs, sep="")
        t_ours, t_theirs = table(ours), table(theirs)
        hitless_root = "This bridge is the root" in ours
        assert hitless_root != ("This bridge is the root" in theirs)
        root_t, other_t = (t_ours, t_theirs) if hitless_root else (t_theirs, t_ours)
        root_ends, other_ends = (xs, ys) if hitless_root else (ys, xs)
        assert [root_t[e] for e in root_ends] == [("Designated", "Forwarding")] * 2
        assert sorted(other_t[e] for e in other_ends) == [
            ("Alternate", "Discarding"), ("Root", "Forwarding")]  # fmt: skip
        assert t_ours[a.switch_port] == t_theirs[b.switch_port] == ("Designated", "Forwarding")
        # The same text apart from names, MACs and port numbering.
        names_o = {a.switch_port: "HOST", xs[0]: "L0", xs[1]: "L1"}
        names_t = {b.switch_port: "HOST", ys[0]: "L0", ys[1]: "L1"}
        skip = ("root-port", "root-path-cost", "This bridge", "HOST", "L0", "L1")

        def common(text: str, names: dict[str, str]) -> list[str]:
            return [ln for ln in shape(text, names).splitlines() if not any(k in ln for k in skip)]

        assert common(ours, names_o) == common(theirs, names_t)
        costs = sorted(ln.split()[3] for ln in (ours + theirs).splitlines()
                       if len(ln.split()) == 5 and ln.split()[2] in ("Forwarding", "Discarding"))  # fmt: skip
        assert costs == ["2000"] * 6
        # The database columns: the same keys as Open vSwitch's.
        br = sw.vsctl("--bare", "--columns=name", "find", "Bridge", "rstp_enable=true").stdout.strip()
        keys = lambda s: sorted(re.findall(r"(\w+)=", s))  # noqa: E731
        st = sw.get("Bridge", br, "rstp_status")
        assert keys(st) == keys(ovs.vsctl("get", "Bridge", "br0", "rstp_status")), st
        root_id = lambda s: re.search(r'rstp_root_id="([^"]+)"', s).group(1)  # type: ignore[union-attr]  # noqa: E731
        assert root_id(st) == root_id(ovs.vsctl("get", "Bridge", "br0", "rstp_status"))
        mine = sw.get("Port", xs[0], "rstp_status")
        assert keys(mine) == keys(ovs.vsctl("get", "Port", ys[0], "rstp_status")), mine
        assert keys(sw.get("Port", xs[0], "rstp_statistics")) == [
            "rstp_error_count", "rstp_rx_count", "rstp_tx_count", "rstp_uptime"]  # fmt: skip
        assert "hitless_unsupported" not in sw.get("Bridge", br, "status")

        # Traffic crosses; a broadcast does not circle the loop.
        assert wait_for(lambda: a.ping(b.addr, count=2), "ping across the tree")
        rx0 = b.counter("rx_packets")
        a.run(["ping", "-b", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "1", "10.75.0.255"],
              check=False)  # fmt: skip
        got = b.counter("rx_packets") - rx0
        print(f"5 broadcast pings: host b received {got} frames (BPDUs of its port included)")
        assert 5 <= got < 30


def test_upgrade_keeps_the_rapid_tree(started: Sw, topology: Topology) -> None:
    sw = started
    with looped(sw, topology, "10.75.1") as (a, b, _, _xs, _ys):
        before = table(sw.appctl("rstp/show").stdout)
        assert wait_for(lambda: a.ping(b.addr, count=1), "ping across the tree")
        pid = sw.daemon_pid
        lost_ab, lost_ba = two_way_udp(a, b, 9712, lambda: sw.hitless("upgrade"))
        after = table(sw.appctl("rstp/show").stdout)
        print(f"upgrade with RSTP: lost {lost_ab} a->b, {lost_ba} b->a of 4000; ports "
              f"before {before}, after {after}")  # fmt: skip
        assert sw.daemon_pid != pid
        assert after == before
        assert (lost_ab, lost_ba) == (0, 0)
