// HA MDS replicas on a real etcd, in-process: one leader, followers redirect clients (leader hint),
// state survives a handover (SIGTERM-style resign < 1 s), and a deposed leader's writes are fenced.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeIf, whyNoCommand } from '../helpers/privileged';
import { useEtcd } from '../helpers/etcd';
import { startEtcdMds, EtcdMdsServer } from '../../src/mds/etcd-mds';
import { MdsClient } from '../../src/mds/client';
import { EtcdMdsStore } from '../../src/mds/etcd-store';
import { Keys } from '../../src/mds/store';
import { leaderHint } from '../../src/mds/leader';
import { RpcError } from '../../src/common/rpc';
import { createEtcdClient } from '../../src/common/etcd-client';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
  return Date.now() - t0;
}

describeIf([whyNoCommand('etcd')], 'HA MDS on etcd (in-process replicas)', () => {
  const etcd = useEtcd({ members: 1 });
  let dir: string;
  let replicas: EtcdMdsServer[] = [];
  const cluster = `mds${process.pid}`;
  const LEASE_MS = 2000;
  /** Sessions the leaders released on the metaservers, with when. */
  const released = new Map<string, number>();
  const startReplica = (i: number) =>
    startEtcdMds({
      listen: '127.0.0.1:0', dataDir: path.join(dir, `mds${i}`), etcd: etcd.cluster.endpoints, cluster, electionTtlSec: 2, graceMs: 500, leaseMs: LEASE_MS,
      hooks: { onFsCreated: async () => undefined, expireSession: async (id) => void released.set(id, Date.now()) },
    });
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-etcd-mds-'));
    for (let i = 0; i < 3; i++) replicas.push(await startReplica(i));
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const leaders = () => replicas.filter((r) => r.election.isLeader());

  it('one leader; a client given every replica follows hints; state survives a resign handover in < 1 s', async () => {
    await until('one leader', () => leaders().length === 1, 5000);
    const leader = leaders()[0];
    const follower = replicas.find((r) => r !== leader)!;
    await until('followers to see the leader', () => follower.election.leaderAddress() === leader.address, 2000);

    // A follower says who leads, and a client that only knows the follower gets there by the hint.
    const direct = new MdsClient(follower.address, { budgetMs: 2000 });
    try {
      expect(await direct.leader()).toEqual({ isLeader: false, leader: leader.address });
      expect(await direct.listFs()).toEqual([]);
    } finally {
      direct.close();
    }

    const client = new MdsClient(replicas.map((r) => r.address).reverse(), { budgetMs: 10_000 });
    try {
      const fsInfo = await client.createFs('ha', 0);
      const m = await client.mount('ha', 'test-client', '/mnt/x');
      expect((await client.leader()).leader).toBe(leader.address);

      const t0 = Date.now();
      await leader.close();
      replicas = replicas.filter((r) => r !== leader);
      await until('a new leader', () => leaders().length === 1, 2000);
      expect(Date.now() - t0).toBeLessThan(1000);

      // The new leader has the file system and the session; the client follows on its own.
      expect(await client.getFs('ha')).toEqual(fsInfo);
      expect((await client.keepalive(m.session.sessionId)).sessionId).toBe(m.session.sessionId);
      expect((await client.listSessions()).map((s) => s.sessionId)).toContain(m.session.sessionId);
      expect((await client.leader()).leader).toBe(leaders()[0].address);
    } finally {
      client.close();
    }
  });

  it("fences a deposed leader's writes (not-leader error with the hint, nothing written)", async () => {
    await until('one leader', () => leaders().length === 1, 5000);
    const leader = leaders()[0];
    const fence = leader.election.fence();
    // A store holding the old fence, as a leader that has not noticed its demotion would.
    const client = createEtcdClient({ endpoints: etcd.cluster.endpoints });
    const stale = new EtcdMdsStore({ client, cluster, fence: () => fence, leaderHint: () => 'hint:1' });
    try {
      expect(await stale.txn([], [{ type: 'put', key: 'test/a', value: 1 }])).toBe(true);
      await leader.election.resign();
      await until('another leader', () => leaders().length === 1 && leaders()[0] !== leader, 3000);
      const err = await stale.txn([], [{ type: 'put', key: 'test/a', value: 2 }]).catch((e: unknown) => e);
      expect(leaderHint(err) ?? (err as RpcError).trailers?.['kurve-leader']).toBe('hint:1');
      expect(String(err)).toMatch(/not the MDS leader/);
      expect((await stale.get<number>('test/a'))?.value).toBe(1);
      // Version compares work like the lmdb store: 1 after create, +1 per put, 0 = absent.
      const fresh = new EtcdMdsStore({ client, cluster: `${cluster}-v` });
      expect(await fresh.txn([{ key: Keys.nextFsId, version: 0 }], [{ type: 'put', key: Keys.nextFsId, value: 5 }])).toBe(true);
      expect(await fresh.txn([{ key: Keys.nextFsId, version: 0 }], [{ type: 'put', key: Keys.nextFsId, value: 6 }])).toBe(false);
      expect(await fresh.txn([{ key: Keys.nextFsId, version: 1 }], [{ type: 'put', key: Keys.nextFsId, value: 6 }])).toBe(true);
      expect(await fresh.get(Keys.nextFsId)).toEqual({ key: Keys.nextFsId, value: 6, version: 2 });
      await fresh.txn([], [{ type: 'put', key: 'fs/b', value: { n: 'b' } }, { type: 'put', key: 'fs/a', value: { n: 'a' } }, { type: 'put', key: 'fsx', value: 0 }]);
      expect((await fresh.list('fs/')).map((e) => e.key)).toEqual(['fs/a', 'fs/b']);
      expect(await fresh.txn([], [{ type: 'delete', key: 'fs/a' }])).toBe(true);
      expect(await fresh.get('fs/a')).toBeUndefined();
    } finally {
      client.close();
    }
  });

  it('sessions are etcd leases: any replica renews, a new leader keeps the deadline, expiry releases one lease after the last keepalive', async () => {
    replicas.push(await startReplica(3)); // a fresh candidate (earlier tests resigned some)
    await until('one leader', () => leaders().length === 1, 5000);
    const leader = leaders()[0];
    const follower = replicas.find((r) => r !== leader)!;
    const client = new MdsClient(replicas.map((r) => r.address), { budgetMs: 10_000 });
    try {
      const m = await client.mount('ha', 'lease-client', '/mnt/l');
      const sid = m.session.sessionId;
      expect(m.session.expiresMs).toBeGreaterThan(Date.now() + LEASE_MS - 1000);
      // A follower renews the etcd lease itself (no leader needed for that).
      expect(follower.election.isLeader()).toBe(false);
      const renewed = await follower.mds.keepalive(sid);
      expect(renewed).toMatchObject({ sessionId: sid, client: 'lease-client', mountpoint: '/mnt/l' });
      const last = Date.now();
      expect(renewed.expiresMs).toBeGreaterThan(last + LEASE_MS - 1000);
      // The client falls silent; 1.2 s later the leader hands over.
      await sleep(1200);
      await leader.close();
      replicas = replicas.filter((r) => r !== leader);
      await until('a new leader', () => leaders().length === 1, 3000);
      // The new leader read the deadline from etcd: a fresh lease would end after last + 3.2 s.
      const listed = (await client.listSessions()).find((x) => x.sessionId === sid);
      if (listed) expect(listed.expiresMs).toBeLessThanOrEqual(last + LEASE_MS + 1000);
      await until('the session to be released', () => released.has(sid), 5000);
      const after = released.get(sid)! - last;
      process.stderr.write(`etcd-mds: silent session released ${after} ms after its last keepalive (lease ${LEASE_MS} ms, handover at 1200 ms)\n`);
      expect(after).toBeGreaterThan(LEASE_MS - 200);
      expect(after).toBeLessThan(1200 + LEASE_MS);
      expect((await client.listSessions()).map((x) => x.sessionId)).not.toContain(sid);
      await expect(client.keepalive(sid)).rejects.toThrow(/unknown or expired; mount again/);
      const raw = createEtcdClient({ endpoints: etcd.cluster.endpoints });
      try {
        const store = new EtcdMdsStore({ client: raw, cluster });
        expect(await store.get(Keys.session(sid))).toBeUndefined();
        expect(await store.get(Keys.sessionLease(sid))).toBeUndefined();
      } finally {
        raw.close();
      }
    } finally {
      client.close();
    }
  });
});
