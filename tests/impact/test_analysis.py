"""The impact analysis on synthetic agent records: counts, gaps, disrupted time."""

from __future__ import annotations

from typing import Any

import pytest

from hitless.impact import analysis as an
from hitless.impact.analysis import ClassStats, ImpactResult, Phase, Window

RATE = 1000.0
T0 = 100.0  # traffic starts here (monotonic seconds)
WIN = Window(101.0, 101.2, (Phase("freeze", 101.05, 101.1),))


def tx(n: int, rate: float = RATE, t0: float = T0) -> list[dict[str, Any]]:
    return [{"ev": "tx", "seq": i, "t": t0 + i / rate} for i in range(n)]


def rx(
    seqs: list[int], delay: float = 0.001, rate: float = RATE, t0: float = T0, stream: int = 1
) -> list[dict[str, Any]]:
    """Arrivals in the order given; packet i sent at t0 + i/rate arrives ``delay`` later
    (or, for a repeated or out-of-order seq, at the next free moment after the previous)."""
    out: list[dict[str, Any]] = []
    last = 0.0
    for s in seqs:
        ts = t0 + s / rate
        t = max(ts + delay, last + 1e-6)
        last = t
        out.append({"ev": "rx", "stream": stream, "seq": s, "ts": ts, "t": t})
    return out


def test_clean_stream() -> None:
    st = an.udp_stream("a>b", tx(2000), rx(list(range(2000))), WIN)
    assert (st.sent, st.received, st.lost) == (2000, 2000, 0)
    assert st.duplicates == st.reordered == st.late == 0
    assert st.disrupted == 0.0 and st.disruptions == ()
    assert st.longest_gap == pytest.approx(0.001)
    assert st.worst_latency == pytest.approx(0.001)
    assert st.clean


def test_burst_loss_is_a_gap_and_disrupted_time() -> None:
    # 300 packets lost from the moment the operation starts (seq 1000 = T0 + 1.0)
    seqs = [s for s in range(2000) if not 1000 <= s < 1300]
    st = an.udp_stream("a>b", tx(2000), rx(seqs), WIN)
    assert st.lost == 300 and st.received == 1700
    assert st.disrupted == pytest.approx(0.3)
    assert len(st.disruptions) == 1
    a, b = st.disruptions[0]
    assert a == pytest.approx(0.0, abs=1e-9) and b == pytest.approx(0.3)
    assert st.longest_gap == pytest.approx(0.301)
    assert st.before_op == 0
    assert st.failures == {"lost": 300}
    assert len(st.failed_at) == 300 and st.failed_at[0] == pytest.approx(0.0, abs=1e-9)
    assert not st.clean


def test_loss_before_the_operation_is_noise() -> None:
    # seq 10 is sent 0.99 s before the operation, 1100 during it, 2900 long after it
    seqs = [s for s in range(3000) if s not in (10, 1100, 2900)]
    st = an.udp_stream("a>b", tx(3000), rx(seqs), WIN, margin=0.5)
    assert st.lost == 3 and st.before_op == 1
    assert len(st.disruptions) == 3


def test_no_packets_at_all() -> None:
    st = an.udp_stream("a>b", [], [], WIN)
    assert (st.sent, st.received, st.lost, st.longest_gap, st.disrupted) == (0, 0, 0, 0.0, 0.0)
    assert st.worst_latency is None and st.median_latency is None
    assert st.clean


def test_all_lost() -> None:
    st = an.udp_stream("a>b", tx(500), [], WIN)
    assert st.lost == 500 and st.received == 0
    assert st.longest_gap == pytest.approx(0.499)
    assert st.disrupted == pytest.approx(0.5)  # 499 inter-packet slots + 1 median slot
    assert st.worst_latency is None


def test_a_sender_that_did_not_run_is_not_the_switchs_gap() -> None:
    # the sender sent nothing for 200 ms (packets 1000.. leave 0.2 s late); the switch
    # forwarded every datagram 1 ms after it left
    sent = tx(1000) + tx(1000, t0=T0 + 1.2)
    for i, r in enumerate(sent):
        r["seq"] = i
    got = [{"ev": "rx", "stream": 1, "seq": r["seq"], "ts": r["t"], "t": r["t"] + 0.001}
           for r in sent]  # fmt: skip
    st = an.udp_stream("a>b", sent, got, WIN)
    assert st.lost == 0
    assert st.longest_gap == pytest.approx(0.001)


