// The client's data path: reads served from the local backing files (fetching missing chunks from
// the datastore, with sequential readahead), writes into them tracked as dirty chunks, uploads of
// dirty chunks as new immutable versions committed atomically in the metaserver (flush/fsync/close).
import { Errno, FsError, toErrno } from '../common/errno';
import { forEachLimited } from '../common/limited';
import { moduleLogger } from '../common/logger';
import type { DataService } from '../datastore/api';
import type { Attr, ChunkRef, DataMap, MetaService } from '../metaserver/api';
import type { ChunkCache, Evictor } from './cache/chunk-cache';
import { cacheFetchedBytes, cacheHits, cacheMisses } from './client-metrics';
import { type CommitContext, IO_PARALLELISM, uploadAndCommit } from './chunk-commit';
import { ChunkUploads } from './chunk-uploads';
import { InodeData } from './inode-data';

const log = moduleLogger('file-data');

export interface FileDataDeps {
  readonly meta: MetaService;
  readonly data: DataService;
  readonly fsId: number;
  readonly chunkSize: number;
  readonly cache: ChunkCache;
  /** Chunks fetched ahead of a sequential reader. */
  readonly readaheadChunks: number;
  /** Early uploads in flight per inode (a sequential writer's completed chunks); 0 = off. */
  readonly earlyUploads: number;
  /** Inodes kept in memory before idle ones are parked (ClientOptions.trackedInodes). */
  readonly trackedInodes: number;
  /** Before our own commit: the dataVersion it should produce (the change feed will echo it). */
  readonly expectCommit?: (ino: number, dataVersion: number) => void;
  readonly cancelCommit?: (ino: number, dataVersion: number) => void;
  /** After each of our commits, with the inode's new attributes. */
  readonly committed?: (attr: Attr) => void;
}

/** Fetch rounds for chunks the map keeps replacing under us (see fetchLocal) before EIO. */
const FETCH_ROUNDS = 5;


export class FileData implements Evictor {
  private readonly inodes = new Map<number, InodeData>();
  /** Chunk uploads, and the links copy_file_range makes instead (ChunkUploads.link). */
  readonly uploads: ChunkUploads;
  /** What a flush (chunk-commit.ts) needs of this object. */
  private readonly commitCtx: CommitContext;

  constructor(private readonly d: FileDataDeps) {
    d.cache.setEvictor(this);
    this.uploads = new ChunkUploads(d, 2 * IO_PARALLELISM);
    this.commitCtx = { d, uploads: this.uploads, adoptPassthroughWrites: (st) => this.adoptPassthroughWrites(st), trimCache: () => this.trimCache() };
  }

  get(ino: number): InodeData | undefined {
    return this.inodes.get(ino);
  }

  /** The inode's data state, created (empty, map to be loaded) on first use. */
  ensure(ino: number): InodeData {
    let st = this.inodes.get(ino);
    if (st) {
      // Map order is the recency order for trimIdle().
      this.inodes.delete(ino);
      this.inodes.set(ino, st);
      return st;
    }
    if (this.inodes.size >= this.d.trackedInodes) this.trimIdle(Math.floor(this.d.trackedInodes * 0.9));
    st = new InodeData(ino, this.d.chunkSize, this.d.cache.openBacking(ino));
    // A parked inode's chunks are still in its backing file; their versions are checked against
    // the chunk map at the next refresh (a new InodeData starts map-stale), which drops changed ones.
    const parked = this.d.cache.unpark(ino, st.backing);
    if (parked) for (const [i, v] of parked) st.present.set(i, v);
    this.inodes.set(ino, st);
    return st;
  }

  private trimIdle(target: number): void {
    for (const st of this.inodes.values()) {
      if (this.inodes.size <= target) break;
      if (st.handles === 0 && st.fetches.size === 0 && !this.isDirty(st)) this.park(st);
    }
  }

  /**
   * Stops tracking an idle inode but keeps what its backing file holds in the chunk cache (an
   * fd and an InodeData each for every cached file would not scale): ensure() adopts it again.
   */
  private park(st: InodeData): void {
    if (st.present.size === 0 || st.backingId !== undefined) {
      this.drop(st.ino);
      return;
    }
    st.backing.close(false);
    this.inodes.delete(st.ino);
    this.d.cache.park(st.ino, new Map(st.present), st.backing.size);
  }

  get tracked(): number {
    return this.inodes.size;
  }

