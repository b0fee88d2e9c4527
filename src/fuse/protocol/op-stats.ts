// Per-opcode request counts and reply latencies of every FUSE session in the process:
// kurve_fuse_requests_total{op} and kurve_fuse_request_duration_seconds{op}, as fast labelled
// metrics (src/common/fast-metrics.ts) whose per-opcode children are looked up in an array: the
// hot path is an index and an add. prom-client's labelled counter and histogram built a label
// object, validated and hashed it on every call: ~3 % of the daemon's CPU per GETATTR with kernel
// timeouts 0.
import type { Registry } from 'prom-client';
import { CounterChild, fastCounter, fastHistogram, HistogramChild } from '../../common/fast-metrics';
import { LATENCY_BUCKETS, registry as defaultRegistry } from '../../common/metrics';
import { opName } from './opcodes';

const OPS = 64;
const REQUESTS = { name: 'kurve_fuse_requests_total', help: 'FUSE requests received, by opcode', labelNames: ['op'] };
const DURATION = {
  name: 'kurve_fuse_request_duration_seconds', help: 'Time from reading a FUSE request to writing its reply', labelNames: ['op'], buckets: LATENCY_BUCKETS,
};
const requests = fastCounter(REQUESTS);
const durations = fastHistogram(DURATION);
const requestChildren: (CounterChild | undefined)[] = new Array(OPS);
const durationChildren: (HistogramChild | undefined)[] = new Array(OPS);

/** A request was received (opcode validated by the caller, < 64 for every FUSE opcode). */
export function countRequest(opcode: number): void {
  if (opcode < OPS) (requestChildren[opcode] ??= requests.labels(opName(opcode))).inc();
}

/** A reply was written `seconds` after the request was read. */
export function observeDuration(opcode: number, seconds: number): void {
  if (opcode < OPS) (durationChildren[opcode] ??= durations.labels(opName(opcode))).observe(seconds);
}

/** Registers both metrics in `reg` too (once; the process registry has them already). */
export function registerOpStats(reg: Registry = defaultRegistry): void {
  fastCounter(REQUESTS, reg);
  fastHistogram(DURATION, reg);
}
