"""Sessions in OpenFlow 1.0 (Nicira flow and packet-in formats negotiated), 1.1, 1.2 and
1.5 cross a hitless upgrade on the same socket, with their version and Nicira session
state, and the bridge's Geneve option map comes along."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hitless.openflow import (
    NEED_DATA,
    ApplyActions,
    BarrierReply,
    BarrierRequest,
    Connection,
    EchoAnswered,
    EchoReply,
    EchoRequest,
    Experimenter,
    FeaturesReply,
    FeaturesRequest,
    FlowMod,
    FlowStatsReply,
    FlowStatsRequest,
    GetAsyncReply,
    GetAsyncRequest,
    Message,
    Negotiated,
    Output,
    PacketIn,
    PacketOut,
    SetConfig,
)
from hitless.openflow.constants import OxmClass, Port
from hitless.openflow.errors import NxError
from hitless.openflow.match import Match, Oxm, field
from hitless.openflow.messages import ErrorMsg
from hitless.openflow.nx import NxFlowFormat, NxPacketInFormat, encode_nxm
from hitless.openflow.nxmsg import (
    NxSetFlowFormat,
    NxSetPacketInFormat,
    NxTlvTableMod,
    NxTlvTableReply,
    NxTlvTableRequest,
    TlvCommand,
    TlvMap,
)
from tests.netns import unique_suffix
from tests.switch import Sw
from tests.traffic import COLD, fault_env, must_catch

BIN = Path(sys.executable).parent


class Client:
    """A management-socket session in one version, our codec on a real unix socket."""

    def __init__(self, path: str | socket.socket, version: int) -> None:
        if isinstance(path, socket.socket):  # a controller's end, accepted from the switch
            self.sock = path
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(path)
        self.sock.settimeout(10)
        self.conn = Connection(versions=(version,), probe_interval=None)
        self.sock.sendall(self.conn.start())
        self.lock = threading.Lock()
        self.events: list[object] = []
        self.tail = b""  # the rest of a message sent only in part (send_partial)
        assert isinstance(self.next(), Negotiated)

    def next(self) -> object:
        while True:
            if self.events:
                return self.events.pop(0)
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                data = self.sock.recv(65536)
                assert data, "the switch closed the session"
                self.conn.receive_data(data)
            elif isinstance(ev, EchoAnswered):
                self.sock.sendall(ev.data)
            else:
                return ev

    def send(self, msg: Message) -> None:
        self.sock.sendall(self.conn.send(msg))

    def send_partial(self, msg: Message, n: int) -> None:
        """The first ``n`` bytes of ``msg`` now, the rest with ``finish_partial``."""
        data = self.conn.send(msg)
        self.sock.sendall(data[:n])
        self.tail = data[n:]

    def finish_partial(self) -> None:
        tail, self.tail = self.tail, b""
        if tail:
            self.sock.sendall(tail)

    @contextmanager
    def answering_echoes(self) -> Iterator[None]:
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                if not select.select([self.sock], [], [], 0.05)[0]:
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
                        self.events.append(ev)

        t = threading.Thread(target=pump, daemon=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(5)


def _nxst_flow_request(xid: int) -> bytes:
    """NXST_FLOW for every flow, as ovs-ofctl sends it in 1.0."""
    nxm = encode_nxm(Match())
    body = struct.pack("!HHII4x", 0xFFFF, 0, 0x2320, 0) + struct.pack(
        "!HHB3x", 0xFFFF, len(nxm), 0xFF
    )
    return struct.pack("!BBHI", 1, 16, 8 + len(body), xid) + body


# A new process that starts cold (no OpenFlow session adopted: each closed) must fail it.
@pytest.mark.parametrize("fault", [None, COLD])
def test_1_0_1_1_1_2_and_1_5_sessions_cross_an_upgrade(started: Sw, fault: str | None) -> None:
    br = f"bru{unique_suffix()}"
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy")
    started.vsctl("--", "--id=@m", "get", "bridge", br)  # the bridge exists
    mgmt = f"{started.rundir.path}/{br}.mgmt"
    of10 = Client(mgmt, 1)
    of10.send(NxSetFlowFormat(xid=2, format=NxFlowFormat.NXM))
    # Asynchronous messages wanted, as Nicira NXT_PACKET_IN (not OFPT_PACKET_IN).
    of10.send(SetConfig(xid=5, miss_send_len=128))
    of10.send(NxSetPacketInFormat(xid=6, format=NxPacketInFormat.NXT_PACKET_IN))
    of15 = Client(mgmt, 6)
    geneve = TlvMap(0x0102, 0x80, 4, 0)
    of15.send(NxTlvTableMod(xid=3, command=TlvCommand.ADD, maps=(geneve,)))
    of15.send(NxTlvTableRequest(xid=4))
    assert isinstance(of15.next(), NxTlvTableReply)
    # a rule on the mapped option (tun_metadata0=5, 4 bytes), carried with the map
    md = Match((Oxm(40, 5, None, OxmClass.NXM_1, 4),))
    of15.send(FlowMod(xid=14, priority=77, match=md))
    of11 = Client(mgmt, 2)
    of11.send(SetConfig(xid=11, miss_send_len=128))  # packet-ins wanted
    of12 = Client(mgmt, 3)
    old = started.daemon_pid
    snoop = f"{started.rundir.path}/{br}.snoop"  # ovs-ofctl snoop's listener
    snoop_ino = os.stat(snoop).st_ino

    with of10.answering_echoes(), of15.answering_echoes(), of11.answering_echoes(), \
            of12.answering_echoes():  # fmt: skip
        _upgrade_in_place(started, old, fault)
    with must_catch(fault, broken=(OSError,)):
        _sessions_went_on(snoop, snoop_ino, of10, of11, of12, of15, geneve, md)
    for c in (of10, of11, of12, of15):
        c.sock.close()


def _sessions_went_on(
    snoop: str, snoop_ino: int, of10: Client, of11: Client, of12: Client, of15: Client,
    geneve: TlvMap, md: Match,
) -> None:
    """What ``test_1_0_1_1_1_2_and_1_5_sessions_cross_an_upgrade`` checks afterwards."""
    # The snoop listener was handed over (same socket file) and the new process serves
    # it: with no controller connected it closes the snooper at once, as Open vSwitch.
    assert os.stat(snoop).st_ino == snoop_ino
    with socket.socket(socket.AF_UNIX) as sn:
        sn.settimeout(10)
        sn.connect(snoop)
        try:
            assert sn.recv(64) == b""
        except ConnectionResetError:
            pass

    # 1.0, same socket: the flow format (NXM) negotiated before the upgrade still holds,
    # so an NXST_FLOW request gets an NXST_FLOW reply (vendor stats, Nicira subtype 0).
    of10.sock.sendall(_nxst_flow_request(7))
    reply = of10.next()
    assert isinstance(reply, FlowStatsReply) and reply.xid == 7
    assert of10.conn.version == 1 and reply.stats  # the standalone NORMAL flow
    # The packet-in format came along: a packet-out to the controller comes back to
    # this session as NXT_PACKET_IN.
    frame = bytes.fromhex("ffffffffffff020000007409" + "88b5" + "00" * 46)
    of10.send(PacketOut(xid=10, in_port=Port.CONTROLLER, actions=(Output(Port.CONTROLLER),),
                        data=frame))  # fmt: skip
    pin = of10.next()
    assert isinstance(pin, Experimenter) and (pin.experimenter, pin.exp_type) == (0x2320, 17)
    assert pin.data.endswith(frame)
    # 1.5, same socket: a 1.5 request answered in 1.5; the option map is still there.
    of15.send(FlowStatsRequest(xid=8))
    got = of15.next()
    assert isinstance(got, FlowStatsReply) and got.xid == 8
    of15.send(NxTlvTableRequest(xid=9))
    tlv = of15.next()
    assert isinstance(tlv, NxTlvTableReply) and tlv.maps == (geneve,)
    assert [x.match for x in got.stats if x.priority == 77] == [md]
    # and the rule still holds the mapping: it cannot be cleared (NXTTMFC_INVALID_TLV_DEL)
    of15.send(NxTlvTableMod(xid=15, command=TlvCommand.CLEAR))
    err = of15.next()
    assert isinstance(err, ErrorMsg) and err.code == NxError.TLV_INVALID_DEL[1], err
    # 1.1 and 1.2, same sockets: a packet-in in 1.1's own layout (ports, no match), and
    # flow statistics in 1.2's.
    of11.send(PacketOut(xid=12, in_port=Port.CONTROLLER, actions=(Output(Port.CONTROLLER),),
                        data=frame))  # fmt: skip
    pin11 = of11.next()
    assert isinstance(pin11, PacketIn) and pin11.data == frame and of11.conn.version == 2
    of12.send(FlowStatsRequest(xid=13))
    got12 = of12.next()
    assert isinstance(got12, FlowStatsReply) and got12.xid == 13 and got12.stats
    assert of12.conn.version == 3


def _upgrade_in_place(started: Sw, old: int | None, fault: str | None = None) -> dict[str, Any]:
    """``hitless upgrade --json`` to this build (``fault`` armed in the new process):
    its report, once it said ok and a new process (not ``old``) serves."""
    r = subprocess.run(
        [str(BIN / "hitless"), "upgrade", "--rundir", str(started.rundir.path), "--json"],
        capture_output=True, text=True, timeout=120, cwd="/",
        env={**os.environ, **(fault_env(fault) or {})},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    report: dict[str, Any] = json.loads(r.stdout)
    assert report["ok"] and started.daemon_pid not in (None, old), report
    return report


def _sessions_builds() -> list[str]:
    """The previous builds whose handoff carries OpenFlow sessions (newest last)."""
    from tests.upgrade.builds import handoff_features, previous_versions

    return [v for v in previous_versions() if "sessions" in handoff_features(v)]


def _handover_with_a_monitor(
    sw: Sw, br: str, of13: Client, cmd: list[str], new_venv: Path
) -> tuple[dict[str, Any], str]:
    """Run the handoff ``cmd`` while ``of13`` is open on ``br`` and an ``ovs-ofctl
    monitor`` watches it; afterwards (the daemon runs from ``new_venv``) the session is
    answered, a rule is added, and the monitor, still connected, is stopped: its output
    is returned with the handoff's report."""
    import signal

    from tests.wait import wait_for

    env = {**os.environ, "OVS_RUNDIR": str(sw.rundir.path)}
    mon = subprocess.Popen(["ovs-ofctl", "-O", "OpenFlow13", "monitor", br, "watch:!initial"],
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip
    ctl = Path(sw.rundir.path) / f"ovs-ofctl.{mon.pid}.ctl"

    def barrier() -> None:
        r = subprocess.run(["ovs-appctl", "-t", str(ctl), "ofctl/barrier"], capture_output=True,
                           text=True, timeout=30, env=env)  # fmt: skip
        assert r.returncode == 0, r

    try:
        wait_for(lambda: ctl.exists() or mon.poll() is not None, "monitor ready")
        barrier()
        with of13.answering_echoes():
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd="/",
                               env=dict(os.environ))  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert str(new_venv) in Path(f"/proc/{sw.daemon_pid}/cmdline").read_text()
        of13.send(FlowStatsRequest(xid=21))
        got = of13.next()
        assert isinstance(got, FlowStatsReply) and got.xid == 21 and got.stats
        # The session's asynchronous configuration came across in a form the new process
        # can answer (a 1.3 reply holds exactly six masks; builds up to c0a5a15 refused
        # to encode one of twelve entries and sent NXBRC_UNENCODABLE_ERROR instead).
        of13.send(GetAsyncRequest(xid=22))
        got = of13.next()
        assert isinstance(got, GetAsyncReply) and got.xid == 22, got
        add = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", br,
                              "priority=7,udp,actions=drop"],
                             capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
        assert add.returncode == 0, add
        assert mon.poll() is None, "the monitoring session was dropped"
        barrier()
    finally:
        os.kill(mon.pid, signal.SIGTERM)
        out = mon.communicate(timeout=30)[0]
    assert out.count("OFPT_BARRIER_REPLY") == 2, out
    of13.sock.close()
    return json.loads(r.stdout), out


