// A small in-memory RawFileSystem for the FUSE protocol tests only (the real file system lives in
// src/fuse). Inode-based like passthrough_hp: lookup counts in the vfs InodeTable, so a forget
// the kernel did not owe us fails the test (session.bugs).
import * as fs from 'node:fs';
import { Errno, fsError } from '../../src/common/errno';
import {
  errnoReply, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH, RENAME_EXCHANGE, RENAME_NOREPLACE,
  type AttrOut, type CreateOut, type DirentPlusSink, type DirentSink, type EntryOut, type FuseAttr, type FuseConnection,
  type OpenOut, type RawFileSystem, type Reply, type ReaddirIn, type RequestContext, type SetattrIn, type Timespec,
} from '../../src/fuse/protocol/raw-fs';
import { HandleTable } from '../../src/fuse/vfs/handle-table';
import { InodeTable, ROOT_NODEID } from '../../src/fuse/vfs/inode-table';
import { DirStream, dotEntries, fillDirents, fillDirentsPlus, type ListedEntry } from '../../src/fuse/vfs/readdir';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

interface Node {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  data: Buffer;
  children?: Map<string, number>;
  parent: number;
  target?: Buffer;
  xattrs: Map<string, Buffer>;
  /** A real file served by FUSE passthrough. */
  backingPath?: string;
}

interface FileHandle { node: Node; backingId?: number; backingFd?: number }
interface DirHandle { node: Node; stream: DirStream<ListedEntry> }

function now(): Timespec {
  const ms = Date.now();
  return { sec: Math.floor(ms / 1000), nsec: (ms % 1000) * 1e6 };
}
const key = (name: Buffer): string => name.toString('latin1');

export interface MemFsOptions {
  /** Seconds; default 0 (every stat reaches the daemon). */
  readonly entryValid?: number;
  readonly attrValid?: number;
  /** Open every file with FOPEN_KEEP_CACHE. */
  readonly keepCache?: boolean;
  /** Methods to leave out (the session answers them ENOSYS). */
  readonly omit?: ReadonlyArray<keyof RawFileSystem>;
}

export class MemFs implements RawFileSystem {
  readonly nodes = new Map<number, Node>();
  readonly inodes: InodeTable<Node>;
  readonly files = new HandleTable<FileHandle>();
  readonly dirs = new HandleTable<DirHandle>();
  conn: FuseConnection | undefined;
  destroyed = false;
  private nextIno = 2;

  constructor(private readonly opts: MemFsOptions = {}) {
    const root = this.newNode(S_IFDIR | 0o755, ROOT_NODEID, ROOT_NODEID);
    this.inodes = new InodeTable(root);
    for (const k of opts.omit ?? []) Object.defineProperty(this, k, { value: undefined });
  }

  // ---- test conveniences ---------------------------------------------------------------------

  /** A file in the root whose reads go to `realPath` through FUSE passthrough. */
  addBackedFile(name: string, realPath: string): Node {
    const root = this.nodes.get(ROOT_NODEID)!;
    const n = this.newNode(S_IFREG | 0o644, this.nextIno++, ROOT_NODEID);
    n.backingPath = realPath;
    n.size = fs.statSync(realPath).size;
    root.children!.set(name, n.ino);
    return n;
  }

  nodeByPath(rel: string): Node | undefined {
    let n = this.nodes.get(ROOT_NODEID);
    for (const part of rel.split('/').filter(Boolean)) {
      const ino = n?.children?.get(part);
      n = ino === undefined ? undefined : this.nodes.get(ino);
    }
    return n;
  }

  // ---- RawFileSystem -------------------------------------------------------------------------

  init(conn: FuseConnection): void {
    this.conn = conn;
  }

  destroy(): void {
    this.destroyed = true;
  }

  lookup(ctx: RequestContext, name: Buffer): EntryOut | ReturnType<typeof errnoReply> {
    const dir = this.dir(ctx.nodeid);
    const ino = dir.children!.get(key(name));
    if (ino === undefined) return errnoReply(Errno.ENOENT);
    return this.entry(this.nodes.get(ino)!);
  }

