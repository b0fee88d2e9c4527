// The bulk transport's framing: chunk bytes of Get/Put over a raw TCP connection next to gRPC
// (grpc-js tops out near 200 MB/s on loopback; a plain socket moves the same objects several
// times faster). Every frame is a fixed 68-byte little-endian header and a payload:
//
//   0  u32 magic 'KBLK'     4  u8 protocol version   5  u8 op   6  u16 errno (answers; 0 = ok)
//   8  u32 request id      12  u32 fsId  16 u64 ino  24 u64 index  32 u64 version
//  40  u64 offset          48  i64 length (-1 = to the end)
//  56  u32 payload length  60  u32 CRC32C (of the payload; for a PUT of the object, which is it)
//  64  u32 CRC32C of bytes 0-63 (a damaged key or offset must not pass either)
//
// A connection starts with AUTH (payload: the token) when the datastore has one. Requests are
// pipelined and answered by id in completion order with ANSWER frames: a GET's answer carries the
// bytes and their CRC32C, an error carries errno and the message as the payload. Header fields
// are bounded before anything is allocated: a bad frame ends its connection, nothing else.
import { crc32c } from '@node-rs/crc32';
import { ChunkKey } from './api';

export const BULK_MAGIC = 0x4b4c424b; // 'KBLK' read as little-endian bytes
export const BULK_VERSION = 1;
export const HEADER_BYTES = 68;
/** The header bytes its own CRC32C covers. */
const SEALED_BYTES = 64;

export const Op = { AUTH: 1, GET: 2, PUT: 3, ANSWER: 0x80 } as const;

/** Payload room above the largest object (nothing else is large) and the most any non-PUT request may carry. */
export const PAYLOAD_SLACK = 64 * 1024;
export const MAX_SMALL_PAYLOAD = 4096;

const TWO32 = 2 ** 32;
const NO_KEY: ChunkKey = { fsId: 0, ino: 0, index: 0, version: 0 };

export interface Frame {
  readonly op: number;
  readonly errno: number;
  readonly id: number;
  readonly key: ChunkKey;
  readonly offset: number;
  /** -1 = to the end. */
  readonly length: number;
  readonly crc: number;
  readonly payload: Buffer;
}

/** A frame that cannot be part of a well-behaved conversation: its connection is closed. */
export class BulkProtocolError extends Error {
  override readonly name = 'BulkProtocolError';
  /** True when the header's own CRC32C did not match (damaged in transit, rather than malformed). */
  constructor(message: string, readonly damaged = false) {
    super(message);
  }
}

function writeU64(b: Buffer, at: number, v: number): void {
  if (v === -1) {
    b.writeUInt32LE(0xffffffff, at);
    b.writeUInt32LE(0xffffffff, at + 4);
    return;
  }
  b.writeUInt32LE(v % TWO32, at);
  b.writeUInt32LE(Math.floor(v / TWO32), at + 4);
}

function readU64(b: Buffer, at: number, field: string, allowMinusOne = false): number {
  const lo = b.readUInt32LE(at);
  const hi = b.readUInt32LE(at + 4);
  if (allowMinusOne && lo === 0xffffffff && hi === 0xffffffff) return -1;
  // Above 2^53 a JS number would round: no valid key or offset is that large.
  if (hi > 0x1fffff) throw new BulkProtocolError(`${field} out of range`);
  return hi * TWO32 + lo;
}

export interface FrameFields {
  readonly op: number;
  readonly id: number;
  readonly errno?: number;
  readonly key?: ChunkKey;
  readonly offset?: number;
  readonly length?: number;
  /** Defaults to the CRC32C of the payload. */
  readonly crc?: number;
  readonly payloadLength?: number;
}

/** The header of a frame; the payload (payloadLength bytes) is written after it as it is. */
export function encodeHeader(f: FrameFields, payload?: Buffer): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  const key = f.key ?? NO_KEY;
  h.writeUInt32LE(BULK_MAGIC, 0);
  h.writeUInt8(BULK_VERSION, 4);
  h.writeUInt8(f.op, 5);
  h.writeUInt16LE(f.errno ?? 0, 6);
  h.writeUInt32LE(f.id >>> 0, 8);
  h.writeUInt32LE(key.fsId >>> 0, 12);
  writeU64(h, 16, key.ino);
  writeU64(h, 24, key.index);
  writeU64(h, 32, key.version);
  writeU64(h, 40, f.offset ?? 0);
  writeU64(h, 48, f.length ?? -1);
  h.writeUInt32LE(f.payloadLength ?? payload?.length ?? 0, 56);
  h.writeUInt32LE((f.crc ?? (payload ? crc32c(payload) : 0)) >>> 0, 60);
  h.writeUInt32LE(crc32c(h.subarray(0, SEALED_BYTES)), SEALED_BYTES);
  return h;
}

