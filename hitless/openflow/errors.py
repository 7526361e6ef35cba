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
        """The OFPT_ERROR message (§7.4.4) to send back for this error."""
        length = 12 + len(self.data)
        return (
            struct.pack("!BBHIHH", version, MsgType.ERROR, length, self.xid, self.type, self.code)
            + self.data
        )

    def __repr__(self) -> str:
        return (
            f"RemoteProtocolError({self.message!r}, type={self.type}, code={self.code}, "
            f"xid={self.xid})"
        )
