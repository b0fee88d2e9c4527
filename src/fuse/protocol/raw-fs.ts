// The contract between the FUSE session (src/fuse/protocol/session.ts) and a file system: the
// inode-level operations the kernel sends, as typed requests and replies (cf. go-fuse RawFileSystem).
//
// How a handler answers
// - Every method is optional: an absent method is answered with ENOSYS (for several ops — flush,
//   fsync, xattrs, access, create, fallocate, lseek, statx, … — the kernel then stops sending
//   that opcode for the life of the mount). Exception: RELEASE/RELEASEDIR without a handler
//   succeed, since nothing was opened that needs closing.
// - A handler returns its reply (synchronously or as a Promise), or fails by throwing an FsError
//   (src/common/errno.ts) or by returning one (`return errnoReply(Errno.ENOENT)` allocates nothing,
//   handy on hot paths). Any other thrown value becomes EIO with one log line.
// - `ctx.nodeid` is the inode the request is about; for name operations (lookup, mkdir, create,
//   unlink, rename, link, …) it is the PARENT directory.
// - Handlers run concurrently: the session reads the next request before the previous one is
//   answered. `ctx.signal` is aborted when the kernel sends INTERRUPT for the request.
//
// Lookup counts (the rule every inode-based FUSE file system lives by): each reply that hands the
// kernel an entry with a non-zero nodeid — lookup, mknod, mkdir, symlink, link, create, and every
// readdirplus entry actually packed (add() returned true) except "." and ".." — increments the
// kernel's lookup count of that nodeid by one. The kernel gives them back with forget(nodeid, n).
// src/fuse/vfs/inode-table.ts keeps those counts. A reply that fails to reach the kernel (it
// answered an interrupted request) leaks a count: harmless, the inode just stays known longer.
//
// Times: entryValid / attrValid are seconds (fractions allowed); 0 = do not cache.
import { FsError } from '../../common/errno';

/** seconds + nanoseconds; structurally the same as metaserver's Timespec. */
export interface Timespec {
  readonly sec: number;
  readonly nsec: number;
}

export interface RequestContext {
  /** The request's id on the connection (traces and kernel tracepoints show it). */
  readonly unique: number;
  /** Target inode; the parent directory for name operations. 1 = root. */
  readonly nodeid: number;
  readonly uid: number;
  readonly gid: number;
  readonly pid: number;
  /** Aborted when the kernel interrupts the request (the caller got a signal). Created lazily. */
  readonly signal: AbortSignal;
}

/** struct fuse_attr, friendly form. blocks defaults to ceil(size / 512), blksize to 4096. */
export interface FuseAttr {
  readonly ino: number;
  readonly size: number;
  readonly blocks?: number;
  readonly atime: Timespec;
  readonly mtime: Timespec;
  readonly ctime: Timespec;
  /** Full st_mode: S_IFMT type bits | permissions. */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev?: number;
  readonly blksize?: number;
}

/** fuse_entry_out. nodeid 0 = a negative entry the kernel caches for entryValid seconds. */
export interface EntryOut {
  readonly nodeid: number;
  readonly generation: number;
  readonly entryValid: number;
  readonly attrValid: number;
  readonly attr: FuseAttr;
}

/** fuse_attr_out */
export interface AttrOut {
  readonly attrValid: number;
  readonly attr: FuseAttr;
}

/** fuse_open_out open_flags bits. */
/** open_in.open_flags: an O_TRUNC open by a caller without CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2). */
export const FUSE_OPEN_KILL_SUIDGID = 1 << 0;
/** write_in.write_flags: a write by a caller without CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2). */
export const FUSE_WRITE_KILL_SUIDGID = 1 << 2;

export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_STREAM = 1 << 4;
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PARALLEL_DIRECT_WRITES = 1 << 6;
/** Needs backingId from FuseConnection.backing.open(fd); the kernel then does the file's I/O. */
export const FOPEN_PASSTHROUGH = 1 << 7;

/** fuse_open_out */
export interface OpenOut {
  readonly fh: number;
  readonly openFlags?: number;
  /** With FOPEN_PASSTHROUGH: the id returned by backing.open(). */
  readonly backingId?: number;
}

export interface CreateOut {
  readonly entry: EntryOut;
  readonly open: OpenOut;
}

/** fuse_kstatfs */
export interface StatfsOut {
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly bsize: number;
  readonly namelen: number;
  readonly frsize: number;
}

// ---- requests ---------------------------------------------------------------------------------

/** FATTR_* bits of setattr's `valid`. */
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

export interface GetattrIn {
  /** Present when the kernel asks about an open file (fstat). */
  readonly fh?: number;
}

