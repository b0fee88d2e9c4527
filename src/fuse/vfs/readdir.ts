// Directory listings with stable offsets: a directory handle snapshots the listing when reading
// starts (offset 0), and the offset the kernel passes back is an index into that snapshot, so
// concurrent creates and unlinks never make a listing skip or repeat an entry.
import type { DirentPlusSink, DirentSink, EntryOut } from '../protocol/raw-fs';

export interface ListedEntry {
  readonly name: Buffer;
  readonly ino: number;
  /** mode & S_IFMT, or 0 if unknown. */
  readonly type: number;
}

const DOT = Buffer.from('.');
const DOTDOT = Buffer.from('..');

/** "." and ".." as the first two entries of a listing (the kernel shows what we send). */
export function dotEntries(self: number, parent: number): ListedEntry[] {
  return [
    { name: DOT, ino: self, type: 0o040000 },
    { name: DOTDOT, ino: parent, type: 0o040000 },
  ];
}

/** Per-opendir state: the snapshot lives from offset 0 to releasedir. */
export class DirStream<E extends ListedEntry = ListedEntry> {
  private snapshot: E[] | undefined;

  /** The snapshot for a read at `offset`; `load` runs at offset 0 (first read or rewinddir). */
  async entriesAt(offset: number, load: () => Promise<E[]> | E[]): Promise<E[]> {
    if (offset === 0 || this.snapshot === undefined) this.snapshot = await load();
    return this.snapshot;
  }

  /** Cached listing, if any (e.g. to serve READDIRPLUS without a second fetch). */
  get cached(): E[] | undefined {
    return this.snapshot;
  }
}

/** Packs entries[offset..] until the kernel's buffer is full. Returns how many were packed. */
export function fillDirents(sink: DirentSink, entries: readonly ListedEntry[], offset: number): number {
  let i = offset;
  for (; i < entries.length; i++) {
    const e = entries[i];
    if (!sink.add({ ino: e.ino, off: i + 1, name: e.name, type: e.type })) break;
  }
  return i - offset;
}

/**
 * READDIRPLUS: packs entries[offset..] with their EntryOut. `entryOf` may return undefined to
 * send an entry without attributes (nodeid 0: the kernel does a LOOKUP later). `onPacked` runs
 * for each entry handed to the kernel with a nodeid — that is where the caller ref()s the inode,
 * exactly once, after the sink accepted it.
 */
export function fillDirentsPlus<E extends ListedEntry>(
  sink: DirentPlusSink,
  entries: readonly E[],
  offset: number,
  entryOf: (e: E) => EntryOut | undefined,
  onPacked: (e: E, entry: EntryOut) => void,
): number {
  let i = offset;
  for (; i < entries.length; i++) {
    const e = entries[i];
    const entry = entryOf(e) ?? noEntry(e.ino);
    const r = sink.add({ ino: e.ino, off: i + 1, name: e.name, type: e.type, entry });
    if (r === false) break;
    if (r === true && entry.nodeid !== 0) onPacked(e, entry);
  }
  return i - offset;
}

const ZERO_TIME = { sec: 0, nsec: 0 };
function noEntry(ino: number): EntryOut {
  return {
    nodeid: 0, generation: 0, entryValid: 0, attrValid: 0,
    attr: { ino, size: 0, atime: ZERO_TIME, mtime: ZERO_TIME, ctime: ZERO_TIME, mode: 0, nlink: 0, uid: 0, gid: 0 },
  };
}
