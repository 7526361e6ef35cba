"""os-ken's OpenFlow 1.3/1.4 golden packets, read at test time from the installed package.

Every 1.3 packet os-ken ships must decode and re-encode to the same bytes (a switch
receives the controller-to-switch ones and sends the others). The 1.4 packets of the
types this codec speaks decode too; those whose optional properties (optical port
properties, queue properties) it drops re-encode to a stable subset.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hitless.openflow import RemoteProtocolError, decode
from hitless.openflow.constants import BadRequestCode, ErrorType

os_ken = pytest.importorskip("os_ken")
DATA = Path(os_ken.__file__).parent / "tests" / "packet_data"
OF13 = sorted(p for p in (DATA / "of13").glob("*") if p.stat().st_size)
OF14 = sorted((DATA / "of14").glob("*"))

# 1.4 messages the switch does not implement yet: the codec refuses them as the peer's fault.
OF14_UNSUPPORTED = {
    "5-65-ofp_role_status.packet": BadRequestCode.BAD_TYPE,
}
# Async config with an experimenter property: refused with OFPBPC_BAD_EXPERIMENTER.
OF14_BAD_PROPERTY = {"5-41-ofp_get_async_reply.packet", "5-42-ofp_set_async.packet"}
# Carry properties (optical, experimenter) the codec does not keep.
OF14_LOSSY = {
    "5-22-ofp_port_mod.packet",
    "5-30-ofp_port_stats_reply.packet",
    "5-36-ofp_queue_stats_reply.packet",
    "5-37-ofp_port_status.packet",
    "5-52-ofp_port_desc_reply.packet",
    "5-64-ofp_queue_desc_reply.packet",  # queue rate properties (hitless has no queues)
}


def test_golden_files_found() -> None:
    assert len(OF13) > 90
    assert len(OF14) > 60


# os-ken's ONF flow monitor request carries a match Open vSwitch cannot decode either
# (``ovs-ofctl ofp-print``: OFPBMC_BAD_LEN): refused as a bad match.
OF13_BAD_MATCH = {"4-63-onf_flow_monitor_request.packet"}


@pytest.mark.parametrize("path", OF13, ids=lambda p: p.name)
def test_of13_golden_round_trip(path: Path) -> None:
    data = path.read_bytes()
    if path.name in OF13_BAD_MATCH:
        with pytest.raises(RemoteProtocolError) as info:
            decode(data)
        assert info.value.type == ErrorType.BAD_MATCH
        return
    msg = decode(data)
    assert msg.encode(data[0]) == data


@pytest.mark.parametrize("path", OF14, ids=lambda p: p.name)
def test_of14_golden(path: Path) -> None:
    data = path.read_bytes()
    if path.name in OF14_UNSUPPORTED:
        with pytest.raises(RemoteProtocolError) as info:
            decode(data)
        assert (info.value.type, info.value.code) == (
            ErrorType.BAD_REQUEST,
            OF14_UNSUPPORTED[path.name],
        )
        assert info.value.data == data
        return
    if path.name in OF14_BAD_PROPERTY:
        with pytest.raises(RemoteProtocolError) as info:
            decode(data)
        assert info.value.type == ErrorType.BAD_PROPERTY
        return
    msg = decode(data)
    encoded = msg.encode(data[0])
    if path.name in OF14_LOSSY:
        assert decode(encoded) == msg
        assert len(encoded) < len(data)
    else:
        assert encoded == data


def test_truncated_flow_mod() -> None:
    """Cut anywhere but at an instruction boundary, a flow mod is the peer's error."""
    data = (DATA / "of13" / "4-2-ofp_flow_mod.packet").read_bytes()
    whole = decode(data)
    errors = 0
    for cut in range(8, len(data)):
        truncated = data[:2] + cut.to_bytes(2, "big") + data[4:cut]
        try:
            shorter = decode(truncated)
        except RemoteProtocolError as e:
            assert e.data == truncated
            assert e.xid == int.from_bytes(data[4:8], "big")
            errors += 1
        else:
            assert shorter != whole
    assert errors >= len(data) - 8 - 4
