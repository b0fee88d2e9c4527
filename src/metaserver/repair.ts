// Background re-replication ("repair"): every live chunk object of a file system with replicas
// R > 1 is put back on its first R live datastores, in the rendezvous order clients write and read
// in (DataRouter.order), after a datastore was lost, an object disappeared or a write was degraded.
// Read repair only fixes chunks somebody reads; this walks all of them.
//
// A pass: read the chunk maps of the replicated file systems (the live refs), then list every
// live datastore (one paged listing each: the batch "which objects are here" check), then copy
// each object a target lacks from a datastore that has it, a few at a time. Refs are read before
// the listings, so an object committed meanwhile is never mistaken for a lost one (its upload
// finished before its commit, before the listing).
//
// Never resurrect garbage: a replaced chunk or a purged inode loses its ref before GC deletes its
// objects (after the GC grace). A copy is made only if the ref still names that version just
// before; right after the copy the ref is read again, and if it went away meanwhile the copy is
// deleted (GC may have deleted the other copies already, or will: it deletes on every live node).
// A copy is read back and its CRC32C compared with the source's before it counts.
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, fsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { counter, gauge, histogram } from '../common/metrics';
import type { ChunkKey } from '../datastore/api';
import { DataNode, DataRouter } from '../datastore/router';
import { KvEngine, prefixEnd } from './engine';
import type { GcQueue } from './gc';
import { decodeChunk } from './inode';
import { chunkKey, chunkPrefix, keyU64, keyU64b } from './keys';

const log = moduleLogger('metaserver-repair');

