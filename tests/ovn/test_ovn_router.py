"""OVN logical router with NAT end to end, side by side with real Open vSwitch 3.1.

Two logical switches joined by a gateway router bound to our one chassis
(``options:chassis=hv1``): host a inside (``10.N.0.1``, router ``10.N.0.254``), host b
outside (``10.N.1.2``, router ``10.N.1.254``). The router SNATs the inside subnet to its
outside address and gives a a floating IP (``dnat_and_snat`` ``10.N.1.100``). What
ovn-controller programs for it: ``ct(...,nat)`` in the router's SNAT/DNAT zones, the
MAC_Binding lookups (``lookup_arp``/``get_arp``) and learning (``put_arp``: a packet-in
to ovn-controller, which writes the southbound MAC_Binding), the ARP request for an
unknown next hop (``arp{}``: a packet-in whose userdata ovn-controller turns into a
packet-out), the router's own ICMP echo replies and TTL decrement.

Checked: ovn-controller's flows install on both without an OpenFlow error and dump the
same (test_ovn_e2e.flow_table's normalisation); the same probes pass on both switches,
and b sees the same source address (a's floating IP) and a sees b's own, on both; the
conntrack tables after the probes dump the same (zone numbers, ephemeral ports and ICMP
ids aside).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re

import pytest

from hitless.impact.topology import Host
from tests.ovn.ovn import Ovn, available
from tests.ovn.test_ovn_e2e import (
    _TCP_CLIENT,
    PORT,
    Side,
    _ip,
    _py,
    deployment,
    flow_table,
    tcp_ok,
    udp_ok,
    upgrade_under_traffic,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(not available(), reason="needs Debian's ovn-central and ovn-host"),
]

_PEER_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", int(sys.argv[1]))); s.listen(1); print("ready", flush=True)
s.settimeout(10)
try:
    c, peer = s.accept(); c.sendall(b"hello"); c.close(); print(peer[0])
except OSError:
    print("none")
"""
# A DHCPDISCOVER from a (BOOTP over UDP 68 -> 255.255.255.255:67, a's MAC as chaddr);
# prints the answer's message type, offered address and router option, or "none".
# OVN answers it with put_dhcp_opts: a controller(pause) packet-in that ovn-controller
# rewrites into the offer and hands back with NXT_RESUME, then the pipeline sends it.
_DHCP = """
import os, socket, struct, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 68)); s.settimeout(3)
xid = os.getpid()
msg = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4),
                  bytes(4), bytes(4), bytes(4), mac + bytes(10), b"", b"")
msg += bytes((99, 130, 83, 99, 53, 1, 1, 255))
for _ in range(3):
    s.sendto(msg, ("255.255.255.255", 67))
    try:
        while True:
            data, _ = s.recvfrom(2048)
            if data[0] == 2 and struct.unpack_from("!I", data, 4)[0] == xid:
                break
    except OSError:
        continue
    opts, i, out = data[240:], 0, {}
    while i < len(opts) and opts[i] != 255:
        if opts[i] == 0:
            i += 1
            continue
        out[opts[i]] = opts[i + 2 : i + 2 + opts[i + 1]]
        i += 2 + opts[i + 1]
    print(out.get(53, b"?")[0], socket.inet_ntoa(data[16:20]),
          socket.inet_ntoa(out.get(3, bytes(4))[:4]))
    break
else:
    print("none")
"""


def dhcp(h: Host) -> str:
    """What a DHCPDISCOVER from ``h`` got back: "2 <offered> <router>" (2: an offer)."""
    p = _py(h, _DHCP, h.mac)
    out, _ = p.communicate(timeout=30)
    return out.strip()


def _net(h: Host) -> str:
    return _ip(h).rsplit(".", 2)[0]


