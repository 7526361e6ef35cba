"""Python's cyclic garbage collector, kept out of the forwarding path.

A full (generation 2) collection walks every tracked object the process holds: with
100,000 OpenFlow rules and 50,000 MAC entries that is ~860,000 objects and 0.15-0.4 s
during which the single-threaded daemon forwards nothing (measured in one process, load
average 1-5). CPython starts one on its own whenever the objects that survived two
young collections have grown by a quarter since the last one, so the stall lands
anywhere: in a serving-loop turn, in a handoff's pre-copy, inside its freeze, and many
times over while a big table is being loaded (each walk longer than the one before).

The daemon's policy (``install``): young collections (generations 0 and 1, which walk
only objects allocated since the last ones, a few thousand) run as CPython schedules
them; full collections never run on their own (generation 2's threshold is out of
reach). Long-lived objects are still freed by reference counting the moment their last
reference goes; only garbage that is a reference cycle *and* outlived two young
collections is kept, until the process is replaced (the next upgrade or restart).

Every collection is watched (``gc.callbacks``): one longer than ``LOG_ABOVE`` is logged,
and ``stats()`` gives the count and the longest pause per generation.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

LOG_ABOVE = 0.02  # seconds: a collection this long is worth a log line
# Generation 2's threshold: the number of generation-1 collections before a full one.
# CPython's default is 10; this is never reached.
NO_FULL_COLLECTIONS = 2**31 - 1

_started = 0.0
_longest: dict[int, float] = {}
_count: dict[int, int] = {}


def _watch(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.perf_counter()
        return
    took = time.perf_counter() - _started
    gen = int(info.get("generation", 0))
    _count[gen] = _count.get(gen, 0) + 1
    if took > _longest.get(gen, 0.0):
        _longest[gen] = took
    if took > LOG_ABOVE:
        log.info(
            "gc: generation %d collection took %.1f ms (%d objects collected)",
            gen,
            took * 1000,
            int(info.get("collected", 0)),
        )


def install() -> None:
    """The daemon's policy (see the module doc); idempotent."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NO_FULL_COLLECTIONS)
    if _watch not in gc.callbacks:
        gc.callbacks.append(_watch)


def stats() -> dict[str, Any]:
    """Collections so far and the longest pause per generation (ms)."""
    return {
        "collections": {str(g): n for g, n in sorted(_count.items())},
        "longest_ms": {str(g): round(v * 1000, 3) for g, v in sorted(_longest.items())},
    }


def exiting() -> None:
    """The process is about to exit: keep the interpreter's final full collection off
    every object alive now (``gc.freeze``: they are freed by reference counting as the
    interpreter tears down, or with the process)."""
    gc.freeze()
