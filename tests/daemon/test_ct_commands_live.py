"""The dpctl conntrack commands side by side with real Open vSwitch 3.1 on live traffic:
the same namespace hosts, the same stock ovs-ofctl firewall rules (tests/handoff/
test_ct_upgrade.py's, zone 9), the same ping, UDP datagram and TCP connection (fixed
ports) through each switch's netdev datapath, then the same ovs-appctl commands on
each (dump-conntrack and its -m/-s forms, ct-stats-show [-m], ct-set/get/del-limits,
maxconns/nconns, flush-conntrack by zone, by partial and full tuple, its errors). The
outputs must be identical once the hosts' addresses and the ping's ICMP id (the only
things that differ between the two runs) are replaced by names, and the seconds each
connection has left (-s) by T. On ebpf, a flush reaches the kernel's table before the
command returns."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hitless.impact.switches import HitlessSwitch, OvsSwitch, SwitchError
from hitless.impact.topology import Host, Topology
from tests.handoff.test_ct_upgrade import _rules

pytestmark = pytest.mark.netns

# Limits before the traffic: see test_a_limit_set_on_a_busy_zone_counts_every_connection.
BEFORE = [["dpctl/ct-set-limits", "default=100", "zone=9,limit=10"]]
AFTER = [
    ["dpctl/dump-conntrack"], ["dpctl/dump-conntrack", "-m"], ["dpctl/dump-conntrack", "-s"],
    ["dpctl/dump-conntrack", "zone=9"], ["dpctl/dump-conntrack", "zone=8"],
    ["dpctl/ct-stats-show"], ["dpctl/ct-stats-show", "-m"], ["dpctl/ct-stats-show", "zone=9"],
    ["dpctl/ct-get-limits"], ["dpctl/ct-get-limits", "zone=9,4"],
    ["dpctl/ct-get-maxconns"], ["dpctl/ct-get-nconns"],
    ["dpctl/flush-conntrack", "zone=9", "ct_tp_src=1"],  # a port without a protocol
    ["dpctl/flush-conntrack", "zone=9", "ct_nw_src=A,ct_nw_dst=B,ct_nw_proto=17,ct_tp_src=1,ct_tp_dst=2"],
    ["dpctl/flush-conntrack", "zone=8", "ct_nw_src=A"],  # another zone: nothing
    ["dpctl/flush-conntrack", "zone=9", "ct_nw_proto=1"],  # ICMP compares id/type/code
    ["dpctl/dump-conntrack"],
    ["dpctl/flush-conntrack", "zone=9", "ct_nw_proto=17,ct_tp_src=5555"],  # partial tuple
    ["dpctl/dump-conntrack"],
    ["dpctl/flush-conntrack", "ct_nw_proto=17", "ct_nw_src=B"],  # a reply tuple, any zone
    ["dpctl/dump-conntrack"],
    ["dpctl/ct-del-limits", "zone=9"], ["dpctl/ct-get-limits"],
    ["dpctl/flush-conntrack"], ["dpctl/dump-conntrack"], ["dpctl/ct-stats-show"],
]  # fmt: skip


def _traffic(a, b) -> None:  # type: ignore[no-untyped-def]
    bip = b.ip.split("/")[0]
    for sport in (5555, 5556):
        a.run("python3", "-c", "import socket; s = socket.socket(2, 2); "
              f"s.bind(('', {sport})); s.sendto(b'x', ('{bip}', 6666))")  # fmt: skip
    srv = subprocess.Popen(
        ["ip", "netns", "exec", b.ns, "python3", "-c",
         "import socket; l = socket.socket(); l.setsockopt(1, 2, 1); l.bind(('', 7777)); "
         "l.listen(); print('ready', flush=True); c, _ = l.accept(); c.recv(10); c.close()"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "ready"
        # the server closes first: a waits for its end of stream, then closes
        a.run("python3", "-c", "import socket; s = socket.socket(); s.bind(('', 4444)); "
              f"s.connect(('{bip}', 7777)); s.send(b'hi'); s.settimeout(10); s.recv(10)")  # fmt: skip
        srv.wait(timeout=20)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    # last: its connection lasts 30 s after the reply, on a loaded machine not much more
    # than the rest of the traffic takes
    assert a.ping(bip, count=1)


@contextmanager
def _firewall(
    kind: str, datapath: str = "netdev"
) -> Iterator[tuple[HitlessSwitch | OvsSwitch, Host, Host, str, str]]:
    """A switch (hitless on ``datapath``, or Open vSwitch netdev) whose bridge joins two
    hosts through the firewall's rules: (switch, a, b, a's address, b's address)."""
    with Topology(2) as topo:
        sw = HitlessSwitch(netns=topo.switch_ns) if kind == "hitless" else OvsSwitch(netns=topo.switch_ns)
        try:
            if kind == "hitless":
                sw.datapath_type = datapath
            sw.start()
            sw.add_bridge(topo.ports)
            a, b = topo.hosts
            sw.ofctl("del-flows")
            for r in _rules(sw.ofport(a.port), sw.ofport(b.port)):
                sw.ofctl("add-flow", r)
            yield sw, a, b, a.ip.split("/")[0], b.ip.split("/")[0]
        finally:
            sw.close()


