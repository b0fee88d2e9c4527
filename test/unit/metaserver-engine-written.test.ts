// The lmdb engine in 'written' durability mode: the KvEngine contract, flush(), commit pacing, and
// the journal (record codec, replay after a crash, torn tails and gaps, mode switches).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LmdbEngine } from '../../src/metaserver/engines/lmdb';
import { decodeRecords, encodeRecord, Journal } from '../../src/metaserver/engines/lmdb-journal';
import { engineSuite } from '../helpers/metaserver-engine-suite';
import { tempDir } from '../helpers/metaserver';

const k = (s: string) => Buffer.from(s);
const written = (dir: string, commitIntervalMs = 20) => new LmdbEngine({ path: dir, durability: 'written', commitIntervalMs });

engineSuite("lmdb engine ('written' durability)", async () => {
  const dir = tempDir('kurve-engw-');
  let engine = written(dir);
  return {
    engine,
    reopen: async () => {
      await engine.close();
      engine = written(dir);
      return engine;
    },
    close: async () => {
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('lmdb journal records', () => {
  it('round-trips puts and deletes and stops at a torn or corrupt record', () => {
    const a = encodeRecord(7, [{ key: k('a'), value: k('1') }, { key: k('gone'), value: undefined }]);
    const b = encodeRecord(2 ** 40 + 3, [{ key: k('b'), value: Buffer.alloc(0) }]);
    expect(decodeRecords(Buffer.concat([a, b]))).toEqual([
      { rev: 7, writes: [{ key: k('a'), value: k('1') }, { key: k('gone'), value: undefined }] },
      { rev: 2 ** 40 + 3, writes: [{ key: k('b'), value: Buffer.alloc(0) }] },
    ]);
    expect(decodeRecords(Buffer.concat([a, b.subarray(0, b.length - 1)]))).toHaveLength(1);
    const bad = Buffer.from(b);
    bad[bad.length - 1] ^= 1;
    expect(decodeRecords(Buffer.concat([a, bad, a]))).toHaveLength(1);
    expect(decodeRecords(Buffer.alloc(64))).toEqual([]);
  });

  it('rotates between its two files and truncates only what lmdb covers', () => {
    const dir = tempDir('kurve-jrn-');
    const j = new Journal(dir);
    try {
      const size = (i: number) => fs.statSync(path.join(dir, `kurve-journal-${i}`)).size;
      const big = Buffer.alloc(3 * 1024 * 1024, 7);
      for (let rev = 1; rev <= 3; rev++) j.append(rev, [{ key: k(`k${rev}`), value: big }]);
      j.covered(1); // file 0 is past the rotation size but holds revs up to 3: switch files
      j.append(4, [{ key: k('k4'), value: k('small') }]);
      expect(size(0)).toBeGreaterThan(9 * 1024 * 1024);
      expect(size(1)).toBeGreaterThan(0);
      expect(j.replayable(1).map((r) => r.rev)).toEqual([2, 3, 4]);
      j.covered(3); // file 0 is covered now: truncated; file 1 (rev 4) is kept
      expect(size(0)).toBe(0);
      expect(j.replayable(3).map((r) => r.rev)).toEqual([4]);
      expect(j.replayable(0)).toEqual([]); // revs 1..3 are gone: nothing contiguous from 1
      j.append(5, [{ key: k('k5'), value: k('v') }]);
      expect(j.replayable(3).map((r) => r.rev)).toEqual([4, 5]);
    } finally {
      j.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("lmdb engine 'written' durability", () => {
  let dir: string;
  beforeEach(() => {
    dir = tempDir('kurve-engw-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('acknowledges before the paced commit; flush() commits at once', async () => {
    const e = written(dir, 60_000);
    try {
      await e.txn({ puts: [{ key: k('first'), value: k('1') }] }); // first commit is not paced
      await e.flush();
      const start = Date.now();
      for (let i = 0; i < 20; i++) await e.txn({ puts: [{ key: k(`k${i}`), value: k(String(i)) }] });
      expect(Date.now() - start).toBeLessThan(5000);
      expect(e.durableRevision()).toBeLessThan(await e.revision());
      expect((await e.get(k('k19')))!.value).toEqual(k('19')); // reads see acknowledged writes
      await e.flush();
      expect(Date.now() - start).toBeLessThan(10_000);
      expect(e.durableRevision()).toBe(await e.revision());
      await e.flush(); // nothing pending: immediate
    } finally {
      await e.close();
    }
  });

  it('paces lmdb commits to at most one per interval', async () => {
    const e = written(dir, 100);
    try {
      const commits: number[] = [];
      let last = 0;
      const end = Date.now() + 550;
      for (let i = 0; Date.now() < end; i++) {
        await e.txn({ puts: [{ key: k(`k${i}`), value: k('v') }] });
        if (e.durableRevision() !== last) commits.push((last = e.durableRevision()));
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(commits.length).toBeGreaterThanOrEqual(2); // commits keep happening without flush()
      expect(commits.length).toBeLessThanOrEqual(8); // ~6 in 550 ms, not one per txn
    } finally {
      await e.close();
    }
  });

  it('replays journal records after a crash, up to the first gap, with their revisions', async () => {
    const e = new LmdbEngine({ path: dir });
    await e.txn({ puts: [{ key: k('a'), value: k('1') }] }); // revision 1, synced
    await e.close();
    // What a killed 'written'-mode owner leaves: records 1 (already in lmdb), 2, 3, then 5 (gap).
    const j = new Journal(dir);
    j.append(1, [{ key: k('a'), value: k('1') }]);
    j.append(2, [{ key: k('b'), value: k('2') }, { key: k('a'), value: undefined }]);
    j.append(3, [{ key: k('c'), value: k('3') }]);
    j.append(5, [{ key: k('z'), value: k('5') }]);
    j.close();
    fs.appendFileSync(path.join(dir, 'kurve-journal-0'), Buffer.from([9, 9, 9])); // torn tail
    const r = new LmdbEngine({ path: dir });
    try {
      expect(await r.revision()).toBe(3);
      expect(await r.get(k('a'))).toBeUndefined();
      expect(await r.get(k('b'))).toEqual({ value: k('2'), modRevision: 2 });
      expect(await r.get(k('c'))).toEqual({ value: k('3'), modRevision: 3 });
      expect(await r.get(k('z'))).toBeUndefined();
      expect(Journal.exists(dir)).toBe(false); // 'sync' mode: replayed, then removed
      expect((await r.txn({ puts: [{ key: k('d'), value: k('4') }] })).revision).toBe(4);
    } finally {
      await r.close();
    }
  });

  it('switches between modes on the same data without losing anything', async () => {
    let e = new LmdbEngine({ path: dir });
    await e.txn({ puts: [{ key: k('s1'), value: k('1') }] });
    await e.close();
    e = written(dir);
    await e.txn({ puts: [{ key: k('w1'), value: k('2') }] });
    await e.close();
    e = new LmdbEngine({ path: dir });
    try {
      expect((await e.range({ prefix: Buffer.alloc(0) })).map((x) => x.key.toString())).toEqual(['s1', 'w1']);
    } finally {
      await e.close();
    }
  });

  it('rejects an unknown durability mode with a reason and releases the directory', async () => {
    expect(() => new LmdbEngine({ path: dir, durability: 'fast' as never })).toThrow("unknown durability 'fast'");
    const e = new LmdbEngine({ path: dir });
    await e.close();
  });
});
