// The repairer over a real lmdb engine and in-memory datastores: targets in the router's
// rendezvous order over live nodes only, copies from any holder (a corrupt one skipped), lost
// objects reported, inodes queued for purge skipped, and never a copy of a chunk whose ref went
// away before the copy, nor one left behind when it went away during the copy.
import * as fs from 'node:fs';
import { crc32c } from '@node-rs/crc32';
import { fsError } from '../../src/common/errno';
import { ChunkKey, DataService, ObjectPage } from '../../src/datastore/api';
import { DataNode, DataRouter } from '../../src/datastore/router';
import { LmdbEngine } from '../../src/metaserver/engines/lmdb';
import { GcQueue } from '../../src/metaserver/gc';
import { encodeChunk } from '../../src/metaserver/inode';
import { chunkKey, gcKey } from '../../src/metaserver/keys';
import { Repairer, ReplicatedFs } from '../../src/metaserver/repair';
import { tempDir } from '../helpers/metaserver';

const name = (k: ChunkKey) => `${k.fsId}/${k.ino}/${k.index}.${k.version}`;

class MemNode implements DataService {
  readonly objects = new Map<string, { key: ChunkKey; data: Buffer }>();
  readonly corrupt = new Set<string>();
  /** Runs inside the next put, before it stores (a race to stage). */
  onPut?: () => Promise<void>;
  puts = 0;
  async put(key: ChunkKey, data: Buffer, crc?: number): Promise<void> {
    this.puts++;
    const hook = this.onPut;
    this.onPut = undefined;
    await hook?.();
    if (crc !== undefined && crc >>> 0 !== crc32c(data)) throw fsError('EIO', 'checksum mismatch on write');
    this.objects.set(name(key), { key, data: Buffer.from(data) });
  }
  async get(key: ChunkKey): Promise<Buffer> {
    const o = this.objects.get(name(key));
    if (!o) throw fsError('ENOENT', `no chunk ${name(key)}`);
    if (this.corrupt.has(name(key))) throw fsError('EIO', `chunk ${name(key)} is corrupt`);
    return o.data;
  }
  async delete(key: ChunkKey): Promise<void> {
    this.objects.delete(name(key));
  }
  async deleteInode(): Promise<number> {
    return 0;
  }
  async deleteMany(keys: ChunkKey[]): Promise<number> {
    keys.forEach((k) => this.objects.delete(name(k)));
    return keys.length;
  }
  async stats() {
    return { capacityBytes: 0, usedBytes: 0, freeBytes: 0, objects: this.objects.size };
  }
  async list(after: string | undefined, limit: number): Promise<ObjectPage> {
    const all = [...this.objects.keys()].sort();
    const from = after === undefined ? 0 : all.indexOf(after) + 1;
    const page = all.slice(from, from + limit);
    const objects = page.map((k) => ({ key: this.objects.get(k)!.key, length: this.objects.get(k)!.data.length, mtimeMs: 0 }));
    return from + limit < all.length ? { objects, next: page[page.length - 1] } : { objects };
  }
}

