"""Ports: incremental reconfiguration, ofport numbers, failures, handoff state."""

from __future__ import annotations

from hitless.datapath.actions import Output
from hitless.ofproto.bridge import Bridge
from tests.ofproto.helpers import BCAST, P, Rig, frame, mac, vid_of


def base() -> dict[str, P]:
    return {"br0": P(type="internal"), "p1": P(), "p2": P()}


def test_status_for_every_interface() -> None:
    r = Rig(base())
    assert set(r.status) == {"br0", "p1", "p2"}
    st = r.status["p1"]
    assert st.ofport == r.no("p1") and st.error is None
    assert st.link_state == "up" and st.admin_state == "up"
    assert st.mac_in_use is not None and len(st.mac_in_use) == 17


def test_adding_and_removing_a_port_leaves_other_flows_untouched() -> None:
    r = Rig(base())
    r.send("p1", frame(BCAST, mac(1)))
    r.send("p2", frame(mac(1), mac(2)))
    r.send("p1", frame(mac(2), mac(1)))
    r.send("p1", frame(mac(2), mac(1)))
    unicast = {m: f for m, f in r.flows().items() if len(f.actions) == 1}
    assert len(unicast) == 2
    stats = {m: (f.stats.packets, f.actions) for m, f in unicast.items()}
    puts = []
    orig_put, orig_del = r.dp.flow_put, r.dp.flow_del
    r.dp.flow_put = lambda m, a, reset_stats=False: puts.append(m) or orig_put(m, a, reset_stats)  # type: ignore[method-assign]
    r.dp.flow_del = lambda m: puts.append(m) or orig_del(m)  # type: ignore[method-assign]

    ports = base() | {"p3": P()}
    r.reconfigure(ports)
    assert r.no("p3") not in (r.no("p1"), r.no("p2"))
    # The broadcast flow (flooding in VLAN 0) now also reaches p3; unicast flows untouched
    assert not set(puts) & set(unicast)
    bflood = next(f for f in r.flows().values() if f.match.key[4:10] == b"\xff" * 6)
    assert Output(r.no("p3")) in bflood.actions
    r.reconfigure(base())
    assert not set(puts) & set(unicast)
    for m, f in r.flows().items():
        if m in unicast:
            assert (f.stats.packets, f.actions) == stats[m]
        assert all(not (isinstance(a, Output) and a.port not in r.dp.ports()) for a in f.actions)
    assert r.dp.flow_get(next(iter(unicast))) is unicast[next(iter(unicast))]


def test_removed_port_flows_and_macs_go() -> None:
    r = Rig(base() | {"p3": P()})
    r.send("p3", frame(BCAST, mac(3)))
    r.send("p1", frame(mac(3), mac(1)))
    p3 = r.no("p3")
    r.reconfigure(base())
    assert mac(3) not in r.bridge.fdb_show()
    for f in r.dp.flow_dump():
        assert f.match.key[0:4] != p3.to_bytes(4, "big")
        assert Output(p3) not in f.actions
    assert p3 not in r.dp.ports()


def test_ofport_numbers_stable_and_remembered() -> None:
    r = Rig(base() | {"p3": P()})
    nums = {n: r.no(n) for n in ("p1", "p2", "p3")}
    r.reconfigure({"br0": P(type="internal"), "p1": P(), "p3": P()})
    assert r.no("p1") == nums["p1"] and r.no("p3") == nums["p3"]
    r.reconfigure(base() | {"p4": P()})
    assert r.no("p4") not in nums.values()  # p2 and p3 numbers are remembered
    r.reconfigure(base() | {"p3": P(), "p4": P()})
    assert r.no("p3") == nums["p3"]  # comes back with its old number


def test_ofport_request_honoured_and_applied_on_change() -> None:
    r = Rig(base() | {"p3": P(ofport_request=42)})
    assert r.no("p3") == 42
    r.reconfigure(base() | {"p3": P(ofport_request=7)})
    assert r.no("p3") == 7 and r.status["p3"].ofport == 7
    # a request for a number in use by another port falls back to a free number
    r.reconfigure(base() | {"p3": P(ofport_request=7), "p4": P(ofport_request=7)})
    assert r.no("p3") == 7 and r.no("p4") not in (7, r.no("p1"), r.no("p2"))


