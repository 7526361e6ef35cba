"""A real os-ken controller drives the switch: os-ken's own OpenFlowController with our
MAC-learning app (tests/osken_peer.py, in a subprocess) is the bridge's only source of
rules (fail_mode secure). Hosts in namespaces ping each other through what it learns;
the packet-ins, the rules it installs (visible to stock ``ovs-ofctl`` with counters) and
their idle-timeout flow-removed messages all reach it, and it never sees a disconnect."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from tests.netns import Host, Topology
from tests.osken_fixture import Event, OsKenPeer
from tests.switch import Sw
from tests.wait import eventually

pytestmark = pytest.mark.netns

IDLE = 3  # seconds: the learned rules' idle_timeout


def ofctl(sw: Sw, br: str, cmd: str, *args: str) -> str:
    return sw.ofctl(br, cmd, *args)


def rules(sw: Sw, br: str, src: str, dst: str) -> list[str]:
    """dump-flows lines of the learned rules from eth ``src`` to eth ``dst``."""
    return [
        line
        for line in ofctl(sw, br, "dump-flows").splitlines()
        if f"dl_src={src}" in line and f"dl_dst={dst}" in line
    ]


def field(line: str, name: str) -> int:
    m = re.search(rf"\b{name}=(0x[0-9a-f]+|\d+)", line)
    assert m is not None, (name, line)
    return int(m.group(1), 0)


def is_connected(sw: Sw, target: str) -> str:
    out = sw.vsctl("--bare", "--columns=is_connected", "find", "Controller", f'target="{target}"')
    return out.stdout.strip()


@pytest.mark.parametrize("version", [13, 14])
def test_osken_learning_switch_controls_the_bridge(
    started: Sw, topology: Topology, version: int
) -> None:
    # os-ken also probes the switch itself (echo requests every second; three
    # unanswered ones and it hangs up).
    with OsKenPeer(app="learning", idle_timeout=IDLE, ofp_version=version, echo_interval=1) as ctl:
        learning_switch(started, topology, ctl, version)  # ctl is killed by PID on exit


def learning_switch(started: Sw, topology: Topology, ctl: OsKenPeer, version: int) -> None:
    a = topology.add_host("a", "10.82.0.1/24")
    b = topology.add_host("b", "10.82.0.2/24")
    c = topology.add_host("c", "10.82.0.3/24")
    hosts = (a, b, c)
    # Static neighbours and no IPv6: every frame a host sends is one of our pings, so
    # the frames counted below are exactly the ones the controller must account for.
    for h in hosts:
        for o in hosts:
            if o is not h:
                h.set_neigh(o.addr, o.mac)

    br = topology.name("br")
    vs = ["add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure"]
    for h in hosts:
        vs += ["--", "add-port", br, h.switch_port]
    started.vsctl(*vs)
    port = {h.name: started.ofport(h.switch_port) for h in hosts}
    # The bridge's own (LOCAL) port is a TAP in the root namespace: silence its IPv6, so
    # hosts receive nothing but what the test sends (no rule forwards anything yet).
    local_v6 = Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6")
    assert eventually(local_v6.exists)
    local_v6.write_text("1")
    assert "actions" not in ofctl(started, br, "dump-flows")  # secure: no rules, no NORMAL
    started.vsctl("set-controller", br, ctl.target)

    conn = ctl.wait_for(lambda e: e["event"] == "connected")
    dpid = conn["dpid"]
    assert conn["version"] == version - 9  # OpenFlow 1.3 is wire version 4, 1.4 is 5
    m = re.search(r"dpid:([0-9a-f]{16})", ofctl(started, br, "show"))
    assert m is not None and dpid == int(m.group(1), 16)
    assert eventually(lambda: is_connected(started, ctl.target) == "true")
    ctl.wait_for(lambda e: e["event"] == "flow_added" and e["cookie"] == 0)
    assert eventually(lambda: "actions=CONTROLLER:65535" in ofctl(started, br, "dump-flows"))

    tx0 = {h.name: h.counter("tx_packets") for h in hosts}
    c_rx = c.counter("rx_packets")
    assert a.ping(b.addr, count=5)
    # The first request went to the controller, which did not know b yet, and was
    # flooded: c received exactly the requests the controller saw before b's reply
    # taught it where b is, and nothing else.
    pins = ctl.events("packet_in")
    first_b = next(i for i, p in enumerate(pins) if p["eth_src"] == b.mac)
    flooded = sum(1 for p in pins[:first_b] if p["eth_src"] == a.mac)
    assert flooded >= 1
    assert eventually(lambda: c.counter("rx_packets") - c_rx == flooded)
    assert any(
        p["in_port"] == port["a"] and p["eth_src"] == a.mac and p["eth_dst"] == b.mac for p in pins
    ), pins
    assert any(
        p["in_port"] == port["b"] and p["eth_src"] == b.mac and p["eth_dst"] == a.mac for p in pins
    ), pins
    assert all(p["dpid"] == dpid and p["reason"] == 0 for p in pins)  # table miss

    assert c.ping(a.addr, count=3)  # a third host, learned the same way

    # Keep all four learned rules busy (a packet every 0.1 s against an idle timeout of
    # IDLE s) while the switch and the controller are asked about them.
    pingers = [x.popen(["ping", "-n", "-q", "-i", "0.1", y.addr]) for x, y in ((a, b), (c, a))]
    pairs = ((a, b), (b, a), (c, a), (a, c))
    assert eventually(
        lambda: all(
            len(ls := rules(started, br, s.mac, d.mac)) == 1 and field(ls[0], "n_packets") > 0
            for s, d in pairs
        )
    ), ofctl(started, br, "dump-flows")
    added = {e["cookie"]: e for e in ctl.events("flow_added") if e["cookie"]}
    for src, dst in pairs:
        (line,) = rules(started, br, src.mac, dst.mac)
        assert f"in_port={port[src.name]}" in line and f"output:{port[dst.name]}" in line
        assert field(line, "idle_timeout") == IDLE and "send_flow_rem" in line, line
        assert field(line, "cookie") in added, (line, added)
    assert ctl.request("barrier")["ok"]
    echo = ctl.request({"cmd": "echo", "data": "hi"})
    assert echo["ok"] and echo["replies"][0]["data"] == "hi", echo
    # The controller's own view of the table is the one ovs-ofctl shows.
    flows = ctl.request("flows")["replies"][0]["flows"]
    dumped = [line for line in ofctl(started, br, "dump-flows").splitlines() if "actions=" in line]
    assert sorted(f["cookie"] for f in flows) == sorted(field(x, "cookie") for x in dumped)
    assert all(f["packet_count"] > 0 for f in flows if f["cookie"]), flows
    for p in pingers:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=10)

    # Traffic stops: every learned rule idles out and says so to the controller. The
    # switch's clock is moved past the idle timeout (time/warp, in 0.5 s steps so the
    # datapath flows' last use is read on the way) instead of waiting IDLE seconds.
    started.appctl("time/warp", str(IDLE * 1000 + 1000), "500")
    for s, d in pairs:
        ctl.wait_for(removal(s, d), timeout=30)
    assert eventually(lambda: "dl_src" not in ofctl(started, br, "dump-flows"))
    removed = ctl.events("flow_removed")
    assert all(r["reason_name"] == "IDLE_TIMEOUT" and r["idle_timeout"] == IDLE for r in removed)
    assert {r["cookie"] for r in removed} <= set(ctl_cookies(ctl))
    assert sum(r["packet_count"] for r in removed) > 0

    # Every frame a host sent went either to the controller (a packet-in) or through a
    # learned rule, whose final count came back in its flow-removed message.
    for h in hosts:
        sent = h.counter("tx_packets") - tx0[h.name]
        assert sent > 0
        assert eventually(partial(balanced, ctl, h, sent)), (h.name, sent, accounted(ctl, h))

    # The controller never lost the switch, and the database says it is connected.
    states = [e["state"] for e in ctl.events("state")]
    assert states == ["handshake", "config", "main"], states
    assert not ctl.events("disconnected") and not ctl.events("error")
    assert any(e["data"] == "" for e in ctl.events("echo_reply"))  # os-ken's own probes
    assert is_connected(started, ctl.target) == "true"


def ctl_cookies(ctl: OsKenPeer) -> list[int]:
    return [e["cookie"] for e in ctl.events("flow_added") if e["cookie"]]


def removal(src: Host, dst: Host) -> Callable[[Event], bool]:
    """Matches the flow-removed message of a learned rule from ``src`` to ``dst``."""

    def pred(e: Event) -> bool:
        m = e.get("match", {})
        return bool(
            e["event"] == "flow_removed"
            and m.get("eth_src") == src.mac
            and m.get("eth_dst") == dst.mac
        )

    return pred


def balanced(ctl: OsKenPeer, h: Host, sent: int) -> bool:
    return accounted(ctl, h) == sent


def accounted(ctl: OsKenPeer, h: Host) -> int:
    """Frames from ``h`` the controller knows of: its packet-ins plus the packet counts
    of the removed rules that matched ``h`` as the source."""
    events: list[Event] = ctl.events()
    pins = sum(1 for e in events if e["event"] == "packet_in" and e["eth_src"] == h.mac)
    ruled = sum(
        e["packet_count"]
        for e in events
        if e["event"] == "flow_removed" and e["match"].get("eth_src") == h.mac
    )
    return pins + ruled
