// File handles: open/create (choosing passthrough or daemon-served I/O), read, write, flush,
// fsync, release, fallocate, lseek and truncate, on top of the data path in file-data.ts.
//
// Passthrough policy. The kernel requires every concurrent open of an inode to use one mode
// (passthrough or not; a mismatched open fails with EIO), and passthrough writes never reach the
// daemon. So: a READ-ONLY open of a fully cached file, with no daemon-mode handle open, uses
// passthrough; so does a WRITABLE open with O_TRUNC of a file that is empty then (new or
// truncated: nothing to fetch, and everything written is new), unless O_SYNC/O_DSYNC/O_DIRECT ask
// for writes the daemon must see. O_TRUNC is the signal that the content is about to be written: a
// passthrough open needs a backing file at once (~110 us to create here), which creates that never
// write (touch, O_EXCL create loops, tar's first open) should not pay; their first daemon WRITE
// creates it. Other writable opens use the daemon path — unless the inode is already open in
// passthrough (then they must join that mode). A writable passthrough handle is treated as "may
// have dirtied the file": at flush/fsync/release the backing file's size and mtime are compared
// with a snapshot, and if they moved, every chunk is uploaded. For a file that was empty that is
// exactly the data written; for the rarer "write while someone reads it" case it costs a
// whole-file upload. Daemon writes track dirty chunks precisely.
import * as fs from 'node:fs';
import { Errno, FsError, toErrno } from '../common/errno';
import { moduleLogger } from '../common/logger';
import type { Attr, ChunkRef, MetaService } from '../metaserver/api';
import {
  FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NOFLUSH, FOPEN_PASSTHROUGH, FUSE_OPEN_KILL_SUIDGID,
  FUSE_WRITE_KILL_SUIDGID, SEEK_DATA, SEEK_HOLE,
  type CopyFileRangeIn, type CreateIn, type CreateOut, type FallocateIn, type LseekIn, type LseekOut, type OpenIn, type OpenOut,
  type ReadIn, type RequestContext, type WriteIn, type WriteOut,
} from './protocol/raw-fs';
import { HandleTable } from './vfs/handle-table';
import { privBits, S_IFMT, S_IFREG } from './attrs';
import type { ClientOptions } from './client-options';
import { openHandles, opensBy, passthroughOpens, readBytes, writtenBytes } from './client-metrics';
import type { FileData } from './file-data';
import type { InodeData } from './inode-data';
import type { KurveFs } from './kurve-fs';

const log = moduleLogger('file-ops');
/** A handle open this long is registered with the metaserver (orphan protection). */
const PROTECT_AFTER_MS = 1000;
const O_ACCMODE = 3;
const O_RDONLY = 0;
const { O_TRUNC, O_DIRECT, O_EXCL, O_DSYNC } = fs.constants;

/** copy_file_range: most bytes copied per request (its reply's size is 32-bit), and per step when the two chunk sizes differ. */
const COPY_MAX = 256 * 1024 * 1024;
const COPY_STEP = 4 * 1024 * 1024;

interface FileHandle {
  readonly ino: number;
  readonly st: InodeData;
  readonly writable: boolean;
  readonly passthrough: boolean;
  /** End of the previous read: the next one at this offset is sequential (readahead). */
  lastEnd: number;
}

/**
 * The first data byte (or hole byte) of chunk `i` within [lo, hi), if any. Where the local backing
 * file holds the chunk (or it is a hole: see BackingFile's invariant), the backing file's own
 * SEEK_DATA/SEEK_HOLE says it to the byte (page); elsewhere the chunk's object is data up to its
 * stored length and a hole after it (a punched-out chunk stores 0 bytes).
 */
function seekInChunk(st: InodeData, i: number, lo: number, hi: number, want: 'data' | 'hole'): number | undefined {
  const cs = st.chunkSize;
  if (st.isLocal(i)) {
    const r = st.backing.seek(lo, want);
    if (r !== undefined) {
      if (want === 'data') return r >= 0 && r < hi ? r : undefined;
      return r < 0 ? lo : r < hi ? Math.max(r, lo) : undefined; // ENXIO: past the backing file's end, a hole
    }
    // The local file system cannot tell: a chunk we hold or wrote counts as data.
    const data = st.present.has(i) || st.dirty.has(i);
    return data === (want === 'data') ? lo : undefined;
  }
  const end = i * cs + (st.refs.get(i)?.length ?? 0);
  if (want === 'data') return lo < end ? lo : undefined;
  return end < hi ? Math.max(end, lo) : undefined;
}

