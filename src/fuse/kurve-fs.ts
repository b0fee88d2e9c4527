// The Kurve file system: the RawFileSystem the FUSE session calls, over a MetaService (namespace)
// and a DataService (chunks). Namespace operations live here; file handles and the data path are
// in file-ops.ts / file-data.ts, directory handles in dir-ops.ts, kernel cache coherence in
// coherence.ts.
import { Errno, FsError, toErrno } from '../common/errno';
import { moduleLogger } from '../common/logger';
import type { DataService } from '../datastore/api';
import { ROOT_INO, type Attr, type Caller, type MetaService, type SetAttrRequest, type UnlinkResult } from '../metaserver/api';
import type { FsInfo } from '../mds/api';
import type {
  AccessIn, AttrOut, CopyFileRangeIn, CreateIn, CreateOut, DirentPlusSink, DirentSink, EntryOut, FallocateIn, FlushIn, FsyncIn,
  FuseConnection, GetattrIn, GetxattrIn, LinkIn, LseekIn, LseekOut, MkdirIn, MknodIn, NameIn, OpenIn, OpenOut,
  RawFileSystem, ReaddirIn, ReadIn, Reply, ReleaseIn, RemovexattrIn, RenameIn, RequestContext, SetattrIn, SetxattrIn,
  StatfsOut, SymlinkIn, WriteIn, WriteOut,
} from './protocol/raw-fs';
import { errnoReply, RENAME_EXCHANGE, RENAME_WHITEOUT } from './protocol/raw-fs';
import { InodeTable } from './vfs/inode-table';
import { privBits, S_IFDIR, S_IFMT, S_IFREG, toFuseAttr } from './attrs';
import type { ChunkCache } from './cache/chunk-cache';
import type { ClientOptions } from './client-options';
import { inodesTracked } from './client-metrics';
import { Coherence } from './coherence';
import { FileData } from './file-data';
import { DirOps } from './dir-ops';
import { FileOps } from './file-ops';
import { Warmup } from './warmup-xattr';
import { Xattrs } from './xattrs';

const log = moduleLogger('kurve-fs');
const NAME_MAX = 255;

export interface KurveFsDeps {
  readonly meta: MetaService;
  readonly data: DataService;
  readonly fs: FsInfo;
  /** MDS session id: open inodes survive unlink while this session holds them. */
  readonly sessionId?: string;
  readonly cache: ChunkCache;
  readonly options: ClientOptions;
}

interface InodeRef {
  /** Parent directory for directories (to answer ".."); 0 when unknown. */
  parent: number;
}

export class KurveFs implements RawFileSystem {
  readonly fsId: number;
  readonly coherence: Coherence;
  readonly files: FileOps;
  readonly dataPath: FileData;
  readonly warmup: Warmup;
  private readonly xattrs: Xattrs;
  private conn?: FuseConnection;
  private readonly inodes: InodeTable<InodeRef>;
  private readonly dirOps: DirOps;
  /**
   * Attributes as of the last reply, kept only while the change feed is connected (every change
   * by anyone arrives as an event and drops the entry): GETATTR without a metaserver round trip,
   * which matters when the kernel's own timeouts are short or 0.
   */
  private readonly attrCache = new Map<number, Attr>();
  /** (parent, name) -> ino (0 = no such name), under the same rule as attrCache. */
  private readonly dentryCache = new Map<string, number>();
  /**
   * Bumped by every change event: a reply fetched before an event may be older than it, so it is
   * cached only if no event arrived since the request started (callers pass the epoch they saw).
   */
  private cacheEpoch = 0;
  /** Inodes whose last name we removed: their local data goes at the kernel's forget. */
  private readonly deleted = new Set<number>();
  /**
   * Directories we removed that the kernel still holds (an open fd, a process's cwd): their last
   * attributes (nlink 0), for a GETATTR the metaserver can no longer answer, until the forget.
   */
  private readonly removedDirs = new Map<number, Attr>();

