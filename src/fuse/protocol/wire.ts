// Byte layouts of the FUSE kernel structs (include/uapi/linux/fuse.h, little-endian x86_64/arm64):
// size constants, request decoders and reply encoders. Checked against the kernel header by
// test/unit/fuse-protocol-wire.test.ts. Everything here is synchronous and allocation-light:
// it runs once per request on the event loop.
import type { FuseAttr, EntryOut, AttrOut, OpenOut, StatfsOut, SetattrIn, Timespec } from './raw-fs';

export const IN_HEADER_SIZE = 40;
export const OUT_HEADER_SIZE = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT_SIZE = 128;
export const ATTR_OUT_SIZE = 104;
export const OPEN_OUT_SIZE = 16;
export const INIT_IN_SIZE = 64;
export const INIT_IN_COMPAT_SIZE = 16;
export const INIT_OUT_SIZE = 64;
export const KSTATFS_SIZE = 80;
export const WRITE_OUT_SIZE = 8;
export const GETXATTR_OUT_SIZE = 8;
export const LSEEK_OUT_SIZE = 8;
export const FORGET_ONE_SIZE = 16;
export const DIRENT_SIZE = 24;
export const DIRENTPLUS_SIZE = ENTRY_OUT_SIZE + DIRENT_SIZE;
export const NOTIFY_INVAL_INODE_SIZE = 24;
export const NOTIFY_INVAL_ENTRY_SIZE = 16;
export const NOTIFY_DELETE_SIZE = 24;
export const BACKING_MAP_SIZE = 16;

const TWO32 = 0x1_0000_0000;

/** u64 as a JS number (exact below 2^53, which nodeids, fhs and offsets stay under). */
export function getU64(b: Buffer, off: number): number {
  return b.readUInt32LE(off) + b.readUInt32LE(off + 4) * TWO32;
}
export function putU64(b: Buffer, off: number, v: number): void {
  if (v < 0) {
    b.writeBigInt64LE(BigInt(Math.trunc(v)), off);
    return;
  }
  b.writeUInt32LE(v % TWO32 >>> 0, off);
  b.writeUInt32LE(Math.floor(v / TWO32) >>> 0, off + 4);
}
export function getI64(b: Buffer, off: number): number {
  return Number(b.readBigInt64LE(off));
}

// ---- headers --------------------------------------------------------------------------------

