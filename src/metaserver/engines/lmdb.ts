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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, RootDatabase } from 'lmdb';
import { moduleLogger } from '../../common/logger';
import { histogram } from '../../common/metrics';
import { engineDuration, engineOps } from '../engine-metrics';
import { compareHolds, KvEngine, KvEntry, KvRange, KvTxn, KvTxnResult, KvValue, rangeBounds } from '../engine';
import { readU64, writeU64 } from '../keys';

const log = moduleLogger('lmdb');

const batchSize = histogram({
  name: 'kurve_metaserver_engine_batch_txns',
  help: 'Txns per group commit (lmdb engine)',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
});

/** lmdb's compiled-in key limit. */
const MAX_KEY_BYTES = 1978;

/** Engine bookkeeping lives under 0x00, below every namespace table tag. */
const REV_KEY = Buffer.from([0x00, 0x72, 0x65, 0x76]);

interface Pending {
  readonly value: Buffer | undefined; // undefined = deleted
  readonly modRevision: number;
}

interface Batch {
  readonly writes: Array<{ key: Buffer; value: Buffer | undefined; rev: number }>;
  readonly waiters: Array<{ resolve: () => void; reject: (e: Error) => void }>;
  lastRev: number;
}

export interface LmdbEngineOptions {
  /** Directory of the database (created if missing). */
  readonly path: string;
  /** Skip fsync (tests and benchmarks of the logic only; acknowledged writes may be lost). */
  readonly noSync?: boolean;
}

/**
 * One engine per directory: the overlay and the revision counter live in this process, so a
 * second process (or a second engine in this one) writing the same lmdb would corrupt both.
 * lmdb itself allows several writers, hence this pid file; a dead owner's file is taken over.
 */
function takeLock(dir: string): string {
  const file = path.join(dir, 'kurve-engine.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      return file;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    let alive = false;
    try {
      if (Number.isInteger(pid) && pid > 0) {
        process.kill(pid, 0);
        alive = true;
      }
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (alive) throw new Error(`${dir} is in use by process ${pid} (one metaserver or fsck per data directory)`);
    fs.rmSync(file, { force: true });
  }
  throw new Error(`cannot take the lock on ${dir}`);
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

  constructor(opts: LmdbEngineOptions) {
    fs.mkdirSync(opts.path, { recursive: true });
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
      });
    } catch (err) {
      fs.rmSync(this.lockFile, { force: true });
      throw err;
    }
    const stored = this.db.get(REV_KEY);
    this.rev = stored ? readU64(stored, 0) : 0;
    log.debug({ path: opts.path, revision: this.rev }, 'lmdb opened');
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
    this.check();
    return this.peek(key);
  }

  async range(r: KvRange): Promise<KvEntry[]> {
    this.check();
    const { start, end } = rangeBounds(r);
    const limit = r.limit ?? Infinity;
    // Overlay keys are latin1 strings: one char per byte, so string order is byte order and the
    // scan needs no Buffer per pending key.
    const startS = start.toString('latin1');
    const endS = end?.toString('latin1');
    const overlay: Array<[Buffer, Pending]> = [];
    for (const [k, p] of this.pending) {
      if (k >= startS && (endS === undefined || k < endS)) overlay.push([Buffer.from(k, 'latin1'), p]);
    }
    const fetch = r.reverse ? Infinity : limit + overlay.length;
    const out = new Map<string, KvEntry>();
    let n = 0;
    for (const { key, value } of this.db.getRange({ start, end, limit: fetch === Infinity ? undefined : fetch })) {
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
    const rev = ++this.rev;
    const batch = (this.batch ??= { writes: [], waiters: [], lastRev: rev });
    batch.lastRev = rev;
    for (const p of puts) {
      this.pending.set(p.key.toString('latin1'), { value: p.value, modRevision: rev });
      batch.writes.push({ key: p.key, value: p.value, rev });
    }
    for (const key of deletes) {
      this.pending.set(key.toString('latin1'), { value: undefined, modRevision: rev });
      batch.writes.push({ key, value: undefined, rev });
    }
    const durable = new Promise<void>((resolve, reject) => batch.waiters.push({ resolve, reject }));
    this.flushing ??= this.flushLoop();
    await durable;
    return { succeeded: true, revision: rev };
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  /** Commits batches until none is waiting; each batch is one lmdb transaction, flushed before acking. */
  private async flushLoop(): Promise<void> {
    // Let the txns issued in this event turn join the first batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.batch) {
      const b = this.batch;
      this.batch = null;
      const start = process.hrtime.bigint();
      try {
        await this.db.transaction(() => {
          for (const w of b.writes) {
            if (w.value === undefined) void this.db.remove(w.key);
            else {
              const raw = Buffer.allocUnsafe(8 + w.value.length);
              writeU64(raw, w.rev, 0);
              w.value.copy(raw, 8);
              void this.db.put(w.key, raw);
            }
          }
          const revBuf = Buffer.alloc(8);
          writeU64(revBuf, b.lastRev, 0);
          void this.db.put(REV_KEY, revBuf);
        });
        // Without overlappingSync the commit itself syncs; `flushed` (documented: resolves when
        // all previous writes are committed and flushed to disk) makes that explicit.
        await this.db.flushed;
      } catch (err) {
        // The overlay now holds writes that never reached disk: refuse all further work rather
        // than serve state that a restart would lose.
        this.failed = new Error(`lmdb commit failed: ${(err as Error).message}`);
        log.error({ err }, 'lmdb commit failed; engine stopped');
        for (const w of b.waiters) w.reject(this.failed);
        for (let next = this.batch as Batch | null; next; next = null) for (const w of next.waiters) w.reject(this.failed);
        this.batch = null;
        break;
      }
      for (const w of b.writes) {
        const s = w.key.toString('latin1');
        if (this.pending.get(s)?.modRevision === w.rev) this.pending.delete(s);
      }
      engineOps.labels('lmdb', 'commit', 'ok').inc();
      engineDuration.labels('lmdb', 'commit').observe(Number(process.hrtime.bigint() - start) / 1e9);
      batchSize.observe(b.waiters.length);
      for (const w of b.waiters) w.resolve();
    }
    this.flushing = null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.db.close();
    fs.rmSync(this.lockFile, { force: true });
  }
}
