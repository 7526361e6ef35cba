"""Link change notifications from the kernel (rtnetlink RTMGRP_LINK), so the daemon
reads link states as soon as a device goes up or down instead of at the datapath's next
periodic refresh (bond failover, Interface.link_state within the loop's latency).

The socket only says "something changed"; the datapath reads the states itself."""

from __future__ import annotations

import socket

__all__ = ["LinkWatch"]

NETLINK_ROUTE = 0
RTMGRP_LINK = 1


class LinkWatch:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.setblocking(False)
        self.sock.bind((0, RTMGRP_LINK))

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> bool:
        """Read every pending notification; True if there was any (or the socket
        overflowed: something may have changed)."""
        changed = False
        while True:
            try:
                if not self.sock.recv(65536):
                    return changed
            except BlockingIOError:
                return changed
            except OSError:  # ENOBUFS: notifications were lost, so assume a change
                changed = True
                continue
            changed = True

    def close(self) -> None:
        self.sock.close()
