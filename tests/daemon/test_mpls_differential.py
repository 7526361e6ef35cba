"""MPLS side by side with real Open vSwitch 3.1 (netdev datapath, its own namespace and
run directory): the same table loaded with stock ``ovs-ofctl`` in every OpenFlow version
(the same outcome and dump per version), then the same raw frames sent from host a (an
AF_PACKET socket: IPv4 to push a label on, MPLS frames with one to four labels, a
multicast-MPLS one), and what hosts b and c receive compared byte for byte, with the
rule counters and the text of every rule.

Covered: the mpls_label, mpls_tc and mpls_bos matches, push_mpls on IPv4 (TC and TTL
taken from the IP header) and on MPLS (the top entry copied; the EtherType stays, even
when the action names the other MPLS one, as Open vSwitch sends it), pop_mpls to MPLS and to
IPv4 (then a lookup on the inner IPv4 destination: the recirculation Open vSwitch does),
set_field to mpls_label/mpls_tc, set_mpls_ttl, dec_mpls_ttl (and its invalid TTL), a
push beyond three labels (dropped by both); after a pop to IPv4, dec_ttl (and its invalid
TTL), L3/L4 rewrites, and the actions after a resubmit, which Open vSwitch freezes and
runs after recirculating the packet (hitless.ofproto.frozen)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from hitless.impact.run import Rates
from tests.daemon import test_openflow
from tests.daemon.test_every_action import _load_each_version
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
    assert_handoff_traffic,
    bound_of,
    handoff_under_traffic,
    judge,
    violations,
)
from tests.wait import wait_for

pytestmark = pytest.mark.netns

MARK = 0x88B5  # the last frame: both receivers stop when it arrives


def table(a: int, b: int, c: int) -> list[str]:
    return [
        f"table=0,priority=10,in_port={a},ip,nw_dst={NET}.2,actions=push_mpls:0x8847,"
        "set_field:100->mpls_label,set_field:5->mpls_tc,resubmit(,1)",
        f"table=0,priority=10,in_port={a},mpls,mpls_label=200,mpls_bos=0,"
        "actions=pop_mpls:0x8847,resubmit(,2)",
        f"table=0,priority=10,in_port={a},mpls,mpls_label=300,mpls_bos=1,"
        "actions=pop_mpls:0x0800,resubmit(,3)",
        f"table=0,priority=10,in_port={a},mpls,mpls_label=400,actions=dec_mpls_ttl,output:{c}",
        f"table=0,priority=10,in_port={a},mpls,mpls_label=500,actions=output:{b},"
        f"push_mpls:0x8847,output:{c}",
        f"table=0,priority=10,in_port={a},mplsm,actions=output:{c}",
        f"table=0,priority=5,in_port={a},mpls,mpls_tc=3,actions=set_field:9->mpls_label,"
        f"set_mpls_ttl(7),output:{b}",
        f"table=0,priority=20,dl_type={MARK:#06x},actions=output:{b},output:{c}",
        # after a pop to IPv4, actions that need the inner headers: frozen, recirculated
        f"table=0,priority=10,in_port={a},mpls,mpls_label=800,actions=pop_mpls:0x0800,dec_ttl,"
        f"output:{b}",
        f"table=0,priority=10,in_port={a},mpls,mpls_label=801,actions=pop_mpls:0x0800,"
        f"set_field:{NET}.77->ip_dst,output:{c}",
        f"table=0,priority=10,in_port={a},mpls,mpls_label=900,actions=pop_mpls:0x0800,"
        f"resubmit(,3),dec_ttl,output:{b}",
        f"table=1,priority=10,mpls,mpls_label=100,mpls_tc=5,mpls_bos=1,actions=dec_mpls_ttl,"
        f"output:{b}",
        f"table=2,priority=10,mpls,mpls_label=201,mpls_bos=1,actions=push_mpls:0x8848,output:{c}",
        f"table=3,priority=10,ip,nw_dst={NET}.3,actions=output:{c}",
        "table=3,priority=0,actions=drop",
    ]


def _csum(data: bytes) -> int:
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ipv4(dst: str, tos: int = 0, ttl: int = 64) -> bytes:
    """An IPv4/UDP packet from NET.1 to ``dst`` (a 14-byte payload)."""
    payload = b"hitless-mpls!!"
    udp = struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(udp), 7, 0, ttl, 17, 0,
                     bytes(map(int, f"{NET}.1".split("."))), bytes(map(int, dst.split("."))))  # fmt: skip
    return ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:] + udp


def lse(label: int, tc: int = 0, bos: int = 1, ttl: int = 64) -> bytes:
    return struct.pack("!I", label << 12 | tc << 9 | bos << 8 | ttl)


def frames(src: bytes) -> list[bytes]:
    """What host a sends (the marker last)."""
    eth = b"\x02\x00\x00\x00\x00\x99" + src
    mpls, mplsm, ip = b"\x88\x47", b"\x88\x48", b"\x08\x00"
    return [
        eth + ip + _ipv4(f"{NET}.2", tos=0xB8, ttl=30),  # push: TC 6 from DSCP 46
        eth + mpls + lse(200, bos=0, ttl=10) + lse(201, ttl=9) + _ipv4(f"{NET}.2"),
        eth + mpls + lse(300, ttl=20) + _ipv4(f"{NET}.3"),  # pop, then table 3 by nw_dst
        eth + mpls + lse(300, ttl=20) + _ipv4(f"{NET}.9"),  # ... which drops this one
        eth + mpls + lse(400, ttl=5) + _ipv4(f"{NET}.2"),
        eth + mpls + lse(400, ttl=1) + _ipv4(f"{NET}.2"),  # dec_mpls_ttl fails
        eth + mpls + b"".join(lse(500 + i, bos=int(i == 3)) for i in range(4)) + _ipv4(f"{NET}.2"),
        eth + mplsm + lse(600) + _ipv4(f"{NET}.2"),
        eth + mpls + lse(700, tc=3, ttl=33) + _ipv4(f"{NET}.2"),
        eth + mpls + lse(800, ttl=20) + _ipv4(f"{NET}.2", ttl=9),  # TTL 8 to b
        eth + mpls + lse(800, ttl=20) + _ipv4(f"{NET}.2", ttl=1),  # dec_ttl fails
        eth + mpls + lse(801, ttl=20) + _ipv4(f"{NET}.2"),  # to .77, its checksum redone
        eth + mpls + lse(900, ttl=20) + _ipv4(f"{NET}.3"),  # table 3 to c, then b
        eth + mpls + lse(900, ttl=20) + _ipv4(f"{NET}.9"),  # table 3 drops: b alone
    ]


N_SENT = 14  # frames table 0 counts before the marker

_SEND = r"""
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for f in sys.argv[1:]:
    s.send(bytes.fromhex(f))
