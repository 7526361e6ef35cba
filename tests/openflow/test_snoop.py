"""``ovs-ofctl snoop``: real Open vSwitch and hitless side by side.

Each switch gets an active controller (``unix:DIR/ctl.sock``, a small controller in this
test built on ``hitless.openflow.Connection``); ``ovs-ofctl snoop BR`` connects to
``DIR/<bridge>.snoop`` and prints the messages the controller and the switch exchange.
The same exchange (echo, features, get-config, a flow_mod, a barrier) is run against
both switches in each version and what ``snoop`` prints is compared. With no controller
connected both switches close the snooper's connection at once.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from hitless.openflow import CLOSED, NEED_DATA, Connection, Message
from hitless.openflow.constants import PROTOCOL_VERSIONS
from hitless.openflow.messages import (
    BarrierRequest,
    EchoRequest,
    FeaturesRequest,
    FlowMod,
    GetConfigRequest,
)
from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair, normalize
from tests.wait import wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vswitchd") is None or shutil.which("ovs-ofctl") is None,
    reason="needs Open vSwitch (ovs-vswitchd, ovs-ofctl)",
)

VERSIONS = {"of10": "OpenFlow10", "of11": "OpenFlow11", "of12": "OpenFlow12",
            "of13": "OpenFlow13", "of14": "OpenFlow14", "of15": "OpenFlow15"}  # fmt: skip


class _Controller:
    """A controller listening on a unix socket: one switch connection, blocking calls."""

    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(path)
        self.ls.listen(1)
        self.ls.settimeout(30)
        self.conn = Connection(versions=(version,), probe_interval=None)
        self.sock: socket.socket | None = None

    def accept(self) -> None:
        self.sock, _ = self.ls.accept()
        self.sock.settimeout(30)
        self.sock.sendall(self.conn.start())
        while self.conn.version is None:
            self._pump()

    def _pump(self) -> list[Message]:
        assert self.sock is not None
        data = self.sock.recv(65536)
        assert data, "the switch closed its controller connection"
        self.conn.receive_data(data)
        out: list[Message] = []
        while True:
            ev = self.conn.next_event()
            if ev is NEED_DATA or ev is CLOSED:
                return out
            if isinstance(ev, Message):
                out.append(ev)
            elif getattr(ev, "data", b""):
                self.sock.sendall(ev.data)  # echo replies to the switch's probes

    def request(self, msg: Message) -> None:
        """Send ``msg`` and wait for the reply with its xid (a barrier's after a flow_mod)."""
        assert self.sock is not None
        self.sock.sendall(self.conn.send(msg))
        want = msg.xid
        if isinstance(msg, FlowMod):
            self.sock.sendall(self.conn.send(BarrierRequest(xid=msg.xid + 1)))
            want = msg.xid + 1
        while not any(m.xid == want for m in self._pump()):
            pass

    def close(self) -> None:
        for s in (self.sock, self.ls):
            if s is not None:
                with contextlib.suppress(OSError):
                    s.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


class _Snoop:
    """``ovs-ofctl snoop`` running, what it prints (stderr) collected by a thread."""

    def __init__(self, env: dict[str, str], bridge: str, version: str) -> None:
        self.p = subprocess.Popen(["ovs-ofctl", "-O", version, "snoop", bridge], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        self.lines: list[str] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def close(self) -> None:
        self.p.terminate()
        self.p.wait(10)
        self.t.join(10)


def _exchange(env: dict[str, str], rundir: str, bridge: str, version: str) -> str:
    """What ``ovs-ofctl snoop`` prints for a fixed exchange on a controller connection."""
    v = PROTOCOL_VERSIONS[version]
    path = f"{rundir}/ctl-{version}.sock"
    ctl = _Controller(path, v)
    db = f"--db=unix:{rundir}/db.sock"
    try:
        subprocess.run(["ovs-vsctl", db, "set-controller", bridge, f"unix:{path}"], env=env,
                       check=True, timeout=30)  # fmt: skip
        ctl.accept()
        snoop = _Snoop(env, bridge, version)
        try:
            # Until the snooper is attached: echoes (their copies show it is).
            xid = 0x100
            while "OFPT_ECHO_REPLY" not in snoop.text():
                xid += 1
                ctl.request(EchoRequest(xid=xid, data=b"sync"))
                assert snoop.p.poll() is None, snoop.text()
            ctl.request(EchoRequest(xid=0x501, data=b"hello"))
            ctl.request(FeaturesRequest(xid=0x502))
            ctl.request(GetConfigRequest(xid=0x503))
            ctl.request(FlowMod(xid=0x504, priority=7))
            wait_for(lambda: snoop.text().count("xid=0x505") >= 2, "the last barrier snooped", 30)
        finally:
            snoop.close()
        lines = snoop.text().splitlines(True)
        first = next(i for i, ln in enumerate(lines) if "xid=0x501" in ln)  # the fixed part
        return "".join(ln for ln in lines[first:] if "fatal_signal" not in ln)
    finally:
        ctl.close()
        subprocess.run(["ovs-vsctl", db, "del-controller", bridge], env=env, timeout=30)


@pytest.fixture(scope="module")
def switches() -> Iterator[SwitchPair]:
    pair = SwitchPair(f"snp{unique_suffix()}")
    try:
        yield pair
    finally:
        pair.close()


@pytest.mark.parametrize("version", list(VERSIONS))
def test_snoop_prints_what_open_vswitch_prints(switches: SwitchPair, version: str) -> None:
    assert switches.ovs is not None and switches.hl is not None
    seen = []
    for sw in (switches.ovs, switches.hl):
        seen.append(normalize(_exchange(sw.env, str(sw.dir), switches.bridge, VERSIONS[version])))
    ovs, hl = seen
    assert ovs == hl, "".join(difflib.unified_diff(ovs.splitlines(True), hl.splitlines(True),
                                                  "ovs", "hitless"))  # fmt: skip
    for word in ("OFPT_ECHO_REQUEST", "OFPT_FEATURES_REPLY", "OFPT_GET_CONFIG_REPLY",
                 "OFPT_BARRIER_REPLY", "xid=0x504"):  # fmt: skip
        assert word in hl, hl


def test_snoop_without_a_controller_is_closed(switches: SwitchPair) -> None:
    """No controller connection: the snooper's connection is closed at once, and
    ``ovs-ofctl`` fails (how it words the failure depends on when it saw the close)."""
    ovs, hl = switches.ofctl("snoop", "{br}")
    for r in (ovs, hl):
        assert r.rc == 1 and "failed to" in r.err, r
        assert not r.out
