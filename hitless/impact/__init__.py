"""The impact harness: measures what an operation on the switch does to traffic.

Owns the traffic agents (``agents``, standard library only, run inside host
namespaces), the pure analysis of their records (``analysis``), the runner that starts
them around an operation (``run``) and the report forms (``report``: table, JSON,
timeline plot, docs markdown). Must not import the switch layers (datapath, ofproto,
daemon, handoff): the operation under test comes in as a callback.

Nothing is imported here, so ``python -m hitless.impact.agents`` starts fast; use
``from hitless.impact.run import measure`` and ``from hitless.impact import report``.
"""
