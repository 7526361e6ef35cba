"""``hitless status --rundir DIR [--json]``: what runs (PIDs, and which build of
hitless-vswitchd: its version, its executable and, for an installed Debian package, the
package version) and what is configured (bridges, ports, their OpenFlow port numbers and
errors, as written back by the switch).

Exit status 0 when both processes run, 3 when either does not (as LSB ``status``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from hitless.cli import add_rundir_argument
from hitless.config.ovsdb import DEFAULT_SCHEMA, interface_rows, read_config, schema_helper
from hitless.daemon.rundir import (
    DAEMON_NAME,
    ControlError,
    RunDir,
    control_call,
    daemon_pid,
    db_pid,
)

NOT_RUNNING = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="show processes, bridges and ports of DIR", description=__doc__
    )
    add_rundir_argument(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--schema", default=DEFAULT_SCHEMA, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def _opt(v: Any) -> Any:
    return (v[0] if v else None) if isinstance(v, list) else v


def running_build(rundir: RunDir, pid: int) -> dict[str, Any]:
    """Which build the daemon ``pid`` runs: its answer to ``version``, the executable it
    was started as (from its command line) and, when that lies in a packaged version
    directory, the package version recorded there (hitless-build.json)."""
    out: dict[str, Any] = {"version": None, "executable": None, "package_version": None}
    try:
        out["version"] = control_call(rundir.ctl, "version", timeout=2.0).strip()
    except ControlError:
        pass
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return out
    for raw in args:
        arg = raw.decode(errors="replace")
        if arg.endswith("/" + DAEMON_NAME):
            out["executable"] = arg
            try:
                info = json.loads((Path(arg).parent.parent / "hitless-build.json").read_text())
                out["package_version"] = info.get("version")
            except (OSError, ValueError):
                pass
            break
    return out


def read_bridges(rundir: RunDir, schema: str, timeout: float = 5.0) -> dict[str, Any] | None:
    """Bridges, ports and interface status from the database (None if unreachable)."""
    import ovs.db.idl
    import ovs.poller

    idl = ovs.db.idl.Idl(rundir.db_remote, schema_helper(schema))
    try:
        deadline = time.monotonic() + timeout
        while True:
            idl.run()
            if idl.has_ever_connected():
                break
            if time.monotonic() >= deadline:
                return None
            poller = ovs.poller.Poller()
            idl.wait(poller)
            poller.timer_wait(100)
            poller.block()
        read = read_config(idl)
        if read is None:
            return {}
        rows = interface_rows(idl)
        out: dict[str, Any] = {}
        for br in read.config.bridges.values():
            ports = {}
            for port in br.ports.values():
                for iface in port.interfaces:
                    row = rows.get(iface.name)
                    ports[iface.name] = {
                        "port": port.name,
                        "type": iface.type,
                        "ofport": _opt(row.ofport) if row else None,
                        "link_state": _opt(row.link_state) if row else None,
                        "error": _opt(row.error) if row else None,
                    }
            out[br.name] = {"datapath_type": br.datapath_type, "interfaces": ports}
        for name, err in read.rejected.items():
            out.setdefault("(rejected)", {"datapath_type": "", "interfaces": {}})
            out["(rejected)"]["interfaces"][name] = {"error": err}
        return out
    finally:
        idl.close()


def run(args: argparse.Namespace) -> int:
    rundir = RunDir.at(args.rundir)
    dbp, dp = db_pid(rundir), daemon_pid(rundir)
    bridges = read_bridges(rundir, args.schema) if dbp is not None else None
    build = running_build(rundir, dp) if dp is not None else None
    if args.json:
        print(
            json.dumps(
                {
                    "rundir": str(rundir.path),
                    "ovsdb-server": dbp,
                    DAEMON_NAME: dp,
                    "build": build,
                    "bridges": bridges,
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print(f"rundir {rundir.path}")
        for name, pid in (("ovsdb-server", dbp), (DAEMON_NAME, dp)):
            print(f"  {name}: " + (f"running (pid {pid})" if pid else "not running"))
        if build is not None:
            what = build["version"] or "version unknown (no answer)"
            if build["package_version"]:
                what += f", package {build['package_version']}"
            print(f"  build: {what}" + (f" ({build['executable']})" if build["executable"] else ""))
        if bridges is None and dbp is not None:
            print("  database: not reachable")
        for br, info in sorted((bridges or {}).items()):
            print(f"bridge {br} (datapath {info['datapath_type']})")
            for iface, st in sorted(
                info["interfaces"].items(), key=lambda kv: (kv[1].get("ofport") or 0, kv[0])
            ):
                parts = [f"ofport {st.get('ofport')}"]
                if st.get("link_state"):
                    parts.append(f"link {st['link_state']}")
                if st.get("error"):
                    parts.append(f"error: {st['error']}")
                print(f"  {iface}: " + ", ".join(parts))
    return 0 if dbp and dp else NOT_RUNNING
