// lmdb-js reports a failed commit (a full disk) in ways that must all be handled, or a promise
// rejects unhandled and ends the process: every put/remove of the transaction rejects, and the
// transaction's error carries the cause in a `commitError` promise (with a numeric errno `code`).
import { FsError, toErrno } from './errno';

/** Marks a put/remove result of an lmdb transaction handled (the transaction reports failures). */
export function settled(r: unknown): void {
  if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(undefined, () => undefined);
}

/** The cause of a failed lmdb commit as an FsError (ENOSPC for a full disk), its commitError handled. */
export async function commitFailure(err: unknown, what: string): Promise<FsError> {
  const pending = (err as { commitError?: Promise<unknown> } | null)?.commitError;
  const cause = pending && typeof pending.then === 'function' ? await pending.then(() => err, (e: unknown) => e) : err;
  const code = (cause as { code?: unknown } | null)?.code;
  const errno = typeof code === 'number' && code > 0 && code < 4096 ? code : toErrno(cause);
  return new FsError(errno, `${what}: ${(cause as Error)?.message ?? String(cause)}`);
}
