// Chunk replication with real processes: a dev cluster (etcd, MDS, metaserver) with three
// `kurve datastore`s, a file system made by `kurve fs create --replicas 2`, and `kurve mount`
// clients through real FUSE mounts. Every chunk object lands on exactly two datastores; with one
// datastore killed (kill -9) every file still reads back byte-exact from a fresh mount (cold
// cache), writes keep making two copies on the two left, and it rejoins after a restart.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeIf, whyNoCommand, whyNoFuse } from '../helpers/privileged';
import { objectsOn, startTestCluster } from '../helpers/dev-cluster';
import { cleanupKurve, Daemon, kurveMount, waitFor } from '../helpers/kurve-mount';
import { CLI } from '../helpers/metaserver-process';
import type { DevCluster } from '../../src/dev/cluster';
import { MdsClient } from '../../src/mds/client';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FS = 'rep2';

/** The built CLI (`kurve fs`, `kurve status`: the test helper's source-mode CLI has only the mount commands), to completion. */
function kurveRun(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

describeIf([whyNoCommand('etcd'), whyNoFuse()], 'chunk replication over datastores (real processes)', () => {
  let cluster: DevCluster;
  let mds: MdsClient;
  const written = new Map<string, string>();

  const mount = async (): Promise<Daemon> => kurveMount({ rpcAddress: cluster.mdsList } as Daemon, { args: ['--no-bpf', '--fs', FS] });
  const dsAddresses = () => cluster.addresses('datastore');

  /** Object key -> how many of the given datastores hold it. */
  async function copies(addresses: string[]): Promise<Map<string, number>> {
    const count = new Map<string, number>();
    for (const l of await Promise.all(addresses.map(objectsOn))) {
      for (const o of l) {
        const k = `${o.key.fsId}/${o.key.ino}/${o.key.index}.${o.key.version}`;
        count.set(k, (count.get(k) ?? 0) + 1);
      }
    }
    return count;
  }

  async function writeFiles(mnt: string, prefix: string, n: number, size: (i: number) => number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const data = randomBytes(size(i));
      await fs.promises.writeFile(path.join(mnt, `${prefix}${i}`), data);
      written.set(`${prefix}${i}`, sha(data));
    }
  }

  async function datastoreHealthy(index: number, healthy: boolean): Promise<void> {
    const address = dsAddresses()[index];
    await waitFor(`datastore ${address} ${healthy ? 'healthy' : 'down'} at the MDS`, async () =>
      (await mds.listServers('datastore')).some((s) => s.address === address && s.healthy === healthy), 15_000, 100);
  }

  beforeAll(async () => {
    cluster = await startTestCluster({ etcdMembers: 1, mds: 1, metaservers: 1, datastores: 3, heartbeatMs: 300 });
    mds = new MdsClient(cluster.mdsList, { budgetMs: 10_000 });
  }, 240_000);

  afterAll(async () => {
    mds?.close();
    await cleanupKurve();
    await cluster?.stop();
  }, 60_000);

  it('kurve fs create --replicas: validated, stored, shown by fs list and status', () => {
    for (const bad of ['0', '6', '1.5', 'two']) {
      const r = kurveRun(['fs', 'create', `bad${bad.replace(/\W/g, '')}`, '--replicas', bad, '--mds', cluster.mdsList]);
      expect(r.status).toBe(1);
      expect(r.err).toMatch(/invalid --replicas .*integer from 1 to 5/);
    }
    const made = kurveRun(['fs', 'create', FS, '--replicas', '2', '--mds', cluster.mdsList]);
    expect(made.err).toBe('');
    expect(made.out).toMatch(new RegExp(`created file system "${FS}" .*replicas 2`));
    const list = kurveRun(['fs', 'list', '--mds', cluster.mdsList]).out.split('\n');
    expect(list[0]).toMatch(/^ID\s+NAME\s+CHUNK SIZE\s+REPLICAS\s+CREATED/);
    expect(list.find((l) => l.includes(` ${FS} `))).toMatch(/4 MiB\s+2\s/);
    expect(list.find((l) => l.includes(` ${cluster.fsName} `))).toMatch(/4 MiB\s+1\s/);
    const json = JSON.parse(kurveRun(['fs', 'list', '--json', '--mds', cluster.mdsList]).out) as Array<{ name: string; replicas: number }>;
    expect(json.find((f) => f.name === FS)?.replicas).toBe(2);
    expect(kurveRun(['status', '--mds', cluster.mdsList]).out).toMatch(new RegExp(`${FS}\\s+id \\d+\\s+chunk 4 MiB\\s+replicas 2`));
  }, 120_000);

  it('stores every chunk on exactly two datastores; with one killed every file reads back from a cold mount', async () => {
    const a = await mount();
    // 40 one-chunk files and 4 of three 4 MiB chunks each: 52 objects, 104 copies.
    await writeFiles(a.mountpoint, 'small-', 40, (i) => 1000 + i * 4111);
    await writeFiles(a.mountpoint, 'big-', 4, () => 9 * 1024 * 1024);
    const all = dsAddresses();
    // (An early upload superseded at close is deleted in the background.)
    await waitFor('104 copies stored', async () => [...(await copies(all)).values()].reduce((x, y) => x + y, 0) === 104, 10_000, 100);
    const placed = await copies(all);
    expect(placed.size).toBe(52);
    for (const n of placed.values()) expect(n).toBe(2);
    const perNode = await Promise.all(all.map(async (x) => (await objectsOn(x)).length));
    for (const n of perNode) expect(n).toBeGreaterThanOrEqual(20); // ~35 each
    await a.stop();

    const dead = all[0];
    const onDead = (await objectsOn(dead)).length;
    expect(onDead).toBeGreaterThan(0);
    await cluster.kill('datastore', 0, 'SIGKILL');

    // At once, before the MDS notices: a fresh mount reads everything (the dead one is skipped).
    const b = await mount();
    for (const [name, want] of written) {
      const start = Date.now();
      expect(sha(await fs.promises.readFile(path.join(b.mountpoint, name)))).toBe(want);
      expect(Date.now() - start).toBeLessThan(5000);
    }
    await b.stop();

    // Once the MDS reports it down: writes make two copies on the two left (not degraded).
    await datastoreHealthy(0, false);
    const c = await mount();
    await writeFiles(c.mountpoint, 'during-', 10, (i) => 5000 + i * 999);
    const left = all.slice(1);
    const during = new Set([...written.keys()].filter((n) => n.startsWith('during-')).map((n) => fs.statSync(path.join(c.mountpoint, n)).ino));
    await waitFor('the new files on both live datastores', async () => {
      const l = await Promise.all(left.map(objectsOn));
      return l.every((objs) => objs.filter((o) => during.has(o.key.ino)).length === during.size);
    }, 10_000, 100);
    expect(await c.metric('kurve_datastore_degraded_writes_total')).toBe(0);
    await c.stop();

    // Another cold mount still reads all of it, old and new.
    const d = await mount();
    for (const [name, want] of written) expect(sha(await fs.promises.readFile(path.join(d.mountpoint, name)))).toBe(want);

    // Back (same id, same address): it still holds its copies, and everything reads.
    await cluster.restart('datastore', 0);
    await datastoreHealthy(0, true);
    expect((await objectsOn(dead)).length).toBe(onDead);
    for (const [name, want] of written) expect(sha(await fs.promises.readFile(path.join(d.mountpoint, name)))).toBe(want);
    await d.stop();
  }, 240_000);
});
