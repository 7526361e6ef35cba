"""A live os-ken OpenFlow controller for integration tests, run as a subprocess::

    .venv/bin/python tests/osken_peer.py --port P --events FILE \\
        [--app learning|observer] [--idle-timeout N] [--ofp-version 13|14] [--control SOCK]
        [--echo-interval S [--echo-max N]]

It starts os-ken's own ``OpenFlowController`` (the real handshake, framing and parser of
``os_ken.controller``) listening on 127.0.0.1:P, with one app of ours next to
``ofp_handler``:

``learning``
    a MAC-learning switch in the manner of os-ken's old ``simple_switch_13`` sample
    (written here, not copied): on switch features it installs a table-miss rule that
    sends everything to the controller; each packet-in teaches it ``eth_src -> in_port``;
    a frame for a known destination gets a rule (in_port, eth_src, eth_dst -> output)
    with ``--idle-timeout`` and ``OFPFF_SEND_FLOW_REM`` and a cookie unique to the rule;
    anything else is flooded with a packet-out.
``observer``
    installs nothing and only records what the switch sends.

Both record, as one JSON object per line appended to FILE and flushed at once, with
``event`` and ``t`` (wall clock) keys:

- ``listening``: the controller accepts connections (written once, by the runner);
- ``state``: every datapath state change os-ken reports (``EventOFPStateChange``):
  ``state`` is ``handshake``, ``config``, ``main`` or ``dead``; a ``connected`` line
  follows ``main`` and a ``disconnected`` line follows ``dead``, so a test can assert
  the controller never lost the switch;
- ``features`` (dpid, n_tables), ``packet_in`` (in_port, eth_src, eth_dst, ethertype,
  reason, table_id, cookie, buffer_id, total_len), ``flow_added`` (cookie, match,
  out_port, idle_timeout; learning only), ``flow_removed`` (reason and reason_name,
  cookie, priority, idle_timeout, packet_count, byte_count, match), ``port_status``,
  ``error`` (type, code) and the replies to requests below.

Requests mid-test: a client connects to the unix socket ``--control`` (default
FILE + ".sock"), writes one JSON object and a newline, and reads one JSON line back:

- ``{"cmd": "datapaths"}`` -> ``{"ok": true, "datapaths": [dpid, ...]}`` (in MAIN state);
- ``{"cmd": "barrier"}`` / ``{"cmd": "echo", "data": "text"}`` send a barrier / echo
  request to every connected datapath (or just ``"dpid"``) and wait for each reply,
  which is also logged as ``barrier_reply`` / ``echo_reply`` (with xid);
- ``{"cmd": "flows"}`` asks for the flow statistics of every table and returns them.

With ``--echo-interval`` os-ken itself probes the switch with echo requests and drops
the connection after ``--echo-max`` unanswered ones (its replies are logged as
``echo_reply`` too), so a switch that stops answering shows up as ``disconnected``.

Requests answer ``{"ok": false, "error": ...}`` on failure or when a reply does not
come within ``"timeout"`` seconds (default 10). The switch under test never imports
os-ken: only this process does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

from os_ken import cfg
from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller import ofp_handler as _ofp_handler  # noqa: F401  (registers its options)
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib import hub
from os_ken.lib.packet import ether_types, ethernet, packet
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_4

log = logging.getLogger("osken_peer")

_STATES = {
    HANDSHAKE_DISPATCHER: "handshake",
    CONFIG_DISPATCHER: "config",
    MAIN_DISPATCHER: "main",
    DEAD_DISPATCHER: "dead",
}
_ALL_STATES = list(_STATES)
_REMOVED_REASONS = {0: "IDLE_TIMEOUT", 1: "HARD_TIMEOUT", 2: "DELETE", 3: "GROUP_DELETE"}


class Journal:
    """The events file: one JSON object per line, written whole and flushed at once."""

    def __init__(self, path: str) -> None:
        self._f = open(path, "a", encoding="utf-8")  # noqa: SIM115  (lives as long as the process)
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": time.time(), **fields}, default=str)
        with self._lock:
            self._f.write(line + "\n")
            self._f.flush()


def _match(m: Any) -> dict[str, Any]:
    """An OFPMatch as a plain dict (masked fields as [value, mask])."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in m.items()}


