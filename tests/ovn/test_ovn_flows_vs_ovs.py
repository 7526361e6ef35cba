"""The action shapes ovn-controller 23.03 sends, added with stock ``ovs-ofctl`` in
OpenFlow 1.5 (what ovn-controller speaks) and 1.3, then dumped in every version, side by
side with real Open vSwitch 3.1 (dummy bridges, tests/openflow/differential.py).

OpenFlow 1.5 carries ``move`` as the standard OFPAT_COPY_FIELD (Open vSwitch refuses
Nicira's NXAST_REG_MOVE in 1.5, and ONF's copy-field outside 1.3), so a rule added in one
version must be dumped in the other's form; ovn-controller also moves a register into
ct_label inside ``ct(commit,exec(...))``. The flows below are copied from ovn-controller's
own table for a logical switch with allow-related ACLs (tests/ovn/test_ovn_e2e.py).
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Iterator

import pytest

from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair, normalize

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vswitchd") is None or shutil.which("ovs-ofctl") is None,
    reason="needs Open vSwitch (ovs-vswitchd, ovs-ofctl)",
)

OVN_FLOWS = [
    "table=8,priority=50,metadata=0x1,actions=set_field:0/0x1000->reg10,resubmit(,73),"
    "move:NXM_NX_REG10[12]->NXM_NX_XXREG0[111],resubmit(,9)",
    "table=49,priority=100,ip,reg0=0x2002/0x2002,metadata=0x1,actions=ct(commit,"
    "zone=NXM_NX_REG13[0..15],exec(set_field:0/0x1->ct_mark,"
    "move:NXM_NX_XXREG0[0..31]->NXM_NX_CT_LABEL[96..127])),resubmit(,50)",
    "table=49,priority=100,ip,reg0=0x2/0x2002,metadata=0x1,"
    "actions=ct(commit,zone=NXM_NX_REG13[0..15],exec(set_field:0/0x1->ct_mark)),resubmit(,50)",
    "table=26,priority=50,arp,metadata=0x1,arp_tpa=10.90.0.2,arp_op=1,"
    "actions=move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],set_field:aa:bb:cc:dd:ee:02->eth_src,"
    "set_field:2->arp_op,move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],"
    "set_field:aa:bb:cc:dd:ee:02->arp_sha,move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[],"
    "set_field:10.90.0.2->arp_spa,move:NXM_NX_REG14[]->NXM_NX_REG15[],"
    "set_field:0x1/0x1->reg10,resubmit(,37)",
    "table=65,priority=100,reg15=0x1,metadata=0x1,actions=clone(move:NXM_NX_REG0[0..15]->"
    "OXM_OF_PKT_REG0[32..47],resubmit(,66)),output:1",
    "table=0,priority=100,in_port=1,actions=set_field:0x2->reg13,set_field:0x1->metadata,"
    "set_field:0x1->reg14,resubmit(,8)",
    "table=43,priority=100,ip,reg0=0x4/0x4,metadata=0x1,"
    "actions=ct(table=44,zone=NXM_NX_REG13[0..15],nat)",
    "table=64,priority=100,reg10=0x1/0x1,reg15=0x1,metadata=0x1,"
    "actions=push:NXM_OF_IN_PORT[],set_field:0->in_port,resubmit(,65),pop:NXM_OF_IN_PORT[]",
    "table=37,priority=100,ip,metadata=0x1,actions=set_field:0x3/0xf->xxreg0,resubmit(,38)",
]


@pytest.fixture(scope="module")
def pair() -> Iterator[SwitchPair]:
    p = SwitchPair(f"ovn{unique_suffix()}"[:15])
    try:
        yield p
    finally:
        p.close()


def _same(pair: SwitchPair, *args: str, stdin: str | None = None) -> str:
    ovs, hl = pair.ofctl(*args, stdin=stdin)
    a, b = normalize(ovs.text(), sort=True), normalize(hl.text(), sort=True)
    diff = "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "ovs", "hitless"))
    assert a == b, f"ovs-ofctl {' '.join(args)}:\n{diff}"
    return b


@pytest.mark.parametrize("add_in", ["OpenFlow15", "OpenFlow13"])
def test_ovn_actions_load_and_dump_as_open_vswitch(pair: SwitchPair, add_in: str) -> None:
    _same(pair, "del-flows", "{br}")
    out = _same(pair, "-O", add_in, "--bundle", "add-flows", "{br}", "-",
                stdin="\n".join(OVN_FLOWS) + "\n")  # fmt: skip
    assert "OFPT_ERROR" not in out, out
    for version in ("OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"):
        dump = _same(pair, "-O", version, "dump-flows", "{br}")
        assert dump.count("actions=") == len(OVN_FLOWS), dump
        assert "move:NXM_NX_XXREG0[0..31]->NXM_NX_CT_LABEL[96..127]" in dump, dump


def test_move_is_refused_where_open_vswitch_refuses_it(pair: SwitchPair) -> None:
    """A ct exec may only write ct_mark/ct_label: moving into a register there is refused
    by both (and nothing is added)."""
    _same(pair, "del-flows", "{br}")
    ovs, hl = pair.ofctl("-O", "OpenFlow15", "add-flow", "{br}",
                         "ip,actions=ct(commit,exec(move:NXM_NX_REG0[]->NXM_NX_REG1[]))")  # fmt: skip
    assert ovs.rc != 0 and hl.rc != 0, (ovs, hl)
    assert _same(pair, "-O", "OpenFlow15", "dump-flows", "{br}").count("actions=") == 0
