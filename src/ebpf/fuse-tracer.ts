// FuseTracer: loads bpf/fuse_trace.bpf.o, attaches it to the fuse request tracepoints (BTF-typed), filters on
// the connections of Kurve mounts, and exports per-opcode kernel-side counts and latencies.
import * as fs from 'node:fs';
import type { Registry } from 'prom-client';
import { registry as defaultRegistry } from '../common/metrics';
import { opName } from '../fuse/protocol/opcodes';
import { array, perCpu, struct, u32, u64 } from './codecs';
import { Collection } from './collection';
import { libbpf } from './ffi';
import { requireTracepoints, whyNoBpf } from './features';
import { Link } from './link';
import { BpfMap } from './map';
import { bpfObjectPath } from './objects';

export const HIST_BUCKETS = 40;
/** Connections one loaded tracer can follow; stats has a row of MAX_OPCODES entries per connection. */
export const MAX_CONNECTIONS = 16;
const MAX_OPCODES = 64;

const opStats = struct({ count: u64, completed: u64, errors: u64, sumNs: u64, hist: array(u64, HIST_BUCKETS) });
type OpStatsValue = ReturnType<typeof opStats.decode>;

export interface FuseOpStats {
  readonly opcode: number;
  readonly op: string;
  /** Requests the kernel sent to the daemon. */
  readonly count: number;
  /** Requests that ended (FORGET/BATCH_FORGET never do). */
  readonly completed: number;
  readonly errors: number;
  readonly sumSeconds: number;
  /** histogram[i] = requests that took [2^i, 2^(i+1)) ns. */
  readonly histogram: readonly number[];
}

/**
 * The kernel's dev_t encoding of a mount's device (what the fuse tracepoints call `connection`,
 * and the name of its /sys/fs/fuse/connections entry), from the mount point.
 */
export function connectionIdOf(mountpoint: string): number {
  // Never call this from the process serving the mount: the stat would wait for itself.
  return connectionIdFromDev(fs.statSync(mountpoint, { bigint: true }).dev);
}

/** The kernel dev_t (MAJOR << 20 | MINOR) from a user-space st_dev. */
export function connectionIdFromDev(dev: bigint): number {
  // glibc encoding: major in bits 8..19 and 32..43, minor in bits 0..7 and 20..31.
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return ((major << 20) | minor) >>> 0;
}

export interface FuseTracerOptions {
  /** A separate object (not shared with other tracers in the process); bpf/fuse_trace.bpf.o by default. */
  readonly objectPath?: string;
}

/** The loaded object and its links: one per process, shared by every FuseTracer handle. */
class Loaded {
  /** connection id -> its row in stats. */
  readonly conns: BpfMap<number, number>;
  readonly stats: BpfMap<number, OpStatsValue[]>;
  readonly rows = new Map<number, number>();
  private readonly zero: OpStatsValue[];
  refs = 0;

  constructor(
    private readonly coll: Collection,
    private readonly links: Link[],
    readonly loadMs: number,
  ) {
    const cpus = libbpf().libbpf_num_possible_cpus();
    this.conns = coll.map('connections', u32, u32);
    this.stats = coll.map('stats', u32, perCpu(opStats, cpus));
    const z: OpStatsValue = { count: 0, completed: 0, errors: 0, sumNs: 0, hist: new Array<number>(HIST_BUCKETS).fill(0) };
    this.zero = new Array<OpStatsValue>(cpus).fill(z);
  }

  /** Gives the connection a zeroed stats row and starts filtering it in (idempotent). */
  addConnection(connId: number): void {
    if (this.rows.has(connId)) return;
    const used = new Set(this.rows.values());
    let row = 0;
    while (row < MAX_CONNECTIONS && used.has(row)) row++;
    if (row === MAX_CONNECTIONS) throw new RangeError(`fuse_trace follows at most ${MAX_CONNECTIONS} connections per process`);
    for (let op = 0; op < MAX_OPCODES; op++) this.stats.set(row * MAX_OPCODES + op, this.zero);
    this.conns.set(connId, row);
    this.rows.set(connId, row);
  }

