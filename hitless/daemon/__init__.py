"""The daemon ``hitless-vswitchd``: wires the layers to the world.

Owns the event loop (``switch.Switch``, one object holding all runtime state), the OVSDB
connection (through ``config.ovsdb``), the management commands (``unixctl``,
``commands``) and the run directory layout (``rundir``). It may import every other
layer; no other layer may import it (the CLI uses only ``rundir``).
"""
