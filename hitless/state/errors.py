"""The state layer's one error: ``SnapshotError`` says what is wrong with a snapshot or
a record (truncated, foreign, corrupted, a version this build cannot read) in words an
operator can act on. Apart so that every module of the package can raise it."""

from __future__ import annotations

__all__ = ["SnapshotError"]


class SnapshotError(Exception):
    """The snapshot cannot be used; the message says why and what to do."""
