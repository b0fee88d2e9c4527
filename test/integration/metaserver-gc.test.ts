// Chunk garbage collection against a real datastore (ChunkStore in a temp dir): replaced chunks go
// after the grace period, orphans only after the last release, failures are retried; and fsck
// finds (and repairs) a store broken on purpose.
import * as fs from 'node:fs';
import { ChunkStore } from '../../src/datastore/chunk-store';
import type { ChunkKey, DataService } from '../../src/datastore/api';
import { ROOT_INO } from '../../src/metaserver/api';
import { fsck } from '../../src/metaserver/fsck';
import { dentryKey, inodeKey } from '../../src/metaserver/keys';
import { encodeDentry } from '../../src/metaserver/inode';
import { errOf } from '../helpers/metaserver-suite';
import { inProcessTarget, tempDir } from '../helpers/metaserver';

const C = { uid: 0, gid: 0 };
const exists = async (ds: DataService, key: ChunkKey) => (await errOf(ds.get(key))) === 'OK';

describe('metaserver chunk GC with a real datastore', () => {
  let dsDir: string;
  let store: ChunkStore;
  let failNext = 0;
  let ds: DataService;
  let t: Awaited<ReturnType<typeof inProcessTarget>>;

  beforeAll(async () => {
    dsDir = tempDir('kurve-gcds-');
    store = await ChunkStore.open(dsDir);
    // The real store, with a switch to make deletes fail (a datastore outage).
    ds = new Proxy(store, {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv);
        if ((prop === 'deleteMany' || prop === 'deleteInode') && typeof v === 'function') {
          return (...args: unknown[]) => {
            if (failNext > 0) {
              failNext--;
              return Promise.reject(new Error('datastore unavailable'));
            }
            return (v as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    t = await inProcessTarget({ datastore: ds, gcGraceMs: 60_000, runGc: false });
  });
  afterAll(async () => {
    await t?.close();
    await store?.close();
    fs.rmSync(dsDir, { recursive: true, force: true });
  });

  it('deletes a replaced chunk only after the grace period', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 2);
    const old = { fsId, ino: f.ino, index: 0, version: v };
    const cur = { fsId, ino: f.ino, index: 0, version: v + 1 };
    await store.put(old, Buffer.from('old'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 3 }], size: 3, touch: true });
    await store.put(cur, Buffer.from('new'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v + 1, length: 3 }], size: 3, touch: true });
    await t.ns.runGc();
    expect(await exists(ds, old)).toBe(true); // a reader may still be on it
    await t.ns.runGc(Date.now() + 61_000);
    expect(await exists(ds, old)).toBe(false);
    expect(await exists(ds, cur)).toBe(true);
  });

  it('keeps an open orphan\'s chunks until the last release, then deletes them', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 1);
    const key = { fsId, ino: f.ino, index: 0, version: v };
    await store.put(key, Buffer.from('data'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 4 }], size: 4, touch: true });
    await t.ns.openInode(fsId, f.ino, 'reader');
    await t.ns.unlink(fsId, ROOT_INO, Buffer.from('f'), C);
    await t.ns.runGc(Date.now() + 3_600_000);
    expect(await exists(ds, key)).toBe(true);
    expect((await t.ns.getDataMap(fsId, f.ino)).chunks).toHaveLength(1);
    await t.ns.releaseInode(fsId, f.ino, 'reader');
    await t.ns.runGc();
    expect(await exists(ds, key)).toBe(false);
    const report = await fsck(t.engine);
    expect(report.issues).toEqual([]);
  });

  it('an unlinked file nobody registered waits out the unlink grace, then goes with its objects', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 1);
    const key = { fsId, ino: f.ino, index: 0, version: v };
    await store.put(key, Buffer.from('data'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 4 }], size: 4, touch: true });
    await t.ns.unlink(fsId, ROOT_INO, Buffer.from('f'), C);
    await t.ns.runGc(Date.now() + 5_000);
    expect([(await t.ns.getattr(fsId, f.ino)).nlink, await exists(ds, key)]).toEqual([0, true]);
    expect((await fsck(t.engine)).issues).toEqual([]);
    await t.ns.runGc(Date.now() + 11_000);
    await t.ns.runGc(Date.now() + 11_000);
    expect([await errOf(t.ns.getattr(fsId, f.ino)), await exists(ds, key)]).toEqual(['ENOENT', false]);
    expect((await fsck(t.engine)).issues).toEqual([]);
  });

  it('a session that registers its open within the unlink grace keeps the file until its release', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 1);
    const key = { fsId, ino: f.ino, index: 0, version: v };
    await store.put(key, Buffer.from('data'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 4 }], size: 4, touch: true });
    // Another client unlinks it before this (lazily registering) client told the metaserver.
    await t.ns.unlink(fsId, ROOT_INO, Buffer.from('f'), C);
    await t.ns.openInode(fsId, f.ino, 'late');
    await t.ns.runGc(Date.now() + 11_000);
    await t.ns.runGc(Date.now() + 11_000);
    expect([(await t.ns.getattr(fsId, f.ino)).nlink, await exists(ds, key)]).toEqual([0, true]);
    expect((await t.ns.getDataMap(fsId, f.ino)).chunks).toHaveLength(1);
    await t.ns.releaseInode(fsId, f.ino, 'late');
    await t.ns.runGc();
    expect([await errOf(t.ns.getattr(fsId, f.ino)), await exists(ds, key)]).toEqual(['ENOENT', false]);
    expect((await fsck(t.engine)).issues).toEqual([]);
  });

  it('retries with backoff when the datastore fails', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 1);
    const key = { fsId, ino: f.ino, index: 0, version: v };
    await store.put(key, Buffer.from('data'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 4 }], size: 4, touch: true });
    await t.ns.unlink(fsId, ROOT_INO, Buffer.from('f'), C);
    await t.ns.runGc(Date.now() + 11_000); // the unlink grace ends: the purge is queued
    failNext = 1;
    expect(await t.ns.runGc()).toBe(0);
    expect(await exists(ds, key)).toBe(true);
    const queued = await t.ns.core.gc.items();
    const mine = queued.find((q) => q.item.fsId === fsId && q.item.ino === f.ino)!;
    expect(mine.item.attempts).toBe(1);
    expect(mine.due).toBeGreaterThan(Date.now());
    await t.ns.runGc(mine.due + 1);
    expect(await exists(ds, key)).toBe(false);
  });

  it('truncate queues the dropped chunks', async () => {
    const fsId = await t.newFs({ chunkSize: 4096 });
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 2);
    const k0 = { fsId, ino: f.ino, index: 0, version: v };
    const k1 = { fsId, ino: f.ino, index: 1, version: v + 1 };
    await store.put(k0, Buffer.alloc(4096));
    await store.put(k1, Buffer.alloc(10));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 4096 }, { index: 1, version: v + 1, length: 10 }], size: 4106, touch: true });
    await t.ns.setattr(fsId, f.ino, { size: 100 }, C);
    await t.ns.runGc(Date.now() + 61_000);
    expect(await exists(ds, k1)).toBe(false);
    expect(await exists(ds, k0)).toBe(true);
  });

  it('fsck finds dangling entries and wrong link counts, and repairs them', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    await t.ns.mkdir(fsId, ROOT_INO, Buffer.from('d'), 0o755, C);
    expect((await fsck(t.engine)).issues).toEqual([]);
    // Break it: a dentry to nowhere, and an nlink of 5 on a one-link file.
    await t.engine.txn({ puts: [{ key: dentryKey(fsId, ROOT_INO, Buffer.from('ghost')), value: encodeDentry({ ino: 999_999, type: 0o100000, cookie: 50 }) }] });
    const raw = (await t.engine.get(inodeKey(fsId, f.ino)))!.value;
    const bad = Buffer.from(raw);
    bad.writeUInt32BE(5, 4);
    await t.engine.txn({ puts: [{ key: inodeKey(fsId, f.ino), value: bad }] });
    const report = await fsck(t.engine);
    expect(report.issues.map((i) => i.kind).sort()).toEqual(['dangling-dentry', 'nlink']);
    const repaired = await fsck(t.engine, { repair: true });
    expect(repaired.issues.every((i) => i.repaired)).toBe(true);
    expect((await fsck(t.engine)).issues).toEqual([]);
    expect((await t.ns.getattr(fsId, f.ino)).nlink).toBe(1);
    expect(await errOf(t.ns.lookup(fsId, ROOT_INO, Buffer.from('ghost')))).toBe('ENOENT');
  });

  it('fsck finds a directory cycle detached from the root', async () => {
    const fsId = await t.newFs();
    const a = await t.ns.mkdir(fsId, ROOT_INO, Buffer.from('a'), 0o755, C);
    const b = await t.ns.mkdir(fsId, a.ino, Buffer.from('b'), 0o755, C);
    // Move a's entry from the root into b by hand: a and b now only reach each other.
    const d = (await t.engine.get(dentryKey(fsId, ROOT_INO, Buffer.from('a'))))!;
    await t.engine.txn({ deletes: [dentryKey(fsId, ROOT_INO, Buffer.from('a'))], puts: [{ key: dentryKey(fsId, b.ino, Buffer.from('a')), value: d.value }] });
    const kinds = (await fsck(t.engine)).issues.filter((i) => i.fsId === fsId).map((i) => i.kind);
    expect(kinds).toContain('detached');
    await t.engine.txn({ deletes: [dentryKey(fsId, b.ino, Buffer.from('a'))], puts: [{ key: dentryKey(fsId, ROOT_INO, Buffer.from('a')), value: d.value }] });
    expect((await fsck(t.engine)).issues).toEqual([]);
  });
});

