"""What one rule change costs a bridge with a big table and many live megaflows: the
re-translation ``commit_openflow`` does before the next packet (and before a barrier's
reply), in one process on the dummy datapath.

    .venv/bin/python bench/retranslate.py [--rules 100000] [--megaflows 20000] [--runs 3]

A bridge (hitless.ofproto.bridge.Bridge, dummy datapath, three ports) gets RULES rules
of the four shapes ``hitless impact --rules`` loads (UDP 5-tuple, TCP ports, IPv4
pair, Ethernet pair; ``actions=drop``, none hit) above ``priority=0 actions=NORMAL``,
then MEGAFLOWS distinct UDP flows from one port (each its own megaflow: the 5-tuple
rules make the megaflows hold the ports). Then, timed, one at a time: a rule that
matches one of those flows exactly (``udp,nw_src,nw_dst,tp_src,tp_dst actions=drop`` at
priority 20) is added, and deleted again. Printed: the median time of the flow-mod
plus ``commit_openflow`` (after it every megaflow is right: the flow's megaflow drops,
the others still forward; CPU time of this process, the machine is shared), how many
megaflows it translated again (the mean of the add and the delete), and the same with
every megaflow that read table 0 translated again (what the bridge did before rule
changes were told apart: ``Bridge._whole_tables``), and the ratio of the two.
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hitless.config.model import BridgeConfig, InterfaceConfig, PortConfig  # noqa: E402
from hitless.datapath.dummy import DummyDatapath  # noqa: E402
from hitless.ofproto.bridge import Bridge  # noqa: E402
from hitless.openflow import FlowMod, Match  # noqa: E402
from hitless.openflow.constants import FlowModCommand  # noqa: E402

IP, UDP, TCP = 0x0800, 17, 6
SRC = int(ipaddress.IPv4Address("198.18.0.0"))
DST = int(ipaddress.IPv4Address("192.0.2.1"))
HOST_A, HOST_B = int(ipaddress.IPv4Address("10.0.0.1")), int(ipaddress.IPv4Address("10.0.0.2"))


def filler(i: int) -> Match:
    src, port = SRC + i % (1 << 17), 1024 + i // (1 << 17)
    shape = i % 4
    if shape == 0:
        return Match.of(eth_type=IP, ip_proto=UDP, ipv4_src=src, ipv4_dst=DST,
                        udp_src=port, udp_dst=9)  # fmt: skip
    if shape == 1:
        return Match.of(eth_type=IP, ip_proto=TCP, ipv4_src=src, ipv4_dst=DST, tcp_dst=port)
    if shape == 2:
        return Match.of(eth_type=IP, ipv4_src=src, ipv4_dst=DST + 1 + i // (1 << 17) % 250)
    return Match.of(eth_src=0x0A0000000000 + i, eth_dst=0x0A0000000001)


MAC_A, MAC_B = bytes.fromhex("505400000001"), bytes.fromhex("505400000002")


def mac_of(i: int) -> bytes:
    """The source MAC of flow ``i`` (locally administered, 02:...)."""
    return (0x020000000000 + i).to_bytes(6, "big")


def udp_frame(i: int, reverse: bool = False) -> bytes:
    src, dst = (HOST_B, HOST_A) if reverse else (HOST_A, HOST_B)
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 28, 1, 0, 64, UDP, 0, src, dst)
    l4 = struct.pack("!HHHH", 4000, 5000, 8, 0)
    eth = (MAC_A + MAC_B) if reverse else (MAC_B + mac_of(i))
    return (eth + struct.pack("!H", IP) + ip + l4).ljust(60, b"\0")


def build(rules: int, megaflows: int) -> tuple[Bridge, DummyDatapath]:
    dp = DummyDatapath("br0")
    br = Bridge("br0", dp)
    ports = {n: PortConfig(n, (InterfaceConfig(n, "system", None, None),), None, frozenset(), None)
             for n in ("p1", "p2", "p3")}  # fmt: skip
    cfg = BridgeConfig("br0", datapath_type="dummy", ports=ports,
                       other_config={"mac-table-size": str(2 * megaflows + 16)})  # fmt: skip
    br.reconfigure(cfg, 0.0)
    for i in range(rules):
        br.flow_mod(FlowMod(command=FlowModCommand.ADD, priority=10, match=filler(i)), 0.0)
    br.commit_openflow()
    p1, p2 = br.ofport_of("p1"), br.ofport_of("p2")
    assert p1 is not None and p2 is not None
    br.run(0.0)
    dp.receive(p2, udp_frame(0, reverse=True))  # host B is learned on p2
    br.run(0.0)
    for i in range(megaflows):
        dp.receive(p1, udp_frame(i))
        if i % 200 == 199:
            br.run(0.0)
    br.run(0.0)
    return br, dp


def one_change(br: Bridge, i: int, whole: bool) -> tuple[float, float]:
    m = Match.of(eth_src=int.from_bytes(mac_of(i), "big"), eth_dst=int.from_bytes(MAC_B, "big"))
    took, n = 0.0, 0
    for cmd in (FlowModCommand.ADD, FlowModCommand.DELETE_STRICT):
        t = time.process_time()
        br.flow_mod(FlowMod(command=cmd, priority=20, match=m), 1.0)
        if whole:
            br._whole_tables.add(0)
        n += br.commit_openflow()
        took += time.process_time() - t
    return took / 2, n / 2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", type=int, default=100_000)
    ap.add_argument("--megaflows", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    t = time.perf_counter()
    br, dp = build(a.rules, a.megaflows)
    print(f"{a.rules} rules, {dp.flow_count()} megaflows, built in {time.perf_counter() - t:.1f} s")
    rows: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for run in range(a.runs):
        for whole in (False, True):
            rows[whole].append(one_change(br, run * 7 + 3, whole))
    for whole in (False, True):
        med = statistics.median(x for x, _ in rows[whole])
        n = statistics.median(n for _, n in rows[whole])
        what = "every megaflow of table 0" if whole else "only those the rule can match"
        print(f"{what:32} {med * 1000:9.1f} ms of CPU per flow-mod, {n:.1f} megaflows "
              "translated again")  # fmt: skip
    precise = statistics.median(x for x, _ in rows[False])
    full = statistics.median(x for x, _ in rows[True])
    print(f"ratio (all / only those): {full / precise:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
