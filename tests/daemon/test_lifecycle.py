"""hitless start / stop / status and the daemon's process lifecycle, with the real
ovsdb-server and stock ovs-vsctl / ovs-appctl."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from hitless.daemon.priority import DEFAULT_NICE
from hitless.daemon.rundir import process_alive, wait_exit
from tests.switch import BIN, Sw, run


def test_start_status_stop(sw: Sw) -> None:
    r = sw.start()
    assert "running in" in r.stdout
    dbp, dp = sw.db_pid, sw.daemon_pid
    assert dbp is not None and dp is not None and dbp != dp
    for f in (
        "db.sock",
        "hitless-vswitchd.ctl",
        "ovsdb-server.pid",
        "hitless-vswitchd.pid",
        "hitless-vswitchd.log",
        "ovsdb-server.log",
    ):
        assert (sw.rundir.path / f).exists(), f

    assert "hitless" in sw.appctl("version").stdout
    status = json.loads(sw.hitless("status", "--json").stdout)
    assert status["ovsdb-server"] == dbp
    assert status["hitless-vswitchd"] == dp
    assert status["bridges"] == {}
    text = sw.hitless("status").stdout
    assert f"running (pid {dp})" in text and f"running (pid {dbp})" in text

    r = sw.hitless("stop")
    assert f"stopped hitless-vswitchd (pid {dp})" in r.stdout
    assert f"stopped ovsdb-server (pid {dbp})" in r.stdout
    assert not process_alive(dp, "hitless") and not process_alive(dbp, "ovsdb-server")
    assert not sw.rundir.pidfile.exists() and not sw.rundir.ctl.exists()
    r = sw.hitless("status", check=False)
    assert r.returncode == 3
    assert r.stdout.count("not running") == 2
    assert "exiting" in sw.log()


def test_second_start_is_refused(started: Sw) -> None:
    dbp, dp = started.db_pid, started.daemon_pid
    r = started.start(check=False)
    assert r.returncode != 0
    assert "already running" in r.stderr
    assert (started.db_pid, started.daemon_pid) == (dbp, dp)
    # The daemon refuses too when started by hand on the same directory.
    r = run([str(BIN / "hitless-vswitchd"), "--rundir", str(started.rundir.path)], check=False)
    assert r.returncode != 0 and "already running" in r.stderr
    assert started.daemon_pid == dp


def test_restart_after_kill_9_keeps_database_and_ofports(started: Sw) -> None:
    sw = started
    sw.vsctl("add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy")
    sw.vsctl("add-port", "br0", "p1", "--", "add-port", "br0", "p2")
    sw.vsctl("del-port", "p1")  # so p2 does not have the lowest free number by chance
    sw.vsctl("add-port", "br0", "p3")
    before = {i: sw.ofport(i) for i in ("br0", "p2", "p3")}
    dbp, dp = sw.db_pid, sw.daemon_pid
    assert dp is not None

    os.kill(dp, signal.SIGKILL)
    assert wait_exit(dp, 10)
    r = sw.hitless("status", check=False)
    assert r.returncode == 3 and "hitless-vswitchd: not running" in r.stdout

    r = sw.start()
    assert "ovsdb-server already runs" in r.stdout
    assert sw.db_pid == dbp
    assert sw.daemon_pid not in (None, dp)
    sw.vsctl("set", "Bridge", "br0", "other_config:x=1")  # waits for the daemon (cur_cfg)
    assert {i: sw.ofport(i) for i in before} == before
    assert "hitless" in sw.appctl("version").stdout


def test_sigterm_and_exit_shut_down_cleanly(started: Sw) -> None:
    sw = started
    sw.vsctl("add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy")
    dp = sw.daemon_pid
    assert dp is not None
    os.kill(dp, signal.SIGTERM)
    assert wait_exit(dp, 10)
    assert not sw.rundir.pidfile.exists() and not sw.rundir.ctl.exists()
    assert "bridge br0: closing (switch is shutting down)" in sw.log()

    sw.start()
    dp = sw.daemon_pid
    assert dp is not None
    sw.appctl("exit")
    assert wait_exit(dp, 10)
    assert not sw.rundir.pidfile.exists()
    assert sw.db_pid is not None  # exit stops the switch, not the database


def test_crash_leaves_a_log_line_with_the_reason(sw: Sw) -> None:
    sw.rundir.path.mkdir(exist_ok=True)
    r = run(
        [
            str(BIN / "hitless-vswitchd"),
            "--rundir",
            str(sw.rundir.path),
            "--schema",
            str(sw.rundir.path / "no-such.ovsschema"),
        ],
        check=False,
    )
    assert r.returncode == 1
    log = sw.log()
    assert "crashed" in log and "no-such.ovsschema" in log and "Traceback" in log
    assert not sw.rundir.pidfile.exists()


def test_start_reports_a_daemon_that_dies(sw: Sw) -> None:
    r = sw.hitless("start", "--vswitchd", "/bin/false", check=False)
    assert r.returncode != 0
    assert "hitless-vswitchd exited with status 1 while starting" in r.stderr
    assert sw.db_pid is not None and sw.daemon_pid is None


def test_database_restart_is_survived(started: Sw) -> None:
    sw = started
    sw.vsctl("add-br", "br0", "--", "set", "Bridge", "br0", "datapath_type=dummy")
    sw.vsctl("add-port", "br0", "p1", "--", "set", "Interface", "p1", "ofport_request=5")
    dp, dbp = sw.daemon_pid, sw.db_pid
    assert dbp is not None
    os.kill(dbp, signal.SIGTERM)
    assert wait_exit(dbp, 10)
    r = sw.start()
    assert sw.daemon_pid == dp and sw.db_pid not in (None, dbp)
    assert "running in" in r.stdout
    sw.vsctl("add-port", "br0", "p2")  # the daemon reconnected and applies changes
    assert sw.ofport("p1") == 5 and sw.ofport("p2") > 0


def test_the_daemon_runs_at_its_niceness_across_an_upgrade(started: Sw) -> None:
    """hitless-vswitchd --nice (default DEFAULT_NICE); the new process of an upgrade
    too (it imports the pre-copy 5 steps nicer, then comes back before the freeze)."""
    if os.geteuid() != 0:
        return  # lowering the niceness needs root: the daemon keeps what it inherits
    old = started.daemon_pid
    assert old is not None
    assert os.getpriority(os.PRIO_PROCESS, old) == DEFAULT_NICE
    assert autogroup_nice(old) in (None, DEFAULT_NICE)  # its own session's, if any
    started.hitless("upgrade")
    new = started.daemon_pid
    assert new is not None and new != old
    assert os.getpriority(os.PRIO_PROCESS, new) == DEFAULT_NICE
    assert autogroup_nice(new) in (None, DEFAULT_NICE)  # +5 while importing only
    r = run([str(BIN / "hitless-vswitchd"), "--rundir", "/nonexistent", "--nice", "-21"], False)
    assert r.returncode == 2 and "--nice must be from -20 to 19" in r.stderr


def test_start_nice_is_kept_by_a_handoff_unless_told_otherwise(sw: Sw) -> None:
    """hitless start --nice N runs the daemon at N; hitless upgrade starts the new
    process at the running one's niceness, or at its own --nice."""
    if os.geteuid() != 0:
        return  # lowering the niceness needs root
    sw.hitless("start", "--nice", "-4")
    old = sw.daemon_pid
    assert old is not None and os.getpriority(os.PRIO_PROCESS, old) == -4
    assert autogroup_nice(old) in (None, -4)
    sw.hitless("upgrade")
    new = sw.daemon_pid
    assert new not in (None, old) and os.getpriority(os.PRIO_PROCESS, new) == -4
    assert autogroup_nice(new) in (None, -4)
    sw.hitless("upgrade", "--nice", "-7")
    third = sw.daemon_pid
    assert third not in (None, new) and os.getpriority(os.PRIO_PROCESS, third) == -7
    r = sw.hitless("upgrade", "--nice", "-30", check=False)
    assert r.returncode == 2 and "must be from -20 to 19" in r.stderr
    assert sw.daemon_pid == third  # refused before anything started


def autogroup_nice(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/autogroup").read_text()  # "/autogroup-123 nice -10"
    except OSError:
        return None
    return int(text.split()[-1])
