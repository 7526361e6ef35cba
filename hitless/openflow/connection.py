"""One OpenFlow connection, sans-IO: bytes in, events out, bytes to send back.

    conn = Connection(now=t0)                 # allowed versions: 1.3 and 1.4 by default
    sock.send(conn.start())                   # our HELLO (both sides send one, §6.3.1)
    conn.receive_data(sock.recv(65536), now=t)
    while (event := conn.next_event()) is not NEED_DATA and event is not CLOSED:
        if isinstance(event, ConnectionEvent):
            sock.send(event.data)             # replies the connection made itself
        else:
            ...                               # a Message for the pipeline
    sock.send(conn.send(FlowStatsReply(xid=request.xid, stats=...)))

The connection negotiates the version (highest common one, by version bitmap or header
version, §6.3.1), answers echo requests, probes an idle peer with echo requests and
declares it dead when a probe goes unanswered (``get_timer`` / ``handle_timer(now)``),
allocates xids, and turns every malformed message into a ``ProtocolErrorEvent`` whose
``data`` is the OFPT_ERROR reply; the stream goes on at the next message boundary. Only a
header whose length cannot delimit a message, or a failed negotiation, is fatal.

Bytes read but not yet parsed are an explicit value: ``export_state()`` returns them with
the rest of the session (version, role, generation id, async config, next xid) as plain
data, and ``Connection.from_state`` continues the same TCP session in a new process.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from hitless.openflow import ofp10
from hitless.openflow.constants import (
    OFP10_VERSION,
    OFP13_VERSION,
    OFP14_VERSION,
    SUPPORTED_VERSIONS,
    AsyncConfigProp,
    BadRequestCode,
    ControllerRole,
    ErrorType,
    HelloFailedCode,
    MsgType,
    MultipartFlags,
)
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError
from hitless.openflow.messages import (
    HEADER,
    AsyncConfig,
    EchoReply,
    EchoRequest,
    Hello,
    Message,
    PacketIn,
    RequestForward,
    decode,
    decode_header,
)
from hitless.openflow.multipart import MultipartReply
from hitless.openflow.nx import NxPacketInFormat, NxSession
from hitless.openflow.nxmsg import NxControl, encode_nx_packet_in, encode_request_forward

DEFAULT_VERSIONS = (OFP13_VERSION, OFP14_VERSION)
# What encoding a value that does not fit its wire form raises: our own checks, struct's
# and int.to_bytes' range checks.
ENCODE_ERRORS = (LocalProtocolError, struct.error, OverflowError, ValueError)
# The field holding a multipart reply's entries (one per reply class that has entries).
_ENTRIES = ("stats", "tables", "ports", "entries", "queues", "updates")
_TRY_WHOLE = 16  # a reply of at most this many entries is tried as one message first
_BATCH = 16  # entries encoded together while packing a longer one
MAX_MESSAGE = 0xFFFF


def _with_length(head: bytes, body: list[bytes], size: int) -> bytes:
    """A message: ``head`` (a header encoded without entries) with ``body`` appended and
    the length field saying ``size``."""
    return head[:2] + size.to_bytes(2, "big") + head[4:] + b"".join(body)
DEFAULT_PROBE_INTERVAL = 5.0  # seconds of silence before an echo probe (as Open vSwitch)

# Default asynchronous configuration (§7.3.10; Open vSwitch 3.1's values, as its 1.4
# GET_ASYNC reply shows them): master/equal get packet-ins for every reason but invalid
# TTL (1.3 sees no match and action), all port status and flow-removed reasons (1.3 sees
# its four); slaves get port status only; role and table status and request forwarding
# are off: a 1.4+ reply lists them as 0 (AsyncConfig.for_version). The six masks only, so
# a session handed down to a build that needs exactly six for 1.3 (c0a5a15 and before)
# can still answer a 1.3 GET_ASYNC.
DEFAULT_ASYNC = AsyncConfig.of(
    {
        AsyncConfigProp.PACKET_IN_MASTER: 0x3B,
        AsyncConfigProp.PACKET_IN_SLAVE: 0x0,
        AsyncConfigProp.PORT_STATUS_MASTER: 0x7,
        AsyncConfigProp.PORT_STATUS_SLAVE: 0x7,
        AsyncConfigProp.FLOW_REMOVED_MASTER: 0x3F,
        AsyncConfigProp.FLOW_REMOVED_SLAVE: 0x0,
    }
)
_ASYNC_PROPS = {
    MsgType.PACKET_IN: (AsyncConfigProp.PACKET_IN_MASTER, AsyncConfigProp.PACKET_IN_SLAVE),
    MsgType.PORT_STATUS: (AsyncConfigProp.PORT_STATUS_MASTER, AsyncConfigProp.PORT_STATUS_SLAVE),
    MsgType.FLOW_REMOVED: (
        AsyncConfigProp.FLOW_REMOVED_MASTER,
        AsyncConfigProp.FLOW_REMOVED_SLAVE,
    ),
    MsgType.REQUESTFORWARD: (  # 1.4+; off unless a SET_ASYNC asks (Open vSwitch's default)
        AsyncConfigProp.REQUESTFORWARD_MASTER,
        AsyncConfigProp.REQUESTFORWARD_SLAVE,
    ),
    MsgType.TABLE_STATUS: (  # 1.4+ vacancy events; likewise off by default
        AsyncConfigProp.TABLE_STATUS_MASTER,
        AsyncConfigProp.TABLE_STATUS_SLAVE,
    ),
}


class _Sentinel(enum.Enum):
    NEED_DATA = "need-data"
    CLOSED = "closed"


NEED_DATA = _Sentinel.NEED_DATA  # next_event(): no complete message buffered
CLOSED = _Sentinel.CLOSED  # next_event(): the connection is over


class Phase(enum.Enum):
    HELLO = "hello"  # waiting for the peer's HELLO
    OPEN = "open"  # version negotiated
    CLOSED = "closed"


# -- Events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionEvent:
    """Something the connection handled itself; ``data`` is what to send now (may be empty)."""

    data: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class Negotiated(ConnectionEvent):
    """The peer's HELLO arrived and both sides speak ``version``."""

    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EchoAnswered(ConnectionEvent):
    """An echo request arrived; ``data`` is the echo reply."""

    request: EchoRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolErrorEvent(ConnectionEvent):
    """The peer sent something invalid; ``data`` is the OFPT_ERROR reply. ``fatal``: the
    stream cannot continue (close it after sending ``data``)."""

    error: RemoteProtocolError
    fatal: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class KeepaliveProbe(ConnectionEvent):
    """The peer was silent for the probe interval; ``data`` is an echo request."""

    xid: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NxConfigured(ConnectionEvent):
    """A Nicira session control (flow format, packet-in format, controller id, flow_mod
    table ids) arrived and was applied to ``Connection.nx``; nothing to answer."""

    request: NxControl


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeout(ConnectionEvent):
    """The peer did not answer a probe (or never said HELLO) in time: close it."""


