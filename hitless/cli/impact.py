"""hitless impact: measure what upgrading or restarting a switch does to live traffic.
Needs root (it builds network namespaces).

For each operation it builds a fresh topology (hosts in network namespaces, one
veth each to the switch, the switch in a namespace of its own), starts a fresh switch
with one bridge (netdev, or ebpf with --datapath ebpf) in standalone mode (NORMAL: MAC learning), or with --bridges 2
a second one joined to it by patch ports, checks the hosts reach each other, optionally fills the MAC table and installs OpenFlow rules, starts
the traffic classes, performs the operation AT seconds in, and analyses what every
class saw. Everything it creates carries a random suffix and is removed afterwards,
also on Ctrl-C.

Operations (--ops), on hitless:
  upgrade       hitless upgrade: hand the switch to a new process of this build
  downgrade     hitless downgrade --to an older build (see --downgrade-to)
  cold          hitless restart --mode cold: stop, start, relearn
  flow-restore  hitless restart --mode flow-restore: the ovs-ctl sequence
  kill9         kill -9 the daemon, then hitless start (adopts what it can)
  ovsdb-restart stop ovsdb-server by PID and start it again (hitless start) while the
                daemon runs, as an Open vSwitch package upgrade does: a change made just
                before must survive, and the switch must apply one made after
and on Open vSwitch (Debian's ovs-vswitchd, datapath_type=netdev, private run dir):
  cold          plain restart: stop ovs-vswitchd by PID, start it again
  flow-restore  ovs-ctl style: save the OpenFlow rules, flow-restore-wait=true,
                restart, add the rules back, clear flow-restore-wait
  kill9         kill -9 ovs-vswitchd, start it again
  ovsdb-restart the same ovsdb-server restart as for hitless
(upgrade/downgrade do not exist on Open vSwitch: for it, an upgrade IS a restart.)

Traffic classes (--classes), between host a and host b unless said otherwise:
  udp           sequenced UDP both ways: lost, longest gap, disrupted time, reordering
  openflow      the same UDP, but forwarded by explicit OpenFlow rules installed with
                ovs-ofctl (in_port=A,udp,tp_dst=P actions=output:B and the reverse),
                not by NORMAL; their packet counters are read just before and just
                after the operation (a counter that goes down: the rule's statistics
                were lost) and at the end against the datagrams delivered
  controller    an OpenFlow controller session held across the operation: the
                bridge gets a passive controller port (ovs-vsctl set-controller br0
                ptcp:PORT:127.0.0.1, in the switch's namespace) and a controller
                (hitless.openflow's sans-IO codec over a real socket) connects, says
                HELLO, asks for the features, sends an echo request every 20 ms and
                answers the switch's; it reconnects every 20 ms when the session ends.
                Reports "connected throughout" or "N disconnects, reconnected after X
                ms", the longest echo stall and the echo requests left unanswered.
                Passive rather than an active tcp: target, because Open vSwitch
                flushes a bridge's rules and its NORMAL rule when it gets an active
                controller (hitless does not), which would change every other class
  tcp-stream    one long-lived TCP connection: survived or reset, longest stall
  tcp-connect   new TCP connections at a fixed rate: failed, worst connect latency
  arp           host c flushes its ARP entry for b and resolves it again, repeatedly
  nd            the same for IPv6 neighbour discovery
  broadcast     UDP broadcasts from a to every other host
  udp-cross     with --bridges 2 only (and then included by default): sequenced UDP
                both ways between host a on br0 and the host on br1, so every
                datagram crosses the patch ports between the bridges
  stateful      not in the default set: connections that pass only because the switch
                remembers them (hitless.impact.stateful). Host a is inside, b outside;
                the class's packets go through ct(zone=23) and table 71 (installed
                with ovs-ofctl like the openflow class's rules): a may open
                connections (+new from a is committed), b may only answer (+est);
                +new from b, +inv and anything else are dropped by three rules whose
                packet counters are read before and after the operation. "ct udp":
                a opens a UDP connection between two fixed ports with a datagram a
                second, b streams datagrams back at --udp-pps. "ct+dnat tcp": a opens
                a TCP connection to a service address (the VIP, .200 of the subnet,
                reached through b's MAC) that ct(commit,nat(dst=b:port)) translates;
                b sends a message every 10 ms and a only reads, so a switch that forgot
                the connection drops the rest as +new from outside and the stream
                stalls. "ct+dnat new tcp": new connections to the VIP at the
                tcp-connect rate, each committed and translated. Also reports the
                zone's connections (dpctl/dump-conntrack) before and right after the
                operation
  appctl        not in the default set: what `ovs-appctl version` does (connect to
                the switch's control socket, one request) every 5 ms, one at a
                time; reports the longest time without an answer and how long any
                request waited (the management plane's stall, not the datapath's)

OpenFlow rules (--rules N, and the openflow class's two rules) are installed with
stock ovs-ofctl -O OpenFlow13 --bundle add-flows from a file on the bridge's management
socket (RUNDIR/br0.mgmt) of either switch (one atomic bundle: without it ovs-ofctl waits
for a barrier reply after every rule, a round trip each); the --rules ones sit above the table-miss rule and
match (in four shapes over L2, L3 and L4) nothing a host sends, so the traffic is
switched as before. Their number is
checked with ovs-ofctl dump-aggregate before and after the operation.
Bridges (--bridges): 1 puts every host on br0. 2 adds br1 (netdev, standalone) with
one more host (the letter after the last host of br0), joined to br0 by a pair of patch
ports (ovs-vsctl add-port br0 patch-br1 -- set interface patch-br1 type=patch
options:peer=patch-br0, and the reverse on br1): the same configuration for both
switches, as Open vSwitch has patch ports with the netdev datapath too.

Outputs: the table on the terminal; --json (for scripts; it also carries the series
the plot needs, so --from-json can redraw, and under settings.openflow the rule counts
and the traffic rules' counter readings), --plot (a timeline PNG, phases shaded),
--blips (the markdown of docs/blips.md, with an explanation per remaining disruption).
--from-json FILE re-renders a saved run without measuring again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

DEMO = {
    "switch": "both",
    "ops": "upgrade,downgrade,cold,flow-restore,kill9",
    "hosts": 3,
    "duration": 4.0,
    "at": 1.5,
    "macs": 1000,
    "json": "out/impact.json",
    "plot": "out/impact.png",
}
DEFAULTS = {
    "switch": "hitless",
    "ops": "upgrade,cold",
    "hosts": 3,
    "duration": 8.0,
    "at": None,
    "macs": 0,
    "bridges": 1,
}


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{s}: must be 0 or more")
    return v


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "impact",
        help="measure what upgrades and restarts of a switch do to live traffic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_argument_group("what to measure")
    g.add_argument(
        "--switch",
        choices=["hitless", "ovs", "both"],
        help="which switch: this one, Open vSwitch (netdev datapath), or both side by side "
        f"(default {DEFAULTS['switch']})",
    )
    g.add_argument(
        "--datapath",
        choices=["netdev", "ebpf"],
        default="netdev",
        help="hitless's datapath type (Open vSwitch always runs netdev); ebpf keeps "
        "forwarding while no daemon runs (default netdev)",
    )
    g.add_argument(
        "--ops",
        metavar="LIST",
        help="comma-separated operations, run in this order, each on a fresh switch and "
        "topology: upgrade, downgrade, cold, flow-restore, kill9, ovsdb-restart, or all "
        f"(default {DEFAULTS['ops']}; ones a switch does not have are skipped)",
    )
    g.add_argument(
        "--classes",
        metavar="LIST",
        help="comma-separated traffic classes: udp, openflow, controller, tcp-stream, "
        "tcp-connect, arp, nd, broadcast, and with --bridges 2 udp-cross (default: all of "
        "them); also stateful (connections through a conntrack firewall and a DNAT, see "
        "above) and appctl, only when named",
    )
    g.add_argument(
        "--downgrade-to",
        metavar="REV|PATH",
        help="what 'downgrade' hands over to: a git revision of this repository (exported "
        "into its own venv) or a hitless-vswitchd executable; default: the newest release "
        "in tests/upgrade/previous_versions.txt, or, outside the repository, a second "
        "install of this build (the output says which)",
    )
    g = p.add_argument_group("topology and traffic")
    g.add_argument(
        "--hosts",
        type=int,
        metavar="N",
        help="hosts on the bridge, 2..26; with 3 or more the ARP/ND probes run from a "
        f"third host and broadcasts reach every host (default {DEFAULTS['hosts']})",
    )
    g.add_argument(
        "--bridges",
        type=int,
        choices=[1, 2],
        help="1: every host on one bridge; 2: a second bridge with one more host, joined "
        "to the first by a pair of patch ports (type=patch, options:peer), which the "
        f"udp-cross class crosses (default {DEFAULTS['bridges']})",
    )
    g.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help=f"seconds of traffic per operation (default {DEFAULTS['duration']:g})",
    )
    g.add_argument(
        "--after",
        type=float,
        metavar="S",
        help="keep the traffic going at least S seconds after the operation ends, however "
        "long it takes (default: stop at --duration, even in the middle of the operation)",
    )
    g.add_argument(
        "--at",
        type=float,
        metavar="S",
        help="seconds into the traffic when the operation starts (default: a third in)",
    )
    g.add_argument(
        "--udp-pps",
        type=float,
        default=1000.0,
        metavar="N",
        help="UDP datagrams per second in each direction (default 1000)",
    )
    g.add_argument(
        "--connect-interval",
        type=float,
        default=0.02,
        metavar="S",
        help="seconds between new TCP connections (default 0.02: 50 per second)",
    )
    g = p.add_argument_group("scale: state loaded into the switch before the operation")
    g.add_argument(
        "--macs",
        type=_positive_int,
        metavar="N",
        help="learn N extra MAC addresses first: host a sends one frame from each of N "
        "source MACs to host b; the count is checked with ovs-appctl fdb/show before "
        "and after the operation (default 0; --demo: 1000)",
    )
    g.add_argument(
        "--rules",
        type=_positive_int,
        default=0,
        metavar="N",
        help="install N extra OpenFlow rules first (ovs-ofctl --bundle add-flows from a "
        "file): "
        "priority 10, above the table-miss NORMAL rule, four match shapes in turn (UDP "
        "5-tuple, TCP ports, IPv4 addresses, Ethernet addresses), each distinct and "
        "matching nothing a host sends, so they are state to carry, not "
        "hit; their count (with the openflow class's rules) is checked with ovs-ofctl "
        "dump-aggregate before and after the operation (default 0)",
    )
    p.add_argument(
        "--rules-shape",
        choices=("filler", "ovn"),
        default="filler",
        help="filler: only the --rules N rules above; ovn: also an OVN-shaped logical switch "
        "that all the hosts' traffic goes through (13 tables: logical ports in registers, "
        "port security, a conjunction ACL, a learned MAC table, the flood group by "
        "resubmits; hitless.impact.rules.ovn_pipeline), so the operation is measured on "
        "a pipeline as OVN programs it (one bridge only)",
    )
    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="FILE", help="write the results as JSON")
    g.add_argument("--plot", metavar="FILE", help="write the timeline plot (PNG)")
    g.add_argument("--blips", metavar="FILE", help="write the blips page (markdown)")
    g.add_argument(
        "--keep-records",
        metavar="DIR",
        help="copy each operation's raw agent records (JSON lines: send, kernel receive "
        "and read times per datagram) to DIR/<switch>-<operation>/",
    )
    g.add_argument(
        "--from-json",
        metavar="FILE",
        help="do not measure: read results written by --json and render them "
        "(table, --plot, --blips)",
    )
    g.add_argument(
        "--demo",
        action="store_true",
        help="the short comparison make demo runs (< 2 minutes): hitless upgrade, "
        "downgrade, cold and flow-restore restarts and kill -9, then Open vSwitch's plain "
        f"restart, ovs-ctl restart and kill -9; {DEMO['duration']:g} s of traffic each, "
        f"{DEMO['macs']} MACs loaded; writes {DEMO['json']} and {DEMO['plot']} unless "
        "given other files (other options given override these)",
    )
    p.set_defaults(func=run)


# ------------------------------------------------------------------ planning


@dataclasses.dataclass(frozen=True)
class Step:
    switch: str
    op: str
    name: str


def plan(switches: str, ops: Sequence[str]) -> list[Step]:
    """Operations in the order given, hitless first, then Open vSwitch."""
    from hitless.impact.switches import HITLESS_OPS, OVS_OPS, label

    known = {*HITLESS_OPS, *OVS_OPS}
    bad = [o for o in ops if o not in known]
    if bad:
        raise ValueError(f"unknown operations {bad}; known: {', '.join(HITLESS_OPS)}")
    steps = []
    for sw, have in (("hitless", HITLESS_OPS), ("ovs", OVS_OPS)):
        if switches in (sw, "both"):
            steps += [Step(sw, o, label(sw, o)) for o in ops if o in have]
    return steps


def _resolve(args: argparse.Namespace) -> None:
    """Fill unset options from --demo or the defaults."""
    base = DEMO if args.demo else {}
    for key, default in {**DEFAULTS, "json": None, "plot": None}.items():
        if getattr(args, key) is None:
            setattr(args, key, base.get(key, default))


# ------------------------------------------------------------------ running


def _downgrade_target(spec: str | None, console: Console) -> tuple[Path, str]:
    from hitless.impact import builds

    if spec and Path(spec).exists():
        return Path(spec).resolve(), f"downgraded to the executable {spec}"
    if spec:
        b = builds.build(spec)
    else:
        b, note = builds.previous_build()
        if note:
            return b.vswitchd, note
    console.print(f"downgrade: to build {b.describe}")
    return b.vswitchd, f"downgraded to build {b.commit[:7]}"


def measure_step(
    step: Step,
    args: argparse.Namespace,
    classes: Sequence[str],
    downgrade_to: Path | None,
    progress: Callable[[str, float], None],
    say: Callable[[str], None],
) -> Any:
    """One operation on a fresh topology and switch; the ImpactResult."""
    from hitless.impact import macload
    from hitless.impact.cpuwait import Sampler, pidfile_reader, takeover_reader
    from hitless.impact.run import Rates, controller_port, measure, pick_port
    from hitless.impact.switches import HitlessSwitch, OvsSwitch, SwitchError
    from hitless.impact.topology import Topology

    rates = Rates(udp_pps=args.udp_pps, connect_interval=args.connect_interval)
    notes: list[str] = []
    extra: dict[str, Any] = {}
    have = 0
    port = pick_port()
    with Topology(args.hosts, bridges=args.bridges) as topo:
        sw: HitlessSwitch | OvsSwitch
        if step.switch == "hitless":
            sw = HitlessSwitch(topo.switch_ns, downgrade_to=downgrade_to)
            sw.datapath_type = args.datapath
        else:
            sw = OvsSwitch(topo.switch_ns)
        sw.rules_timeout = _rules_timeout(args.rules)
        # What this run created carries these names (tests check exactly these are gone).
        say(f"run: suffix {topo.suffix}, rundir {sw.rundir}")
        extra["names"] = {"suffix": topo.suffix, "rundir": str(sw.rundir)}
        try:
            progress(f"{step.name}: starting the switch", 0.0)
            sw.start()
            sw.add_bridge(topo.ports_on(0), mac_table_size=max(8192, args.macs + 1024))
            if args.bridges == 2:
                sw.add_second_bridge(topo.ports_on(1))
            if "controller" in classes:
                # passive (service) controller: an active one would make Open vSwitch
                # flush the bridge's rules and drop NORMAL (see hitless.impact.run)
                sw.vsctl("set-controller", "br0", f"ptcp:{controller_port(port)}:127.0.0.1")
            if not topo.wait_connected():
                raise SwitchError(f"the hosts do not reach each other through {step.switch}")
            if args.macs:
                a, b = topo.hosts[0], topo.hosts[1]
                progress(f"{step.name}: loading {args.macs} MAC addresses", 0.0)
                have = macload.load(
                    a.ns, a.dev, b.mac, args.macs, lambda: sw.appctl("fdb/show", "br0")
                )
                if have < args.macs:
                    say(f"[yellow]{step.name}: the switch holds only {have} of {args.macs} MACs")
            ct = _StatefulLoad(sw, topo.hosts, port) if "stateful" in classes else None
            of = _OpenFlowLoad(
                sw, topo.hosts, args.rules, "openflow" in classes, port, args.rules_shape,
                ct.rules if ct is not None else (),
            )
            if of.wanted:
                progress(f"{step.name}: installing {of.total} OpenFlow rules", 0.0)
                of.install()
                if of.before < of.total:
                    say(
                        f"[yellow]{step.name}: the switch holds only {of.before} of {of.total} rules"
                    )
            op = of.wrap(sw.operation(step.op))
            if ct is not None:
                op = ct.wrap(op)
            op_start: list[float] = []

            def timed_op() -> Any:
                op_start.append(time.monotonic())
                return op()

            # How long the switch's forwarding process waited for a CPU while the
            # traffic ran (whichever process its pidfile names: the new one of a
            # handoff from its commit on), for the "own" part of a gap.
            # From a handoff's Ready on, the new process's (its restore and commit,
            # before its pidfile says it forwards): sampled from its start.
            cpu = Sampler(
                pidfile_reader(sw.pidfile),
                period=0.005,
                watch=takeover_reader(sw.rundir) if step.switch == "hitless" else None,
            )
            with cpu:
                res = measure(
                    topo.hosts,
                    timed_op,
                    name=step.name,
                    duration=args.duration,
                    at=args.at,
                    rates=rates,
                    classes=classes,
                    progress=progress,
                    port=port,
                    controller_ns=topo.switch_ns,
                    ctl=str(sw.ctl),
                    keep_dir=_keep_dir(args, step),
                    after=args.after,
                )
            if op_start:
                report = sw.last_report or {}
                ready, new_pid = report.get("ready_at"), report.get("new_pid")
                if isinstance(ready, int | float) and isinstance(new_pid, int):
                    cpu.hand_over(new_pid, float(ready))  # it holds the datapath from Ready
                res = dataclasses.replace(res, cpu_waits=cpu.owned(op_start[0]))
            keep = _keep_dir(args, step)
            if keep is not None:  # the switch's logs (slow loop turns...) next to the records
                for f in Path(sw.rundir).glob("*.log"):
                    shutil.copy(f, keep / f.name)
            if sw.last_report is not None:
                extra["handoff_phases_ms"] = sw.last_report.get("phases_ms", {})
                if "freeze_realtime" in sw.last_report:  # builds since the real-time freeze
                    extra["handoff_realtime"] = bool(sw.last_report["freeze_realtime"])
            if step.switch == "hitless" and step.op in ("upgrade", "downgrade"):
                notes.append(_handoff_verdict(res))
            if args.macs:
                after = macload.count_loaded(sw.appctl("fdb/show", "br0"), args.macs)
                notes.append(
                    f"MAC table (fdb/show): {have} of {args.macs} loaded MACs before, {after} after"
                )
            if of.wanted:
                progress(f"{step.name}: reading the OpenFlow rules", 1.0)
                notes += of.finish(res)
                extra["openflow"] = of.summary()
            if ct is not None:
                notes += ct.finish()
                extra["stateful"] = ct.summary()
        finally:
            sw.close()
    settings = {
        **res.settings,
        "switch": step.switch,
        "datapath": args.datapath if step.switch == "hitless" else "netdev",
        "op": step.op,
        "macs": args.macs,
        "rules": args.rules,
        "bridges": args.bridges,
        **extra,
        "argv": args.argv,
    }
    return dataclasses.replace(res, settings=settings, notes=res.notes + tuple(notes))


def _handoff_verdict(res: Any) -> str:
    """The handoff claim (hitless.impact.bounds, the check the tests make) applied to
    this run: nothing lost or duplicated, gap and latency within the bound its own
    reported freeze implies, the operation inside the traffic."""
    from hitless.impact.bounds import HANDOFF, after_freeze, violations

    freezes = [p.end - p.start for p in res.window.phases if p.name.startswith("freeze")]
    bound = after_freeze(freezes) if freezes else HANDOFF
    bad = violations(res, bound)
    if not bad:
        return f"handoff claim kept ({bound})"
    return f"handoff claim broken ({bound}): " + "; ".join(bad)


def _keep_dir(args: argparse.Namespace, step: Step) -> Path | None:
    if not args.keep_records:
        return None
    return Path(args.keep_records) / f"{step.switch}-{step.op}"


def _rules_timeout(n: int) -> float:
    """Seconds allowed for a command that carries ``n`` OpenFlow rules (installing them,
    a handoff, a save and restore): generous, so a slow machine is measured, not failed."""
    return 60.0 + n / 150  # 100k rules took > 260 s into hitless at a load average of 12


class _OpenFlowLoad:
    """The OpenFlow rules of one measured operation: the ``--rules`` filler and the
    openflow class's traffic rules; installs them, counts them around the operation and
    reads the traffic rules' packet counters (see ``hitless.impact.rules``)."""

    def __init__(
        self,
        sw: Any,
        hosts: Sequence[Any],
        n_fill: int,
        traffic: bool,
        port: int,
        shape: str = "filler",
        stateful: Sequence[str] = (),
    ) -> None:
        from hitless.impact import rules
        from hitless.impact.run import openflow_class_name, openflow_ports

        self.sw = sw
        self.n_fill = n_fill
        self.traffic: tuple[rules.TrafficRule, ...] = ()
        if traffic:
            a, b = hosts[0], hosts[1]
            self.traffic = rules.traffic_rules(
                (openflow_class_name(a.name, b.name), openflow_class_name(b.name, a.name)),
                (sw.ofport(a.port), sw.ofport(b.port)),
                openflow_ports(port),
            )
        self.ovn: list[str] = []
        if shape == "ovn":
            self.ovn = rules.ovn_pipeline(
                [
                    rules.LogicalPort(sw.ofport(h.port), i + 1, h.mac, h.ip.split("/")[0])
                    for i, h in enumerate(hosts)
                ],
                entry_priority=50,
            )
        self.stateful = list(stateful)
        self.total = n_fill + len(self.traffic) + len(self.ovn) + len(self.stateful)
        self.before = self.after = 0
        self.samples: dict[str, list[int | None]] = {r.name: [] for r in self.traffic}
        self.readings: list[rules.CounterReading] = []

    @property
    def wanted(self) -> bool:
        return self.total > 0

    def count(self) -> int:
        from hitless.impact import rules

        return rules.aggregate_count(self.sw.ofctl("dump-aggregate", rules.ours_match()))

    def counters(self) -> dict[str, int | None]:
        from hitless.impact import rules

        if not self.traffic:
            return {}
        dump = self.sw.ofctl("dump-flows", "--no-names", rules.cookie_match(rules.COOKIE_TRAFFIC))
        return rules.rule_counters(dump, self.traffic)

    def install(self) -> None:
        from hitless.impact import rules

        path = self.sw.rundir / "impact-rules.flows"
        with open(path, "w") as f:
            for line in rules.filler_rules(self.n_fill):
                f.write(line + "\n")
            for r in self.traffic:
                f.write(r.flow() + "\n")
            for line in self.ovn + self.stateful:
                f.write(line + "\n")
        # One bundle: plain add-flows makes a round trip (flow_mod, barrier) per rule,
        # ~1 ms each into hitless on a loaded machine (0.15 ms into Open vSwitch).
        self.sw.ofctl("add-flows", "--bundle", str(path), timeout=self.sw.rules_timeout)
        self.before = self.count()

    def wrap(self, op: Callable[[], Any]) -> Callable[[], Any]:
        """The operation, with the traffic rules' counters read just before and just after."""
        if not self.traffic:
            return op

        def with_counters() -> Any:
            for name, n in self.counters().items():
                self.samples[name].append(n)
            phases = op()
            for name, n in self._safe_counters().items():
                self.samples[name].append(n)
            return phases

        return with_counters

    def _safe_counters(self) -> dict[str, int | None]:
        from hitless.impact.switches import SwitchError

        try:
            return self.counters()
        except SwitchError:  # the switch does not answer: as good as no rule
            return {r.name: None for r in self.traffic}

    def finish(self, res: Any) -> list[str]:
        """Count the rules again and settle the counters against what the openflow
        class delivered; the notes for the result."""
        from hitless.impact import rules

        self.after = self.count()
        notes = [
            rules.rules_note(
                self.total,
                self.before,
                self.after,
                {
                    "from --rules": self.n_fill,
                    "for the openflow class": len(self.traffic),
                    "of the OVN-shaped pipeline": len(self.ovn),
                    "for the stateful class": len(self.stateful),
                },
            )
        ]
        if not self.traffic:
            return notes
        delivered = {r.name: res.by_name(r.name).received for r in self.traffic}
        # statistics reach a rule from the datapath with some delay (Open vSwitch: its
        # revalidators' interval): wait until they reach what arrived, or stop moving
        end = self._safe_counters()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(
            n is not None and n < delivered[k] for k, n in end.items()
        ):
            time.sleep(0.5)
            again = self._safe_counters()
            if again == end and time.monotonic() > deadline - 1.5:
                break
            end = again
        for r in self.traffic:
            before, after = (self.samples[r.name] + [None, None])[:2]
            reading = rules.CounterReading(r.name, before, after, end[r.name], delivered[r.name])
            self.readings.append(reading)
            notes.append(reading.note())
        return notes

    def summary(self) -> dict[str, Any]:
        return {
            "rules": {
                "installed": self.total,
                "from_rules": self.n_fill,
                "traffic": len(self.traffic),
                "ovn": len(self.ovn),
                "stateful": len(self.stateful),
                "before": self.before,
                "after": self.after,
            },
            "counters": {r.name: r.summary() for r in self.readings},
        }


