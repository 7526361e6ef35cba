"""The handoff protocol, sans-IO: bytes (and file descriptors) in, events out.

The old process (serving the switch) and the new process (taking it over) talk over
a unix stream socket. Each message is a 4-byte big-endian length and a msgpack body.
File descriptors travel with SCM_RIGHTS alongside the ``Frozen`` message (and, with
feature "early-rings", the ``Welcome``); the I/O layer hands every received descriptor
to ``receive_data`` and the connection attaches them to the message that declares them
(``fd_count``).

Sequence (one table, ``TRANSITIONS``, lists every legal step)::

    new                         old
    Hello(versions) ─────────▶            negotiate: highest state version both read
              ◀───────── Welcome(version, lease)
              ◀───────── PreCopy(snapshot)   old keeps serving
    Ready ───────────────────▶            new imported pre-copy, OVSDB synced
              ◀───────── Frozen(snapshot, fds)  old stopped at a message boundary
    Ack(digest, counts) ─────▶            new restored and verified
              ◀───────── Commit             old lets go of everything
    Owned ───────────────────▶            new serves; old exits
    Abort(reason) ◀────────▶ from either side at any step before Owned: rollback

If the new process dies before Owned, the old one thaws and serves on. If the old
process dies after the new one's Ack, the new one finds it gone and takes over: either
way exactly one process owns the switch.

The freeze is a lease: the old side's ``freeze(now)`` sets a deadline and
``handle_timer(now)`` past it aborts the handoff (the old process thaws).
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any

import msgspec

from hitless.state.parts import with_bin_tail


class HandoffProtocolError(Exception):
    """Base class: the handoff cannot continue."""


class LocalProtocolError(HandoffProtocolError):
    """We tried to do something the protocol does not allow here (our bug)."""


class RemoteProtocolError(HandoffProtocolError):
    """The peer sent something invalid (its fault); the handoff is aborted."""


# -- Messages ---------------------------------------------------------------------------


class Hello(msgspec.Struct, tag="hello", frozen=True):
    software: str
    versions: list[int]  # state versions the new side reads and writes
    pid: int
    lease: float = 0.0  # freeze lease the operator asked for (0 = the old side's default)
    features: list[str] = []  # optional protocol features the new side speaks


class Welcome(msgspec.Struct, tag="welcome", frozen=True):
    software: str
    version: int  # the state version both sides will use
    pid: int
    lease: float  # seconds the old side will stay frozen at most
    features: list[str] = []  # the features both sides speak (a build without them sends none)
    # feature "early-rings": receive-ring sockets of the datapaths come along (SCM_RIGHTS),
    # ``rings`` their ring sizes in bytes, in order; the new side may map them while it
    # imports (they come again with Frozen, as ever)
    fd_count: int = 0
    fds: list[int] = []  # filled in on receipt with the descriptors that came along
    rings: list[int] = []


class PreCopy(msgspec.Struct, tag="precopy", frozen=True):
    snapshot: bytes


class Ready(msgspec.Struct, tag="ready", frozen=True):
    pass


# What the old side tells the new one about its pre-copy (``Frozen.old_stats``, seconds):
# built and sent ("precopy_send"); its longest serving-loop turn meanwhile ("loop_max")
# and that turn's CPU time ("loop_max_its_cpu"); the most CPU time any one turn used
# ("loop_max_cpu"); the most time one turn spent in garbage collections ("loop_max_gc";
# an older peer ignores keys it does not know). A turn much longer than its CPU time
# waited for a core.
OLD_STATS = ("precopy_send", "loop_max", "loop_max_its_cpu", "loop_max_cpu", "loop_max_gc")


class Frozen(msgspec.Struct, tag="frozen", frozen=True):
    snapshot: bytes  # the complete state at the freeze point
    fd_count: int
    fds: list[int] = []  # filled in on receipt with the descriptors that came along
    delta: bool = False  # the snapshot holds only what changed since the pre-copy
    # feature "listeners": listening sockets among the descriptors, name -> index
    listeners: dict[str, int] = {}
    # feature "sessions": the OpenFlow sessions and their listening sockets. From state
    # version 4 on they are typed records in the snapshot (``records.BridgeSessionsV4``)
    # and this list is empty; with version 3 and older, the older form is here
    # (``hitless.state.sessions.to_v3``). Either way their descriptor fields are
    # positions in ``session_fds``, which lists indexes into ``fds``
    sessions: list[dict[str, Any]] = []
    session_fds: list[int] = []
    # how the old side's pre-copy went, seconds (the keys of OLD_STATS); a build that
    # does not say sends none, an older one fewer
    old_stats: dict[str, float] = {}
    # switch-level learned state of other layers by name (engine.register_switch_extra)
    extras: dict[str, Any] = {}


class Ack(msgspec.Struct, tag="ack", frozen=True):
    digest: str
    counts: dict[str, int]


class Commit(msgspec.Struct, tag="commit", frozen=True):
    pass


class Owned(msgspec.Struct, tag="owned", frozen=True):
    pass


class Abort(msgspec.Struct, tag="abort", frozen=True):
    reason: str


Message = Hello | Welcome | PreCopy | Ready | Frozen | Ack | Commit | Owned | Abort

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)
_LEN = struct.Struct("!I")
MAX_MESSAGE = 1 << 30


class Role(enum.Enum):
    OLD = "old"
    NEW = "new"


class State(enum.Enum):
    IDLE = "idle"
    HELLO = "hello"
    NEGOTIATED = "negotiated"
    PRECOPY = "pre-copy"
    READY = "ready"
    FROZEN = "frozen"
    ACKED = "acked"
    COMMITTED = "committed"
    DONE = "done"
    ROLLED_BACK = "rolled-back"


TERMINAL = frozenset({State.DONE, State.ROLLED_BACK})

# (state, message type) -> (who sends it, next state)
TRANSITIONS: dict[tuple[State, type], tuple[Role, State]] = {
    (State.IDLE, Hello): (Role.NEW, State.HELLO),
    (State.HELLO, Welcome): (Role.OLD, State.NEGOTIATED),
    (State.NEGOTIATED, PreCopy): (Role.OLD, State.PRECOPY),
    (State.PRECOPY, Ready): (Role.NEW, State.READY),
    (State.READY, Frozen): (Role.OLD, State.FROZEN),
    (State.FROZEN, Ack): (Role.NEW, State.ACKED),
    (State.ACKED, Commit): (Role.OLD, State.COMMITTED),
    (State.COMMITTED, Owned): (Role.NEW, State.DONE),
}
for _s in State:
    if _s not in TERMINAL:
        TRANSITIONS[(_s, Abort)] = (Role.OLD, State.ROLLED_BACK)  # either role, see below


def mermaid() -> str:
    """The state diagram, generated from TRANSITIONS (docs/upgrading.md embeds it)."""
    lines = ["stateDiagram-v2"]
    for (state, msg), (role, nxt) in TRANSITIONS.items():
        who = "either" if msg is Abort else role.value
        lines.append(f"    {state.name} --> {nxt.name}: {msg.__name__} ({who})")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (or died) in ``state``."""

    state: State


