"""MAC table eviction is fair across ports (Open vSwitch's policy): a port flooding new
source MACs evicts its own oldest entries, not the few of the ports beside it."""

from __future__ import annotations

from hitless.ofproto.mac_learning import MacTable
from hitless.state.records import MacEntryV1


def mac(i: int) -> bytes:
    return bytes((0x0E, 0)) + i.to_bytes(4, "big")


def test_a_flooding_port_evicts_its_own_entries() -> None:
    t = MacTable(max_entries=100)
    t.learn(0, mac(1), 1, 0.0)  # the victims learned first: the oldest in the table
    t.learn(0, mac(2), 2, 0.0)
    for i in range(10_000):
        t.learn(0, mac(1000 + i), 3, 1.0 + i)
    assert len(t) == 100
    assert t.lookup(0, mac(1)) == 1 and t.lookup(0, mac(2)) == 2
    assert t.port_counts() == {1: 1, 2: 1, 3: 98}
    assert t.n_evicted == 10_002 - 100
    # the flooder's newest stay, its oldest went
    assert t.lookup(0, mac(1000 + 9_999)) == 3 and t.lookup(0, mac(1000)) is None


def test_the_oldest_entry_of_the_biggest_port_goes() -> None:
    t = MacTable(max_entries=4)
    t.learn(0, mac(1), 1, 0.0)
    t.learn(0, mac(2), 2, 1.0)
    t.learn(0, mac(3), 2, 2.0)
    t.learn(0, mac(2), 2, 3.0)  # refreshed: mac(3) is port 2's oldest now
    t.learn(0, mac(4), 1, 4.0)
    t.learn(0, mac(5), 3, 5.0)  # full: ports 1 and 2 hold two each
    assert len(t) == 4 and t.n_evicted == 1
    gone = [m for m in (1, 3) if t.lookup(0, mac(m)) is None]
    assert len(gone) == 1  # the oldest of one of the two biggest ports


def test_moves_flushes_expiry_and_imports_keep_the_port_index() -> None:
    t = MacTable(aging_time=10.0, max_entries=10)
    for i in range(4):
        t.learn(0, mac(i), 1, float(i))
    t.learn(0, mac(0), 2, 5.0)  # moved
    assert t.port_counts() == {1: 3, 2: 1}
    t.flush(port=2)
    assert t.port_counts() == {1: 3}
    t.expire(12.5)  # mac(1) (seen at 1.0) and mac(2) (2.0) age out
    assert t.port_counts() == {1: 1}
    t.forget([(0, mac(3))])
    assert t.port_counts() == {}
    t.import_records([MacEntryV1(0, mac(7), 4, 1.0), MacEntryV1(0, mac(8), 5, 0.0)], 20.0)
    t.apply_records([MacEntryV1(0, mac(7), 5, 0.0)], 21.0)
    assert t.port_counts() == {5: 2}
    t.set_limits(10.0, 1)
    assert len(t) == 1 and t.port_counts() == {5: 1}