def _knows_monitors(commit: str) -> bool:
    """Whether ``commit`` hands flow monitors over (its session record has them)."""
    from tests.upgrade.builds import REPO

    src = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:hitless/daemon/ofmgmt.py"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return "monitors" in src


@pytest.mark.parametrize("previous", _sessions_builds()[-2:])
def test_a_session_opened_here_survives_a_downgrade_to_an_older_build(
    started: Sw, previous: str
) -> None:
    """A 1.3 session opened on this build (its bridge offering 1.0 to 1.5) is carried
    down to a previous build, which speaks fewer versions: the session record names
    only the negotiated version where older builds read it (state version 3 and older
    carry sessions as plain records beside the state: hitless.state.sessions). A
    session's flow monitors are kept by a build that knows them (a rule added after the
    downgrade is reported) and dropped, with the session kept, by one that does not."""
    from tests.upgrade.builds import build

    old = build(previous)
    br = f"brd{unique_suffix()}"
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy")
    started.vsctl("--", "--id=@m", "get", "bridge", br)
    of13 = Client(f"{started.rundir.path}/{br}.mgmt", 4)
    cmd = [str(BIN / "hitless"), "downgrade", "--rundir", str(started.rundir.path),
           "--to", str(old.vswitchd), "--json"]  # fmt: skip
    _, out = _handover_with_a_monitor(started, br, of13, cmd, old.venv)
    if _knows_monitors(previous):
        assert "event=ADDED" in out and "udp" in out, out  # kept by the older build
    else:
        assert "event=ADDED" not in out, out  # the older build has no monitors to report to


