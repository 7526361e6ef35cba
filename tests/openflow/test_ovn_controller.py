"""Debian's ovn-controller against a hitless bridge: it speaks only OpenFlow 1.5 (with
Open vSwitch's extensions), and any error on its flow connection makes it start over.

The test gives ovn-controller a private southbound database (initialised, empty: no
ovn-northd) and a hitless integration bridge on the dummy datapath, lets it run its
whole start-up (meter features, the Geneve option map, packet-in format packet_in2,
miss_send_len 65535, meter delete-all, an atomic ordered bundle with group delete-all
and its first flows) and checks, from its own ``vconn`` debug log, that it negotiated
1.5 and received no OFPT_ERROR, and from the bridge that its flows and its option map
are installed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.netns import unique_suffix
from tests.ovn.ovn import run
from tests.ovs_dummy import stop_pidfile
from tests.switch import Sw
from tests.wait import wait_for

SB_SCHEMA = Path("/usr/share/ovn/ovn-sb.ovsschema")
pytestmark = pytest.mark.skipif(
    shutil.which("ovn-controller") is None or not SB_SCHEMA.exists(),
    reason="needs Debian's ovn-host and ovn-central (make setup installs them)",
)


def test_ovn_controller_starts_on_openflow_15_without_errors(started: Sw) -> None:
    d = started.rundir.path
    bridge = f"bri{unique_suffix()}"
    env = {**os.environ, "OVS_RUNDIR": str(d), "OVN_RUNDIR": str(d)}
    log = d / "ovn-controller.log"
    try:
        run(["ovsdb-tool", "create", str(d / "sb.db"), str(SB_SCHEMA)])
        run(["ovsdb-server", str(d / "sb.db"), f"--remote=punix:{d / 'sb.sock'}",
              f"--pidfile={d / 'sb.pid'}", f"--unixctl={d / 'sb.ctl'}",
              f"--log-file={d / 'sb.log'}", "--detach", "--no-chdir"])  # fmt: skip
        run(["ovn-sbctl", f"--db=unix:{d / 'sb.sock'}", "init"])
        started.vsctl("add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=dummy",
                      "fail_mode=secure", "other_config:disable-in-band=true")  # fmt: skip
        started.vsctl("set", "open", ".", "external_ids:system-id=hv-test",
                      f"external_ids:ovn-remote=unix:{d / 'sb.sock'}",
                      "external_ids:ovn-encap-type=geneve",
                      "external_ids:ovn-encap-ip=127.0.0.1",
                      f"external_ids:ovn-bridge={bridge}")  # fmt: skip
        run(["ovn-controller", f"unix:{started.rundir.db_remote.split(':', 1)[1]}",
              f"--pidfile={d / 'ovn-controller.pid'}", f"--log-file={log}", "--detach",
              "--no-chdir", "-vvconn:file:dbg"], env)  # fmt: skip

        def text() -> str:
            return log.read_text(errors="replace") if log.exists() else ""

        # Its start-up ends with the bundle commit (open and commit replies) and a barrier.
        wait_for(lambda: text().count("received: OFPT_BUNDLE_CONTROL") >= 2, "bundle commit")
        wait_for(lambda: "NXT_SET_PACKET_IN_FORMAT" in text(), "packet-in format")
        seen = text()
        assert "negotiated OpenFlow version 0x06" in seen
        assert "format=nxt_packet_in2" in seen
        assert "miss_send_len=65535" in seen
        assert "OFPT_METER_MOD" in seen and "NXT_TLV_TABLE_MOD" in seen
        assert "OFPT_ERROR" not in seen, seen[seen.find("OFPT_ERROR") - 300 :][:1500]
        flows = run(["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", bridge], env)
        assert "table=41" in flows and "reg10=0x1/0x1" in flows, flows
        tlv = run(["ovs-ofctl", "-O", "OpenFlow15", "dump-tlv-map", bridge], env)
        assert "tun_metadata0" in tlv, tlv
        assert "refused" not in started.log()
    finally:
        stop_pidfile(d / "ovn-controller.pid")
        stop_pidfile(d / "sb.pid")


def test_packet_in2_continuation_and_resume_on_the_wire() -> None:
    """NXT_PACKET_IN2 carries a pause's continuation as Open vSwitch nests it (property
    8, content 8 bytes in), and NXT_RESUME as ovn-controller builds it (the packet-in's
    properties with the metadata rewritten, the continuation copied back) parses into
    the packet, the metadata (registers as masked xreg halves) and the same bytes; a
    resume without a continuation is the sender's error."""
    from hitless.openflow.constants import OFP15_VERSION
    from hitless.openflow.errors import RemoteProtocolError
    from hitless.openflow.match import Match, field
    from hitless.openflow.messages import PacketIn, decode
    from hitless.openflow.nxmsg import NxResume, encode_nx_packet_in

    cont = bytes(range(13))
    meta = Match((field("in_port", 1), field("xreg0", 8 << 32, 0xFFFFFFFF << 32)))
    pin = PacketIn(reason=1, table_id=28, cookie=5, total_len=3, match=meta, data=b"abc",
                   userdata=b"\x01", continuation=cont)  # fmt: skip
    raw = encode_nx_packet_in(pin, 2, OFP15_VERSION)
    at = raw.index(b"\x00\x08\x00\x15")  # type 8, length 4 + 4 padding + 13
    assert raw[at + 4 : at + 8] == bytes(4) and raw[at + 8 : at + 21] == cont
    # ovn-controller's NXT_RESUME: the packet-in2 body, subtype 28 instead of 30.
    body = raw[16:]
    resume = raw[:4] + b"\x00" * 4 + raw[8:12] + (28).to_bytes(4, "big") + body
    resume = resume[:2] + len(resume).to_bytes(2, "big") + resume[4:]
    msg = decode(resume)
    assert isinstance(msg, NxResume)
    assert (msg.data, msg.continuation) == (b"abc", cont)
    assert msg.metadata == meta
    assert decode(msg.encode(OFP15_VERSION)) == msg
    bare = NxResume(data=b"abc").encode(OFP15_VERSION)
    cut = bare[: len(bare) - 8]  # without the (empty) continuation property
    cut = cut[:2] + len(cut).to_bytes(2, "big") + cut[4:]
    with pytest.raises(RemoteProtocolError):
        decode(cut)
