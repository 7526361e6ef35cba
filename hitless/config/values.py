"""``other_config`` values this switch cannot use as written: a ``mac-table-size`` of
``-7`` or ``lots``, an ``hwaddr`` that is not a MAC address, a ``datapath-id`` that is
not 16 hex digits... The database accepts any string in these maps (a
``flow-limit`` of ``-3`` in the Open_vSwitch row's too); the switch falls
back to the default for each (as Open vSwitch does, silently) and says so: each becomes
an ``Unsupported`` value (hitless.config.unsupported), so the daemon logs it once at
WARN and writes it to the row's ``status`` column under ``hitless_unsupported``.

Pure: reads IDL rows (or plain objects with the same attributes)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from hitless.config.model import DEFAULT_FLOW_LIMIT, DEFAULT_MAX_IDLE_MS, MIN_MAX_IDLE_MS

__all__ = ["bad_switch_values", "bad_values"]

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_HEX16 = re.compile(r"^(0x)?[0-9a-fA-F]{16}$")
U32 = 0xFFFFFFFF


def _int(lo: int, hi: int) -> Callable[[str], str | None]:
    def check(v: str) -> str | None:
        try:
            n = int(v)
        except ValueError:
            return f"an integer from {lo} to {hi}"
        return None if lo <= n <= hi else f"an integer from {lo} to {hi}"

    return check


def _choice(*ok: str) -> Callable[[str], str | None]:
    return lambda v: None if v in ok else " or ".join(ok)


def _match(rx: re.Pattern[str], what: str) -> Callable[[str], str | None]:
    return lambda v: None if rx.match(v) else what


_BOOL = _choice("true", "false")

# key -> (what a valid value is, the default the switch uses instead)
OPEN_VSWITCH: dict[str, tuple[Callable[[str], str | None], str]] = {
    "flow-limit": (_int(1, U32), f"{DEFAULT_FLOW_LIMIT}"),
    "max-idle": (_int(MIN_MAX_IDLE_MS, U32), f"{DEFAULT_MAX_IDLE_MS}"),
}
# Keys set in the wrong row: Open vSwitch reads them from the Open_vSwitch row only and
# ignores them here without a word; hitless says where they belong.
BRIDGE_ELSEWHERE = {"max-idle": "Open_vSwitch"}
BRIDGE: dict[str, tuple[Callable[[str], str | None], str]] = {
    "mac-table-size": (_int(1, U32), "8192"),
    "mac-aging-time": (_int(1, U32), "300"),
    "hwaddr": (_match(_MAC, "a MAC address (xx:xx:xx:xx:xx:xx)"), "the local port's MAC"),
    "datapath-id": (_match(_HEX16, "exactly 16 hex digits"), "one derived from the MAC"),
    "forward-bpdu": (_BOOL, "false"),
    "disable-in-band": (_BOOL, "false"),
}
PORT: dict[str, tuple[Callable[[str], str | None], str]] = {
    "bond-rebalance-interval": (_int(0, 10000), "10000"),
    "bond-miimon-interval": (_int(0, U32), "200"),
    "bond-detect-mode": (_choice("carrier", "miimon"), "carrier"),
    "bond-hash-basis": (_int(0, U32), "0"),
    "lacp-time": (_choice("fast", "slow"), "slow"),
    "lacp-fallback-ab": (_BOOL, "false"),
    "lacp-system-priority": (_int(1, 65535), "65534"),
    "priority-tags": (_choice("never", "if-nonzero", "always", "true", "false"), "never"),
}


def _check(
    table: str, name: str, oc: Any, keys: dict[str, tuple[Callable[[str], str | None], str]]
) -> Iterable[tuple[str, str, str, str]]:
    for key, (valid, default) in keys.items():
        v = dict(oc or {}).get(key)
        if v is None:
            continue
        want = valid(str(v))
        if want is not None:
            yield (table, name, "other_config",
                   f"{key}={v!r} is not {want}: using {default} instead")  # fmt: skip


def bad_switch_values(ovs_row: Any) -> Iterable[tuple[str, str, str, str]]:
    """(table, row name, column, why) for each unusable value of the Open_vSwitch row."""
    yield from _check("Open_vSwitch", ".", ovs_row.other_config, OPEN_VSWITCH)


def bad_values(br: Any) -> Iterable[tuple[str, str, str, str]]:
    """(table, row name, column, why) for each unusable value of a bridge and its ports."""
    yield from _check("Bridge", br.name, br.other_config, BRIDGE)
    oc = dict(br.other_config or {})
    for key, table in BRIDGE_ELSEWHERE.items():
        if key in oc:
            yield ("Bridge", br.name, "other_config",
                   f"{key} is read from the {table} row, not a bridge's: ignored here "
                   f"(ovs-vsctl set {table} . other_config:{key}={oc[key]})")  # fmt: skip
    for port in sorted(br.ports, key=lambda r: r.name):
        yield from _check("Port", port.name, port.other_config, PORT)
