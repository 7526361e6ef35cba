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
