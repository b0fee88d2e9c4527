// The metaserver's gRPC surface: malformed requests get INVALID_ARGUMENT with a reason, the token
// is enforced, /metrics carries the metaserver metrics, and close() ends change-feed streams
// promptly instead of waiting for them.
import * as grpc from '@grpc/grpc-js';
import * as http from 'node:http';
import { clientChannelOptions, unary } from '../../src/common/rpc';
import { ROOT_INO } from '../../src/metaserver/api';
import { MetaClient } from '../../src/metaserver/client';
import { MetaserverClient } from '../../src/gen/metaserver';
import { startMetaserver } from '../../src/metaserver/server';
import { errOf } from '../helpers/metaserver-suite';
import { grpcTarget, tempDir } from '../helpers/metaserver';

const C = { uid: 0, gid: 0, sessionId: '' };

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

describe('metaserver gRPC service', () => {
  let t: Awaited<ReturnType<typeof grpcTarget>>;
  let raw: MetaserverClient;
  let fsId: number;
  const status = async (p: Promise<unknown>) => {
    try {
      await p;
      return { code: grpc.status.OK, details: '' };
    } catch (err) {
      const e = err as grpc.ServiceError;
      return { code: e.code, details: e.details };
    }
  };

  beforeAll(async () => {
    t = await grpcTarget({ token: 'tok' });
    raw = new MetaserverClient(t.server.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: 'tok' }));
    fsId = await t.newFs();
  });
  afterAll(async () => {
    raw?.close();
    await t?.close();
  });

  it('inode 0 is INVALID_ARGUMENT with a reason', async () => {
    expect(await status(unary(raw, raw.getAttr, { fsId, ino: 0 }))).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'ino must be a positive integer (got 0)' });
  });
  it('a create without a caller is INVALID_ARGUMENT', async () => {
    const s = await status(unary(raw, raw.mknod, { fsId, parent: ROOT_INO, name: Buffer.from('x'), mode: 0o100644, rdev: 0, caller: undefined }));
    expect(s).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'caller (uid, gid) is required' });
  });
  it('readdir with limit 0 and an oversized name are INVALID_ARGUMENT', async () => {
    expect((await status(unary(raw, raw.readDir, { fsId, ino: ROOT_INO, cookie: 0, limit: 0, plus: false }))).code).toBe(grpc.status.INVALID_ARGUMENT);
    const big = await status(unary(raw, raw.lookup, { fsId, parent: ROOT_INO, name: Buffer.alloc(10_000, 0x61), caller: undefined }));
    expect(big.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(big.details).toContain('name is 10000 bytes');
  });
  it('an empty session id is INVALID_ARGUMENT; a setattr time with neither now nor time too', async () => {
    expect((await status(unary(raw, raw.openInode, { fsId, ino: ROOT_INO, sessionId: '' }))).details).toBe('session_id is required');
    const s = await status(unary(raw, raw.setAttr, { fsId, ino: ROOT_INO, atime: { now: false, time: undefined }, mtime: undefined, ctime: undefined, caller: C }));
    expect(s).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'atime: either now or time must be set' });
  });
  it('POSIX errors keep their errno through MetaClient, with the message', async () => {
    const err = await t.client.lookup(fsId, ROOT_INO, Buffer.from('missing')).catch((e: Error) => e);
    expect(err).toMatchObject({ errno: 2, message: "ENOENT: 'missing' does not exist in directory 1" });
    expect(await errOf(t.client.mkdir(fsId, ROOT_INO, Buffer.from('n'.repeat(256)), 0o755, C))).toBe('ENAMETOOLONG');
  });
  it('a wrong token is refused', async () => {
    const bad = new MetaClient(t.server.address, { token: 'nope', deadlineMs: 2000 });
    try {
      expect(await errOf(bad.getattr(fsId, ROOT_INO))).toBe('EACCES');
    } finally {
      bad.close();
    }
  });
  it('subscribing to an unknown file system fails with ENOENT', async () => {
    const err = await new Promise<Error>((resolve) => {
      // Bounded: no error within 4 s fails the expectation below (and leaves no timer behind).
      const timer = setTimeout(() => {
        sub.close();
        resolve(new Error('no error within 4 s'));
      }, 4000);
      const sub = t.client.subscribe(424242, 0, { event: () => undefined, error: (e) => {
        clearTimeout(timer);
        resolve(e);
      } });
    });
    expect(err.message).toContain('file system 424242 does not exist');
  });
  it('garbage bytes and unknown methods get an error status; the server keeps serving', async () => {
    const call = (method: string, bytes: Buffer) => new Promise<grpc.status>((resolve) => {
      raw.makeUnaryRequest(method, (b: Buffer) => b, (b: Buffer) => b, bytes, new grpc.Metadata(), { deadline: Date.now() + 3000 },
        (err) => resolve(err ? err.code : grpc.status.OK));
    });
    expect(await call('/kurve.metaserver.Metaserver/Lookup', Buffer.from([0xff, 0xff, 0xff, 0x01, 0x02]))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await call('/kurve.metaserver.Metaserver/NoSuchMethod', Buffer.alloc(3))).toBe(grpc.status.UNIMPLEMENTED);
    // A huge uint64 ino (beyond 2^53) is refused, not rounded.
    expect((await status(unary(raw, raw.getAttr, { fsId, ino: 2 ** 60 }))).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((await t.client.getattr(fsId, ROOT_INO)).ino).toBe(ROOT_INO);
  });
  it('lists and creates file systems idempotently', async () => {
    expect(await t.client.createFs(fsId)).toBe(false);
    expect(await errOf(t.client.createFs(fsId, { chunkSize: 8192 }))).toBe('EEXIST');
    expect((await t.client.listFs()).map((f) => f.fsId)).toContain(fsId);
  });
});

