"""OpenFlow tables as pure data: classifier, flow-mod semantics, timeouts, groups,
meters, export/import."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.ofproto.oftable import PORTS, OfState, compile_match
from hitless.openflow import (
    ApplyActions,
    Bucket,
    FlowMod,
    GotoTable,
    GroupAction,
    GroupMod,
    Match,
    MeterBand,
    MeterMod,
    Output,
    RemoteProtocolError,
)
from hitless.openflow.constants import (
    BadActionCode,
    BadInstructionCode,
    BadMatchCode,
    ErrorType,
    FlowModCommand,
    FlowModFailedCode,
    FlowModFlags,
    FlowRemovedReason,
    GroupModCommand,
    GroupModFailedCode,
    GroupType,
    MeterFlags,
    MeterModCommand,
    MeterModFailedCode,
)
from hitless.packet.flow import make_key

IP = 0x0800


def out(port: int) -> tuple[ApplyActions, ...]:
    return (ApplyActions((Output(port),)),)


def add(of: OfState, now: float = 0.0, **kw: object) -> None:
    kw.setdefault("command", FlowModCommand.ADD)
    of.flow_mod(FlowMod(**kw), now)  # type: ignore[arg-type]


def lookup(of: OfState, table: int = 0, **fields: int | str) -> tuple[int | None, int]:
    key = int.from_bytes(make_key(**fields), "big")
    rule, mask, _ = of.tables[table].lookup(key, 0)
    return (None if rule is None else rule.priority), mask


def test_highest_priority_match_wins_and_masks_examined_are_reported() -> None:
    of = OfState()
    add(of, priority=10, match=Match.of(eth_type=IP), instructions=out(1))
    add(of, priority=20, match=Match.of(eth_type=IP, ipv4_dst=0x0A000001), instructions=out(2))
    add(of, priority=5, match=Match(), instructions=out(3))
    assert lookup(of, eth_type=IP, ipv4_dst="10.0.0.1")[0] == 20
    assert lookup(of, eth_type=IP, ipv4_dst="10.0.0.2")[0] == 10
    assert lookup(of, eth_type=0x0806)[0] == 5
    # The priority-20 subtable (eth_type + ipv4_dst) was examined for any packet: an
    # ARP packet differs from its rule in eth_type, which alone proves the miss (ipv4_dst
    # is a tracked prefix); with prefixes=none its whole mask.
    _, mask = lookup(of, eth_type=0x0806)
    assert mask == compile_match(Match.of(eth_type=IP))[1]
    assert of.tables[0].track_prefixes(())
    _, mask = lookup(of, eth_type=0x0806)
    assert mask == compile_match(Match.of(eth_type=IP, ipv4_dst=0x0A000001))[1]


def test_lookup_stops_at_subtables_that_cannot_win() -> None:
    of = OfState()
    add(of, priority=100, match=Match.of(in_port=1), instructions=out(2))
    add(of, priority=1, match=Match.of(eth_type=IP, ipv4_dst=0x0A000001), instructions=out(3))
    prio, mask = lookup(of, in_port=1, eth_type=IP, ipv4_dst="10.0.0.1")
    assert prio == 100
    assert mask == compile_match(Match.of(in_port=1))[1]  # ipv4_dst never looked at


def test_arbitrary_masks() -> None:
    of = OfState()
    add(
        of,
        priority=10,
        match=Match.of(eth_type=IP, ipv4_src=(0x0A000000, 0xFF000000)),
        instructions=out(1),
    )
    assert lookup(of, eth_type=IP, ipv4_src="10.9.8.7")[0] == 10
    assert lookup(of, eth_type=IP, ipv4_src="11.9.8.7")[0] is None


def test_add_identical_replaces_and_keeps_counters_unless_reset() -> None:
    of = OfState()
    add(of, priority=10, match=Match.of(in_port=1), instructions=out(2))
    (r,) = of.rules()
    r.credit(5, 500, 1.0)
    add(of, priority=10, match=Match.of(in_port=1), instructions=out(3))
    (r2,) = of.rules()
    assert r2.instructions == out(3) and r2.packets == 5
    add(
        of,
        priority=10,
        match=Match.of(in_port=1),
        instructions=out(3),
        flags=FlowModFlags.RESET_COUNTS,
    )
    assert next(of.rules()).packets == 0
    assert of.n_rules == 1


def test_check_overlap_refuses_same_priority_overlap_only() -> None:
    of = OfState()
    add(of, priority=10, match=Match.of(in_port=1), instructions=out(2))
    with pytest.raises(RemoteProtocolError) as e:
        add(
            of,
            priority=10,
            match=Match.of(eth_type=IP),
            instructions=out(3),
            flags=FlowModFlags.CHECK_OVERLAP,
        )
    assert (e.value.type, e.value.code) == (ErrorType.FLOW_MOD_FAILED, FlowModFailedCode.OVERLAP)
    add(  # different priority: fine; disjoint match: fine
        of,
        priority=11,
        match=Match.of(eth_type=IP),
        instructions=out(3),
        flags=FlowModFlags.CHECK_OVERLAP,
    )
    add(
        of,
        priority=10,
        match=Match.of(in_port=2),
        instructions=out(3),
        flags=FlowModFlags.CHECK_OVERLAP,
    )
    assert of.n_rules == 3


def test_modify_and_delete_strict_and_not() -> None:
    of = OfState()
    add(of, priority=10, match=Match.of(eth_type=IP), instructions=out(1), cookie=0x1)
    add(
        of,
        priority=20,
        match=Match.of(eth_type=IP, ipv4_dst=0x0A000001),
        instructions=out(1),
        cookie=0x2,
    )
    add(of, priority=30, match=Match.of(in_port=5), instructions=out(1), cookie=0x2)
    # non-strict modify of "ip" touches both ip rules, not in_port=5
    of.flow_mod(
        FlowMod(command=FlowModCommand.MODIFY, match=Match.of(eth_type=IP), instructions=out(9)),
        1.0,
    )
    assert sorted((r.priority, r.instructions == out(9)) for r in of.rules()) == [
        (10, True),
        (20, True),
        (30, False),
    ]
    # strict modify needs the same priority and match
    of.flow_mod(
        FlowMod(
            command=FlowModCommand.MODIFY_STRICT,
            priority=20,
            match=Match.of(eth_type=IP),
            instructions=out(7),
        ),
        1.0,
    )
    assert not any(r.instructions == out(7) for r in of.rules())
    # cookie-filtered delete
    of.flow_mod(FlowMod(command=FlowModCommand.DELETE, cookie=0x2, cookie_mask=0xFF), 1.0)
    assert [r.priority for r in of.rules()] == [10]
    # out_port filter
    add(of, priority=40, match=Match.of(in_port=6), instructions=out(4))
    of.flow_mod(FlowMod(command=FlowModCommand.DELETE, table_id=0xFF, out_port=4), 1.0)
    assert [r.priority for r in of.rules()] == [10]
    of.flow_mod(
        FlowMod(command=FlowModCommand.DELETE_STRICT, priority=10, match=Match.of(eth_type=IP)),
        1.0,
    )
    assert of.n_rules == 0


def test_errors_say_what_is_wrong() -> None:
    of = OfState()
    cases = [
        (
            {"match": Match.of(ipv4_dst=1), "instructions": out(1)},
            (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ),
        ),
        (
            {"table_id": 3, "instructions": (GotoTable(2),)},
            (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_TABLE_ID),
        ),
        (
            {"instructions": (ApplyActions((GroupAction(7),)),)},
            (ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_GROUP),
        ),
        (
            {"instructions": out(0)},
            (ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_PORT),
        ),
        (
            {"table_id": 254, "instructions": out(1)},
            (ErrorType.FLOW_MOD_FAILED, FlowModFailedCode.BAD_TABLE_ID),
        ),
    ]
    for kw, want in cases:
        with pytest.raises(RemoteProtocolError) as e:
            add(of, **kw)
        assert (e.value.type, e.value.code) == want, kw
    assert of.n_rules == 0


def test_idle_and_hard_timeouts_with_flow_removed() -> None:
    of = OfState()
    add(
        of,
        10.0,
        priority=1,
        match=Match.of(in_port=1),
        instructions=out(2),
        idle_timeout=5,
        flags=FlowModFlags.SEND_FLOW_REM,
    )
    add(of, 10.0, priority=2, match=Match.of(in_port=2), instructions=out(1), hard_timeout=8)
    assert of.next_expiry() == 15.0
    r1 = next(r for r in of.rules() if r.priority == 1)
    r1.credit(1, 60, 14.0)  # a hit keeps it alive
    assert of.expire(16.0) == (set(), [])
    changed, removed = of.expire(18.5)
    assert changed == {0} and removed == []  # hard timeout, no SEND_FLOW_REM
    changed, removed = of.expire(19.0)
    assert [(x.rule.priority, x.reason) for x in removed] == [(1, FlowRemovedReason.IDLE_TIMEOUT)]
    assert of.n_rules == 0 and of.next_expiry() is None


def test_groups_and_meters_mods_and_errors() -> None:
    of = OfState()
    gm = GroupMod(
        command=GroupModCommand.ADD,
        group_type=GroupType.SELECT,
        group_id=1,
        buckets=(Bucket(weight=1, actions=(Output(1),)), Bucket(weight=1, actions=(Output(2),))),
    )
    of.group_mod(gm, 0.0)
    with pytest.raises(RemoteProtocolError) as e:
        of.group_mod(gm, 0.0)
    assert e.value.code == GroupModFailedCode.GROUP_EXISTS
    add(of, priority=1, instructions=(ApplyActions((GroupAction(1),)),))
    # deleting the group deletes the rules that use it
    changed, _ = of.group_mod(GroupMod(command=GroupModCommand.DELETE, group_id=1), 0.0)
    assert changed == {0} and of.n_rules == 0
    mm = MeterMod(
        command=MeterModCommand.ADD,
        flags=MeterFlags.KBPS,
        meter_id=1,
        bands=(MeterBand(rate=1000),),
    )
    of.meter_mod(mm, 0.0)
    assert of.meters[1].bands[0].rate == 1000
    with pytest.raises(RemoteProtocolError):
        of.meter_mod(
            MeterMod(command=MeterModCommand.MODIFY, flags=MeterFlags.KBPS, meter_id=2), 0.0
        )


def test_meters_stop_at_the_limit_meter_features_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bridge holds at most MAX_METERS meters (what meter-features says, Open vSwitch's
    userspace limit); the next add is OFPMMFC_OUT_OF_METERS, a delete makes room again.
    (The limit is lowered here: 262,144 meters would only make the test slow.)"""
    from hitless.ofproto import oftable

    assert oftable.MAX_METERS == 262144
    monkeypatch.setattr(oftable, "MAX_METERS", 3)
    of = OfState()

    def meter(cmd: int, mid: int) -> MeterMod:
        return MeterMod(command=cmd, flags=MeterFlags.PKTPS, meter_id=mid,
                        bands=(MeterBand(rate=10, burst_size=5),))  # fmt: skip

    for mid in (1, 70000, 300000):  # ids are not bounded by the count
        of.meter_mod(meter(MeterModCommand.ADD, mid), 0.0)
    with pytest.raises(RemoteProtocolError) as e:
        of.meter_mod(meter(MeterModCommand.ADD, 4), 0.0)
    assert e.value.code == MeterModFailedCode.OUT_OF_METERS and 4 not in of.meters
    of.meter_mod(meter(MeterModCommand.MODIFY, 1), 0.0)  # a modify needs no room
    of.meter_mod(MeterMod(command=MeterModCommand.DELETE, meter_id=70000), 0.0)
    of.meter_mod(meter(MeterModCommand.ADD, 4), 0.0)
    assert sorted(of.meters) == [1, 4, 300000]