def test_a_receiver_that_did_not_run_is_not_the_switchs_gap() -> None:
    # the receiving process read nothing for 150 ms, the kernel had every datagram 1 ms
    # after it left (tk); without tk the same records are a 150 ms gap
    got = rx(list(range(2000)))
    for r in got:
        r["tk"] = r["t"]
        if 1.0 <= r["ts"] - T0 < 1.15:
            r["t"] = T0 + 1.15
    with_tk = an.udp_stream("a>b", tx(2000), got, WIN)
    assert with_tk.longest_gap == pytest.approx(0.001)
    assert with_tk.worst_latency == pytest.approx(0.001)
    without = an.udp_stream("a>b", tx(2000), [{k: v for k, v in r.items() if k != "tk"}
                                              for r in got], WIN)  # fmt: skip
    assert without.longest_gap == pytest.approx(0.15, abs=0.002)


def test_gap_net_takes_out_the_machines_stalls() -> None:
    # 300 datagrams lost from T0 + 1.0; a CPU ran nothing from T0 + 1.05 to T0 + 1.15
    seqs = [s for s in range(2000) if not 1000 <= s < 1300]
    stalls = an.cpu_stalls([[{"ev": "stall", "from": T0 + 1.05, "t": T0 + 1.15}],
                            [{"ev": "stall", "from": T0 + 1.1, "t": T0 + 1.12}, {"ev": "x"}]])  # fmt: skip
    assert stalls == ((T0 + 1.05, T0 + 1.15),)
    st = an.udp_stream("a>b", tx(2000), rx(seqs), WIN, stalls=stalls)
    assert st.longest_gap == pytest.approx(0.301)
    assert st.gap_net == pytest.approx(0.201)
    assert an.net_gap([0.0, 0.1, 0.5], [(0.2, 0.3)]) == pytest.approx(0.3)
    assert an.net_gap([0.0], [(0.2, 0.3)]) == 0.0


def test_reorder_and_duplicates() -> None:
    seqs = [0, 1, 3, 2, 4, 4, 5, 7, 6, 8, 9, 9, 9]
    st = an.udp_stream("a>b", tx(10), rx(seqs), WIN)
    assert st.received == 10 and st.lost == 0
    assert st.reordered == 2  # 2 after 3, 6 after 7
    assert st.duplicates == 3
    assert not st.clean


def test_late_packets_are_disrupted_but_not_lost() -> None:
    fast = rx(list(range(0, 100)))
    slow = rx(list(range(100, 110)), delay=0.2)
    rest = rx(list(range(110, 200)), delay=0.2 + 1e-3)
    st = an.udp_stream("a>b", tx(200), fast + slow + rest, WIN, late_after=0.05)
    assert st.lost == 0 and st.late == 100
    assert st.disrupted == pytest.approx(0.1)
    assert st.worst_latency == pytest.approx(0.201)


def test_stream_filter_and_foreign_records() -> None:
    recs = rx(list(range(10)), stream=1) + rx(list(range(5)), stream=2) + [{"ev": "other"}]
    st = an.udp_stream("a>b", tx(10), recs, WIN, stream=1)
    assert st.received == 10 and st.duplicates == 0


def test_send_errors_are_reported_as_lost_with_their_reason() -> None:
    sent = tx(10)
    sent[4] = {**sent[4], "err": "unreachable"}
    st = an.udp_stream("a>b", sent, rx([s for s in range(10) if s != 4]), WIN)
    assert st.lost == 1 and st.failures == {"unreachable": 1}


def test_broadcast_adds_receivers() -> None:
    sent = tx(100, rate=100.0)
    full = rx(list(range(100)), rate=100.0)
    holes = rx([s for s in range(100) if s not in (50, 51)], rate=100.0)
    st = an.broadcast("bcast", sent, {"b": full, "c": holes}, WIN)
    assert st.kind == "broadcast"
    assert (st.sent, st.received, st.lost) == (200, 198, 2)
    assert st.disrupted == pytest.approx(0.02)
    # from the send of the first lost one (50) to the arrival of 52: 20 ms + 1 ms delay
    assert st.longest_gap == pytest.approx(0.021)


