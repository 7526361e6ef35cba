"""The sans-IO connection with two peers in memory (no sockets)."""

from __future__ import annotations

import dataclasses
import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hitless.openflow import (
    CLOSED,
    NEED_DATA,
    ApplyActions,
    BarrierRequest,
    Connection,
    ConnectionEvent,
    EchoAnswered,
    EchoReply,
    EchoRequest,
    FlowMod,
    FlowStats,
    FlowStatsReply,
    Hello,
    KeepaliveProbe,
    LocalProtocolError,
    Match,
    Negotiated,
    Output,
    PacketIn,
    ProtocolErrorEvent,
    RemoteProtocolError,
    SessionState,
    SetField,
    Timeout,
    field,
)
from hitless.openflow.constants import (
    OFP13_VERSION,
    OFP14_VERSION,
    BadRequestCode,
    ControllerRole,
    ErrorType,
    HelloFailedCode,
    MsgType,
    MultipartFlags,
    PacketInReason,
)
from hitless.openflow.errors import NxError


def events(conn: Connection) -> list:
    out = []
    while (ev := conn.next_event()) not in (NEED_DATA, CLOSED):
        out.append(ev)
    return out


def pair(switch_versions=(4, 5), controller_versions=(4, 5)) -> tuple[Connection, Connection]:
    switch = Connection(versions=switch_versions)
    controller = Connection(versions=controller_versions)
    switch.receive_data(controller.start())
    controller.receive_data(switch.start())
    return switch, controller


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [((4, 5), (4, 5), 5), ((4, 5), (4,), 4), ((4,), (4, 5), 4), ((5,), (4, 5), 5)],
)
def test_negotiates_highest_common_version(ours, theirs, expected) -> None:
    switch, controller = pair(ours, theirs)
    assert [type(e) for e in events(switch)] == [Negotiated]
    assert [type(e) for e in events(controller)] == [Negotiated]
    assert switch.version == controller.version == expected


def test_negotiation_without_bitmap_uses_header_versions() -> None:
    switch = Connection()
    switch.start()
    switch.receive_data(struct.pack("!BBHI", OFP13_VERSION, MsgType.HELLO, 8, 1))
    (ev,) = events(switch)
    assert isinstance(ev, Negotiated) and ev.version == OFP13_VERSION
    # A peer announcing a higher version than ours without a bitmap: ours, the smaller.
    switch = Connection(versions=(4,))
    switch.start()
    switch.receive_data(struct.pack("!BBHI", 6, MsgType.HELLO, 8, 1))
    assert events(switch)[0].version == OFP13_VERSION


def test_negotiation_failure_is_fatal_with_hello_failed() -> None:
    switch = Connection(versions=(5,))
    switch.start()
    switch.receive_data(Hello(xid=3, versions=frozenset({1})).encode(OFP13_VERSION))
    ev = switch.next_event()
    assert isinstance(ev, ProtocolErrorEvent) and ev.fatal
    assert (ev.error.type, ev.error.code) == (ErrorType.HELLO_FAILED, HelloFailedCode.INCOMPATIBLE)
    assert ev.data[1] == MsgType.ERROR and b"no common OpenFlow version" in ev.data
    assert switch.next_event() is CLOSED
    with pytest.raises(LocalProtocolError):
        switch.send(BarrierRequest())


def test_passive_side_sends_hello_with_negotiated_event() -> None:
    controller = Connection()
    switch = Connection()  # never called start()
    switch.receive_data(controller.start())
    (ev,) = events(switch)
    assert isinstance(ev, Negotiated) and ev.data
    controller.receive_data(ev.data)
    assert isinstance(events(controller)[0], Negotiated)


def test_first_message_must_be_hello() -> None:
    switch = Connection()
    switch.start()
    switch.receive_data(BarrierRequest(xid=4).encode())
    ev = switch.next_event()
    assert isinstance(ev, ProtocolErrorEvent) and ev.fatal
    assert ev.error.type == ErrorType.HELLO_FAILED


