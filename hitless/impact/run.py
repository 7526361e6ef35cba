"""Run the traffic agents across host namespaces around an operation, then analyse.

The one entry point is ``measure``::

    from hitless.impact.run import measure, Rates
    result = measure(hosts, operation, name="hitless upgrade", duration=10, at=3)

``hosts`` are any objects with ``.ns`` (namespace name) and ``.ip`` (IPv4 address,
with or without prefix length), optionally ``.dev`` (the interface carrying it,
default ``eth0``) and ``.ip6`` (an IPv6 address for the ND probe; without it the
probe uses the peer's link-local address, and is skipped if IPv6 is off). The first
two hosts carry the point-to-point classes (UDP both ways, long-lived TCP, new
connections, ARP/ND from the first to the second); broadcasts go from the first
host to every other.

The ``openflow`` class is the same sequenced UDP on UDP ports of its own
(``openflow_ports(port)``, for the first→second and second→first streams): the caller
installs the OpenFlow rules that carry it (``hitless.impact.rules``) before calling
``measure`` with the same ``port``. Without such rules it is only more UDP.

The ``controller`` class (``CONTROLLER_CLASSES``, not part of ``ALL_CLASSES``) is an
OpenFlow controller session held across the operation (``hitless.impact.controller``):
the agent runs in the switch's namespace (``controller_ns``) and connects to the
switch's passive controller port on 127.0.0.1 (``controller_port(port)``), which the
caller sets with ``ovs-vsctl set-controller br0 ptcp:PORT:127.0.0.1`` before calling
``measure``. A passive (service) controller, not an active ``tcp:`` one: Open vSwitch
flushes a bridge's rules and drops its NORMAL rule when it gets an active controller,
which would change every other class; a service controller changes nothing.

The ``udp-cross`` class (``CROSS_CLASSES``, not part of ``ALL_CLASSES``) is the same
sequenced UDP both ways between the first host and the host on a second bridge (the
host whose ``.bridge`` is 1; ``hitless.impact.topology`` with ``bridges=2``), so it
crosses the patch ports that join the bridges.

``operation`` is called once, ``at`` seconds after traffic starts, in the calling
thread. It may return the phases it went through (``Phase`` objects, absolute
``time.monotonic()`` seconds) for the report to shade; otherwise the whole call is
one phase. If it raises, the agents are stopped and the exception propagates.

Every process started here is started in its own session and, whatever happens,
killed by its process group id before ``measure`` returns; the records live in a
temporary directory removed afterwards (unless ``keep_dir`` is given).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import hitless
from hitless.impact import analysis as an
from hitless.impact.agents import Until
from hitless.impact.analysis import ClassStats, ImpactResult, Phase, Window
from hitless.impact.switches import SWITCH_NICE
from hitless.impact.topology import raise_if_signalled

__all__ = [
    "ALL_CLASSES",
    "APPCTL_CLASSES",
    "CONTROLLER_CLASSES",
    "CROSS_CLASSES",
    "KNOWN_CLASSES",
    "STATEFUL_CLASSES",
    "ImpactError",
    "Operation",
    "Rates",
    "controller_port",
    "measure",
    "openflow_class_name",
    "openflow_ports",
    "pick_port",
]

ALL_CLASSES = ("udp", "openflow", "tcp-stream", "tcp-connect", "arp", "nd", "broadcast")
CROSS_CLASSES = ("udp-cross",)  # need a host on a second bridge
CONTROLLER_CLASSES = ("controller",)  # needs the switch's namespace and its ptcp port
APPCTL_CLASSES = ("appctl",)  # needs the switch's control socket; not in the default set
# Needs its rules on the switch and a's neighbour entry for the VIP (hitless.impact.stateful);
# not in the default set.
STATEFUL_CLASSES = ("stateful",)
KNOWN_CLASSES = ALL_CLASSES + CONTROLLER_CLASSES + CROSS_CLASSES + APPCTL_CLASSES + STATEFUL_CLASSES
APPCTL_CLASS_NAME = "ovs-appctl version"

Operation = Callable[[], Iterable[Phase] | None]
Progress = Callable[[str, float], None]


class HostLike(Protocol):
    @property
    def ns(self) -> str: ...
    @property
    def ip(self) -> str: ...


class ImpactError(RuntimeError):
    """The measurement itself failed (an agent did not start or crashed): a problem
    of the harness or the environment, not a result about the switch."""


@dataclass(frozen=True, slots=True)
class Rates:
    """Traffic rates and the thresholds the analysis applies."""

    udp_pps: float = 1000.0  # each direction
    udp_size: int = 64  # UDP payload bytes
    tcp_interval: float = 0.01  # long-lived connection: one message every ...
    connect_interval: float = 0.02  # a new connection every ...
    connect_timeout: float = 3.0
    probe_interval: float = 0.25  # ARP and ND: flush + resolve every ...
    probe_timeout: float = 2.0
    broadcast_pps: float = 50.0
    late_after: float = 0.05  # a unit this late counts as disrupted
    echo_interval: float = 0.02  # controller class: an echo request every ...
    appctl_interval: float = 0.005  # appctl class: an ovs-appctl version every ...
    subscribe_interval: float = 1.0  # stateful class: a's datagrams to b every ...


@dataclass
class _Agent:
    label: str
    host: str
    ns: str
    args: list[str]
    listener: bool
    out: Path
    err: Path
    module: str = "hitless.impact.agents"
    proc: subprocess.Popen[bytes] | None = None
    rc: int | None = None


@dataclass
class _Plan:
    agents: list[_Agent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prober: str = ""  # the host the ARP/ND probes run from


def _addr(ip: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(ip)


def _link_local(ns: str, dev: str, wait: float = 5.0) -> str | None:
    """The IPv6 link-local address of ``dev`` in ``ns``, once duplicate address
    detection is over (a tentative address answers nothing); None if IPv6 is off."""
    deadline = time.monotonic() + wait
    while True:
        res = subprocess.run(
            ["ip", "netns", "exec", ns, "ip", "-6", "-o", "addr", "show", "dev", dev,
             "scope", "link"],
            capture_output=True,
            text=True,
            timeout=10,
        )  # fmt: skip
        words = res.stdout.split()
        addr = next((w.split("/")[0] for w in words if w.lower().startswith("fe80:")), None)
        if addr is None or "tentative" not in words or time.monotonic() > deadline:
            return addr
        time.sleep(0.1)


def pick_port() -> int:
    """A random base UDP/TCP port for one run: it uses ports P .. P+15 (the stateful
    class P+10 .. P+15, ``hitless.impact.stateful.ct_ports``)."""
    return 20000 + secrets.randbelow(2000) * 20


def openflow_ports(port: int) -> tuple[int, int]:
    """The UDP destination ports of the openflow class (first→second, second→first)
    for a run with base port ``port``."""
    return port + 7, port + 8


def controller_port(port: int) -> int:
    """The switch's passive controller port (``ptcp:P:127.0.0.1``, in the switch's
    namespace: no host's port collides with it) for a run with base port ``port``."""
    return port


