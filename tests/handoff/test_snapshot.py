"""State snapshots: round trips, and clear errors on truncated, foreign, corrupted and
too-new input."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitless.state import ledger, records
from hitless.state import snapshot as snap
from hitless.state.handles import DummyHandlesV1, DummyPortV1, levels_from_wire
from hitless.state.records import (
    BridgeState,
    BridgeV1,
    DatapathV1,
    DatapathV7,
    Envelope,
    FlowV7,
    MacEntryV1,
    MeterV7,
    OfGroup,
    OfRule,
    OpenFlow,
    OutputV7,
    PortV1,
    State,
    StateV1,
)
from hitless.state.snapshot import SnapshotError


def sample_state() -> State:
    return State(
        [
            BridgeState(
                "br0",
                DatapathV7(
                    "dummy",
                    DummyHandlesV1([DummyPortV1(1, "p1", "system")]),
                    [FlowV7(b"\x01" * 102, b"\xff" * 102, (OutputV7(2),), 5, 500, 0.25, 2)],
                ),
                [PortV1("p1", 1), PortV1("br0", 65534, "internal")],
                {"gone": 7},
                [MacEntryV1(0, bytes.fromhex("020000000001"), 1, 12.5)],
            )
        ]
    )


def test_round_trip_keeps_everything() -> None:
    s = sample_state()
    env, back = snap.decode(snap.encode(s, software="0.1.0", taken=5.0))
    assert back == s
    assert env.version == snap.CURRENT_VERSION and env.software == "0.1.0"
    assert ledger.state_digest(back) == ledger.state_digest(s)
    assert snap.summary(back) == {"bridges": 1, "ports": 2, "mac_entries": 1, "datapath_flows": 1}


def test_digest_ignores_counters_and_ages_but_not_forwarding_state() -> None:
    s = sample_state()
    br = s.bridges[0]
    aged = msgspec.structs.replace(
        br, mac_entries=[msgspec.structs.replace(br.mac_entries[0], age=99.0)]
    )
    assert ledger.state_digest(State([aged])) == ledger.state_digest(s)
    moved = msgspec.structs.replace(
        br, mac_entries=[msgspec.structs.replace(br.mac_entries[0], port=2)]
    )
    assert ledger.state_digest(State([moved])) != ledger.state_digest(s)


@pytest.mark.parametrize("cut", [1, 10, 50, -1])
def test_truncated_snapshot_is_reported_as_truncated(cut: int) -> None:
    data = snap.encode(sample_state(), software="0.1.0", taken=0.0)
    with pytest.raises(SnapshotError, match="truncated|not a hitless"):
        snap.decode(data[:cut])


def test_foreign_input_is_not_a_snapshot() -> None:
    for data in (b"{}", b"\x00\x01\x02", msgspec.msgpack.encode({"magic": "x"})):
        with pytest.raises(SnapshotError, match="not a hitless|truncated"):
            snap.decode(data)
    foreign = msgspec.msgpack.encode(Envelope("other-tool", 1, "1", 0.0, "", b""))
    with pytest.raises(SnapshotError, match="magic"):
        snap.decode(foreign)


def test_corrupted_payload_fails_the_checksum() -> None:
    data = bytearray(snap.encode(sample_state(), software="0.1.0", taken=0.0))
    i = data.find(b"br0")
    data[i] = ord("X")
    with pytest.raises(SnapshotError, match="checksum"):
        snap.decode(bytes(data))


def test_newer_version_names_the_versions_and_what_to_do() -> None:
    payload = b"\x80"
    env = Envelope(snap.MAGIC, 99, "9.9.9", 0.0, snap.payload_checksum(payload), payload)
    with pytest.raises(SnapshotError, match="version 99.*reads versions up to"):
        snap.decode(msgspec.msgpack.encode(env))


def test_payload_of_the_wrong_shape_is_invalid_not_a_crash() -> None:
    payload = msgspec.msgpack.encode({"bridges": "nope"})
    env = Envelope(snap.MAGIC, 1, "0", 0.0, snap.payload_checksum(payload), payload)
    with pytest.raises(SnapshotError, match="invalid"):
        snap.decode(msgspec.msgpack.encode(env))


@given(st.binary(max_size=300))
def test_random_bytes_raise_snapshot_error_only(data: bytes) -> None:
    try:
        snap.decode(data)
    except SnapshotError:
        pass


GOLDEN_V7 = (
    __import__("pathlib").Path(__file__).parents[1] / "golden" / "state-v7.snap"
).read_bytes()


@given(st.integers(0, len(GOLDEN_V7) - 1))
def test_a_truncated_version_7_snapshot_says_truncated(cut: int) -> None:
    with pytest.raises(SnapshotError, match="truncated|not a hitless|empty"):
        snap.decode(GOLDEN_V7[:cut])


def _resealed(payload: bytes, version: int = 7) -> bytes:
    """A payload in a valid envelope (the checksum is right): only the records can fail."""
    return msgspec.msgpack.encode(
        Envelope(snap.MAGIC, version, "t", 0.0, snap.payload_checksum(payload), payload)
    )


@given(st.data())
def test_version_7_records_changed_anywhere_decode_or_say_what_is_invalid(data: st.DataObject) -> None:
    """Bytes of the version 7 golden payload changed, cut or inserted behind a right
    checksum (what a buggy or foreign writer sends): the state and delta decoders give
    a state or a ``SnapshotError``, never another exception."""
    payload = bytearray(snap.read_envelope(GOLDEN_V7).payload)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(payload) - 1))
        how = data.draw(st.sampled_from(["set", "cut", "insert"]))
        if how == "set":
            payload[i] = data.draw(st.integers(0, 255))
        elif how == "cut":
            del payload[i : i + data.draw(st.integers(1, 64))]
        else:
            payload[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    for decode in (snap.decode, snap.decode_delta):
        try:
            decode(_resealed(bytes(payload)))
        except SnapshotError:
            pass


@pytest.mark.parametrize(
    ("swap", "what"),
    [
        ((b"\xa8datapath\xa6netdev", b"\xa8datapath\xa6netdex"), "netdex"),  # handles kind
        ((b"\xa6output", b"\xa6outpux"), "outpux"),  # an action no build has
        ((b"\xa3dst", b"\xa3dsx"), "dsx"),  # a NAT kind the ct action does not have
    ],
)
def test_a_version_7_record_of_an_unknown_kind_is_named(swap: tuple[bytes, bytes], what: str) -> None:
    payload = snap.read_envelope(GOLDEN_V7).payload
    assert snap.decode(_resealed(payload))[0].version == 7
    old, new = swap
    assert old in payload
    with pytest.raises(SnapshotError, match=f"version 7 payload is invalid.*{what}"):
        snap.decode(_resealed(payload.replace(old, new, 1)))


def test_version_6_json_actions_that_are_not_actions_are_refused_on_the_way_up() -> None:
    """A version 6 writer's megaflow with an action this build does not know (or with
    bad hex) is a ``SnapshotError`` naming it, not a crash or a silent drop."""
    s6 = snap.as_version(sample_state(), 6)
    for bad in ([["teleport", 1]], [["set_field", "eth_src", "zz", None]], [["output"]]):
        br = s6.bridges[0]  # type: ignore[attr-defined]
        flow = msgspec.structs.replace(br.datapath.flows[0], actions=bad)
        dp = msgspec.structs.replace(br.datapath, flows=[flow])
        state = msgspec.structs.replace(s6, bridges=[msgspec.structs.replace(br, datapath=dp)])
        payload = msgspec.msgpack.encode(state)
        with pytest.raises(SnapshotError, match="actions"):
            snap.decode(_resealed(payload, 6))


def test_readable_versions_lists_current_first() -> None:
    assert snap.readable_versions()[0] == snap.CURRENT_VERSION


class StateV99(msgspec.Struct, frozen=True):
    """A made-up next format: every bridge gains a field."""

    bridges: list[dict] = []


def test_migrations_chain_up_and_down_through_a_new_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the next format step must provide, exercised with a made-up version: a
    build whose current version is N+1 reads and writes N through its migrations."""
    cur = snap.CURRENT_VERSION
    nxt = cur + 1

    def up(obj: dict) -> dict:
        return {"bridges": [dict(b, colour="blue") for b in obj["bridges"]]}

    def down(obj: dict) -> dict:
        if any(b.get("colour") not in (None, "blue") for b in obj["bridges"]):
            raise SnapshotError("a non-blue bridge cannot be written as version 1")
        return {"bridges": [{k: v for k, v in b.items() if k != "colour"} for b in obj["bridges"]]}

    monkeypatch.setitem(snap.STATE_TYPES, nxt, StateV99)
    monkeypatch.setitem(snap.MIGRATE_UP, cur, up)
    monkeypatch.setitem(snap.MIGRATE_DOWN, nxt, down)
    old_bytes = snap.encode(sample_state(), software="old", taken=0.0)
    obj = snap.convert(msgspec.to_builtins(sample_state()), cur, nxt)
    assert all(b["colour"] == "blue" for b in obj["bridges"])
    back = snap.convert(obj, nxt, cur)
    assert msgspec.convert(back, snap.STATE_TYPES[cur]) == sample_state()
    # The old format still decodes, untouched by the new version's existence.
    assert snap.decode(old_bytes)[1] == sample_state()
    red = {"bridges": [dict(b, colour="red") for b in obj["bridges"]]}
    with pytest.raises(SnapshotError, match="non-blue"):
        snap.convert(red, nxt, cur)
    with pytest.raises(SnapshotError, match="no migration"):
        snap.convert(obj, nxt + 1, cur)