/** Only the present fields change. 'now' = UTIME_NOW (the daemon's clock). */
export interface SetattrIn {
  /** Raw FATTR_* bits, for anything the friendly fields do not say. */
  readonly valid: number;
  readonly fh?: number;
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly atime?: Timespec | 'now';
  readonly mtime?: Timespec | 'now';
  readonly ctime?: Timespec;
  /** FATTR_KILL_SUIDGID: clear setuid/setgid as part of this change. */
  readonly killSuidgid: boolean;
}

export interface MknodIn { readonly name: Buffer; readonly mode: number; readonly rdev: number; readonly umask: number }
export interface MkdirIn { readonly name: Buffer; readonly mode: number; readonly umask: number }
export interface SymlinkIn { readonly name: Buffer; readonly target: Buffer }
export interface NameIn { readonly name: Buffer }

export const RENAME_NOREPLACE = 1 << 0;
export const RENAME_EXCHANGE = 1 << 1;
export const RENAME_WHITEOUT = 1 << 2;
/** RENAME and RENAME2 both arrive here; flags = 0 for plain rename. ctx.nodeid = old parent. */
export interface RenameIn { readonly name: Buffer; readonly newParent: number; readonly newName: Buffer; readonly flags: number }
/** ctx.nodeid = the NEW parent directory; oldNodeid = the inode getting another name. */
export interface LinkIn { readonly oldNodeid: number; readonly newName: Buffer }

/** flags = open(2) flags (O_ACCMODE, O_TRUNC with ATOMIC_O_TRUNC, O_APPEND, O_DIRECT, …). */
export interface OpenIn { readonly flags: number; readonly openFlags: number }
export interface CreateIn { readonly name: Buffer; readonly flags: number; readonly mode: number; readonly umask: number; readonly openFlags: number }

export interface ReadIn { readonly fh: number; readonly offset: number; readonly size: number; readonly readFlags: number; readonly lockOwner: number; readonly flags: number }
export interface WriteIn { readonly fh: number; readonly offset: number; readonly data: Buffer; readonly writeFlags: number; readonly lockOwner: number; readonly flags: number }
export interface WriteOut { readonly size: number }

export interface ReleaseIn { readonly fh: number; readonly flags: number; readonly releaseFlags: number; readonly lockOwner: number }
export interface FlushIn { readonly fh: number; readonly lockOwner: number }
export interface FsyncIn { readonly fh: number; readonly datasync: boolean }

export interface SetxattrIn { readonly name: string; readonly value: Buffer; readonly flags: number; readonly setxattrFlags: number }
export interface GetxattrIn { readonly name: string; readonly size: number }
export interface RemovexattrIn { readonly name: string }

export interface ReaddirIn { readonly fh: number; readonly offset: number; readonly size: number }
export interface AccessIn { readonly mask: number }

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export interface FallocateIn { readonly fh: number; readonly offset: number; readonly length: number; readonly mode: number }

export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export interface LseekIn { readonly fh: number; readonly offset: number; readonly whence: number }
export interface LseekOut { readonly offset: number }

/** ctx.nodeid = the source inode. */
export interface CopyFileRangeIn {
  readonly fhIn: number; readonly offIn: number;
  readonly nodeidOut: number; readonly fhOut: number; readonly offOut: number;
  readonly len: number; readonly flags: number;
}

// ---- directory listings -------------------------------------------------------------------------

/** One readdir entry. `off` is the cookie the kernel passes back to continue AFTER this entry. */
export interface Dirent {
  readonly ino: number;
  readonly off: number;
  readonly name: Buffer;
  /** File type bits (mode & S_IFMT), or 0 if unknown. */
  readonly type: number;
}
export interface DirentPlus extends Dirent {
  /** The entry as a lookup would return it; nodeid 0 = "no attributes for this one". */
  readonly entry: EntryOut;
}

/**
 * The session's reply buffer for READDIR, bounded by the kernel's size. add() packs one entry
 * and returns false (packing nothing) once it does not fit: stop there and resume at that entry
 * next time.
 */
export interface DirentSink {
  add(e: Dirent): boolean;
  readonly count: number;
}
/**
 * READDIRPLUS: as DirentSink. add() returning true hands e.entry to the kernel, so the handler
 * must ref() that inode once — except for "." and "..", which the sink packs with nodeid 0 (the
 * kernel takes no count for them); add() reports that as 'noref'.
 */
export interface DirentPlusSink {
  add(e: DirentPlus): boolean | 'noref';
  readonly count: number;
}

// ---- the connection a file system gets at INIT --------------------------------------------------

/**
 * Reverse messages to the kernel. They are written off the event loop (the kernel may block a
 * notification on a lock held by a request this daemon has yet to answer), so each returns a
 * Promise of 0 or a negative errno; -ENOENT = the kernel had nothing cached (harmless).
 *
 * Inside a handler, fire and forget: do not await a notification about the directory or inode
 * the request is operating on. The kernel holds that directory's lock (or the page locks) until
 * the handler replies, and INVAL_ENTRY / INVAL_INODE wait for the same locks.
 */
