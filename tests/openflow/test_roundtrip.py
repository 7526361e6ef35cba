"""Property tests: every message, in 1.3, 1.4 and 1.5, survives encode then decode unchanged."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitless.openflow import decode
from hitless.openflow.constants import OFP13_VERSION, OFP14_VERSION, OFP15_VERSION
from hitless.openflow.messages import (
    FlowRemoved,
    Message,
    RequestForward,
    decode_header,
    reason_before14,
)
from hitless.openflow.multipart import TableStatus
from tests.openflow.strategies import all_message_classes, message_strategies

VERSIONS = [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION]
IDS = ["of13", "of14", "of15"]
# Every (version, strategy) pair: a version has a strategy per message class it carries.
CASES = [
    pytest.param(v, i, id=f"{name}-{i}")
    for v, name in zip(VERSIONS, IDS, strict=True)
    for i in range(len(message_strategies(v)))
]


@pytest.mark.parametrize(("version", "index"), CASES)
def test_round_trip(version: int, index: int) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message_strategies(version)[index])
    def check(msg: Message) -> None:
        data = msg.encode(version)
        header = decode_header(data)
        assert (header.version, header.length, header.xid) == (version, len(data), msg.xid)
        got = decode(data)
        if isinstance(msg, FlowRemoved) and version < OFP14_VERSION:
            # a meter's deletion is a 1.4 reason: before 1.4 it is sent as a delete, as
            # Open vSwitch sends it (reason_before14), and reads back as one
            msg = replace(msg, reason=reason_before14(msg.reason))
        if version >= OFP15_VERSION and "MeterInstruction" in repr(msg):
            # 1.5 carries a meter as the first action of the apply actions: it reads back
            # as the meter instruction in its place, first; the bytes are the same
            assert got.encode(version) == data
        else:
            assert got == msg

    check()


@pytest.mark.parametrize("version", VERSIONS, ids=IDS)
def test_strategies_cover_every_message_class(version: int) -> None:
    @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        covered = {type(data.draw(s)) for s in message_strategies(version)}
        # OFPT_REQUESTFORWARD and OFPT_TABLE_STATUS have no 1.3 form here (ONF's
        # experimenter ones are not implemented): every other class has one in every version.
        absent = {RequestForward, TableStatus} if version < OFP14_VERSION else set()
        assert covered == all_message_classes() - absent

    check()


@given(st.sampled_from(VERSIONS), st.data())
@settings(max_examples=100, deadline=None)
def test_encoding_is_8_byte_aligned_where_the_spec_pads(version: int, data: st.DataObject) -> None:
    """Matches, actions, instructions, buckets and bands are padded to 8 bytes (§7.2)."""
    from tests.openflow.strategies import actions, instructions, matches

    assert len(data.draw(matches()).encode()) % 8 == 0
    assert len(data.draw(actions()).encode()) % 8 == 0
    assert len(data.draw(instructions()).encode()) % 8 == 0
