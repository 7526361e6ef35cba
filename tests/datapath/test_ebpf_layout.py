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
    layout = L.LAYOUTS[abi]
    assert define("HL_ABI", text) == abi == layout.abi
    assert define("MAX_MASKS", text) == layout.max_masks
    assert define("KEY_WORDS", text) * 8 == layout.map_key_len
    assert define("K_MASK_ID", text) == layout.key_len
    assert define("HL_CT", text) == int(layout.ct)


def test_constants_match() -> None:
    assert define("HL_ABI") == L.DEFAULT_ABI
    assert define("MAX_ACTIONS") == L.MAX_ACTIONS
    assert define("MAX_FLOWS") == L.MAX_FLOWS
    assert define("UPCALL_DATA") == L.UPCALL_DATA
    assert define("MASK_TAIL") == L.MASK_TAIL
    assert define("CT_TAIL") == L.CT_TAIL and define("RW_NAT") == L.RW_NAT
    assert define("OUT_LAST") == L.OUT_LAST and define("FLOW_SLOWPATH") == L.FLOW_SLOWPATH


def test_key_offsets_are_the_flow_key_layout() -> None:
    for name, (off, _) in FIELDS.items():
        k = "K_" + name.upper()
        if f"#define {k} " in SRC:
            assert define(k) == off, name


