"""``ofproto/trace``: what the OpenFlow pipeline does with one flow, told by the real
translation (``ofxlate.xlate_openflow`` with a recorder), printed in Open vSwitch's
layout so that people who know it read it at once::

    Flow: in_port=1,vlan_tci=0x0000,dl_src=...,dl_type=0x0000

    bridge("br0")
    -------------
     0. in_port=1, priority 10
        push_vlan:0x8100
        goto_table:1
     1. dl_vlan=10, priority 20, cookie 0x5
        group:1
        bucket 0
                output:2

    Final flow: ...
    Megaflow: recirc_id=0,eth,in_port=1,...
    Datapath actions: push_vlan(vid=0,pcp=0),...,2

``Tracer`` implements ``ofxlate.Recorder``: it builds the tree of trace nodes
(bridge, table, action, detail, warning) from the walk's events, and ``render`` prints
it. Pure: nothing here changes state, and the translation is the very one the
datapath's megaflows come from.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hitless.datapath.actions import format_actions
from hitless.datapath.conntrack import CS_NEW, CS_TRK, NatSpec, format_ct_state
from hitless.ofproto.fields import LOCS
from hitless.ofproto.oftable import OfState, Rule
from hitless.ofproto.ofxlate import MAX_RESUBMITS, xlate_openflow
from hitless.ofproto.xlate import SwitchState, Xlate
from hitless.openflow import actions as of
from hitless.openflow.nxm import Subfield
from hitless.openflow.ofctl_text import format_action, format_match, format_subfield
from hitless.packet.flow import ETH_TYPE_IPV4, KEY_LEN
from hitless.packet.flow import field as key_field
from hitless.packet.flow import set_field as key_set
from hitless.packet.flowstr import format_flow, format_megaflow

__all__ = ["Tracer", "trace"]

TERMINAL = frozenset({"action", "detail", "warn", "error"})


@dataclass(slots=True)
class Node:
    type: str  # bridge | table | action | detail | warn | error
    text: str
    subs: list[Node] = field(default_factory=list)


class Tracer:
    """Builds the trace tree from ``ofxlate`` events (a ``Recorder``).

    As in Open vSwitch, the first table of the walk hangs under the bridge and every
    later lookup (goto_table, resubmit) under the table whose action led to it; a
    group's buckets are action nodes holding the bucket's actions; the action set runs
    under "--. Executing action set:" next to the last table."""

    def __init__(self, bridge: str) -> None:
        self.root = Node("bridge", f'bridge("{bridge}")')
        self._cur: list[Node] = self.root.subs  # where the next node goes
        self._table_parent: list[Node] = self.root.subs
        self._stack: list[list[Node]] = []
        self._action_set: list[str] = []
        self._key: bytes | None = None
        self.final_key: bytes | None = None
        self.final_meta = 0  # the pipeline fields (registers, tunnel...) at the end
        self.recircs: list[Recirculation] = []  # ct(table=) forks, in order

    # Recorder --------------------------------------------------------------------------
    def event(self, kind: str, **kw: object) -> None:
        getattr(self, f"_on_{kind}", self._on_other)(kind, **kw)

    def _on_other(self, kind: str, **kw: object) -> None:
        self._cur.append(Node("detail", f"{kind} {kw}"))

    def _on_table(self, kind: str, table_id: int, rule: Rule | None, key: object) -> None:
        if isinstance(key, int):  # the pipeline key: the datapath key in its low bits
            key = (key & ((1 << KEY_LEN * 8) - 1)).to_bytes(KEY_LEN, "big")
        if isinstance(key, bytes):
            self._key = key
        if rule is None:
            node = Node("table", f"{table_id:2d}. No match.", [Node("action", "drop")])
        else:
            match = format_match(rule.match)
            text = f"{table_id:2d}. {match + ', ' if match else ''}priority {rule.priority}"
            if rule.cookie:
                text += f", cookie {rule.cookie:#x}"
            node = Node("table", text)
        self._cur.append(node)
        self._table_parent = self._cur
        self._cur = node.subs

    def _on_goto(self, kind: str, table_id: int) -> None:
        pass  # the goto_table instruction was told already; the next table nests

    def _on_action(self, kind: str, action: object, **_: object) -> None:
        self._cur.append(Node("action", format_action(action)))

    def _on_instruction(self, kind: str, inst: of.Instruction) -> None:
        self._cur.append(Node("action", format_action(inst)))
        if isinstance(inst, of.WriteActions):
            self._action_set += [format_action(a) for a in inst.actions]
            self._cur.append(Node("detail", f"action set is: {','.join(self._action_set)}"))
        elif isinstance(inst, of.ClearActions):
            self._action_set = []

    def _on_action_set(self, kind: str, actions: tuple[object, ...]) -> None:
        node = Node("table", "--. Executing action set:")
        self._table_parent.append(node)
        self._cur = node.subs

    def _on_group(self, kind: str, group_id: int, chosen: list[int], picks: bool = False) -> None:
        if not chosen:
            self._cur.append(Node("detail", "no live bucket"))
        elif picks:
            self._cur.append(Node("detail", f"using bucket {chosen[0]}"))

    def _on_not_live(self, kind: str, index: int, port: int) -> None:
        self._cur.append(Node("detail", f"bucket {index}: not live due to port {port}"))

    def _on_ct_fork(
        self, kind: str, table_id: int, recirc_id: int, blob: bytes, zone: int, key: bytes,
        meta: int, nat: NatSpec | None = None,
    ) -> None:
        self._cur.append(Node("detail", "A clone of the packet is forked to recirculate. "
                              f"The forked pipeline will be resumed at table {table_id}."))  # fmt: skip
        self.recircs.append(
            Recirculation(recirc_id, blob, table_id, zone, key, meta, nat)
        )

    def _on_ct_untracked(self, kind: str) -> None:
        self._cur.append(Node("detail", "Sets the packet to an untracked state, and clears "
                              "all the conntrack fields."))  # fmt: skip

    def _on_detail(self, kind: str, text: str) -> None:
        self._cur.append(Node("detail", text))

    def _on_subfield(self, kind: str, sf: Subfield, value: int) -> None:
        self._cur.append(Node("detail", f"{format_subfield(sf)} is now {value:#x}" if value
                              else f"{format_subfield(sf)} is now 0"))  # fmt: skip

    def _on_empty(self, kind: str) -> None:
        self._cur.append(Node("action", "drop"))  # an empty action list

    def _on_resubmit(self, kind: str, table_id: int) -> None:
        self._stack.append(self._cur)  # the resubmitted table nests here; then back

    def _on_resubmit_end(self, kind: str, table_id: int) -> None:
        if self._stack:
            self._cur = self._stack.pop()

    def _on_bucket(self, kind: str, index: int) -> None:
        node = Node("action", f"bucket {index}")
        self._cur.append(node)
        self._stack.append(self._cur)
        self._cur = node.subs

    def _on_bucket_end(self, kind: str, index: int) -> None:
        if self._stack:
            self._cur = self._stack.pop()

    def _on_normal(self, kind: str, xlate: Xlate) -> None:
        for text in normal_details(xlate):
            self._cur.append(Node("detail", text))

    def _on_drop(self, kind: str, reason: str) -> None:
        if reason.startswith("no rule matched"):
            return  # the table node says "No match." and "drop"
        if reason.startswith("dec_ttl"):
            v4 = self._key is not None and key_field(self._key, "eth_type") == ETH_TYPE_IPV4
            reason = f"{'IPv4' if v4 else 'IPv6'} decrement TTL exception"
        self._cur.append(Node("error" if reason.startswith(_ERRORS) else "warn", reason))

    def _on_end(self, kind: str, key: bytes, meta: int = 0) -> None:
        self.final_key = key
        self.final_meta = meta

    # Rendering ---------------------------------------------------------------------
    def render(self) -> str:
        out: list[str] = []
        _print(out, [self.root], 0)
        return "".join(out)


def _regs(meta: int) -> tuple[tuple[int, int], ...]:
    return tuple((n, v) for n in range(16) if (v := LOCS[f"reg{n}"].get(meta)))


def _hex0(v: int) -> str:
    return f"{v:#x}" if v else "0"  # C's %#x: "0", not "0x0"


def _dp_hash(meta: int) -> list[str]:
    """``dp_hash`` if not zero: after pkt_mark and recirc_id, before the protocol."""
    return [f"dp_hash={v:#x}"] if (v := LOCS["dp_hash"].get(meta)) else []


def _pipeline_parts(meta: int) -> tuple[list[str], list[str]]:
    """The pipeline fields Open vSwitch 3.1 shows in a flow (its flow_format, measured
    side by side): ``pkt_mark`` if not zero, before the protocol; then, after the
    registers, the tunnel: with a destination (IPv4 or IPv6) its whole header (ERSPAN's
    fields as its version has them, every tun_metadata the packet has), tun_id
    left out (shown only with the datapath's key flag, which no OpenFlow action sets),
    without one tun_id alone if not zero; then ``metadata`` if not zero."""

    def get(name: str) -> int:
        return LOCS[name].get(meta)

    first = [f"pkt_mark={v:#x}"] if (v := get("pkt_mark")) else []
    after: list[str] = []
    if get("tun_dst") or get("tun_ipv6_dst"):
        ver = get("tun_erspan_ver")
        after += [
            f"tun_src={ipaddress.IPv4Address(get('tun_src'))}",
            f"tun_dst={ipaddress.IPv4Address(get('tun_dst'))}",
            f"tun_ipv6_src={ipaddress.IPv6Address(get('tun_ipv6_src'))}",
            f"tun_ipv6_dst={ipaddress.IPv6Address(get('tun_ipv6_dst'))}",
            f"tun_gbp_id={get('tun_gbp_id')}",
            f"tun_gbp_flags={get('tun_gbp_flags')}",
            "tun_tos=0",
            "tun_ttl=0",
            f"tun_erspan_ver={ver}",
            # ERSPAN's index for version 1, direction and hardware id for version 2
            *([f"tun_erspan_idx={_hex0(get('tun_erspan_idx'))}"] if ver == 1 else []),
            *([f"tun_erspan_dir={get('tun_erspan_dir')}",
               f"tun_erspan_hwid={_hex0(get('tun_erspan_hwid'))}"] if ver == 2 else []),
            f"gtpu_flags={_hex0(get('tun_gtpu_flags'))}",
            f"gtpu_msgtype={get('tun_gtpu_msgtype')}",
            f"tun_flags={'oam' if get('tun_flags') & 1 else '0'}",
            # each tun_metadata<n> the packet has, in hex without leading zeros
            *(f"tun_metadata{n}={_hex0(get(f'tun_metadata{n}'))}"
              for n in range(64) if get("tun_metadata_present") >> n & 1),
        ]  # fmt: skip
    elif v := get("tun_id"):
        after.append(f"tun_id={v:#x}")
    if v := get("metadata"):
        after.append(f"metadata={v:#x}")
    return first, after


# The pipeline fields Open vSwitch's flow holds (a change to any of them is a "Final
# flow", even one it does not print, such as tun_src without a tunnel destination).
_FLOW_FIELDS = (
    *(f"reg{n}" for n in range(16)), "pkt_mark", "metadata", "tun_id", "tun_src", "tun_dst",
    "tun_ipv6_src", "tun_ipv6_dst", "tun_flags", "tun_gbp_id", "tun_gbp_flags",
    "tun_erspan_idx", "tun_erspan_ver", "tun_erspan_dir", "tun_erspan_hwid",
    "tun_gtpu_flags", "tun_gtpu_msgtype", "tun_metadata_present",
    *(f"tun_metadata{n}" for n in range(64)),
)  # fmt: skip


def _visible(meta: int) -> tuple[int, ...]:
    return tuple(LOCS[n].get(meta) for n in _FLOW_FIELDS)


def _flow(key: bytes, meta: int) -> str:
    first, after = _pipeline_parts(meta)
    return format_flow(key, _regs(meta), [*first, *_dp_hash(meta)], after)


@dataclass(frozen=True, slots=True)
class Recirculation:
    """A ``ct(table=)`` fork a trace follows: its id and frozen state, the table it
    resumes in, the zone, and the packet (key, pipeline fields) as it was at the ct."""

    recirc_id: int
    blob: bytes
    table_id: int
    zone: int
    key: bytes
    meta: int
    nat: NatSpec | None = None  # the ct's nat, if it has one



def normal_details(x: Xlate) -> list[str]:
    """What the NORMAL action decided, in Open vSwitch's words (a trace learns nothing,
    so, as in Open vSwitch, it never says "learned")."""
    if x.reason.startswith("drop: "):
        return [x.reason[len("drop: ") :]]
    if x.reason == "flood":
        return ["no learned MAC for destination, flooding"]
    if x.reason == "forward":
        return ["forwarding to learned port"]
    return [x.reason] if x.reason else []


def _print(out: list[str], nodes: list[Node], level: int) -> None:
    """Open vSwitch's layout: a node is indented one more level (4 spaces) when it is
    a leaf or has a following sibling, and its children two levels more then."""
    for i, n in enumerate(nodes):
        more = int(i < len(nodes) - 1 or n.type in TERMINAL)
        pad = " " * ((level + more) * 4)
        if n.type == "bridge":
            out.append(f"\n{pad}{n.text}\n{pad}{'-' * len(n.text)}\n")
        elif n.type == "detail":
            out.append(f"{pad} -> {n.text}\n")
        elif n.type == "warn":
            out.append(f"{pad} >> {n.text}\n")
        elif n.type == "error":
            out.append(f"{pad} >>>> {n.text} <<<<\n")
        else:
            out.append(f"{pad}{n.text}\n")
        _print(out, n.subs, level + 2 * more)


def trace(
    bridge: str,
    of_state: OfState,
    sw: SwitchState,
    key: bytes,
    actions: tuple[of.Action, ...] | None = None,
    start: int = 0,
) -> tuple[str, Xlate]:
    """The trace text of ``key`` through ``bridge``'s pipeline (or through ``actions``, a
    packet-out), and the translation itself. As Open vSwitch 3.1 does, each
    ``ct(table=)`` recirculation is followed after it, the packet resumed with
    ct_state=trk|new in the ct's zone (at most ``MAX_RECIRCS`` of them). ``start``: the
    pipeline fields the packet starts with (registers, metadata, pkt_mark, tunnel,
    dp_hash; fields.LOCS), as the traced flow gave them."""
    tracer = Tracer(bridge)
    x = xlate_openflow(of_state, sw, key, actions, recorder=tracer, start=start)
    lines = [f"Flow: {_flow(key, start)}\n", *_result(tracer, key, x, start)]
    queue = list(tracer.recircs)
    done = 0
    while queue and done < MAX_RECIRCS:
        r = queue.pop(0)
        done += 1
        rkey = key_set(key_set(key_set(r.key, "recirc_id", r.recirc_id), "ct_state",
                               CS_TRK | CS_NEW), "ct_zone", r.zone)  # fmt: skip
        nat_lines = ""
        if r.nat is not None:
            natted = _simulate_nat(rkey, r.nat)
            nat_lines = (
                "Replacing src/dst IP/ports to simulate NAT:\n"
                f" Initial flow: {_ip_flow(rkey, r.nat)}\n"
                f" Modified flow: {_ip_flow(natted, r.nat)}\n"
            )
            rkey = natted
        sub = Tracer(bridge)
        thaw = Node("thaw", f"Resuming from table {r.table_id}")
        sub.root.subs.append(Node("thaw", "thaw", [thaw]))
        rx = xlate_openflow(
            of_state, sw, rkey, recorder=sub, recirc={r.recirc_id: r.blob}, start=0
        )
        rule = "=" * 79
        lines += [
            f"\n{rule}\nrecirc({r.recirc_id:#x}) - resume conntrack with default "
            f"ct_state=trk|new (use --ct-next to customize)\n{nat_lines}{rule}\n\n",
            f"Flow: {_recirc_flow(rkey, r.meta)}\n",
            *_result(sub, rkey, rx, r.meta),
        ]
        queue += sub.recircs
    return "".join(lines), x


MAX_RECIRCS = 16  # ct(table=) forks a trace follows (a loop of them would never end)


def _simulate_nat(key: bytes, nat: NatSpec) -> bytes:
    """As Open vSwitch 3.1's trace simulates a ct's nat on the recirculated packet: the
    first address of the range (and the first port, if given) replaces the source or
    the destination; a bare ``nat`` changes nothing."""
    if nat.kind is None or not nat.addr_min:
        return key
    v4 = len(nat.addr_min) == 4
    addr = f"ipv{4 if v4 else 6}_{nat.kind}"
    key = key_set(key, addr, int.from_bytes(nat.addr_min, "big"))
    if nat.port_min:
        key = key_set(key, f"tp_{nat.kind}", nat.port_min)
    return key


def _ip_flow(key: bytes, nat: NatSpec) -> str:
    """The addresses and ports a simulated nat shows (none for a nat without an
    address: Open vSwitch prints them for the range's address family only)."""
    if not nat.addr_min:
        return ""
    sp, dp = key_field(key, "tp_src"), key_field(key, "tp_dst")
    if len(nat.addr_min) == 4:
        src = ipaddress.IPv4Address(key_field(key, "ipv4_src"))
        dst = ipaddress.IPv4Address(key_field(key, "ipv4_dst"))
        return f"nw_src={src},tp_src={sp},nw_dst={dst},tp_dst={dp}"
    src6 = ipaddress.IPv6Address(key_field(key, "ipv6_src"))
    dst6 = ipaddress.IPv6Address(key_field(key, "ipv6_dst"))
    return f"ipv6_src=[{src6}],tp_src={sp},ipv6_dst=[{dst6}],tp_dst={dp}"


def _recirc_flow(key: bytes, meta: int = 0) -> str:
    """A recirculated flow as Open vSwitch prints it: pkt_mark, the recirculation and ct
    fields first, then "eth" and the flow."""
    first, after = _pipeline_parts(meta)
    head = [*first, f"recirc_id={key_field(key, 'recirc_id'):#x}", *_dp_hash(meta)]
    st = key_field(key, "ct_state")
    if st:
        head.append(f"ct_state={format_ct_state(st)}")
    for name in ("ct_zone", "ct_mark"):
        if v := key_field(key, name):
            head.append(f"{name}={v if name == 'ct_zone' else hex(v)}")
    return ",".join([*head, "eth", format_flow(key, _regs(meta), (), after)])


def _result(tracer: Tracer, key: bytes, x: Xlate, start_meta: int = 0) -> list[str]:
    """The tree, then the Final flow, Megaflow and Datapath actions lines."""
    final = tracer.final_key if tracer.final_key is not None else key
    meta = tracer.final_meta if tracer.final_key is not None else start_meta
    lines = [tracer.render(), "\n"]
    if final == key and _visible(meta) == _visible(start_meta):
        lines.append("Final flow: unchanged\n")
    elif key_field(final, "recirc_id"):
        lines.append(f"Final flow: {_recirc_flow(final, meta)}\n")
    else:
        lines.append(f"Final flow: {_flow(final, meta)}\n")
    lines.append(f"Megaflow: {format_megaflow(key, x.mask)}\n")
    lines.append(f"Datapath actions: {format_actions(x.actions) if x.actions else 'drop'}\n")
    if x.reason.startswith("drop: openflow: "):  # a translation error (too deep...)
        why = x.reason[16:]
        why = next((text for start, text in _ERRORS_TEXT if why.startswith(start)), why)
        lines.append(f"Translation failed ({why}), packet is dropped.\n")
    return lines


# Translation errors as Open vSwitch 3.1 reports them: an error line in the tree, then
# "Translation failed" with its xlate_strerror() text (seen side by side, the 65th
# nested resubmit: tests/daemon/test_fields_vs_ovs.py)
_ERRORS_TEXT = (
    ("over max translation depth", "Recursion too deep"),
    (f"over {MAX_RESUBMITS} resubmit actions", "Too many resubmits"),
)
_ERRORS = tuple(start for start, _ in _ERRORS_TEXT)
