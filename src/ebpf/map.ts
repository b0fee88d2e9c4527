// BpfMap<K, V>: a typed view of a map fd through key/value codecs, checked against the map's
// key_size/value_size once when it is opened.
import * as os from 'node:os';
import { Codec } from './codecs';
import { BpfError, check } from './errors';
import { libbpf, libC, lastErrno } from './ffi';
import { objectInfo } from './info';

export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
} as const;

const MAP_TYPE_NAMES: Record<number, string> = {
  1: 'hash', 2: 'array', 3: 'prog_array', 4: 'perf_event_array', 5: 'percpu_hash', 6: 'percpu_array',
  7: 'stack_trace', 8: 'cgroup_array', 9: 'lru_hash', 10: 'lru_percpu_hash', 11: 'lpm_trie',
  12: 'array_of_maps', 13: 'hash_of_maps', 15: 'sockmap', 18: 'sockhash', 19: 'cgroup_storage',
  24: 'sk_storage', 27: 'ringbuf',
};
export function mapTypeName(type: number): string {
  return MAP_TYPE_NAMES[type] ?? `type ${type}`;
}
export function isPerCpu(type: number): boolean {
  return type === MapType.PERCPU_HASH || type === MapType.PERCPU_ARRAY || type === MapType.LRU_PERCPU_HASH;
}

export interface MapInfo {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
}

/** BPF_ANY / BPF_NOEXIST / BPF_EXIST for set(). */
export const UpdateFlags = { ANY: 0n, NOEXIST: 1n, EXIST: 2n } as const;

export class BpfMap<K, V> {
  private readonly keyBuf: Buffer;
  private readonly valBuf: Buffer;
  private closed = false;

  /**
   * @param ownsFd true when this map must close the fd (opened from a pin); false when a
   *   Collection owns it.
   */
  constructor(
    private readonly fd: number,
    readonly info: MapInfo,
    private readonly keyCodec: Codec<K>,
    private readonly valueCodec: Codec<V>,
    private readonly ownsFd = false,
  ) {
    const perCpu = isPerCpu(info.type);
    if (keyCodec.size !== info.keySize) {
      throw new RangeError(`map ${info.name}: key codec is ${keyCodec.size} bytes but key_size is ${info.keySize}`);
    }
    if (perCpu !== (valueCodec.perCpuValueSize !== undefined)) {
      throw new TypeError(`map ${info.name} (${mapTypeName(info.type)}): ${perCpu ? 'needs' : 'must not use'} a perCpu() value codec`);
    }
    const one = valueCodec.perCpuValueSize ?? valueCodec.size;
    if (one !== info.valueSize) {
      throw new RangeError(`map ${info.name}: value codec is ${one} bytes but value_size is ${info.valueSize}`);
    }
    this.keyBuf = Buffer.alloc(keyCodec.size);
    this.valBuf = Buffer.alloc(valueCodec.size);
  }

  /** Opens a pinned map by path; the returned map owns (and closes) its fd. */
  static fromPin<K, V>(path: string, keyCodec: Codec<K>, valueCodec: Codec<V>): BpfMap<K, V> {
    const fd = libbpf().bpf_obj_get(path);
    if (fd < 0) throw new BpfError(`open pinned map ${path}`, -lastErrno());
    try {
      const info = objectInfo(fd);
      if (info.kind !== 'map') throw new TypeError(`${path} is a pinned ${info.kind}, not a map`);
      return new BpfMap(fd, info.map, keyCodec, valueCodec, true);
    } catch (err) {
      libC().close(fd);
      throw err;
    }
  }

  get name(): string {
    return this.info.name;
  }
  get mapFd(): number {
    return this.fd;
  }

  /** The value, or undefined when the key is absent. */
  get(key: K): V | undefined {
    this.keyCodec.encode(key, this.keyBuf, 0);
    const ret = libbpf().bpf_map_lookup_elem(this.fd, this.keyBuf, this.valBuf);
    if (ret === -os.constants.errno.ENOENT) return undefined;
    check(`lookup in map ${this.name}`, ret);
    return this.valueCodec.decode(this.valBuf, 0);
  }

  set(key: K, value: V, flags: bigint = UpdateFlags.ANY): void {
    const k = Buffer.alloc(this.keyCodec.size);
    const v = Buffer.alloc(this.valueCodec.size);
    this.keyCodec.encode(key, k, 0);
    this.valueCodec.encode(value, v, 0);
    check(`update map ${this.name}`, libbpf().bpf_map_update_elem(this.fd, k, v, flags));
  }

  /** Returns false when the key was absent. */
  delete(key: K): boolean {
    const k = Buffer.alloc(this.keyCodec.size);
    this.keyCodec.encode(key, k, 0);
    const ret = libbpf().bpf_map_delete_elem(this.fd, k);
    if (ret === -os.constants.errno.ENOENT) return false;
    check(`delete from map ${this.name}`, ret);
    return true;
  }

  /** Keys, fetched one by one (a snapshot only if nothing changes meanwhile). */
  *keys(): Generator<K> {
    const lib = libbpf();
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.keyCodec.size);
      const ret = lib.bpf_map_get_next_key(this.fd, prev, next);
      if (ret === -os.constants.errno.ENOENT) return;
      check(`iterate map ${this.name}`, ret);
      yield this.keyCodec.decode(next, 0);
      prev = next;
    }
  }

  *entries(): Generator<[K, V]> {
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v !== undefined) yield [k, v];
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsFd) libC().close(this.fd);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}