def test_broadcast_without_receivers() -> None:
    st = an.broadcast("bcast", tx(10), {}, WIN)
    assert (st.sent, st.received, st.lost) == (0, 0, 0)


def stream_records(
    n: int, stall: tuple[int, int] | None = None, error: str | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A long-lived connection: n messages every 10 ms; messages in ``stall`` are held
    and all arrive together at the stall's end."""
    client: list[dict[str, Any]] = [{"ev": "connected", "t": T0 - 0.01, "t0": T0 - 0.011}]
    server: list[dict[str, Any]] = []
    for i in range(n):
        ts = T0 + i * 0.01
        client.append({"ev": "tx", "seq": i, "t": ts})
        t = ts + 0.001
        if stall and stall[0] <= i < stall[1]:
            t = T0 + stall[1] * 0.01 + 0.001
        server.append({"ev": "rx", "seq": i, "ts": ts, "t": t})
        client.append({"ev": "echo", "seq": i, "ts": ts, "t": t + 0.001})
    if error:
        client.append({"ev": "error", "t": T0 + n * 0.01, "kind": error})
    client.append({"ev": "end", "t": T0 + n * 0.01, "state": error or "open"})
    return client, server


def test_tcp_stream_survives_clean() -> None:
    c, s = stream_records(300)
    st = an.tcp_stream("tcp", c, s, WIN)
    assert st.outcome == "survived" and st.clean
    assert (st.sent, st.received, st.lost) == (300, 300, 0)
    assert st.longest_gap == pytest.approx(0.01)


def test_tcp_stream_stall() -> None:
    c, s = stream_records(300, stall=(100, 130))
    st = an.tcp_stream("tcp", c, s, WIN)
    assert st.outcome == "survived"
    assert st.lost == 0
    assert st.longest_gap == pytest.approx(0.31)
    assert st.late > 0
    assert st.disrupted == pytest.approx(0.3, abs=0.06)


def test_tcp_stream_reset() -> None:
    c, s = stream_records(100, error="reset")
    c.append({"ev": "tx", "seq": 100, "t": T0 + 1.0})  # never echoed
    st = an.tcp_stream("tcp", c, s, WIN)
    assert st.outcome == "reset" and not st.clean
    assert st.lost == 1 and st.failures == {"reset": 1, "unechoed": 1}


def test_tcp_stream_never_connected() -> None:
    st = an.tcp_stream("tcp", [{"ev": "error", "t": T0, "kind": "refused"}], [], WIN)
    assert st.outcome == "not-connected" and st.sent == 0 and not st.clean


def conn(i: int, latency: float | None, result: str = "ok") -> dict[str, Any]:
    t0 = T0 + i * 0.02
    return {
        "ev": "conn",
        "i": i,
        "t0": t0,
        "t": None if latency is None else t0 + latency,
        "result": result,
    }


def test_tcp_connect() -> None:
    recs = [conn(i, 0.0005) for i in range(100)]
    recs[50] = conn(50, 1.001)  # needed a SYN retransmission
    recs[51] = conn(51, 3.0, "timeout")
    recs[52] = conn(52, 0.001, "refused")
    st = an.tcp_connect("conn", recs, WIN)
    assert (st.sent, st.received, st.lost) == (100, 98, 2)
    assert st.failures == {"timeout": 1, "refused": 1}
    assert st.worst_latency == pytest.approx(1.001)
    assert st.median_latency == pytest.approx(0.0005)
    assert st.late == 1
    assert st.disrupted == pytest.approx(0.06)
    assert st.failed_at == (pytest.approx(0.02), pytest.approx(0.04))


def test_tcp_connect_empty() -> None:
    st = an.tcp_connect("conn", [{"ev": "end", "t": T0, "count": 0}], WIN)
    assert (st.sent, st.lost, st.worst_latency) == (0, 0, None) and st.clean


def probe(i: int, family: int, rtt: float | None, result: str = "ok") -> dict[str, Any]:
    t0 = T0 + i * 0.25
    return {
        "ev": "probe",
        "i": i,
        "family": family,
        "t0": t0,
        "t": None if rtt is None else t0 + rtt,
        "result": result,
    }


def test_neighbour_probes() -> None:
    recs = [probe(i, 6, 0.002) for i in range(10)]
    recs[4] = probe(4, 6, None, "timeout")
    st = an.neighbour("nd", recs, WIN)
    assert st.kind == "nd"
    assert (st.sent, st.received, st.lost) == (10, 9, 1)
    assert st.worst_latency == pytest.approx(0.002)
    assert st.failures == {"timeout": 1}
    assert an.neighbour("arp", [probe(0, 4, 0.001)], WIN).kind == "arp"


def test_merge_intervals() -> None:
    assert an.merge_intervals([(3, 4), (0, 1), (1, 2), (0.5, 1.5)]) == ((0, 2), (3, 4))
    assert an.merge_intervals([]) == ()


def test_window_must_not_end_before_it_starts() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        Window(2.0, 1.0)


def test_result_json_round_trip() -> None:
    seqs = [s for s in range(2000) if not 1000 <= s < 1300]
    st = an.udp_stream("a>b", tx(2000), rx(seqs), WIN)
    res = ImpactResult(
        "link-down",
        an.relative(WIN),
        (st, ClassStats("x", "arp", 1, 1, 0)),
        duration=2.0,
        traffic_start=-1.0,
    )
    back = ImpactResult.from_json(res.to_json(series=True))
    assert back == res
    short = ImpactResult.from_json(res.to_json())
    assert short.by_name("a>b").lost == 300 and short.by_name("a>b").arrivals == ()
    assert res.window.phases[0].start == pytest.approx(0.05)
    assert not res.clean


def session(
    conn: int,
    start: float,
    end: float,
    rtt: float = 0.001,
    interval: float = 0.02,
    stall: tuple[float, float] | None = None,
    down: str | None = None,
    unanswered: int = 0,
) -> list[dict[str, Any]]:
    """One controller session: connected and features at ``start``, an echo request
    every ``interval`` until ``end``; ones sent inside ``stall`` are answered at its
    end; the last ``unanswered`` are never answered; ``down``: how it ended at ``end``."""
    recs: list[dict[str, Any]] = [
        {"ev": "connected", "t": start - 0.002, "conn": conn, "retries": 0},
        {"ev": "features", "t": start, "conn": conn},
    ]
    n = int(round((end - start) / interval))
    for i in range(n):
        t = start + i * interval
        recs.append({"ev": "echo-tx", "xid": i + 2, "t": t, "conn": conn})
        if i >= n - unanswered:
            continue
        back = stall[1] if stall and stall[0] <= t < stall[1] else t + rtt
        recs.append({"ev": "echo-rx", "xid": i + 2, "t": back, "conn": conn})
    if down:
        recs.append({"ev": "disconnected", "t": end, "kind": down, "conn": conn})
    return sorted(recs, key=lambda r: r["t"])


def test_controller_connected_throughout() -> None:
    st = an.controller("ctl", session(1, T0, T0 + 3.0), WIN)
    assert st.kind == "controller" and st.outcome == "survived" and st.clean
    assert (st.sent, st.received, st.lost, st.late) == (150, 150, 0, 0)
    assert st.longest_gap == pytest.approx(0.02)
    assert st.worst_latency == pytest.approx(0.001)
    assert st.failures == {} and st.disruptions == ()


def test_controller_echoes_wait_through_a_freeze_without_a_disconnect() -> None:
    st = an.controller("ctl", session(1, T0, T0 + 3.0, stall=(101.05, 101.16)), WIN)
    assert st.outcome == "survived" and st.lost == 0
    assert st.late == 3  # sent at 101.06, 101.08, 101.10: answered more than 50 ms late
    assert st.longest_gap == pytest.approx(0.119)  # from the reply at 101.041 to 101.16
    assert st.worst_latency == pytest.approx(0.10)
    assert st.disruptions == (pytest.approx((0.06, 0.12)),)
    assert not st.clean


def test_controller_restart_disconnects_and_reconnects() -> None:
    recs = session(1, T0, 101.1, down="reset", unanswered=1)
    recs += [{"ev": "connect-failed", "t": 101.101, "kind": "refused"}]
    # the restarting switch accepts one connection and drops it before the features
    recs += [
        {"ev": "connected", "t": 101.3, "conn": 2, "retries": 9},
        {"ev": "disconnected", "t": 101.31, "kind": "closed", "conn": 2},
    ]
    recs += session(3, 101.6, 103.0)
    st = an.controller("ctl", recs, WIN)
    assert st.outcome == "1 disconnect, reconnected after 500 ms" and not st.clean
    assert st.failures == {"reset": 1, "unanswered": 1, "closed before features": 1}
    assert st.lost == 1
    assert st.disruptions[0][0] == pytest.approx(0.08)  # the unanswered echo's slot
    assert st.disruptions[-1][1] == pytest.approx(0.6)  # until the new features reply
    assert st.disrupted == pytest.approx(0.52)
    assert st.longest_gap == pytest.approx(101.601 - 101.061)  # reply to reply
    assert 0.1 in [pytest.approx(x) for x in st.failed_at]


def test_controller_two_disconnects_report_the_longest_reconnect() -> None:
    recs = session(1, T0, 101.0, down="closed")
    recs += session(2, 101.2, 101.5, down="reset")
    recs += session(3, 101.9, 103.0)
    st = an.controller("ctl", recs, WIN)
    assert st.outcome == "2 disconnects, reconnected after 400 ms"
    assert st.failures == {"closed": 1, "reset": 1}


def test_controller_not_reconnected_and_never_connected() -> None:
    recs = session(1, T0, 101.1, down="closed") + [{"ev": "end", "t": 103.0, "sessions": 1}]
    st = an.controller("ctl", recs, WIN)
    assert st.outcome == "1 disconnect, not reconnected"
    assert st.disruptions[-1][1] == pytest.approx(2.0)  # disconnected to the end
    st = an.controller("ctl", [{"ev": "connect-failed", "t": T0, "kind": "refused"}], WIN)
    assert st.outcome == "not-connected" and st.sent == 0 and not st.clean


def test_controller_result_json_round_trip() -> None:
    st = an.controller("ctl", session(1, T0, 101.1, down="reset") + session(2, 101.5, 103), WIN)
    res = ImpactResult("restart", an.relative(WIN), (st,), duration=3.0, traffic_start=-1.0)
    assert ImpactResult.from_json(res.to_json(series=True)) == res


def test_controller_counts_only_echoes_inside_the_traffic_span() -> None:
    st = an.controller("ctl", session(1, T0 - 1.0, T0 + 4.0), WIN, span=(T0, T0 + 3.0))
    assert st.sent == 151 and st.received == 151  # 100.00 .. 103.00 inclusive
    assert min(st.arrivals) >= T0 - WIN.start


def test_what_the_switch_held_not_what_the_sender_did() -> None:
    # the sender was descheduled 100 ms after taking the time of datagram 100 (its
    # sendto returned late) and sent the ones due meanwhile in a burst: the switch
    # held nothing, though the receiver saw a 100 ms gap and datagram 100 was "late"
    sent = tx(300)
    for r in sent:
        due = r["t"]
        r["t"] = due if r["seq"] <= 100 else max(due, T0 + 0.2)
        r["u"] = T0 + 0.2 if r["seq"] == 100 else r["t"] + 0.0002
    arrivals = []
    for r in sent:
        at = r["u"] + 0.0003
        arrivals.append({"ev": "rx", "stream": 1, "seq": r["seq"], "ts": r["t"], "t": at})
    st = an.udp_stream("a>b", sent, arrivals, WIN)
    assert st.held_listed and st.held == () and st.slow == ()
    assert st.longest_gap > 0.09 and st.worst_latency is not None and st.worst_latency > 0.09
    # the switch held datagrams 200.. for 100 ms (sent on time, delivered in a burst)
    arrivals = rx(list(range(300)))
    for r in arrivals:
        if 200 <= r["seq"] < 300:
            r["t"] = max(r["t"], T0 + 0.3)
    st = an.udp_stream("a>b", tx(300), arrivals, WIN)
    ((a, b),) = st.held
    assert (a, b) == pytest.approx((T0 + 0.2 - WIN.start, T0 + 0.3 - WIN.start))
    assert len(st.slow) == 90  # 200..289 waited more than 10 ms
