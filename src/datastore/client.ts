// DataClient: DataService over gRPC to one datastore. Puts stream 1 MiB pieces with the object's
// CRC32C (the server refuses a mismatch); gets check each piece's CRC32C. Every call has a
// deadline; failures come back as FsError (ENOENT, EIO, EINVAL…) naming the datastore.
import * as grpc from '@grpc/grpc-js';
import { crc32c } from '@node-rs/crc32';
import { FsError, fsError } from '../common/errno';
import { ClientOptions, clientChannelOptions, unary } from '../common/rpc';
import { rpcFsError } from '../common/service';
import { DatastoreClient, PutRequest } from '../gen/datastore';
import { DatastoreWireClient } from './wire';
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
}

export class DataClient implements DataService {
  private readonly client: DatastoreClient;
  private readonly deadlineMs: number;
  private readonly dataDeadlineMs: number;

  constructor(readonly address: string, opts: DataClientOptions = {}) {
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

  async put(key: ChunkKey, data: Buffer, crc = crc32c(data)): Promise<void> {
    validateKey(key);
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
    this.client.close();
  }
}
