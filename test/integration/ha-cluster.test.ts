// Distributed mode end to end, with real processes: `kurve dev cluster` (3-member etcd, 3 MDS, 2
// metaservers on etcd, 2 datastores) and a real FUSE mount. Leader MDS killed -9 under a workload,
// SIGTERM handover, one etcd member killed, and a dead client's open-but-unlinked file collected.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import * as readline from 'node:readline';
import { describeIf, whyNoCommand, whyNoFuse } from '../helpers/privileged';
import { startTestCluster } from '../helpers/dev-cluster';
import { cleanupKurve, Daemon, kurveMount, py, timeVisible } from '../helpers/kurve-mount';
import { CLI } from '../helpers/metaserver-process';
import type { DevCluster } from '../../src/dev/cluster';
import { clusterStatus } from '../../src/dev/status';
import { MdsClient } from '../../src/mds/client';
import { MetaClient } from '../../src/metaserver/client';
import { DataClient } from '../../src/datastore/client';
import { createEtcdClient } from '../../src/common/etcd-client';
import { errnoName, toErrno } from '../../src/common/errno';

const TTL_SEC = 2;
const SESSION_LEASE_MS = 3000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A metadata workload through the mount and the MDS, counting every failure with its reason. */
function workload(mnt: string, mds: MdsClient, sessionId: string) {
  let stop = false;
  let ops = 0;
  const failures: string[] = [];
  const run = async (name: string, fn: (i: number) => Promise<unknown>) => {
    for (let i = 0; !stop; i++) {
      try {
        await fn(i);
        ops++;
      } catch (err) {
        failures.push(`${name} #${i}: ${(err as Error).message}`);
      }
      await sleep(5);
    }
  };
  const dir = fs.mkdtempSync(path.join(mnt, 'w-'));
  const loops = [
    run('fuse', async (i) => {
      const f = path.join(dir, `f${i}`);
      await fs.promises.writeFile(f, `x${i}`);
      await fs.promises.stat(f);
      if (i % 10 === 9) await fs.promises.readdir(dir);
    }),
    run('mds', async () => {
      await mds.keepalive(sessionId);
      await mds.getFs('default');
    }),
  ];
  return {
    get ops() {
      return ops;
    },
    failures,
    async finish(): Promise<void> {
      stop = true;
      await Promise.all(loops);
    },
  };
}

async function waitLeader(cluster: DevCluster, not: string | undefined, timeoutMs: number): Promise<{ addr: string; pid: number; ms: number }> {
  const t0 = Date.now();
  for (;;) {
    const st = await clusterStatus(cluster.addresses('mds'), { timeoutMs: 300 });
    if (st.leader && st.leader.addr !== not) return { ...st.leader, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`no new leader within ${timeoutMs} ms`);
    await sleep(20);
  }
}

