"""Datapath and bridge views, in Open vSwitch's layouts: ``dpif/show``, ``dpctl/show``,
``dpctl/dump-flows``, ``dpif/dump-flows``, ``dpctl/del-flows``, ``bridge/dump-flows``,
``fdb/stats-show``, ``upcall/show``, ``revalidator/purge``, ``memory/show``, and
``dpif-ebpf/layout-for`` (the ebpf datapath's own step before a handoff).

Every datapath provider answers through the ``Datapath`` interface alone (``ports()``,
``flow_dump()``, ``flow_count()``, ``lookup_stats()``), so a new provider (ebpf) shows up
here without changes. hitless has one datapath per bridge, named after the bridge
(``dummy@br0``), where Open vSwitch has one per type (``dummy@ovs-dummy``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hitless.daemon.unixctl import CommandError, Request, command
from hitless.datapath.base import Datapath, DpPort
from hitless.ofproto.bridge import Bridge
from hitless.openflow.ofctl_text import format_instructions, format_match

if TYPE_CHECKING:
    from hitless.daemon.switch import RunningBridge, Switch

OFPP_LOCAL = 0xFFFFFFFE


def _running(switch: Switch, name: str) -> RunningBridge:
    switch.bridge(name)  # the error for an unknown or failed bridge
    _, _, bare = name.rpartition("@")
    return switch.bridges[bare]


def _datapaths(switch: Switch, names: list[str]) -> list[tuple[str, RunningBridge]]:
    """(bridge name, running bridge) for DP arguments (``TYPE@NAME`` or ``NAME``), or for
    every bridge when none is given."""
    if not names:
        return [(n, switch.bridges[n]) for n in sorted(switch.bridges)]
    out = []
    for name in names:
        _, _, bare = name.rpartition("@")
        if bare not in switch.bridges:
            raise CommandError(f"datapath not found: {name} (datapaths: {_dp_list(switch)})")
        out.append((bare, switch.bridges[bare]))
    return out


def _dp_list(switch: Switch) -> str:
    return (
        ", ".join(f"{rb.datapath.type}@{n}" for n, rb in sorted(switch.bridges.items())) or "none"
    )


def port_type(dp: Datapath, port: DpPort) -> str:
    """A port's type as Open vSwitch names it (dummy-internal on a dummy datapath)."""
    if port.type == "internal" and dp.type == "dummy":
        return "dummy-internal"
    return port.type


def _ofport(port: DpPort) -> str:
    return "65534" if port.port_no == OFPP_LOCAL else str(port.port_no)


@command("dpif/show")
def dpif_show(req: Request) -> str:
    out = []
    for name, rb in _datapaths(req.switch, []):
        dp = rb.datapath
        st = dp.lookup_stats()
        out.append(f"{dp.type}@{name}: hit:{st.hit} missed:{st.missed}\n  {name}:\n")
        for p in sorted(dp.ports().values(), key=lambda p: p.name):
            out.append(f"    {p.name} {_ofport(p)}/{p.port_no}: ({port_type(dp, p)})\n")
    return "".join(out)


@command("dpctl/show", "[-s] [dp...]", 0, 100)
def dpctl_show(req: Request) -> str:
    args = list(req.args)
    stats = "-s" in args or "--statistics" in args
    names = [a for a in args if not a.startswith("-")]
    out = []
    for name, rb in _datapaths(req.switch, names):
        dp = rb.datapath
        st = dp.lookup_stats()
        out.append(
            f"{dp.type}@{name}:\n  lookups: hit:{st.hit} missed:{st.missed} lost:{st.lost}\n"
            f"  flows: {dp.flow_count()}\n"
        )
        out.extend(f"  {line}\n" for line in dp.show_lines())
        for port_no, p in sorted(dp.ports().items()):
            out.append(f"  port {port_no}: {p.name} ({port_type(dp, p)})\n")
            if stats:
                s = p.stats
                out.append(
                    f"    RX packets:{s.rx_packets} errors:? dropped:{s.rx_dropped} "
                    "overruns:? frame:?\n"
                    f"    TX packets:{s.tx_packets} errors:? dropped:{s.tx_dropped} "
                    "aborted:? carrier:?\n"
                    "    collisions:?\n"
                    f"    RX bytes:{s.rx_bytes}  TX bytes:{s.tx_bytes}\n"
                )
    return "".join(out)


