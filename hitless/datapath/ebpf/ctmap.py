"""Layout 3's established-connection map ``hl_ct``: the connections the kernel tracks.

The daemon's tracker (hitless.datapath.conntrack) stays the authority: it sees every
new connection, every TCP SYN/FIN/RST, ICMP and related errors, zone limits and
timeouts. Once it has seen a connection established (a reply seen; TCP: both sides
ESTABLISHED), ``CtMap.sync`` writes it to the kernel, one entry per direction keyed by
zone and 5-tuple, holding the ct fields a packet of that direction gets in its key
(``ct_key``'s tail), the NAT rewrite of that direction (IPv4), and a last-seen time the
kernel stamps. From then on the kernel runs ct() for the connection's TCP segments
that carry only ACK (no SYN/FIN/RST) and its UDP datagrams; everything else still comes
up as a slow-path packet, and ``sync`` removes the entries as soon as the tracker says
the connection is closing, gone or changed (mark, label), or rewrites them.

What the kernel cannot do and the tracker therefore does not do either for these
connections: TCP window checks. The kernel sees sequence numbers go by without keeping
them, so an offloaded TCP connection is marked ``liberal`` in the tracker (as one
picked up mid-stream): the segments it later sees (FIN, RST) are not window-checked.

Timeouts: ``refresh`` (a slice per call) extends each connection's expiration from the
kernel's last-seen time, and drops the entries of connections the tracker no longer
has (expired, flushed). A flush therefore reaches the kernel within a refresh round
(``REFRESH_EVERY``), not at once.

After ``kill -9`` the new daemon's tracker is empty: ``adopt`` reads the map and imports
its connections (liberal TCP, ESTABLISHED both ways), so the established connections
the kernel kept forwarding are still known when their FIN comes.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass

from hitless.datapath.conntrack import (
    CS_EST,
    CS_RPL,
    CS_TRK,
    TCPS_ESTABLISHED,
    Conn,
    ConnRecord,
    Conntrack,
    CtResult,
    CtTuple,
)
from hitless.datapath.ebpf import layout as L
from hitless.datapath.ebpf import libbpf
from hitless.datapath.execute import ct_key
from hitless.packet.flow import CT_OFF, KEY_LEN

__all__ = ["REFRESH_EVERY", "CtMap", "offloadable"]

REFRESH_EVERY = 0.5  # seconds between refresh slices
REFRESH_BUDGET = 512  # connections per slice
_TCP, _UDP = 6, 17


def offloadable(conn: Conn) -> bool:
    """Whether the kernel may track ``conn``'s packets (see the module docstring)."""
    if not conn.seen_reply or conn.orig.proto not in (_TCP, _UDP):
        return False
    if conn.nat and conn.orig.v6:
        return False  # the kernel rewrites IPv4 only
    if conn.peers is not None:
        return all(p.state == TCPS_ESTABLISHED for p in conn.peers)
    return True


def ct_map_key(zone: int, t: CtTuple) -> bytes:
    return L.CT_KEY.pack(
        zone,
        t.proto,
        1 if t.v6 else 0,
        t.sport.to_bytes(2, "big"),
        t.dport.to_bytes(2, "big"),
        t.src.ljust(16, b"\0"),
        t.dst.ljust(16, b"\0"),
    )


def entries(conn: Conn, last_ns: int) -> list[tuple[bytes, bytes]]:
    """The two map entries (key, value) of ``conn``: original and reply direction."""
    out = []
    for reply in (False, True):
        t = conn.reply if reply else conn.orig
        state = CS_TRK | CS_EST | (CS_RPL if reply else 0)
        tail = ct_key(bytes(KEY_LEN), CtResult(state, conn.zone, conn.mark, conn.label, conn.orig))
        rw, src, dst, sport, dport = 0, bytes(4), bytes(4), 0, 0
        if conn.nat:
            # Translated, a packet looks like the other direction's tuple reversed.
            new = (conn.orig if reply else conn.reply).reverse()
            rw, src, dst, sport, dport = L.RW_NAT, new.src, new.dst, new.sport, new.dport
        value = L.CT_ENTRY.pack(
            tail[CT_OFF + 4 :],
            conn.nat,
            rw,
            src,
            dst,
            sport.to_bytes(2, "big"),
            dport.to_bytes(2, "big"),
            last_ns,
        )
        out.append((ct_map_key(conn.zone, t), value))
    return out


@dataclass(slots=True)
class _Known:
    conn: Conn
    sig: tuple[int, int, int, CtTuple]  # mark, label, nat, reply: what the entries hold
    timeout: float  # the tracker's timeout for the connection's established state


def _sig(conn: Conn) -> tuple[int, int, int, CtTuple]:
    return (conn.mark, conn.label, conn.nat, conn.reply)


