"""NORMAL switching on the dummy datapath: learning, flooding, megaflows, VLANs."""

from __future__ import annotations

from hitless.datapath.actions import Output
from hitless.packet.flow import field
from tests.ofproto.helpers import BCAST, P, Rig, frame, mac, tcp, vid_of


def three() -> Rig:
    return Rig({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P()})


def test_unknown_destination_floods_then_learned_unicast() -> None:
    r = three()
    out = r.send("p1", frame(mac(2), mac(1)))
    assert sorted(out) == ["br0", "p2", "p3"]  # flood, never back to p1
    out = r.send("p2", frame(mac(1), mac(2)))
    assert list(out) == ["p1"]  # mac(1) was learned on p1
    out = r.send("p1", frame(mac(2), mac(1)))
    assert list(out) == ["p2"]  # the flooding flow was revalidated into unicast
    assert r.dp.n_hit == 1  # ... in place, without an upcall


def test_broadcast_floods_and_broadcast_source_not_learned() -> None:
    r = three()
    out = r.send("p3", frame(BCAST, mac(3), eth_type=0x0806))
    assert sorted(out) == ["br0", "p1", "p2"]
    r.send("p1", frame(mac(9), "01:00:5e:00:00:01"))  # multicast source
    assert "01:00:5e" not in r.bridge.fdb_show()
    assert mac(3) in r.bridge.fdb_show()


def test_destination_on_input_port_is_dropped_by_a_drop_flow() -> None:
    r = three()
    r.send("p1", frame(BCAST, mac(1)))
    r.send("p1", frame(BCAST, mac(2)))  # both hosts behind p1
    out = r.send("p1", frame(mac(2), mac(1)))
    assert out == {}
    drops = [f for f in r.dp.flow_dump() if f.actions == ()]
    assert len(drops) == 1
    r.send("p1", frame(mac(2), mac(1)))
    assert r.dp.flow_get(drops[0].match).stats.packets == 1  # type: ignore[union-attr]


def test_megaflow_second_tcp_connection_needs_no_upcall() -> None:
    r = three()
    r.send("p1", frame(BCAST, mac(1)))
    r.send("p2", frame(BCAST, mac(2)))
    out = r.send("p1", tcp(mac(2), mac(1), sport=40000, dport=80))
    assert list(out) == ["p2"]
    missed = r.dp.n_missed
    for sport, dport in ((40001, 22), (50000, 443)):
        out = r.send("p1", tcp(mac(2), mac(1), "10.1.1.1", "10.2.2.2", sport, dport))
        assert list(out) == ["p2"]
    assert r.dp.n_missed == missed  # no upcall: the megaflow ignores L3/L4
    f = next(f for f in r.dp.flow_dump() if f.actions == (Output(r.no("p2")),))
    m = f.match.mask
    assert field(m, "in_port") == 0xFFFFFFFF
    assert field(m, "eth_src") == field(m, "eth_dst") == 0xFFFFFFFFFFFF
    assert field(m, "vlan_tci") == 0x1FFF  # VID and presence, not PCP
    for name in ("eth_type", "ipv4_src", "ipv4_dst", "ip_proto", "tp_src", "tp_dst"):
        assert field(m, name) == 0, name


def test_new_source_on_known_flow_still_upcalls_to_learn() -> None:
    r = three()
    r.send("p2", frame(BCAST, mac(2)))
    r.send("p1", frame(mac(2), mac(1)))
    r.send("p3", frame(mac(2), mac(3)))  # different eth_src: must be learned
    assert mac(3) in r.bridge.fdb_show()


def test_local_port_is_ofpp_local_and_shown_as_local() -> None:
    r = three()
    assert r.no("br0") == 65534
    assert r.status["br0"].ofport == 65534
    r.send("br0", frame(BCAST, mac(7)))
    line = next(x for x in r.bridge.fdb_show().splitlines() if mac(7) in x)
    assert line.split()[0] == "LOCAL"