NORMAL_RULE = OfRule(
    0,
    0,
    bytes.fromhex("0001000400000000"),
    bytes.fromhex("000400180000000000000010fffffffa0000000000000000"),
    0,
    0,
    0,
    0,
    0,
    10.0,
    0.5,
    42,
    4200,
    10.0,
)
DROP_RULE = OfRule(
    0, 100, bytes.fromhex("0001000c800000040000000100000000"), b"", 7, 0, 0, 1, 0, 3.0, 3.0, 0, 0,
    3.0,
)


def with_openflow(of: OpenFlow | None) -> State:
    s = sample_state()
    return State([msgspec.structs.replace(s.bridges[0], openflow=of)])


def test_a_version_1_snapshot_reads_as_the_default_openflow_table() -> None:
    v1 = StateV1([BridgeV1("br0", DatapathV1("dummy", {}), [PortV1("p1", 1)])])
    payload = msgspec.msgpack.encode(v1)  # as a version 1 build writes it
    data = msgspec.msgpack.encode(
        records.Envelope(snap.MAGIC, 1, "old", 0.0, snap.payload_checksum(payload), payload)
    )
    _, state = snap.decode(data)
    assert isinstance(state, State) and state.bridges[0].openflow is None
    assert ledger.state_digest(snap.as_version(state, 1)) == ledger.state_digest(v1)


