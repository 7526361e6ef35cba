"""The golden files checked by the builds that released their versions, not only by
this one: each previous build (tests/upgrade/previous_versions.txt, through the
previous-build cache) reads every golden file of a version it knows and must compute
the digest recorded next to it; the builds that shipped ``make_golden.py`` must write,
from their own script, the very bytes committed for their version; and what this build
sends an older one in a downgrade (the version 3 golden state migrated down) must give
that build the digest recorded for it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hitless.state import ledger, snapshot
from tests.upgrade.builds import REPO, Build, build, previous_versions

HERE = Path(__file__).parent

# Run by an older build's own python: its reader, digest and writer.
READ = r"""
import json, sys
try:  # hitless.state from the build that moved the snapshots there on
    from hitless.state import snapshot
    from hitless.state.ledger import state_digest
except ImportError:
    from hitless.handoff import snapshot
    state_digest = snapshot.state_digest
data = open(sys.argv[1], "rb").read()
env, state = snapshot.decode(data)
again = snapshot.encode(state, software=env.software, taken=env.taken, version=env.version) \
    if "version" in snapshot.encode.__code__.co_varnames else \
    snapshot.encode(state, software=env.software, taken=env.taken)
print(json.dumps({
    "current": snapshot.CURRENT_VERSION,
    "version": env.version,
    "digest": state_digest(state),
    "summary": snapshot.summary(state),
    "same_payload": snapshot.decode(again)[0].payload == env.payload,
}))
"""

WRITE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from make_golden import golden_state
try:
    from hitless.state import snapshot
except ImportError:
    from hitless.handoff import snapshot
open(sys.argv[2], "wb").write(snapshot.encode(golden_state(), software="golden", taken=0.0))
print(snapshot.CURRENT_VERSION)
"""


def old_python(b: Build, script: str, *args: str) -> str:
    r = subprocess.run([str(b.python), "-c", script, *args], capture_output=True, text=True,
                       timeout=120, cwd="/")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def recorded(version: int) -> dict:
    return json.loads((HERE / f"state-v{version}.json").read_text())


def current_version_of(commit: str) -> int:
    for path in ("hitless/state/snapshot.py", "hitless/handoff/snapshot.py"):  # moved once
        r = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:{path}"],
                           capture_output=True, text=True)  # fmt: skip
        if r.returncode == 0:
            break
    src = r.stdout
    line = next(ln for ln in src.splitlines() if ln.startswith("CURRENT_VERSION"))
    return int(line.split("=")[1])


CASES = [
    (commit, v)
    for commit in previous_versions()
    for v in range(1, current_version_of(commit) + 1)
    if (HERE / f"state-v{v}.snap").exists()
]


@pytest.mark.parametrize(("commit", "version"), CASES)
def test_an_older_build_reads_the_golden_file_and_computes_its_recorded_digest(
    commit: str, version: int
) -> None:
    got = json.loads(old_python(build(commit), READ, str(HERE / f"state-v{version}.snap")))
    assert got["version"] == version
    assert got["digest"] == recorded(version)["digest"], (commit, got)
    assert got["summary"] == recorded(version)["summary"], (commit, got)
    assert got["same_payload"], f"{commit} writes version {version} differently"


WRITERS = [
    c for c in previous_versions()
    if subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{c}:tests/golden/make_golden.py"],
                      capture_output=True).returncode == 0  # fmt: skip
]


@pytest.mark.parametrize("commit", WRITERS)
def test_the_golden_file_of_a_released_version_is_what_that_release_writes(
    commit: str, tmp_path: Path
) -> None:
    script = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:tests/golden/make_golden.py"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    (tmp_path / "make_golden.py").write_text(script)
    out = tmp_path / "written.snap"
    version = int(old_python(build(commit), WRITE, str(tmp_path), str(out)))
    committed = (HERE / f"state-v{version}.snap").read_bytes()
    assert snapshot.read_envelope(out.read_bytes()).payload == snapshot.read_envelope(committed).payload
    # and this build reads the older build's own bytes to the recorded digest
    _, state = snapshot.decode(out.read_bytes())
    assert ledger.state_digest(state) == recorded(version)["digest"]


@pytest.mark.parametrize("commit", [c for c in previous_versions() if current_version_of(c) == 2])
def test_a_downgraded_state_gives_the_older_build_the_recorded_digest(
    commit: str, tmp_path: Path
) -> None:
    """The version 3 golden state, migrated down and encoded by this build at version 2
    (what a downgrade sends), read by a version 2 build: the digest it computes is the
    one recorded in state-v3.json (a downgrade verifies exactly this)."""
    _, state = snapshot.decode((HERE / "state-v3.snap").read_bytes())
    sent = tmp_path / "down.snap"
    sent.write_bytes(snapshot.encode(snapshot.as_version(state, 2), software="this", taken=0.0,
                                     version=2))  # fmt: skip
    got = json.loads(old_python(build(commit), READ, str(sent)))
    assert got["version"] == 2
    assert got["digest"] == recorded(3)["digests"]["2"]
