// The etcd KV engine against a real etcd: the engine contract of src/metaserver/engine.ts (txn
// compares on mod revision / value / existence, revisions, ranges, prefixes) plus its watch.
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { useEtcd } from '../helpers/etcd';
import { createEtcdEngine, EtcdEngine, KvChangeBatch, metaPrefix } from '../../src/metaserver/engines/etcd';

const b = (s: string) => Buffer.from(s);

describeIf([whyNoCommand('etcd')], 'etcd KV engine', () => {
  const etcd = useEtcd({ members: 1 });
  let n = 0;
  const engines: EtcdEngine[] = [];
  async function engine(opts: { pageSize?: number; prefix?: string } = {}): Promise<EtcdEngine> {
    const e = await createEtcdEngine({ endpoints: etcd.cluster.endpoints, prefix: opts.prefix ?? `t${++n}/`, pageSize: opts.pageSize });
    engines.push(e);
    return e;
  }
  afterAll(async () => {
    await Promise.all(engines.map((e) => e.close()));
  });

  it('puts with increasing revisions; get returns value and modRevision; absent is undefined', async () => {
    const e = await engine();
    expect(await e.get(b('a'))).toBeUndefined();
    const r1 = await e.txn({ puts: [{ key: b('a'), value: b('1') }, { key: b('b'), value: b('2') }] });
    expect(r1.succeeded).toBe(true);
    const r2 = await e.txn({ puts: [{ key: b('a'), value: b('3') }] });
    expect(r2.revision).toBeGreaterThan(r1.revision);
    expect(await e.get(b('a'))).toEqual({ value: b('3'), modRevision: r2.revision });
    expect(await e.get(b('b'))).toEqual({ value: b('2'), modRevision: r1.revision });
    expect(await e.revision()).toBeGreaterThanOrEqual(r2.revision);
  });

  it('modRevision compares: 0 = must not exist; a stale revision fails and writes nothing', async () => {
    const e = await engine();
    const created = await e.txn({ compares: [{ key: b('k'), modRevision: 0 }], puts: [{ key: b('k'), value: b('v1') }] });
    expect(created.succeeded).toBe(true);
    const again = await e.txn({ compares: [{ key: b('k'), modRevision: 0 }], puts: [{ key: b('k'), value: b('v2') }] });
    expect(again.succeeded).toBe(false);
    const ok = await e.txn({
      compares: [{ key: b('k'), modRevision: created.revision }],
      puts: [{ key: b('k'), value: b('v3') }, { key: b('other'), value: b('x') }],
    });
    expect(ok.succeeded).toBe(true);
    const stale = await e.txn({
      compares: [{ key: b('k'), modRevision: created.revision }],
      puts: [{ key: b('k'), value: b('v4') }, { key: b('other2'), value: b('y') }],
    });
    expect(stale.succeeded).toBe(false);
    expect((await e.get(b('k')))?.value).toEqual(b('v3'));
    expect(await e.get(b('other2'))).toBeUndefined();
  });

  it('value compares: equal bytes hold, absent key fails, undefined = must not exist', async () => {
    const e = await engine();
    await e.txn({ puts: [{ key: b('v'), value: b('hello') }] });
    expect((await e.txn({ compares: [{ key: b('v'), value: b('hello') }], puts: [{ key: b('v'), value: b('x') }] })).succeeded).toBe(true);
    expect((await e.txn({ compares: [{ key: b('v'), value: b('hello') }], puts: [{ key: b('v'), value: b('y') }] })).succeeded).toBe(false);
    expect((await e.txn({ compares: [{ key: b('nope'), value: b('') }], puts: [{ key: b('z'), value: b('1') }] })).succeeded).toBe(false);
    expect((await e.txn({ compares: [{ key: b('nope'), value: undefined }], puts: [{ key: b('z'), value: b('1') }] })).succeeded).toBe(true);
    expect((await e.txn({ compares: [{ key: b('v'), value: undefined }], puts: [{ key: b('z'), value: b('2') }] })).succeeded).toBe(false);
    expect((await e.get(b('z')))?.value).toEqual(b('1'));
  });

  it('deletes apply atomically with puts; deleting an absent key is fine; a re-put gets a fresh revision', async () => {
    const e = await engine();
    const r1 = await e.txn({ puts: [{ key: b('d1'), value: b('1') }, { key: b('d2'), value: b('2') }] });
    const r2 = await e.txn({ deletes: [b('d1'), b('absent')], puts: [{ key: b('d3'), value: b('3') }] });
    expect(r2.succeeded).toBe(true);
    expect(await e.get(b('d1'))).toBeUndefined();
    const r3 = await e.txn({ compares: [{ key: b('d1'), modRevision: 0 }], puts: [{ key: b('d1'), value: b('again') }] });
    expect(r3.succeeded).toBe(true);
    expect(r3.revision).toBeGreaterThan(r2.revision);
    expect(r2.revision).toBeGreaterThan(r1.revision);
  });

  it('ranges: prefix, [start,end), open end, limit, reverse, binary keys in memcmp order, paging', async () => {
    const e = await engine({ pageSize: 3 });
    const keys = [b('p/a'), b('p/b'), b('p/c'), b('p/d'), b('p/e'), b('p/f'), b('p/g'), Buffer.from([0x70, 0x2f, 0xff]), b('q')];
    await e.txn({ puts: keys.map((k, i) => ({ key: k, value: Buffer.from([i]) })) });
    const all = await e.range({ prefix: b('p/') });
    expect(all.map((x) => x.key)).toEqual(keys.slice(0, 8));
    expect(all[7].value).toEqual(Buffer.from([7]));
    expect((await e.range({ start: b('p/b'), end: b('p/e') })).map((x) => x.key.toString())).toEqual(['p/b', 'p/c', 'p/d']);
    expect((await e.range({ start: b('p/g') })).map((x) => x.key)).toEqual([b('p/g'), Buffer.from([0x70, 0x2f, 0xff]), b('q')]);
    expect((await e.range({ prefix: b('p/'), limit: 4 })).map((x) => x.key.toString())).toEqual(['p/a', 'p/b', 'p/c', 'p/d']);
    const rev = await e.range({ prefix: b('p/'), reverse: true, limit: 5 });
    expect(rev.map((x) => x.key)).toEqual(keys.slice(3, 8).reverse());
    expect(await e.range({ prefix: b('nothing') })).toEqual([]);
    expect(await e.count({ prefix: b('p/') })).toBe(8);
    expect(await e.count({ start: b('p/b'), end: b('p/e') })).toBe(3);
    expect(await e.count({ start: b('') })).toBe(9);
  });

  it('concurrent gets (coalesced into read txns of up to 64) each get their own key, present or absent', async () => {
    const e = await engine();
    const r = await e.txn({ puts: Array.from({ length: 100 }, (_, i) => ({ key: b(`g/${i}`), value: b(`v${i}`) })) });
    const got = await Promise.all(Array.from({ length: 150 }, (_, i) => e.get(b(`g/${i}`))));
    got.forEach((v, i) => expect(v).toEqual(i < 100 ? { value: b(`v${i}`), modRevision: r.revision } : undefined));
  });

  it('prefixes isolate clusters sharing one etcd', async () => {
    const a = await engine({ prefix: metaPrefix('iso') });
    const c = await engine({ prefix: metaPrefix('iso2') });
    await a.txn({ puts: [{ key: b('k'), value: b('a') }] });
    await c.txn({ puts: [{ key: b('k'), value: b('c') }, { key: Buffer.from([0xff, 0xff]), value: b('end') }] });
    expect((await a.range({ prefix: b('') })).map((x) => x.key.toString())).toEqual(['k']);
    expect((await a.range({ start: b('') })).map((x) => x.key.toString())).toEqual(['k']);
    expect((await c.range({ start: b('') })).map((x) => x.key)).toEqual([b('k'), Buffer.from([0xff, 0xff])]);
    expect((await c.get(b('k')))?.value).toEqual(b('c'));
    expect(() => metaPrefix('a/b')).toThrow(/cluster name/);
  });

  it('watch delivers one batch per txn, in order, from a revision; close stops it', async () => {
    const e = await engine();
    const r0 = await e.txn({ puts: [{ key: b('w/0'), value: b('0') }] });
    const r1 = await e.txn({ puts: [{ key: b('w/1'), value: b('1') }, { key: b('w/2'), value: b('2') }] });
    const got: KvChangeBatch[] = [];
    const w = await e.watch(b('w/'), r0.revision, { batch: (x) => got.push(x), error: (err) => got.push({ revision: -1, changes: [{ key: b(err.message), value: undefined }] }) });
    const r2 = await e.txn({ deletes: [b('w/1')], puts: [{ key: b('x/notwatched'), value: b('') }] });
    const deadline = Date.now() + 3000;
    while (got.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await w.close();
    expect(got).toEqual([
      { revision: r1.revision, changes: [{ key: b('w/1'), value: b('1') }, { key: b('w/2'), value: b('2') }] },
      { revision: r2.revision, changes: [{ key: b('w/1'), value: undefined }] },
    ]);
  });

  it('a closed engine rejects calls; an unreachable etcd fails within the deadline, clearly', async () => {
    const e = await engine();
    await e.close();
    await expect(e.get(b('a'))).rejects.toThrow(/closed/);
    const t0 = Date.now();
    await expect(createEtcdEngine({ endpoints: '127.0.0.1:1', totalTimeoutMs: 1500, attemptTimeoutMs: 500 })).rejects.toThrow(/cannot reach etcd/);
    expect(Date.now() - t0).toBeLessThan(4000);
  });
});
