// The bulk transport's frame decoder: frames cut anywhere or several in one chunk come out whole
// and in order; a header that is not ours or announces too much is refused before allocating.
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { BulkProtocolError, encodeHeader, errorFrame, FrameDecoder, HEADER_BYTES, Op } from '../../src/datastore/bulk-frame';

const LIMIT = 1 << 20;
/** Recomputes the header's own CRC32C after a test changed a field. */
const reseal = (b: Buffer) => {
  b.writeUInt32LE(crc32c(b.subarray(0, 64)), 64);
  return b;
};
const decoder = () => new FrameDecoder((op) => (op === Op.PUT || op === Op.ANSWER ? LIMIT : op === Op.GET ? 4096 : -1));

function putFrame(id: number, payload: Buffer): Buffer {
  const key = { fsId: 7, ino: 2 ** 40 + 3, index: 2 ** 33 + 1, version: Number.MAX_SAFE_INTEGER };
  return Buffer.concat([encodeHeader({ op: Op.PUT, id, key, offset: 12345, length: -1, crc: crc32c(payload) }, payload), payload]);
}

describe('bulk frame decoder', () => {
  it('decodes every header field, 64-bit values and length -1 included', () => {
    const payload = randomBytes(1000);
    const [f] = decoder().push(putFrame(42, payload));
    expect(f.op).toBe(Op.PUT);
    expect(f.id).toBe(42);
    expect(f.key).toEqual({ fsId: 7, ino: 2 ** 40 + 3, index: 2 ** 33 + 1, version: Number.MAX_SAFE_INTEGER });
    expect(f.offset).toBe(12345);
    expect(f.length).toBe(-1);
    expect(f.crc).toBe(crc32c(payload));
    expect(f.payload.equals(payload)).toBe(true);
  });

  it('reassembles frames split at every byte boundary and several merged in one chunk', () => {
    const payloads = [randomBytes(300), Buffer.alloc(0), randomBytes(70_000), randomBytes(1)];
    const stream = Buffer.concat(payloads.map((p, i) => putFrame(i + 1, p)));
    // One byte at a time, then random cuts, then everything at once.
    const cuts: number[][] = [[...Array(stream.length).keys()].map(() => 1), [], [stream.length]];
    for (let left = stream.length; left > 0;) {
      const n = Math.min(left, 1 + Math.floor(Math.random() * 5000));
      cuts[1].push(n);
      left -= n;
    }
    for (const sizes of cuts) {
      const d = decoder();
      const out = [];
      let at = 0;
      for (const n of sizes) {
        out.push(...d.push(stream.subarray(at, at + n)));
        at += n;
      }
      expect(out.map((f) => f.id)).toEqual([1, 2, 3, 4]);
      out.forEach((f, i) => expect(f.payload.equals(payloads[i])).toBe(true));
      expect(d.idle).toBe(true);
    }
  });

  it('refuses an oversized payload length, a bad magic, version or op before allocating', () => {
    const huge = encodeHeader({ op: Op.PUT, id: 1, payloadLength: 0xffffffff, crc: 0 });
    expect(() => decoder().push(huge)).toThrow(BulkProtocolError);
    const bigGet = encodeHeader({ op: Op.GET, id: 1, payloadLength: 4097, crc: 0 });
    expect(() => decoder().push(bigGet)).toThrow(/exceeds 4096/);
    const badMagic = Buffer.from(putFrame(1, Buffer.alloc(0)));
    badMagic[0] ^= 1;
    expect(() => decoder().push(badMagic)).toThrow(/magic/);
    const badVersion = Buffer.from(putFrame(1, Buffer.alloc(0)));
    badVersion[4] = 9;
    expect(() => decoder().push(badVersion)).toThrow(/version/);
    const badOp = encodeHeader({ op: 77, id: 1 });
    expect(() => decoder().push(badOp)).toThrow(/op 77/);
    const badIno = Buffer.from(putFrame(1, Buffer.alloc(0)));
    badIno.writeUInt32LE(0xffffffff, 20); // ino's high word: past 2^53
    expect(() => decoder().push(reseal(badIno))).toThrow(/ino/);
  });

  it('refuses a header damaged in transit (its own CRC32C), e.g. a flipped bit in the key', () => {
    const frame = Buffer.from(putFrame(1, randomBytes(10)));
    frame[17] ^= 0x08; // a bit of ino
    let err: unknown;
    try {
      decoder().push(frame);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(BulkProtocolError);
    expect((err as BulkProtocolError).damaged).toBe(true);
    // The same header with a matching CRC32C is taken as it says.
    expect(decoder().push(reseal(frame))[0].key.ino).toBe(2 ** 40 + 3 + 0x800);
  });

  it('carries errors as errno + message', () => {
    const [f] = decoder().push(errorFrame(9, 2, 'no chunk 1/2/3.4'));
    expect(f.op).toBe(Op.ANSWER);
    expect(f.errno).toBe(2);
    expect(f.payload.toString()).toBe('no chunk 1/2/3.4');
    expect(HEADER_BYTES).toBe(68);
  });
});
