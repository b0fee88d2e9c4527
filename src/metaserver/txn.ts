// Optimistic read-compare-write transactions over a KvEngine: an op reads through a Tx (each read
// key becomes a modRevision compare), stages writes and events, and commits; on conflict the whole
// op re-runs on fresh reads. This is what lets several metaservers share one etcd store. On lmdb
// the engine decides compares synchronously, so the read-and-stage phase runs under an in-process
// lock and never conflicts, while durable commits still overlap (group commit).
import { fsError } from '../common/errno';
import { counter } from '../common/metrics';
import type { KvEngine, KvEntry } from './engine';
import type { EventDraft } from './feed';
import { decodeInode, encodeInode, InodeRec, readU64Value, u64Value } from './inode';
import { ALLOC_VERSION, allocKey, inodeKey } from './keys';

const conflicts = counter({
  name: 'kurve_metaserver_txn_conflicts_total',
  help: 'Namespace transactions re-run because a compared key changed, by op',
  labelNames: ['op'] as const,
});

const MAX_ATTEMPTS = 64;

export class Tx {
  private readonly reads = new Map<string, { key: Buffer; rev: number }>();
  private readonly writes = new Map<string, { key: Buffer; value: Buffer | undefined }>();
  private readonly inodes = new Map<number, InodeRec | null>();
  private readonly dirty = new Set<number>();
  readonly events: EventDraft[] = [];
  /** Work to do after a successful commit (e.g. wake the GC). */
  readonly after: Array<() => void> = [];

  constructor(readonly engine: KvEngine, readonly fsId: number) {}

  /** Reads a key (own staged writes first) and remembers its revision for the commit compare. */
  async get(key: Buffer): Promise<Buffer | undefined> {
    const s = key.toString('latin1');
    const w = this.writes.get(s);
    if (w) return w.value;
    const r = await this.engine.get(key);
    if (!this.reads.has(s)) this.reads.set(s, { key, rev: r?.modRevision ?? 0 });
    return r?.value;
  }

  /**
   * A range read. Not compared at commit: the caller must also read a key that every writer of
   * this range updates (e.g. a directory's inode guards its entries).
   */
  async range(prefix: Buffer, limit?: number): Promise<KvEntry[]> {
    return this.engine.range({ prefix, limit });
  }

  put(key: Buffer, value: Buffer): void {
    this.writes.set(key.toString('latin1'), { key, value });
  }

  del(key: Buffer): void {
    this.writes.set(key.toString('latin1'), { key, value: undefined });
  }

  /** The inode, decoded once per txn; edits to the returned object are saved by markDirty. */
  async inode(ino: number): Promise<InodeRec | undefined> {
    const cached = this.inodes.get(ino);
    if (cached !== undefined) return cached ?? undefined;
    const raw = await this.get(inodeKey(this.fsId, ino));
    const rec = raw ? decodeInode(ino, raw) : null;
    this.inodes.set(ino, rec);
    return rec ?? undefined;
  }

  async mustInode(ino: number): Promise<InodeRec> {
    const r = await this.inode(ino);
    if (!r) throw fsError('ENOENT', `inode ${ino} does not exist`);
    return r;
  }

  /** Stages a new inode. */
  createInode(rec: InodeRec): void {
    this.inodes.set(rec.ino, rec);
    this.dirty.add(rec.ino);
  }

  markDirty(rec: InodeRec): void {
    this.dirty.add(rec.ino);
  }

  deleteInode(ino: number): void {
    this.inodes.set(ino, null);
    this.dirty.delete(ino);
    this.del(inodeKey(this.fsId, ino));
  }

  event(e: EventDraft): void {
    this.events.push(e);
  }

  hasWrites(): boolean {
    return this.writes.size > 0 || this.dirty.size > 0;
  }

  async commit(extraPuts: Array<{ key: Buffer; value: Buffer }> = []): Promise<{ succeeded: boolean; revision: number }> {
    for (const ino of this.dirty) {
      const rec = this.inodes.get(ino);
      if (rec) this.put(inodeKey(this.fsId, ino), encodeInode(rec));
    }
    const puts: Array<{ key: Buffer; value: Buffer }> = [...extraPuts];
    const deletes: Buffer[] = [];
    for (const w of this.writes.values()) {
      if (w.value === undefined) deletes.push(w.key);
      else puts.push({ key: w.key, value: w.value });
    }
    const compares = [...this.reads.values()].map((r) => ({ key: r.key, modRevision: r.rev }));
    return this.engine.txn({ compares, puts, deletes });
  }
}

