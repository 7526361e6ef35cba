"""The byte layouts shared with the BPF program (bpf/datapath.bpf.c), described once.

Each record is a ``struct.Struct`` plus its field list; encode and decode both derive
from it. ``tests/datapath/test_ebpf_layout.py`` checks the constants here against the C
source, so the two sides cannot drift apart silently.

Kernel flow key: the first ``KERNEL_KEY_LEN`` (102) bytes of the canonical flow key
(hitless/packet/flow.py) followed by the mask slot (u16, little-endian): 104 bytes.
The key's metadata beyond byte 102 (recirc_id, conntrack state) is zero for every
packet the kernel sees, so a flow that matches it as zero (every megaflow matches
recirc_id 0) goes into the kernel by its first 102 bytes, with the rest of its mask
kept beside the mask slot (``MASK_TAIL``) for a restarted daemon; a flow that matches
non-zero metadata only ever sees recirculated packets, which the daemon handles, and
stays out of the kernel (``kernel_eligible``).

Layouts: what may differ between two builds' programs is a ``Layout`` (``LAYOUTS``, by
``HL_ABI``): the number of mask slots, the flow value's header, the kernel key's length
and whether the kernel tracks connections. Layout 3 (``ct``) keys flows by the whole
142-byte key (recirc_id and the ct_* fields too): every flow goes into the kernel, and
ct()/ct_clear/recirc run there for the connections the daemon's tracker has written to
``hl_ct`` (``CT_KEY``/``CT_ENTRY``, see provider.EbpfDatapath "Conntrack"). Layout 4
is layout 3 plus ``set_priority`` (OpenFlow's set_queue) run by the program: it sets
``skb->priority``, so the output device's htb or hfsc qdisc puts the packet in class
``1:<queue+1>``; on layouts 1-3 such a flow is the daemon's (slow path, queue 0), and a
handoff to a build that knows only those moves the datapath down to layout 3 first. The
rest (actions, counters, ports, info) is shared by every layout. A build serves a running datapath of any layout it knows
and moves it to its own (``native()``) with the kernel forwarding all along
(provider.EbpfDatapath._move_to).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from hitless.datapath.actions import (
    Action,
    Ct,
    CtClear,
    Meter,
    Output,
    PopVlan,
    PushVlan,
    Recirc,
    Sample,
    SetField,
    SetPriority,
    Userspace,
)
from hitless.datapath.conntrack import NatSpec
from hitless.packet.flow import CT_OFF, ETH_TYPE_NSH, FIELDS, KEY_LEN, MPLS_TYPES, Match

KERNEL_KEY_LEN = 102
MAP_KEY_LEN = 104
MASK_TAIL = 64
MAX_ACTIONS = 16
MAX_FLOWS = 65536
UPCALL_DATA = 16384

# Action types (enum in the C source).
A_OUTPUT, A_PUSH_VLAN, A_POP_VLAN, A_SET_FIELD, A_USERSPACE, A_METER, A_OPAQUE = range(1, 8)
# Layout 3 runs these; any layout decodes them.
A_CT, A_CT_CLEAR, A_RECIRC, A_CT_LABEL, A_SAMPLE = range(8, 13)
# Layout 4 runs it (skb->priority: OpenFlow's set_queue); any layout decodes it.
A_SET_PRIORITY = 13
# A_CT's flags (its ``field``); its arg32 describes the nat spec (NAT_*).
CTF_COMMIT, CTF_FORCE, CTF_NAT, CTF_MARK, CTF_LABEL = 1, 2, 4, 8, 16
NAT_SRC, NAT_DST, NAT_PERSISTENT, NAT_RANDOM, NAT_ADDR_MIN, NAT_ADDR_MAX = 1, 2, 4, 8, 16, 32
OUT_LAST = 1
FLOW_SLOWPATH = 1
R_MISS, R_ACTION, R_SLOWPATH = 0, 1, 2
UP_TRUNCATED = 1

FIELD_IDS = {name: i for i, name in enumerate(FIELDS)}
FIELD_NAMES = {i: name for name, i in FIELD_IDS.items()}
# Fields the program rewrites itself, and what the flow must match exactly for that:
# (eth_types, ip_protos); None = anything.
KERNEL_SET_FIELDS: dict[str, tuple[frozenset[int] | None, frozenset[int] | None]] = {
    "eth_dst": (None, None),
    "eth_src": (None, None),
    "vlan_tci": (None, None),
    "ipv4_src": (frozenset({0x0800}), None),
    "ipv4_dst": (frozenset({0x0800}), None),
    "ip_tos": (frozenset({0x0800}), None),
    "ip_ttl": (frozenset({0x0800, 0x86DD}), None),
    "tp_src": (frozenset({0x0800, 0x86DD}), frozenset({6, 17})),
    "tp_dst": (frozenset({0x0800, 0x86DD}), frozenset({6, 17})),
}

# Global counters (enum in the C source), per CPU.
COUNTERS = ("hit", "miss", "slowpath", "upcall_lost", "upcall_truncated", "no_port",
            "action_error")  # fmt: skip

# struct action { u8 type, field; u16 arg16; u32 arg32; u8 val[16], msk[16]; }
ACTION = struct.Struct("<BBHI16s16s")
# struct fstats { u64 packets, bytes, used_ns, tcp_flags; } (per CPU)
FSTATS = struct.Struct("<QQQQ")
# struct port { u32 port_no, flags; }
PORT = struct.Struct("<II")
# struct info { u32 abi, bridge_hash, owner_pid, pad; }
INFO = struct.Struct("<IIII")
# struct upcall_hdr { u32 reason, in_port, len, orig_len, flags, userdata_len;
#                     u8 key[104]; u8 userdata[16]; }
UPCALL_HDR = struct.Struct(f"<6I{MAP_KEY_LEN}s16s")
# Layout 3's established-connection map: struct ct_key { u16 zone; u8 proto, v6;
# u16 sport, dport (network order); u8 src[16], dst[16]; } and struct ct_entry { u8
# tail[36] (the key's ct fields); u8 nat, rewrite; u16 pad; u32 nat_src, nat_dst; u16
# nat_sport, nat_dport (network order); u64 last_ns; }
CT_KEY = struct.Struct("<HBB2s2s16s16s")
CT_ENTRY = struct.Struct("<36sBBxx4s4s2s2s4xQ")
CT_TAIL = KEY_LEN - CT_OFF - 4  # key bytes 106..141
RW_NAT = 1


def map_key(key: bytes, slot: int, key_len: int = KERNEL_KEY_LEN) -> bytes:
    return key[:key_len] + slot.to_bytes(2, "little")


def widen(kernel_key: bytes, key_len: int = KERNEL_KEY_LEN) -> bytes:
    """The canonical flow key of a kernel key (slot dropped, zero tail)."""
    return kernel_key[:key_len].ljust(KEY_LEN, b"\0")


def kernel_eligible(match: Match, key_len: int = KERNEL_KEY_LEN) -> bool:
    """Whether the kernel can ever see a packet of this flow (see the module docstring):
    always, with the whole key in the kernel (layout 3)."""
    if key_len >= KEY_LEN:
        return True
    return not any(match.key[key_len:]) and not any(match.mask[key_len + MASK_TAIL :])


_ND_RSV, _ND_OPT = FIELDS["nd_reserved"], FIELDS["nd_options_type"]


def is_nd_ext(match: Match) -> bool:
    """Whether a flow matches ICMPv6 neighbour discovery's reserved word or options
    type: the kernel program leaves them zero in its keys (as programs before them
    did, so a running older program is no different), the daemon parses them."""
    m = match.mask
    return (
        _value(match.key, "eth_type") == 0x86DD
        and any(m[_ND_RSV[0] : _ND_RSV[0] + _ND_RSV[1]] + m[_ND_OPT[0] : _ND_OPT[0] + 1])
        and _exact(m, "ip_proto")
        and _value(match.key, "ip_proto") == 58
    )


def is_nd(kernel_key: bytes) -> bool:
    """Whether a kernel key is an ICMPv6 neighbour solicitation or advertisement's."""
    return (
        kernel_key[16:18] == b"\x86\xdd" and kernel_key[64] == 58 and kernel_key[69] in (135, 136)
    )


