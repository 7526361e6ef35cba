"""Connection tracking through stock ovs-ofctl rules, side by side with real Open vSwitch
3.1 (dummy datapath, its own run directory): a stateful firewall (inside may open,
outside may only answer) and a DNAT service, the same packets injected into both with
netdev-dummy/receive. Compared: what each port transmitted (tx_pcap), the rules'
packet counters (ovs-ofctl dump-flows, which also checks that ovs-ofctl reads back our
encoding of ct/nat/exec), and dpctl/dump-conntrack."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from hitless.datapath.dummy import read_pcap
from tests.datapath.test_conntrack import ACK, FIN, SYN, tcp_frame, udp_frame
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.usefixtures("ovs")

VSCTL = [
    "add-br", "brct", "--", "set", "Bridge", "brct", "datapath_type=dummy",
    "--", "add-port", "brct", "p1", "--", "set", "Interface", "p1", "type=dummy", "ofport_request=1",
    "options:tx_pcap={rundir}/p1.pcap",
    "--", "add-port", "brct", "p2", "--", "set", "Interface", "p2", "type=dummy", "ofport_request=2",
    "options:tx_pcap={rundir}/p2.pcap",
]  # fmt: skip
VIP, CLIENT, SERVER = "10.0.0.100", "10.0.0.1", "10.0.0.2"
# Port 1 inside, port 2 outside. Everything IP goes through zone 5 (with NAT applied to
# connections that have it); new connections from inside are committed (to the VIP:
# DNAT to the server, mark 1); outside may answer established ones only.
RULES = [
    "table=0,priority=10,ip,actions=ct(table=1,zone=5,nat)",
    "table=0,priority=0,actions=drop",
    f"table=1,priority=20,ct_state=+trk+new,tcp,in_port=1,nw_dst={VIP},tp_dst=80,"
    f"actions=ct(commit,zone=5,nat(dst={SERVER}:8080),exec(set_field:0x1->ct_mark)),output:2",
    # OVN copies its ACL's label from a register into the connection (exec(move:...)).
    "table=1,priority=10,ct_state=+trk+new,ip,in_port=1,actions=load:0xabcd->NXM_NX_REG3[],"
    "ct(commit,zone=5,exec(move:NXM_NX_REG3[]->NXM_NX_CT_LABEL[96..127])),output:2",
    "table=1,priority=10,ct_state=+trk+est,ip,in_port=1,actions=output:2",
    "table=1,priority=10,ct_state=+trk+est,ip,in_port=2,actions=output:1",
    "table=1,priority=5,ct_state=+trk+new,ip,in_port=2,actions=drop",
    "table=1,priority=1,ct_state=+trk+inv,ip,actions=drop",
    # Not hit by the traffic: the OVN-style encodings (zone from a register, masked
    # exec writes, NAT ranges and flags, IPv6 NAT, ct_clear, matches on ct fields).
    "table=2,priority=1,ct_state=-new+est-rel-inv+trk,ct_mark=0x1/0x1,reg13=0x5,ip,"
    "actions=ct(commit,zone=NXM_NX_REG13[0..15],nat(src=10.0.0.1-10.0.0.5:2000-2999,"
    "persistent,random),exec(set_field:0x1/0x1->ct_label,set_field:0/0x1->ct_mark))",
    "table=2,priority=2,ct_state=+trk-inv,ct_zone=7,ct_nw_src=10.0.0.1,ct_nw_proto=6,ct_tp_dst=80,"
    "ct_label=0x2/0x2,ip,actions=ct_clear,ct(table=3,zone=NXM_NX_REG11[0..15],nat)",
    "table=2,priority=3,ipv6,actions=ct(commit,force,nat(dst=[fe80::1]:80))",
]
# (port, frame): what both switches receive, in order.
TRAFFIC = [
    ("p2", udp_frame(SERVER, CLIENT, 53, 5000)),  # unsolicited from outside: dropped
    ("p1", udp_frame(CLIENT, SERVER, 5000, 53)),  # a query from inside: committed
    ("p2", udp_frame(SERVER, CLIENT, 53, 5000)),  # its answer: established
    ("p1", tcp_frame(CLIENT, VIP, 1000, 80, SYN, seq=100)),  # to the service: DNAT
    ("p2", tcp_frame(SERVER, CLIENT, 8080, 1000, SYN | ACK, seq=500, ack=101)),
    ("p1", tcp_frame(CLIENT, VIP, 1000, 80, ACK, seq=101, ack=501)),
    ("p1", tcp_frame(CLIENT, VIP, 1000, 80, ACK, seq=101, ack=501, payload=b"GET /")),
    ("p2", tcp_frame(SERVER, CLIENT, 8080, 1000, ACK, seq=501, ack=106, payload=b"200")),
    # Data far outside the window: +inv on both. Without data: no range to check, +est.
    ("p2", tcp_frame(SERVER, CLIENT, 8080, 1000, ACK, seq=10**8, ack=106, payload=b"x")),
    ("p2", tcp_frame(SERVER, CLIENT, 8080, 1000, ACK, seq=10**8, ack=106)),
    ("p2", tcp_frame(SERVER, CLIENT, 22, 1001, SYN, seq=7)),  # new from outside: dropped
    ("p1", tcp_frame(CLIENT, VIP, 1000, 80, FIN | ACK, seq=106, ack=504)),
]


def _run(cmd: list[str], rundir: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OVS_RUNDIR": rundir}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


class Side:
    def __init__(self, rundir: str) -> None:
        self.rundir = rundir

    def ofctl(self, *args: str) -> str:
        r = _run(
            ["ovs-ofctl", "-O", "OpenFlow13", args[0], f"unix:{self.rundir}/brct.mgmt", *args[1:]],
            self.rundir,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    def appctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run(["ovs-appctl", "--timeout=20", *args], self.rundir)

    def sent(self, port: str) -> list[bytes]:
        path = f"{self.rundir}/{port}.pcap"
        return read_pcap(path) if os.path.exists(path) else []


@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    sides = []
    for rundir, vsctl in ((str(ovs.rundir), ovs.vsctl), (str(started.rundir.path), started.vsctl)):
        vsctl(*(a.format(rundir=rundir) for a in VSCTL))
        side = Side(rundir)
        wait_for(lambda: os.path.exists(f"{rundir}/brct.mgmt"), "brct OpenFlow socket")  # noqa: B023
        for r in RULES:
            side.ofctl("add-flow", r)
        sides.append(side)
    o, h = sides
    for port, frame in TRAFFIC:
        for side in (o, h):
            r = side.appctl("netdev-dummy/receive", port, frame.hex())
            assert r.returncode == 0, r.stderr
    return o, h


def _rules(text: str) -> list[str]:
    return sorted(re.sub(r" duration=[0-9.]+s,", "", ln) for ln in text.splitlines()[1:])


def test_firewall_and_dnat_forward_as_open_vswitch(both: tuple[Side, Side]) -> None:
    o, h = both
    # OVS writes its pcaps from the datapath thread: wait until both have the same count.
    wait_for(lambda: len(o.sent("p1")) >= 4 and len(o.sent("p2")) >= 5, "OVS transmitted")
    assert h.sent("p2") == o.sent("p2")
    assert h.sent("p1") == o.sent("p1")
    # What came out: the query, the SYN rewritten to the server, the ACK, the data and
    # the FIN to port 2; the answer, the SYN+ACK, the data and the bare ACK rewritten
    # back to the VIP to 1 (not the data outside the window, nor the SYN from outside).
    assert len(h.sent("p2")) == 5 and len(h.sent("p1")) == 4


def test_rule_counters_and_ct_encoding_as_open_vswitch(both: tuple[Side, Side]) -> None:
    o, h = both
    # OVS's revalidator publishes rule stats asynchronously: wait for its last one.
    want = _rules(h.ofctl("dump-flows"))
    wait_for(lambda: _rules(o.ofctl("dump-flows")) == want, "OVS counted every packet", timeout=10)
    assert any(
        "ct(commit,zone=5,nat(dst=10.0.0.2:8080),exec(set_field:0x1->ct_mark))" in r for r in want
    )
    assert any("n_packets=3," in r and "ct_state=+est+trk" in r and "in_port=1" in r for r in want)
    assert any("n_packets=1," in r and "ct_state=+inv+trk" in r for r in want)


def test_dump_conntrack_as_open_vswitch(both: tuple[Side, Side]) -> None:
    o, h = both
    ours = sorted(h.appctl("dpctl/dump-conntrack").stdout.splitlines())
    theirs = sorted(o.appctl("dpctl/dump-conntrack").stdout.splitlines())
    assert ours == theirs
    assert any("zone=5,mark=1,protoinfo=(state=CLOSING)" in ln for ln in ours), ours
    # The query's connection carries the label moved from reg3 into bits 96..127.
    assert any("udp," in ln and "labels=0xabcd" + "0" * 24 in ln for ln in ours), ours
