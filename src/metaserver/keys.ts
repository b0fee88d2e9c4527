// Key layout of the namespace in the KV engine, and the key codecs. Every key starts with a table
// tag byte, then (except the GC queue and session index) the file system id, so several file
// systems share one store and one fs is one prefix. Integers are big-endian so byte order is
// numeric order (ranges and prefix scans rely on it).
//
//   'F' fs:u32                          -> FsRecord (chunk size, created)
//   'A' fs:u32 kind:u8                  -> allocator high-water mark (u64): kind 'i' inode, 'v' chunk version, 'c' cookie
//   'I' fs:u32 ino:u64                  -> inode (attrs; symlink target)
//   'D' fs:u32 parent:u64 name          -> dentry {ino, type, cookie}         (lookup by name)
//   'R' fs:u32 parent:u64 cookie:u64    -> readdir entry {ino, type, name}    (readdir in cookie order)
//   'X' fs:u32 ino:u64 name             -> xattr value
//   'K' fs:u32 ino:u64 index:u64        -> chunk {version, length}
//   'O' fs:u32 ino:u64                  -> orphan: nlink 0 but held open (value: unlink time ms)
//   'H' fs:u32 ino:u64                  -> holders: {session: open count} (one key, so releases compare on it)
//   'S' len:u8 session fs:u32 ino:u64   -> '' (what a session holds, for expireSession)
//   'G' due:u64 id:u64                  -> GC item {fs, ino, index, version} or whole inode (index -1)
//   'E' fs:u32                          -> events of the last txn (only when the feed is driven by a watch, e.g. etcd)
//
// Dentries are written twice ('D' and 'R') in the same txn: lookups need the name, readdir needs
// an order that never shifts while the directory changes (cookies only grow, so resuming after a
// cookie returns each unchanged entry exactly once).
import { fsError } from '../common/errno';
import { NAME_MAX } from './api';

export const T = {
  FS: 0x46, ALLOC: 0x41, INODE: 0x49, DENTRY: 0x44, READDIR: 0x52, XATTR: 0x58, CHUNK: 0x4b,
  ORPHAN: 0x4f, HOLD: 0x48, SESSION: 0x53, GC: 0x47, EVENTS: 0x45,
} as const;

export const ALLOC_INO = 0x69;
export const ALLOC_VERSION = 0x76;
export const ALLOC_COOKIE = 0x63;
/** The stray sweep's floor: versions below it may have been deleted if no chunk map held them (sweep.ts). */
export const ALLOC_SWEPT = 0x73;

const TWO32 = 0x1_0000_0000;

export function writeU64(buf: Buffer, n: number, off: number): void {
  buf.writeUInt32BE(Math.floor(n / TWO32), off);
  buf.writeUInt32BE(n >>> 0, off + 4);
}
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * TWO32 + buf.readUInt32BE(off + 4);
}

function head(tag: number, fsId: number, extra: number): Buffer {
  const b = Buffer.allocUnsafe(5 + extra);
  b[0] = tag;
  b.writeUInt32BE(fsId, 1);
  return b;
}

function tagFsU64(tag: number, fsId: number, n: number, tailLen = 0): Buffer {
  const b = head(tag, fsId, 8 + tailLen);
  writeU64(b, n, 5);
  return b;
}

function tagFsU64Name(tag: number, fsId: number, n: number, name: Buffer): Buffer {
  const b = tagFsU64(tag, fsId, n, name.length);
  name.copy(b, 13);
  return b;
}

export const fsKey = (fsId: number): Buffer => head(T.FS, fsId, 0);
export const fsPrefix = (fsId: number): Buffer => fsKey(fsId);
export const allFsPrefix = (): Buffer => Buffer.from([T.FS]);
export function allocKey(fsId: number, kind: number): Buffer {
  const b = head(T.ALLOC, fsId, 1);
  b[5] = kind;
  return b;
}
export const inodeKey = (fsId: number, ino: number): Buffer => tagFsU64(T.INODE, fsId, ino);
export const inodePrefix = (fsId: number): Buffer => head(T.INODE, fsId, 0);
export const dentryKey = (fsId: number, parent: number, name: Buffer): Buffer => tagFsU64Name(T.DENTRY, fsId, parent, name);
export const dentryPrefix = (fsId: number, parent?: number): Buffer =>
  parent === undefined ? head(T.DENTRY, fsId, 0) : tagFsU64(T.DENTRY, fsId, parent);
