"""``hitless impact --bridges 2``: a second bridge joined to the first by patch ports,
one host on it, and the udp-cross class between host a and that host: the plan, the
usage errors, and real runs on hitless (an upgrade loses nothing across the bridges)
and on Open vSwitch (the same topology forwards across its patch ports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hitless.impact.run import KNOWN_CLASSES, Rates, _plan, cross_host
from hitless.impact.topology import Topology
from tests.impact.test_cli import OwnRuns, impact, nothing_left  # noqa: F401


class H:
    def __init__(self, name: str, ip: str, bridge: int = 0) -> None:
        self.name, self.ns, self.ip, self.bridge = name, f"ns-{name}", ip, bridge


def test_udp_cross_plan_runs_between_a_and_the_second_bridge(tmp_path: Path) -> None:
    hosts = [H("a", "10.9.0.1/24"), H("b", "10.9.0.2/24"), H("c", "10.9.0.3/24", bridge=1)]
    assert cross_host(hosts) is hosts[2]
    port = 23450
    plan = _plan(hosts, ["udp", "udp-cross"], Rates(), tmp_path, run=7, port=port)
    by = {ag.label: ag for ag in plan.agents}
    assert {"xudp-ab-rx", "xudp-ba-rx", "xudp-ab-tx", "xudp-ba-tx"} <= set(by)

    def opt(label: str, name: str) -> str:
        args = by[label].args
        return args[args.index(name) + 1]

    assert by["xudp-ab-tx"].host == "a" and opt("xudp-ab-tx", "--dst") == "10.9.0.3"
    assert by["xudp-ab-rx"].host == "c" and by["xudp-ba-tx"].host == "c"
    assert opt("xudp-ba-tx", "--dst") == "10.9.0.1"
    # its own port (no other class listens there on those hosts) and stream ids
    assert opt("xudp-ab-rx", "--port") == opt("xudp-ba-rx", "--port") == str(port + 9)
    others = {opt(lb, "--port") for lb in by if lb.startswith("udp-")}
    assert str(port + 9) not in others
    streams = {opt(lb, "--stream") for lb in by if lb.endswith("-tx")}
    assert len(streams) == 4


def test_udp_cross_needs_a_second_bridge(tmp_path: Path) -> None:
    assert "udp-cross" in KNOWN_CLASSES
    with pytest.raises(ValueError, match="second bridge"):
        _plan([H("a", "10.9.0.1/24"), H("b", "10.9.0.2/24")], ["udp-cross"], Rates(), tmp_path,
              run=7, port=23450)  # fmt: skip


def test_topology_bridges_are_checked_before_anything_is_built() -> None:
    with pytest.raises(ValueError, match="1 or 2 bridges"):
        Topology(3, bridges=3)
    with pytest.raises(ValueError, match="2 to 25 hosts"):
        Topology(26, bridges=2)


def test_bridges_usage() -> None:
    r = impact("--help")
    assert r.returncode == 0
    for word in ("--bridges", "udp-cross", "patch ports", "options:peer"):
        assert word in r.stdout, word
    r = impact("--classes", "udp,udp-cross")
    assert r.returncode == 2 and "the udp-cross class needs --bridges 2" in r.stdout
    r = impact("--bridges", "3")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = impact("--bridges", "2", "--hosts", "26")
    assert r.returncode == 2 and "between 2 and 25" in r.stdout


@pytest.mark.netns
def test_two_bridges_on_hitless_and_open_vswitch(
    tmp_path: Path,
    nothing_left: OwnRuns,  # noqa: F811
) -> None:
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "both", "--ops", "upgrade,cold", "--bridges", "2", "--hosts", "2",
               "--duration", "3", "--at", "1", "--classes", "udp,udp-cross,tcp-stream",
               "--json", str(out), timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    results = {res["operation"]: res for res in json.loads(out.read_text())["results"]}
    assert set(results) == {"hitless upgrade", "hitless restart --mode cold", "OVS restart"}
    for res in results.values():
        assert res["settings"]["bridges"] == 2 and res["settings"]["hosts"] == ["a", "b", "c"]
        cross = [c for c in res["classes"] if c["kind"] == "udp-cross"]
        assert [c["name"] for c in cross] == [
            "udp a→c (across bridges)",
            "udp c→a (across bridges)",
        ]
        for c in cross:  # the switch forwards across its patch ports
            assert c["sent"] > 0 and c["received"] > 0, c
    for c in results["hitless upgrade"]["classes"]:
        assert c["sent"] > 0 and c["lost"] == 0, c


@pytest.mark.netns
def test_two_ebpf_bridges_forward_across_their_patch_ports_through_a_kill_9(
    tmp_path: Path,
    nothing_left: OwnRuns,  # noqa: F811
) -> None:
    """On ebpf the patch pair is a veth pair between the two bridges' programs: the
    traffic across the bridges goes on while no daemon runs."""
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "hitless", "--datapath", "ebpf", "--ops", "kill9",
                            "--bridges", "2", "--hosts", "2", "--duration", "6", "--at", "1.5",
                            "--classes", "udp,udp-cross", "--json", str(out),
                            timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    assert res["settings"]["datapath"] == "ebpf" and res["settings"]["bridges"] == 2
    cross = [c for c in res["classes"] if c["kind"] == "udp-cross"]
    assert len(cross) == 2
    for c in res["classes"]:
        assert c["sent"] > 0 and c["lost"] == 0, c