  /** Brings the chunk map up to `attr` (close-to-open: called at every open). */
  async revalidate(st: InodeData, attr: Attr): Promise<void> {
    if (!st.mapStale && st.dataVersion === attr.dataVersion) return;
    // The kernel reads the backing file of passthrough handles directly: this open (which joins
    // them) sees the new data only if the file is updated in place (see refreshPinnedLocked).
    await st.serialize(() => (st.ptHandles > 0 ? this.refreshPinnedLocked(st) : this.refreshLocked(st)));
  }

  private async refreshLocked(st: InodeData): Promise<void> {
    const map = await this.d.meta.getDataMap(this.d.fsId, st.ino);
    if (st.ptHandles > 0) {
      st.staleWhilePinned = true;
      return;
    }
    this.adoptMap(st, map);
  }

  /**
   * Close-to-open for an open joining passthrough handles: every chunk another client changed is
   * fetched and written over the old bytes in place (dropping it would make the kernel read zeros),
   * then the map is adopted. Open handles may see the new bytes too, as with a local writer. With a
   * writable passthrough handle or local changes the file is left alone until the last handle
   * closes (their bytes are not uploaded yet), and so it is if a fetch fails. Opens and local
   * writes and truncates wait for this (serialized, or their open does), so none starts meanwhile.
   */
  private async refreshPinnedLocked(st: InodeData): Promise<void> {
    if (st.ptHandles === 0) return this.refreshLocked(st);
    if (st.writablePtHandles > 0 || this.isDirty(st)) {
      st.staleWhilePinned = true;
      return;
    }
    const map = await this.d.meta.getDataMap(this.d.fsId, st.ino);
    const cs = this.d.chunkSize;
    const changed = map.chunks.filter((c) => c.index * cs < map.size && st.present.get(c.index) !== c.version);
    try {
      await forEachLimited(changed, IO_PARALLELISM, (ref) => this.download(st, ref, Math.min(ref.length, cs, map.size - ref.index * cs), (data) => {
        if (st.backing.closed) return;
        st.backing.write(data, ref.index * cs);
        st.backing.zero(ref.index * cs + data.length, cs - data.length);
        this.fetched(st, ref.index, ref.version, data.length);
      }));
    } catch (err) {
      // As before this refresh existed: the handles (this one too) read the old bytes until the last closes.
      log.warn({ ino: st.ino, err: String(err) }, 'refreshing a file open in passthrough failed: it reads stale data until closed');
      st.staleWhilePinned = true;
      st.mapStale = true;
      return;
    }
    this.adoptMap(st, map);
  }

  private adoptMap(st: InodeData, map: DataMap): void {
    const { stale, cut } = st.applyMap(map);
    for (const index of stale) this.dropChunk(st, index);
    const cs = this.d.chunkSize;
    for (const ref of cut) st.backing.zero(ref.index * cs + ref.length, cs - ref.length);
    if (st.backing.size !== st.size) {
      if (st.size < st.backing.size) this.dropBeyond(st, st.size);
      st.backing.truncate(st.size);
    }
  }

  /** Another client changed the inode's data: chunks may be stale; refresh now if idle. */
  async remoteChange(ino: number, dataVersion: number): Promise<void> {
    const st = this.inodes.get(ino);
    if (!st || st.dataVersion === dataVersion) return;
    st.mapStale = true;
    if (st.ptHandles > 0) {
      st.staleWhilePinned = true;
      return;
    }
    await st.serialize(() => (st.mapStale ? this.refreshLocked(st) : Promise.resolve()));
  }

  /** Drops every chunk of every idle inode (change feed lost: anything may have changed). */
  markAllStale(): void {
    for (const st of this.inodes.values()) {
      st.mapStale = true;
      if (st.ptHandles > 0) st.staleWhilePinned = true;
    }
  }

  // ---- reads --------------------------------------------------------------------------------