class _Pending:
    """Replies expected for one request xid, filled by the app's event thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.items: list[dict[str, Any]] = []


class ObserverApp(app_manager.OSKenApp):
    """Records what the switch sends; installs nothing. Class attributes are set by
    ``main`` before os-ken instantiates the app."""

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    journal: Journal
    idle_timeout = 5

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datapaths: dict[int, Any] = {}  # dpid -> Datapath, while in MAIN state
        self.send_lock = threading.Lock()  # the app thread and the control thread send
        self.pending: dict[int, _Pending] = {}
        self.pending_lock = threading.Lock()

    # -- sending --
    def send(self, dp: Any, msg: Any, expect: bool = False) -> _Pending | None:
        """Send ``msg`` with a fresh xid; with ``expect``, register for its reply first."""
        with self.send_lock:
            xid = dp.set_xid(msg)
            p = None
            if expect:
                p = _Pending()
                with self.pending_lock:
                    self.pending[xid] = p
            if not dp.send_msg(msg):
                raise ConnectionError(f"datapath {dp.id} is going away")
        return p

    def _reply(self, xid: int, item: dict[str, Any], last: bool = True) -> None:
        with self.pending_lock:
            p = self.pending.get(xid)
            if p is None:
                return
            p.items.append(item)
            if last:
                del self.pending[xid]
                p.done.set()

    # -- connection state --
    @set_ev_cls(ofp_event.EventOFPStateChange, _ALL_STATES)
    def _state_change(self, ev: Any) -> None:
        dp = ev.datapath
        state = _STATES.get(ev.state, str(ev.state))
        peer = list(dp.address) if dp.address else None
        self.journal.write("state", state=state, dpid=dp.id, peer=peer)
        if ev.state == MAIN_DISPATCHER:
            self.datapaths[dp.id] = dp
            self.journal.write("connected", dpid=dp.id, version=dp.ofproto.OFP_VERSION)
        elif ev.state == DEAD_DISPATCHER:
            dpid = dp.id
            if self.datapaths.get(dpid) is dp:  # not a newer connection of the same dpid
                del self.datapaths[dpid]
            self.journal.write("disconnected", dpid=dpid)

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev: Any) -> None:
        msg = ev.msg
        self.journal.write("features", dpid=msg.datapath_id, n_tables=msg.n_tables)
        self.on_features(msg.datapath)

    def on_features(self, dp: Any) -> None:
        pass

    # -- asynchronous messages --
    @set_ev_cls(ofp_event.EventOFPPacketIn, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _packet_in(self, ev: Any) -> None:
        msg = ev.msg
        dp = msg.datapath
        in_port = msg.match.get("in_port")
        eth = packet.Packet(bytes(msg.data)).get_protocol(ethernet.ethernet)
        self.journal.write(
            "packet_in",
            dpid=dp.id,
            in_port=in_port,
            eth_src=eth.src if eth else None,
            eth_dst=eth.dst if eth else None,
            ethertype=eth.ethertype if eth else None,
            reason=msg.reason,
            table_id=msg.table_id,
            cookie=msg.cookie,
            buffer_id=msg.buffer_id,
            total_len=msg.total_len,
        )
        if eth is not None and in_port is not None:
            self.on_packet_in(dp, msg, in_port, eth)

    def on_packet_in(self, dp: Any, msg: Any, in_port: int, eth: Any) -> None:
        pass

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _flow_removed(self, ev: Any) -> None:
        msg = ev.msg
        self.journal.write(
            "flow_removed",
            dpid=msg.datapath.id,
            reason=msg.reason,
            reason_name=_REMOVED_REASONS.get(msg.reason, str(msg.reason)),
            cookie=msg.cookie,
            priority=msg.priority,
            table_id=msg.table_id,
            idle_timeout=msg.idle_timeout,
            hard_timeout=msg.hard_timeout,
            duration_sec=msg.duration_sec,
            packet_count=msg.packet_count,
            byte_count=msg.byte_count,
            match=_match(msg.match),
        )

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev: Any) -> None:
        msg = ev.msg
        self.journal.write(
            "port_status",
            dpid=msg.datapath.id,
            reason=msg.reason,
            port_no=msg.desc.port_no,
            name=msg.desc.name.decode(errors="replace")
            if isinstance(msg.desc.name, bytes)
            else msg.desc.name,
        )

    @set_ev_cls(ofp_event.EventOFPErrorMsg, _ALL_STATES)
    def _error(self, ev: Any) -> None:
        msg = ev.msg
        self.journal.write("error", dpid=msg.datapath.id, type=msg.type, code=msg.code, xid=msg.xid)
        self._reply(msg.xid, {"error": {"type": msg.type, "code": msg.code}})

    # -- replies to requests --
    @set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN_DISPATCHER)
    def _barrier_reply(self, ev: Any) -> None:
        msg = ev.msg
        self.journal.write("barrier_reply", dpid=msg.datapath.id, xid=msg.xid)
        self._reply(msg.xid, {"dpid": msg.datapath.id, "xid": msg.xid})

    @set_ev_cls(ofp_event.EventOFPEchoReply, _ALL_STATES)
    def _echo_reply(self, ev: Any) -> None:
        msg = ev.msg
        data = bytes(msg.data or b"").decode(errors="replace")
        self.journal.write("echo_reply", dpid=msg.datapath.id, xid=msg.xid, data=data)
        self._reply(msg.xid, {"dpid": msg.datapath.id, "xid": msg.xid, "data": data})

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def _flow_stats_reply(self, ev: Any) -> None:
        msg = ev.msg
        more = bool(msg.flags & msg.datapath.ofproto.OFPMPF_REPLY_MORE)
        flows = [
            {
                "table_id": s.table_id,
                "priority": s.priority,
                "cookie": s.cookie,
                "idle_timeout": s.idle_timeout,
                "hard_timeout": s.hard_timeout,
                "flags": s.flags,
                "packet_count": s.packet_count,
                "byte_count": s.byte_count,
                "match": _match(s.match),
            }
            for s in msg.body
        ]
        self._reply(msg.xid, {"dpid": msg.datapath.id, "flows": flows}, last=not more)

    # -- the control socket's requests (called from the control thread) --
    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        cmd = req.get("cmd")
        if cmd == "datapaths":
            return {"ok": True, "datapaths": sorted(self.datapaths)}
        if cmd not in ("barrier", "echo", "flows"):
            return {"ok": False, "error": f"unknown cmd {cmd!r}"}
        timeout = float(req.get("timeout", 10))
        dps = dict(self.datapaths)
        if "dpid" in req:
            dps = {k: v for k, v in dps.items() if k == req["dpid"]}
        if not dps:
            return {"ok": False, "error": "no connected datapath"}
        waits = []
        for dp in dps.values():
            parser = dp.ofproto_parser
            if cmd == "barrier":
                msg = parser.OFPBarrierRequest(dp)
            elif cmd == "echo":
                msg = parser.OFPEchoRequest(dp, data=str(req.get("data", "")).encode())
            else:
                msg = parser.OFPFlowStatsRequest(dp)
            p = self.send(dp, msg, expect=True)
            assert p is not None
            waits.append(p)
        deadline = time.monotonic() + timeout
        replies: list[dict[str, Any]] = []
        for p in waits:
            if not p.done.wait(max(0.0, deadline - time.monotonic())):
                return {"ok": False, "error": f"no reply within {timeout}s", "replies": replies}
            if cmd == "flows":
                flows = [f for item in p.items for f in item.get("flows", ())]
                replies.append({"dpid": p.items[0].get("dpid"), "flows": flows, **_err(p)})
            else:
                replies.extend(p.items)
        errors = [r for r in replies if "error" in r]
        return {"ok": not errors, "replies": replies}


def _err(p: _Pending) -> dict[str, Any]:
    errs = [i["error"] for i in p.items if "error" in i]
    return {"error": errs[0]} if errs else {}


class LearningApp(ObserverApp):
    """A MAC-learning switch: table-miss to the controller, one exact rule per learned
    (in_port, src, dst) with an idle timeout and a flow-removed request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.macs: dict[int, dict[str, int]] = {}  # dpid -> eth address -> port
        self.next_cookie = 1

    def on_features(self, dp: Any) -> None:
        ofp, parser = dp.ofproto, dp.ofproto_parser
        to_controller = parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)
        inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [to_controller])]
        self.send(dp, parser.OFPFlowMod(dp, priority=0, match=parser.OFPMatch(), instructions=inst))
        self.journal.write("flow_added", dpid=dp.id, cookie=0, match={}, out_port="CONTROLLER")

    def on_packet_in(self, dp: Any, msg: Any, in_port: int, eth: Any) -> None:
        if eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        ofp, parser = dp.ofproto, dp.ofproto_parser
        table = self.macs.setdefault(dp.id, {})
        table[eth.src] = in_port
        out_port = table.get(eth.dst, ofp.OFPP_FLOOD)
        actions = [parser.OFPActionOutput(out_port)]
        buffered = msg.buffer_id != ofp.OFP_NO_BUFFER
        if out_port != ofp.OFPP_FLOOD:
            match = parser.OFPMatch(in_port=in_port, eth_src=eth.src, eth_dst=eth.dst)
            cookie, self.next_cookie = self.next_cookie, self.next_cookie + 1
            mod = parser.OFPFlowMod(
                dp,
                cookie=cookie,
                priority=1,
                idle_timeout=self.idle_timeout,
                flags=ofp.OFPFF_SEND_FLOW_REM,
                match=match,
                instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)],
                buffer_id=msg.buffer_id if buffered else ofp.OFP_NO_BUFFER,
            )
            self.send(dp, mod)
            self.journal.write(
                "flow_added",
                dpid=dp.id,
                cookie=cookie,
                match=_match(match),
                out_port=out_port,
                idle_timeout=self.idle_timeout,
            )
            if buffered:
                return  # the switch applies the new rule to the buffered packet
        out = parser.OFPPacketOut(
            dp,
            buffer_id=msg.buffer_id,
            in_port=in_port,
            actions=actions,
            data=None if buffered else msg.data,
        )
        self.send(dp, out)