  constructor(private readonly d: KurveFsDeps) {
    this.fsId = d.fs.fsId;
    // Cached data outlives the kernel's inode (the LRU and FileData bound it); only a deleted
    // inode's data goes when the kernel forgets it.
    this.inodes = new InodeTable<InodeRef>({ parent: ROOT_INO }, (ino) => {
      inodesTracked.set(this.inodes.size);
      this.coherence.dirs.forget(ino);
      if (this.deleted.delete(ino)) this.dataPath.drop(ino);
      this.removedDirs.delete(ino);
    });
    this.dataPath = new FileData({
      meta: d.meta, data: d.data, fsId: this.fsId, chunkSize: d.fs.chunkSize, cache: d.cache,
      readaheadChunks: d.options.readaheadChunks, earlyUploads: d.options.earlyUploads, trackedInodes: d.options.trackedInodes,
      expectCommit: (ino, v) => this.coherence.expectData(ino, v),
      cancelCommit: (ino, v) => this.coherence.cancelData(ino, v),
      committed: (attr) => this.attrCache.delete(attr.ino),
    });
    this.coherence = new Coherence(d.meta, this.fsId, d.options, {
      onData: (ino, v) => {
        this.cacheEpoch++;
        this.attrCache.delete(ino);
        this.dataPath.remoteChange(ino, v).catch((err: unknown) => log.warn({ ino, err: String(err) }, 'refresh after remote change failed'));
      },
      onAttr: (ino) => {
        this.cacheEpoch++;
        this.attrCache.delete(ino);
        this.xattrs.forget(ino);
      },
      onEntry: (parent, name) => {
        this.cacheEpoch++;
        this.dentryCache.delete(dentryKey(parent, name));
      },
      onReset: () => {
        this.cacheEpoch++;
        this.attrCache.clear();
        this.dentryCache.clear();
        this.xattrs.forget();
        this.dataPath.markAllStale();
      },
      knownInodes: () => [...this.inodes.entries()].map(([ino]) => ino),
      held: (ino) => this.inodes.get(ino) !== undefined,
    });
    this.files = new FileOps(this, d.meta, this.dataPath, d.options, d.sessionId);
    this.dirOps = new DirOps(this, d.meta, (ino) => this.inodes.get(ino)?.parent ?? 0);
    this.warmup = new Warmup(this);
    this.xattrs = new Xattrs(d.meta, this.fsId, (epoch) => this.coherence.subscribed && epoch === this.cacheEpoch, () => this.cacheEpoch);
  }

  get meta(): MetaService {
    return this.d.meta;
  }
  get connection(): FuseConnection | undefined {
    return this.conn;
  }

  caller(ctx: RequestContext): Caller {
    return { uid: ctx.uid, gid: ctx.gid, sessionId: this.d.sessionId };
  }

  // ---- session lifecycle --------------------------------------------------------------------

  init(conn: FuseConnection): void {
    this.conn = conn;
    this.coherence.start(conn.notify);
    log.info({ passthrough: conn.passthrough, maxWrite: conn.maxWrite, kernel: `${conn.kernelMajor}.${conn.kernelMinor}` }, 'FUSE session ready');
  }

  destroy(): void {
    this.coherence.close();
  }

  private cacheDentry(parent: number, name: Buffer, ino: number, epoch: number): void {
    if (!this.coherence.subscribed || epoch !== this.cacheEpoch) return;
    if (this.dentryCache.size >= 200_000) this.dentryCache.clear();
    this.dentryCache.set(dentryKey(parent, name), ino);
  }

  cacheAttr(attr: Attr, epoch: number): void {
    if (!this.coherence.subscribed || epoch !== this.cacheEpoch) return;
    if (this.attrCache.size >= 100_000) this.attrCache.clear();
    this.attrCache.set(attr.ino, attr);
  }

