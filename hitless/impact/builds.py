"""Other builds of hitless to upgrade from or downgrade to, each installed into its own
self-contained virtual environment.

``build(commit)`` exports a commit of the repository this hitless runs from (``git
archive``, no worktree left behind) and ``pip install``s it, with its own dependencies,
into a venv of its own: nothing in that venv points into this checkout or any other, so
deleting a checkout never breaks another one's builds. The dependencies are pinned to
the versions this interpreter runs (``pip freeze`` as constraints), so a build needs no
network when those wheels are at hand (~10 s on this machine).

Builds are cached inside the checkout, in ``.cache/builds/`` (gitignored;
``$HITLESS_BUILD_CACHE`` overrides it), one directory per
``<commit>-py<major.minor>-<dependency hash>``, where the hash covers the commit's
``pyproject.toml`` and the pinned dependency set. A build is:

- made in a temporary directory next to the cache entry and renamed into place, under
  an exclusive ``fcntl.flock`` on ``<entry>.lock``, so two processes building the same
  commit wait for each other instead of deleting each other's work;
- validated before every first use in a process: its own python must run with the
  venv as ``sys.prefix`` and import ``hitless.cli`` and ``hitless.daemon.main`` from
  inside the venv, every script in ``bin/`` must name that python as its interpreter
  (a venv copied from another checkout's cache names the other one's, and would run
  the other checkout's build), and ``hitless --help`` must exit 0; a broken entry (a
  half-deleted directory, a venv whose interpreter went away, a copied or moved venv)
  is moved aside and rebuilt.

``previous_build()`` is what ``hitless impact`` downgrades to: the newest commit
listed in ``tests/upgrade/previous_versions.txt`` (the releases the upgrade matrix
keeps compatible), when hitless runs from its git repository. Outside a repository
(an installed copy) there is no older source to export, and ``same_build()`` gives a
second venv running this very installation instead (it shares this interpreter's
packages by design: it is the same build), which the caller must say.

Must not import the switch layers.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import hitless

__all__ = [
    "Build",
    "BuildError",
    "build",
    "cache_dir",
    "foreign_interpreters",
    "previous_build",
    "previous_versions",
    "repo_root",
    "same_build",
    "validate",
]

SOURCE = Path(hitless.__file__).resolve().parent.parent
VERSIONS_FILE = Path("tests/upgrade/previous_versions.txt")
PY = f"py{sys.version_info.major}.{sys.version_info.minor}"
SCRIPTS = (("hitless", "hitless.cli"), ("hitless-vswitchd", "hitless.daemon.main"))

# Entries validated by this process (validation runs the build's python: ~0.5 s).
_validated: set[Path] = set()


class BuildError(RuntimeError):
    """An older build could not be made (no git repository, unknown commit, a failed
    install) or does not work."""


@dataclass(frozen=True)
class Build:
    commit: str  # full hash, or "same" for a copy of the running source
    venv: Path
    describe: str = ""  # for people: "f1ef911 (Netdev datapath: ...)"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

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


def cache_dir(repo: Path | None = None) -> Path:
    """Where builds are cached: ``$HITLESS_BUILD_CACHE``, else ``.cache/builds`` in the
    checkout, else (an installed copy) the user's cache directory."""
    if os.environ.get("HITLESS_BUILD_CACHE"):
        return Path(os.environ["HITLESS_BUILD_CACHE"])
    repo = repo or repo_root()
    if repo is not None:
        return repo / ".cache" / "builds"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hitless" / "builds"


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


def pinned_dependencies() -> str:
    """This interpreter's installed distributions as pip constraints (hitless itself
    and editable installs left out), sorted: what a build's dependencies are pinned to."""
    pins = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if not name or name.lower() == "hitless":
            continue
        pins.add(f"{name}=={dist.version}")
    return "".join(sorted(p + "\n" for p in pins))


def _key(full: str, pyproject: str, pins: str) -> str:
    h = hashlib.sha256(f"{pyproject}\0{pins}".encode()).hexdigest()[:12]
    return f"{full}-{PY}-{h}"


