"""The packages the apt tests install are built before their first case starts, with a
bound of their own (``BUILD_TIMEOUT``), outside any case's timeout: at load average 30
building them took 15 minutes, which counted against the first case's 2400 s and ran
out there (its apt-get then killed mid-install). A hook wrapped around pytest-timeout's
(``tryfirst``): the build runs before that case's timer starts; what it built, or why it
failed, waits in the config's stash for the ``debs`` fixture."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.upgrade.builds import REPO, previous_versions

BUILD_TIMEOUT = 3600.0  # both packages, from nothing, at load average 30+ (15 min seen)
CACHE = REPO / ".cache" / "debs"
BUILT = pytest.StashKey[dict[str, Path] | str]()

# ``cached(commit, cache)`` of packaging/build_deb.py in a process of its own, so that a
# bound can end it and everything it started (pip, compileall, dpkg-deb).
_BUILD = (
    "import runpy, sys; from pathlib import Path;"
    " m = runpy.run_path(sys.argv[1]);"
    " print(m['cached'](sys.argv[2] or None, Path(sys.argv[3])))"
)


def _build(commit: str | None) -> Path:
    with subprocess.Popen(
        [sys.executable, "-c", _BUILD, str(REPO / "packaging" / "build_deb.py"), commit or "",
         str(CACHE)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        start_new_session=True,
    ) as p:  # fmt: skip
        try:
            out, err = p.communicate(timeout=BUILD_TIMEOUT)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)  # its own session: only the build's processes
            p.wait()
            raise
    if p.returncode != 0:
        raise RuntimeError(
            f"building the package of {commit or 'the working tree'} failed:\n{err[-3000:]}"
        )
    return Path(out.split()[-1])


def built(config: pytest.Config) -> dict[str, Path]:
    """The two packages (``old``: the newest previous release, ``new``: the working
    tree), built by the hook below; fails the case if that build did not succeed."""
    got = config.stash.get(BUILT, None)
    if got is None:
        pytest.fail("the packages were not built before the case (the conftest hook)")
    if isinstance(got, str):
        pytest.fail(got)
    return got


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    if "debs" in getattr(item, "fixturenames", ()) and BUILT not in item.config.stash:
        try:
            debs = {"old": _build(previous_versions()[-1]), "new": _build(None)}
            item.config.stash[BUILT] = debs
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
            item.config.stash[BUILT] = f"building the packages failed: {e}"
    yield