  /** Entry for a reply that hands the kernel a lookup count (see raw-fs.ts "Lookup counts"). */
  entry(parent: number, name: Buffer, attr: Attr, epoch = -1): EntryOut {
    this.cacheAttr(attr, epoch);
    this.cacheDentry(parent, name, attr.ino, epoch);
    // Our own create/link/rename changed the parent (mtime, nlink): its event may still be queued.
    this.attrCache.delete(parent);
    const ref = this.inodes.ref(attr.ino, newInodeRef);
    if ((attr.mode & S_IFMT) === S_IFDIR) ref.parent = parent;
    inodesTracked.set(this.inodes.size);
    this.coherence.noteDentry(parent, name, attr.ino);
    return this.entryOut(attr);
  }

  entryOut(attr: Attr): EntryOut {
    return {
      nodeid: attr.ino,
      generation: attr.generation,
      entryValid: this.coherence.entryTimeout,
      attrValid: this.coherence.attrTimeout,
      attr: toFuseAttr(attr, this.dataPath.get(attr.ino)),
    };
  }

  attrOut(attr: Attr): AttrOut {
    return { attrValid: this.coherence.attrTimeout, attr: toFuseAttr(attr, this.dataPath.get(attr.ino)) };
  }

  /**
   * Runs a change of ours to one inode's attributes (setattr, set/removexattr: each emits exactly
   * one attr event): the kernel learns of it from the reply (SETATTR's attributes; after an xattr
   * change it drops the cached ctime itself), so the echo is skipped instead of costing a
   * notification per chmod/utimes (two per file of a `cp -a`).
   */
  private async ownAttr<T>(ino: number, op: () => Promise<T>): Promise<T> {
    const cancel = this.coherence.expectAttr(ino);
    try {
      return await op();
    } catch (err) {
      cancel();
      throw err;
    }
  }

  /** Runs a namespace change of ours, telling the coherence layer to skip its echo. */
  async own<T>(names: ReadonlyArray<readonly [number, Buffer]>, op: () => Promise<T>): Promise<T> {
    const cancels = names.map(([parent, name]) => this.coherence.expectEntry(parent, name));
    // One name = one entry added or removed in one directory: surely one attr event on it. (A
    // rename may touch one directory once or twice; its echoes are left alone. The inode an
    // unlink/rmdir removes emits one too: see there.)
    if (names.length === 1) cancels.push(this.coherence.expectAttr(names[0][0]));
    try {
      const r = await op();
      for (const [parent, name] of names) {
        this.attrCache.delete(parent);
        this.dentryCache.delete(dentryKey(parent, name));
      }
      return r;
    } catch (err) {
      for (const c of cancels) c();
      throw err;
    }
  }

  // ---- namespace ----------------------------------------------------------------------------

  /** The inode (parent, name) names, if this daemon knows it (a name the kernel looked up). */
  private knownIno(parent: number, name: Buffer): number | undefined {
    const ino = this.dentryCache.get(dentryKey(parent, name));
    return ino ? ino : undefined;
  }

  /** Answered from the daemon's caches synchronously when it can (no promise on the hot path). */
  lookup(ctx: RequestContext, name: Buffer): Reply<EntryOut> {
    if (name.length > NAME_MAX) return errnoReply(Errno.ENAMETOOLONG);
    if (this.coherence.subscribed) {
      const ino = this.dentryCache.get(dentryKey(ctx.nodeid, name));
      if (ino === 0) return negativeEntry(this.coherence.entryTimeout);
      const attr = ino === undefined ? undefined : this.attrCache.get(ino);
      if (attr) return this.entry(ctx.nodeid, name, attr);
    }
    return this.lookupRemote(ctx.nodeid, name);
  }

