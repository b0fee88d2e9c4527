// What Kurve has in the kernel: detected features and every pinned map/link under the pin
// directory (with the program each link runs), for `kurve bpf status`; and the full unload.
import * as path from 'node:path';
import { libbpf, libC, lastErrno } from './ffi';
import { BpfError } from './errors';
import { Features, probeFeatures } from './features';
import { objectInfo, ObjectInfo, ProgInfo } from './info';
import { mapTypeName } from './map';
import { listPins, pinDir, removePins } from './pins';
import { findCgroup } from './rto-tuner';

export interface PinStatus {
  readonly path: string;
  readonly object: string;
  readonly info?: ObjectInfo;
  /** For links: the attached program; for maps: the type name. */
  readonly detail?: string;
  readonly program?: ProgInfo;
  readonly cgroup?: string;
  readonly error?: string;
}

export interface BpfStatus {
  readonly pinDir: string;
  readonly features: Features;
  readonly pins: PinStatus[];
  /** Loaded programs with Kurve's program names, pinned or not (e.g. fuse_trace in `kurve up`). */
  readonly programs: ProgInfo[];
}

/** Program names in bpf/*.bpf.c (the kernel keeps the first 15 characters). */
export const KURVE_PROGRAMS = ['fuse_request_send', 'fuse_request_end', 'tcp_tune', 'tcp_retransmit'].map((n) => n.slice(0, 15));

/** Every loaded program whose name is one of Kurve's. */
export function kurvePrograms(): ProgInfo[] {
  const out: ProgInfo[] = [];
  const next = [0];
  for (let id = 0, guard = 0; guard < 100_000; guard++) {
    if (libbpf().bpf_prog_get_next_id(id, next) !== 0) break;
    id = next[0];
    const fd = libbpf().bpf_prog_get_fd_by_id(id);
    if (fd < 0) continue; // unloaded meanwhile
    const info = withFd(fd, objectInfo);
    if (info.kind === 'prog' && KURVE_PROGRAMS.includes(info.prog.name)) out.push(info.prog);
  }
  return out;
}

function withFd<T>(fd: number, f: (fd: number) => T): T {
  try {
    return f(fd);
  } finally {
    libC().close(fd);
  }
}

export function bpfStatus(root = pinDir()): BpfStatus {
  const features = probeFeatures();
  const pins: PinStatus[] = [];
  for (const p of listPins(root)) {
    const object = path.relative(root, path.dirname(p)) || '.';
    const fd = libbpf().bpf_obj_get(p);
    if (fd < 0) {
      pins.push({ path: p, object, error: new BpfError('open pin', -lastErrno()).message });
      continue;
    }
    pins.push(withFd(fd, (f) => {
      const info = objectInfo(f);
      if (info.kind === 'map') return { path: p, object, info, detail: mapTypeName(info.map.type) };
      if (info.kind === 'link') {
        let program: ProgInfo | undefined;
        const pfd = libbpf().bpf_prog_get_fd_by_id(info.link.progId);
        if (pfd >= 0) {
          const pi = withFd(pfd, objectInfo);
          if (pi.kind === 'prog') program = pi.prog;
        }
        const cgroup = info.link.cgroupId !== undefined ? findCgroup(info.link.cgroupId) : undefined;
        return { path: p, object, info, program, cgroup, detail: `${info.link.type} link → ${program?.name ?? `prog ${info.link.progId}`}${cgroup ? ` on ${cgroup}` : ''}` };
      }
      return { path: p, object, info, detail: `program ${info.prog.name}` };
    }));
  }
  return { pinDir: root, features, pins, programs: features.capBpf ? kurvePrograms() : [] };
}

/** Removes every Kurve pin (links first, which detaches them), leaving nothing behind. */
export function unloadAll(root = pinDir()): string[] {
  return removePins(root);
}
