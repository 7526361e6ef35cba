"""The ebpf datapath provider (``Bridge.datapath_type=ebpf``).

One BPF program and its maps per bridge (bpf/datapath.bpf.c), attached on clsact
ingress of every port. The kernel forwards every packet that hits a megaflow; this
process handles what the kernel hands it through the ring buffer ``hl_upcalls``:

* a miss becomes an ``Upcall`` for the bridge, which installs a megaflow (one
  ``bpf_map_update_elem``) and sends the packet on with ``execute``;
* a packet of a flow the kernel cannot run (``layout.slowpath_reason``: meters, fields
  the program does not rewrite, more than 16 actions, no free mask slot) is run here
  with the generic interpreter and counted (``stats()["slowpath_executed"]``), and a
  miss whose flow was installed meanwhile is run here too, without bothering the bridge;
* a ``userspace`` action becomes an ``Upcall`` with reason "action".

TCP and UDP checksums a sending host left to offload are finished first (``csum``).

``execute`` sends through an AF_PACKET socket per port (a system port: the device
itself, so the frame leaves towards its host; an internal port: the hidden veth peer,
so the frame arrives at the bridge's own device).

Ports: a ``system`` port is an existing device; an ``internal`` port is a veth pair,
the port's name (the device the host uses) and a hidden peer ``hl<crc32 of the name>``
that carries the program and is where the kernel sends the port's output. Both live
in the kernel, so they survive the daemon.

Survival and adoption: everything that forwards is a kernel object (programs, maps,
tc filters, veths), so ``kill -9`` of the daemon stops nothing but the slow path, and
misses wait in the ring (8 MiB; a full ring drops and counts ``upcall_lost``). A new
instance for the same bridge finds the program through netlink (the tc filter of the
internal port's hidden peer, else a scan of every device's ingress filter for a program
whose ``hl_info`` names this bridge), the maps through the program's info (map ids),
both of which work in any mount namespace (no bpffs needed), then rebuilds its view of
ports (``hl_ports`` keeps their numbers and names) and flows (``hl_flows``: keys,
actions, creation times; counters stay in ``hl_stats`` and keep counting). A handoff
passes the same objects as file descriptors (``export_handles``).

Ownership: ``hl_info`` names the daemon that owns the datapath (its pid). An instance
that finds the datapath owned by another live process (the new process of an upgrade,
building its bridges from the pre-copy while the old one serves) is *passive*: it
keeps flow changes in its own table and writes nothing to the kernel, and shows no
ports, until ``adopt_ports`` (the freeze: the old process has stopped) makes it read
everything back from the kernel and serve. Only the owner, or an instance whose owner
is gone, detaches the program on ``close``; an instance takes ownership when the owner
has exited (a handoff committed, or a crash), so a handoff that rolls back leaves the
old process's datapath alone.

Layouts: a build knows several program/map layouts (``layout.LAYOUTS``) and has its
own (``layout.native()``). It serves a running datapath of any layout it knows, in
that layout, and once it alone owns it (the process it took over from has exited, or
it started after a crash) moves it to its own with the kernel forwarding all along
(``_move_to``): a new program and maps loaded beside the old ones, ports, masks, flows
and counters written into them, then one atomic ``tc filter replace`` per port; the old
program serves until then, and the misses it queued meanwhile are read from its ring
afterwards. So a handoff between two builds whose layouts differ hands over the old
layout (a rollback finds it unchanged) and the new build moves it after the commit.

Conntrack (layout 3): the kernel runs ct(), ct_clear and recirc itself for the
connections the tracker has seen established, which ``ctmap.CtMap`` keeps in ``hl_ct``
(written after each ct action this process runs, refreshed in ``run``, read back into
the tracker after a crash). Everything else about a connection stays in the tracker:
a ct action the kernel cannot finish comes up as a slow-path packet of the flow, with
the key (recirc_id, ct fields) the pass had.

Counters per flow are per CPU (``hl_stats``, indexed by a slot this process
allocates); ``used`` is ``bpf_ktime_get_ns`` (CLOCK_MONOTONIC, the clock of
``time.monotonic``).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hitless.datapath import afpacket
from hitless.datapath.actions import Action, Ct, Output
from hitless.datapath.base import (
    Datapath,
    DatapathError,
    DpFlow,
    DpPort,
    FlowStats,
    InProcessMeters,
    InProcessRecirc,
    LookupStats,
    Upcall,
    new_port_number,
)
from hitless.datapath.conntrack import Conn, CtResult, CtTuple
from hitless.datapath.ebpf import layout as L
from hitless.datapath.ebpf import libbpf
from hitless.datapath.ebpf.build import object_path
from hitless.datapath.ebpf.csum import complete_checksum
from hitless.datapath.ebpf.ctmap import CtMap
from hitless.datapath.ebpf.ringbuf import RingReader
from hitless.datapath.megaflow import MegaflowTable
from hitless.datapath.meters import MeterTable
from hitless.datapath.patch import patch_peer
from hitless.packet.flow import CT_OFF, ETH_TYPE_NSH, MPLS_TYPES, Match, extract_key
from hitless.state.handles import EbpfHandlesV1, Handles

__all__ = ["EbpfDatapath"]

log = logging.getLogger(__name__)

PROG = "hitless_port_in"
MAPS = ("hl_flows", "hl_masks", "hl_stats", "hl_ports", "hl_info", "hl_counters",
        "hl_upcalls")  # fmt: skip
CT_MAP = "hl_ct"  # layouts with ``ct`` only
PERCPU = {"hl_stats", "hl_counters"}
# The counter maps a new layout's program shares with the old one when their
# definitions agree (libbpf checks): both programs count into the same per-CPU values
# across a move, so no count is copied or carried.
SHARED = ("hl_stats", "hl_counters")
PORT_INTERNAL = 1
PORT_PATCH = 2
PATCH_ALIAS = "hitless-patch "  # + "<port> <peer>": the device's alias (IFLA_IFALIAS)
BUDGET = 512  # ring records per run()
DRAIN_ROUNDS = 8  # reads of the ring before a batch's new flows go into the kernel
LINK_REFRESH = 0.1
BATCH_STATS = 256  # flow_dump reads the counters in one batch from this many flows
# After a move to another layout, the old program may still run on another CPU for a
# moment (a tc filter replace waits for no one): its ring is read and its counters are
# carried over this long after the swap, then it is closed.
RETIRE_AFTER = 0.2


def hidden_peer(port_name: str) -> str:
    """The kernel-side device of an internal port (<= 15 characters)."""
    return f"hl{zlib.crc32(port_name.encode()):08x}"


def patch_device(port_name: str) -> str:
    """The device of a patch port (<= 15 characters): one end of a veth pair whose
    other end is its peer's device."""
    return f"hp{zlib.crc32(port_name.encode()):08x}"


