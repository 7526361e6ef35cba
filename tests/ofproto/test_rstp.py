"""RSTP without sockets: two bridges cabled twice (a loop) plus a host port each, BPDUs
carried between the two objects in memory. The proposal/agreement handshake makes the
port facing the root port forward at once; the port facing the alternate waits two
forward delays; host ports become edges after the migrate time; a topology change does
not bounce between the bridges; the alternate takes over when the root port's link
goes; a handoff's export/import keeps every role and state."""

from __future__ import annotations

from hitless.ofproto.rstp import Rstp, RstpPortConfig, format_rstp_id

FWD = 4.0


def _ports(mac: int, up: tuple[bool, bool] = (True, True)) -> list[RstpPortConfig]:
    m = bytes([2, 0, 0, 0, 0, mac])
    return [RstpPortConfig(1, "l0", m, up=up[0]), RstpPortConfig(2, "l1", m, up=up[1]),
            RstpPortConfig(3, "host", m)]  # fmt: skip


class Loop:
    def __init__(self) -> None:
        self.a = Rstp(0x8000 << 48 | 0xA, 6, FWD)
        self.b = Rstp(0x9000 << 48 | 0xB, 6, FWD)
        self.t = 0.0
        self.a.set_ports(_ports(0xA), 0)
        self.b.set_ports(_ports(0xB), 0)
        self.cut: set[int] = set()

    def run_until(self, t: float) -> None:
        while self.t < t:
            self.t = round(self.t + 0.1, 3)
            for s in (self.a, self.b):
                s.run(self.t)
            for _ in range(4):
                for s, peer in ((self.a, self.b), (self.b, self.a)):
                    for port, frame in s.take_bpdus():
                        if port in (1, 2) and port not in self.cut:
                            peer.receive(port, frame, self.t)

    def roles(self, s: Rstp) -> dict[str, tuple[str, str]]:
        return {p.cfg.name: (p.role, p.state) for p in s.ports.values()}


def test_the_loop_converges_rapidly_where_it_can() -> None:
    lp = Loop()
    lp.run_until(0.5)
    # A (the lower ID) is the root; B's root port agreed at once, so A's l0 forwards.
    assert lp.roles(lp.b)["l0"] == ("Root", "Forwarding")
    assert lp.roles(lp.b)["l1"] == ("Alternate", "Discarding")
    assert lp.roles(lp.a)["l0"] == ("Designated", "Forwarding")
    assert lp.roles(lp.a)["l1"] == ("Designated", "Discarding")  # an alternate never agrees
    lp.run_until(3.5)  # the migrate time: the host ports are edges
    assert lp.roles(lp.a)["host"] == lp.roles(lp.b)["host"] == ("Designated", "Forwarding")
    lp.run_until(2 * FWD + 0.5)
    assert lp.roles(lp.a)["l1"] == ("Designated", "Forwarding")
    assert lp.b.state(2) == "blocking" and lp.b.state(1) == "forwarding"
    st = lp.b.bridge_status()
    assert st["rstp_root_id"] == format_rstp_id(lp.a.bridge_id) == "8.000.00000000000a"
    assert (st["rstp_root_path_cost"], st["rstp_bridge_port_id"]) == ("2000", "8001")
    # No topology change bouncing between the bridges: about one BPDU per hello.
    before = lp.b.ports[1].tx + lp.a.ports[1].tx
    lp.run_until(lp.t + 20)
    assert lp.b.ports[1].tx + lp.a.ports[1].tx - before <= 12


def test_the_alternate_takes_over_when_the_root_port_goes() -> None:
    lp = Loop()
    lp.run_until(2 * FWD + 1)
    lp.cut.add(1)
    lp.b.set_ports(_ports(0xB, up=(False, True)), lp.t)
    lp.a.set_ports(_ports(0xA, up=(False, True)), lp.t)
    lp.run_until(lp.t + 0.5)
    assert lp.roles(lp.b)["l1"] == ("Root", "Forwarding")
    assert lp.roles(lp.a)["l1"] == ("Designated", "Forwarding")


