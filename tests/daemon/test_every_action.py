"""The extension fields and actions the register pipeline test (test_nx_flows.py) does
not reach, side by side with real Open vSwitch 3.1 (netdev datapath, its own namespace
and run directory): the same table, loaded with stock ``ovs-ofctl`` in every OpenFlow
version both accept, the same pings (small and large) in, the same replies out, the
same rule counters and the same learned rules.

The table: ``pkt_mark``, ``tun_id`` and ``in_port`` (moved into a register) set in table
0 and matched later; ``nw_frag`` matched; ``check_pkt_larger`` decides, by the frame's
length, whether an echo request to host c may pass (an "MTU" of 200 bytes); ``sample`` (no IPFIX
collector: nothing to send, as OVS), ``dec_ttl`` and ``dec_ttl(ids)``, ``set_queue``
and ``enqueue``, a ``learn`` with every timeout, ``delete_learned`` and ``limit``, and
rules that match ``tcp_flags``, ``nd_target``/``nd_sll``/``nd_tll``, ``arp_sha``/
``arp_tha``, ``dp_hash``, ``tun_src``/``tun_dst``/``tun_flags`` and ``controller(...)``
(loaded and dumped alike; no traffic of theirs).

MPLS has its own table, sent raw frames: tests/daemon/test_mpls_differential.py."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from hitless.impact.run import Rates
from tests.daemon.test_nx_flows import (
    NET,
    _counters,
    _hosts,
    _ovs,
    _ovs_bridge,
    _settled,
    _texts_match_ofctl,
)
from tests.daemon.test_openflow import make_bridge, ofctl
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.traffic import (
    CLASSES,
    assert_handoff_traffic,
    bound_of,
    handoff_under_traffic,
    judge,
    violations,
)
from tests.wait import wait_for

pytestmark = pytest.mark.netns

LEARN = (
    "learn(table=20,idle_timeout=120,hard_timeout=300,fin_idle_timeout=5,fin_hard_timeout=10,"
    "priority=7,cookie=0x99,delete_learned,limit=10,"
    "NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:NXM_NX_REG2[0..15]->NXM_NX_REG5[0..15])"
)


def table(a: int, b: int, c: int) -> list[str]:
    return [
        # table 0: mark by ingress port; the port itself into reg2 through in_port
        f"table=0,priority=100,in_port={a},ip,nw_frag=no,actions=set_field:0x5->pkt_mark,"
        "move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],set_field:0x1234->tun_id,resubmit(,1)",
        f"table=0,priority=100,in_port={b},ip,actions=load:0x6->NXM_NX_PKT_MARK[],"
        "move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],resubmit(,1)",
        f"table=0,priority=100,in_port={c},ip,actions=move:NXM_OF_IN_PORT[]->NXM_NX_REG2[0..15],"
        "resubmit(,1)",
        # table 1: the frame's length into reg4 bit 0, then learn and go on
        f"table=1,priority=10,ip,actions=check_pkt_larger(200)->NXM_NX_REG4[0],{LEARN},resubmit(,2)",
        # table 2: large echoes to c are dropped; the marks pick the TTL handling
        f"table=2,priority=20,reg4=0x1/0x1,icmp,icmp_type=8,nw_dst={NET}.3,actions=drop",
        "table=2,priority=10,ip,pkt_mark=0x5,tun_id=0x1234,actions=sample(probability=65535,"
        "collector_set_id=1,obs_domain_id=2,obs_point_id=3),dec_ttl,resubmit(,3)",
        "table=2,priority=10,ip,pkt_mark=0x6/0xff,actions=dec_ttl(7),resubmit(,3)",
        "table=2,priority=5,actions=resubmit(,3)",
        # table 3: out by the IP destination
        f"table=3,priority=10,ip,nw_dst={NET}.1,actions=set_queue:1,output:{a}",
        f"table=3,priority=10,ip,nw_dst={NET}.2,actions=enqueue:{b}:2",
        f"table=3,priority=10,ip,nw_dst={NET}.3,actions=output:{c}",
        # loaded and compared, never hit by the pings
        "table=5,priority=10,tcp,tcp_flags=+syn-ack,actions=drop",
        "table=5,priority=10,icmp6,icmp_type=135,nd_target=fe80::1,nd_sll=02:00:00:00:00:01,actions=drop",
        "table=5,priority=10,icmp6,icmp_type=136,nd_target=fe80::2,nd_tll=02:00:00:00:00:02,actions=drop",
        "table=5,priority=10,arp,arp_sha=02:00:00:00:00:03,arp_tha=00:00:00:00:00:00,actions=drop",
        "table=5,priority=10,tun_src=192.0.2.1,tun_dst=192.0.2.2,tun_flags=+oam,actions=drop",
        "table=5,priority=10,ip,nw_frag=later,actions=controller(reason=no_match,max_len=128,"
        "userdata=01.02)",
    ]


# One at a time: what each switch says (Open vSwitch 3.1 keeps dp_hash and a non-zero
# recirc_id to its own internal flows: OFPBRC_EPERM).
SINGLE = (
    "table=5,priority=10,dp_hash=0x1/0xf,actions=drop",
    "table=5,priority=10,dp_hash=0,actions=drop",
    "table=5,priority=11,recirc_id=1,actions=drop",
    "table=5,priority=11,recirc_id=0,actions=drop",
)


def _singles(target: str, env: dict[str, str]) -> list[str]:
    out = []
    for rule in SINGLE:
        r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", target, rule],
                           capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
        out.append(f"rc={r.returncode} " + re.sub(r"\(xid=0x[0-9a-f]+\)", "", r.stderr.strip()))
    return out


def _ping(h: Host, ip: str, size: int, count: int) -> bool:
    r = h.run(["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "2", "-s", str(size), ip],
              check=False, timeout=count * 2.1 + 10)  # fmt: skip
    return r.returncode == 0


def _traffic(a: Host, b: Host, c: Host) -> dict[str, bool]:
    """Echo requests of 98-byte and 342-byte frames: all cross but the large ones to c."""
    return {
        "a-b": _ping(a, f"{NET}.2", 56, 2),
        "a-b large": _ping(a, f"{NET}.2", 300, 2),
        "b-a": _ping(b, f"{NET}.1", 56, 1),
        "c-a large": _ping(c, f"{NET}.1", 300, 1),
        "a-c": _ping(a, f"{NET}.3", 56, 1),
        "b-c large": _ping(b, f"{NET}.3", 300, 1),
    }


# requests and replies: 4 + 4 + 2 + 2 + 2 + 1 (the large request to c is dropped)
N_PACKETS = 15


def _norm(d: dict[str, int], hosts: tuple[Host, Host, Host]) -> dict[str, int]:
    """Counters with the hosts' MACs (which differ between the two runs) named."""
    out = {}
    for k, v in d.items():
        for i, h in enumerate(hosts):
            k = k.replace(h.mac, f"host{i}")
        out[k] = v
    return out


