// The MDS over real gRPC (port 0, temp dirs): registry and sessions through MdsClient, error
// mapping, token, leader hints and failover, bounded failure when no MDS answers, and the gRPC
// metaserver hooks against a real metaserver.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Errno, FsError } from '../../src/common/errno';
import { clientChannelOptions, unary } from '../../src/common/rpc';
import { HealthClient } from '../../src/gen/common';
import { MdsClient as RawMdsClient } from '../../src/gen/mds';
import { MdsClient } from '../../src/mds/client';
import { startHeartbeat } from '../../src/mds/heartbeat';
import { LEADER_METADATA_KEY, LeaderElection } from '../../src/mds/leader';
import { MdsServer, startMds } from '../../src/mds/server';
import { MetaClient } from '../../src/metaserver/client';
import { startMetaserver } from '../../src/metaserver/server';

const TOKEN = 'mds-token';

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a failure'); }, (e: unknown) => e);
}
async function until(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}
function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A replica that never leads and points at `leader`, as an etcd follower would. */
class Follower implements LeaderElection {
  constructor(private readonly leader: string | undefined) {}
  isLeader() { return false; }
  leaderAddress() { return this.leader; }
  onChange() { return () => undefined; }
  async close() {}
}

describe('MDS over gRPC', () => {
  const dirs: string[] = [];
  let server: MdsServer;
  let client: MdsClient;

  beforeAll(async () => {
    const dir = tmp('kurve-mdsg-');
    dirs.push(dir);
    server = await startMds({ listen: '127.0.0.1:0', dataDir: dir, token: TOKEN, leaseMs: 800, heartbeatMs: 200, sweepMs: 20 });
    client = new MdsClient(server.address, { token: TOKEN, budgetMs: 3000 });
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('creates, gets and lists file systems; maps errors to errno with the reason', async () => {
    const a = await client.createFs('vol-a', 0);
    expect(a).toMatchObject({ name: 'vol-a', chunkSize: 4 * 1024 * 1024 });
    expect(await client.getFs('vol-a')).toEqual(a);
    await client.createFs('vol-b', 1 << 20);
    expect((await client.listFs()).map((f) => f.name)).toEqual(['vol-a', 'vol-b']);
    const dup = await failure(client.createFs('vol-a', 0));
    expect(dup).toBeInstanceOf(FsError);
    expect((dup as FsError).errno).toBe(Errno.EEXIST);
    expect((dup as FsError).message).toBe('EEXIST: file system "vol-a" already exists');
    expect((await failure(client.getFs('nope')) as FsError).errno).toBe(Errno.ENOENT);
    const bad = await failure(client.createFs('../etc', 0)) as FsError;
    expect(bad.errno).toBe(Errno.EINVAL);
    expect(bad.message).toMatch(/invalid file system name/);
    // The replica count travels both ways; 0 (an old client) means 1.
    expect(a.replicas).toBe(1);
    const r = await client.createFs('vol-r', 0, 3);
    expect(r.replicas).toBe(3);
    expect((await client.getFs('vol-r')).replicas).toBe(3);
    const tooMany = await failure(client.createFs('vol-x', 0, 6)) as FsError;
    expect(tooMany.errno).toBe(Errno.EINVAL);
    expect(tooMany.message).toMatch(/invalid replica count 6/);
  });

  it('answers malformed requests with INVALID_ARGUMENT and a reason, and keeps serving', async () => {
    const raw = new RawMdsClient(server.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: TOKEN }));
    try {
      for (const [req, reason] of [
        [{ kind: 'toaster', id: 'x', address: '127.0.0.1:1' }, /invalid server kind/],
        [{ kind: 'datastore', id: '', address: '127.0.0.1:1' }, /invalid server id/],
        [{ kind: 'datastore', id: 'd', address: 'no-port' }, /invalid server address/],
      ] as const) {
        const err = (await failure(unary(raw, raw.register, req))) as grpc.ServiceError;
        expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(err.details).toMatch(reason);
      }
      const err = (await failure(unary(raw, raw.createFs, { name: 'x'.repeat(10_000), chunkSize: 0, replicas: 0 }))) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect((await unary(raw, raw.listFs, {})).fs.length).toBeGreaterThan(0);
    } finally {
      raw.close();
    }
  });

  it('enforces the token; Health answers with the service name', async () => {
    const anon = new MdsClient(server.address, { budgetMs: 1000 });
    try {
      expect((await failure(anon.listFs()) as FsError).errno).toBe(Errno.EACCES);
    } finally {
      anon.close();
    }
    const health = new HealthClient(server.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: TOKEN }));
    try {
      expect(await unary(health, health.check, {})).toMatchObject({ service: 'mds', pid: process.pid });
    } finally {
      health.close();
    }
  });

  it('registers servers through heartbeats and lists itself', async () => {
    const hb = startHeartbeat({ mds: server.address, token: TOKEN, kind: 'datastore', id: 'ds-x', address: '127.0.0.1:7777' });
    try {
      expect(await until(async () => (await client.listServers('datastore')).some((s) => s.id === 'ds-x' && s.healthy), 3000)).toBe(true);
      expect(hb.connected()).toBe(true);
      expect(client.heartbeatIntervalMs).toBeUndefined(); // only heartbeat clients learn it
      const mdsList = await client.listServers('mds');
      expect(mdsList).toEqual([expect.objectContaining({ id: server.id, address: server.address, healthy: true })]);
    } finally {
      await hb.stop();
    }
    expect(await until(async () => (await client.listServers('datastore')).some((s) => s.id === 'ds-x' && !s.healthy), 3000)).toBe(true);
  });

  it('mount, keepalive, unmount and lease expiry over gRPC', async () => {
    const m = await client.mount('vol-a', 'host:1', '/mnt/a');
    expect(m.leaseMs).toBe(800);
    const lost = await client.mount('vol-a', 'host:2', '/mnt/b');
    const start = Date.now();
    let ids = [lost.session.sessionId];
    while (ids.includes(lost.session.sessionId) && Date.now() - start < 5000) {
      await client.keepalive(m.session.sessionId);
      await new Promise((r) => setTimeout(r, 100));
      ids = (await client.listSessions()).map((s) => s.sessionId);
    }
    expect(Date.now() - start).toBeGreaterThanOrEqual(800);
    expect(ids).toContain(m.session.sessionId);
    expect(ids).not.toContain(lost.session.sessionId);
    expect((await failure(client.keepalive(lost.session.sessionId)) as FsError).errno).toBe(Errno.ENOENT);
    await client.unmount(m.session.sessionId);
    expect(await client.listSessions()).toEqual([]);
  });

  it('follows a follower\'s leader hint, skips dead replicas, and gives up within its budget', async () => {
    const dir = tmp('kurve-mdsf-');
    dirs.push(dir);
    const follower = await startMds({ listen: '127.0.0.1:0', dataDir: dir, token: TOKEN, election: new Follower(server.address) });
    const raw = new RawMdsClient(follower.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: TOKEN }));
    const viaFollower = new MdsClient([follower.address], { token: TOKEN, budgetMs: 3000 });
    const deadFirst = new MdsClient(['127.0.0.1:1', server.address], { token: TOKEN, budgetMs: 3000 });
    const allDead = new MdsClient(['127.0.0.1:1', '127.0.0.1:2'], { token: TOKEN, budgetMs: 800 });
    try {
      const err = (await failure(unary(raw, raw.listFs, {}))) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.metadata.get(LEADER_METADATA_KEY)).toEqual([server.address]);
      expect(await unary(raw, raw.leader, {})).toEqual({ isLeader: false, leader: server.address });
      expect((await viaFollower.listFs()).map((f) => f.name)).toContain('vol-a');
      expect((await viaFollower.createFs('via-hint', 0)).name).toBe('via-hint');
      expect((await deadFirst.getFs('vol-b')).name).toBe('vol-b');
      const start = Date.now();
      const e = (await failure(allDead.listFs())) as FsError;
      expect(Date.now() - start).toBeLessThan(3000);
      expect(e.errno).toBe(Errno.EIO);
      // grpc-js reports the refused connect, or (when the budget ends before the subchannel has
      // reported it) that no connection was established: either way both addresses are named.
      expect(e.message).toMatch(/cannot reach MDS at 127\.0\.0\.1:1,127\.0\.0\.1:2: .*(ECONNREFUSED|No connection established)/);
    } finally {
      raw.close();
      viaFollower.close();
      deadFirst.close();
      allDead.close();
      await follower.close();
    }
  });
});

