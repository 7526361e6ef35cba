"""Real Open vSwitch (ovsdb-server + ovs-vswitchd --enable-dummy=override) in its own
run directory, for differential tests: the same ovs-vsctl / ovs-ofctl / ovs-appctl
commands against it and against hitless. Stopped by PID, directory removed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hitless.daemon.rundir import read_pid, wait_exit

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"


@dataclass
class Ovs:
    rundir: Path

    @property
    def env(self) -> dict[str, str]:
        d = str(self.rundir)
        return {**os.environ, "OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d}

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
        return r

    def vsctl(self, *args: str) -> str:
        return self.run(
            "ovs-vsctl", f"--db=unix:{self.rundir}/db.sock", "--timeout=20", *args
        ).stdout

    def appctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("ovs-appctl", "--timeout=20", *args, check=check)

    def ofctl(self, cmd: str, bridge: str, *args: str) -> str:
        target = f"unix:{self.rundir}/{bridge}.mgmt"
        return self.run("ovs-ofctl", "-O", "OpenFlow13", cmd, target, *args).stdout


def stop_pidfile(pidfile: Path) -> None:
    """Stop the process a pidfile names (TERM, then KILL after 10 s); none: nothing."""
    pid = read_pid(pidfile)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_exit(pid, 10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _start(o: Ovs, dummy: str, netns: str | None = None) -> None:
    """ovsdb-server and ovs-vswitchd ``--enable-dummy=DUMMY`` in ``o``'s run directory
    (inside network namespace ``netns`` if given)."""
    path = o.rundir
    ns = ["ip", "netns", "exec", netns] if netns is not None else []
    o.run("ovsdb-tool", "create", str(path / "conf.db"), OVS_SCHEMA)
    o.run(
        *ns, "ovsdb-server", str(path / "conf.db"), f"--remote=punix:{path}/db.sock",
        f"--unixctl={path}/ovsdb-server.ctl", f"--pidfile={path}/ovsdb-server.pid",
        f"--log-file={path}/ovsdb-server.log", "--detach", "--no-chdir",
    )  # fmt: skip
    o.vsctl("--no-wait", "init")
    o.run(
        *ns, "ovs-vswitchd", f"unix:{path}/db.sock", f"--pidfile={path}/ovs-vswitchd.pid",
        f"--log-file={path}/ovs-vswitchd.log", f"--enable-dummy{dummy}",
        "--disable-system", "--detach", "--no-chdir",
    )  # fmt: skip


@contextlib.contextmanager
def _running(dummy: str, netns: str | None = None) -> Iterator[Ovs]:
    if shutil.which("ovs-vswitchd") is None:
        pytest.skip("Open vSwitch is not installed")
    path = Path(tempfile.mkdtemp(prefix="hlovs-", dir="/tmp"))
    o = Ovs(path)
    try:
        _start(o, dummy, netns)
        yield o
    finally:
        stop_pidfile(path / "ovs-vswitchd.pid")
        stop_pidfile(path / "ovsdb-server.pid")
        shutil.rmtree(path, ignore_errors=True)


def ovs_in_namespace(netns: str) -> contextlib.AbstractContextManager[Ovs]:
    """Real Open vSwitch in network namespace ``netns`` with its own datapath types
    (``netdev`` bridges on the namespace's devices) and the test hooks of
    ``--enable-dummy`` (``time/stop``, ``time/warp``); stopped by PID on exit."""
    return _running("", netns)


@pytest.fixture
def ovs() -> Iterator[Ovs]:
    with _running("=override") as o:
        yield o
