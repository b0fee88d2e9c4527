// One inode's local backing file in the chunk cache: a sparse file the size of the inode, holding
// the chunks the client has (fetched or written). The kernel reads it directly in passthrough mode.
// Invariant kept by the owner: every byte of a chunk the client does NOT hold reads as zero.
import * as fs from 'node:fs';
import koffi from 'koffi';
import { FsError } from '../../common/errno';
import { punchHole } from '../falloc';

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
type LseekFn = (fd: number, offset: number, whence: number) => number;
let lseekFn: LseekFn | undefined;
function lseek(fd: number, offset: number, whence: number): number {
  lseekFn ??= koffi.load('libc.so.6').func('int64_t lseek(int fd, int64_t offset, int whence)') as LseekFn;
  return lseekFn(fd, offset, whence);
}

type CopyRangeFn = (fdIn: number, offIn: Buffer, fdOut: number, offOut: Buffer, len: number, flags: number) => number;
let copyRangeFn: CopyRangeFn | undefined;
function copyRange(): CopyRangeFn {
  copyRangeFn ??= koffi.load('libc.so.6').func('int64_t copy_file_range(int fd_in, void *off_in, int fd_out, void *off_out, size_t len, unsigned int flags)') as CopyRangeFn;
  return copyRangeFn;
}
/** copy_file_range errnos that mean "not between these files" (EXDEV, EINVAL, ENOSYS, EOPNOTSUPP). */
const NO_KERNEL_COPY = new Set([18, 22, 38, 95]);

