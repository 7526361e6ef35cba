"""Patch ports on the dummy datapath: two bridges (two datapath instances) joined by a
patch pair, NORMAL switching across, MAC learning on both sides, peer errors, the loop
guard, and a handoff of the pair."""

from __future__ import annotations

from hitless.config.model import BridgeConfig, InterfaceConfig, PortConfig
from hitless.datapath.actions import Output
from hitless.datapath.base import DatapathError
from hitless.datapath.dummy import DummyDatapath
from hitless.datapath.patch import PatchPanel
from hitless.ofproto.bridge import Bridge
from hitless.packet.flow import Match, extract_key
from tests.ofproto.helpers import BCAST, Clock, frame, mac


def _cfg(name: str, ifaces: dict[str, dict[str, str] | None]) -> BridgeConfig:
    """Interfaces by name: None is a system port, a dict the options of a patch port."""
    ports = {
        n: PortConfig(n, (InterfaceConfig(n, "system" if o is None else "patch", options=o or {}),))
        for n, o in ifaces.items()
    }
    return BridgeConfig(name, datapath_type="dummy", ports=ports)


class Side:
    def __init__(self, name: str, panel: PatchPanel, clock: Clock) -> None:
        self.clock = clock
        self.dp = DummyDatapath(name, clock=clock)
        self.dp.patch_panel = panel
        self.bridge = Bridge(name, self.dp)
        self.name = name

    def configure(self, ifaces: dict[str, dict[str, str] | None]):  # noqa: ANN201
        return self.bridge.reconfigure(_cfg(self.name, ifaces), self.clock.t)

    def no(self, iface: str) -> int:
        n = self.bridge.ofport_of(iface)
        assert n is not None
        return n

    def out(self) -> dict[str, list[bytes]]:
        ports = self.dp.ports()
        return {ports[p].name: v for p, v in self.dp.pop_sent().items()}


class Pair:
    """br0 (a1, a2, p0) and br1 (b1, p1), p0 <-> p1."""

    def __init__(self) -> None:
        self.panel = PatchPanel()
        self.clock = Clock()
        self.br0 = Side("br0", self.panel, self.clock)
        self.br1 = Side("br1", self.panel, self.clock)
        self.st0 = self.br0.configure({"a1": None, "a2": None, "p0": {"peer": "p1"}})
        self.st1 = self.br1.configure({"b1": None, "p1": {"peer": "p0"}})

    def run(self) -> None:
        # As the daemon's loop: every bridge in turn, until no upcall is left.
        for _ in range(4):
            self.br0.bridge.run(self.clock.t)
            self.br1.bridge.run(self.clock.t)

    def send(self, side: Side, iface: str, pkt: bytes) -> tuple[dict, dict]:
        side.dp.receive(side.no(iface), pkt)
        self.run()
        return self.br0.out(), self.br1.out()


def test_a_frame_crosses_the_patch_pair_and_both_sides_learn() -> None:
    t = Pair()
    # br0 was configured before br1 had p1; both are connected once both exist
    assert t.st0["p0"].error == "p0: patch peer p1 does not exist"
    assert t.st1["p1"].error is None and t.st1["p1"].link_state == "up"
    assert t.br0.bridge.status()["p0"].error is None
    f1 = frame(BCAST, mac(1))
    out0, out1 = t.send(t.br0, "a1", f1)
    assert out0 == {"a2": [f1]}  # flooded on br0 (the patch port sends, not "sent")
    assert out1 == {"b1": [f1]}  # received on p1, flooded by br1
    p1 = t.br1.no("p1")
    # br1 learned mac(1) behind its patch port; a reply crosses back as unicast
    f2 = frame(mac(1), mac(2))
    out0, out1 = t.send(t.br1, "b1", f2)
    assert out1 == {} and out0 == {"a1": [f2]}
    assert "50:54:00:00:00:01" in t.br1.bridge.fdb_show()
    fdb0 = t.br0.bridge.fdb_show().splitlines()
    assert any(f"{mac(2)}" in line and line.split()[0] == str(t.br0.no("p0")) for line in fdb0)
    fdb1 = t.br1.bridge.fdb_show().splitlines()
    assert any(f"{mac(1)}" in line and line.split()[0] == str(p1) for line in fdb1)
    # Unicast both ways now; once the megaflows are on both datapaths, the same
    # conversation crosses without an upcall on either side
    f3 = frame(mac(2), mac(1))
    out0, out1 = t.send(t.br0, "a1", f3)
    assert out0 == {} and out1 == {"b1": [f3]}
    n0, n1 = t.br0.bridge.n_upcalls, t.br1.bridge.n_upcalls
    f4 = frame(mac(2), mac(1), b"again")
    out0, out1 = t.send(t.br0, "a1", f4)
    assert out0 == {} and out1 == {"b1": [f4]}
    assert (t.br0.bridge.n_upcalls, t.br1.bridge.n_upcalls) == (n0, n1)
    ports0, ports1 = t.br0.dp.ports(), t.br1.dp.ports()
    assert ports0[t.br0.no("p0")].stats.tx_packets == 3
    assert ports1[p1].stats.rx_packets == 3 and ports1[p1].stats.tx_packets == 1


