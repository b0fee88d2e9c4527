// Kernel readdir caching (FOPEN_CACHE_DIR + FOPEN_KEEP_CACHE on OPENDIR): the kernel keeps a
// directory's listing in the directory's page cache and serves later getdents from it without a
// READDIR(PLUS). Our own changes invalidate it in the kernel (every create/unlink/rename reply
// bumps the directory's i_version); another client's change arrives on the change feed and is
// turned into INVAL_INODE(dir, offset 0), which drops the cached pages. This class decides which
// opens may cache and closes the one race the kernel cannot see:
//
//   a listing fetched from the metaserver BEFORE a remote change, whose reply the kernel copies
//   into its cache AFTER our invalidation (INVAL_ENTRY only marks a directory changed when the
//   name has a dentry, and INVAL_INODE drops only the pages that exist at that moment).
//
// So a change in a directory with an open caching handle marks it stale, and the last release of
// it invalidates again: by then every getdents through those handles (which is what fills the
// cache) has returned.
import { FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE } from './protocol/raw-fs';

interface DirState {
  /** Open handles that may fill the kernel's cache. */
  open: number;
  /** Changed (remotely) while a handle was open: invalidate again at the last release. */
  stale: boolean;
}

/** Past this many directories new opens are not cached (bounded memory; correctness unaffected). */
const MAX_DIRS = 100_000;

export class DirCache {
  /** Directories the kernel may hold a cached listing of (opened with FOPEN_CACHE_DIR). */
  private readonly dirs = new Map<number, DirState>();

  /** `inval` drops the directory's cached pages in the kernel (INVAL_INODE offset 0). */
  constructor(private readonly inval: (ino: number) => void) {}

  /**
   * OPENDIR: the open flags. `allowed` is false while no change feed guarantees invalidations;
   * then the open neither caches nor keeps the cache (the kernel drops what it held at open).
   */
  open(ino: number, allowed: boolean): number {
    if (!allowed) return 0;
    let st = this.dirs.get(ino);
    if (!st) {
      if (this.dirs.size >= MAX_DIRS) return 0;
      this.dirs.set(ino, (st = { open: 0, stale: false }));
    }
    st.open++;
    return FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE;
  }

  /** RELEASEDIR of a handle whose open returned caching flags. */
  release(ino: number): void {
    const st = this.dirs.get(ino);
    if (!st) return;
    if (st.open > 0) st.open--;
    if (st.stale) {
      this.inval(ino);
      if (st.open === 0) st.stale = false;
    }
  }

  /** An entry of `ino` changed behind the kernel's back (another client, a failed own op). */
  changed(ino: number): void {
    const st = this.dirs.get(ino);
    if (!st) return;
    this.inval(ino);
    if (st.open > 0) st.stale = true;
  }

  /** The change feed broke: the caller invalidates every inode; open handles re-invalidate at release. */
  reset(): void {
    for (const st of this.dirs.values()) if (st.open > 0) st.stale = true;
  }

  /** The kernel forgot the inode: its page cache is gone with it. */
  forget(ino: number): void {
    const st = this.dirs.get(ino);
    if (st && st.open === 0) this.dirs.delete(ino);
  }

  /** Whether the kernel may hold a cached listing of `ino` (tests, metrics). */
  has(ino: number): boolean {
    return this.dirs.has(ino);
  }

  get size(): number {
    return this.dirs.size;
  }
}
