"""Flow monitors in the OpenFlow handler, on the dummy datapath: which changes each
session hears about and how (tests/openflow/test_flow_monitor.py compares the same with
real Open vSwitch through stock ``ovs-ofctl monitor``)."""

from __future__ import annotations

import pytest

from hitless.ofproto.ofhandler import BundleMessageFailed, OfHandler, OfSession
from hitless.openflow import (
    ApplyActions,
    BundleAddMessage,
    BundleControl,
    Connection,
    FlowMod,
    Match,
    Message,
    Output,
    RemoteProtocolError,
    field,
)
from hitless.openflow.constants import BundleCtrlType, FlowModCommand, FlowRemovedReason
from hitless.openflow.flowmon import (
    FlowMonitorCancel,
    FlowMonitorReply,
    FlowMonitorRequest,
    MonitorCommand,
    MonitorFlags,
    MonitorRequest,
    UpdateEvent,
)
from tests.ofproto.helpers import P, Rig

ALL = MonitorFlags(0x5F)  # what ovs-ofctl asks by default: everything, own changes too
UDP = Match((field("eth_type", 0x800), field("ip_proto", 17)))


def conn(version: int) -> Connection:
    switch, peer = Connection(versions=(version,)), Connection(versions=(version,))
    peer.receive_data(switch.start())
    switch.receive_data(peer.start())
    while switch.next_event() is not None and switch.version is None:
        pass
    assert switch.version == version
    return switch


def setup(version: int = 5) -> tuple[Rig, OfHandler, list[tuple[Connection, OfSession]]]:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P()})
    return r, OfHandler(r.bridge, 1), [(conn(version), OfSession()) for _ in range(2)]


def add(prio: int, port: int = 1, **kw: object) -> FlowMod:
    return FlowMod(xid=prio, priority=prio, match=UDP, instructions=(ApplyActions((Output(port),)),),
                   **kw)  # type: ignore[arg-type]  # fmt: skip


def events(msgs: list[Message]) -> list[tuple[int, int]]:
    out = []
    for m in msgs:
        assert isinstance(m, FlowMonitorReply) and m.xid == 0
        out += [(int(u.event), u.priority or u.xid) for u in m.updates]
    return out


def monitor(h: OfHandler, c: Connection, s: OfSession, flags: int = ALL, mid: int = 1,
            **kw: object) -> list[Message]:  # fmt: skip
    req = FlowMonitorRequest(xid=9, monitors=(MonitorRequest(mid, flags, **kw),))  # type: ignore[arg-type]
    return h.handle(c, s, req, 0.0)


def test_initial_reply_then_updates_for_other_sessions_and_own_ones() -> None:
    r, h, sessions = setup()
    (c1, s1), (c2, s2) = sessions
    h.handle(c2, s2, add(5), 0.0)
    (initial,) = monitor(h, c1, s1)
    assert isinstance(initial, FlowMonitorReply) and initial.xid == 9
    assert [(u.event, u.priority) for u in initial.updates] == [
        (UpdateEvent.INITIAL, 5), (UpdateEvent.INITIAL, 0)]  # fmt: skip
    assert h.flow_updates(sessions) == [[], []]
    h.handle(c2, s2, add(7), 0.0)
    h.handle(c2, s2, FlowMod(xid=8, command=FlowModCommand.MODIFY, match=UDP,
                             instructions=(ApplyActions((Output(2),)),)), 0.0)  # fmt: skip
    h.handle(c2, s2, FlowMod(xid=8, command=FlowModCommand.MODIFY, match=UDP,
                             instructions=(ApplyActions((Output(2),)),)), 0.0)  # no change
    h.handle(c1, s1, add(9), 0.0)  # its own change: in full (ONLY_OWN, ovs-ofctl's "own")
    h.handle(c2, s2, FlowMod(xid=10, command=FlowModCommand.DELETE, match=UDP), 0.0)
    out = h.flow_updates(sessions)
    assert out[1] == []  # no monitor there
    A, M, R = UpdateEvent.ADDED, UpdateEvent.MODIFIED, UpdateEvent.REMOVED
    assert events(out[0]) == [(A, 7), (M, 5), (M, 7), (A, 9), (R, 5), (R, 7), (R, 9)]


def test_own_changes_abbreviated_once_per_batch_without_own() -> None:
    r, h, sessions = setup(4)
    (c1, s1), (c2, s2) = sessions
    monitor(h, c1, s1, ALL & ~MonitorFlags.ONLY_OWN & ~MonitorFlags.INITIAL)
    h.handle(c1, s1, add(7), 0.0)
    h.handle(c1, s1, add(8), 0.0)
    h.handle(c2, s2, add(9), 0.0)
    assert events(h.flow_updates(sessions)[0]) == [(UpdateEvent.ABBREV, 7), (UpdateEvent.ADDED, 9)]


def test_filters_table_match_out_port() -> None:
    r, h, sessions = setup()
    (c1, s1), (c2, s2) = sessions
    monitor(h, c1, s1, mid=1, match=UDP, out_port=2)
    monitor(h, c1, s1, mid=2, table_id=3)
    h.handle(c2, s2, add(7, port=1), 0.0)  # not to port 2
    h.handle(c2, s2, add(8, port=2), 0.0)
    h.handle(c2, s2, FlowMod(xid=3, priority=3, table_id=3), 0.0)  # table 3
    h.handle(c2, s2, FlowMod(xid=4, priority=4, table_id=2), 0.0)  # neither
    # a rule that stops sending to port 2 is still reported to the out_port monitor
    h.handle(c2, s2, FlowMod(xid=5, command=FlowModCommand.MODIFY_STRICT, priority=8,
                             match=UDP, instructions=()), 0.0)  # fmt: skip
    assert events(h.flow_updates(sessions)[0]) == [
        (UpdateEvent.ADDED, 8), (UpdateEvent.ADDED, 3), (UpdateEvent.MODIFIED, 8)]  # fmt: skip


