// What a BPF fd is (map, program or link) and its kernel-side info: /proc/self/fdinfo for the
// kind and numbers, bpf_obj_get_info_by_fd for names (fdinfo has none).
import * as fs from 'node:fs';
import { BpfError } from './errors';
import { libbpf } from './ffi';
import type { MapInfo } from './map';

export interface ProgInfo {
  readonly id: number;
  readonly type: number;
  readonly name: string;
  readonly tag: string;
}
export interface LinkInfo {
  readonly id: number;
  /** The kernel's link type name from fdinfo, e.g. "cgroup", "perf" or "tracing". */
  readonly type: string;
  readonly progId: number;
  readonly cgroupId?: number;
  readonly attachType?: string;
}
export type ObjectInfo =
  | { kind: 'map'; map: MapInfo & { id: number } }
  | { kind: 'prog'; prog: ProgInfo }
  | { kind: 'link'; link: LinkInfo };

function fdinfo(fd: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function infoBuf(fd: number, size: number): Buffer {
  const buf = Buffer.alloc(size);
  const len = [size];
  const ret = libbpf().bpf_obj_get_info_by_fd(fd, buf, len);
  if (ret < 0) throw new BpfError('bpf_obj_get_info_by_fd', ret);
  return buf;
}

function cstr(buf: Buffer, off: number, len: number): string {
  const s = buf.subarray(off, off + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? len : end).toString('utf8');
}

export function objectInfo(fd: number): ObjectInfo {
  const fi = fdinfo(fd);
  const num = (k: string) => Number(fi[k] ?? 0);
  if (fi.map_type !== undefined) {
    // struct bpf_map_info: type, id, key_size, value_size, max_entries, map_flags, char name[16]
    const b = infoBuf(fd, 96);
    return {
      kind: 'map',
      map: {
        id: b.readUInt32LE(4),
        type: b.readUInt32LE(0),
        keySize: b.readUInt32LE(8),
        valueSize: b.readUInt32LE(12),
        maxEntries: b.readUInt32LE(16),
        flags: b.readUInt32LE(20),
        name: cstr(b, 24, 16),
      },
    };
  }
  if (fi.prog_type !== undefined) {
    // struct bpf_prog_info: type, id, tag[8], …, name[16] at offset 64
    const b = infoBuf(fd, 232);
    return {
      kind: 'prog',
      prog: { id: b.readUInt32LE(4), type: b.readUInt32LE(0), tag: b.subarray(8, 16).toString('hex'), name: cstr(b, 64, 16) },
    };
  }
  if (fi.link_type !== undefined) {
    return {
      kind: 'link',
      link: {
        id: num('link_id'),
        type: fi.link_type,
        progId: num('prog_id'),
        cgroupId: fi.cgroup_id !== undefined ? num('cgroup_id') : undefined,
        attachType: fi.attach_type,
      },
    };
  }
  throw new TypeError(`fd ${fd} is not a BPF map, program or link`);
}