Event = Message | ConnectionEvent


# -- Session state ---------------------------------------------------------------------

_EVERY_BUILD = frozenset((OFP13_VERSION, OFP14_VERSION))  # versions every release speaks


@dataclass(frozen=True, slots=True)
class SessionState:
    """Everything a new process needs to continue this OpenFlow session, as plain data."""

    versions: tuple[int, ...]
    version: int | None
    phase: str
    hello_sent: bool
    role: int
    generation_id: int | None
    async_config: tuple[tuple[int, int], ...]
    next_xid: int
    unparsed: bytes
    probe_interval: float | None
    probe_xid: int | None = None
    nx: dict[str, Any] | None = None  # NxSession.to_dict(); absent in older records

    def to_dict(self) -> dict[str, Any]:
        # Older builds refuse a record whose "versions" names one they do not speak (their
        # Connection checks every allowed version), so "versions" holds only what the
        # session needs: the negotiated version, or before HELLO the versions every build
        # speaks (1.3, 1.4). This build and later ones read "all_versions". A downgrade
        # keeps a session in any version the older build speaks and refuses (rolls back
        # on) one it does not.
        if self.version is not None:
            legacy = [self.version]
        else:
            legacy = [v for v in self.versions if v in _EVERY_BUILD] or list(self.versions)
        return {
            "versions": legacy,
            "all_versions": list(self.versions),
            "version": self.version,
            "phase": self.phase,
            "hello_sent": self.hello_sent,
            "role": self.role,
            "generation_id": self.generation_id,
            "async_config": [list(p) for p in self.async_config],
            "next_xid": self.next_xid,
            "unparsed": self.unparsed,
            "probe_interval": self.probe_interval,
            "probe_xid": self.probe_xid,
            "nx": self.nx,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SessionState:
        return cls(
            versions=tuple(d.get("all_versions", d["versions"])),
            version=d["version"],
            phase=d["phase"],
            hello_sent=d["hello_sent"],
            role=d["role"],
            generation_id=d["generation_id"],
            async_config=tuple((int(k), int(v)) for k, v in d["async_config"]),
            next_xid=d["next_xid"],
            unparsed=bytes(d["unparsed"]),
            probe_interval=d["probe_interval"],
            probe_xid=d.get("probe_xid"),
            nx=d.get("nx"),
        )


# -- The connection --------------------------------------------------------------------


@dataclass(eq=False)
class _Buffer:
    """Received bytes not yet parsed (wsproto's Buffer, reduced to what framing needs)."""

    data: bytearray = field(default_factory=bytearray)
    eof: bool = False

    def feed(self, chunk: bytes) -> None:
        self.data += chunk

    def peek_header(self) -> tuple[int, int, int, int] | None:
        if len(self.data) < HEADER.size:
            return None
        h = decode_header(bytes(self.data[: HEADER.size]))
        return h.version, h.type, h.length, h.xid

    def consume(self, n: int) -> bytes:
        out = bytes(self.data[:n])
        del self.data[:n]
        return out


class Connection:
    """One end of an OpenFlow session (symmetric: a switch or a controller)."""

    def __init__(
        self,
        *,
        versions: tuple[int, ...] | list[int] = DEFAULT_VERSIONS,
        probe_interval: float | None = DEFAULT_PROBE_INTERVAL,
        now: float = 0.0,
    ) -> None:
        allowed = tuple(sorted(set(versions)))
        if not allowed or not set(allowed) <= SUPPORTED_VERSIONS:
            raise LocalProtocolError(f"versions {allowed} not within {sorted(SUPPORTED_VERSIONS)}")
        self.versions = allowed
        self.probe_interval = probe_interval
        self.phase = Phase.HELLO
        self.version: int | None = None
        self.hello_sent = False
        # Session state the pipeline reads and updates (§7.3.9, §7.3.10).
        self.role: int = ControllerRole.EQUAL
        self.generation_id: int | None = None
        self.async_config: AsyncConfig = DEFAULT_ASYNC
        self.nx = NxSession()  # what Nicira session controls negotiated
        # The bytes of the message next_event() returned last: an error about it quotes
        # them as they came (re-encoding a value would not give the peer's bytes back).
        self.last_request = b""
        # Entries send() left out of a multipart reply (each too long for a message of
        # its own), as (entry type, why); the caller logs and clears them.
        self.left_out: list[tuple[str, str]] = []
        self._next_xid = 1
        self._buffer = _Buffer()
        self._events: deque[Event] = deque()
        self._last_rx = now
        self._probe_xid: int | None = None
        self._probe_at = now

    # -- outgoing --

    def start(self) -> bytes:
        """Our HELLO, to send as soon as the transport is up."""
        if self.hello_sent:
            raise LocalProtocolError("HELLO already sent")
        self.hello_sent = True
        return Hello(xid=self.next_xid(), versions=frozenset(self.versions)).encode(
            max(self.versions)
        )

    def send(self, msg: Message) -> bytes:
        """The bytes of ``msg`` in the negotiated version.

        A multipart reply goes out as Open vSwitch 3.1 sends one: as many entries in each
        message as fit in 65535 bytes, every message but the last with OFPMPF_REPLY_MORE
        (the same entries take more room in some versions, e.g. a 1.3 set_field as a 1.0
        Nicira load). An entry that does not fit even alone is left out and noted in
        ``left_out``, as Open vSwitch leaves out a flow too long for its statistics reply.
        Anything else that cannot be encoded raises one of ``ENCODE_ERRORS``."""
        if isinstance(msg, MultipartReply):
            return self._send_parts(msg)
        return self._encode(msg)

    def _send_parts(self, msg: MultipartReply) -> bytes:
        name = next((n for n in _ENTRIES if isinstance(getattr(msg, n, None), tuple)), None)
        entries: tuple[Any, ...] = getattr(msg, name) if name is not None else ()
        if name is None or len(entries) <= _TRY_WHOLE:
            try:
                return self._encode(msg)
            except ENCODE_ERRORS:
                if not entries:
                    raise
        assert name is not None
        more = replace(msg, flags=msg.flags | MultipartFlags.MORE, **{name: ()})  # type: ignore[arg-type]
        head = self._encode(more)
        out = []
        body: list[bytes] = []
        size = len(head)
        for i in range(0, len(entries), _BATCH):
            group = entries[i : i + _BATCH]
            blob = self._entries(more, head, name, group)
            if isinstance(blob, bytes) and size + len(blob) <= MAX_MESSAGE:
                body.append(blob)
                size += len(blob)
                continue
            for e in group:  # the message fills up within this batch: entry by entry
                part = self._entries(more, head, name, (e,))
                if not isinstance(part, bytes):
                    self.left_out.append((type(e).__name__, str(part)))
                    continue
                if size + len(part) > MAX_MESSAGE:
                    out.append(_with_length(head, body, size))
                    body, size = [], len(head)
                body.append(part)
                size += len(part)
        last = self._encode(replace(msg, **{name: ()}))  # type: ignore[arg-type]
        if len(last) != len(head):
            raise LocalProtocolError(f"{type(msg).__name__} header changes with its flags")
        out.append(_with_length(last, body, size))
        return b"".join(out)

    def _entries(
        self, more: MultipartReply, head: bytes, name: str, group: tuple[Any, ...]
    ) -> bytes | Exception:
        """The bytes ``group`` adds to the empty reply ``more`` (whose bytes are ``head``),
        or why it cannot be encoded. A message is its header, then its entries: checked
        (the bytes before the entries are the empty message's, the length aside)."""
        try:
            one = self._encode(replace(more, **{name: group}))  # type: ignore[arg-type]
        except ENCODE_ERRORS as e:
            return e
        if one[:2] != head[:2] or one[4 : len(head)] != head[4:]:
            raise LocalProtocolError(f"{type(more).__name__} entries are not appended")
        return one[len(head) :]

    def _encode(self, msg: Message) -> bytes:
        if self.phase is not Phase.OPEN or self.version is None:
            raise LocalProtocolError(
                f"cannot send {type(msg).__name__} in phase {self.phase.value}"
            )
        if isinstance(msg, Hello):
            raise LocalProtocolError("HELLO is sent by start()")
        if isinstance(msg, RequestForward) and self.version < OFP14_VERSION:
            return encode_request_forward(self.send(msg.message), self.version)
        if self.version == OFP10_VERSION:
            return ofp10.encode(msg, self.nx)
        if isinstance(msg, PacketIn) and self.nx.packet_in_format != NxPacketInFormat.STANDARD:
            return encode_nx_packet_in(msg, self.nx.packet_in_format, self.version)
        return msg.encode(self.version)

    def next_xid(self) -> int:
        """A fresh transaction id for a request we originate (never 0)."""
        xid = self._next_xid
        self._next_xid = xid % 0xFFFFFFFF + 1
        return xid

    def async_allows(self, msg_type: MsgType, reason: int) -> bool:
        """Whether this connection's role and async config want an async message (§7.3.10)."""
        props = _ASYNC_PROPS.get(msg_type)
        if props is None:
            raise LocalProtocolError(f"{msg_type!r} is not filtered by the async config")
        prop = props[1] if self.role == ControllerRole.SLAVE else props[0]
        return bool(self.async_config.get(prop) >> reason & 1)

    # -- incoming --

    def receive_data(self, data: bytes, now: float | None = None) -> None:
        """Bytes from the peer; ``b""`` means the peer closed. ``now`` (when they arrived)
        refreshes the keepalive: any traffic proves the peer alive."""
        if self.phase is Phase.CLOSED:
            return
        if self._buffer.eof and data:
            raise LocalProtocolError("data after end of stream")
        if not data:
            self._buffer.eof = True
            return
        self._buffer.feed(data)
        if now is not None:
            self._last_rx = now
            self._probe_xid = None

    def next_event(self) -> Event | _Sentinel:
        """The next event, ``NEED_DATA`` until more bytes arrive, or ``CLOSED``."""
        if self._events:
            return self._events.popleft()
        if self.phase is Phase.CLOSED:
            return CLOSED
        header = self._buffer.peek_header()
        if header is None:
            return self._starved()
        version, mtype, length, xid = header
        if length < HEADER.size:
            # The length cannot delimit the message: there is no next boundary to resume at.
            error = RemoteProtocolError(
                f"message length {length} < 8", ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN
            ).with_request(bytes(self._buffer.data[:64]), xid)
            return self._fatal(error)
        if len(self._buffer.data) < length:
            return self._starved()
        raw = self._buffer.consume(length)
        self.last_request = raw
        if self.phase is Phase.HELLO:
            return self._negotiate(raw, version, mtype, xid)
        return self._message(raw, version, xid)

    def _starved(self) -> _Sentinel:
        if self._buffer.eof:
            self.phase = Phase.CLOSED
            return CLOSED
        return NEED_DATA

    def _reply_version(self) -> int:
        return self.version if self.version is not None else max(self.versions)

    def _fatal(self, error: RemoteProtocolError, prefix: bytes = b"") -> ProtocolErrorEvent:
        self.phase = Phase.CLOSED
        return ProtocolErrorEvent(
            error=error, fatal=True, data=prefix + error.reply(self._reply_version())
        )

    def _negotiate(self, raw: bytes, version: int, mtype: int, xid: int) -> Event:
        our_hello = b"" if self.hello_sent else self.start()
        if mtype != MsgType.HELLO:
            error = RemoteProtocolError(
                f"expected HELLO, got message type {mtype}",
                ErrorType.HELLO_FAILED,
                HelloFailedCode.INCOMPATIBLE,
                xid=xid,
                data=b"first message must be HELLO",
            )
            return self._fatal(error, our_hello)
        try:
            hello = decode(raw)
        except RemoteProtocolError as e:
            return self._fatal(e, our_hello)
        assert isinstance(hello, Hello)
        if hello.versions:
            common = set(self.versions) & hello.versions
        else:
            # No bitmap (§6.3.1): the smaller of both header versions, if we speak it.
            candidate = min(version, max(self.versions))
            common = {candidate} & set(self.versions)
        if not common:
            theirs = sorted(hello.versions) or [version]
            text = (
                f"no common OpenFlow version: we support {[hex(v) for v in self.versions]}, "
                f"peer supports {[hex(v) for v in theirs]}"
            )
            error = RemoteProtocolError(
                text,
                ErrorType.HELLO_FAILED,
                HelloFailedCode.INCOMPATIBLE,
                xid=xid,
                data=text.encode(),
            )
            self.version = min(max(self.versions), max(version, min(SUPPORTED_VERSIONS)))
            return self._fatal(error, our_hello)
        self.version = max(common)
        self.phase = Phase.OPEN
        return Negotiated(version=self.version, data=our_hello)

    def _message(self, raw: bytes, version: int, xid: int) -> Event:
        assert self.version is not None
        try:
            if version != self.version:
                raise RemoteProtocolError(
                    f"version {version:#x} on a {self.version:#x} connection",
                    ErrorType.BAD_REQUEST,
                    BadRequestCode.BAD_VERSION,
                ).with_request(raw, xid)
            msg = ofp10.decode(raw, self.nx) if version == OFP10_VERSION else decode(raw)
            if isinstance(msg, NxControl):
                try:
                    msg.apply(self.nx)
                except RemoteProtocolError as e:
                    raise e.with_request(raw, xid) from None
                return NxConfigured(request=msg)
        except RemoteProtocolError as e:
            return ProtocolErrorEvent(error=e, data=e.reply(self.version))
        if isinstance(msg, EchoRequest):
            reply = EchoReply(xid=msg.xid, data=msg.data).encode(self.version)
            return EchoAnswered(request=msg, data=reply)
        if isinstance(msg, EchoReply) and msg.xid == self._probe_xid:
            self._probe_xid = None
        return msg

    # -- time --

    def get_timer(self) -> float | None:
        """When ``handle_timer`` next needs calling, or None."""
        if self.phase is Phase.CLOSED or self.probe_interval is None:
            return None
        if self._probe_xid is None and self.phase is Phase.OPEN:
            return self._last_rx + self.probe_interval
        start = self._probe_at if self._probe_xid is not None else self._last_rx
        return start + self.probe_interval

    def handle_timer(self, now: float) -> None:
        """Probe a silent peer, or give up on one that did not answer; queues the event."""
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return
        if self.phase is Phase.OPEN and self._probe_xid is None:
            xid = self.next_xid()
            self._probe_xid, self._probe_at = xid, now
            data = self.send(EchoRequest(xid=xid))
            self._events.append(KeepaliveProbe(xid=xid, data=data))
            return
        self.phase = Phase.CLOSED
        self._events.append(Timeout())

    # -- handoff --

    def export_state(self) -> SessionState:
        """The whole session as plain data, at a message boundary (no event pending)."""
        if self._events:
            raise LocalProtocolError("export with events not yet taken by next_event()")
        return SessionState(
            versions=self.versions,
            version=self.version,
            phase=self.phase.value,
            hello_sent=self.hello_sent,
            role=int(self.role),
            generation_id=self.generation_id,
            async_config=self.async_config.masks,
            next_xid=self._next_xid,
            unparsed=bytes(self._buffer.data),
            probe_interval=self.probe_interval,
            probe_xid=self._probe_xid,
            nx=self.nx.to_dict(),
        )

    @classmethod
    def from_state(cls, state: SessionState, now: float) -> Connection:
        """Continue an exported session; the keepalive restarts from ``now``."""
        conn = cls(versions=state.versions, probe_interval=state.probe_interval, now=now)
        conn.phase = Phase(state.phase)
        conn.version = state.version
        conn.hello_sent = state.hello_sent
        conn.role = state.role
        conn.generation_id = state.generation_id
        conn.async_config = AsyncConfig(state.async_config)
        conn._next_xid = state.next_xid
        conn._buffer.feed(state.unparsed)
        conn._probe_xid = state.probe_xid
        conn._probe_at = now
        conn.nx = NxSession.from_dict(state.nx)
        if conn.phase is Phase.OPEN and conn.version not in conn.versions:
            raise LocalProtocolError(f"imported version {conn.version} not allowed")
        return conn

    @property
    def unparsed(self) -> bytes:
        """Bytes received and not yet turned into events."""
        return bytes(self._buffer.data)


__all__ = [
    "CLOSED",
    "DEFAULT_ASYNC",
    "DEFAULT_VERSIONS",
    "ENCODE_ERRORS",
    "NEED_DATA",
    "Connection",
    "ConnectionEvent",
    "EchoAnswered",
    "Event",
    "KeepaliveProbe",
    "Negotiated",
    "NxConfigured",
    "Phase",
    "ProtocolErrorEvent",
    "SessionState",
    "Timeout",
]
