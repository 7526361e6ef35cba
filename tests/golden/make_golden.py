"""Write the golden snapshot of the current state format version (run once, when a
version is released; never regenerate an existing file):

    .venv/bin/python tests/golden/make_golden.py

The state is what a small netdev bridge really holds after two hosts talked: ports,
MAC entries, NORMAL megaflows with counters, netdev ring positions; from version 2 on
also its OpenFlow table (the default NORMAL rule, a drop rule with a cookie and an idle
timeout, a rule sending to a select group through a meter), the group and the meter;
from version 3 on also the megaflow of an ARP broadcast through that meter (a datapath
meter action) and the meter's token bucket in the netdev handles; from version 4 on also
the bridge's OpenFlow sessions as a handoff's freeze carries them: an ovs-ofctl session
on the management socket (OpenFlow 1.4, a bundle in flight, a flow monitor, unparsed
bytes, unsent bytes) and a controller's (OpenFlow 1.0 with the Nicira extensions: NXM,
NXT_PACKET_IN2, a controller id; master with a generation id and an async config), the
management, snoop and ptcp listeners, the switch config, a Geneve option map and a
table's settings; from version 5 on also the datapath's connection table (TCP with its
windows, UDP through DNAT, an ICMPv6 echo); from version 6 on a rule modified after it
was added (a refreshed learned rule: its modified age apart from its age) and the select
group's selection method (hash over the IPv4 addresses and the TCP source port, with a
basis); from version 7 on the megaflow actions and the handles are typed records, and
the state also holds megaflows with every action kind whose record has byte values or
nests (a firewall's ct with NAT and a label then a recirculation, a check_pkt_len, a
VLAN push and a masked set_field, an sFlow sample) and two misses queued at the freeze
(a plain one, and a recirculated one whose key carries its ct state).
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from hitless.datapath.actions import (
    CheckPktLen,
    Ct,
    Meter,
    Output,
    PushVlan,
    Recirc,
    Sample,
    SetField,
    actions_to_json,
    actions_to_records,
)
from hitless.datapath.conntrack import NatSpec
from hitless.openflow import ApplyActions, Bucket, MeterBand, encode_instructions
from hitless.openflow import Match as OfMatch
from hitless.openflow import Output as OfOutput
from hitless.openflow import actions as ofa
from hitless.openflow.constants import Port
from hitless.openflow.messages import FlowMod
from hitless.packet.flow import Match, compact, full_mask, make_key
from hitless.state import handles as dp_handles
from hitless.state import ledger, snapshot
from hitless.state.records import (
    BridgeSessionsV4,
    BridgeState,
    ConntrackV5,
    CtConnV5,
    DatapathV7,
    FlowV1,
    FlowV7,
    MacEntryV1,
    OfBundleV4,
    OfConnectionV4,
    OfGroup,
    OfMeterV2,
    OfMonitorV4,
    OfRule,
    OfSelectionV6,
    OfSessionV4,
    OfTableConfigV4,
    OfTlvMapV4,
    OpenFlow,
    PortV1,
    State,
)

HERE = Path(__file__).parent


def golden_state(version: int = snapshot.CURRENT_VERSION) -> State:
    """The golden state as a build of format ``version`` held it (the parts of later
    versions are left out: files of earlier versions were written without them)."""
    mask = full_mask("in_port", "eth_src", "eth_dst", "vlan_tci")
    a, b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    flows = []
    for in_port, src, dst, out in ((1, a, b, 2), (2, b, a, 1)):
        m = Match.of(make_key(in_port=in_port, eth_src=src, eth_dst=dst), mask)
        flows.append(
            FlowV1(*compact(m.key, m.mask), actions_to_json((Output(out),)), 1200, 98400, 0.02, 0)
        )
    bcast = Match.of(make_key(in_port=1, eth_src=a, eth_dst="ff:ff:ff:ff:ff:ff"), mask)
    flows.append(
        FlowV1(
            *compact(bcast.key, bcast.mask),
            actions_to_json((Output(2), Output(65534))),
            3,
            126,
            4.5,
            0,
        )
    )
    handles = {
        "version": 1,
        "type": "netdev",
        "ring_frames": 4096,
        "max_upcalls": 4096,
        "ports": [
            {
                "port_no": 1,
                "name": "veth-a",
                "type": "system",
                "mac": "0200000000a1",
                "ifindex": 7,
                "fd": 0,
                "stats": [1203, 98526, 1200, 98400, 0, 0],
                "ring": [1 << 22, 4, 2048, 8192],
                "head": 1203,
            },
            {
                "port_no": 2,
                "name": "veth-b",
                "type": "system",
                "mac": "0200000000b1",
                "ifindex": 9,
                "fd": 1,
                "stats": [1200, 98400, 1203, 98526, 0, 0],
                "ring": [1 << 22, 4, 2048, 8192],
                "head": 1200,
            },
        ],
        "flows": [],
        "upcalls": [],
        "counters": [2403, 4, 0],
    }
    if version >= 3:
        arp = Match.of(
            make_key(in_port=2, eth_src=b, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=0x0806),
            full_mask("in_port", "eth_src", "eth_dst", "vlan_tci", "eth_type"),
        )
        flows.append(
            FlowV1(
                *compact(arp.key, arp.mask), actions_to_json((Meter(1), Output(1))), 7, 294, 0.5, 0
            )
        )
        handles["meters"] = [
            {"meter_id": 1, "kbps": True, "bands": [[1000, 100, 1]], "tokens": [97648.0],
             "last": 81234.5}
        ]  # fmt: skip
    typed = [snapshot.flow_up_6(f) for f in flows]
    record = dp_handles.from_wire("netdev", handles)
    if version >= 7:
        typed += golden_flows_v7()
        record = msgspec.structs.replace(record, upcalls=golden_upcalls())
    return State(
        sessions=golden_sessions() if version >= 4 else [],
        conntrack=golden_conntrack() if version >= 5 else [],
        bridges=[
            BridgeState(
                "br0",
                DatapathV7("netdev", record, typed, [0, 1]),
                [PortV1("veth-a", 1), PortV1("veth-b", 2), PortV1("br0", 65534, "internal")],
                {"veth-old": 3},
                [
                    MacEntryV1(0, bytes.fromhex(a.replace(":", "")), 1, 0.02),
                    MacEntryV1(0, bytes.fromhex(b.replace(":", "")), 2, 0.03),
                ],
                {},
                golden_openflow(version),
            )
        ]
    )


def golden_flows_v7() -> list[FlowV7]:
    """Version 7's megaflows with every action record that has byte values or nests."""
    ip = full_mask("in_port", "eth_type", "ip_proto", "ipv4_src", "ipv4_dst")
    out = []
    for in_port, acts, n in (
        (1, (Ct(zone=5, commit=True, nat=NatSpec("dst", bytes([10, 0, 0, 9]),
                                                 bytes([10, 0, 0, 12]), 8000, 8099, True,
                                                 False),
                mark=(0x2A, 0xFF), label=(1 << 100 | 7, (1 << 128) - 1)), Recirc(0x11)), 9),
        (2, (CheckPktLen(1400, (Output(65534),), (Output(1),)),), 4),
        (3, (PushVlan(0x2064), SetField("eth_dst", bytes.fromhex("02000000000c"),
                                        bytes.fromhex("ffffffffff00")), Output(2)), 2),
        (4, (Sample(0x1000000, bytes.fromhex("0000000100000002")), Output(1)), 1),
    ):  # fmt: skip
        m = Match.of(make_key(in_port=in_port, eth_type=0x0800, ip_proto=6,
                              ipv4_src="10.0.0.1", ipv4_dst="10.0.0.2"), ip)  # fmt: skip
        out.append(FlowV7(*compact(m.key, m.mask), actions_to_records(acts), n, 74 * n, 1.5, 0x12))
    return out


