// Large chunk objects are written with O_DIRECT, past the page cache. The writer of a chunk (a
// client) keeps the same bytes in its own cache, and `kurve up`'s client has them in the page cache
// already (its backing file): a second page-cache copy is memory spent twice on data nobody here
// reads back soon, and on a VM each fresh page-cache page is expensive. Measured (2 vCPUs, shared):
// `dd` of 1 GiB in 4 MiB writes onto a loop ext4 0.50–0.92 s wall and 0.50–0.80 s system time
// buffered, 0.40–0.50 s and 0.16–0.22 s direct; the bench's seq-write row (1 GiB through
// `kurve up`, 8 interleaved runs) 0.49–0.72 GB/s (median 0.60) against 0.39–0.73 (median 0.46);
// the daemon's CPU time in close 0.53–0.61 s against 0.69–0.76 s per GiB.
//
// O_DIRECT needs the buffer address, the file offset and the length aligned: the object (header +
// data) is built in a page-aligned buffer (the in-process client's chunks are read straight into
// it, see ChunkStore.putFromFile), its whole blocks are written direct and the last partial block
// (if any) through the page cache, through a second descriptor.
import * as fs from 'node:fs';
import koffi from 'koffi';
import { writeAt } from './file-io';
import { BLOCK_BYTES, HEADER_BYTES } from './chunk-format';

/** Objects from this size on are written direct (smaller ones: the copy and two opens cost more). */
export const DIRECT_MIN_BYTES = 1024 * 1024;
/** Alignment for address, offset and length: the page size covers every logical block size in use. */
const ALIGN = 4096;
/** Aligned buffers kept for reuse: up to this many bytes (a 64 MiB chunk size must not pin 8 of them). */
const MAX_POOLED_BYTES = 64 * 1024 * 1024;
const pool: Buffer[] = [];
let pooledBytes = 0;

/** A page-aligned buffer of at least `size` bytes (from the pool, or new). */
function takeAligned(size: number): Buffer {
  const i = pool.findIndex((b) => b.length >= size);
  if (i >= 0) {
    const b = pool.splice(i, 1)[0];
    pooledBytes -= b.length;
    return b;
  }
  const whole = Buffer.allocUnsafeSlow(size + ALIGN);
  const skew = Number(koffi.address(whole) % BigInt(ALIGN));
  const start = skew === 0 ? 0 : ALIGN - skew;
  return whole.subarray(start, start + size);
}

function giveAligned(b: Buffer): void {
  if (pooledBytes + b.length > MAX_POOLED_BYTES) return;
  pool.push(b);
  pooledBytes += b.length;
}

const unsupported = (err: unknown): boolean => ['EINVAL', 'EOPNOTSUPP'].includes((err as NodeJS.ErrnoException).code ?? '');

/** An object (header + data) being built in a page-aligned buffer: the header goes in front of `data`. */
export interface ObjectImage {
  readonly whole: Buffer;
  readonly data: Buffer;
  readonly pooled: Buffer;
}

/** A buffer for an object of `dataLength` bytes; give it back with releaseImage(). */
export function takeImage(dataLength: number): ObjectImage {
  const headerLength = HEADER_BYTES + 4 * Math.ceil(dataLength / BLOCK_BYTES);
  const pooled = takeAligned(headerLength + dataLength);
  const whole = pooled.subarray(0, headerLength + dataLength);
  return { whole, data: whole.subarray(headerLength), pooled };
}

export function releaseImage(img: ObjectImage): void {
  giveAligned(img.pooled);
}

/**
 * Creates `tmp` holding `image` (page-aligned: from takeImage), its whole blocks written with
 * O_DIRECT; fsync'ed if `sync`. False (and no tmp left) when this file system refuses O_DIRECT:
 * the caller writes it through the page cache instead.
 */
export async function writeObjectDirect(tmp: string, image: Buffer, sync: boolean): Promise<boolean> {
  const total = image.length;
  const aligned = total - (total % ALIGN);
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_DIRECT, 0o644);
  } catch (err) {
    if (unsupported(err)) return false;
    throw err;
  }
  try {
    try {
      await writeAt(fh, image.subarray(0, aligned), 0);
    } catch (err) {
      // Some file systems accept the open and refuse the I/O.
      if (!unsupported(err)) throw err;
      await fh.close();
      fh = undefined;
      await fs.promises.rm(tmp, { force: true });
      return false;
    }
    await fh.close();
    fh = undefined;
    if (aligned < total || sync) {
      fh = await fs.promises.open(tmp, 'r+');
      if (aligned < total) await writeAt(fh, image.subarray(aligned), aligned);
      if (sync) await fh.sync();
      await fh.close();
      fh = undefined;
    }
    return true;
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw err;
  }
}

/** Reads bytes of `fd` from `offset` into `buf`; returns how many (fewer at the file's end). */
export async function readInto(fd: number, buf: Buffer, offset: number): Promise<number> {
  let done = 0;
  while (done < buf.length) {
    const n = await new Promise<number>((resolve, reject) => {
      fs.read(fd, buf, done, buf.length - done, offset + done, (err, got) => (err ? reject(err) : resolve(got)));
    });
    if (n === 0) break;
    done += n;
  }
  return done;
}
