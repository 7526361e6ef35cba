"""OpenFlow 1.3/1.4 state as plain learned data: flow tables, groups, meters.

``OfState`` holds up to 254 tables of ``Rule``s, the group table and the meter table,
and applies flow-mod, group-mod and meter-mod messages with the specification's
semantics (OpenFlow 1.3.5 §6.4, §7.3.4): ADD replaces an identical rule (same match and
priority) and refuses an overlapping one when CHECK_OVERLAP is set; MODIFY and DELETE
select rules whose match is at least as specific as the request's (non-strict) or
identical with the same priority (strict), filtered by cookie/cookie_mask, and for
DELETE by out_port/out_group. A malformed or impossible request raises
``RemoteProtocolError`` carrying the OFPT_ERROR type and code; nothing changes then.

Matches are compiled onto the canonical flow key (``hitless.packet.flow``): a rule is an
integer ``key``/``mask`` pair over the key's bytes plus a 64-bit metadata value/mask, so
a lookup is tuple space search: one dict probe per distinct mask ("subtable"), subtables
visited in order of their highest priority, stopping once no unvisited subtable can beat
the best rule found. ``Table.lookup`` reports the masks it examined: translation
un-wildcards exactly those (``ofxlate``).

Time comes in as ``now``; counters are credited by the caller (the revalidator, from
datapath flow statistics). ``export_state()`` / ``import_state()`` carry rules with
their counters and remaining timeouts, groups and meters across a handoff as JSON-able
data. Pure: no sockets, no clock.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from hitless.config.model import OFPP_LOCAL
from hitless.memo import Memo
from hitless.ofproto.fields import LOCS, PREREQS, TUN_PRESENT
from hitless.openflow import nx_actions as nx
from hitless.openflow import nx_ct
from hitless.openflow._wire import Reader
from hitless.openflow.actions import (
    Action,
    ApplyActions,
    GotoTable,
    GroupAction,
    Instruction,
    MeterInstruction,
    Output,
    SetField,
    WriteActions,
    WriteMetadata,
    encode_instructions,
    parse_instructions,
)
from hitless.openflow.constants import (
    BadActionCode,
    BadInstructionCode,
    BadMatchCode,
    BadRequestCode,
    ErrorType,
    FlowModCommand,
    FlowModFailedCode,
    FlowModFlags,
    FlowRemovedReason,
    GroupModCommand,
    GroupModFailedCode,
    GroupType,
    MeterBandType,
    MeterFlags,
    MeterModCommand,
    MeterModFailedCode,
    OxmClass,
    OxmField,
    Port,
)
from hitless.openflow.constants import Group as GroupNo
from hitless.openflow.constants import Meter as MeterNo
from hitless.openflow.errors import NxError, RemoteProtocolError
from hitless.openflow.match import Match as OfMatch
from hitless.openflow.match import Oxm, parse_oxm_list
from hitless.openflow.messages import (
    Bucket,
    FlowMod,
    GroupMod,
    MeterBand,
    MeterMod,
    SelectionMethod,
)
from hitless.openflow.nx_actions import NxAction
from hitless.openflow.nxm import (
    TUN_METADATA_FIELD,
    Subfield,
    spec_by_header,
    spec_of,
    tun_metadata_index,
)
from hitless.openflow.nxmsg import TlvMap
from hitless.state.records import OfGroup, OfMeterV2, OfRule, OfSelectionV6, OpenFlow

__all__ = [
    "MAX_METER_BANDS",
    "N_TABLES",
    "Group",
    "Meter",
    "OfState",
    "Removed",
    "Rule",
    "Table",
    "LearnCredit",
    "LearnedFlow",
    "compile_match",
    "lookups_touch",
    "oxm_to_key",
    "rules_use_action",
    "rules_use_field_of",
]

N_TABLES = 254  # tables 0..253 (OFPTT_MAX = 0xfe)
MAX_METER_BANDS = 8  # reported in meter features
# Meters a bridge holds at most (reported in meter features): Open vSwitch's userspace
# datapath limit (dpif-netdev's 1 << 18), whose ofproto refuses the next one as
# OFPMMFC_OUT_OF_METERS; the ids themselves go up to OFPM_MAX.
MAX_METERS = 1 << 18
ALL_ONES_64 = (1 << 64) - 1

# -- Matches on the pipeline key (hitless.ofproto.fields) -----------------------------------

_F = OxmField


def _basic_loc(f: OxmField) -> bool:
    spec = spec_by_header(OxmClass.OPENFLOW_BASIC, int(f), None)
    return spec is not None and spec.name in LOCS


# OXM basic fields a rule can match (table features advertise them)
_OXM_KEY: frozenset[int] = frozenset(f for f in OxmField if _basic_loc(f))


def oxm_to_key(f: int, value: int, mask: int | None) -> tuple[int, int]:
    """(value, mask) of one OXM basic field as integers over the pipeline key."""
    spec = spec_by_header(OxmClass.OPENFLOW_BASIC, int(f), None)
    if spec is None or spec.name not in LOCS:
        raise KeyError(f)
    loc = LOCS[spec.name]
    m = loc.ones if mask is None else mask & loc.ones
    return (value & m) << loc.pos, m << loc.pos


def _bad_match(msg: str, code: BadMatchCode) -> RemoteProtocolError:
    return RemoteProtocolError(msg, ErrorType.BAD_MATCH, code)


# Memo tables of compile_match (a big table has few distinct field sets: a handoff
# importing 100k rules, or ovs-ofctl adding them, checks each shape once).
# (class, field, experimenter) -> (field name, its location in the key)
_FIELD_LOCS: dict[tuple[int, int, int | None], tuple[str, Any]] = {}
# The fields whose values a prerequisite names, and the match shapes (field names, those
# values) whose prerequisites were found satisfied.
_PREREQ_REFS = frozenset(f for alts in PREREQS.values() for alt in alts for f, _ in alt)
_PREREQS_MET: set[tuple[tuple[str, ...], tuple[tuple[str, int], ...]]] = set()


def _field_loc(oxm: Oxm) -> tuple[str, Any]:
    k = (oxm.oxm_class, oxm.field, oxm.experimenter)
    got = _FIELD_LOCS.get(k)
    if got is None:
        spec = spec_of(oxm)
        loc = LOCS.get(spec.name) if spec is not None else None
        if spec is None or loc is None:
            raise _bad_match(f"match field {oxm.name} is not supported", BadMatchCode.BAD_FIELD)
        got = _FIELD_LOCS[k] = (spec.name, loc)
    return got


def compile_match(match: OfMatch) -> tuple[int, int, int, int]:
    """An OpenFlow match as (key, mask, 0, 0) over the pipeline key (metadata and the
    registers included; the last two are kept for the rule identity's shape).
    Raises RemoteProtocolError for fields we cannot match and missing prerequisites."""
    key = mask = 0
    names: list[str] = []
    refs: list[tuple[str, int]] = []
    for oxm in match.fields:
        name, loc = _field_loc(oxm)
        names.append(name)
        value, omask = oxm.value, oxm.mask
        if omask is None and name in _PREREQ_REFS:
            refs.append((name, value))
        if name == "vlan_vid":
            refs.append(("vlan_vid/", value & 0x1000))  # vlan_pcp's prerequisite
        if value >> loc.bits or (omask is not None and omask >> loc.bits):
            raise _bad_match(f"{oxm.name} value {value:#x} too wide", BadMatchCode.BAD_VALUE)
        if omask is not None and value & ~omask:
            raise _bad_match(
                f"{oxm.name} value {value:#x} has bits outside its mask {omask:#x}",
                BadMatchCode.BAD_WILDCARDS,
            )
        if name == "in_port_oxm" and value == Port.LOCAL:
            value = OFPP_LOCAL  # the bridge's own port is number 0xfffe in the datapath
        m = loc.ones if omask is None else omask
        key |= (value & m) << loc.pos
        mask |= m << loc.pos
        if name.startswith("tun_metadata"):  # the packet must carry the option (even /0)
            bit = 1 << (oxm.field - TUN_METADATA_FIELD + TUN_PRESENT.pos)
            key |= bit
            mask |= bit
    shape = (tuple(names), tuple(refs))
    if shape not in _PREREQS_MET:
        _check_prereqs(match)
        if len(_PREREQS_MET) > 4096:
            _PREREQS_MET.clear()
        _PREREQS_MET.add(shape)
    return key, mask, 0, 0


def _check_prereqs(match: OfMatch) -> None:
    exact: dict[str, int] = {}
    present: dict[str, Oxm] = {}
    for oxm in match.fields:
        name = _field_loc(oxm)[0]
        present[name] = oxm
        if oxm.mask is None:
            exact[name] = oxm.value
    for name, oxm in present.items():
        if name == "vlan_pcp":
            vid = present.get("vlan_vid")
            if vid is None or not (vid.value & 0x1000):
                raise _bad_match("vlan_pcp needs a vlan_vid with a tag", BadMatchCode.BAD_PREREQ)
            continue
        alts = PREREQS.get(name)
        if alts and not any(all(exact.get(f) == v for f, v in alt) for alt in alts):
            raise _bad_match(f"{oxm.name} without its prerequisite", BadMatchCode.BAD_PREREQ)


def _action_fields(a: Action) -> Iterator[tuple[int, int, int | None]]:
    """(OXM class, field, experimenter id) of each field an action writes or reads
    (nested actions too)."""
    if isinstance(a, (SetField, nx.RegLoad2)):
        yield a.field.oxm_class, a.field.field, a.field.experimenter
    for name in ("src", "dst", "field"):
        sf = getattr(a, name, None)
        if isinstance(sf, Subfield):
            yield sf.ref.oxm_class, sf.ref.field, sf.ref.experimenter
    for inner in getattr(a, "actions", ()) or ():
        yield from _action_fields(inner)


def _rule_fields(r: Rule) -> Iterator[tuple[int, int, int | None]]:
    """(OXM class, field, experimenter id) of each field a rule matches, then of those
    its actions write or read."""
    for o in r.match.fields:
        yield o.oxm_class, o.field, o.experimenter
    for a in r.actions():
        yield from _action_fields(a)


def _of(fields: Iterable[tuple[int, int, int | None]], oxm_class: int,
        experimenter: int | None) -> bool:  # fmt: skip
    return any(
        cls == oxm_class and (experimenter is None or exp == experimenter)
        for cls, _, exp in fields
    )


def rules_use_field_of(
    rules: Iterable[Rule], oxm_class: int, experimenter: int | None = None
) -> bool:
    """Whether one of ``rules`` matches, writes or reads a field of ``oxm_class`` (and of
    ``experimenter``, if given): a handoff's pre-copy asks it of each slice of rules it
    copies."""
    return _of((f for r in rules for f in _rule_fields(r)), oxm_class, experimenter)


def _has_action(acts: Iterable[Action], kind: type) -> bool:
    return any(isinstance(a, kind) or _has_action(getattr(a, "actions", ()) or (), kind)
               for a in acts)  # fmt: skip


def rules_use_action(rules: Iterable[Rule], kind: type) -> bool:
    """Whether one of ``rules`` has an action of type ``kind`` (nested in another action
    too): a handoff's pre-copy asks it of each slice of rules it copies."""
    return any(_has_action(r.actions(), kind) for r in rules)


# -- Rules, tables -------------------------------------------------------------------------


class Rule:
    """One flow entry: its match (as given and compiled), instructions and counters."""

    __slots__ = (
        "table_id",
        "priority",
        "match",
        "key",
        "mask",
        "md",
        "md_mask",
        "cookie",
        "idle_timeout",
        "hard_timeout",
        "flags",
        "importance",
        "instructions",
        "conj",
        "created",
        "modified",
        "last_used",
        "packets",
        "bytes",
    )

    def __init__(
        self,
        table_id: int,
        priority: int,
        match: OfMatch,
        instructions: tuple[Instruction, ...],
        *,
        cookie: int = 0,
        idle_timeout: int = 0,
        hard_timeout: int = 0,
        flags: int = 0,
        importance: int = 0,
        created: float = 0.0,
    ) -> None:
        self.table_id = table_id
        self.priority = priority
        self.match = match
        self.key, self.mask, self.md, self.md_mask = compile_match(match)
        self.cookie = cookie
        self.idle_timeout = idle_timeout
        self.hard_timeout = hard_timeout
        self.flags = flags
        self.importance = importance
        self.instructions = instructions
        self.conj = conjunctions_of(instructions)
        self.created = created
        # last changed by a flow_mod or a learn action refreshing it (Open vSwitch's
        # ``modified``): the duration counts from ``created``, a hard timeout from here
        self.modified = created
        self.last_used = created
        self.packets = 0
        self.bytes = 0

    @property
    def ident(self) -> tuple[int, int, int, int, int]:
        """What makes two rules "the same" in one table: priority and exact match."""
        return (self.priority, self.key, self.mask, self.md, self.md_mask)

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        self.packets += packets
        self.bytes += nbytes
        if packets and used > self.last_used:
            self.last_used = used

    def covered_by(self, key: int, mask: int, md: int, md_mask: int) -> bool:
        """Whether this rule is at least as specific as the match (key, mask, md...)."""
        return (
            not mask & ~self.mask
            and self.key & mask == key
            and not md_mask & ~self.md_mask
            and self.md & md_mask == md
        )

    def overlaps(self, other: Rule) -> bool:
        m = self.mask & other.mask
        mm = self.md_mask & other.md_mask
        return not (self.key ^ other.key) & m and not (self.md ^ other.md) & mm

    def actions(self) -> Iterator[Action]:
        for inst in self.instructions:
            if isinstance(inst, (ApplyActions, WriteActions)):
                yield from inst.actions

    def outputs_to(self, port: int) -> bool:
        return any(isinstance(a, Output) and a.port == port for a in self.actions())

    def uses_group(self, group_id: int) -> bool:
        return any(isinstance(a, GroupAction) and a.group_id == group_id for a in self.actions())

    def meter_id(self) -> int | None:
        for inst in self.instructions:
            if isinstance(inst, MeterInstruction):
                return inst.meter_id
        return None

    def expiry(self) -> float | None:
        """When this rule times out if it is not hit again (None = never)."""
        t: float | None = None
        if self.hard_timeout:
            t = self.modified + self.hard_timeout
        if self.idle_timeout:
            i = self.last_used + self.idle_timeout
            t = i if t is None else min(t, i)
        return t

    def to_record(self, now: float) -> OfRule:
        """The rule as the handoff carries it (hitless.state.records), ages before ``now``."""
        return OfRule(
            self.table_id, self.priority, self.match.encode(),
            _instructions_wire(self.instructions), self.cookie, self.idle_timeout,
            self.hard_timeout, self.flags, self.importance, now - self.created,
            now - self.last_used, self.packets, self.bytes, now - self.modified,
        )  # fmt: skip

    @classmethod
    def from_record(cls, rec: OfRule, now: float) -> Rule:
        r = cls(
            rec.table,
            rec.priority,
            OfMatch.parse(Reader(rec.match)),
            _parsed_instructions(rec.instructions),
            cookie=rec.cookie,
            idle_timeout=rec.idle_timeout,
            hard_timeout=rec.hard_timeout,
            flags=rec.flags,
            importance=rec.importance,
            created=now - rec.age,
        )
        r.modified = now - rec.modified
        r.last_used = now - rec.idle
        r.packets = rec.packet_count
        r.bytes = rec.byte_count
        return r


# Few distinct instruction lists exist in a big table (the same actions on many
# matches): a handoff importing 100k rules parses each distinct one once, and one
# exporting them encodes each distinct one once.
_instructions_cache: Memo[bytes, tuple[Instruction, ...]] = Memo()
_wire_cache: Memo[tuple[Instruction, ...], bytes] = Memo()


def _instructions_wire(insts: tuple[Instruction, ...]) -> bytes:
    return _wire_cache.get(insts, lambda: encode_instructions(insts))


def _parsed_instructions(data: bytes) -> tuple[Instruction, ...]:
    return _instructions_cache.get(data, lambda: parse_instructions(Reader(data)))


# The transport ports in the pipeline key. A client's source port is new with every
# connection: a lookup that misses a subtable matching ports un-wildcards only the port
# bits that tell the packet from that subtable's rules, as Open vSwitch's staged lookup
# and ports trie do (one megaflow per connection otherwise: OVN's DHCP rules,
# ``udp,tp_src=546,tp_dst=547``, sit in front of every packet).
PORTS = LOCS["tcp_src"].ones << LOCS["tcp_src"].pos | LOCS["tcp_dst"].ones << LOCS["tcp_dst"].pos
# Prefix tracking (a table's Flow_Table prefixes: Table.track_prefixes): a miss
# un-wildcards an IPv4 address only down to the first bit where it leaves the rules'
# prefixes, as Open vSwitch's prefix tries do, so one megaflow covers every address
# outside a route instead of one per address.
PREFIX_FIELDS = tuple((LOCS[f].pos, LOCS[f].bits) for f in ("ip_src", "ip_dst"))
PREFIX_BITS = {f: ((1 << LOCS[f].bits) - 1) << LOCS[f].pos for f in ("ip_src", "ip_dst")}
# A table's tracked bits until told otherwise: the ports and Open vSwitch's default
# prefixes, ip_dst and ip_src (its ofproto.c default_prefix_fields).
DEFAULT_TRACKED = PORTS | PREFIX_BITS["ip_dst"] | PREFIX_BITS["ip_src"]
# Beyond this many rules agreeing with the packet outside the tracked bits, the whole mask.
MAX_PORT_CANDIDATES = 32


def _proof(diff: int) -> int:
    """The bits that prove a packet differs from a rule where ``diff`` (their XOR over
    the tracked bits) is set: the highest differing bit; in an address, every bit of it
    from its top down to that bit (a prefix, as a trie un-wildcards it)."""
    d = diff.bit_length() - 1
    for pos, bits in PREFIX_FIELDS:
        if pos <= d < pos + bits:
            return ((1 << (pos + bits - d)) - 1) << d
    return 1 << d


class _Subtable:
    __slots__ = (
        "mask", "md_mask", "rules", "max_priority", "priorities", "tracked", "ports", "by_rest",
    )  # fmt: skip

    def __init__(self, mask: int, md_mask: int, tracked: int = DEFAULT_TRACKED) -> None:
        self.mask = mask
        self.md_mask = md_mask
        self.rules: dict[tuple[int, int], list[Rule]] = {}  # (key, md) -> by priority desc
        self.max_priority = -1
        # how many rules here have each priority: the highest is found among the distinct
        # priorities (few), not among the rules (a 100,000-rule del-flows took 200 s)
        self.priorities: dict[int, int] = {}
        self.tracked = tracked  # the ports, and the addresses whose prefixes are tracked
        self.ports = mask & tracked  # the tracked bits this subtable matches
        # with those: (key outside them, md) -> the rules' tracked bits
        self.by_rest: dict[tuple[int, int], set[int]] = {}

    def retrack(self, tracked: int) -> None:
        """Track other bits (a table's prefixes changed): index the rules again."""
        self.tracked, self.ports = tracked, self.mask & tracked
        self.by_rest = {}
        for key, md in self.rules:
            self.add_key(key, md)

    def add_key(self, key: int, md: int) -> None:
        if self.ports:
            t = self.tracked
            self.by_rest.setdefault((key & ~t, md), set()).add(key & t)

    def drop_key(self, key: int, md: int) -> None:
        if self.ports:
            t = self.tracked
            rest = self.by_rest[(key & ~t, md)]
            rest.discard(key & t)
            if not rest:
                del self.by_rest[(key & ~t, md)]

    def miss_mask(self, key: int, md: int) -> int:
        """The key bits that prove no rule here matches ``key`` (none does)."""
        if not self.ports:
            return self.mask
        rest = self.mask & ~self.tracked
        ports = self.by_rest.get((key & rest, md & self.md_mask))
        if ports is None:
            return rest  # no rule agrees outside the tracked bits: they do not matter
        if len(ports) > MAX_PORT_CANDIDATES:
            return self.mask
        mine = key & self.ports
        for v in ports:  # where the packet differs from each rule suffices
            rest |= _proof(mine ^ v) & self.mask
        return rest


class Table:
    """One flow table: a tuple-space classifier of rules, plus lookup counters."""

    def __init__(self, table_id: int) -> None:
        self.table_id = table_id
        self.rules: dict[tuple[int, int, int, int, int], Rule] = {}
        self._subtables: dict[tuple[int, int], _Subtable] = {}
        self._order: list[_Subtable] | None = []
        self.lookups = 0  # packets looked up (credited from datapath stats)
        self.matched = 0
        self.version = 0  # bumped by every change (translation depends on it)
        # (table_id, ident) of every rule added, replaced, modified or removed while a
        # handoff tracks changes (OfState.start_journal); None when not tracking
        self.journal: set[tuple[int, tuple[int, int, int, int, int]]] | None = None
        self.tracked = DEFAULT_TRACKED  # bits a miss un-wildcards only as far as it must
        # (key, mask) of the rules added, modified or removed since ``take_touched``; None
        # when more than TOUCHED_MAX or when something else changed (prefix tracking)
        self.touched: list[tuple[int, int]] | None = []

    def track_prefixes(self, fields: Iterable[str]) -> bool:
        """Track the prefixes of these address fields (``ip_src``, ``ip_dst``: a table's
        Flow_Table prefixes); returns whether that changed (the megaflows that read this
        table need translating again)."""
        tracked = PORTS
        for f in fields:
            tracked |= PREFIX_BITS[f]
        if tracked == self.tracked:
            return False
        self.tracked = tracked
        for st in self._subtables.values():
            st.retrack(tracked)
        self.version += 1
        self.touched = None
        return True

    def _touch(self, rule: Rule) -> None:
        t = self.touched
        if t is not None:
            if len(t) < TOUCHED_MAX:
                t.append((rule.key, rule.mask))
            else:
                self.touched = None

    def take_touched(self) -> list[tuple[int, int]] | None:
        """The rules' (key, mask) changed since the last call (None: too many to tell,
        or a change other than rules); starts over."""
        t, self.touched = self.touched, []
        return t

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules.values())

    def insert(self, rule: Rule) -> Rule | None:
        """Add ``rule``; returns the rule it replaced (same priority and match)."""
        old = self.rules.pop(rule.ident, None)
        if old is not None:
            self._unlink(old)
        self.rules[rule.ident] = rule
        if self.journal is not None:
            self.journal.add((self.table_id, rule.ident))
        self._touch(rule)
        st = self._subtables.get((rule.mask, rule.md_mask))
        if st is None:
            st = _Subtable(rule.mask, rule.md_mask, self.tracked)
            self._subtables[(rule.mask, rule.md_mask)] = st
            self._order = None
        bucket = st.rules.get((rule.key, rule.md))
        if bucket is None:
            bucket = st.rules[(rule.key, rule.md)] = []
            st.add_key(rule.key, rule.md)
        bucket.append(rule)
        bucket.sort(key=_by_priority_desc)
        st.priorities[rule.priority] = st.priorities.get(rule.priority, 0) + 1
        if rule.priority > st.max_priority:
            st.max_priority = rule.priority
            self._order = None
        self.version += 1
        return old

    def remove(self, rule: Rule) -> None:
        if self.rules.get(rule.ident) is rule:
            del self.rules[rule.ident]
            self._unlink(rule)
            self.version += 1
            self._touch(rule)
            if self.journal is not None:
                self.journal.add((self.table_id, rule.ident))

    def _unlink(self, rule: Rule) -> None:
        st = self._subtables[(rule.mask, rule.md_mask)]
        bucket = st.rules[(rule.key, rule.md)]
        bucket.remove(rule)
        if not bucket:
            del st.rules[(rule.key, rule.md)]
            st.drop_key(rule.key, rule.md)
        if not st.rules:
            del self._subtables[(rule.mask, rule.md_mask)]
            self._order = None
            return
        left = st.priorities[rule.priority] - 1
        if left:
            st.priorities[rule.priority] = left
        else:
            del st.priorities[rule.priority]
            if rule.priority == st.max_priority:
                st.max_priority = max(st.priorities)
                self._order = None

    def replace_instructions(self, rule: Rule, instructions: tuple[Instruction, ...]) -> None:
        rule.instructions = instructions
        rule.conj = conjunctions_of(instructions)
        self.version += 1
        self._touch(rule)
        if self.journal is not None:
            self.journal.add((self.table_id, rule.ident))

    def lookup(self, key: int, md: int, conjunctive: bool = True) -> tuple[Rule | None, int, int]:
        """(best rule or None, union of the key masks examined, of the metadata masks).

        Conjunctive matches as Open vSwitch's classifier makes them: a rule whose actions
        are ``conjunction(id,k/n)`` is a *soft* match; when, at the highest priority where
        soft matches beat the best ordinary rule, clauses 1..n of some ``id`` all matched,
        the result is the best rule matching the packet with ``conj_id=id``; otherwise the
        soft matches fall back to lower-priority rules with the same match."""
        order = self._order
        if order is None:
            order = self._order = sorted(
                self._subtables.values(), key=lambda s: s.max_priority, reverse=True
            )
        hard: Rule | None = None
        hard_pri = -1
        seen = seen_md = 0
        soft: list[tuple[list[Rule], int]] = []
        for st in order:
            if st.max_priority <= hard_pri:
                break
            seen_md |= st.md_mask
            bucket = st.rules.get((key & st.mask, md & st.md_mask))
            if bucket is None:
                seen |= st.miss_mask(key, md)
                continue
            seen |= st.mask
            if bucket[0].priority <= hard_pri:
                continue
            if bucket[0].conj is None:
                hard, hard_pri = bucket[0], bucket[0].priority
            elif conjunctive:
                soft.append((bucket, 0))
        while soft:
            soft = [(b, i) for b, i in soft if b[i].priority > hard_pri]
            if not soft:
                break
            top = max(b[i].priority for b, i in soft)
            clauses: dict[int, int] = {}
            for b, i in soft:
                if b[i].priority != top:
                    continue
                for cid, clause, n in b[i].conj or ():
                    got = clauses.get(cid, ALL_ONES_64 << n & ALL_ONES_64) | (1 << clause)
                    clauses[cid] = got
                    if got == ALL_ONES_64:
                        rule, s2, m2 = self.lookup(_CONJ_ID.put(key, cid), md, False)
                        if rule is not None:
                            return rule, seen | s2, seen_md | m2
            # no conjunction complete at this priority: the next lower-priority rules
            # with the same match take the soft matches' places
            nxt: list[tuple[list[Rule], int]] = []
            for b, i in soft:
                if b[i].priority != top:
                    nxt.append((b, i))
                elif i + 1 < len(b):
                    r = b[i + 1]
                    if r.conj is not None:
                        nxt.append((b, i + 1))
                    elif r.priority > hard_pri:
                        hard, hard_pri = r, r.priority
            soft = nxt
        return hard, seen, seen_md