@dataclass(frozen=True, slots=True)
class LeaseExpired:
    pass


Event = Message | ConnectionClosed | LeaseExpired


class HandoffConnection:
    """One side of a handoff. Feed it bytes with ``receive_data``; read ``next_event``;
    ``send`` returns the bytes to write (fds to pass go with them)."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self.state = State.IDLE
        self._buf = bytearray()
        self._fds: deque[int] = deque()
        self._events: deque[Event] = deque()
        self._closed = False
        self.deadline: float | None = None
        self.abort_reason: str | None = None

    # -- state machine ---------------------------------------------------------------
    def _step(self, msg: Message, sender: Role) -> None:
        entry = TRANSITIONS.get((self.state, type(msg)))
        if entry is None:
            err = f"{type(msg).__name__} is not allowed in state {self.state.value}"
            if sender is self.role:
                raise LocalProtocolError(err)
            raise RemoteProtocolError(err)
        role, nxt = entry
        if not isinstance(msg, Abort) and role is not sender:
            err = f"{type(msg).__name__} must come from the {role.value} side"
            if sender is self.role:
                raise LocalProtocolError(err)
            raise RemoteProtocolError(err)
        if isinstance(msg, Abort):
            self.abort_reason = msg.reason
        self.state = nxt
        if nxt in TERMINAL:
            self.deadline = None

    # -- sending -------------------------------------------------------------------------
    def send(self, msg: Message) -> bytes:
        self._step(msg, self.role)
        body = _encoder.encode(msg)
        return _LEN.pack(len(body)) + body

    def send_precopy(self, parts: list[bytes]) -> list[bytes]:
        """Send ``PreCopy`` whose snapshot is the concatenation of ``parts``, without
        joining them: the frame's head, then the parts, to write in this order."""
        self._step(PreCopy(b""), self.role)
        n = sum(len(p) for p in parts)
        head = with_bin_tail(_encoder.encode(PreCopy(b"")), n)
        return [_LEN.pack(len(head) + n) + head, *parts]

    def abort(self, reason: str) -> bytes:
        """Abort from our side if still possible; returns the bytes to send (may be b"")."""
        if self.state in TERMINAL:
            return b""
        return self.send(Abort(reason))

    # -- receiving -----------------------------------------------------------------------
    def receive_data(self, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
        """Bytes from the peer (b"" means the peer closed) and any fds that came along."""
        self._fds.extend(fds)
        if not data:
            if not self._closed:
                self._closed = True
                self._events.append(ConnectionClosed(self.state))
                if self.state not in TERMINAL and not (
                    self.role is Role.NEW and self.state in (State.ACKED, State.COMMITTED)
                ):
                    self.abort_reason = self.abort_reason or "peer closed the connection"
                    self.state = State.ROLLED_BACK
            return
        self._buf += data
        while len(self._buf) >= 4:
            (n,) = _LEN.unpack_from(self._buf)
            if n > MAX_MESSAGE:
                raise RemoteProtocolError(f"message of {n} bytes is too large")
            if len(self._buf) < 4 + n:
                break
            body = bytes(self._buf[4 : 4 + n])
            del self._buf[: 4 + n]
            try:
                msg = _decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                raise RemoteProtocolError(f"malformed handoff message: {e}") from None
            if isinstance(msg, Welcome) and (msg.fd_count or msg.fds):
                if msg.fd_count > len(self._fds) or len(msg.rings) != msg.fd_count:
                    raise RemoteProtocolError(
                        f"Welcome declares {msg.fd_count} descriptors for {len(msg.rings)} "
                        f"rings, {len(self._fds)} arrived"
                    )
                msg = msgspec.structs.replace(
                    msg, fds=[self._fds.popleft() for _ in range(msg.fd_count)]
                )
            if isinstance(msg, Frozen):
                if msg.fd_count > len(self._fds):
                    raise RemoteProtocolError(
                        f"Frozen declares {msg.fd_count} descriptors, {len(self._fds)} arrived"
                    )
                bad = [
                    i
                    for i in (*msg.listeners.values(), *msg.session_fds)
                    if not 0 <= i < msg.fd_count
                ]
                if bad:
                    raise RemoteProtocolError(f"Frozen names descriptor {bad[0]} of {msg.fd_count}")
                msg = Frozen(
                    msg.snapshot,
                    msg.fd_count,
                    [self._fds.popleft() for _ in range(msg.fd_count)],
                    msg.delta,
                    msg.listeners,
                    msg.sessions,
                    msg.session_fds,
                    msg.old_stats,
                    msg.extras,
                )
            self._step(msg, Role.OLD if self.role is Role.NEW else Role.NEW)
            self._events.append(msg)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def unclaimed_fds(self) -> list[int]:
        """Descriptors received but not attached to a message (the caller closes them)."""
        out = list(self._fds)
        self._fds.clear()
        return out

    # -- the lease -----------------------------------------------------------------------
    def freeze(
        self,
        snapshot: bytes,
        fd_count: int,
        now: float,
        lease: float,
        delta: bool = False,
        listeners: dict[str, int] | None = None,
        sessions: list[dict[str, Any]] | None = None,
        session_fds: list[int] | None = None,
        old_stats: dict[str, float] | None = None,
        extras: dict[str, Any] | None = None,
    ) -> bytes:
        """Old side: enter the freeze (lease until now+lease) and send the final state."""
        if self.role is not Role.OLD:
            raise LocalProtocolError("only the old side freezes")
        data = self.send(
            Frozen(
                snapshot,
                fd_count,
                [],
                delta,
                listeners or {},
                sessions or [],
                session_fds or [],
                old_stats or {},
                extras or {},
            )
        )
        self.deadline = now + lease
        return data

    def get_timer(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> bytes:
        """Past the deadline: abort (returns the Abort bytes to send) and queue LeaseExpired."""
        if self.deadline is None or now < self.deadline or self.state in TERMINAL:
            return b""
        self.deadline = None
        self._events.append(LeaseExpired())
        return self.abort("freeze lease expired")


# Protocol features: "delta" = the freeze carries only what changed since the pre-copy
# (the new side built everything else while the old one served), verified by an
# incremental order-independent digest (ledger.multiset_digest).
# "listeners" = the listening sockets (the control socket, the handoff socket) travel
# with the datapath's descriptors, so a client that connects during the freeze is
# answered by the new process instead of being dropped with the old one.
# "sessions" = every OpenFlow connection (controllers and ovs-ofctl clients) travels
# as its live socket plus session state, unparsed input and unsent output, and so do the
# OpenFlow listening sockets: a controller never sees a disconnect.
# "openflow-delta" = with "delta", the freeze carries only the OpenFlow rules changed
# since the pre-copy (and counters that moved), not every rule: a freeze independent of
# the size of the flow tables.
# "patch-ports" = the new side adopts patch ports (device-less ports joining bridges);
# a switch with patch ports refuses a handoff to a build without them.
# "action:NAME" = the new side reads the megaflow action NAME (its actions_to_json name)
# of those added after the first release: "sample" (sFlow), "set_priority" (set_queue),
# "check_pkt_len" (check_pkt_larger), "ipfix-sample" (a sample action for IPFIX), "mpls"
# (push_mpls, pop_mpls and rewrites of the MPLS label stack entry), "clone" (a clone()
# holding a ct: the datapath runs it on a copy).
# A switch whose megaflows hold one refuses, before freezing, a build that does not
# say it reads it (the build could not adopt those flows), and says what to clear.
# "field:nd_ext" = the new side knows Open vSwitch's ND extension fields (nd_reserved,
# nd_options_type, Ericsson's OXM class): a switch with rules on them refuses, before
# freezing, a build that does not say it (it could not restore those rules).
# "field:nsh" = the same for the NSH fields (nsh_*, Open vSwitch's NXOXM_NSH experimenter).
# "early-rings" = the receive-ring sockets also come with Welcome, so that the new side
# maps the rings (the kernel inserts every page: 2-3 ms per 48 MiB ring) while the old
# one serves, not in the freeze.
FEATURES = [
    "delta",
    "listeners",
    "sessions",
    "openflow-delta",
    "patch-ports",
    "action:sample",
    "action:set_priority",
    "action:check_pkt_len",
    "action:ipfix-sample",
    "action:mpls",
    "action:clone",
    "early-rings",
    "field:nd_ext",
    "field:nsh",
]


def negotiate(ours: list[int], theirs: list[int]) -> int | None:
    """The highest state version both sides read and write, or None."""
    common = set(ours) & set(theirs)
    return max(common) if common else None