  async read(st: InodeData, offset: number, size: number, sequential: boolean): Promise<Buffer> {
    if (st.mapStale && st.ptHandles === 0) await st.serialize(() => (st.mapStale ? this.refreshLocked(st) : Promise.resolve()));
    const end = Math.min(offset + size, st.size);
    if (end <= offset) return Buffer.alloc(0);
    const cs = this.d.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const missing: number[] = [];
    for (let i = first; i <= last; i++) {
      if (st.isLocal(i)) {
        cacheHits.inc();
        this.d.cache.hit(st.ino, i);
      } else {
        cacheMisses.inc();
        missing.push(i);
      }
    }
    if (missing.length === 0) return this.copyOut(st, offset, end, sequential);
    // The fetches make room in the cache: the chunks this read holds stay pinned until copied out
    // (in the pinned callback itself: after it, another request's readahead may run first).
    return st.pinned(first, last, async () => {
      try {
        await this.fetchLocal(st, missing);
      } catch (err) {
        // A chunk version we knew was replaced and collected (another client committed and the
        // feed has not told us yet): reload the map once and retry.
        if (toErrno(err) !== Errno.ENOENT) throw err;
        st.mapStale = true;
        await st.serialize(() => (st.mapStale ? this.refreshLocked(st) : Promise.resolve()));
        const retry: number[] = [];
        for (let i = first; i <= Math.min(last, st.chunkCount() - 1); i++) retry.push(i);
        await this.fetchLocal(st, retry);
      }
      return this.copyOut(st, offset, Math.min(end, st.size), sequential);
    });
  }

  /** The bytes [offset, end) from the backing file; then readahead (which may evict them). */
  private copyOut(st: InodeData, offset: number, end: number, sequential: boolean): Buffer {
    if (end <= offset) return Buffer.alloc(0);
    const buf = Buffer.allocUnsafe(end - offset);
    const n = st.backing.read(buf, offset);
    // Past the backing file's end (a size raised by a truncate we already applied) reads as zeros.
    if (n < buf.length) buf.fill(0, n);
    if (sequential) this.readahead(st, Math.floor((end - 1) / this.d.chunkSize) + 1);
    return buf;
  }

  private readahead(st: InodeData, from: number): void {
    const n = st.chunkCount();
    for (let i = from; i < Math.min(n, from + this.d.readaheadChunks); i++) {
      if (!st.isLocal(i) && !st.fetches.has(i)) {
        this.fetch(st, i).catch((err: unknown) => log.debug({ ino: st.ino, index: i, err: String(err) }, 'readahead failed'));
      }
    }
  }

  /**
   * Makes chunks local: a read (or a partial write) must never take the backing file's zeros for
   * a chunk's bytes. Before doFetch kept chunks a refresh had replaced, such fetches stored nothing
   * and their readers got zeros; the rounds here are a safety net for whatever else leaves a chunk out.
   */
  private async fetchLocal(st: InodeData, indexes: number[]): Promise<void> {
    for (let round = 0; ; round++) {
      const missing = indexes.filter((i) => !st.isLocal(i));
      if (missing.length === 0 || st.backing.closed) return;
      if (round === FETCH_ROUNDS) throw new FsError(Errno.EIO, `chunks of inode ${st.ino} kept changing while fetched`);
      await Promise.all(missing.map((i) => this.fetch(st, i)));
    }
  }

  /** Downloads chunk `index` into the backing file (shared by concurrent callers). */
  fetch(st: InodeData, index: number): Promise<void> {
    const running = st.fetches.get(index);
    if (running) return running;
    const p = this.doFetch(st, index).finally(() => st.fetches.delete(index));
    st.fetches.set(index, p);
    return p;
  }

  private async doFetch(st: InodeData, index: number): Promise<void> {
    const ref = st.refs.get(index);
    if (!ref) return;
    const cs = this.d.chunkSize;
    await this.download(st, ref, Math.min(ref.length, cs, Math.max(0, st.size - index * cs)), (data) => {
      // The map may have moved on while we waited (remote change, local write, truncate): a chunk
      // gone or already local keeps nothing. One another client replaced meanwhile keeps what we
      // fetched (the reader waiting for it gets the bytes committed when it asked, not zeros; a
      // chunk rewritten nonstop would never be read otherwise) and the map is marked stale, so the
      // next read or open drops them for the new version.
      const now = st.refs.get(index);
      if (!now || st.present.has(index) || st.backing.closed) return;
      if (now.version !== ref.version) st.mapStale = true;
      const len = Math.min(data.length, now.version === ref.version ? now.length : ref.length, Math.max(0, st.size - index * cs));
      if (len > 0) st.backing.write(len === data.length ? data : data.subarray(0, len), index * cs);
      this.fetched(st, index, ref.version, len);
    });
  }

  /**
   * Gets the first `want` bytes of chunk object `ref` and hands them to `keep`, holding their room
   * in the cache meanwhile (ChunkCache.reserve), so concurrent downloads do not overshoot its limit.
   */
  private async download(st: InodeData, ref: ChunkRef, want: number, keep: (data: Buffer) => void): Promise<void> {
    const release = this.d.cache.reserve(want);
    try {
      keep(want > 0 ? await this.d.data.get({ fsId: this.d.fsId, ino: st.ino, index: ref.index, version: ref.version }, 0, want) : Buffer.alloc(0));
    } finally {
      release();
    }
  }