def _knows_tun_metadata(commit: str) -> bool:
    """Whether ``commit``'s OpenFlow matches have the tun_metadata fields."""
    from tests.upgrade.builds import REPO

    r = subprocess.run(["git", "-C", str(REPO), "grep", "-q", "tun_metadata", commit, "--",
                        "hitless/openflow/match.py"], capture_output=True)  # fmt: skip
    return r.returncode == 0


def _downgrade_with_a_tun_metadata_rule(
    started: Sw, previous: str
) -> tuple[subprocess.CompletedProcess[str], str, dict[str, str]]:
    """Map a Geneve option to tun_metadata0 and add a rule matching it on a new bridge,
    then ``hitless downgrade`` to ``previous``: the downgrade's run, the bridge, and the
    environment for ovs-ofctl."""
    from tests.upgrade.builds import build

    old = build(previous)
    br = f"brt{unique_suffix()}"
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy")
    started.vsctl("--", "--id=@m", "get", "bridge", br)
    env = {**os.environ, "OVS_RUNDIR": str(started.rundir.path)}
    for args in (("add-tlv-map", br, "{class=0xffff,type=0,len=4}->tun_metadata0"),
                 ("add-flow", br, "priority=9,tun_metadata0=5,actions=drop")):  # fmt: skip
        subprocess.run(["ovs-ofctl", *args], check=True, timeout=30, env=env)
    r = subprocess.run([str(BIN / "hitless"), "downgrade", "--rundir", str(started.rundir.path),
                        "--to", str(old.vswitchd), "--json"], capture_output=True, text=True,
                       timeout=180, cwd="/", env=dict(os.environ))  # fmt: skip
    return r, br, env


