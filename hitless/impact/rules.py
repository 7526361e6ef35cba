"""OpenFlow rules ``hitless impact`` installs before an operation, and what it reads back.

Two kinds of rule, told apart by their cookie (``COOKIE_FILL``, ``COOKIE_TRAFFIC``;
both under ``COOKIE_OURS``/``COOKIE_MASK``, so ``dump-aggregate`` counts them apart
from the bridge's own table-miss rule):

* filler rules (``--rules N``): state for the switch to carry, never hit.
  ``priority=10`` (above the table-miss ``priority=0 actions=NORMAL``), in four match
  shapes taken in turn (UDP 5-tuple, TCP ports, IPv4 addresses, Ethernet addresses), each
  distinct, from 198.18.0.0/15 (RFC 2544 benchmark addresses, never used by
  the measured hosts) to 192.0.2.1 port 9, ``actions=drop``. Every packet the hosts
  send misses all of them and is switched as before.
* traffic rules (``traffic_rules``): the ``openflow`` traffic class's datagrams,
  forwarded port to port by ``in_port=X,udp,tp_dst=P actions=output:Y`` (and the
  reverse) at ``priority=100``, not by NORMAL. Their packet counters are read just
  before and just after the operation (a counter that goes down means the rule was
  re-created, its statistics lost) and at the end, against the datagrams delivered.

Everything here is pure (text in, text or numbers out); the harness runs ``ovs-ofctl``
(``add-flows`` from a file, ``dump-aggregate``, ``dump-flows``) with the results.
Must not import the switch layers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = [
    "OVN_COOKIE",
    "OVN_LEARN_COOKIE",
    "LogicalPort",
    "ovn_pipeline",
    "COOKIE_FILL",
    "COOKIE_MASK",
    "COOKIE_OURS",
    "COOKIE_TRAFFIC",
    "CounterReading",
    "TrafficRule",
    "aggregate_count",
    "filler_rules",
    "rule_counters",
    "rules_note",
    "traffic_rules",
]

COOKIE_OURS = 0x484C4900  # "HLI" + a kind byte
COOKIE_MASK = 0xFFFFFF00
COOKIE_FILL = COOKIE_OURS | 0x01
COOKIE_TRAFFIC = COOKIE_OURS | 0x02
FILL_PRIORITY = 10
TRAFFIC_PRIORITY = 100

_FILL_SRC = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544 benchmarking addresses
_FILL_DST = "192.0.2.1"  # RFC 5737 documentation address (and .2 and up)
_FILL_MAC = "0a:00:00:00:00:01"
_FILL_SPAN = _FILL_SRC.num_addresses


def cookie_match(cookie: int) -> str:
    """The ``cookie=VALUE/MASK`` argument of dump-flows / dump-aggregate selecting one kind."""
    return f"cookie={cookie:#x}/-1"


def ours_match() -> str:
    """The ``cookie=VALUE/MASK`` argument selecting every rule the harness installed."""
    return f"cookie={COOKIE_OURS:#x}/{COOKIE_MASK:#x}"


def filler_rules(n: int) -> Iterator[str]:
    """``n`` add-flows lines, each a distinct rule no host's packet matches, in four
    match shapes taken in turn (as a real table mixes them, so a classifier holds
    several subtables): a UDP 5-tuple (L4), a TCP source and destination port pair
    (L4), an IPv4 source and destination (L3), an Ethernet source and destination
    (L2, locally administered ``0a:`` addresses no host uses)."""
    base = int(_FILL_SRC.network_address)
    head = f"cookie={COOKIE_FILL:#x},priority={FILL_PRIORITY}"
    for i in range(n):
        src = ipaddress.IPv4Address(base + i % _FILL_SPAN)
        port = 1024 + i // _FILL_SPAN
        shape = i % 4
        if shape == 0:
            match = f"udp,nw_src={src},nw_dst={_FILL_DST},tp_src={port},tp_dst=9"
        elif shape == 1:
            match = f"tcp,nw_src={src},nw_dst={_FILL_DST},tp_dst={port}"
        elif shape == 2:
            match = f"ip,nw_src={src},nw_dst=192.0.2.{2 + i // _FILL_SPAN % 250}"
        else:
            mac = (0x0A0000000000 + i).to_bytes(6, "big").hex(":")
            match = f"dl_src={mac},dl_dst={_FILL_MAC}"
        yield f"{head},{match},actions=drop"


@dataclass(frozen=True, slots=True)
class TrafficRule:
    """One rule carrying a direction of the openflow class."""

    name: str  # the traffic class's name, e.g. "openflow a→b"
    in_port: int
    out_port: int
    tp_dst: int

    def flow(self) -> str:
        return (
            f"cookie={COOKIE_TRAFFIC:#x},priority={TRAFFIC_PRIORITY},in_port={self.in_port},"
            f"udp,tp_dst={self.tp_dst},actions=output:{self.out_port}"
        )


def traffic_rules(
    names: tuple[str, str], ports: tuple[int, int], tp_dst: tuple[int, int]
) -> tuple[TrafficRule, TrafficRule]:
    """The two rules of the openflow class between hosts on OpenFlow ports ``ports``
    (first, second): ``names``/``tp_dst`` are first→second, then second→first."""
    a, b = ports
    return (
        TrafficRule(names[0], a, b, tp_dst[0]),
        TrafficRule(names[1], b, a, tp_dst[1]),
    )


_AGG = re.compile(r"flow_count=(\d+)")
_PACKETS = re.compile(r"n_packets=(\d+)")
_IN_PORT = re.compile(r"in_port=(\d+)")
_TP_DST = re.compile(r"tp_dst=(\d+)")


def aggregate_count(text: str) -> int:
    """``flow_count`` of ``ovs-ofctl dump-aggregate`` output."""
    m = _AGG.search(text)
    if m is None:
        raise ValueError(f"no flow_count in dump-aggregate output: {text.strip()[:200]!r}")
    return int(m.group(1))


def rule_counters(dump_flows: str, rules: tuple[TrafficRule, ...]) -> dict[str, int | None]:
    """``n_packets`` of each traffic rule in ``ovs-ofctl dump-flows`` output (ports as
    numbers, ``--no-names``; best filtered by ``cookie_match(COOKIE_TRAFFIC)``), by the
    rule's name; None for a rule that is not there."""
    found: dict[tuple[int, int], int] = {}
    for line in dump_flows.splitlines():
        pk, ip, tp = _PACKETS.search(line), _IN_PORT.search(line), _TP_DST.search(line)
        if pk and ip and tp:
            found[(int(ip.group(1)), int(tp.group(1)))] = int(pk.group(1))
    return {r.name: found.get((r.in_port, r.tp_dst)) for r in rules}


