"""``hitless state dump`` and ``hitless state check`` on a real switch: the dump's
binary snapshot checks valid with the digest the switch reported, and bad files get a
clear error and a non-zero status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from hitless.state import snapshot
from tests.netns import unique_name
from tests.switch import BIN, Sw, run


def test_state_dump_writes_a_snapshot_that_state_check_validates(started: Sw, tmp_path: Path) -> None:
    sw = started
    br = unique_name("sbr")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=dummy",
             "--", "add-port", br, "p1", "--", "add-port", br, "p2")  # fmt: skip
    out = tmp_path / "state.snap"
    dump = json.loads(sw.hitless("state", "dump", "--output", str(out)).stdout)
    (bridge,) = dump["state"]["bridges"]
    assert bridge["name"] == br
    assert sorted(p["name"] for p in bridge["ports"]) == sorted([br, "p1", "p2"])

    check = json.loads(_check(sw, out).stdout)
    assert check["valid"] is True
    assert check["state_version"] == snapshot.CURRENT_VERSION
    assert check["digest"] == dump["digest"]
    assert check["summary"]["bridges"] == 1 and check["summary"]["ports"] == 3


def test_state_check_refuses_damaged_and_missing_files(started: Sw, tmp_path: Path) -> None:
    sw = started
    good = tmp_path / "good.snap"
    sw.hitless("state", "dump", "--output", str(good))
    cut = tmp_path / "cut.snap"
    cut.write_bytes(good.read_bytes()[:-7])
    r = _check(sw, cut)
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert f"hitless state check: {cut}:" in r.stderr and "Traceback" not in r.stderr
    junk = tmp_path / "junk.snap"
    junk.write_bytes(b"not a snapshot at all")
    r = _check(sw, junk)
    assert r.returncode == 1 and f"hitless state check: {junk}:" in r.stderr
    r = _check(sw, tmp_path / "missing.snap")
    assert r.returncode == 2 and "No such file" in r.stderr


def _check(sw: Sw, path: Path) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "hitless"), "state", "check", str(path)], check=False)
