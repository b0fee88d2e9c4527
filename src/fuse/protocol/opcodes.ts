// The FUSE opcodes (include/uapi/linux/fuse.h, enum fuse_opcode) in one typed table: the
// fixed-size body each request carries, how many NUL-terminated names follow it, and whether the
// kernel expects a reply. The session and the tracer read this table; nothing else spells them.

export enum Opcode {
  LOOKUP = 1,
  FORGET = 2,
  GETATTR = 3,
  SETATTR = 4,
  READLINK = 5,
  SYMLINK = 6,
  MKNOD = 8,
  MKDIR = 9,
  UNLINK = 10,
  RMDIR = 11,
  RENAME = 12,
  LINK = 13,
  OPEN = 14,
  READ = 15,
  WRITE = 16,
  STATFS = 17,
  RELEASE = 18,
  FSYNC = 20,
  SETXATTR = 21,
  GETXATTR = 22,
  LISTXATTR = 23,
  REMOVEXATTR = 24,
  FLUSH = 25,
  INIT = 26,
  OPENDIR = 27,
  READDIR = 28,
  RELEASEDIR = 29,
  FSYNCDIR = 30,
  GETLK = 31,
  SETLK = 32,
  SETLKW = 33,
  ACCESS = 34,
  CREATE = 35,
  INTERRUPT = 36,
  BMAP = 37,
  DESTROY = 38,
  IOCTL = 39,
  POLL = 40,
  NOTIFY_REPLY = 41,
  BATCH_FORGET = 42,
  FALLOCATE = 43,
  READDIRPLUS = 44,
  RENAME2 = 45,
  LSEEK = 46,
  COPY_FILE_RANGE = 47,
  SETUPMAPPING = 48,
  REMOVEMAPPING = 49,
  SYNCFS = 50,
  TMPFILE = 51,
  STATX = 52,
}

export interface OpSpec {
  readonly name: string;
  /** Size of the fixed struct after fuse_in_header (0 = none; names or data follow directly). */
  readonly inSize: number;
  /** NUL-terminated names after the fixed struct (SYMLINK's second "name" is the target). */
  readonly names: 0 | 1 | 2;
  /** FORGET, BATCH_FORGET and INTERRUPT are never answered. */
  readonly noReply?: true;
}

