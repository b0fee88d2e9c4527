// DataRouter over real in-process ChunkStores: placement spread and stability, fallback reads,
// broadcast deletes, summed stats.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, FsError } from '../../src/common/errno';
import { ChunkKey } from '../../src/datastore/api';
import { ChunkStore } from '../../src/datastore/chunk-store';
import { DataNode, DataRouter } from '../../src/datastore/router';

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
});
