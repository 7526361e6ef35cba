"""The crash standby's link without processes (hitless.daemon.standby): the framing split
at every boundary, descriptors matched to their message, and the state the standby
restores from what it holds."""

from __future__ import annotations

import os
import select
import socket
import struct
from collections import deque

import msgspec
import pytest

from hitless.daemon import standby
from hitless.daemon.standby import LinkReader, StandbyLink, _message, _Standby
from hitless.state import snapshot
from hitless.state.records import (
    BridgeState,
    DatapathV7,
    FlowV7,
    MacEntryV1,
    OfRule,
    OpenFlow,
    OutputV7,
    State,
)


def _handles(ports: list[tuple[str, int]]) -> dict[str, object]:
    return {
        "version": 1,
        "type": "netdev",
        "ring_frames": 4096,
        "max_upcalls": 16384,
        "ports": [
            {
                "port_no": no,
                "name": name,
                "type": "system",
                "mac": "00" * 6,
                "ifindex": 1,
                "stats": [0] * 6,
                "ring": [4096, 64, 2048, 128],
                "head": 17,
                "fd": i,
            }
            for i, (name, no) in enumerate(ports)
        ],  # fmt: skip
    }


def _f(bridges: dict[str, object], n: int) -> bytes:
    return _message(b"F", msgspec.msgpack.encode({"n": n, "bridges": bridges}))


def _s(bridges: dict[str, object], state: State) -> bytes:
    head = msgspec.msgpack.encode({"bridges": bridges})
    snap = snapshot.encode(state, software="test", taken=1.0)
    return _message(b"S", struct.pack("!I", len(head)) + head + snap)


def _pipes(n: int) -> list[int]:
    fds = []
    for _ in range(n):
        r, w = os.pipe()
        os.close(w)
        fds.append(r)
    return fds


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_messages_split_anywhere_come_out_whole_with_their_descriptors() -> None:
    doc = {"br": {"handles": _handles([("p1", 1), ("p2", 2)]), "fds": [0, 1]}}
    state = State(
        [
            BridgeState(
                "br", DatapathV7("netdev"), mac_entries=[MacEntryV1(0, b"\x02" * 6, 1, 0.5)]
            )
        ]
    )
    stream = (
        _f(doc, 2)
        + _s(doc, state)
        + _message(b"H", b"1")
        + _message(b"H", b"0")
        + _message(b"B", b"")
    )
    for cut in range(1, len(stream)):
        fds = _pipes(2)
        reader = LinkReader()
        # the descriptors ride with the F message's first byte
        events = reader.feed(stream[:cut], fds) + reader.feed(stream[cut:], [])
        assert [k for k, _, _ in events] == [b"F", b"S", b"H", b"H", b"B"]
        assert events[0][2] == fds and all(not e[2] for e in events[1:])
        held = _Standby()
        for ev in events:
            held.apply(*ev)
        assert held.bye and not held.handoff and held.mirrors == 1
        got, slots = held.state()
        (br,) = got.bridges
        assert slots == fds and br.datapath.fd_slots == [0, 1]
        assert br.mac_entries == state.bridges[0].mac_entries  # the mirror's state
        # ring positions are not trusted after a crash: the frames decide
        assert all(p.head is None for p in br.datapath.handles.ports)
        for fd in fds:
            os.close(fd)


def test_new_descriptors_replace_the_old_ones_and_keep_the_last_mirror() -> None:
    held = _Standby()
    first = _pipes(2)
    doc = {"br": {"handles": _handles([("p1", 1), ("p2", 2)]), "fds": [0, 1]}}
    state = State(
        [
            BridgeState(
                "br", DatapathV7("netdev"), mac_entries=[MacEntryV1(0, b"\x02" * 6, 1, 0.5)]
            )
        ]
    )
    for ev in LinkReader().feed(_f(doc, 2) + _s(doc, state), first):
        held.apply(*ev)
    second = _pipes(1)  # p2 went away
    doc2 = {"br": {"handles": _handles([("p1", 1)]), "fds": [0]}}
    for ev in LinkReader().feed(_f(doc2, 1), second):
        held.apply(*ev)
    assert not any(_open(fd) for fd in first)  # the old set is closed at once
    got, slots = held.state()
    assert slots == second
    (br,) = got.bridges
    assert [p.name for p in br.datapath.handles.ports] == ["p1"]
    assert len(br.mac_entries) == 1  # the last mirror, until the next one comes
    os.close(second[0])


