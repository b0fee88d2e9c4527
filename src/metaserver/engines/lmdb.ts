// KvEngine on lmdb (embedded, one process per data directory) with group commit: a txn's
// compares are checked synchronously against the committed data plus an in-memory overlay of
// accepted-but-not-yet-durable writes, so concurrent txns in one process never conflict spuriously
// and a retry never waits for a disk flush; accepted writes are committed in batches (one lmdb
// write transaction per batch) and each txn is acknowledged only after its batch is flushed.
//
// Reads see accepted writes before they are durable (like a group-commit database whose readers
// may see a commit in flight). A later txn that depends on such a write lands in the same or a
// later batch, and batches become durable in order, so an acknowledged write never depends on a
// lost one.
//
// Durability modes (when a txn is acknowledged):
// - 'sync' (default, `kurve metaserver`): after its batch's lmdb commit has been fsync'ed.
// - 'written' (embedded `kurve up`, like a local file system): once its record is written to the
//   journal (lmdb-journal.ts) with write(2) — in the page cache, so a kill -9 of this process never
//   loses it — while lmdb still commits with fsync in the background, batches at most every
//   commitIntervalMs. A machine crash can lose the last ~interval of acknowledged writes (always a
//   prefix-consistent state: lmdb is never opened without sync); flush() makes them durable now.
//   lmdb's own noSync/overlappingSync are not used for this: with noSync a machine crash can
//   corrupt the database, and overlappingSync acknowledges a commit only after the previous sync.
import * as fs from 'node:fs';
import { open, RootDatabase } from 'lmdb';
import { Errno, FsError, toErrno } from '../../common/errno';
import { commitFailure } from '../../common/lmdb-commit';
import { moduleLogger } from '../../common/logger';
import { histogram } from '../../common/metrics';
import { engineDuration, engineOps } from '../engine-metrics';
import { compareHolds, KvEngine, KvEntry, KvRange, KvTxn, KvTxnResult, KvValue, rangeBounds } from '../engine';
import { readU64 } from '../keys';
import type { Journal, JournalWrite } from './lmdb-journal';
import { takeLock } from './lmdb-lock';
import { overlayRange, Pending, replayJournal, REV_KEY, stageRev, stageWrites } from './lmdb-store';

const log = moduleLogger('lmdb');

/** Free space below which a failed commit's EIO is reported as ENOSPC. */
const FULL_DISK_BYTES = 1024 * 1024;
/** 'written' mode: how soon a failed lmdb commit (a full disk) is tried again. */
const COMMIT_RETRY_MS = 1000;


const batchSize = histogram({
  name: 'kurve_metaserver_engine_batch_txns',
  help: 'Txns per group commit (lmdb engine)',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
});

/** lmdb's compiled-in key limit. */
const MAX_KEY_BYTES = 1978;

interface Batch {
  /**
   * Each write is also its key's `pending` entry (one object per write); `id` is the key as that
   * map spells it (latin1), made once.
   */
  readonly writes: Array<JournalWrite & Pending & { id: string }>;
  readonly waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
  lastRev: number;
  txns: number;
}

export interface LmdbEngineOptions {
  /** Directory of the database (created if missing). */
  readonly path: string;
  /** Skip fsync (tests and benchmarks of the logic only; acknowledged writes may be lost). */
  readonly noSync?: boolean;
  /** When a txn is acknowledged: 'sync' (default) after fsync, 'written' once in the OS page cache. */
  readonly durability?: LmdbDurability;
  /** 'written' mode: lmdb commits (each fsync'ed) start at most this often (default 50 ms). */
  readonly commitIntervalMs?: number;
}

export type LmdbDurability = 'sync' | 'written';

