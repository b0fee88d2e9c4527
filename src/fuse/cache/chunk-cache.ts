// The client's local chunk cache: a directory of per-inode sparse backing files, and an LRU over
// the chunks they hold, bounded by a byte limit. The cache knows sizes and recency; which chunks an
// inode holds (and whether they may be dropped) is the inode's business, asked through Evictor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { moduleLogger } from '../../common/logger';
import { syncFileSystem } from '../../common/syncfs';
import { cacheEvictions, cacheLimitBytes, cacheUsedBytes } from '../client-metrics';
import { BackingFile } from './backing-file';
import {
  backingMatches, backingMtime, CacheDirInUse, type CacheIdentity, type CacheIndex, type IndexedInode, lockCacheDir, removeLeftovers,
  takeIndex, writeIndex,
} from './cache-index';

const log = moduleLogger('chunk-cache');
/** Parked inodes kept at most (see park()); beyond this the oldest go. */
const MAX_PARKED_INODES = 262_144;
/** Daemons of one file system that may share a cache directory (each in its own slot). */
const MAX_SLOTS = 16;

/** Who owns cached chunks: asked before a chunk is dropped, told when it was. */
export interface Evictor {
  /** False while the chunk must stay (dirty, or the inode is open in passthrough mode). */
  canEvict(ino: number, index: number): boolean;
  /** Drop the chunk: zero it in the backing file and forget it. */
  evict(ino: number, index: number): void;
}

export interface ChunkCacheOptions {
  /**
   * Parent directory; each file system gets its own subdirectory (fs-<id>), locked by one daemon
   * at a time, kept across clean restarts (cache-index.ts). A second daemon of the same file
   * system (two mounts of it on one host) takes the next free slot, fs-<id>.2 and so on.
   */
  readonly dir: string;
  readonly limitBytes: number;
  readonly fs: CacheIdentity;
}

export class ChunkCache {
  readonly root: string;
  private readonly lru = new Map<string, { ino: number; index: number; bytes: number }>();
  private used = 0;
  /** Bytes of fetches under way (makeRoom made room for them; touch() has not counted them yet). */
  private reserved = 0;
  private evictor?: Evictor;
  /**
   * Inodes the client no longer tracks in memory whose closed backing files stay in the cache:
   * chunk index -> the version it holds, and the file's size. Their chunks stay in the LRU;
   * evicting any of them drops the whole inode.
   */
  private readonly parked = new Map<number, { present: Map<number, number>; size: number }>();

  /** The flock'ed descriptor of the cache directory's lock file; -1 once closed. */
  private lockFd: number;

  constructor(private readonly opts: ChunkCacheOptions) {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    ChunkCache.removeStale(opts.dir);
    [this.root, this.lockFd] = ChunkCache.lockSlot(opts.dir, opts.fs.fsId);
    cacheLimitBytes.set(opts.limitBytes);
    try {
      this.restore();
    } catch (err) {
      fs.closeSync(this.lockFd);
      throw err;
    }
  }

  /**
   * Parks the inodes a clean shutdown recorded (their versions are checked at the next open), in
   * their LRU order and within the limit; removes every other file (an unclean stop's leftovers).
   */
  private restore(): void {
    const { index, why } = takeIndex(this.root, this.opts.fs);
    const kept = new Set<number>();
    if (index) {
      for (const e of index.inodes) {
        if (!backingMatches(this.root, e)) continue;
        this.parked.set(e.ino, { present: new Map(e.chunks), size: e.size });
        kept.add(e.ino);
      }
      for (const [ino, index_, bytes] of index.lru) {
        if (this.parked.get(ino)?.present.has(index_)) this.touch(ino, index_, bytes);
      }
      // A chunk without its size in the LRU would escape the limit: such an inode is not adopted.
      for (const [ino, p] of this.parked) {
        if (![...p.present.keys()].some((i) => !this.lru.has(`${ino}:${i}`))) continue;
        kept.delete(ino);
        this.dropParked(ino);
      }
    }
    removeLeftovers(this.root, kept);
    // Oldest first until under the limit (a smaller cacheSize than at the last run), then the inode cap.
    for (const e of this.lru.values()) {
      if (this.used <= this.opts.limitBytes && this.parked.size <= MAX_PARKED_INODES) break;
      this.dropParked(e.ino);
    }
    log.info({ inodes: this.parked.size, bytes: this.used, ...(index ? {} : { why }) }, index ? 'chunk cache restored' : 'chunk cache starts empty');
  }

