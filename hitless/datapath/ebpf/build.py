"""Compile the datapath's BPF C source with Debian's clang into a cache.

The object is never committed: ``make setup`` runs ``python -m
hitless.datapath.ebpf.build`` once, and ``object_path()`` builds on first use when the
cache lacks it. Objects are named after the SHA-256 of the source (and the compiler
flags), so two builds of hitless side by side (an upgrade, a downgrade) each find their
own program, and editing the source rebuilds it. The cache directory is
``$HITLESS_BPF_CACHE`` or ``/var/tmp/hitless-bpf``; a build writes a temporary file and
renames it, so concurrent builders never see half an object.

The datapath source describes every layout this release knows (``HL_ABI``,
hitless/datapath/ebpf/layout.py ``LAYOUTS``); ``object_path(abi=n)`` compiles it with
``-DHL_ABI=n``, so each layout is its own object.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hitless.datapath.base import DatapathError

__all__ = ["REDIRECT_SOURCE", "SOURCE", "object_path"]

SOURCE = Path(__file__).with_name("bpf") / "datapath.bpf.c"
# A program that only redirects between paired ports: the limit bench/datapath.py
# measures the datapath against.
REDIRECT_SOURCE = SOURCE.with_name("redirect.bpf.c")
CFLAGS = ["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"]


def _multiarch_include() -> list[str]:
    """Debian keeps <asm/types.h> under the multiarch directory, which a -target bpf
    compile does not search by itself."""
    try:
        arch = subprocess.run(
            ["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        arch = ""
    if not arch:
        arch = f"{os.uname().machine}-linux-gnu"
    return [f"-I/usr/include/{arch}"]


def cache_dir() -> Path:
    return Path(os.environ.get("HITLESS_BPF_CACHE", "/var/tmp/hitless-bpf"))


def object_path(source: Path = SOURCE, abi: int | None = None) -> Path:
    """The compiled object for ``source`` (with ``-DHL_ABI=abi`` if given), compiling it
    if the cache lacks it. Raises DatapathError with what to do when the toolchain is
    missing or the build fails."""
    text = source.read_bytes()
    flags = [*CFLAGS, *([f"-DHL_ABI={abi}"] if abi is not None else [])]
    digest = hashlib.sha256(text + " ".join(flags).encode()).hexdigest()[:16]
    out = cache_dir() / f"{source.name.removesuffix('.bpf.c')}-{digest}.o"
    if out.exists():
        return out
    clang = shutil.which("clang")
    if clang is None:
        raise DatapathError(
            "the ebpf datapath needs clang to compile its BPF program; "
            "run `make setup` (Debian packages clang, libbpf-dev)"
        )
    if not Path("/usr/include/bpf/bpf_helpers.h").exists():
        raise DatapathError(
            "the ebpf datapath needs libbpf's headers; run `make setup` (Debian libbpf-dev)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [clang, *flags, *_multiarch_include(), "-c", str(source), "-o", str(tmp)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise DatapathError(f"compiling {source.name} failed:\n{r.stderr.strip()}")
    os.replace(tmp, out)
    return out


def main() -> int:
    from hitless.datapath.ebpf.layout import LAYOUTS

    try:
        for abi in LAYOUTS:
            print(object_path(abi=abi))
        print(object_path(REDIRECT_SOURCE))
    except DatapathError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
