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
``stats()`` gives the count and the longest pause per generation, and ``take_turn()``
the collections' time since it was last called (the serving loop asks once a turn).

A handoff's pre-copy copies its lists (rules, megaflows, MAC keys: 200,000 references
and 50,000 tuples at 100,000 rules + 50,000 MACs) in one instant; young, they were walked
by the next young collections until promoted, 6-7 ms of CPU each, twice, in two later
turns of the old process (measured in one process, pre-copy stepped in 2 ms slices).
``before_copy`` and ``after_copy`` bracket that instant: the young generations are
collected just before (while they hold the usual little), and whatever the instant made
is then set aside with ``gc.freeze`` (the permanent generation, which no collection
walks): with no full collections that is where it would have ended up anyway, two young
collections later. Only a reference cycle made inside that one instant and dropped
later is never collected (freed with the process).
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
_turn = 0.0  # collections' time since take_turn()


def _watch(phase: str, info: dict[str, Any]) -> None:
    global _started, _turn
    if phase == "start":
        _started = time.perf_counter()
        return
    took = time.perf_counter() - _started
    _turn += took
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


def take_turn() -> float:
    """Seconds spent in collections since the last call (0.0 without ``install``)."""
    global _turn
    took, _turn = _turn, 0.0
    return took


def installed() -> bool:
    return _watch in gc.callbacks


def before_copy() -> None:
    """A pre-copy is about to copy its lists (module doc): empty the young generations
    now, while they hold little. Nothing without ``install`` (tests, tools)."""
    if installed():
        gc.collect(1)


def after_copy() -> None:
    """The pre-copy copied its lists: set aside what the instant made, so that no young
    collection walks it (module doc). Nothing without ``install``."""
    if installed():
        gc.freeze()


def exiting() -> None:
    """The process is about to exit: keep the interpreter's final full collection off
    every object alive now (``gc.freeze``: they are freed by reference counting as the
    interpreter tears down, or with the process)."""
    gc.freeze()