const checkedTotal = counter({
  name: 'kurve_metaserver_repair_objects_checked_total',
  help: 'Live chunk objects of replicated file systems whose copies a repair pass checked',
});
const copiesTotal = counter({
  name: 'kurve_metaserver_repair_copies_total',
  help: 'Copies of chunk objects a repair pass put on a target datastore that lacked one (ok: read back intact)',
  labelNames: ['result'] as const,
});
const underGauge = gauge({
  name: 'kurve_metaserver_repair_under_replicated_objects',
  help: 'Chunk objects on fewer than R of their target datastores at the last repair pass',
});
const lostGauge = gauge({
  name: 'kurve_metaserver_repair_lost_objects',
  help: 'Referenced chunk objects found on no live datastore at the last repair pass',
});
const passSeconds = histogram({
  name: 'kurve_metaserver_repair_pass_duration_seconds',
  help: 'Duration of repair passes',
  buckets: [0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
});

/** Default time between background passes. */
export const DEFAULT_REPAIR_INTERVAL_MS = 60_000;
/** Default copies in flight at once. */
export const DEFAULT_REPAIR_CONCURRENCY = 4;
const PAGE = 1000;
/** Lost objects listed in a summary and logged one by one per pass. */
const MAX_LOST_LISTED = 100;

export interface ReplicatedFs {
  readonly fsId: number;
  readonly replicas: number;
}

/** Where the repairer learns the file systems' replica counts and the datastores (the MDS). */
export interface RepairSource {
  fileSystems(): Promise<readonly ReplicatedFs[]>;
  /** Every registered datastore, down ones flagged, by the ids clients place chunks with. */
  nodes(): readonly DataNode[];
}

export interface RepairOptions {
  readonly source: RepairSource;
  /** Time between background passes (default 60 s); 0 = only on request. */
  readonly intervalMs?: number;
  /** Copies in flight at once (default 4). */
  readonly concurrency?: number;
}

export interface RepairSummary {
  readonly fsIds: number[];
  readonly checked: number;
  readonly underReplicated: number;
  readonly copied: number;
  readonly failed: number;
  readonly lost: number;
  /** Objects whose ref went away during the pass (not copied, or the copy taken back). */
  readonly skipped: number;
  /** The first lost objects. */
  readonly lostObjects: ChunkKey[];
  readonly durationMs: number;
}

interface Ref {
  readonly key: ChunkKey;
  readonly replicas: number;
}

const name = (k: ChunkKey) => `${k.fsId}/${k.ino}/${k.index}.${k.version}`;
const errText = (err: unknown) => String((err as Error)?.message ?? err);

export class Repairer {
  private readonly intervalMs: number;
  private readonly concurrency: number;
  private timer: NodeJS.Timeout | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private stopped = true;
  private closing = false;

  constructor(private readonly engine: KvEngine, private readonly gc: GcQueue, private readonly opts: RepairOptions) {
    this.intervalMs = opts.intervalMs ?? DEFAULT_REPAIR_INTERVAL_MS;
    const c = opts.concurrency ?? DEFAULT_REPAIR_CONCURRENCY;
    if (!Number.isSafeInteger(c) || c < 1) throw new Error(`invalid repair concurrency ${c}`);
    this.concurrency = c;
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    this.stopped = false;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runOnce()
        .catch((err: unknown) => log.warn({ err: errText(err) }, 'repair pass failed'))
        .finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One pass over every replicated file system, or only `fsId`. Passes run one at a time. */
  runOnce(fsId?: number): Promise<RepairSummary> {
    const run = this.tail.then(() => this.pass(fsId));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async pass(only: number | undefined): Promise<RepairSummary> {
    const start = Date.now();
    const all = await this.opts.source.fileSystems();
    if (only !== undefined && !all.some((f) => f.fsId === only)) throw fsError('ENOENT', `no file system with id ${only}`);
    const fss = all.filter((f) => f.replicas > 1 && (only === undefined || f.fsId === only));
    const s = { checked: 0, underReplicated: 0, copied: 0, failed: 0, lost: 0, skipped: 0, lostObjects: [] as ChunkKey[] };
    const done = (): RepairSummary => {
      const durationMs = Date.now() - start;
      passSeconds.observe(durationMs / 1000);
      if (only === undefined) {
        underGauge.set(s.underReplicated);
        lostGauge.set(s.lost);
      }
      return { fsIds: fss.map((f) => f.fsId), ...s, durationMs };
    };
    if (fss.length === 0) return done();
    const snapshot = [...this.opts.source.nodes()];
    if (snapshot.length === 0) throw fsError('EIO', 'no datastore known yet');
    const order = new DataRouter(snapshot);

    const refs = await this.liveRefs(fss);
    const held = await this.listings(snapshot.filter((n) => !n.down), new Set(fss.map((f) => f.fsId)));
    const downIds = snapshot.filter((n) => !held.has(n.id)).map((n) => n.id);

    const jobs: Array<{ key: ChunkKey; from: DataNode[]; to: DataNode[] }> = [];
    for (const { key, replicas } of refs) {
      if (this.closing) break;
      s.checked++;
      const live = order.order(key).filter((n) => held.has(n.id));
      const k = name(key);
      const holders = live.filter((n) => held.get(n.id)!.has(k));
      const missing = live.slice(0, replicas).filter((n) => !holders.includes(n));
      if (missing.length === 0) continue;
      s.underReplicated++;
      if (holders.length > 0) {
        jobs.push({ key, from: holders, to: missing });
        continue;
      }
      if (!(await this.referenced(key))) {
        s.skipped++;
        continue;
      }
      s.lost++;
      if (s.lostObjects.length < MAX_LOST_LISTED) {
        s.lostObjects.push(key);
        log.error({ fsId: key.fsId, ino: key.ino, chunk: key.index, version: key.version, notAnswering: downIds },
          'chunk object LOST: on no live datastore (a down datastore may still hold it)');
      }
    }
    checkedTotal.inc(s.checked);
    if (s.lost > MAX_LOST_LISTED) log.error({ lost: s.lost }, `${s.lost - MAX_LOST_LISTED} more lost chunk objects not logged one by one`);

    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length && !this.closing) {
        const j = jobs[next++];
        const r = await this.copy(j.key, j.from, j.to);
        s.copied += r.copied;
        s.failed += r.failed;
        if (r.gone) s.skipped++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, jobs.length) }, worker));
    const out = done();
    if (s.underReplicated > 0 || only !== undefined) {
      log.info({ fsIds: out.fsIds, checked: s.checked, underReplicated: s.underReplicated, copied: s.copied, failed: s.failed, lost: s.lost, skipped: s.skipped, ms: out.durationMs },
        'repair pass done');
    }
    return out;
  }

  /** Every chunk ref of the file systems, but for inodes queued for purge (GC deletes those). */
  private async liveRefs(fss: readonly ReplicatedFs[]): Promise<Ref[]> {
    const purging = new Set<string>();
    for (const { item } of await this.gc.items()) if (!item.chunk && !item.unlinked) purging.add(`${item.fsId}/${item.ino}`);
    const refs: Ref[] = [];
    for (const f of fss) {
      const prefix = chunkPrefix(f.fsId);
      const end = prefixEnd(prefix);
      let start = prefix;
      for (;;) {
        if (this.closing) return refs;
        const page = await this.engine.range({ start, end, limit: PAGE });
        for (const e of page) {
          const ino = keyU64(e.key);
          const c = decodeChunk(keyU64b(e.key), e.value);
          if (purging.has(`${f.fsId}/${ino}`)) continue;
          refs.push({ key: { fsId: f.fsId, ino, index: c.index, version: c.version }, replicas: f.replicas });
        }
        if (page.length < PAGE) break;
        start = Buffer.concat([page[page.length - 1].key, Buffer.from([0])]);
      }
    }
    return refs;
  }

  /** Node id -> the objects of these file systems it holds; a node that does not answer is left out (as down). */
  private async listings(nodes: readonly DataNode[], fsIds: Set<number>): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    await Promise.all(nodes.map(async (n) => {
      const list = n.service.list?.bind(n.service);
      if (!list) return;
      const have = new Set<string>();
      try {
        let after: string | undefined;
        do {
          if (this.closing) return;
          const page = await list(after, PAGE);
          for (const o of page.objects) if (fsIds.has(o.key.fsId)) have.add(name(o.key));
          after = page.next;
        } while (after);
      } catch (err) {
        log.warn({ datastore: n.id, err: errText(err) }, 'repair: listing a datastore failed; it counts as down for this pass');
        return;
      }
      out.set(n.id, have);
    }));
    return out;
  }

  /** The chunk map still names this version of the chunk. */
  private async referenced(key: ChunkKey): Promise<boolean> {
    const cur = await this.engine.get(chunkKey(key.fsId, key.ino, key.index));
    return cur !== undefined && decodeChunk(key.index, cur.value).version === key.version;
  }

  private async copy(key: ChunkKey, from: DataNode[], to: DataNode[]): Promise<{ copied: number; failed: number; gone: boolean }> {
    const id = name(key);
    if (!(await this.referenced(key))) return { copied: 0, failed: 0, gone: true };
    let data: Buffer | undefined;
    for (const n of from) {
      try {
        data = await n.service.get(key); // the store checks its CRCs (EIO if corrupt), the client each piece in transit
        break;
      } catch (err) {
        log.warn({ chunk: id, datastore: n.id, err: errText(err) }, 'repair: reading a copy failed; trying another');
      }
    }
    if (!data) {
      if (!(await this.referenced(key))) return { copied: 0, failed: 0, gone: true };
      copiesTotal.labels('failed').inc(to.length);
      return { copied: 0, failed: to.length, gone: false };
    }
    const crc = crc32c(data);
    const made: DataNode[] = [];
    let failed = 0;
    await Promise.all(to.map(async (n) => {
      let stored = false;
      try {
        await n.service.put(key, data, crc); // refused unless the bytes received match crc
        stored = true;
        const back = await n.service.get(key);
        if (back.length !== data.length || crc32c(back) !== crc) throw fsError('EIO', 'the copy reads back with another checksum');
        made.push(n);
      } catch (err) {
        failed++;
        copiesTotal.labels('failed').inc();
        log.warn({ chunk: id, datastore: n.id, err: errText(err) }, 'repair: copy failed (tried again next pass)');
        // A copy that does not read back intact must not serve reads.
        if (stored && err instanceof FsError && err.errno === Errno.EIO) await n.service.delete(key).catch(() => undefined);
      }
    }));
    if (made.length > 0 && !(await this.referenced(key))) {
      // Replaced or deleted while copying: take the copies back, GC may have passed already.
      await Promise.all(made.map((n) => n.service.delete(key).catch((err: unknown) =>
        log.warn({ chunk: id, datastore: n.id, err: errText(err) }, 'repair: deleting a copy of a chunk no longer referenced failed (the stray sweep will)'))));
      return { copied: 0, failed, gone: true };
    }
    for (const n of made) log.info({ chunk: id, datastore: n.id }, 'chunk copy re-replicated');
    copiesTotal.labels('ok').inc(made.length);
    return { copied: made.length, failed, gone: false };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.tail;
  }
}
