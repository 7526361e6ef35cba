"""hitless: a virtual switch that can be upgraded, downgraded or restarted in place.

Layers (one package each, see docs/architecture.md):
  packet/    flow keys and packet parsing (pure)
  datapath/  the fast path: dummy (in memory) and netdev (AF_PACKET) providers
  ofproto/   bridge logic: NORMAL switching, MAC learning, translation, revalidation
  config/    the OVSDB configuration model and the IDL adapter
  daemon/    hitless-vswitchd: wires the layers to the world (event loop, unixctl)
  handoff/   the hitless handoff protocol and the state snapshots it carries
"""

import sys

__version__ = "0.1.0"


def refuse_eventlet() -> None:
    """Make ``import eventlet`` fail in this process, as if it were not installed.

    The ``ovs`` library's poller imports eventlet whenever it is installed (os-ken, the
    test peer, installs it), and eventlet drags in greenlet and dnspython, whose import
    prints CryptographyDeprecationWarning lines into our log and error messages. The
    switch never uses green threads. Called first thing by both entry points
    (``hitless`` and ``hitless-vswitchd``), before anything imports ``ovs.poller``; a
    process that already imported eventlet (a test process with os-ken) is left alone.
    """
    if "eventlet" not in sys.modules:
        sys.modules["eventlet"] = None  # type: ignore[assignment]