def test_writing_version_1_keeps_a_default_table_and_refuses_real_rules() -> None:
    for of in (None, OpenFlow(), OpenFlow([NORMAL_RULE])):
        data = snap.encode(with_openflow(of), software="t", taken=0.0, version=1)
        assert snap.read_envelope(data).version == 1
        assert snap.decode(data)[1].bridges[0].openflow is None
    for of in (
        OpenFlow([NORMAL_RULE, DROP_RULE]),
        OpenFlow([DROP_RULE]),
        OpenFlow([NORMAL_RULE], groups=[OfGroup(1, 0, b"", 0.0, 0, 0)]),
    ):
        with pytest.raises(SnapshotError, match="OpenFlow state.*version 1"):
            snap.encode(with_openflow(of), software="t", taken=0.0, version=1)


def test_openflow_rules_are_in_the_digests_but_their_counters_are_not() -> None:
    base = with_openflow(OpenFlow([NORMAL_RULE, DROP_RULE]))
    counted = with_openflow(
        OpenFlow([msgspec.structs.replace(NORMAL_RULE, packet_count=99, idle=0.0), DROP_RULE])
    )
    other = with_openflow(OpenFlow([NORMAL_RULE]))
    for digest in (ledger.state_digest, ledger.multiset_digest):
        assert digest(base) == digest(counted)
        assert digest(base) != digest(other)
    env, back = snap.decode(snap.encode(base, software="t", taken=0.0))
    assert back == base and snap.summary(back)["openflow_rules"] == 2


