"""``OsKenPeer``: a live os-ken controller (tests/osken_peer.py) in a subprocess, for
tests. This module does not import os-ken; only the subprocess does.

Usage::

    with OsKenPeer(app="learning", idle_timeout=3) as ctl:
        sw.vsctl("set-controller", br, ctl.target)
        ctl.wait_for(lambda e: e["event"] == "connected")
        ...
        assert ctl.request({"cmd": "barrier"})["ok"]
        assert not ctl.events("disconnected")

The controller listens on a free port of 127.0.0.1; its events file, control socket and
log live in a private temporary directory. ``close()`` (called by ``with``, and by the
``osken`` fixture below even when the test fails) kills the process by its PID and
removes the directory.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.wait import wait_for

RUNNER = Path(__file__).with_name("osken_peer.py")
Event = dict[str, Any]


def free_port() -> int:
    """A TCP port of 127.0.0.1 nobody listens on right now (the runner retries if it is
    taken before it binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OsKenPeer:
    """One os-ken controller process and the record of what it saw."""

    def __init__(
        self,
        app: str = "learning",
        idle_timeout: int = 5,
        ofp_version: int = 13,
        echo_interval: float = 0,
        echo_max: int = 3,
        python: str = sys.executable,
        nice: int = 0,
    ) -> None:
        """``app``, ``idle_timeout``, ``ofp_version``, ``echo_interval`` and ``echo_max``
        are the runner's options of the same names (see tests/osken_peer.py); ``nice``:
        the controller's niceness (negative: root only), for a test whose controller
        must not fall behind the switch on a loaded machine."""
        self.nice = ["nice", "-n", str(nice)] if nice else []
        self.app = app
        self.idle_timeout = idle_timeout
        self.ofp_version = ofp_version
        self.echo = ["--echo-interval", str(echo_interval), "--echo-max", str(echo_max)]
        self.python = python
        self.dir = Path(tempfile.mkdtemp(prefix="osken-", dir="/tmp"))
        self.events_path = self.dir / "events.jsonl"
        self.control = self.dir / "ctl.sock"
        self.log_path = self.dir / "osken.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def target(self) -> str:
        """The ``Controller.target`` that reaches this controller."""
        return f"tcp:127.0.0.1:{self.port}"

    def __enter__(self) -> OsKenPeer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, timeout: float = 30) -> None:
        """Start the controller and wait until it listens; a port taken in between by
        someone else costs a retry with another one."""
        for _ in range(3):
            self.port = free_port()
            self.events_path.write_text("")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        *self.nice,
                        self.python,
                        # -P: not tests/ first on sys.path, where a test package named like
                        # a library (tests/packaging/ once did) hides the module os-ken imports.
                        "-P",
                        str(RUNNER),
                        "--port",
                        str(self.port),
                        "--events",
                        str(self.events_path),
                        "--control",
                        str(self.control),
                        "--app",
                        self.app,
                        "--idle-timeout",
                        str(self.idle_timeout),
                        "--ofp-version",
                        str(self.ofp_version),
                        *self.echo,
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            try:
                wait_for(self._listening_or_gone, "os-ken listening", timeout)
            except AssertionError:
                raise TimeoutError(
                    f"os-ken did not listen within {timeout}s:\n{self.log()}"
                ) from None
            if self.events("listening"):
                return
            self._kill()
        raise RuntimeError(f"os-ken could not start:\n{self.log()}")

    def _listening_or_gone(self) -> bool:
        return bool(self.events("listening")) or not self.alive()

    def _kill(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()  # by PID: this Popen's own child
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)

    def close(self) -> None:
        """Kill the controller (by PID) and remove its directory. Idempotent."""
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def events(self, kind: str | None = None) -> list[Event]:
        """Every event recorded so far (of ``kind`` if given), oldest first. A line still
        being written (no newline yet) is left for the next call."""
        try:
            text = self.events_path.read_text()
        except FileNotFoundError:
            return []
        out = [json.loads(line) for line in text.split("\n")[:-1] if line]
        return [e for e in out if kind is None or e["event"] == kind]

    def wait_for(self, pred: Callable[[Event], bool], timeout: float = 30) -> Event:
        """The first recorded event for which ``pred`` holds, waiting for it up to
        ``timeout`` seconds; TimeoutError (with the record) if none comes, or at once if
        the controller died."""

        def found() -> Event | None:
            e = next((e for e in self.events() if pred(e)), None)
            if e is None and not self.alive():
                raise RuntimeError(f"os-ken exited:\n{self.log()}")
            return e

        try:
            return wait_for(found, "a matching os-ken event", timeout)
        except AssertionError:
            tail = "\n".join(json.dumps(e) for e in self.events()[-30:])
            raise TimeoutError(
                f"no matching os-ken event within {timeout}s; last:\n{tail}"
            ) from None

    def request(self, cmd: dict[str, Any] | str, timeout: float = 20) -> dict[str, Any]:
        """Ask the controller to do something (see tests/osken_peer.py): a dict, or just
        the command name, e.g. ``request("barrier")``. Returns its JSON answer."""
        req: dict[str, Any] = {"cmd": cmd} if isinstance(cmd, str) else dict(cmd)
        req.setdefault("timeout", max(1.0, timeout - 5))
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.control))
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        if not buf:
            raise RuntimeError(f"os-ken closed the control socket:\n{self.log()}")
        rep: dict[str, Any] = json.loads(buf)
        return rep


@pytest.fixture
def osken() -> Iterator[Callable[..., OsKenPeer]]:
    """A factory of started ``OsKenPeer`` controllers, all killed at teardown."""
    peers: list[OsKenPeer] = []

    def make(**kwargs: Any) -> OsKenPeer:
        peer = OsKenPeer(**kwargs)
        peers.append(peer)
        peer.start()
        return peer

    try:
        yield make
    finally:
        for p in peers:
            p.close()
