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
  | { readonly type: 'put'; readonly key: string; readonly value: unknown }
  | { readonly type: 'delete'; readonly key: string };

export interface MdsStore {
  get<T>(key: string): Promise<StoreEntry<T> | undefined>;
  /** Every record whose key starts with `prefix`, in key order. */
  list<T>(prefix: string): Promise<StoreEntry<T>[]>;
  /** Applies `ops` atomically and durably iff every compare holds; resolves false otherwise. */
  txn(compares: readonly StoreCompare[], ops: readonly StoreOp[]): Promise<boolean>;
  close(): Promise<void>;
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
} as const;

/** put-if-absent / put-if-unchanged on one key: the common txn. */
export function putIfVersion(store: MdsStore, key: string, version: number, value: unknown): Promise<boolean> {
  return store.txn([{ key, version }], [{ type: 'put', key, value }]);
}