class _StatefulLoad:
    """The stateful class's side of one measured operation (``hitless.impact.stateful``):
    its rules (installed with the others by ``_OpenFlowLoad``), host a's neighbour entry
    for the VIP (b's MAC), and the drop rules' counters and the zone's connections read
    around the operation."""

    def __init__(self, sw: Any, hosts: Sequence[Any], port: int) -> None:
        from hitless.impact import stateful

        a, b = hosts[0], hosts[1]
        self.sw = sw
        self.rules = stateful.stateful_rules(
            sw.ofport(a.port), sw.ofport(b.port), a.ip, b.ip, stateful.ct_ports(port)
        )
        a.run("ip", "neigh", "replace", stateful.vip(b.ip), "lladdr", b.mac,
              "dev", getattr(a, "dev", "eth0"), "nud", "permanent")  # fmt: skip
        self.drops: list[dict[str, int | None]] = []
        self.conns: list[str] = []  # dpctl/dump-conntrack -s, each read
        self.times: list[float] = []

    def _read(self) -> None:
        from hitless.impact import stateful
        from hitless.impact.switches import SwitchError

        try:
            dump = self.sw.ofctl("dump-flows", "--no-names", f"table={stateful.CT_TABLE}")
            self.drops.append(stateful.drop_counters(dump))
        except SwitchError:  # the switch does not answer: as good as no rule
            self.drops.append(dict.fromkeys(stateful.DROP_COOKIES))
        try:
            self.conns.append(self.sw.appctl("dpctl/dump-conntrack", "-s"))
        except SwitchError:
            self.conns.append("")
        self.times.append(time.monotonic())

    def wrap(self, op: Callable[[], Any]) -> Callable[[], Any]:
        """The operation, with the drop counters and connections read just before and
        just after it."""

        def with_reads() -> Any:
            self._read()
            phases = op()
            self._read()
            return phases

        return with_reads

    def finish(self) -> list[str]:
        from hitless.impact import stateful

        self._read()
        empty: dict[str, int | None] = dict.fromkeys(stateful.DROP_COOKIES)
        before, after, end = (self.drops + [empty] * 3)[:3]
        self.reading = stateful.DropReading(before, after, end)
        cb, ca, ce = (self.conns + ["", "", ""])[:3]
        elapsed = self.times[1] - self.times[0] if len(self.times) > 1 else 0.0
        self.connections = stateful.ConntrackReading(
            stateful.conntrack_entries(cb), stateful.conntrack_timeouts(cb),
            stateful.conntrack_entries(ca), stateful.conntrack_entries(ce), elapsed,
        )  # fmt: skip
        return [self.connections.note(), self.reading.note()]

    def summary(self) -> dict[str, Any]:
        return {
            "drops": self.reading.dropped(),
            "drop_counters": {"before": self.drops[0] if self.drops else None,
                              "after": self.drops[1] if len(self.drops) > 1 else None,
                              "end": self.drops[2] if len(self.drops) > 2 else None},
            "conntrack": self.connections.summary(),
        }  # fmt: skip


