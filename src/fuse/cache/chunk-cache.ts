// The client's local chunk cache: a directory of per-inode sparse backing files, and an LRU over
// the chunks they hold, bounded by a byte limit. The cache knows sizes and recency; which chunks an
// inode holds (and whether they may be dropped) is the inode's business, asked through Evictor.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { moduleLogger } from '../../common/logger';
import { cacheEvictions, cacheLimitBytes, cacheUsedBytes } from '../client-metrics';
import { BackingFile } from './backing-file';

const log = moduleLogger('chunk-cache');
/** Parked inodes kept at most (see park()); beyond this the oldest go. */
const MAX_PARKED_INODES = 262_144;

/** Who owns cached chunks: asked before a chunk is dropped, told when it was. */
export interface Evictor {
  /** False while the chunk must stay (dirty, or the inode is open in passthrough mode). */
  canEvict(ino: number, index: number): boolean;
  /** Drop the chunk: zero it in the backing file and forget it. */
  evict(ino: number, index: number): void;
}

export interface ChunkCacheOptions {
  /** Parent directory; each client gets its own subdirectory, removed on close. */
  readonly dir: string;
  readonly limitBytes: number;
}

export class ChunkCache {
  readonly root: string;
  private readonly lru = new Map<string, { ino: number; index: number; bytes: number }>();
  private used = 0;
  private evictor?: Evictor;
  /**
   * Inodes the client no longer tracks in memory whose closed backing files stay in the cache:
   * chunk index -> the version it holds, and the file's size. Their chunks stay in the LRU;
   * evicting any of them drops the whole inode.
   */
  private readonly parked = new Map<number, { present: Map<number, number>; size: number }>();

  constructor(private readonly opts: ChunkCacheOptions) {
    fs.mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
    ChunkCache.removeStale(opts.dir);
    this.root = fs.mkdtempSync(path.join(opts.dir, `client-${process.pid}-`));
    cacheLimitBytes.set(opts.limitBytes);
  }

  /** Clients killed with -9 leave their directories behind: remove those whose pid is gone. */
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

  /** Evicts least recently used chunks until `incoming` more bytes fit under the limit. */
  makeRoom(incoming: number): void {
    if (this.used + incoming <= this.opts.limitBytes || !this.evictor) return;
    const skipped: string[] = [];
    for (const [key, e] of this.lru) {
      if (this.used + incoming <= this.opts.limitBytes) break;
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
    if (this.used + incoming > this.opts.limitBytes) {
      log.debug({ used: this.used, limit: this.opts.limitBytes }, 'chunk cache over its limit: every chunk is pinned');
    }
  }

  close(): void {
    this.lru.clear();
    this.parked.clear();
    this.used = 0;
    cacheUsedBytes.set(0);
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
