"""Hosts in network namespaces, each wired by a veth pair to a switch port, for
``hitless impact``.

::

    with Topology(3) as topo:            # hosts a, b, c
        for h in topo.hosts:
            attach(h.port)               # the root-namespace veth end, for the switch
        measure(topo.hosts, ...)

With ``bridges=2`` one more host (the next letter, ``.bridge == 1``) is meant for a
second bridge that the switch joins to the first with a patch port pair
(``ports_on(1)``); it is on the same subnet, so hosts reach it across the bridges.

The switch runs in a namespace of its own, ``hli-sw-<suffix>`` (``switch_ns``): two
userspace switches in one namespace would collide on the tap devices they create
(Open vSwitch's ``ovs-netdev``, the bridges' internal ports). Each host is a namespace
``hli-<host>-<suffix>`` holding ``eth0`` with an IPv4
address (``10.<net>.0.<i>/24``) and an IPv6 address (``fd<net>::<i>/64``, added
without duplicate address detection so it answers at once), transmit checksum offload
off (a userspace switch forwards the bytes it reads; with offload on, TCP segments
leave with unfinished checksums). The switch-side end ``hi<host><suffix>`` lives in
the switch namespace, up, with IPv6 disabled so that namespace sends nothing on it.

Every name carries a random suffix, so parallel or leftover runs never collide.
``close()`` (called by ``with``, on any error while building, and at interpreter exit)
deletes the namespaces, which deletes the veth pairs. ``install_signal_cleanup()``
turns SIGTERM/SIGHUP into ``KeyboardInterrupt`` so that Ctrl-C and a polite kill both
unwind through the ``with`` blocks.

Must not import the switch layers: this is plain ``ip``/``ethtool``/``sysctl``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from types import FrameType

__all__ = [
    "Host",
    "Topology",
    "TopologyError",
    "install_signal_cleanup",
    "leftovers",
    "raise_if_signalled",
    "signalled",
]

NS_PREFIX = "hli-"
HOST_NAMES = "abcdefghijklmnopqrstuvwxyz"


class TopologyError(RuntimeError):
    """Building the topology failed: a problem of this machine (not root, no ``ip``,
    namespaces unavailable), not of the switch."""


def _sh(*args: str, check: bool = True) -> str:
    try:
        res = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise TopologyError(
            f"{args[0]} is not installed (Debian packages iproute2, ethtool)"
        ) from None
    if check and res.returncode != 0:
        raise TopologyError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


@dataclass(frozen=True, slots=True)
class Host:
    """One host: what ``hitless.impact.run.measure`` needs plus the switch-side port."""

    name: str
    ns: str
    ip: str  # with prefix length
    ip6: str  # with prefix length
    port: str  # the veth end in the switch namespace, to attach to the switch
    mac: str
    dev: str = "eth0"
    bridge: int = 0  # which bridge the switch attaches ``port`` to (0 first, 1 second)

    def run(self, *args: str, check: bool = True) -> str:
        """Run a command inside the host's namespace; its standard output."""
        return _sh("ip", "netns", "exec", self.ns, *args, check=check)

    def ping(self, ip: str, count: int = 1, wait: float = 1.0) -> bool:
        res = subprocess.run(
            ["ip", "netns", "exec", self.ns, "ping", "-n", "-q", "-c", str(count),
             "-i", "0.05", "-W", str(wait), ip],
            capture_output=True,
            timeout=count * (wait + 0.1) + 10,
        )  # fmt: skip
        return res.returncode == 0