def _exact(mask: bytes, name: str) -> bool:
    off, size = FIELDS[name]
    return mask[off : off + size] == b"\xff" * size


def _value(key: bytes, name: str) -> int:
    off, size = FIELDS[name]
    return int.from_bytes(key[off : off + size], "big")


def _ct_reason(i: int, a: Ct) -> str | None:
    """Why layout 3's kernel cannot run this ct action (None: it can, for established
    connections; the rest goes up as a slow-path packet, see the C source)."""
    if i:
        return "ct that is not the flow's first action"
    if a.force:
        return "ct(force)"
    if a.nat is not None and (len(a.nat.addr_min) == 16 or len(a.nat.addr_max) == 16):
        return "IPv6 nat"
    return None


def slowpath_reason(
    match: Match, actions: tuple[Action, ...], layout: Layout | None = None
) -> str | None:
    """Why this flow's actions must run in the daemon, or None if the kernel runs them
    (in ``layout``; None: layout 1)."""
    ct = layout is not None and layout.ct
    if not kernel_eligible(match, layout.key_len if layout else KERNEL_KEY_LEN):
        return "matches metadata only recirculated packets have"
    n = len(actions) + (sum(1 for a in actions if isinstance(a, Ct) and a.label) if ct else 0)
    if n > MAX_ACTIONS:
        return f"more than {MAX_ACTIONS} actions"
    if _exact(match.mask, "eth_type") and _value(match.key, "eth_type") in MPLS_TYPES:
        return "MPLS (the kernel program does not parse label stacks)"
    if is_nd_ext(match):
        return "nd_reserved/nd_options_type (the kernel program does not parse them)"
    if _exact(match.mask, "eth_type") and _value(match.key, "eth_type") == ETH_TYPE_NSH:
        return "NSH (the kernel program does not parse its header)"
    for i, a in enumerate(actions):
        if isinstance(a, Meter):
            return "meter"
        if ct and isinstance(a, Ct):
            why = _ct_reason(i, a)
            if why:
                return why
            continue
        if ct and isinstance(a, Recirc) and i < len(actions) - 1:
            return "actions after a recirculation (the kernel program ends the list there)"
        if ct and isinstance(a, CtClear | Recirc):
            continue
        if ct and isinstance(a, Sample):
            if len(a.userdata) > 16:
                return "sample data longer than 16 bytes"
            continue
        if isinstance(a, SetPriority):
            if layout is not None and layout.priority:
                continue
            return "set_priority (set_queue: layout 4 and later)"
        if not isinstance(a, Output | PushVlan | PopVlan | SetField | Userspace):
            return type(a).__name__.lower()  # ct, ct_clear, recirc: the daemon's
        if isinstance(a, Userspace) and len(a.userdata) > 16:
            return "userspace data longer than 16 bytes"
        if isinstance(a, SetField):
            need = KERNEL_SET_FIELDS.get(a.field)
            if need is None:
                return f"set_field({a.field})"
            types, protos = need
            if types is not None and not (
                _exact(match.mask, "eth_type") and _value(match.key, "eth_type") in types
            ):
                return f"set_field({a.field}) on a flow not limited to {sorted(types)}"
            if protos is not None and not (
                _exact(match.mask, "ip_proto") and _value(match.key, "ip_proto") in protos
            ):
                return f"set_field({a.field}) on a flow not limited to TCP/UDP"
    return None