APPS: dict[str, type[ObserverApp]] = {"learning": LearningApp, "observer": ObserverApp}


# -- the control socket --
def _serve_control(path: str, app: ObserverApp, journal: Journal) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_answer, args=(conn, app, journal), daemon=True).start()


def _answer(conn: socket.socket, app: ObserverApp, journal: Journal) -> None:
    with conn:
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            buf += chunk
        try:
            req = json.loads(buf)
            if not isinstance(req, dict):
                raise ValueError("a request is a JSON object")
            journal.write("request", request=req)
            rep = app.request(req)
        except Exception as e:  # the reply carries it; the controller keeps running
            log.exception("request %r failed", buf)
            rep = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        conn.sendall(json.dumps(rep, default=str).encode() + b"\n")


def _listening(port: int) -> bool:
    """Whether this process listens on 127.0.0.1:port. Read from /proc (the socket's
    inode among our own descriptors), so that checking neither opens an OpenFlow
    connection the controller would record nor mistakes another process's socket."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                ours.add(link[8:-1])
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in list(f)[1:]]
    return any(r[1] == want and r[3] == "0A" and r[9] in ours for r in rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--events", required=True)
    ap.add_argument("--app", choices=sorted(APPS), default="learning")
    ap.add_argument("--idle-timeout", type=int, default=5)
    ap.add_argument("--ofp-version", type=int, choices=(13, 14), default=13)
    ap.add_argument("--control", help="unix socket for requests (default EVENTS.sock)")
    ap.add_argument(
        "--echo-interval",
        type=float,
        default=0,
        help="os-ken's own liveness probe: an echo request every S seconds, and the "
        "connection closed after --echo-max unanswered ones (default: off)",
    )
    ap.add_argument("--echo-max", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s"
    )

    # os-ken's options are registered at import; parse no command line and no config
    # files, then set what osken-manager's flags used to.
    cfg.CONF(args=[], project="os_ken", default_config_files=[])
    cfg.CONF.set_override("ofp_listen_host", "127.0.0.1")
    cfg.CONF.set_override("ofp_tcp_listen_port", args.port)
    if args.echo_interval > 0:
        cfg.CONF.set_override("echo_request_interval", args.echo_interval)
        cfg.CONF.set_override("maximum_unreplied_echo_requests", args.echo_max)

    journal = Journal(args.events)
    cls = APPS[args.app]
    cls.journal = journal
    cls.idle_timeout = args.idle_timeout
    version = ofproto_v1_4.OFP_VERSION if args.ofp_version == 14 else ofproto_v1_3.OFP_VERSION
    cls.OFP_VERSIONS = [version]

    mgr = app_manager.AppManager.get_instance()
    mgr.load_apps(["os_ken.controller.ofp_handler"])
    contexts = mgr.create_contexts()
    mgr.applications_cls[cls.__name__] = cls  # our app is a class here, not a module name
    threads = mgr.instantiate_apps(**contexts)
    app = mgr.applications[cls.__name__]

    control = args.control or args.events + ".sock"
    threading.Thread(target=_serve_control, args=(control, app, journal), daemon=True).start()
    while not _listening(args.port) or not os.path.exists(control):
        if not all(t.is_alive() for t in threads):
            log.error("os-ken stopped before listening on port %d", args.port)
            return 1
        time.sleep(0.05)  # poll: a condition (tests.wait is not importable under -P)
    journal.write("listening", port=args.port, app=args.app, pid=os.getpid(), control=control)
    hub.joinall(threads)  # until killed
    return 0


if __name__ == "__main__":
    sys.exit(main())