def test_fdb_show_format() -> None:
    r = three()
    r.send("p1", frame(BCAST, mac(1)))
    r.clock.t += 3
    r.send("p2", frame(BCAST, mac(2)))
    text = r.bridge.fdb_show()
    assert text == (
        " port  VLAN  MAC                Age\n"
        f"    {r.no('p1')}     0  {mac(1)}    3\n"
        f"    {r.no('p2')}     0  {mac(2)}    0\n"
    )


def test_dump_flows_format() -> None:
    r = three()
    r.send("p2", frame(BCAST, mac(2)))
    r.send("p1", frame(mac(2), mac(1)))
    r.clock.t += 0.25
    r.send("p1", frame(mac(2), mac(1)))
    r.clock.t += 0.5
    r.run()
    lines = r.bridge.dump_flows().splitlines()
    want = (
        f"recirc_id(0),in_port({r.no('p1')}),eth(src={mac(1)},dst={mac(2)}),vlan(none), "
        f"packets:1, bytes:60, used:0.500s, actions:{r.no('p2')}"
    )
    assert want in lines


def test_admin_down_and_link_down_ports_get_no_output() -> None:
    r = three()
    r.reconfigure({"br0": P(type="internal"), "p1": P(), "p2": P(), "p3": P(admin_state="down")})
    assert r.status["p3"].admin_state == "down"
    out = r.send("p1", frame(BCAST, mac(1)))
    assert sorted(out) == ["br0", "p2"]
    # Link down on p2: the installed flooding flow is revalidated at once.
    r.dp.set_link(r.no("p2"), False)
    r.run()
    flood = next(f for f in r.dp.flow_dump() if f.match.key[4:10] == b"\xff" * 6)
    assert Output(r.no("p2")) not in flood.actions
    r.dp.set_link(r.no("p2"), True)
    r.run()
    assert sorted(r.send("p1", frame(BCAST, mac(1)))) == ["br0", "p2"]
    assert r.reconfigure()["p2"].link_state == "up"


def test_input_from_admin_down_port_is_dropped() -> None:
    r = Rig({"p1": P(admin_state="down"), "p2": P()})
    assert r.send("p1", frame(BCAST, mac(1))) == {}
    assert mac(1) not in r.bridge.fdb_show()


def test_reserved_multicast_is_not_forwarded() -> None:
    r = three()
    assert r.send("p1", frame("01:80:c2:00:00:00", mac(1), eth_type=0x0026)) == {}
    r.reconfigure(**{"forward-bpdu": "true"})
    r.dp.receive(r.no("p1"), frame("01:80:c2:00:00:00", mac(1), eth_type=0x0026))
    r.run()
    assert sorted(r.out()) == ["br0", "p2", "p3"]


# VLANs ---------------------------------------------------------------------------------


def vlan_rig() -> Rig:
    return Rig(
        {
            "a10": P(tag=10),
            "b10": P(tag=10),
            "c20": P(tag=20),
            "t": P(),  # trunk, all VLANs
            "t20": P(trunks=frozenset({20})),
            "nt": P(tag=10, vlan_mode="native-tagged"),
            "nu": P(tag=20, vlan_mode="native-untagged"),
        }
    )


def test_access_ports_isolated_and_trunk_tagging() -> None:
    r = vlan_rig()
    out = r.send("a10", frame(BCAST, mac(1)))
    assert sorted(out) == ["b10", "nt", "nu", "t"]
    assert vid_of(out["b10"][0]) is None
    assert vid_of(out["t"][0]) == 10
    assert vid_of(out["nt"][0]) == 10  # native-tagged: always tagged
    assert vid_of(out["nu"][0]) == 10  # not its native VLAN: tagged
    out = r.send("c20", frame(BCAST, mac(2)))
    assert sorted(out) == ["nt", "nu", "t", "t20"]  # nt trunks every VLAN
    assert vid_of(out["nt"][0]) == 20
    assert vid_of(out["nu"][0]) is None  # native-untagged in its native VLAN
    assert vid_of(out["t20"][0]) == 20


