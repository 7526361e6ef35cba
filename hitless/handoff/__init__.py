"""The hitless handoff: the sans-IO protocol between an old and a new process
(``protocol``) and the socket transport with SCM_RIGHTS and peer-credential checks
(``transport``). The state it carries is ``hitless.state``'s (records, versions, codec,
digests). The daemon wires them to bridges and datapaths; this package must not import
daemon or config.ovsdb."""
