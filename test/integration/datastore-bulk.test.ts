// The datastore's raw-TCP bulk transport with real sockets and processes (free ports, temp dirs):
// get/put go over it, a byte flipped in transit is EIO, the token is enforced, hostile headers
// close only their connection, a datastore killed or hung mid-get is DatastoreUnreachableError
// within the deadline, and a closed bulk port falls back to gRPC.
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Errno, FsError } from '../../src/common/errno';
import { DatastoreUnreachableError } from '../../src/datastore/api';
import { encodeHeader, Frame, FrameDecoder, HEADER_BYTES, Op } from '../../src/datastore/bulk-frame';
import { BULK_RETRY_MS, DataClient } from '../../src/datastore/client';
import { Datastore, startDatastore } from '../../src/datastore/server';
import { CLI } from '../helpers/metaserver-process';
import { startEmbedded } from '../../src/embedded/embedded';
import { DatastoreClient } from '../../src/gen/datastore';
import * as grpc from '@grpc/grpc-js';
import { unary } from '../../src/common/rpc';
import { registry } from '../../src/common/metrics';

/** Get and Put calls the datastore services in this process answered over gRPC so far. */
async function grpcDataCalls(): Promise<number> {
  const m = await registry.getSingleMetric('kurve_rpc_requests_total')?.get();
  return (m?.values ?? [])
    .filter((v) => v.labels.service === 'datastore' && (v.labels.method === 'Get' || v.labels.method === 'Put'))
    .reduce((n, v) => n + v.value, 0);
}

const MiB = 1024 * 1024;
const TOKEN = 'bulk-token';
const key = (ino: number, index = 0, version = 1) => ({ fsId: 1, ino, index, version });

async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(() => { throw new Error('expected a failure'); }, (e: unknown) => e);
}

interface ProxyMode {
  /** Flip the byte at this offset of the server -> client stream (of each connection). */
  flipDown?: number;
  /** Flip the byte at this offset of the client -> server stream. */
  flipUp?: number;
  /** Forward only this many bytes server -> client, then hold the rest. */
  stallDownAfter?: number;
  /** Stop reading from the client after this many bytes (its sends back up). */
  stallUpAfter?: number;
}

