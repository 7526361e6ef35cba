"""The tc tree of a linux-htb / linux-hfsc QoS row (hitless.daemon.qos.plan), pure: the
classes Open vSwitch's netdev-linux builds for the same row (seen with tc class show)."""

from __future__ import annotations

from hitless.config.model import QosConfig, QueueConfig
from hitless.daemon.qos import TcQos, plan


def test_htb_tree_with_default_and_configured_queues() -> None:
    p = plan(QosConfig("linux-htb", {"max-rate": "5000000"}), 10_000_000_000)
    assert p.kind == "htb"
    assert p.qdisc("d0") == ["qdisc", "replace", "dev", "d0", "root", "handle", "1:", "htb",
                             "default", "1"]  # fmt: skip
    assert dict(p.classes) == {
        "1:fffe": ("parent", "1:", "classid", "1:fffe", "htb", "rate", "5000000bit", "ceil",
                   "5000000bit", "burst", "1500b"),
        "1:1": ("parent", "1:fffe", "classid", "1:1", "htb", "rate", "12000bit", "ceil",
                "5000000bit", "burst", "1500b", "prio", "0"),
    }  # fmt: skip
    q = QosConfig("linux-htb", {}, (QueueConfig(1, {"min-rate": "1000000", "max-rate": "2000000",
                                                    "priority": "3"}),))  # fmt: skip
    p = plan(q, None)  # no link speed: 10 Gbit/s, as Open vSwitch
    c = dict(p.classes)
    assert c["1:fffe"][6] == "10000000000bit"
    assert c["1:2"][6:13] == ("1000000bit", "ceil", "2000000bit", "burst", "1500b", "prio", "3")
    assert "1:1" in c  # queue 0, the default class, always exists


def test_hfsc_tree_and_bad_numbers() -> None:
    p = plan(QosConfig("linux-hfsc", {"max-rate": "junk"}), 1_000_000_000)
    assert p.kind == "hfsc"
    assert dict(p.classes)["1:fffe"][-4:] == ("1000000000bit", "ul", "rate", "1000000000bit")


def test_applied_trees_round_trip_for_a_handoff() -> None:
    t = TcQos()
    p = plan(QosConfig("linux-htb", {"max-rate": "5000000"}), None)
    t.applied["d0"] = p
    u = TcQos()
    u.adopt(t.export())
    assert u.applied == {"d0": p}
    assert TcQos().export() is None
