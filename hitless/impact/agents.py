"""Traffic agents: small bounded programs that run inside a host's namespace.

Run as ``ip netns exec NS python -m hitless.impact.agents <agent> [options]``. Every
agent stops by itself (``--end``, an absolute ``time.monotonic()`` value, or
``--start`` + ``--duration``), keeps its observations in memory while it runs and
writes them at the end as JSON lines to ``--out`` (``-`` for stdout). Agents that
others connect to (receivers, servers, echo) bind first and then print ``ready`` on
stderr, so a runner can start the senders only when every listener is in place.

CLOCK_MONOTONIC is one clock for every namespace of the machine, so a send time
written by one agent and a receive time taken by another are directly comparable.

Agents (see ``--help`` of each):

  udp-send / udp-recv      sequenced datagrams at a fixed rate (also broadcast)
  udp-duplex               one UDP connection between two fixed ports, sequenced
                            datagrams both ways (one side opens it, the other answers)
  tcp-stream-client/-server one long-lived TCP connection, a timestamped message
                            every interval, echoed back
  tcp-push                  one long-lived TCP connection on which only the side
                            that accepted it sends (the opener only reads)
  tcp-connect / tcp-accept  new TCP connections at a fixed rate
  udp-echo / neigh-probe    flush the neighbour entry of the peer, then time a UDP
                            round trip through the switch (ARP or ND + echo)
  cpu-probe                 the times a CPU ran nothing at all (a real-time probe
                            pinned to it did not wake up): the machine's own stalls
  appctl-probe              what ``ovs-appctl version`` does (connect to the switch's
                            control socket, one JSON-RPC request), at a fixed rate

Only the standard library, and few imports: an agent's start-up time is part of the
measurement set-up. Must not import anything else from hitless.
"""

from __future__ import annotations

import argparse
import errno
import gc
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from typing import IO, Any

__all__ = ["HEADER", "MAGIC", "Until", "main"]

MAGIC = 0x484C494D  # "HLIM"
# magic, run id, stream id, sequence number, send time (monotonic seconds)
HEADER = struct.Struct("!IIIQd")
TCP_MSG = struct.Struct("!Qd")  # sequence number, send time

Record = dict[str, Any]

_stop = False  # set by SIGTERM: listeners finish early and still write their records


def _on_term(_signum: int, _frame: object) -> None:
    global _stop
    _stop = True


# ---------------------------------------------------------------- helpers


def _now() -> float:
    return time.monotonic()


def _sleep_until(t: float) -> None:
    while True:
        d = t - time.monotonic()
        if d <= 0:
            return
        time.sleep(min(d, 0.05))


GO_WAIT = 300.0  # seconds a sender waits for its --go file before it gives up


def _await_go(path: str) -> float:
    """A sender started with ``--go FILE``: say ``ready`` on stderr (its interpreter is
    up, which at load 25-30 takes 1-3 s), then wait for the runner to write the start
    time, common to every sender, into FILE. Without it a sender whose interpreter came
    up after a fixed --start began late, and an operation timed from --start could run
    before that sender sent anything (a port taken down 1.5 s in, lost 0)."""
    sys.stderr.write("ready\n")
    sys.stderr.flush()
    give_up = _now() + GO_WAIT
    while True:
        try:
            with open(path, encoding="utf-8") as f:
                return float(f.read())
        except (OSError, ValueError):  # not written yet (the runner renames it in whole)
            if _now() > give_up:
                raise SystemExit(f"no start time in {path} after {GO_WAIT:g} s") from None
            time.sleep(0.002)


def _family(addr: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _sockaddr(addr: str, port: int, dev: str | None = None) -> tuple[Any, ...]:
    if ":" in addr:
        scope = socket.if_nametoindex(dev) if dev and addr.lower().startswith("fe80") else 0
        return (addr, port, 0, scope)
    return (addr, port)


def _ready() -> None:
    signal.signal(signal.SIGTERM, _on_term)
    sys.stderr.write("ready\n")
    sys.stderr.flush()


def _write(records: list[Record], out: str) -> None:
    fh: IO[str]
    fh = sys.stdout if out == "-" else open(out, "w", encoding="utf-8")  # noqa: SIM115
    try:
        for rec in records:
            fh.write(json.dumps(rec, separators=(",", ":")))
            fh.write("\n")
    finally:
        if fh is not sys.stdout:
            fh.close()
        else:
            fh.flush()


def _errkind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError):
        return {
            errno.ECONNREFUSED: "refused",
            errno.ECONNRESET: "reset",
            errno.EPIPE: "reset",
            errno.ETIMEDOUT: "timeout",
            errno.EHOSTUNREACH: "unreachable",
            errno.ENETUNREACH: "unreachable",
        }.get(exc.errno or 0, errno.errorcode.get(exc.errno or 0, "error").lower())
    return type(exc).__name__


