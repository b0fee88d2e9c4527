// Mds in-process over a real lmdb store: registry, topology, sessions, hooks, leader gating.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Errno, FsError, fsError } from '../../src/common/errno';
import { RpcError } from '../../src/common/rpc';
import { FsInfo } from '../../src/mds/api';
import { LEADER_METADATA_KEY, LeaderElection } from '../../src/mds/leader';
import { LmdbMdsStore } from '../../src/mds/lmdb-store';
import { DEFAULT_CHUNK_SIZE, Mds, MetaserverHooks } from '../../src/mds/mds';
import { Keys } from '../../src/mds/store';

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a failure'); }, (e: unknown) => e);
}
async function errnoOf(p: Promise<unknown>): Promise<number> {
  const e = await failure(p);
  expect(e).toBeInstanceOf(FsError);
  return (e as FsError).errno;
}
async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

/** Hooks that record what the MDS asked of the metaservers, and can be told to fail. */
class RecordingHooks implements MetaserverHooks {
  created: FsInfo[] = [];
  expired: string[] = [];
  joined: Array<[string, string[]]> = [];
  failCreate?: Error;
  failExpire = 0;
  async onFsCreated(f: FsInfo) {
    if (this.failCreate) throw this.failCreate;
    this.created.push(f);
  }
  async expireSession(id: string) {
    if (this.failExpire > 0) {
      this.failExpire--;
      throw new Error('metaserver down');
    }
    this.expired.push(id);
  }
  async onMetaserverJoined(address: string, list: FsInfo[]) {
    this.joined.push([address, list.map((f) => f.name)]);
  }
}

/** A leader election whose state the test sets. */
class SwitchableElection implements LeaderElection {
  leader = true;
  hint?: string;
  private cbs: Array<(l: boolean) => void> = [];
  isLeader() { return this.leader; }
  leaderAddress() { return this.hint; }
  onChange(cb: (l: boolean) => void) { this.cbs.push(cb); return () => undefined; }
  set(leader: boolean) { this.leader = leader; this.cbs.forEach((cb) => cb(leader)); }
  async close() {}
}

