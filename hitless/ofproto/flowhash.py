"""Open vSwitch's flow hashes, so that ``multipath``, ``bundle`` and ``bundle_load``
pick the link or member Open vSwitch 3.1 picks for the same packet.

The functions are the ones Open vSwitch's x86-64 builds without SSE 4.2 run (its
Debian and Ubuntu packages): Bob Jenkins' lookup3 (``jhash_bytes``) and the
MurmurHash3 steps (``hash_add``, ``hash_finish``); the hashed structures are laid out
as Open vSwitch lays them out in memory, little-endian words over network-order bytes
(lib/flow.c ``flow_hash_fields``, lib/multipath.c, lib/bundle.c). Pure: a packet's
fields come in through ``get(name)`` (the pipeline key's fields), and ``fields_read``
names what a hash looked at, for the megaflow mask."""

from __future__ import annotations

from collections.abc import Callable

M32 = 0xFFFFFFFF

# nx_hash_fields
ETH_SRC, SYMMETRIC_L4, SYMMETRIC_L3L4, SYMMETRIC_L3L4_UDP, NW_SRC, NW_DST, SYMMETRIC_L3 = range(7)

ETH_TYPE_IP, ETH_TYPE_IPV6, ETH_TYPE_ARP = 0x0800, 0x86DD, 0x0806
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMPV6 = 1, 6, 17, 132, 58

Get = Callable[[str], int]


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M32


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & M32; a ^= _rot(c, 4); c = (c + b) & M32  # noqa: E702
    b = (b - a) & M32; b ^= _rot(a, 6); a = (a + c) & M32  # noqa: E702
    c = (c - b) & M32; c ^= _rot(b, 8); b = (b + a) & M32  # noqa: E702
    a = (a - c) & M32; a ^= _rot(c, 16); c = (c + b) & M32  # noqa: E702
    b = (b - a) & M32; b ^= _rot(a, 19); a = (a + c) & M32  # noqa: E702
    c = (c - b) & M32; c ^= _rot(b, 4); b = (b + a) & M32  # noqa: E702
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b; c = (c - _rot(b, 14)) & M32  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & M32  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & M32  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & M32  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & M32  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & M32  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & M32  # noqa: E702
    return c


