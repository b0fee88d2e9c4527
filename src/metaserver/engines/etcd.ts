// The KV engine on etcd 3.4 (npm etcd3): keys under a per-cluster prefix, linearizable reads,
// one etcd txn per engine txn (compares on mod revision / value / existence), a deadline on every
// attempt, retries of transient errors, and a watch so a change feed can follow other writers.
import { Etcd3, ICompare, IKeyValue, IRequestOp, Watcher } from 'etcd3';
import { KvEngine, KvEntry, KvRange, KvTxn, KvTxnResult, KvValue, prefixEnd, rangeBounds } from '../engine';
import {
  createEtcdClient, deadline, DEFAULT_CALL_POLICY, EtcdCallPolicy, isAmbiguousEtcdError, parseEtcdEndpoints, retryEtcd,
} from '../../common/etcd-client';
import { moduleLogger } from '../../common/logger';

const log = moduleLogger('etcd-engine');

export interface EtcdEngineOptions {
  /** "host:port,host:port" or a list. Ignored when `client` is given. */
  readonly endpoints?: string | readonly string[];
  /** Share one client between components of a process (the engine then does not close it). */
  readonly client?: Etcd3;
  /** Every key lives under this prefix, so several clusters (and the MDS) share one etcd. */
  readonly prefix?: string | Buffer;
  readonly attemptTimeoutMs?: number;
  readonly totalTimeoutMs?: number;
  /** Keys per range page (etcd responses stay small; pages read one snapshot revision). */
  readonly pageSize?: number;
}

/** Default key prefix of the namespace of cluster `cluster`. */
export function metaPrefix(cluster = 'default'): string {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(cluster)) throw new Error(`invalid cluster name "${cluster}": use 1-64 of [A-Za-z0-9_.-]`);
  return `kurve/${cluster}/meta/`;
}

/** One key changed by a txn; value undefined = deleted. */
export interface KvChange {
  readonly key: Buffer;
  readonly value: Buffer | undefined;
}

/** All changes of one txn (one store revision), in the order etcd reported them. */
export interface KvChangeBatch {
  readonly revision: number;
  readonly changes: KvChange[];
}

export interface KvWatchHandlers {
  batch(b: KvChangeBatch): void;
  /** The watch cannot continue (compacted: the requested revision is gone; resubscribe from now). */
  error(err: Error & { compacted?: boolean }): void;
}

export interface KvWatch {
  close(): Promise<void>;
}

/** A KV engine whose changes can be followed by revision (etcd). */
export interface WatchableKvEngine extends KvEngine {
  /** Changes under `prefix` after revision `afterRevision` (0 = from now), batched per txn. */
  watch(prefix: Buffer, afterRevision: number, handlers: KvWatchHandlers): Promise<KvWatch>;
}

const num = (s: string | number | undefined): number => Number(s ?? 0);
/** Gets per coalesced read txn (etcd's default --max-txn-ops is 128). */
const MAX_BATCHED_GETS = 64;

export class EtcdEngine implements WatchableKvEngine {
  readonly kind = 'etcd';
  private readonly prefix: Buffer;
  private readonly policy: EtcdCallPolicy;
  private readonly pageSize: number;
  private readonly ownsClient: boolean;
  private readonly watchers = new Set<Watcher>();
  private closed = false;
  readonly client: Etcd3;

  constructor(opts: EtcdEngineOptions) {
    this.ownsClient = opts.client === undefined;
    if (opts.client) this.client = opts.client;
    else if (opts.endpoints) this.client = createEtcdClient({ endpoints: parseEtcdEndpoints(opts.endpoints) });
    else throw new Error('etcd engine needs endpoints or a client');
    this.prefix = Buffer.from(opts.prefix ?? metaPrefix());
    this.policy = {
      attemptTimeoutMs: opts.attemptTimeoutMs ?? DEFAULT_CALL_POLICY.attemptTimeoutMs,
      totalTimeoutMs: opts.totalTimeoutMs ?? DEFAULT_CALL_POLICY.totalTimeoutMs,
    };
    this.pageSize = opts.pageSize ?? 1000;
  }

  private k(key: Buffer): Buffer {
    return Buffer.concat([this.prefix, key]);
  }
  private unk(key: Buffer): Buffer {
    return key.subarray(this.prefix.length);
  }
  private check(): void {
    if (this.closed) throw new Error('etcd engine is closed');
  }

  /**
   * Gets issued in the same tick (concurrent namespace ops) go to etcd as one read-only txn of
   * ranges: one linearizable read instead of one per key, with no added wait.
   */
  get(key: Buffer): Promise<KvValue | undefined> {
    if (this.closed) return Promise.reject(new Error('etcd engine is closed'));
    return new Promise((resolve, reject) => {
      this.pendingGets.push({ key: this.k(key), resolve, reject });
      if (this.pendingGets.length === 1) process.nextTick(() => this.flushGets());
    });
  }

