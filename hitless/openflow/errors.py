"""Errors that say who is at fault.

``RemoteProtocolError``: the peer sent something malformed, truncated or unsupported.
It carries the OFPT_ERROR type and code the specification (§7.4.4) names for the case,
the offending message's xid and the message itself (the whole of it, as Open vSwitch 3.1
quotes it, cut only where the error would pass 65535 bytes), so the caller can answer
with ``error.reply(version)``. ``LocalProtocolError``: we asked the
codec or the connection for something the protocol does not allow (our bug).
"""

from __future__ import annotations

import struct

from hitless.openflow.constants import OFP13_VERSION, MsgType

MAX_LENGTH = 0xFFFF  # the largest OpenFlow message (a 16-bit length)
BUNDLE_FAILED = 17  # OFPET_BUNDLE_FAILED (1.4)
ONF_EXPERIMENTER = 0x4F4E4600
NX_EXPERIMENTER = 0x00002320
EXPERIMENTER_ERROR = 0xFFFF  # OFPET_EXPERIMENTER (1.2+)


class NxError:
    """Open vSwitch's own errors: (OFPBRC code in OpenFlow 1.0/1.1, experimenter code
    in 1.2+), as Open vSwitch 3.1's ofp-errors.h numbers them."""

    TLV_BAD_COMMAND = (527, 16)  # NXTTMFC_BAD_COMMAND
    TLV_BAD_OPT_LEN = (528, 17)  # NXTTMFC_BAD_OPT_LEN
    TLV_BAD_FIELD_IDX = (529, 18)  # NXTTMFC_BAD_FIELD_IDX
    TLV_TABLE_FULL = (530, 19)  # NXTTMFC_TABLE_FULL
    TLV_ALREADY_MAPPED = (531, 20)  # NXTTMFC_ALREADY_MAPPED
    TLV_DUP_ENTRY = (532, 21)  # NXTTMFC_DUP_ENTRY
    TLV_INVALID_DEL = (537, 38)  # NXTTMFC_INVALID_TLV_DEL: a flow uses the mapping
    INVALID_TLV_FIELD = (536, 37)  # NXFMFC_INVALID_TLV_FIELD: an unmapped tun_metadata
    RESUME_STALE = (534, 35)  # NXR_STALE: a continuation this switch did not make
    NOT_CONFIGURED = (535, 36)  # NXST_NOT_CONFIGURED
    UNENCODABLE = (521, 10)  # NXBRC_UNENCODABLE_ERROR: also a reply we could not encode


class OpenFlowError(Exception):
    """Base class of every error this package raises."""


class LocalProtocolError(OpenFlowError):
    """Our own misuse: encoding an impossible value, sending in the wrong state."""