def tcp_peer(src: Host, dst: Host, port: int, to: str | None = None) -> str:
    """Connect from src to ``to`` (dst's address by default) on ``port``: the source
    address dst's server saw, or "none"."""
    server = _py(dst, _PEER_SERVER, str(port))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    client = _py(src, _TCP_CLIENT, to or _ip(dst), str(port))
    client.communicate(timeout=30)
    out, _ = server.communicate(timeout=30)
    return out.strip()


def router_probes(s: Side) -> dict[str, object]:
    a, b = s.a, s.b
    net = _net(a)
    return {
        "ping a->router inside": a.ping(f"{net}.0.254", count=3),
        "ping a->router outside": a.ping(f"{net}.1.254", count=3),
        "ping a->b (routed, SNAT)": a.ping(_ip(b), count=3),
        "tcp a->b: b sees": tcp_peer(a, b, 5001),
        "udp a->b": udp_ok(a, b, 7002),
        "tcp b->floating ip: a sees": tcp_peer(b, a, 5002, to=f"{net}.1.100"),
        "ping b->floating ip": b.ping(f"{net}.1.100", count=3),
        "tcp b->a's inside address": tcp_ok(b, a, 5003),
        "dhcp discover from a": dhcp(a),
    }


def _gateway_router(ovn: Ovn, a: Host, b0: Host) -> tuple[Host, Host]:
    """b moves to the outside subnet, both hosts route through the gateway router; SNAT
    of the inside, a floating IP for a, DHCP for a."""
    n = a.ip.rsplit(".", 2)[0]
    b0.run("ip", "addr", "flush", "dev", "eth0", "scope", "global")
    b0.run("ip", "addr", "add", f"{n}.1.2/24", "dev", "eth0")
    b = dataclasses.replace(b0, ip=f"{n}.1.2/24")
    a.run("ip", "route", "add", "default", "via", f"{n}.0.254")
    b.run("ip", "route", "add", "default", "via", f"{n}.1.254")
    ovn.nbctl("create", "Logical_Router", "name=lr0", "options:chassis=hv1")
    for sw_name, h, lsp, side in (("inside", a, "lpa", 0), ("outside", b, "lpb", 1)):
        rmac = f"02:00:00:00:{side + 1:02x}:fe"
        ovn.nbctl("ls-add", sw_name)
        ovn.nbctl("lsp-add", sw_name, lsp, "--", "lsp-set-addresses", lsp, f"{h.mac} {_ip(h)}")
        ovn.nbctl("lrp-add", "lr0", f"lr0-{sw_name}", rmac, f"{n}.{side}.254/24")
        ovn.nbctl("lsp-add", sw_name, f"{sw_name}-lr0", "--",
                  "lsp-set-type", f"{sw_name}-lr0", "router", "--",
                  "lsp-set-addresses", f"{sw_name}-lr0", "router", "--",
                  "lsp-set-options", f"{sw_name}-lr0", f"router-port=lr0-{sw_name}")  # fmt: skip
    # DHCP for the inside switch's port (answered through controller(pause))
    opts = ovn.nbctl("dhcp-options-create", f"{n}.0.0/24").strip()
    if not opts:
        opts = ovn.nbctl("--bare", "--columns=_uuid", "find", "DHCP_Options").strip()
    ovn.nbctl("dhcp-options-set-options", opts, "lease_time=3600", f"router={n}.0.254",
              f"server_id={n}.0.254", "server_mac=02:00:00:00:01:fe")  # fmt: skip
    ovn.nbctl("lsp-set-dhcpv4-options", "lpa", opts)
    ovn.nbctl("lr-nat-add", "lr0", "snat", f"{n}.1.254", f"{n}.0.0/24")
    ovn.nbctl("lr-nat-add", "lr0", "dnat_and_snat", f"{n}.1.100", _ip(a))
    return a, b


def router_side(kind: str, net: int) -> contextlib.AbstractContextManager[Side]:
    return deployment(kind, net, _gateway_router, prefix="brr")