def _plan(
    hosts: Sequence[HostLike],
    classes: Collection[str],
    rates: Rates,
    tmp: Path,
    run: int,
    port: int | None = None,
    controller_ns: str | None = None,
    ctl: str | None = None,
) -> _Plan:
    unknown = set(classes) - set(KNOWN_CLASSES)
    if unknown:
        raise ValueError(f"unknown traffic classes {sorted(unknown)}; known: {KNOWN_CLASSES}")
    if len(hosts) < 2:
        raise ValueError(f"measure needs at least two hosts, got {len(hosts)}")
    a, b = hosts[0], hosts[1]
    aip, bip = _addr(a.ip), _addr(b.ip)
    adev = getattr(a, "dev", "eth0")
    port = pick_port() if port is None else port  # unique per run: ports P .. P+9
    plan = _Plan()

    def add(label: str, host: HostLike, listener: bool, *args: object) -> None:
        plan.agents.append(
            _Agent(
                label,
                getattr(host, "name", host.ns),
                host.ns,
                [str(x) for x in args] + ["--run", str(run)],
                listener,
                tmp / f"{label}.jsonl",
                tmp / f"{label}.err",
            )
        )

    # The machine's own stalls (a CPU that ran nothing), to tell them from the switch's.
    for cpu in sorted(os.sched_getaffinity(0)):
        add(f"cpu-probe-{cpu}", a, True, "cpu-probe", "--cpu", cpu)
    if "udp" in classes:
        add("udp-ab-rx", b, True, "udp-recv", "--bind", bip.ip, "--port", port)
        add("udp-ba-rx", a, True, "udp-recv", "--bind", aip.ip, "--port", port + 1)
        for label, src, dst, p, stream in (
            ("udp-ab-tx", a, bip, port, 1),
            ("udp-ba-tx", b, aip, port + 1, 2),
        ):
            add(label, src, False, "udp-send", "--dst", dst.ip, "--port", p,
                "--rate", rates.udp_pps, "--size", rates.udp_size, "--stream", stream)  # fmt: skip
    if "openflow" in classes:
        of_ab, of_ba = openflow_ports(port)
        add("of-ab-rx", b, True, "udp-recv", "--bind", bip.ip, "--port", of_ab)
        add("of-ba-rx", a, True, "udp-recv", "--bind", aip.ip, "--port", of_ba)
        for label, src, dst, p, stream in (
            ("of-ab-tx", a, bip, of_ab, 4),
            ("of-ba-tx", b, aip, of_ba, 5),
        ):
            add(label, src, False, "udp-send", "--dst", dst.ip, "--port", p,
                "--rate", rates.udp_pps, "--size", rates.udp_size, "--stream", stream)  # fmt: skip
    if "udp-cross" in classes:
        x = cross_host(hosts)
        if x is None:
            raise ValueError("the udp-cross class needs a host on a second bridge")
        xip = _addr(x.ip)
        # port + 9 on both receivers (different hosts): no other class uses it
        add("xudp-ab-rx", x, True, "udp-recv", "--bind", xip.ip, "--port", port + 9)
        add("xudp-ba-rx", a, True, "udp-recv", "--bind", aip.ip, "--port", port + 9)
        for label, src, dst, stream in (
            ("xudp-ab-tx", a, xip, 6),
            ("xudp-ba-tx", x, aip, 7),
        ):
            add(label, src, False, "udp-send", "--dst", dst.ip, "--port", port + 9,
                "--rate", rates.udp_pps, "--size", rates.udp_size, "--stream", stream)  # fmt: skip
    if "controller" in classes:
        if controller_ns is None:
            raise ValueError("the controller class needs the switch's namespace (controller_ns)")
        plan.agents.append(
            _Agent(
                "of-controller",
                "switch",
                controller_ns,
                ["--port", str(controller_port(port)), "--interval", str(rates.echo_interval),
                 "--run", str(run)],
                True,
                tmp / "of-controller.jsonl",
                tmp / "of-controller.err",
                module="hitless.impact.controller",
            )
        )  # fmt: skip
    if "appctl" in classes:
        if ctl is None or controller_ns is None:
            raise ValueError("the appctl class needs the switch's control socket and namespace")
        plan.agents.append(
            _Agent("appctl-probe", "switch", controller_ns,
                   ["appctl-probe", "--ctl", ctl, "--interval", str(rates.appctl_interval),
                    "--run", str(run)],
                   False, tmp / "appctl-probe.jsonl", tmp / "appctl-probe.err")
        )  # fmt: skip
    if "stateful" in classes:
        from hitless.impact import stateful

        ct = stateful.ct_ports(port)
        vip = stateful.vip(b.ip)
        sa, sb = stateful.STREAMS
        add("ct-udp-b", b, True, "udp-duplex", "--bind", bip.ip, "--port", ct.udp_b,
            "--rate", rates.udp_pps, "--size", rates.udp_size, "--stream", sb)  # fmt: skip
        add("ct-udp-a", a, False, "udp-duplex", "--bind", aip.ip, "--port", ct.udp_a,
            "--dst", bip.ip, "--dport", ct.udp_b, "--rate", 1 / rates.subscribe_interval,
            "--size", rates.udp_size, "--stream", sa)  # fmt: skip
        add("ct-tcp-b", b, True, "tcp-push", "--bind", bip.ip, "--port", ct.tcp_b,
            "--interval", rates.tcp_interval)  # fmt: skip
        add("ct-tcp-a", a, False, "tcp-push", "--port", 0, "--dst", vip, "--dport", ct.tcp_vip)
        add("ct-accept", b, True, "tcp-accept", "--bind", bip.ip, "--port", ct.connect_b)
        add("ct-connect", a, False, "tcp-connect", "--dst", vip, "--port", ct.connect_vip,
            "--interval", rates.connect_interval, "--timeout", rates.connect_timeout)  # fmt: skip
    if "tcp-stream" in classes:
        add("tcp-stream-srv", b, True, "tcp-stream-server", "--bind", bip.ip, "--port", port + 2)
        add("tcp-stream-cli", a, False, "tcp-stream-client", "--dst", bip.ip,
            "--port", port + 2, "--interval", rates.tcp_interval)  # fmt: skip
    if "tcp-connect" in classes:
        add("tcp-accept", b, True, "tcp-accept", "--bind", bip.ip, "--port", port + 3)
        add("tcp-connect", a, False, "tcp-connect", "--dst", bip.ip, "--port", port + 3,
            "--interval", rates.connect_interval, "--timeout", rates.connect_timeout)  # fmt: skip
    # The probes flush the prober's neighbour entry for b. Flushing an entry that a
    # stream uses can drop a datagram in flight (seen: one lost packet a few ms after
    # a flush), so with a third host the probes run from it, sharing nothing.
    prober = hosts[2] if len(hosts) >= 3 else a
    pdev = getattr(prober, "dev", "eth0")
    plan.prober = str(getattr(prober, "name", prober.ns))
    if len(hosts) < 3 and ("arp" in classes or "nd" in classes):
        plan.notes.append(
            "arp/nd: probes run from the first host (no third host), so their neighbour "
            "flushes can drop a datagram of the first host's streams"
        )
    if "arp" in classes:
        add("arp-echo", b, True, "udp-echo", "--bind", bip.ip, "--port", port + 4)
        add("arp-probe", prober, False, "neigh-probe", "--dst", bip.ip, "--port", port + 4,
            "--dev", pdev, "--interval", rates.probe_interval,
            "--timeout", rates.probe_timeout)  # fmt: skip
    if "nd" in classes:
        b6 = getattr(b, "ip6", None)
        dst6 = str(_addr(b6).ip) if b6 else _link_local(b.ns, getattr(b, "dev", "eth0"))
        if dst6 is None:
            plan.notes.append("nd: skipped, the second host has no IPv6 address")
        else:
            add("nd-echo", b, True, "udp-echo", "--bind", "::", "--port", port + 5)
            add("nd-probe", prober, False, "neigh-probe", "--dst", dst6, "--port", port + 5,
                "--dev", pdev, "--interval", rates.probe_interval,
                "--timeout", rates.probe_timeout)  # fmt: skip
    if "broadcast" in classes:
        bcast = (
            str(aip.network.broadcast_address)
            if aip.version == 4 and aip.network.prefixlen < 31
            else "255.255.255.255"
        )
        for i, h in enumerate(hosts[1:]):
            add(f"bcast-rx-{i}", h, True, "udp-recv", "--bind", "", "--port", port + 6)
        add("bcast-tx", a, False, "udp-send", "--dst", bcast, "--port", port + 6, "--broadcast",
            "--dev", adev, "--rate", rates.broadcast_pps, "--stream", 3)  # fmt: skip
    return plan


