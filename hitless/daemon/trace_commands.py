"""``ofproto/trace``, ``ofproto/trace-packet-out`` and ``ofproto/list``.

    ofproto/trace BRIDGE FLOW [PACKET | -generate]
    ofproto/trace-packet-out [-consistent] BRIDGE FLOW [PACKET | -generate] ACTIONS

FLOW is ovs-ofctl flow syntax (``in_port=p1,udp,nw_dst=10.0.0.2,udp_dst=53``; a port
may be named); PACKET, hex, gives the headers instead (FLOW then supplies in_port). FLOW
may also give the pipeline fields the packet starts with, as Open vSwitch's trace takes
them: registers (``reg0``-``reg15``, ``xreg``, ``xxreg``), ``metadata``, ``pkt_mark``,
``dp_hash`` and the tunnel's (``tun_id``, ``tun_src``, ``tun_dst``, ``tun_ipv6_src``,
``tun_ipv6_dst``, ``tun_flags=oam``, ``tun_gbp_*``, ``tun_erspan_*``, ``tun_gtpu_*``),
exact values only. The walk is the real translation (hitless.ofproto.trace), which
changes nothing: no MAC is learned, no counter moves, no packet is sent.
"""

from __future__ import annotations

import ipaddress
import re

from hitless.daemon.unixctl import CommandError, Request, command
from hitless.ofproto.bridge import Bridge
from hitless.ofproto.fields import LOCS
from hitless.ofproto.trace import trace
from hitless.openflow.ofctl_text import ActionSyntaxError, parse_actions
from hitless.packet.flow import ETH_TYPE_IPV6, IPPROTO_ICMPV6, extract_key, set_field
from hitless.packet.flow import field as key_field
from hitless.packet.flowstr import OFPP_ANY, FlowSyntaxError, build_packet, parse_flow

_HEX = frozenset("0123456789abcdefABCDEF")


def _is_hex(text: str) -> bool:
    return len(text) >= 28 and len(text) % 2 == 0 and set(text) <= _HEX


def _bridge(req: Request, name: str) -> Bridge:
    _, _, bare = name.rpartition("@")
    rb = req.switch.bridges.get(bare)
    if rb is None or not isinstance(rb.bridge, Bridge):
        raise CommandError(f"{name}: unknown bridge")
    return rb.bridge


# The pipeline fields a traced flow may start with (fields.LOCS names; tunnel_id is
# Open vSwitch's other name for tun_id)
_START = re.compile(
    r"reg(1[0-5]|[0-9])|xreg[0-7]|xxreg[0-3]|metadata|pkt_mark|dp_hash|tun_id|tunnel_id"
    r"|tun_(src|dst|ipv6_src|ipv6_dst|flags|gbp_id|gbp_flags|erspan_(idx|ver|dir|hwid)"
    r"|gtpu_(flags|msgtype))"
)


def _start_value(flow: str, name: str, text: str) -> int:
    """The value of pipeline field ``name`` given as ``text`` in a traced flow."""

    def bad(why: str) -> CommandError:
        return CommandError(
            f"Bad openflow flow syntax: {flow}: bad value for {name} ({text}: {why})"
        )

    if "/" in text or text[:1] in "+-":
        raise bad("wildcards not allowed here")
    try:
        if name in ("tun_src", "tun_dst", "tun_ipv6_src", "tun_ipv6_dst"):
            addr = ipaddress.ip_address(text)
            if (addr.version == 4) != (name in ("tun_src", "tun_dst")):
                raise ValueError
            return int(addr)
        if name == "tun_flags" and text == "oam":
            return 1
        value = int(text, 0)
    except ValueError:
        raise bad(f"bad syntax for {name} value") from None
    if not 0 <= value <= LOCS[name].ones:
        raise bad(f"value too large for {LOCS[name].bits}-bit field {name}")
    return value


def _split_start(flow: str) -> tuple[str, int]:
    """``flow`` without the pipeline fields it gives, and those fields as the pipeline
    key's region (fields.LOCS)."""
    rest, meta = [], 0
    for tok in flow.replace(" ", ",").split(","):
        name, eq, text = tok.partition("=")
        name = name.strip()
        if eq and _START.fullmatch(name):
            name = "tun_id" if name == "tunnel_id" else name
            meta = LOCS[name].put(meta, _start_value(flow, name, text.strip()))
        elif tok:
            rest.append(tok)
    return ",".join(rest), meta


def _key(bridge: Bridge, flow: str, packet: str | None) -> tuple[bytes, int]:
    """The traced packet's key and the pipeline fields it starts with."""
    text, start = _split_start(flow)
    return _packet_key(bridge, flow, text, packet), start


def _packet_key(bridge: Bridge, flow: str, text: str, packet: str | None) -> bytes:
    try:
        spec = parse_flow(text)
    except FlowSyntaxError as e:
        why = str(e)  # it names the flow it parsed: name the one given
        why = flow + why[len(text) :] if why.startswith(text + ":") else why
        raise CommandError(f"Bad openflow flow syntax: {why}") from None
    in_port = spec.in_port
    if spec.in_port_name is not None:
        ports = {p.name: p.port_no for p in bridge.datapath.ports().values()}
        if spec.in_port_name not in ports:
            raise CommandError(
                f"Bad openflow flow syntax: {flow}: {spec.in_port_name}: invalid or unknown port"
            )
        in_port = ports[spec.in_port_name]
    if in_port is None:
        in_port = OFPP_ANY
    if packet is not None:
        return extract_key(bytes.fromhex(packet), in_port)
    key = extract_key(build_packet(spec), in_port)
    if (key_field(key, "eth_type"), key_field(key, "ip_proto")) == (
        ETH_TYPE_IPV6, IPPROTO_ICMPV6
    ) and key_field(key, "tp_src") in (135, 136):
        # Open vSwitch traces the flow as written: a link-layer address option gives it
        # no options type (the packet built from the flow here has one)
        key = set_field(key, "nd_options_type", spec.nd_options_type)
    return key


def _split(args: list[str]) -> tuple[str, str, str | None]:
    """BRIDGE FLOW [PACKET|-generate] -> (bridge, flow, packet hex or None)."""
    packet = None
    if args and (args[-1] == "-generate" or _is_hex(args[-1])):
        packet = None if args[-1] == "-generate" else args[-1]
        args = args[:-1]
    if len(args) != 2:
        raise CommandError("Must specify bridge name" if len(args) == 1 else "Syntax error")
    return args[0], args[1], packet


@command("ofproto/trace", "bridge br_flow [-generate|packet]", 1, 3)
def ofproto_trace(req: Request) -> str:
    name, flow, packet = _split(list(req.args))
    bridge = _bridge(req, name)
    key, start = _key(bridge, flow, packet)
    text, _ = trace(bridge.name, bridge.of, bridge.state, key, start=start)
    return text


@command(
    "ofproto/trace-packet-out",
    "[-consistent] bridge br_flow [-generate|packet] actions",
    2,
    6,
)
def ofproto_trace_packet_out(req: Request) -> str:
    args = list(req.args)
    try:
        actions = parse_actions(args.pop())
    except ActionSyntaxError as e:
        raise CommandError(str(e)) from None
    if args and args[0] == "-consistent":
        args.pop(0)
    name, flow, packet = _split(args)
    bridge = _bridge(req, name)
    key, start = _key(bridge, flow, packet)
    text, _ = trace(bridge.name, bridge.of, bridge.state, key, actions, start=start)
    return text


@command("ofproto/list")
def ofproto_list(req: Request) -> str:
    return "".join(f"{n}\n" for n in sorted(req.switch.bridges))
