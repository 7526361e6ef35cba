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
configuration allow. ``DIR/<bridge>.snoop`` serves ``ovs-ofctl snoop``: a copy of what
one active controller connection sends and receives (``_Snooper``).
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hitless import localsock
from hitless.config.model import ControllerStatus
from hitless.ofproto.ofhandler import (
    BundleMessageFailed,
    OfHandler,
    OfSession,
    wants_miss_packet_ins,
)
from hitless.openflow import (
    CLOSED,
    NEED_DATA,
    Connection,
    ConnectionEvent,
    Message,
    Negotiated,
    ProtocolErrorEvent,
    SessionState,
    Timeout,
)
from hitless.openflow._wire import Reader
from hitless.openflow.connection import DEFAULT_PROBE_INTERVAL, ENCODE_ERRORS
from hitless.openflow.constants import OFP13_VERSION, PROTOCOL_VERSIONS, MsgType
from hitless.openflow.errors import LocalProtocolError, NxError, RemoteProtocolError
from hitless.openflow.flowmon import MonitorRequest
from hitless.openflow.match import Match as OfMatch
from hitless.openflow.messages import GroupMod, MeterMod, RequestForward
from hitless.openflow.messages import decode as decode_message
from hitless.openflow.nx import NxSession
from hitless.openflow.nxmsg import TlvMap
from hitless.state.records import (
    BridgeSessionsV4,
    OfBundleV4,
    OfConnectionV4,
    OfMonitorV4,
    OfSessionV4,
    OfTableConfigV4,
    OfTlvMapV4,
)

log = logging.getLogger(__name__)

MAX_WBUF = 64 << 20  # a client that stops reading this much is dropped
SNOOP_WBUF = 1 << 20  # copies for a snooper that has this much unread are dropped
PASSIVE_RETRY = 1.0  # seconds between attempts to open a ptcp/punix listener


# Flow updates waiting to be written beyond which a session's monitoring pauses (Open
# vSwitch's 128 kB); it resumes, with a refresh, once everything is written.
MONITOR_BACKLOG = 128 * 1024
MGMT_PROBE_INTERVAL = 60.0  # seconds: an idle DIR/<bridge>.mgmt session (Open vSwitch's 60)


def mgmt_path(rundir: str, bridge: str) -> str:
    return os.path.join(rundir, f"{bridge}.mgmt")


def snoop_path(mgmt: str) -> str:
    """``DIR/<bridge>.snoop`` beside a bridge's ``DIR/<bridge>.mgmt``."""
    return mgmt.removesuffix(".mgmt") + ".snoop"


# Which controller a new snooper watches: the master, else an equal, else a slave (as
# Open vSwitch's connmgr prefers them).
_SNOOP_PREFERENCE = {2: 3, 1: 2, 3: 1}


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

    def out(self, data: bytes) -> None:
        """Queue ``data`` (whole messages) for the peer; snoopers get a copy."""
        self.wbuf += data
        self.snooped(data)

    def snooped(self, data: bytes) -> None:
        """Copy whole messages sent or received to the snoopers of this controller."""
        if self.connector is not None:
            for s in self.connector.snoopers:
                s.copy(data)


