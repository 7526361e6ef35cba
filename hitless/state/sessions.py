"""The OpenFlow sessions' older form, both ways: state version 4 types them
(``records.BridgeSessionsV4``); builds of versions 3 and before carry them, with the
protocol feature "sessions", as one plain map per bridge in the ``Frozen`` message,
beside the snapshot. A handoff that negotiates version 3 or older sends and reads that
form, so a version 4 build hands its controllers' TCP connections to an older build
and takes them from one.

The map is exactly what those builds wrote (``OfManager.export_sessions`` up to state
version 3) and everything they accept: keys added over time are optional when read
(monitors, table settings, the session's own miss_send_len...). Pure: no I/O, no clock;
imports only the records.
"""

from __future__ import annotations

from typing import Any

from hitless.state.records import (
    BridgeSessionsV4,
    OfBundleV4,
    OfConnectionV4,
    OfMonitorV4,
    OfSessionV4,
    OfTableConfigV4,
    OfTlvMapV4,
)

__all__ = ["EVERY_BUILD_VERSIONS", "from_v3", "to_v3"]

# OpenFlow 1.3 and 1.4 (wire versions): what every build with the "sessions" feature
# speaks. A build checks every version a session record allows, so the older form's
# "versions" names only these (or the negotiated one); "all_versions" has the rest.
EVERY_BUILD_VERSIONS = (4, 5)


def to_v3(rec: BridgeSessionsV4) -> dict[str, Any]:
    """A bridge's sessions as builds of state version 3 and before carry them."""
    return {
        "mgmt": rec.mgmt,
        "snoop": rec.snoop,
        "passive": dict(rec.passive),
        "clients": [_client_to_v3(c) for c in rec.clients],
        "switch_flags": rec.switch_flags,
        "miss_send_len": rec.miss_send_len,
        "tlv_maps": [[m.option_class, m.option_type, m.option_len, m.index] for m in rec.tlv_maps],
        "table_config": [
            [t.table, t.miss, t.evict, None if t.vacancy is None else list(t.vacancy)]
            for t in rec.table_config
        ],
        "bridge": rec.bridge,
    }


def _client_to_v3(c: OfSessionV4) -> dict[str, Any]:
    return {
        "fd": c.fd,
        "state": _connection_to_v3(c.connection),
        "wbuf": c.wbuf,
        "closing": c.closing,
        "service": c.service,
        "miss_send_len": c.miss_send_len,
        "controller": c.controller,
        "origin": c.origin,
        "bundles": [[b.bundle_id, b.flags, list(b.messages)] for b in c.bundles],
        "closed_bundles": list(c.closed_bundles),
        "monitors": [
            [m.monitor_id, m.flags, m.table_id, m.out_port, m.out_group, m.match]
            for m in c.monitors
        ],
    }


def _connection_to_v3(s: OfConnectionV4) -> dict[str, Any]:
    if s.version is not None:
        legacy = [s.version]
    else:
        legacy = [v for v in s.versions if v in EVERY_BUILD_VERSIONS] or list(s.versions)
    return {
        "versions": legacy,
        "all_versions": list(s.versions),
        "version": s.version,
        "phase": s.phase,
        "hello_sent": s.hello_sent,
        "role": s.role,
        "generation_id": s.generation_id,
        "async_config": [list(p) for p in s.async_config],
        "next_xid": s.next_xid,
        "unparsed": s.unparsed,
        "probe_interval": s.probe_interval,
        "probe_xid": s.probe_xid,
        "nx": {
            "flow_format": s.flow_format,
            "packet_in_format": s.packet_in_format,
            "controller_id": s.controller_id,
            "flow_mod_table_id": s.flow_mod_table_id,
            "nx_xids": sorted(s.nx_xids),
        },
    }


def from_v3(d: Any) -> BridgeSessionsV4:
    """A bridge's sessions from an older build's map; ValueError (saying what) if it is
    not usable. Descriptor indices are checked by whoever holds the descriptors."""
    try:
        name = d.get("bridge")
        if not isinstance(name, str):
            raise ValueError(f"OpenFlow session record for bridge {name!r}")
        mgmt, snoop = d.get("mgmt"), d.get("snoop")
        return BridgeSessionsV4(
            name,
            None if mgmt is None else _int(mgmt),
            None if snoop is None else _int(snoop),
            {str(t): _int(i) for t, i in dict(d.get("passive", {})).items()},
            [_client_from_v3(c, d) for c in d.get("clients", [])],
            int(d.get("switch_flags", 0)),
            int(d.get("miss_send_len", 128)),
            [OfTlvMapV4(*(int(x) for x in m)) for m in d.get("tlv_maps", ())],
            [
                OfTableConfigV4(
                    int(t), int(miss), bool(ev),
                    None if vac is None else (int(vac[0]), int(vac[1])),
                )  # fmt: skip
                for t, miss, ev, vac in d.get("table_config", ())
            ],
        )
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"malformed OpenFlow session record: {type(e).__name__}: {e}") from None


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"session descriptor {v!r}")
    return v


def _client_from_v3(c: Any, bridge: Any) -> OfSessionV4:
    controller = c.get("controller")
    origin = c.get("origin")
    return OfSessionV4(
        _int(c["fd"]),
        _connection_from_v3(c["state"]),
        bytes(c.get("wbuf", b"")),
        bool(c.get("closing", False)),
        bool(c.get("service", True)),
        _miss_send_len(c, bridge),
        None if controller is None else str(controller),
        None if origin is None else str(origin),
        [OfBundleV4(int(bid), int(flags), [bytes(m) for m in msgs])
         for bid, flags, msgs in c.get("bundles", [])],  # fmt: skip
        [int(b) for b in c.get("closed_bundles", ())],
        [
            OfMonitorV4(int(mid), int(flags), int(table), int(out_port), int(out_group),
                        bytes(match))  # fmt: skip
            for mid, flags, table, out_port, out_group, match in c.get("monitors", ())
        ],
    )


def _connection_from_v3(s: Any) -> OfConnectionV4:
    nx = s.get("nx") or {}
    version = s["version"]
    generation_id = s["generation_id"]
    probe_interval = s["probe_interval"]
    probe_xid = s.get("probe_xid")
    return OfConnectionV4(
        [int(v) for v in s.get("all_versions", s["versions"])],
        None if version is None else int(version),
        str(s["phase"]),
        bool(s["hello_sent"]),
        int(s["role"]),
        None if generation_id is None else int(generation_id),
        [(int(k), int(v)) for k, v in s["async_config"]],
        int(s["next_xid"]),
        bytes(s["unparsed"]),
        None if probe_interval is None else float(probe_interval),
        None if probe_xid is None else int(probe_xid),
        int(nx.get("flow_format", 0)),
        int(nx.get("packet_in_format", 0)),
        int(nx.get("controller_id", 0)),
        bool(nx.get("flow_mod_table_id", False)),
        sorted(int(x) for x in nx.get("nx_xids", ())),
    )


def _miss_send_len(client: Any, bridge: Any) -> int | None:
    """A session's miss_send_len (builds before per-session values kept one for the
    bridge, which applied to its controller sessions)."""
    if "miss_send_len" in client:
        v = client["miss_send_len"]
        return None if v is None else int(v)
    if client.get("service", True) or "miss_send_len" not in bridge:
        return None
    return int(bridge["miss_send_len"])