# The agents whose end ``--until`` can push back (``measure(after=...)``).
UNTIL = ("udp-send", "udp-duplex", "tcp-stream-client", "tcp-connect", "neigh-probe", "tcp-push")
# Listeners that also send once their peer has opened the connection: they get the
# senders' --duration (and --until).
ANSWERERS = ("udp-duplex", "tcp-push")


# How long the agents may take to come up (listeners a quarter, senders the rest): an
# interpreter's start took 1-3 s at load 25-30, 2-12 s at load 30-35.
READY_WAIT = 80.0

# Listeners that take --expect/--drain: they read each stream to its last datagram.
DRAINING = ("udp-recv", "udp-duplex")


def _write_expected(path: Path, senders: Sequence[_Agent]) -> None:
    """Each datagram stream's last sequence number sent without an error, from the
    (exited) senders' records, as the receivers' ``--expect`` file (written whole)."""
    last: dict[int, int] = {}
    for ag in senders:
        if ag.args[0] not in DRAINING:
            continue
        recs = _records(ag)
        stream = next((r.get("stream") for r in recs if r.get("ev") == "start"), None)
        sent = [r["seq"] for r in recs if r.get("ev") == "tx" and "err" not in r]
        if stream is not None and sent:
            last[int(stream)] = max(sent)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(last))
    tmp.rename(path)


