"""Previous builds of hitless for the upgrade/downgrade matrix: each commit listed in
previous_versions.txt exported and installed into its own venv. The mechanism lives in
``hitless.impact.builds`` (``hitless impact`` downgrades to such a build too)."""

from __future__ import annotations

import ast
import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from hitless.impact import builds as _builds
from hitless.impact.builds import Build

__all__ = [
    "REPO",
    "VERSIONS_FILE",
    "Build",
    "build",
    "handoff_features",
    "has_fault_point",
    "previous_versions",
]

REPO = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO / _builds.VERSIONS_FILE


def previous_versions() -> list[str]:
    return _builds.previous_versions(REPO)


def build(commit: str) -> Build:
    """``commit`` installed into its own self-contained venv (cached in this checkout).
    Making it does not count against the calling test's timeout: a whole build took
    over 300 s at load average ~21 (2026-12-07: the b74b2c3 netdev case timed out inside
    pip on a fresh cache), and the build has its own budget (pip's 900 s)."""
    with _test_timeout_paused():
        return _builds.build(commit, REPO)


@contextlib.contextmanager
def _test_timeout_paused() -> Iterator[None]:
    """pytest-timeout's alarm (its signal method: ``SIGALRM`` from ``ITIMER_REAL``)
    stopped for the duration and set again to what was left of it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    left, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def handoff_features(commit: str) -> list[str]:
    """The handoff protocol features ``commit`` offers (its ``FEATURES`` in
    hitless/handoff/protocol.py), read from its source without building it; [] for a
    build from before features were negotiated."""
    r = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:hitless/handoff/protocol.py"],
        capture_output=True,
        text=True,
        check=True,
    )
    for node in ast.parse(r.stdout).body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "FEATURES" for t in targets):
            return [str(f) for f in ast.literal_eval(value)]
    return []


def has_fault_point(commit: str, name: str) -> bool:
    """Whether ``commit``'s fault-injection module (hitless/daemon/faults.py) knows the
    point ``name`` (``blackout`` for ``blackout:<ms>``), read from its source."""
    r = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{commit}:hitless/daemon/faults.py"],
        capture_output=True,
        text=True,
    )
    return r.returncode == 0 and f'"{name}' in r.stdout
