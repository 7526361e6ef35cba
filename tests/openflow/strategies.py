"""Hypothesis strategies for every OpenFlow value the codec handles, per version."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from hitless.openflow import actions as a
from hitless.openflow import flowmon as fm
from hitless.openflow import messages as m
from hitless.openflow import multipart as mp
from hitless.openflow.constants import (
    OFP13_VERSION,
    ONF_EXPERIMENTER_ID,
    AsyncConfigProp,
    ErrorType,
    MeterBandType,
    OxmField,
    TableFeaturePropType,
)
from hitless.openflow.match import FIELD_WIDTHS, Match, Oxm

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
small_bytes = st.binary(max_size=40)
name = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_"), max_size=15)
mac = st.binary(min_size=6, max_size=6)


@st.composite
def oxms(draw: Any, masked: bool | None = None) -> Oxm:
    f = draw(st.sampled_from(sorted(FIELD_WIDTHS)))
    width, maskable = FIELD_WIDTHS[f]
    top = (1 << (8 * width)) - 1
    value = draw(st.integers(0, top))
    has_mask = draw(st.booleans()) if masked is None else masked
    mask = draw(st.integers(0, top)) if has_mask and maskable else None
    return Oxm(f, value, mask)


@st.composite
def matches(draw: Any) -> Match:
    fields = draw(st.lists(oxms(), max_size=6, unique_by=lambda o: o.field))
    return Match(tuple(fields))


def actions() -> st.SearchStrategy[a.Action]:
    return st.one_of(
        st.builds(a.Output, u32, u16),
        st.builds(a.CopyTtlOut),
        st.builds(a.CopyTtlIn),
        st.builds(a.SetMplsTtl, u8),
        st.builds(a.DecMplsTtl),
        st.builds(a.PushVlan, u16),
        st.builds(a.PopVlan),
        st.builds(a.PushMpls, u16),
        st.builds(a.PopMpls, u16),
        st.builds(a.SetQueue, u32),
        st.builds(a.GroupAction, u32),
        st.builds(a.SetNwTtl, u8),
        st.builds(a.DecNwTtl),
        st.builds(a.SetField, oxms()),
        st.builds(a.PushPbb, u16),
        st.builds(a.PopPbb),
        st.builds(
            a.ExperimenterAction,
            u32,
            st.sampled_from([b"", b"\0" * 8, b"\1" * 16]),
        ),
    )


action_lists = st.lists(actions(), max_size=4).map(tuple)


def instructions() -> st.SearchStrategy[a.Instruction]:
    return st.one_of(
        st.builds(a.GotoTable, u8),
        st.builds(a.WriteMetadata, u64, u64),
        st.builds(a.WriteActions, action_lists),
        st.builds(a.ApplyActions, action_lists),
        st.builds(a.ClearActions),
        st.builds(a.MeterInstruction, u32),
        st.builds(a.ExperimenterInstruction, u32, st.sampled_from([b"", b"\2" * 8])),
    )


# OpenFlow allows each instruction type once in a rule (1.3 §7.2.5: OFPBIC_DUP_INST)
instruction_lists = st.lists(instructions(), max_size=4, unique_by=type).map(tuple)
buckets = st.lists(
    st.builds(m.Bucket, weight=u16, watch_port=u32, watch_group=u32, actions=action_lists),
    max_size=3,
).map(tuple)
bands = st.lists(
    st.one_of(
        st.builds(m.MeterBand, type=st.just(MeterBandType.DROP), rate=u32, burst_size=u32),
        st.builds(
            m.MeterBand,
            type=st.just(MeterBandType.DSCP_REMARK),
            rate=u32,
            burst_size=u32,
            prec_level=u8,
        ),
        st.builds(
            m.MeterBand,
            type=st.just(MeterBandType.EXPERIMENTER),
            rate=u32,
            burst_size=u32,
            experimenter=u32,
            data=st.sampled_from([b"", b"\1" * 8]),
        ),
    ),
    max_size=3,
).map(tuple)
port_descs = st.builds(
    m.PortDesc,
    port_no=u32,
    hw_addr=mac,
    name=name,
    config=u32,
    state=u32,
    curr=u32,
    advertised=u32,
    supported=u32,
    peer=u32,
    curr_speed=u32,
    max_speed=u32,
)


def async_configs(version: int) -> st.SearchStrategy[m.AsyncConfig]:
    if version == OFP13_VERSION:
        props = list(AsyncConfigProp)[:6]
        return st.tuples(*[u32] * 6).map(
            lambda v: m.AsyncConfig.of(dict(zip(props, v, strict=True)))
        )
    keys = st.lists(st.sampled_from(list(AsyncConfigProp)[:12]), unique=True, max_size=12)
    return keys.flatmap(
        lambda ks: st.tuples(*[u32] * len(ks)).map(
            lambda vs: m.AsyncConfig.of(dict(zip(ks, vs, strict=True)))
        )
    )


_ID_TYPES = [0, 1, 4, 5, 6, 7]
table_feature_props = st.one_of(
    st.builds(
        mp.TableFeatureProp, st.sampled_from(_ID_TYPES), st.lists(u16, max_size=5).map(tuple)
    ),
    st.builds(mp.TableFeatureProp, st.sampled_from([2, 3]), st.lists(u8, max_size=9).map(tuple)),
    st.builds(
        mp.TableFeatureProp,
        st.sampled_from([8, 10, 12, 13, 14, 15]),
        # OXM headers: 4 bytes, or an experimenter's 8 (class 0xffff, then its id)
        st.lists(st.one_of(u32.filter(lambda h: h >> 16 != 0xFFFF),
                           st.tuples(st.integers(0, 0xFFFF), u32).map(
                               lambda t: (0xFFFF0000 | t[0]) << 32 | t[1])),
                 max_size=5).map(tuple),  # fmt: skip
    ),
    st.builds(
        mp.TableFeatureProp,
        st.just(TableFeaturePropType.EXPERIMENTER),
        st.just(()),
        st.binary(min_size=8, max_size=16),
    ),
)
table_features = st.builds(
    mp.TableFeatures,
    table_id=u8,
    name=name,
    metadata_match=u64,
    metadata_write=u64,
    config=u32,
    max_entries=u32,
    properties=st.lists(table_feature_props, max_size=4).map(tuple),
)
pairs = st.lists(st.tuples(u64, u64), max_size=3).map(tuple)


def messages(version: int) -> st.SearchStrategy[m.Message]:
    """Any message the given version can carry."""
    return st.one_of(message_strategies(version))


def message_strategies(version: int) -> list[st.SearchStrategy[Any]]:
    """Every message class, with fields the given version can carry."""
    v14 = version != OFP13_VERSION
    importance = u16 if v14 else st.just(0)
    xid = u32
    simple = [
        m.FeaturesRequest, m.GetConfigRequest, m.BarrierRequest, m.BarrierReply,
        m.GetAsyncRequest, mp.DescRequest, mp.TableStatsRequest, mp.PortDescRequest,
        mp.GroupDescRequest, mp.GroupFeaturesRequest, mp.MeterFeaturesRequest,
    ]  # fmt: skip
    flow_select = dict(
        xid=xid, flags=u16, table_id=u8, out_port=u32, out_group=u32, cookie=u64,
        cookie_mask=u64, match=matches(),
    )  # fmt: skip
    strategies = [st.builds(cls, xid=xid) for cls in simple] + [
        st.builds(m.Hello, xid=xid, versions=st.frozensets(st.integers(1, 100), max_size=5)),
        st.one_of(
            st.builds(
                m.ErrorMsg, xid=xid, err_type=st.integers(0, 0xFFFE), code=u16, data=small_bytes
            ),
            st.builds(
                m.ErrorMsg,
                xid=xid,
                err_type=st.just(ErrorType.EXPERIMENTER),
                code=u16,
                data=small_bytes,
                experimenter=u32,
            ),  # fmt: skip
        ),
        st.builds(m.EchoRequest, xid=xid, data=small_bytes),
        st.builds(m.EchoReply, xid=xid, data=small_bytes),
        st.builds(
            m.Experimenter,
            xid=xid,
            experimenter=u32.filter(lambda e: e != ONF_EXPERIMENTER_ID),
            exp_type=u32,
            data=small_bytes,
        ),  # fmt: skip
        st.builds(
            m.FeaturesReply,
            xid=xid,
            datapath_id=u64,
            n_buffers=u32,
            n_tables=u8,
            auxiliary_id=u8,
            capabilities=u32,
            reserved=u32,
        ),  # fmt: skip
        st.builds(m.GetConfigReply, xid=xid, flags=u16, miss_send_len=u16),
        st.builds(m.SetConfig, xid=xid, flags=u16, miss_send_len=u16),
        st.builds(
            m.PacketIn,
            xid=xid,
            buffer_id=u32,
            total_len=u16,
            reason=u8,
            table_id=u8,
            cookie=u64,
            match=matches(),
            data=small_bytes,
        ),  # fmt: skip
        st.builds(
            m.FlowRemoved,
            xid=xid,
            cookie=u64,
            priority=u16,
            reason=u8,
            table_id=u8,
            duration_sec=u32,
            duration_nsec=u32,
            idle_timeout=u16,
            hard_timeout=u16,
            packet_count=u64,
            byte_count=u64,
            match=matches(),
        ),  # fmt: skip
        st.builds(m.PortStatus, xid=xid, reason=u8, desc=port_descs),
        st.builds(
            m.PacketOut, xid=xid, buffer_id=u32, in_port=u32, actions=action_lists, data=small_bytes
        ),
        st.builds(
            m.FlowMod,
            xid=xid,
            cookie=u64,
            cookie_mask=u64,
            table_id=u8,
            command=u8,
            idle_timeout=u16,
            hard_timeout=u16,
            priority=u16,
            buffer_id=u32,
            out_port=u32,
            out_group=u32,
            flags=u16,
            importance=importance,
            match=matches(),
            instructions=instruction_lists,
        ),  # fmt: skip
        st.builds(m.GroupMod, xid=xid, command=u16, group_type=u8, group_id=u32, buckets=buckets),
        st.builds(
            m.PortMod, xid=xid, port_no=u32, hw_addr=mac, config=u32, mask=u32, advertise=u32
        ),
        st.builds(
            m.TableMod,
            xid=xid,
            table_id=u8,
            config=u32,
            properties=st.just(b"\0\2\0\x08\0\0\0\1") if v14 else st.just(b""),
        ),  # fmt: skip
        st.builds(m.MeterMod, xid=xid, command=u16, flags=u16, meter_id=u32, bands=bands),
        st.builds(m.QueueGetConfigRequest, xid=xid, port=u32),
        st.builds(m.QueueGetConfigReply, xid=xid, port=u32, queues=small_bytes),
        st.builds(m.RoleRequest, xid=xid, role=u32, generation_id=u64),
        st.builds(m.RoleReply, xid=xid, role=u32, generation_id=u64),
        st.builds(m.GetAsyncReply, xid=xid, config=async_configs(version)),
        st.builds(m.SetAsync, xid=xid, config=async_configs(version)),
        st.builds(
            m.BundleControl,
            xid=xid,
            bundle_id=u32,
            ctrl_type=u16,
            flags=u16,
            properties=small_bytes,
        ),
        xid.flatmap(
            lambda x: st.builds(
                m.BundleAddMessage,
                xid=st.just(x),
                bundle_id=u32,
                flags=u16,
                message=st.builds(
                    m.FlowMod, xid=st.just(x), match=matches(), instructions=instruction_lists
                ),
            )  # fmt: skip
        ),
        # multipart
        st.builds(
            mp.DescReply,
            xid=xid,
            flags=u16,
            mfr_desc=name,
            hw_desc=name,
            sw_desc=name,
            serial_num=name,
            dp_desc=name,
        ),  # fmt: skip
        st.builds(mp.FlowStatsRequest, **flow_select),
        st.builds(mp.AggregateStatsRequest, **flow_select),
        st.builds(
            mp.FlowStatsReply,
            xid=xid,
            flags=u16,
            stats=st.lists(
                st.builds(
                    mp.FlowStats,
                    table_id=u8,
                    duration_sec=u32,
                    duration_nsec=u32,
                    priority=u16,
                    idle_timeout=u16,
                    hard_timeout=u16,
                    flags=u16,
                    importance=importance,
                    cookie=u64,
                    packet_count=u64,
                    byte_count=u64,
                    match=matches(),
                    instructions=instruction_lists,
                ),
                max_size=3,
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.AggregateStatsReply,
            xid=xid,
            flags=u16,
            packet_count=u64,
            byte_count=u64,
            flow_count=u32,
        ),
        st.builds(
            mp.TableStatsReply,
            xid=xid,
            flags=u16,
            stats=st.lists(st.builds(mp.TableStats, u8, u32, u64, u64), max_size=3).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.TableFeaturesRequest,
            xid=xid,
            flags=u16,
            tables=st.lists(table_features, max_size=2).map(tuple),
        ),
        st.builds(
            mp.TableFeaturesReply,
            xid=xid,
            flags=u16,
            tables=st.lists(table_features, max_size=2).map(tuple),
        ),
        st.builds(mp.PortStatsRequest, xid=xid, flags=u16, port_no=u32),
        st.builds(
            mp.PortStatsReply,
            xid=xid,
            flags=u16,
            stats=st.lists(
                st.builds(
                    mp.PortStats,
                    port_no=u32,
                    rx_packets=u64,
                    tx_packets=u64,
                    rx_bytes=u64,
                    tx_bytes=u64,
                    rx_dropped=u64,
                    tx_dropped=u64,
                    rx_errors=u64,
                    tx_errors=u64,
                    rx_frame_err=u64,
                    rx_over_err=u64,
                    rx_crc_err=u64,
                    collisions=u64,
                    duration_sec=u32,
                    duration_nsec=u32,
                ),
                max_size=3,
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.PortDescReply, xid=xid, flags=u16, ports=st.lists(port_descs, max_size=3).map(tuple)
        ),
        st.builds(mp.QueueStatsRequest, xid=xid, flags=u16, port_no=u32, queue_id=u32),
        st.builds(mp.QueueDescRequest, xid=xid, flags=u16, port_no=u32, queue_id=u32),
        st.builds(
            mp.QueueDescReply,
            xid=xid,
            flags=u16,
            queues=st.lists(st.tuples(u32, u32), max_size=3).map(tuple),
        ),  # fmt: skip
        st.builds(mp.TableDescRequest, xid=xid, flags=u16),
        st.builds(
            mp.TableDescReply,
            xid=xid,
            flags=u16,
            tables=st.lists(
                st.builds(
                    mp.TableDesc,
                    table_id=u8,
                    config=u32,
                    properties=st.sampled_from([b"", b"\0\2\0\x08\0\0\0\x07"]),
                ),
                max_size=3,
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.QueueStatsReply,
            xid=xid,
            flags=u16,
            stats=st.lists(
                st.builds(
                    mp.QueueStats,
                    port_no=u32,
                    queue_id=u32,
                    tx_bytes=u64,
                    tx_packets=u64,
                    tx_errors=u64,
                    duration_sec=u32,
                    duration_nsec=u32,
                ),
                max_size=3,
            ).map(tuple),
        ),  # fmt: skip
        st.builds(mp.GroupStatsRequest, xid=xid, flags=u16, group_id=u32),
        st.builds(
            mp.GroupStatsReply,
            xid=xid,
            flags=u16,
            stats=st.lists(
                st.builds(
                    mp.GroupStats,
                    group_id=u32,
                    ref_count=u32,
                    packet_count=u64,
                    byte_count=u64,
                    duration_sec=u32,
                    duration_nsec=u32,
                    bucket_stats=pairs,
                ),
                max_size=3,
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.GroupDescReply,
            xid=xid,
            flags=u16,
            stats=st.lists(
                st.builds(mp.GroupDesc, group_type=u8, group_id=u32, buckets=buckets), max_size=3
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.GroupFeaturesReply,
            xid=xid,
            flags=u16,
            types=u32,
            capabilities=u32,
            max_groups=st.tuples(u32, u32, u32, u32),
            actions=st.tuples(u32, u32, u32, u32),
        ),  # fmt: skip
        st.builds(mp.MeterStatsRequest, xid=xid, flags=u16, meter_id=u32),
        st.builds(mp.MeterConfigRequest, xid=xid, flags=u16, meter_id=u32),
        st.builds(
            mp.MeterStatsReply,
            xid=xid,
            flags=u16,
            stats=st.lists(
                st.builds(
                    mp.MeterStats,
                    meter_id=u32,
                    flow_count=u32,
                    packet_in_count=u64,
                    byte_in_count=u64,
                    duration_sec=u32,
                    duration_nsec=u32,
                    band_stats=pairs,
                ),
                max_size=3,
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.MeterConfigReply,
            xid=xid,
            flags=u16,
            entries=st.lists(
                st.builds(mp.MeterConfig, meter_id=u32, flags=u16, bands=bands), max_size=3
            ).map(tuple),
        ),  # fmt: skip
        st.builds(
            mp.MeterFeaturesReply,
            xid=xid,
            flags=u16,
            max_meter=u32,
            band_types=u32,
            capabilities=u32,
            max_bands=u8,
            max_color=u8,
        ),  # fmt: skip
        st.builds(
            mp.ExperimenterStatsRequest,
            xid=xid,
            flags=u16,
            experimenter=u32,
            exp_type=u32,
            data=small_bytes,
        ),
        st.builds(
            mp.ExperimenterStatsReply,
            xid=xid,
            flags=u16,
            experimenter=u32,
            exp_type=u32,
            data=small_bytes,
        ),
        st.builds(fm.FlowMonitorRequest, xid=xid, flags=u16, monitors=st.lists(monitors(v14),
                                                                               max_size=3).map(tuple)),
        st.builds(fm.FlowMonitorReply, xid=xid, flags=u16, updates=st.lists(updates(v14),
                                                                            max_size=3).map(tuple)),
    ]  # fmt: skip
    if v14:  # 1.4+ only: ONF's 1.3 experimenter forms are not implemented (docs/openflow.md)
        strategies.append(st.builds(mp.TableStatus, xid=xid, reason=u8, table=st.builds(
            mp.TableDesc, table_id=u8, config=u32,
            properties=st.sampled_from([b"", b"\0\3\0\x08\x1e\x46\x19\0"]))))  # fmt: skip
        strategies.append(st.builds(m.RequestForward, xid=xid, message=st.one_of(
            st.builds(m.GroupMod, xid=xid, command=u16, group_type=u8, group_id=u32,
                      buckets=buckets),
            st.builds(m.MeterMod, xid=xid, command=u16, flags=u16, meter_id=u32, bands=bands),
        )))  # fmt: skip
    return strategies


def monitors(v14: bool) -> st.SearchStrategy[fm.MonitorRequest]:
    """Flow monitors a version can carry (1.3's ONF form has no out_group or command)."""
    return st.builds(
        fm.MonitorRequest,
        monitor_id=u32,
        flags=st.integers(0, 0x5F).filter(lambda f: bool(f & 0xE) and not f & 0x20),
        match=matches(),
        table_id=u8,
        out_port=u32,
        out_group=u32 if v14 else st.just(0xFFFFFFFF),
        command=st.sampled_from([0, 1]) if v14 else st.just(0),
    )


def updates(v14: bool) -> st.SearchStrategy[fm.FlowUpdate]:
    """Flow updates a version can carry (1.3: Nicira's events, no INITIAL/PAUSED)."""
    full = st.builds(
        fm.FlowUpdate,
        event=st.sampled_from([0, 1, 2, 3] if v14 else [1, 2, 3]),
        table_id=u8, reason=u8, priority=u16, idle_timeout=u16, hard_timeout=u16, cookie=u64,
        match=matches(),
        instructions=st.one_of(st.none(), st.lists(instructions(), min_size=1, max_size=3, unique_by=type).map(tuple)),
    )  # fmt: skip
    abbrev = st.builds(fm.FlowUpdate, event=st.just(4), xid=u32)
    paused = st.builds(fm.FlowUpdate, event=st.sampled_from([5, 6]))
    return st.one_of(full, abbrev, paused) if v14 else st.one_of(full, abbrev)


def all_message_classes() -> set[type]:
    """Every message class the decoder knows (the codec's registries)."""
    top = set(m._MESSAGES.values()) - {mp.MultipartRequest, mp.MultipartReply}
    return top | set(mp._REQUESTS.values()) | set(mp._REPLIES.values())


__all__ = ["all_message_classes", "message_strategies", "messages", "OxmField"]
