"""Write the golden snapshot of the current state format version (run once, when a
version is released; never regenerate an existing file):

    .venv/bin/python tests/golden/make_golden.py

The state is what a small netdev bridge really holds after two hosts talked: ports,
MAC entries, NORMAL megaflows with counters, netdev ring positions; from version 2 on
also its OpenFlow table (the default NORMAL rule, a drop rule with a cookie and an idle
timeout, a rule sending to a select group through a meter), the group and the meter;
from version 3 on also the megaflow of an ARP broadcast through that meter (a datapath
meter action) and the meter's token bucket in the netdev handles.
"""

from __future__ import annotations

import json
from pathlib import Path

from hitless.datapath.actions import Meter, Output, actions_to_json
from hitless.openflow import ApplyActions, Bucket, MeterBand, encode_instructions
from hitless.openflow import Match as OfMatch
from hitless.openflow import Output as OfOutput
from hitless.openflow import actions as ofa
from hitless.openflow.constants import Port
from hitless.packet.flow import Match, compact, full_mask, make_key
from hitless.state import ledger, snapshot
from hitless.state.records import (
    BridgeState,
    DatapathV1,
    FlowV1,
    MacEntryV1,
    OfGroupV2,
    OfMeterV2,
    OfRuleV2,
    OpenFlowV2,
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
    return State(
        [
            BridgeState(
                "br0",
                DatapathV1("netdev", handles, flows, [0, 1]),
                [PortV1("veth-a", 1), PortV1("veth-b", 2), PortV1("br0", 65534, "internal")],
                {"veth-old": 3},
                [
                    MacEntryV1(0, bytes.fromhex(a.replace(":", "")), 1, 0.02),
                    MacEntryV1(0, bytes.fromhex(b.replace(":", "")), 2, 0.03),
                ],
                {},
                golden_openflow(),
            )
        ]
    )


def golden_openflow() -> OpenFlowV2:
    normal = encode_instructions((ApplyActions((OfOutput(Port.NORMAL),)),))
    to_group = encode_instructions(
        (ofa.MeterInstruction(meter_id=1), ApplyActions((ofa.GroupAction(group_id=7),)))
    )
    buckets = b"".join(Bucket(weight=1, actions=(OfOutput(p),)).encode() for p in (1, 2))
    bands = MeterBand(rate=1000, burst_size=100).encode()
    return OpenFlowV2(
        [
            OfRuleV2(0, 0, OfMatch().encode(), normal, 0, 0, 0, 0, 0, 60.0, 0.02, 2403, 196000),
            OfRuleV2(0, 100, OfMatch.of(in_port=2, eth_type=0x0800).encode(), b"",
                     0xC0FFEE, 30, 0, 1, 0, 12.0, 12.0, 0, 0),
            OfRuleV2(0, 50, OfMatch.of(eth_type=0x0806).encode(), to_group,
                     0, 0, 0, 0, 0, 5.0, 0.5, 7, 294),
        ],
        [OfGroupV2(7, 1, buckets, 5.0, 7, 294, [[4, 168], [3, 126]])],
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
