// Per-inode data state of the client: the chunk map as of a dataVersion, which chunks the local
// backing file holds, which are dirty (written here, not yet uploaded), and the open-mode counts
// that decide passthrough. Plain state plus small helpers; the policy lives in file-data.ts.
import type { ChunkRef, DataMap } from '../metaserver/api';
import type { BackingFile } from './cache/backing-file';

export interface PassthroughSnapshot {
  readonly size: number;
  readonly mtimeNs: bigint;
}

export class InodeData {
  /** File size as this client sees it (includes local writes not yet committed). */
  size = 0;
  /** dataVersion of the chunk map below. */
  dataVersion = -1;
  /** Chunk map from the metaserver (plus our own committed chunks). */
  readonly refs = new Map<number, ChunkRef>();
  /** Chunks whose bytes the backing file holds, with the chunk version they came from (0 = local only). */
  readonly present = new Map<number, number>();
  /** Chunks written locally and not yet committed: index -> write generation. */
  readonly dirty = new Map<number, number>();
  /** Dirty chunks that a hole punch zeroed whole: committed as 0-byte objects (nothing stored). */
  readonly zeroed = new Set<number>();
  /** The size differs from the committed one (write past EOF, truncate not yet committed). */
  sizeDirty = false;
  private mtimeValue?: { sec: number; nsec: number };
  /** Chunks uploaded ahead of a flush (not committed yet), with the write generation they hold. */
  readonly uploaded = new Map<number, { gen: number; ref: ChunkRef }>();
  readonly uploading = new Map<number, Promise<void>>();
  /** In-flight chunk fetches, so concurrent readers share one download. */
  readonly fetches = new Map<number, Promise<void>>();
  /** Chunks an operation waiting for fetches relies on (index -> how many): never evicted. */
  readonly pins = new Map<number, number>();
  private gen = 0;

  /** Handles open in each mode; the kernel requires one mode per inode while any is open. */
  daemonHandles = 0;
  ptHandles = 0;
  writablePtHandles = 0;
  backingId?: number;
  ptSnapshot?: PassthroughSnapshot;
  /** A change from another client arrived while passthrough handles pinned the backing file. */
  staleWhilePinned = false;
  /**
   * The file's mode as of its last open or our last change to it: tells a WRITE whether it has
   * privilege bits to clear (FUSE_HANDLE_KILLPRIV_V2) without asking the metaserver each time.
   */
  mode = 0;
  /** The dataVersion the previous open saw (FOPEN_KEEP_CACHE when unchanged). */
  lastOpenVersion = -1;
  /** Set when the metaserver may hold a newer chunk map than ours. */
  mapStale = true;
  /** Session-level open registered with the metaserver (orphan protection). */
  sessionOpen = false;
  /** Orders this inode's openInode/releaseInode calls. */
  sessionChain: Promise<void> = Promise.resolve();

  /** Serializes flush/truncate/refresh of this inode. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly ino: number, readonly chunkSize: number, readonly backing: BackingFile) {}

  /**
   * mtime of the last local write not yet committed (reported by getattr). Writes through a
   * writable passthrough handle never reach the daemon: the backing file's mtime tells of them.
   */
  get localMtime(): { sec: number; nsec: number } | undefined {
    const own = this.mtimeValue;
    if (this.writablePtHandles === 0 || !this.ptSnapshot || this.backing.closed) return own;
    const now = this.backing.stat();
    if (now.mtimeNs === this.ptSnapshot.mtimeNs && now.size === this.ptSnapshot.size) return own;
    const kernel = { sec: Number(now.mtimeNs / 1_000_000_000n), nsec: Number(now.mtimeNs % 1_000_000_000n) };
    return !own || kernel.sec > own.sec || (kernel.sec === own.sec && kernel.nsec > own.nsec) ? kernel : own;
  }
  set localMtime(t: { sec: number; nsec: number } | undefined) {
    this.mtimeValue = t;
  }

  /**
   * The chunks holding data in the backing file when writes through a writable passthrough
   * handle changed it since the snapshot (st_blocks counts them as written); otherwise undefined.
   */
  passthroughWrittenChunks(): number[] | undefined {
    if (this.writablePtHandles === 0 || !this.ptSnapshot || this.backing.closed) return undefined;
    const now = this.backing.stat();
    if (now.mtimeNs === this.ptSnapshot.mtimeNs && now.size === this.ptSnapshot.size) return undefined;
    return this.backing.dataChunks(this.chunkSize, now.size);
  }

  get handles(): number {
    return this.daemonHandles + this.ptHandles;
  }

  chunkCount(size = this.size): number {
    return Math.ceil(size / this.chunkSize);
  }

  /** True when reading chunk `index` needs no download: held locally, or a hole. */
  isLocal(index: number): boolean {
    return this.present.has(index) || !this.refs.has(index);
  }

  /** Every byte of the file is in the backing file (or a hole): passthrough may serve it. */
  fullyLocal(): boolean {
    const n = this.chunkCount();
    if (this.refs.size === 0) return true;
    for (let i = 0; i < n; i++) if (!this.isLocal(i)) return false;
    return true;
  }

  /**
   * Runs fn with chunks first..last pinned: fetching some chunks of a read or write makes room in
   * the cache, which must not evict the ones it already holds (they would read as zeros). Use them
   * inside fn: between fn's end and its caller's continuation other requests' code may run.
   */
  async pinned<T>(first: number, last: number, fn: () => Promise<T>): Promise<T> {
    for (let i = first; i <= last; i++) this.pins.set(i, (this.pins.get(i) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      for (let i = first; i <= last; i++) {
        const n = this.pins.get(i)! - 1;
        if (n > 0) this.pins.set(i, n);
        else this.pins.delete(i);
      }
    }
  }

  markDirty(index: number): void {
    this.dirty.set(index, ++this.gen);
    this.zeroed.delete(index);
    if (!this.present.has(index)) this.present.set(index, 0);
  }

  /**
   * Adopts a metaserver chunk map. Returns the chunk indexes whose local bytes became stale, and
   * the chunks kept whose object a truncate elsewhere cut (same version, shorter length): their
   * local bytes past that length must read as zeros, as a regrown tail does.
   */
  applyMap(map: DataMap): { stale: number[]; cut: ChunkRef[] } {
    const stale: number[] = [];
    const cut: ChunkRef[] = [];
    for (const [index, version] of this.present) {
      if (this.dirty.has(index)) continue;
      const ref = map.chunks.find((c) => c.index === index);
      if (!ref || ref.version !== version || index * this.chunkSize >= map.size) stale.push(index);
      // Without the old ref (an inode adopted from the parked cache) the length we fetched is unknown.
      else if (ref.length < this.chunkSize && ref.length < (this.refs.get(index)?.length ?? this.chunkSize)) cut.push(ref);
    }
    this.refs.clear();
    for (const c of map.chunks) this.refs.set(c.index, c);
    this.dataVersion = map.dataVersion;
    if (!this.sizeDirty && this.dirty.size === 0) this.size = map.size;
    this.mapStale = false;
    return { stale, cut };
  }

  /** Runs fn after every earlier serialized operation on this inode. */
  serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
