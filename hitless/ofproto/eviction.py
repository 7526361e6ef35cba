"""Flow_Table eviction groups (``groups``), as Open vSwitch applies them: when a full
table with ``overflow_policy=evict`` must make room, the evictable rules (those with a
timeout) are split into groups by the value their match gives each listed subfield
(hitless.config.subfield; a field a rule does not match counts as 0), and the rule to
evict comes from the largest group (then the lowest importance, then the soonest to
expire: hitless.ofproto.bridge).

Pure: reads OpenFlow matches; must not import daemon, datapath or handoff.
"""

from __future__ import annotations

from hitless.config.subfield import Subfield
from hitless.openflow.match import Match

__all__ = ["group_key"]


def group_key(match: Match, subfields: tuple[Subfield, ...]) -> tuple[int, ...]:
    """The values a rule's match gives each subfield (its eviction group)."""
    values = {o.name: o.value & (o.mask if o.mask is not None else -1) for o in match.fields}
    out = []
    for sf in subfields:
        v = values.get(sf.field, 0) >> sf.start
        out.append(v if sf.n_bits is None else v & ((1 << sf.n_bits) - 1))
    return tuple(out)
