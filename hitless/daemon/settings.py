"""Run-time settings an operator changed with ovs-appctl (log levels, the test clock)
that a ``hitless upgrade`` carries to the new process: kept in
DIR/hitless-vswitchd.settings.json, rewritten on each change, read by the new process
when it takes over (``apply_settings``), removed when a daemon starts afresh (a restart
starts from the defaults, as Open vSwitch does)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from hitless.daemon import vlog

if TYPE_CHECKING:
    from hitless.daemon.rundir import RunDir
    from hitless.daemon.switch import Switch

log = logging.getLogger(__name__)


def _path(rundir: RunDir) -> str:
    return str(rundir.path / "hitless-vswitchd.settings.json")


def load(rundir: RunDir) -> dict[str, Any]:
    try:
        with open(_path(rundir)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(switch: Switch) -> None:
    """Record the switch's current settings (atomically)."""
    v = vlog.current()
    data = {"clock": switch.clock.export_state()}
    if v is not None:
        data["vlog"] = v.settings()
    path = _path(switch.rundir)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError as e:
        log.warning("could not save run-time settings to %s: %s", path, e)


def apply_settings(switch: Switch) -> None:
    """Take over a predecessor's settings (log levels, clock)."""
    data = load(switch.rundir)
    v = vlog.current()
    if v is not None and isinstance(data.get("vlog"), dict):
        v.apply(data["vlog"])
    if isinstance(data.get("clock"), dict):
        switch.clock.adopt(data["clock"])


def forget(rundir: RunDir) -> None:
    with contextlib.suppress(OSError):
        os.unlink(_path(rundir))
