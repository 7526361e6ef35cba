"""Property tests: every message, in 1.3, 1.4 and 1.5, survives encode then decode unchanged."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitless.openflow import decode
from hitless.openflow.constants import OFP13_VERSION, OFP14_VERSION, OFP15_VERSION
from hitless.openflow.messages import Message, decode_header
from tests.openflow.strategies import all_message_classes, message_strategies

VERSIONS = [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION]
IDS = ["of13", "of14", "of15"]
N = len(message_strategies(OFP13_VERSION))


@pytest.mark.parametrize("version", VERSIONS, ids=IDS)
@pytest.mark.parametrize("index", range(N))
def test_round_trip(version: int, index: int) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message_strategies(version)[index])
    def check(msg: Message) -> None:
        data = msg.encode(version)
        header = decode_header(data)
        assert (header.version, header.length, header.xid) == (version, len(data), msg.xid)
        assert decode(data) == msg

    check()


@pytest.mark.parametrize("version", VERSIONS, ids=IDS)
def test_strategies_cover_every_message_class(version: int) -> None:
    @settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def check(data: st.DataObject) -> None:
        covered = {type(data.draw(s)) for s in message_strategies(version)}
        assert covered == all_message_classes()

    check()


@given(st.sampled_from(VERSIONS), st.data())
@settings(max_examples=100, deadline=None)
def test_encoding_is_8_byte_aligned_where_the_spec_pads(version: int, data: st.DataObject) -> None:
    """Matches, actions, instructions, buckets and bands are padded to 8 bytes (§7.2)."""
    from tests.openflow.strategies import actions, instructions, matches

    assert len(data.draw(matches()).encode()) % 8 == 0
    assert len(data.draw(actions()).encode()) % 8 == 0
    assert len(data.draw(instructions()).encode()) % 8 == 0
