"""The spanning tree (hitless.ofproto.stp) between bridges in memory: BPDUs are moved
from one ``Stp`` to another by the test, time is a number the test advances."""

from __future__ import annotations

from hitless.ofproto.stp import BLOCKING, FORWARDING, Stp, StpPortConfig

A_ID = 0x8000_0000_0000_000A  # lower: the root
B_ID = 0x8000_0000_0000_000B


def mac(n: int) -> bytes:
    return bytes([2, 0, 0, 0, 0, n])


class Net:
    """Bridges joined by links (bridge, port) <-> (bridge, port)."""

    def __init__(self, bridges: dict[str, Stp], links: list[tuple[str, int, str, int]]) -> None:
        self.b = bridges
        self.peer: dict[tuple[str, int], tuple[str, int]] = {}
        for x, p, y, q in links:
            self.peer[(x, p)] = (y, q)
            self.peer[(y, q)] = (x, p)
        self.now = 0.0
        self.down: set[tuple[str, int]] = set()

    def step(self, dt: float = 0.25) -> None:
        self.now += dt
        for stp in self.b.values():
            stp.run(self.now)
        for _ in range(10):  # deliver until quiet
            moved = False
            for name, stp in self.b.items():
                for port, frame in stp.take_bpdus():
                    dst = self.peer.get((name, port))
                    if dst is None or (name, port) in self.down:
                        continue
                    self.b[dst[0]].receive(dst[1], frame, self.now)
                    moved = True
            if not moved:
                break

    def run_for(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.step()


def bridge(bid: int, n_ports: int, now: float = 0.0) -> Stp:
    s = Stp(bid, hello=1.0, max_age=6.0, fwd_delay=4.0, now=now)
    s.set_ports([StpPortConfig(p, f"p{p}", mac(p)) for p in range(1, n_ports + 1)], now)
    return s


def roles(s: Stp) -> dict[int, tuple[str, str]]:
    return {no: (p.role, p.state) for no, p in sorted(s.ports.items())}


def test_two_bridges_two_links_one_port_blocks() -> None:
    a, b = bridge(A_ID, 2), bridge(B_ID, 2)
    net = Net({"a": a, "b": b}, [("a", 1, "b", 1), ("a", 2, "b", 2)])
    net.run_for(1.0)
    assert all(p.state != FORWARDING for s in (a, b) for p in s.ports.values())  # listening
    net.run_for(10.0)  # two forward delays
    assert a.is_root and not b.is_root and b.root_port == 1
    assert roles(a) == {1: ("designated", FORWARDING), 2: ("designated", FORWARDING)}
    assert roles(b) == {1: ("root", FORWARDING), 2: ("alternate", BLOCKING)}
    assert b.bridge_status() == {
        "stp_bridge_id": "8000.00000000000b",
        "stp_designated_root": "8000.00000000000a",
        "stp_root_path_cost": "2",
    }
    assert b.port_status(2, net.now)["stp_port_id"] == "32770"


def test_the_alternate_takes_over_when_the_root_port_fails() -> None:
    a, b = bridge(A_ID, 2), bridge(B_ID, 2)
    net = Net({"a": a, "b": b}, [("a", 1, "b", 1), ("a", 2, "b", 2)])
    net.run_for(12.0)
    assert roles(b)[2] == ("alternate", BLOCKING)
    # Link 1 goes down on both ends.
    net.down |= {("a", 1), ("b", 1)}
    for s in (a, b):
        s.set_ports([StpPortConfig(1, "p1", mac(1), up=False), StpPortConfig(2, "p2", mac(2))],
                    net.now)  # fmt: skip
    net.run_for(10.0)
    assert b.root_port == 2
    assert roles(b)[2] == ("root", FORWARDING)
    assert roles(b)[1][1] == "disabled"


def test_a_lost_root_is_noticed_after_max_age() -> None:
    a, b = bridge(A_ID, 1), bridge(B_ID, 1)
    net = Net({"a": a, "b": b}, [("a", 1, "b", 1)])
    net.run_for(12.0)
    assert b.root_port == 1
    net.down.add(("a", 1))  # a stops talking; b's link stays up
    net.run_for(7.0)  # max age 6 s
    assert b.is_root and roles(b)[1][0] == "designated"


def test_state_survives_export_and_import() -> None:
    a, b = bridge(A_ID, 2), bridge(B_ID, 2)
    net = Net({"a": a, "b": b}, [("a", 1, "b", 1), ("a", 2, "b", 2)])
    net.run_for(12.0)
    data = b.export_state(net.now)
    fresh = bridge(B_ID, 2, net.now)  # a new process: every port would start blocking
    assert roles(fresh)[1][1] != FORWARDING
    fresh.import_state(data, net.now)
    assert roles(fresh) == roles(b)
    net.b["b"] = fresh
    net.run_for(8.0)  # keeps hearing a: nothing moves
    assert roles(fresh) == {1: ("root", FORWARDING), 2: ("alternate", BLOCKING)}


def test_bad_frames_are_counted() -> None:
    a = bridge(A_ID, 1)
    a.receive(1, b"\x01\x80\xc2\x00\x00\x00" + bytes(6) + b"\x00\x05BB\x03\x00", 0.0)
    assert a.port_statistics(1)["stp_error_count"] == 1
