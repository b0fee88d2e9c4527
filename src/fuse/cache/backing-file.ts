// One inode's local backing file in the chunk cache: a sparse file the size of the inode, holding
// the chunks the client has (fetched or written). The kernel reads it directly in passthrough mode.
// Invariant kept by the owner: every byte of a chunk the client does NOT hold reads as zero.
import * as fs from 'node:fs';
import { punchHole } from '../falloc';

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

  write(data: Buffer, offset: number): void {
    let done = 0;
    const fd = this.fd;
    while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, offset + done);
    if (offset + data.length > this.sizeValue) this.sizeValue = offset + data.length;
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

  close(unlink = true): void {
    if (this.fdValue === -1) return;
    const created = this.fdValue >= 0;
    if (created) fs.closeSync(this.fdValue);
    this.fdValue = -1;
    if (unlink && created) fs.rmSync(this.path, { force: true });
  }
}
