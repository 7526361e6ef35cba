"""hitless upgrade / downgrade between real daemon processes (dummy datapath: no root
interfaces needed; the netdev handoff with traffic is in tests/handoff/).

Every fault case checks the product's claim: afterwards exactly one process owns the
switch, and it is the one the outcome says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hitless.daemon.rundir import read_pid, wait_exit
from tests.netns import unique_name
from tests.switch import Sw, run
from tests.wait import wait_for

BIN = Path(sys.executable).parent
# Bridge names unique to this run (tests/netns.py unique_name).
BR0, BR1, BRX = unique_name("ubr"), unique_name("ubr"), unique_name("ubx")


def dummy_bridge(sw: Sw, *ports: str) -> None:
    args = ["add-br", BR0, "--", "set", "bridge", BR0, "datapath_type=dummy"]
    for p in ports:
        args += ["--", "add-port", BR0, p]
    sw.vsctl(*args)


def upgrade(
    sw: Sw, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "hitless"), "upgrade", "--rundir", str(sw.rundir.path), "--json", *extra]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def start_with_env(sw: Sw, env: dict[str, str]) -> None:
    """``hitless start`` with extra environment (fault points) for the daemon."""
    r = subprocess.run(
        [str(BIN / "hitless"), "start", "--rundir", str(sw.rundir.path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


def slow_upgrade_in_background(sw: Sw) -> Callable[[], subprocess.CompletedProcess[str]]:
    """Start an upgrade whose new process sleeps 1 s after restoring (the old one frozen
    meanwhile, under a 5 s lease); return once the old side is handing over. The returned
    function waits for the upgrade and gives its result."""
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    connected = "handoff: new process pid"  # the old process's log line at the hello
    before = sw.log().count(connected)
    t = threading.Thread(
        target=lambda: result.setdefault(
            "r", upgrade(sw, "--lease", "5", env={"HITLESS_FAULT": "delay:restored"})
        )
    )
    t.start()
    # The old process's log, not upgrade/status: the pre-copy of a dummy bridge is too
    # short to poll, and a status request sent during the freeze waits in the control
    # socket's backlog and is answered by the new process, whose status shows no handoff.
    wait_for(lambda: sw.log().count(connected) > before, "the handoff under way (old log)",
             timeout=60)  # fmt: skip

    def finish() -> subprocess.CompletedProcess[str]:
        t.join(60)
        return result["r"]

    return finish


def owner_is(sw: Sw, pid: int) -> None:
    """Exactly one daemon: ``pid`` is alive, named by the pidfile, and answers."""
    assert read_pid(sw.rundir.pidfile) == pid
    assert sw.daemon_pid == pid
    assert "hitless" in sw.appctl("version").stdout
    others = [p for p in daemons_in(sw) if p != pid]
    assert others == [], f"other daemons still run in the rundir: {others}"


def daemons_in(sw: Sw) -> list[int]:
    """PIDs of live hitless-vswitchd processes whose command line names the rundir."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue  # exited while we looked
        if str(sw.rundir.path) in cmd and "vswitchd" in cmd and not wait_exit(int(p), 0):
            out.append(int(p))
    return out


def test_upgrade_hands_everything_to_a_new_process(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, "p1", "p2")
    before = {i: sw.ofport(i) for i in ("p1", "p2", BR0)}
    state_before = json.loads(sw.appctl("state/dump").stdout)
    old = sw.daemon_pid
    assert old is not None
    niceness = os.getpriority(os.PRIO_PROCESS, old)  # read now: the old process exits
    r = upgrade(sw)
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and report["old_pid"] == old and report["new_pid"] != old
    assert report["counts"]["ports"] == 3
    for phase in ("start", "precopy", "restore", "verify", "freeze", "old_exit"):
        assert phase in report["phases_ms"], phase
    # Nothing forwards in the freeze: the new process ran it as a real-time process
    # (root), imported nothing there, and serves as an ordinary process at the niceness
    # it had (hitless.daemon.priority.realtime).
    assert report["freeze_imports"] == []
    assert report["freeze_realtime"] is (os.geteuid() == 0)
    assert os.sched_getscheduler(report["new_pid"]) == os.SCHED_OTHER
    assert os.getpriority(os.PRIO_PROCESS, report["new_pid"]) == niceness
    owner_is(sw, report["new_pid"])
    assert {i: sw.ofport(i) for i in before} == before
    state_after = json.loads(sw.appctl("state/dump").stdout)
    assert state_after["digest"] == state_before["digest"]
    status = json.loads(sw.appctl("upgrade/status").stdout)
    assert status["taken_over"]["old_pid"] == old
    # The new process is a full switch: it reconfigures, and hands over again.
    sw.vsctl("add-port", BR0, "p3")
    assert sw.ofport("p3") == 3
    r = upgrade(sw)
    assert r.returncode == 0, r.stderr
    owner_is(sw, json.loads(r.stdout)["new_pid"])