def _end_of(args: argparse.Namespace) -> float:
    if args.end is not None:
        return float(args.end)
    return float(args.start) + float(args.duration)


class Until:
    """A sender's end: ``t0`` + ``--duration``, or, with ``--until FILE``, not before
    the monotonic time that FILE holds. ``measure`` writes it once its operation has
    returned, so an operation that outlasts the planned traffic still has traffic on
    both sides; until the file exists the sender goes on (for at most ``MAX_EXTRA``
    seconds more). ``until(t)`` is the end as known at time ``t``."""

    MAX_EXTRA = 300.0

    def __init__(self, t0: float, args: argparse.Namespace) -> None:
        self.end = t0 + float(args.duration)
        self.path: str | None = getattr(args, "until", None)
        self.limit = self.end + self.MAX_EXTRA

    def __call__(self, t: float) -> float:
        if self.path is None or t < self.end:
            return self.end
        try:
            with open(self.path) as f:
                at = float(f.read())
        except (OSError, ValueError):  # not written yet (or half-written): go on
            self.end = min(t + 0.05, self.limit)
            if self.end >= self.limit:
                self.path = None
            return self.end
        self.end, self.path = max(self.end, at), None
        return self.end


# ---------------------------------------------------------------- UDP stream

# The kernel's receive time of each datagram (SO_TIMESTAMPNS, not in the socket module):
# when the switch's copy reached the host, whenever this process got to read it. It is
# CLOCK_REALTIME; _kernel_time moves it to CLOCK_MONOTONIC with an offset read at each
# call (two clock reads, ~1 us apart).
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
ANCILLARY = socket.CMSG_SPACE(TIMESPEC.size)


def _kernel_time(anc: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack_from(data)
            return sec + nsec * 1e-9 - (time.time() - time.monotonic())
    return None


def udp_send(args: argparse.Namespace) -> list[Record]:
    """Datagrams paced against the monotonic clock: packet n leaves at t0 + n/rate,
    however long the previous one took, so the rate holds on average."""
    fam = _family(args.dst)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if args.broadcast:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if args.dev:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, args.dev.encode())
    dst = _sockaddr(args.dst, args.port, args.dev)
    pad = b"\0" * max(0, args.size - HEADER.size)
    interval = 1.0 / args.rate
    _sleep_until(args.start)
    t0 = max(args.start, _now())
    until = Until(t0, args)
    recs: list[Record] = [{"ev": "start", "t": t0, "rate": args.rate, "stream": args.stream}]
    seq = 0
    while True:
        due = t0 + seq * interval
        if due >= until(due):
            break
        d = due - _now()
        if d > 0:
            time.sleep(d)
        t = _now()
        try:
            s.sendto(HEADER.pack(MAGIC, args.run, args.stream, seq, t) + pad, dst)
            # "u": when sendto returned: the datagram was surely with the switch by
            # then (a sender descheduled before it left must not count as a stall).
            recs.append({"ev": "tx", "seq": seq, "t": t, "u": _now()})
        except OSError as exc:
            recs.append({"ev": "tx", "seq": seq, "t": t, "err": _errkind(exc)})
        seq += 1
    recs.append({"ev": "end", "t": _now(), "count": seq})
    s.close()
    return recs


def udp_recv(args: argparse.Namespace) -> list[Record]:
    """Record every datagram of this run: stream, sequence number, send and receive
    time. Binds to the wildcard address when --bind is empty (needed for broadcast)."""
    fam = _family(args.bind) if args.bind else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((args.bind, args.port))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    _ready()
    end = _end_of(args)
    recs: list[Record] = []
    buf = bytearray(2048)
    while True:
        left = end - _now()
        if left <= 0 or _stop:
            break
        s.settimeout(min(left, 0.2))
        try:
            n, anc, _flags, _addr = s.recvmsg_into([buf], ANCILLARY)
        except TimeoutError:
            continue
        rec = _rx_record(buf, n, anc, args.run)
        if rec is not None:
            recs.append(rec)
    _drain(s, recs, args)
    s.close()
    return recs


