"""NORMAL translation: a flow key and the switch state -> datapath actions, the megaflow
mask they are valid for, and the side effects to apply (MAC learning).

``xlate_normal`` is a pure function of (``SwitchState``, key): it changes nothing, so the
revalidator re-runs it on installed flows, and the OpenFlow pipeline will call it for
the NORMAL action. The caller applies ``Xlate.learn``.

VLAN semantics follow the Port table of ovs-vswitchd.conf.db(5): every packet is in a
VLAN (untagged = VLAN 0 on a trunk, the ``tag`` on access and native ports); access
ports drop frames tagged with a nonzero VID; trunk ports drop VLANs they do not trunk
(an empty ``trunks`` means all); native-tagged/native-untagged ports put untagged frames
in the native VLAN and always trunk it; on egress a frame is untagged on access ports,
in VLAN 0, and in the native VLAN of a native-untagged port, tagged everywhere else.
Priority tags (VID 0) are never emitted.

Megaflow masks: NORMAL reads in_port, eth_src (learning), eth_dst and the VID and
presence bits of vlan_tci, never PCP or anything above L2, so one megaflow covers every
L3/L4 flow between two learned hosts. Drops decided by the input port alone match only
in_port (plus vlan_tci when the VLAN decided it).
"""

from __future__ import annotations

from dataclasses import dataclass

from hitless.datapath.actions import Action, Output, PopVlan, PushVlan, SetField, Userspace
from hitless.ofproto.bond import DROP, DROP_IF_MOVED, Bond
from hitless.ofproto.lacp import LACP_ETH_TYPE
from hitless.ofproto.mac_learning import MacTable
from hitless.packet.flow import VLAN_PRESENT, full_mask, make_mask, mask_or

__all__ = [
    "LACP_USERDATA",
    "MASK_IN_PORT",
    "MASK_NORMAL",
    "MASK_NORMAL_L4",
    "MASK_VLAN",
    "PortView",
    "SwitchState",
    "VlanConfig",
    "Xlate",
    "xlate_normal",
]

MASK_IN_PORT = full_mask("in_port", "recirc_id")  # every megaflow matches recirc_id
MASK_VLAN = mask_or(MASK_IN_PORT, make_mask(vlan_tci=0x1FFF))
MASK_NORMAL = mask_or(MASK_VLAN, full_mask("eth_src", "eth_dst"))
# NORMAL through a balance-tcp bond also reads what its hash reads (bond.l4_bucket_of).
MASK_NORMAL_L4 = mask_or(
    MASK_NORMAL,
    full_mask(
        "eth_type", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "ip_proto", "tp_src", "tp_dst"
    ),
)
MASK_SLOW = mask_or(MASK_NORMAL, full_mask("eth_type"))
LACP_USERDATA = b"lacp"  # the userspace action that brings LACPDUs to the bridge

_VID_MASK = b"\x0f\xff"
VLAN_MODES = ("access", "trunk", "native-tagged", "native-untagged")


@dataclass(frozen=True, slots=True)
class VlanConfig:
    """A port's VLAN settings, resolved (vlan_mode defaulted as the schema says)."""

    mode: str = "trunk"  # access | trunk | native-tagged | native-untagged
    tag: int = 0  # access VLAN, or native VLAN
    trunks: frozenset[int] = frozenset()  # empty = all

    @classmethod
    def resolve(cls, vlan_mode: str | None, tag: int | None, trunks: frozenset[int]) -> VlanConfig:
        mode = vlan_mode or ("access" if tag is not None else "trunk")
        if mode not in VLAN_MODES:
            # dot1q-tunnel is not supported: treat like access (its single service VLAN).
            mode = "access"
        return cls(mode, tag or 0, frozenset() if mode == "access" else trunks)

    def trunks_vlan(self, vlan: int) -> bool:
        return not self.trunks or vlan in self.trunks

    @property
    def carries_all(self) -> bool:
        return self.mode != "access" and not self.trunks

    def carried(self) -> frozenset[int] | None:
        """The VLANs this port carries (None = all)."""
        if self.mode == "access":
            return frozenset((self.tag,))
        if not self.trunks:
            return None
        if self.mode == "trunk":
            return self.trunks
        return self.trunks | {self.tag}

    def ingress_vlan(self, tci: int) -> int | None:
        """The VLAN of a frame arriving with this vlan_tci, or None to drop it."""
        vid = tci & 0xFFF if tci & VLAN_PRESENT else 0
        mode = self.mode
        if mode == "access":
            return self.tag if vid == 0 else None
        if mode == "trunk":
            return vid if self.trunks_vlan(vid) else None
        if vid == 0:
            return self.tag
        return vid if vid == self.tag or self.trunks_vlan(vid) else None

    def egress_vid(self, vlan: int) -> int | None:
        """How a frame in ``vlan`` leaves this port: None = not carried, 0 = untagged,
        else tagged with that VID."""
        mode = self.mode
        if mode == "access":
            return 0 if vlan == self.tag else None
        if mode == "trunk":
            return vlan if self.trunks_vlan(vlan) else None
        if vlan == self.tag:
            return 0 if mode == "native-untagged" else vlan
        return vlan if self.trunks_vlan(vlan) else None


