"""An interrupted pytest run leaves nothing behind: a child pytest sets up a switch
(ovsdb-server, hitless-vswitchd, a netdev bridge), hosts in namespaces and a process in
one (tests/interrupted_child.py), and is interrupted mid-test the ways runs get
interrupted; then its daemons, processes, namespaces, links and run directory must all
be gone (tests/interrupts.py says why they were not)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hitless.daemon.rundir import wait_exit
from tests.netns import sh
from tests.wait import wait_for

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[1]


def leftovers(names: dict) -> list[str]:
    out = [f"process {pid}" for pid in names["pids"] if pid and not wait_exit(pid, 0)]
    live = sh(["ip", "netns", "list"]).stdout.split()
    out += [f"namespace {ns}" for ns in names["namespaces"] if ns in live]
    out += [f"link {ln}" for ln in names["links"] if os.path.exists(f"/sys/class/net/{ln}")]
    if os.path.exists(names["rundir"]):
        out.append(f"run directory {names['rundir']}")
    return out


def clean(names: dict) -> None:
    """What the child left, removed by the parent (so a failing case leaks nothing)."""
    for pid in names["pids"]:
        if pid and not wait_exit(pid, 0):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    for ns in names["namespaces"]:
        sh(["ip", "netns", "del", ns], check=False)
    for ln in names["links"]:
        if os.path.exists(f"/sys/class/net/{ln}"):
            sh(["ip", "link", "del", ln], check=False)
    shutil.rmtree(names["rundir"], ignore_errors=True)


@pytest.mark.parametrize(
    ("how", "sig", "to_group", "again_in_teardown"),
    [
        ("Ctrl-C", signal.SIGINT, True, False),
        ("kill or timeout", signal.SIGTERM, False, False),
        ("Ctrl-C twice", signal.SIGINT, True, True),
        ("SIGTERM, then SIGTERM during teardown", signal.SIGTERM, False, True),
    ],
)
def test_an_interrupted_run_leaves_nothing_behind(
    tmp_path: Path, how: str, sig: signal.Signals, to_group: bool, again_in_teardown: bool
) -> None:
    env = {**os.environ, "HITLESS_INTERRUPT_DIR": str(tmp_path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "tests/interrupted_child.py"],
        cwd=REPO, env=env, start_new_session=True, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    names: dict = {"pids": [], "namespaces": [], "links": [], "rundir": str(tmp_path / "none")}
    try:
        ready = tmp_path / "ready"
        wait_for(lambda: child.poll() is not None or (ready.exists() and ready.read_text()),
                 "the child test to set up", timeout=120)
        assert child.poll() is None, child.communicate()[0]
        names = json.loads(ready.read_text())
        everything = 1 + len(names["pids"]) + len(names["namespaces"]) + len(names["links"])
        assert len(leftovers(names)) == everything, leftovers(names)  # all there before

        def send() -> None:
            if to_group:
                os.killpg(child.pid, sig)  # what a terminal's Ctrl-C does
            else:
                os.kill(child.pid, sig)

        send()
        if again_in_teardown:
            wait_for(lambda: (tmp_path / "teardown").exists(), "the child's teardown")
            send()
        (tmp_path / "go").write_text("")
        out, _ = child.communicate(timeout=120)
        print(out)
        assert "KeyboardInterrupt" in out, out
        left = leftovers(names)
        assert left == [], f"{how}: left behind {left}\n{out}"
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
        clean(names)
