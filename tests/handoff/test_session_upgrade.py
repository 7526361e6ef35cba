"""OpenFlow sessions survive a hitless upgrade: a controller's TCP connection is handed
to the new process with its session state (role, generation id, switch config), the
bytes it had sent but the switch had not parsed yet, and the listening sockets (ptcp
controller port, management socket) keep accepting. The controller side here is our
own sans-IO codec over a real TCP socket, so the test can see every byte and xid."""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.openflow import (
    NEED_DATA,
    BarrierReply,
    BarrierRequest,
    Connection,
    EchoAnswered,
    EchoReply,
    EchoRequest,
    ErrorMsg,
    FeaturesReply,
    FeaturesRequest,
    GetConfigReply,
    GetConfigRequest,
    Message,
    Negotiated,
    RoleReply,
    RoleRequest,
    SetConfig,
)
from hitless.openflow.constants import ControllerRole, ErrorType, RoleRequestFailedCode
from tests.netns import Topology, unique_name
from tests.switch import Sw, run
from tests.traffic import BREAKS, CLASSES, bound_of, handoff_under_traffic, judge, violations
from tests.wait import wait_for

BIN = Path(sys.executable).parent


class Controller:
    """One controller-side OpenFlow session over a connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(10)
        self.conn = Connection(versions=(4,), probe_interval=None)
        self.pending: list[object] = []  # events the keepalive thread read
        self.tail = b""  # the rest of a message sent only in part
        self.sock.sendall(self.conn.start())
        self.expect(Negotiated)

    @contextlib.contextmanager
    def answering_echoes(self) -> Iterator[None]:
        """Answer the switch's keepalive probes while the test waits for something
        else (a real controller answers them all the time)."""
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                r, _, _ = select.select([self.sock], [], [], 0.05)
                if not r:
                    continue
                data = self.sock.recv(65536)
                if not data:
                    return
                self.conn.receive_data(data)
                while (ev := self.conn.next_event()) is not NEED_DATA:
                    if isinstance(ev, EchoAnswered):
                        self.finish_partial()  # a reply must not land inside it
                        self.sock.sendall(ev.data)
                    else:
                        self.pending.append(ev)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(5)

    def send_partial(self, msg: Message, n: int) -> None:
        """Send the first ``n`` bytes of ``msg`` now, the rest with ``finish_partial``."""
        data = self.conn.send(msg)
        self.sock.sendall(data[:n])
        self.tail = data[n:]

    def finish_partial(self) -> None:
        tail, self.tail = self.tail, b""
        if tail:
            self.sock.sendall(tail)

    def send(self, msg: Message) -> None:
        self.sock.sendall(self.conn.send(msg))

    def expect(self, kind: type) -> object:
        """The next event of ``kind`` (anything else in between fails the test)."""
        while True:
            ev = self.pending.pop(0) if self.pending else self.conn.next_event()
            if ev is NEED_DATA:
                data = self.sock.recv(65536)
                assert data, "the switch closed the controller connection"
                self.conn.receive_data(data)
                continue
            if isinstance(ev, EchoAnswered):  # the switch's keepalive: answer it
                self.sock.sendall(ev.data)
                continue
            assert isinstance(ev, kind), f"expected {kind.__name__}, got {ev!r}"
            return ev

    def request(self, msg: Message, kind: type) -> object:
        self.send(msg)
        reply = self.expect(kind)
        assert getattr(reply, "xid", None) == msg.xid
        return reply


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    ls.settimeout(15)
    yield ls
    ls.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _connected(sw: Sw, target: str) -> str:
    out = sw.vsctl("--bare", "--columns=is_connected", "find", "Controller", f'target="{target}"')
    return out.stdout.strip()


def _upgrade(sw: Sw, fault: str = "") -> dict:
    import os

    r = subprocess.run(
        [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={**os.environ, "HITLESS_FAULT": fault} if fault else None,
    )
    assert r.returncode == (1 if fault else 0), r.stderr
    return json.loads(r.stdout)


def _normal_packets(sw: Sw, br: str) -> int:
    """n_packets of the bridge's NORMAL rule."""
    lines = [ln for ln in sw.ofctl(br, "dump-flows").splitlines() if "actions=NORMAL" in ln]
    m = re.search(r"n_packets=(\d+)", lines[0]) if len(lines) == 1 else None
    assert m, lines
    return int(m.group(1))


