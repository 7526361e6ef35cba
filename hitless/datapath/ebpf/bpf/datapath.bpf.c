// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * hitless ebpf datapath: one instance (program + maps) per bridge, attached on clsact
 * ingress of every bridge port.
 *
 * Per packet: extract the flow key (the byte layout of hitless/packet/flow.py, so the
 * daemon's megaflow keys go into the map unchanged), search the masked megaflow table
 * the way the Open vSwitch kernel datapath does (a bounded list of masks, one hash
 * lookup per mask), count the hit in the flow's per-CPU counters, run its actions.
 * A miss, or a flow whose actions the kernel cannot run (flag SLOWPATH), goes to the
 * daemon through the ring buffer `hl_upcalls` and is dropped here: the daemon sends it
 * on. The ring is a kernel object: misses wait in it while no daemon runs.
 *
 * Layouts shared with Python (hitless/datapath/ebpf/layout.py) are versioned by
 * HL_ABI, stored in `hl_info`; tests check both sides agree. The build compiles every
 * layout this release knows (-DHL_ABI=n): the daemon serves a datapath of any of them
 * and moves a running one to its own (a new program and maps, then one tc filter
 * replace per port). Layout 2 is a test variant (64 masks, the flow's header fields in
 * another order) that proves such an upgrade; no release has served it by default.
 *
 * Layout 3 adds connection tracking for established connections: the flow key is the
 * whole 142-byte key (recirc_id and the ct_* fields, as the netdev datapath's megaflows
 * have them); ct(), ct_clear and recirc run here. ct() looks the packet up in `hl_ct`
 * (zone + 5-tuple, one entry per direction), which the daemon's tracker fills with the
 * connections it has seen established (the tracker stays the authority: new
 * connections, TCP SYN/FIN/RST, ICMP, timeouts); a hit sets the key's ct fields from
 * the entry, applies its NAT rewrite and stamps its last-seen time; anything else goes
 * to the daemon as a slow-path upcall of the packet as the pass began. recirc(id) sets
 * the key's recirc_id, parses the (maybe rewritten) headers again and looks up again,
 * at most MAX_PASSES times per packet.
 *
 * Layout 4 adds set_priority (OpenFlow's set_queue): skb->priority for the outputs after
 * it, which an htb or hfsc qdisc on the output device classifies by (class 1:<queue+1>).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef HL_ABI
#define HL_ABI 4
#endif
#if HL_ABI >= 3
#define KEY_WORDS 18            /* 144 bytes: the whole 142-byte flow key + mask slot id */
#define K_MASK_ID 142
#define HL_CT 1
#else
#define KEY_WORDS 13            /* 104 bytes: the 102-byte flow key + mask slot id */
#define K_MASK_ID 102
#define HL_CT 0
#endif
#if HL_ABI >= 4
#define HL_PRIORITY 1           /* set_priority: skb->priority (OpenFlow's set_queue) */
#else
#define HL_PRIORITY 0
#endif
#if HL_ABI == 2
#define MAX_MASKS 64
#else
#define MAX_MASKS 32
#endif
#define MASK_TAIL 64            /* bytes of a mask beyond the kernel's key (daemon only) */
#define MAX_ACTIONS 16
#define MAX_FLOWS 65536
#define UPCALL_DATA 16384       /* bytes of a packet an upcall carries */
#define RING_BYTES (8 << 20)
#define VLAN_PRESENT 0x1000

/* Flow-key offsets (hitless/packet/flow.py FIELDS). */
#define K_IN_PORT 0
#define K_ETH_DST 4
#define K_ETH_TYPE 16
#define K_VLAN_TCI 18
#define K_IPV4_SRC 20
#define K_IPV6_SRC 28
#define K_IPV6_LABEL 60
#define K_IP_PROTO 64
#define K_IP_TOS 65
#define K_IP_TTL 66
#define K_IP_FRAG 67
#define K_TP_SRC 68
#define K_TP_DST 70
#define K_TCP_FLAGS 72
#define K_ARP_SHA 74
#define K_ARP_THA 80
#define K_ND_TARGET 86
#define K_RECIRC_ID 102
#define K_CT_STATE 106
#define K_CT_ZONE 108
#define CT_TAIL 36              /* key bytes 106..141: ct_state .. ct_tp_dst */
#define MAX_PASSES 7            /* lookups per packet: the first + 6 recirculations */
#define MAX_CT 65536
#define PASS_RECIRC -2          /* run_pass: look the packet up again */

/* Action types (layout.py ACTION_TYPES). */
enum { A_OUTPUT = 1, A_PUSH_VLAN, A_POP_VLAN, A_SET_FIELD, A_USERSPACE, A_METER, A_OPAQUE,
       A_CT, A_CT_CLEAR, A_RECIRC, A_CT_LABEL, A_SAMPLE, A_SET_PRIORITY };
/* A_SET_PRIORITY (layout 4): arg32 becomes skb->priority for the outputs after it; an htb
 * or hfsc qdisc on the output device puts the packet in the class it names. */
/* A_SAMPLE: arg32 the probability (of 2^32; UINT32_MAX: always), val/arg16 the
 * userdata of the upcall it makes (sFlow, IPFIX); the packet goes on either way. */
/* A_CT's field: flags (layout.py CTF_*); arg16: zone; val/msk[0..3]: the mark (big endian)
 * commit sets; an A_CT_LABEL right after carries the label (val/msk, big endian). */
enum { CTF_COMMIT = 1, CTF_FORCE = 2, CTF_NAT = 4, CTF_MARK = 8, CTF_LABEL = 16 };
/* ct_state bits (Open vSwitch's CS_*). */
#define CS_SNAT 0x40
#define CS_DNAT 0x80
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10
#define RW_NAT 1                /* ct_entry.rewrite: set both addresses and ports */
#define OUT_LAST 1              /* arg16 of an output: nothing follows, redirect */

/* SET_FIELD field ids: the index of the field in flow.py FIELDS. */
enum {
	F_ETH_DST = 1, F_ETH_SRC = 2, F_VLAN_TCI = 4, F_IPV4_SRC = 5, F_IPV4_DST = 6,
	F_IP_TOS = 11, F_IP_TTL = 12, F_TP_SRC = 14, F_TP_DST = 15,
};

#define FLOW_SLOWPATH 1         /* the daemon runs this flow's actions */

enum { R_MISS = 0, R_ACTION = 1, R_SLOWPATH = 2 };
#define UP_TRUNCATED 1

/* Global counters (layout.py COUNTERS). */
enum {
	C_HIT, C_MISS, C_SLOWPATH, C_UPCALL_LOST, C_UPCALL_TRUNCATED, C_NO_PORT,
	C_ACTION_ERROR, N_COUNTERS
};

union fkey {
	__u8 b[KEY_WORDS * 8];
	__u64 w[KEY_WORDS];
};

/* The mask list: one array value, so a lookup reads it with one map lookup. A slot is
 * searched while active; flows name their mask by slot (key bytes 102-103). */
struct masks {
	__u32 n;                /* slots 0..n-1 are searched */
	__u32 active[MAX_MASKS];
	__u32 pad;
	__u64 w[MAX_MASKS][KEY_WORDS];
	/* The rest of each mask beyond the kernel's 102 bytes (metadata such as
	 * recirc_id that packets from ports always have zero): kept for the daemon, so
	 * that a restarted one knows the flows' whole masks. Not read here. */
	__u8 tail[MAX_MASKS][MASK_TAIL];
};

struct action {
	__u8 type;
	__u8 field;
	__u16 arg16;
	__u32 arg32;
	__u8 val[16];
	__u8 msk[16];
};

struct flow {
#if HL_ABI == 2
	__u64 created_ns;
	__u32 stats_idx;
	__u16 flags;
	__u16 n_actions;
#else
	__u32 stats_idx;
	__u16 n_actions;
	__u16 flags;
	__u64 created_ns;
#endif
	struct action act[MAX_ACTIONS];
};

struct fstats {
	__u64 packets;
	__u64 bytes;
	__u64 used_ns;
	__u64 tcp_flags;
};

struct port {
	__u32 port_no;
	__u32 flags;            /* PORT_INTERNAL: the hidden peer of an internal port */
	char name[16];          /* the port's name (for a restarted daemon) */
};

struct info {
	__u32 abi;
	__u32 bridge_hash;      /* which bridge this instance serves (crc32 of the name) */
	__u32 owner_pid;        /* the daemon that owns it (written by the daemon) */
	__u32 pad;
};

struct upcall_hdr {
	__u32 reason;
	__u32 in_port;
	__u32 len;              /* bytes of packet that follow */
	__u32 orig_len;         /* the packet's length (with its VLAN tag) */
	__u32 flags;
	__u32 userdata_len;
	__u8 key[KEY_WORDS * 8];
	__u8 userdata[16];
};

struct upcall {
	struct upcall_hdr h;
	__u8 data[UPCALL_DATA];
};

/* One direction of an established connection (layout.py CT_KEY, CT_ENTRY). Addresses
 * are IPv4 in the first 4 bytes (the rest zero) or IPv6; ports in network order. */
struct ct_key {
	__u16 zone;
	__u8 proto;
	__u8 v6;                /* 1: IPv6 addresses */
	__u16 sport;
	__u16 dport;
	__u8 src[16];
	__u8 dst[16];
};

struct ct_entry {
	__u8 tail[CT_TAIL];     /* the key's ct fields a packet of this direction gets */
	__u8 nat;               /* CS_SNAT|CS_DNAT added to ct_state by a ct with nat */
	__u8 rewrite;           /* RW_NAT: rewrite the packet (IPv4) with the nat_* fields */
	__u16 pad;
	__u32 nat_src;          /* network order */
	__u32 nat_dst;
	__u16 nat_sport;
	__u16 nat_dport;
	__u64 last_ns;          /* the last packet the kernel tracked (CLOCK_MONOTONIC_COARSE) */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FLOWS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, union fkey);
	__type(value, struct flow);
} hl_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct masks);
} hl_masks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_FLOWS);
	__type(key, __u32);
	__type(value, struct fstats);
} hl_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);     /* ifindex */
	__type(value, struct port);
} hl_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct info);
} hl_info SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, N_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} hl_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct upcall);
} hl_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_BYTES);
} hl_upcalls SEC(".maps");