  private async lookupRemote(parent: number, name: Buffer): Promise<EntryOut> {
    const epoch = this.cacheEpoch;
    let attr: Attr | undefined;
    if (this.d.meta.lookupOptional) {
      attr = await this.d.meta.lookupOptional(this.fsId, parent, name);
    } else {
      try {
        attr = await this.d.meta.lookup(this.fsId, parent, name);
      } catch (err) {
        if (toErrno(err) !== Errno.ENOENT) throw err;
      }
    }
    if (attr) return this.entry(parent, name, attr, epoch);
    // A negative entry: the kernel remembers "no such name" until a create (ours or, through the
    // change feed, another client's) invalidates it.
    this.coherence.noteDentry(parent, name, 0);
    this.cacheDentry(parent, name, 0, epoch);
    return negativeEntry(this.coherence.entryTimeout);
  }

  forget(nodeid: number, nlookup: number): void {
    this.inodes.forget(nodeid, nlookup);
  }

  getattr(ctx: RequestContext, _req: GetattrIn): Reply<AttrOut> {
    const cached = this.coherence.subscribed ? this.attrCache.get(ctx.nodeid) : undefined;
    if (cached) return this.attrOut(cached);
    return this.getattrRemote(ctx.nodeid);
  }

  private async getattrRemote(ino: number): Promise<AttrOut> {
    const epoch = this.cacheEpoch;
    let attr: Attr;
    try {
      attr = await this.d.meta.getattr(this.fsId, ino);
    } catch (err) {
      // fstat of a directory removed while open (or someone's cwd) succeeds, with nlink 0.
      const gone = this.removedDirs.get(ino);
      if (gone && toErrno(err) === Errno.ENOENT) return this.attrOut(gone);
      throw err;
    }
    this.cacheAttr(attr, epoch);
    return this.attrOut(attr);
  }

  async setattr(ctx: RequestContext, req: SetattrIn): Promise<AttrOut> {
    const ino = ctx.nodeid;
    let attr: Attr | undefined;
    if (req.size !== undefined) {
      attr = await this.files.truncate(ino, req.size);
    }
    if (req.mtime !== undefined) {
      // Data written before an explicit mtime (cp -a, tar x, touch -d on an open file) is
      // committed first: committing it at close would stamp the commit's own time over the one set.
      const st = this.dataPath.get(ino);
      if (st && this.dataPath.isDirty(st)) await this.dataPath.flush(st);
    }
    const change: { -readonly [K in keyof SetAttrRequest]: SetAttrRequest[K] } = {};
    if (req.mode !== undefined) change.mode = req.mode;
    if (req.uid !== undefined) change.uid = req.uid;
    if (req.gid !== undefined) change.gid = req.gid;
    if (req.atime !== undefined) change.atime = req.atime;
    if (req.mtime !== undefined) change.mtime = req.mtime;
    if (req.ctime !== undefined) change.ctime = req.ctime;
    // FATTR_KILL_SUIDGID (FUSE_HANDLE_KILLPRIV_V2): a chown, or a truncate by a caller without
    // CAP_FSETID — the kernel leaves clearing the privilege bits to us.
    if (req.killSuidgid && change.mode === undefined) {
      const cur = attr ?? (await this.d.meta.getattr(this.fsId, ino));
      const bits = privBits(cur.mode);
      if (bits) change.mode = cur.mode & ~bits & 0o7777;
    }
    if (change.mode !== undefined) change.mode &= 0o7777;
    if (Object.keys(change).length > 0) {
      attr = await this.ownAttr(ino, () => this.d.meta.setattr(this.fsId, ino, change, this.caller(ctx)));
    }
    this.attrCache.delete(ino);
    attr ??= await this.d.meta.getattr(this.fsId, ino);
    const st = this.dataPath.get(ino);
    if (st) st.mode = attr.mode;
    return this.attrOut(attr);
  }

