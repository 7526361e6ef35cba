"""Shared pytest set-up: ``netns`` tests skip when not root; a ``topology`` fixture;
an interrupted run (Ctrl-C, SIGTERM, SIGHUP) still tears down every fixture, and a
signal during teardown waits for it to finish (tests/interrupts.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests import interrupts
from tests.netns import Topology

# Property tests assert properties, not wall-clock times: hypothesis' default 200 ms
# deadline per example (and its too-slow check on generating them) failed
# tests/packet/test_ops.py at load 24, where a test process waits for a core longer
# than that. Registered here, before any test module builds its own settings (they
# inherit from this profile).
settings.register_profile("hitless", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hitless")


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        interrupts.install()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    with interrupts.deferred():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    # After an interrupt, pytest tears down here what the interrupted test had set up.
    with interrupts.deferred(reraise=False):
        return (yield)


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