def jhash_bytes(data: bytes, basis: int) -> int:
    """lookup3 over ``data`` read as little-endian 32-bit words (the tail zero-padded)."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + basis) & M32
    while n >= 12:
        w = [int.from_bytes(data[i : i + 4], "little") for i in (0, 4, 8)]
        a, b, c = _mix((a + w[0]) & M32, (b + w[1]) & M32, (c + w[2]) & M32)
        data, n = data[12:], n - 12
    if n:
        tail = data.ljust(12, b"\0")
        w = [int.from_bytes(tail[i : i + 4], "little") for i in (0, 4, 8)]
        c = _final((a + w[0]) & M32, (b + w[1]) & M32, (c + w[2]) & M32)
    return c


def hash_add(h: int, data: int) -> int:
    data &= M32
    if data:  # a zero word leaves the hash alone before the rotation
        data = (data * 0xCC9E2D51) & M32
        data = _rot(data, 15)
        data = (data * 0x1B873593) & M32
        h ^= data
    h = _rot(h, 13)
    return (h * 5 + 0xE6546B64) & M32


def hash_finish(h: int, final: int) -> int:
    h ^= final
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def hash_2words(x: int, y: int) -> int:
    return hash_finish(hash_add(hash_add(x, 0), y), 8)


def hash_uint64(x: int) -> int:
    """lib/hash.h hash_uint64: the low word, then the high one, from basis 0."""
    return hash_finish(hash_add(hash_add(0, x & M32), x >> 32), 8)


def hash_bytes(data: bytes, basis: int) -> int:
    """lib/hash.c hash_bytes: MurmurHash3 steps over little-endian 32-bit words (the tail
    zero-padded), finished with the length."""
    h = basis
    for i in range(0, len(data), 4):
        h = hash_add(h, int.from_bytes(data[i : i + 4].ljust(4, b"\0"), "little"))
    return hash_finish(h, len(data))


def _le(b: bytes) -> int:
    return int.from_bytes(b, "little")


def _xor(get: Get, a: str, b: str, n: int) -> bytes:
    return (get(a) ^ get(b)).to_bytes(n, "big")


def _vid(get: Get) -> bytes:
    return (get("vlan_tci") & 0x0FFF).to_bytes(2, "big")


def _symmetric_l4(get: Get, basis: int) -> int:
    eth_type = get("eth_type")
    addr, proto, tp = bytes(16), 0, bytes(2)
    if eth_type in (ETH_TYPE_IP, ETH_TYPE_IPV6):
        v4 = eth_type == ETH_TYPE_IP
        addr = _xor(get, *(("ipv4_src", "ipv4_dst") if v4 else ("ipv6_src", "ipv6_dst")), 4 if v4 else 16)
        addr = addr.ljust(16, b"\0")
        proto = get("ip_proto")
        if proto in (IPPROTO_TCP, IPPROTO_SCTP):
            tp = _xor(get, "tp_src", "tp_dst", 2)
    data = (
        addr + eth_type.to_bytes(2, "big") + _vid(get) + tp
        + _xor(get, "eth_src", "eth_dst", 6) + bytes([proto])
    )  # fmt: skip
    return jhash_bytes(data.ljust(32, b"\0"), basis)


def _symmetric_l2(get: Get, basis: int) -> int:
    words = get("eth_type").to_bytes(2, "big") + _vid(get) + _xor(get, "eth_src", "eth_dst", 6)
    words += bytes(2)
    h = basis
    for i in (0, 4, 8):
        h = hash_add(h, _le(words[i : i + 4]))
    return hash_finish(h, basis)


def _symmetric_l3l4(get: Get, basis: int, udp: bool) -> int:
    eth_type = get("eth_type")
    h = basis
    if eth_type == ETH_TYPE_IP:
        h = hash_add(h, _le(_xor(get, "ipv4_src", "ipv4_dst", 4)))
    elif eth_type == ETH_TYPE_IPV6:
        x = _xor(get, "ipv6_src", "ipv6_dst", 16)
        for i in (0, 8):
            word = _le(x[i : i + 8])
            h = hash_add(hash_add(h, word), word >> 32)
    else:
        return _symmetric_l2(get, basis)
    proto = get("ip_proto")
    h = hash_add(h, proto)
    ports = (IPPROTO_TCP, IPPROTO_SCTP, IPPROTO_UDP) if udp else (IPPROTO_TCP, IPPROTO_SCTP)
    if not get("ip_frag") & 3 and proto in ports:
        h = hash_add(h, _le(_xor(get, "tp_src", "tp_dst", 2)))
    return hash_finish(h, basis)


def _symmetric_l3(get: Get, basis: int) -> int:
    eth_type = get("eth_type")
    addr = bytes(16)
    if eth_type == ETH_TYPE_IP:
        addr = _xor(get, "ipv4_src", "ipv4_dst", 4).ljust(16, b"\0")
    elif eth_type == ETH_TYPE_IPV6:
        addr = _xor(get, "ipv6_src", "ipv6_dst", 16)
    return jhash_bytes((addr + eth_type.to_bytes(2, "big")).ljust(20, b"\0"), basis)


def _one(get: Get, basis: int, v4: str, v6: str) -> int:
    eth_type = get("eth_type")
    if eth_type == ETH_TYPE_IP:
        return jhash_bytes(get(v4).to_bytes(4, "big"), basis)
    if eth_type == ETH_TYPE_IPV6:
        return jhash_bytes(get(v6).to_bytes(16, "big"), basis)
    return basis


def flow_hash(get: Get, fields: int, basis: int) -> int:
    """``flow_hash_fields``: the 32-bit hash of the fields ``fields`` names."""
    basis &= 0xFFFF
    if fields == ETH_SRC:
        return jhash_bytes(get("eth_src").to_bytes(6, "big"), basis)
    if fields == SYMMETRIC_L4:
        return _symmetric_l4(get, basis)
    if fields in (SYMMETRIC_L3L4, SYMMETRIC_L3L4_UDP):
        return _symmetric_l3l4(get, basis, fields == SYMMETRIC_L3L4_UDP)
    if fields == NW_SRC:
        return _one(get, basis, "ipv4_src", "ipv6_src")
    if fields == NW_DST:
        return _one(get, basis, "ipv4_dst", "ipv6_dst")
    if fields == SYMMETRIC_L3:
        return _symmetric_l3(get, basis)
    raise ValueError(f"hash fields {fields}")  # refused when the rule was added


def fields_read(get: Get, fields: int) -> tuple[str, ...]:
    """The key fields ``flow_hash(get, fields, ...)`` reads for this packet (the
    megaflow must match them exactly: Open vSwitch's flow_mask_hash_fields, plus the
    EtherType and, for a non-IP packet's L2 hash, the Ethernet fields it hashes)."""
    eth_type = get("eth_type")
    v4, v6 = eth_type == ETH_TYPE_IP, eth_type == ETH_TYPE_IPV6
    if fields == ETH_SRC:
        return ("eth_src",)
    if fields == NW_SRC:
        return ("eth_type", "ipv4_src" if v4 else "ipv6_src") if v4 or v6 else ("eth_type",)
    if fields == NW_DST:
        return ("eth_type", "ipv4_dst" if v4 else "ipv6_dst") if v4 or v6 else ("eth_type",)
    addrs = ("ipv4_src", "ipv4_dst") if v4 else ("ipv6_src", "ipv6_dst") if v6 else ()
    if fields == SYMMETRIC_L3:
        return ("eth_type", *addrs)
    if fields == SYMMETRIC_L4:
        out = ("eth_type", "eth_src", "eth_dst", "vlan_tci", *addrs)
        return (*out, "ip_proto", "tp_src", "tp_dst") if addrs else out
    if not addrs:  # SYMMETRIC_L3L4 of a non-IP packet: the L2 hash
        return ("eth_type", "eth_src", "eth_dst", "vlan_tci")
    return ("eth_type", *addrs, "ip_proto", "ip_frag", "tp_src", "tp_dst")


# The datapath's hash algorithms (enum ovs_hash_alg): a select group's dp_hash
HASH_ALG_L4, HASH_ALG_SYM_L4 = 0, 1
_PORTS = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP, IPPROTO_ICMPV6)