  removeConnection(connId: number): void {
    this.conns.delete(connId);
    this.rows.delete(connId); // the row is zeroed when it is handed out again
  }

  /** The connection's per-opcode values (per CPU), opcodes with nothing counted left out. */
  *rowEntries(connId: number): Generator<[number, OpStatsValue[]]> {
    const row = this.rows.get(connId);
    if (row === undefined) return;
    for (let op = 0; op < MAX_OPCODES; op++) {
      const v = this.stats.get(row * MAX_OPCODES + op);
      if (v && v.some((c) => c.count > 0 || c.completed > 0)) yield [op, v];
    }
  }

  static load(objectPath: string): Loaded {
    const t0 = performance.now();
    const why = whyNoBpf();
    if (why) throw new Error(why);
    requireTracepoints(['fuse/fuse_request_send', 'fuse/fuse_request_end']);
    const coll = Collection.load(objectPath);
    const links: Link[] = [];
    try {
      for (const p of coll.programs) links.push(p.attach());
      return new Loaded(coll, links, performance.now() - t0);
    } catch (err) {
      for (const l of links) l.close();
      coll.close();
      throw err;
    }
  }

  unload(): void {
    for (const l of this.links) l.close();
    this.coll.close();
  }
}

let shared: Loaded | undefined;

/**
 * A handle on the kernel FUSE tracer. Handles share one loaded object per process (every mount
 * adds its connection to the same filter), so N mounts cost one set of programs, not N; the
 * object is unloaded when the last handle closes. A handle sees only its own connections.
 */
export class FuseTracer {
  private readonly tracked = new Set<number>();
  private closed = false;

  private constructor(private readonly loaded: Loaded) {
    loaded.refs++;
    live.add(this);
  }

  /** Loads and attaches (or joins the process's tracer). Throws BpfError, VerifierError or
   * UnsupportedFeatureError with the reason. */
  static open(opts: FuseTracerOptions = {}): FuseTracer {
    if (opts.objectPath) return new FuseTracer(Loaded.load(opts.objectPath));
    shared ??= Loaded.load(bpfObjectPath('fuse_trace'));
    return new FuseTracer(shared);
  }

  /** Time the load and attach took (0 ms extra for handles that joined a loaded tracer). */
  get loadMs(): number {
    return this.loaded.loadMs;
  }

  /** Starts counting requests of this connection (see connectionIdOf). At most 16 per process. */
  addConnection(connId: number): void {
    if (!Number.isInteger(connId) || connId <= 0 || connId > 0xffffffff) throw new RangeError(`invalid FUSE connection id ${connId}`);
    this.live().addConnection(connId);
    this.tracked.add(connId);
  }

  /** Stops counting and forgets the connection's statistics. */
  removeConnection(connId: number): void {
    this.live().removeConnection(connId);
    this.tracked.delete(connId);
  }

  get connections(): readonly number[] {
    return [...this.tracked];
  }

  /** Per-opcode totals, summed over CPUs and over this handle's connections (or just `connId`). */
  snapshot(connId?: number): FuseOpStats[] {
    const want = connId !== undefined ? new Set([connId]) : this.tracked;
    const byOp = new Map<number, { count: number; completed: number; errors: number; sumNs: number; hist: number[] }>();
    const l = this.live();
    for (const [opcode, perCpuVals] of [...want].flatMap((c) => [...l.rowEntries(c)])) {
      let acc = byOp.get(opcode);
      if (!acc) byOp.set(opcode, (acc = { count: 0, completed: 0, errors: 0, sumNs: 0, hist: new Array<number>(HIST_BUCKETS).fill(0) }));
      for (const v of perCpuVals) {
        acc.count += v.count;
        acc.completed += v.completed;
        acc.errors += v.errors;
        acc.sumNs += v.sumNs;
        v.hist.forEach((n, i) => (acc!.hist[i] += n));
      }
    }
    return [...byOp.entries()]
      .sort(([a], [b]) => a - b)
      .map(([opcode, a]) => ({
        opcode,
        op: opName(opcode),
        count: a.count,
        completed: a.completed,
        errors: a.errors,
        sumSeconds: a.sumNs / 1e9,
        histogram: a.hist,
      }));
  }

