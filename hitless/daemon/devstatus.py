"""What the kernel says about a network device, for the Interface row's status columns
(``ifindex``, ``mtu``, ``link_speed``, ``duplex``, ``admin_state``, ``statistics``,
``status``), and setting its MTU (``mtu_request``).

Read the way Open vSwitch's netdev-linux reads them: flags and MTU by ioctl, the
driver by the ethtool GDRVINFO ioctl, counters and speed from sysfs (the daemon's own
network namespace). A TAP device (the bridge's internal port) counts from the kernel's
side, so its receive and transmit counters are swapped, as Open vSwitch reports them.
"""

from __future__ import annotations

import array
import fcntl
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

from hitless.datapath.afpacket import IFF_RUNNING, IFF_UP, if_flags

__all__ = ["DeviceInfo", "device_info", "set_mtu"]

SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCETHTOOL = 0x8946
ETHTOOL_GDRVINFO = 0x00000003
_DRVINFO = struct.Struct("I32s32s32s32s32s12sIIIII")  # struct ethtool_drvinfo

# sysfs counter -> Interface.statistics key (ovs-vswitchd.conf.db(5), "Statistics")
_COUNTERS = {
    "rx_packets": "rx_packets",
    "rx_bytes": "rx_bytes",
    "rx_dropped": "rx_dropped",
    "rx_errors": "rx_errors",
    "rx_frame_errors": "rx_frame_err",
    "rx_over_errors": "rx_over_err",
    "rx_crc_errors": "rx_crc_err",
    "rx_missed_errors": "rx_missed_errors",
    "multicast": "rx_multicast_packets",
    "tx_packets": "tx_packets",
    "tx_bytes": "tx_bytes",
    "tx_dropped": "tx_dropped",
    "tx_errors": "tx_errors",
    "collisions": "collisions",
}
_SWAP = {"rx_packets": "tx_packets", "rx_bytes": "tx_bytes", "rx_dropped": "tx_dropped",
         "rx_errors": "tx_errors"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    ifindex: int
    mtu: int
    admin_up: bool
    carrier: bool
    link_speed: int | None = None  # bits/s
    duplex: str | None = None  # "full" | "half"
    statistics: dict[str, int] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)


def _ctl() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:  # absent, or EINVAL (a veth's speed while down)
        return None


def device_info(name: str, tap: bool = False, ctl: socket.socket | None = None) -> DeviceInfo:
    """Everything above for device ``name``; raises OSError if it does not exist."""
    own = ctl is None
    sock = ctl if ctl is not None else _ctl()
    try:
        flags = if_flags(name, sock)
        ifreq = struct.pack("16sI12x", name.encode(), 0)
        mtu = struct.unpack_from("I", fcntl.ioctl(sock, SIOCGIFMTU, ifreq), 16)[0]
        status = _driver(sock, name)
    finally:
        if own:
            sock.close()
    sysfs = Path("/sys/class/net") / name
    stats: dict[str, int] = {}
    for counter, key in _COUNTERS.items():
        v = _read(sysfs / "statistics" / counter)
        if v is not None and v.lstrip("-").isdigit():
            stats[key] = int(v)
    if tap:
        for rx, tx in _SWAP.items():
            if rx in stats and tx in stats:
                stats[rx], stats[tx] = stats[tx], stats[rx]
    speed = _read(sysfs / "speed")
    duplex = _read(sysfs / "duplex")
    return DeviceInfo(
        ifindex=socket.if_nametoindex(name),
        mtu=int(mtu),
        admin_up=bool(flags & IFF_UP),
        carrier=bool(flags & IFF_RUNNING),
        link_speed=int(speed) * 1_000_000 if speed and speed.isdigit() and int(speed) > 0 else None,
        duplex=duplex if duplex in ("full", "half") else None,
        statistics=stats,
        status=status,
    )


def _driver(sock: socket.socket, name: str) -> dict[str, str]:
    """Interface.status as Open vSwitch fills it for a Linux device: driver_name,
    driver_version, firmware_version (ethtool's GDRVINFO)."""
    buf = array.array("B", _DRVINFO.pack(ETHTOOL_GDRVINFO, *([b""] * 6), 0, 0, 0, 0, 0))
    addr, _ = buf.buffer_info()
    ifreq = struct.pack("16sP8x", name.encode(), addr)
    try:
        fcntl.ioctl(sock, SIOCETHTOOL, ifreq)
    except OSError:
        return {}
    fields = _DRVINFO.unpack(buf.tobytes())
    driver, version, fw = (f.split(b"\0", 1)[0].decode(errors="replace") for f in fields[1:4])
    return {"driver_name": driver, "driver_version": version, "firmware_version": fw}


def set_mtu(name: str, mtu: int) -> None:
    """Set device ``name``'s MTU (raises OSError with the kernel's reason)."""
    with _ctl() as sock:
        fcntl.ioctl(sock, SIOCSIFMTU, struct.pack("16sI12x", name.encode(), mtu))
