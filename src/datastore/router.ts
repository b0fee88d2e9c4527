// DataRouter: one DataService over several datastores. Each chunk index of an inode has an owner
// chosen by rendezvous hashing of (fs, inode, index) over the node ids, so every client with the
// same datastore list agrees without coordination, all versions of a chunk land on the same node,
// and adding a node moves only ~1/N of the chunks.
//
// The list holds every registered datastore, down ones too (DataNode.down, from the MDS), so a
// node going down does not move anybody's chunks. A write goes to the first node in rendezvous
// order that is up and answering: when the owner is down (or stops answering mid-call) it fails
// over to the next, so writes keep working. A read asks the nodes that are not down in rendezvous
// order: a miss (ENOENT) moves on, since the chunk may have been written under another list or
// while its owner was down. A chunk found on no reachable node while some node is down or not
// answering is EIO (it may be on that node), never ENOENT and never a wait for the node.
// Deletes, listing, flush and stats cover every node that is not down; what a down node still
// holds is collected by the metaserver's stray sweep once it is back.
//
// With `replicas` R > 1 (a file system's setting) a write goes to the first R such nodes at once,
// a node not answering is replaced by the next one, and fewer than R copies is accepted (a
// "degraded" write, counted and logged) only when fewer than R nodes answer. A read moves on from
// a corrupt copy too (keys are immutable, so every copy of a key holds the same bytes) and fails
// only when no reachable node has a good one; a read served by a node outside the first R puts the
// object back on those of the first R that lacked it (read repair, in the background).
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, fsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { counter } from '../common/metrics';
import { ChunkKey, DataService, DataStats, DatastoreUnreachableError, ObjectPage, PutOptions } from './api';

const log = moduleLogger('data-router');

const degradedWrites = counter({
  name: 'kurve_datastore_degraded_writes_total',
  help: 'Chunk objects written to fewer datastores than the file system\'s replica count (too few answered)',
});
const readRepairs = counter({
  name: 'kurve_datastore_read_repairs_total',
  help: 'Copies of chunk objects put back on a datastore that lacked (or had a corrupt) one, found by a read',
  labelNames: ['result'] as const,
});

export interface RouterOptions {
  /** Copies of each object on distinct nodes (default 1: one owner, failover only). */
  readonly replicas?: number;
}

/** At most one degraded-write warning per this period (every chunk of a big file would log). */
const DEGRADED_LOG_MS = 10_000;

export interface DataNode {
  /** Stable identity used for placement (the id the datastore registers with the MDS). */
  readonly id: string;
  readonly service: DataService;
  /** The MDS reports it unhealthy: no reads, deletes or listing; writes only as a last resort. */
  readonly down?: boolean;
}

/** How long a node that did not answer is tried after the others (until the MDS says more). */
export const SUSPECT_MS = 5_000;

/** murmur3's 32-bit finalizer: a bijection in which every input bit flips about half the output bits. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The node's weight for a key. CRC is linear: seeding one CRC with the id makes two nodes' scores
 * differ by a constant XOR for every key of a length, so some nodes won ~half the chunks (ds-0..2
 * took 49/25/26 %); mixing through fmix32 gives each of N nodes 1/N (33.5/33.2/33.3 %).
 */
function score(id: string, key: ChunkKey): number {
  return fmix32(crc32c(`${key.fsId}/${key.ino}/${key.index}`) ^ fmix32(crc32c(id)));
}

function unreachable(err: unknown): boolean {
  return err instanceof DatastoreUnreachableError;
}

/** Settles every call; throws the first failure only after all of them finished. */
async function allNodes<T>(calls: Array<T | Promise<T>>): Promise<T[]> {
  const res = await Promise.allSettled(calls);
  const failed = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return res.map((r) => (r as PromiseFulfilledResult<T>).value);
}

