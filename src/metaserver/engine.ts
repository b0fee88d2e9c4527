// The KV engine interface the namespace runs on: get, ordered range, and one atomic transaction
// with compares, over a monotonically increasing store revision. Shaped after etcd v3's KV API so
// it maps 1:1 onto etcd 3.4 (engines/etcd) and is cheap on lmdb (engines/lmdb).
//
// Contract every engine must keep (test/helpers/metaserver-suite.ts runs against any engine):
// - Keys and values are Buffers; keys compare as unsigned bytes (memcmp), like etcd and lmdb.
// - Every successful txn that writes gets a new store revision, strictly greater than any before
//   it, and every key it puts gets modRevision = that revision. A deleted key has no revision;
//   a put after a delete gets a fresh one. Revisions survive restarts (never go backwards).
// - txn is all-or-nothing: when every compare holds, all puts and deletes apply atomically and
//   durably (an acknowledged txn survives a crash of the process; of the machine too unless the
//   engine acknowledges before fsync — lmdb 'written' mode — then after flush()); otherwise nothing is written and
//   succeeded = false. A failed compare is not an error: the caller re-reads and retries.
// - Reads (get/range) see every acknowledged txn (read-your-writes within one engine instance).
// - Errors (I/O, closed engine, etcd unavailable) reject the promise; they never mean "conflict".

export interface KvValue {
  readonly value: Buffer;
  /** Store revision of the txn that last wrote this key (> 0). */
  readonly modRevision: number;
}

export interface KvEntry extends KvValue {
  readonly key: Buffer;
}

/**
 * A condition on one key, checked atomically at commit:
 * - `{key, modRevision}`: the key's current modRevision equals it; 0 means "must not exist".
 * - `{key, value}`: the key exists and its value equals these bytes (value undefined = must not exist).
 */
export type KvCompare =
  | { readonly key: Buffer; readonly modRevision: number }
  | { readonly key: Buffer; readonly value: Buffer | undefined };

export interface KvPut {
  readonly key: Buffer;
  readonly value: Buffer;
}

export interface KvTxn {
  readonly compares?: readonly KvCompare[];
  readonly puts?: readonly KvPut[];
  /** Deleting an absent key is not an error. A key must not be both put and deleted. */
  readonly deletes?: readonly Buffer[];
}

export interface KvTxnResult {
  readonly succeeded: boolean;
  /** The txn's revision when it succeeded (and wrote); otherwise the store revision it saw. */
  readonly revision: number;
}

/** Either every key with `prefix`, or keys in [start, end) (end undefined = to the end). */
export type KvRange =
  | { readonly prefix: Buffer; readonly limit?: number; readonly reverse?: boolean }
  | { readonly start: Buffer; readonly end?: Buffer; readonly limit?: number; readonly reverse?: boolean };

export interface KvEngine {
  /** Short name for logs and metrics labels: 'lmdb', 'etcd'. */
  readonly kind: string;
  /**
   * True when txn() decides its compares synchronously, before returning (lmdb). Then the
   * namespace runs the read-and-stage phase of its transactions one at a time in-process and
   * conflicts never happen there; the durable wait still overlaps (group commit).
   */
  readonly decidesSynchronously?: boolean;
  get(key: Buffer): Promise<KvValue | undefined>;
  /**
   * Optional: get() answered synchronously (an embedded engine whose reads never wait: lmdb).
   * The same value get() would resolve to; throws where get() would reject.
   */
  getSync?(key: Buffer): KvValue | undefined;
  /** Entries in key order (descending with reverse), at most `limit` (default: all). */
  range(range: KvRange): Promise<KvEntry[]>;
  txn(txn: KvTxn): Promise<KvTxnResult>;
  /** Optional: number of keys in a range, cheaply (metrics gauges); may be approximate. */
  count?(range: KvRange): Promise<number>;
  /**
   * Optional: resolves once every txn acknowledged so far is durable (survives a machine crash).
   * Engines whose acknowledgement already means durable (etcd, lmdb in 'sync' mode) may omit it or
   * resolve at once; lmdb in 'written' mode acknowledges before fsync and needs it (fsync/fsyncdir).
   */
  flush?(): Promise<void>;
  /** Current store revision (of the last acknowledged write this instance knows of). */
  revision(): Promise<number>;
  /** Waits for acknowledged writes to be durable and releases the store. Idempotent. */
  close(): Promise<void>;
}

/** End key of a prefix scan: the smallest key greater than every key starting with prefix. */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return undefined; // all 0xff: no upper bound
}

/** [start, end) of a KvRange, normalised. */
export function rangeBounds(r: KvRange): { start: Buffer; end: Buffer | undefined } {
  if ('prefix' in r) return { start: r.prefix, end: prefixEnd(r.prefix) };
  return { start: r.start, end: r.end };
}

/** Whether a compare holds for the current value of its key (shared by engines that check locally). */
export function compareHolds(c: KvCompare, current: KvValue | undefined): boolean {
  if ('modRevision' in c) return c.modRevision === 0 ? current === undefined : current?.modRevision === c.modRevision;
  if (c.value === undefined) return current === undefined;
  return current !== undefined && current.value.equals(c.value);
}