  /**
   * Clears the privilege bits (privBits) a write or O_TRUNC open by a caller without CAP_FSETID
   * clears, outside a SETATTR: the kernel, having no reply to learn it from, is told before the
   * request is answered, so a stat right after the write(2) shows the new mode. Returns the mode.
   */
  async killPriv(ino: number): Promise<number> {
    const cur = await this.d.meta.getattr(this.fsId, ino);
    const bits = privBits(cur.mode);
    if (!bits) return cur.mode;
    const system = { uid: 0, gid: 0, sessionId: this.d.sessionId };
    const attr = await this.ownAttr(ino, () => this.d.meta.setattr(this.fsId, ino, { mode: cur.mode & ~bits & 0o7777 }, system));
    this.attrCache.delete(ino);
    await this.coherence.invalAttrNow(ino);
    return attr.mode;
  }

  async readlink(ctx: RequestContext): Promise<Buffer> {
    return this.d.meta.readlink(this.fsId, ctx.nodeid);
  }

  async symlink(ctx: RequestContext, req: SymlinkIn): Promise<EntryOut> {
    checkName(req.name);
    if (req.target.length >= 4096) throw new FsError(Errno.ENAMETOOLONG, 'symlink target too long');
    const attr = await this.own([[ctx.nodeid, req.name]], () => this.d.meta.symlink(this.fsId, ctx.nodeid, req.name, req.target, this.caller(ctx)));
    return this.entry(ctx.nodeid, req.name, attr);
  }

  async mknod(ctx: RequestContext, req: MknodIn): Promise<EntryOut> {
    checkName(req.name);
    const mode = (req.mode & S_IFMT || S_IFREG) | (req.mode & 0o7777 & ~req.umask);
    const attr = await this.own([[ctx.nodeid, req.name]], () => this.d.meta.mknod(this.fsId, ctx.nodeid, req.name, mode, req.rdev, this.caller(ctx)));
    return this.entry(ctx.nodeid, req.name, attr);
  }

  async mkdir(ctx: RequestContext, req: MkdirIn): Promise<EntryOut> {
    checkName(req.name);
    const mode = req.mode & 0o7777 & ~req.umask;
    const attr = await this.own([[ctx.nodeid, req.name]], () => this.d.meta.mkdir(this.fsId, ctx.nodeid, req.name, mode, this.caller(ctx)));
    return this.entry(ctx.nodeid, req.name, attr);
  }

  async unlink(ctx: RequestContext, req: NameIn): Promise<void> {
    checkName(req.name);
    await this.files.protectOpen();
    const parent = ctx.nodeid;
    // The removed inode's attr echo is skipped too when we know which inode the kernel's dentry
    // names (nearly always: the create or lookup that handed it out said so). Checked against
    // the inode actually removed: a wrong guess (another client moved the name meanwhile) must
    // not swallow that inode's next change.
    const guess = this.coherence.guessIno(parent, req.name) ?? this.knownIno(parent, req.name);
    const cancelGuess = guess === undefined ? undefined : this.coherence.expectAttr(guess);
    let r: UnlinkResult;
    try {
      r = await this.own([[parent, req.name]], () => this.d.meta.unlink(this.fsId, parent, req.name, this.caller(ctx)));
    } catch (err) {
      cancelGuess?.();
      throw err;
    }
    if (r.ino !== guess) cancelGuess?.();
    this.coherence.dropDentry(parent, req.name);
    this.attrCache.delete(r.ino);
    if (r.nlink === 0) {
      if (this.inodes.get(r.ino) === undefined) this.dataPath.drop(r.ino);
      else this.deleted.add(r.ino);
    }
  }

  async rmdir(ctx: RequestContext, req: NameIn): Promise<void> {
    checkName(req.name);
    const parent = ctx.nodeid;
    // As in unlink, but rmdir does not say which inode it removed: the guess is expected only
    // while the op runs (the in-process feed delivers the echo before the op returns).
    const guess = this.coherence.guessIno(parent, req.name) ?? this.knownIno(parent, req.name);
    const cancelGuess = guess === undefined ? undefined : this.coherence.expectAttr(guess);
    let gone: Attr | undefined;
    try {
      gone = await this.own([[parent, req.name]], () => this.d.meta.rmdir(this.fsId, parent, req.name));
    } finally {
      cancelGuess?.();
    }
    this.coherence.dropDentry(parent, req.name);
    this.removedDir(gone);
  }

