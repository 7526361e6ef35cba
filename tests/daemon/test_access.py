"""Who may control a running switch: its unixctl, OpenFlow management, punix controller
and handoff sockets are mode 0600 (also the new process's, after an upgrade); a user
who is neither root nor the switch's own user is stopped by that mode, and, where an
operator loosened a socket with chmod, by the peer-credential check, with a message
that says why. A snapshot written by ``hitless state dump`` is readable by its owner
only. Real daemons, stock ovs-appctl and ovs-ofctl run as nobody."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.netns import unique_name
from tests.switch import BIN, Sw, run
from tests.wait import wait_for

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")


def as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=60,
                          user=NOBODY, group=NOBODY, cwd="/")  # fmt: skip


def mode(path: Path) -> int:
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode), f"{path} is not a socket"
    return st.st_mode & 0o777


def sockets(sw: Sw, br: str, punix: Path) -> list[Path]:
    return [sw.rundir.ctl, sw.rundir.path / f"{br}.mgmt", punix,
            sw.rundir.path / "hitless-vswitchd.handoff"]  # fmt: skip


@pytest.fixture
def bridge(started: Sw) -> tuple[Sw, str, Path]:
    sw = started
    br = unique_name("acc")
    punix = sw.rundir.path / f"{br}.ctlr"
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "set-controller", br, f"punix:{punix}")  # fmt: skip
    wait_for(lambda: punix.exists() and (sw.rundir.path / f"{br}.mgmt").exists(),
             "the bridge's management and controller sockets")  # fmt: skip
    # Let any user reach the directory, so only the sockets' own modes decide.
    sw.rundir.path.chmod(0o755)
    return sw, br, punix


def test_control_sockets_are_0600_before_and_after_an_upgrade(bridge: tuple[Sw, str, Path]) -> None:
    sw, br, punix = bridge
    for path in sockets(sw, br, punix):
        assert mode(path) == 0o600, path
    old = sw.daemon_pid
    sw.hitless("upgrade")
    wait_for(lambda: sw.daemon_pid not in (None, old), "the new daemon")
    for path in sockets(sw, br, punix):
        assert mode(path) == 0o600, path


def test_another_user_is_stopped_by_the_socket_mode(bridge: tuple[Sw, str, Path]) -> None:
    sw, br, punix = bridge
    r = as_nobody("ovs-appctl", "-t", str(sw.rundir.ctl), "version")
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    r = as_nobody("ovs-ofctl", "show", f"unix:{sw.rundir.path}/{br}.mgmt")
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    # Root still controls it, through the same sockets.
    assert sw.appctl("version").returncode == 0


def test_a_loosened_socket_still_refuses_another_user_and_says_why(
    bridge: tuple[Sw, str, Path],
) -> None:
    sw, br, punix = bridge
    mgmt = sw.rundir.path / f"{br}.mgmt"
    for path in (sw.rundir.ctl, mgmt, punix):
        path.chmod(0o666)
    r = as_nobody("ovs-appctl", "-t", str(sw.rundir.ctl), "version")
    assert r.returncode != 0, r.stdout
    assert f"uid {NOBODY}" in r.stderr and "only root or the switch's user" in r.stderr, r.stderr
    for target in (mgmt, punix):
        r = as_nobody("ovs-ofctl", "-O", "OpenFlow13", "show", f"unix:{target}")
        assert r.returncode != 0 and "dpid" not in r.stdout, (target, r.stdout)
    log = sw.log()
    assert log.count(f"runs as uid {NOBODY}") >= 3, log[-2000:]
    # Nothing else was disturbed: root's clients work and the bridge is still there.
    assert br in sw.appctl("dpif/show").stdout
    assert sw.vsctl("br-exists", br).returncode == 0


def test_state_dump_writes_the_snapshot_for_its_owner_only(started: Sw, tmp_path: Path) -> None:
    out = tmp_path / "state.snap"
    out.write_bytes(b"an older file, world-readable")
    out.chmod(0o644)
    started.hitless("state", "dump", "--output", str(out))
    assert out.stat().st_mode & 0o777 == 0o600
    assert '"valid": true' in run([str(BIN / "hitless"), "state", "check", str(out)]).stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap"]  # no temporary left
    r = started.hitless(
        "state", "dump", "--output", str(tmp_path / "no" / "such.snap"), check=False
    )
    assert r.returncode == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr
