"""Test hooks, as Open vSwitch's own tests drive a switch: inject a packet on a dummy port
(``netdev-dummy/receive``) and move the daemon's clock (``time/stop``, ``time/warp``).

``netdev-dummy/receive PORT PACKET...`` takes each PACKET as hex (``0000000000020000...``)
or as a flow in ovs-ofctl syntax (``udp,dl_src=...,nw_dst=10.0.0.2,udp_dst=53``; see
hitless.packet.flowstr), optionally followed by ``--len N`` (pad the frame to N bytes).
PORT is any port of a bridge whose datapath is ``dummy``. The packet is handled (upcall,
translation, flow install, output) before the reply, so a test can look at counters
(``ovs-ofctl dump-flows``) or at the port's ``tx_pcap`` file right after.

``time/stop`` freezes the daemon's clock; ``time/warp MSECS`` moves it forward, and
``time/warp LARGE_MSECS MSECS`` moves it by LARGE_MSECS in MSECS steps, running the main
loop after each, so that every timer due in between fires in order (hitless.daemon.clock).
"""

from __future__ import annotations

from hitless.daemon import settings
from hitless.daemon.unixctl import CommandError, Request, command
from hitless.datapath.dummy import DummyDatapath
from hitless.ofproto.bridge import MAX_UPCALLS_PER_RUN
from hitless.packet.flowstr import FlowSyntaxError, build_packet, parse_flow

_HEX = frozenset("0123456789abcdefABCDEF")


def parse_packet(text: str) -> bytes:
    """A packet given as hex digits or as a flow (ovs-ofctl syntax)."""
    if text and len(text) % 2 == 0 and set(text) <= _HEX:
        return bytes.fromhex(text)
    try:
        return build_packet(parse_flow(text))
    except FlowSyntaxError as e:
        raise CommandError(f"syntax error at {text} ({e})") from None


@command("netdev-dummy/receive", "name packet|flow... [--len packet_len]", 2, 1000)
def receive(req: Request) -> str:
    name, *rest = req.args
    pad = 0
    if len(rest) >= 2 and rest[-2] == "--len":
        try:
            pad = int(rest[-1])
        except ValueError:
            raise CommandError(f"--len {rest[-1]}: not a number") from None
        rest = rest[:-2]
    if not rest:
        raise CommandError("netdev-dummy/receive needs a packet")
    for rb in req.switch.bridges.values():
        dp = rb.datapath
        for port in dp.ports().values():
            if port.name != name:
                continue
            if not isinstance(dp, DummyDatapath):
                raise CommandError(f"{name} is not a dummy port (datapath type {dp.type})")
            packets = [parse_packet(p) for p in rest]  # all valid before any is sent
            for pkt in packets:
                dp.receive(port.port_no, pkt.ljust(pad, b"\0"))
            # a bridge turn handles at most MAX_UPCALLS_PER_RUN misses: enough turns
            for _ in range(1 + len(packets) // MAX_UPCALLS_PER_RUN):
                rb.bridge.run(req.switch.clock())
            return ""
    raise CommandError("no such dummy netdev")


@command("time/stop")
def time_stop(req: Request) -> str:
    req.switch.clock.stop()
    settings.save(req.switch)
    return ""


def _msecs(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise CommandError(f"invalid MSECS {text!r} (a number of milliseconds >= 0)")
    return v


@command("time/warp", "[large_msecs] msecs", 1, 2)
def time_warp(req: Request) -> str | None:
    clock = req.switch.clock
    if len(req.args) == 1:
        clock.warp(_msecs(req.args[0]) / 1000)
        # Timers that are now due run before the reply (as if the loop had run).
        now = clock()
        for rb in req.switch.bridges.values():
            rb.bridge.run(now)
        settings.save(req.switch)
        return "warped"
    total, step = _msecs(req.args[0]), _msecs(req.args[1])
    if step == 0:
        raise CommandError("time/warp: MSECS must be > 0")

    def done() -> None:
        settings.save(req.switch)
        req.reply("warped")

    clock.plan(total / 1000, step / 1000, done)
    return None
