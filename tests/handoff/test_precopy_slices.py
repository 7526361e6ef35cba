"""The pre-copy built in slices while the switch keeps serving: whatever happens between
two slices (hosts learned, moved, forgotten; megaflows added and removed; OpenFlow rules
added, replaced, modified, deleted, expired; counters moving), the pre-copy plus the
freeze's delta give the new side exactly the old side's state, and the digests agree.
Also: the pieces the job sends are, concatenated, a snapshot like any other."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.datapath.dummy import DummyDatapath
from hitless.handoff import engine
from hitless.handoff.protocol import FEATURES
from hitless.ofproto.bridge import Bridge
from hitless.openflow import ApplyActions, FlowMod, Match, Output
from hitless.openflow.constants import FlowModCommand, OxmField
from hitless.openflow.match import Oxm
from hitless.openflow.nxm import ERICOXM
from hitless.state import ledger, parts, records, snapshot
from tests.handoff.pair import B, Clock, Handoff, Side, handoff, old_switch, send
from tests.handoff.test_openflow_delta import SRC, rule, tables, traffic

SLICE = 2  # items per slice: many slices, so changes land between them


def sliced_handoff(sw: Side, clock: Clock, between_slices: list[Callable[[], None]]) -> Handoff:
    """A pre-copy built a slice per step with one change between steps; the new side
    as restored (a commit would sweep: re-learn from recent flows, drop stale ones)."""
    return handoff(sw, clock, between_slices=between_slices, adopt=False)


@pytest.fixture(autouse=True)
def small_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "SLICE_ITEMS", SLICE)


def learned(clock: Clock, n_hosts: int) -> tuple[Side, DummyDatapath, Bridge]:
    sw, dp, bridge = old_switch(clock)
    for i in range(n_hosts):
        send(dp, bridge, clock, 1 + i % 3, 0x020000000000 + i, B)
    return sw, dp, bridge


def test_the_precopy_takes_many_slices_and_decodes_like_a_whole_snapshot() -> None:
    clock = Clock()
    sw, dp, bridge = learned(clock, 20)
    for i in range(10):
        bridge.flow_mod(rule(i), clock())
    job = sw.exporter().precopy_job(clock(), False, 3)
    steps = 1
    while not job.step(float("-inf")):
        steps += 1
    assert steps > (20 + 20 + 11) // SLICE  # flows, MACs, rules: a slice each per step
    _, state = snapshot.decode(b"".join(job.parts()))
    assert state == sw.state()  # the same as the whole state taken at once
    assert job.counts == snapshot.summary(state)


def test_a_precopy_for_version_2_drops_what_version_2_cannot_read() -> None:
    clock = Clock()
    sw, _, _ = learned(clock, 3)
    job = sw.exporter().precopy_job(clock(), False, 2)
    while not job.step(float("inf")):
        pass
    env, state = snapshot.decode(b"".join(job.parts()))
    assert env.version == 2
    # The same as the whole state encoded for version 2 by the migrations.
    ref = snapshot.encode(sw.state(), software="t", taken=0.0, version=2)
    assert state == snapshot.decode(ref)[1]


MAC_OPS = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.integers(0, 12),
        st.sampled_from(["bcast", "uni", "del", "forget", "age"]),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(MAC_OPS)
def test_random_changes_between_slices(ops: list[tuple[int, int, str]]) -> None:
    clock = Clock()
    sw, dp, bridge = learned(clock, 10)

    def change(port: int, host: int, op: str) -> Callable[[], None]:
        def apply() -> None:
            clock.t += 0.5
            src = 0x020000000000 + host
            if op == "bcast":
                send(dp, bridge, clock, port, src, B)
            elif op == "uni":
                send(dp, bridge, clock, port, src, 0x020000000000 + (host + 1) % 13)
            elif op == "del":
                flows = list(dp.flow_dump())
                if flows:
                    dp.flow_del(flows[host % len(flows)].match)
            elif op == "forget":
                bridge.mac.forget([(0, src.to_bytes(6, "big"))])
            else:
                bridge.run(clock())

        return apply

    h = sliced_handoff(sw, clock, [change(*op) for op in ops])
    assert ledger.state_digest(h.new.state()) == ledger.state_digest(sw.state())


RULE_OPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "replace", "modify", "delete", "traffic", "expire"]),
        st.integers(0, 9),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(RULE_OPS)
def test_random_openflow_changes_between_slices(ops: list[tuple[str, int]]) -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(8):
        bridge.flow_mod(rule(i, 2 + i % 2), clock())
        traffic(dp, bridge, clock, i, 2)
    bridge.flow_mod(rule(8, idle_timeout=5), clock())

    def change(op: str, i: int) -> Callable[[], None]:
        def apply() -> None:
            clock.t += 0.5
            if op == "add":
                bridge.flow_mod(rule(i, 2), clock())
            elif op == "replace":
                bridge.flow_mod(rule(i, 3, cookie=i), clock())
            elif op == "modify":
                bridge.flow_mod(rule(i, 1 + i % 3, command=FlowModCommand.MODIFY), clock())
            elif op == "delete":
                bridge.flow_mod(rule(i, command=FlowModCommand.DELETE), clock())
            elif op == "traffic":
                traffic(dp, bridge, clock, i, 1 + i % 3)
            else:
                clock.t += 6  # rule 8's idle timeout passes
                bridge.run(clock())
            bridge.commit_openflow()

        return apply

    h = sliced_handoff(sw, clock, [change(*op) for op in ops])
    assert tables(h.new.bridges["br0"].bridge, clock()) == tables(bridge, clock())


def test_a_rule_deleted_before_its_slice_is_neither_sent_nor_lost() -> None:
    clock = Clock()
    sw, dp, bridge = old_switch(clock)
    for i in range(10):
        bridge.flow_mod(rule(i), clock())

    def delete_last() -> None:
        bridge.flow_mod(rule(9, command=FlowModCommand.DELETE_STRICT), clock())

    def re_add_last() -> None:
        bridge.flow_mod(rule(9, 3), clock())

    h = sliced_handoff(sw, clock, [delete_last, re_add_last])
    assert h.steps > 3
    new_bridge = h.new.bridges["br0"].bridge
    assert tables(new_bridge, clock()) == tables(bridge, clock())
    assert any(r.match == rule(9).match for r in new_bridge.of.rules())
    assert SRC  # the rules match on eth_src = SRC + i


@pytest.mark.parametrize("n", [0, 1, 15, 16, 255, 256, 65535, 65536])
def test_record_lists_encode_like_whole_lists(n: int) -> None:
    rows = [records.MacEntryV1(i % 4096, i.to_bytes(6, "big"), i % 7, 0.5) for i in range(n)]
    rl = parts.RecordList()
    for i in range(0, n, 1000):
        rl.extend(rows[i : i + 1000])
    assert b"".join(rl.parts()) == msgspec.msgpack.encode(rows)


@pytest.mark.parametrize("size", [0, 255, 256, 65535, 65536, 70000])
def test_a_message_framed_around_pieces_is_the_whole_message(size: int) -> None:
    from hitless.handoff.protocol import HandoffConnection, PreCopy, Role

    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    pieces = [data[: size // 3], data[size // 3 :]]
    whole = HandoffConnection(Role.OLD)
    whole.state = whole.state.__class__.NEGOTIATED
    framed = HandoffConnection(Role.OLD)
    framed.state = framed.state.__class__.NEGOTIATED
    assert b"".join(framed.send_precopy(pieces)) == whole.send(PreCopy(data))


def test_a_splice_marker_that_went_missing_is_refused() -> None:
    sp = parts.Splicer()
    sp.placeholder(parts.RecordList())
    with pytest.raises(ValueError, match="placeholder"):
        sp.encode({"no": "marker"})


def _nd_rule() -> FlowMod:
    """A rule on nd_reserved (Ericsson's OXM class), which a peer without the feature
    "field:nd_ext" cannot restore."""
    nd = Match(
        (Oxm(OxmField.ETH_TYPE, 0x86DD), Oxm(OxmField.IP_PROTO, 58),
         Oxm(OxmField.ICMPV6_TYPE, 135), Oxm(1, 5, oxm_class=ERICOXM, width=4))
    )  # fmt: skip
    return FlowMod(command=FlowModCommand.ADD, priority=50, match=nd,
                   instructions=(ApplyActions((Output(2),)),))  # fmt: skip


def _steps_until_refused(job: engine.PrecopyJob) -> int:
    steps = 1
    with pytest.raises(engine.HandoffRefused, match="nd_reserved") as refused:
        while not job.step(float("-inf")):
            steps += 1
    assert "bridge br0" in str(refused.value)
    return steps


def test_what_a_peer_cannot_take_is_looked_for_a_slice_at_a_time() -> None:
    """Towards a peer without "field:nd_ext" and "field:nsh" (c0a5a15: a downgrade) every
    rule is looked at for nd_reserved/nd_options_type and NSH fields, and every
    megaflow's actions for what the peer cannot read: a slice at a time as the pre-copy
    copies them, never all in one step (all 100,001 rules in one step held the serving
    loop 45 ms of CPU). The rule on
    nd_reserved is still refused before anything is frozen, once its slice comes."""
    clock = Clock()
    sw, dp, bridge = learned(clock, 20)
    for i in range(40):
        bridge.flow_mod(rule(i), clock())
    bridge.flow_mod(_nd_rule(), clock())
    features = tuple(f for f in FEATURES if f not in ("field:nd_ext", "field:nsh"))  # c0a5a15
    steps = _steps_until_refused(sw.exporter(features).precopy_job(clock(), True, 7))
    assert steps > (20 + 20 + 40) // SLICE  # megaflows and MACs copied before the rules
    # each step of a pre-copy that is taken looks at a slice of rules at most
    bridge.flow_mod(FlowMod(command=FlowModCommand.DELETE_STRICT, priority=50,
                            match=_nd_rule().match, table_id=0), clock())  # fmt: skip
    looked: set[int] = set()
    real = engine.rules_use_field_of

    def counted(rules: list[Any], oxm_class: int, experimenter: int | None = None) -> bool:
        looked.update(id(r) for r in rules)
        return real(rules, oxm_class, experimenter)

    job = sw.exporter(features).precopy_job(clock(), True, 7)
    total = 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "rules_use_field_of", counted)
        while not job.step(float("-inf")):
            assert len(looked) <= SLICE
            total += len(looked)
            looked.clear()
    assert total == job.counts["openflow_rules"] == 41  # each rule once, and NORMAL
    assert sw.exporter(features).precopy(clock(), True).bridges[0].name == "br0"


def test_each_step_says_what_it_did(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-step profile (``PrecopyJob.last_step``): the parts each step worked on
    with their items, adding up to what was copied, and the job's tables that grew."""
    monkeypatch.setattr(engine, "RESIZE_NOTED", 1)
    clock = Clock()
    sw, _, bridge = learned(clock, 20)
    for i in range(30):
        bridge.flow_mod(rule(i), clock())
    job = sw.exporter().precopy_job(clock(), True, 7)
    items: dict[str, int] = {}
    grew: set[str] = set()
    said: list[str] = []
    done = False
    while not done:
        done = job.step(float("-inf"))
        prof = job.last_step
        assert prof.slices == 1 and prof.items, str(prof)
        for part, n in prof.items.items():
            items[part] = items.get(part, 0) + n
        grew.update(name for name, was, now in prof.resized if now > was)
        said.append(str(prof))
    n_flows, n_rules = job.counts["datapath_flows"], job.counts["openflow_rules"]
    assert items["rules br0"] == n_rules == 31  # and NORMAL
    assert items["flows br0"] == items["counters br0"] == n_flows > 0
    assert items["macs br0"] == job.counts["mac_entries"] == 20
    assert items["instant"] == n_rules + n_flows + 20
    assert {"rule index br0", "ledger flows br0", "ledger macs br0"} <= grew, grew
    payload = job.parts()[1:]  # after the envelope's head
    assert items["checksum"] == sum(len(p) for p in payload)  # bytes hashed
    assert said[-1].endswith(f", envelope {len(payload) + 1}"), said[-1]
    assert any(t.startswith("1 slices: rules br0 2; grew rule index br0 ") for t in said), said
