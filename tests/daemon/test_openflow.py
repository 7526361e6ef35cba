"""OpenFlow end to end: stock ``ovs-ofctl -O OpenFlow13`` programs a bridge of the real
daemon over its management socket, and real packets between namespace hosts follow the
rules (forward, drop, VLAN rewrite, select group); counters match the traffic."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from tests.netns import Host, Topology
from tests.switch import Sw, run
from tests.wait import eventually, wait_for

pytestmark = pytest.mark.netns


# The datapath make_bridge uses; tests that run against every provider set it through
# the ``datapath_type`` fixture of their module.
DATAPATH_TYPE = "netdev"


def make_bridge(sw: Sw, topo: Topology, *hosts: Host) -> str:
    br = topo.name("br")
    args = ["add-br", br, "--", "set", "bridge", br, f"datapath_type={DATAPATH_TYPE}"]
    for h in hosts:
        args += ["--", "add-port", br, h.switch_port]
    sw.vsctl(*args)
    return br


def ofctl(sw: Sw, br: str, cmd: str, *args: str, check: bool = True) -> str:
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    r = run(["ovs-ofctl", "-O", "OpenFlow13", cmd, target, *args], check=check)
    return r.stdout + r.stderr


def ofctl_opts(sw: Sw, br: str, opts: list[str], cmd: str, *args: str) -> str:
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    return run(["ovs-ofctl", "-O", "OpenFlow13", *opts, cmd, target, *args]).stdout


def n_packets(sw: Sw, br: str, pattern: str) -> int:
    """n_packets of the one rule whose dump-flows line contains ``pattern``."""
    lines = [line for line in ofctl(sw, br, "dump-flows").splitlines() if pattern in line]
    assert len(lines) == 1, (pattern, lines)
    m = re.search(r"n_packets=(\d+)", lines[0])
    assert m is not None
    return int(m.group(1))


def static_neighbours(*hosts: Host) -> None:
    for h in hosts:
        for o in hosts:
            if o is not h:
                h.set_neigh(o.addr, o.mac)


def test_forward_drop_counters_and_delete(started: Sw, topology: Topology) -> None:
    a = topology.add_host("a", "10.71.0.1/24")
    b = topology.add_host("b", "10.71.0.2/24")
    c = topology.add_host("c", "10.71.0.3/24")
    br = make_bridge(started, topology, a, b, c)
    na, nb = started.ofport(a.switch_port), started.ofport(b.switch_port)
    static_neighbours(a, b, c)
    assert "priority=0 actions=NORMAL" in ofctl(started, br, "dump-flows")
    assert a.ping(b.addr, count=2)  # NORMAL switching on a fresh bridge

    ofctl(started, br, "del-flows")
    assert not a.ping(b.addr, count=1, timeout=1)  # no rules: table miss drops

    ofctl(started, br, "add-flow", f"in_port={na},actions=output:{nb}")
    ofctl(started, br, "add-flow", f"in_port={nb},actions=output:{na}")
    c_rx = c.counter("rx_packets")
    assert a.ping(b.addr, count=5)
    assert n_packets(started, br, f"in_port={na} ") == 5
    assert n_packets(started, br, f"in_port={nb} ") == 5
    assert c.counter("rx_packets") == c_rx  # unicast rules: nothing reached c

    ofctl(started, br, "add-flow", f"priority=40000,icmp,in_port={na},actions=drop")
    b_rx = b.counter("rx_packets")
    assert not a.ping(b.addr, count=3, timeout=1)
    assert b.counter("rx_packets") == b_rx
    assert n_packets(started, br, "actions=drop") == 3

    ofctl(started, br, "del-flows", "icmp")  # non-strict: only the icmp rule
    assert "actions=drop" not in ofctl(started, br, "dump-flows")
    assert a.ping(b.addr, count=2)

    ports = ofctl(started, br, "dump-ports")
    assert re.search(rf"port\s+{na}: rx pkts=[1-9]", ports), ports
    tables = ofctl(started, br, "dump-tables")
    assert re.search(r"table 0:\s+active=2, lookup=\d+, matched=\d+", tables), tables


def test_vlan_rewrites_on_the_wire(started: Sw, topology: Topology) -> None:
    a = topology.add_host("a", "10.72.0.1/24")
    t = topology.add_host("t", "10.72.0.2/24", vlan=10)  # only speaks 802.1Q VLAN 10
    br = make_bridge(started, topology, a, t)
    na, nt = started.ofport(a.switch_port), started.ofport(t.switch_port)
    static_neighbours(a, t)
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flow", f"in_port={na},actions=mod_vlan_vid:10,output:{nt}")
    ofctl(started, br, "add-flow", f"in_port={nt},dl_vlan=10,actions=strip_vlan,output:{na}")
    assert a.ping(t.addr, count=3)  # t only answers tagged frames; a only untagged ones
    # Rewrite to the wrong VLAN: t's shim ignores VLAN 11.
    ofctl(started, br, "mod-flows", f"in_port={na},actions=mod_vlan_vid:11,output:{nt}")
    assert not a.ping(t.addr, count=2, timeout=1)


_SPRAY = r"""
import socket, sys
for i in range(int(sys.argv[3])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x" * 32, (sys.argv[1], int(sys.argv[2])))
    s.close()
"""


def test_select_group_spreads_flows_across_two_ports(started: Sw, topology: Topology) -> None:
    a = topology.add_host("a", "10.73.0.1/24")
    b1 = topology.add_host("b1", "10.73.0.2/24")
    b2 = topology.add_host("b2", "10.73.0.3/24")
    br = make_bridge(started, topology, a, b1, b2)
    n1, n2 = started.ofport(b1.switch_port), started.ofport(b2.switch_port)
    a.set_neigh("10.73.0.9", "02:00:00:00:73:09")  # a "service" address behind the group
    ofctl(started, br, "del-flows")  # nothing but the group rule forwards
    # selection_method=dp_hash (an OpenFlow 1.5 group property): the datapath's 5-tuple
    # hash, the ports in it; a group without a method hashes as Open vSwitch's does,
    # symmetrically, UDP by its addresses alone (one bucket for all of these)
    target = f"unix:{started.rundir.path}/{br}.mgmt"
    group = f"group_id=1,type=select,selection_method=dp_hash,bucket=output:{n1},bucket=output:{n2}"
    run(["ovs-ofctl", "-O", "OpenFlow15", "add-group", target, group])
    ofctl(started, br, "add-flow", "priority=10,udp,nw_dst=10.73.0.9,actions=group:1")
    rx = (b1.counter("rx_packets"), b2.counter("rx_packets"))
    n = 200
    a.run([sys.executable, "-c", _SPRAY, "10.73.0.9", "9", str(n)])

    def spread() -> tuple[int, int] | None:  # the slow path may still be working through the burst
        got = (b1.counter("rx_packets") - rx[0], b2.counter("rx_packets") - rx[1])
        return got if sum(got) >= n else None

    got = wait_for(spread, f"the {n} datagrams out of the group's ports")
    assert sum(got) == n and min(got) > 0, got  # every datagram, spread over both
    assert n_packets(started, br, "group:1") == n
    stats = ofctl(started, br, "dump-group-stats")
    buckets = [int(x) for x in re.findall(r"bucket\d+:packet_count=(\d+)", stats)]
    assert sorted(buckets) == sorted(got), stats


def test_bundles_replace_flows_and_packet_out(started: Sw, topology: Topology, tmp_path) -> None:  # noqa: ANN001
    a = topology.add_host("a", "10.74.0.1/24")
    b = topology.add_host("b", "10.74.0.2/24")
    br = make_bridge(started, topology, a, b)
    na, nb = started.ofport(a.switch_port), started.ofport(b.switch_port)
    static_neighbours(a, b)
    flows = tmp_path / "flows.txt"
    flows.write_text(
        f"priority=5,in_port={na},actions=output:{nb}\n"
        f"priority=5,in_port={nb},actions=output:{na}\n"
    )
    ofctl_opts(started, br, ["--bundle"], "replace-flows", str(flows))
    dump = ofctl(started, br, "dump-flows", "--no-stats")
    assert "NORMAL" not in dump and dump.count("priority=5") == 2
    assert a.ping(b.addr, count=2)
    ofctl_opts(started, br, ["--bundle"], "add-flow", f"priority=9,in_port={na},actions=drop")
    assert not a.ping(b.addr, count=1, timeout=1)
    # A bundle with a bad rule changes nothing at all.
    bad = tmp_path / "bad.txt"
    bad.write_text("priority=1,actions=drop\npriority=2,actions=output:0\n")
    target = f"unix:{started.rundir.path}/{br}.mgmt"
    r = run(
        ["ovs-ofctl", "-O", "OpenFlow13", "--bundle", "add-flows", target, str(bad)], check=False
    )
    assert "OFPBAC_BAD_OUT_PORT" in r.stderr, r.stderr  # the bundled message's own error
    assert "priority=1 " not in ofctl(started, br, "dump-flows", "--no-stats")

    rx = a.counter("rx_packets")
    frame = "ffffffffffff020000007401" + "88b5" + "00" * 46
    ofctl(started, br, "packet-out", "CONTROLLER", f"output:{na}", frame)
    assert a.counter("rx_packets") == rx + 1


def test_malformed_message_gets_error_and_switch_keeps_forwarding(
    started: Sw, topology: Topology
) -> None:
    a = topology.add_host("a", "10.75.0.1/24")
    b = topology.add_host("b", "10.75.0.2/24")
    br = make_bridge(started, topology, a, b)
    ofctl(started, br, "dump-flows")  # the listener is up
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(f"{started.rundir.path}/{br}.mgmt")
        s.sendall(struct.pack("!BBHI", 4, 0, 8, 1))  # HELLO
        # A FLOW_MOD whose match claims more bytes than the message has.
        body = struct.pack(
            "!QQBBHHHIIIH2x", 0, 0, 0, 0, 0, 0, 1, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0
        )
        body += struct.pack("!HH", 1, 200)
        s.sendall(struct.pack("!BBHI", 4, 14, 8 + len(body), 77) + body)
        got = b""
        while True:
            chunk = s.recv(65536)
            assert chunk, "switch closed the connection instead of answering"
            got += chunk
            msgs = []
            off = 0
            while off + 8 <= len(got):
                _, mtype, length, xid = struct.unpack_from("!BBHI", got, off)
                if off + length > len(got):
                    break
                msgs.append((mtype, xid))
                off += length
            if (1, 77) in msgs:
                break
    assert a.ping(b.addr, count=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_active_controller_gets_packet_ins_and_passive_target_serves_ofctl(
    started: Sw, topology: Topology
) -> None:
    """A controller listening on loopback (our own codec playing the controller side):
    the switch connects to it (tcp:), the controller installs a rule sending ICMP to it
    and receives the pings as packet-ins; a ptcp: target serves stock ovs-ofctl."""
    from hitless.openflow import (
        NEED_DATA,
        ApplyActions,
        Connection,
        ConnectionEvent,
        FeaturesReply,
        FeaturesRequest,
        FlowMod,
        Match,
        Output,
        PacketIn,
        PortStatus,
    )
    from hitless.openflow.constants import Port

    a = topology.add_host("a", "10.76.0.1/24")
    b = topology.add_host("b", "10.76.0.2/24")
    br = make_bridge(started, topology, a, b)
    static_neighbours(a, b)
    na = started.ofport(a.switch_port)
    port, pport = _free_port(), _free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(20)
        started.vsctl("set-controller", br, f"tcp:127.0.0.1:{port}", f"ptcp:{pport}:127.0.0.1")
        sock, _ = server.accept()
        with sock:
            sock.settimeout(10)
            conn = Connection(probe_interval=None)
            sock.sendall(conn.start())

            def events() -> list[object]:
                conn.receive_data(sock.recv(65536))
                out = []
                while (ev := conn.next_event()) is not NEED_DATA:
                    if isinstance(ev, ConnectionEvent):
                        sock.sendall(ev.data)
                    out.append(ev)
                return out

            while conn.version is None:
                events()
            sock.sendall(conn.send(FeaturesRequest(xid=conn.next_xid())))
            feats = []
            while not feats:
                feats = [e for e in events() if isinstance(e, FeaturesReply)]
            fm = FlowMod(
                xid=conn.next_xid(),
                priority=100,
                match=Match.of(in_port=na, eth_type=0x0800, ip_proto=1),
                instructions=(ApplyActions((Output(Port.CONTROLLER, 0xFFFF),)),),
            )
            sock.sendall(conn.send(fm))
            assert "priority=100" in ofctl_tcp(pport)  # the passive target serves ovs-ofctl
            assert not a.ping(b.addr, count=3, timeout=1)  # ICMP goes to the controller only
            pins: list[PacketIn] = []
            deadline = time.monotonic() + 10
            while len(pins) < 3 and time.monotonic() < deadline:
                pins += [e for e in events() if isinstance(e, PacketIn)]
            assert len(pins) == 3
            assert all(p.match.get("in_port").value == na for p in pins)  # type: ignore[union-attr]
            assert all(p.data[12:14] == b"\x08\x00" and p.data[23] == 1 for p in pins)
            assert wait_controller(started, f"tcp:127.0.0.1:{port}", "true")
            # A port going down is announced to the controller (PORT_STATUS).
            run(["ip", "link", "set", b.switch_port, "down"])
            statuses: list[PortStatus] = []
            deadline = time.monotonic() + 10
            while not statuses and time.monotonic() < deadline:
                statuses += [e for e in events() if isinstance(e, PortStatus)]
            assert [(s.desc.name, s.desc.state & 1) for s in statuses] == [(b.switch_port, 1)]
        # The controller went away: the switch says so in the database.
        assert wait_controller(started, f"tcp:127.0.0.1:{port}", "false")


def wait_controller(sw: Sw, target: str, connected: str) -> bool:
    """Wait until the Controller row of ``target`` has is_connected=``connected``."""

    def row() -> bool:
        out = sw.vsctl("--format=csv", "--columns=target,is_connected", "list", "Controller")
        rows = [line.rsplit(",", 1) for line in out.stdout.splitlines()[1:]]
        return any(target in t and c == connected for t, c in rows)

    return eventually(row, timeout=10)


def ofctl_tcp(port: int) -> str:

    def dump() -> str | None:  # the listener appears once the daemon has read the change
        cmd = ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", f"tcp:127.0.0.1:{port}"]
        r = run(cmd, check=False)
        return r.stdout if r.returncode == 0 else None

    return wait_for(dump, f"ovs-ofctl reaching ptcp:{port}", timeout=10)


def test_datapath_id_is_written_back_as_ovs_does(started: Sw, topology: Topology) -> None:
    """Bridge.datapath_id in the database is the DPID the switch reports in features."""
    br = make_bridge(started, topology)
    m = re.search(r"dpid:([0-9a-f]{16})", ofctl(started, br, "show"))
    assert m is not None
    dpid = m.group(1)
    wait_for(lambda: started.get("Bridge", br, "datapath_id").strip('"') == dpid,
             f"Bridge.datapath_id {dpid}", timeout=10)  # fmt: skip
    started.vsctl("set", "bridge", br, "other_config:datapath-id=00000000000000aa")
    wait_for(lambda: started.get("Bridge", br, "datapath_id") == '"00000000000000aa"',
             "Bridge.datapath_id 00000000000000aa", timeout=10)  # fmt: skip
    assert "dpid:00000000000000aa" in ofctl(started, br, "show")


def test_ovs_ofctl_monitor_receives_packet_ins(started: Sw, topology: Topology) -> None:
    """A management connection asks for asynchronous messages the way ovs-ofctl monitor
    does (SET_CONFIG with a nonzero miss_send_len, no SET_ASYNC) and gets them."""
    br = make_bridge(started, topology)
    target = f"unix:{started.rundir.path}/{br}.mgmt"
    mon = subprocess.Popen(
        ["ovs-ofctl", "-O", "OpenFlow13", "monitor", target, "65535"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OVS_RUNDIR": str(started.rundir.path)},  # its unixctl socket
    )
    lines: list[str] = []
    assert mon.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(mon.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        # The monitor is subscribed once a barrier it sends has been answered: the switch
        # handles one connection's messages in order, so its SET_CONFIG came first.
        ctl = wait_for(
            lambda: next(started.rundir.path.glob(f"ovs-ofctl.{mon.pid}.ctl"), None),
            "ovs-ofctl monitor's control socket",
        )
        run(["ovs-appctl", "-t", str(ctl), "ofctl/barrier"])
        frame = "ffffffffffff020000007409" + "88b5" + "00" * 46
        # A packet-out whose action sends the frame to the controller: one packet-in.
        # ovs-ofctl monitor asks for NXT_PACKET_IN2 (NXT_SET_PACKET_IN_FORMAT), as it does
        # with Open vSwitch; "-P standard" would give OFPT_PACKET_IN.
        ofctl(started, br, "packet-out", "CONTROLLER", "controller", frame)
        wait_for(lambda: "NXT_PACKET_IN2" in "".join(lines), "the packet-in at the monitor")
        seen = "".join(lines)
        assert "88b5" in seen.replace(" ", "") or "dl_type=0x88b5" in seen, seen
    finally:
        mon.kill()
        mon.wait()
