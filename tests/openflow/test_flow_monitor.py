"""``ovs-ofctl monitor BR watch:`` against real Open vSwitch and against hitless.

The same monitor runs against both switches in every version (NXST_FLOW_MONITOR in
1.0-1.2, ONF's ONFST_FLOW_MONITOR in 1.3, OFPMP_FLOW_MONITOR in 1.4/1.5): the initial
reply, the updates for rules another connection adds, modifies and deletes, and for a
change the monitoring connection makes itself (``ovs-appctl -t <monitor> ofctl/send``):
in full when the monitor asked for its own changes (the default), one abbreviated
update naming the request's xid with ``!own``. The monitor's own barrier
(``ofctl/barrier``) orders the end of each run, so nothing is timed.
"""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.openflow import ofp10
from hitless.openflow.actions import ApplyActions, Output
from hitless.openflow.match import Match, field
from hitless.openflow.messages import FlowMod
from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair, normalize
from tests.wait import wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vswitchd") is None or shutil.which("ovs-ofctl") is None,
    reason="needs Open vSwitch (ovs-vswitchd, ovs-ofctl)",
)

VERSIONS = {"of10": 1, "of11": 2, "of12": 3, "of13": 4, "of14": 5, "of15": 6}


@pytest.fixture(scope="module")
def switches() -> Iterator[SwitchPair]:
    pair = SwitchPair(f"fm{unique_suffix()}"[:15])
    try:
        yield pair
    finally:
        pair.close()


def _own_flow_mod(version: int) -> str:
    """A flow_mod (xid 0x77: add priority=9,tcp,actions=output:2) in ``version``, as hex
    for ``ofctl/send``."""
    fm = FlowMod(
        xid=0x77,
        priority=9,
        match=Match((field("eth_type", 0x800), field("ip_proto", 6))),
        instructions=(ApplyActions((Output(2),)),),
    )
    return (ofp10.encode(fm) if version == 1 else fm.encode(version)).hex()


def _monitor(pair: SwitchPair, sw: object, flags: tuple[str, ...], watch: str,
             steps: list[tuple[str, ...]]) -> str:  # fmt: skip
    """What ``ovs-ofctl monitor`` printed while ``steps`` ran (``("own", hex)``: sent by
    the monitor itself; anything else: an ``ovs-ofctl`` command of its own)."""
    env = sw.env  # type: ignore[attr-defined]
    rundir = sw.dir  # type: ignore[attr-defined]
    argv = ["ovs-ofctl", *flags, "monitor", pair.bridge, *([watch] if watch else [])]
    mon = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                           text=True)  # fmt: skip
    try:
        ctl = rundir / f"ovs-ofctl.{mon.pid}.ctl"
        wait_for(lambda: ctl.exists() or mon.poll() is not None, "the monitor's control socket")
        assert mon.poll() is None, mon.communicate()[0]

        def appctl(*args: str) -> None:
            r = subprocess.run(["ovs-appctl", "-t", str(ctl), *args], env=env,
                               capture_output=True, text=True, timeout=30)  # fmt: skip
            assert r.returncode == 0, r

        appctl("ofctl/barrier")  # the initial reply is in
        for step in steps:
            if step[0] == "own":
                # the updates so far are printed before the monitor prints what it sends
                appctl("ofctl/barrier")
                appctl("ofctl/send", step[1])
            else:
                cmd = ["ovs-ofctl", *flags, *(a.replace("{br}", pair.bridge) for a in step)]
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
                assert r.returncode == 0, r
        appctl("ofctl/barrier")  # every update is in
    finally:
        os.kill(mon.pid, signal.SIGTERM)
        out = mon.communicate(timeout=30)[0]
    return "\n".join(ln for ln in out.splitlines() if "fatal_signal" not in ln) + "\n"


def _reset(pair: SwitchPair) -> None:
    for args in (("del-flows", "{br}"), ("add-flow", "{br}", "priority=0,actions=NORMAL"),
                 ("add-flow", "{br}", "priority=5,ip,actions=drop"),
                 ("add-flow", "{br}", "table=1,priority=6,tcp,tp_dst=80,actions=output:1")):  # fmt: skip
        ovs, hl = pair.ofctl(*args)
        assert ovs.rc == 0 and hl.rc == 0, (args, ovs, hl)