export interface InHeader {
  len: number;
  opcode: number;
  /** The unique as a number (approximate only for resent requests, which set bit 63). */
  unique: number;
  uniqueLo: number;
  uniqueHi: number;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function decodeInHeader(b: Buffer, off = 0): InHeader {
  const uniqueLo = b.readUInt32LE(off + 8);
  const uniqueHi = b.readUInt32LE(off + 12);
  return {
    len: b.readUInt32LE(off),
    opcode: b.readUInt32LE(off + 4),
    unique: uniqueLo + uniqueHi * TWO32,
    uniqueLo,
    uniqueHi,
    nodeid: getU64(b, off + 16),
    uid: b.readUInt32LE(off + 24),
    gid: b.readUInt32LE(off + 28),
    pid: b.readUInt32LE(off + 32),
  };
}

/** fuse_out_header; error is 0 or a negative errno; unique 0 + error = notify code for notifications. */
export function writeOutHeader(b: Buffer, off: number, len: number, error: number, uniqueLo: number, uniqueHi: number): void {
  b.writeUInt32LE(len, off);
  b.writeInt32LE(error, off + 4);
  b.writeUInt32LE(uniqueLo, off + 8);
  b.writeUInt32LE(uniqueHi, off + 12);
}

// ---- attributes and entries ---------------------------------------------------------------------

function putTime(b: Buffer, secOff: number, nsecOff: number, t: Timespec): void {
  putU64(b, secOff, t.sec);
  b.writeUInt32LE(t.nsec >>> 0, nsecOff);
}

export function writeAttr(b: Buffer, off: number, a: FuseAttr): void {
  putU64(b, off, a.ino);
  putU64(b, off + 8, a.size);
  putU64(b, off + 16, a.blocks ?? Math.ceil(a.size / 512));
  putTime(b, off + 24, off + 48, a.atime);
  putTime(b, off + 32, off + 52, a.mtime);
  putTime(b, off + 40, off + 56, a.ctime);
  b.writeUInt32LE(a.mode >>> 0, off + 60);
  b.writeUInt32LE(a.nlink >>> 0, off + 64);
  b.writeUInt32LE(a.uid >>> 0, off + 68);
  b.writeUInt32LE(a.gid >>> 0, off + 72);
  b.writeUInt32LE((a.rdev ?? 0) >>> 0, off + 76);
  b.writeUInt32LE(a.blksize ?? 4096, off + 80);
  b.writeUInt32LE(0, off + 84); // flags: no submounts, no DAX
}

export function readAttr(b: Buffer, off: number): FuseAttr {
  return {
    ino: getU64(b, off), size: getU64(b, off + 8), blocks: getU64(b, off + 16),
    atime: { sec: getU64(b, off + 24), nsec: b.readUInt32LE(off + 48) },
    mtime: { sec: getU64(b, off + 32), nsec: b.readUInt32LE(off + 52) },
    ctime: { sec: getU64(b, off + 40), nsec: b.readUInt32LE(off + 56) },
    mode: b.readUInt32LE(off + 60), nlink: b.readUInt32LE(off + 64), uid: b.readUInt32LE(off + 68),
    gid: b.readUInt32LE(off + 72), rdev: b.readUInt32LE(off + 76), blksize: b.readUInt32LE(off + 80),
  };
}

/** Seconds (fractions allowed, negative = 0) as the kernel's u64 sec + u32 nsec. */
function putValid(b: Buffer, secOff: number, nsecOff: number, seconds: number): void {
  const s = seconds > 0 ? seconds : 0;
  const whole = Math.floor(s);
  putU64(b, secOff, whole);
  b.writeUInt32LE(Math.min(999_999_999, Math.round((s - whole) * 1e9)), nsecOff);
}

export function writeEntryOut(b: Buffer, off: number, e: EntryOut): void {
  putU64(b, off, e.nodeid);
  putU64(b, off + 8, e.generation);
  putValid(b, off + 16, off + 32, e.entryValid);
  putValid(b, off + 24, off + 36, e.attrValid);
  writeAttr(b, off + 40, e.attr);
}

export function writeAttrOut(b: Buffer, off: number, a: AttrOut): void {
  putValid(b, off, off + 8, a.attrValid);
  b.writeUInt32LE(0, off + 12);
  writeAttr(b, off + 16, a.attr);
}

export function writeOpenOut(b: Buffer, off: number, o: OpenOut): void {
  putU64(b, off, o.fh);
  b.writeUInt32LE((o.openFlags ?? 0) >>> 0, off + 8);
  b.writeInt32LE(o.backingId ?? 0, off + 12);
}

export function writeStatfs(b: Buffer, off: number, s: StatfsOut): void {
  putU64(b, off, s.blocks);
  putU64(b, off + 8, s.bfree);
  putU64(b, off + 16, s.bavail);
  putU64(b, off + 24, s.files);
  putU64(b, off + 32, s.ffree);
  b.writeUInt32LE(s.bsize >>> 0, off + 40);
  b.writeUInt32LE(s.namelen >>> 0, off + 44);
  b.writeUInt32LE(s.frsize >>> 0, off + 48);
  b.fill(0, off + 52, off + KSTATFS_SIZE);
}

// ---- INIT --------------------------------------------------------------------------------------

export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  /** flags | flags2 << 32 (flags2 only when the kernel sets INIT_EXT). */
  flags: bigint;
}

export function decodeInitIn(b: Buffer, off: number, len: number): InitIn {
  let flags = BigInt(b.readUInt32LE(off + 12));
  if (len >= INIT_IN_SIZE && (flags & (1n << 30n)) !== 0n) flags |= BigInt(b.readUInt32LE(off + 16)) << 32n;
  return { major: b.readUInt32LE(off), minor: b.readUInt32LE(off + 4), maxReadahead: b.readUInt32LE(off + 8), flags };
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
  maxStackDepth: number;
}

export function writeInitOut(b: Buffer, off: number, o: InitOut): void {
  b.fill(0, off, off + INIT_OUT_SIZE);
  b.writeUInt32LE(o.major, off);
  b.writeUInt32LE(o.minor, off + 4);
  b.writeUInt32LE(o.maxReadahead, off + 8);
  b.writeUInt32LE(Number(o.flags & 0xffff_ffffn), off + 12);
  b.writeUInt16LE(o.maxBackground, off + 16);
  b.writeUInt16LE(o.congestionThreshold, off + 18);
  b.writeUInt32LE(o.maxWrite, off + 20);
  b.writeUInt32LE(o.timeGran, off + 24);
  b.writeUInt16LE(o.maxPages, off + 28);
  b.writeUInt16LE(0, off + 30); // map_alignment
  b.writeUInt32LE(Number((o.flags >> 32n) & 0xffff_ffffn), off + 32);
  b.writeUInt32LE(o.maxStackDepth, off + 36);
  // request_timeout (u16 at 40) = 0: the kernel never times our requests out.
}

