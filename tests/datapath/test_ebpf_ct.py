"""Connection tracking in the ebpf datapath's kernel program (layout 3): the firewall
and DNAT traffic of tests/handoff/test_ct_upgrade.py on an ebpf bridge, with a kill -9
of the daemon and 2 s with no daemon at all, side by side with Open vSwitch's kill -9
restart (netdev) in the same run: the kernel keeps every established connection going
(its ct() finds them in hl_ct), and the new daemon reads them back into its tracker;
and the same traffic across ``hitless upgrade`` and ``hitless downgrade`` (to a build
with the kernel's conntrack)."""

from __future__ import annotations

import pytest

from tests.handoff.test_ct_upgrade import (
    assert_inside_the_traffic,
    assert_kept_where_ovs_forgets,
    run_side,
)

pytestmark = pytest.mark.netns


@pytest.mark.parametrize("dnat", [False, True], ids=["firewall", "firewall+dnat"])
def test_kill_9_on_ebpf_keeps_connections_behind_a_stateful_firewall(dnat: bool) -> None:
    ours = run_side("hitless", "kill9", dnat, datapath="ebpf")
    theirs = run_side("ovs", "kill9", dnat)
    print(f"\nhitless ebpf kill -9 (2 s dead): {ours}\nOpen vSwitch kill -9: {theirs}")
    for side in (ours, theirs):
        assert_inside_the_traffic(side)
    assert ours["udp_lost"] == 0, ours
    assert ours["tcp_got"] == ours["tcp_sent"] and ours["tcp_end"] == "eof", ours
    assert ours["drops"] == 0, ours
    # The new daemon's tracker has both connections again (read back from the kernel).
    assert len(ours["conns_before"]) == 2 and ours["conns_kept"] == ours["conns_before"], ours  # type: ignore[arg-type]
    assert theirs["drops"] > 0 and theirs["tcp_end"] != "eof", theirs
    assert len(theirs["conns_before"]) == 2 and not theirs["conns_kept"], theirs  # type: ignore[arg-type]


@pytest.mark.parametrize("dnat", [False, True], ids=["firewall", "firewall+dnat"])
def test_upgrade_on_ebpf_keeps_connections_behind_a_stateful_firewall(dnat: bool) -> None:
    """``hitless upgrade`` of a switch whose ebpf bridge tracks the connections in the
    kernel: the tracker crosses in the handoff, the kernel's hl_ct with the program's
    maps; side by side with Open vSwitch's ovs-ctl restart in the same run."""
    ours = run_side("hitless", "upgrade", dnat, datapath="ebpf")
    theirs = run_side("ovs", "flow-restore", dnat)
    print(f"\nhitless ebpf upgrade: {ours}\nOpen vSwitch flow-restore: {theirs}")
    assert_kept_where_ovs_forgets(ours, theirs)


# The newest previous build whose ebpf datapath tracks connections in the kernel (layout
# 3) and ships its BPF C source, so that it can replace the running program with its own:
# 24d628e, the head CI passed at stop 22 (the builds of sessions 7-8 that first had both
# did not land on main). An older build is refused up front by hitless downgrade's own
# check, which test_ct_upgrade.py tests.
EBPF_CT_BUILD: str | None = "24d628e"


def test_downgrade_on_ebpf_keeps_connections_behind_a_stateful_firewall() -> None:
    """``hitless downgrade`` of an ebpf switch behind the firewall with DNAT to a build
    that has the kernel's conntrack: that build replaces the running BPF program with
    its own (the source differs) while the kernel forwards, and takes the tracker and
    hl_ct over; side by side with Open vSwitch's ovs-ctl restart in the same run."""
    from tests.upgrade.builds import build

    if EBPF_CT_BUILD is None:
        pytest.skip("no previous build on main has the kernel's conntrack (EBPF_CT_BUILD)")
    old = build(EBPF_CT_BUILD)
    ours = run_side("hitless", "downgrade", True, downgrade_to=old.vswitchd, datapath="ebpf")
    theirs = run_side("ovs", "flow-restore", True)
    print(
        f"\nhitless ebpf downgrade to {EBPF_CT_BUILD}: {ours}\nOpen vSwitch flow-restore: {theirs}"
    )
    assert_kept_where_ovs_forgets(ours, theirs)
