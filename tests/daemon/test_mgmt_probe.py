"""An idle session on the bridge's management socket is probed after 60 s of silence, as
Open vSwitch probes its ``DIR/<bridge>.mgmt`` sessions (bridge.c: probe_interval 60),
not after the 5 s a controller connection waits. In process, on a virtual clock."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from hitless.daemon.ofmgmt import MGMT_PROBE_INTERVAL, OfManager
from hitless.ofproto.ofhandler import OfHandler
from hitless.openflow import NEED_DATA, Connection, EchoAnswered, Negotiated
from tests.ofproto.helpers import P, Rig


def _events(peer: Connection, sock: socket.socket) -> list[object]:
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        data = b""
    if data:
        peer.receive_data(data)
    out = []
    while (ev := peer.next_event()) is not NEED_DATA:
        out.append(ev)
    return out


def test_idle_management_session_is_probed_after_60_seconds() -> None:
    r = Rig({"br0": P(type="internal")})
    with tempfile.TemporaryDirectory() as d:
        path = str(Path(d) / "br0.mgmt")
        mgr = OfManager(path, OfHandler(r.bridge, 1), 0.0)
        sock = socket.socket(socket.AF_UNIX)
        try:
            sock.connect(path)
            sock.setblocking(False)
            peer = Connection(versions=(4,), probe_interval=None)
            sock.sendall(peer.start())
            mgr.run(0.0)
            mgr.run(0.0)
            assert any(isinstance(e, Negotiated) for e in _events(peer, sock))
            for now in (5.0, 6.0, 30.0, MGMT_PROBE_INTERVAL - 1):
                mgr.run(now)
                assert _events(peer, sock) == [], f"probed at {now} s"
            mgr.run(MGMT_PROBE_INTERVAL + 0.5)
            evs = _events(peer, sock)
            assert any(isinstance(e, EchoAnswered) for e in evs), evs  # it asked, we answered
        finally:
            sock.close()
            mgr.close()