export class DataRouter implements DataService {
  private nodes: DataNode[] = [];
  /** Node id -> until when it counts as not answering (a call to it failed unanswered). */
  private readonly suspects = new Map<string, number>();
  readonly replicas: number;
  private degradedSince = 0;
  private degradedLogged = 0;
  /** Keys being repaired (one repair per key at a time). */
  private readonly repairing = new Set<string>();

  constructor(nodes: readonly DataNode[], opts: RouterOptions = {}) {
    const r = opts.replicas ?? 1;
    if (!Number.isSafeInteger(r) || r < 1) throw new Error(`invalid replica count ${r}`);
    this.replicas = r;
    this.setNodes(nodes);
  }

  /** Replaces the node list (the MDS reported a datastore added, moved, down or back). */
  setNodes(nodes: readonly DataNode[]): void {
    if (new Set(nodes.map((n) => n.id)).size !== nodes.length) throw new Error('duplicate datastore ids');
    const old = new Map(this.nodes.map((n) => [n.id, n]));
    // A node with a new connection (it came back, or moved) starts with a clean record.
    for (const n of nodes) if (old.get(n.id)?.service !== n.service) this.suspects.delete(n.id);
    this.nodes = [...nodes];
  }

  /** Every node, in rendezvous order for a key: the owner first. */
  order(key: ChunkKey): DataNode[] {
    if (this.nodes.length === 0) throw fsError('EIO', 'no datastore available');
    return this.nodes.map((n) => ({ n, s: score(n.id, key) })).sort((a, b) => b.s - a.s || (a.n.id < b.n.id ? -1 : 1)).map((x) => x.n);
  }

  private suspect(n: DataNode, err: unknown): void {
    if (!this.suspects.has(n.id)) log.warn({ datastore: n.id, err: String((err as Error)?.message ?? err) }, 'datastore not answering; trying the others first');
    this.suspects.set(n.id, Date.now() + SUSPECT_MS);
  }

  private isSuspect(n: DataNode): boolean {
    const until = this.suspects.get(n.id);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.suspects.delete(n.id);
    return false;
  }

  private up(): DataNode[] {
    return this.nodes.filter((n) => !n.down);
  }

  /** The nodes a delete must reach; none at all is an error (the caller retries later). */
  private upForDelete(): DataNode[] {
    const up = this.up();
    if (up.length === 0) throw fsError('EIO', 'no datastore available');
    return up;
  }

  /** The owner if it is up and answering, else the next such node; suspect, then down nodes last. */
  async put(key: ChunkKey, data: Buffer, crc?: number, opts?: PutOptions): Promise<void> {
    const all = this.order(key);
    if (this.replicas > 1) return this.putCopies(key, data, crc, opts, all);
    const fine = all.filter((n) => !n.down && !this.isSuspect(n));
    const tries = fine.length === all.length ? all : [...fine, ...all.filter((n) => !n.down && !fine.includes(n)), ...all.filter((n) => n.down)];
    let last: unknown;
    for (const n of tries) {
      try {
        return await n.service.put(key, data, crc, opts);
      } catch (err) {
        if (!unreachable(err)) throw err;
        this.suspect(n, err);
        last = err;
      }
    }
    throw last;
  }

  /**
   * R copies: the first R up nodes (answering ones first) at once; a slot whose node does not
   * answer takes the next node of the order. Any other failure (a refused put) fails the write.
   * Down nodes are tried only when no up node took a copy, for one copy, as with R = 1.
   */
  private async putCopies(key: ChunkKey, data: Buffer, crc: number | undefined, opts: PutOptions | undefined, all: DataNode[]): Promise<void> {
    const up = all.filter((n) => !n.down);
    const queue = [...up.filter((n) => !this.isSuspect(n)), ...up.filter((n) => this.isSuspect(n))];
    const stored: string[] = [];
    let unanswered: unknown;
    let refused: { err: unknown } | undefined;
    const tryOn = async (n: DataNode): Promise<boolean> => {
      try {
        await n.service.put(key, data, crc, opts);
        stored.push(n.id);
        return true;
      } catch (err) {
        if (!unreachable(err)) refused ??= { err };
        else {
          this.suspect(n, err);
          unanswered = err;
        }
        return false;
      }
    };
    const slot = async (): Promise<void> => {
      for (let n = queue.shift(); n && !refused; n = queue.shift()) if (await tryOn(n)) return;
    };
    await Promise.all(Array.from({ length: Math.min(this.replicas, queue.length) }, slot));
    if (refused) throw refused.err;
    if (stored.length === 0) {
      for (const n of all.filter((x) => x.down)) if (await tryOn(n)) break;
      if (refused) throw (refused as { err: unknown }).err;
      if (stored.length === 0) throw unanswered ?? fsError('EIO', 'no datastore available');
    }
    if (stored.length < this.replicas) this.degraded(key, stored);
  }

