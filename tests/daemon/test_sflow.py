"""sFlow (Bridge.sflow) side by side with Open vSwitch 3.1 (netdev datapath in its own
namespace) in the same run: the same sFlow row (agent lo, header 128, sampling 10,
polling 2) and the same traffic between two namespace hosts (ICMP echo requests and
replies); a collector on loopback next to each switch reads the datagrams back
(hitless.ofproto.sflow.decode_datagram, written against the sFlow v5 specification).
Sampling is random: the number of samples is judged against the binomial spread, the
fields against Open vSwitch's. A hitless upgrade keeps the agent: its sequence numbers
go on and nothing is lost."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hitless.ofproto.sflow import FLOW_SOURCE, decode_datagram
from tests.daemon.test_qos import hitless_pair, ovs_pair
from tests.netns import Topology, sh
from tests.switch import Sw, run
from tests.traffic import COLD, caught_in_traffic, must_catch, upgrade_under_udp
from tests.upgrade.builds import build
from tests.wait import wait_for

pytestmark = pytest.mark.netns

SAMPLING = 10
PINGS = 300  # 600 ICMP frames through the switch: 60 samples expected, sd 7.3

_COLLECT = r"""
import select, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: a busy machine drops none
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
deadline = None
while deadline is None or time.monotonic() < deadline:
    ready, _, _ = select.select([s] if deadline else [s, sys.stdin], [], [], 0.2)
    if s in ready:
        print(s.recv(65535).hex(), flush=True)
    if sys.stdin in ready:  # the test says: traffic is over
        sys.stdin.readline()
        deadline = time.monotonic() + float(sys.argv[1])
