"""Port mirroring on the dummy datapath: select_all, source/destination ports, VLANs;
the mirror's output port takes no part in switching."""

from __future__ import annotations

from dataclasses import replace

from hitless.config.model import MirrorConfig
from tests.ofproto.helpers import BCAST, P, Rig, config, frame, mac, vid_of


def rig(*mirrors: MirrorConfig) -> Rig:
    r = Rig({"br0": P(type="internal"), "a": P(), "b": P(), "c": P(), "m": P()})
    r.bridge.reconfigure(replace(config("br0", r.ports), mirrors=mirrors), r.clock.t)
    return r


def test_select_all_copies_every_frame_once_as_received() -> None:
    r = rig(MirrorConfig("m0", select_all=True, output_port="m"))
    out = r.send("a", frame(BCAST, mac(1)))
    assert sorted(out) == ["b", "br0", "c", "m"]  # the flood, plus the mirror once
    r.send("b", frame(mac(1), mac(2)))
    for _ in range(3):  # known unicast: a megaflow carries the mirror output too
        out = r.send("a", frame(mac(2), mac(1)))
        assert sorted(out) == ["b", "m"] and out["m"] == out["b"]
    # The mirror port is not a switch port: nothing it sends is switched.
    assert r.send("m", frame(BCAST, mac(9))) == {}


def test_source_destination_and_vlan_selection() -> None:
    r = rig(
        MirrorConfig("src", select_src_port=frozenset({"a"}), output_port="m"),
    )
    r.send("a", frame(BCAST, mac(1)))
    r.send("b", frame(BCAST, mac(2)))
    assert list(r.send("b", frame(mac(1), mac(2)))) == ["a"]  # from b: not selected
    assert sorted(r.send("a", frame(mac(2), mac(1)))) == ["b", "m"]
    r.bridge.reconfigure(
        replace(
            config("br0", r.ports),
            mirrors=(MirrorConfig("dst", select_dst_port=frozenset({"a"}), output_port="m"),),
        ),
        r.clock.t,
    )
    assert sorted(r.send("b", frame(mac(1), mac(2)))) == ["a", "m"]  # to a: selected
    assert list(r.send("a", frame(mac(2), mac(1)))) == ["b"]
    r.bridge.reconfigure(
        replace(
            config("br0", r.ports),
            mirrors=(
                MirrorConfig("v", select_all=True, select_vlan=frozenset({10}), output_port="m"),
            ),
        ),
        r.clock.t,
    )
    assert list(r.send("a", frame(mac(2), mac(1)))) == ["b"]  # VLAN 0: not selected
    assert sorted(r.send("a", frame(BCAST, mac(1), vid=10))) == ["b", "br0", "c", "m"]


def rspan_rig(*mirrors: MirrorConfig) -> Rig:
    """a, b: access ports in VLAN 5; t: a trunk of VLANs 5 and 15; r: a trunk of 15
    only; s: an access port of VLAN 15; x: an access port of VLAN 7."""
    ports = {
        "br0": P(type="internal", tag=99),
        "a": P(tag=5),
        "b": P(tag=5),
        "t": P(trunks=frozenset({5, 15})),
        "r": P(trunks=frozenset({15})),
        "s": P(tag=15),
        "x": P(tag=7),
    }
    r = Rig(ports)
    r.bridge.reconfigure(replace(config("br0", r.ports), mirrors=mirrors), r.clock.t)
    return r


def test_a_mirror_to_a_vlan_sends_the_copy_wherever_the_vlan_goes() -> None:
    """RSPAN (Mirror.output_vlan): tagged with the VLAN on a trunk that carries it,
    untagged on its access ports, nowhere else; the packet itself is switched as
    before, with its own tag; each mirrored packet is counted once."""
    r = rspan_rig(MirrorConfig("rs", select_src_port=frozenset({"a"}), output_vlan=15))
    counter = r.bridge.mirror_counters["rs"]
    r.send("b", frame(BCAST, mac(2)))
    for i in range(3):  # the upcall, then the megaflow: the same outputs
        pkt = frame(mac(2), mac(1), payload=bytes([i]) * 20)
        out = r.send("a", pkt)
        assert sorted(out) == ["b", "r", "s", "t"], out
        assert out["b"] == [pkt]  # switched as before
        assert vid_of(out["r"][0]) == 15 and vid_of(out["s"][0]) is None
        assert out["s"] == [pkt]  # the copy, untagged on VLAN 15's access port
        assert sorted(vid_of(f) for f in out["t"]) == [15]  # the copy only: b is on a
    r.advance(1.0)  # the revalidator credits the megaflow's packets
    assert counter.packets == 3
    # A frame of b (not selected): no copy.
    assert sorted(r.send("b", frame(mac(1), mac(2)))) == ["a"]
    # A tagged frame from the trunk, selected there: the copy gets the mirror's VLAN,
    # the frame itself keeps its own tag towards a and b.
    r.bridge.reconfigure(
        replace(
            config("br0", r.ports),
            mirrors=(MirrorConfig("rs", select_src_port=frozenset({"t"}), output_vlan=15),),
        ),
        r.clock.t,
    )
    tagged = frame(BCAST, mac(3), vid=5, pcp=3)
    out = r.send("t", tagged)
    assert sorted(out) == ["a", "b", "r", "s"], out
    assert vid_of(out["r"][0]) == 15 and vid_of(out["s"][0]) is None
    assert vid_of(out["a"][0]) is None and vid_of(out["b"][0]) is None
    # A frame already in VLAN 15 is not mirrored into it (Open vSwitch's rule).
    out = r.send("t", frame(BCAST, mac(4), vid=15))
    assert sorted(out) == ["r", "s"]
    assert len(out["r"]) == 1


def test_an_rspan_copy_keeps_the_tag_of_the_frame_for_the_other_outputs() -> None:
    """A tagged frame flooded to a trunk and to access ports: the copy's tag change
    is undone before the frame's own outputs (VID and PCP as received)."""
    r = rspan_rig(MirrorConfig("rs", select_all=True, output_vlan=15))
    tagged = frame(BCAST, mac(3), vid=5, pcp=3)
    for _ in range(2):
        out = r.send("t", tagged)
        assert sorted(out) == ["a", "b", "r", "s"], out
        assert out["a"] == out["b"] == [frame(BCAST, mac(3))]
        assert out["r"] == [frame(BCAST, mac(3), vid=15, pcp=3)]
    untagged = frame(BCAST, mac(1))
    out = r.send("a", untagged)
    assert sorted(out["t"]) == sorted([frame(BCAST, mac(1), vid=5), frame(BCAST, mac(1), vid=15)])
    assert out["s"] == [untagged] and out["b"] == [untagged]
    # Link-local destinations are never sent into the VLAN.
    out = r.send("a", frame("01:80:c2:00:00:0e", mac(1), eth_type=0x88CC))
    assert "r" not in out and "s" not in out
