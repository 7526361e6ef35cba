"""OpenFlow 1.3/1.4 wire constants.

Section numbers cite the OpenFlow Switch Specification 1.3.5 (ONF TS-023) unless a
comment names 1.4.1 (ONF TS-024). Values that 1.4 added are marked so; a 1.3 peer never
sees them. Only numbers live here: no parsing, no behaviour.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

OFP10_VERSION = 0x01  # OpenFlow 1.0.0 §5.1 (its own layouts: hitless.openflow.ofp10)
OFP11_VERSION = 0x02  # OpenFlow 1.1.0 §A.1 (its own match and actions: hitless.openflow.ofp11)
OFP12_VERSION = 0x03  # OpenFlow 1.2 §A.1 (1.3's layouts except where messages.py says otherwise)
OFP13_VERSION = 0x04  # §7.1 ofp_header.version for OpenFlow 1.3
OFP14_VERSION = 0x05  # 1.4.1 §7.1
OFP15_VERSION = 0x06  # 1.5.1 §7.1 (1.4's layouts except where messages.py says otherwise)
SUPPORTED_VERSIONS = frozenset(
    (OFP10_VERSION, OFP11_VERSION, OFP12_VERSION, OFP13_VERSION, OFP14_VERSION, OFP15_VERSION)
)
# Bridge.protocols names (as Open vSwitch spells them) -> wire versions.
PROTOCOL_VERSIONS = {
    "OpenFlow10": OFP10_VERSION,
    "OpenFlow11": OFP11_VERSION,
    "OpenFlow12": OFP12_VERSION,
    "OpenFlow13": OFP13_VERSION,
    "OpenFlow14": OFP14_VERSION,
    "OpenFlow15": OFP15_VERSION,
}
OFP_HEADER_LEN = 8  # §7.1
OFP_TCP_PORT = 6653  # §6.3.3


class MsgType(IntEnum):
    """ofp_type (§7.1)."""

    HELLO = 0  # symmetric, §7.5.1
    ERROR = 1  # symmetric, §7.4.4
    ECHO_REQUEST = 2  # §7.5.2
    ECHO_REPLY = 3  # §7.5.3
    EXPERIMENTER = 4  # §7.5.4
    FEATURES_REQUEST = 5  # §7.3.1
    FEATURES_REPLY = 6
    GET_CONFIG_REQUEST = 7  # §7.3.2
    GET_CONFIG_REPLY = 8
    SET_CONFIG = 9
    PACKET_IN = 10  # async, §7.4.1
    FLOW_REMOVED = 11  # §7.4.2
    PORT_STATUS = 12  # §7.4.3
    PACKET_OUT = 13  # §7.3.7
    FLOW_MOD = 14  # §7.3.4.2
    GROUP_MOD = 15  # §7.3.4.3
    PORT_MOD = 16  # §7.3.4.4
    TABLE_MOD = 17  # §7.3.3
    MULTIPART_REQUEST = 18  # §7.3.5
    MULTIPART_REPLY = 19
    BARRIER_REQUEST = 20  # §7.3.8
    BARRIER_REPLY = 21
    QUEUE_GET_CONFIG_REQUEST = 22  # §7.3.6
    QUEUE_GET_CONFIG_REPLY = 23
    ROLE_REQUEST = 24  # §7.3.9
    ROLE_REPLY = 25
    GET_ASYNC_REQUEST = 26  # §7.3.10
    GET_ASYNC_REPLY = 27
    SET_ASYNC = 28
    METER_MOD = 29  # §7.3.4.5
    ROLE_STATUS = 30  # 1.4.1 §7.4.4
    TABLE_STATUS = 31  # 1.4.1 §7.4.5
    REQUESTFORWARD = 32  # 1.4.1 §7.4.6
    BUNDLE_CONTROL = 33  # 1.4.1 §7.3.9
    BUNDLE_ADD_MESSAGE = 34  # 1.4.1 §7.3.9.6


class HelloElemType(IntEnum):
    """ofp_hello_elem_type (§7.5.1)."""

    VERSIONBITMAP = 1


class ErrorType(IntEnum):
    """ofp_error_type (§7.4.4)."""

    HELLO_FAILED = 0
    BAD_REQUEST = 1
    BAD_ACTION = 2
    BAD_INSTRUCTION = 3
    BAD_MATCH = 4
    FLOW_MOD_FAILED = 5
    GROUP_MOD_FAILED = 6
    PORT_MOD_FAILED = 7
    TABLE_MOD_FAILED = 8
    QUEUE_OP_FAILED = 9
    SWITCH_CONFIG_FAILED = 10
    ROLE_REQUEST_FAILED = 11
    METER_MOD_FAILED = 12
    TABLE_FEATURES_FAILED = 13
    BAD_PROPERTY = 14  # 1.4.1 §7.5.4.1
    ASYNC_CONFIG_FAILED = 15  # 1.4
    FLOW_MONITOR_FAILED = 16  # 1.4
    BUNDLE_FAILED = 17  # 1.4
    EXPERIMENTER = 0xFFFF


class HelloFailedCode(IntEnum):
    """ofp_hello_failed_code (§7.4.4)."""

    INCOMPATIBLE = 0
    EPERM = 1


class BadRequestCode(IntEnum):
    """ofp_bad_request_code (§7.4.4)."""

    BAD_VERSION = 0
    BAD_TYPE = 1
    BAD_MULTIPART = 2
    BAD_EXPERIMENTER = 3
    BAD_EXP_TYPE = 4
    EPERM = 5
    BAD_LEN = 6
    BUFFER_EMPTY = 7
    BUFFER_UNKNOWN = 8
    BAD_TABLE_ID = 9
    IS_SLAVE = 10
    BAD_PORT = 11
    BAD_PACKET = 12
    MULTIPART_BUFFER_OVERFLOW = 13
    MULTIPART_REQUEST_TIMEOUT = 14  # 1.4
    MULTIPART_REPLY_TIMEOUT = 15  # 1.4


class BadActionCode(IntEnum):
    """ofp_bad_action_code (§7.4.4)."""

    BAD_TYPE = 0
    BAD_LEN = 1
    BAD_EXPERIMENTER = 2
    BAD_EXP_TYPE = 3
    BAD_OUT_PORT = 4
    BAD_ARGUMENT = 5
    EPERM = 6
    TOO_MANY = 7
    BAD_QUEUE = 8
    BAD_OUT_GROUP = 9
    MATCH_INCONSISTENT = 10
    UNSUPPORTED_ORDER = 11
    BAD_TAG = 12
    BAD_SET_TYPE = 13
    BAD_SET_LEN = 14
    BAD_SET_ARGUMENT = 15


class BadInstructionCode(IntEnum):
    """ofp_bad_instruction_code (§7.4.4)."""

    UNKNOWN_INST = 0
    UNSUP_INST = 1
    BAD_TABLE_ID = 2
    UNSUP_METADATA = 3
    UNSUP_METADATA_MASK = 4
    BAD_EXPERIMENTER = 5
    BAD_EXP_TYPE = 6
    BAD_LEN = 7
    EPERM = 8


class BadMatchCode(IntEnum):
    """ofp_bad_match_code (§7.4.4)."""

    BAD_TYPE = 0
    BAD_LEN = 1
    BAD_TAG = 2
    BAD_DL_ADDR_MASK = 3
    BAD_NW_ADDR_MASK = 4
    BAD_WILDCARDS = 5
    BAD_FIELD = 6
    BAD_VALUE = 7
    BAD_MASK = 8
    BAD_PREREQ = 9
    DUP_FIELD = 10
    EPERM = 11


class FlowModFailedCode(IntEnum):
    """ofp_flow_mod_failed_code (§7.4.4)."""

    UNKNOWN = 0
    TABLE_FULL = 1
    BAD_TABLE_ID = 2
    OVERLAP = 3
    EPERM = 4
    BAD_TIMEOUT = 5
    BAD_COMMAND = 6
    BAD_FLAGS = 7


class GroupModFailedCode(IntEnum):
    """ofp_group_mod_failed_code (§7.4.4)."""

    GROUP_EXISTS = 0
    INVALID_GROUP = 1
    WEIGHT_UNSUPPORTED = 2
    OUT_OF_GROUPS = 3
    OUT_OF_BUCKETS = 4
    CHAINING_UNSUPPORTED = 5
    WATCH_UNSUPPORTED = 6
    LOOP = 7
    UNKNOWN_GROUP = 8
    CHAINED_GROUP = 9
    BAD_TYPE = 10
    BAD_COMMAND = 11
    BAD_BUCKET = 12
    BAD_WATCH = 13
    EPERM = 14
    UNKNOWN_BUCKET = 15  # 1.5
    BUCKET_EXISTS = 16  # 1.5


class PortModFailedCode(IntEnum):
    """ofp_port_mod_failed_code (§7.4.4)."""

    BAD_PORT = 0
    BAD_HW_ADDR = 1
    BAD_CONFIG = 2
    BAD_ADVERTISE = 3
    EPERM = 4


class TableModFailedCode(IntEnum):
    """ofp_table_mod_failed_code (§7.4.4)."""

    BAD_TABLE = 0
    BAD_CONFIG = 1
    EPERM = 2


class QueueOpFailedCode(IntEnum):
    """ofp_queue_op_failed_code (§7.4.4)."""

    BAD_PORT = 0
    BAD_QUEUE = 1
    EPERM = 2


class SwitchConfigFailedCode(IntEnum):
    """ofp_switch_config_failed_code (§7.4.4)."""

    BAD_FLAGS = 0
    BAD_LEN = 1
    EPERM = 2


class RoleRequestFailedCode(IntEnum):
    """ofp_role_request_failed_code (§7.4.4)."""

    STALE = 0
    UNSUP = 1
    BAD_ROLE = 2


class MeterModFailedCode(IntEnum):
    """ofp_meter_mod_failed_code (§7.4.4)."""

    UNKNOWN = 0
    METER_EXISTS = 1
    INVALID_METER = 2
    UNKNOWN_METER = 3
    BAD_COMMAND = 4
    BAD_FLAGS = 5
    BAD_RATE = 6
    BAD_BURST = 7
    BAD_BAND = 8
    BAD_BAND_VALUE = 9
    OUT_OF_METERS = 10
    OUT_OF_BANDS = 11


class TableFeaturesFailedCode(IntEnum):
    """ofp_table_features_failed_code (§7.4.4)."""

    BAD_TABLE = 0
    BAD_METADATA = 1
    BAD_TYPE = 2
    BAD_LEN = 3
    BAD_ARGUMENT = 4
    EPERM = 5


class BadPropertyCode(IntEnum):
    """ofp_bad_property_code (1.4.1 §7.5.4.1)."""

    BAD_TYPE = 0
    BAD_LEN = 1
    BAD_VALUE = 2
    TOO_MANY = 3
    DUP_TYPE = 4
    BAD_EXPERIMENTER = 5
    BAD_EXP_TYPE = 6
    BAD_EXP_VALUE = 7
    EPERM = 8


class BundleFailedCode(IntEnum):
    """ofp_bundle_failed_code (1.4.1 §7.5.4.1); also the ONF 1.3 extension's codes."""

    UNKNOWN = 0
    EPERM = 1
    BAD_ID = 2
    BUNDLE_EXIST = 3
    BUNDLE_CLOSED = 4
    OUT_OF_BUNDLES = 5
    BAD_TYPE = 6
    BAD_FLAGS = 7
    MSG_BAD_LEN = 8
    MSG_BAD_XID = 9
    MSG_UNSUP = 10
    MSG_CONFLICT = 11
    MSG_TOO_MANY = 12
    MSG_FAILED = 13
    TIMEOUT = 14
    BUNDLE_IN_PROGRESS = 15