  /** Chunk `index` now holds `bytes` of object version `version` locally: counted in the cache. */
  private fetched(st: InodeData, index: number, version: number, bytes: number): void {
    st.present.set(index, version);
    this.d.cache.touch(st.ino, index, bytes);
    cacheFetchedBytes.inc(bytes);
  }

  /** Makes every chunk of the file local (warmup; passthrough needs it). */
  async fetchAll(st: InodeData): Promise<void> {
    if (st.mapStale && st.ptHandles === 0) await st.serialize(() => this.refreshLocked(st));
    const missing: number[] = [];
    for (let i = 0; i < st.chunkCount(); i++) if (!st.isLocal(i)) missing.push(i);
    await forEachLimited(missing, IO_PARALLELISM, (i) => this.fetch(st, i));
  }

  // ---- writes -------------------------------------------------------------------------------

  /** `early`: chunks this write completes may be uploaded before the flush (see ChunkUploads.early). */
  async write(st: InodeData, offset: number, data: Buffer, early = true): Promise<number> {
    await this.writeWith(st, offset, data.length, () => st.backing.write(data, offset), early);
    return data.length;
  }

  /**
   * copy_file_range's fast path: `length` bytes of `src` at `srcOffset` written at `offset` of `st`,
   * copied by the kernel between the two backing files. False (nothing done) when every source
   * chunk is not local and current, or the kernel cannot copy between them: use read + write.
   */
  async copyLocal(src: InodeData, srcOffset: number, st: InodeData, offset: number, length: number, early: boolean, taken: () => void): Promise<boolean> {
    if ((src.mapStale && src.ptHandles === 0) || !this.allLocal(src, srcOffset, length)) return false;
    let copied = false;
    await this.writeWith(st, offset, length, () => {
      // Checked again in the tick the bytes move (writeWith may have waited for a fetch).
      copied = this.allLocal(src, srcOffset, length) && st.backing.copyFrom(src.backing, srcOffset, offset, length);
      if (!copied) throw new CopyFallback();
      taken();
    }, early).catch((err: unknown) => {
      if (!(err instanceof CopyFallback)) throw err;
    });
    return copied;
  }

  private allLocal(st: InodeData, offset: number, length: number): boolean {
    const cs = this.d.chunkSize;
    for (let i = Math.floor(offset / cs); i <= Math.floor((offset + length - 1) / cs); i++) if (!st.isLocal(i)) return false;
    return true;
  }

  /** The bookkeeping of a write of [offset, offset+length) whose bytes `put` stores in the backing file. */
  private async writeWith(st: InodeData, offset: number, length: number, put: () => void, early: boolean): Promise<void> {
    if (st.mapStale && st.ptHandles === 0) await st.serialize(() => (st.mapStale ? this.refreshLocked(st) : Promise.resolve()));
    const end = offset + length;
    const cs = this.d.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    // A partial write into a chunk we do not hold needs the rest of the chunk first.
    const needs: number[] = [];
    for (let i = first; i <= last; i++) {
      if (st.isLocal(i)) continue;
      const ref = st.refs.get(i)!;
      const validEnd = Math.min(i * cs + ref.length, st.size, (i + 1) * cs);
      if (offset > i * cs || end < validEnd) needs.push(i);
    }
    const markDirty = (): void => {
      for (let i = first; i <= last; i++) {
        // Accounted at the chunk's full size until the upload knows its real length.
        if (!st.present.has(i)) this.d.cache.touch(st.ino, i, cs);
        st.markDirty(i); // dirty: never evicted
      }
    };
    if (needs.length === 0) markDirty();
    else {
      await st.pinned(first, last, async () => {
        await this.fetchLocal(st, needs);
        markDirty(); // still pinned: see read()
      });
    }
    put();
    if (end > st.size) {
      st.size = end;
      st.sizeDirty = true;
    }
    st.localMtime = nowTimespec();
    // Chunks this write completed (it reached their end) can go up while the writer goes on.
    for (let i = first; early && i <= last && st.uploading.size < this.d.earlyUploads; i++) {
      if ((i + 1) * cs <= end) this.uploads.early(st, i);
    }
  }

