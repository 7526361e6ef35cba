"""``apt-get install`` of a newer hitless package while a switch runs is a hitless
upgrade, and of the older package again a hitless downgrade: measured with the impact
harness (operations ``apt-upgrade``/``apt-downgrade``), with UDP both ways, a TCP stream
and a connected OpenFlow controller.

Two packages: the working tree and the newest previous release
(tests/upgrade/previous_versions.txt), whose commit is older, so its Debian version is
lower; both built by packaging/build_deb.py and cached in .cache/debs.

This installs a package on the machine, which other test runs share: everything from the
first install to the purge holds ``LOCK`` (flock), the switch gets a run directory and
namespace of its own (the package allows any run directory; its default /run/hitless is
not used), the package is purged in teardown whatever happened, and the test skips if a
hitless package was installed before it (an operator's, not ours to replace). The
package's postinst hands over only switches that run from /usr/lib/hitless/versions, so
switches other tests start from a checkout's .venv are never touched.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitless.impact.apt import (
    LOCK,
    PREFIX,
    PackagedSwitch,
    apt_install,
    installed_version,
    purge,
)
from hitless.impact.run import controller_port, pick_port
from hitless.impact.topology import Topology
from tests.debpkg.conftest import built
from tests.debpkg.measuring import measure_switch
from tests.traffic import HANDOFF, OLD_BUILD_SLACK, bound_of, fault_env, judge, violations
from tests.wait import wait_for

# The two packages are built before the first case (tests/debpkg/conftest.py: 1.5-15 min
# on a loaded machine the first time, bounded on its own); later runs take them from the
# cache. The bound here is the cases' own.
pytestmark = [pytest.mark.netns, pytest.mark.apt, pytest.mark.timeout(2400)]

CLASSES = ("udp", "controller", "tcp-stream")
# apt-get install of the ~62 MB package (unpacking ~6,800 files, postinst, the handoff)
# took 40-54 s at load average 15: the traffic must outlast it.
DURATION = 120
# This run installed the package (its pid inside): a run that finds it died before its
# teardown (killed by a session timeout) and restores dpkg first.
OURS = Path(f"{LOCK}.installed-by")
# apt-get holds the frontend lock and the dpkg it runs the database lock: an apt-get
# killed by a timeout mid-install leaves its dpkg going with the database lock alone.
DPKG_LOCKS = (Path("/var/lib/dpkg/lock-frontend"), Path("/var/lib/dpkg/lock"))


@pytest.fixture(scope="module")
def debs(request: pytest.FixtureRequest) -> dict[str, Path]:
    return built(request.config)


def _status() -> str:
    """dpkg's status of the package ("install ok installed", "install reinstreq
    half-installed", ...; "" when dpkg does not know it)."""
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "hitless"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    return r.stdout.strip() if r.returncode == 0 else ""


def _dpkg_free() -> bool:
    """No apt-get and no dpkg runs (one of ours that outlived its apt-get, killed by a
    timeout, may): neither lock is held. The frontend lock alone once let the restore
    run beside such a dpkg, each of its steps refused ("dpkg database lock was locked by
    another process"), the package left half-installed (a private run of the upgrade
    case with a 6 s timeout, which fired inside the first apt-get install)."""
    for path in DPKG_LOCKS:
        with open(path, "a") as f:
            try:
                fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.lockf(f, fcntl.LOCK_UN)
    return True


def restore_dpkg() -> str:
    """Remove the package whatever state an interrupted install left it in: wait for a
    dpkg still running (an apt-get killed by a timeout leaves its dpkg going), finish
    what dpkg left half-done (``--configure -a``), purge, and purge again forcing past a
    half-installed package. The output of each step."""
    out = []
    wait_for(_dpkg_free, "apt-get and dpkg to finish (their locks in /var/lib/dpkg)", timeout=900)
    clean = ("", "unknown ok not-installed")
    for cmd in (
        ["dpkg", "--configure", "-a"],
        ["dpkg", "--purge", "hitless"],
        ["dpkg", "--purge", "--force-remove-reinstreq", "hitless"],
    ):
        status = _status()
        if status in clean or (cmd[1] == "--configure" and status == "install ok installed"):
            continue  # nothing half-done (configure) or nothing left (purge)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        out.append(f"$ {' '.join(cmd)}: {r.returncode}\n{r.stdout}{r.stderr}")
    return "\n".join(out)