def _argv() -> str:
    words = ["hitless", *sys.argv[1:]] if sys.argv and "impact" in sys.argv else ["hitless"]
    return " ".join(words)


def run(args: argparse.Namespace) -> int:
    from hitless.impact import report
    from hitless.impact.run import ALL_CLASSES, CONTROLLER_CLASSES, CROSS_CLASSES, KNOWN_CLASSES
    from hitless.impact.switches import HITLESS_OPS
    from hitless.impact.topology import install_signal_cleanup, signalled

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 140))  # logs: do not wrap every cell
    _resolve(args)
    args.argv = _argv()
    if args.from_json:
        results = report.from_json(json.loads(Path(args.from_json).read_text()))
        return _render(results, args, console)
    default_classes = (
        ALL_CLASSES + CONTROLLER_CLASSES + (CROSS_CLASSES if args.bridges == 2 else ())
    )
    classes = tuple(args.classes.split(",")) if args.classes else default_classes
    unknown = set(classes) - set(KNOWN_CLASSES)
    ops = list(HITLESS_OPS) if args.ops == "all" else args.ops.split(",")
    try:
        if unknown:
            raise ValueError(
                f"unknown classes {sorted(unknown)}; known: {', '.join(KNOWN_CLASSES)}"
            )
        if args.bridges == 1 and set(classes) & set(CROSS_CLASSES):
            raise ValueError("the udp-cross class needs --bridges 2")
        if args.bridges == 2 and args.rules_shape == "ovn":
            raise ValueError("--rules-shape ovn programs one bridge: use --bridges 1")
        top = 26 - (args.bridges - 1)
        if not 2 <= args.hosts <= top:
            raise ValueError(f"--hosts {args.hosts}: between 2 and {top}")
        steps = plan(args.switch, ops)
        if not steps:
            raise ValueError(f"none of the operations {ops} exists on {args.switch}")
    except ValueError as e:
        console.print(f"[red]hitless impact: {e}")
        return 2
    install_signal_cleanup()
    downgrade_to, downgrade_note = None, None
    if any(s.op == "downgrade" for s in steps):
        try:
            downgrade_to, downgrade_note = _downgrade_target(args.downgrade_to, console)
        except Exception as e:
            console.print(f"[red]hitless impact: no build to downgrade to: {e}")
            return 1
        if args.datapath == "ebpf" and args.switch in ("hitless", "both"):
            from hitless.cli.upgrade import peer_ebpf_layouts, peer_lacks_bpf_source

            if peer_ebpf_layouts([str(downgrade_to)]) is None:
                console.print(
                    f"[red]hitless impact: the downgrade target ({downgrade_note}) has no ebpf "
                    "datapath: give --downgrade-to a build that has it (make demo "
                    "DATAPATH=ebpf downgrades to 3cd53f8)"
                )
                return 1
            if peer_lacks_bpf_source([str(downgrade_to)]):
                console.print(
                    f"[red]hitless impact: the downgrade target ({downgrade_note}) cannot adopt "
                    "an ebpf datapath: its installation lacks the BPF program source (builds "
                    "before state format 7): give --downgrade-to a build of state format 7 or "
                    "later, or 3cd53f8"
                )
                return 1
    t0 = time.monotonic()
    results, failed = [], []
    for i, step in enumerate(steps):
        console.print(f"[bold][{i + 1}/{len(steps)}] {step.name}")
        try:
            with report.rich_progress(console) as progress:
                res = measure_step(step, args, classes, downgrade_to, progress, console.print)
        except KeyboardInterrupt:
            console.print("[red]interrupted; everything this run created has been removed")
            return 130
        except Exception as e:  # one failed operation must not hide the others
            console.print(f"[red]{step.name} failed: {e}")
            failed.append(step.name)
            continue
        if signalled():  # an interrupt Python swallowed (raised in a fork handler)
            console.print("[red]interrupted; everything this run created has been removed")
            return 130
        if step.op == "downgrade" and downgrade_note:
            res = dataclasses.replace(res, notes=(*res.notes, downgrade_note))
        results.append(res)
        lost = sum(c.lost for c in res.classes)
        console.print(
            f"    {'[green]no disruption' if res.clean else f'[red]{lost} lost or failed'}"
            f"[/] (operation took {res.window.end * 1000:.0f} ms)"
        )
    console.print(f"measured {len(results)} operation(s) in {time.monotonic() - t0:.0f} s")
    if args.json and results:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_json(results, series=True), indent=1) + "\n")
    rc = _render(results, args, console) if results else 1
    return 1 if failed else rc


