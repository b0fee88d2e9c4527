// The MDS's persistent state behind one small interface: versioned JSON records under string
// keys, prefix listing and an atomic compare-then-write transaction. lmdb implements it for the
// embedded MDS (lmdb-store.ts); etcd can implement it 1:1 (version = etcd's per-key version,
// txn = etcd Txn with version compares), so an HA MDS changes nothing above this file.

/** A record and its version: 1 when created, +1 per put, gone (0) when deleted. */
export interface StoreEntry<T> {
  readonly key: string;
  readonly value: T;
  readonly version: number;
}

/** The record's version must equal `version` (0 = the key must be absent). */
export interface StoreCompare {
  readonly key: string;
  readonly version: number;
}

export type StoreOp =
  /** `lease`: an etcd lease id the key is attached to (gone when the lease expires); etcd only. */
  | { readonly type: 'put'; readonly key: string; readonly value: unknown; readonly lease?: string }
  | { readonly type: 'delete'; readonly key: string };

export interface MdsStore {
  get<T>(key: string): Promise<StoreEntry<T> | undefined>;
  /** Every record whose key starts with `prefix`, in key order. */
  list<T>(prefix: string): Promise<StoreEntry<T>[]>;
  /** Applies `ops` atomically and durably iff every compare holds; resolves false otherwise. */
  txn(compares: readonly StoreCompare[], ops: readonly StoreOp[]): Promise<boolean>;
  close(): Promise<void>;
  /**
   * Session liveness kept by the store itself (etcd leases), so a session's deadline survives a
   * change of MDS leader. Without it the MDS keeps deadlines in the leader's memory.
   */
  readonly sessionLeases?: SessionLeases;
}

/** Client sessions as store-side leases: the session record stays until released, a liveness key dies with the lease. */
export interface SessionLeases {
  /**
   * Grants a lease of `ttlMs` and writes the session record (which must be absent) and its
   * liveness key, attached to the lease, in one txn. Resolves the lease's deadline (ms since epoch).
   */
  open(id: string, record: unknown, ttlMs: number): Promise<number>;
  /** Renews the lease (needs no leadership): the new deadline, or undefined when it has expired. */
  renew(id: string): Promise<number | undefined>;
  /** The deadline without renewing; undefined when the lease has expired or never existed. */
  deadline(id: string): Promise<number | undefined>;
  /** Revokes the lease (its liveness key goes with it); for a session already released. */
  end(id: string): Promise<void>;
  /** Calls `onGone(id)` whenever a liveness key disappears (lease expiry or revoke). Returns the stop function. */
  watch(onGone: (id: string) => void): Promise<() => Promise<void>>;
}

/** Key layout, in one place so every store implementation and tool agrees. */
export const Keys = {
  fs: (name: string) => `fs/${name}`,
  fsPrefix: 'fs/',
  nextFsId: 'meta/next-fs-id',
  server: (kind: string, id: string) => `servers/${kind}/${id}`,
  serverPrefix: (kind?: string) => (kind ? `servers/${kind}/` : 'servers/'),
  session: (id: string) => `sessions/${id}`,
  sessionPrefix: 'sessions/',
  /** Liveness of a session while its store lease lasts (etcd only). */
  sessionLease: (id: string) => `session-leases/${id}`,
  sessionLeasePrefix: 'session-leases/',
} as const;

/** put-if-absent / put-if-unchanged on one key: the common txn. */
export function putIfVersion(store: MdsStore, key: string, version: number, value: unknown): Promise<boolean> {
  return store.txn([{ key, version }], [{ type: 'put', key, value }]);
}
