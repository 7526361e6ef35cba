"""Session controls and bridge set-up that stock ``ovs-ofctl`` cannot ask for directly,
against real Open vSwitch and against hitless.

Each of these once differed from Open vSwitch 3.1 (issue 16, "Why"): bundle control
replies echoed the request's flags, a double open answered ``BUNDLE_EXIST``, closed
bundles and mismatched flags were not refused; an equal role's reply carried a
generation id; the default asynchronous configuration asked for invalid-TTL packet-ins;
a changed ``ofport_request`` was not applied; ``ovs-vsctl add-br`` could return before
the bridge's management socket existed. The messages go over each switch's management
socket in our own codec (``SwitchPair.send``) and the events that come back, decoded the
same way, are compared whole (error codes and the requests they quote included).
"""

from __future__ import annotations

import difflib
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from hitless.openflow import (
    ApplyActions,
    AsyncConfig,
    BundleAddMessage,
    BundleControl,
    FlowMod,
    GetAsyncRequest,
    Message,
    Output,
    RoleRequest,
    SetAsync,
)
from hitless.openflow.constants import (
    OFP12_VERSION,
    OFP13_VERSION,
    OFP14_VERSION,
    OFP15_VERSION,
    AsyncConfigProp,
    BundleCtrlType,
    BundleFlags,
    ControllerRole,
)
from hitless.openflow.match import Match, field
from tests.netns import unique_suffix
from tests.openflow.differential import SwitchPair, normalize
from tests.wait import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("ovs-vswitchd") is None or shutil.which("ovs-ofctl") is None,
    reason="needs Open vSwitch (ovs-vswitchd, ovs-ofctl)",
)

BUNDLE_VERSIONS = {"of13": OFP13_VERSION, "of14": OFP14_VERSION, "of15": OFP15_VERSION}


@pytest.fixture(scope="module")
def switches() -> Iterator[SwitchPair]:
    pair = SwitchPair(f"ctl{unique_suffix()}"[:15])
    try:
        yield pair
    finally:
        pair.close()


def _same(ovs: list[object], hl: list[object]) -> list[str]:
    """Both switches' events, one repr a line, asserted equal; hitless's lines."""
    a, b = [repr(e) for e in ovs], [repr(e) for e in hl]
    assert a == b, "\n".join(difflib.unified_diff(a, b, "ovs", "hitless", lineterm=""))
    return b


def _ctl(xid: int, bid: int, kind: BundleCtrlType, flags: int = 0) -> BundleControl:
    return BundleControl(xid=xid, bundle_id=bid, ctrl_type=kind, flags=flags)


def _flow(xid: int, prio: int) -> FlowMod:
    return FlowMod(
        xid=xid,
        table_id=1,
        priority=prio,
        match=Match((field("eth_type", 0x800),)),
        instructions=(ApplyActions((Output(1),)),),
    )


@pytest.mark.parametrize("version", list(BUNDLE_VERSIONS))
def test_bundle_controls_answered_as_open_vswitch(switches: SwitchPair, version: str) -> None:
    """Replies with flags 0 whatever the request's; a second open of an open bundle is
    OFPBFC_BAD_ID (and discards it); a message for a closed bundle is
    OFPBFC_BUNDLE_CLOSED; flags at close or add that are not the open's are
    OFPBFC_BAD_FLAGS; an unknown bundle is OFPBFC_BAD_ID; a good bundle commits. 1.3
    carries all of it in ONF's experimenter form (errors included)."""
    v = BUNDLE_VERSIONS[version]
    atomic, ordered = int(BundleFlags.ATOMIC), int(BundleFlags.ORDERED)
    op, cl, co, di = (BundleCtrlType.OPEN_REQUEST, BundleCtrlType.CLOSE_REQUEST,
                      BundleCtrlType.COMMIT_REQUEST, BundleCtrlType.DISCARD_REQUEST)  # fmt: skip
    msgs: list[Message] = [
        _ctl(1, 1, op, atomic | ordered),  # reply: flags 0
        _ctl(2, 1, op, atomic),  # already open: BAD_ID
        _ctl(3, 1, cl, atomic),  # the double open discarded it: BAD_ID
        _ctl(4, 2, op, ordered),
        _ctl(5, 2, cl, atomic),  # not the open's flags: BAD_FLAGS
        _ctl(6, 3, op),
        _ctl(7, 3, cl),
        BundleAddMessage(xid=8, bundle_id=3, message=_flow(8, 7)),  # closed: BUNDLE_CLOSED
        _ctl(9, 4, op, atomic),
        BundleAddMessage(xid=10, bundle_id=4, flags=ordered, message=_flow(10, 8)),  # BAD_FLAGS
        _ctl(11, 9, di),  # never opened: BAD_ID
        _ctl(12, 5, op, atomic),
        BundleAddMessage(xid=13, bundle_id=5, flags=atomic, message=_flow(13, 9)),
        _ctl(14, 5, cl, atomic),
        _ctl(15, 5, co, atomic),  # commits the flow
    ]
    ovs, hl = switches.send(v, *msgs)
    got = _same(ovs, hl)
    text = "\n".join(got)
    assert "flags=0" in got[1] and "flags=3" not in text, got  # the open's reply
    assert text.count("ErrorMsg(") == 6, got
    assert text.count("BundleControl(") == 8, got  # five opens, two closes, a commit
    o, h = switches.ofctl("-O", "OpenFlow13", "dump-flows", "{br}", "table=1")
    a, b = normalize(o.text(), True), normalize(h.text(), True)
    assert a == b and "priority=9,ip actions=output:1" in b, (a, b)
    for r in switches.ofctl("-O", "OpenFlow13", "del-flows", "{br}", "table=1"):
        assert r.rc == 0, r


