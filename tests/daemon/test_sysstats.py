"""Open_vSwitch.statistics with other_config:enable-statistics=true, side by side with
Open vSwitch 3.1 (each with its own ovsdb-server and run directory): the same keys
(cpu, load_average, memory, process_NAME for each pidfile, file_systems) in the same
formats, and nothing once it is turned off."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair
from tests.wait import wait_for


@pytest.fixture
def pair() -> Iterator[SwitchPair]:
    p = SwitchPair(f"st{unique_suffix()}"[:15])
    try:
        yield p
    finally:
        p.close()


def stats(pair: SwitchPair, which: str) -> dict[str, str]:
    sw = pair.ovs if which == "ovs" else pair.hl
    assert sw is not None
    out = subprocess.run(
        ["ovs-vsctl", f"--db=unix:{sw.dir / 'db.sock'}", "--format=json", "--columns=statistics",
         "list", "Open_vSwitch"],
        capture_output=True, text=True, check=True, env=sw.env,
    ).stdout  # fmt: skip
    import json

    cell = json.loads(out)["data"][0][0]
    return dict(cell[1])


def vsctl(pair: SwitchPair, which: str, *args: str) -> None:
    sw = pair.ovs if which == "ovs" else pair.hl
    assert sw is not None
    subprocess.run(["ovs-vsctl", f"--db=unix:{sw.dir / 'db.sock'}", *args], check=True,
                   env=sw.env, capture_output=True)  # fmt: skip


def test_system_statistics_as_open_vswitch_writes_them(pair: SwitchPair) -> None:
    for which in ("ovs", "hl"):
        assert stats(pair, which) == {}
        vsctl(pair, which, "set", "Open_vSwitch", ".", "other_config:enable-statistics=true")
    theirs = wait_for(lambda: stats(pair, "ovs").get("load_average") and stats(pair, "ovs"),
                      "Open vSwitch's statistics")  # fmt: skip
    ours = wait_for(lambda: stats(pair, "hl").get("load_average") and stats(pair, "hl"),
                    "hitless's statistics")  # fmt: skip
    print(f"Open vSwitch: {theirs}\nhitless: {ours}")
    # Every key Open vSwitch writes (its two daemons' pidfiles), ours add hitless-vswitchd.
    assert set(theirs) <= set(ours), set(theirs) - set(ours)
    assert "process_hitless-vswitchd" in ours
    assert ours["cpu"] == theirs["cpu"]
    mounts = lambda s: [fs.split(",")[0] for fs in s["file_systems"].split(" ")]  # noqa: E731
    assert mounts(ours) == mounts(theirs)
    for s in (ours, theirs):
        assert len(s["load_average"].split(",")) == 3
        mem = [int(x) for x in s["memory"].split(",")]
        assert len(mem) == 5 and mem[0] > mem[1] > 0
        for key in ("process_ovsdb-server", "process_ovs-vswitchd"):
            vsz, rss, cpu, crashes, booted, uptime, core = (int(x) for x in s[key].split(","))
            assert vsz > rss > 0 and crashes == 0 and booted >= uptime > 0
            assert 0 <= core < 4096
    # Our own process: a Python daemon uses more memory than ovsdb-server.
    vsz, rss, *_ = (int(x) for x in ours["process_hitless-vswitchd"].split(","))
    assert rss > 10_000

    for which in ("ovs", "hl"):
        vsctl(pair, which, "set", "Open_vSwitch", ".", "other_config:enable-statistics=false")
    wait_for(lambda: stats(pair, "ovs") == {}, "Open vSwitch's statistics cleared")
    wait_for(lambda: stats(pair, "hl") == {}, "hitless's statistics cleared")