  private readonly pendingGets: Array<{ key: Buffer; resolve: (v: KvValue | undefined) => void; reject: (e: unknown) => void }> = [];

  private flushGets(): void {
    const all = this.pendingGets.splice(0);
    for (let i = 0; i < all.length; i += MAX_BATCHED_GETS) {
      const batch = all.slice(i, i + MAX_BATCHED_GETS);
      const read = batch.length === 1
        ? retryEtcd('get', this.policy, (ms) => this.client.kv.range({ key: batch[0].key }, deadline(ms))).then((r) => [r.kvs[0]])
        : retryEtcd('get', this.policy, (ms) =>
          this.client.kv.txn({ success: batch.map((g) => ({ request_range: { key: g.key } })) }, deadline(ms)),
        ).then((r) => r.responses.map((x) => x.response_range.kvs[0]));
      read.then(
        (kvs) => batch.forEach((g, j) => g.resolve(kvs[j] ? { value: kvs[j].value, modRevision: num(kvs[j].mod_revision) } : undefined)),
        (err: unknown) => batch.forEach((g) => g.reject(err)),
      );
    }
  }

  async range(r: KvRange): Promise<KvEntry[]> {
    this.check();
    const { start, end } = rangeBounds(r);
    const reverse = r.reverse ?? false;
    const limit = r.limit ?? Infinity;
    let lo = this.k(start);
    // No upper bound inside our keyspace = up to the end of our prefix.
    let hi = end ? this.k(end) : prefixEnd(this.prefix) ?? Buffer.from([0]);
    const out: KvEntry[] = [];
    let snapshot = 0;
    while (out.length < limit) {
      const want = Math.min(this.pageSize, limit - out.length);
      const res = await retryEtcd('range', this.policy, (ms) =>
        this.client.kv.range(
          {
            key: lo,
            range_end: hi,
            limit: want,
            revision: snapshot,
            sort_order: reverse ? 'Descend' : 'Ascend',
            sort_target: 'Key',
          },
          deadline(ms),
        ),
      );
      snapshot ||= num(res.header.revision);
      for (const kv of res.kvs) out.push({ key: this.unk(kv.key), value: kv.value, modRevision: num(kv.mod_revision) });
      if (!res.more || res.kvs.length === 0) break;
      const last = res.kvs[res.kvs.length - 1].key;
      if (reverse) hi = last;
      else lo = Buffer.concat([last, Buffer.from([0])]);
    }
    return out;
  }

  async txn(t: KvTxn): Promise<KvTxnResult> {
    this.check();
    const compare: ICompare[] = (t.compares ?? []).map((c) => {
      const key = this.k(c.key);
      if ('modRevision' in c) {
        // etcd treats an absent key as create_revision 0: the idiom for "must not exist".
        return c.modRevision === 0
          ? { key, target: 'Create', result: 'Equal', create_revision: 0 }
          : { key, target: 'Mod', result: 'Equal', mod_revision: c.modRevision };
      }
      if (c.value === undefined) return { key, target: 'Create', result: 'Equal', create_revision: 0 };
      // etcd fails a value compare on an absent key, as the contract wants.
      return { key, target: 'Value', result: 'Equal', value: c.value };
    });
    const success: IRequestOp[] = [
      ...(t.puts ?? []).map((p) => ({ request_put: { key: this.k(p.key), value: p.value } })),
      ...(t.deletes ?? []).map((d) => ({ request_delete_range: { key: this.k(d) } })),
    ];
    let ambiguous = false;
    const attempt = async (ms: number): Promise<KvTxnResult> => {
      try {
        const res = await this.client.kv.txn({ compare, success, failure: [] }, deadline(ms));
        if (!res.succeeded && ambiguous) {
          // An earlier attempt timed out but applied, so now its own writes fail the compares.
          const applied = await this.appliedRevision(t);
          if (applied) return { succeeded: true, revision: applied };
        }
        return { succeeded: res.succeeded, revision: num(res.header.revision) };
      } catch (err) {
        if (isAmbiguousEtcdError(err)) ambiguous = true;
        throw err;
      }
    };
    return retryEtcd('txn', this.policy, attempt, async () => {
      const applied = await this.appliedRevision(t);
      return applied ? { succeeded: true, revision: applied } : undefined;
    });
  }

