"""Logging as Open vSwitch's vlog: one module per layer of the code (``daemon``,
``config``, ``datapath``, ``ofproto``, ``openflow``, ``handoff``, ``packet``...), three
destinations (``console``, ``syslog``, ``file``), six levels (``off``, ``emer``, ``err``,
``warn``, ``info``, ``dbg``), changed at run time by ``ovs-appctl vlog/set`` and shown by
``vlog/list`` in Open vSwitch's layout; ``vlog/reopen`` reopens the log file (after
logrotate moved it), ``vlog/close`` closes it.

A module is the first folder under ``hitless`` of the Python logger's name
(``hitless.datapath.netdev`` -> ``datapath``); the daemon's own logger
(``hitless-vswitchd``) and anything else belong to ``daemon``. Each destination is one
``logging.Handler`` with a filter that applies that destination's level for the
record's module; each layer's Python logger gets the lowest level any destination wants,
so a disabled debug call costs what it always did.

Rate limiting, so that a flood cannot fill the disk: every call site (logger and line)
may log ``BURST`` messages at once and ``RATE`` per minute after that; what is dropped is
counted and reported, as Open vSwitch does, in the site's next message ("Dropped N log
messages in last S seconds (most recently, T seconds ago) due to excessive rate").
``vlog/disable-rate-limit [MODULE...]`` turns it off (for debugging).

The levels are part of the state a ``hitless upgrade`` carries: ``settings()`` /
``apply()`` (the daemon keeps them in DIR/hitless-vswitchd.settings.json).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DESTINATIONS",
    "LEVELS",
    "MODULES",
    "Vlog",
    "VlogError",
    "configure",
    "current",
    "module_of",
]

DESTINATIONS = ("console", "syslog", "file")
# vlog level -> Python level (OFF is above everything)
LEVELS = {
    "off": 100,
    "emer": logging.CRITICAL,
    "err": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "dbg": logging.DEBUG,
}
_NAMES = {v: k for k, v in LEVELS.items()}
MODULES = (
    "cli", "config", "daemon", "datapath", "handoff", "impact", "ofproto", "openflow", "packet",
)  # fmt: skip
BURST = 100  # messages a call site may log at once
RATE = 60.0  # then this many per minute
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(process)d %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class VlogError(ValueError):
    """A vlog/set spec that names no destination, level or module."""


def module_of(logger_name: str) -> str:
    parts = logger_name.split(".")
    if parts[0] == "hitless" and len(parts) > 1 and parts[1] in MODULES:
        return parts[1]
    return "daemon"


@dataclass(slots=True)
class _Site:
    tokens: float
    last: float
    dropped: int = 0
    first_drop: float = 0.0
    last_drop: float = 0.0


class _RateLimit(logging.Filter):
    """Per call site token bucket (BURST, RATE per minute), real time."""

    def __init__(self, vlog: Vlog, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.vlog = vlog
        self.clock = clock
        self.sites: dict[tuple[str, int], _Site] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if module_of(record.name) in self.vlog.unlimited:
            return True
        now = self.clock()
        key = (record.name, record.lineno)
        s = self.sites.get(key)
        if s is None:
            s = self.sites[key] = _Site(float(BURST), now)
        s.tokens = min(float(BURST), s.tokens + (now - s.last) * RATE / 60.0)
        s.last = now
        if s.tokens < 1.0:
            if not s.dropped:
                s.first_drop = now
            s.dropped += 1
            s.last_drop = now
            return False
        s.tokens -= 1.0
        if s.dropped:
            record.msg = (
                f"Dropped {s.dropped} log messages in last {now - s.first_drop:.0f} seconds "
                f"(most recently, {now - s.last_drop:.0f} seconds ago) due to excessive rate; "
                + str(record.msg)
            )
            s.dropped = 0
        return True


class _Dest(logging.Filter):
    """Passes the records of modules whose level on this destination lets them through."""

    def __init__(self, vlog: Vlog, dest: str) -> None:
        super().__init__()
        self.vlog = vlog
        self.dest = dest

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.vlog.levels[self.dest][module_of(record.name)]


class Vlog:
    """The process's logging configuration (logging is process-global: one of these)."""

    def __init__(self, logfile: str | os.PathLike[str] | None, file_level: str = "info") -> None:
        self.logfile = None if logfile is None else os.fspath(logfile)
        file_no = _level(file_level.lower())
        self.levels: dict[str, dict[str, int]] = {
            "console": dict.fromkeys(MODULES, LEVELS["off"]),
            "syslog": dict.fromkeys(MODULES, LEVELS["off"]),
            "file": dict.fromkeys(MODULES, file_no),
        }
        self.unlimited: set[str] = set()
        self.rate_limit = _RateLimit(self)
        self.handlers: dict[str, logging.Handler | None] = {
            "console": self._handler(logging.StreamHandler(sys.stderr), "console"),
            "syslog": None,  # opened when a module first logs there
            "file": self._open_file(),
        }
        self.installed = False  # configure() makes it the process's logging

    def install(self) -> None:
        self.installed = True
        self._install()

    # Handlers ----------------------------------------------------------------------
    def _handler(self, h: logging.Handler, dest: str) -> logging.Handler:
        h.setFormatter(logging.Formatter(LOG_FORMAT, DATE_FORMAT))
        h.addFilter(_Dest(self, dest))
        h.addFilter(self.rate_limit)
        return h

    def _open_file(self) -> logging.Handler | None:
        if self.logfile is None:
            return None
        return self._handler(logging.FileHandler(self.logfile), "file")

    def _syslog(self) -> logging.Handler | None:
        if self.handlers.get("syslog") is None and os.path.exists("/dev/log"):
            try:
                h = logging.handlers.SysLogHandler(address="/dev/log")
            except OSError:
                return None
            self.handlers["syslog"] = self._handler(h, "syslog")
        return self.handlers.get("syslog")

    def _install(self) -> None:
        """Attach the handlers to the root logger and set each layer logger's level."""
        if not self.installed:
            return
        if any(lv < LEVELS["off"] for lv in self.levels["syslog"].values()):
            self._syslog()
        root = logging.getLogger()
        root.handlers[:] = [h for h in self.handlers.values() if h is not None]
        lowest = {m: min(self.levels[d][m] for d in DESTINATIONS) for m in MODULES}
        root.setLevel(min(lowest["daemon"], logging.CRITICAL))
        for m in MODULES:
            logging.getLogger(f"hitless.{m}").setLevel(min(lowest[m], logging.CRITICAL))

    # Commands ----------------------------------------------------------------------
    def set(self, spec: str) -> None:
        """``vlog/set`` one spec: ``[MODULE|any][:DEST|any][:LEVEL]`` in any order, as
        Open vSwitch takes them (no level means dbg)."""
        if spec.lower().startswith("pattern:"):
            raise VlogError("log patterns cannot be changed in hitless")
        modules: list[str] | None = None
        dests: list[str] | None = None
        level: int | None = None
        for word in (w.strip().lower() for w in spec.split(":") if w.strip()):
            if word == "any":
                continue
            if word in MODULES:
                modules = (modules or []) + [word]
            elif word in DESTINATIONS:
                dests = (dests or []) + [word]
            elif word in LEVELS:
                level = LEVELS[word]
            else:
                raise VlogError(f'no destination, level, or module "{word}"')
        for d in dests or DESTINATIONS:
            for m in modules or MODULES:
                self.levels[d][m] = LEVELS["dbg"] if level is None else level
        self._install()

    def list(self) -> str:
        out = [
            "                 console    syslog    file\n",
            "                 -------    ------    ------\n",
        ]
        for m in MODULES:
            c, s, f = (_NAMES[self.levels[d][m]].upper() for d in DESTINATIONS)
            out.append(f"{m:<16}  {c:>4}       {s:>4}       {f:>4}\n")
        return "".join(out)

    def reopen(self) -> None:
        """Reopen the log file (after logrotate renamed it)."""
        old = self.handlers["file"]
        if old is not None:
            old.close()
        self.handlers["file"] = self._open_file()
        self._install()

    def close(self) -> None:
        old = self.handlers["file"]
        if old is not None:
            old.close()
        self.handlers["file"] = None
        self._install()

    def set_rate_limit(self, modules: Iterable[str], enabled: bool) -> None:
        names = list(modules) or list(MODULES)
        for m in names:
            if m not in MODULES:
                raise VlogError(f'no module named "{m}"')
        if enabled:
            self.unlimited -= set(names)
        else:
            self.unlimited |= set(names)

    # Handoff ---------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {
            "levels": {d: {m: _NAMES[v] for m, v in lv.items()} for d, lv in self.levels.items()},
            "unlimited": sorted(self.unlimited),
        }

    def apply(self, data: dict[str, Any]) -> None:
        for d, lv in data.get("levels", {}).items():
            if d in self.levels:
                for m, name in lv.items():
                    if m in MODULES and name in LEVELS:
                        self.levels[d][m] = LEVELS[name]
        self.unlimited = {m for m in data.get("unlimited", []) if m in MODULES}
        self._install()


def _level(name: str) -> int:
    if name == "debug":
        name = "dbg"
    if name == "warning":
        name = "warn"
    if name == "error":
        name = "err"
    if name not in LEVELS:
        raise VlogError(f'no level "{name}"')
    return LEVELS[name]


_CURRENT: list[Vlog] = []


def configure(logfile: str | os.PathLike[str] | None, file_level: str = "info") -> Vlog:
    """Set up this process's logging (the daemon does, once, at start)."""
    v = Vlog(logfile, file_level)
    v.install()
    _CURRENT[:] = [v]
    return v


def current() -> Vlog | None:
    """The configuration ``configure`` made, if this process made one."""
    return _CURRENT[0] if _CURRENT else None