def _expected(path: str | None) -> dict[int, int]:
    """The ``--expect`` file: stream id -> the last sequence number its sender sent
    (the harness writes it once the senders have exited); {} without one."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return {int(k): int(v) for k, v in doc.items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _drain(s: socket.socket, recs: list[Record], args: argparse.Namespace) -> None:
    """A receiver's end (SIGTERM: the senders have ended; or --end): read on until
    every stream of this run seen here has had its last datagram (``--expect``), then
    whatever the socket still holds. A stream whose last datagram does not come (lost,
    or still in the switch) keeps the receiver up to --drain seconds more, and never
    before the socket is empty: a receiver that got no CPU while the senders ended
    reads what was queued for it instead of counting it as lost."""
    expect = _expected(getattr(args, "expect", None)) if _stop else {}
    last: dict[int, int] = {}
    for r in recs:
        if r.get("ev") == "rx":
            last[r["stream"]] = max(last.get(r["stream"], -1), r["seq"])
    deadline = _now() + float(getattr(args, "drain", 0.0) or 0.0)
    buf = bytearray(2048)
    while True:
        waiting = any(last[st] < expect[st] for st in last if st in expect)
        wait = max(0.0, deadline - _now()) if waiting else 0.0
        ready, _, _ = select.select([s], [], [], wait)
        if not ready:
            return
        try:
            n, anc, _flags, _addr = s.recvmsg_into([buf], ANCILLARY, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:  # an ICMP error queued on the socket: nothing to read
            continue
        rec = _rx_record(buf, n, anc, args.run)
        if rec is not None:
            recs.append(rec)
            last[rec["stream"]] = max(last.get(rec["stream"], -1), rec["seq"])


def _rx_record(buf: bytearray, n: int, anc: list[tuple[int, int, bytes]], run: int) -> Record | None:
    """The ``rx`` record of a datagram just read (``n`` bytes of ``buf``, its ancillary
    data), or None if it is not one of this run's."""
    t = _now()
    if n < HEADER.size:
        return None
    magic, r, stream, seq, ts = HEADER.unpack_from(buf)
    if magic != MAGIC or r != run:
        return None
    rec: Record = {"ev": "rx", "stream": stream, "seq": seq, "ts": ts, "t": t}
    tk = _kernel_time(anc)
    if tk is not None:
        rec["tk"] = tk
    return rec


def udp_duplex(args: argparse.Namespace) -> list[Record]:
    """One UDP "connection": a socket bound to --bind/--port that sends sequenced
    datagrams at --rate and records every datagram of this run it receives. With
    --dst/--dport it opens the connection (sends from --start, as udp-send); without,
    it answers: it binds, says ready, and from the first datagram it receives sends to
    that datagram's source at its own --rate until --end or SIGTERM. Records are
    udp-send's ``tx`` and udp-recv's ``rx`` in one list.

    Both sides stop sending at the same moment: the opener's --start + --duration (or
    --until). The answerer counts its --duration from the first datagram's send time
    (carried in it; CLOCK_MONOTONIC is one clock for every namespace), not from when it
    read it, and the opener keeps reading --linger past that end, not past its own last
    datagram (at 1 per second that can be a second earlier). Without both, the
    answerer's last datagrams (those of the first datagram's transit time, 1-5 ms)
    went out after the opener had closed its socket and counted as lost."""
    s = socket.socket(_family(args.bind or "0.0.0.0"), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((args.bind, args.port))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.setblocking(False)
    answer = args.dst is None
    recs: list[Record] = []
    peer: tuple[Any, ...] | None = None
    t0: float | None = None
    until: Until | None = None
    stop_at = float("inf")  # when to stop receiving
    if answer:
        _ready()
        stop_at = _end_of(args)
    else:
        peer = _sockaddr(args.dst, args.dport)
        _sleep_until(args.start)
        t0 = max(args.start, _now())  # the first datagram's due time; see below
    pad = b"\0" * max(0, args.size - HEADER.size)
    interval = 1.0 / args.rate
    buf = bytearray(2048)
    seq = 0
    sending = not answer
    while not _stop:
        now = _now()
        if now >= stop_at:
            break
        due = float("inf")
        if sending:
            assert t0 is not None and peer is not None
            due = t0 + seq * interval
            end = until(due) if until is not None else float("inf")
            if due >= end:
                sending = False
                recs.append({"ev": "end", "t": now, "count": seq})
                if not answer:  # the answerer's last datagrams leave at ``end``
                    stop_at = max(now, end) + args.linger
                continue
            if now >= due:
                t = _now()
                if until is None:
                    # The opener's clock starts with its first datagram, whose send time
                    # the answerer counts from: so both end at the same moment even when
                    # the opener was descheduled between its start and that send (at
                    # load 25 the answerer sent 1.7 ms past the opener's end).
                    t0 = t
                    until = Until(t0, args)
                    recs.append({"ev": "start", "t": t0, "rate": args.rate, "stream": args.stream})
                try:
                    s.sendto(HEADER.pack(MAGIC, args.run, args.stream, seq, t) + pad, peer)
                    recs.append({"ev": "tx", "seq": seq, "t": t, "u": _now()})
                except BlockingIOError:
                    recs.append({"ev": "tx", "seq": seq, "t": t, "err": "blocked"})
                except OSError as exc:
                    recs.append({"ev": "tx", "seq": seq, "t": t, "err": _errkind(exc)})
                seq += 1
                continue
        wait = max(0.0, min(due, stop_at, now + 0.2) - now)
        r, _, _ = select.select([s], [], [], wait)
        while r:
            try:
                n, anc, _flags, addr = s.recvmsg_into([buf], ANCILLARY)
            except BlockingIOError:
                break
            except OSError:  # an ICMP error queued on the socket: nothing to read
                continue
            rec = _rx_record(buf, n, anc, args.run)
            if rec is None:
                continue
            recs.append(rec)
            if answer and peer is None:
                peer, t0 = addr, _now()
                until = Until(min(t0, float(rec["ts"])), args)  # the opener's clock
                sending = True
                recs.append({"ev": "start", "t": t0, "rate": args.rate, "stream": args.stream})
    if answer:
        _drain(s, recs, args)
    s.close()
    return recs


# ---------------------------------------------------------------- long-lived TCP


def _accept_one(args: argparse.Namespace, end: float) -> socket.socket | None:
    """Listen on --bind/--port, say ready, accept one connection before ``end`` (or
    SIGTERM); None if none came."""
    ls = socket.socket(_family(args.bind or "0.0.0.0"), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.bind, args.port))
    ls.listen(4)
    _ready()
    conn: socket.socket | None = None
    while conn is None and not _stop and _now() < end:
        ls.settimeout(max(0.001, min(end - _now(), 0.2)))
        try:
            conn, _ = ls.accept()
        except TimeoutError:
            continue
    ls.close()
    return conn