  /** A directory we removed (rmdir, rename over it): keep its last attributes while the kernel holds it. */
  private removedDir(gone: Attr | undefined): void {
    if (!gone) return;
    this.attrCache.delete(gone.ino);
    if (this.inodes.get(gone.ino) !== undefined) this.removedDirs.set(gone.ino, gone);
  }

  async rename(ctx: RequestContext, req: RenameIn): Promise<void> {
    checkName(req.name);
    checkName(req.newName);
    if (req.flags & RENAME_WHITEOUT) throw new FsError(Errno.EINVAL, 'RENAME_WHITEOUT is not supported');
    await this.files.protectOpen(); // a rename over an open file unlinks it
    const gone = await this.own([[ctx.nodeid, req.name], [req.newParent, req.newName]], () =>
      this.d.meta.rename(this.fsId, ctx.nodeid, req.name, req.newParent, req.newName, req.flags, this.caller(ctx)));
    this.coherence.renamed(ctx.nodeid, req.name, req.newParent, req.newName, (req.flags & RENAME_EXCHANGE) !== 0);
    // The moved inode's ctime and a replaced one's nlink changed; we do not know their numbers here.
    this.attrCache.clear();
    this.removedDir(gone);
  }

  async link(ctx: RequestContext, req: LinkIn): Promise<EntryOut> {
    checkName(req.newName);
    const attr = await this.own([[ctx.nodeid, req.newName]], () => this.d.meta.link(this.fsId, req.oldNodeid, ctx.nodeid, req.newName));
    return this.entry(ctx.nodeid, req.newName, attr);
  }

  async statfs(_ctx: RequestContext): Promise<StatfsOut> {
    const s = await this.d.meta.statfs(this.fsId);
    return { ...s, namelen: s.namelen || NAME_MAX };
  }

  access(_ctx: RequestContext, _req: AccessIn): void {
    // default_permissions: the kernel checked already; existence is all that is left.
  }

  // ---- xattrs -------------------------------------------------------------------------------

  setxattr(ctx: RequestContext, req: SetxattrIn): Reply<void> {
    if (this.warmup.handles(req.name)) return this.warmup.set(ctx, req.value);
    return this.xattrs.refused(req.name) ?? this.setxattrRemote(ctx.nodeid, req);
  }

  private async setxattrRemote(ino: number, req: SetxattrIn): Promise<void> {
    await this.ownAttr(ino, () => this.xattrs.set(ino, req.name, req.value, req.flags));
    this.attrCache.delete(ino);
  }

  getxattr(ctx: RequestContext, req: GetxattrIn): Reply<Buffer> {
    if (this.warmup.handles(req.name)) return this.warmup.get(ctx.nodeid);
    return this.xattrs.fast(ctx.nodeid, req.name) ?? this.xattrs.get(ctx.nodeid, req.name);
  }

  async listxattr(ctx: RequestContext): Promise<string[]> {
    return this.xattrs.list(ctx.nodeid);
  }

  async removexattr(ctx: RequestContext, req: RemovexattrIn): Promise<void> {
    await this.ownAttr(ctx.nodeid, () => this.xattrs.remove(ctx.nodeid, req.name));
    this.attrCache.delete(ctx.nodeid);
  }

  // ---- directories --------------------------------------------------------------------------

  /** The kernel may cache the listing while the change feed keeps it coherent (dir-ops.ts). */
  opendir(ctx: RequestContext, _req: OpenIn): OpenOut {
    return this.dirOps.open(ctx.nodeid);
  }

