// Serializers for the two messages that carry chunk bytes (PutRequest, GetResponse). The wire
// format is exactly the proto's; only the copies differ: ts-proto's writer grows a buffer, then
// finish() and Buffer.from() copy it twice more, and its reader copies `data` again — for
// megabytes per call that garbage dominated the profile. Here data is copied once on encode and
// never on decode (a view of the received message). Everything else still goes through ts-proto.
import * as grpc from '@grpc/grpc-js';
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { DatastoreClient, DatastoreService, GetResponse, PutRequest } from '../gen/datastore';

const EMPTY = Buffer.alloc(0);
/** Field 4 (PutRequest.data) and field 1 (GetResponse.data), length-delimited. */
const PUT_DATA_TAG = (4 << 3) | 2;
const GET_DATA_TAG = (1 << 3) | 2;

function encodeWithData(head: Uint8Array, tag: number, data: Buffer): Buffer {
  if (data.length === 0) return Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  const prefix = new BinaryWriter().uint32(tag).uint32(data.length).finish();
  return Buffer.concat([head, prefix, data]);
}

/** Splits out the data field (as a view) and decodes the rest of the message with `decodeRest`. */
function decodeWithData<T extends { data: Buffer }>(buf: Buffer, tag: number, decodeRest: (b: Uint8Array) => T): T {
  const r = new BinaryReader(buf);
  let data: Buffer = EMPTY;
  const rest: Uint8Array[] = [];
  while (r.pos < r.len) {
    const start = r.pos;
    const t = r.uint32();
    if (t === tag) {
      const v = r.bytes();
      data = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    } else {
      r.skip(t & 7, t >>> 3);
      rest.push(buf.subarray(start, r.pos));
    }
  }
  const msg = decodeRest(rest.length === 1 ? rest[0] : Buffer.concat(rest));
  msg.data = data;
  return msg;
}

export function encodePutRequest(m: PutRequest): Buffer {
  return encodeWithData(PutRequest.encode({ ...m, data: EMPTY }).finish(), PUT_DATA_TAG, m.data);
}
export function decodePutRequest(b: Buffer): PutRequest {
  return decodeWithData(b, PUT_DATA_TAG, (rest) => PutRequest.decode(rest));
}
export function encodeGetResponse(m: GetResponse): Buffer {
  return encodeWithData(GetResponse.encode({ ...m, data: EMPTY }).finish(), GET_DATA_TAG, m.data);
}
export function decodeGetResponse(b: Buffer): GetResponse {
  return decodeWithData(b, GET_DATA_TAG, (rest) => GetResponse.decode(rest));
}

/** DatastoreService with the copy-saving serializers; same paths, same wire format. */
export const DatastoreWire = {
  ...DatastoreService,
  put: { ...DatastoreService.put, requestSerialize: encodePutRequest, requestDeserialize: decodePutRequest },
  get: { ...DatastoreService.get, responseSerialize: encodeGetResponse, responseDeserialize: decodeGetResponse },
} as const;

/** A generated-style client that uses DatastoreWire. */
export const DatastoreWireClient = grpc.makeGenericClientConstructor(DatastoreWire, 'kurve.datastore.Datastore') as unknown as {
  new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>): DatastoreClient;
};