VERSIONS = ("OpenFlow10", "OpenFlow11", "OpenFlow12", "OpenFlow13", "OpenFlow14", "OpenFlow15")


_HEADER = re.compile(r"(OFPST|NXST)_FLOW reply")  # what --no-stats prints before the rules


def _load_each_version(target: str, env: dict[str, str], flows: Path) -> dict[str, str]:
    """add-flows then dump-flows in each OpenFlow version: its outcome per version (the
    table emptied first in 1.3: 1.1's del-flows leaves the other tables alone, on both)."""
    out = {}
    for v in VERSIONS:
        res = []
        for cmd in (["del-flows", target], ["add-flows", target, str(flows)],
                    ["dump-flows", "--no-stats", target]):  # fmt: skip
            ver = "OpenFlow13" if cmd[0] == "del-flows" else v
            r = subprocess.run(["ovs-ofctl", "-O", ver, *cmd], capture_output=True, text=True,
                               env=env, timeout=60)  # fmt: skip
            res.append(f"rc={r.returncode}")
            if cmd[0] == "dump-flows" and r.returncode == 0:
                rules = (x.strip() for x in r.stdout.splitlines() if not _HEADER.match(x))
                res.append("\n".join(sorted(rules)))
            elif r.returncode != 0:
                res.append(re.sub(r"\(xid=0x[0-9a-f]+\)", "", r.stderr.strip()))
        out[v] = "\n".join(res)
    return out