def _encode_ct(a: Ct) -> list[bytes] | None:
    """A_CT (and A_CT_LABEL), or None if the action has no kernel form (IPv6 nat)."""
    flags = (CTF_COMMIT if a.commit else 0) | (CTF_FORCE if a.force else 0)
    nat_bits, val = 0, bytearray(16)
    msk = bytearray(16)
    if a.mark is not None:
        flags |= CTF_MARK
        val[0:4], msk[0:4] = a.mark[0].to_bytes(4, "big"), a.mark[1].to_bytes(4, "big")
    n = a.nat
    if n is not None:
        if len(n.addr_min) not in (0, 4) or len(n.addr_max) not in (0, 4):
            return None
        flags |= CTF_NAT
        nat_bits = {None: 0, "src": NAT_SRC, "dst": NAT_DST}[n.kind]
        nat_bits |= (NAT_PERSISTENT if n.persistent else 0) | (NAT_RANDOM if n.random else 0)
        if n.addr_min:
            nat_bits |= NAT_ADDR_MIN
            val[4:8] = n.addr_min
        if n.addr_max:
            nat_bits |= NAT_ADDR_MAX
            val[8:12] = n.addr_max
        val[12:14], val[14:16] = n.port_min.to_bytes(2, "big"), n.port_max.to_bytes(2, "big")
    out = []
    if a.label is not None:
        flags |= CTF_LABEL
    out.append(ACTION.pack(A_CT, flags, a.zone, nat_bits, bytes(val), bytes(msk)))
    if a.label is not None:
        lv, lm = a.label[0].to_bytes(16, "big"), a.label[1].to_bytes(16, "big")
        out.append(ACTION.pack(A_CT_LABEL, 0, 0, 0, lv, lm))
    return out


