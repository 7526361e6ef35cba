"""The switch's local control sockets (unixctl, OpenFlow management, handoff): created
mode 0600 and used only by root or the switch's own user.

The mode stops another user at ``connect`` (EACCES) before the switch sees it; the
peer-credential check (SO_PEERCRED) on each accepted connection is the second wall, for
a socket someone loosened with chmod. A listener is bound under a temporary name,
restricted, then renamed over its path, so the path never disappears while a
predecessor's socket is replaced (a handoff) and is never briefly world-usable."""

from __future__ import annotations

import contextlib
import os
import socket
import struct

MODE = 0o600


def listen(path: str, backlog: int) -> socket.socket:
    """A non-blocking listening unix socket at ``path``, mode 0600."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(tmp)
        os.chmod(tmp, MODE)
        sock.listen(backlog)
        sock.setblocking(False)
        os.rename(tmp, path)
    except OSError:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return sock


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process on the other end."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return pid, uid, gid


def trusted(uid: int) -> bool:
    """Root and the switch's own user may control it; nobody else."""
    return uid in (0, os.geteuid())


def refusal(sock: socket.socket) -> str | None:
    """Why the peer of ``sock`` may not use it (a message for both ends), or None."""
    pid, uid, _ = peer_credentials(sock)
    if trusted(uid):
        return None
    return (
        f"permission denied: pid {pid} runs as uid {uid}; only root or the switch's "
        f"user (uid {os.geteuid()}) may use this socket"
    )
