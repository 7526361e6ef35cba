"""Build the hitless Debian package (``make deb``) with dpkg-deb.

    python packaging/build_deb.py [--commit REV] [--out DIR] [--version V]

Source: the working tree (tracked and untracked, not ignored, files), or ``--commit
REV`` exported with ``git archive``: the packaging is always this checkout's, so an
older commit's code can be packaged to test an upgrade from it.

Version: ``<hitless.__version__>+git<committer time YYYYMMDDHHMMSS>.<short hash>``
(``.dirty`` appended for a working tree with changes), so a later commit always has
the higher Debian version.

How the Python dependencies get in: the package carries its own virtual environment,
built here by pip for Debian's /usr/bin/python3, with every dependency pinned to the
version this checkout's .venv runs (``pip freeze`` as constraints). Installing the
.deb needs no network and no pip; the venv's launchers and byte-code name the path it
runs from, /usr/lib/hitless/versions/VERSION (see packaging/hitless-service for the
layout), and the package ships it in /usr/lib/hitless/dist/VERSION.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PREFIX = "/usr/lib/hitless"
SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPTS = (("hitless", "hitless.cli"), ("hitless-vswitchd", "hitless.daemon.main"))
# What of the working tree goes into the package (the build's cache key covers these).
PACKAGED = ("hitless/", "pyproject.toml", "README.md", "docs/upgrading.md", "packaging/")
DEPENDS = "python3.11, openvswitch-common, openvswitch-switch, iproute2, procps"


def git(*args: str, repo: Path = REPO) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def source_tree(commit: str | None, dest: Path) -> tuple[str, str]:
    """Put the source in ``dest``. Returns (commit hash, suffix for the version)."""
    dest.mkdir(parents=True)
    if commit is not None:
        full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", full], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return full, ""
    full = git("rev-parse", "HEAD")
    files = git("ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        src = REPO / name
        if not src.is_file():
            continue  # deleted in the working tree
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return full, ".dirty" if dirty else ""


def package_version(src: Path, full: str, suffix: str) -> str:
    m = re.search(r'__version__\s*=\s*"([^"]+)"', (src / "hitless/__init__.py").read_text())
    if not m:
        raise SystemExit("build_deb: no __version__ in hitless/__init__.py")
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(int(git("show", "-s", "--format=%ct", full))))
    return f"{m.group(1)}+git{stamp}.{full[:7]}{suffix}"


def pins() -> str:
    """This interpreter's distributions (hitless left out) as pip constraints."""
    from importlib import metadata

    out = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "hitless":
            out.add(f"{name}=={dist.version}\n")
    return "".join(sorted(out))


