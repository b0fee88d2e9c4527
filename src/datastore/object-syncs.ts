// Chunk objects written with deferSync (the in-process client of `kurve up`) are not fsync'ed at
// their put: ObjectSyncs lists them and their directories, and flush() makes them durable — files
// first (a directory entry must not outlive its data), one syncfs(2) when there are many.
import * as path from 'node:path';
import { forEachLimited } from '../common/limited';
import { syncFileSystem } from '../common/syncfs';
import { syncPath } from './file-io';
import { ioError } from './object-keys';

/**
 * flush() with more files and directories than this to sync calls syncfs(2) once instead: it
 * also writes out whatever else is dirty on that file system, so a handful of objects still get
 * their own fsyncs.
 */
const SYNCFS_OVER = 32;

/** fsyncs that flush() runs at once (the libuv threadpool has 4 threads). */
const SYNC_PARALLELISM = 4;

export class ObjectSyncs {
  private files = new Set<string>();
  private dirs = new Set<string>();
  /** The running flush (flushes are chained, see flush()). */
  private flushing: Promise<void> = Promise.resolve();

  /** `root`: the objects directory; `sync`: whether objects not deferred are synced at once. */
  constructor(private readonly root: string, private readonly sync: boolean) {}

  /**
   * An object was renamed or linked into place as `target`; `created` is the topmost directory
   * mkdir made for it. Deferred: listed for flush(). Otherwise its directories are synced now
   * (its data was synced before the rename) when the store syncs at all.
   */
  placed(target: string, created: string | undefined, defer: boolean): Promise<void> | undefined {
    const dirs = this.dirsToSync(path.dirname(target), created);
    if (defer) {
      this.files.add(target);
      for (const d of dirs) this.dirs.add(d);
      return undefined;
    }
    return this.sync ? this.syncDirs(dirs) : undefined;
  }

  /**
   * Makes every listed object durable, after `before` (the puts still running). An fsync failure
   * is reported (EIO), and the objects stay listed for the next flush.
   */
  flush(before: () => Promise<void>): Promise<void> {
    // One at a time: a flush that found the lists empty because a running one (the background
    // timer's) had taken them must still wait until those objects are durable.
    const run = this.flushing.then(() => this.flushNow(before), () => this.flushNow(before));
    this.flushing = run.catch(() => undefined);
    return run;
  }

  private async flushNow(before: () => Promise<void>): Promise<void> {
    await before();
    if (this.files.size === 0 && this.dirs.size === 0) return;
    const files = this.files;
    const dirs = this.dirs;
    this.files = new Set();
    this.dirs = new Set();
    try {
      if (files.size + dirs.size > SYNCFS_OVER) {
        // Many objects (a copied tree of small files): one commit of the whole file system.
        await syncFileSystem(this.root);
      } else {
        await forEachLimited([...files], SYNC_PARALLELISM, (f) => syncPath(f, true));
        await forEachLimited([...dirs], SYNC_PARALLELISM, (d) => syncPath(d, true));
      }
    } catch (err) {
      for (const f of files) this.files.add(f);
      for (const d of dirs) this.dirs.add(d);
      throw ioError(err, 'syncing chunk objects');
    }
  }

  /** The object's directory, and every directory mkdir just created up to the existing one. */
  private dirsToSync(dir: string, created: string | undefined): string[] {
    const dirs = [dir];
    if (created) {
      for (let d = dir; d.length > this.root.length; d = path.dirname(d)) {
        dirs.push(path.dirname(d));
        if (d === created) break;
      }
    }
    return [...new Set(dirs)];
  }

  private async syncDirs(dirs: readonly string[]): Promise<void> {
    for (const d of dirs) await syncPath(d);
  }
}
