"""Previous builds of hitless for the upgrade/downgrade matrix: each commit listed in
previous_versions.txt exported and installed into its own venv. The mechanism lives in
``hitless.impact.builds`` (``hitless impact`` downgrades to such a build too)."""

from __future__ import annotations

from pathlib import Path

from hitless.impact import builds as _builds
from hitless.impact.builds import CACHE, Build

__all__ = ["CACHE", "REPO", "VERSIONS_FILE", "Build", "build", "previous_versions"]

REPO = Path(__file__).resolve().parents[2]
VERSIONS_FILE = REPO / _builds.VERSIONS_FILE


def previous_versions() -> list[str]:
    return _builds.previous_versions(REPO)


def build(commit: str) -> Build:
    """Export ``commit`` and install it into its own venv (cached by full hash)."""
    return _builds.build(commit, REPO)