"""

_CAPTURE = r"""
import json, socket, sys, time
src, mark = bytes.fromhex(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("eth0", 0))
s.settimeout(60)
print("ready", flush=True)
got = []
while True:
    f, addr = s.recvfrom(65536)
    if addr[2] == socket.PACKET_OUTGOING or f[6:12] != src:
        continue
    if f[12] << 8 | f[13] == mark:
        break
    got.append(f.hex())
print(json.dumps(got), flush=True)
"""


class _Capture:
    def __init__(self, host: Host, src: str) -> None:
        self.proc = host.popen([sys.executable, "-c", _CAPTURE, src.replace(":", ""), str(MARK)])
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            self.proc.kill()
            raise RuntimeError(f"capture in {host.name}: {self.proc.communicate()[1]}")

    def frames(self) -> list[str]:
        out, err = self.proc.communicate(timeout=90)
        assert self.proc.returncode == 0, err
        return list(json.loads(out.strip().splitlines()[-1]))


def _run(hosts: tuple[Host, Host, Host], dump: object) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Send the frames from a; once table 0 counted them, the marker; what b and c got
    (MAC addresses as in the frames sent: a's is the source) and the counters."""
    a, b, c = hosts
    caps = {"b": _Capture(b, a.mac), "c": _Capture(c, a.mac)}
    a.run([sys.executable, "-c", _SEND, *(f.hex() for f in frames(a.mac_bytes))])
    counters = _settled(dump, N_SENT)  # type: ignore[arg-type]
    mark = b"\xff" * 6 + a.mac_bytes + MARK.to_bytes(2, "big") + bytes(46)
    a.run([sys.executable, "-c", _SEND, mark.hex()])
    got = {name: cap.frames() for name, cap in caps.items()}
    return {k: [f.replace(a.mac.replace(":", ""), "<a>") for f in v] for k, v in got.items()}, counters