class Port(IntEnum):
    """Reserved port numbers, ofp_port_no (§7.2.1)."""

    MAX = 0xFFFFFF00  # highest physical/logical port number
    IN_PORT = 0xFFFFFFF8
    TABLE = 0xFFFFFFF9  # packet-out only: submit to the first flow table
    NORMAL = 0xFFFFFFFA
    FLOOD = 0xFFFFFFFB
    ALL = 0xFFFFFFFC
    CONTROLLER = 0xFFFFFFFD
    LOCAL = 0xFFFFFFFE
    ANY = 0xFFFFFFFF  # wildcard, "no port"


class Table(IntEnum):
    """ofp_table (§7.3.4.2)."""

    MAX = 0xFE
    ALL = 0xFF


class Group(IntEnum):
    """ofp_group (§7.3.4.3)."""

    MAX = 0xFFFFFF00
    ALL = 0xFFFFFFFC
    ANY = 0xFFFFFFFF


class Meter(IntEnum):
    """ofp_meter (§7.3.4.5)."""

    MAX = 0xFFFF0000
    SLOWPATH = 0xFFFFFFFD
    CONTROLLER = 0xFFFFFFFE
    ALL = 0xFFFFFFFF


NO_BUFFER = 0xFFFFFFFF  # OFP_NO_BUFFER (§7.3.4.2)


