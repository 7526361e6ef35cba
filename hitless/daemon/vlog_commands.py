"""``vlog/list``, ``vlog/set``, ``vlog/reopen``, ``vlog/close``, ``vlog/list-pattern``,
``vlog/disable-rate-limit``, ``vlog/enable-rate-limit`` (hitless.daemon.vlog). A change
is saved for a ``hitless upgrade`` to carry (hitless.daemon.settings)."""

from __future__ import annotations

from hitless.daemon import settings, vlog
from hitless.daemon.unixctl import CommandError, Request, command


def _vlog() -> vlog.Vlog:
    v = vlog.current()
    if v is None:
        raise CommandError("logging is not configured in this process")
    return v


@command("vlog/list")
def vlog_list(req: Request) -> str:
    return _vlog().list()


@command("vlog/set", "{spec | PATTERN:destination:pattern}", 0, 1000)
def vlog_set(req: Request) -> str:
    v = _vlog()
    if not req.args:
        raise CommandError("vlog/set needs a spec: [module][:destination][:level]")
    for spec in req.args:
        try:
            v.set(spec)
        except vlog.VlogError as e:
            raise CommandError(str(e)) from None
    settings.save(req.switch)
    return ""


@command("vlog/reopen")
def vlog_reopen(req: Request) -> str:
    v = _vlog()
    if v.logfile is None:
        raise CommandError("Logging to file not configured")
    try:
        v.reopen()
    except OSError as e:
        raise CommandError(f"could not reopen {v.logfile}: {e.strerror or e}") from None
    return ""


@command("vlog/close")
def vlog_close(req: Request) -> str:
    _vlog().close()
    return ""


@command("vlog/list-pattern")
def vlog_list_pattern(req: Request) -> str:
    return (
        "         prefix                            format\n"
        "         ------                            ------\n"
        f"FILE     none                              {vlog.LOG_FORMAT}\n"
    )


def _rate_limit(req: Request, enabled: bool) -> str:
    try:
        _vlog().set_rate_limit(req.args, enabled)
    except vlog.VlogError as e:
        raise CommandError(str(e)) from None
    settings.save(req.switch)
    return ""


@command("vlog/disable-rate-limit", "[module]...", 0, 100)
def vlog_disable_rate_limit(req: Request) -> str:
    return _rate_limit(req, False)


@command("vlog/enable-rate-limit", "[module]...", 0, 100)
def vlog_enable_rate_limit(req: Request) -> str:
    return _rate_limit(req, True)
