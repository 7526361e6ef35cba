"""The OpenFlow request handler on the dummy datapath: bundles commit atomically or not
at all, statistics follow the traffic, roles, errors carry the right codes."""

from __future__ import annotations

import pytest

from hitless.ofproto.ofhandler import BundleMessageFailed, OfHandler, OfSession
from hitless.openflow import (
    AggregateStatsReply,
    AggregateStatsRequest,
    ApplyActions,
    BarrierReply,
    BarrierRequest,
    BundleAddMessage,
    BundleControl,
    Connection,
    EchoReply,
    FlowMod,
    FlowStatsReply,
    FlowStatsRequest,
    GetConfigReply,
    GetConfigRequest,
    Match,
    Output,
    PacketIn,
    PortMod,
    RemoteProtocolError,
    RoleReply,
    RoleRequest,
    SetConfig,
    TableFeaturesReply,
    TableFeaturesRequest,
)
from hitless.openflow.constants import (
    BadActionCode,
    BundleCtrlType,
    ControllerRole,
    FlowModCommand,
    MultipartFlags,
    PortReason,
    PortState,
    RoleRequestFailedCode,
)
from tests.ofproto.helpers import P, Rig, frame, mac


def setup() -> tuple[Rig, OfHandler, Connection, OfSession]:
    r = Rig({"br0": P(type="internal"), "p1": P(), "p2": P()})
    return r, OfHandler(r.bridge, 0x42), Connection(), OfSession()


def rules(r: Rig) -> list[int]:
    return sorted(x.priority for x in r.bridge.of.rules())


def test_bundle_commits_all_or_nothing() -> None:
    r, h, conn, sess = setup()
    ctl = BundleControl(bundle_id=1, ctrl_type=BundleCtrlType.OPEN_REQUEST)
    assert h.handle(conn, sess, ctl, 0.0)[0].ctrl_type == BundleCtrlType.OPEN_REPLY  # type: ignore[attr-defined]
    good = FlowMod(xid=5, priority=7, instructions=(ApplyActions((Output(1),)),))
    bad = FlowMod(xid=6, priority=8, instructions=(ApplyActions((Output(0),)),))
    for m in (good, bad):
        h.handle(conn, sess, BundleAddMessage(bundle_id=1, message=m), 0.0)
    assert rules(r) == [0]  # nothing applied before the commit
    commit = BundleControl(bundle_id=1, ctrl_type=BundleCtrlType.COMMIT_REQUEST)
    with pytest.raises(BundleMessageFailed) as e:
        h.handle(conn, sess, commit, 0.0)
    assert e.value.inner.code == BadActionCode.BAD_OUT_PORT and e.value.inner.xid == 6
    assert rules(r) == [0]  # rolled back: the good rule is gone too
    # Forwarding still follows the restored pipeline (NORMAL).
    assert sorted(r.send("p1", frame(mac(2), mac(1)))) == ["br0", "p2"]

    h.handle(conn, sess, BundleAddMessage(bundle_id=2, message=good), 0.0)
    h.handle(conn, sess, BundleControl(bundle_id=2, ctrl_type=BundleCtrlType.COMMIT_REQUEST), 0)
    assert rules(r) == [0, 7]


def test_flow_stats_follow_traffic_and_barrier_commits() -> None:
    r, h, conn, sess = setup()
    h.handle(
        conn,
        sess,
        FlowMod(priority=9, match=Match.of(in_port=1), instructions=(ApplyActions((Output(2),)),)),
        0.0,
    )
    assert isinstance(h.handle(conn, sess, BarrierRequest(xid=3), 0.0)[0], BarrierReply)
    for _ in range(4):
        r.send("p1", frame(mac(2), mac(1)))
    (reply,) = h.handle(conn, sess, FlowStatsRequest(xid=9), 1.0)
    assert isinstance(reply, FlowStatsReply)
    by_prio = {s.priority: s.packet_count for s in reply.stats}
    assert by_prio == {9: 4, 0: 0}
    (agg,) = h.handle(conn, sess, AggregateStatsRequest(match=Match.of(in_port=1)), 1.0)
    assert isinstance(agg, AggregateStatsReply)
    assert (agg.flow_count, agg.packet_count) == (1, 4)
    h.handle(conn, sess, FlowMod(command=FlowModCommand.DELETE, table_id=0xFF), 2.0)
    assert rules(r) == []


def test_table_features_are_split_into_multipart_parts() -> None:
    _, h, conn, sess = setup()
    replies = h.handle(conn, sess, TableFeaturesRequest(xid=4), 0.0)
    assert all(isinstance(x, TableFeaturesReply) for x in replies)
    assert sum(len(x.tables) for x in replies) == 254  # type: ignore[attr-defined]
    assert [x.flags & MultipartFlags.MORE for x in replies][-1] == 0  # type: ignore[attr-defined]
    assert all(x.flags & MultipartFlags.MORE for x in replies[:-1])  # type: ignore[attr-defined]
    assert all(len(x.encode(4)) < 65536 for x in replies)


