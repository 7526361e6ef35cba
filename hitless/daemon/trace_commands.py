"""``ofproto/trace``, ``ofproto/trace-packet-out`` and ``ofproto/list``.

    ofproto/trace BRIDGE FLOW [PACKET | -generate]
    ofproto/trace-packet-out [-consistent] BRIDGE FLOW [PACKET | -generate] ACTIONS

FLOW is ovs-ofctl flow syntax (``in_port=p1,udp,nw_dst=10.0.0.2,udp_dst=53``; a port
may be named); PACKET, hex, gives the headers instead (FLOW then supplies in_port). The
walk is the real translation (hitless.ofproto.trace), which changes nothing: no MAC is
learned, no counter moves, no packet is sent.
"""

from __future__ import annotations

from hitless.daemon.unixctl import CommandError, Request, command
from hitless.ofproto.bridge import Bridge
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


def _key(bridge: Bridge, flow: str, packet: str | None) -> bytes:
    try:
        spec = parse_flow(flow)
    except FlowSyntaxError as e:
        raise CommandError(f"Bad openflow flow syntax: {e}") from None
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
    text, _ = trace(bridge.name, bridge.of, bridge.state, _key(bridge, flow, packet))
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
    key = _key(bridge, flow, packet)
    text, _ = trace(bridge.name, bridge.of, bridge.state, key, actions)
    return text


@command("ofproto/list")
def ofproto_list(req: Request) -> str:
    return "".join(f"{n}\n" for n in sorted(req.switch.bridges))