  /**
   * After a write attempt of unknown outcome: its revision if the store holds exactly what the txn
   * wrote (every put with our bytes at one revision, every delete absent), else 0. Only txns with
   * puts can be recognised; inode records carry timestamps, so identical bytes mean our write.
   */
  private async appliedRevision(t: KvTxn): Promise<number> {
    const puts = t.puts ?? [];
    if (puts.length === 0) return 0;
    const res = await this.client.kv.txn(
      {
        success: [
          ...puts.map((p) => ({ request_range: { key: this.k(p.key) } })),
          ...(t.deletes ?? []).map((d) => ({ request_range: { key: this.k(d), count_only: true } })),
        ],
      },
      deadline(this.policy.attemptTimeoutMs),
    );
    let rev = 0;
    for (let i = 0; i < puts.length; i++) {
      const kv: IKeyValue | undefined = res.responses[i].response_range.kvs[0];
      if (!kv || !kv.value.equals(puts[i].value)) return 0;
      const r = num(kv.mod_revision);
      if (rev !== 0 && r !== rev) return 0;
      rev = r;
    }
    for (let i = puts.length; i < res.responses.length; i++) if (num(res.responses[i].response_range.count) !== 0) return 0;
    log.info({ revision: rev }, 'txn with a timed-out attempt had applied');
    return rev;
  }

  /** Keys in a range, counted by etcd without sending them (metrics gauges). */
  async count(r: KvRange): Promise<number> {
    this.check();
    const { start, end } = rangeBounds(r);
    const res = await retryEtcd('count', this.policy, (ms) =>
      this.client.kv.range(
        { key: this.k(start), range_end: end ? this.k(end) : prefixEnd(this.prefix) ?? Buffer.from([0]), count_only: true },
        deadline(ms),
      ),
    );
    return num(res.count);
  }

  async revision(): Promise<number> {
    this.check();
    const res = await retryEtcd('revision', this.policy, (ms) =>
      this.client.kv.range({ key: this.prefix, count_only: true }, deadline(ms)),
    );
    return num(res.header.revision);
  }

  async watch(prefix: Buffer, afterRevision: number, handlers: KvWatchHandlers): Promise<KvWatch> {
    this.check();
    let b = this.client.watch().prefix(this.k(prefix));
    if (afterRevision > 0) b = b.startRevision(String(afterRevision + 1));
    const w = await b.create();
    this.watchers.add(w);
    let stopped = false;
    // Where a reconnect resumes: after the last revision handed on. etcd3 moves its own resume point
    // to the header revision of every response, including the ack of a reconnect, before the events
    // missed while disconnected have arrived: a second break then skipped them (seen: 7 creates lost
    // while etcd members were killed in turn). Our listeners run after etcd3's and put it back.
    let delivered = afterRevision > 0 ? afterRevision : Number(w.lastRevision()) - 1;
    const request = (w as unknown as { request: { start_revision?: string } }).request;
    const resumeAfterDelivered = (): void => {
      if (delivered > 0) request.start_revision = String(delivered + 1);
    };
    resumeAfterDelivered();
    w.on('connected', resumeAfterDelivered);
    w.on('data', (res) => {
      if (stopped) return;
      // etcd sends a txn's events together; split a response into one batch per revision.
      let cur: KvChangeBatch | undefined;
      for (const ev of res.events) {
        const rev = num(ev.kv.mod_revision);
        if (rev <= delivered) continue; // resent after a reconnect
        if (!cur || cur.revision !== rev) {
          if (cur) handlers.batch(cur);
          cur = { revision: rev, changes: [] };
        }
        cur.changes.push({ key: this.unk(ev.kv.key), value: ev.type === 'Put' ? ev.kv.value : undefined });
      }
      if (cur) handlers.batch(cur);
      if (cur) delivered = cur.revision;
      resumeAfterDelivered();
    });
    w.on('error', (err) => {
      if (stopped) return;
      stopped = true;
      this.watchers.delete(w);
      const e = err as Error & { compacted?: boolean };
      e.compacted = /compacted/i.test(err.message);
      handlers.error(e);
    });
    return {
      close: async () => {
        if (stopped) return;
        stopped = true;
        this.watchers.delete(w);
        await w.cancel().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watchers].map((w) => w.cancel().catch(() => undefined)));
    this.watchers.clear();
    if (this.ownsClient) this.client.close();
  }
}

/** Connects to etcd and checks it answers (bounded), so a bad --etcd fails at startup, clearly. */
export async function createEtcdEngine(opts: EtcdEngineOptions): Promise<EtcdEngine> {
  const engine = new EtcdEngine(opts);
  try {
    await engine.revision();
  } catch (err) {
    await engine.close();
    throw new Error(`cannot reach etcd at ${String(opts.endpoints ?? '(shared client)')}: ${(err as Error).message}`);
  }
  return engine;
}