@dataclass(frozen=True, slots=True)
class CounterReading:
    """A traffic rule's packet counter around the operation (None: the rule was gone)
    and the datagrams of its class that arrived."""

    name: str
    before: int | None  # just before the operation
    after: int | None  # just after it
    end: int | None  # when the traffic was over
    delivered: int

    @property
    def went_down(self) -> bool:
        """The counter is lower after the operation than before, or gone: the rule's
        statistics did not survive."""
        return self.before is not None and (self.after is None or self.after < self.before)

    @property
    def uncounted(self) -> int:
        """Datagrams that arrived but are missing from the counter at the end."""
        return max(0, self.delivered - (self.end or 0))

    def note(self) -> str:
        head = f"{self.name} rule counter (n_packets)"
        if self.before is None:
            return f"{head}: the rule was missing before the operation"
        if self.after is None:
            verdict = "rule gone after it"
        elif self.after < self.before:
            verdict = f"{self.after} after: WENT DOWN (the rule was re-added, its counters lost)"
        else:
            verdict = f"{self.after} after: kept counting"
        text = f"{head}: {self.before} before the operation, {verdict}"
        if self.end is not None:
            text += f"; {self.end} at the end for {self.delivered} datagrams delivered"
            if self.uncounted and not self.went_down:
                text += f" ({self.uncounted} not counted)"
        return text

    def summary(self) -> dict[str, object]:
        return {
            "before": self.before,
            "after": self.after,
            "end": self.end,
            "delivered": self.delivered,
            "went_down": self.went_down,
            "uncounted": self.uncounted,
        }


def rules_note(installed: int, before: int, after: int, parts: Mapping[str, int]) -> str:
    """The rule-count line of a result, in the form of the MAC table's:
    ``OpenFlow rules (dump-aggregate): 1002 of 1002 installed before, 1002 of 1002 kept
    after (1000 from --rules, 2 for the openflow class)``."""
    detail = ", ".join(f"{n} {what}" for what, n in parts.items() if n)
    return (
        f"OpenFlow rules (dump-aggregate): {before} of {installed} installed before, "
        f"{after} of {installed} kept after" + (f" ({detail})" if detail else "")
    )


# -------------------------------------------------------------- an OVN-shaped pipeline


@dataclass(frozen=True)
class LogicalPort:
    """One port of the OVN-shaped pipeline: its OpenFlow port, the logical port number
    the pipeline passes in registers, and the addresses port security allows."""

    ofport: int
    key: int
    mac: str
    ip: str


OVN_COOKIE = COOKIE_OURS | 0x03
# learned rules: outside COOKIE_OURS/COOKIE_MASK, so dump-aggregate counts the installed
# rules alone while the learned ones come and go with the traffic
OVN_LEARN_COOKIE = 0x4F564E4C  # "OVNL"
OVN_MCAST = 0xFFFF  # the logical "flood" port, expanded in table 32
OVN_DENIED_UDP = 9999  # the ACL drops UDP to this port


