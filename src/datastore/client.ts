// DataClient: DataService over gRPC to one datastore. Object bytes (get, put) travel over the
// datastore's raw-TCP bulk transport when it offers one (bulk-client.ts; learnt through the
// BulkInfo RPC), else over gRPC: puts stream 1 MiB pieces with the object's CRC32C (the server
// refuses a mismatch); gets check each piece's CRC32C. Every call has a deadline; failures come
// back as FsError (ENOENT, EIO, EINVAL…) naming the datastore, the same on either transport.
import * as grpc from '@grpc/grpc-js';
import { crc32c } from '@node-rs/crc32';
import { Errno, FsError, fsError } from '../common/errno';
import { ClientOptions, clientChannelOptions, unary } from '../common/rpc';
import { rpcFsError } from '../common/service';
import { DatastoreClient, PutRequest } from '../gen/datastore';
import { DatastoreWireClient } from './wire';
import { BulkChannel, BulkConnectError } from './bulk-client';
import { hostOf } from './bulk-server';
import { Op } from './bulk-frame';
import { ChunkKey, DataService, DataStats, DatastoreUnreachableError, ObjectPage } from './api';
import { formatKey, validateKey } from './chunk-store';
import { PIECE_BYTES } from './service';

const FLOW_CONTROL_WINDOW = 16 * 1024 * 1024;

/**
 * No answer from the datastore: the transport failed or the deadline passed. An error the
 * datastore itself sent carries its errno in the metadata (kurve-errno) and is an answer.
 */
function unanswered(err: unknown): boolean {
  const e = err as { code?: unknown; metadata?: grpc.Metadata } | null;
  if (!e || typeof e.code !== 'number') return false;
  if (e.code !== grpc.status.UNAVAILABLE && e.code !== grpc.status.DEADLINE_EXCEEDED) return false;
  return !(e.metadata instanceof grpc.Metadata && e.metadata.get('kurve-errno').length > 0);
}

export interface DataClientOptions extends ClientOptions {
  /** Deadline for put/get of one object (default 30 s); deadlineMs is for the small calls (10 s). */
  readonly dataDeadlineMs?: number;
  /** false: get/put over gRPC only. Default: the bulk transport when the datastore offers one. */
  readonly bulk?: boolean;
  /** HOST:PORT of the bulk transport, instead of what the datastore advertises (NAT, tests). */
  readonly bulkAddress?: string;
}

/** After the bulk port could not be reached, calls use gRPC this long before bulk is tried again. */
export const BULK_RETRY_MS = 5000;
/** A datastore that offers no bulk port is asked again after this long (it may have restarted). */
const BULK_ASK_AGAIN_MS = 60_000;

export class DataClient implements DataService {
  private readonly client: DatastoreClient;
  private readonly deadlineMs: number;
  private readonly dataDeadlineMs: number;
  private bulk: BulkChannel | undefined;
  private bulkLookup: Promise<BulkChannel | undefined> | undefined;
  private bulkRetryAt = 0;
  private closed = false;

  constructor(readonly address: string, private readonly opts: DataClientOptions = {}) {
    this.client = new DatastoreWireClient(address, grpc.credentials.createInsecure(), {
      ...clientChannelOptions(opts),
      // HTTP/2's default 64 KiB receive window costs a round trip per 64 KiB of a 4 MiB get.
      'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW,
    });
    this.deadlineMs = opts.deadlineMs ?? 10_000;
    this.dataDeadlineMs = opts.dataDeadlineMs ?? 30_000;
  }

  private fail(err: unknown): FsError {
    const e = rpcFsError(err, `datastore ${this.address}`);
    return unanswered(err) ? new DatastoreUnreachableError(e.errno, e.message.slice(e.message.indexOf(': ') + 2)) : e;
  }

  /** The bulk channel to use now, if any (asks the datastore for its port once). */
  private async bulkChannel(): Promise<BulkChannel | undefined> {
    if (this.opts.bulk === false || Date.now() < this.bulkRetryAt) return undefined;
    if (this.bulk) return this.bulk;
    this.bulkLookup ??= this.lookupBulk();
    return this.bulkLookup;
  }

  private async lookupBulk(): Promise<BulkChannel | undefined> {
    if (this.opts.bulkAddress) {
      const port = Number(this.opts.bulkAddress.slice(this.opts.bulkAddress.lastIndexOf(':') + 1));
      return (this.bulk = new BulkChannel(hostOf(this.opts.bulkAddress), port, this.opts.token));
    }
    try {
      const r = await unary(this.client, this.client.bulkInfo, {}, Math.min(this.deadlineMs, this.dataDeadlineMs));
      if (r.port !== 0) return (this.bulk = new BulkChannel(hostOf(this.address), r.port, this.opts.token));
      this.retryBulkIn(BULK_ASK_AGAIN_MS); // not offered
      return undefined;
    } catch (err) {
      const e = this.fail(err);
      // Not reachable at all: this call fails over like any other.
      if (e instanceof DatastoreUnreachableError) {
        this.bulkLookup = undefined;
        throw e;
      }
      // A datastore without BulkInfo (older) answers UNIMPLEMENTED.
      this.retryBulkIn(e.errno === Errno.ENOSYS ? BULK_ASK_AGAIN_MS : BULK_RETRY_MS);
      return undefined;
    }
  }

