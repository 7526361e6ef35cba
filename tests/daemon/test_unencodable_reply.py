"""A message the switch cannot encode costs that message only: a reply becomes an error
quoting the request (NXBRC_UNENCODABLE_ERROR), an asynchronous message is not sent, and
the session, the other sessions and the daemon's loop go on. In process, on a virtual
clock; the pipeline is made to produce a value too large for its field (the kind of slip
that once took the whole daemon down: set_field:0->tun_metadata0 before its fix)."""

from __future__ import annotations

import socket
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from hitless.daemon.ofmgmt import OfManager
from hitless.ofproto.ofhandler import OfHandler, OfSession
from hitless.openflow import (
    NEED_DATA,
    BarrierReply,
    BarrierRequest,
    Connection,
    EchoRequest,
    ErrorMsg,
    GetConfigReply,
    GetConfigRequest,
    Message,
    PortStatus,
    SetConfig,
)
from hitless.openflow.constants import OFP10_VERSION, OFP13_VERSION
from tests.ofproto.helpers import P, Rig

TOO_BIG = 1 << 20  # miss_send_len is a 16-bit field


class _Slipping(OfHandler):
    """The real pipeline, except that its switch config reply carries a value its 16-bit
    field cannot hold."""

    def handle(
        self,
        conn: Connection,
        session: OfSession,
        msg: Message,
        now: float,
        others: Iterable[Connection] = (),
    ) -> list[Message]:
        if isinstance(msg, GetConfigRequest):
            return [GetConfigReply(xid=msg.xid, miss_send_len=TOO_BIG)]
        return super().handle(conn, session, msg, now, others)


def _events(peer: Connection, sock: socket.socket) -> list[object]:
    try:
        data = sock.recv(1 << 20)
    except BlockingIOError:
        data = b""
    if data:
        peer.receive_data(data)
    out = []
    while (ev := peer.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def _session(path: str, version: int) -> tuple[socket.socket, Connection]:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    sock.setblocking(False)
    peer = Connection(versions=(version,), probe_interval=None)
    sock.sendall(peer.start())
    return sock, peer


def test_a_reply_that_cannot_be_encoded_becomes_an_error_and_the_daemon_goes_on() -> None:
    r = Rig({"br0": P(type="internal")})
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "br0.mgmt")
        mgr = OfManager(path, _Slipping(r.bridge, 1), 0.0)
        socks: list[socket.socket] = []
        try:
            for version in (OFP13_VERSION, OFP10_VERSION):
                sock, peer = _session(path, version)
                socks.append(sock)
                mgr.run(0.0)
                mgr.run(0.0)
                _events(peer, sock)
                request = GetConfigRequest(xid=41)
                sock.sendall(peer.send(request) + peer.send(BarrierRequest(xid=42)))
                mgr.run(1.0)
                got = _events(peer, sock)
                errors = [e for e in got if isinstance(e, ErrorMsg)]
                assert len(errors) == 1, got
                err = errors[0]
                assert err.xid == 41
                # NXBRC_UNENCODABLE_ERROR: Nicira's (1, 521) in 1.0, experimenter code 10 later
                raw = err.encode(version)
                if version == OFP10_VERSION:
                    assert struct.unpack_from("!HHIHH", raw, 8) == (0xB0C2, 0, 0x2320, 1, 521)
                    assert raw[20:] == peer.send(request)
                else:
                    assert struct.unpack_from("!HHI", raw, 8) == (0xFFFF, 10, 0x2320)
                    assert raw[16:] == peer.send(request)
                assert [e for e in got if isinstance(e, BarrierReply)] == [BarrierReply(xid=42)]
                sock.sendall(peer.send(EchoRequest(xid=43)))
                mgr.run(2.0)
                assert any(getattr(e, "xid", None) == 43 for e in _events(peer, sock))
            assert len(mgr.clients) == 2
        finally:
            for s in socks:
                s.close()
            mgr.close()


def test_an_asynchronous_message_that_cannot_be_encoded_is_not_sent() -> None:
    """A port status the pipeline got wrong is left out; the session's next exchange and
    a later good port status still arrive (the session asks for asynchronous messages
    with a miss_send_len, as ``ovs-ofctl monitor`` does)."""
    r = Rig({"br0": P(type="internal")})
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "br0.mgmt")
        handler = OfHandler(r.bridge, 1)
        mgr = OfManager(path, handler, 0.0)
        sock, peer = _session(path, OFP13_VERSION)
        try:
            mgr.run(0.0)
            mgr.run(0.0)
            _events(peer, sock)
            sock.sendall(peer.send(SetConfig(miss_send_len=128)))
            mgr.run(0.5)
            good = PortStatus(reason=0, desc=handler.port_descs()[0])
            bad = PortStatus(reason=0, desc=replace(good.desc, port_no=1 << 40))  # 32 bits
            queued = [[bad], [good]]
            handler.port_status = lambda: queued.pop(0) if queued else []  # type: ignore[method-assign]
            mgr.run(1.0)
            assert [e for e in _events(peer, sock) if isinstance(e, PortStatus)] == []
            sock.sendall(peer.send(BarrierRequest(xid=7)))
            mgr.run(2.0)
            got = _events(peer, sock)
            assert BarrierReply(xid=7) in got
            assert [e.reason for e in got if isinstance(e, PortStatus)] == [0], got
            assert len(mgr.clients) == 1
        finally:
            sock.close()
            mgr.close()
