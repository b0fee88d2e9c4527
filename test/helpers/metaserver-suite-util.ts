// Shared constants and helpers of the namespace semantics suite.
import { toErrno, errnoName } from '../../src/common/errno';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFSOCK = 0o140000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const C = { uid: 1000, gid: 1001 };
export const b = (s: string): Buffer => Buffer.from(s);

/** The errno name a promise rejects with ('OK' if it resolves). */
export async function errOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return errnoName(toErrno(err));
  }
}

export const later = (a: { sec: number; nsec: number }, b0: { sec: number; nsec: number }): boolean =>
  a.sec > b0.sec || (a.sec === b0.sec && a.nsec > b0.nsec);
export const tick = (): Promise<unknown> => new Promise((r) => setTimeout(r, 2));
