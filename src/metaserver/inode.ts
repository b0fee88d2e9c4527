// Stored records of the namespace (inode, dentry, readdir entry, chunk, fs) and their binary
// codecs. Fixed little layouts instead of JSON: lookups and getattrs decode one of these per call.
import { fsError } from '../common/errno';
import type { Attr, ChunkRef, Timespec } from './api';
import { readU64, writeU64 } from './keys';

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;
export const S_ISGID = 0o2000;

export const isDir = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;
export const isReg = (mode: number): boolean => (mode & S_IFMT) === S_IFREG;
export const isLnk = (mode: number): boolean => (mode & S_IFMT) === S_IFLNK;

/** First readdir cookie: 1 and 2 are left to the client for '.' and '..'. */
export const FIRST_COOKIE = 3;

/** A mutable inode as the namespace ops edit it inside one transaction. */
export interface InodeRec {
  ino: number;
  generation: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: number;
  atime: Timespec;
  mtime: Timespec;
  ctime: Timespec;
  dataVersion: number;
  /** Directories: next readdir cookie to hand out (only grows). */
  nextCookie: number;
  /** Directories: the parent directory ('..'), for the rename-into-own-subtree check. */
  parent: number;
  /** Symlinks: the target. */
  target?: Buffer;
  /**
   * Regular files: bytes the chunk objects occupy (each chunk's stored length rounded up to 4 KiB),
   * reported as st_blocks. Undefined for a record written before it was kept (recomputed from the
   * chunk map at its next data change).
   */
  alloc?: number;
}

const FIXED = 96;
/** Regular files append their allocated bytes (u64) after the fixed part; symlinks their target. */
const ALLOC_BYTES = 8;

function writeTime(b: Buffer, t: Timespec, off: number): void {
  b.writeDoubleBE(t.sec, off);
  b.writeUInt32BE(t.nsec, off + 8);
}
function readTime(b: Buffer, off: number): Timespec {
  return { sec: b.readDoubleBE(off), nsec: b.readUInt32BE(off + 8) };
}

export function encodeInode(r: InodeRec): Buffer {
  const t = r.target;
  const withAlloc = r.alloc !== undefined && isReg(r.mode);
  const b = Buffer.allocUnsafe(FIXED + (t ? t.length : 0) + (withAlloc ? ALLOC_BYTES : 0));
  b.writeUInt32BE(r.mode, 0);
  b.writeUInt32BE(r.nlink, 4);
  b.writeUInt32BE(r.uid, 8);
  b.writeUInt32BE(r.gid, 12);
  b.writeUInt32BE(r.rdev, 16);
  b.writeUInt32BE(r.generation, 20);
  writeU64(b, r.size, 24);
  writeTime(b, r.atime, 32);
  writeTime(b, r.mtime, 44);
  writeTime(b, r.ctime, 56);
  writeU64(b, r.dataVersion, 68);
  writeU64(b, r.nextCookie, 76);
  writeU64(b, r.parent, 84);
  b.writeUInt32BE(0, 92);
  if (t) t.copy(b, FIXED);
  if (withAlloc) writeU64(b, r.alloc!, FIXED);
  return b;
}

/** Just the mode of an encoded inode (a negative lookup per file create checks its parent's type). */
export function inodeMode(ino: number, b: Buffer): number {
  if (b.length < FIXED) throw fsError('EIO', `inode ${ino}: corrupt record (${b.length} bytes)`);
  return b.readUInt32BE(0);
}

export function decodeInode(ino: number, b: Buffer): InodeRec {
  const mode = inodeMode(ino, b);
  return {
    ino,
    mode,
    nlink: b.readUInt32BE(4),
    uid: b.readUInt32BE(8),
    gid: b.readUInt32BE(12),
    rdev: b.readUInt32BE(16),
    generation: b.readUInt32BE(20),
    size: readU64(b, 24),
    atime: readTime(b, 32),
    mtime: readTime(b, 44),
    ctime: readTime(b, 56),
    dataVersion: readU64(b, 68),
    nextCookie: readU64(b, 76),
    parent: readU64(b, 84),
    target: isLnk(mode) ? Buffer.from(b.subarray(FIXED)) : undefined,
    alloc: isReg(mode) && b.length >= FIXED + ALLOC_BYTES ? readU64(b, FIXED) : undefined,
  };
}