export function readdirKey(fsId: number, parent: number, cookie: number): Buffer {
  const b = tagFsU64(T.READDIR, fsId, parent, 8);
  writeU64(b, cookie, 13);
  return b;
}
export const readdirPrefix = (fsId: number, parent?: number): Buffer =>
  parent === undefined ? head(T.READDIR, fsId, 0) : tagFsU64(T.READDIR, fsId, parent);
export const xattrKey = (fsId: number, ino: number, name: Buffer): Buffer => tagFsU64Name(T.XATTR, fsId, ino, name);
export const xattrPrefix = (fsId: number, ino?: number): Buffer =>
  ino === undefined ? head(T.XATTR, fsId, 0) : tagFsU64(T.XATTR, fsId, ino);
export function chunkKey(fsId: number, ino: number, index: number): Buffer {
  const b = tagFsU64(T.CHUNK, fsId, ino, 8);
  writeU64(b, index, 13);
  return b;
}
export const chunkPrefix = (fsId: number, ino?: number): Buffer =>
  ino === undefined ? head(T.CHUNK, fsId, 0) : tagFsU64(T.CHUNK, fsId, ino);
export const orphanKey = (fsId: number, ino: number): Buffer => tagFsU64(T.ORPHAN, fsId, ino);
export const orphanPrefix = (fsId: number): Buffer => head(T.ORPHAN, fsId, 0);
export const holdKey = (fsId: number, ino: number): Buffer => tagFsU64(T.HOLD, fsId, ino);
export const holdPrefix = (fsId: number): Buffer => head(T.HOLD, fsId, 0);
export function sessionPrefix(session: string): Buffer {
  const s = Buffer.from(session, 'utf8');
  const b = Buffer.allocUnsafe(2 + s.length);
  b[0] = T.SESSION;
  b[1] = s.length;
  s.copy(b, 2);
  return b;
}
export function sessionKey(session: string, fsId: number, ino: number): Buffer {
  const p = sessionPrefix(session);
  const b = Buffer.allocUnsafe(p.length + 12);
  p.copy(b, 0);
  b.writeUInt32BE(fsId, p.length);
  writeU64(b, ino, p.length + 4);
  return b;
}
export function decodeSessionKey(key: Buffer): { fsId: number; ino: number } {
  const off = 2 + key[1];
  return { fsId: key.readUInt32BE(off), ino: readU64(key, off + 4) };
}
export function gcKey(dueMs: number, id: number): Buffer {
  const b = Buffer.allocUnsafe(17);
  b[0] = T.GC;
  writeU64(b, dueMs, 1);
  writeU64(b, id, 9);
  return b;
}
export const gcPrefix = (): Buffer => Buffer.from([T.GC]);
export const eventsKey = (fsId: number): Buffer => head(T.EVENTS, fsId, 0);

/** Inode number from an 'I', 'O' key; parent from a 'D'/'R' key. */
export const keyU64 = (key: Buffer): number => readU64(key, 5);
/** The name suffix of a 'D' or 'X' key. */
export const keyName = (key: Buffer): Buffer => key.subarray(13);
/** The cookie of an 'R' key or the chunk index of a 'K' key. */
export const keyU64b = (key: Buffer): number => readU64(key, 13);

/** Validates a dentry name: EINVAL for empty, '.', '..', '/' or NUL; ENAMETOOLONG past 255 bytes. */
export function checkName(name: Buffer, what = 'name'): void {
  if (name.length === 0) throw fsError('EINVAL', `${what} is empty`);
  if (name.length > NAME_MAX) throw fsError('ENAMETOOLONG', `${what} is ${name.length} bytes, the limit is ${NAME_MAX}`);
  if (name.length <= 2 && name[0] === 0x2e && (name.length === 1 || name[1] === 0x2e)) {
    throw fsError('EINVAL', `${what} '${name.toString()}' is reserved`);
  }
  if (name.includes(0x2f)) throw fsError('EINVAL', `${what} contains '/'`);
  if (name.includes(0)) throw fsError('EINVAL', `${what} contains a NUL byte`);
}
