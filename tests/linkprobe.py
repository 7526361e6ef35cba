"""Time from a link change to the Interface row that says so, as a database client sees it.

Run as a script in the switch's network namespace (``ip netns exec NS python -m
tests.linkprobe ...`` for a switch in a namespace of its own), so that its rtnetlink
socket sees the switch port's events::

    python -m tests.linkprobe DB_REMOTE IFACE N CMD_DOWN CMD_UP

For each of N toggles it runs CMD_DOWN (a shell command: e.g. ``ip link set IFACE down``,
or the same for the port's peer in another namespace), takes the time at which its own
RTM_NEWLINK socket got the event that IFACE's link went down, then keeps an OVSDB IDL
client (the ``ovs`` library's, as ovs-vsctl's would) running until IFACE's row says
``link_state=down``; then CMD_UP the same way. It prints one JSON object: for every change
the expected state, the milliseconds from the netlink event to the row update
(``ms``), and the row's link_state, admin_state and link_resets at that moment.
A change that the row does not show within 10 s is reported with ``ms: null``.
"""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
RTMGRP_LINK = 1
RTM_NEWLINK = 16
IFF_UP = 0x1
IFF_LOWER_UP = 0x10000
GIVE_UP = 10.0


class LinkEvents(threading.Thread):
    """Timestamps of ``ifindex``'s RTM_NEWLINK notifications, taken by a thread that
    does nothing else (so a notification's time is not that of the next IDL turn):
    ``events`` holds (monotonic time, link up and running)."""

    def __init__(self, ifindex: int) -> None:
        super().__init__(daemon=True)
        self.ifindex = ifindex
        self.events: list[tuple[float, bool]] = []
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((0, RTMGRP_LINK))

    def run(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:  # ENOBUFS: some were lost; the next ones still come
                continue
            now = time.monotonic()
            off = 0
            while off + 32 <= len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if length < 16:
                    break
                if kind == RTM_NEWLINK:
                    _, _, _, index, flags, _ = struct.unpack_from("=BBHiII", data, off + 16)
                    if index == self.ifindex:
                        self.events.append((now, bool(flags & IFF_UP and flags & IFF_LOWER_UP)))
                off += (length + 3) & ~3

    def first(self, since: int, up: bool) -> float | None:
        """When the first event after index ``since`` said the link is ``up``."""
        return next((t for t, s in self.events[since:] if s == up), None)


def main(argv: list[str]) -> None:
    import ovs.db.idl
    import ovs.poller

    remote, iface, n, cmd_down, cmd_up = argv[0], argv[1], int(argv[2]), argv[3], argv[4]
    helper = ovs.db.idl.SchemaHelper(SCHEMA)
    helper.register_columns("Interface", ["name", "link_state", "admin_state", "link_resets"])
    idl = ovs.db.idl.Idl(remote, helper)
    sys.setswitchinterval(0.0002)  # the netlink thread takes its time stamp promptly
    watch = LinkEvents(socket.if_nametoindex(iface))
    watch.start()

    def row() -> Any:
        return next((r for r in idl.tables["Interface"].rows.values() if r.name == iface), None)

    def link_state() -> str | None:
        r = row()
        return r.link_state[0] if r is not None and r.link_state else None

    def turn(timeout_ms: int) -> None:
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(timeout_ms)
        poller.block()
        idl.run()

    start = time.monotonic()
    while link_state() != "up" and time.monotonic() - start < GIVE_UP:
        turn(100)
    changes = []
    for _ in range(n):
        for want, cmd in (("down", cmd_down), ("up", cmd_up)):
            since = len(watch.events)
            subprocess.run(cmd, shell=True, check=True)
            start = time.monotonic()
            seen = None
            while time.monotonic() - start < GIVE_UP:
                idl.run()
                if link_state() == want:
                    seen = time.monotonic()
                    break
                turn(1000)
            t_nl = watch.first(since, want == "up")
            wait_nl = time.monotonic() + 1.0
            while t_nl is None and time.monotonic() < wait_nl:  # the thread is behind
                time.sleep(0.01)  # poll: the netlink thread appends it
                t_nl = watch.first(since, want == "up")
            r = row()
            changes.append(
                {
                    "want": want,
                    "ms": None if seen is None or t_nl is None else (seen - t_nl) * 1000,
                    "link_state": link_state(),
                    "admin_state": r.admin_state[0] if r is not None and r.admin_state else None,
                    "link_resets": r.link_resets[0] if r is not None and r.link_resets else None,
                }
            )
            settle = time.monotonic() + 0.05  # a moment before the next change
            while time.monotonic() < settle:
                turn(10)
    idl.close()
    print(json.dumps(changes))


if __name__ == "__main__":
    main(sys.argv[1:])
