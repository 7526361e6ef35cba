"""The ``hitless`` command line: one subcommand per module of this package.

A module becomes a subcommand by defining ``register(subparsers)``, which adds its parser
and sets ``func`` (called with the parsed arguments, returns the exit status)::

    def register(sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser("state", help="...")
        add_rundir_argument(p)
        p.set_defaults(func=run)

Modules without ``register`` (``service``) are shared helpers.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import hitless


def add_rundir_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rundir",
        required=True,
        metavar="DIR",
        help="run directory of the switch (sockets, pidfiles, logs, database)",
    )


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="hitless",
        description="a virtual switch that upgrades and restarts without losing a packet",
    )
    ap.add_argument("--version", action="version", version=f"hitless {hitless.__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    hitless.refuse_eventlet()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