def test_export_import_keeps_roles_states_and_timers() -> None:
    lp = Loop()
    lp.run_until(1.0)  # A's l1 is half-way through its forward delay
    data = lp.b.export_state(lp.t), lp.a.export_state(lp.t)
    new_b, new_a = Rstp(lp.b.bridge_id, 6, FWD), Rstp(lp.a.bridge_id, 6, FWD)
    new_b.set_ports(_ports(0xB), lp.t)
    new_a.set_ports(_ports(0xA), lp.t)
    new_b.import_state(data[0], lp.t)
    new_a.import_state(data[1], lp.t)
    assert lp.roles(new_b) == lp.roles(lp.b) and lp.roles(new_a) == lp.roles(lp.a)
    assert new_a.ports[2].fd_expires == lp.a.ports[2].fd_expires
    # An STP state is not taken for RSTP's.
    fresh = Rstp(lp.b.bridge_id, 6, FWD)
    fresh.set_ports(_ports(0xB), lp.t)
    fresh.import_state({"ports": {}}, lp.t)
    assert fresh.ports[1].role == "Designated"


def test_garbage_is_counted_not_taken() -> None:
    lp = Loop()
    lp.b.receive(1, bytes(60), 0.1)
    assert lp.b.ports[1].errors == 1 and lp.b.ports[1].msg is None


def test_path_costs_follow_the_link_speed_unless_configured() -> None:
    from dataclasses import replace

    from tests.ofproto.helpers import P, Rig, config

    r = Rig({"br0": P(type="internal"), "a": P(), "b": P()})
    for stp, costs in ((True, (4, 2, 100)), (False, (20000, 2000, 77))):
        cfg = replace(config("br0", r.ports), stp_enable=stp, rstp_enable=not stp)
        r.bridge.reconfigure(cfg, r.clock.t)
        r.bridge.set_link_speeds({"a": 10**9}, r.clock.t)  # b: unknown, a veth's 10 Gb/s
        tree = r.bridge.stp
        assert tree is not None
        assert (tree.ports[r.no("a")].cfg.cost, tree.ports[r.no("b")].cfg.cost) == costs[:2]
        key = "stp-path-cost" if stp else "rstp-path-cost"
        pb = replace(cfg.ports["b"], other_config={key: str(costs[2])})
        r.bridge.reconfigure(replace(cfg, ports={**cfg.ports, "b": pb}), r.clock.t)
        assert r.bridge.stp.ports[r.no("b")].cfg.cost == costs[2]  # type: ignore[union-attr]


def test_an_802_1d_neighbour_gets_configuration_bpdus() -> None:
    """STP compatibility (802.1D-2004 17.26, port protocol migration): an RSTP root cabled
    twice to an 802.1D bridge (which discards RST BPDUs, as Open vSwitch's STP does).
    Once a port hears a configuration BPDU it speaks 802.1D there, so the STP bridge
    learns who the root is and blocks one link: no loop. Without it both of the STP
    bridge's ports forward."""
    from hitless.ofproto.stp import Stp, StpPortConfig

    a = Rstp(0x8000 << 48 | 0xA, 6, FWD)
    b = Stp(0x9000 << 48 | 0xB, 2.0, 6, FWD)
    mb = bytes([2, 0, 0, 0, 0, 0xB])
    a.set_ports(_ports(0xA), 0)
    b.set_ports([StpPortConfig(1, "l0", mb), StpPortConfig(2, "l1", mb)], 0)
    t = 0.0
    last: dict[int, bytes] = {}
    while t < 3 * FWD + 2:
        t = round(t + 0.1, 3)
        a.run(t)
        b.run(t)
        for src, dst in ((a, b), (b, a)):
            for port, frame in src.take_bpdus():
                if port in (1, 2):
                    if src is a:
                        last[port] = frame
                    dst.receive(port, frame, t)
    assert b.root_id == a.bridge_id
    assert {b.state(1), b.state(2)} == {"forwarding", "blocking"}
    assert a.state(1) == a.state(2) == "forwarding"
    for frame in last.values():  # 802.1D configuration BPDUs: version 0, type 0
        assert frame[14:17] == b"\x42\x42\x03" and frame[19:21] == b"\x00\x00", frame.hex()


def test_the_transmit_hold_count_limits_bpdus() -> None:
    """At most hold_count BPDUs on a port before its count drops by one a second
    (802.1D-2004 17.13.12): 39 reasons to send within a second give 6 BPDUs, then one a second;
    with a hold count of 2, 2."""
    for hold, want in ((6, 6), (2, 2)):
        r = Rstp(0x8000 << 48 | 0xA, 6, FWD, hold_count=hold)
        r.set_ports(_ports(0xA)[:1], 0)
        sent = 0
        t = 0.0
        for _ in range(39):  # a proposal, a change... every 25 ms, for 0.975 s
            t = round(t + 0.025, 3)
            r.ports[1].send_now = True
            r.run(t)
            sent += len(r.take_bpdus())
        assert sent == want, (hold, sent)
        r.run(t + 1.0)  # one second on: the count dropped by one, the held BPDU goes
        assert len(r.take_bpdus()) == 1


