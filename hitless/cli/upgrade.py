"""``hitless upgrade`` and ``hitless downgrade``: hand the running switch over to a new
``hitless-vswitchd`` process without losing anything.

    hitless upgrade   --rundir DIR [--to PATH] [--json] [--lease SECONDS] [--timeout SECONDS]
    hitless downgrade --rundir DIR --to PATH   [--json] [--lease SECONDS] [--timeout SECONDS]

The new process is started in the background with ``--takeover``; it reports the
result of the handoff on a pipe and keeps running if it now owns the switch. Exit 0
only when the new process owns everything and the old one has exited; otherwise exit
1 with the reason (the old process rolled back and still serves).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hitless.cli import add_rundir_argument
from hitless.cli.service import _log_tail, daemon_command
from hitless.daemon.rundir import DAEMON_NAME, RunDir, daemon_pid, read_pid, wait_exit

PHASE_LABELS = [
    ("start", "new process start, connect, negotiate"),
    ("old_precopy_send", "pre-copy built and sent (old serving)"),
    ("old_loop_max", "old process: longest loop turn in pre-copy"),
    ("precopy", "pre-copy import and OVSDB sync (old serving)"),
    ("restore", "restore from the final state (old frozen)"),
    ("verify", "verify, acknowledge, commit"),
    ("freeze", "freeze window (nobody reading the datapath)"),
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
            type=float,
            default=2.0,
            metavar="SECONDS",
            help="the longest the old process stays frozen before it rolls back (default 2)",
        )
        p.add_argument(
            "--timeout",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="give up if the new process has not reported by then (default 60)",
        )
        p.set_defaults(func=run, direction=name)


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
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start ``command --takeover`` and wait for its report. Returns the report with
    ``new_pid`` and ``phases_ms.old_exit`` added."""
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
        )
    os.close(w)
    buf = b""
    deadline = t0 + timeout
    next_check = t0 + 1.0
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                proc.kill()
                proc.wait()
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
                given_up = _old_side_gave_up(rundir, proc.pid)
                if given_up is not None:
                    proc.kill()
                    proc.wait()
                    return {"ok": False, "reason": f"the running switch {given_up}"}
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
    if report.get("connected_at"):
        # From spawning the new process to its first handoff message: process start-up.
        report.setdefault("phases_ms", {})["start"] = round(
            (float(report["connected_at"]) - t0) * 1000 + report["phases_ms"].get("start", 0), 3
        )
    if not report.get("ok"):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
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


def _old_side_gave_up(rundir: RunDir, new_pid: int) -> str | None:
    """What the running switch says ended its handoff with ``new_pid``, if it ended
    without handing over (None: still in progress, or it cannot tell us now)."""
    try:
        out = subprocess.run(
            ["ovs-appctl", "--timeout=1", "-t", str(rundir.ctl), "upgrade/status"],
            capture_output=True,
            text=True,
            timeout=3,
        )
        last = json.loads(out.stdout).get("last") or {}
    except (OSError, ValueError, subprocess.TimeoutExpired, AttributeError):
        return None
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


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    try:
        command = new_daemon_command(args.to)
    except OSError as e:
        print(f"hitless {args.direction}: {e}", file=sys.stderr)
        return 2
    report = handover(rundir, command, lease=args.lease, timeout=args.timeout)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report, args.direction)
    return 0 if report.get("ok") else 1
