"""The switches ``hitless impact`` measures, and the operations it performs on them.

Two switches, each private to a temporary run directory and driven only through
command-line tools, the way an operator would:

* ``HitlessSwitch``: ``hitless start/stop/upgrade/downgrade/restart``; a netdev bridge
  configured with stock ``ovs-vsctl``.
* ``OvsSwitch``: Debian's Open vSwitch, its own ``ovsdb-server`` and ``ovs-vswitchd``
  started with explicit sockets, pidfiles and logs in the run directory (and
  ``OVS_RUNDIR``/``OVS_DBDIR``/``OVS_LOGDIR``/``OVS_SYSCONFDIR`` pointed there), so
  it never touches the system's Open vSwitch. ``datapath_type=netdev`` (there is no
  kernel module here), bridge in standalone mode (NORMAL).

Both take a second bridge the same way (``add_second_bridge``): ``br1``, netdev,
standalone, joined to ``br0`` by a patch port pair (``Interface type=patch,
options:peer``), configured with the same ``ovs-vsctl`` command for both switches.

An operation (``Switch.operation(name)``) returns a callable for
``hitless.impact.run.measure`` that performs it and returns its phases. Processes
are stopped by the PIDs their pidfiles name, never by name.

Must not import the switch layers: the switch is driven from outside, like a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hitless.cli.service import START_TIMEOUT, STOP_TIMEOUT
from hitless.cli.start import STANDBY_WAIT
from hitless.impact.analysis import Phase
from hitless.impact.dbrestart import ovsdb_restart

__all__ = [
    "HITLESS_OPS",
    "OVS_OPS",
    "HitlessSwitch",
    "OvsSwitch",
    "SwitchError",
    "label",
]

BRIDGE = "br0"
BRIDGE2 = "br1"
# The patch pair joining them: (on br0, on br1), each the other's options:peer.
PATCH = ("patch-br1", "patch-br0")
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
TIMEOUT = 60.0
# How much longer than its own --timeout a `hitless upgrade`/`downgrade` may run before
# the harness gives up on it: its --connect-timeout (30 s by default) counts apart, and so
# do its interpreter's start (2-12 s at load 25-30) and its exit. With no margin (both
# 60 s) the harness killed the command in the middle of a handoff at load ~30, before
# the command could end it or report ("timed out after 60.0 seconds").
HANDOFF_MARGIN = 120.0
# The same for `hitless start` and `hitless restart`, whose own limits are their waits
# for a crash standby and for the new daemon's answer, the daemon's stop, and (restart)
# its --timeout for the database and OpenFlow steps: a fixed 60 s was less than those.
START_LIMIT = STANDBY_WAIT + START_TIMEOUT + HANDOFF_MARGIN
RESTART_MARGIN = 2 * STOP_TIMEOUT + START_TIMEOUT + HANDOFF_MARGIN

# Operation keys (what --ops takes) per switch, in the order they run.
HITLESS_OPS = ("upgrade", "downgrade", "cold", "flow-restore", "kill9", "ovsdb-restart")
OVS_OPS = ("cold", "flow-restore", "kill9", "ovsdb-restart")

_LABELS = {
    ("hitless", "upgrade"): "hitless upgrade",
    ("hitless", "downgrade"): "hitless downgrade",
    ("hitless", "cold"): "hitless restart --mode cold",
    ("hitless", "flow-restore"): "hitless restart --mode flow-restore",
    ("hitless", "kill9"): "hitless kill -9 + start",
    ("ovs", "cold"): "OVS restart",
    ("ovs", "flow-restore"): "OVS ovs-ctl restart (flow-restore-wait)",
    ("ovs", "kill9"): "OVS kill -9 + start",
    ("hitless", "ovsdb-restart"): "hitless: ovsdb-server restart",
    ("ovs", "ovsdb-restart"): "OVS: ovsdb-server restart",
}


def label(switch: str, op: str) -> str:
    """The operation's name in tables, plots and docs (also the explanations' key)."""
    return _LABELS[(switch, op)]


class SwitchError(RuntimeError):
    """A switch could not be started, configured or operated; the message says which
    command failed and where its log is."""


Operation = Callable[[], list[Phase]]


def _run(
    cmd: Sequence[str], what: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT
) -> str:
    try:
        r = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd="/",
        )
    except FileNotFoundError:
        raise SwitchError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise SwitchError(f"{what} did not end within {timeout:g} s; killed it") from None
    if r.returncode != 0:
        raise SwitchError(f"{what} failed ({' '.join(cmd)}):\n{(r.stderr or r.stdout).strip()}")
    return r.stdout


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None if _gone(pid) else pid


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie waiting for its parent (daemons are
    reparented to init, which may reap them late)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


STANDBY_READY = 30.0  # seconds


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.002)
    return False


def _stop_pid(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not _wait_gone(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, timeout)


def _mktemp(prefix: str) -> Path:
    # unix socket paths are limited to 107 bytes: keep the run directory short
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


class _Base:
    kind = ""
    rundir: Path
    netns: str | None = None
    datapath_type = "netdev"  # hitless may run "ebpf" (hitless impact --datapath)
    # seconds allowed for commands that carry the OpenFlow rules (handoff, restore):
    # raised by the harness when it loads many
    rules_timeout: float = TIMEOUT
    # what the last upgrade/downgrade command reported (phases_ms...); None: no handoff
    last_report: dict[str, Any] | None = None

    def _in_ns(self, cmd: list[str]) -> list[str]:
        """Processes that open interfaces run in the switch's namespace."""
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def vsctl(self, *args: str) -> str:
        return _run(
            ["ovs-vsctl", f"--db=unix:{self.rundir / 'db.sock'}", "--timeout=30", *args],
            f"ovs-vsctl {' '.join(args[:3])}",
        ).strip()

    def appctl(self, *args: str) -> str:
        raise NotImplementedError

    def _env(self) -> dict[str, str] | None:
        return None

    def ofctl(self, cmd: str, *args: str, timeout: float = TIMEOUT) -> str:
        """Stock ``ovs-ofctl -O OpenFlow13 CMD unix:RUNDIR/br0.mgmt ARGS`` (the bridge's
        management socket: both switches name it that way)."""
        mgmt = f"unix:{self.rundir / (BRIDGE + '.mgmt')}"
        return _run(["ovs-ofctl", "-O", "OpenFlow13", cmd, mgmt, *args], f"ovs-ofctl {cmd}",
                    env=self._env(), timeout=timeout)  # fmt: skip

    def ofport(self, iface: str) -> int:
        """The OpenFlow port number of ``iface`` (``Interface.ofport`` in the database)."""
        out = self.vsctl("get", "Interface", iface, "ofport")
        try:
            n = int(out)
        except ValueError:
            n = -1
        if n <= 0:
            raise SwitchError(f"{self.kind}: interface {iface} has no OpenFlow port ({out!r})")
        return n

    def add_bridge(self, ports: Sequence[str], mac_table_size: int = 8192) -> None:
        """A bridge (``datapath_type``, netdev unless told) in standalone mode with
        ``ports``."""
        cmd = [
            "add-br",
            BRIDGE,
            "--",
            "set",
            "bridge",
            BRIDGE,
            f"datapath_type={self.datapath_type}",
            f"other_config:mac-table-size={mac_table_size}",
        ]
        for p in ports:
            cmd += ["--", "add-port", BRIDGE, p]
        self.vsctl(*cmd)

    def add_second_bridge(self, ports: Sequence[str]) -> None:
        """A second bridge (``BRIDGE2``, standalone, the first one's datapath type) with
        ``ports``, joined to the first by the patch pair ``PATCH``, as one ovs-vsctl
        transaction."""
        p0, p1 = PATCH
        cmd = ["add-br", BRIDGE2, "--", "set", "bridge", BRIDGE2,
               f"datapath_type={self.datapath_type}"]  # fmt: skip
        for p in ports:
            cmd += ["--", "add-port", BRIDGE2, p]
        cmd += [
            "--", "add-port", BRIDGE, p0,
            "--", "set", "interface", p0, "type=patch", f"options:peer={p1}",
            "--", "add-port", BRIDGE2, p1,
            "--", "set", "interface", p1, "type=patch", f"options:peer={p0}",
        ]  # fmt: skip
        self.vsctl(*cmd)

    def fdb_macs(self) -> int:
        """How many MAC entries ``ovs-appctl fdb/show`` lists for the bridge."""
        lines = self.appctl("fdb/show", BRIDGE).splitlines()
        return max(0, len(lines) - 1)


