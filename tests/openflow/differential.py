"""Real Open vSwitch next to hitless, for differential tests of ``ovs-ofctl``.

``SwitchPair`` starts Debian's ``ovsdb-server`` + ``ovs-vswitchd`` (dummy datapath only:
``--enable-dummy=override --disable-system``, so it touches no kernel datapath) and a
hitless switch, each in its own fresh run directory, and gives both one bridge of the
same name on the dummy datapath with the same datapath id. ``ofctl(args)`` runs the same
stock ``ovs-ofctl`` command against each and returns both results; ``normalize`` strips
what must differ between two switches (durations, ages, MAC addresses of the bridge's
own port, the description strings). Processes are stopped by PID in ``close``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hitless.openflow import CLOSED, NEED_DATA, BarrierReply, BarrierRequest, Connection, Message
from tests.wait import eventually, wait_for

OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
BIN = Path(sys.executable).parent
DPID = "00000000000000a1"


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str

    def text(self) -> str:
        """What a user sees: stdout, then stderr, and the exit status."""
        return f"{self.out}{self.err}rc={self.rc}\n"


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 30) -> Result:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def _check(cmd: list[str], env: dict[str, str] | None = None) -> str:
    r = _run(cmd, env)
    if r.rc:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.rc}: {r.out}{r.err}")
    return r.out


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _stop(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    if eventually(gone, timeout=10):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Ovs:
    def __init__(self, bridge: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hldo-", dir="/tmp"))
        d = str(self.dir)
        self.env = {**os.environ, "OVS_RUNDIR": d, "OVS_DBDIR": d, "OVS_LOGDIR": d,
                    "OVS_SYSCONFDIR": d}  # fmt: skip
        try:
            self._start()
        except BaseException:
            self.close()  # what started before the failure, not left running
            raise

    def _start(self) -> None:
        p = self.dir
        _check(["ovsdb-tool", "create", str(p / "conf.db"), OVS_SCHEMA], self.env)
        _check(["ovsdb-server", str(p / "conf.db"), f"--remote=punix:{p / 'db.sock'}",
                f"--unixctl={p / 'ovsdb-server.ctl'}", f"--pidfile={p / 'ovsdb-server.pid'}",
                f"--log-file={p / 'ovsdb-server.log'}", "--detach", "--no-chdir"], self.env)  # fmt: skip
        _check(["ovs-vsctl", f"--db=unix:{p / 'db.sock'}", "--no-wait", "init"], self.env)
        _check(["ovs-vswitchd", f"unix:{p / 'db.sock'}", f"--unixctl={p / 'ovs-vswitchd.ctl'}",
                f"--pidfile={p / 'ovs-vswitchd.pid'}", f"--log-file={p / 'ovs-vswitchd.log'}",
                "--enable-dummy=override", "--disable-system", "--detach", "--no-chdir"],
               self.env)  # fmt: skip

    def close(self) -> None:
        _stop(_pid(self.dir / "ovs-vswitchd.pid"))
        _stop(_pid(self.dir / "ovsdb-server.pid"))
        shutil.rmtree(self.dir, ignore_errors=True)


class _Hitless:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hldh-", dir="/tmp"))
        self.env = {**os.environ, "OVS_RUNDIR": str(self.dir)}
        try:
            _check([str(BIN / "hitless"), "start", "--rundir", str(self.dir)])
        except BaseException:
            self.close()  # a half-started ovsdb-server or daemon, not left running
            raise

    def close(self) -> None:
        try:
            _run([str(BIN / "hitless"), "stop", "--rundir", str(self.dir)])
        except subprocess.TimeoutExpired:
            pass  # a loaded machine: the daemons are stopped by PID below
        _stop(_pid(self.dir / "hitless-vswitchd.pid"))
        _stop(_pid(self.dir / "ovsdb-server.pid"))
        shutil.rmtree(self.dir, ignore_errors=True)


class SwitchPair:
    """Real Open vSwitch and hitless, one dummy bridge ``bridge`` each."""

    def __init__(self, bridge: str) -> None:
        self.bridge = bridge
        self.ovs: _Ovs | None = None
        self.hl: _Hitless | None = None
        try:
            self.ovs = _Ovs(bridge)
            self.hl = _Hitless()
            for sw in (self.ovs, self.hl):
                _check(["ovs-vsctl", f"--db=unix:{sw.dir / 'db.sock'}", "--timeout=30",
                        "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=dummy",
                        f"other_config:datapath-id={DPID}"], sw.env)  # fmt: skip
                _wait_for(sw.dir / f"{bridge}.mgmt")
        except BaseException:
            self.close()
            raise

    def ofctl(self, *args: str, stdin: str | None = None) -> tuple[Result, Result]:
        """The same ``ovs-ofctl`` command against Open vSwitch and against hitless;
        ``{br}`` in an argument is the bridge."""
        out = []
        for sw in (self.ovs, self.hl):
            assert sw is not None
            argv = ["ovs-ofctl", *(a.replace("{br}", self.bridge) for a in args)]
            p = subprocess.run(argv, capture_output=True, text=True, env=sw.env, timeout=30,
                               input=stdin)  # fmt: skip
            out.append(Result(p.returncode, p.stdout, p.stderr))
        return out[0], out[1]

    def vsctl(self, *args: str) -> None:
        """The same ``ovs-vsctl`` command against both switches' databases (must succeed)."""
        for sw in (self.ovs, self.hl):
            assert sw is not None
            subprocess.run(["ovs-vsctl", f"--db=unix:{sw.dir / 'db.sock'}", "--timeout=30", *args],
                           env=sw.env, check=True, timeout=60, capture_output=True)  # fmt: skip

    def send(self, version: int, *msgs: Message) -> tuple[list[object], list[object]]:
        """What stock ``ovs-ofctl`` cannot send (a message too long for its parser): ``msgs``
        and a barrier over each switch's management socket in OpenFlow ``version``; the
        events up to the barrier's reply from Open vSwitch and from hitless."""
        out = []
        for sw in (self.ovs, self.hl):
            assert sw is not None
            out.append(_exchange(sw.dir / f"{self.bridge}.mgmt", version, msgs))
        return out[0], out[1]

    def close(self) -> None:
        try:
            if self.hl is not None:
                self.hl.close()
        finally:  # Open vSwitch is stopped even if stopping hitless failed
            if self.ovs is not None:
                self.ovs.close()


