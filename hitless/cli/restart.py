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
    p.set_defaults(func=run)


def _vsctl(rundir: RunDir, *args: str) -> str:
    r = subprocess.run(
        ["ovs-vsctl", f"--db={rundir.db_remote}", "--timeout=20", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if r.returncode != 0:
        raise ServiceError(f"ovs-vsctl {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout.strip()


def _ofctl(rundir: RunDir, bridge: str, *args: str) -> str:
    r = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", args[0], f"unix:{rundir.path}/{bridge}.mgmt", *args[1:]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if r.returncode != 0:
        raise ServiceError(f"ovs-ofctl {args[0]} {bridge}: {r.stderr.strip()}")
    return r.stdout


def save_flows(rundir: RunDir) -> dict[str, str]:
    """What ovs-save does: every bridge's OpenFlow rules, as add-flows input."""
    out = {}
    for bridge in _vsctl(rundir, "list-br").split():
        rules = _ofctl(rundir, bridge, "dump-flows", "--no-stats").splitlines()
        out[bridge] = "\n".join(r.strip() for r in rules if r.strip() and "reply" not in r)
    return out


def restore_flows(rundir: RunDir, saved: dict[str, str]) -> None:
    for bridge, rules in saved.items():
        if not rules:
            continue
        path = rundir.path / f".{bridge}.saved-flows"
        path.write_text(rules + "\n")
        try:
            _ofctl(rundir, bridge, "add-flows", str(path))
        finally:
            path.unlink(missing_ok=True)


def restart(rundir: RunDir, mode: str) -> dict[str, float]:
    """Run the restart; returns phase durations in milliseconds."""
    pid = daemon_pid(rundir)
    if pid is None:
        raise ServiceError(f"no {DAEMON_NAME} is running in {rundir.path}")
    phases: dict[str, float] = {}
    t0 = time.monotonic()
    if mode == "flow-restore":
        _vsctl(
            rundir, "--no-wait", "set", "Open_vSwitch", ".", "other_config:flow-restore-wait=true"
        )
    saved = save_flows(rundir) if mode == "flow-restore" else {}
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
        "set",
        "Open_vSwitch",
        ".",
        f"external_ids:hitless-restart={int(time.time() * 1000)}",
    )
    phases["start"] = time.monotonic() - t
    if mode == "flow-restore":
        t = time.monotonic()
        restore_flows(rundir, saved)  # then the flag clears, and the datapath is flushed
        _vsctl(rundir, "remove", "Open_vSwitch", ".", "other_config", "flow-restore-wait")
        phases["restore"] = time.monotonic() - t
    phases["total"] = time.monotonic() - t0
    return {k: round(v * 1000, 3) for k, v in phases.items()}


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    try:
        phases = restart(rundir, args.mode)
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
