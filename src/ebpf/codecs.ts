// Byte codecs for BPF map keys and values: fixed sizes, C struct layout (natural alignment), so a
// BpfMap can check them against the map's key_size/value_size once, at open.

export interface Codec<T> {
  /** Bytes encode() writes; for per-CPU codecs, the whole buffer (stride × CPUs). */
  readonly size: number;
  readonly align: number;
  /** Set on per-CPU codecs: the size of one CPU's value, as the kernel's value_size reports it. */
  readonly perCpuValueSize?: number;
  encode(value: T, buf: Buffer, offset: number): void;
  decode(buf: Buffer, offset: number): T;
}

function prim<T>(size: number, enc: (b: Buffer, v: T, o: number) => void, dec: (b: Buffer, o: number) => T): Codec<T> {
  return { size, align: size, encode: (v, b, o) => enc(b, v, o), decode: (b, o) => dec(b, o) };
}

export const u8 = prim<number>(1, (b, v, o) => b.writeUInt8(v, o), (b, o) => b.readUInt8(o));
export const u16 = prim<number>(2, (b, v, o) => b.writeUInt16LE(v, o), (b, o) => b.readUInt16LE(o));
export const u32 = prim<number>(4, (b, v, o) => b.writeUInt32LE(v, o), (b, o) => b.readUInt32LE(o));
export const i32 = prim<number>(4, (b, v, o) => b.writeInt32LE(v, o), (b, o) => b.readInt32LE(o));
/** u64 as a JS number: exact up to 2^53, which counters and nanosecond sums stay under. */
export const u64 = prim<number>(8, (b, v, o) => b.writeBigUInt64LE(BigInt(v), o), (b, o) => Number(b.readBigUInt64LE(o)));
export const u64big = prim<bigint>(8, (b, v, o) => b.writeBigUInt64LE(v, o), (b, o) => b.readBigUInt64LE(o));

/** Raw bytes of a fixed length (addresses, names). Shorter inputs are zero-padded. */
export function bytes(n: number): Codec<Buffer> {
  return {
    size: n,
    align: 1,
    encode: (v, b, o) => {
      if (v.length > n) throw new RangeError(`expected at most ${n} bytes, got ${v.length}`);
      b.fill(0, o, o + n);
      v.copy(b, o);
    },
    decode: (b, o) => Buffer.from(b.subarray(o, o + n)),
  };
}

export function array<T>(item: Codec<T>, n: number): Codec<T[]> {
  return {
    size: item.size * n,
    align: item.align,
    encode: (v, b, o) => {
      if (v.length !== n) throw new RangeError(`expected ${n} items, got ${v.length}`);
      v.forEach((x, i) => item.encode(x, b, o + i * item.size));
    },
    decode: (b, o) => Array.from({ length: n }, (_, i) => item.decode(b, o + i * item.size)),
  };
}

type Fields = Record<string, Codec<unknown>>;
type StructOf<F extends Fields> = { [K in keyof F]: F[K] extends Codec<infer T> ? T : never };

/** A C struct: fields in declaration order, each at its natural alignment, size padded to the max. */
export function struct<F extends Fields>(fields: F): Codec<StructOf<F>> {
  const layout: Array<[string, Codec<unknown>, number]> = [];
  let off = 0;
  let align = 1;
  for (const [name, c] of Object.entries(fields)) {
    off = Math.ceil(off / c.align) * c.align;
    layout.push([name, c, off]);
    off += c.size;
    align = Math.max(align, c.align);
  }
  const size = Math.ceil(off / align) * align;
  return {
    size,
    align,
    encode: (v, b, o) => {
      b.fill(0, o, o + size); // padding must be zero: hash keys compare all bytes
      for (const [name, c, fo] of layout) c.encode((v as Record<string, unknown>)[name], b, o + fo);
    },
    decode: (b, o) => {
      const out: Record<string, unknown> = {};
      for (const [name, c, fo] of layout) out[name] = c.decode(b, o + fo);
      return out as StructOf<F>;
    },
  };
}

/**
 * A per-CPU map value: the kernel hands user space one value per *possible* CPU, each padded to
 * 8 bytes. `cpus` must be libbpf_num_possible_cpus() (BpfMap passes it for you).
 */
export function perCpu<T>(item: Codec<T>, cpus: number): Codec<T[]> {
  const stride = Math.ceil(item.size / 8) * 8;
  return {
    size: stride * cpus,
    align: 8,
    perCpuValueSize: item.size,
    encode: (v, b, o) => {
      if (v.length !== cpus) throw new RangeError(`expected ${cpus} per-CPU values, got ${v.length}`);
      b.fill(0, o, o + stride * cpus);
      v.forEach((x, i) => item.encode(x, b, o + i * stride));
    },
    decode: (b, o) => Array.from({ length: cpus }, (_, i) => item.decode(b, o + i * stride)),
  };
}