#if HL_CT
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CT);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
} hl_ct SEC(".maps");
#endif

/* Per packet: where the headers are, for set_field. */
struct pctx {
	__u32 l3;
	__u32 l4;
	__u16 l3_type;          /* host order */
	__u8 proto;
	__u8 l4_ok;             /* l4 is a TCP/UDP header (not a later fragment) */
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&hl_counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline void parse_l4(struct __sk_buff *skb, union fkey *k, struct pctx *c,
				     __u32 l4, __u8 proto, __u8 icmp)
{
	__u8 b[4];

	if (proto == 6 || proto == 17 || proto == 132) {
		if (bpf_skb_load_bytes(skb, l4, b, 4) < 0)
			return;
		__builtin_memcpy(&k->b[K_TP_SRC], b, 4);
		if (proto != 132)
			c->l4_ok = 1;
		if (proto == 6 && bpf_skb_load_bytes(skb, l4 + 12, b, 2) == 0) {
			k->b[K_TCP_FLAGS] = b[0] & 0x0f;
			k->b[K_TCP_FLAGS + 1] = b[1];
		}
	} else if (proto == icmp) {
		if (bpf_skb_load_bytes(skb, l4, b, 2) < 0)
			return;
		k->b[K_TP_SRC + 1] = b[0];
		k->b[K_TP_DST + 1] = b[1];
	}
}

static __always_inline void parse_nd(struct __sk_buff *skb, union fkey *k, __u32 l4)
{
	__u8 b[8];
	__u8 type;
	__u32 opt;

	if (bpf_skb_load_bytes(skb, l4, b, 4) < 0)
		return;
	type = b[0];
	k->b[K_TP_SRC + 1] = b[0];
	k->b[K_TP_DST + 1] = b[1];
	if ((type != 135 && type != 136) || b[1] != 0)
		return;
	if (bpf_skb_load_bytes(skb, l4 + 8, &k->b[K_ND_TARGET], 16) < 0)
		return;
	opt = l4 + 24;
	for (int i = 0; i < 8; i++) {
		if (bpf_skb_load_bytes(skb, opt, b, 8) < 0)
			break;
		if (b[1] == 0)
			break;
		if (b[0] == 1 && b[1] == 1 && type == 135)
			__builtin_memcpy(&k->b[K_ARP_SHA], &b[2], 6);
		else if (b[0] == 2 && b[1] == 1 && type == 136)
			__builtin_memcpy(&k->b[K_ARP_THA], &b[2], 6);
		opt += (__u32)b[1] * 8;
	}
}

static __always_inline void parse_headers(struct __sk_buff *skb, union fkey *k, struct pctx *c);

/* The general parser, a function of its own (the verifier walks it once). */
__noinline int parse_slow(struct __sk_buff *skb, union fkey *k, struct pctx *c)
{
	if (!k || !c)
		return 0;
	parse_headers(skb, k, c);
	return 0;
}

/* The common case read in place: an untagged IPv4 frame with a 20-byte header whose
 * first 48 bytes are in the linear part. Returns 0 if the frame is not that case. */
static __always_inline int parse_ipv4_fast(struct __sk_buff *skb, union fkey *k,
					   struct pctx *c)
{
	__u8 *p = (__u8 *)(long)skb->data;
	__u8 *end = (__u8 *)(long)skb->data_end;
	__u16 frag;
	__u8 proto;

