"""Previous builds of hitless for the upgrade/downgrade matrix: each commit listed in
previous_versions.txt exported and installed into its own venv. The mechanism lives in
``hitless.impact.builds`` (``hitless impact`` downgrades to such a build too)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from hitless.impact import builds as _builds
from hitless.impact.builds import Build

__all__ = [
    "REPO",
    "VERSIONS_FILE",
    "Build",
    "build",
    "handoff_features",
    "previous_versions",
]

REPO = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO / _builds.VERSIONS_FILE


def previous_versions() -> list[str]:
    return _builds.previous_versions(REPO)


def build(commit: str) -> Build:
    """``commit`` installed into its own self-contained venv (cached in this checkout)."""
    return _builds.build(commit, REPO)


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
