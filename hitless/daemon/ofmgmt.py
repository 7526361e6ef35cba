"""OpenFlow management sockets: ``DIR/<bridge>.mgmt`` for each running bridge, as
Open vSwitch offers, so ``OVS_RUNDIR=DIR ovs-ofctl -O OpenFlow13 dump-flows br0`` works.

The I/O shell around ``hitless.openflow.Connection`` (framing, negotiation, echo) and
``hitless.ofproto.ofhandler.OfHandler`` (what messages mean): non-blocking sockets
driven from the daemon's poll loop, a write buffer per client, every decoded request
handed to the handler, every refusal answered with an OFPT_ERROR carrying the request's
xid and first bytes. A malformed message costs only an error reply.

Controllers from the bridge's Controller rows (``set_controllers``): ``tcp:IP[:PORT]``
and ``unix:PATH`` are active connections, re-established with exponential backoff by the
``ovs.reconnect`` state machine (pure: it takes the time and returns what to do);
``ptcp:PORT[:IP]`` and ``punix:PATH`` listen. Controller sessions (unlike management
ones) receive asynchronous messages (packet-ins, flow-removed) as their role and async
configuration allow.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import select
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

from hitless import localsock
from hitless.config.model import ControllerStatus
from hitless.ofproto.ofhandler import BundleMessageFailed, OfHandler, OfSession
from hitless.openflow import (
    CLOSED,
    NEED_DATA,
    Connection,
    ConnectionEvent,
    Message,
    ProtocolErrorEvent,
    SessionState,
    Timeout,
)
from hitless.openflow._wire import Reader
from hitless.openflow.connection import DEFAULT_PROBE_INTERVAL
from hitless.openflow.constants import OFP14_VERSION, PROTOCOL_VERSIONS, MsgType
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.flowmon import MonitorRequest
from hitless.openflow.match import Match as OfMatch
from hitless.openflow.messages import GroupMod, MeterMod, RequestForward
from hitless.openflow.messages import decode as decode_message
from hitless.openflow.nxmsg import TlvMap

log = logging.getLogger(__name__)

MAX_WBUF = 64 << 20  # a client that stops reading this much is dropped
PASSIVE_RETRY = 1.0  # seconds between attempts to open a ptcp/punix listener


# Flow updates waiting to be written beyond which a session's monitoring pauses (Open
# vSwitch's 128 kB); it resumes, with a refresh, once everything is written.
MONITOR_BACKLOG = 128 * 1024
MGMT_PROBE_INTERVAL = 60.0  # seconds: an idle DIR/<bridge>.mgmt session (Open vSwitch's 60)


def mgmt_path(rundir: str, bridge: str) -> str:
    return os.path.join(rundir, f"{bridge}.mgmt")


DEFAULT_TCP_PORT = 6653
_ROLES = {1: "other", 2: "master", 3: "slave"}
_PROTOCOLS = PROTOCOL_VERSIONS
# Open vSwitch enables 1.0 to 1.5 when Bridge.protocols is empty: the ones we speak.
DEFAULT_VERSIONS = tuple(sorted(_PROTOCOLS.values()))


def versions_of(protocols: tuple[str, ...]) -> tuple[int, ...]:
    """OpenFlow wire versions for Bridge.protocols (those we speak; when none is named,
    every version we speak, as Open vSwitch enables all of its own by default)."""
    v = tuple(sorted({_PROTOCOLS[p] for p in protocols if p in _PROTOCOLS}))
    return v or DEFAULT_VERSIONS


@dataclass(eq=False)
class _Client:
    sock: socket.socket
    conn: Connection
    session: OfSession = field(default_factory=OfSession)
    wbuf: bytearray = field(default_factory=bytearray)
    closing: bool = False
    connector: _Connector | None = None
    origin: str | None = None  # the ptcp/punix target it came in on; None: management
    error: str | None = None  # why it is closing, if the peer or the network ended it


def parse_target(target: str) -> tuple[str, Any]:
    """("tcp"|"unix"|"ptcp"|"punix", address) of a Controller target; ValueError if bad."""
    kind, _, rest = target.partition(":")
    if kind == "tcp":
        host, _, port = rest.partition(":")
        return kind, (_ipv4(target, host), _port(target, port))
    if kind == "ptcp":
        port, _, host = rest.partition(":")
        return kind, (_ipv4(target, host) if host else "0.0.0.0", _port(target, port))
    if kind in ("unix", "punix") and rest:
        return kind, rest
    raise ValueError(f"unsupported controller target {target!r}")


def _ipv4(target: str, text: str) -> str:
    """A target's address: an IPv4 literal (a name would need a DNS lookup that blocks
    the loop; IPv6 targets are not supported yet)."""
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(
            f"bad address {text!r} in controller target {target!r} (an IPv4 address)"
        ) from None
    return text


def _port(target: str, text: str) -> int:
    """A target's TCP port (the default when empty); ValueError unless 1-65535 (0 too for
    a passive target: any free port)."""
    if not text:
        return DEFAULT_TCP_PORT
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError(f"bad port {text!r} in controller target {target!r} (1-65535)")
    if int(text) == 0 and not target.startswith("ptcp:"):
        raise ValueError(f"bad port 0 in controller target {target!r} (1-65535)")
    return int(text)


class _Connector:
    """An active controller connection and its reconnect state machine."""

    def __init__(self, target: str, kind: str, addr: Any, now: float) -> None:
        import ovs.reconnect

        self.target = target
        self.kind = kind
        self.addr = addr
        self.rc = ovs.reconnect.Reconnect(_ms(now))
        self.rc.set_name(target)
        self.rc.set_quiet(True)
        self.rc.set_probe_interval(0)  # the OpenFlow connection probes by itself
        self.rc.set_backoff(1000, 8000)
        self.rc.enable(_ms(now))
        self.pending: socket.socket | None = None
        self.client: _Client | None = None
        # Controller status:last_error: the last failed attempt or lost connection
        # (None once we closed it ourselves), as Open vSwitch's rconn keeps it.
        self.last_error: str | None = None

    def failed(self, ms: int, err: int) -> None:
        """A connection attempt failed with errno ``err``."""
        self.last_error = os.strerror(err)
        self.rc.connect_failed(ms, err)

    def close(self) -> None:
        if self.pending is not None:
            self.pending.close()
            self.pending = None


class OfManager:
    """The management listener of one bridge and its clients."""

    def __init__(
        self,
        path: str,
        handler: OfHandler,
        now: float,
        inherited: InheritedSessions | None = None,
    ) -> None:
        """Listen on ``path``; with ``inherited`` (a handoff), serve the predecessor's
        listeners and sessions instead, continuing each where it stopped."""
        self.path = path
        self.handler = handler
        self.clients: list[_Client] = []
        self.n_errors = 0
        self._now = now
        self.versions: tuple[int, ...] = DEFAULT_VERSIONS  # from Bridge.protocols
        self.targets: tuple[str, ...] = ()
        self.passive: dict[str, socket.socket] = {}  # ptcp/punix listeners by target
        self._passive_retry: dict[str, float] = {}  # targets whose bind failed: retry at
        self._passive_warned: set[str] = set()
        self.connectors: dict[str, _Connector] = {}
        if inherited is not None and inherited.mgmt is not None:
            sock = _adopt_socket(inherited.mgmt)
        else:
            # mode 0600; replaces a predecessor's socket without a gap
            sock = localsock.listen(path, 16)
        self._ino = os.stat(path).st_ino
        self.listener: socket.socket | None = sock
        if inherited is not None:
            self._inherit(inherited, now)

    # -- controllers --
    def set_controllers(self, targets: tuple[str, ...], now: float) -> None:
        """Make the controller connections and listeners match ``targets``."""
        if targets == self.targets:
            return
        self.targets = targets
        want = set(targets)
        for t in list(self.passive):
            if t not in want:
                self.passive.pop(t).close()
        for t in list(self._passive_retry):
            if t not in want:
                del self._passive_retry[t]
        for t in list(self.connectors):
            if t not in want:
                cn = self.connectors.pop(t)
                cn.close()
                if cn.client is not None:
                    cn.client.closing = True
                    cn.client.connector = None
        for t in targets:
            if t in self.passive or t in self.connectors or t in self._passive_retry:
                continue
            try:
                kind, addr = parse_target(t)
                if kind in ("tcp", "unix"):
                    self.connectors[t] = _Connector(t, kind, addr, now)
                else:
                    self._passive_retry[t] = now
            except ValueError as e:
                log.error("controller %s: %s", t, e)
        self._run_passive(now)

    def _run_passive(self, now: float) -> None:
        """Open the ptcp/punix listeners still missing. One that cannot bind (the port
        is taken, e.g. by a predecessor that has not exited yet) is retried every
        second instead of being given up."""
        for t, at in list(self._passive_retry.items()):
            if now < at:
                continue
            kind, addr = parse_target(t)
            try:
                self.passive[t] = _listen(kind, addr)
            except (OSError, OverflowError, ValueError) as e:
                if t not in self._passive_warned:
                    self._passive_warned.add(t)
                    log.error("controller %s: cannot listen: %s (retrying)", t, e)
                self._passive_retry[t] = now + PASSIVE_RETRY
                continue
            del self._passive_retry[t]
            if t in self._passive_warned:
                self._passive_warned.discard(t)
                log.info("controller %s: listening now", t)

    # -- handoff --
    def export_sessions(self) -> tuple[dict[str, Any], list[int]]:
        """This bridge's OpenFlow listeners and sessions for a successor: a plain record
        whose "fd" fields index the returned descriptors (live, still ours: the
        successor gets duplicates, and until it commits we may serve on with them).
        Called between loop iterations, so every session is at a message boundary."""
        fds: list[int] = []

        def slot(sock: socket.socket) -> int:
            fds.append(sock.fileno())
            return len(fds) - 1

        clients = []
        for c in self.clients:
            try:
                state = c.conn.export_state()
            except LocalProtocolError as e:  # events not yet taken: only on a closing one
                log.info("%s: not handing over a session: %s", self.path, e)
                continue
            version = c.conn.version
            bundles = (
                [
                    [bid, c.session.bundle_flags.get(bid, 0), [m.encode(version) for m in msgs]]
                    for bid, msgs in c.session.bundles.items()
                ]
                if version is not None
                else []
            )
            clients.append(
                {
                    "fd": slot(c.sock),
                    "state": state.to_dict(),
                    "wbuf": bytes(c.wbuf),
                    "closing": c.closing,
                    "service": c.session.service,
                    "miss_send_len": c.session.miss_send_len,
                    "controller": c.connector.target if c.connector is not None else None,
                    "origin": c.origin,
                    "bundles": bundles,
                    "closed_bundles": sorted(c.session.closed_bundles),
                    "monitors": [monitor_record(m) for m in c.session.monitors.values()],
                }
            )
        record = {
            "mgmt": slot(self.listener) if self.listener is not None else None,
            "passive": {t: slot(ls) for t, ls in self.passive.items()},
            "clients": clients,
            "switch_flags": self.handler.switch_flags,
            "miss_send_len": self.handler.miss_send_len,
            "tlv_maps": [
                [m.option_class, m.option_type, m.option_len, m.index]
                for m in self.handler.tlv_maps.values()
            ],
            # OFPT_TABLE_MOD's: [[table, 1.1 miss config, eviction, vacancy or None]]
            "table_config": [
                [t, self.handler.table_miss.get(t, 0), t in self.handler.table_evict,
                 self.handler.table_vacancy.get(t)]
                for t in sorted({*self.handler.table_miss, *self.handler.table_evict,
                                 *self.handler.table_vacancy})
            ],  # fmt: skip
        }
        return record, fds

    def _inherit(self, inh: InheritedSessions, now: float) -> None:
        self.handler.switch_flags = inh.switch_flags
        self.handler.miss_send_len = inh.miss_send_len
        self.handler.tlv_maps = {m.index: m for m in inh.tlv_maps}
        for table, miss, evict, vacancy in inh.table_config:
            if miss:
                self.handler.table_miss[table] = miss
            if evict:
                self.handler.table_evict.add(table)
            if vacancy is not None:
                self.handler.table_vacancy[table] = vacancy
        for t, fd in inh.passive.items():
            self.passive[t] = _adopt_socket(fd)
        for ic in inh.clients:
            c = _Client(
                _adopt_socket(ic.fd),
                ic.conn,
                OfSession(
                    service=ic.service,
                    miss_send_len=ic.miss_send_len,
                    bundles={bid: msgs for bid, (_, msgs) in ic.bundles.items()},
                    bundle_flags={bid: flags for bid, (flags, _) in ic.bundles.items()},
                    closed_bundles=set(ic.closed_bundles),
                    monitors={m.monitor_id: m for m in ic.monitors},
                ),
                bytearray(ic.wbuf),
                ic.closing,
                origin=ic.origin,
            )
            self.clients.append(c)
            if ic.controller is not None and ic.controller not in self.connectors:
                kind, addr = parse_target(ic.controller)
                cn = _Connector(ic.controller, kind, addr, now)
                cn.rc.connected(_ms(now))
                cn.client = c
                c.connector = cn
                self.connectors[ic.controller] = cn
        if any(ic.monitors for ic in inh.clients) and self.handler.bridge.of.watch is None:
            self.handler.bridge.of.watch = []  # inherited flow monitors hear changes
        inh.taken = True

    def controller_status(self) -> dict[str, ControllerStatus]:
        """Per controller target: connected or not, its role, the connection's state."""
        out: dict[str, ControllerStatus] = {}
        for t, cn in self.connectors.items():
            c = cn.client
            up = c is not None and c.conn.version is not None
            role = _ROLES.get(c.conn.role, "other") if c is not None and up else None
            st = cn.rc.get_stats(_ms(self._now))
            out[t] = ControllerStatus(
                up, role, st.state, cn.last_error, st.last_connected, st.last_disconnected
            )
        for t in self.passive:  # Open vSwitch reports nothing for a listening target
            out[t] = ControllerStatus(False)
        return out

    def _run_connectors(self, now: float) -> None:
        import ovs.reconnect

        ms = _ms(now)
        for cn in self.connectors.values():
            if cn.pending is not None:
                _, w, _ = select.select([], [cn.pending], [], 0)
                if w:
                    err = cn.pending.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    sock, cn.pending = cn.pending, None
                    if err:
                        sock.close()
                        cn.failed(ms, err)
                    else:
                        cn.rc.connected(ms)
                        c = _Client(
                            sock,
                            Connection(versions=self.versions, now=now),
                            OfSession(service=False),
                        )
                        c.connector = cn
                        c.wbuf += c.conn.start()
                        cn.client = c
                        self.clients.append(c)
                        log.info("controller %s: connected", cn.target)
            action = cn.rc.run(ms)
            if action == ovs.reconnect.CONNECT:
                family = socket.AF_INET if cn.kind == "tcp" else socket.AF_UNIX
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                try:
                    err = sock.connect_ex(cn.addr)
                except (OSError, OverflowError) as e:
                    err = getattr(e, "errno", None) or errno.EINVAL
                if err in (0, errno.EINPROGRESS, errno.EAGAIN):
                    cn.pending = sock
                    cn.rc.connecting(ms)
                else:
                    sock.close()
                    cn.failed(ms, err)
            elif action == ovs.reconnect.DISCONNECT and cn.client is not None:
                cn.client.closing = True

    def close(self) -> None:
        for c in self.clients:
            with contextlib.suppress(OSError):
                c.sock.close()
        self.clients.clear()
        for cn in self.connectors.values():
            cn.close()
        self.connectors.clear()
        for ls in self.passive.values():
            ls.close()
        self.passive.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                # Only our own socket file: after a handoff the path is a successor's.
                if os.stat(self.path).st_ino == self._ino:
                    os.unlink(self.path)

    # -- the loop --
    def run(self, now: float) -> None:
        self._now = now
        self._run_connectors(now)
        if self._passive_retry:
            self._run_passive(now)
        self._accept(now)
        for c in list(self.clients):
            self._read(c, now)
            c.conn.handle_timer(now)
            self._events(c, now)
        self.handler.bridge.commit_openflow()  # one re-translation per batch of changes
        self._async(now)
        for c in list(self.clients):
            self._flush(c)
        if self.handler.bridge.of.watch is not None:
            self._resume_monitors()
            for c in list(self.clients):
                if c.wbuf:
                    self._flush(c)

    def wait(self, poller: Any, now: float) -> float | None:
        """Register fds; returns the earliest connection timer (absolute) or None."""
        if self.listener is not None:
            poller.fd_wait(self.listener.fileno(), select.POLLIN)
        for ls in self.passive.values():
            poller.fd_wait(ls.fileno(), select.POLLIN)
        t: float | None = None
        for cn in self.connectors.values():
            if cn.pending is not None:
                poller.fd_wait(cn.pending.fileno(), select.POLLOUT)
            left = cn.rc.timeout(_ms(now))
            if left is not None:
                ct = now + left / 1000
                t = ct if t is None else min(t, ct)
        for at in self._passive_retry.values():
            t = at if t is None else min(t, at)
        for c in self.clients:
            poller.fd_wait(c.sock.fileno(), select.POLLIN | (select.POLLOUT if c.wbuf else 0))
            ct = c.conn.get_timer()
            if ct is not None and (t is None or ct < t):
                t = ct
        return t

    def _accept(self, now: float) -> None:
        listeners: list[tuple[socket.socket, str | None]] = list(
            (ls, t) for t, ls in self.passive.items()
        )
        if self.listener is not None:
            listeners.append((self.listener, None))
        for ls, origin in listeners:
            while True:
                try:
                    sock, _ = ls.accept()
                except BlockingIOError:
                    break
                except OSError as e:
                    log.warning("%s: accept failed: %s", self.path, e)
                    break
                sock.setblocking(False)
                if sock.family == socket.AF_UNIX and self._refuse(sock, origin):
                    continue
                # The management socket's sessions are probed after 60 s of silence, as
                # Open vSwitch's (bridge.c); a ptcp:/punix: controller's after 5 s.
                probe = MGMT_PROBE_INTERVAL if origin is None else DEFAULT_PROBE_INTERVAL
                c = _Client(
                    sock,
                    Connection(versions=self.versions, now=now, probe_interval=probe),
                    OfSession(service=origin is None),
                    origin=origin,
                )
                c.wbuf += c.conn.start()
                self.clients.append(c)

    def _refuse(self, sock: socket.socket, origin: str | None) -> bool:
        """Close a unix-socket peer that is neither root nor our user, telling it why
        (an OpenFlow HELLO_FAILED/EPERM error, which every version parses)."""
        why = localsock.refusal(sock)
        if why is None:
            return False
        log.warning("%s: refused a connection: %s", origin or self.path, why)
        with contextlib.suppress(OSError):
            sock.send(hello_failed_eperm(why))
        sock.close()
        return True

    def _read(self, c: _Client, now: float) -> None:
        while True:
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as e:
                c.error = c.error or os.strerror(e.errno or errno.EIO)
                data = b""
            if not data:
                c.error = c.error or "End of file"
            c.conn.receive_data(data, now)
            if not data:
                return

    def _events(self, c: _Client, now: float) -> None:
        conn = c.conn
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                return
            if ev is CLOSED:
                c.closing = True
                return
            if isinstance(ev, ProtocolErrorEvent):
                self.n_errors += 1
                log.info("%s: peer sent a bad message: %s", self.path, ev.error.message)
                c.wbuf += ev.data
                if ev.fatal:
                    c.closing = True
                    c.error = c.error or os.strerror(errno.EPROTO)
                continue
            if isinstance(ev, Timeout):
                c.closing = True
                c.error = c.error or os.strerror(errno.ETIMEDOUT)
                return
            if isinstance(ev, ConnectionEvent):
                c.wbuf += ev.data
                continue
            assert isinstance(ev, Message)
            self._dispatch(c, ev, now)

    def _dispatch(self, c: _Client, msg: Message, now: float) -> None:
        conn = c.conn
        try:
            replies = self.handler.handle(conn, c.session, msg, now, [o.conn for o in self.clients])
        except BundleMessageFailed as e:
            assert conn.version is not None
            c.wbuf += e.inner.reply(conn.version)
            c.wbuf += e.with_request(conn.last_request, msg.xid).reply(conn.version)
            return
        except RemoteProtocolError as e:
            assert conn.version is not None
            self.n_errors += 1
            log.info("%s: refused %s: %s", self.path, type(msg).__name__, e.message)
            c.wbuf += e.with_request(conn.last_request, msg.xid).reply(conn.version)
            return
        finally:
            self._flow_updates()  # before the replies: a barrier after a flow_mod
        if isinstance(msg, (GroupMod, MeterMod)):
            self._request_forward(c, msg)
        for r in replies:
            c.wbuf += conn.send(r)

    def _request_forward(self, source: _Client, msg: GroupMod | MeterMod) -> None:
        """A group or meter mod that succeeded goes, as OFPT_REQUESTFORWARD, to every
        other OpenFlow 1.4+ session whose async config asks for that reason (off by
        default, as in Open vSwitch), in that session's version."""
        reason = 0 if isinstance(msg, GroupMod) else 1  # OFPRFR_GROUP_MOD / OFPRFR_METER_MOD
        fwd = RequestForward(message=msg)
        for c in self.clients:
            v = c.conn.version
            if c is source or c.closing or v is None or v < OFP14_VERSION:
                continue
            if c.session.service and not c.session.miss_send_len:
                continue  # a management session that did not ask for async messages
            if c.conn.async_allows(MsgType.REQUESTFORWARD, reason):
                c.wbuf += c.conn.send(fwd)

    def _flow_updates(self) -> None:
        """Send flow monitors the updates rule changes made so far produced."""
        if self.handler.bridge.of.watch is None:
            return
        live = [c for c in self.clients if c.conn.version is not None and not c.closing]
        per = self.handler.flow_updates([(c.conn, c.session) for c in live])
        for c, msgs in zip(live, per, strict=True):
            for m in msgs:
                c.wbuf += c.conn.send(m)
            if msgs and not c.session.monitor_paused and len(c.wbuf) > MONITOR_BACKLOG:
                with contextlib.suppress(OSError):  # what the socket takes is no backlog
                    del c.wbuf[: c.sock.send(c.wbuf)]  # (errors: _flush sees them)
            if msgs and not c.session.monitor_paused and len(c.wbuf) > MONITOR_BACKLOG:
                c.wbuf += c.conn.send(self.handler.pause_monitors(c.conn, c.session))

    def _resume_monitors(self) -> None:
        """Paused flow monitors whose peer caught up (nothing left to write) resume."""
        for c in self.clients:
            if c.session.monitor_paused and not c.wbuf and not c.closing:
                for m in self.handler.resume_monitors(c.conn, c.session):
                    c.wbuf += c.conn.send(m)

    def _async(self, now: float) -> None:
        self._flow_updates()  # timeouts, learned rules
        pins, frs = self.handler.async_messages(now)
        pss = self.handler.port_status()
        if not pins and not frs and not pss:
            return
        for c in self.clients:
            if c.conn.version is None or c.closing:
                continue
            for m in (*pss, *pins, *frs):
                if self.handler.wants(c.conn, c.session, m):
                    c.wbuf += c.conn.send(m)

    def _flush(self, c: _Client) -> None:
        while c.wbuf:
            try:
                n = c.sock.send(c.wbuf)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno not in (errno.EPIPE, errno.ECONNRESET):
                    log.info("%s: send failed: %s", self.path, e)
                c.closing = True
                c.error = c.error or os.strerror(e.errno or errno.EIO)
                c.wbuf.clear()
                break
            del c.wbuf[:n]
        if len(c.wbuf) > MAX_WBUF:
            log.warning("%s: client is not reading; dropping it", self.path)
            c.closing = True
        if c.closing and not c.wbuf:
            with contextlib.suppress(OSError):
                c.sock.close()
            self.clients.remove(c)
            cn = c.connector
            if cn is not None and cn.client is c:
                cn.client = None
                cn.last_error = c.error
                cn.rc.disconnected(_ms(self._now), 0)
                log.info("controller %s: disconnected", cn.target)


