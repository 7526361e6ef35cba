"""A plain Linux bridge topology for testing the impact harness on its own.

Hosts in their own namespaces, each with ``eth0`` (IPv4 and IPv6 addresses) wired by
a veth pair to a Linux bridge that lives in a namespace of its own, so nothing is
created in the root namespace. Names carry a random suffix; ``close()`` deletes the
namespaces (and with them every veth) even after a failure.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass


def sh(*args: str) -> str:
    res = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout


@dataclass(frozen=True)
class BridgeHost:
    name: str
    ns: str
    ip: str
    ip6: str
    port: str  # the bridge-side veth end (in the bridge namespace)
    dev: str = "eth0"


class BridgeTopology:
    def __init__(self, n_hosts: int = 3) -> None:
        self.suffix = secrets.token_hex(3)
        self.br_ns = f"hlimp-br-{self.suffix}"
        self.namespaces: list[str] = []
        self.hosts: list[BridgeHost] = []
        try:
            self._build(n_hosts)
        except BaseException:
            self.close()
            raise

    def in_bridge(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.br_ns, *args)

    def _build(self, n: int) -> None:
        sh("ip", "netns", "add", self.br_ns)
        self.namespaces.append(self.br_ns)
        self.in_bridge("ip", "link", "add", "br0", "type", "bridge")
        self.in_bridge("ip", "link", "set", "br0", "up")
        for i in range(n):
            name = "abcdefgh"[i]
            ns = f"hlimp-{name}-{self.suffix}"
            port = f"p{name}{self.suffix}"
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "-n", self.br_ns, "link", "add", port, "type", "veth",
               "peer", "name", "eth0", "netns", ns)  # fmt: skip
            self.in_bridge("ip", "link", "set", port, "master", "br0")
            self.in_bridge("ip", "link", "set", port, "up")
            host = BridgeHost(name, ns, f"10.77.0.{i + 1}/24", f"fd77::{i + 1}/64", port)
            run = ["ip", "netns", "exec", ns]
            sh(*run, "ip", "link", "set", "lo", "up")
            sh(*run, "ip", "addr", "add", host.ip, "dev", "eth0")
            sh(*run, "ip", "-6", "addr", "add", host.ip6, "dev", "eth0", "nodad")
            sh(*run, "ip", "link", "set", "eth0", "up")
            self.hosts.append(host)

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.namespaces.clear()

    def __enter__(self) -> BridgeTopology:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
