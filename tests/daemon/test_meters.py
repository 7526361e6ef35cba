"""OpenFlow meters end to end: stock ``ovs-ofctl -O OpenFlow13`` adds a 100 packets/s drop
meter and a rule ``actions=meter:1,output:B``; real UDP datagrams sent much faster from
namespace host A reach B only at the meter's rate, and the meter's band statistics count
exactly the datagrams it dropped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from tests.netns import Host, Topology, UdpSink, udp_send
from tests.switch import BIN, Sw
from tests.traffic import fault_env, judge
from tests.wait import wait_for

pytestmark = pytest.mark.netns

RATE = 100  # packets/s
BURST = RATE  # no burst given: one second's worth, as Open vSwitch's userspace datapath
SENT = 3000
PORT = 5001


def ofctl(sw: Sw, br: str, cmd: str, *args: str) -> str:
    return sw.ofctl(br, cmd, *args)


def upgrade(sw: Sw, env: dict[str, str] | None = None) -> dict[str, object]:
    r = subprocess.run(
        [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    doc: dict[str, object] = json.loads(r.stdout)
    return doc


def meter_stats(sw: Sw, br: str) -> tuple[int, int]:
    """(packet_in_count, the drop band's packet_count) of meter 1."""
    out = ofctl(sw, br, "meter-stats")
    m = re.search(r"meter:1 .*packet_in_count:(\d+)", out)
    band = re.search(r"0: packet_count:(\d+)", out)
    assert m is not None and band is not None, out
    return int(m.group(1)), int(band.group(1))


def test_drop_meter_limits_real_traffic_and_counts_the_drops(
    started: Sw, topology: Topology
) -> None:
    sw = started
    a = topology.add_host("a", "10.83.0.1/24")
    b = topology.add_host("b", "10.83.0.2/24")
    a.set_neigh(b.addr, b.mac)
    br = topology.name("br")
    sw.vsctl(
        "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure",
        "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
    )  # fmt: skip
    pa, pb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    ofctl(sw, br, "add-meter", f"meter=1,pktps,band=type=drop,rate={RATE}")
    ofctl(sw, br, "add-flow", f"priority=100,udp,in_port={pa},tp_dst={PORT},actions=meter:1,output:{pb}")  # fmt: skip
    assert "rate=100" in ofctl(sw, br, "dump-meters")
    assert "meter:1" in ofctl(sw, br, "dump-flows")

    sink = UdpSink(b, PORT, idle=2.0)
    t0 = time.monotonic()
    # Paced (30 datagrams every 5 ms, ~5,000/s) so no kernel queue on the way overflows:
    # every datagram reaches the meter, which must hold them to 100/s.
    udp_send(a, b.addr, PORT, SENT, batch=30, pause=0.005)
    wait_for(lambda: meter_stats(sw, br)[0] >= SENT, f"{SENT} datagrams through the meter")
    t1 = time.monotonic()  # every datagram has been through the meter by now
    received = len(set(sink.seqs()))

    metered, dropped = meter_stats(sw, br)
    assert metered == SENT
    # A token bucket that starts full passes at most its burst plus the rate times the
    # time the datagrams took to arrive (all of them arrived within [t0, t1]), and at
    # least the burst (nothing else uses the meter).
    allowance = BURST + RATE * (t1 - t0) + 1
    assert BURST <= received <= allowance, (received, allowance, t1 - t0)
    assert received < SENT
    assert dropped == SENT - received
    flows = ofctl(sw, br, "dump-flows")
    assert f"n_packets={SENT}" in flows, flows  # the rule counts what reached the meter


def phase(sw: Sw, br: str, a: Host, b: Host) -> tuple[int, float]:
    """Send SENT paced datagrams A -> B; (received, seconds until all were metered)."""
    before = meter_stats(sw, br)[0]
    sink = UdpSink(b, PORT, idle=2.0)
    t0 = time.monotonic()
    udp_send(a, b.addr, PORT, SENT, batch=30, pause=0.005)
    wait_for(lambda: meter_stats(sw, br)[0] >= before + SENT, f"{SENT} more through the meter")
    t1 = time.monotonic()
    return len(set(sink.seqs())), t1 - t0


@pytest.mark.parametrize("fault", [None, "flush-after-adopt"])
def test_meter_is_enforced_and_keeps_counting_after_an_upgrade(
    started: Sw, topology: Topology, fault: str | None
) -> None:
    """The new process pushes the imported meters into the datapath it adopted: the
    megaflows it adopted (with their Meter actions) and new ones are metered again.
    With ``flush-after-adopt`` armed in the new process (meter and rule counters back to
    0), the counter checks must report it (tests/traffic.py ``judge``)."""
    sw = started
    a = topology.add_host("a", "10.84.0.1/24")
    b = topology.add_host("b", "10.84.0.2/24")
    a.set_neigh(b.addr, b.mac)
    br = topology.name("br")
    sw.vsctl(
        "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure",
        "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
    )  # fmt: skip
    pa, pb = sw.ofport(a.switch_port), sw.ofport(b.switch_port)
    ofctl(sw, br, "add-meter", f"meter=1,pktps,band=type=drop,rate={RATE}")
    ofctl(sw, br, "add-flow", f"priority=100,udp,in_port={pa},tp_dst={PORT},actions=meter:1,output:{pb}")  # fmt: skip
    got1, _ = phase(sw, br, a, b)
    assert got1 < SENT
    pid = sw.daemon_pid
    upgrade(sw, fault_env(fault))
    assert sw.daemon_pid != pid
    got2, took = phase(sw, br, a, b)
    metered, dropped = meter_stats(sw, br)
    problems = []
    if not BURST <= got2 <= BURST + RATE * took + 1:
        problems.append(f"not metered after the upgrade: {got2} passed in {took:.1f} s")
    # Counted before and after, none lost.
    if (metered, dropped) != (2 * SENT, 2 * SENT - got1 - got2):
        problems.append(
            f"meter counters: {metered} metered, {dropped} dropped, not {2 * SENT} and"
            f" {2 * SENT - got1 - got2}"
        )
    flows = ofctl(sw, br, "dump-flows")
    if f"n_packets={2 * SENT}" not in flows:
        problems.append(f"rule counters: not n_packets={2 * SENT} in {flows}")
    judge(problems, fault)
