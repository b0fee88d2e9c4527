// The metaserver's contract: what a client (the FUSE file system, the CLI, fsck) can ask of the
// namespace. Implemented in-process by Namespace (embedded `kurve up`) and over gRPC by
// MetaClient; both throw FsError with a POSIX errno, never anything else for a POSIX failure.
//
// Names are Buffers: Linux names are bytes (any byte but '/' and NUL), not necessarily UTF-8.

export type Ino = number;
export const ROOT_INO: Ino = 1;
export const NAME_MAX = 255;
export const XATTR_NAME_MAX = 255;
export const XATTR_SIZE_MAX = 65536;

export interface Timespec {
  readonly sec: number;
  readonly nsec: number;
}

export interface Attr {
  readonly ino: Ino;
  /** Bumped when an inode number is reused, so (ino, generation) is unique forever. */
  readonly generation: number;
  /** Full st_mode: file type bits | permission bits. */
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  readonly size: number;
  readonly atime: Timespec;
  readonly mtime: Timespec;
  readonly ctime: Timespec;
  /** Bumped by every data commit and truncate: clients key their page cache and chunk cache on it. */
  readonly dataVersion: number;
  /**
   * Regular files: 512-byte blocks the data occupies in the datastore (st_blocks; holes and
   * punched-out chunks hold none). Absent when the server does not know (an older record/server).
   */
  readonly blocks?: number;
}

/** Who is asking: new inodes take the caller's uid/gid (the kernel checks permissions). */
export interface Caller {
  readonly uid: number;
  readonly gid: number;
  /** The client session (from the MDS) that holds open handles; orphans are tied to it. */
  readonly sessionId?: string;
}

/** setattr: only the present fields change. 'now' = UTIME_NOW (server clock). */
export interface SetAttrRequest {
  readonly mode?: number;
  readonly uid?: number;
  readonly gid?: number;
  readonly size?: number;
  readonly atime?: Timespec | 'now';
  readonly mtime?: Timespec | 'now';
  /** Explicit ctime (rarely set; setattr always updates ctime itself). */
  readonly ctime?: Timespec;
}

export interface StatFs {
  readonly blocks: number;
  readonly bfree: number;
  readonly bavail: number;
  readonly files: number;
  readonly ffree: number;
  readonly bsize: number;
  readonly namelen: number;
  readonly frsize: number;
}

export interface DirEntry {
  readonly name: Buffer;
  readonly ino: Ino;
  /** File type bits (mode & S_IFMT). */
  readonly type: number;
  /** Cookie to resume after this entry; stable while the directory changes; always ≥ 3 (1, 2 are free for '.', '..'). */
  readonly cookie: number;
  /** Present when readdir was asked for attributes (READDIRPLUS). */
  readonly attr?: Attr;
}

export interface ReadDirResult {
  readonly entries: DirEntry[];
  readonly eof: boolean;
}

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const XATTR_CREATE = 1;
export const XATTR_REPLACE = 2;

/** One chunk of a file's data: object (fs, ino, index, version) in the datastore. */
export interface ChunkRef {
  readonly index: number;
  readonly version: number;
  /** Bytes stored in the object (≤ chunk size; the file may be shorter: size wins). */
  readonly length: number;
}

export interface DataMap {
  readonly ino: Ino;
  readonly size: number;
  readonly dataVersion: number;
  readonly chunkSize: number;
  readonly chunks: ChunkRef[];
}

export interface CommitDataRequest {
  /** Chunks that replace the ones with the same index. */
  readonly chunks: ChunkRef[];
  /** New file size (writes past EOF extend it). */
  readonly size: number;
  /** Set mtime/ctime to now (a write happened). */
  readonly touch: boolean;
}

export interface UnlinkResult {
  readonly ino: Ino;
  readonly nlink: number;
  /** nlink reached 0 but a session holds the inode open: kept as an orphan until released. */
  readonly orphaned: boolean;
}

/** Change feed events: enough for a client to invalidate exactly what changed. */
export type ChangeEvent =
  | { readonly seq: number; readonly kind: 'entry'; readonly parent: Ino; readonly name: Buffer }
  | { readonly seq: number; readonly kind: 'attr'; readonly ino: Ino }
  | { readonly seq: number; readonly kind: 'data'; readonly ino: Ino; readonly dataVersion: number }
  /** The server cannot serve the requested sequence any more: drop every cache. */
  | { readonly seq: number; readonly kind: 'reset' };

export interface Subscription {
  close(): void;
}