def unread(ctl_sock: socket.socket) -> int | None:
    """Bytes the switch has not read yet on its end of this controller connection (the
    Recv-Q of the switch's socket, from ss), None if ss does not see the connection."""
    ctl_port, sw_port = ctl_sock.getsockname()[1], ctl_sock.getpeername()[1]
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{sw_port} and dport = :{ctl_port} )"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return int(out[0]) if out else None


@pytest.mark.netns
@pytest.mark.parametrize("fault", [None, *BREAKS])
def test_controller_sessions_and_listeners_survive_an_upgrade(
    started: Sw, listener: socket.socket, topology: Topology, fault: str | None
) -> None:
    """An active and a passive controller session, a half-read message, the session
    state and the listeners cross an upgrade done inside the shared traffic between two
    hosts on the bridge (a NORMAL rule), under the shared claim; the rule's counter
    grows by at least what the UDP streams delivered. Each fault of ``BREAKS`` armed in
    the new process is caught (the sessions must survive it all the same)."""
    sw = started
    br = unique_name("brs")
    a = topology.add_host("a", "10.93.0.1/24")
    b = topology.add_host("b", "10.93.0.2/24")
    active = f"tcp:127.0.0.1:{listener.getsockname()[1]}"
    ptcp_port = _free_port()
    passive = f"ptcp:{ptcp_port}:127.0.0.1"
    sw.vsctl(
        "add-br", br, "--", "set", "bridge", br, "datapath_type=netdev", "fail_mode=secure",
    )  # fmt: skip
    sw.vsctl("add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    sw.vsctl("set-controller", br, active, passive)

    # The switch connects to us (active target); we connect to it (passive target).
    sock, _ = listener.accept()
    c1 = Controller(sock)
    features = c1.request(FeaturesRequest(xid=100), FeaturesReply)
    assert isinstance(features, FeaturesReply)
    reply = c1.request(RoleRequest(xid=101, role=ControllerRole.MASTER, generation_id=7), RoleReply)
    assert isinstance(reply, RoleReply) and reply.role == ControllerRole.MASTER
    c1.send(SetConfig(xid=102, flags=0, miss_send_len=200))
    c1.request(BarrierRequest(xid=103), BarrierReply)
    c2 = Controller(socket.create_connection(("127.0.0.1", ptcp_port), timeout=10))
    c2.request(EchoRequest(xid=200, data=b"before"), EchoReply)
    sw.ofctl(br, "add-flow", "priority=1,actions=NORMAL")
    assert a.ping(b.addr, count=2, interval=0.1)
    counted0 = _normal_packets(sw, br)

    # Half a message in flight: the old switch reads these bytes and cannot parse them
    # yet; the new one must finish parsing them when the rest arrives.
    c1.send_partial(EchoRequest(xid=104, data=b"across the handoff"), 11)
    wait_for(lambda: unread(c1.sock) == 0, "the old switch to read the half message")
    old_pid = sw.daemon_pid
    assert _connected(sw, active) == "true"

    # With flush-after-adopt only UDP, so that the traffic after the flush cannot make up
    # with TCP packets for the datagrams the reset counter never counted.
    classes = ("udp",) if fault == "flush-after-adopt" else CLASSES
    with c1.answering_echoes(), c2.answering_echoes():
        report, res = handoff_under_traffic(sw, [a, b], "upgrade", fault=fault, classes=classes)

    assert report["ok"], report
    problems = violations(res, bound_of([report]))
    delivered = sum(c.received for c in res.classes if c.kind == "udp")
    counted = _normal_packets(sw, br)
    if counted < counted0 + delivered:
        problems.append(
            f"rule counters: NORMAL counted {counted} < {counted0} before + {delivered} delivered"
        )
    judge(problems, fault, res)
    assert sw.daemon_pid not in (None, old_pid)
    assert report["counts"]["openflow_sessions"] == 2, report["counts"]
    c1.finish_partial()
    got = c1.expect(EchoReply)
    assert isinstance(got, EchoReply) and got.xid == 104 and got.data == b"across the handoff"
    # Session state came along: the generation id (7) makes 6 stale...
    c1.send(RoleRequest(xid=105, role=ControllerRole.SLAVE, generation_id=6))
    err = c1.expect(ErrorMsg)
    assert isinstance(err, ErrorMsg) and err.xid == 105
    assert (err.err_type, err.code) == (ErrorType.ROLE_REQUEST_FAILED, RoleRequestFailedCode.STALE)
    # ...the switch config set before the upgrade is still in force...
    cfg = c1.request(GetConfigRequest(xid=106), GetConfigReply)
    assert isinstance(cfg, GetConfigReply) and cfg.miss_send_len == 200
    # ...and the passive session is the same TCP connection, still answering.
    c2.request(EchoRequest(xid=201, data=b"after"), EchoReply)
    assert _connected(sw, active) == "true"

    # The listeners came along too: new sessions on the ptcp port and the mgmt socket.
    c3 = Controller(socket.create_connection(("127.0.0.1", ptcp_port), timeout=10))
    c3.request(BarrierRequest(xid=300), BarrierReply)
    out = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", f"unix:{sw.rundir.path}/{br}.mgmt"])
    assert out.returncode == 0
    for c in (c1, c2, c3):
        c.sock.close()


@pytest.mark.parametrize("fault", ["crash:restored", "crash:acked", "stall:restored"])
def test_a_failed_handoff_leaves_the_controller_session_with_the_old_process(
    started: Sw, listener: socket.socket, fault: str
) -> None:
    """The new process held duplicates of the session sockets; when it dies or stalls
    the old one serves on with the same connection, mid-message bytes included."""
    sw = started
    br = unique_name("brf")
    active = f"tcp:127.0.0.1:{listener.getsockname()[1]}"
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev")
    sw.vsctl("set-controller", br, active)
    sock, _ = listener.accept()
    c = Controller(sock)
    c.request(RoleRequest(xid=1, role=ControllerRole.MASTER, generation_id=3), RoleReply)
    c.send_partial(EchoRequest(xid=2, data=b"across a rollback"), 9)
    old_pid = sw.daemon_pid

    with c.answering_echoes():
        report = _upgrade(sw, fault)

    assert not report["ok"]
    assert sw.daemon_pid == old_pid
    c.finish_partial()
    got = c.expect(EchoReply)
    assert isinstance(got, EchoReply) and got.xid == 2
    c.send(RoleRequest(xid=3, role=ControllerRole.MASTER, generation_id=2))
    err = c.expect(ErrorMsg)
    assert isinstance(err, ErrorMsg) and err.code == RoleRequestFailedCode.STALE
    assert _connected(sw, active) == "true"
    c.sock.close()


def test_a_session_record_the_new_process_cannot_use_is_refused() -> None:
    """A record that names a missing descriptor or lacks session state is an error
    (take_over turns it into an Abort: the old process keeps serving its sessions)."""
    from hitless.daemon.ofmgmt import parse_sessions
    from hitless.state.records import BridgeSessionsV4, OfConnectionV4, OfSessionV4

    with pytest.raises(ValueError, match="session descriptor"):
        parse_sessions(BridgeSessionsV4("br0", mgmt=3), [], 0.0)
    # A connection in a phase this build does not know.
    odd = OfConnectionV4(versions=[4], version=4, phase="no-such-phase", hello_sent=True,
                         role=0, generation_id=None, async_config=[], next_xid=1,
                         unparsed=b"", probe_interval=None)  # fmt: skip
    with pytest.raises(ValueError, match="malformed OpenFlow session record"):
        parse_sessions(BridgeSessionsV4("br0", clients=[OfSessionV4(0, odd)]), [5], 0.0)
