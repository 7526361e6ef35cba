"""A consumer of a BPF ring buffer map, mapped into this process (no libbpf callback).

The map is a kernel object: its records and its consumer position outlive the process
that reads it, so a daemon started after ``kill -9`` (or the new process of an upgrade)
maps the same ring and carries on where the last reader stopped. The position is
committed lazily: records handed out by ``read`` are released (the consumer position
written) at the next ``read`` or ``commit``, so a reader that dies while handling a
batch leaves that batch to the next reader (delivered again, never lost).

Layout (kernel/bpf/ringbuf.c): page 0 is the consumer position (read-write); page 1
the producer position; from page 2 the data area, mapped twice in a row so a record
that wraps reads as one slice. Each record has an 8-byte header: the length with a
BUSY (being written) and a DISCARD bit, then the page offset; records are 8-aligned.
"""

from __future__ import annotations

import mmap
import struct

__all__ = ["RingReader"]

_BUSY = 1 << 31
_DISCARD = 1 << 30
_POS = struct.Struct("<Q")
_LEN = struct.Struct("<I")


class RingReader:
    def __init__(self, fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.fd = fd
        self.size = size
        self._mask = size - 1
        self._cons = mmap.mmap(fd, page, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=0)  # fmt: skip
        self._prod = mmap.mmap(fd, page + 2 * size, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ, offset=page)  # fmt: skip
        self._data = memoryview(self._prod)[page:]
        self._pending = _POS.unpack_from(self._cons, 0)[0]
        self._batch_start = self._pending

    def backlog(self) -> int:
        """Bytes of records written and not yet consumed."""
        return int(_POS.unpack_from(self._prod, 0)[0] - _POS.unpack_from(self._cons, 0)[0])

    def resync(self) -> None:
        """Continue from the ring's committed position (another reader may have moved
        it since this one last read): records handed out and not committed are read
        again."""
        self._pending = self._batch_start = _POS.unpack_from(self._cons, 0)[0]

    def commit(self) -> None:
        """Release the records already handed out."""
        _POS.pack_into(self._cons, 0, self._pending)

    def rewind(self) -> None:
        """Hand the last batch back: commit only up to where it started, so that the
        next reader (a new process) reads it again."""
        self._pending = self._batch_start
        self.commit()

    def read(self, max_records: int, more: bool = False) -> list[bytes]:
        """Up to ``max_records`` complete records (copies), oldest first. ``more``: the
        records after the last batch, as part of it (nothing committed: the batch
        grows; a ``rewind`` hands all of it back)."""
        if not more:
            self.commit()
            self._batch_start = self._pending
        cons = self._pending
        prod = _POS.unpack_from(self._prod, 0)[0]
        out: list[bytes] = []
        data = self._data
        mask = self._mask
        while cons < prod and len(out) < max_records:
            off = cons & mask
            hdr = _LEN.unpack_from(data, off)[0]
            if hdr & _BUSY:
                break
            n = hdr & ~(_BUSY | _DISCARD)
            if not hdr & _DISCARD:
                out.append(bytes(data[off + 8 : off + 8 + n]))
            cons += (n + 8 + 7) & ~7
        self._pending = cons
        return out

    def close(self) -> None:
        """Unmap (without committing: a reader that is not the ring's owner must not
        move the shared position; the owner commits first)."""
        self._data.release()
        self._prod.close()
        self._cons.close()