def _outputs(kind: str, before: list[list[str]], after: list[list[str]]) -> list[str]:
    with _firewall(kind) as (sw, a, b, aip, bip):

        def run(cmd: list[str]) -> str:
            args = [c.replace("=A", f"={aip}").replace("=B", f"={bip}") for c in cmd]
            try:
                out = sw.appctl(*args)
            except SwitchError as e:  # the daemon's error line (Open vSwitch's dpctl
                # starts it with its program name, hitless's does not)
                out = "error: " + str(e).splitlines()[1].removeprefix("ovs-vswitchd: ")
            out = out.replace(aip, "A").replace(bip, "B")
            out = re.sub(r",timeout=\d+", ",timeout=T", out)  # seconds left: a clock's
            return re.sub(r"id=\d+,type=", "id=ID,type=", out)

        outs = [run(c) for c in before]
        _traffic(a, b)
        return outs + [run(c) for c in after]


def _compare(before: list[list[str]], after: list[list[str]]) -> None:
    ours, theirs = _outputs("hitless", before, after), _outputs("ovs", before, after)
    diffs = [
        f"ovs-appctl {' '.join(cmd)}\n--- hitless\n{o}--- Open vSwitch\n{t}"
        for cmd, o, t in zip(before + after, ours, theirs, strict=True)
        if sorted(o.splitlines()) != sorted(t.splitlines())  # OVS lists in hash order
    ]
    assert not diffs, "\n".join(diffs)
    assert "tcp," in theirs[len(before)] and "udp," in theirs[len(before)]  # there was traffic


def test_conntrack_commands_print_what_open_vswitch_prints() -> None:
    _compare(BEFORE, AFTER)


def test_a_limit_set_on_a_busy_zone_counts_every_connection() -> None:
    """A known difference: Open vSwitch counts against a zone's limit only the
    connections committed after the limit was set (count=0 right after setting it on a
    zone with four connections); hitless counts, and limits, every connection of the
    zone. Same output once the limit predates the traffic (the test above)."""
    late = [["dpctl/ct-set-limits", "zone=9,limit=10"], ["dpctl/ct-get-limits", "zone=9"]]
    ours, theirs = _outputs("hitless", [], late), _outputs("ovs", [], late)
    assert ours[1] == "default limit=0\nzone=9,limit=10,count=4\n", ours
    assert theirs[1] == "default limit=0\nzone=9,limit=10,count=0\n", theirs


def test_flush_on_ebpf_removes_the_kernel_s_entry_before_it_returns() -> None:
    """The firewall on an ebpf bridge: b answers a's UDP datagram, and the kernel
    forwards b's answers by its own copy of the connection (layout 3). After
    dpctl/flush-conntrack returns, b's very next datagram must be new from outside,
    and dropped, as on Open vSwitch; the kernel's copy used to go only at the next
    refresh slice (up to 0.5 s later), and let it through."""
    with _firewall("hitless", "ebpf") as (sw, a, b, aip, bip):
        assert a.ping(bip, count=2)  # ARP both ways
        rx = subprocess.Popen(
            ["ip", "netns", "exec", a.ns, "python3", "-c",
             "import socket, sys; s = socket.socket(2, 2); s.bind(('', 5555)); "
             f"s.sendto(b'open', ('{bip}', 6666)); print('ready', flush=True); "
             "s.settimeout(3)\n"
             "try:\n  while True: print(s.recv(100).decode(), flush=True)\n"
             "except OSError: pass"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        # b sends a datagram per line it reads: "after" leaves right after the flush
        tx = subprocess.Popen(
            ["ip", "netns", "exec", b.ns, "python3", "-c",
             "import socket, sys; s = socket.socket(2, 2); s.bind(('', 6666))\n"
             f"for w in sys.stdin: s.sendto(w.strip().encode(), ('{aip}', 5555))"],
            stdin=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
            assert tx.stdin is not None
            # established: b's answers pass, all but the first in the kernel
            tx.stdin.write("".join(f"before{i}\n" for i in range(20)))
            tx.stdin.flush()
            seen = []
            while "before19" not in seen:  # a's socket gives up after 3 s of silence
                line = rx.stdout.readline()
                if not line:
                    break
                seen.append(line.strip())
            sw.appctl("dpctl/flush-conntrack")
            tx.stdin.write("after\n")
            tx.stdin.close()
            tx.wait(timeout=20)
            out, _ = rx.communicate(timeout=20)
        finally:
            for p in (rx, tx):
                if p.poll() is None:
                    p.kill()
                    p.communicate()
        got = seen + out.split()
        assert "before19" in got, got  # the answers did pass before
        assert "after" not in got, got
        assert "zone=9" not in sw.appctl("dpctl/dump-conntrack")