  /** Removes this handle's connections; the last handle detaches and unloads the programs. */
  close(): void {
    if (this.closed) return;
    for (const c of [...this.tracked]) this.removeConnection(c);
    this.closed = true;
    live.delete(this);
    if (--this.loaded.refs === 0) {
      if (shared === this.loaded) shared = undefined;
      this.loaded.unload();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private live(): Loaded {
    if (this.closed) throw new Error('FuseTracer is closed');
    return this.loaded;
  }
}

const live = new Set<FuseTracer>();

/** Histogram bucket bounds exported to Prometheus: 2^10 ns (~1 µs) … 2^35 ns (~34 s). */
const FIRST_EXPORTED = 9;
const LAST_EXPORTED = 34;

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

function fuseMetricValues(kind: 'requests' | 'errors' | 'duration'): MetricValue[] {
  const merged = new Map<string, FuseOpStats[]>();
  for (const t of live) for (const s of t.snapshot()) merged.set(s.op, [...(merged.get(s.op) ?? []), s]);
  const out: MetricValue[] = [];
  for (const [op, list] of merged) {
    if (kind === 'requests') out.push({ value: list.reduce((a, s) => a + s.count, 0), labels: { op } });
    else if (kind === 'errors') out.push({ value: list.reduce((a, s) => a + s.errors, 0), labels: { op } });
    else {
      const name = 'kurve_kernel_fuse_request_duration_seconds';
      let cum = 0;
      const hist = new Array<number>(HIST_BUCKETS).fill(0);
      for (const s of list) s.histogram.forEach((n, i) => (hist[i] += n));
      for (let i = 0; i < HIST_BUCKETS; i++) {
        cum += hist[i];
        if (i < FIRST_EXPORTED || i > LAST_EXPORTED) continue;
        out.push({ metricName: `${name}_bucket`, value: cum, labels: { op, le: 2 ** (i + 1) / 1e9 } });
      }
      const completed = list.reduce((a, s) => a + s.completed, 0);
      out.push({ metricName: `${name}_bucket`, value: completed, labels: { op, le: '+Inf' } });
      out.push({ metricName: `${name}_sum`, value: list.reduce((a, s) => a + s.sumSeconds, 0), labels: { op } });
      out.push({ metricName: `${name}_count`, value: completed, labels: { op } });
    }
  }
  return out;
}

const registered = new WeakSet<Registry>();

/**
 * Registers kurve_kernel_fuse_request_duration_seconds{op} (histogram from the log2 buckets),
 * kurve_kernel_fuse_requests_total{op} and kurve_kernel_fuse_errors_total{op}, summed over every
 * open FuseTracer in the process. Idempotent per registry.
 */
export function registerFuseTracerMetrics(reg: Registry = defaultRegistry): void {
  if (registered.has(reg)) return;
  registered.add(reg);
  const metric = (name: string, help: string, type: 'counter' | 'histogram', kind: 'requests' | 'errors' | 'duration') => ({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, aggregator: 'sum', values: fuseMetricValues(kind) }),
    reset: () => undefined,
  });
  const add = (m: ReturnType<typeof metric>) => reg.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
  add(metric('kurve_kernel_fuse_requests_total', 'FUSE requests the kernel sent to this process, by opcode (eBPF, fuse:fuse_request_send)', 'counter', 'requests'));
  add(metric('kurve_kernel_fuse_errors_total', 'FUSE requests that ended with an error, by opcode (eBPF, fuse:fuse_request_end)', 'counter', 'errors'));
  add(metric('kurve_kernel_fuse_request_duration_seconds', 'Kernel-side FUSE request latency, send to end, by opcode (eBPF, log2 buckets)', 'histogram', 'duration'));
}