# The traffic agents' niceness: the switches' (hitless.impact.switches.SWITCH_NICE). They
# are the measuring side: a sender or receiver waiting for a core on a loaded machine
# shows up as a gap that is neither switch's, so they get a core as soon as the switch
# under test does, whichever switch that is (the same for hitless and Open vSwitch). The
# CPU probes run at a real-time priority above both.
AGENT_NICE = SWITCH_NICE


def _agent_priority() -> None:
    """In the agent's child process, after setsid: its niceness and its new session's
    autogroup (with session autogroups a niceness only weighs within its session)."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, AGENT_NICE)
        Path("/proc/self/autogroup").write_text(f"{AGENT_NICE}\n")


def _spawn(agent: _Agent, extra: list[str]) -> None:
    env = dict(os.environ)
    root = str(Path(hitless.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = ["ip", "netns", "exec", agent.ns, sys.executable, "-m", agent.module]
    cmd += [*agent.args, *extra, "--out", str(agent.out)]
    with open(agent.err, "wb") as err:
        agent.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            env=env, start_new_session=True, preexec_fn=_agent_priority,
        )  # fmt: skip


def _failure(agent: _Agent, what: str) -> ImpactError:
    try:
        tail = agent.err.read_text(errors="replace").strip()[-2000:]
    except OSError:
        tail = ""
    return ImpactError(
        f"traffic agent {agent.label} in namespace {agent.ns} {what}"
        + (f":\n{tail}" if tail else "")
    )


def _wait_ready(agents: list[_Agent], deadline: float) -> None:
    waiting = list(agents)
    while waiting:
        for ag in list(waiting):
            assert ag.proc is not None
            if ag.proc.poll() is not None:
                raise _failure(ag, f"exited ({ag.proc.returncode}) before it was ready")
            with contextlib.suppress(OSError):
                if b"ready" in ag.err.read_bytes():
                    waiting.remove(ag)
        if waiting and time.monotonic() > deadline:
            raise _failure(waiting[0], "did not get ready in time")
        if waiting:
            raise_if_signalled()
            time.sleep(0.02)


def _wait_exit(agents: list[_Agent], deadline: float, tick: Callable[[], None]) -> None:
    for ag in agents:
        assert ag.proc is not None
        while ag.proc.poll() is None:
            if time.monotonic() > deadline:
                raise _failure(ag, "did not finish in time")
            tick()
            time.sleep(0.05)
        ag.rc = ag.proc.returncode
        if ag.rc != 0:
            raise _failure(ag, f"failed with exit code {ag.rc}")


def _kill(agents: list[_Agent]) -> None:
    for ag in agents:
        if ag.proc is None:
            continue
        if ag.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(ag.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            ag.proc.wait(timeout=5)


def _records(agent: _Agent) -> list[dict[str, Any]]:
    try:
        text = agent.out.read_text()
    except FileNotFoundError:
        raise _failure(agent, "wrote no records") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def cross_host(hosts: Sequence[HostLike]) -> HostLike | None:
    """The host on the second bridge (``.bridge == 1``), if any."""
    return next((h for h in hosts if getattr(h, "bridge", 0) == 1), None)


CONTROLLER_CLASS_NAME = "controller session"


def openflow_class_name(src: str, dst: str) -> str:
    """The name the openflow class's stream from host ``src`` to ``dst`` has in results."""
    return f"openflow {src}→{dst}"