@dataclass(frozen=True, slots=True)
class PortView:
    """What translation needs to know about one switch port."""

    ofport: int
    name: str
    vlan: VlanConfig
    can_input: bool = True  # attached and administratively up
    can_output: bool = True  # administratively up and link up


class SwitchState:
    """The state NORMAL translation reads: ports, the MAC table, and options."""

    def __init__(self, mac: MacTable) -> None:
        self.mac = mac
        self.ports: dict[int, PortView] = {}
        self.forward_bpdu = False
        # Bonds by member port number (a bond is one logical port: see ofproto.bond).
        self.bonds: dict[int, Bond] = {}
        self._bond_reps: dict[int, Bond] = {}
        self._flood: dict[int, tuple[tuple[int, int], ...]] = {}
        # (vlan_tci & 0x1fff, vlan, output port or -1 - in_port for a flood) ->
        # (actions, output ports): translation of a new flow is mostly a dict hit.
        self._actions: dict[tuple[int, ...], tuple[tuple[Action, ...], tuple[int, ...]]] = {}

    def set_ports(self, ports: dict[int, PortView], bonds: dict[int, Bond] | None = None) -> None:
        self.ports = ports
        if bonds is not None:
            self.bonds = bonds
            self._bond_reps = {b.rep: b for b in bonds.values()}
        self._flood = {}
        self._actions = {}

    def bonds_changed(self) -> None:
        """A bond's active member, enabled members or buckets changed."""
        self._bond_reps = {b.rep: b for b in self.bonds.values()}
        self._flood = {}
        self._actions = {}

    def unicast_actions(self, tci: int, vlan: int, port: int, vid: int) -> tuple[Action, ...]:
        k = (tci & 0x1FFF, vlan, port)
        hit = self._actions.get(k)
        if hit is None:
            if len(self._actions) >= 65536:
                self._actions.clear()
            hit = self._actions[k] = (_build_actions(tci, vlan, [(port, vid)]), (port,))
        return hit[0]

    def flood_actions(
        self, tci: int, vlan: int, in_port: int, src: bytes = b"", key: bytes = b""
    ) -> tuple[tuple[Action, ...], tuple[int, ...]]:
        if self.bonds:
            return self._flood_bonds(tci, vlan, in_port, src, key)
        k = (tci & 0x1FFF, vlan, -1 - in_port)
        hit = self._actions.get(k)
        if hit is None:
            outputs = [pv for pv in self.flood_set(vlan) if pv[0] != in_port]
            hit = (_build_actions(tci, vlan, outputs), tuple(p for p, _ in outputs))
            if len(self._actions) >= 65536:
                self._actions.clear()
            self._actions[k] = hit
        return hit

    @property
    def hashes_l4(self) -> bool:
        """Whether some bond's output choice reads L3/L4 fields (balance-tcp)."""
        return any(b.hashes_l4 for b in self._bond_reps.values())

    def _flood_bonds(
        self, tci: int, vlan: int, in_port: int, src: bytes, key: bytes
    ) -> tuple[tuple[Action, ...], tuple[int, ...]]:
        """Flooding on a bridge with bonds: each bond once, by the member its decision
        picks for this source (never back into the bond the frame came from)."""
        in_bond = self.bonds.get(in_port)
        skip = in_bond.rep if in_bond is not None else in_port
        outputs = []
        for p, vid in self.flood_set(vlan):
            if p == skip:
                continue
            bond = self._bond_reps.get(p)
            if bond is not None:
                m = bond.choose_output(src, vlan, key)
                if m is None:
                    continue
                p = m
            outputs.append((p, vid))
        k = (tci & 0x1FFF, vlan, -1 - in_port, *(p for p, _ in outputs))
        hit = self._actions.get(k)
        if hit is None:
            hit = (_build_actions(tci, vlan, outputs), tuple(p for p, _ in outputs))
            if len(self._actions) >= 65536:
                self._actions.clear()
            self._actions[k] = hit
        return hit

    def flood_set(self, vlan: int) -> tuple[tuple[int, int], ...]:
        """(port, egress vid) of every port that can output a frame in ``vlan``; a bond
        appears once, as its representative port (whatever its members' links)."""
        f = self._flood.get(vlan)
        if f is None:
            out = []
            for no in sorted(self.ports):
                p = self.ports[no]
                bond = self.bonds.get(no)
                if bond is not None:
                    if no == bond.rep:
                        vid = p.vlan.egress_vid(vlan)
                        if vid is not None:
                            out.append((no, vid))
                    continue
                if p.can_output:
                    vid = p.vlan.egress_vid(vlan)
                    if vid is not None:
                        out.append((no, vid))
            f = self._flood[vlan] = tuple(out)
        return f


