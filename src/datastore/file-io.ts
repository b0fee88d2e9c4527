// Small file helpers of the chunk store: whole writes despite short ones, fsync by path.
import * as fs from 'node:fs';
import { fsError } from '../common/errno';

/**
 * writev() may write less than asked (a full disk gives a short write, not an error): keep
 * writing the rest until done or until the file system refuses with a real error (ENOSPC).
 */
export async function writeFully(fh: fs.promises.FileHandle, bufs: Buffer[]): Promise<void> {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  let done = (await fh.writev(bufs)).bytesWritten;
  if (done === total) return;
  await writeAt(fh, Buffer.concat(bufs).subarray(done), done);
}

/** Writes all of `buf` at `position`, despite short writes. */
export async function writeAt(fh: fs.promises.FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten === 0) throw fsError('EIO', 'write made no progress');
    done += bytesWritten;
  }
}

export function writeFullySync(fd: number, bufs: Buffer[]): void {
  const total = bufs.reduce((n, b) => n + b.length, 0);
  let done = fs.writevSync(fd, bufs);
  if (done === total) return;
  const all = Buffer.concat(bufs);
  while (done < total) {
    const n = fs.writeSync(fd, all, done, total - done, done);
    if (n === 0) throw fsError('EIO', 'write made no progress');
    done += n;
  }
}

/** fsync of a file or directory by path; with `missingOk`, one deleted meanwhile is skipped. */
export async function syncPath(p: string, missingOk = false): Promise<void> {
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(p, 'r');
  } catch (err) {
    if (missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