interface FlushWaiter {
  readonly rev: number;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

export class LmdbEngine implements KvEngine {
  readonly kind = 'lmdb';
  readonly decidesSynchronously = true;
  private readonly db: RootDatabase<Buffer, Buffer>;
  private rev: number;
  private readonly pending = new Map<string, Pending>();
  private batch: Batch | null = null;
  private flushing: Promise<void> | null = null;
  private failed: Error | null = null;
  private closed = false;
  private readonly lockFile: string;
  private readonly dir: string;
  readonly durability: LmdbDurability;
  private readonly intervalMs: number;
  private journal: Journal | null = null;
  /** Every revision ≤ this is in a synced lmdb commit. */
  private durableRev: number;
  private flushWaiters: FlushWaiter[] = [];
  /** A flush() or close() is waiting: commit without pacing. */
  private hurry = false;
  private wake: (() => void) | null = null;
  private lastCommitStart = 0;
  /** The last lmdb commit failed ('written' mode keeps its batch and retries). */
  private retrying = false;

  constructor(opts: LmdbEngineOptions) {
    this.durability = opts.durability ?? 'sync';
    if (this.durability !== 'sync' && this.durability !== 'written') throw new Error(`lmdb engine: unknown durability '${String(this.durability)}' (sync or written)`);
    this.intervalMs = opts.commitIntervalMs ?? 50;
    if (!(this.intervalMs >= 0 && this.intervalMs <= 60_000)) throw new Error(`lmdb engine: commitIntervalMs ${this.intervalMs} is outside 0..60000`);
    fs.mkdirSync(opts.path, { recursive: true });
    this.dir = opts.path;
    this.lockFile = takeLock(opts.path);
    try {
      this.db = open<Buffer, Buffer>({
        path: opts.path,
        // A directory even when its name has a dot (lmdb guesses "file" from an extension).
        noSubdir: false,
        keyEncoding: 'binary',
        encoding: 'binary',
        noSync: opts.noSync ?? false,
        // Larger write batches are cheap; a lone write should not wait for a timer.
        commitDelay: 0,
        // Commit = synced: lmdb fsyncs inside the commit, so the batch's promise means durable.
        overlappingSync: false,
        // We batch ourselves (one transaction per group commit). lmdb-js's own event-turn batch
        // starts with a write whose promise nobody holds: a failed commit (a full disk) rejects
        // it unhandled and ends the process.
        eventTurnBatching: false,
      });
    } catch (err) {
      fs.rmSync(this.lockFile, { force: true });
      throw err;
    }
    const stored = this.db.get(REV_KEY);
    this.rev = stored ? readU64(stored, 0) : 0;
    try {
      const replayed = replayJournal(this.db, opts.path, this.rev, this.durability === 'written');
      this.rev = replayed.rev;
      this.journal = replayed.journal;
    } catch (err) {
      this.db.close().catch(() => undefined);
      fs.rmSync(this.lockFile, { force: true });
      throw err;
    }
    this.durableRev = this.rev;
    log.debug({ path: opts.path, revision: this.rev, durability: this.durability }, 'lmdb opened');
  }


  private check(): void {
    if (this.failed) throw this.failed;
    if (this.closed) throw new Error('lmdb engine is closed');
  }

  /** Current value, overlay first. */
  private peek(key: Buffer): KvValue | undefined {
    const p = this.pending.get(key.toString('latin1'));
    if (p) return p.value === undefined ? undefined : { value: p.value, modRevision: p.modRevision };
    const raw = this.db.get(key);
    if (!raw) return undefined;
    return { value: raw.subarray(8), modRevision: readU64(raw, 0) };
  }

  async get(key: Buffer): Promise<KvValue | undefined> {
    return this.getSync(key);
  }

  getSync(key: Buffer): KvValue | undefined {
    this.check();
    return this.peek(key);
  }

  async range(r: KvRange): Promise<KvEntry[]> {
    this.check();
    return overlayRange(this.db, this.pending, r);
  }

  /** Keys on disk in the range (writes still in flight are not counted). */
  async count(r: KvRange): Promise<number> {
    this.check();
    const { start, end } = rangeBounds(r);
    return this.db.getKeysCount({ start, end });
  }