@pytest.mark.parametrize("datapath", ["netdev", "ebpf"])
def test_mpls_frames_match_push_pop_and_rewrite_as_open_vswitch(
    started: Sw, topology: Topology, tmp_path: Path, datapath: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On hitless's netdev and ebpf datapaths (ebpf: the MPLS flows run in its slow
    path; its kernel program does not parse label stacks) against Open vSwitch's netdev."""
    monkeypatch.setattr(test_openflow, "DATAPATH_TYPE", datapath)
    hs = _hosts(topology, "m")
    br = make_bridge(started, topology, *hs)
    ports = [started.ofport(h.switch_port) for h in hs]
    flows = tmp_path / "mpls.txt"
    flows.write_text("\n".join(table(*ports)) + "\n")
    env = {**os.environ, "OVS_RUNDIR": str(started.rundir.path)}
    ours_loaded = _load_each_version(f"unix:{started.rundir.path}/{br}.mgmt", env, flows)
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    got, ours = _run(hs, lambda: ofctl(started, br, "dump-flows"))
    _texts_match_ofctl(started, br)

    ohs = _hosts(topology, "n")
    with _ovs(topology, ohs) as o:
        obr = _ovs_bridge(o, topology, ohs, ports)
        target = f"unix:{o.rundir}/{obr}.mgmt"
        theirs_loaded = _load_each_version(target, o.paths.env, flows)
        for cmd in (["del-flows", target], ["add-flows", target, str(flows)]):
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *cmd], env=o.paths.env,
                           check=True, timeout=60)  # fmt: skip

        def dump() -> str:
            return subprocess.run(
                ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", target],
                env=o.paths.env, check=True, timeout=60, capture_output=True, text=True,
            ).stdout  # fmt: skip

        want, theirs = _run(ohs, dump)

    # Open vSwitch's own outcome, as this test expects it (so a broken baseline shows)
    assert len(want["b"]) == 5 and len(want["c"]) == 6, want
    # what each host received (a recirculated frame may come out later than the others)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert ours == theirs
    assert ours_loaded == theirs_loaded
    assert "rc=0\nrc=0\nrc=0" in ours_loaded["OpenFlow13"]
    assert theirs_loaded["OpenFlow13"].count(" actions=") == len(table(*ports))


def tunnel(a: int, b: int) -> list[str]:
    """a -> b: a label pushed on, then popped before the output; b -> a: pushed, then
    popped, the inner TTL decremented and looked up again by the inner IPv4 destination
    (a recirculation that resumes frozen actions, carried by the upgrade)."""
    return [
        f"table=0,priority=10,in_port={a},ip,actions=push_mpls:0x8847,"
        "set_field:16->mpls_label,resubmit(,1)",
        f"table=1,priority=10,mpls,mpls_label=16,actions=dec_mpls_ttl,pop_mpls:0x0800,output:{b}",
        f"table=0,priority=10,in_port={b},ip,actions=push_mpls:0x8847,"
        "set_field:17->mpls_label,resubmit(,2)",
        # dec_ttl after the pop: frozen with the resubmit (a frozen-actions recirculation)
        "table=2,priority=10,mpls,mpls_label=17,actions=pop_mpls:0x0800,dec_ttl,resubmit(,3)",
        f"table=3,priority=10,ip,nw_dst={NET}.1,actions=output:{a}",
    ]


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate"])
def test_upgrade_under_traffic_through_an_mpls_tunnel_loses_nothing(
    started: Sw, topology: Topology, tmp_path: Path, fault: str | None
) -> None:
    """``hitless upgrade`` under the shared traffic classes between two hosts whose IPv4
    packets cross the switch inside a label (push, match, dec_mpls_ttl, pop; one way with
    the recirculation after the pop): nothing lost (the shared handoff assertion), the
    rule counters went on, and the recirculating megaflows were carried."""
    a, b, _ = _hosts(topology, "t")
    br = make_bridge(started, topology, a, b)
    pa, pb = started.ofport(a.switch_port), started.ofport(b.switch_port)
    flows = tmp_path / "tunnel.txt"
    flows.write_text("\n".join(tunnel(pa, pb)) + "\n")
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    assert a.ping(f"{NET}.2", count=2, interval=0.05) and b.ping(f"{NET}.1", count=2, interval=0.05)
    dump = lambda: ofctl(started, br, "dump-flows")  # noqa: E731
    before = _counters(dump())
    assert all(n > 0 for n in before.values()), before

    report, res = handoff_under_traffic(started, [a, b], "upgrade", rates=Rates(udp_pps=500),
                                        fault=fault)  # fmt: skip
    assert report["ok"], report
    if fault is not None:  # armed in the new process: the traffic check must report it
        judge(violations(res, bound_of([report])), fault, res)
        return
    assert_handoff_traffic(res, bound_of([report]))
    def same_rules() -> dict[str, int] | None:
        now = _counters(dump())
        return now if set(now) == set(before) else None

    after = wait_for(same_rules, "the same rules after the upgrade")
    for rule, n in before.items():
        assert after[rule] > n + 1000, rule  # counted on, never restarted
    # (pinged first: at load the megaflows may have idled out since the traffic ended)
    assert a.ping(f"{NET}.2", count=1) and b.ping(f"{NET}.1", count=1)
    dp = started.appctl("dpctl/dump-flows").stdout
    assert "recirc" in dp and "pop_mpls" in dp, dp
