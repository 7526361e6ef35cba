"""A scoped ``Meter`` action (a port's egress policer): a drop skips only the actions it
governs, the rest of the list goes on; the scope survives the JSON form of a handoff and
the ebpf datapath's kernel encoding."""

from __future__ import annotations

from hitless.datapath.actions import Meter, Output, actions_from_json, actions_to_json
from hitless.datapath.ebpf.layout import decode_actions, encode_actions
from hitless.datapath.execute import apply_actions


def test_a_scoped_drop_skips_only_its_output() -> None:
    acts = (Output(1), Meter(7, 1), Output(2), Output(3))
    out, _ = apply_actions(b"x" * 60, acts, lambda mid, n: mid != 7)
    assert [p for p, _ in out] == [1, 3]
    out, _ = apply_actions(b"x" * 60, acts, lambda mid, n: True)
    assert [p for p, _ in out] == [1, 2, 3]
    # Unscoped: a drop ends the list (an OpenFlow meter instruction, ingress policing).
    out, _ = apply_actions(b"x" * 60, (Output(1), Meter(7), Output(2)), lambda mid, n: False)
    assert [p for p, _ in out] == [1]


def test_scope_round_trips() -> None:
    acts = (Meter(0xFFFF8002, 1), Output(2), Meter(5), Output(3))
    assert actions_from_json(actions_to_json(acts)) == acts
    assert actions_to_json((Meter(5),)) == [["meter", 5]]  # unscoped: as before
    data, n = encode_actions(acts, {2: 10, 3: 11}, slowpath=True)
    assert decode_actions(data, n) == acts
    assert str(Meter(9, 1)) == "meter(9,scope=1)" and str(Meter(9)) == "meter(9)"