export interface Notifier {
  /** off = -1: attributes only; off 0 and len 0: attributes and the whole page cache. */
  invalInode(ino: number, off: number, len: number): Promise<number>;
  invalEntry(parent: number, name: Buffer): Promise<number>;
  /** Like invalEntry, and also tells the kernel that `child` under that name is gone (unlink). */
  delete(parent: number, child: number, name: Buffer): Promise<number>;
  /** Ask the kernel to resend every request it has pending (after a daemon restart). */
  resend(): Promise<number>;
}

/** FUSE passthrough backing files (kernel 6.9+, CAP_SYS_ADMIN, negotiated at INIT). */
export interface BackingFiles {
  /** Registers an open fd; returns the backingId for OpenOut. Throws FsError (EPERM if off). */
  open(fd: number): number;
  close(backingId: number): void;
}

export interface FuseConnection {
  /** Kernel protocol version as offered in INIT. */
  readonly kernelMajor: number;
  readonly kernelMinor: number;
  /** The negotiated FUSE_* init flags (64-bit). */
  readonly flags: bigint;
  /** Passthrough was asked for and granted: backing.open() works. */
  readonly passthrough: boolean;
  readonly maxWrite: number;
  readonly maxReadahead: number;
  /** Kernel device number of the mount (tracepoints' `connection` field). */
  readonly connectionId: number;
  readonly notify: Notifier;
  readonly backing: BackingFiles;
}

// ---- the interface ---------------------------------------------------------------------------

export type MaybePromise<T> = T | Promise<T>;
/** A reply, or an FsError returned (not thrown) to fail cheaply. */
export type Reply<T> = MaybePromise<T | FsError>;

export interface RawFileSystem {
  /** After the INIT reply was written: the connection is usable (notify, backing). */
  init?(conn: FuseConnection): MaybePromise<void>;
  /** The kernel ended the session (DESTROY) or the connection closed. */
  destroy?(): void;

  lookup?(ctx: RequestContext, name: Buffer): Reply<EntryOut>;
  /** No reply. n is the number of lookups the kernel gives back. */
  forget?(nodeid: number, nlookup: number): void;
  /** Defaults to forget() per item. */
  batchForget?(items: ReadonlyArray<{ readonly nodeid: number; readonly nlookup: number }>): void;

  getattr?(ctx: RequestContext, req: GetattrIn): Reply<AttrOut>;
  setattr?(ctx: RequestContext, req: SetattrIn): Reply<AttrOut>;
  readlink?(ctx: RequestContext): Reply<Buffer>;
  symlink?(ctx: RequestContext, req: SymlinkIn): Reply<EntryOut>;
  mknod?(ctx: RequestContext, req: MknodIn): Reply<EntryOut>;
  mkdir?(ctx: RequestContext, req: MkdirIn): Reply<EntryOut>;
  unlink?(ctx: RequestContext, req: NameIn): Reply<void>;
  rmdir?(ctx: RequestContext, req: NameIn): Reply<void>;
  rename?(ctx: RequestContext, req: RenameIn): Reply<void>;
  link?(ctx: RequestContext, req: LinkIn): Reply<EntryOut>;

  open?(ctx: RequestContext, req: OpenIn): Reply<OpenOut>;
  /** May return fewer bytes than asked (EOF). */
  read?(ctx: RequestContext, req: ReadIn): Reply<Buffer>;
  write?(ctx: RequestContext, req: WriteIn): Reply<WriteOut>;
  statfs?(ctx: RequestContext): Reply<StatfsOut>;
  release?(ctx: RequestContext, req: ReleaseIn): Reply<void>;
  fsync?(ctx: RequestContext, req: FsyncIn): Reply<void>;
  flush?(ctx: RequestContext, req: FlushIn): Reply<void>;

  setxattr?(ctx: RequestContext, req: SetxattrIn): Reply<void>;
  /** Return the whole value; the session answers size probes and ERANGE. */
  getxattr?(ctx: RequestContext, req: GetxattrIn): Reply<Buffer>;
  /** Return all names; the session packs them and answers size probes and ERANGE. */
  listxattr?(ctx: RequestContext): Reply<string[]>;
  removexattr?(ctx: RequestContext, req: RemovexattrIn): Reply<void>;

