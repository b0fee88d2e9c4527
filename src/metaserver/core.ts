// What every namespace op group shares: the engine, the allocator, the feed, the GC queue, the
// file system records, and the transaction runner that publishes events after a commit.
import { fsError } from '../common/errno';
import { fastCounter, fastHistogram } from '../common/fast-metrics';
import { LATENCY_BUCKETS } from '../common/metrics';
import type { KvEngine } from './engine';
import { ChangeFeed, encodeEvents } from './feed';
import type { GcQueue } from './gc';
import { decodeDentry, decodeFs, Dentry, FsRecord, InodeRec, isDir, nowTs } from './inode';
import { dentryKey, eventsKey, fsKey } from './keys';
import { Allocator, runTx, Tx } from './txn';

const opsTotal = fastCounter({
  name: 'kurve_metaserver_ops_total',
  help: 'Namespace operations by op and result (ok or errno name)',
  labelNames: ['op', 'result'],
});
const opDuration = fastHistogram({
  name: 'kurve_metaserver_op_duration_seconds',
  help: 'Namespace operation latency (in-process, including durable commit)',
  labelNames: ['op'] as const,
  buckets: LATENCY_BUCKETS,
});

interface OpMetrics {
  readonly ok: { inc(): void };
  readonly duration: { observe(v: number): void };
  /** Children for other results ('absent' ones such as a negative lookup's ENOENT, errors). */
  readonly results: Map<string, { inc(): void }>;
}
/** Labelled children per op, made once: labels() joins and looks up its arguments on every call. */
const opMetricCache = new Map<string, OpMetrics>();
function opMetrics(op: string): OpMetrics {
  let m = opMetricCache.get(op);
  if (!m) opMetricCache.set(op, (m = { ok: opsTotal.labels(op, 'ok'), duration: opDuration.labels(op), results: new Map() }));
  return m;
}
function resultChild(op: string, m: OpMetrics, result: string): { inc(): void } {
  let c = m.results.get(result);
  if (!c) m.results.set(result, (c = opsTotal.labels(op, result)));
  return c;
}

export interface CoreOptions {
  /** Also write each txn's events under 'E' keys, for feeds driven by a store watch (etcd). */
  readonly persistEvents?: boolean;
}

export class Core {
  private readonly fsCache = new Map<number, FsRecord>();

  constructor(
    readonly engine: KvEngine,
    readonly feed: ChangeFeed,
    readonly alloc: Allocator,
    readonly gc: GcQueue,
    private readonly opts: CoreOptions = {},
  ) {}

  /** Runs a mutating op as a retried transaction; events are published once it commits. */
  run<T>(fsId: number, op: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.measure(op, async () => {
      await this.fs(fsId);
      const extra = this.opts.persistEvents;
      return runTx(this.engine, fsId, op, async (tx) => {
        const r = await fn(tx);
        if (extra && tx.events.length) tx.put(eventsKey(fsId), encodeEvents(tx.events));
        return r;
      }, (tx, revision) => {
        this.feed.publish(fsId, revision, tx.events);
        for (const f of tx.after) f();
      });
    });
  }

  /** Times an op and counts its result (`absent`: the result to count when fn returns undefined). */
  async measure<T>(op: string, fn: () => Promise<T>, absent?: string): Promise<T> {
    // performance.now(), not hrtime.bigint(): no BigInt allocated per op (several ops per create).
    const start = performance.now();
    const m = opMetrics(op);
    try {
      const r = await fn();
      if (r === undefined && absent) resultChild(op, m, absent).inc();
      else m.ok.inc();
      return r;
    } catch (err) {
      resultChild(op, m, (err as { code?: string }).code ?? 'error').inc();
      throw err;
    } finally {
      m.duration.observe((performance.now() - start) / 1000);
    }
  }

  /** The file system's record; ENOENT with a clear message if this metaserver has no such fs. */
  async fs(fsId: number): Promise<FsRecord> {
    const cached = this.fsCache.get(fsId);
    if (cached) return cached;
    if (!Number.isInteger(fsId) || fsId < 0 || fsId > 0xffffffff) throw fsError('EINVAL', `bad file system id ${fsId}`);
    const r = await this.engine.get(fsKey(fsId));
    if (!r) throw fsError('ENOENT', `file system ${fsId} does not exist on this metaserver`);
    const rec = decodeFs(r.value);
    this.fsCache.set(fsId, rec);
    return rec;
  }

  forgetFs(fsId: number): void {
    this.fsCache.delete(fsId);
  }
}

/** The parent directory of a new or removed entry: ENOENT if gone, ENOTDIR if not a directory. */
export async function parentDir(tx: Tx, parent: number): Promise<InodeRec> {
  const dir = await tx.inode(parent);
  if (!dir) throw fsError('ENOENT', `parent directory ${parent} does not exist`);
  if (!isDir(dir.mode)) throw fsError('ENOTDIR', `parent ${parent} is not a directory`);
  // A removed directory someone still holds: no new entries in it (Linux: ENOENT).
  if (dir.nlink === 0) throw fsError('ENOENT', `directory ${parent} was removed`);
  return dir;
}

export async function getDentry(tx: Tx, parent: number, name: Buffer): Promise<Dentry | undefined> {
  const raw = await tx.get(dentryKey(tx.fsId, parent, name));
  return raw ? decodeDentry(raw) : undefined;
}

/** mtime and ctime to now, staged, with an attr event: every dentry change does this to its parent. */
export function touchDir(tx: Tx, dir: InodeRec): void {
  const now = nowTs();
  dir.mtime = now;
  dir.ctime = now;
  tx.markDirty(dir);
  tx.event({ kind: 'attr', ino: dir.ino });
}

export function changed(tx: Tx, rec: InodeRec): void {
  rec.ctime = nowTs();
  tx.markDirty(rec);
  tx.event({ kind: 'attr', ino: rec.ino });
}