describe('metaserver chunk GC loop under sustained replacement', () => {
  it('a backlog of more than one batch is deleted at once, not one batch per interval', async () => {
    // fsx rewriting a 16 MiB file from four processes replaced ~400 chunks/s; one batch (256) per
    // 1 s pass fell behind for good, and 42 GB of dead objects filled the disk.
    const dsDir = tempDir('kurve-gcds-');
    const store = await ChunkStore.open(dsDir);
    const t = await inProcessTarget({ datastore: store, gcGraceMs: 0, gcIntervalMs: 60_000 });
    try {
      const fsId = await t.newFs({ chunkSize: 4096 });
      const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
      const n = 700;
      const v = await t.ns.allocChunkVersions(fsId, 2 * n);
      const old = Array.from({ length: n }, (_, i) => ({ fsId, ino: f.ino, index: i, version: v + i }));
      for (const k of old) await store.put(k, Buffer.from('x'));
      await t.ns.commitData(fsId, f.ino, { chunks: old.map((k) => ({ index: k.index, version: k.version, length: 1 })), size: n * 4096, touch: true });
      // Replacing all of them queues n items due now; the commit wakes the loop.
      await t.ns.commitData(fsId, f.ino, { chunks: old.map((k) => ({ index: k.index, version: k.version + n, length: 0 })), size: n * 4096, touch: true });
      const t0 = Date.now();
      while ((await t.ns.core.gc.items()).length > 0 && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
      expect((await t.ns.core.gc.items()).length).toBe(0);
      expect(await exists(store, old[0])).toBe(false);
      expect(await exists(store, old[n - 1])).toBe(false);
    } finally {
      await t.close();
      await store.close();
      fs.rmSync(dsDir, { recursive: true, force: true });
    }
  }, 30_000);
});