def rst_bpdu(flags: int, root: int, bridge: int, port: int = 0x8001) -> bytes:
    """An RST BPDU from a designated port (role bits 3) with these flags and vector."""
    from hitless.ofproto.rstp import _BPDU, LLC, RST, STP_MAC

    body = _BPDU.pack(0, RST, RST, 3 << 2 | flags, root, 0, bridge, port, 0, 6 * 256,
                      2 * 256, int(FWD * 256)) + b"\x00"  # fmt: skip
    llc = LLC + body
    return (STP_MAC + bytes([2, 0, 0, 0, 0, 0xC]) + len(llc).to_bytes(2, "big") + llc).ljust(60, b"\0")


def test_inferior_designated_information_is_not_recorded_and_learning_disputes_it() -> None:
    """A designated port hearing a worse designated port (a bridge that does not know the
    root yet): without the learning flag nothing changes (the port proposes and goes
    through its forward delays); with it the port is disputed, as 802.1Q-2008 and Open
    vSwitch 3.1 have it: while the other side keeps it up the port never learns long
    enough to forward; once the other side stops, it does after its forward delays."""
    from hitless.ofproto.rstp import F_FORWARDING, F_LEARNING, F_PROPOSAL

    worse = 0xF000 << 48 | 0xC
    for flags in (0, F_LEARNING | F_FORWARDING):
        a = Rstp(0x8000 << 48 | 0xA, 6, FWD)
        a.set_ports(_ports(0xA)[:1], 0)
        states, sent, t = [], [], 0.0
        while t < 3 * FWD:
            t = round(t + 0.1, 2)
            if round(t * 10) % 3 == 0:
                a.receive(1, rst_bpdu(flags, worse, worse), t)
            a.run(t)
            sent += [f for _, f in a.take_bpdus()]
            if not states or states[-1] != a.ports[1].state:
                states.append(a.ports[1].state)
        p = a.ports[1]
        assert (p.role, p.msg) == ("Designated", None), flags
        assert all(f[21] & F_PROPOSAL for f in sent if not f[21] & F_FORWARDING), flags
        if flags == 0:
            assert states == ["Discarding", "Learning", "Forwarding"], states
        else:
            assert states == ["Discarding"], states
            quiet = t  # the other side stops: the port goes through its delays
            while t < quiet + 3 * FWD:
                t = round(t + 0.1, 2)
                a.run(t)
                if states[-1] != a.ports[1].state:
                    states.append(a.ports[1].state)
            assert states == ["Discarding", "Learning", "Forwarding"], states
    # From the port it heard before (the same sender), worse information replaces it.
    b = Rstp(0x9000 << 48 | 0xB, 6, FWD)
    b.set_ports(_ports(0xB)[:1], 0)
    b.receive(1, rst_bpdu(0, 0x8000 << 48 | 0xA, 0x8000 << 48 | 0xA), 0.1)
    assert b.ports[1].role == "Root"
    b.receive(1, rst_bpdu(0, 0xA000 << 48 | 0xD, 0x8000 << 48 | 0xA), 0.2)
    assert b.ports[1].msg == (0xA000 << 48 | 0xD, 0, 0x8000 << 48 | 0xA, 0x8001)


def test_a_dispute_stops_a_forwarding_port() -> None:
    """A designated port already forwarding (its neighbour agreed, or its delays passed)
    that then hears a dispute goes back to discarding and waits its delays again."""
    from hitless.ofproto.rstp import F_FORWARDING, F_LEARNING

    a = Rstp(0x8000 << 48 | 0xA, 6, FWD)
    a.set_ports(_ports(0xA)[:1], 0)
    a.receive(1, rst_bpdu(0, 0xF000 << 48 | 0xC, 0xF000 << 48 | 0xC), 0.1)
    a.run(FWD + 0.1)
    a.run(2 * FWD + 0.2)
    assert a.ports[1].state == "Forwarding"
    a.receive(1, rst_bpdu(F_LEARNING | F_FORWARDING, 0xF000 << 48 | 0xC, 0xF000 << 48 | 0xC),
              2 * FWD + 0.3)  # fmt: skip
    assert (a.ports[1].state, a.ports[1].disputed) == ("Discarding", False)
    assert a.ports[1].fd_expires == 3 * FWD + 0.3
    data = a.export_state(2 * FWD + 0.4)
    assert data["ports"]["1"]["disputed"] is False
