"""Test hooks on dummy bridges through stock ovs-appctl / ovs-ofctl: Interface type=dummy,
netdev-dummy/receive, tx_pcap, time/stop and time/warp (no real time waited)."""

from __future__ import annotations

import os
import re
import time

from hitless.datapath.dummy import read_pcap
from hitless.packet.flowstr import build_packet, parse_flow
from tests.switch import Sw, run
from tests.wait import wait_for

FLOW = "udp,in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,nw_ttl=64,udp_dst=53"


def dummy_bridge(sw: Sw, br: str = "br0", pcap: bool = True) -> None:
    opts = [f"options:tx_pcap={sw.rundir.path}/p2.pcap"] if pcap else []
    sw.vsctl(
        "add-br", br, "--", "set", "Bridge", br, "datapath_type=dummy", "fail_mode=secure",
        "--", "add-port", br, "p1", "--", "set", "Interface", "p1", "type=dummy",
        "ofport_request=1",
        "--", "add-port", br, "p2", "--", "set", "Interface", "p2", "type=dummy",
        "ofport_request=2", *opts,
    )  # fmt: skip


def ofctl(sw: Sw, *args: str) -> str:
    target = f"unix:{sw.rundir.path}/br0.mgmt"
    wait_for(lambda: os.path.exists(target[5:]), "br0's OpenFlow socket")
    cmd, *rest = args
    return run(["ovs-ofctl", "-O", "OpenFlow13", cmd, target, *rest]).stdout


def n_packets(dump: str, needle: str) -> int | None:
    for line in dump.splitlines():
        if needle in line:
            m = re.search(r"n_packets=(\d+)", line)
            return int(m.group(1)) if m else None
    return None


def test_receive_on_dummy_ports_counts_and_outputs(started: Sw) -> None:
    sw = started
    dummy_bridge(sw)
    assert sw.get("Interface", "p1", "error") == "[]" and sw.ofport("p1") == 1
    ofctl(sw, "add-flow", "priority=10,in_port=1,actions=output:2")
    sw.appctl("netdev-dummy/receive", "p1", FLOW)
    # The reply comes after the packet went through: counters and output are there.
    assert n_packets(ofctl(sw, "dump-flows"), "in_port=1") == 1
    expected = build_packet(parse_flow(FLOW))
    assert read_pcap(f"{sw.rundir.path}/p2.pcap") == [expected]
    # Hex, several packets at once, padded with --len.
    sw.appctl("netdev-dummy/receive", "p1", expected.hex(), expected.hex(), "--len", "64")
    assert n_packets(ofctl(sw, "dump-flows"), "in_port=1") == 3
    sent = read_pcap(f"{sw.rundir.path}/p2.pcap")
    assert sent[1:] == [expected.ljust(64, b"\0")] * 2
    # A packet from p2 matches nothing (fail_mode=secure): not sent anywhere.
    sw.appctl("netdev-dummy/receive", "p2", FLOW.replace("in_port=1", "in_port=2"))
    assert len(read_pcap(f"{sw.rundir.path}/p2.pcap")) == 3


def test_receive_errors(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, pcap=False)
    r = sw.appctl("netdev-dummy/receive", "nosuch", FLOW, check=False)
    assert r.returncode == 2 and r.stderr.startswith("no such dummy netdev\n")
    r = sw.appctl("netdev-dummy/receive", "p1", "udp,udp_dst=x", check=False)
    assert r.returncode == 2 and r.stderr.startswith("syntax error at udp,udp_dst=x")
    r = sw.appctl("netdev-dummy/receive", "p1", "tp_dst=53", check=False)
    assert "prerequisites not met" in r.stderr
    r = sw.appctl("time/warp", "-5", check=False)
    assert r.returncode == 2 and "invalid MSECS" in r.stderr


def test_idle_and_hard_timeouts_with_time_warp(started: Sw) -> None:
    """Rules with a 10 s idle and a 30 s hard timeout expire when the daemon's clock is
    warped, and only then; the whole test takes no real time waiting."""
    sw = started
    dummy_bridge(sw, pcap=False)
    t0 = time.monotonic()
    sw.appctl("time/stop")
    ofctl(sw, "add-flow", "priority=10,in_port=1,idle_timeout=10,actions=output:2")
    ofctl(sw, "add-flow", "priority=10,in_port=2,hard_timeout=30,actions=output:1")
    sw.appctl("netdev-dummy/receive", "p1", FLOW)
    assert "warped" in sw.appctl("time/warp", "6000").stdout
    dump = ofctl(sw, "dump-flows")
    assert "idle_timeout=10" in dump and dump.count("duration=6s,") == 2  # stopped clock: exact
    sw.appctl("netdev-dummy/receive", "p1", FLOW)  # used again at 6 s: lives to 16 s
    sw.appctl("time/warp", "9000")
    assert "idle_timeout=10" in ofctl(sw, "dump-flows")
    sw.appctl("time/warp", "2000")  # 17 s: idle for 11 s
    dump = ofctl(sw, "dump-flows")
    assert "idle_timeout=10" not in dump and "hard_timeout=30" in dump
    assert sw.appctl("dpctl/dump-flows", "br0").stdout.strip() == ""  # its megaflow too
    # A stepped warp: 15 s in 1 s steps, every timer in between fires on the way.
    assert sw.appctl("time/warp", "15000", "1000").stdout == "warped\n"
    assert "hard_timeout=30" not in ofctl(sw, "dump-flows")
    assert time.monotonic() - t0 < 30  # no real waiting: 47 s of switch time went by


def test_mac_ageing_with_time_warp(started: Sw) -> None:
    sw = started
    sw.vsctl(
        "add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy",
        "other_config:mac-aging-time=20",
        "--", "add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=dummy",
        "--", "add-port", "br0", "p2", "--", "set", "Interface", "p2", "type=dummy",
    )  # fmt: skip
    sw.appctl("time/stop")
    sw.appctl("netdev-dummy/receive", "p1", FLOW)
    assert "00:00:00:00:00:01" in sw.appctl("fdb/show", "br0").stdout
    sw.appctl("time/warp", "15000", "1000")
    assert "00:00:00:00:00:01" in sw.appctl("fdb/show", "br0").stdout
    sw.appctl("time/warp", "10000", "1000")
    assert "00:00:00:00:00:01" not in sw.appctl("fdb/show", "br0").stdout
