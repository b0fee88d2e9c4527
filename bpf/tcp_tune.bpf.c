// SPDX-License-Identifier: GPL-2.0
/* tcp_tune: per destination prefix SYN RTO (BPF_SOCK_OPS_TIMEOUT_INIT) and minimum RTO on
 * established connections, with per-prefix tuned/retransmit/RTT statistics. */
/* clang 14 + vmlinux.h: without this the verifier rejects sockops ctx accesses
 * ("dereference of modified ctx ptr"). Offsets come from this kernel's vmlinux.h, built here. */
#define BPF_NO_PRESERVE_ACCESS_INDEX
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "kurve_common.h"

#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define MAX_SLOTS 256

extern unsigned int CONFIG_HZ __kconfig;

/* One trie for both families: 32 bits of family come first, so prefixlen = 32 + the prefix
 * length, and prefixlen 0 (family unspecified) is the default entry matching everything. */
struct rto_key {
	__u32 prefixlen;
	__u32 family;
	__u8 addr[16]; /* network order; IPv4 uses the first 4 bytes */
};

struct rto_val {
	__u32 syn_rto_ms; /* 0: leave the SYN RTO alone */
	__u32 rto_min_ms; /* 0: leave the minimum RTO alone */
	__u32 slot;       /* index into rto_stats, assigned by the loader */
	__u32 flags;
};

struct rto_stats {
	__u64 syn_tuned;    /* connections whose SYN RTO we set (first TIMEOUT_INIT only) */
	__u64 rto_min_set;  /* established connections whose minimum RTO we lowered */
	__u64 syn_retrans;  /* retransmits in SYN_SENT */
	__u64 data_retrans; /* other retransmits */
	__u64 rtt_samples;
	__u64 srtt_us;      /* EWMA (1/8) of the connections' smoothed RTTs */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_SLOTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct rto_key);
	__type(value, struct rto_val);
} rto_prefixes SEC(".maps");

/* Stats live apart from the trie so re-setting a prefix keeps its counters. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct rto_stats);
} rto_stats SEC(".maps");

static __always_inline void key_v4(struct rto_key *k, __u32 addr_be)
{
	k->prefixlen = 64;
	k->family = AF_INET;
	__builtin_memcpy(k->addr, &addr_be, 4);
}

static __always_inline struct rto_val *lookup_sockops(struct bpf_sock_ops *skops, struct rto_key *k)
{
	__builtin_memset(k, 0, sizeof(*k));
	if (skops->family == AF_INET) {
		key_v4(k, skops->remote_ip4);
	} else if (skops->family == AF_INET6) {
		__u32 a0 = skops->remote_ip6[0], a1 = skops->remote_ip6[1];
		__u32 a2 = skops->remote_ip6[2], a3 = skops->remote_ip6[3];

		if (a0 == 0 && a1 == 0 && a2 == bpf_htonl(0xffff)) {
			key_v4(k, a3); /* v4-mapped: an IPv4 peer behind a dual-stack socket */
		} else {
			k->prefixlen = 160;
			k->family = AF_INET6;
			__builtin_memcpy(k->addr, &a0, 4);
			__builtin_memcpy(k->addr + 4, &a1, 4);
			__builtin_memcpy(k->addr + 8, &a2, 4);
			__builtin_memcpy(k->addr + 12, &a3, 4);
		}
	} else {
		return 0;
	}
	return bpf_map_lookup_elem(&rto_prefixes, k);
}

static __always_inline struct rto_stats *stats_of(struct rto_val *v)
{
	__u32 slot = v->slot;

	return bpf_map_lookup_elem(&rto_stats, &slot);
}

SEC("sockops")
int tcp_tune(struct bpf_sock_ops *skops)
{
	struct rto_key key;
	struct rto_val *v;
	struct rto_stats *st;
	int op = skops->op;

	switch (op) {
	case BPF_SOCK_OPS_TIMEOUT_INIT:
		v = lookup_sockops(skops, &key);
		if (!v || !v->syn_rto_ms)
			break;
		st = stats_of(v);
		/* TIMEOUT_INIT runs again for each linear-backoff SYN retransmit
		 * (tcp_syn_linear_timeouts): count a connection only on its first call. */
		if (st && skops->total_retrans == 0)
			__sync_fetch_and_add(&st->syn_tuned, 1);
		/* The reply is in jiffies; round up so 1 ms never becomes 0 (= kernel default). */
		skops->reply = ((__u64)v->syn_rto_ms * CONFIG_HZ + 999) / 1000;
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		v = lookup_sockops(skops, &key);
		if (!v)
			break;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTT_CB_FLAG);
		if (v->rto_min_ms) {
			int us = v->rto_min_ms * 1000; /* TCP_BPF_RTO_MIN takes microseconds */

			st = stats_of(v);
			if (bpf_setsockopt(skops, SOL_TCP, TCP_BPF_RTO_MIN, &us, sizeof(us)) == 0 && st)
				__sync_fetch_and_add(&st->rto_min_set, 1);
		}
		break;
	case BPF_SOCK_OPS_RTT_CB:
		v = lookup_sockops(skops, &key);
		if (!v)
			break;
		st = stats_of(v);
		if (st) {
			__u64 srtt = skops->srtt_us >> 3; /* the kernel keeps srtt << 3 */
			__u64 old = st->srtt_us;

			__sync_fetch_and_add(&st->rtt_samples, 1);
			/* Racy across CPUs by design: a lost update only delays the average. */
			st->srtt_us = old ? old - (old >> 3) + (srtt >> 3) : srtt;
		}
		break;
	}
	return 1;
}

/* A tracepoint rather than BPF_SOCK_OPS_RETRANS_CB: it needs no per-socket flag (so it also sees
 * connections made before attach or outside the cgroup), and it carries the socket state, which
 * tells SYN retransmits from data retransmits without reading the socket. */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int tcp_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	struct rto_key key = {};
	struct rto_val *v;
	struct rto_stats *st;

	if (ctx->err != 0)
		return 0; /* nothing went out */
	if (ctx->family == AF_INET) {
		key.prefixlen = 64;
		key.family = AF_INET;
		__builtin_memcpy(key.addr, ctx->daddr, 4);
	} else if (ctx->family == AF_INET6) {
		key.prefixlen = 160;
		key.family = AF_INET6;
		__builtin_memcpy(key.addr, ctx->daddr_v6, 16);
		if (((__u32 *)key.addr)[0] == 0 && ((__u32 *)key.addr)[1] == 0 &&
		    ((__u32 *)key.addr)[2] == bpf_htonl(0xffff)) {
			__u32 a4 = ((__u32 *)key.addr)[3];

			__builtin_memset(&key, 0, sizeof(key));
			key_v4(&key, a4);
		}
	} else {
		return 0;
	}
	v = bpf_map_lookup_elem(&rto_prefixes, &key);
	if (!v)
		return 0;
	st = stats_of(v);
	if (!st)
		return 0;
	if (ctx->state == TCP_SYN_SENT)
		__sync_fetch_and_add(&st->syn_retrans, 1);
	else
		__sync_fetch_and_add(&st->data_retrans, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