_CONJ_ID = LOCS["conj_id"]
_NOT_CONJ_ID = ~_CONJ_ID.mask
# Rule changes per table remembered one by one before a table counts as all changed
# (then every megaflow that looked it up is translated again: a bundle of many adds).
TOUCHED_MAX = 256


def lookups_touch(
    lookups: tuple[tuple[int, int, int], ...], table_id: int, touched: list[tuple[int, int]]
) -> bool:
    """Whether a rule (key, mask) of ``touched``, added to, changed in or removed from
    table ``table_id``, can change a translation that made ``lookups`` (``Xlate.lookups``).

    A lookup of pipeline key K that examined the bits S stands for every packet of the
    megaflow: they all agree with K on S (the megaflow's mask holds S, and what earlier
    actions wrote is the same for all of them). A rule that differs from K on a bit of S
    therefore matches none of them: adding it, removing it or changing its actions
    changes no lookup's result, and the translation stays right (its mask may have more
    bits than now needed, never fewer). ``conj_id`` is left out of the comparison: a
    conjunction's second lookup sets it, so a rule matching it is always a candidate.
    A table looked up with no record of it (an unknown translation) counts as touched."""
    found = False
    for tid, key, seen in lookups:
        if tid != table_id:
            continue
        found = True
        for rkey, rmask in touched:
            if not (rkey ^ key) & rmask & seen & _NOT_CONJ_ID:
                return True
    return not found


