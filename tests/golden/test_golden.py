"""Golden snapshots of every released state format version must always load, and
describe the same state they did when they were written."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from hitless.state import ledger, records, snapshot

HERE = Path(__file__).parent
GOLDEN = sorted(HERE.glob("state-v*.snap"))


def test_every_version_up_to_the_current_one_has_a_golden_file() -> None:
    versions = {int(p.stem.removeprefix("state-v")) for p in GOLDEN}
    assert versions == set(range(1, snapshot.CURRENT_VERSION + 1))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_snapshot_loads_with_the_recorded_content(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    env, state = snapshot.decode(path.read_bytes())
    assert env.version == int(path.stem.removeprefix("state-v"))
    assert snapshot.summary(state) == expected["summary"]
    assert ledger.state_digest(state) == expected["digest"]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_snapshot_writes_back_to_the_same_bytes_at_its_version(path: Path) -> None:
    env, state = snapshot.decode(path.read_bytes())
    again = snapshot.encode(state, software=env.software, taken=env.taken, version=env.version)
    assert msgspec.msgpack.decode(again, type=records.Envelope).payload == env.payload


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_openflow_parts_are_valid_openflow_wire_encodings(path: Path) -> None:
    """Matches, instructions, buckets and bands are kept as OpenFlow 1.3 wire bytes:
    every one in a golden file must parse with the codec, to the end."""
    from hitless.openflow._wire import Reader
    from hitless.openflow.actions import parse_instructions
    from hitless.openflow.match import Match as OfMatch
    from hitless.openflow.messages import parse_bands, parse_buckets

    _, state = snapshot.decode(path.read_bytes())
    for br in state.bridges:
        if br.openflow is None:
            continue
        for r in br.openflow.rules:
            m = Reader(r.match)
            OfMatch.parse(m)
            assert not m.remaining()
            parse_instructions(Reader(r.instructions))
        for g in br.openflow.groups:
            assert parse_buckets(Reader(g.buckets))
        for mt in br.openflow.meters:
            assert parse_bands(Reader(mt.bands))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_snapshot_as_older_versions_has_the_recorded_digests(path: Path) -> None:
    """What the down-migrations make of a golden state is pinned too: a build of the older
    version computes exactly this digest after a downgrade."""
    expected = json.loads(path.with_suffix(".json").read_text()).get("digests", {})
    _, state = snapshot.decode(path.read_bytes())
    for version, digest in expected.items():
        assert ledger.state_digest(snapshot.as_version(state, int(version))) == digest


@pytest.mark.parametrize("path", [p for p in GOLDEN if p.stem != "state-v1"], ids=lambda p: p.name)
def test_make_golden_still_describes_each_file_it_wrote(path: Path) -> None:
    """``golden_state(v)`` is what the file of version ``v`` was written from (version 1's
    predates the script's OpenFlow part)."""
    from tests.golden.make_golden import golden_state

    v = int(path.stem.removeprefix("state-v"))
    env = snapshot.read_envelope(path.read_bytes())
    again = snapshot.encode(golden_state(v), software=env.software, taken=env.taken, version=v)
    assert snapshot.read_envelope(again).payload == env.payload


def test_version_3_golden_downgrades_without_meter_actions_or_buckets() -> None:
    _, state = snapshot.decode((HERE / "state-v3.snap").read_bytes())
    dp = state.bridges[0].datapath
    assert any(isinstance(a, records.MeterV7) for f in dp.flows for a in f.actions)
    assert dp.handles is not None and dp.handles.meters
    v2 = snapshot.as_version(state, 2)
    assert isinstance(v2, records.StateV2)
    (br,) = v2.bridges
    assert [a for f in br.datapath.flows for a in f.actions if a[0] == "meter"] == []
    assert "meters" not in br.datapath.handles
    assert len(br.datapath.flows) == len(state.bridges[0].datapath.flows)
    assert br.openflow == snapshot.openflow_down("br0", state.bridges[0].openflow)  # meter stays


def test_version_4_golden_carries_typed_sessions_that_a_version_3_peer_gets_as_before() -> None:
    """The sessions of the version 4 golden state decode as typed records; as a version 3
    handoff sends them (``sessions.to_v3``) they come back the same, and they parse into
    live OpenFlow connections with their bundles and monitors."""
    from hitless.daemon.ofmgmt import parse_sessions
    from hitless.state import sessions as state_sessions
    from tests.golden.make_golden import golden_sessions

    _, state = snapshot.decode((HERE / "state-v4.snap").read_bytes())
    assert state.sessions == golden_sessions()
    assert msgspec.msgpack.encode(snapshot.as_version(state, 3)) == msgspec.msgpack.encode(
        records.StateV3([snapshot.bridge_down(snapshot.bridge_down_7(b)) for b in state.bridges])
    )
    (rec,) = state.sessions
    old = state_sessions.to_v3(rec)
    assert old["clients"][0]["state"]["versions"] == [5]  # what a version 3 build accepts
    assert old["clients"][1]["state"]["nx"]["flow_format"] == 2
    assert state_sessions.from_v3(msgspec.msgpack.decode(msgspec.msgpack.encode(old))) == rec
    inh = parse_sessions(rec, [10, 11, 12, 13, 14], 0.0)
    assert (inh.mgmt, inh.snoop, inh.passive, [c.fd for c in inh.clients]) == (
        10, 14, {"ptcp:6633:127.0.0.1": 11}, [12, 13],
    )  # fmt: skip
    ofctl, ctl = inh.clients
    assert ofctl.conn.version == 5 and ofctl.conn.unparsed == bytes.fromhex("0502000800")
    assert [type(m).__name__ for m in ofctl.bundles[9][1]] == ["FlowMod"]
    assert ofctl.monitors[0].monitor_id == 1
    assert (ctl.conn.version, ctl.conn.role, ctl.conn.generation_id) == (1, 2, 5)
    assert (ctl.conn.nx.flow_format, ctl.conn.nx.controller_id, ctl.conn.nx.nx_xids) == (2, 7, {77})
    assert inh.table_config == ((0, 0, True, (20, 80)),)


def test_version_5_golden_connection_table_reads_the_same_typed_or_as_version_4_handles() -> None:
    """The connection table of the version 5 golden state, adopted from its records (as
    a version 5 handoff does) and from the datapath handles it migrates into for
    version 4 (what a version 4 build reads): the same connections either way."""
    from hitless.datapath.conntrack import Conntrack
    from hitless.handoff.engine import _ct_apply, _ct_records
    from hitless.state.records import ConntrackDeltaV5

    _, state = snapshot.decode((HERE / "state-v5.snap").read_bytes())
    (table,) = state.conntrack
    assert len(table.conns) == 3

    class Dp:
        conntrack = Conntrack()

    typed, old = Dp(), Dp()
    old.conntrack = Conntrack()
    _ct_apply(typed, ConntrackDeltaV5("br0", table.conns), 100.0)  # type: ignore[arg-type]
    v4 = snapshot.as_version(state, 4)
    assert not hasattr(v4, "conntrack")
    handles = v4.bridges[0].datapath.handles  # type: ignore[attr-defined]
    assert len(handles["conntrack"]["conns"]) == 3
    assert handles["meters"] == msgspec.to_builtins(state.bridges[0].datapath.handles.meters)
    old.conntrack.adopt_json(handles["conntrack"], 100.0)
    assert _ct_records(typed, 100.0) == _ct_records(old, 100.0) == table.conns  # type: ignore[arg-type]
    # and back up: a version 4 file keeps its connections in the handles
    up = snapshot.decode(snapshot.encode(v4, software="t", taken=0.0, version=4))[1]
    assert up.conntrack == [] and up.bridges[0].datapath.handles.conntrack == handles["conntrack"]
