"""A handoff imports the MAC table before the configuration reaches the new bridge:
the import must not apply the default size limit and silently drop entries."""

from __future__ import annotations

from hitless.ofproto.mac_learning import MacTable, format_mac


def test_import_keeps_more_entries_than_the_default_limit() -> None:
    old = MacTable(max_entries=20000)
    for i in range(10000):
        old.learn(0, (0x020000000000 + i).to_bytes(6, "big"), 1 + i % 4, 100.0 + i * 1e-3)
    rows = old.export(200.0)
    new = MacTable()  # default limit, as a freshly created bridge has
    assert new.max_entries < len(rows)
    new.import_(rows, 300.0)
    got = new.export(300.0)
    assert [r[:3] for r in got] == [r[:3] for r in rows]
    assert all(abs(g[3] - r[3]) < 1e-6 for g, r in zip(got, rows, strict=True))
    # The configured limit applies once the configuration arrives, oldest first.
    new.set_limits(300.0, 8000)
    kept = {m for _, m, _, _ in new.export(300.0)}
    assert len(kept) == 8000 and format_mac((0x020000000000 + 9999).to_bytes(6, "big")) in kept
