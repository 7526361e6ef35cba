"""Bonds (a Port with several Interfaces) through stock ovs-vsctl: a bond the switch
cannot run is refused out loud (Interface.error on every member, one WARN line) and
its members never forward as independent ports."""

from __future__ import annotations

from tests.daemon.test_config import add_dummy_bridge
from tests.switch import Sw


def test_unsupported_bond_is_refused_and_its_members_stay_detached(started: Sw) -> None:
    sw = started
    add_dummy_bridge(sw, "br0")
    r = sw.vsctl("add-bond", "br0", "bond0", "p0", "p1", "bond_mode=balance-tcp")
    # ovs-vsctl shows the error the switch wrote to Interface.error.
    assert "bond_mode balance-tcp is not supported" in r.stderr
    for member in ("p0", "p1"):
        assert sw.ofport(member) == -1
        assert "port bond0" in sw.get("Interface", member, "error")
    assert "interface p0: port bond0: bond_mode balance-tcp" in sw.log()
    # The bond's members are not datapath ports: nothing can forward on them.
    flows = sw.appctl("dpctl/dump-flows", "br0").stdout
    assert flows == ""
    # Taken apart into ordinary ports, they work.
    sw.vsctl("del-port", "br0", "bond0")
    sw.vsctl("add-port", "br0", "p0", "--", "add-port", "br0", "p1")
    assert sw.ofport("p0") > 0 and sw.ofport("p1") > 0
    assert sw.get("Interface", "p0", "error") == "[]"
