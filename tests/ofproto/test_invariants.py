"""Property test: whatever happens, after ``run`` every installed megaflow is exactly what
translating it now would give (no flow sends traffic the wrong way after a change),
the bridge's flow records match the datapath, and megaflows never overlap."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hitless.ofproto.xlate import xlate_normal
from tests.ofproto.helpers import BCAST, P, Rig, frame, mac

PORTS = ["p1", "p2", "p3", "p4"]
VLAN_CHOICES = [
    P(),
    P(tag=10),
    P(tag=20),
    P(trunks=frozenset({10})),
    P(tag=10, vlan_mode="native-untagged"),
]

op = st.one_of(
    st.tuples(
        st.just("send"),
        st.sampled_from(PORTS),
        st.integers(1, 6),  # src host
        st.one_of(st.integers(1, 6), st.just(0)),  # dst host, 0 = broadcast
        st.sampled_from([None, 0, 10, 20]),  # vid
    ),
    st.tuples(st.just("fast"), st.sampled_from(PORTS), st.integers(1, 6), st.integers(1, 6)),
    st.tuples(st.just("time"), st.sampled_from([0.3, 1.0, 4.0, 12.0])),
    st.tuples(st.just("flush"), st.sampled_from([None, "p1", "p2"])),
    st.tuples(st.just("vlan"), st.sampled_from(PORTS), st.integers(0, len(VLAN_CHOICES) - 1)),
    st.tuples(st.just("remove"), st.sampled_from(PORTS)),
    st.tuples(st.just("link"), st.sampled_from(PORTS), st.booleans()),
    st.tuples(st.just("admin"), st.sampled_from(PORTS), st.booleans()),
)


def check(r: Rig) -> None:
    flows = list(r.dp.flow_dump())
    assert {f.match for f in flows} == set(r.bridge.revalidator.ukeys)
    for f in flows:
        x = xlate_normal(r.bridge.state, f.match.key)
        assert x.mask == f.match.mask, f"{f.match}: stale mask"
        assert x.actions == f.actions, f"{f.match}: {f.actions} but now {x.actions}"
    # non-overlap: each flow's own key matches only itself
    for f in flows:
        hits = [g for g in flows if g.match.matches(f.match.key)]
        assert hits == [f] or len(hits) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=40))
def test_installed_flows_always_match_current_translation(ops: list[tuple]) -> None:
    ports = {n: P() for n in PORTS}
    r = Rig(dict(ports), **{"mac-aging-time": "10", "max-idle": "5000", "mac-table-size": "5"})
    for o in ops:
        kind = o[0]
        if kind == "send" or kind == "fast":
            if kind == "send":
                _, port, s, d, vid = o
            else:
                _, port, s, d = o
                vid = None
            if r.bridge.ofport_of(port) is None:
                continue
            r.dp.receive(r.no(port), frame(BCAST if d == 0 else mac(d), mac(s), vid=vid))
            if kind == "send":
                r.run()
        elif kind == "time":
            r.advance(o[1])
        elif kind == "flush":
            r.bridge.fdb_flush(port=None if o[1] is None else r.bridge.ofport_of(o[1]))
        elif kind == "vlan":
            base = VLAN_CHOICES[o[2]]
            cur = ports.get(o[1], P())
            ports[o[1]] = P(base.tag, base.trunks, base.vlan_mode, admin_state=cur.admin_state)
            r.reconfigure(dict(ports))
        elif kind == "remove":
            if o[1] in ports:
                del ports[o[1]]
            else:
                ports[o[1]] = P()
            r.reconfigure(dict(ports))
        elif kind == "link":
            no = r.bridge.ofport_of(o[1])
            if no is not None:
                r.dp.set_link(no, o[2])
                r.run()
        elif kind == "admin" and o[1] in ports:
            cur = ports[o[1]]
            ports[o[1]] = P(
                cur.tag, cur.trunks, cur.vlan_mode, admin_state="up" if o[2] else "down"
            )
            r.reconfigure(dict(ports))
        r.run()
        check(r)