def _preamble(results: Sequence[Any], argv: str) -> str:
    first = results[0].settings
    rates = first.get("rates", {})
    kinds = {c.kind for r in results for c in r.classes}
    openflow = (
        ", the same UDP through explicit OpenFlow rules (in_port, udp, tp_dst → output) "
        "instead of NORMAL"
        if "openflow" in kinds
        else ""
    )
    rules = int(first.get("rules", 0) or 0)
    n_hosts = len(first.get("hosts", []))
    if int(first.get("bridges", 1) or 1) == 2:
        where = (
            f"{n_hosts} hosts in network namespaces, {n_hosts - 1} on one netdev bridge and "
            "1 on a second, joined by a pair of patch ports, both in standalone mode (NORMAL)"
        )
    else:
        where = (
            f"{n_hosts} hosts in network namespaces on one netdev bridge in standalone "
            "mode (NORMAL)"
        )
    cross = ", the same UDP between bridges" if "udp-cross" in kinds else ""
    if "controller" in kinds:
        cross += (
            ", an OpenFlow controller session (to the bridge's passive controller port) "
            f"with an echo request every {rates.get('echo_interval', 0.02) * 1000:g} ms"
        )
    return (
        f"Generated by `{argv}` from a real run; do not edit by hand, regenerate it "
        "(`--from-json FILE --blips docs/blips.md` re-renders a saved run). Each "
        f"operation ran on a fresh switch and topology: {where}, "
        f"UDP at {rates.get('udp_pps', 0):g} datagrams/s each way{openflow}{cross}, a long-lived "
        "TCP connection, a new TCP connection every "
        f"{rates.get('connect_interval', 0) * 1000:g} ms, an ARP and an ND resolution every "
        f"{rates.get('probe_interval', 0) * 1000:g} ms, "
        f"broadcasts at {rates.get('broadcast_pps', 0):g}/s, "
        f"{first.get('macs', 0)} extra MAC addresses learned and {rules} extra OpenFlow "
        "rules installed before the operation. *Disrupted* is the total time during which "
        "traffic that should have arrived did not (lost, or more than "
        f"{rates.get('late_after', 0) * 1000:g} ms late)."
    )


def _render(results: Sequence[Any], args: argparse.Namespace, console: Console) -> int:
    from hitless.impact import report
    from hitless.impact.explain import EXPLANATIONS, OPERATION_NOTES

    report.print_table(results, console)
    if args.json and not args.from_json:
        console.print(f"JSON:     {args.json}")
    if args.plot:
        path = Path(args.plot)
        path.parent.mkdir(parents=True, exist_ok=True)
        report.plot_timeline(results, path, title="hitless impact: traffic across each operation")
        console.print(f"plot:     {path.resolve()}")
    if args.blips:
        path = Path(args.blips)
        path.parent.mkdir(parents=True, exist_ok=True)
        argv = results[0].settings.get("argv") or "hitless impact"
        text = report.blips_markdown(
            results,
            EXPLANATIONS,
            preamble=_preamble(results, argv),
            operation_notes=OPERATION_NOTES,
        )
        path.write_text(text.rstrip("\n") + "\n")
        console.print(f"blips:    {path}")
    return 0
