"""``controller(pause)`` side by side with real Open vSwitch 3.1 (netdev datapath, its own
namespace and run directory), with a real controller resuming every continuation: stock
``ovs-ofctl monitor TARGET resume`` (NXT_PACKET_IN2 in, NXT_RESUME back). The same
table and group are loaded with stock ``ovs-ofctl`` on both, the same raw frames are sent
from host a, and what hosts b and c receive is compared byte for byte, with the rule
counters.

Covered: a pause after an earlier table wrote the action set (after the resume: the
paused rule's rest, then the action set), a pause inside a resubmit (the paused rule's
rest, then the outer level's, with the registers written before), and a pause inside
``clone()`` (the copy pauses; Open vSwitch 3.1 runs nothing after the clone).

Not compared here, seen on Open vSwitch 3.1: a pause followed by write_actions in the
same rule makes it reject its own continuation (OFPT_ERROR OFPBAC_BAD_LEN to the
NXT_RESUME: the packet is lost; hitless resumes it), and a group bucket's actions are an
action set there, which drops a controller action (no pause at all)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.test_mpls_differential import _SEND, MARK, _Capture, _ipv4
from tests.daemon.test_nx_flows import NET, _counters, _hosts, _ovs, _ovs_bridge, _settled
from tests.daemon.test_openflow import make_bridge, ofctl
from tests.netns import Host, Topology
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns


def table(a: int, b: int, c: int) -> list[str]:
    return [
        f"table=0,priority=10,in_port={a},udp,tp_dst=5001,actions=load:1->NXM_NX_REG1[],"
        f"write_actions(output:{c}),goto_table:1",
        f"table=1,priority=10,ip,reg1=1,actions=controller(pause),dec_ttl,output:{c}",
        f"table=0,priority=10,in_port={a},udp,tp_dst=5002,actions=clone("
        f"mod_dl_dst:02:00:00:00:00:42,controller(pause),output:{b}),output:{c}",
        f"table=0,priority=10,in_port={a},udp,tp_dst=5004,actions=load:2->NXM_NX_REG1[],"
        f"resubmit(,1),output:{b}",
        f"table=1,priority=10,ip,reg1=2,actions=controller(pause),dec_ttl,output:{c}",
        f"table=0,priority=20,dl_type={MARK:#06x},actions=output:{b},output:{c}",
    ]


def frames(src: bytes) -> list[bytes]:
    eth = b"\x02\x00\x00\x00\x00\x99" + src + b"\x08\x00"
    out = []
    for port in (5001, 5002, 5004):
        ip = _ipv4(f"{NET}.2", ttl=30)
        out.append(eth + ip[:22] + port.to_bytes(2, "big") + ip[24:])  # UDP sum 0: unchanged
    return out


N_SENT = 3


class _Resumer:
    """``ovs-ofctl monitor TARGET resume``: answers every continuation with NXT_RESUME
    (it prints each one it sends; its output is read here line by line)."""

    def __init__(self, target: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            ["ovs-ofctl", "-O", "OpenFlow13", "monitor", target, "resume"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def resumes(self) -> int:
        return sum("NXT_RESUME" in line for line in list(self.lines))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)


def _run(
    hosts: tuple[Host, Host, Host],
    dump: Callable[[], str],
    ofctl_cmd: Callable[..., str],
    target: str,
    env: dict[str, str],
) -> tuple[dict[str, list[str]], dict[str, int], int]:
    """With the resuming monitor attached (proved by a probe: a packet-out that pauses
    at once, until the monitor resumed one), send the frames from a; once table 0
    counted them and all three were resumed, the marker; what b and c got, the
    counters, and how many NXT_RESUME the monitor sent for the frames."""
    a, b, c = hosts
    mon = _Resumer(target, env)
    try:
        probe = "ffffffffffff020000007410" + "88b5" + "00" * 46

        def ready() -> bool:  # one probe at a time, so no late one is counted after
            before = mon.resumes()
            ofctl_cmd("packet-out", "LOCAL", "controller(pause)", probe)
            try:
                wait_for(lambda: mon.resumes() > before, "the probe resumed", timeout=5)
            except AssertionError:
                return False
            return True

        wait_for(ready, "the monitor to resume a probe")
        base = mon.resumes()
        caps = {"b": _Capture(b, a.mac), "c": _Capture(c, a.mac)}
        for i, f in enumerate(frames(a.mac_bytes)):  # one at a time: each paused and resumed
            a.run([sys.executable, "-c", _SEND, f.hex()])
            wait_for(lambda i=i: mon.resumes() >= base + i + 1, f"frame {i}'s continuation")  # type: ignore[misc]
        _settled(dump, N_SENT)
        try:
            wait_for(lambda: mon.resumes() >= base + N_SENT, "the frames' continuations resumed")
        except AssertionError:
            raise AssertionError("".join(mon.lines)) from None
        # the resumed packets counted by the rules they reached (Open vSwitch: later)
        counters = wait_for(lambda: _counters(dump()) if _resumed_counted(dump()) else None,
                            "the resumed packets counted")  # fmt: skip
        mark = b"\xff" * 6 + a.mac_bytes + MARK.to_bytes(2, "big") + bytes(46)
        a.run([sys.executable, "-c", _SEND, mark.hex()])
        got = {name: cap.frames() for name, cap in caps.items()}
        n = mon.resumes() - base
        assert "OFPT_ERROR" not in "".join(mon.lines), "".join(mon.lines)
    finally:
        mon.close()
    return (
        {k: [f.replace(a.mac.replace(":", ""), "<a>") for f in v] for k, v in got.items()},
        counters,
        n,
    )


def _resumed_counted(dump: str) -> bool:
    return any("table=1," in k and v >= 1 for k, v in _counters(dump).items())


def test_pause_in_a_resubmit_a_clone_and_a_bucket_resumes_as_open_vswitch(
    started: Sw, topology: Topology, tmp_path: Path
) -> None:
    hs = _hosts(topology, "q")
    br = make_bridge(started, topology, *hs)
    ports = [started.ofport(h.switch_port) for h in hs]
    flows = tmp_path / "pause.txt"
    flows.write_text("\n".join(table(*ports)) + "\n")
    target = f"unix:{started.rundir.path}/{br}.mgmt"
    env = {**os.environ, "OVS_RUNDIR": str(started.rundir.path)}
    ofctl(started, br, "del-flows")
    ofctl(started, br, "add-flows", str(flows))
    got, ours, our_resumes = _run(
        hs,
        lambda: ofctl(started, br, "dump-flows"),
        lambda *args: ofctl(started, br, *args),
        target,
        env,
    )

    ohs = _hosts(topology, "r")
    with _ovs(topology, ohs) as o:
        obr = _ovs_bridge(o, topology, ohs, ports)
        otarget = f"unix:{o.rundir}/{obr}.mgmt"
        for cmd in (["del-flows", otarget], ["add-flows", otarget, str(flows)]):
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", *cmd], env=o.paths.env,
                           check=True, timeout=60)  # fmt: skip

        def cmd(*args: str) -> str:
            return subprocess.run(
                ["ovs-ofctl", "-O", "OpenFlow13", args[0], otarget, *args[1:]],
                env=o.paths.env, check=True, timeout=60, capture_output=True, text=True,
            ).stdout  # fmt: skip

        want, theirs, their_resumes = _run(
            ohs, lambda: cmd("dump-flows"), cmd, otarget, o.paths.env
        )

    # Open vSwitch's own outcome, as this test expects it (so a broken baseline shows)
    assert their_resumes == N_SENT, their_resumes
    assert len(want["b"]) == 2 and len(want["c"]) == 3, want
    assert our_resumes == their_resumes
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in want.items()}
    assert ours == theirs
