"""``hitless start --rundir DIR``: start the private ovsdb-server and hitless-vswitchd."""

from __future__ import annotations

import argparse
import sys

from hitless.cli import add_rundir_argument
from hitless.cli.service import ServiceError, spawn_daemon, start_db
from hitless.config.ovsdb import DEFAULT_SCHEMA
from hitless.daemon.rundir import DAEMON_NAME, RunDir, daemon_pid, db_pid


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
    try:
        if dbp is None:
            dbp = start_db(rundir, args.schema)
        else:
            print(f"hitless: ovsdb-server already runs (pid {dbp}); starting {DAEMON_NAME}")
        if dp is None:
            cmd = [args.vswitchd] if args.vswitchd else None
            extra = ["--schema", args.schema, "--log-level", args.log_level]
            dp = spawn_daemon(rundir, cmd, extra)
    except ServiceError as e:
        print(f"hitless: {e}", file=sys.stderr)
        return 1
    print(f"hitless: running in {rundir.path} (ovsdb-server pid {dbp}, {DAEMON_NAME} pid {dp})")
    return 0