def _decode_ct(flags: int, zone: int, nat_bits: int, val: bytes, msk: bytes,
               label: tuple[bytes, bytes] | None) -> Ct:  # fmt: skip
    nat = None
    if flags & CTF_NAT:
        kind = "src" if nat_bits & NAT_SRC else "dst" if nat_bits & NAT_DST else None
        nat = NatSpec(
            kind,  # type: ignore[arg-type]
            val[4:8] if nat_bits & NAT_ADDR_MIN else b"",
            val[8:12] if nat_bits & NAT_ADDR_MAX else b"",
            int.from_bytes(val[12:14], "big"),
            int.from_bytes(val[14:16], "big"),
            bool(nat_bits & NAT_PERSISTENT),
            bool(nat_bits & NAT_RANDOM),
        )
    mark = None
    if flags & CTF_MARK:
        mark = (int.from_bytes(val[0:4], "big"), int.from_bytes(msk[0:4], "big"))
    lab = None
    if label is not None:
        lab = (int.from_bytes(label[0], "big"), int.from_bytes(label[1], "big"))
    return Ct(zone, bool(flags & CTF_COMMIT), bool(flags & CTF_FORCE), nat, mark, lab)


def encode_actions(
    actions: tuple[Action, ...],
    ifindex_of: dict[int, int],
    slowpath: bool,
    ct: bool = False,
    priority: bool = False,
) -> tuple[bytes, int]:
    """(the actions array, n_actions). Every action has an encoding (so a flow can be
    decoded after a restart); the kernel runs them unless the flow is slow-path. ``ct``:
    the layout runs ct/ct_clear/recirc (else they are opaque: the daemon's); ``priority``:
    it runs set_priority (else opaque: a build of an older layout cannot read it)."""
    out: list[bytes] = []
    for i, a in enumerate(actions[:MAX_ACTIONS] if not slowpath else actions):
        if len(out) == MAX_ACTIONS:
            break
        if isinstance(a, Output):
            last = OUT_LAST if i == len(actions) - 1 else 0
            out.append(
                ACTION.pack(
                    A_OUTPUT, 0, last, ifindex_of.get(a.port, 0), a.port.to_bytes(4, "big"), b""
                )  # fmt: skip
            )
        elif isinstance(a, PushVlan):
            out.append(ACTION.pack(A_PUSH_VLAN, 0, a.tpid, a.tci, b"", b""))
        elif isinstance(a, PopVlan):
            out.append(ACTION.pack(A_POP_VLAN, 0, 0, 0, b"", b""))
        elif isinstance(a, SetField):
            size = FIELDS[a.field][1]
            mask = a.mask if a.mask is not None else b"\xff" * size
            out.append(ACTION.pack(A_SET_FIELD, FIELD_IDS[a.field], size, 0, a.value, mask))
        elif isinstance(a, Userspace):
            out.append(ACTION.pack(A_USERSPACE, 0, len(a.userdata), 0, a.userdata[:16], b""))
        elif isinstance(a, Meter):
            out.append(ACTION.pack(A_METER, 0, a.scope, a.meter_id, b"", b""))
        elif ct and isinstance(a, Ct) and (enc := _encode_ct(a)) is not None:
            if len(out) + len(enc) > MAX_ACTIONS:
                out.append(ACTION.pack(A_OPAQUE, 0, 0, 0, b"", b""))
            else:
                out.extend(enc)
        elif ct and isinstance(a, CtClear):
            out.append(ACTION.pack(A_CT_CLEAR, 0, 0, 0, b"", b""))
        elif ct and isinstance(a, Recirc):
            out.append(ACTION.pack(A_RECIRC, 0, 0, a.recirc_id, b"", b""))
        elif ct and isinstance(a, Sample) and len(a.userdata) <= 16:
            out.append(ACTION.pack(A_SAMPLE, 0, len(a.userdata), a.probability, a.userdata, b""))
        elif priority and isinstance(a, SetPriority):
            out.append(ACTION.pack(A_SET_PRIORITY, 0, 0, a.priority, b"", b""))
        else:  # no kernel form: a restarted daemon drops the flow, the next miss remakes it
            out.append(ACTION.pack(A_OPAQUE, 0, 0, 0, b"", b""))
    return b"".join(out), len(out)