	if (skb->vlan_present || p + 48 > end)
		return 0;
	if (p[12] != 0x08 || p[13] != 0x00 || p[14] != 0x45)
		return 0;
	__builtin_memcpy(&k->b[K_ETH_DST], p, 14);     /* addresses and EtherType */
	__builtin_memcpy(&k->b[K_IPV4_SRC], p + 26, 8);
	proto = p[23];
	k->b[K_IP_PROTO] = proto;
	k->b[K_IP_TOS] = p[15];
	k->b[K_IP_TTL] = p[22];
	frag = (__u16)p[20] << 8 | p[21];
	if (frag & 0x3fff)
		k->b[K_IP_FRAG] = 1 | ((frag & 0x1fff) ? 2 : 0);
	c->l3 = 14;
	c->l3_type = 0x0800;
	c->l4 = 34;
	c->proto = proto;
	if (k->b[K_IP_FRAG] & 2)
		return 1;
	if (proto == 6 || proto == 17 || proto == 132) {
		__builtin_memcpy(&k->b[K_TP_SRC], p + 34, 4);
		if (proto != 132)
			c->l4_ok = 1;
		if (proto == 6) {
			k->b[K_TCP_FLAGS] = p[46] & 0x0f;
			k->b[K_TCP_FLAGS + 1] = p[47];
		}
	} else if (proto == 1) {
		k->b[K_TP_SRC + 1] = p[34];
		k->b[K_TP_DST + 1] = p[35];
	}
	return 1;
}

/* Any other frame (parse_ipv4_fast said no), by bpf_skb_load_bytes. */
static __always_inline void parse_headers(struct __sk_buff *skb, union fkey *k, struct pctx *c)
{
	__u8 eth[14];
	__u16 type;
	__u32 off = 14;

	if (bpf_skb_load_bytes(skb, 0, eth, 14) < 0) {
		bpf_skb_load_bytes(skb, 0, &k->b[K_ETH_DST], 12);
		return;
	}
	__builtin_memcpy(&k->b[K_ETH_DST], eth, 12);
	type = (__u16)eth[12] << 8 | eth[13];
	if (skb->vlan_present) {
		__u16 tci = bpf_htons((__u16)(skb->vlan_tci | VLAN_PRESENT));
		__builtin_memcpy(&k->b[K_VLAN_TCI], &tci, 2);
	} else if (type == 0x8100 || type == 0x88a8) {
		__u8 t[4];

		if (bpf_skb_load_bytes(skb, 14, t, 4) < 0)
			return;
		k->b[K_VLAN_TCI] = t[0] | (VLAN_PRESENT >> 8);
		k->b[K_VLAN_TCI + 1] = t[1];
		type = (__u16)t[2] << 8 | t[3];
		off = 18;
	}
	k->b[K_ETH_TYPE] = type >> 8;
	k->b[K_ETH_TYPE + 1] = type & 0xff;
	c->l3 = off;
	c->l3_type = type;

	if (type == 0x0800) {
		__u8 ip[20];
		__u16 frag;
		__u32 l4;

		if (bpf_skb_load_bytes(skb, off, ip, 20) < 0) {
			c->l3_type = 0;
			return;
		}
		__builtin_memcpy(&k->b[K_IPV4_SRC], &ip[12], 8);
		k->b[K_IP_PROTO] = ip[9];
		k->b[K_IP_TOS] = ip[1];
		k->b[K_IP_TTL] = ip[8];
		frag = (__u16)ip[6] << 8 | ip[7];
		if (frag & 0x3fff)
			k->b[K_IP_FRAG] = 1 | ((frag & 0x1fff) ? 2 : 0);
		l4 = off + (ip[0] & 0x0f) * 4;
		c->l4 = l4;
		c->proto = ip[9];
		if (!(k->b[K_IP_FRAG] & 2))
			parse_l4(skb, k, c, l4, ip[9], 1);
	} else if (type == 0x0806) {
		__u8 a[28];

		if (bpf_skb_load_bytes(skb, off, a, 28) < 0)
			return;
		if (a[0] != 0 || a[1] != 1 || a[2] != 8 || a[3] != 0 || a[4] != 6 || a[5] != 4)
			return;
		k->b[K_IP_PROTO] = a[6] == 0 ? a[7] : 0;
		__builtin_memcpy(&k->b[K_IPV4_SRC], &a[14], 4);
		__builtin_memcpy(&k->b[K_IPV4_SRC + 4], &a[24], 4);
		__builtin_memcpy(&k->b[K_ARP_SHA], &a[8], 6);
		__builtin_memcpy(&k->b[K_ARP_THA], &a[18], 6);
	} else if (type == 0x86dd) {
		__u8 ip6[40];
		__u8 h[8];
		__u8 nxt, frag = 0;
		__u32 l4 = off + 40;

		if (bpf_skb_load_bytes(skb, off, ip6, 40) < 0) {
			c->l3_type = 0;
			return;
		}
		k->b[K_IP_TOS] = (ip6[0] << 4) | (ip6[1] >> 4);
		k->b[K_IPV6_LABEL + 1] = ip6[1] & 0x0f;
		k->b[K_IPV6_LABEL + 2] = ip6[2];
		k->b[K_IPV6_LABEL + 3] = ip6[3];
		nxt = ip6[6];
		k->b[K_IP_TTL] = ip6[7];
		__builtin_memcpy(&k->b[K_IPV6_SRC], &ip6[8], 32);
		for (int i = 0; i < 8; i++) {
			if (nxt == 0 || nxt == 43 || nxt == 60) {
				if (bpf_skb_load_bytes(skb, l4, h, 8) < 0)
					break;
				nxt = h[0];
				l4 += ((__u32)h[1] + 1) * 8;
			} else if (nxt == 44) {
				if (bpf_skb_load_bytes(skb, l4, h, 8) < 0)
					break;
				frag = 1 | ((((__u16)h[2] << 8 | h[3]) & 0xfff8) ? 2 : 0);
				nxt = h[0];
				l4 += 8;
			} else {
				break;
			}
		}
		k->b[K_IP_PROTO] = nxt;
		k->b[K_IP_FRAG] = frag;
		c->l4 = l4;
		c->proto = nxt;
		if (!(frag & 2)) {
			if (nxt == 58)
				parse_nd(skb, k, l4);
			else
				parse_l4(skb, k, c, l4, nxt, 0xff);
		}
	}
}

/* The flow key of hitless/packet/flow.py extract_key (in_port already set): the common
 * frame read in place, inline (a function call less per packet: ~10 ns of the ~120 a
 * hit costs over a bare redirect, BPF_PROG_TEST_RUN), anything else by parse_slow. */
static __always_inline void parse(struct __sk_buff *skb, union fkey *k, struct pctx *c)
{
	if (!parse_ipv4_fast(skb, k, c))
		parse_slow(skb, k, c);
}

static __always_inline struct flow *lookup(union fkey *k)
{
	__u32 zero = 0;
	struct masks *mk = bpf_map_lookup_elem(&hl_masks, &zero);
	union fkey m;
	__u32 n;

	if (!mk)
		return NULL;
	n = mk->n;
	for (__u32 i = 0; i < MAX_MASKS; i++) {
		struct flow *f;

		if (i >= n)
			break;
		if (!mk->active[i])
			continue;
		for (int j = 0; j < KEY_WORDS; j++)
			m.w[j] = k->w[j] & mk->w[i][j];
		m.b[K_MASK_ID] = i;
		m.b[K_MASK_ID + 1] = 0;
		f = bpf_map_lookup_elem(&hl_flows, &m);
		if (f)
			return f;
	}
	return NULL;
}

__noinline int upcall(struct __sk_buff *skb, union fkey *k, __u32 reason, __u32 port_no,
		      struct action *a)
{
	__u32 zero = 0;
	struct upcall *u = bpf_map_lookup_elem(&hl_scratch, &zero);
	__u32 len = skb->len;
	__u32 tag = skb->vlan_present ? 4 : 0;
	__u32 n;

