"""Failures that read clearly: no third-party noise in the daemon's log or the CLI's
messages (the runtime never imports eventlet), and a new build that hangs before it
connects is given up on after --connect-timeout, killed, and the old switch serves on."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hitless.daemon.rundir import read_pid, wait_exit
from tests.netns import unique_name
from tests.switch import Sw, run
from tests.wait import wait_for

BIN = Path(sys.executable).parent
BR = unique_name("cfb")
# Any "SomethingWarning" a library prints (CryptographyDeprecationWarning, ...).
WARNING_LINE = re.compile(r"\b\w*Warning\b")


def _python(code: str) -> str:
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return r.stdout.strip()


@pytest.mark.skipif(
    importlib.util.find_spec("eventlet") is None, reason="eventlet is not installed here"
)
def test_entry_points_keep_eventlet_out_even_where_the_ovs_poller_would_load_it(
    tmp_path: Path,
) -> None:
    # The premise: with eventlet installed, the ovs library's poller imports it.
    assert _python("import sys, ovs.poller; print('eventlet' in sys.modules)") == "True"
    # After either entry point ran, it does not, whatever is imported later.
    for entry in (
        f"from hitless.cli import main; main(['status', '--rundir', '{tmp_path}'])",
        f"from hitless.daemon.main import main; main(['--rundir', '{tmp_path}/none'])",
    ):
        loaded = "sorted(m for m, v in sys.modules.items() if v and m in {'eventlet', 'dns'})"
        code = f"import sys\n{entry}\nimport ovs.poller, ovs.db.idl\nprint({loaded})"
        assert _python(code).splitlines()[-1] == "[]", entry


def test_daemon_log_has_no_library_warnings_and_no_eventlet(started: Sw) -> None:
    sw = started
    sw.vsctl("add-br", BR, "--", "set", "bridge", BR, "datapath_type=dummy")
    wait_for(lambda: BR in sw.appctl("dpif/show").stdout, "the bridge to be up")
    pid = sw.daemon_pid
    assert pid is not None
    maps = Path(f"/proc/{pid}/maps").read_text()
    assert "greenlet" not in maps, "eventlet (and its greenlet) were loaded by the daemon"
    noise = [line for line in sw.log().splitlines() if WARNING_LINE.search(line)]
    assert noise == [], "\n".join(noise)


def test_new_build_that_never_connects_is_given_up_on_killed_and_the_old_one_serves(
    started: Sw,
) -> None:
    sw = started
    sw.vsctl("add-br", BR, "--", "set", "bridge", BR, "datapath_type=dummy")
    old_pid = sw.daemon_pid
    assert old_pid is not None
    # A "new build" that hangs before connecting, with a child of its own.
    pids = sw.rundir.path / "hang.pids"
    hang = sw.rundir.path / "hanging-vswitchd"
    hang.write_text(f"#!/bin/sh\nsleep 600 &\necho $$ $! > {pids}\nexec sleep 600\n")
    hang.chmod(0o755)
    r = run(
        [
            str(BIN / "hitless"),
            "upgrade",
            "--rundir",
            str(sw.rundir.path),
            "--to",
            str(hang),
            "--connect-timeout",
            "3",
        ],
        check=False,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "never connected to the running switch within 3 s" in r.stderr, r.stderr
    assert f"running switch (pid {old_pid}) was not touched and keeps serving" in r.stderr
    assert not WARNING_LINE.search(r.stderr), r.stderr
    # The hanging process and its child are gone, the old daemon still owns and serves.
    for p in pids.read_text().split():
        assert wait_exit(int(p), 10), f"process {p} of the hanging build survived"
    assert read_pid(sw.rundir.pidfile) == old_pid and sw.daemon_pid == old_pid
    assert BR in sw.appctl("dpif/show").stdout
    assert json.loads(sw.appctl("upgrade/status").stdout)["current"] is None


def test_timeouts_must_be_positive_numbers(sw: Sw) -> None:
    os.makedirs(sw.rundir.path, exist_ok=True)
    for bad in ("0", "-1", "soon"):
        r = run(
            [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path)]
            + ["--connect-timeout", bad],
            check=False,
        )
        assert r.returncode == 2 and "--connect-timeout" in r.stderr, r.stderr
