"""The run directory: where one switch instance keeps its sockets, pidfiles, logs and
database, and the small process helpers built on it (pidfiles, liveness, control calls).

Everything derives from the directory, never from system paths, so that several
switches can run side by side (one per network namespace in the tests).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMON_NAME = "hitless-vswitchd"
OVS_DAEMON_NAME = "ovs-vswitchd"  # the names plain ovs-appctl looks for (OVS_RUNDIR)


@dataclass(frozen=True, slots=True)
class RunDir:
    """The file layout of one switch instance (all paths absolute)."""

    path: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(os.path.abspath(path)))

    @property
    def db(self) -> Path:
        return self.path / "conf.db"

    @property
    def db_sock(self) -> Path:
        return self.path / "db.sock"

    @property
    def db_remote(self) -> str:
        return f"unix:{self.db_sock}"

    @property
    def db_ctl(self) -> Path:
        return self.path / "ovsdb-server.ctl"

    @property
    def db_pidfile(self) -> Path:
        return self.path / "ovsdb-server.pid"

    @property
    def db_log(self) -> Path:
        return self.path / "ovsdb-server.log"

    @property
    def ctl(self) -> Path:
        return self.path / f"{DAEMON_NAME}.ctl"

    @property
    def pidfile(self) -> Path:
        return self.path / f"{DAEMON_NAME}.pid"

    @property
    def log(self) -> Path:
        return self.path / f"{DAEMON_NAME}.log"

    @property
    def ovs_pidfile(self) -> Path:
        """DIR/ovs-vswitchd.pid: what ``ovs-appctl`` (no -t, OVS_RUNDIR=DIR) reads."""
        return self.path / f"{OVS_DAEMON_NAME}.pid"

    def ovs_ctl(self, pid: int) -> Path:
        """DIR/ovs-vswitchd.PID.ctl: where ``ovs-appctl`` then connects (a symlink to
        DIR/hitless-vswitchd.ctl)."""
        return self.path / f"{OVS_DAEMON_NAME}.{pid}.ctl"


# Pidfiles and processes ----------------------------------------------------------------


def read_pid(pidfile: Path) -> int | None:
    """The PID in a pidfile, or None if the file is missing or unreadable."""
    try:
        text = pidfile.read_text().strip()
    except OSError:
        return None
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if pid > 0 else None


# pidfile path -> the descriptor holding its fcntl lock for as long as this process runs.
# ovs-appctl (lib/daemon-unix.c read_pidfile) trusts a pidfile only while the process
# it names holds a write lock on it, as every Open vSwitch daemon does.
_PIDFILE_LOCKS: dict[str, int] = {}


def spawn_logged(cmd: list[str], logfile: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in the background in a session of its own, its output appended to
    ``logfile`` (how the daemon and its crash standby are started)."""
    with open(logfile, "ab") as logf:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
            close_fds=True,
        )


def write_pidfile(pidfile: Path, pid: int | None = None) -> None:
    """Atomically (write + rename) record ``pid`` (default: this process, which then
    also holds the file's fcntl lock until it exits, as Open vSwitch daemons do)."""
    tmp = pidfile.with_name(f".{pidfile.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{os.getpid() if pid is None else pid}\n".encode())
        if pid is None:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, pidfile)
    except BaseException:
        os.close(fd)
        raise
    if pid is None:
        old = _PIDFILE_LOCKS.pop(str(pidfile), None)
        if old is not None:
            os.close(old)
        _PIDFILE_LOCKS[str(pidfile)] = fd
    else:
        os.close(fd)


def publish_ovs_names(rundir: RunDir) -> None:
    """Make plain ``ovs-appctl`` (``OVS_RUNDIR=DIR``, no -t) find this process as it
    finds ovs-vswitchd: a locked DIR/ovs-vswitchd.pid naming us and DIR/ovs-vswitchd.
    PID.ctl linking to our control socket. Links of earlier processes (a predecessor
    after a handoff, a crashed daemon) are removed."""
    pid = os.getpid()
    write_pidfile(rundir.ovs_pidfile)
    link = rundir.ovs_ctl(pid)
    tmp = link.with_name(f".{link.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(rundir.ctl.name)
    os.replace(tmp, link)
    for other in rundir.path.glob(f"{OVS_DAEMON_NAME}.*.ctl"):
        if other != link and other.is_symlink():
            with contextlib.suppress(OSError):
                other.unlink()


def withdraw_ovs_names(rundir: RunDir) -> None:
    """Undo ``publish_ovs_names`` for this process (leaving a successor's alone)."""
    remove_pidfile_if_mine(rundir.ovs_pidfile)
    link = rundir.ovs_ctl(os.getpid())
    if link.is_symlink():
        with contextlib.suppress(OSError):
            link.unlink()


def remove_pidfile_if_mine(pidfile: Path, pid: int | None = None) -> None:
    """Remove the pidfile only if it still names ``pid`` (default: this process), so a
    process that has been replaced never deletes its successor's pidfile."""
    if read_pid(pidfile) == (os.getpid() if pid is None else pid):
        with contextlib.suppress(OSError):
            pidfile.unlink()


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


def process_alive(pid: int, marker: str) -> bool:
    """True if ``pid`` runs and its command line mentions ``marker`` (so a recycled PID
    of an unrelated process is not mistaken for ours)."""
    cmd = _cmdline(pid)
    if not cmd or _is_zombie(pid):
        return False
    return any(marker in arg for arg in cmd)


DAEMON_MARKERS = (DAEMON_NAME, "hitless.daemon")


def daemon_pid(rundir: RunDir) -> int | None:
    """PID of the running hitless-vswitchd of this rundir, or None."""
    pid = read_pid(rundir.pidfile)
    if pid is not None and any(process_alive(pid, m) for m in DAEMON_MARKERS):
        return pid
    return None


def db_pid(rundir: RunDir) -> int | None:
    """PID of the running ovsdb-server of this rundir, or None."""
    pid = read_pid(rundir.db_pidfile)
    if pid is not None and process_alive(pid, "ovsdb-server"):
        return pid
    return None


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has exited (or is a zombie); True if it did in time."""
    deadline = time.monotonic() + timeout
    while True:
        if _cmdline(pid) is None or _is_zombie(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


# The control socket -----------------------------------------------------------------


class ControlError(Exception):
    """A unixctl call failed: ``remote`` is True when the daemon answered with an error
    (its message is the daemon's), False when it could not be reached."""

    def __init__(self, message: str, *, remote: bool) -> None:
        super().__init__(message)
        self.remote = remote


def control_call(
    ctl: Path, command: str, args: list[str] | None = None, timeout: float = 5.0
) -> str:
    """Run one unixctl command (what ``ovs-appctl -t CTL command args`` does) and return
    its text reply. Raises ControlError."""
    request = json.dumps({"method": command, "params": list(args or []), "id": 0})
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(ctl))
            s.sendall(request.encode())
            decoder = json.JSONDecoder()
            buf = ""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    raise ControlError(f"{ctl}: connection closed before the reply", remote=False)
                buf += chunk.decode(errors="replace")
                try:
                    reply, _ = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    continue
                break
    except OSError as e:
        raise ControlError(f"{ctl}: {e.strerror or e}", remote=False) from None
    if reply.get("error") is not None:
        raise ControlError(str(reply["error"]), remote=True)
    result = reply.get("result")
    if isinstance(result, dict):  # "--format json" style replies
        return json.dumps(result)
    return "" if result is None else str(result)
