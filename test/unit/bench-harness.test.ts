// The benchmark harness: ratios, targets met or not, error isolation, the markdown table.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runJob } from '../../bench/driver';
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

describe('bench driver', () => {
  // Runs the driver's jobs in this process against a temp dir on the host file system.
  let dir = '';
  beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-driver-')); });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes, reads back and stats', () => {
    const file = path.join(dir, 'data');
    const w = runJob({ op: 'write', file, size: 3 * 65536 + 100, blockSize: 65536, fsync: true });
    expect(w).toMatchObject({ bytes: 3 * 65536 + 100, ops: 4 });
    expect(fs.statSync(file).size).toBe(3 * 65536 + 100);
    const r = runJob({ op: 'read', file, blockSize: 65536, warm: true });
    expect(r).toMatchObject({ bytes: 3 * 65536 + 100, ops: 4 });
    const s = runJob({ op: 'stat', file, seconds: 0.05 });
    expect(s.ops).toBeGreaterThan(0);
    expect(s.seconds).toBeGreaterThanOrEqual(0.05);
  });

  it('creates files exclusively and stops at maxSeconds', () => {
    const c = runJob({ op: 'create', dir, count: 100, prefix: 'c' });
    expect(c.ops).toBe(100);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('c'))).toHaveLength(100);
    expect(() => runJob({ op: 'create', dir, count: 1, prefix: 'c' })).toThrow(/EEXIST/);
    const bounded = runJob({ op: 'create', dir, count: 1_000_000, prefix: 'b', maxSeconds: 0 });
    expect(bounded.ops).toBe(64);
  });
});
