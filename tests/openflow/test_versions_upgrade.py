"""Sessions in OpenFlow 1.0 (Nicira flow and packet-in formats negotiated) and 1.5 cross a hitless
upgrade on the same socket, with their version and Nicira session state, and the
bridge's Geneve option map comes along."""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hitless.openflow import (
    NEED_DATA,
    Connection,
    EchoAnswered,
    Experimenter,
    FlowStatsReply,
    FlowStatsRequest,
    Message,
    Negotiated,
    Output,
    PacketOut,
    SetConfig,
)
from hitless.openflow.constants import Port
from hitless.openflow.match import Match
from hitless.openflow.nx import NxFlowFormat, NxPacketInFormat, encode_nxm
from hitless.openflow.nxmsg import (
    NxSetFlowFormat,
    NxSetPacketInFormat,
    NxTlvTableMod,
    NxTlvTableReply,
    NxTlvTableRequest,
    TlvCommand,
    TlvMap,
)
from tests.netns import unique_suffix
from tests.switch import Sw

BIN = Path(sys.executable).parent


class Client:
    """A management-socket session in one version, our codec on a real unix socket."""

    def __init__(self, path: str, version: int) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.sock.settimeout(10)
        self.conn = Connection(versions=(version,), probe_interval=None)
        self.sock.sendall(self.conn.start())
        self.lock = threading.Lock()
        self.events: list[object] = []
        assert isinstance(self.next(), Negotiated)

    def next(self) -> object:
        while True:
            if self.events:
                return self.events.pop(0)
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                data = self.sock.recv(65536)
                assert data, "the switch closed the session"
                self.conn.receive_data(data)
            elif isinstance(ev, EchoAnswered):
                self.sock.sendall(ev.data)
            else:
                return ev

    def send(self, msg: Message) -> None:
        self.sock.sendall(self.conn.send(msg))

    @contextmanager
    def answering_echoes(self) -> Iterator[None]:
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                if not select.select([self.sock], [], [], 0.05)[0]:
                    continue
                data = self.sock.recv(65536)
                if not data:
                    return
                self.conn.receive_data(data)
                while (ev := self.conn.next_event()) is not NEED_DATA:
                    if isinstance(ev, EchoAnswered):
                        self.sock.sendall(ev.data)
                    else:
                        self.events.append(ev)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(5)


def _nxst_flow_request(xid: int) -> bytes:
    """NXST_FLOW for every flow, as ovs-ofctl sends it in 1.0."""
    nxm = encode_nxm(Match())
    body = struct.pack("!HHII4x", 0xFFFF, 0, 0x2320, 0) + struct.pack(
        "!HHB3x", 0xFFFF, len(nxm), 0xFF
    )
    return struct.pack("!BBHI", 1, 16, 8 + len(body), xid) + body


def test_1_0_and_1_5_sessions_cross_an_upgrade(started: Sw) -> None:
    br = f"bru{unique_suffix()}"
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy")
    started.vsctl("--", "--id=@m", "get", "bridge", br)  # the bridge exists
    mgmt = f"{started.rundir.path}/{br}.mgmt"
    of10 = Client(mgmt, 1)
    of10.send(NxSetFlowFormat(xid=2, format=NxFlowFormat.NXM))
    # Asynchronous messages wanted, as Nicira NXT_PACKET_IN (not OFPT_PACKET_IN).
    of10.send(SetConfig(xid=5, miss_send_len=128))
    of10.send(NxSetPacketInFormat(xid=6, format=NxPacketInFormat.NXT_PACKET_IN))
    of15 = Client(mgmt, 6)
    geneve = TlvMap(0x0102, 0x80, 4, 0)
    of15.send(NxTlvTableMod(xid=3, command=TlvCommand.ADD, maps=(geneve,)))
    of15.send(NxTlvTableRequest(xid=4))
    assert isinstance(of15.next(), NxTlvTableReply)
    old = started.daemon_pid

    with of10.answering_echoes(), of15.answering_echoes():
        r = subprocess.run(
            [str(BIN / "hitless"), "upgrade", "--rundir", str(started.rundir.path), "--json"],
            capture_output=True, text=True, timeout=120, cwd="/", env=dict(os.environ),
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and started.daemon_pid not in (None, old), report

    # 1.0, same socket: the flow format (NXM) negotiated before the upgrade still holds,
    # so an NXST_FLOW request gets an NXST_FLOW reply (vendor stats, Nicira subtype 0).
    of10.sock.sendall(_nxst_flow_request(7))
    reply = of10.next()
    assert isinstance(reply, FlowStatsReply) and reply.xid == 7
    assert of10.conn.version == 1 and reply.stats  # the standalone NORMAL flow
    # The packet-in format came along: a packet-out to the controller comes back to
    # this session as NXT_PACKET_IN.
    frame = bytes.fromhex("ffffffffffff020000007409" + "88b5" + "00" * 46)
    of10.send(PacketOut(xid=10, in_port=Port.CONTROLLER, actions=(Output(Port.CONTROLLER),),
                        data=frame))  # fmt: skip
    pin = of10.next()
    assert isinstance(pin, Experimenter) and (pin.experimenter, pin.exp_type) == (0x2320, 17)
    assert pin.data.endswith(frame)
    # 1.5, same socket: a 1.5 request answered in 1.5; the option map is still there.
    of15.send(FlowStatsRequest(xid=8))
    got = of15.next()
    assert isinstance(got, FlowStatsReply) and got.xid == 8
    of15.send(NxTlvTableRequest(xid=9))
    tlv = of15.next()
    assert isinstance(tlv, NxTlvTableReply) and tlv.maps == (geneve,)
    of10.sock.close()
    of15.sock.close()