# ------------------------------------------------------------------ hitless


class HitlessSwitch(_Base):
    """ovsdb-server + hitless-vswitchd in a fresh run directory."""

    kind = "hitless"

    def __init__(self, netns: str | None = None, downgrade_to: Path | None = None) -> None:
        self.netns = netns
        self.rundir = _mktemp("hli-sw-")
        self.bin = Path(sys.executable).parent
        self.downgrade_to = downgrade_to  # the older hitless-vswitchd for "downgrade"
        # Added to the environment of the command a handoff operation runs, which the
        # new process inherits: fault tests arm a point there (``HITLESS_FAULT``).
        self.handoff_env: dict[str, str] = {}

    def hitless(self, *args: str, timeout: float = TIMEOUT) -> str:
        exe = self.bin / "hitless"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "hitless.cli"]
        return _run(self._in_ns([*cmd, *args, "--rundir", str(self.rundir)]), f"hitless {args[0]}",
                    timeout=timeout)  # fmt: skip

    @property
    def ctl(self) -> Path:
        """The daemon's control socket (ovs-appctl -t)."""
        return self.rundir / "hitless-vswitchd.ctl"

    def appctl(self, *args: str) -> str:
        return _run(
            ["ovs-appctl", "-t", str(self.ctl), "--timeout=30", *args], f"ovs-appctl {args[0]}"
        )

    def start(self) -> None:
        self.hitless("start", timeout=START_LIMIT)

    @property
    def pidfile(self) -> Path:
        """The forwarding process's pidfile (a handoff's new process rewrites it)."""
        return self.rundir / "hitless-vswitchd.pid"

    def daemon_pid(self) -> int | None:
        return _read_pid(self.pidfile)

    def close(self) -> None:
        """Stop both processes (by pidfile) and remove the run directory."""
        _stop_pid(self.standby_pid())  # first: it would take over from the daemon
        _stop_pid(self.daemon_pid())
        _stop_pid(_read_pid(self.rundir / "ovsdb-server.pid"))
        shutil.rmtree(self.rundir, ignore_errors=True)

    def log(self) -> Path:
        return self.rundir / "hitless-vswitchd.log"

    def operation(self, op: str) -> Operation:
        if op == "upgrade":
            return lambda: self._handoff(["upgrade"], "upgrade")
        if op == "downgrade":
            if self.downgrade_to is None:
                raise SwitchError("downgrade needs an older hitless-vswitchd (downgrade_to)")
            return lambda: self._handoff(["downgrade", "--to", str(self.downgrade_to)], "downgrade")
        if op in ("cold", "flow-restore"):
            return lambda: self._restart(op)
        if op == "kill9":
            return self._kill9
        if op == "ovsdb-restart":
            return self._ovsdb_restart
        raise SwitchError(f"hitless has no operation {op!r}; known: {', '.join(HITLESS_OPS)}")

    def _handoff(self, args: list[str], what: str) -> list[Phase]:
        t0 = time.monotonic()
        exe = self.bin / "hitless"
        # The command's own --timeout (default 60 s) within ours: a big pre-copy on a
        # loaded machine takes longer than that (100k rules at load 15: 26 s to send).
        own = max(60.0, self.rules_timeout - 10)
        cmd = self._in_ns([str(exe), *args, "--rundir", str(self.rundir), "--json",
                           "--timeout", f"{own:g}"])  # fmt: skip
        try:
            r = subprocess.run(
                cmd, capture_output=True, text=True, timeout=own + HANDOFF_MARGIN, cwd="/",
                env={**os.environ, **self.handoff_env},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise SwitchError(
                f"hitless {what} did not end within {own + HANDOFF_MARGIN:g} s (its own "
                f"--timeout {own:g} s and {HANDOFF_MARGIN:g} s more); killed it"
            ) from None
        t1 = time.monotonic()
        try:
            report = json.loads(r.stdout)
        except ValueError:
            raise SwitchError(f"hitless {what} printed no report:\n{r.stderr.strip()}") from None
        self.last_report = report  # the phases as the command reported them
        if r.returncode != 0 or not report.get("ok"):
            raise SwitchError(f"hitless {what} failed: {report.get('reason')}")
        at = report.get("ready_at")
        return _handoff_phases(
            report.get("phases_ms", {}), t0, t1, float(at) if isinstance(at, int | float) else None
        )

    def _ovsdb_restart(self) -> list[Phase]:
        """ovsdb-server stopped by PID; ``hitless start`` starts just the database (the
        daemon runs)."""
        try:
            return ovsdb_restart(
                self,
                lambda: _read_pid(self.rundir / "ovsdb-server.pid"),
                _stop_pid,
                self.start,
            )
        except RuntimeError as e:
            raise SwitchError(str(e)) from None

    def _restart(self, mode: str) -> list[Phase]:
        t0 = time.monotonic()
        own = max(60.0, self.rules_timeout - 10)  # as for a handoff (``_handoff``)
        out = self.hitless("restart", "--mode", mode, "--json", "--timeout", f"{own:g}",
                           timeout=own + RESTART_MARGIN)  # fmt: skip
        t1 = time.monotonic()
        phases = json.loads(out).get("phases_ms", {})
        return _sequential(phases, ("stop", "start", "restore"), t0, t1)

    def standby_pid(self) -> int | None:
        return _read_pid(self.rundir / "hitless-vswitchd-standby.pid")

    def _mirrors(self) -> int | None:
        """How many state mirrors the daemon sent its crash standby (``standby/show``);
        None without a standby (or an answer)."""
        try:
            doc = json.loads(self.appctl("standby/show"))
        except (SwitchError, ValueError):
            return None
        if not isinstance(doc, dict) or doc.get("standby_pid") is None:
            return None
        return int(doc.get("mirrors") or 0)

    def _kill9(self) -> list[Phase]:
        # The crash standby the daemon keeps (hitless.daemon.standby) starts with the
        # netdev bridge and needs a few seconds on a loaded machine: measure the switch
        # as it runs once it has one (never longer than STANDBY_READY).
        deadline = time.monotonic() + (STANDBY_READY if self.datapath_type == "netdev" else 0)
        while self.standby_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        # ... and once it holds the switch's state as it is now (the rules the run
        # installed): two more mirrors sent, so one was begun after this point. A kill
        # before its first mirror lost every OpenFlow rule (seen: 0 of 14 kept, the
        # stateful class's DNAT and firewall gone, 182 of 300 new connections failed).
        first: int | None = None
        while self.standby_pid() is not None and time.monotonic() < deadline:
            n = self._mirrors()
            if n is not None and first is None:
                first = n
            elif n is not None and first is not None and n >= first + 2:
                break
            time.sleep(0.05)
        standby = self.standby_pid()
        t0 = time.monotonic()
        pid = self.daemon_pid()
        if pid is None:
            raise SwitchError(f"no hitless-vswitchd runs in {self.rundir}")
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, 10.0)
        t1 = time.monotonic()
        if standby is not None:
            # It takes over by itself: what `hitless start` would wait for.
            deadline = time.monotonic() + STANDBY_READY
            while self.daemon_pid() != standby and time.monotonic() < deadline:
                time.sleep(0.002)
            if self.daemon_pid() != standby:
                self.start()
            t2 = time.monotonic()
            return [Phase("kill -9", t0, t1), Phase("standby takes over", t1, t2)]
        self.start()
        t2 = time.monotonic()
        return [Phase("kill -9", t0, t1), Phase("start (adopt)", t1, t2)]


