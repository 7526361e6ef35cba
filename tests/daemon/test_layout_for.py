"""``dpif-ebpf/layout-for`` (run by ``hitless upgrade``/``downgrade`` before every
handoff) on a switch without ebpf bridges: answers without importing the ebpf provider,
whose import took the old process's serving loop 77-125 ms at the start of each netdev
upgrade. Checked in a fresh interpreter (this one may have imported it already)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from dataclasses import dataclass
from hitless.daemon import dp_commands
from hitless.daemon.unixctl import Request
from hitless.datapath.dummy import DummyDatapath

@dataclass
class Rb:
    datapath: object

class Switch:
    bridges = {"br0": Rb(DummyDatapath("br0"))}

before = "hitless.datapath.ebpf.provider" in sys.modules
out = dp_commands.ebpf_layout_for(Request(Switch(), ["1,2"], None))
print(repr(out), before, "hitless.datapath.ebpf.provider" in sys.modules)
"""


def test_no_ebpf_bridge_no_ebpf_import() -> None:
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["''", "False", "False"], r.stdout
