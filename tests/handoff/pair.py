"""Two handoff engines and in-memory bridges in one process (h11's ConnectionPair for
the handoff): the old side is an ``ExportEngine`` over bridges on the dummy datapath,
the new side an ``ImportEngine``; what passes between them is encoded and decoded as
the handoff carries it (the pre-copy's pieces, the delta's envelope). No ``Switch``, no
socket, no daemon: what the engines do is all there is.

``handoff(old, clock, ...)`` runs pre-copy, prepare, freeze, restore and verification
(digests and counts must agree) with changes injected where asked: between two slices
of the pre-copy, or between the pre-copy and the freeze."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hitless.config.model import BridgeConfig, InterfaceConfig, PortConfig
from hitless.datapath import Datapath
from hitless.datapath.dummy import DummyDatapath
from hitless.handoff import engine
from hitless.handoff.engine import (
    ExportEngine,
    FrozenState,
    ImportEngine,
    adopt_switch_extras,
    switch_extras,
)
from hitless.ofproto.bridge import Bridge
from hitless.openflow import ApplyActions, FlowMod, Match, Output
from hitless.openflow.constants import FlowModCommand
from hitless.state import records, snapshot
from hitless.state.ledger import state_digest

PORTS = ["p1", "p2", "p3"]
CFG = BridgeConfig(
    "br0",
    "dummy",
    ports={p: PortConfig(p, (InterfaceConfig(p),)) for p in PORTS},
)
MAX_IDLE = 600.0  # seconds: what the switch would hand every bridge from max-idle=600000
B = 0xFFFFFFFFFFFF  # broadcast
ALL_FEATURES = ("delta", "openflow-delta")


class Clock:
    """A test clock: ``t`` moves only when a test moves it."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def one_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One fake clock for both sides: the new side's dummy datapaths run on it too (as
    CLOCK_MONOTONIC is one clock for both processes)."""
    c = Clock()

    class ClockedDummy(DummyDatapath):
        def __init__(self, name: str, clock: Any = c) -> None:
            super().__init__(name, clock)

    monkeypatch.setattr(engine, "provider", lambda dp_type: ClockedDummy)
    return c


@dataclass(slots=True)
class Held:
    """One bridge with its datapath (what ``engine.Running`` asks for)."""

    bridge: Bridge
    datapath: Datapath


@dataclass
class Side:
    """A set of bridges and a clock: the old side before the handoff, or what the new
    side holds after it. Also what switch extras see (``clock``, ``unreachable_since``)."""

    clock: Clock
    bridges: dict[str, Held] = field(default_factory=dict)
    unreachable_since: dict[str, float] = field(default_factory=dict)

    def add(self, cfg: BridgeConfig = CFG) -> tuple[DummyDatapath, Bridge]:
        dp = DummyDatapath(cfg.name, clock=self.clock)
        bridge = Bridge(cfg.name, dp)
        bridge.max_idle = MAX_IDLE
        bridge.reconfigure(cfg, self.clock())
        self.bridges[cfg.name] = Held(bridge, dp)
        return dp, bridge

    def exporter(self, features: tuple[str, ...] = ALL_FEATURES) -> ExportEngine:
        ex = ExportEngine(lambda: self.bridges, self.clock)
        ex.use_features(list(features))
        return ex

    def state(self) -> records.State:
        """The whole learned state as a fresh exporter sees it."""
        return self.exporter().export(self.clock(), final=False)[0]


def old_switch(clock: Clock) -> tuple[Side, DummyDatapath, Bridge]:
    """An old side with one bridge ``br0`` on ports p1-p3."""
    side = Side(clock)
    dp, bridge = side.add()
    return side, dp, bridge


def frame(src: int, dst: int = B) -> bytes:
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + b"\x08\x06" + bytes(28)


def send(dp: DummyDatapath, bridge: Bridge, clock: Clock, port: int, src: int, dst: int) -> None:
    dp.receive(port, frame(src, dst))
    bridge.run(clock())
    dp.pop_sent()


# OpenFlow: rule i matches eth_src SRC + i

SRC = 0x020000000000


def rule(i: int, port: int = 2, *, command: int = FlowModCommand.ADD, **kw: Any) -> FlowMod:
    return FlowMod(
        command=command,
        priority=100,
        match=Match.of(eth_src=SRC + i),
        instructions=(ApplyActions((Output(port),)),),
        **kw,
    )


def traffic(dp: DummyDatapath, bridge: Bridge, clock: Clock, i: int, n: int = 1) -> None:
    for _ in range(n):
        dp.receive(1, frame(SRC + i))
        bridge.run(clock())
    dp.pop_sent()


def tables(bridge: Bridge, now: float) -> list[tuple[Any, ...]]:
    """Every rule with its counters (after crediting the datapath's), and groups."""
    of = bridge.export_openflow(now)
    rules = sorted(
        (r.table, r.priority, r.match, r.instructions, r.cookie, r.packet_count, r.byte_count,
         round(r.idle, 6))
        for r in of.rules
    )  # fmt: skip
    groups = sorted((g.group_id, g.type, g.buckets, g.selection) for g in of.groups)
    return [*rules, *groups]


@dataclass
class Handoff:
    """What a handoff left: the old side's freeze, the new engine (its ``restored``
    bridges), the new side as a ``Side``, and how many steps the pre-copy took."""

    frozen: FrozenState
    imp: ImportEngine
    new: Side
    steps: int
    extras: dict[str, Any] = field(default_factory=dict)  # switch extras at the freeze


def handoff(
    old: Side,
    clock: Clock,
    between: Callable[[], None] = lambda: None,
    *,
    features: tuple[str, ...] = ALL_FEATURES,
    version: int = snapshot.CURRENT_VERSION,
    between_slices: list[Callable[[], None]] | None = None,
    adopt: bool = True,
    configure: BridgeConfig | None = None,
) -> Handoff:
    """A whole handoff from ``old`` to a new ImportEngine. With ``between_slices`` the
    pre-copy is built a slice per step with one change after each step (the rest after
    the pre-copy); ``between`` runs between the pre-copy and the freeze. Without the
    "delta" feature, the freeze carries the whole state. Digests and counts must agree.
    With ``adopt``, the new side commits as the daemon does: configures each bridge as
    the old one was (``configure`` instead, if given: the database changed), then meter
    buckets, extras and the handed-over flows' revalidation (``ImportEngine.commit``)."""
    delta = "delta" in features and version in snapshot.DELTA_VERSIONS
    ex = old.exporter(features)
    job = ex.precopy_job(clock(), delta, version)
    todo = list(between_slices or [])
    steps = 1
    while not job.step(float("-inf") if between_slices is not None else float("inf")):
        steps += 1
        if todo:
            todo.pop(0)()
    env, pre = snapshot.decode(b"".join(job.parts()))
    assert env.version == version
    imp = ImportEngine(clock, Bridge)
    imp.prepare(pre, delta, env.taken)
    for change in todo:
        change()
    between()
    frozen = ex.freeze(delta)
    extras = switch_extras(old)
    if delta:
        assert isinstance(frozen.state, records.Delta)
        wire = snapshot.encode_delta(frozen.state, software="t", taken=clock(), version=version)
        digest, counts = imp.restore_delta(snapshot.decode_delta(wire)[1], [])
    else:
        assert isinstance(frozen.state, records.State)
        sent = snapshot.as_version(frozen.state, version)
        wire = snapshot.encode(frozen.state, software="t", taken=clock(), version=version)
        digest, counts = imp.restore(snapshot.decode(wire)[1], [], version)
        frozen.digest = state_digest(sent)  # what handoff_old sends for an older version
        frozen.counts = snapshot.summary(sent)
    assert digest == frozen.digest
    assert counts == frozen.counts
    new = Side(clock)
    for name, (bridge, dp) in imp.restored.items():  # what a commit does, without a database
        new.bridges[name] = Held(bridge, dp)
    if adopt:
        for name, held in new.bridges.items():
            was = old.bridges.get(name)
            cfg = configure if configure is not None else was.bridge.cfg if was else None
            if cfg is not None:
                held.bridge.reconfigure(cfg, clock())
            held.bridge.max_idle = MAX_IDLE  # as Switch.apply_switch_settings at a commit
        imp.commit(new.bridges, clock())
        adopt_switch_extras(new, extras)
    ex.finish(False)
    return Handoff(frozen, imp, new, steps, extras)
