"""The wire form of a rule's actions for the OpenFlow version of the peer that reads
them: a rule added in one version and dumped in another must be sent the way Open
vSwitch 3.1 sends it in the reader's version, or stock ``ovs-ofctl`` (and controllers)
fail to decode the reply.

Three actions change form (checked against real Open vSwitch by tests/ovn/
test_ovn_flows_vs_ovs.py, every version both ways):

* ``move``: OFPAT_COPY_FIELD from OpenFlow 1.5 on (Open vSwitch refuses NXAST_REG_MOVE
  there), ONF's copy-field (3200) only in 1.3, Nicira's NXAST_REG_MOVE otherwise.
* ``load`` (NXAST_REG_LOAD/LOAD2) from OpenFlow 1.5 on, which only has set_field.
* ``set_field`` where OFPAT_SET_FIELD cannot carry it: in OpenFlow 1.0, which has none
  (the fields 1.0 sets with its own actions, mod_dl_src..., stay for the 1.0 encoder),
  and a masked one before 1.5. It becomes one NXAST_REG_LOAD per run of contiguous mask
  bits (at most 64 bits each), or NXAST_REG_LOAD2 when the field has no NXM header.

Nested lists (``clone``, ``ct(exec(...))``) are converted too (``NxAction.map_nested``).
Pure functions over frozen values; no I/O.
"""

from __future__ import annotations

from hitless.openflow.actions import Action, ApplyActions, Instruction, SetField, WriteActions
from hitless.openflow.constants import OxmClass
from hitless.openflow.match import Oxm
from hitless.openflow.nx_actions import (
    MOVE_NX,
    MOVE_OF15,
    MOVE_ONF,
    NxAction,
    RegLoad,
    RegLoad2,
    RegMove,
)
from hitless.openflow.nxm import FieldRef, Subfield, spec_of
from hitless.openflow.ofp10 import carries_set_field10

__all__ = ["instructions_for"]

OF10, OF13, OF15 = 1, 4, 6


def _move_form(form: str, version: int) -> str:
    if version >= OF15:
        return MOVE_OF15
    return MOVE_ONF if form == MOVE_ONF and version == OF13 else MOVE_NX


def _runs(mask: int) -> list[tuple[int, int]]:
    """(offset, width) of each run of 1 bits in ``mask``, split at 64 bits."""
    out = []
    ofs = 0
    while mask >> ofs:
        if not (mask >> ofs) & 1:
            ofs += 1
            continue
        end = ofs
        while (mask >> end) & 1 and end - ofs < 64:
            end += 1
        out.append((ofs, end - ofs))
        ofs = end
    return out


def _as_loads(oxm: Oxm, version: int) -> bool:
    if version == OF10:
        return not carries_set_field10(oxm)
    return oxm.mask is not None and version < OF15


def _loads(oxm: Oxm) -> list[Action]:
    """A set_field as Open vSwitch writes it where OFPAT_SET_FIELD cannot carry it."""
    spec = spec_of(oxm)
    c, f, e = spec.headers[0] if spec is not None else (oxm.oxm_class, oxm.field, None)
    if spec is None or c == OxmClass.EXPERIMENTER or e is not None or spec.variable:
        return [RegLoad2(oxm)]  # (a tun_metadata: as wide as its mapping, not a whole field)
    ref = FieldRef(c, f, spec.nbytes, e)
    full = (1 << (spec.nbytes * 8)) - 1
    mask = full if oxm.mask is None else oxm.mask & full
    return [
        RegLoad(Subfield(ref, ofs, n), (oxm.value >> ofs) & ((1 << n) - 1))
        for ofs, n in _runs(mask)
    ]


def _load_oxm(a: RegLoad) -> Oxm:
    """A Nicira load as the (masked) field it sets."""
    ref, d = a.dst.ref, a.dst
    mask = ((1 << d.nbits) - 1) << d.ofs
    full = mask == (1 << (ref.nbytes * 8)) - 1
    basic = ref.oxm_class == OxmClass.OPENFLOW_BASIC
    return Oxm(ref.field, a.value << d.ofs, None if full else mask, ref.oxm_class,
               0 if basic else ref.nbytes, ref.experimenter)  # fmt: skip


def _actions_for(actions: tuple[Action, ...], version: int) -> tuple[Action, ...]:
    out: list[Action] = []
    for a in actions:
        if isinstance(a, RegMove):
            form = _move_form(a.form, version)
            out.append(a if form == a.form else RegMove(a.src, a.dst, form))
        elif isinstance(a, SetField) and _as_loads(a.field, version):
            out.extend(_loads(a.field))
        elif isinstance(a, RegLoad) and version >= OF15:
            out.append(SetField(_load_oxm(a)))
        elif isinstance(a, RegLoad2) and version >= OF15:
            out.append(SetField(a.field))
        elif isinstance(a, NxAction):
            out.append(a.map_nested(lambda nested: _actions_for(nested, version)))
        else:
            out.append(a)
    return tuple(out)


def instructions_for(
    instructions: tuple[Instruction, ...], version: int
) -> tuple[Instruction, ...]:
    """``instructions`` as a peer speaking ``version`` must receive them."""
    out: list[Instruction] = []
    for i in instructions:
        if isinstance(i, (ApplyActions, WriteActions)):
            i = type(i)(_actions_for(i.actions, version))
        out.append(i)
    return tuple(out)
