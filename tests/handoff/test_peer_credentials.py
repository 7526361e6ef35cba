"""The handoff socket lets only root or the daemon's own user take part (SO_PEERCRED),
both ways: the running switch refuses a new process of another user, and a new process
refuses a "running switch" socket that belongs to another user. A real process of
another user (nobody) on a real unix socket; plus the socket's 0600 mode, which stops
such a process before the credential check even runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.handoff import transport
from tests.wait import wait_for

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")

CONNECT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(type(e).__name__, flush=True)
    sys.exit(0)
print("connected", flush=True)
s.recv(1)  # until the other side closes
"""

LISTEN = r"""
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.recv(1)
"""


# The system interpreter (nobody cannot read root's virtualenv); the scripts need only
# the standard library.
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable


def as_nobody(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([SYSTEM_PYTHON, "-c", script, *args], stdout=subprocess.PIPE,
                            text=True, user=NOBODY, group=NOBODY, cwd="/")  # fmt: skip


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A directory nobody can reach (so the socket file's own mode decides)."""
    d = Path(tempfile.mkdtemp(prefix="hl-cred-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_the_socket_mode_stops_another_user_before_it_connects(sockdir: Path) -> None:
    path = str(sockdir / "handoff.sock")
    listener = transport.listen(path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        p = as_nobody(CONNECT, path)
        out, _ = p.communicate(timeout=30)
        assert out.strip() == "PermissionError"
    finally:
        listener.close()


def test_the_running_switch_refuses_a_new_process_of_another_user(sockdir: Path) -> None:
    path = str(sockdir / "handoff.sock")
    listener = transport.listen(path)
    os.chmod(path, 0o777)  # past the mode: only the credential check is left
    p = as_nobody(CONNECT, path)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "connected"
        got = wait_for(lambda: _accept(listener), "the connection attempt")
        assert isinstance(got, transport.HandoffTransportError)
        assert f"refused handoff connection from pid {p.pid} uid {NOBODY}" in str(got)
        p.wait(timeout=30)  # we closed it: the peer sees the end of the stream
        # root (our own user) is still accepted
        me = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        me.connect(path)
        ok = wait_for(lambda: _accept(listener), "our own connection")
        assert isinstance(ok, tuple) and ok[1] == os.getpid()
        ok[0].close()
        me.close()
    finally:
        p.kill()
        listener.close()


def _accept(listener: socket.socket) -> object:
    try:
        return transport.accept_checked(listener)
    except transport.HandoffTransportError as e:
        return e


def test_a_new_process_refuses_a_handoff_socket_of_another_user(sockdir: Path) -> None:
    path = str(sockdir / "fake.sock")
    sockdir.chmod(0o1777)  # nobody binds its socket here
    p = as_nobody(LISTEN, path)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "listening"
        with pytest.raises(transport.HandoffTransportError, match=f"belongs to uid {NOBODY}, refusing"):
            transport.connect(path, timeout=5)
    finally:
        p.kill()
        p.wait(timeout=10)