def _flow_args(args: list[str]) -> tuple[list[str], bool]:
    names, names_opt = [], False
    for a in args:
        if a in ("-m", "--more", "--no-names"):
            continue
        if a == "--names":
            names_opt = True
        elif a.startswith("-"):
            raise CommandError(f"unknown option {a}")
        else:
            names.append(a)
    return names, names_opt


def _dump(rb: RunningBridge, with_names: bool, now: float) -> str:
    bridge = rb.bridge
    text = bridge.dump_flows(now) if isinstance(bridge, Bridge) else bridge.dump_flows()
    if not with_names:
        return text
    ports = {p.port_no: p.name for p in rb.datapath.ports().values()}
    for port_no, pname in ports.items():
        text = text.replace(f"in_port({port_no})", f"in_port({pname})")
    return text


@command("dpctl/dump-flows", "[-m] [--names] [dp]", 0, 3)
def dpctl_dump_flows(req: Request) -> str:
    names, with_names = _flow_args(req.args)
    if len(names) > 1:
        raise CommandError("dpctl/dump-flows takes at most one datapath")
    now = req.switch.clock()
    if names:
        return _dump(_running(req.switch, names[0]), with_names, now)
    dps = _datapaths(req.switch, [])
    if len(dps) == 1:
        return _dump(dps[0][1], with_names, now)
    out = []
    for name, rb in dps:
        text = _dump(rb, with_names, now)
        out.append(f"{rb.datapath.type}@{name}:\n{text}")
    return "".join(out)


@command("dpif/dump-flows", "[-m] [--names | --no-names] bridge", 1, 3)
def dpif_dump_flows(req: Request) -> str:
    names, with_names = _flow_args(req.args)
    if len(names) != 1:
        raise CommandError("dpif/dump-flows needs one bridge")
    return _dump(_running(req.switch, names[0]), with_names, req.switch.clock())


@command("dpctl/del-flows", "[dp]", 0, 1)
def dpctl_del_flows(req: Request) -> str:
    for _, rb in _datapaths(req.switch, list(req.args)):
        rb.datapath.flow_flush()
    return ""


@command("revalidator/purge")
def revalidator_purge(req: Request) -> str:
    """Remove every datapath flow (they come back through the slow path)."""
    for _, rb in _datapaths(req.switch, []):
        rb.datapath.flow_flush()
    return ""


def _of_bridge(switch: Switch, name: str) -> Bridge:
    bridge = switch.bridge(name)
    if not isinstance(bridge, Bridge):
        raise CommandError(f"bridge {name} has no OpenFlow tables")
    return bridge


@command("bridge/dump-flows", "[--offload-stats] bridge", 1, 2)
def bridge_dump_flows(req: Request) -> str:
    """Every OpenFlow rule, including the hidden fail-open one."""
    args = [a for a in req.args if a != "--offload-stats"]
    if len(args) != 1:
        raise CommandError("bridge/dump-flows needs one bridge")
    bridge = _of_bridge(req.switch, args[0])
    bridge.settle_counters()
    now = req.switch.clock()
    out = []
    if bridge.fail_open:
        # Open vSwitch's hidden fail-open flow (priority 0xf0f0f0): NORMAL ahead of the
        # tables while no controller is reachable in fail_mode standalone.
        out.append("duration=0s, n_packets=0, n_bytes=0, priority=15790320,actions=NORMAL\n")
    for table in bridge.of.tables:
        for r in sorted(table, key=lambda r: -r.priority):
            head = f"table_id={r.table_id}, " if r.table_id else ""
            match = format_match(r.match)
            out.append(
                f"{head}duration={max(0, int(now - r.created))}s, n_packets={r.packets}, "
                f"n_bytes={r.bytes}, priority={r.priority},{match + ',' if match else ''}"
                f"actions={format_instructions(r.instructions)}\n"
            )
    return "".join(out)


