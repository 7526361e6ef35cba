"""System statistics for Open_vSwitch.statistics, written while
``other_config:enable-statistics=true`` (ovs-vswitchd.conf.db(5), "Statistics"), with
Open vSwitch's keys and formats:

* ``cpu``: the CPUs this process may run on;
* ``load_average``: the 1, 5 and 15 minute load averages ("0.52,0.48,0.40");
* ``memory``: total, used (total - free), cache (buffers + cached), swap total, swap
  used, in kB (/proc/meminfo);
* ``process_NAME`` for every ``NAME.pid`` in the run directory: virtual size kB, RSS kB,
  CPU time ms, crashes, ms since it was first started, ms since its last start
  (a process whose parent has the same name, a monitor, gets the parent's age as the
  first start and the crash count from the parent's command line), and the CPU it
  last ran on;
* ``file_systems``: "MOUNTPOINT,TOTAL_kB,USED_kB" for each read-write file system on a
  /dev device, space separated.

Reads /proc and statvfs only; the daemon refreshes it every ``INTERVAL`` seconds.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

__all__ = ["INTERVAL", "system_stats"]

INTERVAL = 5.0  # seconds, Open vSwitch's SYSTEM_STATS_INTERVAL
_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def _meminfo() -> str | None:
    want = {"MemTotal": 0, "MemFree": 0, "Buffers": 0, "Cached": 0, "SwapTotal": 0,
            "SwapFree": 0}  # fmt: skip
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in want and rest.split():
            want[key] = int(rest.split()[0])
    return ",".join(
        str(x)
        for x in (
            want["MemTotal"],
            want["MemTotal"] - want["MemFree"],
            want["Buffers"] + want["Cached"],
            want["SwapTotal"],
            want["SwapTotal"] - want["SwapFree"],
        )
    )


def _boot_ms() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) * 1000.0
    return 0.0


def _raw(pid: int) -> tuple[str, int, int, int, float, float, int] | None:
    """(name, ppid, vsz kB, rss kB, uptime ms, cpu ms, last CPU) of a process, None if
    gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    m = re.match(r"\d+ (\(.*\)) \S (.*)", text, re.S)
    if m is None:
        return None
    f = m.group(2).split()
    ppid, utime, stime, start, vsize, rss, core = (
        int(f[i]) for i in (0, 10, 11, 18, 19, 20, 35)
    )  # fields 4, 14, 15, 22, 23, 24 and 39 of proc(5)
    uptime = time.time() * 1000 - (_boot_ms() + start * _TICK_MS)
    page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
    return m.group(1), ppid, vsize // 1024, rss * page_kb, uptime, (utime + stime) * _TICK_MS, core


def _process(pid: int) -> str:
    child = _raw(pid)
    if child is None:
        return ""
    name, ppid, vsz, rss, uptime, cpu, core = child
    booted, crashes = uptime, 0
    parent = _raw(ppid) if ppid else None
    if parent is not None and parent[0] == name:  # a monitor: its age, its crash count
        booted = parent[4]
        try:
            cmd = Path(f"/proc/{ppid}/cmdline").read_bytes().split(b"\0")[0].decode()
            m = re.search(r"\((\d+)", cmd)
            crashes = int(m.group(1)) if m else 0
        except OSError:
            pass
    return f"{vsz},{rss},{int(cpu)},{crashes},{int(booted)},{int(uptime)},{core}"


def _file_systems() -> str | None:
    out = []
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        f = line.split()
        if len(f) < 4 or not f[0].startswith("/dev") or "rw" not in f[3].split(","):
            continue
        mnt = f[1].replace("\\040", " ")
        try:
            st = os.statvfs(mnt)
        except OSError:
            continue
        total = st.f_frsize * st.f_blocks // 1024
        free = st.f_frsize * st.f_bfree // 1024
        out.append(f"{re.sub(r'[ ,]', '_', mnt)},{total},{total - free}")
    return " ".join(out) or None


def system_stats(rundir: str) -> dict[str, str]:
    """Open_vSwitch.statistics as Open vSwitch computes it, for processes whose pidfiles
    are in ``rundir``."""
    out: dict[str, str] = {"cpu": str(len(os.sched_getaffinity(0)))}
    out["load_average"] = ",".join(f"{x:.2f}" for x in os.getloadavg())
    mem = _meminfo()
    if mem is not None:
        out["memory"] = mem
    try:
        names = sorted(os.listdir(rundir))
    except OSError:
        names = []
    for fn in names:
        if not fn.endswith(".pid") or not os.path.isfile(os.path.join(rundir, fn)):
            continue
        try:
            pid = int(Path(rundir, fn).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out.setdefault(f"process_{fn[:-4]}", _process(pid))
    fs = _file_systems()
    if fs is not None:
        out["file_systems"] = fs
    return out
