"""Packets and flow keys: parsing raw frames into the canonical flow key, masks, and
formatting. Pure: imports nothing from the other layers, no I/O, no clock.
"""

from hitless.packet.flow import (
    FIELDS,
    KEY_LEN,
    VLAN_PRESENT,
    Match,
    extract_key,
    field,
    format_match,
    full_mask,
    make_key,
    make_mask,
    set_field,
)

__all__ = [
    "FIELDS",
    "KEY_LEN",
    "VLAN_PRESENT",
    "Match",
    "extract_key",
    "field",
    "format_match",
    "full_mask",
    "make_key",
    "make_mask",
    "set_field",
]
