"""Management commands served on DIR/hitless-vswitchd.ctl (``ovs-appctl -t ...``, or plain
``ovs-appctl`` with ``OVS_RUNDIR=DIR``: see ``rundir.publish_ovs_names``).

Adding a command is one decorated function in any module listed in ``COMMAND_MODULES``::

    @command("fdb/show", "BRIDGE", min_args=1, max_args=1)
    def fdb_show(req: Request) -> str:
        return req.switch.bridge(req.args[0]).fdb_show()

The handler returns the reply text, or raises ``CommandError`` (the caller's mistake,
e.g. an unknown bridge) to reply with an error. A handler that cannot answer at once
returns None and later calls ``req.reply(...)`` or ``req.error(...)`` itself. Anything
else it raises is our bug: it is logged with its traceback and reported as an
internal error, and the daemon carries on.

The server is ours (``Server``), over the ``ovs`` library's JSON-RPC streams: the command
table is this module's ``COMMANDS`` (not the library's process-global one), and replies
follow ovs-vswitchd's conventions: every reply and error ends with a newline, an unknown
command says to use ``list-commands``, ``help`` and ``list-commands`` list every command
with its usage in the same layout.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hitless import localsock

if TYPE_CHECKING:
    from hitless.daemon.switch import Switch

log = logging.getLogger(__name__)

# Modules whose @command functions the daemon serves (imported on start).
COMMAND_MODULES = [
    "hitless.daemon.commands",
    "hitless.daemon.handoff_commands",
    "hitless.daemon.bond_commands",
    "hitless.daemon.stp_commands",
    "hitless.daemon.carried",  # no commands: registers what a handoff carries (issue 12)
    "hitless.daemon.ct_commands",
    "hitless.daemon.testhooks",
    "hitless.daemon.dp_commands",
    "hitless.daemon.trace_commands",
    "hitless.daemon.vlog_commands",
    "hitless.daemon.coverage",
    "hitless.daemon.standby_commands",
]


class CommandError(Exception):
    """The request was wrong (unknown bridge, bad argument): the message is the reply."""


@dataclass(slots=True)
class Request:
    switch: Switch
    args: list[str]
    conn: Any  # a Connection (or anything with reply/reply_error)

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


def load_commands() -> dict[str, Command]:
    """Import every module of ``COMMAND_MODULES`` (registering their commands)."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)
    return COMMANDS