class ControllerMaxLen(IntEnum):
    """ofp_controller_max_len (§7.2.5)."""

    MAX = 0xFFE5
    NO_BUFFER = 0xFFFF


class FlowModCommand(IntEnum):
    """ofp_flow_mod_command (§7.3.4.2)."""

    ADD = 0
    MODIFY = 1
    MODIFY_STRICT = 2
    DELETE = 3
    DELETE_STRICT = 4


class FlowModFlags(IntFlag):
    """ofp_flow_mod_flags (§7.3.4.2)."""

    SEND_FLOW_REM = 1 << 0
    CHECK_OVERLAP = 1 << 1
    RESET_COUNTS = 1 << 2
    NO_PKT_COUNTS = 1 << 3
    NO_BYT_COUNTS = 1 << 4


class GroupModCommand(IntEnum):
    """ofp_group_mod_command (§7.3.4.3)."""

    ADD = 0
    MODIFY = 1
    DELETE = 2
    INSERT_BUCKET = 3  # 1.5 (Open vSwitch's Nicira group mod in 1.0 too)
    REMOVE_BUCKET = 5  # 1.5 (4 is unused)


class GroupType(IntEnum):
    """ofp_group_type (§7.3.4.3)."""

    ALL = 0
    SELECT = 1
    INDIRECT = 2
    FF = 3  # fast failover


