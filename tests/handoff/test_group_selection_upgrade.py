"""Through the real daemon: select groups set with stock ``ovs-ofctl -O OpenFlow15
add-group ... selection_method=...`` keep their selection method, basis and hashed
fields across ``hitless upgrade`` (state version 6; up to version 5 a handoff lost
them), and a handoff to a build that reads only version 5 is refused before the freeze
while a group hashes over fields (the old process serves on, nothing lost), then goes
once that group is set without them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.netns import unique_name
from tests.switch import BIN, Sw, run

GROUPS = (
    "group_id=5,type=select,selection_method=dp_hash,bucket=output:1,bucket=output:2",
    "group_id=6,type=select,selection_method=hash,fields(ip_src,nw_proto,tcp_dst),"
    "bucket=output:1,bucket=output:2",
    "group_id=7,type=select,selection_method=hash,selection_method_param=7,"
    "fields(eth_dst=ff:ff:00:00:00:00),bucket=output:1",
)


def ofctl15(sw: Sw, br: str, cmd: str, *args: str) -> str:
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    return run(["ovs-ofctl", "-O", "OpenFlow15", cmd, target, *args]).stdout


def groups(sw: Sw, br: str) -> list[str]:
    return sorted(ln.strip() for ln in ofctl15(sw, br, "dump-groups").splitlines()[1:])


def upgrade(sw: Sw, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json"],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_selection_methods_survive_an_upgrade_and_a_v5_handoff_is_refused(started: Sw) -> None:
    sw = started
    br = unique_name("gsel")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "add-port", br, "p1", "--", "add-port", br, "p2")  # fmt: skip
    for g in GROUPS:
        ofctl15(sw, br, "add-group", g)
    before = groups(sw, br)
    assert sum("selection_method=hash" in g for g in before) == 2, before
    assert any("selection_method=dp_hash" in g for g in before), before
    assert any("selection_method_param=7" in g for g in before), before

    old = sw.daemon_pid
    r = upgrade(sw)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sw.daemon_pid == json.loads(r.stdout)["new_pid"] != old
    assert groups(sw, br) == before

    # A new process that reads only state version 5 (as a build of that version):
    # refused before the freeze, naming the group; the running one keeps everything.
    old = sw.daemon_pid
    r = upgrade(sw, {"HITLESS_STATE_VERSIONS": "5"})
    assert r.returncode != 0, r.stdout
    assert "group 6 has selection_method=hash with fields" in r.stdout + r.stderr
    assert sw.daemon_pid == old
    assert groups(sw, br) == before

    # Without the hashes over fields it goes; dp_hash goes down as the default method
    # (a version 5 build picks the buckets the same way), and so the dump shows it.
    ofctl15(sw, br, "mod-group", "group_id=6,type=select,bucket=output:1,bucket=output:2")
    ofctl15(sw, br, "del-groups", "group_id=7")
    r = upgrade(sw, {"HITLESS_STATE_VERSIONS": "5"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["state_version"] == 5
    after = groups(sw, br)
    assert len(after) == 2 and not any("selection_method" in g for g in after), after


def _last_build_before_v6() -> tuple[str, int]:
    """The newest build in previous_versions.txt whose state version is older than 6
    (the first to carry selection methods), and that version."""
    from tests.golden.test_older_builds import current_version_of
    from tests.upgrade.builds import previous_versions

    older = [(c, v) for c in previous_versions() if (v := current_version_of(c)) < 6]
    return older[-1]


def test_downgrade_to_the_last_build_before_version_6_and_back(started: Sw) -> None:
    """The real thing (the newest build in previous_versions.txt that predates state
    version 6; the builds of version 4 and 5 no longer exist): refused while group 6
    hashes over fields, the running switch keeps everything; once that group has no
    method the downgrade goes, a rule's hard timeout and the tables come over, and the
    upgrade back to this build works."""
    from tests.upgrade.builds import build

    commit, version = _last_build_before_v6()
    old = build(commit)
    sw = started
    br = unique_name("gdn")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "add-port", br, "p1", "--", "add-port", br, "p2")  # fmt: skip
    for g in GROUPS:
        ofctl15(sw, br, "add-group", g)
    ofctl15(sw, br, "add-flow", "priority=10,ip,actions=group:6")
    ofctl15(sw, br, "add-flow", "priority=20,hard_timeout=600,arp,actions=group:5")
    before = groups(sw, br)
    here = BIN / "hitless"

    pid = sw.daemon_pid
    r = run([str(here), "downgrade", "--rundir", str(sw.rundir.path), "--to",
             str(old.vswitchd), "--json"], check=False)  # fmt: skip
    assert r.returncode != 0, r.stdout
    assert "group 6 has selection_method=hash with fields" in r.stdout + r.stderr
    assert sw.daemon_pid == pid and groups(sw, br) == before

    ofctl15(sw, br, "mod-group", "group_id=6,type=select,bucket=output:1,bucket=output:2")
    ofctl15(sw, br, "del-groups", "group_id=7")
    flows = sorted(ln.split(" actions")[0].split(", ")[-1] + " " + ln.split(" actions")[1]
                   for ln in ofctl15(sw, br, "dump-flows").splitlines()[1:])  # fmt: skip
    r = run([str(here), "downgrade", "--rundir", str(sw.rundir.path), "--to",
             str(old.vswitchd), "--json"], check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert str(old.venv) in Path(f"/proc/{sw.daemon_pid}/cmdline").read_text()
    assert json.loads(r.stdout)["state_version"] == version
    after = groups(sw, br)
    assert len(after) == 2 and not any("selection_method" in g for g in after), after
    assert sorted(ln.split(" actions")[0].split(", ")[-1] + " " + ln.split(" actions")[1]
                  for ln in ofctl15(sw, br, "dump-flows").splitlines()[1:]) == flows  # fmt: skip
    assert "hard_timeout=600" in ofctl15(sw, br, "dump-flows")

    r = run([str(old.hitless), "upgrade", "--rundir", str(sw.rundir.path), "--to",
             str(BIN / "hitless-vswitchd"), "--json"], check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["state_version"] == version  # what that build writes
    assert groups(sw, br) == after
