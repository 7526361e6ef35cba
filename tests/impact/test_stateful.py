"""The ``stateful`` class of ``hitless impact`` (hitless.impact.stateful): its rules and
readings (pure), its agents on loopback (``udp-duplex``, ``tcp-push``), its analysis,
and a real run side by side: ``hitless upgrade`` keeps every connection through the
firewall and the DNAT (nothing lost, nothing dropped by the firewall, the zone's
connections listed before and after) where Open vSwitch's ovs-ctl restart forgets
them (b's answers dropped as +new from outside, the TCP stream stalls)."""

from __future__ import annotations

import contextlib
import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hitless.impact import analysis as an
from hitless.impact import stateful
from hitless.impact.run import KNOWN_CLASSES, Rates, _plan
from tests.impact.test_cli import OwnRuns, nothing_left  # noqa: F401


class H:
    def __init__(self, name: str, ip: str) -> None:
        self.name, self.ns, self.ip = name, f"ns-{name}", ip


def test_rules_send_the_class_through_the_tracker_and_count_each_drop() -> None:
    ports = stateful.ct_ports(23440)
    assert ports == stateful.CtPorts(23450, 23451, 23452, 23453, 23454, 23455)
    assert stateful.vip("10.9.0.2/24") == "10.9.0.200"
    assert stateful.vip("10.9.0.200/24") == "10.9.0.199"  # never a host's own
    rules = stateful.stateful_rules(1, 2, "10.9.0.1/24", "10.9.0.2/24", ports)
    text = "\n".join(rules)
    # a's side may open (commit), b's side only answers; the DNAT to b's own ports
    assert f"ct_state=+trk+new,udp,in_port=1,actions=ct(commit,zone={stateful.ZONE})" in text
    assert "ct_state=+trk+est,in_port=2,actions=output:1" in text
    assert "nw_dst=10.9.0.200,tp_dst=23452,actions=ct(commit,zone=23,nat(dst=10.9.0.2:23453))" in text
    assert "nw_dst=10.9.0.200,tp_dst=23454,actions=ct(commit,zone=23,nat(dst=10.9.0.2:23455))" in text
    assert text.count("ct(table=71,zone=23,nat)") == 4 and text.count("ct(table=71,zone=23)") == 2
    for cookie in stateful.DROP_COOKIES.values():  # each drop rule alone, under ours_match()
        assert sum(f"cookie={cookie:#x}," in r for r in rules) == 1
        assert cookie & 0xFFFFFF00 == 0x484C4900
    # what ovs-ofctl dump-flows prints for them
    dump = "\n".join(
        f" cookie={c:#x}, duration=1.2s, table=71, n_packets={n}, n_bytes=0, priority=10 actions=drop"
        for c, n in zip(stateful.DROP_COOKIES.values(), (7, 0, 3), strict=True)
    )
    assert stateful.drop_counters(dump) == {"+new from outside": 7, "invalid": 0, "other": 3}
    assert stateful.drop_counters("") == dict.fromkeys(stateful.DROP_COOKIES)


def test_drop_reading_counts_from_the_operation_and_across_re_created_rules() -> None:
    z = dict.fromkeys(stateful.DROP_COOKIES, 0)
    kept = stateful.DropReading({**z, "+new from outside": 5}, {**z, "+new from outside": 5},
                                {**z, "+new from outside": 5})  # fmt: skip
    assert kept.dropped() == z
    assert "+new from outside 0, invalid 0, other 0" in kept.note()
    reset = stateful.DropReading({**z, "+new from outside": 5}, z, {**z, "+new from outside": 40})
    assert reset.dropped()["+new from outside"] == 40 and "re-created" in reset.note()
    gone = stateful.DropReading(z, dict.fromkeys(z), dict.fromkeys(z))
    assert gone.dropped() == dict.fromkeys(z) and "rule gone" in gone.note()


