"""An OpenFlow bundle left open across a hitless upgrade: the controller opens it and
adds a flow-mod to the old process, the new process takes the session over with the
bundle, and the controller's commit (on the same TCP connection) applies exactly that
flow-mod in the new process. Nothing of the bundle is applied before the commit."""

from __future__ import annotations

import socket

import pytest

from hitless.openflow import (
    ApplyActions,
    BundleAddMessage,
    BundleControl,
    FlowMod,
    Output,
)
from hitless.openflow.constants import BundleCtrlType
from tests.handoff.test_session_upgrade import Controller, _free_port
from tests.netns import unique_name
from tests.switch import Sw, run
from tests.traffic import COLD, must_catch, upgrade_with
from tests.wait import wait_for


def dump_flows(sw: Sw, br: str) -> str:
    target = f"unix:{sw.rundir.path}/{br}.mgmt"
    return run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", target]).stdout


@pytest.mark.parametrize("fault", [None, COLD])
def test_an_open_bundle_is_committed_in_the_new_process(started: Sw, fault: str | None) -> None:
    """A new process that starts cold (the session and its bundle gone) must fail it."""
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
    # A real controller answers the switch's keepalive probes: an upgrade at load can
    # outlast two probe intervals (5 s each), after which an idle session is dropped.
    with ctl.answering_echoes():
        report = upgrade_with(sw, fault)
    assert sw.daemon_pid == report["new_pid"] != old
    assert report["counts"]["openflow_sessions"] >= 1, report["counts"]
    assert "priority=1234" not in dump_flows(sw, br)  # still only in the open bundle

    with must_catch(fault):
        try:
            done = ctl.request(
                BundleControl(xid=3, bundle_id=9, ctrl_type=BundleCtrlType.COMMIT_REQUEST),
                BundleControl,
            )
        except OSError as e:  # the session is gone (closed or reset)
            raise AssertionError(f"the controller's session did not survive: {e!r}") from e
        assert done.ctrl_type == BundleCtrlType.COMMIT_REPLY  # type: ignore[attr-defined]
        flows = dump_flows(sw, br)
        assert "priority=1234 actions=output:1" in flows.replace("p1", "1"), flows