  /** gRPC only for `ms`; then bulk again, asking the datastore for its port anew (unless given). */
  private retryBulkIn(ms: number): void {
    this.bulkRetryAt = Date.now() + ms;
    if (this.opts.bulkAddress) return;
    // A restarted datastore may listen on another port.
    this.bulk?.close();
    this.bulk = undefined;
    this.bulkLookup = undefined;
  }

  /** A bulk request; undefined when the bulk port could not be reached (then use gRPC). */
  private async viaBulk(op: number, key: ChunkKey, payload: Buffer | undefined, fields: { offset?: number; length?: number; crc?: number }) {
    if (this.closed) throw new DatastoreUnreachableError(Errno.EIO, `datastore ${this.address}: client closed`);
    const ch = await this.bulkChannel();
    if (!ch) return undefined;
    try {
      const f = await ch.request({ op, key, ...fields }, payload, this.dataDeadlineMs);
      if (f.errno !== 0) throw new FsError(f.errno, `datastore ${this.address}: ${f.payload.toString('utf8')}`);
      return f;
    } catch (err) {
      if (!(err instanceof BulkConnectError)) throw err;
      if (this.bulk === ch) this.retryBulkIn(BULK_RETRY_MS);
      return undefined;
    } finally {
      // A call that was finding the bulk port when close() came opened the channel after it.
      if (this.closed) ch.close();
    }
  }

  async put(key: ChunkKey, data: Buffer, crc = crc32c(data)): Promise<void> {
    validateKey(key);
    if (await this.viaBulk(Op.PUT, key, data, { crc: crc >>> 0 })) return;
    await new Promise<void>((resolve, reject) => {
      const call = this.client.put({ deadline: Date.now() + this.dataDeadlineMs }, (err) => (err ? reject(this.fail(err)) : resolve()));
      const send = async () => {
        for (let off = 0; off < data.length || off === 0; off += PIECE_BYTES) {
          const msg: PutRequest = off === 0
            ? { key, totalLength: data.length, crc32c: crc >>> 0, data: data.subarray(0, PIECE_BYTES) }
            : { key: undefined, totalLength: 0, crc32c: 0, data: data.subarray(off, off + PIECE_BYTES) };
          if (!call.write(msg)) await new Promise<void>((r) => call.once('drain', r));
          if (data.length === 0) break;
        }
        call.end();
      };
      // A failed write also fails the call, which the callback above reports.
      send().catch(() => call.cancel());
    });
  }

  async get(key: ChunkKey, offset = 0, length = -1): Promise<Buffer> {
    validateKey(key);
    if (!Number.isSafeInteger(offset) || offset < 0) throw fsError('EINVAL', `invalid offset ${offset}`);
    if (!Number.isSafeInteger(length) || length < -1) throw fsError('EINVAL', `invalid length ${length}`);
    const f = await this.viaBulk(Op.GET, key, undefined, { offset, length });
    if (f) {
      if (crc32c(f.payload) !== f.crc) {
        throw fsError('EIO', `datastore ${this.address}: checksum mismatch in transit reading ${formatKey(key)}`);
      }
      return f.payload;
    }
    const pieces: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = this.client.get(
        { key, offset, length: length === -1 ? 0 : length, toEnd: length === -1 },
        { deadline: Date.now() + this.dataDeadlineMs },
      );
      stream.on('data', (m: { data: Buffer; crc32c: number }) => {
        if (crc32c(m.data) !== m.crc32c) {
          stream.cancel();
          reject(fsError('EIO', `datastore ${this.address}: checksum mismatch in transit reading ${formatKey(key)}`));
          return;
        }
        pieces.push(m.data);
      });
      stream.on('error', (err) => reject(this.fail(err)));
      stream.on('end', () => resolve());
    });
    return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces);
  }

  private call<Req, Res>(method: Parameters<typeof unary<Req, Res>>[1], req: Req): Promise<Res> {
    return unary(this.client, method, req, this.deadlineMs).catch((err: unknown) => {
      throw this.fail(err);
    });
  }

  async delete(key: ChunkKey): Promise<void> {
    await this.call(this.client.delete, { key });
  }

  async deleteInode(fsId: number, ino: number): Promise<number> {
    return (await this.call(this.client.deleteInode, { fsId, ino })).deleted;
  }

  async deleteMany(keys: ChunkKey[]): Promise<number> {
    return (await this.call(this.client.deleteMany, { keys })).deleted;
  }

  async stats(): Promise<DataStats> {
    return this.call(this.client.stats, {});
  }

  async list(after: string | undefined, limit: number): Promise<ObjectPage> {
    const r = await this.call(this.client.list, { after: after ?? '', limit });
    const objects = r.objects.filter((o) => o.key).map((o) => ({ key: o.key!, length: o.length, mtimeMs: o.mtimeMs }));
    return r.next ? { objects, next: r.next } : { objects };
  }

  close(): void {
    this.closed = true;
    this.bulk?.close();
    this.client.close();
  }
}