@dataclass(frozen=True, slots=True)
class Xlate:
    """The result of translating one flow key."""

    actions: tuple[Action, ...]
    mask: bytes
    reason: str  # "forward" | "flood" | "drop: <why>"
    learn: tuple[int, bytes, int] | None = None  # (vlan, mac, port) to learn
    dst: tuple[int, bytes] | None = None  # MAC entry the decision read
    flood_vlan: int | None = None  # VLAN whose flood set the decision read
    out_ports: tuple[int, ...] = ()
    # OpenFlow translation only (``ofxlate``): what each packet counts towards (objects
    # with ``credit(packets, bytes, used)``) and what the translation read.
    credits: tuple[object, ...] = ()
    deps: frozenset[tuple[object, ...]] = frozenset()
    # The OpenFlow table lookups the translation made, as (table_id, pipeline key, bits
    # examined); None when unknown or when it read a table some other way (a learn's
    # room): a rule change in a looked-up table matters only to a translation whose
    # lookup could match the rule there (``oftable.lookups_touch``).
    lookups: tuple[tuple[int, int, int], ...] | None = None
    # Recirculation ids the actions use, with their frozen states (ofproto.ct_xlate):
    # the bridge records them in the datapath's ``recirc`` map.
    recirc: tuple[tuple[int, bytes], ...] = ()


def _is_reserved(dst: bytes) -> bool:
    """01:80:c2:00:00:00-0f: link-local control protocols (STP, LACP, LLDP...)."""
    return dst[:5] == b"\x01\x80\xc2\x00\x00" and dst[5] < 0x10


def _build_actions(tci: int, vlan: int, outputs: list[tuple[int, int]]) -> tuple[Action, ...]:
    """Output actions for each (port, egress vid), with the fewest tag changes."""
    untagged = [p for p, vid in outputs if vid == 0]
    tagged = [p for p, vid in outputs if vid != 0]
    acts: list[Action] = []
    if tci & VLAN_PRESENT:
        if tagged:
            if tci & 0xFFF != vlan:  # a priority tag (VID 0) on a port with a VLAN
                acts.append(SetField("vlan_tci", vlan.to_bytes(2, "big"), _VID_MASK))
            acts.extend(Output(p) for p in tagged)
        if untagged:
            acts.append(PopVlan())
            acts.extend(Output(p) for p in untagged)
    else:
        acts.extend(Output(p) for p in untagged)
        if tagged:
            acts.append(PushVlan(vlan))
            acts.extend(Output(p) for p in tagged)
    return tuple(acts)