@pytest.mark.parametrize(
    "fault",
    [
        "crash:connected",
        "crash:precopy",
        "crash:ready",
        "crash:restored",
        "crash:acked",
        "crash:committed",
        "stall:restored",
    ],
)
def test_new_process_failing_at_any_phase_leaves_the_old_one_serving(
    started: Sw, fault: str
) -> None:
    sw = started
    dummy_bridge(sw, "p1", "p2")
    old = sw.daemon_pid
    assert old is not None
    digest = json.loads(sw.appctl("state/dump").stdout)["digest"]
    r = upgrade(sw, "--lease", "0.5", env={"HITLESS_FAULT": fault})
    assert r.returncode == 1, r.stdout
    report = json.loads(r.stdout)
    assert not report["ok"] and report["reason"]
    if fault.startswith("stall"):  # a hung new process: the CLI says why, without waiting
        assert "rolled back the handoff: freeze lease of 0.5s expired" in report["reason"]
    owner_is(sw, old)
    assert os.sched_getscheduler(old) == os.SCHED_OTHER  # its freeze's priority given back
    assert json.loads(sw.appctl("state/dump").stdout)["digest"] == digest
    # The old process still works: it reconfigures and accepts the next, good handoff.
    sw.vsctl("add-port", BR0, "p3")
    assert sw.ofport("p3") == 3
    r = upgrade(sw)
    assert r.returncode == 0, r.stdout + r.stderr
    owner_is(sw, json.loads(r.stdout)["new_pid"])


def test_old_process_killed_right_after_the_ack_leaves_the_new_one_owning(sw: Sw) -> None:
    env = {**os.environ, "HITLESS_FAULT": "crash:old-after-ack"}
    start_with_env(sw, env)
    dummy_bridge(sw, "p1")
    old = sw.daemon_pid
    r = upgrade(sw)
    assert r.returncode == 0, r.stdout + r.stderr
    new = json.loads(r.stdout)["new_pid"]
    assert new != old and wait_exit(old, 5)  # type: ignore[arg-type]
    owner_is(sw, new)
    assert sw.ofport("p1") == 1


def refused_upgrade(sw: Sw, fault: str) -> str:
    """A switch started with ``fault`` armed (so its successors inherit it), one bridge,
    one upgrade that must fail: the reason it gives; the old process still owns all."""
    start_with_env(sw, {**os.environ, "HITLESS_FAULT": fault})
    dummy_bridge(sw, "p1")
    old = sw.daemon_pid
    r = upgrade(sw)
    assert r.returncode == 1
    owner_is(sw, old)  # type: ignore[arg-type]
    return str(json.loads(r.stdout)["reason"])


@pytest.mark.parametrize("fault", ["truncate-snapshot", "foreign-snapshot"])
def test_bad_snapshot_from_the_old_side_is_refused_and_rolled_back(sw: Sw, fault: str) -> None:
    reason = refused_upgrade(sw, fault)
    assert "truncated" in reason or "not a hitless state snapshot" in reason


def test_a_snapshot_with_a_foreign_record_is_refused_and_rolled_back(sw: Sw) -> None:
    """A final snapshot whose envelope and checksum are right but one of whose typed
    records (version 7's datapath handles) is of no known kind: the new process says
    which record, the old one carries on owning everything."""
    reason = refused_upgrade(sw, "foreign-record-snapshot")
    assert "invalid" in reason and "Xummy" in reason and "datapath.handles" in reason, reason
    assert sw.ofport("p1") == 1


