"""The datapath layer's error: ``DatapathError``, raised by providers and the modules
around them (patch ports, the provider registry) for an operator to read. A leaf:
imports nothing, so every datapath module can raise it without importing the
interface (``hitless.datapath.base`` re-exports it)."""

from __future__ import annotations

__all__ = ["DatapathError"]


class DatapathError(Exception):
    """A datapath operation failed for a reason the caller should report (e.g. the
    device does not exist). The message is written for the operator."""
