"""Management command about the crash standby (hitless.daemon.standby): ``standby/show``."""

from __future__ import annotations

import json

from hitless.daemon.unixctl import Request, command


@command("standby/show")
def standby_show(req: Request) -> str:
    """The crash standby this daemon keeps (its pid, or null while none is connected),
    how many state mirrors it was sent and what the last one cost; and, if this process
    took over after a crash, how long that took."""
    sw = req.switch
    link = getattr(sw, "standby", None)
    doc = link.status() if link is not None else {"standby_pid": None, "disabled": True}
    report = getattr(sw, "takeover_report", None) or {}
    doc["crash_takeover_ms"] = report.get("crash_takeover_ms")
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
