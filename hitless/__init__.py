"""hitless: a virtual switch that can be upgraded, downgraded or restarted in place.

Layers (one package each, see docs/architecture.md):
  packet/    flow keys and packet parsing (pure)
  datapath/  the fast path: dummy (in memory) and netdev (AF_PACKET) providers
  ofproto/   bridge logic: NORMAL switching, MAC learning, translation, revalidation
  config/    the OVSDB configuration model and the IDL adapter
  daemon/    hitless-vswitchd: wires the layers to the world (event loop, unixctl)
  handoff/   the hitless handoff protocol and the state snapshots it carries
"""

__version__ = "0.1.0"