function readAt(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

export class BackingFile {
  /** -2: not created yet (created on first use: most new files are never written), -1: closed. */
  private fdValue = -2;
  private sizeValue = 0;

  constructor(readonly path: string) {}

  get fd(): number {
    if (this.fdValue === -2) {
      // O_TRUNC: a leftover from an earlier run may hold anything; the invariant needs zeros.
      this.fdValue = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
      if (this.sizeValue > 0) fs.ftruncateSync(this.fdValue, this.sizeValue);
    }
    return this.fdValue;
  }
  /** The descriptor if the file is open; undefined if never created (all zeros) or closed. */
  get openFd(): number | undefined {
    return this.fdValue >= 0 ? this.fdValue : undefined;
  }
  get closed(): boolean {
    return this.fdValue === -1;
  }
  /** The size this client believes the backing file has (kept equal to the file size). */
  get size(): number {
    return this.sizeValue;
  }

  read(buf: Buffer, offset: number): number {
    let done = 0;
    while (done < buf.length) {
      if (this.fdValue === -2) break; // never written: all zeros
      const n = fs.readSync(this.fdValue, buf, done, buf.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** read() on the libuv threadpool (uploads: the event loop keeps serving requests meanwhile). */
  async readAsync(buf: Buffer, offset: number): Promise<number> {
    let done = 0;
    while (done < buf.length) {
      if (this.fdValue < 0) break; // never written (all zeros) or closed meanwhile
      const n = await readAt(this.fdValue, buf, done, buf.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  write(data: Buffer, offset: number): void {
    let done = 0;
    const fd = this.fd;
    while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, offset + done);
    if (offset + data.length > this.sizeValue) this.sizeValue = offset + data.length;
  }

  /**
   * Writes `length` bytes of `src` from `srcOffset` at `offset`, copied inside the kernel
   * (copy_file_range(2): the bytes never pass through this process); past src's end they are
   * zeros. False, with nothing written, when the kernel cannot copy between these two files: the
   * caller then copies through a buffer.
   */
  copyFrom(src: BackingFile, srcOffset: number, offset: number, length: number): boolean {
    if (src.closed) return false;
    let done = 0;
    const inFd = src.openFd; // never created: all zeros, nothing to copy
    if (inFd !== undefined) {
      const offIn = Buffer.alloc(8);
      const offOut = Buffer.alloc(8);
      offIn.writeBigInt64LE(BigInt(srcOffset));
      offOut.writeBigInt64LE(BigInt(offset));
      const fd = this.fd;
      while (done < length) {
        const n = copyRange()(inFd, offIn, fd, offOut, length - done, 0);
        if (n < 0) {
          const errno = koffi.errno();
          if (done === 0 && NO_KERNEL_COPY.has(errno)) return false;
          throw new FsError(errno, `copy_file_range into ${this.path}`);
        }
        if (n === 0) break; // src's end
        done += n;
      }
    }
    if (done < length) this.write(Buffer.alloc(length - done), offset + done);
    if (offset + length > this.sizeValue) this.sizeValue = offset + length;
    return true;
  }

  truncate(size: number): void {
    if (this.fdValue >= 0) fs.ftruncateSync(this.fdValue, size);
    this.sizeValue = size;
  }

  /** Zeros [offset, offset+len) inside the file without changing its size. */
  zero(offset: number, len: number): void {
    const end = Math.min(offset + len, this.sizeValue);
    if (end <= offset || this.fdValue === -2) return;
    punchHole(this.fdValue, offset, end - offset);
  }

  /**
   * The chunks of [0, size) holding any data (SEEK_DATA/SEEK_HOLE; ext4 counts dirty page-cache
   * data too): what passthrough writes may have touched, when only data written there can have
   * changed (never-written ranges stay holes). Every chunk if the file system cannot tell.
   */
  dataChunks(chunkSize: number, size: number): number[] {
    const all = (): number[] => Array.from({ length: Math.ceil(size / chunkSize) }, (_, i) => i);
    if (this.fdValue < 0 || size <= 0) return this.fdValue === -1 ? all() : [];
    const out: number[] = [];
    let pos = 0;
    while (pos < size) {
      const data = lseek(this.fdValue, pos, SEEK_DATA);
      if (data < 0) {
        if (koffi.errno() === ENXIO) break; // no data past pos
        return all();
      }
      if (data >= size) break;
      let hole = lseek(this.fdValue, data, SEEK_HOLE);
      if (hole < 0) hole = size;
      const end = Math.min(hole, size);
      for (let i = Math.floor(data / chunkSize); i <= Math.floor((end - 1) / chunkSize); i++) {
        if (out[out.length - 1] !== i) out.push(i);
      }
      pos = end;
    }
    return out;
  }

  /**
   * lseek(SEEK_DATA or SEEK_HOLE) from `pos`: the offset found; -1 when there is no data at or
   * past `pos` (ENXIO); undefined when the file system cannot tell or the file is closed. A file
   * never created yet is all hole.
   */
  seek(pos: number, what: 'data' | 'hole'): number | undefined {
    if (this.fdValue === -1) return undefined;
    if (this.fdValue === -2) return what === 'data' ? -1 : pos;
    const r = lseek(this.fdValue, pos, what === 'data' ? SEEK_DATA : SEEK_HOLE);
    if (r >= 0) return r;
    return koffi.errno() === ENXIO ? -1 : undefined;
  }

  /**
   * Where the data in [lo, hi) ends: the end of its last data extent (to the file system's block),
   * `lo` if it is all hole, `hi` when the file system cannot tell. Bytes past it read as zeros.
   */
  dataEnd(lo: number, hi: number): number {
    let end = lo;
    let pos = lo;
    while (pos < hi) {
      const d = this.seek(pos, 'data');
      if (d === undefined) return hi;
      if (d < 0 || d >= hi) break;
      const h = this.seek(d, 'hole');
      if (h === undefined || h < 0) return hi;
      end = Math.min(h, hi);
      pos = end;
    }
    return end;
  }

  /** Size and mtime as the kernel left them (passthrough writes bypass the daemon). */
  stat(): { size: number; mtimeNs: bigint } {
    const st = fs.fstatSync(this.fd, { bigint: true });
    return { size: Number(st.size), mtimeNs: st.mtimeNs };
  }

  /** After passthrough writes changed the file behind our back. */
  adoptSize(size: number): void {
    this.sizeValue = size;
  }

  fsync(): void {
    if (this.fdValue >= 0) fs.fsyncSync(this.fdValue);
  }

  /**
   * Reopens the file an earlier BackingFile of this inode left behind (close(false)), if it is
   * still there with `size` bytes. False when it is gone or differs: then nothing it held counts
   * (and the first use truncates it, as for a new one).
   */
  adopt(size: number): boolean {
    if (this.fdValue !== -2) return false;
    let fd: number;
    try {
      fd = fs.openSync(this.path, fs.constants.O_RDWR);
    } catch {
      return false;
    }
    if (fs.fstatSync(fd).size !== size) {
      fs.closeSync(fd);
      return false;
    }
    this.fdValue = fd;
    this.sizeValue = size;
    return true;
  }

  close(unlink = true): void {
    if (this.fdValue === -1) return;
    const created = this.fdValue >= 0;
    if (created) fs.closeSync(this.fdValue);
    this.fdValue = -1;
    if (unlink && created) fs.rmSync(this.path, { force: true });
  }
}
