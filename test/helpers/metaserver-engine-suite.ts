// The KvEngine contract (src/metaserver/engine.ts) as a reusable suite: any engine (lmdb, etcd)
// must pass it. The factory returns a fresh, empty engine plus a way to reopen it on the same data.
import type { KvEngine } from '../../src/metaserver/engine';

export interface EngineTarget {
  readonly engine: KvEngine;
  /** Closes and reopens on the same data (durability across restarts). */
  reopen(): Promise<KvEngine>;
  close(): Promise<void>;
}

const k = (s: string) => Buffer.from(s);

export function engineSuite(title: string, factory: () => Promise<EngineTarget>): void {
  describe(title, () => {
    let t: EngineTarget;
    let e: KvEngine;
    beforeEach(async () => {
      t = await factory();
      e = t.engine;
    });
    afterEach(async () => {
      await t.close();
    });

    it('get of a missing key is undefined; a put gets a revision above the store revision', async () => {
      expect(await e.get(k('a'))).toBeUndefined();
      const before = await e.revision();
      const r = await e.txn({ puts: [{ key: k('a'), value: k('1') }] });
      expect(r.succeeded).toBe(true);
      expect(r.revision).toBeGreaterThan(before);
      expect(await e.get(k('a'))).toEqual({ value: k('1'), modRevision: r.revision });
      expect(await e.revision()).toBe(r.revision);
    });
    it('revisions strictly increase; all keys of one txn share it', async () => {
      const r1 = await e.txn({ puts: [{ key: k('a'), value: k('1') }, { key: k('b'), value: k('2') }] });
      const r2 = await e.txn({ puts: [{ key: k('a'), value: k('3') }] });
      expect(r2.revision).toBeGreaterThan(r1.revision);
      expect((await e.get(k('b')))!.modRevision).toBe(r1.revision);
      expect((await e.get(k('a')))!.modRevision).toBe(r2.revision);
    });
    it('modRevision compares: 0 = must not exist, otherwise equal', async () => {
      expect((await e.txn({ compares: [{ key: k('a'), modRevision: 0 }], puts: [{ key: k('a'), value: k('1') }] })).succeeded).toBe(true);
      expect((await e.txn({ compares: [{ key: k('a'), modRevision: 0 }], puts: [{ key: k('a'), value: k('2') }] })).succeeded).toBe(false);
      const cur = (await e.get(k('a')))!;
      expect((await e.txn({ compares: [{ key: k('a'), modRevision: cur.modRevision + 1 }], puts: [{ key: k('a'), value: k('x') }] })).succeeded).toBe(false);
      expect((await e.txn({ compares: [{ key: k('a'), modRevision: cur.modRevision }], puts: [{ key: k('a'), value: k('3') }] })).succeeded).toBe(true);
      expect((await e.get(k('a')))!.value).toEqual(k('3'));
    });
    it('value compares', async () => {
      await e.txn({ puts: [{ key: k('a'), value: k('1') }] });
      expect((await e.txn({ compares: [{ key: k('a'), value: k('2') }], deletes: [k('a')] })).succeeded).toBe(false);
      expect((await e.txn({ compares: [{ key: k('a'), value: k('1') }], deletes: [k('a')] })).succeeded).toBe(true);
      expect(await e.get(k('a'))).toBeUndefined();
      expect((await e.txn({ compares: [{ key: k('a'), value: undefined }], puts: [{ key: k('z'), value: k('') }] })).succeeded).toBe(true);
    });
    it('a failed txn writes nothing (all or nothing)', async () => {
      await e.txn({ puts: [{ key: k('a'), value: k('1') }] });
      const r = await e.txn({ compares: [{ key: k('a'), modRevision: 0 }], puts: [{ key: k('b'), value: k('2') }], deletes: [k('a')] });
      expect(r.succeeded).toBe(false);
      expect(await e.get(k('b'))).toBeUndefined();
      expect(await e.get(k('a'))).toBeDefined();
    });
    it('a deleted and re-put key gets a fresh revision; deleting an absent key is fine', async () => {
      const r1 = await e.txn({ puts: [{ key: k('a'), value: k('1') }] });
      await e.txn({ deletes: [k('a'), k('never')] });
      const r3 = await e.txn({ puts: [{ key: k('a'), value: k('1') }] });
      expect(r3.revision).toBeGreaterThan(r1.revision);
      expect((await e.get(k('a')))!.modRevision).toBe(r3.revision);
    });
    it('ranges: prefix, start/end, limit, byte order, binary keys', async () => {
      const keys = [k('p/a'), k('p/b'), Buffer.from([0x70, 0x2f, 0xff]), k('p0'), k('q')];
      await e.txn({ puts: keys.map((key, i) => ({ key, value: Buffer.from([i]) })) });
      expect((await e.range({ prefix: k('p/') })).map((x) => x.key)).toEqual([k('p/a'), k('p/b'), Buffer.from([0x70, 0x2f, 0xff])]);
      expect((await e.range({ prefix: k('p/'), limit: 2 })).map((x) => x.key.toString())).toEqual(['p/a', 'p/b']);
      expect((await e.range({ start: k('p/b'), end: k('q') })).map((x) => x.key)).toEqual([k('p/b'), Buffer.from([0x70, 0x2f, 0xff]), k('p0')]);
      expect((await e.range({ start: k('p0') })).map((x) => x.key.toString())).toEqual(['p0', 'q']);
      const one = (await e.range({ prefix: k('q') }))[0];
      expect(one.value).toEqual(Buffer.from([4]));
      expect(one.modRevision).toBeGreaterThan(0);
    });
    it('ranges see writes of the txn just acknowledged, deletes included', async () => {
      await e.txn({ puts: [{ key: k('r/1'), value: k('') }, { key: k('r/2'), value: k('') }] });
      await e.txn({ deletes: [k('r/1')], puts: [{ key: k('r/3'), value: k('') }] });
      expect((await e.range({ prefix: k('r/') })).map((x) => x.key.toString())).toEqual(['r/2', 'r/3']);
    });
    it('concurrent conflicting txns: exactly one wins', async () => {
      const res = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        e.txn({ compares: [{ key: k('lock'), modRevision: 0 }], puts: [{ key: k('lock'), value: Buffer.from([i]) }] })));
      expect(res.filter((r) => r.succeeded)).toHaveLength(1);
    });
    it('acknowledged writes and the revision survive a reopen', async () => {
      const r = await e.txn({ puts: [{ key: k('durable'), value: k('yes') }] });
      e = await t.reopen();
      expect(await e.get(k('durable'))).toEqual({ value: k('yes'), modRevision: r.revision });
      expect(await e.revision()).toBeGreaterThanOrEqual(r.revision);
      const r2 = await e.txn({ puts: [{ key: k('after'), value: k('') }] });
      expect(r2.revision).toBeGreaterThan(r.revision);
    });
  });
}
