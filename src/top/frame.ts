// One `kurve top` frame: what a mount is doing between two scrapes of its /metrics (ops/s and
// latency per opcode from the daemon and from the kernel's fuse_trace, caches, throughput, errors).
import type { Scrape } from './prom-text';
import { bucketIncreasesBy, gaugeBy, histogramQuantile, ratesBy, samplesOf } from './rates';

/** The metric names `kurve top` reads (see docs/metrics.md). */
export const TOP_METRICS = {
  userRequests: 'kurve_fuse_requests_total',
  userDuration: 'kurve_fuse_request_duration_seconds',
  userErrors: 'kurve_fuse_errors_total',
  kernelRequests: 'kurve_kernel_fuse_requests_total',
  kernelDuration: 'kurve_kernel_fuse_request_duration_seconds',
  kernelErrors: 'kurve_kernel_fuse_errors_total',
  cacheHits: 'kurve_client_cache_hits_total',
  cacheMisses: 'kurve_client_cache_misses_total',
  opens: 'kurve_client_opens_total',
  readBytes: 'kurve_client_read_bytes_total',
  writtenBytes: 'kurve_client_written_bytes_total',
  uploadedBytes: 'kurve_client_uploaded_bytes_total',
  fetchedBytes: 'kurve_client_cache_fetched_bytes_total',
  invalidations: 'kurve_client_invalidations_total',
  openHandles: 'kurve_client_open_handles',
  inodes: 'kurve_client_inodes_tracked',
  feedConnected: 'kurve_client_feed_connected',
  cpu: 'kurve_process_cpu_seconds_total',
  rss: 'kurve_process_resident_memory_bytes',
} as const;

export interface OpRow {
  readonly op: string;
  readonly opsPerSec: number;
  readonly errorsPerSec: number;
  readonly p50?: number;
  readonly p99?: number;
}

export interface Frame {
  readonly intervalSeconds: number;
  readonly user: OpRow[];
  /** undefined: the mount exports no BPF metrics (fuse_trace not loaded). */
  readonly kernel?: OpRow[];
  readonly readBytesPerSec: number;
  readonly writtenBytesPerSec: number;
  readonly uploadedBytesPerSec: number;
  readonly fetchedBytesPerSec: number;
  /** Chunk-cache hits / (hits + misses) in the interval; undefined when there were none. */
  readonly cacheHitRatio?: number;
  /** Passthrough opens / all opens in the interval. */
  readonly passthroughShare?: number;
  readonly invalidationsPerSec: number;
  readonly errorsPerSec: number;
  readonly openHandles?: number;
  readonly inodes?: number;
  readonly feedConnected?: boolean;
  readonly cpuShare?: number;
  readonly rssBytes?: number;
}

/** The label carrying the opcode: `op` by convention, `opcode` accepted. */
function opLabel(s: Scrape, name: string): string {
  const first = samplesOf(s, name)[0];
  return first && !('op' in first.labels) && 'opcode' in first.labels ? 'opcode' : 'op';
}

function opRows(prev: Scrape, cur: Scrape, dt: number, requests: string, duration: string, errors: string): OpRow[] {
  const label = opLabel(cur, requests);
  const ops = ratesBy(prev, cur, requests, label, dt);
  const errs = ratesBy(prev, cur, errors, label, dt);
  const buckets = bucketIncreasesBy(prev, cur, duration, label);
  const rows: OpRow[] = [];
  for (const [op, opsPerSec] of ops) {
    const b = buckets.get(op) ?? [];
    rows.push({ op, opsPerSec, errorsPerSec: errs.get(op) ?? 0, p50: histogramQuantile(0.5, b), p99: histogramQuantile(0.99, b) });
  }
  return rows.sort((a, b) => b.opsPerSec - a.opsPerSec || a.op.localeCompare(b.op));
}

const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
const one = (cur: Scrape, name: string): number | undefined => (samplesOf(cur, name).length ? total(gaugeBy(cur, name)) : undefined);
const ratio = (num: number, den: number): number | undefined => (den > 0 ? num / den : undefined);

export function computeFrame(prev: Scrape, cur: Scrape, dtSeconds: number): Frame {
  const M = TOP_METRICS;
  const rate = (name: string): number => total(ratesBy(prev, cur, name, undefined, dtSeconds));
  const user = opRows(prev, cur, dtSeconds, M.userRequests, M.userDuration, M.userErrors);
  const hasKernel = samplesOf(cur, M.kernelRequests).length > 0 || samplesOf(cur, `${M.kernelDuration}_count`).length > 0;
  const kernel = hasKernel ? opRows(prev, cur, dtSeconds, M.kernelRequests, M.kernelDuration, M.kernelErrors) : undefined;
  const hits = rate(M.cacheHits);
  const misses = rate(M.cacheMisses);
  const opensByMode = ratesBy(prev, cur, M.opens, 'mode', dtSeconds);
  const feed = one(cur, M.feedConnected);
  const cpu = samplesOf(cur, M.cpu).length ? rate(M.cpu) : undefined;
  return {
    intervalSeconds: dtSeconds,
    user,
    kernel,
    readBytesPerSec: rate(M.readBytes),
    writtenBytesPerSec: rate(M.writtenBytes),
    uploadedBytesPerSec: rate(M.uploadedBytes),
    fetchedBytesPerSec: rate(M.fetchedBytes),
    cacheHitRatio: ratio(hits, hits + misses),
    passthroughShare: ratio(opensByMode.get('passthrough') ?? 0, total(opensByMode)),
    invalidationsPerSec: rate(M.invalidations),
    errorsPerSec: user.reduce((a, r) => a + r.errorsPerSec, 0),
    openHandles: one(cur, M.openHandles),
    inodes: one(cur, M.inodes),
    feedConnected: feed === undefined ? undefined : feed > 0,
    cpuShare: cpu,
    rssBytes: one(cur, M.rss),
  };
}
