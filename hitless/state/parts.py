"""Big msgpack values built in pieces, so that a handoff never encodes, hashes or copies
a whole snapshot in one go.

msgpack is concatenative: an array is a header (its length) followed by its items, and
a byte string (``bin``) a header followed by its bytes. So a list of records can be
encoded slice by slice (``RecordList``) and dropped into an enclosing struct as
``msgspec.Raw``, and a message whose last field is a byte string can be framed around
pieces it never joins (``with_bin_tail``). Pure: no I/O, no clock.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

__all__ = ["RecordList", "Splicer", "array_header", "bin_header", "with_bin_tail"]

_encoder = msgspec.msgpack.Encoder()


def array_header(n: int) -> bytes:
    """The msgpack array header for ``n`` items (the shortest form, as msgspec writes)."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def bin_header(n: int) -> bytes:
    """The msgpack ``bin`` header for ``n`` bytes (the shortest form)."""
    if n < 1 << 8:
        return b"\xc4" + n.to_bytes(1, "big")
    if n < 1 << 16:
        return b"\xc5" + n.to_bytes(2, "big")
    return b"\xc6" + n.to_bytes(4, "big")


_EMPTY_BIN = bin_header(0)


def with_bin_tail(encoded: bytes, n: int) -> bytes:
    """``encoded`` is a msgpack value whose last field is an empty byte string: return
    its bytes up to that field's header, with a header for ``n`` bytes instead. Sent
    before those ``n`` bytes, it encodes the same value with them as the last field."""
    if not encoded.endswith(_EMPTY_BIN):
        raise ValueError("the encoded value does not end with an empty byte string")
    return encoded[: -len(_EMPTY_BIN)] + bin_header(n)


class RecordList:
    """A list of records encoded slice by slice; ``parts()`` is the encoded list as
    pieces (its header, then each slice's items)."""

    __slots__ = ("_parts", "n")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.n = 0

    def extend(self, records: list[Any]) -> None:
        if not records:
            return
        data = _encoder.encode(records)
        self._parts.append(data[len(array_header(len(records))) :])
        self.n += len(records)

    def parts(self) -> list[bytes]:
        return [array_header(self.n), *self._parts]


class Splicer:
    """Encodes a value whose big lists are ``RecordList``s, as pieces, copying none of
    them: ``placeholder(records)`` goes where the value has the list, ``encode(value)``
    returns the pieces that, concatenated, are the value with the lists in place."""

    def __init__(self) -> None:
        self._lists: dict[bytes, RecordList] = {}

    def placeholder(self, records: RecordList) -> Any:
        marker = b"\xc1" + secrets.token_bytes(15)  # 0xc1: never a msgpack type byte
        self._lists[marker] = records
        return msgspec.Raw(marker)  # written verbatim where the list goes

    def encode(self, value: Any) -> list[bytes]:
        skeleton = _encoder.encode(value)  # small: every big list is a marker
        at = []
        for marker, records in self._lists.items():
            i = skeleton.find(marker)
            if i < 0 or skeleton.find(marker, i + 1) >= 0:
                raise ValueError("a placeholder is missing or repeated in the value")
            at.append((i, marker, records))
        out: list[bytes] = []
        pos = 0
        for i, marker, records in sorted(at, key=_first):
            out.append(skeleton[pos:i])
            out.extend(records.parts())
            pos = i + len(marker)
        out.append(skeleton[pos:])
        return out


def _first(item: tuple[int, bytes, RecordList]) -> int:
    return item[0]