@command("fdb/stats-show", "bridge", 1, 1)
def fdb_stats_show(req: Request) -> str:
    name = req.args[0]
    bridge = _of_bridge(req.switch, name)
    mac = bridge.mac
    return (
        f'Statistics for bridge "{name}":\n'
        f"  Current/maximum MAC entries in the table: {len(mac)}/{mac.max_entries}\n"
        "  Current static MAC entries in the table : 0\n"
        f"  Total number of learned MAC entries     : {mac.n_learned}\n"
        f"  Total number of expired MAC entries     : {mac.n_expired}\n"
        f"  Total number of evicted MAC entries     : {mac.n_evicted}\n"
        f"  Total number of port moved MAC entries  : {mac.n_moves}\n"
    )


@command("upcall/show")
def upcall_show(req: Request) -> str:
    out = []
    for name, rb in _datapaths(req.switch, []):
        n = rb.datapath.flow_count()
        upcalls = rb.bridge.n_upcalls if isinstance(rb.bridge, Bridge) else 0
        out.append(
            f"{rb.datapath.type}@{name}:\n"
            f"  flows         : (current {n})"
            + (f" (limit {rb.bridge.flow_limit})" if isinstance(rb.bridge, Bridge) else "")
            + "\n"
            f"  upcalls       : {upcalls}\n"
        )
        queues = rb.datapath.upcall_queues()
        if queues:
            ports = rb.datapath.ports()
            out.append("  upcall queues (per input port, served in turn):\n")
            for port_no, st in sorted(queues.items()):
                p = ports.get(port_no)
                out.append(
                    f"    {p.name if p is not None else port_no}: queued {st.queued} "
                    f"(max {st.max_queued}) handled {st.handled} dropped {st.dropped} "
                    f"deferred {st.deferred}\n"
                )
    return "".join(out)


@command("memory/show")
def memory_show(req: Request) -> str:
    sw = req.switch
    rules = ports = macs = flows = 0
    for rb in sw.bridges.values():
        ports += len(rb.datapath.ports())
        flows += rb.datapath.flow_count()
        if isinstance(rb.bridge, Bridge):
            rules += rb.bridge.of.n_rules
            macs += len(rb.bridge.mac)
    return f"bridges:{len(sw.bridges)} datapath flows:{flows} mac entries:{macs} ports:{ports} rules:{rules}\n"


@command("dpif-ebpf/layout-for", "LAYOUT[,LAYOUT...]", 1, 1)
def ebpf_layout_for(req: Request) -> str:
    """Make every ebpf bridge's BPF program/map layout one of LAYOUTS (the layouts a
    build about to take over knows): ``hitless upgrade``/``downgrade`` run it first.
    The ebpf provider is imported only when there is an ebpf bridge: importing it took
    the serving loop 77-125 ms (49 ms of CPU) of a turn at the start of every netdev
    upgrade, a forwarding gap of 50-77 ms at a load of 15."""
    from hitless.datapath.base import DatapathError

    try:
        peer = [int(x) for x in req.args[0].split(",")]
    except ValueError:
        raise CommandError(f"not a list of layout numbers: {req.args[0]!r}") from None
    ebpf = [rb for _, rb in _datapaths(req.switch, []) if rb.datapath.type == "ebpf"]
    if not ebpf:
        return ""
    from hitless.datapath.ebpf.provider import EbpfDatapath

    out = []
    for rb in ebpf:
        dp = rb.datapath
        if isinstance(dp, EbpfDatapath):
            try:
                out.append(dp.layout_for(peer) + "\n")
            except DatapathError as e:
                raise CommandError(str(e)) from None
    return "".join(out)
