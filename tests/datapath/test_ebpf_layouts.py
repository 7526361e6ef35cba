"""The BPF program's own upgrade: a build whose program and map layout differ from the
running datapath's adopts it, then moves it to its own layout while the kernel
forwards (new program and maps loaded beside the old, entries written, one tc filter
replace per port). Layout 2 is the test variant of bpf/datapath.bpf.c (64 mask slots,
the flow value's header in another order); ``HITLESS_EBPF_LAYOUT`` makes this build's
own layout 1 or 2. Traffic: a ping flood (1 ms apart) through the kernel while the
datapath changes program under it: every request must be answered."""

from __future__ import annotations

import os
import re
import socket

import pytest

from hitless.datapath.actions import Output
from hitless.datapath.ebpf import layout as L
from hitless.datapath.ebpf import libbpf, provider
from hitless.datapath.ebpf.provider import EbpfDatapath
from hitless.packet.flow import FIELDS, Match, full_mask, make_key
from tests.netns import Host, Topology, unique_suffix
from tests.wait import wait_for

pytestmark = pytest.mark.netns

FLOOD = 2000  # echo requests, 1 ms apart
# Counts a flow's counter may miss across a move whose counter maps are copied rather
# than shared: the carry's one read-modify-write of a per-CPU value the new program
# counts into (EbpfDatapath._retire), one packet per CPU that counted in its window.
CARRY_RACE = 2


def crash(dp: EbpfDatapath) -> None:
    """Forget this process's view without detaching: what kill -9 leaves behind."""
    dp._exported = True
    dp.close()