export class FileOps {
  private readonly handles = new HandleTable<FileHandle>();
  private readonly pendingSession = new Set<Promise<void>>();
  /**
   * Open inodes not yet registered with the metaserver (see openHandle), in the order they are
   * due (ms timestamp): one timer for all of them, not a setTimeout/clearTimeout pair per create.
   */
  private readonly unprotected = new Map<InodeData, number>();
  private protectTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly kfs: KurveFs,
    private readonly meta: MetaService,
    private readonly data: FileData,
    private readonly opts: ClientOptions,
    private readonly sessionId: string | undefined,
  ) {}

  get openCount(): number {
    return this.handles.size;
  }

  async open(ctx: RequestContext, req: OpenIn): Promise<OpenOut> {
    const ino = ctx.nodeid;
    const attr = await this.meta.getattr(this.kfs.fsId, ino);
    if ((attr.mode & S_IFMT) !== S_IFREG) {
      // Device nodes and fifos are opened by the kernel itself; anything else here is a bug.
      throw new FsError(Errno.EINVAL, `open of a non-regular inode ${ino}`);
    }
    const st = this.data.ensure(ino);
    st.mode = attr.mode;
    await this.data.revalidate(st, attr);
    // O_TRUNC truncates whatever the access mode, as on Linux: the kernel checked write permission
    // and, with ATOMIC_O_TRUNC, zeroes its own size and page cache once we answer. It marks mtime
    // and ctime for update even when the file is already empty (POSIX open(2)).
    if (req.flags & O_TRUNC) {
      if (req.openFlags & FUSE_OPEN_KILL_SUIDGID && privBits(st.mode)) st.mode = await this.kfs.killPriv(ino);
      await this.data.truncate(st, 0);
    }
    return this.openHandle(st, req.flags, ctx.uid);
  }

  async create(ctx: RequestContext, req: CreateIn): Promise<CreateOut> {
    const parent = ctx.nodeid;
    const mode = S_IFREG | (req.mode & 0o7777 & ~req.umask);
    let attr: Attr;
    let fresh = false;
    try {
      attr = await this.kfs.own([[parent, req.name]], () => this.meta.mknod(this.kfs.fsId, parent, req.name, mode, 0, this.kfs.caller(ctx)));
      fresh = true;
    } catch (err) {
      // Lost a race with another creator: without O_EXCL, open what is there (as open(2) would).
      if (toErrno(err) !== Errno.EEXIST || req.flags & O_EXCL) throw err;
      attr = await this.meta.lookup(this.kfs.fsId, parent, req.name);
      if ((attr.mode & S_IFMT) !== S_IFREG) throw new FsError(Errno.EISDIR, 'create over a non-regular file');
    }
    try {
      const st = this.data.ensure(attr.ino);
      if (fresh && st.handles === 0 && st.present.size === 0 && st.dirty.size === 0) {
        // We just made it: its chunk map is empty, no need to ask.
        st.applyMap({ ino: attr.ino, size: 0, dataVersion: attr.dataVersion, chunkSize: st.chunkSize, chunks: [] });
      }
      st.mode = attr.mode;
      await this.data.revalidate(st, attr);
      if (!fresh && req.openFlags & FUSE_OPEN_KILL_SUIDGID && privBits(st.mode)) st.mode = await this.kfs.killPriv(attr.ino);
      // An existing file (lost race) is truncated even when empty: O_TRUNC updates mtime and ctime.
      if (!fresh && req.flags & O_TRUNC) attr = await this.data.truncate(st, 0);
      const open = await this.openHandle(st, req.flags, ctx.uid);
      // entry() takes the lookup count only once the open succeeded: a failed create hands out nothing.
      return { entry: this.kfs.entry(parent, req.name, attr), open };
    } catch (err) {
      // The name exists but the kernel gets an error, so it keeps its view of the directory: the
      // echoes of our create were skipped (own()), so invalidate the name and parent ourselves.
      if (fresh) {
        this.kfs.coherence.invalEntry(parent, req.name);
        this.kfs.coherence.invalInode(parent, -1, 0, 'attr');
      }
      throw err;
    }
  }

  private async openHandle(st: InodeData, flags: number, uid: number): Promise<OpenOut> {
    const writable = (flags & O_ACCMODE) !== O_RDONLY;
    // Passthrough writes never reach us, so we could not clear privilege bits on them: such a
    // file is written through the daemon (each WRITE carries the kernel's kill flag).
    const privWriter = writable && uid !== 0 && privBits(st.mode) !== 0;
    const conn = this.kfs.connection;
    let passthrough = false;
    if (conn?.passthrough && this.opts.passthrough) {
      if (st.ptHandles > 0) passthrough = true; // one mode per inode: join it
      else if (st.daemonHandles === 0 && !(flags & O_DIRECT) && (!writable || (!privWriter && this.writePassthrough(st, flags)))) {
        if (st.staleWhilePinned || st.mapStale) {
          st.staleWhilePinned = false;
          st.mapStale = true;
        }
        passthrough = !st.mapStale && st.fullyLocal();
      }
    }
    // Joining passthrough handles already open (one mode per inode): clear the bits now instead.
    if (passthrough && privWriter) st.mode = await this.kfs.killPriv(st.ino);
    if (passthrough && st.backingId === undefined) {
      try {
        st.backingId = conn!.backing.open(st.backing.fd);
        st.ptSnapshot = st.backing.stat();
      } catch (err) {
        log.warn({ err: String(err) }, 'passthrough backing open failed: serving this file from the daemon');
        passthrough = false;
      }
    }
    if (st.handles === 0 && this.sessionId && !st.sessionOpen && !this.unprotected.has(st)) {
      // Orphan protection (unlink while open keeps the inode until our last release) costs two
      // fsync'ed metaserver commits per open/close, which would cut create rates to a third. So a
      // handle is registered only once it lived PROTECT_AFTER_MS — or at once, before any unlink
      // or rename of ours (protectOpen). Another client's unlink before the registration is
      // covered by the metaserver's unlink grace (10 s by default): an unlinked file nobody
      // holds is purged only after it, and our registration within it keeps the file.
      this.protectLater(st);
    }
    // A read-only handle has nothing to upload at close, and the kernel keeps POSIX and flock
    // locks itself (we do not negotiate them): its FLUSH would be a round trip that does nothing.
    let openFlags = writable ? 0 : FOPEN_NOFLUSH;
    if (passthrough) {
      st.ptHandles++;
      if (writable) st.writablePtHandles++;
      openFlags |= FOPEN_PASSTHROUGH;
      passthroughOpens.inc();
      opensBy('passthrough').inc();
    } else {
      st.daemonHandles++;
      if (flags & O_DIRECT) openFlags |= FOPEN_DIRECT_IO;
      else if (st.lastOpenVersion === st.dataVersion) openFlags |= FOPEN_KEEP_CACHE;
      opensBy('daemon').inc();
    }
    st.lastOpenVersion = st.dataVersion;
    const fh = this.handles.add({ ino: st.ino, st, writable, passthrough, lastEnd: -1 });
    openHandles.inc();
    return passthrough ? { fh, openFlags, backingId: st.backingId } : { fh, openFlags };
  }

  /** May this writable open use passthrough (see the policy at the top)? */
  private writePassthrough(st: InodeData, flags: number): boolean {
    // O_SYNC includes the O_DSYNC bit: such writes must reach the daemon (it uploads at each FSYNC).
    if (flags & O_DSYNC) return false;
    if (this.opts.passthroughWrites) return true;
    return this.opts.passthroughNewFiles && (flags & O_TRUNC) !== 0 && st.size === 0 && st.refs.size === 0 && st.dirty.size === 0 && !st.sizeDirty;
  }

  async read(req: ReadIn): Promise<Buffer> {
    const h = this.handles.need(req.fh);
    const buf = await this.data.read(h.st, req.offset, req.size, req.offset === h.lastEnd || req.offset === 0);
    h.lastEnd = req.offset + buf.length;
    readBytes.inc(buf.length);
    return buf;
  }

  async write(req: WriteIn): Promise<WriteOut> {
    const h = this.handles.need(req.fh);
    if (req.writeFlags & FUSE_WRITE_KILL_SUIDGID && privBits(h.st.mode)) h.st.mode = await this.kfs.killPriv(h.st.ino);
    const n = await this.data.write(h.st, req.offset, req.data);
    writtenBytes.inc(n);
    return { size: n };
  }

  /** Nothing to upload (every close of a never-written file): answered without a promise. */
  flush(fh: number): Promise<void> | undefined {
    const h = this.handles.need(fh);
    if (h.writable && this.data.isDirty(h.st)) return this.data.flush(h.st).then(() => undefined);
    return undefined;
  }

  /** Uploads and commits, then makes the chunk objects and the metadata durable (in that order). */
  async fsync(fh: number): Promise<void> {
    const h = this.handles.need(fh);
    if (this.data.isDirty(h.st)) await this.data.flush(h.st);
    await this.data.syncData();
    await this.kfs.durable();
  }

  /** A release with nothing to upload (a never-written file, a reader) runs without a promise. */
  release(fh: number): Promise<void> | undefined {
    const h = this.handles.get(fh);
    if (!h) return undefined;
    if (this.data.isDirty(h.st)) return this.releaseUploading(fh, h);
    this.dropHandle(fh, h);
    if (h.st.handles === 0) this.lastClosed(h.st);
    return undefined;
  }

  private async releaseUploading(fh: number, h: FileHandle): Promise<void> {
    const st = h.st;
    try {
      // Upload before the handle count drops: a writable passthrough handle is how we know to look.
      if (h.writable && this.data.isDirty(st)) await this.data.flush(st);
    } catch (err) {
      log.error({ ino: h.ino, err: String(err) }, 'upload at close failed: data stays local and dirty');
    } finally {
      this.dropHandle(fh, h);
    }
    if (st.handles === 0) {
      if (this.data.isDirty(st)) {
        await this.data.flush(st).catch((err: unknown) => log.error({ ino: h.ino, err: String(err) }, 'upload at last close failed'));
      }
      this.lastClosed(st);
    }
  }

  private dropHandle(fh: number, h: FileHandle): void {
    const st = h.st;
    this.handles.release(fh);
    openHandles.dec();
    if (h.passthrough) {
      st.ptHandles--;
      if (h.writable) st.writablePtHandles--;
      if (st.ptHandles === 0 && st.backingId !== undefined) {
        this.kfs.connection?.backing.close(st.backingId);
        st.backingId = undefined;
        st.ptSnapshot = undefined;
        if (st.staleWhilePinned) {
          st.staleWhilePinned = false;
          st.mapStale = true;
        }
        // Its chunks were pinned (the kernel reads the backing file): now they may go if over the limit.
        this.data.trimCache();
      }
    } else {
      st.daemonHandles--;
    }
  }

  /** The last handle of an inode went away: end its orphan protection. */
  private lastClosed(st: InodeData): void {
    // Not registered yet: nothing to release, and the sweep no longer finds it.
    if (!this.unprotected.delete(st) && st.sessionOpen && this.sessionId) {
      st.sessionOpen = false;
      this.sessionCall(st, (sid) => this.meta.releaseInode(this.kfs.fsId, st.ino, sid));
    }
  }

  /** Registers `st` once it stayed open PROTECT_AFTER_MS (unless closed or protected before). */
  private protectLater(st: InodeData): void {
    this.unprotected.delete(st); // re-added at the end: the map stays in due order
    this.unprotected.set(st, Date.now() + PROTECT_AFTER_MS);
    if (!this.protectTimer) this.armProtectTimer(PROTECT_AFTER_MS);
  }

  private armProtectTimer(ms: number): void {
    this.protectTimer = setTimeout(() => this.protectDue(), ms);
    this.protectTimer.unref();
  }

  /** The sweep: registers every inode whose time came, then waits for the next one. */
  private protectDue(): void {
    this.protectTimer = undefined;
    const now = Date.now();
    for (const [st, due] of this.unprotected) {
      if (due > now) {
        this.armProtectTimer(due - now);
        return;
      }
      this.protect(st);
    }
  }

  private protect(st: InodeData): void {
    if (!this.unprotected.delete(st)) return;
    st.sessionOpen = true;
    this.sessionCall(st, async (sid) => {
      try {
        await this.meta.openInode(this.kfs.fsId, st.ino, sid);
      } catch (err) {
        // Not registered (metaserver unreachable?): try again while the file stays open — the
        // metaserver's unlink grace covers the gap. ENOENT: the inode is gone, nothing to hold.
        if (toErrno(err) !== Errno.ENOENT && st.sessionOpen && st.handles > 0) {
          st.sessionOpen = false;
          this.protectLater(st);
        }
        throw err;
      }
    });
  }

  /** Before an unlink or rename of ours: every open inode is registered, so none is purged. */
  async protectOpen(): Promise<void> {
    for (const st of [...this.unprotected.keys()]) this.protect(st);
    await this.sessionBarrier();
  }

  /** Queues a session open/release of an inode after the previous one for the same inode. */
  private sessionCall(st: InodeData, call: (sessionId: string) => Promise<void>): void {
    const sid = this.sessionId!;
    const p = st.sessionChain.then(() => call(sid)).catch((err: unknown) =>
      log.warn({ ino: st.ino, err: String(err) }, 'session open/release of an inode failed'));
    st.sessionChain = p;
    this.pendingSession.add(p);
    void p.finally(() => this.pendingSession.delete(p));
  }

  /** Resolves once every queued session open/release reached the metaserver. */
  async sessionBarrier(): Promise<void> {
    while (this.pendingSession.size > 0) await Promise.all([...this.pendingSession]);
  }

  async truncate(ino: number, size: number): Promise<Attr> {
    if (size < 0 || !Number.isSafeInteger(size)) throw new FsError(Errno.EINVAL, `invalid size ${size}`);
    const st = this.data.ensure(ino);
    const attr = await this.meta.getattr(this.kfs.fsId, ino);
    if ((attr.mode & S_IFMT) !== S_IFREG) throw new FsError(Errno.EINVAL, 'truncate of a non-regular file');
    await this.data.revalidate(st, attr);
    const out = await this.data.truncate(st, size);
    if (st.ptSnapshot && !st.backing.closed) st.ptSnapshot = st.backing.stat();
    return out;
  }

  async fallocate(ino: number, req: FallocateIn): Promise<void> {
    const h = this.handles.need(req.fh);
    this.data.adoptPassthroughWrites(h.st);
    const known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
    if (req.mode & ~known) throw new FsError(Errno.EOPNOTSUPP, `fallocate mode ${req.mode}`);
    if (req.offset < 0 || req.length <= 0) throw new FsError(Errno.EINVAL, 'fallocate range');
    if (req.mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
      await this.data.punch(h.st, req.offset, req.length);
      // ZERO_RANGE is a punch here (zeros are holes; nothing is reserved, as for mode 0) that, without
      // KEEP_SIZE, extends the file to the end of the range like mode 0.
      const end = req.offset + req.length;
      if (!(req.mode & FALLOC_FL_KEEP_SIZE) && end > h.st.size) await this.truncate(ino, end);
      await this.data.flush(h.st);
      return;
    }
    // Immutable chunk objects on a shared datastore cannot hold a reservation: mode 0 extends the
    // size; both modes refuse (ENOSPC) a range the datastore has no room for now, as a local file
    // system would, instead of failing later at close.
    const end = req.offset + req.length;
    const st = h.st;
    const cs = st.chunkSize;
    let needed = req.length;
    const held = new Set([...st.dirty.keys(), ...[...st.refs.values()].filter((r) => r.length > 0).map((r) => r.index)]);
    for (const i of held) needed -= Math.max(0, Math.min(end, (i + 1) * cs) - Math.max(req.offset, i * cs));
    if (needed > 0) {
      const s = await this.meta.statfs(this.kfs.fsId);
      const free = s.bavail * (s.frsize || s.bsize);
      if (needed > free) throw new FsError(Errno.ENOSPC, `fallocate: ${needed} bytes asked, ${free} free in the datastore`);
    }
    if (!(req.mode & FALLOC_FL_KEEP_SIZE) && end > st.size) await this.truncate(ino, end);
  }

  /**
   * copy_file_range(2) between two files of this mount: the daemon moves the bytes itself, a chunk
   * at a time, through the same read and write paths as READ and WRITE (missing source chunks are
   * fetched, destination chunks become dirty and are uploaded at flush). Without it the kernel
   * makes `cp` fall back to 64 KiB WRITE round trips: 1 GiB took 23 s. Copies at most COPY_MAX
   * bytes per request (the reply's size is 32-bit; the caller loops) and stops at the source's end.
   */
  async copyFileRange(req: CopyFileRangeIn): Promise<WriteOut> {
    if (req.flags !== 0) throw new FsError(Errno.EINVAL, `copy_file_range flags ${req.flags} are not supported`);
    const src = this.handles.need(req.fhIn);
    const dst = this.handles.need(req.fhOut);
    if (!dst.writable) throw new FsError(Errno.EBADF, 'copy_file_range into a handle not open for writing');
    // Passthrough writers may have changed either file behind our back: size and dirty set first.
    this.data.adoptPassthroughWrites(src.st);
    this.data.adoptPassthroughWrites(dst.st);
    const total = Math.min(req.len, COPY_MAX);
    const cs = src.st.chunkSize;
    // A chunk at a time when both files have one chunk size: whole chunks can then be linked.
    const step = cs === dst.st.chunkSize ? cs : COPY_STEP;
    let done = 0;
    while (done < total) {
      const from = req.offIn + done;
      const to = req.offOut + done;
      const want = Math.min(step - (from % step), total - done, src.st.size - from);
      if (want <= 0) break; // the source's end
      // A whole chunk of a store that links objects (`kurve up`) is linked, not uploaded early.
      const link = want === cs && from % cs === 0 && to % cs === 0 && step === cs && this.data.uploads.canLink;
      let stored: ChunkRef | undefined;
      // Called in the tick the bytes are taken (no I/O completes in between): the object they are.
      const taken = (): void => {
        stored = link ? this.data.uploads.storedClean(src.st, from / cs) : undefined;
      };
      // Local source chunks are copied by the kernel between the backing files; others are read
      // (fetched) and written.
      let n = want;
      if (!(await this.data.copyLocal(src.st, from, dst.st, to, want, !link, taken))) {
        const buf = await this.data.read(src.st, from, want, true);
        taken();
        if (buf.length < cs) stored = undefined;
        n = buf.length === 0 ? 0 : await this.data.write(dst.st, to, buf, !link);
      }
      if (stored) this.data.uploads.link({ ino: src.st.ino, ref: stored }, dst.st, to / cs);
      done += n;
      if (n < want) break;
    }
    readBytes.inc(done);
    writtenBytes.inc(done);
    return { size: done };
  }

  async lseek(_ino: number, req: LseekIn): Promise<LseekOut> {
    const h = this.handles.need(req.fh);
    const st = h.st;
    this.data.adoptPassthroughWrites(st);
    if (req.whence !== SEEK_DATA && req.whence !== SEEK_HOLE) throw new FsError(Errno.EINVAL, `whence ${req.whence}`);
    const size = st.size;
    if (req.offset < 0) throw new FsError(Errno.ENXIO, 'negative offset');
    if (req.offset >= size) throw new FsError(Errno.ENXIO, 'offset at or past EOF');
    const want = req.whence === SEEK_DATA ? 'data' : 'hole';
    const cs = st.chunkSize;
    const n = st.chunkCount();
    for (let i = Math.floor(req.offset / cs); i < n; i++) {
      const lo = Math.max(req.offset, i * cs);
      const hi = Math.min((i + 1) * cs, size);
      const found = seekInChunk(st, i, lo, hi, want);
      if (found !== undefined) return { offset: found };
    }
    if (want === 'hole') return { offset: size };
    throw new FsError(Errno.ENXIO, 'no data past offset');
  }

  /** Open handles of an inode (warmup and tests). */
  handlesOf(ino: number): number {
    let n = 0;
    for (const h of this.handles.values()) if (h.ino === ino) n++;
    return n;
  }
}
