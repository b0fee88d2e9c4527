// Shared etcd plumbing for the etcd KV engine, the MDS store and the election: endpoint parsing,
// one client per process role with a fast per-host breaker (so a dead member is skipped instead of
// stalling calls), call deadlines, and bounded retries of transient errors with backoff.
import { Etcd3, IOptions, isRecoverableError } from 'etcd3';
import { counter, histogram, LATENCY_BUCKETS } from './metrics';
import { moduleLogger } from './logger';

const log = moduleLogger('etcd');

export interface EtcdClientOptions {
  /** Member client addresses: "host:port" or "http://host:port". */
  readonly endpoints: readonly string[];
  /** Time to wait for a connection to a member. Default 1000 ms. */
  readonly dialTimeoutMs?: number;
  /** After a transient failure a member is skipped for this long. Default 500 ms. */
  readonly hostDownMs?: number;
}

/** Timeouts for one logical operation: every attempt has a deadline; retries stop at the total. */
export interface EtcdCallPolicy {
  /** Deadline of one attempt (etcd can stall ~7 s during a re-election without one). Default 2000 ms. */
  readonly attemptTimeoutMs: number;
  /** Give up retrying transient errors after this long. Default 10 s. */
  readonly totalTimeoutMs: number;
}

export const DEFAULT_CALL_POLICY: EtcdCallPolicy = { attemptTimeoutMs: 2000, totalTimeoutMs: 10_000 };

const calls = counter({ name: 'kurve_etcd_requests_total', help: 'etcd calls by operation and result', labelNames: ['op', 'result'] });
const durations = histogram({
  name: 'kurve_etcd_request_duration_seconds',
  help: 'etcd call latency (one attempt) by operation',
  labelNames: ['op'],
  buckets: LATENCY_BUCKETS,
});
const retries = counter({ name: 'kurve_etcd_retries_total', help: 'etcd attempts retried after a transient error', labelNames: ['op'] });

/** Parses "127.0.0.1:2379,127.0.0.1:2381" (or http:// URLs) into client URLs; clear errors. */
export function parseEtcdEndpoints(spec: string | readonly string[]): string[] {
  const parts = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new Error('no etcd endpoints given: use e.g. --etcd 127.0.0.1:2379,127.0.0.1:2381');
  return parts.map((p) => {
    const m = /^(?:(https?):\/\/)?([^/:\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(p);
    if (!m || Number(m[3]) < 1 || Number(m[3]) > 65535) throw new Error(`invalid etcd endpoint "${p}": use host:port`);
    return `${m[1] ?? 'http'}://${m[2]}:${m[3]}`;
  });
}

/** A call refused without being sent (the member failed recently): never ambiguous, always retryable. */
export class EtcdHostDownError extends Error {
  constructor(last: string) {
    super(`etcd member marked down after: ${last}`);
    this.name = 'EtcdHostDownError';
  }
}

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;
type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/**
 * etcd3's connection pool tries the next member only when a host's policy refuses to call through,
 * so this policy refuses for `downMs` after a transient failure. (Its default breaker opens after 3
 * failures for 5 s, which on a one-member cluster turns a blip into 5 s of errors.)
 */
function hostBreaker(downMs: number): HostPolicy {
  let downUntil = 0;
  let lastError = '';
  const policy = {
    async execute<T>(fn: (ctx: unknown) => PromiseLike<T> | T): Promise<T> {
      if (Date.now() < downUntil) throw new EtcdHostDownError(lastError);
      try {
        return await fn({ signal: new AbortController().signal });
      } catch (err) {
        // Not on CANCELLED: etcd3 counts our own stream cancellations (watch, keepalive) as recoverable.
        if (err instanceof Error && isRecoverableError(err) && /UNAVAILABLE|DEADLINE|ECONNREFUSED|No connection/i.test(err.message)) {
          downUntil = Date.now() + downMs;
          lastError = err.message;
          log.debug({ err: err.message }, "etcd member marked down");
        }
        throw err;
      }
    },
  };
  return policy as unknown as HostPolicy;
}

/** No retries inside etcd3: retryEtcd() decides, because only it knows what is safe to repeat. */
const passThrough = {
  execute<T>(fn: (ctx: unknown) => PromiseLike<T> | T): PromiseLike<T> | T {
    return fn({ signal: new AbortController().signal });
  },
} as unknown as GlobalPolicy;

export function createEtcdClient(opts: EtcdClientOptions): Etcd3 {
  const hosts = parseEtcdEndpoints(opts.endpoints);
  const downMs = opts.hostDownMs ?? 500;
  return new Etcd3({
    hosts,
    dialTimeout: opts.dialTimeoutMs ?? 1000,
    faultHandling: { host: () => hostBreaker(downMs), global: passThrough },
    grpcOptions: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 },
  });
}

/** Call options with a deadline `ms` from now. */
export const deadline = (ms: number): { deadline: Date } => ({ deadline: new Date(Date.now() + ms) });

/**
 * Errors worth retrying: the member was unreachable, overloaded, re-electing, or the call timed
 * out. A timed-out write may or may not have applied: callers that write must make the retry safe.
 */
export function isTransientEtcdError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (isRecoverableError(err)) return true;
  const m = err.message;
  return /marked down|no hosts|leader changed|no leader|timed out|too many requests|unavailable|DEADLINE_EXCEEDED|ECONNREFUSED|ECONNRESET/i.test(m);
}