def test_conntrack_entries_are_the_zone_s_without_tcp_state() -> None:
    dump = "\n".join([
        "tcp,orig=(src=10.9.0.1,dst=10.9.0.200,sport=40000,dport=23452),reply=(src=10.9.0.2,"
        "dst=10.9.0.1,sport=23453,dport=40000),zone=23,protoinfo=(state=ESTABLISHED)",
        "udp,orig=(src=10.9.0.1,dst=10.9.0.2,sport=23450,dport=23451),reply=(src=10.9.0.2,"
        "dst=10.9.0.1,sport=23451,dport=23450),zone=23",
        "udp,orig=(src=10.9.0.1,dst=10.9.0.2,sport=1,dport=2),reply=(src=10.9.0.2,"
        "dst=10.9.0.1,sport=2,dport=1),zone=230",
    ])  # fmt: skip
    got = stateful.conntrack_entries(dump)
    assert len(got) == 2 and all("protoinfo" not in g for g in got) and got == sorted(got)
    # with -s: the same entries, and the seconds each has left
    with_s = dump.replace("zone=23,protoinfo", "zone=23,timeout=86399,protoinfo").replace(
        "sport=23451,dport=23450),zone=23", "sport=23451,dport=23450),zone=23,timeout=29"
    )
    assert stateful.conntrack_entries(with_s) == got
    assert sorted(stateful.conntrack_timeouts(with_s).values()) == [29, 86399]
    assert set(stateful.conntrack_timeouts(with_s)) == set(got)


def test_a_connection_gone_after_the_operation_is_forgotten_unless_it_may_have_expired() -> None:
    live, closed, udp = "tcp,orig=(live)", "tcp,orig=(closed)", "udp,orig=(u)"
    timeouts = {live: 86399, closed: 12, udp: 29}
    both = [live, closed, udp]
    kept = stateful.ConntrackReading(both, timeouts, both, both, 0.4)
    assert kept.kept() == sorted(both) and kept.forgotten() == [] and kept.expired() == []
    # a short operation: only what had less time left than it took may be gone
    short = stateful.ConntrackReading(both, timeouts, [], [live], 13.0)
    assert short.expired() == [closed] and short.forgotten() == sorted([live, udp])
    assert "3 before the operation, 0 of them still listed" in short.note()
    assert "1 gone that may have expired on their own, 2 forgotten" in short.note()
    # past the shortest timeout any of them may have closed and expired...
    long = stateful.ConntrackReading(both, timeouts, [udp], [udp], stateful.MIN_TIMEOUT + 4)
    assert long.expired() == sorted([live, closed]) and long.forgotten() == []
    # ... but not one listed again at the end: it was created again
    again = stateful.ConntrackReading(both, timeouts, [udp], [udp, live], stateful.MIN_TIMEOUT + 4)
    assert again.forgotten() == [live] and again.summary()["forgotten"] == [live]
    assert again.summary()["kept"] == 1 and again.summary()["expired"] == 1


def test_plan_opens_from_a_answers_from_b_through_the_vip(tmp_path: Path) -> None:
    assert "stateful" in KNOWN_CLASSES
    port = 23440
    hosts = [H("a", "10.9.0.1/24"), H("b", "10.9.0.2/24")]
    plan = _plan(hosts, ["udp", "tcp-stream", "tcp-connect", "openflow", "stateful"], Rates(),
                 tmp_path, run=7, port=port)  # fmt: skip
    by = {ag.label: ag for ag in plan.agents}

    def opt(label: str, name: str) -> str:
        args = by[label].args
        return args[args.index(name) + 1]

    ct = stateful.ct_ports(port)
    assert by["ct-udp-b"].listener and by["ct-udp-b"].host == "b"
    assert "--dst" not in by["ct-udp-b"].args  # b answers whoever opened it
    assert opt("ct-udp-a", "--dst") == "10.9.0.2" and opt("ct-udp-a", "--dport") == str(ct.udp_b)
    assert opt("ct-udp-a", "--port") == str(ct.udp_a) and float(opt("ct-udp-a", "--rate")) == 1.0
    assert by["ct-tcp-b"].listener and opt("ct-tcp-b", "--port") == str(ct.tcp_b)
    assert opt("ct-tcp-a", "--dst") == "10.9.0.200" and opt("ct-tcp-a", "--dport") == str(ct.tcp_vip)
    assert opt("ct-connect", "--dst") == "10.9.0.200"
    assert opt("ct-connect", "--port") == str(ct.connect_vip)
    assert opt("ct-accept", "--port") == str(ct.connect_b)
    # no port shared with another class's agents on the same host
    seen: dict[tuple[str, str], str] = {}
    for ag in plan.agents:
        for flag in ("--port", "--dport"):
            if flag in ag.args and ag.args[ag.args.index(flag) + 1] != "0":
                p = ag.args[ag.args.index(flag) + 1]
                key = (ag.host if flag == "--port" else "peer", p)
                if flag == "--port" and ag.listener:
                    assert key not in seen, (ag.label, seen.get(key))
                    seen[key] = ag.label
    streams = {opt(lb, "--stream") for lb in by if "--stream" in by[lb].args}
    assert len(streams) == len([lb for lb in by if "--stream" in by[lb].args])