def test_roles_master_demotes_other_master_and_stale_generation_refused() -> None:
    _, h, c1, s1 = setup()
    c2 = Connection()
    (rep,) = h.handle(c1, s1, RoleRequest(role=ControllerRole.MASTER, generation_id=5), 0, [c1, c2])
    assert isinstance(rep, RoleReply) and rep.role == ControllerRole.MASTER
    h.handle(c2, OfSession(), RoleRequest(role=ControllerRole.MASTER, generation_id=6), 0, [c1, c2])
    assert (c1.role, c2.role) == (ControllerRole.SLAVE, ControllerRole.MASTER)
    with pytest.raises(RemoteProtocolError) as e:
        h.handle(c2, OfSession(), RoleRequest(role=ControllerRole.MASTER, generation_id=2), 0)
    assert e.value.code == RoleRequestFailedCode.STALE


def test_miss_send_len_is_per_connection_and_opts_a_management_session_in() -> None:
    _, h, c, s = setup()
    ctl = OfSession(service=False)
    (cfg,) = h.handle(c, s, GetConfigRequest(), 0)
    assert isinstance(cfg, GetConfigReply) and cfg.miss_send_len == 0  # management: none
    (cfg,) = h.handle(c, ctl, GetConfigRequest(), 0)
    assert isinstance(cfg, GetConfigReply) and cfg.miss_send_len == 128  # controller default
    pin = PacketIn(reason=0, table_id=0, cookie=0, total_len=0, match=Match(), data=b"")
    assert not h.wants(c, s, pin)
    h.handle(c, s, SetConfig(miss_send_len=0xFFFF), 0)
    assert h.wants(c, s, pin)  # as ovs-ofctl monitor asks for packet-ins
    (cfg,) = h.handle(c, ctl, GetConfigRequest(), 0)
    assert isinstance(cfg, GetConfigReply) and cfg.miss_send_len == 128  # not the monitor's


def test_an_answer_to_our_keepalive_probe_is_not_an_error() -> None:
    """The connection sends echo requests to a silent peer; the reply is no request."""
    _, h, c, s = setup()
    assert h.handle(c, s, EchoReply(xid=9, data=b"probe"), 0) == []


def test_port_status_reports_link_changes_additions_and_removals() -> None:
    r, h, _, _ = setup()
    assert h.port_status() == []  # the first call only takes note of the ports
    r.dp.set_link(r.no("p2"), False)
    r.run()
    (ps,) = h.port_status()
    assert (ps.reason, ps.desc.name, ps.desc.state) == (
        PortReason.MODIFY,
        "p2",
        PortState.LINK_DOWN,
    )
    assert h.port_status() == []  # reported once
    r.reconfigure({"br0": P(type="internal"), "p1": P(), "p3": P()})
    changes = sorted((m.reason, m.desc.name) for m in h.port_status())
    assert changes == [(PortReason.ADD, "p3"), (PortReason.DELETE, "p2")]


def test_port_mod_no_fwd_and_port_down_change_forwarding() -> None:
    r, h, conn, sess = setup()
    p2 = r.no("p2")
    hw = r.dp.ports()[p2].mac
    assert sorted(r.send("p1", frame(mac(2), mac(1)))) == ["br0", "p2"]
    h.handle(conn, sess, PortMod(port_no=p2, hw_addr=hw, config=1 << 5, mask=1 << 5), 1.0)
    assert list(r.send("p1", frame(mac(2), mac(1)))) == ["br0"]  # NO_FWD: p2 gets nothing
    (desc,) = [d for d in h.port_descs() if d.port_no == p2]
    assert desc.config & (1 << 5)
    h.handle(conn, sess, PortMod(port_no=p2, hw_addr=hw, config=0, mask=1 << 5), 2.0)
    assert sorted(r.send("p1", frame(mac(2), mac(1)))) == ["br0", "p2"]
    with pytest.raises(RemoteProtocolError):
        h.handle(conn, sess, PortMod(port_no=p2, hw_addr=bytes(6), config=1, mask=1), 3.0)


def _bundle(h: OfHandler, conn: Connection, sess: OfSession, bid: int, t: int, flags: int = 0):
    return h.handle(conn, sess, BundleControl(bundle_id=bid, ctrl_type=t, flags=flags), 0.0)


