"""When traffic agents start and end, by conditions rather than fixed times.

A sender started with ``--go FILE`` says ready once its interpreter is up and starts
at the time the runner writes into FILE, so every sender starts together however long
its interpreter took (at load 25-30 one sender began 0.7 s after a fixed start, and an
operation timed from that start could come before its traffic).

A datagram receiver's end (``udp-recv``, the ``udp-duplex`` answerer): SIGTERM means
"the senders have ended", and the receiver reads on to a condition, not for a fixed
time: every stream's last datagram (the harness's ``--expect`` file) and whatever its
socket still holds. A receiver that had no CPU when the senders ended (here: stopped)
used to leave its queue unread and count it as lost; one whose last datagrams were
still in the switch stopped before they came. The agents run on loopback in a
namespace of their own (no port shared with anything else on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.netns

RUN = 7
STREAM = 3
PORT = 5000  # the namespace's own loopback: nothing else binds there


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"hldrain-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=30)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _agent(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "hitless.impact.agents", *args]


def _receiver(ns: str, tmp: Path, drain: float, kind: str = "udp-recv") -> subprocess.Popen[str]:
    p = subprocess.Popen(
        _agent(ns, kind, "--bind", "127.0.0.1", "--port", str(PORT), "--run", str(RUN),
               "--end", str(time.monotonic() + 300), "--expect", str(tmp / "expect"),
               "--drain", str(drain), "--out", str(tmp / "rx.jsonl")),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stderr is not None and p.stderr.readline().strip() == "ready"
    return p


def _send(ns: str, tmp: Path, n: int, rate: float) -> list[dict[str, Any]]:
    out = tmp / "tx.jsonl"
    subprocess.run(
        _agent(ns, "udp-send", "--dst", "127.0.0.1", "--port", str(PORT), "--run", str(RUN),
               "--stream", str(STREAM), "--rate", str(rate), "--duration", str(n / rate),
               "--out", str(out)),
        check=True, timeout=120,
    )  # fmt: skip
    return [json.loads(x) for x in out.read_text().splitlines()]


def _expect(tmp: Path, last: int) -> None:
    (tmp / "expect").write_text(json.dumps({str(STREAM): last}))


def _received(p: subprocess.Popen[str], tmp: Path) -> list[int]:
    assert p.wait(timeout=120) == 0
    recs = [json.loads(x) for x in (tmp / "rx.jsonl").read_text().splitlines()]
    return [r["seq"] for r in recs if r["ev"] == "rx" and r["stream"] == STREAM]


def test_a_receiver_that_had_no_cpu_reads_its_queue_after_sigterm(ns: str, tmp_path: Path) -> None:
    """Stopped while 300 datagrams arrive, then SIGTERM: it reads all 300 (it read 1)."""
    rx = _receiver(ns, tmp_path, drain=60.0)
    try:
        rx.send_signal(signal.SIGSTOP)
        tx = _send(ns, tmp_path, 300, 1000.0)
        sent = [r["seq"] for r in tx if r["ev"] == "tx" and "err" not in r]
        assert len(sent) == 300
        _expect(tmp_path, max(sent))
        rx.send_signal(signal.SIGTERM)  # pending while stopped: handled before any read
        rx.send_signal(signal.SIGCONT)
        assert sorted(_received(rx, tmp_path)) == sent
    finally:
        rx.kill()
        rx.wait()


@pytest.mark.parametrize("kind", ["udp-recv", "udp-duplex"])
def test_a_receiver_waits_for_each_stream_s_last_datagram(
    ns: str, tmp_path: Path, kind: str
) -> None:
    """SIGTERM before the stream's datagrams even left (as if they were still in the
    switch): it reads on until the last one (seq 19) came (it stopped at once)."""
    rx = _receiver(ns, tmp_path, drain=60.0, kind=kind)
    try:
        _expect(tmp_path, 19)
        # the stream must have begun for the receiver to know it as its own
        first = _send(ns, tmp_path, 1, 100.0)
        assert [r["seq"] for r in first if r["ev"] == "tx" and "err" not in r] == [0]
        rx.send_signal(signal.SIGTERM)
        tx = _send(ns, tmp_path, 20, 20.0)
        assert sum(r["ev"] == "tx" and "err" not in r for r in tx) == 20
        got = _received(rx, tmp_path)
        assert sorted(set(got)) == list(range(20)), got
    finally:
        rx.kill()
        rx.wait()


def test_a_stream_whose_last_datagram_is_lost_ends_after_the_drain(
    ns: str, tmp_path: Path
) -> None:
    """The last datagrams never come (seq 20-25 were lost): the receiver still ends,
    --drain after SIGTERM, with what did come."""
    rx = _receiver(ns, tmp_path, drain=0.5)
    try:
        _expect(tmp_path, 25)
        _send(ns, tmp_path, 20, 1000.0)
        rx.send_signal(signal.SIGTERM)
        assert sorted(_received(rx, tmp_path)) == list(range(20))
    finally:
        rx.kill()
        rx.wait()


@pytest.mark.parametrize("kind", ["udp-recv", "tcp-stream-server"])
def test_an_agent_that_ends_as_sigterms_come_exits_cleanly(
    ns: str, tmp_path: Path, kind: str
) -> None:
    """The harness sends SIGTERM to every listener still running once the senders have
    gone, when one that ended on its own (a TCP stream server whose client closed) may
    be exiting. SIGTERMs every 0.2 ms from ready until it has gone, three times: it
    exits 0, its records written, each time (it died -15: the interpreter's exit puts a
    Python handler's signal back to its default; 20 of 20 so before the agents ignored
    SIGTERM once done)."""
    for i in range(3):
        out = tmp_path / f"{i}.jsonl"
        p = subprocess.Popen(
            _agent(ns, kind, "--bind", "127.0.0.1", "--port", str(PORT + i),
                   "--end", str(time.monotonic() + 0.3), "--out", str(out)),
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert p.stderr is not None and p.stderr.readline().strip() == "ready"
            while p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
                time.sleep(0.0002)  # pacing: the signals, until it has gone
            assert p.returncode == 0, (p.returncode, p.stderr.read())
            assert out.exists(), "no records written"  # (none received: an empty file)
        finally:
            p.kill()
            p.wait()


def test_a_sender_with_go_starts_at_the_time_written_there(ns: str, tmp_path: Path) -> None:
    """Up and ready, it sends nothing until the runner has written the start time,
    then starts then, not at its own start-up."""
    go, out = tmp_path / "go", tmp_path / "tx.jsonl"
    tx = subprocess.Popen(
        _agent(ns, "udp-send", "--dst", "127.0.0.1", "--port", str(PORT), "--run", str(RUN),
               "--stream", str(STREAM), "--rate", "100", "--duration", "0.2", "--go", str(go),
               "--out", str(out)),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert tx.stderr is not None and tx.stderr.readline().strip() == "ready"
        up = time.monotonic()
        start = up + 1.0
        go.with_suffix(".tmp").write_text(f"{start:.6f}")
        go.with_suffix(".tmp").rename(go)
        assert tx.wait(timeout=120) == 0
    finally:
        tx.kill()
        tx.wait()
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    (began,) = [r["t"] for r in recs if r["ev"] == "start"]
    sends = [r["t"] for r in recs if r["ev"] == "tx"]
    assert began >= start and min(sends) >= start, (up, start, began, min(sends))
    assert len(sends) == 20