def analyse(
    recs: dict[str, list[dict[str, Any]]],
    window: Window,
    hosts: Sequence[str],
    late_after: float,
    prober: str,
    cross: str | None = None,
    traffic: tuple[float, float] | None = None,
    stalls: Sequence[tuple[float, float]] = (),
) -> tuple[ClassStats, ...]:
    """Per-class statistics from the records of each agent label (see ``_plan``);
    ``cross`` names the host on the second bridge (the udp-cross class); ``traffic``
    (absolute seconds) is when the senders ran: the controller class counts only the
    echo requests sent then, though its session is held from before to after.
    ``stalls`` (absolute, merged) are the machine's: every class's ``gap_net``."""
    return tuple(_with_gap_net(c, window.start, stalls)
                 for c in _analyse(recs, window, hosts, late_after, prober, cross, traffic,
                                   stalls))  # fmt: skip


def _with_gap_net(c: ClassStats, t0: float, stalls: Sequence[tuple[float, float]]) -> ClassStats:
    if c.gap_net is not None:
        return c
    rel = [(a - t0, b - t0) for a, b in stalls]
    return replace(c, gap_net=min(c.longest_gap, an.net_gap(sorted(c.arrivals), rel)))


def _analyse(
    recs: dict[str, list[dict[str, Any]]],
    window: Window,
    hosts: Sequence[str],
    late_after: float,
    prober: str,
    cross: str | None,
    traffic: tuple[float, float] | None,
    stalls: Sequence[tuple[float, float]],
) -> tuple[ClassStats, ...]:
    a, b = hosts[0], hosts[1]
    out: list[ClassStats] = []
    if "udp-ab-tx" in recs:
        for label, src, dst in (("ab", a, b), ("ba", b, a)):
            out.append(
                an.udp_stream(
                    f"udp {src}→{dst}",
                    recs[f"udp-{label}-tx"],
                    recs[f"udp-{label}-rx"],
                    window,
                    late_after=late_after,
                    stalls=stalls,
                )  # fmt: skip
            )
    if "xudp-ab-tx" in recs and cross is not None:
        for label, src, dst in (("ab", a, cross), ("ba", cross, a)):
            out.append(
                an.udp_stream(
                    f"udp {src}→{dst} (across bridges)",
                    recs[f"xudp-{label}-tx"],
                    recs[f"xudp-{label}-rx"],
                    window,
                    late_after=late_after,
                    stalls=stalls,
                    kind="udp-cross",
                )  # fmt: skip
            )
    if "of-ab-tx" in recs:
        for label, src, dst in (("ab", a, b), ("ba", b, a)):
            out.append(
                an.udp_stream(
                    openflow_class_name(src, dst),
                    recs[f"of-{label}-tx"],
                    recs[f"of-{label}-rx"],
                    window,
                    late_after=late_after,
                    stalls=stalls,
                    kind="openflow",
                )  # fmt: skip
            )
    if "of-controller" in recs:
        out.append(
            an.controller(
                CONTROLLER_CLASS_NAME,
                recs["of-controller"],
                window,
                late_after=late_after,
                span=traffic,
            )
        )
    if "ct-udp-a" in recs:
        for sender, receiver, src, dst in (
            ("ct-udp-a", "ct-udp-b", a, b),
            ("ct-udp-b", "ct-udp-a", b, a),
        ):
            out.append(
                an.udp_stream(
                    f"ct udp {src}→{dst}",
                    recs[sender],
                    recs[receiver],
                    window,
                    late_after=late_after,
                    stalls=stalls,
                    kind="ct-udp",
                )  # fmt: skip
            )
    if "ct-tcp-b" in recs:
        out.append(
            an.tcp_push(
                f"ct+dnat tcp {b}→{a} (a opened it, to the vip)",
                recs["ct-tcp-b"],
                recs["ct-tcp-a"],
                window,
                late_after=late_after,
                stalls=stalls,
            )  # fmt: skip
        )
    if "ct-connect" in recs:
        out.append(
            an.tcp_connect(f"ct+dnat new tcp {a}→vip", recs["ct-connect"], window,
                           late_after=late_after, kind="ct-tcp-connect")  # fmt: skip
        )
    if "tcp-stream-cli" in recs:
        out.append(
            an.tcp_stream(
                f"tcp stream {a}→{b}",
                recs["tcp-stream-cli"],
                recs["tcp-stream-srv"],
                window,
                stall_after=late_after,
            )  # fmt: skip
        )
    if "tcp-connect" in recs:
        out.append(
            an.tcp_connect(f"new tcp {a}→{b}", recs["tcp-connect"], window, late_after=late_after)
        )
    if "appctl-probe" in recs:
        out.append(an.appctl(APPCTL_CLASS_NAME, recs["appctl-probe"], window,
                             late_after=late_after))  # fmt: skip
    if "arp-probe" in recs:
        out.append(
            an.neighbour(f"arp {prober}→{b}", recs["arp-probe"], window, late_after=late_after)
        )
    if "nd-probe" in recs:
        out.append(
            an.neighbour(f"nd {prober}→{b}", recs["nd-probe"], window, late_after=late_after)
        )
    if "bcast-tx" in recs:
        rx = {
            hosts[int(label.rsplit("-", 1)[1]) + 1]: recs[label]
            for label in recs
            if label.startswith("bcast-rx-")
        }
        out.append(an.broadcast(f"broadcast {a}→all", recs["bcast-tx"], rx, window,
                                late_after=late_after))  # fmt: skip
    return tuple(out)