def test_messages_flow_and_echo_is_answered() -> None:
    switch, controller = pair()
    events(switch), events(controller)
    mod = FlowMod(xid=controller.next_xid(), priority=9, match=Match.of(in_port=3))
    controller_out = controller.send(mod) + controller.send(EchoRequest(xid=77, data=b"hi"))
    switch.receive_data(controller_out)
    got = events(switch)
    assert got[0] == mod
    assert isinstance(got[1], EchoAnswered)
    controller.receive_data(got[1].data)
    assert events(controller) == [EchoReply(xid=77, data=b"hi")]


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_awkward_splits(data: st.DataObject) -> None:
    """Any split of the byte stream gives the same events."""
    switch, controller = pair()
    events(controller)
    msgs = [
        FlowMod(xid=i, priority=i, match=Match.of(in_port=i, eth_type=0x0800)) for i in range(1, 4)
    ] + [BarrierRequest(xid=9)]
    stream = b"".join(controller.send(m) for m in msgs)
    # The controller's HELLO is already buffered in the switch; add the rest in pieces.
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=10)))
    got = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        if b > a:
            switch.receive_data(stream[a:b])
            got += events(switch)
    assert got[1:] == msgs and isinstance(got[0], Negotiated)


def test_bad_version_after_negotiation_is_not_fatal() -> None:
    switch, controller = pair((4,), (4,))
    events(switch)
    switch.receive_data(
        BarrierRequest(xid=5).encode(OFP14_VERSION) + BarrierRequest(xid=6).encode()
    )
    ev, ok = events(switch)
    assert isinstance(ev, ProtocolErrorEvent) and not ev.fatal
    assert (ev.error.code, ev.error.xid) == (BadRequestCode.BAD_VERSION, 5)
    assert ev.data[:2] == bytes([OFP13_VERSION, MsgType.ERROR])
    assert ok == BarrierRequest(xid=6)


def test_unknown_type_answers_bad_type_quoting_the_whole_message() -> None:
    switch, _ = pair()
    events(switch)
    junk = struct.pack("!BBHI", OFP14_VERSION, 99, 100, 42) + bytes(range(92))
    switch.receive_data(junk)
    (ev,) = events(switch)
    assert isinstance(ev, ProtocolErrorEvent)
    assert ev.error.code == BadRequestCode.BAD_TYPE
    assert ev.data == struct.pack("!BBHIHH", 5, 1, 12 + 100, 42, 1, 1) + junk


def test_keepalive_probe_and_timeout() -> None:
    switch = Connection(probe_interval=5.0, now=100.0)
    controller = Connection()
    switch.receive_data(controller.start(), now=100.0)
    controller.receive_data(switch.start())
    events(switch), events(controller)
    assert switch.get_timer() == 105.0
    switch.handle_timer(104.9)
    assert events(switch) == []
    switch.receive_data(controller.send(BarrierRequest(xid=1)), now=104.0)
    events(switch)
    assert switch.get_timer() == 109.0
    switch.handle_timer(109.0)
    (probe,) = events(switch)
    assert isinstance(probe, KeepaliveProbe)
    controller.receive_data(probe.data)
    (answered,) = events(controller)
    switch.receive_data(answered.data, now=110.0)
    assert events(switch) == [EchoReply(xid=probe.xid)]
    assert switch.get_timer() == 115.0
    switch.handle_timer(115.0)
    (probe2,) = events(switch)
    assert isinstance(probe2, KeepaliveProbe) and probe2.xid != probe.xid
    switch.handle_timer(119.0)
    assert events(switch) == []
    switch.handle_timer(120.0)
    assert switch.next_event() == Timeout()
    assert switch.next_event() is CLOSED and switch.get_timer() is None


def test_no_hello_within_probe_interval_times_out() -> None:
    switch = Connection(probe_interval=2.0, now=0.0)
    switch.start()
    switch.handle_timer(2.0)
    assert switch.next_event() == Timeout()


def test_xids_are_fresh_and_never_zero() -> None:
    conn = Connection()
    xids = [conn.next_xid() for _ in range(5)]
    assert xids == [1, 2, 3, 4, 5]
    state = conn.export_state()
    c2 = Connection.from_state(dataclasses.replace(state, next_xid=0xFFFFFFFF), now=0)
    assert [c2.next_xid(), c2.next_xid()] == [0xFFFFFFFF, 1]