def test_field_and_action_ids() -> None:
    for m in re.finditer(r"\bF_([A-Z0-9_]+) = (\d+)", SRC):
        assert L.FIELD_IDS[m.group(1).lower()] == int(m.group(2))
    assert set(L.KERNEL_SET_FIELDS) == {
        m.group(1).lower() for m in re.finditer(r"case F_([A-Z0-9_]+):", SRC)
    }
    acts = enum_of("A_OUTPUT")
    assert acts == ["A_OUTPUT", "A_PUSH_VLAN", "A_POP_VLAN", "A_SET_FIELD", "A_USERSPACE",
                    "A_METER", "A_OPAQUE", "A_CT", "A_CT_CLEAR", "A_RECIRC",
                    "A_CT_LABEL", "A_SAMPLE", "A_SET_PRIORITY"]  # fmt: skip
    assert len(acts) == L.A_SET_PRIORITY
    ctf = enum_of("CTF_COMMIT")
    assert ctf == ["CTF_COMMIT", "CTF_FORCE", "CTF_NAT", "CTF_MARK", "CTF_LABEL"]
    for name in ctf:
        assert int(re.search(name + r" = (\d+)", SRC).group(1)) == getattr(L, name)
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
    assert sizes["upcall_hdr"] == layout.upcall_hdr.size
    if layout.ct:
        assert sizes["ct_key"] == L.CT_KEY.size
        assert sizes["ct_entry"] == L.CT_ENTRY.size
        members = {m["name"]: m["bits_offset"] // 8 for m in structs["ct_entry"]["members"]}
        assert members["last_ns"] == L.CT_ENTRY.size - 8 and members["nat"] == L.CT_TAIL


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
    # Layout 3 keys flows by the whole key: recirculated packets' flows go in too.
    ct = L.LAYOUTS[3]
    assert ct.eligible(again) and L.slowpath_reason(again, (Output(2),), ct) is None


def test_ct_actions_round_trip_and_kernel_rules() -> None:
    """Layout 3 encodes ct/ct_clear/recirc so that a restarted daemon decodes the same
    actions; the kernel runs a ct only as a flow's first action, without force or IPv6
    nat; layouts 1 and 2 leave all of them to the daemon."""
    from hitless.datapath.actions import Ct, CtClear, Output, Recirc, Sample
    from hitless.datapath.conntrack import NatSpec
    from hitless.packet.flow import Match, full_mask, make_key

    m = Match.of(make_key(in_port=1), full_mask("in_port"))
    dnat = NatSpec("dst", bytes([10, 0, 0, 2]), bytes([10, 0, 0, 3]), 80, 81, True)
    acts = (Ct(5, True, False, dnat, (0x10, 0xFF), (1 << 100 | 3, (1 << 128) - 1)),
            CtClear(), Sample(1 << 30, b"hsF\x01\x00\x01\x00\x00\x00\x02"), Output(2),
            Recirc(0x42))  # fmt: skip
    blob, n = L.encode_actions(acts, {2: 9}, False, ct=True)
    assert n == 6  # the label takes a second slot
    assert L.decode_actions(blob, n) == acts
    ct3 = L.LAYOUTS[3]
    assert L.slowpath_reason(m, acts, ct3) is None
    assert L.slowpath_reason(m, acts, L.LAYOUTS[1]) == "ct"
    assert L.slowpath_reason(m, (Sample(1, bytes(17)),), ct3) == "sample data longer than 16 bytes"
    assert L.slowpath_reason(m, (Ct(commit=True, force=True),), ct3) == "ct(force)"
    assert L.slowpath_reason(m, (Output(3), Ct()), ct3) == "ct that is not the flow's first action"
    v6 = NatSpec("src", bytes(15) + b"\1")
    assert L.slowpath_reason(m, (Ct(nat=v6),), ct3) == "IPv6 nat"
    blob, n = L.encode_actions((Ct(nat=v6), Recirc(1)), {}, True, ct=True)
    assert L.ACTION.unpack_from(blob)[0] == L.A_OPAQUE


def test_nd_extension_fields_stay_with_the_daemon() -> None:
    """The program leaves nd_reserved/nd_options_type zero (as every earlier one did): a
    flow matching them runs in the daemon, whose upcall handler re-parses an NS/NA's
    key; an ND flow without them, or a TCP flow on tcp_flags, stays in the kernel."""
    from hitless.datapath.actions import Output
    from hitless.packet.flow import Match, extract_key, full_mask, make_key
    from tests.openflow.test_nd_ext_vs_ovs import FRAMES

    base = ("eth_type", "ip_proto", "tp_src")
    nd = make_key(eth_type=0x86DD, ip_proto=58, tp_src=135, nd_reserved=5)
    for ext in ("nd_reserved", "nd_options_type"):
        m = Match.of(nd, full_mask(*base, ext))
        assert L.is_nd_ext(m) and L.slowpath_reason(m, (Output(2),)) is not None
    assert L.slowpath_reason(Match.of(nd, full_mask(*base)), (Output(2),)) is None
    tcp = make_key(eth_type=0x86DD, ip_proto=6, tcp_flags=2)
    assert L.slowpath_reason(Match.of(tcp, full_mask("eth_type", "ip_proto", "tcp_flags")),
                             (Output(2),)) is None  # fmt: skip
    assert all(L.is_nd(L.map_key(extract_key(f, 1), 0)) for f in FRAMES)
    assert not L.is_nd(L.map_key(tcp, 0))


def test_nsh_frames_stay_with_the_daemon() -> None:
    """The program parses no NSH header (it leaves the key's bytes after vlan_tci zero,
    as every earlier program did): a flow on eth_type 0x894f runs in the daemon, whose
    upcall handler re-parses the frame's key; other flows are unaffected."""
    from hitless.datapath.actions import Output
    from hitless.packet.flow import Match, full_mask, make_key

    nsh = make_key(eth_type=0x894F, nsh_path=0x12305)
    for fields in (("eth_type",), ("eth_type", "nsh_path"), ("eth_type", "nsh_c1")):
        m = Match.of(nsh, full_mask(*fields))
        assert L.slowpath_reason(m, (Output(2),)) == "NSH (the kernel program does not parse its header)"
    ip = make_key(eth_type=0x0800, ipv4_src=0x0A000001)
    assert L.slowpath_reason(Match.of(ip, full_mask("eth_type", "ipv4_src")), (Output(2),)) is None
