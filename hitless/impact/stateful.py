"""The ``stateful`` traffic class of ``hitless impact``: connections that only pass
because the switch remembers them.

Host a is inside, host b outside; the class's packets go through the connection
tracker (``ct(zone=ZONE)``, then table ``CT_TABLE``), the way a Neutron security group or
an OVN allow-related ACL sends them:

* ``ct udp a→b`` / ``ct udp b→a``: one UDP "connection" between a fixed port on each
  host (``udp-duplex`` agents), sequenced datagrams both ways at the udp rate. a opens
  it (``+new`` from inside is committed); b only answers: its datagrams pass as
  ``+est`` and a ``+new`` one from b is dropped. A switch that forgets the connection
  drops b's stream until a's next datagram commits it again.
* ``ct+dnat tcp stream a→vip``: the long-lived TCP connection of the tcp-stream class,
  but to a service address (the VIP, ``vip(b)``: a reaches it through b's MAC, a
  static neighbour entry) that the switch translates to b's own address and another port
  (``ct(commit,nat(dst=b:port))``); every packet both ways goes through ``ct(nat)``.
  A switch that forgets the connection cannot translate the rest of the stream (a
  mid-stream TCP segment without a connection is not ``+new`` SYN: Open vSwitch marks
  it invalid) and the stream stalls or resets.
* ``ct+dnat new tcp a→vip``: new TCP connections at the tcp-connect rate through the
  same DNAT: each one is committed (and translated) while the operation runs.

Drops are counted by the rules themselves: ``+trk+new`` from b (the "only answers"
rule), ``+trk+inv`` (a TCP segment outside the window the tracker has, for example)
and anything else in the table, each with its own cookie (``DROP_COOKIES``). The
connections of the zone are read with ``ovs-appctl dpctl/dump-conntrack -s`` before
and after the operation and at the end (``ConntrackReading``: kept, expired on their
own, forgotten).

Everything here is pure (addresses and ports in, rules and numbers out); the CLI
(``hitless.cli.impact``) installs the rules, adds the VIP's neighbour entry and reads
the counters. Must not import the switch layers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CT_TABLE",
    "DROP_COOKIES",
    "ZONE",
    "MIN_TIMEOUT",
    "ConntrackReading",
    "CtPorts",
    "DropReading",
    "conntrack_entries",
    "conntrack_timeouts",
    "ct_ports",
    "drop_counters",
    "stateful_rules",
    "vip",
]

ZONE = 23  # the class's conntrack zone (no other class tracks anything)
CT_TABLE = 71  # after ct(table=...): above every table of the OVN-shaped pipeline
PRIORITY = 200  # table 0: above the openflow class's rules and the OVN pipeline's entry
_COOKIE = 0x484C4904  # hitless.impact.rules.COOKIE_OURS | 0x04: counted with ours_match()
# The drop rules, each with its own cookie so dump-flows can read each counter alone.
DROP_COOKIES = {
    "+new from outside": 0x484C4905,
    "invalid": 0x484C4906,
    "other": 0x484C4907,
}
STREAMS = (8, 9)  # the udp-duplex stream ids (a's, b's): no other class uses them


@dataclass(frozen=True, slots=True)
class CtPorts:
    """The class's ports for a run with base port P (``hitless.impact.run.pick_port``):
    P+10 .. P+15, clear of every other class's P .. P+9."""

    udp_a: int  # a's end of the UDP connection
    udp_b: int  # b's end
    tcp_vip: int  # the stream's service port on the VIP
    tcp_b: int  # ... translated to this port on b
    connect_vip: int  # the new connections' service port on the VIP
    connect_b: int  # ... translated to this port on b


def ct_ports(port: int) -> CtPorts:
    return CtPorts(*(port + 10 + i for i in range(6)))


def vip(b_ip: str) -> str:
    """The service address a talks to for b: b's subnet's address .200 (or the one
    below it if that is b's own), never a host's."""
    iface = ipaddress.ip_interface(b_ip)
    net = iface.network
    cand = net.network_address + min(200, net.num_addresses - 2)
    if cand == iface.ip:
        cand -= 1
    return str(cand)


