"""Configuration: the immutable model (``model``) and the OVSDB adapter that computes it
from the database and writes status back (``ovsdb``). Must not import ofproto, datapath,
daemon or handoff."""

from hitless.config.model import (
    OFPP_LOCAL,
    BridgeConfig,
    ControllerConfig,
    InterfaceConfig,
    InterfaceStatus,
    PortConfig,
    SwitchConfig,
)

__all__ = [
    "OFPP_LOCAL",
    "BridgeConfig",
    "ControllerConfig",
    "InterfaceConfig",
    "InterfaceStatus",
    "PortConfig",
    "SwitchConfig",
]