def test_new_build_that_only_reads_a_newer_state_version_is_refused(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, "p1")
    old = sw.daemon_pid
    r = upgrade(sw, env={"HITLESS_STATE_VERSIONS": "99"})
    assert r.returncode == 1
    assert "no common state version" in json.loads(r.stdout)["reason"]
    owner_is(sw, old)  # type: ignore[arg-type]


def test_ovsdb_change_during_the_handoff_is_applied_exactly_once(started: Sw) -> None:
    sw = started
    dummy_bridge(sw, "p1")
    finish = slow_upgrade_in_background(sw)
    sw.vsctl("--no-wait", "add-port", BR0, "p2")
    r = finish()
    assert r.returncode == 0, r.stdout + r.stderr
    owner_is(sw, json.loads(r.stdout)["new_pid"])
    sw.vsctl("set", "Open_vSwitch", ".", "other_config:probe=1")  # waits for cur_cfg
    assert sw.ofport("p2") == 2
    dump = json.loads(sw.appctl("state/dump").stdout)
    names = [p["name"] for p in dump["state"]["bridges"][0]["ports"]]
    assert sorted(names) == sorted([BR0, "p1", "p2"])


def test_upgrade_without_a_running_switch_says_how_to_start_one(sw: Sw) -> None:
    os.makedirs(sw.rundir.path, exist_ok=True)
    r = upgrade(sw)
    assert r.returncode == 1 and "hitless start" in json.loads(r.stdout)["reason"]


def test_downgrade_requires_a_target_and_checks_it(started: Sw) -> None:
    sw = started
    r = run([str(BIN / "hitless"), "downgrade", "--rundir", str(sw.rundir.path)], check=False)
    assert r.returncode == 2 and "--to" in r.stderr
    r = run(
        [
            str(BIN / "hitless"),
            "downgrade",
            "--rundir",
            str(sw.rundir.path),
            "--to",
            "/nonexistent/hitless-vswitchd",
        ],
        check=False,
    )
    assert r.returncode == 2 and "no such file" in r.stderr


@pytest.mark.parametrize("mode", ["cold", "flow-restore"])
def test_restart_baselines_replace_the_process_and_keep_the_configuration(
    started: Sw, mode: str
) -> None:
    sw = started
    dummy_bridge(sw, "p1", "p2")
    mgmt = f"unix:{sw.rundir.path}/{BR0}.mgmt"
    # the bridge's management socket appears once the daemon has set the bridge up
    wait_for(lambda: (sw.rundir.path / f"{BR0}.mgmt").exists(), "the management socket")
    run(["ovs-ofctl", "-O", "OpenFlow13", "add-flow", mgmt, "priority=100,in_port=1,actions=drop"])
    old = sw.daemon_pid
    r = sw.hitless("restart", "--mode", mode, "--json")
    phases = json.loads(r.stdout)["phases_ms"]
    assert {"stop", "start", "total"} <= set(phases)
    new = sw.daemon_pid
    assert new is not None and new != old
    owner_is(sw, new)
    assert (sw.ofport("p1"), sw.ofport("p2")) == (1, 2)
    assert "flow-restore-wait" not in sw.get("Open_vSwitch", ".", "other_config")
    flows = run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", mgmt]).stdout
    if mode == "flow-restore":
        assert "flow-restore-wait cleared" in sw.log()
        assert "priority=100,in_port=1 actions=drop" in flows  # saved and re-added
    else:
        assert "in_port=1" not in flows  # a cold restart forgets OpenFlow rules


def test_management_commands_sent_during_the_freeze_are_answered_by_the_new_process(
    started: Sw,
) -> None:
    """The control socket itself is handed over: a client that connects while the old
    process is frozen waits in its backlog and gets its answer from the new one."""
    sw = started
    dummy_bridge(sw, "p1")
    finish = slow_upgrade_in_background(sw)
    # The new side has restored and now sleeps 1 s: the old one is frozen until then.
    wait_for(lambda: "fault delay:restored: sleeping" in sw.log(), "the old process frozen")
    answers = [sw.appctl("upgrade/status", check=False) for _ in range(3)]
    r = finish()
    assert r.returncode == 0, r.stdout + r.stderr
    new = json.loads(r.stdout)["new_pid"]
    owner_is(sw, new)
    for a in answers:
        assert a.returncode == 0, a.stderr
    # At least the first one was queued during the freeze and answered after it.
    assert json.loads(answers[0].stdout)["taken_over"] is not None