@dataclass(eq=False)
class InheritedClient:
    fd: int
    conn: Connection
    wbuf: bytes
    closing: bool
    service: bool
    miss_send_len: int | None
    controller: str | None
    origin: str | None
    bundles: dict[int, tuple[int, list[Message]]]
    closed_bundles: tuple[int, ...] = ()
    monitors: tuple[MonitorRequest, ...] = ()  # flow monitors (absent before they existed)


@dataclass(eq=False)
class InheritedSessions:
    """One bridge's OpenFlow listeners and sessions from a predecessor, checked and
    decoded (``parse_sessions``) but not yet served: the descriptors are ours to close
    until an ``OfManager`` takes them."""

    mgmt: int | None
    passive: dict[str, int]
    clients: list[InheritedClient]
    switch_flags: int = 0
    miss_send_len: int = 128
    tlv_maps: tuple[TlvMap, ...] = ()  # the Geneve option map (NXT_TLV_TABLE_MOD)
    # OFPT_TABLE_MOD's: (table, 1.1 miss config, eviction, (vacancy_down, _up) or None)
    table_config: tuple[tuple[int, int, bool, tuple[int, int] | None], ...] = ()
    taken: bool = False

    def fds(self) -> list[int]:
        out = [] if self.mgmt is None else [self.mgmt]
        return out + list(self.passive.values()) + [c.fd for c in self.clients]

    def close(self) -> None:
        """Give up the descriptors (a bridge that is gone, or a rolled-back handoff)."""
        if self.taken:
            return
        self.taken = True
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)


