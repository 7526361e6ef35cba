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


def test_a_precopy_copy_is_set_aside_from_young_collections(policy: None) -> None:
    """What a pre-copy's instant copies (lists of references, tuples) is taken out of
    the young generations at once: no young collection walks it afterwards."""
    try:
        gcwatch.before_copy()
        assert gc.get_count()[0] < 50  # collected just before (little left in there)
        copied = [(1, bytes([i % 256])) for i in range(20_000)]
        gcwatch.after_copy()
        assert gc.get_freeze_count() >= len(copied)
        young = gc.get_objects(0) + gc.get_objects(1)
        assert not any(o is copied for o in young)
        assert not any(o is copied for o in gc.get_objects(2))
    finally:
        gc.unfreeze()


def test_without_the_policy_a_copy_is_left_as_it_is() -> None:
    """Tests and tools that run the engines in their own process keep their collector."""
    before = gc.get_freeze_count()
    gcwatch.before_copy()
    copied = [(1, bytes([i % 256])) for i in range(1000)]
    gcwatch.after_copy()
    assert gc.get_freeze_count() == before
    assert len(copied) == 1000


def test_collections_are_timed_per_turn(policy: None) -> None:
    gcwatch.take_turn()
    keep = [[i] for i in range(50_000)]  # several young collections
    took = gcwatch.take_turn()
    assert took > 0.0
    assert gcwatch.take_turn() == 0.0  # counted once
    assert len(keep) == 50_000
