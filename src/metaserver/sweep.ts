// The stray-object sweep: chunk objects in the datastore that no chunk map references and never
// will — a client uploaded them and died (or failed) before its commit — are deleted once older
// than a grace period. Safety, never a referenced or in-flight object:
//  - An object is a candidate only if its version is below the fs's *sweep floor* and it is older
//    (by mtime) than the grace. The floor is the fs's version high-water mark as it was at least
//    one grace ago (marks are taken every pass), so every version below it was handed out before
//    then (the allocator retires version blocks after ALLOCATOR_VERSION_BLOCK_MS, less than the
//    grace, so no old block hands out low versions late).
//  - The floor is written to the store before the chunk maps are read, and commitData refuses
//    (ESTALE) to make a chunk reference a version below the floor it reads in its own transaction,
//    unless that exact reference is already there. A commit racing with the sweep is either seen
//    by the sweep's reads, or refused; the client then uploads afresh.
//  - Objects with a queued GC item (a replaced chunk waiting out its reader grace, an inode being
//    purged or waiting out its unlink grace) are left to that item.
import type { DataService, ChunkKey } from '../datastore/api';
import { moduleLogger } from '../common/logger';
import { counter } from '../common/metrics';
import type { KvEngine } from './engine';
import type { GcQueue } from './gc';
import { decodeChunk, decodeFs, readU64Value, u64Value } from './inode';
import { ALLOC_SWEPT, ALLOC_VERSION, allFsPrefix, allocKey, chunkPrefix, keyU64b } from './keys';

const log = moduleLogger('metaserver-sweep');
const swept = counter({
  name: 'kurve_metaserver_stray_objects_deleted_total',
  help: 'Datastore objects no chunk map referenced, older than the stray grace, deleted by the sweep',
});

/** A stray object is deleted once older than this (default 24 h). */
export const DEFAULT_STRAY_GRACE_MS = 24 * 3_600_000;
const PAGE = 1000;

export interface SweepOptions {
  readonly graceMs?: number;
  /** Time between passes (default a quarter of the grace, at most 1 h). */
  readonly intervalMs?: number;
}

interface Mark {
  readonly at: number;
  readonly hw: Map<number, number>;
}

export class StraySweeper {
  readonly graceMs: number;
  private readonly intervalMs: number;
  private readonly marks: Mark[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private stopped = true;
  private closing = false;

  constructor(private readonly engine: KvEngine, private readonly gc: GcQueue, private readonly datastore: DataService, opts: SweepOptions = {}) {
    this.graceMs = opts.graceMs ?? DEFAULT_STRAY_GRACE_MS;
    this.intervalMs = opts.intervalMs ?? Math.min(3_600_000, Math.max(100, Math.floor(this.graceMs / 4)));
  }

  start(): void {
    if (!this.datastore.list) return; // a datastore that cannot list: nothing to sweep with
    this.stopped = false;
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sweepOnce().catch((err: unknown) => log.warn({ err: String(err) }, 'stray sweep failed')).finally(() => this.schedule(this.intervalMs));
    }, ms);
    this.timer.unref();
  }

  /** One pass (serialised): records a mark, and sweeps below the floor of a mark one grace old. */
  sweepOnce(now = Date.now()): Promise<number> {
    this.running ??= this.pass(now).finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(now: number): Promise<number> {
    const list = this.datastore.list?.bind(this.datastore);
    if (!list) return 0;
    const hw = new Map<number, number>();
    for (const e of await this.engine.range({ prefix: allFsPrefix() })) {
      const { fsId } = decodeFs(e.value);
      const v = await this.engine.get(allocKey(fsId, ALLOC_VERSION));
      if (v) hw.set(fsId, readU64Value(v.value));
    }
    this.marks.push({ at: now, hw });
    let ripe: Mark | undefined;
    while (this.marks.length > 0 && this.marks[0].at <= now - this.graceMs) ripe = this.marks.shift();
    if (!ripe) return 0;
    this.marks.unshift(ripe); // the next pass may use it again if no newer mark ripened
    const floors = new Map<number, number>();
    for (const [fsId, v] of ripe.hw) floors.set(fsId, await this.raiseFloor(fsId, v));

    const skipIno = new Set<string>();
    const skipObj = new Set<string>();
    for (const { item } of await this.gc.items()) {
      if (item.chunk) skipObj.add(`${item.fsId}/${item.ino}/${item.chunk.index}.${item.chunk.version}`);
      else skipIno.add(`${item.fsId}/${item.ino}`);
    }
    const cutoff = now - this.graceMs;
    let deleted = 0;
    let after: string | undefined;
    do {
      if (this.closing) break;
      const page = await list(after, PAGE);
      const victims: ChunkKey[] = [];
      // One read of an inode's chunk map serves all its objects on the page (listed together).
      let mapOf = '';
      let map = new Map<number, number>();
      for (const { key, mtimeMs } of page.objects) {
        const floor = floors.get(key.fsId);
        if (floor === undefined || key.version >= floor || mtimeMs > cutoff) continue;
        const ino = `${key.fsId}/${key.ino}`;
        if (skipIno.has(ino) || skipObj.has(`${ino}/${key.index}.${key.version}`)) continue;
        if (mapOf !== ino) {
          mapOf = ino;
          map = new Map();
          for (const e of await this.engine.range({ prefix: chunkPrefix(key.fsId, key.ino) })) {
            const c = decodeChunk(keyU64b(e.key), e.value);
            map.set(c.index, c.version);
          }
        }
        if (map.get(key.index) === key.version) continue;
        victims.push(key);
      }
      if (victims.length > 0) {
        const n = await this.datastore.deleteMany(victims);
        deleted += n;
        swept.inc(n);
        log.info({ objects: n, first: victims[0] }, 'deleted datastore objects no chunk map references');
      }
      after = page.next;
    } while (after);
    return deleted;
  }

  /** Raises the fs's sweep floor to at least `v` (never lowers it); returns the floor now stored. */
  private async raiseFloor(fsId: number, v: number): Promise<number> {
    const key = allocKey(fsId, ALLOC_SWEPT);
    for (let attempt = 0; attempt < 10; attempt++) {
      const cur = await this.engine.get(key);
      const old = cur ? readU64Value(cur.value) : 0;
      if (old >= v) return old;
      const res = await this.engine.txn({ compares: [{ key, modRevision: cur?.modRevision ?? 0 }], puts: [{ key, value: u64Value(v) }] });
      if (res.succeeded) return v;
    }
    throw new Error(`sweep floor of fs ${fsId}: too much contention`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }
}
