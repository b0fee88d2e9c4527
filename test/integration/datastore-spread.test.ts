// Data spread over several datastores, with real processes: a dev cluster (etcd, MDS, metaserver)
// with three `kurve datastore`s and `kurve mount` clients through real FUSE mounts. Objects land on
// every datastore in roughly even shares and read back byte-exact from another mount; statfs sums
// the datastores; unlink removes objects from all; with one datastore killed new writes still
// succeed, reads of what it holds fail promptly with EIO, and everything reads back once it returns.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeIf, whyNoCommand, whyNoFuse } from '../helpers/privileged';
import { objectsOn, startTestCluster } from '../helpers/dev-cluster';
import { cleanupKurve, Daemon, kurveMount, waitFor } from '../helpers/kurve-mount';
import type { DevCluster } from '../../src/dev/cluster';
import { DataClient } from '../../src/datastore/client';
import { MdsClient } from '../../src/mds/client';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describeIf([whyNoCommand('etcd'), whyNoFuse()], 'data spread over datastores (real processes)', () => {
  let cluster: DevCluster;
  let mds: MdsClient;
  const mounts: Daemon[] = [];
  /** File name -> sha256 of what was written. */
  const written = new Map<string, string>();

  const mount = async (): Promise<Daemon> => {
    const d = await kurveMount({ rpcAddress: cluster.mdsList } as Daemon);
    mounts.push(d);
    return d;
  };
  const dsAddresses = () => cluster.addresses('datastore');

  async function writeFiles(mnt: string, prefix: string, n: number, size: (i: number) => number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const data = randomBytes(size(i));
      const name = `${prefix}${i}`;
      await fs.promises.writeFile(path.join(mnt, name), data);
      written.set(name, sha(data));
    }
  }

  async function datastoreHealthy(index: number, healthy: boolean): Promise<void> {
    const address = dsAddresses()[index];
    await waitFor(`datastore ${address} ${healthy ? 'healthy' : 'down'} at the MDS`, async () =>
      (await mds.listServers('datastore')).some((s) => s.address === address && s.healthy === healthy), 15_000, 100);
  }

  beforeAll(async () => {
    cluster = await startTestCluster({
      etcdMembers: 1, mds: 1, metaservers: 1, datastores: 3, heartbeatMs: 300,
      extraArgs: { metaserver: ['--unlink-grace', '1s'] },
    });
    mds = new MdsClient(cluster.mdsList, { budgetMs: 10_000 });
  }, 240_000);

  afterAll(async () => {
    mds?.close();
    await cleanupKurve();
    await cluster?.stop();
  }, 60_000);

  it('spreads objects over every datastore, reads them back from another mount, sums statfs, unlinks everywhere', async () => {
    const a = await mount();
    // 60 one-chunk files and 6 of three 4 MiB chunks each: 78 objects.
    await writeFiles(a.mountpoint, 'small-', 60, (i) => 1000 + i * 3331);
    await writeFiles(a.mountpoint, 'big-', 6, () => 9 * 1024 * 1024);
    const perNode = async () => Promise.all(dsAddresses().map(objectsOn));
    // (An early upload superseded at close is deleted in the background.)
    await waitFor('78 objects stored', async () => (await perNode()).flat().length === 78, 5000, 100);
    const lists = await perNode();
    for (const l of lists) expect(l.length).toBeGreaterThanOrEqual(13); // 26 each on average
    // The chunks of one file spread too.
    const bigInos = ['big-0', 'big-2', 'big-3', 'big-4', 'big-5'].map((n) => fs.statSync(path.join(a.mountpoint, n)).ino);
    const spread = bigInos.map((ino) => lists.filter((l) => l.some((o) => o.key.ino === ino)).length);
    expect(Math.max(...spread)).toBeGreaterThanOrEqual(2);

    const b = await mount();
    for (const [name, want] of written) expect(sha(await fs.promises.readFile(path.join(b.mountpoint, name)))).toBe(want);

    // statfs: the capacity of all three datastores (they share this disk: three times one).
    const client = new DataClient(dsAddresses()[0]);
    const one = await client.stats().finally(() => client.close());
    const st = fs.statfsSync(a.mountpoint);
    expect(st.blocks * st.bsize).toBeGreaterThan(2.9 * one.capacityBytes);
    expect(st.blocks * st.bsize).toBeLessThanOrEqual(3 * one.capacityBytes);

    // Unlink 20 files (and a big one) through the first mount: their objects go from every datastore.
    const gone = ['big-1', ...[...Array(20).keys()].map((i) => `small-${i}`)];
    const inos = new Set(gone.map((n) => fs.statSync(path.join(a.mountpoint, n)).ino));
    for (const n of gone) {
      await fs.promises.unlink(path.join(a.mountpoint, n));
      written.delete(n);
    }
    const left = async () => (await Promise.all(dsAddresses().map(objectsOn))).flat();
    await waitFor('objects of unlinked files deleted from every datastore', async () => !(await left()).some((o) => inos.has(o.key.ino)), 30_000, 200);
    expect((await left()).length).toBe(78 - 20 - 3);
  }, 180_000);

  it('with a datastore killed: writes keep working, reads of its chunks fail with EIO promptly, all read back once it returns', async () => {
    const [a] = mounts;
    const dead = dsAddresses()[0];
    const onDead = new Set((await objectsOn(dead)).map((o) => o.key.ino));
    expect(onDead.size).toBeGreaterThan(0);
    await cluster.kill('datastore', 0, 'SIGKILL');

    // At once (before the MDS notices) and once the MDS reports it down: writes succeed.
    let t0 = Date.now();
    await writeFiles(a.mountpoint, 'during-', 15, (i) => 2000 + i * 777);
    expect(Date.now() - t0).toBeLessThan(15_000);
    await datastoreHealthy(0, false);
    t0 = Date.now();
    await writeFiles(a.mountpoint, 'after-', 15, (i) => 3000 + i * 555);
    expect(Date.now() - t0).toBeLessThan(15_000);

    // A fresh mount (nothing cached): what the dead one holds is EIO, quickly; the rest reads back.
    const c = await mount();
    const failed: string[] = [];
    for (const [name, want] of written) {
      const file = path.join(c.mountpoint, name);
      const ino = fs.statSync(file).ino;
      const start = Date.now();
      const got = await fs.promises.readFile(file).then(sha, (err: NodeJS.ErrnoException) => err.code);
      expect(Date.now() - start).toBeLessThan(3000);
      if (onDead.has(ino)) {
        expect(got).toBe('EIO');
        failed.push(name);
      } else {
        expect(got).toBe(want);
      }
    }
    expect(failed.length).toBeGreaterThan(0);

    // Back (same id, same address): everything reads, including what was written meanwhile.
    await cluster.restart('datastore', 0);
    await datastoreHealthy(0, true);
    await waitFor('a chunk of the returned datastore readable again', async () =>
      fs.promises.readFile(path.join(c.mountpoint, failed[0])).then(() => true, () => false), 15_000, 200);
    for (const [name, want] of written) expect(sha(await fs.promises.readFile(path.join(c.mountpoint, name)))).toBe(want);
    // Nothing written while it was down went to it (the owner was skipped, not queued for).
    const outage = new Set([...written.keys()].filter((n) => /^(during|after)-/.test(n)).map((n) => fs.statSync(path.join(c.mountpoint, n)).ino));
    expect((await objectsOn(dead)).some((o) => outage.has(o.key.ino))).toBe(false);
  }, 180_000);
});
