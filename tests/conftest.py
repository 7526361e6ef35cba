"""Shared pytest set-up: ``netns`` tests skip when not root; a ``topology`` fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.netns import Topology


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (network namespaces)")
    for item in items:
        if "netns" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def topology() -> Iterator[Topology]:
    """Hosts in namespaces, torn down after the test whatever happens (see tests/netns.py)."""
    with Topology() as topo:
        yield topo


# The private-switch fixtures (``sw``, ``started``) for every test directory.
from tests.switch import started, sw  # noqa: E402,F401
