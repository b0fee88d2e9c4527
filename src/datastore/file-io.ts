// Small file helpers of the chunk store: whole writes despite short ones, fsync by path, a bounded
// parallel loop.
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
  const all = Buffer.concat(bufs);
  while (done < total) {
    const { bytesWritten } = await fh.write(all, done, total - done, done);
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

export async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}