"""


class Collector:
    """A UDP collector on 127.0.0.1 (in namespace ``ns``, or here): ``port``; ``stop()``
    keeps listening ``tail`` seconds more and returns the decoded datagrams."""

    def __init__(self, ns: str | None = None, tail: float = 5.0) -> None:
        cmd = [sys.executable, "-c", _COLLECT, str(tail)]
        if ns is not None:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> list[dict[str, Any]]:
        return [decode_datagram(d) for d in self.raw()]

    def raw(self) -> list[bytes]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        out, _ = self.proc.communicate(timeout=60)
        return [bytes.fromhex(ln) for ln in out.split() if ln]


def _sflow_row(port: int) -> list[str]:
    return ["--", "--id=@s", "create", "sflow", "agent=lo", f'target="127.0.0.1:{port}"',
            "header=128", f"sampling={SAMPLING}", "polling=2"]  # fmt: skip


def flows(dgrams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for d in dgrams for s in d["samples"] if s["format"] == 1]


def counters(dgrams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for d in dgrams for s in d["samples"] if s["format"] == 2]


def icmp(sample: dict[str, Any]) -> bool:
    hdr = dict(sample["records"])[1]["header"]
    return hdr[12:14] == b"\x08\x00" and hdr[23] == 1


def ifindex(dev: str, ns: str | None = None) -> int:
    cmd = ["cat", f"/sys/class/net/{dev}/ifindex"]
    return int(sh(["ip", "netns", "exec", ns, *cmd] if ns else cmd).stdout)


def consistent(dgrams: list[dict[str, Any]]) -> None:
    """What a collector checks of one agent's stream: version 5, agent 127.0.0.1, datagram
    and flow sample sequence numbers without gaps, the pool growing by the rate."""
    assert dgrams
    assert {d["version"] for d in dgrams} == {5}
    assert {bytes(d["agent"]) for d in dgrams} == {socket.inet_aton("127.0.0.1")}
    seqs = [d["seq"] for d in dgrams]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    fs = flows(dgrams)
    fseq = [f["seq"] for f in fs]
    assert fseq == list(range(fseq[0], fseq[0] + len(fs))), fseq
    assert all(f["pool"] == f["seq"] * f["rate"] for f in fs)


@contextmanager
def collecting(ns: str | None = None, tail: float = 5.0) -> Iterator[Collector]:
    c = Collector(ns, tail)
    try:
        yield c
    finally:
        if c.proc.poll() is None:
            c.proc.kill()
            c.proc.wait()


def test_sflow_samples_reach_a_collector_as_open_vswitch_sends_them(
    started: Sw, topology: Topology
) -> None:
    sw = started
    a, b, br = hitless_pair(sw, topology, "10.78.0")
    with collecting() as col:
        sw.vsctl(*_sflow_row(col.port)[1:], "--", "set", "bridge", br, "sflow=@s")
        assert "hitless_unsupported" not in sw.get("Bridge", br, "status")
        assert a.ping(b.addr, count=PINGS, interval=0.01)
        ours = col.stop()
    with ovs_pair(topology, "10.78.1") as (oa, ob, ovs, ns):
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])  # agent=lo: 127.0.0.1, as ours
        with collecting(ns) as ocol:
            ovs.vsctl(*_sflow_row(ocol.port)[1:], "--", "set", "bridge", "br0", "sflow=@s")
            assert oa.ping(ob.addr, count=PINGS, interval=0.01)
            theirs = ocol.stop()
        o_if = {h.name: ifindex(h.switch_port, ns) for h in (oa, ob)}
    h_if = {h.name: ifindex(h.switch_port) for h in (a, b)}

    for dgrams in (ours, theirs):
        consistent(dgrams)
    mine, other = [f for f in flows(ours) if icmp(f)], [f for f in flows(theirs) if icmp(f)]
    print(f"sFlow 1 in {SAMPLING} of {2 * PINGS} ICMP frames: hitless {len(mine)} samples "
          f"in {len(ours)} datagrams, Open vSwitch {len(other)} in {len(theirs)}")  # fmt: skip
    # 600 frames at 1/10: 60 expected, binomial sd 7.3; both within 5 sd.
    for n in (len(mine), len(other)):
        assert 24 <= n <= 97, n
    # The same sample fields and records as Open vSwitch's.
    for got, want, ifs in ((mine, other, h_if), (other, other, o_if)):
        for f in got:
            assert f["rate"] == SAMPLING and f["drops"] == 0
            assert f["source"] == want[0]["source"] == FLOW_SOURCE
            assert [r[0] for r in f["records"]] == [r[0] for r in want[0]["records"]] == [1001, 1]
            raw = dict(f["records"])[1]
            assert raw["frame_length"] == 102 and raw["stripped"] == 4
            assert raw["header_length"] == 98 and raw["header"][14] == 0x45
            src = raw["header"][6:12]
            frm, to = (a, b) if got is mine else (oa, ob)
            if src == frm.mac_bytes:
                assert (f["input"], f["output"]) == (ifs[frm.name], ifs[to.name])
            else:
                assert (f["input"], f["output"]) == (ifs[to.name], ifs[frm.name])
    # Counter samples: one per port, the same records; b's port counted the echo
    # requests it sent to b.
    for dgrams, ifs, host, name in ((ours, h_if, b, b.switch_port), (theirs, o_if, ob, ob.switch_port)):
        cs = [c for c in counters(dgrams) if c["source"] == ifs[host.name]]
        assert cs, "no counter sample for the port"
        recs = dict(cs[-1]["records"])
        assert [r[0] for r in cs[-1]["records"]] == [2, 1004, 1005, 1]
        assert recs[1005]["name"] == name
        g = recs[1]
        assert g["if_index"] == ifs[host.name] and g["if_type"] == 6 and g["if_status"] == 3
        assert g["out_ucast"] >= PINGS and g["in_ucast"] >= PINGS
    mine_g = dict(counters(ours)[-1]["records"])[1]
    theirs_g = dict(counters(theirs)[-1]["records"])[1]
    assert mine_g["if_speed"] == theirs_g["if_speed"]
    assert mine_g["if_direction"] == theirs_g["if_direction"]

    # Removed: nothing more is sampled.
    with collecting() as col:
        sw.vsctl("clear", "bridge", br, "sflow")
        assert a.ping(b.addr, count=20, interval=0.01)
        assert flows(col.stop()) == []


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate", COLD])
def test_an_upgrade_keeps_the_sflow_agent(
    started: Sw, topology: Topology, fault: str | None
) -> None:
    """One agent throughout (sequence numbers and uptime go on), the traffic judged as
    every handoff's; a new process that stops reading for 100 ms, sends frames twice
    or starts cold must fail that."""
    sw = started
    a, b, br = hitless_pair(sw, topology, "10.78.2")
    with collecting() as col:
        sw.vsctl(*_sflow_row(col.port)[1:], "--", "set", "bridge", br, "sflow=@s")
        problems, res = upgrade_under_udp(sw, [a, b], fault, port=9711)
        dgrams = col.stop()
    if caught_in_traffic(problems, fault, res):
        return
    sent = [c.sent for c in res.classes]
    fs = flows(dgrams)
    udp = [f for f in fs if dict(f["records"])[1]["header"][23] == 17]
    expected = sum(sent) / 10
    print(f"upgrade with sFlow: {problems}, sent {sent}; {len(dgrams)} datagrams, "
          f"{len(udp)} UDP samples of {sum(sent)} frames ({expected:.0f} expected)")  # fmt: skip
    # One agent throughout: no sequence restarts at 1, uptime never goes back.
    assert "not sent" not in sw.log()
    with must_catch(fault):
        consistent(dgrams)
        ups = [d["uptime"] for d in dgrams]
        assert ups == sorted(ups)
        # At 1/10: of 8,000 frames 800 expected, sd 27, and 650-950 allowed.
        assert 0.8125 * expected <= len(udp) <= 1.1875 * expected, len(udp)
        ports = {ifindex(a.switch_port), ifindex(b.switch_port)}
        assert all({f["input"], f["output"]} == ports for f in udp)
        assert not problems, problems


def test_a_downgrade_to_a_build_without_sflow_is_refused_up_front(
    started: Sw, topology: Topology
) -> None:
    """The sessions release (77f006e) predates sFlow: it could not read the megaflows'
    sample action. The running switch refuses the handoff before freezing anything and
    says what to do; it keeps running and sampling. Once sFlow is cleared, the same
    downgrade goes through (and back up)."""
    sw = started
    old = build("77f006e")
    cli = Path(sys.executable).parent / "hitless"
    a, b, br = hitless_pair(sw, topology, "10.78.4")
    pid = sw.daemon_pid
    with collecting() as col:
        sw.vsctl(*_sflow_row(col.port)[1:], "--", "set", "bridge", br, "sflow=@s")
        assert a.ping(b.addr, count=10, interval=0.01)
        assert "sample(" in sw.appctl("dpctl/dump-flows", br).stdout
        r = run([str(cli), "downgrade", "--rundir", str(sw.rundir.path), "--to",
                 str(old.vswitchd), "--json"], check=False)  # fmt: skip
        print(f"downgrade with sFlow on: exit {r.returncode}: {r.stdout.strip()}")
        assert r.returncode != 0
        reason = json.loads(r.stdout)["reason"]
        assert "sample action" in reason and f"ovs-vsctl clear Bridge {br} sflow" in reason, reason
        assert sw.daemon_pid == pid
        assert a.ping(b.addr, count=PINGS, interval=0.01)  # still switching, still sampling
        assert len([f for f in flows(col.stop()) if icmp(f)]) >= 24

    sw.vsctl("clear", "bridge", br, "sflow")
    wait_for(lambda: "sample(" not in sw.appctl("dpctl/dump-flows", br).stdout,
             "the flows re-translated without sampling")  # fmt: skip
    for direction, to in (("downgrade", old.vswitchd), ("upgrade", cli.parent / "hitless-vswitchd")):
        tool = cli if direction == "downgrade" else old.hitless
        r = run([str(tool), direction, "--rundir", str(sw.rundir.path), "--to", str(to), "--json"],
                check=False)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert a.ping(b.addr, count=3, interval=0.05)
    assert sw.daemon_pid != pid
