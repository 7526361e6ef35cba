"""Bounds-checked reading of OpenFlow structures (private to the codec).

Every read past the end raises ``RemoteProtocolError`` with the error the caller chose
for that structure (the default is OFPBRC_BAD_LEN), never ``struct.error``.
"""

from __future__ import annotations

import struct
from typing import Any

from hitless.openflow.constants import BadRequestCode, ErrorType
from hitless.openflow.errors import LocalProtocolError, RemoteProtocolError

BAD_LEN = (ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)


class Reader:
    """A cursor over ``buf[pos:end]``; ``error`` is what a short read raises."""

    __slots__ = ("buf", "pos", "end", "error")

    def __init__(
        self,
        buf: bytes,
        pos: int = 0,
        end: int | None = None,
        error: tuple[int, int] = BAD_LEN,
    ) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end
        self.error = error

    def fail(self, message: str, error: tuple[int, int] | None = None) -> RemoteProtocolError:
        etype, code = error or self.error
        return RemoteProtocolError(message, etype, code)

    def remaining(self) -> int:
        return self.end - self.pos

    def unpack(self, st: struct.Struct, what: str = "structure") -> tuple[Any, ...]:
        if self.pos + st.size > self.end:
            raise self.fail(f"truncated {what}: need {st.size} bytes, have {self.remaining()}")
        values = st.unpack_from(self.buf, self.pos)
        self.pos += st.size
        return values

    def take(self, n: int, what: str = "data") -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"truncated {what}: need {n} bytes, have {self.remaining()}")
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(data)

    def rest(self) -> bytes:
        return self.take(self.remaining())

    def sub(self, n: int, what: str, error: tuple[int, int] | None = None) -> Reader:
        """A reader over the next ``n`` bytes (consumed from this one)."""
        err = error or self.error
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"{what} length {n} exceeds the {self.remaining()} bytes left", err)
        r = Reader(self.buf, self.pos, self.pos + n, err)
        self.pos += n
        return r

    def peek(self, st: struct.Struct) -> tuple[Any, ...] | None:
        if self.pos + st.size > self.end:
            return None
        return st.unpack_from(self.buf, self.pos)

    def expect_end(self, what: str) -> None:
        if self.pos != self.end:
            raise self.fail(f"{self.remaining()} unexpected bytes after {what}")


def pad8(n: int) -> int:
    """Bytes of padding that bring ``n`` to a multiple of 8 (§7.2: structures align to 8)."""
    return (8 - n % 8) % 8


def fixed_str(value: str, size: int, what: str) -> bytes:
    """A NUL-terminated, NUL-padded string field of ``size`` bytes."""
    raw = value.encode()
    if len(raw) >= size or b"\0" in raw:
        raise LocalProtocolError(f"{what} {value!r} does not fit in {size - 1} bytes")
    return raw.ljust(size, b"\0")


def parse_str(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def check_uint(value: int, bits: int, what: str) -> None:
    if not 0 <= value < (1 << bits):
        raise LocalProtocolError(f"{what} {value} does not fit in {bits} bits")
