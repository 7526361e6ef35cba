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
    assert any(a[0] == "meter" for f in state.bridges[0].datapath.flows for a in f.actions)
    assert "meters" in state.bridges[0].datapath.handles
    v2 = snapshot.as_version(state, 2)
    assert isinstance(v2, records.StateV2)
    (br,) = v2.bridges
    assert [a for f in br.datapath.flows for a in f.actions if a[0] == "meter"] == []
    assert "meters" not in br.datapath.handles
    assert len(br.datapath.flows) == len(state.bridges[0].datapath.flows)
    assert br.openflow == state.bridges[0].openflow  # the OpenFlow meter stays
