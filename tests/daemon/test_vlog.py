"""Logging as ovs-vswitchd's vlog: vlog/list, vlog/set per module and destination (seen in
the log file), vlog/reopen after a rename, rate limiting, and an upgrade keeps the levels
and the test clock."""

from __future__ import annotations

import logging
import re

from hitless.daemon import vlog
from hitless.daemon.vlog import BURST, Vlog
from tests.switch import Sw
from tests.wait import wait_for


def test_vlog_list_layout_and_set(started: Sw) -> None:
    sw = started
    text = sw.appctl("vlog/list").stdout
    lines = text.splitlines()
    # ovs-vswitchd's header and columns
    assert lines[0] == "                 console    syslog    file"
    assert lines[1] == "                 -------    ------    ------"
    assert "datapath           OFF        OFF       INFO" in lines
    assert {ln.split()[0] for ln in lines[2:]} == set(vlog.MODULES)
    sw.appctl("vlog/set", "datapath:file:dbg")
    sw.appctl("vlog/set", "ofproto:warn")
    text = sw.appctl("vlog/list").stdout
    assert "datapath           OFF        OFF        DBG" in text
    assert "ofproto           WARN       WARN       WARN" in text
    r = sw.appctl("vlog/set", "nosuch:file:dbg", check=False)
    assert r.returncode == 2 and r.stderr.startswith('no destination, level, or module "nosuch"\n')


def test_levels_decide_what_reaches_the_file_and_reopen(started: Sw) -> None:
    sw = started
    sw.appctl("vlog/set", "daemon:file:warn")
    sw.vsctl("add-br", "brq1", "--", "set", "Bridge", "brq1", "datapath_type=dummy")
    sw.appctl("vlog/set", "daemon:file:info")
    sw.vsctl("add-br", "brq2", "--", "set", "Bridge", "brq2", "datapath_type=dummy")
    wait_for(lambda: "bridge brq2: created" in sw.log(), "brq2's creation logged")
    assert "bridge brq1: created" not in sw.log()  # daemon was at warn then
    # logrotate: the file is renamed, vlog/reopen opens a new one
    rotated = sw.rundir.log.with_suffix(".log.1")
    sw.rundir.log.rename(rotated)
    sw.appctl("vlog/reopen")
    sw.vsctl("add-br", "brq3", "--", "set", "Bridge", "brq3", "datapath_type=dummy")
    wait_for(lambda: sw.rundir.log.exists() and "brq3" in sw.log(), "brq3 in the new file")
    assert "brq3" not in rotated.read_text()


def test_upgrade_keeps_log_levels_and_the_test_clock(started: Sw) -> None:
    from tests.daemon.test_testhooks import dummy_bridge, ofctl
    from tests.daemon.test_upgrade import upgrade

    sw = started
    dummy_bridge(sw, pcap=False)
    sw.appctl("vlog/set", "ofproto:file:dbg")
    sw.appctl("time/stop")
    ofctl(sw, "add-flow", "priority=10,in_port=1,idle_timeout=100,actions=output:2")
    sw.appctl("time/warp", "30000")
    assert "duration=30s," in ofctl(sw, "dump-flows")
    old = sw.daemon_pid
    r = upgrade(sw)
    assert r.returncode == 0, r.stderr
    assert sw.daemon_pid != old
    assert "ofproto            OFF        OFF        DBG" in sw.appctl("vlog/list").stdout
    # the clock is still stopped where it was: exactly 30 s, however long the upgrade took
    assert "duration=30s," in ofctl(sw, "dump-flows")
    sw.appctl("time/warp", "71000")  # 101 s idle: the rule expires in the new process
    assert "idle_timeout=100" not in ofctl(sw, "dump-flows")


def test_rate_limit_drops_a_flood_and_says_so() -> None:
    """One call site logging 10,000 times in a second: BURST lines reach the handler,
    the rest are counted, and the site's next line after the refill reports them."""
    t = [0.0]
    v = Vlog(None)
    v.rate_limit.clock = lambda: t[0]
    passed = []

    def emit(n: int) -> None:
        for _ in range(n):
            rec = logging.LogRecord("hitless.ofproto.x", logging.INFO, "f.py", 7, "flood", (), None)
            if v.rate_limit.filter(rec):
                passed.append(rec.getMessage())

    emit(10_000)
    assert len(passed) == BURST
    t[0] = 2.0  # two more tokens
    emit(1)
    assert re.match(r"Dropped 9900 log messages in last 2 seconds \(most recently, 2 seconds ago\) "
                    r"due to excessive rate; flood", passed[-1])  # fmt: skip
    v.set_rate_limit(["ofproto"], enabled=False)
    emit(500)
    assert len(passed) == BURST + 1 + 500
