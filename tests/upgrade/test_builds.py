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
