"""Hostile input against a running switch, end to end: damaged OpenFlow messages on its
management socket, garbage on its handoff and unixctl sockets, and odd values in its
database. Each gets a clear answer (an OpenFlow error, a refused handoff in the log, a
JSON-RPC error, an Interface/Port error or a log line) and disturbs nothing else: two
namespace hosts keep pinging through the bridge the whole time, other clients are
served, a real ``hitless upgrade`` still works afterwards, and the log has no traceback.

The OpenFlow and handoff inputs are hypothesis examples (the unit fuzzers' strategies,
tests/openflow/test_fuzz.py), sent to the real daemon; their number is
``HITLESS_FUZZ_EXAMPLES`` (default 60; ``make fuzz`` runs many more)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitless.openflow.constants import OFP13_VERSION, OFP14_VERSION
from tests.netns import Host, Topology
from tests.openflow.strategies import messages
from tests.openflow.test_fuzz import mutated
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns

EXAMPLES = int(os.environ.get("HITLESS_FUZZ_EXAMPLES", "60"))
LIVE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                database=None)  # fmt: skip
VERSION = st.sampled_from([OFP13_VERSION, OFP14_VERSION])


class Pinger:
    """Host a pings host b every 20 ms until stopped; counts the misses."""

    def __init__(self, a: Host, b: Host) -> None:
        self.proc = a.popen(["ping", "-n", "-i", "0.02", "-W", "1", b.addr])

    def stop(self) -> tuple[int, int]:
        """(sent, received) from ping's summary."""
        self.proc.send_signal(2)
        out, _ = self.proc.communicate(timeout=30)
        line = next(x for x in out.splitlines() if "packets transmitted" in x)
        sent, received = (int(x.split()[0]) for x in line.split(",")[:2])
        return sent, received


@pytest.fixture
def live(started: Sw, topology: Topology) -> Iterator[tuple[Sw, str, Host, Host]]:
    sw = started
    a = topology.add_host("a", "10.98.0.1/24")
    b = topology.add_host("b", "10.98.0.2/24")
    br = topology.name("fz")
    sw.vsctl("add-br", br, "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port)
    assert a.ping(b.addr, count=3)
    yield sw, br, a, b
    log = sw.log()
    assert "Traceback" not in log and "crashed" not in log, log[-3000:]


def _forwarding_kept(p: Pinger) -> None:
    sent, received = p.stop()
    # Only a lost reply during the run would show here: the switch never stopped.
    assert sent > 10 and received == sent, (sent, received)


def _send(path: str, data: bytes, read: bool = True) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(path)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while read:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


def test_damaged_openflow_messages_get_errors_and_disturb_nothing(
    live: tuple[Sw, str, Host, Host],
) -> None:
    sw, br, a, b = live
    mgmt = str(sw.rundir.path / f"{br}.mgmt")
    pinger = Pinger(a, b)
    replies: list[bytes] = []

    @LIVE
    @given(VERSION, st.data())
    def run(version: int, data: st.DataObject) -> None:
        hello = struct.pack("!BBHI", version, 0, 8, 1)
        items = data.draw(st.lists(st.one_of(mutated(version), st.binary(max_size=64)), max_size=4))
        ok = messages(version).map(lambda m: m.encode(version))
        stream = hello + b"".join(items) + data.draw(ok)
        replies.append(_send(mgmt, stream))

    run()
    _forwarding_kept(pinger)
    assert len(replies) == EXAMPLES
    # Every connection got at least the switch's HELLO back (nobody was dropped unheard).
    assert all(r[1:2] == b"\x00" for r in replies if r), [r[:8] for r in replies][:5]
    # Other clients are still served, with the same table.
    assert "NORMAL" in sw_ofctl(sw, br, "dump-flows")


def sw_ofctl(sw: Sw, br: str, *args: str) -> str:
    r = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", args[0], str(sw.rundir.path / f"{br}.mgmt"),
                        *args[1:]], capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return r.stdout