def hash_5tuple(get: Get, basis: int) -> int:
    """lib/flow.c ``flow_hash_5tuple`` (the userspace datapath's receive hash,
    ``miniflow_hash_5tuple``, is the same): the addresses (IPv4 and ARP as words,
    IPv6 as 64-bit words), the protocol, and for TCP, UDP, SCTP, ICMP and ICMPv6
    both ports as one word, finished with 42."""
    eth_type = get("eth_type")
    h = basis
    if eth_type == ETH_TYPE_IPV6:
        for name in ("ipv6_src", "ipv6_dst"):
            raw = get(name).to_bytes(16, "big")
            for i in (0, 8):
                word = _le(raw[i : i + 8])
                h = hash_add(hash_add(h, word), word >> 32)
    elif eth_type in (ETH_TYPE_IP, ETH_TYPE_ARP):
        h = hash_add(h, _le(get("ipv4_src").to_bytes(4, "big")))
        h = hash_add(h, _le(get("ipv4_dst").to_bytes(4, "big")))
    else:
        return hash_finish(h, 42)
    proto = get("ip_proto")
    h = hash_add(h, proto)
    if proto in _PORTS:
        h = hash_add(h, _le(get("tp_src").to_bytes(2, "big") + get("tp_dst").to_bytes(2, "big")))
    return hash_finish(h, 42)


def hash_5tuple_read(get: Get) -> tuple[str, ...]:
    """The key fields ``hash_5tuple`` reads for this packet."""
    eth_type = get("eth_type")
    if eth_type == ETH_TYPE_IPV6:
        addrs: tuple[str, ...] = ("ipv6_src", "ipv6_dst")
    elif eth_type in (ETH_TYPE_IP, ETH_TYPE_ARP):
        addrs = ("ipv4_src", "ipv4_dst")
    else:
        return ("eth_type",)
    ports = ("tp_src", "tp_dst") if get("ip_proto") in _PORTS else ()
    return ("eth_type", *addrs, "ip_proto", *ports)


def symmetric_l3l4(get: Get, basis: int) -> int:
    """lib/flow.c ``flow_hash_symmetric_l3l4(flow, basis, false)`` with a 32-bit basis
    (the datapath's ``hash(sym_l4(basis))``)."""
    return _symmetric_l3l4(get, basis & M32, False)


def dp_hash_table(weights: tuple[int, ...], max_values: int = 256) -> tuple[int, ...] | None:
    """ofproto-dpif.c ``group_setup_dp_hash_table``: the bucket (its index) of each of
    a select group's hash values, a power of two of them, at least 16 and enough for the
    smallest weight to get one (Webster's method: each value goes to the bucket with the
    highest weight / (2 * values it has + 1), the first one on a tie); None when the
    weights are all zero or need more than ``max_values`` (at most 256): the group then
    hashes in the slow path (Open vSwitch's default method)."""
    total = sum(weights)
    if total == 0:
        return None
    min_weight = min(w for w in weights if w > 0)
    n_hash = max(16, _round_up_pow2(-(-total // min_weight)))
    if n_hash > min(max_values, 256):
        return None
    divisor = [1] * len(weights)
    value = [float(w) for w in weights]
    out = []
    for _ in range(n_hash):
        win = 0
        for i in range(1, len(weights)):
            if value[i] > value[win]:
                win = i
        divisor[win] += 2
        value[win] = weights[win] / divisor[win]
        out.append(win)
    return tuple(out)


def _round_up_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def multipath_link(h: int, algorithm: int, n_links: int, arg: int) -> int:
    """lib/multipath.c's ``multipath_algorithm``: the link (0..n_links-1) for hash ``h``."""
    if algorithm == 0:  # modulo_n
        return h % n_links
    if algorithm == 1:  # hash_threshold
        return 0 if n_links == 1 else h // (M32 // n_links + 1)
    if algorithm == 2 and n_links <= 64:  # hrw
        best, best_w = 0, hash_2words(h, 0)
        for link in range(1, n_links):
            w = hash_2words(h, link)
            if w > best_w:
                best, best_w = link, w
        return best
    modulo = 0 if algorithm == 2 else arg  # iter_hash (hrw beyond 64 links too)
    if modulo < n_links or modulo // 2 > n_links:
        modulo = _round_up_pow2(n_links)
    i = 0
    while True:
        link = hash_2words(h, i) % modulo
        i += 1
        if link < n_links:
            return link


def bundle_hrw(h: int, live: list[bool]) -> int | None:
    """lib/bundle.c's ``execute_hrw``: the index of the member picked among the live
    ones (each member weighed by its index in the bundle's list), or None."""
    best, best_w = None, 0
    for i, ok in enumerate(live):
        if ok:
            w = hash_2words(i, h)
            if best is None or w > best_w:
                best, best_w = i, w
    return best