def _deletes_learned(r: Rule) -> set[tuple[int, int]]:
    return {
        (a.table_id, a.cookie)
        for a in r.actions()
        if isinstance(a, nx.Learn) and a.flags & nx.LEARN_DELETE_LEARNED
    }


@dataclass(frozen=True, slots=True)
class LearnedFlow:
    """The rule one ``learn`` action builds for one packet (``OfState.learn``)."""

    table_id: int
    priority: int
    match: OfMatch
    instructions: tuple[Instruction, ...]
    cookie: int
    idle_timeout: int
    hard_timeout: int
    flags: int
    limit: int


@dataclass(eq=False)
class LearnCredit:
    """A megaflow's packets re-run its learn actions: each credit with packets adds or
    refreshes the learned rule (so its idle timeout follows the traffic), as Open
    vSwitch's translation cache does."""

    of: OfState
    flow: LearnedFlow

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        if packets:
            self.of.learn(self.flow, used)


@dataclass(eq=False)
class FinCredit:
    """``fin_timeout``: a TCP FIN or RST through ``rule`` shortens its timeouts."""

    of: OfState
    rule: Rule
    idle: int
    hard: int

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        r = self.rule
        if not packets or self.of.tables[r.table_id].rules.get(r.ident) is not r:
            return
        if self.idle and (not r.idle_timeout or self.idle < r.idle_timeout):
            r.idle_timeout = self.idle
            r.last_used = max(r.last_used, used)
        if self.hard:
            left = r.modified + r.hard_timeout - used if r.hard_timeout else None
            if left is None or self.hard < left:
                r.hard_timeout = max(1, int(used - r.modified + self.hard))
        self.of.timed.add(r)


