"""Bonds in NORMAL switching on the dummy datapath: one logical port, no loops,
failover with updelay/downdelay, balance-slb buckets, management commands, handoff."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hitless.config.model import BondConfig, BridgeConfig, InterfaceConfig, PortConfig
from hitless.ofproto.bond import BUCKETS, Bond, bucket_of
from tests.ofproto.helpers import BCAST, P, Rig, config, frame, mac


def bonded(bond: BondConfig | None = None) -> tuple[Rig, BridgeConfig]:
    """br0 (internal), host port a, and bond0 over p0 and p1."""
    r = Rig({"br0": P(type="internal"), "a": P()})
    cfg = with_bond(config("br0", r.ports), bond or BondConfig())
    r.status = r.bridge.reconfigure(cfg, r.clock.t)
    return r, cfg


def with_bond(cfg: BridgeConfig, bond: BondConfig, members: tuple[str, ...] = ("p0", "p1")) -> BridgeConfig:
    ports = dict(cfg.ports)
    ports["bond0"] = PortConfig(
        "bond0", tuple(InterfaceConfig(m) for m in members), bond=bond
    )
    return replace(cfg, ports=ports)


def test_active_backup_floods_on_the_active_member_only_and_drops_the_backup() -> None:
    r, _ = bonded()
    bond = r.bridge.bonds["bond0"]
    assert bond.active == r.no("p0")
    out = r.send("a", frame(BCAST, mac(1)))
    assert sorted(out) == ["br0", "p0"]  # once into the bond, by its active member
    # The host behind the bond bridges the flood back in on the backup: dropped there.
    assert r.send("p1", frame(BCAST, mac(1))) == {}
    # ... and a's address stays learned on a (no move onto the bond).
    assert f"{r.no('a')}     0  {mac(1)}" in r.bridge.fdb_show()
    # A frame from the host on the active member is switched; learned on the bond.
    assert list(r.send("p0", frame(mac(1), mac(2)))) == ["a"]
    assert list(r.send("a", frame(mac(2), mac(1)))) == ["p0"]
    # Even a unicast frame on the backup is dropped (active-backup).
    assert r.send("p1", frame(mac(1), mac(2))) == {}


def test_failover_on_link_down_moves_learned_traffic_without_an_upcall_storm() -> None:
    r, _ = bonded()
    r.send("p0", frame(BCAST, mac(2)))
    assert list(r.send("a", frame(mac(2), mac(1)))) == ["p0"]
    r.dp.set_link(r.no("p0"), False)
    r.run()
    assert r.bridge.bonds["bond0"].active == r.no("p1")
    # The installed megaflow was re-translated: traffic goes out p1 with no miss.
    missed = r.dp.n_missed
    assert list(r.send("a", frame(mac(2), mac(1)))) == ["p1"]
    assert r.dp.n_missed == missed
    # The host's frames now come in on p1 and are admitted; p0 is disabled.
    assert list(r.send("p1", frame(mac(1), mac(2)))) == ["a"]
    r.dp.set_link(r.no("p0"), True)
    r.run()
    assert r.bridge.bonds["bond0"].active == r.no("p1")  # stays: no primary configured


def test_updelay_downdelay_and_primary() -> None:
    r, _ = bonded(BondConfig(updelay=200, downdelay=100, primary="p1"))
    bond = r.bridge.bonds["bond0"]
    assert bond.active == r.no("p1")  # the primary
    r.dp.set_link(r.no("p1"), False)
    r.run()
    assert bond.active == r.no("p1")  # the downdelay runs
    assert "downdelay expires in 100 ms" in bond.show(r.clock.t)
    r.advance(0.099)
    assert bond.active == r.no("p1")
    r.advance(0.002)
    assert bond.active == r.no("p0")
    r.dp.set_link(r.no("p1"), True)
    r.run()
    r.advance(0.15)
    assert bond.active == r.no("p0")  # the updelay runs
    assert r.bridge.next_wakeup(r.clock.t) == pytest.approx(r.clock.t + 0.05)
    r.advance(0.06)
    assert bond.active == r.no("p1")  # the primary is back


def test_all_down_then_one_up_skips_its_updelay() -> None:
    r, _ = bonded(BondConfig(updelay=5000))
    bond = r.bridge.bonds["bond0"]
    for m in ("p0", "p1"):
        r.dp.set_link(r.no(m), False)
    r.run()
    assert bond.active is None
    assert r.send("p0", frame(BCAST, mac(2))) == {}
    r.dp.set_link(r.no("p1"), True)
    r.run()
    assert bond.active == r.no("p1")


def test_balance_slb_spreads_sources_and_drops_reflections() -> None:
    r, _ = bonded(BondConfig(mode="balance-slb"))
    bond = r.bridge.bonds["bond0"]
    members = {r.no("p0"), r.no("p1")}
    assert {b for b in bond.buckets} == members
    used = set()
    for n in range(1, 30):
        out = r.send("a", frame(BCAST, mac(n)))
        (m,) = [p for p in out if p in ("p0", "p1")]  # the bond once
        assert r.no(m) == bond.buckets[bucket_of(bytes.fromhex(mac(n).replace(":", "")), 0)]
        used.add(m)
    assert used == {"p0", "p1"}
    # Broadcast coming back on the non-active member is dropped; a's flood reflected
    # on the active member carries a source learned on a: dropped as moved.
    other = "p1" if bond.active == r.no("p0") else "p0"
    active = "p0" if other == "p1" else "p1"
    assert r.send(other, frame(BCAST, mac(1))) == {}
    assert r.send(active, frame(BCAST, mac(1))) == {}
    # A host behind the bond is reachable by unicast on any member.
    assert list(r.send(other, frame(mac(1), mac(90)))) == ["a"]
    # A member goes down: its buckets move to the other one.
    r.dp.set_link(r.no("p0"), False)
    r.run()
    assert set(bond.buckets) == {r.no("p1")}


def test_management_set_active_enable_disable() -> None:
    r, _ = bonded()
    bond = r.bridge.bonds["bond0"]
    assert bond.set_active("p1") == "done; p1 is now active\n"
    r.bridge.bond_changed(r.clock.t)
    assert sorted(r.send("a", frame(BCAST, mac(1)))) == ["br0", "p1"]
    with pytest.raises(ValueError, match="no such member"):
        bond.set_active("nope")
    assert bond.set_enabled("p0", False) == "disabled\n"
    with pytest.raises(ValueError, match="cannot make disabled member active"):
        bond.set_active("p0")


def test_show_matches_open_vswitch_layout() -> None:
    r, _ = bonded()
    text = r.bridge.bonds["bond0"].show(r.clock.t)
    assert text.startswith("---- bond0 ----\nbond_mode: active-backup\n")
    assert "\nmember p0: enabled\n  active member\n  may_enable: true\n\n" in text
    assert "\nmember p1: enabled\n  may_enable: true\n\n" in text
    assert "active-backup primary: <none>\n" in text


def test_bond_state_survives_export_and_import() -> None:
    r, cfg = bonded(BondConfig(mode="balance-slb"))
    bond = r.bridge.bonds["bond0"]
    bond.set_active("p1")
    data = bond.export_state(r.clock.t)
    fresh = Bond("bond0", bond.cfg)
    fresh.configure(bond.cfg, [(m.name, m.ofport, m.mac) for m in bond.members.values()])
    fresh.import_state(data, r.clock.t)
    for no in fresh.members:
        fresh.set_carrier(no, True)
    assert not fresh.run(r.clock.t)  # nothing to change: same decisions
    assert fresh.active == bond.active and fresh.buckets == bond.buckets
    assert len(fresh.buckets) == BUCKETS


def test_removing_the_bond_flushes_what_was_learned_on_it() -> None:
    r, cfg = bonded()
    r.send("p0", frame(BCAST, mac(2)))
    assert mac(2) in r.bridge.fdb_show()
    r.bridge.reconfigure(config("br0", r.ports), r.clock.t)
    assert mac(2) not in r.bridge.fdb_show()
    assert r.bridge.bonds == {}


def test_failover_sends_learning_packets_for_addresses_learned_elsewhere() -> None:
    r, _ = bonded()
    r.send("a", frame(BCAST, mac(1)))
    r.send("p0", frame(BCAST, mac(2)))  # behind the bond: no learning packet for it
    r.out()
    r.dp.set_link(r.no("p0"), False)
    r.run()
    out = r.out()
    assert list(out) == ["p1"]
    (pkt,) = out["p1"]
    assert pkt[:6] == b"\xff" * 6 and pkt[6:12] == bytes.fromhex(mac(1).replace(":", ""))
    assert pkt[12:14] == b"\x80\x35"  # RARP, as Open vSwitch sends


def test_a_new_bond_starts_with_the_member_named_by_bond_active_slave() -> None:
    r = Rig({"br0": P(type="internal"), "a": P()})
    cfg = with_bond(config("br0", r.ports), BondConfig())
    r.bridge.reconfigure(cfg, r.clock.t)
    p1_mac = r.bridge.bonds["bond0"].members[r.no("p1")].mac
    hinted = BondConfig(active_mac=":".join(f"{b:02x}" for b in p1_mac))
    assert hinted == BondConfig()  # a status column: never a configuration change
    fresh = Rig({"br0": P(type="internal"), "a": P()})
    fresh.bridge.reconfigure(with_bond(config("br0", fresh.ports), hinted), fresh.clock.t)
    assert fresh.bridge.bonds["bond0"].active == fresh.no("p1")


def test_balance_slb_rebalances_buckets_by_load() -> None:
    r, _ = bonded(BondConfig(mode="balance-slb", rebalance_interval=1000))
    bond = r.bridge.bonds["bond0"]
    # Two sources on a whose buckets sit on the same member.
    by_member: dict[int | None, list[str]] = {}
    for n in range(1, 60):
        m = mac(n)
        by_member.setdefault(bond.buckets[bucket_of(bytes.fromhex(m.replace(":", "")), 0)], []).append(m)
    member, (s1, s2, *_) = next((k, v) for k, v in by_member.items() if len(v) >= 2)
    r.send("p0", frame(BCAST, mac(90)))  # a host behind the bond
    b1 = bucket_of(bytes.fromhex(s1.replace(":", "")), 0)
    b2 = bucket_of(bytes.fromhex(s2.replace(":", "")), 0)
    for _ in range(150):  # 150 x ~1 kB from each source, all through one member
        r.send("a", frame(mac(90), s1, b"x" * 1000))
        r.send("a", frame(mac(90), s2, b"x" * 1000))
    assert bond.buckets[b1] == bond.buckets[b2] == member
    for _ in range(6):
        r.advance(0.5)  # sweeps credit the flows' bytes; the rebalance runs each second
    assert bond.buckets[b1] != bond.buckets[b2]  # one of the two moved
    assert {bond.buckets[b1], bond.buckets[b2]} == {r.no("p0"), r.no("p1")}
    out = {p for p in r.send("a", frame(mac(90), s1)) | r.send("a", frame(mac(90), s2))}
    assert out == {"p0", "p1"}  # the flows follow their buckets
    assert "kB load" in bond.show(r.clock.t)
    # Nothing more to even out: no further move.
    before = list(bond.buckets)
    r.advance(1.1)
    assert bond.buckets == before


def test_bond_migrate_moves_a_hash_and_refuses_as_open_vswitch() -> None:
    """bond/migrate: a source's frames leave by the member its hash was put on; the
    errors are Open vSwitch's."""
    r, _ = bonded(BondConfig(mode="balance-slb"))
    bond = r.bridge.bonds["bond0"]
    r.send("p0", frame(mac(2), mac(9)))  # the host behind the bond is learned there
    h = bucket_of(bytes.fromhex(mac(1).replace(":", "")), 0)
    for target in ("p0", "p1", "p0"):
        assert bond.migrate(str(h + BUCKETS), target) == "migrated\n"  # taken modulo 256
        r.bridge.bond_changed(r.clock.t)
        assert list(r.send("a", frame(mac(9), mac(1)))) == [target]
    for args, err in (((str(h), "nope"), "no such member"), (("x1", "p0"), "bad hash")):
        with pytest.raises(ValueError, match=err):
            bond.migrate(*args)
    bond.set_enabled("p1", False)
    with pytest.raises(ValueError, match="cannot migrate to disabled member"):
        bond.migrate(str(h), "p1")
    ab, _ = bonded()
    with pytest.raises(ValueError, match="not an SLB bond"):
        ab.bridge.bonds["bond0"].migrate(str(h), "p0")
