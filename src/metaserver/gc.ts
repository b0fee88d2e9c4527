// The garbage queue: chunk objects replaced by a commit or dropped by a truncate, and whole
// inodes whose last link and last open handle are gone. Items live in the KV store ('G' keys,
// ordered by due time) so nothing leaks across a restart; a background loop deletes the objects
// from the datastore, then the item. Failures are retried with exponential backoff. Replaced
// chunks wait a grace period first, so a reader on another client mid-read is not broken.
import { randomInt } from 'node:crypto';
import type { DataService } from '../datastore/api';
import { moduleLogger } from '../common/logger';
import { counter, gauge } from '../common/metrics';
import { DEFAULT_GC_GRACE_MS, DEFAULT_UNLINK_GRACE_MS } from './defaults';
import type { KvEngine } from './engine';
import { chunkPrefix, gcKey, gcPrefix, readU64, xattrPrefix } from './keys';
import type { Tx } from './txn';

const log = moduleLogger('metaserver-gc');
const gcDone = counter({
  name: 'kurve_metaserver_gc_items_total',
  help: 'Garbage items processed, by kind (chunk, inode, unlinked) and result (ok, retry)',
  labelNames: ['kind', 'result'] as const,
});
// Every series exists from the start (at 0): an unlink's purge now waits out the unlink grace,
// so a short-lived process may never process an item, and "no data" would look like a failure.
for (const kind of ['chunk', 'inode', 'unlinked']) for (const result of ['ok', 'retry']) gcDone.labels(kind, result).inc(0);
const gcQueue = gauge({ name: 'kurve_metaserver_gc_queue_length', help: 'Garbage items waiting (as of the last GC pass)' });

export interface GcItem {
  readonly fsId: number;
  readonly ino: number;
  /** A single replaced chunk object; absent for a whole inode (all its objects and metadata). */
  readonly chunk?: { readonly index: number; readonly version: number };
  /** A whole inode that never had data objects (directory, symlink, device): metadata only. */
  readonly noData?: boolean;
  /**
   * An unlinked regular file nobody held at the unlink (see DEFAULT_UNLINK_GRACE_MS): when due it
   * is purged unless a session opened it meanwhile (then its last release purges it).
   */
  readonly unlinked?: boolean;
  readonly attempts?: number;
}

export interface GcOptions {
  readonly datastore?: DataService;
  /** Delay before a replaced chunk object is deleted (default 30 s). */
  readonly graceMs?: number;
  /** How often the loop looks for due items (default 1 s). */
  readonly intervalMs?: number;
  /** Items per pass (default 256). */
  readonly batch?: number;
  /** How long an unlinked, unheld regular file waits before its purge (default 10 s; 0 = at once). */
  readonly unlinkGraceMs?: number;
}

const MAX_BACKOFF_MS = 3_600_000;

export class GcQueue {
  readonly graceMs: number;
  readonly unlinkGraceMs: number;
  /** Purges an unlinked inode if no session holds it (set by the namespace, which owns txns). */
  settleUnlinked?: (fsId: number, ino: number) => Promise<void>;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = true;

  constructor(private readonly engine: KvEngine, private readonly opts: GcOptions = {}) {
    this.graceMs = opts.graceMs ?? DEFAULT_GC_GRACE_MS;
    this.unlinkGraceMs = opts.unlinkGraceMs ?? DEFAULT_UNLINK_GRACE_MS;
  }

  /** Stages an item in the op's transaction, due after delayMs. */
  enqueue(tx: Tx, item: GcItem, delayMs: number): void {
    tx.put(gcKey(Date.now() + delayMs, randomInt(2 ** 47)), Buffer.from(JSON.stringify(item)));
    if (delayMs === 0) tx.after.push(() => this.wake());
  }

  start(): void {
    this.stopped = false;
    this.schedule(this.opts.intervalMs ?? 1000);
  }

