"""The basic management commands: version, exit, fdb/show, fdb/flush (the datapath views
are in dp_commands)."""

from __future__ import annotations

import hitless
from hitless.daemon.rundir import DAEMON_NAME
from hitless.daemon.unixctl import Request, command


@command("version")
def version(req: Request) -> str:
    return f"{DAEMON_NAME} (hitless) {hitless.__version__}"


@command("exit", "[--cleanup]", 0, 1)
def exit_(req: Request) -> str:
    """Close the bridges and exit (with or without --cleanup: this switch keeps no
    datapath state outside the process that would need separate cleanup)."""
    req.switch.exiting = True
    return ""


@command("fdb/show", "bridge", 1, 1)
def fdb_show(req: Request) -> str:
    return req.switch.bridge(req.args[0]).fdb_show()


@command("fdb/flush", "[bridge]", 0, 1)
def fdb_flush(req: Request) -> str:
    names = [req.args[0]] if req.args else list(req.switch.bridge_names())
    bridges = [req.switch.bridge(n) for n in names]  # all names valid before flushing any
    for b in bridges:
        b.fdb_flush()
    return "table successfully flushed\n"
