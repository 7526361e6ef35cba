"""Established connections behind a stateful firewall, across an operation, with real
traffic between namespace hosts, hitless and Open vSwitch side by side (both netdev,
the same stock ovs-ofctl rules).

The firewall: host a is inside, host b outside; IP goes through the connection tracker
(zone 9); inside may open connections, outside may only answer (``+trk+new`` from b is
dropped). a opens two connections to b and then only listens: a UDP "subscription" (b
streams 500 datagrams/s back) and a TCP connection on which b pushes 8-byte records
every 4 ms. Every packet b sends needs the connection state: after the switch forgot
it, each one is ``+new`` from outside and dropped, and a never sends anything that
would create it again.

Measured: datagrams lost, TCP records delivered and how the connection ended, and the
packets the drop rule counted. hitless upgrade: 0 lost, the TCP connection completes,
the drop rule counts 0. Open vSwitch restarted the way ovs-ctl does (flows saved and
restored, flow-restore-wait): its userspace conntrack is gone, the rest of b's stream
is dropped by the firewall and the TCP connection never completes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.daemon.rundir import wait_exit
from hitless.impact.run import pick_port
from hitless.impact.switches import BRIDGE, HitlessSwitch, OvsSwitch
from hitless.impact.topology import Topology
from tests.handoff.test_netdev_upgrade import bridge_of, keep_idle_flows, netdev_switch
from tests.netns import Topology as TestTopology
from tests.switch import Sw
from tests.traffic import BREAKS, CLASSES, bound_of, handoff_under_traffic, judge, violations
from tests.wait import wait_for

pytestmark = pytest.mark.netns

# Seconds of traffic; the operation starts at AT and must end inside it (a hitless upgrade
# takes 5-10 s of wall time on the loaded test machine, most of it the new process's
# start-up before the pre-copy: the freeze must fall inside the traffic).
DURATION = 20.0
AT = 1.5
UDP_PORT, TCP_PORT = 7301, 7302  # what a talks to (on b, or on the VIP)
SVC_UDP, SVC_TCP = 7401, 7402  # b's service ports behind the VIP (DNAT)
VIP_OF = "VIP"  # replaced by the topology's VIP address

# The generators run DURATION seconds and on while the operation lasts (a stop file the
# test creates 2 s after it returned), at most LONGEST seconds more: an operation on a
# loaded machine may outlast the planned traffic, and must still end inside it.
LONGEST = 90.0
AFTER_OP = 2.0

_SERVER = r"""
import os, socket, struct, sys, threading, time
dur, uport, tport, stop = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def going():  # at least dur seconds, and on until the test says the operation is over
    el = time.monotonic() - start
    return el < dur or (not os.path.exists(stop) and el < dur + LONGEST)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("", uport))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("", tport)); t.listen(1)
print("ready", flush=True)
_, peer = u.recvfrom(100)
c, _ = t.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
# A connection the switch forgot (its firewall drops what follows) fills the send buffer:
# a sendall blocked 10 s ends the stream with that error instead of hanging the server.
c.settimeout(10.0)
start = time.monotonic(); res = {}
def push():
    n, err = 0, ""
    while going():
        n += 1
        try:
            c.sendall(struct.pack("!Q", n))
        except OSError as e:
            err = repr(e); break
        time.sleep(0.004)  # pacing
    try:
        c.shutdown(socket.SHUT_WR)
    except OSError as e:
        err = err or repr(e)
    res["tcp"] = (n, err or "ok")
th = threading.Thread(target=push); th.start()
n = 0
while going():
    n += 1
    u.sendto(struct.pack("!I", n), peer)
    time.sleep(0.002)  # pacing
th.join()
print("sent", n, res["tcp"][0], f"{time.monotonic() - start:.3f}", f"{start:.6f}", res["tcp"][1],
      flush=True)