def _assert_tun_metadata_rule_kept(br: str, env: dict[str, str]) -> None:
    dump = subprocess.run(["ovs-ofctl", "dump-flows", br], capture_output=True, text=True,
                          timeout=30, env=env)  # fmt: skip
    assert "priority=9,tun_metadata0=0x5 actions=drop" in dump.stdout, dump
    tlv = subprocess.run(["ovs-ofctl", "dump-tlv-map", br], capture_output=True, text=True,
                         timeout=30, env=env)  # fmt: skip
    assert " 0xffff     0       4  tun_metadata0" in tlv.stdout, tlv


@pytest.mark.parametrize(
    "previous", [v for v in _sessions_builds() if not _knows_tun_metadata(v)][-1:]
)
def test_a_downgrade_to_a_build_without_tun_metadata_is_refused_while_a_rule_uses_it(
    started: Sw, previous: str
) -> None:
    """A previous build that does not know the tun_metadata fields: a downgrade while a
    rule matches one fails (the older build cannot take the rule), the report says why,
    and this build keeps running with its rules and its option map."""
    pid = started.daemon_pid
    r, br, env = _downgrade_with_a_tun_metadata_rule(started, previous)
    assert r.returncode != 0, r.stdout
    report = json.loads(r.stdout)
    assert not report["ok"] and "oxm_0x0001_40" in report["reason"], report
    assert started.daemon_pid == pid
    _assert_tun_metadata_rule_kept(br, env)