def has_opaque(actions: tuple[Action, ...], layout: Layout) -> bool:
    """Whether ``layout`` stores any of ``actions`` without a form a restarted daemon
    can decode (the flow is then dropped at adoption and made again by its next miss)."""
    blob, n = encode_actions(actions, {}, True, layout.ct, layout.priority)
    return any(blob[i * ACTION.size] == A_OPAQUE for i in range(n))


def decode_actions(data: bytes, n: int) -> tuple[Action, ...]:
    out: list[Action] = []
    for i in range(n):
        typ, fid, a16, a32, val, msk = ACTION.unpack_from(data, i * ACTION.size)
        if typ == A_CT:
            label = None
            if fid & CTF_LABEL and i + 1 < n:
                _, _, _, _, lv, lm = ACTION.unpack_from(data, (i + 1) * ACTION.size)
                label = (lv, lm)
            out.append(_decode_ct(fid, a16, a32, val, msk, label))
        elif typ == A_CT_LABEL:
            continue  # read with the A_CT before it
        elif typ == A_CT_CLEAR:
            out.append(CtClear())
        elif typ == A_RECIRC:
            out.append(Recirc(a32))
        elif typ == A_SAMPLE:
            out.append(Sample(a32, val[:a16]))
        elif typ == A_SET_PRIORITY:
            out.append(SetPriority(a32))
        elif typ == A_OUTPUT:
            out.append(Output(int.from_bytes(val[:4], "big")))
        elif typ == A_PUSH_VLAN:
            out.append(PushVlan(a32, a16))
        elif typ == A_POP_VLAN:
            out.append(PopVlan())
        elif typ == A_SET_FIELD:
            name = FIELD_NAMES[fid]
            size = FIELDS[name][1]
            m = msk[:size]
            out.append(SetField(name, val[:size], None if m == b"\xff" * size else m))
        elif typ == A_USERSPACE:
            out.append(Userspace(val[:a16]))
        elif typ == A_METER:
            out.append(Meter(a32, a16))
        else:  # A_OPAQUE, or a type of another build
            raise ValueError(f"unknown kernel action type {typ}")
    return tuple(out)