class Topology:
    """``n_hosts`` hosts (2..26) on one subnet for the first bridge, and with
    ``bridges=2`` one more for a second bridge; a context manager that removes them."""

    def __init__(self, n_hosts: int = 3, net: int | None = None, bridges: int = 1) -> None:
        if bridges not in (1, 2):
            raise ValueError(f"a topology has 1 or 2 bridges, not {bridges}")
        if not 2 <= n_hosts <= len(HOST_NAMES) - (bridges - 1):
            raise ValueError(
                f"a topology with {bridges} bridge(s) has 2 to "
                f"{len(HOST_NAMES) - (bridges - 1)} hosts on the first, not {n_hosts}"
            )
        if os.geteuid() != 0:
            raise TopologyError("building network namespaces needs root")
        self.suffix = secrets.token_hex(3)
        self.net = net if net is not None else 100 + secrets.randbelow(100)
        self.switch_ns = f"{NS_PREFIX}sw-{self.suffix}"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        atexit.register(self.close)
        try:
            _sh("ip", "netns", "add", self.switch_ns)
            self._namespaces.append(self.switch_ns)
            self.in_switch_ns("ip", "link", "set", "lo", "up")
            for i in range(n_hosts):
                self._add(i)
            if bridges == 2:
                self._add(n_hosts, bridge=1)
        except BaseException:
            self.close()
            raise

    def _add(self, i: int, bridge: int = 0) -> None:
        name = HOST_NAMES[i]
        ns = f"{NS_PREFIX}{name}-{self.suffix}"
        port = f"hi{name}{self.suffix}"
        _sh("ip", "netns", "add", ns)
        self._namespaces.append(ns)
        self.in_switch_ns("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                          "netns", ns)  # fmt: skip
        self.in_switch_ns("sysctl", "-q", "-w", f"net.ipv6.conf.{port}.disable_ipv6=1")
        self.in_switch_ns("ip", "link", "set", port, "up")
        ip, ip6 = f"10.{self.net}.0.{i + 1}/24", f"fd{self.net:02x}::{i + 1}/64"
        mac = f"02:{self.net:02x}:{int(self.suffix[:2], 16):02x}:{int(self.suffix[2:4], 16):02x}:00:{i + 1:02x}"
        run = ("ip", "netns", "exec", ns)
        _sh(*run, "ip", "link", "set", "lo", "up")
        _sh(*run, "ip", "link", "set", "eth0", "address", mac)
        _sh(*run, "ip", "addr", "add", ip, "dev", "eth0")
        _sh(*run, "ip", "-6", "addr", "add", ip6, "dev", "eth0", "nodad")
        _sh(*run, "ip", "link", "set", "eth0", "up")
        _sh(*run, "ethtool", "-K", "eth0", "tx", "off")
        self.hosts.append(Host(name, ns, ip, ip6, port, mac, bridge=bridge))

    def in_switch_ns(self, *args: str) -> str:
        return _sh("ip", "netns", "exec", self.switch_ns, *args)

    @property
    def ports(self) -> list[str]:
        return [h.port for h in self.hosts]

    def ports_on(self, bridge: int) -> list[str]:
        """The switch-side ports of the hosts meant for bridge ``bridge`` (0 or 1)."""
        return [h.port for h in self.hosts if h.bridge == bridge]

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Until the first host reaches every other one (the switch forwards)."""
        import time

        deadline = time.monotonic() + timeout
        first, rest = self.hosts[0], self.hosts[1:]
        pending = list(rest)
        while pending and time.monotonic() < deadline:
            pending = [h for h in pending if not first.ping(h.ip.split("/")[0], wait=0.5)]
        return not pending

    def close(self) -> None:
        """Delete the namespaces (and with them the veth pairs). Idempotent. Stop the
        switch first: a process keeps a deleted namespace alive."""
        for ns in reversed(self._namespaces):
            _sh("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def leftovers(suffix: str | None = None) -> list[str]:
    """Namespaces of impact topologies still present (all, or one topology's)."""
    names = [line.split()[0] for line in _sh("ip", "netns", "list").splitlines() if line.strip()]
    return [n for n in names if n.startswith(NS_PREFIX) and (suffix is None or n.endswith(suffix))]


_SIGNALLED: list[int] = []


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    _SIGNALLED.append(signum)
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_cleanup() -> None:
    """Ctrl-C, SIGTERM and SIGHUP unwind, so ``with`` blocks remove what they made; each
    is also recorded (``signalled``): Python ignores a KeyboardInterrupt raised where
    exceptions cannot propagate (a fork handler while a subprocess starts), and the
    caller must still stop then."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)


def signalled() -> bool:
    """An interrupting signal arrived since ``install_signal_cleanup``."""
    return bool(_SIGNALLED)


def raise_if_signalled() -> None:
    """Raise the KeyboardInterrupt of a signal that arrived, in case Python swallowed it:
    called where a run waits (its traffic, its agents), so a Ctrl-C that landed in a
    fork handler stops the run within one poll, not after the rest of its traffic (at
    load ~25 a 20 s run went on for over a minute after its Ctrl-C)."""
    if _SIGNALLED:
        raise KeyboardInterrupt(f"signal {_SIGNALLED[0]}")
