"""``hitless-vswitchd``: the switch daemon's entry point.

    hitless-vswitchd --rundir DIR [--schema PATH] [--log-level LEVEL] [--nice N]

Runs in the foreground (``hitless start`` puts it in the background); writes its PID to
DIR/hitless-vswitchd.pid, logs to DIR/hitless-vswitchd.log, serves management commands
on DIR/hitless-vswitchd.ctl and reads its configuration from DIR/db.sock. It also keeps
the names plain ``ovs-appctl`` looks for with ``OVS_RUNDIR=DIR`` (a locked
DIR/ovs-vswitchd.pid and DIR/ovs-vswitchd.PID.ctl), rewritten by a successor. SIGTERM,
SIGINT and ``ovs-appctl exit`` close the bridges and exit 0. A crash logs its traceback
and exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, NoReturn

import hitless
from hitless.config.ovsdb import DEFAULT_SCHEMA
from hitless.daemon import faults, gcwatch, settings, vlog
from hitless.daemon.priority import DEFAULT_NICE, set_niceness
from hitless.daemon.rundir import (
    DAEMON_NAME,
    RunDir,
    daemon_pid,
    publish_ovs_names,
    remove_pidfile_if_mine,
    withdraw_ovs_names,
    write_pidfile,
)

log = logging.getLogger(DAEMON_NAME)


def setup_logging(logfile: str | os.PathLike[str], level: str = "INFO") -> None:
    vlog.configure(logfile, level)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=DAEMON_NAME, description="the hitless switch daemon")
    ap.add_argument("--rundir", required=True, help="directory of sockets, pidfiles, logs")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA, help="Open_vSwitch OVSDB schema")
    ap.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper
    )
    ap.add_argument(
        "--takeover",
        action="store_true",
        help="take the switch over from the hitless-vswitchd running in the rundir "
        "(what 'hitless upgrade' starts)",
    )
    ap.add_argument(
        "--report-fd",
        type=int,
        metavar="FD",
        help="with --takeover: write the handoff result as one JSON line to this fd",
    )
    ap.add_argument(
        "--lease",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="freeze lease: with --takeover the one to ask for; otherwise the default "
        "this process grants to a successor (default 2)",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=DEFAULT_NICE,
        metavar="N",
        help=f"run at niceness N, -20 to 19, and our session too when we lead it (default "
        f"{DEFAULT_NICE}; ovs-ctl runs ovs-vswitchd at -10: the switch gets a core before "
        "batch work does; lowering it needs root, otherwise the inherited niceness stays)",
    )
    ap.add_argument(
        "--no-standby",
        action="store_true",
        help="keep no crash standby (by default a second process, started once a netdev "
        "bridge exists, holds the ports' sockets and a mirror of the learned state and "
        "takes over the moment this one dies: see docs/hardening.md)",
    )
    ap.add_argument(
        "--standby",
        action="store_true",
        help="run as the crash standby of the daemon running in the rundir (what the "
        "daemon starts itself)",
    )
    args = ap.parse_args(argv)
    if not -20 <= args.nice <= 19:
        ap.error(f"--nice must be from -20 to 19, not {args.nice}")
    return args


def main(argv: list[str] | None = None) -> int:
    hitless.refuse_eventlet()
    args = parse_args(argv)
    rundir = RunDir.at(args.rundir)
    if not rundir.path.is_dir():
        print(f"{DAEMON_NAME}: run directory {rundir.path} does not exist", file=sys.stderr)
        return 1
    setup_logging(rundir.log, args.log_level)
    gcwatch.install()  # no full collections: they stall forwarding (module doc)
    set_niceness(args.nice)  # and the session's (hitless.daemon.priority)
    if args.takeover:
        return takeover_main(rundir, args)
    if args.standby:
        return standby_main(rundir, args)
    other = daemon_pid(rundir)
    if other is not None and other != os.getpid():
        log.error("another %s (pid %d) already runs in %s", DAEMON_NAME, other, rundir.path)
        print(f"{DAEMON_NAME}: already running in {rundir.path} (pid {other})", file=sys.stderr)
        return 1

    from hitless.daemon.switch import Switch

    switch = None
    try:
        write_pidfile(rundir.pidfile)
        publish_ovs_names(rundir)
        settings.forget(rundir)  # a fresh start: default log levels, real time
        log.info(
            "%s starting (pid %d, rundir %s, database %s)",
            DAEMON_NAME,
            os.getpid(),
            rundir.path,
            rundir.db_remote,
        )
        switch = Switch(rundir, schema=args.schema)
        switch.install_signal_handlers()
        switch.start_unixctl()
        switch.start_handoff_listener(args.lease)
        keep_standby(switch, rundir, args)
        switch.serve_forever()
        if switch.handed_over:
            log.info("%s handed over to a new process; exiting", DAEMON_NAME)
            _exit_handed_over(switch, rundir)
        log.info(
            "%s exiting (%d warm and %d cold reconfigurations)",
            DAEMON_NAME,
            switch.counters.warm,
            switch.counters.cold,
        )
        return 0
    except BaseException as e:
        if isinstance(e, SystemExit) and not e.code:
            return 0
        log.critical("%s crashed: %s: %s", DAEMON_NAME, type(e).__name__, e, exc_info=True)
        return 1
    finally:
        _shutdown(switch, rundir, remove_pidfile=True)


def _shutdown(switch: object | None, rundir: RunDir, *, remove_pidfile: bool) -> None:
    """Close the switch (a no-op after a handoff: everything is the successor's),
    drop our pidfile if it still names us, flush the log."""
    if switch is not None:
        try:
            switch.close()  # type: ignore[attr-defined]
        except Exception:
            log.exception("error while closing the switch")
    if remove_pidfile:
        remove_pidfile_if_mine(rundir.pidfile)
        withdraw_ovs_names(rundir)
    logging.shutdown()
    # The interpreter's exit runs one full collection: over everything still alive that
    # walked ~860,000 objects for 1.3 s at 100k rules + 50k MACs (a cold restart waits
    # for our exit). Nothing of ours is left to close by then: let it skip them.
    gcwatch.exiting()


def _exit_handed_over(switch: object, rundir: RunDir) -> NoReturn:
    """Exit at once after a handoff: everything is the successor's, and the interpreter's
    own teardown (a full garbage collection, then freeing the whole state one object at
    a time: 1.4 s of CPU at 100,000 rules + 50,000 MACs) would take the CPU from the
    successor just when it starts serving."""
    _shutdown(switch, rundir, remove_pidfile=True)
    os._exit(0)


def _first_forward(switch: Any) -> None:
    """What the rings held during the freeze goes out as soon as we own the switch."""
    faults.arm_duplicate(switch)  # fault tests only (HITLESS_FAULT)
    switch.forward(switch.clock())


def _serve_owned(switch: Any, rundir: RunDir, *, handed_over: bool = False) -> None:
    """Serve a switch that took the state over (from a crashed daemon, or by a handoff:
    ``handed_over``, whose first forwarding armed ``duplicate`` already) until it stops,
    or exit at once if it handed over in turn."""
    faults.after_owned(switch, duplicate=not handed_over)  # fault tests only (HITLESS_FAULT)
    switch.install_signal_handlers()
    switch.serve_forever()
    if switch.handed_over:
        log.info("%s handed over to a new process; exiting", DAEMON_NAME)
        _exit_handed_over(switch, rundir)


def _report(fd: int | None, doc: dict[str, object]) -> None:
    if fd is None:
        return
    try:
        os.write(fd, (json.dumps(doc) + "\n").encode())
        os.close(fd)
    except OSError:
        pass  # whoever started us is gone; the log has it all


def keep_standby(switch: Any, rundir: RunDir, args: argparse.Namespace, delay: float = 0.0) -> None:
    """Keep a crash standby (hitless.daemon.standby) unless told not to; its first start
    waits ``delay`` seconds."""
    if args.no_standby:
        return
    from hitless.daemon.standby import StandbyLink, standby_args

    try:
        switch.standby = StandbyLink(switch, rundir, extra_args=standby_args(args), delay=delay)
    except OSError as e:
        log.error("no crash standby: cannot listen for it: %s", e)


def standby_main(rundir: RunDir, args: argparse.Namespace) -> int:
    """The crash standby: wait for the daemon's death, take over, then serve."""
    from hitless.daemon.standby import run_standby

    got = run_standby(rundir, args)
    if isinstance(got, int):
        logging.shutdown()
        # It exits when the daemon hands over (bye): just as the new process commits. The
        # interpreter's final full collection over the mirror it built (915,963 objects,
        # 671 ms of CPU at 100,001 rules + 50,000 MACs) would take that CPU from it.
        gcwatch.exiting()
        return got
    switch = got
    try:
        _serve_owned(switch, rundir)
        return 0
    except BaseException as e:
        if isinstance(e, SystemExit) and not e.code:
            return 0
        log.critical("%s crashed: %s: %s", DAEMON_NAME, type(e).__name__, e, exc_info=True)
        return 1
    finally:
        _shutdown(switch, rundir, remove_pidfile=True)


def takeover_main(rundir: RunDir, args: argparse.Namespace) -> int:
    """Take over from the running daemon (``hitless upgrade``), then serve."""
    from hitless.daemon import ofmgmt, unixctl  # noqa: F401  (ofmgmt: imported early)
    from hitless.daemon.handoff_new import take_over
    from hitless.daemon.handoff_old import handoff_path
    from hitless.daemon.standby import SPAWN_DELAY_AFTER_TAKEOVER
    from hitless.daemon.switch import Switch
    from hitless.daemon.takeover import SwitchImporter
    from hitless.ofproto import ofhandler  # noqa: F401  (imported early, see below)

    # Import now, while the old process serves, what the switch would otherwise import
    # at commit or on its first turn (the management commands, the OpenFlow session
    # code, the crash standby's link): inside the freeze window that took 0.1-0.2 s on a
    # loaded machine, and compiling standby.py there (no .pyc: PYTHONDONTWRITEBYTECODE)
    # 5-9 ms of the commit. ``take_over`` reports any module the freeze still imports.
    unixctl.load_commands()

    log.info(
        "%s %s starting to take over in %s (pid %d)",
        DAEMON_NAME,
        hitless.__version__,
        rundir.path,
        os.getpid(),
    )
    switch = None
    owned = False
    try:
        switch = Switch(rundir, schema=args.schema)
        # The predecessor's log levels and clock, before restoring anything timed; read
        # again at commit (the old process serves commands until it freezes).
        settings.apply_settings(switch)

        def on_commit() -> None:
            assert switch is not None
            inherited = importer.listeners
            switch.start_unixctl(inherited.pop("unixctl", None))
            write_pidfile(rundir.pidfile)
            publish_ovs_names(rundir)
            settings.apply_settings(switch)  # the predecessor's log levels and clock
            switch.start_handoff_listener(args.lease, inherited.pop("handoff", None))
            keep_standby(switch, rundir, args, SPAWN_DELAY_AFTER_TAKEOVER)
            for fd in inherited.values():  # a listener this build does not know
                os.close(fd)

        importer = SwitchImporter(switch, on_commit=on_commit)
        versions = os.environ.get("HITLESS_STATE_VERSIONS")  # tests: pretend another build
        result = take_over(
            handoff_path(rundir.path),
            importer,
            lease=args.lease,
            versions=[int(v) for v in versions.split(",")] if versions else None,
            # Nothing was forwarded since the old process froze: the frames the rings
            # held meanwhile go out as soon as we own them, before the report, the log
            # line and the rest of a first serving-loop turn.
            serve_first=lambda: _first_forward(switch),
        )
        doc = result.to_json()
        if not result.ok:
            log.error("takeover failed: %s; the running switch keeps serving", result.reason)
            _report(args.report_fd, doc)
            return 1
        owned = True
        switch.takeover_report = doc
        log.info(
            "took over from pid %d (%s): %s; phases %s",
            result.old_pid,
            result.old_software,
            result.counts,
            doc["phases_ms"],
        )
        _report(args.report_fd, doc)
        _serve_owned(switch, rundir, handed_over=True)
        return 0
    except BaseException as e:
        if isinstance(e, SystemExit) and not e.code:
            return 0
        log.critical("%s crashed: %s: %s", DAEMON_NAME, type(e).__name__, e, exc_info=True)
        _report(args.report_fd, {"ok": False, "reason": f"{type(e).__name__}: {e}"})
        return 1
    finally:
        _shutdown(switch, rundir, remove_pidfile=owned)


if __name__ == "__main__":
    sys.exit(main())