/** A FIFO lock: holds the read-and-stage phase of one txn at a time. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const ready = this.tail.then(() => release);
    this.tail = next;
    return ready;
  }
}

const locksByEngine = new WeakMap<KvEngine, { stage: Mutex; retry: Mutex }>();
function lockFor(engine: KvEngine): { stage: Mutex; retry: Mutex } {
  let l = locksByEngine.get(engine);
  if (!l) locksByEngine.set(engine, (l = { stage: new Mutex(), retry: new Mutex() }));
  return l;
}

/** Runs `fn` in a Tx until it commits; FsErrors from `fn` end it without writing. */
export async function runTx<T>(
  engine: KvEngine,
  fsId: number,
  op: string,
  fn: (tx: Tx) => Promise<T>,
  onCommit: (tx: Tx, revision: number) => void,
): Promise<T> {
  const locks = lockFor(engine);
  for (let attempt = 1; ; attempt++) {
    // Remote engines (etcd): a txn that already lost a conflict retries under the retry lock, so
    // a burst of same-directory ops from this process queues instead of colliding over and over;
    // only ops from other metaservers can still conflict with it.
    const serial = !engine.decidesSynchronously && attempt > 1 ? await locks.retry.lock() : undefined;
    try {
      const tx = new Tx(engine, fsId);
      let result: T;
      let pending: Promise<{ succeeded: boolean; revision: number }> | undefined;
      const release = engine.decidesSynchronously ? await locks.stage.lock() : undefined;
      try {
        result = await fn(tx);
        // With a synchronously deciding engine the compares are settled inside this call, so the
        // stage lock can go before the durable wait.
        if (tx.hasWrites()) pending = tx.commit();
      } finally {
        release?.();
      }
      if (!pending) return result;
      const res = await pending;
      if (res.succeeded) {
        onCommit(tx, res.revision);
        return result;
      }
    } finally {
      serial?.();
    }
    conflicts.labels(op).inc();
    if (attempt >= MAX_ATTEMPTS) throw fsError('EAGAIN', `${op}: too much contention, gave up after ${attempt} attempts`);
    // Back off only under sustained contention (several metaservers on one store).
    if (attempt > 2) await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
  }
}

/** Longest a reserved block of chunk versions is used by default (must stay below the stray grace). */
export const ALLOCATOR_VERSION_BLOCK_MS = 60_000;

/**
 * Hands out numbers (inodes, chunk versions) from blocks reserved in the store with one
 * compare-and-swap per block, so allocating costs no store round trip. Numbers of a block not used
 * before a restart are skipped, never reused.
 */
export class Allocator {
  private readonly blocks = new Map<string, { next: number; limit: number; at: number }>();
  private readonly reserving = new Map<string, Promise<void>>();

  constructor(private readonly engine: KvEngine, private readonly blockSize = 1024, private readonly versionBlockMs = ALLOCATOR_VERSION_BLOCK_MS) {}

  async next(fsId: number, kind: number, count = 1): Promise<number> {
    const id = `${fsId}:${kind}`;
    for (;;) {
      const b = this.blocks.get(id);
      // A chunk version block is retired after a while, so no version handed out now is older
      // than the store's high-water mark of a minute ago (the stray sweep relies on it).
      if (b && kind === ALLOC_VERSION && Date.now() - b.at > this.versionBlockMs) this.blocks.delete(id);
      else if (b && b.next + count <= b.limit) {
        const first = b.next;
        b.next += count;
        return first;
      }
      let p = this.reserving.get(id);
      if (!p) {
        p = this.reserve(fsId, kind, id, count).finally(() => this.reserving.delete(id));
        this.reserving.set(id, p);
      }
      await p;
    }
  }

  private async reserve(fsId: number, kind: number, id: string, count: number): Promise<void> {
    const key = allocKey(fsId, kind);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const cur = await this.engine.get(key);
      if (!cur) throw fsError('ENOENT', `file system ${fsId} does not exist`);
      const start = readU64Value(cur.value);
      const limit = start + Math.max(this.blockSize, count);
      const res = await this.engine.txn({
        compares: [{ key, modRevision: cur.modRevision }],
        puts: [{ key, value: u64Value(limit) }],
      });
      if (res.succeeded) {
        this.blocks.set(id, { next: start, limit, at: Date.now() });
        return;
      }
    }
    throw fsError('EAGAIN', `allocator for fs ${fsId}: too much contention`);
  }
}