class GroupCapabilities(IntFlag):
    """ofp_group_capabilities (§7.3.5.11)."""

    SELECT_WEIGHT = 1 << 0
    SELECT_LIVENESS = 1 << 1
    CHAINING = 1 << 2
    CHAINING_CHECKS = 1 << 3


class MeterModCommand(IntEnum):
    """ofp_meter_mod_command (§7.3.4.5)."""

    ADD = 0
    MODIFY = 1
    DELETE = 2


class MeterFlags(IntFlag):
    """ofp_meter_flags (§7.3.4.5)."""

    KBPS = 1 << 0
    PKTPS = 1 << 1
    BURST = 1 << 2
    STATS = 1 << 3


class MeterBandType(IntEnum):
    """ofp_meter_band_type (§7.3.4.5)."""

    DROP = 1
    DSCP_REMARK = 2
    EXPERIMENTER = 0xFFFF


class MultipartType(IntEnum):
    """ofp_multipart_type (§7.3.5)."""

    DESC = 0  # §7.3.5.1
    FLOW = 1  # §7.3.5.2
    AGGREGATE = 2  # §7.3.5.3
    TABLE = 3  # §7.3.5.4
    PORT_STATS = 4  # §7.3.5.6
    QUEUE = 5  # §7.3.5.8
    GROUP = 6  # §7.3.5.9
    GROUP_DESC = 7  # §7.3.5.10
    GROUP_FEATURES = 8  # §7.3.5.11
    METER = 9  # §7.3.5.12
    METER_CONFIG = 10  # §7.3.5.13
    METER_FEATURES = 11  # §7.3.5.14
    TABLE_FEATURES = 12  # §7.3.5.5
    PORT_DESC = 13  # §7.3.5.7
    TABLE_DESC = 14  # 1.4
    QUEUE_DESC = 15  # 1.4
    FLOW_MONITOR = 16  # 1.4
    EXPERIMENTER = 0xFFFF  # §7.3.5.15


