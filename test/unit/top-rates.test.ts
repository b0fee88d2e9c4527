// kurve top: Prometheus text parsing, counter rates across resets, histogram_quantile, frames.
import { parsePrometheusText, ParseError, familyOf } from '../../src/top/prom-text';
import { bucketIncreasesBy, counterIncrease, histogramQuantile, meansBy, ratesBy } from '../../src/top/rates';
import { computeFrame } from '../../src/top/frame';
import { fmtBytes, fmtSeconds, renderFrame } from '../../src/top/render';

const text = (ops: number, getattrBuckets: number[], errors = 0): string => `
# HELP kurve_fuse_requests_total FUSE requests handled by the daemon
# TYPE kurve_fuse_requests_total counter
kurve_fuse_requests_total{op="GETATTR"} ${ops}
kurve_fuse_requests_total{op="LOOKUP"} 10
# TYPE kurve_fuse_errors_total counter
kurve_fuse_errors_total{op="LOOKUP",errno="ENOENT"} ${errors}
kurve_fuse_errors_total{op="LOOKUP",errno="EACCES"} ${errors}
# TYPE kurve_fuse_request_duration_seconds histogram
kurve_fuse_request_duration_seconds_bucket{le="0.0001",op="GETATTR"} ${getattrBuckets[0]}
kurve_fuse_request_duration_seconds_bucket{le="0.001",op="GETATTR"} ${getattrBuckets[1]}
kurve_fuse_request_duration_seconds_bucket{le="+Inf",op="GETATTR"} ${getattrBuckets[2]}
kurve_fuse_request_duration_seconds_sum{op="GETATTR"} ${getattrBuckets[2] * 0.0002}
kurve_fuse_request_duration_seconds_count{op="GETATTR"} ${getattrBuckets[2]}
# TYPE kurve_client_cache_hits_total counter
kurve_client_cache_hits_total ${ops / 10}
# TYPE kurve_client_cache_misses_total counter
kurve_client_cache_misses_total ${ops / 40}
# TYPE kurve_client_opens_total counter
kurve_client_opens_total{mode="passthrough"} ${ops / 100}
kurve_client_opens_total{mode="daemon"} ${ops / 300}
# TYPE kurve_client_read_bytes_total counter
kurve_client_read_bytes_total ${ops * 4096}
# TYPE kurve_client_open_handles gauge
kurve_client_open_handles 3
`;

describe('parsePrometheusText', () => {
  it('reads types, help, labels with escapes, special values and timestamps', () => {
    const s = parsePrometheusText([
      '# HELP a_total Line one\\nline two',
      '# TYPE a_total counter',
      'a_total{path="x\\"y\\\\z\\n",b="2"} 3 1700000000000',
      'b NaN', 'c +Inf', 'd -Inf', 'e 1.5e-3', 'f{} 7',
    ].join('\n'));
    expect(s.types.get('a_total')).toBe('counter');
    expect(s.help.get('a_total')).toBe('Line one\nline two');
    expect(s.samples[0]).toEqual({ name: 'a_total', labels: { path: 'x"y\\z\n', b: '2' }, value: 3 });
    expect(Number.isNaN(s.samples[1].value)).toBe(true);
    expect(s.samples.slice(2).map((x) => x.value)).toEqual([Infinity, -Infinity, 0.0015, 7]);
    // prom-client writes NaN as "Nan"; Prometheus reads special values case-insensitively.
    const p = parsePrometheusText('g Nan\nh nan\ni +inf\nj -INF');
    expect(Number.isNaN(p.samples[0].value) && Number.isNaN(p.samples[1].value)).toBe(true);
    expect(p.samples.slice(2).map((x) => x.value)).toEqual([Infinity, -Infinity]);
  });

  it('rejects malformed lines with the line number', () => {
    expect(() => parsePrometheusText('ok 1\n{x="1"} 2')).toThrow(ParseError);
    expect(() => parsePrometheusText('ok 1\nbad{x="1"} notanumber')).toThrow(/line 2: bad value "notanumber"/);
    expect(() => parsePrometheusText('bad{x="1} 2')).toThrow(/unterminated label value/);
    expect(() => parsePrometheusText('bad{x=1} 2')).toThrow(/expected =/);
  });

  it('parses what prom-client exposes', async () => {
    const prom = await import('prom-client');
    const reg = new prom.Registry();
    const h = new prom.Histogram({ name: 'x_seconds', help: 'h', labelNames: ['op'], buckets: [0.1, 1], registers: [reg] });
    h.observe({ op: 'READ' }, 0.05);
    h.observe({ op: 'READ' }, 0.5);
    const s = parsePrometheusText(await reg.metrics());
    expect(s.types.get('x_seconds')).toBe('histogram');
    expect(familyOf('x_seconds_bucket', s.types)).toBe('x_seconds');
    const b = bucketIncreasesBy(undefined, s, 'x_seconds', 'op').get('READ');
    expect(b).toEqual([{ le: 0.1, count: 1 }, { le: 1, count: 2 }, { le: Infinity, count: 2 }]);
  });
});

