// The stray-object sweep: datastore objects no chunk map references (a client uploaded and died
// before committing) are deleted once older than the stray grace — never a referenced object, one
// a GC item still waits on, or an upload still in flight; a commit of a version below the sweep's
// floor is refused (ESTALE) so nothing can come to reference a deleted object. In-process against
// a real chunk store, then as real processes (`kurve datastore` + `kurve metaserver`) over gRPC.
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { ChunkStore } from '../../src/datastore/chunk-store';
import { DataClient } from '../../src/datastore/client';
import type { ChunkKey, DataService } from '../../src/datastore/api';
import { ROOT_INO } from '../../src/metaserver/api';
import { MetaClient } from '../../src/metaserver/client';
import { fsck } from '../../src/metaserver/fsck';
import { errOf } from '../helpers/metaserver-suite';
import { inProcessTarget, tempDir } from '../helpers/metaserver';
import { CLI, ensureBuilt, spawnMetaserver, MetaserverProcess } from '../helpers/metaserver-process';

const C = { uid: 0, gid: 0 };
const GRACE = 1500;
const exists = async (ds: DataService, key: ChunkKey): Promise<boolean> => (await errOf(ds.get(key))) === 'OK';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('stray-object sweep, in process with a real chunk store', () => {
  let dsDir: string;
  let store: ChunkStore;
  let t: Awaited<ReturnType<typeof inProcessTarget>>;

  beforeAll(async () => {
    dsDir = tempDir('kurve-sweep-ds-');
    store = await ChunkStore.open(dsDir);
    t = await inProcessTarget({ datastore: store, gcGraceMs: 60_000, strayGraceMs: GRACE, runGc: false });
  });
  afterAll(async () => {
    await t?.close();
    await store?.close();
    fs.rmSync(dsDir, { recursive: true, force: true });
  });

  it('deletes only unreferenced objects older than the grace; refuses late commits of swept versions', async () => {
    const fsId = await t.newFs();
    const f = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('f'), 0o100644, 0, C);
    const g = await t.ns.mknod(fsId, ROOT_INO, Buffer.from('g'), 0o100644, 0, C);
    const v = await t.ns.allocChunkVersions(fsId, 4);
    const committed = { fsId, ino: f.ino, index: 0, version: v };
    const stray = { fsId, ino: f.ino, index: 1, version: v + 1 }; // uploaded, the client died before its commit
    const orphanStray = { fsId, ino: 987_654, index: 0, version: v + 2 }; // of an inode that never got committed
    const replaced = { fsId, ino: g.ino, index: 0, version: v + 3 };
    for (const k of [committed, stray, orphanStray, replaced]) await store.put(k, Buffer.from('bytes'));
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 5 }], size: 5, touch: true });
    await t.ns.commitData(fsId, g.ino, { chunks: [{ index: 0, version: v + 3, length: 5 }], size: 5, touch: true });

    expect(await t.ns.sweepStrays()).toBe(0); // the first pass only takes a mark
    await sleep(GRACE + 200);
    // After the mark: an upload in flight (allocated and put, not committed yet), and g's chunk
    // replaced (the old object waits out the reader grace in the GC queue, not the sweep's business).
    const w = await t.ns.allocChunkVersions(fsId, 2);
    const inFlight = { fsId, ino: f.ino, index: 2, version: w };
    await store.put(inFlight, Buffer.from('new'));
    await store.put({ fsId, ino: g.ino, index: 0, version: w + 1 }, Buffer.from('g2'));
    await t.ns.commitData(fsId, g.ino, { chunks: [{ index: 0, version: w + 1, length: 2 }], size: 2, touch: true });

    expect(await t.ns.sweepStrays()).toBe(2);
    expect([await exists(store, stray), await exists(store, orphanStray)]).toEqual([false, false]);
    expect([await exists(store, committed), await exists(store, replaced), await exists(store, inFlight)]).toEqual([true, true, true]);
    // The dead client's version can never be committed now; the live upload can.
    expect(await errOf(t.ns.commitData(fsId, f.ino, { chunks: [{ index: 1, version: v + 1, length: 5 }], size: 9, touch: true }))).toBe('ESTALE');
    const a = await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 2, version: w, length: 3 }], size: 3 * 4 * 1024 * 1024, touch: true });
    expect(a.size).toBe(3 * 4 * 1024 * 1024);
    // Re-committing a reference that is already there stays fine (a retried commit).
    await t.ns.commitData(fsId, f.ino, { chunks: [{ index: 0, version: v, length: 5 }], size: a.size, touch: true });
    expect(await t.ns.sweepStrays()).toBe(0);
    expect((await fsck(t.engine)).issues).toEqual([]);
  });
});

/** `kurve datastore` on a free port; resolves with its address once it listens. */
async function spawnDatastore(dir: string): Promise<{ child: ChildProcess; address: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'datastore', '--dir', dir, '--listen', '127.0.0.1:0', '--metrics', ''], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`datastore did not start: ${err}`));
    }, 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (\S+?),? /.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then(() => reject(new Error(`datastore exited: ${err}`)));
  });
  return {
    child,
    address,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

describe('stray-object sweep, kurve metaserver and kurve datastore processes', () => {
  let dsProc: Awaited<ReturnType<typeof spawnDatastore>> | undefined;
  let msProc: MetaserverProcess | undefined;
  let meta: MetaClient | undefined;
  let data: DataClient | undefined;
  const dirs: string[] = [];

  beforeAll(async () => {
    ensureBuilt();
    const dsDir = tempDir('kurve-sweep-dsp-');
    const msDir = tempDir('kurve-sweep-msp-');
    dirs.push(dsDir, msDir);
    dsProc = await spawnDatastore(dsDir);
    msProc = await spawnMetaserver(['--listen', '127.0.0.1:0', '--data', msDir, '--create-fs', '1', '--datastore', dsProc.address,
      '--stray-grace', '2s', '--sweep-interval', '300ms']);
    meta = new MetaClient(msProc.address, { deadlineMs: 5000 });
    data = new DataClient(dsProc.address);
  }, 60_000);
  afterAll(async () => {
    meta?.close();
    data?.close();
    await msProc?.kill('SIGTERM');
    await dsProc?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('an object a dead client uploaded is deleted after the grace; committed data stays', async () => {
    const f = await meta!.mknod(1, ROOT_INO, Buffer.from('kept'), 0o100644, 0, C);
    const v = await meta!.allocChunkVersions(1, 2);
    const kept = { fsId: 1, ino: f.ino, index: 0, version: v };
    const stray = { fsId: 1, ino: f.ino, index: 1, version: v + 1 };
    await data!.put(kept, Buffer.from('committed'));
    await data!.put(stray, Buffer.from('never committed'));
    await meta!.commitData(1, f.ino, { chunks: [{ index: 0, version: v, length: 9 }], size: 9, touch: true });
    const t0 = Date.now();
    while (await exists(data!, stray)) {
      if (Date.now() - t0 > 15_000) throw new Error('the stray object was not deleted within 15 s');
      await sleep(200);
    }
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect((await data!.get(kept)).toString()).toBe('committed');
    // Over gRPC too, a late commit of the swept version is refused with ESTALE.
    expect(await errOf(meta!.commitData(1, f.ino, { chunks: [{ index: 1, version: v + 1, length: 15 }], size: 9 + 4 * 1024 * 1024, touch: true }))).toBe('ESTALE');
  }, 30_000);
});
