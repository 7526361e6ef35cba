"""Open vSwitch's ICMPv6 neighbour discovery extension fields, ``nd_reserved`` (the 32
bits after an NS/NA's checksum: flags and reserved) and ``nd_options_type`` (the type of
the first link-layer address option), side by side with real Open vSwitch 3.1 as
tests/daemon/test_group_vs_ovs.py does it: the same rules loaded with stock
``ovs-ofctl`` into both (dummy datapath), the same frames injected with
``netdev-dummy/receive``, what leaves every port compared byte for byte (a set_field of
each rewrites the frame and its checksum), ``ofproto/trace`` line by line but its
Megaflow and Datapath actions lines, and the rules added and dumped in every OpenFlow
version. Before these fields were in the flow key, hitless refused such rules
(OFPBMC_BAD_FIELD) and dump-table-features listed fewer fields."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from hitless.packet.ops import checksum
from tests.daemon.test_appctl_vs_ovs import Side, loaded_by_both, set_up_both, traced_by_both
from tests.daemon.test_group_vs_ovs import PORTS, VSCTL_SETUP, _tree, sent_by_both
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw

pytestmark = pytest.mark.usefixtures("ovs")

SRC = bytes.fromhex("fe800000000000000000000000000001")
DST = bytes.fromhex("ff0200000000000000000001ff000002")
TARGET = bytes.fromhex("fe800000000000000000000000000002")
MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")

# an all group: the first bucket's rewrite is not seen by the second
GROUPS = ["group_id=1,type=all,bucket=actions=set_field:17->nd_reserved,output:2,"
          "bucket=actions=output:3"]  # fmt: skip
RULES = [
    "table=0,priority=35,icmp6,icmp_type=135,nd_reserved=9,actions=group:1",
    "table=0,priority=30,icmp6,icmp_type=135,nd_reserved=5,actions=output:2",
    "table=0,priority=30,icmp6,icmp_type=136,nd_options_type=2,actions=output:3",
    "table=0,priority=25,icmp6,icmp_type=135,nd_options_type=1,"
    "actions=set_field:7->nd_reserved,output:4",
    "table=0,priority=25,icmp6,icmp_type=136,nd_reserved=3758096384,"
    "actions=set_field:2->nd_options_type,output:4",
    "table=0,priority=20,icmp6,icmp_type=135,actions=output:3",
    "table=0,priority=20,icmp6,icmp_type=136,actions=output:2",
    "table=0,priority=10,actions=drop",
]


def _opt(kind: int, mac: bytes) -> bytes:
    return bytes((kind, 1)) + mac


def nd(icmp_type: int, reserved: int, *options: bytes) -> bytes:
    """An Ethernet frame with an NS (135) or NA (136) to TARGET, its checksum right."""
    body = struct.pack("!I", reserved) + TARGET + b"".join(options)
    icmp = bytes((icmp_type, 0, 0, 0)) + body
    pseudo = SRC + DST + struct.pack("!IxxxB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
    ip6 = struct.pack("!IHBB", 6 << 28, len(icmp), 58, 255) + SRC + DST
    return bytes.fromhex("3333ff000002") + MAC1 + b"\x86\xdd" + ip6 + icmp


# (frame, trace flow) pairs: what each case exercises
FRAMES = [
    # nd_reserved=5 matched (an SLL option too: priority decides)
    nd(135, 5, _opt(1, MAC1)),
    # nd_options_type=1 (SLL first): set_field:7->nd_reserved rewrites flags + checksum
    nd(135, 0, _opt(1, MAC1)),
    # no option at all: options type 0
    nd(135, 0),
    # an NS whose first option is a TLL: the type of the first option the key keeps
    nd(135, 0, _opt(2, MAC2), _opt(1, MAC1)),
    # a nonce option (14) before the SLL: not a link-layer address, skipped
    nd(135, 0, bytes((14, 1)) + bytes(6), _opt(1, MAC1)),
    # NA with TLL: nd_options_type=2
    nd(136, 0x60000000, _opt(2, MAC2)),
    # NA with R/S/O flags 0xe0000000 and no option: set_field:2->nd_options_type, which
    # has no option byte to write
    nd(136, 0xE0000000),
    # NA with those flags and an SLL option: the option's type byte becomes 2
    nd(136, 0xE0000000, _opt(1, MAC1)),
    # through the group: port 2 rewritten to 17, port 3 as it came
    nd(135, 9, _opt(1, MAC1)),
]

TRACED = [
    "icmp6,icmpv6_type=135,nd_target=fe80::2,nd_reserved=5",
    "icmp6,icmpv6_type=135,nd_target=fe80::2,nd_reserved=9",
    "icmp6,icmpv6_type=135,nd_target=fe80::2,nd_sll=02:00:00:00:00:01",
    "icmp6,icmpv6_type=136,nd_target=fe80::2,nd_tll=02:00:00:00:00:02",
    "icmp6,icmpv6_type=136,nd_target=fe80::2,nd_reserved=3758096384",
    "icmp6,icmpv6_type=136,nd_target=fe80::2,nd_options_type=2",
]



@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    return set_up_both(started, ovs, VSCTL_SETUP, groups=GROUPS, rules=RULES, fresh=True)


def test_frames_match_and_rewrite_as_open_vswitch(both: tuple[Side, Side]) -> None:
    want = {2: 2, 3: 4, 4: 4}
    theirs, ours = sent_by_both(both, FRAMES, want)
    assert set(theirs) == set(PORTS)
    assert ours == theirs


def _walk(text: str) -> list[str]:
    """The trace as ``_tree`` compares it, without Open vSwitch's note that its datapath
    flow runs in userspace (its datapaths have no set action for these fields; hitless's
    rewrite the frame themselves), which describes the datapath flow as the two lines
    ``_tree`` drops do."""
    lines = _tree(text)
    if "This flow is handled by the userspace slow path because it:" in lines:
        cut = lines.index("This flow is handled by the userspace slow path because it:")
        rest = lines[cut + 1 :]
        while rest and rest[0].startswith("  - "):
            rest = rest[1:]
        lines = lines[:cut] + rest
    return lines


def test_traces_as_open_vswitch(both: tuple[Side, Side]) -> None:
    traces = traced_by_both(both, TRACED)
    for flow, theirs, _ in traces:
        assert "nd_reserved" in theirs or "nd_options_type" in theirs, (flow, theirs)
    differ = [f"{f}\nOVS:\n{t}\nhitless:\n{u}" for f, t, u in traces if _walk(u) != _walk(t)]
    assert not differ, "\n".join(differ)


def test_rules_load_and_dump_alike_in_every_openflow_version(
    both: tuple[Side, Side], tmp_path: Path
) -> None:
    theirs, ours = loaded_by_both(both, RULES, tmp_path)
    assert "nd_reserved=5" in theirs["OpenFlow13"], theirs["OpenFlow13"]
    for v in theirs:
        assert ours[v] == theirs[v], f"{v}\nOVS:\n{theirs[v]}\nhitless:\n{ours[v]}"