class MultipartFlags(IntFlag):
    """ofp_multipart_request_flags / ofp_multipart_reply_flags (§7.3.5)."""

    MORE = 1 << 0  # OFPMPF_REQ_MORE / OFPMPF_REPLY_MORE


class TableFeaturePropType(IntEnum):
    """ofp_table_feature_prop_type (§7.3.5.5.2)."""

    INSTRUCTIONS = 0
    INSTRUCTIONS_MISS = 1
    NEXT_TABLES = 2
    NEXT_TABLES_MISS = 3
    WRITE_ACTIONS = 4
    WRITE_ACTIONS_MISS = 5
    APPLY_ACTIONS = 6
    APPLY_ACTIONS_MISS = 7
    MATCH = 8
    WILDCARDS = 10
    WRITE_SETFIELD = 12
    WRITE_SETFIELD_MISS = 13
    APPLY_SETFIELD = 14
    APPLY_SETFIELD_MISS = 15
    EXPERIMENTER = 0xFFFE
    EXPERIMENTER_MISS = 0xFFFF


class InstructionType(IntEnum):
    """ofp_instruction_type (§7.2.4)."""

    GOTO_TABLE = 1
    WRITE_METADATA = 2
    WRITE_ACTIONS = 3
    APPLY_ACTIONS = 4
    CLEAR_ACTIONS = 5
    METER = 6
    EXPERIMENTER = 0xFFFF


class ActionType(IntEnum):
    """ofp_action_type (§7.2.5)."""

    OUTPUT = 0
    COPY_TTL_OUT = 11
    COPY_TTL_IN = 12
    SET_MPLS_TTL = 15
    DEC_MPLS_TTL = 16
    PUSH_VLAN = 17
    POP_VLAN = 18
    PUSH_MPLS = 19
    POP_MPLS = 20
    SET_QUEUE = 21
    GROUP = 22
    SET_NW_TTL = 23
    DEC_NW_TTL = 24
    SET_FIELD = 25
    PUSH_PBB = 26
    POP_PBB = 27
    COPY_FIELD = 28  # OpenFlow 1.5 (§7.2.6.8); before 1.5 an ONF or Nicira extension
    METER = 29  # OpenFlow 1.5 (§7.2.6.9): replaces 1.3's meter instruction
    EXPERIMENTER = 0xFFFF


class MatchType(IntEnum):
    """ofp_match_type (§7.2.3.1)."""

    STANDARD = 0  # deprecated, not used by 1.3
    OXM = 1


class OxmClass(IntEnum):
    """ofp_oxm_class (§7.2.3.3)."""

    NXM_0 = 0x0000  # Nicira extensions, backward compatibility
    NXM_1 = 0x0001
    OPENFLOW_BASIC = 0x8000
    EXPERIMENTER = 0xFFFF


