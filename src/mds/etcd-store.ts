// MdsStore on etcd: JSON records under kurve/<cluster>/mds/, version = etcd's per-key version,
// txn = one etcd txn with version compares. With a fence (the election's compare on the leader
// key) every write also proves this replica still leads; a deposed leader's write fails with
// "not the leader" and the leader hint instead of applying.
import { Etcd3, ICompare, IRequestOp } from 'etcd3';
import {
  createEtcdClient, deadline, DEFAULT_CALL_POLICY, EtcdCallPolicy, isAmbiguousEtcdError, parseEtcdEndpoints, retryEtcd,
} from '../common/etcd-client';
import { notLeaderError } from './leader';
import { EtcdSessionLeases } from './etcd-sessions';
import { MdsStore, StoreCompare, StoreEntry, StoreOp } from './store';

export interface EtcdMdsStoreOptions {
  readonly endpoints?: string | readonly string[];
  /** Share one client with the election (then the store does not close it). */
  readonly client?: Etcd3;
  readonly cluster?: string;
  /** The leader fence: a compare every write must carry; throws when this replica does not lead. */
  readonly fence?: () => ICompare;
  /** Leader address for the refusal when the fence fails. */
  readonly leaderHint?: () => string | undefined;
  readonly attemptTimeoutMs?: number;
  readonly totalTimeoutMs?: number;
}

const num = (s: string | number | undefined): number => Number(s ?? 0);

export class EtcdMdsStore implements MdsStore {
  readonly client: Etcd3;
  /** Sessions as etcd leases (see SessionLeases). */
  readonly sessionLeases: EtcdSessionLeases;
  readonly prefix: string;
  readonly policy: EtcdCallPolicy;
  private readonly ownsClient: boolean;
  private closed = false;

  constructor(private readonly opts: EtcdMdsStoreOptions) {
    this.ownsClient = !opts.client;
    if (opts.client) this.client = opts.client;
    else if (opts.endpoints) this.client = createEtcdClient({ endpoints: parseEtcdEndpoints(opts.endpoints) });
    else throw new Error('etcd MDS store needs endpoints or a client');
    const cluster = opts.cluster ?? 'default';
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(cluster)) throw new Error(`invalid cluster name "${cluster}"`);
    this.prefix = `kurve/${cluster}/mds/`;
    this.policy = {
      attemptTimeoutMs: opts.attemptTimeoutMs ?? DEFAULT_CALL_POLICY.attemptTimeoutMs,
      totalTimeoutMs: opts.totalTimeoutMs ?? DEFAULT_CALL_POLICY.totalTimeoutMs,
    };
    this.sessionLeases = new EtcdSessionLeases(this);
  }

  /** The etcd key of a store key. */
  k(key: string): Buffer {
    return Buffer.from(this.prefix + key);
  }
  check(): void {
    if (this.closed) throw new Error('etcd MDS store is closed');
  }

  async get<T>(key: string): Promise<StoreEntry<T> | undefined> {
    this.check();
    const res = await retryEtcd('mds-get', this.policy, (ms) => this.client.kv.range({ key: this.k(key) }, deadline(ms)));
    const kv = res.kvs[0];
    return kv ? { key, value: JSON.parse(kv.value.toString()) as T, version: num(kv.version) } : undefined;
  }

  async list<T>(prefix: string): Promise<StoreEntry<T>[]> {
    this.check();
    const start = this.k(prefix);
    const end = Buffer.from(start);
    end[end.length - 1]++; // prefixes here end in '/' or a letter, never 0xff
    const res = await retryEtcd('mds-list', this.policy, (ms) =>
      this.client.kv.range({ key: start, range_end: end, sort_order: 'Ascend', sort_target: 'Key' }, deadline(ms)),
    );
    return res.kvs.map((kv) => ({
      key: kv.key.toString().slice(this.prefix.length),
      value: JSON.parse(kv.value.toString()) as T,
      version: num(kv.version),
    }));
  }

  async txn(compares: readonly StoreCompare[], ops: readonly StoreOp[]): Promise<boolean> {
    this.check();
    let fence: ICompare | undefined;
    if (this.opts.fence) {
      try {
        fence = this.opts.fence();
      } catch {
        throw notLeaderError(this.opts.leaderHint?.());
      }
    }
    const compare: ICompare[] = compares.map((c) => ({ key: this.k(c.key), target: 'Version', result: 'Equal', version: c.version }));
    if (fence) compare.push(fence);
    const success: IRequestOp[] = ops.map((op) =>
      op.type === 'put'
        ? { request_put: { key: this.k(op.key), value: Buffer.from(JSON.stringify(op.value)), lease: op.lease } }
        : { request_delete_range: { key: this.k(op.key) } },
    );
    // On failure, read the fence key back: a vanished or re-created key means we were deposed.
    const failure: IRequestOp[] = fence ? [{ request_range: { key: fence.key } }] : [];
    let ambiguous = false;
    const res = await retryEtcd('mds-txn', this.policy, async (ms) => {
      try {
        return await this.client.kv.txn({ compare, success, failure }, deadline(ms));
      } catch (err) {
        if (isAmbiguousEtcdError(err)) ambiguous = true;
        throw err;
      }
    });
    if (res.succeeded) return true;
    if (fence) {
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (!kv || num(kv.create_revision) !== num(fence.create_revision)) throw notLeaderError(this.opts.leaderHint?.());
    }
    // A timed-out attempt that applied makes the retry's compares fail: check for our own writes.
    if (ambiguous && (await this.applied(ops))) return true;
    return false;
  }

  private async applied(ops: readonly StoreOp[]): Promise<boolean> {
    if (ops.length === 0) return false;
    for (const op of ops) {
      const cur = await this.client.kv.range({ key: this.k(op.key) }, deadline(this.policy.attemptTimeoutMs));
      const kv = cur.kvs[0];
      if (op.type === 'delete' ? kv !== undefined : !kv || kv.value.toString() !== JSON.stringify(op.value)) return false;
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.client.close();
  }
}

/** An MdsStore on etcd (see EtcdMdsStoreOptions); checks etcd answers, within the deadline. */
export async function createEtcdMdsStore(opts: EtcdMdsStoreOptions): Promise<EtcdMdsStore> {
  const store = new EtcdMdsStore(opts);
  try {
    await store.get('meta/next-fs-id');
  } catch (err) {
    await store.close();
    throw new Error(`cannot reach etcd at ${String(opts.endpoints ?? '(shared client)')}: ${(err as Error).message}`);
  }
  return store;
}