describe('Repairer', () => {
  let dir: string;
  let engine: LmdbEngine;
  let gc: GcQueue;
  let mem: MemNode[];
  let nodes: DataNode[];
  let fss: ReplicatedFs[];
  let repairer: Repairer;

  const key = (ino: number, index: number, version: number): ChunkKey => ({ fsId: 1, ino, index, version });
  const setRef = (k: ChunkKey) => engine.txn({ puts: [{ key: chunkKey(k.fsId, k.ino, k.index), value: encodeChunk({ index: k.index, version: k.version, length: 10 }) }] });
  const dropRef = (k: ChunkKey) => engine.txn({ deletes: [chunkKey(k.fsId, k.ino, k.index)] });
  const holders = (k: ChunkKey) => nodes.filter((n) => (n.service as MemNode).objects.has(name(k))).map((n) => n.id);
  /** Puts an object on the first `copies` of the given nodes' order and references it. */
  async function stored(k: ChunkKey, on: string[]): Promise<void> {
    for (const id of on) await nodes.find((n) => n.id === id)!.service.put(k, Buffer.from(`data of ${name(k)}`));
    await setRef(k);
  }
  const order = (k: ChunkKey) => new DataRouter(nodes).order(k).map((n) => n.id);

  beforeEach(() => {
    dir = tempDir('kurve-repair-');
    engine = new LmdbEngine({ path: dir });
    gc = new GcQueue(engine, {});
    mem = [0, 1, 2, 3].map(() => new MemNode());
    nodes = mem.map((m, i) => ({ id: `ds-${i}`, service: m }));
    fss = [{ fsId: 1, replicas: 2 }];
    repairer = new Repairer(engine, gc, { source: { fileSystems: async () => fss, nodes: () => nodes }, intervalMs: 0, concurrency: 2 });
  });

  afterEach(async () => {
    await repairer.stop();
    await engine.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('puts copies back on the first R live nodes of the rendezvous order, from any good holder', async () => {
    const ks = Array.from({ length: 20 }, (_, i) => key(100 + i, i % 3, 7));
    const down = 'ds-0';
    const live = (k: ChunkKey) => order(k).filter((id) => id !== down);
    for (const k of ks) await stored(k, [live(k)[2]]); // one copy, on a live node off its targets
    nodes = nodes.map((n) => (n.id === down ? { ...n, down: true } : n));
    const s = await repairer.runOnce();
    expect(s).toMatchObject({ fsIds: [1], checked: 20, underReplicated: 20, copied: 40, failed: 0, lost: 0, skipped: 0 });
    for (const k of ks) expect(holders(k).sort()).toEqual(live(k).slice(0, 3).sort());
    expect(await repairer.runOnce()).toMatchObject({ checked: 20, underReplicated: 0, copied: 0 });
  });

  it('skips a corrupt holder, reports an object on no live node as lost, and leaves R = 1 file systems alone', async () => {
    const k = key(5, 0, 3);
    const [a, b, c] = order(k);
    await stored(k, [b, c]);
    (nodes.find((n) => n.id === b)!.service as MemNode).corrupt.add(name(k));
    const gone = key(6, 0, 4);
    await setRef(gone);
    fss = [{ fsId: 1, replicas: 2 }, { fsId: 2, replicas: 1 }];
    await engine.txn({ puts: [{ key: chunkKey(2, 9, 0), value: encodeChunk({ index: 0, version: 1, length: 1 }) }] });
    const s = await repairer.runOnce();
    expect(s).toMatchObject({ fsIds: [1], checked: 2, underReplicated: 2, copied: 1, lost: 1, lostObjects: [gone] });
    expect(holders(k)).toContain(a);
    expect(await repairer.runOnce(2)).toMatchObject({ fsIds: [], checked: 0 });
    await expect(repairer.runOnce(3)).rejects.toThrow(/no file system with id 3/);
  });

  it('does not copy a chunk whose ref went away, nor inodes queued for purge', async () => {
    const k = key(7, 0, 2);
    await stored(k, [order(k)[1]]);
    const purged = key(8, 0, 2);
    await stored(purged, [order(purged)[1]]);
    // Inode 8 waits in the GC queue for its purge.
    await engine.txn({ puts: [{ key: gcKey(Date.now() + 60_000, 1), value: Buffer.from(JSON.stringify({ fsId: 1, ino: 8 })) }] });
    // The ref is replaced after the walk, before the copy: GC will delete the old version.
    const target = nodes.find((n) => n.id === order(k)[0])!.service as MemNode;
    const real = engine.range.bind(engine);
    let once = true;
    engine.range = async (r) => {
      const out = await real(r);
      if (once && 'start' in r) {
        once = false;
        await setRef({ ...k, version: 9 });
      }
      return out;
    };
    const s = await repairer.runOnce();
    engine.range = real;
    expect(target.puts).toBe(0); // checked before the copy, not only taken back after
    expect(target.objects.has(name(k))).toBe(false);
    expect(holders(purged)).toEqual([order(purged)[1]]);
    expect(s).toMatchObject({ copied: 0, skipped: 1 });
  });

  it('takes a copy back when the ref goes away while it is being made', async () => {
    const k = key(11, 1, 5);
    await stored(k, [order(k)[2]]);
    const [t1, t2] = order(k).slice(0, 2).map((id) => nodes.find((n) => n.id === id)!.service as MemNode);
    t1.onPut = async () => {
      await dropRef(k); // deleted meanwhile: GC deletes the copies it knows of
      await nodes.find((n) => n.id === order(k)[2])!.service.delete(k);
    };
    const s = await repairer.runOnce();
    expect(s).toMatchObject({ copied: 0, skipped: 1, lost: 0 });
    expect(t1.objects.has(name(k))).toBe(false);
    expect(t2.objects.has(name(k))).toBe(false);
    expect(holders(k)).toEqual([]);
  });
});