def conjunctions_of(
    instructions: tuple[Instruction, ...],
) -> tuple[tuple[int, int, int], ...] | None:
    """``(id, clause, n_clauses)`` of a rule whose actions are conjunctions (and notes):
    a clause of a conjunctive match; None for an ordinary rule."""
    out = []
    for inst in instructions:
        if not isinstance(inst, ApplyActions):
            return None
        for a in inst.actions:
            if isinstance(a, nx.Conjunction):
                out.append((a.id, a.clause, a.n_clauses))
            elif not isinstance(a, nx.Note):
                return None
    return tuple(out) or None


def _by_priority_desc(r: Rule) -> int:
    return -r.priority


# -- Groups and meters -----------------------------------------------------------------------


class Group:
    """A group entry with its counters (per group and per bucket)."""

    __slots__ = (
        "group_id", "type", "buckets", "created", "packets", "bytes", "bucket_stats", "selection",
    )  # fmt: skip

    def __init__(
        self,
        group_id: int,
        gtype: int,
        buckets: tuple[Bucket, ...],
        created: float,
        selection: SelectionMethod | None = None,
    ) -> None:
        self.group_id = group_id
        self.type = gtype
        self.buckets = buckets
        self.created = created
        self.selection = selection  # Open vSwitch's selection_method (select groups)
        self.packets = 0
        self.bytes = 0
        self.bucket_stats = [[0, 0] for _ in buckets]

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        self.packets += packets
        self.bytes += nbytes

    def to_record(self, now: float) -> OfGroup:
        sel = self.selection
        return OfGroup(
            self.group_id, self.type, b"".join(b.encode() for b in self.buckets),
            now - self.created, self.packets, self.bytes,
            [[p, b] for p, b in self.bucket_stats],
            None if sel is None else OfSelectionV6(
                sel.method, sel.param, b"".join(f.encode() for f in sel.fields)
            ),
        )  # fmt: skip

    @classmethod
    def from_record(cls, rec: OfGroup, now: float) -> Group:
        from hitless.openflow.messages import parse_buckets

        sel = rec.selection
        g = cls(
            rec.group_id,
            rec.type,
            parse_buckets(Reader(rec.buckets)),
            now - rec.age,
            None if sel is None else SelectionMethod(
                sel.method, sel.param, parse_oxm_list(Reader(sel.fields))
            ),
        )  # fmt: skip
        g.packets, g.bytes = rec.packet_count, rec.byte_count
        g.bucket_stats = [[int(p), int(b)] for p, b in rec.bucket_stats]
        return g


@dataclass
class BucketCounter:
    """Credits one bucket of a group (a translation that chose it)."""

    group: Group
    index: int

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        if self.index < len(self.group.bucket_stats):
            s = self.group.bucket_stats[self.index]
            s[0] += packets
            s[1] += nbytes

    def __hash__(self) -> int:
        return hash((id(self.group), self.index))


class Meter:
    """A meter entry: its bands and counters. The datapath enforces the bands (the
    bridge pushes each meter there); ``packets``/``bytes`` are credited from megaflow
    statistics, ``band_stats`` (per band: packets, bytes) from the datapath's meter
    statistics (``Bridge.settle_counters``)."""

    __slots__ = ("meter_id", "flags", "bands", "created", "packets", "bytes", "band_stats")

    def __init__(
        self, meter_id: int, flags: int, bands: tuple[MeterBand, ...], created: float
    ) -> None:
        self.meter_id = meter_id
        self.flags = flags
        self.bands = bands
        self.created = created
        self.packets = 0
        self.bytes = 0
        self.band_stats = [[0, 0] for _ in bands]

    def credit(self, packets: int, nbytes: int, used: float) -> None:
        self.packets += packets
        self.bytes += nbytes

    def to_record(self, now: float) -> OfMeterV2:
        return OfMeterV2(
            self.meter_id, self.flags, b"".join(b.encode() for b in self.bands),
            now - self.created, self.packets, self.bytes,
            [[p, b] for p, b in self.band_stats],
        )  # fmt: skip

    @classmethod
    def from_record(cls, rec: OfMeterV2, now: float) -> Meter:
        from hitless.openflow.messages import parse_bands

        m = cls(rec.meter_id, rec.flags, parse_bands(Reader(rec.bands)), now - rec.age)
        m.packets, m.bytes = rec.packet_count, rec.byte_count
        m.band_stats = [[int(p), int(b)] for p, b in rec.band_stats]
        return m


@dataclass(frozen=True, slots=True)
class RuleChange:
    """A rule added, modified or removed, for flow monitors (``OfState.watch``):
    ``event`` is a flow update event (hitless.openflow.flowmon.UpdateEvent: ADDED,
    REMOVED, MODIFIED), ``instructions`` the rule's at that moment, ``old`` its previous
    ones when they changed (a monitor on an out_port sees a rule that stopped using it)."""

    event: int
    rule: Rule
    instructions: tuple[Instruction, ...]
    reason: int = 0
    old: tuple[Instruction, ...] | None = None


EV_ADDED, EV_REMOVED, EV_MODIFIED = 1, 2, 3  # UpdateEvent's numbers


@dataclass(frozen=True, slots=True)
class Removed:
    """A rule that left its table, and why (FlowRemovedReason)."""

    rule: Rule
    reason: int


# -- The whole OpenFlow state ----------------------------------------------------------------

_FM_ERR = ErrorType.FLOW_MOD_FAILED
# set_field targets translation can apply (hitless.packet.ops): OXM field numbers.
SETTABLE = frozenset(
    {
        _F.ETH_DST,
        _F.ETH_SRC,
        _F.VLAN_VID,
        _F.VLAN_PCP,
        _F.IPV4_SRC,
        _F.IPV4_DST,
        _F.IP_DSCP,
        _F.IP_ECN,
        _F.TCP_SRC,
        _F.TCP_DST,
        _F.UDP_SRC,
        _F.UDP_DST,
        _F.ICMPV4_TYPE,
        _F.ICMPV4_CODE,
        _F.ARP_OP,
        _F.ARP_SPA,
        _F.ARP_TPA,
        _F.ARP_SHA,
        _F.ARP_THA,
        _F.IPV6_SRC,
        _F.IPV6_DST,
        _F.IPV6_FLABEL,
        _F.ICMPV6_TYPE,
        _F.ICMPV6_CODE,
        _F.IPV6_ND_TARGET,
        _F.IPV6_ND_SLL,
        _F.IPV6_ND_TLL,
    }
)
# fields a set_field/load/move/pop may write (Open vSwitch's writable fields we carry)
WRITABLE = frozenset(
    {f"reg{i}" for i in range(16)}
    | {f"xreg{i}" for i in range(8)}
    | {f"xxreg{i}" for i in range(4)}
    | {"metadata", "pkt_mark", "tun_id", "tun_src", "tun_dst", "tun_flags", "in_port"}
    | {"in_port_oxm", "eth_src", "eth_dst", "vlan_vid", "vlan_pcp", "nw_tos", "ip_dscp"}
    | {"nw_ecn", "nw_ttl", "ip_src", "ip_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst"}
    | {"sctp_src", "sctp_dst", "icmp_type", "icmp_code", "arp_op", "arp_spa", "arp_tpa"}
    | {"arp_sha", "arp_tha", "ipv6_src", "ipv6_dst", "ipv6_label", "icmpv6_type"}
    | {"icmpv6_code", "nd_target", "nd_sll", "nd_tll", "mpls_label", "mpls_tc", "mpls_ttl"}
    | {"nd_reserved", "nd_options_type", "nsh_flags", "nsh_ttl", "nsh_spi", "nsh_si"}
    | {"nsh_c1", "nsh_c2", "nsh_c3", "nsh_c4"}
    | {"vlan_tci", "tun_ipv6_src", "tun_ipv6_dst", "tun_gbp_id", "tun_gbp_flags"}
    | {"tun_erspan_idx", "tun_erspan_ver", "tun_erspan_dir", "tun_erspan_hwid"}
    | {f"tun_metadata{i}" for i in range(64)}
)
_NX_PLAIN = (
    nx.Learn,
    nx.FinTimeout,
    nx.Note,
    nx.Exit,
    nx.Conjunction,
    nx.PopQueue,
    nx.Controller,
    nx.Controller2,
    nx.NxDecTtl,
    nx.DecTtlIds,
    nx.WriteMetadataAction,
    nx.SetTunnel,
    nx.Sample,
    nx.NxPopMpls,
    nx.NxSetMplsTtl,
    nx.NxDecMplsTtl,
    nx.NxDecNshTtl,
    nx.NxSetMplsLabel,
    nx.NxSetMplsTc,
)
_MPLS_TYPES = (0x8847, 0x8848)
_RESERVED_OUT = {Port.IN_PORT, Port.NORMAL, Port.FLOOD, Port.ALL, Port.CONTROLLER, Port.LOCAL}