class OxmField(IntEnum):
    """oxm_ofb_match_fields (§7.2.3.7): the OFPXMC_OPENFLOW_BASIC field numbers."""

    IN_PORT = 0
    IN_PHY_PORT = 1
    METADATA = 2
    ETH_DST = 3
    ETH_SRC = 4
    ETH_TYPE = 5
    VLAN_VID = 6
    VLAN_PCP = 7
    IP_DSCP = 8
    IP_ECN = 9
    IP_PROTO = 10
    IPV4_SRC = 11
    IPV4_DST = 12
    TCP_SRC = 13
    TCP_DST = 14
    UDP_SRC = 15
    UDP_DST = 16
    SCTP_SRC = 17
    SCTP_DST = 18
    ICMPV4_TYPE = 19
    ICMPV4_CODE = 20
    ARP_OP = 21
    ARP_SPA = 22
    ARP_TPA = 23
    ARP_SHA = 24
    ARP_THA = 25
    IPV6_SRC = 26
    IPV6_DST = 27
    IPV6_FLABEL = 28
    ICMPV6_TYPE = 29
    ICMPV6_CODE = 30
    IPV6_ND_TARGET = 31
    IPV6_ND_SLL = 32
    IPV6_ND_TLL = 33
    MPLS_LABEL = 34
    MPLS_TC = 35
    MPLS_BOS = 36
    PBB_ISID = 37
    TUNNEL_ID = 38
    IPV6_EXTHDR = 39
    PBB_UCA = 41  # 1.4.1 §7.2.3.7
    TCP_FLAGS = 42  # 1.5.1 §7.2.3.7 (1.3 and 1.4 say it as an ONF experimenter field)


class VlanId(IntEnum):
    """ofp_vlan_id (§7.2.3.8)."""

    NONE = 0x0000  # no VLAN tag
    PRESENT = 0x1000  # OR-ed into vlan_vid when a tag is present


class Ipv6ExtHdrFlags(IntFlag):
    """ofp_ipv6exthdr_flags (§7.2.3.8)."""

    NONEXT = 1 << 0
    ESP = 1 << 1
    AUTH = 1 << 2
    DEST = 1 << 3
    FRAG = 1 << 4
    ROUTER = 1 << 5
    HOP = 1 << 6
    UNREP = 1 << 7
    UNSEQ = 1 << 8


class Capabilities(IntFlag):
    """ofp_capabilities (§7.3.1)."""

    FLOW_STATS = 1 << 0
    TABLE_STATS = 1 << 1
    PORT_STATS = 1 << 2
    GROUP_STATS = 1 << 3
    IP_REASM = 1 << 5
    QUEUE_STATS = 1 << 6
    PORT_BLOCKED = 1 << 8


class ConfigFlags(IntEnum):
    """ofp_config_flags (§7.3.2): IP fragment handling."""

    FRAG_NORMAL = 0
    FRAG_DROP = 1
    FRAG_REASM = 2
    FRAG_MASK = 3


class TableConfig(IntFlag):
    """ofp_table_config (§7.3.3; 1.4.1 §7.3.3 adds the last two)."""

    DEPRECATED_MASK = 3
    EVICTION = 1 << 2  # 1.4
    VACANCY_EVENTS = 1 << 3  # 1.4


class ControllerRole(IntEnum):
    """ofp_controller_role (§7.3.9)."""

    NOCHANGE = 0
    EQUAL = 1
    MASTER = 2
    SLAVE = 3


class PacketInReason(IntEnum):
    """ofp_packet_in_reason (§7.4.1; 1.4.1 renames 0/1 and adds 3-5)."""

    NO_MATCH = 0  # 1.4: TABLE_MISS
    ACTION = 1  # 1.4: APPLY_ACTION
    INVALID_TTL = 2
    ACTION_SET = 3  # 1.4
    GROUP = 4  # 1.4
    PACKET_OUT = 5  # 1.4


class FlowRemovedReason(IntEnum):
    """ofp_flow_removed_reason (§7.4.2; 1.4.1 adds the last two)."""

    IDLE_TIMEOUT = 0
    HARD_TIMEOUT = 1
    DELETE = 2
    GROUP_DELETE = 3
    METER_DELETE = 4  # 1.4
    EVICTION = 5  # 1.4


class PortReason(IntEnum):
    """ofp_port_reason (§7.4.3)."""

    ADD = 0
    DELETE = 1
    MODIFY = 2


