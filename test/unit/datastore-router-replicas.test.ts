// DataRouter with R copies per chunk, over in-memory nodes that can stop answering, refuse, be
// slow or hold a corrupt copy: placement on the first R nodes in rendezvous order, degraded writes
// when fewer answer, a node lost in the middle of a put replaced by the next, reads served by
// another replica when the owner is down or its copy is corrupt, and read repair.
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, fsError } from '../../src/common/errno';
import { registry } from '../../src/common/metrics';
import { ChunkKey, DataService, DatastoreUnreachableError } from '../../src/datastore/api';
import { DataNode, DataRouter } from '../../src/datastore/router';

const name = (k: ChunkKey) => `${k.fsId}/${k.ino}/${k.index}.${k.version}`;

/** A datastore in memory: `dead` = not answering, `corrupt` = keys whose copy fails its CRC. */
class MemNode implements DataService {
  readonly objects = new Map<string, Buffer>();
  readonly corrupt = new Set<string>();
  dead = false;
  /** Die when the next put arrives (a datastore killed during a write). */
  dieOnPut = false;
  puts = 0;
  gets = 0;
  private check(): void {
    if (this.dead) throw new DatastoreUnreachableError(Errno.EIO, 'connection refused');
  }
  async put(k: ChunkKey, d: Buffer, crc?: number): Promise<void> {
    this.puts++;
    await new Promise((r) => setImmediate(r));
    if (this.dieOnPut) this.dead = true;
    this.check();
    if (crc !== undefined && crc >>> 0 !== crc32c(d)) throw fsError('EIO', 'checksum mismatch on write');
    this.objects.set(name(k), Buffer.from(d));
    this.corrupt.delete(name(k));
  }
  async get(k: ChunkKey, o = 0, l = -1): Promise<Buffer> {
    this.gets++;
    this.check();
    const b = this.objects.get(name(k));
    if (!b) throw fsError('ENOENT', `no chunk ${name(k)}`);
    if (this.corrupt.has(name(k))) throw fsError('EIO', `chunk ${name(k)} is corrupt: crc mismatch`);
    return b.subarray(o, l < 0 ? undefined : o + l);
  }
  async delete(k: ChunkKey): Promise<void> { this.check(); this.objects.delete(name(k)); }
  async deleteInode(f: number, i: number): Promise<number> {
    this.check();
    let n = 0;
    for (const key of [...this.objects.keys()]) if (key.startsWith(`${f}/${i}/`)) n += Number(this.objects.delete(key));
    return n;
  }
  async deleteMany(keys: ChunkKey[]): Promise<number> { this.check(); return keys.filter((k) => this.objects.delete(name(k))).length; }
  async stats() { this.check(); return { capacityBytes: 1 << 30, usedBytes: 0, freeBytes: 1 << 30, objects: this.objects.size }; }
}

