// Open file and directory handles: the fh numbers the kernel carries in READ/WRITE/RELEASE….
import { FsError, Errno } from '../../common/errno';

/**
 * fh -> payload. Numbers are never reused during a session, so a stale fh from a raced release
 * finds nothing (EBADF) instead of someone else's file.
 */
export class HandleTable<T> {
  private readonly handles = new Map<number, T>();
  private next = 1;

  add(value: T): number {
    const fh = this.next++;
    this.handles.set(fh, value);
    return fh;
  }

  get(fh: number): T | undefined {
    return this.handles.get(fh);
  }

  need(fh: number): T {
    const v = this.handles.get(fh);
    if (v === undefined) throw new FsError(Errno.EBADF, `unknown file handle ${fh}`);
    return v;
  }

  /** Removes and returns the handle (undefined if unknown). */
  release(fh: number): T | undefined {
    const v = this.handles.get(fh);
    this.handles.delete(fh);
    return v;
  }

  get size(): number {
    return this.handles.size;
  }

  values(): IterableIterator<T> {
    return this.handles.values();
  }
}