describe('metaserver process lifecycle', () => {
  it('MetaClient retries reads while the server restarts; writes fail fast with EIO', async () => {
    const dir = tempDir('kurve-msrestart-');
    let server = await startMetaserver({ listen: '127.0.0.1:0', dataDir: dir, createFs: [1] });
    const address = server.address;
    const client = new MetaClient(address, { deadlineMs: 5000 });
    try {
      await client.mkdir(1, ROOT_INO, Buffer.from('d'), 0o755, C);
      await server.close();
      expect(await errOf(client.mkdir(1, ROOT_INO, Buffer.from('e'), 0o755, C))).toBe('EIO');
      const read = client.lookup(1, ROOT_INO, Buffer.from('d'));
      await new Promise((r) => setTimeout(r, 300));
      server = await startMetaserver({ listen: address, dataDir: dir });
      expect((await read).mode & 0o170000).toBe(0o040000);
    } finally {
      client.close();
      await server.close();
    }
  });

  it('serves /metrics and closes promptly with a live change-feed stream', async () => {
    const dir = tempDir('kurve-mslife-');
    const server = await startMetaserver({ listen: '127.0.0.1:0', dataDir: dir, metricsListen: '127.0.0.1:0', createFs: [1] });
    const client = new MetaClient(server.address);
    try {
      let ended: Error | undefined;
      client.subscribe(1, 0, { event: () => undefined, error: (e) => (ended = e) });
      await new Promise((r) => setTimeout(r, 100));
      await client.mkdir(1, ROOT_INO, Buffer.from('d'), 0o755, C);
      const text = await get(`http://${server.rpc.metricsAddress}/metrics`);
      for (const name of ['kurve_metaserver_engine_ops_total', 'kurve_metaserver_engine_duration_seconds', 'kurve_metaserver_ops_total',
        'kurve_metaserver_feed_subscribers 1', 'kurve_metaserver_keys{kind="inodes"}', 'kurve_metaserver_gc_queue_length']) {
        expect(text).toContain(name);
      }
      const start = Date.now();
      await server.close();
      expect(Date.now() - start).toBeLessThan(2000);
      for (let i = 0; i < 100 && !ended; i++) await new Promise((r) => setTimeout(r, 20));
      expect(ended).toBeDefined();
    } finally {
      client.close();
      await server.close();
    }
  });
});