/** An error answer: errno and the message as the payload. */
export function errorFrame(id: number, errno: number, message: string): Buffer {
  const payload = Buffer.from(message.slice(0, 1000), 'utf8');
  return Buffer.concat([encodeHeader({ op: Op.ANSWER, id, errno }, payload), payload]);
}

/**
 * Reassembles frames from a byte stream cut anywhere (a frame split over 'data' chunks, several
 * in one). The payload buffer is allocated once, when its header is complete, after the header
 * was checked against `maxPayload(op)`; its bytes are copied in as they arrive and never again.
 */
export class FrameDecoder {
  private readonly head = Buffer.allocUnsafe(HEADER_BYTES);
  private headGot = 0;
  private pending: Omit<Frame, 'payload'> | undefined;
  private payload: Buffer | undefined;
  private payloadGot = 0;

  constructor(private readonly maxPayload: (op: number) => number) {}

  /**
   * Feeds bytes; returns the frames they complete, or hands each to `onFrame` as soon as it is
   * complete (before the next header is checked: an AUTH changes what may follow it). Throws
   * BulkProtocolError on a bad header.
   */
  push(chunk: Buffer, onFrame?: (f: Frame) => void): Frame[] {
    const out: Frame[] = [];
    const emit = onFrame ?? ((f: Frame) => out.push(f));
    let at = 0;
    while (at < chunk.length) {
      if (!this.payload) {
        const n = Math.min(HEADER_BYTES - this.headGot, chunk.length - at);
        chunk.copy(this.head, this.headGot, at, at + n);
        this.headGot += n;
        at += n;
        if (this.headGot < HEADER_BYTES) break;
        this.headGot = 0;
        const size = this.startFrame();
        if (size === 0) {
          emit(this.finish(Buffer.alloc(0)));
          continue;
        }
        this.payload = Buffer.allocUnsafe(size);
        this.payloadGot = 0;
      }
      const n = Math.min(this.payload.length - this.payloadGot, chunk.length - at);
      chunk.copy(this.payload, this.payloadGot, at, at + n);
      this.payloadGot += n;
      at += n;
      if (this.payloadGot === this.payload.length) {
        const p = this.payload;
        this.payload = undefined;
        emit(this.finish(p));
      }
    }
    return out;
  }

  /** True between frames (nothing of a frame received yet). */
  get idle(): boolean {
    return this.headGot === 0 && !this.payload;
  }

  private startFrame(): number {
    const h = this.head;
    if (h.readUInt32LE(0) !== BULK_MAGIC) throw new BulkProtocolError('bad magic');
    if (h.readUInt8(4) !== BULK_VERSION) throw new BulkProtocolError(`unsupported protocol version ${h.readUInt8(4)}`);
    if (crc32c(h.subarray(0, SEALED_BYTES)) !== h.readUInt32LE(SEALED_BYTES)) {
      throw new BulkProtocolError('checksum mismatch in transit (frame header)', true);
    }
    const op = h.readUInt8(5);
    const size = h.readUInt32LE(56);
    const max = this.maxPayload(op);
    if (max < 0) throw new BulkProtocolError(`unexpected op ${op}`);
    if (size > max) throw new BulkProtocolError(`payload of ${size} bytes exceeds ${max} for op ${op}`);
    this.pending = {
      op,
      errno: h.readUInt16LE(6),
      id: h.readUInt32LE(8),
      key: {
        fsId: h.readUInt32LE(12),
        ino: readU64(h, 16, 'ino'),
        index: readU64(h, 24, 'index'),
        version: readU64(h, 32, 'version'),
      },
      offset: readU64(h, 40, 'offset'),
      length: readU64(h, 48, 'length', true),
      crc: h.readUInt32LE(60),
    };
    return size;
  }

  private finish(payload: Buffer): Frame {
    const f = { ...this.pending!, payload };
    this.pending = undefined;
    return f;
  }
}
