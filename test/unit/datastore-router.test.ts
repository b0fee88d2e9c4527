// DataRouter over real in-process ChunkStores: placement spread and stability, fallback reads,
// broadcast deletes, summed stats; nodes down (per the MDS) or not answering: writes fail over,
// reads of what they hold are EIO at once, deletes/listing/stats cover the rest.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, FsError } from '../../src/common/errno';
import { ChunkKey, DataService, DatastoreUnreachableError } from '../../src/datastore/api';
import { ChunkStore } from '../../src/datastore/chunk-store';
import { DataNode, DataRouter } from '../../src/datastore/router';

/** A store that can stop answering, like a killed datastore reached over gRPC; counts calls. */
class Flaky implements DataService {
  dead = false;
  calls = 0;
  constructor(private readonly inner: ChunkStore) {}
  private check(): void {
    this.calls++;
    if (this.dead) throw new DatastoreUnreachableError(Errno.EIO, 'connection refused');
  }
  async put(k: ChunkKey, d: Buffer): Promise<void> { this.check(); return this.inner.put(k, d); }
  async get(k: ChunkKey, o?: number, l?: number): Promise<Buffer> { this.check(); return this.inner.get(k, o, l); }
  async delete(k: ChunkKey): Promise<void> { this.check(); return this.inner.delete(k); }
  async deleteInode(f: number, i: number): Promise<number> { this.check(); return this.inner.deleteInode(f, i); }
  async deleteMany(k: ChunkKey[]): Promise<number> { this.check(); return this.inner.deleteMany(k); }
  async stats() { this.check(); return this.inner.stats(); }
}

