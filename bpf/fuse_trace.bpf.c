// SPDX-License-Identifier: GPL-2.0
/* fuse_trace: per (connection, opcode) request counts, errors and log2 latency histograms from the
 * fuse:fuse_request_send / fuse:fuse_request_end tracepoints, for the connections the loader lists. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "kurve_common.h"

#define HIST_BUCKETS 40 /* 2^40 ns ~ 18 min: anything slower lands in the last bucket */
#define OP_FORGET 2
#define OP_BATCH_FORGET 42

struct op_key {
	__u32 connection; /* the mount's dev_t in kernel encoding (MAJOR << 20 | MINOR) */
	__u32 opcode;
};

struct op_stats {
	__u64 count;     /* requests sent to the daemon */
	__u64 completed; /* requests that ended (count - completed ~ in flight, minus no-reply ops) */
	__u64 errors;    /* ended with error != 0 */
	__u64 sum_ns;
	__u64 hist[HIST_BUCKETS]; /* hist[i]: latency in [2^i, 2^(i+1)) ns */
};

struct inflight_key {
	__u32 connection;
	__u32 pad;
	__u64 unique;
};

struct inflight_val {
	__u64 start_ns;
	__u32 opcode;
	__u32 pad;
};

/* Filled by the loader with the connections of Kurve mounts; other FUSE mounts share the host.
 * 16 mounts per process x ~53 opcodes fits the 1024 stats entries below (preallocated per CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u8);
} connections SEC(".maps");

/* LRU: FORGET-like requests and aborted connections never end; old entries are evicted, not leaked. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_COMMON_LRU); /* per-CPU LRU lists: no global lock on the hot path */
	__type(key, struct inflight_key);
	__type(value, struct inflight_val);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct op_key);
	__type(value, struct op_stats);
} stats SEC(".maps");

static const struct op_stats zero_stats;

static __always_inline struct op_stats *stats_for(struct op_key *key)
{
	struct op_stats *s = bpf_map_lookup_elem(&stats, key);

	if (s)
		return s;
	bpf_map_update_elem(&stats, key, &zero_stats, BPF_NOEXIST);
	return bpf_map_lookup_elem(&stats, key);
}

SEC("tracepoint/fuse/fuse_request_send")
int fuse_request_send(struct trace_event_raw_fuse_request_send *ctx)
{
	__u32 conn = ctx->connection;
	struct op_key key = { .connection = conn };
	struct op_stats *s;

	if (!bpf_map_lookup_elem(&connections, &conn))
		return 0;
	key.opcode = ctx->opcode;
	s = stats_for(&key);
	if (s)
		s->count++; /* per-CPU value: no atomics needed */
	if (key.opcode == OP_FORGET || key.opcode == OP_BATCH_FORGET)
		return 0; /* no reply will come */

	struct inflight_key ik = { .connection = conn, .unique = ctx->unique };
	struct inflight_val iv = { .start_ns = bpf_ktime_get_ns(), .opcode = key.opcode };

	bpf_map_update_elem(&inflight, &ik, &iv, BPF_ANY);
	return 0;
}

SEC("tracepoint/fuse/fuse_request_end")
int fuse_request_end(struct trace_event_raw_fuse_request_end *ctx)
{
	struct inflight_key ik = { .connection = ctx->connection, .unique = ctx->unique };
	struct inflight_val *iv = bpf_map_lookup_elem(&inflight, &ik);
	struct op_key key;
	struct op_stats *s;
	__u64 delta;
	__u32 b;

	if (!iv)
		return 0; /* not ours, or sent before we attached */
	delta = bpf_ktime_get_ns() - iv->start_ns;
	key.connection = ik.connection;
	key.opcode = iv->opcode;
	bpf_map_delete_elem(&inflight, &ik);

	s = stats_for(&key);
	if (!s)
		return 0;
	s->completed++;
	if (ctx->error != 0)
		s->errors++;
	s->sum_ns += delta;
	b = delta ? log2_u64(delta) : 0;
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	s->hist[b]++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