time.sleep(15)  # deliberate: the sockets stay open until the test kills the server
"""

_SERVER = _SERVER.replace("LONGEST", repr(LONGEST))

_CLIENT = r"""
import os, selectors, socket, struct, sys, time
b, dur, uport, tport, stop = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
u.sendto(b"subscribe", (b, uport)); u.setblocking(False)
t = socket.create_connection((b, tport), timeout=5); t.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(u, selectors.EVENT_READ); sel.register(t, selectors.EVENT_READ)
seen = set(); dups = 0; data = b""; end = "timeout"; start = time.monotonic(); deadline = None
while deadline is None or time.monotonic() < deadline:
    if deadline is None and time.monotonic() - start > dur and (
            os.path.exists(stop) or time.monotonic() - start > dur + LONGEST):
        deadline = time.monotonic() + 8  # what the server sends until then, in flight
    for key, _ in sel.select(0.1):
        if key.fileobj is u:
            while True:
                try:
                    d = u.recv(100)
                except BlockingIOError:
                    break
                n = struct.unpack("!I", d)[0]
                dups += n in seen
                seen.add(n)
        else:
            try:
                chunk = t.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                end = "error " + repr(e); sel.unregister(t)
                continue
            if chunk:
                data += chunk
            else:
                end = "eof"; sel.unregister(t)