@dataclass(eq=False)
class _Snooper:
    """An ``ovs-ofctl snoop`` session on ``DIR/<bridge>.snoop``: after its own HELLO
    exchange it gets a copy of every message a controller connection sends and receives,
    in that connection's version, as Open vSwitch's rconn monitors do; what it sends is
    read and dropped."""

    sock: socket.socket
    conn: Connection
    wbuf: bytearray = field(default_factory=bytearray)
    closing: bool = False

    def copy(self, data: bytes) -> None:
        # Open vSwitch drops a copy its monitor cannot take right away; whole messages
        # only, so what is written stays framed.
        if self.conn.version is not None and not self.closing and len(self.wbuf) < SNOOP_WBUF:
            self.wbuf += data


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
        self.snoopers: list[_Snooper] = []  # kept across reconnections, as rconn's monitors
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
        for s in self.snoopers:
            s.closing = True
        self.snoopers.clear()


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
        # DIR/<bridge>.snoop (a management socket's bridges only), handed over like it
        self.snoopers: list[_Snooper] = []
        self.snoop_path = snoop_path(path) if path.endswith(".mgmt") else None
        self.snoop_listener: socket.socket | None = None
        self._snoop_ino = 0
        if self.snoop_path is not None:
            if inherited is not None and inherited.snoop is not None:
                self.snoop_listener = _adopt_socket(inherited.snoop)
            else:
                self.snoop_listener = localsock.listen(self.snoop_path, 16)
            self._snoop_ino = os.stat(self.snoop_path).st_ino
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
    def export_sessions(self, bridge: str, fds: list[int]) -> BridgeSessionsV4:
        """This bridge's OpenFlow listeners and sessions for a successor, as a typed
        record (state version 4) whose descriptor fields index ``fds``, to which this
        appends the live descriptors (still ours: the successor gets duplicates, and
        until it commits we may serve on with them). Called between loop iterations,
        so every session is at a message boundary."""

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
                    OfBundleV4(
                        bid, c.session.bundle_flags.get(bid, 0), [m.encode(version) for m in msgs]
                    )
                    for bid, msgs in c.session.bundles.items()
                ]
                if version is not None
                else []
            )
            clients.append(
                OfSessionV4(
                    slot(c.sock),
                    connection_record(state),
                    bytes(c.wbuf),
                    c.closing,
                    c.session.service,
                    c.session.miss_send_len,
                    c.connector.target if c.connector is not None else None,
                    c.origin,
                    bundles,
                    sorted(c.session.closed_bundles),
                    [monitor_record(m) for m in c.session.monitors.values()],
                )
            )
        h = self.handler
        return BridgeSessionsV4(
            bridge,
            slot(self.listener) if self.listener is not None else None,
            slot(self.snoop_listener) if self.snoop_listener is not None else None,
            {t: slot(ls) for t, ls in self.passive.items()},
            clients,
            h.switch_flags,
            h.miss_send_len,
            [OfTlvMapV4(m.option_class, m.option_type, m.option_len, m.index)
             for m in h.tlv_maps.values()],  # fmt: skip
            # OFPT_TABLE_MOD's settings
            [
                OfTableConfigV4(t, h.table_miss.get(t, 0), t in h.table_evict,
                                h.table_vacancy.get(t))  # fmt: skip
                for t in sorted({*h.table_miss, *h.table_evict, *h.table_vacancy})
            ],
        )

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
        for sn in self.snoopers:
            with contextlib.suppress(OSError):
                sn.sock.close()
        self.snoopers.clear()
        if self.snoop_listener is not None and self.snoop_path is not None:
            self.snoop_listener.close()
            self.snoop_listener = None
            with contextlib.suppress(OSError):
                if os.stat(self.snoop_path).st_ino == self._snoop_ino:
                    os.unlink(self.snoop_path)

    # -- the loop --
    def run(self, now: float) -> None:
        self._now = now
        self._run_connectors(now)
        if self._passive_retry:
            self._run_passive(now)
        self._accept(now)
        self._run_snoopers()
        for c in list(self.clients):
            self._read(c, now)
            c.conn.handle_timer(now)
            self._events(c, now)
        self._miss_packet_ins()
        self.handler.bridge.commit_openflow()  # one re-translation per batch of changes
        self._async(now)
        for c in list(self.clients):
            self._flush(c)
        if self.handler.bridge.of.watch is not None:
            self._resume_monitors()
            for c in list(self.clients):
                if c.wbuf:
                    self._flush(c)
        for sn in list(self.snoopers):
            self._flush_snooper(sn)

    def wait(self, poller: Any, now: float) -> float | None:
        """Register fds; returns the earliest connection timer (absolute) or None."""
        if self.listener is not None:
            poller.fd_wait(self.listener.fileno(), select.POLLIN)
        if self.snoop_listener is not None:
            poller.fd_wait(self.snoop_listener.fileno(), select.POLLIN)
        for sn in self.snoopers:
            poller.fd_wait(sn.sock.fileno(), select.POLLIN | (select.POLLOUT if sn.wbuf else 0))
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
            for sock in _accept_all(ls, self.path):
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

    # -- snoopers (ovs-ofctl snoop) --
    def _run_snoopers(self) -> None:
        """Accept snoopers (each attached to the preferred controller connection, or
        closed at once when there is none, as Open vSwitch does) and read what they send:
        their HELLO, then nothing that matters."""
        waiting = () if self.snoop_listener is None else _accept_all(self.snoop_listener, self.snoop_path)
        for sock in waiting:
            if self._refuse(sock, self.snoop_path):
                continue
            best = self._snooped_controller()
            if best is None:
                log.info("%s: no controller connection to snoop", self.snoop_path)
                with contextlib.suppress(OSError):
                    sock.close()
                continue
            sn = _Snooper(sock, Connection(versions=DEFAULT_VERSIONS, probe_interval=None))
            sn.wbuf += sn.conn.start()
            best.snoopers.append(sn)
            self.snoopers.append(sn)
            log.info("%s: new monitor connection for %s", self.snoop_path, best.target)
        for sn in self.snoopers:
            while not sn.closing:
                try:
                    data = sn.sock.recv(65536)
                except BlockingIOError:
                    break
                except OSError:
                    data = b""
                sn.conn.receive_data(data)
                if not data:
                    sn.closing = True
            while True:
                ev = sn.conn.next_event()
                if ev is NEED_DATA:
                    break
                if ev is CLOSED:
                    sn.closing = True
                    break
                if isinstance(ev, ConnectionEvent):
                    sn.wbuf += ev.data  # our HELLO, an echo reply, an error
                    if isinstance(ev, ProtocolErrorEvent) and ev.fatal:
                        sn.closing = True

    def _snooped_controller(self) -> _Connector | None:
        """The controller connection a new snooper watches (Open vSwitch: a primary
        controller's, the master first, connected or not yet; never a management or
        passive session's)."""
        best: _Connector | None = None
        rank = 0
        for cn in self.connectors.values():
            c = cn.client
            up = c is not None and c.conn.version is not None and not c.closing
            r = _SNOOP_PREFERENCE.get(c.conn.role, 2) if c is not None and up else 2
            if r > rank:
                best, rank = cn, r
        return best

    def _flush_snooper(self, sn: _Snooper) -> None:
        while sn.wbuf:
            try:
                n = sn.sock.send(sn.wbuf)
            except BlockingIOError:
                break
            except OSError:
                sn.closing = True
                sn.wbuf.clear()
                break
            del sn.wbuf[:n]
        if sn.closing and not sn.wbuf:
            with contextlib.suppress(OSError):
                sn.sock.close()
            self.snoopers.remove(sn)
            for cn in self.connectors.values():
                if sn in cn.snoopers:
                    cn.snoopers.remove(sn)

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
            before = conn.last_request
            ev = conn.next_event()
            if conn.last_request is not before and not isinstance(ev, Negotiated):
                c.snooped(conn.last_request)  # what the peer sent, as it came
            if ev is NEED_DATA:
                return
            if ev is CLOSED:
                c.closing = True
                return
            if isinstance(ev, ProtocolErrorEvent):
                self.n_errors += 1
                log.info("%s: peer sent a bad message: %s", self.path, ev.error.message)
                c.out(ev.data)
                if ev.fatal:
                    c.closing = True
                    c.error = c.error or os.strerror(errno.EPROTO)
                continue
            if isinstance(ev, Timeout):
                c.closing = True
                c.error = c.error or os.strerror(errno.ETIMEDOUT)
                return
            if isinstance(ev, ConnectionEvent):
                if isinstance(ev, Negotiated):  # HELLOs are not snooped (Open vSwitch's neither)
                    c.wbuf += ev.data
                else:
                    c.out(ev.data)
                continue
            assert isinstance(ev, Message)
            self._dispatch(c, ev, now)

    def _dispatch(self, c: _Client, msg: Message, now: float) -> None:
        conn = c.conn
        try:
            replies = self.handler.handle(conn, c.session, msg, now, [o.conn for o in self.clients])
        except BundleMessageFailed as e:
            assert conn.version is not None
            c.out(e.inner.reply(conn.version))
            c.out(e.with_request(conn.last_request, msg.xid).reply(conn.version))
            return
        except RemoteProtocolError as e:
            assert conn.version is not None
            self.n_errors += 1
            log.info("%s: refused %s: %s", self.path, type(msg).__name__, e.message)
            c.out(e.with_request(conn.last_request, msg.xid).reply(conn.version))
            return
        finally:
            self._flow_updates()  # before the replies: a barrier after a flow_mod
        for mod in self.handler.applied_mods:  # one mod, or those a bundle committed
            self._request_forward(c, mod)
        for r in replies:
            self._send(c, r, msg)

    def _send(self, c: _Client, msg: Message, request: Message | None = None) -> None:
        """``msg`` to ``c`` in the session's version. A message that cannot be encoded
        (our failure, never the peer's) is logged and not sent; the session and the
        switch go on. A reply to ``request`` becomes an error quoting the request
        (NXBRC_UNENCODABLE_ERROR), so the peer is not left waiting for it."""
        conn = c.conn
        try:
            data = conn.send(msg)
        except ENCODE_ERRORS as e:
            log.error("%s: cannot encode %s (%s): %s", self.path, type(msg).__name__,
                      "answered with an error" if request else "not sent", e)  # fmt: skip
            if request is None or conn.version is None:
                return
            data = RemoteProtocolError.nicira(str(e), NxError.UNENCODABLE).with_request(
                conn.last_request, request.xid
            ).reply(conn.version)
        finally:
            for kind, why in conn.left_out:  # as Open vSwitch logs a flow it left out
                log.warning("%s: %s left out of a %s: too long for a reply message (%s)",
                            self.path, kind, type(msg).__name__, why)  # fmt: skip
            conn.left_out.clear()
        c.out(data)

    def _request_forward(self, source: _Client, msg: GroupMod | MeterMod) -> None:
        """A group or meter mod that succeeded goes, as OFPT_REQUESTFORWARD (Open vSwitch's
        Nicira/ONF forms before 1.4), to every other session whose async config asks for
        that reason (off by default; before 1.4 only NXT_SET_ASYNC_CONFIG2 can ask), in
        that session's version; meter mods only from 1.3 on, as Open vSwitch."""
        reason = 0 if isinstance(msg, GroupMod) else 1  # OFPRFR_GROUP_MOD / OFPRFR_METER_MOD
        fwd = RequestForward(message=msg)
        for c in self.clients:
            v = c.conn.version
            if c is source or c.closing or v is None or (reason == 1 and v < OFP13_VERSION):
                continue
            if c.session.service and not c.session.miss_send_len:
                continue  # a management session that did not ask for async messages
            if c.conn.async_allows(MsgType.REQUESTFORWARD, reason):
                self._send(c, fwd)

    def _flow_updates(self) -> None:
        """Send flow monitors the updates rule changes made so far produced."""
        if self.handler.bridge.of.watch is None:
            return
        live = [c for c in self.clients if c.conn.version is not None and not c.closing]
        per = self.handler.flow_updates([(c.conn, c.session) for c in live])
        for c, msgs in zip(live, per, strict=True):
            for m in msgs:
                self._send(c, m)
            if msgs and not c.session.monitor_paused and len(c.wbuf) > MONITOR_BACKLOG:
                with contextlib.suppress(OSError):  # what the socket takes is no backlog
                    del c.wbuf[: c.sock.send(c.wbuf)]  # (errors: _flush sees them)
            if msgs and not c.session.monitor_paused and len(c.wbuf) > MONITOR_BACKLOG:
                self._send(c, self.handler.pause_monitors(c.conn, c.session))

    def _resume_monitors(self) -> None:
        """Paused flow monitors whose peer caught up (nothing left to write) resume."""
        for c in self.clients:
            if c.session.monitor_paused and not c.wbuf and not c.closing:
                for m in self.handler.resume_monitors(c.conn, c.session):
                    self._send(c, m)

    def _miss_packet_ins(self) -> None:
        """A session of 1.0-1.2 that takes async messages came or went: misses without a
        table-miss rule start or stop making packet-ins (re-translated at the commit)."""
        want = wants_miss_packet_ins((c.conn.version, c.session) for c in self.clients
                                     if not c.closing)  # fmt: skip
        of = self.handler.bridge.of
        if want != of.miss_packet_in:
            of.miss_packet_in = want
            self.handler.bridge.of_config_changed(range(len(of.tables)))

    def _async(self, now: float) -> None:
        self._flow_updates()  # timeouts, learned rules
        pins, frs = self.handler.async_messages(now)
        pss = self.handler.port_status()
        tss = self.handler.table_status() if self.handler.table_vacancy else []
        if not pins and not frs and not pss and not tss:
            return
        for c in self.clients:
            if c.conn.version is None or c.closing:
                continue
            for m in (*pss, *pins, *frs, *tss):
                if self.handler.wants(c.conn, c.session, m):
                    self._send(c, m)

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
    snoop: int | None = None  # DIR/<bridge>.snoop's listener (absent before it existed)
    switch_flags: int = 0
    miss_send_len: int = 128
    tlv_maps: tuple[TlvMap, ...] = ()  # the Geneve option map (NXT_TLV_TABLE_MOD)
    # OFPT_TABLE_MOD's: (table, 1.1 miss config, eviction, (vacancy_down, _up) or None)
    table_config: tuple[tuple[int, int, bool, tuple[int, int] | None], ...] = ()
    taken: bool = False

    def fds(self) -> list[int]:
        out = [fd for fd in (self.mgmt, self.snoop) if fd is not None]
        return out + list(self.passive.values()) + [c.fd for c in self.clients]

    def close(self) -> None:
        """Give up the descriptors (a bridge that is gone, or a rolled-back handoff)."""
        if self.taken:
            return
        self.taken = True
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)


