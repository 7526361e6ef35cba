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