def _bridge(
    sw: Sw, topology: Topology, tmp_path: Path, tag: str
) -> tuple[tuple[Host, Host, Host], str, list[int], Path]:
    """Three hosts on a new bridge of ``sw``, and the table for their ports in a file."""
    hs = _hosts(topology, tag)
    br = make_bridge(sw, topology, *hs)
    ports = [sw.ofport(h.switch_port) for h in hs]
    flows = tmp_path / "every.txt"
    flows.write_text("\n".join(table(*ports)) + "\n")
    return hs, br, ports, flows


def test_every_extension_field_and_action_loads_forwards_and_counts_as_open_vswitch(
    started: Sw, topology: Topology, tmp_path: Path
) -> None:
    hs, br, ports, flows = _bridge(started, topology, tmp_path, "e")
    a, b, c = hs
    ours_loaded = _load_each_version(
        f"unix:{started.rundir.path}/{br}.mgmt",
        {**os.environ, "OVS_RUNDIR": str(started.rundir.path)}, flows,
    )  # fmt: skip
    env = {**os.environ, "OVS_RUNDIR": str(started.rundir.path)}
    ours_single = _singles(f"unix:{started.rundir.path}/{br}.mgmt", env)
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    got = _traffic(a, b, c)
    ours = _settled(lambda: ofctl(started, br, "dump-flows"), N_PACKETS)
    _texts_match_ofctl(started, br)
    learned = [k for k in ours if k.startswith("cookie=0x99")]

    ohs = _hosts(topology, "f")
    with _ovs(topology, ohs) as o:
        obr = _ovs_bridge(o, topology, ohs, ports)
        target = f"unix:{o.rundir}/{obr}.mgmt"
        theirs_loaded = _load_each_version(target, o.paths.env, flows)
        theirs_single = _singles(target, o.paths.env)
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", target],
                       env=o.paths.env, check=True, timeout=60)  # fmt: skip
        subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", target, str(flows)],
                       env=o.paths.env, check=True, timeout=60)  # fmt: skip
        want = _traffic(*ohs)

        def dump() -> str:
            return subprocess.run(
                ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", target],
                env=o.paths.env, check=True, timeout=60, capture_output=True, text=True,
            ).stdout  # fmt: skip

        theirs = _settled(dump, N_PACKETS)
        # Open vSwitch installs learned rules from its upcall handler, a moment later
        wait_for(lambda: sum(k.startswith("cookie=0x99") for k in _counters(dump())) == len(learned),
                 "Open vSwitch's learned rules")  # fmt: skip
        theirs = _counters(dump())

    assert want == {"a-b": True, "a-b large": True, "b-a": True, "c-a large": True,
                    "a-c": True, "b-c large": False}  # fmt: skip
    assert got == want
    assert ours_single == theirs_single
    assert [x.startswith("rc=0") for x in ours_single] == [False, False, False, True]
    assert "OFPBRC_EPERM" in ours_single[0]
    assert ours_loaded == theirs_loaded
    assert "rc=0\nrc=0\nrc=0" in ours_loaded["OpenFlow13"]
    assert len(learned) == 3, learned  # one per host MAC
    norm_ours, norm_theirs = _norm(ours, hs), _norm(theirs, ohs)
    assert norm_ours == norm_theirs
    assert sum(ours.values()) > 3 * N_PACKETS


