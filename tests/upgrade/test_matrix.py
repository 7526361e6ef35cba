"""The upgrade matrix: from every previous build in previous_versions.txt to this
working tree, and back down, each step a real handoff between two different builds.

Here on a dummy bridge, state digest against state digest. The same matrix on a netdev
bridge under the shared traffic (tests/traffic.py: nothing lost or duplicated, the
timing bound, a silent host's MAC entry with its age, megaflow counters grown by what
was delivered) is tests/handoff/test_netdev_upgrade.py's
``test_upgrade_from_previous_build_and_downgrade_back_with_traffic``, one case per
previous build (and the fault cases on the newest); ``test_the_netdev_matrix_covers_every_previous_build``
keeps the two lists the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.netns import unique_name
from tests.switch import Sw, run
from tests.upgrade.builds import Build, build, previous_versions

NEW_VSWITCHD = Path(sys.executable).parent / "hitless-vswitchd"


@pytest.fixture(scope="module", params=previous_versions())
def old_build(request: pytest.FixtureRequest) -> Build:
    return build(request.param)


def handover(sw: Sw, cli: Path, direction: str, to: Path) -> dict:
    r = run([str(cli), direction, "--rundir", str(sw.rundir.path), "--to", str(to), "--json"],
            check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def digest_v1(sw: Sw) -> str:
    """The switch's state digest as state format 1 has it (what every build computes:
    builds that know only version 1 report it as "digest")."""
    doc = json.loads(sw.appctl("state/dump").stdout)
    return str(doc.get("digests", {}).get("1", doc["digest"]))


def test_upgrade_from_previous_build_and_downgrade_back(sw: Sw, old_build: Build) -> None:
    r = subprocess.run([str(old_build.hitless), "start", "--rundir", str(sw.rundir.path)],
                       capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    old_pid = sw.daemon_pid
    assert old_pid is not None
    assert str(old_build.venv) in Path(f"/proc/{old_pid}/cmdline").read_text()
    br = unique_name("mbr")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "add-port", br, "p1", "--", "add-port", br, "p2")
    digest = digest_v1(sw)

    up = handover(sw, old_build.hitless, "upgrade", NEW_VSWITCHD)
    new_pid = sw.daemon_pid
    assert new_pid == up["new_pid"] != old_pid
    assert str(NEW_VSWITCHD) in Path(f"/proc/{new_pid}/cmdline").read_text()
    assert digest_v1(sw) == digest

    down = handover(sw, NEW_VSWITCHD.parent / "hitless", "downgrade", old_build.vswitchd)
    back_pid = sw.daemon_pid
    assert back_pid == down["new_pid"] != new_pid
    assert str(old_build.venv) in Path(f"/proc/{back_pid}/cmdline").read_text()
    assert digest_v1(sw) == digest
    assert (sw.ofport("p1"), sw.ofport("p2")) == (1, 2)


def test_the_netdev_matrix_covers_every_previous_build() -> None:
    """Every previous build has a clean upgrade-and-back case with traffic on netdev."""
    from tests.handoff.test_netdev_upgrade import _previous_cases

    clean = [v for v, fault, _armed in _previous_cases() if fault is None]
    assert clean == previous_versions()
