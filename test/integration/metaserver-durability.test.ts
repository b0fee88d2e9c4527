// Crash durability: a create/rename/mkdir/unlink workload over gRPC against `kurve metaserver` in a
// child process, SIGKILLed mid-workload, restarted on the same --data. Every acknowledged op must
// be there (an op in flight at the kill may or may not be), and `kurve fsck` must be clean.
import * as fs from 'node:fs';
import { ROOT_INO } from '../../src/metaserver/api';
import { MetaClient } from '../../src/metaserver/client';
import { LmdbEngine } from '../../src/metaserver/engines/lmdb';
import { encodeDentry } from '../../src/metaserver/inode';
import { dentryKey } from '../../src/metaserver/keys';
import { errOf } from '../helpers/metaserver-suite';
import { tempDir } from '../helpers/metaserver';
import { ensureBuilt, MetaserverProcess, runFsck, spawnMetaserver } from '../helpers/metaserver-process';

const FS = 1;
const C = { uid: 0, gid: 0 };
const WORKERS = 12;

type Where = 'A' | 'B' | 'gone';
interface Tracked {
  readonly kind: 'file' | 'dir';
  name: string;
  ino: number;
  /** States the object may be in after the crash. */
  possible: Set<Where>;
}

describe('metaserver durability (kill -9)', () => {
  let dir: string;
  let proc: MetaserverProcess | undefined;
  let client: MetaClient | undefined;

  beforeAll(() => {
    ensureBuilt();
    dir = tempDir('kurve-dur-');
  }, 240_000);

  afterAll(async () => {
    client?.close();
    await proc?.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged op across a SIGKILL and fsck is clean', async () => {
    proc = await spawnMetaserver(['--listen', '127.0.0.1:0', '--data', dir, '--create-fs', String(FS)]);
    client = new MetaClient(proc.address, { deadlineMs: 3000 });
    const ms = client;
    const a = (await ms.mkdir(FS, ROOT_INO, Buffer.from('A'), 0o755, C)).ino;
    const b = (await ms.mkdir(FS, ROOT_INO, Buffer.from('B'), 0o755, C)).ino;
    const dirOf = (w: Where) => (w === 'A' ? a : b);

    const tracked: Tracked[] = [];
    let acked = 0;
    let stop = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const kind = i % 5 === 4 ? 'dir' : 'file';
        const t: Tracked = { kind, name: `w${w}-${i}`, ino: 0, possible: new Set<Where>(['gone', 'A']) };
        tracked.push(t);
        try {
          const attr = kind === 'dir'
            ? await ms.mkdir(FS, a, Buffer.from(t.name), 0o755, C)
            : await ms.mknod(FS, a, Buffer.from(t.name), 0o100644, 0, C);
          t.ino = attr.ino;
          t.possible = new Set(['A']);
          acked++;
          if (i % 2 === 0) {
            t.possible.add('B');
            await ms.rename(FS, a, Buffer.from(t.name), b, Buffer.from(t.name), 0, C);
            t.possible = new Set(['B']);
            acked++;
          }
          if (kind === 'file' && i % 3 === 0) {
            const where = [...t.possible][0];
            t.possible.add('gone');
            await ms.unlink(FS, dirOf(where), Buffer.from(t.name), C);
            t.possible = new Set(['gone']);
            acked++;
          }
        } catch {
          return; // the server is gone: this op stays uncertain
        }
      }
    };
    const running = Array.from({ length: WORKERS }, (_, w) => worker(w));
    // Kill once a few hundred ops were acknowledged (bounded by time on a slow machine).
    const deadline = Date.now() + 8000;
    while (acked < 400 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await proc.kill('SIGKILL');
    stop = true;
    await Promise.all(running);
    client.close();
    expect(acked).toBeGreaterThan(50);

    proc = await spawnMetaserver(['--listen', '127.0.0.1:0', '--data', dir]);
    client = new MetaClient(proc.address, { deadlineMs: 3000 });
    let checked = 0;
    for (const t of tracked) {
      const inA = await errOf(client.lookup(FS, a, Buffer.from(t.name)));
      const inB = await errOf(client.lookup(FS, b, Buffer.from(t.name)));
      const actual: Where = inA === 'OK' ? 'A' : inB === 'OK' ? 'B' : 'gone';
      expect(inA === 'OK' && inB === 'OK').toBe(false);
      if (!t.possible.has(actual)) throw new Error(`${t.kind} ${t.name}: expected one of ${[...t.possible].join('/')}, found ${actual}`);
      if (actual !== 'gone' && t.ino) expect((await client.lookup(FS, dirOf(actual), Buffer.from(t.name))).ino).toBe(t.ino);
      if (t.possible.size === 1) checked++;
    }
    expect(checked).toBeGreaterThan(40);
    // Directory link counts agree with what is there.
    const subdirs = async (ino: number) => (await client!.readdir(FS, ino, 0, 10_000, false)).entries.filter((e) => e.type === 0o040000).length;
    expect((await client.getattr(FS, a)).nlink).toBe(2 + (await subdirs(a)));
    expect((await client.getattr(FS, b)).nlink).toBe(2 + (await subdirs(b)));
    client.close();
    client = undefined;
    expect(await proc.kill('SIGTERM')).toBe(0);
    proc = undefined;

    const { status, report } = runFsck(dir);
    expect(report.issues).toEqual([]);
    expect(status).toBe(0);
    expect(report.dentries).toBeGreaterThan(2);
  }, 90_000);

  it('kurve fsck exits 1 on a broken store and --repair fixes it', async () => {
    // Offline damage: an entry pointing at an inode that does not exist.
    const engine = new LmdbEngine({ path: dir });
    await engine.txn({ puts: [{ key: dentryKey(FS, ROOT_INO, Buffer.from('ghost')), value: encodeDentry({ ino: 987_654, type: 0o100000, cookie: 9999 }) }] });
    await engine.close();
    const broken = runFsck(dir);
    expect(broken.status).toBe(1);
    expect(broken.report.issues.map((i) => i.kind)).toEqual(['dangling-dentry']);
    expect(runFsck(dir, true).status).toBe(0);
    const after = runFsck(dir);
    expect(after.report.issues).toEqual([]);
    expect(after.status).toBe(0);
  }, 60_000);
});
