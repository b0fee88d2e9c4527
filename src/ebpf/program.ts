// Program: one loaded BPF program of a Collection, and its attach methods (each returns a Link).
import * as fs from 'node:fs';
import { BpfError, EPERM_HINT } from './errors';
import { libbpf, lastErrno, ProgramPtr } from './ffi';
import { Link } from './link';
import type { ProgramSpec } from './spec';

export class Program {
  constructor(
    private readonly ptr: ProgramPtr,
    readonly spec: ProgramSpec,
  ) {}

  get name(): string {
    return this.spec.name;
  }
  /** The program fd, owned by the Collection. */
  get fd(): number {
    return libbpf().bpf_program__fd(this.ptr);
  }

  /** Attaches by ELF section (tracepoint/…, raw_tp/…): the way libbpf infers the hook. */
  attach(): Link {
    const link = libbpf().bpf_program__attach(this.ptr);
    if (!link) throw attachError(`attach ${this.name} (${this.spec.section})`, lastErrno());
    return new Link(link, `${this.name} → ${this.spec.section}`);
  }

  /** Attaches a cgroup program (sockops…) to the cgroup v2 directory `cgroupPath`. */
  attachCgroup(cgroupPath: string): Link {
    let cg: number;
    try {
      cg = fs.openSync(cgroupPath, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (err) {
      throw new Error(`open cgroup ${cgroupPath}: ${(err as Error).message}`);
    }
    try {
      const link = libbpf().bpf_program__attach_cgroup(this.ptr, cg);
      if (!link) throw attachError(`attach ${this.name} to cgroup ${cgroupPath}`, lastErrno());
      return new Link(link, `${this.name} → cgroup ${cgroupPath}`);
    } finally {
      fs.closeSync(cg);
    }
  }
}

function attachError(what: string, errno: number): BpfError {
  return new BpfError(what, -errno, errno === 1 ? EPERM_HINT : undefined);
}