def _durations(text: str) -> dict[str, float]:
    """Each rule's age (duration=) keyed as _counters keys it."""
    out = {}
    for line in text.splitlines():
        m = re.search(r"duration=([0-9.]+)s", line)
        if m is not None:
            rule = re.sub(r"(duration|n_packets|n_bytes|idle_age|hard_age)=[^,]*, ?", "", line)
            out[rule.strip()] = float(m.group(1))
    return out


# With ``duplicate`` armed only the UDP class runs: this table sends every frame to a or
# b on its own with a priority (set_queue, enqueue), and the point doubles as many of
# those as the bridge has ports, so they must be datagrams the traffic check counts (a
# doubled TCP segment is a retransmission to the receiver, which nothing can tell).
@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate"])
def test_upgrade_under_traffic_on_the_every_action_table_keeps_learned_rules(
    started: Sw, topology: Topology, tmp_path: Path, fault: str | None
) -> None:
    """``hitless upgrade`` under the shared traffic classes through that table (UDP each
    way takes check_pkt_len's small branch, the TCP stream's full segments the large
    one): nothing lost (the shared handoff assertion), the same rules after (learned
    ones with their timeouts, not re-created: each rule's age went on), every counter
    went on, and the MTU check still splits the pings. (Host c is quiet during the
    traffic: its learned rule lives on its 120 s idle timeout, which the test outlasts
    only on a machine far slower than any seen.)"""
    hs, br, ports, flows = _bridge(started, topology, tmp_path, "u")
    a, b, c = hs
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    assert _traffic(a, b, c)["b-c large"] is False
    dump = lambda: ofctl(started, br, "dump-flows")  # noqa: E731
    wait_for(lambda: sum(k.startswith("cookie=0x99") for k in _counters(dump())) == 3,
             "three learned rules")  # fmt: skip
    before, ages = _counters(dump()), _durations(dump())

    classes = ("udp",) if fault == "duplicate" else CLASSES
    report, res = handoff_under_traffic(started, [a, b], "upgrade", rates=Rates(udp_pps=500),
                                        fault=fault, classes=classes)  # fmt: skip
    assert report["ok"], report
    if fault is not None:  # armed in the new process: the traffic check must report it
        judge(violations(res, bound_of([report])), fault, res)
        return
    assert_handoff_traffic(res, bound_of([report]))
    after, ages_after = _counters(dump()), _durations(dump())
    assert set(after) == set(before)  # learned rules with the same timeouts, cookie, match
    for rule, n in before.items():
        assert after[rule] >= n, rule
        # Not re-created: its age went on, learned rules' too (a learn that refreshes a
        # rule restarts its hard timeout, not its duration, as Open vSwitch).
        assert ages_after[rule] > ages[rule], rule
    assert sum(after.values()) > sum(before.values()) + 1000
    # The learned rules a and b's traffic refreshed: their hard timeout counts from the
    # last refresh (hard_age, which Open vSwitch's Nicira flow stats carry and ovs-ofctl
    # prints when it differs from the duration), and that crossed the upgrade; c's never
    # was not during the traffic (no hard_age shown, or one near its duration).
    nx = subprocess.run(["ovs-ofctl", "dump-flows", f"unix:{started.rundir.path}/{br}.mgmt"],
                        capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    for h in (a, b, c):
        lines = [x for x in nx.splitlines() if "cookie=0x99" in x and h.mac in x]
        assert len(lines) == 1, nx
        line = lines[0]
        m = re.search(r"duration=(\d+)(?:\.\d+)?s.*hard_age=(\d+),", line)
        if h is c:
            assert m is None or int(m.group(2)) + 5 >= int(m.group(1)), line
        else:
            assert m is not None and int(m.group(2)) + 5 < int(m.group(1)), line
    big = [k for k in after if "check_pkt_larger" in k]
    assert len(big) == 1 and after[big[0]] > before[big[0]]
    got = _traffic(a, b, c)
    assert got == {"a-b": True, "a-b large": True, "b-a": True, "c-a large": True,
                   "a-c": True, "b-c large": False}  # fmt: skip
