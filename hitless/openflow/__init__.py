"""OpenFlow 1.0 to 1.5 with Open vSwitch's Nicira extensions, sans-IO: the wire
codec and the connection state machine.

Owns: wire constants (``constants``), messages as immutable values with
``encode(version)`` / ``decode(data)`` (``messages``, ``multipart``), match fields
(``match``; the field table, Open vSwitch's NXM fields included, in ``nxm``), actions and
instructions (``actions``; Nicira's extension actions in ``nx_actions``), errors that say who is at fault
(``errors``), and the per-connection protocol state: framing, HELLO negotiation, echo,
keepalive timers, xids, exportable session state (``connection``). OpenFlow 1.0
(``ofp10``) and Nicira's NXM and messages (``nx``, ``nxmsg``) translate to and from the
same values, so the pipeline sees one vocabulary whatever the version; ``wire_forms``
gives a stored rule's actions the form the reader's version takes (move, load, set_field).

Must not import: sockets, asyncio, time, or any other hitless layer (datapath, ofproto,
daemon, config, handoff). The pipeline decides what messages mean; the daemon does I/O.
"""

from hitless.openflow import constants, flowmon, nx_actions, nx_ct, ofp10
from hitless.openflow.actions import *  # noqa: F403
from hitless.openflow.actions import __all__ as _actions_all
from hitless.openflow.connection import *  # noqa: F403
from hitless.openflow.connection import __all__ as _connection_all
from hitless.openflow.errors import LocalProtocolError, OpenFlowError, RemoteProtocolError
from hitless.openflow.match import Match, Oxm, field
from hitless.openflow.messages import *  # noqa: F403
from hitless.openflow.messages import __all__ as _messages_all
from hitless.openflow.multipart import *  # noqa: F403
from hitless.openflow.multipart import __all__ as _multipart_all

__all__ = [
    "LocalProtocolError",
    "Match",
    "OpenFlowError",
    "Oxm",
    "RemoteProtocolError",
    "constants",
    "flowmon",
    "nx_actions",
    "nx_ct",
    "field",
    "ofp10",
    *_actions_all,
    *_connection_all,
    *_messages_all,
    *_multipart_all,
]
