"""Interface status columns written back from the device, as Open vSwitch writes them
(seen side by side: ifindex, mtu, link_speed 10000000000 and duplex full for a veth,
status {driver_name=veth, driver_version="1.0", firmware_version=""}, statistics with
rx_packets etc.), mtu_request applied to the device, admin_state/link_state/link_resets
following the device, Open_vSwitch datapath_types/iface_types."""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Topology, sh
from tests.switch import Sw
from tests.wait import eventually as wait_for

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parent.parent.parent


def stat(sw: Sw, iface: str, key: str) -> int:
    text = sw.get("Interface", iface, "statistics")
    m = re.search(rf"\b{key}=(\d+)", text)
    return int(m.group(1)) if m else -1


def test_device_columns_statistics_mtu_and_link(started: Sw, topology: Topology) -> None:
    sw = started
    a = topology.add_host("a", "10.97.0.1/24")
    b = topology.add_host("b", "10.97.0.2/24")
    br = topology.name("hs")
    sw.vsctl("add-br", br, "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    pa = a.switch_port
    assert int(sw.get("Interface", pa, "ifindex")) == socket.if_nametoindex(pa)
    assert sw.get("Interface", pa, "mtu") == "1500"
    assert sw.get("Interface", pa, "link_speed") == "10000000000"
    assert sw.get("Interface", pa, "duplex") == "full"
    assert (
        sw.get("Interface", pa, "status")
        == '{driver_name=veth, driver_version="1.0", firmware_version=""}'
    )
    assert sw.get("Interface", br, "status")  # the bridge's TAP: tun driver
    types = sw.get("Open_vSwitch", ".", "datapath_types")
    assert "netdev" in types and "dummy" in types
    assert "internal" in sw.get("Open_vSwitch", ".", "iface_types")

    # Statistics count what passed (refreshed at least every stats-update-interval).
    rx0 = stat(sw, pa, "rx_packets")
    assert rx0 >= 0
    assert a.ping(b.addr, count=5, interval=0.05)
    assert wait_for(lambda: stat(sw, pa, "rx_packets") >= rx0 + 5, 20)
    assert stat(sw, pa, "tx_packets") >= 5 and stat(sw, pa, "rx_bytes") > 0

    # mtu_request changes the device; a value the device refuses is logged.
    sw.vsctl("set", "Interface", pa, "mtu_request=1400")
    assert Path(f"/sys/class/net/{pa}/mtu").read_text().strip() == "1400"
    assert wait_for(lambda: sw.get("Interface", pa, "mtu") == "1400")
    sw.vsctl("set", "Interface", pa, "mtu_request=100000")
    assert wait_for(lambda: f"interface {pa}: cannot set MTU 100000" in sw.log())
    sw.vsctl("set", "Interface", pa, "mtu_request=1500")

    # The device goes down: admin_state and link_state follow, link_resets counts.
    resets = int(sw.get("Interface", pa, "link_resets"))
    sh(["ip", "link", "set", pa, "down"])
    assert wait_for(lambda: sw.get("Interface", pa, "link_state") == "down", 10)
    assert sw.get("Interface", pa, "admin_state") == "down"
    sh(["ip", "link", "set", pa, "up"])
    assert wait_for(lambda: sw.get("Interface", pa, "link_state") == "up", 10)
    assert sw.get("Interface", pa, "admin_state") == "up"
    assert int(sw.get("Interface", pa, "link_resets")) >= resets + 2


def stat_of(text: str, key: str) -> int:
    m = re.search(rf"\b{key}=(\d+)", text)
    return int(m.group(1)) if m else -1


def test_statistics_and_mtu_request_side_by_side_with_open_vswitch(
    started: Sw, topology: Topology
) -> None:
    """The same 50 pings through hitless and through Open vSwitch 3.1 (netdev, its own
    namespace): each switch's Interface.statistics of the sender's port count them
    (received from the host, and the replies sent to it); mtu_request=1400 changes the
    device on both, and the mtu column follows."""
    from tests.daemon.test_qos import hitless_pair, ovs_pair

    sw = started
    a, b, _ = hitless_pair(sw, topology, "10.97.2")
    pa = a.switch_port
    assert wait_for(lambda: stat(sw, pa, "rx_packets") >= 1, 20)
    rx0, tx0 = stat(sw, pa, "rx_packets"), stat(sw, pa, "tx_packets")
    assert a.ping(b.addr, count=50, interval=0.02)
    assert wait_for(lambda: stat(sw, pa, "rx_packets") >= rx0 + 50, 20)
    ours = stat(sw, pa, "rx_packets") - rx0, stat(sw, pa, "tx_packets") - tx0
    sw.vsctl("set", "Interface", pa, "mtu_request=1400")
    assert Path(f"/sys/class/net/{pa}/mtu").read_text().strip() == "1400"
    assert wait_for(lambda: sw.get("Interface", pa, "mtu") == "1400")

    with ovs_pair(topology, "10.97.3") as (oa, ob, ovs, ns):
        op = oa.switch_port

        def ostat(key: str) -> int:
            return stat_of(ovs.vsctl("get", "Interface", op, "statistics"), key)

        assert wait_for(lambda: ostat("rx_packets") >= 1, 20)
        orx0, otx0 = ostat("rx_packets"), ostat("tx_packets")
        assert oa.ping(ob.addr, count=50, interval=0.02)
        assert wait_for(lambda: ostat("rx_packets") >= orx0 + 50, 20)
        theirs = ostat("rx_packets") - orx0, ostat("tx_packets") - otx0
        ovs.vsctl("set", "Interface", op, "mtu_request=1400")
        mtu = sh(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{op}/mtu"]).stdout.strip()
        assert mtu == "1400"
        assert wait_for(lambda: ovs.vsctl("get", "Interface", op, "mtu") == "1400")
    print(f"Interface.statistics of the pinging host's port after 50 pings (rx, tx): "
          f"hitless {ours}, Open vSwitch {theirs}; mtu_request=1400 applied by both")  # fmt: skip
    for rx, tx in (ours, theirs):
        assert 50 <= rx <= 56 and 50 <= tx <= 56  # the echoes, and an ARP exchange or two


TOGGLES = 20  # down/up pairs per device and switch


def probe(remote: str, iface: str, down: str, up: str, ns: str | None = None) -> list[Any]:
    """tests/linkprobe.py in namespace ``ns`` (default: this one): TOGGLES times ``down``
    then ``up``, each change timed from its netlink event to the Interface row update an
    IDL client sees, with the row's link columns at that moment."""
    cmd = [sys.executable, "-m", "tests.linkprobe", remote, iface, str(TOGGLES), down, up]
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def summary(changes: list[Any]) -> str:
    ms = sorted(c["ms"] for c in changes if c["ms"] is not None)
    if not ms:
        return "none timed"
    return f"median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms ({len(ms)} changes)"


def toggles(remote: str, port: str, peer_ns: str, ns: str | None = None) -> dict[str, list[Any]]:
    """The switch port itself, then its peer (the host's eth0), TOGGLES times each."""
    return {
        "port": probe(remote, port, f"ip link set {port} down", f"ip link set {port} up", ns),
        "peer": probe(
            remote,
            port,
            f"ip -n {peer_ns} link set eth0 down",
            f"ip -n {peer_ns} link set eth0 up",
            ns,
        ),
    }


def test_link_columns_follow_every_toggle_side_by_side_with_open_vswitch(
    started: Sw, topology: Topology
) -> None:
    """20 down/up toggles of a switch port and 20 of its peer, on hitless and on Open
    vSwitch 3.1 (netdev, its own namespace): every change reaches Interface.link_state
    (a monitoring IDL client waits for each before the next), admin_state says whether
    the device itself is down, link_resets counts each change once, and the link
    columns change together. The time from each netlink event to the row update is
    printed for both switches (docs/columns.md), never asserted."""
    from tests.daemon.test_qos import hitless_pair, ovs_pair

    sw = started
    a, _, _ = hitless_pair(sw, topology, "10.97.4")
    pa = a.switch_port
    resets0 = int(sw.get("Interface", pa, "link_resets"))
    ours = toggles(sw.rundir.db_remote, pa, a.ns)
    with ovs_pair(topology, "10.97.5") as (oa, _, ovs, ns):
        theirs = toggles(f"unix:{ovs.rundir / 'db.sock'}", oa.switch_port, oa.ns, ns)
    load = os.getloadavg()[0]
    for what in ("port", "peer"):
        print(f"link change of the {what} to Interface.link_state seen by an IDL client, "
              f"{TOGGLES} down/up toggles: hitless {summary(ours[what])}; Open vSwitch "
              f"{summary(theirs[what])} (load {load:.1f})")  # fmt: skip

    changes = ours["port"] + ours["peer"]
    assert [c["link_state"] for c in changes] == ["down", "up"] * (2 * TOGGLES), changes
    # The device's own state: down while the port itself is down, up while only its
    # peer is (as Open vSwitch says too).
    assert [c["admin_state"] for c in ours["port"]] == ["down", "up"] * TOGGLES, ours
    assert all(c["admin_state"] == "up" for c in ours["peer"]), ours
    assert [c["link_resets"] for c in changes] == [
        resets0 + i for i in range(1, 4 * TOGGLES + 1)
    ], changes
    # Open vSwitch saw them all too (the comparison is of the same changes).
    assert [c["link_state"] for c in theirs["port"] + theirs["peer"]] == [
        "down",
        "up",
    ] * (2 * TOGGLES), theirs