def stateful_rules(
    a_port: int, b_port: int, a_ip: str, b_ip: str, ports: CtPorts, zone: int = ZONE
) -> list[str]:
    """``add-flows`` lines of the class: a's and b's OpenFlow ports and addresses (with
    or without prefix length)."""
    a = str(ipaddress.ip_interface(a_ip).ip)
    b = str(ipaddress.ip_interface(b_ip).ip)
    v = vip(b_ip)
    c = f"cookie={_COOKIE:#x}"
    ct = f"ct(table={CT_TABLE},zone={zone})"
    ct_nat = f"ct(table={CT_TABLE},zone={zone},nat)"
    head = f"{c},table=0,priority={PRIORITY}"
    t = f"{c},table={CT_TABLE}"
    out = [
        f"{head},udp,in_port={a_port},nw_src={a},nw_dst={b},tp_src={ports.udp_a},"
        f"tp_dst={ports.udp_b},actions={ct}",
        f"{head},udp,in_port={b_port},nw_src={b},nw_dst={a},tp_src={ports.udp_b},"
        f"tp_dst={ports.udp_a},actions={ct}",
    ]
    for vport, bport in ((ports.tcp_vip, ports.tcp_b), (ports.connect_vip, ports.connect_b)):
        out += [
            f"{head},tcp,in_port={a_port},nw_src={a},nw_dst={v},tp_dst={vport},actions={ct_nat}",
            f"{head},tcp,in_port={b_port},nw_src={b},nw_dst={a},tp_src={bport},actions={ct_nat}",
            f"{t},priority=30,ct_state=+trk+new,tcp,in_port={a_port},nw_dst={v},tp_dst={vport},"
            f"actions=ct(commit,zone={zone},nat(dst={b}:{bport})),output:{b_port}",
        ]
    drop = {name: f"cookie={cookie:#x},table={CT_TABLE}" for name, cookie in DROP_COOKIES.items()}
    out += [
        f"{t},priority=20,ct_state=+trk+new,udp,in_port={a_port},"
        f"actions=ct(commit,zone={zone}),output:{b_port}",
        f"{t},priority=20,ct_state=+trk+est,in_port={a_port},actions=output:{b_port}",
        f"{t},priority=20,ct_state=+trk+est,in_port={b_port},actions=output:{a_port}",
        f"{drop['invalid']},priority=25,ct_state=+trk+inv,actions=drop",
        f"{drop['+new from outside']},priority=10,ct_state=+trk+new,in_port={b_port},actions=drop",
        f"{drop['other']},priority=0,actions=drop",
    ]
    return out


_PACKETS = re.compile(r"n_packets=(\d+)")
_COOKIE_RE = re.compile(r"cookie=(0x[0-9a-f]+)")


def drop_counters(dump_flows: str) -> dict[str, int | None]:
    """``n_packets`` of each drop rule in ``ovs-ofctl dump-flows`` output, by name;
    None for a rule that is not there (a restart that did not restore the rules)."""
    by_cookie: dict[int, int] = {}
    for line in dump_flows.splitlines():
        ck, pk = _COOKIE_RE.search(line), _PACKETS.search(line)
        if ck and pk:
            by_cookie[int(ck.group(1), 16)] = int(pk.group(1))
    return {name: by_cookie.get(cookie) for name, cookie in DROP_COOKIES.items()}


_TIMEOUT_RE = re.compile(r",timeout=(\d+)")

# The shortest timeout of the default policy (Open vSwitch's and hitless's alike: TCP
# SYN_SENT/SYN_RECV/TIME_WAIT/CLOSE and UDP with traffic both ways, 30 s): a connection's
# next packet can bring its timeout down to this, so after an operation this long any
# connection may have expired on its own.
MIN_TIMEOUT = 30


def _zone_lines(dump: str, zone: int) -> list[str]:
    return [
        ln.strip()
        for ln in dump.splitlines()
        if f"zone={zone}," in ln or ln.rstrip().endswith(f"zone={zone}")
    ]


def _entry(line: str) -> str:
    return _TIMEOUT_RE.sub("", line.split(",protoinfo=")[0])