def test_export_import_round_trip_keeps_counters_and_remaining_timeouts() -> None:
    of = OfState()
    add(of, 100.0, priority=3, match=Match.of(eth_type=IP), instructions=out(1), idle_timeout=30)
    of.group_mod(
        GroupMod(
            command=GroupModCommand.ADD,
            group_type=GroupType.ALL,
            group_id=4,
            buckets=(Bucket(actions=(Output(1),)),),
        ),
        100.0,
    )
    next(of.rules()).credit(7, 700, 110.0)
    data = of.export_records(120.0)
    other = OfState()
    other.import_records(data, 5000.0)
    (r,) = other.rules()
    assert (r.packets, r.bytes, r.priority, r.match) == (7, 700, 3, Match.of(eth_type=IP))
    assert r.expiry() == pytest.approx(5000.0 + 20.0)  # 10 s idle of 30 already spent
    assert other.groups[4].buckets == (Bucket(actions=(Output(1),)),)
    again = other.export_records(5000.0)
    assert msgspec.structs.replace(again, rules=data.rules) == data  # groups: ages kept
    assert again.rules[0].idle == pytest.approx(10.0)
    assert msgspec.structs.replace(again.rules[0], idle=10.0) == data.rules[0]


def test_prerequisites_are_checked_per_value_not_only_per_shape() -> None:
    """compile_match remembers match shapes whose prerequisites held; the same fields
    with another prerequisite value (UDP ports under ip_proto=6) are still refused,
    and the remembered shape still compiles to its own key."""
    tcp = Match.of(eth_type=IP, ip_proto=6, tcp_dst=80)
    assert compile_match(tcp) == compile_match(Match.of(eth_type=IP, ip_proto=6, tcp_dst=80))
    with pytest.raises(RemoteProtocolError) as e:
        compile_match(Match.of(eth_type=IP, ip_proto=17, tcp_dst=80))
    assert (e.value.type, e.value.code) == (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ)
    with pytest.raises(RemoteProtocolError) as e:
        compile_match(Match.of(eth_type=0x86DD, ipv4_dst=1))
    assert e.value.code == BadMatchCode.BAD_PREREQ
    compile_match(Match.of(eth_type=IP, ipv4_dst=1))  # the same fields, right value
    for vid, ok in ((0x1000 | 5, True), (5, False), (0x1000 | 7, True)):  # vlan_pcp: a tag
        m = Match.of(vlan_vid=vid, vlan_pcp=3)
        if ok:
            compile_match(m)
        else:
            with pytest.raises(RemoteProtocolError):
                compile_match(m)
    assert compile_match(tcp) != compile_match(Match.of(eth_type=IP, ip_proto=6, tcp_dst=81))


