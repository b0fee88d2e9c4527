// SPDX-License-Identifier: GPL-2.0
/* fuse_trace: per (connection, opcode) request counts, errors and log2 latency histograms from the
 * fuse:fuse_request_send / fuse:fuse_request_end tracepoints, for the connections the loader lists.
 * BTF-typed tracepoints (tp_btf): the program reads struct fuse_req directly and the kernel skips
 * the classic tracepoint's record, and in-flight requests live in a plain array slot chosen from
 * the request id, not a hash map: measured in one process (test/ebpf-overhead.ts), the map update
 * and delete per request were most of the tracing cost on GETATTR round trips. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "kurve_common.h"

#define HIST_BUCKETS 40 /* 2^40 ns ~ 18 min: anything slower lands in the last bucket */
#define OP_FORGET 2
#define OP_BATCH_FORGET 42
#define MAX_CONNECTIONS 16
#define MAX_OPCODES 64 /* FUSE opcodes are < 64 (CUSE_INIT 4096 is not a file system request) */

struct op_stats {
	__u64 count;     /* requests sent to the daemon */
	__u64 completed; /* requests that ended (count - completed ~ in flight, minus no-reply ops) */
	__u64 errors;    /* ended with error != 0 */
	__u64 sum_ns;
	__u64 hist[HIST_BUCKETS]; /* hist[i]: latency in [2^i, 2^(i+1)) ns */
};

/* A slot per in-flight request: fuse ids grow by 2 per request on a connection, so consecutive
 * requests take consecutive slots and a slot is reused only after INFLIGHT_SLOTS later requests of
 * that connection (far more than the kernel keeps in flight). The connection is mixed into the
 * index so mounts do not walk the same slots. A slot is claimed by (connection, unique); an end
 * whose slot holds another request (overwritten, or sent before attach) is counted as not ours.
 * Send runs before the request is queued, so its slot write happens before the matching end. */
#define INFLIGHT_SLOTS 65536

struct inflight_slot {
	__u64 unique;
	__u64 start_ns;
	__u32 connection;
	__u32 stats_index; /* the request's entry in stats */
};

/* Filled by the loader with the connections of Kurve mounts (dev_t in kernel encoding, MAJOR << 20
 * | MINOR) -> the connection's row in stats (0..MAX_CONNECTIONS-1); other FUSE mounts share the host. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CONNECTIONS);
	__type(key, __u32);
	__type(value, __u32);
} connections SEC(".maps");

/* Shared by all CPUs (a request may end on another CPU than it was sent from); array lookups are
 * inlined by the verifier: no hashing, no locks, nothing to leak when a request never ends. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INFLIGHT_SLOTS);
	__type(key, __u32);
	__type(value, struct inflight_slot);
} inflight SEC(".maps");

/* stats[row * MAX_OPCODES + opcode], per CPU: an array lookup is inlined (no hashing, no insert on a
 * connection's first use of an opcode); the loader zeroes a row when it hands it to a connection. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_CONNECTIONS * MAX_OPCODES);
	__type(key, __u32);
	__type(value, struct op_stats);
} stats SEC(".maps");

static __always_inline __u32 slot_of(__u32 conn, __u64 unique)
{
	return ((__u32)(unique >> 1) + conn * 2654435761u) & (INFLIGHT_SLOTS - 1);
}

SEC("tp_btf/fuse_request_send")
int BPF_PROG(fuse_request_send, const struct fuse_req *req)
{
	__u32 conn = req->fm->fc->dev;
	__u32 *row = bpf_map_lookup_elem(&connections, &conn);
	struct inflight_slot *slot;
	struct op_stats *s;
	__u32 opcode, sidx, idx;

	if (!row)
		return 0;
	opcode = req->in.h.opcode;
	if (opcode >= MAX_OPCODES || *row >= MAX_CONNECTIONS)
		return 0;
	sidx = *row * MAX_OPCODES + opcode;
	s = bpf_map_lookup_elem(&stats, &sidx);
	if (s)
		s->count++; /* per-CPU value: no atomics needed */
	if (opcode == OP_FORGET || opcode == OP_BATCH_FORGET)
		return 0; /* no reply will come */

	__u64 unique = req->in.h.unique;

	idx = slot_of(conn, unique);
	slot = bpf_map_lookup_elem(&inflight, &idx);
	if (!slot)
		return 0;
	slot->start_ns = bpf_ktime_get_ns();
	slot->connection = conn;
	slot->stats_index = sidx;
	slot->unique = unique;
	return 0;
}

SEC("tp_btf/fuse_request_end")
int BPF_PROG(fuse_request_end, const struct fuse_req *req)
{
	__u64 unique = req->in.h.unique;
	__u32 conn = req->fm->fc->dev;
	__u32 idx = slot_of(conn, unique);
	struct inflight_slot *slot = bpf_map_lookup_elem(&inflight, &idx);
	struct op_stats *s;
	__u64 delta;
	__u32 b;

	if (!slot || slot->unique != unique || slot->connection != conn || !slot->start_ns)
		return 0; /* not ours, or sent before we attached */
	delta = bpf_ktime_get_ns() - slot->start_ns;
	idx = slot->stats_index;
	slot->start_ns = 0; /* ended: a late duplicate end must not count twice */

	s = bpf_map_lookup_elem(&stats, &idx);
	if (!s)
		return 0;
	s->completed++;
	if (req->out.h.error != 0)
		s->errors++;
	s->sum_ns += delta;
	b = delta ? log2_u64(delta) : 0;
	if (b >= HIST_BUCKETS)
		b = HIST_BUCKETS - 1;
	s->hist[b]++;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
