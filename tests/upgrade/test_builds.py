"""The previous-build cache: self-contained venvs, validated, rebuilt when broken, built
once under a lock when two processes ask at the same time, stable names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hitless.impact import builds
from tests.upgrade.builds import REPO, previous_versions

# Each test here may make whole previous builds (pip installs into a fresh venv): one
# took 532 s at load 15, past the suite's 300 s default.
pytestmark = pytest.mark.timeout(1800)

NEWEST = previous_versions()[-1] if previous_versions() else None
needs_previous = pytest.mark.skipif(NEWEST is None, reason="no previous versions listed")

BUILD = (
    "import sys; from hitless.impact import builds; "
    "b = builds.build(sys.argv[1], builds.Path(sys.argv[2])); print(b.venv)"
)


def _build_in_subprocess(cache: Path, commit: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HITLESS_BUILD_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-c", BUILD, commit, str(REPO)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _points_outside(venv: Path) -> list[str]:
    """Lines of the venv's .pth files that name a directory outside the venv."""
    out = []
    for pth in venv.rglob("*.pth"):
        for line in pth.read_text().splitlines():
            if line.startswith("/") and not Path(line).resolve().is_relative_to(venv.resolve()):
                out.append(f"{pth.name}: {line}")
    return out


@needs_previous
def test_concurrent_builds_share_one_entry_which_is_self_contained_and_rebuilt_when_broken(
    tmp_path: Path,
) -> None:
    assert NEWEST is not None
    # Two processes ask for the same build at once: one builds, the other waits on the
    # lock and finds it built; both get the same venv.
    procs = [_build_in_subprocess(tmp_path, NEWEST) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert outs[0] == outs[1]
    venv = Path(outs[0])
    entries = [e for e in tmp_path.iterdir() if not e.name.endswith(".lock")]
    assert [e.name for e in entries] == [venv.parent.name]  # no temporary left behind
    assert f"-{builds.PY}-" in venv.parent.name
    # Self-contained: no .pth into another checkout, hitless imported from inside.
    assert _points_outside(venv) == []
    b = builds.Build(NEWEST, venv)
    builds.validate(b)

    # Break it the way a deleted checkout used to: a dependency gone. A fresh process
    # notices, rebuilds in place and gets a working build.
    site = next(venv.glob("lib/python*/site-packages"))
    for d in site.glob("msgspec*"):
        subprocess.run(["rm", "-rf", str(d)], check=True)
    with pytest.raises(builds.BuildError, match="msgspec"):
        builds.validate(b)
    p = _build_in_subprocess(tmp_path, NEWEST)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    assert Path(out.strip()) == venv
    builds.validate(b)
    assert builds.foreign_interpreters(venv) == []

    # The same build copied into another cache (another checkout's) still runs the first
    # cache's interpreter through its scripts' shebangs: rejected, not trusted.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["cp", "-a", str(venv.parent), str(other)], check=True)
    copy = builds.Build(NEWEST, other / venv.parent.name / "venv")
    assert any("hitless" in f for f in builds.foreign_interpreters(copy.venv))
    with pytest.raises(builds.BuildError, match="outside itself"):
        builds.validate(copy)


def _same_build_in(cache: Path) -> Path:
    probe = "from hitless.impact import builds; print(builds.same_build().venv)"
    env = {**os.environ, "HITLESS_BUILD_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip())


def test_a_build_copied_from_another_cache_is_rebuilt_and_survives_the_original(
    tmp_path: Path,
) -> None:
    """A cache copied from another checkout (``cp -a``) names that checkout's interpreter
    in its scripts: validation rejects it, the next use rebuilds it in place, and the
    rebuilt one keeps working once the original cache is deleted."""
    first, second = tmp_path / "first", tmp_path / "second"
    venv = _same_build_in(first)
    subprocess.run(["cp", "-a", str(first), str(second)], check=True)
    copied = second / venv.relative_to(first)
    foreign = builds.foreign_interpreters(copied)
    assert foreign and all(str(first) in f for f in foreign), foreign
    with pytest.raises(builds.BuildError, match="outside itself"):
        builds.validate(builds.Build("same", copied))

    assert _same_build_in(second) == copied  # rebuilt in place
    assert builds.foreign_interpreters(copied) == []
    subprocess.run(["rm", "-rf", str(first)], check=True)
    builds.validate(builds.Build("same", copied))
    r = subprocess.run([str(copied / "bin" / "hitless"), "--help"], capture_output=True,
                       text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr


def test_same_build_has_a_stable_name_across_processes(tmp_path: Path) -> None:
    probe = "from hitless.impact import builds; print(builds.same_build().venv)"
    env = {**os.environ, "HITLESS_BUILD_CACHE": str(tmp_path)}
    paths = {
        subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                       text=True, check=True).stdout.strip()
        for _ in range(2)
    }
    assert len(paths) == 1
    assert len(list(tmp_path.glob("same-*/venv"))) == 1


def test_cache_lives_in_the_checkout_and_is_gitignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HITLESS_BUILD_CACHE", raising=False)
    cache = builds.cache_dir(REPO)
    assert cache.is_relative_to(REPO)
    probe = cache / "x" / "venv"
    r = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", str(probe)])
    assert r.returncode == 0, f"{probe} is not gitignored"


@needs_previous
def test_whether_a_build_takes_nice_is_read_from_its_source() -> None:
    """hitless upgrade passes --nice only to a build that has it (an older one would
    refuse the argument and never start): the oldest listed build has none, this one has."""
    from hitless.cli.upgrade import _NICE_PROBE, _peer_probe, peer_takes_nice
    from tests.upgrade.builds import build

    oldest = build(previous_versions()[0])
    assert not peer_takes_nice([str(oldest.vswitchd)])
    this = Path(sys.executable).parent / "hitless-vswitchd"
    assert _peer_probe([str(this)], _NICE_PROBE) == "1"  # the probe itself, not the shortcut


@pytest.mark.timeout(1)
def test_making_a_build_does_not_count_against_the_test_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build that takes longer than the test's whole budget (here 2 s against 1 s: at
    load ~21 a real one took over 300 s) leaves the test running, and the rest of its
    budget armed again afterwards."""
    import signal
    import time

    from tests.upgrade import builds as test_builds

    slow = lambda c, r: time.sleep(2) or c  # noqa: E731  # deliberate: a slow build
    monkeypatch.setattr(test_builds._builds, "build", slow)
    assert test_builds.build("f1ef911") == "f1ef911"
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < left <= 1
