// The KvEngine contract on the lmdb engine (temp directory), plus its group commit.
import * as fs from 'node:fs';
import { LmdbEngine } from '../../src/metaserver/engines/lmdb';
import { engineSuite } from '../helpers/metaserver-engine-suite';
import { tempDir } from '../helpers/metaserver';

engineSuite('lmdb engine', async () => {
  const dir = tempDir('kurve-eng-');
  let engine = new LmdbEngine({ path: dir });
  return {
    engine,
    reopen: async () => {
      await engine.close();
      engine = new LmdbEngine({ path: dir });
      return engine;
    },
    close: async () => {
      await engine.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('lmdb engine group commit', () => {
  it('commits concurrent txns in shared batches and acknowledges each', async () => {
    const dir = tempDir('kurve-eng-');
    const e = new LmdbEngine({ path: dir });
    try {
      const res = await Promise.all(Array.from({ length: 200 }, (_, i) => e.txn({ puts: [{ key: Buffer.from(`k${i}`), value: Buffer.from([i & 0xff]) }] })));
      expect(new Set(res.map((r) => r.revision)).size).toBe(200);
      expect(await e.count({ prefix: Buffer.from('k') })).toBe(200);
      // A txn deciding against writes not yet on disk sees them (overlay).
      const a = e.txn({ puts: [{ key: Buffer.from('x'), value: Buffer.from('1') }] });
      const b = e.txn({ compares: [{ key: Buffer.from('x'), modRevision: 0 }], puts: [{ key: Buffer.from('x'), value: Buffer.from('2') }] });
      expect((await a).succeeded).toBe(true);
      expect((await b).succeeded).toBe(false);
    } finally {
      await e.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('refuses a key lmdb cannot store without stopping the engine', async () => {
    const dir = tempDir('kurve-eng-');
    const e = new LmdbEngine({ path: dir });
    try {
      await expect(e.txn({ puts: [{ key: Buffer.alloc(3000, 1), value: Buffer.alloc(1) }] })).rejects.toThrow('key of 3000 bytes');
      expect((await e.txn({ puts: [{ key: Buffer.from('ok'), value: Buffer.alloc(1) }] })).succeeded).toBe(true);
    } finally {
      await e.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it('refuses work after close', async () => {
    const dir = tempDir('kurve-eng-');
    const e = new LmdbEngine({ path: dir });
    await e.close();
    await expect(e.get(Buffer.from('a'))).rejects.toThrow('closed');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('lmdb engine bookkeeping', () => {
  it('a range over everything shows only KV entries', async () => {
    const dir = tempDir('kurve-eng-');
    const e = new LmdbEngine({ path: dir });
    try {
      await e.txn({ puts: [{ key: Buffer.from('a'), value: Buffer.from('1') }] });
      expect((await e.range({ start: Buffer.alloc(1) })).map((x) => x.key.toString())).toEqual(['a']);
    } finally {
      await e.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lmdb engine directory lock', () => {
  it('refuses a second engine on the same directory, allows it after close, takes over a dead owner', async () => {
    const dir = tempDir('kurve-eng-');
    const a = new LmdbEngine({ path: dir });
    expect(() => new LmdbEngine({ path: dir })).toThrow(`is in use by process ${process.pid}`);
    await a.close();
    const b = new LmdbEngine({ path: dir });
    await b.close();
    // A pid file left by a SIGKILLed process (a pid that cannot exist).
    fs.writeFileSync(`${dir}/kurve-engine.pid`, '2147483646\n');
    const c = new LmdbEngine({ path: dir });
    await c.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('lmdb engine overlay ranges', () => {
  it('merges writes not yet on disk in byte order, deletes included', async () => {
    const dir = tempDir('kurve-eng-');
    const e = new LmdbEngine({ path: dir });
    try {
      const k = (...bytes: number[]) => Buffer.from(bytes);
      await e.txn({ puts: [k(1, 0x10), k(1, 0x90), k(1, 0xf0)].map((key) => ({ key, value: Buffer.from('disk') })) });
      // Not awaited: these sit in the overlay while the range runs.
      const pending = e.txn({ puts: [{ key: k(1, 0x80), value: Buffer.from('new') }, { key: k(1, 0xff), value: Buffer.from('new') }], deletes: [k(1, 0x90)] });
      const got = await e.range({ prefix: k(1) });
      expect(got.map((x) => x.key[1])).toEqual([0x10, 0x80, 0xf0, 0xff]);
      expect((await e.range({ prefix: k(1), limit: 2 })).map((x) => x.key[1])).toEqual([0x10, 0x80]);
      expect((await e.range({ start: k(1, 0x81), end: k(1, 0xff) })).map((x) => x.key[1])).toEqual([0xf0]);
      await pending;
      expect((await e.range({ prefix: k(1) })).map((x) => x.key[1])).toEqual([0x10, 0x80, 0xf0, 0xff]);
    } finally {
      await e.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
