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
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, fsError } from '../common/errno';
import { moduleLogger } from '../common/logger';
import { ChunkKey, DataService, DataStats, DatastoreUnreachableError, ObjectPage, PutOptions } from './api';

const log = moduleLogger('data-router');

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

  constructor(nodes: readonly DataNode[]) {
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

  /** Flushes every node that defers syncs (in-process stores); the others are durable on put. */
  async flush(): Promise<void> {
    await allNodes(this.up().map((n) => n.service.flush?.()));
  }

  async get(key: ChunkKey, offset?: number, length?: number): Promise<Buffer> {
    const all = this.order(key);
    const live = all.filter((n) => !n.down);
    const tries = [...live.filter((n) => !this.isSuspect(n)), ...live.filter((n) => this.isSuspect(n))];
    const missing: string[] = all.filter((n) => n.down).map((n) => n.id);
    let absent: unknown;
    for (const n of tries) {
      try {
        return await n.service.get(key, offset, length);
      } catch (err) {
        if (unreachable(err)) {
          this.suspect(n, err);
          missing.push(n.id);
          continue;
        }
        // Only "not here" moves on: a corrupt object (EIO) must not be papered over by an older copy.
        if (!(err instanceof FsError && err.errno === Errno.ENOENT)) throw err;
        absent ??= err;
      }
    }
    if (missing.length > 0) {
      throw fsError('EIO', `chunk ${key.fsId}/${key.ino}/${key.index}.${key.version} not on any reachable datastore; not reachable: ${missing.join(', ')}`);
    }
    throw absent;
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
