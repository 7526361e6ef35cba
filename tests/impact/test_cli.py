"""``hitless impact`` end to end: its help, a real upgrade run (JSON with no loss, a
PNG, the MAC table carried over), an upgrade with OpenFlow rules (kept, their traffic
not lost, their counters still counting), Open vSwitch's plain restart losing traffic
and its rules, and nothing left behind, also after Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hitless.cli import build_parser
from hitless.impact.topology import leftovers
from tests.wait import wait_for

HITLESS = [str(Path(sys.executable).parent / "hitless")]
SHORT = ["--duration", "3", "--at", "1", "--hosts", "3"]


# How long a run may take before the test cuts it short: a safety net inside the test's
# own pytest-timeout (300 s), leaving the minute its Ctrl-C path may take. A fixed 120 s
# was shorter than the product needs at load ~33: a 3 s upgrade run with 3 hosts had
# finished its work (JSON and plot written: the plot alone takes ~25 s at load) when
# its 120 s ran out.
RUN_LIMIT = 230.0


def impact(
    *args: str, timeout: float = RUN_LIMIT, on_output: Callable[[str], None] | None = None
) -> subprocess.CompletedProcess[str]:
    """``hitless impact ARGS``. A run cut short (its timeout, or the test's from
    pytest-timeout) gets SIGTERM, its Ctrl-C path, and a minute to take down its
    switches and namespaces, not SIGKILL: that left an Open vSwitch, its ovsdb-server
    and three namespaces behind (seen after a pytest-timeout at load 27).
    ``on_output``: called with its stdout however it ended."""
    p = subprocess.Popen(
        [*HITLESS, "impact", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:
        p.send_signal(signal.SIGTERM)
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if on_output is not None:
            on_output(out)
        raise
    if on_output is not None:
        on_output(out)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def impact_parser():  # type: ignore[no-untyped-def]
    ap = build_parser()
    sub = next(a for a in ap._actions if a.dest == "command")
    return sub.choices["impact"]  # type: ignore[attr-defined]


def test_help_explains_every_knob() -> None:
    r = impact("--help")
    assert r.returncode == 0, r.stderr
    knobs = [a for a in impact_parser()._actions if a.option_strings and a.dest != "help"]
    assert len(knobs) >= 16
    for a in knobs:
        assert a.help and len(a.help) > 20, f"{a.option_strings} has no real help"
        assert a.option_strings[0] in r.stdout
    for word in ("--switch", "--ops", "--hosts", "--duration", "--at", "--udp-pps",
                 "--connect-interval", "--macs", "--rules", "--classes", "--json", "--plot",
                 "--blips", "--demo", "upgrade", "downgrade", "cold", "flow-restore", "kill9",
                 "OpenFlow", "openflow", "dump-aggregate", "patch ports", "controller",
                 "set-controller"):  # fmt: skip
        assert word in r.stdout, word


def test_bad_rules_and_classes_are_usage_errors() -> None:
    r = impact("--rules", "-1")
    assert r.returncode == 2 and "must be 0 or more" in r.stderr
    r = impact("--classes", "udp,openflw")
    assert r.returncode == 2 and "unknown classes ['openflw']" in r.stdout


def test_unknown_operation_is_a_usage_error() -> None:
    r = impact("--ops", "reboot")
    assert r.returncode == 2 and "unknown operations" in r.stdout


NAMES = re.compile(r"run: suffix ([0-9a-f]+), rundir (/tmp/hli-[\w-]+)")


class OwnRuns:
    """The impact runs of one test, and what they created: each run prints its
    topology's suffix and its switch's run directory (``run: suffix S, rundir D``).
    Teardown checks that exactly these are gone, whatever else runs on the machine."""

    def __init__(self) -> None:
        self.outputs: list[str] = []

    def impact(self, *args: str, timeout: float = RUN_LIMIT) -> subprocess.CompletedProcess[str]:
        return impact(*args, timeout=timeout, on_output=self.outputs.append)

    def names(self) -> list[tuple[str, str]]:
        return [m.groups() for out in self.outputs for m in NAMES.finditer(out)]

    def left(self) -> list[str]:
        left = []
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        for suffix, rundir in self.names():
            left += leftovers(suffix)
            left += [f"pid {ln.split()[0]}" for ln in ps.splitlines() if rundir in ln]
            if Path(rundir).exists():
                left.append(rundir)
        return left


@pytest.fixture
def nothing_left() -> Iterator[OwnRuns]:
    runs = OwnRuns()
    yield runs
    assert runs.names(), "the run printed no suffix/rundir: nothing could be checked"
    assert not runs.left(), f"left behind: {runs.left()}"


@pytest.mark.netns
def test_upgrade_run_loses_nothing_and_writes_json_and_plot(
    tmp_path: Path, nothing_left: OwnRuns
) -> None:
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    r = nothing_left.impact("--switch", "hitless", "--ops", "upgrade", *SHORT, "--macs", "300",
               "--json", str(out), "--plot", str(png))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    assert res["operation"] == "hitless upgrade"
    kinds = {c["kind"] for c in res["classes"]}
    assert kinds == {
        "udp", "openflow", "controller", "tcp-stream", "tcp-connect", "arp", "nd", "broadcast"
    }  # fmt: skip
    for c in res["classes"]:
        assert c["sent"] > 0, c
        assert c["lost"] == 0, c
    assert next(c for c in res["classes"] if c["kind"] == "tcp-stream")["outcome"] == "survived"
    assert "MAC table (fdb/show): 300 of 300 loaded MACs before, 300 after" in res["notes"]
    # the shared handoff check ran on this run (its verdict depends on the machine's load
    # at this short duration; tests/handoff judge it with longer traffic)
    assert any(n.startswith("handoff claim ") for n in res["notes"]), res["notes"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "hitless upgrade" in r.stdout
    # the daemon's wait for a CPU, sampled from its pidfile: old and new process both
    waits = res["cpu_waits"]
    assert waits and all(a < b and w >= 0 for a, b, w in waits), waits
    assert waits[0][0] < 0 < waits[-1][1]  # before and after the operation's start


@pytest.mark.netns
def test_upgrade_keeps_the_controller_session(tmp_path: Path, nothing_left: OwnRuns) -> None:
    """The controller's OpenFlow session is handed to the new process: the same TCP
    connection answers every echo request, before, during and after the upgrade."""
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "hitless", "--ops", "upgrade", "--duration", "3", "--at", "1",
               "--hosts", "2", "--classes", "controller,udp", "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    (ctl,) = [c for c in res["classes"] if c["kind"] == "controller"]
    assert ctl["outcome"] == "survived", ctl  # 0 disconnects
    assert ctl["failures"] == {} and ctl["lost"] == 0, ctl
    assert ctl["sent"] > 50 and ctl["received"] == ctl["sent"], ctl
    # a service controller changes nothing for the traffic (NORMAL stays)
    for c in res["classes"]:
        assert c["sent"] > 0 and c["lost"] == 0, c
    assert "connected throughout" in r.stdout


@pytest.mark.netns
def test_upgrade_keeps_openflow_rules_their_traffic_and_counters(
    tmp_path: Path, nothing_left: OwnRuns
) -> None:
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "hitless", "--ops", "upgrade", "--duration", "3", "--at", "1",
               "--hosts", "2", "--classes", "udp,openflow", "--rules", "500",
               "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    assert res["settings"]["rules"] == 500
    of = [c for c in res["classes"] if c["kind"] == "openflow"]
    assert [c["name"] for c in of] == ["openflow a→b", "openflow b→a"]
    for c in of:
        assert c["sent"] > 0 and c["received"] == c["sent"] and c["lost"] == 0, c
    assert (
        "OpenFlow rules (dump-aggregate): 502 of 502 installed before, 502 of 502 kept after "
        "(500 from --rules, 2 for the openflow class)"
    ) in res["notes"]
    counters = res["settings"]["openflow"]["counters"]
    assert set(counters) == {"openflow a→b", "openflow b→a"}
    for name, c in counters.items():
        # the rule carried the class before the operation (it matches nothing else) ...
        assert c["before"] > 0, (name, c)
        # ... and its counter went on from there: neither reset nor gone
        assert not c["went_down"] and c["after"] >= c["before"], (name, c)
        assert c["end"] >= c["after"], (name, c)
        assert any(n.startswith(f"{name} rule counter") and "kept counting" in n
                   for n in res["notes"]), res["notes"]  # fmt: skip


@pytest.mark.netns
def test_ovs_plain_restart_loses_traffic(tmp_path: Path, nothing_left: OwnRuns) -> None:
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "ovs", "--ops", "cold", *SHORT, "--classes", "udp,openflow,tcp-stream",
               "--macs", "200", "--rules", "100", "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    assert res["operation"] == "OVS restart"
    udp = [c for c in res["classes"] if c["kind"] == "udp"]
    assert len(udp) == 2 and all(c["lost"] > 0 for c in udp), udp
    # the restarted ovs-vswitchd starts with an empty MAC table and no OpenFlow rules
    assert "MAC table (fdb/show): 200 of 200 loaded MACs before, 0 after" in res["notes"]
    assert (
        "OpenFlow rules (dump-aggregate): 102 of 102 installed before, 0 of 102 kept after "
        "(100 from --rules, 2 for the openflow class)"
    ) in res["notes"]
    counters = res["settings"]["openflow"]["counters"]
    assert all(c["before"] > 0 and c["after"] is None and c["went_down"]
               for c in counters.values()), counters  # fmt: skip
    assert res["cpu_waits"], "ovs-vswitchd's wait for a CPU was not sampled"


@pytest.mark.netns
def test_ctrl_c_removes_everything(nothing_left: OwnRuns) -> None:
    proc = subprocess.Popen(
        [*HITLESS, "impact", "--switch", "hitless", "--ops", "cold", "--duration", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []

    def named() -> re.Match[str] | None:
        assert proc.stdout is not None and proc.poll() is None, "".join(lines)
        lines.append(proc.stdout.readline())
        return NAMES.search(lines[-1])

    try:
        # Safety nets for a loaded machine (at load ~40 the switch and the agents took
        # over 30 s to come up), not measurements.
        suffix, rundir = wait_for(named, "the run's names", timeout=120).groups()
        ns = next(n for n in leftovers(suffix) if "-sw-" not in n)

        def running() -> bool:
            agents = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            return bool(agents.stdout.split()) and (Path(rundir) / "hitless-vswitchd.pid").exists()

        wait_for(running, "the switch and the traffic agents to run", timeout=120)
    finally:
        # Interrupted here also when a wait above failed: a run left going kept its
        # switch and namespaces past the test (seen at load ~40).
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        nothing_left.outputs.append("".join(lines) + out)
    assert proc.returncode == 130, out
    assert "interrupted" in out


@pytest.mark.netns
def test_upgrade_measured_on_an_ovn_shaped_pipeline(tmp_path: Path, nothing_left: OwnRuns) -> None:
    """--rules-shape ovn: every host's traffic goes through the 13-table OVN-shaped
    logical switch (registers, conjunction ACL, learned MAC table) across the upgrade.
    Three hosts: the ARP probe runs from the third one. With two it ran from host a and
    its ``ip neigh flush`` raced a→b datagrams (1 of 3,000 lost in 2 of ~14 runs; seen
    in 1 of 6 runs: the lost one was sent 3.8 ms before the probe's flush returned, its
    neighbours arrived in 1-2 ms, mid pre-copy, 8 s before the freeze; as run.py notes,
    a datagram that meets its neighbour entry flushed can be dropped by the kernel)."""
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "hitless", "--ops", "upgrade", "--duration", "3", "--at", "1",
               "--hosts", "3", "--classes", "udp,tcp-connect,arp", "--rules-shape", "ovn",
               "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    for c in res["classes"]:
        assert c["sent"] > 0 and c["lost"] == 0, c
    assert (
        "OpenFlow rules (dump-aggregate): 46 of 46 installed before, 46 of 46 kept after "
        "(46 of the OVN-shaped pipeline)"
    ) in res["notes"], res["notes"]
    r = impact("--rules-shape", "ovn", "--bridges", "2")
    assert r.returncode != 0 and "one bridge" in r.stdout + r.stderr


@pytest.mark.netns
def test_after_keeps_the_traffic_going_past_a_long_operation(
    tmp_path: Path, nothing_left: OwnRuns
) -> None:
    """--after S: the senders go on until S seconds after the operation ended, however
    long it took (1 s of traffic planned; the upgrade alone takes longer than that)."""
    out = tmp_path / "r.json"
    r = nothing_left.impact("--switch", "hitless", "--ops", "upgrade", "--hosts", "2",
                            "--classes", "udp", "--duration", "1", "--at", "0.5",
                            "--after", "2", "--json", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    (res,) = json.loads(out.read_text())["results"]
    end = max(p["end"] for p in res["window"]["phases"])
    assert end > 0.5, res["window"]  # the operation outlasted the planned traffic
    for c in res["classes"]:
        assert c["lost"] == 0, c
        assert max(c["arrivals"]) > end + 1.5, (c["name"], end, max(c["arrivals"]))
