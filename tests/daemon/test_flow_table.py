"""Flow_Table flow_limit and overflow_policy through stock ovs-vsctl and ovs-ofctl, as
Open vSwitch 3.1 answers (seen side by side: the 4th and 5th flows of a table limited to
3 are refused with OFPFMFC_TABLE_FULL; with overflow_policy=evict a rule with a timeout
makes room)."""

from __future__ import annotations

from tests.daemon.test_config import add_dummy_bridge
from tests.daemon.test_openflow import ofctl
from tests.switch import Sw


def n_rules(sw: Sw, br: str, table: int = 0) -> int:
    out = ofctl(sw, br, "dump-flows", f"table={table}")
    return sum(1 for ln in out.splitlines() if "actions=" in ln)


def test_flow_limit_refuse_and_evict(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    sw.vsctl(
        "--", "--id=@ft", "create", "Flow_Table", "flow_limit=3", "overflow_policy=refuse",
        "name=limited", "--", "set", "Bridge", "br0", "flow_tables:0=@ft",
    )  # fmt: skip
    ofctl(sw, "br0", "del-flows")
    errors = []
    for i in range(5):
        out = ofctl(sw, "br0", "add-flow", f"priority={10 + i},in_port={i + 1},actions=drop",
                    check=False)  # fmt: skip
        errors.append(out)
    assert errors[:3] == ["", "", ""]
    for i, out in ((3, errors[3]), (4, errors[4])):
        # Open vSwitch 3.1's reply, as ovs-ofctl prints it (xid aside).
        assert "): OFPFMFC_TABLE_FULL\nOFPT_FLOW_MOD (OF1.3)" in out, out
        assert f"ADD priority={10 + i},in_port={i + 1} actions=drop" in out, out
    assert n_rules(sw, "br0") == 3
    # Replacing an existing rule (same priority and match) is not growth.
    assert ofctl(sw, "br0", "add-flow", "priority=10,in_port=1,actions=drop", check=False) == ""
    # Another table is not limited.
    for i in range(5):
        ofctl(sw, "br0", "add-flow", f"table=1,priority=1,in_port={i + 1},actions=drop")
    assert n_rules(sw, "br0", 1) == 5

    sw.vsctl("set", "Flow_Table", "limited", "overflow_policy=evict")
    # Rules without timeouts are never evicted: still full.
    out = ofctl(sw, "br0", "add-flow", "priority=30,in_port=9,actions=drop", check=False)
    assert "OFPFMFC_TABLE_FULL" in out
    ofctl(sw, "br0", "del-flows", "in_port=3")
    ofctl(sw, "br0", "add-flow", "priority=5,in_port=7,idle_timeout=100,actions=drop")
    ofctl(sw, "br0", "add-flow", "priority=40,in_port=8,actions=drop")  # evicts in_port=7
    dump = ofctl(sw, "br0", "dump-flows", "table=0")
    assert "in_port=8" in dump and "in_port=7" not in dump
    assert n_rules(sw, "br0") == 3
    sw.vsctl("clear", "Bridge", "br0", "flow_tables")
    ofctl(sw, "br0", "add-flow", "priority=50,in_port=10,actions=drop")
    assert n_rules(sw, "br0") == 4
