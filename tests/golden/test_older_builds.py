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


DOWNGRADES = [
    (c, v)
    for c in previous_versions()
    for v in [current_version_of(c)]
    if (HERE / f"state-v{v + 1}.json").exists() and str(v) in recorded(v + 1).get("digests", {})
]


@pytest.mark.parametrize(("commit", "version"), DOWNGRADES)
def test_a_downgraded_state_gives_the_older_build_the_recorded_digest(
    commit: str, version: int, tmp_path: Path
) -> None:
    """The golden state of the next version, migrated down and encoded by this build at
    the older build's version (what a downgrade sends), read by that build: the digest
    it computes is the one recorded for it (a downgrade verifies exactly this)."""
    _, state = snapshot.decode((HERE / f"state-v{version + 1}.snap").read_bytes())
    sent = tmp_path / "down.snap"
    sent.write_bytes(snapshot.encode(snapshot.as_version(state, version), software="this",
                                     taken=0.0, version=version))  # fmt: skip
    got = json.loads(old_python(build(commit), READ, str(sent)))
    assert got["version"] == version
    assert got["digest"] == recorded(version + 1)["digests"][str(version)]


# Run by a version 3 build: its own parser of the sessions' older form.
SESSIONS = r"""
import json, sys
import msgspec
from hitless.daemon.ofmgmt import parse_sessions
rec = msgspec.msgpack.decode(open(sys.argv[1], "rb").read())
inh = parse_sessions(rec, [10, 11, 12, 13, 14], 0.0)
print(json.dumps({
    "mgmt": inh.mgmt, "passive": inh.passive, "switch_flags": inh.switch_flags,
    "tlv_maps": [[m.option_class, m.option_type, m.option_len, m.index] for m in inh.tlv_maps], "table_config": [list(t) for t in inh.table_config],
    "clients": [{
        "fd": c.fd, "version": c.conn.version, "versions": list(c.conn.versions),
        "role": int(c.conn.role), "generation_id": c.conn.generation_id,
        "unparsed": c.conn.unparsed.hex(), "wbuf": c.wbuf.hex(), "service": c.service,
        "miss_send_len": c.miss_send_len, "controller": c.controller,
        "flow_format": int(c.conn.nx.flow_format), "controller_id": c.conn.nx.controller_id,
        "bundles": {str(b): [f, [type(m).__name__ for m in ms]] for b, (f, ms) in c.bundles.items()},
        "monitors": [m.monitor_id for m in c.monitors],
    } for c in inh.clients],
}))
"""


@pytest.mark.parametrize("commit", [c for c in previous_versions() if current_version_of(c) == 3])
def test_a_version_3_build_takes_the_typed_sessions_in_their_older_form(
    commit: str, tmp_path: Path
) -> None:
    """What a downgrade to a version 3 build sends of the OpenFlow sessions (the version
    4 golden sessions as ``sessions.to_v3`` makes them), parsed by that build's own code:
    every session continues as it was here (version, role, Nicira formats, unparsed
    and unsent bytes, bundles in flight, flow monitors), and the listeners too."""
    import msgspec

    from hitless.state import sessions as state_sessions

    _, state = snapshot.decode((HERE / "state-v4.snap").read_bytes())
    (rec,) = state.sessions
    sent = tmp_path / "sessions.msgpack"
    sent.write_bytes(msgspec.msgpack.encode(state_sessions.to_v3(rec)))
    got = json.loads(old_python(build(commit), SESSIONS, str(sent)))
    assert (got["mgmt"], got["passive"], got["switch_flags"]) == (
        10, {"ptcp:6633:127.0.0.1": 11}, 1,
    )  # fmt: skip
    assert got["tlv_maps"] == [[0xFFFF, 0x80, 4, 0]]
    assert got["table_config"] == [[0, 0, True, [20, 80]]]
    ofctl, ctl = got["clients"]
    assert ofctl == {
        "fd": 12, "version": 5, "versions": [4, 5, 6], "role": 0, "generation_id": None,
        "unparsed": "0502000800", "wbuf": rec.clients[0].wbuf.hex(), "service": True,
        "miss_send_len": None, "controller": None, "flow_format": 0, "controller_id": 0,
        "bundles": {"9": [1, ["FlowMod"]]}, "monitors": [1],
    }  # fmt: skip
    assert ctl["fd"] == 13 and ctl["version"] == 1 and ctl["versions"] == [1, 4, 5, 6]
    assert (ctl["role"], ctl["generation_id"], ctl["miss_send_len"]) == (2, 5, 0xFFFF)
    assert (ctl["flow_format"], ctl["controller_id"], ctl["service"]) == (2, 7, False)
    assert ctl["controller"] == "tcp:127.0.0.1:6653"
