"""RSTP (Bridge.rstp_enable) between a hitless bridge and a real Open vSwitch 3.1 bridge
(netdev, in its own namespace) cabled by two veth pairs: a loop. Both run 802.1D-2004's
rapid spanning tree with the same timers; the tree converges with exactly one of the
four ports discarding, both print it the same way (``ovs-appctl rstp/show``,
Bridge/Port rstp_status, Port rstp_statistics keys), a broadcast does not storm, and a
hitless upgrade keeps every port's role and state while traffic crosses the loop."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hitless.impact.switches import OvsSwitch
from hitless.ofproto.rstp import F_FORWARDING, F_LEARNING, F_PROPOSAL
from tests.daemon.test_stp import Roles, shape
from tests.daemon.test_stp import looped as stp_looped
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.traffic import COLD, caught_in_traffic, must_catch, upgrade_under_udp
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


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate", COLD])
def test_upgrade_keeps_the_rapid_tree(started: Sw, topology: Topology, fault: str | None) -> None:
    """Port roles and states kept, and the UDP across the loop judged as every
    handoff's; a new process that stops reading for 100 ms, sends frames twice or
    starts cold must fail that."""
    sw = started
    with looped(sw, topology, "10.75.1") as (a, b, ovs, _xs, _ys):
        before = table(sw.appctl("rstp/show").stdout)
        assert wait_for(lambda: a.ping(b.addr, count=1), "ping across the tree")
        pid, theirs = sw.daemon_pid, ovs.daemon_pid()
        assert theirs is not None  # Open vSwitch forwards the traffic too: a relay
        problems, res = upgrade_under_udp(sw, [a, b], fault, port=9712, relays=[theirs])
        after = table(sw.appctl("rstp/show").stdout)
        print(f"upgrade with RSTP: {problems}; ports before {before}, after {after}")
        assert sw.daemon_pid != pid
        if caught_in_traffic(problems, fault, res):
            return
        with must_catch(fault):
            assert after == before
            assert not problems, problems


def test_rstp_root_and_an_open_vswitch_stp_bridge_in_a_loop(
    started: Sw, topology: Topology
) -> None:
    """hitless runs RSTP and is the root (priority 4096); Open vSwitch 3.1 runs 802.1D STP,
    which discards RST BPDUs. hitless's ports hear its configuration BPDUs and speak
    802.1D back (STP compatibility), so Open vSwitch learns the root and blocks one of
    its two links: no storm. Without it Open vSwitch stays its own root and forwards on
    both (a loop)."""
    from tests.daemon.test_bonds import cabled_to_a_namespace
    from tests.daemon.test_stp import TIMERS as STP_TIMERS
    from tests.daemon.test_stp import table as stp_table

    sw = started
    a, b, ns, xs, ys = cabled_to_a_namespace(topology, "10.75.4", "hl-ovsm")
    for h in (a, b):
        h.run(["ethtool", "-K", "eth0", "tx", "off"])
    ovs = OvsSwitch(netns=ns)
    try:
        ovs.start()
        ovs.vsctl("add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                  "stp_enable=true", *STP_TIMERS, "--", "add-port", "br0", b.switch_port,
                  "--", "add-port", "br0", ys[0], "--", "add-port", "br0", ys[1])  # fmt: skip
        br = topology.name("hr")
        sw.vsctl("add-br", br, "--", "set", "bridge", br, "rstp_enable=true", *TIMERS,
                 "other_config:rstp-priority=4096", "--", "add-port", br, a.switch_port,
                 "--", "add-port", br, xs[0], "--", "add-port", br, xs[1])  # fmt: skip

        def theirs() -> dict[str, tuple[str, str]]:
            return stp_table(ovs.appctl("stp/show"))

        def converged() -> bool:
            t, o = theirs(), table(sw.appctl("rstp/show").stdout)
            return (sorted(t.get(y, ("", ""))[1] for y in ys) == ["blocking", "forwarding"]
                    and [o.get(x) for x in xs] == [("Designated", "Forwarding")] * 2)  # fmt: skip

        assert wait_for(converged, "Open vSwitch's STP to block one link", 60)
        show = ovs.appctl("stp/show")
        print(sw.appctl("rstp/show").stdout, "---- Open vSwitch (STP) ----\n", show, sep="")
        assert "This bridge is the root" not in show
        assert wait_for(lambda: a.ping(b.addr, count=2), "ping across the tree")
        rx0 = b.counter("rx_packets")
        a.run(["ping", "-b", "-n", "-q", "-c", "5", "-i", "0.2", "-W", "1", "10.75.4.255"],
              check=False)  # fmt: skip
        got = b.counter("rx_packets") - rx0
        print(f"5 broadcast pings: host b received {got} frames (BPDUs of its port included)")
        assert 5 <= got < 30
    finally:
        ovs.close()


# A bridge that does not know the root yet, played by a host: every 0.3 s an RST BPDU
# from a designated port with a worse vector (priority 61440) and FLAGS; it writes the
# flags of every BPDU it hears to OUT ("seconds flags" lines). Arguments: FLAGS OUT. A
# send refused while its link is down (the switch's end moving into Open vSwitch's
# namespace: ENOBUFS, seen) is skipped; it used to end the script.
_PEER = r"""
import socket, struct, sys, time
flags, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(0.05)
mac = s.getsockname()[4]
bid = 0xF000 << 48 | int.from_bytes(mac, "big")
body = struct.pack("!HBBBQIQHHHHHB", 0, 2, 2, 3 << 2 | flags, bid, 0, bid, 0x8001, 0,
                   6 * 256, 2 * 256, 4 * 256, 0)
