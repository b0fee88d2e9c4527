// The benchmark harness: ratios, targets met or not, error isolation, the markdown table.
import { cell, evaluate, markdownTable, Unavailable } from '../../bench/harness';
import { median } from '../../bench/util';

describe('bench harness', () => {
  it('computes ratios against ext4 and the baseline and judges ratio targets', () => {
    const r = evaluate('stat-hot', {
      name: 'stat', unit: 'ops/s', higherIsBetter: true,
      ext4: { value: 1000 }, baseline: { value: 100 }, kurve: { value: 850 },
      target: { kind: 'ratio-ext4', bound: 'min', value: 0.8 },
    });
    expect(r.ratioExt4).toBeCloseTo(0.85);
    expect(r.ratioBaseline).toBeCloseTo(8.5);
    expect(r.met).toBe(true);
  });

  it('judges absolute and upper-bound targets', () => {
    const abs = evaluate('create', { name: 'c', unit: 'files/s', higherIsBetter: true, kurve: { value: 4999 }, target: { kind: 'absolute', bound: 'min', value: 5000 } });
    expect(abs.met).toBe(false);
    const ls = evaluate('ls-l', { name: 'ls', unit: 's', higherIsBetter: false, ext4: { value: 0.1 }, kurve: { value: 0.19 }, target: { kind: 'ratio-ext4', bound: 'max', value: 2 } });
    expect(ls.met).toBe(true);
    const ab = evaluate('trace', { name: 't', unit: 'ops/s', higherIsBetter: true, kurve: { value: 96 }, reference: { label: 'no BPF', cell: { value: 100 } }, target: { kind: 'ratio-reference', bound: 'min', value: 0.97 } });
    expect(ab.ratioReference).toBeCloseTo(0.96);
    expect(ab.met).toBe(false);
  });

  it('leaves met undefined when Kurve could not be measured', () => {
    const r = evaluate('x', { name: 'x', unit: 'ops/s', higherIsBetter: true, ext4: { value: 1 }, kurve: { unavailable: 'not built' }, target: { kind: 'ratio-ext4', bound: 'min', value: 0.8 } });
    expect(r.met).toBeUndefined();
    expect(r.ratioExt4).toBeUndefined();
  });

  it('turns throws into error or unavailable cells', async () => {
    expect(await cell(async () => 5)).toEqual({ value: 5 });
    expect(await cell(async () => { throw new Error('boom\nstack'); })).toEqual({ error: 'boom' });
    expect(await cell(async () => { throw new Unavailable('no netns'); })).toEqual({ unavailable: 'no netns' });
  });

  it('prints one table row per result, with notes as footnotes', () => {
    const rows = [
      evaluate('a', { name: 'stat | hot', unit: 'ops/s', higherIsBetter: true, ext4: { value: 800000 }, kurve: { value: 700000 }, target: { kind: 'ratio-ext4', bound: 'min', value: 0.8 }, notes: 'a note' }),
      evaluate('b', { name: 'create', unit: 'files/s', higherIsBetter: true, kurve: { error: 'EIO' }, target: { kind: 'absolute', bound: 'min', value: 5000 } }),
    ];
    const t = markdownTable(rows).split('\n');
    expect(t[0]).toMatch(/^\| benchmark \| unit \| ext4 \| fuse-native \| Kurve/);
    expect(t[2]).toContain('stat \\| hot [1]');
    expect(t[2]).toContain('800.0k');
    expect(t[2]).toContain('0.88×');
    expect(t[2]).toContain('| met |');
    expect(t[3]).toContain('error: EIO');
    expect(t[3]).toContain('| n/a |');
    expect(t).toContain('[1] a note');
  });

  it('median', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });
});