@pytest.fixture
def machine() -> Iterator[None]:
    """The package lock held, no hitless package installed before (one a run of ours
    left, killed before its teardown, is removed first), purged after, whatever
    happened (a timeout in the middle of an install included)."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if OURS.exists():
            print(
                f"a run that installed the package ({OURS.read_text()}) left it:\n{restore_dpkg()}"
            )
            OURS.unlink()
        before = installed_version()
        if before is not None or _status() not in ("", "unknown ok not-installed"):
            pytest.skip(f"hitless {before or _status()} is on this machine: not replacing it")
        OURS.write_text(str(os.getpid()))
        try:
            yield
        finally:
            out = restore_dpkg()
            gone = installed_version() is None and _status() in ("", "unknown ok not-installed")
            assert gone, out
            left = [p for p in (PREFIX, Path("/var/lib/hitless")) if p.exists()]
            shutil.rmtree(PREFIX, ignore_errors=True)
            OURS.unlink()
            assert not left, f"purge left {left}: {out}"


def _gone(pid: int) -> bool:
    """Exited (or a zombie its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def _version(deb: Path) -> str:
    return deb.name.split("_")[1]


@pytest.mark.parametrize("fault", [None, "blackout:100", "duplicate"])
def test_apt_upgrade_and_downgrade_under_traffic(
    debs: dict[str, Path], machine: None, fault: str | None
) -> None:
    """Both handoffs judged by the shared assertion: the upgrade (this build's new
    process) with the bound of this build's own handoffs (``bound_of``: 90 ms beyond the
    freeze and the switch's waits for a CPU), the downgrade (the older release's) with the
    previous-build allowance (at load ~33 it left 75 ms beyond them). Armed (``fault``): the upgrade's apt-get runs with ``HITLESS_FAULT`` in its
    environment, which dpkg, the postinst's handoff and the new process the package
    starts inherit (the same packages as the clean run), and the judgement must catch it;
    that is all an armed case runs. (The older release's blackout logs no window of its
    own, so a blackout in the downgrade's new process would be judged with the switch's
    waits for a CPU excused inside it: at load ~33 that is not a certain catch.)"""
    old_v, new_v = _version(debs["old"]), _version(debs["new"])
    out = apt_install(debs["old"])
    assert installed_version() == old_v, out
    # a first install starts nothing unless asked
    assert not Path("/run/hitless/hitless-vswitchd.pid").exists()
    port = pick_port()
    with Topology(2) as topo:
        sw = PackagedSwitch(
            topo.switch_ns, {"apt-upgrade": debs["new"], "apt-downgrade": debs["old"]}
        )
        try:
            sw.start()
            sw.add_bridge(topo.ports)
            # OpenFlow 1.3 and 1.4 only: the previous release (77f006e) speaks just those,
            # and refuses to take over a session whose offered versions include 1.0 or 1.5
            # ("versions (1, 4, 5, 6) not within [4, 5]": the downgrade rolls back).
            sw.vsctl("set", "bridge", "br0", "protocols=OpenFlow13,OpenFlow14")
            sw.vsctl("set-controller", "br0", f"ptcp:{controller_port(port)}:127.0.0.1")
            assert topo.wait_connected()
            assert sw.running_version() == old_v
            sw.handoff_env = fault_env(fault) or {}
            for op, want in (("apt-upgrade", new_v), ("apt-downgrade", old_v)):
                before = sw.daemon_pid()
                res = measure_switch(
                    sw.rundir,
                    sw.operation(op),
                    hosts=topo.hosts,
                    name=op,
                    duration=DURATION,
                    at=2,
                    classes=CLASSES,
                    port=port,
                    controller_ns=topo.switch_ns,
                    ctl=str(sw.ctl),
                )
                report = sw.last_report or {}
                print(f"{op}: {json.dumps(report.get('phases_ms'))}\n{sw.apt_output[-1500:]}")
                assert report.get("ok") and report.get("version_to") == want, report
                assert installed_version() == want
                assert sw.running_version() == want
                assert sw.daemon_pid() == report["new_pid"] != before
                assert os.readlink(PREFIX / "current") == f"versions/{want}"
                if fault is not None and fault.startswith("blackout:"):
                    assert res.fault_windows, "the new process logged no blackout"
                slack = HANDOFF.gap if op == "apt-upgrade" else OLD_BUILD_SLACK
                judge(violations(res, bound_of([report], slack)), fault, res)
                if fault is not None:
                    return  # armed in the upgrade only (see above)
            assert "br0" in sw.vsctl("list-br").split()
            # A handoff that rolls back (the new process dies once the old one is frozen):
            # the installation succeeds, the old version keeps running and serving, the
            # failure is reported; hitless-service handoff then retries.
            pid = sw.daemon_pid()
            out = apt_install(debs["new"], env={"HITLESS_FAULT": "crash:ready"})
            print(out[-1500:])
            assert installed_version() == new_v
            assert sw.daemon_pid() == pid and sw.running_version() == old_v
            assert f"upgrade {old_v} -> {new_v} FAILED" in out, out
            assert f"the switch still runs {old_v} (pid {pid}) and keeps serving" in out, out
            report = json.loads((sw.rundir / "last-handoff.json").read_text())
            assert report["ok"] is False and report["reason"], report
            assert (PREFIX / "versions" / old_v).is_dir()  # still running: not pruned
            assert topo.wait_connected()
            retry = subprocess.run(
                ["/usr/sbin/hitless-service", "handoff"], capture_output=True, text=True,
                timeout=300,
            )  # fmt: skip
            assert retry.returncode == 0, retry.stdout + retry.stderr
            assert sw.running_version() == new_v and sw.daemon_pid() != pid
            assert topo.wait_connected()
        finally:
            sw.close()


def test_service_started_when_asked_stopped_by_remove_database_purged(
    debs: dict[str, Path], machine: None
) -> None:
    """The package's defaults (/run/hitless, /var/lib/hitless), under the lock: a first
    install with HITLESS_START=yes starts the service's switch, the init script reloads
    and reports it, removal stops it cleanly, purge deletes the database."""
    new_v = _version(debs["new"])
    rundir, db = Path("/run/hitless"), Path("/var/lib/hitless/conf.db")
    apt_install(debs["new"], env={"HITLESS_START": "yes"})
    pid = int((rundir / "hitless-vswitchd.pid").read_text())
    db_pid = int((rundir / "ovsdb-server.pid").read_text())
    assert db.exists()
    init = "/etc/init.d/hitless"
    st = subprocess.run([init, "status"], capture_output=True, text=True, timeout=60)
    assert st.returncode == 0 and f"pid {pid}, version {new_v}" in st.stdout, st.stdout
    r = subprocess.run([init, "reload"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and f"already runs {new_v} (pid {pid})" in r.stdout, r.stdout
    vsctl = ["ovs-vsctl", f"--db=unix:{rundir}/db.sock", "--timeout=30"]
    subprocess.run([*vsctl, "add-br", "pkgbr", "--", "set", "bridge", "pkgbr",
                    "datapath_type=dummy"], check=True, timeout=60)  # fmt: skip
    out = subprocess.run(
        ["apt-get", "remove", "-y", "-q", "hitless"], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"stopped hitless-vswitchd (pid {pid})" in out.stdout, out.stdout
    assert _gone(pid) and _gone(db_pid)
    assert not PREFIX.joinpath("versions").exists()
    assert db.exists()  # removal keeps the database ...
    purge()
    assert not db.parent.exists() and not rundir.exists()  # ... purge deletes it
