"""The handoff protocol between an old and a new side in memory: no sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hitless.handoff.protocol import (
    TRANSITIONS,
    Abort,
    Ack,
    Commit,
    ConnectionClosed,
    Frozen,
    HandoffConnection,
    Hello,
    LeaseExpired,
    LocalProtocolError,
    Owned,
    PreCopy,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    Welcome,
    mermaid,
    negotiate,
)


def deliver(data: bytes, to: HandoffConnection, fds: tuple[int, ...] = (), chunk: int = 0) -> list:
    """Feed bytes to a side, optionally split into chunks of `chunk` bytes (fds with the
    first chunk, as SCM_RIGHTS delivers them), and return the events it produced."""
    if chunk:
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    else:
        pieces = [data]
    for i, piece in enumerate(pieces):
        to.receive_data(piece, fds if i == 0 else ())
    out = []
    while (ev := to.next_event()) is not None:
        out.append(ev)
    return out


def run_to_ack(old: HandoffConnection, new: HandoffConnection, chunk: int = 0) -> Frozen:
    assert deliver(new.send(Hello("0.2", [2, 1], 100)), old, chunk=chunk) == [
        Hello("0.2", [2, 1], 100)
    ]
    deliver(old.send(Welcome("0.1", 1, 99, 2.0)), new, chunk=chunk)
    (pc,) = deliver(old.send(PreCopy(b"state-1")), new, chunk=chunk)
    assert pc == PreCopy(b"state-1")
    deliver(new.send(Ready()), old, chunk=chunk)
    (fr,) = deliver(old.freeze(b"state-2", 2, now=10.0, lease=2.0), new, fds=(7, 8), chunk=chunk)
    assert isinstance(fr, Frozen)
    assert old.get_timer() == 12.0
    (ack,) = deliver(new.send(Ack("d", {"flows": 3})), old, chunk=chunk)
    assert ack == Ack("d", {"flows": 3})
    return fr


@pytest.mark.parametrize("chunk", [0, 1, 3, 7])
def test_full_handoff_at_any_split(chunk: int) -> None:
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    fr = run_to_ack(old, new, chunk)
    assert fr.snapshot == b"state-2" and fr.fds == [7, 8]
    deliver(old.send(Commit()), new, chunk=chunk)
    deliver(new.send(Owned()), old, chunk=chunk)
    assert old.state is new.state is State.DONE
    assert old.get_timer() is None


def test_lease_expiry_rolls_back_and_tells_the_peer() -> None:
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    deliver(new.send(Hello("x", [1], 1)), old)
    deliver(old.send(Welcome("y", 1, 2, 2.0)), new)
    deliver(old.send(PreCopy(b"")), new)
    deliver(new.send(Ready()), old)
    deliver(old.freeze(b"", 0, now=100.0, lease=2.0), new)
    assert old.handle_timer(101.9) == b""
    data = old.handle_timer(102.0)
    assert old.state is State.ROLLED_BACK
    assert isinstance(old.next_event(), LeaseExpired)
    (ev,) = deliver(data, new)
    assert ev == Abort("freeze lease expired") and new.state is State.ROLLED_BACK
    # A late Ack from the new side is now a protocol error, not a commit.
    with pytest.raises(LocalProtocolError):
        new.send(Ack("d", {}))


def test_new_side_death_before_owned_rolls_back_the_old_side() -> None:
    for stop_after in ("hello", "ready", "frozen", "ack", "commit"):
        old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
        deliver(new.send(Hello("x", [1], 1)), old)
        if stop_after != "hello":
            deliver(old.send(Welcome("y", 1, 2, 2.0)), new)
            deliver(old.send(PreCopy(b"")), new)
            deliver(new.send(Ready()), old)
        if stop_after in ("frozen", "ack", "commit"):
            deliver(old.freeze(b"", 0, now=0.0, lease=2.0), new)
        if stop_after in ("ack", "commit"):
            deliver(new.send(Ack("d", {})), old)
        if stop_after == "commit":
            old.send(Commit())
        events = deliver(b"", old)
        assert isinstance(events[0], ConnectionClosed)
        assert old.state is State.ROLLED_BACK, stop_after


def test_old_side_death_after_ack_leaves_the_new_side_to_decide() -> None:
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    run_to_ack(old, new)
    (ev,) = deliver(b"", new)
    assert ev == ConnectionClosed(State.ACKED)
    assert new.state is State.ACKED  # not rolled back: the daemon checks the old pid


def test_old_side_death_before_ack_rolls_back_the_new_side() -> None:
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    deliver(new.send(Hello("x", [1], 1)), old)
    deliver(old.send(Welcome("y", 1, 2, 2.0)), new)
    deliver(b"", new)
    assert new.state is State.ROLLED_BACK


def test_messages_out_of_order_or_from_the_wrong_side_are_remote_errors() -> None:
    old = HandoffConnection(Role.OLD)
    with pytest.raises(RemoteProtocolError, match="not allowed"):
        new = HandoffConnection(Role.NEW)
        new.state = State.PRECOPY  # pretend, to produce a Ready out of order
        deliver(new.send(Ready()), old)


def test_wrong_sender_is_rejected() -> None:
    new = HandoffConnection(Role.NEW)
    with pytest.raises(LocalProtocolError, match="old side"):
        new.state = State.HELLO
        new.send(Welcome("x", 1, 1, 1.0))


def test_frozen_without_its_descriptors_is_a_remote_error() -> None:
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    deliver(new.send(Hello("x", [1], 1)), old)
    deliver(old.send(Welcome("y", 1, 2, 2.0)), new)
    deliver(old.send(PreCopy(b"")), new)
    deliver(new.send(Ready()), old)
    with pytest.raises(RemoteProtocolError, match="descriptors"):
        deliver(old.freeze(b"", 3, now=0.0, lease=2.0), new, fds=(5,))


@given(st.binary(max_size=200))
def test_random_bytes_never_crash_only_remote_errors(data: bytes) -> None:
    old = HandoffConnection(Role.OLD)
    try:
        old.receive_data(data)
    except RemoteProtocolError:
        return
    while old.next_event() is not None:
        pass


def test_negotiate_picks_the_highest_common_version() -> None:
    assert negotiate([2, 1], [3, 2]) == 2
    assert negotiate([1], [2]) is None


def test_every_state_but_terminal_can_abort_and_diagram_lists_all() -> None:
    diagram = mermaid()
    for (state, msg), (_, nxt) in TRANSITIONS.items():
        assert f"{state.name} --> {nxt.name}: {msg.__name__}" in diagram
    aborting = {s for (s, m) in TRANSITIONS if m is Abort}
    assert aborting == set(State) - {State.DONE, State.ROLLED_BACK}


def test_welcome_carries_the_ring_sockets_and_the_frozen_message_its_own() -> None:
    """Feature "early-rings": the descriptors that came with the Welcome are its own
    (one per ring size), and the Frozen message still takes exactly the ones that came
    with it; a Welcome whose count does not fit what arrived or its rings is refused."""
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    deliver(new.send(Hello("0.2", [1], 100, features=["early-rings"])), old)
    welcome = Welcome("0.1", 1, 99, 2.0, ["early-rings"], fd_count=2, rings=[4096, 8192])
    (w,) = deliver(old.send(welcome), new, fds=(5, 6), chunk=7)
    assert (w.fds, w.rings) == ([5, 6], [4096, 8192])
    deliver(old.send(PreCopy(b"s")), new)
    deliver(new.send(Ready()), old)
    (fr,) = deliver(old.freeze(b"s2", 1, now=1.0, lease=2.0), new, fds=(9,))
    assert fr.fds == [9] and new.unclaimed_fds() == []
    # A Welcome without descriptors never takes one (nor trusts a list in its body).
    old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
    deliver(new.send(Hello("0.2", [1], 100)), old)
    (w,) = deliver(old.send(Welcome("0.1", 1, 99, 2.0, [], fds=[3])), new)
    assert w.fds == [] and w.fd_count == 0
    for count, rings, fds in ((2, [1, 2], (5,)), (1, [1, 2], (5, 6))):
        old, new = HandoffConnection(Role.OLD), HandoffConnection(Role.NEW)
        deliver(new.send(Hello("0.2", [1], 100)), old)
        with pytest.raises(RemoteProtocolError, match="Welcome declares"):
            deliver(old.send(Welcome("0.1", 1, 99, 2.0, [], fd_count=count, rings=rings)),
                    new, fds=fds)  # fmt: skip
