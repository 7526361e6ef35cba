"""Flow_Table groups' subfields and prefixes, parsed as Open vSwitch reads them."""

from __future__ import annotations

import pytest

from hitless.config.subfield import Subfield, parse_subfield, prefix_fields


def test_subfields_in_open_vswitch_forms() -> None:
    assert parse_subfield("NXM_OF_IN_PORT[]") == Subfield("in_port")
    assert parse_subfield("in_port") == Subfield("in_port")
    assert parse_subfield("NXM_NX_REG0[8..15]") == Subfield("reg0", 8, 8)
    assert parse_subfield("nw_dst[31]") == Subfield("ipv4_dst", 31, 1)
    for bad, why in (("no_such[]", "not a field"), ("reg0[9..2]", "before the start"),
                     ("reg0[", "is not FIELD")):  # fmt: skip
        with pytest.raises(ValueError, match=why):
            parse_subfield(bad)


def test_prefix_fields() -> None:
    assert prefix_fields(("ip_dst", "nw_src")) == (("ip_dst", "ip_src"), [])
    assert prefix_fields(("none", "ip_dst")) == ((), [])
    assert prefix_fields(()) == (("ip_dst", "ip_src"), [])  # Open vSwitch's default
    assert prefix_fields(("ipv6_src", "ip_dst")) == (("ip_dst",), ["ipv6_src"])
