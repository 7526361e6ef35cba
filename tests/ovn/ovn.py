"""A private OVN deployment around one switch, for end-to-end tests: the northbound and
southbound ``ovsdb-server``s and ``ovn-northd`` (Debian's ovn-central) in their own run
directory, and ``ovn-controller`` (ovn-host) pointed at the switch's database, with the
integration bridge the switch serves. Used side by side on hitless and on real Open
vSwitch with the same northbound configuration (tests/ovn/test_ovn_e2e.py).

Every process is started with explicit sockets, pidfiles and logs in the run directory
and stopped by the PID its pidfile names. ovn-controller finds the bridge's OpenFlow
socket through ``OVS_RUNDIR`` (the switch's run directory) and keeps its own control
socket in ``OVN_RUNDIR`` (ours). The southbound database gets an SB_Global row before
ovn-controller starts (``ovn-sbctl init``): ovn-controller 23.03 crashes without one,
on Open vSwitch too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.ovs_dummy import stop_pidfile

SCHEMAS = Path("/usr/share/ovn")
TOOLS = ("ovn-controller", "ovn-northd", "ovn-nbctl", "ovn-sbctl")


def available() -> bool:
    return all(shutil.which(t) for t in TOOLS) and (SCHEMAS / "ovn-nb.ovsschema").exists()


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run ``cmd``; its standard output, or an AssertionError with what it printed."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd="/")
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}: {p.stdout}{p.stderr}")
    return p.stdout


class Ovn:
    """NB + SB + northd, and one chassis (ovn-controller) on ``bridge`` of the switch whose
    database socket is ``switch_db`` and run directory ``switch_rundir``."""

    def __init__(self, switch_rundir: Path, switch_db: Path, bridge: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="hlovn-", dir="/tmp"))
        self.bridge = bridge
        self.switch_db = switch_db
        self.env = {**os.environ, "OVS_RUNDIR": str(switch_rundir), "OVN_RUNDIR": str(self.dir)}
        self._pidfiles: list[Path] = []

    def _daemon(self, name: str, cmd: list[str]) -> None:
        """Start ``cmd`` detached; its control socket goes to OVN_RUNDIR (ovn-controller
        has no --unixctl)."""
        pidfile = self.dir / f"{name}.pid"
        self._pidfiles.append(pidfile)
        run([*cmd, f"--pidfile={pidfile}", f"--log-file={self.dir / (name + '.log')}",
              "--detach", "--no-chdir"], self.env)  # fmt: skip

    def start_central(self) -> None:
        for db in ("nb", "sb"):
            run(["ovsdb-tool", "create", str(self.dir / f"{db}.db"),
                  str(SCHEMAS / f"ovn-{db}.ovsschema")])  # fmt: skip
            self._daemon(db, ["ovsdb-server", str(self.dir / f"{db}.db"),
                              f"--remote=punix:{self.dir / (db + '.sock')}",
                              f"--unixctl={self.dir / (db + '.ctl')}"])  # fmt: skip
        self.nbctl("init")
        self.sbctl("init")  # the SB_Global row ovn-controller needs
        self._daemon("northd", ["ovn-northd", f"--ovnnb-db=unix:{self.dir / 'nb.sock'}",
                                f"--ovnsb-db=unix:{self.dir / 'sb.sock'}"])  # fmt: skip

    def start_controller(self, vsctl: list[str]) -> None:
        """Point the switch's Open_vSwitch row at our SB (``vsctl``: the switch's
        ovs-vsctl command line) and start ovn-controller with vconn debug logging (its
        log then shows every OpenFlow message and error)."""
        run([*vsctl, "set", "open", ".", "external_ids:system-id=hv1",
              f"external_ids:ovn-remote=unix:{self.dir / 'sb.sock'}",
              "external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1",
              f"external_ids:ovn-bridge={self.bridge}"])  # fmt: skip
        self._daemon("ovn-controller", ["ovn-controller", f"unix:{self.switch_db}",
                                        "-vvconn:file:dbg", "-vrconn:file:dbg"])  # fmt: skip

    def nbctl(self, *args: str, timeout: float = 60) -> str:
        return run(["ovn-nbctl", f"--db=unix:{self.dir / 'nb.sock'}", *args], self.env, timeout)

    def sbctl(self, *args: str) -> str:
        return run(["ovn-sbctl", f"--db=unix:{self.dir / 'sb.sock'}", *args], self.env)

    def ports_up(self, *ports: str) -> bool:
        return all(self.nbctl("get", "Logical_Switch_Port", p, "up").strip() == "true"
                   for p in ports)  # fmt: skip

    def controller_log(self) -> str:
        path = self.dir / "ovn-controller.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def openflow_errors(self) -> list[str]:
        """The OpenFlow errors ovn-controller received, with the message that caused each."""
        log = self.controller_log()
        return [log[m.start() : m.start() + 600] for m in re.finditer("OFPT_ERROR", log)]

    def bridge_connections(self) -> list[str]:
        """ovn-controller's log lines about its OpenFlow connections to the bridge being
        made or lost (a reconnect shows here)."""
        mgmt = f"{self.bridge}.mgmt"
        words = ("connected", "disconnect", "connection closed", "connection dropped")
        return [ln for ln in self.controller_log().splitlines()
                if "|rconn|" in ln and mgmt in ln and any(w in ln for w in words)]  # fmt: skip

    def close(self) -> None:
        for pidfile in reversed(self._pidfiles):
            stop_pidfile(pidfile)
        shutil.rmtree(self.dir, ignore_errors=True)