def parse_sessions(record: dict[str, Any], fds: list[int], now: float) -> InheritedSessions:
    """Check and decode a bridge's record from ``OfManager.export_sessions`` whose "fd"
    fields index ``fds``; ValueError (saying what) if anything in it is not usable."""

    def fd(i: Any) -> int:
        if not isinstance(i, int) or not 0 <= i < len(fds):
            raise ValueError(f"session descriptor {i!r} of {len(fds)}")
        return fds[i]

    try:
        mgmt = record.get("mgmt")
        clients = []
        for c in record.get("clients", []):
            conn = Connection.from_state(SessionState.from_dict(c["state"]), now)
            bundles: dict[int, tuple[int, list[Message]]] = {}
            for bid, flags, msgs in c.get("bundles", []):
                bundles[int(bid)] = (int(flags), [decode_message(bytes(m)) for m in msgs])
            controller = c.get("controller")
            if controller is not None:
                parse_target(str(controller))
            clients.append(
                InheritedClient(
                    fd(c["fd"]),
                    conn,
                    bytes(c.get("wbuf", b"")),
                    bool(c.get("closing", False)),
                    bool(c.get("service", True)),
                    _miss_send_len(c, record),
                    None if controller is None else str(controller),
                    None if c.get("origin") is None else str(c["origin"]),
                    bundles,
                    tuple(int(b) for b in c.get("closed_bundles", ())),
                    tuple(parse_monitor(m) for m in c.get("monitors", ())),
                )
            )
        return InheritedSessions(
            None if mgmt is None else fd(mgmt),
            {str(t): fd(i) for t, i in dict(record.get("passive", {})).items()},
            clients,
            int(record.get("switch_flags", 0)),
            int(record.get("miss_send_len", 128)),
            tuple(TlvMap(*(int(x) for x in m)) for m in record.get("tlv_maps", ())),
            tuple(
                (int(t), int(miss), bool(ev), None if vac is None else (int(vac[0]), int(vac[1])))
                for t, miss, ev, vac in record.get("table_config", ())
            ),
        )
    except (KeyError, TypeError, AttributeError, LocalProtocolError, RemoteProtocolError) as e:
        raise ValueError(f"malformed OpenFlow session record: {type(e).__name__}: {e}") from None


