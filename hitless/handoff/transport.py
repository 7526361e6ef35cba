"""Sockets for the handoff: a unix stream listener in the rundir that only root or the
daemon's own user may use (SO_PEERCRED), and sends/receives that carry file
descriptors with SCM_RIGHTS. Blocking calls take a deadline (monotonic seconds)."""

from __future__ import annotations

import select
import socket
import time

from hitless import localsock

MAX_FDS_PER_RECV = 250  # the kernel's SCM_MAX_FD is 253
RECV_SIZE = 1 << 20


class HandoffTransportError(Exception):
    """The handoff socket failed (peer refused, timed out, or vanished)."""


def listen(path: str) -> socket.socket:
    """Listen on ``path``, mode 0600 (see hitless.localsock)."""
    return localsock.listen(path, 4)


peer_credentials = localsock.peer_credentials


def accept_checked(listener: socket.socket) -> tuple[socket.socket, int] | None:
    """Accept one connection if its peer is root or our own user; returns (sock, pid).
    A refused peer is closed and None returned (the caller logs it)."""
    try:
        sock, _ = listener.accept()
    except BlockingIOError:
        return None
    pid, uid, _ = peer_credentials(sock)
    if not localsock.trusted(uid):
        sock.close()
        raise HandoffTransportError(f"refused handoff connection from pid {pid} uid {uid}")
    sock.setblocking(True)
    return sock, pid


def connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise HandoffTransportError(
            f"cannot reach the running switch's handoff socket {path}: {e.strerror or e}"
        ) from None
    pid, uid, _ = peer_credentials(sock)
    if not localsock.trusted(uid):
        sock.close()
        raise HandoffTransportError(f"handoff socket {path} belongs to uid {uid}, refusing")
    sock.settimeout(None)
    return sock


def send(sock: socket.socket, data: bytes, fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send all of ``data``; descriptors ride with the first bytes."""
    if not data:
        return
    view = memoryview(data)
    if fds:
        fds = list(fds)
        first = True
        while fds or first:
            batch, fds = fds[:MAX_FDS_PER_RECV], fds[MAX_FDS_PER_RECV:]
            n = socket.send_fds(sock, [view[:1]], batch)
            view = view[n:]
            first = False
            if not view and fds:
                raise HandoffTransportError("more descriptors than bytes to carry them")
    if view:
        sock.sendall(view)


def recv(sock: socket.socket, deadline: float | None) -> tuple[bytes, list[int]]:
    """Receive what is available (b"" = peer closed), waiting at most until deadline."""
    if deadline is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("handoff deadline passed")
        r, _, _ = select.select([sock], [], [], remaining)
        if not r:
            raise TimeoutError("handoff deadline passed")
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, RECV_SIZE, MAX_FDS_PER_RECV)
    except ConnectionResetError:
        return b"", []
    return data, list(fds)
