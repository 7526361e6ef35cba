"""Interface status columns written back from the device, as Open vSwitch writes them
(seen side by side: ifindex, mtu, link_speed 10000000000 and duplex full for a veth,
status {driver_name=veth, driver_version="1.0", firmware_version=""}, statistics with
rx_packets etc.), mtu_request applied to the device, admin_state/link_state/link_resets
following the device, Open_vSwitch datapath_types/iface_types."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from tests.netns import Topology, sh
from tests.switch import Sw
from tests.wait import eventually as wait_for

pytestmark = pytest.mark.netns


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