  private degraded(key: ChunkKey, stored: string[]): void {
    degradedWrites.inc();
    this.degradedSince++;
    const now = Date.now();
    if (now - this.degradedLogged < DEGRADED_LOG_MS) return;
    log.warn({ chunk: `${key.fsId}/${key.ino}/${key.index}.${key.version}`, on: stored, replicas: this.replicas, degradedWrites: this.degradedSince },
      `chunk written to ${stored.length} of ${this.replicas} datastores (too few answering); the missing copy is made by the next repair pass (or a read repair)`);
    this.degradedLogged = now;
    this.degradedSince = 0;
  }

  /** Flushes every node that defers syncs (in-process stores); the others are durable on put. */
  async flush(): Promise<void> {
    await allNodes(this.up().map((n) => n.service.flush?.()));
  }

  async get(key: ChunkKey, offset?: number, length?: number): Promise<Buffer> {
    const all = this.order(key);
    const live = all.filter((n) => !n.down);
    const tries = [...live.filter((n) => !this.isSuspect(n)), ...live.filter((n) => this.isSuspect(n))];
    const missing: string[] = all.filter((n) => n.down).map((n) => n.id);
    /** Nodes that answered without a good copy (absent, or corrupt with R > 1). */
    const lacking: DataNode[] = [];
    let absent: unknown;
    let corrupt: FsError | undefined;
    for (const n of tries) {
      let got: Buffer;
      try {
        got = await n.service.get(key, offset, length);
      } catch (err) {
        if (unreachable(err)) {
          this.suspect(n, err);
          missing.push(n.id);
          continue;
        }
        // With one copy only "not here" moves on: a corrupt object (EIO) must not be papered over
        // by a copy written under another node list. With R copies of the same immutable key, any
        // good copy is the right bytes.
        if (this.replicas > 1 && err instanceof FsError && err.errno === Errno.EIO) {
          log.warn({ datastore: n.id, err: err.message }, 'corrupt copy of a chunk; reading another replica');
          corrupt ??= err;
        } else if (!(err instanceof FsError && err.errno === Errno.ENOENT)) {
          throw err;
        } else {
          absent ??= err;
        }
        lacking.push(n);
        continue;
      }
      if (this.replicas > 1 && lacking.length > 0) this.repair(key, n, live, lacking, (offset ?? 0) === 0 && (length ?? -1) === -1 ? got : undefined);
      return got;
    }
    const name = `chunk ${key.fsId}/${key.ino}/${key.index}.${key.version}`;
    if (corrupt) {
      throw fsError('EIO', `${name}: no good copy on any reachable datastore (${corrupt.message})${missing.length > 0 ? `; not reachable: ${missing.join(', ')}` : ''}`);
    }
    if (missing.length > 0) {
      throw fsError('EIO', `${name} not on any reachable datastore; not reachable: ${missing.join(', ')}`);
    }
    throw absent;
  }

