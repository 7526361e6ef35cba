"""A controller that connects to the bridge's passive (``ptcp:``) controller port while
the switch is frozen in a handoff: its connection waits in the listening socket's
backlog (the listener itself is handed over) and the new process accepts and serves
it; nothing is refused or reset."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

from hitless.openflow import EchoReply, EchoRequest
from tests.handoff.test_session_upgrade import BIN, Controller, _free_port
from tests.netns import unique_name
from tests.switch import Sw
from tests.wait import wait_for


def _owner(port: int) -> int | None:
    """PID of the process holding the switch's end of a connection to ``port``."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    if "pid=" not in out:
        return None
    return int(out.split("pid=")[1].split(",")[0])


def test_a_controller_connecting_during_the_freeze_is_served_by_the_new_process(
    started: Sw,
) -> None:
    sw = started
    br = unique_name("fbr")
    port = _free_port()
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "set-controller", br, f"ptcp:{port}:127.0.0.1")  # fmt: skip

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, "the passive controller port")
    old = sw.daemon_pid
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    env = {**os.environ, "HITLESS_FAULT": "delay:restored"}  # the new side sleeps 1 s
    cmd = [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json",
           "--lease", "5"]  # fmt: skip
    t = threading.Thread(target=lambda: result.setdefault(
        "r", subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)))
    t.start()
    try:
        # Restored and asleep: the old process is frozen until the new one commits.
        wait_for(lambda: "fault delay:restored: sleeping" in sw.log(), "the freeze")
        assert result == {}, "the handoff ended before the controller connected"
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        ctl = Controller(sock)  # Hello exchanged: somebody accepted and answered
    finally:
        t.join(60)
    r = result["r"]
    assert r.returncode == 0, r.stdout + r.stderr
    new = json.loads(r.stdout)["new_pid"]
    assert new != old and sw.daemon_pid == new
    reply = ctl.request(EchoRequest(xid=7, data=b"after"), EchoReply)
    assert isinstance(reply, EchoReply) and reply.data == b"after"
    assert _owner(port) == new
    sock.close()
