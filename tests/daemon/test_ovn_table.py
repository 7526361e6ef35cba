"""An OVN-shaped logical switch (``hitless.impact.rules.ovn_pipeline``: thirteen tables,
logical ports passed in registers, port security, a conjunction ACL, a learned MAC table,
the flood group expanded by resubmits) with real hosts in namespaces:

* side by side with real Open vSwitch (netdev datapath, own namespace), loaded with
  stock ``ovs-ofctl``: the same datagrams get through, the same rules count the same
  packets, the same rules are learned;
* across ``hitless upgrade`` under UDP and TCP traffic through that pipeline: nothing
  lost, the same rules after (learned ones included, with their timeouts still running
  rather than restarted), counters kept and still counting."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from hitless.impact.rules import OVN_DENIED_UDP, OVN_LEARN_COOKIE, LogicalPort, ovn_pipeline
from hitless.impact.run import Rates
from tests.daemon.test_nx_flows import NET, _counters, _hosts, _ovs, _ovs_bridge, _ovs_ofctl
from tests.daemon.test_openflow import make_bridge, ofctl
from tests.netns import Host, Topology
from tests.switch import Sw, run
from tests.traffic import BREAKS, CLASSES, bound_of, handoff_under_traffic, judge, violations
from tests.wait import wait_for

pytestmark = pytest.mark.netns

BIN = Path(sys.executable).parent
_SEND = (
    "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
    "s.sendto(b'x', (sys.argv[1], int(sys.argv[2])))"
)


def _ports(hosts: tuple[Host, ...], ofports: list[int]) -> list[LogicalPort]:
    return [
        LogicalPort(ofport=o, key=i + 1, mac=h.mac, ip=h.addr)
        for i, (h, o) in enumerate(zip(hosts, ofports, strict=True))
    ]


def _learned(dump: str) -> list[str]:
    return [k for k in _counters(dump) if k.startswith(f"cookie={OVN_LEARN_COOKIE:#x}")]


def _table0(dump: str) -> int:
    return sum(v for k, v in _counters(dump).items() if " table=0," in f" {k}")


def _exercise(hosts: tuple[Host, Host, Host], dump: callable) -> dict[str, bool]:  # type: ignore[valid-type]
    """Learn every MAC (one datagram each to a MAC nobody has: flooded), then ping
    across, and send a datagram the ACL denies. Returns what got through."""
    for h in hosts:
        h.set_neigh(f"{NET}.99", "02:00:00:00:00:99")
        h.run(["python3", "-c", _SEND, f"{NET}.99", "9"])
    wait_for(lambda: len(_learned(dump())) == 3, "the three MACs learned")
    a, b, c = hosts
    got = {
        "a-b": a.ping(f"{NET}.2", count=3, interval=0.05),
        "c-a": c.ping(f"{NET}.1", count=2, interval=0.05),
    }
    a.run(["python3", "-c", _SEND, f"{NET}.2", str(OVN_DENIED_UDP)])
    return got


def test_ovn_shaped_switch_forwards_learns_and_counts_as_open_vswitch(
    started: Sw, topology: Topology, tmp_path: Path
) -> None:
    hs = _hosts(topology, "v")
    br = make_bridge(started, topology, *hs)
    ofports = [started.ofport(h.switch_port) for h in hs]
    flows = tmp_path / "ovn.txt"
    table = ovn_pipeline(_ports(hs, ofports))
    flows.write_text("\n".join(table) + "\n")
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    ours_dump = lambda: ofctl(started, br, "dump-flows")  # noqa: E731
    got = _exercise(hs, ours_dump)
    # 3 hellos, 6 + 4 echo requests and replies, 1 denied datagram
    wait_for(lambda: _table0(ours_dump()) == 14, "table 0 to count 14 packets")
    ours = _counters(ours_dump())

    ohs = _hosts(topology, "w")
    otable = ovn_pipeline(_ports(ohs, ofports))
    oflows = tmp_path / "ovn-ovs.txt"
    oflows.write_text("\n".join(otable) + "\n")
    with _ovs(topology, ohs) as o:
        obr = _ovs_bridge(o, topology, ohs, ofports)
        _ovs_ofctl(o, obr, "del-flows")
        _ovs_ofctl(o, obr, "add-flows", str(oflows))
        theirs_dump = lambda: _ovs_ofctl(o, obr, "dump-flows")  # noqa: E731
        want = _exercise(ohs, theirs_dump)
        wait_for(lambda: _table0(theirs_dump()) == 14, "OVS's table 0 to count 14 packets")
        theirs = _counters(theirs_dump())

    assert want == {"a-b": True, "c-a": True}
    assert got == want

    def norm(d: dict[str, int], hosts: tuple[Host, ...]) -> dict[str, int]:
        out = {}
        for k, v in d.items():
            for i, h in enumerate(hosts):
                k = k.replace(h.mac, f"mac{i}").replace(f"nw_src={h.addr},", f"nw_src=ip{i},")
            out[k] = v
        return out

    assert norm(ours, hs) == norm(theirs, ohs)
    assert len({k.split(" actions=")[0].split("table=")[1].split(",")[0] for k in ours}) == 13
    denied = [v for k, v in ours.items() if f"tp_dst={OVN_DENIED_UDP}" in k]
    assert denied == [1]


@pytest.mark.parametrize("fault", [None, *BREAKS])
def test_upgrade_under_traffic_through_the_ovn_shaped_switch(
    started: Sw, topology: Topology, tmp_path: Path, fault: str | None
) -> None:
    """The shared handoff claim through the OVN-shaped pipeline; the same rules after
    (learned ones too), table 0 (which every packet crosses once) counting at least
    what it counted before plus what the UDP streams delivered; each fault of
    ``BREAKS`` armed in the new process is caught (``flush-after-adopt`` resets the
    counters: with UDP only, the traffic after it cannot make up for them)."""
    sw = started
    a = topology.add_host("a", f"{NET}.1/24")
    b = topology.add_host("b", f"{NET}.2/24")
    br = make_bridge(sw, topology, a, b)
    ofports = [sw.ofport(h.switch_port) for h in (a, b)]
    flows = tmp_path / "ovn.txt"
    flows.write_text("\n".join(ovn_pipeline(_ports((a, b), ofports))) + "\n")
    ofctl(sw, br, "del-flows")
    ofctl(sw, br, "add-flows", str(flows))
    assert a.ping(b.addr, count=3, interval=0.1)  # ARP and ping through the pipeline
    dump = lambda: ofctl(sw, br, "dump-flows")  # noqa: E731
    wait_for(lambda: len(_learned(dump())) == 2, "both MACs learned")
    before = _counters(dump())
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    # OpenFlow 1.0 + NXM flow stats carry idle_age (1.3's do not)
    dump10 = lambda: run(["ovs-ofctl", "dump-flows", target]).stdout  # noqa: E731
    assert len([ln for ln in dump10().splitlines() if "idle_age=" in ln]) >= 2

    classes = ("udp",) if fault == "flush-after-adopt" else CLASSES
    report, res = handoff_under_traffic(
        sw, [a, b], "upgrade", fault=fault, classes=classes, rates=Rates(udp_pps=1000)
    )
    assert report["ok"], report
    problems = violations(res, bound_of([report]))
    after = _counters(dump())
    # same rules: learned ones, timeouts, conjunctions
    problems += [f"rules: {r} gone" for r in set(before) - set(after)]
    problems += [f"rules: {r} new" for r in set(after) - set(before)]
    problems += [f"counters: {r} {n} -> {after[r]}" for r, n in before.items()
                 if r in after and after[r] < n]  # fmt: skip
    delivered = sum(c.received for c in res.classes if c.kind == "udp")
    t0 = sum(v for k, v in before.items() if " table=0," in f" {k}")
    t1 = _table0(dump())
    if t1 < t0 + delivered:
        problems.append(f"counters: table 0 counted {t1} < {t0} before + {delivered} delivered")
    judge(problems, fault, res)
    if fault is not None:
        return
    assert len(_learned(dump())) == 2
    # the learned rules are refreshed by the traffic (idle_age small), never re-created
    # (their hard/idle timeouts, cookie and match unchanged: same keys above)
    text = dump10()
    last = min(int(x) for x in re.findall(r"table=0, .*?idle_age=(\d+)", text))
    learned = [ln for ln in text.splitlines() if re.search(r"s, table=31,", ln)]
    assert len(learned) == 2
    for line in learned:
        # refreshed by the traffic until it stopped, like the rules it went through
        assert "idle_timeout=300" in line
        m = re.search(r"idle_age=(\d+)", line)
        assert m is not None and int(m.group(1)) <= last + 1, (line, last)
