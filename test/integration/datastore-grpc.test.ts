// The datastore over real gRPC (port 0, temp dirs): data path, corruption, malformed requests,
// token, health, metrics, and heartbeats to a real MDS.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, toErrno } from '../../src/common/errno';
import { clientChannelOptions, unary } from '../../src/common/rpc';
import { DatastoreUnreachableError } from '../../src/datastore/api';
import { DataClient } from '../../src/datastore/client';
import { startDatastore, Datastore } from '../../src/datastore/server';
import { DatastoreClient, PutRequest } from '../../src/gen/datastore';
import { HealthClient } from '../../src/gen/common';
import { startMds } from '../../src/mds/server';

const MiB = 1024 * 1024;
const TOKEN = 'test-token';

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a failure'); }, (e: unknown) => e);
}

function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Sends raw Put messages (for malformed streams the DataClient would never produce). */
function rawPut(raw: DatastoreClient, msgs: PutRequest[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const call = raw.put({ deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res)));
    for (const m of msgs) call.write(m);
    call.end();
  });
}

// The data path runs twice: get/put over the bulk transport (what DataClient uses by default) and
// over gRPC only (what it falls back to); every other call is gRPC in both.
describe.each([['the bulk transport', true], ['gRPC only', false]])('datastore over %s', (_label, bulk) => {
  let dir: string;
  let ds: Datastore;
  let client: DataClient;
  let raw: DatastoreClient;
  const key = (ino: number, index = 0, version = 1) => ({ fsId: 1, ino, index, version });

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-dsg-'));
    ds = await startDatastore({ listen: '127.0.0.1:0', dir, token: TOKEN, metricsListen: '127.0.0.1:0' });
    client = new DataClient(ds.address, { token: TOKEN, bulk });
    raw = new DatastoreClient(ds.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: TOKEN }));
  });
  afterAll(async () => {
    client?.close();
    raw?.close();
    await ds?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('puts and gets large chunks (4 MiB and 9 MiB + 1), small and empty ones', async () => {
    const four = randomBytes(4 * MiB);
    const nine = randomBytes(9 * MiB + 1);
    await client.put(key(1), four);
    await client.put(key(2), nine);
    await client.put(key(3), Buffer.from('tiny'));
    await client.put(key(4), Buffer.alloc(0));
    expect((await client.get(key(1))).equals(four)).toBe(true);
    expect((await client.get(key(2))).equals(nine)).toBe(true);
    expect((await client.get(key(3))).toString()).toBe('tiny');
    expect((await client.get(key(4))).length).toBe(0);
  });

  it('serves ranged gets', async () => {
    const data = randomBytes(3 * MiB + 5);
    await client.put(key(5), data);
    expect((await client.get(key(5), 10, 100)).equals(data.subarray(10, 110))).toBe(true);
    expect((await client.get(key(5), MiB - 3, 2 * MiB)).equals(data.subarray(MiB - 3, 3 * MiB - 3))).toBe(true);
    expect((await client.get(key(5), 3 * MiB)).equals(data.subarray(3 * MiB))).toBe(true);
    expect((await client.get(key(5), 4 * MiB, 10)).length).toBe(0);
  });

  it('deletes, bulk-deletes, deletes whole inodes and reports stats', async () => {
    for (let v = 1; v <= 3; v++) await client.put(key(10, 0, v), randomBytes(100));
    await client.put(key(11), randomBytes(100));
    await client.put(key(12), randomBytes(100));
    const before = await client.stats();
    expect(before.objects).toBeGreaterThanOrEqual(5);
    expect(before.capacityBytes).toBeGreaterThan(before.freeBytes);
    await client.delete(key(12));
    await client.delete(key(12)); // absent: fine
    expect(await client.deleteMany([key(11), key(999)])).toBe(1);
    expect(await client.deleteInode(1, 10)).toBe(3);
    expect(toErrno(await failure(client.get(key(10, 0, 2))))).toBe(Errno.ENOENT);
    const after = await client.stats();
    expect(after.objects).toBe(before.objects - 5);
    expect(after.usedBytes).toBeLessThan(before.usedBytes);
  });

  it('lists every object once, page by page in a stable order, with length and mtime', async () => {
    const keys = [
      { fsId: 7, ino: 1, index: 0, version: 3 }, { fsId: 7, ino: 1, index: 1, version: 4 }, { fsId: 7, ino: 300, index: 2, version: 5 },
      { fsId: 8, ino: 2, index: 0, version: 9 }, { fsId: 7, ino: 65536 + 1, index: 0, version: 6 },
    ];
    const before = Date.now() - 1000;
    for (const k of keys) await client.put(k, Buffer.from(`obj-${k.version}`));
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    do {
      const page = await client.list(after, 2);
      pages++;
      for (const o of page.objects) {
        if (o.key.fsId !== 7 && o.key.fsId !== 8) continue;
        expect(o.mtimeMs).toBeGreaterThanOrEqual(before);
        expect(o.length).toBeGreaterThan(0);
        seen.push(`${o.key.fsId}/${o.key.ino}/${o.key.index}.${o.key.version}`);
      }
      after = page.next;
    } while (after);
    expect(seen.sort()).toEqual(keys.map((k) => `${k.fsId}/${k.ino}/${k.index}.${k.version}`).sort());
    expect(pages).toBeGreaterThanOrEqual(3);
    await client.deleteMany(keys);
    const rest = await client.list(undefined, 10_000);
    expect(rest.objects.filter((o) => o.key.fsId === 7 || o.key.fsId === 8)).toEqual([]);
    expect(await failure(client.list('not/a/token', 10))).toBeInstanceOf(FsError);
  });
  it('a byte flipped on disk makes the read fail with a clear error (EIO, checksum mismatch, the key)', async () => {
    const data = randomBytes(4 * MiB);
    const k = { fsId: 3, ino: 4242, index: 7, version: 9 };
    await client.put(k, data);
    const file = path.join(dir, 'objects', '3', (4242 % 256).toString(16).padStart(2, '0'),
      (Math.floor(4242 / 256) % 256).toString(16).padStart(2, '0'), '4242', '7.9');
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, 2 * MiB);
    b[0] ^= 1;
    fs.writeSync(fd, b, 0, 1, 2 * MiB);
    fs.closeSync(fd);
    const err = await failure(client.get(k));
    expect(err).toBeInstanceOf(FsError);
    expect((err as FsError).errno).toBe(Errno.EIO);
    expect((err as FsError).message).toMatch(/checksum mismatch/);
    expect((err as FsError).message).toContain('fs=3 ino=4242 index=7 version=9');
    // Ranges away from the damaged block still read (they are verified too).
    expect((await client.get(k, 0, 1000)).equals(data.subarray(0, 1000))).toBe(true);
  });

  it('refuses a put whose CRC32C does not match (end to end)', async () => {
    const data = randomBytes(1000);
    const err = await failure(client.put(key(20), data, crc32c(data) ^ 0xff));
    expect(toErrno(err)).toBe(Errno.EIO);
    expect((err as Error).message).toMatch(/checksum mismatch/);
  });

  it('answers malformed or oversized requests with INVALID_ARGUMENT and a reason, and keeps serving', async () => {
    const data = Buffer.from('abc');
    const cases: Array<[PutRequest[], RegExp]> = [
      [[{ key: undefined, totalLength: 3, crc32c: crc32c(data), data }], /first Put message must carry the chunk key/],
      [[{ key: key(30), totalLength: 65 * MiB, crc32c: 0, data: Buffer.alloc(0) }], /exceeds the limit/],
      [[{ key: key(30), totalLength: 2, crc32c: crc32c(data), data }], /more than the announced/],
      [[{ key: key(30), totalLength: 10, crc32c: crc32c(data), data }], /ended after 3 of the announced 10 bytes/],
      [[{ key: { fsId: 1, ino: 1, index: 1, version: 1 }, totalLength: 3, crc32c: 0, data: Buffer.alloc(0) },
        { key: key(31), totalLength: 0, crc32c: 0, data }], /only the first Put message may carry a key/],
      [[], /empty Put stream/],
    ];
    for (const [msgs, reason] of cases) {
      const err = (await failure(rawPut(raw, msgs))) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toMatch(reason);
    }
    const badGet = (await failure(client.get({ fsId: -1, ino: 1, index: 0, version: 0 }))) as FsError;
    expect(badGet.errno).toBe(Errno.EINVAL);
    expect(badGet.message).toMatch(/invalid chunk key: fsId/);
    const tooMany = Array.from({ length: 100_001 }, (_, i) => key(i));
    const err = await failure(client.deleteMany(tooMany));
    expect(toErrno(err)).toBe(Errno.EINVAL);
    expect((err as Error).message).toMatch(/at most 100000/);
    // Still serving.
    await client.put(key(32), data);
    expect((await client.get(key(32))).toString()).toBe('abc');
  });

  it('answers undecodable request bytes with INVALID_ARGUMENT (unary, server- and client-streaming)', async () => {
    const c = new grpc.Client(ds.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: TOKEN }));
    const id = (b: Buffer) => b;
    // Field 1, length-delimited, claims 255 bytes that never come.
    const garbage = Buffer.from([0x0a, 0xff, 0x01]);
    const md = () => new grpc.Metadata();
    const opts = () => ({ deadline: Date.now() + 5000 });
    try {
      const unaryErr = await new Promise<grpc.ServiceError>((resolve) => {
        c.makeUnaryRequest('/kurve.datastore.Datastore/Delete', id, id, garbage, md(), opts(), (err) => resolve(err!));
      });
      const streamErr = await new Promise<grpc.ServiceError>((resolve) => {
        const call = c.makeServerStreamRequest('/kurve.datastore.Datastore/Get', id, id, garbage, md(), opts());
        call.on('data', () => undefined);
        call.on('error', (err: grpc.ServiceError) => resolve(err));
      });
      const putErr = await new Promise<grpc.ServiceError>((resolve) => {
        const call = c.makeClientStreamRequest('/kurve.datastore.Datastore/Put', id, id, md(), opts(), (err) => resolve(err!));
        call.write(garbage);
        call.end();
      });
      for (const err of [unaryErr, streamErr, putErr]) {
        expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
        expect(err.details).toMatch(/^malformed request: /);
      }
    } finally {
      c.close();
    }
    expect((await client.stats()).objects).toBeGreaterThan(0);
  });

  it('tells "did not answer" (may be tried elsewhere) from an answer such as ENOENT or EIO', async () => {
    const absent = await failure(client.get(key(4242)));
    expect(toErrno(absent)).toBe(Errno.ENOENT);
    expect(absent).not.toBeInstanceOf(DatastoreUnreachableError);
    const nobody = new DataClient('127.0.0.1:1', { token: TOKEN });
    try {
      for (const call of [nobody.get(key(1)), nobody.put(key(1), Buffer.alloc(10)), nobody.deleteInode(1, 1)]) {
        const e = await failure(call);
        expect(e).toBeInstanceOf(DatastoreUnreachableError);
        expect(toErrno(e)).toBe(Errno.EIO);
        expect((e as Error).message).toMatch(/^EIO: datastore 127\.0\.0\.1:1: /);
      }
    } finally {
      nobody.close();
    }
  });

  it('enforces the token on every RPC, including Health', async () => {
    const anon = new DataClient(ds.address);
    const wrong = new DataClient(ds.address, { token: 'nope' });
    const health = new HealthClient(ds.address, grpc.credentials.createInsecure(), clientChannelOptions({ token: TOKEN }));
    try {
      expect(toErrno(await failure(anon.stats()))).toBe(Errno.EACCES);
      expect(toErrno(await failure(wrong.get(key(32))))).toBe(Errno.EACCES);
      expect(toErrno(await failure(wrong.put(key(33), Buffer.from('x'))))).toBe(Errno.EACCES);
      const h = await unary(health, health.check, {});
      expect(h).toMatchObject({ service: 'datastore', pid: process.pid });
      expect(h.version).toMatch(/^\d+\.\d+\.\d+/);
    } finally {
      anon.close();
      wrong.close();
      health.close();
    }
  });

  it('exposes per-method RPC metrics and datastore metrics on /metrics', async () => {
    const text = await getText(`http://${ds.rpc.metricsAddress}/metrics`);
    if (bulk) {
      expect(text).toMatch(/kurve_rpc_requests_total\{service="datastore",method="BulkInfo",code="OK"\} \d+/);
    } else {
      expect(text).toMatch(/kurve_rpc_requests_total\{service="datastore",method="Put",code="OK"\} \d+/);
      expect(text).toMatch(/kurve_rpc_duration_seconds_bucket\{le="[^"]+",service="datastore",method="Get"\}/);
    }
    expect(text).toMatch(/kurve_rpc_errors_total\{service="datastore",method="Put",code="INVALID_ARGUMENT"\} \d+/);
    expect(text).toMatch(/kurve_datastore_checksum_errors_total\{op="get"\} [1-9]/);
    expect(text).toMatch(/kurve_datastore_bytes_total\{op="put"\} [1-9]/);
  });
});

