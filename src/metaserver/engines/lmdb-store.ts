// The lmdb engine's storage layout: values prefixed with their u64 modRevision, the store
// revision under REV_KEY, and range scans that merge lmdb with the in-memory overlay of accepted
// writes not yet committed; the replay of a 'written'-mode journal on open.
import type { RootDatabase } from 'lmdb';
import { settled } from '../../common/lmdb-commit';
import { moduleLogger } from '../../common/logger';
import { KvEntry, KvRange, rangeBounds } from '../engine';
import { readU64, writeU64 } from '../keys';
import { Journal, JournalWrite } from './lmdb-journal';

const log = moduleLogger('lmdb');

/** Engine bookkeeping lives under 0x00, below every namespace table tag. */
export const REV_KEY = Buffer.from([0x00, 0x72, 0x65, 0x76]);

export interface Pending {
  readonly value: Buffer | undefined; // undefined = deleted
  readonly modRevision: number;
}

/** Puts/removes inside the current lmdb transaction, each value prefixed with its revision. */
export function stageWrites(db: RootDatabase<Buffer, Buffer>, writes: ReadonlyArray<JournalWrite & { modRevision: number }>): void {
  for (const w of writes) {
    if (w.value === undefined) settled(db.remove(w.key));
    else {
      const raw = Buffer.allocUnsafe(8 + w.value.length);
      writeU64(raw, w.modRevision, 0);
      w.value.copy(raw, 8);
      settled(db.put(w.key, raw));
    }
  }
}

/** The store revision, in the same lmdb transaction as the batch it ends. */
export function stageRev(db: RootDatabase<Buffer, Buffer>, rev: number): void {
  const revBuf = Buffer.alloc(8);
  writeU64(revBuf, rev, 0);
  settled(db.put(REV_KEY, revBuf));
}

/** Entries of a range: lmdb's committed ones with the overlay (latin1 key -> pending) applied. */
export function overlayRange(db: RootDatabase<Buffer, Buffer>, pending: ReadonlyMap<string, Pending>, r: KvRange): KvEntry[] {
  const { start, end } = rangeBounds(r);
  const limit = r.limit ?? Infinity;
  // Overlay keys are latin1 strings: one char per byte, so string order is byte order and the
  // scan needs no Buffer per pending key.
  const startS = start.toString('latin1');
  const endS = end?.toString('latin1');
  const overlay: Array<[Buffer, Pending]> = [];
  for (const [k, p] of pending) {
    if (k >= startS && (endS === undefined || k < endS)) overlay.push([Buffer.from(k, 'latin1'), p]);
  }
  const fetch = r.reverse ? Infinity : limit + overlay.length;
  const out = new Map<string, KvEntry>();
  let n = 0;
  for (const { key, value } of db.getRange({ start, end, limit: fetch === Infinity ? undefined : fetch })) {
    const k = key as Buffer;
    if (k[0] === 0 && k.equals(REV_KEY)) continue; // engine bookkeeping, not a KV entry
    out.set(k.toString('latin1'), { key: Buffer.from(k), value: (value as Buffer).subarray(8), modRevision: readU64(value as Buffer, 0) });
    if (++n >= fetch) break;
  }
  for (const [key, p] of overlay) {
    const s = key.toString('latin1');
    if (p.value === undefined) out.delete(s);
    else out.set(s, { key, value: p.value, modRevision: p.modRevision });
  }
  let entries = [...out.values()];
  if (overlay.length > 0) entries.sort((a, b) => a.key.compare(b.key));
  if (r.reverse) entries.reverse();
  if (entries.length > limit) entries = entries.slice(0, limit);
  return entries;
}

/**
 * Commits (synced) what a crashed 'written'-mode owner acknowledged but lmdb had not committed, and
 * empties the journal. Returns the store revision after it and, when `keep`, the open journal.
 */
export function replayJournal(db: RootDatabase<Buffer, Buffer>, dir: string, rev: number, keep: boolean): { rev: number; journal: Journal | null } {
  if (!keep && !Journal.exists(dir)) return { rev, journal: null };
  const journal = new Journal(dir);
  try {
    const records = journal.replayable(rev);
    if (records.length > 0) {
      const lastRev = records[records.length - 1].rev;
      db.transactionSync(() => {
        for (const r of records) stageWrites(db, r.writes.map((w) => ({ ...w, modRevision: r.rev })));
        stageRev(db, lastRev);
      });
      log.info({ path: dir, from: rev + 1, to: lastRev }, 'lmdb: replayed journal');
      rev = lastRev;
    }
    journal.clear();
  } catch (err) {
    journal.close();
    throw err;
  }
  if (keep) return { rev, journal };
  journal.remove();
  return { rev, journal: null };
}
