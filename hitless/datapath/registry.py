"""Which provider implements which ``Bridge.datapath_type``."""

from __future__ import annotations

import importlib

from hitless.datapath.base import Datapath, DatapathError

PROVIDERS: dict[str, str] = {
    "dummy": "hitless.datapath.dummy:DummyDatapath",
    "netdev": "hitless.datapath.netdev:NetdevDatapath",
    "ebpf": "hitless.datapath.ebpf.provider:EbpfDatapath",
}


def provider(dp_type: str) -> type[Datapath]:
    try:
        target = PROVIDERS[dp_type]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise DatapathError(
            f"unknown datapath type {dp_type!r} (this switch supports: {known})"
        ) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]


def open_datapath(dp_type: str, name: str) -> Datapath:
    return provider(dp_type)(name)