def _exchange(path: Path, version: int, msgs: tuple[Message, ...]) -> list[object]:
    conn = Connection(versions=(version,), probe_interval=None)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(conn.start())
        got: list[object] = []
        sent = False
        while True:
            ev = conn.next_event()
            if ev is CLOSED:
                return got
            if ev is NEED_DATA:
                conn.receive_data(s.recv(1 << 16))
                continue
            got.append(ev)
            if not sent and conn.version is not None:
                s.sendall(b"".join(conn.send(m) for m in (*msgs, BarrierRequest(xid=0xBA))))
                sent = True
            if isinstance(ev, BarrierReply) and ev.xid == 0xBA:
                return got


def _wait_for(path: Path, timeout: float = 20) -> None:
    wait_for(path.exists, f"{path} to appear", timeout)


_SUBS = [
    (re.compile(r"duration=[0-9.]+s"), "duration=*"),
    (re.compile(r"duration:[0-9.]+s"), "duration:*"),  # meter statistics
    (re.compile(r"duration=[0-9.]+(?=[,\s])"), "duration=*"),
    (re.compile(r"idle_age=\d+, "), ""),
    (re.compile(r"hard_age=\d+, "), ""),
    (re.compile(r"addr:[0-9a-f:]{17}"), "addr:*"),
    (re.compile(r"/tmp/hld[oh]-[^/]+/"), "DIR/"),
    (re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z\|\d+\|"), ""),
    (re.compile(r"^(Manufacturer|Hardware|Software|DP Description): .*$"), r"\1: *"),
]


def normalize(text: str, sort: bool = False) -> str:
    """``text`` without what must differ between two switches; with ``sort``, the lines
    of flow and group entries sorted (each switch lists them in its own internal order)."""
    lines = []
    for line in text.splitlines():
        for rx, repl in _SUBS:
            line = rx.sub(repl, line)
        lines.append(line)
    if sort:
        entry = (" cookie=", " group_id=")
        head = [ln for ln in lines if not ln.startswith(entry)]
        flows = sorted(ln for ln in lines if ln.startswith(entry))
        lines = head + flows
    return "\n".join(lines) + "\n"