describe('datastore shutdown', () => {
  it('close() lets an in-flight call finish, then refuses new calls', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-dsc-'));
    const ds = await startDatastore({ listen: '127.0.0.1:0', dir });
    const c = new DataClient(ds.address, { deadlineMs: 2000 });
    const raw = new DatastoreClient(ds.address, grpc.credentials.createInsecure(), clientChannelOptions({}));
    try {
      const data = randomBytes(32 * MiB);
      const k = { fsId: 1, ino: 1, index: 0, version: 1 };
      await c.put(k, data);
      // A 32-piece get: once the first piece arrived the call is certainly in flight on the server.
      let closed: Promise<void> | undefined;
      const got = await new Promise<Buffer>((resolve, reject) => {
        const pieces: Buffer[] = [];
        const stream = raw.get({ key: k, offset: 0, length: 0, toEnd: true }, { deadline: Date.now() + 20_000 });
        stream.on('data', (m: { data: Buffer }) => {
          pieces.push(m.data);
          closed ??= ds.close();
        });
        stream.on('error', reject);
        stream.on('end', () => resolve(Buffer.concat(pieces)));
      });
      expect(closed).toBeDefined();
      expect(got.equals(data)).toBe(true);
      await closed;
      expect(toErrno(await failure(c.stats()))).toBe(Errno.EIO); // UNAVAILABLE: nobody listens
    } finally {
      c.close();
      raw.close();
      await ds.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('datastore heartbeats', () => {
  it('registers with the MDS, stays healthy while beating, and turns unhealthy after it stops', async () => {
    const mdsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-dsh-mds-'));
    const dsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-dsh-ds-'));
    const mds = await startMds({ listen: '127.0.0.1:0', dataDir: mdsDir, heartbeatMs: 250 });
    let ds: Datastore | undefined;
    try {
      ds = await startDatastore({ listen: '127.0.0.1:0', dir: dsDir, mds: mds.address });
      const until = async (cond: () => Promise<boolean>, ms: number) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          if (await cond()) return true;
          await new Promise((r) => setTimeout(r, 25));
        }
        return false;
      };
      const mine = async () => (await mds.mds.listServers('datastore')).find((s) => s.id === ds!.id);
      expect(await until(async () => (await mine())?.healthy === true, 3000)).toBe(true);
      expect((await mine())?.address).toBe(ds.address);
      // Beats continue: still healthy after several intervals.
      await new Promise((r) => setTimeout(r, 500));
      expect((await mine())?.healthy).toBe(true);
      expect(mds.mds.healthy('datastore')).toEqual([ds.address]);
      const id = ds.id;
      await ds.close();
      ds = undefined;
      expect(await until(async () => (await mds.mds.listServers('datastore')).find((s) => s.id === id)?.healthy === false, 3000)).toBe(true);
      expect(mds.mds.healthy('datastore')).toEqual([]);
      // Same directory, same id after a restart.
      ds = await startDatastore({ listen: '127.0.0.1:0', dir: dsDir });
      expect(ds.id).toBe(id);
    } finally {
      await ds?.close();
      await mds.close();
      fs.rmSync(mdsDir, { recursive: true, force: true });
      fs.rmSync(dsDir, { recursive: true, force: true });
    }
  });
});