class OfState:
    """Flow tables, groups and meters of one bridge. Meters are plain data here (the
    datapath enforces them: ``Bridge`` pushes them)."""

    def __init__(self) -> None:
        self.tables: list[Table] = [Table(i) for i in range(N_TABLES)]
        self.groups: dict[int, Group] = {}
        self.meters: dict[int, Meter] = {}
        self.group_version = 0
        self.n_rules = 0
        self.timed: set[Rule] = set()  # rules with an idle or hard timeout
        # While a handoff tracks changes (start_journal): the rules changed, the objects
        # credited with packets (rules, groups, meters...), and whether the tables were
        # replaced wholesale (a bundle rollback, an import), which only a full copy carries.
        self.journal: set[tuple[int, tuple[int, int, int, int, int]]] | None = None
        self.credited: set[object] | None = None
        self.journal_overflow = False
        self.learned: set[int] = set()  # tables a learn action changed (take_learned)
        # Rule changes in order while some session monitors flows (None: nobody does);
        # the OpenFlow handler drains it. A bundle's rollback takes its changes back.
        self.watch: list[RuleChange] | None = None
        self._watch_mark = 0  # len(watch) when a snapshot was taken (restore truncates)
        # What a miss without a table-miss rule does (Open vSwitch's): a 1.1/1.2 table
        # mod's OFPTC11_TABLE_MISS_* per table (absent: the default), and whether a
        # session of 1.0-1.2 gets async messages (then the default sends a packet-in).
        self.table_miss: dict[int, int] = {}
        self.miss_packet_in = False
        # The Geneve option map (NXT_TLV_TABLE_MOD), by tun_metadata index: a rule or an
        # action may name tun_metadata<n> only while n is mapped, and within its length.
        self.tlv_maps: dict[int, TlvMap] = {}

    # -- queries --
    def rules(self, table_id: int = 0xFF) -> Iterator[Rule]:
        tables = self.tables if table_id == 0xFF else [self.tables[table_id]]
        for t in tables:
            yield from t

    def select(
        self,
        table_id: int,
        match: OfMatch,
        *,
        strict: bool = False,
        priority: int = 0,
        cookie: int = 0,
        cookie_mask: int = 0,
        out_port: int = Port.ANY,
        out_group: int = GroupNo.ANY,
    ) -> list[Rule]:
        """The rules a flow-mod or a flow-stats request with these criteria selects."""
        if table_id != 0xFF and table_id >= N_TABLES:
            raise RemoteProtocolError(
                f"table {table_id} does not exist", _FM_ERR, FlowModFailedCode.BAD_TABLE_ID
            )
        key, mask, md, md_mask = compile_match(match)
        ident = (priority, key, mask, md, md_mask)
        out: list[Rule] = []
        tables = self.tables if table_id == 0xFF else [self.tables[table_id]]
        for t in tables:
            if strict:
                r = t.rules.get(ident)
                cands: Iterable[Rule] = () if r is None else (r,)
            else:
                cands = [r for r in t if r.covered_by(key, mask, md, md_mask)]
            for r in cands:
                if cookie_mask and (r.cookie ^ cookie) & cookie_mask:
                    continue
                if out_port != Port.ANY and not r.outputs_to(out_port):
                    continue
                if out_group != GroupNo.ANY and not r.uses_group(out_group):
                    continue
                out.append(r)
        return out

    def next_expiry(self) -> float | None:
        t: float | None = None
        for r in self.timed:
            e = r.expiry()
            if e is not None and (t is None or e < t):
                t = e
        return t

    def _inserted(self, rule: Rule, old: Rule | None) -> None:
        if old is None:
            self.n_rules += 1
        else:
            self.timed.discard(old)
        if rule.idle_timeout or rule.hard_timeout:
            self.timed.add(rule)

    # -- tun_metadata (the Geneve option map) --
    def _tlv_len(self, index: int) -> int:
        """The length in bytes of tun_metadata<index>'s option; NXFMFC_INVALID_TLV_FIELD if
        it is not mapped (as Open vSwitch answers)."""
        m = self.tlv_maps.get(index)
        if m is None:
            raise RemoteProtocolError.nicira(
                f"tun_metadata{index} is not mapped to a Geneve option (add-tlv-map)",
                NxError.INVALID_TLV_FIELD,
            )
        return m.option_len

    def fit_tlv_match(self, match: OfMatch) -> OfMatch:
        """``match`` with every tun_metadata field as wide as its mapping, as Open vSwitch
        reads one: a shorter value is the low bytes, a longer one keeps its first bytes."""
        if not any(tun_metadata_index(o.oxm_class, o.field) is not None for o in match.fields):
            return match
        return replace(match, fields=tuple(self._fit_tlv_oxm(o) for o in match.fields))

    def _fit_tlv_oxm(self, o: Oxm) -> Oxm:
        idx = tun_metadata_index(o.oxm_class, o.field)
        if idx is None:
            return o
        n = self._tlv_len(idx)
        if not n:
            raise RemoteProtocolError.nicira(
                f"tun_metadata{idx}: a 0-byte option", NxError.INVALID_TLV_FIELD
            )
        if o.width == n:
            return o
        cut = max(0, o.width - n) * 8
        mask = None if o.mask is None else o.mask >> cut
        return replace(o, value=o.value >> cut, mask=mask, width=n)

    def fit_tlv_actions(self, actions: tuple[Action, ...]) -> tuple[Action, ...]:
        """``actions`` with every set_field of a tun_metadata as wide as its mapping."""
        out: list[Action] = []
        for a in actions:
            if isinstance(a, SetField):
                a = SetField(self._fit_tlv_oxm(a.field))
            elif isinstance(a, nx.RegLoad2):
                a = nx.RegLoad2(self._fit_tlv_oxm(a.field))
            elif isinstance(a, NxAction):
                a = a.map_nested(self.fit_tlv_actions)
            out.append(a)
        return tuple(out)

    def fit_tlv_instructions(self, insts: tuple[Instruction, ...]) -> tuple[Instruction, ...]:
        if not self.tlv_maps:  # nothing can name a tun_metadata (validation refuses it)
            return insts
        return tuple(
            type(i)(self.fit_tlv_actions(i.actions))
            if isinstance(i, (ApplyActions, WriteActions))
            else i
            for i in insts
        )

    def _check_tlv_subfield(self, sf: Subfield) -> None:
        idx = tun_metadata_index(sf.ref.oxm_class, sf.ref.field)
        if idx is None:
            return
        n = self._tlv_len(idx)
        if sf.ofs + sf.nbits > n * 8:
            raise RemoteProtocolError(
                f"{sf} is outside tun_metadata{idx}'s {n}-byte option",
                ErrorType.BAD_ACTION,
                BadActionCode.BAD_SET_LEN,
            )

    def _fields_used(self) -> Iterator[tuple[int, int, int | None]]:
        """(OXM class, field, experimenter id) of each field a rule matches, or a rule or
        a group bucket writes or reads: rules first, in order, each its match then its
        actions."""
        for r in self.rules():
            yield from _rule_fields(r)
        yield from self._group_fields()

    def _group_fields(self) -> Iterator[tuple[int, int, int | None]]:
        for g in self.groups.values():
            for b in g.buckets:
                for a in b.actions:
                    yield from _action_fields(a)

    def tlv_in_use(self, indexes: Iterable[int]) -> int | None:
        """One of ``indexes`` (tun_metadata fields) that a rule matches or writes, or None."""
        wanted = set(indexes)
        for cls, field, _ in self._fields_used():
            idx = tun_metadata_index(cls, field)
            if idx is not None and idx in wanted:
                return idx
        return None

    def uses_oxm_class(self, oxm_class: int) -> bool:
        """Whether a rule matches, or a rule or group bucket writes or reads, a field of
        ``oxm_class`` (a handoff to a build without such fields is refused)."""
        return any(cls == oxm_class for cls, _, _ in self._fields_used())

    def uses_action(self, kind: type) -> bool:
        """Whether a rule or a group bucket has an action of type ``kind`` (nested in
        another action too)."""

        return rules_use_action(self.rules(), kind) or self.groups_use_action(kind)

    def groups_use_action(self, kind: type) -> bool:
        """Whether a group bucket has an action of type ``kind`` (nested too)."""
        return any(_has_action(b.actions, kind) for g in self.groups.values() for b in g.buckets)

    def uses_experimenter(self, experimenter: int) -> bool:
        """Whether a rule matches, or a rule or group bucket writes or reads, a field of
        experimenter ``experimenter`` (OXM class 0xffff)."""
        return any(exp == experimenter for cls, _, exp in self._fields_used() if cls == 0xFFFF)

    def groups_use_field_of(self, oxm_class: int, experimenter: int | None = None) -> bool:
        """Whether a group bucket writes or reads a field of ``oxm_class`` (and of
        ``experimenter``, if given)."""
        return _of(self._group_fields(), oxm_class, experimenter)

    # -- flow-mod --
    def validate_instructions(self, table_id: int, insts: tuple[Instruction, ...]) -> None:
        conj = [
            a
            for i in insts
            if isinstance(i, (ApplyActions, WriteActions))
            for a in i.actions
            if isinstance(a, nx.Conjunction)
        ]
        if conj and conjunctions_of(insts) is None:
            raise RemoteProtocolError(
                "conjunction actions may be used along with note but no other kind",
                ErrorType.BAD_ACTION,
                BadActionCode.BAD_ARGUMENT,
            )
        for inst in insts:
            if isinstance(inst, GotoTable):
                if inst.table_id <= table_id or inst.table_id >= N_TABLES:
                    raise RemoteProtocolError(
                        f"goto_table:{inst.table_id} from table {table_id}",
                        ErrorType.BAD_INSTRUCTION,
                        BadInstructionCode.BAD_TABLE_ID,
                    )
            elif isinstance(inst, MeterInstruction):
                if inst.meter_id not in self.meters:
                    raise RemoteProtocolError(
                        f"meter {inst.meter_id} does not exist",
                        ErrorType.METER_MOD_FAILED,
                        MeterModFailedCode.INVALID_METER,  # Open vSwitch 3.1's choice
                    )
            elif isinstance(inst, (ApplyActions, WriteActions)):
                self.validate_actions(inst.actions)
            elif not isinstance(inst, WriteMetadata) and type(inst).__name__ != "ClearActions":
                raise RemoteProtocolError(
                    f"instruction {type(inst).__name__} is not supported",
                    ErrorType.BAD_INSTRUCTION,
                    BadInstructionCode.UNSUP_INST,
                )

    def validate_actions(self, actions: Iterable[Action]) -> None:
        from hitless.openflow.actions import (
            DecMplsTtl,
            DecNwTtl,
            PopMpls,
            PopVlan,
            PushMpls,
            PushVlan,
            SetMplsTtl,
            SetNwTtl,
            SetQueue,
        )

        for a in actions:
            if isinstance(a, Output):
                if a.port == 0 or (a.port > Port.MAX and a.port not in _RESERVED_OUT):
                    raise RemoteProtocolError(
                        f"output to port {a.port:#x}",
                        ErrorType.BAD_ACTION,
                        BadActionCode.BAD_OUT_PORT,
                    )
            elif isinstance(a, GroupAction):
                if a.group_id not in self.groups:
                    raise RemoteProtocolError(
                        f"group {a.group_id} does not exist",
                        ErrorType.BAD_ACTION,
                        BadActionCode.BAD_OUT_GROUP,
                    )
            elif isinstance(a, SetField):
                f = a.field
                basic = f.oxm_class == OxmClass.OPENFLOW_BASIC
                if basic and f.field in SETTABLE:
                    continue
                spec = spec_of(f)
                if spec is None or spec.name not in WRITABLE:
                    raise RemoteProtocolError(
                        f"set_field of {f.name} is not supported",
                        ErrorType.BAD_ACTION,
                        BadActionCode.BAD_SET_TYPE,
                    )
                idx = tun_metadata_index(f.oxm_class, f.field)
                if idx is not None:
                    self._tlv_len(idx)
            elif isinstance(a, PushVlan):
                if a.ethertype not in (0x8100, 0x88A8):
                    raise RemoteProtocolError(
                        f"push_vlan ethertype {a.ethertype:#x}",
                        ErrorType.BAD_ACTION,
                        BadActionCode.BAD_ARGUMENT,
                    )
            elif isinstance(a, PushMpls) and a.ethertype not in _MPLS_TYPES:
                raise RemoteProtocolError(
                    f"push_mpls ethertype {a.ethertype:#x} is not MPLS",
                    ErrorType.BAD_ACTION,
                    BadActionCode.BAD_ARGUMENT,
                )
            elif isinstance(a, NxAction):
                self._validate_nx(a)
            elif not isinstance(
                a, (PopVlan, DecNwTtl, SetNwTtl, SetQueue, PushMpls, PopMpls, SetMplsTtl, DecMplsTtl)
            ):
                raise RemoteProtocolError(
                    f"action {type(a).__name__} is not supported",
                    ErrorType.BAD_ACTION,
                    BadActionCode.BAD_TYPE,
                )

    def _validate_nx(self, a: NxAction) -> None:
        """Nicira actions: the ones translation implements, with fields it can read/write."""

        def bad(msg: str, code: BadActionCode = BadActionCode.BAD_ARGUMENT) -> RemoteProtocolError:
            return RemoteProtocolError(msg, ErrorType.BAD_ACTION, code)

        def readable(sf: Subfield) -> None:
            if sf.ref.name not in LOCS:
                raise bad(f"{sf} cannot be read", BadActionCode.BAD_SET_ARGUMENT)
            self._check_tlv_subfield(sf)

        def writable(sf: Subfield) -> None:
            if sf.ref.name not in WRITABLE:
                raise bad(f"{sf} cannot be written", BadActionCode.BAD_SET_ARGUMENT)
            self._check_tlv_subfield(sf)

        if isinstance(a, nx.Resubmit):
            if a.ct:
                raise bad("resubmit(...,ct) needs connection tracking", BadActionCode.BAD_EXP_TYPE)
            if a.table != 0xFF and a.table >= N_TABLES:
                raise bad(f"resubmit to table {a.table}")
        elif isinstance(a, nx.RegLoad):
            writable(a.dst)
        elif isinstance(a, nx.RegLoad2):
            spec = spec_of(a.field)
            if spec is None or spec.name not in WRITABLE:
                raise bad(f"set_field of {a.field.name}", BadActionCode.BAD_SET_TYPE)
            idx = tun_metadata_index(a.field.oxm_class, a.field.field)
            if idx is not None:
                self._tlv_len(idx)
        elif isinstance(a, nx.RegMove):
            readable(a.src)
            writable(a.dst)
        elif isinstance(a, nx.OutputReg):
            readable(a.src)
        elif isinstance(a, nx.StackPop):
            writable(a.field)
        elif isinstance(a, nx.StackPush):
            readable(a.field)
        elif isinstance(a, nx.Clone):
            self.validate_actions(a.actions)
        elif isinstance(a, (nx.Multipath, nx.BundleAction)):
            dst = a.dst
            if dst is not None:
                writable(dst)
            if isinstance(a, nx.BundleAction) and (
                a.algorithm not in (0, 1) or not a.members or a.member_type != 2
            ):
                raise bad("bundle: algorithm active_backup or hrw, members by ofport")
            if isinstance(a, nx.Multipath) and a.algorithm > 3:
                raise bad(f"multipath algorithm {a.algorithm}")
        elif isinstance(a, nx.Learn):
            if a.table_id >= N_TABLES:
                raise bad(f"learn into table {a.table_id}")
            for sp in a.specs:
                if sp.src is not None:
                    readable(sp.src)
                if sp.dst is not None and sp.dst_type == 0 and sp.dst.ref.name not in LOCS:
                    raise bad(f"learn: {sp.dst} cannot be matched")
                if sp.dst is not None and sp.dst_type == 1:
                    writable(sp.dst)
            if a.result_dst is not None:
                writable(a.result_dst)
        elif isinstance(a, nx_ct.CtAction):
            a.validate()
            if a.zone_field is not None:
                readable(a.zone_field)
            if a.table != nx_ct.RECIRC_NONE and a.table >= N_TABLES:
                raise bad(f"ct to table {a.table}")
        elif isinstance(a, nx.CheckPktLarger):
            writable(a.dst)
        elif isinstance(a, nx.NxPushMpls):
            if a.ethertype not in _MPLS_TYPES:
                raise bad(f"push_mpls ethertype {a.ethertype:#x} is not MPLS")
        elif isinstance(a, nx_ct.NatAction):
            raise bad("nat is only allowed inside ct")
        elif not isinstance(a, (*_NX_PLAIN, nx_ct.CtClear)):
            raise bad(
                f"Nicira action {type(a).__name__} is not supported", BadActionCode.BAD_EXP_TYPE
            )

    def flow_mod(self, fm: FlowMod, now: float) -> tuple[set[int], list[Removed]]:
        """Apply a flow-mod. Returns (tables changed, rules removed with SEND_FLOW_REM)."""
        match = self.fit_tlv_match(fm.match)
        insts = self.fit_tlv_instructions(fm.instructions)
        if match is not fm.match or insts is not fm.instructions:
            fm = replace(fm, match=match, instructions=insts)
        cmd = fm.command
        if cmd == FlowModCommand.ADD:
            return self._add(fm, now)
        if cmd in (FlowModCommand.MODIFY, FlowModCommand.MODIFY_STRICT):
            if fm.table_id >= N_TABLES:
                raise RemoteProtocolError(
                    f"modify in table {fm.table_id}", _FM_ERR, FlowModFailedCode.BAD_TABLE_ID
                )
            self.validate_instructions(fm.table_id, fm.instructions)
            rules = self.select(
                fm.table_id,
                fm.match,
                strict=cmd == FlowModCommand.MODIFY_STRICT,
                priority=fm.priority,
                cookie=fm.cookie,
                cookie_mask=fm.cookie_mask,
            )
            for r in rules:
                if self.watch is not None and r.instructions != fm.instructions:
                    self.watch.append(
                        RuleChange(EV_MODIFIED, r, fm.instructions, old=r.instructions)
                    )
                self.tables[r.table_id].replace_instructions(r, fm.instructions)
                r.modified = now  # a modify restarts the hard timeout (Open vSwitch 3.1)
                if fm.flags & FlowModFlags.RESET_COUNTS:
                    r.packets = r.bytes = 0
            return {r.table_id for r in rules}, []
        if cmd in (FlowModCommand.DELETE, FlowModCommand.DELETE_STRICT):
            rules = self.select(
                fm.table_id,
                fm.match,
                strict=cmd == FlowModCommand.DELETE_STRICT,
                priority=fm.priority,
                cookie=fm.cookie,
                cookie_mask=fm.cookie_mask,
                out_port=fm.out_port,
                out_group=fm.out_group,
            )
            return self._remove(rules, FlowRemovedReason.DELETE)
        raise RemoteProtocolError(f"flow-mod command {cmd}", _FM_ERR, FlowModFailedCode.BAD_COMMAND)

    def _add(self, fm: FlowMod, now: float) -> tuple[set[int], list[Removed]]:
        if fm.table_id >= N_TABLES:
            raise RemoteProtocolError(
                f"add to table {fm.table_id}", _FM_ERR, FlowModFailedCode.BAD_TABLE_ID
            )
        for o in fm.match.fields:
            spec = spec_of(o)
            if spec is not None and (spec.name == "dp_hash" or spec.name == "recirc_id" and o.value):
                # Open vSwitch 3.1 (measured): hidden fields are for its internal flows
                raise RemoteProtocolError(
                    f"only internal flows can match {spec.name}={o.value:#x}",
                    ErrorType.BAD_REQUEST,
                    BadRequestCode.EPERM,
                )
        self.validate_instructions(fm.table_id, fm.instructions)
        rule = Rule(
            fm.table_id,
            fm.priority,
            fm.match,
            fm.instructions,
            cookie=fm.cookie,
            idle_timeout=fm.idle_timeout,
            hard_timeout=fm.hard_timeout,
            flags=fm.flags,
            importance=fm.importance,
            created=now,
        )
        table = self.tables[fm.table_id]
        if fm.flags & FlowModFlags.CHECK_OVERLAP:
            for r in table:
                if r.priority == rule.priority and r.ident != rule.ident and r.overlaps(rule):
                    raise RemoteProtocolError(
                        "overlapping rule with the same priority",
                        _FM_ERR,
                        FlowModFailedCode.OVERLAP,
                    )
        old = table.insert(rule)
        self._inserted(rule, old)
        if old is not None and not fm.flags & FlowModFlags.RESET_COUNTS:
            rule.packets, rule.bytes = old.packets, old.bytes
        if self.watch is not None:
            prev = (
                old.instructions
                if old is not None and old.instructions != rule.instructions
                else None
            )
            self.watch.append(RuleChange(EV_ADDED, rule, rule.instructions, old=prev))
        return {fm.table_id}, []

    def _remove(self, rules: list[Rule], reason: int) -> tuple[set[int], list[Removed]]:
        changed: set[int] = set()
        removed: list[Removed] = []
        cookies: set[tuple[int, int]] = set()
        for r in rules:
            t = self.tables[r.table_id]
            if t.rules.get(r.ident) is not r:
                continue  # already gone (a learned rule deleted with its learner)
            t.remove(r)
            self.n_rules -= 1
            self.timed.discard(r)
            changed.add(r.table_id)
            if self.watch is not None:
                self.watch.append(RuleChange(EV_REMOVED, r, r.instructions, reason))
            if r.flags & FlowModFlags.SEND_FLOW_REM:
                removed.append(Removed(r, reason))
            cookies |= _deletes_learned(r)
        if cookies:
            # learn(...,delete_learned): once the last learner of (table, cookie) is gone,
            # the rules it learned go too (Open vSwitch's learned cookies)
            still = {tc for t in self.tables for r in t for tc in _deletes_learned(r)}
            dead = [
                r
                for table_id, cookie in cookies - still
                for r in self.tables[table_id]
                if r.cookie == cookie
            ]
            if dead:
                c, rem = self._remove(dead, FlowRemovedReason.DELETE)
                changed |= c
                removed += rem
        return changed, removed

    # -- learn --
    def learn(self, lf: LearnedFlow, now: float) -> bool:
        """Add or refresh a rule built by a ``learn`` action (as a modify-strict that adds
        when nothing matches). False when its ``limit`` is reached or the match is not
        valid (a missing prerequisite). The tables that changed wait in ``learned``."""
        try:
            rule = Rule(
                lf.table_id,
                lf.priority,
                lf.match,
                lf.instructions,
                cookie=lf.cookie,
                idle_timeout=lf.idle_timeout,
                hard_timeout=lf.hard_timeout,
                flags=lf.flags,
                created=now,
            )
        except RemoteProtocolError:
            return False
        t = self.tables[lf.table_id]
        old = t.rules.get(rule.ident)
        if old is not None:
            if old.instructions != rule.instructions:
                if self.watch is not None:
                    self.watch.append(
                        RuleChange(EV_MODIFIED, old, rule.instructions, old=old.instructions)
                    )
                t.replace_instructions(old, rule.instructions)
                self.learned.add(lf.table_id)
            elif t.journal is not None:
                t.journal.add((t.table_id, old.ident))
            old.cookie = lf.cookie
            # the hard timeout counts from here again; the duration goes on (Open vSwitch)
            old.modified = max(old.modified, now)
            old.last_used = max(old.last_used, now)
            return True
        if lf.limit and sum(1 for r in t if r.cookie == lf.cookie) >= lf.limit:
            return False
        self._inserted(rule, t.insert(rule))
        self.learned.add(lf.table_id)
        if self.watch is not None:
            self.watch.append(RuleChange(EV_ADDED, rule, rule.instructions))
        return True

    def learn_room(self, lf: LearnedFlow) -> bool:
        """Whether ``learn`` would succeed now (for learn's result bit)."""
        if not lf.limit:
            return True
        t = self.tables[lf.table_id]
        try:
            key, mask, md, md_mask = compile_match(lf.match)
        except RemoteProtocolError:
            return False
        if (lf.priority, key, mask, md, md_mask) in t.rules:
            return True
        return sum(1 for r in t if r.cookie == lf.cookie) < lf.limit

    def take_learned(self) -> set[int]:
        """Tables changed by learn actions since the last call."""
        out, self.learned = self.learned, set()
        return out

    def add_rule(self, rule: Rule) -> None:
        """Insert a prebuilt rule (defaults, import)."""
        self._inserted(rule, self.tables[rule.table_id].insert(rule))

    def expire(self, now: float) -> tuple[set[int], list[Removed]]:
        """Remove rules whose idle or hard timeout passed."""
        changed: set[int] = set()
        removed: list[Removed] = []
        for r in sorted(self.timed, key=_order_key):
            reason = None
            if r.hard_timeout and now >= r.modified + r.hard_timeout:
                reason = FlowRemovedReason.HARD_TIMEOUT
            elif r.idle_timeout and now >= r.last_used + r.idle_timeout:
                reason = FlowRemovedReason.IDLE_TIMEOUT
            if reason is not None:
                c, rem = self._remove([r], reason)
                changed |= c
                for x in rem:
                    removed.append(x)
        return changed, removed

    # -- group-mod --
    def group_mod(self, gm: GroupMod, now: float) -> tuple[set[int], list[Removed]]:
        """Apply a group-mod. Returns (tables changed by removed rules, rules removed)."""
        err = ErrorType.GROUP_MOD_FAILED
        gid = gm.group_id
        if gm.command == GroupModCommand.DELETE:
            ids = list(self.groups) if gid == GroupNo.ALL else [gid]
            changed: set[int] = set()
            removed: list[Removed] = []
            for g_id in ids:
                if self.groups.pop(g_id, None) is None:
                    continue
                users = [r for r in self.rules() if r.uses_group(g_id)]
                c, rem = self._remove(users, FlowRemovedReason.GROUP_DELETE)
                changed |= c
                removed += rem
            self.group_version += 1
            return changed, removed
        if gm.command in (GroupModCommand.INSERT_BUCKET, GroupModCommand.REMOVE_BUCKET):
            gm = self._bucket_command(gm)
        if gid > GroupNo.MAX:
            raise RemoteProtocolError(f"group id {gid:#x}", err, GroupModFailedCode.INVALID_GROUP)
        if gm.group_type not in (GroupType.ALL, GroupType.SELECT, GroupType.INDIRECT, GroupType.FF):
            raise RemoteProtocolError(
                f"group type {gm.group_type}", err, GroupModFailedCode.BAD_TYPE
            )
        if gm.group_type == GroupType.INDIRECT and len(gm.buckets) != 1:
            raise RemoteProtocolError(
                "an indirect group has exactly one bucket", err, GroupModFailedCode.BAD_BUCKET
            )
        for b in gm.buckets:
            for a in b.actions:
                if isinstance(a, GroupAction) and (
                    a.group_id == gid or a.group_id not in self.groups
                ):
                    raise RemoteProtocolError(
                        f"bucket chains to group {a.group_id}",
                        err,
                        GroupModFailedCode.LOOP
                        if a.group_id == gid
                        else GroupModFailedCode.CHAINING_UNSUPPORTED,
                    )
            try:
                self.validate_actions(b.actions)
            except RemoteProtocolError as e:
                raise RemoteProtocolError(e.message, err, GroupModFailedCode.BAD_BUCKET) from None
        if self.tlv_maps:
            gm = replace(gm, buckets=tuple(
                replace(b, actions=self.fit_tlv_actions(b.actions)) for b in gm.buckets
            ))  # fmt: skip
        if gm.command == GroupModCommand.ADD:
            if gid in self.groups:
                raise RemoteProtocolError(
                    f"group {gid} exists", err, GroupModFailedCode.GROUP_EXISTS
                )
            self.groups[gid] = Group(gid, gm.group_type, gm.buckets, now, gm.selection)
        elif gm.command == GroupModCommand.MODIFY:
            old = self.groups.get(gid)
            if old is None:
                raise RemoteProtocolError(
                    f"group {gid} does not exist", err, GroupModFailedCode.UNKNOWN_GROUP
                )
            g = Group(gid, gm.group_type, gm.buckets, old.created, gm.selection)
            g.packets, g.bytes = old.packets, old.bytes
            self.groups[gid] = g
        else:
            raise RemoteProtocolError(
                f"group-mod command {gm.command}", err, GroupModFailedCode.BAD_COMMAND
            )
        self.group_version += 1
        return set(), []

    def _bucket_command(self, gm: GroupMod) -> GroupMod:
        """1.5's INSERT_BUCKET / REMOVE_BUCKET as the MODIFY of the group they make: new
        buckets after the one ``command_bucket_id`` names (or first/last), or the named
        (first, last, all) buckets removed."""
        err = ErrorType.GROUP_MOD_FAILED
        old = self.groups.get(gm.group_id)
        if old is None:
            raise RemoteProtocolError(f"group {gm.group_id} does not exist", err,
                                      GroupModFailedCode.UNKNOWN_GROUP)  # fmt: skip
        have = [b if b.bucket_id is not None else replace(b, bucket_id=i)
                for i, b in enumerate(old.buckets)]  # fmt: skip
        ids = [b.bucket_id for b in have]
        cb = gm.command_bucket_id
        first, last, everything = 0xFFFFFFFD, 0xFFFFFFFE, 0xFFFFFFFF
        if gm.command == GroupModCommand.REMOVE_BUCKET:
            if cb == everything:
                keep: list[Bucket] = []
            elif cb in (first, last):
                keep = have[1:] if cb == first else have[:-1]
            elif cb in ids:
                keep = [b for b in have if b.bucket_id != cb]
            else:
                raise RemoteProtocolError(f"no bucket {cb}", err, GroupModFailedCode.UNKNOWN_BUCKET)
            buckets = tuple(keep)
        else:
            top = max((i for i in ids if i is not None), default=-1)
            new = [b if b.bucket_id is not None else replace(b, bucket_id=top + 1 + i)
                   for i, b in enumerate(gm.buckets)]  # fmt: skip
            if any(b.bucket_id in ids for b in new):
                raise RemoteProtocolError("bucket id exists", err, GroupModFailedCode.BUCKET_EXISTS)
            if cb == first:
                at = 0
            elif cb == last:
                at = len(have)
            elif cb in ids:
                at = ids.index(cb) + 1
            else:
                raise RemoteProtocolError(f"no bucket {cb}", err, GroupModFailedCode.UNKNOWN_BUCKET)
            buckets = tuple(have[:at] + new + have[at:])
        return replace(gm, command=GroupModCommand.MODIFY, group_type=old.type, buckets=buckets,
                       selection=old.selection)  # fmt: skip

    # -- meter-mod --
    def meter_mod(self, mm: MeterMod, now: float) -> tuple[set[int], list[Removed]]:
        err = ErrorType.METER_MOD_FAILED
        mid = mm.meter_id
        if mm.command == MeterModCommand.DELETE:
            ids = list(self.meters) if mid == MeterNo.ALL else [mid]
            changed: set[int] = set()
            removed: list[Removed] = []
            for m_id in ids:
                if self.meters.pop(m_id, None) is None:
                    continue
                users = [r for r in self.rules() if r.meter_id() == m_id]
                c, rem = self._remove(users, FlowRemovedReason.METER_DELETE)
                changed |= c
                removed += rem
            return changed, removed
        if not 1 <= mid <= MeterNo.MAX:
            raise RemoteProtocolError(f"meter id {mid:#x}", err, MeterModFailedCode.INVALID_METER)
        if not mm.flags & (MeterFlags.KBPS | MeterFlags.PKTPS) or (
            mm.flags & MeterFlags.KBPS and mm.flags & MeterFlags.PKTPS
        ):
            raise RemoteProtocolError(
                f"meter flags {mm.flags:#x}: one of kbps, pktps", err, MeterModFailedCode.BAD_FLAGS
            )
        if len(mm.bands) > MAX_METER_BANDS:
            raise RemoteProtocolError(
                f"{len(mm.bands)} meter bands (at most {MAX_METER_BANDS})",
                err,
                MeterModFailedCode.OUT_OF_BANDS,
            )
        for b in mm.bands:
            if b.type != MeterBandType.DROP:
                # The datapath enforces drop bands only (as Open vSwitch's userspace one).
                raise RemoteProtocolError(
                    f"meter band type {b.type} (only drop)", err, MeterModFailedCode.BAD_BAND
                )
            if b.rate == 0:
                raise RemoteProtocolError("band rate 0", err, MeterModFailedCode.BAD_RATE)
        if mm.command == MeterModCommand.ADD:
            if mid in self.meters:
                raise RemoteProtocolError(
                    f"meter {mid} exists", err, MeterModFailedCode.METER_EXISTS
                )
            if len(self.meters) >= MAX_METERS:
                raise RemoteProtocolError(
                    f"{MAX_METERS} meters already", err, MeterModFailedCode.OUT_OF_METERS
                )
            self.meters[mid] = Meter(mid, mm.flags, mm.bands, now)
        elif mm.command == MeterModCommand.MODIFY:
            old = self.meters.get(mid)
            if old is None:
                raise RemoteProtocolError(
                    f"meter {mid} does not exist", err, MeterModFailedCode.UNKNOWN_METER
                )
            m = Meter(mid, mm.flags, mm.bands, old.created)
            m.packets, m.bytes = old.packets, old.bytes
            self.meters[mid] = m
        else:
            raise RemoteProtocolError(
                f"meter-mod command {mm.command}", err, MeterModFailedCode.BAD_COMMAND
            )
        return set(), []

    # -- transactions (bundles) --
    def snapshot(self) -> OfState:
        """A copy to roll back to (rules and groups copied, instructions shared)."""
        s = OfState()
        for t in self.tables:
            s.tables[t.table_id].tracked = t.tracked  # its prefixes, before its rules
            for r in t:
                s.add_rule(copy.copy(r))
            s.tables[t.table_id].lookups = t.lookups
            s.tables[t.table_id].matched = t.matched
        s.groups = dict(self.groups)
        s.meters = dict(self.meters)
        s.group_version = self.group_version
        s._watch_mark = len(self.watch) if self.watch is not None else 0
        return s

    def restore(self, snap: OfState) -> None:
        """Become ``snap`` (a rollback); every table counts as changed."""
        versions = [t.version for t in self.tables]
        self.tables = snap.tables
        for t, v in zip(self.tables, versions, strict=True):
            t.version = v + 1
            t.journal = self.journal
        if self.journal is not None:
            self.journal_overflow = True
        self.groups = snap.groups
        self.meters = snap.meters
        if self.watch is not None:
            del self.watch[snap._watch_mark :]  # the rolled-back changes never happened
        self.n_rules = snap.n_rules
        self.timed = snap.timed
        self.group_version += 1

    # -- handoff --
    def start_journal(self) -> None:
        """Track what changes from now on (``take_journal``)."""
        self.journal = set()
        self.credited = set()
        self.journal_overflow = False
        for t in self.tables:
            t.journal = self.journal

    def take_journal(
        self,
    ) -> tuple[set[tuple[int, tuple[int, int, int, int, int]]], set[object], bool]:
        """(rules changed, objects credited, whether only a full copy will do) since
        ``start_journal``; tracking stops."""
        out = (self.journal or set(), self.credited or set(), self.journal_overflow)
        self.journal = self.credited = None
        self.journal_overflow = False
        for t in self.tables:
            t.journal = None
        return out

    def evict(self, rule: Rule) -> list[Removed]:
        """Take a rule out to make room in its full table: flow-removed (if it asked)
        and flow monitors say EVICTION."""
        return self._remove([rule], FlowRemovedReason.EVICTION)[1]

    def remove_rules(self, rules: Iterable[Rule]) -> None:
        """Take rules out without flow-removed messages (a handoff's delta)."""
        self._remove(list(rules), FlowRemovedReason.DELETE)

    def export_records(self, now: float) -> OpenFlow:
        """Rules (with counters, ages and idle times, so timeouts continue), groups,
        meters and table counters, as the handoff carries them (hitless.state.records)."""
        return OpenFlow(
            [r.to_record(now) for r in self.rules()],
            self.group_records(now),
            self.meter_records(now),
            self.table_counters(),
        )

    def group_records(self, now: float) -> list[OfGroup]:
        return [g.to_record(now) for g in sorted(self.groups.values(), key=_gid)]

    def meter_records(self, now: float) -> list[OfMeterV2]:
        return [m.to_record(now) for m in sorted(self.meters.values(), key=_mid)]

    def table_counters(self) -> list[list[int]]:
        return [[t.table_id, t.lookups, t.matched] for t in self.tables if t.lookups]

    def import_records(self, of: OpenFlow, now: float) -> None:
        """Replace everything with an ``export_records`` result."""
        fresh = OfState()
        fresh.set_groups_meters(of.groups, of.meters, of.tables, now)
        for rec in of.rules:
            fresh.add_rule(Rule.from_record(rec, now))
        self.restore(fresh)

    def set_groups_meters(
        self,
        groups: list[OfGroup],
        meters: list[OfMeterV2],
        tables: list[list[int]],
        now: float,
    ) -> None:
        """Replace the groups, the meters and the tables' lookup counters (a handoff)."""
        self.groups = {g.group_id: g for g in (Group.from_record(r, now) for r in groups)}
        self.meters = {m.meter_id: m for m in (Meter.from_record(r, now) for r in meters)}
        self.group_version += 1
        for t in self.tables:
            t.lookups = t.matched = 0
        for tid, lookups, matched in tables:
            self.tables[tid].lookups, self.tables[tid].matched = int(lookups), int(matched)


def _order_key(r: Rule) -> tuple[int, int]:
    return (r.table_id, -r.priority)


def _gid(g: Group) -> int:
    return g.group_id


def _mid(m: Meter) -> int:
    return m.meter_id