@pytest.mark.parametrize("previous", [v for v in _sessions_builds() if _knows_tun_metadata(v)][-1:])
def test_a_downgrade_to_a_build_with_tun_metadata_keeps_the_rule_and_the_option_map(
    started: Sw, previous: str
) -> None:
    """A previous build that knows the tun_metadata fields takes the rule and the
    Geneve option map over: the downgrade succeeds and the older build answers with
    both."""
    from tests.upgrade.builds import build

    pid = started.daemon_pid
    r, br, env = _downgrade_with_a_tun_metadata_rule(started, previous)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ok"], r.stdout
    assert started.daemon_pid != pid
    assert str(build(previous).venv) in Path(f"/proc/{started.daemon_pid}/cmdline").read_text()
    _assert_tun_metadata_rule_kept(br, env)


@pytest.mark.parametrize("previous", _sessions_builds()[-1:])
def test_sessions_of_an_older_build_survive_the_upgrade_to_this_one(sw: Sw, previous: str) -> None:
    """An older build's sessions (handed over in their older form beside the state,
    read into this build's typed records by hitless.state.sessions.from_v3): a 1.3
    session keeps its connection and is answered, and a flow monitor opened on the
    older build reports a rule added after the upgrade, when that build had monitors."""
    from tests.upgrade.builds import build

    old = build(previous)
    r = subprocess.run([str(old.hitless), "start", "--rundir", str(sw.rundir.path)],
                       capture_output=True, text=True, timeout=60, cwd="/")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert str(old.venv) in Path(f"/proc/{sw.daemon_pid}/cmdline").read_text()
    br = f"bru{unique_suffix()}"
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy")
    sw.vsctl("--", "--id=@m", "get", "bridge", br)
    of13 = Client(f"{sw.rundir.path}/{br}.mgmt", 4)
    cmd = [str(old.hitless), "upgrade", "--rundir", str(sw.rundir.path),
           "--to", str(BIN / "hitless-vswitchd"), "--json"]  # fmt: skip
    report, out = _handover_with_a_monitor(sw, br, of13, cmd, BIN.parent)
    assert report["counts"]["openflow_sessions"] >= 2, report
    if _knows_monitors(previous):
        assert "event=ADDED" in out and "udp" in out, out


