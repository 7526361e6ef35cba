"""A private switch under test (ovsdb-server + hitless-vswitchd) in a unique run
directory, always stopped by PID and removed in teardown. The fixtures ``sw`` and
``started`` are exposed to every test directory by tests/conftest.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hitless.daemon.rundir import RunDir, daemon_pid, db_pid, read_pid, wait_exit
from tests.netns import is_private

BIN = Path(sys.executable).parent
TIMEOUT = "--timeout=20"


def run(cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout}{r.stderr}")
    return r


@dataclass
class Sw:
    """One switch instance under test and stock clients pointed at it."""

    rundir: RunDir

    def hitless(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([str(BIN / "hitless"), *args, "--rundir", str(self.rundir.path)], check)

    def start(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.hitless("start", check=check)

    def vsctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        shared = shared_devices(
            args, lambda br: self.vsctl("get", "Bridge", br, "datapath_type", check=False).stdout
        )
        assert not shared, (
            f"ovs-vsctl {' '.join(args)}: {', '.join(shared)} would be a device in the root"
            " namespace under a fixed name (two test runs on the machine would share it):"
            " name it with tests.netns.unique_name or Topology.name"
        )
        return run(["ovs-vsctl", f"--db={self.rundir.db_remote}", TIMEOUT, *args], check)

    def appctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["ovs-appctl", "-t", str(self.rundir.ctl), TIMEOUT, *args], check)

    def ofctl(self, br: str, cmd: str, *args: str, check: bool = True) -> str:
        """Stock ``ovs-ofctl -O OpenFlow13 CMD`` on bridge ``br``'s management socket."""
        target = f"unix:{self.rundir.path}/{br}.mgmt"
        return run(["ovs-ofctl", "-O", "OpenFlow13", cmd, target, *args], check).stdout

    def get(self, table: str, record: str, column: str) -> str:
        return self.vsctl("get", table, record, column).stdout.strip()

    def ofport(self, iface: str) -> int:
        return int(self.get("Interface", iface, "ofport"))

    @property
    def daemon_pid(self) -> int | None:
        return daemon_pid(self.rundir)

    @property
    def db_pid(self) -> int | None:
        return db_pid(self.rundir)

    def log(self) -> str:
        return self.rundir.log.read_text(errors="replace")


# Datapath types whose bridges (and internal ports) are devices in the daemon's namespace
# ("" is netdev here; "system" is refused but named for what it would be).
DEVICES = ("", "netdev", "ebpf", "system")


def shared_devices(args: tuple[str, ...], datapath_of: Callable[[str], str]) -> list[str]:
    """The bridges and internal ports that ``ovs-vsctl ARGS`` would create as devices in
    the switch's (root) namespace under a name that is not private to this test (see
    ``tests.netns.is_private``): a bridge whose datapath is one of ``DEVICES`` (a
    netdev bridge is a TAP device of its name) and an internal port on one.
    ``datapath_of(bridge)``: the datapath type of a bridge the command does not set."""
    cmds: list[list[str]] = [[]]
    for a in args:
        if a == "--":
            cmds.append([])
        elif not a.startswith("--") or cmds[-1]:
            cmds[-1].append(a)
    set_type = {
        c[2]: a.split("=", 1)[1].strip('"')
        for c in cmds
        if len(c) > 3 and c[0] == "set" and c[1].lower() == "bridge"
        for a in c[3:]
        if a.startswith("datapath_type=")
    }
    added = {c[1]: c[2] if len(c) > 3 else None for c in cmds if len(c) > 1 and c[0] == "add-br"}
    port_of = {c[2]: c[1] for c in cmds if len(c) > 2 and c[0] in ("add-port", "add-bond")}
    internal = [
        c[2] for c in cmds if len(c) > 3 and c[0] == "set" and c[1].lower() == "interface"
        and "type=internal" in c[3:]
    ]  # fmt: skip

    def datapath(br: str) -> str:
        parent = added.get(br)  # a fake bridge (add-br NAME PARENT VLAN) lives on its parent
        if parent is not None:
            return datapath(parent)
        if br in set_type:
            return set_type[br]
        return "netdev" if br in added else datapath_of(br).strip('"')

    out = [f"bridge {br}" for br in added if datapath(br) in DEVICES and not is_private(br)]
    out += [
        f"internal port {p}" for p in internal
        if p in port_of and not is_private(p) and datapath(port_of[p]) in DEVICES
    ]  # fmt: skip
    return out


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_exit(pid, 10):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_exit(pid, 10)


@pytest.fixture
def sw() -> Iterator[Sw]:
    """A not-yet-started switch in a fresh short run directory (unix socket paths are
    limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="hl-", dir="/tmp")
    s = Sw(RunDir.at(path))
    try:
        yield s
    finally:
        # Only the processes this run directory's pidfiles name, and only if they are
        # ours (daemon_pid/db_pid check the command line).
        _kill(s.daemon_pid)
        # A handoff that failed half-way may have left a second daemon the pidfile does
        # not name: every process started for this test carries its unique run directory.
        for pid in started_for(s.rundir.path):
            if pid != s.db_pid:
                _kill(pid)
        _kill(s.db_pid)
        for f in (s.rundir.pidfile, s.rundir.db_pidfile):
            pid = read_pid(f)
            assert pid is None or wait_exit(pid, 0.1), f"process {pid} survived teardown"
        shutil.rmtree(path, ignore_errors=True)


def started_for(rundir: Path) -> list[int]:
    """Live processes whose command line names ``rundir`` (unique per test)."""
    out = []
    marker = f"--rundir {rundir}"
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            cmd = (
                Path(f"/proc/{p}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
        except OSError:
            continue
        if marker in cmd and not wait_exit(int(p), 0):
            out.append(int(p))
    return out


@pytest.fixture
def started(sw: Sw) -> Sw:
    sw.start()
    return sw
