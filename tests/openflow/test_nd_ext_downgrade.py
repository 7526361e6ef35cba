"""Through the real daemon: a downgrade to the newest previous build (which predates
``nd_reserved``/``nd_options_type`` and the NSH fields, and could not restore a rule on
them) is refused
before the freeze while such a rule is in a table, naming the bridge and what to delete;
the running switch keeps every rule; once the rule is gone the downgrade goes, and the
upgrade back works."""

from __future__ import annotations

import json

from tests.netns import unique_name
from tests.switch import BIN, Sw, run

ND_RULE = "priority=30,icmp6,icmp_type=135,nd_reserved=5,actions=output:2"
NSH_RULE = "priority=30,dl_type=0x894f,nsh_spi=0x123,actions=set_field:5->nsh_si,output:2"
IP_RULE = "priority=10,ip,actions=output:1"


def _flows(sw: Sw, br: str) -> list[str]:
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows",
               f"unix:{sw.rundir.path}/{br}.mgmt"]).stdout  # fmt: skip
    return sorted(ln.strip() for ln in out.splitlines()[1:])


def test_a_downgrade_with_nd_extension_rules_is_refused_then_goes(started: Sw) -> None:
    _refused_then_goes(started, "field:nd_ext", ND_RULE, "nd_reserved=5",
                       "priority=30,icmp6,icmp_type=135,nd_reserved=5")  # fmt: skip


def test_a_downgrade_with_nsh_rules_is_refused_then_goes(started: Sw) -> None:
    _refused_then_goes(started, "field:nsh", NSH_RULE, "nsh_spi=0x123",
                       "priority=30,dl_type=0x894f,nsh_spi=0x123")  # fmt: skip


def _refused_then_goes(sw: Sw, feature: str, rule: str, needle: str, strict: str) -> None:
    from tests.upgrade.builds import build, handoff_features, previous_versions

    commit = previous_versions()[-1]
    assert feature not in handoff_features(commit)
    old = build(commit)
    br = unique_name("ndx")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "add-port", br, "p1", "--", "add-port", br, "p2")  # fmt: skip
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    for r in (rule, IP_RULE):
        run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", target, r])
    before = _flows(sw, br)
    assert any(needle in f for f in before), before
    word = needle.partition("=")[0]

    pid = sw.daemon_pid
    r = run([str(BIN / "hitless"), "downgrade", "--rundir", str(sw.rundir.path), "--to",
             str(old.vswitchd), "--json"], check=False)  # fmt: skip
    assert r.returncode != 0, r.stdout
    said = r.stdout + r.stderr
    assert f"bridge {br}" in said and word[:4] in said and "del-flows" in said, said
    assert sw.daemon_pid == pid and _flows(sw, br) == before

    run(["ovs-ofctl", "-O", "OpenFlow13", "--strict", "del-flows", target, strict])
    r = run([str(BIN / "hitless"), "downgrade", "--rundir", str(sw.rundir.path), "--to",
             str(old.vswitchd), "--json"], check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["new_pid"] == sw.daemon_pid != pid
    assert _flows(sw, br) == [f for f in before if needle not in f]

    r = run([str(old.hitless), "upgrade", "--rundir", str(sw.rundir.path), "--to",
             str(BIN / "hitless-vswitchd"), "--json"], check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert _flows(sw, br) == [f for f in before if needle not in f]
