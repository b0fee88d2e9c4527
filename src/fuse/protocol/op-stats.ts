// Per-opcode request counts and reply latencies of every FUSE session in the process:
// kurve_fuse_requests_total{op} and kurve_fuse_request_duration_seconds{op}. Recorded into typed
// arrays on the hot path (an index and an add), turned into Prometheus values only when /metrics
// is scraped. prom-client's labelled counter and histogram built a label object, validated and
// hashed it on every call: ~3 % of the daemon's CPU per GETATTR with kernel timeouts 0.
import type { Registry } from 'prom-client';
import { LATENCY_BUCKETS, registry as defaultRegistry } from '../../common/metrics';
import { opName } from './opcodes';

const OPS = 64;
const NB = LATENCY_BUCKETS.length;

interface Stats {
  readonly requests: Float64Array;
  /** OPS x NB per-bucket (not cumulative) counts; above the last bound only in `count`. */
  readonly buckets: Float64Array;
  readonly sum: Float64Array;
  readonly count: Float64Array;
}

// One set per process however often this module is loaded (jest, embedded services), like the
// registry's get-or-create metrics.
const KEY = Symbol.for('kurve.fuse.opStats');
type G = { [KEY]?: Stats };
const g = globalThis as G;
const stats: Stats = (g[KEY] ??= {
  requests: new Float64Array(OPS),
  buckets: new Float64Array(OPS * NB),
  sum: new Float64Array(OPS),
  count: new Float64Array(OPS),
});

/** A request was received (opcode validated by the caller, < 64 for every FUSE opcode). */
export function countRequest(opcode: number): void {
  if (opcode < OPS) stats.requests[opcode]++;
}

/** A reply was written `seconds` after the request was read. */
export function observeDuration(opcode: number, seconds: number): void {
  if (opcode >= OPS) return;
  stats.sum[opcode] += seconds;
  stats.count[opcode]++;
  for (let i = 0; i < NB; i++) {
    if (seconds <= LATENCY_BUCKETS[i]) {
      stats.buckets[opcode * NB + i]++;
      return;
    }
  }
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

function requestValues(): MetricValue[] {
  const out: MetricValue[] = [];
  for (let op = 0; op < OPS; op++) if (stats.requests[op] > 0) out.push({ value: stats.requests[op], labels: { op: opName(op) } });
  return out;
}

function durationValues(name: string): MetricValue[] {
  const out: MetricValue[] = [];
  for (let op = 0; op < OPS; op++) {
    const count = stats.count[op];
    if (count === 0) continue;
    const label = opName(op);
    let cum = 0;
    for (let i = 0; i < NB; i++) {
      cum += stats.buckets[op * NB + i];
      out.push({ metricName: `${name}_bucket`, value: cum, labels: { le: LATENCY_BUCKETS[i], op: label } });
    }
    out.push({ metricName: `${name}_bucket`, value: count, labels: { le: '+Inf', op: label } });
    out.push({ metricName: `${name}_sum`, value: stats.sum[op], labels: { op: label } });
    out.push({ metricName: `${name}_count`, value: count, labels: { op: label } });
  }
  return out;
}

/** Registers both metrics in `reg` (once; a second module instance finds them registered). */
export function registerOpStats(reg: Registry = defaultRegistry): void {
  const metric = (name: string, help: string, type: 'counter' | 'histogram', values: () => MetricValue[]) => ({
    name, help, type, aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: values() }),
    reset: () => undefined,
  });
  const add = (m: ReturnType<typeof metric>): void => {
    if (reg.getSingleMetric(m.name)) return;
    reg.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
  };
  add(metric('kurve_fuse_requests_total', 'FUSE requests received, by opcode', 'counter', requestValues));
  const dur = 'kurve_fuse_request_duration_seconds';
  add(metric(dur, 'Time from reading a FUSE request to writing its reply', 'histogram', () => durationValues(dur)));
}
