// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The limit the ebpf datapath is measured against (bench/datapath.py): a tc-BPF
 * program that only redirects every frame from one port to its paired port
 * (hl_redirect: ingress ifindex -> egress ifindex). No key, no lookup, no counters.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} hl_redirect SEC(".maps");

SEC("tc")
int hitless_redirect(struct __sk_buff *skb)
{
	__u32 key = skb->ifindex;
	__u32 *to = bpf_map_lookup_elem(&hl_redirect, &key);

	if (!to)
		return TC_ACT_OK;
	return bpf_redirect(*to, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
