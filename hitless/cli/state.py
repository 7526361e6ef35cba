"""``hitless state``: look at and validate state snapshots.

hitless state dump --rundir DIR [--output FILE]   the running switch's learned state
hitless state check FILE                          validate a snapshot file
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys

from hitless.cli import add_rundir_argument
from hitless.daemon.rundir import ControlError, RunDir, control_call
from hitless.state import ledger, snapshot


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "state",
        help="dump the running switch's state or check a snapshot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = p.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    d = ssub.add_parser("dump", help="print the running switch's learned state as JSON")
    add_rundir_argument(d)
    d.add_argument(
        "--output",
        metavar="FILE",
        help="also write the binary snapshot to FILE (for 'hitless state check')",
    )
    d.set_defaults(func=dump)
    c = ssub.add_parser("check", help="validate a snapshot file and summarise it")
    c.add_argument("file", metavar="FILE")
    c.set_defaults(func=check)


def dump(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    try:
        text = control_call(rundir.ctl, "state/dump")
        if args.output:
            blob = base64.b64decode(control_call(rundir.ctl, "state/dump", ["--binary"]))
            write_private(args.output, blob)
    except ControlError as e:
        print(f"hitless state dump: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"hitless state dump: cannot write {args.output}: {e.strerror}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def write_private(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over it) and
    readable by its owner only: a snapshot holds the whole learned state."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when tmp existed with a looser mode
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def check(args: argparse.Namespace) -> int:
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        print(f"hitless state check: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    try:
        env, state = snapshot.decode(data)
    except snapshot.SnapshotError as e:
        print(f"hitless state check: {args.file}: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "file": args.file,
                "valid": True,
                "state_version": env.version,
                "written_by": env.software,
                "readable_by_this_build": snapshot.readable_versions(),
                "summary": snapshot.summary(state),
                "digest": ledger.state_digest(state),
            },
            indent=2,
        )
    )
    return 0
