"""An interrupted test run still tears down what its tests started.

Two ways an interrupted pytest used to leak daemons, ovsdb-servers and namespaces:

- **SIGTERM** (``timeout``, a job runner stopping its job, ``kill``) ends Python at once:
  no ``finally``, no fixture teardown. ``install()`` turns SIGTERM and SIGHUP into
  ``KeyboardInterrupt``, which pytest answers as it answers Ctrl-C: it stops the run and
  tears down every fixture still set up (``pytest_sessionfinish``).
- **A second signal during teardown** (Ctrl-C pressed twice, a runner that signals the
  whole process group and then the process) raised ``KeyboardInterrupt`` inside a
  fixture's clean-up, which stopped it half-way (a namespace deleted, the next not) and
  skipped the fixtures after it. ``deferred()`` holds such signals while clean-up runs:
  conftest wraps every teardown phase and the session's final teardown in it, and the
  interrupt is raised once the clean-up is done.

A run that must die regardless still can: the third signal received while deferred
restores the default handlers and re-sends itself, and SIGKILL is never caught.

Only the main thread of the pytest process is concerned (Python runs signal handlers
there); a child process keeps the default handlers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType

__all__ = ["deferred", "install"]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_depth = 0  # nesting of deferred()
_pending: list[int] = []  # signals received while deferred


def _handler(signum: int, frame: FrameType | None) -> None:
    if _depth == 0:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
    _pending.append(signum)
    if len(_pending) >= 3:  # insisting: give up the clean-up
        for s in SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    sys.stderr.write(
        f"\n{signal.Signals(signum).name} received during clean-up: finishing it first "
        "(send it twice more to abandon the clean-up)\n"
    )


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP of this process through ``_handler``."""
    for s in SIGNALS:
        signal.signal(s, _handler)


@contextlib.contextmanager
def deferred(reraise: bool = True) -> Iterator[None]:
    """Clean-up that a signal must not cut short: a signal received inside is held and,
    with ``reraise``, raised as ``KeyboardInterrupt`` when the outermost ``deferred()``
    exits (without: the run is ending anyway, it is dropped)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _pending:
            name = signal.Signals(_pending[0]).name
            _pending.clear()
            if reraise:
                raise KeyboardInterrupt(f"signal {name} (held during clean-up)")
