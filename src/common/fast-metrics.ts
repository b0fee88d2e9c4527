// Labelled counters and histograms for hot paths (several per file create): a child per label set
// is made once, and its inc()/observe() only add to numbers. prom-client meets them at scrape time,
// as custom metric objects in the registry. A prom-client child re-builds, validates and hashes
// its label object on every call (measured ~13 µs of daemon CPU per create for the metaserver's
// op and engine metrics). Same series, names and label names as before: dashboards and
// docs/metrics.md are unchanged. See also src/fuse/protocol/op-stats.ts (per-opcode arrays).
import type { Registry } from 'prom-client';
import { registry as defaultRegistry } from './metrics';

type Labels = Record<string, string | number>;
interface MetricValue {
  value: number;
  labels: Labels;
  metricName?: string;
}

export interface CounterChild {
  inc(n?: number): void;
}
export interface HistogramChild {
  observe(seconds: number): void;
}

interface CounterCell {
  readonly labels: Labels;
  value: number;
}
interface HistogramCell {
  readonly labels: Labels;
  /** Per-bucket (not cumulative) counts; above the last bound only in `count`. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

abstract class FastMetric<Cell> {
  protected readonly cells = new Map<string, Cell>();
  constructor(readonly name: string, readonly help: string, protected readonly labelNames: readonly string[]) {}

  protected cell(values: readonly (string | number)[], make: (labels: Labels) => Cell): Cell {
    const key = values.join('\u0001');
    let c = this.cells.get(key);
    if (!c) {
      if (values.length !== this.labelNames.length) {
        throw new Error(`${this.name}: ${this.labelNames.length} label values expected, got ${values.length}`);
      }
      const labels: Labels = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i]));
      this.cells.set(key, (c = make(labels)));
    }
    return c;
  }

  protected abstract values(): MetricValue[];

  /** The object prom-client's registry serialises (its get() is all it calls). */
  asRegistryMetric(type: 'counter' | 'histogram'): unknown {
    return {
      name: this.name, help: this.help, type, aggregator: 'sum',
      get: async () => ({ name: this.name, help: this.help, type, aggregator: 'sum', values: this.values() }),
      reset: () => this.cells.clear(),
    };
  }
}

export class FastCounter extends FastMetric<CounterCell> {
  /** The child for these label values (in labelNames order); keep it, calls are then free. */
  labels(...values: (string | number)[]): CounterChild {
    const c = this.cell(values, (labels) => ({ labels, value: 0 }));
    return { inc: (n = 1) => void (c.value += n) };
  }

  protected values(): MetricValue[] {
    return [...this.cells.values()].map((c) => ({ value: c.value, labels: c.labels }));
  }
}

export class FastHistogram extends FastMetric<HistogramCell> {
  constructor(name: string, help: string, labelNames: readonly string[], private readonly bounds: readonly number[]) {
    super(name, help, labelNames);
  }

  labels(...values: (string | number)[]): HistogramChild {
    const c = this.cell(values, (labels) => ({ labels, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 }));
    const bounds = this.bounds;
    return {
      observe: (v: number) => {
        c.sum += v;
        c.count++;
        for (let i = 0; i < bounds.length; i++) {
          if (v <= bounds[i]) {
            c.buckets[i]++;
            return;
          }
        }
      },
    };
  }

  protected values(): MetricValue[] {
    const out: MetricValue[] = [];
    for (const c of this.cells.values()) {
      let cum = 0;
      for (let i = 0; i < this.bounds.length; i++) {
        cum += c.buckets[i];
        out.push({ metricName: `${this.name}_bucket`, value: cum, labels: { le: this.bounds[i], ...c.labels } });
      }
      out.push({ metricName: `${this.name}_bucket`, value: c.count, labels: { le: '+Inf', ...c.labels } });
      out.push({ metricName: `${this.name}_sum`, value: c.sum, labels: c.labels });
      out.push({ metricName: `${this.name}_count`, value: c.count, labels: c.labels });
    }
    return out;
  }
}

// One instance per name per process, however often a module is loaded (jest, embedded services).
const KEY = Symbol.for('kurve.fastMetrics');
const g = globalThis as { [KEY]?: Map<string, unknown> };
const made = (g[KEY] ??= new Map());

function getOrMake<M extends { asRegistryMetric(type: 'counter' | 'histogram'): unknown }>(name: string, type: 'counter' | 'histogram', make: () => M, reg: Registry): M {
  let m = made.get(name) as M | undefined;
  if (!m) made.set(name, (m = make()));
  if (!reg.getSingleMetric(name)) reg.registerMetric(m.asRegistryMetric(type) as Parameters<Registry['registerMetric']>[0]);
  return m;
}

export function fastCounter(cfg: { name: string; help: string; labelNames: readonly string[] }, reg: Registry = defaultRegistry): FastCounter {
  return getOrMake(cfg.name, 'counter', () => new FastCounter(cfg.name, cfg.help, cfg.labelNames), reg);
}

export function fastHistogram(cfg: { name: string; help: string; labelNames: readonly string[]; buckets: readonly number[] }, reg: Registry = defaultRegistry): FastHistogram {
  return getOrMake(cfg.name, 'histogram', () => new FastHistogram(cfg.name, cfg.help, cfg.labelNames, cfg.buckets), reg);
}
