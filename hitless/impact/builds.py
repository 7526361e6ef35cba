"""Other builds of hitless to upgrade from or downgrade to, each installed into its own
virtual environment.

``build(commit)`` exports a commit of the repository this hitless runs from (``git
archive``, no worktree left behind) and makes a venv whose ``hitless`` and
``hitless-vswitchd`` run that source; the venv reuses this interpreter's third-party
packages (a ``.pth`` file), so building one takes a second and needs no network.
Builds are cached by full commit hash under ``$HITLESS_BUILD_CACHE`` (default
``/tmp/hitless-builds``).

``previous_build()`` is what ``hitless impact`` downgrades to: the newest commit
listed in ``tests/upgrade/previous_versions.txt`` (the releases the upgrade matrix
keeps compatible), when hitless runs from its git repository. Outside a repository
(an installed copy) there is no older source to export, and ``same_build()`` gives a
second venv running this very source instead, which the caller must say.

Must not import the switch layers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import hitless

__all__ = ["Build", "BuildError", "build", "previous_build", "previous_versions", "repo_root"]

SOURCE = Path(hitless.__file__).resolve().parent.parent
VERSIONS_FILE = Path("tests/upgrade/previous_versions.txt")
CACHE = Path(os.environ.get("HITLESS_BUILD_CACHE", "/tmp/hitless-builds"))


class BuildError(RuntimeError):
    """An older build could not be made (no git repository, unknown commit)."""


@dataclass(frozen=True)
class Build:
    commit: str  # full hash, or "same" for a copy of the running source
    venv: Path
    describe: str = ""  # for people: "f1ef911 (Netdev datapath: ...)"

    @property
    def vswitchd(self) -> Path:
        return self.venv / "bin" / "hitless-vswitchd"

    @property
    def hitless(self) -> Path:
        return self.venv / "bin" / "hitless"


def repo_root(path: Path = SOURCE) -> Path | None:
    """The git work tree hitless runs from, if it runs from one."""
    if not (path / ".git").exists():
        return None
    return path


def _git(repo: Path, *args: str) -> str:
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"git {' '.join(args)} in {repo}: {r.stderr.strip()}")
    return r.stdout.strip()


def previous_versions(repo: Path | None = None) -> list[str]:
    """The commits listed in the repository's previous_versions.txt, oldest first."""
    repo = repo or repo_root()
    if repo is None or not (repo / VERSIONS_FILE).exists():
        return []
    out = []
    for line in (repo / VERSIONS_FILE).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _make_venv(venv: Path, src: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    # Third-party packages from this venv; hitless from its own source tree.
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "_0_hitless_old.pth").write_text(str(src) + "\n")
    bindir = venv / "bin"
    for script, module in (("hitless", "hitless.cli"), ("hitless-vswitchd", "hitless.daemon.main")):
        path = bindir / script
        path.write_text(
            f"#!{bindir / 'python'}\n"
            "import sys, warnings\n"
            "warnings.filterwarnings('ignore', message=r'\\s*Eventlet is deprecated')\n"
            f"from {module} import main\n"
            "sys.exit(main())\n"
        )
        path.chmod(0o755)


def build(commit: str, repo: Path | None = None) -> Build:
    """Export ``commit`` and install it into its own venv (cached by full hash)."""
    repo = repo or repo_root()
    if repo is None:
        raise BuildError(f"hitless runs from {SOURCE}, not a git repository: no commit to build")
    full = _git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}")
    describe = _git(repo, "log", "-1", "--format=%h (%s)", full)
    root = CACHE / full
    venv = root / "venv"
    done = root / ".built"
    if done.exists():
        return Build(full, venv, describe)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    src = root / "src"
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", full], check=True, capture_output=True
    ).stdout
    src.mkdir()
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    _make_venv(venv, src)
    done.write_text(full + "\n")
    return Build(full, venv, describe)


def same_build() -> Build:
    """A second venv running this very source (no older build to be had)."""
    root = CACHE / "same" / str(abs(hash(str(SOURCE))))
    venv = root / "venv"
    if not (venv / "bin" / "hitless-vswitchd").exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        _make_venv(venv, SOURCE)
    return Build("same", venv, f"a second install of this build ({hitless.__version__})")


def previous_build() -> tuple[Build, str | None]:
    """The build to downgrade to, and a note when it is not a real previous release."""
    versions = previous_versions()
    if versions:
        return build(versions[-1]), None
    return same_build(), (
        "downgrade: not run from the git repository (or it lists no previous versions), "
        "so it hands over to a second install of the same build"
    )