print("got", len(seen), len(data) // 8, dups, end, flush=True)
"""
_CLIENT = _CLIENT.replace("LONGEST", repr(LONGEST))


def _rules(a: int, b: int, dnat: str | None = None) -> list[str]:
    """The firewall; with ``dnat`` (b's address), new connections from a to the VIP's
    ports are translated to b's service ports (ct(nat) on every packet applies it)."""
    nat = ",nat" if dnat else ""
    rules = [
        "table=0,priority=100,arp,actions=NORMAL",
        "table=0,priority=90,ipv6,actions=drop",
        f"table=0,priority=10,ip,actions=ct(table=1,zone=9{nat})",
        f"table=1,priority=10,ct_state=+trk+new,ip,in_port={a},actions=ct(commit,zone=9),output:{b}",
        f"table=1,priority=10,ct_state=+trk+est,ip,in_port={a},actions=output:{b}",
        f"table=1,priority=10,ct_state=+trk+est,ip,in_port={b},actions=output:{a}",
        f"table=1,priority=5,ct_state=+trk+new,ip,in_port={b},actions=drop",
        "table=1,priority=1,actions=drop",
    ]
    if dnat:
        for proto, vport, port in (("udp", UDP_PORT, SVC_UDP), ("tcp", TCP_PORT, SVC_TCP)):
            rules.append(
                f"table=1,priority=20,ct_state=+trk+new,{proto},in_port={a},nw_dst={VIP_OF},"
                f"tp_dst={vport},actions=ct(commit,zone=9,nat(dst={dnat}:{port})),output:{b}"
            )
    return rules


def _conntrack(sw: HitlessSwitch | OvsSwitch) -> list[str]:
    """dpctl/dump-conntrack lines of zone 9 (the firewall's) without the TCP state (the
    stream may end while the operation runs), sorted."""
    text = sw.appctl("dpctl/dump-conntrack")
    return sorted(ln.split(",protoinfo=")[0] for ln in text.splitlines() if "zone=9" in ln)


def _drops(sw: HitlessSwitch | OvsSwitch, b: int) -> int:
    """Packets the "+new from outside" rule dropped."""
    for line in sw.ofctl("dump-flows", "table=1").splitlines():
        if f"in_port={b}" in line and "+new" in line and "actions=drop" in line:
            m = re.search(r"n_packets=(\d+)", line)
            assert m
            return int(m.group(1))
    raise AssertionError("no drop rule")


def _accepts(path: Path) -> bool:
    """Whether a unix stream socket at ``path`` accepts a connection now."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True


def _crash_restart(sw: HitlessSwitch | OvsSwitch, rules: list[str], dead: float) -> None:
    """kill -9 of the switch daemon, ``dead`` seconds with no daemon, then a new one whose
    rules come back from their owner (as a controller re-pushes them; ovs-ctl's order:
    flow-restore-wait set before the start, the rules added, the flag cleared)."""
    pid = sw.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_exit(pid, 10)
    sw.vsctl("--no-wait", "set", "Open_vSwitch", ".", "other_config:flow-restore-wait=true")
    time.sleep(dead)  # deliberate: the time with no daemon at all
    if isinstance(sw, HitlessSwitch):
        sw.hitless("start")
    else:
        sw._p("ovs-vswitchd.pid").unlink(missing_ok=True)
        sw._start_vswitchd()
    mgmt = sw.rundir / f"{BRIDGE}.mgmt"
    # The dead daemon's socket file stays behind (as Open vSwitch's does): wait until
    # the new daemon accepts on it, not until the file exists (CI: Connection refused).
    wait_for(lambda: _accepts(mgmt), "the new daemon's bridge management socket", 60)
    for r in rules:
        sw.ofctl("add-flow", r)
    sw.vsctl("remove", "Open_vSwitch", ".", "other_config", "flow-restore-wait")


def run_side(
    kind: str,
    op: str,
    dnat: bool = False,
    downgrade_to: Path | None = None,
    fault: str | None = None,
    datapath: str = "netdev",
) -> dict[str, object]:
    """One side's run; ``fault``: armed in hitless's new process (HITLESS_FAULT in the
    operation's environment); ``op`` "kill9": ``_crash_restart``; hitless on ``datapath``."""
    with Topology(2) as topo:
        sw: HitlessSwitch | OvsSwitch = (
            HitlessSwitch(netns=topo.switch_ns, downgrade_to=downgrade_to)
            if kind == "hitless"
            else OvsSwitch(netns=topo.switch_ns)
        )
        try:
            sw.datapath_type = datapath if kind == "hitless" else "netdev"
            sw.start()
            sw.add_bridge(topo.ports)
            a, b = topo.hosts
            pa, pb = sw.ofport(a.port), sw.ofport(b.port)
            sw.ofctl("del-flows")
            b_ip = b.ip.split("/")[0]
            target = b_ip
            if dnat:  # the service's address is .100, which a reaches through b's MAC
                target = b_ip.rsplit(".", 1)[0] + ".100"
                a.run("ip", "neigh", "replace", target, "lladdr", b.mac, "dev", "eth0")
            rules = [r.replace(VIP_OF, target) for r in _rules(pa, pb, b_ip if dnat else None)]
            for r in rules:
                sw.ofctl("add-flow", r)
            ports = (SVC_UDP, SVC_TCP) if dnat else (UDP_PORT, TCP_PORT)
            stop = Path(tempfile.mkdtemp(prefix="hl-ct-")) / "stop"
            timer: threading.Timer | None = None
            server = subprocess.Popen(
                ["ip", "netns", "exec", b.ns, sys.executable, "-c", _SERVER, str(DURATION),
                 *map(str, ports), str(stop)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            )  # fmt: skip
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                client = subprocess.Popen(
                    ["ip", "netns", "exec", a.ns, sys.executable, "-c", _CLIENT, target, str(DURATION),
                     str(UDP_PORT), str(TCP_PORT), str(stop)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )  # fmt: skip
                drops_before = _drops(sw, pb)
                # both connections tracked first (a loaded machine may start the client late:
                # an empty table here once made the Open vSwitch side's check meaningless),
                # and the traffic going: the server's clock starts once the TCP connection
                # is accepted; at load 33 the client's interpreter started more than AT
                # after it was launched, and an operation begun at once (AT after the
                # launch) began before the traffic's clock, 27-52 s operations then ending
                # less than 1 s before the traffic did.
                wait_for(lambda: len(_conntrack(sw)) >= 2, "both connections tracked", 60)
                time.sleep(AT)  # deliberate, not a synchronisation: the operation's place in the traffic
                table_before = _conntrack(sw)
                t0 = time.monotonic()
                if fault:
                    os.environ["HITLESS_FAULT"] = fault
                try:
                    if op == "kill9":
                        _crash_restart(sw, rules, 2.0)
                    else:
                        sw.operation(op)()
                finally:
                    os.environ.pop("HITLESS_FAULT", None)
                t1 = time.monotonic()
                timer = threading.Timer(AFTER_OP, stop.touch)  # traffic goes on after it
                timer.start()
                table_after = _conntrack(sw)
                out, err = client.communicate(timeout=DURATION + LONGEST + 30)
                sent = server.stdout.readline().split()
            finally:
                if server.poll() is None:
                    server.kill()
                server.communicate(timeout=10)
                if timer is not None:
                    timer.cancel()
                shutil.rmtree(stop.parent, ignore_errors=True)
            got = out.split()
            assert got[0] == "got", out + err
            assert sent[0] == "sent", sent
            n_udp, n_tcp, ran, start = int(sent[1]), int(sent[2]), float(sent[3]), float(sent[4])
            return {
                "udp_sent": n_udp,
                "udp_lost": n_udp - int(got[1]),
                "tcp_sent": n_tcp,
                "tcp_got": int(got[2]),
                "udp_dups": int(got[3]),
                "tcp_end": " ".join(got[4:]),
                "drops": _drops(sw, pb) - drops_before,
                "conns_before": table_before,
                "conns_kept": sorted(set(table_before) & set(table_after)),
                "op_seconds": round(t1 - t0, 3),
                # the operation's start and end, in seconds of the server's traffic (the
                # same CLOCK_MONOTONIC in every namespace)
                "op_in_traffic": (round(t0 - start, 3), round(t1 - start, 3)),
                "traffic_seconds": ran,
                "tcp_sender": " ".join(sent[5:]),
                "report": getattr(sw, "last_report", None),
            }
        finally:
            sw.close()


@pytest.mark.parametrize("dnat", [False, True], ids=["firewall", "firewall+dnat"])
def test_upgrade_keeps_connections_behind_a_stateful_firewall_where_ovs_restart_drops_them(
    dnat: bool,
) -> None:
    ours = run_side("hitless", "upgrade", dnat)
    theirs = run_side("ovs", "flow-restore", dnat)
    print(f"\nhitless upgrade:           {ours}\nOpen vSwitch flow-restore: {theirs}")
    assert_kept_where_ovs_forgets(ours, theirs)


@pytest.mark.parametrize("fault", ["duplicate", "flush-after-adopt"])
def test_the_side_by_side_check_catches_a_new_process_that_breaks_the_claim(fault: str) -> None:
    """The hitless side of the test above with a fault armed in the new process: its
    own generator must see it (datagrams delivered twice; connections forgotten and b's
    answers dropped as new from outside). A blackout is the shared-traffic test's to
    catch (below): this generator does not time the datagrams."""
    ours = run_side("hitless", "upgrade", fault=fault)
    print(f"\nhitless upgrade with {fault}: {ours}")
    if fault == "duplicate":
        assert ours["udp_dups"] > 0, f"{fault} went unnoticed: {ours}"
    else:
        forgot = ours["drops"] > 0 or ours["conns_kept"] != ours["conns_before"]  # type: ignore[operator]
        assert forgot, f"{fault} went unnoticed: {ours}"


def assert_inside_the_traffic(side: dict[str, object]) -> None:
    """The whole operation (its freeze included) lay inside the traffic, with at least
    a second of traffic after it, as measured (not as planned)."""
    began, ended = side["op_in_traffic"]  # type: ignore[misc]
    assert began > 0 and ended < side["traffic_seconds"] - 1, side  # type: ignore[operator]


def assert_kept_where_ovs_forgets(ours: dict[str, object], theirs: dict[str, object]) -> None:
    for side in (ours, theirs):  # the whole operation, freeze included, inside the traffic
        assert_inside_the_traffic(side)
    assert ours["udp_lost"] == 0 and ours["udp_dups"] == 0, ours
    assert ours["tcp_got"] == ours["tcp_sent"] and ours["tcp_end"] == "eof", ours
    assert ours["drops"] == 0, ours
    # dpctl/dump-conntrack: both connections, the same lines before and after.
    assert len(ours["conns_before"]) == 2 and ours["conns_kept"] == ours["conns_before"], ours  # type: ignore[arg-type]
    # Open vSwitch forgot every connection: b's traffic is +new from outside from then on.
    assert theirs["drops"] > 0 and theirs["tcp_end"] != "eof", theirs
    assert theirs["udp_lost"] > theirs["udp_sent"] // 3, theirs  # type: ignore[operator]
    assert len(theirs["conns_before"]) == 2 and not theirs["conns_kept"], theirs  # type: ignore[arg-type]


# The newest previous build with connection tracking (the end of the session that added
# it); the upgrade matrix's previous_versions.txt builds all predate conntrack.
CT_BUILD = "28294a8"


def test_downgrade_keeps_connections_behind_a_stateful_firewall_where_ovs_restart_drops_them() -> (
    None
):
    """``hitless downgrade`` to a previous build (one that has conntrack) under the same
    firewall and DNAT traffic, side by side with Open vSwitch's ovs-ctl restart in the
    same run: the connections are carried down as they are carried up."""
    from tests.upgrade.builds import build

    old = build(CT_BUILD)
    ours = run_side("hitless", "downgrade", True, downgrade_to=old.vswitchd)
    theirs = run_side("ovs", "flow-restore", True)
    print(f"\nhitless downgrade to {CT_BUILD}: {ours}\nOpen vSwitch flow-restore: {theirs}")
    assert_kept_where_ovs_forgets(ours, theirs)


# ---------------------------------------------------------------------------------
# The same firewall under the shared traffic and the shared handoff assertion


def _firewall_for_shared_traffic(a: int, b: int, port: int) -> list[str]:
    """``_rules`` plus one hole: the shared traffic's UDP stream from b to a (``port`` + 1,
    ``hitless.impact.run``) may open a connection from outside. Everything else b sends
    (the TCP stream's echoes, the answers to new connections) passes only as part of a
    connection a opened: after a conntrack flush it is "+new from outside" and dropped."""
    return [
        *_rules(a, b),
        f"table=1,priority=20,ct_state=+trk+new,udp,in_port={b},tp_dst={port + 1},"
        f"actions=ct(commit,zone=9),output:{a}",
    ]


def _from_b(sw: Sw, br: str, b: int) -> tuple[int, int]:
    """(packets of b's that the firewall let through: its established connections and the
    UDP stream's hole, packets the "+new from outside" rule dropped). b's UDP stream stays
    "+new" (a never answers it), so it passes through the hole each time."""
    passed = drops = 0
    rules = 0
    for line in sw.ofctl(br, "dump-flows", "table=1").splitlines():
        m = re.search(r"n_packets=(\d+)", line)
        if m is None or f"in_port={b}" not in line:
            continue
        rules += 1
        if "actions=drop" in line:
            drops += int(m.group(1))
        else:
            passed += int(m.group(1))
    assert rules == 3, "firewall rules missing"
    return passed, drops


@pytest.mark.parametrize("fault", [None, *BREAKS])
def test_upgrade_behind_a_stateful_firewall_keeps_the_handoff_claim(
    sw: Sw, topology: TestTopology, fault: str | None
) -> None:
    """The firewall above with the traffic of every upgrade test (tests/traffic.py), on a
    netdev bridge: the shared assertion (nothing lost or doubled, the TCP stream and
    every new connection through, the switch's hold within the bound), the connection
    table kept (the long-lived connections' entries, the same before and after), nothing
    of b's dropped as "+new from outside", and the firewall's rules for what b may send
    counted at least what came back through them. Each fault of ``BREAKS`` armed in the new
    process must be caught: ``flush-after-adopt`` forgets connections and counters."""
    a, b = netdev_switch(sw, topology)
    keep_idle_flows(sw)
    br = bridge_of(topology)
    pa, pb = (int(sw.get("Interface", h.switch_port, "ofport")) for h in (a, b))
    port = pick_port()
    sw.ofctl(br, "del-flows")
    for r in _firewall_for_shared_traffic(pa, pb, port):
        sw.ofctl(br, "add-flow", r)
    assert a.ping(b.addr, count=2, interval=0.1)  # a opens: b's answers are established
    passed0, drops0 = _from_b(sw, br, pb)
    classes = ("udp",) if fault == "flush-after-adopt" else CLASSES
    report, res = handoff_under_traffic(sw, [a, b], "upgrade", fault=fault, port=port,
                                        classes=classes)  # fmt: skip
    assert report["ok"], report
    passed1, drops1 = _from_b(sw, br, pb)
    back = sum(c.received for c in res.classes if c.kind == "udp" and c.name.startswith("udp b"))
    problems = violations(res, bound_of([report]))
    if drops1 != drops0:
        problems.append(f"conntrack: {drops1 - drops0} of b's packets dropped as new from outside")
    if passed1 < passed0 + back:
        problems.append(
            f"firewall counters: {passed1} of b's passed < {passed0} before + {back} delivered"
        )
    judge(problems, fault, res)


# A release with the ebpf datapath that identifies its BPF program by the hash of its C
# source (provider.program_id) but was installed without that source (every build before state format 7).
NO_BPF_SOURCE_BUILD = "b74b2c3"

# One TCP connection that stays open and silent: b accepts it (on PORT, after saying
# "ready"), a opens it and says "connected"; both hold it until their stdin closes.
_HOLD = r"""
import socket, sys
if sys.argv[1] == "accept":
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("", int(sys.argv[2]))); ls.listen(1); print("ready", flush=True)
    c, _ = ls.accept()
else:
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=30)
    print("connected", flush=True)
sys.stdin.read()
c.close()
"""


@contextlib.contextmanager
def _idle_tcp(a_ns: str, b_ns: str, b_ip: str, port: int) -> Iterator[None]:
    """An established TCP connection from a to b through the switch, idle while this
    holds it (a tracked one lasts a day: the firewall's ICMP entries only 30 s)."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for ns, args in ((b_ns, ["accept", str(port)]), (a_ns, ["open", b_ip, str(port)])):
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c", _HOLD, *args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
            ))  # fmt: skip
            assert procs[-1].stdout is not None
            assert procs[-1].stdout.readline().strip() in ("ready", "connected"), args
        yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)


def test_ebpf_downgrade_to_a_build_without_its_bpf_source_is_refused_before_anything_changes() -> (
    None
):
    """Such a build would crash adopting the running program (seen: a downgrade of an ebpf
    switch to b74b2c3). hitless downgrade asks the target's installation first, refuses
    with a message that names the cause and the way out, and the running daemon goes on
    serving as before (same process, the firewall's connections still
    tracked: an idle TCP connection's, which nothing would track again after a flush;
    not the first ping's, whose 30 s a refused downgrade at load 23 outlasted); hitless
    impact refuses the same target before measuring anything."""
    from hitless.impact.builds import build
    from tests.impact.test_cli import impact

    old = build(NO_BPF_SOURCE_BUILD)
    with Topology(2) as topo:
        sw = HitlessSwitch(netns=topo.switch_ns)
        try:
            sw.datapath_type = "ebpf"
            sw.start()
            sw.add_bridge(topo.ports)
            a, b = topo.hosts
            pa, pb = sw.ofport(a.port), sw.ofport(b.port)
            sw.ofctl("del-flows")
            for r in _rules(pa, pb):
                sw.ofctl("add-flow", r)
            b_ip = b.ip.split("/")[0]
            assert a.ping(b_ip, count=3)
            with _idle_tcp(a.ns, b.ns, b_ip, pick_port()):
                table = [e for e in _conntrack(sw) if e.startswith("tcp,")]
                assert len(table) == 1, _conntrack(sw)  # the firewall tracks it
                pid = sw.daemon_pid()
                exe = sw.bin / "hitless"
                t0 = time.monotonic()
                r = subprocess.run(
                    ["ip", "netns", "exec", topo.switch_ns, str(exe), "downgrade", "--rundir",
                     str(sw.rundir), "--to", str(old.vswitchd), "--json"],
                    capture_output=True, text=True, timeout=300,
                )  # fmt: skip
                took = time.monotonic() - t0
                print(f"the refused downgrade took {took:.1f} s")
                assert r.returncode == 1, r.stdout + r.stderr
                report = json.loads(r.stdout)
                assert not report["ok"]
                assert "lacks the BPF program source" in report["reason"], report
                assert "state format 7 or later" in report["reason"], report
                assert sw.daemon_pid() == pid
                assert a.ping(b_ip, count=3)
                # the idle connection is still tracked (silent: nothing made it again)
                assert set(table) <= set(_conntrack(sw)), (table, _conntrack(sw), took)
        finally:
            sw.close()
    r2 = impact("--datapath", "ebpf", "--ops", "downgrade", "--downgrade-to", NO_BPF_SOURCE_BUILD,
                "--duration", "2", timeout=600)  # fmt: skip
    assert r2.returncode == 1, r2.stdout + r2.stderr
    text = " ".join(r2.stdout.split())
    assert "lacks the BPF program source" in text and "state format 7 or later" in text, r2.stdout
    assert "run: suffix" not in r2.stdout  # refused before building anything
