"""The layouts of hitless/datapath/ebpf/layout.py agree with the BPF C source: the
constants by reading the source (as the preprocessor sees it for each layout), the
struct sizes and field offsets by each compiled object's BTF."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import pytest

from hitless.datapath.ebpf import layout as L
from hitless.datapath.ebpf.build import SOURCE, _multiarch_include
from hitless.packet.flow import FIELDS

SRC = SOURCE.read_text()


def defines(abi: int) -> str:
    """The source's macros as the preprocessor defines them for layout ``abi``."""
    return subprocess.run(
        ["clang", "-dM", "-E", f"-DHL_ABI={abi}", *_multiarch_include(), "-target", "bpf",
         str(SOURCE)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def define(name: str, text: str | None = None) -> int:
    m = re.search(rf"#define {name}\s+\(?([0-9x]+)(?:\s*<<\s*(\d+))?", text or SRC)
    assert m, name
    v = int(m.group(1), 0)
    return v << int(m.group(2)) if m.group(2) else v


def enum_of(first: str) -> list[str]:
    m = re.search(r"enum \{([^}]*\b" + first + r"\b[^}]*)\}", SRC)
    assert m, first
    return [x.split("=")[0].strip() for x in m.group(1).split(",") if x.strip()]


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang not installed")
@pytest.mark.parametrize("abi", sorted(L.LAYOUTS))
def test_each_layouts_constants_match(abi: int) -> None:
    text = defines(abi)
    assert define("HL_ABI", text) == abi == L.LAYOUTS[abi].abi
    assert define("MAX_MASKS", text) == L.LAYOUTS[abi].max_masks


def test_constants_match() -> None:
    assert define("HL_ABI") == L.DEFAULT_ABI
    assert define("MAX_ACTIONS") == L.MAX_ACTIONS
    assert define("MAX_FLOWS") == L.MAX_FLOWS
    assert define("UPCALL_DATA") == L.UPCALL_DATA
    assert define("KEY_WORDS") * 8 == L.MAP_KEY_LEN
    assert define("MASK_TAIL") == L.MASK_TAIL
    assert define("K_MASK_ID") == L.KERNEL_KEY_LEN
    assert define("OUT_LAST") == L.OUT_LAST and define("FLOW_SLOWPATH") == L.FLOW_SLOWPATH


def test_key_offsets_are_the_flow_key_layout() -> None:
    for name, (off, _) in FIELDS.items():
        k = "K_" + name.upper()
        if f"#define {k} " in SRC:
            assert define(k) == off, name


def test_field_and_action_ids() -> None:
    for m in re.finditer(r"F_([A-Z0-9_]+) = (\d+)", SRC):
        assert L.FIELD_IDS[m.group(1).lower()] == int(m.group(2))
    assert set(L.KERNEL_SET_FIELDS) == {
        m.group(1).lower() for m in re.finditer(r"case F_([A-Z0-9_]+):", SRC)
    }
    acts = enum_of("A_OUTPUT")
    assert acts == ["A_OUTPUT", "A_PUSH_VLAN", "A_POP_VLAN", "A_SET_FIELD", "A_USERSPACE",
                    "A_METER", "A_OPAQUE"]  # fmt: skip
    assert len(acts) == L.A_OPAQUE
    counters = enum_of("C_HIT")
    assert [c.removeprefix("C_").lower() for c in counters[:-1]] == list(L.COUNTERS)


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
@pytest.mark.parametrize("abi", sorted(L.LAYOUTS))
def test_struct_sizes_and_flow_fields_from_btf(abi: int) -> None:
    from hitless.datapath.ebpf.build import object_path

    layout = L.LAYOUTS[abi]
    out = subprocess.run(
        ["bpftool", "-j", "btf", "dump", "file", str(object_path(abi=abi))],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    structs = {t["name"]: t for t in json.loads(out)["types"] if t.get("kind") == "STRUCT"}
    sizes = {name: t["size"] for name, t in structs.items()}
    assert sizes["action"] == L.ACTION.size
    assert sizes["flow"] == layout.flow_size
    assert sizes["fstats"] == L.FSTATS.size
    assert sizes["port"] == L.PORT.size + 16
    assert sizes["info"] == L.INFO.size
    assert sizes["masks"] == layout.masks_size
    # The flow's header fields in the order (and at the offsets) the layout packs them.
    members = [(m["name"], m["bits_offset"] // 8) for m in structs["flow"]["members"]]
    head = layout.flow_head
    offsets, off = [], 0
    for code in head.format.lstrip("<"):
        offsets.append(off)
        off += struct.calcsize("<" + code)
    assert members[:4] == list(zip(layout.flow_fields, offsets, strict=True))
    assert sizes["upcall_hdr"] == L.UPCALL_HDR.size


def test_metadata_beyond_the_kernel_key() -> None:
    """Every megaflow matches recirc_id 0: the kernel takes it (packets from ports have
    recirc_id 0); a flow for recirculated packets (recirc_id != 0) stays in the daemon."""
    from hitless.datapath.actions import Output
    from hitless.packet.flow import Match, full_mask, make_key

    mask = full_mask("in_port", "recirc_id")
    first = Match.of(make_key(in_port=1), mask)
    assert L.kernel_eligible(first) and L.slowpath_reason(first, (Output(2),)) is None
    again = Match.of(make_key(in_port=1, recirc_id=7), mask)
    assert not L.kernel_eligible(again) and L.slowpath_reason(again, (Output(2),))
