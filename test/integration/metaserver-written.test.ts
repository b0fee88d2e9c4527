// The lmdb engine's 'written' durability mode (embedded `kurve up`): acknowledged creates survive
// a kill -9 of the process that made them (journal in the page cache, lmdb commits paced), fsck
// is clean after the replay, and Namespace.flush() makes changes durable without the pacing wait.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startRpcServer } from '../../src/common/rpc';
import { ROOT_INO } from '../../src/metaserver/api';
import { MetaClient } from '../../src/metaserver/client';
import { LmdbEngine } from '../../src/metaserver/engines/lmdb';
import { fsck } from '../../src/metaserver/fsck';
import { Namespace } from '../../src/metaserver/namespace';
import { metaserverRpcService } from '../../src/metaserver/service';
import { grpcTarget, inProcessTarget, tempDir } from '../helpers/metaserver';
import { namespaceSuite } from '../helpers/metaserver-suite';
import { spawnWrittenChild } from '../helpers/metaserver-written-child';

const C = { uid: 0, gid: 0 };

namespaceSuite('namespace in-process (lmdb, written durability)', () => inProcessTarget({}, { durability: 'written', commitIntervalMs: 20 }));

describe("lmdb 'written' durability across kill -9", () => {
  it('keeps every acknowledged create after SIGKILL of the child that made them', async () => {
    const dir = tempDir('kurve-written-');
    // A long interval: at the kill, most acknowledged creates exist only in the journal.
    const child = spawnWrittenChild(dir, 2000);
    try {
      const acked = new Map<number, number>();
      let err = '';
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, sig) => resolve(sig)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child made ${acked.size} creates in 20 s: ${err}`)), 20_000);
        let buf = '';
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          const lines = buf.split('\n');
          buf = lines.pop()!;
          for (const l of lines) {
            const m = /^acked (\d+) (\d+)$/.exec(l);
            if (m) acked.set(Number(m[1]), Number(m[2]));
          }
          if (acked.size >= 400) {
            clearTimeout(timer);
            child.kill('SIGKILL'); // acks printed after this point are still checked below
            resolve();
          }
        });
        void exited.then(() => reject(new Error(`child exited early: ${err}`)));
      }).catch((e: Error) => {
        child.kill('SIGKILL');
        throw e;
      });
      expect(await exited).toBe('SIGKILL');
      const journal = ['kurve-journal-0', 'kurve-journal-1'].reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
      expect(journal).toBeGreaterThan(0); // the replay below is what keeps the acks

      const engine = new LmdbEngine({ path: dir }); // 'sync' mode: replays the journal too
      const ns = await Namespace.open(engine, { runGc: false });
      try {
        for (const [i, ino] of acked) expect((await ns.lookup(1, ROOT_INO, Buffer.from(`f${i}`))).ino).toBe(ino);
        const report = await fsck(engine);
        expect(report.issues).toEqual([]);
        expect(fs.existsSync(path.join(dir, 'kurve-journal-0'))).toBe(false); // replayed, then dropped
      } finally {
        await ns.close();
        await engine.close();
      }
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("Namespace.flush in 'written' mode", () => {
  it('acknowledges creates before the paced commit and flush() makes them durable at once', async () => {
    const t = await inProcessTarget({ runGc: false }, { durability: 'written', commitIntervalMs: 60_000 });
    try {
      const fsId = await t.newFs();
      await t.ns.flush(fsId); // the createFs commit
      const start = Date.now();
      const names = Array.from({ length: 50 }, (_, i) => Buffer.from(`n${i}`));
      for (const n of names) await t.ns.mknod(fsId, ROOT_INO, n, 0o100644, 0, C);
      expect(Date.now() - start).toBeLessThan(5000); // not one 60 s commit interval per create
      expect(t.engine.durableRevision()).toBeLessThan(await t.engine.revision());
      await t.ns.flush(fsId);
      expect(Date.now() - start).toBeLessThan(10_000);
      expect(t.engine.durableRevision()).toBe(await t.engine.revision());
      await expect(t.ns.flush(99_999)).rejects.toMatchObject({ errno: expect.anything() });
    } finally {
      await t.close();
    }
  }, 30_000);
});

describe('Flush RPC', () => {
  it("makes a 'written'-mode namespace served over gRPC (as `kurve up` does) durable", async () => {
    const t = await inProcessTarget({ runGc: false }, { durability: 'written', commitIntervalMs: 60_000 });
    const server = await startRpcServer('127.0.0.1:0', [metaserverRpcService(t.ns)]);
    const client = new MetaClient(server.address, { deadlineMs: 5000 });
    try {
      const fsId = await t.newFs();
      await client.flush(fsId);
      for (let i = 0; i < 20; i++) await client.mknod(fsId, ROOT_INO, Buffer.from(`r${i}`), 0o100644, 0, C);
      expect(t.engine.durableRevision()).toBeLessThan(await t.engine.revision());
      await client.flush(fsId);
      expect(t.engine.durableRevision()).toBe(await t.engine.revision());
      await expect(client.flush(99_999)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      client.close();
      await server.close(1000);
      await t.close();
    }
  }, 30_000);

  it("is a no-op on `kurve metaserver` ('sync': acknowledged means durable)", async () => {
    const t = await grpcTarget();
    try {
      const fsId = await t.newFs();
      await t.client.mknod(fsId, ROOT_INO, Buffer.from('s'), 0o100644, 0, C);
      expect(t.server.engine.durableRevision()).toBe(await t.server.engine.revision()); // synced ack
      await t.client.flush(fsId);
      await expect(t.client.flush(99_999)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await t.close();
    }
  }, 30_000);
});
