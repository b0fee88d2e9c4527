// The chunk cache across restarts: a clean close writes an index of the parked inodes that the
// next ChunkCache of the same file system adopts (LRU order, size limit); another file system's
// or a corrupt index, or none (unclean stop), starts empty and removes the leftovers; one daemon
// per cache directory (flock).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { lockCacheDir } from '../../src/fuse/cache/cache-index';
import { ChunkCache } from '../../src/fuse/cache/chunk-cache';

const MiB = 1024 * 1024;
const FS = { fsId: 3, createdMs: 1_700_000_000_000, chunkSize: MiB };

describe('ChunkCache index across restarts', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-ci-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A cache holding inodes 10 (two chunks) and 11 (one chunk), parked, 11 the most recent. */
  const filled = (limitBytes = 64 * MiB): ChunkCache => {
    const c = new ChunkCache({ dir, limitBytes, fs: FS });
    for (const [ino, chunks] of [[10, 2], [11, 1]] as const) {
      const b = c.openBacking(ino);
      b.write(Buffer.alloc(chunks * MiB, ino), 0);
      for (let i = 0; i < chunks; i++) c.touch(ino, i, MiB);
      b.close(false);
      c.park(ino, new Map(Array.from({ length: chunks }, (_, i) => [i, 100 + i] as [number, number])), chunks * MiB);
    }
    return c;
  };

  it('a clean close keeps the parked inodes; the next cache adopts them with their versions', async () => {
    await filled().closeKeeping();
    const c = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(c.usedBytes).toBe(3 * MiB);
    const b = c.openBacking(10);
    expect(c.unpark(10, b)).toEqual(new Map([[0, 100], [1, 101]]));
    const got = Buffer.alloc(2 * MiB);
    expect(b.read(got, 0)).toBe(2 * MiB);
    expect(got.every((x) => x === 10)).toBe(true);
    b.close();
    // The index is consumed at start: a crash from now on leaves none.
    expect(fs.existsSync(path.join(c.root, 'index.json'))).toBe(false);
    c.close();
  });

  it('a smaller limit at the next start drops the least recently used inodes first', async () => {
    await filled().closeKeeping();
    const c = new ChunkCache({ dir, limitBytes: 1 * MiB, fs: FS });
    expect(c.usedBytes).toBe(MiB);
    expect(c.unpark(10, c.openBacking(10))).toBeUndefined();
    expect(fs.existsSync(path.join(c.root, '10'))).toBe(false);
    expect(c.unpark(11, c.openBacking(11))).toEqual(new Map([[0, 100]]));
    c.close();
  });

  it('a close without keep (unclean or failed shutdown) leaves nothing to adopt', () => {
    filled().close();
    const c = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(c.usedBytes).toBe(0);
    expect(fs.readdirSync(c.root)).toEqual(['.lock']);
    c.close();
  });

  it('an index of a recreated file system (same id, other createdMs) is ignored and the files removed', async () => {
    await filled().closeKeeping();
    const c = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: { ...FS, createdMs: FS.createdMs + 1 } });
    expect(c.usedBytes).toBe(0);
    expect(c.unpark(10, c.openBacking(10))).toBeUndefined();
    expect(fs.readdirSync(c.root)).toEqual(['.lock']);
    c.close();
  });

  it('a corrupt index is ignored safely', async () => {
    await filled().closeKeeping();
    const idx = path.join(dir, 'fs-3', 'index.json');
    fs.writeFileSync(idx, fs.readFileSync(idx, 'utf8').slice(0, 40));
    const c = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(c.usedBytes).toBe(0);
    expect(fs.readdirSync(c.root)).toEqual(['.lock']);
    c.close();
  });

  it('a backing file changed after the index was written is not adopted', async () => {
    await filled().closeKeeping();
    fs.appendFileSync(path.join(dir, 'fs-3', '11'), 'x');
    const c = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(c.usedBytes).toBe(2 * MiB);
    expect(c.unpark(11, c.openBacking(11))).toBeUndefined();
    c.close();
  });

  it('a second daemon of the file system takes the next slot while the first holds fs-<id>', () => {
    const a = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(a.root).toBe(path.join(dir, 'fs-3'));
    // Another process: flock is per open file, but the exclusion must hold across processes too.
    const lock = path.join(a.root, '.lock');
    expect(spawnSync('flock', ['-n', lock, 'true']).status).toBe(1);
    const second = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(second.root).toBe(path.join(dir, 'fs-3.2'));
    // The second slot excludes other processes too.
    const third = spawnSync('flock', ['-n', path.join(dir, 'fs-3.2', '.lock'), 'true']);
    expect(third.status).toBe(1);
    // Another file system may share the parent directory.
    const other = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: { ...FS, fsId: 4 } });
    expect(other.root).toBe(path.join(dir, 'fs-4'));
    other.close();
    second.close();
    a.close();
    const b = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(b.root).toBe(path.join(dir, 'fs-3'));
    b.close();
  });

  it('the lock refuses a second holder of one slot with the holder\'s pid', () => {
    const a = new ChunkCache({ dir, limitBytes: 64 * MiB, fs: FS });
    expect(() => lockCacheDir(a.root)).toThrow(/in use by another kurve client \(pid \d+\)/);
    a.close();
  });
});