def _sequential(
    phases_ms: dict[str, float], order: Sequence[str], t0: float, t1: float
) -> list[Phase]:
    """Phases reported as durations, laid end to end from t0 (the rest up to t1 is
    the command's own start-up and exit)."""
    out, t = [], t0
    for key in order:
        if key in phases_ms:
            d = float(phases_ms[key]) / 1000
            out.append(Phase(key, t, t + d))
            t += d
    return out or [Phase("operation", t0, t1)]


def _handoff_phases(
    p: dict[str, float], t0: float, t1: float, ready_at: float | None = None
) -> list[Phase]:
    """The handoff's phases: the new process starts and pre-copies while the old one
    serves, then the freeze window (restore + verify + commit), then the old process
    exits. The report gives durations. With ``ready_at`` (the report's CLOCK_MONOTONIC
    of the new process's Ready, the freeze's start: the same clock as ours) the freeze
    is placed exactly; otherwise the phases are laid out backwards from the end of the
    command, late by however long the command took to notice the old process's exit
    (0.2 s at a load of 6, 0.6-2.8 s at 20: the longest gaps then seemed to come before
    the freeze, when they were the freeze itself)."""
    ms = {k: float(v) / 1000 for k, v in p.items()}
    if ready_at is not None and "freeze" in ms:
        fz = ready_at
        fz_end = fz + ms["freeze"]
        if t0 <= fz <= fz_end <= t1:
            return [
                Phase("new process start + pre-copy (old serving)", t0, fz),
                Phase("freeze (restore, verify)", fz, fz_end),
                Phase("old process exit", fz_end, t1),
            ]
    tail = [("old process exit", ms.get("old_exit", 0.0))]
    freeze = ms.get("freeze", ms.get("restore", 0.0) + ms.get("verify", 0.0))
    end = t1
    phases: list[Phase] = []
    for name, d in tail:
        phases.append(Phase(name, end - d, end))
        end -= d
    phases.append(Phase("freeze (restore, verify)", end - freeze, end))
    end -= freeze
    phases.append(Phase("new process start + pre-copy (old serving)", t0, max(t0, end)))
    return sorted(phases, key=lambda ph: ph.start)


