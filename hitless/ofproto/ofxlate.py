"""OpenFlow translation: a flow key walks the pipeline and becomes datapath actions plus
the megaflow mask they are valid for.

The walk follows OpenFlow 1.3.5 §5: start in table 0 with metadata 0 and an empty action
set; in each table the best rule's instructions run in the specification's order (meter,
apply-actions, clear-actions, write-actions, write-metadata, goto-table); a table miss
drops the packet (a table-miss rule is an ordinary priority-0 rule); at the end the action
set runs in its fixed order. Apply-actions take effect immediately, so later lookups see
rewritten fields.

Megaflow mask: in_port, plus every mask of every subtable any consulted table examined
(``Table.lookup``), plus the fields an action read (dec_ttl reads the TTL, a select group
hashes the addresses and ports, pop/push read the tag), plus NORMAL's own mask. Every
packet inside the megaflow therefore takes the same path. Field rewrites that would leak
into a later output (a group bucket, NORMAL's tag handling) are undone with explicit
rewrites; trailing rewrites without an output after them are dropped.

``Xlate.credits`` lists what each packet of the megaflow counts towards (rules, table
lookups, groups and their buckets, meters); ``Xlate.deps`` what the translation read:
("t", table_id), ("g", group_id), ("ports",) for flooding or liveness. Pure: reads
``OfState`` and ``SwitchState`` and changes neither.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Protocol

from hitless.config.model import OFPP_LOCAL
from hitless.datapath import actions as dp
from hitless.ofproto import ct_xlate, flowhash
from hitless.ofproto.fields import DP_MASK, LOCS, PREREQS, TUN_PRESENT
from hitless.ofproto.frozen import FrozenState, Item, Unroll, is_frozen_actions
from hitless.ofproto.oftable import (
    BucketCounter,
    FinCredit,
    Group,
    LearnCredit,
    LearnedFlow,
    OfState,
    Rule,
    Table,
)
from hitless.ofproto.xlate import SwitchState, Xlate, xlate_normal
from hitless.openflow import actions as of
from hitless.openflow import nx_actions as nx
from hitless.openflow import nx_ct
from hitless.openflow._wire import Reader
from hitless.openflow.actions import Action as OfAction
from hitless.openflow.constants import (
    ActionType,
    FlowModFlags,
    GroupType,
    OxmClass,
    OxmField,
    PacketInReason,
    Port,
)
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Match as OfMatch
from hitless.openflow.match import Oxm
from hitless.openflow.match import field as oxm_field
from hitless.openflow.nxm import FieldSpec, spec_by_name, spec_of
from hitless.packet.flow import (
    CT_OFF,
    ETH_TYPE_NSH,
    FIELDS,
    FRAG_LATER,
    KEY_LEN,
    MPLS_BOS,
    MPLS_MAX_LABELS,
    MPLS_TYPES,
    NSH_FIELDS,
    OVERLAYS,
    VLAN_PRESENT,
    full_mask,
)
from hitless.packet.flow import (
    field as key_field,
)
from hitless.packet.flow import (
    set_field as key_set,
)

__all__ = [
    "ACTION_XLATE",
    "MISS_NO_FLOW",
    "PACKET_IN_USERDATA",
    "PIN_FIELDS",
    "PacketInInfo",
    "Recorder",
    "decode_userdata",
    "encode_userdata",
    "Continuation",
    "bucket_actions",
    "xlate_openflow",
    "xlate_resume",
]

PACKET_IN_USERDATA = struct.Struct("!BBQH")  # reason, table_id, cookie, max_len
# A packet-in's reason in the userspace action for a miss without a table-miss rule
# (PacketInReason.NO_MATCH to the sessions of 1.0-1.2 only); OFPTC11_TABLE_MISS_*.
MISS_NO_FLOW = 0xFE
TABLE_MISS_CONTROLLER, TABLE_MISS_CONTINUE, TABLE_MISS_DROP = 0, 1, 2
MAX_DEPTH = 64  # nested groups / backward resubmits before the packet is dropped (as OVS)
MAX_RESUBMITS = MAX_DEPTH * MAX_DEPTH  # resubmits in one translation, likewise
_METADATA = LOCS["metadata"]
_ACTSET = LOCS["actset_output"]
_OFPP_UNSET = 0xFFFFFFF7  # OpenFlow 1.5 §7.2.3.7: the action set has no output action
_ACTSET_UNSET = _ACTSET.put(0, _OFPP_UNSET)


# Pipeline fields a packet-in reports when they are not zero (Open vSwitch's packet-in
# "metadata"), by their index in this tuple in the userspace action's data.
PIN_FIELDS = (
    "metadata",
    *(f"reg{i}" for i in range(16)),
    "pkt_mark",
    "tun_id",
    "tun_src",
    "tun_dst",
    "tun_flags",
)
_PIN_INDEX = {n: i for i, n in enumerate(PIN_FIELDS)}
_PIN_EXT = struct.Struct("!BH")  # format 1 (2: a continuation follows), userdata length
_U16 = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class PacketInInfo:
    """What a CONTROLLER action's userspace upcall carries: the packet-in's reason,
    table, cookie, max_len, the controller(userdata=...) bytes and the non-zero
    pipeline fields (registers, metadata...) at the time of the action."""

    reason: int
    table_id: int
    cookie: int
    max_len: int
    userdata: bytes = b""
    fields: tuple[tuple[str, int], ...] = ()
    continuation: bytes = b""  # controller(pause): what NXT_RESUME resumes (Continuation)


def encode_userdata(info: PacketInInfo) -> bytes:
    """The userspace action's data: 12 bytes when there is no userdata and no field (so
    a datapath with small userdata, ebpf, keeps the flow), else an extension."""
    base = PACKET_IN_USERDATA.pack(info.reason, info.table_id, info.cookie, info.max_len)
    if not info.userdata and not info.fields and not info.continuation:
        return base
    fmt = 2 if info.continuation else 1
    out = [base, _PIN_EXT.pack(fmt, len(info.userdata)), info.userdata, bytes((len(info.fields),))]
    for name, value in info.fields:
        nbytes = (LOCS[name].bits + 7) // 8
        out.append(bytes((_PIN_INDEX[name], nbytes)) + value.to_bytes(nbytes, "big"))
    if info.continuation:
        out.append(_U16.pack(len(info.continuation)) + info.continuation)
    return b"".join(out)


def decode_userdata(data: bytes) -> PacketInInfo | None:
    """The ``PacketInInfo`` of a CONTROLLER action's userspace upcall (None: not one)."""
    n = PACKET_IN_USERDATA.size
    if len(data) < n:
        return None
    reason, table_id, cookie, max_len = PACKET_IN_USERDATA.unpack_from(data)
    if len(data) == n:
        return PacketInInfo(reason, table_id, cookie, max_len)
    try:
        fmt, ulen = _PIN_EXT.unpack_from(data, n)
        pos = n + _PIN_EXT.size
        userdata = data[pos : pos + ulen]
        pos += ulen
        count = data[pos]
        pos += 1
        fields = []
        for _ in range(count):
            idx, nbytes = data[pos], data[pos + 1]
            fields.append(
                (PIN_FIELDS[idx], int.from_bytes(data[pos + 2 : pos + 2 + nbytes], "big"))
            )
            pos += 2 + nbytes
        cont = b""
        if fmt == 2:
            (clen,) = _U16.unpack_from(data, pos)
            cont = data[pos + 2 : pos + 2 + clen]
            pos += 2 + clen
    except (struct.error, IndexError):
        return None
    if fmt not in (1, 2) or pos != len(data) or len(userdata) != ulen:
        return None
    return PacketInInfo(reason, table_id, cookie, max_len, userdata, tuple(fields), cont)


def _packet_in(
    ctx: _Ctx, reason: int, max_len: int, userdata: bytes = b"", pause: bool = False
) -> None:
    fields = tuple(
        (n, v) for n in PIN_FIELDS if (v := LOCS[n].get(ctx.meta)) and LOCS[n].key_field is None
    )
    info = PacketInInfo(reason, ctx.table_id, ctx.cookie, max_len & 0xFFFF, userdata, fields)
    if pause:
        # Translation stops here; the actions after this one (at every resubmit level)
        # are gathered as it unwinds, and the continuation is written in at the end.
        ctx.pause = _Pause(len(ctx.acts), info, Continuation(
            ctx.table_id, ctx.cookie, ctx.in_port, ctx.meta, tuple(ctx.stack),
            ctx.cur[CT_OFF + 4 :], ()))  # fmt: skip
        ctx.mask |= _CT_MASK  # the continuation carries the packet's ct fields
        ctx.stopped = ctx.exited = True
    ctx.acts.append(dp.Userspace(encode_userdata(info)))


