// The copy-saving codecs must be wire-compatible with the generated ones, both ways.
import { randomBytes } from 'node:crypto';
import { GetResponse, PutRequest } from '../../src/gen/datastore';
import { decodeGetResponse, decodePutRequest, encodeGetResponse, encodePutRequest } from '../../src/datastore/wire';

describe('datastore wire codecs', () => {
  const puts: PutRequest[] = [
    { key: { fsId: 7, ino: 2 ** 40, index: 3, version: 99 }, totalLength: 4 << 20, crc32c: 0xdeadbeef, data: randomBytes(1 << 20) },
    { key: undefined, totalLength: 0, crc32c: 0, data: randomBytes(10) },
    { key: { fsId: 0, ino: 0, index: 0, version: 0 }, totalLength: 5, crc32c: 1, data: Buffer.alloc(0) },
  ];
  it.each(puts.map((p, i) => [i, p] as const))('PutRequest %d round-trips against ts-proto both ways', (_i, m) => {
    const ours = encodePutRequest(m);
    const theirs = Buffer.from(PutRequest.encode(m).finish());
    expect(PutRequest.decode(ours)).toEqual(m);
    expect(decodePutRequest(theirs)).toEqual(m);
    expect(decodePutRequest(ours)).toEqual(m);
  });

  it('GetResponse round-trips against ts-proto both ways, and decoding does not copy the data', () => {
    const m: GetResponse = { data: randomBytes(3000), crc32c: 12345, objectLength: 4 << 20 };
    const ours = encodeGetResponse(m);
    expect(GetResponse.decode(ours)).toEqual(m);
    expect(decodeGetResponse(Buffer.from(GetResponse.encode(m).finish()))).toEqual(m);
    const d = decodeGetResponse(ours);
    expect(d.data.buffer).toBe(ours.buffer);
    expect(decodeGetResponse(encodeGetResponse({ data: Buffer.alloc(0), crc32c: 0, objectLength: 0 }))).toEqual({ data: Buffer.alloc(0), crc32c: 0, objectLength: 0 });
  });

  it('skips unknown fields and rejects truncated messages', () => {
    const m: GetResponse = { data: Buffer.from('abc'), crc32c: 7, objectLength: 3 };
    const unknown = Buffer.from([(9 << 3) | 0, 5, (10 << 3) | 2, 2, 0x61, 0x62]); // field 9 varint, field 10 bytes
    expect(decodeGetResponse(Buffer.concat([unknown, encodeGetResponse(m)]))).toEqual(m);
    const whole = encodeGetResponse(m);
    expect(() => decodeGetResponse(whole.subarray(0, whole.length - 1))).toThrow();
  });
});
