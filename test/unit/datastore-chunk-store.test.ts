import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError } from '../../src/common/errno';
import { ChunkKey } from '../../src/datastore/api';
import { BLOCK_BYTES, checksums, crc32cCombine, HEADER_BYTES } from '../../src/datastore/chunk-format';
import { ChunkStore } from '../../src/datastore/chunk-store';
import { describeIf, whyNotRoot } from '../helpers/privileged';
import { execFileSync } from 'node:child_process';

const MiB = 1024 * 1024;

/** Where the store keeps an object (the layout is documented in chunk-store.ts). */
function objectFile(root: string, k: ChunkKey): string {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return path.join(root, 'objects', String(k.fsId), hex(k.ino % 256), hex(Math.floor(k.ino / 256) % 256), String(k.ino), `${k.index}.${k.version}`);
}
function findObject(root: string, k: ChunkKey): string {
  const f = objectFile(root, k);
  expect(fs.existsSync(f)).toBe(true);
  return f;
}

function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] ^= 0x40;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

async function errnoOf(p: Promise<unknown>): Promise<FsError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(FsError);
  return err as FsError;
}

describe('ChunkStore', () => {
  let dir: string;
  let store: ChunkStore;
  const key = (ino: number, index = 0, version = 1, fsId = 1): ChunkKey => ({ fsId, ino, index, version });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ds-'));
    store = await ChunkStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('stores and reads whole objects, including empty and multi-block ones', async () => {
    const big = randomBytes(4 * MiB + 123);
    await store.put(key(10), big);
    await store.put(key(11), Buffer.alloc(0));
    await store.put(key(12), Buffer.from('hello'));
    expect((await store.get(key(10))).equals(big)).toBe(true);
    expect((await store.get(key(11))).length).toBe(0);
    expect((await store.get(key(12))).toString()).toBe('hello');
  });

  it('serves ranged reads, clamping at the end of the object', async () => {
    const data = randomBytes(3 * BLOCK_BYTES + 17);
    await store.put(key(20), data);
    for (const [off, len] of [[0, 1], [1, 10], [BLOCK_BYTES - 5, 10], [BLOCK_BYTES, BLOCK_BYTES], [2 * BLOCK_BYTES + 3, 2 * BLOCK_BYTES]]) {
      expect((await store.get(key(20), off, len)).equals(data.subarray(off, off + len))).toBe(true);
    }
    expect((await store.get(key(20), 100)).equals(data.subarray(100))).toBe(true);
    expect((await store.get(key(20), data.length + 10, 5)).length).toBe(0);
    const r = await store.read(key(20), 5, 5);
    expect(r.objectLength).toBe(data.length);
  });

  it('answers ENOENT for absent objects and accepts deleting them', async () => {
    expect((await errnoOf(store.get(key(30)))).errno).toBe(Errno.ENOENT);
    await store.delete(key(30));
    expect(await store.deleteMany([key(30), key(31)])).toBe(0);
    expect(await store.deleteInode(1, 30)).toBe(0);
  });

  it('deletes one object, many, and every version of an inode, keeping stats right', async () => {
    for (let v = 1; v <= 3; v++) for (let i = 0; i < 2; i++) await store.put(key(40, i, v), randomBytes(1000));
    await store.put(key(41), randomBytes(2000));
    await store.put(key(42), randomBytes(3000));
    let st = await store.stats();
    expect(st.objects).toBe(8);
    expect(st.usedBytes).toBeGreaterThanOrEqual(6 * 1000 + 5000);
    expect(st.capacityBytes).toBeGreaterThan(0);
    expect(st.freeBytes).toBeGreaterThan(0);
    expect(st.freeBytes).toBeLessThanOrEqual(st.capacityBytes);

    await store.delete(key(42));
    expect(await store.deleteInode(1, 40)).toBe(6);
    expect((await errnoOf(store.get(key(40, 1, 2)))).errno).toBe(Errno.ENOENT);
    expect(await store.deleteMany([key(41), key(99)])).toBe(1);
    st = await store.stats();
    expect(st.objects).toBe(0);
    expect(st.usedBytes).toBe(0);
  });

  it('links an object under another key: same bytes, no copy, independent deletes; false for an absent source', async () => {
    const data = randomBytes(4 * MiB + 5);
    await store.put(key(60, 2, 7), data);
    expect(await store.linkObject(key(60, 2, 7), key(61, 0, 9), { deferSync: true })).toBe(true);
    expect((await store.get(key(61, 0, 9))).equals(data)).toBe(true);
    // One file, two names: the bytes are stored once.
    expect(fs.statSync(objectFile(dir, key(61, 0, 9))).ino).toBe(fs.statSync(objectFile(dir, key(60, 2, 7))).ino);
    expect((await store.stats()).objects).toBe(2);
    expect(await store.deleteInode(1, 60)).toBe(1);
    expect((await store.get(key(61, 0, 9))).equals(data)).toBe(true);
    expect(await store.linkObject(key(60, 2, 7), key(62, 0, 1))).toBe(false);
    expect((await errnoOf(store.get(key(62, 0, 1)))).errno).toBe(Errno.ENOENT);
    await store.flush();
    await store.delete(key(61, 0, 9));
    expect((await store.stats()).objects).toBe(0);
  });

  it('replaces an object put twice and counts it once', async () => {
    await store.put(key(50), Buffer.from('first'));
    await store.put(key(50), Buffer.from('second!'));
    expect((await store.get(key(50))).toString()).toBe('second!');
    expect((await store.stats()).objects).toBe(1);
  });

  it('recounts objects when reopened and removes leftover temp files', async () => {
    await store.put(key(60), randomBytes(5000));
    await store.put(key(61, 0, 1, 2), randomBytes(7000));
    fs.writeFileSync(path.join(dir, 'tmp', 'leftover.tmp'), 'x');
    const before = await store.stats();
    await store.close();
    store = await ChunkStore.open(dir);
    const after = await store.stats();
    expect(after.objects).toBe(2);
    expect(after.usedBytes).toBe(before.usedBytes);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('takes the counts a clean close left; after a crash (or a bad counts file) counts every object again', async () => {
    for (let ino = 70; ino < 90; ino++) await store.put(key(ino, ino % 3), randomBytes(100 + ino));
    const before = await store.stats();
    await store.close();
    expect(fs.existsSync(path.join(dir, 'counts.json'))).toBe(true);
    store = await ChunkStore.open(dir);
    expect(await store.stats()).toMatchObject({ objects: 20, usedBytes: before.usedBytes });
    // Taken once: an open that ends in a crash must not leave them for the next one.
    expect(fs.existsSync(path.join(dir, 'counts.json'))).toBe(false);
    await store.put(key(95), randomBytes(1000));
    const grown = await store.stats();
    // "Crash": no close, so no counts file (and a lock whose process is gone); the next open walks the objects.
    fs.rmSync(path.join(dir, 'kurve-store.pid'));
    store = await ChunkStore.open(dir);
    expect(await store.stats()).toMatchObject({ objects: 21, usedBytes: grown.usedBytes });
    await store.close();
    fs.writeFileSync(path.join(dir, 'counts.json'), '{"count": -1');
    store = await ChunkStore.open(dir);
    expect(await store.stats()).toMatchObject({ objects: 21, usedBytes: grown.usedBytes });
  });

  it('refuses a second live store on the same directory, before touching its temp files', async () => {
    fs.writeFileSync(path.join(dir, 'tmp', 'in-flight.tmp'), 'x');
    await expect(ChunkStore.open(dir)).rejects.toThrow(`in use by process ${process.pid}`);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual(['in-flight.tmp']);
    await store.close();
    store = await ChunkStore.open(dir);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
  });

  it('computes block CRCs and the whole CRC in one pass (combined), equal to a plain CRC32C', () => {
    for (const n of [0, 1, 100, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 3 * BLOCK_BYTES + 17, 4 * MiB]) {
      const d = randomBytes(n);
      const c = checksums(d);
      expect(c.dataCrc).toBe(crc32c(d));
      expect(c.blockCrcs.length).toBe(Math.ceil(n / BLOCK_BYTES));
      if (n > 0) expect(c.blockCrcs[0]).toBe(crc32c(d.subarray(0, Math.min(n, BLOCK_BYTES))));
    }
    const a = randomBytes(1000);
    for (const lenB of [0, 1, 777, BLOCK_BYTES, 5 * MiB + 3]) {
      const b = randomBytes(lenB);
      expect(crc32cCombine(crc32c(a), crc32c(b), b.length)).toBe(crc32c(Buffer.concat([a, b])));
    }
  });

  it('a deferSync put skips its fsyncs; flush() syncs every such object and its directories once', async () => {
    // Count fsyncs at the FileHandle level (observation only: the real fsync still runs).
    const probe = await fs.promises.open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const spy = jest.spyOn(proto, 'sync');
    try {
      await store.put(key(90), randomBytes(3000));
      const durablePut = spy.mock.calls.length;
      expect(durablePut).toBeGreaterThanOrEqual(2); // the object and its directory (and new parents)
      spy.mockClear();
      const data = randomBytes(BLOCK_BYTES + 5);
      await Promise.all([store.put(key(91, 0), data, undefined, { deferSync: true }), store.put(key(91, 1), data, undefined, { deferSync: true })]);
      expect(spy.mock.calls.length).toBe(0);
      expect((await store.get(key(91, 1))).equals(data)).toBe(true);
      // A deferred put still running when flush() starts is covered by it.
      const late = store.put(key(92), data, undefined, { deferSync: true });
      await store.flush();
      await late;
      // 3 objects + their directories (91's and 92's inode dirs and the new parents above them).
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(5);
      spy.mockClear();
      await store.flush();
      expect(spy.mock.calls.length).toBe(0);
      // A deferred object deleted before the flush is skipped, not an error.
      await store.put(key(93), data, undefined, { deferSync: true });
      await store.delete(key(93));
      await store.flush();
    } finally {
      spy.mockRestore();
    }
  });

  it('flush() of many deferred objects commits the file system once (syncfs) instead of an fsync each', async () => {
    const probe = await fs.promises.open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const spy = jest.spyOn(proto, 'sync');
    try {
      const datas = Array.from({ length: 40 }, (_, i) => randomBytes(500 + i));
      await Promise.all(datas.map((d, i) => store.put(key(200 + i), d, undefined, { deferSync: true })));
      await store.flush();
      expect(spy.mock.calls.length).toBe(0);
      for (let i = 0; i < datas.length; i++) expect((await store.get(key(200 + i))).equals(datas[i])).toBe(true);
      await store.flush(); // nothing left to sync
    } finally {
      spy.mockRestore();
    }
  });

  it('a flush() while another is running resolves only after the running one\'s objects are synced', async () => {
    const probe = await fs.promises.open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const original = proto.sync;
    let done = 0;
    // Slow each real fsync down (it still runs), to widen the window between two flushes.
    const spy = jest.spyOn(proto, 'sync').mockImplementation(async function (this: unknown) {
      await new Promise((r) => setTimeout(r, 30));
      await original.call(this);
      done++;
    });
    try {
      await store.put(key(96), randomBytes(100), undefined, { deferSync: true });
      const first = store.flush(); // takes the lists
      await new Promise((r) => setTimeout(r, 5));
      await store.flush(); // finds them empty: must wait for `first`
      expect(done).toBeGreaterThanOrEqual(2); // the object and its directory
      await first;
    } finally {
      spy.mockRestore();
    }
  });

  it('deferred objects are synced in the background after deferredSyncMs without a flush()', async () => {
    const bg = await ChunkStore.open(fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ds-bg-')), { deferredSyncMs: 50 });
    const probe = await fs.promises.open(dir, 'r');
    const proto = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
    await probe.close();
    const spy = jest.spyOn(proto, 'sync');
    try {
      await bg.put(key(95), randomBytes(100), undefined, { deferSync: true });
      expect(spy.mock.calls.length).toBe(0);
      const t0 = Date.now();
      while (spy.mock.calls.length < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      expect(spy.mock.calls.length).toBeGreaterThanOrEqual(2);
    } finally {
      spy.mockRestore();
      await bg.close();
      fs.rmSync(bg.dir, { recursive: true, force: true });
    }
  });

  it('refuses a write whose CRC32C does not match the data', async () => {
    const data = randomBytes(1000);
    await store.put(key(70), data, crc32c(data));
    const err = await errnoOf(store.put(key(71), data, crc32c(data) ^ 1));
    expect(err.errno).toBe(Errno.EIO);
    expect(err.message).toMatch(/checksum mismatch.*ino=71/);
    expect((await errnoOf(store.get(key(71)))).errno).toBe(Errno.ENOENT);
  });

  it.each([
    ['data', (size: number) => HEADER_BYTES + 4 * Math.ceil(size / BLOCK_BYTES) + size - 1],
    ['block table', () => HEADER_BYTES + 2],
    ['header', () => 9],
  ])('a byte flipped in the %s makes reads fail with EIO naming the key, never wrong bytes', async (_where, at) => {
    const data = randomBytes(2 * BLOCK_BYTES + 100);
    const k = key(80, 3, 7, 5);
    await store.put(k, data);
    flipByte(findObject(dir, k), at(data.length));
    const err = await errnoOf(store.get(k));
    expect(err.errno).toBe(Errno.EIO);
    expect(err.message).toContain('fs=5 ino=80 index=3 version=7');
    expect(err.message).toMatch(/checksum mismatch|inconsistent header|bad magic/);
  });

  it('a ranged read checks only the blocks it returns', async () => {
    const data = randomBytes(4 * BLOCK_BYTES);
    const k = key(81);
    await store.put(k, data);
    const file = findObject(dir, k);
    const dataStart = HEADER_BYTES + 4 * 4;
    flipByte(file, dataStart + 3 * BLOCK_BYTES + 10);
    expect((await store.get(k, 0, BLOCK_BYTES)).equals(data.subarray(0, BLOCK_BYTES))).toBe(true);
    expect((await errnoOf(store.get(k, 3 * BLOCK_BYTES - 1, 2))).message).toMatch(/checksum mismatch in block 3/);
  });

  it('notices truncated or extended object files', async () => {
    const k = key(82);
    await store.put(k, randomBytes(10_000));
    const file = findObject(dir, k);
    fs.truncateSync(file, fs.statSync(file).size - 1);
    expect((await errnoOf(store.get(k))).errno).toBe(Errno.EIO);
    fs.appendFileSync(file, 'xx');
    expect((await errnoOf(store.get(k))).errno).toBe(Errno.EIO);
  });

  it('rejects invalid keys, ranges and oversized objects with EINVAL and a reason', async () => {
    const bad = [{ ...key(1), ino: -1 }, { ...key(1), index: 1.5 }, { ...key(1), fsId: 2 ** 33 }, { ...key(1), version: NaN }];
    for (const k of bad) expect((await errnoOf(store.put(k, Buffer.from('x')))).message).toMatch(/invalid chunk key/);
    expect((await errnoOf(store.get(key(1), -1))).errno).toBe(Errno.EINVAL);
    expect((await errnoOf(store.get(key(1), 0, -2))).errno).toBe(Errno.EINVAL);
    const small = await ChunkStore.open(fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ds-small-')), { maxObjectBytes: 1000 });
    try {
      const err = await errnoOf(small.put(key(1), Buffer.alloc(1001)));
      expect(err.errno).toBe(Errno.EINVAL);
      expect(err.message).toMatch(/exceeds the limit/);
    } finally {
      fs.rmSync(small.dir, { recursive: true, force: true });
    }
  });

  it('keeps directories small: inodes fan out over two levels', async () => {
    for (let ino = 0; ino < 600; ino += 7) await store.put(key(ino), Buffer.from('x'));
    const top = fs.readdirSync(path.join(dir, 'objects', '1'));
    expect(top.length).toBeGreaterThan(50);
    expect(top.every((n) => /^[0-9a-f]{2}$/.test(n))).toBe(true);
  });

  it('concurrent puts and deletes of the same keys leave consistent counters', async () => {
    const ops: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      ops.push(store.put(key(90, i % 4), randomBytes(100 + i)));
      if (i % 3 === 0) ops.push(store.delete(key(90, (i + 1) % 4)));
    }
    await Promise.all(ops);
    const st = await store.stats();
    let files = 0;
    let bytes = 0;
    for (let i = 0; i < 4; i++) {
      const f = objectFile(dir, key(90, i));
      if (!fs.existsSync(f)) continue;
      files++;
      bytes += fs.statSync(f).size;
    }
    expect(st.objects).toBe(files);
    expect(st.usedBytes).toBe(bytes);
  });
});

describeIf([whyNotRoot()], 'ChunkStore on a full file system', () => {
  it('reports ENOSPC (with the key) when the disk is full, and keeps what it had', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ds-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'kurve-test', dir]);
    try {
      const store = await ChunkStore.open(dir);
      const k = (ino: number): ChunkKey => ({ fsId: 1, ino, index: 0, version: 1 });
      const keep = randomBytes(1024 * 1024);
      await store.put(k(1), keep);
      const err = await errnoOf(store.put(k(2), randomBytes(1536 * 1024)));
      expect(err.errno).toBe(Errno.ENOSPC);
      expect(err.message).toContain('writing chunk fs=1 ino=2');
      expect((await store.get(k(1))).equals(keep)).toBe(true);
      expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]); // the partial temp file is gone
      const st = await store.stats();
      expect(st.capacityBytes).toBe(2 * 1024 * 1024);
      expect(st.objects).toBe(1);
      await store.close();
      // Small deferred puts are written with synchronous calls: the same ENOSPC, no temp file left.
      const small = await ChunkStore.open(dir);
      await small.put(k(3), randomBytes(900 * 1024), undefined, { deferSync: true });
      const err2 = await errnoOf(small.put(k(4), randomBytes(200 * 1024), undefined, { deferSync: true }));
      expect(err2.errno).toBe(Errno.ENOSPC);
      expect(err2.message).toContain('writing chunk fs=1 ino=4');
      expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
      expect((await small.stats()).objects).toBe(2);
      expect((await errnoOf(small.get(k(4)))).errno).toBe(Errno.ENOENT);
      await small.close();
    } finally {
      execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