def tcp_stream_server(args: argparse.Namespace) -> list[Record]:
    """Accept one connection, record each message's arrival and echo it back."""
    end = _end_of(args)
    recs: list[Record] = []
    conn = _accept_one(args, end)
    if conn is None:
        recs.append({"ev": "error", "t": _now(), "kind": "no-connection"})
        return recs
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recs.append({"ev": "accepted", "t": _now()})
    pending = b""
    while True:
        left = end - _now()
        if left <= 0 or _stop:
            recs.append({"ev": "end", "t": _now(), "state": "open"})
            break
        conn.settimeout(min(left, 0.2))
        try:
            data = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            recs.append({"ev": "error", "t": _now(), "kind": _errkind(exc)})
            break
        t = _now()
        if not data:
            recs.append({"ev": "end", "t": t, "state": "closed-by-peer"})
            break
        pending += data
        k = len(pending) // TCP_MSG.size * TCP_MSG.size
        for off in range(0, k, TCP_MSG.size):
            seq, ts = TCP_MSG.unpack_from(pending, off)
            recs.append({"ev": "rx", "seq": seq, "ts": ts, "t": t})
        try:
            conn.sendall(pending[:k])
        except OSError as exc:
            recs.append({"ev": "error", "t": _now(), "kind": _errkind(exc)})
            break
        pending = pending[k:]
    conn.close()
    return recs