  forget(nodeid: number, nlookup: number): void {
    this.inodes.forget(nodeid, nlookup);
  }

  getattr(ctx: RequestContext): Reply<AttrOut> {
    return { attrValid: this.opts.attrValid ?? 0, attr: this.attr(this.node(ctx.nodeid)) };
  }

  setattr(ctx: RequestContext, req: SetattrIn): AttrOut {
    const n = this.node(ctx.nodeid);
    if (req.mode !== undefined) n.mode = (n.mode & S_IFMT) | (req.mode & ~S_IFMT);
    if (req.uid !== undefined) n.uid = req.uid;
    if (req.gid !== undefined) n.gid = req.gid;
    if (req.size !== undefined) this.truncate(n, req.size);
    if (req.atime !== undefined) n.atime = req.atime === 'now' ? now() : req.atime;
    if (req.mtime !== undefined) n.mtime = req.mtime === 'now' ? now() : req.mtime;
    n.ctime = now();
    return { attrValid: this.opts.attrValid ?? 0, attr: this.attr(n) };
  }

  readlink(ctx: RequestContext): Buffer {
    const n = this.node(ctx.nodeid);
    if (!n.target) throw fsError('EINVAL', 'not a symlink');
    return n.target;
  }

  symlink(ctx: RequestContext, req: { name: Buffer; target: Buffer }): EntryOut {
    const n = this.create0(ctx, req.name, S_IFLNK | 0o777);
    n.target = req.target;
    n.size = req.target.length;
    return this.entry(n);
  }

  mknod(ctx: RequestContext, req: { name: Buffer; mode: number; rdev: number; umask: number }): EntryOut {
    const n = this.create0(ctx, req.name, req.mode & ~req.umask);
    n.rdev = req.rdev;
    return this.entry(n);
  }

  mkdir(ctx: RequestContext, req: { name: Buffer; mode: number; umask: number }): Reply<EntryOut> {
    const n = this.create0(ctx, req.name, S_IFDIR | (req.mode & ~req.umask & 0o7777));
    this.dir(ctx.nodeid).nlink++;
    return this.entry(n);
  }

  unlink(ctx: RequestContext, req: { name: Buffer }): void {
    const dir = this.dir(ctx.nodeid);
    const ino = dir.children!.get(key(req.name));
    if (ino === undefined) throw fsError('ENOENT');
    const n = this.nodes.get(ino)!;
    if ((n.mode & S_IFMT) === S_IFDIR) throw fsError('EISDIR');
    dir.children!.delete(key(req.name));
    n.nlink--;
    n.ctime = dir.mtime = dir.ctime = now();
  }

  rmdir(ctx: RequestContext, req: { name: Buffer }): void {
    const dir = this.dir(ctx.nodeid);
    const ino = dir.children!.get(key(req.name));
    if (ino === undefined) throw fsError('ENOENT');
    const n = this.nodes.get(ino)!;
    if (!n.children) throw fsError('ENOTDIR');
    if (n.children.size > 0) throw fsError('ENOTEMPTY');
    dir.children!.delete(key(req.name));
    dir.nlink--;
    n.nlink = 0;
  }

  rename(ctx: RequestContext, req: { name: Buffer; newParent: number; newName: Buffer; flags: number }): void {
    const from = this.dir(ctx.nodeid);
    const to = this.dir(req.newParent);
    const ino = from.children!.get(key(req.name));
    if (ino === undefined) throw fsError('ENOENT');
    const existing = to.children!.get(key(req.newName));
    if (req.flags & RENAME_NOREPLACE && existing !== undefined) throw fsError('EEXIST');
    if (req.flags & RENAME_EXCHANGE) {
      if (existing === undefined) throw fsError('ENOENT');
      from.children!.set(key(req.name), existing);
      to.children!.set(key(req.newName), ino);
      return;
    }
    if (existing !== undefined) {
      const victim = this.nodes.get(existing)!;
      if (victim.children && victim.children.size > 0) throw fsError('ENOTEMPTY');
      victim.nlink = 0;
    }
    from.children!.delete(key(req.name));
    to.children!.set(key(req.newName), ino);
    this.nodes.get(ino)!.parent = to.ino;
  }