const key = (ino: number, index = 0, version = 1): ChunkKey => ({ fsId: 7, ino, index, version });
const errOf = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as FsError);
async function metric(metricName: string, labels?: string): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${metricName}{${labels}}` : `${metricName} `));
  return line ? Number(line.split(' ').pop()) : 0;
}
async function until(fn: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('DataRouter with replicas', () => {
  let mem: MemNode[];
  let nodes: DataNode[];
  const holders = (k: ChunkKey) => mem.map((m, i) => (m.objects.has(name(k)) ? `ds-${i}` : '')).filter(Boolean);
  const byId = (id: string) => mem[Number(id.slice(3))];

  beforeEach(() => {
    mem = [0, 1, 2, 3, 4].map(() => new MemNode());
    nodes = mem.map((m, i) => ({ id: `ds-${i}`, service: m }));
  });

  it('puts each chunk on exactly the first R nodes in rendezvous order, spread over all nodes', async () => {
    for (const R of [2, 3]) {
      for (const m of mem) m.objects.clear();
      const r = new DataRouter(nodes, { replicas: R });
      expect(r.replicas).toBe(R);
      for (let ino = 0; ino < 100; ino++) await r.put(key(ino), Buffer.from(`d${ino}`));
      for (let ino = 0; ino < 100; ino++) {
        expect(holders(key(ino)).sort()).toEqual(r.order(key(ino)).slice(0, R).map((n) => n.id).sort());
        expect((await r.get(key(ino))).toString()).toBe(`d${ino}`);
      }
      // Every node holds a fair share: R*100 copies over 5 nodes.
      for (const m of mem) expect(m.objects.size).toBeGreaterThan((R * 100) / 5 / 2);
      expect((await r.stats()).objects).toBe(R * 100);
      // Deletes reach every copy.
      expect(await r.deleteInode(7, 3)).toBe(R);
      expect(await r.deleteMany([key(4), key(5)])).toBe(2 * R);
      await r.delete(key(6));
      expect((await r.stats()).objects).toBe(R * 96);
    }
  });

  it('with one replica behaves as before: one copy, and a corrupt copy is EIO even when another node has the key', async () => {
    const r = new DataRouter(nodes);
    expect(r.replicas).toBe(1);
    await r.put(key(1), Buffer.from('x'));
    expect(holders(key(1))).toEqual([r.order(key(1))[0].id]);
    const [owner, second] = r.order(key(1));
    byId(owner.id).corrupt.add(name(key(1)));
    byId(second.id).objects.set(name(key(1)), Buffer.from('x'));
    expect((await errOf(r.get(key(1))))?.errno).toBe(Errno.EIO);
    expect(byId(second.id).gets).toBe(0);
  });

  it('degraded write: fewer than R nodes up (or answering) stores on all that are, counts it, and reads back', async () => {
    const three = nodes.slice(0, 3);
    const r = new DataRouter(three.map((n) => (n.id === 'ds-1' ? { ...n, down: true } : n)), { replicas: 3 });
    const before = await metric('kurve_datastore_degraded_writes_total');
    await r.put(key(1), Buffer.from('deg'));
    expect(holders(key(1)).sort()).toEqual(['ds-0', 'ds-2']);
    expect(await metric('kurve_datastore_degraded_writes_total')).toBe(before + 1);
    // Not answering (the MDS has not noticed yet): the same, the node is tried and skipped.
    mem[2].dead = true;
    await r.put(key(2), Buffer.from('deg2'));
    expect(holders(key(2))).toEqual(['ds-0']);
    expect(await metric('kurve_datastore_degraded_writes_total')).toBe(before + 2);
    expect((await r.get(key(2))).toString()).toBe('deg2');
    // A full set of answering nodes is not degraded.
    const ok = new DataRouter(nodes.slice(3), { replicas: 2 });
    await ok.put(key(3), Buffer.from('full'));
    expect(await metric('kurve_datastore_degraded_writes_total')).toBe(before + 2);
    // No up node answers: the node the MDS calls down is the last resort (one copy), as with R = 1...
    mem[0].dead = true;
    await r.put(key(4), Buffer.from('last'));
    expect(holders(key(4))).toEqual(['ds-1']);
    // ...and with none answering at all the write fails.
    mem[1].dead = true;
    expect(await errOf(r.put(key(5), Buffer.from('none')))).toBeInstanceOf(DatastoreUnreachableError);
  });

  it('a node lost in the middle of a put is replaced by the next node in order; R copies still made', async () => {
    const r = new DataRouter(nodes, { replicas: 2 });
    const k = key(11);
    const order = r.order(k);
    byId(order[1].id).dieOnPut = true;
    const before = await metric('kurve_datastore_degraded_writes_total');
    await r.put(k, Buffer.from('moved'));
    expect(holders(k).sort()).toEqual([order[0].id, order[2].id].sort());
    expect(await metric('kurve_datastore_degraded_writes_total')).toBe(before);
    // The lost node is now suspect: the next write whose top two include it goes to the next one
    // without asking it first, and reads find every copy.
    const puts = byId(order[1].id).puts;
    const k2 = [...Array(200).keys()].map((i) => key(1000 + i)).find((x) => r.order(x).slice(0, 2).some((n) => n.id === order[1].id))!;
    await r.put(k2, Buffer.from('again'));
    expect(byId(order[1].id).puts).toBe(puts);
    expect(holders(k2)).toHaveLength(2);
    expect((await r.get(k)).toString()).toBe('moved');
    expect((await r.get(k2)).toString()).toBe('again');
  });

  it('a refused put (not a lost node) fails the write, as with one copy', async () => {
    const r = new DataRouter(nodes, { replicas: 2 });
    const k = key(12);
    const owner = byId(r.order(k)[0].id);
    owner.put = async () => { throw fsError('ENOSPC', 'disk full'); };
    expect((await errOf(r.put(k, Buffer.from('x'))))?.errno).toBe(Errno.ENOSPC);
  });

  it('reads from the second replica when the owner is down or not answering, at once', async () => {
    const r = new DataRouter(nodes, { replicas: 2 });
    for (let ino = 0; ino < 40; ino++) await r.put(key(ino), Buffer.from(`v${ino}`));
    const owners = [...Array(40).keys()].filter((ino) => r.order(key(ino))[0].id === 'ds-0');
    expect(owners.length).toBeGreaterThan(2);
    r.setNodes(nodes.map((n) => (n.id === 'ds-0' ? { ...n, down: true } : n)));
    for (const ino of owners) expect((await r.get(key(ino))).toString()).toBe(`v${ino}`);
    expect(mem[0].gets).toBe(0);
    r.setNodes(nodes);
    mem[0].dead = true;
    for (let ino = 0; ino < 40; ino++) expect((await r.get(key(ino), 1, 1)).toString()).toBe(`v${ino}`.slice(1, 2));
    // Both copies unreachable: EIO naming them, never ENOENT.
    const k = key(owners[0]);
    byId(r.order(k)[1].id).dead = true;
    const e = await errOf(r.get(k));
    expect(e?.errno).toBe(Errno.EIO);
    expect(e?.message).toMatch(/not on any reachable datastore; not reachable: .*ds-0/);
  });

  it('skips a corrupt replica and reads a good one; EIO only when no copy is good', async () => {
    const r = new DataRouter(nodes, { replicas: 3 });
    const k = key(21);
    await r.put(k, Buffer.from('good bytes'));
    const [a, b, c] = r.order(k).map((n) => byId(n.id));
    a.corrupt.add(name(k));
    expect((await r.get(k)).toString()).toBe('good bytes');
    expect(r.repairsInFlight).toBeLessThanOrEqual(1);
    await until(() => r.repairsInFlight === 0);
    // The corrupt copy was repaired from the good one.
    expect(a.corrupt.has(name(k))).toBe(false);
    expect(a.objects.get(name(k))?.toString()).toBe('good bytes');
    for (const x of [a, b, c]) x.corrupt.add(name(k));
    const e = await errOf(r.get(k));
    expect(e?.errno).toBe(Errno.EIO);
    expect(e?.message).toMatch(/no good copy on any reachable datastore/);
  });

  it('read repair: a copy found outside the first R is put back on those that lacked it', async () => {
    const r = new DataRouter(nodes, { replicas: 2 });
    const k = key(31);
    const order = r.order(k);
    // Written while the second node was down: the copies went to the 1st and 3rd.
    r.setNodes(nodes.map((n) => (n.id === order[1].id ? { ...n, down: true } : n)));
    await r.put(k, Buffer.from('0123456789'));
    expect(holders(k).sort()).toEqual([order[0].id, order[2].id].sort());
    // Back, and the owner is lost: a partial read is served by the 3rd and the 2nd gets a copy.
    r.setNodes(nodes);
    byId(order[0].id).dead = true;
    const repaired = await metric('kurve_datastore_read_repairs_total', 'result="ok"');
    expect((await r.get(k, 2, 3)).toString()).toBe('234');
    await until(() => r.repairsInFlight === 0);
    expect(byId(order[1].id).objects.get(name(k))?.toString()).toBe('0123456789');
    expect(await metric('kurve_datastore_read_repairs_total', 'result="ok"')).toBe(repaired + 1);
    // The owner (not answering) is not a repair target; a read now is served by the 2nd, no repair.
    expect((await r.get(k)).toString()).toBe('0123456789');
    expect(r.repairsInFlight).toBe(0);
    expect(await metric('kurve_datastore_read_repairs_total', 'result="ok"')).toBe(repaired + 1);
  });

  it('a missing chunk is ENOENT when every node answered', async () => {
    const r = new DataRouter(nodes, { replicas: 2 });
    expect((await errOf(r.get(key(99))))?.errno).toBe(Errno.ENOENT);
    expect(r.repairsInFlight).toBe(0);
    expect(() => new DataRouter(nodes, { replicas: 0 })).toThrow(/invalid replica count/);
  });
});
