// Rates and percentiles from two successive scrapes, computed the way Prometheus does (counter
// resets, histogram_quantile's linear interpolation inside a bucket), for `kurve top`.
import type { Sample, Scrape } from './prom-text';

/** A cumulative histogram bucket: `count` observations were ≤ `le`. */
export interface Bucket {
  readonly le: number;
  readonly count: number;
}

const keyOf = (s: Sample, without: string[] = []): string =>
  Object.keys(s.labels).filter((k) => !without.includes(k)).sort().map((k) => `${k}=${s.labels[k]}`).join(',');

export function samplesOf(scrape: Scrape | undefined, name: string): Sample[] {
  return scrape ? scrape.samples.filter((s) => s.name === name) : [];
}

/** Increase of a counter; a value lower than before means the process restarted (reset to 0). */
export function counterIncrease(prev: number | undefined, cur: number): number {
  if (prev === undefined || cur < prev) return cur;
  return cur - prev;
}

/**
 * Per-second increase of counter `name` between two scrapes, summed by `label` (series that share
 * the label value but differ in others, e.g. errno, are added up). `label` undefined sums everything
 * under the key ''. A series absent from `prev` counts from zero only if `prev` is undefined.
 */
export function ratesBy(prev: Scrape | undefined, cur: Scrape, name: string, label: string | undefined, dtSeconds: number): Map<string, number> {
  const before = new Map(samplesOf(prev, name).map((s) => [keyOf(s), s.value]));
  const out = new Map<string, number>();
  for (const s of samplesOf(cur, name)) {
    const k = label ? (s.labels[label] ?? '') : '';
    const p = before.get(keyOf(s));
    const inc = prev && p === undefined ? s.value : counterIncrease(p, s.value);
    out.set(k, (out.get(k) ?? 0) + inc / dtSeconds);
  }
  return out;
}

/** Current gauge values summed by label (or in total under ''). */
export function gaugeBy(cur: Scrape, name: string, label?: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samplesOf(cur, name)) {
    const k = label ? (s.labels[label] ?? '') : '';
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

/**
 * Histogram bucket increases between two scrapes of family `name` (`name`_bucket series), grouped
 * by `label`, as cumulative buckets sorted by `le`.
 */
export function bucketIncreasesBy(prev: Scrape | undefined, cur: Scrape, name: string, label: string | undefined): Map<string, Bucket[]> {
  const series = `${name}_bucket`;
  const before = new Map(samplesOf(prev, series).map((s) => [keyOf(s), s.value]));
  const grouped = new Map<string, Map<number, number>>();
  for (const s of samplesOf(cur, series)) {
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    if (Number.isNaN(le)) continue;
    const k = label ? (s.labels[label] ?? '') : '';
    const p = before.get(keyOf(s));
    const inc = prev && p === undefined ? s.value : counterIncrease(p, s.value);
    const g = grouped.get(k) ?? new Map<number, number>();
    g.set(le, (g.get(le) ?? 0) + inc);
    grouped.set(k, g);
  }
  const out = new Map<string, Bucket[]>();
  for (const [k, g] of grouped) out.set(k, [...g].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le));
  return out;
}

/**
 * Prometheus's histogram_quantile: the rank q·total falls in the first bucket whose cumulative
 * count reaches it, interpolated linearly between that bucket's bounds (the lowest bucket starts at
 * 0). A rank in the +Inf bucket returns the highest finite bound. undefined when there is no data.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | undefined {
  if (q < 0 || q > 1 || !Number.isFinite(q)) throw new RangeError(`quantile must be in [0, 1], got ${q}`);
  if (!buckets.length || buckets[buckets.length - 1].le !== Infinity) return undefined;
  const total = buckets[buckets.length - 1].count;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let i = buckets.findIndex((b) => b.count >= rank);
  if (i < 0) i = buckets.length - 1;
  if (buckets[i].le === Infinity) return buckets.length > 1 ? buckets[buckets.length - 2].le : undefined;
  const start = i === 0 ? 0 : buckets[i - 1].le;
  const below = i === 0 ? 0 : buckets[i - 1].count;
  const inBucket = buckets[i].count - below;
  if (inBucket <= 0) return buckets[i].le;
  return start + (buckets[i].le - start) * ((rank - below) / inBucket);
}

/** Mean from a histogram's _sum and _count increases, by label. */
export function meansBy(prev: Scrape | undefined, cur: Scrape, name: string, label: string | undefined): Map<string, number> {
  const sums = ratesBy(prev, cur, `${name}_sum`, label, 1);
  const counts = ratesBy(prev, cur, `${name}_count`, label, 1);
  const out = new Map<string, number>();
  for (const [k, c] of counts) if (c > 0) out.set(k, (sums.get(k) ?? 0) / c);
  return out;
}
