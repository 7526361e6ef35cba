"""``hitless-vswitchd``: the switch daemon's entry point.

    hitless-vswitchd --rundir DIR [--schema PATH] [--log-level LEVEL]

Runs in the foreground (``hitless start`` puts it in the background); writes its PID to
DIR/hitless-vswitchd.pid, logs to DIR/hitless-vswitchd.log, serves management commands
on DIR/hitless-vswitchd.ctl and reads its configuration from DIR/db.sock. SIGTERM,
SIGINT and ``ovs-appctl exit`` close the bridges and exit 0. A crash logs its traceback
and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from hitless.config.ovsdb import DEFAULT_SCHEMA
from hitless.daemon.rundir import (
    DAEMON_NAME,
    RunDir,
    daemon_pid,
    remove_pidfile_if_mine,
    write_pidfile,
)

log = logging.getLogger(DAEMON_NAME)

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s: %(message)s"


def setup_logging(logfile: str | os.PathLike[str], level: str = "INFO") -> None:
    handler = logging.FileHandler(logfile)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog=DAEMON_NAME, description="the hitless switch daemon")
    ap.add_argument("--rundir", required=True, help="directory of sockets, pidfiles, logs")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA, help="Open_vSwitch OVSDB schema")
    ap.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper
    )
    return ap.parse_args(argv)


def quiet_library_warnings() -> None:
    """The ovs library imports eventlet (installed for os-ken in tests) if present, which
    warns that it is deprecated; that is not our users' concern."""
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


def main(argv: list[str] | None = None) -> int:
    quiet_library_warnings()
    args = parse_args(argv)
    rundir = RunDir.at(args.rundir)
    if not rundir.path.is_dir():
        print(f"{DAEMON_NAME}: run directory {rundir.path} does not exist", file=sys.stderr)
        return 1
    setup_logging(rundir.log, args.log_level)
    other = daemon_pid(rundir)
    if other is not None and other != os.getpid():
        log.error("another %s (pid %d) already runs in %s", DAEMON_NAME, other, rundir.path)
        print(f"{DAEMON_NAME}: already running in {rundir.path} (pid {other})", file=sys.stderr)
        return 1

    from hitless.daemon.switch import Switch

    switch = None
    try:
        write_pidfile(rundir.pidfile)
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
        switch.serve_forever()
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
        if switch is not None:
            try:
                switch.close()
            except Exception:
                log.exception("error while closing the switch")
        remove_pidfile_if_mine(rundir.pidfile)
        logging.shutdown()


if __name__ == "__main__":
    sys.exit(main())
