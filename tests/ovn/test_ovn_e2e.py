"""OVN end to end: Debian's ovn-northd and ovn-controller 23.03 drive a hitless
integration bridge, side by side with real Open vSwitch 3.1 given the same northbound
configuration, with real hosts in namespaces (netdev datapath, the switch in its own
namespace: hitless.impact.topology).

The logical network: one logical switch, two logical ports bound to hosts a and b
(``external_ids:iface-id`` on their veth ports), a TCP load balancer (VIP:80 -> b:8080:
a select group whose bucket is ``ct(commit,nat(dst=...))``, hairpin detection with
``learn``) and a stateful ACL policy: a may open
anything to b (``allow-related``); towards a only b's UDP to one port is allowed, the
rest is dropped, so what a receives from b is the other half of a connection a opened
(``ct_state=+est``), found in the connection tracker (OVN sends every IP packet through
``ct(zone=reg13)`` and commits with ``ct(commit,exec(set_field..ct_mark, move..ct_label))``).

Checked:
* the same probes (ping, TCP connect, UDP each way) pass and are dropped on both switches,
  as the policy says; ovn-controller received no OpenFlow error from either, and its
  flow table dumps the same on both (cookies, which are southbound row ids, and the
  hosts' MACs aside);
* ``hitless upgrade`` under sequenced traffic (UDP each way, a TCP stream and new TCP
  connections a->b, the replies through +est): no datagram or stream record lost or
  doubled, the TCP stream's tracked connection is the same entry after, and
  ovn-controller keeps its OpenFlow connections (no reconnect in its log) and its flows
  (rule counters go on counting: a reinstall would have reset them). Then the shared
  handoff assertion (tests/traffic.py: lost, twice, held and delayed beyond the freeze
  and the switch's waits for a CPU), which must catch a ``blackout:100`` and a
  ``duplicate`` armed in the new process. (It once had the stalls of the same traffic
  without an operation added to its bound, from when each new connection took OVN's
  pipeline in the slow path; with the CPU waits excused that run held 5-11 ms beyond
  them at load 23-26, and the upgrade 17-22 ms.)
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from hitless.impact.analysis import ImpactResult, Phase
from hitless.impact.bounds import Bound, summary, violations
from hitless.impact.cpuwait import Sampler, pidfile_reader
from hitless.impact.run import Rates, measure
from hitless.impact.switches import HitlessSwitch, OvsSwitch
from hitless.impact.topology import Host, Topology
from tests.ovn.ovn import Ovn, available
from tests.traffic import (
    bound_of,
    fault_env,
    judge,
    what_the_switch_did,
    with_cpu_waits,
    with_fault_windows,
)
from tests.wait import wait_for

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not available(), reason="needs Debian's ovn-central and ovn-host"),
]

PORT = 7100  # measure()'s base port: UDP a->b PORT, b->a PORT+1, TCP stream +2, connects +3
UDP_TO_A = PORT + 1  # the one thing b may start towards a
ACLS = [
    ("to-lport", "1002", 'outport == "lpb" && ip4', "allow-related"),
    ("to-lport", "1002", f'outport == "lpa" && udp.dst == {UDP_TO_A}', "allow-related"),
    ("to-lport", "1001", 'outport == "lpa" && ip4', "drop"),
]
CLASSES = ("udp", "tcp-stream", "tcp-connect")
RATES = Rates(udp_pps=1000, tcp_interval=0.01, connect_interval=0.02)
# (probe, expected): what the policy lets through
EXPECTED = {
    "ping a->b": True,
    "ping b->a": False,
    "tcp a->b:5001": True,
    "tcp b->a:5001": False,
    f"udp b->a:{UDP_TO_A}": True,
    "udp b->a:7002": False,
    "udp a->b:7002": True,
    "tcp a->VIP:80 (b:8080)": True,
}
VIP_PORT, BACKEND_PORT = 80, 8080

_TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1]))); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); c.sendall(b"hello"); c.close()
"""
_TCP_CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("ok" if c.recv(5) == b"hello" else "short")
except OSError as e:
    print("fail", e)
"""
# The server waits for a datagram for as long as the client runs (its interpreter may
# start seconds late at load), then 3 s more once told on stdin that the client is done.
_UDP_SERVER = """
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("", int(sys.argv[1])))
print("ready", flush=True)
end = None
while end is None or time.monotonic() < end:
    r, _, _ = select.select([s, sys.stdin], [], [], None if end is None else end - time.monotonic())
    if s in r:
        print("got")
        break
    if sys.stdin in r and end is None:
        sys.stdin.readline()
        end = time.monotonic() + 3
