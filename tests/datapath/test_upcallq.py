"""The per-port upcall queues: bounds, round-robin service, export order."""

from __future__ import annotations

import pytest

from hitless.datapath.base import Upcall
from hitless.datapath.upcallq import FairUpcallQueue


def up(port: int, i: int) -> Upcall:
    return Upcall(port, i.to_bytes(4, "big"), b"")


def test_a_flooding_port_does_not_delay_another_ports_upcall() -> None:
    q = FairUpcallQueue(total=10_000, per_port=1_000)
    for i in range(1_000):
        q.push(up(1, i))
    q.push(up(2, 0))
    first = q.pop(2)
    # FIFO would hand out port 1's thousand first; the victim is served in the first round.
    assert [u.in_port for u in first] == [1, 2]
    assert len(q) == 999


def test_service_alternates_and_resumes_where_it_stopped() -> None:
    q = FairUpcallQueue(total=100, per_port=100)
    for i in range(3):
        q.push(up(1, i))
        q.push(up(2, i))
        q.push(up(3, i))
    got = q.pop(4) + q.pop(5)
    assert [(u.in_port, u.packet[-1]) for u in got] == [
        (1, 0), (2, 0), (3, 0), (1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2),
    ]  # fmt: skip
    assert not q and q.pop(10) == []


def test_per_port_bound_drops_only_the_flooders_misses() -> None:
    q = FairUpcallQueue(total=100, per_port=10)
    pushed = [q.push(up(1, i)) for i in range(25)]
    assert pushed.count(True) == 10
    assert q.push(up(2, 0))
    assert q.stats[1].dropped == 15 and q.stats[1].max_queued == 10
    assert q.stats[2].dropped == 0


def test_total_bound_and_forced_push() -> None:
    q = FairUpcallQueue(total=5, per_port=4)
    for i in range(4):
        q.push(up(1, i))
    assert q.push(up(2, 0))
    assert not q.push(up(3, 0))  # the whole queue is full
    assert q.stats[3].dropped == 1
    assert q.push(up(3, 1), force=True)  # adopting a predecessor's queue loses nothing
    assert len(q) == 6


def test_iteration_is_service_order_and_removes_nothing() -> None:
    q = FairUpcallQueue(total=100, per_port=100)
    for i in range(3):
        q.push(up(7, i))
    q.push(up(8, 0))
    q.pop(1)  # port 7 served: port 8 is next
    order = [(u.in_port, u.packet[-1]) for u in q]
    assert order == [(8, 0), (7, 1), (7, 2)]
    assert [(u.in_port, u.packet[-1]) for u in q.pop(10)] == order
    assert q.stats[7].handled == 3 and q.stats[8].handled == 1


def test_forget_a_port() -> None:
    q = FairUpcallQueue(total=100, per_port=100)
    q.push(up(1, 0))
    q.push(up(2, 0))
    q.forget(1)
    assert len(q) == 1 and [u.in_port for u in q.pop(5)] == [2]
    assert 1 not in q.stats


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        FairUpcallQueue(total=0, per_port=1)