describeIf([whyNoCommand('etcd'), whyNoFuse()], 'HA cluster (dev cluster, real processes)', () => {
  let cluster: DevCluster;
  let mount: Daemon;
  let mds: MdsClient;
  /** A fresh MDS session for a workload (the lease is short: earlier ones have expired). */
  const newSession = async () => (await mds.mount('default', 'ha-test', '/nowhere')).session.sessionId;

  beforeAll(async () => {
    cluster = await startTestCluster({ electionTtlSec: TTL_SEC, sessionLeaseMs: SESSION_LEASE_MS, heartbeatMs: 500 });
    mount = await kurveMount({ rpcAddress: cluster.mdsList } as Daemon);
    mds = new MdsClient(cluster.addresses('mds'), { budgetMs: 15_000 });
  }, 240_000);

  afterAll(async () => {
    mds?.close();
    await cleanupKurve();
    await cluster?.stop();
  }, 60_000);

  /** Which metaserver a `kurve mount` daemon uses (from its "kurve mount" log line). */
  function metaserverOf(d: Daemon): string | undefined {
    for (const line of d.output().split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const rec = JSON.parse(line) as { msg?: string; metaserver?: string };
        if (rec.msg === 'kurve mount') return rec.metaserver;
      } catch {
        // not a log record
      }
    }
    return undefined;
  }

  async function waitMetaserverHealth(address: string, healthy: boolean): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const st = await clusterStatus(cluster.addresses('mds'), { timeoutMs: 500 });
      if (st.metaservers.some((m) => m.address === address && m.healthy === healthy)) return;
      if (Date.now() - t0 > 10_000) throw new Error(`metaserver ${address} not ${healthy ? 'healthy' : 'unhealthy'} within 10 s`);
      await sleep(100);
    }
  }

  it('two clients mounted through different metaservers see create, write, rename and unlink within 200 ms (1 h kernel timeouts)', async () => {
    const ms = cluster.list('metaserver').map((m) => m.address);
    await Promise.all(ms.map((a) => waitMetaserverHealth(a, true)));
    // The MDS rotates the healthy metaservers per mount: two successive mounts land on different ones.
    const b = await kurveMount({ rpcAddress: cluster.mdsList } as Daemon);
    const c = await kurveMount({ rpcAddress: cluster.mdsList } as Daemon);
    try {
      expect(ms).toContain(metaserverOf(b));
      expect(ms).toContain(metaserverOf(c));
      expect(metaserverOf(b)).not.toBe(metaserverOf(c));
      const J = (p: string) => JSON.stringify(p);
      const inB = (n: string) => path.join(b.mountpoint, n);
      const inC = (n: string) => path.join(c.mountpoint, n);
      const times: Record<string, number> = {};
      // C caches "no such name" first (negative entry, 1 h timeout).
      expect(py(`out([E(os.stat, ${J(inC('x'))}), E(os.stat, ${J(inC('x'))})])`)).toEqual(['ENOENT', 'ENOENT']);
      times.create = timeVisible(`open(${J(inB('x'))}, 'w').write('one')`, `open(${J(inC('x'))}).read() == 'one'`);
      // C has the data in its page cache and chunk cache now.
      expect(py(`out([open(${J(inC('x'))}).read() for _ in range(2)])`)).toEqual(['one', 'one']);
      times.write = timeVisible(`open(${J(inB('x'))}, 'w').write('two, longer')`, `open(${J(inC('x'))}).read() == 'two, longer'`);
      times.rename = timeVisible(`os.rename(${J(inB('x'))}, ${J(inB('y'))})`, `os.path.exists(${J(inC('y'))}) and not os.path.exists(${J(inC('x'))})`);
      times.unlink = timeVisible(`os.unlink(${J(inB('y'))})`, `not os.path.exists(${J(inC('y'))})`);
      process.stderr.write(`ha: visible through the other metaserver's client (ms after the op returned): ${JSON.stringify(times)}\n`);
      for (const [op, ms0] of Object.entries(times)) {
        expect([op, ms0 >= 0 && ms0 <= 200]).toEqual([op, true]);
      }
    } finally {
      await c.stop();
      await b.stop();
    }
  }, 90_000);

  async function restartDeadMds(): Promise<void> {
    for (const [i, s] of cluster.list('mds').entries()) if (!s.proc) await cluster.restart('mds', i);
  }

  it(`kill -9 of the leader MDS under load: new leader within 2×TTL, no operation fails, kurve status shows it`, async () => {
    const old = await waitLeader(cluster, undefined, 10_000);
    const idx = cluster.addresses('mds').indexOf(old.addr);
    const w = workload(mount.mountpoint, mds, await newSession());
    await sleep(500);
    const before = w.ops;
    const t0 = Date.now();
    await cluster.kill('mds', idx, 'SIGKILL');
    const next = await waitLeader(cluster, old.addr, 4 * TTL_SEC * 1000);
    const failoverMs = Date.now() - t0;
    await sleep(1000);
    await w.finish();
    process.stderr.write(`ha: failover after kill -9 of the MDS leader: ${failoverMs} ms (TTL ${TTL_SEC} s)\n`);
    expect(failoverMs).toBeLessThan(2 * TTL_SEC * 1000);
    expect(w.failures).toEqual([]);
    expect(w.ops - before).toBeGreaterThan(20);

    const r = spawnSync(process.execPath, [CLI, 'status', '--mds', cluster.mdsList, '--json'], { encoding: 'utf8', timeout: 20_000 });
    const st = JSON.parse(r.stdout) as { leader: { addr: string; pid: number }; mds: Array<{ role: string }> };
    expect(st.leader.addr).toBe(next.addr);
    expect(st.leader.pid).toBe(next.pid);
    expect(st.leader.pid).not.toBe(old.pid);
    expect(st.mds.filter((m) => m.role === 'unreachable')).toHaveLength(1);
    await restartDeadMds();
  }, 60_000);

  it('a session is an etcd lease: after kill -9 of the leader a silent client expires one lease after its last keepalive, not after the failover', async () => {
    const old = await waitLeader(cluster, undefined, 10_000);
    const idx = cluster.addresses('mds').indexOf(old.addr);
    const client = new MdsClient(cluster.addresses('mds'), { budgetMs: 10_000 });
    const info = await client.mount('default', 'silent-client', '/mnt/silent');
    const sid = info.session.sessionId;
    const meta = new MetaClient(info.metaservers[0], { deadlineMs: 5000 });
    const data = new DataClient(info.datastores[0]);
    try {
      // An open-but-unlinked file held by the session.
      const fsId = info.fs.fsId;
      const C = { uid: 0, gid: 0, sessionId: sid };
      const name = Buffer.from(`silent-${Date.now()}`);
      const f = await meta.mknod(fsId, 1, name, 0o100644, 0, C);
      const version = await meta.allocChunkVersions(fsId, 1);
      const key = { fsId, ino: f.ino, index: 0, version };
      await data.put(key, Buffer.alloc(4096, 3));
      await meta.commitData(fsId, f.ino, { chunks: [{ index: 0, version, length: 4096 }], size: 4096, touch: true });
      await meta.openInode(fsId, f.ino, sid);
      expect((await meta.unlink(fsId, 1, name, C)).orphaned).toBe(true);

      // The last keepalive, then the leader dies and the client falls silent.
      await client.keepalive(sid);
      const last = Date.now();
      client.close();
      await cluster.kill('mds', idx, 'SIGKILL');
      await waitLeader(cluster, old.addr, 4 * TTL_SEC * 1000);
      const electedAfter = Date.now() - last;
      // The new leader knows the deadline from etcd (if the session is still alive): no fresh lease.
      const listed = (await mds.listSessions()).find((x) => x.sessionId === sid);
      if (listed) expect(listed.expiresMs).toBeLessThanOrEqual(last + SESSION_LEASE_MS + 1000);

      const attrState = () => meta.getattr(fsId, f.ino).then(() => 'OK', (err: unknown) => errnoName(toErrno(err)));
      let goneAfter = -1;
      while (Date.now() - last < 20_000) {
        if ((await attrState()) === 'ENOENT') {
          goneAfter = Date.now() - last;
          break;
        }
        await sleep(50);
      }
      process.stderr.write(
        `ha: silent session's orphan released ${goneAfter} ms after its last keepalive (lease ${SESSION_LEASE_MS} ms; new leader seen after ${electedAfter} ms)\n`,
      );
      expect(goneAfter).toBeGreaterThan(SESSION_LEASE_MS - 500);
      // A fresh lease from the new leader could not expire before electedAfter + lease.
      expect(goneAfter).toBeLessThan(electedAfter + SESSION_LEASE_MS);
      const t0 = Date.now();
      let chunk = 'OK';
      while (chunk !== 'ENOENT' && Date.now() - t0 < 15_000) {
        chunk = await data.get(key).then(() => 'OK', (err: unknown) => errnoName(toErrno(err)));
        if (chunk !== 'ENOENT') await sleep(200);
      }
      expect(chunk).toBe('ENOENT');
    } finally {
      client.close();
      meta.close();
      data.close();
      await restartDeadMds();
    }
  }, 60_000);

  it('SIGTERM of the leader hands over in < 1 s', async () => {
    const old = await waitLeader(cluster, undefined, 10_000);
    const idx = cluster.addresses('mds').indexOf(old.addr);
    const others = cluster.addresses('mds').filter((a) => a !== old.addr).map((a) => new MdsClient([a], { budgetMs: 1000, attemptMs: 500 }));
    try {
      // Channels connected first, so the polls below measure the handover, not connection setup.
      const warm = Date.now();
      for (;;) {
        const views = await Promise.all(others.map((c) => c.leader().catch(() => ({ isLeader: false, leader: '' }))));
        if (views.every((v) => !v.isLeader && v.leader === old.addr)) break;
        if (Date.now() - warm > 10_000) throw new Error(`followers do not agree on ${old.addr}: ${JSON.stringify(views)}`);
        await sleep(50);
      }
      const t0 = Date.now();
      const killed = cluster.kill('mds', idx, 'SIGTERM');
      let handoverMs = -1;
      while (Date.now() - t0 < 5000 && handoverMs < 0) {
        const views = await Promise.all(others.map((c) => c.leader().catch(() => ({ isLeader: false, leader: '' }))));
        if (views.some((v) => v.isLeader)) handoverMs = Date.now() - t0;
        else await sleep(5);
      }
      await killed;
      process.stderr.write(`ha: handover on SIGTERM of the MDS leader: ${handoverMs} ms\n`);
      expect(handoverMs).toBeGreaterThanOrEqual(0);
      expect(handoverMs).toBeLessThan(1000);
      expect(cluster.list('mds')[idx].proc).toBeUndefined();
    } finally {
      for (const c of others) c.close();
    }
    await restartDeadMds();
  }, 30_000);

  it('with one of three etcd members killed (the raft leader) the file system keeps serving', async () => {
    const etcd = createEtcdClient({ endpoints: cluster.etcd.endpoints });
    let victim = 0;
    try {
      const st = await etcd.maintenance.status();
      const members = (await etcd.cluster.memberList({})).members;
      const leaderName = members.find((m) => m.ID === st.leader)?.name;
      victim = Math.max(0, cluster.etcd.members.findIndex((m) => m.name === leaderName));
    } finally {
      etcd.close();
    }
    const w = workload(mount.mountpoint, mds, await newSession());
    await sleep(300);
    await cluster.etcd.kill(victim);
    await sleep(3000);
    await w.finish();
    expect(w.failures).toEqual([]);
    expect(w.ops).toBeGreaterThan(50);
    await cluster.etcd.restart(victim);
  }, 60_000);

  it('a FUSE client killed -9 with a file open and unlinked: after its session expires the inode and its chunks are gone', async () => {
    const d = await kurveMount({ rpcAddress: cluster.mdsList } as Daemon);
    // A process opens a file on the mount, writes 1 MiB, unlinks it and keeps it open.
    const holder = spawn('python3', ['-u', '-c', `
import os, sys, time
p = os.path.join(sys.argv[1], 'held-open')
fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'k' * (1 << 20))
os.fsync(fd)
os.unlink(p)
print(os.fstat(fd).st_ino, flush=True)
time.sleep(120)
`, d.mountpoint], { stdio: ['ignore', 'pipe', 'inherit'] });
    const meta = new MetaClient(cluster.addresses('metaserver')[0], { deadlineMs: 5000 });
    const data = new DataClient(cluster.addresses('datastore')[0]);
    try {
      const ino = await new Promise<number>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('holder did not report its inode')), 20_000);
        readline.createInterface({ input: holder.stdout! }).once('line', (l) => {
          clearTimeout(t);
          resolve(Number(l));
        });
      });
      const fsId = (await mds.getFs('default')).fsId;
      const attr = await meta.getattr(fsId, ino);
      expect(attr.nlink).toBe(0);
      const map = await meta.getDataMap(fsId, ino);
      expect(map.chunks.length).toBeGreaterThan(0);
      const keys = map.chunks.map((c) => ({ fsId, ino, index: c.index, version: c.version }));
      expect((await data.get(keys[0])).length).toBe(1 << 20);

      await d.kill9(); // the client dies: no unmount, no release, no more keepalives
      holder.kill('SIGKILL');
      const t0 = Date.now();
      const state = async () => [
        await meta.getattr(fsId, ino).then(() => 'OK', (err: unknown) => errnoName(toErrno(err))),
        ...(await Promise.all(keys.map((k) => data.get(k).then(() => 'OK', (err: unknown) => errnoName(toErrno(err)))))),
      ];
      let last = await state();
      while (last.some((x) => x !== 'ENOENT') && Date.now() - t0 < 20_000) {
        await sleep(200);
        last = await state();
      }
      process.stderr.write(`ha: inode and ${keys.length} chunk(s) of a killed client's unlinked open file gone after ${Date.now() - t0} ms (lease 3 s)\n`);
      expect(last.every((x) => x === 'ENOENT')).toBe(true);
    } finally {
      holder.kill('SIGKILL');
      meta.close();
      data.close();
      await d.stop();
    }
  }, 90_000);

  it("a dead client's open-but-unlinked file: after its session expires the inode and its chunks are gone", async () => {
    // A second client that registers, opens a file, unlinks it while open, then dies (no keepalive).
    const client = new MdsClient(cluster.addresses('mds'), { budgetMs: 10_000 });
    const info = await client.mount('default', 'doomed-client', '/mnt/doomed');
    client.close();
    const meta = new MetaClient(info.metaservers[0], { deadlineMs: 5000 });
    const data = new DataClient(info.datastores[0]);
    try {
      const fsId = info.fs.fsId;
      const C = { uid: 0, gid: 0, sessionId: info.session.sessionId };
      const name = Buffer.from(`doomed-${Date.now()}`);
      const f = await meta.mknod(fsId, 1, name, 0o100644, 0, C);
      const version = await meta.allocChunkVersions(fsId, 1);
      const key = { fsId, ino: f.ino, index: 0, version };
      await data.put(key, Buffer.alloc(4096, 7));
      await meta.commitData(fsId, f.ino, { chunks: [{ index: 0, version, length: 4096 }], size: 4096, touch: true });
      await meta.openInode(fsId, f.ino, info.session.sessionId);
      const un = await meta.unlink(fsId, 1, name, C);
      expect(un.orphaned).toBe(true);
      expect((await meta.getattr(fsId, f.ino)).nlink).toBe(0);
      expect((await data.get(key)).length).toBe(4096);

      // The client is gone: the lease (3 s) runs out, the MDS leader expires the session, the
      // metaserver purges the orphan and GC deletes its chunk.
      const t0 = Date.now();
      let gone = false;
      while (!gone && Date.now() - t0 < 20_000) {
        const attr = await meta.getattr(fsId, f.ino).then(() => 'OK', (err: unknown) => errnoName(toErrno(err)));
        const chunk = await data.get(key).then(() => 'OK', (err: unknown) => errnoName(toErrno(err)));
        gone = attr === 'ENOENT' && chunk === 'ENOENT';
        if (!gone) await sleep(200);
      }
      process.stderr.write(`ha: orphan of a dead session collected after ${Date.now() - t0} ms (lease 3 s)\n`);
      expect(gone).toBe(true);
    } finally {
      meta.close();
      data.close();
    }
  }, 60_000);
});