  /** The first of fs-<id>, fs-<id>.2, … no other daemon holds: its path and locked descriptor. */
  private static lockSlot(dir: string, fsId: number): [string, number] {
    for (let slot = 1; ; slot++) {
      const root = path.join(dir, slot === 1 ? `fs-${fsId}` : `fs-${fsId}.${slot}`);
      fs.mkdirSync(root, { recursive: true, mode: 0o700 });
      try {
        return [root, lockCacheDir(root)];
      } catch (err) {
        if (!(err instanceof CacheDirInUse) || slot >= MAX_SLOTS) throw err;
        log.info({ dir: root }, 'chunk cache directory in use by another client of this file system: trying the next');
      }
    }
  }

  /** Clients of older versions (and killed ones) left client-<pid>-* directories: remove those whose pid is gone. */
  private static removeStale(dir: string): void {
    for (const name of fs.readdirSync(dir)) {
      const m = /^client-(\d+)-/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch (err) {
        alive = (err as NodeJS.ErrnoException).code === 'EPERM';
      }
      if (!alive || pid === process.pid) {
        fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      }
    }
  }

  setEvictor(e: Evictor): void {
    this.evictor = e;
  }

  get usedBytes(): number {
    return this.used;
  }
  get limitBytes(): number {
    return this.opts.limitBytes;
  }

  openBacking(ino: number): BackingFile {
    return new BackingFile(path.join(this.root, String(ino)));
  }

  /** Keeps an idle inode's closed backing file and the chunks it holds (index -> version). */
  park(ino: number, present: Map<number, number>, size: number): void {
    this.parked.set(ino, { present, size });
    if (this.parked.size > MAX_PARKED_INODES) this.dropParked(this.parked.keys().next().value as number);
  }

  /** A parked inode's chunks, its file adopted by `backing`; undefined if not parked or the file is gone. */
  unpark(ino: number, backing: BackingFile): Map<number, number> | undefined {
    const p = this.parked.get(ino);
    if (!p) return undefined;
    this.parked.delete(ino);
    if (backing.adopt(p.size)) return p.present;
    for (const i of p.present.keys()) this.forget(ino, i);
    return undefined;
  }

  /** Deletes a parked inode's file and forgets its chunks; false if it is not parked. */
  dropParked(ino: number): boolean {
    const p = this.parked.get(ino);
    if (!p) return false;
    this.parked.delete(ino);
    for (const i of p.present.keys()) this.forget(ino, i);
    fs.rmSync(path.join(this.root, String(ino)), { force: true });
    return true;
  }

  /** Records that (ino, index) holds `bytes` and is the most recently used chunk. */
  touch(ino: number, index: number, bytes: number): void {
    const key = `${ino}:${index}`;
    const old = this.lru.get(key);
    if (old) {
      this.lru.delete(key);
      this.used += bytes - old.bytes;
    } else {
      this.used += bytes;
    }
    this.lru.set(key, { ino, index, bytes });
    cacheUsedBytes.set(this.used);
  }

  /** Marks a chunk used without changing its size (cheap on the read path). */
  hit(ino: number, index: number): void {
    const key = `${ino}:${index}`;
    const e = this.lru.get(key);
    if (!e) return;
    this.lru.delete(key);
    this.lru.set(key, e);
  }