  async txn(t: KvTxn): Promise<KvTxnResult> {
    this.check();
    for (const c of t.compares ?? []) {
      if (!compareHolds(c, this.peek(c.key))) {
        return { succeeded: false, revision: this.rev };
      }
    }
    const puts = t.puts ?? [];
    const deletes = t.deletes ?? [];
    // A key lmdb cannot store would fail the whole batch (and stop the engine): refuse it here.
    for (const { key } of puts) {
      if (key.length === 0 || key.length > MAX_KEY_BYTES) throw new Error(`lmdb engine: key of ${key.length} bytes (1..${MAX_KEY_BYTES} allowed)`);
    }
    if (puts.length === 0 && deletes.length === 0) return { succeeded: true, revision: this.rev };
    const rev = this.rev + 1;
    if (this.journal) {
      try {
        this.journal.append(rev, deletes.length === 0 ? puts : [...puts, ...deletes.map((key) => ({ key, value: undefined }))]);
      } catch (err) {
        const e = err as Error & { recovered?: boolean };
        // The record was cut off again (a full disk): this txn alone is refused, nothing of it is
        // anywhere, and the engine goes on (a later one may fit).
        if (e.recovered) throw new FsError(toErrno(e), `metadata journal write failed: ${e.message}`);
        // A torn record would hide every later one from replay: stop rather than ack past it.
        this.failed = new FsError(toErrno(e), `lmdb journal write failed: ${e.message}`);
        log.error({ err }, 'lmdb journal write failed; engine stopped');
        throw this.failed;
      }
    }
    this.rev = rev;
    const batch = (this.batch ??= { writes: [], waiters: [], lastRev: rev, txns: 0 });
    batch.lastRev = rev;
    batch.txns++;
    for (const p of puts) this.stage(batch, p.key, p.value, rev);
    for (const key of deletes) this.stage(batch, key, undefined, rev);
    if (this.journal) {
      // Acknowledged now: the journal record is in the page cache; lmdb catches up (synced) soon.
      this.flushing ??= this.flushLoop();
      return { succeeded: true, revision: rev };
    }
    const durable = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    this.flushing ??= this.flushLoop();
    await durable;
    return { succeeded: true, revision: rev };
  }

  private stage(batch: Batch, key: Buffer, value: Buffer | undefined, modRevision: number): void {
    const w = { key, value, modRevision, id: key.toString('latin1') };
    this.pending.set(w.id, w);
    batch.writes.push(w);
  }

  /**
   * Resolves once every txn accepted so far is in a synced lmdb commit. A no-op in 'sync' mode
   * for acknowledged txns (they already are); in 'written' mode it skips the commit pacing.
   */
  async flush(): Promise<void> {
    this.check();
    const target = this.rev;
    if (this.durableRev >= target) return;
    const done = new Promise<void>((resolve, reject) => this.flushWaiters.push({ rev: target, resolve, reject }));
    this.hurry = true;
    this.wake?.();
    this.flushing ??= this.flushLoop();
    await done;
  }