AGENT = [sys.executable, "-m", "hitless.impact.agents"]


@contextlib.contextmanager
def _own_loopback() -> Iterator[list[str]]:
    """A namespace of the test's own, loopback up: the command prefix that runs there.
    The agents' fixed ports are then nobody else's (another checkout running this file
    at the same time bound the same ports on the machine's loopback)."""
    ns = f"hlstate-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, timeout=30)
        yield ["ip", "netns", "exec", ns]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def _agents(tmp_path: Path, answer: list[str], opener: list[str], duration: float,
            late: float = 0.0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Run an answering agent and its opener on loopback (their own namespace's);
    their records. ``late``: the opener's --start lies that far in the past when it
    starts (as if its interpreter had taken that long to come up)."""
    with _own_loopback() as here:
        return _agents_in(here, tmp_path, answer, opener, duration, late)


def _agents_in(here: list[str], tmp_path: Path, answer: list[str], opener: list[str],
               duration: float, late: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    agent = [*here, *AGENT]
    now = time.monotonic()
    a_out, b_out = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    b = subprocess.Popen([*agent, *answer, "--run", "5", "--duration", str(duration),
                          "--end", str(now + duration + 20), "--out", str(b_out)],
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert b.stderr is not None and b.stderr.readline().strip() == "ready"
        start = time.monotonic() + (0.2 if late == 0.0 else -late)
        a = subprocess.run([*agent, *opener, "--run", "5", "--start", str(start),
                            "--duration", str(duration), "--out", str(a_out)],
                           timeout=duration + 30, capture_output=True, text=True)  # fmt: skip
        assert a.returncode == 0, a.stderr
        if answer[0] == "udp-duplex":  # it reads until --end or SIGTERM: a is done
            b.send_signal(signal.SIGTERM)
        b.wait(timeout=duration + 30)
    finally:
        if b.poll() is None:
            b.kill()
            b.wait()
    read = [[json.loads(x) for x in p.read_text().splitlines()] for p in (a_out, b_out)]
    return read[0], read[1]


def _answerer_ends_with_the_opener(a: list[dict[str, Any]], b: list[dict[str, Any]],
                                   rate: float, duration: float) -> None:
    """The answerer's datagrams were due (its schedule: its own start + n/rate) up to
    the opener's end (the opener's start, its first datagram's send time, + duration)
    and not past it. Due times, not send times: a loaded machine sends a datagram late
    (at load 25, 2.3 ms after it was due, past the end) but not at another slot."""
    (a_start,) = [r["t"] for r in a if r["ev"] == "start"]
    (b_start,) = [r["t"] for r in b if r["ev"] == "start"]
    first = min(r["ts"] for r in b if r["ev"] == "rx")
    assert first == a_start  # the send time the answerer counts from
    n = sum(r["ev"] == "tx" for r in b)
    interval = 1.0 / rate  # the agent's own arithmetic, so the comparison is exact
    last_due = b_start + (n - 1) * interval
    assert last_due < a_start + duration <= b_start + n * interval, (a_start, b_start, n)


@pytest.mark.netns
def test_udp_duplex_answers_the_opener_on_its_own_port(tmp_path: Path) -> None:
    a, b = _agents(
        tmp_path,
        ["udp-duplex", "--bind", "127.0.0.1", "--port", "23461", "--rate", "200", "--stream", "9"],
        ["udp-duplex", "--bind", "127.0.0.1", "--port", "23460", "--dst", "127.0.0.1",
         "--dport", "23461", "--rate", "20", "--stream", "8", "--linger", "0.5"],
        1.0,
    )  # fmt: skip
    w = an.Window(time.monotonic() - 100, time.monotonic() - 99)
    ab = an.udp_stream("ab", a, b, w, kind="ct-udp")
    ba = an.udp_stream("ba", b, a, w, kind="ct-udp")
    assert ab.sent == 20 and ab.lost == 0, ab  # 1 s at 20/s, paced by the clock
    assert ba.sent > 0 and ba.lost == 0, ba
    _answerer_ends_with_the_opener(a, b, 200, 1.0)
    assert {r["stream"] for r in a if r["ev"] == "rx"} == {9}


@pytest.mark.netns
def test_udp_duplex_opener_reads_until_the_answerer_s_last_datagram(tmp_path: Path) -> None:
    """The class's opener sends once a second: its last datagram (at 2 s) leaves long
    before the end (2.9 s) and the answerer sends until that end. The opener must read
    --linger (0.6 s) past the end, not past its last datagram (it did, and lost the
    answerer's tail: 1-5 datagrams of 6,000 per run through a switch, the first
    datagram's transit time's worth; here the answers due in 2.6-2.9 s, 60 of them).
    The linger is also how late the answerer may send its last datagram before the
    opener has gone (on a loaded machine a process waits for a core)."""
    a, b = _agents(
        tmp_path,
        ["udp-duplex", "--bind", "127.0.0.1", "--port", "23463", "--rate", "200", "--stream", "9"],
        ["udp-duplex", "--bind", "127.0.0.1", "--port", "23464", "--dst", "127.0.0.1",
         "--dport", "23463", "--rate", "1", "--stream", "8", "--linger", "0.6"],
        2.9,
    )  # fmt: skip
    w = an.Window(time.monotonic() - 100, time.monotonic() - 99)
    ba = an.udp_stream("ba", b, a, w, kind="ct-udp")
    assert ba.lost == 0, ba
    # both sides end together: the answerer counts its duration from the opener's
    # first send time (in the datagram), not from when it read it
    _answerer_ends_with_the_opener(a, b, 200, 2.9)
    # and the answers an opener reading only --linger past its own last datagram would
    # have missed were sent, and read
    a_last = max(r["t"] for r in a if r["ev"] == "tx")
    tail = {r["seq"] for r in b if r["ev"] == "tx" and r["t"] > a_last + 0.6}
    assert tail and tail <= {r["seq"] for r in a if r["ev"] == "rx"}, (len(tail), a_last)


@pytest.mark.netns
def test_tcp_push_sends_from_the_accepting_side(tmp_path: Path) -> None:
    a, b = _agents(
        tmp_path,
        ["tcp-push", "--bind", "127.0.0.1", "--port", "23462", "--interval", "0.01",
         "--linger", "2"],
        ["tcp-push", "--port", "0", "--dst", "127.0.0.1", "--dport", "23462", "--linger", "2"],
        1.0,
    )  # fmt: skip
    assert not any(r["ev"] == "tx" for r in a), "the opener must only read"
    w = an.Window(time.monotonic() - 100, time.monotonic() - 99)
    c = an.tcp_push("push", b, a, w)
    assert 80 <= c.sent <= 110 and c.lost == 0 and c.outcome == "survived", c
    # a stream that stopped arriving is "stalled", whatever the sender believed
    cut = [r for r in a if not (r["ev"] == "rx" and r["seq"] > 50) and r["ev"] != "end"]
    cut.append({"ev": "end", "t": time.monotonic(), "state": "stalled"})
    bad = an.tcp_push("push", b, cut, w)
    assert bad.lost > 0 and bad.outcome == "stalled" and bad.failures["stalled"] == 1, bad
    reset = an.tcp_push("push", [*b, {"ev": "error", "t": 0.0, "kind": "reset"}], a, w)
    assert reset.outcome == "reset"


@pytest.mark.netns
def test_tcp_push_opener_that_connects_late_reads_the_whole_stream(tmp_path: Path) -> None:
    """The sender counts its duration from the accept, so the opener waits for the
    stream's end from its connect, not from --start: an opener that reached its start
    late (at load 25 the interpreter took 2-12 s to come up, longer than the runner's
    head start) connected past --start + --duration + --linger, gave up at once and
    closed on unread data, and the sender saw a reset after 0-76 of 100 messages."""
    a, b = _agents(
        tmp_path,
        ["tcp-push", "--bind", "127.0.0.1", "--port", "23465", "--interval", "0.01",
         "--linger", "2"],
        ["tcp-push", "--port", "0", "--dst", "127.0.0.1", "--dport", "23465", "--linger", "2"],
        1.0,
        late=5.0,  # past --duration + --linger
    )  # fmt: skip
    w = an.Window(time.monotonic() - 100, time.monotonic() - 99)
    c = an.tcp_push("push", b, a, w)
    assert c.sent == 100 and c.lost == 0 and c.outcome == "survived", c


@pytest.mark.netns
@pytest.mark.timeout(720)  # its run's own 600 s and a minute to clean up (load 23-27: > 300 s)
def test_upgrade_keeps_every_connection_where_ovs_restart_drops_them(
    tmp_path: Path,
    nothing_left: OwnRuns,  # noqa: F811
) -> None:
    out = tmp_path / "r.json"
    # flow-restore is ovs-ctl's restart on Open vSwitch (and its imitation on hitless)
    r = nothing_left.impact("--switch", "both", "--ops", "upgrade,flow-restore", "--hosts", "2",
                            "--duration", "6", "--at", "1.5", "--after", "3",
                            "--classes", "stateful", "--json", str(out), timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    by = {res["operation"]: res for res in json.loads(out.read_text())["results"]}
    ours, theirs = by["hitless upgrade"], by["OVS ovs-ctl restart (flow-restore-wait)"]
    kinds = {c["kind"] for c in ours["classes"]}
    assert kinds == set(an.STATEFUL_KINDS)
    for c in ours["classes"]:
        assert c["sent"] > 0 and c["lost"] == 0 and c["duplicates"] == 0, c
    (push,) = [c for c in ours["classes"] if c["kind"] == "ct-tcp-stream"]
    assert push["outcome"] == "survived", push
    st = ours["settings"]["stateful"]
    assert st["drops"] == dict.fromkeys(stateful.DROP_COOKIES, 0), st
    assert len(st["conntrack"]["before"]) >= 3, st  # udp, the stream, new connections
    # every connection listed before is still listed after, but those that may have
    # expired on their own during a slow operation (closed ones: 30 s; seen at load 21)
    assert st["conntrack"]["forgotten"] == [], st
    assert st["conntrack"]["kept"] + st["conntrack"]["expired"] == len(st["conntrack"]["before"])
    assert st["conntrack"]["kept"] >= 2, st  # at least the UDP connection and the stream
    # the same traffic, rules and operation window on Open vSwitch: its userspace
    # conntrack is gone with the process, so b's answers are +new from outside
    ovs = theirs["settings"]["stateful"]
    assert ovs["drops"]["+new from outside"] > 0, ovs
    assert ovs["conntrack"]["forgotten"], ovs
    (push,) = [c for c in theirs["classes"] if c["kind"] == "ct-tcp-stream"]
    assert push["outcome"] != "survived" and push["lost"] > 0, push
    (ba,) = [c for c in theirs["classes"] if c["name"] == "ct udp b→a"]
    assert ba["lost"] > 0, ba
