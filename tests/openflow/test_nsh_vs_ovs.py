"""Open vSwitch's NSH fields (``nsh_flags``, ``nsh_ttl``, ``nsh_mdtype``, ``nsh_np``,
``nsh_spi``, ``nsh_si``, ``nsh_c1``-``nsh_c4``: its NXOXM_NSH experimenter fields) side by
side with real Open vSwitch 3.1, as tests/openflow/test_nd_ext_vs_ovs.py does it: the
same rules loaded with stock ``ovs-ofctl`` into both (dummy datapath), the same Ethernet
frames carrying an NSH header (eth_type 0x894f) injected with ``netdev-dummy/receive``,
what leaves every port compared byte for byte (set_field rewrites the header; an MD type 2
header keeps its metadata, which Open vSwitch does not write), ``ofproto/trace`` line by
line but its Megaflow and Datapath actions lines, and the rules added and dumped in every
OpenFlow version. Before these fields were in the flow key, hitless refused such rules
(OFPBMC_BAD_FIELD) and dump-table-features listed none of them."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.daemon.test_appctl_vs_ovs import Side, loaded_by_both, set_up_both, traced_by_both
from tests.daemon.test_group_vs_ovs import PORTS, VSCTL_SETUP, sent_by_both
from tests.openflow.test_nd_ext_vs_ovs import _walk
from tests.ovs_dummy import Ovs, ovs  # noqa: F401 (fixture)
from tests.switch import Sw

pytestmark = pytest.mark.usefixtures("ovs")

NSH = 0x894F
# an all group: the first bucket's rewrite is not seen by the second
GROUPS = ["group_id=1,type=all,bucket=actions=set_field:0x77->nsh_c1,set_field:0x99->nsh_spi,"
          "output:2,bucket=actions=output:3"]  # fmt: skip
RULES = [
    "table=0,priority=40,dl_type=0x894f,nsh_spi=0x123,nsh_si=255,"
    "actions=set_field:254->nsh_si,output:2",
    "table=0,priority=35,dl_type=0x894f,nsh_si=9,actions=group:1",
    "table=0,priority=30,dl_type=0x894f,nsh_flags=0x01/0x03,nsh_ttl=63,nsh_mdtype=1,nsh_np=3,"
    "nsh_c1=0x11223344/0xffff0000,"
    "actions=set_field:0x55->nsh_c2,set_field:9->nsh_ttl,set_field:2->nsh_flags,output:3",
    "table=0,priority=25,dl_type=0x894f,nsh_mdtype=1,nsh_c4=7,"
    "actions=set_field:0x456->nsh_spi,set_field:0xabc->nsh_c4,output:4",
    "table=0,priority=25,dl_type=0x894f,nsh_mdtype=2,nsh_spi=0x999,"
    "actions=set_field:0x3/0x3->nsh_c1,set_field:3/0x3->nsh_flags,output:4",
    "table=0,priority=20,dl_type=0x894f,nsh_np=1,actions=set_field:7->nsh_ttl,output:2",
    "table=0,priority=15,dl_type=0x894f,actions=output:3",
    "table=0,priority=10,actions=drop",
]

INNER = bytes.fromhex("020000000003020000000004") + b"\x08\x00" + bytes(20)


def nsh(
    spi: int,
    si: int,
    *,
    md: int = 1,
    np: int = 3,
    flags: int = 0,
    ttl: int = 63,
    ctx: tuple[int, int, int, int] = (0, 0, 0, 0),
    meta: bytes = b"",
    version: int = 0,
    words: int | None = None,
    tag: bytes = b"",
) -> bytes:
    """An Ethernet frame with an NSH header (MD type 1: the four context words; others:
    ``meta``) before an Ethernet frame; ``words`` overrides the header's length field."""
    body = struct.pack("!4I", *ctx) if md == 1 else meta
    length = words if words is not None else 2 + len(body) // 4
    first = version << 14 | flags << 12 | ttl << 6 | length
    head = struct.pack("!HBBI", first, md, np, spi << 8 | si) + body
    eth = bytes.fromhex("020000000002020000000001") + tag
    return eth + struct.pack("!H", NSH) + head + INNER


FRAMES = [
    # path 0x123/255: set_field:254->nsh_si
    nsh(0x123, 255, ctx=(1, 2, 3, 4)),
    # through the group: port 2 gets c1 and the SPI rewritten, port 3 the frame as it came
    nsh(0x5, 9, ctx=(0xA, 0xB, 0xC, 0xD)),
    # flags 1, TTL 63, c1 under a mask: c2, TTL and flags rewritten
    nsh(0x7, 1, flags=1, ctx=(0x11223344, 0, 0, 0)),
    # c4=7 (MD type 1): SPI and c4 rewritten, SI kept
    nsh(0x8, 5, ctx=(0, 0, 0, 7)),
    # MD type 2, no metadata: the flags rewritten, no context word written
    nsh(0x999, 5, md=2),
    # MD type 2 with one 4-byte TLV, next protocol 1 (IPv4): the TTL rewritten
    nsh(0x10, 5, md=2, np=1, meta=bytes.fromhex("01020304")),
    # version 1: not parsed (every field zero): the plain NSH rule
    nsh(0x123, 255, version=1),
    # MD type 1 whose length says 5 words: not parsed either
    nsh(0x123, 255, words=5),
    # behind an 802.1Q tag: parsed and rewritten as untagged
    nsh(0x123, 255, ctx=(5, 6, 7, 8), tag=bytes.fromhex("81000064")),
]