llc = b"\x42\x42\x03" + body
frame = (b"\x01\x80\xc2\x00\x00\x00" + mac + len(llc).to_bytes(2, "big") + llc).ljust(60, b"\0")
t0, nxt = time.monotonic(), 0.0
with open(out, "w", buffering=1) as f:
    while True:
        now = time.monotonic() - t0
        if now >= nxt:
            try:
                s.send(frame)
            except OSError:  # ENOBUFS while the link is down (its other end moving)
                pass
            nxt = now + 0.3
        try:
            data, addr = s.recvfrom(2048)
        except TimeoutError:
            continue
        if data[:6] == b"\x01\x80\xc2\x00\x00\x00" and data[6:12] != mac and addr[2] != 4:
            f.write(f"{now:.2f} {data[21]:02x}\n")
"""


def _port_states(
    show: Callable[[], str], ports: list[str], until: float
) -> dict[str, tuple[list[str], float]]:
    """The states each port goes through (rstp/show, polled) until Forwarding, and how
    long that took (seconds)."""
    seen: dict[str, list[str]] = {p: [] for p in ports}
    took = {p: float("inf") for p in ports}
    t0 = time.monotonic()
    while time.monotonic() - t0 < until and float("inf") in took.values():
        rows = table(show())
        for p in ports:
            row = rows.get(p)
            if row and (not seen[p] or seen[p][-1] != row[1]):
                seen[p].append(row[1])
            if row and row[1] == "Forwarding" and took[p] == float("inf"):
                took[p] = time.monotonic() - t0
        time.sleep(0.05)  # poll: an interval, not a synchronisation
    return {p: (seen[p], took[p]) for p in ports}


def _peers(topology: Topology, net: str, rundir: str) -> list[tuple[int, Host, Path, subprocess.Popen[str]]]:
    """Two scripted neighbours (flags learning|forwarding, and none), each on a host."""
    out = []
    for i, flags in enumerate((F_LEARNING | F_FORWARDING, 0)):
        h = topology.add_host(f"{net[-1]}{i}", f"{net}.{i + 1}/24")
        path = Path(rundir) / f"peer-{net}-{flags}.txt"
        proc = h.popen([sys.executable, "-c", _PEER, str(flags), str(path)])
        out.append((flags, h, path, proc))
    return out


def _heard(path: Path, proc: subprocess.Popen[str]) -> list[int]:
    """The flags of the BPDUs the scripted peer heard (at least 4); when it heard too few,
    the failure says whether the peer is still running, and what it wrote."""
    try:
        wait_for(lambda: len(path.read_text().split("\n")) > 4, "BPDUs at the scripted peer")
    except AssertionError as e:
        code = proc.poll()
        err = proc.stderr.read() if code is not None and proc.stderr is not None else ""
        raise AssertionError(
            f"{e}; peer exit code {code} stderr {err!r}; heard {path.read_text()!r}"
        ) from None
    return [int(ln.split()[1], 16) for ln in path.read_text().split("\n") if ln]


def test_a_dispute_as_open_vswitch(started: Sw, topology: Topology) -> None:
    """A designated port facing a bridge that has not learnt the root (its RST BPDUs say
    designated, with a worse root): hitless and Open vSwitch 3.1 side by side, the same
    scripted neighbours on each (one bridge, two ports), watched for 15 s. With the
    learning and forwarding flags set, a dispute: both keep the port from forwarding (it
    goes back to discarding whenever it would learn) and it keeps proposing, as 802.1Q
    and OVS's lib/rstp-state-machines.c (record_dispute sets "disputed") have it.
    Without the flags both propose and go through learning to forwarding."""
    from tests.daemon.test_rspan import ovs_bridge

    sw = started
    results: dict[tuple[str, int], tuple[list[str], float, list[int]]] = {}
    mine = _peers(topology, "10.75.6", str(sw.rundir.path))
    br = topology.name("hd")
    sw.vsctl("add-br", br, *(x for _, h, _, _ in mine for x in ("--", "add-port", br, h.switch_port)))
    sw.vsctl("set", "bridge", br, "rstp_enable=true", *TIMERS)
    got = _port_states(lambda: sw.appctl("rstp/show", br).stdout,
                       [h.switch_port for _, h, _, _ in mine], 15)  # fmt: skip
    for flags, h, path, proc in mine:
        results[("hitless", flags)] = (*got[h.switch_port], _heard(path, proc))
        h.kill_procs()
    theirs = _peers(topology, "10.75.7", str(sw.rundir.path))
    with ovs_bridge(topology, [h.switch_port for _, h, _, _ in theirs]) as ovs:
        ovs.vsctl("set", "bridge", "br0", "rstp_enable=true", *TIMERS)
        got = _port_states(lambda: ovs.appctl("rstp/show"),
                           [h.switch_port for _, h, _, _ in theirs], 15)  # fmt: skip
        for flags, h, path, proc in theirs:
            results[("ovs", flags)] = (*got[h.switch_port], _heard(path, proc))
            h.kill_procs()
    for (who, flags), (states, took, heard) in sorted(results.items()):
        print(f"{who:7} peer flags {flags:#04x}: states {states}, forwarding after {took:.1f} s, "
              f"BPDU flags heard {[f'{f:02x}' for f in heard[:10]]}")  # fmt: skip
    for who in ("hitless", "ovs"):
        states, _, heard = results[(who, F_LEARNING | F_FORWARDING)]
        assert states and "Forwarding" not in states, (who, states)
        assert all(f & F_PROPOSAL and not f & F_FORWARDING for f in heard), (who, heard)
        states, _, heard = results[(who, 0)]
        assert states[-1] == "Forwarding" and "Learning" in states, (who, states)
        assert any(f & F_PROPOSAL for f in heard), (who, heard)
