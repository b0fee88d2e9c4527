// Background re-replication with real processes: a dev cluster (etcd, MDS, metaserver) with three
// `kurve datastore`s and a file system made with --replicas 2, written through a real mount.
// After one datastore is killed (kill -9), `kurve repair` puts every live chunk object back on two
// live datastores, and objects of a file deleted meanwhile are not brought back; the background
// pass (--repair-interval) restores objects deleted from a datastore's directory; a referenced
// object on no live datastore is reported lost (exit status 2). Every file reads back byte-exact
// from a cold mount after each repair.
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeIf, whyNoCommand, whyNoFuse } from '../helpers/privileged';
import { objectsOn, startTestCluster } from '../helpers/dev-cluster';
import { cleanupKurve, Daemon, kurveMount, sumMetric, waitFor } from '../helpers/kurve-mount';
import { CLI } from '../helpers/metaserver-process';
import type { DevCluster } from '../../src/dev/cluster';
import type { ChunkKey } from '../../src/datastore/api';
import { MdsClient } from '../../src/mds/client';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const FS = 'rep2';
const keyName = (k: ChunkKey) => `${k.fsId}/${k.ino}/${k.index}.${k.version}`;

/** The built CLI (the test helper's source-mode CLI has only the mount commands), to completion. */
function kurveRun(args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout, err: r.stderr };
}

/** The file of an object in a `kurve datastore --dir` (objects/fs/ino%256/ino/256%256/ino/index.version). */
function objectFile(dir: string, k: ChunkKey): string {
  const lo = (k.ino % 256).toString(16).padStart(2, '0');
  const hi = (Math.floor(k.ino / 256) % 256).toString(16).padStart(2, '0');
  return path.join(dir, 'objects', String(k.fsId), lo, hi, String(k.ino), `${k.index}.${k.version}`);
}

