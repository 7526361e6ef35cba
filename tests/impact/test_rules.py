"""The OpenFlow side of the impact harness without a switch: the rules it installs
(checked by stock ovs-ofctl's parser), the parsing of what ovs-ofctl prints back, the
counter verdicts, the openflow class's agents and the explanations every class gets."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from pathlib import Path

import pytest

from hitless.impact import rules
from hitless.impact.analysis import KINDS, STATEFUL_KINDS
from hitless.impact.explain import EXPLANATIONS, OPERATION_NOTES
from hitless.impact.run import (
    ALL_CLASSES,
    CONTROLLER_CLASSES,
    Rates,
    _Agent,
    _Plan,
    _plan,
    controller_port,
    openflow_ports,
)
from hitless.impact.switches import HITLESS_OPS, OVS_OPS, label


def test_filler_rules_are_distinct_and_miss_the_hosts() -> None:
    lines = list(rules.filler_rules(140_000))  # more than the 2^17 sources of the /15
    assert len(lines) == 140_000
    matches = [line.split(",", 2)[2].rsplit(",actions=", 1)[0] for line in lines]
    assert len(set(matches)) == len(matches)  # no two the same rule
    shapes = {line.split(",")[2].split("=")[0] for line in lines}
    assert shapes == {"udp", "tcp", "ip", "dl_src"}  # L4, L4, L3, L2 in turn
    for line in lines:
        assert line.startswith(f"cookie={rules.COOKIE_FILL:#x},priority=10,")
        assert line.endswith(",actions=drop")
    for line in (lines[0], lines[131_069], lines[131_074], lines[-2]):
        src = re.search(r"nw_src=([\d.]+)", line)
        assert src is not None
        assert ipaddress.ip_address(src.group(1)) in ipaddress.ip_network("198.18.0.0/15")
    # above the table-miss rule, below the traffic rules
    assert 0 < rules.FILL_PRIORITY < rules.TRAFFIC_PRIORITY


def test_stock_ovs_ofctl_parses_the_rules(tmp_path: Path) -> None:
    ab, ba = rules.traffic_rules(("of a→b", "of b→a"), (3, 7), (20007, 20008))
    path = tmp_path / "rules.flows"
    path.write_text("\n".join([*rules.filler_rules(5), ab.flow(), ba.flow()]) + "\n")
    r = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "parse-flows", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    mods = [ln for ln in r.stdout.splitlines() if "FLOW_MOD" in ln]
    assert len(mods) == 7
    assert "priority=100,udp,in_port=3,tp_dst=20007 cookie:0x484c4902 actions=output:7" in mods[5]
    assert "priority=100,udp,in_port=7,tp_dst=20008 cookie:0x484c4902 actions=output:3" in mods[6]


def test_cookie_matches_select_ours() -> None:
    assert rules.ours_match() == "cookie=0x484c4900/0xffffff00"
    assert rules.cookie_match(rules.COOKIE_TRAFFIC) == "cookie=0x484c4902/-1"
    for c in (rules.COOKIE_FILL, rules.COOKIE_TRAFFIC):
        assert c & rules.COOKIE_MASK == rules.COOKIE_OURS


# what the two switches print (trimmed from real runs)
HITLESS_AGG = (
    "OFPST_AGGREGATE reply (OF1.3) (xid=0x6): packet_count=0 byte_count=0 flow_count=1002\n"
)
HITLESS_DUMP = """OFPST_FLOW reply (OF1.3) (xid=0x6):
 cookie=0x484c4902, duration=1.2s, table=0, n_packets=1004, n_bytes=110440, priority=100,udp,in_port=1,tp_dst=20007 actions=output:2
 cookie=0x484c4902, duration=1.2s, table=0, n_packets=998, n_bytes=109780, priority=100,udp,in_port=2,tp_dst=20008 actions=output:1
