"""``hitless upgrade`` and ``hitless downgrade``: hand the running switch over to a new
``hitless-vswitchd`` process without losing anything.

    hitless upgrade   --rundir DIR [--to PATH] [--json] [--lease S] [--connect-timeout S] [--timeout S]
                      [--nice N]
    hitless downgrade --rundir DIR --to PATH   [--json] [--lease S] [--connect-timeout S] [--timeout S]
                      [--nice N]

The new process is started in the background with ``--takeover``; it reports the
result of the handoff on a pipe and keeps running if it now owns the switch. Exit 0
only when the new process owns everything and the old one has exited; otherwise exit
1 with the reason (the old process rolled back and still serves). A new process that
has not connected to the running switch within --connect-timeout seconds (a build that
hangs while starting) is killed, and the running switch, never touched, keeps serving.
The new process runs at the running one's niceness (or --nice N), and so does its session.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hitless.cli import add_rundir_argument
from hitless.cli.service import _log_tail, daemon_command
from hitless.daemon.priority import nice_value, niceness_of, set_child_niceness
from hitless.daemon.rundir import DAEMON_NAME, RunDir, daemon_pid, read_pid, wait_exit

# A new process that has not connected to the running switch's handoff socket after
# this many seconds is given up on: starting (imports, reading the database) takes
# ~0.5-3 s on a loaded machine.
CONNECT_TIMEOUT = 30.0

PHASE_LABELS = [
    ("start", "new process start, connect, negotiate"),
    ("old_precopy_send", "pre-copy built and sent (old serving)"),
    ("old_loop_max", "old process: longest loop turn in pre-copy"),
    ("old_loop_max_its_cpu", "  of which CPU time of the old process"),
    ("old_loop_max_cpu", "old process: most CPU time of one turn in pre-copy"),
    ("old_loop_max_gc", "old process: most garbage collection in one pre-copy turn"),
    ("precopy", "pre-copy import and OVSDB sync (old serving)"),
    ("frozen_wait", "old process freezes, sends the final state"),
    ("restore", "restore from the final state (old frozen)"),
    ("restore_cpu", "  of which CPU time of the new process"),
    ("verify", "verify, acknowledge, commit"),
    ("commit", "new process takes the bridges and sockets"),
    ("commit_cpu", "  of which CPU time of the new process"),
    ("freeze", "freeze window (nobody reading the datapath)"),
    ("first_forward", "new process: first forwarding, what the freeze held"),
    ("old_exit", "old process exit after commit"),
    ("total", "total"),
]


def register(sub: argparse._SubParsersAction) -> None:
    for name, older in (("upgrade", False), ("downgrade", True)):
        p = sub.add_parser(
            name,
            help=(
                "hand the running switch to an older hitless-vswitchd, losing nothing"
                if older
                else "hand the running switch to a new hitless-vswitchd, losing nothing"
            ),
            description=__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_rundir_argument(p)
        p.add_argument(
            "--to",
            metavar="PATH",
            required=older,
            help="the hitless-vswitchd executable to hand over to"
            + ("" if older else " (default: the installed one)"),
        )
        p.add_argument(
            "--json", action="store_true", help="print the result and phase timings as JSON"
        )
        p.add_argument(
            "--lease",
            type=_seconds,
            default=2.0,
            metavar="SECONDS",
            help="the longest the old process stays frozen before it rolls back (default 2)",
        )
        p.add_argument(
            "--connect-timeout",
            type=_seconds,
            default=CONNECT_TIMEOUT,
            metavar="SECONDS",
            help="give up on (and kill) a new process that has not connected to the running "
            f"switch by then (default {CONNECT_TIMEOUT:g})",
        )
        p.add_argument(
            "--timeout",
            type=_seconds,
            default=60.0,
            metavar="SECONDS",
            help="give up if the new process has not reported within this many seconds "
            "of the running switch last saying the handoff to it is in progress (the "
            "switch times a handoff out on its own, by progress, so a big state can take "
            "longer; default 60)",
        )
        p.add_argument(
            "--nice",
            type=nice_value,
            metavar="N",
            help="the new process's niceness, -20 to 19 (default: the running process's, "
            "so a handoff keeps what hitless start --nice set; a build without "
            "hitless-vswitchd --nice, older than 3ec4f5e, is started at it and keeps it)",
        )
        p.set_defaults(func=run, direction=name)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def new_daemon_command(to: str | None) -> list[str]:
    if to is None:
        return daemon_command()
    path = Path(to)
    if not path.exists():
        raise FileNotFoundError(f"--to {to}: no such file")
    if not os.access(path, os.X_OK):
        raise PermissionError(f"--to {to}: not executable")
    return [str(path.absolute())]


def handover(
    rundir: RunDir,
    command: list[str],
    *,
    lease: float = 2.0,
    timeout: float = 60.0,
    connect_timeout: float = CONNECT_TIMEOUT,
    env: dict[str, str] | None = None,
    nice: int | None = None,
) -> dict[str, Any]:
    """Start ``command --takeover`` and wait for its report. Returns the report with
    ``new_pid`` and ``phases_ms.old_exit`` added. Gives up (and kills the new process)
    ``timeout`` seconds after the running switch last said its handoff to it is in
    progress (or after the start, if it never did), or after ``connect_timeout`` if the
    running switch has not seen it connect by then."""
    old_pid = daemon_pid(rundir)
    if old_pid is None:
        return {
            "ok": False,
            "reason": f"no {DAEMON_NAME} is running in {rundir.path} "
            "(start it with: hitless start --rundir DIR)",
        }
    r, w = os.pipe()
    cmd = command + [
        "--rundir",
        str(rundir.path),
        "--takeover",
        "--report-fd",
        str(w),
        "--lease",
        str(lease),
    ]
    if nice is not None and peer_takes_nice(command):
        cmd += ["--nice", str(nice)]
    t0 = time.monotonic()
    with open(rundir.log, "ab") as logf:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=logf,
            start_new_session=True,
            pass_fds=(w,),
            env=env,
            # a build without --nice runs at what it is started at
            preexec_fn=None if nice is None else lambda: set_child_niceness(nice),
        )
    os.close(w)
    buf = b""
    deadline = t0 + timeout
    next_check = t0 + 1.0
    connected = False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(proc)
                return {
                    "ok": False,
                    "reason": f"the new process did not report within "
                    f"{timeout:g} s (killed it); see {rundir.log}",
                }
            ready, _, _ = select.select([r], [], [], min(remaining, 0.5))
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                buf += chunk
            elif proc.poll() is not None and not buf:
                break
            elif not buf and time.monotonic() >= next_check:
                # A new process that hangs never reports; the running switch knows
                # when it gave up on it (its lease expired): do not wait for our timeout.
                next_check = time.monotonic() + 1.0
                status = _old_side_status(rundir)
                if status is None:
                    continue  # the running switch cannot tell us now: wait for --timeout
                connected = connected or _new_side_connected(status, proc.pid)
                if ((status.get("current") or {}).get("peer_pid")) == proc.pid:
                    # the running switch is handing over to it and times it out on its
                    # own (a deadline that follows the handoff's progress): --timeout
                    # counts from the last time it said so, not from the start
                    deadline = max(deadline, time.monotonic() + timeout)
                given_up = _old_side_gave_up(status, proc.pid)
                if given_up is not None:
                    _kill(proc)
                    return {"ok": False, "reason": f"the running switch {given_up}"}
                if not connected and time.monotonic() - t0 >= connect_timeout:
                    _kill(proc)
                    return {
                        "ok": False,
                        "reason": f"the new process (pid {proc.pid}, {command[0]}) never "
                        f"connected to the running switch within {connect_timeout:g} s "
                        f"(--connect-timeout); killed it. The running switch (pid {old_pid}) "
                        f"was not touched and keeps serving; see {rundir.log}",
                    }
    finally:
        os.close(r)
    report: dict[str, Any]
    try:
        report = json.loads(buf.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        code = proc.wait(timeout=10) if proc.poll() is None else proc.returncode
        return {
            "ok": False,
            "reason": f"the new process exited with status {code} before "
            f"reporting; last lines of {rundir.log}:\n"
            f"{_log_tail(rundir.log)}",
        }
    report["new_pid"] = proc.pid
    _anchor_phases(report, t0)
    if not report.get("ok"):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill(proc)
        return report
    t_commit = time.monotonic()
    if not wait_exit(old_pid, 10.0):
        report["ok"] = False
        report["reason"] = f"the old process {old_pid} did not exit after the handoff"
        return report
    report.setdefault("phases_ms", {})["old_exit"] = round((time.monotonic() - t_commit) * 1000, 3)
    if read_pid(rundir.pidfile) != proc.pid:
        report["ok"] = False
        report["reason"] = f"the pidfile does not name the new process {proc.pid}"
    return report


def _anchor_phases(report: dict[str, Any], t0: float) -> None:
    """Put the new process's report on our clock (CLOCK_MONOTONIC, as its own):
    ``ready_at``, when the freeze began (it sent Ready; its "start" and "precopy" count
    from its connection to the old process), for hitless impact to place the freeze on
    the traffic's timeline (the end of this command can be seconds late on a loaded
    machine); and "start" made to count from the spawn (``t0``): process start-up."""
    if not report.get("connected_at"):
        return
    phases = report.setdefault("phases_ms", {})
    connected = float(report["connected_at"])
    report["ready_at"] = connected + (phases.get("start", 0) + phases.get("precopy", 0)) / 1000
    phases["start"] = round((connected - t0) * 1000 + phases.get("start", 0), 3)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the new process and whatever it started (its own session, by its PID)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _old_side_status(rundir: RunDir) -> dict[str, Any] | None:
    """The running switch's ``upgrade/status`` (None: it cannot tell us now)."""
    try:
        out = subprocess.run(
            ["ovs-appctl", "--timeout=1", "-t", str(rundir.ctl), "upgrade/status"],
            capture_output=True,
            text=True,
            timeout=3,
        )
        status = json.loads(out.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return status if isinstance(status, dict) else None


def _new_side_connected(status: dict[str, Any], new_pid: int) -> bool:
    """Whether the running switch has seen a new process connect: a handoff in
    progress (there is one at a time), or one that ended with ``new_pid``."""
    last = status.get("last") or {}
    return bool(status.get("current")) or last.get("peer_pid") == new_pid


def _old_side_gave_up(status: dict[str, Any], new_pid: int) -> str | None:
    """What the running switch says ended its handoff with ``new_pid``, if it ended
    without handing over (None: still in progress, or not with this process)."""
    last = status.get("last") or {}
    if last.get("peer_pid") != new_pid or last.get("result") not in ("rolled-back", "refused"):
        return None
    verb = "rolled back" if last["result"] == "rolled-back" else "refused"
    return f"{verb} the handoff: {last.get('reason') or 'no reason given'}"


def print_report(report: dict[str, Any], direction: str) -> None:
    if not report.get("ok"):
        print(f"hitless {direction} failed: {report.get('reason')}", file=sys.stderr)
        if report.get("old_pid"):
            print(
                f"the running switch (pid {report['old_pid']}) rolled back and keeps "
                "serving; nothing was lost",
                file=sys.stderr,
            )
        return
    phases = report.get("phases_ms", {})
    print(
        f"{direction}d: pid {report.get('old_pid')} ({report.get('old_software')}) -> "
        f"pid {report.get('new_pid')}, state version {report.get('state_version')}"
    )
    counts = report.get("counts", {})
    if counts:
        print("carried: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))
    for key, label in PHASE_LABELS:
        if key in phases:
            print(f"  {label:<48} {phases[key]:>10.1f} ms")


# Asked of the new build's own interpreter: the ebpf layouts it knows (builds before
# layout.LAYOUTS knew only layout.ABI; a build without the ebpf datapath fails the import).
_LAYOUTS_PROBE = (
    "from hitless.datapath.ebpf import layout as L\n"
    "print(','.join(map(str, sorted(getattr(L, 'LAYOUTS', None) or [L.ABI]))))"
)


def _same_installation(command: list[str]) -> bool:
    exe = Path(command[0])
    return command[0] == sys.executable or exe.parent == Path(sys.executable).parent


def _peer_probe(command: list[str], script: str) -> str | None:
    """Run ``script`` with the python of the build ``command`` runs (its script's
    interpreter line); its last line of output, or None if it failed."""
    python = command[0]
    try:
        with open(command[0], "rb") as f:
            first = f.readline(512)
    except OSError:
        return None
    if first.startswith(b"#!"):
        python = first[2:].decode(errors="replace").split()[0]
    try:
        r = subprocess.run([python, "-c", script], capture_output=True, text=True,
                           timeout=60, cwd="/")  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = r.stdout.strip().splitlines()
    return lines[-1] if r.returncode == 0 and lines else None


def peer_ebpf_layouts(command: list[str]) -> str | None:
    """The ebpf program/map layouts the build ``command`` runs knows, as "1,2"; None if
    it has no ebpf datapath (or cannot say). A build in this interpreter's installation
    knows what this one knows."""
    from hitless.datapath.ebpf.layout import LAYOUTS

    if _same_installation(command):
        return ",".join(map(str, sorted(LAYOUTS)))
    out = _peer_probe(command, _LAYOUTS_PROBE)
    return out if out is not None and out.replace(",", "").isdigit() else None


# Whether a build's hitless-vswitchd takes --nice (since 3ec4f5e), read from its source
# without importing it.
_NICE_PROBE = (
    "import importlib.util as u; s = u.find_spec('hitless.daemon.main'); "
    "print(int(s is not None and '\"--nice\"' in open(s.origin).read()))"
)


def peer_takes_nice(command: list[str]) -> bool:
    """Whether the build ``command`` runs has ``hitless-vswitchd --nice``."""
    return _same_installation(command) or _peer_probe(command, _NICE_PROBE) == "1"


# Whether a build can name and rebuild its BPF program: builds from b74b2c3 on identify
# the running program by a hash of its compiled source (provider.program_id) as soon as
# they adopt it, and builds before state format 7 were installed without that source (it
# was not package data): such a build crashes adopting an ebpf datapath. Read from its files
# without importing it; "1" when it has the source or never needs it at adoption.
_BPF_SOURCE_PROBE = (
    "import importlib.util as u, pathlib\n"
    "b = u.find_spec('hitless.datapath.ebpf.build')\n"
    "p = u.find_spec('hitless.datapath.ebpf.provider')\n"
    "src = pathlib.Path(b.origin).with_name('bpf') / 'datapath.bpf.c'\n"
    "print(int(src.exists() or 'program_id(' not in open(p.origin).read()))"
)


def peer_lacks_bpf_source(command: list[str]) -> bool:
    """Whether the build ``command`` runs has an ebpf datapath whose installation lacks
    the BPF C source it needs to adopt a running program (builds before state format 7)."""
    if _same_installation(command):
        from hitless.datapath.ebpf.build import SOURCE

        return not SOURCE.exists()
    return _peer_probe(command, _BPF_SOURCE_PROBE) == "0"


def bpf_source_refusal(command: list[str]) -> str:
    return (
        f"the build {command[0]} has an ebpf datapath but its installation lacks the BPF "
        "program source (hitless/datapath/ebpf/bpf/datapath.bpf.c; builds before state "
        "format 7 did not ship it), so it could neither identify nor rebuild the running "
        "program and would crash adopting this switch's ebpf datapath; nothing was changed. "
        "Hand over to a build of state format 7 or later, which ships it"
    )


def _has_ebpf_bridge(rundir: RunDir) -> bool:
    """Whether the database has an ebpf bridge (True when it cannot say)."""
    try:
        r = subprocess.run(
            ["ovs-vsctl", f"--db={rundir.db_remote}", "--bare", "--columns=datapath_type",
             "list", "Bridge"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return True
    return r.returncode != 0 or "ebpf" in r.stdout.split()


def ebpf_layouts_for(rundir: RunDir, command: list[str]) -> str | None:
    """Before the handoff: have the running switch move its ebpf bridges to a BPF layout
    the new build knows (``dpif-ebpf/layout-for``), so that a downgrade to a build that
    knows only an older layout adopts the datapath instead of refusing it. Returns an
    error that must stop the handoff, else None (a running build without the command
    predates layouts: nothing to do). Without an ebpf bridge there is nothing to ask:
    neither build's ebpf modules are imported (1.3-4.4 s of the command's start at
    load 27, before the new process was even spawned)."""
    if not _has_ebpf_bridge(rundir):
        return None
    layouts = peer_ebpf_layouts(command)
    if layouts is None:
        return None
    if peer_lacks_bpf_source(command):
        return bpf_source_refusal(command)
    r = subprocess.run(
        ["ovs-appctl", "--timeout=60", "-t", str(rundir.ctl), "dpif-ebpf/layout-for", layouts],
        capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0 and "not a valid command" not in r.stderr + r.stdout:
        return f"the ebpf datapath cannot take a layout the new build knows: {r.stderr.strip()}"
    return None


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    try:
        command = new_daemon_command(args.to)
    except OSError as e:
        print(f"hitless {args.direction}: {e}", file=sys.stderr)
        return 2
    old_pid = daemon_pid(rundir)
    refused = ebpf_layouts_for(rundir, command) if old_pid else None
    if refused is not None:
        report: dict[str, Any] = {"ok": False, "reason": refused}
    else:
        nice = args.nice if args.nice is not None or old_pid is None else niceness_of(old_pid)
        report = handover(
            rundir,
            command,
            lease=args.lease,
            timeout=args.timeout,
            connect_timeout=args.connect_timeout,
            nice=nice,
        )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report, args.direction)
    return 0 if report.get("ok") else 1
