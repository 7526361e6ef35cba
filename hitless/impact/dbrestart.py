"""The ``ovsdb-restart`` operation: the switch's ovsdb-server stops and starts again
under traffic, as an upgrade of Debian's openvswitch packages does to it, while the
switch daemon keeps running.

What it checks, on hitless and on Open vSwitch alike (driven only through their
commands): a configuration change made just before (``ovs-vsctl set Open_vSwitch .
external_ids:...``, which returns once the switch has applied it) is still in the
database afterwards, and the switch reconnects and applies a change made after the
restart (``ovs-vsctl`` without ``--no-wait`` returns only when the switch has set
``cur_cfg``). Forwarding and the controller session are measured by the traffic
classes like any other operation.

Must not import the switch layers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from hitless.impact.analysis import Phase

__all__ = ["DbSwitch", "ovsdb_restart"]

MARK_BEFORE = "hli-db-restart-before"
MARK_AFTER = "hli-db-restart-after"


class DbSwitch(Protocol):
    rundir: Path

    def vsctl(self, *args: str) -> str: ...


def ovsdb_restart(
    sw: DbSwitch,
    db_pid: Callable[[], int | None],
    stop_pid: Callable[[int], None],
    start_db: Callable[[], None],
) -> list[Phase]:
    """Change, stop ovsdb-server by its PID, start it again, change again; raise
    RuntimeError when a change is lost or the switch does not come back."""
    mark = str(time.monotonic_ns())
    t0 = time.monotonic()
    sw.vsctl("set", "Open_vSwitch", ".", f"external_ids:{MARK_BEFORE}={mark}")
    t1 = time.monotonic()
    pid = db_pid()
    if pid is None:
        raise RuntimeError(f"no ovsdb-server runs in {sw.rundir}")
    stop_pid(pid)
    t2 = time.monotonic()
    start_db()
    t3 = time.monotonic()
    # Returns once the switch reconnected and applied it (cur_cfg caught up).
    sw.vsctl("set", "Open_vSwitch", ".", f"external_ids:{MARK_AFTER}={mark}")
    t4 = time.monotonic()
    for key in (MARK_BEFORE, MARK_AFTER):
        got = sw.vsctl("get", "Open_vSwitch", ".", f"external_ids:{key}").strip('"')
        if got != mark:
            raise RuntimeError(f"ovsdb-restart: external_ids:{key} is {got!r}, expected {mark}")
    return [
        Phase("change just before, applied", t0, t1),
        Phase("ovsdb-server stop", t1, t2),
        Phase("ovsdb-server start", t2, t3),
        Phase("switch reconnected, applies a change", t3, t4),
    ]