def tcp_stream_client(args: argparse.Namespace) -> list[Record]:
    """One connection; a message every --interval seconds (on the monotonic schedule);
    echoes read as they come. Records sends, echoes, and how the connection ended."""
    recs: list[Record] = []
    s = socket.socket(_family(args.dst), socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(args.connect_timeout)
    _sleep_until(args.start)
    t = _now()
    try:
        s.connect(_sockaddr(args.dst, args.port))
    except OSError as exc:
        recs.append({"ev": "error", "t": _now(), "kind": _errkind(exc), "phase": "connect"})
        s.close()
        return recs
    recs.append({"ev": "connected", "t": _now(), "t0": t})
    s.setblocking(False)
    t0 = _now()
    until = Until(t0, args)
    seq = 0
    pending = b""
    outbuf = b""
    state = "open"
    last_echo = -1

    def on_error(exc: OSError) -> None:
        nonlocal state
        state = _errkind(exc)
        recs.append({"ev": "error", "t": _now(), "kind": state})

    while state == "open":
        now = _now()
        due = t0 + seq * args.interval
        end = until(due)
        if due < end and now >= due:
            outbuf += TCP_MSG.pack(seq, now)
            recs.append({"ev": "tx", "seq": seq, "t": now})
            seq += 1
        if outbuf:
            try:
                sent = s.send(outbuf)
                outbuf = outbuf[sent:]
            except BlockingIOError:
                pass
            except OSError as exc:
                on_error(exc)
                break
        # after the last send, wait up to --linger for the last echo
        if due >= end and not outbuf and last_echo >= seq - 1:
            break
        if due >= end and now > end + args.linger:
            recs.append({"ev": "error", "t": now, "kind": "stalled-at-end"})
            state = "stalled"
            break
        wait = max(0.0, min(due - now, 0.05)) if due < end else 0.05
        r, _, _ = select.select([s], [s] if outbuf else [], [], wait)
        if r:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as exc:
                on_error(exc)
                break
            tr = _now()
            if not data:
                state = "closed"
                recs.append({"ev": "error", "t": tr, "kind": "closed"})
                break
            pending += data
            k = len(pending) // TCP_MSG.size * TCP_MSG.size
            for off in range(0, k, TCP_MSG.size):
                eseq, ts = TCP_MSG.unpack_from(pending, off)
                recs.append({"ev": "echo", "seq": eseq, "ts": ts, "t": tr})
                last_echo = eseq
            pending = pending[k:]
    recs.append({"ev": "end", "t": _now(), "state": state, "count": seq})
    s.close()
    return recs


def tcp_push(args: argparse.Namespace) -> list[Record]:
    """One long-lived TCP connection on which only the side that accepted it sends: a
    timestamped message every --interval seconds. The side that opens it (--dst,
    connects at --start) only reads (its TCP stack only acknowledges), so behind a
    stateful firewall the sender's messages pass only while the switch remembers the
    connection: nothing the opener sends would create it again. The sender (without
    --dst: binds, says ready, accepts one connection before --end) records ``tx`` as
    udp-send does, sends for --duration (and --until) from the accept, then shuts its
    side and waits up to --linger for the opener to close; the opener records ``rx``
    as udp-recv does and ``end`` with ``closed-by-peer`` when it read everything."""
    recs: list[Record] = []
    if args.dst is not None:
        return _tcp_push_read(args, recs)
    conn = _accept_one(args, _end_of(args))
    if conn is None:
        recs.append({"ev": "error", "t": _now(), "kind": "no-connection"})
        return recs
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(1.0)
    t0 = _now()
    until = Until(t0, args)
    recs.append({"ev": "start", "t": t0})
    seq = 0
    state = "open"
    while not _stop:
        due = t0 + seq * args.interval
        if due >= until(due):
            break
        _sleep_until(due)
        t = _now()
        try:
            conn.sendall(TCP_MSG.pack(seq, t))
        except OSError as exc:
            state = _errkind(exc)
            recs.append({"ev": "error", "t": _now(), "kind": state})
            break
        recs.append({"ev": "tx", "seq": seq, "t": t, "u": _now()})
        seq += 1
    if state == "open":
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(args.linger)
            while conn.recv(4096):
                pass
            state = "closed"
        except OSError as exc:  # the opener never closed: the connection is stuck
            state = _errkind(exc)
    recs.append({"ev": "end", "t": _now(), "state": state, "count": seq})
    conn.close()
    return recs


def _tcp_push_read(args: argparse.Namespace, recs: list[Record]) -> list[Record]:
    s = socket.socket(_family(args.dst), socket.SOCK_STREAM)
    s.settimeout(args.connect_timeout)
    _sleep_until(args.start)
    t = _now()
    try:
        s.connect(_sockaddr(args.dst, args.dport))
    except OSError as exc:
        recs.append({"ev": "error", "t": _now(), "kind": _errkind(exc), "phase": "connect"})
        s.close()
        return recs
    connected = _now()
    recs.append({"ev": "connected", "t": connected, "t0": t})
    # Until the sender closes; at the latest --linger after it surely would have. The
    # sender counts its --duration from the accept, so this side counts from the
    # connect, not from --start: an opener whose interpreter took longer than the
    # runner's head start to come up (2-6 s at load 25 beside switches at nice -10)
    # connected after --start + --duration + --linger, gave up at once and closed on
    # unread data, and the sender saw a reset after 0-76 of 100 messages.
    until = Until(max(args.start, connected), args)
    pending = b""
    state = "open"
    while state == "open" and not _stop:
        now = _now()
        left = until(now) + args.linger - now
        if left <= 0:
            state = "stalled"
            break
        s.settimeout(min(left, 0.2))
        try:
            data = s.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            state = _errkind(exc)
            recs.append({"ev": "error", "t": _now(), "kind": state})
            break
        tr = _now()
        if not data:
            state = "closed-by-peer"
            break
        pending += data
        k = len(pending) // TCP_MSG.size * TCP_MSG.size
        for off in range(0, k, TCP_MSG.size):
            seq, ts = TCP_MSG.unpack_from(pending, off)
            recs.append({"ev": "rx", "seq": seq, "ts": ts, "t": tr})
        pending = pending[k:]
    recs.append({"ev": "end", "t": _now(), "state": state})
    s.close()
    return recs


# ---------------------------------------------------------------- new TCP connections


def tcp_accept(args: argparse.Namespace) -> list[Record]:
    """Accept connections and close them at once; counts what it accepted."""
    ls = socket.socket(_family(args.bind), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.bind, args.port))
    ls.listen(1024)
    _ready()
    end = _end_of(args)
    n = 0
    while True:
        left = end - _now()
        if left <= 0 or _stop:
            break
        ls.settimeout(min(left, 0.2))
        try:
            conn, _ = ls.accept()
        except TimeoutError:
            continue
        except OSError:
            continue
        n += 1
        conn.close()
    ls.close()
    return [{"ev": "end", "t": _now(), "accepted": n}]


