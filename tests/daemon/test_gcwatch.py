"""The daemon's garbage-collection policy: no full collection of its own accord, however
much long-lived state piles up (each would walk all of it with forwarding stopped);
young garbage cycles are still collected; slow collections are counted."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hitless.daemon import gcwatch


@pytest.fixture
def policy() -> Iterator[None]:
    before = gc.get_threshold()
    gcwatch.install()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if gcwatch._watch in gc.callbacks:
            gc.callbacks.remove(gcwatch._watch)


def full_collections() -> int:
    return int(gc.get_stats()[2]["collections"])


def test_long_lived_state_never_triggers_a_full_collection(policy: None) -> None:
    gc.collect()
    before = full_collections()
    keep = [[i] for i in range(300_000)]  # enough to trigger several with the defaults
    assert full_collections() == before
    assert len(keep) == 300_000
    assert gcwatch.stats()["collections"].get("0", 0) > 0  # young ones still ran


def test_young_cycles_are_still_collected(policy: None) -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self

    gc.collect()
    before = gc.get_stats()[0]["collected"] + gc.get_stats()[1]["collected"]
    for _ in range(20_000):
        Node()
    after = gc.get_stats()[0]["collected"] + gc.get_stats()[1]["collected"]
    assert after - before > 10_000


def test_defaults_do_run_full_collections() -> None:
    """The other side of the first test: the same allocation does trigger full
    collections under CPython's own thresholds (so that test can fail)."""
    gc.collect()
    before = full_collections()
    keep = [[i] for i in range(300_000)]
    assert full_collections() > before
    assert len(keep) == 300_000


def test_exiting_takes_everything_alive_out_of_the_final_collection() -> None:
    keep = [[i] for i in range(1000)]
    try:
        gcwatch.exiting()
        assert gc.get_freeze_count() >= len(keep)
        assert not any(o is keep for o in gc.get_objects())  # not walked any more
    finally:
        gc.unfreeze()
