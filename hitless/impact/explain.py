"""Why each remaining disruption happens, and what would remove it: the text
``docs/blips.md`` shows next to every measured blip.

``OPERATION_NOTES``: per operation, why the switch stops forwarding and what would
remove that. ``EXPLANATIONS``: keys ``"<operation>/<traffic class kind>"`` (or
``"<operation>/<class name>"`` for a single class), with the operation names of
``hitless.impact.switches.label``: how that class shows the disruption. The
page is generated from a run's JSON with these, so this module is its single source.
For ``hitless upgrade`` and ``hitless downgrade`` only lateness is explained (the
freeze window): they are meant to lose nothing, so the text says that any loss there is
a bug, not a property of the method.
"""

from __future__ import annotations

__all__ = ["EXPLANATIONS", "OPERATION_NOTES"]

# What the traffic classes do when the switch forwards nothing for a while: the
# transport's own recovery, the same whichever switch caused the outage.
_TRANSPORT = {
    "udp": "UDP has no retransmission: every datagram sent while nobody forwards is gone.",
    "udp-cross": "the same UDP across two bridges joined by patch ports: every datagram "
    "sent while nobody forwards is gone.",
    "openflow": "the same UDP, forwarded by OpenFlow rules instead of NORMAL: every "
    "datagram sent while nobody forwards is gone, rules or not.",
    "broadcast": "broadcasts sent while nobody forwards are gone, for every receiver.",
    "tcp-stream": "the connection survives because TCP retransmits what was dropped; the "
    "stall is the outage rounded up to the next retransmission timeout (at least 200 ms "
    "on Linux), so it outlasts the outage itself.",
    "tcp-connect": "connections attempted during the outage do not fail, but their SYN "
    "(or SYN-ACK) is dropped and only retransmitted after the initial 1 s timeout, so "
    "they connect about a second late.",
    "arp": "a resolution whose request or reply is dropped is retried only after the "
    "kernel's 1 s retransmit timer (retrans_time_ms), so it completes a second late; "
    "with a resolution every 250 ms at most one or two of them fall in the outage.",
    "nd": "the same as ARP: the neighbour solicitation is retried after 1 s (retrans_time_ms).",
    "ct-udp": "the datagrams sent while nobody forwards are gone, and then the connection "
    "tracker decides: a switch that forgot the connection (Open vSwitch's userspace "
    "conntrack lives in ovs-vswitchd) drops b's datagrams as +new from outside until a's "
    "next datagram commits the connection again, so b's stream loses more than the "
    "outage; a's own datagrams only lose the outage. A switch that kept its connection "
    "table loses only the outage both ways.",
    "ct-tcp-stream": "a TCP connection through DNAT needs its conntrack entry for every "
    "packet both ways: a switch that forgot it cannot translate the rest of the stream "
    "(a mid-stream segment without a connection is invalid, not new: Open vSwitch does "
    "not pick TCP connections up mid-stream), so the stream stalls until it times out "
    "or resets; a switch that kept its table only delays it by the outage, rounded up "
    "to TCP's retransmission timeout.",
    "ct-tcp-connect": "a connection attempted during the outage connects about a second "
    "late (its SYN is retransmitted); one whose SYN was committed and translated just "
    "before a switch forgot its table fails or is late, its SYN-ACK arriving with no "
    "connection to translate back.",
    "controller": "the OpenFlow session is a TCP connection of the switch process: it dies "
    "with the process (closed or reset), with the echo requests in flight unanswered, and "
    "the controller only gets a session again once the new process listens on the "
    "controller port and has read the bridge configuration. This controller retries "
    "every 20 ms, so the reconnect time is the restart's; a switch-initiated (active "
    "`tcp:`) connection would reconnect later still, after the switch's reconnect "
    "backoff. Everything the session had set up (role, generation id, switch config, "
    "rules) has to be set up again.",
}

