// Metrics for any KvEngine: a wrapper the Namespace puts around its engine, so lmdb and etcd
// report the same kurve_metaserver_engine_* series (by engine kind and op, never by key).
import { fastCounter, fastHistogram } from '../common/fast-metrics';
import { LATENCY_BUCKETS } from '../common/metrics';
import type { KvEngine, KvEntry, KvRange, KvTxn, KvTxnResult, KvValue } from './engine';

export const engineOps = fastCounter({
  name: 'kurve_metaserver_engine_ops_total',
  help: 'KV engine operations by engine, op (get, range, txn, flush; commit = one lmdb group commit) and result (ok, conflict, error)',
  labelNames: ['engine', 'op', 'result'] as const,
});
export const engineDuration = fastHistogram({
  name: 'kurve_metaserver_engine_duration_seconds',
  help: 'KV engine latency by engine and op (txn = until acknowledgement: durable for lmdb sync and etcd, page cache for lmdb written; flush = until durable)',
  labelNames: ['engine', 'op'] as const,
  buckets: LATENCY_BUCKETS,
});

/** The same engine, counted and timed. txn() still calls the engine's txn() synchronously. */
export function meteredEngine(engine: KvEngine): KvEngine {
  const kind = engine.kind;
  // Labelled children made once per (op, result): labels() hashes its arguments on every call,
  // and a create does several gets.
  const children = new Map<string, { inc(): void }>();
  const durations = new Map<string, { observe(v: number): void }>();
  const opsChild = (op: string, result: string): { inc(): void } => {
    const k = `${op}/${result}`;
    let c = children.get(k);
    if (!c) children.set(k, (c = engineOps.labels(kind, op, result)));
    return c;
  };
  const durationChild = (op: string): { observe(v: number): void } => {
    let c = durations.get(op);
    if (!c) durations.set(op, (c = engineDuration.labels(kind, op)));
    return c;
  };
  const timed = <T>(op: string, p: Promise<T>, result: (v: T) => string = () => 'ok'): Promise<T> => {
    const start = performance.now();
    return p.then(
      (v) => {
        opsChild(op, result(v)).inc();
        durationChild(op).observe((performance.now() - start) / 1000);
        return v;
      },
      (err: unknown) => {
        engineOps.labels(kind, op, 'error').inc();
        throw err;
      },
    );
  };
  const wrapped: KvEngine = {
    kind,
    decidesSynchronously: engine.decidesSynchronously,
    get: (key) => timed('get', engine.get(key)),
    range: (r: KvRange): Promise<KvEntry[]> => timed('range', engine.range(r)),
    txn: (t: KvTxn): Promise<KvTxnResult> => timed('txn', engine.txn(t), (r) => (r.succeeded ? 'ok' : 'conflict')),
    revision: () => engine.revision(),
    close: () => engine.close(),
  };
  if (engine.getSync) {
    const getSync = meteredGetSync(engine, opsChild('get', 'ok'), durationChild('get'));
    wrapped.getSync = getSync;
    // No second promise and two closures chained onto every read (several per file create).
    wrapped.get = (key) => {
      try {
        return Promise.resolve(getSync(key));
      } catch (err) {
        return Promise.reject(err);
      }
    };
  }
  if (engine.count) wrapped.count = (r: KvRange) => engine.count!(r);
  if (engine.flush) wrapped.flush = () => timed('flush', engine.flush!());
  return wrapped;
}

/** getSync() counted and timed like get(). */
function meteredGetSync(engine: KvEngine, ok: { inc(): void }, duration: { observe(v: number): void }): (key: Buffer) => KvValue | undefined {
  const kind = engine.kind;
  return (key) => {
    const start = performance.now();
    let v: KvValue | undefined;
    try {
      v = engine.getSync!(key);
    } catch (err) {
      engineOps.labels(kind, 'get', 'error').inc();
      throw err;
    }
    ok.inc();
    duration.observe((performance.now() - start) / 1000);
    return v;
  };
}
