"""Previous builds of hitless, each checked out (git worktree) and installed into its
own virtual environment, for the upgrade/downgrade matrix.

The environment reuses this venv's third-party packages (a .pth file) and installs only
the old hitless itself, so building one takes seconds and needs no network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSIONS_FILE = Path(__file__).with_name("previous_versions.txt")
CACHE = Path(os.environ.get("HITLESS_BUILD_CACHE", "/tmp/hitless-builds"))


@dataclass(frozen=True)
class Build:
    commit: str
    venv: Path

    @property
    def vswitchd(self) -> Path:
        return self.venv / "bin" / "hitless-vswitchd"

    @property
    def hitless(self) -> Path:
        return self.venv / "bin" / "hitless"


def previous_versions() -> list[str]:
    out = []
    for line in VERSIONS_FILE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def build(commit: str) -> Build:
    """Check out ``commit`` and install it into its own venv (cached by full hash)."""
    full = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    root = CACHE / full
    venv = root / "venv"
    done = root / ".built"
    if done.exists():
        return Build(full, venv)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    src = root / "src"
    # A plain export of the tree (no worktree bookkeeping left in the repo).
    archive = subprocess.run(["git", "-C", str(REPO), "archive", full], check=True,
                             capture_output=True).stdout
    src.mkdir()
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    site.mkdir(parents=True, exist_ok=True)
    # Third-party packages from this venv; the old hitless from its own source tree.
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
    done.write_text(full + "\n")
    return Build(full, venv)