  link(ctx: RequestContext, req: { oldNodeid: number; newName: Buffer }): EntryOut {
    const dir = this.dir(ctx.nodeid);
    if (dir.children!.has(key(req.newName))) throw fsError('EEXIST');
    const n = this.node(req.oldNodeid);
    dir.children!.set(key(req.newName), n.ino);
    n.nlink++;
    return this.entry(n);
  }

  open(ctx: RequestContext, req: { flags: number }): OpenOut {
    const n = this.node(ctx.nodeid);
    if (req.flags & fs.constants.O_TRUNC) this.truncate(n, 0);
    const h: FileHandle = { node: n };
    let openFlags = this.opts.keepCache ? FOPEN_KEEP_CACHE : 0;
    if (n.backingPath) {
      h.backingFd = fs.openSync(n.backingPath, 'r');
      h.backingId = this.conn!.backing.open(h.backingFd);
      openFlags |= FOPEN_PASSTHROUGH;
    }
    return { fh: this.files.add(h), openFlags, backingId: h.backingId };
  }

  read(_ctx: RequestContext, req: { fh: number; offset: number; size: number }): Buffer {
    const h = this.files.need(req.fh);
    if (h.node.backingPath) {
      const b = Buffer.alloc(req.size);
      return b.subarray(0, fs.readSync(h.backingFd!, b, 0, req.size, req.offset));
    }
    return h.node.data.subarray(Math.min(req.offset, h.node.size), Math.min(req.offset + req.size, h.node.size));
  }

  write(_ctx: RequestContext, req: { fh: number; offset: number; data: Buffer }): { size: number } {
    const n = this.files.need(req.fh).node;
    const end = req.offset + req.data.length;
    if (end > n.data.length) {
      const grown = Buffer.alloc(Math.max(end, n.data.length * 2));
      n.data.copy(grown, 0, 0, n.size);
      n.data = grown;
    }
    req.data.copy(n.data, req.offset);
    n.size = Math.max(n.size, end);
    n.mtime = n.ctime = now();
    return { size: req.data.length };
  }

  statfs(): { blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number; frsize: number } {
    return { blocks: 1000, bfree: 500, bavail: 400, files: 100, ffree: 100 - this.nodes.size, bsize: 4096, namelen: 255, frsize: 4096 };
  }

  release(_ctx: RequestContext, req: { fh: number }): void {
    const h = this.files.release(req.fh);
    if (h?.backingId !== undefined) this.conn!.backing.close(h.backingId);
    if (h?.backingFd !== undefined) fs.closeSync(h.backingFd);
  }

  flush(): void {}

  fsync(): void {}

  setxattr(ctx: RequestContext, req: { name: string; value: Buffer; flags: number }): void {
    const n = this.node(ctx.nodeid);
    if (req.flags === 1 && n.xattrs.has(req.name)) throw fsError('EEXIST');
    if (req.flags === 2 && !n.xattrs.has(req.name)) throw fsError('ENODATA');
    n.xattrs.set(req.name, req.value);
  }

  getxattr(ctx: RequestContext, req: { name: string }): Buffer {
    const v = this.node(ctx.nodeid).xattrs.get(req.name);
    if (!v) throw fsError('ENODATA');
    return v;
  }

  listxattr(ctx: RequestContext): string[] {
    return [...this.node(ctx.nodeid).xattrs.keys()];
  }

  removexattr(ctx: RequestContext, req: { name: string }): void {
    if (!this.node(ctx.nodeid).xattrs.delete(req.name)) throw fsError('ENODATA');
  }

  opendir(ctx: RequestContext): OpenOut {
    return { fh: this.dirs.add({ node: this.dir(ctx.nodeid), stream: new DirStream() }) };
  }