  readdir(_ctx: RequestContext, req: ReaddirIn, out: DirentSink): Promise<void> {
    return this.dirOps.readdir(req, out);
  }

  readdirplus(_ctx: RequestContext, req: ReaddirIn, out: DirentPlusSink): Promise<void> {
    return this.dirOps.readdirplus(req, out);
  }

  /** Listings are cached by the kernel: fetch each one with its entries (see RawFileSystem). */
  readonly readdirplusAlways = true;
  readonly handlesKillpriv = true;

  releasedir(_ctx: RequestContext, req: ReleaseIn): void {
    this.dirOps.release(req.fh);
  }

  fsyncdir(_ctx: RequestContext, _req: FsyncIn): Promise<void> {
    return this.durable();
  }

  /**
   * fsync/fsyncdir: a metaserver that acknowledges changes before they are durable (the embedded
   * namespace's 'written' mode) offers flush(); elsewhere every answered change is durable already.
   * Called structurally so this works whether or not the contract has the optional method.
   */
  async durable(): Promise<void> {
    const meta = this.d.meta as { flush?: (fsId: number) => Promise<void> };
    if (typeof meta.flush === 'function') await meta.flush(this.fsId);
  }

  // ---- files (file-ops.ts) ------------------------------------------------------------------

  create(ctx: RequestContext, req: CreateIn): Promise<CreateOut> {
    checkName(req.name);
    return this.files.create(ctx, req);
  }
  open(ctx: RequestContext, req: OpenIn): Promise<OpenOut> {
    return this.files.open(ctx, req);
  }
  read(_ctx: RequestContext, req: ReadIn): Promise<Buffer> {
    return this.files.read(req);
  }
  write(_ctx: RequestContext, req: WriteIn): Promise<WriteOut> {
    return this.files.write(req);
  }
  flush(_ctx: RequestContext, req: FlushIn): Promise<void> | undefined {
    return this.files.flush(req.fh);
  }
  fsync(_ctx: RequestContext, req: FsyncIn): Promise<void> {
    return this.files.fsync(req.fh);
  }
  release(_ctx: RequestContext, req: ReleaseIn): Promise<void> | undefined {
    return this.files.release(req.fh);
  }
  fallocate(ctx: RequestContext, req: FallocateIn): Promise<void> {
    return this.files.fallocate(ctx.nodeid, req);
  }
  lseek(ctx: RequestContext, req: LseekIn): Promise<LseekOut> {
    return this.files.lseek(ctx.nodeid, req);
  }
  copyFileRange(_ctx: RequestContext, req: CopyFileRangeIn): Promise<WriteOut> {
    return this.files.copyFileRange(req);
  }

  /** Whether the kernel currently holds a lookup on the inode. */
  known(ino: number): boolean {
    return this.inodes.get(ino) !== undefined;
  }

  get trackedInodes(): number {
    return this.inodes.size;
  }

  /** Unmount: upload what is dirty, stop the feed. */
  async shutdown(): Promise<void> {
    this.warmup.close();
    await this.dataPath.flushAll();
    await this.files.sessionBarrier();
    this.coherence.close();
  }
}

/** An inode's entry in the table, parent unknown yet (a closure per entry() cost a create). */
function newInodeRef(): InodeRef {
  return { parent: 0 };
}

function dentryKey(parent: number, name: Buffer): string {
  return `${parent}/${name.toString('latin1')}`;
}

function checkName(name: Buffer): void {
  if (name.length > NAME_MAX) throw new FsError(Errno.ENAMETOOLONG, `name of ${name.length} bytes`);
}

const ZERO = { sec: 0, nsec: 0 };
function negativeEntry(timeout: number): EntryOut {
  return {
    nodeid: 0, generation: 0, entryValid: timeout, attrValid: 0,
    attr: { ino: 0, size: 0, atime: ZERO, mtime: ZERO, ctime: ZERO, mode: 0, nlink: 0, uid: 0, gid: 0 },
  };
}