def test_garbage_on_the_handoff_and_unixctl_sockets_is_refused_and_upgrade_still_works(
    live: tuple[Sw, str, Host, Host],
) -> None:
    sw, br, a, b = live
    handoff = str(sw.rundir.path / "hitless-vswitchd.handoff")
    ctl = str(sw.rundir.ctl)
    pinger = Pinger(a, b)
    pid = sw.daemon_pid

    @LIVE
    @given(st.one_of(
        st.binary(max_size=200),
        # a plausible frame: a length prefix, then a body that is not what it says
        st.binary(max_size=120).map(lambda body: struct.pack("!I", len(body)) + body),
        st.binary(min_size=1, max_size=8).map(lambda x: struct.pack("!I", 1 << 30) + x),
    ))  # fmt: skip
    def handoff_garbage(data: bytes) -> None:
        _send(handoff, data)

    @LIVE
    @given(st.one_of(
        st.binary(max_size=200),
        st.text(max_size=80).map(lambda t: ('{"id":1,"method":' + t).encode()),
        st.sampled_from([b'{"id":1,"method":"version","params":"x"}', b"[]", b"{}", b"null",
                         b'{"id":null,"method":null,"params":[]}']),
    ))  # fmt: skip
    def unixctl_garbage(data: bytes) -> None:
        _send(ctl, data)

    t = threading.Thread(target=unixctl_garbage)
    t.start()
    handoff_garbage()
    t.join()
    assert sw.daemon_pid == pid, "the switch restarted"
    assert sw.appctl("version").stdout.strip()  # unixctl still answers
    # A real upgrade after all that: the handoff socket still works.
    sw.hitless("upgrade")
    wait_for(lambda: sw.daemon_pid not in (None, pid), "the new process")
    _forwarding_kept(pinger)
    assert a.ping(b.addr, count=2)


ODD_VALUES = [
    ["set", "port", "{c}", "tag=4095"],
    ["set", "port", "{c}", "trunks=0,4095"],
    ["set", "port", "{c}", "vlan_mode=native-untagged", "tag=0"],
    ["set", "interface", "{c}", "mtu_request=68"],
    ["set", "interface", "{c}", "options:peer=nobody"],
    ["set", "bridge", "{br}", "other_config:mac-aging-time=99999999999999"],
    ["set", "bridge", "{br}", "other_config:mac-table-size=-7"],
    ["set", "bridge", "{br}", "other_config:mac-table-size=lots"],
    ["set", "bridge", "{br}", "other_config:hwaddr=zz:zz"],
    ["set", "bridge", "{br}", "other_config:datapath-id=not-hex"],
    ["set", "open_vswitch", ".", "other_config:flow-limit=-3"],
    ["set", "open_vswitch", ".", "other_config:max-idle=12"],
    ["set", "bridge", "{br}", "other_config:max-idle=2000"],
    ["set", "bridge", "{br}", "protocols=OpenFlow13,OpenFlow99"],
    [
        "set",
        "bridge",
        "{br}",
        "fail_mode=secure",
        "--",
        "set",
        "bridge",
        "{br}",
        "fail_mode=standalone",
    ],
    ["set-controller", "{br}", "tcp:999.1.1.1:99999", "ptcp:70000", "bogus:x"],
    ["set", "port", "{c}", "bond_mode=balance-tcp"],
    ["set", "port", "{c}", "other_config:bond-hash-basis=-1"],
    ["set", "interface", "{c}", "ingress_policing_rate=4294967295"],
    ["set", "interface", "{c}", "ingress_policing_burst=4294967295"],
]


def test_odd_database_values_get_clear_errors_and_disturb_nothing(
    live: tuple[Sw, str, Host, Host], topology: Topology
) -> None:
    """The odd values go to a second bridge and its host c; a and b ping on through the
    first bridge, undisturbed, while the switch takes each one."""
    sw, br1, a, b = live
    c = topology.add_host("c", "10.98.1.1/24")
    br = topology.name("fy")
    sw.vsctl("add-br", br, "--", "add-port", br, c.switch_port)
    pinger = Pinger(a, b)
    pid = sw.daemon_pid
    for args in ODD_VALUES:
        cmd = [x.format(c=c.switch_port, br=br) for x in args]
        r = sw.vsctl(*cmd, check=False)
        # ovsdb-server refuses what the schema forbids (exit 1, its message); what it
        # accepts, the switch must take without stopping or restarting.
        assert r.returncode == 0 or "constraint violation" in r.stderr, (cmd, r.stderr)
        assert sw.appctl("version").returncode == 0, cmd
        assert sw.daemon_pid == pid, cmd
    _forwarding_kept(pinger)
    assert br in sw.appctl("dpif/show").stdout and br1 in sw.appctl("dpif/show").stdout
    log = sw.log()
    # What was refused or ignored was said out loud.
    for word in ("mac-table-size", "hwaddr", "datapath-id", "flow-limit", "max-idle='12'",
                 "max-idle is read from the Open_vSwitch row", "bogus:x",
                 "tcp:999.1.1.1:99999", "ptcp:70000"):  # fmt: skip
        assert word in log, (word, [x for x in log.splitlines() if "WARN" in x or "ERR" in x])