  /** Sets the size (truncate up or down) and commits it with any dirty data. */
  async truncate(st: InodeData, size: number): Promise<Attr> {
    return st.serialize(async () => {
      if (st.mapStale && st.ptHandles === 0) await this.refreshLocked(st);
      while (st.uploading.size > 0) await Promise.all([...st.uploading.values()]);
      this.adoptPassthroughWrites(st);
      const cs = this.d.chunkSize;
      if (size < st.size) {
        const partial = size % cs !== 0 ? Math.floor(size / cs) : -1;
        st.backing.truncate(size);
        this.dropBeyond(st, size);
        // The cut chunk keeps its object: the metaserver trims its length, so a regrown tail reads zeros.
        const cut = partial >= 0 ? st.refs.get(partial) : undefined;
        if (cut && cut.index * cs + cut.length > size) st.refs.set(partial, { ...cut, length: size - cut.index * cs });
      } else if (size > st.size) {
        st.backing.truncate(size);
      }
      st.size = size;
      st.sizeDirty = true;
      st.localMtime = nowTimespec();
      return (await uploadAndCommit(this.commitCtx, st, true))!;
    });
  }

  /** Zeros [offset, offset+len) (PUNCH_HOLE) or extends the size (mode 0). */
  async punch(st: InodeData, offset: number, len: number): Promise<void> {
    await st.serialize(async () => {
      if (st.mapStale && st.ptHandles === 0) await this.refreshLocked(st);
      this.adoptPassthroughWrites(st);
      const end = Math.min(offset + len, st.size);
      if (end <= offset) return;
      const cs = this.d.chunkSize;
      const first = Math.floor(offset / cs);
      const last = Math.floor((end - 1) / cs);
      await st.pinned(first, last, async () => {
        const all: number[] = [];
        for (let i = first; i <= last; i++) all.push(i);
        await this.fetchLocal(st, all);
        for (let i = first; i <= last; i++) st.markDirty(i); // still pinned: see read()
      });
      // Chunks the range covers whole become holes in the datastore (st_blocks drops).
      for (let i = Math.ceil(offset / cs); (i + 1) * cs <= end; i++) st.zeroed.add(i);
      st.backing.zero(offset, end - offset);
      st.localMtime = nowTimespec();
    });
  }

  private dropBeyond(st: InodeData, size: number): void {
    const firstGone = Math.ceil(size / this.d.chunkSize);
    for (const i of [...st.present.keys()]) {
      if (i >= firstGone) {
        st.present.delete(i);
        this.d.cache.forget(st.ino, i);
      }
    }
    for (const i of [...st.dirty.keys()]) if (i >= firstGone) st.dirty.delete(i);
    for (const [i, u] of [...st.uploaded]) {
      // A cut chunk's uploaded object holds bytes past the new end: never commit it.
      if (i >= firstGone || (i + 1) * this.d.chunkSize > size) {
        st.uploaded.delete(i);
        this.uploads.deleteObject(st.ino, i, u.ref.version);
      }
    }
    for (const i of [...st.refs.keys()]) if (i >= firstGone) st.refs.delete(i);
  }

  private dropChunk(st: InodeData, index: number): void {
    st.present.delete(index);
    this.d.cache.forget(st.ino, index);
    const cs = this.d.chunkSize;
    st.backing.zero(index * cs, cs);
  }

  // ---- uploads ------------------------------------------------------------------------------

  /** Uploads dirty chunks and commits them (close-to-open: flush, fsync and release call this). */
  flush(st: InodeData): Promise<Attr | undefined> {
    return st.serialize(() => uploadAndCommit(this.commitCtx, st, false));
  }

  /**
   * Makes every chunk object uploaded so far durable (fsync, O_SYNC, unmount). Uploads ask the
   * datastore to defer its fsyncs (chunk-uploads.ts): an in-process store then writes objects to the
   * page cache only, and this is where they reach the disk; a store over gRPC is durable on put.
   */
  async syncData(): Promise<void> {
    await this.d.data.flush?.();
  }

  /** True when something local is not committed yet. */
  isDirty(st: InodeData): boolean {
    return st.dirty.size > 0 || st.sizeDirty || this.passthroughWritten(st);
  }

  /** Passthrough writes bypass the daemon: the backing file's size/mtime say whether they happened. */
  private passthroughWritten(st: InodeData): boolean {
    if (st.writablePtHandles === 0 || !st.ptSnapshot || st.backing.closed) return false;
    const now = st.backing.stat();
    return now.size !== st.ptSnapshot.size || now.mtimeNs !== st.ptSnapshot.mtimeNs;
  }