SCENARIOS: dict[str, tuple[str, list[tuple[str, ...]]]] = {
    # everything, own changes in full
    "all": ("watch:", [
        ("add-flow", "{br}", "priority=7,udp,actions=output:1"),
        ("mod-flows", "{br}", "udp,actions=output:2"),
        ("mod-flows", "{br}", "udp,actions=output:2"),  # no change: no update
        ("del-flows", "{br}", "udp"),
        ("own", "")]),
    # own changes abbreviated; a match and no initial dump
    "abbrev": ("watch:!own,!initial,tcp", [
        ("add-flow", "{br}", "table=1,priority=7,udp,actions=output:1"),
        ("add-flow", "{br}", "table=1,priority=8,tcp,tp_dst=22,actions=output:2"),
        ("add-flow", "{br}", "priority=8,tcp,actions=output:2"),
        ("own", ""),
        ("del-flows", "{br}", "table=1,tcp")]),
    # one table, without actions, only deletions
    "deletes": ("watch:!actions,!add,!modify,table=0", [
        ("add-flow", "{br}", "priority=7,udp,actions=output:1"),
        ("mod-flows", "{br}", "udp,actions=output:2"),
        ("del-flows", "{br}", "udp"),
        ("del-flows", "{br}", "table=1")]),
}  # fmt: skip


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_monitor_prints_what_open_vswitch_prints(
    switches: SwitchPair, scenario: str, version: str
) -> None:
    v = VERSIONS[version]
    flags = () if v == 1 else ("-O", f"OpenFlow1{v - 1}")
    watch, steps = SCENARIOS[scenario]
    steps = [("own", _own_flow_mod(v)) if s[0] == "own" else s for s in steps]
    out = []
    for sw in (switches.ovs, switches.hl):
        _reset(switches)
        out.append(normalize(_monitor(switches, sw, flags, watch, steps)))
    a, b = out
    diff = "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "ovs", "hitless"))
    assert a == b, f"ovs-ofctl {' '.join(flags)} monitor {watch}:\n{diff}"
    # the run saw updates (a monitor that printed nothing would compare equal too)
    assert "event=" in b
    if scenario == "abbrev":
        assert "event=ABBREV xid=0x77" in b
    if scenario == "all":
        assert "event=MODIFIED" in b and "event=DELETED reason=delete" in b


def _set_async_requestforward(version: int) -> str:
    """OFPT_SET_ASYNC (1.4+; before, Open vSwitch's NXT_SET_ASYNC_CONFIG2 with the same
    properties) asking for group and meter mod forwarding, as hex."""
    from hitless.openflow.constants import AsyncConfigProp as P
    from hitless.openflow.messages import AsyncConfig, SetAsync
    from hitless.openflow.nxmsg import NxSetAsyncConfig2

    config = AsyncConfig.of({P.REQUESTFORWARD_MASTER: 3, P.REQUESTFORWARD_SLAVE: 3})
    if version < 5:
        return NxSetAsyncConfig2(xid=0x78, config=config).encode(version).hex()
    return SetAsync(xid=0x78, config=config).encode(version).hex()


@pytest.mark.parametrize("version", list(VERSIONS))
def test_requestforward_as_open_vswitch_sends_it(
    switches: SwitchPair, version: str, tmp_path: Path
) -> None:
    """A session that asks for it (SET_ASYNC in 1.4+, NXT_SET_ASYNC_CONFIG2 before;
    REQUESTFORWARD, off by default) gets the group and meter mods other sessions make, as
    OFPT_REQUESTFORWARD in 1.4+, ONF's form in 1.3 and Nicira's in 1.0-1.2 (group mods
    only: meter mods need 1.3), in its own version; the session that made them does not.
    Group mods inside a bundle are forwarded when it commits, in the bundle's order."""
    v = VERSIONS[version]
    bundle = tmp_path / "bundle.txt"
    bundle.write_text("group add group_id=9,type=all,bucket=output:1\n"
                      "flow add priority=6,ip,actions=group:9\n"
                      "group mod group_id=9,type=all,bucket=output:2\n")  # fmt: skip
    flags = () if v == 1 else ("-O", f"OpenFlow1{v - 1}")
    steps = [
        ("-O", "OpenFlow13", "add-meter", "{br}", "meter=2,pktps,band=type=drop,rate=5"),  # not asked yet
        ("own", _set_async_requestforward(VERSIONS[version])),
        ("-O", "OpenFlow14", "add-group", "{br}", "group_id=5,type=all,bucket=output:1"),
        ("-O", "OpenFlow15", "mod-group", "{br}", "group_id=5,type=all,bucket=output:2"),
        ("-O", "OpenFlow13", "add-meter", "{br}", "meter=3,pktps,band=type=drop,rate=5"),
        ("-O", "OpenFlow14", "bundle", "{br}", str(bundle)),
        ("-O", "OpenFlow14", "del-groups", "{br}"),
        ("-O", "OpenFlow13", "del-meters", "{br}"),
    ]  # fmt: skip
    out = []
    for sw in (switches.ovs, switches.hl):
        _reset(switches)
        out.append(normalize(_monitor(switches, sw, flags, "", steps)))
    a, b = out
    diff = "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "ovs", "hitless"))
    assert a == b, f"ovs-ofctl {' '.join(flags)} monitor:\n{diff}"
    assert b.count("_REQUESTFORWARD (") == (7 if v >= 4 else 5), b
    assert "ADD group_id=9" in b and "MOD group_id=9" in b
    assert "meter=2" not in b