@contextlib.contextmanager
def _locked(entry: Path) -> Iterator[None]:
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{entry}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _relocate(venv: Path, final: Path) -> None:
    """Point every script pip wrote into ``venv/bin`` (the dependencies' console scripts,
    the activate scripts) at the venv's final path: it is built elsewhere and renamed
    into place, and a script naming the temporary directory would run nothing."""
    old, new = str(venv).encode(), str(final).encode()
    for script in (venv / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if old in data:
            script.write_bytes(data.replace(old, new))


def _write_scripts(venv: Path, final: Path) -> None:
    """Our own launchers, their interpreter named by the venv's final path (the venv is
    built elsewhere and renamed into place)."""
    for script, module in SCRIPTS:
        path = venv / "bin" / script
        path.unlink(missing_ok=True)
        path.write_text(
            f"#!{final / 'bin' / 'python'}\n"
            "import sys, warnings\n"
            "warnings.filterwarnings('ignore', message=r'\\s*Eventlet is deprecated')\n"
            f"from {module} import main\n"
            "sys.exit(main())\n"
        )
        path.chmod(0o755)


_INTERPRETER = re.compile(r"(/[^\s'\"]*/bin/python[0-9.]*)")


def foreign_interpreters(venv: Path) -> list[str]:
    """The venv's scripts whose interpreter is not the venv's own python: a venv copied
    or moved from elsewhere (another checkout's cache) keeps shebangs naming the
    interpreter where it was built, so its ``hitless`` would run that other build (and
    break when it is deleted). Shebangs pip writes for long paths (``#!/bin/sh`` then
    ``exec' /path/python``) count too."""
    own = os.path.normpath(venv / "bin")
    out = []
    for script in sorted((venv / "bin").iterdir()):
        if script.is_symlink() or not script.is_file():
            continue
        try:
            with open(script, "rb") as f:
                head = f.read(512)
        except OSError:
            continue
        if not head.startswith(b"#!"):
            continue
        first_lines = "\n".join(head.decode(errors="replace").splitlines()[:3])
        for path in _INTERPRETER.findall(first_lines):
            if os.path.dirname(os.path.normpath(path)) != own:
                out.append(f"{script.name}: {path}")
    return out


def validate(b: Build) -> None:
    """Raise BuildError unless ``b`` works on its own: its python is the venv's own
    (``sys.prefix`` is the venv) and imports the CLI and the daemon from inside the venv,
    every script's interpreter is that python, and ``hitless --help`` exits 0."""
    probe = (
        "import hitless, hitless.cli, hitless.daemon.main, sys; "
        "print(sys.prefix); print(hitless.__file__)"
    )
    try:
        foreign = foreign_interpreters(b.venv)
        if foreign:
            raise BuildError(
                f"build {b.venv} runs an interpreter outside itself (copied or moved?): "
                + "; ".join(foreign[:4])
            )
        r = subprocess.run(
            [str(b.python), "-c", probe], capture_output=True, text=True, timeout=120, cwd="/"
        )
        if r.returncode != 0:
            raise BuildError(f"build {b.venv} does not import: {r.stderr.strip()[-400:]}")
        prefix, where_s = r.stdout.strip().splitlines()[-2:]
        if os.path.normpath(prefix) != os.path.normpath(b.venv):
            raise BuildError(f"build {b.venv}'s python runs with prefix {prefix}, not the venv")
        where = Path(where_s).resolve()
        if b.commit != "same" and b.venv.resolve() not in where.parents:
            raise BuildError(f"build {b.venv} imports hitless from {where}, outside itself")
        h = subprocess.run(
            [str(b.hitless), "--help"], capture_output=True, text=True, timeout=120, cwd="/"
        )
        if h.returncode != 0:
            raise BuildError(f"{b.hitless} --help exited {h.returncode}: {h.stderr[-400:]}")
    except OSError as e:
        raise BuildError(f"build {b.venv} cannot run: {e}") from e


def _valid(b: Build) -> bool:
    if b.venv in _validated:
        return True
    try:
        validate(b)
    except BuildError:
        return False
    _validated.add(b.venv)
    return True


def _install(venv: Path, src: Path, pins: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    cons = venv.parent / "constraints.txt"
    cons.write_text(pins)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-input",
            "--no-warn-script-location",
            "-c",
            str(cons),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd="/",
    )
    if r.returncode != 0:
        raise BuildError(f"pip install of {src} failed:\n{r.stdout[-1500:]}{r.stderr[-1500:]}")


def _replace(entry: Path, make: Callable[[Path], None]) -> None:
    """Build into a temporary directory beside ``entry`` and rename it into place (the
    caller holds the entry's lock); a broken entry is moved aside and removed."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name[:20]}-", dir=entry.parent))
    tmp.chmod(0o755)
    try:
        make(tmp)
        if entry.exists():
            old = entry.with_name(f".{entry.name}.broken-{os.getpid()}")
            os.rename(entry, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build(commit: str, repo: Path | None = None) -> Build:
    """Export ``commit`` and install it, with its own dependencies, into its own venv
    (cached in the checkout, validated, rebuilt when broken)."""
    repo = repo or repo_root()
    if repo is None:
        raise BuildError(f"hitless runs from {SOURCE}, not a git repository: no commit to build")
    full = _git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}")
    describe = _git(repo, "log", "-1", "--format=%h (%s)", full)
    pins = pinned_dependencies()
    entry = cache_dir(repo) / _key(full, _git(repo, "show", f"{full}:pyproject.toml"), pins)
    b = Build(full, entry / "venv", describe)
    if _valid(b):
        return b
    with _locked(entry):
        if _valid(b):  # another process built it while we waited for the lock
            return b

        def make(tmp: Path) -> None:
            src = tmp / "src"
            src.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(repo), "archive", full], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            _install(tmp / "venv", src, pins)
            _relocate(tmp / "venv", entry / "venv")
            _write_scripts(tmp / "venv", entry / "venv")
            shutil.rmtree(src)
            (tmp / "commit").write_text(f"{full}\n{describe}\n")

        _replace(entry, make)
        validate(b)
        _validated.add(b.venv)
    return b


def same_build() -> Build:
    """A second venv running this very installation (no older build to be had)."""
    name = hashlib.sha256(f"{SOURCE}\0{hitless.__version__}".encode()).hexdigest()[:12]
    entry = cache_dir() / f"same-{PY}-{name}"
    b = Build("same", entry / "venv", f"a second install of this build ({hitless.__version__})")
    if _valid(b):
        return b
    with _locked(entry):
        if _valid(b):
            return b

        def make(tmp: Path) -> None:
            venv = tmp / "venv"
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
            site = Path(
                sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"]
            )
            site.mkdir(parents=True, exist_ok=True)
            # The same installation on purpose: its packages and its hitless.
            (site / "_same_install.pth").write_text(
                sysconfig.get_paths()["purelib"] + "\n" + str(SOURCE) + "\n"
            )
            _relocate(venv, entry / "venv")
            _write_scripts(venv, entry / "venv")

        _replace(entry, make)
        validate(b)
        _validated.add(b.venv)
    return b


def previous_build() -> tuple[Build, str | None]:
    """The build to downgrade to, and a note when it is not a real previous release."""
    versions = previous_versions()
    if versions:
        return build(versions[-1]), None
    return same_build(), (
        "downgrade: not run from the git repository (or it lists no previous versions), "
        "so it hands over to a second install of the same build"
    )