def _patch_of(dev: str) -> tuple[str, str] | None:
    """(port, peer) a patch device's alias names."""
    try:
        with open(f"/sys/class/net/{dev}/ifalias") as f:
            alias = f.read().strip()
    except OSError:
        return None
    if not alias.startswith(PATCH_ALIAS):
        return None
    parts = alias[len(PATCH_ALIAS) :].split()
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ifindex(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


class _Flow(DpFlow):
    __slots__ = ("idx", "slot", "slow", "xp", "xb", "pending")

    idx: int  # hl_stats index
    slot: int | None  # mask slot; None: not in the kernel (no free slot, map full)
    slow: str | None  # why the daemon runs its actions (None: the kernel does)
    xp: int  # packets (and bytes) this process ran for a kernel flow that the kernel
    xb: int  # did not count: misses that raced the flow's installation
    pending: bool  # put while its upcalls are being handled: not in the kernel yet


class _Port:
    __slots__ = ("dp", "ifindex", "dev", "sock", "foreign_peer")

    def __init__(self, dp: DpPort, ifindex: int, dev: str) -> None:
        self.dp = dp
        self.ifindex = ifindex  # where the program is attached and output is sent
        self.dev = dev  # that device's name (the hidden peer for an internal port)
        self.sock: socket.socket | None = None
        self.foreign_peer = False  # a patch port whose peer is not on an ebpf bridge

    def send(self, data: bytes) -> bool:
        if self.sock is None:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            try:
                s.bind((self.dev, 0))
            except OSError:
                s.close()
                return False
            self.sock = s
        try:
            self.sock.send(data)
        except OSError:
            self.dp.stats.tx_dropped += 1
            return False
        self.dp.stats.tx_packets += 1
        self.dp.stats.tx_bytes += len(data)
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


_STATS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped", "tx_dropped")


def _kernel_port_stats(p: _Port) -> None:
    """A port's counters are its device's (the kernel forwards, not this process): what
    the device received is what the switch received on the port. An internal port's
    device is the hidden peer, whose receive side is what the host sent."""
    base = f"/sys/class/net/{p.dev}/statistics/"
    st = p.dp.stats
    for name in _STATS:
        try:
            with open(base + name) as f:
                setattr(st, name, int(f.read()))
        except (OSError, ValueError):
            return


class _Retired:
    """The program and maps a move to another layout replaced, until their last misses
    are read and their last counts carried over (``RETIRE_AFTER``)."""

    __slots__ = ("maps", "fds", "ring", "copied", "at", "layout")

    def __init__(self, dp: EbpfDatapath, copied: dict[str, bytes], at: float) -> None:
        self.maps, self.fds, self.ring = dp._maps, dp._fds, dp._ring
        self.layout = dp.layout  # its ring's records are of this layout
        self.copied = copied  # counter maps copied into the new maps (not shared), as copied
        self.at = at

    def close(self) -> None:
        self.ring.commit()
        self.ring.close()
        for m in self.maps.values():
            m.close()
        for fd in self.fds.values():
            os.close(fd)


class _Preload:
    """A new layout's program and maps loaded in a thread (the verifier takes ~0.3 s)
    while this process serves, or before it serves at all (a handoff's pre-copy), so
    that the move itself only writes entries and swaps filters. libbpf's calls release
    the GIL (ctypes)."""

    def __init__(self, dp: EbpfDatapath, layout: L.Layout) -> None:
        self.layout = layout
        self.fds: dict[str, int] | None = None
        self.error: DatapathError | None = None
        self.ms = 0.0
        reuse = {n: os.dup(dp._fds[n]) for n in SHARED}
        self._thread = threading.Thread(
            target=self._run, args=(dp, reuse), name=f"bpf-load-{dp.name}", daemon=True
        )
        self._thread.start()

    def _run(self, dp: EbpfDatapath, reuse: dict[str, int]) -> None:
        t0 = time.monotonic()
        try:
            self.fds = dp._load(self.layout, reuse)
        except DatapathError as e:
            self.error = e
        finally:
            for fd in reuse.values():
                os.close(fd)
        self.ms = (time.monotonic() - t0) * 1e3

    def done(self) -> bool:
        return not self._thread.is_alive()

    def take(self) -> dict[str, int]:
        """The loaded fds (the caller owns them); raises the load's error."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self.fds is not None
        fds, self.fds = self.fds, None
        return fds

    def close(self) -> None:
        self._thread.join()
        if self.fds is not None:
            EbpfDatapath._close_fds(self.fds)
            self.fds = None


@functools.cache
def program_id(layout: L.Layout) -> int:
    """This build's program of ``layout``, as ``hl_info`` records it: a hash of the
    compiled object's name, which is the hash of its source and flags."""
    return zlib.crc32(object_path(abi=layout.abi).name.encode()) or 1


def _add_counts(cur: bytes, old: bytes, new: bytes, words: int) -> bytes:
    """``cur`` plus what went from ``old`` to ``new``, per CPU: packets and bytes (and
    plain counters) add up, ``used`` takes the later time, TCP flags OR (``words`` u64
    per CPU value: 4 for struct fstats, 1 for a counter)."""
    n = len(cur) // 8
    c = list(struct.unpack(f"<{n}Q", cur))
    o = struct.unpack(f"<{n}Q", old)
    w = struct.unpack(f"<{n}Q", new)
    for i in range(n):
        field = i % words
        if words == 4 and field == 2:
            c[i] = max(c[i], w[i])
        elif words == 4 and field == 3:
            c[i] |= w[i]
        else:
            c[i] += w[i] - o[i]
    return struct.pack(f"<{n}Q", *c)


# frames whose keys the daemon parses from an upcall's packet (the program does not)
_DAEMON_PARSED = frozenset((*MPLS_TYPES, ETH_TYPE_NSH))


class EbpfDatapath(InProcessRecirc, InProcessMeters, Datapath):
    """The slow path (flows the kernel hands over, misses of flows installed meanwhile,
    recirculation, conntrack) runs here with the generic interpreter of
    ``InProcessRecirc``."""

    type = "ebpf"

    def __init__(self, name: str, fds: Mapping[str, int] | None = None) -> None:
        super().__init__(name)
        self.meters = MeterTable()
        self.bridge_hash = zlib.crc32(name.encode())
        self._ports: dict[int, _Port] = {}
        self._flows = MegaflowTable()
        self._upcalls: deque[Upcall] = deque()
        # New flows put while the upcalls handed out are being handled: written to the
        # kernel only once those packets have been sent (``_install_pending``).
        self._delivering = False
        self._pending: list[_Flow] = []
        # Fault tests only (HITLESS_FAULT, hitless/daemon/faults.py; read here: the
        # datapath layer does not import the daemon's): ebpf-slow-batch makes a batch
        # that put new flows last 5 ms longer (more misses queue meanwhile).
        self._slow_batch = "ebpf-slow-batch" in os.environ.get("HITLESS_FAULT", "").split(",")
        # ``duplicate`` (fault_duplicate): flows whose frames the kernel sends twice, and
        # the count of their counter at which that ends; then the deadline of all.
        self._doubled: dict[Match, int] = {}
        self._doubled_until = 0.0
        self._too_big: set[int] = set()  # id() of truncated upcall packets
        self.n_hit = self.n_missed = 0  # recirculated packets (InProcessRecirc)
        self._exported = False
        self._links_at = 0.0
        self.n = {"slowpath_executed": 0, "upcalls": 0, "not_offloaded": 0,
                  "upcall_too_big": 0, "adopted_flows": 0, "layout_moves": 0,
                  "upcall_lost_in_move": 0}  # fmt: skip
        self.adopted = False
        self._passive = False
        self._owner = 0
        try:
            self.native = L.native()
        except ValueError as e:
            raise DatapathError(str(e)) from None
        self.layout = self.native  # the running datapath's layout (set by _open)
        # The layout this process moves the datapath to once it alone owns it: its own,
        # unless a handoff to a build that does not know it is coming (``layout_for``).
        self.target = self.native
        self._retired: _Retired | None = None
        self._preload: _Preload | None = None
        self.move_error: str | None = None
        self.last_move_ms: dict[str, float] = {}
        self.moved_shared: list[str] = []  # counter maps the last move shared
        # Mask slots: mask (102 bytes) -> slot; per slot its flow count.
        self._mask_slot: dict[bytes, int] = {}
        self._slot_mask: list[bytes | None] = [None] * self.layout.max_masks
        self._slot_refs = [0] * self.layout.max_masks
        self._free_idx: list[int] = []
        self._next_idx = 0
        self._ncpus = libbpf.num_possible_cpus()
        handed = fds is not None  # by a handoff's freeze: serve at once
        if fds is None:
            fds = self._find() or self._load(self.native)
        self._open(fds, handed)
        if self._must_move():
            # Load the build's own layout now, in a thread: a passive instance (a
            # handoff's pre-copy) has it ready when it takes over, and moves at once.
            self._prepare_move()

    # Finding, loading, opening ------------------------------------------------------
    def _find(self) -> dict[str, int] | None:
        """The fds of this bridge's running instance, found through netlink."""
        candidates: list[int] = []
        seen: set[int] = set()
        try:
            names = [n for _, n in socket.if_nameindex()]
        except OSError:
            names = []
        for dev in names:
            ifindex = _ifindex(dev)
            pid = libbpf.tc_query(ifindex) if ifindex else None
            if pid is not None and pid not in seen:
                seen.add(pid)
                candidates.append(pid)
        for pid in candidates:
            fds = self._fds_of(pid)
            if fds is not None:
                return fds
        return None

    def _fds_of(self, prog_id: int) -> dict[str, int] | None:
        try:
            pfd = libbpf.prog_fd_by_id(prog_id)
        except libbpf.BpfError:
            return None
        fds: dict[str, int] = {"prog": pfd}
        try:
            info = libbpf.prog_info(pfd)
            if info["name"] != PROG:
                return self._close_fds(fds)
            for mid in info["map_ids"]:
                fd = libbpf.map_fd_by_id(mid)
                mname = libbpf.map_info(fd)["name"]
                if mname in MAPS or mname == CT_MAP:
                    fds[mname] = fd
                else:
                    os.close(fd)
            if set(MAPS) - set(fds):
                return self._close_fds(fds)
            m = libbpf.Map(os.dup(fds["hl_info"]))
            try:
                raw = m.lookup(bytes(4))
            finally:
                m.close()
            if raw is None or len(raw) < L.INFO.size:  # not a layout we know
                return self._close_fds(fds)
            abi, bh, _owner, _ = L.INFO.unpack_from(raw)
            if bh != self.bridge_hash:
                return self._close_fds(fds)
            if abi in L.LAYOUTS and L.LAYOUTS[abi].ct and CT_MAP not in fds:
                return self._close_fds(fds)
            if abi not in L.LAYOUTS:
                self._close_fds(fds)
                raise DatapathError(
                    f"bridge {self.name}: its running BPF datapath has layout {abi}, which "
                    f"this build does not know (it knows {sorted(L.LAYOUTS)}); hand it to "
                    "a build that does, or stop the bridge's datapath to start this build"
                )
            return fds
        except libbpf.BpfError:
            return self._close_fds(fds)

    @staticmethod
    def _close_fds(fds: Mapping[str, int]) -> None:
        for fd in fds.values():
            os.close(fd)
        return None

    def _load(self, layout: L.Layout, reuse: dict[str, int] | None = None) -> dict[str, int]:
        """A new program and its maps, in ``layout``, owned by this process; the maps
        in ``reuse`` (name -> fd) shared with a running program where their
        definitions agree, new ones otherwise."""
        path = str(object_path(abi=layout.abi))
        try:
            try:
                obj = libbpf.BpfObject(path, reuse)
            except libbpf.BpfError:
                if not reuse:
                    raise
                obj = libbpf.BpfObject(path)  # the counter maps differ: copied then
        except libbpf.BpfError as e:
            raise DatapathError(f"cannot load the ebpf datapath: {e}") from None
        fds: dict[str, int] = {}
        try:
            fds["prog"] = obj.prog_fd(PROG)
            for m in (*MAPS, CT_MAP) if layout.ct else MAPS:
                fds[m] = obj.map_fd(m)
        except libbpf.BpfError as e:
            self._close_fds(fds)
            raise DatapathError(f"cannot load the ebpf datapath: {e}") from None
        finally:
            obj.close()
        info = libbpf.Map(os.dup(fds["hl_info"]))
        info.update(
            bytes(4), L.INFO.pack(layout.abi, self.bridge_hash, os.getpid(), program_id(layout))
        )
        info.close()
        return fds

    def _open(self, fds: Mapping[str, int], handed: bool) -> None:
        self._use(fds)
        self._slot_mask = [None] * self.layout.max_masks
        self._slot_refs = [0] * self.layout.max_masks
        self._owner = self._read_owner()
        if self._owner != os.getpid() and _alive(self._owner):
            if not handed:
                self._passive = True  # another daemon serves it: see "Ownership"
                return
        else:
            self._take_ownership()
        self._rebuild()

    def _use(self, fds: Mapping[str, int]) -> None:
        """Serve through these program and map fds (their layout from ``hl_info``)."""
        self._fds = dict(fds)
        self.prog_fd = fds["prog"]
        self.prog_id = libbpf.prog_info(self.prog_fd)["id"]
        m = {n: libbpf.Map(os.dup(fd), n in PERCPU) for n, fd in fds.items() if n != "prog"}
        self._flow_map, self._masks, self._stats = m["hl_flows"], m["hl_masks"], m["hl_stats"]
        self._pmap, self._counters = m["hl_ports"], m["hl_counters"]
        self._maps = m
        self._ring = RingReader(fds["hl_upcalls"], m["hl_upcalls"].max_entries)
        raw = m["hl_info"].lookup(bytes(4))
        abi, _, _, self.program = L.INFO.unpack_from(raw) if raw else (0, 0, 0, 0)
        if abi not in L.LAYOUTS:
            raise DatapathError(f"bridge {self.name}: unknown BPF datapath layout {abi}")
        self.layout = L.LAYOUTS[abi]
        self.ctmap = CtMap(self.conntrack, m[CT_MAP], self.ct_now) if CT_MAP in m else None

    def _read_owner(self) -> int:
        raw = self._maps["hl_info"].lookup(bytes(4))
        return L.INFO.unpack_from(raw)[2] if raw else 0

    def _take_ownership(self) -> None:
        self._maps["hl_info"].update(
            bytes(4), L.INFO.pack(self.layout.abi, self.bridge_hash, os.getpid(), self.program)
        )
        self._owner = os.getpid()

    def _must_move(self) -> bool:
        """Whether the running program is not this build's own: another layout, or
        the same layout built from another source (an upgrade that changed only the
        program: a fixed bug, a new action), or one whose build is unknown (0: loaded
        by a build from before the program's identity was recorded)."""
        if self.move_error is not None:
            return False
        return self.layout != self.target or self.program != program_id(self.target)

    def _owns(self) -> bool:
        """Whether this process may detach the datapath (see "Ownership")."""
        if self._owner == os.getpid():
            return True
        self._owner = self._read_owner()
        return self._owner == os.getpid() or not _alive(self._owner)

    @property
    def _hands_off(self) -> bool:
        """Whether another process serves the kernel state now: this instance is
        passive (a pre-copy), or it has exported its handles (a handoff's freeze, until
        ``thaw``). Then it writes nothing to the kernel and reads no upcall: two
        processes handling the same ring would send packets twice."""
        return self._passive or self._exported

    def _activate(self) -> None:
        """Start serving on what the kernel holds now: forget this instance's view of
        flows and ports and read them back, and read the ring from where the last reader
        committed (a passive instance at the freeze; an exported one on ``thaw``)."""
        self._passive = False
        self._ring.resync()
        self._upcalls.clear()
        self._flows = MegaflowTable()
        self._ports.clear()
        self._mask_slot.clear()
        self._slot_mask = [None] * self.layout.max_masks
        self._slot_refs = [0] * self.layout.max_masks
        self._free_idx, self._next_idx = [], 0
        self._rebuild()

    def _rebuild(self) -> None:
        """Read ports, masks and flows back from the kernel (an adopted instance)."""
        for k in self._pmap.all_keys():
            raw = self._pmap.lookup(k)
            if raw is None:
                continue
            ifindex = int.from_bytes(k, "little")
            port_no, flags = L.PORT.unpack_from(raw)
            name = raw[8:24].split(b"\0", 1)[0].decode()
            try:
                dev = socket.if_indextoname(ifindex)
            except OSError:
                self._pmap.delete(k)  # the device is gone
                continue
            typ = "internal" if flags & PORT_INTERNAL else "system"
            peer = None
            if flags & PORT_PATCH:
                typ, pair = "patch", _patch_of(dev)
                peer = pair[1] if pair else ""
            mac_dev = name if typ == "internal" else dev
            try:
                mac = afpacket.if_mac(mac_dev)
            except OSError:
                mac = bytes(6)
            dp = DpPort(port_no, name, typ, afpacket.link_up(mac_dev), mac, peer=peer)
            self._ports[port_no] = _Port(dp, ifindex, dev)
            if peer is not None:
                self.patch_panel.plug(name, peer, self, port_no)
            self.adopted = True
        raw = self._masks.lookup(bytes(4))
        if raw is not None:
            for slot, mask in enumerate(self.layout.decode_masks(raw)):
                if mask is not None:
                    self._slot_mask[slot] = mask
                    self._mask_slot[mask] = slot
        used: set[int] = set()
        for k in self._flow_map.all_keys():
            raw = self._flow_map.lookup(k)
            slot = int.from_bytes(k[self.layout.key_len :], "little")
            fmask = self._slot_mask[slot] if slot < self.layout.max_masks else None
            if raw is None or fmask is None:
                self._flow_map.delete(k)
                continue
            try:
                kf = self.layout.decode_flow(raw)
            except (ValueError, KeyError):
                self._flow_map.delete(k)
                continue
            m = Match(self.layout.widen(k), fmask)
            f = _Flow(m, kf.actions, FlowStats(), kf.created_ns / 1e9)
            f.idx, f.slot = kf.stats_idx, slot
            f.xp = f.xb = 0
            f.pending = False
            f.slow = L.slowpath_reason(m, kf.actions, self.layout)
            used.add(kf.stats_idx)
            self._slot_refs[slot] += 1
            self._flows.insert(f)
            self.n["adopted_flows"] += 1
        if used:
            self._next_idx = max(used) + 1
            self._free_idx = sorted(set(range(self._next_idx)) - used, reverse=True)
        for slot, smask in enumerate(self._slot_mask):
            if smask is not None and not self._slot_refs[slot]:
                self._slot_mask[slot] = None
                del self._mask_slot[smask]
        self._write_masks()
        if self.ctmap is not None:
            n = self.ctmap.adopt()
            if n:
                log.info("%s: %d established connections read back from the kernel", self.name, n)

    # Ports ---------------------------------------------------------------------------
    def port_add(
        self,
        name: str,
        port_no: int | None = None,
        type: str = "system",
        options: Mapping[str, str] | None = None,
    ) -> int:
        if self._hands_off:
            raise DatapathError(f"{self.name} is served by another process")
        port_no = new_port_number(
            self.name, name, port_no, {n: p.dp.name for n, p in self._ports.items()}
        )
        if len(name.encode()) > 15 or not name:
            raise DatapathError(f"could not open network device {name!r} (invalid name)")
        if type == "system":
            dev, mac_dev, flags = name, name, 0
            ifindex = _ifindex(name)
            if not ifindex:
                raise DatapathError(afpacket.no_such_device(name))
        elif type == "internal":
            dev, mac_dev, flags = hidden_peer(name), name, PORT_INTERNAL
            ifindex = self._internal_device(name, dev)
        elif type == "patch":
            peer = patch_peer(name, options)
            dev, flags = patch_device(name), PORT_PATCH
            mac_dev = dev
            ifindex = self._patch_device(name, peer)
        else:
            raise DatapathError(
                f"port type {type!r} of {name} is not supported by the ebpf datapath "
                "(supported: system, internal, patch)"
            )
        try:
            afpacket.if_set_up(dev)
            libbpf.tc_attach(ifindex, self.prog_fd)
            self._pmap.update(
                ifindex.to_bytes(4, "little"),
                L.PORT.pack(port_no, flags) + name.encode().ljust(16, b"\0"),
            )
            mac = afpacket.if_mac(mac_dev)
        except OSError as e:
            libbpf.tc_detach(ifindex)
            raise DatapathError(f"could not attach {name} to {self.name}: {e}") from None
        typ = {0: "system", PORT_INTERNAL: "internal", PORT_PATCH: "patch"}[flags]
        link_peer = patch_peer(name, options) if flags == PORT_PATCH else None
        dp = DpPort(port_no, name, typ, afpacket.link_up(mac_dev), mac, peer=link_peer)
        self._ports[port_no] = _Port(dp, ifindex, dev)
        if link_peer is not None:
            self.patch_panel.plug(name, link_peer, self, port_no)
        self._reencode(port_no)
        return port_no

    @staticmethod
    def _peer_in_kernel(p: _Port) -> bool:
        """Whether the other end of a patch port's veth carries an ebpf bridge's
        program (the peer is a port of an ebpf bridge, which the kernel reaches)."""
        pdev = _ifindex(patch_device(p.dp.peer or ""))
        return bool(pdev) and libbpf.tc_query(pdev) is not None

    def _patch_device(self, name: str, peer: str) -> int:
        """The device of patch port ``name``: created with its peer's as a veth pair if
        neither exists yet (the peer's port, added later, finds its end), named in its
        alias so that a restarted daemon knows the peer."""
        dev, pdev = patch_device(name), patch_device(peer)
        if not _ifindex(dev):
            r = _ip("link", "add", dev, "type", "veth", "peer", "name", pdev)
            if r.returncode != 0:
                raise DatapathError(
                    f"{name}: cannot create its device {dev} paired with {pdev} (its peer "
                    f"{peer}'s, already paired with another patch port?): {r.stderr.strip()}"
                )
            _ip("link", "set", pdev, "up")
        r = _ip("link", "set", dev, "alias", f"{PATCH_ALIAS}{name} {peer}")
        if r.returncode != 0:
            raise DatapathError(f"{name}: cannot name its device {dev}: {r.stderr.strip()}")
        return _ifindex(dev)

    def patch_input(self, port_no: int, packet: bytes) -> None:
        """A frame for patch port ``port_no`` from a datapath of another type (the
        patch panel): sent into its veth from the peer's end, so that this bridge's
        program receives it. (Between two ebpf bridges frames never come this way: the
        kernel redirects them through the veth pair.)"""
        port = self._ports.get(port_no)
        if port is None or port.dp.peer is None:
            return
        peer_end = _Port(DpPort(0, "", "patch", True, bytes(6)), 0, patch_device(port.dp.peer))
        peer_end.send(packet)
        peer_end.close()

    def _drop_device(self, port: _Port) -> None:
        """After detaching ``port``: remove the device the datapath made for it (an
        internal port's veth; a patch port's pair once neither end carries a program)."""
        if port.dp.type == "internal":
            _ip("link", "del", port.dp.name)
        elif port.dp.type == "patch":
            pdev = _ifindex(patch_device(port.dp.peer or ""))
            if not pdev or libbpf.tc_query(pdev) is None:
                _ip("link", "del", port.dev)

    def _internal_device(self, name: str, peer: str) -> int:
        if not _ifindex(name):
            r = _ip("link", "add", name, "type", "veth", "peer", "name", peer)
            if r.returncode != 0:
                raise DatapathError(f"could not create internal device {name} ({r.stderr.strip()})")
            _ip("link", "set", name, "up")
        ifindex = _ifindex(peer)
        if not ifindex:
            raise DatapathError(
                f"a device named {name} exists and is not an internal port of this switch"
            )
        return ifindex

    def port_set_mac(self, port_no: int, mac: bytes) -> None:
        """The internal port's visible veth end gets ``mac`` (other_config:hwaddr; a veth
        may change it while up). The kernel keeps it: a restarted daemon reads it back."""
        port = self._ports.get(port_no)
        new = afpacket.set_internal_mac(None if port is None else port.dp, port_no, mac)
        if port is not None:
            port.dp = new

    def port_del(self, port_no: int) -> None:
        port = self._ports.pop(port_no, None)
        if port is None:
            return
        port.close()
        self._pmap.delete(port.ifindex.to_bytes(4, "little"))
        libbpf.tc_detach(port.ifindex)
        if port.dp.peer is not None:
            self.patch_panel.unplug(port.dp.name, self)
        self._drop_device(port)
        self._reencode(port_no)

    def ports(self) -> dict[int, DpPort]:
        now = time.monotonic()
        if now - self._links_at >= LINK_REFRESH:
            self._links_at = now
            for p in self._ports.values():
                p.dp.link_up = afpacket.link_up(p.dp.name if p.dp.type == "internal" else p.dev)
                _kernel_port_stats(p)
                if p.dp.peer is not None:
                    p.foreign_peer = not self._peer_in_kernel(p)
        for p in self._ports.values():
            d = p.dp
            if d.peer is not None:  # a patch port: up while its peer is connected
                d.error = self.patch_panel.error(d.name)
                if d.error is None and p.foreign_peer:
                    d.error = (
                        f"{d.name}: patch peer {d.peer} is not on an ebpf bridge (both ends of "
                        "a patch pair must be on ebpf bridges)"
                    )
                d.link_up = d.error is None
        return {n: p.dp for n, p in self._ports.items()}

    def _ifindexes(self) -> dict[int, int]:
        return {n: p.ifindex for n, p in self._ports.items()}

    def _reencode(self, port_no: int) -> None:
        """Rewrite the flows that output to ``port_no`` (its device changed)."""
        for f in self._flows:
            if any(isinstance(a, Output) and a.port == port_no for a in f.actions):
                self._write_flow(f)  # type: ignore[arg-type]

    # Masks and flows -----------------------------------------------------------------
    def _write_masks(self) -> None:
        self._masks.update(bytes(4), self.layout.encode_masks(self._slot_mask))

    def _take_slot(self, mask: bytes) -> int | None:
        km = mask
        slot = self._mask_slot.get(km)
        if slot is None:
            try:
                slot = self._slot_mask.index(None)
            except ValueError:
                return None
            self._slot_mask[slot] = km
            self._mask_slot[km] = slot
            self._write_masks()
        self._slot_refs[slot] += 1
        return slot

    def _drop_slot(self, slot: int) -> None:
        self._slot_refs[slot] -= 1
        if self._slot_refs[slot] <= 0:
            self._slot_refs[slot] = 0
            km = self._slot_mask[slot]
            self._slot_mask[slot] = None
            if km is not None:
                self._mask_slot.pop(km, None)
            self._write_masks()

    def _alloc_idx(self) -> int:
        if self._free_idx:
            idx = self._free_idx.pop()
        else:
            idx = self._next_idx
            self._next_idx += 1
        self._stats.update(idx.to_bytes(4, "little"), bytes(self._stats.value_len))
        return idx

    def _write_flow(self, f: _Flow) -> None:
        if f.slot is None or self._hands_off or f.pending:
            return
        try:
            self._flow_map.update(
                self.layout.map_key(f.match.key, f.slot), self._flow_value(f, self.layout)
            )
        except libbpf.BpfError as e:
            if e.errno not in (errno.E2BIG, errno.ENOMEM, errno.ENOSPC):
                raise
            self._drop_slot(f.slot)
            f.slot = None
            self.n["not_offloaded"] += 1

    def _flow_value(
        self,
        f: _Flow,
        layout: L.Layout,
        actions: tuple[Action, ...] | None = None,
        hold: bool = False,
    ) -> bytes:
        """``f`` as ``layout``'s kernel holds it; ``actions`` instead of its own, or
        ``hold``: every packet handed up (fault tests only: see ``fault_hold``)."""
        slow = f.slow if layout is self.layout else L.slowpath_reason(f.match, f.actions, layout)
        slow = slow or ("held" if hold else None)
        blob, n = L.encode_actions(
            actions or f.actions, self._ifindexes(), slow is not None, layout.ct, layout.priority
        )
        flags = L.FLOW_SLOWPATH if slow else 0
        return layout.encode_flow(f.idx, flags, int(f.created * 1e9), blob, n)

    # Fault points (tests only: HITLESS_FAULT, hitless/daemon/faults.py) -------------------
    def _kernel_flows(self) -> list[_Flow]:
        return [
            f for f in self._flows
            if isinstance(f, _Flow) and f.slot is not None and not f.pending and not f.slow
        ]  # fmt: skip

    def fault_hold(self, on: bool) -> None:
        """``blackout:<ms>`` on a datapath the kernel forwards: while ``on``, every flow in
        the kernel is a slow-path flow, so that its packets wait in the ring (a kernel
        object: queued, not dropped) for this process, which reads nothing meanwhile and
        sends them on afterwards, as the netdev datapath's rings hold them."""
        if self._hands_off:
            return
        for f in self._kernel_flows():
            key = self.layout.map_key(f.match.key, f.slot)  # type: ignore[arg-type]
            self._flow_map.update(key, self._flow_value(f, self.layout, hold=on))
        log.warning("%s: fault: %s", self.name, "kernel flows hand every packet up" if on
                    else "kernel flows forward again")  # fmt: skip

    def fault_duplicate(self, packets: int, limit: float = 2.0) -> None:
        """``duplicate`` on a datapath the kernel forwards: every flow in the kernel sends
        its frames twice (each output doubled: a clone_redirect, then the output) until
        its counter has counted ``packets`` more, or ``limit`` seconds have passed (see
        ``run``), as the netdev datapath sends its first batches twice. The kernel does
        not count down: this process looks every millisecond meanwhile (``wait``) and
        puts each flow back once it has counted them, so a few more may go twice (it
        waited for the next frame, up to a second, and ~1,000 went twice)."""
        if self._hands_off:
            return
        for f in self._kernel_flows():
            twice = tuple(b for a in f.actions for b in ((a, a) if isinstance(a, Output) else (a,)))
            if L.slowpath_reason(f.match, twice, self.layout) is not None:
                continue  # too many actions to double
            self._refresh(f)
            key = self.layout.map_key(f.match.key, f.slot)  # type: ignore[arg-type]
            self._flow_map.update(key, self._flow_value(f, self.layout, actions=twice))
            self._doubled[f.match] = f.stats.packets + packets
        self._doubled_until = time.monotonic() + limit
        log.warning("%s: fault: %d kernel flows send their next %d frames twice",
                    self.name, len(self._doubled), packets)  # fmt: skip

    def _undouble(self) -> None:
        """The flows ``fault_duplicate`` doubled that have sent their frames twice
        (all of them past its limit) forward once again."""
        late = time.monotonic() >= self._doubled_until
        for match, until in list(self._doubled.items()):
            f = self._flows.get(match)
            if isinstance(f, _Flow):
                self._refresh(f)
                if f.stats.packets < until and not late:
                    continue
                self._write_flow(f)
            del self._doubled[match]

    def flow_put(
        self, match: Match, actions: tuple[Action, ...], reset_stats: bool = False
    ) -> None:
        old = self._flows.get(match)
        if isinstance(old, _Flow):
            old.actions = actions
            old.slow = L.slowpath_reason(match, actions, self.layout)
            self._flows.touch(match)
            if reset_stats:
                old.stats = FlowStats()
                old.xp = old.xb = 0
                if old.idx >= 0 and not self._hands_off:
                    self._stats.update(old.idx.to_bytes(4, "little"), bytes(self._stats.value_len))
            self._write_flow(old)
            return
        f = _Flow(match, actions, FlowStats(), time.monotonic())
        f.xp = f.xb = 0
        f.pending = False
        f.slow = L.slowpath_reason(match, actions, self.layout)
        if self._hands_off:  # kept here only, until adopt_ports or thaw
            f.idx, f.slot = -1, None
            self._flows.insert(f)
            return
        f.idx = self._alloc_idx()
        if not self.layout.eligible(match):  # only recirculated packets: handled here
            f.slot = None
        else:
            f.slot = self._take_slot(match.mask)
            if f.slot is None:
                self.n["not_offloaded"] += 1
            elif self._delivering:
                # A flow made for an upcalled packet goes into the kernel only once
                # that packet (and any later one of the flow that misses meanwhile)
                # has been sent: the kernel forwarding the next frame of the flow
                # before the daemon sent the first one would reorder them.
                f.pending = True
                self._pending.append(f)
        self._flows.insert(f)
        self._write_flow(f)

    def _install_pending(self) -> None:
        """Write the flows held back while their upcalls were handled."""
        self._delivering = False
        pending, self._pending = self._pending, []
        for f in pending:
            f.pending = False
            if self._flows.get(f.match) is f:
                self._write_flow(f)

    def flow_del(self, match: Match) -> DpFlow | None:
        f = self._flows.remove(match)
        if not isinstance(f, _Flow):
            return None
        if f.slot is not None and not self._hands_off and not f.pending:
            self._flow_map.delete(self.layout.map_key(match.key, f.slot))
        self._refresh(f)
        if f.slot is not None and not self._hands_off:
            self._drop_slot(f.slot)
        if f.idx >= 0:
            self._free_idx.append(f.idx)
        return f

    def _refresh(self, f: _Flow) -> None:
        if f.slot is None:
            return
        raw = self._stats.lookup(f.idx.to_bytes(4, "little"))
        if raw is not None:
            self._apply_stats(f, raw)

    def _apply_stats(self, f: _Flow, raw: bytes | memoryview) -> None:
        p, b, u, fl = L.sum_stats(raw, self._ncpus)
        st = f.stats
        st.packets, st.bytes, st.tcp_flags = p + f.xp, b + f.xb, fl
        st.used = max(u / 1e9 if u else 0.0, st.used if f.xp else 0.0)

    def flow_count(self) -> int:
        return len(self._flows)

    def flow_get(self, match: Match) -> DpFlow | None:
        f = self._flows.get(match)
        if isinstance(f, _Flow):
            self._refresh(f)
        return f

    def flow_dump(self) -> Iterable[DpFlow]:
        """Every flow with its counters. Many flows: one batch read of the counters
        (a sweep of 36k flows read one by one stalled the loop for over a second)."""
        flows: list[_Flow] = list(self._flows)  # type: ignore[arg-type]
        if len(flows) < BATCH_STATS:
            for f in flows:
                self._refresh(f)
            return flows
        raw = memoryview(self._stats.lookup_range(self._next_idx))
        size = self._stats.value_len
        for f in flows:
            if f.slot is None or f.idx < 0 or (f.idx + 1) * size > len(raw):
                continue
            self._apply_stats(f, raw[f.idx * size : (f.idx + 1) * size])
        return flows

    # Packets ---------------------------------------------------------------------------
    def _meter_now(self) -> float:
        return time.monotonic()

    def execute(
        self,
        packet: bytes,
        in_port: int,
        actions: tuple[Action, ...],
        key: bytes | None = None,
    ) -> None:
        if id(packet) in self._too_big:
            self.n["upcall_too_big"] += 1
            return
        self._apply(packet, in_port, key, actions)

    def _queue(self, upcall: Upcall) -> None:
        self._upcalls.append(upcall)

    def _output(self, port_no: int, data: bytes) -> None:
        port = self._ports.get(port_no)
        if port is not None:
            port.send(data)

    def run(self) -> None:
        if self._hands_off or self._upcalls:  # one batch at a time (see export_handles)
            return
        if self._owner != os.getpid() and not _alive(self._owner):
            self._take_ownership()  # the process we took over from has gone
        if self._owner == os.getpid() and self._must_move() and self._prepare_move().done():
            self._move_to(self.target)  # loaded beside the old one (a thread): move now
        if self._doubled:
            self._undouble()  # fault tests only (fault_duplicate)
        self._too_big.clear()
        if self.ctmap is not None and self.ctmap.known:
            self.ctmap.refresh()  # before the sweep: the kernel's last-seen times count
        if len(self.conntrack):
            self.conntrack.sweep(self.clock())
        if self._retired is not None:
            recs = self._retired.ring.read(BUDGET)
            if not recs and time.monotonic() - self._retired.at >= RETIRE_AFTER:
                self._retire(handle=True)
            elif recs:
                self._handle(recs, self._retired.layout)
                return
        # Every upcall handed out has been handled (run() is not reached while some
        # wait), so the flows held back for them can go into the kernel once the
        # packets of theirs that queued meanwhile are sent: ``_handle`` runs those here
        # (a held-back flow is in ``_flows``), in ring order.
        self._delivering = False
        if self._pending and self._slow_batch:
            time.sleep(0.005)  # fault test only (see __init__)
        self._handle(self._ring.read(BUDGET))
        if self._pending:
            # Before the flows go in, send what queued while this batch was handled,
            # round after round while there is some (at most DRAIN_ROUNDS): what is
            # read after the install is sent while the kernel already forwards the
            # flows' next packets, which overtake it, so that part must be small (a
            # 5 ms longer batch left ~170 packets of a 30 kpps flow there: 168 late).
            for _ in range(DRAIN_ROUNDS):
                recs = self._ring.read(BUDGET, more=True)
                if not recs:
                    break
                self._handle(recs)
            self._install_pending()
            # What queued while they went in, as part of the same batch (committed
            # once all of it is handled).
            self._handle(self._ring.read(BUDGET, more=True))

    # Moving to another layout ---------------------------------------------------------
    def _move_to(self, new: L.Layout) -> None:
        """Move the running datapath to layout ``new`` while the kernel forwards: load
        the new program and maps beside the old ones, write ports, masks, flows and
        counters into them, then replace the tc filter on every port (atomic per port:
        each packet meets one program or the other). Until the replace the old program
        serves everything; afterwards its last misses are read from its ring and its
        last counts carried over (``_retire``). Masks beyond the new layout's slots go
        to free slots; a flow whose mask finds none stays in this process
        (``not_offloaded``). A failure before the swap leaves the old program serving
        and is not retried (``move_error``, in dpctl/show)."""
        self._retire(handle=True)  # a previous move's old program, if still around
        t0 = time.monotonic()
        old_abi = self.layout.abi
        pre, self._preload = self._preload, None
        preloaded_ms = 0.0
        try:
            if pre is not None and pre.layout == new:
                fds = pre.take()  # loaded ahead (``_prepare_move``): at once if done
                preloaded_ms = pre.ms
            else:
                if pre is not None:
                    pre.close()
                fds = self._load(new, {n: self._fds[n] for n in SHARED})
        except DatapathError as e:
            self.move_error = str(e)
            log.error("%s: cannot move to BPF layout %d: %s", self.name, new.abi, e)
            return
        t1 = time.monotonic()
        maps = {n: libbpf.Map(os.dup(fd), n in PERCPU) for n, fd in fds.items() if n != "prog"}
        # Counter maps the new program shares with the old (the same kernel objects):
        # both count into them, nothing to copy or carry. The others are copied now and
        # what the old program counts until the swap is carried at its retirement.
        shared = {
            n for n in SHARED
            if libbpf.map_info(fds[n])["id"] == libbpf.map_info(self._fds[n])["id"]
        }  # fmt: skip
        copied: dict[str, bytes] = {}
        # Masks keep their slots where the new layout has them; the others move down.
        slots: list[bytes | None] = [None] * new.max_masks
        remap: dict[int, int] = {}
        for slot, mask in enumerate(self._slot_mask):
            if mask is not None and slot < new.max_masks:
                slots[slot], remap[slot] = mask, slot
        for slot, mask in enumerate(self._slot_mask):
            if mask is not None and slot not in remap and None in slots:
                free = slots.index(None)
                slots[free], remap[slot] = mask, free
        flows: list[_Flow] = list(self._flows)  # type: ignore[arg-type]
        # Each flow's slot in the new layout: its mask's, if the new layout's kernel can
        # see its packets (layout 3 sees recirculated ones too; going back, those leave
        # the kernel); a flow the old layout kept out gets its mask a slot if one is free.
        placed: dict[int, int] = {}
        slot_of = {m: i for i, m in enumerate(slots) if m is not None}
        for f in flows:
            if f.idx < 0 or not new.eligible(f.match):
                continue
            if f.slot is not None and f.slot in remap:
                placed[id(f)] = remap[f.slot]
            elif f.slot is None:
                i = slot_of.get(f.match.mask)
                if i is None and None in slots:
                    i = slots.index(None)
                    slots[i] = f.match.mask
                    slot_of[f.match.mask] = i
                if i is not None:
                    placed[id(f)] = i
        used = set(placed.values())
        slots = [m if i in used else None for i, m in enumerate(slots)]
        ctmap = None
        swapped: list[_Port] = []
        try:
            for k in self._pmap.all_keys():
                raw = self._pmap.lookup(k)
                if raw is not None:
                    maps["hl_ports"].update(k, raw)
            maps["hl_masks"].update(bytes(4), new.encode_masks(slots))
            for name, n in (("hl_stats", self._next_idx), ("hl_counters", len(L.COUNTERS))):
                if name in shared:
                    continue
                values = copied[name] = self._maps[name].lookup_range(n)
                size = maps[name].value_len
                for i in range(len(values) // size):
                    maps[name].update(i.to_bytes(4, "little"), values[i * size : (i + 1) * size])
            for f in flows:
                if id(f) in placed:
                    key = new.map_key(f.match.key, placed[id(f)])
                    maps["hl_flows"].update(key, self._flow_value(f, new))
            if CT_MAP in maps:  # established connections in the kernel from the first packet
                ctmap = CtMap(self.conntrack, maps[CT_MAP], self.ct_now)
                ctmap.write_all()
            t2 = time.monotonic()
            for p in self._ports.values():
                libbpf.tc_attach(p.ifindex, fds["prog"])
                swapped.append(p)
        except (OSError, DatapathError) as e:
            for p in swapped:  # back to the old program where the new one went
                try:
                    libbpf.tc_attach(p.ifindex, self.prog_fd)
                except OSError:
                    pass
            for m in maps.values():
                m.close()
            self._close_fds(fds)
            self.move_error = f"moving to layout {new.abi}: {e}"
            log.error("%s: %s (the old program serves on)", self.name, self.move_error)
            return
        # Swapped: from here on every packet meets the new program.
        self._retired = _Retired(self, copied, time.monotonic())
        self._use(fds)
        if self.ctmap is not None and ctmap is not None:
            self.ctmap.known, self.ctmap.n = ctmap.known, ctmap.n
        for m in maps.values():
            m.close()
        self._owner = os.getpid()
        for f in flows:
            if f.slot is not None and id(f) not in placed:
                self.n["not_offloaded"] += 1
            f.slot = placed.get(id(f))
            f.slow = L.slowpath_reason(f.match, f.actions, new)
        self._slot_mask = slots
        self._mask_slot = {m: i for i, m in enumerate(slots) if m is not None}
        self._slot_refs = [0] * new.max_masks
        for f in flows:
            if f.slot is not None:
                self._slot_refs[f.slot] += 1
        self.n["layout_moves"] += 1
        t3 = time.monotonic()
        self.last_move_ms = {"load": (t1 - t0) * 1e3, "write": (t2 - t1) * 1e3,
                             "swap": (t3 - t2) * 1e3, "loaded ahead": preloaded_ms}  # fmt: skip
        self.moved_shared = sorted(shared)
        log.info(
            "%s: moved from BPF layout %d to %d with %d flows and %d ports: load %.1f ms, "
            "write %.1f ms, swap %.1f ms (loaded ahead in %.1f ms; counters shared: %s)",
            self.name, old_abi, new.abi, len(flows), len(self._ports),
            *self.last_move_ms.values(), ", ".join(self.moved_shared) or "none",
        )  # fmt: skip

    def _prepare_move(self) -> _Preload:
        """The load of the target layout's program and maps, started in a thread if it
        is not under way (a previous one for another layout is dropped)."""
        pre = self._preload
        if pre is not None and pre.layout != self.target:
            pre.close()
            pre = None
        if pre is None:
            pre = self._preload = _Preload(self, self.target)
        return pre

    def layout_for(self, peer: Iterable[int]) -> str:
        """Before a handoff to a build that knows the layouts ``peer``: if the running
        layout is not one of them, move to the newest one both builds know (the kernel
        forwarding all along), and stay there; else stay where it is. Returns what it
        did; raises DatapathError if there is no common layout or the move failed."""
        known = set(peer)
        if self.layout.abi in known:
            self.target = self.layout
            return f"{self.name}: layout {self.layout.abi}, which the peer knows: kept"
        common = sorted(known & set(L.LAYOUTS))
        if not common:
            raise DatapathError(
                f"{self.name}: the peer knows the BPF layouts {sorted(known)}, this build "
                f"{sorted(L.LAYOUTS)}: none in common"
            )
        if self._hands_off or not self._owns():
            raise DatapathError(f"{self.name}: another process serves this datapath now")
        old = self.layout.abi
        self.target, self.move_error = L.LAYOUTS[common[-1]], None
        self._move_to(self.target)
        if self.move_error is not None:
            raise DatapathError(f"{self.name}: {self.move_error}")
        ms = ", ".join(f"{k} {v:.1f} ms" for k, v in self.last_move_ms.items())
        return f"{self.name}: moved from layout {old} to {self.layout.abi} ({ms})"

    def _retire(self, handle: bool) -> None:
        """The old program's last counts (between the copy and the swap) added to the
        new maps' counters, its last misses handled (``handle``; else counted lost:
        the datapath is being closed or handed over), then its program and maps
        released. Counter maps both programs share (``SHARED``, whenever the layouts
        define them alike) need no carry: both counted into them. A copied one's carry
        is a read-modify-write of a per-CPU value the new program is counting into (the
        syscall has no atomic add): a packet the new program counts between that read
        and that write is not counted (a packet or two, once per move between layouts
        whose counters differ)."""
        r = self._retired
        if r is None:
            return
        self._retired = None
        try:
            for name, before in r.copied.items():
                m, words = r.maps[name], 4 if name == "hl_stats" else 1
                new = self._maps[m.name]
                size = m.value_len
                after = m.lookup_range(len(before) // size)
                for i in range(len(after) // size):
                    a, b = after[i * size : (i + 1) * size], before[i * size : (i + 1) * size]
                    if a == b:
                        continue
                    key = i.to_bytes(4, "little")
                    cur = new.lookup(key)
                    if cur is not None:
                        new.update(key, _add_counts(cur, b, a, words))
            last = r.ring.read(1 << 30)
            if handle:
                self._handle(last, r.layout)
            else:
                self.n["upcall_lost_in_move"] += len(last)
        finally:
            r.close()

    def _handle(self, recs: list[bytes], layout: L.Layout | None = None) -> None:
        """Upcall records from the ring (misses, slow-path packets, userspace actions),
        written by a program of ``layout`` (None: the running one)."""
        lay = layout or self.layout
        hdr = lay.upcall_hdr
        for rec in recs:
            reason, in_port, n, _orig, flags, ulen, kkey, udata = hdr.unpack_from(rec)
            pkt = rec[hdr.size : hdr.size + n]
            key = lay.widen(kkey)
            if kkey[16] << 8 | kkey[17] in _DAEMON_PARSED or L.is_nd(kkey):
                # the kernel program does not parse label stacks, NSH headers, nor
                # neighbour discovery's reserved word and options type: the daemon does
                key = extract_key(pkt, in_port)[:CT_OFF] + key[CT_OFF:]
            if kkey[64] in (6, 17):  # ip_proto: TCP or UDP (an ARP opcode is 1 or 2)
                pkt = complete_checksum(pkt)
            if flags & L.UP_TRUNCATED:
                self._too_big.add(id(pkt))
            if reason == L.R_ACTION:
                self._upcalls.append(Upcall(in_port, pkt, key, "action", udata[:ulen]))
                continue
            f = self._flows.lookup(key)
            if f is not None and not flags & L.UP_TRUNCATED:
                if reason == L.R_MISS:  # the kernel did not count it
                    st = f.stats
                    st.used = time.monotonic()
                    if isinstance(f, _Flow) and f.slot is not None:
                        f.xp += 1
                        f.xb += len(pkt)
                    else:
                        st.packets += 1
                        st.bytes += len(pkt)
                self.n["slowpath_executed"] += 1
                self._apply(pkt, in_port, key, f.actions)
                continue
            self.n["upcalls"] += 1
            self._upcalls.append(Upcall(in_port, pkt, key))

    def ct_execute(self, packet: bytes, action: Ct, now: float, natted: bool) -> CtResult:
        """The tracker runs the packet; then the kernel's copy of its connection is made
        to agree (written once established, removed when it closes: ``ctmap``)."""
        r = super().ct_execute(packet, action, now, natted)
        if self.ctmap is not None and r.orig is not None and not self._hands_off:
            self.ctmap.sync(r.zone, r.orig)
        return r

    def ct_flush(
        self,
        zone: int | None = None,
        orig: CtTuple | None = None,
        where: Callable[[Conn], bool] | None = None,
    ) -> int:
        """The tracker's flush, then the kernel's entries of those connections go too
        (not at the next refresh slice): established packets of a flushed connection
        reach the tracker again, as new."""
        n = super().ct_flush(zone, orig, where)
        if n and self.ctmap is not None and not self._hands_off:
            self.ctmap.forget_gone()
        return n

    def lookup_stats(self) -> LookupStats:
        s = self.stats()
        return LookupStats(s["hit"], s["miss"], s["upcall_lost"])

    def recv_upcalls(self, max_count: int = 64) -> list[Upcall]:
        if self._hands_off:
            return []
        if not self._upcalls:
            self.run()
        q = self._upcalls
        if q:
            self._delivering = True
        return [q.popleft() for _ in range(min(max_count, len(q)))]

    def wait(self, poller: Any) -> None:
        import select

        if self._hands_off:
            return
        if self._doubled:  # fault tests only: look again at once (see ``fault_duplicate``)
            poller.timer_wait(1)
        if self._upcalls:
            poller.immediate_wake()
            return
        self._ring.commit()
        if self._ring.backlog() or (self._retired is not None and self._retired.ring.backlog()):
            poller.immediate_wake()
            return
        poller.fd_wait(self._ring.fd, select.POLLIN)
        if self._retired is not None:  # its last look (see RETIRE_AFTER)
            poller.timer_wait(int(RETIRE_AFTER * 1000) + 1)

    # Observability ----------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """Kernel counters (summed over CPUs) and this process's slow-path counters."""
        out: dict[str, int] = {}
        for i, name in enumerate(L.COUNTERS):
            raw = self._counters.lookup(i.to_bytes(4, "little"))
            out[name] = 0
            if raw is not None:
                out[name] = sum(
                    int.from_bytes(raw[c * 8 : c * 8 + 8], "little") for c in range(self._ncpus)
                )
        out.update(self.n)
        out["upcalls"] += self.n_missed  # recirculated packets that missed
        out["masks"] = sum(1 for m in self._slot_mask if m is not None)
        out["flows"] = len(self._flows)
        out["ring_backlog"] = self._ring.backlog()
        if self.ctmap is not None:
            out.update(self.ctmap.n)
            out["ct_kernel"] = len(self.ctmap.known)
        return out

    def show_lines(self) -> list[str]:
        """dpctl/show: the mask list as Open vSwitch shows its own, then what went to
        the daemon instead of being forwarded by the kernel, and why."""
        s = self.stats()
        moved = (
            f" (moved from another layout {s['layout_moves']} times)" if s["layout_moves"] else ""
        )
        failed = (
            f"; could not move to layout {self.native.abi}: {self.move_error}"
            if self.move_error
            else ""
        )
        return [
            f"program layout: {self.layout.abi}{moved}{failed}",
            f"masks: total:{s['masks']} max:{self.layout.max_masks}",
            f"slow path: kernel:{s['slowpath']} executed:{s['slowpath_executed']} "
            f"not-offloaded:{s['not_offloaded']} too-big:{s['upcall_truncated']} "
            f"action-errors:{s['action_error']}",
            f"upcall ring: backlog:{s['ring_backlog']}B lost:{s['upcall_lost']}",
            *(
                [
                    f"conntrack in kernel: connections:{s['ct_kernel']} written:{s['ct_written']} "
                    f"removed:{s['ct_removed']} full:{s['ct_full']} read back:{s['ct_adopted']}"
                ]
                if self.ctmap is not None
                else []
            ),
            self._slow_flows_line(),
        ]

    def _slow_flows_line(self) -> str:
        """How many flows run their actions in the daemon, by reason (conntrack,
        recirculation, meters, fields the program does not rewrite...)."""
        reasons: dict[str, int] = {}
        for f in self._flows:
            if isinstance(f, _Flow) and f.slow:
                reasons[f.slow] = reasons.get(f.slow, 0) + 1
        detail = ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items()))
        return f"slow-path flows: {sum(reasons.values())}" + (f" ({detail})" if detail else "")

    # Lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Release this process's handles. Unless the datapath was handed over
        (``export_handles``), detach it from its ports and remove its internal devices:
        the bridge stops forwarding, as a stopped bridge must."""
        if self._fds is None:
            return
        if self._preload is not None:
            self._preload.close()
            self._preload = None
        self._retire(handle=False)
        detach = not self._exported and not self._passive and self._owns()
        for p in self._ports.values():
            p.close()
            if p.dp.peer is not None and not self._passive:
                self.patch_panel.unplug(p.dp.name, self)
            if detach:
                libbpf.tc_detach(p.ifindex)
                self._drop_device(p)
        if not self._hands_off:
            self._ring.commit()
        self._ring.close()
        for m in self._maps.values():
            m.close()
        self._close_fds(self._fds)
        self._fds = None  # type: ignore[assignment]

    def export_handles(self) -> tuple[EbpfHandlesV1, list[int]]:
        """The program and maps as fds (the kernel state is the whole state: ports,
        flows, counters and waiting misses are read back by ``adopt``)."""
        self._retire(handle=False)
        self._install_pending()  # the new owner reads the flows from the kernel
        if self._upcalls:
            # Upcalls of the last batch not handled yet: the new owner reads the whole
            # batch again (its slow-path packets already sent are sent twice: rare).
            self._ring.rewind()
            self._upcalls.clear()
        else:
            self._ring.commit()
        # The new owner rebuilds its flow table from the kernel: flows the running layout
        # cannot hold there (recirculated packets' on layouts 1 and 2) or holds with
        # actions it cannot decode (ct, recirc on layouts 1 and 2: opaque) are not in
        # its table, so they are dropped here too, for both sides to count the same
        # flows (the next packet of each makes it again).
        for f in list(self._flows):
            if isinstance(f, _Flow) and (
                (f.slot is None and not self.layout.eligible(f.match))
                or L.has_opaque(f.actions, self.layout)
            ):
                self._flows.remove(f.match)
        self._exported = True  # from now on hands off the kernel (see _hands_off)
        names = ["prog", *MAPS, *([CT_MAP] if CT_MAP in self._fds else [])]
        handles = EbpfHandlesV1(
            self.prog_id, self.layout.abi, names, meters=self.meters.export_levels()
        )
        return handles, [self._fds[n] for n in names]

    def thaw(self) -> None:
        """The handoff rolled back: serve again, on what the kernel holds now."""
        self._exported = False
        self._activate()

    @classmethod
    def adopt(cls, name: str, handles: Handles, fds: list[int]) -> EbpfDatapath:
        if not isinstance(handles, EbpfHandlesV1) or len(handles.fds) != len(fds):
            raise DatapathError(f"cannot adopt {name}: not an ebpf datapath state")
        return cls(name, dict(zip(handles.fds, fds, strict=True)))

    def adopt_ports(self, handles: Handles, fds: list[int]) -> None:
        """The freeze of a handoff whose pre-copy built this (passive) instance: read
        the kernel's ports and flows back and serve. This instance already has its own
        descriptors of the same objects, so it closes the ones passed."""
        names = handles.fds if isinstance(handles, EbpfHandlesV1) else []
        self._close_fds(dict(zip(names, fds, strict=False)))
        if self._passive:
            self._activate()

    def track_changes(self) -> None:
        self._flows.changed = set()

    def take_changes(self) -> set[Match]:
        ch = self._flows.changed or set()
        self._flows.changed = None
        self._flows.hits = None
        return ch
