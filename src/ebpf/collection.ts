// Collection: a loaded object. It owns every program and map fd; if anything fails before load
// returns, everything opened so far is closed. Maps can be pinned under a directory and re-used
// by the next process that loads the same object (settings survive restarts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Codec } from './codecs';
import { BpfError, EPERM_HINT, VerifierError } from './errors';
import { allocNative, clearNative, freeNative, libbpf, MapPtr, NativeBuf, ObjectPtr, ProgramPtr, readNativeString } from './ffi';
import { BpfMap } from './map';
import { Program } from './program';
import { describe, MapSpec, ObjectSpec, openObject, ProgramSpec } from './spec';

export interface LoadOptions {
  /** Pin every (non-internal) map as `<dir>/<map name>`, re-using pins that already exist. */
  readonly pinMapsDir?: string;
  /** Load only these programs (the rest of the object is left out). */
  readonly programs?: readonly string[];
  /** Verifier log buffer per program, in bytes (default 1 MiB). */
  readonly logSize?: number;
}

const DEFAULT_LOG_SIZE = 1 << 20;

export class Collection {
  private obj: ObjectPtr | undefined;

  private constructor(
    obj: ObjectPtr,
    readonly spec: ObjectSpec,
    private readonly progs: Map<string, Program>,
    private readonly mapPtrs: Map<string, { ptr: MapPtr; spec: MapSpec }>,
    readonly loadMs: number,
  ) {
    this.obj = obj;
  }

  static load(source: ObjectSpec | string, opts: LoadOptions = {}): Collection {
    const spec = typeof source === 'string' ? ObjectSpec.fromFile(source) : source;
    const lib = libbpf();
    const t0 = performance.now();
    const obj = openObject(spec.path);
    const logSize = opts.logSize ?? DEFAULT_LOG_SIZE;
    const logs: Array<{ ptr: ProgramPtr; spec: ProgramSpec; buf: NativeBuf }> = [];
    try {
      const d = describe(obj);
      let i = 0;
      for (let p = lib.bpf_object__next_program(obj, null); p; p = lib.bpf_object__next_program(obj, p), i++) {
        const ps = d.programs[i];
        if (opts.programs && !opts.programs.includes(ps.name)) {
          lib.bpf_program__set_autoload(p, false);
          continue;
        }
        // Level 0 with a buffer: libbpf retries a failed load at level 1 into this buffer, so a
        // successful load pays nothing for logging.
        const buf = allocNative(logSize);
        clearNative(buf, logSize);
        logs.push({ ptr: p, spec: ps, buf });
        lib.bpf_program__set_log_buf(p, buf, logSize);
      }
      const maps = new Map<string, { ptr: MapPtr; spec: MapSpec }>();
      let j = 0;
      for (let m = lib.bpf_object__next_map(obj, null); m; m = lib.bpf_object__next_map(obj, m), j++) {
        const ms = d.maps[j];
        maps.set(ms.name, { ptr: m, spec: ms });
        if (opts.pinMapsDir && !ms.internal) {
          fs.mkdirSync(opts.pinMapsDir, { recursive: true });
          const ret = lib.bpf_map__set_pin_path(m, path.join(opts.pinMapsDir, ms.name));
          if (ret < 0) throw new BpfError(`set pin path of map ${ms.name}`, ret);
        }
      }
      const ret = lib.bpf_object__load(obj);
      if (ret < 0) throw loadError(spec, ret, logs, logSize, opts.pinMapsDir);
      const progs = new Map<string, Program>();
      for (const l of logs) progs.set(l.spec.name, new Program(l.ptr, l.spec));
      return new Collection(obj, spec, progs, maps, performance.now() - t0);
    } catch (err) {
      lib.bpf_object__close(obj);
      throw err;
    } finally {
      // libbpf only writes the buffers during load; they are not referenced afterwards.
      for (const l of logs) {
        lib.bpf_program__set_log_buf(l.ptr, null as unknown as NativeBuf, 0);
        freeNative(l.buf);
      }
    }
  }

  get name(): string {
    return this.spec.name;
  }
  get programs(): readonly Program[] {
    return [...this.progs.values()];
  }

  program(name: string): Program {
    const p = this.progs.get(name);
    if (!p) throw new Error(`${this.name}: no loaded program ${name}`);
    return p;
  }

  mapSpec(name: string): MapSpec {
    const m = this.mapPtrs.get(name);
    if (!m) throw new Error(`${this.name}: no map ${name}`);
    return m.spec;
  }

  /** A typed view of one of the collection's maps; the collection keeps owning the fd. */
  map<K, V>(name: string, key: Codec<K>, value: Codec<V>): BpfMap<K, V> {
    const m = this.mapPtrs.get(name);
    if (!m) throw new Error(`${this.name}: no map ${name}`);
    this.live();
    return new BpfMap(libbpf().bpf_map__fd(m.ptr), m.spec, key, value, false);
  }

  /** Closes every program and map fd. Pinned maps and links stay in the kernel. */
  close(): void {
    if (!this.obj) return;
    const o = this.obj;
    this.obj = undefined;
    libbpf().bpf_object__close(o);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  private live(): ObjectPtr {
    if (!this.obj) throw new Error(`collection ${this.name} is closed`);
    return this.obj;
  }
}

function loadError(
  spec: ObjectSpec,
  ret: number,
  logs: Array<{ ptr: ProgramPtr; spec: ProgramSpec; buf: NativeBuf }>,
  logSize: number,
  pinDir: string | undefined,
): Error {
  for (const l of logs) {
    const log = readNativeString(l.buf, logSize);
    if (log.trim() !== '' && libbpf().bpf_program__fd(l.ptr) < 0) {
      return new VerifierError(`${spec.name}/${l.spec.name}`, ret, log, log.length >= logSize - 1);
    }
  }
  const hint = pinDir
    ? `if ${pinDir} holds maps from an older build, remove them (kurve bpf unload)`
    : undefined;
  return new BpfError(`load BPF object ${spec.name}`, ret, Math.abs(ret) === 1 ? EPERM_HINT : hint);
}
