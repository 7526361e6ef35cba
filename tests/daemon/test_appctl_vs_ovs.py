"""The same ovs-appctl commands against real Open vSwitch 3.1 (dummy datapath, its own
run directory) and against hitless, after the same ovs-vsctl / ovs-ofctl set-up and the
same injected packets; outputs compared after removing what must differ (documented in
docs/appctl.md: datapath names, Open vSwitch's hidden table-254 rules, durations)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hitless.datapath.dummy import read_pcap
from hitless.packet.flowstr import build_packet, parse_flow
from tests.daemon.test_every_action import _load_each_version
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.usefixtures("ovs")

VSCTL_SETUP = [
    "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy",
    "--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dummy", "ofport_request=1",
    "--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy", "ofport_request=2",
    "options:tx_pcap={rundir}/p2.pcap",
    "--", "add-port", "br0", "p3", "--", "set", "Interface", "p3", "type=dummy", "ofport_request=3",
]  # fmt: skip
GROUP = "group_id=1,type=all,bucket=actions=set_field:4196->vlan_vid,output:2"
RULES = [
    "table=0,priority=10,in_port=1,actions=push_vlan:0x8100,set_field:4106->vlan_vid,goto_table:1",
    "table=0,priority=10,in_port=3,udp,actions=set_field:00:00:00:00:00:09->eth_dst,"
    "set_field:10.0.0.9->ip_dst,dec_ttl,output:2",
    "table=1,cookie=0x5,priority=20,dl_vlan=10,actions=group:1",
    "table=0,priority=10,in_port=2,actions=resubmit(,3),output:1",
    "table=3,priority=1,actions=set_field:00:00:00:00:00:07->eth_src",
    "table=2,priority=7,arp,actions=set_field:1->arp_op,set_field:00:00:00:00:00:01->arp_sha",
    "table=2,priority=5,in_port=LOCAL,vlan_vid=0x1000/0x1000,dl_type=0x88cc,actions=drop",
    "table=2,priority=3,arp,arp_spa=1.0.0.0/8,arp_op=1,dl_vlan=3,actions=clear_actions,"
    "write_actions(output:3),write_metadata:0x5/0xff,goto_table:6",
    "table=6,priority=8,udp6,ipv6_label=0x12345,actions=set_field:99->udp_src,"
    "set_field:::3->ipv6_dst,output:1",
]
UDP = "udp,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_ttl=64,udp_src=1,udp_dst=2"


class Side:
    """One switch as the tests drive it: vsctl, ofctl on br0, appctl (plain, OVS_RUNDIR)."""

    def __init__(self, rundir: str, vsctl: Callable[..., object]) -> None:
        self.rundir = rundir
        self._vsctl = vsctl

    def vsctl(self, *args: str) -> None:
        self._vsctl(*args)

    def ofctl(self, cmd: str, *args: str) -> str:
        target = f"unix:{self.rundir}/br0.mgmt"
        return run_ok(["ovs-ofctl", "-O", "OpenFlow13", cmd, target, *args], self.rundir)

    def appctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(["ovs-appctl", "--timeout=20", *args], self.rundir)


def pcap_bridge(ports: tuple[int, ...], *extra: str) -> list[str]:
    """ovs-vsctl arguments for bridge br0 on the dummy datapath: port 1 (p1) to send into
    and ``ports`` (p2...) whose sent frames go to ``{rundir}/pN.pcap``, ``extra`` after."""
    return [
        "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy",
        "--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dummy",
        "ofport_request=1",
        *(x for p in ports for x in (
            "--", "add-port", "br0", f"p{p}", "--", "set", "Interface", f"p{p}", "type=dummy",
            f"ofport_request={p}", f"options:tx_pcap={{rundir}}/p{p}.pcap",
        )),
        *extra,
    ]  # fmt: skip


def set_up_both(
    started: Sw,
    ovs: Ovs,  # noqa: F811
    vsctl_setup: list[str],
    groups: tuple[str, ...] | list[str] = (),
    rules: tuple[str, ...] | list[str] = (),
    fresh: bool = False,
) -> tuple[Side, Side]:
    """Open vSwitch and hitless side by side, (Open vSwitch, hitless): each configured by
    ``vsctl_setup`` (``{rundir}`` filled in), its br0 OpenFlow socket there, its flows
    deleted first if ``fresh``, then ``groups`` and ``rules`` added with stock ovs-ofctl."""
    sides = (Side(str(ovs.rundir), ovs.vsctl), Side(str(started.rundir.path), started.vsctl))
    for s in sides:
        s.vsctl(*(a.format(rundir=s.rundir) for a in vsctl_setup))
        sock = f"{s.rundir}/br0.mgmt"
        wait_for(lambda: os.path.exists(sock), "br0 OpenFlow socket")  # noqa: B023
        if fresh:
            s.ofctl("del-flows")
        for g in groups:
            s.ofctl("add-group", g)
        for r in rules:
            s.ofctl("add-flow", r)
    return sides


def traced_by_both(both: tuple[Side, Side], flows: list[str]) -> list[tuple[str, str, str]]:
    """``ofproto/trace br0 in_port=1,FLOW`` of each flow on both switches, each answered
    without error by both: (flow, Open vSwitch's text, hitless's text) per flow."""
    o, h = both
    out = []
    for flow in flows:
        args = ["ofproto/trace", "br0", f"in_port=1,{flow}"]
        ro, rh = o.appctl(*args), h.appctl(*args)
        assert ro.returncode == rh.returncode == 0, (flow, ro.stderr, rh.stderr)
        out.append((flow, ro.stdout, rh.stdout))
    return out


# What differs between two loads of one table: ovs-ofctl's log lines' time, rules' ages.
_LOAD_STAMP = re.compile(
    r"\d{4}-\d\d-\d\dT[\d:.]+Z\|\d+\||duration=[0-9.]+s, |idle_age=\d+, |hard_age=\d+, "
)


def loaded_by_both(
    both: tuple[Side, Side], rules: list[str], tmp_path: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """``rules`` added and dumped with stock ovs-ofctl in each OpenFlow version on both
    switches (tests/daemon/test_every_action.py's procedure), times and ages removed:
    (Open vSwitch's outcome per version, hitless's)."""
    flows = tmp_path / "flows.txt"
    flows.write_text("\n".join(rules) + "\n")
    out = []
    for s in both:
        loaded = _load_each_version(
            f"unix:{s.rundir}/br0.mgmt", {**os.environ, "OVS_RUNDIR": s.rundir}, flows
        )
        out.append({v: _LOAD_STAMP.sub("", t) for v, t in loaded.items()})
    return out[0], out[1]


def run(cmd: list[str], rundir: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OVS_RUNDIR": rundir}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def run_ok(cmd: list[str], rundir: str) -> str:
    r = run(cmd, rundir)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r.stdout


@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    sides = set_up_both(started, ovs, VSCTL_SETUP, groups=[GROUP], rules=RULES)
    for s in sides:
        pkt = build_packet(parse_flow(UDP)).hex()
        out = s.appctl("netdev-dummy/receive", "p1", pkt)
        assert out.returncode == 0, out.stderr
    return sides


def test_errors_and_list_commands_as_ovs(both: tuple[Side, Side]) -> None:
    o, h = both
    for args in (
        ["no/such"], ["fdb/show"], ["fdb/show", "a", "b"], ["time/warp"], ["vlog/set", "nosuch"],
        ["vlog/set", "ofproto:nosuch:dbg"],
    ):  # fmt: skip
        ro, rh = o.appctl(*args), h.appctl(*args)
        assert (rh.returncode, rh.stderr) == (ro.returncode, ro.stderr), args
    ours = {ln.split()[0] for ln in h.appctl("list-commands").stdout.splitlines()[1:]}
    theirs = {ln.split()[0] for ln in o.appctl("list-commands").stdout.splitlines()[1:]}
    asked = {
        "dpif/show", "dpif/dump-flows", "dpctl/show", "dpctl/dump-flows", "dpctl/del-flows",
        "bridge/dump-flows", "fdb/show", "fdb/flush", "fdb/stats-show", "upcall/show",
        "revalidator/purge", "memory/show", "netdev-dummy/receive", "time/stop",
        "time/warp", "list-commands", "version", "exit", "ofproto/trace",
        "ofproto/trace-packet-out", "ofproto/list", "vlog/list", "vlog/set", "vlog/reopen",
        "vlog/close", "vlog/disable-rate-limit", "vlog/enable-rate-limit", "vlog/list-pattern",
        "coverage/show", "coverage/read-counter",
    }  # fmt: skip
    assert asked <= theirs and asked <= ours, asked - ours
    # Same usage text for the commands both have.
    usage = {}
    for side in (o, h):
        for ln in side.appctl("list-commands").stdout.splitlines()[1:]:
            name, _, use = ln.strip().partition(" ")
            if name in asked:
                usage.setdefault(name, []).append(use.strip())
    differ = {n for n, u in usage.items() if len(set(u)) != 1}
    # Options hitless does not take (docs/appctl.md, "Differences"): dpctl/del-flows FILE,
    # dpctl/dump-flows filter=/type=/pmd=, netdev-dummy/receive --qid.
    # ofproto/trace*: no datapath-flow form.
    assert differ == {
        "dpctl/del-flows", "dpctl/dump-flows", "netdev-dummy/receive", "ofproto/trace",
        "ofproto/trace-packet-out",
    }  # fmt: skip
    assert (
        h.appctl("vlog/list").stdout.splitlines()[:2]
        == o.appctl("vlog/list").stdout.splitlines()[:2]
    )


def _no_hidden(text: str) -> list[str]:
    """bridge/dump-flows without OVS's hidden table-254 rules and with durations zeroed,
    sorted (the order of rules of equal priority is not defined)."""
    return sorted(
        re.sub(r"duration=\d+s", "duration=Ns", ln)
        for ln in text.splitlines()
        if not ln.startswith("table_id=254,")
    )


def test_bridge_dump_flows_and_fdb_stats_as_ovs(both: tuple[Side, Side]) -> None:
    o, h = both
    assert _no_hidden(h.appctl("bridge/dump-flows", "br0").stdout) == _no_hidden(
        o.appctl("bridge/dump-flows", "br0").stdout
    )
    assert h.appctl("fdb/stats-show", "br0").stdout == o.appctl("fdb/stats-show", "br0").stdout
    r = h.appctl("bridge/dump-flows", "nosuch")
    assert r.returncode == 2 and "no such bridge" in r.stderr


def _dp_names(text: str) -> str:
    """Datapath names differ by design (one per bridge vs one per type); so does the
    datapath port number of the bridge's own port (65534 vs 100), and OVS lists its
    datapath's own port 0."""
    text = text.replace("dummy@ovs-dummy", "dummy@DP").replace("dummy@br0", "dummy@DP")
    text = re.sub(r"65534/\d+:", "65534/N:", text)
    text = re.sub(r"port (100|65534): br0", "port N: br0", text)
    lines = [ln for ln in text.splitlines() if "ovs-dummy" not in ln]
    return "\n".join(lines)


def test_dpif_and_dpctl_show_as_ovs(both: tuple[Side, Side]) -> None:
    o, h = both
    assert _dp_names(h.appctl("dpif/show").stdout) == _dp_names(o.appctl("dpif/show").stdout)
    ho = _dp_names(h.appctl("dpctl/show").stdout).splitlines()
    oo = _dp_names(o.appctl("dpctl/show").stdout).splitlines()
    assert sorted(ho) == sorted(oo)  # port 100 vs 65534 sorts differently


def test_dump_flows_counters_and_del_flows_as_ovs(both: tuple[Side, Side]) -> None:
    o, h = both

    def counters(side: Side) -> list[tuple[str, ...]]:
        text = side.appctl("dpif/dump-flows", "br0").stdout
        return re.findall(r"in_port\((\d+)\).*packets:(\d+), bytes:(\d+), used:(\w+)", text)

    assert counters(h) == counters(o) == [("1", "0", "0", "never")]
    for side in (o, h):
        pkt = build_packet(parse_flow(UDP)).hex()
        side.appctl("netdev-dummy/receive", "p1", pkt)
    # OVS's revalidator publishes the stats of the hit asynchronously: wait for it.
    wait_for(lambda: counters(o)[0][1] == "1", "OVS counted the hit")
    assert [c[:3] for c in counters(h)] == [c[:3] for c in counters(o)] == [("1", "1", "42")]
    for side in (o, h):
        assert side.appctl("dpctl/del-flows").stdout == ""
    assert counters(h) == counters(o) == []


def _tree(text: str) -> list[str]:
    """A trace without its Megaflow and Datapath actions lines (masks and datapath action
    syntax differ by design, docs/appctl.md): Flow, the table walk, Final flow."""
    return [ln for ln in text.splitlines() if not ln.startswith(("Megaflow:", "Datapath actions:"))]


TRACES = [
    # a VLAN push and rewrite, goto_table, a group whose bucket rewrites the VID again
    ["br0", "in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02"],
    ["br0", f"{UDP},in_port=1"],
    # set_field on L2 and L3, dec_ttl, output
    ["br0", f"{UDP},in_port=p3"],
    # dec_ttl on TTL 1: the exception
    ["br0", "udp,in_port=3,nw_ttl=1"],
    # resubmit (Nicira) nests the next table, then the rule's actions go on
    ["br0", "in_port=2"],
    # table miss in table 0
    ["br0", "in_port=3"],
]


@pytest.mark.parametrize("args", TRACES, ids=[a[1] for a in TRACES])
def test_ofproto_trace_names_the_same_rules_and_actions(
    both: tuple[Side, Side], args: list[str]
) -> None:
    o, h = both
    ro, rh = o.appctl("ofproto/trace", *args), h.appctl("ofproto/trace", *args)
    assert ro.returncode == rh.returncode == 0, (ro.stderr, rh.stderr)
    assert _tree(rh.stdout) == _tree(ro.stdout)


def test_trace_packet_out_and_errors_as_ovs(both: tuple[Side, Side]) -> None:
    o, h = both
    args = [
        "ofproto/trace-packet-out",
        "br0",
        "in_port=1",
        "push_vlan:0x8100,set_field:4097->vlan_vid,output:2",
    ]
    assert _tree(h.appctl(*args).stdout) == _tree(o.appctl(*args).stdout)
    for bad in (["br9", "in_port=1"], ["br0", "in_port=1,foo=2"], ["br0", "tp_dst=5"]):
        ro, rh = o.appctl("ofproto/trace", *bad), h.appctl("ofproto/trace", *bad)
        assert (rh.returncode, rh.stderr) == (ro.returncode, ro.stderr), bad


def test_same_packets_come_out(both: tuple[Side, Side]) -> None:
    """What the datapath actions do, compared on the wire: the same packets injected on
    both switches leave p2 byte for byte the same (tx_pcap)."""
    o, h = both
    for flow, port in ((UDP, "p1"), (UDP, "p3")):
        pkt = build_packet(parse_flow(flow)).hex()
        for side in (o, h):
            assert side.appctl("netdev-dummy/receive", port, pkt).returncode == 0

    def frames(side: Side) -> list[bytes]:
        return read_pcap(f"{side.rundir}/p2.pcap")

    wait_for(lambda: len(frames(o)) >= 3, "OVS sent the three frames")
    got, want = frames(h), frames(o)
    assert len(want) == 3 and got == want
    assert got[0][12:16] == bytes.fromhex("81000064")  # VLAN 100 from the group's bucket
