// DataRouter: one DataService over several datastores. Each chunk index of an inode has an owner
// chosen by rendezvous hashing of (fs, inode, index) over the current node ids, so every client
// with the same datastore list agrees without coordination, all versions of a chunk land on the
// same node, and adding or removing a node moves only ~1/N of the chunks. Reads that miss on the
// owner try the other nodes in rendezvous order (the chunk was written under an older list);
// deletes go to every node, since an object may live on a former owner.
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, fsError } from '../common/errno';
import { ChunkKey, DataService, DataStats, PutOptions } from './api';

export interface DataNode {
  /** Stable identity used for placement (an address works if it never changes). */
  readonly id: string;
  readonly service: DataService;
}

function score(id: string, key: ChunkKey): number {
  return crc32c(`${key.fsId}/${key.ino}/${key.index}`, crc32c(id));
}

export class DataRouter implements DataService {
  private nodes: DataNode[] = [];

  constructor(nodes: readonly DataNode[]) {
    this.setNodes(nodes);
  }

  /** Replaces the node list (e.g. after the MDS reported a change in healthy datastores). */
  setNodes(nodes: readonly DataNode[]): void {
    if (new Set(nodes.map((n) => n.id)).size !== nodes.length) throw new Error('duplicate datastore ids');
    this.nodes = [...nodes];
  }

  /** Nodes in preference order for a key: the owner first. */
  order(key: ChunkKey): DataNode[] {
    if (this.nodes.length === 0) throw fsError('EIO', 'no datastore available');
    return this.nodes.map((n) => ({ n, s: score(n.id, key) })).sort((a, b) => b.s - a.s || (a.n.id < b.n.id ? -1 : 1)).map((x) => x.n);
  }

  async put(key: ChunkKey, data: Buffer, crc?: number, opts?: PutOptions): Promise<void> {
    await this.order(key)[0].service.put(key, data, crc, opts);
  }

  /** Flushes every node that defers syncs (in-process stores); the others are durable on put. */
  async flush(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.service.flush?.()));
  }

  async get(key: ChunkKey, offset?: number, length?: number): Promise<Buffer> {
    let first: unknown;
    for (const n of this.order(key)) {
      try {
        return await n.service.get(key, offset, length);
      } catch (err) {
        // Only "not here" moves on: a corrupt object (EIO) must not be papered over by an older copy.
        if (!(err instanceof FsError && err.errno === Errno.ENOENT)) throw err;
        first ??= err;
      }
    }
    throw first;
  }

  async delete(key: ChunkKey): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.service.delete(key)));
  }

  async deleteInode(fsId: number, ino: number): Promise<number> {
    const counts = await Promise.all(this.nodes.map((n) => n.service.deleteInode(fsId, ino)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async deleteMany(keys: ChunkKey[]): Promise<number> {
    if (keys.length === 0) return 0;
    const counts = await Promise.all(this.nodes.map((n) => n.service.deleteMany(keys)));
    return counts.reduce((a, b) => a + b, 0);
  }

  async stats(): Promise<DataStats> {
    const all = await Promise.all(this.nodes.map((n) => n.service.stats()));
    return all.reduce(
      (a, s) => ({
        capacityBytes: a.capacityBytes + s.capacityBytes, usedBytes: a.usedBytes + s.usedBytes,
        freeBytes: a.freeBytes + s.freeBytes, objects: a.objects + s.objects,
      }),
      { capacityBytes: 0, usedBytes: 0, freeBytes: 0, objects: 0 },
    );
  }
}