def tcp_connect(args: argparse.Namespace) -> list[Record]:
    """Start a non-blocking connect every --interval seconds; each attempt ends ok,
    refused, reset, unreachable or timeout (after --timeout seconds)."""
    fam = _family(args.dst)
    dst = _sockaddr(args.dst, args.port)
    recs: list[Record] = []
    inflight: dict[int, tuple[socket.socket, int, float]] = {}
    poller = select.poll()
    _sleep_until(args.start)
    t0 = _now()
    until = Until(t0, args)
    n = 0

    def finish(fd: int, result: str) -> None:
        sock, i, ts = inflight.pop(fd)
        poller.unregister(fd)
        recs.append({"ev": "conn", "i": i, "t0": ts, "t": _now(), "result": result})
        sock.close()

    while True:
        now = _now()
        due = t0 + n * args.interval
        end = until(due)
        if due < end and now >= due:
            sock = socket.socket(fam, socket.SOCK_STREAM)
            sock.setblocking(False)
            ts = _now()
            err = sock.connect_ex(dst)
            if err in (0, errno.EINPROGRESS):
                inflight[sock.fileno()] = (sock, n, ts)
                poller.register(sock.fileno(), select.POLLOUT)
                if err == 0:
                    finish(sock.fileno(), "ok")
            else:
                kind = _errkind(OSError(err, os.strerror(err)))
                recs.append({"ev": "conn", "i": n, "t0": ts, "t": _now(), "result": kind})
                sock.close()
            n += 1
            continue
        for fd, (_sock, _i, ts) in list(inflight.items()):
            if now - ts > args.timeout:
                finish(fd, "timeout")
        if due >= end and not inflight:
            break
        wait = max(0.0, min(due - now, 0.05)) if due < end else 0.05
        for fd, _ev in poller.poll(wait * 1000):
            if fd not in inflight:
                continue
            err = inflight[fd][0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err == 0:
                finish(fd, "ok")
            else:
                finish(fd, _errkind(OSError(err, os.strerror(err))))
    recs.append({"ev": "end", "t": _now(), "count": n})
    return recs


# ---------------------------------------------------------------- neighbour resolution


def udp_echo(args: argparse.Namespace) -> list[Record]:
    """Send every datagram back to where it came from."""
    s = socket.socket(_family(args.bind) if args.bind else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.bind, args.port))
    _ready()
    end = _end_of(args)
    n = 0
    while True:
        left = end - _now()
        if left <= 0 or _stop:
            break
        s.settimeout(min(left, 0.2))
        try:
            data, peer = s.recvfrom(2048)
        except TimeoutError:
            continue
        try:
            s.sendto(data, peer)
        except OSError:
            continue
        n += 1
    s.close()
    return [{"ev": "end", "t": _now(), "echoed": n}]


def neigh_probe(args: argparse.Namespace) -> list[Record]:
    """Every --interval: flush the neighbour entry for --dst (ARP for IPv4, ND for IPv6),
    check it is gone, send one datagram to the peer's udp-echo and time the reply. The
    datagram waits in the kernel until resolution through the switch completes, so the
    round trip includes the ARP/ND exchange."""
    fam = _family(args.dst)
    ipcmd = ["ip", "-6"] if fam == socket.AF_INET6 else ["ip", "-4"]
    dst = _sockaddr(args.dst, args.port, args.dev)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    recs: list[Record] = []
    _sleep_until(args.start)
    t0 = _now()
    until = Until(t0, args)
    n = 0
    while True:
        due = t0 + n * args.interval
        if due >= until(due):
            break
        _sleep_until(due)
        flush = [*ipcmd, "neigh", "flush", "to", args.dst]
        if args.dev:
            flush += ["dev", args.dev]
        res = subprocess.run(flush, capture_output=True, text=True)
        rec: Record = {"ev": "probe", "i": n, "family": 6 if fam == socket.AF_INET6 else 4}
        if res.returncode != 0:
            rec.update(t0=_now(), t=None, result="flush-failed", detail=res.stderr.strip())
            recs.append(rec)
            n += 1
            continue
        ts = _now()
        rec["t0"] = ts
        payload = HEADER.pack(MAGIC, args.run, 0, n, ts)
        try:
            s.sendto(payload, dst)
        except OSError as exc:
            rec.update(t=None, result=_errkind(exc))
            recs.append(rec)
            n += 1
            continue
        result, tr = "timeout", None
        deadline = ts + args.timeout
        while True:
            left = deadline - _now()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                data = s.recv(2048)
            except TimeoutError:
                break
            except OSError as exc:
                result = _errkind(exc)
                break
            if len(data) >= HEADER.size:
                magic, run, _stream, seq, _ts = HEADER.unpack_from(data)
                if magic == MAGIC and run == args.run and seq == n:
                    result, tr = "ok", _now()
                    break
        rec.update(t=tr, result=result)
        recs.append(rec)
        n += 1
    recs.append({"ev": "end", "t": _now(), "count": n})
    s.close()
    return recs


# ---------------------------------------------------------------- management