describe('LmdbMdsStore', () => {
  it('versions records and applies txns only when every compare holds', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-mdsstore-'));
    const s = LmdbMdsStore.open(path.join(dir, 'mds.mdb'));
    try {
      expect(await s.txn([{ key: 'a', version: 0 }], [{ type: 'put', key: 'a', value: { x: 1 } }])).toBe(true);
      expect(await s.txn([{ key: 'a', version: 0 }], [{ type: 'put', key: 'a', value: { x: 2 } }])).toBe(false);
      expect(await s.get('a')).toEqual({ key: 'a', value: { x: 1 }, version: 1 });
      expect(await s.txn([{ key: 'a', version: 1 }], [{ type: 'put', key: 'a', value: { x: 3 } }, { type: 'put', key: 'ab', value: 5 }, { type: 'put', key: 'b', value: 6 }])).toBe(true);
      expect((await s.get('a'))?.version).toBe(2);
      expect((await s.list('a')).map((e) => [e.key, e.value])).toEqual([['a', { x: 3 }], ['ab', 5]]);
      expect(await s.txn([{ key: 'b', version: 1 }], [{ type: 'delete', key: 'b' }])).toBe(true);
      expect(await s.get('b')).toBeUndefined();
      await s.close();
      const again = LmdbMdsStore.open(path.join(dir, 'mds.mdb'));
      expect((await again.get('ab'))?.value).toBe(5);
      await again.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Mds', () => {
  let dir: string;
  let store: LmdbMdsStore;
  let mds: Mds;
  let hooks: RecordingHooks;
  let election: SwitchableElection;

  // Short enough to keep the suite fast, long enough that a loaded 2-core machine's event-loop
  // stalls do not expire a session that is being kept alive.
  const LEASE = 800;
  const open = (o: { leaseMs?: number; heartbeatMs?: number } = {}) =>
    Mds.open({ store, hooks, election, leaseMs: o.leaseMs ?? LEASE, heartbeatMs: o.heartbeatMs ?? 200, sweepMs: 20 });

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-mds-'));
    store = LmdbMdsStore.open(path.join(dir, 'mds.mdb'));
    hooks = new RecordingHooks();
    election = new SwitchableElection();
    mds = await open();
  });
  afterEach(async () => {
    await mds.close();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('file systems', () => {
    it('creates, gets and lists file systems with unique ids, creating each root through the hook', async () => {
      const a = await mds.createFs('alpha', 0);
      const b = await mds.createFs('beta', 1024 * 1024);
      expect(a).toMatchObject({ name: 'alpha', chunkSize: DEFAULT_CHUNK_SIZE });
      expect(b).toMatchObject({ name: 'beta', chunkSize: 1024 * 1024 });
      expect(a.fsId).not.toBe(b.fsId);
      expect(await mds.getFs('beta')).toEqual(b);
      expect((await mds.listFs()).map((f) => f.name)).toEqual(['alpha', 'beta']);
      expect(hooks.created.map((f) => f.name)).toEqual(['alpha', 'beta']);
    });

    it('refuses duplicates with EEXIST, unknown names with ENOENT', async () => {
      await mds.createFs('dup', 0);
      expect(await errnoOf(mds.createFs('dup', 0))).toBe(Errno.EEXIST);
      expect(await errnoOf(mds.getFs('nope'))).toBe(Errno.ENOENT);
      const both = await Promise.allSettled([mds.createFs('race', 0), mds.createFs('race', 0)]);
      expect(both.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    });

    it.each(['', '.hidden', 'a/b', 'sp ace', 'x'.repeat(64), 'bad\0', '-lead'])('rejects the name %j with EINVAL', async (name) => {
      const e = await failure(mds.createFs(name, 0));
      expect((e as FsError).errno).toBe(Errno.EINVAL);
      expect((e as FsError).message).toMatch(/invalid file system name/);
    });

    it.each([1000, 32 * 1024, 128 * 1024 * 1024, 3 * 1024 * 1024, -1, 1.5])('rejects the chunk size %d with EINVAL', async (size) => {
      const e = await failure(mds.createFs('sizes', size));
      expect((e as FsError).message).toMatch(/power of two between 64 KiB and 64 MiB/);
    });

    it('accepts chunk sizes 64 KiB and 64 MiB', async () => {
      expect((await mds.createFs('min', 64 * 1024)).chunkSize).toBe(64 * 1024);
      expect((await mds.createFs('max', 64 * 1024 * 1024)).chunkSize).toBe(64 * 1024 * 1024);
    });

    it('fails the create (and records nothing) when the root cannot be made, but defers on ENODEV', async () => {
      hooks.failCreate = new Error('boom');
      const e = await failure(mds.createFs('broken', 0));
      expect((e as FsError).errno).toBe(Errno.EIO);
      expect((e as FsError).message).toMatch(/creating the root of "broken".*boom/);
      expect(await errnoOf(mds.getFs('broken'))).toBe(Errno.ENOENT);
      hooks.failCreate = fsError('ENODEV', 'no healthy metaserver');
      expect((await mds.createFs('later', 0)).name).toBe('later');
      hooks.failCreate = undefined;
      await mds.register('metaserver', 'm1', '127.0.0.1:7001');
      expect(await until(() => hooks.joined.length === 1, 2000)).toBe(true);
      expect(hooks.joined[0]).toEqual(['127.0.0.1:7001', ['later']]);
    });

    it('stores a replica count per file system (default 1, 1..5), and reads records without one as 1', async () => {
      expect((await mds.createFs('one', 0)).replicas).toBe(1);
      const three = await mds.createFs('three', 0, 3);
      expect(three.replicas).toBe(3);
      expect(await mds.getFs('three')).toEqual(three);
      expect((await mds.createFs('five', 0, 5)).replicas).toBe(5);
      for (const bad of [6, -1, 1.5, 100]) {
        const e = await failure(mds.createFs(`bad-${String(bad).replace(/\W/g, '')}`, 0, bad));
        expect((e as FsError).errno).toBe(Errno.EINVAL);
        expect((e as FsError).message).toMatch(/invalid replica count .*integer from 1 to 5/);
      }
      // A record written before replication existed (no field) is one copy.
      await store.txn([], [{ type: 'put', key: Keys.fs('legacy'), value: { fsId: 99, name: 'legacy', chunkSize: DEFAULT_CHUNK_SIZE, createdMs: 1 } }]);
      expect((await mds.getFs('legacy')).replicas).toBe(1);
      expect((await mds.listFs()).map((f) => [f.name, f.replicas])).toEqual([['one', 1], ['three', 3], ['five', 5], ['legacy', 1]]);
    });

    it('keeps file systems across a restart', async () => {
      const f = await mds.createFs('durable', 0);
      await mds.close();
      await store.close();
      store = LmdbMdsStore.open(path.join(dir, 'mds.mdb'));
      mds = await open();
      expect(await mds.getFs('durable')).toEqual(f);
      expect((await mds.createFs('next', 0)).fsId).toBeGreaterThan(f.fsId);
    });
  });

  describe('topology', () => {
    it('registers servers, hands out healthy ones, and marks them unhealthy after 3 missed heartbeats', async () => {
      await mds.register('datastore', 'd1', '127.0.0.1:7003');
      await mds.heartbeat('datastore', 'd2', '127.0.0.1:7004'); // unknown: registers
      await mds.register('metaserver', 'm1', '127.0.0.1:7002');
      expect(mds.healthy('datastore').sort()).toEqual(['127.0.0.1:7003', '127.0.0.1:7004']);
      expect((await mds.listServers()).map((s) => `${s.kind}/${s.id}`)).toEqual(['datastore/d1', 'datastore/d2', 'metaserver/m1']);
      // d1 keeps beating, d2 stops: after 3 × 200 ms only d1 is healthy.
      const end = Date.now() + 800;
      while (Date.now() < end) {
        await mds.heartbeat('datastore', 'd1', '127.0.0.1:7003');
        await new Promise((r) => setTimeout(r, 40));
      }
      const ds = await mds.listServers('datastore');
      expect(ds.find((s) => s.id === 'd1')?.healthy).toBe(true);
      expect(ds.find((s) => s.id === 'd2')?.healthy).toBe(false);
      expect(mds.healthy('datastore')).toEqual(['127.0.0.1:7003']);
      expect(mds.registered('datastore')).toBe(2);
      // Back to health with one heartbeat; a moved server keeps its id with the new address.
      await mds.heartbeat('datastore', 'd2', '127.0.0.1:7005');
      expect(mds.healthy('datastore').sort()).toEqual(['127.0.0.1:7003', '127.0.0.1:7005']);
      expect((await store.get<{ address: string }>(Keys.server('datastore', 'd2')))?.value.address).toBe('127.0.0.1:7005');
    });

    it('remembers registrations across restarts but needs a heartbeat to call them healthy', async () => {
      await mds.register('datastore', 'd1', '127.0.0.1:7003');
      await mds.close();
      mds = await open();
      const [d1] = await mds.listServers('datastore');
      expect(d1).toMatchObject({ id: 'd1', address: '127.0.0.1:7003', healthy: false });
      await mds.heartbeat('datastore', 'd1', '127.0.0.1:7003');
      expect(mds.healthy('datastore')).toEqual(['127.0.0.1:7003']);
    });

    it('a new leader presumes registered servers healthy for one health window, beating ones first, then needs heartbeats', async () => {
      await mds.createFs('vol', 0);
      await mds.register('metaserver', 'm1', '127.0.0.1:7002');
      await mds.register('metaserver', 'm2', '127.0.0.1:7012');
      await mds.register('datastore', 'd1', '127.0.0.1:7003');
      // Another replica leads for a while (no heartbeats reach this one), then this one is elected.
      election.set(false);
      await new Promise((r) => setTimeout(r, 700)); // > 3 × 200 ms: the old heartbeats are stale
      election.set(true);
      expect(await until(() => mds.healthy('metaserver').length === 2, 1000)).toBe(true);
      // No heartbeat has reached the new leader yet, but a mount right after the failover works.
      const m = await mds.mount('vol', 'h', '/m');
      expect(m.metaservers.sort()).toEqual(['127.0.0.1:7002', '127.0.0.1:7012']);
      expect(m.datastores).toEqual(['127.0.0.1:7003']);
      expect((await mds.listServers('metaserver')).every((s) => s.healthy && s.lastHeartbeatMs === 0)).toBe(true);
      // A server seen beating comes before the presumed ones.
      await mds.heartbeat('metaserver', 'm2', '127.0.0.1:7012');
      expect(mds.healthy('metaserver')).toEqual(['127.0.0.1:7012', '127.0.0.1:7002']);
      // Past the health window only the beating servers stay healthy.
      const end = Date.now() + 800;
      while (Date.now() < end) {
        await mds.heartbeat('metaserver', 'm2', '127.0.0.1:7012');
        await new Promise((r) => setTimeout(r, 40));
      }
      expect(mds.healthy('metaserver')).toEqual(['127.0.0.1:7012']);
      expect(mds.healthy('datastore')).toEqual([]);
    });

    it('rejects bad kinds, ids and addresses with EINVAL', async () => {
      expect(await errnoOf(mds.register('router' as never, 'x', '127.0.0.1:1'))).toBe(Errno.EINVAL);
      expect(await errnoOf(mds.register('datastore', '', '127.0.0.1:1'))).toBe(Errno.EINVAL);
      expect(await errnoOf(mds.register('datastore', 'a/b', '127.0.0.1:1'))).toBe(Errno.EINVAL);
      expect(await errnoOf(mds.register('datastore', 'd', 'nowhere'))).toBe(Errno.EINVAL);
      expect(await errnoOf(mds.register('datastore', 'd', '127.0.0.1:0'))).toBe(Errno.EINVAL);
      expect(await errnoOf(mds.listServers('bogus' as never))).toBe(Errno.EINVAL);
    });
  });

  describe('sessions', () => {
    it('mount opens a session with a lease and hands out healthy servers', async () => {
      await mds.createFs('vol', 0);
      await mds.register('metaserver', 'm1', '127.0.0.1:7002');
      await mds.register('datastore', 'd1', '127.0.0.1:7003');
      const m = await mds.mount('vol', 'host:1', '/mnt/x');
      expect(m.fs.name).toBe('vol');
      expect(m.metaservers).toEqual(['127.0.0.1:7002']);
      expect(m.datastores).toEqual(['127.0.0.1:7003']);
      expect(m.leaseMs).toBe(LEASE);
      expect(m.session.expiresMs).toBeGreaterThan(Date.now());
      expect((await mds.listSessions()).map((s) => s.sessionId)).toEqual([m.session.sessionId]);
      expect(await errnoOf(mds.mount('missing', 'h', '/m'))).toBe(Errno.ENOENT);
    });

    it('successive mounts are spread over the healthy metaservers; datastores keep one order (chunks live where written)', async () => {
      await mds.createFs('vol', 0);
      for (const i of [1, 2, 3]) await mds.register('metaserver', `m${i}`, `127.0.0.1:710${i}`);
      for (const i of [1, 2]) await mds.register('datastore', `d${i}`, `127.0.0.1:720${i}`);
      const firstMeta = new Map<string, number>();
      const firstData = new Map<string, number>();
      for (let i = 0; i < 6; i++) {
        const m = await mds.mount('vol', `c${i}`, '/m');
        // Every healthy server is still listed (fallbacks), only the order differs.
        expect([...m.metaservers].sort()).toEqual(['127.0.0.1:7101', '127.0.0.1:7102', '127.0.0.1:7103']);
        expect([...m.datastores].sort()).toEqual(['127.0.0.1:7201', '127.0.0.1:7202']);
        firstMeta.set(m.metaservers[0], (firstMeta.get(m.metaservers[0]) ?? 0) + 1);
        firstData.set(m.datastores[0], (firstData.get(m.datastores[0]) ?? 0) + 1);
      }
      expect([...firstMeta.values()]).toEqual([2, 2, 2]);
      expect([...firstData.entries()]).toEqual([['127.0.0.1:7201', 6]]);
    });

    it('keepalive renews the lease; without it the session expires and the hook releases it', async () => {
      await mds.createFs('vol', 0);
      const kept = await mds.mount('vol', 'a', '/a');
      const lost = await mds.mount('vol', 'b', '/b');
      const start = Date.now();
      // Renew `kept` until `lost` (never renewed) has expired, and for a while longer.
      while (Date.now() - start < 5000 && (hooks.expired.length === 0 || Date.now() - start < 2 * LEASE)) {
        const s = await mds.keepalive(kept.session.sessionId);
        expect(s.expiresMs).toBeGreaterThan(Date.now());
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(Date.now() - start).toBeGreaterThanOrEqual(LEASE);
      expect(hooks.expired).toEqual([lost.session.sessionId]);
      expect((await mds.listSessions()).map((s) => s.sessionId)).toEqual([kept.session.sessionId]);
      const e = await failure(mds.keepalive(lost.session.sessionId));
      expect((e as FsError).errno).toBe(Errno.ENOENT);
      expect((e as FsError).message).toMatch(/unknown or expired; mount again/);
      expect(await store.get(Keys.session(lost.session.sessionId))).toBeUndefined();
    });

    it('retries the release until the metaservers answer', async () => {
      await mds.createFs('vol', 0);
      hooks.failExpire = 3;
      const m = await mds.mount('vol', 'a', '/a');
      expect(await until(() => hooks.expired.length === 1, 5000)).toBe(true);
      expect(hooks.expired).toEqual([m.session.sessionId]);
      expect(hooks.failExpire).toBe(0);
    });

    it('unmount ends the session at once (releasing it) and is idempotent', async () => {
      await mds.createFs('vol', 0);
      const m = await mds.mount('vol', 'a', '/a');
      await mds.unmount(m.session.sessionId);
      await mds.unmount(m.session.sessionId);
      expect(hooks.expired).toEqual([m.session.sessionId]);
      expect(await mds.listSessions()).toEqual([]);
      expect(await errnoOf(mds.unmount('not a session!'))).toBe(Errno.EINVAL);
    });

    it('after a restart every stored session gets a fresh lease (then expires if silent)', async () => {
      await mds.createFs('vol', 0);
      const m = await mds.mount('vol', 'a', '/a');
      await mds.close();
      mds = await open({ leaseMs: 5000 });
      const [s] = await mds.listSessions();
      expect(s.sessionId).toBe(m.session.sessionId);
      expect(s.expiresMs).toBeGreaterThan(Date.now() + 4000);
      expect((await mds.keepalive(s.sessionId)).sessionId).toBe(s.sessionId);
    });
  });

  describe('leadership', () => {
    it('a follower refuses with UNAVAILABLE and the leader hint, does not expire sessions, and reloads when it leads', async () => {
      await mds.createFs('vol', 0);
      const m = await mds.mount('vol', 'a', '/a');
      election.hint = '10.0.0.9:6701';
      election.set(false);
      const e = await failure(mds.listFs());
      expect(e).toBeInstanceOf(RpcError);
      expect((e as RpcError).status).toBe(grpc.status.UNAVAILABLE);
      expect((e as RpcError).trailers?.[LEADER_METADATA_KEY]).toBe('10.0.0.9:6701');
      await new Promise((r) => setTimeout(r, LEASE + 200)); // > lease: a follower must not expire anything
      expect(hooks.expired).toEqual([]);
      election.set(true);
      expect(await until(async () => (await mds.listSessions()).length === 1, 1000)).toBe(true);
      expect((await mds.keepalive(m.session.sessionId)).sessionId).toBe(m.session.sessionId);
    });
  });
});