# Why the switch forwards nothing for a while, per operation, and what removes it.
_CAUSE = {
    "hitless restart --mode cold": (
        "The netdev datapath lives inside hitless-vswitchd. From SIGTERM until the new "
        "process has started Python, read the database and reopened its AF_PACKET "
        "sockets, no process reads the ports and the kernel drops what arrives on them; "
        "the new process also starts with an empty MAC table and floods until it has "
        "relearned. Most of the outage is the new process starting (about half a "
        "second of interpreter and import time on this machine). Removed by `hitless "
        "upgrade`, which hands the open sockets and the learned state to a process that "
        "started beforehand; a datapath that forwards without the daemon (ebpf, next) "
        "would also shrink it to the time misses wait."
    ),
    "hitless restart --mode flow-restore": (
        "The ovs-ctl sequence on a datapath that lives in the daemon: flow-restore-wait "
        "was made to keep a kernel datapath's flows forwarding while the daemon "
        "restarts, but the netdev datapath and its flows die with the process, so there "
        "is nothing to keep and the outage is a cold restart's plus the time to save and "
        "re-add the OpenFlow rules, which grows with their number. Removed by `hitless "
        "upgrade`."
    ),
    "hitless kill -9 + start": (
        "A killed process hands nothing over itself. With the crash standby (the "
        "default on netdev: a second process that holds the ports' sockets and a mirror "
        "of the learned state) the rings keep filling while nobody reads them and the "
        "standby, woken by the death, adopts them and the mirrored state: frames are "
        "delayed by its takeover, not lost. Without one (--no-standby) the AF_PACKET "
        "sockets close with the process and traffic stops until `hitless start` has "
        "started a new daemon, which relearns the MAC table; ebpf keeps forwarding "
        "known flows in the kernel while no daemon runs."
    ),
    "OVS restart": (
        "Open vSwitch's userspace (netdev) datapath lives inside ovs-vswitchd: between "
        "stopping it and the new process reopening the ports (mostly its start-up), "
        "nothing forwards and the MAC table starts empty. No Open vSwitch setting "
        "avoids it for this datapath; handing the open ports and state to the new "
        "process, as `hitless upgrade` does, removes it."
    ),
    "OVS ovs-ctl restart (flow-restore-wait)": (
        "ovs-ctl saves the OpenFlow rules, sets flow-restore-wait, restarts and re-adds "
        "the rules. With the kernel datapath the flag keeps existing flows forwarding; "
        "with the netdev datapath the flows die with the process, so the flag saves "
        "nothing and the save and restore steps only lengthen the outage of a plain "
        "restart (more so with many rules). Removed only by not stopping the process "
        "that owns the ports, as `hitless upgrade` does."
    ),
    "OVS kill -9 + start": (
        "As the plain restart, without even the orderly shutdown: the datapath dies with "
        "ovs-vswitchd and nothing forwards until the new one has opened the ports. "
        "Unavoidable for a crash of a userspace datapath."
    ),
}

_FREEZE = (
    "Nothing is lost: during the freeze window (the new process restores the final "
    "state and verifies it while the old one stops reading) no process reads the "
    "ports, so packets wait in the AF_PACKET rings and socket buffers and are forwarded "
    "late, by up to the length of the freeze. The freeze grows with the state carried, "
    "MAC entries and OpenFlow rules alike (measured here: about 25 ms with no extra MACs, 40 ms with 3,000 for this build). "
    "Removed by a shorter freeze: carrying more of the state in the pre-copy, while the "
    "old process still serves, and only the last changes while frozen. Any packet "
    "actually lost in this operation is a bug."
)
_HANDOFF = {
    "hitless upgrade": _FREEZE,
    "hitless downgrade": _FREEZE
    + " A downgrade hands over to an older build, whose import is slower (this tree "
    "made MAC table import faster after the first release with the handoff): measured "
    "here, about 130 ms of freeze with 3,000 MACs against 40 ms for the upgrade.",
}
_LATE = {
    "udp": "datagrams that arrived during the freeze were queued, not dropped: late.",
    "udp-cross": "datagrams that arrived during the freeze were queued, not dropped, and "
    "then crossed both bridges: late.",
    "openflow": "datagrams that arrived during the freeze were queued, not dropped, and "
    "then forwarded by the same rules: late.",
    "broadcast": "broadcasts that arrived during the freeze were queued, not dropped: late.",
    "tcp-stream": "messages sent during the freeze were echoed late; no retransmission was needed.",
    "ct-udp": "datagrams that arrived during the freeze were queued, not dropped, and then "
    "went through the connection tracker, which still knew the connection: late.",
    "ct-tcp-stream": "messages sent during the freeze were echoed late, translated by the "
    "same connection (the table is carried by the handoff); no retransmission was needed.",
    "ct-tcp-connect": "connections attempted during the freeze were committed and "
    "translated late, by the freeze.",
    "tcp-connect": "connections attempted during the freeze completed late, by the freeze.",
    "arp": "a resolution in flight during the freeze completed late; a flushed entry "
    "being resolved makes the gap look longer than the freeze itself.",
    "nd": "as ARP: a neighbour solicitation in flight during the freeze was answered late.",
    "controller": "the session is handed over: the new process takes the same TCP "
    "connection with its session state and any bytes read but not yet parsed, so the "
    "controller stays connected; echo requests sent during the freeze wait in the socket "
    "and are answered late, by up to the freeze.",
}

