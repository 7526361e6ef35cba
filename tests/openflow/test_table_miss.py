"""A miss without a table-miss rule, against real Open vSwitch: the packet-ins an
``ovs-ofctl monitor`` of each version gets for the default and for each 1.1/1.2 table
config (``mod-table ... controller|continue|drop``).

Open vSwitch 3.1 (measured here): a miss in a table set to ``continue`` goes on in the
next table; ``drop`` drops; otherwise (the default, ``controller``, ``continue`` past the
last table) a packet-in with reason no_match goes to the sessions of 1.0-1.2 only. Each
switch gets a secure-mode bridge, a rule that sends an ARP frame to the controller (the
marker: once its packet-in is printed, everything sent before it was), and a rule in
table 1 that sends whatever reaches it to the controller (``via action``, table 1)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair
from tests.wait import wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vswitchd") is None or shutil.which("ovs-ofctl") is None,
    reason="needs Open vSwitch (ovs-vswitchd, ovs-ofctl)",
)

UDP = "ffffffffffff0000000000010800450000140000000040110000c0a80001c0a80002"  # 34 bytes
ARP = ("ffffffffffff000000000001080600010800060400010000000000010a000001"
       "0000000000000a000002")  # 42 bytes  # fmt: skip
MONITORS = {"of10": ("-P", "standard"), "of11": ("-O", "OpenFlow11"), "of13": ("-O", "OpenFlow13")}


@pytest.fixture(scope="module")
def pair() -> Iterator[SwitchPair]:
    p = SwitchPair(f"tm{unique_suffix()}"[:15])
    try:
        p.vsctl("set-fail-mode", p.bridge, "secure")
        yield p
    finally:
        p.close()


def _ctl(sw: object) -> str:
    rundir = sw.dir  # type: ignore[attr-defined]
    hl = rundir / "hitless-vswitchd.ctl"
    return str(hl if hl.exists() else next(rundir.glob("ovs-vswitchd*.ctl")))


def _packet_ins(pair: SwitchPair, sw: object, monitor: tuple[str, ...]) -> list[str]:
    """The PACKET_IN lines a monitor prints for the UDP frame, then the ARP marker, sent
    into the bridge's LOCAL port."""
    env = sw.env  # type: ignore[attr-defined]
    mon = subprocess.Popen(["ovs-ofctl", *monitor, "monitor", pair.bridge, "65534"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                           text=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(mon.stdout.readline, "")),  # type: ignore[union-attr]
                              daemon=True)  # fmt: skip
    reader.start()
    try:
        ctl = sw.dir / f"ovs-ofctl.{mon.pid}.ctl"  # type: ignore[attr-defined]
        wait_for(lambda: ctl.exists() or mon.poll() is not None, "the monitor's control socket")
        # its set-config (what makes it a listener) is in once the barrier's reply is
        subprocess.run(["ovs-appctl", "-t", str(ctl), "ofctl/barrier"], env=env, check=True,
                       capture_output=True, timeout=30)  # fmt: skip
        subprocess.run(["ovs-appctl", "-t", _ctl(sw), "netdev-dummy/receive", pair.bridge, UDP],
                       env=env, check=True, capture_output=True, timeout=30)  # fmt: skip
        subprocess.run(["ovs-appctl", "-t", _ctl(sw), "netdev-dummy/receive", pair.bridge, ARP],
                       env=env, check=True, capture_output=True, timeout=30)  # fmt: skip
        wait_for(lambda: any("total_len=42" in ln for ln in list(lines)), "the marker's packet-in")
    finally:
        os.kill(mon.pid, signal.SIGTERM)
        mon.wait(timeout=30)
        reader.join(timeout=30)
    return [ln.strip() for ln in lines if "PACKET_IN" in ln and "total_len=42" not in ln]


@pytest.mark.parametrize("monitor", sorted(MONITORS))
@pytest.mark.parametrize("config", ["default", "controller", "continue", "drop"])
def test_a_miss_without_a_table_miss_rule_as_open_vswitch(
    pair: SwitchPair, config: str, monitor: str
) -> None:
    if config == "default":  # tables no table mod ever set: a switch of its own
        fresh = SwitchPair(f"td{unique_suffix()}"[:15])
        try:
            fresh.vsctl("set-fail-mode", fresh.bridge, "secure")
            _compare(fresh, config, monitor)
        finally:
            fresh.close()
    else:
        _compare(pair, config, monitor)


def _compare(pair: SwitchPair, config: str, monitor: str) -> None:
    got = []
    for sw in (pair.ovs, pair.hl):
        env = sw.env  # type: ignore[union-attr]

        def of(*args: str, env: dict[str, str] = env) -> None:
            subprocess.run(["ovs-ofctl", *args], env=env, check=True, capture_output=True,
                           timeout=30)  # fmt: skip

        of("del-flows", pair.bridge)
        if config != "default":
            of("-O", "OpenFlow11", "mod-table", pair.bridge, "all", "controller")
            of("-O", "OpenFlow11", "mod-table", pair.bridge, "0", config)
        of("add-flow", pair.bridge, "priority=100,arp,actions=controller")
        of("add-flow", pair.bridge, "table=1,actions=controller:200")
        got.append(_packet_ins(pair, sw, MONITORS[monitor]))
    ovs, hl = got
    assert hl == ovs, f"Open vSwitch: {ovs}\nhitless: {hl}"
    # what Open vSwitch did, so the comparison says something
    expect = {"drop": 0, "continue": 1}.get(config, 0 if monitor == "of13" else 1)
    assert len(ovs) == expect, ovs
    if config == "continue":
        assert "via action" in ovs[0]
    elif expect:
        assert "via no_match" in ovs[0]