"""  # noqa: E501
OVS_DUMP = """ cookie=0x484c4902, duration=0.044s, table=0, n_packets=5, n_bytes=550, priority=100,udp,in_port=2,tp_dst=20008 actions=output:1
"""  # noqa: E501


def test_parse_aggregate_and_counters() -> None:
    assert rules.aggregate_count(HITLESS_AGG) == 1002
    with pytest.raises(ValueError, match="flow_count"):
        rules.aggregate_count("ovs-ofctl: br0: failed to connect to socket")
    traffic = rules.traffic_rules(("of a→b", "of b→a"), (1, 2), (20007, 20008))
    assert rules.rule_counters(HITLESS_DUMP, traffic) == {"of a→b": 1004, "of b→a": 998}
    # a rule that is not there (the restart forgot it) reads as None, not 0
    assert rules.rule_counters(OVS_DUMP, traffic) == {"of a→b": None, "of b→a": 5}
    # other ports or UDP ports are other rules
    other = rules.traffic_rules(("x", "y"), (1, 2), (20017, 20018))
    assert rules.rule_counters(HITLESS_DUMP, other) == {"x": None, "y": None}


@pytest.mark.parametrize(
    ("before", "after", "end", "delivered", "down", "uncounted", "words"),
    [
        (1000, 1500, 3000, 3000, False, 0, ["1500 after: kept counting", "3000 at the end"]),
        (1000, 1500, 2906, 3000, False, 94, ["kept counting", "(94 not counted)"]),
        (1000, 4, 1700, 2700, True, 1000, ["4 after: WENT DOWN", "1700 at the end"]),
        (1000, None, None, 1900, True, 1900, ["rule gone after it"]),
        (None, None, None, 1900, False, 1900, ["missing before the operation"]),
    ],
)
def test_counter_verdicts(
    before: int | None,
    after: int | None,
    end: int | None,
    delivered: int,
    down: bool,
    uncounted: int,
    words: list[str],
) -> None:
    r = rules.CounterReading("openflow a→b", before, after, end, delivered)
    assert r.went_down is down
    assert r.uncounted == uncounted
    note = r.note()
    assert note.startswith("openflow a→b rule counter (n_packets): ")
    for w in words:
        assert w in note, note
    assert "not counted" not in note or not down  # a reset counter says so instead
    assert r.summary()["went_down"] is down


def test_rules_note_reads_like_the_mac_note() -> None:
    note = rules.rules_note(1002, 1002, 0, {"from --rules": 1000, "for the openflow class": 2})
    assert note == (
        "OpenFlow rules (dump-aggregate): 1002 of 1002 installed before, 0 of 1002 kept "
        "after (1000 from --rules, 2 for the openflow class)"
    )
    assert rules.rules_note(2, 2, 2, {"from --rules": 0, "for the openflow class": 2}).endswith(
        "2 of 2 kept after (2 for the openflow class)"
    )


class H:
    def __init__(self, name: str, ip: str) -> None:
        self.name, self.ns, self.ip = name, f"ns-{name}", ip


def class_agents(plan: _Plan) -> list[_Agent]:
    """The plan's agents for its traffic classes, after checking that every run also has
    one ``cpu-probe`` per CPU this process may run on (the machine's stalls)."""
    probes = sorted(ag.label for ag in plan.agents if ag.label.startswith("cpu-probe-"))
    assert probes == sorted(f"cpu-probe-{c}" for c in os.sched_getaffinity(0))
    return [ag for ag in plan.agents if not ag.label.startswith("cpu-probe-")]


def test_openflow_class_plan_uses_the_given_ports(tmp_path: Path) -> None:
    port = 23450
    plan = _plan([H("a", "10.9.0.1/24"), H("b", "10.9.0.2/24")], ["openflow"], Rates(),
                 tmp_path, run=7, port=port)  # fmt: skip
    by = {ag.label: ag.args for ag in class_agents(plan)}
    assert set(by) == {"of-ab-rx", "of-ba-rx", "of-ab-tx", "of-ba-tx"}
    ab, ba = openflow_ports(port)
    assert (ab, ba) == (port + 7, port + 8)

    def opt(label: str, name: str) -> str:
        args = by[label]
        return args[args.index(name) + 1]

    assert opt("of-ab-tx", "--dst") == "10.9.0.2" and opt("of-ab-tx", "--port") == str(ab)
    assert opt("of-ab-rx", "--port") == str(ab)
    assert opt("of-ba-tx", "--dst") == "10.9.0.1" and opt("of-ba-rx", "--port") == str(ba)
    # its own stream ids, and no port shared with the udp class
    assert opt("of-ab-tx", "--stream") != opt("of-ba-tx", "--stream")
    both = _plan([H("a", "10.9.0.1/24"), H("b", "10.9.0.2/24")], ["udp", "openflow"], Rates(),
                 tmp_path, run=7, port=port)  # fmt: skip
    udp_ports = {a.args[a.args.index("--port") + 1] for a in both.agents if a.label[:3] == "udp"}
    assert udp_ports.isdisjoint({str(ab), str(ba)})


def test_every_class_of_every_disrupting_operation_is_explained() -> None:
    assert "openflow" in ALL_CLASSES
    assert set(ALL_CLASSES) | set(CONTROLLER_CLASSES) == set(KINDS)
    for sw, ops in (("hitless", HITLESS_OPS), ("ovs", OVS_OPS)):
        for op in ops:
            name = label(sw, op)
            assert name in OPERATION_NOTES, name
            for kind in KINDS + STATEFUL_KINDS:
                assert EXPLANATIONS.get(f"{name}/{kind}"), f"{name}/{kind}"
    # the explanations say what happens to the rules themselves
    assert "without the OpenFlow rules" in EXPLANATIONS["OVS restart/openflow"]
    assert "without the OpenFlow rules" in EXPLANATIONS["hitless kill -9 + start/openflow"]
    assert "counters start again" in EXPLANATIONS["hitless restart --mode flow-restore/openflow"]
    assert "counters start again" not in EXPLANATIONS["hitless upgrade/openflow"]


def test_loaded_macs_are_counted_from_the_mac_column_only() -> None:
    from hitless.impact.macload import count_loaded, mac

    show = "\n".join(
        [
            " port  VLAN  MAC                Age",
            f"    1     0  {mac(0)}    3",
            f"    1    10  {mac(0)}    3",  # the same MAC on another VLAN: once
            f"    2     0  {mac(1)}    1",
            f"    2     0  {mac(7)}    1",  # not among the first 2 loaded
            "    3     0  aa:0e:00:00:00:01    0",  # a host MAC containing the prefix
        ]
    )
    assert count_loaded(show, 2) == 2
    assert count_loaded(show) == 3


def test_controller_class_runs_in_the_switch_namespace_on_its_ptcp_port(tmp_path: Path) -> None:
    hosts = [H("a", "10.9.0.1/24"), H("b", "10.9.0.2/24")]
    plan = _plan(hosts, ["controller"], Rates(), tmp_path, run=7, port=23450,
                 controller_ns="hli-sw-test")  # fmt: skip
    (ag,) = class_agents(plan)
    assert (ag.label, ag.ns, ag.module) == ("of-controller", "hli-sw-test",
                                            "hitless.impact.controller")  # fmt: skip
    assert ag.listener and ag.args[ag.args.index("--port") + 1] == str(controller_port(23450))
    with pytest.raises(ValueError, match="switch's namespace"):
        _plan(hosts, ["controller"], Rates(), tmp_path, run=7, port=23450)
