// Chunk objects of 1 MiB or more are written with O_DIRECT (src/datastore/direct-write.ts): they
// round-trip whatever the alignment of header + data, stay out of the page cache (fincore counts
// the resident bytes), keep their CRC checks, and with directIo off go through the page cache.
// putFromFile (the in-process client's upload) builds them from a range of an open file.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Errno, FsError } from '../../src/common/errno';
import { ChunkKey } from '../../src/datastore/api';
import { BLOCK_BYTES, HEADER_BYTES } from '../../src/datastore/chunk-format';
import { ChunkStore } from '../../src/datastore/chunk-store';
import { describeIf, whyNoCommand } from '../helpers/privileged';

const MiB = 1024 * 1024;

/** Why O_DIRECT cannot be tested in the temp dir (tmpfs before Linux 6.6 refuses it). */
function whyNoDirect(): string | undefined {
  const probe = path.join(os.tmpdir(), `kurve-odirect-${process.pid}`);
  try {
    fs.closeSync(fs.openSync(probe, fs.constants.O_CREAT | fs.constants.O_WRONLY | fs.constants.O_DIRECT, 0o600));
    return undefined;
  } catch (err) {
    return `no O_DIRECT in ${os.tmpdir()} (${(err as NodeJS.ErrnoException).code})`;
  } finally {
    fs.rmSync(probe, { force: true });
  }
}

const objectFile = (root: string, k: ChunkKey): string => {
  const hex = (n: number) => n.toString(16).padStart(2, '0');
  return path.join(root, 'objects', String(k.fsId), hex(k.ino % 256), hex(Math.floor(k.ino / 256) % 256), String(k.ino), `${k.index}.${k.version}`);
};

/** Bytes of the file in the page cache. */
const residentBytes = (file: string): number =>
  Number(execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '-o', 'RES', file]).toString().trim());

/** Header + data of an object with `length` data bytes (chunk-format.ts). */
const objectBytes = (length: number): number => HEADER_BYTES + 4 * Math.ceil(length / BLOCK_BYTES) + length;

describeIf([whyNoCommand('fincore'), whyNoDirect()], 'ChunkStore: large objects past the page cache', () => {
  let dir: string;
  let store: ChunkStore;
  const key = (ino: number): ChunkKey => ({ fsId: 1, ino, index: 0, version: 1 });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ds-direct-'));
    store = await ChunkStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('objects of 1 MiB or more round-trip at every alignment and leave at most their last page cached', async () => {
    // 4 MiB - 288: header (288 bytes for 64 blocks) + data is exactly 4 MiB, no partial last page.
    const sizes = [MiB, MiB + 1, 2 * MiB + 12_345, 4 * MiB - 288, 4 * MiB];
    expect(objectBytes(4 * MiB - 288) % 4096).toBe(0);
    for (const [i, size] of sizes.entries()) {
      const data = randomBytes(size);
      await store.put(key(100 + i), data, undefined, { deferSync: i % 2 === 0 });
      const file = objectFile(dir, key(100 + i));
      expect(fs.statSync(file).size).toBe(objectBytes(size));
      expect(residentBytes(file)).toBeLessThanOrEqual(4096);
      expect((await store.get(key(100 + i))).equals(data)).toBe(true);
      expect((await store.get(key(100 + i), size - 10, 10)).equals(data.subarray(size - 10))).toBe(true);
    }
    await store.flush();
    expect((await store.stats()).objects).toBe(sizes.length);
  });

  it('smaller objects still go through the page cache', async () => {
    const data = randomBytes(MiB - 1);
    await store.put(key(200), data, undefined, { deferSync: true });
    expect(residentBytes(objectFile(dir, key(200)))).toBeGreaterThanOrEqual(data.length);
    expect((await store.get(key(200))).equals(data)).toBe(true);
  });

  it('concurrent large puts (more than the buffer pool holds) each store their own bytes', async () => {
    const datas = Array.from({ length: 12 }, () => randomBytes(4 * MiB));
    await Promise.all(datas.map((d, i) => store.put(key(300 + i), d, undefined, { deferSync: true })));
    for (const [i, d] of datas.entries()) expect((await store.get(key(300 + i))).equals(d)).toBe(true);
  });

  it('a direct-written object is still checked: a flipped data byte reads as EIO', async () => {
    const data = randomBytes(4 * MiB);
    await store.put(key(400), data);
    const file = objectFile(dir, key(400));
    const fd = fs.openSync(file, 'r+');
    const at = objectBytes(data.length) - data.length + 2 * MiB;
    fs.writeSync(fd, Buffer.from([data[2 * MiB] ^ 0x40]), 0, 1, at);
    fs.closeSync(fd);
    const err = await store.get(key(400)).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(FsError);
    expect((err as FsError).errno).toBe(Errno.EIO);
  });

  it('putFromFile stores a range of an open file (zeros past its end), read straight into the object buffer', async () => {
    const src = path.join(dir, 'source');
    const content = randomBytes(9 * MiB + 321);
    fs.writeFileSync(src, content);
    const fd = fs.openSync(src, 'r');
    try {
      const cases: Array<[number, number, number]> = [[600, 4 * MiB, 4 * MiB], [601, 8 * MiB, 300_000], [602, 8 * MiB + 12, 4 * MiB], [603, 20 * MiB, 2 * MiB]];
      const resident = new Map<number, number>();
      for (const [ino, offset, length] of cases) {
        await store.putFromFile(key(ino), fd, offset, length, { deferSync: ino % 2 === 0 });
        resident.set(ino, residentBytes(objectFile(dir, key(ino))));
        const want = Buffer.alloc(length);
        content.copy(want, 0, Math.min(offset, content.length), Math.min(offset + length, content.length));
        expect((await store.get(key(ino))).equals(want)).toBe(true);
        expect(fs.statSync(objectFile(dir, key(ino))).size).toBe(objectBytes(length));
      }
      // The 4 MiB object went past the page cache; the 300 kB one through it.
      expect(resident.get(600)).toBeLessThanOrEqual(4096);
      expect(resident.get(601)).toBeGreaterThanOrEqual(300_000);
      await store.flush();
      expect((await store.stats()).objects).toBe(cases.length);
      const bad = await store.putFromFile(key(604), fd, -1, 10).then(() => undefined, (e: unknown) => e);
      expect((bad as FsError).errno).toBe(Errno.EINVAL);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('with directIo off, large objects go through the page cache as before', async () => {
    const buffered = await ChunkStore.open(fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ds-buffered-')), { directIo: false });
    try {
      const data = randomBytes(4 * MiB);
      await buffered.put(key(500), data, undefined, { deferSync: true });
      expect(residentBytes(objectFile(buffered.dir, key(500)))).toBeGreaterThanOrEqual(data.length);
      expect((await buffered.get(key(500))).equals(data)).toBe(true);
    } finally {
      await buffered.close();
      fs.rmSync(buffered.dir, { recursive: true, force: true });
    }
  });
});