def parse_sessions(record: BridgeSessionsV4, fds: list[int], now: float) -> InheritedSessions:
    """Check and decode a bridge's record from ``OfManager.export_sessions`` whose
    descriptor fields index ``fds``; ValueError (saying what) if anything in it is not
    usable."""

    def fd(i: int) -> int:
        if not 0 <= i < len(fds):
            raise ValueError(f"session descriptor {i!r} of {len(fds)}")
        return fds[i]

    try:
        clients = []
        for c in record.clients:
            conn = Connection.from_state(session_state(c.connection), now)
            bundles = {
                b.bundle_id: (b.flags, [decode_message(m) for m in b.messages]) for b in c.bundles
            }
            if c.controller is not None:
                parse_target(c.controller)
            clients.append(
                InheritedClient(
                    fd(c.fd),
                    conn,
                    c.wbuf,
                    c.closing,
                    c.service,
                    c.miss_send_len,
                    c.controller,
                    c.origin,
                    bundles,
                    tuple(c.closed_bundles),
                    tuple(parse_monitor(m) for m in c.monitors),
                )
            )
        return InheritedSessions(
            None if record.mgmt is None else fd(record.mgmt),
            {t: fd(i) for t, i in record.passive.items()},
            clients,
            None if record.snoop is None else fd(record.snoop),
            record.switch_flags,
            record.miss_send_len,
            tuple(TlvMap(m.option_class, m.option_type, m.option_len, m.index)
                  for m in record.tlv_maps),  # fmt: skip
            tuple((t.table, t.miss, t.evict, t.vacancy) for t in record.table_config),
        )
    except (
        KeyError, TypeError, ValueError, AttributeError, LocalProtocolError, RemoteProtocolError
    ) as e:  # ValueError: a descriptor index out of range, a phase or role unknown here
        raise ValueError(f"malformed OpenFlow session record: {type(e).__name__}: {e}") from None


