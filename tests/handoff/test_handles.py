"""Datapath handles as typed records (hitless/state/handles.py) keep the released wire
map: every golden file's handles read into their record and write back the same map
(plus the defaults of keys that came later), each datapath type writes exactly the keys
older builds read, and what a build cannot adopt is refused before a descriptor is
touched, saying why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from hitless.state import handles, snapshot
from hitless.state.handles import (
    DummyHandlesV1,
    DummyPortV1,
    EbpfHandlesV1,
    MeterLevelV1,
    NetdevHandlesV1,
    NetdevPortV1,
)
from hitless.state.snapshot import SnapshotError

GOLDEN = Path(__file__).parent.parent / "golden"


def _plain(obj: Any) -> Any:
    """Tuples as lists (what a msgpack round trip gives)."""
    return msgspec.msgpack.decode(msgspec.msgpack.encode(obj))


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
def test_golden_handles_read_and_write_back_the_same_map(version: int) -> None:
    """The wire maps of the golden files of versions 1-6 read into records and write
    back to the very same bytes (how version 7 moves them down again)."""
    env = snapshot.read_envelope((GOLDEN / f"state-v{version}.snap").read_bytes())
    seen = 0
    for br in msgspec.msgpack.decode(env.payload)["bridges"]:
        wire = br["datapath"]["handles"]
        rec = handles.from_wire(br["datapath"]["type"], wire)
        assert isinstance(rec, handles.HANDLES[br["datapath"]["type"]])
        assert msgspec.msgpack.encode(handles.to_wire(rec)) == msgspec.msgpack.encode(wire)
        seen += 1
    assert seen


def test_version_7_golden_carries_the_handles_and_queued_misses_as_records() -> None:
    """Version 7's golden file: the netdev handles are the tagged record, its queued
    misses typed (the recirculated one with its key), and a version 6 build gets the
    released wire map with the misses in hex."""
    from tests.golden.make_golden import golden_upcalls

    _, state = snapshot.decode((GOLDEN / "state-v7.snap").read_bytes())
    rec = state.bridges[0].datapath.handles
    assert isinstance(rec, NetdevHandlesV1) and rec.upcalls == golden_upcalls()
    assert rec.upcalls[1].key is not None and rec.upcalls[0].key is None
    v6 = snapshot.as_version(state, 6)
    wire = v6.bridges[0].datapath.handles  # type: ignore[attr-defined]
    assert wire["upcalls"] == [
        [1, rec.upcalls[0].packet.hex(), "miss", ""],
        [2, rec.upcalls[1].packet.hex(), "miss", "", rec.upcalls[1].key.hex()],
    ]
    assert handles.from_wire("netdev", _plain(wire)) == rec


def test_each_type_writes_the_keys_older_builds_read() -> None:
    level = MeterLevelV1(1, True, [(1000, 100, 1)], [5.0], 12.5)
    dummy = DummyHandlesV1(
        [DummyPortV1(1, "p1", "system"), DummyPortV1(2, "pp", "patch", "peer")], [level]
    )
    assert _plain(handles.to_wire(dummy)) == {
        "ports": [[1, "p1", "system"], [2, "pp", "patch", "peer"]],  # a peer only if patch
        "meters": [{"meter_id": 1, "kbps": True, "bands": [[1000, 100, 1]], "tokens": [5.0],
                    "last": 12.5}],  # fmt: skip
    }  # no pcap files, no connections: absent, as builds before them wrote it
    netdev = NetdevHandlesV1(
        4096,
        512,
        ports=[
            NetdevPortV1(1, "a", "system", "02000000000a", 7, [1, 2, 3, 4, 5, 6], [1, 2, 3, 4],
                         9, fd=0),  # fmt: skip
            NetdevPortV1(2, "p", "patch", "02000000000b", 0, [0] * 6, peer="q"),
        ],
    )
    wire = handles.to_wire(netdev)
    assert list(wire) == ["version", "type", "ring_frames", "max_upcalls", "ports", "flows",
                          "upcalls", "counters"]  # fmt: skip (no meters, no connections)
    with_more = msgspec.structs.replace(netdev, meters=[level], conntrack={"limits": []})
    assert list(handles.to_wire(with_more))[-2:] == ["meters", "conntrack"]
    assert wire["version"] == 1 and wire["type"] == "netdev" and wire["flows"] == []
    assert [sorted(p) for p in wire["ports"]] == [
        ["fd", "head", "ifindex", "mac", "name", "port_no", "ring", "stats", "type"],
        ["ifindex", "mac", "name", "peer", "port_no", "stats", "type"],  # no "fd": no descriptor
    ]
    ebpf = EbpfHandlesV1(42, 7, ["prog", "hl_flows"])
    assert handles.to_wire(ebpf) == {
        "version": 1, "kind": "ebpf", "prog_id": 42, "abi": 7, "fds": ["prog", "hl_flows"],
        "meters": [],
    }  # fmt: skip
    for kind, rec in (("dummy", dummy), ("netdev", netdev), ("ebpf", ebpf)):
        assert handles.from_wire(kind, _plain(handles.to_wire(rec))) == rec


@pytest.mark.parametrize(
    ("kind", "wire", "why"),
    [
        ("netdev", {"version": 2, "ring_frames": 1, "max_upcalls": 1}, "state version 2"),
        ("netdev", {"version": 1, "max_upcalls": 1}, "ring_frames"),
        ("netdev", {"version": 1, "ring_frames": 1, "max_upcalls": 1, "ports": [{"port_no": 1}]},
         "name"),  # fmt: skip
        ("ebpf", {"version": 1, "kind": "xdp", "prog_id": 1, "abi": 1, "fds": []}, "not an ebpf"),
        ("ebpf", {"version": 9, "kind": "ebpf", "prog_id": 1, "abi": 1, "fds": []}, "version 9"),
        ("dummy", {"ports": "p1"}, "not a list"),
        ("dummy", {"ports": [[1, "p1"]]}, "type"),
        ("dpdk", {}, "no 'dpdk' datapath"),
        ("dummy", [1, 2], "not a map"),
    ],
)
def test_what_cannot_be_adopted_is_refused_saying_why(kind: str, wire: Any, why: str) -> None:
    with pytest.raises(SnapshotError, match=why):
        handles.from_wire(kind, wire)
