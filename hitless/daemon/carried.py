"""Learned state of this issue's layers that a handoff carries (hitless.daemon.takeover's
extras): every bridge's bonds (active member, enabled members, hash buckets, pending
delays, LACP partners), each bridge's fail-open clock (how long no primary controller
has been reachable) and the tc trees put on port devices for QoS, so a new process
neither renegotiates LACP, nor counts the 15 s before failing open again, nor rebuilds
or forgets a shaper. Registered when the daemon imports this module (it is in
``unixctl.COMMAND_MODULES``)."""

from __future__ import annotations

from typing import Any

from hitless.daemon.takeover import register_bridge_extra, register_switch_extra


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


register_bridge_extra("bonds", export=_export_bonds, adopt=_adopt_bonds)
register_switch_extra("qos", export=_export_qos, adopt=_adopt_qos)
register_switch_extra("fail-open", export=_export_fail_open, adopt=_adopt_fail_open)
