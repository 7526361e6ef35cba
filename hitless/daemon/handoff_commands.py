"""Management commands about handoffs and state: ``upgrade/status`` and ``state/dump``."""

from __future__ import annotations

import base64
import json

import msgspec

import hitless
from hitless.daemon.takeover import export_switch
from hitless.daemon.unixctl import CommandError, Request, command
from hitless.state import ledger, snapshot


@command("upgrade/status")
def upgrade_status(req: Request) -> str:
    sw = req.switch
    server = getattr(sw, "handoff", None)
    status = server.status() if server is not None else {"current": None, "last": None}
    status["taken_over"] = getattr(sw, "takeover_report", None)
    status["software"] = hitless.__version__
    status["state_versions"] = snapshot.readable_versions()
    return json.dumps(status, indent=2, sort_keys=True) + "\n"


@command("state/dump", "[--binary]", 0, 1)
def state_dump(req: Request) -> str:
    """The learned state as JSON, or (--binary) the encoded snapshot in base64."""
    if req.args and req.args[0] != "--binary":
        raise CommandError(f"unknown option {req.args[0]!r} (expected --binary)")
    now = req.switch.clock()
    state, _ = export_switch(req.switch, now, final=False)
    if req.args:
        data = snapshot.encode(state, software=hitless.__version__, taken=now)
        return base64.b64encode(data).decode() + "\n"
    digests = {}
    for v in snapshot.readable_versions():
        try:
            digests[str(v)] = ledger.state_digest(snapshot.as_version(state, v))
        except snapshot.SnapshotError:
            pass  # this state cannot be written as version v (e.g. it has OpenFlow rules)
    doc = {
        "software": hitless.__version__,
        "state_version": snapshot.CURRENT_VERSION,
        "summary": snapshot.summary(state),
        "digest": ledger.state_digest(state),
        "digests": digests,  # the same state as each readable version would carry it
        "state": msgspec.to_builtins(state),
    }
    return json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n"