TRACED = [
    "dl_type=0x894f,nsh_mdtype=1,nsh_np=3,nsh_spi=0x123,nsh_si=255",
    "dl_type=0x894f,nsh_mdtype=1,nsh_si=9,nsh_c1=1",
    "dl_type=0x894f,nsh_flags=1,nsh_ttl=63,nsh_mdtype=1,nsh_np=3,nsh_c1=0x11223344",
    "dl_type=0x894f,nsh_mdtype=1,nsh_c4=7,nsh_c2=0x20",
    "dl_type=0x894f,nsh_mdtype=2,nsh_spi=0x999,nsh_si=3",
    "dl_type=0x894f,nsh_np=1,nsh_ttl=5",
]


@pytest.fixture
def both(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    return set_up_both(started, ovs, VSCTL_SETUP, groups=GROUPS, rules=RULES, fresh=True)


def test_frames_match_and_rewrite_as_open_vswitch(both: tuple[Side, Side]) -> None:
    want = {2: 4, 3: 4, 4: 2}
    theirs, ours = sent_by_both(both, FRAMES, want)
    assert set(theirs) == set(PORTS)
    assert ours == theirs


def test_traces_as_open_vswitch(both: tuple[Side, Side]) -> None:
    traces = traced_by_both(both, TRACED)
    for flow, theirs, _ in traces:
        assert "nsh_spi" in theirs, (flow, theirs)
    differ = [f"{f}\nOVS:\n{t}\nhitless:\n{u}" for f, t, u in traces if _walk(u) != _walk(t)]
    assert not differ, "\n".join(differ)


def test_rules_load_and_dump_alike_in_every_openflow_version(
    both: tuple[Side, Side], tmp_path: Path
) -> None:
    theirs, ours = loaded_by_both(both, RULES, tmp_path)
    assert "nsh_spi=0x123" in theirs["OpenFlow13"], theirs["OpenFlow13"]
    assert "nsh_c1=0x11220000/0xffff0000" in theirs["OpenFlow10"], theirs["OpenFlow10"]
    for v in theirs:
        assert ours[v] == theirs[v], f"{v}\nOVS:\n{theirs[v]}\nhitless:\n{ours[v]}"


# dec_nsh_ttl: the TTL less one; at 1 or 0 the rule's actions end there
# in a bucket it has its place in the action set: before the set_field, whatever order
DEC_GROUPS = ["group_id=2,type=all,bucket=actions=output:2,dec_nsh_ttl,set_field:3->nsh_si,"
              "bucket=actions=output:3"]  # fmt: skip
DEC_RULES = [
    "table=0,priority=40,dl_type=0x894f,nsh_si=9,actions=group:2",
    "table=0,priority=30,dl_type=0x894f,nsh_si=7,actions=dec_nsh_ttl,output:2",
    "table=0,priority=20,dl_type=0x894f,actions=dec_nsh_ttl,dec_nsh_ttl,output:3",
    "table=0,priority=10,actions=drop",
]
DEC_FRAMES = [
    nsh(0x1, 7, ttl=1),  # the TTL exception: nothing sent
    nsh(0x1, 7, ttl=0),
    nsh(0x1, 5, ttl=2),  # the second dec_nsh_ttl sees TTL 1: nothing sent
    nsh(0x1, 7, ttl=63, ctx=(1, 2, 3, 4)),  # TTL 62 on port 2
    nsh(0x1, 5, ttl=5, md=2),  # TTL 3 on port 3
    nsh(0x1, 9, ttl=63),  # the group: TTL 62 and SI 3 on port 2, as it came on port 3
]
DEC_TRACED = [
    "dl_type=0x894f,nsh_mdtype=1,nsh_ttl=63,nsh_si=7",
    "dl_type=0x894f,nsh_mdtype=1,nsh_ttl=1,nsh_si=7",
    "dl_type=0x894f,nsh_ttl=2",
    "dl_type=0x894f,nsh_ttl=5",
    "dl_type=0x894f,nsh_ttl=63,nsh_si=9",
]


@pytest.fixture
def dec(started: Sw, ovs: Ovs) -> tuple[Side, Side]:  # noqa: F811
    return set_up_both(
        started, ovs, VSCTL_SETUP, groups=DEC_GROUPS, rules=DEC_RULES, fresh=True
    )


def test_dec_nsh_ttl_as_open_vswitch(dec: tuple[Side, Side], tmp_path: Path) -> None:
    """The same frames out (a TTL of 1 or 0 ends the rule's actions), the same traces
    (" >> NSH decrement TTL exception"), and the same load/dump in every version (1.3+
    only: ovs-ofctl finds no 1.0 encoding for it, and cannot decode the one Open vSwitch
    sends in a 1.0 dump)."""
    theirs, ours = sent_by_both(dec, DEC_FRAMES, {2: 2, 3: 2, 4: 0})
    assert ours == theirs
    traces = traced_by_both(dec, DEC_TRACED)
    assert sum("NSH decrement TTL exception" in t for _, t, _ in traces) == 2, traces
    differ = [f"{f}\nOVS:\n{t}\nhitless:\n{u}" for f, t, u in traces if _walk(u) != _walk(t)]
    assert not differ, "\n".join(differ)
    theirs_d, ours_d = loaded_by_both(dec, DEC_RULES, tmp_path)
    assert "dec_nsh_ttl,dec_nsh_ttl" in theirs_d["OpenFlow13"], theirs_d["OpenFlow13"]
    for v in theirs_d:
        assert ours_d[v] == theirs_d[v], f"{v}\nOVS:\n{theirs_d[v]}\nhitless:\n{ours_d[v]}"
