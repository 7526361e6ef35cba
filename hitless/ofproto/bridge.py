"""One bridge: owns its datapath's ports, the MAC table and the megaflows it installs.

INTERFACE CONTRACT (used by the daemon; implementation in progress):

    Bridge(name: str, datapath: Datapath)
    reconfigure(cfg: BridgeConfig, now: float) -> dict[str, InterfaceStatus]
        Incremental: attaches new interfaces, detaches removed ones, keeps ofport
        numbers of existing ones, re-applies VLAN settings; never disturbs traffic on
        ports that did not change. Returns status for every interface in cfg.
    run(now: float) -> None
        Handles upcalls waiting in the datapath, ages the MAC table, revalidates.
    next_wakeup(now: float) -> float | None
        Absolute time the bridge next needs run() for timers (None = only on I/O).
    fdb_show() -> str          # "ovs-appctl fdb/show" text
    fdb_flush() -> int         # entries removed; revalidates
    dump_flows() -> str        # "ovs-appctl dpctl/dump-flows" text
    close() -> None
"""