describe('MDS with a real metaserver (gRPC hooks)', () => {
  it('creates roots on the metaserver (also for file systems made before it joined) and releases expired sessions there', async () => {
    const mdsDir = tmp('kurve-mdsm-');
    const metaDir = tmp('kurve-mdsm-meta-');
    const mds = await startMds({ listen: '127.0.0.1:0', dataDir: mdsDir, leaseMs: 500, heartbeatMs: 250, sweepMs: 20 });
    let meta: Awaited<ReturnType<typeof startMetaserver>> | undefined;
    let mc: MetaClient | undefined;
    const client = new MdsClient(mds.address, { budgetMs: 3000 });
    try {
      // No metaserver yet: recorded, root deferred.
      const early = await client.createFs('early', 0);
      meta = await startMetaserver({ listen: '127.0.0.1:0', dataDir: metaDir, mds: mds.address });
      mc = new MetaClient(meta.address);
      const m = meta;
      expect(await until(async () => mds.mds.healthy('metaserver').includes(m.address), 5000)).toBe(true);
      expect(await until(async () => (await mc!.getattr(early.fsId, 1)).ino === 1, 3000)).toBe(true);
      const late = await client.createFs('late', 128 * 1024);
      expect((await mc.getattr(late.fsId, 1)).mode & 0o170000).toBe(0o040000);
      // A mount that stops renewing expires: the MDS has the metaserver release what the session
      // held, so a file it kept open after unlinking it (an orphan) goes away.
      const s = await client.mount('late', 'h', '/m');
      const caller = { uid: 0, gid: 0, sessionId: s.session.sessionId };
      const file = await mc.mknod(late.fsId, 1, Buffer.from('held'), 0o100644, 0, caller);
      await mc.openInode(late.fsId, file.ino, s.session.sessionId);
      expect((await mc.unlink(late.fsId, 1, Buffer.from('held'), caller)).orphaned).toBe(true);
      expect((await mc.getattr(late.fsId, file.ino)).nlink).toBe(0);
      expect(await until(async () => (await client.listSessions()).length === 0, 5000)).toBe(true);
      const gone = await mc.getattr(late.fsId, file.ino).then(() => undefined, (e: unknown) => e);
      expect((gone as FsError).errno).toBe(Errno.ENOENT);
      expect(mds.mds.registered('metaserver')).toBe(1);
    } finally {
      client.close();
      mc?.close();
      await meta?.close();
      await mds.close();
      fs.rmSync(mdsDir, { recursive: true, force: true });
      fs.rmSync(metaDir, { recursive: true, force: true });
    }
  });
});