describeIf([whyNoCommand('etcd'), whyNoFuse()], 'background re-replication (real processes)', () => {
  let cluster: DevCluster;
  let mds: MdsClient;
  let fsId: number;
  const written = new Map<string, string>();

  const mount = async (): Promise<Daemon> => kurveMount({ rpcAddress: cluster.mdsList } as Daemon, { args: ['--no-bpf', '--fs', FS] });
  const dsAddresses = () => cluster.addresses('datastore');
  const dsDir = (i: number) => path.join(cluster.dir, `datastore${i}`);
  const repair = (...more: string[]) => kurveRun(['repair', '--fs', FS, '--mds', cluster.mdsList, ...more]);

  /** Object key -> on which of the given datastores (only this test's file system). */
  async function placement(addresses: string[]): Promise<Map<string, string[]>> {
    const on = new Map<string, string[]>();
    const lists = await Promise.all(addresses.map(objectsOn));
    lists.forEach((l, i) => {
      for (const o of l.filter((x) => x.key.fsId === fsId)) on.set(keyName(o.key), [...(on.get(keyName(o.key)) ?? []), addresses[i]]);
    });
    return on;
  }

  async function writeFiles(mnt: string, prefix: string, n: number, size: (i: number) => number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const data = randomBytes(size(i));
      await fs.promises.writeFile(path.join(mnt, `${prefix}${i}`), data);
      written.set(`${prefix}${i}`, sha(data));
    }
  }

  async function readAllCold(): Promise<void> {
    const m = await mount();
    try {
      for (const [file, want] of written) expect(sha(await fs.promises.readFile(path.join(m.mountpoint, file)))).toBe(want);
    } finally {
      await m.stop();
    }
  }

  async function metaserverMetric(metric: string, labels?: string): Promise<number> {
    const res = await fetch(`http://${cluster.list('metaserver')[0].metrics}/metrics`);
    return sumMetric(await res.text(), metric, labels);
  }

  beforeAll(async () => {
    cluster = await startTestCluster({
      etcdMembers: 1, mds: 1, metaservers: 1, datastores: 3, heartbeatMs: 300,
      // Passes only on request at first; the background pass is switched on below.
      extraArgs: { metaserver: ['--repair-interval', '0', '--unlink-grace', '1s', '--gc-grace', '2s'] },
    });
    mds = new MdsClient(cluster.mdsList, { budgetMs: 10_000 });
    const made = kurveRun(['fs', 'create', FS, '--replicas', '2', '--mds', cluster.mdsList]);
    expect(made.err).toBe('');
    fsId = (await mds.getFs(FS)).fsId;
  }, 240_000);

  afterAll(async () => {
    mds?.close();
    await cleanupKurve();
    await cluster?.stop();
  }, 60_000);

  it('kurve repair --help explains it; a pass with every copy in place copies nothing', () => {
    const help = kurveRun(['repair', '--help']);
    expect(help.status).toBe(0);
    expect(help.out).toMatch(/--fs <name>/);
    expect(help.out).toMatch(/--repair-interval/);
    expect(help.out).toMatch(/Exit status: 0 all copies in place; 1 some copies failed .*; 2 some objects are lost/s);
    const r = repair('--json');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ fs: [FS], checked: 0, underReplicated: 0, copied: 0, failed: 0, lost: 0 });
    const single = kurveRun(['repair', '--fs', cluster.fsName, '--mds', cluster.mdsList]);
    expect(single.status).toBe(0);
    expect(single.out).toMatch(/keeps 1 copy of each chunk: nothing to re-replicate/);
    const none = kurveRun(['repair', '--fs', 'nosuch', '--mds', cluster.mdsList]);
    expect(none.status).toBe(1);
    expect(none.err).toMatch(/no file system named "nosuch"/);
  }, 60_000);

  it('after kill -9 of a datastore, kurve repair puts every live object back on two live datastores, not a deleted file\'s', async () => {
    const a = await mount();
    // 30 one-chunk files and 3 of three 4 MiB chunks: 39 objects; 3 more files deleted later.
    await writeFiles(a.mountpoint, 'small-', 30, (i) => 1000 + i * 4111);
    await writeFiles(a.mountpoint, 'big-', 3, () => 9 * 1024 * 1024);
    const victims = ['victim-0', 'victim-1', 'victim-2'];
    for (const v of victims) await fs.promises.writeFile(path.join(a.mountpoint, v), randomBytes(200_000));
    const victimInos = new Set(victims.map((v) => fs.statSync(path.join(a.mountpoint, v)).ino));
    const all = dsAddresses();
    await waitFor('42 objects with two copies each', async () => {
      const p = await placement(all);
      return p.size === 42 && [...p.values()].every((on) => on.length === 2);
    }, 15_000, 100);
    await a.stop();

    const before = await placement(all);
    const dead = all[0];
    const live = all.slice(1);
    const keep = [...before.keys()].filter((k) => !victimInos.has(Number(k.split('/')[1])));
    const lostACopy = keep.filter((k) => before.get(k)!.includes(dead)).length;
    expect(lostACopy).toBeGreaterThan(5); // ~2/3 of 39
    await cluster.kill('datastore', 0, 'SIGKILL');
    await waitFor('datastore 0 down at the MDS', async () =>
      (await mds.listServers('datastore')).some((s) => s.address === dead && !s.healthy), 15_000, 100);

    // Deleted while the datastore is down: GC deletes its objects from the live ones.
    const b = await mount();
    for (const v of victims) await fs.promises.unlink(path.join(b.mountpoint, v));
    await b.stop();
    await waitFor('the deleted files\' objects gone from the live datastores', async () =>
      ![...(await placement(live)).keys()].some((k) => victimInos.has(Number(k.split('/')[1]))), 30_000, 200);

    const r = repair();
    expect(r.err).toBe('');
    expect(r.status).toBe(0);
    expect(r.out).toMatch(new RegExp(`checked\\s+${keep.length}\\n`));
    expect(r.out).toMatch(new RegExp(`under-replicated\\s+${lostACopy}\\n`));
    expect(r.out).toMatch(new RegExp(`copied\\s+${lostACopy}\\n`));
    expect(r.out).toMatch(/failed\s+0\n/);
    expect(r.out).toMatch(/lost\s+0\n/);

    // Every live object on both live datastores, and nothing else there (no victim brought back).
    const after = await placement(live);
    expect([...after.keys()].sort()).toEqual([...keep].sort());
    for (const on of after.values()) expect(on.sort()).toEqual([...live].sort());
    expect(await metaserverMetric('kurve_metaserver_repair_copies_total', 'result="ok"')).toBe(lostACopy);

    // A second pass finds nothing to do.
    const again = JSON.parse(repair('--json').out) as Record<string, number>;
    expect(again).toMatchObject({ checked: keep.length, underReplicated: 0, copied: 0, lost: 0 });

    await readAllCold();
  }, 240_000);

  it('the background pass restores objects deleted from a datastore\'s directory', async () => {
    const svc = cluster.list('metaserver')[0];
    await cluster.kill('metaserver', 0, 'SIGTERM');
    svc.args.push('--repair-interval', '1s');
    await cluster.restart('metaserver', 0);
    const live = dsAddresses().slice(1);
    const objs = (await objectsOn(live[0])).filter((o) => o.key.fsId === fsId);
    const gone = objs.slice(0, 12);
    for (const o of gone) fs.rmSync(objectFile(dsDir(1), o.key));
    expect((await placement(live)).size).toBe(objs.length);
    expect([...(await placement(live)).values()].filter((on) => on.length === 1).length).toBe(gone.length);
    await waitFor('every object on both live datastores again', async () =>
      [...(await placement(live)).values()].every((on) => on.length === 2), 30_000, 250);
    await waitFor('copies counted', async () => (await metaserverMetric('kurve_metaserver_repair_copies_total', 'result="ok"')) === gone.length, 5000, 100);
    expect(await metaserverMetric('kurve_metaserver_repair_objects_checked_total')).toBeGreaterThanOrEqual(objs.length);
    expect(await metaserverMetric('kurve_metaserver_repair_lost_objects')).toBe(0);
    expect(await metaserverMetric('kurve_metaserver_repair_pass_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    await readAllCold();
  }, 120_000);

  it('an object on no live datastore is reported lost, by fs/ino/chunk, with exit status 2', async () => {
    const live = dsAddresses().slice(1);
    const victim = (await objectsOn(live[0])).find((o) => o.key.fsId === fsId)!.key;
    for (const i of [1, 2]) fs.rmSync(objectFile(dsDir(i), victim));
    const r = repair();
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/lost\s+1\n/);
    expect(r.err).toContain(`LOST: fs ${FS} (id ${fsId}) ino ${victim.ino} chunk ${victim.index} version ${victim.version}`);
    // The background passes (every second) publish it too.
    await waitFor('lost object in the metrics', async () => (await metaserverMetric('kurve_metaserver_repair_lost_objects')) === 1, 10_000, 200);
  }, 60_000);
});