def build_venv(src: Path, venv: Path, final: str, work: Path) -> None:
    """A venv for Debian's python3 holding hitless and its dependencies, rewritten to
    run from ``final``."""
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    cons = work / "constraints.txt"
    cons.write_text(pins())
    r = subprocess.run(
        [
            sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install",
            "-q", "--no-input", "--no-compile", "--no-warn-script-location",
            "-c", str(cons), str(src),
        ],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if r.returncode != 0:
        raise SystemExit(f"build_deb: pip install failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    # Launchers and other scripts: their interpreter is the venv's final path.
    for path in (venv / "bin").iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        if path.name.startswith("activate") or path.name in ("Activate.ps1",):
            path.unlink()
            continue
        data = path.read_bytes()
        if data.startswith(b"#!") and str(venv).encode() in data.split(b"\n", 1)[0]:
            path.write_bytes(data.replace(str(venv).encode(), final.encode(), 1))
    for script, module in SCRIPTS:
        p = venv / "bin" / script
        p.write_text(f"#!{final}/bin/python\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        p.chmod(0o755)
    cfg = venv / "pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(venv), final))
    # Byte-code naming the final path (tracebacks show where the files really are).
    subprocess.run(
        [str(venv / "bin/python"), "-m", "compileall", "-q", "-j0",
         "-s", str(venv), "-p", final, str(venv / "lib")],
        check=True,
    )
    left = subprocess.run(
        ["grep", "-rlI", "--exclude=*.pyc", "--exclude=RECORD", "--exclude=direct_url.json",
         str(venv), str(venv)],
        capture_output=True, text=True,
    ).stdout.split()
    if left:
        raise SystemExit(f"build_deb: the build path is still named in {left[:5]}")


def maintainer_script(name: str, version: str) -> str:
    return (HERE / "debian" / name).read_text().replace("@VERSION@", version)


def build(commit: str | None, out: Path, version: str | None) -> Path:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="hitless-deb-") as tmp:
        work = Path(tmp)
        src = work / "src"
        full, suffix = source_tree(commit, src)
        version = version or package_version(src, full, suffix)
        final = f"{PREFIX}/versions/{version}"
        root = work / "root"
        venv = root / f"usr/lib/hitless/dist/{version}"
        venv.parent.mkdir(parents=True)
        build_venv(src, venv, final, work)
        (venv / "hitless-build.json").write_text(
            json.dumps({"version": version, "commit": full, "dirty": bool(suffix)}) + "\n"
        )
        files = {
            "usr/lib/hitless/hitless-service": (HERE / "hitless-service", 0o755),
            "etc/init.d/hitless": (HERE / "hitless.init", 0o755),
            "etc/default/hitless": (HERE / "hitless.default", 0o644),
            "lib/systemd/system/hitless.service": (HERE / "hitless.service", 0o644),
            "usr/share/doc/hitless/README.md": (src / "README.md", 0o644),
            "usr/share/doc/hitless/upgrading.md": (src / "docs/upgrading.md", 0o644),
        }
        for rel, (path, mode) in files.items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
            dest.chmod(mode)
        links = {
            "usr/bin/hitless": "../lib/hitless/current/bin/hitless",
            "usr/bin/hitless-vswitchd": "../lib/hitless/current/bin/hitless-vswitchd",
            "usr/sbin/hitless-service": "../lib/hitless/hitless-service",
        }
        for rel, target in links.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, root / rel)
        debian = root / "DEBIAN"
        debian.mkdir()
        size = int(subprocess.run(
            ["du", "-sk", str(root)], check=True, capture_output=True, text=True
        ).stdout.split()[0])
        (debian / "control").write_text(
            "Package: hitless\n"
            f"Version: {version}\n"
            f"Architecture: {arch}\n"
            "Maintainer: hitless developers <hitless@localhost>\n"
            f"Installed-Size: {size}\n"
            f"Depends: {DEPENDS}\n"
            "Recommends: ethtool\n"
            "Section: net\n"
            "Priority: optional\n"
            "Description: virtual switch with hitless upgrades\n"
            " A virtual switch configured like Open vSwitch (a private ovsdb-server, stock\n"
            " ovs-vsctl, ovs-ofctl and ovs-appctl) that an upgrade of this package hands\n"
            " over to the new version without losing a packet, a flow or a controller's\n"
            " connection. Each version installs side by side in /usr/lib/hitless.\n"
        )
        (debian / "conffiles").write_text("/etc/default/hitless\n/etc/init.d/hitless\n")
        for name in ("postinst", "prerm", "postrm"):
            (debian / name).write_text(maintainer_script(name, version))
            (debian / name).chmod(0o755)
        out.mkdir(parents=True, exist_ok=True)
        deb = out / f"hitless_{version}_{arch}.deb"
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "-z6", "--build", str(root), str(deb)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return deb


def cache_key(commit: str | None) -> str:
    """What a build depends on: the source (a commit, or the working tree's files), this
    packaging and the pinned dependencies."""
    h = hashlib.sha256()
    if commit is not None:
        h.update(git("rev-parse", "--verify", f"{commit}^{{commit}}").encode())
    else:
        h.update(git("rev-parse", "HEAD").encode())
        for name in sorted(filter(None, git("ls-files", "-co", "--exclude-standard", "-z").split("\0"))):
            path = REPO / name
            if path.is_file() and name.startswith(PACKAGED):
                h.update(name.encode() + b"\0" + path.read_bytes())
    for path in sorted(HERE.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(pins().encode())
    return h.hexdigest()[:16]


def cached(commit: str | None, cache: Path) -> Path:
    """The .deb of ``commit`` (None: the working tree), built once per cache key into
    ``cache/KEY/`` under an exclusive lock (parallel test runs wait for each other)."""
    entry = cache / cache_key(commit)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{entry}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(entry.glob("hitless_*.deb"))
        if found:
            return found[0]
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=cache))
        tmp.chmod(0o755)
        try:
            build(commit, tmp, None)
            os.rename(tmp, entry)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return sorted(entry.glob("hitless_*.deb"))[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commit", metavar="REV", help="package this commit (default: the working tree)")
    ap.add_argument("--out", default=str(REPO / "out"), metavar="DIR", help="where to put the .deb")
    ap.add_argument("--version", help="the Debian version (default: from the commit)")
    args = ap.parse_args(argv)
    print(build(args.commit, Path(args.out), args.version))
    return 0


if __name__ == "__main__":
    sys.exit(main())
