"""The ct / nat / ct_clear Nicira actions and the ct_* NXM fields: wire round trips,
Open vSwitch's text, what a flow-mod may not do, and the recirculation ids translation
derives from frozen state. (Stock ovs-ofctl reading and writing these bytes is in
tests/daemon/test_ct_vs_ovs.py; os-ken's ovs-ofctl golden packets in test_golden.py.)"""

from __future__ import annotations

import ipaddress

import pytest

from hitless.ofproto import ct_xlate
from hitless.ofproto.oftable import OfState
from hitless.openflow._wire import Reader
from hitless.openflow.actions import SetField, parse_actions
from hitless.openflow.errors import RemoteProtocolError
from hitless.openflow.match import Oxm
from hitless.openflow.nx_actions import RegLoad
from hitless.openflow.nx_ct import (
    NX_CT_F_COMMIT,
    NX_CT_F_FORCE,
    CtAction,
    CtClear,
    NatAction,
)
from hitless.openflow.nxm import FieldRef, Subfield, spec_by_name

V4 = ipaddress.ip_address


def mark_oxm(value: int, mask: int | None = None) -> Oxm:
    return Oxm(107, value, mask, oxm_class=1, width=4)


ACTIONS = [
    CtAction(),
    CtAction(NX_CT_F_COMMIT, zone=5, table=1),
    CtAction(NX_CT_F_COMMIT | NX_CT_F_FORCE, zone_field=Subfield(FieldRef.of("reg13"), 0, 16)),
    CtAction(
        NX_CT_F_COMMIT,
        zone=7,
        actions=(
            NatAction(1 | 4 | 16, V4("10.0.0.1").packed, V4("10.0.0.5").packed, 2000, 2999),
            SetField(mark_oxm(1)),
            RegLoad(Subfield(FieldRef.of("ct_label"), 0, 1), 1),
        ),
    ),
    CtAction(actions=(NatAction(),)),
    CtAction(table=3, actions=(NatAction(2, ipaddress.ip_address("fe80::1").packed, port_min=80),)),
    CtClear(),
]


@pytest.mark.parametrize("action", ACTIONS, ids=str)
def test_wire_round_trip(action: object) -> None:
    data = action.encode()  # type: ignore[attr-defined]
    assert len(data) % 8 == 0
    assert parse_actions(Reader(data)) == (action,)


def test_open_vswitch_text() -> None:
    assert [str(a) for a in ACTIONS] == [
        "ct",
        "ct(commit,table=1,zone=5)",
        "ct(force,commit,zone=NXM_NX_REG13[0..15])".replace("NXM_NX_REG13", "reg13"),
        "ct(commit,zone=7,nat(src=10.0.0.1-10.0.0.5:2000-2999,persistent,random))",
        "ct(nat)",
        "ct(table=3,nat(dst=[fe80::1]:80))",
        "ct_clear",
    ]


def test_ct_fields_are_registered() -> None:
    for name, size in (("ct_state", 4), ("ct_zone", 2), ("ct_mark", 4), ("ct_label", 16),
                       ("ct_nw_src", 4), ("ct_tp_dst", 2), ("ct_nw_proto", 1)):  # fmt: skip
        spec = spec_by_name(name)
        assert spec is not None and spec.nbytes == size, name


def test_what_a_flow_mod_may_not_do() -> None:
    of = OfState()
    of.validate_actions(
        [ACTIONS[3], CtClear(), CtAction(zone_field=Subfield(FieldRef.of("reg0"), 4, 28))]
    )
    bad = [
        NatAction(1, V4("10.0.0.1").packed),  # nat outside ct
        CtAction(actions=(SetField(mark_oxm(1)),)),  # setting the mark needs commit
        CtAction(NX_CT_F_COMMIT, actions=(RegLoad(Subfield(FieldRef.of("reg0"), 0, 8), 1),)),
        CtAction(NX_CT_F_COMMIT, actions=(NatAction(), NatAction())),
        CtAction(alg=21),  # FTP helper: not supported
    ]
    for a in bad:
        with pytest.raises(RemoteProtocolError):
            of.validate_actions([a])


def test_nat_range_errors() -> None:
    body = bytes.fromhex("ffff0010000023200024" + "0000" + "0003" + "0000")  # src|dst
    with pytest.raises(RemoteProtocolError):
        parse_actions(Reader(body))


def test_frozen_state_and_recirc_ids() -> None:
    blob = ct_xlate.encode_frozen(3, 7, (5 << 600) | 9)
    assert ct_xlate.decode_frozen(blob) == (3, 7, (5 << 600) | 9)
    rid = ct_xlate.recirc_id_for(blob, {})
    assert rid != 0 and ct_xlate.recirc_id_for(blob, {rid: blob}) == rid  # stable
    other = ct_xlate.encode_frozen(4, 7, 0)
    assert ct_xlate.recirc_id_for(other, {ct_xlate.recirc_id_for(other, {}): blob}) != (
        ct_xlate.recirc_id_for(other, {})
    )  # a collision probes on
