"""The MAC learning table: (VLAN, MAC) -> port, with aging, a size limit and moves.

Pure: every operation takes ``now`` (monotonic seconds) from the caller.

Scale: entries live in one insertion-ordered dict kept in last-seen order (a refresh
moves the entry to the end), so learn, lookup, refresh and eviction are O(1) and aging
pops expired entries from the front without looking at the rest. Refreshes from
datapath flow statistics may carry a timestamp slightly older than the newest entry;
such an entry still goes to the end, so the order is approximate by at most one
revalidation interval: an entry may age out that much late, never early.

Eviction (the table is full and a new entry arrives) is fair across ports, as Open
vSwitch's: the oldest entry of the port that holds the most entries goes, so a port
flooding new source MACs evicts its own entries, never the few of the ports beside it
(each counted in ``n_evicted``, ``mac_evicted`` in ``coverage/show``). Each port's
keys are kept in an ``OrderedDict`` in the same last-seen order (its oldest key is O(1)
to find however many were removed before it, unlike a plain dict's), so eviction is
O(ports) and the rest stays O(1).

Every change that can alter a forwarding decision (an entry added, moved or removed)
is recorded in ``dirty`` so the revalidator can re-translate exactly the flows that
depend on it.
"""

from __future__ import annotations

from collections import OrderedDict

from hitless.config.model import OFPP_LOCAL
from hitless.state.records import MacEntryV1

__all__ = ["MacEntry", "MacTable", "format_mac", "parse_mac"]

MacKey = tuple[int, bytes]  # (vlan, mac)


def format_mac(mac: bytes) -> str:
    return mac.hex(":")


def parse_mac(text: str) -> bytes:
    try:
        mac = bytes.fromhex(text.replace(":", ""))
    except ValueError:
        mac = b""
    if len(mac) != 6 or len(text) != 17:
        raise ValueError(f"not a MAC address: {text!r}")
    return mac


class MacEntry:
    __slots__ = ("port", "last_seen")

    def __init__(self, port: int, last_seen: float) -> None:
        self.port = port
        self.last_seen = last_seen


