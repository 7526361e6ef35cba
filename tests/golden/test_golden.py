"""Golden snapshots of every released state format version must always load, and
describe the same state they did when they were written."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from hitless.handoff import snapshot

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
    assert snapshot.state_digest(state) == expected["digest"]


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_golden_snapshot_writes_back_to_the_same_bytes_at_its_version(path: Path) -> None:
    env, state = snapshot.decode(path.read_bytes())
    again = snapshot.encode(state, software=env.software, taken=env.taken, version=env.version)
    assert msgspec.msgpack.decode(again, type=snapshot.Envelope).payload == env.payload


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
