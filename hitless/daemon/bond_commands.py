"""Bond and LACP management commands (``ovs-appctl bond/...``), printed as Open vSwitch
3.1 prints them: bond/list, bond/show, bond/set-active-member, bond/enable-member,
bond/disable-member, lacp/show, lacp/show-stats. Errors use Open vSwitch's wording ("no such bond", "no such
member", "cannot make disabled member active")."""

from __future__ import annotations

from hitless.daemon.unixctl import CommandError, Request, command
from hitless.ofproto.bond import Bond
from hitless.ofproto.lacp import Lacp


def _bonds(req: Request) -> list[tuple[object, Bond]]:
    """(bridge, bond) for every bond of every running bridge, by bond name."""
    out = []
    for name in req.switch.bridge_names():
        br = req.switch.bridge(name)
        for bond in getattr(br, "bonds", {}).values():
            out.append((br, bond))
    return sorted(out, key=lambda x: x[1].name)


def _find(req: Request, name: str) -> tuple[object, Bond]:
    for br, bond in _bonds(req):
        if bond.name == name:
            return br, bond
    raise CommandError("no such bond")


@command("bond/list")
def bond_list(req: Request) -> str:
    lines = ["bond\ttype\trecircID\tmembers"]
    for _, bond in _bonds(req):
        members = ", ".join(sorted(m.name for m in bond.members.values()))
        lines.append(f"{bond.name}\t{bond.cfg.mode}\t-1\t{members}")
    return "\n".join(lines) + "\n"


@command("bond/show", "[port]", 0, 1)
def bond_show(req: Request) -> str:
    now = req.switch.clock()
    if req.args:
        return _find(req, req.args[0])[1].show(now)
    return "".join(bond.show(now) for _, bond in _bonds(req))


def _change(req: Request, what: str) -> str:
    br, bond = _find(req, req.args[0])
    try:
        if what == "active":
            text = bond.set_active(req.args[1])
        elif what == "migrate":
            text = bond.migrate(req.args[1], req.args[2])
        else:
            text = bond.set_enabled(req.args[1], what == "enable")
    except ValueError as e:
        raise CommandError(str(e)) from None
    br.bond_changed(req.switch.clock())  # type: ignore[attr-defined]
    return text


@command("bond/set-active-member", "port member", 2, 2)
def bond_set_active(req: Request) -> str:
    return _change(req, "active")


@command("bond/migrate", "port hash member", 3, 3)
def bond_migrate(req: Request) -> str:
    return _change(req, "migrate")


@command("bond/enable-member", "port member", 2, 2)
def bond_enable(req: Request) -> str:
    return _change(req, "enable")


@command("bond/disable-member", "port member", 2, 2)
def bond_disable(req: Request) -> str:
    return _change(req, "disable")


def _lacps(req: Request, name: str | None) -> list[Lacp]:
    found = [b.lacp for _, b in _bonds(req) if b.lacp is not None]
    if name is not None:
        found = [lacp for lacp in found if lacp.name == name]
        if not found:
            raise CommandError("no such lacp object")
    return found


@command("lacp/show", "[port]", 0, 1)
def lacp_show(req: Request) -> str:
    return "".join(lacp.show() for lacp in _lacps(req, req.args[0] if req.args else None))


@command("lacp/show-stats", "[port]", 0, 1)
def lacp_show_stats(req: Request) -> str:
    return "".join(lacp.show_stats() for lacp in _lacps(req, req.args[0] if req.args else None))
