"""The Debian package's pieces without installing anything (always run): the service
helper (packaging/hitless-service) against a layout in a temporary directory, the
maintainer and init scripts' syntax, the systemd unit (systemd-analyze verify), the
version order of builds, and ``hitless status`` naming the build that runs.

The full apt-get install/upgrade/downgrade under traffic is tests/debpkg/test_apt.py.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.switch import Sw
from tests.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"


def _load(name: str, path: Path) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture
def svc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    mod = _load("hitless_service", PACKAGING / "hitless-service")
    monkeypatch.setattr(mod, "PREFIX", tmp_path / "lib")
    monkeypatch.setattr(mod, "DEFAULTS", tmp_path / "default")
    for key in ("START", "RUNDIR", "DBDIR", "HANDOFF_OPTIONS", "NICE", "STANDBY"):
        monkeypatch.delenv(f"HITLESS_{key}", raising=False)
    return mod


def _dist(svc: ModuleType, version: str, daemon: str = "", cli: str = "") -> Path:
    """A package's files for ``version``: bin/hitless-vswitchd and bin/hitless."""
    d = svc.PREFIX / "dist" / version / "bin"
    d.mkdir(parents=True)
    for name, body in (("hitless-vswitchd", daemon), ("hitless", cli)):
        (d / name).write_text(f"#!{sys.executable}\n{body or 'pass'}\n")
        (d / name).chmod(0o755)
    return d.parent


def test_activate_installs_side_by_side_and_keeps_files_dpkg_deletes(svc: ModuleType) -> None:
    d1 = _dist(svc, "1.0")
    svc.activate("1.0")
    v1 = svc.PREFIX / "versions" / "1.0"
    assert os.readlink(svc.PREFIX / "current") == "versions/1.0"
    assert not (svc.PREFIX / "previous").exists()
    # hard links: the running copy costs no space and survives dpkg deleting dist/1.0
    assert (v1 / "bin/hitless").stat().st_ino == (d1 / "bin/hitless").stat().st_ino
    _dist(svc, "2.0")
    shutil.rmtree(d1)  # what dpkg does to the old version's files on upgrade
    svc.activate("2.0")
    assert os.readlink(svc.PREFIX / "current") == "versions/2.0"
    assert os.readlink(svc.PREFIX / "previous") == "versions/1.0"
    assert (v1 / "bin/hitless").read_text().startswith("#!")
    assert (v1 / ".complete").exists()
    # activating again (a reinstall) changes nothing
    svc.activate("2.0")
    assert os.readlink(svc.PREFIX / "previous") == "versions/1.0"


def test_activate_without_the_package_files_is_a_clear_error(svc: ModuleType) -> None:
    with pytest.raises(svc.ServiceError, match="dist/9.9 is missing"):
        svc.activate("9.9")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


# A stand-in daemon: writes its pidfile in --rundir, then waits to be killed.
FAKE_DAEMON = (
    "import os, sys, time\n"
    "d = sys.argv[sys.argv.index('--rundir') + 1]\n"
    "open(os.path.join(d, 'hitless-vswitchd.pid'), 'w').write(str(os.getpid()))\n"
    "time.sleep(300)  # deliberate: until killed\n"
)


