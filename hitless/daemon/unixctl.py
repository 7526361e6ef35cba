"""Management commands served on DIR/hitless-vswitchd.ctl (``ovs-appctl -t ...``).

Adding a command is one decorated function in any module listed in ``COMMAND_MODULES``::

    @command("fdb/show", "BRIDGE", min_args=1, max_args=1)
    def fdb_show(req: Request) -> str:
        return req.switch.bridge(req.args[0]).fdb_show()

The handler returns the reply text, or raises ``CommandError`` (the caller's mistake,
e.g. an unknown bridge) to reply with an error. A handler that cannot answer at once
returns None and later calls ``req.reply(...)`` or ``req.error(...)`` itself. Anything
else it raises is our bug: it is logged with its traceback and reported as an
internal error, and the daemon carries on.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hitless.daemon.switch import Switch

log = logging.getLogger(__name__)

# Modules whose @command functions the daemon serves (imported on start).
COMMAND_MODULES = ["hitless.daemon.commands", "hitless.daemon.handoff_commands"]


class CommandError(Exception):
    """The request was wrong (unknown bridge, bad argument): the message is the reply."""


@dataclass(slots=True)
class Request:
    switch: Switch
    args: list[str]
    conn: Any  # ovs.unixctl.server.UnixctlConnection

    def reply(self, text: str) -> None:
        self.conn.reply(text)

    def error(self, text: str) -> None:
        self.conn.reply_error(text)


Handler = Callable[[Request], "str | None"]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    usage: str
    min_args: int
    max_args: int
    handler: Handler


COMMANDS: dict[str, Command] = {}


def command(
    name: str, usage: str = "", min_args: int = 0, max_args: int = 0
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the unixctl command ``name``."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, min_args, max_args, handler)
        return handler

    return register


def _line(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _dispatch(conn: Any, args: list[str], aux: tuple[Switch, Command]) -> None:
    switch, cmd = aux
    req = Request(switch, list(args), conn)
    try:
        text = cmd.handler(req)
    except CommandError as e:
        conn.reply_error(_line(str(e)))
        return
    except Exception as e:  # our bug: keep serving, say so, log the traceback
        log.exception("unixctl command %s %s failed", cmd.name, " ".join(args))
        conn.reply_error(_line(f"internal error in {cmd.name}: {type(e).__name__}: {e}"))
        return
    if text is not None:
        conn.reply(text)


def install(switch: Switch) -> None:
    """Bind every registered command to ``switch`` in the ``ovs`` library's (global)
    command table, replacing earlier bindings."""
    import ovs.unixctl

    for module in COMMAND_MODULES:
        importlib.import_module(module)
    for cmd in COMMANDS.values():
        ovs.unixctl.commands.pop(cmd.name, None)
        ovs.unixctl.command_register(
            cmd.name, cmd.usage, cmd.min_args, cmd.max_args, _dispatch, (switch, cmd)
        )
