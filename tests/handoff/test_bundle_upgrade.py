"""An OpenFlow bundle left open across a hitless upgrade: the controller opens it and
adds a flow-mod to the old process, the new process takes the session over with the
bundle, and the controller's commit (on the same TCP connection) applies exactly that
flow-mod in the new process. Nothing of the bundle is applied before the commit."""

from __future__ import annotations

import json
import socket
import subprocess

from hitless.openflow import (
    ApplyActions,
    BundleAddMessage,
    BundleControl,
    FlowMod,
    Output,
)
from hitless.openflow.constants import BundleCtrlType
from tests.handoff.test_session_upgrade import BIN, Controller, _free_port
from tests.netns import unique_name
from tests.switch import Sw, run
from tests.wait import wait_for


def dump_flows(sw: Sw, br: str) -> str:
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    return run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", target]).stdout


def test_an_open_bundle_is_committed_in_the_new_process(started: Sw) -> None:
    sw = started
    br = unique_name("bbr")
    port = _free_port()
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "add-port", br, "p1", "--", "set-controller", br, f"ptcp:{port}:127.0.0.1")  # fmt: skip

    def connect() -> Controller | None:
        try:
            return Controller(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            return None

    ctl = wait_for(connect, "the passive controller port")
    opened = ctl.request(BundleControl(xid=1, bundle_id=9, ctrl_type=BundleCtrlType.OPEN_REQUEST),
                         BundleControl)  # fmt: skip
    assert opened.ctrl_type == BundleCtrlType.OPEN_REPLY  # type: ignore[attr-defined]
    mod = FlowMod(xid=2, priority=1234, instructions=(ApplyActions((Output(1),)),))
    ctl.send(BundleAddMessage(xid=2, bundle_id=9, message=mod))
    assert "priority=1234" not in dump_flows(sw, br)

    old = sw.daemon_pid
    r = subprocess.run([str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json"],
                       capture_output=True, text=True, timeout=120, cwd="/")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert sw.daemon_pid == report["new_pid"] != old
    assert report["counts"]["openflow_sessions"] >= 1, report["counts"]
    assert "priority=1234" not in dump_flows(sw, br)  # still only in the open bundle

    done = ctl.request(BundleControl(xid=3, bundle_id=9, ctrl_type=BundleCtrlType.COMMIT_REQUEST),
                       BundleControl)  # fmt: skip
    assert done.ctrl_type == BundleCtrlType.COMMIT_REPLY  # type: ignore[attr-defined]
    flows = dump_flows(sw, br)
    assert "priority=1234 actions=output:1" in flows.replace("p1", "1"), flows