def appctl_probe(args: argparse.Namespace) -> list[Record]:
    """Every --interval seconds, what ``ovs-appctl -t CTL version`` does: connect to the
    control socket and send one JSON-RPC ``version`` request, then wait for the reply
    (one probe at a time: a probe still waiting delays the next). Each probe ends ok,
    or with the error of its connect or read (refused, gone, timeout...)."""
    recs: list[Record] = []
    _sleep_until(args.start)
    t0 = _now()
    until = Until(t0, args)
    n = 0
    while True:
        due = t0 + n * args.interval
        if due >= until(due):
            break
        _sleep_until(due)
        ts = _now()
        result = "ok"
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        try:
            s.connect(args.ctl)
            s.sendall(json.dumps({"id": n, "method": "version", "params": []}).encode())
            buf = b""
            while True:  # the reply is one JSON object
                chunk = s.recv(65536)
                if not chunk:
                    result = "closed"
                    break
                buf += chunk
                try:
                    reply = json.loads(buf)
                except ValueError:
                    continue
                if reply.get("error") is not None:
                    result = "error"
                break
        except (OSError, TimeoutError) as e:
            result = "timeout" if isinstance(e, TimeoutError) else _errkind(e)
        finally:
            s.close()
        recs.append({"ev": "probe", "i": n, "t0": ts, "t": _now(), "result": result})
        n = max(n + 1, int((_now() - t0) / args.interval))  # skip the slots it waited
    recs.append({"ev": "end", "t": _now(), "count": n})
    return recs


# ---------------------------------------------------------------- the machine itself

CPU_PROBE_TICK = 0.001  # the probe wakes this often
CPU_STALL_AFTER = 0.01  # a wake-up this late is a stall of the CPU


def cpu_probe(args: argparse.Namespace) -> list[Record]:
    """Pinned to CPU --cpu at real-time priority (SCHED_FIFO), wake every millisecond
    and record every wake-up later than --after seconds as a stall of that CPU: at that
    priority nothing of the guest's ordinary processes keeps the probe from running,
    so such a stall means the CPU itself ran nothing (on a virtual machine: the host did
    not run that vCPU), and no process on it (switch, sender, receiver) could run."""
    os.sched_setaffinity(0, {args.cpu})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.priority))
        policy = "fifo"
    except (OSError, AttributeError):
        policy = "other"  # not root: still a probe, but ordinary load delays it too
    _ready()
    end = _end_of(args)
    recs: list[Record] = [{"ev": "start", "t": _now(), "cpu": args.cpu, "policy": policy}]
    last = _now()
    while last < end and not _stop:
        time.sleep(CPU_PROBE_TICK)
        now = _now()
        if now - last > args.after:
            recs.append({"ev": "stall", "from": last, "t": now, "cpu": args.cpu})
        last = now
    recs.append({"ev": "end", "t": _now()})
    return recs


# ---------------------------------------------------------------- command line

