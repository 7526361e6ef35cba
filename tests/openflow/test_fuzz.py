"""Fuzzing: random bytes and mutated valid messages never raise anything but our errors,
and a bad message with an intact header never desynchronises the stream."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitless.openflow import (
    Connection,
    ConnectionEvent,
    EchoAnswered,
    EchoRequest,
    Message,
    ProtocolErrorEvent,
    RemoteProtocolError,
    decode,
)
from hitless.openflow.connection import CLOSED, NEED_DATA
from hitless.openflow.constants import OFP13_VERSION, OFP14_VERSION, ErrorType, MsgType
from tests.openflow.strategies import messages

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
VERSION = st.sampled_from([OFP13_VERSION, OFP14_VERSION])
# The two message-drawing properties are CPU work that grows with the machine's load, not
# a wait that could hang: 47 s and 45 s for their 400 examples at load average 5-7 on the
# 2-core test machine, and past the suite's 300 s limit at load 35. Their own limit is
# six times the suite's (the examples themselves stay 400).
CPU_BOUND = pytest.mark.timeout(1800)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    try:
        decode(data)
    except RemoteProtocolError as e:
        assert e.data == data  # the whole request, as Open vSwitch 3.1 quotes it
        assert 0 <= e.type <= 0xFFFF and 0 <= e.code <= 0xFFFF


@st.composite
def mutated(draw, version: int) -> bytes:  # type: ignore[no-untyped-def]
    """A valid message, then damaged: truncated body, bytes flipped, bad type, junk added.
    The header's length always matches the result (the framing stays intact)."""
    data = bytearray(draw(messages(version)).encode(version))
    kind = draw(st.sampled_from(["truncate", "flip", "type", "extend", "version"]))
    if kind == "truncate" and len(data) > 8:
        del data[draw(st.integers(8, len(data) - 1)) :]
    elif kind == "flip" and len(data) > 8:
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(8, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
    elif kind == "type":
        data[1] = draw(st.integers(0, 255))
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=16))
    else:
        data[0] = draw(st.integers(0, 255))
    struct.pack_into("!H", data, 2, len(data))
    return bytes(data)


@CPU_BOUND
@SETTINGS
@given(VERSION.flatmap(mutated))
def test_mutated_messages_decode_or_raise_ours(data: bytes) -> None:
    try:
        msg = decode(data)
    except RemoteProtocolError as e:
        assert e.data == data  # the whole request, as Open vSwitch 3.1 quotes it
        assert e.xid == struct.unpack_from("!I", data, 4)[0]
        # 1.4 carries every error natively (1.3 sends bundle errors as ONF experimenter
        # errors, 1.0 maps codes: tests/openflow/test_ofp10.py).
        assert e.reply(5)[8:12] == struct.pack("!HH", e.type, e.code)
    else:
        assert isinstance(msg, Message)


def _open(version: int) -> Connection:
    conn = Connection(versions=(version,))
    conn.start()
    peer = Connection(versions=(version,))
    conn.receive_data(peer.start())
    assert isinstance(conn.next_event(), ConnectionEvent)
    return conn


@CPU_BOUND
@SETTINGS
@given(VERSION, st.data())
def test_stream_survives_bad_messages(version: int, data: st.DataObject) -> None:
    """Valid and damaged messages interleaved, fed in random chunks: every valid message
    comes out in order, every damaged one as an error event, and the stream never stops."""
    conn = _open(version)
    items = data.draw(
        st.lists(
            st.one_of(messages(version).map(lambda m: m.encode(version)), mutated(version)),
            max_size=8,
        )
    )
    marker = [EchoRequest(xid=i + 1, data=b"mark").encode(version) for i in range(len(items))]
    stream = b"".join(x + mk for x, mk in zip(items, marker, strict=True))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    bounds = zip([0, *cuts], [*cuts, len(stream)], strict=True)
    pieces = [stream[a:b] for a, b in bounds if b > a]  # b"" would mean end of stream
    echoes = []
    for piece in pieces:
        conn.receive_data(piece)
        while (ev := conn.next_event()) is not NEED_DATA:
            assert ev is not CLOSED
            if isinstance(ev, ProtocolErrorEvent):
                assert not ev.fatal
                assert ev.data[1] == MsgType.ERROR
            elif isinstance(ev, EchoAnswered) and ev.request.data == b"mark":
                echoes.append(ev.request.xid)
    # Every marker came through: no message boundary was lost.
    assert echoes == list(range(1, len(items) + 1))
    assert conn.unparsed == b""


@SETTINGS
@given(st.binary(max_size=200))
def test_connection_random_bytes_never_raise(data: bytes) -> None:
    for conn in (Connection(), _open(OFP13_VERSION)):
        conn.receive_data(data)
        for _ in range(len(data) + 2):
            ev = conn.next_event()
            if ev is NEED_DATA or ev is CLOSED:
                break
            if isinstance(ev, ProtocolErrorEvent) and ev.fatal:
                assert conn.next_event() is CLOSED
                break


def test_length_below_header_is_fatal() -> None:
    conn = _open(OFP13_VERSION)
    conn.receive_data(struct.pack("!BBHI", OFP13_VERSION, 2, 4, 9) + b"rest")
    ev = conn.next_event()
    assert isinstance(ev, ProtocolErrorEvent) and ev.fatal
    assert ev.error.type == ErrorType.BAD_REQUEST and ev.error.xid == 9
    assert conn.next_event() is CLOSED