class MacTable:
    """Learned (vlan, mac) -> port entries."""

    def __init__(self, aging_time: float = 300.0, max_entries: int = 8192) -> None:
        self.aging_time = float(aging_time)
        self.max_entries = max_entries
        self._entries: dict[MacKey, MacEntry] = {}
        # Per port, its keys in last-seen order (for fair eviction).
        self._by_port: dict[int, OrderedDict[MacKey, None]] = {}
        self.dirty: set[MacKey] = set()
        # While a handoff's pre-copy is out: every key whose entry changed since.
        self.journal: set[MacKey] | None = None
        self.n_learned = 0
        self.n_moves = 0
        self.n_expired = 0
        self.n_evicted = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: MacKey) -> bool:
        return key in self._entries

    # Queries -------------------------------------------------------------------
    def lookup(self, vlan: int, mac: bytes) -> int | None:
        e = self._entries.get((vlan, mac))
        return None if e is None else e.port

    def get(self, vlan: int, mac: bytes) -> MacEntry | None:
        return self._entries.get((vlan, mac))

    def keys(self) -> list[MacKey]:
        """Every (vlan, mac) key, roughly oldest first (a copy)."""
        return list(self._entries)

    def entries(self) -> list[tuple[int, bytes, int, float]]:
        """(vlan, mac, port, last_seen), roughly oldest first."""
        return [(v, m, e.port, e.last_seen) for (v, m), e in self._entries.items()]

    def next_expiry(self) -> float | None:
        for e in self._entries.values():
            return e.last_seen + self.aging_time
        return None

    # Changes -------------------------------------------------------------------
    def learn(self, vlan: int, mac: bytes, port: int, now: float) -> bool:
        """Record that ``mac`` was seen on ``port`` in ``vlan`` at ``now``. Returns True
        when a forwarding decision may change (a new entry or a move)."""
        key = (vlan, mac)
        entries = self._entries
        e = entries.get(key)
        if e is not None:
            if e.port == port:
                if now > e.last_seen:
                    e.last_seen = now
                    del entries[key]
                    entries[key] = e
                    self._by_port[port].move_to_end(key)
                return False
            if now < e.last_seen:
                return False  # stale news (an old flow's stats): the newer sighting wins
            self._unindex(key, e.port)
            e.port = port
            e.last_seen = now
            del entries[key]
            entries[key] = e
            self._index(key, port)
            self.n_moves += 1
            self.dirty.add(key)
            return True
        if len(entries) >= self.max_entries:
            self._evict(len(entries) - self.max_entries + 1)
        entries[key] = MacEntry(port, now)
        self._index(key, port)
        self.n_learned += 1
        self.dirty.add(key)
        return True

    def _index(self, key: MacKey, port: int) -> None:
        keys = self._by_port.get(port)
        if keys is None:
            keys = self._by_port[port] = OrderedDict()
        keys[key] = None

    def _unindex(self, key: MacKey, port: int) -> None:
        keys = self._by_port[port]
        del keys[key]
        if not keys:
            del self._by_port[port]

    def _reindex(self) -> None:
        self._by_port = {}
        for key, e in self._entries.items():
            self._index(key, e.port)

    def _evict(self, count: int) -> None:
        """Remove ``count`` entries, each the oldest of the port with the most."""
        entries, by_port = self._entries, self._by_port
        for _ in range(count):
            port = max(by_port, key=lambda p: len(by_port[p]))
            keys = by_port[port]
            key = keys.popitem(last=False)[0]
            if not keys:
                del by_port[port]
            del entries[key]
            self.dirty.add(key)
            self.n_evicted += 1

    def port_counts(self) -> dict[int, int]:
        """How many entries each port holds."""
        return {p: len(keys) for p, keys in self._by_port.items()}

    def expire(self, now: float) -> int:
        """Remove entries not seen for aging_time; returns how many."""
        entries = self._entries
        limit = now - self.aging_time
        n = 0
        while entries:
            key = next(iter(entries))
            e = entries[key]
            if e.last_seen > limit:
                break
            del entries[key]
            self._unindex(key, e.port)
            self.dirty.add(key)
            n += 1
        self.n_expired += n
        return n

    def set_limits(self, aging_time: float, max_entries: int) -> None:
        self.aging_time = float(aging_time)
        self.max_entries = max_entries
        if len(self._entries) > max_entries:
            self._evict(len(self._entries) - max_entries)

    def flush(self, port: int | None = None, vlan: int | None = None) -> int:
        """Remove all entries, or those on ``port`` and/or in ``vlan``; returns how many."""
        if port is None and vlan is None:
            n = len(self._entries)
            self.dirty.update(self._entries)
            self._entries.clear()
            self._by_port.clear()
            return n
        doomed = [
            k
            for k, e in self._entries.items()
            if (port is None or e.port == port) and (vlan is None or k[0] == vlan)
        ]
        for k in doomed:
            self._unindex(k, self._entries.pop(k).port)
        self.dirty.update(doomed)
        return len(doomed)

    def take_dirty(self) -> set[MacKey]:
        d = self.dirty
        self.dirty = set()
        if self.journal is not None:
            self.journal |= d
        return d

    def apply_records(self, records: list[MacEntryV1], now: float) -> None:
        """Insert or replace entries (a handoff's delta); ages count back from ``now``."""
        entries = self._entries
        for r in records:
            key = (r.vlan, r.mac)
            old = entries.pop(key, None)
            if old is not None:
                self._unindex(key, old.port)
            entries[key] = MacEntry(r.port, now - r.age)
            self._index(key, r.port)
            self.dirty.add(key)

    def forget(self, keys: list[tuple[int, bytes]]) -> None:
        """Remove entries (a handoff's delta); missing ones are ignored."""
        for vlan, mac in keys:
            key = (int(vlan), bytes(mac))
            e = self._entries.pop(key, None)
            if e is not None:
                self._unindex(key, e.port)
                self.dirty.add(key)

    def start_journal(self) -> None:
        """Record from now on which entries change (learned, moved, removed)."""
        self.journal = set()

    def take_journal(self) -> set[MacKey]:
        """The keys changed since ``start_journal`` (pending ones included); stops."""
        out = (self.journal or set()) | self.dirty
        self.journal = None
        return out

    def record(self, key: MacKey, now: float) -> MacEntryV1 | None:
        """One entry as a handoff carries it, or None if it is gone."""
        e = self._entries.get(key)
        if e is None:
            return None
        return MacEntryV1(key[0], key[1], e.port, max(0.0, now - e.last_seen))

    def records(self, now: float) -> list[MacEntryV1]:
        """Every entry as a handoff carries it (hitless.state.records), oldest first."""
        return [
            MacEntryV1(vlan, mac, e.port, max(0.0, now - e.last_seen))
            for (vlan, mac), e in self._entries.items()
        ]

    # Presentation and handoff ----------------------------------------------------
    def show(self, now: float) -> str:
        """The text of ``ovs-appctl fdb/show``."""
        lines = [" port  VLAN  MAC                Age"]
        for (vlan, mac), e in self._entries.items():
            name = "LOCAL" if e.port == OFPP_LOCAL else e.port
            age = max(0, int(now - e.last_seen))
            lines.append(f"{name:>5}  {vlan:4d}  {mac.hex(':')}  {age:3d}")
        return "\n".join(lines) + "\n"

    def import_records(self, records: list[MacEntryV1], now: float) -> None:
        """Replace the table with a handoff's entries; ages count back from ``now``."""
        decoded = [(now - r.age, r.vlan, r.mac, r.port) for r in records]
        decoded.sort(key=_first)
        self.dirty.update(self._entries)
        # Keep every entry: the table being imported was within its writer's limit, and
        # this table's own limit is the configuration's to apply (set_limits evicts).
        self._entries = {(v, m): MacEntry(p, t) for t, v, m, p in decoded}
        self._reindex()
        self.dirty.update(self._entries)


def _first(row: tuple[float, int, bytes, int]) -> float:
    return row[0]
