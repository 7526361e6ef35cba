"""Soak: a hitless switch kept busy for a set time, to see that nothing leaks and
nothing is lost over a long run with everything changing at once.

    .venv/bin/python bench/soak.py [--minutes 10] [--upgrade-every 30] [--json FILE]
                                   [--datapath netdev|ebpf]

Needs root. Four namespace hosts on a bridge of the real daemon (``hitless start`` in
a namespace of its own): hosts a and b carry sequenced UDP at 1,000 datagrams/s each
way, a long-lived TCP connection and a new TCP connection every 20 ms for the whole
run (the impact harness's agents). Meanwhile, one step a second, in turn:

- flow-mod churn: 100 OpenFlow rules (drop rules for TEST-NET-1 addresses, which no
  traffic uses) added with ``ovs-ofctl add-flows``, then deleted the next time round;
- port churn: host c's port removed from the bridge, then added back;
- MAC churn: 1,000 frames from source MACs never seen before, sent by host d (the
  bridge learns them; its MAC table is kept at 8,192 entries, so old ones are evicted);
- every ``--upgrade-every`` seconds a ``hitless upgrade`` (to the same build).

Every 5 s it samples the running daemon's resident memory (VmRSS), open descriptors
(/proc/PID/fd) and threads. At the end it prints the traffic figures (lost, duplicates,
longest gap, failed connections, over the whole run and every upgrade in it), the
memory and descriptor series, and a verdict: memory is flat when the median of the
last fifth of the samples is within 10 % (or 8 MiB) of the median of the first fifth,
counting only samples taken after the first upgrade (the first process also holds what
start-up needed) while host c's port is attached (its receive ring is a large part of
the resident memory); descriptors, when they end no higher than they started.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hitless.impact.analysis import Phase
from hitless.impact.run import Rates, measure
from hitless.impact.switches import BRIDGE, HitlessSwitch
from hitless.impact.topology import Topology, install_signal_cleanup

CLASSES = ("udp", "tcp-stream", "tcp-connect")
SAMPLE_EVERY = 5.0
MAC_TABLE = 8192
MACS_PER_STEP = 1000
RULES_PER_STEP = 100


@dataclass
class Sample:
    t: float  # seconds since the soak began
    pid: int
    rss_kib: int
    fds: int
    threads: int
    upgrades: int
    port_in: bool  # host c's port attached (its receive ring is ~50 MiB of the RSS)
    standby_pid: int = 0  # the crash standby (hitless.daemon.standby), 0 if none
    standby_rss_kib: int = 0
    standby_fds: int = 0


@dataclass
class Soak:
    sw: HitlessSwitch
    top: Topology
    seconds: float
    upgrade_every: float
    workdir: Path
    samples: list[Sample] = field(default_factory=list)
    upgrades: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, int] = field(default_factory=lambda: {"flows": 0, "ports": 0, "macs": 0})
    errors: list[str] = field(default_factory=list)
    _rules_in: bool = False
    _port_out: bool = False
    _mac_base: int = 0

    def sample(self, t0: float) -> None:
        pid = self.sw.daemon_pid()
        if pid is None:
            return
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return  # between two processes of an upgrade
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        spid, srss, sfds = self.sw.standby_pid() or 0, 0, 0
        if spid:
            try:
                sstatus = Path(f"/proc/{spid}/status").read_text()
                sfds = len(os.listdir(f"/proc/{spid}/fd"))
                srss = int(sstatus.split("VmRSS:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                spid = 0
        self.samples.append(
            Sample(
                round(time.monotonic() - t0, 1),
                pid,
                int(fields["VmRSS"].split()[0]),
                fds,
                int(fields["Threads"]),
                len(self.upgrades),
                not self._port_out,
                spid,
                srss,
                sfds,
            )
        )

    def flows(self) -> None:
        if self._rules_in:
            self.sw.ofctl("del-flows", "ip,nw_dst=192.0.2.0/24")
        else:
            path = self.workdir / "rules.txt"
            path.write_text(
                "".join(
                    f"priority=200,ip,nw_dst=192.0.2.{i % 250 + 1},nw_tos={(i // 250) * 4},"
                    "actions=drop\n"
                    for i in range(RULES_PER_STEP)
                )
            )
            self.sw.ofctl("add-flows", str(path))
        self._rules_in = not self._rules_in
        self.steps["flows"] += 1

    def ports(self) -> None:
        port = self.top.hosts[2].port
        if self._port_out:
            self.sw.vsctl("add-port", BRIDGE, port)
        else:
            self.sw.vsctl("del-port", BRIDGE, port)
        self._port_out = not self._port_out
        self.steps["ports"] += 1

    def macs(self) -> None:
        d, a = self.top.hosts[3], self.top.hosts[0]
        d.run(sys.executable, "-m", "hitless.impact.macload", "--dev", d.dev, "--dst", a.mac,
              "--count", str(MACS_PER_STEP), "--start", str(self._mac_base),
              "--rate", "5000")  # fmt: skip
        self._mac_base += MACS_PER_STEP
        self.steps["macs"] += 1

    def run(self) -> list[Phase]:
        """The operation handed to the harness: churn until the time is up."""
        t0 = time.monotonic()
        end = t0 + self.seconds
        next_sample = next_upgrade = t0
        next_upgrade += self.upgrade_every
        phases: list[Phase] = []
        turn = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_sample:
                self.sample(t0)
                next_sample += SAMPLE_EVERY
            step = (self.flows, self.ports, self.macs)[turn % 3]
            turn += 1
            try:
                step()
            except Exception as e:  # keep soaking; the error is reported at the end
                self.errors.append(f"{time.monotonic() - t0:.0f}s {step.__name__}: {e}")
            if time.monotonic() >= next_upgrade and time.monotonic() < end - 10:
                op = self.sw.operation("upgrade")
                try:
                    got = list(op() or ())
                    phases.extend(got)
                    rep = self.sw.last_report or {}
                    self.upgrades.append(
                        {
                            "at": round(time.monotonic() - t0, 1),
                            "freeze_ms": (rep.get("phases_ms") or {}).get("freeze"),
                            "old_loop_max_ms": (rep.get("phases_ms") or {}).get("old_loop_max"),
                        }
                    )
                except Exception as e:
                    self.errors.append(f"{time.monotonic() - t0:.0f}s upgrade: {e}")
                next_upgrade += self.upgrade_every
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        self.sample(t0)
        if self._port_out:
            self.ports()
        return phases


def _fifth(values: list[int], last: bool) -> float:
    k = max(1, len(values) // 5)
    return statistics.median(values[-k:] if last else values[:k])


def verdict(samples: list[Sample]) -> dict[str, Any]:
    # Comparable samples: after the first upgrade, with every port attached.
    settled = [s for s in samples if s.upgrades >= 1 and s.port_in] or samples
    rss = [s.rss_kib for s in settled]
    # The crash standby's link is one descriptor of the daemon's while a standby is
    # connected (none for a while after each upgrade): counted out, to compare alike.
    fds = [s.fds - (1 if s.standby_pid else 0) for s in settled]
    if len(rss) < 2:
        return {"memory_flat": None, "fds_flat": None, "note": "too few samples"}
    first, last = _fifth(rss, False), _fifth(rss, True)
    grew = last - first
    sf = [s.standby_fds for s in settled if s.standby_pid]
    sr = [s.standby_rss_kib for s in settled if s.standby_pid]
    return {
        "rss_first_kib": first,
        "rss_last_kib": last,
        "rss_growth_kib": grew,
        "memory_flat": grew <= max(0.10 * first, 8192),
        "fds_first": fds[0],
        "fds_last": fds[-1],
        "fds_max": max(fds),
        "fds_flat": fds[-1] <= fds[0],
        # The crash standby holds one descriptor per port (c's comes and goes) and is
        # replaced after each upgrade: its own descriptors must not grow either.
        "standby_fds": [min(sf), max(sf)] if sf else None,
        "standby_fds_flat": sf[-1] <= sf[0] if sf else None,
        "standby_rss_kib": [min(sr), max(sr)] if sr else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to soak (default 10)")
    ap.add_argument("--upgrade-every", type=float, default=30.0, metavar="SECONDS",
                    help="seconds between upgrades (default 30)")  # fmt: skip
    ap.add_argument("--datapath", default="netdev", choices=("netdev", "ebpf"))
    ap.add_argument("--json", metavar="FILE", help="also write everything measured here")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("soak: needs root (network namespaces)", file=sys.stderr)
        return 2
    if args.minutes <= 0 or args.upgrade_every <= 0:
        print("soak: --minutes and --upgrade-every must be positive", file=sys.stderr)
        return 2
    install_signal_cleanup()
    seconds = args.minutes * 60
    load0 = os.getloadavg()[0]
    with Topology(n_hosts=4) as top, tempfile.TemporaryDirectory(prefix="hl-soak-") as tmp:
        sw = HitlessSwitch(netns=top.switch_ns)
        sw.datapath_type = args.datapath
        try:
            sw.start()
            sw.add_bridge(top.ports, mac_table_size=MAC_TABLE)
            if not top.wait_connected(30):
                print("soak: the hosts cannot reach each other through the switch", file=sys.stderr)
                return 1
            soak = Soak(sw, top, seconds, args.upgrade_every, Path(tmp))
            print(f"soaking for {args.minutes:g} min (upgrade every {args.upgrade_every:g} s, "
                  f"load average {load0:.1f})", flush=True)  # fmt: skip
            res = measure(top.hosts[:2], soak.run, name="soak", duration=seconds + 5, at=2.0,
                          rates=Rates(), classes=CLASSES, drain=2.0)  # fmt: skip
        finally:
            sw.close()
    load1 = os.getloadavg()[0]
    v = verdict(soak.samples)
    classes = [c.summary() for c in res.classes]
    for c in classes:
        for k in ("disruptions", "arrivals", "failed_at"):
            c.pop(k, None)
    out = {
        "minutes": args.minutes,
        "upgrade_every": args.upgrade_every,
        "datapath": args.datapath,
        "load_average": [round(load0, 1), round(load1, 1)],
        "classes": classes,
        "upgrades": soak.upgrades,
        "steps": soak.steps,
        "errors": soak.errors,
        "samples": [vars(s) for s in soak.samples],
        "verdict": v,
    }
    _print(out)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    lost = sum(c["lost"] + c["duplicates"] for c in classes)
    ok = lost == 0 and not soak.errors and v.get("memory_flat") and v.get("fds_flat")
    ok = ok and v.get("standby_fds_flat") is not False
    return 0 if ok else 1


def _print(out: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title=f"soak: {out['minutes']:g} min, {len(out['upgrades'])} upgrades, "
              f"steps {out['steps']}, load {out['load_average'][0]}-{out['load_average'][1]}")  # fmt: skip
    for col in ("class", "sent", "lost", "dup", "longest gap", "outcome / failures"):
        t.add_column(col)
    for c in out["classes"]:
        t.add_row(c["name"], str(c["sent"]), str(c["lost"]), str(c["duplicates"]),
                  f"{c['longest_gap'] * 1000:.0f} ms",
                  c["outcome"] or json.dumps(c["failures"]) or "")  # fmt: skip
    con.print(t)
    m = Table(title="the daemon over time (a new pid after each upgrade)")
    for col in ("t (s)", "pid", "RSS (MiB)", "fds", "threads", "upgrades", "standby",
                "its RSS (MiB)", "its fds"):  # fmt: skip
        m.add_column(col)
    for s in out["samples"]:
        m.add_row(f"{s['t']:.0f}", str(s["pid"]), f"{s['rss_kib'] / 1024:.1f}", str(s["fds"]),
                  str(s["threads"]), str(s["upgrades"]), str(s["standby_pid"] or "-"),
                  f"{s['standby_rss_kib'] / 1024:.1f}", str(s["standby_fds"]))  # fmt: skip
    con.print(m)
    freezes = [u["freeze_ms"] for u in out["upgrades"] if u.get("freeze_ms") is not None]
    if freezes:
        con.print(f"freeze per upgrade: median {statistics.median(freezes):.0f} ms, "
                  f"max {max(freezes):.0f} ms")  # fmt: skip
    for e in out["errors"]:
        con.print(f"[red]error: {e}")
    con.print(f"verdict: {out['verdict']}")


if __name__ == "__main__":
    sys.exit(main())
