"""The hitless handoff: the sans-IO protocol between an old and a new process
(``protocol``), the socket transport with SCM_RIGHTS and peer-credential checks
(``transport``), and the pure engine that pre-copies, freezes, restores and verifies the
learned state of a set of bridges (``engine``: no socket, no OVSDB, no ``Switch``). The
state it carries is ``hitless.state``'s (records, versions, codec, digests). The daemon
wires them to its switch and sockets; this package must not import daemon or
config.ovsdb."""
