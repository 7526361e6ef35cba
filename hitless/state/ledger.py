"""Digests of learned state: what both sides of a handoff compute to agree they hold
the same thing.

Two kinds:
- ``state_digest``: SHA-256 over a whole state in a canonical order. The full-state
  handoff's check (every build back to version 1 computes it the same way).
- ``Ledger``: an order-independent digest, the sum (mod 2^128) of a hash per item
  (port, MAC entry, megaflow, OpenFlow rule, group, meter), kept with the pre-image of
  every item so that it can be moved item by item. The old process fills one while it
  builds the pre-copy and the new one fills one from the pre-copy it received; at the
  freeze both apply the same delta with the same code (``apply_delta``), so the
  arithmetic exists once. The new process then also sets each bridge's ports from its
  live datapath (``set_ports``): a port it failed to adopt changes its digest.

Ages, counters and lookups are never items: they move on their own. Pure: no I/O, no
clock; imports only the state records and the codec's error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hitless.state.records import (
    BridgeDelta,
    BridgeState,
    Delta,
    OfGroupV2,
    OfGroupV6,
    OfMeterV2,
    OfRuleV2,
    OfRuleV6,
    OpenFlowDeltaV2,
    OpenFlowDeltaV6,
    OpenFlowV2,
    OpenFlowV6,
    PortV1,
)
from hitless.state.snapshot import SnapshotError, actions_down

# A version's records of the same things: the digest of those both carry is the same
# (what a version 6 record adds is an age, not an item, or a selection method, which a
# version 2 group does not have: one that has one is refused towards an older build).
AnyRule = OfRuleV2 | OfRuleV6
AnyGroup = OfGroupV2 | OfGroupV6
AnyOpenFlow = OpenFlowV2 | OpenFlowV6
AnyOpenFlowDelta = OpenFlowDeltaV2 | OpenFlowDeltaV6

__all__ = [
    "DIGEST_MOD",
    "BridgeImage",
    "Ledger",
    "LedgerError",
    "flow_item",
    "format_digest",
    "group_meter_item_sum",
    "mac_item",
    "multiset_digest",
    "openflow_item_sum",
    "port_item",
    "rule_item",
    "state_digest",
]


class LedgerError(SnapshotError):
    """A delta that does not fit the pre-copy it claims to follow."""


# -- what identifies an item ------------------------------------------------------------


def _rule_key(r: AnyRule) -> bytes:
    return (
        b"r"
        + f"{r.table}:{r.priority}:{r.cookie}:{r.flags}:{r.importance}:"
        f"{r.idle_timeout}:{r.hard_timeout}:".encode()
        + r.match
        + b":"
        + r.instructions
    )


def _group_key(g: AnyGroup) -> bytes:
    key = b"g" + f"{g.group_id}:{g.type}:".encode() + g.buckets
    sel = getattr(g, "selection", None)
    if sel is not None:
        key += f":{sel.method}:{sel.param}:".encode() + sel.fields
    return key


def _group_meter_keys(groups: list[Any], meters: list[OfMeterV2]) -> list[bytes]:
    out = [_group_key(g) for g in groups]
    out += [b"M" + f"{m.meter_id}:{m.flags}:".encode() + m.bands for m in meters]
    return out


def _openflow_keys(of: AnyOpenFlow) -> list[bytes]:
    return [_rule_key(r) for r in of.rules] + _group_meter_keys(of.groups, of.meters)


# -- the full-state digest --------------------------------------------------------------


def state_digest(state: Any) -> str:
    """A digest of the essential learned state, independent of ages and counters that
    move on their own: two processes holding the same state agree on it. Computed on a
    state of the version both sides use (``snapshot.as_version``): a version 1 state has
    no OpenFlow part, and its digest is what version 1 builds compute."""
    h = hashlib.sha256()
    for br in sorted(state.bridges, key=lambda b: b.name):
        h.update(br.name.encode())
        for p in sorted(br.ports, key=lambda p: p.ofport):
            h.update(f"p{p.name}:{p.ofport}:{p.type}".encode())
        for m in sorted(br.mac_entries, key=lambda m: (m.vlan, m.mac)):
            h.update(f"m{m.vlan}:{m.mac.hex()}:{m.port}".encode())
        for f in sorted(br.datapath.flows, key=lambda f: (f.mask, f.key)):
            h.update(b"f" + f.key + f.mask + _actions_json(f.actions))
        of = getattr(br, "openflow", None)
        if of is not None:
            for item in sorted(_openflow_keys(of)):
                h.update(item)
    return h.hexdigest()


# -- the multiset digest's items ---------------------------------------------------------

DIGEST_MOD = 1 << 128


def _h(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=16).digest(), "big")


def port_item(bridge: str, name: str, ofport: int, type_: str) -> int:
    return _h(f"p\0{bridge}\0{name}\0{ofport}\0{type_}".encode())


def mac_item(bridge: str, vlan: int, mac: bytes, port: int) -> int:
    return _h(
        b"m\0" + bridge.encode() + b"\0" + vlan.to_bytes(2, "big") + mac + port.to_bytes(4, "big")
    )


def _actions_json(actions: Any) -> bytes:
    """A megaflow's actions as every version digests them: version 1's JSON form (state
    version 7's records taken back to it), so builds of versions 6 and 7 agree."""
    return msgspec.json.encode(actions_down(actions) if type(actions) is tuple else actions)


def flow_item(bridge: str, key: bytes, mask: bytes, actions: Any) -> int:
    return _h(b"f\0" + bridge.encode() + b"\0" + key + mask + _actions_json(actions))


def rule_item(bridge: str, r: AnyRule) -> int:
    """One rule's share of ``openflow_item_sum``."""
    return _h(b"o\0" + bridge.encode() + b"\0" + _rule_key(r))


def group_meter_item_sum(bridge: str, groups: list[Any], meters: list[OfMeterV2]) -> int:
    """The groups' and meters' share of ``openflow_item_sum``."""
    prefix = b"o\0" + bridge.encode() + b"\0"
    return sum(_h(prefix + item) for item in _group_meter_keys(groups, meters)) % DIGEST_MOD


def openflow_item_sum(bridge: str, of: AnyOpenFlow | None) -> int:
    if of is None:
        return 0
    prefix = b"o\0" + bridge.encode() + b"\0"
    return sum(_h(prefix + item) for item in _openflow_keys(of)) % DIGEST_MOD


def multiset_digest(state: Any) -> int:
    """The multiset digest of a whole state (what a ``Ledger`` filled with it holds)."""
    return Ledger.of_state(state).value


def format_digest(value: int) -> str:
    return f"{value % DIGEST_MOD:032x}"


# -- the ledger ---------------------------------------------------------------------------


@dataclass(slots=True)
class BridgeImage:
    """What the ledger counted for one bridge, item by item (the pre-images a delta's
    items replace)."""

    ports: list[PortV1] = field(default_factory=list)
    flows: dict[tuple[bytes, bytes], Any] = field(default_factory=dict)  # -> actions
    macs: dict[tuple[int, bytes], int] = field(default_factory=dict)  # -> port
    openflow: int = 0  # the OpenFlow state's share (rules, groups and meters)
    # The OpenFlow rules as counted, by their place in the pre-copy's list (None: a
    # rule a delta removed), and the groups' and meters' share; None: the OpenFlow
    # state was counted whole (no rule-by-rule delta can follow)
    rules: list[AnyRule | None] | None = None
    group_meter: int = 0


class Ledger:
    """The multiset digest of a switch's learned state, with each bridge's pre-images.

    ``value`` is the digest; ``hex()`` its wire form. Every mutator keeps ``value`` and
    the image in step, so that a later item replacing this one subtracts exactly what
    was added."""

    __slots__ = ("bridges", "value")

    def __init__(self) -> None:
        self.value = 0
        self.bridges: dict[str, BridgeImage] = {}

    @classmethod
    def of_state(cls, state: Any) -> Ledger:
        ledger = cls()
        for br in state.bridges:
            ledger.add_bridge(br)
        return ledger

    def hex(self) -> str:
        return format_digest(self.value)

    def _add(self, n: int) -> None:
        self.value = (self.value + n) % DIGEST_MOD

    def _image(self, bridge: str) -> BridgeImage:
        img = self.bridges.get(bridge)
        if img is None:
            img = self.bridges[bridge] = BridgeImage()
        return img

    # items, one at a time

    def set_ports(self, bridge: str, ports: list[PortV1]) -> None:
        """The bridge's ports are ``ports`` (all of them: few)."""
        img = self._image(bridge)
        for p in img.ports:
            self._add(-port_item(bridge, p.name, p.ofport, p.type))
        for p in ports:
            self._add(port_item(bridge, p.name, p.ofport, p.type))
        img.ports = list(ports)

    def set_flow(self, bridge: str, key: bytes, mask: bytes, actions: Any) -> None:
        """The megaflow (key, mask) now has ``actions`` (None: it is gone)."""
        flows = self._image(bridge).flows
        # A flow whose counters alone moved (most of a freeze's flows): the same item,
        # nothing to count again. Only typed (version 7) records: their equal values
        # encode alike, where JSON lists compare 1 equal to True.
        if type(actions) is tuple and flows.get((key, mask)) == actions:
            return
        old = flows.pop((key, mask), None)
        if old is not None:
            self._add(-flow_item(bridge, key, mask, old))
        if actions is not None:
            flows[(key, mask)] = actions
            self._add(flow_item(bridge, key, mask, actions))

    def set_mac(self, bridge: str, vlan: int, mac: bytes, port: int | None) -> None:
        """The MAC entry (vlan, mac) now points at ``port`` (None: it is gone)."""
        macs = self._image(bridge).macs
        old = macs.pop((vlan, mac), None)
        if old is not None:
            self._add(-mac_item(bridge, vlan, mac, old))
        if port is not None:
            macs[(vlan, mac)] = port
            self._add(mac_item(bridge, vlan, mac, port))

    def add_rules(self, bridge: str, rules: Iterable[AnyRule]) -> None:
        """Count rules of a pre-copy, in its order (their places are what an OpenFlow
        delta names)."""
        img = self._image(bridge)
        if img.rules is None:
            img.rules = []
        n = 0
        for r in rules:
            img.rules.append(r)
            n += rule_item(bridge, r)
        img.openflow = (img.openflow + n) % DIGEST_MOD
        self._add(n)

    def set_group_meters(
        self, bridge: str, groups: list[Any], meters: list[OfMeterV2]
    ) -> None:
        img = self._image(bridge)
        n = group_meter_item_sum(bridge, groups, meters)
        img.openflow = (img.openflow - img.group_meter + n) % DIGEST_MOD
        self._add(n - img.group_meter)
        img.group_meter = n

    def set_openflow(self, bridge: str, of: AnyOpenFlow | None) -> None:
        """The bridge's whole OpenFlow state is ``of`` (None: its default table, which
        counts nothing). Rule-by-rule deltas against it are possible only after
        ``add_rules`` and ``set_group_meters`` (the pre-copy's way)."""
        img = self._image(bridge)
        n = openflow_item_sum(bridge, of)
        self._add(n - img.openflow)
        img.openflow, img.rules, img.group_meter = n, None, 0

    def apply_openflow_delta(self, bridge: str, ofd: AnyOpenFlowDelta) -> None:
        """Rules removed by their place in the pre-copy, rules added whole, groups and
        meters replaced. Raises ``LedgerError`` if the delta names rules the pre-copy
        did not carry (nothing is changed then)."""
        img = self._image(bridge)
        rules = img.rules
        if rules is None:
            raise LedgerError(
                f"bridge {bridge}: OpenFlow changes for tables the pre-copy did not carry"
            )
        n = len(rules)
        bad = [i for i in (*ofd.removed, *(c.index for c in ofd.counters)) if not 0 <= i < n]
        if not bad:  # a rule removed twice, or by an earlier delta
            seen: set[int] = set()
            for i in ofd.removed:
                if rules[i] is None or i in seen:
                    bad.append(i)
                seen.add(i)
        if bad:
            raise LedgerError(
                f"bridge {bridge}: OpenFlow delta names rule {bad[0]} of the pre-copy's {n}"
            )
        total = 0
        for i in ofd.removed:
            old = rules[i]
            assert old is not None
            total -= rule_item(bridge, old)
            rules[i] = None
        for r in ofd.added:
            total += rule_item(bridge, r)
        img.openflow = (img.openflow + total) % DIGEST_MOD
        self._add(total)
        self.set_group_meters(bridge, ofd.groups, ofd.meters)

    # whole bridges

    def add_bridge(self, br: BridgeState) -> None:
        """Count a whole bridge (replacing whatever was counted under its name)."""
        self.drop_bridge(br.name)
        name = br.name
        self.set_ports(name, br.ports)
        for f in br.datapath.flows:
            self.set_flow(name, f.key, f.mask, f.actions)
        for m in br.mac_entries:
            self.set_mac(name, m.vlan, m.mac, m.port)
        of = getattr(br, "openflow", None)
        if of is not None:
            self.add_rules(name, of.rules)
            self.set_group_meters(name, of.groups, of.meters)

    def drop_bridge(self, bridge: str) -> None:
        """Uncount a bridge (destroyed, or about to be counted whole again)."""
        img = self.bridges.pop(bridge, None)
        if img is None:
            return
        n = sum(port_item(bridge, p.name, p.ofport, p.type) for p in img.ports)
        n += sum(flow_item(bridge, k, m, a) for (k, m), a in img.flows.items())
        n += sum(mac_item(bridge, v, m, p) for (v, m), p in img.macs.items())
        self._add(-(n + img.openflow))

    # the freeze

    def apply_bridge_delta(self, d: BridgeDelta) -> None:
        br = d.changed
        name = br.name
        if d.new or name not in self.bridges:
            self.add_bridge(br)
            return
        self.set_ports(name, br.ports)
        for key, mask in d.removed_flows:
            self.set_flow(name, key, mask, None)
        for f in br.datapath.flows:  # changed, or only their counters moved: same actions
            self.set_flow(name, f.key, f.mask, f.actions)
        for vlan, mac in d.removed_macs:
            self.set_mac(name, vlan, mac, None)
        for m in br.mac_entries:
            self.set_mac(name, m.vlan, m.mac, m.port)
        if d.openflow_delta is not None:
            self.apply_openflow_delta(name, d.openflow_delta)
        else:  # the whole OpenFlow state replaces the pre-copy's
            self.set_openflow(name, br.openflow)

    def apply_delta(self, delta: Delta) -> None:
        """The freeze's delta: every bridge it names changes by it, every bridge it does
        not name was destroyed since the pre-copy. Both sides run this."""
        final = {d.changed.name for d in delta.bridges}
        for name in sorted(set(self.bridges) - final):
            self.drop_bridge(name)
        for d in delta.bridges:
            self.apply_bridge_delta(d)