describe('rates', () => {
  it('treats a decrease as a counter reset', () => {
    expect(counterIncrease(10, 15)).toBe(5);
    expect(counterIncrease(10, 3)).toBe(3);
    expect(counterIncrease(undefined, 4)).toBe(4);
  });

  it('computes per-label rates, summing series that differ in other labels', () => {
    const a = parsePrometheusText(text(1000, [0, 0, 0], 1));
    const b = parsePrometheusText(text(3000, [0, 0, 0], 4));
    const r = ratesBy(a, b, 'kurve_fuse_requests_total', 'op', 2);
    expect(r.get('GETATTR')).toBe(1000);
    expect(r.get('LOOKUP')).toBe(0);
    expect(ratesBy(a, b, 'kurve_fuse_errors_total', 'op', 2).get('LOOKUP')).toBe(3);
  });

  it('counts a series that appeared between scrapes from zero', () => {
    const a = parsePrometheusText('x_total{op="A"} 5');
    const b = parsePrometheusText('x_total{op="A"} 6\nx_total{op="B"} 4');
    expect(Object.fromEntries(ratesBy(a, b, 'x_total', 'op', 1))).toEqual({ A: 1, B: 4 });
  });

  it('histogramQuantile interpolates like Prometheus', () => {
    const b = [{ le: 1, count: 10 }, { le: 2, count: 20 }, { le: 4, count: 40 }, { le: Infinity, count: 40 }];
    expect(histogramQuantile(0.5, b)).toBeCloseTo(2); // rank 20 of 40 reaches exactly the top of (1, 2]
    expect(histogramQuantile(0.25, b)).toBeCloseTo(1);
    expect(histogramQuantile(0.125, b)).toBeCloseTo(0.5);
    expect(histogramQuantile(0.75, b)).toBeCloseTo(3);
    expect(histogramQuantile(1, b)).toBeCloseTo(4);
  });

  it('histogramQuantile: +Inf bucket, empty and invalid input', () => {
    expect(histogramQuantile(0.99, [{ le: 1, count: 1 }, { le: Infinity, count: 10 }])).toBe(1);
    expect(histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }])).toBeUndefined();
    expect(histogramQuantile(0.5, [])).toBeUndefined();
    expect(histogramQuantile(0.5, [{ le: 1, count: 3 }])).toBeUndefined();
    expect(() => histogramQuantile(1.5, [])).toThrow(RangeError);
  });

  it('means from _sum/_count increases', () => {
    const a = parsePrometheusText(text(0, [0, 0, 100]));
    const b = parsePrometheusText(text(0, [0, 0, 300]));
    expect(meansBy(a, b, 'kurve_fuse_request_duration_seconds', 'op').get('GETATTR')).toBeCloseTo(0.0002);
  });
});

describe('computeFrame / renderFrame', () => {
  const a = parsePrometheusText(text(1000, [100, 900, 1000]));
  const b = parsePrometheusText(text(2000, [600, 1900, 2000], 2));
  const f = computeFrame(a, b, 1);

  it('ops/s, percentiles from the interval\'s buckets, caches and throughput', () => {
    const getattr = f.user.find((r) => r.op === 'GETATTR');
    expect(getattr?.opsPerSec).toBe(1000);
    // interval: 500 ≤ 100 µs, 500 in (100 µs, 1 ms]: p50 = 100 µs, p99 = 100 µs + 0.98 × 900 µs
    expect(getattr?.p50).toBeCloseTo(1e-4);
    expect(getattr?.p99).toBeCloseTo(1e-4 + 0.98 * 9e-4);
    expect(f.errorsPerSec).toBe(4);
    expect(f.cacheHitRatio).toBeCloseTo(100 / 125);
    expect(f.passthroughShare).toBeCloseTo(0.75);
    expect(f.readBytesPerSec).toBe(1000 * 4096);
    expect(f.openHandles).toBe(3);
    expect(f.kernel).toBeUndefined();
    expect(f.cacheHitRatio).toBeDefined();
  });

  it('renders a frame that names the source and every active opcode', () => {
    const out = renderFrame(f, '127.0.0.1:9567', new Date('2026-01-01T10:00:00Z'));
    expect(out).toContain('127.0.0.1:9567');
    expect(out).toMatch(/GETATTR\s+1000\s+100µs\s+982µs\s+0\.0/);
    expect(out).toMatch(/LOOKUP\s+0\.0\s+–\s+–\s+4\.0/);
    expect(out).toContain('chunk-cache hits 80.0%');
    expect(out).toContain('not available (no fuse_trace metrics');
    expect(out).toContain('read 3.9 MiB/s');
  });

  it('formats units', () => {
    expect(fmtSeconds(2.5e-5)).toBe('25.0µs');
    expect(fmtSeconds(0.0123)).toBe('12.3ms');
    expect(fmtSeconds(undefined)).toBe('–');
    expect(fmtBytes(1536)).toBe('1.5 KiB');
    expect(fmtBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });
});