# -- version 3: datapath meter actions and token buckets ----------------------------------

METER_LEVELS = [
    {"meter_id": 1, "kbps": False, "bands": [[10, 20, 1]], "tokens": [3.0], "last": 7.5}
]


def metered_state() -> State:
    """A bridge with a megaflow through datapath meter 1 (and one without), and the
    meter's token bucket in the handles, as a version 3 build exports it at the freeze."""
    s = sample_state()
    br = s.bridges[0]
    metered = FlowV7(b"\x02" * 102, b"\xff" * 102, (MeterV7(1, 0), OutputV7(2)), 9, 900, 0.1, 0)
    dp = msgspec.structs.replace(
        br.datapath,
        handles=msgspec.structs.replace(br.datapath.handles, meters=levels_from_wire(METER_LEVELS)),
        flows=[*br.datapath.flows, metered],
    )
    return State([msgspec.structs.replace(br, datapath=dp, openflow=OpenFlow([NORMAL_RULE]))])


def test_readable_versions_include_the_previous_one() -> None:
    assert snap.readable_versions()[:2] == [snap.CURRENT_VERSION, snap.CURRENT_VERSION - 1]


def test_writing_version_2_drops_meter_actions_and_buckets_and_both_sides_agree() -> None:
    s = metered_state()
    data = snap.encode(s, software="t", taken=0.0, version=2)
    env = snap.read_envelope(data)
    assert env.version == 2
    v2 = msgspec.msgpack.decode(env.payload, type=records.StateV2)  # what a version 2 build reads
    (br,) = v2.bridges
    assert [f.actions for f in br.datapath.flows] == [[["output", 2]], [["output", 2]]]
    assert br.datapath.handles == {"ports": [[1, "p1", "system"]]}
    assert br.openflow == snap.openflow_down("br0", s.bridges[0].openflow)
    # The old side verifies the state as version 2 carries it; the new side, whichever
    # build, computes the same.
    old_side = ledger.state_digest(snap.as_version(s, 2))
    assert ledger.state_digest(v2) == old_side  # a version 2 build
    _, up = snap.decode(data)  # a version 3 build told to use version 2
    assert ledger.state_digest(snap.as_version(up, 2)) == old_side
    assert ledger.state_digest(s) != old_side  # version 3 does see the meter action
    # Nothing else is lost: back up, it is the version 3 state without meters.
    assert up.bridges[0].datapath.flows[1] == msgspec.structs.replace(
        s.bridges[0].datapath.flows[1], actions=(OutputV7(2),)
    )


