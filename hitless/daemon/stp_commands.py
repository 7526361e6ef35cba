"""Spanning tree commands (``ovs-appctl stp/...``, ``rstp/...``), as Open vSwitch 3.1
prints them: ``stp/show [BRIDGE]`` and ``rstp/show [BRIDGE]`` (root and bridge IDs,
timers, each port's role, state, cost and priority.number), ``stp/tcn [BRIDGE]`` (start a
topology change: the MAC tables are flushed along the tree)."""

from __future__ import annotations

from typing import Any

from hitless.daemon.unixctl import CommandError, Request, command


def _with_stp(req: Request, kind: str = "stp") -> list[tuple[str, Any]]:
    names = req.args[:1] or list(req.switch.bridge_names())
    out = []
    for name in names:
        br = req.switch.bridge(name)
        stp = getattr(br, "stp", None)
        if stp is not None and getattr(stp, "kind", "stp") == kind:
            out.append((name, br))
        elif req.args:
            raise CommandError(f"no such {kind} object")
    return out


@command("stp/show", "[bridge]", 0, 1)
def stp_show(req: Request) -> str:
    return "".join(br.stp.show(name) for name, br in _with_stp(req))


@command("rstp/show", "[bridge]", 0, 1)
def rstp_show(req: Request) -> str:
    return "".join(br.stp.show(name) for name, br in _with_stp(req, "rstp"))


@command("stp/tcn", "[bridge]", 0, 1)
def stp_tcn(req: Request) -> str:
    now = req.switch.clock()
    for _, br in _with_stp(req):
        br.stp.topology_change_now(now)
        br.stp_kick(now)
    return "OK\n"