def ovn_pipeline(
    ports: list[LogicalPort], datapath: int = 1, entry_priority: int = 100
) -> list[str]:
    """``add-flows`` lines of a logical switch laid out as OVN lays one out: the
    ingress logical port in ``reg14`` and the datapath in ``metadata`` (table 0),
    port security on Ethernet, IP and ARP sources (8-10), a stateless ACL made of
    conjunctions, allowed sources x allowed protocols, with a deny rule above it (11),
    a learned MAC table (12 learns ``eth_src -> reg15`` into 31 with ``learn``), L2
    lookup with the registers saved around it by ``push``/``pop`` (13-14), the flood
    group expanded port by port with ``resubmit`` (32), the loopback check (33), and
    the egress port resolved to an OpenFlow port in ``reg13`` (40) and output from it
    (65). Thirteen tables; every rule has the ``OVN_COOKIE``, learned ones
    ``OVN_LEARN_COOKIE``. ``entry_priority``: that of the table-0 rules (below the
    openflow traffic class's rules in ``hitless impact --rules-shape ovn``)."""
    c = f"cookie={OVN_COOKIE:#x}"
    md = f"metadata={datapath:#x}"
    out: list[str] = []
    for p in ports:
        out += [
            f"{c},table=0,priority={entry_priority},in_port={p.ofport},"
            f"actions=load:{p.key:#x}->NXM_NX_REG14[],"
            f"set_field:{datapath:#x}->metadata,resubmit(,8)",
            f"{c},table=8,priority=50,reg14={p.key:#x},{md},dl_src={p.mac},actions=resubmit(,9)",
            f"{c},table=9,priority=90,ip,reg14={p.key:#x},{md},dl_src={p.mac},nw_src={p.ip},"
            "actions=resubmit(,10)",
            f"{c},table=9,priority=80,ip,reg14={p.key:#x},{md},actions=drop",
            f"{c},table=10,priority=90,arp,reg14={p.key:#x},{md},arp_spa={p.ip},arp_sha={p.mac},"
            "actions=resubmit(,11)",
            f"{c},table=10,priority=80,arp,reg14={p.key:#x},{md},actions=drop",
            f"{c},table=11,priority=2000,ip,{md},nw_src={p.ip},actions=conjunction(1000,1/2)",
            f"{c},table=33,priority=100,reg14={p.key:#x},reg15={p.key:#x},{md},actions=drop",
            f"{c},table=40,priority=100,reg15={p.key:#x},{md},"
            f"actions=load:{p.ofport:#x}->NXM_NX_REG13[0..15],resubmit(,65)",
        ]
    flood = ",".join(f"load:{p.key:#x}->NXM_NX_REG15[],resubmit(,33)" for p in ports)
    learn = (
        f"learn(table=31,idle_timeout=300,priority=100,cookie={OVN_LEARN_COOKIE:#x},"
        "OXM_OF_METADATA[],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
        "load:NXM_NX_REG14[]->NXM_NX_REG15[])"
    )
    out += [
        f"{c},table=8,priority=100,{md},vlan_tci=0x1000/0x1000,actions=drop",
        f"{c},table=9,priority=0,{md},actions=resubmit(,10)",
        f"{c},table=10,priority=0,{md},actions=resubmit(,11)",
        f"{c},table=11,priority=3000,udp,{md},tp_dst={OVN_DENIED_UDP},actions=drop",
        *(
            f"{c},table=11,priority=2000,{proto},{md},actions=conjunction(1000,2/2)"
            for proto in ("icmp", "udp", "tcp")
        ),
        f"{c},table=11,priority=2000,conj_id=1000,ip,{md},"
        "actions=load:0x1->NXM_NX_REG0[1],resubmit(,12)",
        f"{c},table=11,priority=1000,ip,{md},actions=drop",
        f"{c},table=11,priority=0,{md},actions=resubmit(,12)",
        f"{c},table=12,priority=100,{md},actions={learn},resubmit(,13)",
        f"{c},table=13,priority=110,{md},dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,"
        f"actions=load:{OVN_MCAST:#x}->NXM_NX_REG15[],resubmit(,32)",
        f"{c},table=13,priority=50,{md},actions=push:NXM_NX_REG14[],resubmit(,31),"
        "pop:NXM_NX_REG14[],resubmit(,14)",
        f"{c},table=14,priority=100,reg15=0,{md},"
        f"actions=load:{OVN_MCAST:#x}->NXM_NX_REG15[],resubmit(,32)",
        f"{c},table=14,priority=50,{md},actions=resubmit(,32)",
        f"{c},table=32,priority=100,reg15={OVN_MCAST:#x},{md},"
        f"actions={flood},load:{OVN_MCAST:#x}->NXM_NX_REG15[]",
        f"{c},table=32,priority=0,actions=resubmit(,33)",
        f"{c},table=33,priority=0,actions=resubmit(,40)",
        f"{c},table=65,priority=100,reg13=0/0xffff0000,{md},actions=output:NXM_NX_REG13[0..15]",
    ]
    return out
