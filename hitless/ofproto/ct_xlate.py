"""Translation of connection tracking: OpenFlow ``ct``/``ct_clear`` become the datapath
actions ``Ct``, ``Recirc`` and ``CtClear`` (hitless.datapath.actions).

``ct(...,table=T)`` ends the translation where it stands: the datapath runs the packet
through its tracker and recirculates it with a recirculation id that stands for the
*frozen state*, what translation needs to resume: the table T, the OpenFlow in_port and
the pipeline-only region (registers, metadata). A recirculated packet's upcall carries
that id, and translation resumes in table T with those values (``resume``), matching on
the ct fields the datapath wrote into the key.

Recirculation ids are a pure function of the frozen state (a CRC32, probed past a
collision), so translating the same rule twice, in this process or after a handoff,
gives the same id without shared counters; the ids in use and their frozen states live
in the datapath's ``recirc`` map (carried by a handoff with the datapath's flows), which
the bridge updates from ``Xlate.recirc``. Ids are never reused for another state.

Open vSwitch forks at ``ct(table=...)``: a copy recirculates (the datapath's ``recirc``
forks) and the actions after it in the same list go on with the packet, which
translation then sees untracked (its ct fields cleared), as Open vSwitch does; inside a
``clone()`` or a group bucket, only that copy resumes after recirculation. The action
set is not part of the frozen state here (Open vSwitch carries it too): it runs at the
end of the translation that froze, not again after the recirculation.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping

from hitless.datapath import actions as dp
from hitless.datapath.conntrack import NatSpec
from hitless.ofproto.fields import LOCS, Loc
from hitless.openflow.nx_ct import RECIRC_NONE, CtAction, FieldReader
from hitless.packet.flow import CT_OFF, FIELDS, KEY_LEN

__all__ = [
    "clear_ct_fields",
    "decode_frozen",
    "encode_frozen",
    "nat_spec",
    "recirc_id_for",
    "xlate_ct",
]

_FROZEN = struct.Struct("!BI")
CT_KEY_FIELDS = ("ct_state", "ct_nw_proto", "ct_zone", "ct_mark", "ct_label",
                 "ct_nw_src", "ct_nw_dst", "ct_tp_src", "ct_tp_dst")  # fmt: skip


def _key_loc(name: str) -> Loc:
    off, size = FIELDS[name]
    return Loc((KEY_LEN - off - size) * 8, size * 8, name)


# Where the ct match fields live: in the datapath key, written by the ct action (so a
# rule matching them puts them in the megaflow mask like any header). ct_state is 32
# bits in NXM, 8 in the key (Open vSwitch defines 8 bits). The IPv6 original tuple is
# not in the key: rules matching ct_ipv6_src/dst are refused.
for _name in CT_KEY_FIELDS:
    LOCS.setdefault(_name, _key_loc(_name))

_ZERO_CT = bytes(KEY_LEN - CT_OFF - 4)


def clear_ct_fields(key: bytes) -> bytes:
    """``key`` after ct_clear: every ct field 0 (recirc_id kept)."""
    return key[: CT_OFF + 4] + _ZERO_CT


def encode_frozen(table: int, in_port: int, meta: int) -> bytes:
    """The frozen state of a recirculation: table, OpenFlow in_port, pipeline region."""
    return _FROZEN.pack(table, in_port) + meta.to_bytes((meta.bit_length() + 7) // 8, "big")


def decode_frozen(blob: bytes) -> tuple[int, int, int]:
    """(table, in_port, meta) of ``encode_frozen``; ValueError if malformed."""
    if len(blob) < _FROZEN.size:
        raise ValueError("frozen state too short")
    table, in_port = _FROZEN.unpack_from(blob)
    return table, in_port, int.from_bytes(blob[_FROZEN.size :], "big")


def recirc_id_for(blob: bytes, known: Mapping[int, bytes]) -> int:
    """The recirculation id of a frozen state: CRC32-derived, never 0, the first not
    taken by another state in ``known``."""
    rid = zlib.crc32(blob) & 0x7FFFFFFF or 1
    while known.get(rid, blob) != blob:
        rid = rid % 0x7FFFFFFF + 1
    return rid


def nat_spec(a: CtAction) -> NatSpec | None:
    n = a.nat()
    if n is None:
        return None
    kind = n.kind
    return NatSpec(
        kind,  # type: ignore[arg-type]
        n.addr_min if kind else b"",
        n.addr_max if kind else b"",
        n.port_min,
        n.port_max,
        persistent=bool(n.flags & 4),
        random=bool(n.flags & 16),
    )


def xlate_ct(
    a: CtAction,
    zone: int,
    table_in_port: int,
    meta: int,
    known: Mapping[int, bytes],
    read: FieldReader | None = None,
) -> tuple[list[dp.Action], tuple[int, bytes] | None]:
    """The datapath actions of a ``ct`` whose zone is ``zone`` (already read), and the
    (recirculation id, frozen state) it uses, if it recirculates. ``read`` gives the
    bits an ``exec(move:...)`` copies into ct_mark/ct_label (OVN keeps its ACL's label
    in a register)."""
    mark = label = None
    for name, value, mask in a.writes(read):
        if name == "ct_mark":
            mark = (value & 0xFFFFFFFF, mask & 0xFFFFFFFF)
        elif name == "ct_label":
            label = (value, mask)
    acts: list[dp.Action] = [dp.Ct(zone, a.commit, a.force, nat_spec(a), mark, label)]
    if a.table == RECIRC_NONE:
        return acts, None
    blob = encode_frozen(a.table, table_in_port, meta)
    rid = recirc_id_for(blob, known)
    acts.append(dp.Recirc(rid))
    return acts, (rid, blob)
