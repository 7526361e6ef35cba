"""Connection-tracking management commands (``ovs-appctl dpctl/...``), printed as
Open vSwitch 3.1 prints them for its userspace datapath: dump-conntrack [-m] [-s]
[DP] [zone=N], flush-conntrack [DP] [zone=N] [CT-TUPLE], ct-stats-show [-m] [DP]
[zone=N], ct-set-limits [DP] [default=L] [zone=N,limit=L]..., ct-get-limits [DP]
[zone=N[,N]...], ct-del-limits [DP] zone=N[,N]..., ct-set-maxconns [DP] N,
ct-get-maxconns [DP], ct-get-nconns [DP].

Each bridge's datapath keeps its own connection table (hitless.datapath.conntrack);
where Open vSwitch has one table per datapath type ("netdev@ovs-netdev") these
commands act on every bridge's table, or on one bridge's when DP names it. Errors use
Open vSwitch's wording."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from hitless.daemon.unixctl import CommandError, Request, command
from hitless.datapath import Datapath
from hitless.datapath.conntrack import STAT_ORDER, TCP_STATES, CtTuple

_INVAL = "(Invalid argument)"


def _datapaths(req: Request, name: str | None) -> list[Datapath]:
    bridges = req.switch.bridges
    if name is None:
        return [bridges[n].datapath for n in sorted(bridges)]
    kind, _, bare = name.rpartition("@")
    if bare in bridges:
        return [bridges[bare].datapath]
    typed = [bridges[n].datapath for n in sorted(bridges) if bridges[n].datapath.type == kind]
    if kind and typed:
        return typed
    raise CommandError(f"datapath not found {_INVAL}")


def _split(req: Request, flags: str) -> tuple[set[str], str | None, list[str]]:
    """(options given, the datapath name if any, key=value arguments)."""
    opts: set[str] = set()
    dp: str | None = None
    kv: list[str] = []
    for a in req.args:
        if a.startswith("-"):
            o = {"--more": "-m", "--statistics": "-s"}.get(a, a)
            if o not in flags:
                raise CommandError(f"unknown option {a} {_INVAL}")
            opts.add(o)
        elif "=" in a:
            kv.append(a)
        elif dp is None:
            dp = a
        else:
            raise CommandError(f"too many arguments {_INVAL}")
    return opts, dp, kv


def _zone(text: str) -> int:
    try:
        z = int(text, 0)
    except ValueError:
        z = -1
    if not 0 <= z <= 0xFFFF:
        raise CommandError(f"failed to parse zone {_INVAL}")
    return z


def _zone_arg(kv: list[str]) -> int | None:
    zone = None
    for a in kv:
        k, _, v = a.partition("=")
        if k != "zone":
            raise CommandError(f"invalid argument {a} {_INVAL}")
        zone = _zone(v)
    return zone


def _lines(lines: Iterable[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


@command("dpctl/dump-conntrack", "[-m] [-s] [dp] [zone=N]", 0, 4)
def dump_conntrack(req: Request) -> str:
    opts, dp_name, kv = _split(req, "-m-s")
    zone = _zone_arg(kv)
    out = []
    for dp in _datapaths(req, dp_name):
        now = dp.ct_now()
        for c in dp.conntrack:
            if c.expiration <= now or (zone is not None and c.zone != zone):
                continue
            out.append(c.describe(now, verbose="-m" in opts, stats="-s" in opts))
    return _lines(out)


_ICMP = (1, 58)


@dataclass(frozen=True, slots=True)
class _TupleMatch:
    """A ct-orig-tuple or ct-reply-tuple of flush-conntrack: the fields given (None: any).
    ICMP's identifier, type and code are always compared (0 when not given), as Open
    vSwitch 3.1 does: ``ct_nw_proto=1`` alone matches no echo connection there."""

    src: bytes | None = None
    dst: bytes | None = None
    proto: int | None = None
    sport: int | None = None
    dport: int | None = None

    def full(self) -> bool:
        """Every field given: the tuple names one connection."""
        return None not in (self.src, self.dst, self.proto, self.sport, self.dport)

    def tuple(self) -> CtTuple:
        assert self.src is not None and self.dst is not None and self.proto is not None
        return CtTuple(self.src, self.dst, self.proto, self.sport or 0, self.dport or 0)

    def matches(self, t: CtTuple) -> bool:
        return (
            (self.src is None or t.src == self.src)
            and (self.dst is None or t.dst == self.dst)
            and (self.proto is None or t.proto == self.proto)
            and (self.sport is None or t.sport == self.sport)
            and (self.dport is None or t.dport == self.dport)
        )


def _parse_tuple(text: str, proto: int | None = None) -> _TupleMatch:
    """ct_nw_src=..,ct_nw_dst=..,ct_nw_proto=..,ct_tp_src=..,ct_tp_dst=.. (ct_ipv6_src/
    ct_ipv6_dst for IPv6; icmp_id/icmp_type/icmp_code for ICMP), any subset of them;
    ``proto``: the original tuple's protocol, which a reply tuple's ports may rely on."""
    vals: dict[str, str] = {}
    for item in text.split(","):
        k, sep, v = item.partition("=")
        if not sep:
            raise CommandError(f"field {k} missing value {_INVAL}")
        vals[k.strip()] = v.strip()
    try:
        src_s = vals.pop("ct_nw_src", None) or vals.pop("ct_ipv6_src", None)
        dst_s = vals.pop("ct_nw_dst", None) or vals.pop("ct_ipv6_dst", None)
        src = ipaddress.ip_address(src_s).packed if src_s else None
        dst = ipaddress.ip_address(dst_s).packed if dst_s else None
        if "ct_nw_proto" in vals:
            proto = int(vals.pop("ct_nw_proto"), 0)
        sport = dport = None
        if proto in _ICMP:
            sport = int(vals.pop("icmp_id", "0"), 0)
            dport = int(vals.pop("icmp_type", "0"), 0) << 8 | int(vals.pop("icmp_code", "0"), 0)
        else:
            if "ct_tp_src" in vals:
                sport = int(vals.pop("ct_tp_src"), 0)
            if "ct_tp_dst" in vals:
                dport = int(vals.pop("ct_tp_dst"), 0)
    except ValueError as e:
        raise CommandError(f"invalid conntrack tuple ({e}) {_INVAL}") from None
    if vals:
        raise CommandError(f"invalid conntrack tuple field {sorted(vals)[0]} {_INVAL}")
    if src is not None and dst is not None and len(src) != len(dst):
        raise CommandError(f"invalid conntrack tuple (mixed address families) {_INVAL}")
    if proto is None and (sport is not None or dport is not None):
        raise CommandError(f"port is set without protocol {_INVAL}")
    return _TupleMatch(src, dst, proto, sport, dport)


@command("dpctl/flush-conntrack", "[dp] [zone=N] [ct-orig-tuple [ct-reply-tuple]]", 0, 4)
def flush_conntrack(req: Request) -> str:
    """As Open vSwitch 3.1: a full original tuple names one connection of the zone (0
    without zone=): an error if there is none; a partial one, or a reply tuple, flushes
    every connection whose tuples have the fields given (of the zone, or of every zone).
    On return the connections are gone from the datapath too (ebpf: its kernel table)."""
    dp_name: str | None = None
    zone: int | None = None
    tuples: list[_TupleMatch] = []
    for a in req.args:
        if a.startswith("zone="):
            zone = _zone(a[5:])
        elif a.startswith(("ct_", "icmp_")) and len(tuples) < 2:
            tuples.append(_parse_tuple(a, tuples[0].proto if tuples else None))
        elif dp_name is None and "=" not in a:
            dp_name = a
        else:
            raise CommandError(f"invalid argument {a} {_INVAL}")
    dps = _datapaths(req, dp_name)
    if len(tuples) == 1 and tuples[0].full():
        orig = tuples[0].tuple()
        if not sum(dp.ct_flush(zone=zone or 0, orig=orig) for dp in dps):
            raise CommandError("failed to flush conntrack (No such file or directory)")
    elif tuples:
        o, r = tuples[0], tuples[1] if len(tuples) > 1 else None
        for dp in dps:
            dp.ct_flush(zone=zone, where=lambda c: o.matches(c.orig)
                        and (r is None or r.matches(c.reply)))  # fmt: skip
    else:
        for dp in dps:
            dp.ct_flush(zone=zone)
    return ""


@command("dpctl/ct-stats-show", "[dp] [zone=N] [verbose]", 0, 3)
def ct_stats_show(req: Request) -> str:
    opts, dp_name, kv = _split(req, "-m")
    zone = _zone_arg(kv)
    totals: dict[str, int] = {}
    for dp in _datapaths(req, dp_name):
        dp.conntrack.expire(dp.ct_now())
        for k, v in dp.conntrack.stats(zone).items():
            totals[k] = totals.get(k, 0) + v
    total = sum(totals.get(p, 0) for p in STAT_ORDER)
    out = ["Connections Stats:", f"    Total: {total}"]
    # Open vSwitch 3.1 counts ICMPv6 and other protocols in the total only.
    for proto in ("TCP", "UDP", "SCTP", "ICMP"):
        if not totals.get(proto):
            continue
        out.append(f"  {proto}: {totals[proto]}")
        if proto == "TCP" and "-m" in opts:
            out.append("    Conn per TCP states:")
            for st in TCP_STATES:
                if totals.get(f"tcp:{st}"):
                    out.append(f"\t  [{st}]={totals[f'tcp:{st}']}")
    return _lines(out)


def _limit_args(kv: list[str], need_limit: bool) -> list[tuple[int | None, int]]:
    """[(zone or None for the default, limit)] from default=L and zone=N,limit=L."""
    out: list[tuple[int | None, int]] = []
    for a in kv:
        fields = dict(part.partition("=")[::2] for part in a.split(","))
        try:
            if "default" in fields and len(fields) == 1:
                out.append((None, int(fields["default"], 0)))
            elif set(fields) == {"zone", "limit"}:
                out.append((_zone(fields["zone"]), int(fields["limit"], 0)))
            else:
                raise ValueError
        except (ValueError, CommandError):
            raise CommandError(f"failed to parse zone limit {_INVAL}") from None
        if out[-1][1] < 0 or out[-1][1] > 0xFFFFFFFF:
            raise CommandError(f"failed to parse zone limit {_INVAL}")
    if need_limit and not out:
        raise CommandError(f"failed to parse zone limit {_INVAL}")
    return out


@command("dpctl/ct-set-limits", "[dp] [default=L] [zone=N,limit=L]...", 1, 64)
def ct_set_limits(req: Request) -> str:
    _, dp_name, kv = _split(req, "")
    limits = _limit_args(kv, True)  # every argument valid before anything changes
    for dp in _datapaths(req, dp_name):
        for zone, limit in limits:
            dp.conntrack.set_limit(zone, limit)
    return ""


def _zone_list(kv: list[str]) -> list[int]:
    zones: list[int] = []
    for a in kv:
        k, _, v = a.partition("=")
        if k != "zone":
            raise CommandError(f"failed to parse zone limit {_INVAL}")
        zones += [_zone(z) for z in v.split(",")]
    return zones


@command("dpctl/ct-get-limits", "[dp] [zone=N1[,N2]...]", 0, 2)
def ct_get_limits(req: Request) -> str:
    _, dp_name, kv = _split(req, "")
    zones = _zone_list(kv)
    dps = _datapaths(req, dp_name)
    ct = dps[0].conntrack if dps else None
    default = ct.limits.get(None, 0) if ct is not None else 0
    out = [f"default limit={default}"]
    if ct is not None:
        listed = zones or sorted(z for z in ct.limits if z is not None)
        for z in listed:
            count = sum(dp.conntrack.zone_count(z) for dp in dps)
            out.append(f"zone={z},limit={ct.limit_of(z)},count={count}")
    return _lines(out)


@command("dpctl/ct-del-limits", "[dp] zone=N1[,N2]...", 1, 2)
def ct_del_limits(req: Request) -> str:
    _, dp_name, kv = _split(req, "")
    zones = _zone_list(kv)
    for dp in _datapaths(req, dp_name):
        for z in zones:
            dp.conntrack.del_limit(z)
    return ""


@command("dpctl/ct-set-maxconns", "[dp] maxconns", 1, 2)
def ct_set_maxconns(req: Request) -> str:
    *dp_name, value = req.args
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= 0xFFFFFFFF:
        raise CommandError(f"maxconns missing or malformed {_INVAL}")
    for dp in _datapaths(req, dp_name[0] if dp_name else None):
        dp.conntrack.max_conns = n
    return "setting maxconns successful\n"


@command("dpctl/ct-get-maxconns", "[dp]", 0, 1)
def ct_get_maxconns(req: Request) -> str:
    dps = _datapaths(req, req.args[0] if req.args else None)
    return f"{dps[0].conntrack.max_conns if dps else 0}\n"


@command("dpctl/ct-get-nconns", "[dp]", 0, 1)
def ct_get_nconns(req: Request) -> str:
    total = 0
    for dp in _datapaths(req, req.args[0] if req.args else None):
        dp.conntrack.expire(dp.ct_now())
        total += len(dp.conntrack)
    return f"{total}\n"