@dataclass(frozen=True, slots=True)
class KernelFlow:
    """A flow map value, decoded."""

    stats_idx: int
    flags: int
    created_ns: int
    actions: tuple[Action, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """What one ``HL_ABI`` of the program lays out differently from another.

    ``flow_head`` packs the fields of ``flow_fields`` (some order of stats_idx,
    n_actions, flags, created_ns) in front of the actions array of ``struct flow``;
    ``struct masks`` is { u32 n; u32 active[M]; u32 pad; u64 w[M][13]; u8 tail[M][64]; }
    for M = ``max_masks``.
    """

    abi: int
    max_masks: int
    flow_head: struct.Struct
    flow_fields: tuple[str, str, str, str]
    key_len: int = KERNEL_KEY_LEN  # bytes of the flow key the kernel matches
    ct: bool = False  # conntrack, recirculation in the kernel (``hl_ct``)
    priority: bool = False  # set_priority (skb->priority) in the kernel

    @property
    def map_key_len(self) -> int:
        return self.key_len + 2

    @property
    def upcall_hdr(self) -> struct.Struct:
        return struct.Struct(f"<6I{self.map_key_len}s16s")

    def map_key(self, key: bytes, slot: int) -> bytes:
        return map_key(key, slot, self.key_len)

    def widen(self, kernel_key: bytes) -> bytes:
        return widen(kernel_key, self.key_len)

    def eligible(self, match: Match) -> bool:
        return kernel_eligible(match, self.key_len)

    @property
    def flow_size(self) -> int:
        return self.flow_head.size + MAX_ACTIONS * ACTION.size

    @property
    def masks_head(self) -> struct.Struct:
        return struct.Struct(f"<I{self.max_masks}I4x")

    @property
    def masks_tail_off(self) -> int:
        return self.masks_head.size + self.max_masks * self.map_key_len

    @property
    def masks_size(self) -> int:
        return self.masks_tail_off + self.max_masks * MASK_TAIL

    def encode_flow(
        self, stats_idx: int, flags: int, created_ns: int, actions_blob: bytes, n: int
    ) -> bytes:
        v = {"stats_idx": stats_idx, "n_actions": n, "flags": flags, "created_ns": created_ns}
        head = self.flow_head.pack(*(v[f] for f in self.flow_fields))
        return head + actions_blob.ljust(self.flow_size - self.flow_head.size, b"\0")

    def decode_flow(self, value: bytes) -> KernelFlow:
        v = dict(zip(self.flow_fields, self.flow_head.unpack_from(value, 0), strict=True))
        actions = decode_actions(value[self.flow_head.size :], v["n_actions"])
        return KernelFlow(v["stats_idx"], v["flags"], v["created_ns"], actions)

    def encode_masks(self, slots: list[bytes | None]) -> bytes:
        """The mask list value: each slot's first 102 bytes (what the program ANDs)
        and, apart, the rest of the mask (kept for a restarted daemon)."""
        assert len(slots) == self.max_masks
        active = [1 if m is not None else 0 for m in slots]
        n = max((i + 1 for i, a in enumerate(active) if a), default=0)
        k = self.key_len
        body = b"".join((m or b"")[:k].ljust(self.map_key_len, b"\0") for m in slots)
        tails = b"".join((m or b"")[k:].ljust(MASK_TAIL, b"\0") for m in slots)
        return self.masks_head.pack(n, *active) + body + tails

    def decode_masks(self, raw: bytes) -> list[bytes | None]:
        """Per slot, the whole mask (KEY_LEN bytes) or None."""
        head = self.masks_head.unpack_from(raw)
        n, active = head[0], head[1:]
        k = self.key_len
        tail_len = KEY_LEN - k
        out: list[bytes | None] = [None] * self.max_masks
        for slot in range(min(n, self.max_masks)):
            if active[slot]:
                off = self.masks_head.size + slot * self.map_key_len
                toff = self.masks_tail_off + slot * MASK_TAIL
                out[slot] = raw[off : off + k] + raw[toff : toff + tail_len]
        return out


LAYOUTS = {
    # struct flow { u32 stats_idx; u16 n_actions, flags; u64 created_ns; action[16]; }
    1: Layout(1, 32, struct.Struct("<IHHQ"), ("stats_idx", "n_actions", "flags", "created_ns")),
    # The test variant: 64 mask slots; { u64 created_ns; u32 stats_idx; u16 flags, n_actions; }
    2: Layout(2, 64, struct.Struct("<QIHH"), ("created_ns", "stats_idx", "flags", "n_actions")),
    # Layout 1's flow value; the whole 142-byte key; conntrack and recirculation in the
    # kernel (``hl_ct``).
    3: Layout(
        3,
        32,
        struct.Struct("<IHHQ"),
        ("stats_idx", "n_actions", "flags", "created_ns"),
        KEY_LEN,
        True,
    ),  # fmt: skip
    # Layout 3 plus set_priority in the kernel (OpenFlow's set_queue: skb->priority, which
    # the output device's htb/hfsc qdisc classifies by).
    4: Layout(
        4,
        32,
        struct.Struct("<IHHQ"),
        ("stats_idx", "n_actions", "flags", "created_ns"),
        KEY_LEN,
        True,
        True,
    ),  # fmt: skip
}
# The layout a datapath this build creates gets, and moves a running one to.
DEFAULT_ABI = 4
LAYOUT_ENV = "HITLESS_EBPF_LAYOUT"


def native() -> Layout:
    """This build's own layout: ``DEFAULT_ABI``, or ``$HITLESS_EBPF_LAYOUT`` (how the
    tests make a build of another layout out of this one)."""
    raw = os.environ.get(LAYOUT_ENV, "")
    if not raw:
        return LAYOUTS[DEFAULT_ABI]
    try:
        return LAYOUTS[int(raw)]
    except (ValueError, KeyError):
        raise ValueError(
            f"{LAYOUT_ENV}={raw!r}: this build knows the ebpf layouts {sorted(LAYOUTS)}"
        ) from None


def sum_stats(value: bytes | memoryview, ncpus: int) -> tuple[int, int, int, int]:
    """(packets, bytes, used_ns, tcp_flags) over the per-CPU values."""
    p = b = u = f = 0
    for c in range(ncpus):
        cp, cb, cu, cf = FSTATS.unpack_from(value, c * FSTATS.size)
        p += cp
        b += cb
        if cu > u:
            u = cu
        f |= cf
    return p, b, u, f