def golden_upcalls() -> list[dp_handles.UpcallV1]:
    """Two misses queued at the freeze: an ARP request, and a recirculated TCP SYN whose
    key carries its ct state (what the packet alone does not say)."""
    arp = bytes.fromhex("ffffffffffff02000000000a08060001080006040001") + bytes(20)
    syn = bytes.fromhex("02000000000b02000000000a0800") + bytes(40)
    key = make_key(in_port=2, eth_type=0x0800, ip_proto=6, ipv4_src="10.0.0.1",
                   ipv4_dst="10.0.0.2", recirc_id=0x11, ct_state=0x21, ct_zone=5)  # fmt: skip
    return [
        dp_handles.UpcallV1(1, arp, "miss", b""),
        dp_handles.UpcallV1(2, syn, "miss", b"", key),
    ]


def golden_conntrack() -> list[ConntrackV5]:
    """The connection table of version 5's golden state: an established TCP connection
    with its windows (zone 5, a mark and a label), a UDP one through DNAT (the reply
    comes from the real server) and an ICMPv6 echo."""
    a4, b4, vip = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([10, 0, 0, 100])
    a6, b6 = bytes.fromhex("fd00" + "00" * 13 + "01"), bytes.fromhex("fd00" + "00" * 13 + "02")
    tcp = CtConnV5(
        5, (a4, b4, 6, 40000, 80), (b4, a4, 6, 80, 40000), 86390.5, 0, 0x1234,
        (1 << 127 | 7).to_bytes(16, "big"), True, "first",
        [(4, 1000, 66536, 65535, 7, True), (4, 5000, 70535, 64240, 7, True)],
    )  # fmt: skip
    udp = CtConnV5(0, (a4, vip, 17, 5353, 53), (b4, a4, 17, 53, 5353), 29.0, 2, 0,
                   bytes(16), True, "bidir")  # fmt: skip
    icmp = CtConnV5(0, (a6, b6, 58, 7, 0x8000), (b6, a6, 58, 7, 0x8100), 28.5, 0, 0,
                    bytes(16), False, "first")  # fmt: skip
    return [ConntrackV5("br0", [tcp, udp, icmp])]