else:
    print("none")
"""
_UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"x", (sys.argv[1], int(sys.argv[2]))); time.sleep(0.1)  # pacing
"""


@dataclass
class Side:
    kind: str
    sw: HitlessSwitch | OvsSwitch
    ovn: Ovn
    bridge: str
    a: Host
    b: Host

    def ofctl(self, *args: str) -> str:
        mgmt = f"unix:{self.sw.rundir / (self.bridge + '.mgmt')}"
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", args[0], mgmt, *args[1:]],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout


def _ip(h: Host) -> str:
    return h.ip.split("/")[0]


def _vip(h: Host) -> str:
    """The load balancer's address, on the hosts' subnet."""
    return _ip(h).rsplit(".", 1)[0] + ".100"


def _py(h: Host, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["ip", "netns", "exec", h.ns, sys.executable, "-c", script, *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _served(server: subprocess.Popen[str], client: subprocess.Popen[str]) -> str:
    try:
        client.communicate(timeout=60)
        out, _ = server.communicate("sent\n", timeout=20)
        return out
    finally:
        for p in (client, server):
            if p.poll() is None:
                p.kill()
                p.communicate()


def tcp_ok(
    src: Host, dst: Host, port: int, to: str | None = None, port_to: int | None = None
) -> bool:
    """A connection from src to dst's ``port`` (addressed to ``to``:``port_to``, a VIP,
    if given) carries dst's greeting back."""
    server = _py(dst, _TCP_SERVER, str(port))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    client = _py(src, _TCP_CLIENT, to or _ip(dst), str(port_to or port))
    out, _ = client.communicate(timeout=20)
    server.kill()
    server.communicate()
    return out.strip() == "ok"


def udp_ok(src: Host, dst: Host, port: int) -> bool:
    server = _py(dst, _UDP_SERVER, str(port))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    return "got" in _served(server, _py(src, _UDP_CLIENT, _ip(dst), str(port)))


def probes(s: Side) -> dict[str, bool]:
    a, b = s.a, s.b
    return {
        "ping a->b": a.ping(_ip(b), count=3),
        "ping b->a": b.ping(_ip(a), count=3),
        "tcp a->b:5001": tcp_ok(a, b, 5001),
        "tcp b->a:5001": tcp_ok(b, a, 5001),
        f"udp b->a:{UDP_TO_A}": udp_ok(b, a, UDP_TO_A),
        "udp b->a:7002": udp_ok(b, a, 7002),
        "udp a->b:7002": udp_ok(a, b, 7002),
        "tcp a->VIP:80 (b:8080)": tcp_ok(a, b, BACKEND_PORT, to=_vip(a), port_to=VIP_PORT),
    }


Configure = Callable[[Ovn, Host, Host], tuple[Host, Host]]


@contextmanager
def deployment(kind: str, net: int, configure: Configure, prefix: str = "bri") -> Iterator[Side]:
    """A switch of ``kind`` in its own namespace with hosts a and b and an OVN control
    plane whose northbound ``configure(ovn, a, b)`` fills (it returns the hosts, as it
    may have readdressed them), logical ports ``lpa``/``lpb`` bound to the hosts' ports,
    both up and ovn-controller's flows in."""
    with Topology(2, net=net) as topo:
        sw: HitlessSwitch | OvsSwitch = (
            HitlessSwitch(netns=topo.switch_ns) if kind == "hitless"
            else OvsSwitch(netns=topo.switch_ns)
        )  # fmt: skip
        bridge = f"{prefix}{topo.suffix}"
        ovn = Ovn(sw.rundir, sw.rundir / "db.sock", bridge)
        try:
            sw.start()
            sw.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
                     "fail_mode=secure", "other_config:disable-in-band=true")  # fmt: skip
            ovn.start_central()
            a, b = configure(ovn, *topo.hosts)
            ovn.start_controller(["ovs-vsctl", f"--db=unix:{sw.rundir / 'db.sock'}"])
            for h, lsp in ((a, "lpa"), (b, "lpb")):
                sw.vsctl("add-port", bridge, h.port, "--", "set", "interface", h.port,
                         f"external_ids:iface-id={lsp}")  # fmt: skip
            try:
                wait_for(lambda: ovn.ports_up("lpa", "lpb"), "both logical ports up", 60)
            except AssertionError:
                print(ovn.controller_log()[-4000:])
                raise
            ovn.nbctl("--wait=hv", "sync")
            yield Side(kind, sw, ovn, bridge, a, b)
        finally:
            ovn.close()
            sw.close()


def _logical_switch(ovn: Ovn, a: Host, b: Host) -> tuple[Host, Host]:
    """One logical switch, the ACLs above and the load balancer."""
    ovn.nbctl("ls-add", "sw0")
    for h, lsp in ((a, "lpa"), (b, "lpb")):
        ovn.nbctl("lsp-add", "sw0", lsp, "--", "lsp-set-addresses", lsp, f"{h.mac} {_ip(h)}")
    for direction, prio, match, verdict in ACLS:
        ovn.nbctl("acl-add", "sw0", direction, prio, match, verdict)
    # A load balancer: the VIP's port 80 is b's 8080 (a reaches the VIP through b's MAC:
    # a logical switch does not answer ARP for it)
    ovn.nbctl("lb-add", "lb0", f"{_vip(a)}:{VIP_PORT}", f"{_ip(b)}:{BACKEND_PORT}", "tcp")
    ovn.nbctl("ls-lb-add", "sw0", "lb0")
    a.run("ip", "neigh", "replace", _vip(a), "lladdr", b.mac, "dev", "eth0")
    return a, b


def ovn_side(kind: str, net: int) -> contextlib.AbstractContextManager[Side]:
    """The logical switch with ACLs and a load balancer on a switch of ``kind``."""
    return deployment(kind, net, _logical_switch)


_VOLATILE = [
    (re.compile(r"cookie=0x[0-9a-f]+, "), ""),
    (
        re.compile(r"learn\(table=(\d+),delete_learned,cookie=0x[0-9a-f]+,"),
        r"learn(table=\1,delete_learned,",
    ),
    (re.compile(r"duration=[0-9.]+s, "), ""),
    (re.compile(r"n_packets=\d+, n_bytes=\d+, "), ""),
    (re.compile(r"idle_age=\d+, "), ""),
    # KNOWN DIFFERENCE (docs/openflow.md): hitless does not keep a group's
    # selection_method property (OVN asks dp_hash for its load balancers' groups)
    (re.compile(r"selection_method=dp_hash,"), ""),
    # conntrack zones (reg13: the port's, reg11/12: the switch's DNAT/SNAT): ovn-controller
    # numbers them in the order of names that contain random row ids
    (re.compile(r"set_field:0x[0-9a-f]+->reg1([123])"), r"set_field:ZONE->reg1\1"),
]


def _unordered_flood(line: str) -> str:
    """A multicast group's flow sends to each port in turn (set reg15, resubmit), in
    ovn-controller's hash order: list those steps sorted."""
    head, sep, acts = line.partition("actions=")
    steps = re.findall(r"(?:set_field:[^,]+,)*resubmit\(,\d+\)", acts)
    if len(steps) < 2:
        return line
    rest = acts
    for st in steps:
        rest = rest.replace(st, "", 1)
    return head + sep + ",".join(sorted(steps)) + "|" + rest.strip(",")


def flow_table(s: Side) -> list[str]:
    """dump-flows without what differs between two deployments: cookies (southbound row
    ids, also in learn actions), counters, ages, zone numbers, the hosts' MACs (named a
    and b), northd's random service-monitor MAC, and the order of a multicast group's
    ports; the groups (the load balancer's) follow the flows."""
    macs = {h.mac.lower(): f"MAC-{h.name}" for h in (s.a, s.b)}
    svc = s.ovn.nbctl("get", "NB_Global", ".", "options:svc_monitor_mac").strip().strip('"')
    macs[svc.lower()] = "MAC-svc"
    out = []
    for line in s.ofctl("dump-flows").splitlines() + s.ofctl("dump-groups").splitlines():
        if not line.startswith((" cookie=", " group_id=")):
            continue  # the reply headers (hitless splits long replies into more parts)
        for rx, repl in _VOLATILE:
            line = rx.sub(repl, line)
        for mac, name in macs.items():
            line = line.replace(mac, name).replace(hex(int(mac.replace(":", ""), 16)), name)
        out.append(_unordered_flood(line.strip()))
    return sorted(out)


def test_ovn_acls_forward_and_drop_as_on_open_vswitch() -> None:
    seen: dict[str, dict[str, bool]] = {}
    tables: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    net = 150 + (hash("ovn-e2e") % 40)
    for kind in ("ovs", "hitless"):
        with ovn_side(kind, net) as s:
            seen[kind] = probes(s)
            tables[kind] = flow_table(s)
            errors[kind] = s.ovn.openflow_errors()
            if kind == "hitless":
                log = s.sw.log().read_text(errors="replace")
                assert "refused" not in log and "bad message" not in log, log[-3000:]
    print(f"\nprobes: {seen}\nflows: ovs {len(tables['ovs'])}, hitless {len(tables['hitless'])}")
    assert errors == {"ovs": [], "hitless": []}, errors
    assert seen["ovs"] == EXPECTED, seen
    assert seen["hitless"] == seen["ovs"], seen
    only_ovs = sorted(set(tables["ovs"]) - set(tables["hitless"]))
    only_hl = sorted(set(tables["hitless"]) - set(tables["ovs"]))
    assert not only_ovs and not only_hl, "\n".join(
        ["only on Open vSwitch:", *only_ovs, "only on hitless:", *only_hl]
    )


def _plain_switch(ovn: Ovn, a: Host, b: Host) -> tuple[Host, Host]:
    """One logical switch with the two ports and nothing else (no ACL, no load
    balancer)."""
    ovn.nbctl("ls-add", "sw0")
    for h, lsp in ((a, "lpa"), (b, "lpb")):
        ovn.nbctl("lsp-add", "sw0", lsp, "--", "lsp-set-addresses", lsp, f"{h.mac} {_ip(h)}")
    return a, b


def test_ovn_switch_without_acls_forwards_as_on_open_vswitch() -> None:
    """The first half of issue 17's OVN clause: two logical ports, no ACL; every probe
    passes both ways on both switches, ovn-controller gets no OpenFlow error and its
    flow table dumps the same on both."""
    seen: dict[str, dict[str, bool]] = {}
    tables: dict[str, list[str]] = {}
    errors: dict[str, list[str]] = {}
    net = 110 + (hash("ovn-plain") % 30)
    for kind in ("ovs", "hitless"):
        with deployment(kind, net, _plain_switch, prefix="brp") as s:
            a, b = s.a, s.b
            seen[kind] = {
                "ping a->b": a.ping(_ip(b), count=3),
                "ping b->a": b.ping(_ip(a), count=3),
                "tcp a->b:5001": tcp_ok(a, b, 5001),
                "tcp b->a:5001": tcp_ok(b, a, 5001),
                "udp a->b:7002": udp_ok(a, b, 7002),
                "udp b->a:7002": udp_ok(b, a, 7002),
            }
            tables[kind] = flow_table(s)
            errors[kind] = s.ovn.openflow_errors()
    print(f"\nprobes: {seen}\nflows: ovs {len(tables['ovs'])}, hitless {len(tables['hitless'])}")
    assert errors == {"ovs": [], "hitless": []}, errors
    assert all(seen["ovs"].values()), seen
    assert seen["hitless"] == seen["ovs"], seen
    only_ovs = sorted(set(tables["ovs"]) - set(tables["hitless"]))
    only_hl = sorted(set(tables["hitless"]) - set(tables["ovs"]))
    assert not only_ovs and not only_hl, "\n".join(
        ["only on Open vSwitch:", *only_ovs, "only on hitless:", *only_hl]
    )
    assert len(tables["ovs"]) > 50, tables["ovs"]  # ovn-controller's table, not a stub


def _tracked(s: Side, established: bool = False) -> set[str]:
    """The tracked TCP stream connections a->b (dpctl/dump-conntrack, without the TCP
    state, which moves on); with ``established``, only those in ESTABLISHED."""
    text = s.sw.appctl("dpctl/dump-conntrack")
    return {ln.split(",protoinfo=")[0] for ln in text.splitlines()
            if f"dport={PORT + 2}" in ln and "tcp" in ln
            and (not established or "state=ESTABLISHED" in ln)}  # fmt: skip


def _counters(s: Side) -> dict[str, int]:
    """Each rule (by its match and actions, cookie included) -> its packet counter."""
    out = {}
    for line in s.ofctl("dump-flows").splitlines():
        m = re.search(r"n_packets=(\d+), ", line)
        if m:
            key = re.sub(r"(duration=[0-9.]+s|n_packets=\d+|n_bytes=\d+|idle_age=\d+), ", "", line)
            out[key.strip()] = int(m.group(1))
    return out


def upgrade_under_traffic(
    s: Side, tracked: Callable[[Side], set[str]], udp_to_a: int, fault: str | None = None
) -> tuple[set[str], ImpactResult]:
    """``hitless upgrade`` of ``s`` under the shared traffic classes, after a warm-up.
    Judged: no datagram or stream record lost or doubled, the stream
    survived, what ``tracked`` returned before the upgrade
    is still tracked after, ovn-controller kept its OpenFlow connections (no reconnect in
    its log), got no error and its rules were not reinstalled (every counter went on),
    then duplicates, the timing and failed new connections (``judge_timing``, the
    switch's CPU waits excused). With ``fault`` armed in the new process (``blackout:100``, ``duplicate``)
    the traffic's judgement must catch it (``judge``). Returns what was
    tracked before, and the measured traffic."""
    assert isinstance(s.sw, HitlessSwitch)
    s.sw.handoff_env = fault_env(fault) or {}
    upgrade = s.sw.operation("upgrade")
    links = s.ovn.bridge_connections()
    assert links, "ovn-controller's log shows no OpenFlow connection to the bridge"
    seen: dict[str, object] = {}

    def operation() -> list[Phase]:
        seen["started"] = time.monotonic()
        seen["tracked"] = tracked(s)
        seen["counters"] = _counters(s)
        phases = upgrade()
        seen["tracked_after"] = tracked(s)
        return phases

    # Warm up the pipeline's first upcalls (ARP, the first packets of each kind).
    assert s.a.ping(_ip(s.b), count=3) and tcp_ok(s.a, s.b, PORT + 2)
    assert udp_ok(s.b, s.a, udp_to_a) and udp_ok(s.a, s.b, PORT)
    with Sampler(pidfile_reader(s.sw.rundir / "hitless-vswitchd.pid")) as cpu:
        # the traffic goes on 3 s after the upgrade returned, however long it took (at
        # load average 17-21 it once took 16 s, past a fixed 15 s of traffic)
        res = measure([s.a, s.b], operation, name="upgrade", duration=15, at=1.5,
                      rates=RATES, classes=CLASSES, port=PORT, after=3.0)  # fmt: skip
    print(summary(res))
    end = res.traffic_start + res.duration
    freeze_end = max((p.end for p in res.window.phases if p.name.startswith("freeze")),
                     default=res.window.end)  # fmt: skip
    assert freeze_end <= end - 2.0, f"the traffic did not outlast the freeze\n{summary(res)}"
    for c in res.classes:  # failed new connections, duplicates: judged with the timing
        if c.kind != "tcp-connect":
            assert c.lost == 0 and c.outcome in (None, "survived"), summary(res)
    assert {"udp", "tcp-stream", "tcp-connect"} <= {c.kind for c in res.classes}
    before_tracked = seen["tracked"]
    assert isinstance(before_tracked, set) and before_tracked, seen
    assert before_tracked <= seen["tracked_after"], seen  # type: ignore[operator]
    assert s.ovn.bridge_connections() == links
    assert s.ovn.openflow_errors() == []
    after = _counters(s)
    before = seen["counters"]
    assert isinstance(before, dict) and after.keys() == before.keys()
    assert all(after[k] >= n for k, n in before.items())
    assert sum(after.values()) > sum(before.values())
    assert s.sw.last_report is not None
    started = seen["started"]
    assert isinstance(started, float)
    res = with_fault_windows(with_cpu_waits(res, cpu, started), s.sw.log().read_text(), started)
    print(what_the_switch_did(res, cpu, started))
    if fault is not None and fault.startswith("blackout:"):
        assert res.fault_windows, "the new process logged no blackout"
    judge_timing(res, bound_of([s.sw.last_report]), fault)
    return before_tracked, res


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate"])
def test_hitless_upgrade_under_ovn_loses_nothing_and_keeps_connections_and_controller(
    fault: str | None,
) -> None:
    """The TCP stream's connection was tracked (ESTABLISHED) before and is the same entry
    after; the rest as ``upgrade_under_traffic`` says, which must catch the ``fault``
    armed in the new process."""
    with ovn_side("hitless", 190 + (hash("ovn-up") % 9)) as s:
        upgrade_under_traffic(s, lambda s: _tracked(s, established=True), UDP_TO_A, fault)


def judge_timing(res: ImpactResult, bound: Bound, fault: str | None) -> None:
    """The shared handoff assertion (``judge``): clean, nothing may be found; with
    ``fault`` armed in the new process, what it breaks must be."""
    print(f"load average {os.getloadavg()[0]:.1f}")
    judge(violations(res, bound), fault, res)
