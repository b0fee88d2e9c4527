// The chunk cache's LRU accounting and eviction, and BackingFile's zero-hole invariant.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ChunkCache, type Evictor } from '../../src/fuse/cache/chunk-cache';

const MiB = 1024 * 1024;
const FS = { fsId: 7, createdMs: 1_700_000_000_000, chunkSize: MiB };

describe('ChunkCache', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-cc-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const recorder = (pinned = new Set<string>()): Evictor & { evicted: string[] } => {
    const evicted: string[] = [];
    return {
      evicted,
      canEvict: (ino, index) => !pinned.has(`${ino}:${index}`),
      evict: (ino, index) => evicted.push(`${ino}:${index}`),
    };
  };

  it('fetches under way hold their room: concurrent ones (readahead) do not overshoot the limit', () => {
    const c = new ChunkCache({ dir, limitBytes: 3 * MiB, fs: FS });
    const ev = recorder();
    c.setEvictor(ev);
    c.touch(1, 0, MiB);
    c.touch(1, 1, MiB);
    c.touch(1, 2, MiB);
    const r1 = c.reserve(MiB);
    const r2 = c.reserve(MiB);
    expect(ev.evicted).toEqual(['1:0', '1:1']);
    // The fetched chunks arrive and are counted; their reservations end.
    c.touch(2, 0, MiB);
    r1();
    c.touch(2, 1, MiB);
    r2();
    r2(); // a second release is a no-op
    expect(c.usedBytes).toBe(3 * MiB);
    c.makeRoom(0);
    expect(ev.evicted).toEqual(['1:0', '1:1']);
    c.close();
  });

  it('accounts bytes and evicts least recently used chunks past the limit', () => {
    const c = new ChunkCache({ dir, limitBytes: 3 * MiB, fs: FS });
    const ev = recorder();
    c.setEvictor(ev);
    c.touch(1, 0, MiB);
    c.touch(1, 1, MiB);
    c.touch(2, 0, MiB);
    c.hit(1, 0); // 1:0 is now the youngest
    expect(c.usedBytes).toBe(3 * MiB);
    c.makeRoom(MiB);
    expect(ev.evicted).toEqual(['1:1']);
    expect(c.usedBytes).toBe(2 * MiB);
    c.close();
  });

  it('skips pinned chunks (dirty or in passthrough) and evicts the next ones', () => {
    const c = new ChunkCache({ dir, limitBytes: 2 * MiB, fs: FS });
    const ev = recorder(new Set(['1:0']));
    c.setEvictor(ev);
    c.touch(1, 0, MiB);
    c.touch(1, 1, MiB);
    c.makeRoom(MiB);
    expect(ev.evicted).toEqual(['1:1']);
    c.makeRoom(2 * MiB); // only the pinned one left: stays over the limit rather than dropping it
    expect(ev.evicted).toEqual(['1:1']);
    expect(c.usedBytes).toBe(MiB);
    c.close();
  });

  it('re-touching a chunk replaces its size; forget drops it', () => {
    const c = new ChunkCache({ dir, limitBytes: 100 * MiB, fs: FS });
    c.touch(5, 0, 4 * MiB);
    c.touch(5, 0, 1000);
    expect(c.usedBytes).toBe(1000);
    c.forget(5, 0);
    c.forget(5, 0);
    expect(c.usedBytes).toBe(0);
    c.close();
  });

  it('each file system gets its own directory; a dead older client\'s directory is removed at start', () => {
    fs.mkdirSync(path.join(dir, 'client-999999999-abc'));
    const c = new ChunkCache({ dir, limitBytes: MiB * 16, fs: FS });
    expect(fs.existsSync(path.join(dir, 'client-999999999-abc'))).toBe(false);
    expect(c.root).toBe(path.join(dir, 'fs-7'));
    c.openBacking(3).write(Buffer.from('x'), 0);
    c.close();
    expect(fs.readdirSync(c.root)).toEqual(['.lock']);
  });

  it('backing files: punched ranges read as zeros, size is kept', () => {
    const c = new ChunkCache({ dir, limitBytes: MiB * 16, fs: FS });
    const b = c.openBacking(42);
    b.write(Buffer.alloc(3 * 65536, 0x61), 0);
    b.zero(65536, 65536);
    const got = Buffer.alloc(3 * 65536);
    expect(b.read(got, 0)).toBe(3 * 65536);
    expect(got.subarray(0, 65536).every((x) => x === 0x61)).toBe(true);
    expect(got.subarray(65536, 131072).every((x) => x === 0)).toBe(true);
    expect(got.subarray(131072).every((x) => x === 0x61)).toBe(true);
    expect(b.stat().size).toBe(3 * 65536);
    b.truncate(10);
    expect(b.size).toBe(10);
    b.close();
    expect(fs.existsSync(b.path)).toBe(false);
    c.close();
  });
});
