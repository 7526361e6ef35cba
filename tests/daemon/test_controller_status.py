"""Controller rows as an operator (or OVN) reads them, side by side with Open vSwitch 3.1:
``is_connected``, ``role`` and the ``status`` map (``state``, ``last_error``,
``sec_since_connect``, ``sec_since_disconnect``) for a target that refuses connections,
one that accepts and asks to be master, and a passive ``ptcp:`` target; then the
controller goes away and both switches must say so the same way."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest

from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair
from tests.wait import wait_for

OFP13 = 4
HELLO = struct.pack("!BBHI", OFP13, 0, 8, 1)
# OFPT_ROLE_REQUEST (24), OFPCR_ROLE_MASTER (2), generation id 1.
ROLE_MASTER = struct.pack("!BBHI", OFP13, 24, 24, 2) + struct.pack("!I4xQ", 2, 1)


class TinyController:
    """Accepts OpenFlow connections, says hello, asks to be master and reads whatever the
    switch sends; ``stop`` closes the listener, then each connection cleanly (FIN, read
    to the switch's end of file, close)."""

    def __init__(self) -> None:
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(8)
        self.port = int(self.ls.getsockname()[1])
        self.conns: list[socket.socket] = []
        self.readers: list[threading.Thread] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            c.sendall(HELLO + ROLE_MASTER)
            t = threading.Thread(target=self._drain, args=(c,), daemon=True)
            with self._lock:
                self.conns.append(c)
                self.readers.append(t)
            t.start()

    @staticmethod
    def _drain(c: socket.socket) -> None:
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass

    def stop(self) -> None:
        self.ls.close()
        with self._lock:
            conns, readers = list(self.conns), list(self.readers)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        for t in readers:
            t.join(10)
        for c in conns:
            c.close()


@pytest.fixture
def pair() -> Iterator[SwitchPair]:
    p = SwitchPair(f"ctl{unique_suffix()}"[:15])
    try:
        yield p
    finally:
        p.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Row = tuple[str, str, dict[str, str]]


def controllers(pair: SwitchPair, which: str) -> dict[str, Row]:
    """target -> (is_connected, role, status) as ovs-vsctl prints them."""
    sw = pair.ovs if which == "ovs" else pair.hl
    assert sw is not None
    out = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{sw.dir / 'db.sock'}", "--format=csv", "--data=json",
         "--columns=target,is_connected,role,status", "list", "Controller"],
        capture_output=True, text=True, check=True, env=sw.env,
    ).stdout  # fmt: skip
    import csv
    import json

    rows: dict[str, Row] = {}
    for target, conn, role, status in list(csv.reader(out.splitlines()))[1:]:
        role_v = json.loads(role)
        st = json.loads(status)
        rows[json.loads(target)] = (
            str(json.loads(conn)).lower(),
            role_v if isinstance(role_v, str) else "",
            dict(st[1]),
        )
    return rows


def shape(row: Row) -> Row:
    """A row with the seconds reduced to "N" (both must be whole numbers)."""
    conn, role, status = row
    out = dict(status)
    for k in ("sec_since_connect", "sec_since_disconnect"):
        if k in out:
            assert out[k].isdigit(), (k, out[k])
            out[k] = "N"
    return conn, role, out


def test_controller_rows_say_what_open_vswitch_says(pair: SwitchPair) -> None:
    ctl = TinyController()
    refused = f"tcp:127.0.0.1:{free_port()}"  # nobody listens there
    active = f"tcp:127.0.0.1:{ctl.port}"
    passive = {"ovs": f"ptcp:{free_port()}:127.0.0.1", "hl": f"ptcp:{free_port()}:127.0.0.1"}
    try:
        for which, sw in (("ovs", pair.ovs), ("hl", pair.hl)):
            assert sw is not None
            subprocess.run(
                ["ovs-vsctl", f"--db=unix:{sw.dir / 'db.sock'}", "set-controller", pair.bridge,
                 refused, active, passive[which]],
                check=True, env=sw.env, capture_output=True,
            )  # fmt: skip

        def same(target_hl: str, target_ovs: str, want: Callable[[Row], bool]) -> Row | None:
            """Both switches' rows for the target, once both satisfy ``want`` and read
            the same (seconds as "N"); the last hitless row then."""
            h = controllers(pair, "hl").get(target_hl)
            o = controllers(pair, "ovs").get(target_ovs)
            if h is None or o is None or not (want(h) and want(o)):
                return None
            return h if shape(h) == shape(o) else None

        row = wait_for(
            lambda: same(active, active, lambda r: r[0] == "true" and r[1] == "master"),
            "both switches connected to the controller, as master, saying the same",
        )
        assert shape(row) == ("true", "master", {"state": "ACTIVE", "sec_since_connect": "N"})
        row = wait_for(
            lambda: same(refused, refused, lambda r: "last_error" in r[2]),
            "both switches failing to reach the refusing target, saying the same",
        )
        assert shape(row)[:2] == ("false", "")
        assert row[2]["last_error"] == "Connection refused"
        assert row[2]["state"] in ("BACKOFF", "CONNECTING")
        assert "sec_since_connect" not in row[2] and "sec_since_disconnect" not in row[2]
        row = wait_for(
            lambda: same(passive["hl"], passive["ovs"], lambda r: True),
            "the passive target's rows",
        )
        assert row == ("false", "", {})

        # The controller goes away (listener closed, connections ended cleanly): both
        # lose it, count the seconds since, and fail to reconnect.
        ctl.stop()

        def gone(r: Row) -> bool:
            return (
                r[0] == "false"
                and "sec_since_disconnect" in r[2]
                and r[2].get("last_error") == "Connection refused"
            )

        row = wait_for(
            lambda: same(active, active, gone), "both switches lost the controller, saying the same"
        )
        assert shape(row)[:2] == ("false", "")
        assert set(row[2]) == {"state", "last_error", "sec_since_connect", "sec_since_disconnect"}
    finally:
        ctl.stop()