export interface SubscribeHandlers {
  event(e: ChangeEvent): void;
  /** The stream ended (server gone, network): the client must treat its caches as stale. */
  error(err: Error): void;
}

/** The namespace of one file system, as a client sees it. */
export interface MetaService {
  statfs(fsId: number): Promise<StatFs>;
  lookup(fsId: number, parent: Ino, name: Buffer): Promise<Attr>;
  /** lookup() answering a missing name with undefined (in-process only: no exception per miss). */
  lookupOptional?(fsId: number, parent: Ino, name: Buffer): Promise<Attr | undefined>;
  getattr(fsId: number, ino: Ino): Promise<Attr>;
  setattr(fsId: number, ino: Ino, req: SetAttrRequest, caller: Caller): Promise<Attr>;
  /** Regular files, fifos, sockets, char/block devices; EEXIST if the name exists. */
  mknod(fsId: number, parent: Ino, name: Buffer, mode: number, rdev: number, caller: Caller): Promise<Attr>;
  mkdir(fsId: number, parent: Ino, name: Buffer, mode: number, caller: Caller): Promise<Attr>;
  symlink(fsId: number, parent: Ino, name: Buffer, target: Buffer, caller: Caller): Promise<Attr>;
  readlink(fsId: number, ino: Ino): Promise<Buffer>;
  link(fsId: number, ino: Ino, newParent: Ino, newName: Buffer): Promise<Attr>;
  unlink(fsId: number, parent: Ino, name: Buffer, caller: Caller): Promise<UnlinkResult>;
  /** The removed directory's last attributes (nlink 0); undefined from a metaserver too old to say. */
  rmdir(fsId: number, parent: Ino, name: Buffer): Promise<Attr | undefined>;
  /** The empty directory it replaced and removed, if any (as rmdir's answer). */
  rename(fsId: number, parent: Ino, name: Buffer, newParent: Ino, newName: Buffer, flags: number, caller: Caller): Promise<Attr | undefined>;
  /** Entries after `cookie` (0 = from the start; '.' and '..' are the client's business). */
  readdir(fsId: number, ino: Ino, cookie: number, limit: number, plus: boolean): Promise<ReadDirResult>;

  getxattr(fsId: number, ino: Ino, name: string): Promise<Buffer>;
  setxattr(fsId: number, ino: Ino, name: string, value: Buffer, flags: number): Promise<void>;
  listxattr(fsId: number, ino: Ino): Promise<string[]>;
  removexattr(fsId: number, ino: Ino, name: string): Promise<void>;

  /** Chunk map of a file. */
  getDataMap(fsId: number, ino: Ino): Promise<DataMap>;
  /** Unique, increasing chunk versions for a writer to use for new objects. */
  allocChunkVersions(fsId: number, count: number): Promise<number>;
  /** Atomically replaces chunks and sets the size; bumps dataVersion; old objects are collected. */
  commitData(fsId: number, ino: Ino, req: CommitDataRequest): Promise<Attr>;

  /** A session opened the inode: it survives unlink (as an orphan) until released. */
  openInode(fsId: number, ino: Ino, sessionId: string): Promise<void>;
  releaseInode(fsId: number, ino: Ino, sessionId: string): Promise<void>;
  /** The MDS says a session expired: release everything it held. */
  expireSession(sessionId: string): Promise<number>;

  /** Change feed from `fromSeq` (exclusive; 0 = from now). */
  subscribe(fsId: number, fromSeq: number, handlers: SubscribeHandlers): Subscription;

  /**
   * Optional: make every acknowledged namespace change of this fs durable (survive a machine
   * crash) before resolving — the client calls it for FSYNC/FSYNCDIR. Only needed where changes
   * are acknowledged before fsync (the embedded namespace in 'written' mode); elsewhere a no-op.
   */
  flush?(fsId: number): Promise<void>;
}

export interface CreateFsOptions {
  /** Bytes per chunk object (default 4 MiB; 4 KiB..64 MiB). */
  readonly chunkSize?: number;
  readonly rootMode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * The administrative side (the MDS, embedded mode, tools): implemented by Namespace and MetaClient.
 * createFs makes the file system's root; it is idempotent for the same chunk size (false = existed).
 */
export interface MetaAdmin {
  createFs(fsId: number, opts?: CreateFsOptions): Promise<boolean>;
  listFs(): Promise<Array<{ readonly fsId: number; readonly chunkSize: number; readonly createdMs: number }>>;
  expireSession(sessionId: string): Promise<number>;
}
