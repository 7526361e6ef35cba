"""Both handoff drivers over a real unix socket in one test process: descriptors really
travel with SCM_RIGHTS, the lease really expires, and a failed takeover leaves the old
side serving."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import pytest

from hitless.daemon import handoff_new, handoff_old
from hitless.daemon.takeover import Frozen
from hitless.state import ledger, snapshot
from hitless.state.records import BridgeState, DatapathV7, MacEntryV1, PortV1, State
from tests.wait import wait_for


def make_state(n_macs: int) -> State:
    return State(
        [
            BridgeState(
                "br0",
                DatapathV7("dummy", None, [], [0]),
                [PortV1("p1", 1)],
                {},
                [MacEntryV1(0, i.to_bytes(6, "big"), 1, 0.0) for i in range(n_macs)],
            )
        ]
    )


class OldSide:
    """A HandoffServer in a thread, exporting a fixed state and one pipe descriptor."""

    def __init__(self, path: Path, lease: float = 2.0) -> None:
        self.r, self.w = os.pipe()
        self.exports = 0
        self.thawed = 0
        self.server = handoff_old.HandoffServer(path, self, lease=lease)
        self.result = handoff_old.SERVING
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def precopy_job(self, now: float, delta: bool, version: int) -> handoff_old.WholePrecopy:
        self.exports += 1
        return handoff_old.WholePrecopy(make_state(3), version, now)

    def freeze(self, now: float, delta: bool) -> Frozen:
        # This fake always sends full state (as a build without "delta" would).
        self.exports += 1
        state = make_state(3)
        return Frozen(
            state,
            [self.r],
            ledger.state_digest(state),
            snapshot.summary(state),
            extras={"clock": {"offset": 2.5}},
        )

    def finish(self, rolled_back: bool) -> None:
        if rolled_back:
            self.thaw()

    def thaw(self) -> None:
        self.thawed += 1

    def loop(self) -> None:
        while not self.stop.is_set() and self.result == handoff_old.SERVING:
            self.result = self.server.run()
            time.sleep(0.002)  # pacing: the serving loop's turn

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.server.close()
        os.close(self.r)
        os.close(self.w)


class Importer:
    def __init__(self, tamper: bool = False, fail_restore: bool = False) -> None:
        self.tamper = tamper
        self.fail_restore = fail_restore
        self.fds: list[int] = []
        self.committed = self.discarded = False
        self.prepared: State | None = None

    def prepare(self, state: State, delta: bool, taken: float) -> None:
        self.prepared = state

    def sync_config(self, deadline: float) -> None:
        pass

    def restore(self, state: State, fds: list[int], version: int) -> tuple[str, dict[str, int]]:
        self.fds = [fd for fd in fds if fd >= 0]  # -1: a listener's slot
        if self.fail_restore:
            raise OSError("cannot adopt")
        rebuilt = make_state(2) if self.tamper else state
        return ledger.state_digest(rebuilt), snapshot.summary(rebuilt)

    def restore_delta(self, delta: object, fds: list[int]) -> tuple[str, dict[str, int]]:
        raise AssertionError("this fake never negotiates deltas")

    def take_listeners(self, fds: dict[str, int]) -> None:
        self.listeners = fds

    def take_extras(self, extras: dict[str, object]) -> None:
        self.extras = extras

    def take_sessions(self, records: list[object], fds: list[int]) -> int:
        assert not records and not fds  # the fake exporter has no OpenFlow sessions
        return 0

    def commit(self) -> None:
        self.committed = True
        for fd in getattr(self, "listeners", {}).values():
            os.close(fd)

    def discard(self) -> None:
        self.discarded = True
        for fd in self.fds + list(getattr(self, "listeners", {}).values()):
            os.close(fd)


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    return handoff_old.handoff_path(tmp_path)


def test_successful_handoff_passes_a_working_descriptor(sock_path: Path) -> None:
    old = OldSide(sock_path)
    try:
        imp = Importer()
        res = handoff_new.take_over(sock_path, imp, timeout=5)
        assert res.ok, res.reason
        assert imp.committed and imp.prepared == make_state(3)
        assert imp.extras == {"clock": {"offset": 2.5}}  # switch extras rode the freeze
        assert res.counts["mac_entries"] == 3
        assert {"start", "precopy", "restore", "verify", "freeze", "total"} <= set(res.phases)
        # The received descriptor is the same pipe: bytes written by the old side's
        # write end come out of it.
        (fd,) = imp.fds
        os.write(old.w, b"hello")
        assert os.read(fd, 5) == b"hello"
        os.close(fd)
        old.thread.join(5)
        assert old.result == handoff_old.HANDED_OVER
        assert old.server.last is not None and old.server.last.result == "handed-over"
    finally:
        old.close()


def test_no_garbage_collection_inside_the_freeze(sock_path: Path) -> None:
    """From Ready to the commit nothing forwards: the new side collects its young
    generations before Ready and none during the freeze; collections resume after
    (also when the handoff fails); the commit's parts are reported as phases."""
    seen: list[tuple[str, bool]] = []

    class Watching(Importer):
        def restore(self, state: State, fds: list[int], version: int) -> tuple[str, dict[str, int]]:
            seen.append(("restore", gc.isenabled()))
            return super().restore(state, fds, version)

        def commit(self) -> dict[str, float]:  # type: ignore[override]
            seen.append(("commit", gc.isenabled()))
            super().commit()
            return {"commit_bridges": 0.001}

    assert gc.isenabled()
    old = OldSide(sock_path)
    try:
        res = handoff_new.take_over(sock_path, Watching(), timeout=5)
        assert res.ok, res.reason
        assert seen == [("restore", False), ("commit", False)]
        assert res.phases["commit_bridges"] == 0.001
        assert gc.isenabled()
    finally:
        old.close()
    old = OldSide(sock_path)
    try:
        res = handoff_new.take_over(sock_path, Watching(tamper=True), timeout=5)
        assert not res.ok and gc.isenabled()
    finally:
        old.close()


