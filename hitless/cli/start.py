"""``hitless start --rundir DIR``: start the private ovsdb-server and hitless-vswitchd."""

from __future__ import annotations

import argparse
import sys
import time

from hitless.cli import add_rundir_argument
from hitless.cli.service import ServiceError, spawn_daemon, start_db
from hitless.config.ovsdb import DEFAULT_SCHEMA
from hitless.daemon.priority import DEFAULT_NICE, nice_value
from hitless.daemon.rundir import (
    DAEMON_NAME,
    ControlError,
    RunDir,
    control_call,
    daemon_pid,
    db_pid,
)
from hitless.daemon.standby import standby_pid

STANDBY_WAIT = 30.0  # seconds a crash standby may take to take over (a loaded machine)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "start", help="start ovsdb-server and hitless-vswitchd in DIR", description=__doc__
    )
    add_rundir_argument(p)
    p.add_argument(
        "--vswitchd",
        metavar="PATH",
        help="hitless-vswitchd executable to run (default: the installed one)",
    )
    p.add_argument("--schema", default=DEFAULT_SCHEMA, help="Open_vSwitch OVSDB schema")
    p.add_argument("--log-level", default="INFO", help="daemon log level")
    p.add_argument(
        "--nice",
        type=nice_value,
        default=DEFAULT_NICE,
        metavar="N",
        help=f"the daemon's niceness, -20 to 19, and its session's (default {DEFAULT_NICE}, "
        "as ovs-ctl runs ovs-vswitchd; lowering it needs root, otherwise the inherited "
        "niceness stays)",
    )
    p.add_argument(
        "--no-standby",
        action="store_true",
        help="keep no crash standby: by default the daemon starts a second process once a "
        "netdev bridge exists, which takes over the moment the daemon dies (kill -9, a "
        "crash) with its sockets and learned state (docs/hardening.md)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    rundir.path.mkdir(parents=True, exist_ok=True)
    dbp, dp = db_pid(rundir), daemon_pid(rundir)
    if dbp is not None and dp is not None:
        print(
            f"hitless: already running in {rundir.path} "
            f"(ovsdb-server pid {dbp}, {DAEMON_NAME} pid {dp})",
            file=sys.stderr,
        )
        return 1
    if dbp is not None and dp is None:
        took = wait_for_standby(rundir)
        if took is not None:
            print(
                f"hitless: the crash standby took over: running in {rundir.path} "
                f"(ovsdb-server pid {dbp}, {DAEMON_NAME} pid {took})"
            )
            return 0
    try:
        if dbp is None:
            dbp = start_db(rundir, args.schema)
        else:
            print(f"hitless: ovsdb-server already runs (pid {dbp}); starting {DAEMON_NAME}")
        if dp is None:
            cmd = [args.vswitchd] if args.vswitchd else None
            extra = ["--schema", args.schema, "--log-level", args.log_level]
            extra += ["--nice", str(args.nice)]
            if args.no_standby:
                extra.append("--no-standby")
            dp = spawn_daemon(rundir, cmd, extra)
    except ServiceError as e:
        print(f"hitless: {e}", file=sys.stderr)
        return 1
    print(f"hitless: running in {rundir.path} (ovsdb-server pid {dbp}, {DAEMON_NAME} pid {dp})")
    return 0


def wait_for_standby(rundir: RunDir, timeout: float = STANDBY_WAIT) -> int | None:
    """The daemon is gone: if its crash standby lives, wait until it serves (its pid
    in the pidfile, answering on the control socket) and return its pid; None if there
    is no standby or it exited without taking over (then we start a daemon)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dp = daemon_pid(rundir)
        if dp is not None:
            try:
                control_call(rundir.ctl, "version", timeout=2.0)
                return dp
            except ControlError:
                pass
        elif standby_pid(rundir) is None:
            return None
        time.sleep(0.02)
    return None
