"""The ``controller`` traffic agent: an OpenFlow controller session held across the
operation. Run as ``ip netns exec NS python -m hitless.impact.controller --port P
--end T --out FILE`` in the switch's namespace.

It connects to the switch's passive controller port (``ptcp:P:127.0.0.1``, set with
``ovs-vsctl set-controller``), says HELLO, asks for the features, then sends an echo
request every ``--interval`` seconds, answers the switch's echo requests and ignores
everything else. When the session ends (end of stream, reset, a protocol error) it
connects again every ``--interval`` until the switch accepts. It prints ``ready`` on
stderr once the first session has its features reply, so the runner starts the other
traffic only with the controller in place, and stops at ``--end`` or on SIGTERM, after
waiting up to ``--linger`` seconds for the replies still due.

Records (JSON lines, ``time.monotonic()`` seconds; ``conn`` numbers the sessions):
``connected``, ``features``, ``echo-tx`` / ``echo-rx`` (by ``xid``), ``disconnected``
(with ``kind``), ``connect-failed`` (first failure of a run of retries, with the
count in the next ``connected`` record's ``retries``), ``end``.

The controller side is our own sans-IO codec (``hitless.openflow.Connection``): the
import costs start-up time, which is why this is not one of ``hitless.impact.agents``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import select
import signal
import socket
import sys
import time
from typing import Any

from hitless.impact.agents import _errkind, _write
from hitless.openflow import (
    CLOSED,
    NEED_DATA,
    Connection,
    EchoAnswered,
    EchoReply,
    EchoRequest,
    FeaturesReply,
    FeaturesRequest,
    Negotiated,
    ProtocolErrorEvent,
)

Record = dict[str, Any]
_stop = False


def _on_term(_signum: int, _frame: object) -> None:
    global _stop
    _stop = True


def _now() -> float:
    return time.monotonic()


class _Session:
    """One TCP connection to the switch and its OpenFlow state."""

    def __init__(self, sock: socket.socket, n: int) -> None:
        self.sock = sock
        self.n = n
        self.conn = Connection(versions=(4,), probe_interval=None)
        self.open = False  # features reply received
        self.outstanding: set[int] = set()
        self.next_echo = 0.0
        sock.setblocking(False)


def run(args: argparse.Namespace) -> list[Record]:
    recs: list[Record] = []
    end = float(args.end)
    ready = False
    n = 0
    retries = 0
    s: _Session | None = None

    def drop(kind: str) -> None:
        nonlocal s
        assert s is not None
        recs.append({"ev": "disconnected", "t": _now(), "kind": kind, "conn": s.n})
        with contextlib.suppress(OSError):
            s.sock.close()
        s = None

    def handle(data: bytes) -> str | None:
        """Feed bytes, act on events; the reason to drop the session, if any."""
        assert s is not None
        t = _now()
        s.conn.receive_data(data)
        while True:
            ev = s.conn.next_event()
            if ev is NEED_DATA:
                return None
            if ev is CLOSED:
                return "closed"
            if isinstance(ev, Negotiated):
                if ev.data:
                    s.sock.sendall(ev.data)
                s.sock.sendall(s.conn.send(FeaturesRequest(xid=s.conn.next_xid())))
            elif isinstance(ev, FeaturesReply):
                s.open = True
                s.next_echo = t
                recs.append({"ev": "features", "t": t, "conn": s.n})
            elif isinstance(ev, EchoAnswered):
                s.sock.sendall(ev.data)
            elif isinstance(ev, EchoReply):
                if ev.xid in s.outstanding:
                    s.outstanding.discard(ev.xid)
                    recs.append({"ev": "echo-rx", "xid": ev.xid, "t": t, "conn": s.n})
            elif isinstance(ev, ProtocolErrorEvent):
                if ev.data:
                    with contextlib.suppress(OSError):
                        s.sock.sendall(ev.data)
                if ev.fatal:
                    return "protocol-error"
            # anything else (port status, packet-in, errors): ignored

    stopping_at: float | None = None
    while True:
        now = _now()
        if stopping_at is None and (_stop or now >= end):
            stopping_at = now
        if stopping_at is not None and (
            s is None or not s.outstanding or now >= stopping_at + args.linger
        ):
            break
        if s is None:
            if stopping_at is not None:
                break
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.settimeout(1.0)
            try:
                sock.connect((args.host, args.port))
            except OSError as exc:
                sock.close()
                if retries == 0:
                    recs.append({"ev": "connect-failed", "t": _now(), "kind": _errkind(exc)})
                retries += 1
                time.sleep(args.interval)
                continue
            n += 1
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            recs.append({"ev": "connected", "t": _now(), "conn": n, "retries": retries})
            retries = 0
            s = _Session(sock, n)
            try:
                sock.sendall(s.conn.start())
            except OSError as exc:
                drop(_errkind(exc))
            continue
        if s.open and not ready:
            ready = True
            sys.stderr.write("ready\n")
            sys.stderr.flush()
        try:
            if s.open and stopping_at is None and now >= s.next_echo:
                xid = s.conn.next_xid()
                s.sock.sendall(s.conn.send(EchoRequest(xid=xid)))
                s.outstanding.add(xid)
                recs.append({"ev": "echo-tx", "xid": xid, "t": now, "conn": s.n})
                s.next_echo += args.interval
                if s.next_echo < now:  # never a burst to catch up
                    s.next_echo = now + args.interval
            wait = max(0.0, min(s.next_echo - _now(), 0.05)) if s.open else 0.05
            r, _, _ = select.select([s.sock], [], [], wait)
            if r:
                data = s.sock.recv(65536)
                why = handle(data) if data else "closed"
                if why is not None:
                    drop(why)
        except OSError as exc:
            drop(_errkind(exc))
    if s is not None:
        s.sock.close()
    recs.append({"ev": "end", "t": _now(), "sessions": n})
    return recs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hitless.impact.controller", description=__doc__)
    p.add_argument("--host", default="127.0.0.1", help="the switch's controller address")
    p.add_argument("--port", type=int, required=True, help="the switch's ptcp port")
    p.add_argument("--end", type=float, required=True, help="monotonic stop time")
    p.add_argument("--interval", type=float, default=0.02, help="seconds between echoes")
    p.add_argument("--linger", type=float, default=1.0, help="wait for the last replies")
    p.add_argument("--out", default="-", help="JSON lines file ('-': stdout)")
    p.add_argument("--run", type=int, default=0, help="run id (unused, for the runner)")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    gc.disable()  # as the traffic agents (hitless.impact.agents.main): no stalls of our own
    _write(run(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