def test_session_record_stays_readable_by_older_builds() -> None:
    """Older builds refuse a record whose "versions" names a version they lack (a build
    speaking 1.3/1.4 only refused (1, 4, 5, 6)): "versions" holds the negotiated version
    (before HELLO: 1.3 and 1.4), "all_versions" the whole set, which this build reads."""
    switch, controller = pair(switch_versions=(1, 2, 3, 4, 5, 6), controller_versions=(4,))
    assert [type(e) for e in events(switch)] == [Negotiated]
    record = switch.export_state().to_dict()
    assert (record["versions"], record["all_versions"]) == ([4], [1, 2, 3, 4, 5, 6])
    assert Connection.from_state(SessionState.from_dict(record), now=0).versions == (
        1, 2, 3, 4, 5, 6,
    )  # fmt: skip
    del record["all_versions"]  # as an older build reads it
    assert Connection.from_state(SessionState.from_dict(record), now=0).version == 4
    fresh = Connection(versions=(1, 2, 3, 4, 5, 6)).export_state().to_dict()
    assert fresh["versions"] == [4, 5]


def test_async_filter_by_role() -> None:
    switch, _ = pair()
    events(switch)
    assert switch.async_allows(MsgType.PACKET_IN, PacketInReason.NO_MATCH)
    switch.role = ControllerRole.SLAVE
    assert not switch.async_allows(MsgType.PACKET_IN, PacketInReason.NO_MATCH)
    assert switch.async_allows(MsgType.PORT_STATUS, 2)


def test_eof() -> None:
    switch, controller = pair()
    events(switch), events(controller)
    switch.receive_data(controller.send(BarrierRequest(xid=3))[:5])
    switch.receive_data(b"")
    assert switch.next_event() is CLOSED


def test_export_import_mid_stream_with_partial_message() -> None:
    """An old process hands the session to a new one between two reads; a message is
    half-received. The new process continues the same byte stream."""
    switch, controller = pair()
    events(switch), events(controller)
    switch.role = ControllerRole.MASTER
    switch.generation_id = 77
    used = [switch.next_xid() for _ in range(3)]
    stream = b"".join(
        controller.send(m)
        for m in (
            FlowMod(xid=10, priority=1),
            EchoRequest(xid=11, data=b"x"),
            FlowMod(xid=12, priority=2, match=Match.of(eth_type=0x86DD)),
        )
    )
    first_len = len(FlowMod(xid=10, priority=1).encode(5))
    cut = first_len + 5  # the 9-byte echo request is half-received
    switch.receive_data(stream[:cut])
    assert events(switch) == [FlowMod(xid=10, priority=1)]
    state = switch.export_state()
    assert state.unparsed == stream[first_len:cut]
    # Plain data: survives a msgpack round trip (what the handoff sends).
    wire = msgspec.msgpack.encode(state.to_dict())
    restored = SessionState.from_dict(msgspec.msgpack.decode(wire))
    assert restored == state
    new = Connection.from_state(restored, now=50.0)
    assert (new.version, new.role, new.generation_id) == (5, ControllerRole.MASTER, 77)
    assert new.next_xid() not in used
    new.receive_data(stream[cut:], now=50.0)
    got = events(new)
    assert isinstance(got[0], EchoAnswered) and got[0].request.xid == 11
    assert got[1] == FlowMod(xid=12, priority=2, match=Match.of(eth_type=0x86DD))
    # The new process's replies are understood by the same controller.
    controller.receive_data(got[0].data + new.send(PacketIn(reason=1, data=b"abc")))
    assert events(controller) == [EchoReply(xid=11, data=b"x"), PacketIn(reason=1, data=b"abc")]


def test_export_refuses_pending_events() -> None:
    switch, _ = pair()
    events(switch)
    switch.handle_timer(1e9)
    with pytest.raises(LocalProtocolError):
        switch.export_state()


def test_local_misuse_raises_local_errors() -> None:
    conn = Connection()
    with pytest.raises(LocalProtocolError):
        conn.send(BarrierRequest())
    conn.start()
    with pytest.raises(LocalProtocolError):
        conn.start()
    with pytest.raises(LocalProtocolError):
        Connection(versions=(7,))  # OpenFlow 1.6: not spoken
    with pytest.raises(LocalProtocolError):
        FlowMod(importance=3).encode(OFP13_VERSION)
    assert isinstance(Negotiated(version=4), ConnectionEvent)