# ------------------------------------------------------------------ Open vSwitch


@dataclass(frozen=True)
class _OvsPaths:
    root: Path

    @property
    def env(self) -> dict[str, str]:
        d = str(self.root)
        return {
            **os.environ,
            "OVS_RUNDIR": d,
            "OVS_DBDIR": d,
            "OVS_LOGDIR": d,
            "OVS_SYSCONFDIR": d,
        }


# The niceness both switches run at here: hitless-vswitchd's default
# (hitless.daemon.priority.DEFAULT_NICE, -10) and what ovs-ctl gives ovs-vswitchd
# (--ovs-vswitchd-priority), so both stand on the same footing. The traffic agents run at
# it too (hitless.impact.run.AGENT_NICE): they are the measuring side.
SWITCH_NICE = -10
OVS_VSWITCHD_NICE = SWITCH_NICE


class OvsSwitch(_Base):
    """Debian's ovsdb-server + ovs-vswitchd, private to a fresh run directory."""

    kind = "ovs"

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.rundir = _mktemp("hli-ovs-")
        self.paths = _OvsPaths(self.rundir)
        self.flows_saved = 0

    def _p(self, name: str) -> Path:
        return self.rundir / name

    @property
    def ctl(self) -> Path:
        """ovs-vswitchd's control socket (--unixctl: the same path after a restart)."""
        return self._p("ovs-vswitchd.ctl")

    def appctl(self, *args: str) -> str:
        return _run(
            ["ovs-appctl", "-t", str(self._p("ovs-vswitchd.ctl")), "--timeout=30", *args],
            f"ovs-appctl {args[0]}",
            env=self.paths.env,
        )

    def _env(self) -> dict[str, str] | None:
        return self.paths.env

    def start(self) -> None:
        env = self.paths.env
        _run(["ovsdb-tool", "create", str(self._p("conf.db")), OVS_SCHEMA], "ovsdb-tool", env)
        self._start_db()
        self.vsctl("--no-wait", "init")
        self._start_vswitchd()

    def _start_db(self) -> None:
        """ovsdb-server on the run directory's database (also for ovsdb-restart)."""
        _run(
            self._in_ns(["ovsdb-server", str(self._p("conf.db")),
             f"--remote=punix:{self._p('db.sock')}",
             f"--unixctl={self._p('ovsdb-server.ctl')}",
             f"--pidfile={self._p('ovsdb-server.pid')}",
             f"--log-file={self._p('ovsdb-server.log')}",
             "--detach", "--no-chdir"]),
            "starting ovsdb-server",
            self.paths.env,
        )  # fmt: skip

    def _start_vswitchd(self) -> None:
        _run(
            self._in_ns(["nice", "-n", str(OVS_VSWITCHD_NICE), "ovs-vswitchd",
             f"unix:{self._p('db.sock')}",
             f"--unixctl={self._p('ovs-vswitchd.ctl')}",
             f"--pidfile={self._p('ovs-vswitchd.pid')}",
             f"--log-file={self._p('ovs-vswitchd.log')}",
             "--disable-system", "--detach", "--no-chdir"]),
            "starting ovs-vswitchd",
            self.paths.env,
        )  # fmt: skip
        # --detach made it a session of its own, and with the kernel's session autogroups
        # a session competes at its autogroup's niceness: give it the one hitless-vswitchd
        # gives itself (hitless.daemon.main.set_niceness).
        pid = self.daemon_pid()
        if pid is not None:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/autogroup").write_text(f"{OVS_VSWITCHD_NICE}\n")

    def _applied(self) -> None:
        """Bump next_cfg and wait (ovs-vsctl without --no-wait) until ovs-vswitchd has
        applied the database: its ports are open again."""
        self.vsctl("set", "Open_vSwitch", ".", f"external_ids:hli-mark={time.monotonic_ns()}")

    @property
    def pidfile(self) -> Path:
        """The forwarding process's pidfile (a restarted one rewrites it)."""
        return self._p("ovs-vswitchd.pid")

    def daemon_pid(self) -> int | None:
        return _read_pid(self.pidfile)

    def close(self) -> None:
        _stop_pid(self.daemon_pid())
        _stop_pid(_read_pid(self._p("ovsdb-server.pid")))
        shutil.rmtree(self.rundir, ignore_errors=True)

    def log(self) -> Path:
        return self._p("ovs-vswitchd.log")

    def operation(self, op: str) -> Operation:
        if op == "cold":
            return lambda: self._restart(signal.SIGTERM, restore=False)
        if op == "kill9":
            return lambda: self._restart(signal.SIGKILL, restore=False)
        if op == "flow-restore":
            return lambda: self._restart(signal.SIGTERM, restore=True)
        if op == "ovsdb-restart":
            return self._ovsdb_restart
        raise SwitchError(f"Open vSwitch has no operation {op!r} here; known: {', '.join(OVS_OPS)}")

    def _ovsdb_restart(self) -> list[Phase]:
        try:
            return ovsdb_restart(
                self, lambda: _read_pid(self._p("ovsdb-server.pid")), _stop_pid, self._start_db
            )
        except RuntimeError as e:
            raise SwitchError(str(e)) from None

    def _restart(self, sig: int, restore: bool) -> list[Phase]:
        """Stop ovs-vswitchd by PID and start it again; with ``restore``, the sequence
        ovs-ctl uses: save the OpenFlow rules, set flow-restore-wait, restart, add
        the rules back, clear flow-restore-wait."""
        phases: list[Phase] = []
        t = time.monotonic()
        saved = self.rundir / "flows.save"
        if restore:
            dump = self.ofctl("dump-flows", "--no-stats", "--no-names",
                              timeout=self.rules_timeout)  # fmt: skip
            # as ovs-save: the rules only, not the reply headers (one per multipart part)
            rules = [ln.strip() for ln in dump.splitlines() if "actions=" in ln]
            saved.write_text("\n".join(rules) + "\n")
            self.flows_saved = len(rules)
            self.vsctl("--no-wait", "set", "Open_vSwitch", ".",
                       "other_config:flow-restore-wait=true")  # fmt: skip
            phases.append(Phase("save flows, set flow-restore-wait", t, time.monotonic()))
            t = time.monotonic()
        pid = self.daemon_pid()
        if pid is None:
            raise SwitchError(f"no ovs-vswitchd runs in {self.rundir}")
        _stop_pid(pid, sig)
        phases.append(Phase("stop" if sig == signal.SIGTERM else "kill -9", t, time.monotonic()))
        t = time.monotonic()
        if sig == signal.SIGKILL:
            self._p("ovs-vswitchd.pid").unlink(missing_ok=True)
        self._start_vswitchd()
        if not restore:
            self._applied()
        phases.append(Phase("start", t, time.monotonic()))
        if restore:
            t = time.monotonic()
            self.ofctl("add-flows", str(saved), timeout=self.rules_timeout)
            self.vsctl("--no-wait", "remove", "Open_vSwitch", ".", "other_config",
                       "flow-restore-wait")  # fmt: skip
            self._applied()
            phases.append(Phase("restore flows, clear flow-restore-wait", t, time.monotonic()))
        return phases