def test_role_replies_and_the_bridges_generation_id_as_open_vswitch(
    switches: SwitchPair,
) -> None:
    """A new session in each of 1.2-1.5: an equal role's reply carries the bridge's
    generation id, all ones (none) before any master gave one, then the one the last
    master gave, from another session; a master gives a newer one; an older one is
    stale on any session (OFPRRFC_STALE)."""
    for i, v in enumerate((OFP12_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION)):
        ovs, hl = switches.send(
            v,
            RoleRequest(xid=1, role=ControllerRole.EQUAL, generation_id=5),
            RoleRequest(xid=2, role=ControllerRole.NOCHANGE),
            RoleRequest(xid=3, role=ControllerRole.MASTER, generation_id=7 + i),
            RoleRequest(xid=4, role=ControllerRole.EQUAL),
            RoleRequest(xid=5, role=ControllerRole.SLAVE, generation_id=6 + i),  # stale
        )
        got = _same(ovs, hl)
        before = 2**64 - 1 if i == 0 else 6 + i
        assert f"generation_id={before})" in got[1] and f"generation_id={before})" in got[2], got
        assert f"generation_id={7 + i})" in got[4] and "ErrorMsg(xid=5" in got[5], got


@pytest.mark.parametrize("version", [OFP13_VERSION, OFP14_VERSION, OFP15_VERSION])
def test_async_config_as_open_vswitch(switches: SwitchPair, version: int) -> None:
    """GET_ASYNC on a new session: Open vSwitch's defaults (every packet-in reason but
    invalid TTL, every flow-removed reason; 1.4 role/table status and request forwarding
    off, listed as 0; 1.3 sees its own six masks with its own reasons). Then a SET_ASYNC:
    in 1.4+ one property, the rest left as it was; in 1.3 the six masks."""
    if version == OFP13_VERSION:
        masks = dict(zip(range(6), (0x1, 0x7, 0x1, 0x5, 0x0, 0x3), strict=True))
    else:
        masks = {int(AsyncConfigProp.REQUESTFORWARD_MASTER): 0x3}
    ovs, hl = switches.send(
        version,
        GetAsyncRequest(xid=1),
        SetAsync(xid=2, config=AsyncConfig.of(masks)),
        GetAsyncRequest(xid=3),
    )
    got = _same(ovs, hl)
    replies = [g for g in got if "GetAsyncReply(" in g]
    assert len(replies) == 2 and replies[0] != replies[1], got
    assert ("(1, 59)" in replies[0]) == (version != OFP13_VERSION), replies  # 1.4+ defaults


def test_add_br_returns_once_the_management_socket_exists(switches: SwitchPair) -> None:
    """Right after ``ovs-vsctl add-br`` returns (it waits for cur_cfg), the bridge's
    ``DIR/<bridge>.mgmt`` is there and ``ovs-ofctl show`` works, on both switches, five
    bridges in a row."""
    for sw in (switches.ovs, switches.hl):
        assert sw is not None
        db = f"--db=unix:{sw.dir / 'db.sock'}"
        names = [f"ab{unique_suffix()}" for _ in range(5)]
        try:
            for br in names:
                subprocess.run(["ovs-vsctl", db, "--timeout=30", "add-br", br, "--", "set",
                                "bridge", br, "datapath_type=dummy"],
                               env=sw.env, check=True, timeout=60, capture_output=True)  # fmt: skip
                there = (sw.dir / f"{br}.mgmt").exists()
                show = subprocess.run(["ovs-ofctl", "show", br], env=sw.env, timeout=30,
                                      capture_output=True, text=True)  # fmt: skip
                assert there and show.returncode == 0, (type(sw).__name__, br, show.stderr)
        finally:
            for br in names:
                subprocess.run(["ovs-vsctl", db, "--timeout=30", "--if-exists", "del-br", br],
                               env=sw.env, timeout=60, capture_output=True)  # fmt: skip


def test_a_changed_ofport_request_is_applied_as_open_vswitch(switches: SwitchPair) -> None:
    """Two dummy ports asked for 5 and 6, then in one transaction for 9 and 5 (the second
    takes the first's old number): ``show`` the same on both switches each time."""
    br = switches.bridge
    pa, pb = (f"{n}{unique_suffix()}"[:15] for n in ("opa", "opb"))

    def same_show(*want: str) -> str:
        def lines() -> tuple[str, str]:
            o, h = switches.ofctl("show", "{br}")
            return normalize(o.text()), normalize(h.text())

        eventually(lambda: all(w in lines()[1] for w in want))
        a, b = lines()
        assert a == b, "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True),
                                                    "ovs", "hitless"))  # fmt: skip
        return b

    switches.vsctl("add-port", br, pa, "--", "set", "interface", pa, "type=dummy",
                   "ofport_request=5", "--", "add-port", br, pb, "--", "set", "interface", pb,
                   "type=dummy", "ofport_request=6")  # fmt: skip
    try:
        assert " 5(" + pa in same_show(f" 5({pa})", f" 6({pb})")
        switches.vsctl("set", "interface", pa, "ofport_request=9", "--", "set", "interface", pb,
                       "ofport_request=5")  # fmt: skip
        shown = same_show(f" 9({pa})", f" 5({pb})")
        assert f" 9({pa})" in shown and f" 5({pb})" in shown, shown
    finally:
        switches.vsctl("--if-exists", "del-port", br, pa, "--", "--if-exists", "del-port", br, pb)