def conntrack_entries(s: Side) -> list[str]:
    """dpctl/dump-conntrack without what differs between two runs: the zone numbers
    (ovn-controller's, in the order of names holding random row ids), the clients'
    ephemeral ports and the ICMP echo ids."""
    out = []
    for line in s.sw.appctl("dpctl/dump-conntrack").splitlines():
        line = re.sub(r"zone=\d+", "zone=Z", line.strip())
        line = re.sub(r"id=\d+", "id=I", line)
        line = re.sub(r"port=(\d+)", lambda m: "port=E" if int(m[1]) >= 32768 else m[0], line)
        if line:
            out.append(line)
    return sorted(out)


def test_ovn_router_with_nat_forwards_as_on_open_vswitch() -> None:
    seen: dict[str, dict[str, object]] = {}
    errors: dict[str, list[str]] = {}
    tables: dict[str, list[str]] = {}
    tracked: dict[str, list[str]] = {}
    net = 110 + (hash("ovn-router") % 30)
    for kind in ("ovs", "hitless"):
        with router_side(kind, net) as s:
            tables[kind] = flow_table(s)
            seen[kind] = router_probes(s)
            tracked[kind] = conntrack_entries(s)
            errors[kind] = s.ovn.openflow_errors()
    print(f"\nprobes: {seen}\nflows: ovs {len(tables['ovs'])}, hitless {len(tables['hitless'])}")
    n = f"10.{net}"
    assert seen["ovs"]["tcp a->b: b sees"] == f"{n}.1.100", seen  # its floating IP
    assert seen["ovs"]["tcp b->floating ip: a sees"] == f"{n}.1.2", seen
    assert seen["ovs"]["dhcp discover from a"] == f"2 {n}.0.1 {n}.0.254", seen
    assert errors == {"ovs": [], "hitless": []}, errors
    assert seen["hitless"] == seen["ovs"], seen
    only_ovs = sorted(set(tables["ovs"]) - set(tables["hitless"]))
    only_hl = sorted(set(tables["hitless"]) - set(tables["ovs"]))
    assert not only_ovs and not only_hl, "\n".join(
        ["only on Open vSwitch:", *only_ovs, "only on hitless:", *only_hl]
    )
    # The same connections tracked, in the same zones' roles, translated alike.
    assert tracked["ovs"] and tracked["hitless"] == tracked["ovs"], "\n".join(
        ["Open vSwitch:", *tracked["ovs"], "hitless:", *tracked["hitless"]]
    )


def _nat_tracked(s: Side) -> set[str]:
    """The tracked connections of the TCP stream (measure()'s port + 2) that are
    ESTABLISHED, every zone's (the router's SNAT entry among them), without their TCP
    state. Closed ones on that port (the warm-up's, the no-operation run's stream) may
    time out on their own during a slow upgrade, so they are not asked to survive it."""
    text = s.sw.appctl("dpctl/dump-conntrack")
    return {ln.split(",protoinfo=")[0] for ln in text.splitlines()
            if f"dport={PORT + 2}" in ln and ln.startswith("tcp")
            and "state=ESTABLISHED" in ln}  # fmt: skip


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate"])
def test_hitless_upgrade_under_ovn_router_nat_keeps_natted_connections(fault: str | None) -> None:
    """``hitless upgrade`` under traffic routed and SNATed by the gateway router (a's
    UDP, TCP stream and new connections to b leave as the floating IP; b's UDP to a is
    routed back): nothing lost or doubled, the stream survives, its NAT entry is the same
    after, ovn-controller keeps its connections, its flows and their counters; then the
    shared handoff assertion (tests/traffic.py: gaps and delays beyond the freeze and the
    switch's own waits for a CPU)."""
    with router_side("hitless", 140 + (hash("ovn-router-up") % 9)) as s:
        tracked, _res = upgrade_under_traffic(s, _nat_tracked, PORT + 1, fault)
        # The stream's connection went through the router's SNAT (to a's floating IP).
        assert any(".1.100" in t for t in tracked), tracked