def test_patch_port_without_peer_reports_error_and_link_down() -> None:
    panel, clock = PatchPanel(), Clock()
    br0 = Side("br0", panel, clock)
    st = br0.configure({"a1": None, "p0": {"peer": "p1"}})
    assert st["p0"].ofport > 0
    assert st["p0"].link_state == "down"
    assert st["p0"].error == "p0: patch peer p1 does not exist"
    # Flooding skips a patch port that is down
    br0.dp.receive(br0.no("a1"), frame(BCAST, mac(1)))
    br0.bridge.run(clock.t)
    assert br0.dp.ports()[br0.no("p0")].stats.tx_packets == 0
    # The peer appears (on another bridge): link up, error cleared
    br1 = Side("br1", panel, clock)
    br1.configure({"p1": {"peer": "p0"}})
    br0.bridge.run(clock.t)
    st = br0.bridge.status()
    assert st["p0"].link_state == "up" and st["p0"].error is None
    # A peer that names another interface does not connect
    br1.configure({"p1": {"peer": "px"}})
    st = br0.bridge.status()
    assert (
        st["p0"].link_state == "down" and st["p0"].error == "p0: patch peer p1 has peer px, not p0"
    )
    # The peer goes away entirely
    br1.configure({})
    assert br0.bridge.status()["p0"].error == "p0: patch peer p1 does not exist"


def test_invalid_patch_options_are_rejected_as_open_vswitch_does() -> None:
    panel, clock = PatchPanel(), Clock()
    br0 = Side("br0", panel, clock)
    st = br0.configure(
        {"p0": {}, "p2": {"peer": "p2"}, "p3": {"peer": "p1", "x": "y"}, "p4": {"peer": "p" * 16}}
    )
    assert st["p0"].ofport == -1
    assert st["p0"].error == "p0: patch type requires valid 'peer' argument"
    assert st["p2"].error == "p2: patch peer must not be self"
    assert st["p3"].error == "p3: patch type takes only a 'peer' argument"
    assert st["p4"].error == "p4: patch 'peer' arg too long"
    assert br0.dp.ports() == {}
    # Fixed configuration: attached
    st = br0.configure({"p0": {"peer": "p1"}})
    assert st["p0"].ofport > 0


def test_changing_the_peer_reattaches_with_the_same_number() -> None:
    t = Pair()
    no = t.br0.no("p0")
    t.br0.configure({"a1": None, "a2": None, "p0": {"peer": "p9"}})
    assert t.br0.no("p0") == no
    assert t.br0.dp.ports()[no].peer == "p9"
    assert t.br0.bridge.status()["p0"].link_state == "down"
    assert t.br1.bridge.status()["p1"].error == "p1: patch peer p0 has peer p9, not p1"
    t.br0.configure({"a1": None, "a2": None, "p0": {"peer": "p1"}})
    assert t.br1.bridge.status()["p1"].error is None


def test_a_loop_through_patch_ports_is_cut() -> None:
    panel = PatchPanel(max_depth=8)
    a, b = DummyDatapath("a"), DummyDatapath("b")
    a.patch_panel = b.patch_panel = panel
    pa = a.port_add("pa", type="patch", options={"peer": "pb"})
    pb = b.port_add("pb", type="patch", options={"peer": "pa"})
    pkt = frame(BCAST, mac(1))
    # Each side sends what arrives on its patch port straight back through it.
    for dp, port in ((a, pa), (b, pb)):
        key = extract_key(pkt, port)
        dp.flow_put(Match.of(key, b"\xff" * len(key)), (Output(port),))
    a.execute(pkt, 0, (Output(pa),))
    assert panel.n_looped == 1 and panel.depth == 0
    assert a.ports()[pa].stats.tx_packets + b.ports()[pb].stats.tx_packets == 8
    assert a.ports()[pa].stats.tx_dropped + b.ports()[pb].stats.tx_dropped == 1


def test_a_handoff_carries_the_pair_and_close_unplugs() -> None:
    t = Pair()
    t.send(t.br0, "a1", frame(BCAST, mac(1)))
    state, fds = t.br1.dp.export_handles()
    assert fds == []  # patch ports carry no descriptor
    new = DummyDatapath("br1")
    new.patch_panel = t.panel
    new.adopt_ports(state, fds)
    p1 = t.br1.no("p1")
    assert new.ports()[p1].peer == "p0" and new.ports()[p1].type == "patch"
    # A frame from br0 now arrives on the adopting instance (a miss there)
    t.br0.dp.receive(t.br0.no("a1"), frame(mac(2), mac(1)))
    t.br0.bridge.run(t.clock.t)
    assert [u.in_port for u in new.recv_upcalls()] == [p1]
    assert t.br1.dp.recv_upcalls() == []
    # A rollback: the old instance thaws and takes its end back
    t.br1.dp.thaw()
    t.br0.dp.receive(t.br0.no("a1"), frame(mac(2), mac(1)))
    t.br0.bridge.run(t.clock.t)
    assert new.recv_upcalls() == [] and len(t.br1.dp.recv_upcalls()) == 1
    new.close()  # not the owner of p1 any more: leaves it plugged
    assert t.panel.error("p0") is None
    t.br1.dp.close()
    assert t.panel.error("p0") == "p0: patch peer p1 does not exist"


def test_invalid_peer_raises_at_the_datapath() -> None:
    dp = DummyDatapath("x")
    dp.patch_panel = PatchPanel()
    try:
        dp.port_add("q0", type="patch")
    except DatapathError as e:
        assert "requires valid 'peer'" in str(e)
    else:
        raise AssertionError("a patch port without peer was attached")
