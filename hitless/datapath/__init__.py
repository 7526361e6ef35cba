"""The datapath layer: forwards packets by megaflows and raises upcalls on a miss.

Owns the providers (``dummy`` in memory, ``netdev`` over AF_PACKET). Must not import
ofproto, config, daemon or handoff: everything above talks to it through ``Datapath``.
"""

from hitless.datapath.actions import (
    Action,
    Output,
    PopVlan,
    PushVlan,
    Sample,
    SetField,
    SetPriority,
    Userspace,
    format_actions,
)
from hitless.datapath.base import (
    Datapath,
    DatapathError,
    DpFlow,
    DpPort,
    FlowStats,
    PortStats,
    Upcall,
)
from hitless.datapath.registry import open_datapath, provider

__all__ = [
    "Action",
    "Datapath",
    "DatapathError",
    "DpFlow",
    "DpPort",
    "FlowStats",
    "Output",
    "PopVlan",
    "PortStats",
    "PushVlan",
    "Sample",
    "SetField",
    "SetPriority",
    "Upcall",
    "Userspace",
    "format_actions",
    "open_datapath",
    "provider",
]