@dataclass(frozen=True, slots=True)
class Continuation:
    """What ``controller(pause)`` freezes and NXT_RESUME resumes: the table and cookie
    of the rule that paused, the pipeline's in_port, its registers and metadata (the
    pipeline-only region), the register stack, the packet's ct fields, and the actions
    left after the pause, innermost resubmit level first (Open vSwitch's continuation
    holds the same; its bytes are private to the switch that made them)."""

    table_id: int
    cookie: int
    in_port: int
    meta: int
    stack: tuple[int, ...]
    ct: bytes
    actions: tuple[Item, ...]
    action_set: tuple[of.Action, ...] = ()

    def checked_actions(self) -> tuple[of.Action, ...]:
        """Every OpenFlow action it would run (a controller's bytes: checked as a
        flow-mod's actions are)."""
        out = list(self.action_set)
        for it in self.actions:
            if isinstance(it, of.WriteActions):
                out.extend(it.actions)
            elif isinstance(it, OfAction):
                out.append(it)
        return tuple(out)

    def encode(self) -> bytes:
        if self.action_set or not all(isinstance(a, OfAction) for a in self.actions):
            # Format 2: the action set and the rule boundaries (write_actions...) too,
            # in the frozen-state encoding (format 1 stays the bytes of older builds).
            st = FrozenState(self.in_port, self.meta, self.stack, self.action_set, self.actions)
            head = _CONT.pack(2, self.table_id, self.cookie, self.in_port, len(self.ct))
            return head + self.ct + st.encode()
        meta = self.meta.to_bytes((self.meta.bit_length() + 7) // 8, "big")
        acts = of.encode_actions([a for a in self.actions if isinstance(a, OfAction)])
        out = [_CONT.pack(1, self.table_id, self.cookie, self.in_port, len(self.ct)), self.ct,
               _U16.pack(len(meta)), meta, bytes((len(self.stack),))]  # fmt: skip
        for v in self.stack:
            b = v.to_bytes((v.bit_length() + 7) // 8, "big")
            out.append(bytes((len(b),)) + b)
        out.append(_U16.pack(len(acts)) + acts)
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> Continuation:
        """ValueError if ``data`` is not a continuation of this format."""
        r = Reader(data)
        try:
            ver, table_id, cookie, in_port, nct = r.unpack(_CONT, "continuation")
            if ver not in (1, 2):
                raise ValueError(f"continuation format {ver}")
            ct = r.take(nct, "ct fields")
            if len(ct) != KEY_LEN - CT_OFF - 4:
                raise ValueError(f"continuation ct fields of {len(ct)} bytes")
            if ver == 2:
                st = FrozenState.decode(r.take(r.remaining()))
                return cls(table_id, cookie, in_port, st.meta, st.stack, ct, st.items,
                           st.action_set)  # fmt: skip
            (n,) = r.unpack(_U16)
            meta = int.from_bytes(r.take(n), "big")
            stack = []
            for _ in range(r.take(1)[0]):
                stack.append(int.from_bytes(r.take(r.take(1)[0]), "big"))
            (n,) = r.unpack(_U16)
            actions = of.parse_actions(r.sub(n, "continuation actions"))
            r.expect_end("continuation")
        except RemoteProtocolError as e:
            raise ValueError(str(e)) from None
        if len(ct) != KEY_LEN - CT_OFF - 4:
            raise ValueError(f"continuation ct fields of {len(ct)} bytes")
        return cls(table_id, cookie, in_port, meta, tuple(stack), ct, actions)


_CONT = struct.Struct("!BBQIB")  # format, table_id, cookie, in_port, ct bytes
_CT_MASK = (1 << ((KEY_LEN - CT_OFF - 4) * 8)) - 1


@dataclass
class _Pause:
    index: int  # of the placeholder Userspace action in ctx.acts
    info: PacketInInfo
    cont: Continuation
    rest: list[Item] = field(default_factory=list)


class Recorder(Protocol):
    """What ofproto/trace hands translation to hear its steps."""

    def event(self, kind: str, **details: Any) -> None: ...


def _imask(*names: str) -> int:
    return int.from_bytes(full_mask(*names), "big")


_IN_PORT = _imask("in_port", "recirc_id")
_TCI = _imask("vlan_tci")
_TTL = _imask("eth_type", "ip_ttl")
_ETH_TYPE = _imask("eth_type")
_NSH_TTL = _imask("nsh_ttl")
_PROTO = _imask("eth_type", "ip_proto")
_ND = _imask("eth_type", "ip_proto", "tp_src", "tp_dst")
_FRAG = _imask("ip_frag")
_FIN_RST = 0x005 << ((KEY_LEN - FIELDS["tcp_flags"][0] - 2) * 8)
_NO_SPEC = FieldSpec("?", 0, False, ())

# set_field OXM -> (flow-key field, value bits shift, mask within the key field or None).
# The key field means what hitless.packet.flow makes it mean for the packet: ipv4_src is
# also the ARP sender address, tp_src also the ICMP type, ip_proto the ARP opcode, so a
# rewrite happens only when the packet is of the OXM's kind (_SET_PREREQ).
_SET: dict[int, tuple[str, int, int | None]] = {
    OxmField.ETH_DST: ("eth_dst", 0, None),
    OxmField.ETH_SRC: ("eth_src", 0, None),
    OxmField.VLAN_VID: ("vlan_tci", 0, 0x0FFF),
    OxmField.VLAN_PCP: ("vlan_tci", 13, 0xE000),
    OxmField.IPV4_SRC: ("ipv4_src", 0, None),
    OxmField.IPV4_DST: ("ipv4_dst", 0, None),
    OxmField.IP_DSCP: ("ip_tos", 2, 0xFC),
    OxmField.IP_ECN: ("ip_tos", 0, 0x03),
    OxmField.TCP_SRC: ("tp_src", 0, None),
    OxmField.TCP_DST: ("tp_dst", 0, None),
    OxmField.UDP_SRC: ("tp_src", 0, None),
    OxmField.UDP_DST: ("tp_dst", 0, None),
    OxmField.ICMPV4_TYPE: ("tp_src", 0, None),
    OxmField.ICMPV4_CODE: ("tp_dst", 0, None),
    OxmField.ARP_OP: ("ip_proto", 0, None),
    OxmField.ARP_SPA: ("ipv4_src", 0, None),
    OxmField.ARP_TPA: ("ipv4_dst", 0, None),
    OxmField.ARP_SHA: ("arp_sha", 0, None),
    OxmField.ARP_THA: ("arp_tha", 0, None),
    OxmField.IPV6_SRC: ("ipv6_src", 0, None),
    OxmField.IPV6_DST: ("ipv6_dst", 0, None),
    OxmField.IPV6_FLABEL: ("ipv6_label", 0, None),
    OxmField.ICMPV6_TYPE: ("tp_src", 0, None),
    OxmField.ICMPV6_CODE: ("tp_dst", 0, None),
    OxmField.IPV6_ND_TARGET: ("nd_target", 0, None),
    OxmField.IPV6_ND_SLL: ("arp_sha", 0, None),
    OxmField.IPV6_ND_TLL: ("arp_tha", 0, None),
}
_V4, _V6, _ARP, _RARP = 0x0800, 0x86DD, 0x0806, 0x8035
# OXM -> (EtherTypes, IP protocol or None, ICMPv6 types or None) the packet must have
# for the rewrite to apply (OpenFlow 1.3.5 §7.2.3.8 prerequisites).
_SET_PREREQ: dict[int, tuple[tuple[int, ...], int | None, tuple[int, ...] | None]] = {
    OxmField.IPV4_SRC: ((_V4,), None, None),
    OxmField.IPV4_DST: ((_V4,), None, None),
    OxmField.IP_DSCP: ((_V4, _V6), None, None),
    OxmField.IP_ECN: ((_V4, _V6), None, None),
    OxmField.TCP_SRC: ((_V4, _V6), 6, None),
    OxmField.TCP_DST: ((_V4, _V6), 6, None),
    OxmField.UDP_SRC: ((_V4, _V6), 17, None),
    OxmField.UDP_DST: ((_V4, _V6), 17, None),
    OxmField.ICMPV4_TYPE: ((_V4,), 1, None),
    OxmField.ICMPV4_CODE: ((_V4,), 1, None),
    OxmField.ARP_OP: ((_ARP, _RARP), None, None),
    OxmField.ARP_SPA: ((_ARP, _RARP), None, None),
    OxmField.ARP_TPA: ((_ARP, _RARP), None, None),
    OxmField.ARP_SHA: ((_ARP, _RARP), None, None),
    OxmField.ARP_THA: ((_ARP, _RARP), None, None),
    OxmField.IPV6_SRC: ((_V6,), None, None),
    OxmField.IPV6_DST: ((_V6,), None, None),
    OxmField.IPV6_FLABEL: ((_V6,), None, None),
    OxmField.ICMPV6_TYPE: ((_V6,), 58, None),
    OxmField.ICMPV6_CODE: ((_V6,), 58, None),
    OxmField.IPV6_ND_TARGET: ((_V6,), 58, (135, 136)),
    OxmField.IPV6_ND_SLL: ((_V6,), 58, (135,)),
    OxmField.IPV6_ND_TLL: ((_V6,), 58, (136,)),
}
# Fields a translation may rewrite with SetField, restored after a group bucket or NORMAL
# (not the metadata from recirc_id on: a ct action clears the ct fields of the flow
# translation sees, never the datapath's packet).
_NSH_OFF = (FIELDS["nsh_flags"][0], FIELDS["nsh_c4"][0] + 4)  # the bytes its header fills
_RESTORABLE = tuple(
    n
    for n in FIELDS
    if n not in ("in_port", "eth_type", "vlan_tci", "ip_frag", "tcp_flags")
    and n not in OVERLAYS
    and FIELDS[n][0] < CT_OFF
)
_ND_EXT = ("nd_reserved", "nd_options_type")
_NSH_RESTORABLE = (
    *(n for n in _RESTORABLE if not _NSH_OFF[0] <= FIELDS[n][0] < _NSH_OFF[1]),
    *NSH_FIELDS,
)
_ND_TYPE = FIELDS["tp_src"][0] + 1  # the ICMPv6 type's byte
_LSE = tuple(f"mpls_lse{i}" for i in range(MPLS_MAX_LABELS))
_LSE_MASK = [_imask(n) for n in _LSE]
_BOS_MASK = [MPLS_BOS << ((KEY_LEN - FIELDS[n][0] - 4) * 8) for n in _LSE]
# The L3 and L4 part of the key (from ipv4_src to nd_target): what push_mpls hides.
_L3_OFF, _L3_END = FIELDS["ipv4_src"][0], FIELDS["recirc_id"][0]

# Action set order (§5.10): one slot per action type (set_field: per field).
_SET_ORDER = {
    ActionType.POP_VLAN: 1,
    ActionType.POP_MPLS: 2,
    ActionType.PUSH_MPLS: 3,
    ActionType.PUSH_VLAN: 4,
    ActionType.DEC_NW_TTL: 6,
    ActionType.DEC_MPLS_TTL: 6,
    ActionType.SET_MPLS_TTL: 7,
    ActionType.SET_FIELD: 7,
    ActionType.SET_NW_TTL: 7,
    ActionType.GROUP: 9,
    ActionType.OUTPUT: 10,
}
_INST_ORDER = of.INSTRUCTION_ORDER  # §5.9
_OUTPUT_SLOT = (_SET_ORDER[ActionType.OUTPUT], -ActionType.OUTPUT)  # _set_slot's


class TableHit:
    """Credits a table's lookup/matched counters."""

    __slots__ = ("table", "matched")

    def __init__(self, table: Table, matched: bool) -> None:
        self.table = table
        self.matched = matched

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        self.table.lookups += packets
        if self.matched:
            self.table.matched += packets


@dataclass
class _Ctx:
    of: OfState
    sw: SwitchState
    key: bytes  # the original key
    cur: bytes  # the packet as rewritten so far
    in_port: int
    mask: int = _IN_PORT
    acts: list[dp.Action] = field(default_factory=list)
    credits: list[object] = field(default_factory=list)
    deps: set[tuple[object, ...]] = field(default_factory=set)
    # (table_id, key, bits examined) per table lookup; None once a table was read some
    # other way (Xlate.lookups)
    lookups: list[tuple[int, int, int]] | None = field(default_factory=list)
    learn: tuple[int, bytes, int] | None = None
    dst: tuple[int, bytes] | None = None
    flood_vlan: int | None = None
    out_ports: list[int] = field(default_factory=list)
    stopped: bool = False
    exited: bool = False  # an ``exit`` action: nothing more runs but the action set
    depth: int = 0
    resubmits: int = 0
    error: str | None = None  # a translation error: the packet is dropped
    # the pipeline-only region of the pipeline key (registers, metadata...; fields.LOCS)
    meta: int = 0
    action_set: dict[tuple[int, int], OfAction] = field(default_factory=dict)
    stack: list[int] = field(default_factory=list)  # push/pop
    recorder: Recorder | None = None
    rule: Rule | None = None  # the rule whose actions run (fin_timeout shortens its timeouts)
    table_id: int = 0
    cookie: int = 0
    miss_rule: bool = False  # the rule is a table-miss entry (priority 0, matches all)
    # Recirculation: the ids known so far (the datapath's map) and those this
    # translation froze (ofproto.ct_xlate).
    recirc_known: Mapping[int, bytes] = field(default_factory=dict)
    frozen: list[tuple[int, bytes]] = field(default_factory=list)
    pause: _Pause | None = None  # a controller(pause) stopped the translation
    # check_pkt_larger: the values the first checks take (the translation is run once
    # per branch) and where an unforced one stopped it (acts, credits, pkt_len, events).
    forced: tuple[int, ...] = ()
    n_checks: int = 0
    fork: tuple[int, int, int, int] | None = None
    queue: int | None = None  # set_queue's queue for later outputs (None: pop_queue)
    # pop_mpls left a packet whose inner headers the key does not show: the next lookup
    # recirculates (the datapath parses them), as Open vSwitch does
    was_mpls: bool = False
    # Freezing (after such a pop): the actions left, gathered as translation unwinds
    # (hitless.ofproto.frozen); the datapath recirculates and they run after
    freeze: list[Item] | None = None
    priority: int = 0  # the socket priority the emitted actions give outputs so far
    # a trace: the pipeline fields started as given (dp_hash among them: a select group
    # that needs it and has none stops, as Open vSwitch's trace does), none computed
    traced: bool = False

    # -- field rewrites --
    def set_key(self, name: str, value: int) -> None:
        self.cur = key_set(self.cur, name, value)

    def restore(self, saved: bytes) -> None:
        """Emit the rewrites that take the packet back to ``saved``."""
        if saved == self.cur:
            return
        self._restore_mpls(saved)
        old_tci = key_field(saved, "vlan_tci")
        new_tci = key_field(self.cur, "vlan_tci")
        restorable = _RESTORABLE
        if saved[_ND_TYPE] in (135, 136) and key_field(saved, "ip_proto") == 58:
            restorable += _ND_EXT  # ICMPv6 ND (the key's tp_src): over ipv4_src/tcp_flags
        elif key_field(saved, "eth_type") == ETH_TYPE_NSH:
            restorable = _NSH_RESTORABLE  # its header over the IP addresses' bytes
        for name in restorable:
            off, size = FIELDS[name]
            if saved[off : off + size] != self.cur[off : off + size]:
                self.acts.append(dp.SetField(name, saved[off : off + size]))
        if old_tci != new_tci:
            if not old_tci & VLAN_PRESENT:
                self.acts.append(dp.PopVlan())
            elif not new_tci & VLAN_PRESENT:
                self.acts.append(dp.PushVlan(old_tci & ~VLAN_PRESENT & 0xFFFF))
            else:
                self.acts.append(dp.SetField("vlan_tci", (old_tci & 0xEFFF).to_bytes(2, "big")))
        self.cur = saved

    def _restore_mpls(self, saved: bytes) -> None:
        """Undo label stack changes (pushes popped, pops pushed back, the top entry
        rewritten); the key then shows ``saved``'s headers."""
        old_et, new_et = key_field(saved, "eth_type"), key_field(self.cur, "eth_type")
        if old_et not in MPLS_TYPES and new_et not in MPLS_TYPES:
            return
        n_old = _mpls_count(self, saved)
        n_new = _mpls_count(self, self.cur) if new_et in MPLS_TYPES else 0
        if new_et in MPLS_TYPES and n_new > n_old:
            for i in range(n_new - n_old):
                last = i == n_new - n_old - 1
                self.acts.append(dp.PopMpls(old_et if last else new_et))
        elif n_new < n_old:  # popped: the entries go back, deepest first
            for i in reversed(range(n_old - n_new)):
                self.mask |= _LSE_MASK[i]
                self.acts.append(dp.PushMpls(key_field(saved, _LSE[i]), old_et))
        elif old_et in MPLS_TYPES and key_field(saved, _LSE[0]) != key_field(self.cur, _LSE[0]):
            self.mask |= _LSE_MASK[0]
            self.acts.append(dp.SetField(_LSE[0], saved[28:32]))
        self.cur = key_set(self.cur, "eth_type", old_et)


def xlate_openflow(
    of_state: OfState,
    sw: SwitchState,
    key: bytes,
    actions: tuple[of.Action, ...] | None = None,
    recorder: Recorder | None = None,
    recirc: Mapping[int, bytes] | None = None,
    start: int | None = None,
) -> Xlate:
    """Translate ``key`` through the pipeline (or, for a packet-out, through ``actions``).
    ``recorder`` (ofproto/trace) hears each step as ``recorder.event(kind, **details)``:
    ``table`` (table_id, rule or None, key: the pipeline key), ``instruction`` (inst),
    ``goto`` / ``resubmit`` ... ``resubmit_end`` (table_id), ``action`` (action, depth),
    ``action_set`` (actions), ``bucket`` ... ``bucket_end`` (index), ``end`` (key: the
    packet as the pipeline left it), ``group`` (group_id,
    chosen), ``normal`` (xlate), ``drop`` (reason).
    ``recirc``: the recirculation ids in use (the datapath's map): a key with a
    recirc_id resumes the frozen state it stands for (ofproto.ct_xlate).
    ``start`` (ofproto/trace): the pipeline fields the packet starts with (registers,
    metadata, pkt_mark, tunnel, dp_hash; fields.LOCS) as given, none computed; None: a
    packet, whose fields start at zero and whose dp_hash a select group computes as
    the datapath would."""
    in_port = int.from_bytes(key[0:4], "big")
    rid = key_field(key, "recirc_id")
    frozen = None
    if rid and actions is None:
        frozen = (recirc or {}).get(rid)
        if frozen is None:  # not ours (or forgotten): Open vSwitch drops it too
            return Xlate((), _IN_PORT.to_bytes(KEY_LEN, "big"), "drop: unknown recirc_id")

    def run(forced: tuple[int, ...], rec: _Skip | None) -> _Ctx:
        ctx = _Ctx(of_state, sw, key, key, in_port, recorder=rec, forced=forced)
        if start is not None:
            ctx.meta, ctx.traced = start, True
        if recirc is not None:
            ctx.recirc_known = recirc
        if frozen is not None and is_frozen_actions(frozen):
            _thaw(ctx, FrozenState.decode(frozen))
        elif frozen is not None:
            table_id, ctx.in_port, ctx.meta = ct_xlate.decode_frozen(frozen)
            _pipeline(ctx, table_id)
        elif actions is None:
            _pipeline(ctx, 0)
        else:
            ctx.cookie = (1 << 64) - 1  # a packet-out's packet-ins carry no rule's cookie
            _apply(ctx, actions)
        return ctx

    return _forked(run, recorder)


def xlate_resume(
    of_state: OfState,
    sw: SwitchState,
    packet_key: bytes,
    cont: Continuation,
    fields: Iterable[tuple[str, int, int | None]] = (),
    recirc: Mapping[int, bytes] | None = None,
) -> Xlate:
    """Go on after a ``controller(pause)``: ``packet_key`` is the resumed packet's key
    (its in_port the continuation's), ``fields`` the pipeline fields the controller
    handed back as (name, value, mask or None) (NXT_RESUME's metadata: they replace the
    frozen values; Open vSwitch 1.5 sends registers in pairs, as masked xregs)."""
    key = packet_key[: CT_OFF + 4] + cont.ct
    given = tuple(fields)

    def run(forced: tuple[int, ...], rec: _Skip | None) -> _Ctx:
        ctx = _Ctx(of_state, sw, key, key, cont.in_port, recorder=rec, forced=forced)
        if recirc is not None:
            ctx.recirc_known = recirc
        ctx.table_id, ctx.cookie, ctx.meta = cont.table_id, cont.cookie, cont.meta
        ctx.stack = list(cont.stack)
        ctx.action_set = {_set_slot(a): a for a in cont.action_set}
        for name, value, mask in given:
            loc = LOCS.get(name)
            if loc is not None and loc.key_field is None:
                ctx.meta = loc.put(ctx.meta, value, mask)
        _apply(ctx, cont.actions)
        return ctx

    return _forked(run, None)


class _Skip:
    """A recorder that passes on events after the first ``n`` (a check_pkt_larger
    branch re-runs the translation: its trace goes on from the fork)."""

    __slots__ = ("inner", "n", "seen")

    def __init__(self, inner: Recorder, n: int) -> None:
        self.inner, self.n, self.seen = inner, n, 0

    def event(self, kind: str, **details: Any) -> None:
        self.seen += 1
        if self.seen > self.n:
            self.inner.event(kind, **details)


MAX_CHECKS = 8  # check_pkt_larger forks in one translation (2**8 runs at most)


def _forked(run: Callable[[tuple[int, ...], _Skip | None], _Ctx], recorder: Recorder | None) -> Xlate:
    """Translate with ``run``; at each ``check_pkt_larger`` the translation stops (the
    fork), and runs again once per branch with the check's result forced (1: larger,
    0: not), from the start: translation is a pure function of its inputs, so each
    branch's actions begin with the ones before the fork. The datapath gets those,
    then ``check_pkt_len(size, gt(rest of branch 1), le(rest of branch 0))``. The
    megaflow mask covers what either branch read, and every packet credits the rules
    of both branches, as Open vSwitch 3.1 counts them (measured: a rule only the
    larger packets reach counts the smaller ones too)."""

    def go(forced: tuple[int, ...], skip: int) -> Xlate:
        ctx = run(forced, _Skip(recorder, skip) if recorder is not None else None)
        if ctx.fork is None:
            return _finish(ctx)
        at, cat, size, events = ctx.fork
        gt, le = go((*forced, 1), events), go((*forced, 0), events)
        acts: tuple[dp.Action, ...] = tuple(ctx.acts[:at])
        if gt.actions[at:] or le.actions[at:]:  # else: nothing to choose between
            acts += (dp.CheckPktLen(size, gt.actions[at:], le.actions[at:]),)
        mask = int.from_bytes(gt.mask, "big") | int.from_bytes(le.mask, "big")
        return Xlate(
            acts,
            mask.to_bytes(KEY_LEN, "big"),
            "openflow" if acts else "drop: openflow",
            gt.learn or le.learn,
            gt.dst or le.dst,
            gt.flood_vlan if gt.flood_vlan is not None else le.flood_vlan,
            tuple(dict.fromkeys((*gt.out_ports, *le.out_ports))),
            credits=(*gt.credits, *le.credits[cat:]),
            deps=gt.deps | le.deps,
            lookups=(
                gt.lookups + le.lookups
                if gt.lookups is not None and le.lookups is not None
                else None
            ),
            recirc=tuple(dict.fromkeys((*gt.recirc, *le.recirc))),
        )

    return go((), 0)


def _seal_pause(ctx: _Ctx) -> None:
    """Write a pending ``controller(pause)``'s continuation (the actions gathered so far)
    into its userspace action; translation goes on from here (clone, group bucket)."""
    p = ctx.pause
    if p is None:
        return
    aset = tuple(a for _, a in sorted(ctx.action_set.items(), key=lambda kv: kv[0]))
    cont = replace(p.cont, actions=tuple(p.rest), action_set=aset)
    info = replace(p.info, continuation=cont.encode())
    ctx.acts[p.index] = dp.Userspace(encode_userdata(info))
    ctx.pause = None


def _finish(ctx: _Ctx) -> Xlate:
    recorder = ctx.recorder
    if ctx.pause is not None:
        _seal_pause(ctx)
        ctx.action_set.clear()  # it runs after the resume, not now
    if ctx.freeze is not None and ctx.error is None:
        _seal_freeze(ctx)
        ctx.action_set.clear()  # it went with the frozen actions
    if ctx.action_set and ctx.error is None:
        ctx.stopped = False
        _run_action_set(ctx)
    if recorder is not None:
        recorder.event("end", key=ctx.cur, meta=ctx.meta)
    acts = ctx.acts
    if ctx.error is not None:
        acts.clear()  # too deep, too many resubmits: Open vSwitch drops the packet
    # Rewrites after the last output change nothing anyone sees (a ct commits, a
    # recirculation continues elsewhere, a clone or a length check holds its own
    # outputs: they stay).
    while acts and not isinstance(
        acts[-1], (dp.Output, dp.Userspace, dp.Ct, dp.Recirc, dp.Clone, dp.CheckPktLen)
    ):
        acts.pop()
    mask = ctx.mask.to_bytes(KEY_LEN, "big")
    reason = "openflow" if acts else f"drop: openflow{': ' + ctx.error if ctx.error else ''}"
    return Xlate(
        tuple(acts),
        mask,
        reason,
        ctx.learn,
        ctx.dst,
        ctx.flood_vlan,
        tuple(dict.fromkeys(ctx.out_ports)),
        credits=tuple(ctx.credits),
        deps=frozenset(ctx.deps),
        lookups=tuple(ctx.lookups) if ctx.lookups is not None else None,
        recirc=tuple(ctx.frozen),
    )


def _pipeline(ctx: _Ctx, table_id: int, lookup_port: int | None = None) -> None:
    """Look the packet up in ``table_id`` (as if it came in on ``lookup_port``, when
    given: that first lookup only) and run the rule's instructions, following
    goto-table; write-actions go into the translation's action set (run at the end)."""
    tables = ctx.of.tables
    while True:
        if ctx.was_mpls:  # a lookup needs the inner headers: it runs after recirculating
            port = _NX_IN_PORT if lookup_port is None else lookup_port & 0xFFFF
            if lookup_port == OFPP_LOCAL:
                port = 0xFFFE
            _start_freeze(ctx, [nx.Resubmit(in_port=port, table=table_id)])
            return
        table = tables[table_id]
        ctx.deps.add(("t", table_id))
        old_port = ctx.in_port
        if lookup_port is not None:
            _set_in_port(ctx, lookup_port)
        pk = int.from_bytes(ctx.cur, "big") | ctx.meta | _actset_bits(ctx)
        if lookup_port is not None:
            _set_in_port(ctx, old_port)
            lookup_port = None
        rule, seen, _seen_md = table.lookup(pk, 0)
        if ctx.lookups is not None:
            ctx.lookups.append((table_id, pk, seen))
        if ctx.recorder is not None:
            ctx.recorder.event("table", table_id=table_id, rule=rule, key=pk)
        ctx.mask |= seen & DP_MASK  # registers and metadata never reach the datapath
        ctx.credits.append(TableHit(table, rule is not None))
        if rule is None:
            miss = ctx.of.table_miss.get(table_id)
            if miss == TABLE_MISS_CONTINUE and table_id + 1 < len(tables):
                if ctx.recorder is not None:
                    ctx.recorder.event("goto", table_id=table_id + 1)
                table_id += 1  # a 1.1/1.2 table set to continue: the next table
                continue
            _table_miss(ctx, table_id, miss)
            return
        ctx.credits.append(rule)
        ctx.table_id, ctx.cookie, ctx.rule = table_id, rule.cookie, rule
        ctx.miss_rule = rule.priority == 0 and not rule.mask
        goto = None
        insts = sorted(rule.instructions, key=_inst_order)
        for n, inst in enumerate(insts):
            if ctx.recorder is not None and not isinstance(inst, of.ApplyActions):
                ctx.recorder.event("instruction", inst=inst)
            if isinstance(inst, of.MeterInstruction):
                m = ctx.of.meters.get(inst.meter_id)
                if m is not None:
                    # The megaflow caches the path; the datapath meters each packet.
                    ctx.credits.append(m)
                    ctx.acts.append(dp.Meter(inst.meter_id))
            elif isinstance(inst, of.ApplyActions):
                _apply(ctx, inst.actions)
                pending = ctx.pause.rest if ctx.pause is not None else ctx.freeze
                if pending is not None:  # the rule's other instructions run after it
                    _unroll_to(ctx, pending)
                    pending.extend(_frozen_instructions(insts[n + 1 :]))
                if ctx.stopped:
                    return
            elif isinstance(inst, of.ClearActions):
                ctx.action_set.clear()
            elif isinstance(inst, of.WriteActions):
                for a in inst.actions:
                    ctx.action_set[_set_slot(a)] = a
            elif isinstance(inst, of.WriteMetadata):
                ctx.meta = _METADATA.put(ctx.meta, inst.metadata, inst.mask)
            elif isinstance(inst, of.GotoTable):
                goto = inst.table_id
        if goto is None or goto <= table_id:
            return
        if ctx.recorder is not None:
            ctx.recorder.event("goto", table_id=goto)
        table_id = goto


def _table_miss(ctx: _Ctx, table_id: int, miss: int | None) -> None:
    """No rule matched and no table-miss rule is there, as Open vSwitch 3.1 does it: a
    table set to drop (1.1/1.2) drops; otherwise (the default, controller, or continue
    past the last table) a packet-in with reason no_match goes to the sessions of 1.0-1.2
    (``MISS_NO_FLOW``: 1.3+ expect table-miss rules, §5.4), when one listens."""
    if miss != TABLE_MISS_DROP and ctx.of.miss_packet_in:
        ctx.table_id, ctx.cookie = table_id, 0
        _packet_in(ctx, MISS_NO_FLOW, 0xFFFF)
        return
    if ctx.recorder is not None:
        ctx.recorder.event("drop", reason=f"no rule matched in table {table_id}")


def _actset_output(ctx: _Ctx) -> int:
    """``actset_output``: the port of the action set's output action, else OFPP_UNSET."""
    a = ctx.action_set.get(_OUTPUT_SLOT) if ctx.action_set else None
    return _port32(a.port) if isinstance(a, of.Output) else _OFPP_UNSET


def _actset_bits(ctx: _Ctx) -> int:
    if not ctx.action_set:
        return _ACTSET_UNSET
    return _ACTSET.put(0, _actset_output(ctx))


def _run_action_set(ctx: _Ctx) -> None:
    ordered = sorted(ctx.action_set.items(), key=lambda kv: kv[0])
    ctx.action_set = {}
    has_group = any(slot[0] == _SET_ORDER[ActionType.GROUP] for slot, _ in ordered)
    todo = tuple(
        a for slot, a in ordered if not (has_group and slot[0] == _SET_ORDER[ActionType.OUTPUT])
    )
    if ctx.recorder is not None:
        ctx.recorder.event("action_set", actions=todo)
    _apply(ctx, todo)


def _resubmit(ctx: _Ctx, a: nx.Resubmit) -> None:
    """``resubmit(port,table)``: the rule ``table`` matches runs here, as if the packet
    came in on ``port``; going back to an earlier (or the same) table nests deeper."""
    table_id = ctx.table_id if a.table == 0xFF else a.table
    if ctx.resubmits >= MAX_RESUBMITS:
        ctx.error = f"over {MAX_RESUBMITS} resubmit actions"
    deepens = table_id <= ctx.table_id
    if deepens and ctx.depth >= MAX_DEPTH:  # the 65th nested lookup, as Open vSwitch 3.1
        ctx.error = f"over max translation depth {MAX_DEPTH}"
    if ctx.error is not None:
        if ctx.recorder is not None:
            ctx.recorder.event("drop", reason=ctx.error)
        ctx.stopped = True
        return
    if ctx.recorder is not None:
        ctx.recorder.event("resubmit", table_id=table_id)
    ctx.resubmits += 1
    ctx.depth += deepens
    old_table, old_cookie, old_miss, old_rule = ctx.table_id, ctx.cookie, ctx.miss_rule, ctx.rule
    # The given port is the lookup's only: the rule's actions see the packet's in_port
    # again (Open vSwitch restores it right after the lookup; output:in_port, NORMAL).
    _pipeline(ctx, table_id, None if a.in_port == _NX_IN_PORT else _port32(a.in_port))
    if ctx.recorder is not None:
        ctx.recorder.event("resubmit_end", table_id=table_id)
    ctx.table_id, ctx.cookie, ctx.miss_rule, ctx.rule = old_table, old_cookie, old_miss, old_rule
    ctx.depth -= deepens
    if ctx.error is None and not ctx.exited:
        ctx.stopped = False  # a rule's dec_ttl failure ends only that rule's actions


def _report_subfield(ctx: _Ctx, a: Item, stack_depth: int) -> None:
    """A trace's "-> FIELD[..] is now VALUE" after an action that wrote a field
    Open vSwitch reports so (move, pop, multipath, bundle_load): the whole field's value,
    or the bits written, in hex (its format of registers and metadata)."""
    sf = None
    if isinstance(a, nx.RegMove | nx.Multipath | nx.BundleAction):
        sf = a.dst
    elif isinstance(a, nx.StackPop) and len(ctx.stack) < stack_depth:
        sf = a.field
    if sf is None or ctx.recorder is None:
        return
    ctx.recorder.event("subfield", sf=sf, value=read_field(ctx, sf.ref.name, sf.ofs, sf.nbits))


def _inst_order(inst: of.Instruction) -> int:
    return _INST_ORDER.get(type(inst), 9)


def _set_slot(a: of.Action) -> tuple[int, int]:
    order = _SET_ORDER.get(a.type, 8)
    if isinstance(a, of.SetField):
        return (order, a.field.field)
    return (order, -a.type)  # one per action type, apart from every set_field's field


def _apply(ctx: _Ctx, actions: Iterable[Item]) -> None:
    todo = tuple(actions)
    for i, a in enumerate(todo):
        if ctx.stopped:
            return
        if ctx.was_mpls and ctx.freeze is None and _needs_inner(a):
            _start_freeze(ctx, todo[i:])
            return
        if ctx.recorder is not None:
            ctx.recorder.event("action", action=a, depth=ctx.depth)
        fn = ACTION_XLATE.get(type(a))
        if fn is _x_check_pkt_larger and i == len(todo) - 1:
            continue  # last in its list: Open vSwitch skips it (nothing after to fork)
        if fn is not None:
            depth = len(ctx.stack)
            fn(ctx, a)
            if ctx.recorder is not None:
                _report_subfield(ctx, a, depth)
        # Anything else was refused when the rule was added.
        pending = ctx.pause.rest if ctx.pause is not None else ctx.freeze
        if pending is not None:  # this level's rest, after the inner levels': run later
            if i + 1 < len(todo):
                _unroll_to(ctx, pending)
                pending.extend(todo[i + 1 :])
            return


def _x_output(ctx: _Ctx, a: of.Output) -> None:
    _output(ctx, a.port, a.max_len)


def _x_group(ctx: _Ctx, a: of.GroupAction) -> None:
    _group(ctx, a.group_id)


def _x_set_field(ctx: _Ctx, a: of.SetField) -> None:
    oxm = a.field
    if oxm.oxm_class == OxmClass.OPENFLOW_BASIC and oxm.field in _SET:
        _set_field(ctx, oxm)
        return
    spec = spec_of(oxm)
    if spec is not None:
        write_field(ctx, spec.name, oxm.value, oxm.mask)


def _x_push_vlan(ctx: _Ctx, a: of.PushVlan) -> None:
    ctx.mask |= _TCI
    tci = key_field(ctx.cur, "vlan_tci")
    inner = tci & ~VLAN_PRESENT & 0xFFFF if tci & VLAN_PRESENT else 0
    ctx.acts.append(dp.PushVlan(inner, a.ethertype))
    ctx.set_key("vlan_tci", inner | VLAN_PRESENT)


def _x_pop_vlan(ctx: _Ctx, a: of.PopVlan) -> None:
    ctx.mask |= _TCI
    if key_field(ctx.cur, "vlan_tci") & VLAN_PRESENT:
        ctx.acts.append(dp.PopVlan())
        ctx.set_key("vlan_tci", 0)


def _x_dec_ttl(ctx: _Ctx, a: of.Action) -> None:
    if _inner_unknown(ctx, "dec_ttl"):
        return
    ctx.mask |= _TTL
    if key_field(ctx.cur, "eth_type") not in (_V4, _V6):
        return  # not IP: nothing to decrement
    ttl = key_field(ctx.cur, "ip_ttl")
    if ttl <= 1:
        ctx.stopped = True  # invalid TTL: this rule's actions end here
        if ctx.recorder is not None:
            ctx.recorder.event("drop", reason="dec_ttl: invalid TTL")
        return
    ctx.acts.append(dp.SetField("ip_ttl", bytes((ttl - 1,))))
    ctx.set_key("ip_ttl", ttl - 1)


def _x_set_nw_ttl(ctx: _Ctx, a: of.SetNwTtl) -> None:
    if _inner_unknown(ctx, "mod_nw_ttl"):
        return
    ctx.mask |= _ETH_TYPE
    if key_field(ctx.cur, "eth_type") in (_V4, _V6):  # TTL or hop limit
        ctx.acts.append(dp.SetField("ip_ttl", bytes((a.ttl,))))
        ctx.set_key("ip_ttl", a.ttl)


# -- MPLS --------------------------------------------------------------------------------


def _mpls_count(ctx: _Ctx, key: bytes) -> int:
    """Label stack entries of an MPLS key (up to bottom of stack; the three the key
    keeps when none is the bottom); reads the bottom-of-stack bits."""
    n = 0
    for i, name in enumerate(_LSE):
        ctx.mask |= _BOS_MASK[i]
        lse = key_field(key, name)
        if lse & MPLS_BOS:
            return i + 1
        if lse:
            n += 1
    return n


def _x_push_mpls(ctx: _Ctx, a: of.PushMpls | nx.NxPushMpls) -> None:
    """A new top entry: a copy of the old top (bottom of stack cleared) on an MPLS
    packet, which keeps its EtherType; else label 0 (IPv6: 2), TC from the DSCP's low bits, TTL the IP TTL (64 for
    a packet without one), and the L3 headers become invisible to later matches."""
    ctx.mask |= _ETH_TYPE
    cur = ctx.cur
    et = key_field(cur, "eth_type")
    if et in MPLS_TYPES:
        n = _mpls_count(ctx, cur)
        if n >= MPLS_MAX_LABELS:
            _drop(ctx, f"push_mpls: more than {MPLS_MAX_LABELS} MPLS labels")
            return
        ctx.mask |= _LSE_MASK[0]
        lse = key_field(cur, _LSE[0]) & ~MPLS_BOS
        stack = cur[28:36]
    else:
        label, tc, ttl = (2 if et == _V6 else 0), 0, 64
        if et in (_V4, _V6):
            ctx.mask |= _imask("ip_tos", "ip_ttl")
            tc = (key_field(cur, "ip_tos") >> 2) & 7
            ttl = key_field(cur, "ip_ttl") or 64
        lse = label << 12 | tc << 9 | MPLS_BOS | ttl
        stack = bytes(8)
        cur = cur[:_L3_OFF] + bytes(_L3_END - _L3_OFF) + cur[_L3_END:]
    # On an MPLS packet the EtherType stays what it was (Open vSwitch 3.1 on the wire)
    ethertype = et if et in MPLS_TYPES else a.ethertype
    ctx.acts.append(dp.PushMpls(lse, ethertype))
    cur = cur[:28] + lse.to_bytes(4, "big") + stack + cur[40:]
    ctx.cur = key_set(cur, "eth_type", ethertype)
    ctx.was_mpls = False


def _x_pop_mpls(ctx: _Ctx, a: of.PopMpls | nx.NxPopMpls) -> None:
    """Remove the top entry (nothing on a packet without MPLS); popping to another
    EtherType leaves headers the key has not parsed: a later lookup recirculates."""
    ctx.mask |= _ETH_TYPE
    cur = ctx.cur
    if key_field(cur, "eth_type") not in MPLS_TYPES:
        return
    n = _mpls_count(ctx, cur)
    if n == MPLS_MAX_LABELS and not key_field(cur, _LSE[-1]) & MPLS_BOS:
        _drop(ctx, f"pop_mpls: more than {MPLS_MAX_LABELS} MPLS labels")
        return
    for m in _LSE_MASK[1:]:
        ctx.mask |= m
    ctx.acts.append(dp.PopMpls(a.ethertype))
    if a.ethertype in MPLS_TYPES:
        cur = cur[:28] + cur[32:40] + bytes(4) + cur[40:]
    else:
        cur = cur[:_L3_OFF] + bytes(_L3_END - _L3_OFF) + cur[_L3_END:]
        ctx.was_mpls = True
    ctx.cur = key_set(cur, "eth_type", a.ethertype)


def _x_set_mpls_ttl(ctx: _Ctx, a: of.SetMplsTtl | nx.NxSetMplsTtl) -> None:
    write_field(ctx, "mpls_ttl", a.ttl)


def _x_set_mpls_label(ctx: _Ctx, a: nx.NxSetMplsLabel) -> None:
    write_field(ctx, "mpls_label", a.label)


def _x_set_mpls_tc(ctx: _Ctx, a: nx.NxSetMplsTc) -> None:
    write_field(ctx, "mpls_tc", a.tc)


def _x_dec_mpls_ttl(ctx: _Ctx, a: of.DecMplsTtl | nx.NxDecMplsTtl) -> None:
    """As dec_ttl, on the top entry: a TTL of 0 or 1 ends this rule's actions."""
    ctx.mask |= _ETH_TYPE
    if key_field(ctx.cur, "eth_type") not in MPLS_TYPES:
        return
    ttl = read_field(ctx, "mpls_ttl")
    if ttl <= 1:
        ctx.stopped = True
        if ctx.recorder is not None:
            ctx.recorder.event("drop", reason="dec_mpls_ttl: invalid TTL")
        return
    write_field(ctx, "mpls_ttl", ttl - 1)


def _x_dec_nsh_ttl(ctx: _Ctx, a: nx.NxDecNshTtl) -> None:
    """An NSH frame's TTL less one; a TTL of 0 or 1, or a frame without NSH, ends this
    rule's actions (Open vSwitch 3.1: "NSH decrement TTL exception")."""
    ctx.mask |= _ETH_TYPE
    if key_field(ctx.cur, "eth_type") == ETH_TYPE_NSH:
        ctx.mask |= _NSH_TTL
        ttl = key_field(ctx.cur, "nsh_ttl")
        if ttl > 1:
            ctx.acts.append(dp.SetField("nsh_ttl", bytes((ttl - 1,))))
            ctx.set_key("nsh_ttl", ttl - 1)
            return
    ctx.stopped = True
    if ctx.recorder is not None:
        ctx.recorder.event("drop", reason="NSH decrement TTL exception")


def _drop(ctx: _Ctx, why: str) -> None:
    """A translation error: the packet is dropped (Open vSwitch's xlate errors)."""
    ctx.error = why
    ctx.stopped = True
    if ctx.recorder is not None:
        ctx.recorder.event("drop", reason=why)


# After pop_mpls to another EtherType, Open vSwitch 3.1 (recirc_for_mpls) freezes at any
# action but these (outputs, the queue, a group, set_field/load of a field below L3).
_NO_INNER = (of.Output, nx.OutputReg, of.SetQueue, of.GroupAction, nx.SetTunnel)
_L3_FIELDS = frozenset({
    "nw_tos", "ip_dscp", "nw_ecn", "nw_ttl", "nw_proto", "ip_src", "ip_dst", "tcp_src",
    "tcp_dst", "udp_src", "udp_dst", "sctp_src", "sctp_dst", "icmp_type", "icmp_code",
    "arp_op", "arp_spa", "arp_tpa", "arp_sha", "arp_tha", "ipv6_src", "ipv6_dst",
    "ipv6_label", "icmpv6_type", "icmpv6_code", "nd_target", "nd_sll", "nd_tll", "ip_frag",
    "tcp_flags", "nd_reserved", "nd_options_type", "nsh_flags", "nsh_ttl", "nsh_spi", "nsh_si",
    "nsh_c1", "nsh_c2", "nsh_c3", "nsh_c4",
})  # fmt: skip


def _needs_inner(a: Item) -> bool:
    """Whether ``a`` freezes the translation on a packet whose inner headers the key does
    not show yet (an unknown field counts as L3: freezing is always correct)."""
    if isinstance(a, (Unroll, *_NO_INNER)):
        return False
    if isinstance(a, (of.SetField, nx.RegLoad2)):
        spec = spec_of(a.field)
        return spec is None or spec.name in _L3_FIELDS
    if isinstance(a, nx.RegLoad):
        return a.dst.ref.name in _L3_FIELDS
    return True


def _inner_unknown(ctx: _Ctx, what: str) -> bool:
    """An action reached the inner headers while the key does not show them (every path
    freezes before that, ``_needs_inner``): dropped, saying why, rather than guessed."""
    if not ctx.was_mpls:
        return False
    _drop(ctx, f"{what} after pop_mpls needs the inner headers")
    return True


def _start_freeze(ctx: _Ctx, first: Iterable[Item]) -> None:
    """Stop translating: ``first`` (this level's actions from the one that needs the
    inner headers) and, as translation unwinds, every level's rest are frozen; the
    datapath recirculates the packet (``_seal_freeze``) and they run after."""
    if ctx.recorder is not None:
        ctx.recorder.event("drop", reason="freeze: the actions left need the inner headers "
                           "(pop_mpls): they run after the recirculation")  # fmt: skip
    ctx.freeze = [Unroll(ctx.table_id, ctx.cookie), *first]
    ctx.exited = ctx.stopped = True


def _unroll_to(ctx: _Ctx, items: list[Item]) -> None:
    """Before frozen items of the rule that runs now: an ``Unroll`` to its table and
    cookie, unless the items already stand there."""
    at = (ctx.pause.cont.table_id, ctx.pause.cont.cookie) if ctx.pause is not None else None
    for it in reversed(items):
        if isinstance(it, Unroll):
            at = (it.table_id, it.cookie)
            break
    if at != (ctx.table_id, ctx.cookie):
        items.append(Unroll(ctx.table_id, ctx.cookie))


def _frozen_instructions(insts: Iterable[of.Instruction]) -> list[Item]:
    """A rule's instructions after the apply-actions that froze, as frozen items
    (write-metadata as its action, goto-table as a resubmit, as Open vSwitch does)."""
    out: list[Item] = []
    for inst in insts:
        if isinstance(inst, (of.WriteActions, of.ClearActions)):
            out.append(inst)
        elif isinstance(inst, of.WriteMetadata):
            out.append(nx.WriteMetadataAction(inst.metadata, inst.mask))
        elif isinstance(inst, of.GotoTable):
            out.append(nx.Resubmit(table=inst.table_id))
    return out


def _seal_freeze(ctx: _Ctx) -> None:
    """End a freeze: the frozen state (the actions gathered, the action set, the stack,
    the pipeline's in_port and registers) gets a recirculation id, the datapath a
    ``recirc`` with it. A copy of the action set goes with it (at the end of the
    translation it then does not run now; after a clone or a bucket it does)."""
    items = ctx.freeze
    if items is None:
        return
    ctx.freeze = None
    aset = tuple(a for _, a in sorted(ctx.action_set.items(), key=lambda kv: kv[0]))
    state = FrozenState(ctx.in_port & 0xFFFFFFFF, ctx.meta, tuple(ctx.stack), aset, tuple(items))
    blob = state.encode()
    rid = ct_xlate.recirc_id_for(blob, ctx.recirc_known)
    ctx.acts.append(dp.Recirc(rid))
    ctx.frozen.append((rid, blob))


def _thaw(ctx: _Ctx, st: FrozenState) -> None:
    """Resume a frozen translation on the recirculated packet (its key now parsed past
    the pop): restore the pipeline state, run the actions left; the action set runs at
    the end (``_finish``) unless they freeze again."""
    ctx.in_port, ctx.meta, ctx.stack = st.in_port, st.meta, list(st.stack)
    ctx.action_set = {_set_slot(a): a for a in st.action_set}
    _apply(ctx, st.items)


def _x_unroll(ctx: _Ctx, a: Unroll) -> None:
    ctx.table_id, ctx.cookie = a.table_id, a.cookie


def _x_write_actions(ctx: _Ctx, a: of.WriteActions) -> None:
    for act in a.actions:
        ctx.action_set[_set_slot(act)] = act


def _x_clear_actions(ctx: _Ctx, a: of.ClearActions) -> None:
    ctx.action_set.clear()


# -- Open vSwitch's fields and Nicira actions ------------------------------------------

_NX_IN_PORT = 0xFFF8  # OFPP_IN_PORT in 16 bits: "the packet's own in_port"


def _port32(port: int) -> int:
    """A 16-bit OpenFlow 1.0 port number as OpenFlow 1.3's 32-bit one (0xff00.. reserved)."""
    return port | 0xFFFF0000 if 0xFF00 <= port <= 0xFFFF else port


def _set_in_port(ctx: _Ctx, port: int) -> None:
    """The pipeline's in_port (never a datapath rewrite: the packet keeps its port)."""
    if port == Port.LOCAL:
        port = OFPP_LOCAL
    ctx.in_port = port
    ctx.set_key("in_port", port & 0xFFFFFFFF)


def read_field(ctx: _Ctx, name: str, ofs: int = 0, nbits: int | None = None) -> int:
    """Bits ``[ofs, ofs + nbits)`` of a field; reading a packet field un-wildcards them."""
    loc = LOCS[name]
    n = loc.bits - ofs if nbits is None else nbits
    if loc is _ACTSET:
        value = _actset_output(ctx)
    elif loc.key_field is None:
        value = loc.get(ctx.meta)
    else:
        ctx.mask |= ((1 << n) - 1) << (loc.pos + ofs)
        value = loc.get(int.from_bytes(ctx.cur, "big"))
    return (value >> ofs) & ((1 << n) - 1)


def write_field(ctx: _Ctx, name: str, value: int, mask: int | None = None) -> None:
    """Set (the ``mask`` bits of) a field: a register or metadata in the translation, a
    packet field as a datapath rewrite (only if the packet has the field)."""
    loc = LOCS[name]
    if loc.key_field is None:
        ctx.meta = loc.put(ctx.meta, value, mask)
        if name.startswith("tun_metadata"):  # written: the packet now carries the option
            ctx.meta |= 1 << (int(name[12:]) + TUN_PRESENT.pos)
        return
    if loc.key_field == "in_port":
        m = loc.ones if mask is None else mask & loc.ones
        port = (ctx.in_port & ~m) | (value & m)
        _set_in_port(ctx, _port32(port & 0xFFFF) if loc.bits == 16 else port)
        return
    if name == "vlan_tci":
        _write_tci(ctx, value, loc.ones if mask is None else mask & loc.ones)
        return
    alts = PREREQS.get(name)
    if alts and not name.startswith("mpls_") and _inner_unknown(ctx, f"set_field:{name}"):
        return
    if alts:
        pk = int.from_bytes(ctx.cur, "big")
        ok = False
        for alt in alts:
            for f, _v in alt:
                ctx.mask |= LOCS[f].mask
            ok = ok or all(LOCS[f].get(pk) == v for f, v in alt)
        if not ok:
            return  # the packet has no such field
    kf = loc.key_field
    size = FIELDS[kf][1]
    m = (loc.ones if mask is None else mask & loc.ones) << loc.shift
    old = key_field(ctx.cur, kf)
    new = (old & ~m) | ((value << loc.shift) & m)
    if m == (1 << size * 8) - 1:
        ctx.acts.append(dp.SetField(kf, new.to_bytes(size, "big")))
    else:
        ctx.acts.append(dp.SetField(kf, (new & m).to_bytes(size, "big"), m.to_bytes(size, "big")))
    ctx.set_key(kf, new)


def _write_tci(ctx: _Ctx, value: int, mask: int) -> None:
    """``vlan_tci`` written whole or in part: the CFI bit (VLAN_PRESENT) says whether the
    packet has a tag after it, so the write pushes, rewrites or pops the 802.1Q header."""
    ctx.mask |= _TCI
    old = key_field(ctx.cur, "vlan_tci")
    new = (old & ~mask) | (value & mask)
    if not new & VLAN_PRESENT:
        _x_pop_vlan(ctx, of.PopVlan())
    elif not old & VLAN_PRESENT:
        ctx.acts.append(dp.PushVlan(new & ~VLAN_PRESENT & 0xFFFF))
        ctx.set_key("vlan_tci", new)
    elif new != old:
        ctx.acts.append(dp.SetField("vlan_tci", (new & 0xEFFF).to_bytes(2, "big")))
        ctx.set_key("vlan_tci", new)


def _x_reg_load(ctx: _Ctx, a: nx.RegLoad) -> None:
    d = a.dst
    write_field(ctx, d.ref.name, a.value << d.ofs, ((1 << d.nbits) - 1) << d.ofs)


def _x_reg_load2(ctx: _Ctx, a: nx.RegLoad2) -> None:
    _x_set_field(ctx, of.SetField(a.field))


def _x_move(ctx: _Ctx, a: nx.RegMove) -> None:
    v = read_field(ctx, a.src.ref.name, a.src.ofs, a.src.nbits)
    d = a.dst
    write_field(ctx, d.ref.name, v << d.ofs, ((1 << d.nbits) - 1) << d.ofs)


def _x_output_reg(ctx: _Ctx, a: nx.OutputReg) -> None:
    port = read_field(ctx, a.src.ref.name, a.src.ofs, a.src.nbits)
    if ctx.recorder is not None and port <= 0xFFFF:
        ctx.recorder.event("detail", text=f"output port is {port}")
    _output(ctx, _port32(port) if a.src.nbits <= 16 else port, a.max_len)


def _x_resubmit(ctx: _Ctx, a: nx.Resubmit) -> None:
    _resubmit(ctx, a)


def _x_exit(ctx: _Ctx, a: nx.Exit) -> None:
    ctx.exited = ctx.stopped = True


def _x_nothing(ctx: _Ctx, a: of.Action) -> None:
    """note, conjunction (when executed, as in a packet-out);
    sample, as Open vSwitch translates it on a bridge without IPFIX (no
    Flow_Sample_Collector_Set here: checked with ofproto/trace on 3.1)."""


def _x_set_queue(ctx: _Ctx, a: of.SetQueue) -> None:
    ctx.queue = a.queue_id


def _x_pop_queue(ctx: _Ctx, a: nx.PopQueue) -> None:
    ctx.queue = None


def _queue_priority(ctx: _Ctx) -> None:
    """Before an output: the queue set_queue chose becomes the packet's socket priority
    (``1:<queue+1>``, the tc class of that queue in Port.qos's tree, as Open vSwitch's
    kernel datapath maps it); only a change is emitted."""
    want = 0 if ctx.queue is None else 0x10000 | (ctx.queue + 1) & 0xFFFF
    if want != ctx.priority:
        ctx.acts.append(dp.SetPriority(want))
        ctx.priority = want


def _x_push(ctx: _Ctx, a: nx.StackPush) -> None:
    ctx.stack.append(read_field(ctx, a.field.ref.name, a.field.ofs, a.field.nbits))


def _x_pop(ctx: _Ctx, a: nx.StackPop) -> None:
    if not ctx.stack:
        return  # stack underflow: Open vSwitch reports it and leaves the field alone
    f = a.field
    v = ctx.stack.pop() & ((1 << f.nbits) - 1)
    write_field(ctx, f.ref.name, v << f.ofs, ((1 << f.nbits) - 1) << f.ofs)


def _x_clone(ctx: _Ctx, a: nx.Clone) -> None:
    """Run the actions on a copy: the packet, registers and stack come back unchanged.
    A ``controller(pause)`` inside, or a freeze after a pop, freezes the copy (its
    continuation or recirculation holds the clone's remaining actions), and then, as in
    Open vSwitch 3.1 (seen side by side: its clone keeps the freeze's exit), no action
    after the clone runs; the action set still does."""
    saved, meta, stack, in_port = ctx.cur, ctx.meta, list(ctx.stack), ctx.in_port
    was_mpls = ctx.was_mpls
    aset = dict(ctx.action_set)
    start, priority = len(ctx.acts), ctx.priority
    _apply(ctx, a.actions)
    if ctx.fork is not None:
        return  # a check_pkt_larger inside: the branches go on from there
    froze = ctx.pause is not None or ctx.freeze is not None
    _seal_pause(ctx)
    _seal_freeze(ctx)
    _restore_copy(ctx, start, saved, priority)
    ctx.meta, ctx.stack, ctx.in_port, ctx.was_mpls = meta, stack, in_port, was_mpls
    ctx.action_set = aset
    if froze:
        ctx.stopped = ctx.exited = True
    elif ctx.error is None:
        ctx.stopped = ctx.exited = False


def _restore_copy(ctx: _Ctx, start: int, saved: bytes, priority: int) -> None:
    """After a copy's actions (those emitted from ``start``): the packet as ``saved``.
    Rewrites are undone by rewrites; a ct (its nat rewrites what translation cannot
    know, its ct fields stay in the packet) makes the copy's actions a datapath
    ``clone``, which leaves the packet, its ct fields and priority as they were (Open
    vSwitch does the same: a ct is not reversible)."""
    if any(isinstance(x, dp.Ct) for x in _dp_walk(ctx.acts[start:])):
        ctx.acts[start:] = [dp.Clone(tuple(ctx.acts[start:]))]
        ctx.cur, ctx.priority = saved, priority
    else:
        ctx.restore(saved)


def _dp_walk(acts: Iterable[dp.Action]) -> Iterator[dp.Action]:
    for x in acts:
        yield x
        if isinstance(x, dp.Clone):
            yield from _dp_walk(x.actions)
        elif isinstance(x, dp.CheckPktLen):
            yield from _dp_walk(x.gt + x.le)


def _x_check_pkt_larger(ctx: _Ctx, a: nx.CheckPktLarger) -> None:
    """``check_pkt_larger(len)->dst``: in a branch's run, the bit takes the branch's
    value; otherwise the translation forks here (``_forked``)."""
    i = ctx.n_checks
    ctx.n_checks += 1
    d = a.dst
    if i < len(ctx.forced):
        write_field(ctx, d.ref.name, ctx.forced[i] << d.ofs, 1 << d.ofs)
        return
    if i >= MAX_CHECKS:
        ctx.error = f"over {MAX_CHECKS} check_pkt_larger actions"
        ctx.stopped = True
        return
    events = ctx.recorder.seen if isinstance(ctx.recorder, _Skip) else 0
    ctx.fork = (len(ctx.acts), len(ctx.credits), a.pkt_len, events)
    ctx.recorder = None  # the branches tell the rest
    ctx.stopped = ctx.exited = True


def _x_controller(ctx: _Ctx, a: nx.Controller | nx.Controller2) -> None:
    _packet_in(ctx, a.reason, a.max_len, getattr(a, "userdata", b""), getattr(a, "pause", False))


def _x_learn(ctx: _Ctx, a: nx.Learn) -> None:
    """Build the rule this packet teaches; the megaflow's packets add or refresh it
    (``LearnCredit``), so every packet the megaflow covers must build the same rule:
    the source bits are read (un-wildcarded) like any other."""
    fields: dict[str, list[int]] = {}
    acts: list[of.Action] = []
    if a.fin_idle_timeout or a.fin_hard_timeout:
        acts.append(nx.FinTimeout(a.fin_idle_timeout, a.fin_hard_timeout))
    for spec in a.specs:
        if spec.src is not None:
            v = read_field(ctx, spec.src.ref.name, spec.src.ofs, spec.nbits)
        else:
            v = spec.immediate()
        ones = (1 << spec.nbits) - 1
        if spec.dst_type == 0:
            assert spec.dst is not None
            cur = fields.setdefault(spec.dst.ref.name, [0, 0])
            cur[0] |= v << spec.dst.ofs
            cur[1] |= ones << spec.dst.ofs
        elif spec.dst_type == 1:
            assert spec.dst is not None
            if spec.dst.ref.nbytes <= 8:
                acts.append(nx.RegLoad(spec.dst, v))
            else:
                acts.append(
                    nx.RegLoad2(
                        oxm_field(spec.dst.ref.name, v << spec.dst.ofs, ones << spec.dst.ofs)
                    )
                )
        elif spec.nbits <= 16 or not v >> 16:
            port = _port32(v & 0xFFFF)
            if port < Port.MAX or port in (Port.IN_PORT, Port.FLOOD, Port.LOCAL, Port.ALL):
                acts.append(of.Output(port))
    # the Ethernet-level prerequisite of a matched field comes with it (as Open vSwitch)
    if "eth_type" not in fields:
        for name in list(fields):
            alts = PREREQS.get(name, ())
            types = {v for alt in alts for f, v in alt if f == "eth_type"}
            if len(types) == 1:
                fields["eth_type"] = [types.pop(), 0xFFFF]
                break
    oxms = []
    for name, (v, m) in fields.items():
        bits = (spec_by_name(name) or _NO_SPEC).nbytes * 8
        oxms.append(oxm_field(name, v, None if m == (1 << bits) - 1 else m))
    lf = LearnedFlow(
        a.table_id,
        a.priority,
        OfMatch(tuple(oxms)),
        (of.ApplyActions(tuple(acts)),) if acts else (),
        a.cookie,
        a.idle_timeout,
        a.hard_timeout,
        FlowModFlags.SEND_FLOW_REM if a.flags & nx.LEARN_SEND_FLOW_REM else 0,
        a.limit,
    )
    ctx.deps.add(("t", a.table_id))
    ctx.lookups = None  # the room depends on the whole table, not on one lookup
    ok = ctx.of.learn_room(lf)
    if ok:
        ctx.credits.append(LearnCredit(ctx.of, lf))
    if a.result_dst is not None:
        d = a.result_dst
        write_field(ctx, d.ref.name, int(ok) << d.ofs, 1 << d.ofs)


def _x_fin_timeout(ctx: _Ctx, a: nx.FinTimeout) -> None:
    """A TCP FIN or RST shortens the current rule's timeouts (on each packet credit)."""
    ctx.mask |= _PROTO | _imask("tcp_flags") & _FIN_RST
    if (
        ctx.rule is None
        or key_field(ctx.cur, "eth_type") not in (_V4, _V6)
        or key_field(ctx.cur, "ip_proto") != 6
        or not key_field(ctx.cur, "tcp_flags") & 0x005
    ):
        return
    ctx.credits.append(FinCredit(ctx.of, ctx.rule, a.fin_idle_timeout, a.fin_hard_timeout))


def _selection_hash(ctx: _Ctx, fields: Iterable[Oxm], basis: int) -> int:
    """A select group's ``selection_method=hash``, as Open vSwitch 3.1 hashes it
    (ofproto-dpif-xlate.c pick_hash_fields_select_group): from ``hash_uint64(basis)``,
    ``hash_bytes`` over each field's bits (each OXM's value is the mask; network byte
    order, the field's width) whose prerequisites the packet meets, in Open vSwitch's
    field order (its mf_field_id), not the order given; the bits hashed are read, so
    every packet alike in them picks the same bucket."""
    h = flowhash.hash_uint64(basis)
    known = [(spec, f) for f in fields if (spec := spec_of(f)) is not None and spec.name in LOCS]
    for spec, f in sorted(known, key=lambda sf: _MFF_RANK.get(sf[0].name, len(_MFF_RANK))):
        if not _prereqs_met(ctx, spec.name):
            continue
        value = read_field(ctx, spec.name) & f.value
        h = flowhash.hash_bytes(value.to_bytes(spec.nbytes, "big"), h)
    return h


# Open vSwitch's field order (include/openvswitch/meta-flow.h, enum mf_field_id), in
# hitless's names, for the fields a selection hash can name
_MFF_RANK = {name: i for i, name in enumerate((
    "tun_id", "tun_src", "tun_dst", "tun_ipv6_src", "tun_ipv6_dst", "tun_flags",
    "tun_gbp_id", "tun_gbp_flags", "metadata", "in_port", "in_port_oxm", "pkt_mark",
    *(f"reg{i}" for i in range(16)), *(f"xreg{i}" for i in range(8)),
    *(f"xxreg{i}" for i in range(4)),
    "eth_src", "eth_dst", "eth_type", "vlan_tci", "vlan_vid", "vlan_pcp",
    "mpls_label", "mpls_tc", "mpls_bos", "mpls_ttl",
    "ip_src", "ip_dst", "ipv6_src", "ipv6_dst", "ipv6_label", "nw_proto", "ip_dscp",
    "nw_tos", "nw_ecn", "nw_ttl", "ip_frag", "arp_op", "arp_spa", "arp_tpa", "arp_sha",
    "arp_tha", "tcp_src", "tcp_dst", "tcp_flags", "udp_src", "udp_dst", "sctp_src",
    "sctp_dst", "icmp_type", "icmp_code", "icmpv6_type", "icmpv6_code", "nd_target",
    "nd_sll", "nd_tll",
))}  # fmt: skip


def _prereqs_met(ctx: _Ctx, name: str) -> bool:
    """Whether the packet has field ``name`` (its prerequisites, read and so un-wildcarded)."""
    alts = PREREQS.get(name)
    if not alts:
        return True
    return any(all(read_field(ctx, f) == v for f, v in alt) for alt in alts)


def _ovs_hash(ctx: _Ctx, fields: int, basis: int) -> int:
    """Open vSwitch's hash of the fields ``fields`` selects (hitless.ofproto.flowhash),
    every field it read un-wildcarded: every packet of the megaflow hashes alike."""

    def get(name: str) -> int:
        return key_field(ctx.cur, name)

    ctx.mask |= _imask(*flowhash.fields_read(get, fields))
    return flowhash.flow_hash(get, fields, basis)


def _x_multipath(ctx: _Ctx, a: nx.Multipath) -> None:
    """``multipath``: a link number 0..max_link into ``dst`` from the flow's hash, as
    Open vSwitch computes both."""
    h = _ovs_hash(ctx, a.fields, a.basis)
    link = flowhash.multipath_link(h, a.algorithm, a.max_link + 1, a.arg)
    d = a.dst
    write_field(ctx, d.ref.name, (link << d.ofs) & (((1 << d.nbits) - 1) << d.ofs),
                ((1 << d.nbits) - 1) << d.ofs)  # fmt: skip


def _x_bundle(ctx: _Ctx, a: nx.BundleAction) -> None:
    """``bundle``/``bundle_load``: a live member port (active_backup: the first;
    hrw: by the flow's hash, as Open vSwitch picks it); none live: drop, or OFPP_NONE
    into the field."""
    live = [_live(ctx, _port32(m)) for m in a.members]
    member: int | None = None
    if a.algorithm == 0:
        member = next((m for m, ok in zip(a.members, live, strict=True) if ok), None)
    else:
        h = _ovs_hash(ctx, a.fields, a.basis)
        i = flowhash.bundle_hrw(h, live)
        member = None if i is None else a.members[i]
    if a.dst is None:
        if member is not None:
            _output(ctx, _port32(member), 0)
        return
    d = a.dst
    value = member if member is not None else 0xFFFF
    write_field(ctx, d.ref.name, value << d.ofs, ((1 << d.nbits) - 1) << d.ofs)


def _x_write_metadata(ctx: _Ctx, a: nx.WriteMetadataAction) -> None:
    ctx.meta = _METADATA.put(ctx.meta, a.metadata, a.mask)


def _x_set_tunnel(ctx: _Ctx, a: nx.SetTunnel) -> None:
    write_field(ctx, "tun_id", a.tun_id)


def _x_ct(ctx: _Ctx, a: nx_ct.CtAction) -> None:
    zf = a.zone_field
    zone = a.zone if zf is None else read_field(ctx, zf.ref.name, zf.ofs, zf.nbits)
    acts, frozen = ct_xlate.xlate_ct(
        a, zone & 0xFFFF, ctx.in_port, ctx.meta, ctx.recirc_known,
        lambda name, ofs, nbits: read_field(ctx, name, ofs, nbits),
    )  # fmt: skip
    ctx.acts.extend(acts)
    rec = ctx.recorder
    if rec is not None:
        for x in a.actions:
            rec.event("action", action=x, depth=ctx.depth)
        if not a.actions:
            rec.event("empty")
    if frozen is not None:
        # A copy goes on after recirculation, from the frozen state (the datapath forks
        # at the recirc action); the actions after the ct go on here, as in Open vSwitch.
        ctx.frozen.append(frozen)
        if rec is not None:
            rec.event("ct_fork", table_id=a.table, recirc_id=frozen[0], blob=frozen[1],
                      zone=zone & 0xFFFF, key=ctx.cur, meta=ctx.meta,
                      nat=ct_xlate.nat_spec(a))  # fmt: skip
    # Open vSwitch: the ct fields are known only after recirculation; from here on the
    # translation sees an untracked packet.
    ctx.cur = ct_xlate.clear_ct_fields(ctx.cur)
    if rec is not None:
        rec.event("ct_untracked")


def _x_ct_clear(ctx: _Ctx, a: nx_ct.CtClear) -> None:
    ctx.acts.append(dp.CtClear())
    ctx.cur = ct_xlate.clear_ct_fields(ctx.cur)


ACTION_XLATE: dict[type, Callable[[_Ctx, Any], None]] = {
    of.Output: _x_output,
    of.GroupAction: _x_group,
    of.SetField: _x_set_field,
    of.PushVlan: _x_push_vlan,
    of.PopVlan: _x_pop_vlan,
    of.DecNwTtl: _x_dec_ttl,
    of.SetNwTtl: _x_set_nw_ttl,
    of.SetQueue: _x_set_queue,
    nx.RegLoad: _x_reg_load,
    nx.RegLoad2: _x_reg_load2,
    nx.RegMove: _x_move,
    nx.OutputReg: _x_output_reg,
    nx.Resubmit: _x_resubmit,
    nx.Exit: _x_exit,
    nx.Note: _x_nothing,
    nx.Conjunction: _x_nothing,
    nx.PopQueue: _x_pop_queue,
    nx.StackPush: _x_push,
    nx.StackPop: _x_pop,
    nx.Clone: _x_clone,
    nx.Controller: _x_controller,
    nx.Controller2: _x_controller,
    nx.NxDecTtl: _x_dec_ttl,
    nx.DecTtlIds: _x_dec_ttl,
    nx.WriteMetadataAction: _x_write_metadata,
    nx.SetTunnel: _x_set_tunnel,
    nx.Learn: _x_learn,
    nx.Multipath: _x_multipath,
    nx.BundleAction: _x_bundle,
    nx.FinTimeout: _x_fin_timeout,
    of.PushMpls: _x_push_mpls,
    nx.NxPushMpls: _x_push_mpls,
    of.PopMpls: _x_pop_mpls,
    nx.NxPopMpls: _x_pop_mpls,
    of.SetMplsTtl: _x_set_mpls_ttl,
    nx.NxSetMplsTtl: _x_set_mpls_ttl,
    nx.NxSetMplsLabel: _x_set_mpls_label,
    nx.NxSetMplsTc: _x_set_mpls_tc,
    of.DecMplsTtl: _x_dec_mpls_ttl,
    nx.NxDecMplsTtl: _x_dec_mpls_ttl,
    nx.NxDecNshTtl: _x_dec_nsh_ttl,
    nx_ct.CtAction: _x_ct,
    nx_ct.CtClear: _x_ct_clear,
    nx.CheckPktLarger: _x_check_pkt_larger,
    nx.Sample: _x_nothing,
    # frozen items (hitless.ofproto.frozen): never in a rule's actions
    Unroll: _x_unroll,
    of.WriteActions: _x_write_actions,
    of.ClearActions: _x_clear_actions,
}
"""How each action translates: ``fn(ctx, action)``. Another layer adds its own here (a
new action's class -> its function); ``OfState.validate_actions`` must accept it too."""


def _set_field(ctx: _Ctx, oxm: of.Oxm) -> None:
    spec = _SET.get(oxm.field)
    if spec is None:
        return
    name, shift, kmask = spec
    size = FIELDS[name][1]
    pre = _SET_PREREQ.get(oxm.field)
    if pre is not None and not _applies(ctx, *pre):
        return  # the packet has no such field
    if name == "vlan_tci":
        ctx.mask |= _TCI
        tci = key_field(ctx.cur, "vlan_tci")
        if not tci & VLAN_PRESENT:
            return  # no tag to rewrite (a push_vlan comes first)
        assert kmask is not None
        value = (oxm.value << shift) & kmask
        ctx.acts.append(dp.SetField(name, value.to_bytes(2, "big"), kmask.to_bytes(2, "big")))
        ctx.set_key(name, (tci & ~kmask) | value)
        return
    if kmask is None:
        value = oxm.value & ((1 << size * 8) - 1)  # an ARP opcode keeps its low byte
        ctx.acts.append(dp.SetField(name, value.to_bytes(size, "big")))
        ctx.set_key(name, value)
    else:
        value = (oxm.value << shift) & kmask
        ctx.acts.append(dp.SetField(name, value.to_bytes(size, "big"), kmask.to_bytes(size, "big")))
        old = key_field(ctx.cur, name)
        ctx.set_key(name, (old & ~kmask) | value)


def _applies(
    ctx: _Ctx, eth_types: tuple[int, ...], proto: int | None, icmp: tuple[int, ...] | None
) -> bool:
    """Whether the packet (as rewritten so far) has the field; un-wildcards what it read."""
    if _inner_unknown(ctx, "set_field"):
        return False
    cur = ctx.cur
    ctx.mask |= _ETH_TYPE if proto is None else _PROTO | _FRAG
    if key_field(cur, "eth_type") not in eth_types:
        return False
    if proto is None:
        return True
    if key_field(cur, "ip_proto") != proto or key_field(cur, "ip_frag") & FRAG_LATER:
        return False  # another protocol, or a later fragment (no L4 header)
    if icmp is None:
        return True
    ctx.mask |= _ND
    return key_field(cur, "tp_src") in icmp and key_field(cur, "tp_dst") == 0


def _emit_output(ctx: _Ctx, port: int) -> None:
    ctx.out_ports.append(port)
    pv = ctx.sw.ports.get(port)
    if pv is not None and pv.can_output:
        _queue_priority(ctx)
        ctx.acts.append(dp.Output(port))


def _output(ctx: _Ctx, port: int, max_len: int) -> None:
    in_port = ctx.in_port
    _queue_priority(ctx)
    if port == Port.IN_PORT:
        _emit_output(ctx, in_port)
    elif port == Port.NORMAL:
        saved = ctx.cur
        x = xlate_normal(ctx.sw, ctx.cur)
        if ctx.recorder is not None:
            ctx.recorder.event("normal", xlate=x)
        ctx.mask |= int.from_bytes(x.mask, "big")
        ctx.acts.extend(x.actions)
        ctx.credits.extend(x.credits)  # a bond's bucket load (hitless.ofproto.bond)
        ctx.cur = _after(ctx.cur, x.actions)
        ctx.restore(saved)
        if ctx.learn is None:
            ctx.learn = x.learn
        if ctx.dst is None:
            ctx.dst = x.dst
        if ctx.flood_vlan is None:
            ctx.flood_vlan = x.flood_vlan
        ctx.out_ports.extend(x.out_ports)
    elif port in (Port.FLOOD, Port.ALL):
        ctx.deps.add(("ports",))
        for p in sorted(ctx.sw.ports):
            if p != in_port:
                _emit_output(ctx, p)
    elif port == Port.CONTROLLER:
        # §7.4.1: a table-miss entry's packet-ins say "no match".
        reason = PacketInReason.NO_MATCH if ctx.miss_rule else PacketInReason.ACTION
        _packet_in(ctx, reason, max_len)
    elif port == Port.LOCAL:
        if in_port != OFPP_LOCAL:
            _emit_output(ctx, OFPP_LOCAL)
    elif port == Port.TABLE:
        if ctx.recorder is not None:
            ctx.recorder.event("resubmit", table_id=0)
        _pipeline(ctx, 0)
        if ctx.recorder is not None:
            ctx.recorder.event("resubmit_end", table_id=0)
    elif port <= Port.MAX and port != in_port:
        _emit_output(ctx, port)


def _after(key: bytes, actions: Iterable[dp.Action]) -> bytes:
    """The key of the packet after datapath actions (VLAN changes and rewrites)."""
    for a in actions:
        if isinstance(a, dp.PushVlan):
            key = key_set(key, "vlan_tci", (a.tci & 0xEFFF) | VLAN_PRESENT)
        elif isinstance(a, dp.PopVlan):
            key = key_set(key, "vlan_tci", 0)
        elif isinstance(a, dp.SetField):
            old = key_field(key, a.field)
            new = int.from_bytes(a.value, "big")
            if a.mask is not None:
                m = int.from_bytes(a.mask, "big")
                new = (old & ~m) | (new & m)
            if a.field == "vlan_tci":
                if not old & VLAN_PRESENT:
                    continue
                new |= VLAN_PRESENT
            key = key_set(key, a.field, new)
    return key


def _live(ctx: _Ctx, port: int) -> bool:
    if port == Port.ANY:
        return True
    ctx.deps.add(("ports",))
    pv = ctx.sw.ports.get(port)
    return pv is not None and pv.can_output


def _group(ctx: _Ctx, gid: int) -> None:
    g: Group | None = ctx.of.groups.get(gid)
    ctx.deps.add(("g", gid))
    if g is None:
        return
    if g.type == GroupType.SELECT and ctx.was_mpls:  # it hashes the inner headers
        _start_freeze(ctx, [of.GroupAction(gid)])
        return
    if ctx.depth + 1 >= MAX_DEPTH:
        ctx.error = f"over max translation depth {MAX_DEPTH}"
        if ctx.recorder is not None:
            ctx.recorder.event("drop", reason=ctx.error)
        ctx.stopped = True
        return
    ctx.depth += 1
    ctx.credits.append(g)
    chosen: list[int] = []
    if g.type == GroupType.ALL:
        chosen = list(range(len(g.buckets)))
    elif g.type == GroupType.INDIRECT:
        chosen = [0] if g.buckets else []
    elif g.type == GroupType.FF:
        for i, b in enumerate(g.buckets):
            if _live(ctx, b.watch_port):
                chosen = [i]
                break
            if ctx.recorder is not None:
                ctx.recorder.event("not_live", index=i, port=b.watch_port)
    elif g.type == GroupType.SELECT:
        live = [(i, b.weight or 1) for i, b in enumerate(g.buckets) if _live(ctx, b.watch_port)]
        sel = g.selection
        method = "" if sel is None else sel.method
        table = None if method == "hash" else _dp_hash_table(tuple(b.weight for b in g.buckets))
        if sel is not None and method == "hash" and sel.fields:
            if live:
                basis = _selection_hash(ctx, sel.fields, sel.param)
                chosen = _best_live_bucket(ctx, g, live, basis)
        elif table is None:  # the default method: the slow path's symmetric L4 hash
            if live:
                basis = _ovs_hash(ctx, flowhash.SYMMETRIC_L4, 0)
                chosen = _best_live_bucket(ctx, g, live, basis)
        else:
            h = _dp_hash(ctx, g)
            if h is None:  # a trace given no dp_hash: Open vSwitch's stops here
                if ctx.recorder is not None:
                    ctx.recorder.event("group", group_id=gid, chosen=[], picks=True)
                ctx.depth -= 1
                ctx.freeze = [Unroll(ctx.table_id, ctx.cookie), of.GroupAction(gid)]
                ctx.exited = ctx.stopped = True
                return
            # from the hash's own value on, the first live bucket (Open vSwitch's walk)
            ok = {i for i, _ in live}
            n = len(table)
            chosen = next(([table[(h + j) % n]] for j in range(n) if table[(h + j) % n] in ok), [])
    if ctx.recorder is not None:
        picks = g.type in (GroupType.SELECT, GroupType.FF)  # one bucket, told
        ids = [_bucket_id(g, i) for i in chosen]
        ctx.recorder.event("group", group_id=gid, chosen=ids, picks=picks)
    was_mpls = ctx.was_mpls
    for i in chosen:
        ctx.credits.append(BucketCounter(g, i))
        saved, meta, in_port = ctx.cur, ctx.meta, ctx.in_port
        if ctx.recorder is not None:
            ctx.recorder.event("bucket", index=_bucket_id(g, i))
        todo = bucket_actions(g.buckets[i].actions)
        if not todo and ctx.recorder is not None:
            ctx.recorder.event("empty")
        _apply(ctx, todo)
        if ctx.fork is not None:
            return  # a check_pkt_larger in the bucket: the branches go on from there
        if ctx.recorder is not None:
            ctx.recorder.event("bucket_end", index=_bucket_id(g, i))
        _seal_pause(ctx)  # a pause in a bucket freezes that copy alone (Open vSwitch)
        _seal_freeze(ctx)  # so does the recirculation after a pop in it
        # Each bucket acts on its own copy: the packet, the registers, metadata and
        # in_port come back as they were (Open vSwitch restores its whole flow).
        ctx.restore(saved)
        ctx.meta, ctx.in_port = meta, in_port
        ctx.was_mpls = was_mpls
        # a bucket's dec_ttl failure or exit ends only that copy
        ctx.stopped = ctx.error is not None
        ctx.exited = False
    ctx.depth -= 1



def _bucket_id(g: Group, i: int) -> int:
    """Bucket ``i``'s id: OpenFlow 1.5's, else its position (as Open vSwitch numbers them)."""
    bid = g.buckets[i].bucket_id
    return i if bid is None else bid


def _best_live_bucket(ctx: _Ctx, g: Group, live: list[tuple[int, int]], basis: int) -> list[int]:
    """Open vSwitch 3.1's choice for ``selection_method=hash`` (ofproto-dpif-xlate.c
    group_best_live_bucket): each live bucket scores the low 16 bits of a hash of its id
    and ``basis`` (the packet's fields), times its weight; the highest score wins, a tie
    going to the later bucket. The trace tells each score, as Open vSwitch's does."""
    best, best_score = None, 0
    for i, weight in live:
        bid = _bucket_id(g, i)
        score = (flowhash.hash_2words(bid, basis) & 0xFFFF) * weight
        if score >= best_score:
            best, best_score = i, score
        if ctx.recorder is not None:
            ctx.recorder.event("detail", text=f"bucket {bid}: score {score}")
    return [] if best is None else [best]


@lru_cache(maxsize=1024)
def _dp_hash_table(weights: tuple[int, ...]) -> tuple[int, ...] | None:
    return flowhash.dp_hash_table(weights)


def _dp_hash(ctx: _Ctx, g: Group) -> int | None:
    """The dp_hash a select group of the dp_hash method picks by (ofproto-dpif-xlate.c
    pick_dp_hash_select_group). Open vSwitch has the datapath compute it and
    recirculates; hitless computes the same value in this one pass (the megaflow
    matching what the hash read) and goes on as Open vSwitch's recirculated pass does,
    dp_hash set. A group with no selection method hashes the packet as it is now,
    symmetrically (``sym_l4``, basis 0); ``selection_method=dp_hash`` takes the
    algorithm from its parameter's high word (``l4`` unless 1) and the basis from the
    low word, ``l4`` being the 5-tuple hash the datapath took of the packet as it came
    in, mixed with the basis. None: a trace that was given no dp_hash (Open vSwitch's
    stops at the group, "no live bucket")."""
    have = LOCS["dp_hash"].get(ctx.meta)  # an earlier group's, or a trace's given one
    if have or ctx.traced:
        return have or None
    sel = g.selection
    alg, basis = flowhash.HASH_ALG_SYM_L4, 0
    if sel is not None and sel.method == "dp_hash":
        alg = flowhash.HASH_ALG_SYM_L4 if sel.param >> 32 == 1 else flowhash.HASH_ALG_L4
        basis = sel.param & 0xFFFFFFFF
    if alg == flowhash.HASH_ALG_SYM_L4:

        def cur(name: str) -> int:
            return key_field(ctx.cur, name)

        ctx.mask |= _imask(*flowhash.fields_read(cur, flowhash.SYMMETRIC_L3L4))
        h = flowhash.symmetric_l3l4(cur, basis)
    else:

        def first(name: str) -> int:
            return key_field(ctx.key, name)

        ctx.mask |= _imask(*flowhash.hash_5tuple_read(first))
        h = flowhash.hash_2words(flowhash.hash_5tuple(first, 0), basis)
    ctx.meta = LOCS["dp_hash"].put(ctx.meta, h)
    return h

# A bucket's actions are an action set in Open vSwitch 3.1 (ofpacts_execute_action_set,
# seen in its traces): the last of each of these kinds, in this order; then every
# set/move action, in the bucket's order; the last set_queue; then the last group, else
# the last output, else the last resubmit, else the last ct. With none of those four,
# nothing runs; any other action (controller, clone, output:REG, push, learn...) never.
_BUCKET_LAST: tuple[tuple[type, ...], ...] = (
    (of.PopVlan,),
    (of.PopMpls, nx.NxPopMpls),
    (of.PushMpls, nx.NxPushMpls),
    (of.PushVlan,),
    (of.DecNwTtl, nx.NxDecTtl, nx.DecTtlIds),
    (of.DecMplsTtl, nx.NxDecMplsTtl),
    (nx.NxDecNshTtl,),
)
_BUCKET_SETS: tuple[type, ...] = (
    of.SetField, of.SetNwTtl, of.SetMplsTtl, nx.RegLoad, nx.RegLoad2, nx.RegMove,
    nx.NxSetMplsTtl, nx.NxSetMplsLabel, nx.NxSetMplsTc, nx.SetTunnel,
)  # fmt: skip
_BUCKET_END: tuple[type, ...] = (of.GroupAction, of.Output, nx.Resubmit, nx_ct.CtAction)


def bucket_actions(actions: Iterable[OfAction]) -> tuple[OfAction, ...]:
    """The actions a group bucket runs, in order, as Open vSwitch 3.1 runs them."""
    acts = tuple(actions)

    def last(kinds: tuple[type, ...]) -> OfAction | None:
        found = None
        for a in acts:
            if type(a) in kinds:
                found = a
        return found

    out = [a for kinds in _BUCKET_LAST if (a := last(kinds)) is not None]
    out += [a for a in acts if type(a) in _BUCKET_SETS]
    if (q := last((of.SetQueue,))) is not None:
        out.append(q)
    for kind in _BUCKET_END:
        if (a := last((kind,))) is not None:
            return (*out, a)
    return ()


def rules_of(x: Xlate) -> list[Rule]:
    return [c for c in x.credits if isinstance(c, Rule)]