class RemoteProtocolError(OpenFlowError):
    """The peer's fault. ``type``/``code`` are the OFPT_ERROR to answer with."""

    def __init__(
        self,
        message: str,
        type: int,
        code: int,
        *,
        xid: int = 0,
        data: bytes = b"",
        nx: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = int(type)
        self.code = int(code)
        self.xid = xid
        self.data = data
        self.nx = nx  # an NxError: Open vSwitch's own error, encoded per version

    @classmethod
    def nicira(cls, message: str, codes: tuple[int, int]) -> RemoteProtocolError:
        """One of Open vSwitch's own errors (``NxError``): OFPBRC code ``codes[0]`` in
        OpenFlow 1.0/1.1, Nicira experimenter code ``codes[1]`` from 1.2 on."""
        return cls(message, EXPERIMENTER_ERROR, codes[1], nx=codes)

    def with_request(self, request: bytes, xid: int) -> RemoteProtocolError:
        """The same error, attached to the offending message (its xid and its bytes: §7.4.4
        asks for at least 64, Open vSwitch 3.1 quotes all of them)."""
        return RemoteProtocolError(
            self.message, self.type, self.code, xid=xid, data=bytes(request), nx=self.nx
        )

    def reply(self, version: int = OFP13_VERSION) -> bytes:
        """The OFPT_ERROR message (§7.4.4) to send back for this error (in OpenFlow 1.0,
        with the type and code Open vSwitch uses for it there). The quoted request is cut
        where the message would pass 65535 bytes (a request near the limit cannot be
        quoted whole behind a 12- to 20-byte error header), as Open vSwitch cuts it."""
        head = len(self._reply(version, b""))
        return self._reply(version, self.data[: MAX_LENGTH - head])

    def _reply(self, version: int, data: bytes) -> bytes:
        if self.nx is not None and version <= 2:  # 1.0/1.1: Nicira's vendor error
            return self._vendor(version, data, 1, self.nx[0])
        if self.nx is not None:  # 1.2+: an experimenter error
            head = struct.pack("!BBHIHHI", version, MsgType.ERROR, 16 + len(data),
                               self.xid, EXPERIMENTER_ERROR, self.nx[1], NX_EXPERIMENTER)  # fmt: skip
            return head + data
        if version == 4 and self.type == BUNDLE_FAILED:
            # 1.3 has bundles only as the ONF extension: its errors are ONF experimenter
            # errors, code 2300 + the 1.4 code (what Open vSwitch sends and ovs-ofctl reads).
            length = 16 + len(data)
            head = struct.pack("!BBHIHHI", version, MsgType.ERROR, length, self.xid, 0xFFFF,
                               2300 + self.code, ONF_EXPERIMENTER)  # fmt: skip
            return head + data
        etype, code = self.type, self.code
        if version == 1:
            etype, code = error_code10(etype, code)
            if code >= 256 or etype >= 6 or (etype, code) == (2, 9):
                return self._vendor(version, data, etype, code)  # Open vSwitch's, not 1.0's
        elif version == 2 and ((etype, code) in _ERRORS11 or etype > 10):
            return self._vendor(version, data, *_ERRORS11.get((etype, code), _UNENCODABLE10))
        length = 12 + len(data)
        return (
            struct.pack("!BBHIHH", version, MsgType.ERROR, length, self.xid, etype, code)
            + data
        )

    def _vendor(self, version: int, data: bytes, vtype: int, vcode: int) -> bytes:
        """Open vSwitch's error for 1.0/1.1 where the version has none: NXET_VENDOR /
        NXVC_VENDOR_ERROR, then the Nicira (type, code)."""
        length = 20 + len(data)
        return struct.pack("!BBHIHHIHH", version, MsgType.ERROR, length, self.xid,
                           NXET_VENDOR, 0, NX_EXPERIMENTER, vtype, vcode) + data  # fmt: skip

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
    (2, 9): (2, 9),  # OFPBAC_BAD_OUT_GROUP: Nicira's (2, 9) in 1.0, a vendor error
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
NXET_VENDOR = 0xB0C2  # 1.0/1.1 error type whose data starts with a vendor's (type, code)
# 1.2+ (type, code) -> the Nicira (type, code) Open vSwitch sends a 1.1 peer instead.
_ERRORS11: dict[tuple[int, int], tuple[int, int]] = {
    (1, 11): (1, 514),  # OFPBRC_BAD_PORT
    (2, 13): (1, 523),  # OFPBAC_BAD_SET_TYPE
    (2, 14): (1, 524),  # OFPBAC_BAD_SET_LEN
    (2, 15): (1, 525),  # OFPBAC_BAD_SET_ARGUMENT
    (4, 8): (1, 259),  # OFPBMC_BAD_MASK
    (4, 9): (1, 260),  # OFPBMC_BAD_PREREQ
    (4, 10): (1, 261),  # OFPBMC_DUP_FIELD
    (11, 2): (1, 513),  # OFPRRFC_BAD_ROLE
}


def error_code10(etype: int, code: int) -> tuple[int, int]:
    """The OpenFlow 1.0 (type, code) Open vSwitch sends for a 1.1+ error (a code of 256
    or more, or a group error, is Nicira's: ``reply`` sends it as a vendor error)."""
    if etype in (0, 1, 2) and (etype, code) not in _ERRORS10:
        return (etype, code) if code <= 8 else _UNENCODABLE10
    if etype == 6:  # group errors keep their numbers (Nicira's 1.0 groups)
        return etype, code
    return _ERRORS10.get((etype, code), _UNENCODABLE10)