// Sizes are the kernel structs' (checked in test/unit/fuse-protocol-wire.test.ts).
export const OPS = {
  [Opcode.LOOKUP]: { name: 'LOOKUP', inSize: 0, names: 1 },
  [Opcode.FORGET]: { name: 'FORGET', inSize: 8, names: 0, noReply: true },
  [Opcode.GETATTR]: { name: 'GETATTR', inSize: 16, names: 0 },
  [Opcode.SETATTR]: { name: 'SETATTR', inSize: 88, names: 0 },
  [Opcode.READLINK]: { name: 'READLINK', inSize: 0, names: 0 },
  [Opcode.SYMLINK]: { name: 'SYMLINK', inSize: 0, names: 2 },
  [Opcode.MKNOD]: { name: 'MKNOD', inSize: 16, names: 1 },
  [Opcode.MKDIR]: { name: 'MKDIR', inSize: 8, names: 1 },
  [Opcode.UNLINK]: { name: 'UNLINK', inSize: 0, names: 1 },
  [Opcode.RMDIR]: { name: 'RMDIR', inSize: 0, names: 1 },
  [Opcode.RENAME]: { name: 'RENAME', inSize: 8, names: 2 },
  [Opcode.LINK]: { name: 'LINK', inSize: 8, names: 1 },
  [Opcode.OPEN]: { name: 'OPEN', inSize: 8, names: 0 },
  [Opcode.READ]: { name: 'READ', inSize: 40, names: 0 },
  [Opcode.WRITE]: { name: 'WRITE', inSize: 40, names: 0 },
  [Opcode.STATFS]: { name: 'STATFS', inSize: 0, names: 0 },
  [Opcode.RELEASE]: { name: 'RELEASE', inSize: 24, names: 0 },
  [Opcode.FSYNC]: { name: 'FSYNC', inSize: 16, names: 0 },
  // 8 bytes: we do not negotiate FUSE_SETXATTR_EXT (which makes it 16).
  [Opcode.SETXATTR]: { name: 'SETXATTR', inSize: 8, names: 1 },
  [Opcode.GETXATTR]: { name: 'GETXATTR', inSize: 8, names: 1 },
  [Opcode.LISTXATTR]: { name: 'LISTXATTR', inSize: 8, names: 0 },
  [Opcode.REMOVEXATTR]: { name: 'REMOVEXATTR', inSize: 0, names: 1 },
  [Opcode.FLUSH]: { name: 'FLUSH', inSize: 24, names: 0 },
  [Opcode.INIT]: { name: 'INIT', inSize: 16, names: 0 },
  [Opcode.OPENDIR]: { name: 'OPENDIR', inSize: 8, names: 0 },
  [Opcode.READDIR]: { name: 'READDIR', inSize: 40, names: 0 },
  [Opcode.RELEASEDIR]: { name: 'RELEASEDIR', inSize: 24, names: 0 },
  [Opcode.FSYNCDIR]: { name: 'FSYNCDIR', inSize: 16, names: 0 },
  [Opcode.GETLK]: { name: 'GETLK', inSize: 48, names: 0 },
  [Opcode.SETLK]: { name: 'SETLK', inSize: 48, names: 0 },
  [Opcode.SETLKW]: { name: 'SETLKW', inSize: 48, names: 0 },
  [Opcode.ACCESS]: { name: 'ACCESS', inSize: 8, names: 0 },
  [Opcode.CREATE]: { name: 'CREATE', inSize: 16, names: 1 },
  [Opcode.INTERRUPT]: { name: 'INTERRUPT', inSize: 8, names: 0, noReply: true },
  [Opcode.BMAP]: { name: 'BMAP', inSize: 16, names: 0 },
  [Opcode.DESTROY]: { name: 'DESTROY', inSize: 0, names: 0 },
  [Opcode.IOCTL]: { name: 'IOCTL', inSize: 32, names: 0 },
  [Opcode.POLL]: { name: 'POLL', inSize: 24, names: 0 },
  [Opcode.NOTIFY_REPLY]: { name: 'NOTIFY_REPLY', inSize: 40, names: 0, noReply: true },
  [Opcode.BATCH_FORGET]: { name: 'BATCH_FORGET', inSize: 8, names: 0, noReply: true },
  [Opcode.FALLOCATE]: { name: 'FALLOCATE', inSize: 32, names: 0 },
  [Opcode.READDIRPLUS]: { name: 'READDIRPLUS', inSize: 40, names: 0 },
  [Opcode.RENAME2]: { name: 'RENAME2', inSize: 16, names: 2 },
  [Opcode.LSEEK]: { name: 'LSEEK', inSize: 24, names: 0 },
  [Opcode.COPY_FILE_RANGE]: { name: 'COPY_FILE_RANGE', inSize: 56, names: 0 },
  [Opcode.SETUPMAPPING]: { name: 'SETUPMAPPING', inSize: 40, names: 0 },
  [Opcode.REMOVEMAPPING]: { name: 'REMOVEMAPPING', inSize: 4, names: 0 },
  [Opcode.SYNCFS]: { name: 'SYNCFS', inSize: 8, names: 0 },
  [Opcode.TMPFILE]: { name: 'TMPFILE', inSize: 16, names: 1 },
  [Opcode.STATX]: { name: 'STATX', inSize: 24, names: 0 },
} as const satisfies Record<Opcode, OpSpec>;

const byCode: ReadonlyMap<number, OpSpec> = new Map(Object.entries(OPS).map(([k, v]) => [Number(k), v as OpSpec]));

export function opSpec(opcode: number): OpSpec | undefined {
  return byCode.get(opcode);
}

export function opName(opcode: number): string {
  return byCode.get(opcode)?.name ?? `OP${opcode}`;
}

export const NOTIFY = { POLL: 1, INVAL_INODE: 2, INVAL_ENTRY: 3, STORE: 4, RETRIEVE: 5, DELETE: 6, RESEND: 7 } as const;

/** INIT flags (64-bit: bits 32..63 travel in flags2). */
export const InitFlag = {
  ASYNC_READ: 1n << 0n,
  POSIX_LOCKS: 1n << 1n,
  ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n,
  DONT_MASK: 1n << 6n,
  FLOCK_LOCKS: 1n << 10n,
  AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n,
  WRITEBACK_CACHE: 1n << 16n,
  PARALLEL_DIROPS: 1n << 18n,
  HANDLE_KILLPRIV: 1n << 19n,
  POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  EXPLICIT_INVAL_DATA: 1n << 25n,
  HANDLE_KILLPRIV_V2: 1n << 28n,
  SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n,
  HAS_EXPIRE_ONLY: 1n << 35n,
  PASSTHROUGH: 1n << 37n,
  NO_EXPORT_SUPPORT: 1n << 38n,
  HAS_RESEND: 1n << 39n,
} as const;

export const FUSE_KERNEL_VERSION = 7;
/** The protocol minor we speak (7.44: the fuse_init_out with max_stack_depth and passthrough). */
export const FUSE_KERNEL_MINOR_VERSION = 44;