def test_rolled_back_bundle_reports_nothing_and_timeouts_say_why() -> None:
    r, h, sessions = setup()
    (c1, s1), (c2, s2) = sessions
    monitor(h, c1, s1, ALL & ~MonitorFlags.INITIAL)
    h.handle(c2, s2, BundleAddMessage(bundle_id=1, message=add(7)), 0.0)
    h.handle(c2, s2, BundleAddMessage(bundle_id=1, message=add(8, port=0)), 0.0)  # bad port
    with pytest.raises(BundleMessageFailed):
        h.handle(c2, s2, BundleControl(bundle_id=1, ctrl_type=BundleCtrlType.COMMIT_REQUEST), 0.0)
    assert h.flow_updates(sessions) == [[], []]
    h.handle(c2, s2, add(6, idle_timeout=1), 0.0)
    r.bridge.run(5.0)  # the idle timeout passes
    out = h.flow_updates(sessions)[0]
    assert events(out) == [(UpdateEvent.ADDED, 6), (UpdateEvent.REMOVED, 6)]
    assert out[0].updates[1].reason == FlowRemovedReason.IDLE_TIMEOUT  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [1, 4, 5])
def test_errors_as_open_vswitch_sends_them(version: int) -> None:
    r, h, sessions = setup(version)
    (c1, s1), _ = sessions
    monitor(h, c1, s1)
    with pytest.raises(RemoteProtocolError) as e:
        monitor(h, c1, s1)
    want = (16, 1) if version >= 5 else (0xFFFF, 6)  # OFPMOFC_MONITOR_EXISTS
    assert (e.value.type, e.value.code) == want
    with pytest.raises(RemoteProtocolError) as e:
        h.handle(c1, s1, FlowMonitorCancel(xid=2, monitor_id=5), 0.0)
    assert e.value.code == (3 if version >= 5 else 8)  # OFPMOFC_UNKNOWN_MONITOR
    if version == 1:
        assert e.value.reply(1)[8:20] == bytes.fromhex("b0c20000000023200001 0207".replace(" ", ""))
    h.handle(c1, s1, FlowMonitorCancel(xid=3, monitor_id=1), 0.0)
    assert not s1.monitors
    monitor(h, c1, s1, mid=4)
    monitor(h, c1, s1, mid=4, command=MonitorCommand.DELETE)
    assert not s1.monitors
    assert h.flow_updates(sessions) == [[], []]
    assert r.bridge.of.watch is None  # nobody monitors: nothing recorded


@pytest.mark.parametrize("version", [1, 4, 5])
def test_paused_monitor_hears_old_removals_then_a_refresh(version: int) -> None:
    """While paused (its peer has a backlog) a session hears only of rules it knew being
    removed; at resume, the rules added and modified meanwhile, then RESUMED (Open
    vSwitch's connmgr: ofmonitor_report while paused, ofmonitor_resume)."""
    from hitless.openflow.flowmon import FlowMonitorPaused

    r, h, sessions = setup(version)
    (c1, s1), (c2, s2) = sessions
    monitor(h, c1, s1, ALL & ~MonitorFlags.INITIAL)
    h.handle(c2, s2, add(5), 0.0)  # known before the pause
    h.handle(c2, s2, add(6), 0.0)
    assert len(events(h.flow_updates(sessions)[0])) == 2
    paused = h.pause_monitors(c1, s1)
    if version >= 5:
        assert isinstance(paused, FlowMonitorReply)
        assert paused.updates[0].event == UpdateEvent.PAUSED
    else:
        assert isinstance(paused, FlowMonitorPaused) and not paused.resumed
    h.handle(c2, s2, add(7), 0.0)  # added while paused
    h.handle(c2, s2, add(8), 0.0)  # added and removed while paused: never heard of
    h.handle(c2, s2, FlowMod(xid=9, command=FlowModCommand.MODIFY_STRICT, priority=5, match=UDP,
                             instructions=(ApplyActions((Output(2),)),)), 0.0)  # fmt: skip
    for prio in (6, 8):
        h.handle(c2, s2, FlowMod(xid=10, command=FlowModCommand.DELETE_STRICT, priority=prio,
                                 match=UDP), 0.0)  # fmt: skip
    assert events(h.flow_updates(sessions)[0]) == [(UpdateEvent.REMOVED, 6)]
    out = h.resume_monitors(c1, s1)
    assert events(out[:-1]) == [(UpdateEvent.ADDED, 7), (UpdateEvent.MODIFIED, 5)]
    last = out[-1]
    if version >= 5:
        assert isinstance(last, FlowMonitorReply) and last.updates[0].event == UpdateEvent.RESUMED
    else:
        assert isinstance(last, FlowMonitorPaused) and last.resumed
    assert not s1.monitor_paused
    h.handle(c2, s2, add(9), 0.0)
    assert events(h.flow_updates(sessions)[0]) == [(UpdateEvent.ADDED, 9)]