def _line(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def command_list() -> str:
    """What ``list-commands`` (and ``help``) print: ovs-vswitchd's layout."""
    out = ["The available commands are:\n"]
    for name in sorted(COMMANDS):
        usage = COMMANDS[name].usage
        out.append(f"  {name:<23} {usage}\n" if usage else f"  {name}\n")
    return "".join(out)


@command("list-commands")
def list_commands(req: Request) -> str:
    return command_list()


@command("help")
def help_(req: Request) -> str:
    return command_list()


def check_args(name: str, args: list[Any]) -> tuple[Command | None, str | None]:
    """The command for a request, or the error ovs-vswitchd replies with."""
    cmd = COMMANDS.get(name)
    if cmd is None:
        return None, (
            f'"{name}" is not a valid command (use "list-commands" to see a list of valid commands)'
        )
    if len(args) < cmd.min_args:
        return None, f'"{name}" command requires at least {cmd.min_args} arguments'
    if len(args) > cmd.max_args:
        return None, f'"{name}" command takes at most {cmd.max_args} arguments'
    if not all(isinstance(a, str) for a in args):
        return None, f'"{name}" command has non-string argument'
    return cmd, None


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


class Connection:
    """One client (one ovs-appctl run): JSON-RPC requests in, one reply per request."""

    def __init__(self, rpc: Any, switch: Switch, server: Server | None = None) -> None:
        self._rpc = rpc
        self._switch = switch
        self._server = server
        self._request_id: Any = None
        self.refused: str | None = None  # the peer may not control the switch: why

    def run(self) -> int:
        import ovs.jsonrpc

        self._rpc.run()
        error: int = self._rpc.get_status()
        if error or self._rpc.get_backlog():
            return error
        for _ in range(10):
            if error or self._request_id is not None:
                break
            error, msg = self._rpc.recv()
            if msg is not None:
                if msg.type == ovs.jsonrpc.Message.T_REQUEST:
                    self._process(msg)
                else:
                    log.warning("%s: unexpected %s message", self._rpc.name, msg.type)
                    error = errno.EINVAL
            if not error:
                error = self._rpc.get_status()
        return error

    def _process(self, msg: Any) -> None:
        self._request_id = msg.id
        if self._server is not None:
            self._server.n_requests += 1
        if self.refused is not None:
            self.reply_error(self.refused)
            return
        params = msg.params if isinstance(msg.params, list) else []
        cmd, err = check_args(str(msg.method), params)
        if cmd is None:
            self.reply_error(err or "")
            return
        _dispatch(self, [str(p) for p in params], (self._switch, cmd))

    def reply(self, text: str | None) -> None:
        self._send(True, _line(text or ""))

    def reply_error(self, text: str | None) -> None:
        self._send(False, _line(text or ""))

    def _send(self, ok: bool, body: str) -> None:
        import ovs.jsonrpc

        if self._request_id is None:
            return  # the reply was already sent (a handler answered twice)
        M = ovs.jsonrpc.Message
        msg = (
            M.create_reply(body, self._request_id) if ok else M.create_error(body, self._request_id)
        )
        self._rpc.send(msg)
        self._request_id = None

    def wait(self, poller: Any) -> None:
        self._rpc.wait(poller)
        if not self._rpc.get_backlog():
            self._rpc.recv_wait(poller)

    def close(self) -> None:
        self._rpc.close()


class Server:
    """Serves ``COMMANDS`` for one switch on a listening unix socket."""

    def __init__(self, listener: Any, switch: Switch) -> None:
        self._listener = listener  # ovs.stream.PassiveStream
        self._switch = switch
        self._conns: list[Connection] = []
        self.n_requests = 0  # coverage: unixctl_received

    @classmethod
    def listen(cls, path: str, switch: Switch) -> Server:
        """Listen on ``path`` (mode 0600, see hitless.localsock): bound under a temporary
        name and renamed over ``path``, so a predecessor's socket (after a handoff) is
        replaced without a moment where the path is gone."""
        import ovs.stream

        load_commands()
        try:
            sock = localsock.listen(path, 64)
        except OSError as e:
            raise OSError(e.errno, f"could not listen on {path}: {e.strerror}") from None
        return cls(ovs.stream.PassiveStream(sock, f"punix:{path}", None), switch)

    @classmethod
    def inherit(cls, fd: int, path: str, switch: Switch) -> Server:
        """Serve a predecessor's listening socket (a handoff): clients that connected
        while it was frozen are answered by us."""
        import ovs.stream

        load_commands()
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        return cls(ovs.stream.PassiveStream(sock, f"punix:{path}", None), switch)

    def fileno(self) -> int:
        """The listening socket (what a successor inherits)."""
        return int(self._listener.socket.fileno())

    def run(self) -> None:
        import ovs.jsonrpc

        for _ in range(10):
            error, stream = self._listener.accept()
            if error == errno.EAGAIN:
                break
            if error:
                log.warning("unixctl: accept failed: %s", os.strerror(error))
                break
            conn = Connection(ovs.jsonrpc.Connection(stream), self._switch, self)
            conn.refused = localsock.refusal(stream.socket)
            if conn.refused is not None:
                log.warning("unixctl: %s", conn.refused)
            self._conns.append(conn)
        for conn in list(self._conns):
            error = conn.run()
            if error and error != errno.EAGAIN:
                conn.close()
                self._conns.remove(conn)

    def wait(self, poller: Any) -> None:
        self._listener.wait(poller)
        for conn in self._conns:
            conn.wait(poller)

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns = []
        self._listener.close()