def _run_fake(
    svc: ModuleType, version: str, rundir: Path, procs: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    rundir.mkdir(parents=True, exist_ok=True)
    exe = svc.PREFIX / "versions" / version / "bin" / "hitless-vswitchd"
    p = subprocess.Popen([str(exe), "--rundir", str(rundir)])
    procs.append(p)
    wait_for(lambda: (rundir / "hitless-vswitchd.pid").exists(), timeout=20, what="pidfile")
    return p


def test_prune_keeps_current_previous_and_what_runs(
    svc: ModuleType, tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    for v in ("1", "2", "3", "4"):
        _dist(svc, v, daemon=FAKE_DAEMON)
        svc.activate(v)
    p = _run_fake(svc, "1", tmp_path / "run1", procs)
    assert svc.versions_in_use() == {"1"}
    assert svc.prune() == ["2"]
    assert sorted(d.name for d in (svc.PREFIX / "versions").iterdir()) == ["1", "3", "4"]
    p.kill()
    p.wait()
    assert svc.prune() == ["1"]


def test_handoff_direction_and_a_rolled_back_one_is_reported(
    svc: ModuleType,
    tmp_path: Path,
    procs: list[subprocess.Popen[bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    log = tmp_path / "cli.log"
    # The target's CLI records how it was called; "fail" in the rundir: it rolls back.
    cli = (
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "if 'fail' in sys.argv[3]:\n"
        "    print(json.dumps({'ok': False, 'reason': 'rolled back (new process crashed)'}))\n"
        "    sys.exit(1)\n"
        "print(json.dumps({'ok': True, 'old_pid': 1, 'new_pid': 2, 'phases_ms': {'freeze': 3.5}}))\n"
    )
    for v in ("0.9", "1.0+git1", "1.0+git2"):
        _dist(svc, v, daemon=FAKE_DAEMON, cli=cli)
        svc.activate(v)
    old = _run_fake(svc, "0.9", tmp_path / "run-old", procs)
    newer = _run_fake(svc, "1.0+git2", tmp_path / "run-newer", procs)
    fail = _run_fake(svc, "0.9", tmp_path / "run-fail", procs)
    svc.activate("1.0+git1")
    found = {Path(str(s["rundir"])).name: s for s in svc.switches()}
    assert {k: (v["pid"], v["version"]) for k, v in found.items()} == {
        "run-old": (old.pid, "0.9"),
        "run-newer": (newer.pid, "1.0+git2"),
        "run-fail": (fail.pid, "0.9"),
    }
    assert svc.handoff() == svc.ROLLED_BACK
    calls = sorted(log.read_text().splitlines())
    to = f"--to {svc.PREFIX}/versions/1.0+git1/bin/hitless-vswitchd --json"
    assert calls == [
        f"downgrade --rundir {tmp_path}/run-newer {to}",
        f"upgrade --rundir {tmp_path}/run-fail {to}",
        f"upgrade --rundir {tmp_path}/run-old {to}",
    ]
    out, err = capsys.readouterr()
    assert f"{tmp_path}/run-old: upgraded 0.9 -> 1.0+git1: pid 1 -> pid 2, freeze 3.5 ms" in out
    assert f"{tmp_path}/run-newer: downgraded 1.0+git2 -> 1.0+git1" in out
    recorded = json.loads((tmp_path / "run-fail" / "last-handoff.json").read_text())
    assert (recorded["ok"], recorded["version_from"], recorded["direction"]) == (
        False,
        "0.9",
        "upgrade",
    )
    assert f"{tmp_path}/run-fail: upgrade 0.9 -> 1.0+git1 FAILED" in err
    assert f"still runs 0.9 (pid {fail.pid})" in err and "rolled back (new process crashed)" in err
    assert fail.poll() is None
    # a rolled-back switch keeps its version's files
    assert "0.9" in svc.versions_in_use() and "0.9" not in svc.prune()


def test_settings_from_the_defaults_file_and_environment(
    svc: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc.DEFAULTS.write_text('# comment\nSTART=yes\nRUNDIR="/run/x"\nHANDOFF_OPTIONS="--lease 4"\n')
    s = svc.settings()
    assert (s["START"], s["RUNDIR"], s["DBDIR"], s["HANDOFF_OPTIONS"]) == (
        "yes",
        "/run/x",
        "/var/lib/hitless",
        "--lease 4",
    )
    monkeypatch.setenv("HITLESS_RUNDIR", "/tmp/elsewhere")
    assert svc.settings()["RUNDIR"] == "/tmp/elsewhere"


def test_start_runs_the_daemon_at_the_configured_niceness(
    svc: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NICE (default -10, as ovs-ctl runs ovs-vswitchd) goes to hitless start --nice."""
    ran: list[list[str]] = []
    monkeypatch.setattr(svc, "start_db", lambda rundir, dbdir: "database up")
    monkeypatch.setattr(svc, "current_version", lambda: "1.0")
    monkeypatch.setattr(svc, "_run", lambda cmd, what: ran.append(cmd) or "started")
    monkeypatch.setenv("HITLESS_RUNDIR", str(tmp_path / "run"))
    assert svc.start() == 0
    assert ran[-1][-4:] == ["--rundir", str(tmp_path / "run"), "--nice", "-10"]
    svc.DEFAULTS.write_text("NICE=-4\n")
    assert svc.start() == 0
    assert ran[-1][-2:] == ["--nice", "-4"]
    assert "NICE=-10" in (PACKAGING / "hitless.default").read_text()
    # STANDBY (default yes: the daemon keeps a crash standby) = no: hitless start --no-standby
    assert "--no-standby" not in ran[-1]
    assert "STANDBY=yes" in (PACKAGING / "hitless.default").read_text()
    svc.DEFAULTS.write_text("STANDBY=no\n")
    assert svc.start() == 0
    assert ran[-1][1:3] == ["start", "--no-standby"]


def test_stop_stops_the_crash_standby_before_the_daemon(
    svc: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped after the daemon, the standby would take over from it."""
    pids = {"hitless-vswitchd-standby.pid": 11, "hitless-vswitchd.pid": 12, "ovsdb-server.pid": 13}
    monkeypatch.setattr(svc, "read_pid", lambda path: pids.get(path.name))
    stopped: list[int] = []
    monkeypatch.setattr(svc, "stop_pid", lambda pid, timeout=10.0: stopped.append(pid))
    out = svc.stop_rundir(tmp_path)
    assert stopped == [11, 12, 13], out


def test_unknown_command_fails_with_a_message(
    svc: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert svc.main(["frobnicate"]) == 1
    assert "unknown command" in capsys.readouterr().err
    # reload with nothing running says so (and needs an installed version first)
    assert svc.main(["reload"]) == 1
    assert "no hitless version installed" in capsys.readouterr().err
    _dist(svc, "1.0")
    svc.activate("1.0")
    capsys.readouterr()
    assert svc.main(["reload"]) == 0
    assert "no switch of this package runs in /run/hitless" in capsys.readouterr().out


@pytest.mark.parametrize("script", ["debian/postinst", "debian/prerm", "debian/postrm", "hitless.init"])
def test_shell_scripts_parse(script: str) -> None:
    r = subprocess.run(["sh", "-n", str(PACKAGING / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    # verify checks that the commands exist: point them at a copy of the helper
    helper = tmp_path / "hitless-service"
    shutil.copy(PACKAGING / "hitless-service", helper)
    helper.chmod(0o755)
    unit = tmp_path / "hitless.service"
    text = (PACKAGING / "hitless.service").read_text()
    assert text.count("/usr/lib/hitless/hitless-service") == 3
    unit.write_text(text.replace("/usr/lib/hitless/hitless-service", str(helper)))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    for key in ("ExecStart=", "ExecReload=", "ExecStop="):
        assert key in text
    # and a broken unit is caught (the check can fail)
    unit.write_text(text.replace("/usr/lib/hitless/hitless-service", str(tmp_path / "missing")))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode != 0


def test_older_commit_gets_the_lower_debian_version(tmp_path: Path) -> None:
    build_deb = _load("build_deb", PACKAGING / "build_deb.py")
    old = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "77f006e"], capture_output=True, text=True
    ).stdout.strip()
    if not old:
        pytest.skip("not a git checkout with history")
    head = build_deb.git("rev-parse", "HEAD")
    v_old = build_deb.package_version(REPO, old, "")
    v_new = build_deb.package_version(REPO, head, ".dirty")
    assert v_old.startswith("0.") and "+git" in v_old and old[:7] in v_old
    r = subprocess.run(["dpkg", "--compare-versions", v_old, "lt", v_new])
    assert r.returncode == 0, (v_old, v_new)


@pytest.mark.netns
def test_status_names_the_build_that_runs(started: Sw) -> None:
    build = json.loads(started.hitless("status", "--json").stdout)["build"]
    assert build["version"].startswith("hitless-vswitchd (hitless) ")
    assert build["executable"] == str(Path(sys.executable).parent / "hitless-vswitchd")
    assert build["package_version"] is None  # not a packaged build
    text = started.hitless("status").stdout
    assert f"build: {build['version']} ({build['executable']})" in text