_PORT_RULES = st.lists(
    st.tuples(
        st.integers(1, 50),  # priority
        st.sampled_from([None, 17, 6]),  # ip_proto (None: any IP)
        st.one_of(st.none(), st.sampled_from([53, 67, 68, 546, 547, 5000, 0x8000])),  # tp_src
        st.one_of(st.none(), st.sampled_from([53, 67, 547, 7100, 7101])),  # tp_dst
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(rules=_PORT_RULES, packets=st.lists(
    st.tuples(st.sampled_from([17, 6, 1]), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
              st.integers(0, 0xFFFFFFFF)), min_size=1, max_size=8))  # fmt: skip
def test_megaflow_masks_over_ports_are_sound(
    rules: list[tuple[int, int | None, int | None, int | None]],
    packets: list[tuple[int, int, int, int]],
) -> None:
    """Whatever a lookup leaves wildcarded (only some port bits, when a subtable misses)
    may take any value: every packet agreeing on the reported mask finds the same rule.
    (It fails if a miss leaves out the port bits that tell the packet from a rule.)"""
    of = OfState()
    for prio, proto, sport, dport in rules:
        fields: dict[str, int] = {"eth_type": IP}
        if proto is not None or sport is not None or dport is not None:
            fields["ip_proto"] = proto or 17
            if sport is not None:
                fields["udp_src" if fields["ip_proto"] == 17 else "tcp_src"] = sport
            if dport is not None:
                fields["udp_dst" if fields["ip_proto"] == 17 else "tcp_dst"] = dport
        add(of, priority=prio, match=Match.of(**fields), instructions=out(prio))
    table = of.tables[0]
    for proto, sport, dport, noise in packets:
        key = int.from_bytes(
            make_key(eth_type=IP, ip_proto=proto, tp_src=sport, tp_dst=dport), "big"
        )
        rule, mask, _ = table.lookup(key, 0)
        # the free port bits set as random noise, and as each rule's own ports (the
        # packets most likely to be told apart wrongly)
        pattern = int.from_bytes(noise.to_bytes(4, "big") * 64, "big")
        for fill in [pattern, *(r.key for r in table)]:
            other = key ^ ((key ^ fill) & PORTS & ~mask)
            rule2, _, _ = table.lookup(other, 0)
            assert rule2 is rule, (hex(key), hex(other), hex(mask))


def test_a_client_port_is_not_in_the_megaflow_of_a_miss() -> None:
    """OVN's DHCPv6 rule (udp,tp_src=546,tp_dst=547) ahead of a catch-all: a UDP packet
    from port 45245 to 7100 needs one port bit to be told from it, not all 32."""
    of = OfState()
    dhcp = Match.of(eth_type=IP, ip_proto=17, udp_src=546, udp_dst=547)
    add(of, priority=110, match=dhcp, instructions=out(1))
    add(of, priority=100, match=Match.of(eth_type=IP), instructions=out(2))
    prio, mask = lookup(of, eth_type=IP, ip_proto=17, tp_src=45245, tp_dst=7100)
    assert prio == 100
    assert bin(mask & PORTS).count("1") == 1
    # No UDP rule agrees with a TCP packet outside the ports: none of its port bits.
    prio, mask = lookup(of, eth_type=IP, ip_proto=6, tp_src=45245, tp_dst=7100)
    assert prio == 100 and mask & PORTS == 0


def test_a_rollback_keeps_the_tables_prefix_tracking() -> None:
    """A bundle's snapshot/restore keeps each table's tracked prefixes (Flow_Table
    prefixes): the restored table un-wildcards a miss as before."""
    from hitless.ofproto.oftable import OfState

    of = OfState()
    assert not of.tables[0].track_prefixes(("ip_dst", "ip_src"))  # the default
    assert of.tables[0].track_prefixes(("ip_dst",))
    snap = of.snapshot()
    of.restore(snap)
    assert of.tables[0].tracked == snap.tables[0].tracked != OfState().tables[0].tracked
    assert not of.tables[0].track_prefixes(("ip_dst",))  # unchanged: nothing to redo


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(
    st.tuples(st.booleans(), st.integers(1, 4), st.sampled_from([None, 1, 2]),
              st.sampled_from([None, 17, 6])),
    min_size=1, max_size=30))  # fmt: skip
def test_lookup_finds_the_best_rule_after_any_adds_and_removes(
    ops: list[tuple[bool, int, int | None, int | None]],
) -> None:
    """The classifier's per-subtable highest priority follows removals (it is counted,
    not recomputed from every rule): every lookup gives the best matching rule, as a
    scan of all rules would."""
    of = OfState()
    for is_add, prio, port, proto in ops:
        fields: dict[str, int] = {"eth_type": IP}
        if port is not None:
            fields["in_port"] = port
        if proto is not None:
            fields["ip_proto"] = proto
        cmd = FlowModCommand.ADD if is_add else FlowModCommand.DELETE_STRICT
        add(of, command=cmd, priority=prio, match=Match.of(**fields), instructions=out(prio))
        table = of.tables[0]
        for in_port in (1, 2, 3):
            for ip_proto in (17, 6, 1):
                key = int.from_bytes(
                    make_key(in_port=in_port, eth_type=IP, ip_proto=ip_proto), "big"
                )
                best = max((r.priority for r in table if key & r.mask == r.key), default=None)
                rule, _, _ = table.lookup(key, 0)
                assert (rule.priority if rule is not None else None) == best


def test_removing_a_subtables_best_rule_lowers_its_priority_to_the_next() -> None:
    of = OfState()
    ip_udp = {"eth_type": IP, "ip_proto": 17}
    for prio in (1, 3, 5):  # one subtable (eth_type, ip_proto), three priorities
        add(of, priority=prio, match=Match.of(**ip_udp), instructions=out(prio))
    add(of, priority=2, match=Match.of(eth_type=IP), instructions=out(2))  # another
    assert lookup(of, eth_type=IP, ip_proto=17)[0] == 5
    add(of, command=FlowModCommand.DELETE_STRICT, priority=5, match=Match.of(**ip_udp))
    assert lookup(of, eth_type=IP, ip_proto=17)[0] == 3
    add(of, command=FlowModCommand.DELETE_STRICT, priority=3, match=Match.of(**ip_udp))
    assert lookup(of, eth_type=IP, ip_proto=17)[0] == 2
    add(of, command=FlowModCommand.DELETE_STRICT, priority=2, match=Match.of(eth_type=IP))
    assert lookup(of, eth_type=IP, ip_proto=17)[0] == 1