def golden_sessions() -> list[BridgeSessionsV4]:
    """The OpenFlow sessions of version 4's golden state (descriptor indices 0-4)."""
    add = FlowMod(priority=200, match=OfMatch.of(in_port=1),
                  instructions=(ApplyActions((OfOutput(2),)),))  # fmt: skip
    echo_request = bytes.fromhex("0502000800000063")  # its first 5 bytes came, unparsed
    echo_reply = bytes.fromhex("0503001000000028") + b"\0" * 8  # not yet written
    ofctl = OfSessionV4(
        2,
        OfConnectionV4([4, 5, 6], 5, "open", True, 0, None,
                       [(0, 0), (1, 3), (2, 7), (3, 7), (4, 0), (5, 15)], 41,
                       echo_request[:5], 60.0),  # fmt: skip
        echo_reply,
        service=True,
        bundles=[OfBundleV4(9, 1, [add.encode(5)])],
        closed_bundles=[8],
        monitors=[OfMonitorV4(1, 0xF, 0xFF, 0xFFFFFFFF, 0xFFFFFFFF,
                              OfMatch.of(eth_type=0x0800).encode())],  # fmt: skip
    )
    controller = OfSessionV4(
        3,
        OfConnectionV4([1, 4, 5, 6], 1, "open", True, 2, 5,
                       [(0, 0), (1, 7), (2, 7), (3, 7), (4, 0), (5, 15)], 1002, b"", 5.0,
                       probe_xid=1001, flow_format=2, packet_in_format=2, controller_id=7,
                       flow_mod_table_id=True, nx_xids=[77]),  # fmt: skip
        service=False,
        miss_send_len=0xFFFF,
        controller="tcp:127.0.0.1:6653",
    )
    return [
        BridgeSessionsV4(
            "br0", 0, 4, {"ptcp:6633:127.0.0.1": 1}, [ofctl, controller], 1, 128,
            [OfTlvMapV4(0xFFFF, 0x80, 4, 0)], [OfTableConfigV4(0, 0, True, (20, 80))],
        )  # fmt: skip
    ]


def golden_openflow(version: int = snapshot.CURRENT_VERSION) -> OpenFlow:
    """From version 6 on, one rule's modified age differs from its age and the group has
    a selection method; before, a rule's one age is its modified age."""
    v6 = version >= 6
    selection = None
    if v6:
        hashed = (OfMatch.of(ipv4_src=0xFFFFFFFF).fields + OfMatch.of(ipv4_dst=0xFFFFFF00).fields
                  + OfMatch.of(tcp_src=0xFFFF).fields)  # fmt: skip
        selection = OfSelectionV6("hash", 0x5A5A, b"".join(f.encode() for f in hashed))
    normal = encode_instructions((ApplyActions((OfOutput(Port.NORMAL),)),))
    to_group = encode_instructions(
        (ofa.MeterInstruction(meter_id=1), ApplyActions((ofa.GroupAction(group_id=7),)))
    )
    buckets = b"".join(Bucket(weight=1, actions=(OfOutput(p),)).encode() for p in (1, 2))
    bands = MeterBand(rate=1000, burst_size=100).encode()
    return OpenFlow(
        [
            OfRule(0, 0, OfMatch().encode(), normal, 0, 0, 0, 0, 0, 60.0, 0.02, 2403, 196000,
                   60.0),
            OfRule(0, 100, OfMatch.of(in_port=2, eth_type=0x0800).encode(), b"",
                   0xC0FFEE, 30, 0, 1, 0, 42.0 if v6 else 12.0, 12.0, 0, 0, 12.0),
            OfRule(0, 50, OfMatch.of(eth_type=0x0806).encode(), to_group,
                   0, 0, 0, 0, 0, 5.0, 0.5, 7, 294, 5.0),
        ],
        [OfGroup(7, 1, buckets, 5.0, 7, 294, [[4, 168], [3, 126]], selection)],
        [OfMeterV2(1, 1, bands, 5.0, 7, 294, [[0, 0]])],
        [[0, 2410, 2410]],
    )  # fmt: skip


def main() -> None:
    v = snapshot.CURRENT_VERSION
    path = HERE / f"state-v{v}.snap"
    if path.exists():
        raise SystemExit(f"{path} exists: golden files are never regenerated")
    state = golden_state(v)
    path.write_bytes(snapshot.encode(state, software="golden", taken=0.0))
    doc: dict[str, object] = {
        "summary": snapshot.summary(state),
        "digest": ledger.state_digest(state),
    }
    # From version 3 on: the digest of the state as each older version carries it (what
    # a build of that version computes after a downgrade), where it can carry it.
    older = {}
    for old in range(v - 1, 0, -1):
        try:
            older[str(old)] = ledger.state_digest(snapshot.as_version(state, old))
        except snapshot.SnapshotError:
            break
    doc["digests"] = older
    (HERE / f"state-v{v}.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
