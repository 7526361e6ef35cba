"""The bridge logic above the datapath: ports and ofport numbers, NORMAL switching
(MAC learning, VLANs, flooding), translation of packets into megaflows, and the
revalidator that keeps installed megaflows true. Pure decision logic: takes ``now`` as
an argument, never imports socket, asyncio or time; talks to the world only through the
``Datapath`` interface. Must not import config.ovsdb, daemon or handoff.

Modules: ``bridge`` (the Bridge the daemon drives), ``ports`` (ofport numbers),
``mac_learning`` (the MAC table), ``xlate`` (NORMAL translation, reusable by the
OpenFlow pipeline), ``revalidator`` (installed-flow records, indexes and sweeps),
``oftable`` (OpenFlow tables, groups and meters as plain data with export/import),
``ofxlate`` (the OpenFlow pipeline walk: key -> datapath actions + megaflow mask),
``ct_xlate`` and ``frozen`` (what a recirculation or a controller pause freezes: the
table, or the actions left with the action set and register stack),
``ofhandler`` (what OpenFlow requests mean to a bridge; sans-IO, the daemon does I/O).
"""

from hitless.ofproto.bridge import Bridge
from hitless.ofproto.mac_learning import MacTable
from hitless.ofproto.ofhandler import OfHandler, OfSession
from hitless.ofproto.oftable import OfState
from hitless.ofproto.xlate import PortView, SwitchState, VlanConfig, Xlate, xlate_normal

__all__ = [
    "Bridge",
    "MacTable",
    "OfHandler",
    "OfSession",
    "OfState",
    "PortView",
    "SwitchState",
    "VlanConfig",
    "Xlate",
    "xlate_normal",
]