export function toAttr(r: InodeRec): Attr {
  const a: { -readonly [K in keyof Attr]: Attr[K] } = {
    ino: r.ino, generation: r.generation, mode: r.mode, nlink: r.nlink, uid: r.uid, gid: r.gid,
    rdev: r.rdev, size: r.size, atime: r.atime, mtime: r.mtime, ctime: r.ctime, dataVersion: r.dataVersion,
  };
  // Set on the object, not by a spread into a second one: two attrs are made per file create.
  if (r.alloc !== undefined && isReg(r.mode)) a.blocks = Math.ceil(r.alloc / 512);
  return a;
}

/** Bytes a chunk object of `length` stored bytes is counted as occupying (4 KiB blocks). */
export function allocOf(length: number): number {
  return Math.ceil(length / 4096) * 4096;
}

/** 'D' value: which inode a name points to, its type, and its readdir cookie. */
export interface Dentry {
  readonly ino: number;
  readonly type: number;
  readonly cookie: number;
}

export function encodeDentry(d: Dentry): Buffer {
  const b = Buffer.allocUnsafe(20);
  writeU64(b, d.ino, 0);
  b.writeUInt32BE(d.type, 8);
  writeU64(b, d.cookie, 12);
  return b;
}
export function decodeDentry(b: Buffer): Dentry {
  return { ino: readU64(b, 0), type: b.readUInt32BE(8), cookie: readU64(b, 12) };
}

/** 'R' value: the entry readdir returns at a cookie. */
export function encodeReaddirEntry(ino: number, type: number, name: Buffer): Buffer {
  const b = Buffer.allocUnsafe(12 + name.length);
  writeU64(b, ino, 0);
  b.writeUInt32BE(type, 8);
  name.copy(b, 12);
  return b;
}
export function decodeReaddirEntry(b: Buffer): { ino: number; type: number; name: Buffer } {
  return { ino: readU64(b, 0), type: b.readUInt32BE(8), name: Buffer.from(b.subarray(12)) };
}

/** 'K' value. */
export function encodeChunk(c: ChunkRef): Buffer {
  const b = Buffer.allocUnsafe(12);
  writeU64(b, c.version, 0);
  b.writeUInt32BE(c.length, 8);
  return b;
}
export function decodeChunk(index: number, b: Buffer): ChunkRef {
  return { index, version: readU64(b, 0), length: b.readUInt32BE(8) };
}

/** 'F' value. */
export interface FsRecord {
  readonly fsId: number;
  readonly chunkSize: number;
  readonly createdMs: number;
}
export function encodeFs(r: FsRecord): Buffer {
  return Buffer.from(JSON.stringify(r));
}
export function decodeFs(b: Buffer): FsRecord {
  return JSON.parse(b.toString()) as FsRecord;
}

export function u64Value(n: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, n, 0);
  return b;
}
export const readU64Value = (b: Buffer): number => readU64(b, 0);

/**
 * Server clock as a Timespec, with nanosecond resolution: the monotonic clock offset from the wall
 * clock, re-anchored only if the two drift apart by more than a second (e.g. the clock was set).
 */
let anchorNs = BigInt(Date.now()) * 1_000_000n;
let anchorHr = process.hrtime.bigint();
export function nowTs(): Timespec {
  let ns = anchorNs + (process.hrtime.bigint() - anchorHr);
  const wallNs = BigInt(Date.now()) * 1_000_000n;
  if (ns - wallNs > 1_000_000_000n || wallNs - ns > 1_000_000_000n) {
    anchorNs = wallNs;
    anchorHr = process.hrtime.bigint();
    ns = wallNs;
  }
  return { sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) };
}