def test_bundle_replies_and_errors_as_open_vswitch() -> None:
    """Replies carry flags 0; a double open is BAD_ID and discards the bundle; a closed
    bundle refuses more messages (BUNDLE_CLOSED); other flags at close or commit are
    BAD_FLAGS (Open vSwitch ofproto/bundles.c behaviour, seen with ovs-ofctl)."""
    from hitless.openflow.constants import BundleFailedCode, BundleFlags

    r, h, conn, sess = setup()
    atomic = int(BundleFlags.ATOMIC)
    (rep,) = _bundle(h, conn, sess, 1, BundleCtrlType.OPEN_REQUEST, atomic)
    assert rep.flags == 0  # type: ignore[attr-defined]
    with pytest.raises(RemoteProtocolError) as e:
        _bundle(h, conn, sess, 1, BundleCtrlType.OPEN_REQUEST, atomic)
    assert e.value.code == BundleFailedCode.BAD_ID
    assert 1 not in sess.bundles  # discarded: a fresh open works
    _bundle(h, conn, sess, 1, BundleCtrlType.OPEN_REQUEST, atomic)
    with pytest.raises(RemoteProtocolError) as e:
        _bundle(h, conn, sess, 1, BundleCtrlType.CLOSE_REQUEST, 0)
    assert e.value.code == BundleFailedCode.BAD_FLAGS and 1 not in sess.bundles
    _bundle(h, conn, sess, 2, BundleCtrlType.OPEN_REQUEST)
    _bundle(h, conn, sess, 2, BundleCtrlType.CLOSE_REQUEST)
    fm = FlowMod(priority=9, instructions=(ApplyActions((Output(1),)),))
    with pytest.raises(RemoteProtocolError) as e:
        h.handle(conn, sess, BundleAddMessage(bundle_id=2, message=fm), 0.0)
    assert e.value.code == BundleFailedCode.BUNDLE_CLOSED
    _bundle(h, conn, sess, 3, BundleCtrlType.OPEN_REQUEST)
    with pytest.raises(RemoteProtocolError) as e:
        _bundle(h, conn, sess, 3, BundleCtrlType.COMMIT_REQUEST, atomic)
    assert e.value.code == BundleFailedCode.BAD_FLAGS
    assert 9 not in rules(r)


def test_bundle_errors_in_1_3_are_onf_experimenter_errors() -> None:
    import struct

    from hitless.openflow.constants import BundleFailedCode, ErrorType

    err = RemoteProtocolError("x", ErrorType.BUNDLE_FAILED, BundleFailedCode.MSG_FAILED, xid=4)
    raw = err.reply(4)
    assert struct.unpack_from("!HHI", raw, 8) == (0xFFFF, 2313, 0x4F4E4600)
    assert struct.unpack_from("!HH", err.reply(5), 8) == (17, 13)


def test_equal_role_has_no_generation_id_and_default_async_skips_invalid_ttl() -> None:
    from hitless.openflow.constants import AsyncConfigProp

    _, h, c, s = setup()
    (rep,) = h.handle(c, s, RoleRequest(role=ControllerRole.EQUAL), 0, [c])
    assert isinstance(rep, RoleReply) and rep.generation_id == 2**64 - 1
    # every packet-in reason but invalid TTL (bit 2), as Open vSwitch 3.1's default
    assert c.async_config.get(AsyncConfigProp.PACKET_IN_MASTER) == 0b111011


def test_the_generation_id_is_the_bridges() -> None:
    """A master's generation id holds for the bridge's other sessions: a new session's
    equal role reply carries it and an older one is stale there (as Open vSwitch)."""
    _, h, c1, s1 = setup()
    h.handle(c1, s1, RoleRequest(role=ControllerRole.MASTER, generation_id=7), 0, [c1])
    c2 = Connection()
    (rep,) = h.handle(c2, OfSession(), RoleRequest(role=ControllerRole.EQUAL), 0, [c1, c2])
    assert isinstance(rep, RoleReply) and rep.generation_id == 7
    with pytest.raises(RemoteProtocolError) as e:
        h.handle(c2, OfSession(), RoleRequest(role=ControllerRole.SLAVE, generation_id=6), 0, [c2])
    assert e.value.code == RoleRequestFailedCode.STALE


def test_a_failed_bundled_message_is_quoted_as_received() -> None:
    """The error about a message inside a bundle carries the bytes the peer sent (its
    version, its layout), as Open vSwitch quotes them, not a re-encoding."""
    from hitless.openflow import decode

    r, h, _, sess = setup()
    conn = Connection(versions=(5,))
    peer = Connection(versions=(5,))
    peer.receive_data(conn.start())
    conn.receive_data(peer.start())
    while conn.next_event() is not None and conn.version is None:
        pass
    bad = FlowMod(xid=6, priority=8, instructions=(ApplyActions((Output(0),)),))
    wire = BundleAddMessage(xid=6, bundle_id=3, message=bad).encode(5)
    inner = bad.encode(5)
    add = decode(wire)
    assert isinstance(add, BundleAddMessage) and add.raw == inner
    h.handle(conn, sess, add, 0.0)
    with pytest.raises(BundleMessageFailed) as e:
        h.handle(conn, sess, BundleControl(bundle_id=3, ctrl_type=BundleCtrlType.COMMIT_REQUEST), 0.0)
    assert e.value.inner.data == inner and e.value.inner.data[0] == 5  # all of it, as OVS 3.1
