"""``hitless stop --rundir DIR``: stop hitless-vswitchd, then its ovsdb-server."""

from __future__ import annotations

import argparse

from hitless.cli import add_rundir_argument
from hitless.cli.service import stop
from hitless.daemon.rundir import RunDir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stop", help="stop hitless-vswitchd and ovsdb-server of DIR", description=__doc__
    )
    add_rundir_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    lines = stop(rundir)
    for line in lines or [f"hitless: nothing runs in {rundir.path}"]:
        print(line if line.startswith("hitless") else f"hitless: {line}")
    return 0
