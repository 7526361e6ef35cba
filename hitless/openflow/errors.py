"""Errors that say who is at fault.

``RemoteProtocolError``: the peer sent something malformed, truncated or unsupported.
It carries the OFPT_ERROR type and code the specification (§7.4.4) names for the case,
the offending message's xid and its first bytes (at least 64, or all of it), so the
caller can answer with ``error.reply(version)``. ``LocalProtocolError``: we asked the
codec or the connection for something the protocol does not allow (our bug).
"""

from __future__ import annotations

import struct

from hitless.openflow.constants import OFP13_VERSION, MsgType

ERROR_DATA_LEN = 64  # §7.4.4: "at least 64 bytes of the failed request"
BUNDLE_FAILED = 17  # OFPET_BUNDLE_FAILED (1.4)
ONF_EXPERIMENTER = 0x4F4E4600


class OpenFlowError(Exception):
    """Base class of every error this package raises."""


class LocalProtocolError(OpenFlowError):
    """Our own misuse: encoding an impossible value, sending in the wrong state."""


class RemoteProtocolError(OpenFlowError):
    """The peer's fault. ``type``/``code`` are the OFPT_ERROR to answer with."""

    def __init__(
        self, message: str, type: int, code: int, *, xid: int = 0, data: bytes = b""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = int(type)
        self.code = int(code)
        self.xid = xid
        self.data = data

    def with_request(self, request: bytes, xid: int) -> RemoteProtocolError:
        """The same error, attached to the offending message (its xid and first bytes)."""
        return RemoteProtocolError(
            self.message, self.type, self.code, xid=xid, data=bytes(request[:ERROR_DATA_LEN])
        )

    def reply(self, version: int = OFP13_VERSION) -> bytes:
        """The OFPT_ERROR message (§7.4.4) to send back for this error (in OpenFlow 1.0,
        with the type and code Open vSwitch uses for it there)."""
        if version == 4 and self.type == BUNDLE_FAILED:
            # 1.3 has bundles only as the ONF extension: its errors are ONF experimenter
            # errors, code 2300 + the 1.4 code (what Open vSwitch sends and ovs-ofctl reads).
            length = 16 + len(self.data)
            head = struct.pack("!BBHIHHI", version, MsgType.ERROR, length, self.xid, 0xFFFF,
                               2300 + self.code, ONF_EXPERIMENTER)  # fmt: skip
            return head + self.data
        length = 12 + len(self.data)
        etype, code = (self.type, self.code) if version > 1 else error_code10(self.type, self.code)
        return (
            struct.pack("!BBHIHH", version, MsgType.ERROR, length, self.xid, etype, code)
            + self.data
        )

    def __repr__(self) -> str:
        return (
            f"RemoteProtocolError({self.message!r}, type={self.type}, code={self.code}, "
            f"xid={self.xid})"
        )


# 1.1+ (type, code) -> 1.0 (type, code), as Open vSwitch encodes them for 1.0 peers.
_ERRORS10: dict[tuple[int, int], tuple[int, int]] = {
    (1, 9): (1, 512),  # OFPBRC_BAD_TABLE_ID
    (1, 10): (1, 5),  # OFPBRC_IS_SLAVE -> EPERM
    (1, 11): (1, 514),  # OFPBRC_BAD_PORT
    (2, 10): (1, 522),  # OFPBAC_MATCH_INCONSISTENT
    (2, 13): (1, 523),  # OFPBAC_BAD_SET_TYPE
    (2, 14): (1, 524),  # OFPBAC_BAD_SET_LEN
    (2, 15): (1, 525),  # OFPBAC_BAD_SET_ARGUMENT
    (3, 1): (2, 257),  # OFPBIC_UNSUP_INST
    (4, 5): (1, 262),  # OFPBMC_BAD_WILDCARDS
    (4, 6): (0, 263),  # OFPBMC_BAD_FIELD (sic: Open vSwitch uses type 0)
    (4, 7): (1, 258),  # OFPBMC_BAD_VALUE
    (4, 8): (1, 259),  # OFPBMC_BAD_MASK
    (4, 9): (1, 260),  # OFPBMC_BAD_PREREQ
    (4, 10): (1, 261),  # OFPBMC_DUP_FIELD
    (5, 1): (3, 0),  # OFPFMFC_TABLE_FULL -> ALL_TABLES_FULL
    (5, 3): (3, 1),  # OVERLAP
    (5, 4): (3, 2),  # EPERM
    (5, 6): (3, 4),  # BAD_COMMAND
    (5, 7): (3, 258),  # BAD_FLAGS
    (7, 0): (4, 0),  # OFPPMFC_BAD_PORT
    (7, 1): (4, 1),  # OFPPMFC_BAD_HW_ADDR
    (9, 0): (5, 0),  # OFPQOFC_BAD_PORT
    (9, 1): (5, 1),  # OFPQOFC_BAD_QUEUE
    (9, 2): (5, 2),  # OFPQOFC_EPERM
    (11, 2): (1, 513),  # OFPRRFC_BAD_ROLE
}
_UNENCODABLE10 = (1, 521)  # NXBRC_UNENCODABLE_ERROR


def error_code10(etype: int, code: int) -> tuple[int, int]:
    """The OpenFlow 1.0 (type, code) Open vSwitch sends for a 1.1+ error."""
    if etype in (0, 1, 2) and (etype, code) not in _ERRORS10:
        return (etype, code) if code <= 8 else _UNENCODABLE10
    if etype == 6:  # group errors keep their numbers (Nicira's 1.0 groups)
        return etype, code
    return _ERRORS10.get((etype, code), _UNENCODABLE10)
