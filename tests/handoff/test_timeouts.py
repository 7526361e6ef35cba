"""Handoff timeouts follow progress, not the size of the state: a pre-copy that takes
longer to build than the old side's timeout, and an import that takes longer than the
new side's, both complete while each step keeps moving."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hitless.daemon import handoff_new, handoff_old
from tests.handoff.test_drivers import Importer, OldSide, make_state

STEP = 0.1  # seconds of work per pre-copy slice in the slow pre-copy


class SlowPrecopy:
    """A pre-copy that needs ``steps`` slices of STEP seconds each (a big state)."""

    def __init__(self, steps: int, version: int, now: float) -> None:
        self.left = steps
        self.whole = handoff_old.WholePrecopy(make_state(3), version, now)
        self.counts = self.whole.counts

    def step(self, deadline: float) -> bool:
        time.sleep(STEP)  # deliberate: the slow work this pre-copy stands for
        self.left -= 1
        return self.left <= 0 and self.whole.step(deadline)

    def parts(self) -> list[bytes]:
        return self.whole.parts()


class SlowOldSide(OldSide):
    def precopy_job(self, now: float, delta: bool, version: int) -> SlowPrecopy:  # type: ignore[override]
        self.exports += 1
        return SlowPrecopy(8, version, now)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return handoff_old.handoff_path(tmp_path)


def test_a_pre_copy_longer_than_the_timeout_completes_while_it_progresses(
    sock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 8 slices of 0.1 s: 0.8 s of pre-copy against a 0.5 s timeout
    monkeypatch.setattr(handoff_old, "PRECOPY_TIMEOUT", 0.5)
    old = SlowOldSide(sock_path)
    try:
        imp = Importer()
        res = handoff_new.take_over(sock_path, imp, timeout=5)
        assert res.ok, res.reason
        assert imp.committed
    finally:
        old.close()


def test_the_old_side_still_gives_up_on_a_new_side_that_stops(
    sock_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff_old, "PRECOPY_TIMEOUT", 0.5)
    old = OldSide(sock_path)
    try:

        class Hung(Importer):
            def prepare(self, state: object, delta: bool, taken: float) -> None:
                time.sleep(1.5)  # deliberate: no progress for longer than the timeout

        res = handoff_new.take_over(sock_path, Hung(), timeout=5)
        assert not res.ok
        assert old.server.last is not None
        assert "did not get ready in time" in old.server.last.reason
        assert old.result == handoff_old.SERVING
    finally:
        old.close()


def test_an_import_longer_than_the_timeout_leaves_the_config_sync_its_own_time(
    sock_path: Path,
) -> None:
    old = OldSide(sock_path)
    try:

        class SlowImport(Importer):
            def prepare(self, state: object, delta: bool, taken: float) -> None:
                time.sleep(1.2)  # deliberate: longer than take_over's timeout below

            def sync_config(self, deadline: float) -> None:
                if time.monotonic() > deadline:
                    raise TimeoutError("could not sync the OVSDB database in time")

        imp = SlowImport()
        res = handoff_new.take_over(sock_path, imp, timeout=1.0)
        assert res.ok, res.reason
    finally:
        old.close()