def connection_record(s: SessionState) -> OfConnectionV4:
    """An OpenFlow connection's exported state as the state layer's record."""
    nx = NxSession.from_dict(s.nx)
    return OfConnectionV4(
        list(s.versions),
        s.version,
        s.phase,
        s.hello_sent,
        s.role,
        s.generation_id,
        [(int(k), int(v)) for k, v in s.async_config],
        s.next_xid,
        s.unparsed,
        s.probe_interval,
        s.probe_xid,
        int(nx.flow_format),
        int(nx.packet_in_format),
        nx.controller_id,
        nx.flow_mod_table_id,
        sorted(nx.nx_xids),
    )


def session_state(r: OfConnectionV4) -> SessionState:
    """The record of ``connection_record`` back as what ``Connection.from_state`` takes."""
    nx = NxSession(r.flow_format, r.packet_in_format, r.controller_id, r.flow_mod_table_id,
                   set(r.nx_xids))  # fmt: skip
    return SessionState(
        tuple(r.versions),
        r.version,
        r.phase,
        r.hello_sent,
        r.role,
        r.generation_id,
        tuple(r.async_config),
        r.next_xid,
        r.unparsed,
        r.probe_interval,
        r.probe_xid,
        nx.to_dict(),
    )


def monitor_record(m: MonitorRequest) -> OfMonitorV4:
    """A flow monitor as the session record carries it (the match as OXM bytes)."""
    return OfMonitorV4(m.monitor_id, int(m.flags), m.table_id, m.out_port, m.out_group,
                       m.match.encode())  # fmt: skip


def parse_monitor(rec: OfMonitorV4) -> MonitorRequest:
    return MonitorRequest(rec.monitor_id, rec.flags, OfMatch.parse(Reader(rec.match, 0)),
                          rec.table_id, rec.out_port, rec.out_group)  # fmt: skip


def _accept_all(ls: socket.socket, where: str | None) -> Iterator[socket.socket]:
    """Every connection waiting on listener ``ls``, made non-blocking."""
    while True:
        try:
            sock, _ = ls.accept()
        except BlockingIOError:
            return
        except OSError as e:
            log.warning("%s: accept failed: %s", where, e)
            return
        sock.setblocking(False)
        yield sock


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
