"""``coverage/show``: event counters that say what the switch has been doing (upcalls,
datapath hits and misses, flow installs and revalidations, MAC learning, packet-ins,
reconfigurations, management commands), with their average rates over the last
5 seconds, minute and hour, in ovs-vswitchd's layout.

The counters are read from the objects that already count them (no increments in the
forwarding path); ``Coverage.sample(now)`` records the totals at most every 5 s (the
daemon's loop calls it) so that rates can be computed. Time is real time (a warped test
clock does not make rates).
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from hitless.daemon.unixctl import Request, command
from hitless.ofproto.bridge import Bridge

if TYPE_CHECKING:
    from hitless.daemon.switch import Switch

SAMPLE_INTERVAL = 5.0
HOUR = 3600.0


def _bridges(sw: Switch) -> list[Bridge]:
    return [rb.bridge for rb in sw.bridges.values() if isinstance(rb.bridge, Bridge)]


def _dp_sum(sw: Switch, attr: str) -> int:
    return sum(getattr(rb.datapath.lookup_stats(), attr) for rb in sw.bridges.values())


# name -> how to read its total from the switch
COUNTERS: dict[str, Callable[[Switch], int]] = {
    "bridge_reconfigure": lambda sw: sw.counters.reconciliations,
    "bridge_reconfigure_warm": lambda sw: sw.counters.warm,
    "bridge_reconfigure_cold": lambda sw: sw.counters.cold,
    "ovsdb_txn_failure": lambda sw: sw.counters.txn_failures,
    "dpif_hit": lambda sw: _dp_sum(sw, "hit"),
    "dpif_miss": lambda sw: _dp_sum(sw, "missed"),
    "dpif_lost": lambda sw: _dp_sum(sw, "lost"),
    "upcall_handled": lambda sw: sum(b.n_upcalls for b in _bridges(sw)),
    "upcall_flow_limit_hit": lambda sw: sum(b.n_flow_limit_hit for b in _bridges(sw)),
    "packet_in": lambda sw: sum(b.n_packet_ins for b in _bridges(sw)),
    "dpif_flow_put": lambda sw: sum(b.revalidator.n_installed for b in _bridges(sw)),
    "rev_flow_modified": lambda sw: sum(b.revalidator.n_modified for b in _bridges(sw)),
    "rev_flow_deleted": lambda sw: sum(b.revalidator.n_deleted for b in _bridges(sw)),
    "rev_flow_idle": lambda sw: sum(b.revalidator.n_idle_deleted for b in _bridges(sw)),
    "rev_flow_adopted": lambda sw: sum(b.revalidator.n_adopted for b in _bridges(sw)),
    "mac_learned": lambda sw: sum(b.mac.n_learned for b in _bridges(sw)),
    "mac_moved": lambda sw: sum(b.mac.n_moves for b in _bridges(sw)),
    "mac_expired": lambda sw: sum(b.mac.n_expired for b in _bridges(sw)),
    "mac_evicted": lambda sw: sum(b.mac.n_evicted for b in _bridges(sw)),
    "unixctl_received": lambda sw: sw.unixctl_server.n_requests if sw.unixctl_server else 0,
}


class Coverage:
    """Samples of the counters' totals, for rates (bounded: one hour of samples)."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, dict[str, int]]] = deque(
            maxlen=int(HOUR / SAMPLE_INTERVAL) + 2
        )
        # counters of bridges that are gone or of a predecessor are not kept: totals are
        # this process's view of the bridges it runs

    def totals(self, sw: Switch) -> dict[str, int]:
        return {name: fn(sw) for name, fn in COUNTERS.items()}

    def sample(self, sw: Switch, now: float) -> None:
        if self.samples and now - self.samples[-1][0] < SAMPLE_INTERVAL:
            return
        self.samples.append((now, self.totals(sw)))

    def rate(self, name: str, total: int, now: float, window: float) -> float:
        """Average events per second over the last ``window`` seconds, as Open vSwitch
        averages them (the count in the window divided by the window's length)."""
        base = 0
        for t, tot in self.samples:
            if now - t <= window:
                base = tot.get(name, 0)
                break
        return (total - base) / window

    def show(self, sw: Switch, now: float) -> str:
        totals = self.totals(sw)
        h = zlib.crc32(",".join(COUNTERS).encode())
        out = [
            "Event coverage, avg rate over last: 5 seconds, last minute, last hour,  "
            f"hash={h:08x}:\n"
        ]
        never = 0
        for name, total in totals.items():
            if not total:
                never += 1
                continue
            r5 = self.rate(name, total, now, SAMPLE_INTERVAL)
            r60 = self.rate(name, total, now, 60.0)
            r3600 = self.rate(name, total, now, HOUR)
            out.append(
                f"{name:<24} {r5:5.1f}/sec {r60:9.3f}/sec {r3600:13.4f}/sec   total: {total}\n"
            )
        out.append(f"{never} events never hit\n")
        return "".join(out)


@command("coverage/show")
def coverage_show(req: Request) -> str:
    sw = req.switch
    return sw.coverage.show(sw, sw.clock.base())


@command("coverage/read-counter", "COUNTER", 1, 1)
def coverage_read_counter(req: Request) -> str:
    fn = COUNTERS.get(req.args[0])
    return f"{fn(req.switch) if fn is not None else 0}\n"
