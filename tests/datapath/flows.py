"""Helpers for the datapath tests on real veth pairs: whole-port flows."""

from __future__ import annotations

from hitless.datapath.actions import Action, Output
from hitless.datapath.base import Datapath
from hitless.packet.flow import Match, full_mask, make_key


def port_flow(dp: Datapath, in_port: int, *actions: Action) -> Match:
    """A flow matching only ``in_port`` with ``actions``."""
    m = Match.of(make_key(in_port=in_port), full_mask("in_port"))
    dp.flow_put(m, tuple(actions))
    return m


def cross_connect(dp: Datapath, a: int, b: int) -> None:
    """Everything from port a to port b and back."""
    port_flow(dp, a, Output(b))
    port_flow(dp, b, Output(a))