def test_the_first_forwarding_runs_once_the_switch_is_ours_still_in_the_freeze(
    sock_path: Path,
) -> None:
    """``serve_first`` (the daemon's first forwarding of what the rings held) runs once,
    after the commit and before the freeze's priority and collection pause end; a failed
    handoff never runs it, and its failure is not a failed handoff: it propagates and
    nothing is discarded (the switch is ours by then)."""
    seen: list[tuple[str, bool, int]] = []

    class Watching(Importer):
        def commit(self) -> None:
            seen.append(("commit", gc.isenabled(), os.sched_getscheduler(0)))
            super().commit()

    def first() -> None:
        seen.append(("first", gc.isenabled(), os.sched_getscheduler(0)))

    old = OldSide(sock_path)
    try:
        imp = Watching()
        res = handoff_new.take_over(sock_path, imp, timeout=5, serve_first=first)
        assert res.ok, res.reason
        policy = os.SCHED_FIFO if res.realtime else os.sched_getscheduler(0)
        assert seen == [("commit", False, policy), ("first", False, policy)]
        assert "first_forward" in res.phases and gc.isenabled()
        os.close(imp.fds[0])
    finally:
        old.close()
    seen.clear()
    old = OldSide(sock_path)
    try:
        res = handoff_new.take_over(sock_path, Watching(tamper=True), timeout=5, serve_first=first)
        assert not res.ok and [s[0] for s in seen] == []
    finally:
        old.close()

    def broken() -> None:
        raise OSError("the datapath went away")

    old = OldSide(sock_path)
    try:
        imp = Watching()
        with pytest.raises(OSError, match="went away"):
            handoff_new.take_over(sock_path, imp, timeout=5, serve_first=broken)
        assert imp.committed and not imp.discarded and gc.isenabled()
        os.close(imp.fds[0])
        old.thread.join(5)
        assert old.result == handoff_old.HANDED_OVER
    finally:
        old.close()


def test_digest_mismatch_rolls_back(sock_path: Path) -> None:
    old = OldSide(sock_path)
    try:
        imp = Importer(tamper=True)
        res = handoff_new.take_over(sock_path, imp, timeout=5)
        assert not res.ok and "different state" in res.reason
        assert imp.discarded and not imp.committed
        # The old side finishes the handoff (rolled back), then serves: wait for the
        # outcome, not for a time after which SERVING (the initial value) would pass.
        wait_for(lambda: old.server.last is not None, "the old side's handoff outcome")
        assert old.server.last is not None and old.server.last.result == "rolled-back"
        assert old.result == handoff_old.SERVING
        assert old.thawed == 1
    finally:
        old.close()


def test_failed_restore_rolls_back_and_old_serves_the_next_handoff(sock_path: Path) -> None:
    old = OldSide(sock_path)
    try:
        res = handoff_new.take_over(sock_path, Importer(fail_restore=True), timeout=5)
        assert not res.ok and "cannot adopt" in res.reason
        # The old side is back to serving and takes a second, good handoff.
        imp = Importer()
        res = handoff_new.take_over(sock_path, imp, timeout=5)
        assert res.ok, res.reason
        os.close(imp.fds[0])
    finally:
        old.close()


def test_no_common_version_is_refused_with_both_lists(sock_path: Path) -> None:
    old = OldSide(sock_path)
    try:
        res = handoff_new.take_over(sock_path, Importer(), timeout=5, versions=[99])
        assert not res.ok
        assert "no common state version" in res.reason and "[99]" in res.reason
        assert old.exports == 0  # nothing was even exported
    finally:
        old.close()


def test_lease_expires_when_the_new_side_stalls(sock_path: Path, monkeypatch) -> None:
    old = OldSide(sock_path, lease=0.3)
    try:

        class Stalling(Importer):
            def restore(
                self, state: State, fds: list[int], version: int
            ) -> tuple[str, dict[str, int]]:
                self.fds = [fd for fd in fds if fd >= 0]  # -1: a listener's slot
                time.sleep(0.6)  # deliberate: longer than the lease
                return ledger.state_digest(state), snapshot.summary(state)

        imp = Stalling()
        res = handoff_new.take_over(sock_path, imp, timeout=5)
        assert not res.ok
        assert "lease" in res.reason or "aborted" in res.reason
        assert old.server.last is not None and "lease" in old.server.last.reason
        assert old.result == handoff_old.SERVING
    finally:
        old.close()


def test_unreachable_socket_is_a_clear_error(tmp_path: Path) -> None:
    res = handoff_new.take_over(tmp_path / "nothing.handoff", Importer(), timeout=1)
    assert not res.ok and "cannot reach" in res.reason


def test_snapshot_round_trip_used_by_drivers_is_current_version() -> None:
    data = snapshot.encode(make_state(1), software="t", taken=0.0)
    assert snapshot.read_envelope(data).version == snapshot.CURRENT_VERSION