describe('DataRouter', () => {
  let root: string;
  let stores: ChunkStore[];
  let nodes: DataNode[];
  const key = (ino: number, index = 0, version = 1): ChunkKey => ({ fsId: 1, ino, index, version });

  beforeEach(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-router-'));
    stores = await Promise.all([0, 1, 2, 3].map((i) => ChunkStore.open(path.join(root, `ds${i}`), { sync: false })));
    nodes = stores.map((s, i) => ({ id: `ds-${i}`, service: s }));
  });
  afterEach(async () => {
    await Promise.all(stores.map((s) => s.close()));
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('spreads chunks over all nodes, keeps every version of a chunk on one node, and reads them back', async () => {
    const r = new DataRouter(nodes.slice(0, 3));
    for (let ino = 0; ino < 60; ino++) {
      await r.put(key(ino, 0, 1), Buffer.from(`v1-${ino}`));
      await r.put(key(ino, 0, 2), Buffer.from(`v2-${ino}`));
    }
    const counts = await Promise.all(stores.slice(0, 3).map(async (s) => (await s.stats()).objects));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(120);
    for (const c of counts) expect(c).toBeGreaterThan(15); // roughly a third each
    for (const c of counts) expect(c % 2).toBe(0); // versions stay together
    for (let ino = 0; ino < 60; ino++) expect((await r.get(key(ino, 0, 2))).toString()).toBe(`v2-${ino}`);
    expect((await r.stats()).objects).toBe(120);
  });

  it('gives each node an even share of owners, whatever its id looks like', () => {
    for (const ids of [['ds-0', 'ds-1', 'ds-2'], ['ds-1a2b3c4d', 'ds-9f8e7d6c', 'ds-00112233'], ['ds-0', 'ds-1', 'ds-2', 'ds-3', 'ds-4']]) {
      const r = new DataRouter(ids.map((id) => ({ id, service: stores[0] })));
      const owned = new Map(ids.map((id) => [id, 0]));
      const keys = 6000;
      for (let i = 0; i < keys; i++) {
        const owner = r.order(key(1 + (i >> 1), i & 1))[0].id;
        owned.set(owner, owned.get(owner)! + 1);
      }
      for (const n of owned.values()) expect(Math.abs(n / keys - 1 / ids.length)).toBeLessThan(0.03);
    }
  });

  it('adding a node moves only some owners, and moved chunks are still found and deleted', async () => {
    const before = new DataRouter(nodes.slice(0, 3));
    for (let ino = 0; ino < 80; ino++) await before.put(key(ino), Buffer.from(`x${ino}`));
    const after = new DataRouter(nodes);
    let moved = 0;
    for (let ino = 0; ino < 80; ino++) if (before.order(key(ino))[0].id !== after.order(key(ino))[0].id) moved++;
    expect(moved).toBeGreaterThan(5);
    expect(moved).toBeLessThan(40); // ~1/4 expected, never a reshuffle
    for (let ino = 0; ino < 80; ino++) expect((await after.get(key(ino))).toString()).toBe(`x${ino}`);
    expect(await after.deleteMany([key(1), key(2), key(999)])).toBe(2);
    expect(await after.deleteInode(1, 3)).toBe(1);
    await after.delete(key(4));
    const e = await after.get(key(4)).catch((err: unknown) => err);
    expect((e as FsError).errno).toBe(Errno.ENOENT);
    expect((await after.stats()).objects).toBe(76);
  });

  it('does not hide a corrupt object behind another copy, and fails clearly with no nodes', async () => {
    const r = new DataRouter(nodes.slice(0, 2));
    const k = key(5);
    await r.put(k, Buffer.alloc(1000, 1));
    const owner = stores[Number(r.order(k)[0].id.slice(3))];
    const other = stores[Number(r.order(k)[1].id.slice(3))];
    await other.put(k, Buffer.alloc(1000, 2)); // a stale copy elsewhere
    const hex = (n: number) => n.toString(16).padStart(2, '0');
    const file = path.join(owner.dir, 'objects', '1', hex(5), hex(0), '5', '0.1');
    const b = fs.readFileSync(file);
    b[b.length - 1] ^= 1;
    fs.writeFileSync(file, b);
    expect(((await r.get(k).catch((err: unknown) => err)) as FsError).errno).toBe(Errno.EIO);
    const empty = new DataRouter([]);
    expect(((await empty.put(k, Buffer.alloc(1)).catch((err: unknown) => err)) as Error).message).toMatch(/no datastore available/);
    expect(() => new DataRouter([nodes[0], nodes[0]])).toThrow(/duplicate/);
  });

  it('a node down per the MDS: its chunks go to the next node, reads of what it holds are EIO at once, back again it is found', async () => {
    const all = nodes.slice(0, 3);
    const r = new DataRouter(all);
    for (let ino = 0; ino < 30; ino++) await r.put(key(ino), Buffer.from(`a${ino}`));
    const onFirst = [...Array(30).keys()].filter((ino) => r.order(key(ino))[0].id === 'ds-0');
    expect(onFirst.length).toBeGreaterThan(3);
    r.setNodes(all.map((n) => (n.id === 'ds-0' ? { ...n, down: true } : n)));
    // New writes whose owner is down land on the next node in rendezvous order.
    for (const ino of onFirst) await r.put(key(ino, 0, 2), Buffer.from(`b${ino}`));
    expect((await stores[0].stats()).objects).toBe(onFirst.length);
    for (const ino of onFirst) {
      expect((await r.get(key(ino, 0, 2))).toString()).toBe(`b${ino}`);
      const e = (await r.get(key(ino)).catch((err: unknown) => err)) as FsError;
      expect(e.errno).toBe(Errno.EIO);
      expect(e.message).toMatch(/not on any reachable datastore; not reachable: ds-0/);
    }
    // A chunk that exists nowhere is still ENOENT when no node is missing...
    r.setNodes(all);
    expect(((await r.get(key(999)).catch((err: unknown) => err)) as FsError).errno).toBe(Errno.ENOENT);
    // ...and everything is found once the node is back (failed-over chunks by the miss path).
    for (const ino of onFirst) {
      expect((await r.get(key(ino))).toString()).toBe(`a${ino}`);
      expect((await r.get(key(ino, 0, 2))).toString()).toBe(`b${ino}`);
    }
    // Deletes, stats and listing skip the down node (the stray sweep collects what it keeps).
    r.setNodes(all.map((n) => (n.id === 'ds-1' ? { ...n, down: true } : n)));
    const s1 = (await stores[1].stats()).objects;
    const total = (await Promise.all(stores.slice(0, 3).map((s) => s.stats()))).reduce((a, s) => a + s.objects, 0);
    expect((await r.stats()).objects).toBe(total - s1);
    const listed: string[] = [];
    let after: string | undefined;
    do {
      const page = await r.list(after, 7);
      listed.push(...page.objects.map((o) => `${o.key.ino}.${o.key.version}`));
      after = page.next;
    } while (after);
    expect(listed.length).toBe(total - s1);
    expect(new Set(listed).size).toBe(listed.length);
    const n = await r.deleteInode(1, onFirst[0]);
    expect(n).toBeGreaterThan(0);
  });

  it('a node that stops answering: writes fail over at once and it is tried last for a while; deletes report the failure', async () => {
    const f = stores.slice(0, 3).map((st) => new Flaky(st));
    const r = new DataRouter(f.map((svc, i) => ({ id: `ds-${i}`, service: svc })));
    f[2].dead = true;
    const owned = [...Array(40).keys()].filter((ino) => r.order(key(ino))[0].id === 'ds-2');
    expect(owned.length).toBeGreaterThan(3);
    for (const ino of owned) await r.put(key(ino), Buffer.from(`c${ino}`));
    expect(f[2].calls).toBe(1); // suspect after the first failure: not tried first again
    for (const ino of owned) expect((await r.get(key(ino))).toString()).toBe(`c${ino}`);
    const e = (await r.get(key(owned[0], 0, 9)).catch((err: unknown) => err)) as FsError;
    expect(e.errno).toBe(Errno.EIO); // maybe on the silent node: not ENOENT
    expect(((await r.deleteInode(1, owned[0]).catch((err: unknown) => err)) as Error)).toBeInstanceOf(DatastoreUnreachableError);
    // The other nodes were still cleaned (all calls settle before the failure is reported).
    expect(((await r.get(key(owned[0])).catch((err: unknown) => err)) as FsError).errno).toBe(Errno.EIO);
    f[2].dead = false;
    r.setNodes(f.map((svc, i) => ({ id: `ds-${i}`, service: i === 2 ? new Flaky(stores[2]) : svc }))); // reconnected
    expect(((await r.get(key(owned[0])).catch((err: unknown) => err)) as FsError).errno).toBe(Errno.ENOENT);
  });
});