def test_a_bridge_without_a_mirror_yet_comes_bare_and_unused_descriptors_are_closed() -> None:
    held = _Standby()
    fds = _pipes(3)
    doc = {"br": {"handles": _handles([("p1", 1)]), "fds": [1]}}
    for ev in LinkReader().feed(_f(doc, 3), fds):
        held.apply(*ev)
    got, slots = held.state()
    (br,) = got.bridges
    assert br.name == "br" and not br.mac_entries and br.openflow is None
    assert slots == [fds[1]]
    assert not _open(fds[0]) and not _open(fds[2])
    os.close(fds[1])


def test_more_descriptors_announced_than_received_is_refused() -> None:
    reader = LinkReader()
    fds = _pipes(1)
    with pytest.raises(ValueError, match="2 descriptors announced, 1 received"):
        reader.feed(_f({}, 2), fds)
    reader.close()
    assert not _open(fds[0])


def _s_of(bridges: dict[str, object], state: State, of: int | None) -> bytes:
    head = msgspec.msgpack.encode({"bridges": bridges, "of": of})
    snap = snapshot.encode(state, software="test", taken=1.0)
    return _message(b"S", struct.pack("!I", len(head)) + head + snap)


class _Importer:
    def __init__(self) -> None:
        self.built: list[State] = []

    def prepare(self, state: State, delta: bool = False) -> None:
        assert delta
        self.built.append(state)


def _rule(priority: int, packets: int) -> OfRule:
    return OfRule(0, priority, b"", b"", 0, 0, 0, 0, 0, 5.0, 1.0, packets, packets * 60, 5.0)


def _mirror(macs: list[MacEntryV1], flows: list[FlowV7], rules: list[OfRule]) -> State:
    return State([BridgeState("br", DatapathV7("netdev", None, flows), mac_entries=macs,
                              openflow=OpenFlow(rules=rules))])  # fmt: skip


def test_ready_bridges_are_rebuilt_only_when_the_rules_change_and_brought_up_to_date() -> None:
    held = _Standby()
    fds = _pipes(1)
    doc = {"br": {"handles": _handles([("p1", 1)]), "fds": [0]}}
    a, b, c = b"\x02" * 6, b"\x04" * 6, b"\x06" * 6
    f1 = FlowV7(b"k1", b"m1", (OutputV7(1),), 10, 600, 0.1)
    f2 = FlowV7(b"k2", b"m2", (OutputV7(2),), 10, 600, 0.1)
    first = _mirror([MacEntryV1(0, a, 1, 2.0), MacEntryV1(0, b, 1, 2.0)], [f1, f2],
                    [_rule(10, 0), _rule(20, 3)])  # fmt: skip
    importer = _Importer()
    for ev in LinkReader().feed(_f(doc, 1) + _s_of(doc, first, 7), fds):
        held.apply(*ev)
    assert held.needs_prepare()
    held.prepare(importer)
    assert len(importer.built) == 1 and not held.needs_prepare()
    # The next mirror, rules unchanged (same version): a moved, b gone, c new; f1's
    # counters moved, f2 gone; rule 20 hit again.
    f1b = FlowV7(b"k1", b"m1", (OutputV7(1),), 15, 900, 0.0)
    second = _mirror([MacEntryV1(0, a, 2, 0.1), MacEntryV1(0, c, 1, 0.3)], [f1b],
                     [_rule(10, 0), _rule(20, 5)])  # fmt: skip
    for ev in LinkReader().feed(_s_of(doc, second, 7), []):
        held.apply(*ev)
    assert not held.needs_prepare()  # nothing to rebuild
    delta, slots = held.takeover_delta()
    assert slots == fds
    (d,) = delta.bridges
    assert not d.new and d.changed.datapath.fd_slots == [0]
    assert [(m.mac, m.port) for m in d.changed.mac_entries] == [(a, 2), (c, 1)]
    assert d.removed_macs == [(0, b)]
    assert d.changed.datapath.flows == [f1b] and d.removed_flows == [(b"k2", b"m2")]
    assert d.openflow_delta is not None
    assert [(x.index, x.packet_count) for x in d.openflow_delta.counters] == [(1, 5)]
    assert not d.openflow_delta.added and not d.openflow_delta.removed
    # A rule change (another version, or none known) means building again.
    for of in (8, None):
        for ev in LinkReader().feed(_s_of(doc, second, of), []):
            held.apply(*ev)
        assert held.needs_prepare()
    os.close(fds[0])


