"""One bridge: owns its datapath's ports, the MAC table and the megaflows it installs.

INTERFACE CONTRACT (used by the daemon):

    Bridge(name: str, datapath: Datapath)
    reconfigure(cfg: BridgeConfig, now: float) -> dict[str, InterfaceStatus]
        Incremental: attaches new interfaces, detaches removed ones, keeps ofport
        numbers of existing ones, re-applies VLAN settings; never disturbs traffic on
        ports that did not change. Returns status for every interface in cfg.
    run(now: float) -> None
        Handles upcalls waiting in the datapath, ages the MAC table, revalidates.
    next_wakeup(now: float) -> float | None
        Absolute time the bridge next needs run() for timers (None = only on I/O).
    fdb_show() -> str          # "ovs-appctl fdb/show" text
    fdb_flush() -> int         # entries removed; revalidates
    dump_flows() -> str        # "ovs-appctl dpctl/dump-flows" text
    close() -> None

Also, for the handoff: ``mac.records(now)`` and ``ofport_numbers()`` (learned MAC entries
with their ages, ofport assignments including remembered ones, as the state layer's
records), ``adopt_learned(macs, ofports, now)``, and ``state_hash()``.

Ports: datapath port number == OpenFlow port number (see ``ports``). A datapath that
already holds a configured interface (adopted after a handoff or a restart) keeps it
with its number; datapath ports no configuration asks for are detached. A failed attach
is reported in the interface's status and retried at the next ``reconfigure``. A patch
interface (``options:peer``, hitless.datapath.patch) is a datapath port without a device:
it is re-attached when its peer option changes, and while its peer is not connected its
link is down and its status carries the datapath's error.

OpenFlow: every bridge runs the OpenFlow pipeline (``oftable``, ``ofxlate``). A bridge
created in fail_mode standalone without a primary controller starts with ``priority=0
actions=NORMAL`` in table 0 (as Open vSwitch does), so a bridge nobody programs switches
exactly as NORMAL alone; in fail_mode secure it starts empty (everything is dropped
until rules arrive). Changes are applied at run time as Open vSwitch applies them
(``_apply_fail_mode``: flushes when primary controllers come or go and when the
fail_mode changes without one; ``set_fail_open``). ``flow_mod``,
``group_mod``, ``meter_mod`` and ``packet_out`` take decoded messages; changes re-translate
only the megaflows that read a changed table or group. Rule counters are credited from
datapath flow statistics (``settle_counters`` before a statistics reply).
``export_openflow(now)`` / ``import_openflow(of, now)`` carry the OpenFlow state (rules
with counters and remaining timeouts, groups, meters) for a handoff, as the state
layer's records (``hitless.state.records.OpenFlow``).

Meters: translation emits a datapath ``Meter`` action where a rule's meter instruction
is, and the datapath enforces the bands per packet. The bridge keeps the datapath's
meters equal to the OpenFlow meter table (``_sync_meters``, level-triggered: after every
meter-mod, bundle rollback and import, so a new process pushes the imported meters into
the datapath it adopted) and folds the datapath's per-band counters into the OpenFlow
meters' band statistics (``settle_counters``).

Pure decision logic: takes ``now``, never touches the clock, sockets or asyncio.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from hitless.config.model import (
    DEFAULT_FLOW_LIMIT,
    DEFAULT_MAX_IDLE_MS,
    OFPP_LOCAL,
    BridgeConfig,
    InterfaceConfig,
    InterfaceStatus,
)
from hitless.config.subfield import parse_subfield, prefix_fields
from hitless.datapath.actions import (
    Action,
    CheckPktLen,
    Clone,
    Output,
    PopVlan,
    PushVlan,
    Recirc,
    Sample,
    SetField,
    Userspace,
    format_actions,
)
from hitless.datapath.actions import Meter as DpMeterAction
from hitless.datapath.base import Datapath, DatapathError, Upcall
from hitless.datapath.meters import DpMeter, DpMeterBand
from hitless.ofproto.bond import Bond, learning_packet
from hitless.ofproto.eviction import group_key
from hitless.ofproto.ipfix import IPFIX_USERDATA
from hitless.ofproto.mac_learning import MacTable, format_mac
from hitless.ofproto.netflow import OUTPUT_FLOOD, Netflow
from hitless.ofproto.oftable import Meter, OfState, Removed, Rule, lookups_touch
from hitless.ofproto.ofxlate import (
    Continuation,
    TableHit,
    decode_userdata,
    xlate_openflow,
    xlate_resume,
)
from hitless.ofproto.ports import OfportAllocator
from hitless.ofproto.revalidator import Revalidator, UKey
from hitless.ofproto.rstp import Rstp, RstpPortConfig, rstp_path_cost
from hitless.ofproto.sflow import probability as sflow_probability
from hitless.ofproto.stp import FORWARDING, LEARNING, STP_MAC, Stp, StpPortConfig, path_cost
from hitless.ofproto.xlate import (
    LACP_USERDATA,
    MASK_IN_PORT,
    MASK_NORMAL,
    MASK_NORMAL_L4,
    MASK_VLAN,
    PortView,
    SwitchState,
    VlanConfig,
    Xlate,
    xlate_normal,
    xlate_special,
)
from hitless.openflow import actions as ofa
from hitless.openflow.constants import ErrorType, FlowModCommand, FlowModFailedCode, MeterFlags
from hitless.openflow.constants import Port as OfPort
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Match as OfMatch
from hitless.openflow.messages import FlowMod, GroupMod, MeterMod, PacketOut
from hitless.packet.flow import (
    CT_OFF,
    VLAN_PRESENT,
    Match,
    extract_key,
    format_match,
    full_mask,
    mask_or,
)
from hitless.state.records import MacEntryV1, OpenFlow, OpenFlowDelta

__all__ = ["Bridge"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0  # seconds between datapath flow sweeps (at most)
SWEEP_SLICE = 5000  # flows per run(): a long sweep continues in the next run
# Handed-over flows swept at a handoff's commit, before the first packet: re-translating
# costs ~55 us a flow at load 12 (5,000 took 276 ms), and the commit's sweep delays every
# packet queued during the freeze, so it is bounded; the rest follow in the next runs.
COMMIT_SWEEP = 1000
# Flows re-translated per run() for MAC table changes: a change that touches more (a
# host's entry evicted while thousands of flows lead to it, as under a flood of new
# source MACs) continues in the next runs, so the loop reads the ports in between
# (measured: one such turn took 150-170 ms of CPU with ~20,000 flows).
MAC_REVALIDATE_SLICE = 1000

UPCALL_BATCH = 64
# Then yield to the loop (next_wakeup() says "now"): the ports are read again before the
# next misses are handled, so under a flood of new flows the frames of established flows
# wait at most this many upcalls' time (~50 us each), not a whole backlog's. The datapath
# serves its ports' misses in turn (hitless.datapath.upcallq) and stops reading a port
# whose misses are not handled yet (they wait in its ring): docs/hardening.md.
MAX_UPCALLS_PER_RUN = 256
MAX_PACKET_INS = 1024  # queued for controllers; older ones are dropped first
NORMAL_INSTRUCTIONS = (ofa.ApplyActions((ofa.Output(OfPort.NORMAL),)),)
# Ingress policers are datapath meters POLICER_BASE + ofport, egress policers (Port.qos
# type egress-policer) EGRESS_BASE + ofport: above every OpenFlow meter id (OFPM_MAX
# 0xffff0000), below 2**32, apart for every ofport up to OFPP_MAX_POLICED.
POLICER_BASE = 0xFFFF0001
EGRESS_BASE = 0xFFFF8000
OFPP_MAX_POLICED = 0x7FFE
DEFAULT_POLICING_BURST = 8000  # kbit, when ingress_policing_burst is 0 (Open vSwitch's)
STP_USERDATA = b"stp"  # the userspace action that brings BPDUs to the bridge
_VID_MASK = b"\x0f\xff"
_RESERVED = b"\x01\x80\xc2\x00\x00"  # 01:80:c2:00:00:00-0f, link-local protocols
MASK_STP = mask_or(MASK_IN_PORT, full_mask("eth_dst"))
MASK_ETH_TYPE = full_mask("eth_type")
MASK_NETFLOW = full_mask("eth_type", "ipv4_src", "ipv4_dst", "ip_proto", "ip_tos", "tp_src", "tp_dst")
TC_QOS_TYPES = ("linux-htb", "linux-hfsc")  # shaped by the device's qdisc (daemon/qos.py)
SFLOW_USERDATA = b"hsF\x01"  # a Sample action's upcall for sFlow (+ outputs, out port)
MAX_SFLOW_SAMPLES = 4096  # waiting for the daemon's agent
MIN_CBS = 1518  # bytes: an egress policer's smallest bucket (one full frame)


@dataclass(frozen=True, slots=True)
class PacketInEvent:
    """A packet a CONTROLLER action sent up, for the OpenFlow connections."""

    in_port: int
    packet: bytes
    reason: int
    table_id: int
    cookie: int
    max_len: int
    userdata: bytes = b""  # controller(userdata=...): NXT_PACKET_IN2's userdata
    fields: tuple[tuple[str, int], ...] = ()  # non-zero pipeline fields (registers...)
    continuation: bytes = b""  # controller(pause): NXT_PACKET_IN2's continuation


@dataclass(frozen=True, slots=True)
class _Mirror:
    """A Mirror row resolved to port numbers."""

    name: str
    all: bool
    src: frozenset[int]
    dst: frozenset[int]
    vlans: frozenset[int]
    out: int  # the output port, or -1 for a mirror to a VLAN (RSPAN)
    out_vlan: int = 0  # RSPAN: the VLAN the copies are sent in


class MirrorCounter:
    """What a mirror sent (Mirror.statistics tx_packets, tx_bytes): every packet it
    mirrored once, whatever the number of ports the copy went to (as Open vSwitch)."""

    __slots__ = ("packets", "bytes")

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        self.packets += packets
        self.bytes += nbytes


@dataclass(slots=True)
class _Iface:
    """A configured interface attached to the datapath."""

    name: str
    ofport: int
    type: str
    view: PortView
    peer: str | None = None  # a patch port's options:peer



def _unicast_mac(text: str) -> bytes | None:
    """A MAC address written xx:xx:xx:xx:xx:xx that is not multicast, else None."""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        return None
    try:
        mac = bytes.fromhex("".join(parts))
    except ValueError:
        return None
    return None if mac[0] & 1 or not any(mac) else mac

class Bridge:
    def __init__(self, name: str, datapath: Datapath) -> None:
        self.name = name
        self.datapath = datapath
        self.mac = MacTable()
        self.state = SwitchState(self.mac)
        self.revalidator = Revalidator(datapath, self._xlate, self.mac)
        self.ofports = OfportAllocator()
        self.cfg: BridgeConfig | None = None
        # Set by the switch from Open_vSwitch other_config:max-idle (switch.max_idle()).
        self.max_idle = DEFAULT_MAX_IDLE_MS / 1000
        self._ifaces: dict[str, _Iface] = {}
        self._errors: dict[str, str] = {}
        self._local_mac: bytes | None = None  # the local port's own MAC while hwaddr replaces it
        self._link: dict[int, bool] = {}
        self._now = 0.0
        self._next_sweep = 0.0  # the first run() sweeps: adopts flows already installed
        self._more_upcalls = False
        self._mac_reval: set[UKey] = set()  # flows still to re-translate for MAC changes
        # Datapath flows installed at most (Open_vSwitch other_config:flow-limit): a miss
        # beyond it is handled (learned, forwarded) but leaves no flow, and is counted
        # (upcall_flow_limit_hit), so a flood of new flows cannot grow the flow table
        # without bound; idle flows expire after max-idle and make room.
        self.flow_limit = DEFAULT_FLOW_LIMIT
        self.n_flow_limit_hit = 0
        # when each datapath port joined the bridge (this process's clock: an adopted port,
        # after an upgrade too, counts from its adoption): OpenFlow port statistics' duration
        self.port_added: dict[int, float] = {}
        # tables an OpenFlow 1.4+ table-mod put in eviction mode (OFPTC14_EVICTION): a
        # full table evicts as with Flow_Table overflow_policy=evict
        self.of_evict: set[int] = set()
        self._check_mac_ports = False
        self.n_upcalls = 0
        self.of = OfState()
        self._of_started = False
        self._normal_rule: Rule | None = None  # set while the only rule is the default
        self._normal_credits: tuple[object, ...] = ()
        self.packet_ins: deque[PacketInEvent] = deque(maxlen=MAX_PACKET_INS)
        self.flow_removed: list[Removed] = []
        self.n_packet_ins = 0
        self._dirty_tables: set[int] = set()
        # Of those, the tables changed other than by rules one by one (table config, a
        # rollback, prefix tracking): every megaflow that read them is translated again.
        self._whole_tables: set[int] = set()
        # megaflows a rule change did not need to translate again (``_rules_changed``)
        self.n_reval_spared = 0
        self.of_port_config: dict[int, int] = {}  # OpenFlow port-mod config bits by port
        self._dirty_groups: set[int] = set()
        # The OpenFlow meters pushed into the datapath, and the datapath's per-band
        # counters already folded into their band_stats.
        self._dp_meters: dict[int, Meter] = {}
        self._dp_meter_seen: dict[int, list[tuple[int, int]]] = {}
        self.bonds: dict[str, Bond] = {}  # Port name -> bond (hitless.ofproto.bond)
        self._bonds_due = False  # an LACPDU arrived: run the bonds in this run()
        self.fail_open = False  # set by the daemon (see set_fail_open)
        self.link_resets: dict[str, int] = {}  # link state changes seen, by interface
        self._mirrors: tuple[_Mirror, ...] = ()
        self.mirror_counters: dict[str, MirrorCounter] = {}  # by Mirror name
        self._policers: dict[int, DpMeter] = {}  # ofport -> its ingress policer
        self._egress: dict[int, DpMeter] = {}  # ofport -> its egress policer
        self._qdisc_ports: set[int] = set()  # ports whose sends go through the qdisc
        # Bridge.stp_enable (hitless.ofproto.stp) or rstp_enable (hitless.ofproto.rstp)
        self.stp: Stp | Rstp | None = None
        self._stp_seq = 0
        self._mirror_vlans = False  # some mirror selects by VLAN: masks read vlan_tci
        self.link_seq = 0  # moves on every link change: the daemon writes status at once
        self.netflow: Netflow | None = None  # Bridge.netflow (hitless.ofproto.netflow)
        self.link_speeds: dict[str, int] = {}  # interface -> bit/s (the daemon reads them)
        self._sflow_prob = 0  # Bridge.sflow: each packet's chance of a sample, of 2**32
        # Sampled packets for the daemon's sFlow agent: (in ofport, outputs, out ofport,
        # packet); at most MAX_SFLOW_SAMPLES wait (more are counted in sflow_dropped).
        self.sflow_samples: list[tuple[int, int, int, bytes]] = []
        self.sflow_dropped = 0
        # Bridge.ipfix: (direction, in_port, out_port, dropped, packet) per sample.
        self._ipfix: tuple[int, bool, bool] | None = None  # probability, input, output
        self.ipfix_samples: list[tuple[int, int, int, bool, bytes]] = []
        self.ipfix_dropped = 0
        # The daemon's IPFIX exporter of this bridge (hitless.ofproto.ipfix.IpfixExporter)
        # while Bridge.ipfix is set: NXST_IPFIX_BRIDGE reads its statistics.
        self.ipfix_exporter: Any = None

    def _xlate(self, key: bytes) -> Xlate:
        if any(key[CT_OFF : CT_OFF + 4]):  # a recirculated packet resumes its frozen state
            return self._recirc_noted(
                xlate_openflow(self.of, self.state, key, recirc=self.datapath.recirc)
            )
        stp = self.stp
        if (
            stp is not None
            and key[4:10] == STP_MAC
            and int.from_bytes(key[0:4], "big") in stp.ports
        ):
            return Xlate((Userspace(STP_USERDATA),), MASK_STP, "slow protocol: STP")
        if self.state.bonds:
            special = xlate_special(self.state, key)
            if special is not None:
                return special
        x = self._xlate_pipeline(key)
        if self._mirrors:
            x = self._mirror(key, x)
        if stp is not None and stp.ports:
            x = self._stp_filter(key, x, stp)
        if self._egress and x.actions:
            x = replace(x, actions=self._police_egress(x.actions))
        if self._policers and x.actions:
            in_port = int.from_bytes(key[0:4], "big")
            if in_port in self._policers:
                # Ingress policing: the port's token bucket before anything else.
                x = replace(x, actions=(DpMeterAction(POLICER_BASE + in_port), *x.actions))
        if self.netflow is not None:
            x = self._netflow_credit(key, x, self.netflow)
        if self._ipfix is not None:
            x = replace(x, actions=self._ipfix_samples(x.actions, self._ipfix))
        if self._sflow_prob:
            x = replace(x, actions=(self._sflow_sample(x.actions), *x.actions))
        return x

    def _ipfix_samples(
        self, actions: tuple[Any, ...], how: tuple[int, bool, bool]
    ) -> tuple[Any, ...]:
        """IPFIX as Open vSwitch's bridge-level sampling: a sample as the packet enters
        (input) and one before each output to a port (output)."""
        prob, on_input, on_output = how
        out: list[Any] = []
        if on_input:
            dropped = not any(type(a) is Output for a in actions)
            out.append(Sample(prob, IPFIX_USERDATA + b"\x00" + bytes(4) + bytes((dropped,))))
        for a in actions:
            if on_output and type(a) is Output:
                out.append(Sample(prob, IPFIX_USERDATA + b"\x01" + a.port.to_bytes(4, "big")
                                  + b"\x00"))  # fmt: skip
            out.append(a)
        return tuple(out)

    def _sync_ipfix(self, cfg: BridgeConfig) -> bool:
        """Bridge.ipfix's sampling in every flow; returns whether it changed (every flow
        is then translated again)."""
        ip = cfg.ipfix
        want = None
        if ip is not None and (ip.input_sampling or ip.output_sampling):
            want = (sflow_probability(ip.sampling), ip.input_sampling, ip.output_sampling)
        if want == self._ipfix:
            return False
        self._ipfix = want
        return True

    def take_ipfix_samples(self) -> list[tuple[int, int, int, bool, bytes]]:
        out, self.ipfix_samples = self.ipfix_samples, []
        return out

    def _netflow_credit(self, key: bytes, x: Xlate, nf: Netflow) -> Xlate:
        """NetFlow: an IPv4 flow's megaflow matches its addresses, protocol, ToS and
        ports (one megaflow per NetFlow flow, as Open vSwitch un-wildcards them) and its
        packets are credited to the flow's counters. Every megaflow then matches the
        Ethernet type, so one that did not (installed before) is replaced."""
        if key[16:18] != b"\x08\x00":
            return replace(x, mask=mask_or(x.mask, MASK_ETH_TYPE))
        outs = {a.port for a in x.actions if type(a) is Output}
        out = next(iter(outs)) if len(outs) == 1 else OUTPUT_FLOOD if outs else 0
        proto = key[64]
        sport, dport = int.from_bytes(key[68:70], "big"), int.from_bytes(key[70:72], "big")
        if proto == 1:  # ICMP: type and code in the destination port, as Open vSwitch
            sport, dport = 0, sport << 8 | dport
        flow = nf.flow(
            (key[20:24], key[24:28], proto, key[65] & 0xFC, sport, dport,
             int.from_bytes(key[0:4], "big"), out)
        )  # fmt: skip
        return replace(x, mask=mask_or(x.mask, MASK_NETFLOW), credits=(*x.credits, flow))

    def _sync_netflow(self, cfg: BridgeConfig, now: float) -> bool:
        """Bridge.netflow; returns whether it was turned on or off (every flow is then
        translated again: the masks change)."""
        if cfg.netflow is None:
            changed, self.netflow = self.netflow is not None, None
            return changed
        if self.netflow is None:
            self.netflow = Netflow(cfg.netflow, now)
            return True
        self.netflow.config = cfg.netflow
        return False

    def export_mirrors(self, now: float) -> dict[str, list[int]] | None:
        """Each mirror's counters (Mirror.statistics), for a handoff."""
        c = self.mirror_counters
        return {name: [m.packets, m.bytes] for name, m in sorted(c.items())} or None

    def import_mirrors(self, data: dict[str, Any], now: float) -> None:
        """Go on counting from a handoff's counters (mirrors still configured only)."""
        for name, (packets, nbytes) in data.items():
            m = self.mirror_counters.get(name)
            if m is not None:
                m.packets += int(packets)
                m.bytes += int(nbytes)

    def export_netflow(self, now: float) -> dict[str, Any] | None:
        return self.netflow.export_state(now) if self.netflow is not None else None

    def import_netflow(self, data: dict[str, Any], now: float) -> None:
        if self.netflow is not None:
            self.netflow.import_state(data, now)

    def _sflow_sample(self, actions: tuple[Any, ...]) -> Sample:
        """sFlow: the datapath samples the packet as it enters, before anything else
        (policing included, as Open vSwitch's sample action), naming where the flow's
        actions send it: one port, several (their count), or none."""
        outs = [a.port for a in actions if type(a) is Output]
        n = len(set(outs)) if not any(type(a) is Recirc for a in actions) else 0
        port = outs[0] if n == 1 else 0
        return Sample(self._sflow_prob, SFLOW_USERDATA + n.to_bytes(2, "big") + port.to_bytes(4, "big"))

    def _sync_sflow(self, cfg: BridgeConfig) -> bool:
        """Bridge.sflow's sampling rate as every flow's first action; returns whether it
        changed (every flow is then translated again)."""
        prob = sflow_probability(cfg.sflow.sampling) if cfg.sflow is not None else 0
        if prob == self._sflow_prob:
            return False
        self._sflow_prob = prob
        return True

    def take_sflow_samples(self) -> list[tuple[int, int, int, bytes]]:
        out, self.sflow_samples = self.sflow_samples, []
        return out

    def _sync_policers(self, cfg: BridgeConfig) -> bool:
        """Interface.ingress_policing_rate/burst as datapath meters (one per port, ids
        above OpenFlow's); returns whether any changed."""
        want: dict[int, DpMeter] = {}
        for pc in cfg.ports.values():
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is None or not ic.ingress_policing_rate or it.ofport > OFPP_MAX_POLICED:
                    continue
                burst = ic.ingress_policing_burst or DEFAULT_POLICING_BURST
                want[it.ofport] = DpMeter(True, (DpMeterBand(ic.ingress_policing_rate, burst),))
        changed = self._push_port_meters(POLICER_BASE, self._policers, want)
        self._policers = want
        return changed

    def _push_port_meters(
        self, base: int, have: dict[int, DpMeter], want: dict[int, DpMeter]
    ) -> bool:
        """Make the datapath's per-port meters ``base + ofport`` ``want`` (from ``have``);
        returns whether anything changed."""
        if want == have:
            return False
        for port in [p for p in have if p not in want]:
            self.datapath.meter_del(base + port)
        for port, meter in want.items():
            if have.get(port) != meter:
                self.datapath.meter_set(base + port, meter)
        return True

    def _stp_filter(self, key: bytes, x: Xlate, stp: Stp | Rstp) -> Xlate:
        """Spanning tree port states: what a port that is not forwarding receives is
        dropped (its source still learned in ``learning``), and nothing is sent through
        such a port."""
        in_state = stp.state(int.from_bytes(key[0:4], "big"))
        if in_state is not None and in_state != FORWARDING:
            learn = x.learn if in_state == LEARNING else None
            return Xlate((), mask_or(x.mask, MASK_IN_PORT), f"drop: STP {in_state}", learn)
        def blocked(a: Output) -> list[Any]:
            return [] if stp.state(a.port) not in (None, FORWARDING) else [a]

        acts = _map_outputs(x.actions, blocked)
        return x if acts == x.actions else replace(x, actions=acts)

    def _sync_stp(self, cfg: BridgeConfig, now: float) -> None:
        """Bridge.stp_enable and other_config:stp-*: the bridge's spanning tree over its
        ports (not the internal ones, not bonds, not those with stp-enable=false; port
        numbers 1-255, as 802.1D)."""
        kind = "stp" if cfg.stp_enable else "rstp" if cfg.rstp_enable else None
        was = None if self.stp is None else getattr(self.stp, "kind", "stp")
        if was != kind:
            # Turned on, off or swapped: every megaflow is translated again under the new
            # tree (or none), at once. Megaflows made before it (a BPDU flooded as any
            # multicast, traffic over ports that now discard) would otherwise stay until
            # the first port state change: BPDUs kept from the tree, a loop forwarding.
            self.stp = None
            self._sync_tree(kind, cfg, now)
            self.revalidator.revalidate(self.revalidator.all())
        else:
            self._sync_tree(kind, cfg, now)

    def _sync_tree(self, kind: str | None, cfg: BridgeConfig, now: float) -> None:
        if kind == "rstp":
            self._sync_rstp(cfg, now)
            return
        if kind is None:
            return
        oc = cfg.other_config
        bid = self._tree_bridge_id(oc, "stp-system-id", "stp-priority", 0xFFFF)
        hello = float(_int(oc.get("stp-hello-time"), 2) or 2)
        max_age = float(_int(oc.get("stp-max-age"), 20) or 20)
        fwd = float(_int(oc.get("stp-forward-delay"), 15) or 15)
        if not isinstance(self.stp, Stp):
            self.stp = Stp(bid, hello, max_age, fwd, now)
        else:
            self.stp.configure(bid, hello, max_age, fwd, now)
        ports = [
            StpPortConfig(
                it.ofport, it.name, mac, _int(po.get("stp-port-priority"), 128),
                _int(po.get("stp-path-cost"), 0) or path_cost(self.link_speeds.get(it.name) or 10**10),
                it.view.can_output,
            )
            for po, it, mac in self._tree_ports(cfg, "stp-enable", 255)
        ]  # fmt: skip
        self.stp.set_ports(ports, now)
        self._run_stp(now)

    def set_link_speeds(self, speeds: dict[str, int], now: float) -> None:
        """The interfaces' link speeds (bit/s), from which a spanning tree port without
        ``stp-path-cost``/``rstp-path-cost`` takes its cost, as Open vSwitch does."""
        if speeds == self.link_speeds:
            return
        self.link_speeds = dict(speeds)
        if self.stp is not None and self.cfg is not None:
            self._sync_stp(self.cfg, now)

    def _tree_bridge_id(self, oc: dict[str, str], address: str, priority: str, bits: int) -> int:
        """A spanning tree's bridge ID: the configured priority (its ``bits``) over the
        configured address, else the bridge port's MAC."""
        local = self.datapath.ports().get(OFPP_LOCAL)
        sys_id = _mac_int(oc.get(address)) or (
            int.from_bytes(local.mac, "big") if local is not None else 0
        )
        return (_int(oc.get(priority), 32768) & bits) << 48 | sys_id

    def _tree_ports(
        self, cfg: BridgeConfig, enable_key: str, max_port: int
    ) -> list[tuple[dict[str, str], _Iface, bytes]]:
        """The interfaces that take part in a spanning tree: not internal ones, not
        bonds, not those whose Port says ``enable_key=false``, ofports 1..max_port;
        with their Port's other_config and their MAC."""
        dp_ports = self.datapath.ports()
        out = []
        for pc in cfg.ports.values():
            if pc.bond is not None or pc.other_config.get(enable_key) == "false":
                continue
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is None or it.type == "internal" or not 1 <= it.ofport <= max_port:
                    continue
                dpp = dp_ports.get(it.ofport)
                out.append((pc.other_config, it, dpp.mac if dpp is not None else bytes(6)))
        return out

    def _sync_rstp(self, cfg: BridgeConfig, now: float) -> None:
        """Bridge.rstp_enable and other_config:rstp-*: the rapid spanning tree over the
        same ports as STP's (Port other_config:rstp-enable=false leaves one out)."""
        oc = cfg.other_config
        bid = self._tree_bridge_id(oc, "rstp-address", "rstp-priority", 0xF000)
        max_age = float(_int(oc.get("rstp-max-age"), 20) or 20)
        fwd = float(_int(oc.get("rstp-forward-delay"), 15) or 15)
        if not isinstance(self.stp, Rstp):
            self.stp = Rstp(bid, max_age, fwd, now)
        else:
            self.stp.configure(bid, max_age, fwd, now)
        self.stp.hold_count = max(1, min(10, _int(oc.get("rstp-transmit-hold-count"), 6) or 6))
        ports = [
            RstpPortConfig(
                it.ofport, it.name, mac, _int(po.get("rstp-port-priority"), 128),
                _int(po.get("rstp-path-cost"), 0)
                or rstp_path_cost(self.link_speeds.get(it.name) or 10**10),
                it.view.can_output,
                po.get("rstp-port-admin-edge") == "true", po.get("rstp-port-auto-edge") != "false",
            )
            for po, it, mac in self._tree_ports(cfg, "rstp-enable", 4095)
        ]  # fmt: skip
        self.stp.set_ports(ports, now)
        self._run_stp(now)

    def _run_stp(self, now: float) -> None:
        """The spanning tree's timers and BPDUs; a port state change re-translates every
        flow, a topology change flushes the MAC table."""
        stp = self.stp
        if stp is None:
            return
        stp.run(now)
        for port, frame in stp.take_bpdus():
            self.datapath.execute(frame, OFPP_LOCAL, (Output(port),))
        if stp.flush_macs:
            stp.flush_macs = False
            self.mac.flush()
            self._revalidate_macs()
        if stp.seq != self._stp_seq:
            self._stp_seq = stp.seq
            self.link_seq += 1  # port status changed: the daemon writes it at once
            self.revalidator.revalidate(self.revalidator.all())

    def revalidate_adopted(self, now: float) -> None:
        """A handoff gave this bridge datapath flows it did not translate: sweep now, so
        that they follow this process's state (its configuration, spanning tree, bonds)
        before it forwards again. Up to ``COMMIT_SWEEP`` flows here; a longer table goes
        on in the next runs (``SWEEP_SLICE`` a run, as any sweep)."""
        rv = self.revalidator
        rv.start_sweep(now)
        if rv.continue_sweep(now, self.max_idle, COMMIT_SWEEP):
            self._next_sweep = now + min(SWEEP_INTERVAL, self.max_idle / 2)

    def stp_kick(self, now: float) -> None:
        """Act on what a management command did to the spanning tree (stp/tcn)."""
        self._run_stp(now)

    def stp_status(self, now: float) -> dict[tuple[str, str], dict[str, str]]:
        """Bridge.status and Port.status keys of the spanning tree, by (table, name)."""
        stp = self.stp
        if stp is None or self.cfg is None:
            return {}
        out = {("Bridge", self.name): stp.bridge_status()}
        for pc in self.cfg.ports.values():
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is not None and it.ofport in stp.ports:
                    out[("Port", pc.name)] = stp.port_status(it.ofport, now)
        return out

    def stp_statistics(self) -> dict[str, dict[str, int]]:
        """Port.statistics of ports in the spanning tree (BPDUs sent, received, bad)."""
        stp = self.stp
        if stp is None or self.cfg is None:
            return {}
        out = {}
        for pc in self.cfg.ports.values():
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is not None and it.ofport in stp.ports:
                    out[pc.name] = stp.port_statistics(it.ofport)
        return out

    def _police_egress(self, actions: tuple[Any, ...]) -> tuple[Any, ...]:
        """Each output to a port with an egress policer goes through that port's meter
        first, scoped to the output alone: what the policer drops on one port still
        reaches the others."""
        def police(a: Output) -> list[Any]:
            return [DpMeterAction(EGRESS_BASE + a.port, 1), a] if a.port in self._egress else [a]

        return _map_outputs(actions, police) if self._egress else actions

    def _sync_qos(self, cfg: BridgeConfig) -> bool:
        """Port.qos: an egress-policer becomes a datapath meter per interface (cir and
        cbs in bytes/s and bytes, as Open vSwitch's); linux-htb/hfsc interfaces have
        their frames go through the device's qdisc (the daemon builds the tc tree).
        Returns whether the egress policers changed."""
        want: dict[int, DpMeter] = {}
        qdisc: set[int] = set()
        for pc in cfg.ports.values():
            q = pc.qos
            if q is None:
                continue
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is None or it.ofport > OFPP_MAX_POLICED:
                    continue
                if q.type in TC_QOS_TYPES:
                    qdisc.add(it.ofport)
                elif q.type == "egress-policer":
                    cir = _int(q.other_config.get("cir"), 0)
                    cbs = max(MIN_CBS, _int(q.other_config.get("cbs"), 0))
                    rate = max(1, cir * 8 // 1000)
                    want[it.ofport] = DpMeter(True, (DpMeterBand(rate, max(1, cbs * 8 // 1000)),))
        attached = {it.ofport for it in self._ifaces.values()}
        for port in (qdisc ^ self._qdisc_ports) & attached:
            self.datapath.port_use_qdisc(port, port in qdisc)
        self._qdisc_ports = qdisc
        changed = self._push_port_meters(EGRESS_BASE, self._egress, want)
        self._egress = want
        return changed

    def _mirror(self, key: bytes, x: Xlate) -> Xlate:
        """Port mirroring (Bridge.mirrors): a packet received on a selected source port,
        or sent to a selected destination port, in a selected VLAN, is also sent to the
        mirror's output port: as it was received (before any rewrite) when its input
        port selects it, else as it was sent to the first selected port, the copy right
        after that output wherever it is (inside a datapath clone, in a check_pkt_len
        branch: the first branch only when both send there, as Open vSwitch 3.1 mirrors
        in the branch it translates first); never twice to a port, never back to its
        input port. A mirror to a VLAN (RSPAN) sends the copy to
        every port that carries that VLAN, tagged with it on a trunk and untagged where
        it is the port's own VLAN, unless the packet is in that VLAN already or goes to
        a reserved (link-local) address, as Open vSwitch does. Each mirror that copied
        the packet counts it (Mirror.statistics)."""
        in_port = int.from_bytes(key[0:4], "big")
        outs = _all_outputs(x.actions)
        tci = key[18] << 8 | key[19]
        pv = self.state.ports.get(in_port)
        vlan = pv.vlan.ingress_vlan(tci) if pv is not None else None
        if vlan is None:
            vlan = tci & 0xFFF if tci & VLAN_PRESENT else 0
        add: list[int] = []
        after: dict[int, frozenset[int]] = {}  # mirror port -> the ports it copies after
        rspan: list[Action] = []
        credits: list[object] = []
        mask = mask_or(x.mask, MASK_VLAN) if self._mirror_vlans else x.mask
        for m in self._mirrors:
            if m.out == in_port or m.out in outs or m.out in add or m.out in after:
                continue
            if m.vlans and vlan not in m.vlans:
                continue
            ingress = m.all or in_port in m.src
            if not (ingress or any(o in m.dst for o in outs)):
                continue
            if m.out >= 0 and ingress:
                add.append(m.out)
            elif m.out >= 0:
                after[m.out] = m.dst
            else:
                mask = mask_or(mask, MASK_NORMAL_L4 if self.state.hashes_l4 else MASK_NORMAL)
                if vlan == m.out_vlan or key[4:9] == _RESERVED and key[9] < 0x10:
                    continue
                rspan += self._rspan_actions(key, tci, in_port, m.out_vlan)
            counter = self.mirror_counters.get(m.name)
            if counter is not None:
                credits.append(counter)
        if not add and not rspan and not after:
            return x if mask == x.mask and not credits else replace(
                x, mask=mask, credits=(*x.credits, *credits)
            )
        acts = x.actions
        if after:
            done: set[int] = set()

            def then_copy(a: Output) -> list[Any]:
                copies = [o for o, dst in after.items() if a.port in dst and o not in done]
                done.update(copies)
                return [a, *(Output(o) for o in copies)]

            acts = _map_outputs(acts, then_copy)
        acts = (*rspan, *(Output(o) for o in add), *acts)
        sent = tuple(a.port for a in rspan if isinstance(a, Output))
        return replace(
            x,
            actions=acts,
            mask=mask,
            out_ports=x.out_ports + sent + tuple(add) + tuple(after),
            credits=(*x.credits, *credits),
        )

    def _rspan_actions(self, key: bytes, tci: int, in_port: int, out_vlan: int) -> list[Action]:
        """The copy of a packet (vlan_tci ``tci``) to every port carrying ``out_vlan``
        but its input port (a bond by the member its hash picks), leaving the packet as
        it was for the actions after."""
        in_bond = self.state.bonds.get(in_port)
        skip = in_bond.rep if in_bond is not None else in_port
        tagged: list[int] = []
        untagged: list[int] = []
        for p, vid in self.state.flood_set(out_vlan):
            if p == skip:
                continue
            bond = self.state.bonds.get(p)
            if bond is not None:
                member = bond.choose_output(key[10:16], out_vlan, key)
                if member is None:
                    continue
                p = member
            (tagged if vid else untagged).append(p)
        acts: list[Action] = []
        if tci & VLAN_PRESENT:
            if tagged:
                acts.append(SetField("vlan_tci", out_vlan.to_bytes(2, "big"), _VID_MASK))
                acts += (Output(p) for p in tagged)
            if untagged:
                acts.append(PopVlan())
                acts += (Output(p) for p in untagged)
                acts.append(PushVlan(tci & ~VLAN_PRESENT & 0xFFFF))
            elif tagged:
                acts.append(SetField("vlan_tci", (tci & 0xFFF).to_bytes(2, "big"), _VID_MASK))
        else:
            acts += (Output(p) for p in untagged)
            if tagged:
                acts.append(PushVlan(out_vlan))
                acts += (Output(p) for p in tagged)
                acts.append(PopVlan())
        return acts

    def _sync_prefixes(self, cfg: BridgeConfig) -> None:
        """Flow_Table prefixes: each table tracks the prefixes its row names, and
        ``ip_dst,ip_src`` without a row or with the column empty (Open vSwitch's
        default); the megaflows that read a table whose tracking changed are translated
        again."""
        changed = set()
        for table in self.of.tables:
            ft = cfg.flow_tables.get(table.table_id)
            fields = prefix_fields(ft.prefixes if ft is not None else ())[0]
            if table.track_prefixes(fields):
                changed.add(table.table_id)
        if changed:
            self._of_changed(changed, set())

    def _sync_mirrors(self, cfg: BridgeConfig) -> bool:
        """Resolve the configured mirrors to port numbers; returns whether they changed.
        A mirror's output port takes no part in switching (as Open vSwitch)."""
        by_port: dict[str, list[int]] = {}
        for pc in cfg.ports.values():
            by_port[pc.name] = sorted(
                self._ifaces[i.name].ofport for i in pc.interfaces if i.name in self._ifaces
            )
        mirrors = []
        for mc in cfg.mirrors:
            out = by_port.get(mc.output_port or "", [])
            if mc.output_port is None and mc.output_vlan is not None:
                out = [-1]
            if not out:
                continue

            def ports(names: frozenset[str]) -> frozenset[int]:
                return frozenset(n for p in names for n in by_port.get(p, []))

            mirrors.append(
                _Mirror(
                    mc.name,
                    mc.select_all,
                    ports(mc.select_src_port),
                    ports(mc.select_dst_port),
                    mc.select_vlan,
                    out[0],
                    mc.output_vlan or 0,
                )
            )
        new = tuple(mirrors)
        self.mirror_counters = {
            m.name: self.mirror_counters.get(m.name) or MirrorCounter() for m in new
        }
        if new == self._mirrors:
            return False
        self._mirrors = new
        self._mirror_vlans = any(m.vlans for m in new)
        return True

    def _xlate_pipeline(self, key: bytes) -> Xlate:
        if self.fail_open:
            return xlate_normal(self.state, key)
        rule = self._normal_rule
        if rule is not None:
            # Fast path for the default pipeline: the same result as the general walk.
            x = xlate_normal(self.state, key)
            return Xlate(
                x.actions,
                x.mask,
                x.reason,
                x.learn,
                x.dst,
                x.flood_vlan,
                x.out_ports,
                self._normal_credits + x.credits if x.credits else self._normal_credits,
                _DEPS_TABLE0,
            )
        return self._recirc_noted(
            xlate_openflow(self.of, self.state, key, recirc=self.datapath.recirc)
        )

    def _recirc_noted(self, x: Xlate) -> Xlate:
        """Record the recirculation ids a translation froze beside the datapath's flows
        (the datapath's ``recirc`` map travels with them in a handoff)."""
        for rid, frozen in x.recirc:
            self.datapath.recirc[rid] = frozen
        return x

    def _check_default(self) -> None:
        """Use the fast path when the pipeline is just ``priority=0 actions=NORMAL``."""
        self._normal_rule = None
        of = self.of
        if of.n_rules != 1 or len(of.tables[0]) != 1:
            return
        rule = next(iter(of.tables[0]))
        if rule.mask or rule.md_mask or rule.instructions != NORMAL_INSTRUCTIONS:
            return
        self._normal_rule = rule
        self._normal_credits = (TableHit(of.tables[0], True), rule)

    # Configuration ----------------------------------------------------------------
    def reconfigure(self, cfg: BridgeConfig, now: float) -> dict[str, InterfaceStatus]:
        self._now = now
        old_cfg = self.cfg
        self.cfg = cfg
        self._apply_fail_mode(old_cfg, cfg, now)
        self.mac.set_limits(cfg.mac_aging_time, cfg.mac_table_size)
        forward_bpdu = cfg.other_config.get("forward-bpdu", "false") == "true"
        full = forward_bpdu != self.state.forward_bpdu
        self.state.forward_bpdu = forward_bpdu

        desired: dict[str, tuple[InterfaceConfig, VlanConfig]] = {}
        for pc in cfg.ports.values():
            vlan = VlanConfig.resolve(pc.vlan_mode, pc.tag, pc.trunks)
            for ic in pc.interfaces:
                desired[ic.name] = (ic, vlan)

        changes: list[tuple[int, PortView | None, PortView | None]] = []
        dp = self.datapath

        # 1. Detach what is gone, changed type, or can now have the number it asks for.
        for name, it in list(self._ifaces.items()):
            want = desired.get(name)
            if want is not None:
                ic = want[0]
                req = ic.ofport_request
                moved = (
                    req is not None
                    and req != it.ofport
                    and it.ofport != OFPP_LOCAL
                    and req not in self.ofports.in_use
                )
                if ic.type == it.type and ic.peer == it.peer and not moved:
                    continue
            self._detach(it)
            changes.append((it.ofport, it.view, None))

        # 2. Adopt datapath ports that are already there; detach ones nobody wants.
        dp_ports = dp.ports()
        for port_no, dpp in sorted(dp_ports.items()):
            if dpp.name in self._ifaces:
                continue
            want = desired.get(dpp.name)
            if (
                want is None
                or want[0].type != dpp.type
                or want[0].peer != dpp.peer
                or port_no in self.ofports.in_use
            ):
                dp.port_del(port_no)
                self.port_added.pop(port_no, None)
                self.mac.flush(port=port_no)
                changes.append((port_no, None, None))
                continue
            self.ofports.take(dpp.name, port_no)
            self._link[port_no] = dpp.link_up
            self.port_added.setdefault(port_no, now)
            view = self._view(want[0], want[1], port_no)
            self._ifaces[dpp.name] = _Iface(dpp.name, port_no, dpp.type, view, dpp.peer)
            changes.append((port_no, None, view))

        # 3. Attach new interfaces; update the settings of existing ones.
        self._errors = {}
        for name, (ic, vlan) in desired.items():
            cur = self._ifaces.get(name)
            if cur is not None:
                view = self._view(ic, vlan, cur.ofport)
                if view != cur.view:
                    if view.vlan != cur.view.vlan:
                        self.mac.flush(port=cur.ofport)  # learned in VLANs it may not carry
                    changes.append((cur.ofport, cur.view, view))
                    cur.view = view
                continue
            local = name == self.name and ic.type == "internal"
            try:
                want_no = self.ofports.choose(name, ic.ofport_request, local)
                if ic.type in ("patch", "dummy"):  # options: peer; tx_pcap, rxq_pcap
                    port_no = dp.port_add(name, want_no, ic.type, ic.options)
                else:
                    port_no = dp.port_add(name, want_no, ic.type)
            except (DatapathError, ValueError) as e:
                self._errors[name] = str(e)
                continue
            self.ofports.take(name, port_no)
            self._link[port_no] = self._dp_link(port_no)
            self.port_added[port_no] = now
            view = self._view(ic, vlan, port_no)
            self._ifaces[name] = _Iface(name, port_no, ic.type, view, ic.peer)
            changes.append((port_no, None, view))

        self._sync_hwaddr(cfg)
        bonds_changed = self._sync_bonds(cfg, now)
        if self._sync_policers(cfg):
            full = True
        if self._sync_qos(cfg):
            full = True
        self._sync_stp(cfg, now)
        if self._sync_sflow(cfg):
            full = True
        if self._sync_ipfix(cfg):
            full = True
        if self._sync_netflow(cfg, now):
            full = True
        self._sync_prefixes(cfg)
        if self._sync_mirrors(cfg):
            full = True
            for it in self._ifaces.values():
                admin_up = self._admin_up(it.name)
                link_up = self._link.get(it.ofport, True)
                v = it.view
                it.view = self._of_override(
                    PortView(v.ofport, v.name, v.vlan, admin_up, admin_up and link_up)
                )
        if changes or full or bonds_changed:
            self._publish_ports()
        if bonds_changed:
            self._revalidate_bonds([n for b in self.bonds.values() for n in b.members])
        if self._check_mac_ports:
            self._check_mac_ports = False
            self._flush_unattached_macs()
        if full or (old_cfg is not None and old_cfg.name != cfg.name):
            self.revalidator.revalidate(self.revalidator.all())
        else:
            self._revalidate_ports(changes)
        # Sliced as in run(): the daemon also calls this every stats-update-interval to
        # refresh status, which must not re-translate a flood's flows in one go.
        self._revalidate_macs(MAC_REVALIDATE_SLICE)
        return self.status()

    def _apply_fail_mode(self, old: BridgeConfig | None, cfg: BridgeConfig, now: float) -> None:
        """The OpenFlow table as Open vSwitch keeps it across configuration changes: a
        new bridge in fail_mode standalone without a primary controller gets
        ``priority=0 actions=NORMAL``; every rule is flushed when primary controllers
        appear or all go away, and when the fail_mode changes while there is none; after
        a flush, standalone without a primary controller gets NORMAL again."""
        primary = cfg.has_primary_controller
        why = None
        if not self._of_started:
            self._of_started = True
            why = "new bridge"
        elif old is not None and old.has_primary_controller != primary:
            why = "primary controllers added" if primary else "no primary controller left"
        elif old is not None and old.fail_mode != cfg.fail_mode and not primary:
            why = f"fail_mode {old.fail_mode} -> {cfg.fail_mode}"
        if why is None:
            return
        if why != "new bridge":
            rules = list(self.of.rules())
            self.of.remove_rules(rules)
            log.info("bridge %s: %s: flushed %d OpenFlow rules", self.name, why, len(rules))
        if cfg.fail_mode != "secure" and not primary:
            self.of.add_rule(Rule(0, 0, OfMatch(), NORMAL_INSTRUCTIONS, created=now))
        self._of_changed(set(range(len(self.of.tables))), set())

    def set_fail_open(self, on: bool, now: float) -> None:
        """Fail-open (fail_mode standalone, primary controllers configured, none
        reachable for a while): switch everything by NORMAL ahead of the OpenFlow
        tables, as Open vSwitch's hidden fail-open flow does; off again when a
        controller connects or the fail_mode becomes secure."""
        if on == self.fail_open:
            return
        self.fail_open = on
        if on:
            log.warning(
                "bridge %s: could not connect to a controller for a while: failing open",
                self.name,
            )
        else:
            log.warning("bridge %s: no longer in fail-open mode", self.name)
        self.revalidator.revalidate(self.revalidator.all())

    def _view(self, ic: InterfaceConfig, vlan: VlanConfig, port_no: int) -> PortView:
        admin_up = ic.admin_state != "down"
        link_up = self._link.get(port_no, True)
        return self._of_override(PortView(port_no, ic.name, vlan, admin_up, admin_up and link_up))

    def _of_override(self, pv: PortView) -> PortView:
        """Apply OpenFlow port-mod bits: PORT_DOWN, NO_RECV (no input), NO_FWD (no output)."""
        if any(m.out == pv.ofport for m in self._mirrors):
            # A mirror's output port: nothing is switched to or from it.
            return PortView(pv.ofport, pv.name, pv.vlan, False, False)
        cfg = self.of_port_config.get(pv.ofport, 0)
        if not cfg:
            return pv
        can_in = pv.can_input and not cfg & (_OFPPC_PORT_DOWN | _OFPPC_NO_RECV)
        can_out = pv.can_output and not cfg & (_OFPPC_PORT_DOWN | _OFPPC_NO_FWD)
        return PortView(pv.ofport, pv.name, pv.vlan, can_in, can_out)

    def port_mod(self, port_no: int, config: int, mask: int, now: float) -> None:
        """An OpenFlow port-mod: set the ``mask`` bits of the port's config to
        ``config``'s; forwarding follows at once (flows through the port revalidated)."""
        old = self.of_port_config.get(port_no, 0)
        new = (old & ~mask) | (config & mask)
        if new:
            self.of_port_config[port_no] = new
        else:
            self.of_port_config.pop(port_no, None)
        if new != old and self.cfg is not None:
            self.reconfigure(self.cfg, now)

    def _admin_up(self, name: str) -> bool:
        if self.cfg is not None:
            for pc in self.cfg.ports.values():
                for ic in pc.interfaces:
                    if ic.name == name:
                        return ic.admin_state != "down"
        return True

    def _dp_link(self, port_no: int) -> bool:
        p = self.datapath.ports().get(port_no)
        return True if p is None else p.link_up

    def _detach(self, it: _Iface) -> None:
        self.datapath.port_del(it.ofport)
        self.ofports.release(it.ofport)
        self._link.pop(it.ofport, None)
        self.port_added.pop(it.ofport, None)
        del self._ifaces[it.name]
        self.mac.flush(port=it.ofport)

    def _sync_hwaddr(self, cfg: BridgeConfig) -> None:
        """The local port's MAC address is other_config:hwaddr when that is a unicast
        MAC, as in Open vSwitch; without it, the one the port had (the datapath's own).
        Ports see the change in their PORT_STATUS and descriptions; a datapath that
        cannot change it says so in the bridge's errors."""
        it = self._ifaces.get(self.name)
        if it is None or it.ofport != OFPP_LOCAL:
            return
        want = _unicast_mac(cfg.other_config.get("hwaddr", ""))
        cur = self.datapath.ports().get(OFPP_LOCAL)
        if cur is None:
            return
        if want is None:
            if self._local_mac is None:
                return
            want, self._local_mac = self._local_mac, None  # back to the port's own
        elif self._local_mac is None:
            self._local_mac = cur.mac
        if cur.mac == want:
            return
        try:
            self.datapath.port_set_mac(OFPP_LOCAL, want)
        except DatapathError as e:
            self._errors[self.name] = f"other_config:hwaddr not applied: {e}"

    def _publish_ports(self) -> None:
        self.state.set_ports(
            {it.ofport: it.view for it in self._ifaces.values()},
            {no: b for b in self.bonds.values() for no in b.members},
        )

    # Bonds --------------------------------------------------------------------------
    def _sync_bonds(self, cfg: BridgeConfig, now: float) -> bool:
        """Make ``self.bonds`` the configured bonds over their attached members; returns
        whether any forwarding decision may have changed."""
        want = {pc.name: pc for pc in cfg.ports.values() if pc.bond is not None}
        changed = False
        for name in [n for n in self.bonds if n not in want]:
            gone = self.bonds.pop(name)
            if gone.members:
                self.mac.flush(port=gone.rep)
            changed = True
        dp_ports = self.datapath.ports() if want else {}
        for name, pc in want.items():
            assert pc.bond is not None
            members = []
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is not None:
                    dpp = dp_ports.get(it.ofport)
                    members.append((ic.name, it.ofport, dpp.mac if dpp else b"\0" * 6))
            bond = self.bonds.get(name)
            if bond is None:
                bond = self.bonds[name] = Bond(name, pc.bond)
                changed = True
            old_rep = bond.rep if bond.members else None
            local = dp_ports.get(OFPP_LOCAL)
            sys_id = local.mac if local is not None else b"\0" * 6
            if bond.configure(pc.bond, members, sys_id):
                changed = True
            if old_rep is not None and bond.rep != old_rep:
                self.mac.flush(port=old_rep)  # learned on the bond's old number
            self._bond_carriers(bond)
            if bond.run(now):
                changed = True
            self._send_pdus(bond)
        return changed

    def _send_pdus(self, bond: Bond) -> None:
        for member, pdu in bond.take_pdus():
            self.datapath.execute(pdu, OFPP_LOCAL, (Output(member),))

    def _bond_carriers(self, bond: Bond) -> None:
        for no in bond.members:
            it = self._ifaces.get(bond.members[no].name)
            bond.set_carrier(no, it is not None and it.view.can_output)

    def _run_bonds(self, now: float) -> None:
        """Timers and link changes of every bond; re-translate what a change moved."""
        moved: list[int] = []
        changed: list[Bond] = []
        self._bonds_due = False
        for bond in self.bonds.values():
            self._bond_carriers(bond)
            if bond.run(now):
                moved.extend(bond.members)
                changed.append(bond)
            self._send_pdus(bond)
        if moved:
            self.state.bonds_changed()
            self._revalidate_bonds(moved)
            for bond in changed:
                self._send_learning_packets(bond)

    def _send_learning_packets(self, bond: Bond) -> None:
        """Tell the other side of ``bond`` which member now leads to each address
        learned elsewhere (see hitless.ofproto.bond)."""
        if bond.active is None:
            return
        for vlan, mac, port, _ in self.mac.entries():
            if port == bond.rep:
                continue
            member = bond.choose_output(mac, vlan)
            view = self.state.ports.get(member) if member is not None else None
            vid = view.vlan.egress_vid(vlan) if view is not None else None
            if member is None or vid is None:
                continue
            self.datapath.execute(learning_packet(mac, vid), OFPP_LOCAL, (Output(member),))

    def _revalidate_bonds(self, members: list[int]) -> None:
        rv = self.revalidator
        affected: set[UKey] = set()
        for no in members:
            affected |= rv.for_port(no)
        affected |= rv.for_flood(None)
        affected |= rv.for_dep(_DEP_PORTS)
        rv.revalidate(affected)

    def export_bonds(self, now: float) -> dict[str, Any] | None:
        """Every bond's learned state (active member, enabled members, buckets, delays,
        LACP partners) by Port name, for a handoff; None without bonds."""
        if not self.bonds:
            return None
        out: dict[str, Any] = {}
        for name, bond in sorted(self.bonds.items()):
            d = bond.export_state(now)
            if bond.lacp is not None:
                d["lacp"] = bond.lacp.export_state(now)
            out[name] = d
        return out

    def import_bonds(self, data: dict[str, Any], now: float) -> None:
        """``export_bonds``' state, into the bonds the configuration created (a bond
        that is no longer configured is skipped); forwarding follows at once."""
        for name, d in data.items():
            bond = self.bonds.get(name)
            if bond is None:
                continue
            if bond.lacp is not None and d.get("lacp"):
                bond.lacp.import_state(d["lacp"], now)
                for no in bond.members:
                    bond.set_may_enable(no, bond.lacp.may_enable(no))
            bond.import_state(d, now)
        self.state.bonds_changed()
        self._revalidate_bonds([n for b in self.bonds.values() for n in b.members])

    def _lacp_current(self, port: str, ofport: int) -> bool | None:
        """Interface.lacp_current of a member of an LACP bond (None otherwise)."""
        bond = self.bonds.get(port)
        if bond is None or bond.lacp is None or ofport not in bond.lacp.members:
            return None
        return bond.lacp.members[ofport].status == "current"

    def bond_status(self) -> dict[str, str | None]:
        """Port.bond_active_slave of every bond: its active member's MAC."""
        return {name: b.active_mac() for name, b in self.bonds.items()}

    def bond_changed(self, now: float) -> None:
        """A management command changed a bond (active member, enabled members)."""
        self.state.bonds_changed()
        self._revalidate_bonds([n for b in self.bonds.values() for n in b.members])
        for bond in self.bonds.values():
            self._send_learning_packets(bond)
        self._run_bonds(now)

    def _flush_unattached_macs(self) -> None:
        """Forget the MAC entries of ports the bridge does not have (after an adoption):
        found from the table's per-port index, not by walking every entry (50,000
        entries took 37 ms of a handoff's commit, during which nothing forwards)."""
        attached = {it.ofport for it in self._ifaces.values()}
        for port in self.mac.port_counts():
            if port not in attached:
                self.mac.flush(port=port)

    def _revalidate_ports(
        self, changes: list[tuple[int, PortView | None, PortView | None]]
    ) -> None:
        if not changes:
            return
        affected: set[UKey] = set()
        vlans: set[int] | None = set()
        for port_no, old, new in changes:
            affected |= self.revalidator.for_port(port_no)
            for v in (old, new):
                if v is None or vlans is None:
                    continue
                carried = v.vlan.carried()
                if carried is None:
                    vlans = None
                else:
                    vlans |= carried
        affected |= self.revalidator.for_flood(vlans)
        affected |= self.revalidator.for_dep(_DEP_PORTS)
        self.revalidator.revalidate(affected)

    def _revalidate_macs(self, limit: int | None = None) -> None:
        """Re-translate the flows that depend on changed MAC entries: all of them, or at
        most ``limit`` now and the rest in the next calls (the main loop's)."""
        dirty = self.mac.take_dirty()
        pending = self._mac_reval
        if dirty:
            pending |= self.revalidator.for_macs(dirty)
        if not pending:
            return
        if limit is None or len(pending) <= limit:
            self._mac_reval = set()
            self.revalidator.revalidate(pending)
            return
        self.revalidator.revalidate([pending.pop() for _ in range(limit)])

    def status(self) -> dict[str, InterfaceStatus]:
        """Status of every interface of the current configuration."""
        out: dict[str, InterfaceStatus] = {}
        if self.cfg is None:
            return out
        dp_ports = self.datapath.ports()
        for pc in self.cfg.ports.values():
            for ic in pc.interfaces:
                it = self._ifaces.get(ic.name)
                if it is None:
                    err = self._errors.get(ic.name, "not attached")
                    out[ic.name] = InterfaceStatus(ofport=-1, error=err)
                    continue
                dpp = dp_ports.get(it.ofport)
                link = dpp is not None and dpp.link_up
                out[ic.name] = InterfaceStatus(
                    ofport=it.ofport,
                    error=dpp.error if dpp is not None else None,  # a patch port's peer
                    link_state="up" if link else "down",
                    admin_state="up" if it.view.can_input else "down",
                    mac_in_use=format_mac(dpp.mac) if dpp is not None else None,
                    link_resets=self.link_resets.get(ic.name, 0),
                    lacp_current=self._lacp_current(pc.name, it.ofport),
                )
        return out

    def ofport_of(self, iface: str) -> int | None:
        it = self._ifaces.get(iface)
        return None if it is None else it.ofport

    # Main loop ----------------------------------------------------------------------
    def run(self, now: float) -> None:
        self._now = now
        self._poll_links()
        if self.bonds:
            self._run_bonds(now)
        if self.stp is not None:
            self._run_stp(now)
        self._more_upcalls = False
        handled = 0
        recv = self.datapath.recv_upcalls
        while True:
            ups = recv(UPCALL_BATCH)
            if not ups:
                break
            for up in ups:
                self._handle_upcall(up, now)
            handled += len(ups)
            if handled >= MAX_UPCALLS_PER_RUN:
                self._more_upcalls = True
                break
        self.n_upcalls += handled
        if self._bonds_due:
            self._run_bonds(now)  # LACPDUs arrived: answer and act on them now
        self.commit_openflow()
        rv = self.revalidator
        if not rv.sweeping and now >= self._next_sweep:
            rv.start_sweep(now)
        if rv.sweeping and rv.continue_sweep(now, self.max_idle, SWEEP_SLICE):
            self._next_sweep = now + min(SWEEP_INTERVAL, self.max_idle / 2)
        self.mac.expire(now)
        self._revalidate_macs(MAC_REVALIDATE_SLICE)
        self._expire_rules(now)

    def _expire_rules(self, now: float) -> None:
        due = self.of.next_expiry()
        if due is None or now < due:
            return
        self.revalidator.settle_all()  # idle timeouts need the latest hits
        changed, removed = self.of.expire(now)
        self._rules_changed(changed)
        self.commit_openflow()
        self.flow_removed += removed

    def _handle_upcall(self, up: Upcall, now: float) -> None:
        if up.reason == "action" and up.userdata == STP_USERDATA:
            if self.stp is not None:
                self.stp.receive(up.in_port, up.packet, now)
                self._run_stp(now)
            return
        if up.reason == "action" and up.userdata == LACP_USERDATA:
            bond = self.state.bonds.get(up.in_port)
            if bond is not None:
                bond.receive_lacp(up.in_port, up.packet, now)
                self._bonds_due = True
            return
        if up.reason == "action" and up.userdata[:4] == IPFIX_USERDATA:
            if len(self.ipfix_samples) < MAX_SFLOW_SAMPLES:
                u = up.userdata
                self.ipfix_samples.append(
                    (u[4], up.in_port, int.from_bytes(u[5:9], "big"), bool(u[9]), up.packet)
                )
            else:
                self.ipfix_dropped += 1
            return
        if up.reason == "action" and up.userdata[:4] == SFLOW_USERDATA:
            if len(self.sflow_samples) < MAX_SFLOW_SAMPLES:
                n, out = up.userdata[4:6], up.userdata[6:10]
                self.sflow_samples.append(
                    (up.in_port, int.from_bytes(n, "big"), int.from_bytes(out, "big"), up.packet)
                )
            else:
                self.sflow_dropped += 1
            return
        if up.reason != "miss":
            info = decode_userdata(up.userdata) if up.reason == "action" else None
            if info is not None:
                self.n_packet_ins += 1
                self.packet_ins.append(
                    PacketInEvent(
                        up.in_port,
                        up.packet,
                        info.reason,
                        info.table_id,
                        info.cookie,
                        info.max_len,
                        info.userdata,
                        info.fields,
                        info.continuation,
                    )
                )
            return
        x = self._xlate(up.key)
        if x.learn is not None:
            vlan, src, port = x.learn
            self.mac.learn(vlan, src, port, now)
        if len(self.revalidator.ukeys) < self.flow_limit:
            self.revalidator.install(Match.of(up.key, x.mask), x, now)
        else:
            self.n_flow_limit_hit += 1
        for c in x.credits:
            c.credit(1, len(up.packet), now)  # type: ignore[attr-defined]
        if self.of.credited is not None:
            self.of.credited.update(x.credits)
        if x.actions:
            self.datapath.execute(up.packet, up.in_port, x.actions, up.key)

    def _poll_links(self) -> None:
        changes: list[tuple[int, PortView | None, PortView | None]] = []
        dp_ports = self.datapath.ports()
        for it in self._ifaces.values():
            dpp = dp_ports.get(it.ofport)
            up = dpp is not None and dpp.link_up
            if self._link.get(it.ofport) == up:
                continue
            self._link[it.ofport] = up
            self.link_resets[it.name] = self.link_resets.get(it.name, 0) + 1
            self.link_seq += 1
            old = it.view
            admin_up = self._admin_up(it.name)
            it.view = self._of_override(
                PortView(old.ofport, old.name, old.vlan, admin_up, admin_up and up)
            )
            changes.append((it.ofport, old, it.view))
        if changes:
            self._publish_ports()
            self._revalidate_ports(changes)

    def next_wakeup(self, now: float) -> float | None:
        if (
            self._more_upcalls
            or self.mac.dirty
            or self._mac_reval
            or self.revalidator.sweeping
            or self._dirty_tables
            or self._dirty_groups
        ):
            return now
        t = self.mac.next_expiry()
        for bond in self.bonds.values():
            b = bond.next_wakeup(now)
            if b is not None:
                t = b if t is None else min(t, b)
        s = self.stp.next_wakeup() if self.stp is not None else None
        if s is not None:
            t = s if t is None else min(t, s)
        e = self.of.next_expiry()
        if e is not None:
            t = e if t is None else min(t, e)
        if len(self.revalidator) or self._next_sweep == 0.0:
            t = self._next_sweep if t is None else min(t, self._next_sweep)
        return t

    # Management ---------------------------------------------------------------------
    def fdb_show(self) -> str:
        return self.mac.show(self._now)

    def fdb_flush(self, port: int | None = None, vlan: int | None = None) -> int:
        n = self.mac.flush(port, vlan)
        self._revalidate_macs()
        return n

    def dump_flows(self, now: float | None = None) -> str:
        t = self._now if now is None else now
        lines = []
        for f in self.datapath.flow_dump():
            s = f.stats
            used = "never" if not s.used else f"{max(0.0, t - s.used):.3f}s"
            lines.append(
                f"{format_match(f.match.key, f.match.mask)}, packets:{s.packets}, "
                f"bytes:{s.bytes}, used:{used}, actions:{format_actions(f.actions)}"
            )
        lines.sort()
        return "".join(line + "\n" for line in lines)

    def close(self) -> None:
        """Forget the bridge's state. Leaves the datapath (ports and flows) alone: the
        daemon owns it and decides whether to close it or hand it over."""
        self.revalidator.forget_all()
        self._ifaces.clear()

    # OpenFlow -----------------------------------------------------------------------
    def _of_changed(self, tables: set[int], groups: set[int]) -> None:
        """Note changed tables and groups; ``commit_openflow`` re-translates the
        megaflows that read them (once for a whole batch of flow-mods)."""
        self._dirty_tables |= tables
        self._whole_tables |= tables
        self._dirty_groups |= groups
        self._check_default()

    def _rules_changed(self, tables: set[int]) -> None:
        """Note tables whose rules changed by insert/replace/remove (each ``Table``
        remembers which): ``commit_openflow`` re-translates only the megaflows whose
        lookups there could match one of them (``oftable.lookups_touch``)."""
        self._dirty_tables |= tables
        self._check_default()

    def of_config_changed(self, tables: Iterable[int]) -> None:
        """Something ``tables``' translation reads besides their rules changed (a table's
        miss config): re-translate what went through them at the next commit."""
        self._of_changed(set(tables), set())

    def commit_openflow(self) -> int:
        """Re-translate the megaflows that read a changed table or group; returns how
        many were examined. Runs in ``run()``; call it before a barrier reply."""
        learned = self.of.take_learned()
        if learned:
            self._rules_changed(learned)  # learn actions added or changed rules
        if not self._dirty_tables and not self._dirty_groups:
            return 0
        rv = self.revalidator
        affected: set[UKey] = set()
        for t in self._dirty_tables:
            touched = self.of.tables[t].take_touched() if t < len(self.of.tables) else None
            cands = rv.for_dep(("t", t))
            if t in self._whole_tables or not touched:
                affected |= cands
                continue
            for uk in cands:
                if uk.lookups is None or lookups_touch(uk.lookups, t, touched):
                    affected.add(uk)
                else:
                    self.n_reval_spared += 1
        for g in self._dirty_groups:
            affected |= rv.for_dep(("g", g))
        self._dirty_tables = set()
        self._whole_tables = set()
        self._dirty_groups = set()
        if affected:
            rv.revalidate(affected)
        return len(affected)

    def flow_mod(self, fm: FlowMod, now: float) -> None:
        """Apply a flow-mod (raises RemoteProtocolError with the OFPT_ERROR to send)."""
        self._now = now
        if fm.command == FlowModCommand.ADD:
            self._make_room(fm, now)
        changed, removed = self.of.flow_mod(fm, now)
        self.flow_removed += removed
        self._rules_changed(changed)

    def _make_room(self, fm: FlowMod, now: float) -> None:
        """Flow_Table flow_limit (as Open vSwitch): a rule that would grow a full table
        is refused with OFPFMFC_TABLE_FULL, or with overflow_policy=evict (or an OpenFlow
        table-mod's eviction flag, ``of_evict``) makes room by evicting a rule that has a
        timeout (from the largest eviction group if the table has ``groups``,
        hitless.ofproto.eviction; then the lowest importance, then the soonest to expire);
        rules without a timeout are never evicted. Replacing an existing rule (same priority
        and match) never counts."""
        ft = self.cfg.flow_tables.get(fm.table_id) if self.cfg is not None else None
        if ft is None or ft.flow_limit is None or fm.table_id >= len(self.of.tables):
            return
        table = self.of.tables[fm.table_id]
        if len(table) < ft.flow_limit:
            return
        ident = Rule(fm.table_id, fm.priority, fm.match, (), created=now).ident
        if any(r.ident == ident for r in table):
            return
        if ft.overflow_policy == "evict" or fm.table_id in self.of_evict:
            victims = [r for r in table if r.idle_timeout or r.hard_timeout]
            subfields = []
            for g in ft.groups:  # a bad one is reported in the Bridge's status
                with contextlib.suppress(ValueError):
                    subfields.append(parse_subfield(g))
            if victims and subfields:  # from the largest eviction group
                groups: dict[tuple[int, ...], list[Rule]] = {}
                for r in victims:
                    groups.setdefault(group_key(r.match, tuple(subfields)), []).append(r)
                victims = max(groups.values(), key=len)
            if victims:
                victim = min(victims, key=lambda r: (r.importance, r.expiry() or now))
                self.flow_removed += self.of.evict(victim)
                self._rules_changed({fm.table_id})
                return
        raise RemoteProtocolError(
            f"table {fm.table_id} is full ({ft.flow_limit} rules, Flow_Table flow_limit)",
            ErrorType.FLOW_MOD_FAILED,
            FlowModFailedCode.TABLE_FULL,
        )

    def group_mod(self, gm: GroupMod, now: float) -> None:
        self._now = now
        changed, removed = self.of.group_mod(gm, now)
        self.flow_removed += removed
        self._of_changed(changed, set(self.of.groups) | {gm.group_id})

    def meter_mod(self, mm: MeterMod, now: float) -> None:
        self._now = now
        self.settle_meters()  # a replaced meter's drops so far stay counted
        changed, removed = self.of.meter_mod(mm, now)
        self.flow_removed += removed
        self._of_changed(changed, set())
        self._sync_meters()

    def _sync_meters(self) -> None:
        """Make the datapath's meters those of the OpenFlow meter table."""
        dp = self.datapath
        want = self.of.meters
        for mid in [m for m in self._dp_meters if m not in want]:
            dp.meter_del(mid)
            del self._dp_meters[mid]
            self._dp_meter_seen.pop(mid, None)
        for mid, m in want.items():
            if self._dp_meters.get(mid) is m:
                continue
            dp.meter_set(mid, _dp_meter(m))
            self._dp_meters[mid] = m
            self._dp_meter_seen[mid] = [(0, 0)] * len(m.bands)

    def settle_meters(self) -> None:
        """Add what the datapath's meter bands applied to since the last call to the
        OpenFlow meters' band statistics (a drop band: packets dropped)."""
        for mid, m in self._dp_meters.items():
            cur = self.datapath.meter_stats(mid)
            if cur is None:
                continue
            seen = self._dp_meter_seen[mid]
            for i, ((p, b), (p0, b0)) in enumerate(zip(cur, seen, strict=False)):
                if i < len(m.band_stats):
                    m.band_stats[i][0] += p - p0
                    m.band_stats[i][1] += b - b0
            self._dp_meter_seen[mid] = list(cur)

    def of_transaction(self) -> OfState:
        """A snapshot to hand back to ``of_rollback`` if a bundle fails."""
        return self.of.snapshot()

    def of_rollback(self, snap: OfState) -> None:
        self.settle_meters()
        self.of.restore(snap)
        self._of_changed(set(range(len(self.of.tables))), set(self.of.groups))
        self._sync_meters()

    def packet_out(self, po: PacketOut, now: float) -> None:
        """Send a controller's packet through its actions (OFPP_TABLE: the pipeline)."""
        self._now = now
        in_port = po.in_port
        if in_port == OfPort.LOCAL:
            in_port = OFPP_LOCAL
        key = extract_key(po.data, in_port)
        x = self._recirc_noted(
            xlate_openflow(
                self.of, self.state, key, actions=po.actions, recirc=self.datapath.recirc
            )
        )
        for c in x.credits:
            c.credit(1, len(po.data), now)  # type: ignore[attr-defined]
        if self.of.credited is not None:
            self.of.credited.update(x.credits)
        if x.actions:
            self.datapath.execute(po.data, in_port, x.actions)

    def resume(
        self,
        packet: bytes,
        continuation: bytes,
        fields: Iterable[tuple[str, int, int | None]],
        now: float,
    ) -> None:
        """NXT_RESUME: go on with the actions after the ``controller(pause)`` that sent
        ``packet`` up (``fields``: the pipeline fields the controller handed back, as
        (name, value, mask or None)).
        ValueError if ``continuation`` is not one this switch made; RemoteProtocolError
        if the actions it carries would be refused in a flow-mod."""
        self._now = now
        cont = Continuation.decode(continuation)
        # The bytes came back from a controller: what they say to do is checked as a
        # flow-mod's actions would be (RemoteProtocolError: the controller's fault).
        self.of.validate_actions(cont.checked_actions())
        in_port = cont.in_port
        key = extract_key(packet, in_port)
        x = self._recirc_noted(
            xlate_resume(self.of, self.state, key, cont, fields, recirc=self.datapath.recirc)
        )
        for c in x.credits:
            c.credit(1, len(packet), now)  # type: ignore[attr-defined]
        if self.of.credited is not None:
            self.of.credited.update(x.credits)
        if x.actions:
            self.datapath.execute(packet, in_port, x.actions, key[: CT_OFF + 4] + cont.ct)

    def settle_counters(self) -> None:
        """Bring OpenFlow counters up to date with the datapath's flow statistics."""
        self.commit_openflow()
        self.revalidator.settle_all()
        self.settle_meters()

    def take_packet_ins(self) -> list[PacketInEvent]:
        out = list(self.packet_ins)
        self.packet_ins.clear()
        return out

    def take_flow_removed(self) -> list[Removed]:
        out, self.flow_removed = self.flow_removed, []
        return out

    def port_views(self) -> dict[int, PortView]:
        return dict(self.state.ports)

    def export_openflow(self, now: float) -> OpenFlow:
        """The OpenFlow state for a handoff (counters brought up to date first)."""
        self.revalidator.settle_all()
        self.settle_meters()
        return self.of.export_records(now)

    def import_openflow(self, of: OpenFlow, now: float) -> None:
        """Replace the OpenFlow state with ``export_openflow``'s; re-translates flows."""
        self._of_started = True
        self.of.import_records(of, now)
        self._check_default()
        self._dirty_tables.clear()
        self._whole_tables.clear()
        self._dirty_groups.clear()
        for t in self.of.tables:
            t.take_touched()
        self._sync_meters()  # before re-translation installs Meter actions
        self.revalidator.revalidate(self.revalidator.all())

    def start_openflow_journal(self) -> None:
        """A handoff's pre-copy was taken: track rule changes and credited counters."""
        self.of.start_journal()
        self.revalidator.credited = self.of.credited

    def take_openflow_journal(
        self,
    ) -> tuple[set[tuple[int, tuple[int, int, int, int, int]]], set[object], bool]:
        """What ``OfState.take_journal`` says; tracking stops."""
        self.revalidator.credited = None
        return self.of.take_journal()

    def apply_openflow_delta(
        self,
        removed: list[Rule],
        delta: OpenFlowDelta,
        counters: list[tuple[Rule, int, int, float]],
        now: float,
    ) -> None:
        """A handoff's final OpenFlow changes on top of its pre-copy (imported with
        ``import_openflow``): the rules ``removed`` (the pre-copy's that the delta names),
        the delta's added rules, groups, meters and table counters, and new counters of
        other rules."""
        of = self.of
        of.remove_rules(removed)
        for rec in delta.added:
            of.add_rule(Rule.from_record(rec, now))
        for rule, packets, nbytes, idle in counters:
            rule.packets, rule.bytes = packets, nbytes
            rule.last_used = now - idle
        of.set_groups_meters(delta.groups, delta.meters, delta.tables, now)
        for t in of.tables:
            t.version += 1
        self._of_started = True
        self._check_default()
        self._sync_meters()

    # Handoff ------------------------------------------------------------------------
    def ofport_numbers(self) -> dict[str, int]:
        """Every ofport number this bridge keeps: its interfaces' and the remembered ones."""
        out = self.ofports.export()
        out.update((it.name, it.ofport) for it in self._ifaces.values())
        return dict(sorted(out.items()))

    def adopt_learned(self, macs: list[MacEntryV1], ofports: dict[str, int], now: float) -> None:
        """A handoff's learned state (hitless.state.records): the MAC entries, ages
        counting back from ``now``, and the ofport numbers to keep (interfaces' and
        remembered ones)."""
        self._now = now
        self.ofports.import_(dict(ofports))
        self.mac.import_records(macs, now)
        self._check_mac_ports = True
        self._revalidate_macs()

    def state_hash(self) -> str:
        """A digest of the learned state (ages rounded to whole seconds)."""
        st = {
            "mac": [[r.vlan, r.mac.hex(), r.port, int(r.age)] for r in self.mac.records(self._now)],
            "ofports": self.ofport_numbers(),
        }
        blob = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()


_OFPPC_PORT_DOWN = 1 << 0
_OFPPC_NO_RECV = 1 << 2
_OFPPC_NO_FWD = 1 << 5
_DEPS_TABLE0: frozenset[tuple[object, ...]] = frozenset({("t", 0)})
_DEP_PORTS: tuple[object, ...] = ("ports",)


def _dp_meter(m: Meter) -> DpMeter:
    """An OpenFlow meter as the datapath enforces it (a band's burst size 0: the
    datapath's default, one second's worth of its rate)."""
    return DpMeter(
        bool(m.flags & MeterFlags.KBPS),
        tuple(DpMeterBand(b.rate, b.burst_size, b.type) for b in m.bands),
    )


def _by_name(it: _Iface) -> str:
    return it.name


def _int(text: str | None, default: int) -> int:
    """A non-negative integer setting from an other_config map (default if unset/bad)."""
    try:
        return max(0, int(text)) if text is not None else default
    except ValueError:
        return default


def _mac_int(text: str | None) -> int:
    """other_config:stp-system-id ("aa:bb:cc:dd:ee:ff") as an integer, 0 if unset/bad."""
    try:
        b = bytes.fromhex((text or "").replace(":", ""))
    except ValueError:
        return 0
    return int.from_bytes(b, "big") if len(b) == 6 else 0


def _all_outputs(actions: tuple[Any, ...]) -> list[int]:
    """Every port ``actions`` output to, inside datapath clones and check_pkt_len
    branches too."""
    ports: list[int] = []

    def note(a: Output) -> list[Any]:
        ports.append(a.port)
        return [a]

    _map_outputs(actions, note)
    return ports


def _map_outputs(actions: tuple[Any, ...], fn: Callable[[Output], list[Any]]) -> tuple[Any, ...]:
    """``actions`` with each Output replaced by ``fn(output)``, inside a datapath clone's
    actions and both check_pkt_len branches too (a clone holding a ct, an MTU check:
    their outputs leave the switch as any other)."""
    out: list[Any] = []
    for a in actions:
        if isinstance(a, Output):
            out += fn(a)
        elif isinstance(a, Clone):
            out.append(Clone(_map_outputs(a.actions, fn)))
        elif isinstance(a, CheckPktLen):
            out.append(CheckPktLen(a.size, _map_outputs(a.gt, fn), _map_outputs(a.le, fn)))
        else:
            out.append(a)
    return tuple(out)
