// The kurve.datastore.Datastore gRPC service over a ChunkStore: client-streaming Put, server-
// streaming Get in 1 MiB pieces (each with its own CRC32C), bulk deletes and stats. Every request
// is validated here or in the store; bad ones get INVALID_ARGUMENT with a reason.
import { invalidArgument, ServerOptions, adaptService, AsyncService, CallContext } from '../common/rpc';
import type { RpcService } from '../common/service';
import { crc32c } from '@node-rs/crc32';
import { PutRequest, PutResponse } from '../gen/datastore';
import { DatastoreWire } from './wire';
import { MAX_OBJECT_BYTES, ChunkStore, validateKey } from './chunk-store';
import { BULK_VERSION } from './bulk-frame';

/** Size of each Get response piece and of each Put message the client sends. */
export const PIECE_BYTES = 1024 * 1024;
/** Most keys one DeleteMany may carry. */
export const MAX_DELETE_KEYS = 100_000;
/** Most objects one List page returns. */
export const MAX_LIST = 10_000;

async function receivePut(requests: AsyncIterable<PutRequest>, ctx: CallContext, maxBytes: number) {
  let buf: Buffer | undefined;
  let key: PutRequest['key'];
  let crc = 0;
  let got = 0;
  for await (const m of requests) {
    if (!buf) {
      if (!m.key) throw invalidArgument('the first Put message must carry the chunk key');
      validateKey(m.key);
      if (m.totalLength > maxBytes) {
        throw invalidArgument(`object of ${m.totalLength} bytes exceeds the limit of ${maxBytes} bytes`);
      }
      key = m.key;
      crc = m.crc32c;
      buf = Buffer.allocUnsafe(m.totalLength);
    } else if (m.key) {
      throw invalidArgument('only the first Put message may carry a key');
    }
    if (got + m.data.length > buf.length) {
      throw invalidArgument(`Put sent more than the announced ${buf.length} bytes`);
    }
    m.data.copy(buf, got);
    got += m.data.length;
    if (ctx.cancelled()) throw invalidArgument('cancelled by the client');
  }
  if (!buf || !key) throw invalidArgument('empty Put stream: no key');
  if (got !== buf.length) throw invalidArgument(`Put ended after ${got} of the announced ${buf.length} bytes`);
  return { key, data: buf, crc };
}

/**
 * `bulkPort` tells BulkInfo where the bulk transport listens (0 or absent: not served); a
 * function, as the listener may start after the service is built, or stop before it.
 */
export function datastoreHandlers(
  store: ChunkStore, maxObjectBytes = MAX_OBJECT_BYTES, bulkPort: () => number = () => 0,
): AsyncService<typeof DatastoreWire> {
  return {
    put: async (requests, ctx): Promise<PutResponse> => {
      const { key, data, crc } = await receivePut(requests, ctx, maxObjectBytes);
      await store.put(key, data, crc);
      return { length: data.length };
    },
    get: async (req, sink) => {
      validateKey(req.key);
      const length = req.toEnd ? -1 : req.length;
      const { data, objectLength } = await store.read(req.key, req.offset, length);
      for (let off = 0; off < data.length || off === 0; off += PIECE_BYTES) {
        if (sink.cancelled()) return;
        const piece = data.subarray(off, off + PIECE_BYTES);
        sink.write({ data: piece, crc32c: crc32c(piece), objectLength: off === 0 ? objectLength : 0 });
        if (data.length === 0) break;
      }
    },
    delete: async (req) => {
      validateKey(req.key);
      return { deleted: await store.deleteMany([req.key]) };
    },
    deleteInode: async (req) => ({ deleted: await store.deleteInode(req.fsId, req.ino) }),
    deleteMany: async (req) => {
      if (req.keys.length > MAX_DELETE_KEYS) {
        throw invalidArgument(`DeleteMany with ${req.keys.length} keys: at most ${MAX_DELETE_KEYS} per call`);
      }
      return { deleted: await store.deleteMany(req.keys) };
    },
    stats: async () => store.stats(),
    list: async (req) => {
      const limit = Math.min(req.limit || MAX_LIST, MAX_LIST);
      const page = await store.list(req.after || undefined, limit);
      return { objects: page.objects, next: page.next ?? '' };
    },
    bulkInfo: async () => ({ port: bulkPort(), protocolVersion: BULK_VERSION }),
  };
}

/** The Datastore service ready for a grpc-js server (also the shared one of `kurve up`). */
export function datastoreRpcService(store: ChunkStore, opts: ServerOptions = {}, bulkPort?: () => number): RpcService {
  return {
    definition: DatastoreWire,
    impl: adaptService('datastore', DatastoreWire, datastoreHandlers(store, MAX_OBJECT_BYTES, bulkPort), opts),
  };
}