AGENTS = {
    "udp-send": udp_send,
    "udp-recv": udp_recv,
    "udp-duplex": udp_duplex,
    "tcp-stream-server": tcp_stream_server,
    "tcp-stream-client": tcp_stream_client,
    "tcp-push": tcp_push,
    "tcp-accept": tcp_accept,
    "tcp-connect": tcp_connect,
    "udp-echo": udp_echo,
    "neigh-probe": neigh_probe,
    "appctl-probe": appctl_probe,
    "cpu-probe": cpu_probe,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hitless.impact.agents", description=__doc__)
    sub = p.add_subparsers(dest="agent", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", default="-", help="JSON lines file ('-': stdout)")
        sp.add_argument("--run", type=int, default=0, help="run id carried in packets")
        sp.add_argument("--start", type=float, default=None, help="monotonic start time")
        sp.add_argument("--go", default=None,
                        help="say ready, then start at the monotonic time this file will "
                             "hold (instead of --start)")  # fmt: skip
        sp.add_argument("--duration", type=float, default=5.0, help="seconds")

    def until(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--until", default=None,
                        help="file that will hold the monotonic time to stop at (not before"
                             " it exists, nor before --duration is over)")  # fmt: skip

    def listener(sp: argparse.ArgumentParser) -> None:
        common(sp)
        sp.add_argument("--bind", default="", help="local address ('' = any)")
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--end", type=float, default=None, help="monotonic stop time")

    def drain(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--expect", default=None,
                        help="file that holds, by SIGTERM, each stream's last sequence number"
                             " sent (JSON: stream -> seq): read on until those came")
        sp.add_argument("--drain", type=float, default=1.0,
                        help="after SIGTERM, wait at most this long for a stream's last "
                             "datagram (never stopping before the socket is empty)")  # fmt: skip

    def sender(sp: argparse.ArgumentParser) -> None:
        common(sp)
        sp.add_argument("--dst", required=True)
        sp.add_argument("--port", type=int, required=True)
        until(sp)

    sp = sub.add_parser("udp-send", help="sequenced datagrams at a fixed rate")
    sender(sp)
    sp.add_argument("--rate", type=float, default=1000.0, help="packets per second")
    sp.add_argument("--stream", type=int, default=1)
    sp.add_argument("--size", type=int, default=64, help="UDP payload bytes")
    sp.add_argument("--broadcast", action="store_true")
    sp.add_argument("--dev", default=None, help="bind to this device")
    sp = sub.add_parser("udp-recv", help="record sequenced datagrams")
    listener(sp)
    drain(sp)
    sp = sub.add_parser("udp-duplex", help="one UDP connection, datagrams both ways")
    listener(sp)
    until(sp)
    drain(sp)
    sp.add_argument("--dst", default=None, help="the peer to open the connection to "
                    "(without: answer whoever sends first)")
    sp.add_argument("--dport", type=int, default=None, help="the peer's port")
    sp.add_argument("--rate", type=float, default=1000.0, help="packets per second")
    sp.add_argument("--stream", type=int, default=1)
    sp.add_argument("--size", type=int, default=64, help="UDP payload bytes")
    sp.add_argument("--linger", type=float, default=1.0,
                    help="opener: keep receiving this long after the end of the traffic (the"
                    " answerer sends until then)")
    listener(sub.add_parser("tcp-stream-server", help="echo one long-lived connection"))
    sp = sub.add_parser("tcp-stream-client", help="timestamped messages on one connection")
    sender(sp)
    sp.add_argument("--interval", type=float, default=0.01)
    sp.add_argument("--connect-timeout", type=float, default=3.0)
    sp.add_argument("--linger", type=float, default=3.0, help="wait for the last echo")
    sp = sub.add_parser("tcp-push", help="tcp-stream with the accepting side sending")
    listener(sp)
    until(sp)
    sp.add_argument("--dst", default=None, help="connect there and read (without: accept "
                    "one connection and send)")  # fmt: skip
    sp.add_argument("--dport", type=int, default=None, help="the port to connect to")
    sp.add_argument("--interval", type=float, default=0.01)
    sp.add_argument("--connect-timeout", type=float, default=3.0)
    sp.add_argument("--linger", type=float, default=3.0,
                    help="how long the end of the stream may take to arrive")  # fmt: skip
    listener(sub.add_parser("tcp-accept", help="accept and close connections"))
    sp = sub.add_parser("tcp-connect", help="new connections at a fixed rate")
    sender(sp)
    sp.add_argument("--interval", type=float, default=0.02)
    sp.add_argument("--timeout", type=float, default=3.0)
    listener(sub.add_parser("udp-echo", help="echo datagrams"))
    sp = sub.add_parser("neigh-probe", help="flush the neighbour entry, time resolution")
    sender(sp)
    sp.add_argument("--interval", type=float, default=0.25)
    sp.add_argument("--timeout", type=float, default=2.0)
    sp.add_argument("--dev", default=None, help="device of the neighbour entry")
    sp = sub.add_parser("appctl-probe", help="ovs-appctl version at a fixed rate")
    common(sp)
    sp.add_argument("--ctl", required=True, help="the switch's control socket")
    sp.add_argument("--interval", type=float, default=0.005)
    sp.add_argument("--timeout", type=float, default=5.0)
    sp = sub.add_parser("cpu-probe", help="record the times a CPU ran nothing")
    common(sp)
    sp.add_argument("--end", type=float, default=None, help="monotonic stop time")
    sp.add_argument("--cpu", type=int, required=True, help="the CPU to watch")
    sp.add_argument("--after", type=float, default=CPU_STALL_AFTER,
                    help="a wake-up this many seconds late is a stall")  # fmt: skip
    sp.add_argument("--priority", type=int, default=50, help="SCHED_FIFO priority")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.go is not None:
        args.start = _await_go(args.go)
    if args.start is None:
        args.start = _now()
    # No cyclic garbage collection while measuring: an agent keeps every record in memory
    # until it ends, and CPython's full collections over them grew with the run and
    # stalled the agent itself (measured: 110-150 ms "gaps" in both directions at the
    # same offsets, ~10.5 s into the traffic, in runs whose upgrades happened at 4.3 s
    # and at 12.1 s). An agent lives for one run; its records are freed when it exits.
    gc.disable()
    recs = AGENTS[args.agent](args)
    # Done: a SIGTERM from now on has nothing to stop. Ignored, not left to our handler:
    # the interpreter's exit puts a handler's signal back to its default (kill), and the
    # harness sends SIGTERM to every listener still running once the senders have gone,
    # when one that ended on its own (a TCP stream server whose client closed) may be
    # exiting: it died -15 so at load ~10, and 20 of 20 agents sent SIGTERMs every
    # 0.2 ms until they had gone (tests/impact/test_agent_sync.py).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _write(recs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
