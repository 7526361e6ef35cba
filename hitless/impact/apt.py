"""The ``apt-upgrade`` and ``apt-downgrade`` operations: hitless as its Debian package
installs it, upgraded or downgraded by ``apt-get install ./hitless_VERSION.deb`` while
traffic runs.

``PackagedSwitch`` is a ``HitlessSwitch`` whose commands are the package's
(``/usr/bin/hitless``), in the harness's namespace and a run directory of its own, so
the daemon runs from ``/usr/lib/hitless/versions/VERSION``. The operation only runs
apt-get: the package's postinst hands the switch over (``hitless-service handoff``:
``hitless upgrade`` or ``downgrade`` inside the switch's namespaces) and records the
handoff's report in ``RUNDIR/last-handoff.json``, from which the operation takes the
handoff's phases, the freeze placed where it began (``ready_at``) when the report
says, else laid out to end when the handoff ended (``monotonic_end``; both on the
system-wide monotonic clock).

Installing a package changes the whole machine: callers hold ``LOCK`` (flock) around
everything from the first install to the purge.

Must not import the switch layers.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hitless.impact.analysis import Phase
from hitless.impact.switches import HitlessSwitch, Operation, SwitchError, _handoff_phases

__all__ = ["APT_OPS", "LOCK", "PREFIX", "PackagedSwitch", "apt_install", "purge"]

APT_OPS = ("apt-upgrade", "apt-downgrade")
LOCK = Path("/tmp/hitless-package.lock")
PREFIX = Path("/usr/lib/hitless")
APT_TIMEOUT = 600.0


def apt_install(deb: Path, env: Mapping[str, str] | None = None) -> str:
    """``apt-get install -y --allow-downgrades /path/to/PACKAGE.deb``; its output."""
    r = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--allow-downgrades", "--no-install-recommends",
         str(deb.absolute())],
        capture_output=True, text=True, timeout=APT_TIMEOUT, cwd="/",
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", **(env or {})},
    )  # fmt: skip
    if r.returncode != 0:
        raise SwitchError(f"apt-get install {deb.name} failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return r.stdout + r.stderr


def purge() -> str:
    """Remove the package and everything it made (its database included)."""
    r = subprocess.run(
        ["dpkg", "--purge", "hitless"], capture_output=True, text=True, timeout=APT_TIMEOUT
    )
    return r.stdout + r.stderr


def installed_version() -> str | None:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", "hitless"], capture_output=True, text=True
    )
    words = r.stdout.split()
    if r.returncode != 0 or "installed" not in words[:3]:
        return None
    return words[-1]


class PackagedSwitch(HitlessSwitch):
    """ovsdb-server + hitless-vswitchd started by the installed package's ``hitless``."""

    def __init__(self, netns: str | None, debs: Mapping[str, Path]) -> None:
        super().__init__(netns)
        self.bin = Path("/usr/bin")
        self.debs = dict(debs)  # operation -> the .deb it installs
        self.apt_output = ""
        # ``handoff_env`` goes into apt-get's environment: the maintainer scripts and the
        # handoff they run inherit it (so ``HITLESS_FAULT`` arms a point in the new
        # process the package starts).

    def running_version(self) -> str | None:
        """The package version whose files the daemon runs (from its command line)."""
        pid = self.daemon_pid()
        if pid is None:
            return None
        for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
            path = arg.decode(errors="replace")
            if path.startswith(f"{PREFIX}/versions/"):
                return path[len(f"{PREFIX}/versions/") :].split("/", 1)[0]
        return None

    def operation(self, op: str) -> Operation:
        if op in APT_OPS:
            if op not in self.debs:
                raise SwitchError(f"{op} needs the .deb to install (debs[{op!r}])")
            return lambda: self._apt(self.debs[op])
        return super().operation(op)

    def _apt(self, deb: Path) -> list[Phase]:
        record = self.rundir / "last-handoff.json"
        record.unlink(missing_ok=True)
        t0 = time.monotonic()
        self.apt_output = apt_install(deb, env=self.handoff_env)
        t1 = time.monotonic()
        try:
            report: dict[str, Any] = json.loads(record.read_text())
        except (OSError, ValueError):
            raise SwitchError(
                f"apt-get install {deb.name} handed nothing over ({record} missing):\n"
                + self.apt_output[-2000:]
            ) from None
        self.last_report = report
        if not report.get("ok"):
            raise SwitchError(f"the handoff apt-get ran failed: {report.get('reason')}")
        end = float(report.get("monotonic_end", t1))
        at = report.get("ready_at")  # the freeze's start, when the handoff's CLI reports it
        phases = _handoff_phases(
            report.get("phases_ms", {}), t0, min(end, t1), float(at) if at else None
        )
        return [Phase(f"apt-get install {deb.name}", t0, t1), *phases]
