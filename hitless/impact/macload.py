"""Fill a switch's MAC table before an operation: frames from N distinct source MACs.

Run inside a host's namespace (standard library only)::

    python -m hitless.impact.macload --dev eth0 --dst 02:..:02 --count 50000 [--start 0]

sends one Ethernet frame per source MAC ``0e:00:xx:xx:xx:xx`` (locally administered,
unicast; ``mac(i)``) to ``--dst`` (a host the switch has already learned, so each
frame goes to one port instead of being flooded), EtherType 0x88B5 (IEEE local
experimental: the receiving host drops it). The switch learns every source MAC on
the sender's port, exactly as it would learn real hosts behind that port.

``load()`` runs it from the harness and checks the result with ``ovs-appctl
fdb/show`` (re-sending the MACs still missing), so what is reported as loaded is what
the switch holds.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from collections.abc import Callable

__all__ = ["PREFIX", "count_loaded", "load", "mac"]

PREFIX = "0e:00:"
ETHERTYPE = 0x88B5


def mac(i: int) -> str:
    b = i.to_bytes(4, "big")
    return PREFIX + ":".join(f"{x:02x}" for x in b)


def count_loaded(fdb_show: str, count: int | None = None) -> int:
    """How many distinct MACs of ours (``mac(i)``, i < ``count`` if given) ``fdb/show``
    lists: the MAC column only, so a host MAC that merely contains the prefix, or one
    of ours on two VLANs, is not counted twice."""
    seen: set[int] = set()
    for line in fdb_show.splitlines():
        for tok in line.lower().split():
            if len(tok) != 17 or not tok.startswith(PREFIX):
                continue
            try:
                i = int(tok[len(PREFIX) :].replace(":", ""), 16)
            except ValueError:
                continue
            if count is None or i < count:
                seen.add(i)
    return len(seen)


def _send(dev: str, dst: str, start: int, count: int, rate: float) -> None:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((dev, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    head = bytes.fromhex(dst.replace(":", ""))
    tail = ETHERTYPE.to_bytes(2, "big") + bytes(46)
    src_hi = bytes.fromhex(PREFIX.replace(":", ""))
    t0 = time.monotonic()
    batch = 256
    for i in range(start, start + count):
        frame = head + src_hi + i.to_bytes(4, "big") + tail
        while True:
            try:
                s.send(frame)
                break
            except BlockingIOError:  # pragma: no cover - socket is blocking
                time.sleep(0.001)
            except OSError:  # ENOBUFS: the device queue is full; let it drain
                time.sleep(0.001)
        sent = i - start + 1
        if sent % batch == 0 and rate > 0:
            ahead = t0 + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    s.close()


def load(
    ns: str,
    dev: str,
    dst: str,
    count: int,
    fdb_show: Callable[[], str],
    rate: float = 20000.0,
    rounds: int = 4,
) -> int:
    """Send ``count`` MACs from the host in ``ns`` and wait until the switch's
    ``fdb/show`` lists them (re-sending up to ``rounds`` times). Returns how many of
    ours the switch holds."""
    have = 0
    for _ in range(rounds):
        subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "hitless.impact.macload",
             "--dev", dev, "--dst", dst, "--count", str(count), "--rate", str(rate)],
            check=True,
            capture_output=True,
            timeout=60 + count / max(rate, 1) * 2,
        )  # fmt: skip
        # the switch learns from its upcall queue: wait for the count to settle
        last, deadline = -1, time.monotonic() + 10 + count / 5000
        while time.monotonic() < deadline:
            have = count_loaded(fdb_show(), count)
            if have >= count or have == last:
                break
            last = have
            time.sleep(0.3)
        if have >= count:
            break
        rate = rate / 2  # slower: fewer drops in the switch's receive queue
    return have


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hitless.impact.macload", description=__doc__)
    ap.add_argument("--dev", required=True)
    ap.add_argument("--dst", required=True, help="destination MAC")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--rate", type=float, default=20000.0, help="frames/s (0: unpaced)")
    a = ap.parse_args(argv)
    _send(a.dev, a.dst, a.start, a.count, a.rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