  /** 'written' mode: waits until commitIntervalMs after the last commit started (or a hurry). */
  private async pace(): Promise<void> {
    const wait = this.lastCommitStart + this.intervalMs - Date.now();
    if (!this.journal || wait <= 0 || this.hurry || this.closed) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => this.wake?.(), wait);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
    });
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  /** The newest revision in a synced lmdb commit (= revision() in 'sync' mode once acked). */
  durableRevision(): number {
    return this.durableRev;
  }

  /** Commits batches until none is waiting; each batch is one lmdb transaction, flushed before acking. */
  private async flushLoop(): Promise<void> {
    // Let the txns issued in this event turn join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.batch) {
      await this.pace();
      const b = this.batch;
      this.batch = null;
      this.hurry = false;
      this.lastCommitStart = Date.now();
      const start = process.hrtime.bigint();
      try {
        await this.db.transaction(() => {
          stageWrites(this.db, b.writes);
          stageRev(this.db, b.lastRev);
        });
        // Without overlappingSync the commit itself syncs; `flushed` (documented: resolves when
        // all previous writes are committed and flushed to disk) makes that explicit.
        await this.db.flushed;
      } catch (err) {
        const failure = fullDiskAsEnospc(await commitFailure(err, 'lmdb commit failed'), this.dir);
        if (this.journal && !this.closed) {
          // Every write of the batch was acknowledged from the journal, which a restart replays,
          // and the overlay serves it meanwhile: keep it and commit again later. A full disk must
          // not stop the file system; fsync says why it cannot be durable yet.
          engineOps.labels('lmdb', 'commit', 'error').inc();
          if (!this.retrying) log.error({ err: failure.message }, 'lmdb commit failed; accepted writes stay in the journal, retrying every second');
          this.retrying = true;
          const later = this.batch as Batch | null;
          this.batch = later
            ? { writes: [...b.writes, ...later.writes], waiters: [...b.waiters, ...later.waiters], lastRev: later.lastRev, txns: b.txns + later.txns }
            : b;
          for (const w of this.flushWaiters.splice(0)) w.reject(failure);
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, COMMIT_RETRY_MS);
            this.wake = () => {
              clearTimeout(timer);
              this.wake = null;
              resolve();
            };
          });
          continue;
        }
        // Txns that arrived during the commit (TypeScript cannot see that the await let them in).
        const queued = this.batch as Batch | null;
        if (this.journal) {
          // Closing with a failed commit: the journal keeps the batch for the next open.
          this.failed = failure;
          log.error({ err: failure.message }, 'lmdb commit failed while closing; the journal keeps the writes for the next open');
          for (const w of [...b.waiters, ...(queued?.waiters ?? [])]) w.reject(failure);
          for (const w of this.flushWaiters.splice(0)) w.reject(failure);
          this.batch = null;
          break;
        }
        // 'sync' mode: no txn of this batch was acknowledged, nor of the one queued behind it
        // (its compares may have read this batch's writes). Both fail with the cause, their writes
        // leave the overlay (it shows what is on disk again), and the engine goes on: the next
        // commit may fit (space freed). Revisions stay monotonic; the failed ones are skipped.
        engineOps.labels('lmdb', 'commit', 'error').inc();
        log.error({ err: failure.message, txns: b.txns + (queued?.txns ?? 0) }, 'lmdb commit failed; its transactions are refused');
        const dropped = queued ? [b, queued] : [b];
        this.batch = null;
        for (const x of dropped) {
          for (const w of x.writes) if (this.pending.get(w.id) === w) this.pending.delete(w.id);
          for (const w of x.waiters) w.reject(failure);
        }
        for (const w of this.flushWaiters.splice(0)) w.reject(failure);
        continue;
      }
      // Unless a later batch wrote the key again.
      for (const w of b.writes) if (this.pending.get(w.id) === w) this.pending.delete(w.id);
      if (this.retrying) log.info({ revision: b.lastRev }, 'lmdb commit works again');
      this.retrying = false;
      engineOps.labels('lmdb', 'commit', 'ok').inc();
      engineDuration.labels('lmdb', 'commit').observe(Number(process.hrtime.bigint() - start) / 1e9);
      batchSize.observe(b.txns);
      this.durableRev = b.lastRev;
      for (const w of b.waiters) w.resolve();
      if (this.flushWaiters.length > 0) {
        const still = this.flushWaiters.filter((w) => w.rev > this.durableRev);
        for (const w of this.flushWaiters) if (w.rev <= this.durableRev) w.resolve();
        this.flushWaiters = still;
      }
      try {
        this.journal?.covered(this.durableRev);
      } catch (err) {
        // Only housekeeping failed (records stay replayable): the journal just grows.
        log.warn({ err }, 'lmdb journal truncate failed');
      }
    }
    this.flushing = null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hurry = true;
    this.wake?.();
    while (this.flushing) await this.flushing;
    if (this.journal && !this.failed) this.journal.clear();
    this.journal?.close();
    await this.db.close();
    fs.rmSync(this.lockFile, { force: true });
  }
}

/**
 * lmdb reports a commit that found its disk full as EIO (the write-back of its pages failed).
 * Callers, and users, are better told ENOSPC: that is checked on the spot.
 */
function fullDiskAsEnospc(failure: FsError, dir: string): FsError {
  if (failure.errno !== Errno.EIO) return failure;
  try {
    const s = fs.statfsSync(dir);
    if (s.bavail * s.bsize >= FULL_DISK_BYTES) return failure;
  } catch {
    return failure;
  }
  return new FsError(Errno.ENOSPC, `${failure.message.replace(/^EIO: /, '')} (no space left on the disk holding ${dir})`);
}
