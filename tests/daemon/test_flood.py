"""One port flooding new flows does not starve the others (netdev, the real daemon).

Host c sends frames from random source MACs as fast as one trafgen process can (a TX
ring, qdisc bypassed) into a bridge whose MAC table holds 512 entries, while host a
opens new TCP connections to host b one after another. Checked: every connection
succeeds; a's and b's MAC entries stay in the table the whole time (eviction takes the
oldest entry of the port holding the most, c's; with the oldest of the whole table, the
quiet hosts' entries went first); the table's limit acted and was counted; the
flooder's misses were served and the victims lost none (upcall/show); the datapath flow
limit (Open_vSwitch other_config:flow-limit) held and counted its hits."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.netns import Host, Topology
from tests.switch import Sw
from tests.wait import wait_for

pytestmark = pytest.mark.netns

MAC_TABLE = 512
FLOW_LIMIT = 2000
CONNECTIONS = 40

_SERVER = r"""
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(64)
print("ready", flush=True)
while True:
    c, _ = ls.accept(); c.sendall(b"x"); c.close()
"""

# argv: address, port, count; prints how many connections got their byte.
_CLIENT = r"""
import socket, sys
ok = 0
for i in range(int(sys.argv[3])):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
        ok += s.recv(1) == b"x"
        s.close()
    except OSError:
        pass
print(ok, flush=True)
"""


def flood(c: Host, seconds: float, cfg: str) -> subprocess.Popen[str]:
    """Random source MACs (locally administered) to c's own MAC: each frame is a miss
    the switch learns and drops (its destination is behind the port it came in on)."""
    dst = ", ".join(f"0x{x}" for x in c.mac.split(":"))
    with open(cfg, "w") as f:
        f.write("{ " + dst + ", 0x0e, drnd(), drnd(), drnd(), drnd(), drnd(), 0x88, 0xb5, "
                "fill(0x00, 46) }\n")  # fmt: skip
    return c.popen(["timeout", "-s", "INT", str(seconds), "trafgen", "-i", cfg, "-o", "eth0",
                    "-P", "1", "-t", "0"])  # fmt: skip


@pytest.mark.skipif(shutil.which("trafgen") is None, reason="needs netsniff-ng's trafgen")
def test_a_flooding_port_does_not_starve_the_others(started: Sw, topology: Topology) -> None:
    sw = started
    a = topology.add_host("a", "10.96.0.1/24")
    b = topology.add_host("b", "10.96.0.2/24")
    c = topology.add_host("c", "10.96.0.3/24")
    br = topology.name("fl")
    sw.vsctl("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev",
             f"other_config:mac-table-size={MAC_TABLE}",
             "--", "add-port", br, a.switch_port, "--", "add-port", br, b.switch_port,
             "--", "add-port", br, c.switch_port)  # fmt: skip
    wait_for(lambda: sw.ofport(c.switch_port) > 0, "the ports")
    sw.vsctl("set", "Open_vSwitch", ".", f"other_config:flow-limit={FLOW_LIMIT}")
    wait_for(lambda: a.ping(b.addr), "a reaches b")
    server = b.popen([sys.executable, "-c", _SERVER, "5001"])
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    def present() -> bool:
        fdb = sw.appctl("fdb/show", br).stdout
        return a.mac in fdb and b.mac in fdb

    assert present()
    with tempfile.NamedTemporaryFile(suffix=".cfg") as cfg:
        gen = flood(c, 6, cfg.name)
        wait_for(lambda: "evicted MAC entries     : 0\n" not in
                 sw.appctl("fdb/stats-show", br).stdout, "the flood to fill the table")  # fmt: skip
        client = a.popen([sys.executable, "-c", _CLIENT, b.addr, "5001", str(CONNECTIONS)])
        samples = []
        while gen.poll() is None:
            samples.append(present())
        out, _ = client.communicate(timeout=CONNECTIONS * 25)
        gen.communicate(timeout=30)

    assert samples and all(samples), f"a or b evicted in {samples.count(False)} of {len(samples)}"
    assert int(out.split()[0]) == CONNECTIONS
    stats = sw.appctl("fdb/stats-show", br).stdout
    evicted = int(stats.split("evicted MAC entries     :")[1].split()[0])
    assert evicted > MAC_TABLE, stats
    queues = sw.appctl("upcall/show").stdout
    rows = {line.split(":")[0].strip(): line for line in queues.splitlines() if "queued" in line}
    assert int(rows[c.switch_port].split("handled ")[1].split()[0]) > MAC_TABLE, queues
    for victim in (a, b):
        assert "dropped 0 " in rows[victim.switch_port], queues
    current = int(queues.split("(current ")[1].split(")")[0])
    assert f"(limit {FLOW_LIMIT})" in queues and current <= FLOW_LIMIT, queues
    hits = sw.appctl("coverage/read-counter", "upcall_flow_limit_hit").stdout
    assert int(hits) > 0