  async readdir(_ctx: RequestContext, req: ReaddirIn, out: DirentSink): Promise<void> {
    const h = this.dirs.need(req.fh);
    fillDirents(out, await h.stream.entriesAt(req.offset, () => this.list(h.node)), req.offset);
  }

  async readdirplus(_ctx: RequestContext, req: ReaddirIn, out: DirentPlusSink): Promise<void> {
    const h = this.dirs.need(req.fh);
    const entries = await h.stream.entriesAt(req.offset, () => this.list(h.node));
    fillDirentsPlus(out, entries, req.offset, (e) => this.entry0(this.nodes.get(e.ino)!), (e) => this.inodes.ref(e.ino, () => this.nodes.get(e.ino)!));
  }

  releasedir(_ctx: RequestContext, req: { fh: number }): void {
    this.dirs.release(req.fh);
  }

  create(ctx: RequestContext, req: { name: Buffer; flags: number; mode: number; umask: number }): CreateOut {
    const n = this.create0(ctx, req.name, S_IFREG | (req.mode & ~req.umask & 0o7777));
    const entry = this.entry(n);
    return { entry, open: { fh: this.files.add({ node: n }), openFlags: this.opts.keepCache ? FOPEN_KEEP_CACHE : 0 } };
  }

  // ---- internals -----------------------------------------------------------------------------

  private newNode(mode: number, ino: number, parent: number): Node {
    const t = now();
    const n: Node = {
      ino, mode, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1, uid: 0, gid: 0, rdev: 0, size: 0,
      atime: t, mtime: t, ctime: t, data: Buffer.alloc(0), parent, xattrs: new Map(),
      children: (mode & S_IFMT) === S_IFDIR ? new Map() : undefined,
    };
    this.nodes.set(ino, n);
    return n;
  }

  private create0(ctx: RequestContext, name: Buffer, mode: number): Node {
    const dir = this.dir(ctx.nodeid);
    if (dir.children!.has(key(name))) throw fsError('EEXIST');
    const n = this.newNode(mode, this.nextIno++, dir.ino);
    n.uid = ctx.uid;
    n.gid = ctx.gid;
    dir.children!.set(key(name), n.ino);
    dir.mtime = dir.ctime = now();
    return n;
  }

  private truncate(n: Node, size: number): void {
    if (size > n.data.length) {
      const grown = Buffer.alloc(size);
      n.data.copy(grown, 0, 0, n.size);
      n.data = grown;
    } else {
      n.data.fill(0, size);
    }
    n.size = size;
    n.mtime = n.ctime = now();
  }

  private list(dir: Node): ListedEntry[] {
    const entries = dotEntries(dir.ino, dir.parent);
    for (const [name, ino] of dir.children!) entries.push({ name: Buffer.from(name, 'latin1'), ino, type: this.nodes.get(ino)!.mode & S_IFMT });
    return entries;
  }

  private node(ino: number): Node {
    this.inodes.need(ino); // the kernel may only ask about inodes it was given
    const n = this.nodes.get(ino);
    if (!n) throw fsError('ESTALE');
    return n;
  }

  private dir(ino: number): Node {
    const n = this.node(ino);
    if (!n.children) throw fsError('ENOTDIR');
    return n;
  }

  private attr(n: Node): FuseAttr {
    return { ino: n.ino, size: n.size, atime: n.atime, mtime: n.mtime, ctime: n.ctime, mode: n.mode, nlink: n.nlink, uid: n.uid, gid: n.gid, rdev: n.rdev };
  }

  /** An entry without a ref (readdirplus refs only what the sink packed). */
  private entry0(n: Node): EntryOut {
    return { nodeid: n.ino, generation: 0, entryValid: this.opts.entryValid ?? 0, attrValid: this.opts.attrValid ?? 0, attr: this.attr(n) };
  }

  /** Every entry handed to the kernel goes through here: one ref each. */
  private entry(n: Node): EntryOut {
    this.inodes.ref(n.ino, () => n);
    return this.entry0(n);
  }
}