  opendir?(ctx: RequestContext, req: OpenIn): Reply<OpenOut>;
  readdir?(ctx: RequestContext, req: ReaddirIn, out: DirentSink): Reply<void>;
  readdirplus?(ctx: RequestContext, req: ReaddirIn, out: DirentPlusSink): Reply<void>;
  /**
   * With readdirplus: every listing read is a READDIRPLUS (no READDIRPLUS_AUTO, where the kernel
   * asks for attributes only at offset 0 and after lookups in the directory). For a file system
   * whose listings the kernel caches (FOPEN_CACHE_DIR): a listing fetched once should bring its
   * entries, or a later `ls -l` of the cached listing costs a LOOKUP per name.
   */
  readonly readdirplusAlways?: boolean;
  /**
   * The file system clears S_ISUID/S_ISGID itself on write, truncate, O_TRUNC open and chown, as
   * the kernel flags them (FUSE_HANDLE_KILLPRIV_V2). The kernel then stops asking for
   * security.capability before every write (it marks inodes S_NOSEC), which otherwise costs one
   * GETXATTR round trip per write(2) — passthrough writes included.
   */
  readonly handlesKillpriv?: boolean;
  releasedir?(ctx: RequestContext, req: ReleaseIn): Reply<void>;
  fsyncdir?(ctx: RequestContext, req: FsyncIn): Reply<void>;

  access?(ctx: RequestContext, req: AccessIn): Reply<void>;
  create?(ctx: RequestContext, req: CreateIn): Reply<CreateOut>;
  fallocate?(ctx: RequestContext, req: FallocateIn): Reply<void>;
  lseek?(ctx: RequestContext, req: LseekIn): Reply<LseekOut>;
  copyFileRange?(ctx: RequestContext, req: CopyFileRangeIn): Reply<WriteOut>;
}

const errnoReplies = new Map<number, FsError>();
/** A shared FsError for `return errnoReply(Errno.ENOENT)`: no allocation, no stack capture. */
export function errnoReply(errno: number): FsError {
  let e = errnoReplies.get(errno);
  if (!e) errnoReplies.set(errno, (e = new FsError(errno)));
  return e;
}

// ---- mounting (implemented by src/fuse/protocol/mount.ts: `mount(fs, mountpoint, options)`) ----

export interface MountOptions {
  /** Other users may access the mount (allow_other). Default false. */
  readonly allowOther?: boolean;
  /** The kernel checks permissions from the attributes (default_permissions). Default true. */
  readonly defaultPermissions?: boolean;
  /** Ask for FUSE passthrough at INIT (root, kernel 6.9+). Default false. */
  readonly passthrough?: boolean;
  /** Largest WRITE payload; the read buffer is this + 8 KiB. Default 1 MiB. */
  readonly maxWrite?: number;
  /** Largest readahead the kernel may do (bytes). Default 1 MiB. */
  readonly maxReadahead?: number;
  /** Source name shown in /proc/mounts. Default "kurve". */
  readonly fsname?: string;
  /** fstype suffix: the mount is "fuse.<subtype>". Default "kurve". */
  readonly subtype?: string;
  /** Mount read-only (MS_RDONLY). */
  readonly readOnly?: boolean;
  /**
   * What wakes the request loop when /dev/fuse is readable: 'uv-poll' (a uv_poll on Node's own
   * loop) or 'epoll' (npm epoll's watcher thread). See docs/fuse-loop.md. Default 'uv-poll'.
   */
  readonly loop?: 'uv-poll' | 'epoll';
  /**
   * After the last request is answered, keep reading /dev/fuse (non-blocking) for this long
   * before waiting in epoll again (µs; 0 = never). On a VM whose idle vCPUs halt, every wakeup of
   * a sleeping daemon costs tens of µs; a client that sends its next request within the window
   * finds the daemon awake. Costs CPU: at most this much per burst of requests. Default 0.
   */
  readonly pollMicros?: number;
  /**
   * A request answered this many ms or more after it was read is reported to onSlow (0 = off).
   * Measured by the session itself, so the file system's methods run unwrapped.
   */
  readonly slowMs?: number;
  readonly onSlow?: (opcode: number, nodeid: number, ms: number) => void;
}

/** Per-opcode request counts as the session saw them (cross-check with kernel tracepoints). */
export type OpCounts = Readonly<Record<string, number>>;

/** A mounted file system. unmount() never hangs; 'closed' fires once whichever way it ends. */
export interface FuseSessionApi {
  readonly mountpoint: string;
  /** Kernel device number of the mount (major << 20 | minor), = tracepoints' `connection`. */
  readonly connectionId: number;
  readonly notify: Notifier;
  readonly backing: BackingFiles;
  /** Requests received per opcode name (e.g. GETATTR), including FORGET and INTERRUPT. */
  opCounts(): OpCounts;
  /** Requests currently being handled. */
  readonly inflight: number;
  /** Detach-unmounts and closes /dev/fuse; resolves when the session ended. Idempotent. */
  unmount(): Promise<void>;
  /** Resolves when the session ended (unmount(), external umount, or abort). */
  readonly closed: Promise<void>;
  on(event: 'closed', listener: () => void): this;
}