def test_a_version_2_snapshot_reads_up_unchanged() -> None:
    s = metered_state()
    v2 = snap.as_version(s, 2)
    payload = msgspec.msgpack.encode(v2)  # as a version 2 build writes it
    data = msgspec.msgpack.encode(
        records.Envelope(snap.MAGIC, 2, "old", 0.0, snap.payload_checksum(payload), payload)
    )
    _, up = snap.decode(data)
    assert msgspec.to_builtins(snap.as_version(up, 2)) == msgspec.to_builtins(v2)
    assert up.bridges == [snap.bridge_up_6(snap.bridge_up(b)) for b in v2.bridges]  # type: ignore[attr-defined]
    assert (up.sessions, up.conntrack) == ([], [])
    assert ledger.state_digest(up) == ledger.state_digest(v2)


def test_current_version_round_trip_keeps_meter_actions_and_buckets() -> None:
    s = metered_state()
    env, back = snap.decode(snap.encode(s, software="t", taken=0.0))
    assert env.version == snap.CURRENT_VERSION and back == s
    assert back.bridges[0].datapath.handles.meters == levels_from_wire(METER_LEVELS)


def test_deltas_at_version_3_and_older_deltas_read_up() -> None:
    s = metered_state()
    d3 = records.Delta([records.BridgeDelta(s.bridges[0], removed_flows=[(b"k", b"m")])])
    _, back = snap.decode_delta(snap.encode_delta(d3, software="t", taken=0.0, version=3))
    assert back == d3
    with pytest.raises(SnapshotError, match="no delta format"):
        snap.encode_delta(d3, software="t", taken=0.0, version=2)  # a v3 delta is not v2
    (v2_bridge,) = snap.as_version(s, 2).bridges  # type: ignore[attr-defined]
    d2 = records.DeltaV2([records.BridgeDeltaV2(v2_bridge, new=True)])  # from a version 2 build
    _, up = snap.decode_delta(snap.encode_delta(d2, software="old", taken=0.0, version=2))
    assert isinstance(up, records.Delta) and up.bridges[0].changed == snap.bridge_up_6(snap.bridge_up(v2_bridge))


def test_a_version_4_delta_goes_to_version_3_without_its_sessions_and_comes_back_up() -> None:
    """Versions 3 and 4 share their bridges: a delta crosses to a version 3 peer as its
    bridges (the sessions travel beside it in their older form), and a version 3 delta
    reads up as a version 4 one without sessions."""
    from tests.golden.make_golden import golden_sessions

    s = metered_state()
    d4 = records.Delta([records.BridgeDelta(s.bridges[0], new=True)], golden_sessions())
    data = snap.encode_delta(d4, software="t", taken=0.0, version=3)
    env = snap.read_envelope(data)
    assert env.version == 3
    assert env.payload == msgspec.msgpack.encode(
        records.DeltaV3([snap.bridge_delta_as(d, 3) for d in d4.bridges])
    )
    assert b"sessions" not in env.payload
    _, up = snap.decode_delta(data)
    assert up == records.Delta(d4.bridges)
    _, same = snap.decode_delta(snap.encode_delta(d4, software="t", taken=0.0, version=4))
    assert same == d4
    full = records.State(s.bridges, golden_sessions())
    assert snap.decode(snap.encode(full, software="t", taken=0.0, version=3))[1] == records.State(
        s.bridges
    )


def test_a_version_2_delta_with_openflow_changes_reads_up() -> None:
    """A version 2 build with "openflow-delta" (77f006e) sends the rules changed since its
    pre-copy as version 2 records: they read up as version 6 rules (the one age is also
    the modified age)."""
    s = metered_state()
    (v2_bridge,) = snap.as_version(s, 2).bridges  # type: ignore[attr-defined]
    v2_rule = snap.rule_down(DROP_RULE)
    ofd = records.OpenFlowDeltaV2([0], [v2_rule])
    d2 = records.DeltaV2([records.BridgeDeltaV2(v2_bridge, openflow_delta=ofd)])
    _, up = snap.decode_delta(snap.encode_delta(d2, software="old", taken=0.0, version=2))
    got = up.bridges[0].openflow_delta
    assert got is not None and got.removed == [0] and got.added == [DROP_RULE]
