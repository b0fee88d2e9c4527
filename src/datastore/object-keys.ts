// Chunk keys: validation and the one way to name a key in messages, shared by the store, its
// gRPC service and client; and Node fs errors turned into FsErrors with their errno.
import { Errno, ErrnoName, fsError, FsError } from '../common/errno';
import type { ChunkKey } from './api';

const MAX_U32 = 0xffffffff;

/** Throws EINVAL with a reason unless every field is a non-negative integer in range. */
export function validateKey(key: ChunkKey | undefined): asserts key is ChunkKey {
  if (!key || typeof key !== 'object') throw fsError('EINVAL', 'missing chunk key');
  for (const f of ['fsId', 'ino', 'index', 'version'] as const) {
    const v = key[f];
    if (!Number.isSafeInteger(v) || v < 0 || (f === 'fsId' && v > MAX_U32)) {
      throw fsError('EINVAL', `invalid chunk key: ${f} must be a non-negative integer, got ${String(v)}`);
    }
  }
}

/** A Node fs error (ENOSPC, EACCES, EMFILE…) as an FsError with the same errno and some context. */
export function ioError(err: unknown, what: string): unknown {
  if (err instanceof FsError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (typeof code === 'string' && code in Errno) return new FsError(Errno[code as ErrnoName], `${what}: ${(err as Error).message}`);
  return err;
}

/** A key as it appears in errors and logs. */
export function formatKey(k: ChunkKey): string {
  return `fs=${k.fsId} ino=${k.ino} index=${k.index} version=${k.version}`;
}