  /**
   * Read repair: puts the object on the nodes among the first R up ones (in rendezvous order) that
   * answered this read without a good copy, in the background. `whole` is the object if the read
   * was of all of it; else it is read again from `from`. Failures are logged and counted only.
   */
  private repair(key: ChunkKey, from: DataNode, live: DataNode[], lacking: DataNode[], whole: Buffer | undefined): void {
    const top = new Set(live.slice(0, this.replicas));
    const targets = lacking.filter((n) => top.has(n));
    const id = `${key.fsId}/${key.ino}/${key.index}.${key.version}`;
    if (targets.length === 0 || this.repairing.has(id)) return;
    this.repairing.add(id);
    void (async () => {
      const data = whole ?? (await from.service.get(key));
      const crc = crc32c(data);
      const res = await Promise.allSettled(targets.map((n) => n.service.put(key, data, crc)));
      res.forEach((r, i) => {
        readRepairs.labels(r.status === 'fulfilled' ? 'ok' : 'failed').inc();
        if (r.status === 'rejected') log.warn({ chunk: id, datastore: targets[i].id, err: String((r.reason as Error)?.message ?? r.reason) }, 'read repair failed');
        else log.info({ chunk: id, datastore: targets[i].id, from: from.id }, 'chunk copy repaired');
      });
    })()
      .catch((err: unknown) => {
        readRepairs.labels('failed').inc();
        log.warn({ chunk: id, from: from.id, err: String((err as Error)?.message ?? err) }, 'read repair failed');
      })
      .finally(() => this.repairing.delete(id));
  }

  /** Read repairs still running (tests wait for them). */
  get repairsInFlight(): number {
    return this.repairing.size;
  }

  async delete(key: ChunkKey): Promise<void> {
    await allNodes(this.upForDelete().map((n) => n.service.delete(key)));
  }

  async deleteInode(fsId: number, ino: number): Promise<number> {
    const counts = await allNodes(this.upForDelete().map((n) => n.service.deleteInode(fsId, ino)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async deleteMany(keys: ChunkKey[]): Promise<number> {
    if (keys.length === 0) return 0;
    const counts = await allNodes(this.upForDelete().map((n) => n.service.deleteMany(keys)));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Summed over the nodes that answer (statfs keeps working while one is down); EIO if none does. */
  async stats(): Promise<DataStats> {
    const up = this.up();
    const res = await Promise.allSettled(up.map((n) => n.service.stats()));
    const all = res.filter((r): r is PromiseFulfilledResult<DataStats> => r.status === 'fulfilled').map((r) => r.value);
    if (all.length === 0) {
      const failed = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      throw failed ? failed.reason : fsError('EIO', 'no datastore available');
    }
    return all.reduce(
      (a, s) => ({
        capacityBytes: a.capacityBytes + s.capacityBytes, usedBytes: a.usedBytes + s.usedBytes,
        freeBytes: a.freeBytes + s.freeBytes, objects: a.objects + s.objects,
      }),
      { capacityBytes: 0, usedBytes: 0, freeBytes: 0, objects: 0 },
    );
  }

  /**
   * Every object of every node that is not down, one node after the other (by id), so an inode's
   * objects on one node stay listed together. The cursor is [node id, that node's cursor].
   */
  async list(after: string | undefined, limit: number): Promise<ObjectPage> {
    const nodes = this.up().filter((n) => n.service.list).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    let [id, inner] = after ? (JSON.parse(after) as [string, string | undefined]) : [undefined, undefined];
    for (;;) {
      // The node of the cursor, or the first after it by id (the list may have changed meanwhile).
      const n = nodes.find((x) => id === undefined || x.id >= id);
      if (!n) return { objects: [] };
      const page = await n.service.list!(n.id === id ? inner ?? undefined : undefined, limit);
      const nextNode = nodes[nodes.indexOf(n) + 1];
      const next = page.next !== undefined ? JSON.stringify([n.id, page.next]) : nextNode ? JSON.stringify([nextNode.id, undefined]) : undefined;
      if (page.objects.length > 0 || next === undefined) return next === undefined ? { objects: page.objects } : { objects: page.objects, next };
      [id, inner] = [nextNode.id, undefined];
    }
  }
}
