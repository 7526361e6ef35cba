"""The revalidator: keeps every installed megaflow true to the current switch state.

Each flow the bridge installs has a ``UKey`` recording what its translation read: the
input port, the output ports, the MAC entry looked up for the destination, the VLAN
whose flood set it used, and the source it learned. Indexes on those let a change touch
only the flows that depend on it: a MAC move re-translates the flows towards that MAC,
a port change the flows in, out of or flooding onto that port. Re-translation modifies
a flow in place (same match, stats kept) when only its actions changed, and deletes it
when its mask or its learning side effect changed (the next packet makes a new one).
The datapath is never flushed.

The periodic sweep walks the datapath's flows in slices (``start_sweep``, then
``continue_sweep`` once per loop iteration, so 100k flows never stall the loop): it
deletes flows idle longer than max-idle, refreshes the MAC entries of sources whose
flows were hit since the last sweep (hosts that only use the fast path must not age
out), and adopts flows it did not install (after a handoff or a restart) by
re-translating their masked keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hitless.datapath.actions import Action
from hitless.datapath.base import Datapath, DpFlow
from hitless.ofproto.mac_learning import MacTable
from hitless.ofproto.xlate import Xlate
from hitless.packet.flow import Match

__all__ = ["Revalidator", "UKey"]

MacKey = tuple[int, bytes]


class UKey:
    """What the bridge knows about one installed megaflow."""

    __slots__ = (
        "match",
        "actions",
        "in_port",
        "out_ports",
        "dst",
        "flood_vlan",
        "learn",
        "created",
        "last_used",
        "gen",
        "credits",
        "deps",
        "lookups",
        "seen_packets",
        "seen_bytes",
    )

    def __init__(self, match: Match, x: Xlate, created: float) -> None:
        self.match = match
        self.actions: tuple[Action, ...] = x.actions
        self.in_port = int.from_bytes(match.key[0:4], "big")
        self.out_ports = x.out_ports
        self.dst = x.dst
        self.flood_vlan = x.flood_vlan
        self.learn = x.learn
        self.created = created
        self.last_used = 0.0
        self.gen = 0  # the sweep that last saw it in the datapath
        self.credits = x.credits  # OpenFlow counters its packets go to
        self.deps = x.deps  # OpenFlow tables/groups its translation read
        self.lookups = x.lookups  # ... and the table lookups it made (Xlate.lookups)
        self.seen_packets = 0  # datapath stats already credited
        self.seen_bytes = 0


class Revalidator:
    def __init__(self, datapath: Datapath, xlate: Callable[[bytes], Xlate], mac: MacTable) -> None:
        self.dp = datapath
        self.xlate = xlate
        self.mac = mac
        self.ukeys: dict[Match, UKey] = {}
        self._by_port: dict[int, set[UKey]] = {}
        self._by_dst: dict[MacKey, set[UKey]] = {}
        self._by_flood: dict[int, set[UKey]] = {}
        self._by_dep: dict[tuple[object, ...], set[UKey]] = {}
        self.n_installed = 0
        self.n_modified = 0
        self.n_deleted = 0
        self.n_idle_deleted = 0
        self.n_adopted = 0
        self._gen = 0
        self._n_current = 0  # flows of generation _gen (seen by or installed during it)
        self._pending: list[DpFlow] | None = None
        self._pos = 0
        self._sweep_started = 0.0
        # While a handoff tracks changes: every OpenFlow counter object credited
        # (the same set as OfState.credited); None otherwise.
        self.credited: set[object] | None = None
        # Flows a handoff brought in, with the datapath stats that were already
        # credited to OpenFlow counters by the process that counted them: adoption
        # credits only what came after (packets forwarded since the freeze count too).
        self.baseline: dict[Match, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.ukeys)

    # Index maintenance ------------------------------------------------------------
    def _index(self, uk: UKey) -> None:
        by_port = self._by_port
        s = by_port.get(uk.in_port)
        if s is None:
            s = by_port[uk.in_port] = set()
        s.add(uk)
        for p in uk.out_ports:
            s = by_port.get(p)
            if s is None:
                s = by_port[p] = set()
            s.add(uk)
        if uk.dst is not None:
            s = self._by_dst.get(uk.dst)
            if s is None:
                s = self._by_dst[uk.dst] = set()
            s.add(uk)
        if uk.flood_vlan is not None:
            s = self._by_flood.get(uk.flood_vlan)
            if s is None:
                s = self._by_flood[uk.flood_vlan] = set()
            s.add(uk)
        for d in uk.deps:
            s = self._by_dep.get(d)
            if s is None:
                s = self._by_dep[d] = set()
            s.add(uk)

    def _unindex(self, uk: UKey) -> None:
        for p in (uk.in_port, *uk.out_ports):
            _discard(self._by_port, p, uk)
        if uk.dst is not None:
            _discard(self._by_dst, uk.dst, uk)
        if uk.flood_vlan is not None:
            _discard(self._by_flood, uk.flood_vlan, uk)
        for d in uk.deps:
            _discard(self._by_dep, d, uk)  # type: ignore[arg-type]

    # Installing -------------------------------------------------------------------
    def install(self, match: Match, x: Xlate, now: float) -> None:
        """Install (or update) the flow for a fresh translation."""
        uk = self.ukeys.get(match)
        if uk is not None:
            if uk.credits != x.credits:
                self._settle(uk, self.dp.flow_get(match))
            if (
                uk.actions == x.actions
                and uk.dst == x.dst
                and uk.out_ports == x.out_ports
                and uk.deps == x.deps
            ):
                uk.credits = x.credits
                uk.lookups = x.lookups
                return
            self._unindex(uk)
            if uk.actions != x.actions:
                self.dp.flow_put(match, x.actions)
            self._update(uk, x)
            self._index(uk)
            return
        existing = self.dp.flow_get(match) if self.baseline else None
        self.dp.flow_put(match, x.actions)
        self.n_installed += 1
        uk = UKey(match, x, now)
        if existing is not None:  # a handed-over flow: its older packets are counted
            uk.seen_packets, uk.seen_bytes = self._baseline_of(existing)
        self.ukeys[match] = uk
        self._index(uk)
        self._mark(uk)

    @staticmethod
    def _update(uk: UKey, x: Xlate) -> None:
        uk.actions = x.actions
        uk.out_ports = x.out_ports
        uk.dst = x.dst
        uk.flood_vlan = x.flood_vlan
        uk.learn = x.learn
        uk.credits = x.credits
        uk.deps = x.deps
        uk.lookups = x.lookups

    # OpenFlow counters ----------------------------------------------------------------
    def _settle(self, uk: UKey, f: DpFlow | None) -> None:
        """Credit the datapath packets of ``uk`` not yet credited to its counters."""
        if f is None:
            return
        st = f.stats
        dp_ = st.packets - uk.seen_packets
        db = st.bytes - uk.seen_bytes
        if dp_ < 0 or db < 0:  # an older snapshot of the stats than already credited
            return
        uk.seen_packets, uk.seen_bytes = st.packets, st.bytes
        if dp_ > 0:
            for c in uk.credits:
                c.credit(dp_, db, st.used)  # type: ignore[attr-defined]
            if self.credited is not None:
                self.credited.update(uk.credits)

    def settle_flows(self, flows: Iterable[DpFlow], now: float) -> None:
        """Credit these flows' new packets (a handoff's freeze: the flows used since its
        pre-copy), adopting any not adopted yet so their packets count too."""
        for f in flows:
            uk = self.ukeys.get(f.match)
            if uk is None:
                uk = self._adopt(f, now)
            if uk is not None and uk.credits:
                self._settle(uk, f)

    def _baseline_of(self, f: DpFlow) -> tuple[int, int]:
        """The stats of a handed-over flow already credited (its current stats when we
        were not told, or were told more than it has: that is another flow's)."""
        base = self.baseline.pop(f.match, None)
        st = f.stats
        if base is None or base[0] > st.packets or base[1] > st.bytes:
            return st.packets, st.bytes
        return base

    def _adopt(self, f: DpFlow, now: float) -> UKey | None:
        """Take over a datapath flow nobody installed here (a handoff brought it): keep
        it if our translation has its mask (fixing its actions if they differ)."""
        m = f.match
        x = self.xlate(m.key)
        if x.mask != m.mask:
            self.dp.flow_del(m)
            self.baseline.pop(m, None)
            self.n_deleted += 1
            return None
        if x.actions != f.actions:
            self.dp.flow_put(m, x.actions)
        uk = UKey(m, x, f.created or now)
        uk.seen_packets, uk.seen_bytes = self._baseline_of(f)
        self.ukeys[m] = uk
        self._index(uk)
        self.n_adopted += 1
        return uk

    def settle_all(self) -> None:
        """Credit every flow's new datapath packets to OpenFlow counters (before a
        statistics reply, so counters match the traffic)."""
        get = self.dp.flow_get
        for uk in self.ukeys.values():
            if uk.credits:
                self._settle(uk, get(uk.match))

    def for_dep(self, dep: tuple[object, ...]) -> set[UKey]:
        """Flows whose OpenFlow translation read ``dep`` (("t", id), ("g", id), ("ports",))."""
        return set(self._by_dep.get(dep, ()))

    def _forget(self, uk: UKey) -> None:
        self._unindex(uk)
        del self.ukeys[uk.match]
        if uk.gen == self._gen:
            self._n_current -= 1

    # Finding affected flows ---------------------------------------------------------
    def for_macs(self, keys: Iterable[MacKey]) -> set[UKey]:
        out: set[UKey] = set()
        by_dst = self._by_dst
        for k in keys:
            s = by_dst.get(k)
            if s:
                out |= s
        return out

    def for_port(self, port: int) -> set[UKey]:
        return set(self._by_port.get(port, ()))

    def for_flood(self, vlans: Iterable[int] | None) -> set[UKey]:
        """Flooding flows in ``vlans`` (None = every VLAN)."""
        out: set[UKey] = set()
        if vlans is None:
            for s in self._by_flood.values():
                out |= s
            return out
        for v in vlans:
            fs = self._by_flood.get(v)
            if fs:
                out |= fs
        return out

    def all(self) -> set[UKey]:
        return set(self.ukeys.values())

    # Revalidation -------------------------------------------------------------------
    def revalidate(self, ukeys: Iterable[UKey]) -> tuple[int, int]:
        """Re-translate these flows; modify those whose actions changed and delete those
        whose mask changed. Returns (modified, deleted)."""
        modified = deleted = 0
        for uk in ukeys:
            if self.ukeys.get(uk.match) is not uk:
                continue  # already gone
            x = self.xlate(uk.match.key)
            if x.mask != uk.match.mask or x.learn != uk.learn:
                # A new mask needs a new flow; a new learning side effect (the input
                # port's VLAN changed) needs the next packet as an upcall to learn.
                self._forget(uk)
                self._settle(uk, self.dp.flow_del(uk.match))
                deleted += 1
                continue
            if uk.credits and x.credits != uk.credits:
                self._settle(uk, self.dp.flow_get(uk.match))
            uk.credits = x.credits
            uk.lookups = x.lookups
            if x.actions != uk.actions:
                self.dp.flow_put(uk.match, x.actions)
                modified += 1
            if (
                x.actions != uk.actions
                or x.dst != uk.dst
                or x.out_ports != uk.out_ports
                or x.flood_vlan != uk.flood_vlan
                or x.deps != uk.deps
            ):
                self._unindex(uk)
                self._update(uk, x)
                self._index(uk)
        self.n_modified += modified
        self.n_deleted += deleted
        return modified, deleted

    def sweep(self, now: float, max_idle: float) -> None:
        """A whole sweep at once (tests, management commands)."""
        self.start_sweep(now)
        while not self.continue_sweep(now, max_idle, 1 << 30):
            pass

    @property
    def sweeping(self) -> bool:
        return self._pending is not None

    def start_sweep(self, now: float) -> None:
        """Snapshot the datapath's flows; ``continue_sweep`` then walks them in slices
        so a sweep of 100k flows never stalls the loop."""
        self._gen += 1
        self._n_current = 0
        self._pending = list(self.dp.flow_dump())
        self._pos = 0
        self._sweep_started = now

    def _mark(self, uk: UKey) -> None:
        if uk.gen != self._gen:
            uk.gen = self._gen
            self._n_current += 1

    def continue_sweep(self, now: float, max_idle: float, budget: int) -> bool:
        """Process up to ``budget`` flows of the current sweep: expire idle ones,
        refresh learning from the flows that were hit, adopt unknown ones. Returns True
        when the sweep is complete (then forgets flows that vanished from the datapath)."""
        pending = self._pending
        if pending is None:
            return True
        mac = self.mac
        aging = mac.aging_time
        started = self._sweep_started
        end = min(len(pending), self._pos + budget)
        for i in range(self._pos, end):
            f = pending[i]
            m = f.match
            uk = self.ukeys.get(m)
            if uk is None:
                if self.dp.flow_get(m) is None:
                    continue  # deleted since the snapshot
                uk = self._adopt(f, now)
                if uk is None:
                    continue
                if uk.credits:
                    self._settle(uk, f)  # what it forwarded since the baseline
            elif uk.created > started:
                continue  # re-installed since the snapshot: these stats are not its own
            elif uk.credits:
                self._settle(uk, f)
            used = f.stats.used
            last = used if used else uk.created
            if now - last > max_idle:
                self._forget(uk)
                gone = self.dp.flow_del(m)
                if uk.credits:
                    self._settle(uk, gone)
                self.n_idle_deleted += 1
                continue
            self._mark(uk)
            if used > uk.last_used:
                uk.last_used = used
                if uk.learn is not None and now - used < aging:
                    vlan, src, port = uk.learn
                    mac.learn(vlan, src, port, used)
        self._pos = end
        if end < len(pending):
            return False
        self._pending = None
        if self._n_current != len(self.ukeys):
            for uk in list(self.ukeys.values()):
                if uk.gen != self._gen:
                    self._forget(uk)
        return True

    def forget_all(self) -> None:
        self._pending = None
        self.ukeys.clear()
        self._by_port.clear()
        self._by_dst.clear()
        self._by_flood.clear()
        self._by_dep.clear()


def _discard(index: dict[int, set[UKey]] | dict[MacKey, set[UKey]], k: object, uk: UKey) -> None:
    s = index.get(k)  # type: ignore[call-overload]
    if s is not None:
        s.discard(uk)
        if not s:
            del index[k]  # type: ignore[arg-type]