def test_tagged_frame_on_access_port_dropped_priority_tag_accepted() -> None:
    r = vlan_rig()
    assert r.send("a10", frame(BCAST, mac(1), vid=10)) == {}
    assert r.send("a10", frame(BCAST, mac(1), vid=5)) == {}
    out = r.send("a10", frame(BCAST, mac(1), vid=0, pcp=5))
    assert sorted(out) == ["b10", "nt", "nu", "t"]
    assert vid_of(out["b10"][0]) is None
    t = out["t"][0]
    assert vid_of(t) == 10 and t[14] >> 5 == 5  # retagged, priority kept


def test_trunk_ingress_and_egress() -> None:
    r = vlan_rig()
    out = r.send("t", frame(BCAST, mac(3), vid=20))
    assert sorted(out) == ["c20", "nt", "nu", "t20"]
    assert vid_of(out["c20"][0]) is None and vid_of(out["t20"][0]) == 20
    assert vid_of(out["nu"][0]) is None
    assert r.send("t20", frame(BCAST, mac(4), vid=10)) == {}  # not trunked there
    assert r.send("t20", frame(BCAST, mac(4))) == {}  # VLAN 0 not in trunks
    out = r.send("t", frame(BCAST, mac(5)))  # untagged on a trunk: VLAN 0
    # native ports trunk every VLAN here (trunks empty), so VLAN 0 reaches them untagged
    assert sorted(out) == ["nt", "nu"]
    assert all(vid_of(p[0]) is None for p in out.values())


def test_native_tagged_ingress() -> None:
    r = vlan_rig()
    out = r.send("nt", frame(BCAST, mac(6)))  # untagged: native VLAN 10
    assert sorted(out) == ["a10", "b10", "nu", "t"]
    assert vid_of(out["t"][0]) == 10
    out = r.send("nt", frame(BCAST, mac(7), vid=20))
    assert sorted(out) == ["c20", "nu", "t", "t20"]
    line = next(x for x in r.bridge.fdb_show().splitlines() if mac(7) in x)
    assert line.split()[1] == "20"


def test_same_mac_in_two_vlans_is_two_entries() -> None:
    r = vlan_rig()
    r.send("a10", frame(BCAST, mac(1)))
    r.send("c20", frame(BCAST, mac(1)))
    lines = [x for x in r.bridge.fdb_show().splitlines() if mac(1) in x]
    assert sorted(x.split()[1] for x in lines) == ["10", "20"]
    out = r.send("t", frame(mac(1), mac(9), vid=10))
    assert list(out) == ["a10"] and vid_of(out["a10"][0]) is None
    out = r.send("t", frame(mac(1), mac(9), vid=20))
    assert list(out) == ["c20"]


def test_native_port_with_trunks_always_carries_its_native_vlan() -> None:
    r = Rig(
        {
            "nu": P(tag=10, trunks=frozenset({30}), vlan_mode="native-untagged"),
            "t": P(),
            "a30": P(tag=30),
            "a40": P(tag=40),
        }
    )
    out = r.send("t", frame(BCAST, mac(1), vid=10))  # native VLAN, not in trunks
    assert sorted(out) == ["nu"] and vid_of(out["nu"][0]) is None
    out = r.send("t", frame(BCAST, mac(2), vid=30))
    assert sorted(out) == ["a30", "nu"] and vid_of(out["nu"][0]) == 30
    out = r.send("t", frame(BCAST, mac(3), vid=40))
    assert sorted(out) == ["a40"]  # nu does not trunk 40
    assert r.send("nu", frame(BCAST, mac(4), vid=40)) == {}  # dropped on ingress
    out = r.send("nu", frame(BCAST, mac(5)))  # untagged: native VLAN 10
    assert sorted(out) == ["t"] and vid_of(out["t"][0]) == 10
