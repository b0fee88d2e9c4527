// The chunk cache's on-disk index, written at a clean unmount so the next mount of the same file
// system adopts the backing files instead of fetching everything again; and the lock that keeps
// two daemons out of one cache directory. The index is removed as soon as it is read: a daemon
// that then stops uncleanly leaves none, and the next start begins empty (backing files written
// after an index was taken are never trusted).
import * as fs from 'node:fs';
import * as path from 'node:path';
import koffi from 'koffi';

const INDEX = 'index.json';
const LOCK = '.lock';
const FORMAT = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;

/** Which file system the cached chunks belong to: createdMs tells a recreated one with the same id. */
export interface CacheIdentity {
  readonly fsId: number;
  readonly createdMs: number;
  readonly chunkSize: number;
}

/** One parked inode as the index records it; `mtimeNs` pins the backing file's state. */
export interface IndexedInode {
  readonly ino: number;
  readonly size: number;
  readonly mtimeNs: string;
  /** [chunk index, chunk version] pairs the backing file holds. */
  readonly chunks: Array<[number, number]>;
}

export interface CacheIndex extends CacheIdentity {
  readonly format: number;
  readonly inodes: IndexedInode[];
  /** [ino, chunk index, bytes], least recently used first. */
  readonly lru: Array<[number, number, number]>;
}

type FlockFn = (fd: number, op: number) => number;
let flockFn: FlockFn | undefined;

/**
 * Takes an exclusive flock on the cache directory (released when the process dies, even by -9):
 * the descriptor to close at shutdown. Throws if another daemon holds it.
 */
/** The cache directory's lock is held by another live daemon. */
export class CacheDirInUse extends Error {}

export function lockCacheDir(root: string): number {
  flockFn ??= koffi.load('libc.so.6').func('int flock(int fd, int op)') as FlockFn;
  const file = path.join(root, LOCK);
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  if (flockFn(fd, LOCK_EX | LOCK_NB) !== 0) {
    let holder = '';
    try {
      holder = fs.readFileSync(file, 'utf8').trim();
    } catch {
      // unreadable: the message goes without the pid
    }
    fs.closeSync(fd);
    throw new CacheDirInUse(`chunk cache directory ${root} is in use by another kurve client${holder ? ` (pid ${holder})` : ''}`);
  }
  fs.ftruncateSync(fd, 0);
  fs.writeSync(fd, `${process.pid}\n`, 0);
  return fd;
}

/**
 * Reads and removes the index. Undefined (logged by the caller through `why`) when there is none,
 * it does not parse, or it belongs to another file system or chunk size.
 */
export function takeIndex(root: string, id: CacheIdentity): { index?: CacheIndex; why?: string } {
  const file = path.join(root, INDEX);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return { why: 'no index (first start or unclean stop)' };
  }
  fs.rmSync(file, { force: true });
  syncDir(root);
  let idx: CacheIndex;
  try {
    idx = JSON.parse(text) as CacheIndex;
  } catch {
    return { why: 'index does not parse' };
  }
  if (!isIndex(idx)) return { why: 'index malformed' };
  if (idx.fsId !== id.fsId || idx.createdMs !== id.createdMs || idx.chunkSize !== id.chunkSize) {
    return { why: 'index of another file system' };
  }
  return { index: idx };
}

function isIndex(x: CacheIndex): boolean {
  if (!x || x.format !== FORMAT || !Array.isArray(x.inodes) || !Array.isArray(x.lru)) return false;
  const nat = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
  return (
    x.inodes.every((e) => nat(e?.ino) && nat(e.size) && typeof e.mtimeNs === 'string' && Array.isArray(e.chunks)
      && e.chunks.every((c) => Array.isArray(c) && nat(c[0]) && nat(c[1]) && c[1] > 0))
    && x.lru.every((c) => Array.isArray(c) && nat(c[0]) && nat(c[1]) && nat(c[2]))
  );
}

/** The backing file of `ino` (a regular file), or undefined when it is gone. */
function statBacking(root: string, ino: number): fs.BigIntStats | undefined {
  try {
    const st = fs.statSync(path.join(root, String(ino)), { bigint: true });
    return st.isFile() ? st : undefined;
  } catch {
    return undefined;
  }
}

/** The backing file still is what the index recorded (size and mtime untouched since). */
export function backingMatches(root: string, e: IndexedInode): boolean {
  const st = statBacking(root, e.ino);
  return st !== undefined && Number(st.size) === e.size && st.mtimeNs.toString() === e.mtimeNs;
}

/** The backing file's mtime as the index records it; undefined when the file is gone. */
export function backingMtime(root: string, ino: number): string | undefined {
  return statBacking(root, ino)?.mtimeNs.toString();
}

/** Writes the index durably: temp file, fsync, rename, fsync of the directory. */
export function writeIndex(root: string, idx: Omit<CacheIndex, 'format'>): void {
  const tmp = path.join(root, `${INDEX}.tmp`);
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify({ format: FORMAT, ...idx }));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(root, INDEX));
  syncDir(root);
}

/** Removes every file of the cache directory but the lock, the index and the `keep` backing files. */
export function removeLeftovers(root: string, keep: ReadonlySet<number>): void {
  for (const name of fs.readdirSync(root)) {
    if (name === LOCK || name === INDEX || (/^\d+$/.test(name) && keep.has(Number(name)))) continue;
    fs.rmSync(path.join(root, name), { recursive: true, force: true });
  }
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