@pytest.mark.parametrize("fault", [None, COLD])
def test_flow_monitors_cross_an_upgrade(started: Sw, fault: str | None) -> None:
    """Stock ``ovs-ofctl monitor`` in 1.0 (NXST_FLOW_MONITOR) and in 1.4
    (OFPMP_FLOW_MONITOR) keep their connection and their monitors across ``hitless
    upgrade``: a rule added afterwards reaches both as an update. A table's eviction
    flag (1.4 OFPT_TABLE_MOD) is still set afterwards. A new process that starts cold
    (no session adopted: the monitors' connections closed; the table configuration, a
    carried extra, gone) must fail that."""
    from tests.wait import wait_for

    br = f"brm{unique_suffix()}"
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy")
    started.vsctl("--", "--id=@m", "get", "bridge", br)
    rundir = started.rundir.path
    env = {**os.environ, "OVS_RUNDIR": str(rundir)}
    mons = []
    for flags in ((), ("-O", "OpenFlow14")):
        p = subprocess.Popen(["ovs-ofctl", *flags, "monitor", br, "watch:!initial,udp"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=env)  # fmt: skip
        ctl = Path(rundir) / f"ovs-ofctl.{p.pid}.ctl"
        mons.append((p, ctl))

    def appctl(ctl: Path, *args: str) -> None:
        r = subprocess.run(["ovs-appctl", "-t", str(ctl), *args], capture_output=True,
                           text=True, timeout=30, env=env)  # fmt: skip
        assert r.returncode == 0, r

    try:
        for p, ctl in mons:
            wait_for(lambda ctl=ctl, p=p: ctl.exists() or p.poll() is not None, "monitor ready")
            assert p.poll() is None
            appctl(ctl, "ofctl/barrier")
        mod = subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "mod-table", br, "2", "evict"],
                             capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
        assert mod.returncode == 0, mod
        _upgrade_in_place(started, started.daemon_pid, fault)
        add = subprocess.run(["ovs-ofctl", "add-flow", br, "priority=7,udp,actions=output:1"],
                             capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
        assert add.returncode == 0, add
        with must_catch(fault):
            for p, ctl in mons:
                assert p.poll() is None, "the monitor lost its connection"
                appctl(ctl, "ofctl/barrier")
            for out in stopped(mons):
                assert "event=ADDED table=0 cookie=0 udp actions=output:1" in out, out
                assert "disconnected" not in out.lower(), out
                assert "connection closed" not in out.lower(), out
            # the table configuration (OFPT_TABLE_MOD) came along too
            desc = subprocess.run(["ovs-ofctl", "-O", "OpenFlow14", "dump-table-desc", br],
                                  capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
            assert "table 2:\n   eviction=on" in desc.stdout, desc.stdout[:400]
            assert "table 3:\n   eviction=off" in desc.stdout
    finally:
        stopped(mons)


def stopped(mons: list[tuple[subprocess.Popen[str], Path]]) -> list[str]:
    """The output of each ``ovs-ofctl monitor`` once stopped (SIGTERM if still running);
    a second call finds them stopped and returns ''s."""
    outs = []
    for p, _ in mons:
        if p.returncode is not None:
            outs.append("")
            continue
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        outs.append(p.communicate(timeout=30)[0])
    return outs


@pytest.mark.parametrize("fault", [None, COLD])
def test_a_1_0_controller_keeps_its_session_across_an_upgrade(
    started: Sw, fault: str | None
) -> None:
    """A controller of the Controller table (the switch connects to it, tcp:) that speaks
    only OpenFlow 1.0 with Nicira's formats, as a 1.3 one does across ``hitless upgrade``
    (tests/handoff/test_session_upgrade.py): the same TCP connection, no new one; half a
    message sent before is finished after; the flow it added answered in NXST_FLOW; a
    packet-in arriving as NXT_PACKET_IN. A new process that starts cold (its sessions
    closed, the controller connected to afresh) must fail that."""
    br = f"brc{unique_suffix()}"
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        ls.settimeout(30)
        target = f"tcp:127.0.0.1:{ls.getsockname()[1]}"
        started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
                      "fail_mode=secure", "--", "set-controller", br, target)  # fmt: skip
        ctl = Client(ls.accept()[0], 1)
        assert ctl.conn.version == 1
        ctl.send(FeaturesRequest(xid=1))
        assert isinstance(ctl.next(), FeaturesReply)
        ctl.send(NxSetFlowFormat(xid=2, format=NxFlowFormat.NXM))
        ctl.send(NxSetPacketInFormat(xid=3, format=NxPacketInFormat.NXT_PACKET_IN))
        ctl.send(SetConfig(xid=4, miss_send_len=128))
        ctl.send(FlowMod(xid=5, priority=77, match=Match((field("eth_type", 0x88B5),)),
                         instructions=(ApplyActions((Output(Port.CONTROLLER),)),)))  # fmt: skip
        ctl.send(BarrierRequest(xid=6))
        assert isinstance(ctl.next(), BarrierReply)
        ctl.send_partial(EchoRequest(xid=7, data=b"across the upgrade"), 10)
        old = started.daemon_pid
        with ctl.answering_echoes():
            _upgrade_in_place(started, old, fault)
        with must_catch(fault, broken=(OSError,)):
            _controller_went_on(started, ls, ctl, target)
        ctl.sock.close()


def _controller_went_on(started: Sw, ls: socket.socket, ctl: Client, target: str) -> None:
    """What ``test_a_1_0_controller_keeps_its_session_across_an_upgrade`` checks after."""
    ctl.finish_partial()
    echo = ctl.next()
    assert isinstance(echo, EchoReply) and echo.data == b"across the upgrade", echo
    ctl.sock.sendall(_nxst_flow_request(8))
    reply = ctl.next()
    assert isinstance(reply, FlowStatsReply) and reply.xid == 8
    assert [x.priority for x in reply.stats] == [77], reply
    frame = bytes.fromhex("ffffffffffff020000007409" + "88b5" + "00" * 46)
    ctl.send(PacketOut(xid=9, in_port=Port.CONTROLLER, actions=(Output(Port.CONTROLLER),),
                       data=frame))  # fmt: skip
    pin = ctl.next()
    assert isinstance(pin, Experimenter) and (pin.experimenter, pin.exp_type) == (0x2320, 17)
    assert pin.data.endswith(frame)
    ls.settimeout(0)
    try:
        ls.accept()
    except BlockingIOError:
        pass  # the switch never connected again
    else:
        raise AssertionError("the switch connected to the controller again")
    status = started.vsctl("--bare", "--columns=is_connected", "find", "Controller",
                           f'target="{target}"').stdout.strip()  # fmt: skip
    assert status == "true", status


@pytest.mark.parametrize("fault", [None, COLD])
def test_port_ages_cross_an_upgrade(started: Sw, fault: str | None) -> None:
    """A port's age (its OpenFlow statistics' duration, counted from when it was added, as
    Open vSwitch counts it) goes on across ``hitless upgrade`` instead of starting at 0.
    A new process that starts cold (the ages, a carried extra, not adopted) must fail
    that."""
    import re
    import time

    from tests.wait import wait_for

    br = f"bra{unique_suffix()}"
    port = f"pa{unique_suffix()}"[:15]
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy", "--",
                  "add-port", br, port, "--", "set", "interface", port, "type=dummy",
                  "ofport_request=7")  # fmt: skip
    env = {**os.environ, "OVS_RUNDIR": str(started.rundir.path)}

    def age() -> float:
        r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-ports", br, "7"],
                           capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
        m = re.search(r"duration=([0-9.]+)s", r.stdout)
        return float(m.group(1)) if m else -1.0

    wait_for(lambda: age() >= 5.0, "the port five seconds old", timeout=60)
    before = age()
    t0 = time.monotonic()  # the age was read before this
    _upgrade_in_place(started, started.daemon_pid, fault)
    elapsed = time.monotonic() - t0  # the age is read after this
    after = age()
    # Not carried, the age would count from when the new process adopted the port, after
    # t0: at most ``elapsed`` plus the last query's time.
    with must_catch(fault):
        assert after >= before + elapsed - 0.5, f"{before} s old, {elapsed:.1f} s later {after} s"
