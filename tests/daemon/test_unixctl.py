"""Management commands through stock ovs-appctl."""

from __future__ import annotations

import os
import subprocess

import pytest

from hitless.daemon import unixctl
from hitless.daemon.rundir import ControlError, control_call
from tests.switch import Sw


def test_version_help_and_errors(started: Sw) -> None:
    sw = started
    assert sw.appctl("version").stdout.startswith("hitless-vswitchd (hitless) ")
    helptext = sw.appctl("help").stdout
    for cmd in ("dpctl/dump-flows", "fdb/show", "fdb/flush", "exit", "version"):
        assert cmd in helptext
    r = sw.appctl("fdb/show", "nosuch", check=False)
    assert r.returncode != 0 and "no such bridge: nosuch" in r.stderr
    r = sw.appctl("fdb/show", check=False)
    assert r.returncode != 0 and "requires at least 1 arguments" in r.stderr
    r = sw.appctl("no/such-command", check=False)
    assert r.returncode != 0
    # ovs-vswitchd's words, newline-terminated as every ovs-vswitchd reply is
    assert r.stderr.startswith(
        '"no/such-command" is not a valid command (use "list-commands" to see a list of '
        "valid commands)\n"
    )
    with pytest.raises(ControlError) as e:
        control_call(sw.rundir.ctl, "fdb/flush", ["nosuch"])
    assert e.value.remote and "no such bridge" in str(e.value)


def test_fdb_and_flows_commands_on_dummy_bridges(started: Sw) -> None:
    sw = started
    for br in ("br0", "br1"):
        sw.vsctl("add-br", br, "--", "set", "Bridge", br, "datapath_type=dummy")
    assert "port  VLAN  MAC" in sw.appctl("fdb/show", "br0").stdout
    assert "port  VLAN  MAC" in sw.appctl("fdb/show", "dummy@br1").stdout
    assert sw.appctl("fdb/flush").stdout.strip() == "table successfully flushed"
    assert sw.appctl("fdb/flush", "br1").stdout.strip() == "table successfully flushed"
    sw.appctl("dpctl/dump-flows", "br0")
    both = sw.appctl("dpctl/dump-flows").stdout
    assert "br0:" in both and "br1:" in both
    r = sw.appctl("dpctl/dump-flows", "nosuch", check=False)
    assert r.returncode != 0 and "no such bridge" in r.stderr


def test_handler_errors_become_error_replies() -> None:
    """A handler bug replies 'internal error' (and logs its traceback) instead of taking
    the daemon down; a CommandError is the caller's mistake. In-process, fake connection."""

    class Conn:
        def __init__(self) -> None:
            self.replies: list[tuple[bool, str]] = []

        def reply(self, text: str) -> None:
            self.replies.append((True, text))

        def reply_error(self, text: str) -> None:
            self.replies.append((False, text))

    def broken(req: unixctl.Request) -> str:
        raise ZeroDivisionError("oops")

    def wrong(req: unixctl.Request) -> str:
        raise unixctl.CommandError("bad argument")

    conn = Conn()
    for handler in (broken, wrong, lambda req: "ok"):
        cmd = unixctl.Command("t", "", 0, 0, handler)
        unixctl._dispatch(conn, [], (None, cmd))  # type: ignore[arg-type]
    assert conn.replies == [
        (False, "internal error in t: ZeroDivisionError: oops\n"),
        (False, "bad argument\n"),
        (True, "ok"),
    ]


def plain_appctl(sw: Sw, *args: str) -> subprocess.CompletedProcess[str]:
    """``ovs-appctl`` without -t, as an Open vSwitch user runs it (OVS_RUNDIR=DIR)."""
    env = {**os.environ, "OVS_RUNDIR": str(sw.rundir.path)}
    return subprocess.run(
        ["ovs-appctl", "--timeout=20", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_plain_ovs_appctl_finds_the_switch_and_lists_commands(started: Sw) -> None:
    sw = started
    sw.vsctl("add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy")
    r = plain_appctl(sw, "fdb/show", "br0")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(" port  VLAN  MAC")
    listing = plain_appctl(sw, "list-commands").stdout
    assert listing.startswith("The available commands are:\n")
    lines = listing.splitlines()[1:]
    names = [ln.split()[0] for ln in lines]
    assert names == sorted(names) and set(names) == set(unixctl.load_commands())
    assert "  fdb/show                bridge" in lines
    err = plain_appctl(sw, "fdb/show", "nosuch")
    assert err.returncode == 2 and err.stderr.startswith("no such bridge: nosuch")
    assert err.stderr.splitlines()[1] == "ovs-appctl: ovs-vswitchd: server returned an error"


def test_plain_ovs_appctl_follows_the_switch_across_an_upgrade(started: Sw) -> None:
    from tests.daemon.test_upgrade import upgrade

    sw = started
    old = sw.daemon_pid
    assert old is not None
    assert sw.rundir.ovs_ctl(old).is_symlink()
    r = upgrade(sw)
    assert r.returncode == 0, r.stderr
    new = sw.daemon_pid
    assert new is not None and new != old
    assert sw.rundir.ovs_pidfile.read_text().strip() == str(new)
    assert not sw.rundir.ovs_ctl(old).exists() and sw.rundir.ovs_ctl(new).is_symlink()
    r = plain_appctl(sw, "version")
    assert r.returncode == 0 and r.stdout.startswith("hitless-vswitchd (hitless)"), r.stderr
    sw.hitless("stop")
    assert not sw.rundir.ovs_pidfile.exists() and not sw.rundir.ovs_ctl(new).exists()
