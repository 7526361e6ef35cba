"""Run only by tests/test_interrupted_run.py, in a child pytest that it interrupts (the
file name keeps it out of normal collection): sets up what upgrade tests set up (a
private switch with a netdev bridge, hosts from the ``topology`` fixture and from an
inline ``Topology``, a process in a host), writes their names to
``$HITLESS_INTERRUPT_DIR/ready`` and waits to be interrupted. Its first teardown step
writes ``teardown`` there and waits for ``go``, so the parent can signal again while
the teardown runs."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from tests.netns import Topology, unique_name
from tests.switch import Sw
from tests.wait import wait_for


def test_wait_for_the_interrupt(
    started: Sw, topology: Topology, request: pytest.FixtureRequest
) -> None:
    where = Path(os.environ["HITLESS_INTERRUPT_DIR"])

    def first_teardown_step() -> None:
        (where / "teardown").write_text("")
        wait_for(lambda: (where / "go").exists(), "the parent's go", timeout=60)

    request.addfinalizer(first_teardown_step)
    a = topology.add_host("a", "10.9.0.1/24")
    b = topology.add_host("b", "10.9.0.2/24")
    br = unique_name("int")
    started.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
                  "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    with Topology() as inline:
        c = inline.add_host("c", "10.9.0.3/24")
        sleeper = a.popen(["sleep", "1000"])
        names = {
            "rundir": str(started.rundir.path),
            "pids": [started.daemon_pid, started.db_pid, sleeper.pid],
            "namespaces": [a.ns, b.ns, c.ns],
            "links": [a.switch_port, b.switch_port, c.switch_port, br],
        }
        (where / "ready").write_text(json.dumps(names))
        threading.Event().wait()  # until interrupted