def test_upgrade_carries_every_bridge_and_keeps_failed_ones_failed(started: Sw) -> None:
    sw = started
    sw.vsctl(
        "add-br",
        BR0,
        "--",
        "set",
        "bridge",
        BR0,
        "datapath_type=dummy",
        "--",
        "add-port",
        BR0,
        "p1",
        "--",
        "add-port",
        BR0,
        "p2",
    )
    sw.vsctl(
        "add-br",
        BR1,
        "--",
        "set",
        "bridge",
        BR1,
        "datapath_type=dummy",
        "--",
        "add-port",
        BR1,
        "q1",
    )
    sw.vsctl(
        "add-br",
        BRX,
        "--",
        "set",
        "bridge",
        BRX,
        "datapath_type=warp",
        "--",
        "add-port",
        BRX,
        "x1",
        check=False,
    )
    before = json.loads(sw.appctl("state/dump").stdout)
    assert before["summary"]["bridges"] == 2
    error = sw.get("Interface", "x1", "error")
    assert "unknown datapath type" in error
    r = upgrade(sw)
    assert r.returncode == 0, r.stdout + r.stderr
    owner_is(sw, json.loads(r.stdout)["new_pid"])
    after = json.loads(sw.appctl("state/dump").stdout)
    assert after["digest"] == before["digest"] and after["summary"] == before["summary"]
    assert sw.get("Interface", "x1", "error") == error
    assert (sw.ofport("p1"), sw.ofport("p2"), sw.ofport("q1")) == (1, 2, 1)


@pytest.mark.parametrize("fault", [None, "flush-after-adopt"])
def test_learned_state_and_counters_cross_an_upgrade_and_a_flush_is_seen(
    started: Sw, fault: str | None
) -> None:
    """A dummy bridge that has learned a MAC, installed a megaflow and counted a rule
    hands all of it to the new process: the state digest, the MAC entry with its age,
    the megaflow and the rule's counter are the same after (the switch's clock stopped
    and warped 3 s: a relearned entry would be younger). With ``flush-after-adopt`` armed in the new process (it throws away what
    it adopted) the same checks must report it."""
    sw = started
    br = unique_name("ubl")
    sw.vsctl(
        "add-br", br, "--", "set", "Bridge", br, "datapath_type=dummy",
        "--", "add-port", br, "p1", "--", "set", "Interface", "p1", "type=dummy",
        "ofport_request=1",
        "--", "add-port", br, "p2", "--", "set", "Interface", "p2", "type=dummy",
        "ofport_request=2",
    )  # fmt: skip
    mgmt = f"unix:{sw.rundir.path}/{br}.mgmt"
    run(["ovs-ofctl", "add-flow", mgmt, "priority=5,udp,actions=NORMAL"])
    sw.appctl("time/stop")
    for _ in range(3):
        sw.appctl("netdev-dummy/receive", "p1", FLOW_P1)
    sw.appctl("time/warp", "3000")

    def seen() -> tuple[str, str, str, str]:
        rules = run(["ovs-ofctl", "dump-flows", mgmt]).stdout
        counted = re.findall(r"n_packets=(\d+).*priority=5,udp", rules)
        return (
            json.loads(sw.appctl("state/dump").stdout)["digest"],
            sw.appctl("fdb/show", br).stdout,
            sw.appctl("dpctl/dump-flows", br).stdout,
            ",".join(counted),
        )

    before = seen()
    assert "00:00:00:00:00:01" in before[1] and before[2].strip() and before[3] == "3", before
    r = upgrade(sw, env={"HITLESS_FAULT": fault} if fault else None)
    assert r.returncode == 0, r.stderr + r.stdout
    after = seen()
    problems = [
        f"{what}: {b!r} -> {a!r}"
        for what, b, a in zip(("digest", "fdb", "megaflows", "rule counter"), before, after,
                              strict=True)
        if a != b
    ]  # fmt: skip
    if fault is None:
        assert not problems, "\n".join(problems)
    else:
        assert {p.split(":")[0] for p in problems} >= {"fdb", "megaflows", "rule counter"}, problems


FLOW_P1 = "udp,in_port=1,dl_src=00:00:00:00:00:01,dl_dst=00:00:00:00:00:02,nw_ttl=64,udp_dst=53"
