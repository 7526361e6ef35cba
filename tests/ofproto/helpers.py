"""A bridge on the dummy datapath with a fake clock, and frame builders."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hitless.config.model import BridgeConfig, InterfaceConfig, PortConfig
from hitless.daemon.switch import max_idle
from hitless.datapath.dummy import DummyDatapath
from hitless.ofproto.bridge import Bridge

BCAST = "ff:ff:ff:ff:ff:ff"


def mac(n: int) -> str:
    return f"50:54:00:00:00:{n:02x}"


def _mac_bytes(m: str) -> bytes:
    return bytes(int(x, 16) for x in m.split(":"))


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(
    dst: str,
    src: str,
    payload: bytes = b"",
    eth_type: int = 0x0800,
    vid: int | None = None,
    pcp: int = 0,
) -> bytes:
    hdr = _mac_bytes(dst) + _mac_bytes(src)
    if vid is not None:
        hdr += struct.pack("!HH", 0x8100, pcp << 13 | vid)
    return hdr + struct.pack("!H", eth_type) + payload.ljust(46, b"\0")


def tcp(
    dst: str,
    src: str,
    sip: str = "10.0.0.1",
    dip: str = "10.0.0.2",
    sport: int = 40000,
    dport: int = 80,
    vid: int | None = None,
) -> bytes:
    tcph = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    ip_s = bytes(int(x) for x in sip.split("."))
    ip_d = bytes(int(x) for x in dip.split("."))
    iph = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcph), 1, 0, 64, 6, 0, ip_s, ip_d)
    iph = iph[:10] + struct.pack("!H", _csum(iph)) + iph[12:]
    return frame(dst, src, iph + tcph, vid=vid)


def vid_of(pkt: bytes) -> int | None:
    """The VID of a tagged frame, None when untagged."""
    if pkt[12:14] == b"\x81\x00":
        return (pkt[14] << 8 | pkt[15]) & 0xFFF
    return None


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class P:
    """A port of the test configuration."""

    tag: int | None = None
    trunks: frozenset[int] = frozenset()
    vlan_mode: str | None = None
    type: str = "system"
    ofport_request: int | None = None
    admin_state: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def config(name: str, ports: dict[str, P], **other_config: str) -> BridgeConfig:
    pcs = {
        n: PortConfig(
            n,
            (InterfaceConfig(n, p.type, p.ofport_request, p.admin_state),),
            p.tag,
            p.trunks,
            p.vlan_mode,
        )
        for n, p in ports.items()
    }
    return BridgeConfig(name, datapath_type="dummy", ports=pcs, other_config=dict(other_config))


class Rig:
    """Bridge + dummy datapath + clock; ports addressed by interface name."""

    def __init__(self, ports: dict[str, P], name: str = "br0", **other_config: str) -> None:
        self.clock = Clock()
        self.dp = DummyDatapath(name, clock=self.clock)
        self.bridge = Bridge(name, self.dp)
        self.name = name
        self.ports = dict(ports)
        self.other_config = dict(other_config)
        self.status = self.reconfigure()

    def reconfigure(self, ports: dict[str, P] | None = None, **other_config: str):  # noqa: ANN201
        if ports is not None:
            self.ports = dict(ports)
        self.other_config.update(other_config)
        settings = dict(self.other_config)
        # max-idle is the Open_vSwitch row's (the switch hands it to every bridge).
        self.bridge.max_idle = max_idle({"max-idle": settings.pop("max-idle", "10000")})
        self.status = self.bridge.reconfigure(
            config(self.name, self.ports, **settings), self.clock.t
        )
        return self.status

    def no(self, iface: str) -> int:
        n = self.bridge.ofport_of(iface)
        assert n is not None, f"{iface} is not attached"
        return n

    def name_of(self, port_no: int) -> str:
        return self.dp.ports()[port_no].name

    def send(self, iface: str, pkt: bytes) -> dict[str, list[bytes]]:
        """Inject a frame, let the bridge handle any upcall; returns what came out."""
        self.dp.receive(self.no(iface), pkt)
        self.run()
        return self.out()

    def out(self) -> dict[str, list[bytes]]:
        return {self.name_of(p): v for p, v in self.dp.pop_sent().items()}

    def run(self) -> None:
        self.bridge.run(self.clock.t)

    def advance(self, dt: float) -> None:
        self.clock.t += dt
        self.run()

    def flows(self) -> dict:  # noqa: ANN206
        return {f.match: f for f in self.dp.flow_dump()}