def measure(
    hosts: Sequence[HostLike],
    operation: Operation,
    *,
    name: str = "operation",
    duration: float = 10.0,
    at: float | None = None,
    rates: Rates | None = None,
    classes: Collection[str] = ALL_CLASSES,
    drain: float = 1.0,
    progress: Progress | None = None,
    keep_dir: str | os.PathLike[str] | None = None,
    port: int | None = None,
    controller_ns: str | None = None,
    ctl: str | None = None,
    after: float | None = None,
) -> ImpactResult:
    """Send every traffic class between ``hosts`` for ``duration`` seconds, call
    ``operation()`` ``at`` seconds in (default: a third of the way), and analyse.

    ``drain`` is how long a datagram receiver waits, once the senders have finished,
    for a stream's last datagram that has not come (lost, or still in the switch); it
    stops as soon as every stream's last one came and its socket is empty. ``progress(message, fraction)`` is called as the run goes.
    ``keep_dir``: copy the agents' raw records there (for debugging). ``port``: the
    base port (see ``pick_port``; default: a random one), given when rules were
    installed for the openflow class's ports (``openflow_ports(port)``) or the
    controller class's passive controller (``controller_port(port)``).
    ``controller_ns``: the switch's namespace, where the controller class's agent runs
    (and the appctl class's, which probes the control socket ``ctl``). ``after``: the
    traffic goes on at least that long after the operation returned, however long it
    took (the datagram, TCP and probe senders: ``--until``; the result's ``duration``
    is then what ran): a loaded machine's operation may outlast the planned traffic."""
    rates = rates or Rates()
    at = duration / 3 if at is None else at
    if not 0 <= at <= duration:
        raise ValueError(f"operation time at={at} is outside the traffic (0..{duration} s)")
    report = progress or (lambda _msg, _frac: None)
    run = secrets.randbits(31)
    host_names = [str(getattr(h, "name", h.ns)) for h in hosts]
    tmp = Path(tempfile.mkdtemp(prefix="hitless-impact-"))
    plan = _Plan()
    linger = max(rates.connect_timeout, rates.probe_timeout, 3.0)
    try:
        plan = _plan(hosts, classes, rates, tmp, run, port, controller_ns, ctl)
        listeners = [ag for ag in plan.agents if ag.listener]
        senders = [ag for ag in plan.agents if not ag.listener]
        report("starting traffic agents", 0.0)
        extra = Until.MAX_EXTRA if after is not None else 0.0
        safety_end = time.monotonic() + READY_WAIT + 30 + duration + extra + linger + drain
        until = tmp / "until"
        expect = tmp / "expect"
        for ag in listeners:
            more = []
            if ag.args[0] in DRAINING:
                more += ["--expect", str(expect), "--drain", str(drain)]
            if ag.args[0] in ANSWERERS:  # it answers: sends for as long as the senders
                more = ["--duration", str(duration)]
                more += ["--until", str(until)] if after is not None else []
            _spawn(ag, ["--end", f"{safety_end:.6f}", *more])
        _wait_ready(listeners, time.monotonic() + READY_WAIT / 4)
        # The senders start together once each one's interpreter is up (it says ready),
        # at a time written to the file they wait for: a fixed start 0.5 s after their
        # spawn was too early at load 25-30 (the broadcast sender began 0.7 s after the
        # others), and the operation, timed from that start, could precede its traffic.
        go = tmp / "go"
        for ag in senders:
            more = ["--until", str(until)] if after is not None and ag.args[0] in UNTIL else []
            _spawn(ag, ["--go", str(go), "--duration", str(duration), *more])
        _wait_ready(senders, time.monotonic() + READY_WAIT * 3 / 4)
        start = time.monotonic() + 0.1  # the senders poll the file every 2 ms
        go.with_suffix(".tmp").write_text(f"{start:.6f}")
        go.with_suffix(".tmp").rename(go)
        op_at = start + at
        total = duration + linger

        def tick() -> None:
            raise_if_signalled()  # a Ctrl-C that Python swallowed while an agent started
            now = time.monotonic()
            frac = min(1.0, max(0.0, (now - start) / total))
            if now < start:
                report("waiting for traffic to start", frac)
            elif now < op_at:
                report(f"traffic running, {name} in {op_at - now:.1f} s", frac)
            elif now < start + duration:
                report("traffic running", frac)
            else:
                report("waiting for the last replies", frac)

        while time.monotonic() < op_at:
            for ag in senders:
                assert ag.proc is not None
                if ag.proc.poll() not in (None, 0):
                    raise _failure(ag, f"failed with exit code {ag.proc.returncode}")
            tick()
            time.sleep(min(0.05, max(0.0, op_at - time.monotonic())))
        report(f"{name} running", at / total)
        t_op = time.monotonic()
        phases = operation()
        t_end = time.monotonic()
        report(f"{name} done in {t_end - t_op:.3f} s", (t_end - start) / total)
        phase_list = tuple(phases) if phases is not None else ()
        if not phase_list:
            phase_list = (Phase(name, t_op, t_end),)
        window = Window(t_op, max(t_end, *(p.end for p in phase_list)), phase_list)
        if after is not None:
            duration = max(duration, t_end + after - start)
            until.with_suffix(".tmp").write_text(f"{start + duration:.6f}")
            until.with_suffix(".tmp").rename(until)
        _wait_exit(senders, start + duration + linger + 30, tick)
        # The datagram receivers read on until each stream's last datagram came (or the
        # socket is empty ``drain`` seconds on), not for a fixed time: a receiver that
        # had no CPU when the senders ended still has its datagrams queued.
        _write_expected(expect, senders)
        for ag in listeners:
            assert ag.proc is not None
            if ag.proc.poll() is None:
                ag.proc.send_signal(signal.SIGTERM)
        # Receivers write their records as they exit: ~1 s per 50,000 on a loaded
        # machine (a 10-minute soak's receivers hold 600,000 each).
        _wait_exit(listeners, time.monotonic() + drain + 10 + duration / 10, tick)
        report("analysing", 1.0)
        recs = {ag.label: _records(ag) for ag in plan.agents}
        if keep_dir is not None:
            shutil.copytree(tmp, keep_dir, dirs_exist_ok=True)
    finally:
        _kill(plan.agents)
        shutil.rmtree(tmp, ignore_errors=True)
    x = cross_host(hosts) if "udp-cross" in classes else None
    cross = None if x is None else str(getattr(x, "name", x.ns))
    stalls = an.cpu_stalls(v for k, v in recs.items() if k.startswith("cpu-probe-"))
    stats = analyse(recs, window, host_names, rates.late_after, plan.prober, cross,
                    (start, start + duration), stalls)  # fmt: skip
    return ImpactResult(
        operation=name,
        window=an.relative(window),
        classes=stats,
        duration=duration,
        traffic_start=start - t_op,
        settings={"rates": asdict(rates), "at": at, "hosts": host_names, "run": run},
        notes=tuple(plan.notes),
        cpu_stalls=tuple((a - t_op, b - t_op) for a, b in stalls),
    )