OPERATION_NOTES = {**_HANDOFF, **_CAUSE}

# Per operation and class: how the outage shows in that class (the cause is said once
# per operation, above its table, from OPERATION_NOTES).
EXPLANATIONS: dict[str, str] = {
    f"{op}/{kind}": effect[0].upper() + effect[1:]
    for table, ops in ((_TRANSPORT, _CAUSE), (_LATE, _HANDOFF))
    for op in ops
    for kind, effect in table.items()
}

# OpenFlow rules live in the daemon's memory, and a plain restart or a crash does not
# save them (neither does Open vSwitch's): the rest of the openflow class's traffic is
# switched by the fresh bridge's table-miss NORMAL rule, with no rule counting it.
_RULES_GONE = (
    " The restarted switch starts without the OpenFlow rules (the rule count note shows "
    "how many were kept): after the outage this traffic flows only because a fresh "
    "bridge's table-miss rule is NORMAL, and the rules' counters are gone. A controller "
    "would have to re-add them; `hitless upgrade` carries them with their counters."
)
_RULES_RESET = (
    " The rules come back (re-added from the saved dump), but as new rules: their packet "
    "counters start again from zero."
)
for _op in ("hitless restart --mode cold", "hitless kill -9 + start", "OVS restart",
            "OVS kill -9 + start"):  # fmt: skip
    EXPLANATIONS[f"{_op}/openflow"] += _RULES_GONE
for _op in ("hitless restart --mode flow-restore", "OVS ovs-ctl restart (flow-restore-wait)"):
    EXPLANATIONS[f"{_op}/openflow"] += _RULES_RESET

# ovsdb-restart (hitless.impact.dbrestart): the daemon keeps running, only its database
# server goes away and comes back.
_DB_RESTART_CAUSE = {
    "hitless: ovsdb-server restart": (
        "hitless-vswitchd keeps running and keeps its configuration while the database "
        "is gone; when ovsdb-server is back the daemon reconnects and re-reads the whole "
        "database in one turn of its loop (measured: 70-120 ms at load average 8, seen "
        "as the longest unanswered ovs-appctl version), during which the netdev datapath "
        "that loop serves waits. The time is the ovs library's IDL: one Idl.run() that "
        "takes the schema and the whole monitor reply (timed alone: 94 ms at load 22 for a "
        "database with one bridge). Removed by running the IDL outside the forwarding "
        "loop. Any packet lost here is a bug."
    ),
    "OVS: ovsdb-server restart": (
        "ovs-vswitchd keeps running; measured here, its netdev datapath forwarded nothing "
        "for about a second around the restart (781 and 747 of 8,000 datagrams lost each "
        "way), about its 1 s database reconnect backoff. Not investigated further."
    ),
}
_DB_LATE = {
    kind: f"{text.split(':')[0]} that arrived while the daemon re-read the database waited "
    "and went through late; nothing was dropped."
    for kind, text in {
        "udp": "datagrams:",
        "udp-cross": "datagrams:",
        "openflow": "datagrams:",
        "broadcast": "broadcasts:",
        "tcp-stream": "messages:",
        "tcp-connect": "connection attempts:",
        "ct-udp": "datagrams (the connection tracker still knew their connection):",
        "ct-tcp-stream": "messages (the connection tracker still knew their connection):",
        "ct-tcp-connect": "connection attempts:",
        "arp": "ARP requests:",
        "nd": "neighbour solicitations:",
        "controller": "echo requests (the session is the same TCP connection throughout):",
    }.items()
}
OPERATION_NOTES.update(_DB_RESTART_CAUSE)
for _kind in _TRANSPORT:
    EXPLANATIONS[f"hitless: ovsdb-server restart/{_kind}"] = _DB_LATE[_kind][0].upper() + _DB_LATE[_kind][1:]
    EXPLANATIONS[f"OVS: ovsdb-server restart/{_kind}"] = _TRANSPORT[_kind][0].upper() + _TRANSPORT[_kind][1:]