def test_the_daemon_sends_a_mirror_in_pieces_a_bounded_amount_per_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mirror queued as its pieces (never joined), then a descriptor message: each turn
    writes at most ``SEND_PER_TURN`` and one more sendmsg, however fast the standby reads,
    and the standby gets both messages whole, the descriptors with theirs."""
    monkeypatch.setattr(standby, "SEND_PER_TURN", 1000)
    monkeypatch.setattr(standby, "SEND_PIECES", 4)  # one sendmsg: at most 4 x 100 bytes
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    link = StandbyLink.__new__(StandbyLink)  # only its queue and socket: no switch
    link.conn, link.out = ours, deque()
    pieces = [bytes([i]) * 100 for i in range(120)]  # 12 kB: the socket takes it all
    link._queue(standby._HDR.pack(b"S", sum(map(len, pieces))))
    for p in pieces:
        link._queue(p)
    fds = _pipes(2)
    doc = {"br": {"handles": _handles([("p1", 1), ("p2", 2)]), "fds": [0, 1]}}
    link._queue(_f(doc, 2), fds)
    reader, got, turns = LinkReader(), [], 0
    try:
        while link.out:
            link._flush()
            turns += 1
            sent = 0
            while select.select([theirs], [], [], 0)[0]:  # the standby reads it all
                data, received, _flags, _addr = socket.recv_fds(theirs, 1 << 16, 4)
                sent += len(data)
                got += reader.feed(data, list(received))
            assert 0 < sent <= 1000 + 4 * 100
        assert turns >= 12_000 // (1000 + 4 * 100)  # not all at once (the socket takes it)
        (kind_s, payload, none), (kind_f, _, slots) = got
        assert (kind_s, payload, none) == (b"S", b"".join(pieces), [])
        assert kind_f == b"F" and len(slots) == 2
        for fd in slots:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
        ours.close()
        theirs.close()


def test_a_clean_stop_stops_a_standby_too_busy_to_take_the_bye() -> None:
    """The daemon's clean stop says bye after the rest of the mirror; a standby busy
    building bridges (here: a process that never reads) cannot take it within the 1 s
    the daemon gives it, and would take the stop for a crash and take over. The daemon
    stops it instead; a standby that reads gets the bye and is left to exit itself."""
    import subprocess

    ours, theirs = socket.socketpair()
    busy = subprocess.Popen(["sleep", "60"])  # a peer that never reads
    try:
        link = StandbyLink.__new__(StandbyLink)  # its socket, queue and peer: no switch
        link.conn, link.out, link.listener, link.peer_pid = ours, deque(), None, busy.pid
        link.job, link.sent_keys = None, None
        link._queue(b"x" * (8 << 20))  # more than the socket holds
        link.close()
        assert busy.wait(timeout=10) == -15  # SIGTERM: it exits, no takeover
    finally:
        if busy.poll() is None:
            busy.kill()
            busy.wait()
        theirs.close()
    ours, theirs = socket.socketpair()
    reading = subprocess.Popen(["sleep", "60"])  # a peer that never reads
    try:
        link = StandbyLink.__new__(StandbyLink)
        link.conn, link.out, link.listener, link.peer_pid = ours, deque(), None, reading.pid
        link.job, link.sent_keys = None, None
        link._queue(_message(b"S", b"y" * 1000))
        link.close()
        data = b""
        while chunk := theirs.recv(1 << 16):  # until the daemon's side is closed
            data += chunk
        events = LinkReader().feed(data, [])
        assert [k for k, _p, _f in events] == [b"S", b"B"]  # the mirror's rest, then bye
        assert reading.poll() is None  # left alone
    finally:
        reading.kill()
        reading.wait()
        theirs.close()
