"""The impact harness: measures what an operation on the switch does to traffic.

Owns the traffic agents (``agents``, standard library only, run inside host
namespaces), the pure analysis of their records (``analysis``), the runner that starts
them around an operation (``run``), the report forms (``report``: table, JSON,
timeline plot, docs markdown), the OpenFlow rules it installs and reads back
(``rules``; the stateful class's firewall and DNAT in ``stateful``), and the switches it drives from outside (``switches``). Must not import the switch layers (datapath, ofproto,
daemon, handoff): the operation under test comes in as a callback.

The public names below are loaded on first use, so that
``python -m hitless.impact.agents`` (which imports this package) starts fast::

    from hitless.impact import measure, Rates, Phase, report
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ALL_CLASSES", "ImpactError", "ImpactResult", "Phase", "Rates", "measure", "report"]

_WHERE = {
    "ALL_CLASSES": "run",
    "ImpactError": "run",
    "Rates": "run",
    "measure": "run",
    "ImpactResult": "analysis",
    "Phase": "analysis",
}


def __getattr__(name: str) -> Any:
    if name == "report":
        return importlib.import_module("hitless.impact.report")
    if name in _WHERE:
        return getattr(importlib.import_module(f"hitless.impact.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hitless.impact' has no attribute {name!r}")
