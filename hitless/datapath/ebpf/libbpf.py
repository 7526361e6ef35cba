"""ctypes bindings to the few parts of Debian's libbpf (libbpf1, 1.1) the ebpf datapath
uses: open and load an object file, map element operations, tc (clsact) attach, query
and detach, and finding programs and maps again by id.

Why ctypes over libbpf rather than bpftool + pyroute2: every operation here is one C
call with a small struct, with no extra process per flow update (a flow_put is one
``bpf_map_update_elem``); libbpf does the ELF/BTF map relocation, which would otherwise
need a loader of our own; and it is a Debian package (libbpf1 comes with libbpf-dev),
so nothing is vendored. The calls return negative errno values (libbpf 1.0 semantics);
``BpfError`` carries the errno and the operation.

No kernel BTF is needed: the program uses only ``__sk_buff`` and helpers, and its maps
are described by the object's own BTF.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from typing import Any

__all__ = [
    "BpfError",
    "BpfObject",
    "Map",
    "TC_HANDLE",
    "TC_PRIORITY",
    "map_fd_by_id",
    "map_info",
    "enable_stats",
    "num_possible_cpus",
    "prog_fd_by_id",
    "prog_info",
    "prog_test_run",
    "tc_attach",
    "tc_detach",
    "tc_query",
]

# The tc filter every hitless port carries on clsact ingress: found again by these.
TC_HANDLE = 0x484C  # "HL"
TC_PRIORITY = 1

BPF_TC_INGRESS = 1
BPF_TC_F_REPLACE = 1
BPF_ANY = 0
BPF_NOEXIST = 1


class BpfError(OSError):
    """A bpf syscall (through libbpf) failed; ``errno`` says why."""


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as e:
        raise BpfError(
            errno.ENOENT, f"libbpf is not installed ({e}); run `make setup` (Debian libbpf1)"
        ) from None
    vp, ci, cu = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "bpf_object__open_file": (vp, [ctypes.c_char_p, vp]),
        "bpf_object__load": (ci, [vp]),
        "bpf_object__close": (None, [vp]),
        "bpf_object__find_program_by_name": (vp, [vp, ctypes.c_char_p]),
        "bpf_object__find_map_fd_by_name": (ci, [vp, ctypes.c_char_p]),
        "bpf_object__find_map_by_name": (vp, [vp, ctypes.c_char_p]),
        "bpf_map__reuse_fd": (ci, [vp, ci]),
        "bpf_program__fd": (ci, [vp]),
        "bpf_map_update_elem": (ci, [ci, vp, vp, ctypes.c_uint64]),
        "bpf_map_lookup_elem": (ci, [ci, vp, vp]),
        "bpf_map_delete_elem": (ci, [ci, vp]),
        "bpf_map_get_next_key": (ci, [ci, vp, vp]),
        "bpf_prog_get_fd_by_id": (ci, [cu]),
        "bpf_map_get_fd_by_id": (ci, [cu]),
        "bpf_obj_get_info_by_fd": (ci, [ci, vp, ctypes.POINTER(cu)]),
        "libbpf_num_possible_cpus": (ci, []),
        "bpf_tc_hook_create": (ci, [vp]),
        "bpf_tc_attach": (ci, [vp, vp]),
        "bpf_tc_detach": (ci, [vp, vp]),
        "bpf_tc_query": (ci, [vp, vp]),
        "libbpf_set_print": (vp, [vp]),
        "bpf_prog_test_run_opts": (ci, [ci, vp]),
        "bpf_enable_stats": (ci, [ci]),
        "bpf_map_lookup_batch": (ci, [ci, vp, vp, vp, vp, ctypes.POINTER(cu), vp]),
    }
    for fn, (res, args) in sigs.items():
        f = getattr(lib, fn)
        f.restype = res
        f.argtypes = args
    return lib


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = -ret if ret != -1 else ctypes.get_errno()
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return ret


_ncpus = 0


def num_possible_cpus() -> int:
    global _ncpus
    if not _ncpus:
        _ncpus = _check(lib().libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")
    return _ncpus


class Map:
    """One map, by fd (owned: ``close`` closes it). Keys and values are bytes of the
    map's sizes; a per-CPU map's value is ``num_possible_cpus()`` values, each padded to
    8 bytes."""

    __slots__ = ("fd", "name", "key_size", "value_size", "max_entries", "percpu", "_vbuf",
                 "_kbuf", "_nbuf", "id", "type")  # fmt: skip

    def __init__(self, fd: int, percpu: bool = False) -> None:
        self.fd = fd
        info = map_info(fd)
        self.id = info["id"]
        self.type = info["type"]
        self.name = info["name"]
        self.key_size = info["key_size"]
        self.value_size = info["value_size"]
        self.max_entries = info["max_entries"]
        self.percpu = percpu
        vlen = ((self.value_size + 7) & ~7) * num_possible_cpus() if percpu else self.value_size
        self._vbuf = ctypes.create_string_buffer(max(vlen, 1))
        self._kbuf = ctypes.create_string_buffer(max(self.key_size, 1))
        self._nbuf = ctypes.create_string_buffer(max(self.key_size, 1))

    @property
    def value_len(self) -> int:
        """Bytes of a value as lookup returns it (all CPUs for a per-CPU map)."""
        return len(self._vbuf)

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        _check(lib().bpf_map_update_elem(self.fd, key, value, flags), f"update {self.name}")

    def lookup(self, key: bytes) -> bytes | None:
        ret = lib().bpf_map_lookup_elem(self.fd, key, self._vbuf)
        if ret < 0:
            err = -ret if ret != -1 else ctypes.get_errno()
            if err == errno.ENOENT:
                return None
            raise BpfError(err, f"lookup {self.name}: {os.strerror(err)}")
        return self._vbuf.raw

    def lookup_range(self, n: int) -> bytes:
        """The values of keys 0..n-1 of an array map, in one ``bpf_map_lookup_batch``
        call (each value ``value_len`` bytes, so a per-CPU map's come with every CPU's)."""
        n = min(n, self.max_entries)
        if n <= 0:
            return b""
        keys = ctypes.create_string_buffer(4 * n)
        values = ctypes.create_string_buffer(self.value_len * n)
        out = ctypes.c_uint32(0)
        count = ctypes.c_uint32(n)
        ret = lib().bpf_map_lookup_batch(
            self.fd, None, ctypes.byref(out), keys, values, ctypes.byref(count), None
        )
        if ret < 0:
            err = -ret if ret != -1 else ctypes.get_errno()
            if err != errno.ENOENT:
                raise BpfError(err, f"batch lookup in {self.name}: {os.strerror(err)}")
        return values.raw[: count.value * self.value_len]

    def delete(self, key: bytes) -> bool:
        ret = lib().bpf_map_delete_elem(self.fd, key)
        if ret < 0:
            err = -ret if ret != -1 else ctypes.get_errno()
            if err == errno.ENOENT:
                return False
            raise BpfError(err, f"delete from {self.name}: {os.strerror(err)}")
        return True

    def all_keys(self) -> list[bytes]:
        out: list[bytes] = []
        cur: bytes | None = None
        while True:
            ret = lib().bpf_map_get_next_key(self.fd, cur, self._nbuf)
            if ret < 0:
                err = -ret if ret != -1 else ctypes.get_errno()
                if err == errno.ENOENT:
                    return out
                raise BpfError(err, f"walk {self.name}: {os.strerror(err)}")
            cur = self._nbuf.raw
            out.append(cur)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class BpfObject:
    """An object file opened and loaded: its program fds and map fds (dup'ed, owned by
    the caller) are taken with ``take``; the libbpf object is closed after. ``reuse``
    names maps that already exist (name -> fd): the program uses those instead of new
    ones (libbpf checks that their type, key, value and size are the object's, else
    the load fails with EINVAL)."""

    def __init__(self, path: str, reuse: dict[str, int] | None = None) -> None:
        L = lib()
        obj = L.bpf_object__open_file(path.encode(), None)
        if not obj:
            err = ctypes.get_errno() or errno.EINVAL
            raise BpfError(err, f"cannot open BPF object {path}: {os.strerror(err)}")
        self._obj = obj
        for name, fd in (reuse or {}).items():
            m = L.bpf_object__find_map_by_name(obj, name.encode())
            ret = L.bpf_map__reuse_fd(m, fd) if m else -errno.ENOENT
            if ret < 0:
                L.bpf_object__close(obj)
                self._obj = None
                raise BpfError(-ret, f"cannot reuse map {name} for {path}: {os.strerror(-ret)}")
        ret = L.bpf_object__load(obj)
        if ret < 0:
            L.bpf_object__close(obj)
            self._obj = None
            err = -ret
            raise BpfError(
                err,
                f"the kernel refused BPF object {path}: {os.strerror(err)} (the verifier "
                "log is on stderr)",
            )

    def prog_fd(self, name: str) -> int:
        p = lib().bpf_object__find_program_by_name(self._obj, name.encode())
        if not p:
            raise BpfError(errno.ENOENT, f"no program {name} in the object")
        return os.dup(_check(lib().bpf_program__fd(p), f"program {name}"))

    def map_fd(self, name: str) -> int:
        fd = lib().bpf_object__find_map_fd_by_name(self._obj, name.encode())
        return os.dup(_check(fd, f"map {name}"))

    def close(self) -> None:
        if self._obj:
            lib().bpf_object__close(self._obj)
            self._obj = None


# Program and map info ---------------------------------------------------------------
# struct bpf_prog_info: type 0, id 4, tag 8, jited_prog_len 16, xlated_prog_len 20, ...,
# nr_map_ids 52, map_ids 56, name 64, ..., run_time_ns 192, run_cnt 200, ...,
# verified_insns 216.
# struct bpf_map_info: type 0, id 4, key_size 8, value_size 12, max_entries 16,
# map_flags 20, name 24.
_INFO_LEN = 256


def _info(fd: int, buf: ctypes.Array[ctypes.c_char]) -> None:
    n = ctypes.c_uint32(len(buf))
    _check(lib().bpf_obj_get_info_by_fd(fd, buf, ctypes.byref(n)), "bpf_obj_get_info_by_fd")


def prog_info(fd: int) -> dict[str, Any]:
    """A program's id, name, the ids of the maps it uses, its size (instructions after
    the verifier's rewrites; instructions the verifier walked) and its run counters
    (``run_time_ns``, ``run_cnt``: counted only while some ``enable_stats()`` descriptor
    is open, or with the sysctl kernel.bpf_stats_enabled set)."""
    ids = (ctypes.c_uint32 * 64)()
    buf = ctypes.create_string_buffer(_INFO_LEN)
    struct.pack_into("<I", buf, 52, 64)
    struct.pack_into("<Q", buf, 56, ctypes.addressof(ids))
    _info(fd, buf)
    n = min(struct.unpack_from("<I", buf, 52)[0], 64)
    return {
        "type": struct.unpack_from("<I", buf, 0)[0],
        "id": struct.unpack_from("<I", buf, 4)[0],
        "tag": buf.raw[8:16].hex(),
        "name": buf.raw[64:80].split(b"\0", 1)[0].decode(),
        "map_ids": list(ids[:n]),
        "insns": struct.unpack_from("<I", buf, 20)[0] // 8,
        "verified_insns": struct.unpack_from("<I", buf, 216)[0],
        "run_time_ns": struct.unpack_from("<Q", buf, 192)[0],
        "run_cnt": struct.unpack_from("<Q", buf, 200)[0],
    }


def enable_stats() -> int:
    """A descriptor that keeps the kernel counting every BPF program's runs and run time
    (BPF_ENABLE_STATS, BPF_STATS_RUN_TIME) until it is closed: a few ns per run, so
    only for measuring."""
    return _check(lib().bpf_enable_stats(0), "BPF_ENABLE_STATS")


def map_info(fd: int) -> dict[str, Any]:
    buf = ctypes.create_string_buffer(_INFO_LEN)
    _info(fd, buf)
    typ, mid, ks, vs, me, flags = struct.unpack_from("<6I", buf, 0)
    return {
        "type": typ,
        "id": mid,
        "key_size": ks,
        "value_size": vs,
        "max_entries": me,
        "flags": flags,
        "name": buf.raw[24:40].split(b"\0", 1)[0].decode(),
    }


def prog_fd_by_id(prog_id: int) -> int:
    return _check(lib().bpf_prog_get_fd_by_id(prog_id), f"program id {prog_id}")


def map_fd_by_id(map_id: int) -> int:
    return _check(lib().bpf_map_get_fd_by_id(map_id), f"map id {map_id}")


# tc (clsact ingress) ------------------------------------------------------------------
# struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } (24)
# struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; }
_HOOK = struct.Struct("<QiII4x")
_OPTS = struct.Struct("<QiIIII4x")


def _hook(ifindex: int) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_HOOK.pack(_HOOK.size, ifindex, BPF_TC_INGRESS, 0))


def _opts(prog_fd: int = 0, flags: int = 0) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(
        _OPTS.pack(_OPTS.size, prog_fd, flags, 0, TC_HANDLE, TC_PRIORITY)
    )


def tc_attach(ifindex: int, prog_fd: int) -> None:
    """Attach (or atomically replace) our filter on the device's clsact ingress."""
    ret = lib().bpf_tc_hook_create(_hook(ifindex))
    if ret < 0 and -ret != errno.EEXIST:
        _check(ret, f"create clsact on ifindex {ifindex}")
    _check(lib().bpf_tc_attach(_hook(ifindex), _opts(prog_fd, BPF_TC_F_REPLACE)),
           f"attach to ifindex {ifindex}")  # fmt: skip


