// The kernel's view of our inodes: which nodeids it holds and how many lookups it owes us, like
// passthrough_hp's inode table. An inode leaves the table only when the kernel forgets it.
import { FsError, Errno } from '../../common/errno';

/** A forget for more lookups than we handed out: a bookkeeping bug, never a user error. */
export class LookupCountError extends Error {
  override readonly name = 'LookupCountError';
}

export const ROOT_NODEID = 1;

interface Slot<T> {
  value: T;
  nlookup: number;
}

/**
 * nodeid -> (payload, nlookup). Every reply that hands the kernel an entry (lookup, mknod, mkdir,
 * symlink, link, create, each packed readdirplus entry but "." and "..") must go through ref()
 * exactly once; forget() gives counts back. The root is pinned: the kernel never looks it up and
 * never forgets it for good.
 */
export class InodeTable<T> {
  private readonly slots = new Map<number, Slot<T>>();

  constructor(root: T, private readonly onEvict?: (nodeid: number, value: T) => void) {
    this.slots.set(ROOT_NODEID, { value: root, nlookup: 1 });
  }

  /** The kernel now holds one more lookup of nodeid; `make` builds the payload if it is new. */
  ref(nodeid: number, make: () => T): T {
    if (!Number.isSafeInteger(nodeid) || nodeid <= 0) throw new FsError(Errno.EIO, `ref of invalid nodeid ${nodeid}`);
    let slot = this.slots.get(nodeid);
    if (slot === undefined) {
      slot = { value: make(), nlookup: 0 };
      this.slots.set(nodeid, slot);
    }
    if (nodeid !== ROOT_NODEID) slot.nlookup++;
    return slot.value;
  }

  /** Replace the payload of a known inode (e.g. fresher attributes) without touching the count. */
  update(nodeid: number, value: T): void {
    const slot = this.slots.get(nodeid);
    if (slot) slot.value = value;
  }

  get(nodeid: number): T | undefined {
    return this.slots.get(nodeid)?.value;
  }

  /** The payload, or ESTALE: the kernel asked about a nodeid it was never given (or forgot). */
  need(nodeid: number): T {
    const slot = this.slots.get(nodeid);
    if (slot === undefined) throw new FsError(Errno.ESTALE, `unknown nodeid ${nodeid}`);
    return slot.value;
  }

  lookupCount(nodeid: number): number {
    return this.slots.get(nodeid)?.nlookup ?? 0;
  }

  /** Returns true when the inode left the table. Throws LookupCountError on over-forget. */
  forget(nodeid: number, n: number): boolean {
    const slot = this.slots.get(nodeid);
    if (slot === undefined) throw new LookupCountError(`forget(${nodeid}, ${n}) of an unknown nodeid`);
    if (nodeid === ROOT_NODEID) return false;
    if (n > slot.nlookup) throw new LookupCountError(`forget(${nodeid}, ${n}) but nlookup is ${slot.nlookup}`);
    slot.nlookup -= n;
    if (slot.nlookup > 0) return false;
    this.slots.delete(nodeid);
    this.onEvict?.(nodeid, slot.value);
    return true;
  }

  get size(): number {
    return this.slots.size;
  }

  *entries(): IterableIterator<[number, T]> {
    for (const [id, slot] of this.slots) yield [id, slot.value];
  }
}
