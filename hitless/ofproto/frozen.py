"""Frozen translation state with actions: what a recirculation resumes when translation
had to stop in the middle of a rule's actions (Open vSwitch's ``frozen_state``).

After ``pop_mpls`` to a non-MPLS EtherType the flow key does not show the inner headers,
so an action that reads or writes them (``dec_ttl``, an L3/L4 ``set_field``, a lookup...)
cannot be translated yet. Translation *freezes*: the action and every one left after it,
at every resubmit level (innermost first, each level's after a ``Unroll`` that restores
its table and cookie), the rule's instructions still to run, the action set, the
register stack, the pipeline's in_port and its registers and metadata become a
``FrozenState``; the datapath recirculates the packet with a recirculation id that
stands for it, and the packet's next upcall (now parsed to the inner headers) resumes
those actions (hitless.ofproto.ofxlate).

Encoding: byte 0xFF, then the format (1). The older frozen states of ``ct(table=)`` and
of a lookup right after a pop (hitless.ofproto.ct_xlate.encode_frozen) start with their
table (at most 253), so both kinds share the datapath's ``recirc`` map; the datapath
exports these under a key of their own in a handoff, which a build without them ignores
(it re-translates the packets, never runs a state it cannot read). Pure: no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hitless.openflow import actions as of
from hitless.openflow._wire import Reader
from hitless.openflow.errors import RemoteProtocolError

__all__ = ["MARK", "FrozenState", "Unroll", "is_frozen_actions"]

MARK = 0xFF  # the first byte of a frozen state with actions (a table id is at most 253)
_HEAD = struct.Struct("!BBI")  # mark, format, in_port
_U16 = struct.Struct("!H")
_UNROLL = struct.Struct("!BQ")

# Item tags in the encoding
_ACTIONS, _UNROLL_TAG, _WRITE, _CLEAR = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Unroll:
    """Frozen-actions marker: the actions after it belong to the rule of this table and
    cookie (packet-ins, ``resubmit(,255)`` and dec_ttl's errors report them)."""

    table_id: int
    cookie: int


Item = of.Action | of.WriteActions | of.ClearActions | Unroll


def is_frozen_actions(blob: bytes) -> bool:
    """True for a ``FrozenState`` encoding (else: ct_xlate's table-only form)."""
    return blob[:1] == bytes((MARK,))


def _varint(v: int) -> bytes:
    b = v.to_bytes((v.bit_length() + 7) // 8, "big")
    return bytes((len(b),)) + b


@dataclass(frozen=True, slots=True)
class FrozenState:
    """The pipeline's in_port, its registers and metadata (``meta``), the register
    stack, the action set (its actions, in the set's order) and the actions left."""

    in_port: int
    meta: int
    stack: tuple[int, ...]
    action_set: tuple[of.Action, ...]
    items: tuple[Item, ...]

    def encode(self) -> bytes:
        meta = self.meta.to_bytes((self.meta.bit_length() + 7) // 8, "big")
        out = [_HEAD.pack(MARK, 1, self.in_port), _U16.pack(len(meta)), meta,
               bytes((len(self.stack),)), *(_varint(v) for v in self.stack)]  # fmt: skip
        aset = of.encode_actions(self.action_set)
        out.append(_U16.pack(len(aset)) + aset)
        run: list[of.Action] = []

        def flush() -> None:
            if run:
                acts = of.encode_actions(run)
                out.append(bytes((_ACTIONS,)) + _U16.pack(len(acts)) + acts)
                run.clear()

        for it in self.items:
            if isinstance(it, Unroll):
                flush()
                out.append(bytes((_UNROLL_TAG,)) + _UNROLL.pack(it.table_id, it.cookie))
            elif isinstance(it, of.WriteActions):
                flush()
                acts = of.encode_actions(it.actions)
                out.append(bytes((_WRITE,)) + _U16.pack(len(acts)) + acts)
            elif isinstance(it, of.ClearActions):
                flush()
                out.append(bytes((_CLEAR,)))
            else:
                run.append(it)
        flush()
        return b"".join(out)

    @classmethod
    def decode(cls, data: bytes) -> FrozenState:
        """ValueError if ``data`` is not a frozen state of this format."""
        r = Reader(data)
        try:
            mark, fmt, in_port = r.unpack(_HEAD, "frozen state")
            if mark != MARK or fmt != 1:
                raise ValueError(f"frozen state format {mark:#x}/{fmt}")
            (n,) = r.unpack(_U16)
            meta = int.from_bytes(r.take(n), "big")
            stack = tuple(int.from_bytes(r.take(r.take(1)[0]), "big") for _ in range(r.take(1)[0]))
            (n,) = r.unpack(_U16)
            aset = of.parse_actions(r.sub(n, "frozen action set"))
            items: list[Item] = []
            while r.remaining():
                tag = r.take(1)[0]
                if tag == _UNROLL_TAG:
                    items.append(Unroll(*r.unpack(_UNROLL)))
                elif tag == _CLEAR:
                    items.append(of.ClearActions())
                elif tag in (_ACTIONS, _WRITE):
                    (n,) = r.unpack(_U16)
                    acts = of.parse_actions(r.sub(n, "frozen actions"))
                    items.extend(acts) if tag == _ACTIONS else items.append(of.WriteActions(acts))
                else:
                    raise ValueError(f"frozen state item {tag}")
        except RemoteProtocolError as e:
            raise ValueError(str(e)) from None
        return cls(in_port, meta, stack, aset, tuple(items))
