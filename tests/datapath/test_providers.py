"""The same cases on every datapath that forwards real frames (netdev, ebpf), on real
veth pairs between namespace hosts, no daemon: misses come up as upcalls whose key is
the Python one, bad devices give the operator's error, VLAN tags survive into the key
and the upcalled frame, push/pop VLAN between an access and a trunk port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hitless.datapath.actions import Output, PopVlan, PushVlan
from hitless.datapath.base import Datapath, DatapathError, Upcall
from hitless.datapath.netdev import ServeThread
from hitless.packet.flow import ETH_TYPE_ARP, VLAN_PRESENT, Match, extract_key, field, full_mask
from tests.datapath.flows import cross_connect, port_flow
from tests.netns import Topology, unique_suffix

pytestmark = pytest.mark.netns


@pytest.fixture(params=["netdev", "ebpf"])
def dp(request: pytest.FixtureRequest) -> Iterator[Datapath]:
    name = f"br{unique_suffix()}"
    d: Datapath
    if request.param == "netdev":
        from hitless.datapath.netdev import NetdevDatapath

        d = NetdevDatapath(name, ring_frames=4096)
    else:
        from hitless.datapath.ebpf.provider import EbpfDatapath

        d = EbpfDatapath(name)
    yield d
    d.close()


def test_misses_become_upcalls_with_the_python_key_then_flows_forward(
    topology: Topology, dp: Datapath
) -> None:
    a, b = topology.add_host("a", "10.77.0.1/24"), topology.add_host("b", "10.77.0.2/24")
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    seen: list[Upcall] = []

    def learn(d: Datapath, upcalls: list[Upcall]) -> None:
        for u in upcalls:
            seen.append(u)
            out = pb if u.in_port == pa else pa
            m = Match.of(u.key, full_mask("in_port", "eth_src", "eth_dst"))
            d.flow_put(m, (Output(out),))
            d.execute(u.packet, u.in_port, (Output(out),))

    with ServeThread(dp, learn):
        assert a.ping(b.addr, count=3)
    first = seen[0]
    assert first.in_port == pa and first.reason == "miss"
    assert field(first.key, "eth_type") == ETH_TYPE_ARP
    assert first.packet[6:12] == a.mac_bytes
    for u in seen:  # the datapath's flow key is the Python one
        assert u.key == extract_key(u.packet, u.in_port), u.packet.hex()
    # Once flows exist, later packets of the same conversation do not miss.
    assert len(seen) <= 4
    assert dp.lookup_stats().hit > 0


def test_missing_device_gives_clear_error(dp: Datapath) -> None:
    name = f"nodev{unique_suffix()}"
    with pytest.raises(
        DatapathError, match=rf"could not open network device {name} \(No such device\)"
    ):
        dp.port_add(name)
    assert dp.ports() == {}


def test_vlan_tag_in_key_and_upcall(topology: Topology, dp: Datapath) -> None:
    """The kernel moves a received tag into metadata: the datapath puts it back, in
    the key and in the upcalled frame."""
    a = topology.add_host("a", "10.78.0.1/24", vlan=10)
    b = topology.add_host("b", "10.78.0.2/24", vlan=10)
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    assert not a.ping(b.addr, count=1, timeout=0.5)
    dp.run()
    ups = dp.recv_upcalls()
    assert ups, "the ARP request should have become an upcall"
    assert field(ups[0].key, "vlan_tci") == VLAN_PRESENT | 10
    assert ups[0].packet[12:16] == bytes.fromhex("8100000a")
    assert ups[0].key == extract_key(ups[0].packet, pa)
    cross_connect(dp, pa, pb)
    with ServeThread(dp):
        assert a.ping(b.addr, count=3)


def test_push_and_pop_vlan_between_access_and_trunk(topology: Topology, dp: Datapath) -> None:
    a = topology.add_host("a", "10.79.0.1/24")  # access port, untagged
    b = topology.add_host("b", "10.79.0.2/24", vlan=20)  # trunk, tagged 20
    pa, pb = dp.port_add(a.switch_port), dp.port_add(b.switch_port)
    port_flow(dp, pa, PushVlan(20), Output(pb))
    port_flow(dp, pb, PopVlan(), Output(pa))
    with ServeThread(dp):
        assert a.ping(b.addr, count=3)