/** A timed-out call may have been applied by etcd: a write needs checking before it is retried. */
export function isAmbiguousEtcdError(err: unknown): boolean {
  if (err instanceof EtcdHostDownError) return false;
  return err instanceof Error && /deadline|timed out|ECONNRESET|leader changed|stream removed|cancelled/i.test(`${err.name} ${err.message}`);
}

export class EtcdUnavailableError extends Error {
  constructor(op: string, ms: number, cause: unknown) {
    super(`etcd unavailable: ${op} failed for ${ms} ms: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'EtcdUnavailableError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `attempt(deadlineMs)` until it succeeds, a non-transient error occurs, or the policy's total
 * time is spent. `onAmbiguous` (for writes) is asked whether an attempt that failed ambiguously
 * actually applied; it returns the result to use, or undefined to retry.
 */
export async function retryEtcd<T>(
  op: string,
  policy: EtcdCallPolicy,
  attempt: (attemptTimeoutMs: number) => Promise<T>,
  onAmbiguous?: () => Promise<T | undefined>,
): Promise<T> {
  const start = Date.now();
  let backoff = 10;
  for (let n = 0; ; n++) {
    const left = policy.totalTimeoutMs - (Date.now() - start);
    const t0 = process.hrtime.bigint();
    try {
      const res = await attempt(Math.max(50, Math.min(policy.attemptTimeoutMs, left)));
      durations.observe({ op }, Number(process.hrtime.bigint() - t0) / 1e9);
      calls.inc({ op, result: 'ok' });
      return res;
    } catch (err) {
      durations.observe({ op }, Number(process.hrtime.bigint() - t0) / 1e9);
      if (!isTransientEtcdError(err)) {
        calls.inc({ op, result: 'error' });
        throw err;
      }
      if (onAmbiguous && isAmbiguousEtcdError(err)) {
        const resolved = await onAmbiguous().catch(() => undefined);
        if (resolved !== undefined) {
          calls.inc({ op, result: 'ok' });
          return resolved;
        }
      }
      if (Date.now() - start + backoff >= policy.totalTimeoutMs) {
        calls.inc({ op, result: 'unavailable' });
        throw new EtcdUnavailableError(op, Date.now() - start, err);
      }
      retries.inc({ op });
      if (n === 0 || n % 20 === 0) log.warn({ op, attempt: n + 1, err: (err as Error).message }, 'etcd call failed, retrying');
      await sleep(backoff * (0.5 + Math.random()));
      backoff = Math.min(backoff * 2, 250);
    }
  }
}