def monitor_record(m: MonitorRequest) -> list[Any]:
    """A flow monitor as the session record carries it (the match as OXM bytes)."""
    return [m.monitor_id, int(m.flags), m.table_id, m.out_port, m.out_group, m.match.encode()]


def parse_monitor(rec: Any) -> MonitorRequest:
    mid, flags, table, out_port, out_group, match = rec
    return MonitorRequest(int(mid), int(flags), OfMatch.parse(Reader(bytes(match), 0)),
                          int(table), int(out_port), int(out_group))  # fmt: skip


def _miss_send_len(client: dict[str, Any], record: dict[str, Any]) -> int | None:
    """A session's miss_send_len (builds before per-connection values kept one for the
    bridge, which applied to its controller sessions)."""
    if "miss_send_len" in client:
        v = client["miss_send_len"]
        return None if v is None else int(v)
    if client.get("service", True) or "miss_send_len" not in record:
        return None
    return int(record["miss_send_len"])


def _adopt_socket(fd: int) -> socket.socket:
    sock = socket.socket(fileno=fd)
    sock.setblocking(False)
    return sock


def _ms(now: float) -> int:
    return int(now * 1000)


def hello_failed_eperm(text: str) -> bytes:
    """OFPT_ERROR OFPET_HELLO_FAILED/OFPHFC_EPERM carrying ``text``, as OpenFlow 1.0
    (the version any client can read before negotiation)."""
    body = struct.pack("!HH", 0, 1) + text.encode()
    return struct.pack("!BBHI", 1, 1, 8 + len(body), 0) + body


def _listen(kind: str, addr: Any) -> socket.socket:
    if kind == "punix":
        return localsock.listen(addr, 16)  # mode 0600, like the management socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # ptcp: bound to the target's IP
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setblocking(False)
    try:
        sock.bind(addr)
        sock.listen(16)
    except OSError:
        sock.close()
        raise
    return sock
