"""Process management shared by the subcommands: the private ovsdb-server, spawning
hitless-vswitchd into the background and waiting until it answers, stopping by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from hitless.config.ovsdb import DEFAULT_SCHEMA
from hitless.daemon.rundir import (
    DAEMON_NAME,
    ControlError,
    RunDir,
    control_call,
    daemon_pid,
    db_pid,
    read_pid,
    spawn_logged,
    wait_exit,
)
from hitless.daemon.standby import standby_pid

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServiceError(Exception):
    """Starting or stopping failed; the message says what to look at."""


def _run(cmd: list[str], what: str) -> None:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ServiceError(
            f"{what}: {cmd[0]} is not installed (Debian package openvswitch-switch)"
        ) from None
    if r.returncode != 0:
        raise ServiceError(f"{what} failed ({' '.join(cmd)}): {(r.stderr or r.stdout).strip()}")


def start_db(rundir: RunDir, schema: str = DEFAULT_SCHEMA) -> int:
    """Start the rundir's ovsdb-server (creating the database from ``schema`` if it is
    missing) and initialise the Open_vSwitch row. Returns its PID."""
    if not rundir.db.exists():
        _run(["ovsdb-tool", "create", str(rundir.db), schema], "creating the database")
    _run(
        [
            "ovsdb-server",
            str(rundir.db),
            f"--remote=punix:{rundir.db_sock}",
            "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
            f"--unixctl={rundir.db_ctl}",
            f"--pidfile={rundir.db_pidfile}",
            f"--log-file={rundir.db_log}",
            "--detach",
            "--no-chdir",
        ],
        "starting ovsdb-server",
    )
    pid = db_pid(rundir)
    if pid is None:
        raise ServiceError(f"ovsdb-server did not stay up; see {rundir.db_log}")
    _run(
        ["ovs-vsctl", f"--db={rundir.db_remote}", "--no-wait", "--timeout=10", "init"],
        "initialising the database",
    )
    return pid


def daemon_command() -> list[str]:
    """How to run the installed hitless-vswitchd (the console script next to this
    Python, else the module)."""
    script = Path(sys.executable).parent / DAEMON_NAME
    if script.exists():
        return [str(script)]
    found = shutil.which(DAEMON_NAME)
    if found:
        return [found]
    return [sys.executable, "-m", "hitless.daemon"]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def spawn_daemon(
    rundir: RunDir,
    command: list[str] | None = None,
    extra_args: list[str] | None = None,
    timeout: float = START_TIMEOUT,
) -> int:
    """Start hitless-vswitchd in the background (own session, output appended to its log)
    and wait until it answers on its control socket. Returns its PID."""
    cmd = (command or daemon_command()) + ["--rundir", str(rundir.path)] + (extra_args or [])
    proc = spawn_logged(cmd, rundir.log)
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            raise ServiceError(
                f"{DAEMON_NAME} exited with status {code} while starting; "
                f"last lines of {rundir.log}:\n{_log_tail(rundir.log)}"
            )
        if read_pid(rundir.pidfile) == proc.pid:
            try:
                control_call(rundir.ctl, "version", timeout=2.0)
                return proc.pid
            except ControlError:
                pass
        if time.monotonic() >= deadline:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ServiceError(
                f"{DAEMON_NAME} did not answer on {rundir.ctl} within "
                f"{timeout:.0f} s (killed it); see {rundir.log}"
            )
        time.sleep(0.02)


def stop_pid(pid: int, name: str, timeout: float = STOP_TIMEOUT) -> str:
    """SIGTERM, wait, SIGKILL if it will not go. Returns what happened."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return f"{name} (pid {pid}) was already gone"
    if wait_exit(pid, timeout):
        return f"stopped {name} (pid {pid})"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return f"stopped {name} (pid {pid})"
    wait_exit(pid, timeout)
    return f"killed {name} (pid {pid}): it did not exit within {timeout:.0f} s of SIGTERM"


def stop(rundir: RunDir) -> list[str]:
    """Stop the daemon, then the database. Returns one line per action."""
    out = []
    # The crash standby first: stopped after the daemon, it would take over.
    pid = standby_pid(rundir)
    if pid is not None:
        out.append(stop_pid(pid, f"{DAEMON_NAME} crash standby"))
    pid = daemon_pid(rundir)
    if pid is not None:
        out.append(stop_pid(pid, DAEMON_NAME))
    pid = db_pid(rundir)
    if pid is not None:
        out.append(stop_pid(pid, "ovsdb-server"))
    # Stale pidfiles (a process killed with -9 cannot remove its own).
    if daemon_pid(rundir) is None:
        rundir.pidfile.unlink(missing_ok=True)
    if db_pid(rundir) is None:
        rundir.db_pidfile.unlink(missing_ok=True)
    return out