	if (!u || !k)
		return 0;
	u->h.reason = reason;
	u->h.in_port = port_no;
	u->h.orig_len = len + tag;
	u->h.flags = 0;
	u->h.userdata_len = 0;
	__builtin_memcpy(u->h.key, k->b, sizeof(u->h.key));
	if (a) {
		__builtin_memcpy(u->h.userdata, a->val, 16);
		u->h.userdata_len = a->arg16 > 16 ? 16 : a->arg16;
	}
	if (len + tag > UPCALL_DATA) {
		u->h.flags |= UP_TRUNCATED;
		len = UPCALL_DATA - tag;
	}
	if (len < 14) {
		n = len & 0xf;
		if (n && bpf_skb_load_bytes(skb, 0, u->data, n) < 0)
			n = 0;
		u->h.len = n;
		goto out;
	}
	if (bpf_skb_load_bytes(skb, 0, u->data, 12) < 0)
		return 0;
	n = 12;
	if (tag) {
		__u16 proto = (__u16)skb->vlan_proto;
		__u16 tci = bpf_htons((__u16)skb->vlan_tci);

		__builtin_memcpy(&u->data[12], &proto, 2);
		__builtin_memcpy(&u->data[14], &tci, 2);
		n = 16;
	}
	len -= 12;
	/* UPCALL_DATA is a power of two: keep the verifier's bounds obvious. */
	len &= UPCALL_DATA - 1;
	if (len > UPCALL_DATA - 16)
		len = UPCALL_DATA - 16;
	if (len > 0) {
		if (tag) {
			if (bpf_skb_load_bytes(skb, 12, &u->data[16], len) < 0)
				return 0;
		} else {
			if (bpf_skb_load_bytes(skb, 12, &u->data[12], len) < 0)
				return 0;
		}
	}
	n += len;
	u->h.len = n;
out:
	n &= UPCALL_DATA - 1;
	if (bpf_ringbuf_output(&hl_upcalls, u, sizeof(u->h) + n, 0) < 0)
		count(C_UPCALL_LOST);
	if (u->h.flags & UP_TRUNCATED)
		count(C_UPCALL_TRUNCATED);
	return 0;
}

static __always_inline int set_eth(struct __sk_buff *skb, struct action *a, __u32 off)
{
	__u8 cur[6];

	if (bpf_skb_load_bytes(skb, off, cur, 6) < 0)
		return -1;
	for (int j = 0; j < 6; j++)
		cur[j] = (cur[j] & ~a->msk[j]) | (a->val[j] & a->msk[j]);
	return bpf_skb_store_bytes(skb, off, cur, 6, 0);
}

static __always_inline int put_l4_port(struct __sk_buff *skb, struct pctx *c, __u32 which,
				       __u16 v, __u16 m)
{
	__u16 old, new;
	__u32 csum_off;
	__u64 flags = 2;

	if (!c->l4_ok)
		return 0;
	if (c->proto == 6) {
		csum_off = c->l4 + 16;
	} else if (c->proto == 17) {
		csum_off = c->l4 + 6;
		flags |= BPF_F_MARK_MANGLED_0;
	} else {
		return 0;
	}
	if (bpf_skb_load_bytes(skb, c->l4 + which, &old, 2) < 0)
		return -1;
	new = (old & ~m) | (v & m);
	if (new == old)
		return 0;
	if (bpf_l4_csum_replace(skb, csum_off, old, new, flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, c->l4 + which, &new, 2, 0);
}

static __always_inline int set_l4_port(struct __sk_buff *skb, struct action *a,
				       struct pctx *c, __u32 which)
{
	__u16 v, m;

	__builtin_memcpy(&v, a->val, 2);
	__builtin_memcpy(&m, a->msk, 2);
	return put_l4_port(skb, c, which, v, m);
}

static __always_inline int put_ipv4_addr(struct __sk_buff *skb, struct pctx *c, __u32 which,
					 __u32 v, __u32 m)
{
	__u32 old, new;
	__u32 off = c->l3 + which;

	if (c->l3_type != 0x0800)
		return 0;
	if (bpf_skb_load_bytes(skb, off, &old, 4) < 0)
		return -1;
	new = (old & ~m) | (v & m);
	if (new == old)
		return 0;
	if (c->l4_ok) {
		__u32 csum_off = c->proto == 6 ? c->l4 + 16 : c->l4 + 6;
		__u64 flags = BPF_F_PSEUDO_HDR | 4;

		if (c->proto == 17)
			flags |= BPF_F_MARK_MANGLED_0;
		if (bpf_l4_csum_replace(skb, csum_off, old, new, flags) < 0)
			return -1;
	}
	if (bpf_l3_csum_replace(skb, c->l3 + 10, old, new, 4) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, 4, 0);
}

static __always_inline int set_ipv4_addr(struct __sk_buff *skb, struct action *a,
					 struct pctx *c, __u32 which)
{
	__u32 v, m;

	__builtin_memcpy(&v, a->val, 4);
	__builtin_memcpy(&m, a->msk, 4);
	return put_ipv4_addr(skb, c, which, v, m);
}

/* One byte of the IPv4 header (TOS at 1, TTL at 8) or the IPv6 hop limit (7). */
static __always_inline int set_ip_byte(struct __sk_buff *skb, struct action *a,
				       struct pctx *c, __u32 v4off)
{
	__u8 w[2];
	__u16 old, new;
	__u32 off;

	if (c->l3_type == 0x86dd) {
		__u8 b;

		if (v4off != 8)
			return 0;       /* traffic class: slow path (layout.py) */
		if (bpf_skb_load_bytes(skb, c->l3 + 7, &b, 1) < 0)
			return -1;
		b = (b & ~a->msk[0]) | (a->val[0] & a->msk[0]);
		return bpf_skb_store_bytes(skb, c->l3 + 7, &b, 1, 0);
	}
	if (c->l3_type != 0x0800)
		return 0;
	off = c->l3 + (v4off & ~1u);
	if (bpf_skb_load_bytes(skb, off, w, 2) < 0)
		return -1;
	__builtin_memcpy(&old, w, 2);
	w[v4off & 1] = (w[v4off & 1] & ~a->msk[0]) | (a->val[0] & a->msk[0]);
	__builtin_memcpy(&new, w, 2);
	if (new == old)
		return 0;
	if (bpf_l3_csum_replace(skb, c->l3 + 10, old, new, 2) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, w, 2, 0);
}

static __always_inline int set_vlan(struct __sk_buff *skb, struct action *a)
{
	__u16 v, m, tci, proto;

	if (!skb->vlan_present)
		return 0;
	v = (__u16)a->val[0] << 8 | a->val[1];
	m = ((__u16)a->msk[0] << 8 | a->msk[1]) & 0xefff;
	tci = (__u16)skb->vlan_tci;
	proto = (__u16)skb->vlan_proto;
	tci = (tci & ~m) | (v & m);
	if (bpf_skb_vlan_pop(skb) < 0)
		return -1;
	return bpf_skb_vlan_push(skb, proto, tci);
}

__noinline int set_field(struct __sk_buff *skb, struct action *a, struct pctx *c)
{
	if (!a || !c)
		return -1;
	switch (a->field) {
	case F_ETH_DST:
		return set_eth(skb, a, 0);
	case F_ETH_SRC:
		return set_eth(skb, a, 6);
	case F_VLAN_TCI:
		return set_vlan(skb, a);
	case F_IPV4_SRC:
		return set_ipv4_addr(skb, a, c, 12);
	case F_IPV4_DST:
		return set_ipv4_addr(skb, a, c, 16);
	case F_IP_TOS:
		return set_ip_byte(skb, a, c, 1);
	case F_IP_TTL:
		return set_ip_byte(skb, a, c, 8);
	case F_TP_SRC:
		return set_l4_port(skb, a, c, 0);
	case F_TP_DST:
		return set_l4_port(skb, a, c, 2);
	}
	return -1;
}

#if HL_CT
/* ct(zone, commit, nat, exec(mark/label)) for a packet of a connection the daemon's
 * tracker has seen established: 0 done (the key's ct fields set, NAT applied), -1 the
 * daemon must run it (not found, a TCP segment that changes the connection's state, a
 * commit that would change the mark or label, force, a packet an earlier ct of the
 * zone translated, not TCP/UDP), -3 a rewrite failed. ``lab``: the A_CT_LABEL that
 * follows (read only with CTF_LABEL). */
__noinline int ct_exec(struct __sk_buff *skb, union fkey *k, struct pctx *c, struct action *a,
		       struct action *lab)
{
	struct ct_key ck = {};
	struct ct_entry *e;
	__u16 zone, sport, dport;
	__u8 proto;

	if (!k || !c || !a || !lab)
		return -1;
	if (a->field & CTF_FORCE)
		return -1;
	zone = a->arg16;
	if ((k->b[K_CT_STATE] & (CS_SNAT | CS_DNAT)) &&
	    ((__u16)k->b[K_CT_ZONE] << 8 | k->b[K_CT_ZONE + 1]) == zone)
		return -1;
	proto = k->b[K_IP_PROTO];
	if (!c->l4_ok || k->b[K_IP_FRAG])
		return -1;
	if (proto == 6 &&
	    (k->b[K_TCP_FLAGS + 1] & (TH_SYN | TH_FIN | TH_RST | TH_ACK)) != TH_ACK)
		return -1;
	ck.zone = zone;
	ck.proto = proto;
	__builtin_memcpy(&ck.sport, &k->b[K_TP_SRC], 4);
	if (c->l3_type == 0x0800) {
		__builtin_memcpy(ck.src, &k->b[K_IPV4_SRC], 4);
		__builtin_memcpy(ck.dst, &k->b[K_IPV4_SRC + 4], 4);
	} else if (c->l3_type == 0x86dd) {
		ck.v6 = 1;
		__builtin_memcpy(ck.src, &k->b[K_IPV6_SRC], 16);
		__builtin_memcpy(ck.dst, &k->b[K_IPV6_SRC + 16], 16);
	} else {
		return -1;
	}
	e = bpf_map_lookup_elem(&hl_ct, &ck);
	if (!e)
		return -1;
	if (a->field & CTF_COMMIT) {
		if (a->field & CTF_MARK)
			for (int j = 0; j < 4; j++)
				if ((e->tail[4 + j] ^ a->val[j]) & a->msk[j])
					return -1;
		if (a->field & CTF_LABEL)
			for (int j = 0; j < 16; j++)
				if ((e->tail[8 + j] ^ lab->val[j]) & lab->msk[j])
					return -1;
	}
	e->last_ns = bpf_ktime_get_coarse_ns();
	__builtin_memcpy(&k->b[K_CT_STATE], e->tail, CT_TAIL);
	if (!(a->field & CTF_NAT) || !e->nat)
		return 0;
	k->b[K_CT_STATE] |= e->nat;
	if (!(e->rewrite & RW_NAT) || c->l3_type != 0x0800)
		return 0;
	sport = e->nat_sport;
	dport = e->nat_dport;
	if (put_ipv4_addr(skb, c, 16, e->nat_dst, ~0u) < 0 ||
	    put_ipv4_addr(skb, c, 12, e->nat_src, ~0u) < 0 ||
	    put_l4_port(skb, c, 0, sport, 0xffff) < 0 || put_l4_port(skb, c, 2, dport, 0xffff) < 0)
		return -3;
	return 0;
}
#endif

/* One lookup of the packet and its flow's actions: a tc verdict, or PASS_RECIRC (the
 * key's recirc_id set: look it up again). */
__noinline int run_pass(struct __sk_buff *skb, union fkey *k, struct pctx *c, __u32 port_no)
{
	struct flow *f;
	struct fstats *s;
	__u32 idx;
#if HL_CT
	int r;
#endif

	if (!k || !c)
		return TC_ACT_SHOT;
	f = lookup(k);
	if (!f) {
		count(C_MISS);
		upcall(skb, k, R_MISS, port_no, NULL);
		return TC_ACT_SHOT;
	}
	idx = f->stats_idx;
	s = bpf_map_lookup_elem(&hl_stats, &idx);
	if (s) {
		s->packets += 1;
		s->bytes += skb->len + (skb->vlan_present ? 4 : 0);
		s->used_ns = bpf_ktime_get_coarse_ns(); /* CLOCK_MONOTONIC_COARSE: a tick behind at most, 13 ns cheaper */
		s->tcp_flags |= (__u16)k->b[K_TCP_FLAGS] << 8 | k->b[K_TCP_FLAGS + 1];
	}
	if (f->flags & FLOW_SLOWPATH) {
		count(C_SLOWPATH);
		upcall(skb, k, R_SLOWPATH, port_no, NULL);
		return TC_ACT_SHOT;
	}
	count(C_HIT);

	for (__u32 i = 0; i < MAX_ACTIONS; i++) {
		struct action *a;

		if (i >= f->n_actions)
			break;
		a = &f->act[i];
		switch (a->type) {
		case A_OUTPUT:
			if (a->arg16 & OUT_LAST)
				return bpf_redirect(a->arg32, 0);
			bpf_clone_redirect(skb, a->arg32, 0);
			break;
		case A_PUSH_VLAN:
			if (skb->vlan_present)
				c->l3 += 4;     /* the old outer tag moves into the packet */
			if (bpf_skb_vlan_push(skb, bpf_htons(a->arg16), a->arg32 & 0xefff) < 0)
				goto err;
			break;
		case A_POP_VLAN:
			if (skb->vlan_present) {
				if (bpf_skb_vlan_pop(skb) < 0)
					goto err;
				if (skb->vlan_present && c->l3 >= 18)
					c->l3 -= 4;
			}
			break;
		case A_SET_FIELD:
			if (set_field(skb, a, c) < 0)
				goto err;
			break;
		case A_USERSPACE:
			upcall(skb, k, R_ACTION, port_no, a);
			break;
#if HL_CT
		case A_CT:
			/* A kernel flow's ct is its first action (layout.py): a miss hands
			 * over the packet and key as the pass found them. */
			r = ct_exec(skb, k, c, a,
				    (a->field & CTF_LABEL) && i + 1 < MAX_ACTIONS ? &f->act[i + 1] : a);
			if (r == -1) {
				count(C_SLOWPATH);
				upcall(skb, k, R_SLOWPATH, port_no, NULL);
				return TC_ACT_SHOT;
			}
			if (r < 0)
				goto err;
			break;
		case A_CT_LABEL:
			break;
		case A_SAMPLE:
			if (a->arg32 == 0xffffffff || bpf_get_prandom_u32() < a->arg32)
				upcall(skb, k, R_ACTION, port_no, a);
			break;
		case A_CT_CLEAR:
			__builtin_memset(&k->b[K_CT_STATE], 0, CT_TAIL);
			break;
		case A_RECIRC:
			k->b[K_RECIRC_ID] = a->arg32 >> 24;
			k->b[K_RECIRC_ID + 1] = a->arg32 >> 16;
			k->b[K_RECIRC_ID + 2] = a->arg32 >> 8;
			k->b[K_RECIRC_ID + 3] = a->arg32;
			return PASS_RECIRC;
#endif
#if HL_PRIORITY
		case A_SET_PRIORITY:
			skb->priority = a->arg32;
			break;
#endif
		default:
			goto err;
		}
	}
	return TC_ACT_SHOT;
err:
	count(C_ACTION_ERROR);
	return TC_ACT_SHOT;
}

SEC("tc")
int hitless_port_in(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct port *p = bpf_map_lookup_elem(&hl_ports, &ifindex);
	struct pctx c = {};
	union fkey k = {};
	__u32 port_no;

	if (!p) {
		/* Not (or no longer) a port of this bridge: leave it to the kernel. The
		 * lookup keeps hl_info among the program's maps, where a restarted
		 * daemon finds it by the program's map ids. */
		__u32 zero = 0;
		struct info *inf = bpf_map_lookup_elem(&hl_info, &zero);

		count(inf && inf->abi == HL_ABI ? C_NO_PORT : C_ACTION_ERROR);
		return TC_ACT_OK;
	}
	port_no = p->port_no;
	k.b[0] = port_no >> 24;
	k.b[1] = port_no >> 16;
	k.b[2] = port_no >> 8;
	k.b[3] = port_no;
	parse(skb, &k, &c);
#if HL_CT
	for (int pass = 0; pass < MAX_PASSES; pass++) {
		int r = run_pass(skb, &k, &c, port_no);

		if (r != PASS_RECIRC)
			return r;
		/* The headers as the packet is now; in_port, recirc_id, ct fields kept. */
		__builtin_memset(&k.b[4], 0, K_RECIRC_ID - 4);
		__builtin_memset(&c, 0, sizeof(c));
		parse(skb, &k, &c);
	}
	count(C_ACTION_ERROR);  /* a recirculation loop */
	return TC_ACT_SHOT;
#else
	return run_pass(skb, &k, &c, port_no);
#endif
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