// ---- request bodies ----------------------------------------------------------------------------

/** One NUL-terminated name at `off`, copied (the read buffer is reused). Returns [name, next]. */
export function readName(b: Buffer, off: number, end: number): [Buffer, number] {
  let nul = b.indexOf(0, off);
  if (nul < 0 || nul >= end) nul = end;
  return [Buffer.from(b.subarray(off, nul)), nul + 1];
}

const UTIME_TIME = (b: Buffer, secOff: number, nsecOff: number): Timespec => ({ sec: getI64(b, secOff), nsec: b.readUInt32LE(nsecOff) });

export function decodeSetattrIn(b: Buffer, off: number): SetattrIn {
  const valid = b.readUInt32LE(off);
  const has = (bit: number): boolean => (valid & bit) !== 0;
  return {
    valid,
    fh: has(1 << 6) ? getU64(b, off + 8) : undefined,
    size: has(1 << 3) ? getU64(b, off + 16) : undefined,
    atime: has(1 << 7) ? 'now' : has(1 << 4) ? UTIME_TIME(b, off + 32, off + 56) : undefined,
    mtime: has(1 << 8) ? 'now' : has(1 << 5) ? UTIME_TIME(b, off + 40, off + 60) : undefined,
    ctime: has(1 << 10) ? UTIME_TIME(b, off + 48, off + 64) : undefined,
    mode: has(1 << 0) ? b.readUInt32LE(off + 68) : undefined,
    uid: has(1 << 1) ? b.readUInt32LE(off + 76) : undefined,
    gid: has(1 << 2) ? b.readUInt32LE(off + 80) : undefined,
    killSuidgid: has(1 << 11),
  };
}

/** For tests and the bench: fuse_setattr_in from the friendly form. */
export function encodeSetattrIn(s: SetattrIn): Buffer {
  const b = Buffer.alloc(88);
  b.writeUInt32LE(s.valid, 0);
  putU64(b, 8, s.fh ?? 0);
  putU64(b, 16, s.size ?? 0);
  if (s.atime && s.atime !== 'now') { putU64(b, 32, s.atime.sec); b.writeUInt32LE(s.atime.nsec, 56); }
  if (s.mtime && s.mtime !== 'now') { putU64(b, 40, s.mtime.sec); b.writeUInt32LE(s.mtime.nsec, 60); }
  if (s.ctime) { putU64(b, 48, s.ctime.sec); b.writeUInt32LE(s.ctime.nsec, 64); }
  b.writeUInt32LE(s.mode ?? 0, 68);
  b.writeUInt32LE(s.uid ?? 0, 76);
  b.writeUInt32LE(s.gid ?? 0, 80);
  return b;
}

// ---- notifications -----------------------------------------------------------------------------

function notifyHeader(code: number, bodyLen: number): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE + bodyLen);
  writeOutHeader(b, 0, b.length, code, 0, 0);
  return b;
}

export function encodeNotifyInvalInode(ino: number, off: number, len: number): Buffer {
  const b = notifyHeader(2, NOTIFY_INVAL_INODE_SIZE);
  putU64(b, 16, ino);
  b.writeBigInt64LE(BigInt(Math.trunc(off)), 24);
  b.writeBigInt64LE(BigInt(Math.trunc(len)), 32);
  return b;
}

export function encodeNotifyInvalEntry(parent: number, name: Buffer, flags = 0): Buffer {
  const b = notifyHeader(3, NOTIFY_INVAL_ENTRY_SIZE + name.length + 1);
  putU64(b, 16, parent);
  b.writeUInt32LE(name.length, 24);
  b.writeUInt32LE(flags, 28);
  name.copy(b, 32);
  return b;
}

export function encodeNotifyDelete(parent: number, child: number, name: Buffer): Buffer {
  const b = notifyHeader(6, NOTIFY_DELETE_SIZE + name.length + 1);
  putU64(b, 16, parent);
  putU64(b, 24, child);
  b.writeUInt32LE(name.length, 32);
  name.copy(b, 40);
  return b;
}

export function encodeNotifyResend(): Buffer {
  return notifyHeader(7, 0);
}
