// ObjectSpec: plain data read from a .bpf.o (programs, maps, their types and sizes), with no
// kernel objects behind it. Collection.load turns a spec into loaded programs and maps.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfError } from './errors';
import { libbpf, lastErrno, ObjectPtr } from './ffi';
import type { MapInfo } from './map';

export interface ProgramSpec {
  readonly name: string;
  /** ELF section, e.g. "tracepoint/fuse/fuse_request_send" or "sockops". */
  readonly section: string;
  readonly type: number;
  readonly attachType: number;
}

export interface MapSpec extends MapInfo {
  /** .rodata/.bss/.kconfig maps libbpf creates for globals: never pinned or shown to users. */
  readonly internal: boolean;
}

export class ObjectSpec {
  private constructor(
    readonly path: string,
    readonly name: string,
    readonly programs: readonly ProgramSpec[],
    readonly maps: readonly MapSpec[],
  ) {}

  /** Reads the ELF through libbpf (open without load) and closes it again. */
  static fromFile(file: string): ObjectSpec {
    if (!fs.existsSync(file)) throw new Error(`BPF object ${file} not found (run the build: make -C bpf)`);
    const obj = openObject(file);
    try {
      const d = describe(obj);
      return new ObjectSpec(file, path.basename(file).replace(/\.bpf\.o$|\.o$/, ''), d.programs, d.maps);
    } finally {
      libbpf().bpf_object__close(obj);
    }
  }

  program(name: string): ProgramSpec {
    const p = this.programs.find((x) => x.name === name);
    if (!p) throw new Error(`${this.name}: no program ${name} (have ${this.programs.map((x) => x.name).join(', ')})`);
    return p;
  }
  map(name: string): MapSpec {
    const m = this.maps.find((x) => x.name === name);
    if (!m) throw new Error(`${this.name}: no map ${name} (have ${this.maps.map((x) => x.name).join(', ')})`);
    return m;
  }
}

export function openObject(file: string): ObjectPtr {
  const obj = libbpf().bpf_object__open_file(file, null);
  if (!obj) throw new BpfError(`open BPF object ${file}`, -lastErrno());
  return obj;
}

export function describe(obj: ObjectPtr): { programs: ProgramSpec[]; maps: MapSpec[] } {
  const lib = libbpf();
  const programs: ProgramSpec[] = [];
  for (let p = lib.bpf_object__next_program(obj, null); p; p = lib.bpf_object__next_program(obj, p)) {
    programs.push({
      name: lib.bpf_program__name(p),
      section: lib.bpf_program__section_name(p),
      type: lib.bpf_program__type(p),
      attachType: lib.bpf_program__expected_attach_type(p),
    });
  }
  const maps: MapSpec[] = [];
  for (let m = lib.bpf_object__next_map(obj, null); m; m = lib.bpf_object__next_map(obj, m)) {
    maps.push({
      name: lib.bpf_map__name(m),
      type: lib.bpf_map__type(m),
      keySize: lib.bpf_map__key_size(m),
      valueSize: lib.bpf_map__value_size(m),
      maxEntries: lib.bpf_map__max_entries(m),
      flags: lib.bpf_map__map_flags(m),
      internal: lib.bpf_map__is_internal(m),
    });
  }
  return { programs, maps };
}