  private schedule(ms: number): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      // A full batch done: more may be due already. Go on at once, or a workload replacing more
      // than a batch of chunks per interval (fsx: ~400/s) grows the queue, and the disk, forever.
      const batch = this.opts.batch ?? 256;
      this.runOnce()
        .then((done) => this.schedule(done >= batch ? 0 : this.opts.intervalMs ?? 1000))
        .catch((err: unknown) => {
          log.warn({ err }, 'gc pass failed');
          this.schedule(this.opts.intervalMs ?? 1000);
        });
    }, ms);
    this.timer.unref();
  }

  /** Run soon (something became garbage right now). */
  wake(): void {
    if (this.stopped) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.schedule(10);
  }

  /** One pass over due items; returns how many were finished. Serialised. */
  runOnce(now = Date.now()): Promise<number> {
    this.running ??= this.pass(now).finally(() => (this.running = undefined));
    return this.running;
  }

  /** Every queued item (tests, fsck). */
  async items(): Promise<Array<{ key: Buffer; due: number; item: GcItem }>> {
    const all = await this.engine.range({ prefix: gcPrefix() });
    return all.map((e) => ({ key: e.key, due: readU64(e.key, 1), item: JSON.parse(e.value.toString()) as GcItem }));
  }

  private async pass(now: number): Promise<number> {
    const batch = this.opts.batch ?? 256;
    const entries = await this.engine.range({ prefix: gcPrefix(), limit: batch });
    let done = 0;
    const chunks: Array<{ key: Buffer; item: GcItem }> = [];
    for (const e of entries) {
      if (readU64(e.key, 1) > now) break;
      const item = JSON.parse(e.value.toString()) as GcItem;
      if (item.chunk) chunks.push({ key: e.key, item });
      else if (item.unlinked) {
        if (await this.settle(e.key, item)) done++;
      } else if (await this.purgeInode(e.key, item)) done++;
    }
    if (chunks.length) done += await this.deleteChunks(chunks);
    if (this.engine.kind === 'lmdb' || entries.length < batch) gcQueue.set(entries.length - done);
    return done;
  }

  private async deleteChunks(items: Array<{ key: Buffer; item: GcItem }>): Promise<number> {
    const ds = this.opts.datastore;
    try {
      if (!ds) throw new Error('no datastore configured');
      await ds.deleteMany(items.map(({ item }) => ({ fsId: item.fsId, ino: item.ino, index: item.chunk!.index, version: item.chunk!.version })));
    } catch (err) {
      await Promise.all(items.map(({ key, item }) => this.retryLater(key, item, err)));
      gcDone.labels('chunk', 'retry').inc(items.length);
      return 0;
    }
    await this.engine.txn({ deletes: items.map((i) => i.key) });
    gcDone.labels('chunk', 'ok').inc(items.length);
    return items.length;
  }

  /** An unlinked file's grace is over: purge it now unless a session holds it. */
  private async settle(key: Buffer, item: GcItem): Promise<boolean> {
    try {
      if (!this.settleUnlinked) throw new Error('no namespace attached');
      await this.settleUnlinked(item.fsId, item.ino);
    } catch (err) {
      await this.retryLater(key, item, err);
      gcDone.labels('unlinked', 'retry').inc();
      return false;
    }
    await this.engine.txn({ deletes: [key] });
    gcDone.labels('unlinked', 'ok').inc();
    return true;
  }

  /** Drops the inode's chunk map and xattrs (in bounded txns), then its objects, then the item. */
  private async purgeInode(key: Buffer, item: GcItem): Promise<boolean> {
    for (const prefix of [chunkPrefix(item.fsId, item.ino), xattrPrefix(item.fsId, item.ino)]) {
      for (;;) {
        const keys = await this.engine.range({ prefix, limit: 100 });
        if (keys.length === 0) break;
        await this.engine.txn({ deletes: keys.map((k) => k.key) });
      }
    }
    try {
      if (!item.noData) {
        if (!this.opts.datastore) throw new Error('no datastore configured');
        await this.opts.datastore.deleteInode(item.fsId, item.ino);
      }
    } catch (err) {
      await this.retryLater(key, item, err);
      gcDone.labels('inode', 'retry').inc();
      return false;
    }
    await this.engine.txn({ deletes: [key] });
    gcDone.labels('inode', 'ok').inc();
    return true;
  }

  private warnedNoDatastore = false;

  private async retryLater(key: Buffer, item: GcItem, err: unknown): Promise<void> {
    const attempts = (item.attempts ?? 0) + 1;
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(attempts, 22));
    if (!this.opts.datastore) {
      if (!this.warnedNoDatastore) log.info('no datastore configured: chunk objects wait in the GC queue');
      this.warnedNoDatastore = true;
    } else if (attempts === 1 || attempts % 10 === 0) log.warn({ fsId: item.fsId, ino: item.ino, attempts, err: String((err as Error)?.message ?? err) }, 'gc: delete failed, will retry');
    await this.engine.txn({
      compares: [{ key, modRevision: (await this.engine.get(key))?.modRevision ?? 0 }],
      deletes: [key],
      puts: [{ key: gcKey(Date.now() + delay, randomInt(2 ** 47)), value: Buffer.from(JSON.stringify({ ...item, attempts })) }],
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }
}
