// fallocate(2) for the client's local backing files (Node's fs has no binding for it): punching
// holes keeps the chunk cache's invariant that a chunk not held locally reads as zeros.
import koffi from 'koffi';
import { FsError } from '../common/errno';

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;

type FallocateFn = (fd: number, mode: number, offset: number, len: number) => number;
let fallocateFn: FallocateFn | undefined;

function libc(): FallocateFn {
  if (!fallocateFn) {
    const lib = koffi.load('libc.so.6');
    fallocateFn = lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as FallocateFn;
  }
  return fallocateFn;
}

/** fallocate(fd, mode, offset, len); throws FsError with the errno on failure. */
export function fallocate(fd: number, mode: number, offset: number, len: number): void {
  if (len <= 0) return;
  const rc = libc()(fd, mode, offset, len);
  if (rc !== 0) throw new FsError(koffi.errno(), `fallocate(mode ${mode}, ${offset}, ${len})`);
}

/** Deallocates [offset, offset+len) without changing the size: the range reads as zeros. */
export function punchHole(fd: number, offset: number, len: number): void {
  fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len);
}
