// READDIR / READDIRPLUS reply buffers: fuse_dirent and fuse_direntplus records, each padded to
// 8 bytes, packed until the size the kernel asked for is full.
import type { Dirent, DirentPlus, DirentPlusSink, DirentSink } from './raw-fs';
import { DIRENT_SIZE, DIRENTPLUS_SIZE, ENTRY_OUT_SIZE, OUT_HEADER_SIZE, putU64, writeEntryOut } from './wire';

const align8 = (n: number): number => (n + 7) & ~7;

/** The kernel rejects names longer than this in a listing (FUSE_NAME_MAX). */
const FUSE_NAME_MAX = 1024;

function isDotOrDotDot(name: Buffer): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}

abstract class DirBuffer {
  /** Room for the out header in front, so the reply goes out in one write. */
  readonly buf: Buffer;
  protected pos = OUT_HEADER_SIZE;
  count = 0;

  constructor(readonly size: number) {
    this.buf = Buffer.alloc(OUT_HEADER_SIZE + size);
  }

  /** Header + packed records. */
  get bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  protected putDirent(off: number, e: Dirent): void {
    const b = this.buf;
    putU64(b, off, e.ino);
    putU64(b, off + 8, e.off);
    b.writeUInt32LE(e.name.length, off + 16);
    b.writeUInt32LE((e.type >>> 12) & 0xf, off + 20); // S_IFMT bits -> DT_*
    e.name.copy(b, off + DIRENT_SIZE);
  }

  protected checkName(name: Buffer): void {
    if (name.length === 0 || name.length > FUSE_NAME_MAX || name.includes(0x2f)) {
      throw new RangeError(`invalid directory entry name (${name.length} bytes)`);
    }
  }
}

export class DirentBuffer extends DirBuffer implements DirentSink {
  add(e: Dirent): boolean {
    this.checkName(e.name);
    const reclen = align8(DIRENT_SIZE + e.name.length);
    if (this.pos + reclen > this.buf.length) return false;
    this.buf.fill(0, this.pos + DIRENT_SIZE + e.name.length, this.pos + reclen);
    this.putDirent(this.pos, e);
    this.pos += reclen;
    this.count++;
    return true;
  }
}

export class DirentPlusBuffer extends DirBuffer implements DirentPlusSink {
  add(e: DirentPlus): boolean | 'noref' {
    this.checkName(e.name);
    const reclen = align8(DIRENTPLUS_SIZE + e.name.length);
    if (this.pos + reclen > this.buf.length) return false;
    const at = this.pos;
    this.buf.fill(0, at + DIRENTPLUS_SIZE + e.name.length, at + reclen);
    const dot = isDotOrDotDot(e.name);
    if (dot || e.entry.nodeid === 0) {
      // nodeid 0: the kernel takes no lookup count and makes no dentry for it.
      this.buf.fill(0, at, at + ENTRY_OUT_SIZE);
    } else {
      writeEntryOut(this.buf, at, e.entry);
    }
    this.putDirent(at + ENTRY_OUT_SIZE, e);
    this.pos += reclen;
    this.count++;
    return dot || e.entry.nodeid === 0 ? 'noref' : true;
  }
}