def conntrack_entries(dump: str, zone: int = ZONE) -> list[str]:
    """The zone's connections in ``dpctl/dump-conntrack`` output (with or without
    ``-s``), without their TCP state and timeout (which move on their own), sorted:
    comparable before and after."""
    return sorted(_entry(ln) for ln in _zone_lines(dump, zone))


def conntrack_timeouts(dump: str, zone: int = ZONE) -> dict[str, int]:
    """Each of the zone's connections (as ``conntrack_entries`` writes it) and the
    seconds it has left, from ``dpctl/dump-conntrack -s`` output."""
    out: dict[str, int] = {}
    for ln in _zone_lines(dump, zone):
        m = _TIMEOUT_RE.search(ln)
        if m:
            out[_entry(ln)] = int(m.group(1))
    return out


@dataclass(frozen=True, slots=True)
class ConntrackReading:
    """The zone's connections just before the operation (with the seconds each had
    left), just after it and at the end of the traffic, and the seconds between the
    first two reads.

    A connection listed before and not right after was forgotten unless it may have
    expired on its own meanwhile: its timeout was shorter than the operation took, or
    the operation outlasted ``MIN_TIMEOUT`` (a connection that closed during it had
    that long). One listed before and at the end but not right after was forgotten
    whatever its timeout: it had to be created again (a five-tuple comes back only when
    a client's ephemeral ports wrap, ~28,000 connections to one address: minutes at the
    class's rate)."""

    before: Sequence[str]
    timeouts: Mapping[str, int]
    after: Sequence[str]
    end: Sequence[str]
    elapsed: float

    def kept(self) -> list[str]:
        return sorted(set(self.before) & set(self.after))

    def expired(self) -> list[str]:
        """Gone right after, and may have expired on its own."""
        after, end = set(self.after), set(self.end)
        return sorted(
            c for c in set(self.before) - after
            if c not in end
            and (self.elapsed >= MIN_TIMEOUT or self.timeouts.get(c, MIN_TIMEOUT) <= self.elapsed)
        )  # fmt: skip

    def forgotten(self) -> list[str]:
        gone = set(self.before) - set(self.after) - set(self.expired())
        return sorted(gone)

    def note(self) -> str:
        return (
            f"stateful class, connections in its zone (dpctl/dump-conntrack): "
            f"{len(self.before)} before the operation, {len(self.kept())} of them still listed "
            f"right after it ({self.elapsed:.1f} s later), {len(self.expired())} gone that may "
            f"have expired on their own, {len(self.forgotten())} forgotten; "
            f"{len(self.after)} listed right after, {len(self.end)} at the end"
        )

    def summary(self) -> dict[str, object]:
        return {
            "before": list(self.before),
            "after": list(self.after),
            "end": len(self.end),
            "elapsed": round(self.elapsed, 3),
            "kept": len(self.kept()),
            "expired": len(self.expired()),
            "forgotten": self.forgotten(),
        }


@dataclass(frozen=True, slots=True)
class DropReading:
    """The drop rules' counters just before the operation, just after it and at the
    end of the traffic (None: the rule was not there)."""

    before: Mapping[str, int | None]
    after: Mapping[str, int | None]
    end: Mapping[str, int | None]

    def dropped(self) -> dict[str, int | None]:
        """Packets each drop rule dropped from just before the operation to the end;
        when the operation re-created the rules (counter lower after than before) only
        what the new rule counted; None when the rule is gone at the end."""
        out: dict[str, int | None] = {}
        for name in DROP_COOKIES:
            b, a, e = self.before.get(name), self.after.get(name), self.end.get(name)
            if e is None:
                out[name] = None
            elif b is None or (a is not None and a < b) or e < b:
                out[name] = e
            else:
                out[name] = e - b
        return out

    def note(self) -> str:
        parts = []
        for name, n in self.dropped().items():
            parts.append(f"{name} {'rule gone' if n is None else n}")
        reset = any(
            self.after.get(n) is not None and self.before.get(n) is not None
            and (self.after.get(n) or 0) < (self.before.get(n) or 0)
            for n in DROP_COOKIES
        )  # fmt: skip
        return (
            "stateful class, packets the firewall dropped from the operation to the end: "
            + ", ".join(parts)
            + (" (the rules were re-created: counted since)" if reset else "")
        )