def eth_src_prefix(n: int) -> bytes:
    """A mask of in_port plus the first ``n`` bits of eth_src: one distinct mask per n."""
    mask = bytearray(full_mask("in_port"))
    off, _ = FIELDS["eth_src"]
    for bit in range(n):
        mask[off + bit // 8] |= 0x80 >> (bit % 8)
    return bytes(mask)


def flood(a: Host, b: Host):  # type: ignore[no-untyped-def]
    return a.popen(["ping", "-n", "-q", "-c", str(FLOOD), "-i", "0.001", "-W", "2", b.addr])


def flood_result(proc) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    out, err = proc.communicate(timeout=120)
    print(out)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out + err
    return int(m.group(1)), int(m.group(2))


def counts(dp: EbpfDatapath) -> dict[Match, int]:
    return {f.match: f.stats.packets for f in dp.flow_dump()}


def move(dp: EbpfDatapath) -> None:
    """Run the loop until the move is done (once the new program, loading in a thread,
    is ready) and the old program retired."""

    def moved() -> bool:
        dp.run()
        return dp.stats()["layout_moves"] == 1 and dp._retired is None

    wait_for(moved, "the move and the old program's retirement")


@pytest.mark.parametrize(("old", "new", "share"), [(1, 2, True), (2, 1, True), (1, 2, False)])
def test_a_build_with_another_layout_moves_the_datapath_under_traffic(
    topology: Topology, monkeypatch: pytest.MonkeyPatch, old: int, new: int, share: bool
) -> None:
    """``share`` False: the counter maps are copied and carried, as between layouts
    whose counter maps differ (no such pair exists yet: forced here)."""
    if not share:
        monkeypatch.setattr(provider, "SHARED", ())
    a = topology.add_host("a", "10.93.0.1/24")
    b = topology.add_host("b", "10.93.0.2/24")
    name = f"br{unique_suffix()}"
    monkeypatch.setenv(L.LAYOUT_ENV, str(old))
    dp = EbpfDatapath(name)
    try:
        assert dp.layout.abi == old
        pa, pb = dp.port_add(a.switch_port, 3), dp.port_add(b.switch_port, 4)
        for i, o in ((pa, pb), (pb, pa)):
            m = Match.of(make_key(in_port=i), full_mask("in_port", "recirc_id"))
            dp.flow_put(m, (Output(o),))
        # Flows behind 40 more masks (never hit): more than layout 1 has slots.
        n_masks = 40 if old == 2 else L.LAYOUTS[old].max_masks - 1
        for n in range(1, n_masks + 1):
            dp.flow_put(Match.of(make_key(in_port=100 + n), eth_src_prefix(n)), (Output(pb),))
        assert dp.stats()["not_offloaded"] == 0
        assert a.ping(b.addr, count=2)
        before = counts(dp)
        old_prog = dp.prog_id
        crash(dp)

        pinger = flood(a, b)  # through the kernel alone: no process reads anything
        monkeypatch.setenv(L.LAYOUT_ENV, str(new))
        dp = EbpfDatapath(name)  # adopts the old layout: the old program still serves
        assert dp.adopted and dp.layout.abi == old and dp.prog_id == old_prog
        assert counts(dp).keys() == before.keys()
        hit = Match.of(make_key(in_port=pa), full_mask("in_port", "recirc_id"))
        wait_for(lambda: counts(dp)[hit] >= before[hit] + 200, "the flood through the old program")
        move(dp)
        sent, received = flood_result(pinger)
        print("MOVE", dp.last_move_ms)

        assert dp.layout.abi == new and dp.stats()["layout_moves"] == 1, dp.show_lines()
        assert dp.prog_id != old_prog
        for port in (a.switch_port, b.switch_port):
            assert libbpf.tc_query(socket.if_nametoindex(port)) == dp.prog_id
        assert (sent, received) == (FLOOD, FLOOD), "echo requests lost across the move"
        after = counts(dp)
        assert after.keys() == before.keys()
        # Counters kept counting, exactly: both programs counted into the same maps
        # (shared, as the layouts define them alike), so every request is counted.
        assert dp.moved_shared == (["hl_counters", "hl_stats"] if share else [])
        slack = 0 if share else CARRY_RACE
        assert after[hit] >= before[hit] + FLOOD - slack, (before[hit], after[hit])
        # The new program was loaded by a thread while the old one served (the loop
        # only wrote entries and swapped filters).
        assert dp.last_move_ms["loaded ahead"] > 0
        lost_slots = max(0, n_masks + 1 - L.LAYOUTS[new].max_masks)
        assert dp.stats()["not_offloaded"] == lost_slots
        assert dp.stats()["masks"] == min(n_masks + 1, L.LAYOUTS[new].max_masks)
        assert dp.show_lines()[0] == f"program layout: {new} (moved from another layout 1 times)"

        # What the next daemon of the same build finds: the new layout, all of it.
        crash(dp)
        dp = EbpfDatapath(name)
        assert dp.layout.abi == new and dp.stats()["layout_moves"] == 0
        readback = counts(dp)
        assert len(readback) == len(before) - lost_slots
        assert readback[hit] >= after[hit]
        assert a.ping(b.addr, count=2)
    finally:
        dp.close()


def test_a_layout_this_build_does_not_know_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(L.LAYOUT_ENV, "9")
    from hitless.datapath.base import DatapathError

    with pytest.raises(DatapathError, match=r"HITLESS_EBPF_LAYOUT='9': this build knows"):
        EbpfDatapath(f"br{unique_suffix()}")


def test_a_program_of_the_same_layout_from_another_build_is_replaced(topology: Topology) -> None:
    """An upgrade that changes only the program (same maps, e.g. a fixed bug): the new
    build finds a program of its own layout that is not its own (``hl_info`` records
    which build's program runs) and moves to its own the same way, under traffic."""
    a = topology.add_host("a", "10.94.0.1/24")
    b = topology.add_host("b", "10.94.0.2/24")
    name = f"br{unique_suffix()}"
    dp = EbpfDatapath(name)
    try:
        assert dp.program == provider.program_id(dp.layout)
        pa, pb = dp.port_add(a.switch_port, 3), dp.port_add(b.switch_port, 4)
        hit = Match.of(make_key(in_port=pa), full_mask("in_port", "recirc_id"))
        dp.flow_put(hit, (Output(pb),))
        dp.flow_put(
            Match.of(make_key(in_port=pb), full_mask("in_port", "recirc_id")), (Output(pa),)
        )
        assert a.ping(b.addr, count=2)
        # What another build of the same layout leaves behind: its program's identity.
        info = L.INFO.pack(dp.layout.abi, dp.bridge_hash, os.getpid(), 12345)
        dp._maps["hl_info"].update(bytes(4), info)
        before, old_prog, abi = counts(dp), dp.prog_id, dp.layout.abi
        crash(dp)

        pinger = flood(a, b)
        dp = EbpfDatapath(name)
        assert dp.adopted and dp.prog_id == old_prog and dp.program == 12345
        wait_for(lambda: counts(dp)[hit] >= before[hit] + 200, "the flood through the old program")
        move(dp)
        sent, received = flood_result(pinger)
        assert (sent, received) == (FLOOD, FLOOD), "echo requests lost across the move"
        assert dp.layout.abi == abi and dp.prog_id != old_prog
        assert dp.program == provider.program_id(dp.layout)
        for port in (a.switch_port, b.switch_port):
            assert libbpf.tc_query(socket.if_nametoindex(port)) == dp.prog_id
        assert counts(dp)[hit] >= before[hit] + FLOOD  # shared counters: exact

        # The next daemon of this build keeps it.
        moved = dp.prog_id
        crash(dp)
        dp = EbpfDatapath(name)
        for _ in range(3):
            dp.run()
        assert dp.prog_id == moved and dp.stats()["layout_moves"] == 0 and dp._preload is None
    finally:
        dp.close()
