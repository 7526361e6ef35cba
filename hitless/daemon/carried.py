"""Learned state of this issue's layers that a handoff carries (hitless.handoff.engine's
extras): every bridge's bonds (active member, enabled members, hash buckets, pending
delays, LACP partners), each bridge's fail-open clock (how long no primary controller
has been reachable), every bridge's spanning tree, STP or RSTP (port states, roles,
stored priority vectors, running timers), the tc trees put on port devices for QoS, each
sFlow agent's sequence numbers, sample pool and uptime, each bridge's NetFlow flows
(counters, sequence, uptime), each mirror's counters (Mirror.statistics), each port's age (OpenFlow port statistics'
duration), so a new
process neither renegotiates LACP, nor counts the 15 s before failing open again, nor rebuilds
or forgets a shaper. (The policers' token buckets are datapath meters: they travel in
the datapath's handles and are adopted once the configuration made the policers,
``ImportEngine.commit``.) Registered when the daemon imports this module (it is in
``unixctl.COMMAND_MODULES``)."""

from __future__ import annotations

from typing import Any

from hitless.handoff.engine import register_bridge_extra, register_switch_extra


def _export_bonds(bridge: Any, now: float) -> Any:
    return bridge.export_bonds(now)


def _adopt_bonds(bridge: Any, data: Any, now: float) -> None:
    bridge.import_bonds(dict(data), now)


def _export_fail_open(switch: Any) -> Any:
    now = switch.clock()
    since = switch.unreachable_since
    return {name: now - t for name, t in sorted(since.items())} or None


def _adopt_fail_open(switch: Any, data: Any) -> None:
    now = switch.clock()
    for name, seconds in dict(data).items():
        switch.unreachable_since[name] = now - float(seconds)


def _export_qos(switch: Any) -> Any:
    return switch.tcqos.export()


def _adopt_qos(switch: Any, data: Any) -> None:
    switch.tcqos.adopt(data)


def _export_stp(bridge: Any, now: float) -> Any:
    stp = getattr(bridge, "stp", None)
    return stp.export_state(now) if stp is not None else None


def _adopt_stp(bridge: Any, data: Any, now: float) -> None:
    stp = getattr(bridge, "stp", None)
    if stp is not None:
        stp.import_state(dict(data), now)
        bridge.stp_kick(now)


def _export_sflow(switch: Any) -> Any:
    now = switch.clock()
    for name, rb in switch.bridges.items():  # what is sampled goes out before the state
        if rb.cfg.sflow is not None:
            switch.sflow.run(name, rb.bridge, rb.cfg, rb.statuses, lambda: 0, now, flush=True)
    return switch.sflow.export(now)


def _adopt_sflow(switch: Any, data: Any) -> None:
    switch.sflow.adopt(dict(data), switch.clock())


def _export_ipfix(switch: Any) -> Any:
    now = switch.clock()
    for name, rb in switch.bridges.items():  # what is sampled goes out before the state
        if rb.cfg.ipfix is not None:
            switch.sflow.run_ipfix(name, rb.bridge, rb.cfg, rb.statuses, now, flush=True)
    return switch.sflow.export_ipfix()


def _adopt_ipfix(switch: Any, data: Any) -> None:
    switch.sflow.adopt_ipfix(dict(data))


def _export_mirrors(bridge: Any, now: float) -> Any:
    exp = getattr(bridge, "export_mirrors", None)
    return exp(now) if exp is not None else None


def _adopt_mirrors(bridge: Any, data: Any, now: float) -> None:
    bridge.import_mirrors(dict(data), now)


def _export_netflow(bridge: Any, now: float) -> Any:
    exp = getattr(bridge, "export_netflow", None)
    return exp(now) if exp is not None else None


def _adopt_netflow(bridge: Any, data: Any, now: float) -> None:
    bridge.import_netflow(dict(data), now)


def _export_port_ages(bridge: Any, now: float) -> Any:
    added = getattr(bridge, "port_added", None)
    return {str(no): now - t for no, t in sorted(added.items())} or None if added else None


def _adopt_port_ages(bridge: Any, data: Any, now: float) -> None:
    """Each port the new process kept gets its age back (its statistics' duration)."""
    added = bridge.port_added
    for no, age in dict(data).items():
        if int(no) in added:
            added[int(no)] = now - float(age)


register_bridge_extra("bonds", export=_export_bonds, adopt=_adopt_bonds)
register_bridge_extra("stp", export=_export_stp, adopt=_adopt_stp)
register_switch_extra("qos", export=_export_qos, adopt=_adopt_qos)
register_switch_extra("fail-open", export=_export_fail_open, adopt=_adopt_fail_open)
register_switch_extra("sflow", export=_export_sflow, adopt=_adopt_sflow)
register_bridge_extra("netflow", export=_export_netflow, adopt=_adopt_netflow)
register_switch_extra("ipfix", export=_export_ipfix, adopt=_adopt_ipfix)
register_bridge_extra("mirrors", export=_export_mirrors, adopt=_adopt_mirrors)
register_bridge_extra("port-ages", export=_export_port_ages, adopt=_adopt_port_ages)
