"""Interface.ingress_policing_rate/burst with real hosts: what a port receives beyond
its rate is dropped before switching (a datapath token bucket per port, kbit/s and
kbit as the columns say)."""

from __future__ import annotations

import pytest

from tests.netns import Host, Topology, UdpSink, udp_send
from tests.switch import Sw
from tests.traffic import COLD, must_catch, upgrade_with

pytestmark = pytest.mark.netns


def delivered(sw: Sw, a, b, port: int) -> int:  # noqa: ANN001
    sink = UdpSink(b, port, idle=2.0)
    # 2500 datagrams of 1000 bytes in ~2 s: about 10 Mbit/s.
    udp_send(a, b.addr, port, 2500, batch=50, pause=0.04, size=1000)
    return len(set(sink.seqs()))


def policed_pair(sw: Sw, topology: Topology, net: str) -> tuple[Host, Host]:
    """Hosts a and b on a new bridge, neighbours known, reachable."""
    a = topology.add_host("a", f"{net}.1/24")
    b = topology.add_host("b", f"{net}.2/24")
    br = topology.name("hp")
    sw.vsctl("add-br", br, "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    a.set_neigh(b.addr, b.mac)
    b.set_neigh(a.addr, a.mac)
    assert a.ping(b.addr, count=2)
    return a, b


def test_ingress_policing_limits_what_a_port_receives(started: Sw, topology: Topology) -> None:
    sw = started
    a, b = policed_pair(sw, topology, "10.86.0")
    full = delivered(sw, a, b, 9900)
    sw.vsctl("set", "Interface", a.switch_port, "ingress_policing_rate=1000",
             "ingress_policing_burst=100")  # fmt: skip
    policed = delivered(sw, a, b, 9901)
    # 1000 kbit/s for ~2 s plus a 100 kbit burst: ~260 datagrams of 1000 bytes (+headers).
    print(f"ingress policing: {full} of 2500 delivered unpoliced, {policed} at 1000 kbit/s")
    assert full >= 2400
    assert 100 <= policed <= 600
    assert "hitless_unsupported" not in sw.get("Interface", a.switch_port, "status")
    sw.vsctl("set", "Interface", a.switch_port, "ingress_policing_rate=0")
    assert delivered(sw, a, b, 9902) >= 2400


@pytest.mark.parametrize("fault", [None, COLD])
def test_upgrade_carries_the_policer_bucket(
    started: Sw, topology: Topology, fault: str | None
) -> None:
    """The bucket a burst emptied stays empty across ``hitless upgrade``: the new process
    lets through what the rate refilled meanwhile, not a second full burst (which a new
    process that starts cold, its buckets full, must let through)."""
    import time

    sw = started
    a, b = policed_pair(sw, topology, "10.86.1")
    # 100 kbit/s with an 8000 kbit (1 MB) bucket: a burst of 1500 datagrams of 1000 bytes
    # gets about 950 through, then 12 per second.
    sw.vsctl("set", "Interface", a.switch_port, "ingress_policing_rate=100",
             "ingress_policing_burst=8000")  # fmt: skip

    def burst(port: int) -> int:
        sink = UdpSink(b, port, idle=2.0)
        udp_send(a, b.addr, port, 1500, batch=50, pause=0.005, size=1000)
        return len(set(sink.seqs()))

    first = burst(9910)
    t0 = time.monotonic()
    upgrade_with(sw, fault)
    second = burst(9911)
    elapsed = time.monotonic() - t0
    print(f"policer bucket across an upgrade: {first} of 1500 before, {second} after "
          f"({elapsed:.1f} s later; the rate refills ~{elapsed * 12.5:.0f})")  # fmt: skip
    assert first >= 800
    with must_catch(fault):
        assert second <= elapsed * 12.5 + 150 < first
