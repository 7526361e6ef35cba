"""dpctl conntrack commands against a dummy datapath's table: the texts are those real
Open vSwitch 3.1 printed (dummy datapath, the same packets through the same ct rules,
ovs-appctl netdev-dummy/receive) for dump-conntrack, its -m and -s forms, ct-stats-show
and ct-get-limits; errors in its wording."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from hitless.daemon import ct_commands as cc
from hitless.daemon.unixctl import CommandError, Request
from hitless.datapath.actions import Ct
from hitless.datapath.conntrack import NatSpec
from hitless.datapath.dummy import DummyDatapath
from tests.datapath.test_conntrack import ACK, FIN, SYN, icmp_frame, tcp_frame, udp_frame


@dataclass
class _Rb:
    datapath: Any


@dataclass
class _Switch:
    bridges: dict[str, _Rb] = field(default_factory=dict)


class _Clock:
    now = 50.0

    def __call__(self) -> float:
        return self.now


def run(sw: _Switch, handler: Any, *args: str) -> str:
    return handler(Request(sw, list(args), None))  # type: ignore[arg-type]


@pytest.fixture
def sw() -> _Switch:
    """The traffic the Open vSwitch comparison ran, through ct in zones 5, 6 and 7."""
    dp = DummyDatapath("brct9", clock=_Clock())
    z5 = Ct(zone=5, commit=True, mark=(7, 0xFFFFFFFF))
    dp.execute(udp_frame("10.0.0.1", "10.0.0.2", 5000, 53), 1, (z5,))
    dp.execute(udp_frame("10.0.0.2", "10.0.0.1", 53, 5000), 2, (Ct(zone=5),))
    dp.execute(tcp_frame("10.0.0.1", "10.0.0.2", 1000, 80, SYN, seq=1), 1, (z5,))
    dnat = NatSpec("dst", ipaddress.ip_address("10.0.0.2").packed, port_min=8080)
    dp.execute(tcp_frame("10.0.0.1", "10.0.0.3", 1001, 81, SYN, seq=1), 1, (Ct(6, True, nat=dnat),))
    dp.execute(icmp_frame("10.0.0.1", "10.0.0.2", 8, ident=0), 1, (z5,))
    return _Switch({"brct9": _Rb(dp)})


def test_dump_conntrack_matches_open_vswitch(sw: _Switch) -> None:
    assert run(sw, cc.dump_conntrack) == (
        "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5000,dport=53),reply=(src=10.0.0.2,dst=10.0.0.1,sport=53,dport=5000),zone=5,mark=7\n"
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1000),zone=5,mark=7,protoinfo=(state=SYN_SENT)\n"
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.3,sport=1001,dport=81),reply=(src=10.0.0.2,dst=10.0.0.1,sport=8080,dport=1001),zone=6,protoinfo=(state=SYN_SENT)\n"
        "icmp,orig=(src=10.0.0.1,dst=10.0.0.2,id=0,type=8,code=0),reply=(src=10.0.0.2,dst=10.0.0.1,id=0,type=0,code=0),zone=5,mark=7\n"
    )
    sw.bridges["brct9"].datapath.clock.now += 1  # as OVS: timeouts count down whole seconds
    assert run(sw, cc.dump_conntrack, "-s", "zone=5").splitlines()[1] == (
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=1000,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=1000),zone=5,timeout=29,mark=7,protoinfo=(state=SYN_SENT)"
    )
    assert run(sw, cc.dump_conntrack, "-m", "brct9").splitlines()[2] == (
        "tcp,orig=(src=10.0.0.1,dst=10.0.0.3,sport=1001,dport=81),reply=(src=10.0.0.2,dst=10.0.0.1,sport=8080,dport=1001),id=0,zone=6,status=0,protoinfo=(state_orig=SYN_SENT,state_reply=CLOSED,flags_orig=0,flags_reply=0)"
    )


def test_tcp_states_follow_open_vswitch(sw: _Switch) -> None:
    dp = sw.bridges["brct9"].datapath
    dp.execute(
        tcp_frame("10.0.0.2", "10.0.0.1", 80, 1000, SYN | ACK, seq=9, ack=2), 2, (Ct(zone=5),)
    )
    line = run(sw, cc.dump_conntrack, "-m", "zone=5").splitlines()[1]
    assert "state_orig=ESTABLISHED,state_reply=SYN_SENT" in line  # as Open vSwitch showed
    dp.execute(
        tcp_frame("10.0.0.1", "10.0.0.2", 1000, 80, FIN | ACK, seq=2, ack=10), 1, (Ct(zone=5),)
    )
    assert "protoinfo=(state=CLOSING)" in run(sw, cc.dump_conntrack, "zone=5")
    text = run(sw, cc.ct_stats_show, "-m")
    assert text.startswith("Connections Stats:\n    Total: 4\n  TCP: 2\n    Conn per TCP states:\n")
    assert "\t  [SYN_SENT]=1\n\t  [CLOSING]=1\n  UDP: 1\n  ICMP: 1\n" in text


def test_ct_stats_show(sw: _Switch) -> None:
    assert (
        run(sw, cc.ct_stats_show)
        == "Connections Stats:\n    Total: 4\n  TCP: 2\n  UDP: 1\n  ICMP: 1\n"
    )
    assert run(sw, cc.ct_stats_show, "zone=6") == "Connections Stats:\n    Total: 1\n  TCP: 1\n"


def test_flush_by_zone_by_tuple_and_all(sw: _Switch) -> None:
    assert run(sw, cc.flush_conntrack, "zone=5") == ""
    assert [line.split(",zone=")[1][:1] for line in run(sw, cc.dump_conntrack).splitlines()] == [
        "6"
    ]
    with pytest.raises(
        CommandError, match=r"failed to flush conntrack \(No such file or directory\)"
    ):
        run(
            sw,
            cc.flush_conntrack,
            "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.3,ct_nw_proto=6,ct_tp_src=1001,ct_tp_dst=81",
        )
    run(
        sw,
        cc.flush_conntrack,
        "zone=6",
        "ct_nw_src=10.0.0.1,ct_nw_dst=10.0.0.3,ct_nw_proto=6,ct_tp_src=1001,ct_tp_dst=81",
    )
    assert run(sw, cc.dump_conntrack) == ""
    with pytest.raises(CommandError, match="datapath not found"):
        run(sw, cc.flush_conntrack, "nosuchbr")


def test_limits(sw: _Switch) -> None:
    assert run(sw, cc.ct_set_limits, "default=10", "zone=5,limit=3") == ""
    assert run(sw, cc.ct_get_limits) == "default limit=10\nzone=5,limit=3,count=3\n"
    assert run(sw, cc.ct_get_limits, "zone=5,7") == (
        "default limit=10\nzone=5,limit=3,count=3\nzone=7,limit=10,count=0\n"
    )
    for bad in (["zone=9"], ["bogus=1"], ["zone=70000,limit=1"], ["zone=1,limit=-1"]):
        with pytest.raises(CommandError, match=r"failed to parse zone limit \(Invalid argument\)"):
            run(sw, cc.ct_set_limits, *bad)
    assert run(sw, cc.ct_get_limits) == "default limit=10\nzone=5,limit=3,count=3\n"  # unchanged
    # The limit holds: zone 5 is full.
    dp = sw.bridges["brct9"].datapath
    dp.execute(udp_frame("10.0.0.1", "10.0.0.2", 1, 2), 1, (Ct(zone=5, commit=True),))
    assert dp.conntrack.zone_count(5) == 3
    run(sw, cc.ct_del_limits, "zone=5")
    assert run(sw, cc.ct_get_limits) == "default limit=10\n"


def test_ct_stats_show_counts_icmpv6_in_the_total_only() -> None:
    """As Open vSwitch 3.1 printed one UDP and one ICMPv6 connection over IPv6:
    'Total: 2', then 'UDP: 1' alone."""
    from tests.packet.builders import eth, icmp6, ipv6, udp6

    dp = DummyDatapath("brv6", clock=_Clock())
    a6, b6 = "fd00::1", "fd00::2"
    u = eth(
        "02:00:00:00:00:02", "02:00:00:00:00:01", 0x86DD, ipv6(a6, b6, 17, udp6(a6, b6, 5, 6, b"q"))
    )
    msg = bytes((128, 0, 0, 0, 0, 9, 0, 1)) + b"ping"
    e = eth("02:00:00:00:00:02", "02:00:00:00:00:01", 0x86DD, ipv6(a6, b6, 58, icmp6(a6, b6, msg)))
    for f in (u, e):
        dp.execute(f, 1, (Ct(zone=8, commit=True),))
    sw = _Switch({"brv6": _Rb(dp)})
    assert run(sw, cc.ct_stats_show) == "Connections Stats:\n    Total: 2\n  UDP: 1\n"
    assert run(sw, cc.dump_conntrack) == (
        "udp,orig=(src=fd00::1,dst=fd00::2,sport=5,dport=6),reply=(src=fd00::2,dst=fd00::1,sport=6,dport=5),zone=8\n"
        "icmpv6,orig=(src=fd00::1,dst=fd00::2,id=9,type=128,code=0),reply=(src=fd00::2,dst=fd00::1,id=9,type=129,code=0),zone=8\n"
    )


def test_maxconns_as_open_vswitch(sw: _Switch) -> None:
    assert run(sw, cc.ct_get_maxconns) == "3000000\n"
    assert run(sw, cc.ct_get_nconns) == "4\n"
    assert run(sw, cc.ct_set_maxconns, "4") == "setting maxconns successful\n"
    assert run(sw, cc.ct_get_maxconns, "brct9") == "4\n"
    dp = sw.bridges["brct9"].datapath
    dp.execute(udp_frame("10.0.0.1", "10.0.0.9", 1, 2), 1, (Ct(zone=1, commit=True),))
    assert run(sw, cc.ct_get_nconns) == "4\n"  # the table is full: not committed
    with pytest.raises(CommandError, match=r"maxconns missing or malformed \(Invalid argument\)"):
        run(sw, cc.ct_set_maxconns, "abc")
    with pytest.raises(CommandError, match="datapath not found"):
        run(sw, cc.ct_get_nconns, "netdev@ovs-netdev")