class CtMap:
    """The kernel's copy of the tracker's established connections (one datapath)."""

    def __init__(self, ct: Conntrack, m: libbpf.Map, clock: Callable[[], float]) -> None:
        self.ct = ct
        self.map = m
        self.clock = clock  # the tracker's clock (the daemon's, maybe warped)
        self.known: dict[tuple[int, CtTuple], _Known] = {}
        self._cursor: list[tuple[int, CtTuple]] = []
        self._at = 0.0
        self.n = {"ct_written": 0, "ct_removed": 0, "ct_full": 0, "ct_adopted": 0}

    def _timeout(self, conn: Conn) -> float:
        name = "tcp_established" if conn.peers is not None else "udp_multiple"
        return self.ct.timeouts[name]

    def sync(self, zone: int, orig: CtTuple) -> None:
        """After the tracker ran a packet of connection (zone, orig): write, rewrite or
        remove its entries so the kernel agrees with the tracker."""
        key = (zone, orig)
        known = self.known.get(key)
        conn = self.ct.get(zone, orig)
        if conn is None or not offloadable(conn):
            if known is not None:
                self._remove(key, known)
            return
        if known is not None and known.conn is conn and known.sig == _sig(conn):
            return
        if known is not None and known.sig[3] != conn.reply:
            self._remove(key, known)
        self._write(conn)

    def _write(self, conn: Conn) -> None:
        now_ns = time.monotonic_ns()
        try:
            for k, v in entries(conn, now_ns):
                self.map.update(k, v)
        except libbpf.BpfError as e:
            if e.errno not in (errno.E2BIG, errno.ENOMEM, errno.ENOSPC):
                raise
            self.n["ct_full"] += 1  # the tracker carries it (slow path)
            for k, _ in entries(conn, 0):
                self.map.delete(k)
            return
        if conn.peers is not None:
            conn.liberal = True  # see the module docstring
        self.known[(conn.zone, conn.orig)] = _Known(conn, _sig(conn), self._timeout(conn))
        self.n["ct_written"] += 1

    def _remove(self, key: tuple[int, CtTuple], known: _Known) -> None:
        zone, orig = key
        self.map.delete(ct_map_key(zone, orig))
        self.map.delete(ct_map_key(zone, known.sig[3]))
        del self.known[key]
        self.n["ct_removed"] += 1

    def forget_gone(self) -> None:
        """Remove at once the entries of every connection the tracker no longer has
        (after dpctl/flush-conntrack)."""
        for key, known in list(self.known.items()):
            if self.ct.get(*key) is not known.conn:
                self.sync(*key)

    def write_all(self) -> None:
        """Every established connection the tracker has (a move to a ct layout)."""
        for conn in self.ct:
            self.sync(conn.zone, conn.orig)

    def refresh(self, force: bool = False) -> None:
        """A slice of the known connections: extend each one's expiration from the
        kernel's last-seen stamp; drop (or rewrite) what the tracker no longer agrees
        with. At most every ``REFRESH_EVERY`` seconds unless ``force``."""
        mono = time.monotonic()
        if not force and mono - self._at < REFRESH_EVERY:
            return
        self._at = mono
        if not self._cursor:
            self._cursor = list(self.known)
        offset = self.clock() - mono  # tracker time of a monotonic instant
        for _ in range(min(REFRESH_BUDGET, len(self._cursor))):
            key = self._cursor.pop()
            known = self.known.get(key)
            if known is None:
                continue
            conn = self.ct.get(*key)
            if conn is not known.conn or conn is None or known.sig != _sig(conn):
                self.sync(*key)
                continue
            last = 0
            for k in (ct_map_key(key[0], key[1]), ct_map_key(key[0], known.sig[3])):
                raw = self.map.lookup(k)
                if raw is not None:
                    last = max(last, L.CT_ENTRY.unpack_from(raw)[-1])
            if last:
                conn.expiration = max(conn.expiration, last / 1e9 + offset + known.timeout)

    def adopt(self) -> int:
        """Import the map's connections the tracker lacks (a daemon started after a
        crash) and take over every entry; returns how many were imported."""
        now = self.clock()
        mono_ns = time.monotonic_ns()
        records: list[ConnRecord] = []
        seen: list[tuple[int, CtTuple]] = []
        stale: list[bytes] = []
        for k in self.map.all_keys():
            raw = self.map.lookup(k)
            if raw is None:
                continue
            zone, proto, v6, sp, dp, src, dst = L.CT_KEY.unpack(k)
            tail, nat, rw, nsrc, ndst, nsp, ndp, last = L.CT_ENTRY.unpack(raw)
            if tail[0] & CS_RPL:
                continue  # the reply direction: taken with its original one
            n = 16 if v6 else 4
            orig = CtTuple(src[:n], dst[:n], proto, int.from_bytes(sp, "big"),
                           int.from_bytes(dp, "big"))  # fmt: skip
            if nat and rw:
                reply = CtTuple(ndst, nsrc, proto, int.from_bytes(ndp, "big"),
                                int.from_bytes(nsp, "big"))  # fmt: skip
            else:
                reply = orig.reverse()
            seen.append((zone, orig))
            if self.ct.get(zone, orig) is not None:
                continue
            tcp = proto == _TCP
            timeout = self.ct.timeouts["tcp_established" if tcp else "udp_multiple"]
            left = max(1.0, timeout - max(0, mono_ns - last) / 1e9) if last else timeout
            est = (TCPS_ESTABLISHED, 0, 0, 1, -1, True)
            records.append(
                ConnRecord(
                    zone,
                    tuple(orig),  # type: ignore[arg-type]
                    tuple(reply),  # type: ignore[arg-type]
                    left,
                    nat,
                    int.from_bytes(tail[4:8], "big"),
                    int.from_bytes(tail[8:24], "big"),
                    True,
                    "bidir",
                    (est, est) if tcp else (),
                    tcp,
                )
            )
        imported = self.ct.import_records(records, now) if records else 0
        self.n["ct_adopted"] += imported
        keep: set[bytes] = set()
        for zone, orig in seen:
            self.sync(zone, orig)
            known = self.known.get((zone, orig))
            if known is not None:
                keep.add(ct_map_key(zone, orig))
                keep.add(ct_map_key(zone, known.sig[3]))
        for k in self.map.all_keys():
            if k not in keep:
                stale.append(k)
        for k in stale:
            self.map.delete(k)
        return imported