def xlate_special(state: SwitchState, key: bytes) -> Xlate | None:
    """Slow protocols the switch itself speaks, before any pipeline (as Open vSwitch):
    an LACPDU on a member of a bond running LACP goes to the bridge (a userspace
    action, so every PDU arrives). None for everything else."""
    if key[16:18] != _LACP_TYPE:
        return None
    bond = state.bonds.get(int.from_bytes(key[0:4], "big"))
    if bond is None or bond.lacp is None:
        return None
    return Xlate(
        (Userspace(LACP_USERDATA),), MASK_SLOW, f"slow protocol: LACP for bond {bond.name}"
    )


_LACP_TYPE = LACP_ETH_TYPE.to_bytes(2, "big")


def xlate_normal(state: SwitchState, key: bytes) -> Xlate:
    """Translate a flow key through NORMAL switching. Pure: learning is returned in
    ``Xlate.learn`` for the caller to apply."""
    in_port = int.from_bytes(key[0:4], "big")
    port = state.ports.get(in_port)
    if port is None or not port.can_input:
        return Xlate((), MASK_IN_PORT, "drop: input port is not usable")
    tci = key[18] << 8 | key[19]
    vlan = port.vlan.ingress_vlan(tci)
    if vlan is None:
        return Xlate((), MASK_VLAN, "drop: VLAN not allowed on input port")
    dst = key[4:10]
    if _is_reserved(dst) and not state.forward_bpdu:
        return Xlate((), MASK_NORMAL, "drop: reserved multicast")
    src = key[10:16]
    here = in_port  # where the source is learned: the bond as a whole for a member
    bonds = state.bonds
    if bonds:
        in_bond = bonds.get(in_port)
        if in_bond is not None:
            here = in_bond.rep
            verdict = in_bond.admissible(in_port, bool(dst[0] & 1))
            if verdict == DROP:
                return Xlate((), MASK_NORMAL, f"drop: not admitted by bond {in_bond.name}")
            if verdict == DROP_IF_MOVED and not src[0] & 1:
                at = state.mac.lookup(vlan, src)
                if at is not None and at != here:
                    why = f"drop: bond {in_bond.name}: source learned on another port"
                    return Xlate((), MASK_NORMAL, why, None, (vlan, src))
    learn = None if src[0] & 1 else (vlan, src, here)
    if not dst[0] & 1:
        out = state.mac.lookup(vlan, dst)
        if out is not None:
            dep = (vlan, dst)
            if out == here:
                return Xlate((), MASK_NORMAL, "drop: destination is on the input port", learn, dep)
            mask = MASK_NORMAL
            out_bond = bonds.get(out) if bonds else None
            if out_bond is not None:
                if out_bond.hashes_l4:
                    mask = MASK_NORMAL_L4
                member = out_bond.choose_output(src, vlan, key)
                if member is None:
                    why = f"drop: bond {out_bond.name} has no enabled member"
                    outs = tuple(sorted(out_bond.members))
                    return Xlate((), mask, why, learn, dep, None, outs)
                out = member
            op = state.ports.get(out)
            vid = None if op is None or not op.can_output else op.vlan.egress_vid(vlan)
            if vid is None:
                # Indexed by that port: when it comes back, this flow must forward again.
                why = "drop: output port is not usable"
                return Xlate((), mask, why, learn, dep, None, (out,))
            acts = state.unicast_actions(tci, vlan, out, vid)
            credit = out_bond.credit_for(src, vlan, key) if out_bond is not None else None
            credits = (credit,) if credit is not None else ()
            return Xlate(acts, mask, "forward", learn, dep, None, (out,), credits)
        dep_dst: tuple[int, bytes] | None = (vlan, dst)
    else:
        dep_dst = None
    acts, outs = state.flood_actions(tci, vlan, in_port, src, key)
    mask = MASK_NORMAL_L4 if bonds and state.hashes_l4 else MASK_NORMAL
    return Xlate(acts, mask, "flood", learn, dep_dst, vlan, outs)