class PortConfig(IntFlag):
    """ofp_port_config (§7.2.1)."""

    PORT_DOWN = 1 << 0
    NO_RECV = 1 << 2
    NO_FWD = 1 << 5
    NO_PACKET_IN = 1 << 6


class PortState(IntFlag):
    """ofp_port_state (§7.2.1)."""

    LINK_DOWN = 1 << 0
    BLOCKED = 1 << 1
    LIVE = 1 << 2


class PortFeatures(IntFlag):
    """ofp_port_features (§7.2.1)."""

    RATE_10MB_HD = 1 << 0
    RATE_10MB_FD = 1 << 1
    RATE_100MB_HD = 1 << 2
    RATE_100MB_FD = 1 << 3
    RATE_1GB_HD = 1 << 4
    RATE_1GB_FD = 1 << 5
    RATE_10GB_FD = 1 << 6
    RATE_40GB_FD = 1 << 7
    RATE_100GB_FD = 1 << 8
    RATE_1TB_FD = 1 << 9
    OTHER = 1 << 10
    COPPER = 1 << 11
    FIBER = 1 << 12
    AUTONEG = 1 << 13
    PAUSE = 1 << 14
    PAUSE_ASYM = 1 << 15


class PortDescPropType(IntEnum):
    """ofp_port_desc_prop_type (1.4.1 §7.2.1.1)."""

    ETHERNET = 0
    OPTICAL = 1
    EXPERIMENTER = 0xFFFF


class PortModPropType(IntEnum):
    """ofp_port_mod_prop_type (1.4.1 §7.3.4.3)."""

    ETHERNET = 0
    OPTICAL = 1
    EXPERIMENTER = 0xFFFF


class PortStatsPropType(IntEnum):
    """ofp_port_stats_prop_type (1.4.1 §7.3.5.7)."""

    ETHERNET = 0
    OPTICAL = 1
    EXPERIMENTER = 0xFFFF


class AsyncConfigProp(IntEnum):
    """ofp_async_config_prop_type (1.4.1 §7.3.10); 1.3 carries the first six as a struct."""

    PACKET_IN_SLAVE = 0
    PACKET_IN_MASTER = 1
    PORT_STATUS_SLAVE = 2
    PORT_STATUS_MASTER = 3
    FLOW_REMOVED_SLAVE = 4
    FLOW_REMOVED_MASTER = 5
    ROLE_STATUS_SLAVE = 6  # 1.4
    ROLE_STATUS_MASTER = 7
    TABLE_STATUS_SLAVE = 8
    TABLE_STATUS_MASTER = 9
    REQUESTFORWARD_SLAVE = 10
    REQUESTFORWARD_MASTER = 11
    EXPERIMENTER_SLAVE = 0xFFFE
    EXPERIMENTER_MASTER = 0xFFFF


class BundleCtrlType(IntEnum):
    """ofp_bundle_ctrl_type (1.4.1 §7.3.9.1)."""

    OPEN_REQUEST = 0
    OPEN_REPLY = 1
    CLOSE_REQUEST = 2
    CLOSE_REPLY = 3
    COMMIT_REQUEST = 4
    COMMIT_REPLY = 5
    DISCARD_REQUEST = 6
    DISCARD_REPLY = 7


class BundleFlags(IntFlag):
    """ofp_bundle_flags (1.4.1 §7.3.9.1)."""

    ATOMIC = 1 << 0
    ORDERED = 1 << 1


# The ONF extension that carries 1.4 bundles over OpenFlow 1.3 (ONF EXT-230), as sent by
# ``ovs-ofctl -O OpenFlow13 --bundle``: an OFPT_EXPERIMENTER with this id and exp_type.
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL = 2300
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
NX_EXPERIMENTER_ID = 0x00002320  # Nicira, for recognising (and refusing) its extensions

# Description string sizes (§7.3.5.1) and port name size (§7.2.1).
DESC_STR_LEN = 256
SERIAL_NUM_LEN = 32
MAX_PORT_NAME_LEN = 16
MAX_TABLE_NAME_LEN = 32