@pytest.mark.parametrize("version", ["of10", "of14"])
def test_a_monitor_that_does_not_read_is_paused_then_refreshed(
    switches: SwitchPair, version: str, tmp_path: object
) -> None:
    """``ofctl/block`` stops the monitor reading while another connection adds 3,000
    rules (about 1.8 MB of updates): both switches pause it (NXT_FLOW_MONITOR_PAUSED in
    1.0, a PAUSED update in 1.4), and once it reads again send what it missed and
    RESUMED, so every rule is reported exactly once."""
    import re
    from pathlib import Path

    d = Path(str(tmp_path))
    n = 3000
    (d / "many.txt").write_text("".join(
        f"priority=9,udp,tp_dst={i},actions=note:{'ab' * 200},output:1\n" for i in range(n)))  # fmt: skip
    flags = () if version == "of10" else ("-O", "OpenFlow14")
    paused, resumed = (("NXT_FLOW_MONITOR_PAUSED", "NXT_FLOW_MONITOR_RESUMED") if version == "of10"
                       else ("event=PAUSED", "event=RESUMED"))  # fmt: skip
    for sw in (switches.ovs, switches.hl):
        _reset(switches)
        env = sw.env  # type: ignore[attr-defined]
        out_path = d / "monitor.out"
        with out_path.open("w") as out:  # a file, not a pipe: nobody reads a pipe meanwhile
            mon = subprocess.Popen(["stdbuf", "-oL", "ovs-ofctl", *flags, "monitor",  # line by line
                                    switches.bridge, "watch:!initial"],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        ctl = sw.dir / f"ovs-ofctl.{mon.pid}.ctl"  # type: ignore[attr-defined]

        def appctl(*args: str, ctl: Path = ctl, env: dict[str, str] = env) -> None:
            r = subprocess.run(["ovs-appctl", "--timeout=30", "-t", str(ctl), *args], env=env,
                               capture_output=True, text=True, timeout=40)  # fmt: skip
            assert r.returncode == 0, r

        try:
            wait_for(lambda ctl=ctl, mon=mon: ctl.exists() or mon.poll() is not None,
                     "the monitor's socket")  # fmt: skip
            appctl("ofctl/barrier")
            appctl("ofctl/block")
            add = subprocess.run(["ovs-ofctl", *flags, "add-flows", switches.bridge,
                                  str(d / "many.txt")], env=env, capture_output=True, text=True,
                                 timeout=120)  # fmt: skip
            assert add.returncode == 0, add
            appctl("ofctl/unblock")
            appctl("ofctl/barrier")
            # the refresh and RESUMED follow once the backlog is written: they may come
            # after the barrier's reply (on both switches)
            wait_for(lambda p=out_path, r=resumed: r in p.read_text(), "RESUMED")
        finally:
            os.kill(mon.pid, signal.SIGTERM)
            mon.wait(timeout=30)
        text = out_path.read_text()
        assert paused in text and resumed in text, text[-2000:]
        assert text.index(paused) < text.index(resumed)
        assert text.count("event=ADDED") == n, text.count("event=ADDED")
        assert len(set(re.findall(r"tp_dst=(\d+)", text))) == n


@pytest.mark.parametrize("fmt", ["standard", "nxt_packet_in", "nxt_packet_in2"])
@pytest.mark.parametrize("version", ["of10", "of13"])
def test_monitor_packet_in_format(switches: SwitchPair, version: str, fmt: str) -> None:
    """``ovs-ofctl -P FORMAT monitor BR 65535`` (NXT_SET_PACKET_IN_FORMAT, also over 1.3,
    where hitless once answered BAD_VENDOR): a packet-out to the controller from another
    connection arrives as the packet-in form asked for, printed the same by both."""
    v = VERSIONS[version]
    flags = ("-P", fmt) if v == 1 else ("-O", f"OpenFlow1{v - 1}", "-P", fmt)
    pkt = "ffffffffffff0000000000010800450000140000000040110000c0a80001c0a80002"
    steps = [("packet-out", "{br}", "LOCAL", "controller", pkt)]
    out = []
    for sw in (switches.ovs, switches.hl):
        _reset(switches)
        out.append(normalize(_monitor(switches, sw, flags, "65535", steps)))
    a, b = out
    diff = "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), "ovs", "hitless"))
    assert a == b, f"ovs-ofctl {' '.join(flags)} monitor:\n{diff}"
    want = {"standard": "OFPT_PACKET_IN", "nxt_packet_in": "NXT_PACKET_IN ",
            "nxt_packet_in2": "NXT_PACKET_IN2"}[fmt]  # fmt: skip
    assert want in b and "OFPT_ERROR" not in b, b