def _messages(data: bytes) -> list[bytes]:
    """``data`` cut at its OpenFlow headers' lengths (each message checked to fit 65535)."""
    out = []
    while data:
        n = struct.unpack_from("!H", data, 2)[0]
        assert 8 <= n <= len(data)
        out.append(data[:n])
        data = data[n:]
    return out


def _flow(i: int, n_actions: int, set_fields: bool = False) -> FlowStats:
    acts = tuple(SetField(field(f"reg{j % 8}", j)) if set_fields else Output(j % 100 + 1)
                 for j in range(n_actions))  # fmt: skip
    return FlowStats(table_id=1, priority=i, cookie=i, instructions=(ApplyActions(acts),))


def _replies(controller: Connection, data: bytes) -> list:
    controller.receive_data(data)
    return events(controller)


@pytest.mark.parametrize("version", [1, 2, 4, 6])
def test_a_multipart_reply_too_long_for_one_message_goes_out_in_parts(version: int) -> None:
    """40 flows of 1.8-3.5 kB each (74-140 kB; the daemon puts 40 in a reply): parts
    that each fit, every part but the last saying more follows, all 40 flows in order.
    Before, the encoder raised and took the daemon down."""
    switch, controller = pair((version,), (version,))
    events(switch), events(controller)
    flows = tuple(_flow(i, 220) for i in range(40))
    data = switch.send(FlowStatsReply(xid=9, stats=flows))
    parts = _messages(data)
    assert len(parts) > 1 and switch.left_out == []
    got = _replies(controller, data)
    assert [type(m) for m in got] == [FlowStatsReply] * len(parts)
    assert [m.flags & MultipartFlags.MORE for m in got] == [1] * (len(parts) - 1) + [0]
    assert {m.xid for m in got} == {9}
    seen = [s for m in got for s in m.stats]
    assert [(s.priority, len(s.instructions[0].actions)) for s in seen] == [
        (i, 220) for i in range(40)
    ]


@pytest.mark.parametrize("version", [1, 2, 4])
def test_an_entry_too_long_for_any_message_is_left_out_and_noted(version: int) -> None:
    """2,900 set_field:->regN fit a 1.3 flow entry (16 bytes each) but not a 1.0 or 1.1
    one (a 24-byte Nicira load each): there the flow is left out of the reply and noted,
    as Open vSwitch 3.1 leaves it out; the flows around it are sent."""
    switch, controller = pair((version,), (version,))
    events(switch), events(controller)
    flows = (_flow(1, 3), _flow(2, 2900, set_fields=True), _flow(3, 3))
    got = _replies(controller, switch.send(FlowStatsReply(xid=4, stats=flows)))
    seen = [s.priority for m in got for s in m.stats]
    if version == OFP13_VERSION:
        assert seen == [1, 2, 3] and switch.left_out == []
    else:
        assert seen == [1, 3]
        assert [kind for kind, _ in switch.left_out] == ["FlowStats"]
    assert got[-1].flags & MultipartFlags.MORE == 0


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("nicira", [False, True])
def test_an_error_quotes_the_whole_request_up_to_65535_bytes(version: int, nicira: bool) -> None:
    """An error quotes every byte of the request (Open vSwitch 3.1 does); one about a
    request near the 65535-byte limit is cut where the error reaches the limit."""
    err = (RemoteProtocolError.nicira("x", NxError.INVALID_TLV_FIELD) if nicira
           else RemoteProtocolError("x", ErrorType.BAD_REQUEST, BadRequestCode.BAD_TYPE))  # fmt: skip
    for size in (100, 4000, 65535):
        request = bytes([version, 99]) + struct.pack("!HI", size, 7) + bytes(range(256)) * 256
        request = request[:size]
        reply = err.with_request(request, 7).reply(version)
        (one,) = _messages(reply)
        head = len(err.with_request(b"", 7).reply(version))
        assert one[:1] == bytes([version]) and one[1] == MsgType.ERROR
        assert one[head:] == request[: 0xFFFF - head]
        assert (len(one) == 0xFFFF) == (size + head > 0xFFFF)
