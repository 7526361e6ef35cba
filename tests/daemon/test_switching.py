"""NORMAL switching end to end: a bridge configured with stock ovs-vsctl, hosts in
network namespaces, real frames through the netdev and the ebpf datapaths (every test
runs on both)."""

from __future__ import annotations

import re
import sys
import threading

import pytest

from tests.netns import Topology, UdpSink, udp_send
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns
DATAPATH_TYPE = "netdev"


@pytest.fixture(autouse=True, params=["netdev", "ebpf"])
def datapath_type(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "DATAPATH_TYPE", request.param)
    return str(request.param)


_TCP_SERVER = r"""
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); print("ready", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    h.update(b); n += len(b)
print(n, h.hexdigest(), flush=True)
"""

_TCP_CLIENT = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[2]))
c = socket.create_connection((sys.argv[1], 5201), timeout=30); c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"""


def bridge(sw: Sw, topo: Topology, *ports_and_settings: list[str]) -> str:
    br = topo.name("br")
    args = ["add-br", br, "--", "set", "bridge", br, f"datapath_type={DATAPATH_TYPE}"]
    for extra in ports_and_settings:
        args += ["--", "add-port", br, *extra]
    sw.vsctl(*args)
    return br


def test_tcp_transfer_arrives_intact(started: Sw, topology: Topology) -> None:
    a = topology.add_host("a", "10.93.0.1/24")
    b = topology.add_host("b", "10.93.0.2/24")
    bridge(started, topology, [a.switch_port], [b.switch_port])
    assert a.ping(b.addr, count=2)
    server = b.popen([sys.executable, "-c", _TCP_SERVER, b.addr])
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    sent = a.run([sys.executable, "-c", _TCP_CLIENT, b.addr, str(8 << 20)]).stdout.split()
    received, _ = server.communicate(timeout=60)
    assert received.split() == sent  # 8 MiB, same length and SHA-256


def test_access_vlans_are_isolated(started: Sw, topology: Topology) -> None:
    a = topology.add_host("a", "10.94.0.1/24")
    b = topology.add_host("b", "10.94.0.2/24")
    c = topology.add_host("c", "10.94.0.3/24")
    t = topology.add_host("t", "10.94.0.4/24", vlan=10)  # sends 802.1Q frames, VLAN 10
    br = bridge(
        started,
        topology,
        [a.switch_port, "tag=10"],
        [b.switch_port, "tag=10"],
        [c.switch_port, "tag=20"],
        [t.switch_port, "trunks=10,30"],
    )
    assert a.ping(b.addr, count=2)
    assert a.ping(t.addr, count=2)  # access 10 <-> trunk, tagged on the trunk side
    c_rx = c.counter("rx_packets")
    assert not a.ping(c.addr, count=2, timeout=1)
    assert not t.ping(c.addr, count=1, timeout=1)
    # Not one frame of VLAN 10 (not even the ARP broadcasts) reached VLAN 20's port.
    assert c.counter("rx_packets") == c_rx
    fdb = started.appctl("fdb/show", br).stdout
    assert re.search(rf"\s10\s+{a.mac}\s", fdb) and not re.search(rf"\s20\s+{a.mac}\s", fdb)


def test_mac_move_redirects_traffic_to_the_new_port(started: Sw, topology: Topology) -> None:
    a = topology.add_host("a", "10.95.0.1/24")
    b = topology.add_host("b", "10.95.0.2/24")
    c = topology.add_host("c", "10.95.0.3/24")
    br = bridge(started, topology, [a.switch_port], [b.switch_port], [c.switch_port])
    assert a.ping(b.addr, count=2)
    pb, pc = started.ofport(b.switch_port), started.ofport(c.switch_port)
    assert re.search(rf"^\s*{pb}\s+0\s+{b.mac}\s", started.appctl("fdb/show", br).stdout, re.M)
    # b's address and MAC move to host c's port (a VM migrating, say).
    b.run(["ip", "link", "set", "eth0", "down"])
    c.run(["ip", "addr", "flush", "dev", "eth0"])
    c.run(["ip", "link", "set", "eth0", "address", b.mac])
    c.run(["ip", "addr", "add", b.ip, "dev", "eth0"])
    c.run(
        [
            sys.executable,
            "-c",
            "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
            f"s.sendto(b'moved', ('{a.addr}', 9))",
        ]
    )  # c speaks first: the switch relearns
    fdb = started.appctl("fdb/show", br).stdout
    assert re.search(rf"^\s*{pc}\s+0\s+{b.mac}\s", fdb, re.M), fdb
    assert a.ping(b.addr, count=3)  # now answered by c, through the revalidated flows
    flows = started.appctl("dpctl/dump-flows", br).stdout
    assert not re.search(rf"dst={b.mac}.*actions:{pb}$", flows, re.M), flows


def test_adding_and_removing_ports_while_traffic_runs_loses_nothing(
    started: Sw, topology: Topology
) -> None:
    a = topology.add_host("a", "10.96.0.1/24")
    b = topology.add_host("b", "10.96.0.2/24")
    c = topology.add_host("c", "10.96.0.3/24")
    d = topology.add_host("d", "10.96.0.4/24")
    br = bridge(started, topology, [a.switch_port], [b.switch_port])
    assert a.ping(b.addr, count=2)
    sink = UdpSink(b, 7001, idle=2.0)
    count = 40000
    sender = threading.Thread(
        target=udp_send, args=(a, b.addr, 7001, count), kwargs={"batch": 20, "pause": 0.002}
    )
    tx0 = a.counter("tx_packets")
    sender.start()
    wait_for(lambda: a.counter("tx_packets") > tx0 + 200, "the traffic to flow")
    started.vsctl("add-port", br, c.switch_port)  # each waits until the switch applied it
    started.vsctl("add-port", br, d.switch_port)
    started.vsctl("del-port", br, c.switch_port)
    started.vsctl("set", "port", d.switch_port, "tag=5")
    # every change landed while the traffic still flowed (otherwise nothing was tested)
    assert sender.is_alive(), "the sender finished before the port changes were applied"
    sender.join(60)
    seqs = sink.seqs()
    assert sorted(set(seqs)) == list(range(count)), f"lost {count - len(set(seqs))} of {count}"
    assert a.ping(b.addr, count=1)