  /** The owner dropped the chunk itself (invalidation, truncate). */
  forget(ino: number, index: number): void {
    const key = `${ino}:${index}`;
    const e = this.lru.get(key);
    if (!e) return;
    this.lru.delete(key);
    this.used -= e.bytes;
    cacheUsedBytes.set(this.used);
  }

  /**
   * makeRoom(bytes), then counts them as taken until the returned release() (call it after the
   * fetched chunk was touch()ed, or when the fetch failed): concurrent fetches (readahead) each
   * make room for the others' bytes too, so the cache does not overshoot its limit by them.
   */
  reserve(bytes: number): () => void {
    this.makeRoom(bytes);
    this.reserved += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.reserved -= bytes;
    };
  }

  /** Evicts least recently used chunks until `incoming` more bytes fit under the limit. */
  makeRoom(incoming: number): void {
    if (this.used + this.reserved + incoming <= this.opts.limitBytes || !this.evictor) return;
    const skipped: string[] = [];
    for (const [key, e] of this.lru) {
      if (this.used + this.reserved + incoming <= this.opts.limitBytes) break;
      if (this.dropParked(e.ino)) {
        cacheEvictions.inc();
        continue;
      }
      if (!this.evictor.canEvict(e.ino, e.index)) {
        skipped.push(key);
        continue;
      }
      this.lru.delete(key);
      this.used -= e.bytes;
      this.evictor.evict(e.ino, e.index);
      cacheEvictions.inc();
    }
    // Pinned chunks move to the young end so the next scan does not walk them first again.
    for (const key of skipped) {
      const e = this.lru.get(key);
      if (e) {
        this.lru.delete(key);
        this.lru.set(key, e);
      }
    }
    cacheUsedBytes.set(this.used);
    if (this.used + this.reserved + incoming > this.opts.limitBytes) {
      log.debug({ used: this.used, limit: this.opts.limitBytes }, 'chunk cache over its limit: every chunk is pinned');
    }
  }

  /**
   * Clean unmount (nothing dirty is parked, see FileData.parkAll): the parked inodes' backing
   * files stay, made durable, and an index of them is written for the next mount; then close().
   */
  async closeKeeping(): Promise<void> {
    if (this.lockFd < 0) return;
    const kept = new Set<number>();
    try {
      await this.persist(kept);
    } catch (err) {
      log.warn({ err: String(err) }, 'writing the chunk cache index failed: the next mount starts empty');
      kept.clear();
    }
    this.release(kept);
  }

  /** Frees the cache and deletes its backing files (the next mount starts empty). */
  close(): void {
    if (this.lockFd >= 0) this.release(new Set());
  }

  private release(kept: ReadonlySet<number>): void {
    removeLeftovers(this.root, kept);
    fs.closeSync(this.lockFd);
    this.lockFd = -1;
    this.lru.clear();
    this.parked.clear();
    this.used = 0;
    cacheUsedBytes.set(0);
  }

  /** Writes the index of the parked inodes still on disk, after their data is durable; `kept` gets their numbers. */
  private async persist(kept: Set<number>): Promise<void> {
    const inodes: IndexedInode[] = [];
    for (const [ino, p] of this.parked) {
      const mtimeNs = backingMtime(this.root, ino);
      if (mtimeNs === undefined) continue;
      inodes.push({ ino, size: p.size, mtimeNs, chunks: [...p.present] });
      kept.add(ino);
    }
    // One syncfs rather than an fsync per file: thousands of small cached files at shutdown.
    if (inodes.length > 0) await syncFileSystem(this.root);
    const lru: CacheIndex['lru'] = [];
    for (const e of this.lru.values()) if (kept.has(e.ino)) lru.push([e.ino, e.index, e.bytes]);
    writeIndex(this.root, { ...this.opts.fs, inodes, lru });
    log.info({ inodes: inodes.length }, 'chunk cache index written');
  }
}
