"""Port mirroring on the dummy datapath: select_all, source/destination ports, VLANs;
the mirror's output port takes no part in switching."""

from __future__ import annotations

from dataclasses import replace

from hitless.config.model import MirrorConfig
from tests.ofproto.helpers import BCAST, P, Rig, config, frame, mac


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