def tc_query(ifindex: int) -> int | None:
    """The id of the program in our filter on the device's ingress, None if none
    (quietly: most devices have no clsact, which libbpf would print)."""
    opts = _opts()
    old = lib().libbpf_set_print(None)
    try:
        ret = lib().bpf_tc_query(_hook(ifindex), opts)
    finally:
        lib().libbpf_set_print(old)
    if ret < 0:
        return None
    return int(_OPTS.unpack_from(opts.raw)[3])


def tc_detach(ifindex: int) -> bool:
    ret = lib().bpf_tc_detach(_hook(ifindex), _opts())
    return ret >= 0


# struct bpf_test_run_opts { size_t sz; data_in, data_out; u32 data_size_in, _out;
# ctx_in, ctx_out; u32 ctx_size_in, _out; u32 retval; int repeat; u32 duration, flags;
# int cpu; u32 batch_size; } (80 bytes). The context is a struct __sk_buff, whose
# ifindex (offset 40) says which device the packet came in on.
_TEST_RUN = struct.Struct("<QQQIIQQIIIiIIiI")
_SKB_CTX = 192


def prog_test_run(prog_fd: int, frame: bytes, ifindex: int, repeat: int) -> tuple[int, int]:
    """(return code, average nanoseconds per run) of a tc program run ``repeat`` times
    on ``frame`` as if received on ``ifindex``, by BPF_PROG_TEST_RUN (nothing is sent:
    a redirect is only returned)."""
    data = ctypes.create_string_buffer(frame, len(frame))
    ctx = ctypes.create_string_buffer(_SKB_CTX)
    struct.pack_into("<I", ctx, 40, ifindex)
    opts = ctypes.create_string_buffer(_TEST_RUN.size)
    _TEST_RUN.pack_into(opts, 0, _TEST_RUN.size, ctypes.addressof(data), 0, len(frame), 0,
                        ctypes.addressof(ctx), 0, _SKB_CTX, 0, 0, repeat, 0, 0, 0, 0)  # fmt: skip
    _check(lib().bpf_prog_test_run_opts(prog_fd, opts), "BPF_PROG_TEST_RUN")
    fields = _TEST_RUN.unpack_from(opts)
    return fields[9], fields[11]
