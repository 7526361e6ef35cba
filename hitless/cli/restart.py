"""``hitless restart``: the baselines a hitless upgrade is measured against.

    hitless restart --rundir DIR --mode cold          stop, start, relearn
    hitless restart --rundir DIR --mode flow-restore  what Open vSwitch's ovs-ctl does

``cold`` is a plain restart: the datapath lives in the daemon, so everything it held
(sockets, megaflows, the MAC table) is lost and relearned by flooding.

``flow-restore`` follows ovs-ctl's restart: save every bridge's OpenFlow rules
(``ovs-ofctl dump-flows --no-stats``, as ovs-save does), set
``other_config:flow-restore-wait``, stop, start (the new daemon attaches ports but
handles no packet from the datapath while the flag is set: misses are dropped), re-add
the saved rules (``ovs-ofctl add-flows``), clear the flag, at which point the datapath
is flushed. Groups and meters are not saved (nor are they by ovs-save's flow part). Both exist to be measured by ``hitless impact``; use ``hitless upgrade`` to
restart without losing anything.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from hitless.cli import add_rundir_argument
from hitless.cli.service import ServiceError, spawn_daemon, stop_pid
from hitless.daemon.rundir import DAEMON_NAME, RunDir, daemon_pid


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "restart",
        help="restart the switch daemon the way other switches do (baselines for comparison)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_rundir_argument(p)
    p.add_argument(
        "--mode",
        choices=["cold", "flow-restore"],
        required=True,
        help="cold: stop and start; flow-restore: the ovs-ctl sequence",
    )
    p.add_argument("--json", action="store_true", help="print the phase timings as JSON")
    p.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds the database and OpenFlow steps may take in all (saving and "
        f"re-adding many rules on a loaded machine takes longer; default {DEFAULT_TIMEOUT:g}); "
        "stopping and starting the daemon have their own limits",
    )
    p.set_defaults(func=run)


DEFAULT_TIMEOUT = 60.0


class _Deadline:
    """The time the restart's database and OpenFlow steps have left (``--timeout``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise ServiceError(f"the restart's steps did not finish within --timeout {self.seconds:g} s")
        return left


def _step(cmd: list[str], what: str, deadline: _Deadline) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=deadline.left())
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{what} did not finish within --timeout {deadline.seconds:g} s") from None


def _vsctl(rundir: RunDir, deadline: _Deadline, *args: str) -> str:
    wait = max(1, int(deadline.left()))  # ovs-vsctl's own wait for the daemon
    r = _step(["ovs-vsctl", f"--db={rundir.db_remote}", f"--timeout={wait}", *args],
              f"ovs-vsctl {' '.join(args)}", deadline)  # fmt: skip
    if r.returncode != 0:
        raise ServiceError(f"ovs-vsctl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def _ofctl(rundir: RunDir, deadline: _Deadline, bridge: str, *args: str) -> str:
    r = _step(
        ["ovs-ofctl", "-O", "OpenFlow13", args[0], f"unix:{rundir.path}/{bridge}.mgmt", *args[1:]],
        f"ovs-ofctl {args[0]} {bridge}", deadline,
    )  # fmt: skip
    if r.returncode != 0:
        raise ServiceError(f"ovs-ofctl {args[0]} {bridge}: {r.stderr.strip()}")
    return r.stdout


def save_flows(rundir: RunDir, deadline: _Deadline) -> dict[str, str]:
    """What ovs-save does: every bridge's OpenFlow rules, as add-flows input."""
    out = {}
    for bridge in _vsctl(rundir, deadline, "list-br").split():
        rules = _ofctl(rundir, deadline, bridge, "dump-flows", "--no-stats").splitlines()
        out[bridge] = "\n".join(r.strip() for r in rules if r.strip() and "reply" not in r)
    return out


def restore_flows(rundir: RunDir, saved: dict[str, str], deadline: _Deadline) -> None:
    for bridge, rules in saved.items():
        if not rules:
            continue
        path = rundir.path / f".{bridge}.saved-flows"
        path.write_text(rules + "\n")
        try:
            _ofctl(rundir, deadline, bridge, "add-flows", str(path))
        finally:
            path.unlink(missing_ok=True)


def restart(rundir: RunDir, mode: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, float]:
    """Run the restart; returns phase durations in milliseconds. ``timeout``: what its
    database and OpenFlow steps may take in all (``--timeout``)."""
    deadline = _Deadline(timeout)
    pid = daemon_pid(rundir)
    if pid is None:
        raise ServiceError(f"no {DAEMON_NAME} is running in {rundir.path}")
    phases: dict[str, float] = {}
    t0 = time.monotonic()
    if mode == "flow-restore":
        _vsctl(rundir, deadline, "--no-wait", "set", "Open_vSwitch", ".",
               "other_config:flow-restore-wait=true")  # fmt: skip
    saved = save_flows(rundir, deadline) if mode == "flow-restore" else {}
    t = time.monotonic()
    stop_pid(pid, DAEMON_NAME)
    phases["stop"] = time.monotonic() - t
    t = time.monotonic()
    spawn_daemon(rundir)
    # A change made *with* waiting: ovs-vsctl bumps next_cfg and returns only once the
    # new daemon has applied the database (flow-restore-wait included). With --no-wait
    # next_cfg would not move, and cur_cfg == next_cfg could still be the old daemon's.
    _vsctl(
        rundir,
        deadline,
        "set",
        "Open_vSwitch",
        ".",
        f"external_ids:hitless-restart={int(time.time() * 1000)}",
    )
    phases["start"] = time.monotonic() - t
    if mode == "flow-restore":
        t = time.monotonic()
        restore_flows(rundir, saved, deadline)  # then the flag clears: the datapath is flushed
        _vsctl(rundir, deadline, "remove", "Open_vSwitch", ".", "other_config",
               "flow-restore-wait")  # fmt: skip
        phases["restore"] = time.monotonic() - t
    phases["total"] = time.monotonic() - t0
    return {k: round(v * 1000, 3) for k, v in phases.items()}


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    try:
        phases = restart(rundir, args.mode, args.timeout)
    except ServiceError as e:
        print(f"hitless restart: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"mode": args.mode, "phases_ms": phases}, indent=2))
    else:
        print(
            f"restarted ({args.mode}): " + ", ".join(f"{k} {v:.1f} ms" for k, v in phases.items())
        )
    return 0