  /**
   * Brings the size and the dirty set up to what the kernel wrote through passthrough handles
   * (it never told us): anything that reads st.size or the chunk sets calls this first.
   */
  adoptPassthroughWrites(st: InodeData): void {
    if (!this.passthroughWritten(st)) return;
    // We cannot know which bytes the kernel wrote: every chunk holding data may be dirty (see
    // the policy in file-ops.ts). Chunks that are holes in the backing file were never written
    // (a sparse file stays sparse); chunks with an object are re-uploaded whatever they hold.
    const now = st.backing.stat();
    st.backing.adoptSize(now.size);
    if (now.size < st.size) this.dropBeyond(st, now.size);
    st.size = now.size;
    st.sizeDirty = true;
    const touched = new Set(st.backing.dataChunks(this.d.chunkSize, now.size));
    for (const i of st.refs.keys()) if (i < st.chunkCount()) touched.add(i);
    for (const i of [...touched].sort((a, b) => a - b)) st.markDirty(i);
    st.ptSnapshot = now;
    st.localMtime = nowTimespec();
  }

  // ---- eviction and lifetime ---------------------------------------------------------------

  /** Evicts clean chunks until the cache is within its limit. */
  trimCache(): void {
    this.d.cache.makeRoom(0);
  }

  canEvict(ino: number, index: number): boolean {
    const st = this.inodes.get(ino);
    if (!st) return true;
    return st.ptHandles === 0 && !st.dirty.has(index) && !st.fetches.has(index) && !st.pins.has(index);
  }

  evict(ino: number, index: number): void {
    const st = this.inodes.get(ino);
    if (!st || st.backing.closed) return;
    st.present.delete(index);
    st.backing.zero(index * this.d.chunkSize, this.d.chunkSize);
  }

  /** The inode is gone (forgotten by the kernel and idle, or deleted): free its local state. */
  drop(ino: number): void {
    if (this.d.cache.dropParked(ino)) return;
    const st = this.inodes.get(ino);
    if (!st || st.handles > 0) return;
    if (this.isDirty(st) || st.uploading.size > 0) {
      // Dirty here means deleted (park() hands over clean inodes only) after an upload failed
      // (ENOSPC, a datastore down): with no name and no handle left nobody can read that data, so
      // it goes too, or its backing file would hold the disk until unmount. After whatever upload
      // of it is still running, since those read the backing file.
      void st.serialize(async () => {
        while (st.uploading.size > 0) await Promise.allSettled([...st.uploading.values()]);
        if (this.inodes.get(ino) === st && st.handles === 0) this.discard(st);
      });
      return;
    }
    this.discard(st);
  }

  private discard(st: InodeData): void {
    for (const [index, u] of st.uploaded) this.uploads.deleteObject(st.ino, index, u.ref.version);
    st.uploaded.clear();
    st.dirty.clear();
    st.sizeDirty = false;
    for (const i of st.present.keys()) this.d.cache.forget(st.ino, i);
    st.backing.close();
    this.inodes.delete(st.ino);
  }

  /** Uploads everything dirty and makes it durable (unmount). */
  async flushAll(): Promise<void> {
    for (const st of this.inodes.values()) {
      if (!this.isDirty(st)) continue;
      try {
        await this.flush(st);
      } catch (err) {
        log.error({ ino: st.ino, err: String(err) }, 'flush at shutdown failed: local changes lost');
      }
    }
    await this.syncData().catch((err: unknown) => log.error({ err: String(err) }, 'syncing chunk objects at shutdown failed'));
  }

  /**
   * Clean unmount, after flushAll(): parks every inode whose backing file holds only uploaded
   * chunks, so the cache index (ChunkCache.closeKeeping) records them for the next mount. Anything
   * dirty, uploading or local-only (version 0) stays tracked, and close() deletes it.
   */
  parkAll(): void {
    for (const st of [...this.inodes.values()]) {
      if (st.backing.closed || st.fetches.size > 0 || st.uploading.size > 0 || this.isDirty(st) || st.handles > 0) continue;
      if (![...st.present.values()].some((v) => v <= 0)) this.park(st);
    }
  }

  close(): void {
    for (const st of this.inodes.values()) st.backing.close();
    this.inodes.clear();
  }
}

export function nowTimespec(): { sec: number; nsec: number } {
  const ns = BigInt(Date.now()) * 1_000_000n;
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}

export function notSupported(what: string): FsError {
  return new FsError(Errno.EOPNOTSUPP, what);
}

/** copyLocal(): the kernel could not copy, nothing was written (the caller copies through a buffer). */
class CopyFallback extends Error {}
