"""The switch's side of the handoff: exporting a running ``Switch`` as a state snapshot
plus descriptors, and rebuilding one from them in a new process (``SwitchImporter``).

What a snapshot holds per bridge: the datapath's ports (name, number, type), its
megaflows with counters and ages, the provider's handles (AF_PACKET ring positions and
such; the descriptors travel separately), the MAC table with entry ages, and the
ofport numbers remembered for removed interfaces. Configuration is not carried: the new
process reads it from its own, already synced, OVSDB connection.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hitless.config.model import BridgeConfig
from hitless.config.ovsdb import read_config
from hitless.datapath import Datapath, FlowStats, provider
from hitless.datapath.actions import actions_from_json, actions_to_json
from hitless.handoff.snapshot import (
    BridgeV1,
    DatapathV1,
    FlowV1,
    MacEntryV1,
    PortV1,
    StateV1,
)
from hitless.ofproto.bridge import Bridge
from hitless.ofproto.mac_learning import format_mac, parse_mac
from hitless.packet.flow import Match

if TYPE_CHECKING:
    from hitless.daemon.switch import Switch

log = logging.getLogger(__name__)


# -- export ---------------------------------------------------------------------------


def _datapath_flows(dp: Datapath, now: float) -> list[FlowV1]:
    out = []
    for f in dp.flow_dump():
        s = f.stats
        out.append(
            FlowV1(
                f.match.key,
                f.match.mask,
                actions_to_json(f.actions),
                s.packets,
                s.bytes,
                now - s.used if s.used else -1.0,
                s.tcp_flags,
            )
        )
    return out


def _bridge_state(
    name: str, bridge: Any, dp: Datapath, now: float, handles: dict[str, Any], slots: list[int]
) -> BridgeV1:
    learned = bridge.export_state()
    ports = [
        PortV1(p.name, p.port_no, p.type)
        for p in sorted(dp.ports().values(), key=lambda p: p.port_no)
    ]
    macs = [MacEntryV1(int(v), parse_mac(m), int(p), float(a)) for v, m, p, a in learned["mac"]]
    return BridgeV1(
        name,
        DatapathV1(dp.type, handles, _datapath_flows(dp, now), slots),
        ports,
        dict(learned.get("remembered", {})),
        macs,
    )


def export_switch(switch: Switch, now: float, *, final: bool) -> tuple[StateV1, list[int]]:
    """The switch's learned state. With ``final`` (the freeze), also the datapaths'
    handles and live descriptors (still owned by this process)."""
    bridges = []
    fds: list[int] = []
    for name, rb in sorted(switch.bridges.items()):
        handles: dict[str, Any] = {}
        slots: list[int] = []
        if final:
            handles, dp_fds = rb.datapath.export_handles()
            handles = {k: v for k, v in handles.items() if k != "flows"}
            handles["flows"] = []  # carried as typed FlowV1 records instead
            slots = list(range(len(fds), len(fds) + len(dp_fds)))
            fds.extend(dp_fds)
        bridges.append(_bridge_state(name, rb.bridge, rb.datapath, now, handles, slots))
    return StateV1(bridges), fds


def thaw_switch(switch: Switch) -> None:
    """Undo what a final export did to the datapaths (a rollback)."""
    for rb in switch.bridges.values():
        rb.datapath.thaw()


# -- import ---------------------------------------------------------------------------


class SwitchImporter:
    """Implements ``handoff_new.Importer`` for a ``Switch`` that is not serving yet."""

    def __init__(self, switch: Switch, on_commit: Callable[[], None] | None = None) -> None:
        self.switch = switch
        self.on_commit = on_commit
        self.restored: dict[str, tuple[Bridge, Datapath]] = {}

    def prepare(self, state: StateV1) -> None:
        for br in state.bridges:
            provider(br.datapath.type)  # fails early on a datapath type we do not have

    def sync_config(self, deadline: float) -> None:
        """Make-before-break: our own OVSDB connection, fully synced, before the freeze."""
        import ovs.poller

        idl = self.switch.idl
        while not (idl.has_ever_connected() and read_config(idl) is not None):
            idl.run()
            if idl.has_ever_connected() and read_config(idl) is not None:
                break
            if self.switch.clock() > deadline:
                raise TimeoutError("could not sync the OVSDB database in time")
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(100)
            poller.block()

    def restore(self, state: StateV1, fds: list[int]) -> StateV1:
        now = self.switch.clock()
        try:
            for br in state.bridges:
                dp_fds = [fds[i] for i in br.datapath.fd_slots]
                dp = provider(br.datapath.type).adopt(br.name, dict(br.datapath.handles), dp_fds)
                self.restored[br.name] = (Bridge(br.name, dp), dp)
                for f in br.datapath.flows:
                    match = Match(f.key, f.mask)
                    dp.flow_put(match, actions_from_json(f.actions))
                    got = dp.flow_get(match)
                    if got is not None:
                        used = now - f.used_age if f.used_age >= 0 else 0.0
                        got.stats = FlowStats(f.packet_count, f.byte_count, used, f.tcp_flags)
                bridge = self.restored[br.name][0]
                bridge.import_state(
                    {
                        "version": 1,
                        "mac": [[m.vlan, format_mac(m.mac), m.port, m.age] for m in br.mac_entries],
                        "ofports": {p.name: p.ofport for p in br.ports},
                        "remembered": dict(br.remembered_ofports),
                    },
                    now,
                )
        finally:
            adopted = {
                i for br in state.bridges if br.name in self.restored for i in br.datapath.fd_slots
            }
            for i, fd in enumerate(fds):
                if i not in adopted:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        return StateV1(
            [
                _bridge_state(
                    br.name,
                    self.restored[br.name][0],
                    self.restored[br.name][1],
                    now,
                    dict(br.datapath.handles),
                    list(br.datapath.fd_slots),
                )
                for br in state.bridges
            ]
        )

    def commit(self) -> None:
        """We own everything now: wire the restored bridges into the switch and apply
        the configuration as the database has it (changes made during the handoff are
        applied here, exactly once)."""
        from hitless.daemon.switch import RunningBridge

        sw = self.switch
        now = sw.clock()
        read = read_config(sw.idl)
        for name, (bridge, dp) in self.restored.items():
            cfg = read.config.bridges.get(name) if read is not None else None
            if cfg is None:
                # Removed during the handoff: the first reconciliation destroys it.
                rb = RunningBridge(BridgeConfig(name, dp.type), bridge, dp)
            else:
                rb = RunningBridge(cfg, bridge, dp)
                rb.statuses = bridge.reconfigure(cfg, now)
            sw.bridges[name] = rb
        self.restored = {}
        sw.force_reconcile()
        if self.on_commit is not None:
            self.on_commit()

    def discard(self) -> None:
        for bridge, dp in self.restored.values():
            with contextlib.suppress(Exception):
                bridge.close()
            dp.close()
        self.restored = {}
