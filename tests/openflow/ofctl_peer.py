"""A throwaway OpenFlow switch endpoint for tests: stock ``ovs-ofctl`` connects to it over
a unix socket, it answers with just enough (features, table features, port description,
empty statistics, barrier and bundle replies) and records every message it decoded."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from hitless.openflow import (
    AggregateStatsReply,
    ApplyActions,
    BarrierReply,
    BarrierRequest,
    Bucket,
    BundleControl,
    Connection,
    ConnectionEvent,
    DescReply,
    ErrorMsg,
    Experimenter,
    FeaturesReply,
    FeaturesRequest,
    FlowStats,
    FlowStatsReply,
    GetConfigReply,
    GetConfigRequest,
    GroupDesc,
    GroupDescReply,
    Match,
    Message,
    MeterBand,
    MeterConfig,
    MeterConfigReply,
    MultipartRequest,
    Output,
    PortDesc,
    PortDescReply,
    PortStats,
    PortStatsReply,
    ProtocolErrorEvent,
    TableFeatureProp,
    TableFeatures,
    TableFeaturesReply,
    TableFeaturesRequest,
    TableStats,
    TableStatsReply,
)
from hitless.openflow.constants import (
    ActionType,
    InstructionType,
    MultipartType,
    OxmField,
    TableFeaturePropType,
)
from hitless.openflow.match import field as oxm_field
from hitless.openflow.multipart import _REPLIES

_BASIC = tuple(oxm_field(f.name.lower(), 0).header() for f in OxmField if f != OxmField.PBB_UCA)


def table_features(n_tables: int = 2) -> tuple[TableFeatures, ...]:
    """The eight properties ``ovs-ofctl`` insists on (§7.3.5.5.2), for ``n_tables`` tables."""
    insts = tuple(int(i) for i in InstructionType if i != InstructionType.EXPERIMENTER)
    acts = tuple(int(a) for a in ActionType if a != ActionType.EXPERIMENTER)
    out = []
    for t in range(n_tables):
        props = (
            TableFeatureProp(TableFeaturePropType.INSTRUCTIONS, insts),
            TableFeatureProp(TableFeaturePropType.NEXT_TABLES, tuple(range(t + 1, n_tables))),
            TableFeatureProp(TableFeaturePropType.WRITE_ACTIONS, acts),
            TableFeatureProp(TableFeaturePropType.APPLY_ACTIONS, acts),
            TableFeatureProp(TableFeaturePropType.MATCH, _BASIC),
            TableFeatureProp(TableFeaturePropType.WILDCARDS, _BASIC),
            TableFeatureProp(TableFeaturePropType.WRITE_SETFIELD, _BASIC),
            TableFeatureProp(TableFeaturePropType.APPLY_SETFIELD, _BASIC),
        )
        out.append(
            TableFeatures(
                table_id=t,
                name=f"table{t}",
                metadata_match=2**64 - 1,
                metadata_write=2**64 - 1,
                max_entries=1000000,
                properties=props,
            )
        )
    return tuple(out)


PORTS = (
    PortDesc(port_no=1, hw_addr=bytes.fromhex("020000000001"), name="p1", curr_speed=10000),
    PortDesc(port_no=2, hw_addr=bytes.fromhex("020000000002"), name="p2", curr_speed=10000),
)


CANNED: dict[int, Message] = {
    MultipartType.FLOW: FlowStatsReply(
        stats=(
            FlowStats(
                priority=10,
                cookie=0x42,
                packet_count=3,
                byte_count=180,
                match=Match.of(eth_type=0x0800, ipv4_dst=(0x0A000000, 0xFF000000)),
                instructions=(ApplyActions((Output(2),)),),
            ),
        )
    ),
    MultipartType.PORT_STATS: PortStatsReply(
        stats=(PortStats(port_no=1, rx_packets=7, tx_packets=9, rx_bytes=700, collisions=3),)
    ),
    MultipartType.GROUP_DESC: GroupDescReply(
        stats=(
            GroupDesc(
                group_type=1,
                group_id=1,
                buckets=(Bucket(weight=5, actions=(Output(1),)),),
            ),
        )
    ),
    MultipartType.METER_CONFIG: MeterConfigReply(
        entries=(
            MeterConfig(
                meter_id=1, flags=0b1101, bands=(MeterBand(type=1, rate=1000, burst_size=100),)
            ),
        )
    ),
    MultipartType.TABLE: TableStatsReply(stats=(TableStats(0, 4, 100, 90),)),
    MultipartType.AGGREGATE: AggregateStatsReply(packet_count=5, byte_count=300, flow_count=2),
}


def answer(conn: Connection, msg: Message) -> bytes:
    """What the fake switch says to ``msg``."""
    if isinstance(msg, FeaturesRequest):
        return conn.send(FeaturesReply(xid=msg.xid, datapath_id=0x1234, n_tables=2))
    if isinstance(msg, GetConfigRequest):
        return conn.send(GetConfigReply(xid=msg.xid))
    if isinstance(msg, BarrierRequest):
        return conn.send(BarrierReply(xid=msg.xid))
    if isinstance(msg, BundleControl):
        reply = BundleControl(
            xid=msg.xid, bundle_id=msg.bundle_id, ctrl_type=msg.ctrl_type + 1, flags=msg.flags
        )
        return conn.send(reply)
    if isinstance(msg, TableFeaturesRequest):
        return conn.send(TableFeaturesReply(xid=msg.xid, tables=table_features()))
    if isinstance(msg, MultipartRequest):
        cls = _REPLIES[msg.mp_type]
        if cls is PortDescReply:
            return conn.send(PortDescReply(xid=msg.xid, ports=PORTS))
        if cls is DescReply:
            return conn.send(DescReply(xid=msg.xid, mfr_desc="hitless", dp_desc="test"))
        canned = CANNED.get(msg.mp_type)
        if canned is not None:
            return conn.send(replace(canned, xid=msg.xid))
        return conn.send(cls(xid=msg.xid))  # type: ignore[call-arg]
    if isinstance(msg, Experimenter):
        return conn.send(
            ErrorMsg(xid=msg.xid, err_type=msg.unsupported().type, code=msg.unsupported().code)
        )
    return b""


@dataclass
class Capture:
    messages: list[Message] = field(default_factory=list)
    errors: list[ProtocolErrorEvent] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)


def run_ofctl(
    tmp: Path, args: list[str], *, versions: tuple[int, ...] = (4, 5)
) -> tuple[subprocess.CompletedProcess[str], Capture]:
    """Run ``ovs-ofctl ARGS unix:SOCK ...`` (``{sock}`` in args is the target) against the
    fake switch; return the process result and what the switch decoded."""
    path = tmp / "of.sock"
    if path.exists():
        path.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    server.settimeout(0.2)
    capture = Capture()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with sock:
                sock.settimeout(10)
                conn = Connection(versions=versions)
                sock.sendall(conn.start())
                while True:
                    try:
                        data = sock.recv(65536)
                    except (TimeoutError, OSError):
                        break
                    conn.receive_data(data)
                    out = []
                    while True:
                        ev = conn.next_event()
                        if not isinstance(ev, (Message, ConnectionEvent)):
                            break
                        if isinstance(ev, ProtocolErrorEvent):
                            capture.errors.append(ev)
                        elif isinstance(ev, ConnectionEvent):
                            if conn.version is not None:
                                capture.versions.append(conn.version)
                        else:
                            capture.messages.append(ev)
                            out.append(answer(conn, ev))
                        if isinstance(ev, ConnectionEvent):
                            out.append(ev.data)
                    try:
                        sock.sendall(b"".join(out))
                    except OSError:
                        break
                    if not data:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    argv = ["ovs-ofctl", *(a.replace("{sock}", f"unix:{path}") for a in args)]
    env = dict(os.environ, OVS_RUNDIR=str(tmp), OVS_LOGDIR=str(tmp))
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    finally:
        stop.set()
        server.close()
        thread.join(timeout=15)
    return result, capture
