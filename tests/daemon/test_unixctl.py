"""Management commands through stock ovs-appctl."""

from __future__ import annotations

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
    assert r.returncode != 0 and "is not a valid command" in r.stderr
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
