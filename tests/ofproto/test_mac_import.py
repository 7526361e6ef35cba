"""A handoff imports the MAC table before the configuration reaches the new bridge:
the import must not apply the default size limit and silently drop entries."""

from __future__ import annotations

from hitless.ofproto.mac_learning import MacTable


def test_import_keeps_more_entries_than_the_default_limit() -> None:
    old = MacTable(max_entries=20000)
    for i in range(10000):
        old.learn(0, (0x020000000000 + i).to_bytes(6, "big"), 1 + i % 4, 100.0 + i * 1e-3)
    recs = old.records(200.0)
    new = MacTable()  # default limit, as a freshly created bridge has
    assert new.max_entries < len(recs)
    new.import_records(recs, 300.0)
    got = new.records(300.0)
    assert [(r.vlan, r.mac, r.port) for r in got] == [(r.vlan, r.mac, r.port) for r in recs]
    assert all(abs(g.age - r.age) < 1e-6 for g, r in zip(got, recs, strict=True))
    # The configured limit applies once the configuration arrives, oldest first.
    new.set_limits(300.0, 8000)
    kept = {r.mac for r in new.records(300.0)}
    assert len(kept) == 8000 and (0x020000000000 + 9999).to_bytes(6, "big") in kept
