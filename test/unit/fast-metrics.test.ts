// The hot-path counters and histograms must expose exactly what prom-client's would.
import * as prom from 'prom-client';
import { fastCounter, fastHistogram } from '../../src/common/fast-metrics';

const BUCKETS = [0.001, 0.01, 0.1, 1];

describe('fast metrics', () => {
  it('serialise like prom-client counters and histograms fed the same values', async () => {
    const fast = new prom.Registry();
    const ref = new prom.Registry();
    const fc = fastCounter({ name: 'test_fast_ops_total', help: 'ops', labelNames: ['op', 'result'] }, fast);
    const fh = fastHistogram({ name: 'test_fast_seconds', help: 'latency', labelNames: ['op'], buckets: BUCKETS }, fast);
    const pc = new prom.Counter({ name: 'test_fast_ops_total', help: 'ops', labelNames: ['op', 'result'], registers: [ref] });
    const ph = new prom.Histogram({ name: 'test_fast_seconds', help: 'latency', labelNames: ['op'], buckets: BUCKETS, registers: [ref] });
    const samples: [string, number][] = [['create', 0.0004], ['create', 0.02], ['lookup', 0.5], ['create', 3], ['lookup', 0.001]];
    const creates = fh.labels('create');
    for (const [op, v] of samples) {
      (op === 'create' ? creates : fh.labels(op)).observe(v);
      ph.labels(op).observe(v);
      fc.labels(op, 'ok').inc();
      pc.labels(op, 'ok').inc();
    }
    fc.labels('create', 'ENOENT').inc(2);
    pc.labels('create', 'ENOENT').inc(2);
    const sorted = async (r: prom.Registry): Promise<string[]> => (await r.metrics()).split('\n').filter(Boolean).sort();
    expect(await sorted(fast)).toEqual(await sorted(ref));
  });

  it('is one instance per name, and checks the number of label values', () => {
    const reg = new prom.Registry();
    const a = fastCounter({ name: 'test_fast_once_total', help: 'x', labelNames: ['a'] }, reg);
    expect(fastCounter({ name: 'test_fast_once_total', help: 'x', labelNames: ['a'] }, reg)).toBe(a);
    expect(() => a.labels('1', '2')).toThrow(/1 label values expected, got 2/);
  });
});