/** A TCP proxy in front of a bulk port that can damage or hold bytes; closes both sides together. */
async function startProxy(target: number, mode: ProxyMode) {
  const sockets = new Set<net.Socket>();
  const bytes = { up: 0, down: 0 };
  const pipe = (from: net.Socket, to: net.Socket, dir: 'up' | 'down', flipAt?: number, stallAfter?: number) => {
    let seen = 0;
    from.on('data', (chunk: Buffer) => {
      if (dir === 'up' && mode.stallUpAfter !== undefined && seen + chunk.length > mode.stallUpAfter) from.pause();
      let out = chunk;
      if (flipAt !== undefined && flipAt >= seen && flipAt < seen + chunk.length) {
        out = Buffer.from(chunk);
        out[flipAt - seen] ^= 0x40;
      }
      if (stallAfter !== undefined) out = out.subarray(0, Math.max(0, stallAfter - seen));
      seen += chunk.length;
      bytes[dir] += out.length;
      if (out.length > 0) to.write(out);
    });
    from.on('close', () => to.destroy());
    from.on('error', () => to.destroy());
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    sockets.add(client).add(upstream);
    pipe(client, upstream, 'up', mode.flipUp);
    pipe(upstream, client, 'down', mode.flipDown, mode.stallDownAfter);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    bytes,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A raw bulk connection for requests DataClient would never send; collects answers until closed. */
async function rawBulk(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  const frames: Frame[] = [];
  const decoder = new FrameDecoder(() => 1 << 20);
  socket.on('data', (c: Buffer) => frames.push(...decoder.push(c)));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  return { socket, frames, closed };
}

describe('datastore bulk transport', () => {
  let dir: string;
  let ds: Datastore;
  let client: DataClient;
  const cleanup: Array<() => unknown> = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bulk-'));
    ds = await startDatastore({ listen: '127.0.0.1:0', dir, token: TOKEN, metricsListen: '' });
    client = new DataClient(ds.address, { token: TOKEN, dataDeadlineMs: 5000 });
  });
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  afterAll(async () => {
    client?.close();
    await ds?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('moves objects over the bulk port (pipelined, ranged, empty, 64 MiB) and maps errors to the same FsError', async () => {
    expect(ds.bulk?.port).toBeGreaterThan(0);
    const objs = [randomBytes(4 * MiB), randomBytes(9 * MiB + 1), Buffer.from('tiny'), Buffer.alloc(0), randomBytes(64 * MiB)];
    await Promise.all(objs.map((o, i) => client.put(key(100 + i), o)));
    const back = await Promise.all(objs.map((_, i) => client.get(key(100 + i))));
    back.forEach((b, i) => expect(b.equals(objs[i])).toBe(true));
    expect((await client.get(key(100), MiB - 3, 2 * MiB)).equals(objs[0].subarray(MiB - 3, 3 * MiB - 3))).toBe(true);
    expect((await client.get(key(100), 4 * MiB, 10)).length).toBe(0);
    const absent = (await failure(client.get(key(4242)))) as FsError;
    expect(absent).toBeInstanceOf(FsError);
    expect(absent).not.toBeInstanceOf(DatastoreUnreachableError);
    expect(absent.errno).toBe(Errno.ENOENT);
    expect(absent.message).toMatch(new RegExp(`ENOENT: datastore ${ds.address}: no chunk`));
    const tooBig = (await failure(client.put(key(4243), Buffer.alloc(64 * MiB + 1)))) as FsError;
    expect(tooBig.errno).toBe(Errno.EINVAL);
    // Object bytes really travel over the bulk port: a proxy in front of it carries them.
    const proxy = await startProxy(ds.bulk!.port, {});
    cleanup.push(() => proxy.close());
    const viaProxy = new DataClient(ds.address, { token: TOKEN, bulkAddress: proxy.address });
    cleanup.push(() => viaProxy.close());
    expect((await viaProxy.get(key(100))).equals(objs[0])).toBe(true);
    await viaProxy.put(key(199), objs[1]);
    expect(proxy.bytes.down).toBeGreaterThanOrEqual(4 * MiB);
    expect(proxy.bytes.up).toBeGreaterThanOrEqual(9 * MiB);
  });

  it('a byte flipped in transit is EIO: on a get (client check) and on a put (the store refuses it)', async () => {
    const data = randomBytes(2 * MiB);
    await client.put(key(200), data);
    const down = await startProxy(ds.bulk!.port, { flipDown: HEADER_BYTES /* auth answer */ + HEADER_BYTES + 1000 });
    cleanup.push(() => down.close());
    const c1 = new DataClient(ds.address, { token: TOKEN, bulkAddress: down.address });
    cleanup.push(() => c1.close());
    const e1 = (await failure(c1.get(key(200)))) as FsError;
    expect(e1.errno).toBe(Errno.EIO);
    expect(e1.message).toMatch(/checksum mismatch in transit/);
    expect(e1).not.toBeInstanceOf(DatastoreUnreachableError);

    const up = await startProxy(ds.bulk!.port, { flipUp: HEADER_BYTES + TOKEN.length + HEADER_BYTES + 5000 });
    cleanup.push(() => up.close());
    const c2 = new DataClient(ds.address, { token: TOKEN, bulkAddress: up.address });
    cleanup.push(() => c2.close());
    const e2 = (await failure(c2.put(key(201), data))) as FsError;
    expect(e2.errno).toBe(Errno.EIO);
    expect(e2.message).toMatch(/checksum mismatch on write/);
    expect(((await failure(client.get(key(201)))) as FsError).errno).toBe(Errno.ENOENT);

    // A bit of the key flipped in a PUT's header: refused (EIO), stored under neither key.
    const hdr = await startProxy(ds.bulk!.port, { flipUp: HEADER_BYTES + TOKEN.length + 17 });
    cleanup.push(() => hdr.close());
    const c3 = new DataClient(ds.address, { token: TOKEN, bulkAddress: hdr.address });
    cleanup.push(() => c3.close());
    const e3 = (await failure(c3.put(key(202), data))) as FsError;
    expect(e3.errno).toBe(Errno.EIO);
    expect(e3.message).toMatch(/checksum mismatch in transit \(frame header\)/);
    expect(((await failure(client.get(key(202)))) as FsError).errno).toBe(Errno.ENOENT);
    expect(((await failure(client.get({ ...key(202), ino: 202 + 0x4000 }))) as FsError).errno).toBe(Errno.ENOENT);
  });

  it('refuses a wrong or missing token and closes that connection; others keep working', async () => {
    const wrong = new DataClient(ds.address, { token: 'nope', bulkAddress: `127.0.0.1:${ds.bulk!.port}` });
    cleanup.push(() => wrong.close());
    const e = (await failure(wrong.get(key(100)))) as FsError;
    expect(e.errno).toBe(Errno.EACCES);
    expect(e.message).toMatch(/wrong token/);

    const raw = await rawBulk(ds.bulk!.port);
    cleanup.push(() => raw.socket.destroy());
    raw.socket.write(encodeHeader({ op: Op.GET, id: 7, key: key(100), offset: 0, length: -1 }));
    await raw.closed;
    expect(raw.frames).toHaveLength(1);
    expect(raw.frames[0].errno).toBe(Errno.EACCES);
    expect(raw.frames[0].payload.length).toBeLessThan(200); // an error, not the object
    expect((await client.get(key(102))).toString()).toBe('tiny');
  });

  it('a hostile header (payload of 4 GiB, garbage) closes only its own connection', async () => {
    const raw = await rawBulk(ds.bulk!.port);
    cleanup.push(() => raw.socket.destroy());
    const token = Buffer.from(TOKEN);
    raw.socket.write(Buffer.concat([encodeHeader({ op: Op.AUTH, id: 1 }, token), token]));
    raw.socket.write(encodeHeader({ op: Op.PUT, id: 2, key: key(300), payloadLength: 0xffffffff, crc: 0 }));
    await raw.closed;
    expect(raw.frames.map((f) => f.errno)).toEqual([0, Errno.EINVAL]);
    expect(raw.frames[1].payload.toString()).toMatch(/exceeds/);
    const junk = await rawBulk(ds.bulk!.port);
    cleanup.push(() => junk.socket.destroy());
    junk.socket.write(randomBytes(200));
    await junk.closed;
    expect((await client.get(key(102))).toString()).toBe('tiny');
  });

  it('falls back to gRPC when the bulk port is closed', async () => {
    const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bulk-fb-'));
    const ds2 = await startDatastore({ listen: '127.0.0.1:0', dir: dir2, metricsListen: '' });
    const c = new DataClient(ds2.address, { dataDeadlineMs: 5000 });
    cleanup.push(() => fs.rmSync(dir2, { recursive: true, force: true }), () => ds2.close(), () => c.close());
    const data = randomBytes(3 * MiB);
    await c.put(key(1), data); // over bulk
    await ds2.bulk!.close();
    // Connection refused: this call (and the next 5 s) go over gRPC, no error.
    expect((await c.get(key(1))).equals(data)).toBe(true);
    await c.put(key(2), data);
    expect((await c.get(key(2))).equals(data)).toBe(true);
    // A new client is told there is no bulk port and uses gRPC from the start.
    const fresh = new DataClient(ds2.address, {});
    cleanup.push(() => fresh.close());
    expect((await fresh.get(key(2))).equals(data)).toBe(true);
  });

  it('finds a restarted datastore\'s new bulk port after the retry interval', async () => {
    const dir3 = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bulk-rs-'));
    let ds3 = await startDatastore({ listen: '127.0.0.1:0', dir: dir3, metricsListen: '' });
    const c = new DataClient(ds3.address, { dataDeadlineMs: 5000 });
    cleanup.push(() => fs.rmSync(dir3, { recursive: true, force: true }), () => ds3.close(), () => c.close());
    const data = randomBytes(MiB);
    let before = await grpcDataCalls();
    await c.put(key(1), data);
    expect(await grpcDataCalls()).toBe(before); // bulk
    const oldPort = ds3.bulk!.port;
    await ds3.close();
    ds3 = await startDatastore({ listen: ds3.address, dir: dir3, metricsListen: '' });
    expect(ds3.bulk!.port).not.toBe(oldPort);
    expect((await c.get(key(1))).equals(data)).toBe(true); // old port refused: gRPC
    expect(await grpcDataCalls()).toBe(before + 1);
    await new Promise((r) => setTimeout(r, BULK_RETRY_MS + 100));
    before = await grpcDataCalls();
    expect((await c.get(key(1))).equals(data)).toBe(true);
    expect(await grpcDataCalls()).toBe(before); // asked for the port again: bulk
  });

  it('close() lets pending calls finish, then refuses new ones', async () => {
    const data = randomBytes(16 * MiB);
    await client.put(key(600), data);
    const c = new DataClient(ds.address, { token: TOKEN });
    const pending = c.get(key(600));
    const put = c.put(key(601), data);
    await new Promise((r) => setImmediate(r));
    c.close();
    expect((await pending).equals(data)).toBe(true);
    await put;
    expect(await failure(c.get(key(600)))).toBeInstanceOf(Error);
  });

  it('a datastore that stops reading mid-put fails every pending put as unreachable at the deadline', async () => {
    const hold = await startProxy(ds.bulk!.port, { stallUpAfter: 4 * MiB });
    cleanup.push(() => hold.close());
    const c = new DataClient(ds.address, { token: TOKEN, bulkAddress: hold.address, dataDeadlineMs: 1500 });
    cleanup.push(() => c.close());
    const t0 = Date.now();
    const errs = await Promise.all([0, 1, 2].map((i) => failure(c.put(key(500 + i), Buffer.alloc(32 * MiB, i)))));
    const took = Date.now() - t0;
    for (const e of errs) expect(e).toBeInstanceOf(DatastoreUnreachableError);
    expect(took).toBeLessThan(3000);
  });

  it('a datastore that stops answering mid-get fails the call as unreachable at the deadline', async () => {
    await client.put(key(400), randomBytes(8 * MiB));
    const hold = await startProxy(ds.bulk!.port, { stallDownAfter: 2 * HEADER_BYTES + MiB });
    cleanup.push(() => hold.close());
    const c = new DataClient(ds.address, { token: TOKEN, bulkAddress: hold.address, dataDeadlineMs: 1500 });
    cleanup.push(() => c.close());
    const t0 = Date.now();
    const e = await failure(c.get(key(400)));
    const took = Date.now() - t0;
    expect(e).toBeInstanceOf(DatastoreUnreachableError);
    expect((e as FsError).errno).toBe(Errno.ETIMEDOUT);
    expect(took).toBeGreaterThanOrEqual(1400);
    expect(took).toBeLessThan(3000);
  });
});

describe('datastore process killed (kill -9) mid-get', () => {
  let child: ChildProcess | undefined;
  let dir: string | undefined;
  afterEach(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('fails the pending get with DatastoreUnreachableError long before the deadline', async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bulk-kill-'));
    child = spawn(process.execPath, [CLI, 'datastore', '--listen', '127.0.0.1:0', '--dir', dir, '--metrics', ''], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const m = await new Promise<RegExpMatchArray>((resolve, reject) => {
      child!.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
        const hit = /listening on (\S+) \(bulk port (\d+)\)/.exec(err);
        if (hit) resolve(hit);
      });
      child!.once('exit', () => reject(new Error(`datastore exited: ${err}`)));
    });
    const [address, bulkPort] = [m[1], Number(m[2])];
    const writer = new DataClient(address, {});
    await writer.put(key(1), randomBytes(16 * MiB));
    writer.close();
    // The proxy hands over the first MiB, then the datastore dies with the rest unsent.
    const proxy = await startProxy(bulkPort, { stallDownAfter: HEADER_BYTES + MiB });
    const c = new DataClient(address, { bulkAddress: proxy.address, dataDeadlineMs: 10_000 });
    try {
      const pending = failure(c.get(key(1)));
      await new Promise((r) => setTimeout(r, 300));
      const t0 = Date.now();
      child.kill('SIGKILL');
      const e = await pending;
      expect(e).toBeInstanceOf(DatastoreUnreachableError);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      c.close();
      await proxy.close();
    }
  });
});

describe('kurve up (embedded) serving other clients', () => {
  it('advertises a bulk port through BulkInfo and moves objects over it', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurve-bulk-up-'));
    const up = await startEmbedded({ dataDir, listen: '127.0.0.1:0', metrics: '', token: TOKEN });
    const raw = new DatastoreClient(up.rpcAddress!, grpc.credentials.createInsecure());
    const c = new DataClient(up.rpcAddress!, { token: TOKEN });
    try {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${TOKEN}`);
      const info = await unary(raw, raw.bulkInfo, {}, 5000, md);
      expect(info.port).toBeGreaterThan(0);
      const proxy = await startProxy(info.port, {});
      const viaProxy = new DataClient(up.rpcAddress!, { token: TOKEN, bulkAddress: proxy.address });
      try {
        const data = randomBytes(5 * MiB);
        await c.put(key(1), data);
        expect((await viaProxy.get(key(1))).equals(data)).toBe(true);
        expect(proxy.bytes.down).toBeGreaterThanOrEqual(5 * MiB);
      } finally {
        viaProxy.close();
        await proxy.close();
      }
    } finally {
      c.close();
      raw.close();
      await up.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