def test_failed_attach_reported_isolated_and_retried() -> None:
    r = Rig(base())
    r.dp.missing_devices.add("bad0")
    st = r.reconfigure(base() | {"bad0": P()})
    assert st["bad0"].ofport == -1
    assert st["bad0"].error is not None and "bad0" in st["bad0"].error
    assert st["p1"].ofport == r.no("p1") and st["p1"].error is None
    assert sorted(r.send("p1", frame(BCAST, mac(1)))) == ["br0", "p2"]
    r.dp.missing_devices.discard("bad0")
    st = r.reconfigure()
    assert st["bad0"].ofport > 0 and st["bad0"].error is None
    r.send("p1", frame(BCAST, mac(1)))  # the flood flow was revalidated to include it
    assert "bad0" in r.send("p1", frame(BCAST, mac(1)))


def test_vlan_change_revalidates_that_ports_flows() -> None:
    r = Rig(base())
    r.send("p1", frame(BCAST, mac(1)))
    r.send("p2", frame(mac(1), mac(2)))
    assert list(r.send("p2", frame(mac(1), mac(2)))) == ["p1"]
    r.reconfigure(base() | {"p2": P(tag=10)})  # p2 leaves VLAN 0
    out = r.send("p2", frame(mac(1), mac(2)))
    # mac(1) is unknown in VLAN 10: flooded, tagged, to the trunks (all VLANs)
    assert sorted(out) == ["br0", "p1"] and vid_of(out["p1"][0]) == 10
    r.reconfigure(base() | {"p1": P(tag=10), "p2": P(tag=10)})
    # MACs learned on a port whose VLAN settings change are forgotten (p1 here)
    assert r.bridge.fdb_show().splitlines()[1:] == [f"    {r.no('p2')}    10  {mac(2)}    0"]
    r.send("p1", frame(BCAST, mac(1)))
    out = r.send("p2", frame(mac(1), mac(2)))
    assert list(out) == ["p1"] and vid_of(out["p1"][0]) is None


def test_datapath_ports_nobody_configured_are_detached() -> None:
    r = Rig(base())
    stray = r.dp.port_add("stray0")
    r.reconfigure()
    assert stray not in r.dp.ports()


def test_export_import_round_trip() -> None:
    r = Rig(base() | {"p3": P(tag=10), "p4": P(tag=10)})
    r.send("p1", frame(BCAST, mac(1)))
    r.clock.t += 2.5
    r.send("p3", frame(BCAST, mac(3)))
    r.send("br0", frame(BCAST, mac(9)))
    r.reconfigure(base() | {"p3": P(tag=10)})  # p4 removed: its number is remembered
    macs, ofports = r.bridge.mac.records(r.clock.t), r.bridge.ofport_numbers()
    assert ofports["p4"] > 0  # p4 is gone, its number remembered

    b2 = Bridge("br0", r.dp)  # a new process adopting the same datapath
    b2.adopt_learned(macs, ofports, r.clock.t)
    r.bridge, old = b2, r.bridge
    r.reconfigure()
    assert b2.fdb_show() == old.fdb_show()
    assert b2.state_hash() == old.state_hash()
    assert b2.mac.records(r.clock.t) == old.mac.records(r.clock.t)
    assert b2.ofport_numbers() == old.ofport_numbers()
    # ages keep running from where they were
    r.clock.t += 10
    r.run()
    line = next(x for x in b2.fdb_show().splitlines() if mac(1) in x)
    assert line.split()[-1] == "12"


def test_import_into_empty_datapath_keeps_numbers() -> None:
    r = Rig(base() | {"p3": P()})
    r.send("p3", frame(BCAST, mac(3)))
    macs, ofports = r.bridge.mac.records(r.clock.t), r.bridge.ofport_numbers()
    # A restart where the datapath lost its ports: numbers are still the old ones.
    r2 = Rig({}, name="br0")
    r2.bridge.adopt_learned(macs, ofports, r2.clock.t)
    r2.reconfigure(base() | {"p3": P()})
    assert {n: r2.no(n) for n in ("p1", "p2", "p3")} == {n: r.no(n) for n in ("p1", "p2", "p3")}
    assert mac(3) in r2.bridge.fdb_show()
